package rest

import (
	"net/http"
	"net/url"
)

// search handles GET [base]/{type}?…, POST [base]/{type}/_search and the
// system-level forms, delegating to the Searcher.
func (a *API) search(w http.ResponseWriter, r *http.Request, req *request, types []string) {
	if a.cfg.Searcher == nil {
		a.writeError(w, r, notSupported("search is not supported yet"))
		return
	}
	for _, t := range types {
		if err := a.res.CheckType(t); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = append(params[k], v...)
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			a.writeError(w, r, badRequest("", "the _search form body is malformed: %v", err))
			return
		}
		for k, v := range r.PostForm {
			params[k] = append(params[k], v...)
		}
	}
	body, err := a.cfg.Searcher.Search(r, req.account, types, params, req.base)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeBody(w, r, http.StatusOK, body)
}
