package vault_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/kilnhealth/kiln/internal/vault"
)

// Example embeds the vault the way kiln serve does: open it, listen on a
// free port, serve it, provision a principal and grant it the permissions a
// customer-managed key needs.
func Example() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	v, err := vault.Open(ctx, vault.Config{DataDir: dir, Addr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	ln, err := v.Listen()
	if err != nil {
		panic(err)
	}
	go v.Serve(ctx, ln)

	tok, err := v.IssueToken(ctx, "kiln")
	if err != nil {
		panic(err)
	}
	if err := v.SetPolicy(ctx, "kiln", []string{"unwrapKey", "GET", "wrapKey"}); err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(v.URL(), "https://127.0.0.1:"), strings.HasPrefix(tok, "kvt1."))
	fmt.Println(v.Policies())
	fmt.Println(v.CAFile() == dir+"/ca.pem", v.AdminTokenFile() == dir+"/admin-token")
	// Output:
	// true true
	// [{kiln [get wrapKey unwrapKey]}]
	// true true
}
