package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// Concurrent commits share transactions, and one caller's failed
// precondition in a group does not fail the others.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "kiln.db"), sqlite.Options{})
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	taken := store.Ref{Type: "Patient", ID: "taken"}
	if _, err := s.Commit(ctx, "acme", []store.Write{{Version: store.Version{Type: "Patient", ID: "taken", VersionID: 1, LastUpdated: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	const workers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ref := store.Ref{Type: "Patient", ID: fmt.Sprintf("w%d-%d", w, i)}
				if w%2 == 1 {
					ref = taken // must fail: it exists
				}
				_, err := s.Commit(ctx, "acme", []store.Write{{
					Version:   store.Version{Type: ref.Type, ID: ref.ID, VersionID: 1, LastUpdated: time.Now(), Body: []byte("b")},
					IfVersion: 0,
				}})
				if w%2 == 1 && !errors.Is(err, store.ErrConflict) {
					errs <- fmt.Errorf("conflicting create: %v, want ErrConflict", err)
				}
				if w%2 == 0 && err != nil {
					errs <- fmt.Errorf("create %v: %v", ref, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	groups, reqs := st.Groups-before.Groups, st.Requests-before.Requests
	t.Logf("%d commits in %d transactions", reqs, groups)
	if reqs != workers*each {
		t.Errorf("%d requests counted, want %d", reqs, workers*each)
	}
	// How much grouping happens depends on fsync latency (a fast disk drains
	// the queue between arrivals); some must, with 16 callers waiting.
	if groups >= reqs {
		t.Errorf("group commit is not grouping: %d transactions for %d commits", groups, reqs)
	}
	n, _ := s.CountHistory(ctx, "acme", store.HistoryQuery{})
	if n != 1+workers/2*each {
		t.Errorf("%d versions stored, want %d", n, 1+workers/2*each)
	}
}

// Close never leaves a caller hanging: in-flight commits finish or fail
// with ErrClosed.
func TestCloseUnderLoad(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "kiln.db"), sqlite.Options{})
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := s.Commit(ctx, "acme", []store.Write{{Version: store.Version{Type: "Patient", ID: fmt.Sprint(w, "-", i), VersionID: 1, LastUpdated: time.Now()}}})
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("committers hang after Close")
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

// A cancelled context stops a Commit before it is queued.
func TestCommitCancelled(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "kiln.db"), sqlite.Options{})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err := s.Commit(ctx, "acme", []store.Write{{Version: store.Version{Type: "Patient", ID: "p", VersionID: 1, LastUpdated: time.Now()}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a cancelled context: %v", err)
	}
	if _, err := s.Current(context.Background(), "acme", store.Ref{Type: "Patient", ID: "p"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancelled commit was applied: %v", err)
	}
}

func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		path string
		opts sqlite.Options
		want string
	}{
		{"empty path", "", sqlite.Options{}, "invalid database path"},
		{"query in path", filepath.Join(dir, "a.db?mode=memory"), sqlite.Options{}, "invalid database path"},
		{"synchronous off", filepath.Join(dir, "b.db"), sqlite.Options{Synchronous: "OFF"}, "Synchronous must be FULL or NORMAL"},
		{"odd page size", filepath.Join(dir, "c.db"), sqlite.Options{PageSize: 3000}, "PageSize"},
		{"missing directory", filepath.Join(dir, "nope", "d.db"), sqlite.Options{}, "sqlite: open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := sqlite.Open(ctx, c.path, c.opts)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: %v, want %q", err, c.want)
			}
		})
	}
}

// Reopening keeps the data and the schema; a database written by a newer
// build is refused rather than misread.
func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiln.db")
	s := openAt(t, path, sqlite.Options{Synchronous: "normal"})
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v, ps int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	db.QueryRow("PRAGMA page_size").Scan(&ps)
	if v != sqlite.SchemaVersion() || ps != 2048 {
		t.Errorf("user_version %d page_size %d, want %d and 2048", v, ps, sqlite.SchemaVersion())
	}

	s = openAt(t, path, sqlite.Options{})
	if _, err := s.GetAccount(ctx, "acme"); err != nil {
		t.Errorf("account lost on reopen: %v", err)
	}
	s.Close()

	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", sqlite.SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(ctx, path, sqlite.Options{}); err == nil {
		s.Close()
		t.Error("Open accepted a schema newer than this build")
	} else if !strings.Contains(err.Error(), "not supported") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

// Bad writes are refused with an error, before anything is queued.
func TestCommitRejectsBadWrites(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "kiln.db"), sqlite.Options{})
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, w := range map[string]store.Write{
		"no type":      {Version: store.Version{ID: "x", VersionID: 1, LastUpdated: now}},
		"no id":        {Version: store.Version{Type: "Patient", VersionID: 1, LastUpdated: now}},
		"version 0":    {Version: store.Version{Type: "Patient", ID: "x", LastUpdated: now}},
		"IfVersion -2": {Version: store.Version{Type: "Patient", ID: "x", VersionID: 1, LastUpdated: now}, IfVersion: -2},
		"empty token":  {Version: store.Version{Type: "Patient", ID: "x", VersionID: 1, LastUpdated: now}, Tokens: [][]byte{{}}},
		"long token":   {Version: store.Version{Type: "Patient", ID: "x", VersionID: 1, LastUpdated: now}, Tokens: [][]byte{make([]byte, 256)}},
		"empty slot":   {Version: store.Version{Type: "Patient", ID: "x", VersionID: 1, LastUpdated: now}, Sorts: []store.SortValue{{Value: []byte("v")}}},
	} {
		if _, err := s.Commit(ctx, "acme", []store.Write{w}); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: Commit = %v, want a validation error", name, err)
		}
	}
	if n, _ := s.CountHistory(ctx, "acme", store.HistoryQuery{}); n != 0 {
		t.Errorf("%d versions stored by rejected writes", n)
	}
}
