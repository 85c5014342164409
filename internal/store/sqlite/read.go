package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kilnhealth/kiln/internal/store"
)

// readStmts are the hot read statements, prepared once on the read pool.
type readStmts struct {
	ping, acct, current, versionOf, getAccount, listAccounts *sql.Stmt
	indexedIx, tail                                          *sql.Stmt
}

const versionCols = "v.type, v.id, v.seq, v.version_id, v.last_updated, v.deleted, v.body"

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&r.ping, "SELECT 1"},
		{&r.acct, "SELECT id FROM accounts WHERE name = ?"},
		{&r.current, "SELECT " + versionCols + ` FROM accounts a
			JOIN current c ON c.acct = a.id AND c.type = ? AND c.id = ?
			JOIN versions v ON v.seq = c.seq
			WHERE a.name = ?`},
		{&r.versionOf, "SELECT " + versionCols + ` FROM accounts a
			JOIN versions v ON v.acct = a.id AND v.type = ? AND v.id = ? AND v.version_id = ?
			WHERE a.name = ?`},
		{&r.getAccount, "SELECT name, created_at, data, rev FROM accounts WHERE name = ?"},
		{&r.listAccounts, "SELECT name, created_at, data, rev FROM accounts ORDER BY name"},
		{&r.indexedIx, "SELECT indexed_ix FROM index_state WHERE id = 1"},
		{&r.tail, "SELECT ix, acct, type, id, seq, deleted, tokens FROM pending WHERE ix > ? ORDER BY ix"},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", p.sql, err)
		}
		*p.dst = st
	}
	return nil
}

func (r *readStmts) close() {
	for _, st := range []*sql.Stmt{r.ping, r.acct, r.current, r.versionOf, r.getAccount, r.listAccounts, r.indexedIx, r.tail} {
		if st != nil {
			st.Close()
		}
	}
}

type scanner interface{ Scan(...any) error }

func scanVersion(row scanner) (store.Version, error) {
	var v store.Version
	var lu int64
	if err := row.Scan(&v.Type, &v.ID, &v.Seq, &v.VersionID, &lu, &v.Deleted, &v.Body); err != nil {
		return store.Version{}, err
	}
	v.LastUpdated = fromMicros(lu)
	return v, nil
}

func scanAccount(row scanner) (store.Account, error) {
	var a store.Account
	var created int64
	if err := row.Scan(&a.Name, &created, &a.Data, &a.Rev); err != nil {
		return store.Account{}, err
	}
	a.CreatedAt = fromMicros(created)
	return a, nil
}

// acctID resolves an account name; store.ErrNotFound when absent.
func (s *Store) acctID(ctx context.Context, account string) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("sqlite: account %q: %w", account, store.ErrClosed)
	}
	var id int64
	err := s.r.acct.QueryRowContext(ctx, account).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: account %q: %w", account, store.ErrNotFound)
	}
	if err != nil {
		return 0, s.wrap(err, "account %q", account)
	}
	return id, nil
}

// Current returns the latest version of ref, delete markers included.
func (s *Store) Current(ctx context.Context, account string, ref store.Ref) (store.Version, error) {
	if s.closed.Load() {
		return store.Version{}, fmt.Errorf("sqlite: current: %w", store.ErrClosed)
	}
	key := cacheKey(account, ref)
	if v, ok := s.vcache.get(key); ok {
		return v, nil
	}
	gen := s.vcache.generation()
	v, err := scanVersion(s.r.current.QueryRowContext(ctx, ref.Type, ref.ID, account))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Version{}, fmt.Errorf("sqlite: current %s/%s/%s: %w", account, ref.Type, ref.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Version{}, s.wrap(err, "current %s/%s/%s", account, ref.Type, ref.ID)
	}
	s.vcache.put(key, v, gen)
	return v, nil
}

// VersionOf returns one version of ref.
func (s *Store) VersionOf(ctx context.Context, account string, ref store.Ref, versionID int64) (store.Version, error) {
	if s.closed.Load() {
		return store.Version{}, fmt.Errorf("sqlite: version: %w", store.ErrClosed)
	}
	v, err := scanVersion(s.r.versionOf.QueryRowContext(ctx, ref.Type, ref.ID, versionID, account))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Version{}, fmt.Errorf("sqlite: version %s/%s/%s/%d: %w", account, ref.Type, ref.ID, versionID, store.ErrNotFound)
	}
	if err != nil {
		return store.Version{}, s.wrap(err, "version %s/%s/%s/%d", account, ref.Type, ref.ID, versionID)
	}
	return v, nil
}

// refChunk bounds the (type, id) pairs bound in one statement.
const refChunk = 400

// refsIn returns "(?,?),(?,?)..." for n refs and appends their values to args.
func refsIn(refs []store.Ref, args []any) (string, []any) {
	var b strings.Builder
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
		args = append(args, r.Type, r.ID)
	}
	return b.String(), args
}

// CurrentMany returns the current versions of refs in the order of refs,
// leaving out refs that do not exist.
func (s *Store) CurrentMany(ctx context.Context, account string, refs []store.Ref) ([]store.Version, error) {
	acct, err := s.acctID(ctx, account)
	if err != nil {
		return nil, err
	}
	found := make(map[store.Ref]store.Version, len(refs))
	for start := 0; start < len(refs); start += refChunk {
		chunk := refs[start:min(start+refChunk, len(refs))]
		in, args := refsIn(chunk, []any{acct})
		rows, err := s.rdb.QueryContext(ctx, "SELECT "+versionCols+` FROM current c
			JOIN versions v ON v.seq = c.seq
			WHERE c.acct = ? AND (c.type, c.id) IN (VALUES `+in+")", args...)
		if err != nil {
			return nil, s.wrap(err, "current many %s", account)
		}
		for rows.Next() {
			v, err := scanVersion(rows)
			if err != nil {
				rows.Close()
				return nil, s.wrap(err, "current many %s", account)
			}
			found[store.Ref{Type: v.Type, ID: v.ID}] = v
		}
		if err := rows.Close(); err != nil {
			return nil, s.wrap(err, "current many %s", account)
		}
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err, "current many %s", account)
		}
	}
	out := make([]store.Version, 0, len(found))
	for _, r := range refs {
		if v, ok := found[r]; ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// historyWhere builds the filter of a history query (without BeforeSeq and
// Limit) over versions v.
func historyWhere(acct int64, q store.HistoryQuery) (string, []any) {
	where := []string{"v.acct = ?"}
	args := []any{acct}
	if q.Type != "" {
		where = append(where, "v.type = ?")
		args = append(args, q.Type)
		if q.ID != "" {
			where = append(where, "v.id = ?")
			args = append(args, q.ID)
		}
	}
	if !q.Since.IsZero() {
		where = append(where, "v.last_updated >= ?")
		args = append(args, micros(q.Since))
	}
	if !q.At.IsZero() {
		at := micros(q.At)
		where = append(where, `v.last_updated <= ? AND NOT EXISTS (SELECT 1 FROM versions w
			WHERE w.acct = v.acct AND w.type = v.type AND w.id = v.id AND w.seq > v.seq AND w.last_updated <= ?)`)
		args = append(args, at, at)
	}
	return strings.Join(where, " AND "), args
}

// History returns versions newest first.
func (s *Store) History(ctx context.Context, account string, q store.HistoryQuery) ([]store.Version, error) {
	if q.ID != "" && q.Type == "" {
		return nil, fmt.Errorf("sqlite: history: an id needs a type")
	}
	acct, err := s.acctID(ctx, account)
	if err != nil {
		return nil, err
	}
	where, args := historyWhere(acct, q)
	if q.BeforeSeq > 0 {
		where += " AND v.seq < ?"
		args = append(args, q.BeforeSeq)
	}
	query := "SELECT " + versionCols + " FROM versions v WHERE " + where + " ORDER BY v.seq DESC"
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(err, "history %s", account)
	}
	defer rows.Close()
	var out []store.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, s.wrap(err, "history %s", account)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "history %s", account)
	}
	return out, nil
}

// CountHistory counts what History would return without Limit and
// BeforeSeq.
func (s *Store) CountHistory(ctx context.Context, account string, q store.HistoryQuery) (int, error) {
	if q.ID != "" && q.Type == "" {
		return 0, fmt.Errorf("sqlite: count history: an id needs a type")
	}
	acct, err := s.acctID(ctx, account)
	if err != nil {
		return 0, err
	}
	where, args := historyWhere(acct, q)
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM versions v WHERE "+where, args...).Scan(&n); err != nil {
		return 0, s.wrap(err, "count history %s", account)
	}
	return n, nil
}

// Lookup returns the refs of current, non-deleted resources matching m,
// ordered by (type, id). In one read transaction it combines the posting
// segments (validated against the current rows, so stale postings of
// updated or deleted resources drop out) with the pending writes not yet
// flushed into a segment.
func (s *Store) Lookup(ctx context.Context, account string, m store.Match) ([]store.Ref, error) {
	acct, err := s.acctID(ctx, account)
	if err != nil {
		return nil, err
	}
	for _, clause := range m.Clauses {
		if len(clause) == 0 {
			return nil, nil // an empty OR matches nothing
		}
	}
	refs, err := s.lookup(ctx, acct, m)
	if err != nil {
		return nil, s.wrap(err, "lookup %s", account)
	}
	return refs, nil
}

func (s *Store) lookup(ctx context.Context, acct int64, m store.Match) ([]store.Ref, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var indexed int64
	if err := tx.StmtContext(ctx, s.r.indexedIx).QueryRowContext(ctx).Scan(&indexed); err != nil {
		return nil, err
	}
	pend, ok, err := s.pendingFor(ctx, tx, indexed, acct, m)
	if err != nil {
		return nil, err
	}
	if !ok { // the cache has moved past this snapshot: read pending directly
		if pend, err = s.pendingDirect(ctx, tx, indexed, acct, m); err != nil {
			return nil, err
		}
	}
	var refs []store.Ref
	if len(m.Clauses) == 0 {
		refs, err = scanCurrent(ctx, tx, acct, m)
	} else {
		refs, err = lookupSegments(ctx, tx, acct, m)
	}
	if err != nil {
		return nil, err
	}
	return sortRefs(append(refs, pend...)), nil
}

// scanCurrent lists every current, non-deleted resource of acct (of
// m.Types, up to m.MaxSeq).
func scanCurrent(ctx context.Context, q querier, acct int64, m store.Match) ([]store.Ref, error) {
	args := []any{acct}
	query := "SELECT c.type, c.id FROM current c WHERE c.acct = ? AND c.deleted = 0"
	if len(m.Types) > 0 {
		for _, t := range m.Types {
			args = append(args, t)
		}
		query += " AND c.type IN (?" + strings.Repeat(",?", len(m.Types)-1) + ")"
	}
	if m.MaxSeq > 0 {
		query += " AND c.seq <= ?"
		args = append(args, m.MaxSeq)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Ref
	for rows.Next() {
		var r store.Ref
		if err := rows.Scan(&r.Type, &r.ID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func sortRefs(refs []store.Ref) []store.Ref {
	slices.SortFunc(refs, func(a, b store.Ref) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return slices.Compact(refs)
}

// Sorts returns the sealed sort values under slot for refs; refs without one
// are absent from the map.
func (s *Store) Sorts(ctx context.Context, account string, slot []byte, refs []store.Ref) (map[store.Ref][]byte, error) {
	acct, err := s.acctID(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make(map[store.Ref][]byte, len(refs))
	for start := 0; start < len(refs); start += refChunk {
		chunk := refs[start:min(start+refChunk, len(refs))]
		in, args := refsIn(chunk, []any{acct})
		rows, err := s.rdb.QueryContext(ctx, `SELECT c.type, c.id, s.sorts FROM current c
			JOIN version_sorts s ON s.seq = c.seq
			WHERE c.acct = ? AND c.deleted = 0 AND (c.type, c.id) IN (VALUES `+in+")", args...)
		if err != nil {
			return nil, s.wrap(err, "sorts %s", account)
		}
		for rows.Next() {
			var r store.Ref
			var blob []byte
			if err := rows.Scan(&r.Type, &r.ID, &blob); err != nil {
				rows.Close()
				return nil, s.wrap(err, "sorts %s", account)
			}
			v, ok, err := sortValue(blob, slot)
			if err != nil {
				rows.Close()
				return nil, s.wrap(err, "sorts %s/%s/%s", account, r.Type, r.ID)
			}
			if ok {
				out[r] = bytes.Clone(v)
			}
		}
		if err := rows.Close(); err != nil {
			return nil, s.wrap(err, "sorts %s", account)
		}
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err, "sorts %s", account)
		}
	}
	return out, nil
}

// Scan lists current non-deleted resources in (type, id) order strictly
// after the given ref, up to limit.
func (s *Store) Scan(ctx context.Context, account string, typ string, after store.Ref, limit int) ([]store.Version, error) {
	acct, err := s.acctID(ctx, account)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	query := "SELECT " + versionCols + ` FROM current c JOIN versions v ON v.seq = c.seq
		WHERE c.acct = ? AND c.deleted = 0`
	args := []any{acct}
	switch {
	case typ == "":
		query += " AND (c.type, c.id) > (?, ?)"
		args = append(args, after.Type, after.ID)
	case after.Type > typ:
		return nil, nil
	default:
		afterID := after.ID
		if after.Type < typ {
			afterID = ""
		}
		// An equality and a range, so the primary key seeks straight to
		// the page.
		query += " AND c.type = ? AND c.id > ?"
		args = append(args, typ, afterID)
	}
	query += " ORDER BY c.type, c.id LIMIT ?"
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(err, "scan %s", account)
	}
	defer rows.Close()
	var out []store.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, s.wrap(err, "scan %s", account)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "scan %s", account)
	}
	return out, nil
}

// GetAccount returns one account record.
func (s *Store) GetAccount(ctx context.Context, name string) (store.Account, error) {
	if s.closed.Load() {
		return store.Account{}, fmt.Errorf("sqlite: get account: %w", store.ErrClosed)
	}
	a, err := scanAccount(s.r.getAccount.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Account{}, fmt.Errorf("sqlite: account %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Account{}, s.wrap(err, "get account %q", name)
	}
	return a, nil
}

// ListAccounts returns every account ordered by name.
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite: list accounts: %w", store.ErrClosed)
	}
	rows, err := s.r.listAccounts.QueryContext(ctx)
	if err != nil {
		return nil, s.wrap(err, "list accounts")
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, s.wrap(err, "list accounts")
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "list accounts")
	}
	return out, nil
}
