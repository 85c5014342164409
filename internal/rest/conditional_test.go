package rest_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// Conditional create, update, delete and patch through the REST API
// (http://hl7.org/fhir/R4/http.html#ccreate, #cond-update, #cdelete, #patch).
func TestConditionalInteractions(t *testing.T) {
	in := servertest.New(t, server.Options{})
	pat := func(value, family string) string {
		return fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:test","value":%q}],"name":[{"family":%q}]}`, value, family)
	}

	// Conditional create: the first creates (201), the second matches (200, nothing new).
	r := in.Do(t, "POST", "/fhir/default/Patient", pat("c1", "Alpha"), "If-None-Exist", "identifier=urn:test|c1").Want(t, 201)
	loc := r.Header.Get("Location")
	id := r.JSON(t)["id"].(string)
	if loc == "" || r.Header.Get("ETag") != `W/"1"` {
		t.Fatalf("conditional create headers: %v", r.Header)
	}
	r = in.Do(t, "POST", "/fhir/default/Patient", pat("c1", "Other"), "If-None-Exist", "identifier=urn:test|c1").Want(t, 200)
	if got := r.JSON(t)["id"]; got != id {
		t.Fatalf("matched %v, want %s", got, id)
	}
	// Racing identical conditional creates make one resource.
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := in.Try("POST", "/fhir/default/Patient", pat("race", "Race"), "If-None-Exist", "identifier=urn:test|race")
			if err == nil {
				codes <- r.Status
			}
		}()
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		if c == 201 {
			created++
		} else if c != 200 {
			t.Errorf("racing conditional create: %d", c)
		}
	}
	if created != 1 {
		t.Fatalf("%d racing conditional creates created a resource, want 1", created)
	}

	// Conditional update: one match updates it; no match creates.
	r = in.Do(t, "PUT", "/fhir/default/Patient?identifier=urn:test|c1", pat("c1", "Beta")).Want(t, 200)
	if r.JSON(t)["id"] != id || r.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("conditional update: %s", r)
	}
	r = in.Do(t, "PUT", "/fhir/default/Patient?identifier=urn:test|c2", pat("c2", "Gamma")).Want(t, 201)
	id2 := r.JSON(t)["id"].(string)
	// Several matches: 412.
	in.Do(t, "POST", "/fhir/default/Patient", pat("c2", "Gamma2")).Want(t, 201)
	in.Do(t, "PUT", "/fhir/default/Patient?identifier=urn:test|c2", pat("c2", "X")).Outcome(t, 412)
	// Without search parameters: 400.
	in.Do(t, "PUT", "/fhir/default/Patient", pat("c3", "X")).Outcome(t, 400)

	// JSON Patch by id, with the right content type.
	patch := `[{"op":"replace","path":"/name/0/family","value":"Delta"},{"op":"add","path":"/gender","value":"female"}]`
	r = in.Do(t, "PATCH", "/fhir/default/Patient/"+id, patch, "Content-Type", "application/json-patch+json").Want(t, 200)
	m := r.JSON(t)
	if m["gender"] != "female" || m["name"].([]any)[0].(map[string]any)["family"] != "Delta" || r.Header.Get("ETag") != `W/"3"` {
		t.Fatalf("patch: %s", r)
	}
	in.Do(t, "PATCH", "/fhir/default/Patient/"+id, patch, "Content-Type", "application/fhir+json").Outcome(t, 415)
	// A patch that breaks the resource is refused and changes nothing.
	in.Do(t, "PATCH", "/fhir/default/Patient/"+id, `[{"op":"add","path":"/gender","value":"robot"}]`,
		"Content-Type", "application/json-patch+json").Want(t, 422)
	in.Do(t, "GET", "/fhir/default/Patient/"+id, nil).Want(t, 200)
	if v := in.Do(t, "GET", "/fhir/default/Patient/"+id, nil).Header.Get("ETag"); v != `W/"3"` {
		t.Fatalf("a refused patch changed the resource: %s", v)
	}

	// Conditional delete: one match deletes; no match is a no-op success.
	in.Do(t, "DELETE", "/fhir/default/Patient?identifier=urn:test|c1", nil).Want(t, 204)
	in.Do(t, "GET", "/fhir/default/Patient/"+id, nil).Outcome(t, 410)
	in.Do(t, "DELETE", "/fhir/default/Patient?identifier=urn:test|nothing", nil).Want(t, 204)
	in.Do(t, "GET", "/fhir/default/Patient/"+id2, nil).Want(t, 200)

	// The CapabilityStatement says so.
	cs := in.Do(t, "GET", "/fhir/default/metadata", nil).Want(t, 200).JSON(t)
	res := cs["rest"].([]any)[0].(map[string]any)["resource"].([]any)
	for _, x := range res {
		rr := x.(map[string]any)
		if rr["type"] == "Patient" && (rr["conditionalCreate"] != true || rr["conditionalDelete"] != "single") {
			t.Fatalf("CapabilityStatement for Patient: %v", rr)
		}
	}
}
