package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// fold normalises a string for case- and accent-insensitive matching:
// NFKD, combining marks dropped, lower-cased, runs of white space collapsed
// to one space, trimmed.
func fold(s string) string {
	if f, ok := foldASCII(s); ok {
		return f
	}
	return foldUnicode(s)
}

// foldUnicode is fold for any s.
func foldUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// foldASCII is fold for pure ASCII s, where NFKD changes nothing and
// there are no combining marks; it returns s itself when s is already
// folded. ok is false when s has a non-ASCII byte.
func foldASCII(s string) (string, bool) {
	clean := true // already lower-case, single spaces, trimmed
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return "", false
		case c >= 'A' && c <= 'Z':
			clean = false
		case asciiSpace(c):
			if c != ' ' || i == 0 || i == len(s)-1 || s[i+1] == ' ' {
				clean = false
			}
		}
	}
	if clean {
		return s, true
	}
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if asciiSpace(c) {
			space = len(b) > 0
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b), true
}

// asciiSpace reports whether c is an ASCII byte unicode.IsSpace accepts.
func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// prefixLengths are the rune lengths of the indexed string prefixes.
var prefixLengths = [...]int{1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32}

// prefixes returns the indexed prefixes of a folded string.
func prefixes(f string) []string {
	n := utf8.RuneCountInString(f)
	var out []string
	for _, l := range prefixLengths {
		if l > n {
			break
		}
		out = append(out, runePrefix(f, l))
	}
	return out
}

func runePrefix(s string, n int) string {
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return s[:i]
}

// queryPrefix returns the longest indexed prefix of a folded query string
// and whether it is the whole query (the token match is then exact).
func queryPrefix(f string) (string, bool) {
	n := utf8.RuneCountInString(f)
	best := 0
	for _, l := range prefixLengths {
		if l <= n {
			best = l
		}
	}
	return runePrefix(f, best), best == n
}

// trigrams returns the distinct rune trigrams of a folded string; strings
// shorter than three runes give none.
func trigrams(f string) []string {
	rs := []rune(f)
	seen := map[string]bool{}
	var out []string
	for i := 0; i+3 <= len(rs); i++ {
		t := string(rs[i : i+3])
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// words splits a folded string into words for :text matching.
func words(f string) []string {
	return strings.FieldsFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}
