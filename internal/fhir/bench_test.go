package fhir_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

// benchResource returns the first resource of type rt in the first Synthea
// bundle, or fallback when the shared data is absent.
func benchResource(b *testing.B, rt, fallback string) []byte {
	path := filepath.Join(sharedData(b), "synthea", "bundles", "bundle-001.json.gz")
	files, _ := filepath.Glob(path)
	if len(files) == 1 {
		var bundle struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(gunzip(b, path), &bundle); err == nil {
			for _, e := range bundle.Entry {
				var head struct{ ResourceType string }
				if json.Unmarshal(e.Resource, &head) == nil && head.ResourceType == rt {
					b.Logf("using the first Synthea %s of bundle-001 (%d bytes)", rt, len(e.Resource))
					return e.Resource
				}
			}
		}
	}
	b.Logf("Synthea data absent: using the built-in %s (%d bytes)", rt, len(fallback))
	return []byte(fallback)
}

func benchValidate(b *testing.B, rt, fallback string) {
	m := newModel(b)
	data := benchResource(b, rt, fallback)
	res, err := fhir.Decode(data)
	if err != nil {
		b.Fatal(err)
	}
	if is := m.Validate(res); len(is) != 0 {
		b.Fatalf("benchmark resource is invalid: %+v", is)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if is := m.Validate(res); len(is) != 0 {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidatePatient(b *testing.B)     { benchValidate(b, "Patient", validPatient) }
func BenchmarkValidateObservation(b *testing.B) { benchValidate(b, "Observation", validObservation) }

func benchDecode(b *testing.B, rt, fallback string) {
	data := benchResource(b, rt, fallback)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := fhir.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B)            { benchDecode(b, "Patient", validPatient) }
func BenchmarkDecodeObservation(b *testing.B) { benchDecode(b, "Observation", validObservation) }

// BenchmarkDecodeValidatePatient is the whole cost of accepting a body.
func BenchmarkDecodeValidatePatient(b *testing.B) {
	m := newModel(b)
	data := benchResource(b, "Patient", validPatient)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := fhir.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		if is := m.Validate(res); len(is) != 0 {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkOraclePatient measures google/fhir/go's validating unmarshal of
// the same Patient, for the ratio in docs/fhir-model.md.
func BenchmarkOraclePatient(b *testing.B) {
	o := newOracle(b)
	data := benchResource(b, "Patient", validPatient)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if ok, why := o.valid(data); !ok {
			b.Fatal(why)
		}
	}
}

func BenchmarkNewModel(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fhir.NewModel(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEncodingJSON decodes the same Patient with encoding/json
// (UseNumber) into map[string]any, as a yardstick for Decode.
func BenchmarkDecodeEncodingJSON(b *testing.B) {
	data := benchResource(b, "Patient", validPatient)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		stdDecode(b, data)
	}
}
