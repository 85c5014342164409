// Package fhir owns Kiln's FHIR R4 model: the element tables generated from
// the official StructureDefinitions (hl7.fhir.r4.examples@4.0.1), a strict
// JSON decoder for resources, and the structural validator used on create
// and update. It also answers type questions for the FHIRPath engine
// (ElementTypes, ChildTypePath) and the _summary renderer (IsSummary,
// IsMandatory, SummaryElements).
//
// What it must never do: speak HTTP, log, touch storage or keys, or hold
// mutable package state. The only package-level data is the embedded,
// read-only model table (model.json.gz), regenerated with go generate (see
// docs/fhir-model.md); every lookup goes through a *Model built by NewModel.
//
// Invariants:
//   - A *Model is immutable after NewModel and safe for concurrent use.
//   - Decode never panics, whatever the input, and keeps number text exact
//     (json.Number).
//   - Validate never panics and never modifies its input; its issues are
//     sorted deterministically (Expression, Code, Diagnostics) and carry a
//     FHIRPath Expression and a FHIR issue-type Code.
//   - FHIRPath invariants (the constraint[] of the definitions) are not
//     evaluated, except ele-1, dom-2 and the narrative rules txt-1/txt-2,
//     which are checked in Go; docs/fhir-model.md lists exactly what is
//     checked.
package fhir
