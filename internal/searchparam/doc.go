// Package searchparam owns the table of the 1,375 FHIR R4 SearchParameter
// definitions, generated from the official Bundle-searchParams.json of npm
// hl7.fhir.r4.examples@4.0.1 by ./gen and embedded in the binary.
//
// It answers "which parameters exist for this resource type, and what are
// their type, FHIRPath expression, targets and composite components". It
// never evaluates expressions (package fhirpath does), never touches the
// network or disk at run time, and holds no global mutable state: Load
// decodes the embedded table into a fresh, read-only *Registry.
//
// Invariants: the table is exactly the R4 definitions (a test compares it
// with the npm package when that is installed); parameters whose base is
// Resource apply to every resource type, and those whose base is
// DomainResource to every resource type except Bundle, Binary and
// Parameters; (base, code) pairs are unique.
package searchparam
