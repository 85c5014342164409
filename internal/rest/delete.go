package rest

import (
	"net/http"

	"github.com/kilnhealth/kiln/internal/resources"
)

// delete handles DELETE [base]/{type}/{id}: a soft delete. A later read
// gives 410 and history shows the delete. Deleting a missing or deleted
// resource succeeds without a new version.
func (a *API) delete(w http.ResponseWriter, r *http.Request, req *request, typ, id string) {
	want, err := ifMatch(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, oc, err := a.res.Delete(r.Context(), req.account, typ, id, want)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if res.VersionID > 0 {
		w.Header().Set("ETag", etag(res.VersionID))
	}
	msg := "Deleted " + typ + "/" + id + "."
	if oc == resources.Unchanged {
		msg = typ + "/" + id + " was already deleted or never existed; nothing changed."
	}
	if preferReturn(r) == "OperationOutcome" {
		a.writeJSON(w, r, http.StatusOK, outcome("information", "informational", "", msg))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
