package loader_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/loader"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// minimalResponse is a transaction-response Bundle of n entries shaped as
// Kiln answers with Prefer: return=minimal.
func minimalResponse(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","id":"3c7b6a1e-8f1d-4b5e-9a55-1f0e2d3c4b5a","meta":{"lastUpdated":"2026-12-03T10:00:00.000Z"},"type":"transaction-response","entry":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"fullUrl":"http://127.0.0.1:8080/fhir/default/Observation/%08d-8f1d-4b5e-9a55-1f0e2d3c4b5a","response":{"status":"201 Created","location":"Observation/%08d-8f1d-4b5e-9a55-1f0e2d3c4b5a/_history/1","etag":"W/\"1\"","lastModified":"2026-12-03T10:00:00.000Z"}}`, i, i)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// BenchmarkLoadSynthea runs the `kiln load` client over the 143 Synthea
// transaction Bundles (gzip files) against an in-process HTTP server that
// only reads each request and answers a canned return=minimal response
// with one entry per request entry. One op is one pass over all files.
// cpu-µs/resource is the process's CPU time per resource: the loader's
// cost (file reading, gunzip, Bundle checks, HTTP client, response
// parsing) plus the trivial server's reading of the request.
//
//	go test ./internal/loader -run '^$' -bench LoadSynthea -benchtime 2x
func BenchmarkLoadSynthea(b *testing.B) {
	files, _ := filepath.Glob("../../../shared/data/synthea/bundles/*.json.gz")
	if len(files) == 0 {
		b.Skip("no Synthea bundles in ../shared/data (shared data absent)")
	}
	var mu sync.Mutex
	responses := map[int][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Entries counted by their request element, cached by size.
		mu.Lock()
		resp, ok := responses[len(body)]
		mu.Unlock()
		if !ok {
			resp = minimalResponse(bytes.Count(body, []byte(`"request"`)))
			mu.Lock()
			responses[len(body)] = resp
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
		w.Write(resp)
	}))
	defer srv.Close()
	ctx := context.Background()
	// Warm the canned responses.
	if _, err := loader.Load(ctx, loader.Config{Base: srv.URL + "/fhir/default"}, files); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	total := 0
	for i := 0; i < b.N; i++ {
		s, err := loader.Load(ctx, loader.Config{Base: srv.URL + "/fhir/default"}, files)
		if err != nil || s.Failed > 0 {
			b.Fatalf("%v %v %v", err, s, s.Errors)
		}
		total += s.Resources
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/resource")
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
	b.ReportMetric(0, "ns/op")
}
