package vault_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/vault"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testVault struct {
	*vault.Vault
	dir    string
	admin  string
	pool   *x509.CertPool
	client *http.Client
	clock  *testClock
	cancel context.CancelFunc
	done   chan error
	// remoteURL is set for a client of a vault in another process.
	remoteURL string
}

// URL is the vault URL (of the local or remote vault).
func (tv *testVault) URL() string {
	if tv.remoteURL != "" {
		return tv.remoteURL
	}
	return tv.Vault.URL()
}

func newClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// startVault opens a vault in dir (a new temp dir when ""), serves it over
// TLS on a random 127.0.0.1 port and stops it at the end of the test.
func startVault(t testing.TB, dir string, mod func(*vault.Config)) *testVault {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	clock := &testClock{t: time.Now()}
	cfg := vault.Config{DataDir: dir, Addr: "127.0.0.1:0", Rand: rand.Reader, Clock: clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v, err := vault.Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("open vault: %v", err)
	}
	ln, err := v.Listen()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	tv := &testVault{Vault: v, dir: dir, clock: clock, cancel: cancel, done: make(chan error, 1)}
	go func() { tv.done <- v.Serve(ctx, ln) }()
	tok, err := os.ReadFile(v.AdminTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	tv.admin = strings.TrimSpace(string(tok))
	if cfg.CertFile != "" {
		tv.client = newClient(nil)
	} else {
		pem, err := os.ReadFile(v.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		tv.pool = x509.NewCertPool()
		if !tv.pool.AppendCertsFromPEM(pem) {
			t.Fatal("CA file holds no certificate")
		}
		tv.client = newClient(tv.pool)
	}
	t.Cleanup(tv.stop)
	return tv
}

func (tv *testVault) stop() {
	tv.cancel()
	<-tv.done
	tv.done <- nil // make stop idempotent
	tv.Vault.Close()
}

// staticToken is an azcore.TokenCredential that always returns one token.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (tv *testVault) azClient(t testing.TB, token string) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(tv.URL(), staticToken(token), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: tv.client,
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do sends a raw request and decodes a JSON answer into out (when non-nil).
func (tv *testVault) do(t testing.TB, method, path, token, body string, out any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tv.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp, b
}

// principal issues a token for name and sets its policy (nil: no policy).
func (tv *testVault) principal(t testing.TB, name string, perms []string) string {
	t.Helper()
	var out struct{ Principal, Token string }
	resp, b := tv.do(t, "POST", "/principals/"+name+"/tokens", tv.admin, "", &out)
	if resp.StatusCode != 200 || out.Token == "" || out.Principal != name {
		t.Fatalf("issue token: %d %s", resp.StatusCode, b)
	}
	if perms != nil {
		body, _ := json.Marshal(map[string]any{"permissions": perms})
		resp, b := tv.do(t, "PUT", "/policies/"+name, tv.admin, string(body), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("set policy: %d %s", resp.StatusCode, b)
		}
	}
	return out.Token
}

// respErr asserts err is an *azcore.ResponseError with status and code.
func respErr(t testing.TB, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want ResponseError %d %s, got %v", status, code, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("want %d %s, got %d %s: %v", status, code, re.StatusCode, re.ErrorCode, err)
	}
}
