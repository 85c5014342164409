package vault

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// Vectors from RFC 3394 §4.3 and §4.6 (256-bit KEK).
func TestAESKeyWrapRFC3394(t *testing.T) {
	cases := []struct{ name, kek, key, wrapped string }{
		{"4.3_128bit_data_256bit_kek",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"00112233445566778899AABBCCDDEEFF",
			"64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"},
		{"4.6_256bit_data_256bit_kek",
			"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kek, _ := hex.DecodeString(c.kek)
			key, _ := hex.DecodeString(c.key)
			want, _ := hex.DecodeString(c.wrapped)
			got, err := aesKeyWrap(kek, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("wrap = %X, want %X", got, want)
			}
			back, err := aesKeyUnwrap(kek, want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, key) {
				t.Fatalf("unwrap = %X, want %X", back, key)
			}
			bad := append([]byte(nil), want...)
			bad[len(bad)-1] ^= 1
			if _, err := aesKeyUnwrap(kek, bad); err == nil {
				t.Fatal("tampered ciphertext unwrapped")
			}
		})
	}
	if _, err := aesKeyWrap(make([]byte, 32), make([]byte, 12)); err == nil {
		t.Fatal("wrap of 12 bytes accepted")
	}
	if _, err := aesKeyUnwrap(make([]byte, 32), make([]byte, 17)); err == nil {
		t.Fatal("unwrap of 17 bytes accepted")
	}
}
