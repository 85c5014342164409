// Package manage is the management API (/management/...), the health
// endpoint (/health) and, later, the web console. It lets operators create,
// list, inspect, re-key, check and delete accounts, and see key health.
//
// Handlers are thin: they decode the request, call package accounts, and
// render JSON. Every error goes through one mapping (errors.go) to a status
// and a body {"error":{"code","message"}}; a client mistake is never a 5xx.
// The package never touches resource data.
package manage
