package loader_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kilnhealth/kiln/internal/loader"
	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if strings.HasSuffix(path, ".gz") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		data = buf.Bytes()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixture writes a transaction bundle (2 resources), a gzipped NDJSON of
// 25 Patients and 25 Observations referring to them, and a collection
// Bundle of 2 Patients: 54 resources.
func fixture(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "tx.json"), []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:7b2f0c3e-1111-4000-8000-000000000001","resource":{"resourceType":"Patient","name":[{"family":"Tx"}]},"request":{"method":"POST","url":"Patient"}},
	 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"urn:uuid:7b2f0c3e-1111-4000-8000-000000000001"}},"request":{"method":"POST","url":"Observation"}}]}`))
	var nd bytes.Buffer
	for i := 0; i < 25; i++ {
		fmt.Fprintf(&nd, `{"resourceType":"Patient","id":"nd-%d","name":[{"family":"Nd%d"}]}`+"\n", i, i)
	}
	for i := 0; i < 25; i++ {
		fmt.Fprintf(&nd, `{"resourceType":"Observation","id":"ndo-%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/nd-%d"}}`+"\n\n", i, i)
	}
	writeFile(t, filepath.Join(dir, "b", "all.ndjson.gz"), nd.Bytes())
	writeFile(t, filepath.Join(dir, "b", "coll.json.gz"), []byte(`{"resourceType":"Bundle","type":"collection","entry":[
	 {"resource":{"resourceType":"Patient","id":"c1"}},{"resource":{"resourceType":"Patient","id":"c2"}}]}`))
	writeFile(t, filepath.Join(dir, "b", "ignored.txt"), []byte("not loaded"))
	return dir
}

func count(t *testing.T, inst *servertest.Instance, typ string) int {
	m := inst.Do(t, "GET", "/fhir/default/"+typ+"?_summary=count", nil).Want(t, 200).JSON(t)
	n, _ := m["total"].(json.Number).Int64()
	return int(n)
}

func TestLoad(t *testing.T) {
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	dir := fixture(t)
	files, err := loader.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("expanded to %v", files)
	}
	var progress bytes.Buffer
	s, err := loader.Load(context.Background(), loader.Config{Base: inst.Base("default"), BatchSize: 10, Concurrency: 3, Progress: &progress}, files)
	if err != nil {
		t.Fatal(err)
	}
	if s.Resources != 54 || s.Failed != 0 || s.Files != 3 || s.Bundles != 1+5+1 {
		t.Fatalf("summary %+v", s)
	}
	if got := count(t, inst, "Patient"); got != 28 {
		t.Errorf("%d Patients, want 28", got)
	}
	if got := count(t, inst, "Observation"); got != 26 {
		t.Errorf("%d Observations, want 26", got)
	}
	if !strings.Contains(progress.String(), "100%") || !strings.Contains(progress.String(), "54 resources") {
		t.Errorf("progress line: %q", progress.String())
	}
	// A reload of the NDJSON replaces (PUT) rather than duplicates.
	s, err = loader.Load(context.Background(), loader.Config{Base: inst.Base("default")}, []string{filepath.Join(dir, "b", "all.ndjson.gz")})
	if err != nil || s.Resources != 50 {
		t.Fatalf("reload: %+v %v", s, err)
	}
	if got := count(t, inst, "Patient"); got != 28 {
		t.Errorf("after reload %d Patients, want 28", got)
	}
}

// TestLoadRetries puts a proxy in front of the server that answers the
// first requests with 503 and drops one connection: the loader retries
// and loads everything.
func TestLoadRetries(t *testing.T) {
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	target, _ := url.Parse(inst.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case 3:
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	defer proxy.Close()
	dir := fixture(t)
	s, err := loader.Load(context.Background(), loader.Config{Base: proxy.URL + "/fhir/default", Concurrency: 1, Backoff: 1, Seed: 1},
		[]string{filepath.Join(dir, "a", "tx.json")})
	if err != nil {
		t.Fatal(err)
	}
	if s.Retries != 3 || s.Resources != 2 || s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestLoadRejected(t *testing.T) {
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.ndjson"), []byte(`{"resourceType":"Patient","id":"ok"}`+"\n"+`{"resourceType":"Patient","id":"bad","gender":"sometimes"}`+"\n"))
	writeFile(t, filepath.Join(dir, "junk.json"), []byte(`not json`))
	files, _ := loader.Expand([]string{filepath.Join(dir, "*")})
	s, err := loader.Load(context.Background(), loader.Config{Base: inst.Base("default"), Retries: -1}, files)
	if err != nil {
		t.Fatal(err)
	}
	if s.Resources != 0 || s.Failed != 2 || s.FailedFiles != 1 || s.Retries != 0 || len(s.Errors) != 2 || s.OK() {
		t.Fatalf("summary %+v", s)
	}
	inst.Do(t, "GET", "/fhir/default/Patient/ok", nil).Want(t, 404) // the transaction was atomic
	// As a batch, the valid line loads.
	s, _ = loader.Load(context.Background(), loader.Config{Base: inst.Base("default"), Batch: true}, files[:1])
	if s.Resources != 1 || s.Failed != 1 {
		t.Fatalf("batch summary %+v", s)
	}
	if _, err := loader.Expand([]string{filepath.Join(dir, "nothing-*")}); err == nil {
		t.Fatal("Expand of an empty glob succeeded")
	}
}

// TestLoadBadFilesAndLines checks that a file that cannot be read fails
// alone (the load goes on with the next files), and that an NDJSON line
// that is not JSON fails alone, named by its line number, while the other
// lines of its group load.
func TestLoadBadFilesAndLines(t *testing.T) {
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	dir := t.TempDir()
	// Plain JSON under a .gz name, large enough to matter on the progress bar.
	notGzip := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 64<<10) + `"}]}`
	if err := os.WriteFile(filepath.Join(dir, "a-not-gzip.json.gz"), []byte(notGzip), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(zw, `{"resourceType":"Patient","id":"cut-%d","name":[{"family":"Cut%d"}]}`+"\n", i, i)
	}
	zw.Close()
	cut := gz.Bytes()[:gz.Len()/2] // a gzip stream that ends in the middle
	if err := os.WriteFile(filepath.Join(dir, "b-truncated.ndjson.gz"), cut, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "c-ok.json"), []byte(`{"resourceType":"Patient","id":"whole"}`))
	writeFile(t, filepath.Join(dir, "d-lines.ndjson"), []byte(`{"resourceType":"Patient","id":"l1"}`+"\n"+`{"resourceType":"Patient",`+"\n"+`{"resourceType":"Patient","id":"l3"}`+"\n"))
	files, err := loader.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	s, err := loader.Load(context.Background(), loader.Config{Base: inst.Base("default"), Retries: -1, BatchSize: 100, Progress: &progress}, files)
	if err != nil {
		t.Fatalf("Load stopped: %v", err)
	}
	// Unreadable files count as done: the bar ends full.
	if lines := strings.Split(strings.TrimSpace(progress.String()), "\r"); !strings.Contains(lines[len(lines)-1], "100%") {
		t.Errorf("last progress line %q, want 100%%", lines[len(lines)-1])
	}
	// Failed: d-lines.ndjson's line 2, and the line the truncation cuts.
	if s.FailedFiles != 2 || s.Failed != 2 || s.OK() {
		t.Fatalf("summary %+v", s)
	}
	for _, id := range []string{"whole", "l1", "l3", "cut-0"} {
		inst.Do(t, "GET", "/fhir/default/Patient/"+id, nil).Want(t, 200)
	}
	if s.Resources != count(t, inst, "Patient") {
		t.Fatalf("summary counts %d resources, the server has %d", s.Resources, count(t, inst, "Patient"))
	}
	joined := strings.Join(s.Errors, "\n")
	for _, want := range []string{"a-not-gzip.json.gz: not a gzip file", "b-truncated.ndjson.gz after line", "d-lines.ndjson line 2: not a JSON object"} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors do not mention %q:\n%s", want, joined)
		}
	}
	if !strings.Contains(s.String(), "(2 unreadable)") {
		t.Errorf("summary line %q", s.String())
	}
}

// TestLoadSyntheaNDJSON loads the Synthea bulk NDJSON sample (skipped when
// the shared data is absent): every line is accepted and each type's count
// matches its file's line count.
func TestLoadSyntheaNDJSON(t *testing.T) {
	dir := "../../../shared/data/synthea/ndjson-10-patients"
	files, err := loader.Expand([]string{filepath.Join(dir, "*.ndjson.gz")})
	if err != nil {
		t.Skipf("no Synthea NDJSON in %s (shared data absent): %v", dir, err)
	}
	if testing.Short() {
		files = files[:3]
	}
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	s, err := loader.Load(context.Background(), loader.Config{Base: inst.Base("default"), Concurrency: 2}, files)
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
	total := 0
	for _, f := range files {
		typ := strings.SplitN(filepath.Base(f), ".", 2)[0]
		raw, _ := os.ReadFile(f)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(zr)
		lines := bytes.Count(bytes.TrimSpace(buf.Bytes()), []byte("\n")) + 1
		total += lines
		if got := count(t, inst, typ); got != lines {
			t.Errorf("%s: %d stored, %d lines", typ, got, lines)
		}
	}
	if s.Resources != total {
		t.Errorf("summary says %d resources, files hold %d", s.Resources, total)
	}
}
