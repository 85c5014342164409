package fhir

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Issue is one validation finding, shaped like an OperationOutcome.issue.
type Issue struct {
	// Severity is "error" or "warning".
	Severity string
	// Code is a FHIR issue-type code: "structure" (unknown element, wrong
	// JSON type, too many values, several choice types, reference to a
	// disallowed type, nested contained resource), "required" (missing
	// mandatory element or resourceType), "value" (a primitive that breaks
	// its type's format or range), "code-invalid" (a code outside the value
	// set of a required binding), "not-supported" (unknown or abstract
	// resourceType).
	Code string
	// Expression is the FHIRPath location of the problem, e.g.
	// "Patient.name[0].given[1]" or "Observation.value.ofType(Quantity).value".
	// Repeating elements always carry an index; a choice element is written
	// as name.ofType(Type). Inside contained and Bundle entry resources the
	// path continues from the containing element
	// ("Bundle.entry[0].resource.name[0]").
	Expression string
	// Diagnostics is a human-readable explanation.
	Diagnostics string
}

// Issue severities and codes used by Validate.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"

	CodeStructure    = "structure"
	CodeRequired     = "required"
	CodeValue        = "value"
	CodeInvalid      = "invalid"
	CodeNotSupported = "not-supported"
	CodeCodeInvalid  = "code-invalid"
)

// maxStringLen is the FHIR limit on a string's size (1 MB).
const maxStringLen = 1024 * 1024

// Validate checks a decoded resource (as returned by Decode; float64 numbers
// from encoding/json are accepted too) against the R4 base definitions and
// returns every problem found, sorted by Expression, then Code, then
// Diagnostics. An empty result means valid. It never modifies res.
//
// It checks: resourceType present, known and concrete; unknown elements and
// wrong JSON types; cardinality (arrays for repeating elements only, max
// counts, non-empty arrays, required elements); primitive formats
// (see docs/fhir-model.md); _element primitive extensions and
// value/_value array alignment with nulls; choice elements (one type only,
// allowed types only); codes of code elements with a required binding to an
// enumerable value set; reference target types where the definition
// restricts them; contained resources (validated as resources, no nested
// contained); and the resources inside Bundle entries, Parameters and any
// other element of type Resource. Invariants (constraints written in
// FHIRPath) are not evaluated.
func (m *Model) Validate(res map[string]any) []Issue {
	v := validator{m: m}
	v.resource(res, nil, false)
	if len(v.issues) > 1 {
		sort.Slice(v.issues, func(i, j int) bool {
			a, b := &v.issues[i], &v.issues[j]
			if a.Expression != b.Expression {
				return a.Expression < b.Expression
			}
			if a.Code != b.Code {
				return a.Code < b.Code
			}
			return a.Diagnostics < b.Diagnostics
		})
	}
	return v.issues
}

// seg is one step of a FHIRPath location, linked to its parent. Paths are
// only rendered to strings when an issue is reported.
type seg struct {
	parent *seg
	name   string
	index  int    // -1 when the element does not repeat
	ofType string // choice type
}

func (s *seg) String() string {
	if s == nil {
		return ""
	}
	var parts []*seg
	for p := s; p != nil; p = p.parent {
		parts = append(parts, p)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if p.name != "" {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.name)
		}
		if p.ofType != "" {
			b.WriteString(".ofType(")
			b.WriteString(p.ofType)
			b.WriteByte(')')
		}
		if p.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

type validator struct {
	m      *Model
	issues []Issue
}

func (v *validator) add(code string, at *seg, format string, args ...any) {
	v.issues = append(v.issues, Issue{Severity: SeverityError, Code: code, Expression: at.String(), Diagnostics: fmt.Sprintf(format, args...)})
}

// resource validates obj as a resource. parent is the containing element
// (nil at the root); inContained forbids a nested contained list.
func (v *validator) resource(obj map[string]any, parent *seg, inContained bool) {
	rtv, ok := obj["resourceType"]
	if !ok {
		at := parent
		if at == nil {
			at = &seg{name: "Resource", index: -1}
		}
		v.add(CodeRequired, at, "resourceType is missing")
		return
	}
	rt, ok := rtv.(string)
	if !ok {
		at := parent
		if at == nil {
			at = &seg{name: "Resource", index: -1}
		}
		v.add(CodeStructure, &seg{parent: at, name: "resourceType", index: -1}, "resourceType must be a JSON string")
		return
	}
	td := v.m.types[rt]
	if td == nil || td.kind != KindResource || td.abstract {
		at := parent
		if at == nil {
			at = &seg{name: "Resource", index: -1}
		}
		v.add(CodeNotSupported, at, "unknown resource type %q", rt)
		return
	}
	at := parent
	if at == nil {
		at = &seg{name: rt, index: -1}
	}
	v.object(td.st, obj, at, true, inContained)
}

// object validates the properties of a JSON object against st.
func (v *validator) object(st *structDef, obj map[string]any, at *seg, isResource, inContained bool) {
	var chosenBuf [64]*typeRef
	var chosen []*typeRef
	if len(st.elems) <= len(chosenBuf) {
		chosen = chosenBuf[:len(st.elems)]
	} else {
		chosen = make([]*typeRef, len(st.elems))
	}
	if len(obj) == 0 {
		v.add(CodeStructure, at, "an object must have at least one property")
	}
	for key, val := range obj {
		if isResource && key == "resourceType" {
			continue
		}
		name := key
		under := len(key) > 1 && key[0] == '_'
		if under {
			name = key[1:]
		}
		p, ok := st.props[name]
		if !ok || (under && p.ty.td.kind != KindPrimitive) {
			v.add(CodeStructure, &seg{parent: at, name: key, index: -1}, "unknown element %q in %s", key, st.name)
			continue
		}
		el := p.el
		if c := chosen[el.idx]; c != nil && c != p.ty {
			v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "choice element %s has more than one type (%s and %s)", el.path, c.code, p.ty.code)
			continue
		}
		chosen[el.idx] = p.ty
		if inContained && el.name == "contained" && isResource {
			v.add(CodeStructure, &seg{parent: at, name: "contained", index: -1}, "a contained resource must not contain other resources")
			continue
		}
		ofType := ""
		if el.choice {
			ofType = p.ty.code
		}
		if under {
			v.primitiveExt(el, ofType, obj, name, val, at)
		} else {
			v.element(el, p.ty, ofType, obj, key, val, at, inContained)
		}
	}
	for _, el := range st.required {
		if chosen[el.idx] == nil {
			v.add(CodeRequired, &seg{parent: at, name: el.name, index: -1}, "missing required element %s (min %d)", el.path, el.min)
		}
	}
}

// element validates the value of one (non-underscore) property.
func (v *validator) element(el *elemDef, ty *typeRef, ofType string, obj map[string]any, key string, val any, at *seg, inContained bool) {
	prim := ty.td.kind == KindPrimitive
	if el.max == 1 {
		s := seg{parent: at, name: el.name, index: -1, ofType: ofType}
		if _, isArr := val.([]any); isArr {
			v.add(CodeStructure, &s, "element %s does not repeat; it must not be an array", el.path)
			return
		}
		if val == nil {
			v.add(CodeStructure, &s, "element %s must not be null", el.path)
			return
		}
		v.one(el, ty, val, &s, inContained)
		return
	}
	arr, isArr := val.([]any)
	if !isArr {
		v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "element %s repeats; it must be a JSON array", el.path)
		return
	}
	if len(arr) == 0 {
		v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "array %s must not be empty", el.path)
		return
	}
	if el.max > 0 && len(arr) > el.max {
		v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "element %s allows at most %d values, found %d", el.path, el.max, len(arr))
	}
	var ext []any
	if prim {
		if e, ok := obj["_"+key].([]any); ok {
			ext = e
			if len(e) != len(arr) {
				v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "arrays %s and _%s must have the same length (%d and %d)", key, key, len(arr), len(e))
			}
		}
	}
	for i, item := range arr {
		s := seg{parent: at, name: el.name, index: i}
		if item == nil {
			if prim && i < len(ext) && ext[i] != nil {
				continue
			}
			v.add(CodeStructure, &s, "null in %s is only allowed where _%s holds a value at the same index", el.path, key)
			continue
		}
		v.one(el, ty, item, &s, inContained)
	}
}

// one validates a single non-null value of element el with type ty.
func (v *validator) one(el *elemDef, ty *typeRef, val any, at *seg, inContained bool) {
	td := ty.td
	if td.kind == KindPrimitive {
		v.primitive(td, val, at)
		if el.codes != nil {
			if s, ok := val.(string); ok && s != "" {
				if _, ok := el.codes[s]; !ok {
					v.add(CodeCodeInvalid, at, "code %s is not in the required value set %s", quoteShort(s), el.valueSet)
				}
			}
		}
		return
	}
	obj, ok := val.(map[string]any)
	if !ok {
		v.add(CodeStructure, at, "element %s must be a JSON object (%s), found %s", el.path, ty.code, jsonKind(val))
		return
	}
	switch {
	case td.name == "Resource":
		v.resource(obj, at, inContained || el.name == "contained")
	case el.child != nil:
		v.object(el.child, obj, at, false, inContained)
	default:
		v.object(td.st, obj, at, false, inContained)
		if td.name == "Reference" && ty.targets != nil {
			v.reference(obj, ty.targets, at)
		}
	}
}

// primitiveExt validates a _name property: the id and extensions of a
// primitive value, or an array of them.
func (v *validator) primitiveExt(el *elemDef, ofType string, obj map[string]any, name string, val any, at *seg) {
	if el.max == 1 {
		s := seg{parent: at, name: el.name, index: -1, ofType: ofType}
		o, ok := val.(map[string]any)
		if !ok {
			v.add(CodeStructure, &s, "_%s must be a JSON object holding id and extension", name)
			return
		}
		v.object(v.m.element, o, &s, false, false)
		return
	}
	arr, ok := val.([]any)
	if !ok {
		v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "_%s must be a JSON array", name)
		return
	}
	_, hasValues := obj[name]
	if !hasValues && len(arr) == 0 {
		v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "array _%s must not be empty", name)
	}
	if !hasValues && el.max > 0 && len(arr) > el.max {
		v.add(CodeStructure, &seg{parent: at, name: el.name, index: -1}, "element %s allows at most %d values, found %d", el.path, el.max, len(arr))
	}
	for i, item := range arr {
		s := seg{parent: at, name: el.name, index: i}
		if item == nil {
			if !hasValues {
				v.add(CodeStructure, &s, "null in _%s needs a value in %s at the same index", name, name)
			}
			continue
		}
		o, ok := item.(map[string]any)
		if !ok {
			v.add(CodeStructure, &s, "_%s items must be JSON objects or null", name)
			continue
		}
		v.object(v.m.element, o, &s, false, false)
	}
}

// reference checks a Reference's target type against the allowed targets.
// Local (#id), urn:uuid/urn:oid and absolute URLs whose last segments do
// not name a known resource type are not checked.
func (v *validator) reference(obj map[string]any, targets []string, at *seg) {
	allowed := func(t string) bool {
		for _, x := range targets {
			if x == t {
				return true
			}
		}
		return false
	}
	if t, ok := obj["type"].(string); ok && v.m.IsResourceType(t) && !allowed(t) {
		v.add(CodeStructure, &seg{parent: at, name: "type", index: -1}, "reference type %s is not allowed here (allowed: %s)", t, strings.Join(targets, ", "))
	}
	ref, ok := obj["reference"].(string)
	if !ok || ref == "" || ref[0] == '#' || strings.HasPrefix(ref, "urn:") {
		return
	}
	if i := strings.IndexAny(ref, "?"); i >= 0 {
		// Conditional references (Patient?identifier=...) name their type first.
		t := ref[:i]
		if !strings.Contains(t, "/") && v.m.IsResourceType(t) && !allowed(t) {
			v.add(CodeStructure, &seg{parent: at, name: "reference", index: -1}, "reference to %s is not allowed here (allowed: %s)", t, strings.Join(targets, ", "))
		}
		return
	}
	absolute := strings.Contains(ref, "://")
	parts := strings.Split(ref, "/")
	n := len(parts)
	if n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
		n -= 2
	}
	if n < 2 {
		return
	}
	t := parts[n-2]
	if !v.m.IsResourceType(t) {
		if !absolute && n == 2 {
			v.add(CodeValue, &seg{parent: at, name: "reference", index: -1}, "reference %q does not name a known resource type", ref)
		}
		return
	}
	if !allowed(t) {
		v.add(CodeStructure, &seg{parent: at, name: "reference", index: -1}, "reference to %s is not allowed here (allowed: %s)", t, strings.Join(targets, ", "))
	}
}

func jsonKind(val any) string {
	switch val.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", val)
}
