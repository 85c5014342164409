package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/store"
)

func loadBody(b *testing.B, name string) []byte {
	body, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func startServer(b *testing.B) *server.Server {
	b.Helper()
	srv, err := server.New(context.Background(), server.Options{
		DataDir: b.TempDir(), VaultAddr: "off", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	return srv
}

// client returns an HTTP client with enough idle connections for keep-alive
// under parallel load.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
}

func do(b *testing.B, c *http.Client, method, url string, body []byte, want int) []byte {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return nil
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Errorf("%s %s: %d %s", method, url, resp.StatusCode, out)
	}
	return out
}

var types = []string{"Patient", "Observation"}

// BenchmarkCreate measures a durable create, below HTTP (the resource
// service) and through HTTP over loopback with keep-alive; the parallel
// variants run 16 concurrent clients.
func BenchmarkCreate(b *testing.B) {
	for _, typ := range types {
		body := loadBody(b, strings.ToLower(typ))
		b.Run(typ+"/service", func(b *testing.B) {
			srv := startServer(b)
			ctx := context.Background()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := srv.Resources.Create(ctx, "default", typ, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/service-16clients", func(b *testing.B) {
			srv := startServer(b)
			ctx := context.Background()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(8) // 8 x GOMAXPROCS(2) = 16 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := srv.Resources.Create(ctx, "default", typ, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(typ+"/http-16clients", func(b *testing.B) {
			srv := startServer(b)
			ts := httptest.NewServer(srv.Handler)
			defer ts.Close()
			c := client()
			url := ts.URL + "/fhir/default/" + typ
			b.SetBytes(int64(len(body)))
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do(b, c, http.MethodPost, url, body, 201)
				}
			})
		})
	}
}

// seed creates n resources and returns their ids.
func seed(b *testing.B, srv *server.Server, typ string, body []byte, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		r, err := srv.Resources.Create(context.Background(), "default", typ, body)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	return ids
}

// BenchmarkRead measures read by id (open and verify the sealed body).
func BenchmarkRead(b *testing.B) {
	for _, typ := range types {
		body := loadBody(b, strings.ToLower(typ))
		b.Run(typ+"/service", func(b *testing.B) {
			srv := startServer(b)
			ids := seed(b, srv, typ, body, 1000)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := srv.Resources.Read(ctx, "default", typ, ids[i%len(ids)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/http-16clients", func(b *testing.B) {
			srv := startServer(b)
			ids := seed(b, srv, typ, body, 1000)
			ts := httptest.NewServer(srv.Handler)
			defer ts.Close()
			c := client()
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					do(b, c, http.MethodGet, ts.URL+"/fhir/default/"+typ+"/"+ids[int(i)%len(ids)], nil, 200)
				}
			})
		})
	}
}

// BenchmarkUpdate measures an update that creates a new version.
func BenchmarkUpdate(b *testing.B) {
	for _, typ := range types {
		body := loadBody(b, strings.ToLower(typ))
		b.Run(typ+"/service", func(b *testing.B) {
			srv := startServer(b)
			ids := seed(b, srv, typ, body, 100)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := ids[i%len(ids)]
				nb := withIDAndMarker(body, id, i)
				if _, _, err := srv.Resources.Update(ctx, "default", typ, id, nb, -1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/http-16clients", func(b *testing.B) {
			srv := startServer(b)
			ids := seed(b, srv, typ, body, 1000)
			ts := httptest.NewServer(srv.Handler)
			defer ts.Close()
			c := client()
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1))
					id := ids[i%len(ids)]
					do(b, c, http.MethodPut, ts.URL+"/fhir/default/"+typ+"/"+id, withIDAndMarker(body, id, i), 200)
				}
			})
		})
	}
}

// withIDAndMarker sets the id and a changing element so every update makes
// a new version.
func withIDAndMarker(body []byte, id string, i int) []byte {
	s := string(body)
	s = strings.Replace(s, `{"resourceType":`, fmt.Sprintf(`{"id":%q,"language":"en-%d","resourceType":`, id, i%1000+1), 1)
	return []byte(strings.Replace(s, `"language":"en-`, `"language":"x`, 1))
}

// BenchmarkRawInsert is the ceiling Kiln's create path is compared with: a
// plain prepared INSERT of rows with the same sizes as the stored version
// rows, in the same durability mode (WAL, synchronous=FULL), one
// transaction per row, with 1 and 16 concurrent writers (SQLite serialises
// them).
func BenchmarkRawInsert(b *testing.B) {
	for _, typ := range types {
		body := loadBody(b, strings.ToLower(typ))
		size := storedSize(b, typ, body)
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/%dclients", typ, par), func(b *testing.B) {
				db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "raw.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				db.SetMaxOpenConns(1)
				if _, err := db.Exec(`CREATE TABLE v (id TEXT, version INTEGER, updated INTEGER, body BLOB, PRIMARY KEY (id, version))`); err != nil {
					b.Fatal(err)
				}
				blob := make([]byte, size)
				_, _ = rand.Read(blob)
				var n atomic.Int64
				b.SetBytes(int64(len(body)))
				b.SetParallelism(max(1, par/2))
				b.ResetTimer()
				insert := func() {
					i := n.Add(1)
					if _, err := db.Exec(`INSERT INTO v VALUES (?, 1, ?, ?)`, fmt.Sprintf("id-%d", i), i, blob); err != nil {
						b.Error(err)
					}
				}
				if par == 1 {
					for i := 0; i < b.N; i++ {
						insert()
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						insert()
					}
				})
			})
		}
	}
}

// storedSize is the size of the sealed version row Kiln stores for body.
func storedSize(b *testing.B, typ string, body []byte) int {
	srv := startServer(b)
	r, err := srv.Resources.Create(context.Background(), "default", typ, body)
	if err != nil {
		b.Fatal(err)
	}
	v, err := srv.Store.Current(context.Background(), "default", store.Ref{Type: typ, ID: r.ID})
	if err != nil {
		b.Fatal(err)
	}
	return len(v.Body)
}
