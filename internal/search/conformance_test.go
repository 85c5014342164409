package search_test

import (
	"net/url"
	"strings"
	"testing"
)

// loadFixtures starts a server holding the conformance fixtures.
func loadFixtures(t *testing.T) *env {
	e := newEnv(t)
	for _, f := range fixtures {
		e.put(f)
	}
	return e
}

type searchCase struct {
	name, query string
	want        []string // "Type/id" of the matches, any order
}

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, " ")
}

// TestConformance runs, per parameter type, queries whose answers were
// computed by hand from the R4 search specification over the fixtures.
func TestConformance(t *testing.T) {
	e := loadFixtures(t)
	abs := e.inst.Base("default")
	groups := map[string][]searchCase{
		"string": {
			{"starts-with", "Patient?name=peter", split("Patient/p1")},
			{"case-insensitive", "Patient?family=CHAL", split("Patient/p1")},
			{"whole value", "Patient?family=Chalmers", split("Patient/p1")},
			{"longer than value", "Patient?family=Chalmersx", split("")},
			{"accent-insensitive", "Patient?name=zoe", split("Patient/p2")},
			{"accent-insensitive query", "Patient?family=ångström", split("Patient/p2")},
			{"no infix by default", "Patient?family=lmers", split("")},
			{"exact", "Patient?family:exact=Chalmers", split("Patient/p1")},
			{"exact is case-sensitive", "Patient?family:exact=chalmers", split("")},
			{"contains", "Patient?name:contains=LMER", split("Patient/p1")},
			{"contains accent", "Patient?name:contains=ull", split("Patient/p3")},
			{"contains short", "Patient?family:contains=ül", split("Patient/p3")},
			{"OR", "Patient?name=peter,zoe", split("Patient/p1 Patient/p2")},
			{"AND", "Patient?family=chal&given=peter", split("Patient/p1")},
			{"AND none", "Patient?family=chal&given=zoe", split("")},
			{"address", "Patient?address-city=pleasant", split("Patient/p1")},
			{"address any part", "Patient?address=erewhon", split("")},
			{"prefix > 32 chars", "Patient?family=wolfeschlegelsteinhausenbergerdorf", split("Patient/p4")},
			{"prefix > 32 chars mismatch", "Patient?family=wolfeschlegelsteinhausenbergerdorfx", split("")},
			{"prefix 7 chars (between indexed lengths)", "Patient?family=chalmer", split("Patient/p1")},
			{"missing true", "Patient?family:missing=true", split("")},
		},
		"token": {
			{"code", "Patient?gender=male", split("Patient/p1")},
			{"OR", "Patient?gender=female,other", split("Patient/p2 Patient/p3")},
			{"not", "Patient?gender:not=male", split("Patient/p2 Patient/p3 Patient/p4")},
			{"not OR", "Patient?gender:not=male,female", split("Patient/p3 Patient/p4")},
			{"identifier value", "Patient?identifier=12345", split("Patient/p1")},
			{"system|value", "Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12345", split("Patient/p1")},
			{"other system", "Patient?identifier=urn:other|12345", split("")},
			{"system|", "Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|", split("Patient/p1")},
			{"of-type", "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345", split("Patient/p1")},
			{"of-type wrong value", "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|1", split("")},
			{"boolean", "Patient?active=true", split("Patient/p1")},
			{"any system", "Observation?code=8867-4", split("Observation/o1 Observation/o3 Observation/o6")},
			{"system|code", "Observation?code=http://loinc.org|8867-4", split("Observation/o1")},
			{"|code (no system)", "Observation?code=|8867-4", split("Observation/o6")},
			{"text display word", "Observation?code:text=heart", split("Observation/o1")},
			{"text later word", "Observation?code:text=rate", split("Observation/o1")},
			{"text CodeableConcept.text", "Observation?code:text=remote", split("Observation/o5")},
			{"text phrase", "Observation?code:text=blood+press", split("Observation/o2 Observation/o4")},
			{"telecom", "Patient?phone=" + url.QueryEscape("(03) 5555 6473"), split("Patient/p1")},
			{"_id", "Patient?_id=p1,p3", split("Patient/p1 Patient/p3")},
			{"_tag", "Observation?_tag=http://example.org/tags|t1", split("Observation/o1")},
			{"missing false", "Patient?identifier:missing=false", split("Patient/p1")},
			{"missing true", "Patient?birthdate:missing=true", split("Patient/p4")},
		},
		"reference": {
			{"Type/id", "Observation?subject=Patient/p1", split("Observation/o1 Observation/o4")},
			{"bare id", "Observation?subject=p1", split("Observation/o1 Observation/o4")},
			{"type modifier", "Observation?subject:Patient=p1", split("Observation/o1 Observation/o4")},
			{"absolute local", "Observation?subject=" + url.QueryEscape(abs+"/Patient/p1"), split("Observation/o1 Observation/o4")},
			{"absolute remote", "Observation?subject=" + url.QueryEscape("http://example.org/fhir/Patient/p9"), split("Observation/o5")},
			{"patient param", "Observation?patient=p2", split("Observation/o2")},
			{"identifier", "Observation?subject:identifier=urn:mrn|777", split("Observation/o7")},
			{"identifier value only", "Observation?subject:identifier=777", split("Observation/o7")},
			{"chain", "Observation?subject.name=peter", split("Observation/o1 Observation/o4")},
			{"chain typed", "Observation?subject:Patient.family=müller", split("Observation/o3")},
			{"chain depth 2", "Observation?subject:Patient.general-practitioner.name=smith", split("Observation/o3")},
			{"chain no match", "Observation?subject.name=nobody", split("")},
			{"chain OR", "Observation?subject.name=peter,zoe", split("Observation/o1 Observation/o2 Observation/o4")},
			{"_has", "Patient?_has:Observation:subject:code=8480-6", split("Patient/p2")},
			{"_has status", "Patient?_has:Observation:patient:status=final", split("Patient/p1 Patient/p3 Patient/p4")},
			{"_has nested", "Practitioner?_has:Patient:general-practitioner:_has:Observation:subject:code=8867-4", split("Practitioner/pr1")},
			{"missing true", "Observation?subject:missing=true", split("Observation/o6")},
			{"canonical url", "Observation?_profile=http://example.org/profile/vital", split("Observation/o1")},
		},
		"date": {
			{"day", "Patient?birthdate=1974-12-25", split("Patient/p1")},
			{"year contains", "Patient?birthdate=1974", split("Patient/p1 Patient/p3")},
			{"month contains", "Patient?birthdate=1974-12", split("Patient/p1 Patient/p3")},
			{"eq needs containment", "Patient?birthdate=eq1974-12-25", split("Patient/p1")},
			{"ne", "Patient?birthdate=ne1974", split("Patient/p2")},
			{"gt", "Patient?birthdate=gt1975", split("Patient/p2")},
			{"lt", "Patient?birthdate=lt1980", split("Patient/p1 Patient/p3")},
			{"ge", "Patient?birthdate=ge1980", split("Patient/p2")},
			{"le", "Patient?birthdate=le1974-12-01", split("Patient/p3")},
			{"sa", "Patient?birthdate=sa1974", split("Patient/p2")},
			{"eb", "Patient?birthdate=eb1980", split("Patient/p1 Patient/p3")},
			{"ap", "Patient?birthdate=ap1974-12-25", split("Patient/p1 Patient/p2 Patient/p3")},
			{"AND range", "Patient?birthdate=ge1974-12-10&birthdate=lt1975", split("Patient/p1 Patient/p3")},
			{"period not contained in year", "Observation?date=2020", split("Observation/o1 Observation/o4 Observation/o8")},
			{"period ge", "Observation?date=ge2020-01-01", split("Observation/o1 Observation/o2 Observation/o3 Observation/o4 Observation/o8")},
			{"period lt", "Observation?date=lt2020-01-01", split("Observation/o2")},
			{"period le day", "Observation?date=le2019-12-31", split("Observation/o2")},
			{"seconds gt", "Observation?date=gt2020-01-01T00:30:00Z", split("Observation/o1 Observation/o2 Observation/o3 Observation/o4 Observation/o8")},
			{"sa", "Observation?date=sa2019", split("Observation/o1 Observation/o3 Observation/o4 Observation/o8")},
			{"time zone day", "Observation?date=2020-02-29", split("Observation/o8")},
			{"time zone other day", "Observation?date=2020-03-01", split("")},
			{"missing", "Observation?date:missing=true", split("Observation/o5 Observation/o6 Observation/o7")},
			{"_lastUpdated", "Patient?_lastUpdated=gt2000-01-01", split("Patient/p1 Patient/p2 Patient/p3 Patient/p4")},
			{"_lastUpdated future", "Patient?_lastUpdated=gt2999", split("")},
		},
		"quantity": {
			{"value", "Observation?value-quantity=72", split("Observation/o1")},
			{"value|system|code", "Observation?value-quantity=72|http://unitsofmeasure.org|/min", split("Observation/o1")},
			{"value||code", "Observation?value-quantity=72||/min", split("Observation/o1")},
			{"value||unit", "Observation?value-quantity=72||beats/minute", split("Observation/o1")},
			{"wrong unit", "Observation?value-quantity=72|http://unitsofmeasure.org|mm[Hg]", split("")},
			{"gt", "Observation?value-quantity=gt100", split("Observation/o2")},
			{"lt", "Observation?value-quantity=lt1", split("Observation/o3")},
			{"ge", "Observation?value-quantity=ge120.5", split("Observation/o2")},
			{"precision excludes", "Observation?value-quantity=120", split("")},
			{"precision includes", "Observation?value-quantity=120.5", split("Observation/o2")},
			{"precision 1e2", "Observation?value-quantity=1.2e2", split("Observation/o2")},
			{"ap", "Observation?value-quantity=ap130", split("Observation/o2")},
			{"ne", "Observation?value-quantity=ne72", split("Observation/o2 Observation/o3")},
			{"component", "Observation?component-value-quantity=gt130||mm[Hg]", split("Observation/o4")},
		},
		"number": {
			{"gt", "RiskAssessment?probability=gt0.5", split("RiskAssessment/ra1")},
			{"eq", "RiskAssessment?probability=0.25", split("RiskAssessment/ra2")},
			{"le", "RiskAssessment?probability=le0.8", split("RiskAssessment/ra1 RiskAssessment/ra2")},
			{"precision", "RiskAssessment?probability=0.3", split("RiskAssessment/ra2")},
			{"negative", "RiskAssessment?probability=gt-1", split("RiskAssessment/ra1 RiskAssessment/ra2")},
		},
		"uri": {
			{"exact", "ValueSet?url=http://acme.org/fhir/ValueSet/123", split("ValueSet/vs1")},
			{"below", "ValueSet?url:below=http://acme.org/fhir", split("ValueSet/vs1 ValueSet/vs2")},
			{"below trailing slash", "ValueSet?url:below=http://acme.org/fhir/", split("ValueSet/vs1 ValueSet/vs2")},
			{"above", "ValueSet?url:above=http://acme.org/fhir/ValueSet/123/_history/5", split("ValueSet/vs1")},
			{"no prefix match", "ValueSet?url=http://acme.org/fhir", split("")},
			{"_source", "Observation?_source=http://example.org/src", split("Observation/o1")},
		},
		"composite": {
			{"code$value", "Observation?code-value-quantity=http://loinc.org|8867-4$72", split("Observation/o1")},
			{"code$prefix", "Observation?code-value-quantity=8480-6$gt100", split("Observation/o2")},
			{"no match", "Observation?code-value-quantity=8867-4$gt100", split("")},
			{"component same node", "Observation?component-code-value-quantity=8480-6$140", split("Observation/o4")},
			{"component not across nodes", "Observation?component-code-value-quantity=8480-6$90", split("")},
			{"OR", "Observation?code-value-quantity=8867-4$72,8480-6$120.5", split("Observation/o1 Observation/o2")},
		},
		"special": {
			{"system _type", "?_type=Patient,Practitioner&name=smith", split("Practitioner/pr1")},
			{"system _id", "?_id=p1", split("Patient/p1")},
			{"system without _type", "?family=smi", split("Practitioner/pr1")},
			{"system unknown param ignored", "?bogus=1&_id=pr1", split("Practitioner/pr1")},
			{"condition chain", "Condition?patient.name=peter", split("Condition/c1")},
			{"condition onset", "Condition?onset-date=2015", split("Condition/c1")},
		},
	}
	for typ, cases := range groups {
		t.Run(typ, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					got := e.ids(t, c.query)
					if !eq(got, c.want) {
						t.Errorf("%s\n got  %v\n want %v", c.query, sorted(got), sorted(c.want))
					}
				})
			}
		})
	}
}
