package search

import (
	"net/url"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/fhirpath"
	"github.com/kilnhealth/kiln/internal/searchparam"
)

// FuzzParseQuery feeds arbitrary query strings through the parser and the
// per-type resolution and planning of every criterion: nothing may panic,
// and every failure must be a *badParam naming a parameter.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"name=peter", "family:exact=Chalmers", "name:contains=a,b\\,c", "birthdate=ge1974-12-25T10:00:00+05:00",
		"value-quantity=ap5.4|http://unitsofmeasure.org|mg", "code=http://loinc.org|8867-4&_sort=-date&_count=5",
		"subject:Patient.name=x", "_has:Observation:subject:code=1", "code-value-quantity=a|b$gt1e3",
		"identifier:of-type=a|b|c", "url:below=http://x/y", "_include=Observation:subject:Patient", "_include:iterate=*",
		"gender:missing=true", "subject=http://x/Patient/1/_history/2", "date=1e5", "_page=AAAA", "_summary=count&_elements=a",
		"probability=-1.5e-300", "date=2020-02-30",
	} {
		f.Add(s)
	}
	reg, err := searchparam.Load()
	if err != nil {
		f.Fatal(err)
	}
	ps := newParams(reg, fhirpath.Env{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseQuery(vals)
		if err != nil {
			if _, ok := err.(*badParam); !ok {
				t.Fatalf("error is %T, not *badParam: %v", err, err)
			}
			return
		}
		for _, typ := range []string{"Patient", "Observation"} {
			for _, rc := range q.crits {
				if rc.has != nil || rc.chain != "" {
					continue
				}
				p, ok := ps.lookup(typ, rc.code)
				if !ok {
					continue
				}
				c, err := resolveSimple(rc, p, "http://h/fhir/a", now)
				if err != nil {
					if _, ok := err.(*badParam); !ok {
						t.Fatalf("error is %T: %v", err, err)
					}
					continue
				}
				c.plan()
			}
		}
	})
}

// FuzzDate checks the date parser never panics and yields ordered spans.
func FuzzDate(f *testing.F) {
	for _, s := range []string{"2020", "2020-02", "2020-02-29", "2020-02-29T10:00", "2020-02-29T10:00:00.123456789123Z", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := parseDateSpan(s)
		if err != nil {
			return
		}
		if !sp.low.Before(sp.high) {
			t.Fatalf("%q: empty span %v..%v", s, sp.low, sp.high)
		}
		lo, hi := sp.dayRange()
		if lo > hi {
			t.Fatalf("%q: day range %d > %d", s, lo, hi)
		}
	})
}
