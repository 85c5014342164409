package bundle

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/rest"
)

// Conditional serves one conditional interaction of the REST API —
// conditional create (POST with If-None-Exist), conditional update (PUT
// [type]?search), conditional delete (DELETE [type]?search) and patch
// (PATCH [type]/[id] or [type]?search with a JSON Patch body) — by running
// it as a one-entry transaction, so it shares the bundle path's search
// resolution and conditional lock, and answers as the direct interaction
// would (status, Location, ETag, Last-Modified, body per Prefer). It
// implements rest.Conditional.
func (h *Handler) Conditional(w http.ResponseWriter, r *http.Request, c rest.ConditionalRequest) {
	ctx := r.Context()
	entry := inEntry{Request: &inRequest{Method: c.Method, URL: c.URL, IfNoneExist: c.IfNoneExist, IfMatch: c.IfMatch}}
	switch {
	case c.Method == http.MethodPatch:
		bin, _ := json.Marshal(map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
			"data": base64.StdEncoding.EncodeToString(c.Body)})
		entry.Resource = bin
	case len(c.Body) > 0:
		entry.Resource = json.RawMessage(c.Body)
	}
	p := &processing{
		h: h, account: c.Account, base: h.origin(r) + rest.Prefix + c.Account,
		prefer: preferReturn(r), req: r, transaction: true,
	}
	var err error
	if p.keys, err = h.res.Keys(ctx, c.Account); err != nil {
		rest.WriteError(w, r, h.cfg.Logger, err)
		return
	}
	if err := p.parse(&inBundle{ResourceType: "Bundle", Type: "transaction", Entry: []inEntry{entry}}); err != nil {
		rest.WriteError(w, r, h.cfg.Logger, unwrapEntry(err))
		return
	}
	if err := p.runTransaction(ctx); err != nil {
		rest.WriteError(w, r, h.cfg.Logger, unwrapEntry(err))
		return
	}
	be := p.entryResponse(p.entries[0])
	resp := be.Response
	status, _ := strconv.Atoi(strings.Fields(resp.Status + " 500")[0])
	hdr := w.Header()
	if resp.Etag != "" {
		hdr.Set("ETag", resp.Etag)
	}
	if t, err := time.Parse(time.RFC3339Nano, resp.LastModified); err == nil {
		hdr.Set("Last-Modified", t.UTC().Format(http.TimeFormat))
	}
	if resp.Location != "" {
		loc := p.base + "/" + resp.Location
		if status == http.StatusCreated {
			hdr.Set("Location", loc)
		} else {
			hdr.Set("Content-Location", loc)
		}
	}
	var body []byte
	switch {
	case len(be.Resource) > 0:
		body = be.Resource
	case len(resp.Outcome) > 0:
		body = resp.Outcome
	}
	if len(body) == 0 {
		w.WriteHeader(status)
		return
	}
	rest.WriteBody(w, r, status, body)
}

// unwrapEntry drops the Bundle.entry[0] framing from a one-entry error, so a
// direct request's OperationOutcome does not mention a Bundle.
func unwrapEntry(err error) error {
	if ee, ok := err.(*EntryError); ok && ee.Err != nil {
		return ee.Err
	}
	return err
}
