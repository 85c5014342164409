package server_test

import (
	"testing"

	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// forEachEngine runs f once per store engine, as subtests named after the
// engine: SQLite always, PostgreSQL on a fresh schema when
// KILN_TEST_POSTGRES is set (the subtest skips otherwise). store is the
// Options.Store value for the engine. One suite, both engines.
func forEachEngine(t *testing.T, f func(t *testing.T, store string)) {
	for _, e := range servertest.Engines() {
		t.Run(e, func(t *testing.T) { f(t, servertest.StoreFor(t, e)) })
	}
}
