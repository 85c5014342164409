package loader

import "strings"

// bundleHead is what AsTransaction needs of a file: the top-level
// resourceType, type and id strings and the number of elements of the
// top-level entry array.
type bundleHead struct {
	resourceType, typ, id string
	entries               int
}

// maxScanDepth matches encoding/json's nesting limit; deeper input is left
// to encoding/json, which rejects it.
const maxScanDepth = 10000

// scanHead validates data as one JSON value exactly as json.Valid does and
// extracts the bundleHead in the same pass, without building any value.
// It reports ok=false when data is not valid JSON or when its answer could
// differ from json.Unmarshal into AsTransaction's struct: a top-level
// value that is not an object, a top-level key that encoding/json would
// match only case-insensitively or that repeats, one of the three strings
// holding an escape, of another JSON type, or null, or an entry element
// that is not an array. The caller then uses encoding/json.
func scanHead(data []byte) (h bundleHead, ok bool) {
	s := scanner{data: data}
	s.space()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return h, false
	}
	s.pos++
	var seen [4]bool // resourceType, type, id, entry
	s.space()
	if s.peek() == '}' {
		s.pos++
	} else {
		for {
			s.space()
			key, plain, good := s.str()
			if !good {
				return h, false
			}
			s.space()
			if s.peek() != ':' {
				return h, false
			}
			s.pos++
			s.space()
			slot := -1
			switch {
			case !plain:
				// An escaped key might still name one of ours.
				return h, false
			case string(key) == "resourceType":
				slot = 0
			case string(key) == "type":
				slot = 1
			case string(key) == "id":
				slot = 2
			case string(key) == "entry":
				slot = 3
			case foldsTo(string(key), "resourceType", "type", "id", "entry"):
				return h, false
			}
			if slot >= 0 {
				if seen[slot] {
					return h, false
				}
				seen[slot] = true
			}
			switch slot {
			case 0, 1, 2:
				v, plain, good := s.str()
				if !good || !plain {
					return h, false
				}
				switch slot {
				case 0:
					h.resourceType = string(v)
				case 1:
					h.typ = string(v)
				default:
					h.id = string(v)
				}
			case 3:
				if s.peek() != '[' {
					return h, false
				}
				s.pos++
				s.space()
				if s.peek() == ']' {
					s.pos++
					break
				}
				for {
					if !s.value(3) {
						return h, false
					}
					h.entries++
					s.space()
					if s.peek() == ',' {
						s.pos++
						s.space()
						continue
					}
					if s.peek() != ']' {
						return h, false
					}
					s.pos++
					break
				}
			default:
				if !s.value(2) {
					return h, false
				}
			}
			s.space()
			if s.peek() == ',' {
				s.pos++
				continue
			}
			if s.peek() != '}' {
				return h, false
			}
			s.pos++
			break
		}
	}
	s.space()
	return h, s.pos == len(s.data)
}

type scanner struct {
	data []byte
	pos  int
}

// peek returns the current byte, 0 at the end.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// str reads a string at pos and returns its raw bytes (a view of data).
// plain is false when it holds an escape (v is then not decoded).
func (s *scanner) str() (v []byte, plain, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	s.pos++
	start := s.pos
	plain = true
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			v = s.data[start:s.pos]
			s.pos++
			return v, plain, true
		case c == '\\':
			plain = false
			s.pos++
			if s.pos >= len(s.data) {
				return nil, false, false
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if s.pos+5 > len(s.data) {
					return nil, false, false
				}
				for _, h := range s.data[s.pos+1 : s.pos+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, false
					}
				}
				s.pos += 5
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			s.pos++
		}
	}
	return nil, false, false
}

// value skips one JSON value at pos (after white space), checking it.
func (s *scanner) value(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	s.space()
	switch c := s.peek(); {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '{':
		s.pos++
		s.space()
		if s.peek() == '}' {
			s.pos++
			return true
		}
		for {
			s.space()
			if _, _, ok := s.str(); !ok {
				return false
			}
			s.space()
			if s.peek() != ':' {
				return false
			}
			s.pos++
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return true
			default:
				return false
			}
		}
	case c == '[':
		s.pos++
		s.space()
		if s.peek() == ']' {
			s.pos++
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return true
			default:
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.pos++
		if s.digits() == 0 {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

// foldsTo reports whether k equals one of names ignoring case (the
// matching encoding/json does for struct fields).
func foldsTo(k string, names ...string) bool {
	for _, n := range names {
		if strings.EqualFold(k, n) {
			return true
		}
	}
	return false
}

// scanStatuses counts the entries of a response Bundle whose
// response.status starts with "2", in one pass that builds nothing. It
// reports ok=false when the body is not valid JSON, when an entry failed
// (the caller then wants its OperationOutcome), or when its answer could
// differ from json.Unmarshal into countEntries' struct: a key of ours
// written in another case, escaped or repeated, an element of an
// unexpected JSON type or null, or a status holding an escape.
func scanStatuses(data []byte) (n int, ok bool) {
	s := scanner{data: data}
	s.space()
	seenEntry := false
	good := s.object(1, func(key []byte, plain bool) bool {
		switch {
		case !plain || foldsTo(string(key), "entry") && string(key) != "entry":
			return false
		case string(key) != "entry":
			return s.value(2)
		}
		if seenEntry || s.peek() != '[' {
			return false
		}
		seenEntry = true
		return s.array(2, func() bool {
			seenResponse := false
			return s.object(3, func(key []byte, plain bool) bool {
				switch {
				case !plain || foldsTo(string(key), "response") && string(key) != "response":
					return false
				case string(key) != "response":
					return s.value(4)
				}
				if seenResponse || s.peek() != '{' {
					return false
				}
				seenResponse = true
				seenStatus := false
				return s.object(4, func(key []byte, plain bool) bool {
					switch {
					case !plain || foldsTo(string(key), "status", "outcome") && string(key) != "status" && string(key) != "outcome":
						return false
					case string(key) != "status":
						return s.value(5)
					}
					v, plain, good := s.str()
					if seenStatus || !good || !plain || len(v) == 0 || v[0] != '2' {
						return false
					}
					seenStatus = true
					n++
					return true
				}) && seenStatus
			}) && seenResponse
		})
	})
	s.space()
	return n, good && s.pos == len(s.data)
}

// object reads an object at pos, calling member for each key with pos at
// its value (after white space); member must consume the value.
func (s *scanner) object(depth int, member func(key []byte, plain bool) bool) bool {
	if depth > maxScanDepth || s.peek() != '{' {
		return false
	}
	s.pos++
	s.space()
	if s.peek() == '}' {
		s.pos++
		return true
	}
	for {
		s.space()
		key, plain, ok := s.str()
		if !ok {
			return false
		}
		s.space()
		if s.peek() != ':' {
			return false
		}
		s.pos++
		s.space()
		if !member(key, plain) {
			return false
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// array reads an array at pos, calling elem with pos at each element
// (after white space); elem must consume it.
func (s *scanner) array(depth int, elem func() bool) bool {
	if depth > maxScanDepth || s.peek() != '[' {
		return false
	}
	s.pos++
	s.space()
	if s.peek() == ']' {
		s.pos++
		return true
	}
	for {
		s.space()
		if !elem() {
			return false
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return true
		default:
			return false
		}
	}
}
