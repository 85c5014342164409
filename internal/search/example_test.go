package search_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/search"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/secret"
)

// ExampleIndexer_Index indexes a Patient: every applicable R4 search
// parameter yields blind 16-byte tokens, and each sortable one a sealed
// sort value. The token for family=chal (a 4-rune prefix) is the same HMAC
// a search computes, so the store can match it without seeing "chal".
func ExampleIndexer_Index() {
	reg, _ := searchparam.Load()
	model, _ := fhir.NewModel()
	x, _ := search.NewIndexer(reg, model)
	codec, _ := seal.NewCodec()
	keys, _ := seal.Derive("acme", secret.New(bytes.Repeat([]byte{1}, seal.RootKeySize)), seal.Generations{Current: 1, Min: 1}, codec, rand.Reader)

	patient := map[string]any{
		"resourceType": "Patient", "id": "p1", "birthDate": "1974-12-25",
		"name": []any{map[string]any{"family": "Chalmers"}},
	}
	tokens, sorts, err := x.Index(keys, "Patient", "p1", patient)
	fmt.Println(len(tokens), "tokens,", len(sorts), "sort values,", err)

	want := keys.Token("Patient", "family", "s^", "chal")
	found := false
	for _, t := range tokens {
		found = found || bytes.Equal(t, want)
	}
	fmt.Println("family prefix token present:", found, len(hex.EncodeToString(want))/2, "bytes")
	// Output:
	// 47 tokens, 6 sort values, <nil>
	// family prefix token present: true 16 bytes
}
