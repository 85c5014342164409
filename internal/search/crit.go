package search

import (
	"math"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kilnhealth/kiln/internal/searchparam"
)

// tok names one blind token before it is keyed: the parameter code (or
// composite component code), the kind and the value.
type tok struct{ code, kind, value string }

// clause is an OR-set of tokens.
type clause []tok

// qval is one parsed query value (one of an OR list).
type qval struct {
	// string
	s, folded string
	// token
	system, code  string
	hasSystem     bool // a '|' was present
	systemOnly    bool // "system|"
	typeSys       string
	typeCode      string
	identOnlyCode bool
	// reference
	local, id, url string
	// date
	prefix string
	span   span
	approx span // ap: the widened span
	// number / quantity
	num   *big.Rat
	f     float64
	delta *big.Rat // half-width of the value's precision
	qsys  string
	qcode string
	// composite
	parts []qval
}

// crit is a criterion resolved against one resource type.
type crit struct {
	raw      rawCriterion
	p        *param
	kind     string // parameter type
	modifier string
	vals     []qval
	missing  int // 0: not :missing, 1: true, 2: false
	// refSet holds the allowed Type/id of a chain's reference.
	refSet map[string]bool
	// idSet holds the allowed ids of a _has criterion.
	idSet map[string]bool
	// isHas marks a _has criterion (matched by id).
	isHas bool
	// compTypes are the component types of a composite.
	compTypes []string
	// compartment: any of these reference parameters points to owner, or
	// the resource is the owner itself.
	compParams []*param
	owner      string // "Type/id"
	self       bool   // the searched type is the compartment type
}

// compartmentCrit builds the criterion "in compartment comp" for typ; nil
// when typ has no link to the compartment.
func compartmentCrit(ps *params, comp *compartmentSpec, typ string) *crit {
	c := &crit{owner: comp.typ + "/" + comp.id, self: typ == comp.typ}
	for _, code := range compartments[comp.typ][typ] {
		if p, ok := ps.lookup(typ, code); ok && p.Type == searchparam.Reference && p.expr != nil {
			c.compParams = append(c.compParams, p)
		}
	}
	if len(c.compParams) == 0 && typ != comp.typ {
		return nil
	}
	return c
}

// maxClauseTokens bounds the size of one OR-set sent to the store; larger
// sets (big chains) are left to the post-filter.
const maxClauseTokens = 5000

// plan returns the clauses of c (AND of OR-sets) and whether the token
// match alone is exactly c's FHIR semantics.
func (c *crit) plan() ([]clause, bool) {
	if c.owner != "" {
		cl := clause{}
		for _, p := range c.compParams {
			cl = append(cl, tok{p.Code, kRef, c.owner})
		}
		if c.self { // the owner itself
			_, id, _ := strings.Cut(c.owner, "/")
			cl = append(cl, tok{"_id", kTokC, id})
		}
		return []clause{cl}, true
	}
	if c.missing == 1 {
		return nil, false
	}
	if c.missing == 2 {
		return []clause{{{c.p.Code, kPresent, ""}}}, true
	}
	if c.isHas {
		if len(c.idSet) > maxClauseTokens {
			return nil, false
		}
		cl := clause{}
		for id := range c.idSet {
			cl = append(cl, tok{"_id", kTokC, id})
		}
		return []clause{cl}, true
	}
	if c.refSet != nil {
		if len(c.refSet) > maxClauseTokens {
			return nil, false
		}
		cl := clause{}
		for r := range c.refSet {
			cl = append(cl, tok{c.p.Code, kRef, r})
		}
		return []clause{cl}, true
	}
	var per [][]clause
	exact := true
	for _, v := range c.vals {
		cls, ex := c.valuePlan(c.p.Code, c.kind, c.modifier, v)
		if len(cls) == 0 && !ex {
			return nil, false // one value without constraint: the OR has none
		}
		exact = exact && ex
		per = append(per, cls)
	}
	if len(per) == 1 {
		return per[0], exact
	}
	var union clause
	for _, cls := range per {
		if len(cls) == 0 {
			return nil, false
		}
		if len(cls) > 1 {
			exact = false
		}
		union = append(union, cls[0]...)
	}
	return []clause{union}, exact
}

// valuePlan gives the clauses for one value; (nil, false) means no
// constraint.
func (c *crit) valuePlan(code, kind, mod string, v qval) ([]clause, bool) {
	switch kind {
	case "string":
		switch mod {
		case "exact":
			return []clause{{{code, kStrExact, v.s}}}, true
		case "contains":
			tris := trigrams(v.folded)
			var out []clause
			for _, t := range tris {
				out = append(out, clause{{code, kStrTri, t}})
			}
			return out, false
		default:
			p, whole := queryPrefix(v.folded)
			if p == "" {
				return nil, false
			}
			return []clause{{{code, kStrPre, p}}}, whole
		}
	case "token":
		switch mod {
		case "not":
			return nil, false
		case "text":
			ws := words(v.folded)
			if len(ws) == 0 {
				return nil, false
			}
			if utf8.RuneCountInString(ws[0]) < 3 {
				return nil, false
			}
			return []clause{{{code, kTokText, textKey(ws[0])}}}, false
		case "of-type":
			return []clause{{{code, kTokType, v.typeSys + "|" + v.typeCode + "|" + v.code}}}, true
		}
		switch {
		case v.systemOnly:
			return []clause{{{code, kTokS, v.system}}}, true
		case v.hasSystem && v.system == "":
			return []clause{{{code, kTokNC, v.code}}}, true
		case v.hasSystem:
			return []clause{{{code, kTokSC, v.system + "|" + v.code}}}, true
		default:
			return []clause{{{code, kTokC, v.code}}}, true
		}
	case "reference":
		switch {
		case mod == "identifier":
			if v.hasSystem {
				return []clause{{{code, kRefIdent, v.system + "|" + v.code}}}, v.system != ""
			}
			return []clause{{{code, kRefIdV, v.code}}}, true
		case v.local != "":
			return []clause{{{code, kRef, v.local}}}, true
		case v.url != "":
			return []clause{{{code, kRefURL, v.url}}}, true
		default:
			return []clause{{{code, kRefID, v.id}}}, true
		}
	case "uri":
		switch mod {
		case "below":
			return []clause{{{code, kURIBelow, strings.TrimRight(v.s, "/")}}}, true
		case "above":
			cl := clause{}
			for _, p := range uriPrefixes(v.s) {
				cl = append(cl, tok{code, kURI, p})
			}
			cl = append(cl, tok{code, kURI, v.s})
			return []clause{cl}, false
		}
		return []clause{{{code, kURI, v.s}}}, true
	case "date":
		return datePlan(code, v)
	case "number", "quantity":
		return numPlan(code, kind, v)
	case "composite":
		var out []clause
		for i, part := range v.parts {
			cls, _ := c.valuePlan(compCode(code, i), c.compTypes[i], "", part)
			out = append(out, cls...)
		}
		return out, false
	}
	return nil, false
}

const maxDay = uint64(1)<<dayBits - 1

func dayAligned(s span) bool {
	return !s.lowOpen && !s.highOpen && s.low.Year() >= 1 && s.high.Year() <= 2800 &&
		s.low.Equal(s.low.Truncate(24*time.Hour)) && s.high.Equal(s.high.Truncate(24*time.Hour)) &&
		s.low.Hour() == 0 && s.high.Hour() == 0 && s.low.Minute() == 0 && s.high.Minute() == 0
}

func datePlan(code string, v qval) ([]clause, bool) {
	sl, sh := v.span.dayRange()
	exact := dayAligned(v.span)
	// after is the first day that can hold an instant >= S.high; before is
	// the last day that can hold an instant < S.low (day-aligned values
	// make both exact).
	after := dayNumber(v.span.high)
	before, none := sl, false
	if exact {
		if sl == 0 {
			none = true
		} else {
			before = sl - 1
		}
	}
	rng := func(kind string, a, b uint64, neg bool) (clause, bool) {
		if neg { // a-1 underflow: empty range
			return clause{}, true
		}
		nodes, all := cover(a, b, dayBits)
		if all {
			return nil, false
		}
		cl := clause{}
		for _, n := range nodes {
			cl = append(cl, tok{code, kind, n})
		}
		return cl, true
	}
	one := func(cl clause, ok bool) ([]clause, bool) {
		if !ok {
			return nil, false
		}
		return []clause{cl}, exact
	}
	switch v.prefix {
	case "eq":
		a, ok1 := rng(kDateLow, sl, maxDay, false)
		b, ok2 := rng(kDateHigh, 0, sh, false)
		var out []clause
		if ok1 {
			out = append(out, a)
		}
		if ok2 {
			out = append(out, b)
		}
		if len(out) == 0 {
			return nil, false
		}
		return out, exact && ok1 && ok2
	case "gt":
		return one(rng(kDateHigh, after, maxDay, false))
	case "lt":
		return one(rng(kDateLow, 0, before, none))
	case "ge":
		return one(rng(kDateHigh, sl, maxDay, false))
	case "le":
		return one(rng(kDateLow, 0, sh, false))
	case "sa":
		return one(rng(kDateLow, after, maxDay, false))
	case "eb":
		return one(rng(kDateHigh, 0, before, none))
	case "ap":
		al, ah := v.approx.dayRange()
		a, ok1 := rng(kDateHigh, al, maxDay, false)
		b, ok2 := rng(kDateLow, 0, ah, false)
		var out []clause
		if ok1 {
			out = append(out, a)
		}
		if ok2 {
			out = append(out, b)
		}
		return out, false
	}
	return nil, false // ne
}

func numPlan(code, kind string, v qval) ([]clause, bool) {
	var lo, hi float64
	lof, _ := new(big.Rat).Sub(v.num, v.delta).Float64()
	hif, _ := new(big.Rat).Add(v.num, v.delta).Float64()
	inf := math.Inf(1)
	switch v.prefix {
	case "eq":
		lo, hi = lof, hif
	case "gt", "sa", "ge":
		lo, hi = v.f, inf
	case "lt", "eb", "le":
		lo, hi = -inf, v.f
	case "ap":
		w := new(big.Rat).Abs(v.num)
		w.Mul(w, big.NewRat(1, 10))
		if w.Cmp(v.delta) < 0 {
			w = v.delta
		}
		lo, _ = new(big.Rat).Sub(v.num, w).Float64()
		hi, _ = new(big.Rat).Add(v.num, w).Float64()
	default: // ne
		return nil, false
	}
	nodes, all := cover(numKey(lo), numKey(hi), numBits)
	if all {
		return nil, false
	}
	kindTok, prefix := kNum, ""
	if kind == "quantity" {
		if v.qcode != "" {
			kindTok, prefix = kQtyCode, v.qcode+"|"
		} else {
			kindTok = kQty
		}
	}
	cl := clause{}
	for _, n := range nodes {
		cl = append(cl, tok{code, kindTok, prefix + n})
	}
	return []clause{cl}, false
}

// --- post-filter ---

// matchValues reports whether extracted values v satisfy one query value.
func (c *crit) matchValue(kind, mod string, v *values, q qval) bool {
	switch kind {
	case "string":
		for _, s := range v.strs {
			switch mod {
			case "exact":
				if s == q.s {
					return true
				}
			case "contains":
				if strings.Contains(fold(s), q.folded) {
					return true
				}
			default:
				if strings.HasPrefix(fold(s), q.folded) {
					return true
				}
			}
		}
		return false
	case "token":
		for _, t := range v.tokens {
			if tokenMatch(mod, t, q) {
				return true
			}
		}
		return false
	case "reference":
		for _, r := range v.refs {
			if refMatch(mod, r, q) {
				return true
			}
		}
		return false
	case "uri":
		for _, u := range v.uris {
			switch mod {
			case "below":
				b := strings.TrimRight(q.s, "/")
				if u == b || strings.HasPrefix(u, b+"/") || strings.TrimRight(u, "/") == b {
					return true
				}
			case "above":
				uu := strings.TrimRight(u, "/")
				if q.s == u || q.s == uu || strings.HasPrefix(q.s, uu+"/") {
					return true
				}
			default:
				if u == q.s {
					return true
				}
			}
		}
		return false
	case "date":
		for _, d := range v.dates {
			if dateMatch(q.prefix, d, q) {
				return true
			}
		}
		return false
	case "number", "quantity":
		for _, n := range v.nums {
			if kind == "quantity" && !unitMatch(n, q) {
				continue
			}
			if numMatch(q, n.rat()) {
				return true
			}
		}
		return false
	}
	return false
}

func tokenMatch(mod string, t tokenValue, q qval) bool {
	switch mod {
	case "text":
		for _, txt := range t.text {
			f := fold(txt)
			if strings.HasPrefix(f, q.folded) {
				return true
			}
			for i := 0; i < len(f); i++ {
				if f[i] == ' ' && strings.HasPrefix(f[i+1:], q.folded) {
					return true
				}
			}
		}
		return false
	case "of-type":
		if t.code != q.code {
			return false
		}
		for _, ty := range t.typeCodes {
			if ty.system == q.typeSys && ty.code == q.typeCode {
				return true
			}
		}
		return false
	}
	switch {
	case q.systemOnly:
		return t.hasSystem && t.system == q.system
	case q.hasSystem && q.system == "":
		return !t.hasSystem && t.code == q.code
	case q.hasSystem:
		return t.hasSystem && t.system == q.system && t.code == q.code
	default:
		return t.code == q.code && t.code != ""
	}
}

func refMatch(mod string, r refValue, q qval) bool {
	if mod == "identifier" {
		if r.ident == nil {
			return false
		}
		if q.hasSystem {
			return r.ident.code == q.code && r.ident.system == q.system
		}
		return r.ident.code == q.code
	}
	switch {
	case q.local != "":
		return r.local() == q.local
	case q.url != "":
		return r.url == q.url || (r.version != "" && r.url+"|"+r.version == q.url)
	default:
		return r.id == q.id && r.id != ""
	}
}

func dateMatch(prefix string, t span, q qval) bool {
	s := q.span
	tlo, thi := t.lo(), t.hi()
	switch prefix {
	case "eq":
		return !tlo.Before(s.low) && !thi.After(s.high)
	case "ne":
		return !(!tlo.Before(s.low) && !thi.After(s.high))
	case "gt":
		return thi.After(s.high)
	case "lt":
		return tlo.Before(s.low)
	case "ge":
		return thi.After(s.low)
	case "le":
		return tlo.Before(s.high)
	case "sa":
		return !tlo.Before(s.high)
	case "eb":
		return !thi.After(s.low)
	case "ap":
		return thi.After(q.approx.low) && tlo.Before(q.approx.high)
	}
	return false
}

func unitMatch(n numValue, q qval) bool {
	if q.qcode == "" && q.qsys == "" {
		return true
	}
	if q.qsys != "" && n.system != q.qsys {
		return false
	}
	if q.qcode == "" {
		return true
	}
	return n.code == q.qcode || (q.qsys == "" && n.unit == q.qcode)
}

func numMatch(q qval, t *big.Rat) bool {
	switch q.prefix {
	case "eq", "ne":
		lo := new(big.Rat).Sub(q.num, q.delta)
		hi := new(big.Rat).Add(q.num, q.delta)
		in := t.Cmp(lo) >= 0 && t.Cmp(hi) < 0
		return in == (q.prefix == "eq")
	case "gt", "sa":
		return t.Cmp(q.num) > 0
	case "lt", "eb":
		return t.Cmp(q.num) < 0
	case "ge":
		return t.Cmp(q.num) >= 0
	case "le":
		return t.Cmp(q.num) <= 0
	case "ap":
		w := new(big.Rat).Abs(q.num)
		w.Mul(w, big.NewRat(1, 10))
		if w.Cmp(q.delta) < 0 {
			w = q.delta
		}
		d := new(big.Rat).Sub(t, q.num)
		return d.Abs(d).Cmp(w) <= 0
	}
	return false
}

// match reports whether res (with store metadata) satisfies c.
func (c *crit) match(ps *params, res map[string]any, typ, id string) bool {
	if c.owner != "" {
		if typ+"/"+id == c.owner {
			return true
		}
		for _, p := range c.compParams {
			v := ps.extract(p, res)
			for _, r := range v.refs {
				if r.local() == c.owner {
					return true
				}
			}
		}
		return false
	}
	if c.isHas {
		return c.idSet[id]
	}
	if c.p.Type == searchparam.Composite {
		rows := ps.extractComposite(c.p, res)
		if c.missing != 0 {
			return (len(rows) == 0) == (c.missing == 1)
		}
		for _, q := range c.vals {
			for _, row := range rows {
				ok := true
				for i := range row {
					if i >= len(q.parts) || !c.matchValue(c.compTypes[i], "", &row[i], q.parts[i]) {
						ok = false
						break
					}
				}
				if ok {
					return true
				}
			}
		}
		return false
	}
	v := ps.extract(c.p, res)
	if c.missing != 0 {
		return v.present == (c.missing == 2)
	}
	if c.refSet != nil {
		for _, r := range v.refs {
			if c.refSet[r.local()] {
				return true
			}
		}
		return false
	}
	if c.kind == "token" && c.modifier == "not" {
		for _, q := range c.vals {
			if c.matchValue("token", "", &v, q) {
				return false
			}
		}
		return true
	}
	for _, q := range c.vals {
		if c.matchValue(c.kind, c.modifier, &v, q) {
			return true
		}
	}
	return false
}
