package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
)

// TestMigrateTokensToArrays fills a schema-1 database the way the first
// release wrote it (one row per token and per sort value) and checks that
// Open moves the index onto the current rows: lookups, sorts and later
// commits see the same index, and the old tables are gone.
func TestMigrateTokensToArrays(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	if err := postgres.ApplyMigrationsUpTo(ctx, u, 1); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`INSERT INTO kiln_accounts (name, created_at, data, rev) VALUES ('a', now(), 'ring', 1)`,
		`INSERT INTO kiln_versions (account, type, id, version_id, seq, last_updated, deleted, body) VALUES
			('a', 'Patient', 'p1', 1, 1, now(), false, 'b1'), ('a', 'Patient', 'p2', 1, 2, now(), false, 'b2'),
			('a', 'Patient', 'p3', 1, 3, now(), false, 'b3'), ('a', 'Patient', 'p3', 2, 4, now(), true, '')`,
		`INSERT INTO kiln_current (account, type, id, version_id, seq, deleted) VALUES
			('a', 'Patient', 'p1', 1, 1, false), ('a', 'Patient', 'p2', 1, 2, false), ('a', 'Patient', 'p3', 2, 4, true)`,
		`INSERT INTO kiln_tokens (account, token, type, id) VALUES
			('a', 'tok-b', 'Patient', 'p1'), ('a', 'tok-a', 'Patient', 'p1'), ('a', 'tok-b', 'Patient', 'p2')`,
		`INSERT INTO kiln_sorts (account, type, id, slot, value) VALUES
			('a', 'Patient', 'p1', 'slot-2', 'v12'), ('a', 'Patient', 'p1', 'slot-1', 'v11'), ('a', 'Patient', 'p2', 'slot-2', 'v22')`,
		`UPDATE kiln_seq SET value = 4`,
	} {
		admin(t, u, stmt)
	}
	s := open(t, u)
	lookup := func(tokens ...string) []store.Ref {
		t.Helper()
		var clause [][]byte
		for _, tk := range tokens {
			clause = append(clause, []byte(tk))
		}
		refs, err := s.Lookup(ctx, "a", store.Match{Clauses: [][][]byte{clause}})
		if err != nil {
			t.Fatal(err)
		}
		return refs
	}
	p1, p2 := store.Ref{Type: "Patient", ID: "p1"}, store.Ref{Type: "Patient", ID: "p2"}
	if got := lookup("tok-b"); !slices.Equal(got, []store.Ref{p1, p2}) {
		t.Errorf("Lookup(tok-b) = %v, want p1 and p2", got)
	}
	if got := lookup("tok-a", "tok-none"); !slices.Equal(got, []store.Ref{p1}) {
		t.Errorf("Lookup(tok-a|tok-none) = %v, want p1", got)
	}
	for slot, want := range map[string]map[store.Ref]string{
		"slot-1": {p1: "v11"},
		"slot-2": {p1: "v12", p2: "v22"},
	} {
		got, err := s.Sorts(ctx, "a", []byte(slot), []store.Ref{p1, p2})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("Sorts(%s) = %v, want %v", slot, got, want)
		}
		for r, v := range want {
			if string(got[r]) != v {
				t.Errorf("Sorts(%s)[%v] = %q, want %q", slot, r, got[r], v)
			}
		}
	}
	// An update after the migration replaces p2's index.
	w := write("p2", 2, 1, "b2v2", "tok-c")
	if _, err := s.Commit(ctx, "a", []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	if got := lookup("tok-b"); !slices.Equal(got, []store.Ref{p1}) {
		t.Errorf("after the update Lookup(tok-b) = %v, want p1", got)
	}
	if got := lookup("tok-c"); !slices.Equal(got, []store.Ref{p2}) {
		t.Errorf("after the update Lookup(tok-c) = %v, want p2", got)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('kiln_tokens', 'kiln_sorts') AND table_schema = current_schema()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d of kiln_tokens and kiln_sorts are left after the migration", n)
	}
}
