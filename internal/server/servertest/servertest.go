package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/store/postgres/pgtest"
)

// Instance is one running server under test.
type Instance struct {
	// Server is the wired service (store, registry, resource service...).
	Server *server.Server
	// HTTP serves Server.Handler on a loopback port.
	HTTP *httptest.Server
	// URL is the origin of HTTP, e.g. http://127.0.0.1:41234 (no trailing slash).
	URL string
	// DataDir is the server's data directory (a t.TempDir unless given).
	DataDir string
	// Client talks to HTTP (keep-alive, 30 s timeout).
	Client *http.Client

	once sync.Once
}

// Start is the short form of New: it returns the server and the origin URL
// of its HTTP listener (FHIR base of account default: baseURL+"/fhir/default").
func Start(t testing.TB, o server.Options) (*server.Server, string) {
	t.Helper()
	inst := New(t, o)
	return inst.Server, inst.URL
}

// EngineEnv names the environment variable that selects the store engine
// of servers whose Options.Store is empty: "sqlite" (the default) or
// "postgres" (a fresh schema in the cluster named by KILN_TEST_POSTGRES,
// dropped when the test ends; the test skips when that is unset). Running
// a package's tests once with each value runs its whole suite on both
// engines. A test that needs one engine (say, it scans the SQLite files)
// sets Options.Store itself: "sqlite:" pins SQLite in the data directory.
const EngineEnv = "KILN_TEST_ENGINE"

// Engines returns the values EngineEnv accepts.
func Engines() []string { return []string{"sqlite", "postgres"} }

// Engine returns the engine EngineEnv selects ("sqlite" when unset). It
// fails t on an unknown value.
func Engine(t testing.TB) string {
	t.Helper()
	switch e := os.Getenv(EngineEnv); e {
	case "", "sqlite":
		return "sqlite"
	case "postgres":
		return e
	default:
		t.Fatalf("servertest: %s=%q: want one of %v", EngineEnv, e, Engines())
		return ""
	}
}

// StoreFor returns an Options.Store value for engine: "" for SQLite (in
// the data directory), or the URL of a fresh PostgreSQL schema (dropped at
// cleanup; t skips when KILN_TEST_POSTGRES is unset).
func StoreFor(t testing.TB, engine string) string {
	t.Helper()
	switch engine {
	case "sqlite":
		return ""
	case "postgres":
		return pgtest.FreshSchema(t)
	}
	t.Fatalf("servertest: unknown engine %q: want one of %v", engine, Engines())
	return ""
}

// New starts a server with o, filling in test defaults: DataDir a fresh
// t.TempDir(), Store the engine EngineEnv selects, VaultAddr "off" (no
// embedded vault; pass "127.0.0.1:0" to run it), and a logger that prints
// only errors to stderr. It fails t if the server cannot start, and closes
// it when the test ends.
func New(t testing.TB, o server.Options) *Instance {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Store == "" {
		o.Store = StoreFor(t, Engine(t))
	}
	if o.VaultAddr == "" {
		o.VaultAddr = "off"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, o)
	if err != nil {
		t.Fatalf("servertest: start server: %v", err)
	}
	hs := httptest.NewServer(srv.Handler)
	c := hs.Client()
	c.Timeout = 30 * time.Second
	inst := &Instance{Server: srv, HTTP: hs, URL: hs.URL, DataDir: o.DataDir, Client: c}
	t.Cleanup(inst.Close)
	return inst
}

// Close stops the HTTP listener, then the server (monitor, audit, vault,
// store). It is safe to call more than once.
func (i *Instance) Close() {
	i.once.Do(func() {
		i.HTTP.Close()
		i.Server.Close()
	})
}

// Base returns the FHIR base URL of account, e.g. http://127.0.0.1:41234/fhir/default.
func (i *Instance) Base(account string) string { return i.URL + "/fhir/" + account }

// Response is a fully read HTTP response.
type Response struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
}

// Do sends a request and reads the whole response. target is a path
// ("/fhir/default/Patient") or an absolute URL (a next link). body may be
// nil, a string, []byte, an io.Reader (sent chunked, without
// Content-Length), or any other value (sent as JSON). hdr are
// name/value pairs; Content-Type defaults to application/fhir+json when a
// body is sent. Transport errors fail t.
func (i *Instance) Do(t testing.TB, method, target string, body any, hdr ...string) *Response {
	t.Helper()
	r, err := i.Try(method, target, body, hdr...)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	return r
}

// Try is Do without t, for use from goroutines: it returns transport errors.
func (i *Instance) Try(method, target string, body any, hdr ...string) (*Response, error) {
	if len(hdr)%2 != 0 {
		return nil, fmt.Errorf("servertest: headers must be name/value pairs, got %q", hdr)
	}
	u := target
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = i.URL + target
	}
	var rd io.Reader
	hasBody := body != nil
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader: // sent chunked: no Content-Length
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("servertest: marshal body: %w", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("servertest: %s %s: %w", method, u, err)
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k := 0; k < len(hdr); k += 2 {
		req.Header.Set(hdr[k], hdr[k+1])
	}
	resp, err := i.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("servertest: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("servertest: %s %s: read body: %w", method, u, err)
	}
	return &Response{Method: method, URL: u, Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// String summarises the response for failure messages.
func (r *Response) String() string {
	b := r.Body
	if len(b) > 2000 {
		b = append(b[:2000:2000], "…"...)
	}
	return fmt.Sprintf("%s %s → %d %s", r.Method, r.URL, r.Status, b)
}

// Want fails t unless the status is one of want.
func (r *Response) Want(t testing.TB, want ...int) *Response {
	t.Helper()
	for _, w := range want {
		if r.Status == w {
			return r
		}
	}
	t.Fatalf("want status %v: %s", want, r)
	return r
}

// JSON decodes the body as a JSON object (numbers as json.Number), failing t otherwise.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r)
	}
	return m
}

// Outcome checks that the response is an error OperationOutcome with status
// and Content-Type application/fhir+json, and returns its issues.
func (r *Response) Outcome(t testing.TB, status int) []map[string]any {
	t.Helper()
	r.Want(t, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Fatalf("Content-Type %q, want application/fhir+json: %s", ct, r)
	}
	m := r.JSON(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome: %s", r)
	}
	raw, _ := m["issue"].([]any)
	if len(raw) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r)
	}
	var out []map[string]any
	for _, x := range raw {
		is, ok := x.(map[string]any)
		if !ok {
			t.Fatalf("issue is not an object: %s", r)
		}
		if is["severity"] == nil || is["code"] == nil {
			t.Fatalf("issue lacks severity or code: %s", r)
		}
		out = append(out, is)
	}
	return out
}

// Files lists every regular file under dir (recursively), sorted: what a
// no-plaintext scan must read.
func Files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("servertest: list %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}
