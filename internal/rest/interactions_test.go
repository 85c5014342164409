package rest_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// Interaction tests follow http://hl7.org/fhir/R4/http.html: they check
// statuses, headers and bodies a FHIR client relies on, through real HTTP
// against a real server.

func TestCreate(t *testing.T) {
	t.Parallel()
	in := start(t)
	before := time.Now().Add(-time.Second)
	body := patient("client-chosen", "Okonkwo")
	body["meta"] = map[string]any{
		"versionId":   "7",
		"lastUpdated": "2001-01-01T00:00:00Z",
		"tag":         []any{map[string]any{"system": "http://example.org/tags", "code": "keep-me"}},
	}
	r := in.Do(t, "POST", base+"/Patient", body).Want(t, http.StatusCreated)
	res := r.JSON(t)
	id, _ := res["id"].(string)
	if id == "" || id == "client-chosen" {
		t.Fatalf("create must assign a new id (got %q): %s", id, r)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`).MatchString(id) {
		t.Errorf("server-assigned id %q is not a valid FHIR id", id)
	}
	if want := in.Base("default") + "/Patient/" + id + "/_history/1"; r.Header.Get("Location") != want {
		t.Errorf("Location = %q, want %q", r.Header.Get("Location"), want)
	}
	if got := r.Header.Get("ETag"); got != `W/"1"` {
		t.Errorf("ETag = %q, want W/\"1\"", got)
	}
	vid, lu := metaOf(t, res)
	if vid != "1" {
		t.Errorf("meta.versionId = %q, want 1 (the server owns it, the client sent 7)", vid)
	}
	at := parseInstant(t, lu)
	if at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("meta.lastUpdated = %s, want about now (the client sent 2001)", lu)
	}
	lm, err := http.ParseTime(r.Header.Get("Last-Modified"))
	if err != nil {
		t.Fatalf("Last-Modified %q: %v", r.Header.Get("Last-Modified"), err)
	}
	if !lm.Equal(at.Truncate(time.Second)) {
		t.Errorf("Last-Modified %s does not match meta.lastUpdated %s", lm, at)
	}
	if family(res) != "Okonkwo" {
		t.Errorf("created body lost its content: %s", r)
	}
	meta := res["meta"].(map[string]any)
	if tags, _ := meta["tag"].([]any); len(tags) != 1 {
		t.Errorf("meta.tag sent by the client was not kept: %v", meta)
	}

	// Two creates of the same body make two resources.
	id2, _ := create(t, in, "Patient", patient("", "Okonkwo"))
	if id2 == id {
		t.Fatalf("two creates returned the same id %q", id)
	}
}

func TestReadAndVRead(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, cr := create(t, in, "Patient", patient("", "Lindqvist"))
	r := in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200)
	if ct := r.Header.Get("Content-Type"); ct == "" || ct[:len("application/fhir+json")] != "application/fhir+json" {
		t.Errorf("Content-Type = %q, want application/fhir+json", ct)
	}
	if r.Header.Get("ETag") != `W/"1"` || r.Header.Get("Last-Modified") != cr.Header.Get("Last-Modified") {
		t.Errorf("read headers ETag=%q Last-Modified=%q, want those of the create (%q, %q)",
			r.Header.Get("ETag"), r.Header.Get("Last-Modified"), cr.Header.Get("ETag"), cr.Header.Get("Last-Modified"))
	}
	assertSameJSON(t, cr.Body, r.Body)

	v := in.Do(t, "GET", base+"/Patient/"+id+"/_history/1", nil).Want(t, 200)
	assertSameJSON(t, cr.Body, v.Body)
	if v.Header.Get("ETag") != `W/"1"` {
		t.Errorf("vread ETag = %q", v.Header.Get("ETag"))
	}

	in.Do(t, "GET", base+"/Patient/"+id+"/_history/2", nil).Outcome(t, 404)
	in.Do(t, "GET", base+"/Patient/no-such-patient", nil).Outcome(t, 404)
	in.Do(t, "GET", base+"/Patient/no-such-patient/_history/1", nil).Outcome(t, 404)
	// The same id under another type is another resource.
	in.Do(t, "GET", base+"/Observation/"+id, nil).Outcome(t, 404)
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, cr := create(t, in, "Patient", patient("", "First"))

	p := patient(id, "Second")
	p["meta"] = map[string]any{"versionId": "42", "lastUpdated": "1999-01-01T00:00:00Z"}
	r := put(t, in, "Patient", id, p).Want(t, 200)
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("update ETag = %q, want W/\"2\"", r.Header.Get("ETag"))
	}
	res := r.JSON(t)
	vid, lu := metaOf(t, res)
	if vid != "2" || family(res) != "Second" {
		t.Errorf("update body: versionId %q family %q: %s", vid, family(res), r)
	}
	_, lu1 := metaOf(t, cr.JSON(t))
	if parseInstant(t, lu).Before(parseInstant(t, lu1)) {
		t.Errorf("lastUpdated went backwards: v1 %s, v2 %s", lu1, lu)
	}
	got := in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200).JSON(t)
	if family(got) != "Second" {
		t.Errorf("read after update: %v", got)
	}
	old := in.Do(t, "GET", base+"/Patient/"+id+"/_history/1", nil).Want(t, 200)
	assertSameJSON(t, cr.Body, old.Body)

	t.Run("update-as-create", func(t *testing.T) {
		r := put(t, in, "Patient", "client-id-1", patient("client-id-1", "Chosen")).Want(t, http.StatusCreated)
		if want := in.Base("default") + "/Patient/client-id-1/_history/1"; r.Header.Get("Location") != want {
			t.Errorf("Location = %q, want %q", r.Header.Get("Location"), want)
		}
		if r.Header.Get("ETag") != `W/"1"` {
			t.Errorf("ETag = %q", r.Header.Get("ETag"))
		}
		if vid, _ := metaOf(t, r.JSON(t)); vid != "1" {
			t.Errorf("versionId %q", vid)
		}
		in.Do(t, "GET", base+"/Patient/client-id-1", nil).Want(t, 200)
	})
	t.Run("missing id", func(t *testing.T) {
		in.Do(t, "PUT", base+"/Patient/"+id, patient("", "NoID")).Outcome(t, 400)
	})
	t.Run("id mismatch", func(t *testing.T) {
		in.Do(t, "PUT", base+"/Patient/"+id, patient("someone-else", "Mismatch")).Outcome(t, 400)
	})
	t.Run("resourceType mismatch", func(t *testing.T) {
		obs := map[string]any{"resourceType": "Observation", "id": id, "status": "final", "code": map[string]any{"text": "x"}}
		in.Do(t, "PUT", base+"/Patient/"+id, obs).Outcome(t, 400)
	})
	t.Run("resourceType mismatch on create", func(t *testing.T) {
		in.Do(t, "POST", base+"/Observation", patient("", "Wrong")).Outcome(t, 400)
	})
	// None of the rejected writes made a version.
	if n := len(allHistory(t, in, base+"/Patient/"+id+"/_history")); n != 2 {
		t.Errorf("history has %d versions, want 2", n)
	}
}

func TestIdenticalUpdateMakesNoVersion(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, cr := create(t, in, "Patient", patient("", "Same"))
	// Same content, different key order and different client meta.
	raw := `{"gender":"female","birthDate":"1970-01-02","meta":{"versionId":"99","lastUpdated":"2000-01-01T00:00:00Z"},` +
		`"name":[{"given":["Ada"],"family":"Same"}],"id":"` + id + `","resourceType":"Patient"}`
	r := put(t, in, "Patient", id, raw).Want(t, 200)
	if r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("identical update ETag = %q, want W/\"1\" (no new version)", r.Header.Get("ETag"))
	}
	assertSameJSON(t, cr.Body, r.Body)
	if n := len(allHistory(t, in, base+"/Patient/"+id+"/_history")); n != 1 {
		t.Errorf("history has %d versions after an identical update, want 1", n)
	}
	// A real change still makes a version.
	put(t, in, "Patient", id, patient(id, "Different")).Want(t, 200)
	if n := len(allHistory(t, in, base+"/Patient/"+id+"/_history")); n != 2 {
		t.Errorf("history has %d versions, want 2", n)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, cr := create(t, in, "Patient", patient("", "Ephemeral"))
	in.Do(t, "DELETE", base+"/Patient/"+id, nil).Want(t, 200, 204)

	// Read gives 410 Gone with an OperationOutcome.
	in.Do(t, "GET", base+"/Patient/"+id, nil).Outcome(t, http.StatusGone)
	// The earlier version is still readable.
	v1 := in.Do(t, "GET", base+"/Patient/"+id+"/_history/1", nil).Want(t, 200)
	assertSameJSON(t, cr.Body, v1.Body)
	// The delete itself is version 2 and has no content.
	in.Do(t, "GET", base+"/Patient/"+id+"/_history/2", nil).Outcome(t, http.StatusGone)

	// History shows the delete, newest first.
	h := allHistory(t, in, base+"/Patient/"+id+"/_history")
	if len(h) != 2 {
		t.Fatalf("history has %d entries, want 2", len(h))
	}
	if h[0].Request.Method != "DELETE" || h[0].Resource != nil || h[0].version(t) != 2 {
		t.Errorf("newest history entry should be the DELETE of version 2 without a resource: %+v", h[0])
	}
	if h[1].version(t) != 1 || h[1].Resource == nil {
		t.Errorf("older history entry should be version 1 with its resource: %+v", h[1])
	}

	// Deleting again succeeds and adds no version.
	in.Do(t, "DELETE", base+"/Patient/"+id, nil).Want(t, 200, 204)
	if n := len(allHistory(t, in, base+"/Patient/"+id+"/_history")); n != 2 {
		t.Errorf("second delete changed history: %d entries", n)
	}
	// Deleting what never existed succeeds and creates nothing.
	in.Do(t, "DELETE", base+"/Patient/never-existed", nil).Want(t, 200, 204)
	in.Do(t, "GET", base+"/Patient/never-existed", nil).Outcome(t, 404)
	in.Do(t, "GET", base+"/Patient/never-existed/_history", nil).Outcome(t, 404)

	// Re-create after delete: version 3, readable again.
	r := put(t, in, "Patient", id, patient(id, "Phoenix")).Want(t, 200, 201)
	if r.Header.Get("ETag") != `W/"3"` {
		t.Errorf("re-create ETag = %q, want W/\"3\"", r.Header.Get("ETag"))
	}
	got := in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200).JSON(t)
	if family(got) != "Phoenix" {
		t.Errorf("read after re-create: %v", got)
	}
	if n := len(allHistory(t, in, base+"/Patient/"+id+"/_history")); n != 3 {
		t.Errorf("history after re-create has %d entries, want 3", n)
	}
	// Prefer: return=OperationOutcome on delete gives an outcome body.
	r = in.Do(t, "DELETE", base+"/Patient/"+id, nil, "Prefer", "return=OperationOutcome").Want(t, 200)
	if r.JSON(t)["resourceType"] != "OperationOutcome" {
		t.Errorf("delete with Prefer: return=OperationOutcome: %s", r)
	}
}

// assertSameJSON fails unless a and b are the same JSON value.
func assertSameJSON(t *testing.T, a, b []byte) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	xj, _ := json.Marshal(x)
	yj, _ := json.Marshal(y)
	if string(xj) != string(yj) {
		t.Errorf("JSON differs:\n  %s\n  %s", xj, yj)
	}
}
