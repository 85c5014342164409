package fhirpath_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhirpath"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const obs = `{
  "resourceType": "Observation", "id": "o1",
  "contained": [{"resourceType": "Patient", "id": "p1"}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}, {"system": "http://snomed.info/sct", "code": "364075005"}]},
  "subject": {"reference": "Patient/123"},
  "performer": [
    {"reference": "https://example.org/fhir/Practitioner/9/_history/2"},
    {"reference": "#p1"},
    {"reference": "urn:uuid:0b3e", "type": "RelatedPerson"},
    {"reference": "urn:uuid:0b3f"},
    {"display": "no reference"}
  ],
  "effectivePeriod": {"start": "2020-01-01", "end": "2020-01-02"},
  "valueQuantity": {"value": 72.50, "unit": "/min"},
  "component": [
    {"code": {"text": "a"}, "valueQuantity": {"value": 1}},
    {"code": {"text": "b"}, "valueString": "x"},
    {"code": {"text": "c"}, "valueQuantity": {"value": 1.0}}
  ],
  "extension": [{"url": "http://e/1", "valueString": "one"}, {"url": "http://e/2", "valueBoolean": true}]
}`

func evalJSON(t *testing.T, expr string, res map[string]any) (string, []fhirpath.Node) {
	t.Helper()
	e, err := fhirpath.Compile(expr)
	if err != nil {
		t.Fatalf("compile %q: %v", expr, err)
	}
	nodes, err := e.Evaluate(res, fhirpath.Env{})
	if err != nil {
		t.Fatalf("evaluate %q: %v", expr, err)
	}
	vals := make([]any, len(nodes))
	for i, n := range nodes {
		vals[i] = n.Value
	}
	b, err := json.Marshal(vals)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nodes
}

func TestEvaluate(t *testing.T) {
	res := decode(t, obs)
	cases := []struct {
		name, expr, want string
		types            []string
	}{
		{"type prefix matches", "Observation.id", `["o1"]`, []string{"string"}},
		{"type prefix other type", "Patient.id", `[]`, nil},
		{"Resource prefix", "Resource.id", `["o1"]`, nil},
		{"DomainResource prefix", "DomainResource.id", `["o1"]`, nil},
		{"flattening", "Observation.code.coding.code", `["8867-4","364075005"]`, nil},
		{"choice navigation", "Observation.value", `[{"unit":"/min","value":72.50}]`, []string{"Quantity"}},
		{"choice period", "Observation.effective", `[{"end":"2020-01-02","start":"2020-01-01"}]`, []string{"Period"}},
		{"as operator", "(Observation.value as Quantity)", `[{"unit":"/min","value":72.50}]`, []string{"Quantity"}},
		{"as wrong type", "(Observation.value as CodeableConcept)", `[]`, nil},
		{"as function", "Observation.value.as(Quantity).value", `[72.50]`, []string{"decimal"}},
		{"as over several items filters", "(Observation.component.value as Quantity)", `[{"value":1},{"value":1.0}]`, nil},
		{"ofType", "Observation.component.value.ofType(string)", `["x"]`, nil},
		{"is operator", "Observation.value is Quantity", `[true]`, []string{"System.Boolean"}},
		{"is function", "Observation.effective.is(Period)", `[true]`, nil},
		{"is supertype", "Observation.value is Element", `[true]`, nil},
		{"is System type", "Observation.id is System.String", `[false]`, nil},
		{"resolve relative", "Observation.subject.where(resolve() is Patient)", `[{"reference":"Patient/123"}]`, nil},
		{"resolve absolute history", "Observation.performer.where(resolve() is Practitioner)", `[{"reference":"https://example.org/fhir/Practitioner/9/_history/2"}]`, nil},
		{"resolve contained", "Observation.performer.where(resolve() is Patient)", `[{"reference":"#p1"}]`, nil},
		{"resolve declared type", "Observation.performer.where(resolve() is RelatedPerson)", `[{"reference":"urn:uuid:0b3e","type":"RelatedPerson"}]`, nil},
		{"resolve stub", "Observation.performer.resolve()", `[{"id":"9","resourceType":"Practitioner"},{"id":"p1","resourceType":"Patient"},{"resourceType":"RelatedPerson"}]`, []string{"Practitioner", "Patient", "RelatedPerson"}},
		{"union dedup", "Observation.component.value.ofType(Quantity) | Observation.component.value.ofType(Quantity)", `[{"value":1}]`, nil},
		{"union order", "Observation.id | Observation.code.coding.system", `["o1","http://loinc.org","http://snomed.info/sct"]`, nil},
		{"where equality", "Observation.code.coding.where(system='http://loinc.org').code", `["8867-4"]`, nil},
		{"not equal", "Observation.id != 'o2'", `[true]`, nil},
		{"equal empty", "Observation.status = 'final'", `[]`, nil},
		{"exists and", "Observation.value.exists() and Observation.id != 'x'", `[true]`, nil},
		{"and with empty", "Observation.status.exists() and {}", `[false]`, nil},
		{"or with empty", "{} or Observation.id.exists()", `[true]`, nil},
		{"unknown and", "{} and true", `[]`, nil},
		{"not", "Observation.status.exists().not()", `[true]`, nil},
		{"empty", "Observation.status.empty()", `[true]`, nil},
		{"first", "Observation.code.coding.first().code", `["8867-4"]`, nil},
		{"indexer", "Observation.component[1].value", `["x"]`, []string{"string"}},
		{"indexer out of range", "Observation.component[7]", `[]`, nil},
		{"extension", "Observation.extension('http://e/2').value", `[true]`, []string{"boolean"}},
		{"percent resource", "%resource.id", `["o1"]`, nil},
		{"this", "Observation.code.coding.code.where($this = '8867-4')", `["8867-4"]`, nil},
		{"exists with criteria", "Observation.component.exists(code.text = 'c')", `[true]`, nil},
		{"select", "Observation.component.select(code.text)", `["a","b","c"]`, nil},
		{"count", "Observation.component.count()", `[3]`, []string{"System.Integer"}},
		{"number equality", "Observation.component.value.ofType(Quantity).value.first() = 1.0", `[true]`, nil},
		{"string literal escapes", `'a\'b\u0041' = 'a''b' `, `[]`, nil},
		{"delimited identifier", "Observation.`id`", `["o1"]`, nil},
		{"comments", "Observation.id // trailing\n", `["o1"]`, nil},
	}
	for _, c := range cases {
		if c.name == "string literal escapes" {
			continue // checked in TestLiterals
		}
		t.Run(c.name, func(t *testing.T) {
			got, nodes := evalJSON(t, c.expr, res)
			if got != c.want {
				t.Errorf("%s\n got  %s\n want %s", c.expr, got, c.want)
			}
			if c.types != nil {
				for i, n := range nodes {
					if i < len(c.types) && n.Type != c.types[i] {
						t.Errorf("item %d type %q, want %q", i, n.Type, c.types[i])
					}
				}
			}
		})
	}
}

func TestLiterals(t *testing.T) {
	res := decode(t, `{"resourceType":"Basic","id":"a'bA"}`)
	got, _ := evalJSON(t, `Basic.id = 'a\'b\u0041'`, res)
	if got != `[true]` {
		t.Fatalf("got %s", got)
	}
	got, _ = evalJSON(t, `-1.5 = -1.50`, res)
	if got != `[true]` {
		t.Fatalf("got %s", got)
	}
}

// Patient.deceased is the one R4 search expression that uses !=.
func TestDeceased(t *testing.T) {
	e := fhirpath.MustCompile("Patient.deceased.exists() and Patient.deceased != false")
	for _, c := range []struct{ res, want string }{
		{`{"resourceType":"Patient"}`, "false"},
		{`{"resourceType":"Patient","deceasedBoolean":false}`, "false"},
		{`{"resourceType":"Patient","deceasedBoolean":true}`, "true"},
		{`{"resourceType":"Patient","deceasedDateTime":"2020-02-01"}`, "true"},
	} {
		nodes, err := e.Evaluate(decode(t, c.res), fhirpath.Env{})
		if err != nil || len(nodes) != 1 {
			t.Fatalf("%s: %v %v", c.res, nodes, err)
		}
		if b, _ := json.Marshal(nodes[0].Value); string(b) != c.want {
			t.Errorf("%s: got %s, want %s", c.res, b, c.want)
		}
	}
}

// Composite components are evaluated on each node of the composite's own
// expression, with %resource still the resource.
func TestEvaluateAt(t *testing.T) {
	res := decode(t, `{"resourceType":"MolecularSequence","referenceSeq":{"chromosome":{"text":"1"}},"variant":[{"start":1,"end":2},{"start":5}]}`)
	main := fhirpath.MustCompile("MolecularSequence.variant")
	chrom := fhirpath.MustCompile("%resource.referenceSeq.chromosome")
	start := fhirpath.MustCompile("start")
	ctx := fhirpath.MustCompile("%context.end")
	nodes, err := main.Evaluate(res, fhirpath.Env{})
	if err != nil || len(nodes) != 2 {
		t.Fatal(nodes, err)
	}
	var got []string
	for _, n := range nodes {
		for _, e := range []*fhirpath.Expr{chrom, start, ctx} {
			r, err := e.EvaluateAt(res, n, fhirpath.Env{})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(r)
			got = append(got, string(b))
		}
	}
	want := []string{
		`[{"Value":{"text":"1"},"Type":""}]`, `[{"Value":1,"Type":"integer"}]`, `[{"Value":2,"Type":"integer"}]`,
		`[{"Value":{"text":"1"},"Type":""}]`, `[{"Value":5,"Type":"integer"}]`, `null`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// staticModel is a hand-written Model covering a few R4 elements, to check
// that model answers drive typing and choice navigation.
type staticModel map[string][]string

func (m staticModel) ElementTypes(typeName, element string) []string { return m[typeName+"."+element] }

func TestModel(t *testing.T) {
	m := staticModel{
		"Patient.name":           {"HumanName"},
		"Patient.contact":        {"BackboneElement"},
		"Patient.contact.name":   {"HumanName"},
		"Patient.contact.gender": {"code"},
		"Patient.deceased":       {"boolean", "dateTime"},
		"HumanName.family":       {"string"},
		"Patient.id":             {"http://hl7.org/fhirpath/System.String"},
	}
	res := decode(t, `{"resourceType":"Patient","id":"p","name":[{"family":"A"}],"contact":[{"name":{"family":"B"},"gender":"male"}],"deceasedDateTime":"2020","deceasedString":"not in the model"}`)
	for _, c := range []struct{ expr, want string }{
		{"Patient.name", "HumanName"},
		{"Patient.name.family", "string"},
		{"Patient.contact", "BackboneElement"},
		{"Patient.contact.name", "HumanName"},
		{"Patient.contact.gender", "code"},
		{"Patient.deceased", "dateTime"},
		{"Patient.id", "System.String"},
	} {
		nodes, err := fhirpath.MustCompile(c.expr).Evaluate(res, fhirpath.Env{Model: m})
		if err != nil || len(nodes) != 1 || nodes[0].Type != c.want {
			t.Errorf("%s: got %+v %v, want one %s", c.expr, nodes, err, c.want)
		}
	}
	nodes, _ := fhirpath.MustCompile("Patient.contact.gender is string").Evaluate(res, fhirpath.Env{Model: m})
	if len(nodes) != 1 || nodes[0].Value != true {
		t.Errorf("code is string: %+v", nodes)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		expr string
		pos  int
		kind string
	}{
		{"Patient.name.", 13, "syntax"},
		{"Patient..name", 8, "syntax"},
		{"Patient.name)", 12, "syntax"},
		{"'unterminated", 0, "syntax"},
		{"Patient.name.where(", 19, "syntax"},
		{"Patient.name.first(1)", 13, "syntax"},
		{"Patient ^ name", 8, "syntax"},
		{"$foo", 0, "syntax"},
		{"Patient.birthDate > @2020", 20, "unsupported"},
		{"Patient.name.given + 'x'", 19, "unsupported"},
		{"Patient.name.trace('x')", 13, "unsupported"},
		{"%ucum", 0, "unsupported"},
		{"4 'mg'", 0, "unsupported"},
		{strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500), 200, "syntax"},
	} {
		_, err := fhirpath.Compile(c.expr)
		var se *fhirpath.SyntaxError
		var ue *fhirpath.UnsupportedError
		switch {
		case errors.As(err, &se):
			if c.kind != "syntax" || se.Pos != c.pos {
				t.Errorf("%q: got %v (pos %d), want %s at %d", c.expr, err, se.Pos, c.kind, c.pos)
			}
		case errors.As(err, &ue):
			if c.kind != "unsupported" || ue.Pos != c.pos {
				t.Errorf("%q: got %v (pos %d), want %s at %d", c.expr, err, ue.Pos, c.kind, c.pos)
			}
		default:
			t.Errorf("%q: got %v, want a %s error", c.expr, err, c.kind)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "fhirpath: ") {
			t.Errorf("%q: message %q lacks the package prefix", c.expr, err)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	res := decode(t, obs)
	for _, expr := range []string{
		"Observation.component.value is Quantity",                    // is on several items
		"Observation.component.exists() and Observation.code.coding", // several items as boolean
		"Observation.component['x']",
	} {
		_, err := fhirpath.MustCompile(expr).Evaluate(res, fhirpath.Env{})
		var ee *fhirpath.EvalError
		if !errors.As(err, &ee) {
			t.Errorf("%s: got %v, want *EvalError", expr, err)
		}
	}
}

func TestWorkBudget(t *testing.T) {
	res := decode(t, obs)
	// Each level iterates over the three components: about 3^13 steps.
	expr := "%resource.component.where(" + strings.Repeat("%resource.component.select(", 12) + "code" + strings.Repeat(")", 12) + ".exists())"
	e := fhirpath.MustCompile(expr)
	_, err := e.Evaluate(res, fhirpath.Env{MaxSteps: 100000})
	var ee *fhirpath.EvalError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("got %v, want a budget error", err)
	}
	if _, err := fhirpath.MustCompile("Observation.component.code").Evaluate(res, fhirpath.Env{MaxSteps: 2}); err == nil {
		t.Fatal("MaxSteps 2 not enforced")
	}
	if _, err := fhirpath.MustCompile("Observation.component.code").Evaluate(res, fhirpath.Env{MaxSteps: 10}); err != nil {
		t.Fatal(err)
	}
}

type countingModel struct {
	staticModel
	calls int
}

func (c *countingModel) ElementTypes(typeName, element string) []string {
	c.calls++
	return c.staticModel.ElementTypes(typeName, element)
}

func TestCachedModel(t *testing.T) {
	inner := &countingModel{staticModel: staticModel{"Patient.name": {"HumanName"}}}
	m := fhirpath.CachedModel(inner)
	res := decode(t, `{"resourceType":"Patient","name":[{"family":"A"}],"gender":"x"}`)
	e := fhirpath.MustCompile("Patient.name | Patient.gender | Patient.unknown")
	for i := 0; i < 5; i++ {
		nodes, err := e.Evaluate(res, fhirpath.Env{Model: m})
		if err != nil || len(nodes) != 2 || nodes[0].Type != "HumanName" {
			t.Fatalf("%+v %v", nodes, err)
		}
	}
	// Three questions (name, gender, unknown), each asked once, including
	// those the model cannot answer.
	if inner.calls != 3 {
		t.Errorf("inner model asked %d times, want 3", inner.calls)
	}
}
