package fhirpath_test

import (
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/fhirpath"
)

const benchObs = `{"resourceType":"Observation","id":"0b6a2f7e","status":"final",
"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},
"subject":{"reference":"Patient/5c1f0c3a"},"encounter":{"reference":"Encounter/6e2d1c44"},
"effectiveDateTime":"2019-03-14T09:21:07-04:00","issued":"2019-03-14T09:21:07.123-04:00",
"valueQuantity":{"value":72.0,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`

// Evaluation with the R4 model from internal/fhir behind CachedModel, as
// search should run it.
func benchModel(b *testing.B, src string) {
	m, err := fhir.NewModel()
	if err != nil {
		b.Fatal(err)
	}
	e := fhirpath.MustCompile(src)
	res := decode(b, benchObs)
	env := fhirpath.Env{Model: fhirpath.CachedModel(m)}
	if n, err := e.Evaluate(res, env); err != nil || len(n) == 0 {
		b.Fatalf("%v %v", n, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Evaluate(res, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkModelObservationCode(b *testing.B) { benchModel(b, "Observation.code") }

func BenchmarkModelObservationSubjectPatient(b *testing.B) {
	benchModel(b, "Observation.subject.where(resolve() is Patient)")
}

func BenchmarkModelObservationEffective(b *testing.B) { benchModel(b, "Observation.effective") }

func BenchmarkModelObservationValueQuantity(b *testing.B) {
	benchModel(b, "(Observation.value as Quantity) | (Observation.value as SampledData)")
}
