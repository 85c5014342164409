package sqlite_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/store"
	"github.com/kilnhealth/kiln/internal/store/sqlite"
)

// createShape is a typical sealed Synthea Patient create: ~1.5 KB body and
// ~20 blind tokens of 16 bytes.
var createShape = sqlite.RawShape{BodySize: 1500, Tokens: 20, TokenSize: 16}

// runParallel runs op b.N times over n goroutines.
func runParallel(b *testing.B, n int, op func(i int64) error) {
	var next atomic.Int64
	b.SetParallelism((n + 1) / 2) // RunParallel starts parallelism*GOMAXPROCS goroutines
	if n == 1 {
		for i := 0; i < b.N; i++ {
			if err := op(int64(i)); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(next.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func createWrite(i int64, body []byte) store.Write {
	// Uniformly spread tokens, as HMAC outputs are (clustered test tokens
	// would share index pages and flatter the store).
	tokens := make([][]byte, createShape.Tokens)
	for k := range tokens {
		t := make([]byte, createShape.TokenSize)
		x := uint64(i)<<8 | uint64(k) + 1<<62
		for j := 0; j+8 <= len(t); j += 8 {
			x = splitmix64(x)
			binary.LittleEndian.PutUint64(t[j:], x)
		}
		tokens[k] = t
	}
	return store.Write{
		Version: store.Version{
			Type: "Patient", ID: fmt.Sprintf("p%012d", i), VersionID: 1,
			LastUpdated: time.Unix(1_800_000_000, 0).UTC(), Body: body,
		},
		IfVersion: 0,
		Tokens:    tokens,
	}
}

// BenchmarkCommit measures durable creates through the store (group commit,
// preconditions, current pointer, token rows) with 1 and 16 goroutines.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s := openAt(b, filepath.Join(b.TempDir(), "kiln.db"), sqlite.Options{})
			defer s.Close()
			if _, err := s.CreateAccount(ctx, store.Account{Name: "bench", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, createShape.BodySize)
			rand.Read(body)
			b.SetBytes(int64(createShape.BodySize + createShape.Tokens*createShape.TokenSize))
			b.ResetTimer()
			start := time.Now()
			runParallel(b, n, func(i int64) error {
				_, err := s.Commit(ctx, "bench", []store.Write{createWrite(i, body)})
				return err
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
			st := s.Stats()
			b.ReportMetric(float64(st.Requests)/float64(st.Groups), "commits/group")
			b.ReportMetric(float64(st.TokenMerges), "merges")
			if st.TokenMerges > 0 {
				b.ReportMetric(float64(st.MergeTime.Milliseconds())/float64(st.TokenMerges), "ms/merge")
			}
		})
	}
}

// BenchmarkRawInsert is the raw-insert ceiling for the same rows (body row
// plus 20 token rows per create), all durable:
//   - tx=1: one transaction (one fsync) per create, as plain clients get;
//     16 goroutines queue on SQLite's one writer.
//   - tx=16: 16 creates per transaction, the best a group of 16 clients can
//     do: the strict ceiling for BenchmarkCommit/goroutines=16.
//   - index=true: the token rows keyed by token, as a searchable store needs
//     if it writes them at commit time (random pages).
func BenchmarkRawInsert(b *testing.B) {
	for _, c := range []struct {
		goroutines, perTx int
		index             bool
	}{{1, 1, false}, {16, 1, false}, {1, 16, false}, {1, 16, true}} {
		b.Run(fmt.Sprintf("goroutines=%d/tx=%d/index=%v", c.goroutines, c.perTx, c.index), func(b *testing.B) {
			ctx := context.Background()
			shape := createShape
			shape.TokenIndex = c.index
			r, err := sqlite.OpenRawInserter(ctx, filepath.Join(b.TempDir(), "raw.db"), shape, sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.SetBytes(int64(createShape.BodySize + createShape.Tokens*createShape.TokenSize))
			b.ResetTimer()
			start := time.Now()
			if c.perTx > 1 {
				for done := 0; done < b.N; done += c.perTx {
					if err := r.Insert(ctx, min(c.perTx, b.N-done)); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				runParallel(b, c.goroutines, func(int64) error { return r.Insert(ctx, 1) })
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
		})
	}
}

// BenchmarkCurrent measures reads by id of resources of the create shape.
func BenchmarkCurrent(b *testing.B) {
	ctx := context.Background()
	s := openAt(b, filepath.Join(b.TempDir(), "kiln.db"), sqlite.Options{Synchronous: "NORMAL"})
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "bench", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, createShape.BodySize)
	rand.Read(body)
	const n = 5000
	ws := make([]store.Write, 0, 500)
	for i := range int64(n) {
		ws = append(ws, createWrite(i, body))
		if len(ws) == cap(ws) {
			if _, err := s.Commit(ctx, "bench", ws); err != nil {
				b.Fatal(err)
			}
			ws = ws[:0]
		}
	}
	// Let the idle token merge run first, so it does not compete with the
	// reads being measured.
	for deadline := time.Now().Add(30 * time.Second); s.Stats().TokenMerges == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			b.ResetTimer()
			start := time.Now()
			runParallel(b, g, func(i int64) error {
				v, err := s.Current(ctx, "bench", store.Ref{Type: "Patient", ID: fmt.Sprintf("p%012d", (i*7919)%n)})
				if err == nil && len(v.Body) != len(body) {
					err = fmt.Errorf("body of %d bytes", len(v.Body))
				}
				return err
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
		})
	}
}

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// BenchmarkLookup measures a one-token candidate lookup matching 1% of
// 20,000 resources, with all their tokens flushed into posting segments
// and with 4,000 of them still pending (about what a default store holds).
// BenchmarkLookup looks up one token among 20,000 resources, all in
// segments or the last 4,000 pending, held by 1 in 100 resources (sparse
// stamps) or by every other one (dense stamps).
func BenchmarkLookup(b *testing.B) {
	for _, pending := range []int{0, 4000} {
		for _, every := range []int{100, 2} {
			b.Run(fmt.Sprintf("pending=%d/matches=%d", pending, 20000/every), func(b *testing.B) {
				benchLookup(b, pending, every)
			})
		}
	}
}

func benchLookup(b *testing.B, pending, every int) {
	ctx := context.Background()
	s := openAt(b, filepath.Join(b.TempDir(), "kiln.db"), sqlite.Options{Synchronous: "NORMAL", MergeEvery: 1 << 30, MergeIdle: -1})
	defer s.Close()
	if _, err := s.CreateAccount(ctx, store.Account{Name: "bench", CreatedAt: time.Now(), Data: []byte("x")}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, createShape.BodySize)
	const n = 20000
	load := func(from, to int64) {
		var ws []store.Write
		for i := from; i < to; i++ {
			w := createWrite(i, body)
			w.Tokens = append(w.Tokens, []byte(fmt.Sprintf("common-%09d", i%int64(every))))
			ws = append(ws, w)
			if len(ws) == 500 || i == to-1 {
				if _, err := s.Commit(ctx, "bench", ws); err != nil {
					b.Fatal(err)
				}
				ws = ws[:0]
			}
		}
	}
	load(0, n-int64(pending))
	if err := sqlite.FlushIndex(ctx, s); err != nil {
		b.Fatal(err)
	}
	load(n-int64(pending), n)
	m := store.Match{Types: []string{"Patient"}, Clauses: [][][]byte{{[]byte("common-000000001")}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		refs, err := s.Lookup(ctx, "bench", m)
		if err != nil || len(refs) != n/every {
			b.Fatalf("Lookup: %d refs, %v", len(refs), err)
		}
	}
}
