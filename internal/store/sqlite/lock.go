package sqlite

import (
	"context"
	"fmt"
	"sync"

	"github.com/kilnhealth/kiln/internal/store"
)

// locks are in-process named mutexes. The SQLite file belongs to one
// process, so they exclude every holder that matters; they do not reach
// other Stores or processes on the same file.
type locks struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	ch   chan struct{} // holds a token while the lock is held
	refs int           // holders and waiters; the entry is dropped at 0
}

// Lock takes the named lock, waiting until it is free or ctx ends.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite: lock: %w", store.ErrClosed)
	}
	l := &s.locks
	l.mu.Lock()
	e := l.m[name]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		l.m[name] = e
	}
	e.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("sqlite: lock %q: %w", name, ctx.Err())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			release()
		})
	}, nil
}
