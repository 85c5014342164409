//go:build race

package fhir_test

// raceEnabled is true in -race builds, where the differential tests check a
// smaller deterministic sample (the oracle is very slow under the race
// detector, and the full sets add nothing to race coverage).
const raceEnabled = true
