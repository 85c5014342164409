package search

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/fhirpath"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/secret"
)

func aliasParams(t testing.TB) *params {
	t.Helper()
	reg, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	model, err := fhir.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	return newParams(reg, fhirpath.Env{Model: model})
}

func TestExprParts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Observation.code | Observation.component.code", []string{"Observation.code", "Observation.component.code"}},
		{"(Observation.value as Quantity) | (Observation.value as SampledData)", []string{"Observation.value.as(Quantity)", "Observation.value.as(SampledData)"}},
		{"Observation.subject.where(resolve() is Patient)", []string{"Observation.subject.where(resolve()isPatient)"}},
		{"a.where(x = 'p|q') | b", []string{"a.where(x='p|q')", "b"}},
		{"(a | b)", []string{"(a|b)"}},
		{"a |", nil},
	} {
		if got := exprParts(c.in); !slices.Equal(got, c.want) {
			t.Errorf("exprParts(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := exprPartsFor("Account.identifier | Patient.identifier", "Patient"); !slices.Equal(got, []string{"Patient.identifier"}) {
		t.Errorf("exprPartsFor = %q", got)
	}
	if got := exprPartsFor("%resource.x | Patient.y", "Patient"); got != nil {
		t.Errorf("exprPartsFor of a part from a variable = %q, want nil (no proof)", got)
	}
}

// The aliases Kiln relies on most (Synthea's Observations) are found, and
// a parameter with a filter of its own is never an alias.
func TestAliasTableObservation(t *testing.T) {
	ps := aliasParams(t)
	a := ps.aliases
	for code, want := range map[string][]string{
		"combo-code":                  {"code", "component-code"},
		"combo-value-quantity":        {"component-value-quantity", "value-quantity"},
		"combo-value-concept":         {"component-value-concept", "value-concept"},
		"code-value-quantity$0":       {"code"},
		"code-value-quantity$1":       {"value-quantity"},
		"combo-code-value-quantity$0": {"code", "component-code"},
		"combo-code-value-quantity$1": {"component-value-quantity", "value-quantity"},
	} {
		if got := a.codes("Observation", code); !slices.Equal(got, want) {
			t.Errorf("Observation %s stands for %q, want %q", code, got, want)
		}
	}
	for _, code := range []string{"code", "patient", "subject", "value-quantity", "date"} {
		if a.aliased("Observation", code) {
			t.Errorf("Observation %s is an alias of %q", code, a.codes("Observation", code))
		}
	}
	n := 0
	for _, m := range a {
		n += len(m)
	}
	t.Logf("%d aliased token codes over %d resource types", n, len(a))
}

// tokenPairs returns the tokens the emitter produces for v, all under one
// parameter code so that two parameters' values compare by value.
func tokenPairs(t testing.TB, keys *seal.AccountKeys, v *values) map[string]bool {
	var b seal.TokenBatch
	e := emitter{b: &b, typ: "T", code: "c"}
	e.emit(v)
	toks, err := keys.AppendTokens(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for i := 0; i+seal.TokenSize <= len(toks); i += seal.TokenSize {
		out[string(toks[i:i+seal.TokenSize])] = true
	}
	return out
}

// The oracle for the syntactic proof: on every official R4 example and the
// Synthea resources, an aliased parameter's tokens equal the union of its
// stand-ins' (a composite component's are a subset of them).
func TestAliasesCoverValues(t *testing.T) {
	ps := aliasParams(t)
	codec, err := seal.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.Derive("a", secret.New(bytes.Repeat([]byte{7}, seal.RootKeySize)), seal.Generations{Current: 1, Min: 1}, codec, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var resources []map[string]any
	examples, _ := filepath.Glob(filepath.Join("..", "..", ".cache", "npm", "package", "*.json"))
	for _, f := range examples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		if json.Unmarshal(b, &res) != nil {
			continue
		}
		if typ, _ := res["resourceType"].(string); ps.aliases[typ] != nil {
			resources = append(resources, res)
		}
	}
	bundles, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "data", "synthea", "bundles", "*.json.gz"))
	for _, f := range bundles[:min(len(bundles), 10)] {
		resources = append(resources, readBundleResources(t, f)...)
	}
	if len(resources) == 0 {
		t.Skip("no R4 examples (.cache/npm, made by .ci/run) and no Synthea data (../shared/data)")
	}
	checked := 0
	for _, res := range resources {
		typ, _ := res["resourceType"].(string)
		for code, stand := range ps.aliases[typ] {
			union := map[string]bool{}
			for _, s := range stand {
				q, _ := ps.lookup(typ, s)
				v := ps.extract(q, res)
				for k := range tokenPairs(t, keys, &v) {
					union[k] = true
				}
			}
			var got map[string]bool
			base, comp, isComp := strings.Cut(code, "$")
			p, _ := ps.lookup(typ, base)
			if isComp {
				got = map[string]bool{}
				i := int(comp[0] - '0')
				for _, row := range ps.extractComposite(p, res) {
					if i < len(row) {
						for k := range tokenPairs(t, keys, &row[i]) {
							got[k] = true
						}
					}
				}
			} else {
				v := ps.extract(p, res)
				got = tokenPairs(t, keys, &v)
			}
			for k := range got {
				if !union[k] {
					t.Fatalf("%s/%v %s: token %q not among %q's", typ, res["id"], code, k, stand)
				}
			}
			if !isComp && len(got) != len(union) {
				t.Fatalf("%s/%v %s: %d tokens, its stand-ins %q have %d", typ, res["id"], code, len(got), stand, len(union))
			}
			checked++
		}
	}
	t.Logf("%d (resource, aliased code) pairs checked over %d resources", checked, len(resources))
}

func readBundleResources(t *testing.T, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&bundle); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range bundle.Entry {
		out = append(out, e.Resource)
	}
	return out
}
