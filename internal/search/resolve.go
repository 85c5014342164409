package search

import (
	"math/big"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/searchparam"
)

var allowedMods = map[string]map[string]bool{
	"string":    {"": true, "exact": true, "contains": true},
	"token":     {"": true, "not": true, "text": true, "of-type": true},
	"reference": {"": true, "identifier": true},
	"date":      {"": true},
	"number":    {"": true},
	"quantity":  {"": true},
	"uri":       {"": true, "below": true, "above": true},
	"composite": {"": true},
}

// resolveSimple turns a raw criterion without chain or _has into a crit
// for parameter p.
func resolveSimple(rc rawCriterion, p *param, base string, now time.Time) (*crit, error) {
	kind := string(p.Type)
	c := &crit{raw: rc, p: p, kind: kind, modifier: rc.modifier}
	if p.Type == searchparam.Special || p.expr == nil {
		return nil, unsupported(rc.key, "parameter %s is not supported by this server", p.Code)
	}
	if rc.modifier == "missing" {
		if len(rc.values) != 1 || (rc.values[0] != "true" && rc.values[0] != "false") {
			return nil, bad(rc.key, ":missing takes true or false")
		}
		c.missing = 2
		if rc.values[0] == "true" {
			c.missing = 1
		}
		return c, nil
	}
	if !allowedMods[kind][rc.modifier] {
		if kind == "reference" && isTypeName(rc.modifier) {
			if !hasTarget(p, rc.modifier) {
				return nil, bad(rc.key, "%s cannot refer to %s", p.Code, rc.modifier)
			}
		} else {
			return nil, unsupported(rc.key, "modifier :%s is not supported for %s parameters", rc.modifier, kind)
		}
	}
	if kind == "composite" {
		for _, comp := range p.comps {
			c.compTypes = append(c.compTypes, comp.typ)
		}
	}
	for _, raw := range rc.values {
		q, err := parseValue(rc.key, kind, rc.modifier, raw, base, now, c.compTypes)
		if err != nil {
			return nil, err
		}
		c.vals = append(c.vals, q)
	}
	return c, nil
}

// parseValue parses one (escaped) value of a parameter of the given type.
func parseValue(name, kind, mod, raw, base string, now time.Time, compTypes []string) (qval, error) {
	var q qval
	switch kind {
	case "string":
		q.s = unescape(raw)
		q.folded = fold(q.s)
		if q.folded == "" {
			return q, bad(name, "empty string value")
		}
	case "token":
		if mod == "text" {
			q.s = unescape(raw)
			q.folded = fold(q.s)
			if q.folded == "" {
				return q, bad(name, "empty text")
			}
			return q, nil
		}
		parts := splitEscaped(raw, '|')
		if mod == "of-type" {
			if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
				return q, bad(name, ":of-type expects system|code|value, got %q", raw)
			}
			q.typeSys, q.typeCode, q.code = unescape(parts[0]), unescape(parts[1]), unescape(parts[2])
			return q, nil
		}
		switch len(parts) {
		case 1:
			q.code = unescape(parts[0])
		case 2:
			q.hasSystem = true
			q.system, q.code = unescape(parts[0]), unescape(parts[1])
			if q.code == "" {
				if q.system == "" {
					return q, bad(name, "token %q has neither system nor code", raw)
				}
				q.systemOnly = true
			}
		default:
			return q, bad(name, "token %q has more than one unescaped '|'", raw)
		}
	case "reference":
		if mod == "identifier" {
			parts := splitEscaped(raw, '|')
			switch len(parts) {
			case 1:
				q.code = unescape(parts[0])
			case 2:
				q.hasSystem = true
				q.system, q.code = unescape(parts[0]), unescape(parts[1])
			default:
				return q, bad(name, "identifier %q has more than one unescaped '|'", raw)
			}
			if q.code == "" {
				return q, bad(name, "identifier %q has no value", raw)
			}
			return q, nil
		}
		v := unescape(raw)
		if base != "" && strings.HasPrefix(v, base+"/") {
			v = strings.TrimPrefix(v, base+"/")
		}
		switch {
		case strings.Contains(v, "://") || strings.HasPrefix(v, "urn:"):
			q.url = v
		case strings.Contains(v, "/"):
			rv := parseRefString(v, "")
			if rv.local() == "" {
				return q, bad(name, "reference %q is not Type/id, an id or an absolute URL", v)
			}
			if isTypeName(mod) && rv.typ != mod {
				return q, bad(name, "reference %q does not match the modifier :%s", v, mod)
			}
			q.local = rv.local()
		default:
			if !validID(v) {
				return q, bad(name, "%q is not a valid id", v)
			}
			if isTypeName(mod) {
				q.local = mod + "/" + v
			} else {
				q.id = v
			}
		}
	case "uri":
		q.s = unescape(raw)
	case "date":
		pre, rest := splitPrefix(raw)
		sp, err := parseDateSpan(unescape(rest))
		if err != nil {
			return q, bad(name, "%q is not a valid date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z|±hh:mm]), optionally after a prefix", raw)
		}
		q.prefix, q.span = pre, sp
		if pre == "ap" {
			gap := now.Sub(sp.low)
			if gap < 0 {
				gap = -gap
			}
			w := gap / 10
			if w < 24*time.Hour {
				w = 24 * time.Hour
			}
			q.approx = span{low: sp.low.Add(-w), high: sp.high.Add(w)}
		}
	case "number", "quantity":
		pre, rest := splitPrefix(raw)
		parts := []string{rest}
		if kind == "quantity" {
			parts = splitEscaped(rest, '|')
			if len(parts) != 1 && len(parts) != 3 {
				return q, bad(name, "quantity %q must be number or number|system|code", raw)
			}
		}
		r, delta, ok := parseDecimal(unescape(parts[0]))
		if !ok {
			return q, bad(name, "%q is not a valid number, optionally after a prefix", raw)
		}
		q.prefix, q.num, q.delta = pre, r, delta
		q.f, _ = r.Float64()
		if len(parts) == 3 {
			q.qsys, q.qcode = unescape(parts[1]), unescape(parts[2])
		}
	case "composite":
		parts := splitEscaped(raw, '$')
		if len(parts) != len(compTypes) {
			return q, bad(name, "composite value %q needs %d '$'-separated parts", raw, len(compTypes))
		}
		for i, p := range parts {
			sub, err := parseValue(name, compTypes[i], "", p, base, now, nil)
			if err != nil {
				return q, err
			}
			if sub.prefix == "" {
				sub.prefix = "eq"
			}
			q.parts = append(q.parts, sub)
		}
	default:
		return q, unsupported(name, "%s parameters are not supported", kind)
	}
	return q, nil
}

// parseDecimal parses a FHIR decimal (optionally with an exponent) and the
// half-width of its precision (0.5 in its last significant place).
func parseDecimal(s string) (*big.Rat, *big.Rat, bool) {
	decimals, exp, ok := decimalSyntax(s)
	if !ok {
		return nil, nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, nil, false
	}
	// delta = 0.5 * 10^(exp - decimals)
	p := exp - decimals
	delta := big.NewRat(1, 2)
	ten := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(p))), nil)
	if p >= 0 {
		delta.Mul(delta, new(big.Rat).SetInt(ten))
	} else {
		delta.Quo(delta, new(big.Rat).SetInt(ten))
	}
	return r, delta, true
}

// decimalSyntax checks that s is a decimal parseDecimal accepts (at most
// 60 digits, an exponent of at most 300) and returns its number of
// fraction digits and its exponent.
func decimalSyntax(s string) (decimals, exp int, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			decimals++
		}
		if decimals == 0 {
			return 0, 0, false
		}
	}
	if digits == 0 || digits+decimals > 60 {
		return 0, 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		neg := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			neg = s[i] == '-'
			i++
		}
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + int(s[i]-'0')
			if n > 300 {
				return 0, 0, false
			}
			i++
		}
		if neg {
			n = -n
		}
		exp = n
	}
	return decimals, exp, i == len(s)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
