// Package benchdriver is the load generator behind `kiln bench`: seeded,
// reproducible scenarios (create, read, update, search, mixed, transaction)
// run by N concurrent clients for a duration against any FHIR R4 base URL,
// reporting requests per second and latency percentiles.
//
// It owns the synthetic patient generator (Patient, Encounters,
// Observations and Conditions linked by references, as transaction
// Bundles with urn:uuid fullUrls) and the latency statistics.
//
// It never reads a store or keys: it speaks only the FHIR REST API, so the
// same run can be pointed at Kiln or at another server. Its randomness
// comes from Config.Seed (one PCG stream per client), so the same seed and
// concurrency send the same request sequence; the clock is Config.Now.
package benchdriver
