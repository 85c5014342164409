package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"

	"github.com/kilnhealth/kiln/internal/store"
)

// pendingCache mirrors the pending rows (tokens written since the last
// flush into a posting segment, stamps above indexed_ix), so Lookup can
// match them without reading them all each time. It is a cache of the
// database, refreshed by tailing pending by stamp inside the caller's read
// transaction, so it is right whichever handle committed the rows.
type pendingCache struct {
	mu      sync.Mutex
	indexed int64 // the indexed_ix the entries are relative to
	tail    int64 // highest stamp read
	byRef   map[pendingKey]pendingEntry
	byToken map[string]map[pendingKey]struct{} // inverted index of byRef
}

func (c *pendingCache) put(k pendingKey, e pendingEntry) {
	c.drop(k)
	c.byRef[k] = e
	for _, t := range e.tokens {
		set := c.byToken[string(t)]
		if set == nil {
			set = map[pendingKey]struct{}{}
			c.byToken[string(t)] = set
		}
		set[k] = struct{}{}
	}
}

func (c *pendingCache) drop(k pendingKey) {
	old, ok := c.byRef[k]
	if !ok {
		return
	}
	for _, t := range old.tokens {
		if set := c.byToken[string(t)]; set != nil {
			delete(set, k)
			if len(set) == 0 {
				delete(c.byToken, string(t))
			}
		}
	}
	delete(c.byRef, k)
}

type pendingKey struct {
	acct int64
	ref  store.Ref
}

type pendingEntry struct {
	ix      int64
	seq     int64
	deleted bool
	tokens  [][]byte
}

// readPending scans the pending rows of q above stamp from, in stamp order.
func (s *Store) readPending(ctx context.Context, q *sql.Tx, from int64, fn func(pendingKey, pendingEntry)) error {
	rows, err := q.StmtContext(ctx, s.r.tail).QueryContext(ctx, from)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k pendingKey
		var e pendingEntry
		var tokens []byte
		if err := rows.Scan(&e.ix, &k.acct, &k.ref.Type, &k.ref.ID, &e.seq, &e.deleted, &tokens); err != nil {
			return err
		}
		if e.tokens, err = decodeList(tokens); err != nil {
			return fmt.Errorf("%s/%s: %w", k.ref.Type, k.ref.ID, err)
		}
		fn(k, e)
	}
	return rows.Err()
}

// pendingFor brings the cache up to the snapshot of tx (whose indexed_ix
// is indexed) and returns the pending resources of acct that match m. It
// reports false when the cache is already past that snapshot (a flush
// committed after tx began and another Lookup advanced the cache).
func (s *Store) pendingFor(ctx context.Context, tx *sql.Tx, indexed, acct int64, m store.Match) ([]store.Ref, bool, error) {
	c := &s.pend
	c.mu.Lock()
	defer c.mu.Unlock()
	if indexed < c.indexed {
		return nil, false, nil
	}
	if indexed > c.indexed {
		for k, e := range c.byRef {
			if e.ix <= indexed {
				c.drop(k)
			}
		}
		c.indexed = indexed
	}
	err := s.readPending(ctx, tx, max(c.tail, indexed), func(k pendingKey, e pendingEntry) {
		c.put(k, e)
		c.tail = max(c.tail, e.ix)
	})
	if err != nil {
		return nil, false, err
	}
	var matched []store.Ref
	consider := func(k pendingKey) {
		e := c.byRef[k]
		if keep(k, e, acct, m) {
			matched = append(matched, k.ref)
		}
	}
	if len(m.Clauses) == 0 {
		for k := range c.byRef {
			consider(k)
		}
		return matched, true, nil
	}
	// Candidates come from the first clause's tokens; a key found through
	// two of its tokens is considered once.
	seen := map[pendingKey]bool{}
	for _, t := range m.Clauses[0] {
		for k := range c.byToken[string(t)] {
			if !seen[k] {
				seen[k] = true
				consider(k)
			}
		}
	}
	return matched, true, nil
}

// pendingDirect is pendingFor without the cache: it reads every pending
// row of the snapshot. The latest row of a resource wins.
func (s *Store) pendingDirect(ctx context.Context, tx *sql.Tx, indexed, acct int64, m store.Match) ([]store.Ref, error) {
	latest := map[pendingKey]pendingEntry{}
	err := s.readPending(ctx, tx, indexed, func(k pendingKey, e pendingEntry) {
		if k.acct == acct {
			latest[k] = e
		}
	})
	if err != nil {
		return nil, err
	}
	var matched []store.Ref
	for k, e := range latest {
		if keep(k, e, acct, m) {
			matched = append(matched, k.ref)
		}
	}
	return matched, nil
}

// keep reports whether pending entry e of k answers m for acct.
func keep(k pendingKey, e pendingEntry, acct int64, m store.Match) bool {
	if k.acct != acct || e.deleted || (m.MaxSeq > 0 && e.seq > m.MaxSeq) {
		return false
	}
	if len(m.Types) > 0 && !slices.Contains(m.Types, k.ref.Type) {
		return false
	}
	return matches(e.tokens, m.Clauses)
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
