// Package multinode holds Kiln's multi-process integration tests: several
// real `kiln serve` processes (the binary built from cmd/kiln) on one
// PostgreSQL database, with a stand-alone `kiln vault serve` holding the
// customer-managed keys, driven only through their HTTP APIs and the kiln
// command line, as an operator would.
//
// It shows what DESIGN.md §4 and §6 promise for several nodes: a write on
// one node reads on every other; racing conditional creates across nodes
// yield one resource; a key rotation is rewrapped exactly once (one
// compare-and-swap wins, one key-rotated audit event); revocation and
// restore reach every node within one key-check interval; and, on a
// PostgreSQL cluster of its own, neither the pg_dump output nor any file
// of the cluster's data directory holds the plaintext written through
// the real stack.
//
// It has no non-test code: this file exists for the package comment. Its
// tests must never use a fake of a part they can run for real, never touch
// a database, cluster or directory they did not create, and skip with a
// message when KILN_TEST_POSTGRES is unset (start a cluster with
// `bash .ci/postgres.sh start && . /tmp/kiln-postgres/env`). The
// processes they start are stopped (SIGTERM, then SIGKILL) when each test
// ends.
package multinode
