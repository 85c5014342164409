package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/store"
)

// maxIncludes bounds the resources added by _include and _revinclude to one
// page.
const maxIncludes = 1000

// Search answers a search over types (one type; none for system level, then
// _type or every type) and returns the searchset Bundle JSON. It implements
// rest.Searcher. Errors are *resources.InvalidError for bad queries, or the
// account's and store's errors.
func (s *Searcher) Search(req *http.Request, account string, types []string, params url.Values, base string) ([]byte, error) {
	b, err := s.search(req, account, types, params, base, nil)
	return b, toInvalid(err)
}

// SearchCompartment answers [base]/{compartment}/{id}/{type}?… (type "*"
// for every type in the compartment): a search of the types restricted to
// resources that the R4 CompartmentDefinition of compartment links to
// compartment/id. It implements rest.CompartmentSearcher.
func (s *Searcher) SearchCompartment(req *http.Request, account, compartment, id, typ string, params url.Values, base string) ([]byte, error) {
	def, ok := compartments[compartment]
	if !ok {
		return nil, toInvalid(unsupported(compartment, "%s is not a compartment type (Patient, Encounter, RelatedPerson, Practitioner, Device)", compartment))
	}
	var types []string
	if typ == "*" {
		for t := range def {
			types = append(types, t)
		}
		if _, ok := def[compartment]; !ok {
			types = append(types, compartment)
		}
		sort.Strings(types)
	} else {
		if !s.ps.reg.IsResourceType(typ) {
			return nil, fmt.Errorf("%w: %q", resources.ErrUnknownType, typ)
		}
		types = []string{typ}
	}
	comp := &compartmentSpec{typ: compartment, id: id, path: base + "/" + compartment + "/" + id + "/" + typ}
	b, err := s.search(req, account, types, params, base, comp)
	return b, toInvalid(err)
}

// compartmentSpec restricts a search to one compartment.
type compartmentSpec struct {
	typ, id, path string
}

func (s *Searcher) search(req *http.Request, account string, types []string, params url.Values, base string, comp *compartmentSpec) ([]byte, error) {
	q, err := parseQuery(params)
	if err != nil {
		return nil, err
	}
	r, err := s.newRun(req.Context(), account, base, strictHandling(req))
	if err != nil {
		return nil, err
	}
	path := base
	system := len(types) == 0
	if comp != nil {
		path = comp.path
		if q.ctl.typesGiven {
			return nil, bad("_type", "_type applies to system-level search only")
		}
	} else if system {
		if q.ctl.typesGiven {
			for _, t := range q.ctl.types {
				if !s.ps.reg.IsResourceType(t) {
					return nil, bad("_type", "unknown resource type %q", t)
				}
			}
			types = q.ctl.types
		} else {
			// Only the types that know every (somewhere known) parameter can
			// match; a parameter no type knows is ignored once.
			known := map[string]bool{}
			for _, t := range s.ps.reg.ResourceTypes() {
				for _, c := range q.crits {
					if _, has := s.ps.lookup(t, c.code); has {
						known[c.code] = true
					}
				}
			}
			kept := q.crits[:0]
			for _, c := range q.crits {
				if c.has == nil && !known[c.code] {
					if err := r.unknown(c.key, "any resource type"); err != nil {
						return nil, err
					}
					continue
				}
				kept = append(kept, c)
			}
			q.crits = kept
			for _, t := range s.ps.reg.ResourceTypes() {
				ok := true
				for _, c := range q.crits {
					if _, has := s.ps.lookup(t, c.code); !has && c.has == nil && known[c.code] {
						ok = false
					}
				}
				if ok {
					types = append(types, t)
				}
			}
		}
	} else {
		path = base + "/" + types[0]
		if q.ctl.typesGiven {
			return nil, bad("_type", "_type applies to system-level search only")
		}
	}
	canon := canonicalQuery(params)
	hashInput := path + "|" + strings.Join(types, ",") + "?" + canon
	offset := 0
	if q.ctl.page != "" {
		c, err := decodePage(r.keys, hashInput, q.ctl.page)
		if err != nil {
			return nil, bad("_page", "%v", err)
		}
		r.maxSeq, offset = c.maxSeq, c.offset
	} else if r.maxSeq, err = s.snapshot(r); err != nil {
		return nil, err
	}

	var all []store.Ref
	if comp != nil {
		for _, t := range types {
			c := compartmentCrit(s.ps, comp, t)
			if c == nil {
				continue
			}
			refs, err := r.findCrits(t, q.crits, []*crit{c})
			if err != nil {
				return nil, err
			}
			all = append(all, refs...)
		}
	} else if system && len(q.crits) == 0 {
		var ts []string
		if q.ctl.typesGiven {
			ts = types
		}
		if all, err = s.cfg.Store.Lookup(r.ctx, account, store.Match{Types: ts, MaxSeq: r.maxSeq}); err != nil {
			return nil, fmt.Errorf("search: lookup: %w", err)
		}
		all = uniqRefs(all)
	} else {
		for _, t := range types {
			refs, err := r.find(t, q.crits)
			if err != nil {
				return nil, err
			}
			all = append(all, refs...)
		}
	}
	if len(q.ctl.sort) > 0 {
		if all, err = r.sortRefs(all, q.ctl.sort); err != nil {
			return nil, err
		}
	} else if system || comp != nil {
		sortRefs(all)
	}
	total := len(all)
	count := q.ctl.count
	if offset > total {
		offset = total
	}
	end := min(offset+count, total)
	page := all[offset:end]
	if q.ctl.summary == "count" {
		page = nil
	}
	docs, err := r.open(page)
	if err != nil {
		return nil, err
	}
	var incs []*doc
	if len(docs) > 0 && (len(q.ctl.includes) > 0 || len(q.ctl.revincs) > 0) {
		if incs, err = r.includes(docs, q); err != nil {
			return nil, err
		}
	}

	bundle := rest.Bundle{ResourceType: "Bundle", Type: "searchset",
		Meta: &rest.BundleMeta{LastUpdated: r.now.Format("2006-01-02T15:04:05.000Z07:00")}}
	if id, err := s.cfg.Resources.NewID(); err == nil {
		bundle.ID = id
	}
	if q.ctl.total != "none" {
		bundle.Total = &total
	}
	link := func(rel string, off int) {
		u := path
		if canon != "" {
			u += "?" + canon
		}
		if off > 0 || rel != "self" && rel != "first" {
			sep := "?"
			if canon != "" {
				sep = "&"
			}
			u += sep + "_page=" + encodePage(r.keys, hashInput, cursor{maxSeq: r.maxSeq, offset: off})
		}
		bundle.Link = append(bundle.Link, rest.BundleLink{Relation: rel, URL: u})
	}
	link("self", offset)
	if q.ctl.summary != "count" && count > 0 {
		link("first", 0)
		if end < total {
			link("next", end)
		}
		if offset > 0 {
			link("previous", max(0, offset-count))
		}
	}
	for _, d := range docs {
		e, err := s.entry(base, d, "match", q)
		if err != nil {
			return nil, err
		}
		bundle.Entry = append(bundle.Entry, e)
	}
	for _, d := range incs {
		e, err := s.entry(base, d, "include", q)
		if err != nil {
			return nil, err
		}
		bundle.Entry = append(bundle.Entry, e)
	}
	if len(r.warnings) > 0 {
		oo := map[string]any{"resourceType": "OperationOutcome"}
		var issues []any
		for _, w := range r.warnings {
			issues = append(issues, map[string]any{"severity": "warning", "code": "not-supported", "diagnostics": w})
		}
		oo["issue"] = issues
		body, err := resources.Marshal(oo)
		if err != nil {
			return nil, err
		}
		bundle.Entry = append(bundle.Entry, rest.BundleEntry{Resource: bytes.TrimSpace(body), Search: &rest.EntrySearch{Mode: "outcome"}})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bundle); err != nil {
		return nil, fmt.Errorf("search: render bundle: %w", err)
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// snapshot returns the account's newest commit sequence.
func (s *Searcher) snapshot(r *run) (int64, error) {
	vs, err := s.cfg.Store.History(r.ctx, r.account, store.HistoryQuery{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("search: snapshot: %w", err)
	}
	if len(vs) == 0 {
		return 0, nil
	}
	return vs[0].Seq, nil
}

// canonicalQuery renders params without _page and format controls, keys
// sorted, for links and the page token's query hash.
func canonicalQuery(params url.Values) string {
	c := url.Values{}
	for k, v := range params {
		switch k {
		case "_page", "_format", "_pretty":
			continue
		}
		c[k] = v
	}
	return c.Encode()
}

func (s *Searcher) entry(base string, d *doc, mode string, q *query) (rest.BundleEntry, error) {
	body := d.body
	summarised := q.ctl.summary != "" && q.ctl.summary != "false"
	if summarised || (len(q.ctl.elements) > 0 && mode == "match") {
		var err error
		if body, err = s.subset(d.res, q.ctl.summary, q.ctl.elements); err != nil {
			return rest.BundleEntry{}, err
		}
	}
	return rest.BundleEntry{
		FullURL:  base + "/" + d.v.Type + "/" + d.v.ID,
		Resource: json.RawMessage(bytes.TrimSpace(body)),
		Search:   &rest.EntrySearch{Mode: mode},
	}, nil
}

// subset applies _summary/_elements to a resource (a copy) and marks it
// SUBSETTED.
func (s *Searcher) subset(orig map[string]any, summary string, elements []string) ([]byte, error) {
	m := s.cfg.Model
	res := make(map[string]any, len(orig))
	for k, v := range orig {
		res[k] = v
	}
	typ, _ := res["resourceType"].(string)
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	mandatory := func() {
		for _, e := range m.SummaryElements(typ) {
			if m.IsMandatory(typ + "." + e) {
				keep[e] = true
			}
		}
	}
	switch summary {
	case "true":
		for _, e := range m.SummaryElements(typ) {
			keep[e] = true
		}
	case "text":
		keep["text"] = true
		mandatory()
	case "data":
		for k := range res {
			keep[k] = k != "text"
		}
	default:
		mandatory()
	}
	for _, e := range elements {
		keep[e] = true
	}
	for k := range res {
		if keep[k] {
			continue
		}
		if base := choiceBase(s, typ, k); base != "" && keep[base] {
			continue
		}
		delete(res, k)
	}
	meta := map[string]any{}
	if old, ok := res["meta"].(map[string]any); ok {
		for k, v := range old {
			meta[k] = v
		}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(append([]any(nil), tags...), map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
	res["meta"] = meta
	return resources.Marshal(res)
}

func choiceBase(s *Searcher, typ, key string) string {
	for i := 1; i < len(key); i++ {
		if key[i] >= 'A' && key[i] <= 'Z' {
			base := key[:i]
			if info, ok := s.cfg.Model.Element(typ, base); ok && info.Choice {
				return base
			}
			return ""
		}
	}
	return ""
}

// sortRefs orders refs by the _sort keys, decrypting each candidate's
// sealed sort value. Resources without a value sort last either way; ties
// keep (Type, ID) order.
func (r *run) sortRefs(refs []store.Ref, specs []sortKeySpec) ([]store.Ref, error) {
	sortRefs(refs)
	keys := make([][][]byte, len(specs))
	byType := map[string][]int{}
	for i, ref := range refs {
		byType[ref.Type] = append(byType[ref.Type], i)
	}
	for si, spec := range specs {
		keys[si] = make([][]byte, len(refs))
		for typ, idxs := range byType {
			p, ok := r.s.ps.lookup(typ, spec.code)
			if !ok || !p.sortable() {
				if len(byType) == 1 {
					return nil, bad("_sort", "cannot sort %s by %q", typ, spec.code)
				}
				continue
			}
			sub := make([]store.Ref, len(idxs))
			for j, i := range idxs {
				sub[j] = refs[i]
			}
			slot := r.keys.Token(typ, p.Code, kSort, "")
			vals, err := r.s.cfg.Store.Sorts(r.ctx, r.account, slot, sub)
			if err != nil {
				return nil, fmt.Errorf("search: sort values: %w", err)
			}
			for _, i := range idxs {
				sealed, ok := vals[refs[i]]
				if !ok {
					continue
				}
				plain, err := r.keys.Open(sealed, seal.Binding{Account: r.account, Type: refs[i].Type, ID: refs[i].ID, Purpose: "sort:" + p.Code})
				if err != nil {
					return nil, fmt.Errorf("search: open sort value of %s/%s: %w", refs[i].Type, refs[i].ID, err)
				}
				asc, desc, _, ok := splitSortKey(plain)
				if !ok {
					continue
				}
				if spec.desc {
					keys[si][i] = desc
				} else {
					keys[si][i] = asc
				}
			}
		}
	}
	idx := make([]int, len(refs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ia, ib := idx[a], idx[b]
		for si, spec := range specs {
			ka, kb := keys[si][ia], keys[si][ib]
			switch {
			case ka == nil && kb == nil:
				continue
			case ka == nil:
				return false
			case kb == nil:
				return true
			}
			c := bytes.Compare(ka, kb)
			if c == 0 {
				continue
			}
			if spec.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
	out := make([]store.Ref, len(refs))
	for i, j := range idx {
		out[i] = refs[j]
	}
	return out, nil
}

// includes resolves _include and _revinclude (with :iterate) for a page.
func (r *run) includes(matches []*doc, q *query) ([]*doc, error) {
	seen := map[store.Ref]bool{}
	for _, d := range matches {
		seen[store.Ref{Type: d.v.Type, ID: d.v.ID}] = true
	}
	var out []*doc
	frontier := matches
	for iter := 0; iter < 4 && len(frontier) > 0 && len(out) < maxIncludes; iter++ {
		var next []store.Ref
		add := func(ref store.Ref) {
			if !seen[ref] && len(out)+len(next) < maxIncludes {
				seen[ref] = true
				next = append(next, ref)
			}
		}
		for _, inc := range q.ctl.includes {
			if iter > 0 && !inc.iterate {
				continue
			}
			for _, d := range frontier {
				if inc.srcType != "*" && d.v.Type != inc.srcType {
					continue
				}
				for _, p := range r.refParams(d.v.Type, inc.param) {
					v := r.s.ps.extract(p, d.res)
					for _, rv := range v.refs {
						if rv.local() == "" || (inc.target != "" && rv.typ != inc.target) {
							continue
						}
						add(store.Ref{Type: rv.typ, ID: rv.id})
					}
				}
			}
		}
		for _, inc := range q.ctl.revincs {
			if iter > 0 && !inc.iterate {
				continue
			}
			if !r.s.ps.reg.IsResourceType(inc.srcType) {
				return nil, bad("_revinclude", "unknown resource type %q", inc.srcType)
			}
			cl := [][]byte{}
			for _, p := range r.refParams(inc.srcType, inc.param) {
				for _, d := range frontier {
					if inc.target != "" && d.v.Type != inc.target {
						continue
					}
					for _, code := range r.s.ps.aliases.codes(inc.srcType, p.Code) {
						cl = append(cl, r.keys.Token(inc.srcType, code, kRef, d.v.Type+"/"+d.v.ID))
					}
				}
			}
			if len(cl) == 0 {
				continue
			}
			refs, err := r.s.cfg.Store.Lookup(r.ctx, r.account, store.Match{Types: []string{inc.srcType}, Clauses: [][][]byte{cl}, MaxSeq: r.maxSeq})
			if err != nil {
				return nil, fmt.Errorf("search: revinclude: %w", err)
			}
			refs = uniqRefs(refs)
			for _, ref := range refs {
				add(ref)
			}
		}
		docs, err := r.open(next)
		if err != nil {
			return nil, err
		}
		out = append(out, docs...)
		frontier = docs
	}
	return out, nil
}

// refParams returns the reference parameters of typ named code, or all of
// them for "*".
func (r *run) refParams(typ, code string) []*param {
	if code == "*" {
		var out []*param
		for _, p := range r.s.ps.lists[typ] {
			if p.Type == searchparam.Reference {
				out = append(out, p)
			}
		}
		return out
	}
	if p, ok := r.s.ps.lookup(typ, code); ok && p.Type == searchparam.Reference && p.expr != nil {
		return []*param{p}
	}
	return nil
}
