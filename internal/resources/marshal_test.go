package resources

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

func TestMarshalOrder(t *testing.T) {
	b, _ := Marshal(map[string]any{"b": 1, "resourceType": "Patient", "a": "<div>", "meta": map[string]any{"versionId": "1"}, "id": "x"})
	if string(b) != `{"resourceType":"Patient","id":"x","meta":{"versionId":"1"},"a":"<div>","b":1}` {
		t.Fatal(string(b))
	}
	b, _ = Marshal(map[string]any{"resourceType": "Patient"})
	if string(b) != `{"resourceType":"Patient"}` {
		t.Fatal(string(b))
	}
}

// marshalCases are values whose rendering must match encoding/json byte
// for byte: escapes, invalid UTF-8, separators, numbers, nil containers,
// types fhir.Decode never produces.
var marshalCases = []map[string]any{
	{},
	{"resourceType": "Patient", "id": "a"},
	{"meta": map[string]any{}, "z": []any{}, "y": map[string]any(nil), "x": []any(nil)},
	{"resourceType": "Basic", "s": "q\"b\\s/\b\f\n\r\t\x00\x01\x1f\x7f <>& é \u2028\u2029 \U0001F600 \xff\xfe bad \xe2\x80", "é": 1, "\u2028k\n": true, "B": false, "a": nil},
	{"n": []any{json.Number("0"), json.Number("-1.50"), json.Number("1e+07"), json.Number("2E-3"), json.Number("")}},
	{"f": 1.5, "g": math.MaxInt64, "h": []string{"<x>"}, "i": map[string]string{"b": "1", "a": "2"}, "j": float32(0.1), "k": 1e21},
	{"deep": map[string]any{"b": []any{map[string]any{"z": 1, "a": []any{map[string]any{"q": "r", "p": nil}}}}, "a": "x"}},
}

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	for i, c := range marshalCases {
		checkMarshal(t, i, c)
	}
	if _, err := Marshal(map[string]any{"n": json.Number("01")}); err == nil {
		t.Error("invalid json.Number accepted")
	}
	if _, err := Marshal(map[string]any{"f": math.NaN()}); err == nil {
		t.Error("NaN accepted")
	}
}

// TestMarshalSynthea renders every resource of the shared Synthea bundles
// (when present) and compares with encoding/json.
func TestMarshalSynthea(t *testing.T) {
	files, _ := filepath.Glob("../../../shared/data/synthea/bundles/*.json.gz")
	if len(files) == 0 {
		t.Skip("no Synthea bundles in ../shared/data (shared data absent)")
	}
	for _, f := range files[:min(len(files), 8)] {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(fh)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		b, err := fhir.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range b["entry"].([]any) {
			checkMarshal(t, i, e.(map[string]any)["resource"].(map[string]any))
		}
	}
}

func checkMarshal(t *testing.T, i int, res map[string]any) {
	t.Helper()
	got, err := Marshal(res)
	want, werr := marshalStd(res)
	if (err == nil) != (werr == nil) {
		t.Fatalf("case %d: error %v, oracle error %v", i, err, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
	}
}

// BenchmarkMarshalSynthea renders the resources of the first Synthea
// bundles with Marshal and with the encoding/json oracle (marshalStd).
//
//	go test ./internal/resources -run '^$' -bench MarshalSynthea
func BenchmarkMarshalSynthea(b *testing.B) {
	files, _ := filepath.Glob("../../../shared/data/synthea/bundles/*.json.gz")
	if len(files) == 0 {
		b.Skip("no Synthea bundles in ../shared/data (shared data absent)")
	}
	var all []map[string]any
	for _, f := range files[:min(len(files), 10)] {
		fh, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		zr, _ := gzip.NewReader(fh)
		data, _ := io.ReadAll(zr)
		fh.Close()
		m, err := fhir.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range m["entry"].([]any) {
			all = append(all, e.(map[string]any)["resource"].(map[string]any))
		}
	}
	for _, c := range []struct {
		name string
		fn   func(map[string]any) ([]byte, error)
	}{{"Marshal", Marshal}, {"encoding-json", marshalStd}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				for _, r := range all {
					if _, err := c.fn(r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*len(all)), "µs/resource")
			b.ReportMetric(0, "ns/op")
		})
	}
}
