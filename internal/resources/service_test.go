package resources_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store"
)

const acct = "default"

// fixedClock returns a clock that advances by one second on each call.
func fixedClock(start time.Time) func() time.Time {
	t := start
	return func() time.Time { t = t.Add(time.Second); return t }
}

// service builds a Service over a real server's store, registry and model,
// with an injected clock.
func service(t *testing.T) (*resources.Service, *servertest.Instance) {
	t.Helper()
	in := servertest.New(t, server.Options{})
	s, err := resources.New(resources.Config{
		Store: in.Server.Store, Accounts: in.Server.Accounts, Model: in.Server.Model, Rand: rand.Reader,
		Now: fixedClock(time.Date(2026, 1, 2, 3, 4, 5, 678_999_000, time.UTC)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, in
}

func TestCreateStampsServerMeta(t *testing.T) {
	s, in := service(t)
	ctx := context.Background()
	r, err := s.Create(ctx, acct, "Patient", []byte(`{"resourceType":"Patient","id":"mine","meta":{"versionId":"9","lastUpdated":"2000-01-01T00:00:00Z"},"active":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == "mine" || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(r.ID) {
		t.Errorf("id %q: want a server-assigned random UUID", r.ID)
	}
	if r.VersionID != 1 || !r.LastUpdated.Equal(time.Date(2026, 1, 2, 3, 4, 6, 678_000_000, time.UTC)) {
		t.Errorf("version %d lastUpdated %s: want 1 and the injected clock truncated to ms", r.VersionID, r.LastUpdated)
	}
	want := `{"resourceType":"Patient","id":"` + r.ID + `","meta":{"lastUpdated":"2026-01-02T03:04:06.678Z","versionId":"1"},"active":true}`
	if string(r.Body) != want {
		t.Errorf("body\n got %s\nwant %s", r.Body, want)
	}
	// The store holds a sealed body, not the JSON; opening it gives the JSON back.
	raw, err := in.Server.Store.Current(ctx, acct, store.Ref{Type: "Patient", ID: r.ID})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Body, []byte(`"active"`)) || bytes.Contains(raw.Body, []byte(`Patient`)) {
		t.Errorf("stored body is not sealed: %q", raw.Body)
	}
	v, err := s.Current(ctx, mustKeys(t, s), acct, "Patient", r.ID)
	if err != nil || !bytes.Equal(v.Body, r.Body) {
		t.Fatalf("current: %v", err)
	}
}

func mustKeys(t *testing.T, s *resources.Service) *seal.AccountKeys {
	t.Helper()
	k, err := s.Keys(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVersioningRules(t *testing.T) {
	s, in := service(t)
	ctx := context.Background()
	body := `{"resourceType":"Patient","id":"p1","active":true}`

	r, oc, err := s.Update(ctx, acct, "Patient", "p1", []byte(body), resources.NoVersion)
	if err != nil || oc != resources.Created || r.VersionID != 1 {
		t.Fatalf("update-as-create: %v %v %+v", err, oc, r)
	}
	// Identical, also with other client meta and key order: no new version.
	for _, same := range []string{body, `{"active":true,"id":"p1","meta":{"versionId":"5","lastUpdated":"2001-01-01T00:00:00Z"},"resourceType":"Patient"}`} {
		r, oc, err = s.Update(ctx, acct, "Patient", "p1", []byte(same), resources.NoVersion)
		if err != nil || oc != resources.Unchanged || r.VersionID != 1 {
			t.Errorf("identical update: %v %v version %d", err, oc, r.VersionID)
		}
	}
	// A tag is content: a new version.
	r, oc, err = s.Update(ctx, acct, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1","active":true,"meta":{"tag":[{"code":"t"}]}}`), resources.NoVersion)
	if err != nil || oc != resources.Updated || r.VersionID != 2 {
		t.Errorf("update with a new tag: %v %v version %d", err, oc, r.VersionID)
	}
	// If-Match.
	_, _, err = s.Update(ctx, acct, "Patient", "p1", []byte(body), 1)
	var pe *resources.PreconditionError
	if !errors.As(err, &pe) || pe.Want != 1 || pe.Have != 2 {
		t.Errorf("stale If-Match: %v", err)
	}
	if _, oc, err = s.Update(ctx, acct, "Patient", "p1", []byte(body), 2); err != nil || oc != resources.Updated {
		t.Errorf("matching If-Match: %v %v", err, oc)
	}
	if _, _, err = s.Update(ctx, acct, "Patient", "nope", []byte(`{"resourceType":"Patient","id":"nope"}`), 1); !errors.As(err, &pe) {
		t.Errorf("If-Match on a missing resource: %v", err)
	}
	// Id rules.
	var ie *resources.InvalidError
	if _, _, err = s.Update(ctx, acct, "Patient", "p1", []byte(`{"resourceType":"Patient"}`), resources.NoVersion); !errors.As(err, &ie) || ie.Status != 400 {
		t.Errorf("missing id: %v", err)
	}
	if _, _, err = s.Update(ctx, acct, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p2"}`), resources.NoVersion); !errors.As(err, &ie) {
		t.Errorf("id mismatch: %v", err)
	}

	// Delete: a marker version; again: unchanged; missing: unchanged, no version.
	d, oc, err := s.Delete(ctx, acct, "Patient", "p1", resources.NoVersion)
	if err != nil || oc != resources.Updated || d.VersionID != 4 || !d.Deleted {
		t.Fatalf("delete: %v %v %+v", err, oc, d)
	}
	if d, oc, err = s.Delete(ctx, acct, "Patient", "p1", resources.NoVersion); err != nil || oc != resources.Unchanged || d.VersionID != 4 {
		t.Errorf("second delete: %v %v %+v", err, oc, d)
	}
	if d, oc, err = s.Delete(ctx, acct, "Patient", "ghost", resources.NoVersion); err != nil || oc != resources.Unchanged || d.VersionID != 0 {
		t.Errorf("delete of a missing resource: %v %v %+v", err, oc, d)
	}
	if _, _, err = s.Delete(ctx, acct, "Patient", "ghost", 1); !errors.As(err, &pe) {
		t.Errorf("delete with If-Match of a missing resource: %v", err)
	}
	var gone *resources.GoneError
	if _, err = s.Read(ctx, acct, "Patient", "p1"); !errors.As(err, &gone) || gone.VersionID != 4 {
		t.Errorf("read deleted: %v", err)
	}
	if _, err = s.VRead(ctx, acct, "Patient", "p1", 4); !errors.As(err, &gone) {
		t.Errorf("vread of the delete marker: %v", err)
	}
	if v, err := s.VRead(ctx, acct, "Patient", "p1", 1); err != nil || v.VersionID != 1 {
		t.Errorf("vread 1 after delete: %v", err)
	}
	if _, err = s.VRead(ctx, acct, "Patient", "p1", 9); !errors.Is(err, resources.ErrNotFound) {
		t.Errorf("vread of a missing version: %v", err)
	}
	// Re-create after delete counts as a create, at the next version.
	if r, oc, err = s.Update(ctx, acct, "Patient", "p1", []byte(body), resources.NoVersion); err != nil || oc != resources.Created || r.VersionID != 5 {
		t.Errorf("re-create: %v %v version %d", err, oc, r.VersionID)
	}

	// History: newest first, with strictly increasing commit sequence.
	h, err := s.History(ctx, acct, store.HistoryQuery{Type: "Patient", ID: "p1", Limit: 100})
	if err != nil || len(h) != 5 {
		t.Fatalf("history: %v, %d versions", err, len(h))
	}
	for i, v := range h {
		if v.VersionID != int64(5-i) || (i > 0 && v.Seq >= h[i-1].Seq) {
			t.Errorf("history[%d] = version %d seq %d", i, v.VersionID, v.Seq)
		}
	}
	if n, err := s.CountHistory(ctx, acct, store.HistoryQuery{Type: "Patient", ID: "p1"}); err != nil || n != 5 {
		t.Errorf("count history: %d, %v", n, err)
	}
	_ = in
}

func TestServiceErrors(t *testing.T) {
	s, _ := service(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, acct, "Nope", []byte(`{"resourceType":"Nope"}`)); !errors.Is(err, resources.ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := s.Read(ctx, acct, "Patient", "missing"); !errors.Is(err, resources.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := s.Read(ctx, "no-such-acct", "Patient", "x"); err == nil {
		t.Errorf("unknown account read succeeded")
	}
	var ie *resources.InvalidError
	for _, b := range []string{`{`, `{"resourceType":"Patient","foo":1}`, `{"resourceType":"Observation"}`} {
		if _, err := s.Create(ctx, acct, "Patient", []byte(b)); !errors.As(err, &ie) || ie.Status != 400 || len(ie.Issues) == 0 {
			t.Errorf("%s: %v", b, err)
		}
	}
}
