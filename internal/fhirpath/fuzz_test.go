package fhirpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kilnhealth/kiln/internal/searchparam"
)

const fuzzResource = `{"resourceType":"Observation","id":"o","contained":[{"resourceType":"Patient","id":"p"}],
"code":{"coding":[{"system":"s","code":"c"}],"text":"t"},"subject":{"reference":"#p"},
"valueQuantity":{"value":1.5,"comparator":"<"},"component":[{"code":{"text":"a"},"valueString":"x"},{"valueBoolean":true}],
"extension":[{"url":"u","valueInteger":3}],"note":[null,{"text":"n"}]}`

// FuzzCompile checks that no input makes Compile or Evaluate panic, that
// failures are the documented typed errors with an in-range position, and
// that compiled expressions evaluate with and without a model.
func FuzzCompile(f *testing.F) {
	reg, err := searchparam.Load()
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range reg.All() {
		if p.Expression != "" {
			f.Add(p.Expression)
		}
		for _, c := range p.Components {
			f.Add(c.Expression)
		}
	}
	for _, s := range []string{"", "(", "'", "`a`", "%resource.x[0]", "$this", "{}", "-1.5", "a.b(c,d)",
		"x is FHIR.Quantity", "x as System.String", "true and false or {} implies 1", "/* c */ a // d",
		"'\\u00e9'", "@2020-01", "1 'mg'", "a.where(b.where($this = 'c'))", "a[b]"} {
		f.Add(s)
	}
	res := decodeForFuzz(f)
	model := staticFuzzModel{}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src)
		if err != nil {
			var se *SyntaxError
			var ue *UnsupportedError
			switch {
			case errors.As(err, &se):
				if se.Pos < 0 || se.Pos > len(src) {
					t.Fatalf("position %d out of range for %q", se.Pos, src)
				}
			case errors.As(err, &ue):
				if ue.Pos < 0 || ue.Pos > len(src) {
					t.Fatalf("position %d out of range for %q", ue.Pos, src)
				}
			default:
				t.Fatalf("untyped error %v for %q", err, src)
			}
			if utf8.ValidString(src) && !strings.HasPrefix(err.Error(), "fhirpath: ") {
				t.Fatalf("message %q", err)
			}
			return
		}
		for _, env := range []Env{{}, {Model: model}} {
			if _, err := e.Evaluate(res, env); err != nil {
				var ee *EvalError
				if !errors.As(err, &ee) {
					t.Fatalf("untyped evaluation error %v for %q", err, src)
				}
			}
		}
	})
}

type staticFuzzModel struct{}

func (staticFuzzModel) ElementTypes(typeName, element string) []string {
	switch typeName + "." + element {
	case "Observation.value":
		return []string{"Quantity", "string", "boolean"}
	case "Observation.component":
		return []string{"BackboneElement"}
	case "Observation.component.value":
		return []string{"string", "boolean"}
	case "Observation.code":
		return []string{"CodeableConcept"}
	}
	return nil
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeForFuzz(tb testing.TB) map[string]any {
	v, err := decodeJSON([]byte(fuzzResource))
	if err != nil {
		tb.Fatal(err)
	}
	return v.(map[string]any)
}
