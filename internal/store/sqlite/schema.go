package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kilnhealth/kiln/internal/store"
)

// migrations are the numbered schema steps. migrations[i] takes the database
// from schema version i to i+1 (PRAGMA user_version). Steps are append-only:
// a released step is never edited, a change is a new step.
var migrations = []migration{
	// 1: the initial schema.
	{sql: `
CREATE TABLE accounts (
	id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a re-created name gets a new id
	name       TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,                  -- Unix microseconds, UTC
	data       BLOB    NOT NULL,                  -- opaque to the store (config + wrapped key ring)
	rev        INTEGER NOT NULL                   -- compare-and-swap row version
);

CREATE TABLE versions (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- store.Version.Seq: commit order, never reused
	acct         INTEGER NOT NULL,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version_id   INTEGER NOT NULL,
	last_updated INTEGER NOT NULL,                  -- Unix microseconds, UTC
	deleted      INTEGER NOT NULL,
	body         BLOB    NOT NULL                   -- sealed by package seal
);
CREATE UNIQUE INDEX versions_by_resource ON versions (acct, type, id, version_id);
CREATE INDEX versions_by_type ON versions (acct, type, seq);
CREATE INDEX versions_by_account ON versions (acct, seq);

-- One row per resource: the pointer to its current version, and the
-- encoded lists of its current tokens and sort slots (so replacing them is
-- a diff by primary key, with no secondary index on tokens).
CREATE TABLE current (
	acct       INTEGER NOT NULL,
	type       TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	version_id INTEGER NOT NULL,
	seq        INTEGER NOT NULL,
	deleted    INTEGER NOT NULL,
	tokens     BLOB    NOT NULL,
	sort_slots BLOB    NOT NULL,
	PRIMARY KEY (acct, type, id)
) WITHOUT ROWID;

CREATE TABLE tokens (
	acct  INTEGER NOT NULL,
	token BLOB    NOT NULL, -- blind HMAC token
	type  TEXT    NOT NULL,
	id    TEXT    NOT NULL,
	PRIMARY KEY (acct, token, type, id)
) WITHOUT ROWID;

CREATE TABLE sorts (
	acct  INTEGER NOT NULL,
	slot  BLOB    NOT NULL, -- blind token naming the parameter
	type  TEXT    NOT NULL,
	id    TEXT    NOT NULL,
	value BLOB    NOT NULL, -- sealed sort value
	PRIMARY KEY (acct, slot, type, id)
) WITHOUT ROWID;
`},
	// 2: deferred token indexing. Blind tokens are random, so writing them
	// into the tokens B-tree at commit dirtied ~20 random pages per create.
	// Commits now store a resource's tokens only in its current row; the
	// writer merges them into the tokens table later, in sorted batches.
	// indexed_tokens is what the tokens table holds for the resource, and
	// every current row with seq > index_state.indexed_seq may differ.
	{sql: `
ALTER TABLE current ADD COLUMN indexed_tokens BLOB NOT NULL DEFAULT x'';
UPDATE current SET indexed_tokens = tokens;
CREATE INDEX current_by_seq ON current (seq);
CREATE TABLE index_state (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	indexed_seq INTEGER NOT NULL -- every current row with seq <= this is in tokens
);
INSERT INTO index_state (id, indexed_seq) VALUES (1, (SELECT coalesce(max(seq), 0) FROM versions));
`},
	// 3: sort values move from the sorts table (keyed by slot and resource,
	// so each one landed on a random page) to one row per version, appended
	// with it. Sorts reads them through the current pointer.
	{sql: `CREATE TABLE version_sorts (
	seq   INTEGER PRIMARY KEY, -- the version's seq
	sorts BLOB    NOT NULL     -- encoded (blind slot, sealed value) pairs
);`, fn: moveSorts},
	// 4: posting segments. Merging tokens into one tokens B-tree keyed by
	// random HMAC values rewrote most of its pages on every merge, so
	// ingest slowed as the index grew. The index is now a sequence of
	// immutable segments, each holding, per account and token, the sorted
	// index stamps (ix) of the resources that had that token when the
	// segment was written; segments are appended in one run and compacted
	// in the background (segments.go). A stamp is valid only while it is
	// its resource's current ix, so updates and deletes need no removals.
	// Tokens of writes not yet in a segment wait in pending. A stamp is
	// the seq of the version that wrote the tokens, or a seq drawn from
	// the same sequence by ReplaceIndex: never reused.
	{sql: `
CREATE TABLE pending (
	ix      INTEGER PRIMARY KEY, -- index stamp
	acct    INTEGER NOT NULL,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	seq     INTEGER NOT NULL, -- the current version's seq when written
	deleted INTEGER NOT NULL,
	tokens  BLOB    NOT NULL  -- encoded list
);
CREATE TABLE segments (
	seg       INTEGER PRIMARY KEY,
	resources INTEGER NOT NULL, -- index stamps it holds (its size class)
	min_ix    INTEGER NOT NULL,
	max_ix    INTEGER NOT NULL
);
CREATE TABLE postings (
	acct  INTEGER NOT NULL,
	seg   INTEGER NOT NULL,
	token BLOB    NOT NULL, -- blind HMAC token
	ixs   BLOB    NOT NULL, -- ascending index stamps, uvarint deltas
	PRIMARY KEY (acct, seg, token)
) WITHOUT ROWID;
ALTER TABLE current ADD COLUMN ix INTEGER NOT NULL DEFAULT 0;
INSERT INTO pending (ix, acct, type, id, seq, deleted, tokens)
	SELECT seq, acct, type, id, seq, deleted, CASE WHEN deleted THEN x'' ELSE tokens END FROM current;
UPDATE current SET ix = seq;
CREATE UNIQUE INDEX current_by_ix ON current (ix);
DROP INDEX current_by_seq;
ALTER TABLE current DROP COLUMN tokens;
ALTER TABLE current DROP COLUMN indexed_tokens;
ALTER TABLE current DROP COLUMN sort_slots;
DROP TABLE tokens;
DROP TABLE index_state;
CREATE TABLE index_state (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	indexed_ix INTEGER NOT NULL -- every stamp <= this is in a segment (or superseded)
);
INSERT INTO index_state (id, indexed_ix) VALUES (1, 0);
`},
	// 5: Lookup validates every candidate stamp through current_by_ix, then
	// read seq and deleted from the current row: a second B-tree seek by
	// (acct, type, id) per candidate. The index now holds seq and deleted
	// too (and, current being WITHOUT ROWID, its primary key), so a stamp
	// is validated from the index alone. Every write that changes seq or
	// deleted also changes ix, so the entry costs no extra write. Stamps
	// stay unique by construction (one AUTOINCREMENT sequence).
	{sql: `
DROP INDEX current_by_ix;
CREATE INDEX current_by_ix ON current (ix, seq, deleted);
`},
}

// migration is one schema step: SQL, then optionally Go code, in one
// transaction.
type migration struct {
	sql string
	fn  func(ctx context.Context, conn *sql.Conn) error
}

// moveSorts copies each resource's sort rows into a version_sorts row for
// its current version, then drops the sorts table.
func moveSorts(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, `SELECT c.seq, s.slot, s.value FROM sorts s
		JOIN current c ON c.acct = s.acct AND c.type = s.type AND c.id = s.id ORDER BY c.seq, s.slot`)
	if err != nil {
		return err
	}
	bySeq := map[int64][]store.SortValue{}
	var order []int64
	for rows.Next() {
		var seq int64
		var sv store.SortValue
		if err := rows.Scan(&seq, &sv.Slot, &sv.Value); err != nil {
			rows.Close()
			return err
		}
		if _, ok := bySeq[seq]; !ok {
			order = append(order, seq)
		}
		bySeq[seq] = append(bySeq[seq], sv)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, seq := range order {
		if _, err := conn.ExecContext(ctx, "INSERT INTO version_sorts (seq, sorts) VALUES (?, ?)", seq, encodeSorts(bySeq[seq])); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "DROP TABLE sorts; UPDATE current SET sort_slots = x''")
	return err
}

// SchemaVersion is the schema version this build writes and reads.
func SchemaVersion() int { return len(migrations) }

// migrate brings the database on conn up to SchemaVersion, each step in its
// own transaction together with its user_version bump, so a crash leaves the
// database at a whole step. A database newer than this build is refused.
func migrate(ctx context.Context, conn *sql.Conn) error {
	for {
		var v int
		if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return fmt.Errorf("sqlite: read schema version: %w", err)
		}
		switch {
		case v == len(migrations):
			return nil
		case v > len(migrations) || v < 0:
			return fmt.Errorf("sqlite: database schema version %d is not supported by this build (latest %d)", v, len(migrations))
		}
		if err := step(ctx, conn, v); err != nil {
			return err
		}
	}
}

func step(ctx context.Context, conn *sql.Conn, from int) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: migrate to %d: begin: %w", from+1, err)
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	// Re-read inside the write lock: another handle may have migrated.
	var v int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: migrate: read schema version: %w", err)
	}
	if v != from {
		_, err := conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, migrations[from].sql); err != nil {
		return fmt.Errorf("sqlite: migrate to %d: %w", from+1, err)
	}
	if fn := migrations[from].fn; fn != nil {
		if err := fn(ctx, conn); err != nil {
			return fmt.Errorf("sqlite: migrate to %d: %w", from+1, err)
		}
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", from+1)); err != nil {
		return fmt.Errorf("sqlite: migrate to %d: set version: %w", from+1, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: migrate to %d: commit: %w", from+1, err)
	}
	return nil
}
