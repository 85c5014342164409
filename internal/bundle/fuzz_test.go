package bundle_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/bundle"
	"github.com/kilnhealth/kiln/internal/server"
	"github.com/kilnhealth/kiln/internal/server/servertest"
)

// FuzzBundle posts arbitrary bodies as batch/transaction Bundles to a real
// server: the answer must never be a 5xx, and an OperationOutcome or a
// response Bundle must come back.
func FuzzBundle(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:1"}},"request":{"method":"POST","url":"Observation"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/x"}},{"request":{"method":"DELETE","url":"Patient/y"}},{"resource":{"resourceType":"Patient","id":"z"},"request":{"method":"PUT","url":"Patient/z"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL2EifV0="},"request":{"method":"PATCH","url":"Patient/z"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|b"}},{"request":{"method":"DELETE","url":"Patient?name=x"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=a|b"}},"request":{"method":"POST","url":"Observation"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{}]}`,
		`{"resourceType":"Bundle","type":"collection"}`,
		`[]`, `{"entry":7}`,
	} {
		f.Add(s)
	}
	inst := servertest.New(f, server.Options{SQLiteSync: "NORMAL"})
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/fhir/default", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/fhir+json")
		w := httptest.NewRecorder()
		inst.Server.Handler.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if !strings.Contains(w.Body.String(), `"resourceType":"OperationOutcome"`) && !strings.Contains(w.Body.String(), `-response"`) {
			t.Fatalf("status %d without an OperationOutcome or response Bundle: %s", w.Code, w.Body)
		}
	})
}

// FuzzJSONPatch applies arbitrary patches to a fixed document: no panic.
func FuzzJSONPatch(f *testing.F) {
	f.Add(`[{"op":"add","path":"/a/-","value":1}]`)
	f.Add(`[{"op":"move","from":"/a/0","path":"/b"},{"op":"copy","from":"/b","path":"/c/x"}]`)
	f.Add(`[{"op":"remove","path":"/a/1"},{"op":"replace","path":"","value":{}}]`)
	f.Add(`[{"op":"test","path":"/c/~1d~0","value":null}]`)
	f.Fuzz(func(t *testing.T, patch string) {
		ops, err := bundle.ParseJSONPatch([]byte(patch))
		if err != nil {
			return
		}
		doc := map[string]any{"a": []any{"x", "y"}, "c": map[string]any{"/d~": nil}}
		_, _ = bundle.ApplyJSONPatch(doc, ops)
	})
}

// decodeSeeds are Bundles the single-pass decoder takes and ones it must
// hand to the lenient path.
var decodeSeeds = []string{
	`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"family":"X"}]},"request":{"method":"POST","url":"Patient"}}]}`,
	`{"resourceType":"Bundle","Type":"batch","entry":[{"request":{"method":"GET","url":"Patient/x"}}]}`,
	`{"resourceType":"Bundle","type":"batch","entry":[{"FULLURL":"a","resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/a"}}]}`,
	`{"resourceType":"Bundle","type":"batch","entry":[{"resource":null,"request":{"method":"POST","url":"Patient"}}]}`,
	`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","a":1,"a":2},"request":{"method":"POST","url":"Patient"}}]}`,
	`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"post","url":"Patient","ifNoneExist":7}}]}`,
	`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="},"request":{"method":"patch","url":"Patient/z"}}]}`,
	`{"resourceType":"Bundle","type":"transaction","entry":null}`,
	`{"resourceType":"Bundle","type":"transaction","entry":[{"request":null}]}`,
	`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","text":{"div":"\u2028<b>&</b>"}},"request":{"method":"POST","url":"Patient","ifMatch":"W/\"1\""}}]} `,
}

// FuzzDecodeBundle checks that whenever the single-pass Bundle decoder
// accepts a body, the lenient path (encoding/json envelope, fhir.Decode per
// resource) accepts it too and yields the same envelope and resources.
func FuzzDecodeBundle(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if diff := bundle.CheckDecodePaths([]byte(body)); diff != "" {
			t.Fatalf("%s\nbody: %s", diff, body)
		}
	})
}
