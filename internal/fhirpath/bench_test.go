package fhirpath

import (
	"testing"
)

// Synthea-shaped resources (structure as Synthea R4 output writes them,
// values invented here).
const benchPatient = `{"resourceType":"Patient","id":"5c1f0c3a-9c8e-4f4e-9a57-1d6b1c9d2f10",
"meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
"extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2106-3","display":"White"}},{"url":"text","valueString":"White"}]},
{"url":"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName","valueString":"Ada Example"},
{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"city":"Springfield","state":"Massachusetts","country":"US"}}],
"identifier":[{"system":"https://github.com/synthetichealth/synthea","value":"5c1f0c3a-9c8e-4f4e-9a57-1d6b1c9d2f10"},
{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical Record Number"}],"text":"Medical Record Number"},"system":"http://hospital.smarthealthit.org","value":"5c1f0c3a"},
{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS","display":"Social Security Number"}],"text":"Social Security Number"},"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-12-3456"}],
"name":[{"use":"official","family":"Example","given":["Jo","Ann"],"prefix":["Ms."]},{"use":"maiden","family":"Sample","given":["Jo"]}],
"telecom":[{"system":"phone","value":"555-123-4567","use":"home"}],"gender":"female","birthDate":"1970-04-02",
"address":[{"line":["1 Example Street"],"city":"Springfield","state":"MA","postalCode":"01101","country":"US"}],
"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"M"}],"text":"M"},
"multipleBirthBoolean":false,"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US","display":"English"}],"text":"English"}}]}`

const benchObservation = `{"resourceType":"Observation","id":"0b6a2f7e-2d42-4d7e-8f35-6a0c7d1e9b21","status":"final",
"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],
"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},
"subject":{"reference":"Patient/5c1f0c3a-9c8e-4f4e-9a57-1d6b1c9d2f10"},"encounter":{"reference":"Encounter/6e2d1c44-0f5a-4a1b-bb7e-2b0c9f3e8d55"},
"effectiveDateTime":"2019-03-14T09:21:07-04:00","issued":"2019-03-14T09:21:07.123-04:00",
"valueQuantity":{"value":72.0,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`

func benchEval(b *testing.B, src, res string) {
	e, err := Compile(src)
	if err != nil {
		b.Fatal(err)
	}
	v, err := decodeJSON([]byte(res))
	if err != nil {
		b.Fatal(err)
	}
	m := v.(map[string]any)
	if n, err := e.Evaluate(m, Env{}); err != nil || len(n) == 0 {
		b.Fatalf("%s: %v %v", src, n, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Evaluate(m, Env{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPatientName(b *testing.B) { benchEval(b, "Patient.name", benchPatient) }

func BenchmarkObservationCode(b *testing.B) { benchEval(b, "Observation.code", benchObservation) }

func BenchmarkObservationSubjectPatient(b *testing.B) {
	benchEval(b, "Observation.subject.where(resolve() is Patient)", benchObservation)
}

func BenchmarkObservationEffective(b *testing.B) {
	benchEval(b, "Observation.effective", benchObservation)
}

// The R4 "patient" parameter of clinical resources: a 32-branch union, of
// which one matches an Observation.
func BenchmarkClinicalPatient(b *testing.B) {
	benchEval(b, "AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | CareTeam.subject.where(resolve() is Patient) | ClinicalImpression.subject.where(resolve() is Patient) | Composition.subject.where(resolve() is Patient) | Condition.subject.where(resolve() is Patient) | Consent.patient | DetectedIssue.patient | DeviceRequest.subject.where(resolve() is Patient) | DeviceUseStatement.subject | DiagnosticReport.subject.where(resolve() is Patient) | DocumentManifest.subject.where(resolve() is Patient) | DocumentReference.subject.where(resolve() is Patient) | Encounter.subject.where(resolve() is Patient) | EpisodeOfCare.patient | FamilyMemberHistory.patient | Flag.subject.where(resolve() is Patient) | Goal.subject.where(resolve() is Patient) | ImagingStudy.subject.where(resolve() is Patient) | Immunization.patient | List.subject.where(resolve() is Patient) | MedicationAdministration.subject.where(resolve() is Patient) | MedicationDispense.subject.where(resolve() is Patient) | MedicationRequest.subject.where(resolve() is Patient) | MedicationStatement.subject.where(resolve() is Patient) | NutritionOrder.patient | Observation.subject.where(resolve() is Patient) | Procedure.subject.where(resolve() is Patient) | RiskAssessment.subject.where(resolve() is Patient) | ServiceRequest.subject.where(resolve() is Patient) | SupplyDelivery.patient | VisionPrescription.patient", benchObservation)
}

func BenchmarkCompileClinicalDate(b *testing.B) {
	src := "AllergyIntolerance.recordedDate | CarePlan.period | CareTeam.period | ClinicalImpression.date | Composition.date | Consent.dateTime | DiagnosticReport.effective | Encounter.period | EpisodeOfCare.period | FamilyMemberHistory.date | Flag.period | Immunization.occurrence | List.date | Observation.effective | Procedure.performed | (RiskAssessment.occurrence as dateTime) | SupplyRequest.authoredOn"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}
