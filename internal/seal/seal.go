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
	"slices"
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
	// smallMax is the plaintext size below which the small-value encoder
	// is used (see Codec).
	smallMax = 1024
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

// Codec holds the zstd encoders and decoder shared by all accounts. It is
// safe for concurrent use. Build one per process with NewCodec.
//
// Values shorter than 1 KiB (sort values, tiny bodies) are compressed
// without entropy coding of literals: on such inputs the gain comes from
// repeated strings, and building Huffman tables costs more time than the
// bytes it saves. Both encoders write standard zstd frames that the one
// decoder reads.
type Codec struct {
	enc   *zstd.Encoder
	small *zstd.Encoder
	dec   *zstd.Decoder
}

// NewCodec builds the compression codec.
func NewCodec() (*Codec, error) {
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true)}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("seal: zstd encoder: %w", err)
	}
	small, err := zstd.NewWriter(nil, append(opts, zstd.WithNoEntropyCompression(true))...)
	if err != nil {
		return nil, fmt.Errorf("seal: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, fmt.Errorf("seal: zstd decoder: %w", err)
	}
	return &Codec{enc: enc, small: small, dec: dec}, nil
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

	// fixed caches the tokens of inputs that recur on every resource
	// (TokenBatch.AddFixed), keyed by the HMAC input; Wipe drops it.
	fixedMu sync.RWMutex
	fixed   map[string][TokenSize]byte
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
	k.macs.New = func() any {
		return &tokenMAC{h: hmac.New(sha256.New, k.indexKey.Expose()), sum: make([]byte, 0, sha256.Size)}
	}
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
	k.fixedMu.Lock()
	clear(k.fixed)
	k.fixed = nil
	k.fixedMu.Unlock()
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
	return k.seal(plaintext, b, true)
}

// SealUncompressed is Seal without the compression attempt, for short
// values where running zstd costs more time than the bytes it saves (sort
// values: a few µs each for a few dozen bytes). The output is an ordinary
// sealed value without FlagZstd; Open reads it like any other.
func (k *AccountKeys) SealUncompressed(plaintext []byte, b Binding) ([]byte, error) {
	return k.seal(plaintext, b, false)
}

func (k *AccountKeys) seal(plaintext []byte, b Binding, compress bool) ([]byte, error) {
	if b.Account != k.account {
		return nil, fmt.Errorf("seal: binding account %q does not match ring %q", b.Account, k.account)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped {
		return nil, ErrWiped
	}
	const prefix = headerSize + nonceSize
	// The body is compressed (or copied) straight after the header and
	// nonce, then encrypted in place: one allocation per value.
	out := make([]byte, prefix, Overhead+len(plaintext))
	flags := byte(0)
	if compress && len(plaintext) >= compressMin && k.codec != nil {
		enc := k.codec.enc
		if len(plaintext) < smallMax {
			enc = k.codec.small
		}
		if c := enc.EncodeAll(plaintext, out); len(c)-prefix < len(plaintext) {
			out, flags = c, FlagZstd
		}
	}
	if flags == 0 {
		out = append(out[:prefix], plaintext...)
	}
	gen := k.gens.Current
	a := k.data[gen]
	out[0], out[1] = FormatV1, flags
	binary.BigEndian.PutUint32(out[2:6], gen)
	if _, err := io.ReadFull(k.rand, out[headerSize:prefix]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	var adBuf [128]byte
	ad := appendBinding(append(adBuf[:0], out[:headerSize]...), b)
	return a.Seal(out[:prefix], out[headerSize:prefix], out[prefix:], ad), nil
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

// AppendToken appends the token for the value to dst. After Wipe it appends
// an all-zero token, which matches nothing that was ever indexed.
func (k *AccountKeys) AppendToken(dst []byte, resourceType, param, kind, value string) []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped {
		return append(dst, make([]byte, TokenSize)...)
	}
	m := k.macs.Get().(*tokenMAC)
	m.msg = appendTokenInput(m.msg[:0], resourceType, param, kind, value)
	dst = m.appendToken(dst, m.msg)
	clear(m.msg) // a plaintext search value
	k.macs.Put(m)
	return dst
}

// AppendTokens appends the tokens of every input of b to dst, TokenSize
// bytes each, in the order they were added: token i is
// dst[len(dst)+i*TokenSize:][:TokenSize] of the result, and equals
// Token(resourceType, param, kind, value) of input i. It takes the key lock
// once for the whole batch and allocates nothing beyond growing dst. After
// Wipe it returns ErrWiped and dst unchanged.
func (k *AccountKeys) AppendTokens(dst []byte, b *TokenBatch) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped {
		return dst, ErrWiped
	}
	dst = slices.Grow(dst, len(b.ends)*TokenSize)
	m := k.macs.Get().(*tokenMAC)
	defer k.macs.Put(m)
	start, misses := uint32(0), false
	next := 0 // position in b.fixed
	k.fixedMu.RLock()
	for i, end := range b.ends {
		msg := b.msg[start:end]
		start = end
		if next < len(b.fixed) && b.fixed[next] == i {
			next++
			if t, ok := k.fixed[string(msg)]; ok {
				dst = append(dst, t[:]...)
				continue
			}
			misses = true
		}
		dst = m.appendToken(dst, msg)
	}
	k.fixedMu.RUnlock()
	if misses {
		k.cacheFixed(b, dst[len(dst)-len(b.ends)*TokenSize:])
	}
	return dst, nil
}

// maxFixed bounds the fixed-token cache: R4 has about 1,400 parameters,
// each with a presence and a sort token.
const maxFixed = 8192

// cacheFixed stores the fixed inputs of b with their tokens toks.
func (k *AccountKeys) cacheFixed(b *TokenBatch, toks []byte) {
	k.fixedMu.Lock()
	defer k.fixedMu.Unlock()
	if k.fixed == nil {
		k.fixed = make(map[string][TokenSize]byte)
	}
	for _, i := range b.fixed {
		if len(k.fixed) >= maxFixed {
			return
		}
		start := uint32(0)
		if i > 0 {
			start = b.ends[i-1]
		}
		msg := b.msg[start:b.ends[i]]
		if _, ok := k.fixed[string(msg)]; !ok {
			k.fixed[string(msg)] = [TokenSize]byte(toks[i*TokenSize:])
		}
	}
}

// tokenMAC is one HMAC-SHA256 under the index key with its scratch space.
// crypto/hmac keeps the keyed inner and outer states after the first
// Reset, so each token costs two SHA-256 blocks for inputs of up to 55
// bytes.
type tokenMAC struct {
	h   hash.Hash
	sum []byte // cap sha256.Size
	msg []byte // scratch for AppendToken
}

func (m *tokenMAC) appendToken(dst, msg []byte) []byte {
	m.h.Reset()
	m.h.Write(msg)
	m.sum = m.h.Sum(m.sum[:0])
	return append(dst, m.sum[:TokenSize]...)
}

func appendTokenInput(dst []byte, resourceType, param, kind, value string) []byte {
	dst = append(dst, resourceType...)
	dst = append(dst, 0)
	dst = append(dst, param...)
	dst = append(dst, 0)
	dst = append(dst, kind...)
	dst = append(dst, 0)
	return append(dst, value...)
}

// TokenBatch collects the inputs of many blind tokens (typically all of one
// resource's) for AccountKeys.AppendTokens. The zero value is an empty
// batch; Reset empties it and keeps its memory for reuse. A batch holds
// plaintext search values: it is not safe for concurrent use and should
// not outlive the request that filled it.
type TokenBatch struct {
	msg   []byte   // the HMAC inputs, back to back
	ends  []uint32 // end offset in msg of each input
	fixed []int    // indexes of the inputs added by AddFixed, ascending
}

// Reset empties the batch, keeping its memory.
func (b *TokenBatch) Reset() {
	clear(b.msg) // plaintext search values
	b.msg, b.ends, b.fixed = b.msg[:0], b.ends[:0], b.fixed[:0]
}

// AddFixed appends the input of Token(resourceType, param, kind, ""), a
// token that does not depend on any value (the presence or sort slot of a
// parameter), which AccountKeys.AppendTokens computes once per key and
// then takes from memory. Callers must not use it for values: the cache
// keeps its inputs for the life of the keys.
func (b *TokenBatch) AddFixed(resourceType, param, kind string) {
	b.fixed = append(b.fixed, len(b.ends))
	b.Add(resourceType, param, kind)
}

// Len returns the number of inputs in the batch.
func (b *TokenBatch) Len() int { return len(b.ends) }

// Add appends the input of Token(resourceType, param, kind, value) where
// value is the concatenation of parts, so callers need not build the
// string.
func (b *TokenBatch) Add(resourceType, param, kind string, parts ...string) {
	b.msg = appendTokenInput(b.msg, resourceType, param, kind, "")
	for _, p := range parts {
		b.msg = append(b.msg, p...)
	}
	b.ends = append(b.ends, uint32(len(b.msg)))
}

// AddBytes is Add with a single value given as bytes (which are copied).
func (b *TokenBatch) AddBytes(resourceType, param, kind string, value []byte) {
	b.msg = appendTokenInput(b.msg, resourceType, param, kind, "")
	b.msg = append(b.msg, value...)
	b.ends = append(b.ends, uint32(len(b.msg)))
}
