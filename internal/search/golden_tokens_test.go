package search_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
)

// The golden digests below pin the stored index format: the exact blind
// tokens, sort slots and sort-value plaintexts that Indexer.Index produces
// under a fixed key (testKeys: ARK = 32 bytes of 0x07, account "default").
// Existing stores must stay searchable without $reindex, so any change to
// a digest is a format change, not an optimisation.
//
// How they were made: the digests were printed by this test
// (KILN_GOLDEN_PRINT=1 go test ./internal/search -run TestIndexGolden -v)
// with the indexer of commit 25281ca, before the index was optimised, and
// pasted here. Each resource's digest is SHA-256 over its sorted token
// hex strings ("t " lines) followed by its sort values sorted by slot
// ("s slot code plaintext" lines, the plaintext recovered with Open).

// goldenFixtures pins each conformance fixture (fixtures_test.go).
var goldenFixtures = map[string]string{
	"Patient/p1":         "f680d9aeec5bf33eb22c6fc132351b9a41d1256c56b4528500ff104acf7a7600",
	"Patient/p2":         "59e02f87f0ec3d2300c1199e37521ad781778c8db0b27bef60144dcd525a8124",
	"Patient/p3":         "54e6c3254959d0680b4dbf1be59c2246cb61e8302c38fdec6cda1f484c3d97dc",
	"Patient/p4":         "420e929f54dab8a354d159bae09f0d61afe0e71a636dca86e2da811de83df242",
	"Practitioner/pr1":   "798d725597da035998e52bc6d7c20eb4565259d8d2545eca1398871d384c4d0e",
	"Observation/o1":     "28d9df99d7be44a2a020c5ee9d78a2828ec18d696a045993cc17d83db4616487",
	"Observation/o2":     "9da2e96402c8f4b665355f4eb0c6f316ad80b722654169dce8730a9ebf23de95",
	"Observation/o3":     "7ff04af7b984cbb84317082edacba344391e73115c54b1b5a39cc9a5e7d6e7cd",
	"Observation/o4":     "d0dc371bb78f3f5422c7220000f2c4465c749ee1ccc9046ee2a268d79cc471f6",
	"Observation/o5":     "9a17afa261a7d182b75f1ddc53cbaa155bd93efe063a0414af00d091e64db6b3",
	"Observation/o6":     "32834470c3bad27e0c4160a2e516073f425aa4db268cc6b0b8863528dafb9bf8",
	"Observation/o7":     "abe80eb81306b65a4a9333901555619c3c561cace5bb29fa29e5ab44e7376fbc",
	"Observation/o8":     "c63f86e899b0c2732e5ac2f227b73be2976d56fdc402ac45362e2dd20c84dc77",
	"RiskAssessment/ra1": "c5b3d81252ac869632c92a512ad8d6c909467f0f6f3f38678f257b0950887fa0",
	"RiskAssessment/ra2": "039bd994d461aef8361ceaa237f7189d2b7ef6017f6486564ee6281a9f69c39a",
	"ValueSet/vs1":       "4f6a04162aeb9ae578cc93da6e2572e22c8edcb09a0fdb46426626e6a759eb82",
	"ValueSet/vs2":       "cabe11d9f35ff1b6d83823d6b06b0a4c985b04ea113cec60e717ebf156118618",
	"ValueSet/vs3":       "6447ed9ee8b550a53dd187d0059f4207c8907672b73bd2287ecf31630cf7c92a",
	"Condition/c1":       "02844451d4232ad246dfca76f482ef9b43eb7be19ab59a9480cd4e31599247b9",
}

// goldenSets pins whole corpora that are present only on some machines
// (the R4 examples package and the first two Synthea bundles of the
// shared data); the value is "resources:digest".
var goldenSets = map[string]string{
	"fixtures":    "19:93848437482a8c4d8a4932707a2fcd61331106436fc105ce666c6813b8733089",
	"r4-examples": "5305:7df558cc47d04d3be96fada7c3c5902c6f545ffee9b4b68490253c284b15d8bf",
	"synthea":     "501:2bebd2cc7ba590e4b78229b1cc11f4ce69209c6b20f6ad1894000322556a5e9f",
}

type goldenIndexer struct {
	x     *search.Indexer
	keys  *seal.AccountKeys
	slots map[string]map[string]string // type -> slot hex -> code
}

func newGoldenIndexer(t testing.TB) *goldenIndexer {
	t.Helper()
	reg, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	model, err := fhir.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	x, err := search.NewIndexer(reg, model)
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys(t)
	// Aliased parameters (aliases.go) write no tokens of their own; the
	// digests pin the full format, every token of every parameter.
	g := &goldenIndexer{x: search.WithoutAliases(x), keys: keys, slots: map[string]map[string]string{}}
	for _, typ := range reg.ResourceTypes() {
		m := map[string]string{}
		for _, p := range reg.ForType(typ) {
			m[hex.EncodeToString(keys.Token(typ, p.Code, "sort", ""))] = p.Code
		}
		g.slots[typ] = m
	}
	return g
}

// digest indexes res and returns its digest and token count.
func (g *goldenIndexer) digest(t testing.TB, res map[string]any) (string, int) {
	t.Helper()
	typ, _ := res["resourceType"].(string)
	id, _ := res["id"].(string)
	toks, sorts, err := g.x.Index(g.keys, typ, id, res)
	if err != nil {
		t.Fatalf("%s/%s: %v", typ, id, err)
	}
	var lines []string
	seen := map[string]bool{}
	for _, tk := range toks {
		if len(tk) != seal.TokenSize {
			t.Fatalf("%s/%s: token of %d bytes", typ, id, len(tk))
		}
		h := hex.EncodeToString(tk)
		if seen[h] {
			t.Fatalf("%s/%s: duplicate token %s", typ, id, h)
		}
		seen[h] = true
		lines = append(lines, "t "+h)
	}
	sort.Strings(lines)
	var sl []string
	for _, s := range sorts {
		slot := hex.EncodeToString(s.Slot)
		code, ok := g.slots[typ][slot]
		if !ok {
			t.Fatalf("%s/%s: sort slot %s is no parameter's", typ, id, slot)
		}
		pt, err := g.keys.Open(s.Value, seal.Binding{Account: g.keys.Account(), Type: typ, ID: id, Purpose: "sort:" + code})
		if err != nil {
			t.Fatalf("%s/%s: open sort value of %s: %v", typ, id, code, err)
		}
		sl = append(sl, "s "+slot+" "+code+" "+hex.EncodeToString(pt))
	}
	sort.Strings(sl)
	sum := sha256.Sum256([]byte(strings.Join(append(lines, sl...), "\n")))
	return hex.EncodeToString(sum[:]), len(toks)
}

func goldenPrint() bool { return os.Getenv("KILN_GOLDEN_PRINT") != "" }

func checkGoldenSet(t *testing.T, g *goldenIndexer, name string, res []map[string]any) {
	t.Helper()
	all := sha256.New()
	tokens := 0
	for _, r := range res {
		d, n := g.digest(t, r)
		tokens += n
		fmt.Fprintf(all, "%s/%s %s\n", r["resourceType"], r["id"], d)
	}
	got := fmt.Sprintf("%d:%x", len(res), all.Sum(nil))
	if goldenPrint() {
		t.Logf("golden set %q: %q (%d tokens)", name, got, tokens)
		return
	}
	want, ok := goldenSets[name]
	if !ok {
		t.Fatalf("no golden digest for set %q", name)
	}
	if got != want {
		t.Errorf("set %s: index digest %s, want %s: the blind-token or sort-value format changed", name, got, want)
	}
}

// TestIndexGolden fails when an optimisation changes any token, sort slot
// or sort value of the conformance fixtures, the official R4 examples (when
// present in .cache/npm/package) or the first Synthea bundles (when the
// shared data is present).
func TestIndexGolden(t *testing.T) {
	g := newGoldenIndexer(t)
	t.Run("fixtures", func(t *testing.T) {
		if len(fixtures) < 10 {
			t.Fatalf("only %d fixtures", len(fixtures))
		}
		for _, f := range fixtures {
			r := decodeFixture(t, f)
			key := fmt.Sprintf("%s/%s", r["resourceType"], r["id"])
			d, n := g.digest(t, r)
			if n == 0 {
				t.Errorf("%s: no tokens", key)
			}
			if goldenPrint() {
				t.Logf("%q: %q,", key, d)
				continue
			}
			if want := goldenFixtures[key]; d != want {
				t.Errorf("%s: index digest %s, want %s: the blind-token or sort-value format changed", key, d, want)
			}
		}
		var res []map[string]any
		for _, f := range fixtures {
			res = append(res, decodeFixture(t, f))
		}
		checkGoldenSet(t, g, "fixtures", res)
	})
	t.Run("r4-examples", func(t *testing.T) {
		dir := filepath.Join("..", "..", ".cache", "npm", "package")
		if d := os.Getenv("KILN_FHIR_PACKAGE"); d != "" {
			dir = d
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		sort.Strings(files)
		var res []map[string]any
		for _, f := range files {
			base := filepath.Base(f)
			if base == "package.json" || base == "ig-r4.json" || base == ".index.json" {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := decodeFixture(t, string(b))
			typ, _ := r["resourceType"].(string)
			if _, ok := g.slots[typ]; !ok {
				continue
			}
			if _, ok := r["id"].(string); !ok {
				r["id"] = strings.TrimSuffix(base, ".json")
			}
			res = append(res, r)
		}
		if len(res) == 0 {
			t.Skipf("official R4 examples not found in %s; skipping", dir)
		}
		checkGoldenSet(t, g, "r4-examples", res)
	})
	t.Run("synthea", func(t *testing.T) {
		files := syntheaFiles(t)
		var res []map[string]any
		for _, f := range files[:min(2, len(files))] {
			res = append(res, syntheaResources(t, f)...)
		}
		checkGoldenSet(t, g, "synthea", res)
	})
}
