package accounts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/store"
)

// ChangeKey points a customer-key account at another key URI (another key,
// or another pinned version). The root key is unwrapped with the current
// key, wrapped under the new one, verified, and only then switched by
// compare-and-swap. Service-key accounts get ErrImmutable: the key source
// is fixed at creation.
func (r *Registry) ChangeKey(ctx context.Context, name, newURI string) (Info, error) {
	e, err := r.entry(ctx, name)
	if err != nil {
		return Info{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := r.reloadLocked(ctx, e); err != nil {
		return Info{}, fmt.Errorf("accounts: reload %s: %w", name, err)
	}
	if e.doc.Encryption.KeySource != SourceCustomer {
		return Info{}, fmt.Errorf("%w: account %s uses the service-managed key; keySource cannot change", ErrImmutable, name)
	}
	if newURI == "" {
		return Info{}, &InvalidError{Field: "encryption.keyUri", Reason: "must not be empty"}
	}
	nk, err := r.cfg.Keys.Open(ctx, newURI)
	if err != nil {
		return Info{}, keyError(newURI, err)
	}
	if _, err := nk.Probe(ctx); err != nil {
		return Info{}, keyError(newURI, err)
	}
	old := e.doc.Encryption
	if err := r.rewrapLocked(ctx, e, nk, newURI); err != nil && !errors.Is(err, errSwitchedElsewhere) {
		var ke *keys.Error
		if errors.As(err, &ke) {
			return Info{}, keyError(ke.KeyURI, err)
		}
		return Info{}, err
	}
	r.audit(ctx, Event{Account: name, Action: ActionKeyChanged, Success: true, KeyURI: newURI,
		KeyVersion: e.doc.Encryption.KeyVersion, PreviousVersion: old.KeyURI + " " + old.KeyVersion, Status: e.doc.Encryption.KeyStatus})
	return e.info(), nil
}

// rewrapLocked moves the customer layer to key k (URI uri). Data is not
// re-encrypted: only the wrapped inner layer changes. Caller holds e.mu.
func (r *Registry) rewrapLocked(ctx context.Context, e *entry, k keys.Key, uri string) error {
	inner, err := r.unwrapInner(ctx, e.doc)
	if err != nil {
		return err
	}
	defer clear(inner.Ciphertext)
	outer, err := wrapVerified(ctx, k, inner.Ciphertext)
	if err != nil {
		return err
	}
	nd := *e.doc
	nd.Ring.Customer = &outer
	nd.Encryption.KeyURI = uri
	nd.Encryption.KeyVersion = outer.Version
	err = r.persistLocked(ctx, e, &nd)
	if errors.Is(err, store.ErrConflict) {
		// Another node changed the row first. If it made the same switch, we
		// are done; otherwise report the conflict and let the caller retry.
		if rerr := r.reloadLocked(ctx, e); rerr != nil {
			return rerr
		}
		if e.doc.Encryption.KeyURI == uri && e.doc.Encryption.KeyVersion == outer.Version {
			return errSwitchedElsewhere
		}
		return err
	}
	if err == nil && r.cfg.Observer != nil {
		r.cfg.Observer.Rewrap(e.name)
	}
	return err
}

// Check probes an account's key now, as the monitor does: it follows a new
// key version (rewrap), marks the account Revoked or Unavailable when the
// key cannot be used, and restores it when the key is usable again.
func (r *Registry) Check(ctx context.Context, name string) (Info, error) {
	e, err := r.entry(ctx, name)
	if err != nil {
		return Info{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r.checkLocked(ctx, e)
	return e.info(), nil
}

func (r *Registry) checkLocked(ctx context.Context, e *entry) {
	if err := r.reloadLocked(ctx, e); err != nil {
		r.log.Warn("key check: reload account", "account", e.name, "err", err)
	}
	now := r.now()
	if e.doc.Encryption.KeySource != SourceCustomer {
		e.checkedAt = now
		r.restoreLocked(ctx, e, now) // a status persisted by an older node
		return
	}
	enc := e.doc.Encryption
	start := time.Now()
	k, err := r.cfg.Keys.Open(ctx, enc.KeyURI)
	var probe keys.ProbeResult
	if err == nil {
		probe, err = k.Probe(ctx)
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.KeyCheck(e.name, err, time.Since(start))
	}
	e.checkedAt = now
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not the key's fault
		}
		reason, status := classify(err)
		if status == StatusUnavailable && r.cfg.UnreachableGrace > 0 && e.lost.Load() == nil {
			if e.failSince.IsZero() {
				e.failSince = now
				r.audit(ctx, Event{Account: e.name, Action: ActionCheckFailed, Success: false, KeyURI: enc.KeyURI,
					KeyVersion: enc.KeyVersion, Status: enc.KeyStatus, Reason: reason, Message: err.Error()})
			}
			if now.Sub(e.failSince) < r.cfg.UnreachableGrace {
				return
			}
		}
		if l := e.lost.Load(); l != nil && l.Status == status && l.Reason == reason {
			return
		}
		r.markLostLocked(ctx, e, status, reason, err)
		return
	}
	if !e.failSince.IsZero() && e.lost.Load() == nil {
		r.audit(ctx, Event{Account: e.name, Action: ActionCheckRecovered, Success: true, KeyURI: enc.KeyURI, KeyVersion: enc.KeyVersion, Status: StatusActive})
	}
	e.failSince = time.Time{}

	if probe.Version != "" && probe.Version != enc.KeyVersion {
		prev := enc.KeyVersion
		if err := r.rewrapLocked(ctx, e, k, enc.KeyURI); errors.Is(err, errSwitchedElsewhere) {
			r.log.Debug("key rotation: another node rewrapped first", "account", e.name, "keyVersion", probe.Version)
		} else if err != nil {
			r.log.Warn("key rotation: rewrap failed; will retry next check", "account", e.name, "keyUri", enc.KeyURI, "newVersion", probe.Version, "err", err)
			r.audit(ctx, Event{Account: e.name, Action: ActionRewrapped, Success: false, KeyURI: enc.KeyURI,
				KeyVersion: probe.Version, PreviousVersion: prev, Status: e.doc.Encryption.KeyStatus, Message: err.Error()})
		} else {
			r.audit(ctx, Event{Account: e.name, Action: ActionRotated, Success: true, KeyURI: enc.KeyURI,
				KeyVersion: e.doc.Encryption.KeyVersion, PreviousVersion: prev, Status: e.doc.Encryption.KeyStatus,
				Message: "new key version detected; root key rewrapped, no data re-encrypted"})
		}
	}

	r.restoreLocked(ctx, e, now)
}

// restoreLocked brings an account whose key access was lost back to Active
// when its ring unwraps again. Caller holds e.mu.
func (r *Registry) restoreLocked(ctx context.Context, e *entry, now time.Time) {
	enc := e.doc.Encryption
	if e.lost.Load() == nil && enc.KeyStatus == StatusActive {
		return
	}
	{
		ak, err := r.unlock(ctx, e.doc, e.name)
		if errors.Is(err, errServiceLayer) {
			r.log.Error("key check: this node cannot unwrap with the service-managed key; status left unchanged", "account", e.name, "err", err)
			return
		} else if err != nil {
			reason, status := classify(err)
			r.markLostLocked(ctx, e, status, reason, err)
			return
		}
		nd := *e.doc
		nd.Encryption.KeyStatus, nd.Encryption.KeyStatusReason, nd.Encryption.KeyStatusMessage = StatusActive, ReasonHealthy, ""
		nd.Encryption.KeyCheckedAt = now
		if err := r.persistLocked(ctx, e, &nd); err != nil && !errors.Is(err, store.ErrConflict) {
			r.log.Warn("persist restored status", "account", e.name, "err", err)
			ak.Wipe()
			return
		} else if err != nil {
			_ = r.reloadLocked(ctx, e) // another node restored it first
		}
		e.keys.Store(ak)
		e.lost.Store(nil)
		if r.cfg.Observer != nil {
			r.cfg.Observer.Status(e.name, StatusActive)
		}
		r.audit(ctx, Event{Account: e.name, Action: ActionRestored, Success: true, KeyURI: enc.KeyURI, KeyVersion: e.doc.Encryption.KeyVersion, Status: StatusActive})
	}
}

// CheckAll runs Check on every account in the store, a few at a time, and
// drops cached accounts that were deleted elsewhere. One account's failure
// never stops the sweep.
func (r *Registry) CheckAll(ctx context.Context, perCheck time.Duration) {
	all, err := r.cfg.Store.ListAccounts(ctx)
	if err != nil {
		r.log.Warn("key monitor: list accounts", "err", err)
		return
	}
	present := map[string]bool{}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, a := range all {
		present[a.Name] = true
		wg.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, perCheck)
			defer cancel()
			if _, err := r.Check(cctx, name); err != nil && !errors.Is(err, ErrNotFound) {
				r.log.Warn("key monitor: check", "account", name, "err", err)
			}
		}(a.Name)
	}
	wg.Wait()
	r.mu.RLock()
	var gone []string
	for name := range r.entries {
		if !present[name] {
			gone = append(gone, name)
		}
	}
	r.mu.RUnlock()
	for _, name := range gone {
		r.forget(name)
	}
}

// RunMonitor checks every account every interval until ctx is done.
func (r *Registry) RunMonitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.CheckAll(ctx, interval)
		}
	}
}

// Degraded returns the accounts whose key access is lost, by name.
func (r *Registry) Degraded() map[string]*AccessLostError {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := map[string]*AccessLostError{}
	for name, e := range r.entries {
		if l := e.lost.Load(); l != nil {
			out[name] = l
		}
	}
	return out
}
