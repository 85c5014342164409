// Package postgres is the PostgreSQL engine of store.Store, for deployments
// where several stateless Kiln nodes share one database.
//
// It owns the Kiln tables in one PostgreSQL schema (the first schema on the
// connection's search_path, "public" by default): their versioned
// migrations, the transactions that keep commits atomic and race-safe
// across nodes, the store-wide commit sequence (Seq), named locks
// (session advisory locks) and the change notification on accounts
// (LISTEN/NOTIFY). It speaks to the server with pgx v5 and pgxpool.
//
// It must never see or log plaintext: bodies, tokens, sort values and
// account data arrive sealed and are stored as opaque bytea. Error messages
// name metadata (account, type, id, versionId) at most.
//
// Invariants:
//   - A Commit is one READ COMMITTED transaction. The current-pointer rows
//     of the written resources are locked (SELECT ... FOR UPDATE) before
//     any precondition is checked; a resource that does not exist yet is
//     claimed by inserting its pointer row, so two creators race on a
//     unique index and exactly one wins. Unique violations become
//     store.ErrConflict; serialization failures and deadlocks are retried a
//     few times and then become store.ErrConflict too.
//   - Seq is taken from a single-row counter (UPDATE ... RETURNING) as the
//     last step before COMMIT. The row lock is held until the commit is
//     durable, so Seq order is commit order across the whole database: a
//     reader that sees Seq n sees every commit with a smaller Seq.
//   - Commits hold a key-share lock on their account row, so DeleteAccount
//     waits for commits in flight and no commit lands after it.
//   - Times are stored as timestamptz with microsecond precision (Go times
//     are truncated to the microsecond before they are written).
//   - Migrations run in one transaction under a transaction-level advisory
//     lock, so nodes starting at once apply each step exactly once.
//
// See docs/postgres.md for the schema, the race-safety argument and notes on
// PostgreSQL-compatible engines.
package postgres
