package rest_test

import (
	"bytes"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestIfMatch(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "V1"))

	// Mismatch: 412, nothing written.
	put(t, in, "Patient", id, patient(id, "Stale"), "If-Match", `W/"2"`).Outcome(t, http.StatusPreconditionFailed)
	if f := family(in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200).JSON(t)); f != "V1" {
		t.Fatalf("a failed If-Match update changed the resource: %q", f)
	}
	// Match: 200, next version.
	r := put(t, in, "Patient", id, patient(id, "V2"), "If-Match", `W/"1"`).Want(t, 200)
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag after conditional update = %q", r.Header.Get("ETag"))
	}
	// The old ETag is now stale.
	put(t, in, "Patient", id, patient(id, "V3"), "If-Match", `W/"1"`).Outcome(t, http.StatusPreconditionFailed)
	// A malformed If-Match is the client's mistake.
	put(t, in, "Patient", id, patient(id, "V3"), "If-Match", `banana`).Outcome(t, 400)
	// If-Match on a resource that does not exist cannot hold.
	put(t, in, "Patient", "not-there", patient("not-there", "X"), "If-Match", `W/"1"`).Outcome(t, http.StatusPreconditionFailed)
	in.Do(t, "GET", base+"/Patient/not-there", nil).Outcome(t, 404)

	// Delete honours If-Match too.
	in.Do(t, "DELETE", base+"/Patient/"+id, nil, "If-Match", `W/"1"`).Outcome(t, http.StatusPreconditionFailed)
	in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200)
	in.Do(t, "DELETE", base+"/Patient/"+id, nil, "If-Match", `W/"2"`).Want(t, 200, 204)
	in.Do(t, "GET", base+"/Patient/"+id, nil).Outcome(t, http.StatusGone)
}

func TestConditionalRead(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Cached"))
	r := in.Do(t, "GET", base+"/Patient/"+id, nil, "If-None-Match", `W/"1"`).Want(t, http.StatusNotModified)
	if len(r.Body) != 0 {
		t.Errorf("304 with a body: %s", r)
	}
	if r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("304 ETag = %q", r.Header.Get("ETag"))
	}
	in.Do(t, "GET", base+"/Patient/"+id, nil, "If-None-Match", `W/"7"`).Want(t, 200)
	put(t, in, "Patient", id, patient(id, "Changed")).Want(t, 200)
	r = in.Do(t, "GET", base+"/Patient/"+id, nil, "If-None-Match", `W/"1"`).Want(t, 200)
	if family(r.JSON(t)) != "Changed" {
		t.Errorf("If-None-Match with a stale ETag must return the current version: %s", r)
	}
	// If-Modified-Since at or after Last-Modified: 304; well before: 200.
	lm := r.Header.Get("Last-Modified")
	in.Do(t, "GET", base+"/Patient/"+id, nil, "If-Modified-Since", lm).Want(t, http.StatusNotModified)
	in.Do(t, "GET", base+"/Patient/"+id, nil, "If-Modified-Since", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)).Want(t, 200)
}

func TestHead(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Headless"))
	r := in.Do(t, "HEAD", base+"/Patient/"+id, nil).Want(t, 200)
	if len(r.Body) != 0 || r.Header.Get("ETag") != `W/"1"` || r.Header.Get("Last-Modified") == "" {
		t.Errorf("HEAD: body %d bytes, ETag %q, Last-Modified %q", len(r.Body), r.Header.Get("ETag"), r.Header.Get("Last-Modified"))
	}
	in.Do(t, "HEAD", base+"/Patient/missing", nil).Want(t, 404)
}

func TestPrefer(t *testing.T) {
	t.Parallel()
	in := start(t)
	cases := []struct {
		prefer string
		check  func(t *testing.T, r []byte)
	}{
		{"return=minimal", func(t *testing.T, b []byte) {
			if len(bytes.TrimSpace(b)) != 0 {
				t.Errorf("return=minimal sent a body: %s", b)
			}
		}},
		{"return=representation", func(t *testing.T, b []byte) {
			if !bytes.Contains(b, []byte(`"resourceType":"Patient"`)) {
				t.Errorf("return=representation did not send the resource: %s", b)
			}
		}},
		{"return=OperationOutcome", func(t *testing.T, b []byte) {
			if !bytes.Contains(b, []byte(`"resourceType":"OperationOutcome"`)) || bytes.Contains(b, []byte(`"severity":"error"`)) {
				t.Errorf("return=OperationOutcome did not send an informational outcome: %s", b)
			}
		}},
		{"", func(t *testing.T, b []byte) {
			if !bytes.Contains(b, []byte(`"resourceType":"Patient"`)) {
				t.Errorf("no Prefer: want the resource: %s", b)
			}
		}},
	}
	for _, c := range cases {
		t.Run("create "+c.prefer, func(t *testing.T) {
			var hdr []string
			if c.prefer != "" {
				hdr = []string{"Prefer", c.prefer}
			}
			r := in.Do(t, "POST", base+"/Patient", patient("", "Pref"), hdr...).Want(t, 201)
			if r.Header.Get("Location") == "" || r.Header.Get("ETag") != `W/"1"` || r.Header.Get("Last-Modified") == "" {
				t.Errorf("create headers missing: %v", r.Header)
			}
			c.check(t, r.Body)
			loc := r.Header.Get("Location")
			id := strings.Split(strings.TrimPrefix(loc, in.Base("default")+"/Patient/"), "/")[0]
			u := in.Do(t, "PUT", base+"/Patient/"+id, patient(id, "Pref2"), hdr...).Want(t, 200)
			if u.Header.Get("ETag") != `W/"2"` {
				t.Errorf("update ETag %q", u.Header.Get("ETag"))
			}
			c.check(t, u.Body)
		})
	}
}

func TestFormatNegotiation(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Fmt"))
	read := base + "/Patient/" + id
	for _, c := range []struct {
		name   string
		query  string
		hdr    []string
		status int
	}{
		{"_format=json", "?_format=json", nil, 200},
		{"_format=application/fhir+json", "?_format=application%2Ffhir%2Bjson", nil, 200},
		{"_format=application/json", "?_format=application%2Fjson", nil, 200},
		{"_format=xml", "?_format=xml", nil, 406},
		{"_format=application/fhir+xml", "?_format=application%2Ffhir%2Bxml", nil, 406},
		{"_format=turtle", "?_format=ttl", nil, 406},
		{"Accept fhir+json", "", []string{"Accept", "application/fhir+json"}, 200},
		{"Accept json", "", []string{"Accept", "application/json"}, 200},
		{"Accept any", "", []string{"Accept", "*/*"}, 200},
		{"Accept list with json", "", []string{"Accept", "application/fhir+xml;q=0.9, application/fhir+json"}, 200},
		{"Accept fhir+xml", "", []string{"Accept", "application/fhir+xml"}, 406},
		{"Accept xml", "", []string{"Accept", "application/xml"}, 406},
		{"Accept html", "", []string{"Accept", "text/html"}, 406},
		{"_format json overrides Accept", "?_format=json", []string{"Accept", "application/fhir+xml"}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := in.Do(t, "GET", read+c.query, nil, c.hdr...)
			if c.status == 200 {
				r.Want(t, 200)
				if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/fhir+json") {
					t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
				}
			} else {
				r.Outcome(t, c.status)
			}
		})
	}
	for _, ct := range []string{"application/xml", "application/fhir+xml", "text/plain", "text/html; charset=utf-8", "garbage/"} {
		t.Run("Content-Type "+ct, func(t *testing.T) {
			in.Do(t, "POST", base+"/Patient", `{"resourceType":"Patient"}`, "Content-Type", ct).Outcome(t, http.StatusUnsupportedMediaType)
			in.Do(t, "PUT", read, `{"resourceType":"Patient","id":"`+id+`"}`, "Content-Type", ct).Outcome(t, http.StatusUnsupportedMediaType)
		})
	}
	// application/json+fhir is the DSTU2 name, which Accept and _format take too.
	for _, ct := range []string{"application/fhir+json", "application/fhir+json; charset=utf-8", "application/fhir+json;fhirVersion=4.0", "application/json", "application/json+fhir"} {
		in.Do(t, "POST", base+"/Patient", `{"resourceType":"Patient"}`, "Content-Type", ct).Want(t, 201)
	}
}

func TestPretty(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Pretty"))
	compact := in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200)
	pretty := in.Do(t, "GET", base+"/Patient/"+id+"?_pretty=true", nil).Want(t, 200)
	if !bytes.Contains(pretty.Body, []byte("\n  \"")) {
		t.Errorf("_pretty=true is not indented: %s", pretty.Body)
	}
	if bytes.Count(bytes.TrimSpace(compact.Body), []byte("\n")) != 0 {
		t.Errorf("the default is not compact: %s", compact.Body)
	}
	assertSameJSON(t, compact.Body, pretty.Body)
	notPretty := in.Do(t, "GET", base+"/Patient/"+id+"?_pretty=false", nil).Want(t, 200)
	if !bytes.Equal(notPretty.Body, compact.Body) {
		t.Errorf("_pretty=false differs from the default")
	}
	// Errors are pretty too.
	r := in.Do(t, "GET", base+"/Patient/missing?_pretty=true", nil)
	r.Outcome(t, 404)
	if !bytes.Contains(r.Body, []byte("\n  \"")) {
		t.Errorf("pretty error outcome is not indented: %s", r.Body)
	}
}

func topKeys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func subsetted(m map[string]any) bool {
	meta, _ := m["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, x := range tags {
		tag, _ := x.(map[string]any)
		if tag["code"] == "SUBSETTED" && tag["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" {
			return true
		}
	}
	return false
}

func TestSummaryAndElements(t *testing.T) {
	t.Parallel()
	in := start(t)
	p := patient("", "Summary")
	p["text"] = map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">Ada Summary</div>`}
	p["maritalStatus"] = map[string]any{"text": "married"} // not a summary element
	p["communication"] = []any{map[string]any{"language": map[string]any{"text": "Welsh"}}}
	p["active"] = true
	id, _ := create(t, in, "Patient", p)
	obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "height"},
		"valueQuantity": map[string]any{"value": 180, "unit": "cm"}, "interpretation": []any{map[string]any{"text": "tall"}}}
	oid, _ := create(t, in, "Observation", obs)

	cases := []struct {
		target, keys string
		subset       bool
	}{
		{"/Patient/" + id + "?_summary=true", "active,birthDate,gender,id,meta,name,resourceType", true},
		{"/Patient/" + id + "?_summary=text", "id,meta,resourceType,text", true},
		{"/Patient/" + id + "?_summary=data", "active,birthDate,communication,gender,id,maritalStatus,meta,name,resourceType", true},
		{"/Patient/" + id + "?_summary=false", "active,birthDate,communication,gender,id,maritalStatus,meta,name,resourceType,text", false},
		{"/Patient/" + id + "?_elements=name", "id,meta,name,resourceType", true},
		{"/Patient/" + id + "?_elements=name,gender", "gender,id,meta,name,resourceType", true},
		{"/Patient/" + id + "?_elements=Patient.birthDate", "birthDate,id,meta,resourceType", true},
		{"/Patient/" + id + "/_history/1?_summary=true", "active,birthDate,gender,id,meta,name,resourceType", true},
		{"/Patient/" + id + "/_history/1?_elements=name", "id,meta,name,resourceType", true},
		// Mandatory elements stay in every summary; value[x] is kept whole.
		{"/Observation/" + oid + "?_summary=text", "code,id,meta,resourceType,status", true},
		{"/Observation/" + oid + "?_elements=value", "code,id,meta,resourceType,status,valueQuantity", true},
		{"/Observation/" + oid + "?_summary=true", "code,id,meta,resourceType,status,valueQuantity", true},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			m := in.Do(t, "GET", base+c.target, nil).Want(t, 200).JSON(t)
			if got := topKeys(m); got != c.keys {
				t.Errorf("elements\n got %s\nwant %s", got, c.keys)
			}
			if subsetted(m) != c.subset {
				t.Errorf("SUBSETTED tag present = %v, want %v: %v", subsetted(m), c.subset, m["meta"])
			}
		})
	}
	for _, q := range []string{"_summary=count", "_summary=maybe", "_summary=true&_elements=name"} {
		t.Run(q, func(t *testing.T) {
			in.Do(t, "GET", base+"/Patient/"+id+"?"+q, nil).Outcome(t, 400)
		})
	}
	// Subsetting a read never changes the stored resource.
	full := in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200).JSON(t)
	if subsetted(full) || full["maritalStatus"] == nil || full["text"] == nil {
		t.Errorf("a later plain read is subsetted: %v", full)
	}
}
