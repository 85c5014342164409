// Package fhirpath owns the subset of FHIRPath (http://hl7.org/fhirpath/N1)
// that FHIR R4 search parameters need: it compiles an expression once and
// evaluates it many times over a JSON resource decoded as map[string]any,
// []any, string, bool and json.Number (encoding/json with UseNumber).
//
// It must never do I/O: resolve() decides a reference's target type from the
// reference text alone and never fetches anything. It never panics on any
// input expression or resource: bad expressions give a *SyntaxError (with a
// byte position) or an *UnsupportedError; evaluation problems the
// specification calls errors (for example "is" applied to several items)
// give an *EvalError. It holds no global mutable state; a compiled *Expr is
// immutable and safe for concurrent use.
//
// Invariants: every expression of the 1,375 R4 SearchParameter definitions
// (and their composite components) compiles; results agree with the npm
// fhirpath@5.2.2 reference implementation on the R4 examples and Synthea
// data, except for the documented differences in docs/fhirpath.md (notably
// "as" over several items filters like ofType instead of failing).
//
// For callers that evaluate the same expressions over many resources (the
// search indexer), Expr.RootElements and Expr.ForType analyse an
// expression for one resource type (which elements it starts from; which
// union branches can yield nothing), and an Evaluator reuses its working
// memory; all three give exactly the results of Evaluate.
//
// Element types come from an optional Model (the R4 model in internal/fhir
// implements it). Without one, types are inferred from JSON: choice-type keys
// (valueQuantity is a Quantity), resourceType, and the JSON kind of
// primitives.
package fhirpath
