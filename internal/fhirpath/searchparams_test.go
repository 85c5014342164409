package fhirpath_test

import (
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/fhirpath"
	"github.com/kilnhealth/kiln/internal/searchparam"
)

// TestAllSearchParameters compiles every R4 SearchParameter expression and
// composite component, and evaluates each on a small resource of every base
// type with and without the R4 model. It needs no node or npm; the
// differential test in oracle_test.go checks the results themselves.
func TestAllSearchParameters(t *testing.T) {
	reg, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	r4, err := fhir.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range reg.All() {
		if p.Expression == "" {
			continue
		}
		e, err := fhirpath.Compile(p.Expression)
		if err != nil {
			t.Errorf("%s: %v", p.URL, err)
			continue
		}
		n++
		var comps []*fhirpath.Expr
		for _, c := range p.Components {
			ce, err := fhirpath.Compile(c.Expression)
			if err != nil {
				t.Errorf("%s component %q: %v", p.URL, c.Expression, err)
				continue
			}
			n++
			comps = append(comps, ce)
		}
		bases := p.Base
		if bases[0] == "Resource" || bases[0] == "DomainResource" {
			bases = []string{"Patient", "Bundle"}
		}
		for _, b := range bases {
			res := map[string]any{
				"resourceType": b, "id": "x",
				"meta":    map[string]any{"lastUpdated": "2024-01-01T00:00:00Z", "tag": []any{map[string]any{"code": "t"}}},
				"subject": map[string]any{"reference": "Patient/1"},
				"status":  "active",
			}
			for _, env := range []fhirpath.Env{{}, {Model: r4}} {
				nodes, err := e.Evaluate(res, env)
				if err != nil {
					t.Errorf("%s on %s: %v", p.URL, b, err)
				}
				for _, nd := range nodes {
					for _, ce := range comps {
						if _, err := ce.EvaluateAt(res, nd, env); err != nil {
							t.Errorf("%s component on %s: %v", p.URL, b, err)
						}
					}
				}
			}
		}
	}
	if n != 1372+96 {
		t.Errorf("compiled %d expressions, want 1,372 main expressions and 96 components", n)
	}
	// Spot checks on the minimal resource.
	p, _ := reg.For("Patient", "_id")
	nodes, _ := fhirpath.MustCompile(p.Expression).Evaluate(map[string]any{"resourceType": "Patient", "id": "x"}, fhirpath.Env{Model: r4})
	if len(nodes) != 1 || nodes[0].Value != "x" {
		t.Errorf("_id on Patient: %+v", nodes)
	}
}
