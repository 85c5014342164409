package postgres

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzDecodedBytea: the bytea scanner of DumpDatabase never panics, and a
// value written as pg_dump writes it comes back byte for byte.
func FuzzDecodedBytea(f *testing.F) {
	f.Add([]byte("COPY t (b) FROM stdin;\n"), []byte("hello"))
	f.Add([]byte(`\\x6`), []byte{0, 0xff})
	f.Add([]byte(`\\xzz \\x`), []byte{})
	f.Fuzz(func(t *testing.T, noise, value []byte) {
		_ = appendDecodedBytea(nil, noise)
		if len(value) == 0 {
			return
		}
		dump := append(append([]byte("1\t"), `\\x`+hex.EncodeToString(value)...), "\n\\.\n"...)
		got := appendDecodedBytea(nil, dump)
		if !bytes.Equal(got, append(append([]byte{}, value...), '\n')) {
			t.Fatalf("decoded %x, want %x", got, value)
		}
	})
}
