package resources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Marshal renders a resource with resourceType, id and meta first and the
// other elements in name order (nested objects' keys in byte order, as
// encoding/json sorts map keys), HTML characters unescaped. The output is
// byte for byte what encoding/json with SetEscapeHTML(false) writes for the
// same values; the values fhir.Decode produces (maps, slices, strings,
// json.Number, bools, nil) are written directly, any other type through
// encoding/json.
func Marshal(res map[string]any) ([]byte, error) {
	w := &jsonWriter{buf: make([]byte, 0, 2048)}
	w.buf = append(w.buf, '{')
	n := 0
	for _, k := range [...]string{"resourceType", "id", "meta"} {
		v, ok := res[k]
		if !ok {
			continue
		}
		if n > 0 {
			w.buf = append(w.buf, ',')
		}
		n++
		w.buf = append(w.buf, '"')
		w.buf = append(w.buf, k...)
		w.buf = append(w.buf, '"', ':')
		if err := w.value(v); err != nil {
			return nil, fmt.Errorf("resources: render %s: %w", k, err)
		}
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		switch k {
		case "resourceType", "id", "meta":
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if n > 0 {
			w.buf = append(w.buf, ',')
		}
		n++
		w.buf = appendJSONString(w.buf, k)
		w.buf = append(w.buf, ':')
		if err := w.value(res[k]); err != nil {
			return nil, fmt.Errorf("resources: render: %w", err)
		}
	}
	w.buf = append(w.buf, '}')
	return w.buf, nil
}

// jsonWriter appends JSON values to buf.
type jsonWriter struct {
	buf []byte
	// keys is scratch space for sorting object keys, reused by depth.
	keys [][]string
	// std encodes values of types the writer does not know.
	std *bytes.Buffer
	enc *json.Encoder
}

func (w *jsonWriter) value(v any) error {
	return w.valueAt(v, 0)
}

func (w *jsonWriter) valueAt(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case string:
		w.buf = appendJSONString(w.buf, x)
	case bool:
		if x {
			w.buf = append(w.buf, "true"...)
		} else {
			w.buf = append(w.buf, "false"...)
		}
	case json.Number:
		if x == "" {
			w.buf = append(w.buf, '0')
		} else if validNumber(string(x)) {
			w.buf = append(w.buf, x...)
		} else {
			return w.fallback(v)
		}
	case map[string]any:
		if x == nil {
			w.buf = append(w.buf, "null"...)
			return nil
		}
		for len(w.keys) <= depth {
			w.keys = append(w.keys, nil)
		}
		keys := w.keys[depth][:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.keys[depth] = keys
		w.buf = append(w.buf, '{')
		for i, k := range keys {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = appendJSONString(w.buf, k)
			w.buf = append(w.buf, ':')
			if err := w.valueAt(x[k], depth+1); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, '}')
		clear(keys) // drop references for the collector
	case []any:
		if x == nil {
			w.buf = append(w.buf, "null"...)
			return nil
		}
		w.buf = append(w.buf, '[')
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.valueAt(e, depth+1); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ']')
	default:
		return w.fallback(v)
	}
	return nil
}

// fallback encodes v with encoding/json (HTML characters unescaped).
func (w *jsonWriter) fallback(v any) error {
	if w.enc == nil {
		w.std = &bytes.Buffer{}
		w.enc = json.NewEncoder(w.std)
		w.enc.SetEscapeHTML(false)
	}
	w.std.Reset()
	if err := w.enc.Encode(v); err != nil {
		return err
	}
	w.buf = append(w.buf, bytes.TrimSuffix(w.std.Bytes(), []byte{'\n'})...)
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string escaped exactly as
// encoding/json does with HTML escaping off: \", \\, \b, \f, \n, \r, \t,
// other control characters as \u00XX, invalid UTF-8 bytes as \ufffd, and
// U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return false
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}
