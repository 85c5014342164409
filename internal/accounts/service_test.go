package accounts_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// Tests of service-key accounts over real parts: a SQLite store in a temp
// dir, the local key provider and the seal codec.

type rig struct {
	store  store.Store
	keyDir string
}

func newRig(t *testing.T) rig {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "kiln.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return rig{store: st, keyDir: filepath.Join(dir, "keys")}
}

// registry builds a registry over the rig's store with the local service key in keyDir.
func (r rig) registry(t *testing.T, keyDir string) *accounts.Registry {
	t.Helper()
	codec, err := seal.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := accounts.New(accounts.Config{
		Store: r.store, Keys: keys.NewRegistry(keys.NewLocal(keyDir, rand.Reader)), ServiceKeyURI: "local:service",
		Codec: codec, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler), Reserved: []string{"system"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestServiceAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	rg := newRig(t)
	reg := rg.registry(t, rg.keyDir)

	info, err := reg.Create(ctx, accounts.Spec{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "acme" || info.Status != "Active" || info.Encryption.KeySource != accounts.SourceService ||
		info.Encryption.KeyStatus != accounts.StatusActive || info.CreatedAt.IsZero() {
		t.Errorf("created: %+v", info)
	}
	if _, err := reg.Create(ctx, accounts.Spec{Name: "acme"}); !errors.Is(err, accounts.ErrExists) {
		t.Errorf("duplicate create: %v, want ErrExists", err)
	}
	got, err := reg.Get(ctx, "acme")
	if err != nil || got.Name != "acme" || !got.CreatedAt.Equal(info.CreatedAt) {
		t.Errorf("get: %+v, %v", got, err)
	}
	if _, err := reg.Get(ctx, "nobody"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := reg.Keys(ctx, "nobody"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("keys of unknown: %v", err)
	}
	if _, err := reg.Create(ctx, accounts.Spec{Name: "beta-co", KeySource: accounts.SourceService}); err != nil {
		t.Fatal(err)
	}
	list, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	if strings.Join(names, ",") != "acme,beta-co" {
		t.Errorf("list = %v, want acme,beta-co (ordered by name)", names)
	}

	// Reserved names: only CreateSystem may make them.
	if _, err := reg.Create(ctx, accounts.Spec{Name: "system"}); !errors.Is(err, accounts.ErrReserved) {
		t.Errorf("create reserved: %v", err)
	}
	if err := reg.CreateSystem(ctx, "system"); err != nil {
		t.Fatal(err)
	}
	if err := reg.CreateSystem(ctx, "system"); err != nil {
		t.Errorf("CreateSystem must be idempotent: %v", err)
	}

	// Bad specs.
	for name, spec := range map[string]accounts.Spec{
		"unknown source":           {Name: "gamma", KeySource: "hsm"},
		"service with a key URI":   {Name: "gamma", KeyURI: "https://v.example/keys/k"},
		"customer without key URI": {Name: "gamma", KeySource: accounts.SourceCustomer},
	} {
		if _, err := reg.Create(ctx, spec); !errors.Is(err, accounts.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := reg.Get(ctx, "gamma"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("a rejected create left an account: %v", err)
	}

	if err := reg.Delete(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "acme"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if err := reg.Delete(ctx, "acme"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestValidateName(t *testing.T) {
	for _, n := range []string{"abc", "a-b", "a1b", "clinic-2026", "a" + strings.Repeat("b", 61) + "c"} {
		if err := accounts.ValidateName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "a", "ab", "Abc", "-abc", "abc-", "1abc", "a_b", "a.b", "a b", "a/b", "é-bc", "a" + strings.Repeat("b", 62) + "c", "abc\n"} {
		err := accounts.ValidateName(n)
		var ie *accounts.InvalidError
		if !errors.Is(err, accounts.ErrInvalid) || !errors.As(err, &ie) || ie.Field != "name" {
			t.Errorf("%q: %v, want an ErrInvalid naming the field", n, err)
		}
	}
}

// TestServiceKeysSealAcrossRestart: a second registry over the same store
// and service key opens what the first sealed; one without the service key
// cannot unlock the account at all.
func TestServiceKeysSealAcrossRestart(t *testing.T) {
	ctx := context.Background()
	rg := newRig(t)
	first := rg.registry(t, rg.keyDir)
	if _, err := first.Create(ctx, accounts.Spec{Name: "durable"}); err != nil {
		t.Fatal(err)
	}
	k, err := first.Keys(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	b := seal.Binding{Account: "durable", Type: "Patient", ID: "p1", VersionID: 1, Purpose: "body"}
	sealed, err := k.Seal([]byte(`{"resourceType":"Patient"}`), b)
	if err != nil {
		t.Fatal(err)
	}

	second := rg.registry(t, rg.keyDir)
	k2, err := second.Keys(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k2.Open(sealed, b); err != nil || string(pt) != `{"resourceType":"Patient"}` {
		t.Fatalf("restart cannot open: %q, %v", pt, err)
	}
	if _, err := k2.Open(sealed, seal.Binding{Account: "durable", Type: "Patient", ID: "p2", VersionID: 1, Purpose: "body"}); err == nil {
		t.Errorf("opened under another binding")
	}

	lost := rg.registry(t, filepath.Join(t.TempDir(), "other-keys"))
	if k3, err := lost.Keys(ctx, "durable"); err == nil {
		if _, err := k3.Open(sealed, b); err == nil {
			t.Fatal("a registry with another service key opened the data")
		}
	}
}

// TestDeleteCryptoErases: deleting an account wipes its cached keys, and an
// account re-created under the same name has a new root key that cannot
// open the old ciphertext.
func TestDeleteCryptoErases(t *testing.T) {
	ctx := context.Background()
	rg := newRig(t)
	reg := rg.registry(t, rg.keyDir)
	if _, err := reg.Create(ctx, accounts.Spec{Name: "erase-me"}); err != nil {
		t.Fatal(err)
	}
	old, err := reg.Keys(ctx, "erase-me")
	if err != nil {
		t.Fatal(err)
	}
	b := seal.Binding{Account: "erase-me", Type: "Patient", ID: "p1", VersionID: 1, Purpose: "body"}
	sealed, err := old.Seal([]byte("secret body"), b)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, "erase-me"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Open(sealed, b); err == nil {
		t.Errorf("the deleted account's cached keys still open its data")
	}
	if _, err := old.Seal([]byte("more"), b); err == nil {
		t.Errorf("the deleted account's cached keys still seal")
	}
	if _, err := reg.Keys(ctx, "erase-me"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("keys after delete: %v", err)
	}
	if _, err := rg.store.GetAccount(ctx, "erase-me"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the account row (wrapped ring) survived the delete: %v", err)
	}

	if _, err := reg.Create(ctx, accounts.Spec{Name: "erase-me"}); err != nil {
		t.Fatal(err)
	}
	fresh, err := reg.Keys(ctx, "erase-me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Open(sealed, b); err == nil {
		t.Fatal("the re-created account opened the old account's ciphertext")
	}
	// Even a brand-new process with the service key cannot.
	if k, err := rg.registry(t, rg.keyDir).Keys(ctx, "erase-me"); err != nil {
		t.Fatal(err)
	} else if _, err := k.Open(sealed, b); err == nil {
		t.Fatal("a restarted registry opened the old account's ciphertext")
	}
}

// TestConcurrentCreateSameName: exactly one of many racing creates wins.
func TestConcurrentCreateSameName(t *testing.T) {
	ctx := context.Background()
	rg := newRig(t)
	reg := rg.registry(t, rg.keyDir)
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := reg.Create(ctx, accounts.Spec{Name: "racy"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, accounts.ErrExists):
			default:
				t.Errorf("racing create: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d racing creates succeeded, want 1", wins)
	}
	// The winner's keys are the ones everybody gets.
	k1, err := reg.Keys(ctx, "racy")
	if err != nil {
		t.Fatal(err)
	}
	b := seal.Binding{Account: "racy", Type: "Patient", ID: "p", VersionID: 1, Purpose: "body"}
	s, err := k1.Seal([]byte("x"), b)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := rg.registry(t, rg.keyDir).Keys(ctx, "racy")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Open(s, b); err != nil {
		t.Errorf("the cached keys differ from the stored ring: %v", err)
	}
}
