package server_test

// Customer-managed keys end to end (issue 4, item 7), against the real
// built-in vault over TLS: create, rotate under load, disable the old
// version, revoke by removing the policy, restore, change key, restart while
// revoked, and crypto-erase.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/store"
)

const interval = time.Second

// tb is what the helpers need from *testing.T and *testing.B.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// kiln is one running Kiln (embedded vault on a fixed port, so key URIs
// stay valid across restarts).
type kiln struct {
	t       tb
	dir     string
	addr    string
	store   string // Options.Store ("" is SQLite in dir)
	srv     *server.Server
	ts      *httptest.Server
	vault   *vaultAdmin
	closeMu sync.Mutex
}

func freePort(t tb) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startKiln(t tb, dir, vaultAddr string) *kiln { return startKilnOn(t, dir, vaultAddr, "") }

func startKilnOn(t tb, dir, vaultAddr, store string) *kiln {
	t.Helper()
	srv, err := server.New(context.Background(), server.Options{
		DataDir: dir, Store: store, VaultAddr: vaultAddr, KeyCheckInterval: interval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	k := &kiln{t: t, dir: dir, addr: vaultAddr, store: store, srv: srv, ts: httptest.NewServer(srv.Handler)}
	k.vault = newVaultAdmin(t, srv.Vault.URL(), filepath.Join(dir, "vault"))
	t.Cleanup(k.stop)
	return k
}

func (k *kiln) stop() {
	k.closeMu.Lock()
	defer k.closeMu.Unlock()
	if k.ts != nil {
		k.ts.Close()
		k.srv.Close()
		k.ts = nil
	}
}

func (k *kiln) restart() *kiln {
	k.stop()
	return startKilnOn(k.t, k.dir, k.addr, k.store)
}

type resp struct {
	status int
	body   []byte
}

func (r resp) json(t tb) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return m
}

func call(t tb, c *http.Client, method, url string, body any) resp {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
		return resp{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b}
}

func (k *kiln) do(method, path string, body any) resp {
	return call(k.t, http.DefaultClient, method, k.ts.URL+path, body)
}

// vaultAdmin drives the vault's keys API and policies with the admin token.
type vaultAdmin struct {
	t     tb
	url   string
	token string
	c     *http.Client
}

func newVaultAdmin(t tb, url, dir string) *vaultAdmin {
	tok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &vaultAdmin{t: t, url: url, token: strings.TrimSpace(string(tok)),
		c: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (v *vaultAdmin) call(method, path string, body any) map[string]any {
	v.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, v.url+path+sep+"api-version=7.4", rd)
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := v.c.Do(req)
	if err != nil {
		v.t.Fatalf("vault %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		v.t.Fatalf("vault %s %s: %d %s", method, path, res.StatusCode, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func (v *vaultAdmin) createKey(name string) string {
	m := v.call("POST", "/keys/"+name+"/create", map[string]any{"kty": "RSA", "key_size": 2048})
	return versionOf(m)
}

func versionOf(m map[string]any) string {
	kid, _ := m["key"].(map[string]any)["kid"].(string)
	return kid[strings.LastIndex(kid, "/")+1:]
}

func (v *vaultAdmin) rotate(name string) string {
	return versionOf(v.call("POST", "/keys/"+name+"/rotate", nil))
}

func (v *vaultAdmin) setEnabled(name, version string, on bool) {
	v.call("PATCH", "/keys/"+name+"/"+version, map[string]any{"attributes": map[string]any{"enabled": on}})
}

func (v *vaultAdmin) grant(perms ...string) {
	v.call("PUT", "/policies/"+server.VaultPrincipal, map[string]any{"permissions": perms})
}

func (v *vaultAdmin) revoke() { v.call("DELETE", "/policies/"+server.VaultPrincipal, nil) }

func (v *vaultAdmin) keyURI(name string) string { return v.url + "/keys/" + name }

// waitFor polls cond until it holds or the deadline passes, and returns how
// long it took.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func account(t *testing.T, k *kiln, name string) map[string]any {
	r := k.do("GET", "/management/accounts/"+name, nil)
	if r.status != 200 {
		t.Fatalf("get account %s: %d %s", name, r.status, r.body)
	}
	return r.json(t)
}

func encryption(t *testing.T, k *kiln, name string) map[string]any {
	return account(t, k, name)["encryption"].(map[string]any)
}

func patient(i int) map[string]any {
	return map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": fmt.Sprintf("Cmkfamily%d", i)}}}
}

// readAll reads every id and returns how many came back 200.
func readAll(k *kiln, acct string, ids []string) (ok int, statuses map[int]int) {
	statuses = map[int]int{}
	for _, id := range ids {
		r := k.do("GET", "/fhir/"+acct+"/Patient/"+id, nil)
		statuses[r.status]++
		if r.status == 200 {
			ok++
		}
	}
	return ok, statuses
}

func TestCustomerManagedKeyLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("key lifecycle integration test is not short")
	}
	forEachEngine(t, customerManagedKeyLifecycle)
}

func customerManagedKeyLifecycle(t *testing.T, storeURL string) {
	dir := t.TempDir()
	k := startKilnOn(t, dir, freePort(t), storeURL)
	v := k.vault
	v1 := v.createKey("cmk1")

	// Creating with a key Kiln may not use fails with 400 and leaves nothing.
	r := k.do("PUT", "/management/accounts/acme", map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": v.keyURI("cmk1")}})
	if r.status != 400 || !strings.Contains(string(r.body), "PermissionDenied") {
		t.Fatalf("create without permission: %d %s", r.status, r.body)
	}
	if r := k.do("GET", "/management/accounts/acme", nil); r.status != 404 {
		t.Fatalf("failed create left an account behind: %d", r.status)
	}
	v.grant("get", "wrapKey", "unwrapKey")
	r = k.do("PUT", "/management/accounts/acme", map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": v.keyURI("nokey")}})
	if r.status != 400 || !strings.Contains(string(r.body), "KeyNotFound") {
		t.Fatalf("create with a missing key: %d %s", r.status, r.body)
	}

	r = k.do("PUT", "/management/accounts/acme", map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": v.keyURI("cmk1")}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	enc := r.json(t)["encryption"].(map[string]any)
	if enc["keySource"] != "customer" || enc["keyVersion"] != v1 || enc["keyStatus"] != "Active" {
		t.Fatalf("account encryption after create: %v", enc)
	}

	// 50 resources in the customer-key account, a few in the service-key one.
	var ids []string
	for i := 0; i < 50; i++ {
		r := k.do("POST", "/fhir/acme/Patient", patient(i))
		if r.status != 201 {
			t.Fatalf("create resource: %d %s", r.status, r.body)
		}
		ids = append(ids, r.json(t)["id"].(string))
	}
	r = k.do("POST", "/fhir/default/Patient", patient(999))
	if r.status != 201 {
		t.Fatalf("create in default: %d", r.status)
	}
	defaultID := r.json(t)["id"].(string)
	defaultOK := func() bool { return k.do("GET", "/fhir/default/Patient/"+defaultID, nil).status == 200 }

	// Rotate while a read/write loop runs: zero errors.
	var stop atomic.Bool
	var loopErrs, loopOps atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := &http.Client{}
			for i := 0; !stop.Load(); i++ {
				var r resp
				if i%2 == 0 {
					r = call(t, c, "GET", k.ts.URL+"/fhir/acme/Patient/"+ids[(w*7+i)%len(ids)], nil)
				} else {
					r = call(t, c, "POST", k.ts.URL+"/fhir/acme/Patient", patient(1000+i))
				}
				loopOps.Add(1)
				if r.status >= 300 {
					loopErrs.Add(1)
					t.Errorf("during rotation: %d %s", r.status, r.body)
				}
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond)
	v2 := v.rotate("cmk1")
	picked := waitFor(t, "rotation picked up", 3*interval, func() bool { return encryption(t, k, "acme")["keyVersion"] == v2 })
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("rotation picked up after %v; %d requests during rotation, %d failed", picked, loopOps.Load(), loopErrs.Load())
	if loopErrs.Load() != 0 {
		t.Fatalf("%d requests failed during rotation", loopErrs.Load())
	}

	// Disable the old version: still readable, also after a restart (which
	// forces the root key to be unwrapped again, with the new version).
	v.setEnabled("cmk1", v1, false)
	k = k.restart()
	if ok, st := readAll(k, "acme", ids); ok != len(ids) {
		t.Fatalf("after disabling the old version and restarting: %d/%d readable (%v)", ok, len(ids), st)
	}

	// PATCH keySource: 409.
	if r := k.do("PATCH", "/management/accounts/acme", map[string]any{"encryption": map[string]any{"keySource": "service"}}); r.status != 409 {
		t.Fatalf("PATCH keySource: %d %s", r.status, r.body)
	}

	// Revoke: remove the policy. Reads 403 within 2 intervals; writes refused.
	v.revoke()
	revoked := waitFor(t, "revocation", 2*interval+time.Second, func() bool {
		return k.do("GET", "/fhir/acme/Patient/"+ids[0], nil).status == 403
	})
	t.Logf("revocation observed after %v (interval %v)", revoked, interval)
	r = k.do("GET", "/fhir/acme/Patient/"+ids[1], nil)
	oo := r.json(t)
	if r.status != 403 || !strings.Contains(string(r.body), "cmk-access-lost") || oo["resourceType"] != "OperationOutcome" {
		t.Fatalf("revoked read: %d %s", r.status, r.body)
	}
	if code := oo["issue"].([]any)[0].(map[string]any)["code"]; code != "forbidden" {
		t.Fatalf("issue code %v", code)
	}
	r = k.do("POST", "/fhir/acme/Patient", patient(5000))
	if r.status != 403 {
		t.Fatalf("write while revoked: %d %s", r.status, r.body)
	}
	enc = encryption(t, k, "acme")
	if enc["keyStatus"] != "Revoked" || enc["keyStatusReason"] != "PermissionDenied" {
		t.Fatalf("status while revoked: %v", enc)
	}
	if !defaultOK() {
		t.Fatal("service-key account affected by a customer key revocation")
	}
	h := k.do("GET", "/health", nil).json(t)
	if h["status"] != "Degraded" || h["accounts"].(map[string]any)["acme"] == nil {
		t.Fatalf("health while revoked: %v", h)
	}

	// Restart while revoked: stays revoked.
	k = k.restart()
	if r := k.do("GET", "/fhir/acme/Patient/"+ids[0], nil); r.status != 403 {
		t.Fatalf("after restart while revoked: %d", r.status)
	}

	// Restore: everything readable within 2 intervals, nothing lost.
	v.grant("get", "wrapKey", "unwrapKey")
	restored := waitFor(t, "restore", 2*interval+time.Second, func() bool {
		return k.do("GET", "/fhir/acme/Patient/"+ids[0], nil).status == 200
	})
	t.Logf("restore observed after %v", restored)
	if ok, st := readAll(k, "acme", ids); ok != len(ids) {
		t.Fatalf("after restore: %d/%d readable (%v)", ok, len(ids), st)
	}
	if enc := encryption(t, k, "acme"); enc["keyStatus"] != "Active" {
		t.Fatalf("status after restore: %v", enc)
	}

	// Change to a second key, then disable the first entirely.
	v.createKey("cmk2")
	r = k.do("PATCH", "/management/accounts/acme", map[string]any{"encryption": map[string]any{"keyUri": v.keyURI("cmk2")}})
	if r.status != 200 {
		t.Fatalf("PATCH keyUri: %d %s", r.status, r.body)
	}
	v.setEnabled("cmk1", v2, false)
	k = k.restart()
	if ok, st := readAll(k, "acme", ids); ok != len(ids) {
		t.Fatalf("after switching to cmk2 and disabling cmk1: %d/%d readable (%v)", ok, len(ids), st)
	}
	if !defaultOK() {
		t.Fatal("service-key account affected")
	}

	// Audit: the key events are AuditEvents readable by the operator.
	waitFor(t, "audit events", 5*time.Second, func() bool {
		a := k.do("GET", "/management/audit?account=acme", nil)
		s := string(a.body)
		return a.status == 200 && strings.Contains(s, "key-rotated") && strings.Contains(s, "key-access-revoked") &&
			strings.Contains(s, "key-access-restored") && strings.Contains(s, "key-changed")
	})
}

// TestCryptoErase: deleting an account makes its data unrecoverable even
// with the vault intact; purging the key makes a customer-key account
// permanently unreadable, and its status says so.
func TestCryptoErase(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	forEachEngine(t, cryptoErase)
}

func cryptoErase(t *testing.T, storeURL string) {
	k := startKilnOn(t, t.TempDir(), freePort(t), storeURL)
	v := k.vault
	v.grant("get", "wrapKey", "unwrapKey", "list")
	v.createKey("erase1")
	// The key picker lists the vault's keys with Kiln's own credential.
	kp := k.do("GET", "/management/keys?vault="+url.QueryEscape(v.url), nil)
	if kp.status != 200 || !strings.Contains(string(kp.body), `"keyUri": "`+v.keyURI("erase1")+`"`) {
		t.Fatalf("key picker: %d %s", kp.status, kp.body)
	}
	if r := k.do("GET", "/management/keys?vault=not-a-url", nil); r.status != 400 {
		t.Fatalf("key picker with a bad vault URL: %d %s", r.status, r.body)
	}
	for _, name := range []string{"gone", "purged"} {
		if r := k.do("PUT", "/management/accounts/"+name, map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": v.keyURI("erase1")}}); r.status != 201 {
			t.Fatalf("create %s: %d %s", name, r.status, r.body)
		}
	}
	r := k.do("POST", "/fhir/gone/Patient", patient(1))
	id := r.json(t)["id"].(string)
	r = k.do("POST", "/fhir/purged/Patient", patient(2))
	pid := r.json(t)["id"].(string)

	if r := k.do("DELETE", "/management/accounts/gone", nil); r.status != 204 {
		t.Fatalf("delete account: %d", r.status)
	}
	if _, err := k.srv.Store.GetAccount(context.Background(), "gone"); err == nil {
		t.Fatal("the wrapped key ring survived account deletion")
	}
	if _, err := k.srv.Store.Current(context.Background(), "gone", store.Ref{Type: "Patient", ID: id}); err == nil {
		t.Fatal("resource rows survived account deletion")
	}
	// A new account with the same name and key sees nothing of the old one.
	if r := k.do("PUT", "/management/accounts/gone", map[string]any{"encryption": map[string]any{"keySource": "customer", "keyUri": v.keyURI("erase1")}}); r.status != 201 {
		t.Fatalf("re-create: %d", r.status)
	}
	if r := k.do("GET", "/fhir/gone/Patient/"+id, nil); r.status != 404 {
		t.Fatalf("re-created account sees old data: %d", r.status)
	}

	// Purge the key: "purged" becomes permanently unreadable.
	v.call("DELETE", "/keys/erase1", nil)
	v.call("DELETE", "/deletedkeys/erase1", nil)
	waitFor(t, "revocation after purge", 3*interval, func() bool {
		return k.do("GET", "/fhir/purged/Patient/"+pid, nil).status == 403
	})
	enc := encryption(t, k, "purged")
	if enc["keyStatus"] != "Revoked" || enc["keyStatusReason"] != "KeyNotFound" {
		t.Fatalf("status after purge: %v", enc)
	}
	if msg, _ := enc["keyStatusMessage"].(string); !strings.Contains(msg, "purged") {
		t.Fatalf("status message does not say the key may be purged: %q", msg)
	}
	// A new key with the same name is a different key: still unreadable.
	v.createKey("erase1")
	time.Sleep(2 * interval)
	if r := k.do("GET", "/fhir/purged/Patient/"+pid, nil); r.status != 403 {
		t.Fatalf("data readable after purge and re-create of the key: %d", r.status)
	}
}
