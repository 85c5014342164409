package search

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// BruteForce returns a copy of s that ignores the blind index: every
// resource of a type is decrypted and post-filtered. Tests use it as the
// oracle for the token path.
func BruteForce(s *Searcher) *Searcher {
	c := *s
	c.brute = true
	return &c
}

// RandomQueries derives up to n random single-criterion queries for the
// resource res, one per parameter picked at random, whose values come from
// res itself (so they usually match something) with random prefixes,
// precisions and modifiers. The oracle test runs each through the token
// path and through BruteForce.
func RandomQueries(x *Indexer, res map[string]any, rnd interface{ Intn(int) int }, n int) []string {
	typ, _ := res["resourceType"].(string)
	list := x.ps.lists[typ]
	var out []string
	for tries := 0; tries < 4*n && len(out) < n && len(list) > 0; tries++ {
		p := list[rnd.Intn(len(list))]
		if p.Type == "composite" {
			continue
		}
		v := x.ps.extract(p, res)
		if rnd.Intn(8) == 0 {
			out = append(out, p.Code+":missing="+[]string{"true", "false"}[rnd.Intn(2)])
			continue
		}
		pick := func(n int) int { return rnd.Intn(n) }
		prefixes := []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}
		esc := func(s string) string {
			r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `|`, `\|`, `$`, `\$`)
			return r.Replace(s)
		}
		switch {
		case len(v.strs) > 0:
			s := v.strs[pick(len(v.strs))]
			rs := []rune(s)
			switch pick(3) {
			case 0:
				out = append(out, p.Code+":exact="+esc(s))
			case 1:
				a := pick(len(rs))
				b := a + 1 + pick(len(rs)-a)
				out = append(out, p.Code+":contains="+esc(string(rs[a:b])))
			default:
				out = append(out, p.Code+"="+esc(string(rs[:1+pick(len(rs))])))
			}
		case len(v.tokens) > 0:
			t := v.tokens[pick(len(v.tokens))]
			switch pick(6) {
			case 0:
				out = append(out, p.Code+"="+esc(t.system)+"|"+esc(t.code))
			case 1:
				out = append(out, p.Code+"=|"+esc(t.code))
			case 2:
				if t.system != "" {
					out = append(out, p.Code+"="+esc(t.system)+"|")
				}
			case 3:
				out = append(out, p.Code+":not="+esc(t.code))
			case 4:
				if len(t.text) > 0 {
					w := words(fold(t.text[0]))
					if len(w) > 0 {
						ww := []rune(w[pick(len(w))])
						out = append(out, p.Code+":text="+esc(string(ww[:1+pick(len(ww))])))
					}
				}
			default:
				if t.code != "" {
					out = append(out, p.Code+"="+esc(t.code))
				}
			}
		case len(v.refs) > 0:
			r := v.refs[pick(len(v.refs))]
			switch {
			case r.ident != nil && pick(2) == 0:
				out = append(out, p.Code+":identifier="+esc(r.ident.system)+"|"+esc(r.ident.code))
			case r.local() != "" && pick(2) == 0:
				out = append(out, p.Code+"="+r.id)
			case r.local() != "":
				out = append(out, p.Code+"="+r.local())
			case r.url != "":
				out = append(out, p.Code+"="+esc(r.url))
			}
		case len(v.dates) > 0:
			d := v.dates[pick(len(v.dates))]
			t := d.lo()
			if d.lowOpen {
				t = d.hi()
			}
			t = t.Add(time.Duration(pick(3)-1) * time.Duration(pick(1000)) * time.Hour)
			formats := []string{"2006", "2006-01", "2006-01-02", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04Z"}
			out = append(out, p.Code+"="+prefixes[pick(len(prefixes))]+url.QueryEscape(t.UTC().Format(formats[pick(len(formats))])))
		case len(v.nums) > 0:
			n := v.nums[pick(len(v.nums))]
			f := n.f * (1 + float64(pick(5)-2)/10)
			val := prefixes[pick(len(prefixes))] + strconv.FormatFloat(f, 'f', pick(4), 64)
			if v.qty && pick(2) == 0 && n.code != "" {
				val += "|" + esc(n.system) + "|" + esc(n.code)
			}
			out = append(out, p.Code+"="+val)
		case len(v.uris) > 0:
			u := v.uris[pick(len(v.uris))]
			switch pick(3) {
			case 0:
				out = append(out, p.Code+":below="+esc(u[:1+pick(len(u))]))
			case 1:
				out = append(out, p.Code+":above="+esc(u+"/x"))
			default:
				out = append(out, p.Code+"="+esc(u))
			}
		}
	}
	return out
}

// WithoutAliases returns an indexer like x that also writes the tokens of
// aliased parameters (aliases.go): the full token set of the format, which
// the golden digests pin. The indexer without it writes a subset of those
// very tokens.
func WithoutAliases(x *Indexer) *Indexer {
	ps := *x.ps
	ps.aliases = nil
	y := &Indexer{ps: &ps}
	y.scratch.New = func() any { return new(indexScratch) }
	return y
}
