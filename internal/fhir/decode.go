package fhir

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of JSON objects and arrays Decode accepts.
// FHIR resources seldom exceed 20; the limit keeps hostile input from
// exhausting the stack.
const MaxDepth = 256

// DecodeError reports malformed JSON. Offset is the byte offset of the
// problem in the input; Line and Column (1-based, column in bytes) locate it
// for humans.
type DecodeError struct {
	Offset int
	Line   int
	Column int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("fhir: invalid JSON at line %d, column %d (byte %d): %s", e.Line, e.Column, e.Offset, e.Msg)
}

// Decode parses data as one JSON object, the shape of a FHIR resource, and
// returns it as nested map[string]any / []any / string / bool / nil /
// json.Number values. Numbers keep their exact text, so decimal precision
// survives a round trip. It is stricter than encoding/json: it rejects
// duplicate keys, invalid UTF-8 (raw or as lone \u surrogates), control
// characters in strings, trailing data other than white space, a top-level
// value that is not an object, and nesting deeper than MaxDepth. The error
// is a *DecodeError. Decode does not check the content against the FHIR
// model; call Model.Validate for that.
func Decode(data []byte) (map[string]any, error) {
	d := decoder{data: data}
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.errorf("empty input, expected a JSON object")
	}
	if d.data[d.pos] != '{' {
		return nil, d.errorf("a resource must be a JSON object")
	}
	v, err := d.object(1)
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos < len(d.data) {
		return nil, d.errorf("unexpected data after the top-level object")
	}
	return v, nil
}

type decoder struct {
	data []byte
	pos  int
	// keys interns object keys, which repeat heavily in FHIR JSON
	// ("system", "code", "url", ...): a small direct-mapped cache indexed
	// by a hash of the key bytes.
	keys [128]string
}

// intern returns b as a string, reusing an earlier allocation for the same
// bytes when the cache holds one.
func (d *decoder) intern(b []byte) string {
	if len(b) > 32 {
		return string(b)
	}
	h := uint32(2166136261)
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &d.keys[h%uint32(len(d.keys))]
	if *slot == string(b) {
		return *slot
	}
	*slot = string(b)
	return *slot
}

func (d *decoder) errorf(format string, args ...any) *DecodeError {
	return d.errorAt(d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) errorAt(off int, msg string) *DecodeError {
	if off > len(d.data) {
		off = len(d.data)
	}
	line, col := 1, 1
	for i := 0; i < off; i++ {
		if d.data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &DecodeError{Offset: off, Line: line, Column: col, Msg: msg}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of input, expected a value")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		return nil, d.errorf("unexpected character %q, expected a value", rune(c))
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return d.errorf("invalid literal, expected %q", lit)
	}
	d.pos += len(lit)
	return nil
}

func (d *decoder) object(depth int) (map[string]any, error) {
	if depth > MaxDepth {
		return nil, d.errorf("nesting deeper than %d", MaxDepth)
	}
	d.pos++ // '{'
	m := make(map[string]any, 8)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in object")
		}
		if d.data[d.pos] != '"' {
			return nil, d.errorf("expected a string key in object")
		}
		keyOff := d.pos
		key, err := d.key()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, d.errorAt(keyOff, fmt.Sprintf("duplicate key %q", key))
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("expected ':' after object key")
		}
		d.pos++
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[key] = v
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return m, nil
		default:
			return nil, d.errorf("expected ',' or '}' in object")
		}
	}
}

func (d *decoder) array(depth int) ([]any, error) {
	if depth > MaxDepth {
		return nil, d.errorf("nesting deeper than %d", MaxDepth)
	}
	d.pos++ // '['
	a := make([]any, 0, 4)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return a, nil
	}
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return a, nil
		default:
			return nil, d.errorf("expected ',' or ']' in array")
		}
	}
}

func (d *decoder) number() (json.Number, error) {
	start := d.pos
	p := d.pos
	if p < len(d.data) && d.data[p] == '-' {
		p++
	}
	switch {
	case p < len(d.data) && d.data[p] == '0':
		p++
	case p < len(d.data) && d.data[p] >= '1' && d.data[p] <= '9':
		for p < len(d.data) && d.data[p] >= '0' && d.data[p] <= '9' {
			p++
		}
	default:
		d.pos = p
		return "", d.errorf("invalid number")
	}
	if p < len(d.data) && d.data[p] == '.' {
		p++
		if p >= len(d.data) || d.data[p] < '0' || d.data[p] > '9' {
			d.pos = p
			return "", d.errorf("invalid number: expected a digit after '.'")
		}
		for p < len(d.data) && d.data[p] >= '0' && d.data[p] <= '9' {
			p++
		}
	}
	if p < len(d.data) && (d.data[p] == 'e' || d.data[p] == 'E') {
		p++
		if p < len(d.data) && (d.data[p] == '+' || d.data[p] == '-') {
			p++
		}
		if p >= len(d.data) || d.data[p] < '0' || d.data[p] > '9' {
			d.pos = p
			return "", d.errorf("invalid number: expected a digit in the exponent")
		}
		for p < len(d.data) && d.data[p] >= '0' && d.data[p] <= '9' {
			p++
		}
	}
	d.pos = p
	return json.Number(d.data[start:p]), nil
}

// key parses an object key: like str, but interned when it has no escapes.
func (d *decoder) key() (string, error) {
	start := d.pos + 1
	for p := start; p < len(d.data); p++ {
		c := d.data[p]
		if c == '"' {
			d.pos = p + 1
			return d.intern(d.data[start:p]), nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return d.str()
}

// str parses a JSON string starting at the opening quote.
func (d *decoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	// Fast path: no escapes, plain ASCII or valid UTF-8.
	for p := d.pos; p < len(d.data); {
		c := d.data[p]
		switch {
		case c == '"':
			s := string(d.data[start:p])
			d.pos = p + 1
			return s, nil
		case c == '\\':
			return d.strSlow(start)
		case c < 0x20:
			d.pos = p
			return "", d.errorf("control character %#02x in string must be escaped", c)
		case c < utf8.RuneSelf:
			p++
		default:
			r, size := utf8.DecodeRune(d.data[p:])
			if r == utf8.RuneError && size <= 1 {
				d.pos = p
				return "", d.errorf("invalid UTF-8 in string")
			}
			p += size
		}
	}
	d.pos = len(d.data)
	return "", d.errorf("unterminated string")
}

func (d *decoder) strSlow(start int) (string, error) {
	var b strings.Builder
	p := start
	for p < len(d.data) {
		c := d.data[p]
		switch {
		case c == '"':
			d.pos = p + 1
			return b.String(), nil
		case c == '\\':
			if p+1 >= len(d.data) {
				d.pos = p
				return "", d.errorf("unterminated escape in string")
			}
			e := d.data[p+1]
			p += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := hex4(d.data, p)
				if !ok {
					d.pos = p - 2
					return "", d.errorf("invalid \\u escape")
				}
				p += 4
				if utf16.IsSurrogate(r) {
					var r2 rune = -1
					if p+1 < len(d.data) && d.data[p] == '\\' && d.data[p+1] == 'u' {
						r2, ok = hex4(d.data, p+2)
						if !ok {
							r2 = -1
						}
					}
					dec := utf16.DecodeRune(r, r2)
					if dec == utf8.RuneError {
						d.pos = p - 6
						return "", d.errorf("invalid UTF-16 surrogate in \\u escape")
					}
					p += 6
					r = dec
				}
				b.WriteRune(r)
			default:
				d.pos = p - 2
				return "", d.errorf("invalid escape \\%c in string", rune(e))
			}
		case c < 0x20:
			d.pos = p
			return "", d.errorf("control character %#02x in string must be escaped", c)
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p++
		default:
			r, size := utf8.DecodeRune(d.data[p:])
			if r == utf8.RuneError && size <= 1 {
				d.pos = p
				return "", d.errorf("invalid UTF-8 in string")
			}
			b.Write(d.data[p : p+size])
			p += size
		}
	}
	d.pos = len(d.data)
	return "", d.errorf("unterminated string")
}

func hex4(b []byte, p int) (rune, bool) {
	if p+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[p : p+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
