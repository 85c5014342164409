package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// randStamps returns n ascending, distinct stamps with random gaps of up to
// maxGap (at least 1).
func randStamps(r *rand.Rand, n int, maxGap int64) []int64 {
	out := make([]int64, n)
	var x int64
	for i := range out {
		x += 1 + r.Int64N(maxGap)
		out[i] = x
	}
	return out
}

func TestIxsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := [][]int64{
		nil,
		{0},
		{1},
		{127, 128},
		{1 << 62},
		{0, 1 << 62},
		{1, 2, 3, 4, 5},
	}
	for range 200 {
		cases = append(cases, randStamps(r, r.IntN(300), []int64{1, 200, 1 << 20, 1 << 40}[r.IntN(4)]))
	}
	for _, want := range cases {
		blob := encodeIxs(nil, want)
		got, err := decodeIxs(nil, blob)
		if err != nil {
			t.Fatalf("decode(encode(%v)): %v", want, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("decode(encode(%v)) = %v", want, got)
		}
		// Appending to a prefix keeps it.
		pre := []int64{-7}
		got, err = decodeIxs(pre, blob)
		if err != nil || got[0] != -7 || !slices.Equal(got[1:], want) {
			t.Fatalf("decodeIxs with prefix: %v, %v", got, err)
		}
		// Deltas make dense lists small: one byte per stamp below 128 apart.
		if len(want) > 1 && want[len(want)-1]-want[0] < 127 && len(blob) > len(want)+9 {
			t.Fatalf("encoding of %d dense stamps takes %d bytes", len(want), len(blob))
		}
	}
}

func TestIxsCorrupt(t *testing.T) {
	big := func(v uint64) []byte { return encodeUvarints(v) }
	cases := []struct {
		name string
		blob []byte
	}{
		{"truncated varint", []byte{0x80}},
		{"truncated after a stamp", []byte{0x05, 0xff}},
		{"varint over 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"first stamp above 2^62", big(1<<62 + 1)},
		{"delta above 2^62", append([]byte{0x01}, big(1<<62+1)...)},
		{"zero delta (duplicate stamp)", []byte{0x05, 0x00}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, err := decodeIxs(nil, c.blob); err == nil {
				t.Fatalf("decodeIxs(%x) = %v, want an error", c.blob, got)
			}
		})
	}
}

// A corrupt blob whose deltas sum past the int64 range decodes without an
// error into stamps that are neither ascending nor positive.
func TestIxsOverflowRejected(t *testing.T) {
	blob := encodeUvarints(1<<62, 1<<62, 1<<62)
	got, err := decodeIxs(nil, blob)
	if err == nil {
		t.Fatalf("decodeIxs(%x) = %v, want an error", blob, got)
	}
}

func encodeUvarints(vs ...uint64) []byte {
	var out []byte
	for _, v := range vs {
		for v >= 0x80 {
			out = append(out, byte(v)|0x80)
			v >>= 7
		}
		out = append(out, byte(v))
	}
	return out
}

func TestIntersectSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	oracle := func(a, b []int64) []int64 {
		var out []int64
		for _, x := range a {
			if slices.Contains(b, x) {
				out = append(out, x)
			}
		}
		return out
	}
	branches := map[bool]int{} // binary-search branch taken
	for i := range 3000 {
		var na, nb int
		switch i % 3 {
		case 0: // comparable lengths: the linear merge
			na, nb = r.IntN(60), r.IntN(60)
		case 1: // a short list against a long one: binary search
			na, nb = r.IntN(8), 200+r.IntN(800)
		default: // around the switch-over (len(a)*16 vs len(b))
			na = 1 + r.IntN(10)
			nb = na*16 + r.IntN(5) - 2
		}
		span := int64(1 + r.IntN(3)) // denser universes overlap more
		a := randStamps(r, na, span*int64(max(1, nb/max(1, na))))
		b := randStamps(r, nb, span)
		want := oracle(a, b)
		binary := len(a)*16 < len(b)
		branches[binary]++
		got := intersectSorted(slices.Clone(a), b)
		if !slices.Equal(got, want) {
			t.Fatalf("intersectSorted(%v, %v) = %v, want %v (binary branch %v)", a, b, got, want, binary)
		}
		// Symmetric, up to the branch taken.
		got = intersectSorted(slices.Clone(b), a)
		if !slices.Equal(got, want) {
			t.Fatalf("intersectSorted(%v, %v) = %v, want %v", b, a, got, want)
		}
	}
	if branches[true] < 500 || branches[false] < 500 {
		t.Fatalf("branches exercised: %v", branches)
	}
	// Edge cases: empty lists, disjoint, identical, first and last only.
	for _, c := range [][3][]int64{
		{nil, {1, 2}, nil},
		{{1, 2}, nil, nil},
		{{1, 3, 5}, {2, 4, 6}, nil},
		{{1, 2, 3}, {1, 2, 3}, {1, 2, 3}},
		{{1, 1000}, randStampsFrom(1, 1000), {1, 1000}},
	} {
		got := intersectSorted(slices.Clone(c[0]), c[1])
		if !slices.Equal(got, c[2]) {
			t.Fatalf("intersectSorted(%v, …%d) = %v, want %v", c[0], len(c[1]), got, c[2])
		}
	}
}

func randStampsFrom(lo, hi int64) []int64 {
	var out []int64
	for x := lo; x <= hi; x++ {
		out = append(out, x)
	}
	return out
}

func TestSortUnique(t *testing.T) {
	got := sortUnique([]int64{5, 1, 5, 3, 1, 9})
	if want := []int64{1, 3, 5, 9}; !slices.Equal(got, want) {
		t.Fatalf("sortUnique = %v, want %v", got, want)
	}
}

func TestSizeClass(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want int
	}{
		{0, 0}, {1, 0}, {511, 0},
		{512, 1}, {4095, 1},
		{4096, 2}, {32767, 2},
		{32768, 3}, {262143, 3},
		{262144, 4},
	} {
		if got := sizeClass(c.n); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	// Monotone, and one class per factor of fanIn above the floor.
	prev := 0
	for n := int64(0); n < 1<<20; n += 1 + n/97 {
		c := sizeClass(n)
		if c < prev {
			t.Fatalf("sizeClass(%d) = %d < sizeClass of a smaller count (%d)", n, c, prev)
		}
		prev = c
	}
}

// modelRes is the model's view of one resource.
type modelRes struct {
	versionID int64
	seq       int64
	deleted   bool
	tokens    map[string]bool
}

// TestSegmentsModel drives creates, updates, deletes and ReplaceIndex
// across two accounts with small flush and compaction thresholds, and after
// every step compares Lookup (AND of ORs, with and without Types and
// MaxSeq) with an in-memory model. It reopens the store midway. It stops
// after the number of steps or a time budget (10 s; it matters under
// -race), whichever comes first. KILN_SQLITE_MODEL_SEED replays a seed;
// KILN_SQLITE_MODEL_STEPS sets the number of steps.
func TestSegmentsModel(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KILN_SQLITE_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KILN_SQLITE_MODEL_SEED: %v", err)
		}
		seed = v
	}
	steps := 2000
	if testing.Short() {
		steps = 250
	}
	if n, err := strconv.Atoi(os.Getenv("KILN_SQLITE_MODEL_STEPS")); err == nil && n > 0 {
		steps = n
	}
	t.Logf("seed %d (KILN_SQLITE_MODEL_SEED replays it), %d steps", seed, steps)
	r := rand.New(rand.NewPCG(seed, 0x5e9))

	path := filepath.Join(t.TempDir(), "kiln.db")
	opts := Options{MergeEvery: 5, MergeIdle: -1, Synchronous: "NORMAL"}
	s, err := Open(ctx, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	accounts := []string{"acme", "other"}
	for _, a := range accounts {
		if _, err := s.CreateAccount(ctx, store.Account{Name: a, CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	types := []string{"Patient", "Observation", "Encounter"}
	alphabet := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	model := map[string]map[store.Ref]*modelRes{"acme": {}, "other": {}}
	var maxSeq int64
	var compactions, merges int64 // of closed handles

	randTokens := func() ([][]byte, map[string]bool) {
		set := map[string]bool{}
		for range r.IntN(5) {
			set[alphabet[r.IntN(len(alphabet))]] = true
		}
		var out [][]byte
		for x := range set {
			out = append(out, tok(x))
		}
		if len(out) > 0 && r.IntN(4) == 0 {
			out = append(out, out[0]) // duplicates are allowed
		}
		return out, set
	}
	pick := func(account string) (store.Ref, *modelRes, bool) {
		m := model[account]
		if len(m) == 0 {
			return store.Ref{}, nil, false
		}
		refs := make([]store.Ref, 0, len(m))
		for ref := range m {
			refs = append(refs, ref)
		}
		slices.SortFunc(refs, func(a, b store.Ref) int { return cmpRef(a, b) })
		ref := refs[r.IntN(len(refs))]
		return ref, m[ref], true
	}
	nextID := 0

	// step applies one random operation; a Commit may carry several writes,
	// including two of the same resource.
	step := func() string {
		account := accounts[r.IntN(len(accounts))]
		switch op := r.IntN(10); {
		case op < 7: // a commit of 1..3 writes
			type pendingWrite struct {
				ref    store.Ref
				state  modelRes
				exists bool
			}
			var ws []store.Write
			var after []pendingWrite
			staged := map[store.Ref]*modelRes{} // states within this commit
			for range 1 + r.IntN(3) {
				var ref store.Ref
				var cur *modelRes
				if ref0, c, ok := pick(account); ok && r.IntN(3) > 0 {
					ref, cur = ref0, c
				} else {
					nextID++
					ref = store.Ref{Type: types[r.IntN(len(types))], ID: fmt.Sprint("r", nextID)}
				}
				if st, ok := staged[ref]; ok {
					cur = st
				}
				w := store.Write{Version: store.Version{Type: ref.Type, ID: ref.ID, VersionID: 1, LastUpdated: time.Now(), Body: []byte("body")}}
				next := modelRes{versionID: 1, tokens: map[string]bool{}}
				if cur != nil {
					w.IfVersion = cur.versionID
					w.Version.VersionID = cur.versionID + 1
					next.versionID = cur.versionID + 1
				}
				if cur != nil && !cur.deleted && r.IntN(4) == 0 {
					w.Version.Deleted, w.Version.Body = true, nil
					next.deleted = true
				} else {
					w.Tokens, next.tokens = randTokens()
				}
				ws = append(ws, w)
				after = append(after, pendingWrite{ref: ref, state: next})
				n := next
				staged[ref] = &n
			}
			seqs, err := s.Commit(ctx, account, ws)
			if err != nil {
				t.Fatalf("commit %s %v: %v", account, ws, err)
			}
			for i, pw := range after {
				st := pw.state
				st.seq = seqs[i]
				model[account][pw.ref] = &st
				maxSeq = max(maxSeq, seqs[i])
			}
			return fmt.Sprintf("commit %s %d writes", account, len(ws))
		default: // ReplaceIndex of an existing resource (deleted or not)
			ref, cur, ok := pick(account)
			if !ok {
				return "nothing to reindex"
			}
			tokens, set := randTokens()
			if err := s.ReplaceIndex(ctx, account, ref, cur.versionID, tokens, nil); err != nil {
				t.Fatalf("replace index %s %v: %v", account, ref, err)
			}
			cur.tokens = set
			return fmt.Sprintf("reindex %s %v", account, ref)
		}
	}

	check := func(what string) {
		t.Helper()
		for range 4 {
			account := accounts[r.IntN(len(accounts))]
			var m store.Match
			var mtokens [][]string
			for range r.IntN(4) { // 0 clauses: every resource
				var clause [][]byte
				var names []string
				for range 1 + r.IntN(3) {
					x := alphabet[r.IntN(len(alphabet))]
					if r.IntN(10) == 0 {
						x = "absent"
					}
					clause = append(clause, tok(x))
					names = append(names, x)
				}
				m.Clauses = append(m.Clauses, clause)
				mtokens = append(mtokens, names)
			}
			if r.IntN(3) == 0 {
				m.Types = []string{types[r.IntN(len(types))]}
				if r.IntN(2) == 0 {
					m.Types = append(m.Types, types[r.IntN(len(types))])
				}
			}
			if r.IntN(3) == 0 && maxSeq > 0 {
				m.MaxSeq = 1 + r.Int64N(maxSeq)
			}
			var want []store.Ref
			for ref, st := range model[account] {
				if st.deleted || (m.MaxSeq > 0 && st.seq > m.MaxSeq) {
					continue
				}
				if len(m.Types) > 0 && !slices.Contains(m.Types, ref.Type) {
					continue
				}
				ok := true
				for _, clause := range mtokens {
					if !slices.ContainsFunc(clause, func(x string) bool { return st.tokens[x] }) {
						ok = false
						break
					}
				}
				if ok {
					want = append(want, ref)
				}
			}
			slices.SortFunc(want, cmpRef)
			got, err := s.Lookup(ctx, account, m)
			if err != nil {
				t.Fatalf("after %s: lookup %s %v: %v", what, account, mtokens, err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("after %s: Lookup(%s, clauses %v, types %v, maxSeq %d)\n got %v\nwant %v",
					what, account, mtokens, m.Types, m.MaxSeq, got, want)
			}
		}
	}

	start, budget := time.Now(), 10*time.Second
	reopened, done := false, 0
	for i := range steps {
		if time.Since(start) > budget {
			break
		}
		what := step()
		check(fmt.Sprintf("step %d (%s)", i, what))
		done++
		if !reopened && (i == steps/2 || time.Since(start) > budget/2) {
			reopened = true
			st := s.Stats()
			compactions += st.Compactions
			merges += st.TokenMerges
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(ctx, path, opts); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("reopen after step %d", i))
		}
	}
	st := s.Stats()
	compactions += st.Compactions
	merges += st.TokenMerges
	t.Logf("%d steps, %d flushes, %d compactions", done, merges, compactions)
	if merges < 10 || compactions == 0 {
		t.Fatalf("%d flushes and %d compactions ran: the test did not exercise segments", merges, compactions)
	}
	if st.Compactions == 0 {
		t.Errorf("no compaction after reopening")
	}
}

func cmpRef(a, b store.Ref) int {
	if a.Type != b.Type {
		if a.Type < b.Type {
			return -1
		}
		return 1
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}
