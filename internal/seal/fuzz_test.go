package seal

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open: it must never panic and must
// refuse anything it did not seal.
func FuzzOpen(f *testing.F) {
	k := testKeys(f, "acme", 7, Generations{Current: 2, Min: 1})
	b := Binding{Account: "acme", Type: "Patient", ID: "p1", VersionID: 1, Purpose: "body"}
	good, _ := k.Seal(body(40), b)
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := k.Open(data, b)
		if err == nil && !bytes.Equal(data, good) {
			t.Fatalf("forged ciphertext opened: %q", pt)
		}
	})
}
