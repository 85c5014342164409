package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

//go:generate go run ./internal/gen -src ../../.cache/npm/package -out model.json.gz

// modelTable is the generated, read-only R4 table (see internal/gen and
// docs/fhir-model.md). It is parsed once per NewModel call.
//
//go:embed model.json.gz
var modelTable []byte

// Table schema; mirrors internal/gen/main.go.
type tableDoc struct {
	FHIRVersion string              `json:"fhirVersion"`
	Types       []tableRow          `json:"types"`
	ValueSets   map[string][]string `json:"valueSets"`
}

type tableRow struct {
	Name     string      `json:"n"`
	Kind     string      `json:"k"`
	Abstract bool        `json:"a"`
	Base     string      `json:"b"`
	Regex    string      `json:"re"`
	Elements []tableElem `json:"e"`
}

type tableElem struct {
	Path     string     `json:"p"`
	Min      int        `json:"mn"`
	Max      int        `json:"mx"`
	Types    []tableRef `json:"t"`
	Ref      string     `json:"cr"`
	Summary  bool       `json:"s"`
	Modifier bool       `json:"m"`
	ValueSet string     `json:"vs"`
}

type tableRef struct {
	Code    string   `json:"c"`
	Targets []string `json:"r"`
}

// Kind classifies a FHIR type.
type Kind int

// Kinds of FHIR types.
const (
	KindUnknown   Kind = iota
	KindPrimitive      // boolean, string, date, ...
	KindComplex        // HumanName, Quantity, BackboneElement, ...
	KindResource       // Patient, Bundle, Resource, DomainResource, ...
)

type primKind uint8

const (
	pNone primKind = iota
	pBoolean
	pInteger
	pPositiveInt
	pUnsignedInt
	pDecimal
	pString
	pMarkdown
	pCode
	pID
	pURI
	pURL
	pCanonical
	pOID
	pUUID
	pDate
	pDateTime
	pInstant
	pTime
	pBase64
	pXHTML
)

var primKinds = map[string]primKind{
	"boolean": pBoolean, "integer": pInteger, "positiveInt": pPositiveInt, "unsignedInt": pUnsignedInt,
	"decimal": pDecimal, "string": pString, "markdown": pMarkdown, "code": pCode, "id": pID,
	"uri": pURI, "url": pURL, "canonical": pCanonical, "oid": pOID, "uuid": pUUID,
	"date": pDate, "dateTime": pDateTime, "instant": pInstant, "time": pTime,
	"base64Binary": pBase64, "xhtml": pXHTML,
}

// Model is the FHIR R4 model: every base resource, complex type and primitive
// type of the specification with its elements, as generated from the
// official StructureDefinitions. A Model is immutable after NewModel returns
// and safe for concurrent use.
type Model struct {
	version   string
	types     map[string]*typeDef
	structs   map[string]*structDef // by type name or backbone path
	resources []string              // concrete resource type names, sorted
	element   *structDef            // the Element struct, for _primitive objects
}

type typeDef struct {
	name     string
	kind     Kind
	abstract bool
	base     string
	prim     primKind
	regex    *regexp.Regexp // primitives: the anchored value regex
	st       *structDef     // complex types and resources
}

type structDef struct {
	name  string
	elems []*elemDef
	// byName maps an element name (without [x]) to its definition.
	byName map[string]*elemDef
	// props maps a JSON property name (deceasedBoolean, name, ...) to its
	// element and type.
	props    map[string]prop
	required []*elemDef
}

type prop struct {
	el *elemDef
	ty *typeRef
}

type elemDef struct {
	idx      int
	name     string // without [x]
	path     string // as in the definition, e.g. Observation.value[x]
	min, max int    // max -1 for *
	choice   bool
	types    []typeRef
	child    *structDef // BackboneElement / Element children, or contentReference target
	summary  bool
	modifier bool
	ref      string
	// codes is the closed set of allowed codes of a code element with a
	// required binding (nil when unbound or not enumerable).
	codes    map[string]struct{}
	valueSet string
}

type typeRef struct {
	code    string
	td      *typeDef
	targets []string // nil: any resource
}

// NewModel parses the embedded R4 table. It costs a few milliseconds; build
// one Model at start-up and share it.
func NewModel() (*Model, error) {
	zr, err := gzip.NewReader(bytes.NewReader(modelTable))
	if err != nil {
		return nil, fmt.Errorf("fhir: open model table: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("fhir: read model table: %w", err)
	}
	var doc tableDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("fhir: parse model table: %w", err)
	}
	return buildModel(&doc)
}

func buildModel(doc *tableDoc) (*Model, error) {
	m := &Model{version: doc.FHIRVersion, types: map[string]*typeDef{}, structs: map[string]*structDef{}}
	for _, r := range doc.Types {
		td := &typeDef{name: r.Name, abstract: r.Abstract, base: r.Base}
		switch r.Kind {
		case "p":
			td.kind = KindPrimitive
			td.prim = primKinds[r.Name]
			if td.prim == pNone {
				return nil, fmt.Errorf("fhir: model table: unknown primitive %q", r.Name)
			}
			if r.Regex != "" {
				re, err := regexp.Compile("^(?:" + r.Regex + ")$")
				if err != nil {
					return nil, fmt.Errorf("fhir: model table: regex of %s: %w", r.Name, err)
				}
				td.regex = re
			}
		case "c":
			td.kind = KindComplex
		case "r":
			td.kind = KindResource
			if !r.Abstract {
				m.resources = append(m.resources, r.Name)
			}
		default:
			return nil, fmt.Errorf("fhir: model table: type %s has unknown kind %q", r.Name, r.Kind)
		}
		m.types[r.Name] = td
	}
	sort.Strings(m.resources)
	codeSets := make(map[string]map[string]struct{}, len(doc.ValueSets))
	for url, codes := range doc.ValueSets {
		set := make(map[string]struct{}, len(codes))
		for _, c := range codes {
			set[c] = struct{}{}
		}
		codeSets[url] = set
	}
	// Structs: one per type (a primitive's holds its id and extension, for
	// navigation), plus one per backbone path.
	for _, r := range doc.Types {
		td := m.types[r.Name]
		td.st = m.newStruct(r.Name)
		for _, e := range r.Elements {
			dot := strings.LastIndexByte(e.Path, '.')
			if dot < 0 {
				return nil, fmt.Errorf("fhir: model table: bad element path %q", e.Path)
			}
			parent, name := e.Path[:dot], e.Path[dot+1:]
			st := m.structs[parent]
			if st == nil {
				return nil, fmt.Errorf("fhir: model table: element %s has no parent", e.Path)
			}
			el := &elemDef{idx: len(st.elems), path: e.Path, min: e.Min, max: e.Max, summary: e.Summary, modifier: e.Modifier, ref: e.Ref}
			if e.ValueSet != "" {
				el.codes = codeSets[e.ValueSet]
				el.valueSet = e.ValueSet
				if el.codes == nil {
					return nil, fmt.Errorf("fhir: model table: %s binds unknown value set %q", e.Path, e.ValueSet)
				}
			}
			if strings.HasSuffix(name, "[x]") {
				el.choice = true
				name = strings.TrimSuffix(name, "[x]")
			}
			el.name = name
			for _, t := range e.Types {
				ty := m.types[t.Code]
				if ty == nil {
					return nil, fmt.Errorf("fhir: model table: %s has unknown type %q", e.Path, t.Code)
				}
				tr := typeRef{code: t.Code, td: ty}
				for _, target := range t.Targets {
					if target == "Resource" {
						tr.targets = nil
						break
					}
					tr.targets = append(tr.targets, target)
				}
				el.types = append(el.types, tr)
			}
			if (t1(el) == "BackboneElement" || t1(el) == "Element") && e.Ref == "" {
				el.child = m.newStruct(e.Path)
			}
			st.elems = append(st.elems, el)
		}
	}
	// Resolve contentReference and index properties.
	for _, st := range m.structs {
		for _, el := range st.elems {
			if el.ref != "" {
				target := m.structs[el.ref]
				if target == nil {
					return nil, fmt.Errorf("fhir: model table: %s refers to unknown %q", el.path, el.ref)
				}
				el.child = target
				el.types = []typeRef{{code: "BackboneElement", td: m.types["BackboneElement"]}}
				if tgt := m.findElem(el.ref); tgt != nil {
					el.types = tgt.types
				}
			}
		}
	}
	for _, st := range m.structs {
		st.byName = make(map[string]*elemDef, len(st.elems))
		st.props = make(map[string]prop, len(st.elems))
		for _, el := range st.elems {
			st.byName[el.name] = el
			if el.min > 0 {
				st.required = append(st.required, el)
			}
			if el.choice {
				for i := range el.types {
					st.props[el.name+upperFirst(el.types[i].code)] = prop{el: el, ty: &el.types[i]}
				}
			} else {
				st.props[el.name] = prop{el: el, ty: &el.types[0]}
			}
		}
	}
	m.element = m.structs["Element"]
	if m.element == nil || len(m.resources) == 0 {
		return nil, fmt.Errorf("fhir: model table is incomplete")
	}
	return m, nil
}

func t1(el *elemDef) string {
	if len(el.types) == 0 {
		return ""
	}
	return el.types[0].code
}

func (m *Model) newStruct(name string) *structDef {
	st := &structDef{name: name}
	m.structs[name] = st
	return st
}

// findElem finds the element definition at a full definition path such as
// "Questionnaire.item".
func (m *Model) findElem(path string) *elemDef {
	dot := strings.LastIndexByte(path, '.')
	if dot < 0 {
		return nil
	}
	st := m.structs[path[:dot]]
	if st == nil {
		return nil
	}
	name := strings.TrimSuffix(path[dot+1:], "[x]")
	for _, el := range st.elems {
		if el.name == name {
			return el
		}
	}
	return nil
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// FHIRVersion reports the FHIR version of the definitions ("4.0.1").
func (m *Model) FHIRVersion() string { return m.version }

// IsResourceType reports whether name is a concrete (non-abstract) R4
// resource type, such as "Patient". It is false for "Resource",
// "DomainResource", data types and unknown names.
func (m *Model) IsResourceType(name string) bool {
	td := m.types[name]
	return td != nil && td.kind == KindResource && !td.abstract
}

// ResourceTypes returns the concrete R4 resource type names, sorted. The
// caller owns the returned slice.
func (m *Model) ResourceTypes() []string {
	return append([]string(nil), m.resources...)
}

// TypeKind reports whether name is a primitive type, a complex type or a
// resource type (abstract ones included), or KindUnknown.
func (m *Model) TypeKind(name string) Kind {
	if td := m.types[name]; td != nil {
		return td.kind
	}
	return KindUnknown
}

// PrimitiveRegex returns the anchored regular expression that the
// StructureDefinition of primitive type name declares for its value, or nil
// (xhtml has none; unknown names). Validate uses faster hand-written checks
// that agree with these expressions and add the semantic rules (month
// lengths, ranges); the regexes are exposed for tests and tools.
func (m *Model) PrimitiveRegex(name string) *regexp.Regexp {
	if td := m.types[name]; td != nil {
		return td.regex
	}
	return nil
}

// resolve finds the struct for a type name or a backbone path. A path such
// as "Questionnaire.item.item" or "Patient.contact" is walked element by
// element from its type, so it works through contentReference too.
func (m *Model) resolve(typeName string) *structDef {
	if st := m.structs[typeName]; st != nil {
		return st
	}
	dot := strings.IndexByte(typeName, '.')
	if dot < 0 {
		return nil
	}
	st := m.structs[typeName[:dot]]
	rest := typeName[dot+1:]
	for st != nil && rest != "" {
		name := rest
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			name, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		el := st.byName[name]
		if el == nil {
			return nil
		}
		switch {
		case el.child != nil:
			st = el.child
		case len(el.types) == 1 && el.types[0].td.st != nil:
			st = el.types[0].td.st
		default:
			return nil
		}
	}
	return st
}

// ElementInfo describes one element of a type, as the definitions declare it.
type ElementInfo struct {
	// Name is the element name without "[x]", e.g. "value".
	Name string
	// Path is the definition path, e.g. "Observation.value[x]" or
	// "Patient.contact.name".
	Path string
	// Types are the allowed type codes in definition order. More than one
	// means a choice element. Backbone elements report "BackboneElement"
	// (or "Element"); use ChildTypePath to navigate into them.
	Types []string
	// Min and Max are the cardinality; Max is -1 for "*".
	Min, Max int
	// Choice is true for a [x] element.
	Choice bool
	// Summary and Modifier mirror isSummary and isModifier.
	Summary, Modifier bool
}

// Element returns the definition of element (a name without "[x]") in
// typeName, which is a type or resource name ("HumanName", "Patient") or a
// backbone path ("Patient.contact", "Questionnaire.item.item").
func (m *Model) Element(typeName, element string) (ElementInfo, bool) {
	st := m.resolve(typeName)
	if st == nil {
		return ElementInfo{}, false
	}
	el := st.byName[element]
	if el == nil {
		return ElementInfo{}, false
	}
	info := ElementInfo{Name: el.name, Path: el.path, Min: el.min, Max: el.max, Choice: el.choice, Summary: el.summary, Modifier: el.modifier}
	for _, t := range el.types {
		info.Types = append(info.Types, t.code)
	}
	return info, true
}

// ElementTypes returns the allowed type codes of element (a name without
// "[x]") in typeName (a type or resource name, a primitive type name, whose
// elements are id and extension, or a backbone path such as
// "Patient.contact"). Examples:
//
//	ElementTypes("Observation", "value")     → [Quantity CodeableConcept string boolean integer Range Ratio SampledData time dateTime Period]
//	ElementTypes("Patient", "contact")       → [BackboneElement]
//	ElementTypes("Patient.contact", "name")  → [HumanName]
//	ElementTypes("Patient", "id")            → [id]
//	ElementTypes("Extension", "url")         → [uri]
//	ElementTypes("date", "extension")        → [Extension]
//
// Primitive types are the FHIR primitive names (string, boolean, ...), never
// System.*. It returns nil when the type or element is unknown. The caller
// owns the returned slice.
func (m *Model) ElementTypes(typeName, element string) []string {
	info, ok := m.Element(typeName, element)
	if !ok {
		return nil
	}
	return info.Types
}

// ChildTypePath returns the name to pass as typeName to ElementTypes,
// Element or ChildTypePath to look inside element of typeName, for elements
// that have exactly one type: for a backbone element it is its definition
// path ("Patient.contact"; for a contentReference such as
// Questionnaire.item.item it is the referenced path "Questionnaire.item"),
// for an element of a complex or resource type it is the type name
// ("HumanName"), and for a primitive it is the primitive name. It returns ""
// for unknown elements and for choice elements (use the ofType type code).
func (m *Model) ChildTypePath(typeName, element string) string {
	st := m.resolve(typeName)
	if st == nil {
		return ""
	}
	el := st.byName[element]
	if el == nil || el.choice {
		return ""
	}
	if el.child != nil {
		return el.child.name
	}
	return el.types[0].code
}

// IsSummary reports whether the element at path (a definition path without
// "[x]" such as "Patient.name", "Patient.contact.name" or
// "Observation.value") is marked isSummary.
func (m *Model) IsSummary(path string) bool {
	el := m.elemAt(path)
	return el != nil && el.summary
}

// IsMandatory reports whether the element at path has min > 0.
func (m *Model) IsMandatory(path string) bool {
	el := m.elemAt(path)
	return el != nil && el.min > 0
}

// SummaryElements returns the names (without "[x]") of the top-level
// elements of typeName that belong in a _summary=true rendering: those marked
// isSummary plus the mandatory ones, in definition order. For resources it
// always contains "id" and "meta".
func (m *Model) SummaryElements(typeName string) []string {
	st := m.resolve(typeName)
	if st == nil {
		return nil
	}
	var out []string
	for _, el := range st.elems {
		if el.summary || el.min > 0 {
			out = append(out, el.name)
		}
	}
	return out
}

func (m *Model) elemAt(path string) *elemDef {
	dot := strings.LastIndexByte(path, '.')
	if dot < 0 {
		return nil
	}
	st := m.resolve(path[:dot])
	if st == nil {
		return nil
	}
	return st.byName[strings.TrimSuffix(path[dot+1:], "[x]")]
}
