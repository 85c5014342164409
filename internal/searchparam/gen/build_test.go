package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestTableIsCurrent regenerates the table from the npm package and compares
// it byte for byte with the committed one.
func TestTableIsCurrent(t *testing.T) {
	pkg := filepath.Join("..", "..", "..", ".cache", "fhirpath-oracle", "node_modules", "hl7.fhir.r4.examples")
	if _, err := os.Stat(filepath.Join(pkg, "Bundle-searchParams.json")); err != nil {
		t.Skip("npm package missing; run: npm install --prefix .cache/fhirpath-oracle fhirpath@5.2.2 hl7.fhir.r4.examples@4.0.1")
	}
	got, err := Build(os.DirFS(pkg))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "params.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/searchparam/params.jsonl is stale: run go run ./internal/searchparam/gen")
	}
}
