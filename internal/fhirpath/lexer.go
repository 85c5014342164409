package fhirpath

import (
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tDelimIdent // `quoted` identifier
	tString
	tNumber
	tDate     // @2020-01-01 etc (recognised only to be rejected)
	tConstant // %name
	tSpecial  // $this, $index, $total
	tOp       // punctuation and symbolic operators
)

type token struct {
	kind tokKind
	text string // identifier name, decoded string, number text, or operator
	pos  int
}

type lexer struct {
	src  string
	pos  int
	toks []token
}

// lex splits src into tokens. It returns a *SyntaxError for malformed input.
func lex(src string) ([]token, error) {
	l := &lexer{src: src}
	for {
		if err := l.skipSpace(); err != nil {
			return nil, err
		}
		if l.pos >= len(src) {
			l.toks = append(l.toks, token{kind: tEOF, pos: l.pos})
			return l.toks, nil
		}
		if err := l.next(); err != nil {
			return nil, err
		}
	}
}

func (l *lexer) errAt(pos int, msg string) error {
	return &SyntaxError{Expr: l.src, Pos: pos, Msg: msg}
}

func (l *lexer) skipSpace() error {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.pos++
		case strings.HasPrefix(l.src[l.pos:], "//"):
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case strings.HasPrefix(l.src[l.pos:], "/*"):
			end := strings.Index(l.src[l.pos+2:], "*/")
			if end < 0 {
				return l.errAt(l.pos, "unterminated comment")
			}
			l.pos += 2 + end + 2
		default:
			return nil
		}
	}
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

var twoCharOps = []string{"<=", ">=", "!=", "!~"}

func (l *lexer) next() error {
	start := l.pos
	c := l.src[l.pos]
	switch {
	case isIdentStart(c):
		for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
			l.pos++
		}
		l.toks = append(l.toks, token{kind: tIdent, text: l.src[start:l.pos], pos: start})
		return nil
	case isDigit(c):
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
		if l.pos+1 < len(l.src) && l.src[l.pos] == '.' && isDigit(l.src[l.pos+1]) {
			l.pos++
			for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
				l.pos++
			}
		}
		l.toks = append(l.toks, token{kind: tNumber, text: l.src[start:l.pos], pos: start})
		return nil
	case c == '\'' || c == '`':
		s, err := l.quoted(c)
		if err != nil {
			return err
		}
		k := tString
		if c == '`' {
			k = tDelimIdent
		}
		l.toks = append(l.toks, token{kind: k, text: s, pos: start})
		return nil
	case c == '%':
		l.pos++
		if l.pos < len(l.src) && l.src[l.pos] == '`' {
			s, err := l.quoted('`')
			if err != nil {
				return err
			}
			l.toks = append(l.toks, token{kind: tConstant, text: s, pos: start})
			return nil
		}
		if l.pos < len(l.src) && l.src[l.pos] == '\'' {
			s, err := l.quoted('\'')
			if err != nil {
				return err
			}
			l.toks = append(l.toks, token{kind: tConstant, text: s, pos: start})
			return nil
		}
		b := l.pos
		for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
			l.pos++
		}
		if b == l.pos {
			return l.errAt(start, "expected a name after %")
		}
		l.toks = append(l.toks, token{kind: tConstant, text: l.src[b:l.pos], pos: start})
		return nil
	case c == '$':
		l.pos++
		b := l.pos
		for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
			l.pos++
		}
		name := l.src[b:l.pos]
		if name != "this" && name != "index" && name != "total" {
			return l.errAt(start, "unknown special variable $"+name)
		}
		l.toks = append(l.toks, token{kind: tSpecial, text: name, pos: start})
		return nil
	case c == '@':
		l.pos++
		for l.pos < len(l.src) && (isIdentPart(l.src[l.pos]) || strings.IndexByte("-:.+", l.src[l.pos]) >= 0) {
			l.pos++
		}
		l.toks = append(l.toks, token{kind: tDate, text: l.src[start:l.pos], pos: start})
		return nil
	}
	for _, op := range twoCharOps {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += 2
			l.toks = append(l.toks, token{kind: tOp, text: op, pos: start})
			return nil
		}
	}
	if strings.IndexByte(".,()[]{}|=~<>+-*/&", c) >= 0 {
		l.pos++
		l.toks = append(l.toks, token{kind: tOp, text: string(c), pos: start})
		return nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return l.errAt(start, "unexpected character "+quoteRune(r))
}

func quoteRune(r rune) string {
	if r == utf8.RuneError {
		return "(invalid UTF-8)"
	}
	return "'" + string(r) + "'"
}

// quoted reads a string or delimited identifier closed by q, decoding the
// FHIRPath escapes.
func (l *lexer) quoted(q byte) (string, error) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for {
		if l.pos >= len(l.src) {
			return "", l.errAt(start, "unterminated literal")
		}
		c := l.src[l.pos]
		if c == q {
			l.pos++
			return b.String(), nil
		}
		if c != '\\' {
			b.WriteByte(c)
			l.pos++
			continue
		}
		if l.pos+1 >= len(l.src) {
			return "", l.errAt(l.pos, "unterminated escape")
		}
		e := l.src[l.pos+1]
		l.pos += 2
		switch e {
		case '\'', '"', '`', '\\', '/':
			b.WriteByte(e)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if l.pos+4 > len(l.src) {
				return "", l.errAt(l.pos-2, "short \\u escape")
			}
			var v rune
			for _, h := range l.src[l.pos : l.pos+4] {
				v <<= 4
				switch {
				case h >= '0' && h <= '9':
					v |= h - '0'
				case h >= 'a' && h <= 'f':
					v |= h - 'a' + 10
				case h >= 'A' && h <= 'F':
					v |= h - 'A' + 10
				default:
					return "", l.errAt(l.pos-2, "bad \\u escape")
				}
			}
			b.WriteRune(v)
			l.pos += 4
		default:
			return "", l.errAt(l.pos-2, "unknown escape \\"+string(e))
		}
	}
}
