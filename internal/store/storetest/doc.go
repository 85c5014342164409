// Package storetest holds the one test suite every store.Store engine must
// pass (Kiln's ExerciseBackend), and the plaintext scan helper that the
// no-plaintext tests use on store files and dumps.
//
// An engine's own test builds a fresh database per subtest and calls Run:
//
//	storetest.Run(t, storetest.Engine{
//		NewDB: func(t *testing.T) storetest.Opener {
//			dir := t.TempDir()
//			return func(t *testing.T) store.Store { return mustOpen(t, dir) }
//		},
//	})
//
// The suite pins one behaviour per subtest: round trips, not-found errors,
// compare-and-swap preconditions, atomicity of multi-write commits, delete
// markers, history paging, token lookup, sorts, re-indexing, scans, accounts,
// account isolation, locks, two handles competing for one compare-and-swap,
// concurrency and Close.
//
// This package only reads what engines return; it never depends on an
// engine's internals, and it must stay fast (the whole suite runs in seconds
// on two cores).
package storetest
