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
	// Severity is "error" or "warning". Only errors make a resource
	// invalid; warnings are advice (today only narrative txt-1/txt-2).
	Severity string
	// Code is a FHIR issue-type code: "structure" (unknown element, wrong
	// JSON type, too many values, several choice types, reference to a
	// disallowed type, nested contained resource), "required" (missing
	// mandatory element or resourceType), "value" (a primitive that breaks
	// its type's format or range), "code-invalid" (a code outside the value
	// set of a required binding), "invariant" (narrative rules txt-1 and
	// txt-2: active content is an error, other non-basic HTML and empty text
	// are warnings), "not-supported" (unknown or abstract resourceType).
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
	CodeInvariant    = "invariant"
)

// maxStringLen is the FHIR limit on a string's size (1 MB).
const maxStringLen = 1024 * 1024

// Validate checks a decoded resource (as returned by Decode; float64 numbers
// from encoding/json are accepted too) against the R4 base definitions and
// returns every problem found, sorted by Expression, then Code, then
// Diagnostics. The resource is valid when no issue has Severity "error"
// (warnings are advice). It never modifies res.
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
// other element of type Resource; narrative XHTML (well-formed, one XHTML
// div, no active content; txt-1/txt-2 otherwise as warnings). Other
// invariants (constraints written in FHIRPath) are not evaluated.
func (m *Model) Validate(res map[string]any) []Issue {
	v := validator{m: m, stack: make([]seg, 0, 16)}
	v.resource(res, false)
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

// seg is one step of a FHIRPath location. The validator keeps the current
// location as a stack of segs and renders it only when it reports an issue.
type seg struct {
	name   string
	index  int    // -1 when the element does not repeat
	ofType string // choice type
}

type validator struct {
	m      *Model
	issues []Issue
	stack  []seg
}

func (v *validator) push(name string, index int, ofType string) {
	v.stack = append(v.stack, seg{name: name, index: index, ofType: ofType})
}

func (v *validator) pop() { v.stack = v.stack[:len(v.stack)-1] }

func (v *validator) location() string {
	var b strings.Builder
	for _, s := range v.stack {
		if s.name != "" {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.name)
		}
		if s.ofType != "" {
			b.WriteString(".ofType(")
			b.WriteString(s.ofType)
			b.WriteByte(')')
		}
		if s.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// add reports an issue at the current location.
func (v *validator) add(code string, format string, args ...any) {
	v.issues = append(v.issues, Issue{Severity: SeverityError, Code: code, Expression: v.location(), Diagnostics: fmt.Sprintf(format, args...)})
}

// warn reports a warning at the current location.
func (v *validator) warn(code string, format string, args ...any) {
	v.issues = append(v.issues, Issue{Severity: SeverityWarning, Code: code, Expression: v.location(), Diagnostics: fmt.Sprintf(format, args...)})
}

// addAt reports an issue at child name of the current location.
func (v *validator) addAt(code, name string, format string, args ...any) {
	v.push(name, -1, "")
	v.add(code, format, args...)
	v.pop()
}

// resource validates obj as a resource at the current location (the
// containing element), or as the root resource when the stack is empty;
// inContained forbids a nested contained list.
func (v *validator) resource(obj map[string]any, inContained bool) {
	root := len(v.stack) == 0
	if root {
		v.push("Resource", -1, "")
		defer v.pop()
	}
	rtv, ok := obj["resourceType"]
	if !ok {
		v.add(CodeRequired, "resourceType is missing")
		return
	}
	rt, ok := rtv.(string)
	if !ok {
		v.addAt(CodeStructure, "resourceType", "resourceType must be a JSON string")
		return
	}
	td := v.m.types[rt]
	if td == nil || td.kind != KindResource || td.abstract {
		v.add(CodeNotSupported, "unknown resource type %q", rt)
		return
	}
	if root {
		v.stack[0].name = rt
	}
	v.object(td.st, obj, true, inContained)
}

// object validates the properties of a JSON object against st.
func (v *validator) object(st *structDef, obj map[string]any, isResource, inContained bool) {
	var chosenBuf [64]*typeRef
	var chosen []*typeRef
	if len(st.elems) <= len(chosenBuf) {
		chosen = chosenBuf[:len(st.elems)]
	} else {
		chosen = make([]*typeRef, len(st.elems))
	}
	if len(obj) == 0 {
		v.add(CodeStructure, "an object must have at least one property")
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
			v.addAt(CodeStructure, key, "unknown element %q in %s", key, st.name)
			continue
		}
		el := p.el
		if c := chosen[el.idx]; c != nil && c != p.ty {
			// Reported once per extra type, with no type names, so the
			// result does not depend on map iteration order.
			v.addAt(CodeStructure, el.name, "choice element %s has more than one type; exactly one %s[x] property is allowed", el.path, el.name)
		} else {
			chosen[el.idx] = p.ty
		}
		if inContained && el.name == "contained" && isResource {
			v.addAt(CodeStructure, "contained", "a contained resource must not contain other resources")
			continue
		}
		ofType := ""
		if el.choice {
			ofType = p.ty.code
		}
		if under {
			v.primitiveExt(el, ofType, obj, name, val)
		} else {
			v.element(el, p.ty, ofType, obj, key, val, inContained)
		}
	}
	for _, el := range st.required {
		if chosen[el.idx] == nil {
			v.addAt(CodeRequired, el.name, "missing required element %s (min %d)", el.path, el.min)
		}
	}
}

// element validates the value of one (non-underscore) property.
func (v *validator) element(el *elemDef, ty *typeRef, ofType string, obj map[string]any, key string, val any, inContained bool) {
	prim := ty.td.kind == KindPrimitive
	if el.max == 1 {
		v.push(el.name, -1, ofType)
		defer v.pop()
		if _, isArr := val.([]any); isArr {
			v.add(CodeStructure, "element %s does not repeat; it must not be an array", el.path)
			return
		}
		if val == nil {
			v.add(CodeStructure, "element %s must not be null", el.path)
			return
		}
		v.one(el, ty, val, inContained)
		return
	}
	arr, isArr := val.([]any)
	if !isArr {
		v.addAt(CodeStructure, el.name, "element %s repeats; it must be a JSON array", el.path)
		return
	}
	if len(arr) == 0 {
		v.addAt(CodeStructure, el.name, "array %s must not be empty", el.path)
		return
	}
	if el.max > 0 && len(arr) > el.max {
		v.addAt(CodeStructure, el.name, "element %s allows at most %d values, found %d", el.path, el.max, len(arr))
	}
	var ext []any
	if prim {
		if e, ok := obj["_"+key].([]any); ok {
			ext = e
			if len(e) != len(arr) {
				v.addAt(CodeStructure, el.name, "arrays %s and _%s must have the same length (%d and %d)", key, key, len(arr), len(e))
			}
		}
	}
	for i, item := range arr {
		v.push(el.name, i, "")
		if item == nil {
			if !prim || i >= len(ext) || ext[i] == nil {
				v.add(CodeStructure, "null in %s is only allowed where _%s holds a value at the same index", el.path, key)
			}
		} else {
			v.one(el, ty, item, inContained)
		}
		v.pop()
	}
}

// one validates a single non-null value of element el with type ty at the
// current location.
func (v *validator) one(el *elemDef, ty *typeRef, val any, inContained bool) {
	td := ty.td
	if td.kind == KindPrimitive {
		v.primitive(td, val)
		if el.codes != nil {
			if s, ok := val.(string); ok && s != "" {
				if _, ok := el.codes[s]; !ok {
					v.add(CodeCodeInvalid, "code %s is not in the required value set %s", quoteShort(s), el.valueSet)
				}
			}
		}
		return
	}
	obj, ok := val.(map[string]any)
	if !ok {
		v.add(CodeStructure, "element %s must be a JSON object (%s), found %s", el.path, ty.code, jsonKind(val))
		return
	}
	switch {
	case td.name == "Resource":
		v.resource(obj, inContained || el.name == "contained")
	case el.child != nil:
		v.object(el.child, obj, false, inContained)
	default:
		v.object(td.st, obj, false, inContained)
		if td.name == "Reference" && ty.targets != nil {
			v.reference(obj, ty.targets)
		}
	}
}

// primitiveExt validates a _name property: the id and extensions of a
// primitive value, or an array of them.
func (v *validator) primitiveExt(el *elemDef, ofType string, obj map[string]any, name string, val any) {
	if el.max == 1 {
		v.push(el.name, -1, ofType)
		defer v.pop()
		o, ok := val.(map[string]any)
		if !ok {
			v.add(CodeStructure, "_%s must be a JSON object holding id and extension", name)
			return
		}
		v.object(v.m.element, o, false, false)
		return
	}
	arr, ok := val.([]any)
	if !ok {
		v.addAt(CodeStructure, el.name, "_%s must be a JSON array", name)
		return
	}
	_, hasValues := obj[name]
	if !hasValues && len(arr) == 0 {
		v.addAt(CodeStructure, el.name, "array _%s must not be empty", name)
	}
	if !hasValues && el.max > 0 && len(arr) > el.max {
		v.addAt(CodeStructure, el.name, "element %s allows at most %d values, found %d", el.path, el.max, len(arr))
	}
	for i, item := range arr {
		v.push(el.name, i, "")
		switch o := item.(type) {
		case nil:
			if !hasValues {
				v.add(CodeStructure, "null in _%s needs a value in %s at the same index", name, name)
			}
		case map[string]any:
			v.object(v.m.element, o, false, false)
		default:
			v.add(CodeStructure, "_%s items must be JSON objects or null", name)
		}
		v.pop()
	}
}

// reference checks a Reference's target type against the allowed targets.
// Local (#id), urn:uuid/urn:oid and absolute URLs whose last segments do
// not name a known resource type are not checked.
func (v *validator) reference(obj map[string]any, targets []string) {
	allowed := func(t string) bool {
		for _, x := range targets {
			if x == t {
				return true
			}
		}
		return false
	}
	if t, ok := obj["type"].(string); ok && v.m.IsResourceType(t) && !allowed(t) {
		v.addAt(CodeStructure, "type", "reference type %s is not allowed here (allowed: %s)", t, strings.Join(targets, ", "))
	}
	ref, ok := obj["reference"].(string)
	if !ok || ref == "" || ref[0] == '#' || strings.HasPrefix(ref, "urn:") {
		return
	}
	if i := strings.IndexByte(ref, '?'); i >= 0 {
		// Conditional references (Patient?identifier=...) name their type first.
		t := ref[:i]
		if !strings.Contains(t, "/") && v.m.IsResourceType(t) && !allowed(t) {
			v.addAt(CodeStructure, "reference", "reference to %s is not allowed here (allowed: %s)", t, strings.Join(targets, ", "))
		}
		return
	}
	absolute := strings.Contains(ref, "://")
	// Find the type segment: .../Type/id or .../Type/id/_history/vid.
	rest := ref
	if i := strings.LastIndex(rest, "/_history/"); i >= 0 {
		rest = rest[:i]
	}
	slash := strings.LastIndexByte(rest, '/')
	if slash <= 0 {
		return
	}
	t := rest[:slash]
	if j := strings.LastIndexByte(t, '/'); j >= 0 {
		t = t[j+1:]
	} else if absolute {
		return
	}
	if !v.m.IsResourceType(t) {
		if !absolute && !strings.Contains(rest[:slash], "/") {
			v.addAt(CodeValue, "reference", "reference %q does not name a known resource type", ref)
		}
		return
	}
	if !allowed(t) {
		v.addAt(CodeStructure, "reference", "reference to %s is not allowed here (allowed: %s)", t, strings.Join(targets, ", "))
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
