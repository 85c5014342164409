package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhealth/kiln/internal/store"
)

const versionCols = `v.type, v.id, v.version_id, v.last_updated, v.deleted, v.body, v.seq`

func scanVersion(row pgx.Row) (store.Version, error) {
	var v store.Version
	if err := row.Scan(&v.Type, &v.ID, &v.VersionID, &v.LastUpdated, &v.Deleted, &v.Body, &v.Seq); err != nil {
		return store.Version{}, err
	}
	v.LastUpdated = v.LastUpdated.UTC()
	return v, nil
}

func collectVersions(rows pgx.Rows, err error) ([]store.Version, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Current returns the latest version of a resource (see store.Store).
func (s *Store) Current(ctx context.Context, account string, ref store.Ref) (store.Version, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return store.Version{}, s.fail("current", err)
	}
	defer done()
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionCols+`
		FROM kiln_current c JOIN kiln_versions v
		  ON v.account = c.account AND v.type = c.type AND v.id = c.id AND v.version_id = c.version_id
		WHERE c.account = $1 AND c.type = $2 AND c.id = $3`, account, ref.Type, ref.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Version{}, s.fail("current", fmt.Errorf("%s/%s in account %q: %w", ref.Type, ref.ID, account, store.ErrNotFound))
	}
	return v, s.fail("current", err)
}

// CurrentMany returns the latest versions of refs, in the order of refs,
// leaving out the missing ones (see store.Store).
func (s *Store) CurrentMany(ctx context.Context, account string, refs []store.Ref) ([]store.Version, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("current many", err)
	}
	defer done()
	types, ids := splitRefs(refs)
	found, err := collectVersions(s.pool.Query(ctx, `SELECT `+versionCols+`
		FROM kiln_current c JOIN kiln_versions v
		  ON v.account = c.account AND v.type = c.type AND v.id = c.id AND v.version_id = c.version_id
		WHERE c.account = $1 AND (c.type, c.id) IN (SELECT t, i FROM unnest($2::text[], $3::text[]) AS u(t, i))`,
		account, types, ids))
	if err != nil {
		return nil, s.fail("current many", err)
	}
	if len(found) == 0 {
		if err := accountExists(ctx, s.pool, account); err != nil {
			return nil, s.fail("current many", err)
		}
	}
	byRef := make(map[store.Ref]store.Version, len(found))
	for _, v := range found {
		byRef[store.Ref{Type: v.Type, ID: v.ID}] = v
	}
	out := make([]store.Version, 0, len(found))
	for _, r := range refs {
		if v, ok := byRef[r]; ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// VersionOf returns one version (see store.Store).
func (s *Store) VersionOf(ctx context.Context, account string, ref store.Ref, versionID int64) (store.Version, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return store.Version{}, s.fail("version", err)
	}
	defer done()
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionCols+` FROM kiln_versions v
		WHERE v.account = $1 AND v.type = $2 AND v.id = $3 AND v.version_id = $4`, account, ref.Type, ref.ID, versionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Version{}, s.fail("version", fmt.Errorf("%s/%s/_history/%d in account %q: %w", ref.Type, ref.ID, versionID, account, store.ErrNotFound))
	}
	return v, s.fail("version", err)
}

// sqlArgs builds a parameter list.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// historyWhere builds the filter of a history query over kiln_versions v.
// paging adds the BeforeSeq cursor.
func historyWhere(account string, q store.HistoryQuery, paging bool) (string, sqlArgs, error) {
	if q.ID != "" && q.Type == "" {
		return "", nil, errors.New("an id needs a type")
	}
	var args sqlArgs
	conds := []string{"v.account = " + args.add(account)}
	if q.Type != "" {
		conds = append(conds, "v.type = "+args.add(q.Type))
	}
	if q.ID != "" {
		conds = append(conds, "v.id = "+args.add(q.ID))
	}
	if !q.Since.IsZero() {
		// Stored times are whole microseconds: >= Since is >= ceil(Since).
		conds = append(conds, "v.last_updated >= "+args.add(usecCeil(q.Since)))
	}
	if !q.At.IsZero() {
		at := args.add(usec(q.At))
		conds = append(conds, "v.last_updated <= "+at,
			`NOT EXISTS (SELECT 1 FROM kiln_versions w
				WHERE w.account = v.account AND w.type = v.type AND w.id = v.id
				  AND w.last_updated <= `+at+` AND w.seq > v.seq)`)
	}
	if paging && q.BeforeSeq > 0 {
		conds = append(conds, "v.seq < "+args.add(q.BeforeSeq))
	}
	return strings.Join(conds, " AND "), args, nil
}

// History returns versions newest first, by Seq (see store.Store).
func (s *Store) History(ctx context.Context, account string, q store.HistoryQuery) ([]store.Version, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("history", err)
	}
	defer done()
	where, args, err := historyWhere(account, q, true)
	if err != nil {
		return nil, fmt.Errorf("postgres: history: %w", err)
	}
	sql := `SELECT ` + versionCols + ` FROM kiln_versions v WHERE ` + where + ` ORDER BY v.seq DESC`
	if q.Limit > 0 {
		sql += " LIMIT " + args.add(q.Limit)
	}
	out, err := collectVersions(s.pool.Query(ctx, sql, args...))
	if err != nil {
		return nil, s.fail("history", err)
	}
	if len(out) == 0 {
		if err := accountExists(ctx, s.pool, account); err != nil {
			return nil, s.fail("history", err)
		}
	}
	return out, nil
}

// CountHistory counts what History would return without Limit and
// BeforeSeq (see store.Store).
func (s *Store) CountHistory(ctx context.Context, account string, q store.HistoryQuery) (int, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return 0, s.fail("count history", err)
	}
	defer done()
	where, args, err := historyWhere(account, q, false)
	if err != nil {
		return 0, fmt.Errorf("postgres: count history: %w", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM kiln_versions v WHERE `+where, args...).Scan(&n); err != nil {
		return 0, s.fail("count history", err)
	}
	if n == 0 {
		if err := accountExists(ctx, s.pool, account); err != nil {
			return 0, s.fail("count history", err)
		}
	}
	return n, nil
}

// Lookup returns the current, non-deleted resources matching m, ordered by
// (type, id) (see store.Store). Each clause is an overlap (&&) of the
// resource's token array with the clause's tokens, answered by the GIN
// index; clauses are ANDed.
func (s *Store) Lookup(ctx context.Context, account string, m store.Match) ([]store.Ref, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("lookup", err)
	}
	defer done()
	var args sqlArgs
	conds := []string{"c.account = " + args.add(account), "NOT c.deleted"}
	if len(m.Types) > 0 {
		conds = append(conds, "c.type = ANY("+args.add(m.Types)+"::text[])")
	}
	if m.MaxSeq > 0 {
		conds = append(conds, "c.seq <= "+args.add(m.MaxSeq))
	}
	empty := false
	var overlaps []string
	for _, clause := range m.Clauses {
		if len(clause) == 0 {
			empty = true
			break
		}
		overlaps = append(overlaps, "tokens && "+args.add(clause)+"::bytea[]")
	}
	// The token conditions go into a materialised CTE of their own, so the
	// planner answers them from the GIN index whatever its statistics say:
	// right after a bulk load, before autovacuum has analysed the table, it
	// would otherwise expect one row for the account and type and filter
	// every row of the type by hand (160 ms instead of 1 ms on Synthea).
	// Tokens are keyed per account, so the CTE holds only this account's
	// rows; the outer conditions check it all the same.
	from := "kiln_current c"
	if len(overlaps) > 0 {
		from = "(WITH m AS MATERIALIZED (SELECT account, type, id, seq, deleted FROM kiln_current WHERE " +
			strings.Join(overlaps, " AND ") + ") SELECT * FROM m) c"
	}
	var out []store.Ref
	if !empty {
		rows, err := s.pool.Query(ctx, "SELECT c.type, c.id FROM "+from+" WHERE "+strings.Join(conds, " AND ")+" ORDER BY c.type, c.id", args...)
		if err != nil {
			return nil, s.fail("lookup", err)
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Ref, error) {
			var r store.Ref
			err := row.Scan(&r.Type, &r.ID)
			return r, err
		})
		if err != nil {
			return nil, s.fail("lookup", err)
		}
	}
	if len(out) == 0 {
		if err := accountExists(ctx, s.pool, account); err != nil {
			return nil, s.fail("lookup", err)
		}
	}
	return out, nil
}

// Sorts returns the sealed sort values stored under slot for refs (see
// store.Store). Refs without a value are absent from the map.
func (s *Store) Sorts(ctx context.Context, account string, slot []byte, refs []store.Ref) (map[store.Ref][]byte, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("sorts", err)
	}
	defer done()
	types, ids := splitRefs(refs)
	rows, err := s.pool.Query(ctx, `SELECT type, id, sort_values[array_position(sort_slots, $2)] FROM kiln_current
		WHERE account = $1 AND $2 = ANY(sort_slots) AND (type, id) IN (SELECT t, i FROM unnest($3::text[], $4::text[]) AS u(t, i))`,
		account, slot, types, ids)
	if err != nil {
		return nil, s.fail("sorts", err)
	}
	out := make(map[store.Ref][]byte)
	for rows.Next() {
		var r store.Ref
		var v []byte
		if err := rows.Scan(&r.Type, &r.ID, &v); err != nil {
			rows.Close()
			return nil, s.fail("sorts", err)
		}
		out[r] = v
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("sorts", err)
	}
	if len(out) == 0 {
		if err := accountExists(ctx, s.pool, account); err != nil {
			return nil, s.fail("sorts", err)
		}
	}
	return out, nil
}

// Scan lists current non-deleted resources in (type, id) order after the
// given ref (see store.Store). A limit <= 0 means no limit.
func (s *Store) Scan(ctx context.Context, account string, typ string, after store.Ref, limit int) ([]store.Version, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("scan", err)
	}
	defer done()
	var args sqlArgs
	sql := `SELECT ` + versionCols + ` FROM kiln_current c JOIN kiln_versions v
		  ON v.account = c.account AND v.type = c.type AND v.id = c.id AND v.version_id = c.version_id
		WHERE c.account = ` + args.add(account) + ` AND NOT c.deleted
		  AND (c.type, c.id) > (` + args.add(after.Type) + `, ` + args.add(after.ID) + `)`
	if typ != "" {
		sql += " AND c.type = " + args.add(typ)
	}
	sql += " ORDER BY c.type, c.id"
	if limit > 0 {
		sql += " LIMIT " + args.add(limit)
	}
	out, err := collectVersions(s.pool.Query(ctx, sql, args...))
	if err != nil {
		return nil, s.fail("scan", err)
	}
	if len(out) == 0 {
		if err := accountExists(ctx, s.pool, account); err != nil {
			return nil, s.fail("scan", err)
		}
	}
	return out, nil
}
