package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhealth/kiln/internal/store"
)

// maxAttempts bounds the retries of a commit that hit a serialization
// failure or a deadlock.
const maxAttempts = 4

// Commit applies writes atomically (see store.Store). It is one READ
// COMMITTED transaction:
//
//  1. key-share lock on the account row (ErrNotFound when it is missing);
//  2. SELECT ... FOR UPDATE of the current pointers of the written
//     resources, in (type, id) order, and the IfVersion checks;
//  3. INSERT of the current rows of new resources, with their tokens and
//     sort values: a concurrent creator of the same resource makes one of
//     the two fail on the primary key;
//  4. UPDATE of the tokens and sort values of the existing resources;
//  5. the Seq counter row bumped (UPDATE ... RETURNING), then the version
//     rows inserted and the pointers updated, then COMMIT.
//
// Nothing after step 5 can wait on another transaction, so the counter row
// lock, which serialises commits store-wide, is held only for two
// statements and the commit's WAL flush.
func (s *Store) Commit(ctx context.Context, account string, writes []store.Write) ([]int64, error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("commit", err)
	}
	defer done()
	if err := validateWrites(writes); err != nil {
		return nil, fmt.Errorf("postgres: commit: %w", err)
	}
	for attempt := 1; ; attempt++ {
		seqs, err := s.commitOnce(ctx, account, writes)
		if err == nil {
			return seqs, nil
		}
		if attempt < maxAttempts && retryable(err) && ctx.Err() == nil {
			s.log.Debug("postgres commit retried", "account", account, "attempt", attempt, "err", err)
			continue
		}
		return nil, s.fail("commit", err)
	}
}

func validateWrites(writes []store.Write) error {
	for i, w := range writes {
		v := w.Version
		switch {
		case v.Type == "" || v.ID == "":
			return fmt.Errorf("write %d: empty resource type or id", i)
		case v.VersionID < 1:
			return fmt.Errorf("write %d: versionId %d is not positive", i, v.VersionID)
		case w.IfVersion < store.NoCheck:
			return fmt.Errorf("write %d: IfVersion %d is invalid", i, w.IfVersion)
		case !validText(v.Type) || !validText(v.ID):
			return fmt.Errorf("write %d: resource type or id is not valid UTF-8 without NUL", i)
		}
		for _, sv := range w.Sorts {
			if len(sv.Slot) == 0 {
				return fmt.Errorf("write %d: empty sort slot", i)
			}
		}
	}
	return nil
}

// validText reports whether s can be stored in a text column.
func validText(s string) bool {
	return !strings.ContainsRune(s, 0) && utf8.ValidString(s)
}

type pointer struct {
	exists    bool // a pointer row exists (in the database, or earlier in this commit)
	inDB      bool // it existed before this commit
	versionID int64
}

func (s *Store) commitOnce(ctx context.Context, account string, writes []store.Write) (seqs []int64, err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the original error matters
		}
	}()

	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM kiln_accounts WHERE name = $1 FOR KEY SHARE`, account).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("account %q: %w", account, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lock the account row: %w", err)
	}
	if len(writes) == 0 {
		return []int64{}, tx.Commit(ctx)
	}

	// The distinct resources, in (type, id) order: rows are locked in this
	// order by every commit, which avoids most deadlocks.
	refs := make([]store.Ref, 0, len(writes))
	for _, w := range writes {
		refs = append(refs, store.Ref{Type: w.Version.Type, ID: w.Version.ID})
	}
	slices.SortFunc(refs, compareRef)
	refs = slices.Compact(refs)
	types, ids := splitRefs(refs)

	state := make(map[store.Ref]*pointer, len(refs))
	for _, r := range refs {
		state[r] = &pointer{}
	}
	rows, err := tx.Query(ctx, `SELECT type, id, version_id FROM kiln_current
		WHERE account = $1 AND (type, id) IN (SELECT t, i FROM unnest($2::text[], $3::text[]) AS u(t, i))
		ORDER BY type, id FOR UPDATE`, account, types, ids)
	if err != nil {
		return nil, fmt.Errorf("lock the current pointers: %w", err)
	}
	for rows.Next() {
		var r store.Ref
		var v int64
		if err := rows.Scan(&r.Type, &r.ID, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the current pointers: %w", err)
		}
		if p := state[r]; p != nil {
			*p = pointer{exists: true, inDB: true, versionID: v}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the current pointers: %w", err)
	}

	// Preconditions, in write order; a later write to the same resource
	// sees the earlier one.
	last := make(map[store.Ref]int, len(refs)) // index of the last write per resource
	for i, w := range writes {
		r := store.Ref{Type: w.Version.Type, ID: w.Version.ID}
		p := state[r]
		switch {
		case w.IfVersion == 0 && p.exists:
			return nil, fmt.Errorf("%w: %s/%s already exists (version %d)", store.ErrConflict, r.Type, r.ID, p.versionID)
		case w.IfVersion > 0 && !p.exists:
			return nil, fmt.Errorf("%w: %s/%s does not exist, expected version %d", store.ErrConflict, r.Type, r.ID, w.IfVersion)
		case w.IfVersion > 0 && p.versionID != w.IfVersion:
			return nil, fmt.Errorf("%w: %s/%s is at version %d, expected %d", store.ErrConflict, r.Type, r.ID, p.versionID, w.IfVersion)
		}
		p.exists, p.versionID = true, w.Version.VersionID
		last[r] = i
	}

	// Claim the current rows of new resources, with their index; replace
	// the index of the others. A concurrent creator blocks on the insert
	// until one of the two commits; the loser gets a unique violation.
	var fresh, existing indexRows
	for _, r := range refs {
		w := writes[last[r]]
		if state[r].inDB {
			existing.add(r, w.Tokens, w.Sorts)
		} else {
			fresh.add(r, w.Tokens, w.Sorts)
		}
	}
	if err := fresh.insert(ctx, tx, account); err != nil {
		return nil, fmt.Errorf("claim new resources: %w", err)
	}
	if err := existing.update(ctx, tx, account); err != nil {
		return nil, err
	}

	// From here on nothing waits for another transaction.
	var top int64
	if err := tx.QueryRow(ctx, s.seqSQL, int64(len(writes))).Scan(&top); err != nil {
		return nil, fmt.Errorf("take commit sequence numbers: %w", err)
	}
	seqs = make([]int64, len(writes))
	vTypes := make([]string, len(writes))
	vIDs := make([]string, len(writes))
	vVersions := make([]int64, len(writes))
	vSeqs := make([]int64, len(writes))
	vTimes := make([]time.Time, len(writes))
	vDeleted := make([]bool, len(writes))
	vBodies := make([][]byte, len(writes))
	for i, w := range writes {
		seqs[i] = top - int64(len(writes)) + int64(i) + 1
		vTypes[i], vIDs[i], vVersions[i], vSeqs[i] = w.Version.Type, w.Version.ID, w.Version.VersionID, seqs[i]
		vTimes[i], vDeleted[i] = usec(w.Version.LastUpdated), w.Version.Deleted
		vBodies[i] = w.Version.Body
		if vBodies[i] == nil {
			vBodies[i] = []byte{}
		}
	}
	cVersions := make([]int64, len(refs))
	cSeqs := make([]int64, len(refs))
	cDeleted := make([]bool, len(refs))
	for i, r := range refs {
		j := last[r]
		cVersions[i], cSeqs[i], cDeleted[i] = writes[j].Version.VersionID, seqs[j], writes[j].Version.Deleted
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO kiln_versions (account, type, id, version_id, seq, last_updated, deleted, body)
		SELECT $1, t, i, v, s, l, d, b
		FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::boolean[], $8::bytea[]) AS u(t, i, v, s, l, d, b)`,
		account, vTypes, vIDs, vVersions, vSeqs, vTimes, vDeleted, vBodies)
	b.Queue(`UPDATE kiln_current AS c SET version_id = u.v, seq = u.s, deleted = u.d
		FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::boolean[]) AS u(t, i, v, s, d)
		WHERE c.account = $1 AND c.type = u.t AND c.id = u.i`,
		account, types, ids, cVersions, cSeqs, cDeleted)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("store versions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return seqs, nil
}

// indexRows are the index of some resources of a commit, flattened for
// unnest: one (type, id, token) triple per distinct token and one (type,
// id, slot, value) per sort slot. The database groups them back into each
// resource's arrays (indexedSQL).
type indexRows struct {
	types, ids []string // the resources

	tokTypes, tokIDs []string
	tokens           [][]byte

	sortTypes, sortIDs []string
	slots, values      [][]byte
}

// add appends one resource's index: its tokens deduplicated, and for a
// slot given twice the last value.
func (x *indexRows) add(r store.Ref, tokens [][]byte, sorts []store.SortValue) {
	x.types = append(x.types, r.Type)
	x.ids = append(x.ids, r.ID)
	sorted := slices.Clone(tokens)
	slices.SortFunc(sorted, bytes.Compare)
	sorted = slices.CompactFunc(sorted, bytes.Equal)
	for _, tk := range sorted {
		x.tokTypes = append(x.tokTypes, r.Type)
		x.tokIDs = append(x.tokIDs, r.ID)
		x.tokens = append(x.tokens, tk)
	}
	seen := make(map[string]int, len(sorts))
	start := len(x.slots)
	for _, sv := range sorts {
		v := sv.Value
		if v == nil {
			v = []byte{}
		}
		if i, ok := seen[string(sv.Slot)]; ok {
			x.values[start+i] = v
			continue
		}
		seen[string(sv.Slot)] = len(x.slots) - start
		x.sortTypes = append(x.sortTypes, r.Type)
		x.sortIDs = append(x.sortIDs, r.ID)
		x.slots = append(x.slots, sv.Slot)
		x.values = append(x.values, v)
	}
}

func (x *indexRows) args(account string) []any {
	return []any{account, x.types, x.ids, x.tokTypes, x.tokIDs, x.tokens, x.sortTypes, x.sortIDs, x.slots, x.values}
}

// indexedSQL is a WITH clause naming "indexed": for each resource of
// indexRows.args, its sorted token array and its slot and value arrays
// (ordered by slot; empty arrays when it has none).
const indexedSQL = `WITH indexed AS (
	SELECT r.t, r.i, coalesce(tk.tokens, '{}') AS tokens, coalesce(sv.slots, '{}') AS slots, coalesce(sv.vals, '{}') AS vals
	FROM unnest($2::text[], $3::text[]) AS r(t, i)
	LEFT JOIN (SELECT t, i, array_agg(k ORDER BY k) AS tokens
		FROM unnest($4::text[], $5::text[], $6::bytea[]) AS u(t, i, k) GROUP BY t, i) tk ON tk.t = r.t AND tk.i = r.i
	LEFT JOIN (SELECT t, i, array_agg(s ORDER BY s) AS slots, array_agg(v ORDER BY s) AS vals
		FROM unnest($7::text[], $8::text[], $9::bytea[], $10::bytea[]) AS u(t, i, s, v) GROUP BY t, i) sv ON sv.t = r.t AND sv.i = r.i
) `

// insert creates the current rows of new resources (version 0 until the
// commit's pointer update) with their index.
func (x *indexRows) insert(ctx context.Context, tx pgx.Tx, account string) error {
	if len(x.types) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, indexedSQL+`INSERT INTO kiln_current (account, type, id, version_id, seq, deleted, tokens, sort_slots, sort_values)
		SELECT $1, t, i, 0, 0, false, tokens, slots, vals FROM indexed`, x.args(account)...)
	return err
}

// update replaces the index of existing resources.
func (x *indexRows) update(ctx context.Context, tx pgx.Tx, account string) error {
	if len(x.types) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, indexedSQL+`UPDATE kiln_current AS c SET tokens = x.tokens, sort_slots = x.slots, sort_values = x.vals
		FROM indexed x WHERE c.account = $1 AND c.type = x.t AND c.id = x.i`, x.args(account)...); err != nil {
		return fmt.Errorf("replace tokens and sorts: %w", err)
	}
	return nil
}

// ReplaceIndex swaps the tokens and sorts of a resource's current version
// (see store.Store). The pointer row is locked while it checks versionID.
func (s *Store) ReplaceIndex(ctx context.Context, account string, ref store.Ref, versionID int64, tokens [][]byte, sorts []store.SortValue) error {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return s.fail("replace index", err)
	}
	defer done()
	for _, sv := range sorts {
		if len(sv.Slot) == 0 {
			return errors.New("postgres: replace index: empty sort slot")
		}
	}
	for attempt := 1; ; attempt++ {
		err := s.replaceIndexOnce(ctx, account, ref, versionID, tokens, sorts)
		if err == nil {
			return nil
		}
		if attempt < maxAttempts && retryable(err) && ctx.Err() == nil {
			continue
		}
		return s.fail("replace index", err)
	}
}

func (s *Store) replaceIndexOnce(ctx context.Context, account string, ref store.Ref, versionID int64, tokens [][]byte, sorts []store.SortValue) (err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the original error matters
		}
	}()
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM kiln_accounts WHERE name = $1 FOR KEY SHARE`, account).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("account %q: %w", account, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("lock the account row: %w", err)
	}
	var cur int64
	err = tx.QueryRow(ctx, `SELECT version_id FROM kiln_current WHERE account = $1 AND type = $2 AND id = $3 FOR UPDATE`,
		account, ref.Type, ref.ID).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s/%s: %w", ref.Type, ref.ID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("lock the current pointer: %w", err)
	}
	if cur != versionID {
		return fmt.Errorf("%w: %s/%s is at version %d, expected %d", store.ErrConflict, ref.Type, ref.ID, cur, versionID)
	}
	var x indexRows
	x.add(ref, tokens, sorts)
	if err := x.update(ctx, tx, account); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func compareRef(a, b store.Ref) int {
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func splitRefs(refs []store.Ref) (types, ids []string) {
	types = make([]string, len(refs))
	ids = make([]string, len(refs))
	for i, r := range refs {
		types[i], ids[i] = r.Type, r.ID
	}
	return types, ids
}
