package fhirpath_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kilnhealth/kiln/internal/fhirpath"
)

// Compile once, evaluate per resource: the way search extracts index values.
func Example() {
	d := json.NewDecoder(strings.NewReader(`{
	  "resourceType": "Observation",
	  "subject": {"reference": "Patient/42"},
	  "effectivePeriod": {"start": "2024-05-01"},
	  "valueQuantity": {"value": 7.2, "unit": "mmol/L"}
	}`))
	d.UseNumber() // numbers must be json.Number
	var obs map[string]any
	if err := d.Decode(&obs); err != nil {
		panic(err)
	}
	for _, src := range []string{
		"Observation.subject.where(resolve() is Patient)",
		"Observation.effective",
		"(Observation.value as Quantity).value",
		"Patient.name",
	} {
		e, err := fhirpath.Compile(src)
		if err != nil {
			panic(err)
		}
		nodes, err := e.Evaluate(obs, fhirpath.Env{})
		if err != nil {
			panic(err)
		}
		for _, n := range nodes {
			b, _ := json.Marshal(n.Value)
			fmt.Printf("%s: %q %s\n", src, n.Type, b)
		}
	}
	// Without a Model, the type of a plain complex element is unknown ("");
	// choice elements and primitives are typed from the JSON.

	// Output:
	// Observation.subject.where(resolve() is Patient): "" {"reference":"Patient/42"}
	// Observation.effective: "Period" {"start":"2024-05-01"}
	// (Observation.value as Quantity).value: "decimal" 7.2
}
