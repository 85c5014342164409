package search_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
)

// loadSynthea writes the resources of the given bundles straight through
// the resource service (validation skipped, batches of 256 per commit) and
// returns them.
func loadSynthea(tb testing.TB, e *env, files []string) []map[string]any {
	tb.Helper()
	ctx := context.Background()
	srv := e.inst.Server
	keys, err := srv.Resources.Keys(ctx, "default")
	if err != nil {
		tb.Fatal(err)
	}
	var all []map[string]any
	var batch []store.Write
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := srv.Store.Commit(ctx, "default", batch); err != nil {
			tb.Fatal(err)
		}
		batch = batch[:0]
	}
	seen := map[string]bool{} // Organizations and Practitioners recur across bundles
	for _, f := range files {
		for _, r := range syntheaResources(tb, f) {
			typ, id := r["resourceType"].(string), r["id"].(string)
			if seen[typ+"/"+id] {
				continue
			}
			seen[typ+"/"+id] = true
			p, err := srv.Resources.PrepareCreate(ctx, keys, typ, id, r)
			if err != nil {
				tb.Fatal(err)
			}
			batch = append(batch, p.Write)
			all = append(all, r)
			if len(batch) == 256 {
				flush()
			}
		}
	}
	flush()
	return all
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func first(res []map[string]any, typ string, ok func(map[string]any) bool) map[string]any {
	for _, r := range res {
		if r["resourceType"] == typ && ok(r) {
			return r
		}
	}
	return nil
}

func get(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			l, _ := m.([]any)
			if k >= len(l) {
				return nil
			}
			m = l[k]
		}
	}
	return m
}

// BenchmarkSynthea loads the Synthea bundles (all 143; KILN_SEARCH_BENCH_BUNDLES
// limits the count) and measures the searches of issue 5 through the FHIR
// handler in process (no TCP). It reports p50/p99 in ms per query, the
// index size per resource and the token-path speed-up over brute-force
// decrypt-and-scan for the same criteria.
func BenchmarkSynthea(b *testing.B) {
	files := syntheaFiles(b)
	if n, err := strconv.Atoi(os.Getenv("KILN_SEARCH_BENCH_BUNDLES")); err == nil && n > 0 && n < len(files) {
		files = files[:n]
	}
	e := newEnv(b)
	start := time.Now()
	res := loadSynthea(b, e, files)
	loadTime := time.Since(start)
	srv := e.inst.Server
	size := dirSize(e.inst.DataDir)
	b.Logf("loaded %d resources from %d bundles in %v; data dir %d bytes (%.0f bytes/resource)", len(res), len(files), loadTime, size, float64(size)/float64(len(res)))

	x, tokenS, bruteS := searchers(b, e)
	keys, _ := srv.Resources.Keys(context.Background(), "default")
	var toks, sorts int
	for _, r := range res {
		tk, st, err := x.Index(keys, r["resourceType"].(string), r["id"].(string), r)
		if err != nil {
			b.Fatal(err)
		}
		toks += len(tk)
		sorts += len(st)
	}
	b.Logf("index: %.1f token rows and %.1f sort rows per resource (token 16 bytes + key columns)", float64(toks)/float64(len(res)), float64(sorts)/float64(len(res)))

	pat := first(res, "Patient", func(r map[string]any) bool { return get(r, "identifier", 1, "value") != nil })
	if pat == nil {
		b.Fatal("no patient with identifiers")
	}
	pid := pat["id"].(string)
	ident := fmt.Sprint(get(pat, "identifier", 1, "system")) + "|" + fmt.Sprint(get(pat, "identifier", 1, "value"))
	family := fmt.Sprint(get(pat, "name", 0, "family"))
	obs := first(res, "Observation", func(r map[string]any) bool {
		return get(r, "subject", "reference") == "Patient/"+pid && get(r, "code", "coding", 0, "code") != nil
	})
	code := fmt.Sprint(get(obs, "code", "coding", 0, "code"))
	queries := []struct{ name, path string }{
		{"identifier", "Patient?identifier=" + url.QueryEscape(ident)},
		{"name-prefix", "Patient?name=" + url.QueryEscape(family[:min(4, len(family))])},
		{"subject+code", "Observation?subject=Patient/" + pid + "&code=" + url.QueryEscape(code)},
		{"date-sort", "Observation?date=ge2019-06-01&_sort=-date&_count=50"},
		{"chain", "Condition?patient.name=" + url.QueryEscape(family)},
		{"has", "Patient?_has:Observation:subject:code=" + url.QueryEscape("72166-2")},
		{"include", "Encounter?subject=Patient/" + pid + "&_include=Encounter:practitioner&_count=50"},
	}
	for _, qq := range queries {
		b.Run(qq.name, func(b *testing.B) {
			target := base + "/" + qq.path
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				rec := httptest.NewRecorder()
				srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
				lat = append(lat, time.Since(t0))
				if rec.Code != 200 {
					b.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
				}
				if i == 0 && !strings.Contains(rec.Body.String(), `"total"`) {
					b.Fatalf("%s: no total", target)
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
	// Token path vs brute force for the same criteria (no result control).
	ctx := context.Background()
	for _, qq := range queries[:3] {
		typ, raw, _ := strings.Cut(qq.path, "?")
		vals, _ := url.ParseQuery(raw)
		t0 := time.Now()
		got, err := tokenS.Resolve(ctx, "default", typ, vals)
		tTok := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		want, err := bruteS.Resolve(ctx, "default", typ, vals)
		tBrute := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(want) {
			b.Errorf("%s: token %d results, brute %d", qq.name, len(got), len(want))
		}
		b.Logf("%-14s token %8v  brute %10v  ratio %.0fx  (%d results)", qq.name, tTok, tBrute, float64(tBrute)/float64(tTok), len(got))
	}
}
