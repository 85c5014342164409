package resources

import (
	"bytes"
	"testing"

	"github.com/kilnhealth/kiln/internal/fhir"
)

// FuzzMarshal decodes arbitrary JSON with fhir.Decode and checks that
// Marshal renders it exactly as encoding/json does (marshalStd).
func FuzzMarshal(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"x","meta":{"versionId":"1"},"name":[{"family":"<b>&"}]}`,
		`{"b":1.50,"a":[null,true,false,{"\u2028":"\u0001\ud83d\ude00"}],"é":-0e+1}`,
		`{"text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">\t\r\n\f\b</div>"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		res, err := fhir.Decode([]byte(s))
		if err != nil {
			return
		}
		got, err := Marshal(res)
		want, werr := marshalStd(res)
		if (err == nil) != (werr == nil) {
			t.Fatalf("error %v, oracle error %v", err, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
