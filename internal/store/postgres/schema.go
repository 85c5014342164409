package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one step of the schema. Steps are applied in order, each
// exactly once, and recorded in kiln_schema_migrations.
type migration struct {
	version     int
	description string
	statements  []string
}

// Advisory-lock keys. The two-int form used for migrations lives in a key
// space that does not overlap the one-bigint form used by Lock.
const (
	lockClassKiln    = 0x6b696c6e // "kiln"
	lockObjMigration = 1
)

// migrations returns the schema steps. Identifiers, types and clauses are
// kept to what PostgreSQL-compatible engines accept where practical (see
// docs/postgres.md). Text columns that are ordered use COLLATE "C" so that
// order is bytewise, as in Go and in the SQLite engine, whatever the
// database's default collation.
func migrations() []migration {
	return []migration{{
		version:     1,
		description: "accounts, versions, current pointers, tokens, sorts, commit counter",
		statements: []string{
			`CREATE TABLE kiln_accounts (
				name       text COLLATE "C" NOT NULL PRIMARY KEY,
				created_at timestamptz NOT NULL,
				data       bytea NOT NULL,
				rev        bigint NOT NULL
			)`,
			`CREATE TABLE kiln_versions (
				account      text COLLATE "C" NOT NULL,
				type         text COLLATE "C" NOT NULL,
				id           text COLLATE "C" NOT NULL,
				version_id   bigint NOT NULL,
				seq          bigint NOT NULL,
				last_updated timestamptz NOT NULL,
				deleted      boolean NOT NULL,
				body         bytea NOT NULL,
				PRIMARY KEY (account, type, id, version_id)
			)`,
			`CREATE UNIQUE INDEX kiln_versions_seq ON kiln_versions (account, seq)`,
			`CREATE INDEX kiln_versions_type_seq ON kiln_versions (account, type, seq)`,
			`CREATE TABLE kiln_current (
				account    text COLLATE "C" NOT NULL,
				type       text COLLATE "C" NOT NULL,
				id         text COLLATE "C" NOT NULL,
				version_id bigint NOT NULL,
				seq        bigint NOT NULL,
				deleted    boolean NOT NULL,
				PRIMARY KEY (account, type, id)
			)`,
			`CREATE TABLE kiln_tokens (
				account text COLLATE "C" NOT NULL,
				token   bytea NOT NULL,
				type    text COLLATE "C" NOT NULL,
				id      text COLLATE "C" NOT NULL,
				PRIMARY KEY (account, token, type, id)
			)`,
			`CREATE INDEX kiln_tokens_resource ON kiln_tokens (account, type, id)`,
			`CREATE TABLE kiln_sorts (
				account text COLLATE "C" NOT NULL,
				type    text COLLATE "C" NOT NULL,
				id      text COLLATE "C" NOT NULL,
				slot    bytea NOT NULL,
				value   bytea NOT NULL,
				PRIMARY KEY (account, type, id, slot)
			)`,
			`CREATE TABLE kiln_seq (
				id    integer NOT NULL PRIMARY KEY CHECK (id = 1),
				value bigint NOT NULL
			)`,
			`INSERT INTO kiln_seq (id, value) VALUES (1, 0)`,
		},
	}, {
		// A resource's ~60 tokens and ~12 sort values were as many rows,
		// each with primary-key and resource-index entries keyed by random
		// HMAC values: ~170 WAL records and ~47 KB of WAL per Synthea
		// resource, most of PostgreSQL's CPU during ingest. They now live
		// on the resource's current row as arrays, and a GIN index over
		// the tokens (its pending list batches the insertions) answers
		// Lookup with && (overlap). Sort slots are kept sorted, and each
		// value sits at its slot's position.
		version:     2,
		description: "tokens and sort values as arrays on kiln_current, GIN index on the tokens",
		statements: []string{
			`ALTER TABLE kiln_current ADD COLUMN tokens bytea[] NOT NULL DEFAULT '{}'`,
			`ALTER TABLE kiln_current ADD COLUMN sort_slots bytea[] NOT NULL DEFAULT '{}'`,
			`ALTER TABLE kiln_current ADD COLUMN sort_values bytea[] NOT NULL DEFAULT '{}'`,
			`UPDATE kiln_current c SET tokens = t.tokens
				FROM (SELECT account, type, id, array_agg(token ORDER BY token) AS tokens FROM kiln_tokens GROUP BY account, type, id) t
				WHERE c.account = t.account AND c.type = t.type AND c.id = t.id`,
			`UPDATE kiln_current c SET sort_slots = s.slots, sort_values = s.vals
				FROM (SELECT account, type, id, array_agg(slot ORDER BY slot) AS slots, array_agg(value ORDER BY slot) AS vals
					FROM kiln_sorts GROUP BY account, type, id) s
				WHERE c.account = s.account AND c.type = s.type AND c.id = s.id`,
			`DROP TABLE kiln_tokens`,
			`DROP TABLE kiln_sorts`,
			// Every Lookup reads the whole pending list: at the default
			// limit of 4 MB a date range (~40 tokens) took 180 ms right
			// after a bulk load, 10 ms at 256 kB, for ~8% of ingest speed.
			`CREATE INDEX kiln_current_tokens ON kiln_current USING gin (tokens) WITH (gin_pending_list_limit = 256)`,
			// Room on each page, so the pointer update that follows the
			// index update of a commit can stay on the page (a HOT update:
			// no new index entries).
			`ALTER TABLE kiln_current SET (fillfactor = 70)`,
		},
	}}
}

// schemaVersion is the newest schema this binary knows.
func schemaVersion() int {
	m := migrations()
	return m[len(m)-1].version
}

// migrate brings the schema up to date. Everything happens in one
// transaction that first takes a transaction-level advisory lock, so
// concurrent Opens (several nodes starting at once) queue, and the second
// one finds the work done. PostgreSQL DDL is transactional: a failed step
// leaves nothing behind.
func migrate(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	return migrateTo(ctx, pool, schemaVersion())
}

// migrateTo is migrate up to version target and no further (tests use it
// to build the schema an older binary left).
func migrateTo(ctx context.Context, pool *pgxpool.Pool, target int) (int, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(lockClassKiln), int32(lockObjMigration)); err != nil {
		return 0, fmt.Errorf("take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS kiln_schema_migrations (
			version     integer NOT NULL PRIMARY KEY,
			description text NOT NULL,
			applied_at  timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return 0, fmt.Errorf("create kiln_schema_migrations: %w", err)
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM kiln_schema_migrations`).Scan(&have); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	if have > schemaVersion() {
		return 0, fmt.Errorf("the database schema is version %d, newer than this binary knows (%d): upgrade Kiln", have, schemaVersion())
	}
	for _, m := range migrations() {
		if m.version <= have || m.version > target {
			continue
		}
		for i, stmt := range m.statements {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return 0, fmt.Errorf("migration %d statement %d: %w", m.version, i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kiln_schema_migrations (version, description) VALUES ($1, $2)`, m.version, m.description); err != nil {
			return 0, fmt.Errorf("record migration %d: %w", m.version, err)
		}
		have = m.version
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit migrations: %w", err)
	}
	return have, nil
}
