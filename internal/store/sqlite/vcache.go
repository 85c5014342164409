package sqlite

import (
	"sync"

	"github.com/kilnhealth/kiln/internal/store"
)

// versionCache keeps recently read current versions — sealed, exactly as
// stored — so repeated reads by id skip SQLite. It holds no plaintext.
//
// It is coherent with the single writer: after a group COMMIT the writer
// drops the entries that group changed and bumps gen, under mu. A reader
// notes gen before its query and caches the row only if gen is unchanged
// when it stores it, so a row read from a snapshot older than a commit is
// never cached after that commit's invalidation.
type versionCache struct {
	mu  sync.RWMutex
	gen uint64
	m   map[string]store.Version
	max int
}

func newVersionCache(max int) *versionCache {
	if max <= 0 {
		return nil
	}
	return &versionCache{m: make(map[string]store.Version, max), max: max}
}

func cacheKey(account string, ref store.Ref) string {
	return account + "\x00" + ref.Type + "\x00" + ref.ID
}

// get returns a cached current version.
func (c *versionCache) get(key string) (store.Version, bool) {
	if c == nil {
		return store.Version{}, false
	}
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	return v, ok
}

// generation returns the commit generation a reader must quote to put.
func (c *versionCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches v unless a group committed since gen was read.
func (c *versionCache) put(key string, v store.Version, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m { // evict an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[key] = v
}

// invalidate drops keys (everything when all) and starts a new generation.
// The writer calls it after every successful COMMIT.
func (c *versionCache) invalidate(keys []string, all bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if all {
		clear(c.m)
		return
	}
	for _, k := range keys {
		delete(c.m, k)
	}
}
