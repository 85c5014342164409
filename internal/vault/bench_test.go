package vault_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// BenchmarkWrapUnwrap measures wrap and unwrap of a 32-byte secret over
// HTTPS through the azkeys client, with one or more concurrent callers
// (go test -cpu sets GOMAXPROCS; RunParallel uses that many goroutines).
func BenchmarkWrapUnwrap(b *testing.B) {
	tv := startVault(b, "", nil)
	ctx := context.Background()
	c := tv.azClient(b, tv.admin)
	for _, kc := range []struct {
		name string
		kty  azkeys.KeyType
		size int32
		alg  azkeys.EncryptionAlgorithm
	}{
		{"RSA-3072", azkeys.KeyTypeRSA, 3072, azkeys.EncryptionAlgorithmRSAOAEP256},
		{"oct-256", azkeys.KeyTypeOct, 256, azkeys.EncryptionAlgorithmA256KW},
	} {
		k, err := c.CreateKey(ctx, kc.name, azkeys.CreateKeyParameters{Kty: to.Ptr(kc.kty), KeySize: to.Ptr(kc.size)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ver := k.Key.KID.Version()
		secret := randBytes(32)
		w, err := c.WrapKey(ctx, kc.name, ver, azkeys.KeyOperationParameters{Algorithm: to.Ptr(kc.alg), Value: secret}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kc.name+"/wrap", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.WrapKey(ctx, kc.name, ver, azkeys.KeyOperationParameters{Algorithm: to.Ptr(kc.alg), Value: secret}, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
		b.Run(kc.name+"/unwrap", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.UnwrapKey(ctx, kc.name, ver, azkeys.KeyOperationParameters{Algorithm: to.Ptr(kc.alg), Value: w.Result}, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
