package search

import (
	"math"
	"math/rand"
	"strconv"
	"testing"
)

// TestParseNumMatchesRat checks that parseNum's float64 (strconv) is
// bit for bit the value big.Rat.Float64 gave before (the number and
// quantity tokens are built from it), and that rat is the exact value.
func TestParseNumMatchesRat(t *testing.T) {
	cases := []string{"0", "-0", "+0", "-0.000", "0e5", "1", "-1", "+7", "72", "120.5", "0.5", "0.1", "0.3",
		"3.14159265358979323846264338327950288419716939937510", "1e300", "-1e300", "9e300", "1e-300", "1.5e-300",
		"0.000000000000000000001e-300", "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368",
		"2.2250738585072011e-308", "4.9406564584124654e-324", "1.00000000000000011102230246251565404236316680908203125",
		"1.00000000000000011102230246251565404236316680908203124", "9007199254740993", "0.1e1"}
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		s := strconv.FormatInt(rnd.Int63n(1e12)-5e11, 10)
		if rnd.Intn(2) == 0 {
			s += "." + strconv.FormatInt(rnd.Int63n(1e9), 10)
		}
		if rnd.Intn(3) == 0 {
			s += "e" + strconv.Itoa(rnd.Intn(80)-40)
		}
		cases = append(cases, s)
	}
	for _, s := range cases {
		r, _, ok := parseDecimal(s)
		n, nok := parseNum(s)
		if ok != nok {
			t.Errorf("%s: parseDecimal ok=%v, parseNum ok=%v", s, ok, nok)
			continue
		}
		if !ok {
			continue
		}
		want, _ := r.Float64()
		if math.Float64bits(n.f) != math.Float64bits(want) {
			t.Errorf("%s: parseNum %v (%x), big.Rat %v (%x)", s, n.f, math.Float64bits(n.f), want, math.Float64bits(want))
		}
		if n.rat().Cmp(r) != 0 {
			t.Errorf("%s: rat %v, want %v", s, n.rat(), r)
		}
	}
	for _, s := range []string{"", "-", "1.", ".5", "1e", "1e400", "abc", "NaN", "Inf", "1_000", "0x10"} {
		if _, ok := parseNum(s); ok {
			t.Errorf("parseNum accepted %q", s)
		}
		if _, _, ok := parseDecimal(s); ok {
			t.Errorf("parseDecimal accepted %q", s)
		}
	}
}

// TestFoldASCIIMatchesUnicode checks the ASCII fast path of fold against
// the general one on random ASCII strings rich in spaces and capitals.
func TestFoldASCIIMatchesUnicode(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	alphabet := "aZ  \t\n\v\f\r.-|0Qz\x00~"
	cases := []string{"", " ", "a", "A", " a", "a ", "a  b", "a\tb", "already folded", "Peter James", "\x7f"}
	for i := 0; i < 5000; i++ {
		b := make([]byte, rnd.Intn(12))
		for j := range b {
			b[j] = alphabet[rnd.Intn(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		got, ok := foldASCII(s)
		if !ok {
			t.Fatalf("foldASCII(%q) refused ASCII", s)
		}
		if want := foldUnicode(s); got != want {
			t.Errorf("foldASCII(%q) = %q, foldUnicode %q", s, got, want)
		}
	}
	if _, ok := foldASCII("Zoë"); ok {
		t.Error("foldASCII accepted non-ASCII")
	}
}
