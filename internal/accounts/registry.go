package accounts

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/secret"
	"github.com/kilnhealth/kiln/internal/store"
)

// Config wires a Registry. Store, Keys, ServiceKeyURI, Codec and Rand are required.
type Config struct {
	Store         store.Store
	Keys          *keys.Registry
	ServiceKeyURI string // e.g. "local:service"
	Codec         *seal.Codec
	Rand          io.Reader
	Now           func() time.Time // defaults to time.Now
	Logger        *slog.Logger     // defaults to slog.Default()
	Audit         AuditSink        // optional
	Observer      Observer         // optional
	// UnreachableGrace is how long a key service may stay unreachable before
	// the account is marked Unavailable. Denials (permission, disabled,
	// deleted) revoke at once. Default 0: at the first failed check.
	UnreachableGrace time.Duration
	// Reserved names cannot be created through Create (see CreateSystem).
	Reserved []string
}

// Registry is the set of accounts, backed by the store, with a cache of
// unwrapped subkeys. Safe for concurrent use.
type Registry struct {
	cfg Config
	log *slog.Logger

	mu      sync.RWMutex
	entries map[string]*entry
}

// entry is the cached state of one account.
type entry struct {
	name      string
	createdAt time.Time

	mu        sync.Mutex // serialises unlock, rewrap, status changes
	rev       int64
	doc       *document
	checkedAt time.Time
	failSince time.Time // first failure of the current unreachable streak

	keys atomic.Pointer[seal.AccountKeys] // nil when locked or access lost
	lost atomic.Pointer[AccessLostError]  // non-nil while key access is lost
}

// New builds a registry.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.ServiceKeyURI == "" || cfg.Codec == nil || cfg.Rand == nil {
		return nil, errors.New("accounts: Config needs Store, Keys, ServiceKeyURI, Codec and Rand")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, log: cfg.Logger, entries: map[string]*entry{}}, nil
}

func (r *Registry) now() time.Time { return r.cfg.Now().UTC() }

func (r *Registry) audit(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	lvl := slog.LevelInfo
	if !e.Success {
		lvl = slog.LevelWarn
	}
	r.log.Log(ctx, lvl, "key event", "account", e.Account, "action", e.Action, "success", e.Success,
		"keyUri", e.KeyURI, "keyVersion", e.KeyVersion, "previousVersion", e.PreviousVersion,
		"status", e.Status, "reason", e.Reason, "message", e.Message)
	if r.cfg.Audit != nil {
		r.cfg.Audit.Record(ctx, e)
	}
}

// info renders the public view. Caller holds e.mu or accepts a racy read of checkedAt.
func (e *entry) info() Info {
	enc := e.doc.Encryption
	if !e.checkedAt.IsZero() {
		enc.KeyCheckedAt = e.checkedAt
	}
	// What this node enforces wins over the stored row, which may lag when
	// persisting the status failed.
	if l := e.lost.Load(); l != nil {
		enc.KeyStatus, enc.KeyStatusReason, enc.KeyStatusMessage = l.Status, l.Reason, l.Message
	}
	status := "Active"
	if enc.KeyStatus != StatusActive {
		status = "Inaccessible"
	}
	return Info{Name: e.name, CreatedAt: e.createdAt, Status: status, Encryption: enc}
}

func (r *Registry) isReserved(name string) bool {
	for _, n := range r.cfg.Reserved {
		if n == name {
			return true
		}
	}
	return false
}

// entry returns the cached entry, loading it from the store on first use.
func (r *Registry) entry(ctx context.Context, name string) (*entry, error) {
	r.mu.RLock()
	e := r.entries[name]
	r.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	a, err := r.cfg.Store.GetAccount(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: load %s: %w", name, err)
	}
	d, err := decodeDocument(a.Data)
	if err != nil {
		return nil, fmt.Errorf("accounts: load %s: %w", name, err)
	}
	ne := &entry{name: a.Name, createdAt: a.CreatedAt, rev: a.Rev, doc: d}
	if d.Encryption.KeyStatus != StatusActive {
		ne.lost.Store(lostFrom(name, d.Encryption))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[name]; e != nil {
		return e, nil
	}
	r.entries[name] = ne
	if r.cfg.Observer != nil {
		r.cfg.Observer.Status(name, d.Encryption.KeyStatus)
	}
	return ne, nil
}

func lostFrom(name string, enc Encryption) *AccessLostError {
	return &AccessLostError{Account: name, Status: enc.KeyStatus, Reason: enc.KeyStatusReason, Message: enc.KeyStatusMessage}
}

// Get returns an account's public view.
func (r *Registry) Get(ctx context.Context, name string) (Info, error) {
	e, err := r.entry(ctx, name)
	if err != nil {
		return Info{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.info(), nil
}

// List returns every account, ordered by name.
func (r *Registry) List(ctx context.Context) ([]Info, error) {
	all, err := r.cfg.Store.ListAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("accounts: list: %w", err)
	}
	out := make([]Info, 0, len(all))
	for _, a := range all {
		info, err := r.Get(ctx, a.Name)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Spec is a request to create an account.
type Spec struct {
	Name      string
	KeySource KeySource // "" means service
	KeyURI    string    // required for customer
}

// Create makes a new account with a fresh root key. A customer key is
// checked first (get, wrap, unwrap); if it is unusable the answer is a
// *KeyError and nothing is stored.
func (r *Registry) Create(ctx context.Context, spec Spec) (Info, error) {
	if err := ValidateName(spec.Name); err != nil {
		return Info{}, err
	}
	if r.isReserved(spec.Name) {
		return Info{}, fmt.Errorf("%w: %q", ErrReserved, spec.Name)
	}
	return r.create(ctx, spec)
}

// CreateSystem creates an account even if its name is reserved, with the
// service key. It is a no-op when the account exists.
func (r *Registry) CreateSystem(ctx context.Context, name string) error {
	_, err := r.create(ctx, Spec{Name: name, KeySource: SourceService})
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

func (r *Registry) create(ctx context.Context, spec Spec) (Info, error) {
	switch spec.KeySource {
	case "":
		spec.KeySource = SourceService
	case SourceService, SourceCustomer:
	default:
		return Info{}, &InvalidError{Field: "encryption.keySource", Reason: `must be "service" or "customer"`}
	}
	if spec.KeySource == SourceService && spec.KeyURI != "" {
		return Info{}, &InvalidError{Field: "encryption.keyUri", Reason: `only allowed with keySource "customer"`}
	}
	if spec.KeySource == SourceCustomer && spec.KeyURI == "" {
		return Info{}, &InvalidError{Field: "encryption.keyUri", Reason: `required with keySource "customer"`}
	}
	if _, err := r.cfg.Store.GetAccount(ctx, spec.Name); err == nil {
		return Info{}, ErrExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return Info{}, fmt.Errorf("accounts: create %s: %w", spec.Name, err)
	}

	var customer keys.Key
	var probe keys.ProbeResult
	if spec.KeySource == SourceCustomer {
		k, err := r.cfg.Keys.Open(ctx, spec.KeyURI)
		if err != nil {
			return Info{}, keyError(spec.KeyURI, err)
		}
		if probe, err = k.Probe(ctx); err != nil {
			return Info{}, keyError(spec.KeyURI, err)
		}
		customer = k
	}

	arkBytes := make([]byte, seal.RootKeySize)
	if _, err := io.ReadFull(r.cfg.Rand, arkBytes); err != nil {
		return Info{}, fmt.Errorf("accounts: root key: %w", err)
	}
	ark := secret.New(arkBytes)
	clear(arkBytes)
	defer ark.Wipe()

	sk, err := r.cfg.Keys.Open(ctx, r.cfg.ServiceKeyURI)
	if err != nil {
		return Info{}, fmt.Errorf("accounts: service key: %w", err)
	}
	inner, err := sk.Wrap(ctx, ark.Expose())
	if err != nil {
		return Info{}, fmt.Errorf("accounts: wrap under service key: %w", err)
	}
	d := &document{
		Format:     documentFormat,
		Encryption: Encryption{KeySource: spec.KeySource, KeyStatus: StatusActive, KeyStatusReason: ReasonHealthy},
		Ring:       ring{Service: inner, Generations: seal.Generations{Current: 1, Min: 1}},
	}
	if customer != nil {
		outer, err := wrapVerified(ctx, customer, inner.Ciphertext)
		if err != nil {
			return Info{}, keyError(spec.KeyURI, err)
		}
		d.Ring.Service.Ciphertext = nil
		d.Ring.Customer = &outer
		d.Encryption.KeyURI = spec.KeyURI
		d.Encryption.KeyVersion = outer.Version
		_ = probe
	}
	data, err := d.encode()
	if err != nil {
		return Info{}, err
	}
	a, err := r.cfg.Store.CreateAccount(ctx, store.Account{Name: spec.Name, CreatedAt: r.now(), Data: data})
	if errors.Is(err, store.ErrExists) {
		return Info{}, ErrExists
	}
	if err != nil {
		return Info{}, fmt.Errorf("accounts: create %s: %w", spec.Name, err)
	}
	k, err := seal.Derive(spec.Name, ark, d.Ring.Generations, r.cfg.Codec, r.cfg.Rand)
	if err != nil {
		return Info{}, err
	}
	e := &entry{name: a.Name, createdAt: a.CreatedAt, rev: a.Rev, doc: d, checkedAt: r.now()}
	e.keys.Store(k)
	r.mu.Lock()
	r.entries[a.Name] = e
	r.mu.Unlock()
	if r.cfg.Observer != nil {
		r.cfg.Observer.Status(a.Name, StatusActive)
	}
	r.audit(ctx, Event{Account: a.Name, Action: ActionCreated, Success: true, KeyURI: d.Encryption.KeyURI, KeyVersion: d.Encryption.KeyVersion, Status: StatusActive})
	return e.info(), nil
}

// wrapVerified wraps secret under k and unwraps it again to prove the
// result is readable before anything depends on it.
func wrapVerified(ctx context.Context, k keys.Key, secret []byte) (keys.Wrapped, error) {
	w, err := k.Wrap(ctx, secret)
	if err != nil {
		return keys.Wrapped{}, err
	}
	back, err := k.Unwrap(ctx, w)
	if err != nil {
		return keys.Wrapped{}, err
	}
	if subtle.ConstantTimeCompare(back, secret) != 1 {
		return keys.Wrapped{}, &keys.Error{Op: "verify", KeyURI: k.URI(), Err: keys.ErrUnwrapFailed}
	}
	return w, nil
}

// keyError classifies a key failure for the create/change answer.
func keyError(uri string, err error) error {
	reason, _ := classify(err)
	return &KeyError{KeyURI: uri, Reason: reason, Err: err}
}

// classify maps a key error to a reason code and the status it leads to.
func classify(err error) (reason string, status KeyStatus) {
	switch {
	case errors.Is(err, keys.ErrPermissionDenied):
		return ReasonPermissionDenied, StatusRevoked
	case errors.Is(err, keys.ErrKeyDisabled):
		return ReasonKeyDisabled, StatusRevoked
	case errors.Is(err, keys.ErrKeyNotFound):
		return ReasonKeyNotFound, StatusRevoked
	case errors.Is(err, keys.ErrUnauthenticated):
		return ReasonUnauthenticated, StatusRevoked
	case errors.Is(err, keys.ErrUnwrapFailed):
		return ReasonUnwrapFailed, StatusRevoked
	case errors.Is(err, keys.ErrUnsupported):
		return ReasonUnsupported, StatusRevoked
	case errors.Is(err, keys.ErrInvalidURI):
		return ReasonInvalidURI, StatusRevoked
	case errors.Is(err, keys.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return ReasonUnreachable, StatusUnavailable
	default:
		return ReasonUnknown, StatusUnavailable
	}
}

// reasonText explains a reason and how to restore access.
func reasonText(reason string, uri string) string {
	switch reason {
	case ReasonPermissionDenied:
		return "Kiln's identity lacks get, wrapKey or unwrapKey permission on " + uri + ". Grant them again in the key vault's access policy; access returns within one key-check interval."
	case ReasonKeyDisabled:
		return "The key " + uri + " (or the version the account uses) is disabled. Enable it in the key vault; access returns within one key-check interval."
	case ReasonKeyNotFound:
		return "The key " + uri + " was not found: it was deleted or purged. Recover the deleted key in the key vault to restore access; a purged key cannot be recovered and the data is lost."
	case ReasonUnauthenticated:
		return "The key vault refused Kiln's credentials for " + uri + ". Fix the credentials; access returns within one key-check interval."
	case ReasonUnreachable:
		return "The key vault for " + uri + " is unreachable. Access returns within one key-check interval after the vault is reachable again."
	case ReasonUnwrapFailed:
		return "The key " + uri + " could not unwrap the account key. Restore the key version recorded for the account."
	default:
		return "The customer-managed key " + uri + " cannot be used. Check the key vault; access returns within one key-check interval after the key is usable."
	}
}

// Keys returns the account's subkeys, unwrapping the ring on first use. It
// returns ErrNotFound for an unknown account and an *AccessLostError while
// key access is lost.
func (r *Registry) Keys(ctx context.Context, name string) (*seal.AccountKeys, error) {
	e, err := r.entry(ctx, name)
	if err != nil {
		return nil, err
	}
	if l := e.lost.Load(); l != nil {
		return nil, l
	}
	if k := e.keys.Load(); k != nil {
		return k, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if l := e.lost.Load(); l != nil {
		return nil, l
	}
	if k := e.keys.Load(); k != nil {
		return k, nil
	}
	k, err := r.unlock(ctx, e.doc, name)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		var ke *keys.Error
		if errors.As(err, &ke) && !errors.Is(err, errServiceLayer) {
			reason, status := classify(err)
			r.markLostLocked(ctx, e, status, reason, err)
			return nil, e.lost.Load()
		}
		return nil, err
	}
	e.keys.Store(k)
	return k, nil
}

// unlock unwraps the ARK through every layer and derives the subkeys.
func (r *Registry) unlock(ctx context.Context, d *document, name string) (*seal.AccountKeys, error) {
	start := time.Now()
	ark, err := r.unwrapARK(ctx, d)
	if r.cfg.Observer != nil {
		r.cfg.Observer.Unwrap(name, err, time.Since(start))
	}
	if err != nil {
		return nil, err
	}
	defer ark.Wipe()
	return seal.Derive(name, ark, d.Ring.Generations, r.cfg.Codec, r.cfg.Rand)
}

// unwrapInner returns the inner (service-wrapped) layer with its ciphertext,
// unwrapping the customer layer when there is one.
func (r *Registry) unwrapInner(ctx context.Context, d *document) (keys.Wrapped, error) {
	inner := d.Ring.Service
	if c := d.Ring.Customer; c != nil {
		ck, err := r.cfg.Keys.Open(ctx, d.Encryption.KeyURI)
		if err != nil {
			return keys.Wrapped{}, err
		}
		blob, err := ck.Unwrap(ctx, *c)
		if err != nil {
			return keys.Wrapped{}, err
		}
		inner.Ciphertext = blob
	}
	return inner, nil
}

func (r *Registry) unwrapARK(ctx context.Context, d *document) (secret.Bytes, error) {
	inner, err := r.unwrapInner(ctx, d)
	if err != nil {
		return secret.Bytes{}, err
	}
	sk, err := r.cfg.Keys.Open(ctx, inner.KeyID)
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("%w: open: %w", errServiceLayer, err)
	}
	raw, err := sk.Unwrap(ctx, inner)
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("%w: %w", errServiceLayer, err)
	}
	if len(raw) != seal.RootKeySize {
		return secret.Bytes{}, errors.New("accounts: unwrapped root key has the wrong size")
	}
	ark := secret.New(raw)
	clear(raw)
	return ark, nil
}

// persistLocked writes d with compare-and-swap on e.rev, updating memory
// only after the store accepted it. Caller holds e.mu.
func (r *Registry) persistLocked(ctx context.Context, e *entry, d *document) error {
	data, err := d.encode()
	if err != nil {
		return err
	}
	a, err := r.cfg.Store.UpdateAccount(ctx, e.name, data, e.rev)
	if err != nil {
		return fmt.Errorf("accounts: update %s: %w", e.name, err)
	}
	e.rev = a.Rev
	e.doc = d
	return nil
}

// reloadLocked re-reads the account row (another node may have changed it).
func (r *Registry) reloadLocked(ctx context.Context, e *entry) error {
	a, err := r.cfg.Store.GetAccount(ctx, e.name)
	if err != nil {
		return err
	}
	if a.Rev == e.rev {
		return nil
	}
	d, err := decodeDocument(a.Data)
	if err != nil {
		return err
	}
	e.rev, e.doc = a.Rev, d
	if d.Encryption.KeyStatus == StatusActive {
		e.lost.Store(nil)
	} else if e.lost.Load() == nil {
		e.lost.Store(lostFrom(e.name, d.Encryption))
		if k := e.keys.Swap(nil); k != nil {
			k.Wipe()
		}
	}
	return nil
}

// markLostLocked records lost access: wipe keys, persist status, audit.
func (r *Registry) markLostLocked(ctx context.Context, e *entry, status KeyStatus, reason string, cause error) {
	uri := e.doc.Encryption.KeyURI
	msg := reasonText(reason, uri)
	lost := &AccessLostError{Account: e.name, Status: status, Reason: reason, Message: msg}
	e.lost.Store(lost)
	if k := e.keys.Swap(nil); k != nil {
		k.Wipe()
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.Status(e.name, status)
	}
	if e.doc.Encryption.KeyStatus == status && e.doc.Encryption.KeyStatusReason == reason {
		return
	}
	nd := *e.doc
	nd.Encryption.KeyStatus, nd.Encryption.KeyStatusReason, nd.Encryption.KeyStatusMessage = status, reason, msg
	nd.Encryption.KeyCheckedAt = r.now()
	if err := r.persistLocked(ctx, e, &nd); err != nil {
		// Memory already refuses access; the status row is retried next check.
		r.log.Warn("persist key status", "account", e.name, "err", err)
	}
	r.audit(ctx, Event{Account: e.name, Action: ActionRevoked, Success: false, KeyURI: uri,
		KeyVersion: e.doc.Encryption.KeyVersion, Status: status, Reason: reason, Message: fmt.Sprintf("%s (%v)", msg, cause)})
}

// Delete removes an account and its wrapped key ring: a crypto-erase. The
// cached keys are wiped.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if r.isReserved(name) {
		return fmt.Errorf("%w: %q cannot be deleted", ErrReserved, name)
	}
	if _, err := r.entry(ctx, name); err != nil {
		return err
	}
	if err := r.cfg.Store.DeleteAccount(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		}
		return fmt.Errorf("accounts: delete %s: %w", name, err)
	}
	r.forget(name)
	r.audit(ctx, Event{Account: name, Action: ActionDeleted, Success: true})
	return nil
}

func (r *Registry) forget(name string) {
	r.mu.Lock()
	e := r.entries[name]
	delete(r.entries, name)
	r.mu.Unlock()
	if e != nil {
		if k := e.keys.Swap(nil); k != nil {
			k.Wipe()
		}
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.Forget(name)
	}
}
