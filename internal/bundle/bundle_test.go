package bundle_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kilnhealth/kiln/internal/bundle"
	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// tx builds a Bundle of kind ("transaction" or "batch") from entries.
func tx(kind string, entries ...map[string]any) map[string]any {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = e
	}
	return map[string]any{"resourceType": "Bundle", "type": kind, "entry": es}
}

func post(fullURL string, res map[string]any) map[string]any {
	e := map[string]any{"resource": res, "request": map[string]any{"method": "POST", "url": res["resourceType"]}}
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	return e
}

func put(res map[string]any) map[string]any {
	return map[string]any{"resource": res, "request": map[string]any{"method": "PUT", "url": fmt.Sprintf("%s/%s", res["resourceType"], res["id"])}}
}

func req(method, url string) map[string]any {
	return map[string]any{"request": map[string]any{"method": method, "url": url}}
}

func patient(id, family string) map[string]any {
	p := map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": family}}}
	if id != "" {
		p["id"] = id
	}
	return p
}

type respEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Response struct {
		Status       string          `json:"status"`
		Location     string          `json:"location"`
		Etag         string          `json:"etag"`
		LastModified string          `json:"lastModified"`
		Outcome      json.RawMessage `json:"outcome"`
	} `json:"response"`
}

type respBundle struct {
	ResourceType string      `json:"resourceType"`
	Type         string      `json:"type"`
	Entry        []respEntry `json:"entry"`
}

func decodeBundle(t *testing.T, r *servertest.Response) respBundle {
	t.Helper()
	r.Want(t, 200)
	var b respBundle
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("response is not a Bundle: %v: %s", err, r)
	}
	return b
}

func start(t *testing.T) *servertest.Instance {
	return servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
}

func historyTotal(t *testing.T, inst *servertest.Instance) int {
	t.Helper()
	m := inst.Do(t, "GET", "/fhir/default/_history?_count=1", nil).Want(t, 200).JSON(t)
	n, err := m["total"].(json.Number).Int64()
	if err != nil {
		t.Fatalf("history total: %v", m["total"])
	}
	return int(n)
}

func TestTransactionReferencesAndOrder(t *testing.T) {
	inst := start(t)
	// A resource to delete and one to update, created directly.
	inst.Do(t, "PUT", "/fhir/default/Patient/old", patient("old", "Old")).Want(t, 201)
	inst.Do(t, "PUT", "/fhir/default/Patient/upd", patient("upd", "Before")).Want(t, 201)

	obs := map[string]any{
		"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
		"subject": map[string]any{"reference": "urn:uuid:5a4c0f8e-0000-4000-8000-000000000001"},
		// A reference inside an extension and one inside a contained resource.
		"extension": []any{map[string]any{"url": "http://example.org/ext", "valueReference": map[string]any{"reference": "urn:uuid:5a4c0f8e-0000-4000-8000-000000000001"}}},
		"contained": []any{map[string]any{"resourceType": "Provenance", "id": "p1", "recorded": "2020-01-01T00:00:00Z",
			"target": []any{map[string]any{"reference": "urn:uuid:5a4c0f8e-0000-4000-8000-000000000001"}},
			"agent":  []any{map[string]any{"who": map[string]any{"reference": "Patient/upd"}}}}},
	}
	b := tx("transaction",
		req("GET", "Patient/upd"), // processed last: sees the update
		post("", obs),             // refers to the next entry (processed in the same phase)
		post("urn:uuid:5a4c0f8e-0000-4000-8000-000000000001", patient("", "New")),
		put(patient("upd", "After")),
		req("DELETE", "Patient/old"),
	)
	out := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", b))
	if out.Type != "transaction-response" || len(out.Entry) != 5 {
		t.Fatalf("got %s with %d entries", out.Type, len(out.Entry))
	}
	want := []string{"200 OK", "201 Created", "201 Created", "200 OK", "204 No Content"}
	for i, w := range want {
		if out.Entry[i].Response.Status != w {
			t.Errorf("entry %d: status %q, want %q", i, out.Entry[i].Response.Status, w)
		}
	}
	if !strings.Contains(string(out.Entry[0].Resource), `"After"`) {
		t.Errorf("GET entry ran before the PUT: %s", out.Entry[0].Resource)
	}
	if out.Entry[3].Response.Etag != `W/"2"` || !strings.HasPrefix(out.Entry[3].Response.Location, "Patient/upd/_history/2") {
		t.Errorf("update response %+v", out.Entry[3].Response)
	}
	if out.Entry[1].Response.LastModified == "" || out.Entry[1].Response.Etag != `W/"1"` {
		t.Errorf("create response %+v", out.Entry[1].Response)
	}
	pid := strings.Split(out.Entry[2].Response.Location, "/")[1]
	// The stored Observation refers to the created Patient everywhere.
	loc := out.Entry[1].Response.Location
	o := inst.Do(t, "GET", "/fhir/default/"+strings.Join(strings.Split(loc, "/")[:2], "/"), nil).Want(t, 200)
	body := string(o.Body)
	if strings.Contains(body, "urn:uuid") || strings.Count(body, `"Patient/`+pid+`"`) != 3 {
		t.Errorf("references not rewritten to Patient/%s: %s", pid, body)
	}
	if !strings.Contains(body, `"Patient/upd"`) {
		t.Errorf("a reference to an existing resource changed: %s", body)
	}
	inst.Do(t, "GET", "/fhir/default/Patient/old", nil).Want(t, 410)
}

func TestTransactionRollback(t *testing.T) {
	inst := start(t)
	inst.Do(t, "PUT", "/fhir/default/Patient/keep", patient("keep", "Keep")).Want(t, 201)
	before := historyTotal(t, inst)
	var entries []map[string]any
	for i := 0; i < 50; i++ {
		entries = append(entries, put(patient(fmt.Sprintf("rb-%d", i), "Roll")))
	}
	entries = append(entries, put(patient("keep", "Changed")), req("DELETE", "Patient/keep"))
	entries[len(entries)-1] = req("DELETE", "Patient/keep")
	// The last entry is invalid: an unknown element.
	bad := patient("", "Bad")
	bad["notAnElement"] = true
	entries = append(entries, post("", bad))
	last := len(entries) - 1
	r := inst.Do(t, "POST", "/fhir/default", tx("transaction", entries...))
	issues := r.Outcome(t, 400)
	found := false
	for _, is := range issues {
		for _, e := range is["expression"].([]any) {
			found = found || e == fmt.Sprintf("Bundle.entry[%d]", last)
		}
	}
	if !found {
		t.Fatalf("the OperationOutcome does not name Bundle.entry[%d]: %s", last, r)
	}
	if after := historyTotal(t, inst); after != before {
		t.Fatalf("history grew from %d to %d: the failed transaction wrote", before, after)
	}
	for i := 0; i < 50; i += 7 {
		inst.Do(t, "GET", fmt.Sprintf("/fhir/default/Patient/rb-%d", i), nil).Want(t, 404)
	}
	k := inst.Do(t, "GET", "/fhir/default/Patient/keep", nil).Want(t, 200)
	if !strings.Contains(string(k.Body), "Keep") || k.Header.Get("ETag") != `W/"1"` {
		t.Fatalf("Patient/keep changed: %s", k)
	}
}

func TestTransactionErrors(t *testing.T) {
	inst := start(t)
	for _, c := range []struct {
		name   string
		body   any
		status int
		expr   string
	}{
		{"not a bundle", patient("", "X"), 400, ""},
		{"collection", map[string]any{"resourceType": "Bundle", "type": "collection"}, 400, ""},
		{"not json", "{", 400, ""},
		{"missing request", tx("transaction", map[string]any{"resource": patient("", "X")}), 400, "Bundle.entry[0]"},
		{"bad method", tx("transaction", req("FETCH", "Patient")), 400, "Bundle.entry[0]"},
		{"unknown type", tx("transaction", post("", map[string]any{"resourceType": "Nope"})), 404, "Bundle.entry[0]"},
		{"put without id", tx("transaction", req("GET", "metadata"), map[string]any{"resource": patient("", "X"), "request": map[string]any{"method": "PUT", "url": "Patient/a"}}), 400, "Bundle.entry[1]"},
		{"id mismatch", tx("transaction", map[string]any{"resource": patient("b", "X"), "request": map[string]any{"method": "PUT", "url": "Patient/a"}}), 400, "Bundle.entry[0]"},
		{"dangling urn", tx("transaction", post("", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": "urn:uuid:0000"}})), 400, "Bundle.entry[0]"},
		{"same resource twice", tx("transaction", put(patient("dup", "A")), put(patient("dup", "B"))), 400, "Bundle.entry[1]"},
		{"duplicate fullUrl", tx("transaction", post("urn:uuid:1", patient("", "A")), post("urn:uuid:1", patient("", "B"))), 400, "Bundle.entry[1]"},
		{"if-match mismatch", tx("transaction", map[string]any{"resource": patient("im", "A"), "request": map[string]any{"method": "PUT", "url": "Patient/im", "ifMatch": `W/"3"`}}), 412, "Bundle.entry[0]"},
		{"absolute url elsewhere", tx("transaction", req("DELETE", "http://elsewhere.example/fhir/Patient/x")), 400, "Bundle.entry[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			issues := inst.Do(t, "POST", "/fhir/default", c.body).Outcome(t, c.status)
			if c.expr != "" {
				exprs, _ := issues[0]["expression"].([]any)
				if len(exprs) == 0 || exprs[0] != c.expr {
					t.Fatalf("expression %v, want %s", exprs, c.expr)
				}
			}
		})
	}
	if n := historyTotal(t, inst); n != 0 {
		t.Fatalf("failed transactions wrote %d versions", n)
	}
}

// TestInvalidEntryLocation checks that the issues of an invalid entry are
// located inside the posted Bundle: the entry first, then the element within
// the entry's resource, both as FHIRPath from the Bundle.
func TestInvalidEntryLocation(t *testing.T) {
	inst := start(t)
	obs := map[string]any{"resourceType": "Observation", "status": "bogus", "code": map[string]any{"text": "x"}}
	issues := inst.Do(t, "POST", "/fhir/default", tx("transaction", post("urn:uuid:p", patient("", "A")), post("", obs))).Outcome(t, 400)
	var got []string
	for _, is := range issues {
		for _, e := range is["expression"].([]any) {
			got = append(got, e.(string))
		}
	}
	want := []string{"Bundle.entry[1]", "Bundle.entry[1].resource.status"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("expressions %q, want %q", got, want)
	}
}

func TestLimits(t *testing.T) {
	inst := servertest.New(t, server.Options{MaxBundleEntries: 10, MaxBundleBytes: 4096})
	var es []map[string]any
	for i := 0; i < 11; i++ {
		es = append(es, req("GET", "metadata"))
	}
	inst.Do(t, "POST", "/fhir/default", tx("batch", es...)).Outcome(t, 413)
	big := patient("", strings.Repeat("x", 5000))
	issues := inst.Do(t, "POST", "/fhir/default", tx("transaction", post("", big))).Outcome(t, 413)
	if issues[0]["code"] != "too-costly" {
		t.Fatalf("issue %v", issues[0])
	}
	inst.Do(t, "POST", "/fhir/default", tx("batch", es[:10]...)).Want(t, 200)
}

func TestBatchPerEntryOutcomes(t *testing.T) {
	inst := start(t)
	inst.Do(t, "PUT", "/fhir/default/Patient/b1", patient("b1", "One")).Want(t, 201)
	bad := patient("", "Bad")
	bad["gender"] = "sometimes"
	b := tx("batch",
		post("", patient("", "Fine")),
		post("", bad),
		req("GET", "Patient/missing"),
		req("GET", "Patient/b1"),
		map[string]any{"resource": patient("b1", "Two"), "request": map[string]any{"method": "PUT", "url": "Patient/b1", "ifMatch": `W/"9"`}},
		req("DELETE", "Patient/b1"),
		map[string]any{"request": map[string]any{"method": "POST"}},
	)
	out := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", b, "Prefer", "return=OperationOutcome"))
	if out.Type != "batch-response" {
		t.Fatalf("type %q", out.Type)
	}
	want := []string{"201", "400", "404", "410", "412", "204", "400"}
	for i, w := range want {
		e := out.Entry[i]
		if !strings.HasPrefix(e.Response.Status, w+" ") {
			t.Errorf("entry %d: status %q, want %s", i, e.Response.Status, w)
		}
		if len(e.Response.Outcome) == 0 && w != "410" {
			t.Errorf("entry %d: no outcome", i)
		}
	}
	if len(out.Entry[0].Resource) != 0 {
		t.Errorf("return=OperationOutcome but a resource came back")
	}
	if !strings.Contains(string(out.Entry[1].Response.Outcome), "Bundle.entry[1]") {
		t.Errorf("outcome does not name the entry: %s", out.Entry[1].Response.Outcome)
	}
	// The created Patient exists, the invalid one does not.
	loc := out.Entry[0].Response.Location
	inst.Do(t, "GET", "/fhir/default/"+strings.Join(strings.Split(loc, "/")[:2], "/"), nil).Want(t, 200)
	inst.Do(t, "GET", "/fhir/default/Patient/b1", nil).Want(t, 410)
}

func TestPreferMinimal(t *testing.T) {
	inst := start(t)
	out := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", post("", patient("", "M"))), "Prefer", "return=minimal"))
	if len(out.Entry[0].Resource) != 0 || out.Entry[0].Response.Location == "" {
		t.Fatalf("minimal: %+v", out.Entry[0])
	}
	out = decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", post("", patient("", "R")))))
	if !strings.Contains(string(out.Entry[0].Resource), `"R"`) {
		t.Fatalf("representation: %+v", out.Entry[0])
	}
}

func TestJSONPatchEntry(t *testing.T) {
	inst := start(t)
	inst.Do(t, "PUT", "/fhir/default/Patient/pt", patient("pt", "Before")).Want(t, 201)
	patch := `[{"op":"test","path":"/name/0/family","value":"Before"},{"op":"replace","path":"/name/0/family","value":"After"},{"op":"add","path":"/gender","value":"female"}]`
	bin := map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": base64.StdEncoding.EncodeToString([]byte(patch))}
	e := map[string]any{"resource": bin, "request": map[string]any{"method": "PATCH", "url": "Patient/pt"}}
	out := decodeBundle(t, inst.Do(t, "POST", "/fhir/default", tx("transaction", e)))
	if out.Entry[0].Response.Status != "200 OK" || out.Entry[0].Response.Etag != `W/"2"` {
		t.Fatalf("patch: %+v", out.Entry[0].Response)
	}
	got := string(inst.Do(t, "GET", "/fhir/default/Patient/pt", nil).Want(t, 200).Body)
	if !strings.Contains(got, `"After"`) || !strings.Contains(got, `"female"`) {
		t.Fatalf("patched resource: %s", got)
	}
	// A failing test op fails the transaction with 422 and writes nothing.
	bad := `[{"op":"test","path":"/name/0/family","value":"Before"}]`
	bin["data"] = base64.StdEncoding.EncodeToString([]byte(bad))
	inst.Do(t, "POST", "/fhir/default", tx("transaction", put(patient("other", "X")), e)).Outcome(t, 422)
	inst.Do(t, "GET", "/fhir/default/Patient/other", nil).Want(t, 404)
}

// TestConcurrentOverlappingTransactions runs transactions that all update
// the same resources at once: every one must succeed (retrying internally
// on conflicts), and each must be all-or-nothing: its marker is in every
// shared resource's history, and the version counts add up.
func TestConcurrentOverlappingTransactions(t *testing.T) {
	inst := start(t)
	const shared, workers, rounds = 5, 6, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				marker := fmt.Sprintf("w%d-r%d", w, r)
				var es []map[string]any
				for s := 0; s < shared; s++ {
					es = append(es, put(patient(fmt.Sprintf("shared-%d", s), marker)))
				}
				es = append(es, post("", patient("", marker)))
				resp, err := inst.Try("POST", "/fhir/default", tx("transaction", es...), "Prefer", "return=minimal")
				if err == nil && resp.Status != 200 {
					err = fmt.Errorf("%s", resp)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for s := 0; s < shared; s++ {
		h := inst.Do(t, "GET", fmt.Sprintf("/fhir/default/Patient/shared-%d/_history?_count=1000", s), nil).Want(t, 200)
		m := h.JSON(t)
		n, _ := m["total"].(json.Number).Int64()
		if n != workers*rounds {
			t.Errorf("shared-%d has %d versions, want %d", s, n, workers*rounds)
		}
		for w := 0; w < workers; w++ {
			for r := 0; r < rounds; r++ {
				if !strings.Contains(string(h.Body), fmt.Sprintf(`"w%d-r%d"`, w, r)) {
					t.Errorf("shared-%d lacks the version of transaction w%d-r%d", s, w, r)
				}
			}
		}
	}
}

// TestDecodePathsAgree runs the single-pass and lenient Bundle decoders on
// the fuzz seeds and, when the shared data is present, on every Synthea
// Bundle.
func TestDecodePathsAgree(t *testing.T) {
	bodies := [][]byte{}
	for _, s := range decodeSeeds {
		bodies = append(bodies, []byte(s))
	}
	if files, _ := filepath.Glob(filepath.Join(syntheaDir, "*.json.gz")); len(files) > 0 {
		for _, f := range files[:min(len(files), 10)] {
			bodies = append(bodies, readGz(t, f))
		}
	}
	for i, b := range bodies {
		if diff := bundle.CheckDecodePaths(b); diff != "" {
			t.Errorf("body %d: %s", i, diff)
		}
	}
	// The common shapes take the single pass; the odd ones do not.
	for i, want := range []bool{true, false, false, false, false, false, false, false, false, true} {
		if got := bundle.SinglePass([]byte(decodeSeeds[i])); got != want {
			t.Errorf("seed %d: single pass %v, want %v", i, got, want)
		}
	}
	for i, b := range bodies[len(decodeSeeds):] {
		if !bundle.SinglePass(b) {
			t.Errorf("Synthea bundle %d does not take the single pass", i)
		}
	}
}
