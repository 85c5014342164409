package bundle_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
	"github.com/kilnhealth/kiln/internal/store"
)

const syntheaDir = "../../../shared/data/synthea/bundles"

// syntheaFiles lists the Synthea transaction bundles, skipping t when the
// shared data is absent.
func syntheaFiles(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(syntheaDir, "*.json.gz"))
	if len(files) == 0 {
		t.Skipf("no Synthea bundles in %s (shared data absent)", syntheaDir)
	}
	sort.Strings(files)
	return files
}

func readGz(t testing.TB, path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refsOf returns the sorted reference strings anywhere in v.
func refsOf(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && k == "reference" {
					out = append(out, s)
					continue
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(v)
	sort.Strings(out)
	return out
}

type wireBundle struct {
	Type  string `json:"type"`
	Entry []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
		Request  struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
		Response struct {
			Status   string `json:"status"`
			Location string `json:"location"`
		} `json:"response"`
	} `json:"entry"`
}

// TestSyntheaTransactions loads every Synthea bundle as a transaction over
// HTTP (4 concurrent clients), then checks against the input bundles that
// the per-type counts match and that every reference of every stored
// resource is the input's reference with each urn:uuid replaced by the id
// created for that fullUrl (and that each such id exists).
func TestSyntheaTransactions(t *testing.T) {
	files := syntheaFiles(t)
	if testing.Short() {
		files = files[:10]
	}
	inst := servertest.New(t, server.Options{SQLiteSync: "NORMAL"})
	type want struct {
		typ, id string
		refs    []string // expected, after rewriting
	}
	var (
		mu     sync.Mutex
		wants  []want
		counts = map[string]int{}
		total  int
	)
	start := time.Now()
	jobs := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				body := readGz(t, f)
				var in wireBundle
				if err := json.Unmarshal(body, &in); err != nil {
					t.Error(err)
					continue
				}
				r, err := inst.Try("POST", "/fhir/default", body, "Prefer", "return=minimal")
				if err != nil {
					t.Error(err)
					continue
				}
				if r.Status != 200 {
					t.Errorf("%s: %s", f, r)
					continue
				}
				var out wireBundle
				if err := json.Unmarshal(r.Body, &out); err != nil || out.Type != "transaction-response" || len(out.Entry) != len(in.Entry) {
					t.Errorf("%s: bad response (%v): %.300s", f, err, r.Body)
					continue
				}
				ids := map[string]string{}
				for i, e := range out.Entry {
					if e.Response.Status != "201 Created" {
						t.Errorf("%s entry %d: status %q", f, i, e.Response.Status)
					}
					parts := strings.Split(e.Response.Location, "/")
					if len(parts) != 4 || parts[0] != in.Entry[i].Request.URL || parts[2] != "_history" || parts[3] != "1" {
						t.Errorf("%s entry %d: location %q", f, i, e.Response.Location)
						continue
					}
					ids[in.Entry[i].FullURL] = parts[0] + "/" + parts[1]
				}
				mu.Lock()
				for i, e := range in.Entry {
					typ, id, _ := strings.Cut(ids[e.FullURL], "/")
					refs := refsOf(e.Resource)
					for j, ref := range refs {
						if strings.HasPrefix(ref, "urn:uuid:") {
							if ids[ref] == "" {
								t.Errorf("%s entry %d: reference %s names no entry", f, i, ref)
							}
							refs[j] = ids[ref]
						}
					}
					sort.Strings(refs)
					wants = append(wants, want{typ, id, refs})
					counts[typ]++
					total++
				}
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start)
	t.Logf("loaded %d bundles, %d resources in %v: %.0f resources/s", len(files), total, el, float64(total)/el.Seconds())
	if t.Failed() {
		t.FailNow()
	}

	// Counts per type, from the store.
	ctx := context.Background()
	srv := inst.Server
	got := map[string]int{}
	stored := map[string]store.Version{}
	var after store.Ref
	for {
		vs, err := srv.Store.Scan(ctx, "default", "", after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			got[v.Type]++
			stored[v.Type+"/"+v.ID] = v
		}
		if len(vs) < 5000 {
			break
		}
		after = store.Ref{Type: vs[len(vs)-1].Type, ID: vs[len(vs)-1].ID}
	}
	for typ, n := range counts {
		if got[typ] != n {
			t.Errorf("%s: %d stored, bundles hold %d", typ, got[typ], n)
		}
	}
	if len(stored) != total {
		t.Errorf("%d resources stored, bundles hold %d", len(stored), total)
	}
	keys, err := srv.Resources.Keys(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wants {
		v, ok := stored[w.typ+"/"+w.id]
		if !ok {
			t.Fatalf("%s/%s was not stored", w.typ, w.id)
		}
		r, err := srv.Resources.Open(keys, "default", v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		refs := refsOf(m)
		if strings.Join(refs, " ") != strings.Join(w.refs, " ") {
			t.Fatalf("%s/%s references %v, want %v", w.typ, w.id, refs, w.refs)
		}
		for _, ref := range refs {
			if strings.HasPrefix(ref, "#") {
				continue
			}
			if _, ok := stored[ref]; !ok {
				t.Fatalf("%s/%s: reference %s does not resolve", w.typ, w.id, ref)
			}
		}
	}
}
