package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bodies to every request decoder: they must
// return a value or a *badParameter error, never panic, and accepted values
// must satisfy the decoders' own checks.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"kty":"RSA","key_size":3072}`, `{"kty":"oct","key_size":256,"key_ops":["wrapKey"]}`,
		`{"kty":"RSA","attributes":{"enabled":false,"exp":10,"nbf":5},"tags":{"a":"b"}}`,
		`{"attributes":{"enabled":true},"tags":{}}`, `{"alg":"A256KW","value":"AAECAwQFBgcICQoLDA0ODw"}`,
		`{"permissions":["get","wrapKey"]}`, `{"kty":"EC"}`, `null`, `[]`, `{"value":"=="}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if c, err := decodeCreate(body); err == nil {
			if c.Kty == "" || (c.KeySize != 256 && c.KeySize != 2048 && c.KeySize != 3072 && c.KeySize != 4096) {
				t.Fatalf("accepted create %+v", c)
			}
		} else if _, ok := err.(*badParameter); !ok {
			t.Fatalf("create: error type %T", err)
		}
		if _, err := decodeUpdate(body); err != nil {
			if _, ok := err.(*badParameter); !ok {
				t.Fatalf("update: error type %T", err)
			}
		}
		if op, err := decodeOp(body); err == nil {
			if op.Alg == "" || len(op.Value) == 0 {
				t.Fatalf("accepted op %+v", op)
			}
		}
		if perms, err := decodePolicy(body); err == nil {
			if _, err := normalizePermissions(perms); err != nil {
				t.Fatalf("accepted policy %v: %v", perms, err)
			}
		}
	})
}

// FuzzHandler sends arbitrary method/path/body triples through the full
// handler as the admin: no panic, no 5xx, and every error is AKV-shaped JSON.
func FuzzHandler(f *testing.F) {
	dir := f.TempDir()
	v, err := Open(context.Background(), Config{DataDir: dir, Rand: rand.Reader, Clock: time.Now, URL: "https://127.0.0.1:1"})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	tok, err := v.IssueToken(context.Background(), AdminPrincipal)
	if err != nil {
		f.Fatal(err)
	}
	h := v.Handler()
	f.Add(uint8(1), "/keys/a/create?api-version=7.4", `{"kty":"oct"}`)
	f.Add(uint8(0), "/keys/a/?api-version=7.4", ``)
	f.Add(uint8(1), "/keys/a//wrapkey?api-version=7.4", `{"alg":"A256KW","value":"AAECAwQFBgcICQoLDA0ODw"}`)
	f.Add(uint8(2), "/keys/a/?api-version=7.4", `{"attributes":{"enabled":false}}`)
	f.Add(uint8(3), "/keys/a?api-version=7.4", ``)
	f.Add(uint8(1), "/deletedkeys/a/recover?api-version=7.4", ``)
	f.Add(uint8(4), "/policies/x", `{"permissions":["get"]}`)
	f.Add(uint8(0), "/audit?since=2020-01-01T00:00:00Z", ``)
	f.Add(uint8(0), "/keys?api-version=7.4&$skiptoken=YQ&maxresults=1", ``)
	methods := []string{"GET", "POST", "PATCH", "DELETE", "PUT"}
	f.Fuzz(func(t *testing.T, m uint8, target, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") || len(target) > 512 {
			return
		}
		// Keep RSA generation (slow) out of the fuzz loop.
		if strings.Contains(body, "RSA") {
			return
		}
		req, err := http.NewRequest(methods[int(m)%len(methods)], "https://127.0.0.1:1"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", req.Method, target, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s: error body %q", req.Method, target, rec.Body.Bytes())
			}
		} else if rec.Code != 204 && !json.Valid(bytes.TrimSpace(rec.Body.Bytes())) {
			t.Fatalf("%s %s: non-JSON body %q", req.Method, target, rec.Body.Bytes())
		}
	})
}
