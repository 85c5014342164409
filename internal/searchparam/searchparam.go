package searchparam

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
)

//go:embed params.jsonl
var table []byte

// Type is a FHIR search parameter type (R4 value set search-param-type).
type Type string

// The R4 search parameter types.
const (
	Number    Type = "number"
	Date      Type = "date"
	String    Type = "string"
	Token     Type = "token"
	Reference Type = "reference"
	Composite Type = "composite"
	Quantity  Type = "quantity"
	URI       Type = "uri"
	Special   Type = "special"
)

// Component is one part of a composite parameter: the canonical URL of the
// parameter it reuses and the FHIRPath expression that selects its value,
// evaluated with each node selected by the composite's own expression as
// context.
type Component struct {
	Definition string
	Expression string
}

// Param is one R4 SearchParameter definition. A *Param returned by a Registry
// is shared and must be treated as read-only.
type Param struct {
	Code string // the name used in queries, e.g. "subject" or "_id"
	Name string // the computer-friendly name of the definition
	URL  string // canonical URL, unique within the registry
	// Base lists the resource types the parameter is defined on; "Resource"
	// and "DomainResource" stand for every (domain) resource type.
	Base []string
	Type Type
	// Expression is the FHIRPath expression that extracts the indexed values
	// from a resource. It is empty for the three parameters the spec leaves
	// to the server (_text, _content, _query).
	Expression string
	XPathUsage string   // normal, phonetic, nearby, distance or other
	Target     []string // resource types a reference parameter may point to
	Modifier   []string // modifiers declared by the definition (none in R4 core)
	Comparator []string // comparators declared by the definition
	// MultipleOr and MultipleAnd are the declared values; when the definition
	// is silent they are true (the server's default behaviour applies).
	MultipleOr  bool
	MultipleAnd bool
	Components  []Component // non-empty only for composite parameters
}

// Registry is an immutable index of search parameters. It is safe for
// concurrent use.
type Registry struct {
	all    []*Param
	byURL  map[string]*Param
	byBase map[string]map[string]*Param // base type -> code -> param
	types  []string
	isType map[string]bool
}

type row struct {
	Code        string   `json:"code"`
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	Base        []string `json:"base"`
	Type        Type     `json:"type"`
	Expression  string   `json:"expr"`
	XPathUsage  string   `json:"xpathUsage"`
	Target      []string `json:"target"`
	Modifier    []string `json:"modifier"`
	Comparator  []string `json:"comparator"`
	MultipleOr  *bool    `json:"multipleOr"`
	MultipleAnd *bool    `json:"multipleAnd"`
	Component   []struct {
		Definition string `json:"definition"`
		Expression string `json:"expr"`
	} `json:"component"`
}

// Load decodes the embedded R4 table into a new Registry. It fails only if
// the embedded table is corrupt, which a test rules out.
func Load() (*Registry, error) {
	return parse(table)
}

func parse(data []byte) (*Registry, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	if !sc.Scan() {
		return nil, fmt.Errorf("searchparam: empty table")
	}
	var hdr struct {
		ResourceTypes []string `json:"resourceTypes"`
		Count         int      `json:"count"`
	}
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
		return nil, fmt.Errorf("searchparam: decoding table header: %w", err)
	}
	r := &Registry{
		byURL:  make(map[string]*Param, hdr.Count),
		byBase: make(map[string]map[string]*Param),
		types:  hdr.ResourceTypes,
		isType: make(map[string]bool, len(hdr.ResourceTypes)),
	}
	for _, t := range hdr.ResourceTypes {
		r.isType[t] = true
	}
	line := 1
	for sc.Scan() {
		line++
		var w row
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("searchparam: decoding table line %d: %w", line, err)
		}
		p := &Param{
			Code: w.Code, Name: w.Name, URL: w.URL, Base: w.Base, Type: w.Type,
			Expression: w.Expression, XPathUsage: w.XPathUsage, Target: w.Target,
			Modifier: w.Modifier, Comparator: w.Comparator,
			MultipleOr: w.MultipleOr == nil || *w.MultipleOr, MultipleAnd: w.MultipleAnd == nil || *w.MultipleAnd,
		}
		for _, c := range w.Component {
			p.Components = append(p.Components, Component{Definition: c.Definition, Expression: c.Expression})
		}
		if _, dup := r.byURL[p.URL]; dup {
			return nil, fmt.Errorf("searchparam: duplicate url %s", p.URL)
		}
		r.byURL[p.URL] = p
		for _, b := range p.Base {
			m := r.byBase[b]
			if m == nil {
				m = make(map[string]*Param)
				r.byBase[b] = m
			}
			if _, dup := m[p.Code]; dup {
				return nil, fmt.Errorf("searchparam: duplicate code %s on %s", p.Code, b)
			}
			m[p.Code] = p
		}
		r.all = append(r.all, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("searchparam: reading table: %w", err)
	}
	if len(r.all) != hdr.Count {
		return nil, fmt.Errorf("searchparam: table has %d parameters, header says %d", len(r.all), hdr.Count)
	}
	return r, nil
}

// IsDomainResource reports whether resourceType derives from DomainResource,
// that is, it is a known resource type other than Bundle, Binary and
// Parameters.
func (r *Registry) IsDomainResource(resourceType string) bool {
	if !r.isType[resourceType] {
		return false
	}
	switch resourceType {
	case "Bundle", "Binary", "Parameters":
		return false
	}
	return true
}

// IsResourceType reports whether resourceType is a concrete R4 resource type.
func (r *Registry) IsResourceType(resourceType string) bool { return r.isType[resourceType] }

// ResourceTypes returns the concrete R4 resource types in alphabetical order.
// The caller must not modify the slice.
func (r *Registry) ResourceTypes() []string { return r.types }

// For returns the parameter with the given code that applies to resourceType,
// including those defined on Resource or DomainResource. It returns false for
// an unknown resource type or code.
func (r *Registry) For(resourceType, code string) (*Param, bool) {
	if !r.isType[resourceType] {
		return nil, false
	}
	if p, ok := r.byBase[resourceType][code]; ok {
		return p, true
	}
	if p, ok := r.byBase["Resource"][code]; ok {
		return p, true
	}
	if r.IsDomainResource(resourceType) {
		if p, ok := r.byBase["DomainResource"][code]; ok {
			return p, true
		}
	}
	return nil, false
}

// ByURL returns the parameter with the given canonical URL, as named by a
// composite Component.Definition.
func (r *Registry) ByURL(url string) (*Param, bool) {
	p, ok := r.byURL[url]
	return p, ok
}

// ForType returns every parameter that applies to resourceType, sorted by
// code: its own and those defined on Resource (and DomainResource, unless
// the type is Bundle, Binary or Parameters). It returns nil for an unknown
// type. The slice is new; the *Param values are shared.
func (r *Registry) ForType(resourceType string) []*Param {
	if !r.isType[resourceType] {
		return nil
	}
	var out []*Param
	add := func(m map[string]*Param) {
		for _, p := range m {
			out = append(out, p)
		}
	}
	add(r.byBase[resourceType])
	add(r.byBase["Resource"])
	if r.IsDomainResource(resourceType) {
		add(r.byBase["DomainResource"])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// All returns every parameter, sorted by URL. The slice is new; the *Param
// values are shared.
func (r *Registry) All() []*Param {
	return append([]*Param(nil), r.all...)
}
