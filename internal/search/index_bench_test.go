package search_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/server"
)

// processCPU returns the user+system CPU time of the process so far (GC
// workers included), which other load on the machine inflates far less
// than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIndex measures indexing (token extraction, blind tokens and
// sealed sort values) of the resources of the first two Synthea bundles,
// one resource per op; it reports tokens and sort values per resource and
// the process CPU time per resource.
//
//	go test ./internal/search -run '^$' -bench 'BenchmarkIndex$' -benchtime 5000x -benchmem
func BenchmarkIndex(b *testing.B) {
	files := syntheaFiles(b)
	var res []map[string]any
	for _, f := range files[:min(2, len(files))] {
		res = append(res, syntheaResources(b, f)...)
	}
	reg, err := searchparam.Load()
	if err != nil {
		b.Fatal(err)
	}
	model, err := fhir.NewModel()
	if err != nil {
		b.Fatal(err)
	}
	x, err := search.NewIndexer(reg, model)
	if err != nil {
		b.Fatal(err)
	}
	keys := testKeys(b)
	var toks, sorts int
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		r := res[i%len(res)]
		tk, st, err := x.Index(keys, r["resourceType"].(string), r["id"].(string), r)
		if err != nil {
			b.Fatal(err)
		}
		toks += len(tk)
		sorts += len(st)
	}
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/res")
	b.ReportMetric(float64(toks)/float64(b.N), "tokens/res")
	b.ReportMetric(float64(sorts)/float64(b.N), "sorts/res")
}

// BenchmarkPrepare measures what the bundle benchmark's
// SyntheaStages/prepare(index+seal) stage measures, with CPU time as well
// as wall time: resources.PrepareCreate (stamp, Index, seal the body) of
// every resource of the Synthea bundles, parsed beforehand, single
// goroutine. KILN_BENCH_BUNDLES=n limits it to the first n bundles.
//
//	go test ./internal/search -run '^$' -bench 'BenchmarkPrepare$' -benchtime 1x
func BenchmarkPrepare(b *testing.B) {
	files := syntheaFiles(b)
	if n, err := strconv.Atoi(os.Getenv("KILN_BENCH_BUNDLES")); err == nil && n > 0 && n < len(files) {
		files = files[:n]
	}
	srv, err := server.New(context.Background(), server.Options{
		DataDir: b.TempDir(), VaultAddr: "off", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := context.Background()
	keys, err := srv.Resources.Keys(ctx, "default")
	if err != nil {
		b.Fatal(err)
	}
	var parsed []map[string]any
	for _, f := range files {
		zr, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		gz, err := gzip.NewReader(zr)
		if err != nil {
			b.Fatal(err)
		}
		var x struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		err = json.NewDecoder(gz).Decode(&x)
		zr.Close()
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range x.Entry {
			res, err := srv.Resources.Parse(e.Resource, "")
			if err != nil {
				b.Fatal(err)
			}
			parsed = append(parsed, res)
		}
	}
	runtime.GC()
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		for _, res := range parsed {
			if _, err := srv.Resources.PrepareCreate(ctx, keys, res["resourceType"].(string), "", res); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(b.N * len(parsed))
	b.ReportMetric(float64(b.Elapsed().Microseconds())/n, "µs/resource")
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/n, "cpu-µs/resource")
}
