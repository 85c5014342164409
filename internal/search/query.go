package search

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// rawCriterion is one parsed search parameter occurrence, before it is
// resolved against a resource type: name[:modifier][.chain]=v1,v2 (OR).
type rawCriterion struct {
	key      string   // the parameter name as sent (for messages)
	code     string   // first parameter code
	modifier string   // modifier of the first link ("" if none)
	chain    string   // the rest of a chained name after the first '.', "" if none
	has      *hasSpec // _has reverse chain
	values   []string // OR-ed values, still escaped
}

// hasSpec is _has:Type:ref:rest.
type hasSpec struct {
	typ, ref string
	rest     string // the parameter name applied to Type (may be a chain or another _has)
}

// control holds the result-control parameters.
type control struct {
	count      int
	countSet   bool
	sort       []sortKeySpec
	includes   []includeSpec
	revincs    []includeSpec
	summary    string
	elements   []string
	total      string
	page       string
	types      []string // _type
	typesGiven bool
}

type sortKeySpec struct {
	code string
	desc bool
}

type includeSpec struct {
	raw      string
	srcType  string // "*" for the wildcard
	param    string // "*" for every reference parameter
	target   string // optional target type
	iterate  bool
	wildcard bool
}

// query is a parsed search request.
type query struct {
	crits   []rawCriterion
	ctl     control
	ignored []string // unknown control parameters (reported as warnings)
}

// Limits.
const (
	defaultCount = 20
	maxCount     = 1000
	maxValues    = 100 // OR values per parameter
	maxCriteria  = 64
	maxChain     = 8
)

// badParam is a malformed parameter: a 400 naming it.
type badParam struct {
	name, msg string
	code      string // issue code: invalid or not-supported
}

func (e *badParam) Error() string { return "search: parameter " + e.name + ": " + e.msg }

func bad(name, format string, args ...any) *badParam {
	return &badParam{name: name, code: "invalid", msg: fmt.Sprintf(format, args...)}
}

func unsupported(name, format string, args ...any) *badParam {
	return &badParam{name: name, code: "not-supported", msg: fmt.Sprintf(format, args...)}
}

// ignoredControl are parameters the server accepts and ignores.
var ignoredControl = map[string]bool{"_format": true, "_pretty": true}

// parseQuery parses a search's parameters. It never panics; errors are
// *badParam.
func parseQuery(params url.Values) (*query, error) {
	q := &query{}
	q.ctl.count = defaultCount
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := params[k]
		switch base, _, _ := strings.Cut(k, ":"); base {
		case "_count":
			v := vs[len(vs)-1]
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, bad(k, "_count must be a non-negative integer, got %q", v)
			}
			if n > maxCount {
				n = maxCount
			}
			q.ctl.count, q.ctl.countSet = n, true
		case "_sort":
			for _, v := range vs {
				for _, s := range strings.Split(v, ",") {
					s = strings.TrimSpace(s)
					if s == "" {
						continue
					}
					sk := sortKeySpec{code: s}
					if strings.HasPrefix(s, "-") {
						sk = sortKeySpec{code: s[1:], desc: true}
					}
					if sk.code == "" {
						return nil, bad(k, "empty sort key")
					}
					q.ctl.sort = append(q.ctl.sort, sk)
				}
			}
		case "_include", "_revinclude":
			for _, v := range vs {
				inc, err := parseInclude(k, v)
				if err != nil {
					return nil, err
				}
				if base == "_include" {
					q.ctl.includes = append(q.ctl.includes, inc)
				} else {
					q.ctl.revincs = append(q.ctl.revincs, inc)
				}
			}
		case "_summary":
			v := vs[len(vs)-1]
			switch v {
			case "true", "false", "text", "data", "count":
				q.ctl.summary = v
			default:
				return nil, bad(k, "_summary must be one of true, text, data, count, false; got %q", v)
			}
		case "_elements":
			for _, v := range vs {
				for _, e := range strings.Split(v, ",") {
					if e = strings.TrimSpace(e); e != "" {
						if i := strings.LastIndexByte(e, '.'); i >= 0 {
							e = e[i+1:]
						}
						q.ctl.elements = append(q.ctl.elements, e)
					}
				}
			}
		case "_total":
			v := vs[len(vs)-1]
			switch v {
			case "none", "estimate", "accurate":
				q.ctl.total = v
			default:
				return nil, bad(k, "_total must be none, estimate or accurate; got %q", v)
			}
		case "_page":
			q.ctl.page = vs[len(vs)-1]
		case "_type":
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					if t = strings.TrimSpace(t); t != "" {
						q.ctl.types = append(q.ctl.types, t)
					}
				}
			}
			q.ctl.typesGiven = len(q.ctl.types) > 0
		case "_contained", "_containedType", "_list", "_text", "_content", "_query", "_filter":
			return nil, unsupported(k, "%s is not supported", base)
		default:
			if ignoredControl[base] {
				continue
			}
			for _, v := range vs {
				c, err := parseCriterion(k, v)
				if err != nil {
					return nil, err
				}
				q.crits = append(q.crits, c)
				if len(q.crits) > maxCriteria {
					return nil, bad(k, "too many search parameters (at most %d)", maxCriteria)
				}
			}
		}
	}
	if q.ctl.summary != "" && q.ctl.summary != "false" && len(q.ctl.elements) > 0 {
		return nil, bad("_elements", "_elements cannot be combined with _summary")
	}
	return q, nil
}

func parseInclude(k, v string) (includeSpec, error) {
	inc := includeSpec{raw: v}
	if strings.HasSuffix(k, ":iterate") || strings.HasSuffix(k, ":recurse") {
		inc.iterate = true
	} else if strings.Contains(k, ":") {
		return inc, bad(k, "unknown modifier")
	}
	if v == "*" {
		inc.srcType, inc.param, inc.wildcard = "*", "*", true
		return inc, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return inc, bad(k, "expected Type:param[:targetType], got %q", v)
	}
	inc.srcType, inc.param = parts[0], parts[1]
	inc.wildcard = inc.param == "*"
	if len(parts) == 3 {
		inc.target = parts[2]
	}
	return inc, nil
}

// parseCriterion parses one name=value pair.
func parseCriterion(name, value string) (rawCriterion, error) {
	c := rawCriterion{key: name}
	if name == "" {
		return c, bad(name, "empty parameter name")
	}
	if strings.HasPrefix(name, "_has:") {
		parts := strings.SplitN(name, ":", 4)
		if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
			return c, bad(name, "expected _has:Type:reference:parameter")
		}
		c.code = "_has"
		c.has = &hasSpec{typ: parts[1], ref: parts[2], rest: parts[3]}
	} else {
		first, rest, chained := strings.Cut(name, ".")
		if chained {
			if rest == "" {
				return c, bad(name, "empty chained parameter")
			}
			if strings.Count(rest, ".") >= maxChain {
				return c, bad(name, "chain too deep (at most %d links)", maxChain)
			}
			c.chain = rest
		}
		code, mod, _ := strings.Cut(first, ":")
		if code == "" {
			return c, bad(name, "empty parameter name")
		}
		c.code, c.modifier = code, mod
	}
	vals := splitEscaped(value, ',')
	if len(vals) > maxValues {
		return c, bad(name, "too many values (at most %d)", maxValues)
	}
	for _, v := range vals {
		if v == "" {
			return c, bad(name, "empty value")
		}
	}
	c.values = vals
	return c, nil
}

// splitEscaped splits s at unescaped sep, keeping escapes in the parts.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unescape removes search escapes: \, \| \$ \\.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// prefixes of ordered types.
var orderPrefixes = map[string]bool{"eq": true, "ne": true, "gt": true, "lt": true, "ge": true, "le": true, "sa": true, "eb": true, "ap": true}

// splitPrefix returns the comparison prefix of a date/number/quantity value
// ("eq" when absent) and the rest.
func splitPrefix(v string) (string, string) {
	if len(v) > 2 && orderPrefixes[v[:2]] {
		return v[:2], v[2:]
	}
	return "eq", v
}
