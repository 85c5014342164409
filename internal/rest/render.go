package rest

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/resources"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }
func itoa(n int64) string                 { return strconv.FormatInt(n, 10) }

// httpTime renders a time for Last-Modified.
func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// versionHeaders sets ETag and Last-Modified for a resource version.
func versionHeaders(w http.ResponseWriter, res resources.Resource) {
	w.Header().Set("ETag", etag(res.VersionID))
	w.Header().Set("Last-Modified", httpTime(res.LastUpdated))
}

// subsetting describes a _summary/_elements request.
type subsetting struct {
	summary  string   // "", "true", "text", "data", "false"
	elements []string // _elements
}

func (s subsetting) none() bool {
	return (s.summary == "" || s.summary == "false") && len(s.elements) == 0
}

// parseSubsetting reads _summary and _elements; count is allowed only when
// allowCount (searches).
func parseSubsetting(r *http.Request, allowCount bool) (subsetting, error) {
	q := r.URL.Query()
	var s subsetting
	switch v := q.Get("_summary"); v {
	case "", "true", "text", "data", "false":
		s.summary = v
	case "count":
		if !allowCount {
			return s, badRequest("_summary", "_summary=count applies to searches only")
		}
		s.summary = v
	default:
		return s, badRequest("_summary", "_summary must be one of true, text, data, count, false; got %q", v)
	}
	if v := q.Get("_elements"); v != "" {
		if s.summary != "" && s.summary != "false" {
			return s, badRequest("_elements", "_elements cannot be combined with _summary")
		}
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			// Accept both "name" and "Patient.name".
			if i := strings.LastIndexByte(e, '.'); i >= 0 {
				e = e[i+1:]
			}
			s.elements = append(s.elements, e)
		}
	}
	return s, nil
}

// subset applies _summary/_elements to a resource body.
func subset(m *fhir.Model, body []byte, s subsetting) ([]byte, error) {
	if s.none() {
		return body, nil
	}
	res, err := fhir.Decode(body)
	if err != nil {
		return nil, err
	}
	typ, _ := res["resourceType"].(string)
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	switch s.summary {
	case "true":
		for _, e := range m.SummaryElements(typ) {
			keep[e] = true
		}
	case "text":
		keep["text"] = true
		for _, e := range m.SummaryElements(typ) {
			if m.IsMandatory(typ + "." + e) {
				keep[e] = true
			}
		}
	case "data":
		for k := range res {
			keep[k] = k != "text"
		}
	}
	for _, e := range s.elements {
		keep[e] = true
	}
	if s.summary == "" || s.summary == "true" || s.summary == "text" {
		// Mandatory top-level elements always stay.
		for _, e := range m.SummaryElements(typ) {
			if m.IsMandatory(typ + "." + e) {
				keep[e] = true
			}
		}
	}
	for k := range res {
		if keep[k] {
			continue
		}
		// choice elements: valueQuantity is kept when "value" is.
		if base := choiceBase(m, typ, k); base != "" && keep[base] {
			continue
		}
		delete(res, k)
	}
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
		"code":   "SUBSETTED",
	})
	res["meta"] = meta
	return resources.Marshal(res)
}

// choiceBase returns "value" for "valueQuantity" when value[x] is a choice
// element of typ, else "".
func choiceBase(m *fhir.Model, typ, key string) string {
	for i := 1; i < len(key); i++ {
		if key[i] >= 'A' && key[i] <= 'Z' {
			base := key[:i]
			if info, ok := m.Element(typ, base); ok && info.Choice {
				return base
			}
			return ""
		}
	}
	return ""
}

// parseETag reads a version from an ETag-like header value: W/"3", "3" or 3.
func parseETag(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

// ifMatch returns the If-Match version, resources.NoVersion when absent.
func ifMatch(r *http.Request) (int64, error) {
	v := r.Header.Get("If-Match")
	if v == "" {
		return resources.NoVersion, nil
	}
	n, ok := parseETag(v)
	if !ok {
		return 0, badRequest("If-Match", "If-Match must be a version ETag such as W/\"3\"; got %q", v)
	}
	return n, nil
}

// preferReturn reads Prefer: return=minimal|representation|OperationOutcome.
func preferReturn(r *http.Request) string {
	for _, p := range strings.Split(r.Header.Get("Prefer"), ",") {
		p = strings.TrimSpace(p)
		if v, ok := strings.CutPrefix(p, "return="); ok {
			switch v = strings.Trim(v, `"`); v {
			case "minimal", "representation", "OperationOutcome":
				return v
			}
		}
	}
	return "representation"
}

// respondWrite renders the answer to create/update per Prefer.
func (a *API) respondWrite(w http.ResponseWriter, r *http.Request, req *request, res resources.Resource, status int, message string) {
	versionHeaders(w, res)
	loc := req.base + "/" + res.Type + "/" + res.ID + "/_history/" + itoa(res.VersionID)
	if status == http.StatusCreated {
		w.Header().Set("Location", loc)
	} else {
		w.Header().Set("Content-Location", loc)
	}
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		a.writeJSON(w, r, status, outcome("information", "informational", "", message))
	default:
		a.writeBody(w, r, status, res.Body)
	}
}
