package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnhealth/kiln/internal/store"
)

// The token index is a sequence of immutable posting segments (schema step
// 4). Every write of a resource's tokens (a commit, or ReplaceIndex) gets a
// fresh index stamp, ix, recorded in its current row and in a pending row
// holding the tokens. The writer periodically flushes all pending rows into
// one new segment: per account and token, one postings row listing the
// stamps, appended in a single run of pages (a segment's rows are adjacent
// in the (acct, seg, token) key). A posting is valid only while its stamp
// is still its resource's current ix, so an update or delete never has to
// find and remove the resource's old postings: Lookup validates candidates
// against current, and compaction drops stale stamps.
//
// Segments are compacted size-tiered: when fanIn segments share a size
// class (a factor of fanIn in resources), they are merged into one. A
// token lookup probes every segment, so their number stays logarithmic in
// the number of resources.

// fanIn is how many segments of one size class are merged into one.
const fanIn = 8

// sizeClass groups segments by the number of stamps they hold: below 512
// is class 0, then one class per factor of fanIn.
func sizeClass(resources int64) int {
	c := 0
	for resources >= 64*fanIn {
		resources /= fanIn
		c++
	}
	return c
}

// encodeIxs packs ascending, distinct stamps as a uvarint of the first
// followed by uvarint deltas.
func encodeIxs(dst []byte, ixs []int64) []byte {
	var prev int64
	for i, x := range ixs {
		if i == 0 {
			dst = binary.AppendUvarint(dst, uint64(x))
		} else {
			dst = binary.AppendUvarint(dst, uint64(x-prev))
		}
		prev = x
	}
	return dst
}

// decodeIxs appends the stamps of an encodeIxs blob to dst.
func decodeIxs(dst []int64, b []byte) ([]int64, error) {
	var prev int64
	for first := true; len(b) > 0; first = false {
		v, n := binary.Uvarint(b)
		// Stamps are seqs: positive and far below 2^62, so neither a
		// value nor the running sum may pass it.
		if n <= 0 || v > 1<<62 || (!first && v == 0) || int64(v) > 1<<62-prev {
			return dst, fmt.Errorf("corrupt posting list")
		}
		b = b[n:]
		prev += int64(v)
		dst = append(dst, prev)
	}
	return dst, nil
}

// sortUnique sorts xs and removes duplicates in place.
func sortUnique(xs []int64) []int64 {
	slices.Sort(xs)
	return slices.Compact(xs)
}

// intersectSorted returns the stamps in both ascending lists, reusing a.
// A short a is searched for in a long b (a posting list against every live
// stamp) rather than walking all of b.
func intersectSorted(a, b []int64) []int64 {
	out := a[:0]
	if len(a)*16 < len(b) {
		for _, x := range a {
			i, found := slices.BinarySearch(b, x)
			if found {
				out = append(out, x)
			}
			b = b[i:]
		}
		return out
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// postingRow is one row of a segment being written.
type postingRow struct {
	acct  int64
	token []byte
	ixs   []byte
}

// flushPlan is a flush computed from a snapshot: the postings of every
// pending row above indexed up to maxIx.
type flushPlan struct {
	indexed, minIx, maxIx int64
	live                  int64 // stamps with tokens (the segment's size)
	consumed              int   // pending rows read
	rows                  []postingRow
}

// maxFlushRows bounds the pending rows one flush reads.
const maxFlushRows = 1 << 15

// buildFlush reads the pending rows above the indexed stamp visible to q
// and computes their postings. A row whose resource has a later pending
// row in the same flush is superseded and skipped; a delete marker has no
// tokens. (A row superseded by a later flush is written all the same: its
// stamp is stale at once, and compaction drops it.)
func buildFlush(ctx context.Context, q querier) (flushPlan, error) {
	var p flushPlan
	if err := queryRow(ctx, q, "SELECT indexed_ix FROM index_state WHERE id = 1").Scan(&p.indexed); err != nil {
		return p, fmt.Errorf("read indexed stamp: %w", err)
	}
	p.maxIx = p.indexed
	rows, err := q.QueryContext(ctx, "SELECT ix, acct, type, id, tokens FROM pending WHERE ix > ? ORDER BY ix LIMIT ?", p.indexed, maxFlushRows)
	if err != nil {
		return p, fmt.Errorf("read pending: %w", err)
	}
	type entry struct {
		ix, acct int64
		tokens   [][]byte
	}
	type refKey struct {
		acct    int64
		typ, id string
	}
	var entries []entry
	latest := map[refKey]int{}
	for rows.Next() {
		var e entry
		var k refKey
		var blob []byte
		if err := rows.Scan(&e.ix, &e.acct, &k.typ, &k.id, &blob); err != nil {
			rows.Close()
			return p, fmt.Errorf("read pending: %w", err)
		}
		k.acct = e.acct
		if e.tokens, err = decodeList(blob); err != nil {
			rows.Close()
			return p, fmt.Errorf("pending %s/%s: %w", k.typ, k.id, err)
		}
		if prev, ok := latest[k]; ok {
			entries[prev].tokens = nil // superseded by this later write
		}
		latest[k] = len(entries)
		entries = append(entries, e)
		p.maxIx = max(p.maxIx, e.ix)
	}
	if err := rows.Close(); err != nil {
		return p, fmt.Errorf("read pending: %w", err)
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("read pending: %w", err)
	}
	p.consumed = len(entries)
	// Group stamps by account and token; entries are in stamp order, so
	// every list is ascending.
	type posting struct {
		token []byte
		ixs   []int64
	}
	byAcct := map[int64]map[string]*posting{}
	for _, e := range entries {
		if len(e.tokens) == 0 {
			continue
		}
		if p.live == 0 {
			p.minIx = e.ix
		}
		p.live++
		m := byAcct[e.acct]
		if m == nil {
			m = map[string]*posting{}
			byAcct[e.acct] = m
		}
		for _, t := range e.tokens {
			pt := m[string(t)]
			if pt == nil {
				pt = &posting{token: t}
				m[string(t)] = pt
			}
			pt.ixs = append(pt.ixs, e.ix)
		}
	}
	accts := make([]int64, 0, len(byAcct))
	for a := range byAcct {
		accts = append(accts, a)
	}
	slices.Sort(accts)
	for _, a := range accts {
		m := byAcct[a]
		list := make([]*posting, 0, len(m))
		for _, pt := range m {
			list = append(list, pt)
		}
		slices.SortFunc(list, func(x, y *posting) int { return bytes.Compare(x.token, y.token) })
		for _, pt := range list {
			p.rows = append(p.rows, postingRow{acct: a, token: pt.token, ixs: encodeIxs(nil, pt.ixs)})
		}
	}
	return p, nil
}

// applyFlush writes p inside the writer's transaction: a new segment with
// its rows, the indexed stamp moved to p.maxIx, and the flushed pending
// rows deleted. It does nothing and reports false when another flush
// moved the indexed stamp since p was read.
func (tx *wtx) applyFlush(p flushPlan) (bool, error) {
	var indexed int64
	if err := tx.getIndexed.QueryRowContext(bg).Scan(&indexed); err != nil {
		return false, fmt.Errorf("read indexed stamp: %w", err)
	}
	if indexed != p.indexed || p.consumed == 0 {
		return false, nil
	}
	if p.live > 0 {
		seg, err := tx.newSegment(p.live, p.minIx, p.maxIx)
		if err != nil {
			return false, err
		}
		if err := tx.insertAll(seg, p.rows); err != nil {
			return false, err
		}
	}
	if _, err := tx.setIndexed.ExecContext(bg, p.maxIx); err != nil {
		return false, fmt.Errorf("set indexed stamp: %w", err)
	}
	if _, err := tx.delPending.ExecContext(bg, p.maxIx); err != nil {
		return false, fmt.Errorf("clear pending: %w", err)
	}
	return true, nil
}

// flush moves pending rows into a new segment, entirely inside the
// writer's transaction, and returns how many it consumed.
func (tx *wtx) flush() (int, error) {
	p, err := buildFlush(bg, tx.conn)
	if err != nil {
		return 0, err
	}
	if _, err := tx.applyFlush(p); err != nil {
		return 0, err
	}
	return p.consumed, nil
}

func (tx *wtx) newSegment(resources, minIx, maxIx int64) (int64, error) {
	res, err := tx.insSegment.ExecContext(bg, resources, minIx, maxIx)
	if err != nil {
		return 0, fmt.Errorf("new segment: %w", err)
	}
	seg, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("new segment: %w", err)
	}
	return seg, nil
}

// bulkChunk is the number of postings rows per multi-row INSERT: one
// statement per row would spend most of a flush in statement overhead.
const bulkChunk = 128

// insertAll writes rows into segment seg, bulkChunk per statement.
func (tx *wtx) insertAll(seg int64, rows []postingRow) error {
	for len(rows) > 0 {
		n := min(len(rows), bulkChunk)
		if err := tx.insertPostings(seg, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// insertPostings writes rows (at most bulkChunk) into segment seg.
func (tx *wtx) insertPostings(seg int64, rows []postingRow) error {
	if len(rows) == 0 {
		return nil
	}
	st := tx.bulkPostings
	if len(rows) != bulkChunk || st == nil {
		var err error
		st, err = tx.conn.PrepareContext(bg, "INSERT INTO postings (acct, seg, token, ixs) VALUES (?,?,?,?)"+
			strings.Repeat(",(?,?,?,?)", len(rows)-1))
		if err != nil {
			return fmt.Errorf("prepare postings insert: %w", err)
		}
		if len(rows) == bulkChunk {
			tx.bulkPostings = st
			tx.all = append(tx.all, st)
		} else {
			defer st.Close()
		}
	}
	args := make([]any, 0, 4*len(rows))
	for _, r := range rows {
		args = append(args, r.acct, seg, r.token, r.ixs)
	}
	if _, err := st.ExecContext(bg, args...); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	return nil
}

type segmentInfo struct {
	seg, resources, minIx, maxIx int64
}

// building marks a segment whose rows are still being written by a
// compaction (segments.resources): Lookup ignores it, and Open removes it
// (a compaction interrupted by a crash).
const building = -1

// listSegments returns the complete segments visible to q, in seg order.
func listSegments(ctx context.Context, q querier) ([]segmentInfo, error) {
	rows, err := q.QueryContext(ctx, "SELECT seg, resources, min_ix, max_ix FROM segments WHERE resources >= 0 ORDER BY seg")
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	defer rows.Close()
	var out []segmentInfo
	for rows.Next() {
		var s segmentInfo
		if err := rows.Scan(&s.seg, &s.resources, &s.minIx, &s.maxIx); err != nil {
			return nil, fmt.Errorf("list segments: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// pickCompaction returns the segments of the smallest size class that
// holds fanIn or more of them, or nil.
func pickCompaction(segs []segmentInfo) []segmentInfo {
	byClass := map[int][]segmentInfo{}
	pick := -1
	for _, s := range segs {
		c := sizeClass(s.resources)
		byClass[c] = append(byClass[c], s)
		if len(byClass[c]) >= fanIn && (pick < 0 || c < pick) {
			pick = c
		}
	}
	if pick < 0 {
		return nil
	}
	return byClass[pick]
}

// mergePlan is a compaction computed from a snapshot: the rows of one
// segment replacing src.
type mergePlan struct {
	src          []segmentInfo
	minIx, maxIx int64
	kept         int64   // distinct stamps kept (the new segment's size)
	accts        []int64 // accounts that had rows in src
	rows         []postingRow
}

// buildMerge reads segs through q and computes, per account and token,
// the union of their stamps minus those that are no longer current.
func buildMerge(ctx context.Context, q querier, segs []segmentInfo) (mergePlan, error) {
	p := mergePlan{src: segs, minIx: segs[0].minIx, maxIx: segs[0].maxIx}
	segArgs := make([]any, len(segs))
	for i, s := range segs {
		p.minIx, p.maxIx = min(p.minIx, s.minIx), max(p.maxIx, s.maxIx)
		segArgs[i] = s.seg
	}
	segIn := "(?" + strings.Repeat(",?", len(segs)-1) + ")"
	live, err := queryInts(ctx, q, "SELECT ix FROM current WHERE ix BETWEEN ? AND ? AND deleted = 0 ORDER BY ix", p.minIx, p.maxIx)
	if err != nil {
		return p, fmt.Errorf("read live stamps: %w", err)
	}
	accts, err := queryInts(ctx, q, "SELECT id FROM accounts ORDER BY id")
	if err != nil {
		return p, fmt.Errorf("list accounts: %w", err)
	}
	kept := newStampSet(p.minIx, p.maxIx)
	for _, acct := range accts {
		rows, err := q.QueryContext(ctx, "SELECT token, ixs FROM postings WHERE acct = ? AND seg IN "+segIn+" ORDER BY token, seg",
			append([]any{acct}, segArgs...)...)
		if err != nil {
			return p, fmt.Errorf("read segments: %w", err)
		}
		var cur []byte
		var ixs []int64
		emit := func() {
			if cur == nil {
				return
			}
			if !slices.IsSorted(ixs) { // segments whose stamp ranges overlap
				ixs = sortUnique(ixs)
			}
			ixs = intersectSorted(ixs, live)
			if len(ixs) > 0 {
				for _, x := range ixs {
					kept.add(x)
				}
				p.rows = append(p.rows, postingRow{acct: acct, token: cur, ixs: encodeIxs(nil, ixs)})
			}
			ixs = ixs[:0]
		}
		for rows.Next() {
			var token, blob []byte
			if err := rows.Scan(&token, &blob); err != nil {
				rows.Close()
				return p, fmt.Errorf("read segments: %w", err)
			}
			if cur == nil || !bytes.Equal(token, cur) {
				emit()
				cur = token
			}
			if ixs, err = decodeIxs(ixs, blob); err != nil {
				rows.Close()
				return p, fmt.Errorf("segment posting: %w", err)
			}
		}
		if err := rows.Close(); err != nil {
			return p, fmt.Errorf("read segments: %w", err)
		}
		if err := rows.Err(); err != nil {
			return p, fmt.Errorf("read segments: %w", err)
		}
		emit()
		if cur != nil {
			p.accts = append(p.accts, acct)
		}
	}
	p.kept = kept.n
	return p, nil
}

// startMerge checks that p's source segments are all still there and
// creates the new segment, marked building. It returns 0 when the sources
// changed since p was read.
func (tx *wtx) startMerge(p mergePlan) (int64, error) {
	segs, err := listSegments(bg, tx.conn)
	if err != nil || !sameSegments(segs, p.src) {
		return 0, err
	}
	return tx.newSegment(building, p.minIx, p.maxIx)
}

// finishMerge replaces p's sources by seg, whose rows are all written.
// If another handle merged the sources meanwhile, seg is dropped instead.
func (tx *wtx) finishMerge(p mergePlan, seg int64) error {
	segs, err := listSegments(bg, tx.conn)
	if err != nil {
		return err
	}
	if !sameSegments(segs, p.src) {
		for _, acct := range p.accts {
			if _, err := tx.conn.ExecContext(bg, "DELETE FROM postings WHERE acct = ? AND seg = ?", acct, seg); err != nil {
				return fmt.Errorf("drop superseded merge: %w", err)
			}
		}
		_, err := tx.conn.ExecContext(bg, "DELETE FROM segments WHERE seg = ?", seg)
		return err
	}
	segArgs := make([]any, len(p.src))
	for i, s := range p.src {
		segArgs[i] = s.seg
	}
	segIn := "(?" + strings.Repeat(",?", len(p.src)-1) + ")"
	exists, err := queryInts(bg, tx.conn, "SELECT id FROM accounts ORDER BY id")
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, acct := range p.accts {
		if _, err := tx.conn.ExecContext(bg, "DELETE FROM postings WHERE acct = ? AND seg IN "+segIn,
			append([]any{acct}, segArgs...)...); err != nil {
			return fmt.Errorf("drop merged segments: %w", err)
		}
		if !slices.Contains(exists, acct) { // deleted while the merge was built
			if _, err := tx.conn.ExecContext(bg, "DELETE FROM postings WHERE acct = ? AND seg = ?", acct, seg); err != nil {
				return fmt.Errorf("drop deleted account's postings: %w", err)
			}
		}
	}
	if _, err := tx.conn.ExecContext(bg, "DELETE FROM segments WHERE seg IN "+segIn, segArgs...); err != nil {
		return fmt.Errorf("drop merged segments: %w", err)
	}
	if p.kept == 0 {
		_, err = tx.conn.ExecContext(bg, "DELETE FROM segments WHERE seg = ?", seg)
	} else {
		_, err = tx.conn.ExecContext(bg, "UPDATE segments SET resources = ? WHERE seg = ?", p.kept, seg)
	}
	if err != nil {
		return fmt.Errorf("record merged segment: %w", err)
	}
	return nil
}

// compact merges segments of one size class while some class holds fanIn
// of them, entirely inside the writer's transaction. It returns how many
// merges ran.
func (tx *wtx) compact() (int, error) {
	merges := 0
	for {
		segs, err := listSegments(bg, tx.conn)
		if err != nil {
			return merges, err
		}
		pick := pickCompaction(segs)
		if pick == nil {
			return merges, nil
		}
		p, err := buildMerge(bg, tx.conn, pick)
		if err != nil {
			return merges, err
		}
		seg, err := tx.startMerge(p)
		if err != nil {
			return merges, err
		}
		if err := tx.insertAll(seg, p.rows); err != nil {
			return merges, err
		}
		if err := tx.finishMerge(p, seg); err != nil {
			return merges, err
		}
		merges++
	}
}

// removeBuilding deletes segments left half-written by a compaction that a
// crash interrupted.
func (tx *wtx) removeBuilding() error {
	segs, err := queryInts(bg, tx.conn, "SELECT seg FROM segments WHERE resources = ?", building)
	if err != nil || len(segs) == 0 {
		return err
	}
	accts, err := queryInts(bg, tx.conn, "SELECT DISTINCT acct FROM postings")
	if err != nil {
		return err
	}
	for _, seg := range segs {
		for _, acct := range accts {
			if _, err := tx.conn.ExecContext(bg, "DELETE FROM postings WHERE acct = ? AND seg = ?", acct, seg); err != nil {
				return err
			}
		}
		if _, err := tx.conn.ExecContext(bg, "DELETE FROM segments WHERE seg = ?", seg); err != nil {
			return err
		}
	}
	return nil
}

// stampSet is a set of stamps in a known range, as a bitmap.
type stampSet struct {
	lo   int64
	bits []uint64
	n    int64 // members
}

func newStampSet(lo, hi int64) *stampSet {
	return &stampSet{lo: lo, bits: make([]uint64, (hi-lo)/64+1)}
}

func (s *stampSet) add(x int64) {
	i := x - s.lo
	if w, b := i/64, uint64(1)<<(i%64); s.bits[w]&b == 0 {
		s.bits[w] |= b
		s.n++
	}
}

// queryInts runs a query of one integer column.
func queryInts(ctx context.Context, q querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var x int64
		if err := rows.Scan(&x); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// queryRow is QueryRowContext for a querier.
func queryRow(ctx context.Context, q querier, query string, args ...any) rowScanner {
	rows, err := q.QueryContext(ctx, query, args...)
	return rowScanner{rows, err}
}

type rowScanner struct {
	rows *sql.Rows
	err  error
}

func (r rowScanner) Scan(dst ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dst...); err != nil {
		return err
	}
	return r.rows.Close()
}

// validateChunk bounds the stamps per validation query.
const validateChunk = 8192

// lookupSegments runs m (with at least one clause) against the segments
// visible to q, a read transaction, and returns the matching current,
// non-deleted resources of acct, unordered.
func lookupSegments(ctx context.Context, q querier, acct int64, m store.Match) ([]store.Ref, error) {
	segRows, err := q.QueryContext(ctx, "SELECT seg FROM segments WHERE resources >= 0")
	if err != nil {
		return nil, err
	}
	var segs []any
	for segRows.Next() {
		var s int64
		if err := segRows.Scan(&s); err != nil {
			segRows.Close()
			return nil, err
		}
		segs = append(segs, s)
	}
	if err := segRows.Close(); err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, nil
	}
	segIn := "(?" + strings.Repeat(",?", len(segs)-1) + ")"
	var cand []int64
	for ci, clause := range m.Clauses {
		args := make([]any, 0, 1+len(segs)+len(clause))
		args = append(args, acct)
		args = append(args, segs...)
		for _, t := range clause {
			args = append(args, t)
		}
		rows, err := q.QueryContext(ctx, "SELECT ixs FROM postings WHERE acct = ? AND seg IN "+segIn+
			" AND token IN (?"+strings.Repeat(",?", len(clause)-1)+")", args...)
		if err != nil {
			return nil, err
		}
		var set []int64
		for rows.Next() {
			var blob []byte
			if err := rows.Scan(&blob); err != nil {
				rows.Close()
				return nil, err
			}
			if set, err = decodeIxs(set, blob); err != nil {
				rows.Close()
				return nil, err
			}
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		set = sortUnique(set)
		if ci == 0 {
			cand = set
		} else {
			cand = intersectSorted(cand, set)
		}
		if len(cand) == 0 {
			return nil, nil
		}
	}
	var out []store.Ref
	for start := 0; start < len(cand); start += validateChunk {
		chunk := cand[start:min(start+validateChunk, len(cand))]
		list := make([]byte, 0, 8*len(chunk)+2)
		list = append(list, '[')
		for i, x := range chunk {
			if i > 0 {
				list = append(list, ',')
			}
			list = strconv.AppendInt(list, x, 10)
		}
		list = append(list, ']')
		// The chunk is one JSON array parameter, so the statement text is
		// the same for every chunk length; CROSS JOIN makes SQLite walk the
		// stamps and seek each in current_by_ix, which covers the columns.
		// By stamp alone: the account check is a defence (stamps are
		// unique across accounts).
		rows, err := q.QueryContext(ctx, "SELECT c.acct, c.type, c.id, c.seq, c.deleted FROM json_each(?) AS j CROSS JOIN current AS c ON c.ix = j.value", string(list))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r store.Ref
			var a, seq int64
			var deleted bool
			if err := rows.Scan(&a, &r.Type, &r.ID, &seq, &deleted); err != nil {
				rows.Close()
				return nil, err
			}
			if a != acct || deleted || (m.MaxSeq > 0 && seq > m.MaxSeq) {
				continue
			}
			if len(m.Types) > 0 && !slices.Contains(m.Types, r.Type) {
				continue
			}
			out = append(out, r)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}
