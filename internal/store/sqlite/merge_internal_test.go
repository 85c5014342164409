package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

func tok(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

// countPostings counts the (token, stamp) pairs in every segment of the
// file at path.
func countPostings(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT ixs FROM postings")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			t.Fatal(err)
		}
		ixs, err := decodeIxs(nil, blob)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ixs)
	}
	return n
}

// Lookup answers the same before and after pending tokens are flushed
// into a segment, on the handle that wrote them and on another handle; the
// flush really moves them into the posting segments, and stale postings
// of updated resources never match.
func TestMergeKeepsLookup(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiln.db")
	never := Options{MergeEvery: 1 << 30, MergeIdle: -1}
	s, err := Open(ctx, path, never)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := Open(ctx, path, never)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	w := func(id string, vid, ifv int64, deleted bool, tokens ...string) store.Write {
		var tk [][]byte
		for _, x := range tokens {
			tk = append(tk, tok(x))
		}
		return store.Write{Version: store.Version{Type: "Patient", ID: id, VersionID: vid, LastUpdated: time.Now(), Deleted: deleted}, IfVersion: ifv, Tokens: tk}
	}
	commit := func(ws ...store.Write) {
		t.Helper()
		if _, err := s.Commit(ctx, "acme", ws); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		commit(w(fmt.Sprint("p", i), 1, 0, false, "all", fmt.Sprint("mod", i%3)))
	}
	merge := func() {
		t.Helper()
		if err := s.do(ctx, false, func(tx *wtx) error { _, err := tx.flush(); return err }); err != nil {
			t.Fatal(err)
		}
	}
	queries := map[string]store.Match{
		"all":       {Clauses: [][][]byte{{tok("all")}}},
		"mod0":      {Clauses: [][][]byte{{tok("mod0")}}},
		"mod1|new":  {Clauses: [][][]byte{{tok("mod1"), tok("new")}}},
		"all&mod2":  {Clauses: [][][]byte{{tok("all")}, {tok("mod2")}}},
		"new":       {Clauses: [][][]byte{{tok("new")}}},
		"no clause": {},
	}
	snapshot := func(st *Store) map[string][]string {
		out := map[string][]string{}
		for name, m := range queries {
			refs, err := st.Lookup(ctx, "acme", m)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refs {
				out[name] = append(out[name], r.ID)
			}
		}
		return out
	}
	check := func(stage string, want map[string][]string) {
		t.Helper()
		for _, st := range []*Store{s, other} {
			got := snapshot(st)
			for name := range queries {
				if !slices.Equal(got[name], want[name]) {
					t.Errorf("%s: %s = %v, want %v", stage, name, got[name], want[name])
				}
			}
		}
	}

	if n := countPostings(t, path); n != 0 {
		t.Fatalf("%d postings before any flush, want 0 (tokens are deferred)", n)
	}
	before := snapshot(s)
	if len(before["all"]) != 40 || len(before["mod0"]) != 14 {
		t.Fatalf("pending lookup: all=%d mod0=%d", len(before["all"]), len(before["mod0"]))
	}
	check("pending", before)
	merge()
	if n := countPostings(t, path); n != 80 {
		t.Errorf("%d postings after flush, want 80", n)
	}
	check("merged", before)

	// Changes after the merge: p0 moves to "new", p1 is deleted, p2 is
	// updated with the same tokens. Pending again, then merged again.
	commit(w("p0", 2, 1, false, "new"), w("p1", 2, 1, true), w("p2", 2, 1, false, "all", "mod2"))
	want := snapshot(s)
	if !slices.Equal(want["new"], []string{"p0"}) || slices.Contains(want["all"], "p0") || slices.Contains(want["all"], "p1") {
		t.Fatalf("pending updates not seen: %v", want)
	}
	check("updated, pending", want)
	merge()
	check("updated, merged", want)
	// The old segment keeps its (now stale) postings until compaction; the
	// new one holds p0's and p2's new states.
	if n := countPostings(t, path); n != 80+1+2 {
		t.Errorf("%d postings after the second flush, want 83", n)
	}

	// ReplaceIndex takes effect at once (pending), and after a flush.
	if err := s.ReplaceIndex(ctx, "acme", store.Ref{Type: "Patient", ID: "p3"}, 1, [][]byte{tok("new")}, nil); err != nil {
		t.Fatal(err)
	}
	want["new"] = []string{"p0", "p3"}
	want["all"] = slices.DeleteFunc(want["all"], func(id string) bool { return id == "p3" })
	want["mod0"] = slices.DeleteFunc(want["mod0"], func(id string) bool { return id == "p3" })
	want["mod1|new"] = append(want["mod1|new"], "p3")
	slices.Sort(want["mod1|new"])
	check("after ReplaceIndex", want)
	merge()
	check("after ReplaceIndex, flushed", want)
}

// Compaction merges a size class of segments into one, drops the stamps
// of superseded and deleted states, and keeps every answer.
func TestCompactionDropsStale(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiln.db")
	s, err := Open(ctx, path, Options{MergeEvery: 1 << 30, MergeIdle: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(ctx, store.Account{Name: "other", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	flush := func() {
		t.Helper()
		if err := s.do(ctx, false, func(tx *wtx) error { _, err := tx.flush(); return err }); err != nil {
			t.Fatal(err)
		}
	}
	version := map[string]int64{}
	put := func(account, id string, deleted bool, tokens ...string) {
		t.Helper()
		var tk [][]byte
		for _, x := range tokens {
			tk = append(tk, tok(x))
		}
		key := account + "/" + id
		version[key]++
		w := store.Write{Version: store.Version{Type: "Patient", ID: id, VersionID: version[key], LastUpdated: time.Now(), Deleted: deleted}, IfVersion: store.NoCheck, Tokens: tk}
		if _, err := s.Commit(ctx, account, []store.Write{w}); err != nil {
			t.Fatal(err)
		}
	}
	// fanIn flushes of 10 resources each in both accounts; each flush also
	// updates or deletes resources of the previous ones.
	for round := range fanIn {
		for i := range 10 {
			id := fmt.Sprintf("r%d-%d", round, i)
			put("acme", id, false, "all", fmt.Sprint("round", round))
			put("other", id, false, "all")
		}
		if round > 0 {
			prev := fmt.Sprintf("r%d-", round-1)
			put("acme", prev+"0", false, "moved")    // superseded: loses all and roundN
			put("acme", prev+"1", true)              // deleted
			put("acme", prev+"2", false, "all", "x") // updated, still all
		}
		flush()
	}
	find := func(x string) int {
		refs, err := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok(x)}}})
		if err != nil {
			t.Fatal(err)
		}
		return len(refs)
	}
	wantAll, wantMoved, wantX := 10*fanIn-2*(fanIn-1), fanIn-1, fanIn-1
	check := func(stage string) {
		t.Helper()
		if got := find("all"); got != wantAll {
			t.Errorf("%s: all matches %d, want %d", stage, got, wantAll)
		}
		if got := find("moved"); got != wantMoved {
			t.Errorf("%s: moved matches %d, want %d", stage, got, wantMoved)
		}
		if got := find("x"); got != wantX {
			t.Errorf("%s: x matches %d, want %d", stage, got, wantX)
		}
		refs, err := s.Lookup(ctx, "other", store.Match{Clauses: [][][]byte{{tok("all")}}})
		if err != nil || len(refs) != 10*fanIn {
			t.Errorf("%s: other account all = %d, %v", stage, len(refs), err)
		}
	}
	check("before compaction")
	before := countPostings(t, path)
	var merges int
	if err := s.do(ctx, false, func(tx *wtx) error { var err error; merges, err = tx.compact(); return err }); err != nil {
		t.Fatal(err)
	}
	if merges != 1 {
		t.Fatalf("%d compactions, want 1", merges)
	}
	var segs int
	if err := s.rdb.QueryRow("SELECT count(*) FROM segments").Scan(&segs); err != nil || segs != 1 {
		t.Fatalf("%d segments after compaction (%v), want 1", segs, err)
	}
	check("after compaction")
	// Live postings: acme has wantAll "all" + 8 roundN-ish... count them
	// from the answers: every live state's tokens, nothing else.
	live := wantAll + wantMoved + wantX + 10*fanIn /* other: all */
	// round tokens: each live, non-superseded resource keeps its roundN.
	live += 10*fanIn - 2*(fanIn-1) - (fanIn - 1) // r*-2 updated without roundN
	if after := countPostings(t, path); after != live || after >= before {
		t.Errorf("postings: %d before, %d after compaction, want %d live", before, after, live)
	}
}

// A database at schema 1 (tokens written at commit) migrates to deferred
// indexing with its tokens intact.
func TestMigrateFromV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiln.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"PRAGMA page_size = 2048", "PRAGMA journal_mode = WAL", migrations[0].sql, "PRAGMA user_version = 1",
		"INSERT INTO accounts (id, name, created_at, data, rev) VALUES (1, 'acme', 0, x'00', 1)",
		"INSERT INTO versions (seq, acct, type, id, version_id, last_updated, deleted, body) VALUES (7, 1, 'Patient', 'p', 1, 0, 0, x'01')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	list := encodeList([][]byte{tok("old")})
	if _, err := db.Exec("INSERT INTO current VALUES (1, 'Patient', 'p', 1, 7, 0, ?, x'')", list); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO tokens VALUES (1, ?, 'Patient', 'p')", tok("old")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO sorts VALUES (1, ?, 'Patient', 'p', x'5345414c4544')", tok("name")); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(ctx, path, Options{MergeEvery: 1})
	if err != nil {
		t.Fatalf("Open of a schema-1 database: %v", err)
	}
	defer s.Close()
	find := func(x string) []store.Ref {
		refs, err := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok(x)}}})
		if err != nil {
			t.Fatal(err)
		}
		return refs
	}
	if refs := find("old"); len(refs) != 1 {
		t.Errorf("migrated token matches %v", refs)
	}
	p := store.Ref{Type: "Patient", ID: "p"}
	if m, err := s.Sorts(ctx, "acme", tok("name"), []store.Ref{p}); err != nil || string(m[p]) != "SEALED" {
		t.Errorf("migrated sort value = %q, %v", m[p], err)
	}
	if _, err := s.Commit(ctx, "acme", []store.Write{{Version: store.Version{Type: "Patient", ID: "p", VersionID: 2, LastUpdated: time.Now()}, IfVersion: 1, Tokens: [][]byte{tok("new")}}}); err != nil {
		t.Fatal(err)
	}
	if len(find("old")) != 0 || len(find("new")) != 1 {
		t.Errorf("after update: old %v, new %v", find("old"), find("new"))
	}
	v, err := s.Current(ctx, "acme", store.Ref{Type: "Patient", ID: "p"})
	if err != nil || v.Seq <= 7 {
		t.Errorf("Current after migration: %+v, %v", v, err)
	}
}

// Lookups running while merges commit never lose or duplicate a resource
// whose tokens do not change.
func TestLookupDuringMerges(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "kiln.db"), Options{MergeEvery: 8, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "acme", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	const stable = 100
	for i := range stable {
		w := store.Write{Version: store.Version{Type: "Patient", ID: fmt.Sprint("s", i), VersionID: 1, LastUpdated: time.Now()}, Tokens: [][]byte{tok("stable")}}
		if _, err := s.Commit(ctx, "acme", []store.Write{w}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	writerErr := make(chan error, 1)
	go func() {
		defer close(writerErr)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			// New resources, and updates of the stable ones that keep their
			// token, keep pending rows and merges coming.
			ws := []store.Write{
				{Version: store.Version{Type: "Patient", ID: fmt.Sprint("c", i), VersionID: 1, LastUpdated: time.Now()}, Tokens: [][]byte{tok("churn")}},
				{Version: store.Version{Type: "Patient", ID: fmt.Sprint("s", i%stable), VersionID: int64(2 + i/stable), LastUpdated: time.Now()}, IfVersion: store.NoCheck, Tokens: [][]byte{tok("stable"), tok(fmt.Sprint("v", i))}},
			}
			if _, err := s.Commit(ctx, "acme", ws); err != nil {
				writerErr <- err
				return
			}
		}
	}()
	m := store.Match{Clauses: [][][]byte{{tok("stable")}}}
	deadline := time.Now().Add(1500 * time.Millisecond)
	lookups := 0
	for time.Now().Before(deadline) {
		refs, err := s.Lookup(ctx, "acme", m)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != stable {
			t.Fatalf("Lookup during merges found %d stable resources, want %d", len(refs), stable)
		}
		lookups++
	}
	close(done)
	if err := <-writerErr; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.TokenMerges < 3 {
		t.Errorf("only %d merges ran during %d lookups: the test did not exercise them", st.TokenMerges, lookups)
	} else {
		t.Logf("%d lookups across %d merges", lookups, st.TokenMerges)
	}
}
