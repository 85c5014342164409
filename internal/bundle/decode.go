package bundle

import (
	"strings"

	"github.com/kilnhealth/kiln/internal/fhir"
)

// decodeStrict decodes the whole Bundle body once with fhir.Decode (the
// decoder every resource goes through anyway) and keeps each entry's
// resource as the decoded map, so no resource is scanned twice. It
// reports ok=false whenever its answer could differ from the lenient
// envelope decoding of decodeLenient followed by a per-entry fhir.Decode:
// malformed or non-strict JSON anywhere, an envelope element of an
// unexpected JSON type or null, a key that encoding/json would match only
// case-insensitively, a resource that is not an object, or a PATCH entry
// (which needs its resource's raw bytes). The caller then takes the
// lenient path, which produces the exact errors.
func decodeStrict(body []byte) (*inBundle, bool) {
	m, err := fhir.Decode(body)
	if err != nil {
		return nil, false
	}
	var b inBundle
	for k, v := range m {
		switch k {
		case "resourceType":
			s, ok := v.(string)
			if !ok {
				return nil, false
			}
			b.ResourceType = s
		case "type":
			s, ok := v.(string)
			if !ok {
				return nil, false
			}
			b.Type = s
		case "entry":
			xs, ok := v.([]any)
			if !ok {
				return nil, false
			}
			b.Entry = make([]inEntry, len(xs))
			for i, x := range xs {
				em, ok := x.(map[string]any)
				if !ok || !strictEntry(em, &b.Entry[i]) {
					return nil, false
				}
			}
		default:
			if foldsTo(k, "resourceType", "type", "entry") {
				return nil, false
			}
		}
	}
	return &b, true
}

// strictEntry fills e from one decoded Bundle.entry.
func strictEntry(m map[string]any, e *inEntry) bool {
	for k, v := range m {
		switch k {
		case "fullUrl":
			s, ok := v.(string)
			if !ok {
				return false
			}
			e.FullURL = s
		case "resource":
			r, ok := v.(map[string]any)
			if !ok {
				return false
			}
			e.decoded = r
		case "request":
			rm, ok := v.(map[string]any)
			if !ok {
				return false
			}
			e.Request = &inRequest{}
			if !strictRequest(rm, e.Request) {
				return false
			}
		default:
			if foldsTo(k, "fullUrl", "resource", "request") {
				return false
			}
		}
	}
	return true
}

// strictRequest fills r from one decoded Bundle.entry.request.
func strictRequest(m map[string]any, r *inRequest) bool {
	for k, v := range m {
		var dst *string
		switch k {
		case "method":
			dst = &r.Method
		case "url":
			dst = &r.URL
		case "ifNoneMatch":
			dst = &r.IfNoneMatch
		case "ifModifiedSince":
			dst = &r.IfModifiedSince
		case "ifMatch":
			dst = &r.IfMatch
		case "ifNoneExist":
			dst = &r.IfNoneExist
		default:
			if foldsTo(k, "method", "url", "ifNoneMatch", "ifModifiedSince", "ifMatch", "ifNoneExist") {
				return false
			}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return false
		}
		*dst = s
	}
	return !strings.EqualFold(r.Method, "PATCH")
}

// foldsTo reports whether k equals one of names ignoring case (the
// matching encoding/json does for struct fields).
func foldsTo(k string, names ...string) bool {
	for _, n := range names {
		if strings.EqualFold(k, n) {
			return true
		}
	}
	return false
}
