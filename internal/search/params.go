package search

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kilnhealth/kiln/internal/fhirpath"
	"github.com/kilnhealth/kiln/internal/searchparam"
)

// param is a compiled search parameter.
type param struct {
	*searchparam.Param
	expr    *fhirpath.Expr
	comps   []component // composite only
	purpose string      // the seal.Binding purpose of its sort values
}

type component struct {
	typ  string
	expr *fhirpath.Expr
	code string // the token code of the component: compCode(param code, index)
}

// sortable reports whether the parameter gets a sealed sort value.
func (p *param) sortable() bool {
	switch p.Type {
	case searchparam.String, searchparam.Token, searchparam.Date, searchparam.Number,
		searchparam.Quantity, searchparam.Reference, searchparam.URI:
		return p.expr != nil
	}
	return false
}

// params is the compiled registry: every parameter whose expression
// compiles, per resource type. It is immutable after newParams.
type params struct {
	reg    *searchparam.Registry
	env    fhirpath.Env
	byType map[string]map[string]*param
	lists  map[string][]*param // sorted by code, indexable only
	// roots[t][i] are the elements of a resource of type t that
	// lists[t][i]'s expression starts from, when it provably yields
	// nothing without them (fhirpath.Expr.RootElements); nil when it may.
	roots map[string][]*roots
	// typed[t][i] is lists[t][i]'s expression specialised for resources of
	// type t (fhirpath.Expr.ForType).
	typed  map[string][]*fhirpath.Expr
	broken []string // parameters whose expression does not compile
	// aliases lists the token codes that have no tokens of their own (see
	// aliases.go).
	aliases aliasTable
}

func newParams(reg *searchparam.Registry, env fhirpath.Env) *params {
	ps := &params{reg: reg, env: env, byType: map[string]map[string]*param{}, lists: map[string][]*param{}, roots: map[string][]*roots{}, typed: map[string][]*fhirpath.Expr{}}
	compiled := map[string]*param{}
	get := func(sp *searchparam.Param) *param {
		if p, ok := compiled[sp.URL]; ok {
			return p
		}
		p := &param{Param: sp, purpose: "sort:" + sp.Code}
		compiled[sp.URL] = p
		if sp.Expression == "" {
			return p
		}
		e, err := fhirpath.Compile(sp.Expression)
		if err != nil {
			ps.broken = append(ps.broken, fmt.Sprintf("%s: %v", sp.URL, err))
			return p
		}
		if sp.Type == searchparam.Composite {
			for _, c := range sp.Components {
				def, ok := reg.ByURL(c.Definition)
				ce, err := fhirpath.Compile(c.Expression)
				if !ok || err != nil {
					ps.broken = append(ps.broken, fmt.Sprintf("%s: component %s", sp.URL, c.Definition))
					return p
				}
				p.comps = append(p.comps, component{typ: string(def.Type), expr: ce, code: compCode(sp.Code, len(p.comps))})
			}
		}
		p.expr = e
		return p
	}
	for _, t := range reg.ResourceTypes() {
		m := map[string]*param{}
		var l []*param
		for _, sp := range reg.ForType(t) {
			p := get(sp)
			m[sp.Code] = p
			if p.expr != nil && p.Type != searchparam.Special {
				l = append(l, p)
			}
		}
		sort.Slice(l, func(i, j int) bool { return l[i].Code < l[j].Code })
		ps.byType[t] = m
		ps.lists[t] = l
		rs := make([]*roots, len(l))
		for i, p := range l {
			if names, ok := p.expr.RootElements(t); ok {
				rs[i] = &roots{names: names}
			}
		}
		ps.roots[t] = rs
		ts := make([]*fhirpath.Expr, len(l))
		for i, p := range l {
			ts[i] = p.expr.ForType(t)
		}
		ps.typed[t] = ts
	}
	ps.aliases = buildAliases(ps)
	return ps
}

// roots are the first elements an expression reads from a resource.
type roots struct{ names []string }

// absent reports whether none of the root elements is in res, given the
// choice-type bases of its keys (see choiceBases): the expression then
// yields nothing on res.
func (r *roots) absent(res map[string]any, bases []string) bool {
	for _, n := range r.names {
		if _, ok := res[n]; ok {
			return false
		}
		for _, b := range bases {
			if b == n {
				return false
			}
		}
	}
	return true
}

// appendChoiceBases appends, for every key of res, each prefix that ends
// before an upper-case letter: the element names a choice-type key such as
// valueQuantity or multipleBirthBoolean may stand for.
func appendChoiceBases(dst []string, res map[string]any) []string {
	for k := range res {
		for i := 1; i < len(k); i++ {
			if k[i] >= 'A' && k[i] <= 'Z' {
				dst = append(dst, k[:i])
			}
		}
	}
	return dst
}

func (ps *params) lookup(typ, code string) (*param, bool) {
	p, ok := ps.byType[typ][code]
	return p, ok
}

// extract evaluates p on res. Evaluation errors (an expression the data
// makes invalid, such as "as" over several items) yield no values.
func (ps *params) extract(p *param, res map[string]any) values {
	return ps.extractWith(new(fhirpath.Evaluator), p, p.expr, res)
}

// extractWith is extract evaluating ex, p's expression or one equivalent
// on res (such as its ForType), with ev (the indexer reuses one per
// resource).
func (ps *params) extractWith(ev *fhirpath.Evaluator, p *param, ex *fhirpath.Expr, res map[string]any) values {
	var v values
	if ex == nil {
		return v
	}
	nodes, err := ev.Evaluate(ex, res, ps.env)
	if err != nil {
		return v
	}
	typ := string(p.Type)
	for _, n := range nodes {
		v.collect(typ, n)
	}
	return v
}

// extractComposite returns, per node of the composite's expression, the
// values of each component.
func (ps *params) extractComposite(p *param, res map[string]any) [][]values {
	return ps.extractCompositeWith(new(fhirpath.Evaluator), p, p.expr, res)
}

// extractCompositeWith is extractComposite evaluating ex (as extractWith)
// with ev.
func (ps *params) extractCompositeWith(ev *fhirpath.Evaluator, p *param, ex *fhirpath.Expr, res map[string]any) [][]values {
	if ex == nil || len(p.comps) == 0 {
		return nil
	}
	nodes, err := ev.Evaluate(ex, res, ps.env)
	if err != nil {
		return nil
	}
	var out [][]values
	for _, n := range nodes {
		row := make([]values, len(p.comps))
		ok := true
		for i, c := range p.comps {
			cn, err := ev.EvaluateAt(c.expr, res, n, ps.env)
			if err != nil {
				ok = false
				break
			}
			for _, x := range cn {
				row[i].collect(c.typ, x)
			}
			if row[i].empty() {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, row)
		}
	}
	return out
}

// targets returns the resource types a reference parameter may point to.
func (p *param) targets() []string {
	return p.Target
}

func hasTarget(p *param, typ string) bool {
	if len(p.Target) == 0 {
		return true
	}
	for _, t := range p.Target {
		if t == typ || t == "Resource" {
			return true
		}
	}
	return false
}

func joinTypes(ts []string) string { return strings.Join(ts, ",") }
