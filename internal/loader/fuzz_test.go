package loader_test

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/loader"
)

// FuzzAsTransaction: any input gives an error or a valid JSON Bundle.
func FuzzAsTransaction(f *testing.F) {
	f.Add(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"a"}}]}`)
	f.Add(`{"resourceType":"Patient"}`)
	f.Add(`{"resourceType":"Bundle","type":"transaction","entry":[]}`)
	f.Fuzz(func(t *testing.T, in string) {
		out, n, err := loader.AsTransaction([]byte(in))
		if err != nil {
			return
		}
		var b struct {
			Entry []json.RawMessage `json:"entry"`
		}
		if !json.Valid(out) || json.Unmarshal(out, &b) != nil || len(b.Entry) != n {
			t.Fatalf("bad bundle for %q: %s (n=%d)", in, out, n)
		}
	})
}

// scanSeeds are inputs the one-pass Bundle check must either answer as
// encoding/json does or leave to it.
var scanSeeds = []string{
	`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","a":[1,-2.5e+3,true,false,null,"\u00e9\n"]}},{}]}`,
	` {"id":"x","entry":[],"resourceType":"Bundle","type":"batch","meta":{"a":{}}} `,
	`{"resourceType":"Bundle","Type":"batch","entry":[]}`,
	`{"resourceType":"Bundle","type":"batch","type":"transaction"}`,
	`{"resourceType":"Bundle","type":"b\u0061tch"}`,
	`{"resourceType":"Bundle","type":"batch","entry":null}`,
	`{"resourceType":"Bundle","type":"batch","entry":[01]}`,
	`{"resourceType":"Bundle","type":"batch","entry":[1.]}`,
	`{"resourceType":"Bundle","type":"batch","entry":["\x01"]}`,
	`{"resourceType":"Bundle","type":"batch","id":7}`,
	`{"reſourceType":"Bundle","type":"batch"}`,
	`[{"resourceType":"Bundle"}]`,
	`{"resourceType":"Bundle","type":"batch","entry":[{"a":"b"}]}x`,
}

// FuzzScanHead checks the one-pass Bundle check against encoding/json:
// whatever it accepts is valid JSON that json.Unmarshal reads into the
// same resourceType, type, id and number of entries.
func FuzzScanHead(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rt, typ, id, n, ok := loader.ScanHead([]byte(in))
		if !ok {
			return
		}
		var head struct {
			ResourceType string            `json:"resourceType"`
			Type         string            `json:"type"`
			ID           string            `json:"id"`
			Entry        []json.RawMessage `json:"entry"`
		}
		if !json.Valid([]byte(in)) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		if err := json.Unmarshal([]byte(in), &head); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", in, err)
		}
		if head.ResourceType != rt || head.Type != typ || head.ID != id || len(head.Entry) != n {
			t.Fatalf("%q: got %q %q %q %d, encoding/json %q %q %q %d", in, rt, typ, id, n, head.ResourceType, head.Type, head.ID, len(head.Entry))
		}
	})
}

// TestScanHead pins which seeds take the one pass, and that every Synthea
// Bundle (when the shared data is present) does with the right count.
func TestScanHead(t *testing.T) {
	for i, want := range []bool{true, true, false, false, false, false, false, false, false, false, false, false, false} {
		if _, _, _, _, ok := loader.ScanHead([]byte(scanSeeds[i])); ok != want {
			t.Errorf("seed %d %q: one pass %v, want %v", i, scanSeeds[i], ok, want)
		}
	}
	if _, _, _, n, _ := loader.ScanHead([]byte(scanSeeds[0])); n != 2 {
		t.Errorf("seed 0: %d entries, want 2", n)
	}
	files, _ := filepath.Glob("../../../shared/data/synthea/bundles/*.json.gz")
	for _, f := range files[:min(len(files), 10)] {
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
		var head struct {
			Entry []json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			t.Fatal(err)
		}
		if rt, typ, _, n, ok := loader.ScanHead(data); !ok || rt != "Bundle" || typ != "transaction" || n != len(head.Entry) {
			t.Errorf("%s: %v %q %q %d entries, want a transaction of %d", f, ok, rt, typ, n, len(head.Entry))
		}
	}
}

// statusSeeds are response Bundles the one-pass count must either answer
// as encoding/json does or leave to it.
var statusSeeds = []string{
	`{"resourceType":"Bundle","type":"transaction-response","entry":[{"fullUrl":"x","response":{"status":"201 Created","etag":"W/\"1\""}},{"response":{"location":"a","status":"200 OK","outcome":{"issue":[{"diagnostics":"x"}]}},"resource":{"status":"final"}}]}`,
	`{"entry":[]}`,
	`{"entry":[{"response":{"status":"400 Bad Request","outcome":{"issue":[{"diagnostics":"no"}]}}}]}`,
	`{"Entry":[{"response":{"status":"201"}}]}`,
	`{"entry":[{"response":{"status":"201","Status":"400"}}]}`,
	`{"entry":[{"response":null}]}`,
	`{"entry":[{}]}`,
	`{"entry":[{"response":{"status":"2\u0030"}}]}`,
	`{"entry":[{"response":{"status":"201"}}],"entry":[]}`,
	`{"entry":[{"response":{"status":201}}]}`,
}

// FuzzScanStatuses checks the one-pass count of successful entries
// against encoding/json: whatever it accepts, json.Unmarshal reads as the
// same number of entries, all with a 2xx status.
func FuzzScanStatuses(f *testing.F) {
	for _, s := range statusSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, ok := loader.ScanStatuses([]byte(in))
		if !ok {
			return
		}
		var b struct {
			Entry []struct {
				Response struct {
					Status string `json:"status"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal([]byte(in), &b); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", in, err)
		}
		if len(b.Entry) != n {
			t.Fatalf("%q: %d entries, encoding/json %d", in, n, len(b.Entry))
		}
		for _, e := range b.Entry {
			if !strings.HasPrefix(e.Response.Status, "2") {
				t.Fatalf("%q: counted a failed entry %q", in, e.Response.Status)
			}
		}
	})
}

func TestCountEntries(t *testing.T) {
	for i, c := range []struct {
		fast     bool
		ok, bad  int
		firstErr string
	}{
		{true, 2, 0, ""}, {true, 0, 0, ""}, {false, 0, 1, "400 Bad Request no"}, {false, 1, 0, ""},
		{false, 0, 1, "400 "}, {false, 0, 1, " "}, {false, 0, 1, " "}, {false, 1, 0, ""}, {false, 0, 0, ""}, {false, 0, 0, ""},
	} {
		if _, fast := loader.ScanStatuses([]byte(statusSeeds[i])); fast != c.fast {
			t.Errorf("seed %d: one pass %v, want %v", i, fast, c.fast)
		}
		ok, bad, msg := loader.CountEntries([]byte(statusSeeds[i]))
		if ok != c.ok || bad != c.bad || msg != c.firstErr {
			t.Errorf("seed %d: %d ok %d bad %q, want %d %d %q", i, ok, bad, msg, c.ok, c.bad, c.firstErr)
		}
	}
}
