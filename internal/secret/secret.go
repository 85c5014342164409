// Package secret holds key material in a type that is hard to leak.
//
// A Bytes value never prints its contents: String, GoString, Format and
// MarshalJSON all render a redacted marker, so no log line, error message or
// %v can expose a key. Equal compares in constant time. Wipe zeroes the
// backing array; callers that cache secrets call it when the secret must be
// forgotten (for example when an account's customer-managed key is revoked).
package secret

import (
	"crypto/subtle"
	"fmt"
)

// Bytes is a secret byte string. The zero value is an empty secret.
type Bytes struct {
	b []byte
}

// New returns a Bytes holding a copy of b.
func New(b []byte) Bytes {
	c := make([]byte, len(b))
	copy(c, b)
	return Bytes{b: c}
}

// Expose returns the secret bytes themselves (not a copy). The caller must
// not retain or modify them beyond the immediate cryptographic use.
func (s Bytes) Expose() []byte { return s.b }

// Len reports the secret's length in bytes.
func (s Bytes) Len() int { return len(s.b) }

// Equal reports whether s and o hold the same bytes, in constant time.
func (s Bytes) Equal(o Bytes) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// Wipe overwrites the secret with zeros.
func (s Bytes) Wipe() {
	for i := range s.b {
		s.b[i] = 0
	}
}

const redacted = "secret.Bytes(REDACTED)"

// String implements fmt.Stringer with a redacted value.
func (s Bytes) String() string { return redacted }

// GoString implements fmt.GoStringer with a redacted value.
func (s Bytes) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb prints the redacted value.
func (s Bytes) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON renders the redacted marker, never the secret.
func (s Bytes) MarshalJSON() ([]byte, error) { return []byte(`"REDACTED"`), nil }
