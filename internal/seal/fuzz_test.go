package seal

import (
	"bytes"
	"testing"

	"github.com/kilnhealth/kiln/internal/secret"
)

// FuzzOpen feeds arbitrary bytes to Open: it must never panic and must
// refuse anything it did not seal.
func FuzzOpen(f *testing.F) {
	// A fixed nonce source: every fuzzing worker process runs this setup
	// again and must seal the very same good ciphertext as the seed.
	codec, err := NewCodec()
	if err != nil {
		f.Fatal(err)
	}
	k, err := Derive("acme", secret.New(bytes.Repeat([]byte{7}, RootKeySize)), Generations{Current: 2, Min: 1}, codec, bytes.NewReader(bytes.Repeat([]byte{9}, nonceSize)))
	if err != nil {
		f.Fatal(err)
	}
	b := Binding{Account: "acme", Type: "Patient", ID: "p1", VersionID: 1, Purpose: "body"}
	good, err := k.Seal(body(40), b)
	if err != nil {
		f.Fatal(err)
	}
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
