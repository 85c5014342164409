// Package sqlite is Kiln's embedded store engine: store.Store on one SQLite
// file (modernc.org/sqlite, pure Go) in WAL mode.
//
// It owns the SQLite schema and its numbered migrations, the single writer
// with group commit, the pool of read connections, and the in-process named
// locks. docs/storage.md describes the schema with an example, and the
// durability argument.
//
// Invariants:
//   - One writer. Every change (Commit, ReplaceIndex, account changes) is a
//     request to one goroutine that owns the only write connection. It takes
//     every request waiting in its queue, applies them in one SQLite
//     transaction, each inside its own SAVEPOINT (so one caller's failed
//     precondition rolls back only that caller's writes), commits once, and
//     only then answers the callers: one fsync per group.
//   - Checkpoints (WAL into the database file) run on a connection of their
//     own, never on the writer.
//   - Durable on return. With the default Synchronous "FULL", a Commit that
//     returned nil has been fsynced to the WAL and survives a crash or power
//     loss. "NORMAL" is an explicit, documented relaxation: it survives a
//     process crash (kill -9) but not a power loss.
//   - Deferred token indexing. A commit stores a resource's blind tokens in
//     its current row only; the writer merges them into the token index in
//     sorted batches. Every current row with seq <= index_state.indexed_seq
//     is merged (its tokens rows equal indexed_tokens); Lookup matches the
//     index for those and the current rows themselves for the rest.
//   - Seq is the versions table's AUTOINCREMENT rowid: strictly increasing in
//     commit order and never reused, not even after DeleteAccount.
//   - The database file belongs to one process. Lock is a set of in-process
//     named mutexes per Store; two processes (or two Stores on one file) do
//     not exclude each other's Lock holders, though their commits stay
//     correct: SQLite's own file locking serialises writers, and every
//     precondition is checked inside the write transaction.
//
// The store never sees plaintext and must never log bodies, tokens or sort
// values. Its only plaintext columns are the metadata DESIGN.md §3 allows:
// account names, resource type, id, versionId, lastUpdated, the deleted flag
// and sizes (implicitly, as blob lengths).
package sqlite
