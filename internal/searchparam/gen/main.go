// Command gen regenerates internal/searchparam/params.jsonl from the official
// R4 definitions in npm hl7.fhir.r4.examples@4.0.1.
//
//	npm install --prefix .cache/fhirpath-oracle hl7.fhir.r4.examples@4.0.1
//	go run ./internal/searchparam/gen
//
// The package is CC0; only the fields search needs are kept.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	pkg := flag.String("pkg", filepath.Join(".cache", "fhirpath-oracle", "node_modules", "hl7.fhir.r4.examples"),
		"directory of the unpacked npm package hl7.fhir.r4.examples@4.0.1")
	out := flag.String("out", filepath.Join("internal", "searchparam", "params.jsonl"), "file to write")
	flag.Parse()
	data, err := Build(os.DirFS(*pkg))
	if err != nil {
		fmt.Fprintln(os.Stderr, "searchparam/gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "searchparam/gen:", err)
		os.Exit(1)
	}
}
