package multinode_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
)

// TestWrongServiceKeyNodeCannotTakeAccountsDown: a node started on the
// shared database without the cluster's service key (a fresh data
// directory) cannot unwrap any account: it refuses to start, and the other
// nodes keep serving with the stored key status unchanged.
func TestWrongServiceKeyNodeCannotTakeAccountsDown(t *testing.T) {
	db := pgtest.FreshSchema(t)
	good := servertest.New(t, server.Options{Store: db, KeyCheckInterval: interval})
	r := good.Do(t, "POST", "/fhir/default/Patient", patient("Keyed", "")).Want(t, 201)
	id, _ := r.JSON(t)["id"].(string)

	// A node with its own, different service key refuses to start, naming
	// the key file it needs.
	bad, err := server.New(context.Background(), server.Options{Store: db, DataDir: t.TempDir(), VaultAddr: "off", KeyCheckInterval: interval,
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		bad.Close()
		t.Fatal("a node without the cluster's service key started")
	}
	if !strings.Contains(err.Error(), "service.key") {
		t.Errorf("the start-up error does not name the service key file: %v", err)
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
