package rest_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestInvalidResources sends resources that break R4 rules and expects a 400
// OperationOutcome whose issue names the location (FHIRPath) of the fault.
func TestInvalidResources(t *testing.T) {
	t.Parallel()
	in := start(t)
	cases := []struct {
		name, typ, body, expr string
	}{
		{"unknown element", "Patient", `{"resourceType":"Patient","foo":1}`, "Patient.foo"},
		{"unknown nested element", "Patient", `{"resourceType":"Patient","name":[{"foo":"x"}]}`, "Patient.name[0].foo"},
		{"wrong JSON type boolean", "Patient", `{"resourceType":"Patient","active":"yes"}`, "Patient.active"},
		{"wrong JSON type string", "Patient", `{"resourceType":"Patient","name":[{"family":3}]}`, "Patient.name[0].family"},
		{"bad date", "Patient", `{"resourceType":"Patient","birthDate":"1987-13-45"}`, "Patient.birthDate"},
		{"dateTime where date is wanted", "Patient", `{"resourceType":"Patient","birthDate":"1987-06-05T10:00:00Z"}`, "Patient.birthDate"},
		{"impossible dateTime", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2020-02-30T10:00:00Z"}`, "Patient.deceased"},
		{"array for a single element", "Patient", `{"resourceType":"Patient","gender":["male","female"]}`, "Patient.gender"},
		{"single value for an array", "Patient", `{"resourceType":"Patient","name":[{"given":"Ada"}]}`, "Patient.name[0].given"},
		{"missing required element", "Observation", `{"resourceType":"Observation","code":{"text":"x"}}`, "Observation.status"},
		{"two value[x]", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true}`, "Observation.value"},
		{"two value[x] in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","valueBoolean":true}]}`, "Patient.extension[0].value"},
		{"bad reference type", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Medication/1"}}`, "Observation.subject"},
		{"bad reference type on Patient", "Patient", `{"resourceType":"Patient","managingOrganization":{"reference":"Patient/1"}}`, "Patient.managingOrganization"},
		{"code outside a required binding", "Patient", `{"resourceType":"Patient","gender":"robot"}`, "Patient.gender"},
		{"integer out of range", "Patient", `{"resourceType":"Patient","multipleBirthInteger":3000000000}`, "Patient.multipleBirth"},
		{"bad base64Binary", "Patient", `{"resourceType":"Patient","photo":[{"data":"!!notbase64"}]}`, "Patient.photo[0].data"},
		{"bad id in the body", "Patient", `{"resourceType":"Patient","id":"a b"}`, "Patient.id"},
		{"null value", "Patient", `{"resourceType":"Patient","active":null}`, "Patient.active"},
		{"empty array", "Patient", `{"resourceType":"Patient","name":[]}`, "Patient.name"},
		{"empty object", "Patient", `{"resourceType":"Patient","name":[{}]}`, "Patient.name[0]"},
		{"empty string", "Patient", `{"resourceType":"Patient","telecom":[{"system":"phone","value":""}]}`, "Patient.telecom[0]"},
		{"invalid contained resource", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o1"}]}`, "Patient.contained[0]"},
		{"unknown contained type", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Nope","id":"o1"}]}`, "Patient.contained[0]"},
		{"missing resourceType", "Patient", `{"active":true}`, "resourceType"},
		{"resourceType mismatch", "Patient", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, "resourceType"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := in.Do(t, "POST", base+"/"+c.typ, c.body)
			issues := r.Outcome(t, 400)
			found := false
			for _, is := range issues {
				exprs, _ := is["expression"].([]any)
				for _, e := range exprs {
					if s, _ := e.(string); strings.HasPrefix(s, c.expr) {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("no issue names %s: %s", c.expr, r)
			}
			// The same body on update is rejected the same way.
			in.Do(t, "PUT", base+"/"+c.typ+"/x1", strings.Replace(c.body, `{"resourceType"`, `{"id":"x1","resourceType"`, 1)).Outcome(t, 400)
		})
	}
	// Nothing was stored.
	if b := getBundle(t, in, base+"/_history", "history"); b.Total == nil || *b.Total != 0 {
		t.Errorf("rejected resources were stored: total %v", b.Total)
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	in := start(t)
	for name, body := range map[string]string{
		"truncated":       `{"resourceType":"Patient",`,
		"not JSON":        `resourceType=Patient`,
		"array":           `[]`,
		"null":            `null`,
		"number":          `42`,
		"string":          `"Patient"`,
		"duplicate key":   `{"resourceType":"Patient","active":true,"active":false}`,
		"trailing data":   `{"resourceType":"Patient"} {}`,
		"invalid UTF-8":   "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xff\xfe\"}]}",
		"empty":           ``,
		"whitespace only": "  \n",
		"deep nesting":    strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000),
		"huge number":     `{"resourceType":"Patient","multipleBirthInteger":1` + strings.Repeat("0", 5000) + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			in.Do(t, "POST", base+"/Patient", body).Outcome(t, 400)
			in.Do(t, "PUT", base+"/Patient/m1", body).Outcome(t, 400)
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Routed"))
	cases := []struct {
		name, method, target string
		body                 any
		status               int
	}{
		{"unknown type read", "GET", base + "/Nope/1", nil, 404},
		{"unknown type create", "POST", base + "/Nope", `{"resourceType":"Nope"}`, 404},
		{"unknown type update", "PUT", base + "/Nope/1", `{"resourceType":"Nope","id":"1"}`, 404},
		{"unknown type delete", "DELETE", base + "/Nope/1", nil, 404},
		{"abstract type", "GET", base + "/DomainResource/1", nil, 404},
		{"lower-case type", "GET", base + "/patient/" + id, nil, 404},
		{"unknown account", "GET", "/fhir/no-such-account/Patient/1", nil, 404},
		{"unknown account create", "POST", "/fhir/no-such-account/Patient", `{"resourceType":"Patient"}`, 404},
		{"invalid account name", "GET", "/fhir/NOT_VALID/Patient/1", nil, 404},
		{"no account", "GET", "/fhir/", nil, 404},
		{"bad id", "GET", base + "/Patient/a_b", nil, 400},
		{"bad id put", "PUT", base + "/Patient/a_b", `{"resourceType":"Patient","id":"a_b"}`, 400},
		{"bad id delete", "DELETE", base + "/Patient/a_b", nil, 400},
		{"id too long", "GET", base + "/Patient/" + strings.Repeat("x", 65), nil, 400},
		{"bad id history", "GET", base + "/Patient/a_b/_history", nil, 400},
		{"bad id vread", "GET", base + "/Patient/a_b/_history/1", nil, 400},
		{"bad version", "GET", base + "/Patient/" + id + "/_history/abc", nil, 400},
		{"version zero", "GET", base + "/Patient/" + id + "/_history/0", nil, 400},
		{"negative version", "GET", base + "/Patient/" + id + "/_history/-1", nil, 400},
		{"no such path", "GET", base + "/Patient/" + id + "/_history/1/extra", nil, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in.Do(t, c.method, c.target, c.body).Outcome(t, c.status)
		})
	}
}

// PATCH on an instance and PUT/DELETE on a type are conditional
// interactions (see conditional_test.go), not 405s.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Methods"))
	for _, c := range []struct{ method, target string }{
		{"POST", base + "/Patient/" + id},
		{"POST", base + "/Patient/" + id + "/_history"},
		{"DELETE", base + "/Patient/" + id + "/_history/1"},
		{"PUT", base + "/_history"},
		{"DELETE", base + "/metadata"},
	} {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			r := in.Do(t, c.method, c.target, `{"resourceType":"Patient"}`)
			r.Outcome(t, http.StatusMethodNotAllowed)
			allow := r.Header.Get("Allow")
			if allow == "" || strings.Contains(allow, c.method) {
				t.Errorf("Allow = %q for a rejected %s", allow, c.method)
			}
		})
	}
	// The resource is untouched.
	in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200)
}

func TestOversizedBody(t *testing.T) {
	t.Parallel()
	in := start(t)
	// 17 MiB of valid JSON shape: the limit is 16 MiB.
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Patient","name":[{"family":"`)
	b.Write(bytes.Repeat([]byte("x"), 17<<20))
	b.WriteString(`"}]}`)
	in.Do(t, "PUT", base+"/Patient/big", bytes.Replace(b.Bytes(), []byte(`{"resourceType"`), []byte(`{"id":"big","resourceType"`), 1)).Outcome(t, http.StatusRequestEntityTooLarge)
	// Chunked, without Content-Length: the limit still holds.
	in.Do(t, "POST", base+"/Patient", io.MultiReader(bytes.NewReader(b.Bytes()))).Outcome(t, http.StatusRequestEntityTooLarge)
	in.Do(t, "GET", base+"/Patient/big", nil).Outcome(t, 404)
	if h := getBundle(t, in, base+"/_history", "history"); h.Total == nil || *h.Total != 0 {
		t.Errorf("an oversized write was stored")
	}
}

// TestNoServerErrorForClientMistakes sends a spread of odd requests; none
// may produce a 5xx, and every error is an OperationOutcome.
func TestNoServerErrorForClientMistakes(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Robust"))
	targets := []string{
		base, base + "/", base + "/metadata", base + "/_history", base + "/Patient", base + "/Patient/" + id,
		base + "/Patient/" + id + "/_history", base + "/Patient/" + id + "/_history/1", base + "/Patient/_history",
		base + "/Patient/_search", base + "/_search", base + "//Patient", base + "/Patient//" + id, "/fhir//Patient",
		base + "/Patient/" + id + "?_summary=", base + "/Patient/" + id + "?_elements=,,,", base + "/Patient/" + id + "?_elements=..",
		base + "/Patient/" + id + "?_pretty=maybe", base + "/_history?_count=99999999999999999999",
		base + "/_history?_since=2026-01-01T00:00:00+99:00", base + "/_history?_page=99999999999999999999",
		base + "/Patient/%00", base + "/Patient/" + id + "/_history/99999999999999999999",
		base + "/Patient?_format=%zz", "/fhir/" + strings.Repeat("a", 5000) + "/Patient",
	}
	bodies := []any{nil, `{"resourceType":"Patient","id":"` + id + `"}`, `{`, `[]`, strings.Repeat("[", 10000)}
	headers := [][]string{
		nil,
		{"If-Match", `W/"abc"`}, {"If-Match", `W/"99999999999999999999"`}, {"If-None-Match", "*"},
		{"If-Modified-Since", "yesterday"}, {"Prefer", "return=banana"}, {"Accept", ";;;"},
		{"Content-Type", ";;;"}, {"Content-Type", "application/fhir+json; charset=latin1"},
		{"If-None-Exist", "identifier=x"},
	}
	check := func(m, tg string, b any, h []string) {
		r, err := in.Try(m, tg, b, h...)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status >= 500 {
			t.Errorf("%s %s %v body %.40v: %d %s", m, tg, h, b, r.Status, r.Body)
			return
		}
		if r.Status >= 400 && m != "HEAD" && !bytes.Contains(r.Body, []byte(`"resourceType":"OperationOutcome"`)) {
			t.Errorf("%s %s %v: error %d without an OperationOutcome: %s", m, tg, h, r.Status, r.Body)
		}
	}
	// Every method × target, once with each odd header and once with each
	// odd body (the full cross product adds time, not coverage: FuzzRequest
	// explores combinations).
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		for _, tg := range targets {
			for _, h := range headers {
				check(m, tg, nil, h)
			}
			for _, b := range bodies[1:] {
				check(m, tg, b, nil)
			}
		}
	}
}
