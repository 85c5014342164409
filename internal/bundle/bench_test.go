package bundle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kilnhealth/kiln/internal/bundle"
	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/server"
)

// syntheaBodies reads the Synthea bundles once per benchmark.
//
// KILN_BENCH_BUNDLES=n limits the benchmarks to the first n bundles.
func syntheaBodies(b *testing.B) ([][]byte, []int) {
	files := syntheaFiles(b)
	if n, err := strconv.Atoi(os.Getenv("KILN_BENCH_BUNDLES")); err == nil && n > 0 && n < len(files) {
		files = files[:n]
	}
	bodies := make([][]byte, len(files))
	counts := make([]int, len(files))
	for i, f := range files {
		bodies[i] = readGz(b, f)
		var x struct {
			Entry []json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(bodies[i], &x); err != nil {
			b.Fatal(err)
		}
		counts[i] = len(x.Entry)
	}
	return bodies, counts
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchServer(b *testing.B) *server.Server {
	srv, err := server.New(context.Background(), server.Options{
		DataDir: b.TempDir(), VaultAddr: "off", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSyntheaIngest posts Synthea transaction bundles over loopback
// HTTP to an in-process server on the embedded store (SQLite,
// synchronous=FULL) with encryption and indexing, from 1, 4 and 16
// concurrent loaders. One op is one bundle (b.N bundles, cycling over the
// 143). Metrics: resources/s (wall) and CPU-µs per resource (the process's
// user+system time, client included: a figure that does not depend on how
// busy the machine is).
//
//	go test ./internal/bundle -run '^$' -bench SyntheaIngest -benchtime 143x
func BenchmarkSyntheaIngest(b *testing.B) {
	bodies, counts := syntheaBodies(b)
	for _, loaders := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("loaders=%d", loaders), func(b *testing.B) {
			srv := benchServer(b)
			hs := httptest.NewServer(srv.Handler)
			defer hs.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var next, resources atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			for w := 0; w < loaders; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= b.N {
							return
						}
						k := i % len(bodies)
						req, _ := http.NewRequest(http.MethodPost, hs.URL+"/fhir/default", bytes.NewReader(bodies[k]))
						req.Header.Set("Content-Type", "application/fhir+json")
						req.Header.Set("Prefer", "return=minimal")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						out, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("bundle %d: %d %.300s", k, resp.StatusCode, out)
							return
						}
						resources.Add(int64(counts[k]))
					}
				}()
			}
			wg.Wait()
			el, cpu := time.Since(t0), cpuTime()-cpu0
			b.StopTimer()
			n := resources.Load()
			b.ReportMetric(float64(n)/el.Seconds(), "resources/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/resource")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// prepared returns every Synthea resource prepared for commit (parsed,
// validated, indexed, sealed), grouped by bundle, on srv's default account.
func preparedBundles(b *testing.B, srv *server.Server, bodies [][]byte) [][]resources.Prepared {
	ctx := context.Background()
	keys, err := srv.Resources.Keys(ctx, "default")
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]resources.Prepared, len(bodies))
	for i, body := range bodies {
		var x struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		json.Unmarshal(body, &x)
		for _, e := range x.Entry {
			res, err := srv.Resources.Parse(e.Resource, "")
			if err != nil {
				b.Fatal(err)
			}
			p, err := srv.Resources.PrepareCreate(ctx, keys, res["resourceType"].(string), "", res)
			if err != nil {
				b.Fatal(err)
			}
			out[i] = append(out[i], p)
		}
	}
	return out
}

// BenchmarkSyntheaStages splits the CPU cost of ingest per resource, below
// HTTP and single-threaded: parse+validate, prepare (stamp, blind index
// tokens, seal), and the store commit of a whole bundle.
//
//	go test ./internal/bundle -run '^$' -bench SyntheaStages -benchtime 1x
func BenchmarkSyntheaStages(b *testing.B) {
	bodies, counts := syntheaBodies(b)
	total := 0
	for _, c := range counts {
		total += c
	}
	srv := benchServer(b)
	ctx := context.Background()
	keys, _ := srv.Resources.Keys(ctx, "default")
	var all []json.RawMessage
	for _, body := range bodies {
		var x struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		json.Unmarshal(body, &x)
		for _, e := range x.Entry {
			all = append(all, e.Resource)
		}
	}
	b.Run("parse+validate", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, r := range all {
				if _, err := srv.Resources.Parse(r, ""); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(all)), "µs/resource")
	})
	parsed := make([]map[string]any, len(all))
	for i, r := range all {
		parsed[i], _ = srv.Resources.Parse(r, "")
	}
	b.Run("prepare(index+seal)", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, res := range parsed {
				if _, err := srv.Resources.PrepareCreate(ctx, keys, res["resourceType"].(string), "", res); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(all)), "µs/resource")
	})
	b.Run("commit", func(b *testing.B) {
		tokens := 0
		var groups [][]resources.Prepared
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			groups = preparedBundles(b, srv, bodies)
			b.StartTimer()
			for _, g := range groups {
				if _, err := srv.Resources.Commit(ctx, "default", g); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, g := range groups {
			for _, p := range g {
				tokens += len(p.Write.Tokens)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*total), "µs/resource")
		b.ReportMetric(float64(tokens)/float64(total), "tokens/resource")
	})
}

// BenchmarkRawBundleInsert is the raw-SQLite baseline for Synthea ingest:
// the same number of version rows with the same (sealed) sizes and the
// same number of 16-byte token rows per resource, one SQL transaction per
// bundle, on a WAL database with synchronous=FULL, and no encryption,
// validation or HTTP. "rows" is versions only; "rows+token-blob" adds each
// resource's tokens as one appended blob row (what Kiln's commit writes:
// its pending row); "rows+token-rows" adds one row per token in a B-tree
// keyed by token (the layout before posting segments). Compare
// resources/s with BenchmarkSyntheaIngest.
//
//	go test ./internal/bundle -run '^$' -bench RawBundleInsert -benchtime 1x
func BenchmarkRawBundleInsert(b *testing.B) {
	bodies, _ := syntheaBodies(b)
	srv := benchServer(b)
	groups := preparedBundles(b, srv, bodies)
	for _, c := range []struct {
		name       string
		withTokens bool // one row per token in a B-tree keyed by token
		withBlob   bool // the tokens as one blob row per resource, appended
		pragma     string
	}{
		{"rows", false, false, ""},
		{"rows+token-blob", false, true, ""},
		{"rows+token-rows", true, false, ""},
		{"rows+token-rows/cache=256MiB", true, false, "&_pragma=cache_size(-262144)"},
	} {
		withTokens, withBlob := c.withTokens, c.withBlob
		b.Run(c.name, func(b *testing.B) {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "raw.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"+c.pragma)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.Exec(`CREATE TABLE v (seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT, id TEXT, version INTEGER, updated INTEGER, body BLOB, UNIQUE (type, id, version))`); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Exec(`CREATE TABLE t (token BLOB, type TEXT, id TEXT, PRIMARY KEY (token, type, id)) WITHOUT ROWID`); err != nil {
				b.Fatal(err)
			}
			if _, err := db.Exec(`CREATE TABLE tb (seq INTEGER PRIMARY KEY, tokens BLOB)`); err != nil {
				b.Fatal(err)
			}
			n := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for gi, g := range groups {
					tx, err := db.Begin()
					if err != nil {
						b.Fatal(err)
					}
					insV, _ := tx.Prepare(`INSERT INTO v (type, id, version, updated, body) VALUES (?, ?, 1, ?, ?)`)
					insT, _ := tx.Prepare(`INSERT INTO t VALUES (?, ?, ?)`)
					insB, _ := tx.Prepare(`INSERT INTO tb VALUES (last_insert_rowid(), ?)`)
					for pi, p := range g {
						body := make([]byte, len(p.Write.Version.Body))
						rand.Read(body)
						id := fmt.Sprintf("%d-%d-%d", i, gi, pi)
						if _, err := insV.Exec(p.Write.Version.Type, id, time.Now().UnixMicro(), body); err != nil {
							b.Fatal(err)
						}
						if withBlob {
							blob := make([]byte, 17*len(p.Write.Tokens))
							rand.Read(blob)
							if _, err := insB.Exec(blob); err != nil {
								b.Fatal(err)
							}
						}
						if withTokens {
							tok := make([]byte, 16)
							for range p.Write.Tokens {
								rand.Read(tok)
								if _, err := insT.Exec(tok, p.Write.Version.Type, id); err != nil {
									b.Fatal(err)
								}
							}
						}
						n++
					}
					insV.Close()
					insT.Close()
					insB.Close()
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "resources/s")
		})
	}
}

// BenchmarkSyntheaFrontEnd measures, single-threaded and below HTTP, the
// CPU per resource of everything the transaction path does outside
// indexing, sealing and the store (see Handler.FrontEnd): Bundle decoding,
// entry classification, parse and validation, reference rewriting, body
// rendering and the return=minimal response. cpu-µs/resource is the
// process's CPU time (garbage collection included) per resource.
//
//	go test ./internal/bundle -run '^$' -bench SyntheaFrontEnd -benchtime 2x
func BenchmarkSyntheaFrontEnd(b *testing.B) {
	bodies, counts := syntheaBodies(b)
	total := 0
	for _, c := range counts {
		total += c
	}
	srv := benchServer(b)
	h, err := bundle.New(bundle.Config{Resources: srv.Resources, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		for _, body := range bodies {
			if _, err := h.FrontEnd(ctx, "default", body); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*total), "µs/resource")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*total), "cpu-µs/resource")
	b.ReportMetric(0, "ns/op")
}
