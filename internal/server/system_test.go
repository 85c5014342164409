package server_test

import (
	"testing"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// TestBootstrapAccounts: the first start creates account default; a restart
// keeps the data and does not re-create anything.
func TestBootstrapAccounts(t *testing.T) {
	dir := t.TempDir()
	// One store for all three starts (a fresh schema per New on PostgreSQL).
	st := servertest.StoreFor(t, servertest.Engine(t))
	in := servertest.New(t, server.Options{DataDir: dir, Store: st})
	in.Do(t, "GET", "/fhir/default/metadata", nil).Want(t, 200)
	in.Do(t, "GET", "/management/accounts/default", nil).Want(t, 200)
	in.Do(t, "PUT", "/fhir/default/Patient/keep", `{"resourceType":"Patient","id":"keep"}`).Want(t, 201)
	// Deleting default is allowed, and a restart must not bring it back
	// (default is created on the first start only).
	in.Do(t, "PUT", "/management/accounts/other", nil).Want(t, 201)
	in.Close()

	again := servertest.New(t, server.Options{DataDir: dir, Store: st})
	again.Do(t, "GET", "/fhir/default/Patient/keep", nil).Want(t, 200)
	again.Do(t, "GET", "/fhir/other/metadata", nil).Want(t, 200)
	again.Do(t, "DELETE", "/management/accounts/default", nil).Want(t, 204)
	again.Close()

	third := servertest.New(t, server.Options{DataDir: dir, Store: st})
	third.Do(t, "GET", "/fhir/default/metadata", nil).Outcome(t, 404)
	third.Do(t, "GET", "/fhir/other/metadata", nil).Want(t, 200)
}

// TestSystemAccountNotWritableByClients: the system account holds the audit
// trail of key events (DESIGN.md §4). FHIR clients must not be able to
// forge, change or delete its AuditEvents.
func TestSystemAccountNotWritableByClients(t *testing.T) {
	in := servertest.New(t, server.Options{})
	forged := `{"resourceType":"AuditEvent","id":"forged","type":{"code":"x"},"recorded":"2020-01-01T00:00:00Z",` +
		`"agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`
	writes := []struct{ method, target, body string }{
		{"PUT", "/fhir/system/AuditEvent/forged", forged},
		{"POST", "/fhir/system/AuditEvent", forged},
		{"POST", "/fhir/system/Patient", `{"resourceType":"Patient"}`},
	}
	for _, w := range writes {
		r := in.Do(t, w.method, w.target, w.body)
		if r.Status < 300 {
			t.Errorf("%s %s → %d: FHIR clients can write into the reserved system account that holds "+
				"the key-event audit trail (forge, overwrite or delete AuditEvents)", w.method, w.target, r.Status)
		}
		if r.Status >= 500 {
			t.Fatalf("%s", r)
		}
	}
	in.Do(t, "GET", "/fhir/system/AuditEvent?_count=1", nil).Want(t, 200)
	in.Do(t, "DELETE", "/management/accounts/system", nil).Want(t, 400)
	r := in.Do(t, "DELETE", "/fhir/system/AuditEvent/anything", nil)
	if r.Status < 300 || r.Status >= 500 {
		t.Errorf("DELETE in the system account: %s", r)
	}
}
