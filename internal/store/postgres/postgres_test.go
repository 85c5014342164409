package postgres_test

import (
	"testing"

	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// TestStore runs the shared engine suite: every subtest gets its own schema
// in the database named by KILN_TEST_POSTGRES, and its own handles on it.
func TestStore(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, pgtest.Engine())
}
