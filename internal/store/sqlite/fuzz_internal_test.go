package sqlite

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// FuzzDecodeIxs: decoding arbitrary bytes never panics; a decoded list
// re-encodes to bytes that decode to the same list, no longer than the
// input (the input may use non-minimal varints, so it need not be byte
// equal), and its stamps are ascending and distinct.
func FuzzDecodeIxs(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeIxs(nil, []int64{1, 2, 3, 200, 70000}))
	f.Add(encodeIxs(nil, []int64{1 << 62}))
	f.Add([]byte{0x05, 0x00})
	f.Add([]byte{0x80})
	f.Add([]byte{0x80, 0x00})                  // non-minimal zero
	f.Add(encodeUvarints(1<<62, 1<<62, 1<<62)) // the running sum overflows
	f.Fuzz(func(t *testing.T, b []byte) {
		ixs, err := decodeIxs(nil, b)
		if err != nil {
			return
		}
		if sumOverflows(b) {
			t.Fatalf("decodeIxs(%x) = %v: a stamp sum above MaxInt64 was accepted", b, ixs)
		}
		for i := 1; i < len(ixs); i++ {
			if ixs[i] <= ixs[i-1] {
				t.Fatalf("decodeIxs(%x) = %v: stamps not ascending and distinct at %d", b, ixs, i)
			}
		}
		enc := encodeIxs(nil, ixs)
		if len(enc) > len(b) {
			t.Fatalf("encodeIxs(decodeIxs(%x)) = %x is longer than the input", b, enc)
		}
		again, err := decodeIxs(nil, enc)
		if err != nil || !slices.Equal(again, ixs) {
			t.Fatalf("decodeIxs(encodeIxs(%v)) = %v, %v", ixs, again, err)
		}
	})
}

// sumOverflows reports whether the uvarints of b add up to more than
// MaxInt64 (computed independently of decodeIxs).
func sumOverflows(b []byte) bool {
	var sum uint64
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return false
		}
		b = b[n:]
		if v > math.MaxInt64-sum {
			return true
		}
		sum += v
	}
	return false
}

// FuzzDecodeList: decoding arbitrary bytes never panics; a decoded list
// has items of 1..255 bytes and re-encodes to exactly the input.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeList([][]byte{[]byte("a"), bytes.Repeat([]byte{7}, 16)}))
	f.Add(encodeList([][]byte{bytes.Repeat([]byte{1}, 255)}))
	f.Add([]byte{0x00})
	f.Add([]byte{0x03, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := decodeList(b)
		if err != nil {
			return
		}
		for _, it := range items {
			if len(it) == 0 || len(it) > 255 {
				t.Fatalf("decodeList(%x) has an item of %d bytes", b, len(it))
			}
		}
		if enc := encodeList(items); !bytes.Equal(enc, b) {
			t.Fatalf("encodeList(decodeList(%x)) = %x", b, enc)
		}
	})
}
