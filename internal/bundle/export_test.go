package bundle

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/resources"
)

// FrontEnd runs, for one transaction Bundle body, everything the ingest
// path does outside indexing, sealing and the store: decode the Bundle,
// classify the entries, assign ids, parse and validate each resource,
// rewrite references, render each body as it would be sealed, and build
// and encode the Prefer: return=minimal response. Benchmarks use it to
// see the CPU of this package's share of ingest apart from the rest.
func (h *Handler) FrontEnd(ctx context.Context, account string, body []byte) (int, error) {
	r := httptest.NewRequest(http.MethodPost, "/fhir/"+account, strings.NewReader(""))
	r.Header.Set("Prefer", "return=minimal")
	b, err := h.decode(body)
	if err != nil {
		return 0, err
	}
	p := &processing{h: h, account: account, base: h.origin(r) + "/fhir/" + account, prefer: preferReturn(r), req: r, transaction: b.Type == "transaction"}
	if err := p.parse(b); err != nil {
		return 0, err
	}
	writes := p.entries
	p.fullURLs = make(map[string]string, len(writes))
	p.condRefs, p.condErrs = map[string]string{}, map[string]error{}
	for _, e := range writes {
		if err := p.identify(ctx, e); err != nil {
			return 0, e.fail(err)
		}
	}
	for _, e := range writes {
		if err := p.parseResource(e); err != nil {
			return 0, e.fail(err)
		}
		if err := p.mapFullURL(e); err != nil {
			return 0, e.fail(err)
		}
	}
	for _, e := range writes {
		if err := p.rewrite(e); err != nil {
			return 0, e.fail(err)
		}
		e.res["id"] = e.id
		e.res["meta"] = map[string]any{"versionId": "1", "lastUpdated": "2026-12-03T10:00:00.000Z"}
		out, err := resources.Marshal(e.res)
		if err != nil {
			return 0, err
		}
		e.prep.Outcome = resources.Created
		e.finish(resources.Resource{Type: e.typ, ID: e.id, VersionID: 1, LastUpdated: h.cfg.Now(), Body: out})
	}
	w := httptest.NewRecorder()
	w.Body = nil
	h.writeJSON(discard{w}, r, http.StatusOK, p.response())
	return len(writes), nil
}

type discard struct{ *httptest.ResponseRecorder }

func (discard) Write(b []byte) (int, error) { return io.Discard.Write(b) }

// CheckDecodePaths decodes body on the single-pass path and, when that
// path accepts it, checks that the lenient path (encoding/json envelope,
// then fhir.Decode per resource) gives the same Bundle. It returns a
// description of the first difference, or "".
func CheckDecodePaths(body []byte) string {
	fast, ok := decodeStrict(body)
	if !ok {
		return ""
	}
	slow, err := decodeLenient(body)
	if err != nil {
		return fmt.Sprintf("single pass accepted what the lenient path rejects: %v", err)
	}
	if fast.ResourceType != slow.ResourceType || fast.Type != slow.Type || len(fast.Entry) != len(slow.Entry) {
		return fmt.Sprintf("envelope differs: %q %q %d vs %q %q %d", fast.ResourceType, fast.Type, len(fast.Entry), slow.ResourceType, slow.Type, len(slow.Entry))
	}
	for i := range fast.Entry {
		f, s := fast.Entry[i], slow.Entry[i]
		if f.FullURL != s.FullURL || (f.Request == nil) != (s.Request == nil) || f.Request != nil && *f.Request != *s.Request {
			return fmt.Sprintf("entry %d differs: %+v vs %+v", i, f, s)
		}
		if len(f.Resource) != 0 {
			return fmt.Sprintf("entry %d: single pass kept raw bytes", i)
		}
		switch {
		case f.decoded == nil && len(s.Resource) == 0:
		case f.decoded == nil || len(s.Resource) == 0:
			return fmt.Sprintf("entry %d: resource present on one path only", i)
		default:
			m, err := fhir.Decode(s.Resource)
			if err != nil {
				return fmt.Sprintf("entry %d: resource decodes on one path only: %v", i, err)
			}
			if !reflect.DeepEqual(m, f.decoded) {
				return fmt.Sprintf("entry %d: resources differ", i)
			}
		}
	}
	return ""
}

// SinglePass reports whether body takes the single-pass decoding.
func SinglePass(body []byte) bool {
	_, ok := decodeStrict(body)
	return ok
}
