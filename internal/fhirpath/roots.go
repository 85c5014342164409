package fhirpath

// RootElements tells a caller that evaluates e over many resources when it
// may skip the evaluation. For a resource of type resourceType used as
// context, it returns the names of the resource's own elements that e
// starts from ("Observation.code | Observation.value.as(Quantity)" gives
// [code value]) and ok = true when e is certain to yield an empty result
// or an error if none of those elements is present in the resource's
// JSON, neither under its own name nor as a choice type (value →
// valueQuantity, any name followed by an upper-case letter). ok = true
// with no names means e never yields anything for that type (every branch
// filters on another type, as "Patient.name" does on an Observation).
//
// ok is false whenever e could yield something without such an element:
// a bare type or $this, literals, %resource, exists(), empty(), count(),
// hasValue(), all(), comparisons, boolean logic, or any shape this
// analysis does not know. The names may repeat.
func (e *Expr) RootElements(resourceType string) (names []string, ok bool) {
	rt := Node{Value: map[string]any{"resourceType": resourceType}, Type: resourceType, path: resourceType}
	return rootsOf(e.root, rt)
}

// rootsOf analyses x evaluated with this = [rt].
func rootsOf(x expr, rt Node) ([]string, bool) {
	switch e := x.(type) {
	case *unionExpr:
		l, lok := rootsOf(e.l, rt)
		if !lok {
			return nil, false
		}
		r, rok := rootsOf(e.r, rt)
		if !rok {
			return nil, false
		}
		return append(l, r...), true
	case *typeExpr:
		// is and as over an empty collection are empty (resolve() is X
		// included: resolve() of nothing is nothing).
		return rootsOf(e.on, rt)
	case *indexExpr:
		// Indexing an empty collection yields nothing or an error.
		return rootsOf(e.on, rt)
	case *pathExpr:
		// A step applied to the context itself: at the start of the path,
		// or after a type filter such as the Observation of
		// Observation.code.
		atContext := e.on == nil
		if p, ok := e.on.(*pathExpr); ok && p.on == nil {
			if tf, ok := p.inv.(*memberInv); ok && tf.typeFilter {
				if !nodeIs(rt, typeSpec{name: tf.name}) {
					return nil, true // the filter drops the context
				}
				atContext = true
			}
		}
		if atContext {
			switch v := e.inv.(type) {
			case *memberInv:
				if !v.typeFilter {
					return []string{v.name}, true
				}
			case *funcInv:
				if v.name == "extension" {
					return []string{"extension"}, true
				}
			}
			return nil, false // a function of the context, or the context itself
		}
		if !emptyPreserving(e.inv) {
			return nil, false
		}
		return rootsOf(e.on, rt)
	}
	return nil, false
}

// emptyPreserving reports whether inv applied to an empty collection
// always yields an empty collection or an error.
func emptyPreserving(inv invocation) bool {
	switch v := inv.(type) {
	case *memberInv:
		return !v.typeFilter
	case *typeFnInv:
		return true
	case *funcInv:
		switch v.name {
		case "where", "select", "first", "last", "tail", "distinct", "resolve", "not", "extension":
			return true
		}
	}
	return false
}

// ForType returns an expression that gives the same results as e on
// every resource of type resourceType (and errors where e does), with the
// union branches that can yield nothing for that type removed: a search
// parameter shared by many types ("AllergyIntolerance.patient |
// CarePlan.subject.where(resolve() is Patient) | ...") keeps its one
// relevant branch. A branch is removed only when it starts with a filter
// on another type and every later step maps an empty collection to an
// empty one without evaluating anything that could fail. It returns e
// itself when nothing can be removed.
func (e *Expr) ForType(resourceType string) *Expr {
	rt := Node{Value: map[string]any{"resourceType": resourceType}, Type: resourceType, path: resourceType}
	var branches []expr
	var collect func(x expr)
	collect = func(x expr) {
		if u, ok := x.(*unionExpr); ok {
			collect(u.l)
			collect(u.r)
			return
		}
		branches = append(branches, x)
	}
	collect(e.root)
	var kept []expr
	for _, b := range branches {
		if deadFor(b, rt) {
			continue // never yields anything for this type
		}
		kept = append(kept, b)
	}
	if len(kept) == len(branches) {
		return e
	}
	// Empty collections contribute nothing to a union, and distinct of a
	// distinct collection is itself, so the left-deep union of the kept
	// branches is the same collection in the same order. One kept branch
	// stays under a union with an empty literal, which de-duplicates it as
	// the original union did.
	var root expr = &litExpr{}
	switch len(kept) {
	case 0:
	case 1:
		root = &unionExpr{l: &litExpr{}, r: kept[0]}
	default:
		root = kept[0]
		for _, b := range kept[1:] {
			root = &unionExpr{l: root, r: b}
		}
	}
	return &Expr{src: e.src, root: root}
}

// deadFor reports whether x, evaluated with this = [rt], certainly yields
// an empty collection and no error: it filters the context on another
// type, then only takes members, tests or casts types, or applies
// functions that return nothing for nothing before looking at their
// arguments.
func deadFor(x expr, rt Node) bool {
	switch e := x.(type) {
	case *unionExpr:
		return deadFor(e.l, rt) && deadFor(e.r, rt)
	case *typeExpr:
		return deadFor(e.on, rt)
	case *pathExpr:
		if e.on == nil {
			m, ok := e.inv.(*memberInv)
			return ok && m.typeFilter && !nodeIs(rt, typeSpec{name: m.name})
		}
		switch v := e.inv.(type) {
		case *memberInv:
			if v.typeFilter {
				return false
			}
		case *typeFnInv:
		case *funcInv:
			switch v.name {
			case "where", "select", "first", "last", "tail", "distinct", "resolve", "not":
			default:
				return false
			}
		default:
			return false
		}
		return deadFor(e.on, rt)
	}
	return false
}
