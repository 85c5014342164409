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
