package fhir

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// primitive validates a JSON value against a FHIR primitive type.
func (v *validator) primitive(td *typeDef, val any) {
	switch td.prim {
	case pBoolean:
		if _, ok := val.(bool); !ok {
			v.add(CodeStructure, "expected a JSON boolean for boolean, found %s", jsonKind(val))
		}
		return
	case pInteger, pPositiveInt, pUnsignedInt, pDecimal:
		text, ok := numberText(val)
		if !ok {
			v.add(CodeStructure, "expected a JSON number for %s, found %s", td.name, jsonKind(val))
			return
		}
		if msg := checkNumber(td.prim, text); msg != "" {
			v.add(CodeValue, "invalid %s %s: %s", td.name, text, msg)
		}
		return
	}
	s, ok := val.(string)
	if !ok {
		v.add(CodeStructure, "expected a JSON string for %s, found %s", td.name, jsonKind(val))
		return
	}
	if msg := CheckPrimitive(td.name, s); msg != "" {
		v.add(CodeValue, "invalid %s %s: %s", td.name, quoteShort(s), msg)
		return
	}
	if td.prim == pXHTML {
		errMsg, warnMsg := checkXHTML(s)
		switch {
		case errMsg != "" && strings.HasSuffix(errMsg, "(txt-1)"):
			v.add(CodeInvariant, "%s", errMsg)
		case errMsg != "":
			v.add(CodeValue, "%s", errMsg)
		case warnMsg != "":
			v.warn(CodeInvariant, "%s", warnMsg)
		}
	}
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return strconv.Quote(s)
}

func numberText(val any) (string, bool) {
	switch n := val.(type) {
	case json.Number:
		return string(n), true
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return "NaN", true
		}
		return strconv.FormatFloat(n, 'f', -1, 64), true
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

func checkNumber(k primKind, text string) string {
	switch k {
	case pDecimal:
		if !isDecimal(text) {
			return "not a decimal number"
		}
		return ""
	}
	if !isInteger(text) {
		return "not an integer"
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
		return "out of the 32-bit range"
	}
	switch {
	case k == pPositiveInt && n < 1:
		return "must be at least 1"
	case k == pUnsignedInt && n < 0:
		return "must not be negative"
	}
	return ""
}

// isInteger matches -?([0]|([1-9][0-9]*)).
func isInteger(s string) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	if s[0] == '0' {
		return len(s) == 1
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDecimal matches -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		st := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - st
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if n := digits(); n == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// CheckPrimitive checks the text of a string-valued FHIR primitive (every
// primitive except boolean, integer, positiveInt, unsignedInt and decimal,
// which are JSON booleans and numbers) against its type's rules. It returns
// "" when s is valid, otherwise a short reason. Unknown type names are
// reported as such.
func CheckPrimitive(typeName, s string) string {
	if s == "" {
		return "empty strings are not allowed; omit the element instead"
	}
	switch typeName {
	case "string", "markdown":
		return checkString(s)
	case "xhtml":
		// Narrative is not bound by the 1 MB string limit.
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return "control characters other than tab, CR and LF are not allowed"
			}
		}
		return ""
	case "code":
		return checkCode(s)
	case "id":
		if len(s) > 64 {
			return "longer than 64 characters"
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return "only A-Z, a-z, 0-9, '-' and '.' are allowed"
			}
		}
		return ""
	case "uri", "url", "canonical":
		if len(s) > maxStringLen {
			return "longer than 1 MB"
		}
		for _, r := range s {
			if isSpace(r) {
				return "white space is not allowed"
			}
		}
		return ""
	case "oid":
		return checkOID(s)
	case "uuid":
		return checkUUID(s)
	case "date":
		return checkDateTime(s, dtDate)
	case "dateTime":
		return checkDateTime(s, dtDateTime)
	case "instant":
		return checkDateTime(s, dtInstant)
	case "time":
		return checkTime(s)
	case "base64Binary":
		return checkBase64(s)
	case "boolean", "integer", "positiveInt", "unsignedInt", "decimal":
		return typeName + " is not a string type in JSON"
	}
	return "unknown primitive type " + typeName
}

// isSpace is the \s class of the FHIR regexes: [ \t\n\x0B\f\r].
func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func checkString(s string) string {
	if len(s) > maxStringLen {
		return "longer than 1 MB"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return "control characters other than tab, CR and LF are not allowed"
		}
	}
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	return ""
}

// checkCode matches [^\s]+(\s[^\s]+)*: no leading, trailing or doubled white space.
func checkCode(s string) string {
	if msg := checkString(s); msg != "" {
		return msg
	}
	prevSpace := true
	for _, r := range s {
		sp := isSpace(r)
		if sp && prevSpace {
			return "leading or repeated white space is not allowed"
		}
		prevSpace = sp
	}
	if prevSpace {
		return "trailing white space is not allowed"
	}
	return ""
}

// checkOID matches urn:oid:[0-2](\.(0|[1-9][0-9]*))+.
func checkOID(s string) string {
	const bad = "must look like urn:oid:1.2.3"
	rest, ok := strings.CutPrefix(s, "urn:oid:")
	if !ok || len(rest) < 3 || rest[0] < '0' || rest[0] > '2' || rest[1] != '.' {
		return bad
	}
	for _, arc := range strings.Split(rest[2:], ".") {
		if arc == "" || !isInteger(arc) || arc[0] == '-' {
			return bad
		}
	}
	return ""
}

// checkUUID matches urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}.
func checkUUID(s string) string {
	const bad = "must look like urn:uuid: followed by a lower-case UUID"
	rest, ok := strings.CutPrefix(s, "urn:uuid:")
	if !ok || len(rest) != 36 {
		return bad
	}
	for i := 0; i < 36; i++ {
		c := rest[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return bad
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return bad
			}
		}
	}
	return ""
}

// checkBase64 matches (\s*([0-9a-zA-Z\+/=]){4}\s*)+ and additionally
// requires '=' only as final padding.
func checkBase64(s string) string {
	n, pad := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			continue
		case c == '=':
			pad++
			if pad > 2 {
				return "too much '=' padding"
			}
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/':
			if pad > 0 {
				return "'=' is only allowed at the end"
			}
		default:
			return "not base64 (invalid character)"
		}
		n++
	}
	if n == 0 || n%4 != 0 {
		return "not base64 (length is not a multiple of 4)"
	}
	return ""
}

type dtKind int

const (
	dtDate dtKind = iota
	dtDateTime
	dtInstant
)

func digitsAt(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+n; j++ {
		c := s[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// checkDateTime validates date (YYYY, YYYY-MM, YYYY-MM-DD), dateTime (those
// or a full date with time and zone) and instant (full date, time and zone).
// Year 0000 is not allowed, days must exist in their month.
func checkDateTime(s string, k dtKind) string {
	const (
		badDate     = "expected YYYY, YYYY-MM or YYYY-MM-DD"
		badDateTime = "expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss(.sss)(Z|+hh:mm)"
		badInstant  = "expected YYYY-MM-DDThh:mm:ss(.sss)(Z|+hh:mm)"
	)
	bad := badDate
	switch k {
	case dtDateTime:
		bad = badDateTime
	case dtInstant:
		bad = badInstant
	}
	year, ok := digitsAt(s, 0, 4)
	if !ok {
		return bad
	}
	if year == 0 {
		return "year 0000 is not allowed"
	}
	if len(s) == 4 {
		if k == dtInstant {
			return bad
		}
		return ""
	}
	if s[4] != '-' {
		return bad
	}
	month, ok := digitsAt(s, 5, 2)
	if !ok || month < 1 || month > 12 {
		return bad
	}
	if len(s) == 7 {
		if k == dtInstant {
			return bad
		}
		return ""
	}
	if len(s) < 10 || s[7] != '-' {
		return bad
	}
	day, ok := digitsAt(s, 8, 2)
	if !ok || day < 1 || day > 31 {
		return bad
	}
	if day > daysIn(year, month) {
		return "day does not exist in that month"
	}
	if len(s) == 10 {
		if k == dtInstant {
			return bad
		}
		return ""
	}
	if k == dtDate || s[10] != 'T' {
		return bad
	}
	rest := s[11:]
	n, msg := timeLen(rest)
	if msg != "" {
		return bad
	}
	zone := rest[n:]
	switch {
	case zone == "Z":
	case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':':
		hh, ok1 := digitsAt(zone, 1, 2)
		mm, ok2 := digitsAt(zone, 4, 2)
		if !ok1 || !ok2 || mm > 59 || hh > 14 || (hh == 14 && mm != 0) {
			return bad
		}
	case zone == "":
		return "a time needs a time zone (Z or +hh:mm)"
	default:
		return bad
	}
	return ""
}

// timeLen parses hh:mm:ss(.fff)? at the start of s and returns its length.
func timeLen(s string) (int, string) {
	const bad = "expected hh:mm:ss(.sss)"
	hh, ok1 := digitsAt(s, 0, 2)
	mm, ok2 := digitsAt(s, 3, 2)
	ss, ok3 := digitsAt(s, 6, 2)
	if !ok1 || !ok2 || !ok3 || s[2] != ':' || s[5] != ':' || hh > 23 || mm > 59 || ss > 60 {
		return 0, bad
	}
	n := 8
	if n < len(s) && s[n] == '.' {
		n++
		st := n
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == st {
			return 0, bad
		}
	}
	return n, ""
}

func checkTime(s string) string {
	n, msg := timeLen(s)
	if msg != "" {
		return msg
	}
	if n != len(s) {
		return "expected hh:mm:ss(.sss) with no time zone"
	}
	return ""
}
