package search_test

import "testing"

func TestSmoke(t *testing.T) {
	e := newEnv(t)
	e.put(`{"resourceType":"Patient","id":"p1","name":[{"family":"Chalmers","given":["Peter"]}],"birthDate":"1974-12-25","gender":"male","identifier":[{"system":"urn:mrn","value":"12345"}]}`)
	e.put(`{"resourceType":"Patient","id":"p2","name":[{"family":"Windsor","given":["Anne"]}],"birthDate":"1950-08-15","gender":"female"}`)
	e.put(`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-02T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"Patient?name=chal", []string{"Patient/p1"}},
		{"Patient?gender=female", []string{"Patient/p2"}},
		{"Patient?birthdate=ge1960", []string{"Patient/p1"}},
		{"Patient?identifier=urn:mrn|12345", []string{"Patient/p1"}},
		{"Observation?subject=Patient/p1&code=8867-4", []string{"Observation/o1"}},
		{"Observation?value-quantity=gt70", []string{"Observation/o1"}},
		{"Condition?patient.name=x", []string{}},
		{"Observation?subject.name=peter", []string{"Observation/o1"}},
		{"Patient?_has:Observation:subject:code=8867-4", []string{"Patient/p1"}},
	} {
		got := e.ids(t, c.q)
		if !eq(got, c.want) {
			t.Errorf("%s: got %v want %v", c.q, got, c.want)
		}
	}
	b := e.search(t, "Observation?_include=Observation:subject")
	t.Logf("%v", b)
}
