package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/kilnhealth/kiln/internal/store"
)

// pendingCache mirrors the current rows whose tokens are not merged into the
// token index yet (seq > indexed_seq), so Lookup can match them. It is a
// cache of the database, refreshed by tailing current by seq, so it is right
// whichever handle committed the rows.
type pendingCache struct {
	mu      sync.Mutex
	indexed int64 // the indexed_seq the entries are relative to
	tail    int64 // highest seq read
	byRef   map[pendingKey]pendingEntry
}

type pendingKey struct {
	acct int64
	ref  store.Ref
}

type pendingEntry struct {
	seq     int64
	deleted bool
	tokens  [][]byte
}

// pendingMatch is what one Lookup needs from the cache: every pending ref of
// the account (their index rows are stale and must be ignored) and those
// that match.
type pendingMatch struct {
	all     map[store.Ref]struct{}
	matched []store.Ref
}

// pendingFor refreshes the cache and evaluates m against the pending
// resources of acct. It returns the indexed_seq the answer is relative to.
func (s *Store) pendingFor(ctx context.Context, acct int64, m store.Match) (int64, pendingMatch, error) {
	c := &s.pend
	c.mu.Lock()
	defer c.mu.Unlock()
	var indexed int64
	if err := s.r.indexedSeq.QueryRowContext(ctx).Scan(&indexed); err != nil {
		return 0, pendingMatch{}, err
	}
	if indexed != c.indexed {
		for k, e := range c.byRef {
			if e.seq <= indexed {
				delete(c.byRef, k)
			}
		}
		c.indexed = indexed
	}
	rows, err := s.r.tail.QueryContext(ctx, max(c.tail, indexed))
	if err != nil {
		return 0, pendingMatch{}, err
	}
	for rows.Next() {
		var k pendingKey
		var e pendingEntry
		var tokens []byte
		if err := rows.Scan(&k.acct, &k.ref.Type, &k.ref.ID, &e.seq, &e.deleted, &tokens); err != nil {
			rows.Close()
			return 0, pendingMatch{}, err
		}
		if e.tokens, err = decodeList(tokens); err != nil {
			rows.Close()
			return 0, pendingMatch{}, fmt.Errorf("%s/%s: %w", k.ref.Type, k.ref.ID, err)
		}
		c.byRef[k] = e
		c.tail = max(c.tail, e.seq)
	}
	if err := rows.Close(); err != nil {
		return 0, pendingMatch{}, err
	}
	if err := rows.Err(); err != nil {
		return 0, pendingMatch{}, err
	}

	pm := pendingMatch{all: map[store.Ref]struct{}{}}
	for k, e := range c.byRef {
		if k.acct != acct {
			continue
		}
		pm.all[k.ref] = struct{}{}
		if e.deleted || (m.MaxSeq > 0 && e.seq > m.MaxSeq) {
			continue
		}
		if len(m.Types) > 0 && !slices.Contains(m.Types, k.ref.Type) {
			continue
		}
		if matches(e.tokens, m.Clauses) {
			pm.matched = append(pm.matched, k.ref)
		}
	}
	return indexed, pm, nil
}

// matches reports whether tokens satisfy every clause (each an OR).
func matches(tokens [][]byte, clauses [][][]byte) bool {
	for _, clause := range clauses {
		ok := false
		for _, want := range clause {
			if slices.ContainsFunc(tokens, func(t []byte) bool { return bytes.Equal(t, want) }) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
