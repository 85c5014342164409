package fhir_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

func fuzzSeeds(f *testing.F) {
	f.Add([]byte(validPatient))
	f.Add([]byte(validObservation))
	for _, c := range brokenCases() {
		f.Add([]byte(c.json))
	}
	f.Add([]byte(`{"a":"\ud83d\ude00","b":[1.50,null,{}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}}]}`))
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// encoding/json accepts too with the same value (Decode is the stricter).
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := fhir.Decode(data)
		if err != nil {
			if _, ok := err.(*fhir.DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var want map[string]any
		if err := d.Decode(&want); err != nil {
			t.Fatalf("Decode accepted what encoding/json rejects (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode and encoding/json disagree on %q", data)
		}
	})
}

// FuzzValidate checks that Validate never panics, never modifies its input,
// and is deterministic.
func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	m, err := fhir.NewModel()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := fhir.Decode(data)
		if err != nil {
			return
		}
		before, _ := json.Marshal(res)
		a := m.Validate(res)
		after, _ := json.Marshal(res)
		if !bytes.Equal(before, after) {
			t.Fatal("Validate modified its input")
		}
		b := m.Validate(res)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("Validate is not deterministic: %v vs %v", a, b)
		}
		for _, is := range a {
			if is.Code == "" || is.Expression == "" || is.Diagnostics == "" || (is.Severity != fhir.SeverityError && is.Severity != fhir.SeverityWarning) {
				t.Fatalf("malformed issue %+v", is)
			}
		}
	})
}
