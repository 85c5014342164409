package rest

import (
	"net/http"
	"strings"
)

// conditional handles conditional update (PUT [type]?search), conditional
// delete (DELETE [type]?search) and patch (PATCH [type]/[id] or
// [type]?search, JSON Patch), delegating to the Conditional handler.
func (a *API) conditional(w http.ResponseWriter, r *http.Request, req *request, typ, id string) {
	if err := a.res.CheckType(typ); err != nil {
		a.writeError(w, r, err)
		return
	}
	target := typ + "/" + id
	if id == "" {
		if r.URL.RawQuery == "" {
			a.writeError(w, r, badRequest("", "%s [base]/%s needs search parameters that select the resource (a conditional %s)", r.Method, typ, strings.ToLower(r.Method)))
			return
		}
		target = typ + "?" + r.URL.RawQuery
	}
	if a.cfg.Conditional == nil {
		a.writeError(w, r, notSupported("conditional interactions and PATCH are not supported by this server"))
		return
	}
	if r.Method == http.MethodPatch {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/json-patch+json") {
			a.writeError(w, r, &httpError{status: 415, code: "not-supported", detail: DetailUnsupportedType,
				msg: "PATCH takes a JSON Patch document (Content-Type application/json-patch+json); FHIRPath Patch is not supported"})
			return
		}
	}
	var body []byte
	if r.Method != http.MethodDelete {
		var err error
		if body, err = a.readBody(w, r); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	a.cfg.Conditional.Conditional(w, r, ConditionalRequest{Account: req.account, Method: r.Method, URL: target,
		IfMatch: r.Header.Get("If-Match"), Body: body})
}
