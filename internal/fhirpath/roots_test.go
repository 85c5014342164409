package fhirpath_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/fhirpath"
	"github.com/kilnhealth/kiln/internal/searchparam"
)

// hasRoot is the presence rule of the RootElements contract: the element
// under its own name or as a choice type (name followed by an upper-case
// letter).
func hasRoot(res map[string]any, name string) bool {
	for k := range res {
		if k == name || (len(k) > len(name) && k[:len(name)] == name && k[len(name)] >= 'A' && k[len(name)] <= 'Z') {
			return true
		}
	}
	return false
}

func TestRootElements(t *testing.T) {
	for _, c := range []struct {
		expr, typ string
		want      []string
		ok        bool
	}{
		{"Observation.code", "Observation", []string{"code"}, true},
		{"Observation.code", "Patient", nil, true},
		{"Observation.value.as(Quantity) | Observation.value.as(SampledData)", "Observation", []string{"value", "value"}, true},
		{"(Observation.value as Quantity)", "Observation", []string{"value"}, true},
		{"Observation.subject.where(resolve() is Patient)", "Observation", []string{"subject"}, true},
		{"AllergyIntolerance.patient | Observation.subject.where(resolve() is Patient)", "Observation", []string{"subject"}, true},
		{"Resource.meta.lastUpdated", "Observation", []string{"meta"}, true},
		{"DomainResource.text", "Bundle", nil, true},
		{"Bundle.entry[0].resource", "Bundle", []string{"entry"}, true},
		{"name.given.first()", "Patient", []string{"name"}, true},
		{"Patient.extension('http://x').value", "Patient", []string{"extension"}, true},
		// May yield something without any element: not skippable.
		{"Patient", "Patient", nil, false},
		{"Patient.deceased.exists() and Patient.deceased != false", "Patient", nil, false},
		{"Patient.name.empty()", "Patient", nil, false},
		{"Patient.name.count()", "Patient", nil, false},
		{"Patient.active.hasValue()", "Patient", nil, false},
		{"%resource.id", "Patient", nil, false},
		{"'a' | Patient.name", "Patient", nil, false},
		{"Patient.name | 'a'", "Patient", nil, false},
		{"$this.id", "Patient", nil, false},
	} {
		t.Run(c.expr+" on "+c.typ, func(t *testing.T) {
			got, ok := fhirpath.MustCompile(c.expr).RootElements(c.typ)
			if ok != c.ok || !slices.Equal(got, c.want) {
				t.Errorf("RootElements = %v, %v; want %v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// TestRootElementsContract checks the contract on every R4 search
// parameter expression and composite component-bearing expression over
// the resource corpus (the official examples and Synthea when present,
// plus built-in resources): whenever RootElements says ok and none of the
// names is present, evaluation yields nothing or fails.
func TestRootElementsContract(t *testing.T) {
	reg, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	r4, err := fhir.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	builtin := []map[string]any{
		{"resourceType": "Patient", "id": "p", "deceasedBoolean": false, "multipleBirthInteger": 2, "active": true},
		{"resourceType": "Observation", "id": "o", "status": "final", "valueString": "x", "effectivePeriod": map[string]any{"start": "2020"}},
		{"resourceType": "Condition", "id": "c", "onsetAge": map[string]any{"value": 3}, "_recordedDate": map[string]any{"extension": []any{}}},
		{"resourceType": "Bundle", "id": "b", "type": "collection", "entry": []any{map[string]any{"resource": map[string]any{"resourceType": "Patient", "id": "q"}}}},
	}
	var corpus []map[string]any
	corpus = append(corpus, builtin...)
	for _, it := range loadCorpus(t, false) {
		corpus = append(corpus, it.res)
	}
	env := fhirpath.Env{Model: fhirpath.CachedModel(r4)}
	compiled := map[string]*fhirpath.Expr{}
	checked, skipped := 0, 0
	for _, res := range corpus {
		typ := res["resourceType"].(string)
		for _, p := range reg.ForType(typ) {
			if p.Expression == "" {
				continue
			}
			e := compiled[p.Expression]
			if e == nil {
				if e, err = fhirpath.Compile(p.Expression); err != nil {
					continue
				}
				compiled[p.Expression] = e
			}
			names, ok := e.RootElements(typ)
			checked++
			if !ok || slices.ContainsFunc(names, func(n string) bool { return hasRoot(res, n) }) {
				continue
			}
			skipped++
			for _, en := range []fhirpath.Env{{}, env} {
				if nodes, err := e.Evaluate(res, en); err == nil && len(nodes) > 0 {
					t.Errorf("%s on %s/%v: RootElements %v absent, yet evaluation gave %d items", p.Code, typ, res["id"], names, len(nodes))
				}
			}
		}
	}
	t.Logf("%d evaluations, %d of them provably empty from RootElements", checked, skipped)
	if skipped*4 < checked {
		t.Errorf("only %d of %d evaluations are skippable; the analysis lost its point", skipped, checked)
	}
}

// TestEvaluatorMatchesEvaluate runs every R4 search parameter expression
// (and each composite's components at each node) over the corpus twice:
// through Expr.Evaluate/EvaluateAt and through one reused Evaluator. The
// results must be the same, and must still be after the Evaluator has
// moved on to the next resource. The same holds for Expr.ForType of the
// resource's type.
func TestEvaluatorMatchesEvaluate(t *testing.T) {
	reg, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	r4, err := fhir.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	env := fhirpath.Env{Model: fhirpath.CachedModel(r4)}
	corpus := []map[string]any{
		{"resourceType": "Observation", "id": "o", "code": map[string]any{"text": "x"},
			"component": []any{map[string]any{"code": map[string]any{"text": "y"}, "valueString": "v"}}},
		{"resourceType": "Observation", "id": "o2", "code": map[string]any{"text": "z"}},
	}
	for _, it := range loadCorpus(t, false) {
		corpus = append(corpus, it.res)
	}
	type run struct {
		what      string
		got, want []fhirpath.Node
	}
	n := 0
	check := func(runs []run) {
		for _, r := range runs {
			n++
			if len(r.got) != len(r.want) {
				t.Fatalf("%s: %d items, want %d", r.what, len(r.got), len(r.want))
			}
			for i := range r.got {
				if r.got[i].Type != r.want[i].Type || !fhir.Equal(r.got[i].Value, r.want[i].Value) {
					t.Fatalf("%s: item %d is %+v, want %+v", r.what, i, r.got[i], r.want[i])
				}
			}
		}
	}
	var ev fhirpath.Evaluator
	var prev []run // checked after the next resource's evaluations
	for _, res := range corpus {
		typ := res["resourceType"].(string)
		where := fmt.Sprintf(" on %s/%v", typ, res["id"])
		var runs []run
		for _, p := range reg.ForType(typ) {
			e, err := fhirpath.Compile(p.Expression)
			if p.Expression == "" || err != nil {
				continue
			}
			want, werr := e.Evaluate(res, env)
			got, gerr := ev.Evaluate(e, res, env)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%s%s: errors %v and %v", p.Code, where, werr, gerr)
			}
			runs = append(runs, run{p.Code + where, got, want})
			// The expression specialised for the type gives the same.
			ft, ferr := e.ForType(typ).Evaluate(res, env)
			if (werr == nil) != (ferr == nil) {
				t.Fatalf("%s%s for its type: errors %v and %v", p.Code, where, werr, ferr)
			}
			runs = append(runs, run{p.Code + " for its type" + where, ft, want})
			for _, c := range p.Components {
				ce, err := fhirpath.Compile(c.Expression)
				if err != nil {
					continue
				}
				for _, nd := range want {
					cw, _ := ce.EvaluateAt(res, nd, env)
					cg, _ := ev.EvaluateAt(ce, res, nd, env)
					runs = append(runs, run{p.Code + " component " + c.Expression + where, cg, cw})
				}
			}
		}
		check(prev)
		prev = runs
	}
	check(prev)
	if n < 1000 {
		t.Fatalf("only %d evaluations compared", n)
	}
}

func TestForType(t *testing.T) {
	for _, c := range []struct{ expr, typ, want string }{
		{"Observation.code", "Observation", "same"},
		{"Observation.code | Patient.name", "Observation", "pruned"},
		{"AllergyIntolerance.patient | Observation.subject.where(resolve() is Patient) | Patient.link.other", "Observation", "pruned"},
		{"Patient.name | Practitioner.name", "Observation", "pruned"},
		{"Patient.name[0] | Observation.code", "Observation", "same"},        // an index may fail
		{"Patient.extension('x') | Observation.code", "Observation", "same"}, // its argument may fail
		{"Patient.name.exists() | Observation.code", "Observation", "same"},  // true from nothing
		{"Resource.id | DomainResource.text", "Observation", "same"},         // both apply
	} {
		e := fhirpath.MustCompile(c.expr)
		got := "pruned"
		if e.ForType(c.typ) == e {
			got = "same"
		}
		if got != c.want {
			t.Errorf("%s for %s: %s, want %s", c.expr, c.typ, got, c.want)
		}
	}
}
