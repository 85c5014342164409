package rest_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// TestPublicURL: behind a proxy, every absolute URL the server hands out
// (Location, fullUrl, links, the management fhirBaseUrl) uses the public origin.
func TestPublicURL(t *testing.T) {
	t.Parallel()
	in := servertest.New(t, server.Options{PublicURL: "https://fhir.example.com/"})
	r := in.Do(t, "POST", base+"/Patient", patient("", "Proxied")).Want(t, 201)
	if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "https://fhir.example.com/fhir/default/Patient/") {
		t.Errorf("Location %q", loc)
	}
	b := getBundle(t, in, base+"/_history?_count=1", "history")
	for _, u := range []string{b.link("self"), b.Entry[0].FullURL} {
		if !strings.HasPrefix(u, "https://fhir.example.com/fhir/default/") {
			t.Errorf("URL %q does not use the public origin", u)
		}
	}
	acct := in.Do(t, "GET", "/management/accounts/default", nil).Want(t, 200).JSON(t)
	if acct["fhirBaseUrl"] != "https://fhir.example.com/fhir/default" {
		t.Errorf("fhirBaseUrl %v", acct["fhirBaseUrl"])
	}
}

// TestHistoryPagingKeepsFilters: next links carry _since and _count, so
// every page honours them.
func TestHistoryPagingKeepsFilters(t *testing.T) {
	t.Parallel()
	in := start(t)
	for i := 0; i < 3; i++ {
		create(t, in, "Patient", patient("", "Old"))
	}
	since := stamp(t)
	for i := 0; i < 7; i++ {
		create(t, in, "Patient", patient("", "New"))
	}
	create(t, in, "Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}})
	first := getBundle(t, in, base+"/Patient/_history?_count=2&_since="+url.QueryEscape(since), "history")
	if first.Total == nil || *first.Total != 7 {
		t.Fatalf("total %v, want 7", first.Total)
	}
	es := allHistory(t, in, base+"/Patient/_history?_count=2&_since="+url.QueryEscape(since))
	if len(es) != 7 {
		t.Errorf("%d entries over all pages, want 7", len(es))
	}
	for _, e := range es {
		var m map[string]any
		if err := jsonUnmarshal(e.Resource, &m); err != nil || family(m) != "New" {
			t.Errorf("entry outside the filter: %s", e.Resource)
		}
	}
}

// TestIfMatchAfterDelete: the delete marker's ETag is the version an
// If-Match re-create must name.
func TestIfMatchAfterDelete(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, _ := create(t, in, "Patient", patient("", "Lazarus"))
	in.Do(t, "DELETE", base+"/Patient/"+id, nil).Want(t, 200, 204)
	g := in.Do(t, "GET", base+"/Patient/"+id, nil)
	g.Outcome(t, 410)
	if g.Header.Get("ETag") != `W/"2"` {
		t.Errorf("410 ETag %q, want W/\"2\"", g.Header.Get("ETag"))
	}
	put(t, in, "Patient", id, patient(id, "Lazarus"), "If-Match", `W/"1"`).Outcome(t, 412)
	r := put(t, in, "Patient", id, patient(id, "Lazarus"), "If-Match", `W/"2"`).Want(t, 200, 201)
	if r.Header.Get("ETag") != `W/"3"` {
		t.Errorf("re-create ETag %q, want W/\"3\"", r.Header.Get("ETag"))
	}
	// Re-creating with the same content as before the delete is a new version.
	if n := len(allHistory(t, in, base+"/Patient/"+id+"/_history")); n != 3 {
		t.Errorf("history %d entries, want 3", n)
	}
}

// TestRoundTripFidelity: decimals keep their precision (R4 JSON: "1.10" is
// not "1.1") and strings their exact characters, through create, read,
// vread and history.
func TestRoundTripFidelity(t *testing.T) {
	t.Parallel()
	in := start(t)
	for _, v := range []string{"1.10", "0.000001", "12345678901234567890.123", "1e2", "100", "-0.50"} {
		id, _ := create(t, in, "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":`+v+`}}`)
		for _, target := range []string{"/Observation/" + id, "/Observation/" + id + "/_history/1", "/Observation/" + id + "/_history"} {
			r := in.Do(t, "GET", base+target, nil).Want(t, 200)
			if !strings.Contains(string(r.Body), `"value":`+v+`}`) {
				t.Errorf("decimal %s not preserved by GET %s: %s", v, target, r.Body)
			}
		}
	}
	name := "Zoë \u2028 <b>&amp; \U0001F600 \\ \" tab\t"
	id, _ := create(t, in, "Patient", patient("", name))
	if got := family(in.Do(t, "GET", base+"/Patient/"+id, nil).Want(t, 200).JSON(t)); got != name {
		t.Errorf("string changed: %q, want %q", got, name)
	}
}

// TestHistorySinceIsInclusive: _since keeps versions created at or after
// the instant (R4 http.html#history), so a version's own lastUpdated selects it.
func TestHistorySinceIsInclusive(t *testing.T) {
	t.Parallel()
	in := start(t)
	create(t, in, "Patient", patient("", "Before"))
	time.Sleep(5 * time.Millisecond)
	id, r := create(t, in, "Patient", patient("", "Exact"))
	_, lu := metaOf(t, r.JSON(t))
	b := getBundle(t, in, base+"/Patient/_history?_since="+url.QueryEscape(lu), "history")
	if len(b.Entry) != 1 || !strings.Contains(b.Entry[0].FullURL, id) {
		t.Errorf("_since=%s (the version's own lastUpdated): %d entries, want just %s", lu, len(b.Entry), id)
	}
	// A later instant excludes it.
	later := parseInstant(t, lu).Add(time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
	if b := getBundle(t, in, base+"/Patient/_history?_since="+url.QueryEscape(later), "history"); len(b.Entry) != 0 {
		t.Errorf("_since=%s: %d entries, want 0", later, len(b.Entry))
	}
}
