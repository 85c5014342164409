package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhealth/kiln/internal/store"
)

// AccountSubscriber is implemented by stores that can tell every node when
// an account row changes (the PostgreSQL store does, with LISTEN/NOTIFY).
// It is found by type assertion on Config.Store.
//
// SubscribeAccounts returns a channel that receives the name of every
// account created, updated or deleted by any node after the call returns.
// An empty name means changes may have been missed (for example across a
// reconnection): every account must be re-read. The channel is closed when
// ctx ends or the store is closed.
type AccountSubscriber interface {
	SubscribeAccounts(ctx context.Context) (<-chan string, error)
}

// Follow subscribes to account changes made by any node and starts a
// goroutine that re-reads each changed account's row (status and key ring)
// into the cache, as the monitor's check does before probing. So another
// node's revocation, restore, rewrap or key change takes effect here at
// once: a row persisted as Revoked or Unavailable wipes this node's cached
// keys, a row back to Active lets the next request unwrap the root key
// again, and a deleted account is dropped from the cache. On an empty name
// every cached account is re-read.
//
// Follow returns once the subscription is established (or with the error
// that prevented it; the caller then relies on the monitor's polling,
// which stays the safety net either way). The goroutine ends when ctx ends
// or the subscription channel is closed. Accounts not yet cached are not
// read: they are loaded fresh on first use.
func (r *Registry) Follow(ctx context.Context, sub AccountSubscriber) error {
	ch, err := sub.SubscribeAccounts(ctx)
	if err != nil {
		return fmt.Errorf("accounts: follow account changes: %w", err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case name, ok := <-ch:
				if !ok {
					if ctx.Err() == nil {
						r.log.Warn("accounts: account change notifications ended; relying on the key monitor's polling")
					}
					return
				}
				r.refresh(ctx, name)
			}
		}
	}()
	return nil
}

// refresh re-reads one cached account, or every cached account for "".
// errServiceLayer marks a failure to unwrap the inner layer with the
// service-managed key. That key is the node's own (a file every node must
// hold the same copy of), so such a failure is this node's fault, never
// the customer's: it must not be persisted as the account's key status,
// which every other node would follow (and which, for a service-key
// account, no check would ever restore). The request fails as a server
// error and the log says why.
var errServiceLayer = errors.New("accounts: service-managed key layer (is this node's service key the cluster's?)")

// errSwitchedElsewhere reports that a rewrap lost its compare-and-swap to
// another node that made the very same switch: the ring is as wanted, but
// this node did not write it (so it must not audit a rotation).
var errSwitchedElsewhere = errors.New("accounts: another node made the same rewrap first")

func (r *Registry) refresh(ctx context.Context, name string) {
	var names []string
	r.mu.RLock()
	if name == "" {
		for n := range r.entries {
			names = append(names, n)
		}
	} else if _, ok := r.entries[name]; ok {
		names = append(names, name)
	}
	r.mu.RUnlock()
	for _, n := range names {
		if err := r.refreshOne(ctx, n); err != nil && ctx.Err() == nil {
			r.log.Warn("accounts: reload changed account; the key monitor will retry", "account", n, "err", err)
		}
	}
}

func (r *Registry) refreshOne(ctx context.Context, name string) error {
	r.mu.RLock()
	e := r.entries[name]
	r.mu.RUnlock()
	if e == nil {
		return nil
	}
	a, err := r.cfg.Store.GetAccount(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !a.CreatedAt.Equal(e.createdAt)) {
		// Deleted on another node (perhaps re-created since, with a new
		// root key and a Rev that may equal ours): wipe our keys; the
		// account is loaded afresh on next use.
		r.forget(name)
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	err = r.reloadLocked(ctx, e)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if r.cfg.Observer != nil {
		st := StatusActive
		if l := e.lost.Load(); l != nil {
			st = l.Status
		}
		r.cfg.Observer.Status(name, st)
	}
	return nil
}
