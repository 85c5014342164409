package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestVaultCLI runs "kiln vault serve" and drives it with "kiln vault …" and
// "kiln key …" over TLS, as an operator would.
func TestVaultCLI(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runVault(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-level", "warn"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("vault serve: %v", err)
		}
	})
	re := regexp.MustCompile(`listening on (https://\S+)`)
	var url string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatalf("vault did not start: %s %s", out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "admin-token")) || !strings.Contains(out.String(), filepath.Join(dir, "ca.pem")) {
		t.Fatalf("start-up lines lack CA or admin token path: %s", out.String())
	}
	admin := []string{"--vault", url, "--token-file", filepath.Join(dir, "admin-token"), "--ca", filepath.Join(dir, "ca.pem")}
	run := func(f func(context.Context, []string, *syncBuffer, *syncBuffer) error, args ...string) (string, error) {
		var o, e syncBuffer
		err := f(ctx, args, &o, &e)
		return o.String(), err
	}
	key := func(args ...string) (string, error) {
		return run(func(c context.Context, a []string, o, e *syncBuffer) error { return runKey(c, a, o, e) }, args...)
	}
	vlt := func(args ...string) (string, error) {
		return run(func(c context.Context, a []string, o, e *syncBuffer) error { return runVault(c, a, o, e) }, args...)
	}
	mustOK := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	s := mustOK(key(append([]string{"create", "cmk", "--kty", "RSA", "--size", "2048"}, admin...)...))
	kidRE := regexp.MustCompile(regexp.QuoteMeta(url) + `/keys/cmk/([0-9a-f]{32})\tenabled=true`)
	m := kidRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("create output %q", s)
	}
	v1 := m[1]
	s = mustOK(key(append([]string{"rotate", "cmk"}, admin...)...))
	m = kidRE.FindStringSubmatch(s)
	if m == nil || m[1] == v1 {
		t.Fatalf("rotate output %q", s)
	}
	mustOK(key(append([]string{"create", "dek", "--kty", "oct"}, admin...)...))
	s = mustOK(key(append([]string{"list"}, admin...)...))
	if !strings.Contains(s, url+"/keys/cmk\t") || !strings.Contains(s, url+"/keys/dek\t") {
		t.Fatalf("list output %q", s)
	}
	s = mustOK(key(append([]string{"disable", "cmk", v1}, admin...)...))
	if !strings.Contains(s, v1+"\tenabled=false") {
		t.Fatalf("disable output %q", s)
	}
	s = mustOK(key(append([]string{"versions", "cmk"}, admin...)...))
	if strings.Count(s, "\n") != 2 || !strings.Contains(s, v1+"\tenabled=false") {
		t.Fatalf("versions output %q", s)
	}
	mustOK(key(append([]string{"enable", "cmk", v1}, admin...)...))
	s = mustOK(key(append([]string{"delete", "dek"}, admin...)...))
	if !strings.Contains(s, "recoverable until") {
		t.Fatalf("delete output %q", s)
	}
	mustOK(key(append([]string{"recover", "dek"}, admin...)...))
	mustOK(key(append([]string{"delete", "dek"}, admin...)...))
	mustOK(key(append([]string{"purge", "dek"}, admin...)...))
	if _, err := key(append([]string{"get", "dek"}, admin...)...); err == nil || !strings.Contains(err.Error(), "KeyNotFound") {
		t.Fatalf("get purged key: %v", err)
	}

	// Tokens and policies.
	tok := strings.TrimSpace(mustOK(vlt(append([]string{"token", "create", "app"}, admin...)...)))
	if !strings.HasPrefix(tok, "kvt1.") {
		t.Fatalf("token %q", tok)
	}
	app := []string{"--vault", url, "--token", tok, "--ca", filepath.Join(dir, "ca.pem")}
	if _, err := key(append([]string{"get", "cmk"}, app...)...); err == nil || !strings.Contains(err.Error(), "403 Forbidden") {
		t.Fatalf("get without policy: %v", err)
	}
	s = mustOK(vlt(append([]string{"policy", "set", "app", "get,list", "wrapKey"}, admin...)...))
	if strings.TrimSpace(s) != "app\tget,list,wrapKey" {
		t.Fatalf("policy set output %q", s)
	}
	mustOK(key(append([]string{"get", "cmk"}, app...)...))
	s = mustOK(vlt(append([]string{"policy", "list"}, admin...)...))
	if !strings.Contains(s, "app") || !strings.Contains(s, "get,list,wrapKey") {
		t.Fatalf("policy list %q", s)
	}
	if _, err := vlt(append([]string{"policy", "set", "app", "fly"}, admin...)...); err == nil || !strings.Contains(err.Error(), "BadParameter") {
		t.Fatalf("bad permission: %v", err)
	}
	mustOK(vlt(append([]string{"policy", "remove", "app"}, admin...)...))
	if _, err := key(append([]string{"get", "cmk"}, app...)...); err == nil {
		t.Fatal("get after policy removal succeeded")
	}
	s = mustOK(vlt(append([]string{"audit", "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, admin...)...))
	if !strings.Contains(s, `"principal":"app"`) || !strings.Contains(s, `"result":"denied"`) {
		t.Fatalf("audit output lacks app's denial: %.500s", s)
	}
	mustOK(vlt(append([]string{"token", "revoke", "app"}, admin...)...))
	if _, err := key(append([]string{"list"}, app...)...); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked token: %v", err)
	}

	// Configuration from the environment; clear errors for bad input.
	t.Setenv("KILN_VAULT_URL", url)
	t.Setenv("KILN_VAULT_TOKEN_FILE", filepath.Join(dir, "admin-token"))
	t.Setenv("KILN_VAULT_CA", filepath.Join(dir, "ca.pem"))
	if s := mustOK(key("list")); !strings.Contains(s, "/keys/cmk") {
		t.Fatalf("env list %q", s)
	}
	if _, err := key("create", "x", "--kty", "EC"); err == nil || !strings.Contains(err.Error(), "--kty") {
		t.Fatalf("bad kty: %v", err)
	}
	if _, err := key("create", "x", "--size", "1024"); err == nil || !strings.Contains(err.Error(), "BadParameter") {
		t.Fatalf("bad size: %v", err)
	}
	if _, err := key("frobnicate", "x"); err == nil {
		t.Fatal("unknown key command accepted")
	}
	if _, err := key("create"); err == nil || !strings.Contains(err.Error(), "key name") {
		t.Fatalf("missing name: %v", err)
	}
	os.Unsetenv("KILN_VAULT_TOKEN_FILE")
	if _, err := key("list", "--token-file", ""); err == nil || !strings.Contains(err.Error(), "no vault token") {
		t.Fatalf("missing token: %v", err)
	}
	if _, err := key("list", "--vault", "http://127.0.0.1:1", "--token", "x"); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http URL: %v", err)
	}
}

func TestVaultServeBadFlags(t *testing.T) {
	var o, e syncBuffer
	if err := runVault(context.Background(), []string{"serve", "--data", t.TempDir(), "--retention-days", "3"}, &o, &e); err == nil || !strings.Contains(err.Error(), "RetentionDays") {
		t.Fatalf("retention 3: %v", err)
	}
	if err := runVault(context.Background(), []string{"serve", "--data", t.TempDir(), "--addr", "256.0.0.1:x"}, &o, &e); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("bad addr: %v", err)
	}
	if err := runVault(context.Background(), []string{"nope"}, &o, &e); err == nil {
		t.Fatal("unknown vault command accepted")
	}
}
