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

func countTokens(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM tokens").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Lookup answers the same before and after pending tokens are merged, on
// the handle that wrote them and on another handle; the merge really moves
// them into the token index.
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
		if err := s.do(ctx, false, func(tx *wtx) error { return tx.merge() }); err != nil {
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

	if n := countTokens(t, path); n != 0 {
		t.Fatalf("%d token rows before any merge, want 0 (tokens are deferred)", n)
	}
	before := snapshot(s)
	if len(before["all"]) != 40 || len(before["mod0"]) != 14 {
		t.Fatalf("pending lookup: all=%d mod0=%d", len(before["all"]), len(before["mod0"]))
	}
	check("pending", before)
	merge()
	if n := countTokens(t, path); n != 80 {
		t.Errorf("%d token rows after merge, want 80", n)
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
	if n := countTokens(t, path); n != 80-2-2+1 {
		t.Errorf("%d token rows after the second merge, want 77", n)
	}

	// ReplaceIndex merges first, then swaps synchronously.
	if err := s.ReplaceIndex(ctx, "acme", store.Ref{Type: "Patient", ID: "p3"}, 1, [][]byte{tok("new")}, nil); err != nil {
		t.Fatal(err)
	}
	want["new"] = []string{"p0", "p3"}
	want["all"] = slices.DeleteFunc(want["all"], func(id string) bool { return id == "p3" })
	want["mod0"] = slices.DeleteFunc(want["mod0"], func(id string) bool { return id == "p3" })
	want["mod1|new"] = append(want["mod1|new"], "p3")
	slices.Sort(want["mod1|new"])
	check("after ReplaceIndex", want)
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
