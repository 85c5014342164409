// Package loader is the client behind `kiln load`: it loads FHIR Bundle
// files (.json, .json.gz) and NDJSON files (.ndjson, .ndjson.gz) into any
// FHIR server through its HTTP API.
//
// It owns file discovery (files, directories, globs), the conversion of
// NDJSON into transaction Bundles of PUTs (the bulk initial-load path), the
// worker pool, retries of transient failures (connection errors, 429 and
// 5xx, with exponential backoff and Retry-After), the progress line and the
// final Summary.
//
// It never talks to a store or reads keys: everything goes through the
// FHIR REST API, so it works against Kiln and against other servers. It
// never retries a 4xx other than 429: a rejected Bundle is reported, not
// resent. Randomness (backoff jitter) and time come from Config.
package loader
