package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

func openAt(t testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, storetest.Engine{
		NewDB: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "kiln.db")
			return func(t *testing.T) store.Store { return openAt(t, path, sqlite.Options{}) }
		},
	})
}
