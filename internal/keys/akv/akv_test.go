package akv_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/keys/akv"
	"github.com/kilnhealth/kiln/internal/vault"
)

type env struct {
	v     *vault.Vault
	url   string
	admin string
	ca    string
	az    *azkeys.Client // admin client for setup
}

type staticCred string

func (s staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// startVault runs the built-in vault over TLS on a random port.
func startVault(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	v, err := vault.Open(ctx, vault.Config{DataDir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := v.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { v.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; v.Close() })
	tok, err := os.ReadFile(v.AdminTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{v: v, url: v.URL(), admin: strings.TrimSpace(string(tok)), ca: v.CAFile()}
	pem, _ := os.ReadFile(e.ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	e.az, err = azkeys.NewClient(e.url, staticCred(e.admin), &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) create(t *testing.T, name string, kty azkeys.KeyType) string {
	t.Helper()
	r, err := e.az.CreateKey(context.Background(), name, azkeys.CreateKeyParameters{Kty: to.Ptr(kty)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Key.KID.Version()
}

func (e *env) rotate(t *testing.T, name string) string {
	t.Helper()
	r, err := e.az.RotateKey(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Key.KID.Version()
}

func (e *env) setEnabled(t *testing.T, name, version string, on bool) {
	t.Helper()
	if _, err := e.az.UpdateKey(context.Background(), name, version, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil); err != nil {
		t.Fatal(err)
	}
}

// provider returns an akv provider authenticating as principal with perms.
func (e *env) provider(t *testing.T, principal string, perms []string) *akv.Provider {
	t.Helper()
	ctx := context.Background()
	tok, err := e.v.IssueToken(ctx, principal)
	if err != nil {
		t.Fatal(err)
	}
	if perms != nil {
		if err := e.v.SetPolicy(ctx, principal, perms); err != nil {
			t.Fatal(err)
		}
	}
	p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: tok}, CAFile: e.ca, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, p *akv.Provider, uri string) keys.Key {
	t.Helper()
	k, err := p.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wantErr checks err is a *keys.Error whose Err is sentinel.
func wantErr(t *testing.T, err, sentinel error) {
	t.Helper()
	var ke *keys.Error
	if !errors.As(err, &ke) || !errors.Is(err, sentinel) {
		t.Fatalf("want *keys.Error %v, got %T %v", sentinel, err, err)
	}
	if ke.KeyURI == "" || ke.Op == "" {
		t.Fatalf("error lacks op or uri: %v", err)
	}
}

var kiln = []string{"get", "wrapKey", "unwrapKey"}

func TestRotationVersionlessAndPinned(t *testing.T) {
	e := startVault(t)
	ctx := context.Background()
	v1 := e.create(t, "cmk", azkeys.KeyTypeRSA)
	p := e.provider(t, "kiln", kiln)
	uri := e.url + "/keys/cmk"
	k := open(t, p, uri)
	pinned := open(t, p, uri+"/"+v1)

	pr, err := k.Probe(ctx)
	if err != nil || pr.Version != v1 {
		t.Fatalf("probe: %v %v", pr, err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	w1, err := k.Wrap(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if w1.Provider != "akv" || w1.KeyID != uri || w1.Version != v1 || w1.Alg != "RSA-OAEP-256" || len(w1.Ciphertext) != 256 {
		t.Fatalf("wrapped %+v", w1)
	}

	v2 := e.rotate(t, "cmk")
	// Versionless follows the current version.
	pr, err = k.Probe(ctx)
	if err != nil || pr.Version != v2 {
		t.Fatalf("probe after rotate: %v %v (want %s)", pr, err, v2)
	}
	w2, err := k.Wrap(ctx, secret)
	if err != nil || w2.Version != v2 {
		t.Fatalf("wrap after rotate: %+v %v", w2, err)
	}
	// Pinned stays on v1.
	pr, err = pinned.Probe(ctx)
	if err != nil || pr.Version != v1 {
		t.Fatalf("pinned probe: %v %v", pr, err)
	}
	wp, err := pinned.Wrap(ctx, secret)
	if err != nil || wp.Version != v1 || wp.KeyID != uri {
		t.Fatalf("pinned wrap: %+v %v", wp, err)
	}
	// Old-version wraps still unwrap through either handle.
	for _, h := range []keys.Key{k, pinned} {
		for _, w := range []keys.Wrapped{w1, w2, wp} {
			got, err := h.Unwrap(ctx, w)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("unwrap %s via %s: %v", w.Version, h.URI(), err)
			}
		}
	}
	// Disable v1: unwrapping v1 data fails as disabled; v2 still works; the
	// pinned probe reports disabled, the versionless one does not.
	e.setEnabled(t, "cmk", v1, false)
	_, err = k.Unwrap(ctx, w1)
	wantErr(t, err, keys.ErrKeyDisabled)
	if _, err := k.Unwrap(ctx, w2); err != nil {
		t.Fatalf("v2 after disabling v1: %v", err)
	}
	_, err = pinned.Probe(ctx)
	wantErr(t, err, keys.ErrKeyDisabled)
	if pr, err := k.Probe(ctx); err != nil || pr.Version != v2 {
		t.Fatalf("versionless probe with v1 disabled: %v %v", pr, err)
	}
	// Disable the current version: versionless probe and wrap fail as disabled.
	e.setEnabled(t, "cmk", v2, false)
	_, err = k.Probe(ctx)
	wantErr(t, err, keys.ErrKeyDisabled)
	_, err = k.Wrap(ctx, secret)
	wantErr(t, err, keys.ErrKeyDisabled)
	e.setEnabled(t, "cmk", v2, true)
	if _, err := k.Probe(ctx); err != nil {
		t.Fatalf("re-enabled: %v", err)
	}
}

func TestOctKey(t *testing.T) {
	e := startVault(t)
	ctx := context.Background()
	v1 := e.create(t, "dek", azkeys.KeyTypeOct)
	k := open(t, e.provider(t, "kiln", kiln), e.url+"/keys/dek")
	secret := bytes.Repeat([]byte{0x42}, 32)
	w, err := k.Wrap(ctx, secret)
	if err != nil || w.Alg != "A256KW" || w.Version != v1 || len(w.Ciphertext) != 40 {
		t.Fatalf("wrap oct: %+v %v", w, err)
	}
	got, err := k.Unwrap(ctx, w)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unwrap oct: %v", err)
	}
	if pr, err := k.Probe(ctx); err != nil || pr.Version != v1 {
		t.Fatalf("probe oct: %v %v", pr, err)
	}
	// Tampered ciphertext.
	bad := w
	bad.Ciphertext = append([]byte(nil), w.Ciphertext...)
	bad.Ciphertext[5] ^= 1
	_, err = k.Unwrap(ctx, bad)
	wantErr(t, err, keys.ErrUnwrapFailed)
	// A value wrapped under another key is refused before any call.
	other := w
	other.KeyID = e.url + "/keys/other"
	_, err = k.Unwrap(ctx, other)
	wantErr(t, err, keys.ErrUnwrapFailed)
}

func TestErrorClasses(t *testing.T) {
	e := startVault(t)
	ctx := context.Background()
	e.create(t, "cmk", azkeys.KeyTypeOct)
	uri := e.url + "/keys/cmk"

	t.Run("not found", func(t *testing.T) {
		k := open(t, e.provider(t, "kiln", kiln), e.url+"/keys/missing")
		_, err := k.Probe(ctx)
		wantErr(t, err, keys.ErrKeyNotFound)
		_, err = open(t, e.provider(t, "kiln2", kiln), uri+"/0123456789abcdef0123456789abcdef").Probe(ctx)
		wantErr(t, err, keys.ErrKeyNotFound)
	})
	t.Run("no policy", func(t *testing.T) {
		_, err := open(t, e.provider(t, "nobody", nil), uri).Probe(ctx)
		wantErr(t, err, keys.ErrPermissionDenied)
	})
	t.Run("missing unwrapKey", func(t *testing.T) {
		k := open(t, e.provider(t, "half", []string{"get", "wrapKey"}), uri)
		_, err := k.Probe(ctx)
		wantErr(t, err, keys.ErrPermissionDenied)
		if !strings.Contains(err.Error(), "unwrapKey") {
			t.Fatalf("detail does not name the permission: %v", err)
		}
	})
	t.Run("policy removed", func(t *testing.T) {
		p := e.provider(t, "gone", kiln)
		k := open(t, p, uri)
		if _, err := k.Probe(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.v.RemovePolicy(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		_, err := k.Probe(ctx)
		wantErr(t, err, keys.ErrPermissionDenied)
	})
	t.Run("bad token", func(t *testing.T) {
		p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: "kvt1.wrong"}, CAFile: e.ca})
		if err != nil {
			t.Fatal(err)
		}
		_, err = open(t, p, uri).Probe(ctx)
		wantErr(t, err, keys.ErrUnauthenticated)
	})
	t.Run("deleted key", func(t *testing.T) {
		e.create(t, "doomed", azkeys.KeyTypeOct)
		k := open(t, e.provider(t, "kiln3", kiln), e.url+"/keys/doomed")
		w, err := k.Wrap(ctx, make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.az.DeleteKey(ctx, "doomed", nil); err != nil {
			t.Fatal(err)
		}
		_, err = k.Unwrap(ctx, w)
		wantErr(t, err, keys.ErrKeyNotFound)
		if _, err := e.az.RecoverDeletedKey(ctx, "doomed", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Unwrap(ctx, w); err != nil {
			t.Fatalf("after recover: %v", err)
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		tok, _ := e.v.IssueToken(ctx, "kiln")
		p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: tok}, RootCAs: x509.NewCertPool()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = open(t, p, uri).Probe(ctx)
		wantErr(t, err, keys.ErrUnreachable)
		if !strings.Contains(err.Error(), "CA") {
			t.Fatalf("detail does not mention the CA: %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = open(t, e.provider(t, "kiln4", kiln), "https://"+addr+"/keys/cmk").Probe(ctx)
		wantErr(t, err, keys.ErrUnreachable)
	})
	t.Run("timeout", func(t *testing.T) {
		// A peer that accepts connections and never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		tok, _ := e.v.IssueToken(ctx, "kiln")
		p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: tok}, CAFile: e.ca, Timeout: 400 * time.Millisecond, TryTimeout: 200 * time.Millisecond, MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = open(t, p, "https://"+ln.Addr().String()+"/keys/cmk").Probe(ctx)
		wantErr(t, err, keys.ErrUnreachable)
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("timeout took %v", d)
		}
	})
	t.Run("server error", func(t *testing.T) {
		// The vault itself never answers 5xx on purpose; a TLS server that
		// does stands in for a failing vault or a gateway in front of one.
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"ServiceUnavailable","message":"try later"}}`))
		}))
		defer srv.Close()
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: "t"}, RootCAs: pool, MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = open(t, p, srv.URL+"/keys/cmk").Probe(ctx)
		wantErr(t, err, keys.ErrUnreachable)
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := open(t, e.provider(t, "kiln5", kiln), uri).Probe(cctx)
		wantErr(t, err, keys.ErrUnreachable)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("context error hidden: %v", err)
		}
	})
}

func TestOpenAndConfig(t *testing.T) {
	p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"https://v.vault.azure.net/keys/k", "https://127.0.0.1:8443/keys/k/0123456789abcdef0123456789abcdef"} {
		if !p.Supports(u) {
			t.Errorf("Supports(%q) = false", u)
		}
	}
	for _, u := range []string{"local:k", "http://v/keys/k", "https://v/secrets/k", "pkcs11:token=a", "arn:aws:kms:x"} {
		if p.Supports(u) {
			t.Errorf("Supports(%q) = true", u)
		}
	}
	for _, u := range []string{"https://v/keys/", "https://v/keys/a_b", "https://v/keys/k/v/x", "https://v/keys/k?x=1", "https://u@v/keys/k", "https://v/keys/k/ver%2F"} {
		_, err := p.Open(context.Background(), u)
		wantErr(t, err, keys.ErrInvalidURI)
	}
	for _, a := range []akv.Auth{{}, {Kind: "kerberos"}, {Kind: akv.AuthToken}, {Kind: akv.AuthToken, Token: "a", TokenFile: "b"}, {Kind: akv.AuthClientSecret, TenantID: "t"}, {Kind: akv.AuthToken, TokenFile: "/nonexistent"}} {
		if _, err := akv.New(akv.Config{Auth: a}); err == nil {
			t.Errorf("New accepted auth %+v", a)
		}
	}
	if _, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: "x"}, CAFile: "/nonexistent"}); err == nil {
		t.Error("New accepted a missing CA file")
	}
	// Azure credentials construct without network access.
	for _, a := range []akv.Auth{
		{Kind: akv.AuthManagedIdentity}, {Kind: akv.AuthManagedIdentity, ClientID: "00000000-0000-0000-0000-000000000001"},
		{Kind: akv.AuthClientSecret, TenantID: "00000000-0000-0000-0000-000000000002", ClientID: "c", ClientSecret: "s"},
		{Kind: akv.AuthWorkloadIdentity, TenantID: "00000000-0000-0000-0000-000000000002", ClientID: "c", TokenFile: "/var/run/token"},
		{Kind: akv.AuthAzureCLI},
	} {
		if _, err := akv.New(akv.Config{Auth: a}); err != nil {
			t.Errorf("New(%s): %v", a.Kind, err)
		}
	}
}

// TestTokenFile: the token can come from a file (as the embedded vault's
// token for principal kiln does).
func TestTokenFile(t *testing.T) {
	e := startVault(t)
	ctx := context.Background()
	e.create(t, "cmk", azkeys.KeyTypeOct)
	tok, _ := e.v.IssueToken(ctx, "kiln")
	e.v.SetPolicy(ctx, "kiln", kiln)
	f := t.TempDir() + "/token"
	os.WriteFile(f, []byte(tok+"\n"), 0o600)
	p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, TokenFile: f}, CAFile: e.ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, p, e.url+"/keys/cmk").Probe(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRegistry: the registry picks akv for https key URIs.
func TestRegistry(t *testing.T) {
	p, err := akv.New(akv.Config{Auth: akv.Auth{Kind: akv.AuthToken, Token: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	r := keys.NewRegistry(keys.NewLocal(t.TempDir(), rand.Reader), p)
	if got := r.Lookup("https://v.vault.azure.net/keys/k"); got == nil || got.Name() != "akv" {
		t.Fatalf("lookup = %v", got)
	}
	if got := r.Lookup("local:k"); got == nil || got.Name() != "local" {
		t.Fatalf("lookup local = %v", got)
	}
}

// TestRotationUnderLoad: wraps and unwraps through a versionless URI keep
// succeeding while the key is rotated (rotation never fails a request).
func TestRotationUnderLoad(t *testing.T) {
	e := startVault(t)
	ctx := context.Background()
	e.create(t, "cmk", azkeys.KeyTypeOct)
	k := open(t, e.provider(t, "kiln", kiln), e.url+"/keys/cmk")
	stop := make(chan struct{})
	type result struct {
		ops, errs int
		versions  map[string]bool
		first     error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			r := result{versions: map[string]bool{}}
			secret := make([]byte, 32)
			for {
				select {
				case <-stop:
					results <- r
					return
				default:
				}
				rand.Read(secret)
				w, err := k.Wrap(ctx, secret)
				if err == nil {
					var got []byte
					got, err = k.Unwrap(ctx, w)
					if err == nil && !bytes.Equal(got, secret) {
						err = errors.New("round trip mismatch")
					}
					r.versions[w.Version] = true
				}
				r.ops++
				if err != nil {
					r.errs++
					if r.first == nil {
						r.first = err
					}
				}
			}
		}()
	}
	versions := 1
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		e.rotate(t, "cmk")
		versions++
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	ops, seen := 0, map[string]bool{}
	for range 4 {
		r := <-results
		ops += r.ops
		if r.errs > 0 {
			t.Fatalf("%d of %d operations failed during rotation; first: %v", r.errs, r.ops, r.first)
		}
		for v := range r.versions {
			seen[v] = true
		}
	}
	if ops < 20 || len(seen) < 2 {
		t.Fatalf("%d operations over %d versions (of %d); load too small to mean anything", ops, len(seen), versions)
	}
	t.Logf("%d wrap+unwrap round trips across %d versions, 0 errors", ops, len(seen))
}
