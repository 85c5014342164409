package searchparam_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kilnhealth/kiln/internal/searchparam"
)

func load(t testing.TB) *searchparam.Registry {
	t.Helper()
	r, err := searchparam.Load()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The counts come from the R4 specification (search parameter registry,
// hl7.org/fhir/R4/searchparameter-registry.html) and the package bundle.
func TestCounts(t *testing.T) {
	r := load(t)
	all := r.All()
	if len(all) != 1375 {
		t.Fatalf("got %d parameters, want 1375", len(all))
	}
	byType := map[searchparam.Type]int{}
	for _, p := range all {
		byType[p.Type]++
	}
	want := map[searchparam.Type]int{
		searchparam.Token: 536, searchparam.Reference: 472, searchparam.String: 133,
		searchparam.Date: 109, searchparam.Composite: 46, searchparam.URI: 45,
		searchparam.Quantity: 27, searchparam.Number: 6, searchparam.Special: 1,
	}
	for k, v := range want {
		if byType[k] != v {
			t.Errorf("type %s: got %d, want %d", k, byType[k], v)
		}
	}
	if n := len(r.ResourceTypes()); n != 146 {
		t.Errorf("got %d resource types, want 146", n)
	}
}

func TestFor(t *testing.T) {
	r := load(t)
	cases := []struct {
		rt, code, url string
		typ           searchparam.Type
		expr          string
	}{
		{"Patient", "name", "http://hl7.org/fhir/SearchParameter/Patient-name", searchparam.String, "Patient.name"},
		{"Observation", "subject", "http://hl7.org/fhir/SearchParameter/Observation-subject", searchparam.Reference, "Observation.subject"},
		{"Observation", "patient", "http://hl7.org/fhir/SearchParameter/clinical-patient", searchparam.Reference, ""},
		{"Patient", "_id", "http://hl7.org/fhir/SearchParameter/Resource-id", searchparam.Token, "Resource.id"},
		{"Bundle", "_lastUpdated", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", searchparam.Date, "Resource.meta.lastUpdated"},
		{"Patient", "_text", "http://hl7.org/fhir/SearchParameter/DomainResource-text", searchparam.String, ""},
		{"Location", "near", "http://hl7.org/fhir/SearchParameter/Location-near", searchparam.Special, "Location.position"},
	}
	for _, c := range cases {
		t.Run(c.rt+"."+c.code, func(t *testing.T) {
			p, ok := r.For(c.rt, c.code)
			if !ok {
				t.Fatal("not found")
			}
			if p.URL != c.url || p.Type != c.typ || (c.expr != "" && p.Expression != c.expr) {
				t.Fatalf("got %s %s %q", p.URL, p.Type, p.Expression)
			}
		})
	}
	for _, c := range [][2]string{{"Bundle", "_text"}, {"Parameters", "_text"}, {"Patient", "nope"}, {"NotAType", "_id"}, {"Resource", "_id"}} {
		if p, ok := r.For(c[0], c[1]); ok {
			t.Errorf("For(%s, %s) = %s, want none", c[0], c[1], p.URL)
		}
	}
}

func TestForType(t *testing.T) {
	r := load(t)
	ps := r.ForType("Patient")
	var codes []string
	for _, p := range ps {
		codes = append(codes, p.Code)
	}
	for _, want := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content", "_query", "name", "birthdate", "general-practitioner", "identifier"} {
		if !slices.Contains(codes, want) {
			t.Errorf("Patient lacks %s", want)
		}
	}
	if !slices.IsSorted(codes) {
		t.Error("ForType not sorted by code")
	}
	b := r.ForType("Bundle")
	for _, p := range b {
		if p.Code == "_text" {
			t.Error("Bundle is not a DomainResource but got _text")
		}
	}
	if r.ForType("Nope") != nil {
		t.Error("unknown type gave parameters")
	}
	// Every resource type gets at least the Resource parameters, and every
	// base named by a parameter is a resource type.
	for _, rt := range r.ResourceTypes() {
		if len(r.ForType(rt)) < 6 {
			t.Errorf("%s has %d parameters", rt, len(r.ForType(rt)))
		}
	}
	for _, p := range r.All() {
		for _, b := range p.Base {
			if b != "Resource" && b != "DomainResource" && !r.IsResourceType(b) {
				t.Errorf("%s has unknown base %s", p.URL, b)
			}
		}
	}
}

func TestComposites(t *testing.T) {
	r := load(t)
	p, ok := r.For("Observation", "code-value-quantity")
	if !ok {
		t.Fatal("missing Observation code-value-quantity")
	}
	if p.Type != searchparam.Composite || len(p.Components) != 2 || p.MultipleOr {
		t.Fatalf("got %+v", p)
	}
	if p.Components[1].Expression != "value.as(Quantity)" {
		t.Errorf("component expression %q", p.Components[1].Expression)
	}
	for _, p := range r.All() {
		if (p.Type == searchparam.Composite) != (len(p.Components) > 0) {
			t.Errorf("%s: type %s with %d components", p.URL, p.Type, len(p.Components))
		}
		for _, c := range p.Components {
			if _, ok := r.ByURL(c.Definition); !ok {
				t.Errorf("%s: component %s not in registry", p.URL, c.Definition)
			}
		}
	}
}

func TestTargets(t *testing.T) {
	r := load(t)
	p, _ := r.For("Observation", "subject")
	if !slices.Contains(p.Target, "Patient") || !slices.Contains(p.Target, "Group") {
		t.Errorf("targets %v", p.Target)
	}
	p, _ = r.For("Account", "period")
	if !slices.Equal(p.Comparator, []string{"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"}) {
		t.Errorf("comparators %v", p.Comparator)
	}
}

func Example() {
	r, err := searchparam.Load()
	if err != nil {
		panic(err)
	}
	p, _ := r.For("Observation", "code-value-quantity")
	fmt.Println(p.Type, p.Expression)
	for _, c := range p.Components {
		fmt.Println(" ", c.Expression)
	}
	// Output:
	// composite Observation
	//   code
	//   value.as(Quantity)
}
