package akv_test

import (
	"strings"
	"testing"

	"github.com/kilnhealth/kiln/internal/keys/akv"
)

// FuzzParseURI: ParseURI never panics, and what it accepts round-trips
// through String to the same parse.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"https://v.vault.azure.net/keys/k", "https://127.0.0.1:8443/keys/cmk/0123456789abcdef0123456789abcdef",
		"https://[::1]:8443/keys/a-b/", "https://v/keys/k?x", "http://v/keys/k", "https://v/keys/%41", "https://V/keys/k",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := akv.ParseURI(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(k.Vault, "https://") || k.Name == "" {
			t.Fatalf("accepted %q as %+v", s, k)
		}
		k2, err := akv.ParseURI(k.String())
		if err != nil || k2 != k {
			t.Fatalf("%q: round trip %+v → %q → %+v, %v", s, k, k.String(), k2, err)
		}
	})
}
