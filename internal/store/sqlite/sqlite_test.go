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

// TestStore runs the shared suite with the default token merging, with a
// merge after every commit (Lookup reads the token index), and with no
// merges at all (Lookup reads pending tokens from the current rows).
func TestStore(t *testing.T) {
	for _, c := range []struct {
		name string
		opts sqlite.Options
	}{
		{"default", sqlite.Options{}},
		{"merge-always", sqlite.Options{MergeEvery: 1}},
		{"merge-never", sqlite.Options{MergeEvery: 1 << 30, MergeIdle: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // mostly waiting on fsync
			storetest.Run(t, storetest.Engine{
				NewDB: func(t *testing.T) storetest.Opener {
					path := filepath.Join(t.TempDir(), "kiln.db")
					return func(t *testing.T) store.Store { return openAt(t, path, c.opts) }
				},
			})
		})
	}
}
