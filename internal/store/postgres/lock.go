package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// localLock queues the callers of one lock name inside this process, so at
// most one of them holds a database connection while waiting.
type localLock struct {
	sem  chan struct{} // capacity 1: holding the token means "our turn"
	refs int           // callers holding or waiting; guarded by Store.mu
}

// heldLock is an advisory lock held on a connection of the lock pool.
type heldLock struct {
	conn  *pgxpool.Conn
	key   int64
	name  string
	local *localLock
}

// destroy ends the session that holds the lock: the server drops the lock
// with it. Used by Close and when an unlock cannot be confirmed.
func (h *heldLock) destroy() {
	c := h.conn.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx) //nolint:errcheck // the session ends either way
}

// Lock takes the named lock (see store.Store). It is a session-level
// pg_advisory_lock on a connection of a dedicated pool, keyed by a hash of
// the schema and the name, so it excludes every holder of the same name on
// the same database, in this process or another. Callers in this process
// first queue on an in-process lock. Waiting honours ctx. The returned
// unlock is idempotent; if the connection is lost meanwhile the server has
// already dropped the lock.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	ctx, done, err := s.enter(ctx)
	if err != nil {
		return nil, s.fail("lock", err)
	}
	defer done()

	s.mu.Lock()
	l := s.local[name]
	if l == nil {
		l = &localLock{sem: make(chan struct{}, 1)}
		s.local[name] = l
	}
	l.refs++
	s.mu.Unlock()

	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		s.releaseLocal(name, l, false)
		return nil, s.fail("lock", fmt.Errorf("wait for lock %q: %w", name, ctx.Err()))
	}
	conn, err := s.lockPool.Acquire(ctx)
	if err != nil {
		s.releaseLocal(name, l, true)
		return nil, s.fail("lock", fmt.Errorf("acquire a lock connection: %w", err))
	}
	key := s.lockKey(name)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		// The lock may have been granted just as ctx ended: end the
		// session so it cannot outlive this call.
		(&heldLock{conn: conn}).destroy()
		s.releaseLocal(name, l, true)
		return nil, s.fail("lock", fmt.Errorf("wait for lock %q: %w", name, err))
	}
	h := &heldLock{conn: conn, key: key, name: name, local: l}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		h.destroy()
		s.releaseLocal(name, l, true)
		return nil, s.fail("lock", fmt.Errorf("lock %q", name))
	}
	s.held[h] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { s.unlock(h) }) }, nil
}

func (s *Store) unlock(h *heldLock) {
	s.mu.Lock()
	_, mine := s.held[h]
	delete(s.held, h)
	s.mu.Unlock()
	if mine { // otherwise Close already ended the session
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var ok bool
		err := h.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, h.key).Scan(&ok)
		cancel()
		if err != nil || !ok {
			s.log.Warn("postgres: unlock could not be confirmed; closing its session", "lock", h.name, "err", err)
			h.destroy()
		} else {
			h.conn.Release()
		}
	}
	s.releaseLocal(h.name, h.local, true)
}

// releaseLocal gives up a caller's place on the in-process lock; holding
// says whether it held the token.
func (s *Store) releaseLocal(name string, l *localLock, holding bool) {
	if holding {
		<-l.sem
	}
	s.mu.Lock()
	l.refs--
	if l.refs == 0 && s.local[name] == l {
		delete(s.local, name)
	}
	s.mu.Unlock()
}
