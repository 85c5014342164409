package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// UsePlainSequence makes s take Seq from a plain PostgreSQL sequence
// instead of the commit counter, for the benchmark that measures what
// commit-order Seq costs. Seq is then unique but not in commit order, and
// only single-write commits are correct. The sequence must exist.
func UsePlainSequence(s *Store, sequence string) {
	s.seqSQL = `SELECT nextval('` + sequence + `') + $1::bigint - 1`
}

// ApplyMigrationsUpTo brings the schema of the database at url to version
// (and no further), as an older binary would have left it, so a test can
// fill it and check what a later Open migrates.
func ApplyMigrationsUpTo(ctx context.Context, url string, version int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE kiln_schema_migrations (
			version     integer NOT NULL PRIMARY KEY,
			description text NOT NULL,
			applied_at  timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	for _, m := range migrations() {
		if m.version > version {
			break
		}
		for _, stmt := range m.statements {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", m.version, err)
			}
		}
		if _, err := conn.Exec(ctx, `INSERT INTO kiln_schema_migrations (version, description) VALUES ($1, $2)`, m.version, m.description); err != nil {
			return err
		}
	}
	return nil
}
