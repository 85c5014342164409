package keys

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Providers wrap them in *Error.
var (
	// ErrKeyNotFound: the key (or the named version) does not exist, or was deleted.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyDisabled: the key or version exists but is disabled or outside its validity window.
	ErrKeyDisabled = errors.New("key disabled")
	// ErrPermissionDenied: the caller authenticated but lacks a permission (get, wrapKey, unwrapKey).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthenticated: the credentials were refused.
	ErrUnauthenticated = errors.New("authentication failed")
	// ErrUnreachable: the key service could not be reached or answered with a server error.
	ErrUnreachable = errors.New("key service unreachable")
	// ErrUnsupported: no provider handles the URI, or the provider cannot do the operation.
	ErrUnsupported = errors.New("unsupported key uri")
	// ErrInvalidURI: the URI is malformed for its provider.
	ErrInvalidURI = errors.New("invalid key uri")
	// ErrUnwrapFailed: the wrapped bytes did not unwrap under the key (wrong key or tampered data).
	ErrUnwrapFailed = errors.New("unwrap failed")
)

// Error records a failed key operation, after fs.PathError.
type Error struct {
	Op     string // "open", "wrap", "unwrap", "probe"
	KeyURI string
	Err    error
	// Detail is optional extra text from the key service, safe to show to operators.
	Detail string
}

func (e *Error) Error() string {
	s := "keys: " + e.Op + " " + e.KeyURI + ": " + e.Err.Error()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error whose Err is sentinel and Detail is formatted.
func Errorf(op, uri string, sentinel error, format string, args ...any) error {
	return &Error{Op: op, KeyURI: uri, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// Wrapped is a secret wrapped under one key version.
type Wrapped struct {
	Provider   string `json:"provider"`   // provider name, e.g. "local", "akv"
	KeyID      string `json:"keyId"`      // key identifier without version
	Version    string `json:"version"`    // the version actually used to wrap
	Alg        string `json:"alg"`        // wrapping algorithm, e.g. "RSA-OAEP-256"
	Ciphertext []byte `json:"ciphertext"` // the wrapped bytes
}

// ProbeResult is what a successful Probe learned about the key.
type ProbeResult struct {
	// Version is the key's current version: the one a versionless URI
	// resolves to now, or the pinned version of a versioned URI.
	Version string
}

// Key is a handle on one key-encryption key, addressed by URI. Implementations
// must be safe for concurrent use. Every method honours ctx cancellation.
type Key interface {
	// URI returns the URI the key was opened with (versioned or not).
	URI() string
	// Wrap encrypts a short secret under the key's current version (or the
	// pinned version). The result records the version used.
	Wrap(ctx context.Context, secret []byte) (Wrapped, error)
	// Unwrap decrypts w, using the version recorded in w.
	Unwrap(ctx context.Context, w Wrapped) ([]byte, error)
	// Probe checks that the key can be used now: it reads the key and makes a
	// wrap/unwrap round trip with a random probe. It reports the current version.
	Probe(ctx context.Context) (ProbeResult, error)
}

// Provider opens keys for the URIs it supports.
type Provider interface {
	// Name is a short stable name recorded in Wrapped.Provider.
	Name() string
	// Supports reports whether the provider handles uri. It does no I/O.
	Supports(uri string) bool
	// Open returns a handle for uri. It may validate the URI but need not
	// contact the key service.
	Open(ctx context.Context, uri string) (Key, error)
}

// Registry selects a provider by key URI. The zero value has no providers.
type Registry struct {
	providers []Provider
}

// NewRegistry returns a registry that tries providers in order.
func NewRegistry(providers ...Provider) *Registry {
	return &Registry{providers: append([]Provider(nil), providers...)}
}

// Open opens uri with the first provider that supports it.
func (r *Registry) Open(ctx context.Context, uri string) (Key, error) {
	p := r.Lookup(uri)
	if p == nil {
		return nil, &Error{Op: "open", KeyURI: uri, Err: ErrUnsupported}
	}
	return p.Open(ctx, uri)
}

// Lookup returns the provider that supports uri, or nil.
func (r *Registry) Lookup(uri string) Provider {
	for _, p := range r.providers {
		if p.Supports(uri) {
			return p
		}
	}
	return nil
}

// Providers returns the registered providers.
func (r *Registry) Providers() []Provider { return append([]Provider(nil), r.providers...) }
