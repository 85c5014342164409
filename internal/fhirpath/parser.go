package fhirpath

import (
	"encoding/json"
	"fmt"
)

// maxDepth bounds the nesting of the expression so that hostile input cannot
// exhaust the stack.
const maxDepth = 200

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) advance() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == s
}

func (p *parser) syntax(pos int, format string, args ...any) error {
	return &SyntaxError{Expr: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) unsupported(pos int, format string, args ...any) error {
	return &UnsupportedError{Expr: p.src, Pos: pos, Feature: fmt.Sprintf(format, args...)}
}

func (p *parser) expectOp(s string) error {
	t := p.peek()
	if t.kind != tOp || t.text != s {
		return p.syntax(t.pos, "expected %q, found %s", s, describe(t))
	}
	p.advance()
	return nil
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "string literal"
	default:
		return fmt.Sprintf("%q", t.text)
	}
}

// binary operator precedences; higher binds tighter.
func binaryPrec(t token) (string, int) {
	switch t.kind {
	case tOp:
		switch t.text {
		case "*", "/":
			return t.text, 10
		case "+", "-", "&":
			return t.text, 9
		case "|":
			return t.text, 7
		case "<", ">", "<=", ">=":
			return t.text, 6
		case "=", "~", "!=", "!~":
			return t.text, 5
		}
	case tIdent:
		switch t.text {
		case "div", "mod":
			return t.text, 10
		case "is", "as":
			return t.text, 8
		case "in", "contains":
			return t.text, 4
		case "and":
			return t.text, 3
		case "or", "xor":
			return t.text, 2
		case "implies":
			return t.text, 1
		}
	}
	return "", 0
}

func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > maxDepth {
		return p.syntax(pos, "expression nested too deeply")
	}
	return nil
}

func (p *parser) parseExpr(minPrec int) (expr, error) {
	if err := p.enter(p.peek().pos); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op, prec := binaryPrec(t)
		if prec == 0 || prec < minPrec {
			return left, nil
		}
		p.advance()
		switch op {
		case "is", "as":
			ts, err := p.parseTypeSpec()
			if err != nil {
				return nil, err
			}
			left = &typeExpr{on: left, op: op, typ: ts, pos: t.pos}
			continue
		}
		right, err := p.parseExpr(prec + 1)
		if err != nil {
			return nil, err
		}
		switch op {
		case "|":
			left = &unionExpr{l: left, r: right}
		case "=":
			left = &eqExpr{l: left, r: right}
		case "!=":
			left = &eqExpr{l: left, r: right, neg: true}
		case "and", "or", "xor", "implies":
			left = &logicExpr{op: op, l: left, r: right, pos: t.pos}
		default:
			return nil, p.unsupported(t.pos, "operator %q", op)
		}
	}
}

func (p *parser) parseTypeSpec() (typeSpec, error) {
	t := p.peek()
	var parts []string
	for {
		n := p.peek()
		if n.kind != tIdent && n.kind != tDelimIdent {
			return typeSpec{}, p.syntax(n.pos, "expected a type name, found %s", describe(n))
		}
		p.advance()
		parts = append(parts, n.text)
		// A qualified name is FHIR.X or System.X; anything else after a dot
		// is an invocation on the type expression's result.
		if len(parts) == 1 && (n.text == "FHIR" || n.text == "System") && p.isOp(".") {
			p.advance()
			continue
		}
		break
	}
	ts, ok := resolveTypeSpec(parts)
	if !ok {
		return typeSpec{}, p.syntax(t.pos, "bad type name")
	}
	return ts, nil
}

func (p *parser) parseUnary() (expr, error) {
	t := p.peek()
	if t.kind == tOp && (t.text == "-" || t.text == "+") {
		p.advance()
		n := p.peek()
		if n.kind == tNumber {
			p.advance()
			text := n.text
			if t.text == "-" {
				text = "-" + text
			}
			return p.parsePostfix(&litExpr{nodes: []Node{numberNode(text)}})
		}
		return nil, p.unsupported(t.pos, "unary %s", t.text)
	}
	e, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	return p.parsePostfix(e)
}

func numberNode(text string) Node {
	n := json.Number(text)
	if primitiveType(n) == "integer" {
		return Node{Value: n, Type: "System.Integer"}
	}
	return Node{Value: n, Type: "System.Decimal"}
}

func (p *parser) parsePostfix(e expr) (expr, error) {
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && t.text == ".":
			p.advance()
			inv, err := p.parseInvocation(false)
			if err != nil {
				return nil, err
			}
			e = &pathExpr{on: e, inv: inv}
		case t.kind == tOp && t.text == "[":
			p.advance()
			idx, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			e = &indexExpr{on: e, idx: idx, pos: t.pos}
		default:
			return e, nil
		}
	}
}

func (p *parser) parseTerm() (expr, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.advance()
		if n := p.peek(); n.kind == tString || (n.kind == tIdent && isCalendarUnit(n.text)) {
			return nil, p.unsupported(t.pos, "quantity literal")
		}
		return &litExpr{nodes: []Node{numberNode(t.text)}}, nil
	case tString:
		p.advance()
		return &litExpr{nodes: []Node{{Value: t.text, Type: "System.String"}}}, nil
	case tDate:
		return nil, p.unsupported(t.pos, "date/time literal %s", t.text)
	case tConstant:
		p.advance()
		switch t.text {
		case "resource", "rootResource", "context":
			return &constExpr{name: t.text}, nil
		}
		return nil, p.unsupported(t.pos, "environment variable %%%s", t.text)
	case tSpecial:
		p.advance()
		if t.text != "this" {
			return nil, p.unsupported(t.pos, "$%s", t.text)
		}
		return &thisExpr{}, nil
	case tIdent, tDelimIdent:
		if t.kind == tIdent && (t.text == "true" || t.text == "false") &&
			!(p.toks[p.i+1].kind == tOp && p.toks[p.i+1].text == "(") {
			p.advance()
			return &litExpr{nodes: []Node{{Value: t.text == "true", Type: "System.Boolean"}}}, nil
		}
		inv, err := p.parseInvocation(true)
		if err != nil {
			return nil, err
		}
		return &pathExpr{inv: inv}, nil
	case tOp:
		switch t.text {
		case "(":
			p.advance()
			e, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "{":
			p.advance()
			if err := p.expectOp("}"); err != nil {
				return nil, err
			}
			return &litExpr{}, nil
		}
	}
	return nil, p.syntax(t.pos, "unexpected %s", describe(t))
}

func isCalendarUnit(s string) bool {
	switch s {
	case "year", "years", "month", "months", "week", "weeks", "day", "days",
		"hour", "hours", "minute", "minutes", "second", "seconds", "millisecond", "milliseconds":
		return true
	}
	return false
}

// parseInvocation parses a member name or a function call. root marks an
// invocation at the start of a path, where a capitalised name is a type
// filter on the context (Patient.name).
func (p *parser) parseInvocation(root bool) (invocation, error) {
	t := p.peek()
	switch t.kind {
	case tIdent, tDelimIdent:
	case tSpecial:
		if t.text == "this" && !root {
			return nil, p.syntax(t.pos, "$this after '.'")
		}
		fallthrough
	default:
		return nil, p.syntax(t.pos, "expected a name, found %s", describe(t))
	}
	p.advance()
	if !p.isOp("(") || t.kind == tDelimIdent {
		return &memberInv{name: t.text, typeFilter: root && t.kind == tIdent && t.text[0] >= 'A' && t.text[0] <= 'Z'}, nil
	}
	p.advance()
	switch t.text {
	case "as", "is", "ofType":
		ts, err := p.parseTypeSpec()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return &typeFnInv{fn: t.text, typ: ts, pos: t.pos}, nil
	}
	var args []expr
	if !p.isOp(")") {
		for {
			a, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.isOp(",") {
				p.advance()
				continue
			}
			break
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	return p.function(t, args)
}

// function binds a call to its implementation, checking the arity.
func (p *parser) function(t token, args []expr) (invocation, error) {
	arity := map[string][2]int{
		"where": {1, 1}, "select": {1, 1}, "exists": {0, 1}, "all": {1, 1},
		"empty": {0, 0}, "first": {0, 0}, "last": {0, 0}, "tail": {0, 0},
		"count": {0, 0}, "not": {0, 0}, "hasValue": {0, 0}, "resolve": {0, 0},
		"extension": {1, 1}, "distinct": {0, 0},
	}
	a, ok := arity[t.text]
	if !ok {
		return nil, p.unsupported(t.pos, "function %s()", t.text)
	}
	if len(args) < a[0] || len(args) > a[1] {
		return nil, p.syntax(t.pos, "%s() takes %d to %d arguments, got %d", t.text, a[0], a[1], len(args))
	}
	return &funcInv{name: t.text, args: args, pos: t.pos}, nil
}

// Expr is a compiled FHIRPath expression. It is immutable and safe for
// concurrent use.
type Expr struct {
	src  string
	root expr
}

// String returns the source text of the expression.
func (e *Expr) String() string { return e.src }

// Compile parses src. It returns a *SyntaxError for text that is not
// FHIRPath and an *UnsupportedError for FHIRPath outside the subset; both
// carry the byte offset of the problem.
func Compile(src string) (*Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	e, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.syntax(t.pos, "unexpected %s after expression", describe(t))
	}
	return &Expr{src: src, root: e}, nil
}

// MustCompile is Compile for expressions fixed in the program text; it
// panics on error and must not be used on input.
func MustCompile(src string) *Expr {
	e, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return e
}
