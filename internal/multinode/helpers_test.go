package multinode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildKiln builds cmd/kiln once per test into a temp dir.
func buildKiln(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kiln")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kilnhealth/kiln/cmd/kiln")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kiln: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running child process whose output goes to a log file that is
// printed when the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	once sync.Once
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

// stop sends SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// run runs the kiln CLI and returns its stdout, failing t on error.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kiln %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// vaultProc is a stand-alone `kiln vault serve`.
type vaultProc struct {
	*proc
	bin, url, dir, ca, adminToken string
}

func startVault(t *testing.T, bin string) *vaultProc {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	p := startProc(t, "vault", bin, "vault", "serve", "--addr", addr, "--data", dir, "--log-level", "warn")
	v := &vaultProc{proc: p, bin: bin, url: "https://" + addr, dir: dir, ca: filepath.Join(dir, "ca.pem"), adminToken: filepath.Join(dir, "admin-token")}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			t.Fatal("kiln vault serve exited at start")
		}
		pem, errCA := os.ReadFile(v.ca)
		_, errTok := os.Stat(v.adminToken)
		if errCA == nil && errTok == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			if res, err := c.Get(v.url + "/keys?api-version=7.4"); err == nil {
				res.Body.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("kiln vault serve did not come up within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v
}

// admin runs a `kiln vault …` or `kiln key …` admin command against v.
func (v *vaultProc) admin(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, v.bin, append(args, "--vault", v.url, "--token-file", v.adminToken, "--ca", v.ca)...)
}

// kidVersion returns the version of the kid printed by `kiln key create|rotate`.
func kidVersion(t *testing.T, out string) string {
	t.Helper()
	kid, _, _ := strings.Cut(strings.TrimSpace(out), "\t")
	i := strings.LastIndex(kid, "/")
	if !strings.Contains(kid, "/keys/") || i < 0 {
		t.Fatalf("no kid in %q", out)
	}
	return kid[i+1:]
}

// node is one `kiln serve` process.
type node struct {
	*proc
	url    string
	client *http.Client
}

type nodeConfig struct {
	bin, store, data, tokenFile, ca string
	interval                        time.Duration
}

func startNode(t *testing.T, name string, c nodeConfig) *node {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"serve", "--addr", addr, "--data", c.data, "--store", c.store, "--vault-addr", "off",
		"--key-check-interval", c.interval.String(), "--log-level", "warn"}
	if c.tokenFile != "" {
		args = append(args, "--akv-token-file", c.tokenFile, "--akv-ca", c.ca)
	}
	p := startProc(t, name, c.bin, args...)
	n := &node{proc: p, url: "http://" + addr, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited at start:\n%s", name, b)
		}
		if r, err := n.try("GET", "/health", nil); err == nil && r.status != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer /health within 60s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	b := r.body
	if len(b) > 1500 {
		b = b[:1500]
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not a JSON object: %s", r)
	}
	return m
}

// try sends a request; body is nil, a string or a value sent as JSON.
// hdr are name/value pairs.
func (n *node) try(method, path string, body any, hdr ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := n.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

func (n *node) do(t *testing.T, method, path string, body any, hdr ...string) response {
	t.Helper()
	r, err := n.try(method, path, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s %s: %v", n.name, method, path, err)
	}
	return r
}

func (n *node) want(t *testing.T, status int, method, path string, body any, hdr ...string) response {
	t.Helper()
	r := n.do(t, method, path, body, hdr...)
	if r.status != status {
		t.Fatalf("%s %s %s: want %d, got %s", n.name, method, path, status, r)
	}
	return r
}

// encryption returns the account's encryption object as this node sees it.
func (n *node) encryption(t *testing.T, account string) map[string]any {
	t.Helper()
	m := n.want(t, 200, "GET", "/management/accounts/"+account, nil).json(t)
	enc, _ := m["encryption"].(map[string]any)
	return enc
}

// auditActions counts the AuditEvents of account by action code; with
// version set, only those whose keyVersion detail equals it.
func (n *node) auditActions(t *testing.T, account, action, version string) int {
	t.Helper()
	var out struct {
		Value []struct {
			Subtype []struct {
				Code string `json:"code"`
			} `json:"subtype"`
			Outcome string `json:"outcome"`
			Entity  []struct {
				Detail []struct {
					Type        string `json:"type"`
					ValueString string `json:"valueString"`
				} `json:"detail"`
			} `json:"entity"`
		} `json:"value"`
	}
	r := n.want(t, 200, "GET", "/management/audit?account="+account, nil)
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("audit: %v: %s", err, r)
	}
	count := 0
	for _, ev := range out.Value {
		if len(ev.Subtype) == 0 || ev.Subtype[0].Code != action || ev.Outcome != "0" {
			continue
		}
		if version != "" {
			match := false
			for _, e := range ev.Entity {
				for _, d := range e.Detail {
					match = match || (d.Type == "keyVersion" && d.ValueString == version)
				}
			}
			if !match {
				continue
			}
		}
		count++
	}
	return count
}

// copyServiceKey gives every node the service key of the first: all
// nodes must hold the same service-managed key (the inner layer of every
// account's key ring).
func copyServiceKey(t *testing.T, fromData string, toData ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fromData, "keys", "service.key"))
	if err != nil {
		t.Fatalf("read the first node's service key: %v", err)
	}
	for _, d := range toData {
		if err := os.MkdirAll(filepath.Join(d, "keys"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "keys", "service.key"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAll polls cond on every node concurrently and returns, per node, how
// long after start cond first held. It fails t when a node misses limit.
func waitAll(t *testing.T, nodes []*node, limit time.Duration, start time.Time, cond func(n *node) bool) []time.Duration {
	t.Helper()
	out := make([]time.Duration, len(nodes))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var missed []string
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !cond(n) {
				if time.Since(start) > limit {
					mu.Lock()
					missed = append(missed, n.name)
					mu.Unlock()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			out[i] = time.Since(start)
		}()
	}
	wg.Wait()
	if len(missed) > 0 {
		t.Fatalf("not within %v on %v (others: %v)", limit, missed, out)
	}
	return out
}

// patient is a valid Patient with a family name and, when ident is set,
// an identifier.
func patient(familyName, ident string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": familyName, "given": []any{"Ada"}}},
		"gender":       "female",
		"birthDate":    "1970-01-02",
	}
	if ident != "" {
		p["identifier"] = []any{map[string]any{"system": "urn:kiln:mn", "value": ident}}
	}
	return p
}

func family(res map[string]any) string {
	names, _ := res["name"].([]any)
	if len(names) == 0 {
		return ""
	}
	n, _ := names[0].(map[string]any)
	f, _ := n["family"].(string)
	return f
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
