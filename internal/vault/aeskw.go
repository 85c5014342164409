package vault

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// defaultIV is the RFC 3394 §2.2.3.1 initial value.
var defaultIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

var errKeyWrap = errors.New("vault: aes key wrap: integrity check failed")

// aesKeyWrap wraps plaintext (a multiple of 8 bytes, at least 16) under kek
// with the RFC 3394 key wrap algorithm (A256KW when kek is 32 bytes).
func aesKeyWrap(kek, plaintext []byte) ([]byte, error) {
	if len(plaintext) < 16 || len(plaintext)%8 != 0 {
		return nil, errors.New("vault: aes key wrap: plaintext must be a multiple of 8 bytes and at least 16 bytes")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(plaintext) / 8
	out := make([]byte, 8+len(plaintext))
	copy(out[:8], defaultIV[:])
	copy(out[8:], plaintext)
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], out[:8])
			copy(b[8:], out[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(b[:8])^t)
			copy(out[8*i:8*i+8], b[8:])
		}
	}
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap and checks the integrity value.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, errors.New("vault: aes key unwrap: ciphertext must be a multiple of 8 bytes and at least 24 bytes")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped))
	copy(out, wrapped)
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(out[:8])^t)
			copy(b[8:], out[8*i:8*i+8])
			block.Decrypt(b[:], b[:])
			copy(out[:8], b[:8])
			copy(out[8*i:8*i+8], b[8:])
		}
	}
	if subtle.ConstantTimeCompare(out[:8], defaultIV[:]) != 1 {
		return nil, errKeyWrap
	}
	return out[8:], nil
}
