// Package search owns FHIR R4 search over the blind index: it extracts the
// values of every R4 SearchParameter from a resource (with the official
// FHIRPath expressions, through package fhirpath), turns them into keyed
// tokens and sealed sort values on write (Indexer, which implements
// resources.Indexer), and answers searches (Searcher, which implements
// rest.Searcher): parse the query, turn each criterion into token OR-sets,
// ask the store for candidates, fetch and decrypt them, apply the exact FHIR
// semantics (the post-filter), sort, page, include and render the Bundle.
//
// It must never hand the store a plaintext value: everything it writes is
// an HMAC token from seal.AccountKeys (Token, AppendTokens) or a value
// sealed by it (Seal, SealUncompressed for sort values). The indexer's
// pooled scratch holds plaintext values only while one Index call runs and
// is cleared before reuse. It never panics on any query: malformed input is a
// *resources.InvalidError (400) naming the parameter, and unsupported
// features are reported with issue code not-supported.
//
// Invariants:
//   - the token path never loses a match: for every criterion, the tokens
//     of a query value are present on every resource that the post-filter
//     accepts (the oracle test checks this against brute force);
//   - when a criterion's tokens are exact (plan reports so), the post-filter
//     is skipped for it, so token semantics and post-filter semantics must
//     agree exactly;
//   - page tokens are bound to the account, the query and a snapshot
//     (the store's commit sequence) by an HMAC; a changed token is a 400.
//
// docs/search.md describes the token scheme, planning and costs.
package search
