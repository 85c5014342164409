package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
	"github.com/kilnhealth/kiln/internal/store/storetest"
)

// TestVersionCacheSuite runs the shared suite with the version cache on
// (one handle per database, as kiln serve uses it).
func TestVersionCacheSuite(t *testing.T) {
	storetest.Run(t, storetest.Engine{NewDB: func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func(t *testing.T) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(dir, "kiln.db"), sqlite.Options{VersionCache: 64})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}, SkipTwoHandles: true})
}

// TestVersionCacheNeverStale: while writers update a few resources, every
// read returns a version at least as new as the last one acknowledged
// before the read began.
func TestVersionCacheNeverStale(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kiln.db"), sqlite.Options{VersionCache: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	const n = 12 // more resources than cache slots: eviction is exercised too
	var acked [n]atomic.Int64
	write := func(i int, v int64) error {
		ref := store.Ref{Type: "Patient", ID: fmt.Sprint(i)}
		_, err := s.Commit(ctx, "acme", []store.Write{{IfVersion: v - 1, Version: store.Version{Type: ref.Type, ID: ref.ID,
			VersionID: v, LastUpdated: time.Now(), Body: []byte(fmt.Sprint(v))}}})
		return err
	}
	for i := 0; i < n; i++ {
		if err := write(i, 1); err != nil {
			t.Fatal(err)
		}
		acked[i].Store(1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (w*5 + j) % n
				if w != i%3 {
					continue // each resource has one writer
				}
				v := acked[i].Load() + 1
				if err := write(i, v); err != nil {
					t.Error(err)
					return
				}
				acked[i].Store(v)
			}
		}(w)
	}
	deadline := time.Now().Add(2 * time.Second)
	reads := 0
	for time.Now().Before(deadline) {
		i := reads % n
		floor := acked[i].Load()
		v, err := s.Current(ctx, "acme", store.Ref{Type: "Patient", ID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		if v.VersionID < floor {
			t.Fatalf("read version %d of Patient/%d after version %d was acknowledged", v.VersionID, i, floor)
		}
		reads++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reads", reads)
}
