package rest_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

var fuzzMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}

// FuzzRequest sends arbitrary method, path, query, headers and body to the
// whole server handler (FHIR and management APIs) in-process. Any 5xx or
// panic fails. headers holds "Name: value" lines.
//
//	go test ./internal/rest -run '^$' -fuzz FuzzRequest -fuzztime 60s
func FuzzRequest(f *testing.F) {
	// NORMAL sync: the fuzzer needs throughput, not durability.
	in := servertest.New(f, server.Options{SQLiteSync: "NORMAL"})
	h := in.Server.Handler
	seeds := []struct {
		m             uint8
		path, q, hdrs string
		body          string
	}{
		{2, "fhir/default/Patient", "", "Content-Type: application/fhir+json", `{"resourceType":"Patient","name":[{"family":"Fuzz"}]}`},
		{3, "fhir/default/Patient/f1", "_pretty=true", "Prefer: return=minimal", `{"resourceType":"Patient","id":"f1","active":true}`},
		{0, "fhir/default/Patient/f1", "_summary=true", "If-None-Match: W/\"1\"", ""},
		{0, "fhir/default/Patient/f1", "_elements=name,active", "", ""},
		{0, "fhir/default/Patient/f1/_history/1", "", "Accept: application/fhir+json", ""},
		{0, "fhir/default/_history", "_since=2020-01-01&_count=2&_page=5", "", ""},
		{0, "fhir/default/Patient/_history", "_at=2026", "", ""},
		{4, "fhir/default/Patient/f1", "", "If-Match: W/\"2\"", ""},
		{0, "fhir/default/metadata", "_format=xml", "", ""},
		{2, "fhir/default/Observation", "", "Content-Type: application/xml", `<Observation/>`},
		{2, "fhir/default", "", "", `{"resourceType":"Bundle","type":"batch"}`},
		{0, "fhir/default/Patient", "name=x", "", ""},
		{3, "management/accounts/fuzz-acct", "", "", `{"encryption":{"keySource":"service"}}`},
		{5, "management/accounts/fuzz-acct", "", "", `{"encryption":{"keySource":"customer"}}`},
		{0, "management/accounts", "", "", ""},
		{4, "management/accounts/fuzz-acct", "", "", ""},
		{0, "health", "", "", ""},
		{2, "fhir/default/Observation", "", "", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}`},
	}
	for _, s := range seeds {
		f.Add(s.m, s.path, s.q, s.hdrs, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, m uint8, path, query, hdrs string, body []byte) {
		if len(body) > 1<<16 || len(path) > 4096 || len(query) > 4096 || len(hdrs) > 4096 {
			return
		}
		req := httptest.NewRequest("GET", "http://kiln.test/", nil).WithContext(context.Background())
		req.Method = fuzzMethods[int(m)%len(fuzzMethods)]
		req.URL = &url.URL{Path: "/" + path, RawQuery: query}
		req.RequestURI = req.URL.RequestURI()
		if len(body) > 0 {
			req.Body = readCloser{bytes.NewReader(body)}
			req.ContentLength = int64(len(body))
		}
		for _, line := range strings.Split(hdrs, "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || !validHeaderName(name) || !validHeaderValue(value) {
				continue
			}
			req.Header.Add(name, strings.TrimSpace(value))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", req.Method, req.URL.Path, query, req.Header, rec.Code, rec.Body.Bytes())
		}
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
