package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// newNodeRegistry builds a registry on st with the service key in keyDir
// (nodes share the service key file, as deployments must).
func newNodeRegistry(t *testing.T, st store.Store, keyDir string) *Registry {
	t.Helper()
	codec, err := seal.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Store: st, Keys: keys.NewRegistry(keys.NewLocal(keyDir, rand.Reader)), ServiceKeyURI: "local:service",
		Codec: codec, Rand: rand.Reader, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// setStatus rewrites the stored row of name through st, as another node's
// monitor does when it persists a status change (compare-and-swap on Rev).
func setStatus(t *testing.T, st store.Store, name string, status KeyStatus, reason string) {
	t.Helper()
	ctx := context.Background()
	a, err := st.GetAccount(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeDocument(a.Data)
	if err != nil {
		t.Fatal(err)
	}
	d.Encryption.KeyStatus, d.Encryption.KeyStatusReason = status, reason
	data, err := d.encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateAccount(ctx, name, data, a.Rev); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFollowAcrossPostgresHandles: two registries on two store handles of
// one PostgreSQL schema, as two nodes. A status persisted by one reaches
// the other through LISTEN/NOTIFY, without any monitor running; the
// control registry that does not Follow keeps its stale cache.
func TestFollowAcrossPostgresHandles(t *testing.T) {
	u := pgtest.FreshSchema(t)
	keyDir := filepath.Join(t.TempDir(), "keys")
	stA := pgtest.Open(t, u, postgres.Options{})
	stB := pgtest.Open(t, u, postgres.Options{})
	stC := pgtest.Open(t, u, postgres.Options{})
	a := newNodeRegistry(t, stA, keyDir)
	b := newNodeRegistry(t, stB, keyDir)
	control := newNodeRegistry(t, stC, keyDir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.Follow(ctx, stB); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(ctx, Spec{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	kb, err := b.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := control.Keys(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	probe := kb.Token("Patient", "name", "s", "x")

	setStatus(t, stA, "acme", StatusRevoked, ReasonPermissionDenied)
	d := eventually(t, "revocation reaches the following node", func() bool {
		_, err := b.Keys(ctx, "acme")
		var lost *AccessLostError
		return errors.As(err, &lost) && lost.Reason == ReasonPermissionDenied
	})
	t.Logf("revocation reached the other node after %v", d)
	if got := kb.Token("Patient", "name", "s", "x"); string(got) == string(probe) {
		t.Error("the following node's cached keys were not wiped on revocation")
	}
	if info, err := b.Get(ctx, "acme"); err != nil || info.Encryption.KeyStatus != StatusRevoked || info.Status != "Inaccessible" {
		t.Errorf("following node's view after revocation: %+v, %v", info, err)
	}
	if _, err := control.Keys(ctx, "acme"); err != nil {
		t.Errorf("control (not following) changed without a check: %v; the test cannot tell Follow apart", err)
	}

	setStatus(t, stA, "acme", StatusActive, ReasonHealthy)
	d = eventually(t, "restore reaches the following node", func() bool {
		_, err := b.Keys(ctx, "acme")
		return err == nil
	})
	t.Logf("restore reached the other node after %v", d)
	k2, err := b.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := k2.Token("Patient", "name", "s", "x"); string(got) != string(probe) {
		t.Error("restored keys differ from the original ones")
	}

	// Deleted and re-created elsewhere: the follower drops its cache and
	// picks up the new root key (the new row may have the same Rev).
	if err := a.Delete(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(ctx, Spec{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	ka, err := a.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := ka.Token("Patient", "name", "s", "x")
	eventually(t, "re-created account reaches the following node", func() bool {
		k, err := b.Keys(ctx, "acme")
		return err == nil && string(k.Token("Patient", "name", "s", "x")) == string(want)
	})

	// After ctx ends, the follower stops following.
	cancel()
	time.Sleep(50 * time.Millisecond)
	setStatus(t, stA, "acme", StatusRevoked, ReasonKeyDisabled)
	time.Sleep(300 * time.Millisecond)
	if _, err := b.Keys(context.Background(), "acme"); err != nil {
		t.Errorf("a cancelled Follow still acted: %v", err)
	}
}

// chanSubscriber is the AccountSubscriber contract over a channel: it lets
// the test send the "reload everything" signal ("") that the PostgreSQL
// store sends after a reconnection, at a chosen moment.
type chanSubscriber chan string

func (c chanSubscriber) SubscribeAccounts(context.Context) (<-chan string, error) { return c, nil }

type failingSubscriber struct{}

func (failingSubscriber) SubscribeAccounts(context.Context) (<-chan string, error) {
	return nil, errors.New("notifications are off")
}

// TestFollowReloadAll: on "" every cached account is re-read; names of
// accounts this node has not cached are ignored; a failed subscription is
// reported to the caller.
func TestFollowReloadAll(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() store.Store {
		st, err := sqlite.Open(ctx, filepath.Join(dir, "kiln.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	a := newNodeRegistry(t, stA, filepath.Join(dir, "keys"))
	b := newNodeRegistry(t, stB, filepath.Join(dir, "keys"))
	if err := b.Follow(ctx, failingSubscriber{}); err == nil {
		t.Error("Follow hid a failed subscription")
	}
	sub := make(chanSubscriber)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.Follow(fctx, sub); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one", "two", "three"} {
		if _, err := a.Create(ctx, Spec{Name: n}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Keys(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(t, stA, "one", StatusRevoked, ReasonKeyDisabled)
	setStatus(t, stA, "two", StatusUnavailable, ReasonUnreachable)
	sub <- "three" // a name that did not change: nothing to do
	sub <- "nobody"
	sub <- "three" // unbuffered: the first was handled
	if _, err := b.Keys(ctx, "one"); err != nil {
		t.Fatal("changed account reloaded although its name was not sent")
	}
	sub <- ""
	eventually(t, "reload of every account", func() bool {
		_, e1 := b.Keys(ctx, "one")
		_, e2 := b.Keys(ctx, "two")
		_, e3 := b.Keys(ctx, "three")
		var l1, l2 *AccessLostError
		return errors.As(e1, &l1) && l1.Status == StatusRevoked && errors.As(e2, &l2) && l2.Status == StatusUnavailable && e3 == nil
	})
	b.mu.RLock()
	_, cached := b.entries["nobody"]
	b.mu.RUnlock()
	if cached {
		t.Error("an unknown name was loaded into the cache")
	}
}

// TestWrongServiceKeyIsNodeLocal: a registry whose service key differs
// from the one the ring was wrapped with (a node set up without the
// cluster's key file) fails its own unwrap with errServiceLayer, and
// neither reports nor persists lost key access; the stored row, which
// every other node follows, stays Active.
func TestWrongServiceKeyIsNodeLocal(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "kiln.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := newNodeRegistry(t, st, filepath.Join(dir, "keys-good"))
	if _, err := good.Create(ctx, Spec{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	before, err := st.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	bad := newNodeRegistry(t, st, filepath.Join(dir, "keys-other"))
	for i := 0; i < 2; i++ {
		_, err = bad.Keys(ctx, "acme")
		var lost *AccessLostError
		if !errors.Is(err, errServiceLayer) || errors.As(err, &lost) {
			t.Fatalf("wrong service key: %v; want errServiceLayer and no AccessLostError", err)
		}
	}
	if info, err := bad.Check(ctx, "acme"); err != nil || info.Encryption.KeyStatus != StatusActive {
		t.Fatalf("check on the misconfigured node: %+v %v", info, err)
	}
	after, err := st.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if after.Rev != before.Rev {
		t.Fatalf("the misconfigured node rewrote the account row (Rev %d -> %d)", before.Rev, after.Rev)
	}
	if _, err := good.Keys(ctx, "acme"); err != nil {
		t.Fatalf("the node with the right key: %v", err)
	}
}
