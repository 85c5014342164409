package fhir_test

import (
	"fmt"

	"github.com/kilnhealth/kiln/internal/fhir"
)

func ExampleModel_Validate() {
	m, err := fhir.NewModel()
	if err != nil {
		panic(err)
	}
	res, err := fhir.Decode([]byte(`{
	  "resourceType": "Observation",
	  "status": "final",
	  "code": {"text": "heart rate"},
	  "subject": {"reference": "Medication/1"},
	  "valueQuantity": {"value": "72"},
	  "effectiveDateTime": "2024-02-30"
	}`))
	if err != nil {
		panic(err)
	}
	for _, is := range m.Validate(res) {
		fmt.Println(is.Code, is.Expression)
	}
	// Output:
	// value Observation.effective.ofType(dateTime)
	// structure Observation.subject.reference
	// structure Observation.value.ofType(Quantity).value
}

func ExampleDecode() {
	_, err := fhir.Decode([]byte("{\n  \"id\": \"a\",\n  \"id\": \"b\"\n}"))
	fmt.Println(err)
	// Output:
	// fhir: invalid JSON at line 3, column 3 (byte 17): duplicate key "id"
}

func ExampleModel_ElementTypes() {
	m, err := fhir.NewModel()
	if err != nil {
		panic(err)
	}
	fmt.Println(m.ElementTypes("Patient", "deceased"))
	fmt.Println(m.ChildTypePath("Patient", "contact"))
	fmt.Println(m.ElementTypes("Patient.contact", "name"))
	// Output:
	// [boolean dateTime]
	// Patient.contact
	// [HumanName]
}
