// Package store defines Kiln's storage interface and its errors. Engines live
// in sub-packages (store/sqlite, store/postgres); internal/store/storetest
// holds the one suite every engine must pass.
//
// The interface is expressed in FHIR-free terms: versions of opaque sealed
// bodies addressed by (account, type, id, versionId), blind index tokens,
// sealed sort values, and account records with compare-and-swap.
//
// The store is untrusted and never sees plaintext. Everything it holds apart
// from the metadata listed in DESIGN.md §3 (account name, resource type, id,
// versionId, lastUpdated, deleted flag, sizes) arrives already sealed by
// package seal. An engine must never log or index bodies, tokens or sort
// values in any way that would give meaning to them.
//
// All methods take a context first, are safe for concurrent use, and return
// errors wrapped with what failed; callers test them with errors.Is against
// the sentinels below. Extra abilities (bulk loading) are separate interfaces
// found by type assertion.
package store
