package search

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/fhir"
	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/store"
)

// Config wires a Searcher. Store, Resources, Indexer and Model are
// required.
type Config struct {
	Store     store.Store
	Resources *resources.Service
	Indexer   *Indexer
	Model     *fhir.Model
	Now       func() time.Time // defaults to time.Now
	Logger    *slog.Logger
}

// Searcher answers FHIR searches over the blind index. It implements
// rest.Searcher and rest.SearchCapabilities. Safe for concurrent use.
type Searcher struct {
	cfg Config
	ps  *params
	log *slog.Logger
	// brute disables the token path: every resource of the type is a
	// candidate and the post-filter decides (the oracle in tests).
	brute   bool
	reindex *Reindexer
}

// New builds a Searcher.
func New(cfg Config) (*Searcher, error) {
	if cfg.Store == nil || cfg.Resources == nil || cfg.Indexer == nil || cfg.Model == nil {
		return nil, errors.New("search: Config needs Store, Resources, Indexer and Model")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Searcher{cfg: cfg, ps: cfg.Indexer.ps, log: cfg.Logger}
	s.reindex = NewReindexer(s, 0)
	return s, nil
}

// SearchParams lists the searchable parameters of a resource type for the
// CapabilityStatement.
func (s *Searcher) SearchParams(resourceType string) []rest.SearchParamInfo {
	var out []rest.SearchParamInfo
	for _, p := range s.ps.lists[resourceType] {
		out = append(out, rest.SearchParamInfo{Name: p.Code, Definition: p.URL, Type: string(p.Type)})
	}
	return out
}

// doc is an opened resource.
type doc struct {
	v    store.Version
	body []byte
	res  map[string]any
}

// run is the state of one search request.
type run struct {
	s        *Searcher
	ctx      context.Context
	account  string
	keys     *seal.AccountKeys
	base     string
	maxSeq   int64
	strict   bool
	now      time.Time
	warnings []string
	docs     map[store.Ref]*doc
	depth    int
}

func (s *Searcher) newRun(ctx context.Context, account, base string, strict bool) (*run, error) {
	keys, err := s.cfg.Resources.Keys(ctx, account)
	if err != nil {
		return nil, err
	}
	return &run{s: s, ctx: ctx, account: account, keys: keys, base: base, strict: strict,
		now: s.cfg.Now().UTC(), docs: map[store.Ref]*doc{}}, nil
}

// Resolve returns the current resources of typ matching query, for
// conditional create, update, delete and patch (and transaction bundles).
// Unknown parameters are an error (strict handling); result-control
// parameters are ignored. A malformed query gives *resources.InvalidError.
func (s *Searcher) Resolve(ctx context.Context, account, typ string, query url.Values) ([]store.Ref, error) {
	if _, ok := s.ps.lists[typ]; !ok {
		return nil, fmt.Errorf("%w: %q", resources.ErrUnknownType, typ)
	}
	q, err := parseQuery(query)
	if err != nil {
		return nil, toInvalid(err)
	}
	r, err := s.newRun(ctx, account, "", true)
	if err != nil {
		return nil, err
	}
	refs, err := r.find(typ, q.crits)
	if err != nil {
		return nil, toInvalid(err)
	}
	return refs, nil
}

// toInvalid turns a *badParam into the resources error rest maps to a 400.
func toInvalid(err error) error {
	var bp *badParam
	if errors.As(err, &bp) {
		return &resources.InvalidError{Status: 400, Issues: []fhir.Issue{{Severity: "error", Code: bp.code, Expression: bp.name, Diagnostics: bp.Error()}}}
	}
	return err
}

// unknown handles a parameter the type does not have.
func (r *run) unknown(name, typ string) error {
	if r.strict {
		return bad(name, "unknown search parameter %q for %s", name, typ)
	}
	msg := fmt.Sprintf("search parameter %q is not known for %s and was ignored", name, typ)
	for _, w := range r.warnings {
		if w == msg {
			return nil
		}
	}
	r.warnings = append(r.warnings, msg)
	return nil
}

// resolve turns a raw criterion into a crit for typ; nil when ignored.
func (r *run) resolve(typ string, rc rawCriterion) (*crit, error) {
	if rc.has != nil {
		return r.resolveHas(typ, rc)
	}
	p, ok := r.s.ps.lookup(typ, rc.code)
	if !ok {
		return nil, r.unknown(rc.key, typ)
	}
	if rc.chain == "" {
		return resolveSimple(rc, p, r.base, r.now)
	}
	if p.Type != searchparam.Reference {
		return nil, bad(rc.key, "%s is not a reference parameter and cannot be chained", p.Code)
	}
	if rc.modifier != "" && !isTypeName(rc.modifier) {
		return nil, bad(rc.key, "chained parameters take only a resource type modifier")
	}
	targets := p.Target
	if rc.modifier != "" {
		targets = []string{rc.modifier}
	}
	nested, err := parseCriterion(rc.chain, "x")
	if err != nil {
		return nil, err
	}
	nested.values, nested.key = rc.values, rc.key
	c := &crit{raw: rc, p: p, kind: "reference", refSet: map[string]bool{}}
	found := false
	for _, tt := range targets {
		if nested.has == nil {
			if _, ok := r.s.ps.lookup(tt, nested.code); !ok {
				continue
			}
		} else if !r.s.ps.reg.IsResourceType(tt) {
			continue
		}
		found = true
		refs, err := r.nested(tt, nested)
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			c.refSet[ref.Type+"/"+ref.ID] = true
		}
	}
	if !found {
		return nil, r.unknown(rc.key, typ)
	}
	return c, nil
}

func (r *run) nested(typ string, rc rawCriterion) ([]store.Ref, error) {
	if r.depth >= maxChain {
		return nil, bad(rc.key, "chain too deep")
	}
	r.depth++
	defer func() { r.depth-- }()
	return r.find(typ, []rawCriterion{rc})
}

// resolveHas runs _has:Type:ref:param=value: the ids of typ referenced
// through ref by resources of Type that match param=value.
func (r *run) resolveHas(typ string, rc rawCriterion) (*crit, error) {
	h := rc.has
	if !r.s.ps.reg.IsResourceType(h.typ) {
		return nil, bad(rc.key, "unknown resource type %q in _has", h.typ)
	}
	refP, ok := r.s.ps.lookup(h.typ, h.ref)
	if !ok || refP.Type != searchparam.Reference {
		return nil, bad(rc.key, "%s is not a reference parameter of %s", h.ref, h.typ)
	}
	nested, err := parseCriterion(h.rest, "x")
	if err != nil {
		return nil, err
	}
	nested.values, nested.key = rc.values, rc.key
	refs, err := r.nested(h.typ, nested)
	if err != nil {
		return nil, err
	}
	c := &crit{raw: rc, isHas: true, idSet: map[string]bool{}}
	add := func(local string) {
		if t, id, ok := strings.Cut(local, "/"); ok && t == typ && id != "" {
			c.idSet[id] = true
		}
	}
	// Read the references from the sealed sort values when they list them
	// in full (no body to decrypt and parse); open the rest.
	var rest []store.Ref
	if refP.sortable() && !r.s.brute {
		vals, err := r.s.cfg.Store.Sorts(r.ctx, r.account, r.keys.Token(h.typ, refP.Code, kSort, ""), refs)
		if err != nil {
			return nil, fmt.Errorf("search: _has references: %w", err)
		}
		for _, ref := range refs {
			sealed, ok := vals[ref]
			if !ok {
				continue // no value: no local reference
			}
			plain, err := r.keys.Open(sealed, seal.Binding{Account: r.account, Type: ref.Type, ID: ref.ID, Purpose: "sort:" + refP.Code})
			if err != nil {
				return nil, fmt.Errorf("search: open sort value of %s/%s: %w", ref.Type, ref.ID, err)
			}
			_, _, list, ok := splitSortKey(plain)
			if !ok || list == nil {
				rest = append(rest, ref)
				continue
			}
			for _, l := range list {
				add(l)
			}
		}
	} else {
		rest = refs
	}
	docs, err := r.open(rest)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		v := r.s.ps.extract(refP, d.res)
		for _, rv := range v.refs {
			add(rv.local())
		}
	}
	return c, nil
}

// find returns the refs of current resources of typ matching every raw
// criterion (AND), ordered by id.
func (r *run) find(typ string, raws []rawCriterion) ([]store.Ref, error) {
	return r.findCrits(typ, raws, nil)
}

// findCrits is find with extra resolved criteria (a compartment).
func (r *run) findCrits(typ string, raws []rawCriterion, extra []*crit) ([]store.Ref, error) {
	crits := append([]*crit(nil), extra...)
	for _, rc := range raws {
		c, err := r.resolve(typ, rc)
		if err != nil {
			return nil, err
		}
		if c != nil {
			crits = append(crits, c)
		}
	}
	var clauses [][][]byte
	exact := true
	for _, c := range crits {
		cls, ex := c.plan()
		exact = exact && ex
		for _, cl := range cls {
			set := make([][]byte, 0, len(cl))
			for _, t := range cl {
				for _, code := range r.s.ps.aliases.codes(typ, t.code) {
					set = append(set, r.keys.Token(typ, code, t.kind, t.value))
				}
			}
			clauses = append(clauses, set)
		}
	}
	for _, cl := range clauses {
		if len(cl) == 0 {
			return nil, nil // an empty OR-set matches nothing
		}
	}
	if r.s.brute {
		clauses, exact = nil, len(crits) == 0
	}
	refs, err := r.s.cfg.Store.Lookup(r.ctx, r.account, store.Match{Types: []string{typ}, Clauses: clauses, MaxSeq: r.maxSeq})
	if err != nil {
		return nil, fmt.Errorf("search: lookup %s: %w", typ, err)
	}
	refs = uniqRefs(refs)
	if exact || len(crits) == 0 {
		return refs, nil
	}
	docs, err := r.open(refs)
	if err != nil {
		return nil, err
	}
	out := refs[:0]
	for _, d := range docs {
		ok := true
		for _, c := range crits {
			if !c.match(r.s.ps, d.res, d.v.Type, d.v.ID) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, store.Ref{Type: d.v.Type, ID: d.v.ID})
		}
	}
	return out, nil
}

// open fetches and decrypts refs (cached per run); missing or deleted
// resources are left out. Order follows refs.
func (r *run) open(refs []store.Ref) ([]*doc, error) {
	var need []store.Ref
	for _, ref := range refs {
		if _, ok := r.docs[ref]; !ok {
			need = append(need, ref)
		}
	}
	const chunk = 500
	for start := 0; start < len(need); start += chunk {
		part := need[start:min(start+chunk, len(need))]
		vs, err := r.s.cfg.Store.CurrentMany(r.ctx, r.account, part)
		if err != nil {
			return nil, fmt.Errorf("search: fetch candidates: %w", err)
		}
		for _, v := range vs {
			ref := store.Ref{Type: v.Type, ID: v.ID}
			if v.Deleted {
				r.docs[ref] = nil
				continue
			}
			res, err := r.s.cfg.Resources.Open(r.keys, r.account, v)
			if err != nil {
				return nil, err
			}
			m, err := decode(res.Body)
			if err != nil {
				return nil, fmt.Errorf("search: decode %s/%s: %w", v.Type, v.ID, err)
			}
			r.docs[ref] = &doc{v: v, body: res.Body, res: m}
		}
	}
	out := make([]*doc, 0, len(refs))
	for _, ref := range refs {
		if d := r.docs[ref]; d != nil {
			out = append(out, d)
		}
	}
	return out, nil
}

func decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// strictHandling reports Prefer: handling=strict.
func strictHandling(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ";") {
			for _, q := range strings.Split(p, ",") {
				if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(q), " ", ""), "handling=strict") {
					return true
				}
			}
		}
	}
	return false
}

// uniqRefs drops adjacent duplicates from refs ordered by (Type, ID). The
// store contract does not promise distinct refs for a single OR-set (the
// PostgreSQL engine returns one row per matching token).
func uniqRefs(refs []store.Ref) []store.Ref {
	if len(refs) < 2 {
		return refs
	}
	out := refs[:1]
	for _, r := range refs[1:] {
		if r != out[len(out)-1] {
			out = append(out, r)
		}
	}
	return out
}

// sortRefs orders refs by (Type, ID).
func sortRefs(refs []store.Ref) {
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Type != refs[j].Type {
			return refs[i].Type < refs[j].Type
		}
		return refs[i].ID < refs[j].ID
	})
}

// The interfaces this package implements.
var (
	_ resources.Indexer        = (*Indexer)(nil)
	_ rest.Searcher            = (*Searcher)(nil)
	_ rest.SearchCapabilities  = (*Searcher)(nil)
	_ rest.CompartmentSearcher = (*Searcher)(nil)
	_ rest.ReindexRunner       = (*Searcher)(nil)
)
