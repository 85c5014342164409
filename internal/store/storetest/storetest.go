package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// Opener opens one more handle on the database that Engine.NewDB created.
// Every call must return a new, independent handle (its own connections and
// writer) on the same data. The suite closes each handle it opens exactly
// once, in t.Cleanup; the opener must not close it.
type Opener func(t *testing.T) store.Store

// Engine describes an engine under test.
type Engine struct {
	// NewDB creates a fresh, empty database for one subtest and returns an
	// Opener for handles on it. It registers the removal of the database
	// with t.Cleanup (which runs after the handles are closed). Required.
	NewDB func(t *testing.T) Opener
	// LockAcrossHandles is true when Lock excludes holders on other handles
	// of the same database (engines shared by several nodes, such as
	// PostgreSQL). An embedded engine whose database belongs to one process
	// and whose locks are per handle leaves it false; the suite then checks
	// Lock on one handle only.
	LockAcrossHandles bool
	// SkipTwoHandles leaves out the test of two handles writing one
	// database, for engine configurations that require a single writing
	// handle (SQLite with its version cache on).
	SkipTwoHandles bool
}

// Run runs the whole suite against e, one subtest per behaviour.
func Run(t *testing.T, e Engine) {
	if e.NewDB == nil {
		t.Fatal("storetest: Engine.NewDB is nil")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, e Engine)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotFound", testNotFound},
		{"Preconditions", testPreconditions},
		{"AtomicCommit", testAtomicCommit},
		{"DeleteMarker", testDeleteMarker},
		{"History", testHistory},
		{"SeqIncreasing", testSeqIncreasing},
		{"Lookup", testLookup},
		{"Sorts", testSorts},
		{"ReplaceIndex", testReplaceIndex},
		{"Scan", testScan},
		{"Accounts", testAccounts},
		{"DeleteAccount", testDeleteAccount},
		{"Isolation", testIsolation},
		{"Lock", testLock},
		{"TwoHandles", testTwoHandles},
		{"Concurrency", testConcurrency},
		{"Close", testClose},
	}
	for _, tc := range tests {
		if tc.name == "TwoHandles" && e.SkipTwoHandles {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) })
	}
}

// open creates a fresh database and one handle on it.
func open(t *testing.T, e Engine) (store.Store, Opener) {
	t.Helper()
	opener := e.NewDB(t)
	return handle(t, opener), opener
}

func handle(t *testing.T, o Opener) store.Store {
	t.Helper()
	s := o(t)
	if s == nil {
		t.Fatal("storetest: opener returned nil")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// t0 has microsecond precision, which every engine keeps.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func tok(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func body(ref store.Ref, vid int64) []byte {
	return []byte(fmt.Sprintf("sealed:%s/%s/%d:\x00\xff", ref.Type, ref.ID, vid))
}

func write(ref store.Ref, vid int64, ifv int64, ts time.Time, tokens ...[]byte) store.Write {
	return store.Write{
		Version: store.Version{
			Type: ref.Type, ID: ref.ID, VersionID: vid, LastUpdated: ts, Body: body(ref, vid),
		},
		IfVersion: ifv,
		Tokens:    tokens,
	}
}

func deleteWrite(ref store.Ref, vid int64, ifv int64, ts time.Time) store.Write {
	return store.Write{
		Version:   store.Version{Type: ref.Type, ID: ref.ID, VersionID: vid, LastUpdated: ts, Deleted: true},
		IfVersion: ifv,
	}
}

func mkAccount(t *testing.T, s store.Store, name string) store.Account {
	t.Helper()
	a, err := s.CreateAccount(context.Background(), store.Account{Name: name, CreatedAt: t0, Data: []byte("ring:" + name)})
	if err != nil {
		t.Fatalf("CreateAccount(%q): %v", name, err)
	}
	return a
}

func commit(t *testing.T, s store.Store, account string, ws ...store.Write) []int64 {
	t.Helper()
	seqs, err := s.Commit(context.Background(), account, ws)
	if err != nil {
		t.Fatalf("Commit(%s): %v", account, err)
	}
	if len(seqs) != len(ws) {
		t.Fatalf("Commit returned %d seqs for %d writes", len(seqs), len(ws))
	}
	return seqs
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func checkVersion(t *testing.T, what string, got, want store.Version) {
	t.Helper()
	if got.Type != want.Type || got.ID != want.ID || got.VersionID != want.VersionID || got.Deleted != want.Deleted {
		t.Errorf("%s: got %s/%s v%d deleted=%v, want %s/%s v%d deleted=%v", what,
			got.Type, got.ID, got.VersionID, got.Deleted, want.Type, want.ID, want.VersionID, want.Deleted)
	}
	if !got.LastUpdated.Equal(want.LastUpdated) {
		t.Errorf("%s: LastUpdated %v, want %v", what, got.LastUpdated, want.LastUpdated)
	}
	if got.LastUpdated.Location() != time.UTC {
		t.Errorf("%s: LastUpdated location %v, want UTC", what, got.LastUpdated.Location())
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("%s: Body %q, want %q", what, got.Body, want.Body)
	}
	if want.Seq != 0 && got.Seq != want.Seq {
		t.Errorf("%s: Seq %d, want %d", what, got.Seq, want.Seq)
	}
	if got.Seq <= 0 {
		t.Errorf("%s: Seq %d, want > 0", what, got.Seq)
	}
}

func refsOf(vs []store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.VersionID)
	}
	return out
}

func refStrings(rs []store.Ref) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Type + "/" + r.ID
	}
	return out
}

func testRoundTrip(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	p := store.Ref{Type: "Patient", ID: "p1"}
	w1 := write(p, 1, 0, at(0), tok("a"))
	seq1 := commit(t, s, "acme", w1)[0]
	want1 := w1.Version
	want1.Seq = seq1

	got, err := s.Current(ctx, "acme", p)
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	checkVersion(t, "Current v1", got, want1)

	w2 := write(p, 2, 1, at(1), tok("b"))
	seq2 := commit(t, s, "acme", w2)[0]
	want2 := w2.Version
	want2.Seq = seq2
	if seq2 <= seq1 {
		t.Errorf("seq of v2 %d not after v1 %d", seq2, seq1)
	}
	got, err = s.Current(ctx, "acme", p)
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	checkVersion(t, "Current v2", got, want2)
	for _, want := range []store.Version{want1, want2} {
		got, err := s.VersionOf(ctx, "acme", p, want.VersionID)
		if err != nil {
			t.Fatalf("VersionOf(%d): %v", want.VersionID, err)
		}
		checkVersion(t, fmt.Sprintf("VersionOf(%d)", want.VersionID), got, want)
	}

	// An empty body and a large binary body survive unchanged.
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	q := store.Ref{Type: "Binary", ID: "b1"}
	wb := write(q, 1, 0, at(2))
	wb.Version.Body = big
	commit(t, s, "acme", wb)
	got, err = s.Current(ctx, "acme", q)
	if err != nil || !bytes.Equal(got.Body, big) {
		t.Errorf("large body round trip failed (err %v, len %d)", err, len(got.Body))
	}

	// CurrentMany follows the order of refs and leaves missing refs out.
	vs, err := s.CurrentMany(ctx, "acme", []store.Ref{q, {Type: "Patient", ID: "nope"}, p})
	if err != nil {
		t.Fatalf("CurrentMany: %v", err)
	}
	if g := refsOf(vs); !slices.Equal(g, []string{"Binary/b1/1", "Patient/p1/2"}) {
		t.Errorf("CurrentMany = %v", g)
	}
	if len(vs) == 2 {
		checkVersion(t, "CurrentMany[1]", vs[1], want2)
	}
	vs, err = s.CurrentMany(ctx, "acme", nil)
	if err != nil || len(vs) != 0 {
		t.Errorf("CurrentMany(nil) = %v, %v", vs, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testNotFound(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	p := store.Ref{Type: "Patient", ID: "p1"}
	commit(t, s, "acme", write(p, 1, 0, at(0), tok("a")))

	_, err := s.Current(ctx, "acme", store.Ref{Type: "Patient", ID: "p2"})
	wantErr(t, "Current missing resource", err, store.ErrNotFound)
	_, err = s.Current(ctx, "acme", store.Ref{Type: "Observation", ID: "p1"})
	wantErr(t, "Current same id other type", err, store.ErrNotFound)
	_, err = s.VersionOf(ctx, "acme", p, 2)
	wantErr(t, "VersionOf missing version", err, store.ErrNotFound)
	_, err = s.VersionOf(ctx, "acme", store.Ref{Type: "Patient", ID: "p2"}, 1)
	wantErr(t, "VersionOf missing resource", err, store.ErrNotFound)
	err = s.ReplaceIndex(ctx, "acme", store.Ref{Type: "Patient", ID: "p2"}, 1, nil, nil)
	wantErr(t, "ReplaceIndex missing resource", err, store.ErrNotFound)
	vs, err := s.History(ctx, "acme", store.HistoryQuery{Type: "Patient", ID: "p2"})
	if err != nil || len(vs) != 0 {
		t.Errorf("History of missing resource = %v, %v; want empty, nil", refsOf(vs), err)
	}

	// Every per-account method reports a missing account.
	const ghost = "ghost"
	_, err = s.Commit(ctx, ghost, []store.Write{write(p, 1, 0, at(0))})
	wantErr(t, "Commit", err, store.ErrNotFound)
	_, err = s.Current(ctx, ghost, p)
	wantErr(t, "Current", err, store.ErrNotFound)
	_, err = s.CurrentMany(ctx, ghost, []store.Ref{p})
	wantErr(t, "CurrentMany", err, store.ErrNotFound)
	_, err = s.VersionOf(ctx, ghost, p, 1)
	wantErr(t, "VersionOf", err, store.ErrNotFound)
	_, err = s.History(ctx, ghost, store.HistoryQuery{})
	wantErr(t, "History", err, store.ErrNotFound)
	_, err = s.CountHistory(ctx, ghost, store.HistoryQuery{})
	wantErr(t, "CountHistory", err, store.ErrNotFound)
	_, err = s.Lookup(ctx, ghost, store.Match{Clauses: [][][]byte{{tok("a")}}})
	wantErr(t, "Lookup", err, store.ErrNotFound)
	_, err = s.Sorts(ctx, ghost, tok("slot"), []store.Ref{p})
	wantErr(t, "Sorts", err, store.ErrNotFound)
	err = s.ReplaceIndex(ctx, ghost, p, 1, nil, nil)
	wantErr(t, "ReplaceIndex", err, store.ErrNotFound)
	_, err = s.Scan(ctx, ghost, "", store.Ref{}, 10)
	wantErr(t, "Scan", err, store.ErrNotFound)
	_, err = s.GetAccount(ctx, ghost)
	wantErr(t, "GetAccount", err, store.ErrNotFound)
	_, err = s.UpdateAccount(ctx, ghost, []byte("x"), 1)
	wantErr(t, "UpdateAccount", err, store.ErrNotFound)
	err = s.DeleteAccount(ctx, ghost)
	wantErr(t, "DeleteAccount", err, store.ErrNotFound)
}

func testPreconditions(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	p := store.Ref{Type: "Patient", ID: "p1"}
	commit(t, s, "acme", write(p, 1, 0, at(0), tok("v1")))

	cases := []struct {
		name string
		w    store.Write
		want error
	}{
		{"must not exist but does", write(p, 2, 0, at(1)), store.ErrConflict},
		{"stale IfVersion", write(p, 3, 2, at(1)), store.ErrConflict},
		{"IfVersion ahead", write(p, 2, 7, at(1)), store.ErrConflict},
		{"IfVersion on missing resource", write(store.Ref{Type: "Patient", ID: "p9"}, 2, 1, at(1)), store.ErrConflict},
		{"duplicate versionId with NoCheck", write(p, 1, store.NoCheck, at(1)), store.ErrConflict},
		{"duplicate versionId with matching IfVersion", write(p, 1, 1, at(1)), store.ErrConflict},
	}
	for _, c := range cases {
		_, err := s.Commit(ctx, "acme", []store.Write{c.w})
		wantErr(t, c.name, err, c.want)
	}
	got, err := s.Current(ctx, "acme", p)
	if err != nil || got.VersionID != 1 || !bytes.Equal(got.Body, body(p, 1)) {
		t.Errorf("after failed commits Current = v%d %q, %v; want v1 unchanged", got.VersionID, got.Body, err)
	}
	if refs, _ := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok("v1")}}}); len(refs) != 1 {
		t.Errorf("after failed commits v1 token matches %v, want the resource", refStrings(refs))
	}

	// NoCheck skips the check; a matching IfVersion succeeds.
	commit(t, s, "acme", write(p, 2, store.NoCheck, at(2)))
	commit(t, s, "acme", write(p, 3, 2, at(3)))
	commit(t, s, "acme", write(store.Ref{Type: "Patient", ID: "new"}, 1, store.NoCheck, at(3)))
	got, err = s.Current(ctx, "acme", p)
	if err != nil || got.VersionID != 3 {
		t.Errorf("Current = v%d, %v; want v3", got.VersionID, err)
	}
}

func testAtomicCommit(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	a := store.Ref{Type: "Patient", ID: "a"}
	b := store.Ref{Type: "Patient", ID: "b"}
	c := store.Ref{Type: "Observation", ID: "c"}
	wa := write(a, 1, 0, at(0), tok("a1"))
	wa.Sorts = []store.SortValue{{Slot: tok("slot"), Value: []byte("A1")}}
	commit(t, s, "acme", wa)
	before, _ := s.History(ctx, "acme", store.HistoryQuery{})

	// The third write fails its precondition: nothing of the commit remains,
	// not the new resources, not a's new version, tokens or sorts.
	wa2 := write(a, 2, 1, at(1), tok("a2"))
	wa2.Sorts = []store.SortValue{{Slot: tok("slot"), Value: []byte("A2")}}
	_, err := s.Commit(ctx, "acme", []store.Write{
		write(b, 1, 0, at(1), tok("b1")),
		wa2,
		write(a, 3, 5, at(1), tok("a3")),
		write(c, 1, 0, at(1), tok("c1")),
	})
	wantErr(t, "multi-write commit with one failing precondition", err, store.ErrConflict)
	_, err = s.Current(ctx, "acme", b)
	wantErr(t, "b after failed commit", err, store.ErrNotFound)
	_, err = s.Current(ctx, "acme", c)
	wantErr(t, "c after failed commit", err, store.ErrNotFound)
	got, err := s.Current(ctx, "acme", a)
	if err != nil || got.VersionID != 1 {
		t.Errorf("a after failed commit: v%d, %v; want v1", got.VersionID, err)
	}
	_, err = s.VersionOf(ctx, "acme", a, 2)
	wantErr(t, "a v2 after failed commit", err, store.ErrNotFound)
	for _, tk := range []string{"b1", "a2", "a3", "c1"} {
		refs, err := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok(tk)}}})
		if err != nil || len(refs) != 0 {
			t.Errorf("token %s after failed commit matches %v (%v)", tk, refStrings(refs), err)
		}
	}
	refs, _ := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok("a1")}}})
	if !slices.Equal(refStrings(refs), []string{"Patient/a"}) {
		t.Errorf("token a1 after failed commit matches %v, want Patient/a", refStrings(refs))
	}
	sorts, _ := s.Sorts(ctx, "acme", tok("slot"), []store.Ref{a})
	if string(sorts[a]) != "A1" {
		t.Errorf("sort of a after failed commit = %q, want A1", sorts[a])
	}
	after, _ := s.History(ctx, "acme", store.HistoryQuery{})
	if !slices.Equal(refsOf(before), refsOf(after)) {
		t.Errorf("history changed by failed commit: %v -> %v", refsOf(before), refsOf(after))
	}

	// A duplicate versionId in the middle of a commit fails it the same way.
	_, err = s.Commit(ctx, "acme", []store.Write{write(b, 1, 0, at(2)), write(a, 1, store.NoCheck, at(2))})
	wantErr(t, "commit with a duplicate versionId", err, store.ErrConflict)
	_, err = s.Current(ctx, "acme", b)
	wantErr(t, "b after duplicate", err, store.ErrNotFound)

	// Several writes to one resource in one commit apply in order.
	seqs := commit(t, s, "acme", write(b, 1, 0, at(3), tok("b1")), write(b, 2, 1, at(3), tok("b2")))
	if seqs[1] <= seqs[0] {
		t.Errorf("seqs %v not increasing within a commit", seqs)
	}
	got, err = s.Current(ctx, "acme", b)
	if err != nil || got.VersionID != 2 || got.Seq != seqs[1] {
		t.Errorf("b after two writes in one commit: v%d seq %d, %v; want v2 seq %d", got.VersionID, got.Seq, err, seqs[1])
	}
	// An empty commit is a no-op.
	if seqs, err := s.Commit(ctx, "acme", nil); err != nil || len(seqs) != 0 {
		t.Errorf("empty Commit = %v, %v", seqs, err)
	}
}

func testDeleteMarker(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	p := store.Ref{Type: "Patient", ID: "p1"}
	commit(t, s, "acme", write(p, 1, 0, at(0), tok("x")))
	dw := deleteWrite(p, 2, 1, at(1))
	seq := commit(t, s, "acme", dw)[0]
	want := dw.Version
	want.Seq = seq
	got, err := s.Current(ctx, "acme", p)
	if err != nil {
		t.Fatalf("Current after delete: %v", err)
	}
	checkVersion(t, "Current after delete", got, want)
	if _, err := s.VersionOf(ctx, "acme", p, 1); err != nil {
		t.Errorf("VersionOf(1) after delete: %v", err)
	}
	refs, err := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok("x")}}})
	if err != nil || len(refs) != 0 {
		t.Errorf("deleted resource matches Lookup: %v, %v", refStrings(refs), err)
	}
	refs, err = s.Lookup(ctx, "acme", store.Match{})
	if err != nil || len(refs) != 0 {
		t.Errorf("deleted resource matches Lookup with no clauses: %v, %v", refStrings(refs), err)
	}
	vs, err := s.Scan(ctx, "acme", "", store.Ref{}, 10)
	if err != nil || len(vs) != 0 {
		t.Errorf("Scan lists deleted resource: %v, %v", refsOf(vs), err)
	}
	vs, err = s.History(ctx, "acme", store.HistoryQuery{Type: "Patient", ID: "p1"})
	if g := refsOf(vs); err != nil || !slices.Equal(g, []string{"Patient/p1/2", "Patient/p1/1"}) {
		t.Errorf("History after delete = %v, %v", g, err)
	} else if !vs[0].Deleted || vs[1].Deleted {
		t.Errorf("History deleted flags = %v, %v", vs[0].Deleted, vs[1].Deleted)
	}
	// A deleted resource cannot be created as new, but can be revived by
	// updating its delete marker.
	_, err = s.Commit(ctx, "acme", []store.Write{write(p, 3, 0, at(2))})
	wantErr(t, "create over delete marker", err, store.ErrConflict)
	commit(t, s, "acme", write(p, 3, 2, at(2), tok("y")))
	refs, _ = s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok("y")}}})
	if !slices.Equal(refStrings(refs), []string{"Patient/p1"}) {
		t.Errorf("revived resource Lookup = %v", refStrings(refs))
	}
}

// historyFixture writes, in this order:
//
//	Patient/a v1 @0, Patient/b v1 @1, Observation/x v1 @2, Patient/a v2 @3,
//	Observation/x v2 (deleted) @4, Patient/a v3 @5
//
// and one unrelated resource in another account.
func historyFixture(t *testing.T, s store.Store) []store.Version {
	mkAccount(t, s, "acme")
	mkAccount(t, s, "other")
	a := store.Ref{Type: "Patient", ID: "a"}
	b := store.Ref{Type: "Patient", ID: "b"}
	x := store.Ref{Type: "Observation", ID: "x"}
	ws := []store.Write{
		write(a, 1, 0, at(0)), write(b, 1, 0, at(1)), write(x, 1, 0, at(2)),
		write(a, 2, 1, at(3)), deleteWrite(x, 2, 1, at(4)), write(a, 3, 2, at(5)),
	}
	var out []store.Version
	for _, w := range ws {
		v := w.Version
		v.Seq = commit(t, s, "acme", w)[0]
		out = append(out, v)
	}
	commit(t, s, "other", write(a, 1, 0, at(2)))
	slices.Reverse(out) // newest first, as History returns
	return out
}

func filterVersions(vs []store.Version, keep func(store.Version) bool) []string {
	var out []store.Version
	for _, v := range vs {
		if keep(v) {
			out = append(out, v)
		}
	}
	return refsOf(out)
}

func testHistory(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	all := historyFixture(t, s)

	cases := []struct {
		name string
		q    store.HistoryQuery
		want []string
	}{
		{"system", store.HistoryQuery{}, refsOf(all)},
		{"type", store.HistoryQuery{Type: "Patient"}, filterVersions(all, func(v store.Version) bool { return v.Type == "Patient" })},
		{"instance", store.HistoryQuery{Type: "Patient", ID: "a"}, []string{"Patient/a/3", "Patient/a/2", "Patient/a/1"}},
		{"instance with deleted", store.HistoryQuery{Type: "Observation", ID: "x"}, []string{"Observation/x/2", "Observation/x/1"}},
		{"type without resources", store.HistoryQuery{Type: "Encounter"}, nil},
		{"since", store.HistoryQuery{Since: at(3)}, []string{"Patient/a/3", "Observation/x/2", "Patient/a/2"}},
		{"since between", store.HistoryQuery{Since: at(2).Add(time.Microsecond)}, []string{"Patient/a/3", "Observation/x/2", "Patient/a/2"}},
		{"since type", store.HistoryQuery{Type: "Observation", Since: at(2)}, []string{"Observation/x/2", "Observation/x/1"}},
		{"since future", store.HistoryQuery{Since: at(100)}, nil},
		{"at", store.HistoryQuery{At: at(3)}, []string{"Patient/a/2", "Observation/x/1", "Patient/b/1"}},
		{"at exact instant of a delete", store.HistoryQuery{At: at(4)}, []string{"Observation/x/2", "Patient/a/2", "Patient/b/1"}},
		{"at before anything", store.HistoryQuery{At: at(-1)}, nil},
		{"at instance", store.HistoryQuery{Type: "Patient", ID: "a", At: at(4)}, []string{"Patient/a/2"}},
		{"at type", store.HistoryQuery{Type: "Patient", At: at(1)}, []string{"Patient/b/1", "Patient/a/1"}},
		{"at and since", store.HistoryQuery{At: at(3), Since: at(2)}, []string{"Patient/a/2", "Observation/x/1"}},
		{"limit", store.HistoryQuery{Limit: 2}, refsOf(all[:2])},
		{"before seq", store.HistoryQuery{BeforeSeq: all[2].Seq}, refsOf(all[3:])},
		{"before seq and limit", store.HistoryQuery{BeforeSeq: all[1].Seq, Limit: 2}, refsOf(all[2:4])},
		{"before first seq", store.HistoryQuery{BeforeSeq: all[len(all)-1].Seq}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs, err := s.History(ctx, "acme", c.q)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if g := refsOf(vs); !slices.Equal(g, c.want) {
				t.Errorf("History = %v, want %v", g, c.want)
			}
			for i := 1; i < len(vs); i++ {
				if vs[i].Seq >= vs[i-1].Seq {
					t.Errorf("History not newest first: seq %d after %d", vs[i].Seq, vs[i-1].Seq)
				}
			}
			n, err := s.CountHistory(ctx, "acme", c.q)
			if err != nil {
				t.Fatalf("CountHistory: %v", err)
			}
			q := c.q
			q.Limit, q.BeforeSeq = 0, 0
			full, _ := s.History(ctx, "acme", q)
			if n != len(full) {
				t.Errorf("CountHistory = %d, want %d (History without Limit/BeforeSeq)", n, len(full))
			}
		})
	}
	// Full version contents come back from History.
	vs, _ := s.History(ctx, "acme", store.HistoryQuery{Limit: 1})
	if len(vs) == 1 {
		checkVersion(t, "History[0]", vs[0], all[0])
	}

	// Paging with BeforeSeq and Limit visits every version exactly once.
	for _, q := range []store.HistoryQuery{{}, {Type: "Patient"}, {Since: at(1)}, {At: at(4)}} {
		want, _ := s.History(ctx, "acme", q)
		var got []store.Version
		for page := 0; page < 20; page++ {
			pq := q
			pq.Limit = 2
			if len(got) > 0 {
				pq.BeforeSeq = got[len(got)-1].Seq
			}
			vs, err := s.History(ctx, "acme", pq)
			if err != nil {
				t.Fatalf("History page: %v", err)
			}
			if len(vs) > 2 {
				t.Fatalf("History page of %d exceeds Limit 2", len(vs))
			}
			got = append(got, vs...)
			if len(vs) < 2 {
				break
			}
		}
		if !slices.Equal(refsOf(got), refsOf(want)) {
			t.Errorf("paged history %+v = %v, want %v", q, refsOf(got), refsOf(want))
		}
	}
}

func testSeqIncreasing(t *testing.T, e Engine) {
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	mkAccount(t, s, "other")
	var last int64
	for i := range 30 {
		acct := "acme"
		if i%3 == 0 {
			acct = "other"
		}
		ws := []store.Write{write(store.Ref{Type: "Patient", ID: fmt.Sprint("p", i)}, 1, 0, at(i))}
		if i%4 == 0 {
			ws = append(ws, write(store.Ref{Type: "Observation", ID: fmt.Sprint("o", i)}, 1, 0, at(i)))
		}
		for _, seq := range commit(t, s, acct, ws...) {
			if seq <= last {
				t.Fatalf("seq %d after %d: not strictly increasing", seq, last)
			}
			last = seq
		}
	}
}

func testLookup(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	mkAccount(t, s, "other")
	r := func(typ, id string) store.Ref { return store.Ref{Type: typ, ID: id} }
	commit(t, s, "acme",
		write(r("Patient", "p2"), 1, 0, at(0), tok("male"), tok("smith")),
		write(r("Patient", "p1"), 1, 0, at(0), tok("female"), tok("smith"), tok("jones")),
		write(r("Patient", "p3"), 1, 0, at(0), tok("female"), tok("brown")),
		write(r("Observation", "o1"), 1, 0, at(0), tok("smith"), tok("female")),
		write(r("Patient", "gone"), 1, 0, at(0), tok("female"), tok("smith")),
	)
	snap := commit(t, s, "acme", write(r("Patient", "late"), 1, 0, at(1), tok("female"), tok("smith")))[0] - 1
	commit(t, s, "acme", deleteWrite(r("Patient", "gone"), 2, 1, at(2)))
	// p3 moves from brown to green: its old tokens must stop matching.
	commit(t, s, "acme", write(r("Patient", "p3"), 2, 1, at(2), tok("female"), tok("green")))
	commit(t, s, "other", write(r("Patient", "p1"), 1, 0, at(0), tok("female"), tok("smith")))

	cl := func(tokens ...string) [][]byte {
		var out [][]byte
		for _, x := range tokens {
			out = append(out, tok(x))
		}
		return out
	}
	cases := []struct {
		name string
		m    store.Match
		want []string
	}{
		{"one token", store.Match{Clauses: [][][]byte{cl("smith")}},
			[]string{"Observation/o1", "Patient/late", "Patient/p1", "Patient/p2"}},
		{"types filter", store.Match{Types: []string{"Patient"}, Clauses: [][][]byte{cl("smith")}},
			[]string{"Patient/late", "Patient/p1", "Patient/p2"}},
		{"two types", store.Match{Types: []string{"Observation", "Encounter"}, Clauses: [][][]byte{cl("smith")}},
			[]string{"Observation/o1"}},
		{"or", store.Match{Types: []string{"Patient"}, Clauses: [][][]byte{cl("male", "jones")}},
			[]string{"Patient/p1", "Patient/p2"}},
		// p1 has both tokens: it must come back once.
		{"or hitting one resource twice", store.Match{Types: []string{"Patient"}, Clauses: [][][]byte{cl("smith", "jones")}},
			[]string{"Patient/late", "Patient/p1", "Patient/p2"}},
		{"and", store.Match{Clauses: [][][]byte{cl("female"), cl("smith")}},
			[]string{"Observation/o1", "Patient/late", "Patient/p1"}},
		{"and of ors", store.Match{Clauses: [][][]byte{cl("male", "female"), cl("jones", "green", "nothing")}},
			[]string{"Patient/p1", "Patient/p3"}},
		{"and with empty result", store.Match{Clauses: [][][]byte{cl("male"), cl("jones")}}, nil},
		{"superseded tokens", store.Match{Clauses: [][][]byte{cl("brown")}}, nil},
		{"new tokens", store.Match{Clauses: [][][]byte{cl("green")}}, []string{"Patient/p3"}},
		{"unknown token", store.Match{Clauses: [][][]byte{cl("zzz")}}, nil},
		{"empty clause matches nothing", store.Match{Clauses: [][][]byte{{}}}, nil},
		{"no clauses", store.Match{Types: []string{"Patient"}},
			[]string{"Patient/late", "Patient/p1", "Patient/p2", "Patient/p3"}},
		{"no clauses no types", store.Match{},
			[]string{"Observation/o1", "Patient/late", "Patient/p1", "Patient/p2", "Patient/p3"}},
		{"snapshot", store.Match{MaxSeq: snap, Clauses: [][][]byte{cl("smith")}},
			[]string{"Observation/o1", "Patient/p1", "Patient/p2"}},
		{"snapshot without clauses", store.Match{MaxSeq: snap, Types: []string{"Patient"}},
			[]string{"Patient/p1", "Patient/p2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refs, err := s.Lookup(ctx, "acme", c.m)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if g := refStrings(refs); !slices.Equal(g, c.want) {
				t.Errorf("Lookup = %v, want %v", g, c.want)
			}
		})
	}
	// Duplicate tokens in one write are harmless.
	commit(t, s, "acme", write(r("Patient", "dup"), 1, 0, at(3), tok("dd"), tok("dd")))
	refs, err := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{cl("dd", "dd")}})
	if err != nil || !slices.Equal(refStrings(refs), []string{"Patient/dup"}) {
		t.Errorf("Lookup of duplicated token = %v, %v", refStrings(refs), err)
	}
}

func testSorts(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	mkAccount(t, s, "other")
	a := store.Ref{Type: "Patient", ID: "a"}
	b := store.Ref{Type: "Patient", ID: "b"}
	c := store.Ref{Type: "Patient", ID: "c"}
	name, birth := tok("name"), tok("birth")
	wa := write(a, 1, 0, at(0))
	wa.Sorts = []store.SortValue{{Slot: name, Value: []byte("na1")}, {Slot: birth, Value: []byte("ba1")}}
	wb := write(b, 1, 0, at(0))
	wb.Sorts = []store.SortValue{{Slot: name, Value: []byte("nb1")}}
	commit(t, s, "acme", wa, wb, write(c, 1, 0, at(0)))
	wo := write(a, 1, 0, at(0))
	wo.Sorts = []store.SortValue{{Slot: name, Value: []byte("other")}}
	commit(t, s, "other", wo)

	check := func(what string, slot []byte, refs []store.Ref, want map[store.Ref]string) {
		t.Helper()
		got, err := s.Sorts(ctx, "acme", slot, refs)
		if err != nil {
			t.Fatalf("%s: Sorts: %v", what, err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: Sorts returned %d values, want %d (%v)", what, len(got), len(want), got)
		}
		for r, v := range want {
			if string(got[r]) != v {
				t.Errorf("%s: sort of %v = %q, want %q", what, r, got[r], v)
			}
		}
	}
	check("name", name, []store.Ref{a, b, c, {Type: "Patient", ID: "zz"}}, map[store.Ref]string{a: "na1", b: "nb1"})
	check("birth", birth, []store.Ref{a, b}, map[store.Ref]string{a: "ba1"})
	check("no refs", name, nil, map[store.Ref]string{})

	// A new version replaces the sort values: a loses birth, b gains it.
	wa2 := write(a, 2, 1, at(1))
	wa2.Sorts = []store.SortValue{{Slot: name, Value: []byte("na2")}}
	wb2 := write(b, 2, 1, at(1))
	wb2.Sorts = []store.SortValue{{Slot: name, Value: []byte("nb1")}, {Slot: birth, Value: []byte("bb2")}}
	commit(t, s, "acme", wa2, wb2)
	check("name after update", name, []store.Ref{a, b}, map[store.Ref]string{a: "na2", b: "nb1"})
	check("birth after update", birth, []store.Ref{a, b}, map[store.Ref]string{b: "bb2"})
	// A delete marker drops them.
	commit(t, s, "acme", deleteWrite(b, 3, 2, at(2)))
	check("after delete", name, []store.Ref{a, b}, map[store.Ref]string{a: "na2"})
}

func testReplaceIndex(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	p := store.Ref{Type: "Patient", ID: "p"}
	w1 := write(p, 1, 0, at(0), tok("old"))
	w1.Sorts = []store.SortValue{{Slot: tok("s"), Value: []byte("old")}, {Slot: tok("t"), Value: []byte("gone")}}
	commit(t, s, "acme", w1)
	w2 := write(p, 2, 1, at(1), tok("old"), tok("keep"))
	w2.Sorts = []store.SortValue{{Slot: tok("s"), Value: []byte("old2")}, {Slot: tok("t"), Value: []byte("gone")}}
	commit(t, s, "acme", w2)

	err := s.ReplaceIndex(ctx, "acme", p, 1, [][]byte{tok("new")}, nil)
	wantErr(t, "ReplaceIndex of a superseded version", err, store.ErrConflict)
	err = s.ReplaceIndex(ctx, "acme", p, 3, [][]byte{tok("new")}, nil)
	wantErr(t, "ReplaceIndex of a future version", err, store.ErrConflict)
	if refs, _ := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok("new")}}}); len(refs) != 0 {
		t.Errorf("failed ReplaceIndex changed tokens: %v", refStrings(refs))
	}

	before, _ := s.History(ctx, "acme", store.HistoryQuery{})
	err = s.ReplaceIndex(ctx, "acme", p, 2, [][]byte{tok("new"), tok("keep")}, []store.SortValue{{Slot: tok("s"), Value: []byte("new")}})
	if err != nil {
		t.Fatalf("ReplaceIndex: %v", err)
	}
	for tk, want := range map[string]int{"old": 0, "new": 1, "keep": 1} {
		refs, err := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok(tk)}}})
		if err != nil || len(refs) != want {
			t.Errorf("after ReplaceIndex token %s matches %v (%v), want %d", tk, refStrings(refs), err, want)
		}
	}
	sorts, _ := s.Sorts(ctx, "acme", tok("s"), []store.Ref{p})
	if string(sorts[p]) != "new" {
		t.Errorf("after ReplaceIndex sort = %q, want new", sorts[p])
	}
	if sorts, _ := s.Sorts(ctx, "acme", tok("t"), []store.Ref{p}); len(sorts) != 0 {
		t.Errorf("after ReplaceIndex stale sort slot remains: %v", sorts)
	}
	after, _ := s.History(ctx, "acme", store.HistoryQuery{})
	if !slices.Equal(refsOf(before), refsOf(after)) {
		t.Errorf("ReplaceIndex wrote a version: %v -> %v", refsOf(before), refsOf(after))
	}
	cur, _ := s.Current(ctx, "acme", p)
	if cur.VersionID != 2 || cur.Seq != before[0].Seq {
		t.Errorf("ReplaceIndex changed the current version: v%d seq %d", cur.VersionID, cur.Seq)
	}
}

func testScan(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	mkAccount(t, s, "other")
	var want []string
	var ws []store.Write
	for i := range 13 {
		for _, typ := range []string{"Observation", "Patient"} {
			ref := store.Ref{Type: typ, ID: fmt.Sprintf("id%02d", i)}
			ws = append(ws, write(ref, 1, 0, at(i)))
			if i != 5 {
				want = append(want, fmt.Sprintf("%s/id%02d/%d", typ, i, 1+btoi(i == 7)))
			}
		}
	}
	commit(t, s, "acme", ws...)
	commit(t, s, "other", write(store.Ref{Type: "Patient", ID: "x"}, 1, 0, at(0)))
	commit(t, s, "acme",
		deleteWrite(store.Ref{Type: "Observation", ID: "id05"}, 2, 1, at(20)),
		deleteWrite(store.Ref{Type: "Patient", ID: "id05"}, 2, 1, at(20)),
		write(store.Ref{Type: "Observation", ID: "id07"}, 2, 1, at(20)),
		write(store.Ref{Type: "Patient", ID: "id07"}, 2, 1, at(20)))
	slices.Sort(want)

	scanAll := func(typ string, limit int) []store.Version {
		var got []store.Version
		after := store.Ref{}
		for range 100 {
			vs, err := s.Scan(ctx, "acme", typ, after, limit)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if len(vs) > limit {
				t.Fatalf("Scan returned %d > limit %d", len(vs), limit)
			}
			got = append(got, vs...)
			if len(vs) < limit {
				return got
			}
			after = store.Ref{Type: vs[len(vs)-1].Type, ID: vs[len(vs)-1].ID}
		}
		t.Fatal("Scan does not terminate")
		return nil
	}
	if g := refsOf(scanAll("", 7)); !slices.Equal(g, want) {
		t.Errorf("Scan all = %v, want %v", g, want)
	}
	if g := refsOf(scanAll("", 1000)); !slices.Equal(g, want) {
		t.Errorf("Scan all in one page = %v, want %v", g, want)
	}
	var wantP []string
	for _, w := range want {
		if w[0] == 'P' {
			wantP = append(wantP, w)
		}
	}
	got := scanAll("Patient", 5)
	if g := refsOf(got); !slices.Equal(g, wantP) {
		t.Errorf("Scan Patient = %v, want %v", g, wantP)
	}
	if len(got) > 0 && !bytes.Equal(got[0].Body, body(store.Ref{Type: "Patient", ID: "id00"}, 1)) {
		t.Errorf("Scan body = %q", got[0].Body)
	}
	// after is exclusive, and may name a resource that does not exist.
	vs, _ := s.Scan(ctx, "acme", "Patient", store.Ref{Type: "Patient", ID: "id11"}, 10)
	if g := refsOf(vs); !slices.Equal(g, []string{"Patient/id12/1"}) {
		t.Errorf("Scan after Patient/id11 = %v", g)
	}
	vs, _ = s.Scan(ctx, "acme", "", store.Ref{Type: "Observation", ID: "id99"}, 2)
	if g := refsOf(vs); !slices.Equal(g, []string{"Patient/id00/1", "Patient/id01/1"}) {
		t.Errorf("Scan after Observation/id99 = %v", g)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func testAccounts(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	created := time.Date(2026, 5, 6, 7, 8, 9, 654321000, time.UTC)
	a, err := s.CreateAccount(ctx, store.Account{Name: "zeta", CreatedAt: created, Data: []byte{1, 2, 3}, Rev: 99})
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	if a.Rev != 1 || a.Name != "zeta" || !a.CreatedAt.Equal(created) || !bytes.Equal(a.Data, []byte{1, 2, 3}) {
		t.Errorf("CreateAccount = %+v", a)
	}
	_, err = s.CreateAccount(ctx, store.Account{Name: "zeta", CreatedAt: created, Data: []byte{9}})
	wantErr(t, "CreateAccount of a taken name", err, store.ErrExists)
	mkAccount(t, s, "alpha")
	mkAccount(t, s, "mid")

	g, err := s.GetAccount(ctx, "zeta")
	if err != nil || g.Rev != 1 || !bytes.Equal(g.Data, []byte{1, 2, 3}) || !g.CreatedAt.Equal(created) {
		t.Errorf("GetAccount = %+v, %v", g, err)
	}
	list, err := s.ListAccounts(ctx)
	if err != nil {
		t.Fatalf("ListAccounts: %v", err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"alpha", "mid", "zeta"}) {
		t.Errorf("ListAccounts = %v", names)
	}

	u, err := s.UpdateAccount(ctx, "zeta", []byte("v2"), 1)
	if err != nil || u.Rev != 2 || string(u.Data) != "v2" || !u.CreatedAt.Equal(created) {
		t.Errorf("UpdateAccount = %+v, %v; want Rev 2", u, err)
	}
	_, err = s.UpdateAccount(ctx, "zeta", []byte("stale"), 1)
	wantErr(t, "UpdateAccount with a stale Rev", err, store.ErrConflict)
	_, err = s.UpdateAccount(ctx, "zeta", []byte("ahead"), 3)
	wantErr(t, "UpdateAccount with a future Rev", err, store.ErrConflict)
	u, err = s.UpdateAccount(ctx, "zeta", []byte("v3"), 2)
	if err != nil || u.Rev != 3 {
		t.Errorf("second UpdateAccount = %+v, %v", u, err)
	}
	g, _ = s.GetAccount(ctx, "zeta")
	if g.Rev != 3 || string(g.Data) != "v3" {
		t.Errorf("GetAccount after updates = %+v", g)
	}
	if g, _ := s.GetAccount(ctx, "alpha"); g.Rev != 1 || string(g.Data) != "ring:alpha" {
		t.Errorf("other account changed: %+v", g)
	}
}

func testDeleteAccount(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "doomed")
	mkAccount(t, s, "kept")
	p := store.Ref{Type: "Patient", ID: "p"}
	for _, acct := range []string{"doomed", "kept"} {
		w := write(p, 1, 0, at(0), tok("t"))
		w.Sorts = []store.SortValue{{Slot: tok("s"), Value: []byte(acct)}}
		commit(t, s, acct, w, write(store.Ref{Type: "Observation", ID: "o"}, 1, 0, at(1), tok("t")))
		w2 := write(p, 2, 1, at(2), tok("t"))
		w2.Sorts = w.Sorts
		commit(t, s, acct, w2)
	}
	if err := s.DeleteAccount(ctx, "doomed"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err := s.GetAccount(ctx, "doomed")
	wantErr(t, "GetAccount after delete", err, store.ErrNotFound)
	_, err = s.Current(ctx, "doomed", p)
	wantErr(t, "Current after account delete", err, store.ErrNotFound)
	err = s.DeleteAccount(ctx, "doomed")
	wantErr(t, "second DeleteAccount", err, store.ErrNotFound)
	list, _ := s.ListAccounts(ctx)
	if len(list) != 1 || list[0].Name != "kept" {
		t.Errorf("ListAccounts after delete = %+v", list)
	}

	// A new account of the same name starts empty.
	mkAccount(t, s, "doomed")
	_, err = s.Current(ctx, "doomed", p)
	wantErr(t, "Current in re-created account", err, store.ErrNotFound)
	_, err = s.VersionOf(ctx, "doomed", p, 1)
	wantErr(t, "VersionOf in re-created account", err, store.ErrNotFound)
	if vs, err := s.History(ctx, "doomed", store.HistoryQuery{}); err != nil || len(vs) != 0 {
		t.Errorf("History in re-created account = %v, %v", refsOf(vs), err)
	}
	if n, err := s.CountHistory(ctx, "doomed", store.HistoryQuery{}); err != nil || n != 0 {
		t.Errorf("CountHistory in re-created account = %d, %v", n, err)
	}
	if refs, err := s.Lookup(ctx, "doomed", store.Match{Clauses: [][][]byte{{tok("t")}}}); err != nil || len(refs) != 0 {
		t.Errorf("Lookup in re-created account = %v, %v", refStrings(refs), err)
	}
	if vs, err := s.Scan(ctx, "doomed", "", store.Ref{}, 10); err != nil || len(vs) != 0 {
		t.Errorf("Scan in re-created account = %v, %v", refsOf(vs), err)
	}
	if m, err := s.Sorts(ctx, "doomed", tok("s"), []store.Ref{p}); err != nil || len(m) != 0 {
		t.Errorf("Sorts in re-created account = %v, %v", m, err)
	}
	commit(t, s, "doomed", write(p, 1, 0, at(5)))

	// The other account is untouched.
	if n, err := s.CountHistory(ctx, "kept", store.HistoryQuery{}); err != nil || n != 3 {
		t.Errorf("kept history count = %d, %v; want 3", n, err)
	}
	if refs, _ := s.Lookup(ctx, "kept", store.Match{Clauses: [][][]byte{{tok("t")}}}); len(refs) != 2 {
		t.Errorf("kept Lookup = %v", refStrings(refs))
	}
	if m, _ := s.Sorts(ctx, "kept", tok("s"), []store.Ref{p}); string(m[p]) != "kept" {
		t.Errorf("kept sorts = %v", m)
	}
	if g, err := s.GetAccount(ctx, "kept"); err != nil || string(g.Data) != "ring:kept" {
		t.Errorf("kept account = %+v, %v", g, err)
	}
}

func testIsolation(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "one")
	mkAccount(t, s, "two")
	p := store.Ref{Type: "Patient", ID: "same"}
	w1 := write(p, 1, 0, at(0), tok("shared"))
	w1.Version.Body = []byte("body one")
	w2 := write(p, 1, 0, at(1), tok("shared"))
	w2.Version.Body = []byte("body two")
	commit(t, s, "one", w1)
	commit(t, s, "two", w2) // IfVersion 0 holds per account
	commit(t, s, "two", write(p, 2, 1, at(2), tok("shared")))

	g1, err := s.Current(ctx, "one", p)
	if err != nil || g1.VersionID != 1 || string(g1.Body) != "body one" {
		t.Errorf("account one sees %q v%d, %v", g1.Body, g1.VersionID, err)
	}
	_, err = s.VersionOf(ctx, "one", p, 2)
	wantErr(t, "VersionOf of the other account's version", err, store.ErrNotFound)
	v, err := s.VersionOf(ctx, "two", p, 1)
	if err != nil || string(v.Body) != "body two" {
		t.Errorf("account two v1 = %q, %v", v.Body, err)
	}
	for acct, want := range map[string]int{"one": 1, "two": 2} {
		if n, _ := s.CountHistory(ctx, acct, store.HistoryQuery{}); n != want {
			t.Errorf("%s: CountHistory = %d, want %d", acct, n, want)
		}
		if refs, _ := s.Lookup(ctx, acct, store.Match{Clauses: [][][]byte{{tok("shared")}}}); len(refs) != 1 {
			t.Errorf("%s: Lookup = %v, want one ref", acct, refStrings(refs))
		}
	}
	_, err = s.Commit(ctx, "one", []store.Write{write(p, 2, 2, at(3))})
	wantErr(t, "IfVersion checked against the other account", err, store.ErrConflict)
}

func testLock(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	unlock, err := s.Lock(ctx, "cond-create:Patient:x")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// Another name is independent.
	u2, err := s.Lock(ctx, "cond-create:Patient:y")
	if err != nil {
		t.Fatalf("Lock of another name: %v", err)
	}
	u2()

	// A second holder waits, and gives up when its context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = s.Lock(short, "cond-create:Patient:x")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock of a held name with expiring context: %v, want DeadlineExceeded", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Lock(cctx, "cond-create:Patient:x")
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ccancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Lock: %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock does not honour cancellation")
	}

	// A waiter gets the lock once it is released, and not before.
	var released atomic.Bool
	got := make(chan func(), 1)
	go func() {
		u, err := s.Lock(ctx, "cond-create:Patient:x")
		if err != nil {
			t.Errorf("waiting Lock: %v", err)
			got <- func() {}
			return
		}
		if !released.Load() {
			t.Error("second holder got the lock while the first held it")
		}
		got <- u
	}()
	time.Sleep(30 * time.Millisecond)
	released.Store(true)
	unlock()
	select {
	case u := <-got:
		u()
	case <-time.After(5 * time.Second):
		t.Fatal("waiter never got the released lock")
	}

	// Mutual exclusion under contention.
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				u, err := s.Lock(ctx, "hot")
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				n := inside.Add(1)
				for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
				}
				time.Sleep(10 * time.Microsecond)
				inside.Add(-1)
				u()
			}
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Errorf("%d holders inside the lock at once", maxInside.Load())
	}
}

func testTwoHandles(t *testing.T, e Engine) {
	ctx := context.Background()
	s1, opener := open(t, e)
	s2 := handle(t, opener)
	mkAccount(t, s1, "acme")
	if _, err := s2.GetAccount(ctx, "acme"); err != nil {
		t.Fatalf("second handle does not see the account: %v", err)
	}
	p := store.Ref{Type: "Patient", ID: "p"}
	commit(t, s1, "acme", write(p, 1, 0, at(0)))

	for round := range 5 {
		vid := int64(round + 2)
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range []store.Store{s1, s2, s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				w := write(p, vid, vid-1, at(round+1))
				w.Version.Body = []byte(fmt.Sprint("writer ", i))
				_, err := s.Commit(ctx, "acme", []store.Write{w})
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("Commit: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 3 {
			t.Fatalf("round %d: %d wins, %d conflicts; want exactly one winner", round, wins.Load(), conflicts.Load())
		}
		c1, _ := s1.Current(ctx, "acme", p)
		c2, _ := s2.Current(ctx, "acme", p)
		if c1.VersionID != vid || c2.VersionID != vid || !bytes.Equal(c1.Body, c2.Body) {
			t.Fatalf("handles disagree after round %d: v%d %q vs v%d %q", round, c1.VersionID, c1.Body, c2.VersionID, c2.Body)
		}
	}

	// Account rewrap: two handles compare-and-swap the same Rev.
	for rev := int64(1); rev <= 3; rev++ {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i, s := range []store.Store{s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.UpdateAccount(ctx, "acme", []byte(fmt.Sprint("ring from ", i)), rev)
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrConflict) {
					t.Errorf("UpdateAccount: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("rev %d: %d handles won the account CAS, want 1", rev, wins.Load())
		}
	}
	a, err := s2.GetAccount(ctx, "acme")
	if err != nil || a.Rev != 4 {
		t.Errorf("account after CAS rounds: %+v, %v; want Rev 4", a, err)
	}

	if e.LockAcrossHandles {
		unlock, err := s1.Lock(ctx, "shared")
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = s2.Lock(short, "shared")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second handle took a held lock: %v", err)
		}
		unlock()
		u2, err := s2.Lock(ctx, "shared")
		if err != nil {
			t.Fatalf("second handle cannot take the released lock: %v", err)
		}
		u2()
	}
}

func testConcurrency(t *testing.T, e Engine) {
	ctx := context.Background()
	s, _ := open(t, e)
	mkAccount(t, s, "acme")
	const workers, perWorker = 16, 15
	shared := store.Ref{Type: "Patient", ID: "shared"}
	commit(t, s, "acme", write(shared, 1, 0, at(0), tok("shared")))

	var mu sync.Mutex
	seqs := map[int64]bool{}
	won := map[int64]int{} // versionId -> winners
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				// A distinct resource: always succeeds.
				own := store.Ref{Type: "Observation", ID: fmt.Sprintf("w%d-%d", w, i)}
				ss, err := s.Commit(ctx, "acme", []store.Write{write(own, 1, 0, at(i), tok(fmt.Sprint("w", w)))})
				if err != nil {
					t.Errorf("Commit of a distinct resource: %v", err)
					return
				}
				// The shared resource: read, then compare-and-swap.
				cur, err := s.Current(ctx, "acme", shared)
				if err != nil {
					t.Errorf("Current: %v", err)
					return
				}
				next := cur.VersionID + 1
				s2, err := s.Commit(ctx, "acme", []store.Write{write(shared, next, cur.VersionID, at(i), tok("shared"))})
				mu.Lock()
				for _, q := range append(ss, s2...) {
					if seqs[q] {
						t.Errorf("seq %d assigned twice", q)
					}
					seqs[q] = true
				}
				if err == nil {
					won[next]++
				} else if !errors.Is(err, store.ErrConflict) {
					t.Errorf("CAS Commit: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cur, err := s.Current(ctx, "acme", shared)
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	for v := int64(2); v <= cur.VersionID; v++ {
		if won[v] != 1 {
			t.Errorf("version %d of the shared resource has %d winners, want 1", v, won[v])
		}
	}
	if len(won) != int(cur.VersionID-1) {
		t.Errorf("%d CAS wins but current version is %d", len(won), cur.VersionID)
	}
	hist, _ := s.History(ctx, "acme", store.HistoryQuery{Type: "Patient", ID: "shared"})
	if len(hist) != int(cur.VersionID) {
		t.Errorf("shared resource has %d versions in history, current is v%d", len(hist), cur.VersionID)
	}
	n, _ := s.CountHistory(ctx, "acme", store.HistoryQuery{Type: "Observation"})
	if n != workers*perWorker {
		t.Errorf("%d Observations stored, want %d", n, workers*perWorker)
	}
	refs, _ := s.Lookup(ctx, "acme", store.Match{Clauses: [][][]byte{{tok("w3")}}})
	if len(refs) != perWorker {
		t.Errorf("worker 3's token matches %d resources, want %d", len(refs), perWorker)
	}
}

func testClose(t *testing.T, e Engine) {
	ctx := context.Background()
	opener := e.NewDB(t)
	s := opener(t)
	mkAccount(t, s, "acme")
	p := store.Ref{Type: "Patient", ID: "p"}
	commit(t, s, "acme", write(p, 1, 0, at(0)))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.Commit(ctx, "acme", []store.Write{write(p, 2, 1, at(1))})
	wantErr(t, "Commit after Close", err, store.ErrClosed)
	_, err = s.Current(ctx, "acme", p)
	wantErr(t, "Current after Close", err, store.ErrClosed)
	_, err = s.GetAccount(ctx, "acme")
	wantErr(t, "GetAccount after Close", err, store.ErrClosed)
	err = s.Ping(ctx)
	wantErr(t, "Ping after Close", err, store.ErrClosed)

	// The data outlives the handle.
	s2 := handle(t, opener)
	got, err := s2.Current(ctx, "acme", p)
	if err != nil || got.VersionID != 1 {
		t.Errorf("Current after reopen: v%d, %v", got.VersionID, err)
	}
}
