package search

import (
	"slices"
	"strings"

	"github.com/kilnhealth/kiln/internal/searchparam"
)

// Token aliases. Many R4 parameters index nothing their neighbours do not
// already index: Observation's combo-code is "Observation.code |
// Observation.component.code", the union of code and component-code; the
// components of code-value-quantity are exactly the code and value-quantity
// parameters applied to the same Observation. Since a value's tokens depend
// only on the value (and the parameter code fed into the HMAC), such a
// parameter needs no tokens of its own: a query on it asks for the tokens
// of the parameters it is made of, under their codes. For a Synthea vital
// sign that removes more than half of its tokens.
//
// The proof is syntactic, over the official expressions: an expression is
// split at its top-level unions, each part is normalised ("(X as T)" is
// "X.as(T)", spaces dropped) and kept when it belongs to the resource type.
//   - A non-composite parameter P is an alias of the parameters Q of the same
//     type whose part sets are within P's and together make it up exactly
//     (a Q with the same parts as P counts only when its code sorts first,
//     so duplicates alias the first).
//   - A composite component (definition D, expression c, over a composite
//     base with parts B) is an alias of D when every "B.c" part is one of
//     D's parts: D's tokens then cover every component value, a superset the
//     composite post-filter narrows down as it always does.
//
// Aliases are resolved to parameters that are not aliases themselves.

// aliasTable maps, per resource type, a token code (a parameter code, or a
// composite component code "code$i") to the codes whose tokens stand in
// for it. Codes absent from the table index their own tokens.
type aliasTable map[string]map[string][]string

// codes returns the codes whose tokens a query on code of typ uses.
func (a aliasTable) codes(typ, code string) []string {
	if cs, ok := a[typ][code]; ok {
		return cs
	}
	return []string{code}
}

// aliased reports whether code of typ has no tokens of its own.
func (a aliasTable) aliased(typ, code string) bool {
	_, ok := a[typ][code]
	return ok
}

// buildAliases computes the alias table of ps (see above).
func buildAliases(ps *params) aliasTable {
	out := aliasTable{}
	for typ, list := range ps.byType {
		var plain []*param
		parts := map[*param][]string{}
		for _, p := range list {
			if p.expr == nil || p.Type == searchparam.Composite || p.Type == searchparam.Special {
				continue
			}
			if pp := exprPartsFor(p.Expression, typ); len(pp) > 0 {
				plain = append(plain, p)
				parts[p] = pp
			}
		}
		slices.SortFunc(plain, func(a, b *param) int { return strings.Compare(a.Code, b.Code) })
		direct := map[string][]string{}
		for _, p := range plain {
			if cover := coverOf(p, plain, parts); cover != nil {
				direct[p.Code] = cover
			}
		}
		m := map[string][]string{}
		for code := range direct {
			m[code] = resolveAlias(code, direct, map[string]bool{})
		}
		for _, p := range list {
			if p.Type != searchparam.Composite || p.expr == nil {
				continue
			}
			base := exprPartsFor(p.Expression, typ)
			if len(base) == 0 {
				continue
			}
			for i, c := range p.Components {
				def, ok := ps.reg.ByURL(c.Definition)
				if !ok || i >= len(p.comps) {
					continue
				}
				d, ok := list[def.Code]
				if !ok || d.Param != def || d.expr == nil || string(d.Type) != p.comps[i].typ {
					continue
				}
				dparts := exprPartsFor(d.Expression, typ)
				if len(dparts) == 0 || !composedWithin(base, c.Expression, dparts) {
					continue
				}
				m[compCode(p.Code, i)] = resolveAlias(d.Code, direct, map[string]bool{})
			}
		}
		if len(m) > 0 {
			out[typ] = m
		}
	}
	return out
}

// coverOf returns the codes of the other parameters whose parts make up
// p's exactly, or nil.
func coverOf(p *param, plain []*param, parts map[*param][]string) []string {
	want := parts[p]
	covered := map[string]bool{}
	var codes []string
	for _, q := range plain {
		if q == p || q.Type != p.Type {
			continue
		}
		qp := parts[q]
		if !subset(qp, want) {
			continue
		}
		if len(qp) == len(want) && q.Code > p.Code {
			continue // an exact duplicate aliases the one that sorts first
		}
		added := false
		for _, x := range qp {
			if !covered[x] {
				covered[x] = true
				added = true
			}
		}
		if added {
			codes = append(codes, q.Code)
		}
	}
	if len(covered) != len(want) {
		return nil
	}
	return codes
}

// resolveAlias expands code through direct until no alias remains.
func resolveAlias(code string, direct map[string][]string, seen map[string]bool) []string {
	cover, ok := direct[code]
	if !ok || seen[code] {
		return []string{code}
	}
	seen[code] = true
	var out []string
	for _, c := range cover {
		for _, r := range resolveAlias(c, direct, seen) {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return out
}

// composedWithin reports whether every part of "b.comp" for b in base is
// one of within.
func composedWithin(base []string, comp string, within []string) bool {
	cparts := exprParts(comp)
	if len(cparts) == 0 {
		return false
	}
	for _, b := range base {
		for _, c := range cparts {
			if !slices.Contains(within, b+"."+c) {
				return false
			}
		}
	}
	return true
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// exprPartsFor returns the normalised top-level union parts of expr that
// apply to resources of typ (they start with the type name), or nil when
// some part cannot be attributed (a part starting with anything else).
func exprPartsFor(expr, typ string) []string {
	var out []string
	for _, p := range exprParts(expr) {
		head, _, _ := strings.Cut(p, ".")
		switch {
		case head == typ:
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		case head == "" || head[0] < 'A' || head[0] > 'Z' || strings.ContainsAny(head, "()"):
			return nil // not a path from a resource type: no proof
		}
	}
	return out
}

// exprParts splits expr at the union operators outside parentheses and
// strings, and normalises each part: spaces dropped, a whole part "(X as
// T)" written "X.as(T)", outer parentheses of a plain path removed.
func exprParts(expr string) []string {
	var parts []string
	depth, start := 0, 0
	quoted := false
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, normPart(expr[start:i]))
			start = i + 1
		}
	}
	parts = append(parts, normPart(expr[start:]))
	for _, p := range parts {
		if p == "" {
			return nil
		}
	}
	return parts
}

func normPart(p string) string {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "(") && strings.HasSuffix(p, ")") && balanced(p[1:len(p)-1]) {
		inner := strings.TrimSpace(p[1 : len(p)-1])
		if i := strings.LastIndex(inner, " as "); i > 0 && !strings.ContainsAny(inner[:i], "() |") {
			p = inner[:i] + ".as(" + strings.TrimSpace(inner[i+4:]) + ")"
		} else if !strings.ContainsAny(inner, "() |") {
			p = inner
		}
	}
	return strings.ReplaceAll(p, " ", "")
}

// balanced reports whether s's parentheses pair up without closing below
// zero.
func balanced(s string) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}
