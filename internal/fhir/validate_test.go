package fhir_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

// validPatient and validObservation are the bases the broken cases edit.
const validPatient = `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678+01:00"},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jo</div>"},
  "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "999"}],
  "active": true,
  "name": [{"use": "official", "family": "Doe", "given": ["Jo", "Ann"], "_given": [null, {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}]}],
  "telecom": [{"system": "phone", "value": "555", "rank": 1}],
  "gender": "female",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-03-30T05:06:07Z"}]},
  "birthDate": "1970-03-30",
  "deceasedBoolean": false,
  "multipleBirthInteger": 2,
  "photo": [{"contentType": "image/png", "data": "aGVsbG8=", "size": 5}],
  "contact": [{"name": {"family": "Roe"}, "organization": {"reference": "Organization/o1"}}],
  "communication": [{"language": {"text": "English"}, "preferred": true}],
  "managingOrganization": {"reference": "#org"},
  "contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}],
  "generalPractitioner": [{"reference": "urn:uuid:0b3a3b0a-1c1e-4a7c-9d4e-2f9f5c6b7a8d"}, {"reference": "http://example.org/fhir/Practitioner/9"}]
}`

const validObservation = `{
  "resourceType": "Observation",
  "id": "o1",
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2024-01-02T03:04:05Z",
  "issued": "2024-01-02T03:04:05.123Z",
  "valueQuantity": {"value": 72.10, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
  "component": [{"code": {"text": "x"}, "valueTime": "10:11:12"}]
}`

type want struct{ code, expr string }

type brokenCase struct {
	name string
	json string
	want []want
}

// edit applies a JSON-level edit to a base document: each pair replaces the
// first occurrence of old with new, and fails loudly when old is missing.
func edit(base string, pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(base, pairs[i]) {
			panic(fmt.Sprintf("edit: %q not in base", pairs[i]))
		}
		base = strings.Replace(base, pairs[i], pairs[i+1], 1)
	}
	return base
}

// brokenCases each break one rule. They are also fed to the differential
// test, where google/fhir/go must reject them too (or be allow-listed).
func brokenCases() []brokenCase {
	P, O := validPatient, validObservation
	return []brokenCase{
		// Unknown elements and wrong JSON types.
		{"unknown-element", edit(P, `"active": true`, `"active": true, "foo": 1`), []want{{"structure", "Patient.foo"}}},
		{"unknown-nested-element", edit(P, `"family": "Doe"`, `"family": "Doe", "surname": "x"`), []want{{"structure", "Patient.name[0].surname"}}},
		{"boolean-as-string", edit(P, `"active": true`, `"active": "true"`), []want{{"structure", "Patient.active"}}},
		{"boolean-as-number", edit(P, `"active": true`, `"active": 1`), []want{{"structure", "Patient.active"}}},
		{"repeating-as-object", edit(P, `"telecom": [{"system": "phone", "value": "555", "rank": 1}]`, `"telecom": {"system": "phone", "value": "555"}`), []want{{"structure", "Patient.telecom"}}},
		{"single-as-array", edit(P, `"gender": "female"`, `"gender": ["female"]`), []want{{"structure", "Patient.gender"}}},
		{"complex-as-string", edit(P, `"gender": "female"`, `"gender": "female", "maritalStatus": "M"`), []want{{"structure", "Patient.maritalStatus"}}},
		{"string-as-number", edit(P, `"family": "Doe"`, `"family": 7`), []want{{"structure", "Patient.name[0].family"}}},
		{"decimal-as-string", edit(O, `"value": 72.10`, `"value": "72.10"`), []want{{"structure", "Observation.value.ofType(Quantity).value"}}},
		{"null-single", edit(P, `"active": true`, `"active": null`), []want{{"structure", "Patient.active"}}},
		{"empty-array", edit(P, `"identifier": [{"system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "999"}]`, `"identifier": []`), []want{{"structure", "Patient.identifier"}}},
		{"empty-object", edit(P, `"gender": "female"`, `"gender": "female", "maritalStatus": {}`), []want{{"structure", "Patient.maritalStatus"}}},
		{"resource-not-object-in-contained", edit(P, `"contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}]`, `"contained": ["Organization"]`), []want{{"structure", "Patient.contained[0]"}}},

		// Cardinality and required elements.
		{"missing-required", edit(O, `"status": "final",`, ``), []want{{"required", "Observation.status"}}},
		{"missing-required-complex", edit(O, `"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},`, ``), []want{{"required", "Observation.code"}}},
		{"missing-required-backbone", edit(P, `"language": {"text": "English"}, `, ``), []want{{"required", "Patient.communication[0].language"}}},
		{"missing-required-in-datatype", edit(P, `{"url": "http://example.org/x", "valueString": "y"}`, `{"valueString": "y"}`), []want{{"required", "Patient.name[0].given[1].extension[0].url"}}},

		// Primitive formats.
		{"id-space", edit(P, `"id": "p1"`, `"id": "p 1"`), []want{{"value", "Patient.id"}}},
		{"id-too-long", edit(P, `"id": "p1"`, `"id": "`+strings.Repeat("a", 65)+`"`), []want{{"value", "Patient.id"}}},
		{"date-bad-month", edit(P, `"birthDate": "1970-03-30"`, `"birthDate": "1970-13-30"`), []want{{"value", "Patient.birthDate"}}},
		{"date-not-in-month", edit(P, `"birthDate": "1970-03-30"`, `"birthDate": "2021-02-29"`), []want{{"value", "Patient.birthDate"}}},
		{"date-with-time", edit(P, `"birthDate": "1970-03-30"`, `"birthDate": "1970-03-30T10:00:00Z"`), []want{{"value", "Patient.birthDate"}}},
		{"date-year-zero", edit(P, `"birthDate": "1970-03-30"`, `"birthDate": "0000"`), []want{{"value", "Patient.birthDate"}}},
		{"dateTime-no-zone", edit(P, `"deceasedBoolean": false`, `"deceasedDateTime": "2020-01-01T10:00:00"`), []want{{"value", "Patient.deceased.ofType(dateTime)"}}},
		{"dateTime-no-seconds", edit(O, `"effectiveDateTime": "2024-01-02T03:04:05Z"`, `"effectiveDateTime": "2024-01-02T03:04Z"`), []want{{"value", "Observation.effective.ofType(dateTime)"}}},
		{"instant-date-only", edit(O, `"issued": "2024-01-02T03:04:05.123Z"`, `"issued": "2024-01-02"`), []want{{"value", "Observation.issued"}}},
		{"instant-bad-zone", edit(P, `"lastUpdated": "2024-01-02T03:04:05.678+01:00"`, `"lastUpdated": "2024-01-02T03:04:05.678+15:00"`), []want{{"value", "Patient.meta.lastUpdated"}}},
		{"time-bad-hour", edit(O, `"valueTime": "10:11:12"`, `"valueTime": "24:00:00"`), []want{{"value", "Observation.component[0].value.ofType(time)"}}},
		{"time-with-zone", edit(O, `"valueTime": "10:11:12"`, `"valueTime": "10:11:12Z"`), []want{{"value", "Observation.component[0].value.ofType(time)"}}},
		{"uri-space", edit(P, `"system": "urn:oid:2.16.840.1.113883.4.3.25"`, `"system": "urn:oid 2"`), []want{{"value", "Patient.identifier[0].system"}}},
		{"url-empty", edit(P, `{"url": "http://example.org/x", "valueString": "y"}`, `{"url": "", "valueString": "y"}`), []want{{"value", "Patient.name[0].given[1].extension[0].url"}}},
		{"code-double-space", edit(O, `"code": "/min"`, `"code": "a  b"`), []want{{"value", "Observation.value.ofType(Quantity).code"}}},
		{"code-leading-space", edit(O, `"code": "/min"`, `"code": " min"`), []want{{"value", "Observation.value.ofType(Quantity).code"}}},
		{"decimal-exponent-ok-integer-bad", edit(P, `"multipleBirthInteger": 2`, `"multipleBirthInteger": 2.5`), []want{{"value", "Patient.multipleBirth.ofType(integer)"}}},
		{"integer-out-of-range", edit(P, `"multipleBirthInteger": 2`, `"multipleBirthInteger": 2147483648`), []want{{"value", "Patient.multipleBirth.ofType(integer)"}}},
		{"positiveInt-zero", edit(P, `"rank": 1`, `"rank": 0`), []want{{"value", "Patient.telecom[0].rank"}}},
		{"unsignedInt-negative", edit(P, `"size": 5`, `"size": -1`), []want{{"value", "Patient.photo[0].size"}}},
		{"base64-bad-length", edit(P, `"data": "aGVsbG8="`, `"data": "aGVsbG8"`), []want{{"value", "Patient.photo[0].data"}}},
		{"base64-bad-char", edit(P, `"data": "aGVsbG8="`, `"data": "aGV*bG8="`), []want{{"value", "Patient.photo[0].data"}}},
		{"string-empty", edit(P, `"family": "Doe"`, `"family": ""`), []want{{"value", "Patient.name[0].family"}}},
		{"string-control-char", edit(P, `"family": "Doe"`, `"family": "D\u0001oe"`), []want{{"value", "Patient.name[0].family"}}},
		{"markdown-empty", edit(P, `"name": "Acme"`, `"name": "Acme", "alias": [""]`), []want{{"value", "Patient.contained[0].alias[0]"}}},

		// Narrative (txt-1 active content, well-formedness).
		{"xhtml-script", edit(P, `Jo</div>`, `Jo<script>alert(1)</script></div>`), []want{{"invariant", "Patient.text.div"}}},
		{"xhtml-event-handler", edit(P, `">Jo</div>`, `"><p onclick=\"x()\">Jo</p></div>`), []want{{"invariant", "Patient.text.div"}}},
		{"xhtml-javascript-url", edit(P, `">Jo</div>`, `"><a href=\" JavaScript:x()\">Jo</a></div>`), []want{{"invariant", "Patient.text.div"}}},
		{"xhtml-not-well-formed", edit(P, `Jo</div>`, `<b>Jo</div>`), []want{{"value", "Patient.text.div"}}},
		{"xhtml-not-div", edit(P, `"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jo</div>"`, `"<p xmlns=\"http://www.w3.org/1999/xhtml\">Jo</p>"`), []want{{"value", "Patient.text.div"}}},
		{"xhtml-no-namespace", edit(P, `<div xmlns=\"http://www.w3.org/1999/xhtml\">`, `<div>`), []want{{"value", "Patient.text.div"}}},

		// Required bindings of code elements.
		{"code-not-in-required-valueset", edit(P, `"gender": "female"`, `"gender": "bogus"`), []want{{"code-invalid", "Patient.gender"}}},
		{"code-not-in-required-valueset-nested", edit(P, `"use": "official"`, `"use": "formal"`), []want{{"code-invalid", "Patient.name[0].use"}}},
		{"code-not-in-required-valueset-observation", edit(O, `"status": "final"`, `"status": "done"`), []want{{"code-invalid", "Observation.status"}}},

		// _element primitive extensions and null alignment.
		{"underscore-unknown-property", edit(P, `"_birthDate": {"extension"`, `"_birthDate": {"foo": 1, "extension"`), []want{{"structure", "Patient.birthDate.foo"}}},
		{"underscore-not-object", edit(P, `"_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-03-30T05:06:07Z"}]}`, `"_birthDate": "x"`), []want{{"structure", "Patient.birthDate"}}},
		{"underscore-on-complex", edit(P, `"active": true`, `"active": true, "_name": {"id": "x"}`), []want{{"structure", "Patient._name"}}},
		{"null-without-extension", edit(P, `"given": ["Jo", "Ann"], "_given": [null, {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}]`, `"given": ["Jo", null]`), []want{{"structure", "Patient.name[0].given[1]"}}},
		{"underscore-length-mismatch", edit(P, `"_given": [null, {`, `"_given": [null, null, {`), []want{{"structure", "Patient.name[0].given"}}},
		{"underscore-bad-extension", edit(P, `"valueDateTime": "1970-03-30T05:06:07Z"`, `"valueDateTime": "1970-03-30T05:06:07"`), []want{{"value", "Patient.birthDate.extension[0].value.ofType(dateTime)"}}},

		// Choice types.
		{"choice-two-types", edit(P, `"deceasedBoolean": false`, `"deceasedBoolean": false, "deceasedDateTime": "2020"`), []want{{"structure", "Patient.deceased"}}},
		{"choice-disallowed-type", edit(P, `"deceasedBoolean": false`, `"deceasedString": "yes"`), []want{{"structure", "Patient.deceasedString"}}},
		{"choice-bare-name", edit(P, `"deceasedBoolean": false`, `"deceased": false`), []want{{"structure", "Patient.deceased"}}},

		// References.
		{"reference-wrong-target", edit(P, `"reference": "#org"`, `"reference": "Patient/p2"`), []want{{"structure", "Patient.managingOrganization.reference"}}},
		{"reference-wrong-target-backbone", edit(P, `"reference": "Organization/o1"`, `"reference": "Practitioner/o1"`), []want{{"structure", "Patient.contact[0].organization.reference"}}},
		{"reference-wrong-target-history", edit(O, `"reference": "Patient/p1"`, `"reference": "Medication/m1/_history/2"`), []want{{"structure", "Observation.subject.reference"}}},
		{"reference-wrong-target-absolute", edit(O, `"reference": "Patient/p1"`, `"reference": "https://example.org/fhir/Medication/m1"`), []want{{"structure", "Observation.subject.reference"}}},
		{"reference-unknown-type", edit(O, `"reference": "Patient/p1"`, `"reference": "Patientt/p1"`), []want{{"value", "Observation.subject.reference"}}},

		// Contained resources, resourceType, Bundle entries.
		{"contained-nested", edit(P, `"name": "Acme"}`, `"name": "Acme", "contained": [{"resourceType": "Organization", "id": "x"}]}`), []want{{"structure", "Patient.contained[0].contained"}}},
		{"contained-unknown-type", edit(P, `"resourceType": "Organization", "id": "org"`, `"resourceType": "Organisation", "id": "org"`), []want{{"not-supported", "Patient.contained[0]"}}},
		{"contained-bad-element", edit(P, `"name": "Acme"}`, `"name": "Acme", "foo": true}`), []want{{"structure", "Patient.contained[0].foo"}}},
		{"contained-missing-resourceType", edit(P, `"resourceType": "Organization", "id": "org"`, `"id": "org"`), []want{{"required", "Patient.contained[0]"}}},
		{"missing-resourceType", edit(P, `"resourceType": "Patient",`, ``), []want{{"required", "Resource"}}},
		{"unknown-resourceType", edit(P, `"resourceType": "Patient"`, `"resourceType": "Patients"`), []want{{"not-supported", "Resource"}}},
		{"abstract-resourceType", `{"resourceType": "DomainResource", "id": "x"}`, []want{{"not-supported", "Resource"}}},
		{"bundle-entry-bad", `{"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:0b3a3b0a-1c1e-4a7c-9d4e-2f9f5c6b7a8d", "resource": {"resourceType": "Patient", "gender": 3}}]}`, []want{{"structure", "Bundle.entry[0].resource.gender"}}},
		{"bundle-missing-type", `{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}`, []want{{"required", "Bundle.type"}}},
		{"several-problems", edit(O, `"status": "final",`, ``, `"effectiveDateTime": "2024-01-02T03:04:05Z"`, `"effectiveDateTime": "2024-02-30"`, `"id": "o1"`, `"id": "o1", "bar": 1`), []want{{"structure", "Observation.bar"}, {"value", "Observation.effective.ofType(dateTime)"}, {"required", "Observation.status"}}},
	}
}

func issuesOf(t *testing.T, m *fhir.Model, doc string) []fhir.Issue {
	t.Helper()
	res, err := fhir.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return m.Validate(res)
}

func TestValidateValidBases(t *testing.T) {
	m := newModel(t)
	for name, doc := range map[string]string{"Patient": validPatient, "Observation": validObservation} {
		t.Run(name, func(t *testing.T) {
			if got := issuesOf(t, m, doc); len(got) != 0 {
				t.Fatalf("valid %s got issues: %+v", name, got)
			}
		})
	}
}

func TestValidateBroken(t *testing.T) {
	m := newModel(t)
	for _, c := range brokenCases() {
		t.Run(c.name, func(t *testing.T) {
			got := issuesOf(t, m, c.json)
			var gotW []want
			for _, is := range got {
				if is.Severity != fhir.SeverityError {
					t.Errorf("severity %q, want error: %+v", is.Severity, is)
				}
				if is.Diagnostics == "" {
					t.Errorf("issue without diagnostics: %+v", is)
				}
				gotW = append(gotW, want{is.Code, is.Expression})
			}
			if fmt.Sprint(gotW) != fmt.Sprint(c.want) {
				t.Fatalf("issues = %v, want %v\nfull: %+v", gotW, c.want, got)
			}
		})
	}
}

func TestValidateNarrativeWarnings(t *testing.T) {
	m := newModel(t)
	for name, div := range map[string]string{
		"non-basic-element": `<div xmlns=\"http://www.w3.org/1999/xhtml\"><marquee>Jo</marquee></div>`,
		"non-basic-attr":    `<div xmlns=\"http://www.w3.org/1999/xhtml\" data-x=\"1\">Jo</div>`,
		"no-text":           `<div xmlns=\"http://www.w3.org/1999/xhtml\"> <br/> </div>`,
	} {
		t.Run(name, func(t *testing.T) {
			doc := edit(validPatient, `<div xmlns=\"http://www.w3.org/1999/xhtml\">Jo</div>`, div)
			got := issuesOf(t, m, doc)
			if len(got) != 1 || got[0].Severity != fhir.SeverityWarning || got[0].Code != "invariant" || got[0].Expression != "Patient.text.div" {
				t.Fatalf("want one invariant warning at Patient.text.div, got %+v", got)
			}
		})
	}
}

// TestValidateDeterministic validates the same broken document many times
// (map iteration order differs each time) and expects identical output.
func TestValidateDeterministic(t *testing.T) {
	m := newModel(t)
	doc := edit(validPatient, `"active": true`, `"active": 1, "zz": 1, "aa": 2, "_zz": 3`, `"family": "Doe"`, `"family": ""`)
	first := fmt.Sprint(issuesOf(t, m, doc))
	if strings.Count(first, "{error") < 4 {
		t.Fatalf("expected at least 4 issues, got %s", first)
	}
	for i := 0; i < 50; i++ {
		if got := fmt.Sprint(issuesOf(t, m, doc)); got != first {
			t.Fatalf("run %d differs:\n%s\n%s", i, got, first)
		}
	}
}

func TestDifferentialBroken(t *testing.T) {
	var samples []sample
	for _, c := range brokenCases() {
		samples = append(samples, sample{name: "broken/" + c.name, data: []byte(c.json)})
	}
	samples = append(samples, sample{name: "valid/Patient", data: []byte(validPatient)}, sample{name: "valid/Observation", data: []byte(validObservation)})
	compare(t, samples)
}

// TestValidateEncodingJSONInput checks that maps from encoding/json (float64
// numbers) validate like Decode's output.
func TestValidateEncodingJSONInput(t *testing.T) {
	m := newModel(t)
	for _, c := range brokenCases() {
		var res map[string]any
		if err := json.Unmarshal([]byte(c.json), &res); err != nil {
			continue // encoding/json may reject what the case needs (none today)
		}
		fromDecode := issuesOf(t, m, c.json)
		fromStd := m.Validate(res)
		if len(fromDecode) != len(fromStd) {
			t.Errorf("%s: %d issues via Decode, %d via encoding/json: %+v", c.name, len(fromDecode), len(fromStd), fromStd)
		}
	}
}

// TestValidateConcurrent shares one Model between goroutines (run with -race).
func TestValidateConcurrent(t *testing.T) {
	m := newModel(t)
	cases := brokenCases()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range cases {
				res, err := fhir.Decode([]byte(c.json))
				if err != nil {
					t.Error(err)
					return
				}
				if len(m.Validate(res)) != len(c.want) {
					t.Errorf("%s: wrong issue count", c.name)
				}
			}
		}()
	}
	wg.Wait()
}
