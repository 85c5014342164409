package rest

import "net/http"

// create handles POST [base]/{type}: a new resource with a server-assigned id.
func (a *API) create(w http.ResponseWriter, r *http.Request, req *request, typ string) {
	if r.Header.Get("If-None-Exist") != "" {
		a.writeError(w, r, notSupported("conditional create (If-None-Exist) is not supported yet"))
		return
	}
	body, err := a.readBody(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.res.Create(r.Context(), req.account, typ, body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.respondWrite(w, r, req, res, http.StatusCreated, "Created "+typ+"/"+res.ID+" version 1.")
}
