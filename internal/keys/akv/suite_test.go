package akv_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kilnhealth/kiln/internal/keys"
	"github.com/kilnhealth/kiln/internal/keys/keystest"
)

// TestProviderSuite runs the shared provider contract against the built-in
// vault over TLS.
func TestProviderSuite(t *testing.T) {
	e := startVault(t)
	p := e.provider(t, "suite", []string{"get", "wrapKey", "unwrapKey"})
	var n atomic.Int64
	keystest.Run(t, func(t *testing.T) keystest.Env {
		name := fmt.Sprintf("suite-%d", n.Add(1))
		e.create(t, name, azkeys.KeyTypeRSA)
		k := open(t, p, e.url+"/keys/"+name)
		return keystest.Env{
			Key:    k,
			Rotate: func(t *testing.T) string { return e.rotate(t, name) },
			OpenVersion: func(t *testing.T, v string) keys.Key {
				k, err := p.Open(context.Background(), e.url+"/keys/"+name+"/"+v)
				if err != nil {
					t.Fatal(err)
				}
				return k
			},
		}
	})
}
