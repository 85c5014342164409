package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
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
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = migrateTo(ctx, pool, version)
	return err
}
