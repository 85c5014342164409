package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnhealth/kiln/internal/resources"
	"github.com/kilnhealth/kiln/internal/rest"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/store"
)

// Processing phases, in the order the spec prescribes.
const (
	phaseDelete = iota
	phasePost
	phasePut // PUT and PATCH
	phaseGet
	phases
)

// maxRetries bounds how often a transaction (or a batch entry) is prepared
// again after a concurrent writer changed one of its resources; after
// pessimisticAfter optimistic attempts a transaction locks its targets.
const (
	maxRetries       = 12
	pessimisticAfter = 2
	// maxTargetLocks: a transaction with more update/delete targets takes
	// one account-wide lock instead of one per resource.
	maxTargetLocks = 256
)

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lockTargets takes the store locks of the resources the writes update or
// delete (sorted, so lockers cannot deadlock).
func (p *processing) lockTargets(ctx context.Context, es []*entry) (func(), error) {
	if p.h.cfg.Locker == nil {
		return func() {}, nil
	}
	var names []string
	for _, e := range es {
		if e.method != http.MethodPost && e.id != "" {
			names = append(names, "kiln/bundle/"+p.account+"/"+e.typ+"/"+e.id)
		}
	}
	if len(names) > maxTargetLocks {
		names = []string{"kiln/bundle/" + p.account}
	}
	sort.Strings(names)
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, n := range names {
		u, err := p.h.cfg.Locker.Lock(ctx, n)
		if err != nil {
			release()
			return nil, fmt.Errorf("bundle: lock: %w", err)
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// entry is one request entry and, after processing, its result.
type entry struct {
	index   int
	method  string // upper case
	url     string // request.url as given
	phase   int
	typ, id string
	query   url.Values // conditional PUT/DELETE/PATCH target
	rel     string     // GET: the request URL relative to the base
	ifMatch int64
	// ifNoneExist is the conditional create query (POST).
	ifNoneExist url.Values
	fullURL     string
	raw         json.RawMessage
	decoded     map[string]any // the resource, when decoded with the Bundle
	req         inRequest

	res       map[string]any // parsed resource (POST, PUT)
	rewritten bool
	refSites  []map[string]any // the objects of res with a "reference" string
	condRefs  []string         // conditional references found in res

	// noop: nothing to write (conditional create matched, conditional
	// delete matched nothing); existing then holds the matched resource.
	noop     bool
	existing *resources.Resource
	prep     resources.Prepared

	// results
	done    bool
	result  resources.Resource
	outcome resources.Outcome
	err     error
	get     *recorder
}

// where renders the entry for error messages.
func (e *entry) fail(err error) *EntryError {
	return &EntryError{Index: e.index, Method: e.method, URL: e.url, Err: err}
}

// processing is the state of one Bundle request.
type processing struct {
	h           *Handler
	account     string
	base        string
	prefer      string
	req         *http.Request
	transaction bool
	keys        *seal.AccountKeys

	entries []*entry
	// fullURLs maps an entry's fullUrl (and, for a POST whose fullUrl has
	// this server's base, its relative Type/id) to the Type/id it gets.
	fullURLs map[string]string
	// condRefs caches resolved conditional references.
	condRefs map[string]string
	// condErrs caches conditional references that failed to resolve.
	condErrs map[string]error
}

// parse checks every entry's request and classifies it. In a transaction
// the first invalid entry fails the whole Bundle; in a batch the entry
// gets its own error.
func (p *processing) parse(b *inBundle) error {
	p.entries = make([]*entry, len(b.Entry))
	for i := range b.Entry {
		in := &b.Entry[i]
		e := &entry{index: i, fullURL: in.FullURL, raw: in.Resource, decoded: in.decoded, ifMatch: resources.NoVersion}
		p.entries[i] = e
		if in.Request == nil {
			e.err = badRequest("the entry has no request; every entry of a %s needs request.method and request.url", kind(p.transaction))
		} else {
			e.req = *in.Request
			e.method = strings.ToUpper(in.Request.Method)
			e.url = in.Request.URL
			e.err = p.classify(e)
		}
		if e.err != nil {
			if p.transaction {
				return e.fail(e.err)
			}
			e.done = true
		}
	}
	return nil
}

func kind(transaction bool) string {
	if transaction {
		return "transaction"
	}
	return "batch"
}

// classify parses request.method and request.url of one entry.
func (p *processing) classify(e *entry) error {
	if e.url == "" {
		return badRequest("request.url is missing")
	}
	rel := e.url
	if path, _, _ := strings.Cut(rel, "?"); strings.Contains(path, "://") {
		var ok bool
		if rel, ok = strings.CutPrefix(rel, p.base+"/"); !ok {
			return badRequest("request.url %q is absolute but not under this server's base %s", e.url, p.base)
		}
	}
	rel = strings.TrimPrefix(rel, "/")
	path, rawQuery, hasQuery := strings.Cut(rel, "?")
	segs := strings.Split(path, "/")
	if e.req.IfMatch != "" {
		v, ok := parseETag(e.req.IfMatch)
		if !ok {
			return badRequest("request.ifMatch must be a version ETag such as W/\"3\"; got %q", e.req.IfMatch)
		}
		e.ifMatch = v
	}
	switch e.method {
	case http.MethodGet, http.MethodHead:
		e.phase = phaseGet
		e.rel = rel
		if p.h.cfg.Reads == nil {
			return notSupported("GET entries are not supported by this server")
		}
		return nil
	case http.MethodPost:
		e.phase = phasePost
		if hasQuery || len(segs) != 1 {
			return badRequest("a POST entry's request.url must be a resource type, such as Patient; got %q", e.url)
		}
		if e.req.IfNoneExist != "" {
			q, err := parseQuery(e.req.IfNoneExist)
			if err != nil {
				return err
			}
			e.ifNoneExist = q
		}
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		e.phase = phasePut
		if e.method == http.MethodDelete {
			e.phase = phaseDelete
		}
		switch {
		case hasQuery && len(segs) == 1:
			q, err := parseQuery(rawQuery)
			if err != nil {
				return err
			}
			e.query = q
		case !hasQuery && len(segs) == 2:
			if !validID(segs[1]) {
				return badRequest("%q is not a valid FHIR id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", segs[1])
			}
			e.id = segs[1]
		default:
			return badRequest("a %s entry's request.url must be Type/id or Type?search; got %q", e.method, e.url)
		}
	default:
		return badRequest("request.method must be GET, HEAD, POST, PUT, PATCH or DELETE; got %q", e.req.Method)
	}
	e.typ = segs[0]
	if err := p.h.res.CheckType(e.typ); err != nil {
		return err
	}
	needsBody := e.method != http.MethodDelete
	if needsBody && len(e.raw) == 0 && e.decoded == nil {
		return badRequest("a %s entry needs a resource", e.method)
	}
	if (e.query != nil || e.ifNoneExist != nil) && p.h.cfg.Resolver == nil {
		return notSupported("conditional operations are not supported by this server yet (no search resolver)")
	}
	return nil
}

func parseQuery(s string) (url.Values, error) {
	q, err := url.ParseQuery(s)
	if err != nil {
		return nil, badRequest("the search %q is malformed: %v", s, err)
	}
	if len(q) == 0 {
		return nil, badRequest("a conditional operation needs search criteria")
	}
	return q, nil
}

// parseETag reads a version from W/"3", "3" or 3.
func parseETag(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

// validID checks the FHIR id syntax: [A-Za-z0-9\-\.]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ConditionalLockName is the store lock that serialises conditional creates
// and updates of one resource type in one account when the Resolver is not
// a ConditionalLocker.
func ConditionalLockName(account, typ string) string {
	return "kiln/conditional/" + account + "/" + typ
}

// lock takes the conditional locks of the given entries (sorted, so two
// transactions cannot deadlock) and returns their release.
func (p *processing) lock(ctx context.Context, es []*entry) (func(), error) {
	if _, ok := p.h.cfg.Resolver.(ConditionalLocker); !ok && p.h.cfg.Locker == nil {
		return func() {}, nil
	}
	set := map[string]bool{}
	for _, e := range es {
		if e.ifNoneExist != nil || (e.query != nil && e.method != http.MethodDelete) {
			set[ConditionalLockName(p.account, e.typ)] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	cl, _ := p.h.cfg.Resolver.(ConditionalLocker)
	for _, n := range names {
		var u func()
		var err error
		if cl != nil {
			u, err = cl.ConditionalLock(ctx, p.account, strings.TrimPrefix(n, ConditionalLockName(p.account, "")))
		} else {
			u, err = p.h.cfg.Locker.Lock(ctx, n)
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("bundle: conditional lock: %w", err)
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// ConditionalLocker is implemented by a Resolver that owns the lock of
// conditional writes (search.Searcher does), so that bundle entries and
// direct conditional requests exclude each other.
type ConditionalLocker interface {
	ConditionalLock(ctx context.Context, account, resourceType string) (unlock func(), err error)
}

// resolve runs a conditional search.
func (p *processing) resolve(ctx context.Context, typ string, q url.Values) ([]store.Ref, error) {
	refs, err := p.h.cfg.Resolver.Resolve(ctx, p.account, typ, q)
	if err != nil {
		return nil, err
	}
	return refs, nil
}

func multipleMatches(typ string, q url.Values, n int) error {
	return clientError(412, "multiple-matches", rest.DetailPrecondition,
		"the conditional search %s?%s matches %d resources; it must match at most one", typ, q.Encode(), n)
}

// identify resolves an entry's target: conditional searches, assigned ids.
func (p *processing) identify(ctx context.Context, e *entry) error {
	switch e.method {
	case http.MethodPost:
		if e.ifNoneExist != nil {
			refs, err := p.resolve(ctx, e.typ, e.ifNoneExist)
			if err != nil {
				return err
			}
			switch len(refs) {
			case 0:
			case 1:
				e.noop = true
				e.id = refs[0].ID
				return nil
			default:
				return multipleMatches(e.typ, e.ifNoneExist, len(refs))
			}
		}
		id, err := p.h.res.NewID()
		if err != nil {
			return err
		}
		e.id = id
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		if e.query == nil {
			return nil
		}
		refs, err := p.resolve(ctx, e.typ, e.query)
		if err != nil {
			return err
		}
		switch len(refs) {
		case 0:
			switch e.method {
			case http.MethodDelete:
				e.noop = true
			case http.MethodPatch:
				return clientError(404, "not-found", rest.DetailNotFound, "the conditional patch %s?%s matches no resource", e.typ, e.query.Encode())
			default:
				// Conditional update with no match creates: with the
				// resource's own id if it has one, else a new id.
				e.id = "" // set from the resource in parseResource
			}
		case 1:
			e.id = refs[0].ID
		default:
			return multipleMatches(e.typ, e.query, len(refs))
		}
	}
	return nil
}

// mapFullURL records the entry's fullUrl → Type/id.
func (p *processing) mapFullURL(e *entry) error {
	if e.fullURL == "" || e.id == "" || e.phase == phaseGet || e.method == http.MethodDelete {
		return nil
	}
	target := e.typ + "/" + e.id
	if prev, dup := p.fullURLs[e.fullURL]; dup {
		return badRequest("fullUrl %q appears in more than one entry (also for %s)", e.fullURL, prev)
	}
	p.fullURLs[e.fullURL] = target
	if e.method == http.MethodPost {
		if rel, ok := strings.CutPrefix(e.fullURL, p.base+"/"); ok && rel != target {
			if _, dup := p.fullURLs[rel]; !dup {
				p.fullURLs[rel] = target
			}
		}
	}
	return nil
}

// parseResource decodes and validates the entry's resource.
func (p *processing) parseResource(e *entry) error {
	if e.method != http.MethodPost && e.method != http.MethodPut {
		return nil
	}
	if e.noop {
		return nil
	}
	var res map[string]any
	var err error
	if e.decoded != nil {
		res, err = p.h.res.Check(e.decoded, e.typ)
	} else {
		res, err = p.h.res.Parse(e.raw, e.typ)
	}
	if err != nil {
		return err
	}
	rid, _ := res["id"].(string)
	if e.method == http.MethodPut {
		switch {
		case e.query != nil && e.id == "": // conditional update, no match
			if rid == "" {
				if e.id, err = p.h.res.NewID(); err != nil {
					return err
				}
			} else {
				e.id = rid
			}
		case rid == "":
			if e.query == nil {
				return clientError(400, "required", rest.DetailInvalid, "the resource has no id; a PUT must carry the id %q of its request.url", e.id)
			}
		case rid != e.id:
			return clientError(400, "invalid", rest.DetailInvalid, "the resource id %q does not match the id %q the request targets", rid, e.id)
		}
	}
	e.res = res
	e.refSites = collectRefs(res, nil)
	e.condRefs = conditionalRefs(e.refSites)
	return nil
}

// rewrite replaces fullUrl and conditional references in the entry's
// resource (once).
func (p *processing) rewrite(e *entry) error {
	if e.res == nil || e.rewritten {
		return nil
	}
	e.rewritten = true
	return rewriteAt(e.refSites, func(ref string) (string, error) {
		if t, ok := p.fullURLs[ref]; ok {
			return t, nil
		}
		if t, ok := p.condRefs[ref]; ok {
			return t, nil
		}
		if err, ok := p.condErrs[ref]; ok {
			return "", err
		}
		if strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") {
			return "", clientError(400, "not-found", rest.DetailBadRequest, "the reference %q names no entry of this Bundle (no entry has it as fullUrl)", ref)
		}
		return ref, nil
	})
}

// resolveConditionalRefs resolves every distinct conditional reference of
// the given entries once. Failures are kept per reference so each entry
// that uses one fails.
func (p *processing) resolveConditionalRefs(ctx context.Context, es []*entry) error {
	for _, e := range es {
		for _, ref := range e.condRefs {
			if _, ok := p.condRefs[ref]; ok {
				continue
			}
			if _, ok := p.condErrs[ref]; ok {
				continue
			}
			typ, q, _ := strings.Cut(ref, "?")
			err := p.h.res.CheckType(typ)
			var query url.Values
			if err == nil {
				query, err = parseQuery(q)
			}
			if err == nil && p.h.cfg.Resolver == nil {
				err = notSupported("conditional references such as %q are not supported by this server yet (no search resolver)", ref)
			}
			var refs []store.Ref
			if err == nil {
				refs, err = p.resolve(ctx, typ, query)
			}
			if err == nil {
				switch len(refs) {
				case 1:
					p.condRefs[ref] = refs[0].Type + "/" + refs[0].ID
					continue
				case 0:
					err = clientError(400, "not-found", rest.DetailBadRequest, "the conditional reference %q matches no resource; it must match exactly one", ref)
				default:
					err = clientError(412, "multiple-matches", rest.DetailPrecondition, "the conditional reference %q matches %d resources; it must match exactly one", ref, len(refs))
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.condErrs[ref] = err
		}
	}
	return nil
}

// prepare builds the entry's write against the current state.
func (p *processing) prepare(ctx context.Context, e *entry) error {
	if err := p.rewrite(e); err != nil {
		return err
	}
	e.existing, e.prep = nil, resources.Prepared{}
	switch e.method {
	case http.MethodPost:
		if e.noop {
			cur, err := p.h.res.Current(ctx, p.keys, p.account, e.typ, e.id)
			if err != nil {
				return err
			}
			e.existing = cur
			return nil
		}
		pr, err := p.h.res.PrepareCreate(ctx, p.keys, e.typ, e.id, e.res)
		if err != nil {
			return err
		}
		e.prep = pr
	case http.MethodPut:
		cur, err := p.current(ctx, e)
		if err != nil {
			return err
		}
		pr, err := p.h.res.PrepareUpdate(p.keys, e.typ, e.id, e.res, cur, e.ifMatch)
		if err != nil {
			return err
		}
		e.prep = pr
	case http.MethodPatch:
		cur, err := p.current(ctx, e)
		if err != nil {
			return err
		}
		if cur == nil {
			return resources.ErrNotFound
		}
		if cur.Deleted {
			return &resources.GoneError{Type: e.typ, ID: e.id, VersionID: cur.VersionID}
		}
		res, err := p.patched(e, cur)
		if err != nil {
			return err
		}
		pr, err := p.h.res.PrepareUpdate(p.keys, e.typ, e.id, res, cur, e.ifMatch)
		if err != nil {
			return err
		}
		e.prep = pr
	case http.MethodDelete:
		if e.noop {
			return nil
		}
		cur, err := p.current(ctx, e)
		if err != nil {
			return err
		}
		pr, err := p.h.res.PrepareDelete(e.typ, e.id, cur, e.ifMatch)
		if err != nil {
			return err
		}
		e.prep = pr
	}
	return nil
}

func (p *processing) current(ctx context.Context, e *entry) (*resources.Resource, error) {
	cur, err := p.h.res.Current(ctx, p.keys, p.account, e.typ, e.id)
	if errors.Is(err, resources.ErrNotFound) {
		return nil, nil
	}
	return cur, err
}

// written reports whether the entry's prepared write goes to the store.
func (e *entry) written() bool {
	return !e.noop && e.phase != phaseGet && e.prep.Outcome != 0
}

// finish records the result of a prepared (and committed) entry.
func (e *entry) finish(r resources.Resource) {
	e.done = true
	switch {
	case e.existing != nil:
		e.result, e.outcome = *e.existing, resources.Unchanged
	case e.noop:
		e.outcome = resources.Unchanged
	default:
		e.result, e.outcome = r, e.prep.Outcome
	}
}

// parallel runs fn over es with at most workers goroutines.
func parallel(workers int, es []*entry, fn func(e *entry)) {
	if workers <= 1 || len(es) < 2 {
		for _, e := range es {
			fn(e)
		}
		return
	}
	workers = min(workers, len(es))
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(es) {
					return
				}
				fn(es[i])
			}
		}()
	}
	wg.Wait()
}

// firstError returns the error of the lowest-index entry that failed.
func firstError(es []*entry, errs map[int]error) error {
	best := -1
	for i := range errs {
		if best < 0 || i < best {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	for _, e := range es {
		if e.index == best {
			return e.fail(errs[best])
		}
	}
	return nil
}

// inPhases returns the entries ordered by phase, stable in request order.
func (p *processing) inPhases() [phases][]*entry {
	var out [phases][]*entry
	for _, e := range p.entries {
		if e.done {
			continue
		}
		out[e.phase] = append(out[e.phase], e)
	}
	return out
}

// runTransaction prepares every write, then commits them at once.
func (p *processing) runTransaction(ctx context.Context) error {
	byPhase := p.inPhases()
	var writes []*entry
	for ph := phaseDelete; ph < phaseGet; ph++ {
		writes = append(writes, byPhase[ph]...)
	}
	unlock, err := p.lock(ctx, writes)
	if err != nil {
		return err
	}
	defer unlock()

	// Identities and duplicate targets.
	p.fullURLs = make(map[string]string, len(writes))
	p.condRefs, p.condErrs = map[string]string{}, map[string]error{}
	for _, e := range writes {
		if err := p.identify(ctx, e); err != nil {
			return e.fail(err)
		}
	}
	var mu sync.Mutex
	errs := map[int]error{}
	collect := func(e *entry, err error) {
		if err != nil {
			mu.Lock()
			errs[e.index] = err
			mu.Unlock()
		}
	}
	parallel(p.h.cfg.Workers, writes, func(e *entry) { collect(e, p.parseResource(e)) })
	if err := firstError(writes, errs); err != nil {
		return err
	}
	targets := make(map[string]int, len(writes))
	for _, e := range writes {
		if e.id == "" {
			continue
		}
		key := e.typ + "/" + e.id
		if prev, dup := targets[key]; dup && !(e.noop && e.method == http.MethodDelete) {
			return e.fail(badRequest("%s is the target of Bundle.entry[%d] too; a transaction may touch each resource once", key, prev))
		}
		targets[key] = e.index
		if err := p.mapFullURL(e); err != nil {
			return e.fail(err)
		}
	}
	if err := p.resolveConditionalRefs(ctx, writes); err != nil {
		return err
	}

	release := func() {}
	defer func() { release() }()
	for attempt := 0; ; attempt++ {
		if attempt == pessimisticAfter {
			// Optimism failed repeatedly: take the targets' locks, so
			// transactions touching the same resources take turns.
			if release, err = p.lockTargets(ctx, writes); err != nil {
				return err
			}
		}
		parallel(p.h.cfg.Workers, writes, func(e *entry) { collect(e, p.prepare(ctx, e)) })
		if err := firstError(writes, errs); err != nil {
			return err
		}
		ps := make([]resources.Prepared, 0, len(writes))
		var committed []*entry
		for _, e := range writes {
			if e.written() {
				ps = append(ps, e.prep)
				committed = append(committed, e)
			}
		}
		out, err := p.h.res.Commit(ctx, p.account, ps)
		if errors.Is(err, resources.ErrConflict) && attempt < maxRetries && ctx.Err() == nil {
			// A concurrent writer won: prepare against the new state.
			if err := sleep(ctx, time.Duration(attempt+1)*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for i, e := range committed {
			e.finish(out[i])
		}
		for _, e := range writes {
			if !e.done {
				e.finish(resources.Resource{})
			}
		}
		break
	}
	p.runGets(ctx, byPhase[phaseGet])
	return nil
}

// runBatch processes each entry on its own, phase by phase.
func (p *processing) runBatch(ctx context.Context) error {
	byPhase := p.inPhases()
	p.fullURLs = map[string]string{}
	p.condRefs, p.condErrs = map[string]string{}, map[string]error{}
	var mu sync.Mutex
	// Ids first, so fullUrl references between entries resolve when both succeed.
	for ph := phaseDelete; ph < phaseGet; ph++ {
		for _, e := range byPhase[ph] {
			if e.method == http.MethodPost && e.ifNoneExist == nil {
				id, err := p.h.res.NewID()
				if err != nil {
					return err
				}
				e.id = id
				if err := p.mapFullURL(e); err != nil {
					e.err, e.done = err, true
				}
			}
		}
	}
	for ph := phaseDelete; ph < phaseGet; ph++ {
		es := byPhase[ph]
		parallel(p.h.cfg.Workers, es, func(e *entry) {
			if e.done {
				return
			}
			err := p.batchEntry(ctx, e, &mu)
			if err != nil {
				e.err, e.done = err, true
			}
		})
	}
	p.runGets(ctx, byPhase[phaseGet])
	return ctx.Err()
}

// batchEntry processes one batch write entry.
func (p *processing) batchEntry(ctx context.Context, e *entry, mu *sync.Mutex) error {
	unlock, err := p.lock(ctx, []*entry{e})
	if err != nil {
		return err
	}
	defer unlock()
	if e.id == "" || e.query != nil || e.ifNoneExist != nil {
		if err := p.identify(ctx, e); err != nil {
			return err
		}
	}
	if err := p.parseResource(e); err != nil {
		return err
	}
	mu.Lock()
	err = p.resolveConditionalRefs(ctx, []*entry{e})
	mu.Unlock()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		mu.Lock()
		err := p.rewrite(e)
		mu.Unlock()
		if err != nil {
			return err
		}
		if err := p.prepare(ctx, e); err != nil {
			return err
		}
		if !e.written() {
			e.finish(resources.Resource{})
			return nil
		}
		out, err := p.h.res.Commit(ctx, p.account, []resources.Prepared{e.prep})
		if errors.Is(err, resources.ErrConflict) && e.ifMatch == resources.NoVersion && attempt < maxRetries && ctx.Err() == nil {
			continue
		}
		if errors.Is(err, resources.ErrConflict) && e.ifMatch != resources.NoVersion {
			return &resources.PreconditionError{Want: e.ifMatch, Msg: "the resource changed concurrently"}
		}
		if err != nil {
			return err
		}
		e.finish(out[0])
		return nil
	}
}

// runGets answers GET entries through the FHIR API.
func (p *processing) runGets(ctx context.Context, es []*entry) {
	parallel(p.h.cfg.Workers, es, func(e *entry) {
		e.done = true
		u := rest.Prefix + p.account
		if e.rel != "" {
			u += "/" + e.rel
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			e.err = badRequest("request.url %q is not a valid URL: %v", e.url, err)
			return
		}
		req.Host, req.TLS, req.RemoteAddr = p.req.Host, p.req.TLS, p.req.RemoteAddr
		req.Header.Set("Accept", "application/fhir+json")
		if e.req.IfNoneMatch != "" {
			req.Header.Set("If-None-Match", e.req.IfNoneMatch)
		}
		if e.req.IfModifiedSince != "" {
			if t, err := time.Parse(time.RFC3339Nano, e.req.IfModifiedSince); err == nil {
				req.Header.Set("If-Modified-Since", t.UTC().Format(http.TimeFormat))
			}
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		p.h.cfg.Reads.ServeHTTP(rec, req)
		e.get = rec
	})
}

// recorder is the ResponseWriter of a GET entry.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   []byte
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.body = append(r.body, b...)
	return len(b), nil
}
