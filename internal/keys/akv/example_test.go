package akv_test

import (
	"fmt"

	"github.com/kilnhealth/kiln/internal/keys/akv"
)

func ExampleParseURI() {
	k, err := akv.ParseURI("https://contoso.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef")
	if err != nil {
		panic(err)
	}
	fmt.Println(k.Vault)
	fmt.Println(k.Name, k.Version)
	fmt.Println(k.ID())
	// Output:
	// https://contoso.vault.azure.net
	// cmk 0123456789abcdef0123456789abcdef
	// https://contoso.vault.azure.net/keys/cmk
}
