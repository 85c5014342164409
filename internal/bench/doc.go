// Package bench holds Go benchmarks of Kiln's whole request paths (create,
// read and update through HTTP and through the resource service below it)
// and the raw SQLite insert ceiling they are compared with. It has no
// non-test code; see docs/benchmarks.md for how to run it and the figures.
package bench
