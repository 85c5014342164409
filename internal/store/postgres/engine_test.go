package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
)

func TestMigrationsConcurrentAndIdempotent(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, u, postgres.Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	again := open(t, u) // a later start finds the schema in place
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, maxVersion int
	if err := conn.QueryRow(ctx, `SELECT count(*), max(version) FROM kiln_schema_migrations`).Scan(&rows, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if rows != maxVersion || rows < 1 {
		t.Errorf("kiln_schema_migrations has %d rows up to version %d; each step must be recorded once", rows, maxVersion)
	}
	// Every handle works on the one schema.
	mustAccount(t, stores[0], "a")
	if _, err := again.GetAccount(ctx, "a"); err != nil {
		t.Errorf("GetAccount through another handle: %v", err)
	}

	// A schema newer than the binary is refused with a clear message.
	if _, err := conn.Exec(ctx, `INSERT INTO kiln_schema_migrations (version, description) VALUES (9999, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, u, postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Errorf("Open on a newer schema: err = %v, want a refusal naming the version", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := postgres.Open(ctx, "postgres://u:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", postgres.Options{}); err == nil {
		t.Error("Open of an unreachable server succeeded")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if _, err := postgres.Open(ctx, "postgres://%zz", postgres.Options{}); err == nil {
		t.Error("Open of a malformed URL succeeded")
	}
	u := baseURL(t) + "&search_path=kiln_no_such_schema"
	if _, err := postgres.Open(ctx, u, postgres.Options{}); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("Open with a missing schema: %v", err)
	}
}

// A creator that loses the race on a new resource's pointer row after both
// passed the precondition check gets ErrConflict (the unique-violation
// path), deterministically: a manual transaction plays the winner.
func TestConflictTranslation(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	s := open(t, u)
	mustAccount(t, s, "a")

	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO kiln_current (account, type, id, version_id, seq, deleted) VALUES ('a', 'Patient', 'p', 1, 0, false)`); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := s.Commit(ctx, "a", []store.Write{write("p", 1, 0, "x")})
		res <- err
	}()
	select {
	case err := <-res:
		t.Fatalf("Commit did not wait for the competing creator: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, store.ErrConflict) {
		t.Fatalf("losing creator: err = %v, want ErrConflict", err)
	}

	// A duplicate (type, id, versionId) with NoCheck is a conflict too.
	if _, err := s.Commit(ctx, "a", []store.Write{write("q", 1, store.NoCheck, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, "a", []store.Write{write("q", 1, store.NoCheck, "y")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate versionId: err = %v, want ErrConflict", err)
	}
	if v, _ := s.Current(ctx, "a", store.Ref{Type: "Patient", ID: "q"}); string(v.Body) != "x" {
		t.Errorf("failed commit changed the current body to %q", v.Body)
	}
}

// Conditional creates racing on two handles (two nodes) yield one resource.
func TestRacingCreatesAcrossHandles(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	h := []*postgres.Store{open(t, u), open(t, u)}
	mustAccount(t, h[0], "a")
	for round := range 5 {
		id := fmt.Sprintf("r%d", round)
		var ok, conflict atomic.Int32
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				_, err := h[g%2].Commit(ctx, "a", []store.Write{write(id, 1, 0, fmt.Sprint(g), "tok")})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflict.Add(1)
				default:
					t.Errorf("racing create: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || conflict.Load() != 7 {
			t.Errorf("round %d: %d creates succeeded and %d conflicted, want 1 and 7", round, ok.Load(), conflict.Load())
		}
	}
	n, err := h[1].CountHistory(ctx, "a", store.HistoryQuery{})
	if err != nil || n != 5 {
		t.Errorf("history count = %d, %v; want 5", n, err)
	}
}

// Seq is in commit order: once a reader has seen Seq n, no commit with a
// smaller Seq can appear later. Writers on two handles commit while a
// reader checks that every newly visible Seq is above everything it saw.
func TestSeqCommitOrder(t *testing.T) {
	u := freshSchema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := []*postgres.Store{open(t, u), open(t, u)}
	mustAccount(t, h[0], "a")
	var wg sync.WaitGroup
	var next atomic.Int64
	for g := range 6 {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := fmt.Sprintf("w%d", next.Add(1))
				if _, err := h[g%2].Commit(ctx, "a", []store.Write{write(id, 1, 0, "x")}); err != nil && ctx.Err() == nil {
					t.Errorf("commit: %v", err)
					return
				}
			}
		})
	}
	seen := map[int64]bool{}
	var high int64
	deadline := time.Now().Add(1500 * time.Millisecond)
	rounds := 0
	for time.Now().Before(deadline) {
		vs, err := h[1].History(ctx, "a", store.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		newHigh := high
		for _, v := range vs {
			if !seen[v.Seq] {
				if v.Seq <= high {
					t.Fatalf("Seq %d became visible after Seq %d had been seen: not commit order", v.Seq, high)
				}
				seen[v.Seq] = true
				newHigh = max(newHigh, v.Seq)
			}
		}
		high = newHigh
		rounds++
	}
	cancel()
	wg.Wait()
	if len(seen) < 20 {
		t.Errorf("only %d commits seen in %d rounds: the test did not exercise concurrency", len(seen), rounds)
	}
}

func TestLockAcrossHandles(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	h1, h2 := open(t, u), open(t, u)

	unlock, err := h1.Lock(ctx, "cond:Patient?identifier=x")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = h2.Lock(short, "cond:Patient?identifier=x")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second handle took a held lock: err = %v", err)
	}
	// Other names are independent.
	u2, err := h2.Lock(ctx, "another")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	got := make(chan func(), 1)
	go func() {
		un, err := h2.Lock(ctx, "cond:Patient?identifier=x")
		if err != nil {
			t.Error(err)
			un = func() {}
		}
		got <- un
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("lock granted while held")
	default:
	}
	unlock()
	unlock() // idempotent
	select {
	case un := <-got:
		un()
	case <-time.After(5 * time.Second):
		t.Fatal("lock not granted after unlock")
	}

	// Closing a holder releases its locks on the server.
	h3 := open(t, u)
	if _, err := h3.Lock(ctx, "held-by-closed"); err != nil {
		t.Fatal(err)
	}
	h3.Close()
	short, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	un, err := h2.Lock(short, "held-by-closed")
	if err != nil {
		t.Fatalf("lock of a closed handle was not released: %v", err)
	}
	un()
}

// Many goroutines on two handles take one lock; the critical section is
// never shared, and the lock pool is not exhausted by waiters.
func TestLockMutualExclusion(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	h := []*postgres.Store{open(t, u), open(t, u)}
	var inside, maxInside, total atomic.Int32
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			for range 5 {
				unlock, err := h[g%2].Lock(ctx, "one")
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				total.Add(1)
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if maxInside.Load() != 1 || total.Load() != 200 {
		t.Errorf("max holders %d (want 1), sections %d (want 200)", maxInside.Load(), total.Load())
	}
}

func TestCloseFailsPendingLock(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	h1, h2 := open(t, u), open(t, u)
	unlock, err := h1.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	res := make(chan error, 1)
	go func() {
		_, err := h2.Lock(ctx, "x")
		res <- err
	}()
	time.Sleep(100 * time.Millisecond)
	h2.Close()
	select {
	case err := <-res:
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("pending Lock after Close: err = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending Lock did not end on Close")
	}
	if _, err := h2.GetAccount(ctx, "x"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("call after Close: err = %v, want ErrClosed", err)
	}
}

// Account changes on one node reach a subscriber on another through
// LISTEN/NOTIFY, only after commit, and a failed CAS sends nothing.
func TestSubscribeAccounts(t *testing.T) {
	u := freshSchema(t)
	ctx, cancel := context.WithCancel(context.Background())
	h1, h2 := open(t, u), open(t, u)
	ch, err := h2.SubscribeAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(what, want string) {
		t.Helper()
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("%s: notified %q, want %q", what, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no notification", what)
		}
	}
	a := mustAccount(t, h1, "acct-1")
	expect("create", "acct-1")
	if _, err := h1.UpdateAccount(ctx, "acct-1", []byte("ring2"), a.Rev+5); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale rev: %v", err)
	}
	if _, err := h1.UpdateAccount(ctx, "acct-1", []byte("ring2"), a.Rev); err != nil {
		t.Fatal(err)
	}
	expect("update (and nothing for the failed CAS before it)", "acct-1")
	if err := h1.DeleteAccount(ctx, "acct-1"); err != nil {
		t.Fatal(err)
	}
	expect("delete", "acct-1")
	cancel()
	select {
	case _, open := <-ch:
		if open {
			t.Error("unexpected notification after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}

	// With notifications off, subscribing fails clearly.
	s, err := postgres.Open(context.Background(), u, postgres.Options{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SubscribeAccounts(context.Background()); err == nil {
		t.Error("SubscribeAccounts with NoNotify succeeded")
	}
}

// A subscriber whose connection is killed reconnects and sends "" so the
// reader reloads everything, then carries on.
func TestSubscribeAccountsReconnects(t *testing.T) {
	u := freshSchema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := open(t, u)
	ch, err := h.SubscribeAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin(t, u, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN `+postgres.NotifyChannel+`' AND pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'`)
	select {
	case got := <-ch:
		if got != "" {
			t.Fatalf("after reconnect got %q, want the resync signal \"\"", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no resync signal after the listening connection was killed")
	}
	mustAccount(t, h, "after-reconnect")
	for {
		select {
		case got := <-ch:
			if got == "after-reconnect" {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no notification after reconnect")
		}
	}
}

// A commit of many resources with many tokens each is grouped back into
// each resource's token array: every token is found, and a token given
// twice is stored once.
func TestCommitLargeTokenSets(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	s := open(t, u)
	mustAccount(t, s, "a")
	var writes []store.Write
	for i := range 30 {
		w := write(fmt.Sprintf("p%d", i), 1, 0, "x")
		for j := range 60 { // 1800 tokens in one commit
			w.Tokens = append(w.Tokens, fmt.Appendf(nil, "tok-%d-%d", i%3, j))
		}
		w.Tokens = append(w.Tokens, w.Tokens[0]) // duplicates are stored once
		writes = append(writes, w)
	}
	if _, err := s.Commit(ctx, "a", writes); err != nil {
		t.Fatal(err)
	}
	refs, err := s.Lookup(ctx, "a", store.Match{Clauses: [][][]byte{{[]byte("tok-1-59")}}})
	if err != nil || len(refs) != 10 {
		t.Fatalf("Lookup after the commit = %d refs, %v; want 10", len(refs), err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT cardinality(tokens) FROM kiln_current WHERE account = 'a' AND type = 'Patient' AND id = 'p0'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 60 {
		t.Fatalf("p0 has %d tokens stored, want its 60 distinct ones", n)
	}
	// A second commit replaces them (the UPDATE path).
	for i := range writes {
		writes[i].Version.VersionID, writes[i].IfVersion = 2, 1
	}
	if _, err := s.Commit(ctx, "a", writes); err != nil {
		t.Fatal(err)
	}
	if refs, _ := s.Lookup(ctx, "a", store.Match{Clauses: [][][]byte{{[]byte("tok-1-59")}}}); len(refs) != 10 {
		t.Fatalf("Lookup after the second commit = %d refs, want 10", len(refs))
	}
}

// Commit rejects malformed writes with an error before touching the
// database.
func TestCommitValidation(t *testing.T) {
	s := open(t, freshSchema(t))
	mustAccount(t, s, "a")
	bad := []store.Write{
		{Version: store.Version{Type: "", ID: "x", VersionID: 1}},
		{Version: store.Version{Type: "Patient", ID: "x", VersionID: 0}},
		{Version: store.Version{Type: "Patient", ID: "x\x00y", VersionID: 1}},
		{Version: store.Version{Type: "Patient", ID: "x", VersionID: 1}, IfVersion: -7},
		{Version: store.Version{Type: "Patient", ID: "x", VersionID: 1}, Sorts: []store.SortValue{{}}},
	}
	for i, w := range bad {
		if _, err := s.Commit(context.Background(), "a", []store.Write{w}); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("bad write %d: err = %v, want a validation error", i, err)
		}
	}
	if n, _ := s.CountHistory(context.Background(), "a", store.HistoryQuery{}); n != 0 {
		t.Errorf("rejected writes stored %d versions", n)
	}
}
