// Command gen builds Kiln's compact FHIR R4 model table from the official
// StructureDefinitions in the npm package hl7.fhir.r4.examples@4.0.1.
//
// Usage (from the repository root):
//
//	mkdir -p .cache/npm && (cd .cache/npm && npm pack hl7.fhir.r4.examples@4.0.1 && tar xzf hl7.fhir.r4.examples-4.0.1.tgz)
//	go run ./internal/fhir/internal/gen -src .cache/npm/package -out internal/fhir/model.json.gz
//
// It reads every StructureDefinition whose derivation is "specialization"
// (or that has no base: Element, Resource, Base), i.e. the base resources,
// complex types and primitive types, and writes their snapshot elements as a
// gzip'd JSON document (see internal/fhir/table.go for the schema). The output
// is deterministic: types and elements are sorted, and the gzip header carries
// no name or time.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The schema below mirrors internal/fhir/table.go; keep them in step.

type table struct {
	FHIRVersion string    `json:"fhirVersion"`
	Types       []typeRow `json:"types"`
	// ValueSets holds the codes of every value set bound with strength
	// "required" to an element of type code, when the value set can be
	// enumerated from the package (no filters, complete code systems).
	ValueSets map[string][]string `json:"valueSets"`
}

type typeRow struct {
	Name     string    `json:"n"`
	Kind     string    `json:"k"` // "p" primitive, "c" complex, "r" resource
	Abstract bool      `json:"a,omitempty"`
	Base     string    `json:"b,omitempty"`
	Regex    string    `json:"re,omitempty"` // primitives: regex of the value
	Elements []elemRow `json:"e,omitempty"`
}

type elemRow struct {
	Path     string    `json:"p"` // full path, e.g. "Patient.contact.name" or "Observation.value[x]"
	Min      int       `json:"mn,omitempty"`
	Max      int       `json:"mx"` // -1 for "*"
	Types    []typeRef `json:"t,omitempty"`
	Ref      string    `json:"cr,omitempty"` // contentReference target path
	Summary  bool      `json:"s,omitempty"`
	Modifier bool      `json:"m,omitempty"`
	ValueSet string    `json:"vs,omitempty"` // required binding of a code element (key of table.ValueSets)
}

type typeRef struct {
	Code    string   `json:"c"`
	Targets []string `json:"r,omitempty"` // Reference/canonical target resource names
}

// Source JSON shapes (only the fields we need).

type sdef struct {
	ResourceType string `json:"resourceType"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	BaseDef      string `json:"baseDefinition"`
	FHIRVersion  string `json:"fhirVersion"`
	URL          string `json:"url"`
	Snapshot     struct {
		Element []selem `json:"element"`
	} `json:"snapshot"`
}

type selem struct {
	ID               string `json:"id"`
	Path             string `json:"path"`
	SliceName        string `json:"sliceName"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	IsSummary        bool   `json:"isSummary"`
	IsModifier       bool   `json:"isModifier"`
	Binding          *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	Type []struct {
		Code          string   `json:"code"`
		TargetProfile []string `json:"targetProfile"`
		Extension     []struct {
			URL         string `json:"url"`
			ValueURL    string `json:"valueUrl"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	} `json:"type"`
}

const sdPrefix = "http://hl7.org/fhir/StructureDefinition/"

func main() {
	src := flag.String("src", ".cache/npm/package", "directory holding the unpacked hl7.fhir.r4.examples package")
	out := flag.String("out", "internal/fhir/model.json.gz", "output file")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	files, err := filepath.Glob(filepath.Join(src, "StructureDefinition-*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no StructureDefinition-*.json under %s (fetch hl7.fhir.r4.examples@4.0.1 first)", src)
	}
	t := table{ValueSets: map[string][]string{}}
	term, err := loadTerminology(src)
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var sd sdef
		if err := json.Unmarshal(b, &sd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if sd.ResourceType != "StructureDefinition" || sd.Kind == "logical" {
			continue
		}
		if sd.Derivation == "constraint" {
			continue
		}
		if sd.URL != sdPrefix+sd.Type {
			continue
		}
		if sd.FHIRVersion != "" {
			t.FHIRVersion = sd.FHIRVersion
		}
		row, err := convert(&sd, term, t.ValueSets)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		t.Types = append(t.Types, row)
	}
	sort.Slice(t.Types, func(i, j int) bool { return t.Types[i].Name < t.Types[j].Name })
	if err := check(&t); err != nil {
		return err
	}
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&t); err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(out, gz.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %d types, %d bytes JSON, %d bytes gzip -> %s\n", len(t.Types), raw.Len(), gz.Len(), out)
	return nil
}

func kindCode(k string) (string, error) {
	switch k {
	case "primitive-type":
		return "p", nil
	case "complex-type":
		return "c", nil
	case "resource":
		return "r", nil
	}
	return "", fmt.Errorf("unexpected kind %q", k)
}

func convert(sd *sdef, term *terminology, valueSets map[string][]string) (typeRow, error) {
	k, err := kindCode(sd.Kind)
	if err != nil {
		return typeRow{}, err
	}
	row := typeRow{Name: sd.Type, Kind: k, Abstract: sd.Abstract, Base: strings.TrimPrefix(sd.BaseDef, sdPrefix)}
	for _, e := range sd.Snapshot.Element {
		if e.SliceName != "" {
			return row, fmt.Errorf("%s: unexpected slice in a base definition", e.ID)
		}
		if e.Path == sd.Type {
			continue // the root element carries nothing we need
		}
		if k == "p" && e.Path == sd.Type+".value" {
			for _, ty := range e.Type {
				for _, x := range ty.Extension {
					if x.URL == sdPrefix+"regex" {
						row.Regex = x.ValueString
					}
				}
			}
			continue // the value lives in the JSON primitive itself
		}
		er := elemRow{Path: e.Path, Min: e.Min, Summary: e.IsSummary, Modifier: e.IsModifier}
		switch e.Max {
		case "*":
			er.Max = -1
		default:
			n, err := strconv.Atoi(e.Max)
			if err != nil {
				return row, fmt.Errorf("%s: bad max %q", e.ID, e.Max)
			}
			er.Max = n
		}
		if e.ContentReference != "" {
			er.Ref = strings.TrimPrefix(e.ContentReference, "#")
		}
		for _, ty := range e.Type {
			code := ty.Code
			if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
				code = "string"
				for _, x := range ty.Extension {
					if x.URL == sdPrefix+"structuredefinition-fhir-type" {
						code = x.ValueURL
					}
				}
			}
			// Resource.id is declared as System.String, but the specification
			// types it as id: apply the id rules on resources.
			if k == "r" && e.Path == sd.Type+".id" {
				code = "id"
			}
			tr := typeRef{Code: code}
			for _, p := range ty.TargetProfile {
				tr.Targets = append(tr.Targets, strings.TrimPrefix(p, sdPrefix))
			}
			er.Types = append(er.Types, tr)
		}
		if b := e.Binding; b != nil && b.Strength == "required" && b.ValueSet != "" && len(er.Types) == 1 && er.Types[0].Code == "code" {
			url, _, _ := strings.Cut(b.ValueSet, "|")
			if codes, ok := term.expand(url, 0); ok {
				valueSets[url] = codes
				er.ValueSet = url
			}
		}
		if len(er.Types) == 0 && er.Ref == "" {
			return row, fmt.Errorf("%s: element has neither type nor contentReference", e.ID)
		}
		row.Elements = append(row.Elements, er)
	}
	return row, nil
}

// check verifies that every referenced type code and contentReference
// resolves, so the runtime never meets a dangling name.
func check(t *table) error {
	types := map[string]bool{}
	paths := map[string]bool{}
	for _, ty := range t.Types {
		types[ty.Name] = true
		for _, e := range ty.Elements {
			paths[e.Path] = true
		}
	}
	var errs []error
	for _, ty := range t.Types {
		for _, e := range ty.Elements {
			for _, tr := range e.Types {
				if !types[tr.Code] {
					errs = append(errs, fmt.Errorf("%s: unknown type code %q", e.Path, tr.Code))
				}
				for _, r := range tr.Targets {
					if !types[r] {
						errs = append(errs, fmt.Errorf("%s: unknown target %q", e.Path, r))
					}
				}
			}
			if e.Ref != "" && !paths[e.Ref] {
				errs = append(errs, fmt.Errorf("%s: unknown contentReference %q", e.Path, e.Ref))
			}
		}
	}
	return errors.Join(errs...)
}

// terminology holds the package's ValueSets and CodeSystems by URL.
type terminology struct {
	valueSets   map[string]*valueSet
	codeSystems map[string]*codeSystem
}

type valueSet struct {
	URL     string `json:"url"`
	Compose *struct {
		Include []vsInclude `json:"include"`
		Exclude []vsInclude `json:"exclude"`
	} `json:"compose"`
}

type vsInclude struct {
	System  string `json:"system"`
	Concept []struct {
		Code string `json:"code"`
	} `json:"concept"`
	Filter   []json.RawMessage `json:"filter"`
	ValueSet []string          `json:"valueSet"`
}

type codeSystem struct {
	URL     string    `json:"url"`
	Content string    `json:"content"`
	Concept []concept `json:"concept"`
}

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

func loadTerminology(src string) (*terminology, error) {
	t := &terminology{valueSets: map[string]*valueSet{}, codeSystems: map[string]*codeSystem{}}
	vs, _ := filepath.Glob(filepath.Join(src, "ValueSet-*.json"))
	for _, f := range vs {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var v valueSet
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		t.valueSets[v.URL] = &v
	}
	cs, _ := filepath.Glob(filepath.Join(src, "CodeSystem-*.json"))
	for _, f := range cs {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c codeSystem
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		t.codeSystems[c.URL] = &c
	}
	return t, nil
}

// expand enumerates the codes of a value set, or reports false when it
// cannot (filters, excludes, unknown or incomplete code systems).
func (t *terminology) expand(url string, depth int) ([]string, bool) {
	v := t.valueSets[url]
	if v == nil || v.Compose == nil || len(v.Compose.Exclude) > 0 || depth > 8 {
		return nil, false
	}
	set := map[string]bool{}
	for _, inc := range v.Compose.Include {
		if len(inc.Filter) > 0 {
			return nil, false
		}
		for _, sub := range inc.ValueSet {
			u, _, _ := strings.Cut(sub, "|")
			codes, ok := t.expand(u, depth+1)
			if !ok {
				return nil, false
			}
			for _, c := range codes {
				set[c] = true
			}
		}
		switch {
		case len(inc.Concept) > 0:
			for _, c := range inc.Concept {
				set[c.Code] = true
			}
		case inc.System != "":
			cs := t.codeSystems[inc.System]
			if cs == nil || cs.Content != "complete" {
				return nil, false
			}
			var walk func([]concept)
			walk = func(cs []concept) {
				for _, c := range cs {
					set[c.Code] = true
					walk(c.Concept)
				}
			}
			walk(cs.Concept)
		}
	}
	if len(set) == 0 {
		return nil, false
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, true
}
