package rest

import (
	"net/http"
	"strings"
)

// create handles POST [base]/{type}: a new resource with a server-assigned id.
func (a *API) create(w http.ResponseWriter, r *http.Request, req *request, typ string) {
	body, err := a.readBody(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if cond := r.Header.Get("If-None-Exist"); cond != "" {
		if a.cfg.Conditional == nil {
			a.writeError(w, r, notSupported("conditional create (If-None-Exist) is not supported by this server"))
			return
		}
		if err := a.res.CheckType(typ); err != nil {
			a.writeError(w, r, err)
			return
		}
		a.cfg.Conditional.Conditional(w, r, ConditionalRequest{Account: req.account, Method: http.MethodPost, URL: typ,
			IfNoneExist: strings.TrimPrefix(cond, typ+"?"), Body: body})
		return
	}
	res, err := a.res.Create(r.Context(), req.account, typ, body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.respondWrite(w, r, req, res, http.StatusCreated, "Created "+typ+"/"+res.ID+" version 1.")
}
