package search_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func links(b map[string]any) map[string]string {
	out := map[string]string{}
	ls, _ := b["link"].([]any)
	for _, l := range ls {
		m := l.(map[string]any)
		out[m["relation"].(string)] = m["url"].(string)
	}
	return out
}

func total(b map[string]any) float64 {
	var f float64
	fmt.Sscan(fmt.Sprint(b["total"]), &f)
	return f
}

func entries(b map[string]any, mode string) []map[string]any {
	var out []map[string]any
	es, _ := b["entry"].([]any)
	for _, x := range es {
		en := x.(map[string]any)
		if s, _ := en["search"].(map[string]any); s != nil && s["mode"] == mode {
			out = append(out, en)
		}
	}
	return out
}

func TestResultControl(t *testing.T) {
	e := loadFixtures(t)
	order := func(t *testing.T, q string, want string) {
		t.Helper()
		got := strings.Join(e.ids(t, q), " ")
		if got != want {
			t.Errorf("%s: got %q want %q", q, got, want)
		}
	}
	t.Run("sort", func(t *testing.T) {
		order(t, "Patient?_sort=birthdate&birthdate:missing=false", "Patient/p3 Patient/p1 Patient/p2")
		order(t, "Patient?_sort=-birthdate&birthdate:missing=false", "Patient/p2 Patient/p3 Patient/p1")
		order(t, "Patient?_sort=family", "Patient/p2 Patient/p1 Patient/p3 Patient/p4")
		order(t, "Patient?_sort=-family", "Patient/p4 Patient/p3 Patient/p1 Patient/p2")
		order(t, "Patient?_sort=birthdate", "Patient/p3 Patient/p1 Patient/p2 Patient/p4") // missing last
		order(t, "Observation?_sort=-value-quantity&value-quantity:missing=false", "Observation/o2 Observation/o1 Observation/o3")
		order(t, "Observation?_sort=status,-date&_id=o1,o2,o3,o4", "Observation/o3 Observation/o4 Observation/o1 Observation/o2")
		order(t, "Patient?_sort=-_id", "Patient/p4 Patient/p3 Patient/p2 Patient/p1")
		e.inst.Do(t, "GET", base+"/Patient?_sort=nonsense", nil).Want(t, 400)
	})
	t.Run("paging", func(t *testing.T) {
		b := e.search(t, "Observation?_count=3&_sort=_id")
		if total(b) != 8 {
			t.Fatalf("total = %v", b["total"])
		}
		var all []string
		seen := 0
		for page := 0; ; page++ {
			ids := matchIDs(b)
			if len(ids) > 3 {
				t.Fatalf("page %d has %d entries", page, len(ids))
			}
			all = append(all, ids...)
			l := links(b)
			if page > 0 && l["previous"] == "" {
				t.Errorf("page %d has no previous link", page)
			}
			next := l["next"]
			if next == "" {
				break
			}
			// A write after the first page does not shift later pages (snapshot).
			if page == 0 {
				e.put(`{"resourceType":"Observation","id":"o0","status":"final","code":{"text":"late"}}`)
			}
			b = e.inst.Do(t, "GET", next, nil).Want(t, 200).JSON(t)
			seen++
		}
		want := "Observation/o1 Observation/o2 Observation/o3 Observation/o4 Observation/o5 Observation/o6 Observation/o7 Observation/o8"
		if strings.Join(all, " ") != want {
			t.Errorf("pages gave %v", all)
		}
		if seen != 2 {
			t.Errorf("followed %d next links, want 2", seen)
		}
		// Tampering: change the query or the token.
		l := links(e.search(t, "Observation?_count=3&_sort=_id"))
		next := l["next"]
		bad := strings.Replace(next, "_count=3", "_count=4", 1)
		e.inst.Do(t, "GET", bad, nil).Want(t, 400)
		i := strings.Index(next, "_page=") + len("_page=") + 5
		flipped := next[:i] + string("AB"[(strings.IndexByte("AB", next[i])+1)%2]) + next[i+1:]
		if flipped == next {
			t.Fatal("tamper did not change the token")
		}
		e.inst.Do(t, "GET", flipped, nil).Want(t, 400)
		e.inst.Do(t, "DELETE", base+"/Observation/o0", nil).Want(t, 200, 204)
	})
	t.Run("count", func(t *testing.T) {
		b := e.search(t, "Patient?_count=0")
		if len(matchIDs(b)) != 0 || total(b) != 4 {
			t.Errorf("_count=0: %v", b)
		}
		e.inst.Do(t, "GET", base+"/Patient?_count=x", nil).Want(t, 400)
		b = e.search(t, "Patient")
		if len(matchIDs(b)) != 4 {
			t.Errorf("default count: %d", len(matchIDs(b)))
		}
	})
	t.Run("total", func(t *testing.T) {
		if b := e.search(t, "Patient?_total=none"); b["total"] != nil {
			t.Errorf("_total=none has total %v", b["total"])
		}
		if b := e.search(t, "Patient?_total=accurate&gender=male"); total(b) != 1 {
			t.Errorf("_total=accurate: %v", b["total"])
		}
	})
	t.Run("summary", func(t *testing.T) {
		b := e.search(t, "Patient?_summary=count")
		if total(b) != 4 || b["entry"] != nil {
			t.Errorf("_summary=count: %v", b)
		}
		b = e.search(t, "Patient?_id=p1&_elements=gender")
		r := entries(b, "match")[0]["resource"].(map[string]any)
		if r["gender"] != "male" || r["name"] != nil || !strings.Contains(fmt.Sprint(r["meta"]), "SUBSETTED") {
			t.Errorf("_elements: %v", r)
		}
		b = e.search(t, "Patient?_id=p1&_summary=true")
		r = entries(b, "match")[0]["resource"].(map[string]any)
		if r["name"] == nil || r["telecom"] == nil || !strings.Contains(fmt.Sprint(r["meta"]), "SUBSETTED") {
			t.Errorf("_summary=true: %v", r)
		}
		e.inst.Do(t, "GET", base+"/Patient?_summary=bogus", nil).Want(t, 400)
	})
	t.Run("include", func(t *testing.T) {
		b := e.search(t, "Observation?_id=o1,o3&_include=Observation:subject")
		inc := entries(b, "include")
		var got []string
		for _, en := range inc {
			r := en["resource"].(map[string]any)
			got = append(got, fmt.Sprintf("%s/%s", r["resourceType"], r["id"]))
		}
		if !eq(got, []string{"Patient/p1", "Patient/p3"}) {
			t.Errorf("_include: %v", got)
		}
		b = e.search(t, "Observation?_id=o3&_include=Observation:subject&_include:iterate=Patient:general-practitioner")
		got = nil
		for _, en := range entries(b, "include") {
			r := en["resource"].(map[string]any)
			got = append(got, fmt.Sprintf("%s/%s", r["resourceType"], r["id"]))
		}
		if !eq(got, []string{"Patient/p3", "Practitioner/pr1"}) {
			t.Errorf("_include:iterate: %v", got)
		}
		b = e.search(t, "Patient?_id=p1&_revinclude=Observation:subject")
		got = nil
		for _, en := range entries(b, "include") {
			r := en["resource"].(map[string]any)
			got = append(got, fmt.Sprintf("%s/%s", r["resourceType"], r["id"]))
		}
		if !eq(got, []string{"Observation/o1", "Observation/o4"}) {
			t.Errorf("_revinclude: %v", got)
		}
		b = e.search(t, "Observation?_id=o3&_include=*")
		if len(entries(b, "include")) != 1 {
			t.Errorf("_include=*: %v", b)
		}
	})
	t.Run("compartment", func(t *testing.T) {
		r := e.inst.Do(t, "GET", base+"/Patient/p1/Observation", nil).Want(t, 200).JSON(t)
		if got := matchIDs(r); !eq(got, []string{"Observation/o1", "Observation/o4"}) {
			t.Errorf("Patient/p1/Observation: %v", got)
		}
		r = e.inst.Do(t, "GET", base+"/Patient/p1/Observation?code=8867-4", nil).Want(t, 200).JSON(t)
		if got := matchIDs(r); !eq(got, []string{"Observation/o1"}) {
			t.Errorf("Patient/p1/Observation?code: %v", got)
		}
		if l := links(r)["self"]; !strings.Contains(l, "/Patient/p1/Observation?") {
			t.Errorf("self link %q", l)
		}
		r = e.inst.Do(t, "GET", base+"/Patient/p1/*", nil).Want(t, 200).JSON(t)
		want := []string{"Patient/p1", "Observation/o1", "Observation/o4", "RiskAssessment/ra1", "Condition/c1"}
		if got := matchIDs(r); !eq(got, want) {
			t.Errorf("Patient/p1/*: %v", got)
		}
		e.inst.Do(t, "GET", base+"/Observation/o1/Patient", nil).Want(t, 400)
	})
	t.Run("post _search", func(t *testing.T) {
		r := e.inst.Do(t, "POST", base+"/Patient/_search", "family=chal", "Content-Type", "application/x-www-form-urlencoded").Want(t, 200)
		if got := matchIDs(r.JSON(t)); !eq(got, []string{"Patient/p1"}) {
			t.Errorf("POST _search: %v", got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		b := e.search(t, "Patient?nonsense=1&gender=male")
		if got := matchIDs(b); !eq(got, []string{"Patient/p1"}) {
			t.Errorf("lenient: %v", got)
		}
		if oo := entries(b, "outcome"); len(oo) != 1 || !strings.Contains(fmt.Sprint(oo[0]), "nonsense") {
			t.Errorf("no outcome entry for the unknown parameter: %v", b["entry"])
		}
		issues := e.inst.Do(t, "GET", base+"/Patient?nonsense=1", nil, "Prefer", "handling=strict").Outcome(t, 400)
		if !strings.Contains(fmt.Sprint(issues), "nonsense") {
			t.Errorf("strict: %v", issues)
		}
		for _, bad := range []string{"birthdate=1974-13", "birthdate=xx2000", "value-quantity=abc", "gender:foo=x", "subject=Patient/", "_has:Observation=1", "identifier=a|b|c"} {
			typ := "Patient"
			if strings.Contains(bad, "quantity") || strings.Contains(bad, "subject") {
				typ = "Observation"
			}
			name, _, _ := strings.Cut(bad, "=")
			issues := e.inst.Do(t, "GET", base+"/"+typ+"?"+bad, nil).Outcome(t, 400)
			if !strings.Contains(fmt.Sprint(issues), name) {
				t.Errorf("%s: issues do not name the parameter: %v", bad, issues)
			}
		}
	})
	t.Run("update and delete stop matching", func(t *testing.T) {
		e.put(`{"resourceType":"Patient","id":"p9","name":[{"family":"Transient"}]}`)
		if got := e.ids(t, "Patient?family=transient"); len(got) != 1 {
			t.Fatalf("created: %v", got)
		}
		e.put(`{"resourceType":"Patient","id":"p9","name":[{"family":"Renamed"}]}`)
		if got := e.ids(t, "Patient?family=transient"); len(got) != 0 {
			t.Errorf("old value still matches: %v", got)
		}
		if got := e.ids(t, "Patient?family=renamed"); len(got) != 1 {
			t.Errorf("new value does not match: %v", got)
		}
		e.inst.Do(t, "DELETE", base+"/Patient/p9", nil).Want(t, 200, 204)
		if got := e.ids(t, "Patient?family=renamed"); len(got) != 0 {
			t.Errorf("deleted resource matches: %v", got)
		}
		if got := e.ids(t, "Patient?_id=p9"); len(got) != 0 {
			t.Errorf("deleted resource matches _id: %v", got)
		}
	})
	_ = url.QueryEscape
}

func TestSystemSearchWarnsOnce(t *testing.T) {
	e := loadFixtures(t)
	b := e.search(t, "?bogus=1&_id=pr1")
	if got := matchIDs(b); !eq(got, []string{"Practitioner/pr1"}) {
		t.Fatalf("got %v", got)
	}
	oo := entries(b, "outcome")
	if len(oo) != 1 {
		t.Fatalf("%d outcome entries", len(oo))
	}
	if n := len(oo[0]["resource"].(map[string]any)["issue"].([]any)); n != 1 {
		t.Fatalf("%d issues, want 1", n)
	}
}
