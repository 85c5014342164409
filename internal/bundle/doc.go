// Package bundle processes FHIR batch and transaction Bundles posted to an
// account's base (POST /fhir/{account}). It is plugged into package rest as
// rest.Config.Bundles.
//
// It owns the Bundle semantics of the R4 http specification: entry
// validation, processing order (DELETE, POST, PUT/PATCH, GET), the
// assignment of server ids to POSTed entries, the rewriting of urn:uuid and
// fullUrl references to the assigned Type/id anywhere in a resource
// (extensions and contained resources included), conditional create,
// update, delete and conditional references through a Resolver, JSON Patch
// entries, and the batch-response and transaction-response Bundles.
//
// Invariants:
//   - A transaction is atomic: every write is prepared (validated, indexed,
//     sealed) first and all are stored by one resources.Service.Commit, so a
//     failure of any entry leaves nothing written. The error names the
//     failing entry as Bundle.entry[i], i being its index in the request.
//   - A batch entry's failure affects that entry only; each entry gets its
//     own status and OperationOutcome.
//   - Work is linear in the number of entries: identities and fullUrls are
//     looked up in maps, each conditional reference is resolved once.
//   - A well-formed Bundle body is decoded once, resources included
//     (decodeStrict); a body the single pass cannot answer exactly as the
//     lenient encoding/json envelope decoding would (malformed JSON,
//     duplicate or case-folded keys, odd types, PATCH entries) takes that
//     lenient path, so clients see the same errors either way. Each
//     resource is walked once to find its references.
//   - Errors map to statuses through rest's one classifier (rest.ErrorOutcome
//     and rest.WriteError); a client error is never a 5xx.
//
// It never touches the store except through resources.Service (writes,
// reads) and the named lock it takes to make conditional creates race-free;
// it never sees ciphertext or keys beyond passing the account's key handle
// to resources. GET entries are answered by the FHIR API itself (Config.Reads),
// so reads and searches inside a batch behave exactly as direct requests.
package bundle
