package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// TestStore runs the shared engine suite: every subtest gets its own schema
// in the database named by KILN_TEST_POSTGRES, and its own handles on it.
func TestStore(t *testing.T) {
	baseURL(t)
	storetest.Run(t, storetest.Engine{
		NewDB: func(t *testing.T) storetest.Opener {
			u := freshSchema(t)
			return func(t *testing.T) store.Store {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				s, err := postgres.Open(ctx, u, postgres.Options{})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			}
		},
		LockAcrossHandles: true,
	})
}
