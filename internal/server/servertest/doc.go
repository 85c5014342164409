// Package servertest starts a real, in-process Kiln server for black-box
// tests: the full wiring of server.New over a fresh SQLite file in a
// temporary data directory (or, with KILN_TEST_ENGINE=postgres, a fresh
// PostgreSQL schema), with real sealing and the real account registry,
// served over loopback HTTP by httptest.
//
// Typical use:
//
//	inst := servertest.New(t, server.Options{})
//	resp := inst.Do(t, "POST", "/fhir/default/Patient", `{"resourceType":"Patient"}`)
//	resp.Want(t, 201)
//
// or, when only the server and its URL are needed:
//
//	srv, baseURL := servertest.Start(t, server.Options{})
//
// What it offers:
//   - Instance.Do / Try send a request (path or absolute URL; body as
//     string, []byte, io.Reader (chunked) or any JSON value) and read the
//     whole response; Try returns errors instead of failing t, for worker
//     goroutines.
//   - Response.Want checks the status, Response.JSON decodes the body, and
//     Response.Outcome checks that an error is an OperationOutcome with the
//     FHIR content type and returns its issues.
//   - Instance.Base gives an account's FHIR base URL; Files lists every file
//     under a data directory for plaintext scans (with storetest.FindStrings).
//   - A test that restarts a server on the same data must pass the same
//     Options.Store to every start (see StoreFor), because each start on
//     PostgreSQL otherwise gets a fresh schema.
//
// It owns nothing but test scaffolding. It must never replace a real
// component with a fake, share state between tests, or use
// http.DefaultClient. Every instance is closed by t.Cleanup (Close is
// idempotent, so a test may stop the server early, e.g. to scan its files).
package servertest
