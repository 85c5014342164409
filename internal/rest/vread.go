package rest

import (
	"net/http"
	"strconv"
)

// vread handles GET [base]/{type}/{id}/_history/{vid}.
func (a *API) vread(w http.ResponseWriter, r *http.Request, req *request, typ, id, vid string) {
	if !validID(id) {
		a.writeError(w, r, badRequest("id", "%q is not a valid FHIR id", id))
		return
	}
	v, err := strconv.ParseInt(vid, 10, 64)
	if err != nil || v < 1 {
		a.writeError(w, r, badRequest("versionId", "version %q is not a positive integer", vid))
		return
	}
	sub, err := parseSubsetting(r, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.res.VRead(r.Context(), req.account, typ, id, v)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body, err := subset(a.cfg.Model, res.Body, sub)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	versionHeaders(w, res)
	a.writeBody(w, r, http.StatusOK, body)
}
