// Package seal is Kiln's envelope cryptography for one account: it derives
// subkeys from the account root key (ARK), seals and opens resource bodies
// and sort values, and turns search values into blind index tokens.
//
// Key hierarchy (DESIGN.md §3). The 256-bit ARK is unwrapped by package
// accounts and handed to Derive, which runs HKDF-SHA256 with distinct labels:
//
//	data key, generation g: HKDF(ARK, salt=nil, info="kiln/v1/data/" + g)   -> XChaCha20-Poly1305
//	index key:              HKDF(ARK, salt=nil, info="kiln/v1/index")        -> HMAC-SHA256
//
// Ciphertext format (every sealed value):
//
//	byte 0     format version (FormatV1 = 1)
//	byte 1     flags (FlagZstd: the plaintext was zstd-compressed before sealing)
//	bytes 2-5  data-key generation, big-endian uint32
//	bytes 6-29 nonce (24 random bytes)
//	bytes 30-  XChaCha20-Poly1305 ciphertext and tag
//
// The associated data is the 6-byte header followed by the Binding (account,
// resource type, id, versionId and purpose, each length-prefixed), so a
// sealed row moved to another resource, version or account does not open.
// The header is checked before any key work: an unknown format, a
// generation newer than the ring or older than the oldest readable one is
// refused. Open returns the single opaque ErrOpen for every failure, as GCM
// and Tink do.
//
// Nonce limit. XChaCha20-Poly1305 takes 192-bit random nonces, so random
// nonce collisions stay negligible (< 2^-64) far beyond 2^64 messages per key;
// AES-GCM's 2^32-message limit does not apply. Generations still exist so a
// data key can be retired (Rekey) without touching the ARK; old generations
// stay readable down to MinGeneration.
//
// Blind tokens: Token(type, param, kind, value) = HMAC-SHA256(indexKey,
// type‖0‖param‖0‖kind‖0‖value)[:16]. They are deterministic per account and
// reveal nothing without the index key. AppendTokens computes a whole
// batch under one lock; the tokens of value-free inputs that recur on every
// resource (TokenBatch.AddFixed: presence and sort slots) are cached in the
// AccountKeys, bounded, and dropped by Wipe with the keys.
//
// This package does no I/O and never logs; key material lives in
// secret.Bytes and is zeroed by Wipe.
package seal
