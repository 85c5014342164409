package rest

import (
	"net/http"
	"time"
)

// read handles GET/HEAD [base]/{type}/{id}, with If-None-Match and
// If-Modified-Since (304), _summary and _elements.
func (a *API) read(w http.ResponseWriter, r *http.Request, req *request, typ, id string) {
	sub, err := parseSubsetting(r, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.res.Read(r.Context(), req.account, typ, id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if v, ok := parseETag(inm); ok && v == res.VersionID {
			versionHeaders(w, res)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !res.LastUpdated.Truncate(time.Second).After(t) {
			versionHeaders(w, res)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	body, err := subset(a.cfg.Model, res.Body, sub)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	versionHeaders(w, res)
	a.writeBody(w, r, http.StatusOK, body)
}
