package bundle

// rewriteRefs replaces the value of every "reference" string element
// anywhere in v (nested elements, extensions, contained resources) by
// fn's answer.
func rewriteRefs(v any, fn func(string) (string, error)) error {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "reference" {
				n, err := fn(s)
				if err != nil {
					return err
				}
				if n != s {
					x[k] = n
				}
				continue
			}
			if err := rewriteRefs(val, fn); err != nil {
				return err
			}
		}
	case []any:
		for _, val := range x {
			if err := rewriteRefs(val, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectRefs appends every object anywhere in v (nested elements,
// extensions, contained resources) that has a "reference" string element:
// the places rewriteAt visits, found in one walk.
func collectRefs(v any, out []map[string]any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if _, ok := val.(string); ok && k == "reference" {
				out = append(out, x)
				continue
			}
			out = collectRefs(val, out)
		}
	case []any:
		for _, val := range x {
			out = collectRefs(val, out)
		}
	}
	return out
}

// conditionalRefs returns the distinct conditional references (Type?search)
// of the objects collectRefs found.
func conditionalRefs(sites []map[string]any) []string {
	var out []string
	for _, m := range sites {
		if s, _ := m["reference"].(string); isConditionalRef(s) && !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// rewriteAt replaces the "reference" string of each object collectRefs
// found by fn's answer; it does what rewriteRefs does on the walked value
// without walking it again.
func rewriteAt(sites []map[string]any, fn func(string) (string, error)) error {
	for _, m := range sites {
		s, ok := m["reference"].(string)
		if !ok {
			continue
		}
		n, err := fn(s)
		if err != nil {
			return err
		}
		if n != s {
			m["reference"] = n
		}
	}
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// isConditionalRef reports whether ref has the form Type?query: a resource
// type name (letters) directly followed by a search.
func isConditionalRef(ref string) bool {
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case c == '?':
			return i > 0 && ref[0] >= 'A' && ref[0] <= 'Z' && i < len(ref)-1
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		default:
			return false
		}
	}
	return false
}
