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
	seq     int64
	deleted bool
	tokens  [][]byte
}

// pendingMatch is what one Lookup takes from the cache: the pending refs
// that match.
type pendingMatch struct {
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
				c.drop(k)
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
		c.put(k, e)
		c.tail = max(c.tail, e.seq)
	}
	if err := rows.Close(); err != nil {
		return 0, pendingMatch{}, err
	}
	if err := rows.Err(); err != nil {
		return 0, pendingMatch{}, err
	}

	var pm pendingMatch
	consider := func(k pendingKey) {
		e := c.byRef[k]
		if k.acct != acct || e.deleted || (m.MaxSeq > 0 && e.seq > m.MaxSeq) {
			return
		}
		if len(m.Types) > 0 && !slices.Contains(m.Types, k.ref.Type) {
			return
		}
		if matches(e.tokens, m.Clauses) {
			pm.matched = append(pm.matched, k.ref)
		}
	}
	if len(m.Clauses) == 0 {
		for k := range c.byRef {
			consider(k)
		}
		return indexed, pm, nil
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
	return indexed, pm, nil
}

// withoutPending drops from refs the resources of acct that are pending in
// the cache (their index rows are stale). It reports false when the cache
// has moved to another indexed_seq since the Lookup began.
func (s *Store) withoutPending(acct, indexed int64, refs []store.Ref) ([]store.Ref, bool) {
	c := &s.pend
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.indexed != indexed {
		return nil, false
	}
	out := refs[:0]
	for _, r := range refs {
		if _, ok := c.byRef[pendingKey{acct: acct, ref: r}]; !ok {
			out = append(out, r)
		}
	}
	return out, true
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
