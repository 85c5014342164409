package search

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/kilnhealth/kiln/internal/seal"
)

// cursor is the state carried by a page token: the snapshot and the offset
// of the page in the result ordered by the query's sort.
//
// Token format (base64url, no padding):
//
//	version (1 byte, 1) | maxSeq (8 bytes BE) | offset (4 bytes BE) |
//	queryHash (8 bytes: SHA-256 of the canonical query, truncated) |
//	mac (16 bytes: HMAC-SHA256 under the account's page key, truncated)
//
// The page key is the account's blind token for ("_page", "", "key", ""),
// so a token made for one account does not verify in another, and any
// change to the query or the token fails verification.
type cursor struct {
	maxSeq int64
	offset int
}

const pageTokenLen = 1 + 8 + 4 + 8 + 16

var errBadPage = errors.New("search: page token is invalid, expired or does not belong to this query")

func queryHash(canonical string) []byte {
	h := sha256.Sum256([]byte(canonical))
	return h[:8]
}

func pageMAC(keys *seal.AccountKeys, msg []byte) []byte {
	m := hmac.New(sha256.New, keys.Token("_page", "", "key", ""))
	m.Write(msg)
	return m.Sum(nil)[:16]
}

func encodePage(keys *seal.AccountKeys, canonical string, c cursor) string {
	b := make([]byte, 0, pageTokenLen)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(c.maxSeq))
	b = binary.BigEndian.AppendUint32(b, uint32(c.offset))
	b = append(b, queryHash(canonical)...)
	b = append(b, pageMAC(keys, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePage(keys *seal.AccountKeys, canonical, tok string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != pageTokenLen || b[0] != 1 {
		return cursor{}, errBadPage
	}
	body, mac := b[:pageTokenLen-16], b[pageTokenLen-16:]
	if !hmac.Equal(mac, pageMAC(keys, body)) {
		return cursor{}, errBadPage
	}
	if !hmac.Equal(body[13:21], queryHash(canonical)) {
		return cursor{}, errBadPage
	}
	c := cursor{maxSeq: int64(binary.BigEndian.Uint64(body[1:9])), offset: int(binary.BigEndian.Uint32(body[9:13]))}
	if c.maxSeq < 0 || c.offset < 0 {
		return cursor{}, errBadPage
	}
	return c, nil
}
