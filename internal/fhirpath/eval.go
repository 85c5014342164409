package fhirpath

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/kilnhealth/kiln/internal/fhir"
)

type evalCtx struct {
	model    Model
	steps    int // work done so far, bounded by limit
	limit    int
	resource []Node // %resource and %rootResource
	context  []Node // %context
}

// expr is a node of the compiled tree. this is the input collection of the
// innermost expression: the context at the root, the current item inside
// where(), select() and similar.
type expr interface {
	eval(c *evalCtx, this []Node) ([]Node, error)
}

// invocation is applied to the collection produced by the expression before
// the dot (or to this at the start of a path).
type invocation interface {
	apply(c *evalCtx, in, this []Node) ([]Node, error)
}

// ResourceNode wraps a decoded resource as a Node, typed by its
// resourceType.
func ResourceNode(resource map[string]any) Node {
	rt, _ := resource["resourceType"].(string)
	return Node{Value: resource, Type: rt, path: rt}
}

// Evaluate runs the expression with resource as context and %resource. The
// returned slice is new; the values in it share memory with resource.
func (e *Expr) Evaluate(resource map[string]any, env Env) ([]Node, error) {
	rn := []Node{ResourceNode(resource)}
	c := &evalCtx{model: env.Model, resource: rn, context: rn, limit: env.limit()}
	r, err := e.root.eval(c, rn)
	return own(r), err
}

// EvaluateAt runs the expression with context as its input and %context,
// and resource as %resource. Search uses it for the components of composite
// parameters, whose expressions are relative to each node selected by the
// composite's own expression.
func (e *Expr) EvaluateAt(resource map[string]any, context Node, env Env) ([]Node, error) {
	c := &evalCtx{model: env.Model, resource: []Node{ResourceNode(resource)}, context: []Node{context}, limit: env.limit()}
	r, err := e.root.eval(c, c.context)
	return own(r), err
}

// Evaluator runs expressions reusing its working memory, for a caller that
// evaluates many expressions over many resources (the search indexer):
// Expr.Evaluate allocates a context and the resource's node on every call.
// Results are as Expr.Evaluate's: new slices whose values share memory
// with the resource. The zero value is ready to use; an Evaluator keeps a
// reference to the last resource until its next use or until it is
// overwritten with the zero value. It is not safe for concurrent use.
type Evaluator struct {
	c   evalCtx
	res [1]Node // %resource
	ctx [1]Node // %context for EvaluateAt
}

// Evaluate is e.Evaluate(resource, env).
func (v *Evaluator) Evaluate(e *Expr, resource map[string]any, env Env) ([]Node, error) {
	v.res[0] = ResourceNode(resource)
	v.c = evalCtx{model: env.Model, resource: v.res[:], context: v.res[:], limit: env.limit()}
	r, err := e.root.eval(&v.c, v.res[:])
	return v.own(r), err
}

// EvaluateAt is e.EvaluateAt(resource, context, env).
func (v *Evaluator) EvaluateAt(e *Expr, resource map[string]any, context Node, env Env) ([]Node, error) {
	v.res[0], v.ctx[0] = ResourceNode(resource), context
	v.c = evalCtx{model: env.Model, resource: v.res[:], context: v.ctx[:], limit: env.limit()}
	r, err := e.root.eval(&v.c, v.ctx[:])
	return v.own(r), err
}

// own is the package's own plus a copy of results that are v's arrays,
// which the next evaluation overwrites.
func (v *Evaluator) own(r []Node) []Node {
	if len(r) > 0 && (&r[0] == &v.res[0] || &r[0] == &v.ctx[0]) {
		return append([]Node(nil), r...)
	}
	return own(r)
}

type litExpr struct{ nodes []Node }

func (l *litExpr) eval(*evalCtx, []Node) ([]Node, error) {
	if len(l.nodes) == 0 {
		return nil, nil
	}
	return append([]Node(nil), l.nodes...), nil
}

type constExpr struct{ name string }

func (k *constExpr) eval(c *evalCtx, _ []Node) ([]Node, error) {
	if k.name == "context" {
		return append([]Node(nil), c.context...), nil
	}
	return append([]Node(nil), c.resource...), nil
}

type thisExpr struct{}

func (thisExpr) eval(_ *evalCtx, this []Node) ([]Node, error) {
	return append([]Node(nil), this...), nil
}

type pathExpr struct {
	on  expr // nil at the start of a path
	inv invocation
}

func (p *pathExpr) eval(c *evalCtx, this []Node) ([]Node, error) {
	in := this
	if p.on != nil {
		var err error
		if in, err = p.on.eval(c, this); err != nil {
			return nil, err
		}
	}
	return p.inv.apply(c, in, this)
}

type memberInv struct {
	name       string
	typeFilter bool // capitalised name at the start of a path
}

func (m *memberInv) apply(c *evalCtx, in, _ []Node) ([]Node, error) {
	var out []Node
	if m.typeFilter {
		t := typeSpec{name: m.name}
		all := true
		for _, n := range in {
			if !nodeIs(n, t) {
				all = false
				break
			}
		}
		if all {
			return in, nil // results are never modified in place
		}
		for _, n := range in {
			if nodeIs(n, t) {
				out = append(out, n)
			}
		}
		return out, nil
	}
	if err := c.spend(len(in)); err != nil {
		return nil, err
	}
	for _, n := range in {
		out = c.children(n, m.name, out)
	}
	return out, nil
}

// spend charges n units of work and fails once the budget is exhausted, so
// that nested iteration over a hostile expression cannot run for ever.
func (c *evalCtx) spend(n int) error {
	c.steps += n
	if c.steps > c.limit {
		return &EvalError{Msg: "evaluation exceeded its work budget of " + strconv.Itoa(c.limit) + " steps"}
	}
	return nil
}

// children appends the values of element name of n to out.
func (c *evalCtx) children(n Node, name string, out []Node) []Node {
	m, ok := n.Value.(map[string]any)
	if !ok {
		return out
	}
	parent := n.path
	var types []string
	if c.model != nil && parent != "" {
		types = c.model.ElementTypes(parent, name)
	}
	if len(types) > 1 {
		// Scan the keys rather than building name+Type strings: no
		// allocation, and objects have few keys.
		first := len(out)
		for k, v := range m {
			if len(k) <= len(name) || k[:len(name)] != name {
				continue
			}
			suffix := k[len(name):]
			for _, t := range types {
				if len(t) == len(suffix) && t[1:] == suffix[1:] && upperByte(t[0]) == suffix[0] {
					out = appendValue(out, v, t, parent, name)
					break
				}
			}
		}
		if len(out)-first > 1 {
			sub := out[first:]
			sort.SliceStable(sub, func(i, j int) bool { return indexOf(types, sub[i].Type) < indexOf(types, sub[j].Type) })
		}
		return out
	}
	if v, ok := m[name]; ok {
		t := ""
		if len(types) == 1 {
			t = normType(types[0])
		}
		return appendValue(out, v, t, parent, name)
	}
	if len(types) == 1 {
		return out
	}
	// No model information: look for a choice-type key such as valueQuantity.
	first := len(out)
	for k, v := range m {
		if len(k) > len(name) && strings.HasPrefix(k, name) {
			if t, ok := fhirTypeBySuffix[k[len(name):]]; ok {
				out = appendValue(out, v, t, parent, name)
			}
		}
	}
	if len(out)-first > 1 {
		// Map order is random; keep results deterministic.
		sub := out[first:]
		sort.SliceStable(sub, func(i, j int) bool { return sub[i].Type < sub[j].Type })
	}
	return out
}

func upperByte(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return len(s)
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// normType maps the type codes of the R4 definitions for FHIRPath system
// types (http://hl7.org/fhirpath/System.String) to "System.String".
func normType(t string) string {
	if rest, ok := strings.CutPrefix(t, "http://hl7.org/fhirpath/"); ok {
		return rest
	}
	return t
}

func appendValue(out []Node, v any, t, parent, name string) []Node {
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			if x != nil {
				out = append(out, makeNode(x, t, parent, name))
			}
		}
		return out
	}
	if v == nil {
		return out
	}
	return append(out, makeNode(v, t, parent, name))
}

func makeNode(v any, t, parent, name string) Node {
	m, isMap := v.(map[string]any)
	if isMap {
		if rt, ok := m["resourceType"].(string); ok && rt != "" {
			return Node{Value: v, Type: rt, path: rt}
		}
	}
	switch t {
	case "":
		if !isMap {
			return Node{Value: v, Type: primitiveType(v)}
		}
		return Node{Value: v}
	case "BackboneElement", "Element":
		if parent == "" {
			return Node{Value: v, Type: t}
		}
		return Node{Value: v, Type: t, path: parent + "." + name}
	}
	return Node{Value: v, Type: t, path: t}
}

type funcInv struct {
	name string
	args []expr
	pos  int
}

// trueNodes and falseNodes are read-only results shared by boolean
// operations; Evaluate copies them before handing them to a caller.
var (
	trueNodes  = []Node{{Value: true, Type: "System.Boolean"}}
	falseNodes = []Node{{Value: false, Type: "System.Boolean"}}
)

func boolNode(b bool) []Node {
	if b {
		return trueNodes
	}
	return falseNodes
}

// own returns r, copied if it is one of the shared boolean results.
func own(r []Node) []Node {
	if len(r) == 1 && (&r[0] == &trueNodes[0] || &r[0] == &falseNodes[0]) {
		return []Node{r[0]}
	}
	return r
}

// truth applies FHIRPath singleton evaluation for a boolean context:
// empty is unknown, one boolean is itself, any other single item is true,
// and several items are an error.
func truth(r []Node, pos int) (val, known bool, err error) {
	switch len(r) {
	case 0:
		return false, false, nil
	case 1:
		if b, ok := r[0].Value.(bool); ok {
			return b, true, nil
		}
		return true, true, nil
	}
	return false, false, &EvalError{Pos: pos, Msg: "expected a single boolean, got " + strconv.Itoa(len(r)) + " items"}
}

func (f *funcInv) apply(c *evalCtx, in, this []Node) ([]Node, error) {
	switch f.name {
	case "where", "select", "exists", "all":
		if len(f.args) == 0 { // exists()
			return boolNode(len(in) > 0), nil
		}
		if len(in) == 0 {
			switch f.name {
			case "exists":
				return boolNode(false), nil
			case "all":
				return boolNode(true), nil
			}
			return nil, nil
		}
		if err := c.spend(len(in)); err != nil {
			return nil, err
		}
		var out []Node
		one := make([]Node, 1)
		for _, n := range in {
			one[0] = n
			r, err := f.args[0].eval(c, one)
			if err != nil {
				return nil, err
			}
			if f.name == "select" {
				out = append(out, r...)
				continue
			}
			v, known, err := truth(r, f.pos)
			if err != nil {
				return nil, err
			}
			switch f.name {
			case "where":
				if known && v {
					out = append(out, n)
				}
			case "exists":
				if known && v {
					return boolNode(true), nil
				}
			case "all":
				if !known || !v {
					return boolNode(false), nil
				}
			}
		}
		switch f.name {
		case "exists":
			return boolNode(false), nil
		case "all":
			return boolNode(true), nil
		}
		return out, nil
	case "empty":
		return boolNode(len(in) == 0), nil
	case "count":
		return []Node{{Value: json.Number(strconv.Itoa(len(in))), Type: "System.Integer"}}, nil
	case "first":
		if len(in) == 0 {
			return nil, nil
		}
		return []Node{in[0]}, nil
	case "last":
		if len(in) == 0 {
			return nil, nil
		}
		return []Node{in[len(in)-1]}, nil
	case "tail":
		if len(in) < 2 {
			return nil, nil
		}
		return append([]Node(nil), in[1:]...), nil
	case "distinct":
		return distinct(nil, in), nil
	case "not":
		v, known, err := truth(in, f.pos)
		if err != nil || !known {
			return nil, err
		}
		return boolNode(!v), nil
	case "hasValue":
		if len(in) == 1 {
			switch in[0].Value.(type) {
			case string, bool, json.Number:
				return boolNode(true), nil
			}
		}
		return boolNode(false), nil
	case "resolve":
		var out []Node
		for _, n := range in {
			if t, id := c.refTarget(n.Value); t != "" {
				stub := map[string]any{"resourceType": t}
				if id != "" {
					stub["id"] = id
				}
				out = append(out, Node{Value: stub, Type: t, path: t})
			}
		}
		return out, nil
	case "extension":
		r, err := f.args[0].eval(c, this)
		if err != nil {
			return nil, err
		}
		if len(r) != 1 {
			return nil, &EvalError{Pos: f.pos, Msg: "extension() needs a single url"}
		}
		url, ok := r[0].Value.(string)
		if !ok {
			return nil, &EvalError{Pos: f.pos, Msg: "extension() needs a string url"}
		}
		var out []Node
		for _, n := range in {
			m, ok := n.Value.(map[string]any)
			if !ok {
				continue
			}
			exts, _ := m["extension"].([]any)
			for _, x := range exts {
				if em, ok := x.(map[string]any); ok && em["url"] == url {
					out = append(out, Node{Value: em, Type: "Extension", path: "Extension"})
				}
			}
		}
		return out, nil
	}
	return nil, &EvalError{Pos: f.pos, Msg: "unknown function " + f.name}
}

// refTarget decides the resource type (and id) a reference points to from
// its text alone: "Type/id", "Type/id/_history/v", an absolute URL ending in
// one of those, or "#id" naming a contained resource of %resource. Failing
// that, a Reference's "type" element is used. It never fetches anything.
func (c *evalCtx) refTarget(v any) (typ, id string) {
	var ref string
	var declared string
	switch x := v.(type) {
	case map[string]any:
		ref, _ = x["reference"].(string)
		declared, _ = x["type"].(string)
	case string:
		ref = x
	}
	if ref != "" {
		if typ, id = c.parseRef(ref); typ != "" {
			return typ, id
		}
	}
	if isTypeName(declared) {
		return declared, ""
	}
	return "", ""
}

func (c *evalCtx) parseRef(ref string) (typ, id string) {
	if frag, ok := strings.CutPrefix(ref, "#"); ok {
		if len(c.resource) == 0 {
			return "", ""
		}
		res, _ := c.resource[0].Value.(map[string]any)
		contained, _ := res["contained"].([]any)
		for _, x := range contained {
			if m, ok := x.(map[string]any); ok && m["id"] == frag {
				t, _ := m["resourceType"].(string)
				if isTypeName(t) {
					return t, frag
				}
			}
		}
		return "", ""
	}
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		ref = ref[:i]
	}
	segs := strings.Split(ref, "/")
	if n := len(segs); n >= 4 && segs[n-2] == "_history" {
		segs = segs[:n-2]
	}
	n := len(segs)
	if n < 2 || segs[n-1] == "" || !isTypeName(segs[n-2]) {
		return "", ""
	}
	return segs[n-2], segs[n-1]
}

// isTypeName reports whether s has the shape of a resource type name.
func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') {
			return false
		}
	}
	return true
}

type typeFnInv struct {
	fn  string // as, is, ofType
	typ typeSpec
	pos int
}

func (t *typeFnInv) apply(c *evalCtx, in, _ []Node) ([]Node, error) {
	return typeOp(c, t.fn, in, t.typ, t.pos)
}

type typeExpr struct {
	on  expr
	op  string // is, as
	typ typeSpec
	pos int
}

func (t *typeExpr) eval(c *evalCtx, this []Node) ([]Node, error) {
	// resolve() is X: decide from the reference without building a stub.
	if p, ok := t.on.(*pathExpr); ok && t.op == "is" {
		if f, ok := p.inv.(*funcInv); ok && f.name == "resolve" {
			in := this
			if p.on != nil {
				var err error
				if in, err = p.on.eval(c, this); err != nil {
					return nil, err
				}
			}
			if len(in) == 1 {
				rt, _ := c.refTarget(in[0].Value)
				if rt == "" {
					return nil, nil
				}
				return boolNode(!t.typ.system && (rt == t.typ.name || t.typ.name == "Resource" ||
					(t.typ.name == "DomainResource" && isDomainResourceType(rt)))), nil
			}
		}
	}
	in, err := t.on.eval(c, this)
	if err != nil {
		return nil, err
	}
	return typeOp(c, t.op, in, t.typ, t.pos)
}

// typeOp implements is, as and ofType. "is" needs at most one item. "as"
// over several items filters them like ofType (FHIRPath N1 and fhirpath.js
// treat that as an error; search needs the filter).
func typeOp(_ *evalCtx, op string, in []Node, t typeSpec, pos int) ([]Node, error) {
	if op == "is" {
		switch len(in) {
		case 0:
			return nil, nil
		case 1:
			return boolNode(nodeIs(in[0], t)), nil
		}
		return nil, &EvalError{Pos: pos, Msg: "'is' needs a single item, got " + strconv.Itoa(len(in))}
	}
	var out []Node
	for _, n := range in {
		if nodeIs(n, t) {
			out = append(out, n)
		}
	}
	return out, nil
}

type indexExpr struct {
	on, idx expr
	pos     int
}

func (x *indexExpr) eval(c *evalCtx, this []Node) ([]Node, error) {
	in, err := x.on.eval(c, this)
	if err != nil {
		return nil, err
	}
	r, err := x.idx.eval(c, this)
	if err != nil {
		return nil, err
	}
	if len(r) != 1 {
		return nil, &EvalError{Pos: x.pos, Msg: "index must be a single integer"}
	}
	num, ok := r[0].Value.(json.Number)
	if !ok {
		return nil, &EvalError{Pos: x.pos, Msg: "index must be an integer"}
	}
	i, err := strconv.Atoi(string(num))
	if err != nil {
		return nil, &EvalError{Pos: x.pos, Msg: "index must be an integer"}
	}
	if i < 0 || i >= len(in) {
		return nil, nil
	}
	return []Node{in[i]}, nil
}

type unionExpr struct{ l, r expr }

func (u *unionExpr) eval(c *evalCtx, this []Node) ([]Node, error) {
	a, err := u.l.eval(c, this)
	if err != nil {
		return nil, err
	}
	b, err := u.r.eval(c, this)
	if err != nil {
		return nil, err
	}
	switch {
	case len(a)+len(b) == 0:
		return nil, nil
	case len(a)+len(b) == 1:
		// One item is distinct: no copy (results are never modified in
		// place).
		if len(a) == 1 {
			return a, nil
		}
		return b, nil
	}
	return distinct(distinct(nil, a), b), nil
}

// distinct appends the items of in that are not already in out.
func distinct(out, in []Node) []Node {
next:
	for _, n := range in {
		for _, o := range out {
			if fhir.Equal(o.Value, n.Value) {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

type eqExpr struct {
	l, r expr
	neg  bool
}

// operand evaluates x, reading literals in place (they are only compared).
func operand(x expr, c *evalCtx, this []Node) ([]Node, error) {
	if l, ok := x.(*litExpr); ok {
		return l.nodes, nil
	}
	return x.eval(c, this)
}

func (e *eqExpr) eval(c *evalCtx, this []Node) ([]Node, error) {
	a, err := operand(e.l, c, this)
	if err != nil {
		return nil, err
	}
	b, err := operand(e.r, c, this)
	if err != nil {
		return nil, err
	}
	if len(a) == 0 || len(b) == 0 {
		return nil, nil
	}
	eq := len(a) == len(b)
	for i := 0; eq && i < len(a); i++ {
		eq = fhir.Equal(a[i].Value, b[i].Value)
	}
	return boolNode(eq != e.neg), nil
}

type logicExpr struct {
	op   string
	l, r expr
	pos  int
}

func (e *logicExpr) eval(c *evalCtx, this []Node) ([]Node, error) {
	a, err := e.l.eval(c, this)
	if err != nil {
		return nil, err
	}
	av, ak, err := truth(a, e.pos)
	if err != nil {
		return nil, err
	}
	b, err := e.r.eval(c, this)
	if err != nil {
		return nil, err
	}
	bv, bk, err := truth(b, e.pos)
	if err != nil {
		return nil, err
	}
	switch e.op {
	case "and":
		if (ak && !av) || (bk && !bv) {
			return boolNode(false), nil
		}
		if ak && bk {
			return boolNode(true), nil
		}
	case "or":
		if (ak && av) || (bk && bv) {
			return boolNode(true), nil
		}
		if ak && bk {
			return boolNode(false), nil
		}
	case "xor":
		if ak && bk {
			return boolNode(av != bv), nil
		}
	case "implies":
		if ak && !av {
			return boolNode(true), nil
		}
		if bk && bv {
			return boolNode(true), nil
		}
		if ak && bk {
			return boolNode(false), nil
		}
	}
	return nil, nil
}
