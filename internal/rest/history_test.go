package rest_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stamp returns a FHIR instant a little after the server's last write and
// waits a little after it, so writes before and after it are distinct in
// millisecond-precision lastUpdated.
func stamp(t *testing.T) string {
	t.Helper()
	time.Sleep(15 * time.Millisecond)
	s := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	time.Sleep(15 * time.Millisecond)
	return s
}

func TestHistoryLevels(t *testing.T) {
	t.Parallel()
	in := start(t)
	a, _ := create(t, in, "Patient", patient("", "A1"))
	obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "weight"}}
	o, _ := create(t, in, "Observation", obs)
	t1 := stamp(t)
	put(t, in, "Patient", a, patient(a, "A2")).Want(t, 200)
	b, _ := create(t, in, "Patient", patient("", "B1"))
	t2 := stamp(t)
	in.Do(t, "DELETE", base+"/Patient/"+a, nil).Want(t, 200, 204)

	keys := func(es []entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.key(t))
		}
		return out
	}
	cases := []struct {
		name, target string
		want         []string
	}{
		{"instance", "/Patient/" + a + "/_history", []string{"Patient/" + a + "/_history/3", "Patient/" + a + "/_history/2", "Patient/" + a + "/_history/1"}},
		{"type", "/Patient/_history", []string{"Patient/" + a + "/_history/3", "Patient/" + b + "/_history/1", "Patient/" + a + "/_history/2", "Patient/" + a + "/_history/1"}},
		{"system", "/_history", []string{"Patient/" + a + "/_history/3", "Patient/" + b + "/_history/1", "Patient/" + a + "/_history/2", "Observation/" + o + "/_history/1", "Patient/" + a + "/_history/1"}},
		{"instance _since", "/Patient/" + a + "/_history?_since=" + url.QueryEscape(t1), []string{"Patient/" + a + "/_history/3", "Patient/" + a + "/_history/2"}},
		{"type _since", "/Patient/_history?_since=" + url.QueryEscape(t1), []string{"Patient/" + a + "/_history/3", "Patient/" + b + "/_history/1", "Patient/" + a + "/_history/2"}},
		{"system _since", "/_history?_since=" + url.QueryEscape(t2), []string{"Patient/" + a + "/_history/3"}},
		{"instance _at", "/Patient/" + a + "/_history?_at=" + url.QueryEscape(t1), []string{"Patient/" + a + "/_history/1"}},
		{"instance _at later", "/Patient/" + a + "/_history?_at=" + url.QueryEscape(t2), []string{"Patient/" + a + "/_history/2"}},
		{"type _at", "/Patient/_history?_at=" + url.QueryEscape(t1), []string{"Patient/" + a + "/_history/1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bd := getBundle(t, in, base+c.target, "history")
			got := keys(bd.Entry)
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("entries (newest first)\n got %v\nwant %v", got, c.want)
			}
			if bd.Total == nil || *bd.Total != len(c.want) {
				t.Errorf("total = %v, want %d", bd.Total, len(c.want))
			}
			if bd.link("self") == "" {
				t.Errorf("no self link")
			}
			if bd.link("next") != "" {
				t.Errorf("unexpected next link %q", bd.link("next"))
			}
			checkEntries(t, in.Base("default"), bd.Entry)
		})
	}
	t.Run("_count", func(t *testing.T) {
		bd := getBundle(t, in, base+"/_history?_count=2", "history")
		if len(bd.Entry) != 2 || bd.link("next") == "" || bd.Total == nil || *bd.Total != 5 {
			t.Errorf("_count=2: %d entries, next %q, total %v; want 2, a next link, 5", len(bd.Entry), bd.link("next"), bd.Total)
		}
		bd = getBundle(t, in, base+"/_history?_count=0", "history")
		if len(bd.Entry) != 0 || bd.Total == nil || *bd.Total != 5 {
			t.Errorf("_count=0: %d entries, total %v; want 0 entries and total 5", len(bd.Entry), bd.Total)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"_since=yesterday", "_at=2026-13-01", "_count=-1", "_count=many", "_page=abc", "_page=-3"} {
			in.Do(t, "GET", base+"/_history?"+q, nil).Outcome(t, 400)
		}
		in.Do(t, "GET", base+"/NotAType/_history", nil).Outcome(t, 404)
	})
}

// TestHistoryNamesTheCreatingInteraction checks request.method and url of
// each version 1 in history: POST Type for a create, PUT Type/id for an
// update that created the resource (directly and in a transaction).
func TestHistoryNamesTheCreatingInteraction(t *testing.T) {
	t.Parallel()
	in := start(t)
	posted, _ := create(t, in, "Patient", patient("", "Posted"))
	put(t, in, "Patient", "put-made", patient("put-made", "Put")).Want(t, 201)
	put(t, in, "Patient", "put-made", patient("put-made", "Put again")).Want(t, 200)
	in.Do(t, "POST", base, map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": patient("tx-put", "Tx"), "request": map[string]any{"method": "PUT", "url": "Patient/tx-put"}},
	}}).Want(t, 200)
	want := map[string]string{
		"Patient/" + posted + "/_history/1": "POST Patient",
		"Patient/put-made/_history/1":       "PUT Patient/put-made",
		"Patient/put-made/_history/2":       "PUT Patient/put-made",
		"Patient/tx-put/_history/1":         "PUT Patient/tx-put",
	}
	bd := getBundle(t, in, base+"/Patient/_history", "history")
	if len(bd.Entry) != len(want) {
		t.Fatalf("%d history entries, want %d", len(bd.Entry), len(want))
	}
	for _, e := range bd.Entry {
		k := e.key(t)
		if got := e.Request.Method + " " + e.Request.URL; got != want[k] {
			t.Errorf("%s: request %q, want %q", k, got, want[k])
		}
		if e.version(t) == 1 && !strings.HasPrefix(e.Response.Status, "201") {
			t.Errorf("%s: status %q, want 201", k, e.Response.Status)
		}
	}
	checkEntries(t, in.Base("default"), bd.Entry)
	// The mark is not part of the resource: reads and vreads return JSON.
	r := in.Do(t, "GET", base+"/Patient/put-made/_history/1", nil).Want(t, 200)
	if len(r.Body) == 0 || r.Body[0] != '{' {
		t.Fatalf("vread body starts with %q", r.Body[:min(len(r.Body), 8)])
	}
}

// checkEntries checks what FHIR requires of history entries: fullUrl,
// request method and url, response status and etag, and for non-deletes a
// resource whose meta.versionId matches the etag.
func checkEntries(t *testing.T, fhirBase string, es []entry) {
	t.Helper()
	var prev time.Time
	for i, e := range es {
		if !strings.HasPrefix(e.FullURL, fhirBase+"/") {
			t.Errorf("entry %d fullUrl %q is not under %s", i, e.FullURL, fhirBase)
		}
		typeID := strings.TrimPrefix(e.FullURL, fhirBase+"/")
		lm := parseInstant(t, e.Response.LastModified)
		if i > 0 && lm.After(prev) {
			t.Errorf("entry %d is newer (%s) than entry %d (%s): history must be newest first", i, lm, i-1, prev)
		}
		prev = lm
		v := e.version(t)
		switch e.Request.Method {
		case "DELETE":
			if e.Resource != nil || e.Request.URL != typeID {
				t.Errorf("entry %d: a DELETE entry has url %q (want %q) and no resource", i, e.Request.URL, typeID)
			}
			continue
		case "POST":
			if v != 1 || !strings.HasPrefix(e.Response.Status, "201") {
				t.Errorf("entry %d: POST entry with version %d, status %q", i, v, e.Response.Status)
			}
		case "PUT":
			if e.Request.URL != typeID || !strings.HasPrefix(e.Response.Status, "20") {
				t.Errorf("entry %d: PUT url %q (want %q), status %q", i, e.Request.URL, typeID, e.Response.Status)
			}
		default:
			t.Errorf("entry %d: request.method %q", i, e.Request.Method)
			continue
		}
		var res map[string]any
		if err := json.Unmarshal(e.Resource, &res); err != nil {
			t.Fatalf("entry %d resource: %v", i, err)
		}
		vid, lu := metaOf(t, res)
		if vid != fmt.Sprint(v) || !parseInstant(t, lu).Equal(lm) {
			t.Errorf("entry %d: resource meta (%s, %s) disagrees with response (%s, %s)", i, vid, lu, e.Response.Etag, e.Response.LastModified)
		}
		if res["resourceType"].(string)+"/"+res["id"].(string) != typeID {
			t.Errorf("entry %d: resource %v/%v under fullUrl %s", i, res["resourceType"], res["id"], e.FullURL)
		}
	}
}

// TestHistoryPagingUnderWrites follows next links with writes between page
// requests: the pages together must hold each version that existed when the
// first page was served exactly once (no duplicates, no gaps).
func TestHistoryPagingUnderWrites(t *testing.T) {
	t.Parallel()
	in := start(t)
	var ids []string
	for i := 0; i < 12; i++ {
		id, _ := create(t, in, "Patient", patient("", fmt.Sprintf("P%d", i)))
		ids = append(ids, id)
		if i%3 == 0 {
			put(t, in, "Patient", id, patient(id, fmt.Sprintf("P%d-v2", i))).Want(t, 200)
		}
	}
	create(t, in, "Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}})

	for _, level := range []string{"/Patient/_history", "/_history", "/Patient/" + ids[0] + "/_history"} {
		t.Run(level, func(t *testing.T) {
			snapshot := map[string]bool{}
			for _, e := range getBundle(t, in, base+level+"?_count=1000", "history").Entry {
				snapshot[e.key(t)] = true
			}
			first := getBundle(t, in, base+level+"?_count=3", "history")
			if first.Total == nil || *first.Total != len(snapshot) {
				t.Fatalf("total = %v, want %d", first.Total, len(snapshot))
			}
			seen := map[string]bool{}
			pages := 0
			b := first
			for {
				pages++
				if len(b.Entry) > 3 {
					t.Fatalf("page %d has %d entries with _count=3", pages, len(b.Entry))
				}
				for _, e := range b.Entry {
					k := e.key(t)
					if seen[k] {
						t.Errorf("duplicate %s on page %d", k, pages)
					}
					seen[k] = true
				}
				next := b.link("next")
				if next == "" {
					break
				}
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				// Writes between pages: a new resource, an update, a delete.
				nid, _ := create(t, in, "Patient", patient("", fmt.Sprintf("N%d", pages)))
				put(t, in, "Patient", ids[pages%len(ids)], patient(ids[pages%len(ids)], fmt.Sprintf("U%d-%d", pages, time.Now().UnixNano()))).Want(t, 200, 201)
				in.Do(t, "DELETE", base+"/Patient/"+nid, nil).Want(t, 200, 204)
				b = getBundle(t, in, next, "history")
			}
			for k := range snapshot {
				if !seen[k] {
					t.Errorf("gap: %s existed before paging but was on no page", k)
				}
			}
			for k := range seen {
				if !snapshot[k] {
					t.Errorf("%s was written after paging began but appeared on a page", k)
				}
			}
			if want := (len(snapshot) + 2) / 3; pages != want {
				t.Errorf("%d pages for %d versions with _count=3, want %d", pages, len(snapshot), want)
			}
		})
	}
}
