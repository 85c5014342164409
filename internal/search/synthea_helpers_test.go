package search_test

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/secret"
)

// syntheaDir is where the shared Synthea bundles live.
const syntheaDir = "../../../shared/data/synthea/bundles"

// syntheaFiles lists the bundles or skips the test.
func syntheaFiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(syntheaDir, "*.json.gz"))
	if len(files) == 0 {
		t.Skipf("Synthea bundles not found in %s; skipping", syntheaDir)
	}
	sort.Strings(files)
	return files
}

// syntheaResources reads a bundle and returns its resources with
// urn:uuid references rewritten to Type/id and ids set from the fullUrl.
func syntheaResources(t testing.TB, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{} // uuid -> type
	for _, e := range b.Entry {
		var h struct {
			ResourceType string `json:"resourceType"`
		}
		_ = json.Unmarshal(e.Resource, &h)
		types[strings.TrimPrefix(e.FullURL, "urn:uuid:")] = h.ResourceType
	}
	var out []map[string]any
	for _, e := range b.Entry {
		body := string(e.Resource)
		for uuid, typ := range types {
			if strings.Contains(body, "urn:uuid:"+uuid) {
				body = strings.ReplaceAll(body, "urn:uuid:"+uuid, typ+"/"+uuid)
			}
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		m["id"] = strings.TrimPrefix(e.FullURL, "urn:uuid:")
		out = append(out, m)
	}
	return out
}

func testKeys(t testing.TB) *seal.AccountKeys {
	codec, err := seal.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.Derive("default", secret.New(bytes.Repeat([]byte{7}, seal.RootKeySize)), seal.Generations{Current: 1, Min: 1}, codec, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func syntheaGlob() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(syntheaDir, "*.json.gz"))
	sort.Strings(files)
	return files, err
}

func decodeFixture(t testing.TB, s string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}
