package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
)

// JSONPatchType is the media type of JSON Patch (RFC 6902) documents.
const JSONPatchType = "application/json-patch+json"

// patched applies the entry's patch (a Binary holding a JSON Patch) to the
// current version and returns the validated result.
func (p *processing) patched(e *entry, cur *resources.Resource) (map[string]any, error) {
	doc, err := patchDocument(e.raw)
	if err != nil {
		return nil, err
	}
	var target any
	if target, err = fhir.Decode(cur.Body); err != nil {
		return nil, fmt.Errorf("bundle: decode %s/%s: %w", e.typ, e.id, err)
	}
	out, err := ApplyJSONPatch(target, doc)
	if err != nil {
		return nil, clientError(422, "processing", rest.DetailInvalid, "%v", err)
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, clientError(422, "processing", rest.DetailInvalid, "the patch does not leave a resource (a JSON object)")
	}
	if m["resourceType"] != e.typ || m["id"] != e.id {
		return nil, clientError(422, "processing", rest.DetailInvalid, "a patch may not change resourceType or id")
	}
	body, err := resources.Marshal(m)
	if err != nil {
		return nil, err
	}
	res, err := p.h.res.Parse(body, e.typ)
	if err != nil {
		// The patch was well-formed but leaves an invalid resource: 422
		// (http://hl7.org/fhir/R4/http.html#patch).
		var inv *resources.InvalidError
		if errors.As(err, &inv) {
			c := *inv
			c.Status = http.StatusUnprocessableEntity
			return nil, &c
		}
		return nil, err
	}
	if err := rewriteRefs(res, func(ref string) (string, error) {
		if t, ok := p.fullURLs[ref]; ok {
			return t, nil
		}
		return ref, nil
	}); err != nil {
		return nil, err
	}
	return res, nil
}

// patchDocument extracts the JSON Patch from a PATCH entry's resource: a
// Binary with contentType application/json-patch+json and base64 data.
func patchDocument(raw json.RawMessage) ([]any, error) {
	var bin struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         string `json:"data"`
	}
	if err := json.Unmarshal(raw, &bin); err != nil {
		return nil, badRequest("a PATCH entry's resource must be a Binary holding a JSON Patch: %v", err)
	}
	switch bin.ResourceType {
	case "Binary":
	case "Parameters":
		return nil, notSupported("FHIRPath Patch (Parameters) is not supported; send a Binary with contentType %s", JSONPatchType)
	default:
		return nil, badRequest("a PATCH entry's resource must be a Binary with contentType %s, not %q", JSONPatchType, bin.ResourceType)
	}
	if mt, _, err := mime.ParseMediaType(bin.ContentType); err != nil || mt != JSONPatchType {
		return nil, notSupported("a PATCH Binary must have contentType %s, not %q", JSONPatchType, bin.ContentType)
	}
	data, err := base64.StdEncoding.DecodeString(bin.Data)
	if err != nil {
		return nil, badRequest("the PATCH Binary's data is not base64: %v", err)
	}
	return ParseJSONPatch(data)
}

// ParseJSONPatch decodes a JSON Patch document (an array of operations).
func ParseJSONPatch(data []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc []any
	if err := dec.Decode(&doc); err != nil {
		return nil, badRequest("the JSON Patch is not a JSON array of operations: %v", err)
	}
	if dec.More() {
		return nil, badRequest("the JSON Patch has data after the array")
	}
	for i, op := range doc {
		if _, ok := op.(map[string]any); !ok {
			return nil, badRequest("JSON Patch operation %d is not an object", i)
		}
	}
	return doc, nil
}

// ApplyJSONPatch applies RFC 6902 operations (add, remove, replace, move,
// copy, test) to doc and returns the result. doc is modified in place
// where possible; on error it may be partly modified.
func ApplyJSONPatch(doc any, ops []any) (any, error) {
	for i, raw := range ops {
		op, _ := raw.(map[string]any)
		name, _ := op["op"].(string)
		path, ok := op["path"].(string)
		if !ok {
			return nil, fmt.Errorf("JSON Patch operation %d has no path", i)
		}
		ptr, err := parsePointer(path)
		if err != nil {
			return nil, fmt.Errorf("JSON Patch operation %d: %w", i, err)
		}
		value, hasValue := op["value"]
		from := func() ([]string, error) {
			f, ok := op["from"].(string)
			if !ok {
				return nil, fmt.Errorf("JSON Patch operation %d (%s) has no from", i, name)
			}
			return parsePointer(f)
		}
		switch name {
		case "add":
			if !hasValue {
				return nil, fmt.Errorf("JSON Patch operation %d (add) has no value", i)
			}
			doc, err = add(doc, ptr, deepCopy(value))
		case "remove":
			doc, _, err = remove(doc, ptr)
		case "replace":
			if !hasValue {
				return nil, fmt.Errorf("JSON Patch operation %d (replace) has no value", i)
			}
			if doc, _, err = remove(doc, ptr); err == nil {
				doc, err = add(doc, ptr, deepCopy(value))
			}
		case "move":
			var f []string
			if f, err = from(); err != nil {
				return nil, err
			}
			if len(ptr) > len(f) && reflect.DeepEqual(ptr[:len(f)], f) {
				return nil, fmt.Errorf("JSON Patch operation %d (move) moves a value into itself", i)
			}
			var v any
			if doc, v, err = remove(doc, f); err == nil {
				doc, err = add(doc, ptr, v)
			}
		case "copy":
			var f []string
			if f, err = from(); err != nil {
				return nil, err
			}
			var v any
			if v, err = get(doc, f); err == nil {
				doc, err = add(doc, ptr, deepCopy(v))
			}
		case "test":
			var v any
			if v, err = get(doc, ptr); err == nil && !fhir.Equal(v, value) {
				err = fmt.Errorf("test of %s failed", path)
			}
		default:
			return nil, fmt.Errorf("JSON Patch operation %d: unknown op %q", i, name)
		}
		if err != nil {
			return nil, fmt.Errorf("JSON Patch operation %d (%s %s): %w", i, name, path, err)
		}
	}
	return doc, nil
}

var errNoPath = errors.New("the path does not exist")

func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q must start with /", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		if strings.Contains(s, "~") {
			for j := 0; j < len(s); j++ {
				if s[j] == '~' && (j+1 >= len(s) || (s[j+1] != '0' && s[j+1] != '1')) {
					return nil, fmt.Errorf("JSON pointer %q has an invalid ~ escape", p)
				}
			}
			s = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
		}
		parts[i] = s
	}
	return parts, nil
}

// index parses an array index token; end allows "-" and len(a).
func index(tok string, n int, end bool) (int, error) {
	if end && tok == "-" {
		return n, nil
	}
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, fmt.Errorf("bad array index %q", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 {
		return 0, fmt.Errorf("bad array index %q", tok)
	}
	if i > n || (!end && i == n) {
		return 0, fmt.Errorf("array index %d out of range", i)
	}
	return i, nil
}

func get(doc any, ptr []string) (any, error) {
	cur := doc
	for _, tok := range ptr {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, errNoPath
			}
			cur = v
		case []any:
			i, err := index(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, errNoPath
		}
	}
	return cur, nil
}

// add sets the value at ptr (inserting into arrays) and returns the new doc.
func add(doc any, ptr []string, v any) (any, error) {
	if len(ptr) == 0 {
		return v, nil
	}
	parent, err := get(doc, ptr[:len(ptr)-1])
	if err != nil {
		return nil, err
	}
	last := ptr[len(ptr)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
	case []any:
		i, err := index(last, len(c), true)
		if err != nil {
			return nil, err
		}
		c = append(c, nil)
		copy(c[i+1:], c[i:])
		c[i] = v
		return set(doc, ptr[:len(ptr)-1], c)
	default:
		return nil, errNoPath
	}
	return doc, nil
}

// remove deletes the value at ptr and returns the new doc and the value.
func remove(doc any, ptr []string) (any, any, error) {
	if len(ptr) == 0 {
		return nil, doc, nil
	}
	parent, err := get(doc, ptr[:len(ptr)-1])
	if err != nil {
		return nil, nil, err
	}
	last := ptr[len(ptr)-1]
	switch c := parent.(type) {
	case map[string]any:
		v, ok := c[last]
		if !ok {
			return nil, nil, errNoPath
		}
		delete(c, last)
		return doc, v, nil
	case []any:
		i, err := index(last, len(c), false)
		if err != nil {
			return nil, nil, err
		}
		v := c[i]
		n := append(append(make([]any, 0, len(c)-1), c[:i]...), c[i+1:]...)
		d, err := set(doc, ptr[:len(ptr)-1], n)
		return d, v, err
	}
	return nil, nil, errNoPath
}

// set replaces the container at ptr (used after an array changed length).
func set(doc any, ptr []string, v any) (any, error) {
	if len(ptr) == 0 {
		return v, nil
	}
	parent, err := get(doc, ptr[:len(ptr)-1])
	if err != nil {
		return nil, err
	}
	last := ptr[len(ptr)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
	case []any:
		i, err := index(last, len(c), false)
		if err != nil {
			return nil, err
		}
		c[i] = v
	}
	return doc, nil
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = deepCopy(val)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, val := range x {
			a[i] = deepCopy(val)
		}
		return a
	}
	return v
}
