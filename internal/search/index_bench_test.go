package search_test

import (
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
)

// BenchmarkIndex measures indexing (token and sort value extraction) of
// the resources of the first Synthea bundle; it reports tokens and sort
// values per resource.
func BenchmarkIndex(b *testing.B) {
	files := syntheaFiles(b)
	res := syntheaResources(b, files[0])
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
	for i := 0; i < b.N; i++ {
		r := res[i%len(res)]
		tk, st, err := x.Index(keys, r["resourceType"].(string), r["id"].(string), r)
		if err != nil {
			b.Fatal(err)
		}
		toks += len(tk)
		sorts += len(st)
	}
	b.ReportMetric(float64(toks)/float64(b.N), "tokens/res")
	b.ReportMetric(float64(sorts)/float64(b.N), "sorts/res")
}
