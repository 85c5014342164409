package search

import (
	"bytes"
	"encoding/hex"
	"math/rand"
	"strings"
	"testing"
	"time"
)

// TestTokenKindsPinned pins the stored token kinds: changing one silently
// would make every existing index miss (a change needs a $reindex).
func TestTokenKindsPinned(t *testing.T) {
	got := strings.Join([]string{kPresent, kStrPre, kStrExact, kStrTri, kTokSC, kTokNC, kTokC, kTokS, kTokText, kTokType,
		kRef, kRefID, kRefURL, kRefIdent, kRefIdV, kDateLow, kDateHigh, kNum, kQty, kQtyCode, kURI, kURIBelow, kSort}, " ")
	want := "m s^ sx s3 tsc tnc tc ts tt tot r ri ru rk rkv dl dh n q qc u ub sort"
	if got != want {
		t.Fatalf("token kinds changed:\n got  %s\n want %s", got, want)
	}
	if fanBits != 4 || dayBits != 20 || numBits != 24 || unixDay0001 != 719162 {
		t.Fatal("tree constants changed")
	}
	if d := dayNumber(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)); d != unixDay0001 {
		t.Fatalf("day of 1970-01-01 = %d", d)
	}
}

// TestCoverExact checks, for random ranges, that the cover nodes contain
// exactly the integers of the range: every value inside has one of its
// tree nodes in the cover, and no value outside has any.
func TestCoverExact(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	const bits = 12 // a small tree, so every value can be checked
	for i := 0; i < 300; i++ {
		a := uint64(rnd.Intn(1 << bits))
		b := a + uint64(rnd.Intn(1<<bits-int(a)))
		if i == 0 {
			a, b = 0, 1<<bits-1
		}
		nodes, all := cover(a, b, bits)
		if a == 0 && b == 1<<bits-1 {
			if !all {
				t.Fatal("full range not reported as all")
			}
			continue
		}
		set := map[string]bool{}
		for _, n := range nodes {
			set[n] = true
		}
		if len(nodes) > 2*15*bits/fanBits {
			t.Fatalf("[%d,%d]: %d nodes", a, b, len(nodes))
		}
		for v := uint64(0); v < 1<<bits; v++ {
			hit := 0
			for _, n := range treeNodes(v, bits) {
				if set[n] {
					hit++
				}
			}
			in := v >= a && v <= b
			if (in && hit != 1) || (!in && hit != 0) {
				t.Fatalf("[%d,%d] value %d: %d covering nodes", a, b, v, hit)
			}
		}
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Ångström": "angstrom", "  Zoë   Müller ": "zoe muller", "ＡＢＣ": "abc", "Straße": "straße", "ﬁne": "fine",
	} {
		if got := fold(in); got != want {
			t.Errorf("fold(%q) = %q, want %q", in, got, want)
		}
	}
	if p, whole := queryPrefix("chalmer"); p != "chalme" || whole {
		t.Errorf("queryPrefix(chalmer) = %q %v", p, whole)
	}
}

func TestParseDateSpan(t *testing.T) {
	for _, c := range []struct{ in, lo, hi string }{
		{"2020", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"},
		{"2020-02", "2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z"},
		{"2020-02-29", "2020-02-29T00:00:00Z", "2020-03-01T00:00:00Z"},
		{"2020-02-29T10:00", "2020-02-29T10:00:00Z", "2020-02-29T10:01:00Z"},
		{"2020-02-29T10:00:05+02:00", "2020-02-29T08:00:05Z", "2020-02-29T08:00:06Z"},
		{"2020-02-29T10:00:05.25Z", "2020-02-29T10:00:05.25Z", "2020-02-29T10:00:05.26Z"},
	} {
		sp, err := parseDateSpan(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := sp.low.Format(time.RFC3339Nano) + " " + sp.high.Format(time.RFC3339Nano); got != c.lo+" "+c.hi {
			t.Errorf("%s: %s, want %s %s", c.in, got, c.lo, c.hi)
		}
	}
	for _, bad := range []string{"", "20", "2020-13", "2021-02-29", "2020-01-01T25:00", "2020-01-01T10:00:00+15:00", "2020-01-01X", "2020-1-1"} {
		if _, err := parseDateSpan(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for in, delta := range map[string]string{"100": "1/2", "100.00": "1/200", "1.2e2": "5", "-0.5": "1/20", "1e-3": "1/2000"} {
		_, d, ok := parseDecimal(in)
		if !ok || d.RatString() != delta {
			t.Errorf("%s: delta %v ok %v, want %s", in, d, ok, delta)
		}
	}
	for _, bad := range []string{"", "1.", ".5", "1e999", "0x10", "1/2", "--1", "1e"} {
		if _, _, ok := parseDecimal(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSortKeyGolden pins the sort value format and checks its ordering.
func TestSortKeyGolden(t *testing.T) {
	v := values{strs: []string{"Müller", "Adams"}}
	k := sortKey(&v)
	if got := hex.EncodeToString(k); got != "00000005"+hex.EncodeToString([]byte("adams"))+"00000006"+hex.EncodeToString([]byte("muller")) {
		t.Fatalf("string sort key %s", got)
	}
	r := values{refs: []refValue{{typ: "Patient", id: "b"}, {typ: "Patient", id: "a"}}}
	asc, desc, refs, ok := splitSortKey(sortKey(&r))
	if !ok || string(asc) != "Patient/a" || string(desc) != "Patient/b" || strings.Join(refs, ",") != "Patient/a,Patient/b" {
		t.Fatalf("ref sort key: %q %q %v %v", asc, desc, refs, ok)
	}
	var prev []byte
	for _, f := range []float64{-1e300, -2.5, -0.0001, 0, 0.0001, 3, 1e300} {
		n := values{nums: []numValue{{f: f}}}
		a, _, _, _ := splitSortKey(sortKey(&n))
		if prev != nil && bytes.Compare(prev, a) >= 0 {
			t.Fatalf("number order broken at %v", f)
		}
		prev = a
	}
	if _, _, _, ok := splitSortKey([]byte{0, 0, 0, 9, 1}); ok {
		t.Fatal("truncated key accepted")
	}
}
