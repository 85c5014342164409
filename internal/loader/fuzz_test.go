package loader_test

import (
	"encoding/json"
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
