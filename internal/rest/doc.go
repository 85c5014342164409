// Package rest is the FHIR R4 HTTP API: routing of /fhir/{account}/...,
// content negotiation, FHIR headers (ETag, If-Match, Last-Modified,
// Location, Prefer), rendering of resources, Bundles and
// OperationOutcomes. It is the only package that speaks FHIR over HTTP.
//
// Each interaction has its own file (read.go, vread.go, create.go,
// update.go, delete.go, history.go, capabilities.go). Handlers parse the
// request, call package resources (and search), and render the result.
// Handlers never choose an error status themselves: every error goes
// through writeError (errors.go), the single place that maps errors to a
// status, an issue code and a details code, using errors.Is/As. A client
// mistake is always a 4xx; anything unclassified is a 500 and is logged.
package rest
