package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// source mirrors the fields of an R4 SearchParameter that the table keeps.
type source struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Name         string   `json:"name"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	XPathUsage   string   `json:"xpathUsage"`
	Target       []string `json:"target"`
	Modifier     []string `json:"modifier"`
	Comparator   []string `json:"comparator"`
	MultipleOr   *bool    `json:"multipleOr"`
	MultipleAnd  *bool    `json:"multipleAnd"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// Row is one line of params.jsonl; the field names are the table format
// that internal/searchparam decodes.
type Row struct {
	Code        string      `json:"code"`
	Name        string      `json:"name"`
	URL         string      `json:"url"`
	Base        []string    `json:"base"`
	Type        string      `json:"type"`
	Expression  string      `json:"expr,omitempty"`
	XPathUsage  string      `json:"xpathUsage,omitempty"`
	Target      []string    `json:"target,omitempty"`
	Modifier    []string    `json:"modifier,omitempty"`
	Comparator  []string    `json:"comparator,omitempty"`
	MultipleOr  *bool       `json:"multipleOr,omitempty"`
	MultipleAnd *bool       `json:"multipleAnd,omitempty"`
	Component   []Component `json:"component,omitempty"`
}

// Component is one part of a composite parameter.
type Component struct {
	Definition string `json:"definition"`
	Expression string `json:"expr"`
}

// Header is the first line of params.jsonl.
type Header struct {
	Source        string   `json:"source"`
	ResourceTypes []string `json:"resourceTypes"`
	Count         int      `json:"count"`
}

// Build reads Bundle-searchParams.json and the resource StructureDefinitions
// from the unpacked package and returns the table: a header line, then one
// JSON object per parameter, sorted by URL.
func Build(pkg fs.FS) ([]byte, error) {
	raw, err := fs.ReadFile(pkg, "Bundle-searchParams.json")
	if err != nil {
		return nil, fmt.Errorf("reading search parameter bundle: %w", err)
	}
	var bundle struct {
		Entry []struct {
			Resource source `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return nil, fmt.Errorf("decoding search parameter bundle: %w", err)
	}
	rows := make([]Row, 0, len(bundle.Entry))
	for _, e := range bundle.Entry {
		s := e.Resource
		if s.ResourceType != "SearchParameter" {
			return nil, fmt.Errorf("bundle entry %q is a %s", s.ID, s.ResourceType)
		}
		r := Row{
			Code: s.Code, Name: s.Name, URL: s.URL, Base: s.Base, Type: s.Type,
			Expression: s.Expression, XPathUsage: s.XPathUsage, Target: s.Target,
			Modifier: s.Modifier, Comparator: s.Comparator,
			MultipleOr: s.MultipleOr, MultipleAnd: s.MultipleAnd,
		}
		for _, c := range s.Component {
			r.Component = append(r.Component, Component{Definition: c.Definition, Expression: c.Expression})
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].URL < rows[j].URL })

	types, err := resourceTypes(pkg)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Header{Source: "hl7.fhir.r4.examples@4.0.1 Bundle-searchParams.json", ResourceTypes: types, Count: len(rows)}); err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// resourceTypes lists the concrete R4 resource types: StructureDefinitions of
// kind resource that specialise (not constrain) a base and are not abstract.
func resourceTypes(pkg fs.FS) ([]string, error) {
	names, err := fs.Glob(pkg, "StructureDefinition-*.json")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		raw, err := fs.ReadFile(pkg, n)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", n, err)
		}
		var sd struct {
			Kind       string `json:"kind"`
			Derivation string `json:"derivation"`
			Abstract   bool   `json:"abstract"`
			Type       string `json:"type"`
			URL        string `json:"url"`
		}
		if err := json.Unmarshal(raw, &sd); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", n, err)
		}
		if sd.Kind == "resource" && sd.Derivation == "specialization" && !sd.Abstract &&
			strings.HasPrefix(sd.URL, "http://hl7.org/fhir/StructureDefinition/") {
			out = append(out, sd.Type)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("no resource StructureDefinitions found")
	}
	return out, nil
}
