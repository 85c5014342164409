package search

import (
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"

	"github.com/kilnhealth/kiln/internal/fhirpath"
)

// tokenValue is one coded value: a Coding, an Identifier, a code, a
// boolean, a ContactPoint value...
type tokenValue struct {
	system    string
	hasSystem bool
	code      string
	text      []string // display, CodeableConcept.text, Identifier.type.text
	// identifier type (for :of-type)
	typeCodes []tokenValue
}

// refValue is one reference.
type refValue struct {
	typ, id string // set when the reference names a resource Type/id
	url     string // absolute or canonical URL (without _history), else ""
	version string // canonical |version
	ident   *tokenValue
}

// local returns "Type/id" or "".
func (r refValue) local() string {
	if r.typ == "" || r.id == "" {
		return ""
	}
	return r.typ + "/" + r.id
}

// numValue is a number or a quantity.
type numValue struct {
	s          string  // the decimal as written
	f          float64 // its nearest float64 (+0 for zero)
	system     string
	code, unit string
}

// values are the extracted values of one parameter on one resource (or of
// one composite component on one node).
type values struct {
	strs    []string
	tokens  []tokenValue
	refs    []refValue
	dates   []span
	nums    []numValue
	uris    []string
	present bool
	qty     bool // nums are quantities (indexed per unit)
}

func (v *values) empty() bool {
	return len(v.strs) == 0 && len(v.tokens) == 0 && len(v.refs) == 0 && len(v.dates) == 0 && len(v.nums) == 0 && len(v.uris) == 0
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func list(m map[string]any, k string) []any {
	switch v := m[k].(type) {
	case []any:
		return v
	case nil:
		return nil
	default:
		return []any{v}
	}
}

// collect adds the values of node n for a parameter of type typ.
func (v *values) collect(typ string, n fhirpath.Node) {
	switch typ {
	case "string":
		v.collectStrings(n.Value)
	case "token":
		v.collectTokens(n)
	case "reference":
		v.collectRefs(n)
	case "date":
		v.collectDates(n)
	case "number", "quantity":
		v.qty = typ == "quantity"
		v.collectNums(n)
	case "uri":
		if s, ok := n.Value.(string); ok {
			v.uris = append(v.uris, s)
		}
	}
	if !v.empty() {
		v.present = true
	}
}

func (v *values) collectStrings(x any) {
	switch t := x.(type) {
	case string:
		if t != "" {
			v.strs = append(v.strs, t)
		}
	case json.Number:
		v.strs = append(v.strs, string(t))
	case map[string]any:
		// HumanName, Address and other complex values: every string part.
		for _, k := range []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country", "value", "display"} {
			for _, e := range list(t, k) {
				if s, ok := e.(string); ok && s != "" {
					v.strs = append(v.strs, s)
				}
			}
		}
	}
}

func (v *values) collectTokens(n fhirpath.Node) {
	switch t := n.Value.(type) {
	case string:
		v.tokens = append(v.tokens, tokenValue{code: t})
	case bool:
		if t {
			v.tokens = append(v.tokens, tokenValue{code: "true"})
		} else {
			v.tokens = append(v.tokens, tokenValue{code: "false"})
		}
	case json.Number:
		v.tokens = append(v.tokens, tokenValue{code: string(t)})
	case map[string]any:
		switch {
		case n.Type == "CodeableConcept" || (n.Type == "" && (t["coding"] != nil || (t["text"] != nil && t["value"] == nil))):
			text := str(t, "text")
			var some bool
			for _, c := range list(t, "coding") {
				if cm, ok := c.(map[string]any); ok {
					tv := coding(cm)
					if text != "" {
						tv.text = append(tv.text, text)
					}
					v.tokens = append(v.tokens, tv)
					some = true
				}
			}
			if !some && text != "" {
				v.tokens = append(v.tokens, tokenValue{text: []string{text}})
			}
		case n.Type == "Identifier" || (n.Type == "" && t["value"] != nil && t["system"] != nil && t["use"] == nil):
			tv := tokenValue{system: str(t, "system"), code: str(t, "value")}
			tv.hasSystem = tv.system != ""
			if ty, ok := t["type"].(map[string]any); ok {
				if s := str(ty, "text"); s != "" {
					tv.text = append(tv.text, s)
				}
				for _, c := range list(ty, "coding") {
					if cm, ok := c.(map[string]any); ok {
						tv.typeCodes = append(tv.typeCodes, coding(cm))
					}
				}
			}
			if tv.code != "" || tv.hasSystem {
				v.tokens = append(v.tokens, tv)
			}
		case n.Type == "ContactPoint":
			if s := str(t, "value"); s != "" {
				v.tokens = append(v.tokens, tokenValue{code: s})
			}
		case n.Type == "Coding" || t["code"] != nil || t["system"] != nil:
			v.tokens = append(v.tokens, coding(t))
		case t["value"] != nil: // Identifier-like or ContactPoint without type
			tv := tokenValue{system: str(t, "system"), code: str(t, "value")}
			tv.hasSystem = tv.system != ""
			v.tokens = append(v.tokens, tv)
		}
	}
}

func coding(m map[string]any) tokenValue {
	tv := tokenValue{system: str(m, "system"), code: str(m, "code")}
	tv.hasSystem = tv.system != ""
	if d := str(m, "display"); d != "" {
		tv.text = append(tv.text, d)
	}
	return tv
}

func (v *values) collectRefs(n fhirpath.Node) {
	switch t := n.Value.(type) {
	case string: // canonical or uri
		v.refs = append(v.refs, parseRefString(t, ""))
	case map[string]any:
		if n.Type == "Attachment" {
			return
		}
		ref := str(t, "reference")
		var rv refValue
		if ref != "" {
			rv = parseRefString(ref, str(t, "type"))
		} else {
			rv.typ = str(t, "type")
		}
		if id, ok := t["identifier"].(map[string]any); ok {
			tv := tokenValue{system: str(id, "system"), code: str(id, "value")}
			tv.hasSystem = tv.system != ""
			rv.ident = &tv
		}
		if ref != "" || rv.ident != nil {
			v.refs = append(v.refs, rv)
		}
	}
}

// parseRefString splits a reference: "Type/id", "Type/id/_history/n",
// "https://host/base/Type/id", a canonical "url|version", "urn:uuid:…".
func parseRefString(ref, declType string) refValue {
	var rv refValue
	if strings.HasPrefix(ref, "#") {
		return rv // contained: not searchable
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	abs := strings.Contains(ref, ":")
	body := ref
	if abs {
		if i := strings.LastIndexByte(ref, '|'); i >= 0 {
			rv.version = ref[i+1:]
			body = ref[:i]
		}
		rv.url = body
	}
	parts := strings.Split(strings.TrimRight(body, "/"), "/")
	if len(parts) >= 2 && isTypeName(parts[len(parts)-2]) && validID(parts[len(parts)-1]) {
		rv.typ, rv.id = parts[len(parts)-2], parts[len(parts)-1]
	} else if !abs && len(parts) == 1 && validID(parts[0]) && declType != "" {
		rv.typ, rv.id = declType, parts[0]
	}
	return rv
}

func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (v *values) collectDates(n fhirpath.Node) {
	switch t := n.Value.(type) {
	case string:
		if sp, err := parseDateSpan(t); err == nil {
			v.dates = append(v.dates, sp)
		}
	case map[string]any:
		if _, ok := t["repeat"]; ok || t["event"] != nil || n.Type == "Timing" {
			v.timing(t)
			return
		}
		// Period (and anything with start/end)
		start, end := str(t, "start"), str(t, "end")
		if start == "" && end == "" {
			return
		}
		v.dates = append(v.dates, period(start, end))
	}
}

func period(start, end string) span {
	sp := span{lowOpen: true, highOpen: true}
	if s, err := parseDateSpan(start); err == nil && start != "" {
		sp.low, sp.lowOpen = s.low, false
	}
	if e, err := parseDateSpan(end); err == nil && end != "" {
		sp.high, sp.highOpen = e.high, false
	}
	return sp
}

// timing indexes a Timing as the span from its first to its last event,
// widened by repeat.boundsPeriod.
func (v *values) timing(t map[string]any) {
	var sp span
	have := false
	widen := func(s span) {
		if !have {
			sp, have = s, true
			return
		}
		if s.lowOpen || (!sp.lowOpen && s.low.Before(sp.low)) {
			sp.low, sp.lowOpen = s.low, s.lowOpen
		}
		if s.highOpen || (!sp.highOpen && s.high.After(sp.high)) {
			sp.high, sp.highOpen = s.high, s.highOpen
		}
	}
	for _, e := range list(t, "event") {
		if s, ok := e.(string); ok {
			if d, err := parseDateSpan(s); err == nil {
				widen(d)
			}
		}
	}
	if rep, ok := t["repeat"].(map[string]any); ok {
		if bp, ok := rep["boundsPeriod"].(map[string]any); ok {
			widen(period(str(bp, "start"), str(bp, "end")))
		}
	}
	if have {
		v.dates = append(v.dates, sp)
	}
}

func (v *values) collectNums(n fhirpath.Node) {
	switch t := n.Value.(type) {
	case json.Number:
		if nv, ok := parseNum(string(t)); ok {
			v.nums = append(v.nums, nv)
		}
	case string:
		if nv, ok := parseNum(t); ok {
			v.nums = append(v.nums, nv)
		}
	case map[string]any:
		if n.Type == "Range" || t["low"] != nil || t["high"] != nil {
			for _, k := range []string{"low", "high"} {
				if q, ok := t[k].(map[string]any); ok {
					v.collectNums(fhirpath.Node{Value: q, Type: "Quantity"})
				}
			}
			return
		}
		num, ok := t["value"].(json.Number)
		if !ok {
			return
		}
		nv, ok := parseNum(string(num))
		if !ok {
			return
		}
		nv.system, nv.code, nv.unit = str(t, "system"), str(t, "code"), str(t, "unit")
		if c := str(t, "currency"); c != "" { // Money
			nv.system, nv.code = "urn:iso:std:iso:4217", c
		}
		v.nums = append(v.nums, nv)
	}
}

// parseNum checks a decimal and converts it to float64 only: indexing
// needs nothing more, and the exact value (rat) is built only when the
// post-filter compares it.
func parseNum(s string) (numValue, bool) {
	if _, _, ok := decimalSyntax(s); !ok {
		return numValue{}, false
	}
	// Correctly rounded like big.Rat.Float64, which this replaces (and
	// infinite beyond the float64 range, as it is).
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return numValue{}, false
	}
	if f == 0 {
		f = 0 // big.Rat has no negative zero
	}
	return numValue{s: s, f: f}, true
}

// rat returns the exact value of n.
func (n numValue) rat() *big.Rat {
	r, ok := new(big.Rat).SetString(n.s)
	if !ok { // cannot happen: parseNum checked the syntax
		return new(big.Rat)
	}
	return r
}
