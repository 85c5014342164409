package search

import (
	"context"
	"fmt"
)

// ConditionalLock takes the store lock that serialises conditional writes
// (create with If-None-Exist, conditional update) of resourceType in
// account, across goroutines and nodes. The caller runs Resolve and its
// write while holding it, then calls unlock: two concurrent identical
// conditional creates then yield one resource. The lock is per type rather
// than per query because two different queries can match the same
// resource; its name holds only the account and type, never a search value.
func (s *Searcher) ConditionalLock(ctx context.Context, account, resourceType string) (unlock func(), err error) {
	unlock, err = s.cfg.Store.Lock(ctx, "search:conditional:"+account+":"+resourceType)
	if err != nil {
		return nil, fmt.Errorf("search: conditional lock %s: %w", resourceType, err)
	}
	return unlock, nil
}
