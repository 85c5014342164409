package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedTableIsCurrent regenerates the model table from the official
// package and compares it byte for byte with the committed one, so a change
// to the generator cannot land without its output.
func TestGeneratedTableIsCurrent(t *testing.T) {
	src := os.Getenv("KILN_FHIR_PACKAGE")
	if src == "" {
		src = filepath.Join("..", "..", "..", "..", ".cache", "npm", "package")
	}
	if _, err := os.Stat(filepath.Join(src, "StructureDefinition-Patient.json")); err != nil {
		t.Skipf("official R4 package not in %s (see docs/fhir-model.md to fetch it)", src)
	}
	out := filepath.Join(t.TempDir(), "model.json.gz")
	if err := run(src, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "model.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/fhir/model.json.gz is stale: run go generate ./internal/fhir")
	}
}

func TestExpandValueSet(t *testing.T) {
	term := &terminology{
		valueSets:   map[string]*valueSet{},
		codeSystems: map[string]*codeSystem{"cs": {URL: "cs", Content: "complete", Concept: []concept{{Code: "a", Concept: []concept{{Code: "b"}}}}}, "frag": {URL: "frag", Content: "fragment"}},
	}
	add := func(url string, inc ...vsInclude) {
		v := &valueSet{URL: url}
		v.Compose = &struct {
			Include []vsInclude `json:"include"`
			Exclude []vsInclude `json:"exclude"`
		}{Include: inc}
		term.valueSets[url] = v
	}
	add("whole", vsInclude{System: "cs"})
	add("listed", vsInclude{System: "other", Concept: []struct {
		Code string `json:"code"`
	}{{Code: "x"}}})
	add("nested", vsInclude{ValueSet: []string{"whole|4.0.1", "listed"}})
	add("fragment", vsInclude{System: "frag"})
	for url, want := range map[string]string{"whole": "[a b]", "listed": "[x]", "nested": "[a b x]", "fragment": "not enumerable", "missing": "not enumerable"} {
		codes, ok := term.expand(url, 0)
		got := "not enumerable"
		if ok {
			got = fmtList(codes)
		}
		if got != want {
			t.Errorf("expand(%s) = %s, want %s", url, got, want)
		}
	}
}

func fmtList(s []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	b.WriteByte(']')
	return b.String()
}
