package bundle

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
)

func statusLine(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// response renders the batch-response or transaction-response Bundle.
func (p *processing) response() rest.Bundle {
	typ := "batch-response"
	if p.transaction {
		typ = "transaction-response"
	}
	out := rest.Bundle{ResourceType: "Bundle", Type: typ, Entry: make([]rest.BundleEntry, len(p.entries))}
	if id, err := p.h.res.NewID(); err == nil {
		out.ID = id
	}
	out.Meta = &rest.BundleMeta{LastUpdated: rest.Instant(p.h.cfg.Now())}
	for i, e := range p.entries {
		out.Entry[i] = p.entryResponse(e)
	}
	return out
}

func (p *processing) entryResponse(e *entry) rest.BundleEntry {
	if e.err != nil {
		status, oo, _ := rest.ErrorOutcome(e.err)
		oo = locate(oo, e.fail(e.err))
		return rest.BundleEntry{Response: &rest.EntryResponse{Status: statusLine(status), Outcome: oo}}
	}
	if e.get != nil {
		return p.getResponse(e)
	}
	r := e.result
	var status int
	msg := ""
	switch {
	case e.method == http.MethodDelete:
		status = http.StatusNoContent
		msg = "Deleted " + e.typ + "/" + e.id + "."
		if e.noop || e.outcome == resources.Unchanged {
			msg = "Nothing to delete."
		}
	case e.outcome == resources.Created:
		status = http.StatusCreated
		msg = "Created " + r.Type + "/" + r.ID + "."
	case e.existing != nil:
		status = http.StatusOK
		msg = "A resource matching the ifNoneExist search exists already: " + r.Type + "/" + r.ID + "; nothing was created."
	case e.outcome == resources.Unchanged:
		status = http.StatusOK
		msg = "No change: identical to version " + strconv.FormatInt(r.VersionID, 10) + "."
	default:
		status = http.StatusOK
		msg = "Updated " + r.Type + "/" + r.ID + " to version " + strconv.FormatInt(r.VersionID, 10) + "."
	}
	resp := &rest.EntryResponse{Status: statusLine(status)}
	be := rest.BundleEntry{Response: resp}
	if r.ID != "" && r.VersionID > 0 {
		resp.Etag = `W/"` + strconv.FormatInt(r.VersionID, 10) + `"`
		resp.LastModified = rest.Instant(r.LastUpdated)
		if !r.Deleted {
			be.FullURL = p.base + "/" + r.Type + "/" + r.ID
			resp.Location = r.Type + "/" + r.ID + "/_history/" + strconv.FormatInt(r.VersionID, 10)
		}
	}
	switch p.prefer {
	case "representation":
		if len(r.Body) > 0 && !r.Deleted {
			be.Resource = json.RawMessage(r.Body)
		}
	case "OperationOutcome":
		oo, _ := json.Marshal(map[string]any{"resourceType": "OperationOutcome", "issue": []any{
			map[string]any{"severity": "information", "code": "informational", "diagnostics": msg},
		}})
		resp.Outcome = oo
	}
	return be
}

// getResponse renders a GET entry's answer from the FHIR API.
func (p *processing) getResponse(e *entry) rest.BundleEntry {
	g := e.get
	resp := &rest.EntryResponse{Status: statusLine(g.status), Etag: g.header.Get("ETag")}
	if lm := g.header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			resp.LastModified = rest.Instant(t)
		}
	}
	resp.Location = g.header.Get("Content-Location")
	be := rest.BundleEntry{Response: resp}
	if len(g.body) > 0 && json.Valid(g.body) {
		if g.status >= 200 && g.status < 300 {
			be.Resource = json.RawMessage(g.body)
		} else {
			resp.Outcome = json.RawMessage(g.body)
		}
	}
	return be
}
