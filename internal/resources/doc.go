// Package resources reads and writes the FHIR resources of an account. It
// is the one path by which resource data enters or leaves the store:
//
//	write: decode -> validate (fhir) -> assign id/versionId/lastUpdated ->
//	       index (blind tokens and sealed sort values) -> seal the body ->
//	       one store.Commit with a version precondition
//	read:  store -> open (decrypt and verify) -> JSON bytes
//
// It owns FHIR versioning rules: server-assigned ids, versionId and
// meta.lastUpdated, update-as-create, If-Match preconditions, soft delete
// (a delete marker version), and "an identical update creates no version".
//
// It never speaks HTTP: errors are typed (ErrNotFound, *GoneError,
// *PreconditionError, *InvalidError, ...) and package rest maps them to
// statuses and OperationOutcomes in one place. It never stores plaintext:
// every body is sealed under the account's keys before it reaches the store,
// and the keys are fetched from accounts for every operation, so an account
// whose key access is lost can neither be read nor written.
package resources
