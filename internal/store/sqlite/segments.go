package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
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
		if n <= 0 || v > 1<<62 || (!first && v == 0) {
			return dst, fmt.Errorf("corrupt posting list")
		}
		b = b[n:]
		if first {
			prev = int64(v)
		} else {
			prev += int64(v)
		}
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

// flush moves every pending row into a new segment, inside the writer's
// transaction, and returns how many pending rows it consumed. A row whose
// resource has a later pending row is superseded and skipped; a delete
// marker has no tokens.
func (tx *wtx) flush() (int, error) {
	var indexed int64
	if err := tx.getIndexed.QueryRowContext(bg).Scan(&indexed); err != nil {
		return 0, fmt.Errorf("read indexed stamp: %w", err)
	}
	rows, err := tx.pendingRows.QueryContext(bg, indexed)
	if err != nil {
		return 0, fmt.Errorf("read pending: %w", err)
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
	maxIx := indexed
	for rows.Next() {
		var e entry
		var k refKey
		var blob []byte
		if err := rows.Scan(&e.ix, &e.acct, &k.typ, &k.id, &blob); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read pending: %w", err)
		}
		k.acct = e.acct
		if e.tokens, err = decodeList(blob); err != nil {
			rows.Close()
			return 0, fmt.Errorf("pending %s/%s: %w", k.typ, k.id, err)
		}
		if prev, ok := latest[k]; ok {
			entries[prev].tokens = nil // superseded by this later write
		}
		latest[k] = len(entries)
		entries = append(entries, e)
		maxIx = max(maxIx, e.ix)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("read pending: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read pending: %w", err)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	// Group stamps by account and token; entries are in stamp order, so
	// every list is ascending.
	type posting struct {
		token []byte
		ixs   []int64
	}
	byAcct := map[int64]map[string]*posting{}
	var live, minIx int64
	for _, e := range entries {
		if len(e.tokens) == 0 {
			continue
		}
		if live == 0 {
			minIx = e.ix
		}
		live++
		m := byAcct[e.acct]
		if m == nil {
			m = map[string]*posting{}
			byAcct[e.acct] = m
		}
		for _, t := range e.tokens {
			p := m[string(t)]
			if p == nil {
				p = &posting{token: t}
				m[string(t)] = p
			}
			p.ixs = append(p.ixs, e.ix)
		}
	}
	if live > 0 {
		seg, err := tx.newSegment(live, minIx, maxIx)
		if err != nil {
			return 0, err
		}
		accts := make([]int64, 0, len(byAcct))
		for a := range byAcct {
			accts = append(accts, a)
		}
		slices.Sort(accts)
		var batch []postingRow
		for _, a := range accts {
			m := byAcct[a]
			list := make([]*posting, 0, len(m))
			for _, p := range m {
				list = append(list, p)
			}
			slices.SortFunc(list, func(x, y *posting) int { return bytes.Compare(x.token, y.token) })
			for _, p := range list {
				batch = append(batch, postingRow{acct: a, token: p.token, ixs: encodeIxs(nil, p.ixs)})
				if len(batch) == bulkChunk {
					if err := tx.insertPostings(seg, batch); err != nil {
						return 0, err
					}
					batch = batch[:0]
				}
			}
		}
		if err := tx.insertPostings(seg, batch); err != nil {
			return 0, err
		}
	}
	if _, err := tx.setIndexed.ExecContext(bg, maxIx); err != nil {
		return 0, fmt.Errorf("set indexed stamp: %w", err)
	}
	if _, err := tx.delPending.ExecContext(bg, maxIx); err != nil {
		return 0, fmt.Errorf("clear pending: %w", err)
	}
	return len(entries), nil
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

// compact merges segments of one size class while some class holds fanIn
// of them, inside the writer's transaction. It returns how many merges ran.
func (tx *wtx) compact() (int, error) {
	merges := 0
	for {
		segs, err := tx.segments()
		if err != nil {
			return merges, err
		}
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
			return merges, nil
		}
		if err := tx.mergeSegments(byClass[pick]); err != nil {
			return merges, err
		}
		merges++
	}
}

func (tx *wtx) segments() ([]segmentInfo, error) {
	rows, err := tx.conn.QueryContext(bg, "SELECT seg, resources, min_ix, max_ix FROM segments ORDER BY seg")
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

// mergeSegments replaces segs by one segment holding, per account and
// token, the union of their stamps minus those no longer current.
func (tx *wtx) mergeSegments(segs []segmentInfo) error {
	minIx, maxIx := segs[0].minIx, segs[0].maxIx
	segArgs := make([]any, len(segs))
	for i, s := range segs {
		minIx, maxIx = min(minIx, s.minIx), max(maxIx, s.maxIx)
		segArgs[i] = s.seg
	}
	segIn := "(?" + strings.Repeat(",?", len(segs)-1) + ")"
	live, err := tx.liveStamps(minIx, maxIx)
	if err != nil {
		return err
	}
	seg, err := tx.newSegment(0, minIx, maxIx)
	if err != nil {
		return err
	}
	accts, err := tx.accountIDs()
	if err != nil {
		return err
	}
	kept := newStampSet(minIx, maxIx) // the stamps the new segment holds
	for _, acct := range accts {
		// The ORDER BY runs through a sorter that reads every matching row
		// before the first is returned, so inserting the new segment's rows
		// meanwhile does not disturb the scan.
		rows, err := tx.conn.QueryContext(bg, "SELECT token, ixs FROM postings WHERE acct = ? AND seg IN "+segIn+" ORDER BY token, seg",
			append([]any{acct}, segArgs...)...)
		if err != nil {
			return fmt.Errorf("read segments: %w", err)
		}
		var batch []postingRow
		var cur []byte
		var ixs []int64
		emit := func() error {
			if cur == nil {
				return nil
			}
			if !slices.IsSorted(ixs) { // segments whose stamp ranges overlap
				ixs = sortUnique(ixs)
			}
			ixs = intersectSorted(ixs, live)
			if len(ixs) > 0 {
				for _, x := range ixs {
					kept.add(x)
				}
				batch = append(batch, postingRow{acct: acct, token: cur, ixs: encodeIxs(nil, ixs)})
			}
			ixs = ixs[:0]
			if len(batch) == bulkChunk {
				if err := tx.insertPostings(seg, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
			return nil
		}
		for rows.Next() {
			var token, blob []byte
			if err := rows.Scan(&token, &blob); err != nil {
				rows.Close()
				return fmt.Errorf("read segments: %w", err)
			}
			if cur == nil || !bytes.Equal(token, cur) {
				if err := emit(); err != nil {
					rows.Close()
					return err
				}
				cur = token
			}
			if ixs, err = decodeIxs(ixs, blob); err != nil {
				rows.Close()
				return fmt.Errorf("segment posting: %w", err)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("read segments: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read segments: %w", err)
		}
		if err := emit(); err != nil {
			return err
		}
		if err := tx.insertPostings(seg, batch); err != nil {
			return err
		}
		if _, err := tx.conn.ExecContext(bg, "DELETE FROM postings WHERE acct = ? AND seg IN "+segIn,
			append([]any{acct}, segArgs...)...); err != nil {
			return fmt.Errorf("drop merged segments: %w", err)
		}
	}
	if _, err := tx.conn.ExecContext(bg, "DELETE FROM segments WHERE seg IN "+segIn, segArgs...); err != nil {
		return fmt.Errorf("drop merged segments: %w", err)
	}
	if kept.n == 0 {
		_, err = tx.conn.ExecContext(bg, "DELETE FROM segments WHERE seg = ?", seg)
	} else {
		_, err = tx.conn.ExecContext(bg, "UPDATE segments SET resources = ? WHERE seg = ?", kept.n, seg)
	}
	if err != nil {
		return fmt.Errorf("record merged segment: %w", err)
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

// liveStamps returns the current stamps in [lo, hi], ascending.
func (tx *wtx) liveStamps(lo, hi int64) ([]int64, error) {
	out, err := tx.queryInts("SELECT ix FROM current WHERE ix BETWEEN ? AND ? AND deleted = 0 ORDER BY ix", lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read live stamps: %w", err)
	}
	return out, nil
}

func (tx *wtx) accountIDs() ([]int64, error) {
	out, err := tx.queryInts("SELECT id FROM accounts ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// queryInts runs a query of one integer column.
func (tx *wtx) queryInts(query string, args ...any) ([]int64, error) {
	rows, err := tx.conn.QueryContext(bg, query, args...)
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

// validateChunk bounds the stamps per validation query.
const validateChunk = 500

// lookupSegments runs m (with at least one clause) against the segments
// visible to q, a read transaction, and returns the matching current,
// non-deleted resources of acct, unordered.
func lookupSegments(ctx context.Context, q querier, acct int64, m store.Match) ([]store.Ref, error) {
	segRows, err := q.QueryContext(ctx, "SELECT seg FROM segments")
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
		args := make([]any, 0, len(chunk))
		for _, x := range chunk {
			args = append(args, x)
		}
		// By stamp alone, so the planner seeks current_by_ix; the account
		// check is a defence (stamps are unique across accounts).
		query := "SELECT acct, type, id, seq, deleted FROM current WHERE ix IN (?" + strings.Repeat(",?", len(chunk)-1) + ")"
		rows, err := q.QueryContext(ctx, query, args...)
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
