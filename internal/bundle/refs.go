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

// collectConditionalRefs appends the distinct conditional references
// (Type?search) found anywhere in v.
func collectConditionalRefs(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "reference" {
				if isConditionalRef(s) && !contains(out, s) {
					out = append(out, s)
				}
				continue
			}
			out = collectConditionalRefs(val, out)
		}
	case []any:
		for _, val := range x {
			out = collectConditionalRefs(val, out)
		}
	}
	return out
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
