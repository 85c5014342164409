package multinode_test

import (
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
)

// TestWrongServiceKeyNodeCannotTakeAccountsDown: a node started on the
// shared database without the cluster's service key (a fresh data
// directory) cannot unwrap any account. Its failure must stay its own: the
// other nodes keep serving, and the stored key status is not changed.
func TestWrongServiceKeyNodeCannotTakeAccountsDown(t *testing.T) {
	db := pgtest.FreshSchema(t)
	good := servertest.New(t, server.Options{Store: db, KeyCheckInterval: interval})
	r := good.Do(t, "POST", "/fhir/default/Patient", patient("Keyed", "")).Want(t, 201)
	id, _ := r.JSON(t)["id"].(string)

	bad := servertest.New(t, server.Options{Store: db, KeyCheckInterval: interval}) // its own, different service key
	br := bad.Do(t, "GET", "/fhir/default/Patient/"+id, nil)
	t.Logf("node without the service key answers: %s", br)
	if br.Status == 200 {
		t.Fatal("a node with another service key read the data")
	}
	if br.Status != 500 {
		t.Errorf("a node's own missing service key must be a server error (500), not the account's lost key access: %s", br)
	}
	// The good node keeps serving, now and after a check interval.
	for _, wait := range []bool{false, true} {
		if wait { // let both monitors run
			time.Sleep(2 * interval)
		}
		if r := good.Do(t, "GET", "/fhir/default/Patient/"+id, nil); r.Status != 200 {
			t.Fatalf("the node with the right service key stopped serving after the other failed: %s", r)
		}
		enc := good.Do(t, "GET", "/management/accounts/default", nil).Want(t, 200).JSON(t)["encryption"].(map[string]any)
		if enc["keyStatus"] != "Active" {
			t.Fatalf("stored key status changed by the misconfigured node: %v", enc)
		}
	}
}
