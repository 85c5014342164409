package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/postgres"
)

// benchWrite is a new resource of about the size Kiln writes: a 1 KiB
// sealed body, 12 tokens of 16 bytes and one sort value.
func benchWrite(id string, vid, ifv int64) store.Write {
	body := make([]byte, 1024)
	for i := range body {
		body[i] = byte(i * 7)
	}
	w := store.Write{
		Version:   store.Version{Type: "Observation", ID: id, VersionID: vid, LastUpdated: time.Now(), Body: body},
		IfVersion: ifv,
		Sorts:     []store.SortValue{{Slot: []byte("sort-slot-000001"), Value: body[:48]}},
	}
	for j := range 12 {
		w.Tokens = append(w.Tokens, fmt.Appendf(nil, "%-12s%04d", id, j)[:16])
	}
	return w
}

// BenchmarkCommit measures single-write commits of new resources with 1
// and 16 committing goroutines. seq=counter is the engine as shipped
// (commit-order Seq); seq=sequence swaps in a plain sequence, which is
// what the ordering costs.
func BenchmarkCommit(b *testing.B) {
	for _, seq := range []string{"counter", "sequence"} {
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("seq=%s/goroutines=%d", seq, g), func(b *testing.B) {
				u := freshSchema(b)
				s, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: int32(g)})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if seq == "sequence" {
					admin(b, u, "CREATE SEQUENCE kiln_bench_seq")
					postgres.UsePlainSequence(s, "kiln_bench_seq")
				}
				mustAccount(b, s, "bench")
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				runGoroutines(b, g, func() {
					id := fmt.Sprintf("o%d", next.Add(1))
					if _, err := s.Commit(context.Background(), "bench", []store.Write{benchWrite(id, 1, 0)}); err != nil {
						b.Error(err)
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
			})
		}
	}
}

// BenchmarkCommitBundle measures one commit of 100 new resources (the bulk
// path: a transaction bundle or a load batch).
func BenchmarkCommitBundle(b *testing.B) {
	s := open(b, freshSchema(b))
	mustAccount(b, s, "bench")
	ws := make([]store.Write, 100)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for j := range ws {
			ws[j] = benchWrite(fmt.Sprintf("b%d-%d", i, j), 1, 0)
		}
		if _, err := s.Commit(context.Background(), "bench", ws); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(ws))/time.Since(start).Seconds(), "resources/s")
}

// BenchmarkCurrent measures Current on 1,000 resources, from 1 and 16
// goroutines.
func BenchmarkCurrent(b *testing.B) {
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			u := freshSchema(b)
			s, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: int32(g)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			mustAccount(b, s, "bench")
			const n = 1000
			for i := 0; i < n; i += 100 {
				var ws []store.Write
				for j := i; j < i+100; j++ {
					ws = append(ws, benchWrite(fmt.Sprintf("c%d", j), 1, 0))
				}
				if _, err := s.Commit(context.Background(), "bench", ws); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			runGoroutines(b, g, func() {
				ref := store.Ref{Type: "Observation", ID: fmt.Sprintf("c%d", rand.IntN(n))}
				if _, err := s.Current(context.Background(), "bench", ref); err != nil {
					b.Error(err)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
		})
	}
}

// runGoroutines calls fn b.N times spread over g goroutines.
func runGoroutines(b *testing.B, g int, fn func()) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				fn()
			}
		})
	}
	wg.Wait()
}

// BenchmarkAccountNotify measures how long an account change committed on
// one handle takes to reach a subscriber on another (UpdateAccount through
// receipt), the path that carries key-status changes between nodes.
func BenchmarkAccountNotify(b *testing.B) {
	u := freshSchema(b)
	h1, h2 := open(b, u), open(b, u)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h2.SubscribeAccounts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	a := mustAccount(b, h1, "notify")
	<-ch // the creation
	b.ResetTimer()
	for range b.N {
		a, err = h1.UpdateAccount(ctx, "notify", []byte("ring"), a.Rev)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			b.Fatal("notification lost")
		}
	}
}
