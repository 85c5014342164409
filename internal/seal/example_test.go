package seal_test

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/secret"
)

func ExampleAccountKeys_Seal() {
	codec, _ := seal.NewCodec()
	ark := secret.New(bytes.Repeat([]byte{42}, seal.RootKeySize)) // normally random, unwrapped from the key ring
	keys, _ := seal.Derive("acme", ark, seal.Generations{Current: 1, Min: 1}, codec, rand.Reader)

	where := seal.Binding{Account: "acme", Type: "Patient", ID: "example", VersionID: 1, Purpose: "body"}
	sealed, _ := keys.Seal([]byte(`{"resourceType":"Patient","id":"example"}`), where)
	plain, _ := keys.Open(sealed, where)
	fmt.Println(string(plain))

	moved := where
	moved.ID = "other"
	_, err := keys.Open(sealed, moved)
	fmt.Println(err)
	// Output:
	// {"resourceType":"Patient","id":"example"}
	// seal: message authentication failed
}
