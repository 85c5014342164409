package rest

import (
	"net/http"

	"github.com/kilnhealth/kiln/internal/resources"
)

// update handles PUT [base]/{type}/{id}: a new version, or creation with
// the client's id; If-Match makes it conditional on the current version.
// An update identical to the current version creates no new version.
func (a *API) update(w http.ResponseWriter, r *http.Request, req *request, typ, id string) {
	want, err := ifMatch(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body, err := a.readBody(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, oc, err := a.res.Update(r.Context(), req.account, typ, id, body, want)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	switch oc {
	case resources.Created:
		a.respondWrite(w, r, req, res, http.StatusCreated, "Created "+typ+"/"+id+".")
	case resources.Unchanged:
		a.respondWrite(w, r, req, res, http.StatusOK, "No change: the update is identical to version "+itoa(res.VersionID)+".")
	default:
		a.respondWrite(w, r, req, res, http.StatusOK, "Updated "+typ+"/"+id+" to version "+itoa(res.VersionID)+".")
	}
}
