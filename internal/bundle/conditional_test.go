package bundle_test

import (
	"strings"
	"sync"
	"testing"
)

func withIdentifier(p map[string]any, value string) map[string]any {
	p["identifier"] = []any{map[string]any{"system": "http://example.org/mrn", "value": value}}
	return p
}

func observationOf(subject string) map[string]any {
	return map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
		"subject": map[string]any{"reference": subject}}
}

func TestConditionalReferences(t *testing.T) {
	inst := start(t)
	inst.Do(t, "PUT", "/fhir/default/Patient/one", withIdentifier(patient("one", "One"), "A1")).Want(t, 201)
	inst.Do(t, "PUT", "/fhir/default/Patient/twin1", withIdentifier(patient("twin1", "Twin"), "T")).Want(t, 201)
	inst.Do(t, "PUT", "/fhir/default/Patient/twin2", withIdentifier(patient("twin2", "Twin"), "T")).Want(t, 201)

	// Exactly one match: the reference becomes Patient/one, everywhere.
	obs := observationOf("Patient?identifier=http://example.org/mrn|A1")
	obs["performer"] = []any{map[string]any{"reference": "Patient?identifier=http://example.org/mrn|A1"}}
	out := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", post("", obs))))
	body := string(out.Entry[0].Resource)
	if strings.Count(body, `"Patient/one"`) != 2 || strings.Contains(body, "identifier=") {
		t.Fatalf("conditional reference not resolved: %s", body)
	}
	// No match: 400; several: 412; both name the entry and write nothing.
	before := historyTotal(t, inst)
	issues := inst.Do(t, "POST", "/fhir/default", tx("transaction", put(patient("x1", "X")), post("", observationOf("Patient?identifier=http://example.org/mrn|none")))).Outcome(t, 400)
	if exprs := issues[0]["expression"].([]any); exprs[0] != "Bundle.entry[1]" {
		t.Fatalf("expression %v", exprs)
	}
	inst.Do(t, "POST", "/fhir/default", tx("transaction", put(patient("x1", "X")), post("", observationOf("Patient?identifier=http://example.org/mrn|T")))).Outcome(t, 412)
	if after := historyTotal(t, inst); after != before {
		t.Fatalf("failed transactions wrote %d versions", after-before)
	}
	// In a batch, only the entry with the ambiguous reference fails.
	out = decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("batch", post("", observationOf("Patient?identifier=http://example.org/mrn|T")), post("", observationOf("Patient?identifier=http://example.org/mrn|A1")))))
	if !strings.HasPrefix(out.Entry[0].Response.Status, "412") || !strings.HasPrefix(out.Entry[1].Response.Status, "201") {
		t.Fatalf("batch statuses %q, %q", out.Entry[0].Response.Status, out.Entry[1].Response.Status)
	}
}

func TestConditionalCreateUpdateDelete(t *testing.T) {
	inst := start(t)
	cc := func(value, family string) map[string]any {
		return map[string]any{"resource": withIdentifier(patient("", family), value),
			"request": map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://example.org/mrn|" + value}}
	}
	// First: created. Second: matched, nothing written, 200 with the same id.
	a := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", cc("C1", "First"))))
	b := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", cc("C1", "Second"))))
	if a.Entry[0].Response.Status != "201 Created" || b.Entry[0].Response.Status != "200 OK" || a.Entry[0].Response.Location != b.Entry[0].Response.Location {
		t.Fatalf("conditional create: %+v then %+v", a.Entry[0].Response, b.Entry[0].Response)
	}
	// A fullUrl of a matched conditional create still resolves to the existing id.
	c := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction",
		map[string]any{"fullUrl": "urn:uuid:6f1e2d3c-0000-4000-8000-00000000000c", "resource": withIdentifier(patient("", "Third"), "C1"),
			"request": map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://example.org/mrn|C1"}},
		post("", observationOf("urn:uuid:6f1e2d3c-0000-4000-8000-00000000000c")))))
	pid := strings.Join(strings.Split(a.Entry[0].Response.Location, "/")[:2], "/")
	if !strings.Contains(string(c.Entry[1].Resource), `"`+pid+`"`) {
		t.Fatalf("reference to a matched conditional create: %s (want %s)", c.Entry[1].Resource, pid)
	}

	// Concurrent conditional creates of one identifier create exactly one.
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst.Try("POST", "/fhir/default", tx("batch", cc("RACE", "Racer")))
		}()
	}
	wg.Wait()
	m := inst.Do(t, "GET", "/fhir/default/Patient?identifier=http://example.org/mrn|RACE&_summary=count", nil).Want(t, 200).JSON(t)
	if n := m["total"].(interface{ String() string }).String(); n != "1" {
		t.Fatalf("%s Patients after racing conditional creates, want 1", n)
	}

	// Conditional update: no match creates, one match updates it.
	cu := func(value, family string) map[string]any {
		return map[string]any{"resource": withIdentifier(patient("", family), value),
			"request": map[string]any{"method": "PUT", "url": "Patient?identifier=http://example.org/mrn|" + value}}
	}
	u1 := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", cu("U1", "New"))))
	u2 := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", cu("U1", "Newer"))))
	if u1.Entry[0].Response.Status != "201 Created" || u2.Entry[0].Response.Status != "200 OK" ||
		strings.Split(u1.Entry[0].Response.Location, "/")[1] != strings.Split(u2.Entry[0].Response.Location, "/")[1] || u2.Entry[0].Response.Etag != `W/"2"` {
		t.Fatalf("conditional update: %+v then %+v", u1.Entry[0].Response, u2.Entry[0].Response)
	}
	// Ambiguous conditional update: 412.
	inst.Do(t, "PUT", "/fhir/default/Patient/d1", withIdentifier(patient("d1", "D"), "DUP")).Want(t, 201)
	inst.Do(t, "PUT", "/fhir/default/Patient/d2", withIdentifier(patient("d2", "D"), "DUP")).Want(t, 201)
	inst.Do(t, "POST", "/fhir/default", tx("transaction", cu("DUP", "X"))).Outcome(t, 412)

	// Conditional delete: one match deletes; no match is a no-op.
	d := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction",
		req("DELETE", "Patient?identifier=http://example.org/mrn|U1"), req("DELETE", "Patient?identifier=http://example.org/mrn|nobody"))))
	if d.Entry[0].Response.Status != "204 No Content" || d.Entry[1].Response.Status != "204 No Content" {
		t.Fatalf("conditional delete: %+v", d.Entry)
	}
	id := strings.Split(u1.Entry[0].Response.Location, "/")[1]
	inst.Do(t, "GET", "/fhir/default/Patient/"+id, nil).Want(t, 410)
}
