package search_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
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
