package seal

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/kilnhealth/kiln/internal/secret"
)

// Format constants. They are stored in every ciphertext: never change them.
const (
	FormatV1   byte = 1
	FlagZstd   byte = 1 << 0
	headerSize      = 6
	nonceSize       = chacha20poly1305.NonceSizeX
	// Overhead is the size a sealed value adds to its (compressed) plaintext.
	Overhead = headerSize + nonceSize + chacha20poly1305.Overhead
	// TokenSize is the length of a blind index token.
	TokenSize = 16
	// RootKeySize is the length of an account root key.
	RootKeySize = 32
	// compressMin is the plaintext size below which compression is skipped.
	compressMin = 128
)

// ErrOpen is the one error Open returns, whatever failed.
var ErrOpen = errors.New("seal: message authentication failed")

// Binding names what a sealed value belongs to. It is bound as associated
// data, so a ciphertext opens only under the same binding.
type Binding struct {
	Account   string
	Type      string
	ID        string
	VersionID int64
	// Purpose separates uses of the same resource: "body" for resource
	// bodies, "sort:"+param for sort values.
	Purpose string
}

// Generations describes which data-key generations a ring can use.
type Generations struct {
	Current uint32 // the generation new values are sealed under (>= 1)
	Min     uint32 // the oldest generation still readable (1 <= Min <= Current)
}

// Validate checks the relation between the numbers.
func (g Generations) Validate() error {
	if g.Current < 1 || g.Min < 1 || g.Min > g.Current {
		return fmt.Errorf("seal: invalid generations current=%d min=%d", g.Current, g.Min)
	}
	return nil
}

// Codec holds the zstd encoder and decoder shared by all accounts. It is
// safe for concurrent use. Build one per process with NewCodec.
type Codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// NewCodec builds the compression codec.
func NewCodec() (*Codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("seal: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, fmt.Errorf("seal: zstd decoder: %w", err)
	}
	return &Codec{enc: enc, dec: dec}, nil
}

// AccountKeys are the subkeys of one account, derived from its ARK. Safe for
// concurrent use. After Wipe every method fails.
type AccountKeys struct {
	account string
	codec   *Codec
	rand    io.Reader
	gens    Generations

	mu       sync.RWMutex
	wiped    bool
	data     map[uint32]cipher.AEAD
	dataKeys []secret.Bytes
	indexKey secret.Bytes
	macs     sync.Pool
}

// Derive builds the subkeys of account from its root key. rand supplies
// nonces (crypto/rand.Reader in production).
func Derive(account string, ark secret.Bytes, gens Generations, codec *Codec, rand io.Reader) (*AccountKeys, error) {
	if ark.Len() != RootKeySize {
		return nil, fmt.Errorf("seal: root key must be %d bytes", RootKeySize)
	}
	if err := gens.Validate(); err != nil {
		return nil, err
	}
	k := &AccountKeys{account: account, codec: codec, rand: rand, gens: gens, data: map[uint32]cipher.AEAD{}}
	for g := gens.Min; g <= gens.Current; g++ {
		dk, err := hkdf.Key(sha256.New, ark.Expose(), nil, "kiln/v1/data/"+strconv.FormatUint(uint64(g), 10), chacha20poly1305.KeySize)
		if err != nil {
			return nil, fmt.Errorf("seal: derive data key: %w", err)
		}
		a, err := chacha20poly1305.NewX(dk)
		if err != nil {
			return nil, fmt.Errorf("seal: data aead: %w", err)
		}
		k.data[g] = a
		k.dataKeys = append(k.dataKeys, secret.New(dk))
		clear(dk)
	}
	ik, err := hkdf.Key(sha256.New, ark.Expose(), nil, "kiln/v1/index", 32)
	if err != nil {
		return nil, fmt.Errorf("seal: derive index key: %w", err)
	}
	k.indexKey = secret.New(ik)
	clear(ik)
	k.macs.New = func() any { return hmac.New(sha256.New, k.indexKey.Expose()) }
	return k, nil
}

// Account returns the account these keys belong to.
func (k *AccountKeys) Account() string { return k.account }

// Generations returns the generations the keys were derived for.
func (k *AccountKeys) Generations() Generations { return k.gens }

// Wipe zeroes the derived key material and drops the cached AEADs. Further
// calls fail with ErrWiped (Seal, Token) or ErrOpen (Open).
func (k *AccountKeys) Wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.wiped = true
	for _, d := range k.dataKeys {
		d.Wipe()
	}
	k.indexKey.Wipe()
	k.data = nil
	k.macs = sync.Pool{}
}

// ErrWiped is returned by Seal and Token after Wipe.
var ErrWiped = errors.New("seal: account keys were wiped")

func appendBinding(dst []byte, b Binding) []byte {
	for _, s := range [...]string{b.Account, b.Type, b.ID, strconv.FormatInt(b.VersionID, 10), b.Purpose} {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// Seal compresses (when worthwhile) and encrypts plaintext under the current
// generation, bound to b. b.Account must be this ring's account.
func (k *AccountKeys) Seal(plaintext []byte, b Binding) ([]byte, error) {
	if b.Account != k.account {
		return nil, fmt.Errorf("seal: binding account %q does not match ring %q", b.Account, k.account)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped {
		return nil, ErrWiped
	}
	flags := byte(0)
	body := plaintext
	if len(plaintext) >= compressMin && k.codec != nil {
		c := k.codec.enc.EncodeAll(plaintext, make([]byte, 0, len(plaintext)/2))
		if len(c) < len(plaintext) {
			body, flags = c, FlagZstd
		}
	}
	gen := k.gens.Current
	a := k.data[gen]
	out := make([]byte, headerSize+nonceSize, Overhead+len(body))
	out[0], out[1] = FormatV1, flags
	binary.BigEndian.PutUint32(out[2:6], gen)
	if _, err := io.ReadFull(k.rand, out[headerSize:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	ad := appendBinding(append(make([]byte, 0, 64), out[:headerSize]...), b)
	return a.Seal(out, out[headerSize:headerSize+nonceSize], body, ad), nil
}

// Open verifies and decrypts a value sealed by Seal under the same binding.
// Every failure returns ErrOpen.
func (k *AccountKeys) Open(sealed []byte, b Binding) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != FormatV1 || sealed[1]&^FlagZstd != 0 || b.Account != k.account {
		return nil, ErrOpen
	}
	gen := binary.BigEndian.Uint32(sealed[2:6])
	if gen > k.gens.Current || gen < k.gens.Min {
		return nil, ErrOpen
	}
	k.mu.RLock()
	a := k.data[gen]
	k.mu.RUnlock()
	if a == nil {
		return nil, ErrOpen
	}
	ad := appendBinding(append(make([]byte, 0, 64), sealed[:headerSize]...), b)
	pt, err := a.Open(nil, sealed[headerSize:headerSize+nonceSize], sealed[headerSize+nonceSize:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	if sealed[1]&FlagZstd != 0 {
		out, err := k.codec.dec.DecodeAll(pt, nil)
		if err != nil {
			return nil, ErrOpen
		}
		return out, nil
	}
	return pt, nil
}

// Token returns the blind index token for one search value:
// HMAC-SHA256(indexKey, type‖0‖param‖0‖kind‖0‖value) truncated to 16 bytes.
func (k *AccountKeys) Token(resourceType, param, kind, value string) []byte {
	return k.AppendToken(make([]byte, 0, TokenSize), resourceType, param, kind, value)
}

// AppendToken appends the token for the value to dst.
func (k *AccountKeys) AppendToken(dst []byte, resourceType, param, kind, value string) []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped {
		// An all-zero token matches nothing that was ever indexed.
		return append(dst, make([]byte, TokenSize)...)
	}
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	var zero = [1]byte{0}
	m.Write([]byte(resourceType))
	m.Write(zero[:])
	m.Write([]byte(param))
	m.Write(zero[:])
	m.Write([]byte(kind))
	m.Write(zero[:])
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	out := m.Sum(sum[:0])
	k.macs.Put(m)
	return append(dst, out[:TokenSize]...)
}
