// Package keystest holds the behaviour every keys.Provider must have,
// written once and run against each provider (the local key files, the
// Azure Key Vault protocol against the built-in vault over TLS, ...), after
// Vault's physical.ExerciseBackend.
package keystest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kilnhealth/kiln/internal/keys"
)

// Env is one provider under test, with a fresh key.
type Env struct {
	// Key is a handle on the key by its versionless URI.
	Key keys.Key
	// Rotate adds a new current version at the key service and returns it.
	Rotate func(t *testing.T) string
	// OpenVersion opens the key pinned to a version (optional).
	OpenVersion func(t *testing.T, version string) keys.Key
}

// Run checks a provider's contract.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	ctx := context.Background()
	secret := bytes.Repeat([]byte{0xA5}, 32)

	t.Run("RoundTripRecordsVersion", func(t *testing.T) {
		e := newEnv(t)
		p, err := e.Key.Probe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w, err := e.Key.Wrap(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if w.Version == "" || w.Version != p.Version || w.KeyID == "" || w.Provider == "" || w.Alg == "" {
			t.Fatalf("wrapped result does not name what was used: %+v (probe %+v)", w, p)
		}
		if bytes.Contains(w.Ciphertext, secret) {
			t.Fatal("wrapped bytes contain the secret")
		}
		got, err := e.Key.Unwrap(ctx, w)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("unwrap: %v", err)
		}
	})

	t.Run("RotationFollowedAndOldVersionReadable", func(t *testing.T) {
		e := newEnv(t)
		old, err := e.Key.Wrap(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		nv := e.Rotate(t)
		p, err := e.Key.Probe(ctx)
		if err != nil || p.Version != nv {
			t.Fatalf("probe after rotation: %+v %v, want version %s", p, err, nv)
		}
		w, err := e.Key.Wrap(ctx, secret)
		if err != nil || w.Version != nv {
			t.Fatalf("wrap after rotation used %q (%v), want %s", w.Version, err, nv)
		}
		if got, err := e.Key.Unwrap(ctx, old); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("old version no longer unwraps: %v", err)
		}
		if e.OpenVersion != nil {
			pinned := e.OpenVersion(t, old.Version)
			pw, err := pinned.Wrap(ctx, secret)
			if err != nil || pw.Version != old.Version {
				t.Fatalf("pinned key wrapped with %q (%v), want %s", pw.Version, err, old.Version)
			}
		}
	})

	t.Run("TamperedFails", func(t *testing.T) {
		e := newEnv(t)
		w, err := e.Key.Wrap(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		w.Ciphertext = bytes.Clone(w.Ciphertext)
		w.Ciphertext[len(w.Ciphertext)/2] ^= 1
		got, err := e.Key.Unwrap(ctx, w)
		if err == nil && bytes.Equal(got, secret) {
			t.Fatal("tampered wrap unwrapped to the secret")
		}
		var ke *keys.Error
		if err != nil && !errors.As(err, &ke) {
			t.Fatalf("error is not a *keys.Error: %T %v", err, err)
		}
	})

	t.Run("UnknownVersionIsNotFound", func(t *testing.T) {
		e := newEnv(t)
		w, err := e.Key.Wrap(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		w.Version = "0123456789abcdef0123456789abcdef"
		_, err = e.Key.Unwrap(ctx, w)
		if !errors.Is(err, keys.ErrKeyNotFound) {
			t.Fatalf("unwrap with an unknown version: %v, want ErrKeyNotFound", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		e := newEnv(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := e.Key.Wrap(cctx, secret); err == nil {
			t.Fatal("wrap with a cancelled context succeeded")
		}
	})
}
