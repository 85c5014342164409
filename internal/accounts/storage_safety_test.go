package accounts_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kilnhealth/kiln/internal/accounts"
	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// failingStore makes UpdateAccount fail while fail is set, after Vault's
// ErrorInjector: it checks that a failed write leaves memory as it was.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

var errInjected = errors.New("injected storage failure")

func (f *failingStore) UpdateAccount(ctx context.Context, name string, data []byte, rev int64) (store.Account, error) {
	if f.fail.Load() {
		return store.Account{}, errInjected
	}
	return f.Store.UpdateAccount(ctx, name, data, rev)
}

var _ store.Store = (*failingStore)(nil)

// TestRotationStorageErrorSafety uses a second local key as the "customer"
// key (the local provider versions keys like a vault does): a rotation whose
// rewrap cannot be stored must leave the account on its old version, still
// readable, and succeed on the next check.
func TestRotationStorageErrorSafety(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sq, err := sqlite.Open(ctx, filepath.Join(dir, "kiln.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	st := &failingStore{Store: sq}
	local := keys.NewLocal(filepath.Join(dir, "keys"), rand.Reader)
	codec, _ := seal.NewCodec()
	reg, err := accounts.New(accounts.Config{Store: st, Keys: keys.NewRegistry(local), ServiceKeyURI: "local:service",
		Codec: codec, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Create("cust"); err != nil {
		t.Fatal(err)
	}
	info, err := reg.Create(ctx, accounts.Spec{Name: "acme", KeySource: accounts.SourceCustomer, KeyURI: "local:cust"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Encryption.KeyVersion != "1" {
		t.Fatalf("initial version %q", info.Encryption.KeyVersion)
	}
	k1, _ := reg.Keys(ctx, "acme")
	sealed, err := k1.Seal([]byte("hello"), seal.Binding{Account: "acme", Type: "Patient", ID: "1", VersionID: 1, Purpose: "body"})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := local.Rotate("cust"); err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	info, err = reg.Check(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if info.Encryption.KeyVersion != "1" || info.Encryption.KeyStatus != accounts.StatusActive {
		t.Fatalf("after a failed rewrap write: %+v", info.Encryption)
	}
	row, _ := sq.GetAccount(ctx, "acme")
	if row.Rev != 1 {
		t.Fatalf("stored row changed: rev %d", row.Rev)
	}

	st.fail.Store(false)
	info, err = reg.Check(ctx, "acme")
	if err != nil || info.Encryption.KeyVersion != "2" {
		t.Fatalf("after recovery: %+v %v", info.Encryption, err)
	}

	// A fresh registry (a restart) unwraps through version 2 and reads old data.
	reg2, _ := accounts.New(accounts.Config{Store: sq, Keys: keys.NewRegistry(local), ServiceKeyURI: "local:service",
		Codec: codec, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)})
	k2, err := reg2.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open(sealed, seal.Binding{Account: "acme", Type: "Patient", ID: "1", VersionID: 1, Purpose: "body"}); err != nil || string(got) != "hello" {
		t.Fatalf("data after rewrap and restart: %q %v", got, err)
	}

	// Revocation: the customer key file disappears. Keys are wiped and
	// access is refused with a typed error; putting it back restores.
	keyFile := filepath.Join(dir, "keys", "cust.key")
	saved, _ := os.ReadFile(keyFile)
	os.Remove(keyFile)
	info, _ = reg2.Check(ctx, "acme")
	var lost *accounts.AccessLostError
	if _, err := reg2.Keys(ctx, "acme"); !errors.As(err, &lost) || lost.Reason != accounts.ReasonKeyNotFound {
		t.Fatalf("after losing the key: %v (%+v)", err, info.Encryption)
	}
	if _, err := k2.Seal([]byte("x"), seal.Binding{Account: "acme"}); !errors.Is(err, seal.ErrWiped) {
		t.Fatalf("cached keys were not wiped: %v", err)
	}
	if err := os.WriteFile(keyFile, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	info, _ = reg2.Check(ctx, "acme")
	if info.Encryption.KeyStatus != accounts.StatusActive {
		t.Fatalf("not restored: %+v", info.Encryption)
	}
	k3, err := reg2.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k3.Open(sealed, seal.Binding{Account: "acme", Type: "Patient", ID: "1", VersionID: 1, Purpose: "body"}); err != nil || string(got) != "hello" {
		t.Fatalf("data after restore: %q %v", got, err)
	}
}

// TestServiceAccountStatusRestored: a service-key account whose row says
// Revoked (written by an older or misconfigured node) returns to Active at
// the next check when its ring unwraps.
func TestServiceAccountStatusRestored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sq, err := sqlite.Open(ctx, filepath.Join(dir, "kiln.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	local := keys.NewLocal(filepath.Join(dir, "keys"), rand.Reader)
	codec, _ := seal.NewCodec()
	cfg := accounts.Config{Store: sq, Keys: keys.NewRegistry(local), ServiceKeyURI: "local:service",
		Codec: codec, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)}
	reg, _ := accounts.New(cfg)
	if _, err := reg.Create(ctx, accounts.Spec{Name: "clinic"}); err != nil {
		t.Fatal(err)
	}
	row, _ := sq.GetAccount(ctx, "clinic")
	bad := strings.Replace(string(row.Data), `"keyStatus":"Active","keyStatusReason":"Healthy"`, `"keyStatus":"Revoked","keyStatusReason":"UnwrapFailed"`, 1)
	if bad == string(row.Data) {
		t.Fatalf("test setup: status not found in %s", row.Data)
	}
	if _, err := sq.UpdateAccount(ctx, "clinic", []byte(bad), row.Rev); err != nil {
		t.Fatal(err)
	}
	reg2, _ := accounts.New(cfg)
	if _, err := reg2.Keys(ctx, "clinic"); err == nil {
		t.Fatal("a Revoked row must refuse access until checked")
	}
	info, err := reg2.Check(ctx, "clinic")
	if err != nil || info.Encryption.KeyStatus != accounts.StatusActive {
		t.Fatalf("after check: %+v %v", info.Encryption, err)
	}
	if _, err := reg2.Keys(ctx, "clinic"); err != nil {
		t.Fatal(err)
	}
}
