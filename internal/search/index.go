package search

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnhealth/kiln/internal/fhirpath"
	"github.com/kilnhealth/kiln/internal/seal"
	"github.com/kilnhealth/kiln/internal/searchparam"
	"github.com/kilnhealth/kiln/internal/store"
)

// Token kinds (the third field of every blind token). They are part of the
// stored format: changing one needs a $reindex. TestTokenKindsPinned pins
// them.
const (
	kPresent  = "m"   // the parameter has a value (:missing)
	kStrPre   = "s^"  // folded string prefix
	kStrExact = "sx"  // raw string (:exact)
	kStrTri   = "s3"  // folded trigram (:contains)
	kTokSC    = "tsc" // system|code
	kTokNC    = "tnc" // code without system (|code)
	kTokC     = "tc"  // code, any system
	kTokS     = "ts"  // system|
	kTokText  = "tt"  // first 3 runes of each display/text word (:text)
	kTokType  = "tot" // identifier typeSystem|typeCode|value (:of-type)
	kRef      = "r"   // Type/id
	kRefID    = "ri"  // id, any type
	kRefURL   = "ru"  // absolute or canonical URL
	kRefIdent = "rk"  // identifier system|value (:identifier)
	kRefIdV   = "rkv" // identifier value, any system
	kDateLow  = "dl"  // tree node of the first day
	kDateHigh = "dh"  // tree node of the last day
	kNum      = "n"   // number tree node
	kQty      = "q"   // quantity tree node, any unit
	kQtyCode  = "qc"  // code|node
	kURI      = "u"   // exact uri
	kURIBelow = "ub"  // uri path prefix (:below)
	kSort     = "sort"
)

// Indexer turns resources into blind tokens and sealed sort values. It
// implements resources.Indexer. Safe for concurrent use.
type Indexer struct {
	ps      *params
	scratch sync.Pool // *indexScratch
}

// indexScratch is the reusable working memory of one Index call. It holds
// plaintext search values while in use and is cleared before reuse.
type indexScratch struct {
	batch  seal.TokenBatch
	toks   []byte   // the tokens of batch, back to back
	sortAt []int    // batch index of each sort slot, ascending
	uniq   []int32  // batch indexes of the distinct value tokens
	table  []uint32 // open-addressing set of token indexes + 1
	sorts  []store.SortValue
	num    []byte   // tree node names
	bases  []string // choice-type bases of the resource's keys
	ev     fhirpath.Evaluator
}

// maxScratch bounds the memory an idle scratch keeps: one resource with a
// huge index does not pin its buffers for ever.
const maxScratch = 1 << 20

// NewIndexer compiles every R4 search parameter expression of reg once.
// model supplies element types (nil: inferred from JSON).
func NewIndexer(reg *searchparam.Registry, model fhirpath.Model) (*Indexer, error) {
	if reg == nil {
		return nil, fmt.Errorf("search: NewIndexer needs a registry")
	}
	if model != nil {
		// Every resource asks the same (type, element) questions: answer
		// them from memory rather than building a new slice each time.
		model = fhirpath.CachedModel(model)
	}
	x := &Indexer{ps: newParams(reg, fhirpath.Env{Model: model})}
	x.scratch.New = func() any { return new(indexScratch) }
	return x, nil
}

// Broken lists the parameters whose expressions did not compile (they are
// neither indexed nor searchable).
func (x *Indexer) Broken() []string { return append([]string(nil), x.ps.broken...) }

// Index returns the blind tokens and sealed sort values of res, a resource
// of resourceType with the given id (meta.lastUpdated already stamped).
// Tokens are distinct; the order is unspecified. After keys are wiped it
// fails with an error wrapping seal.ErrWiped.
func (x *Indexer) Index(keys *seal.AccountKeys, resourceType, id string, res map[string]any) ([][]byte, []store.SortValue, error) {
	list, ok := x.ps.lists[resourceType]
	if !ok {
		return nil, nil, fmt.Errorf("search: index: unknown resource type %q", resourceType)
	}
	s := x.scratch.Get().(*indexScratch)
	defer x.release(s)
	e := emitter{b: &s.batch, typ: resourceType, num: s.num[:0]}
	// Parameters whose expression starts from elements res lacks yield
	// nothing: skip their evaluation. The analysis is made for
	// resourceType, so it only applies when res says it is one.
	roots, typed := x.ps.roots[resourceType], x.ps.typed[resourceType]
	if rt, _ := res["resourceType"].(string); rt != resourceType {
		roots, typed = nil, nil
	}
	s.bases = appendChoiceBases(s.bases[:0], res)
	aliases := x.ps.aliases[resourceType]
	for i, p := range list {
		if roots != nil && roots[i] != nil && roots[i].absent(res, s.bases) {
			continue
		}
		e.code = p.Code
		ex := p.expr
		if typed != nil {
			ex = typed[i]
		}
		if p.Type == searchparam.Composite {
			rows := x.ps.extractCompositeWith(&s.ev, p, ex, res)
			if len(rows) == 0 {
				continue
			}
			e.b.AddFixed(e.typ, e.code, kPresent)
			for _, row := range rows {
				for i := range row {
					if _, ok := aliases[p.comps[i].code]; ok {
						continue // its definition's tokens stand in for it
					}
					e.code = p.comps[i].code
					e.emit(&row[i])
				}
			}
			continue
		}
		_, aliased := aliases[p.Code]
		if aliased && !p.sortable() {
			continue // the tokens of the parameters it is made of stand in
		}
		v := x.ps.extractWith(&s.ev, p, ex, res)
		if !v.present {
			continue
		}
		if !aliased {
			e.emit(&v)
			e.b.AddFixed(e.typ, e.code, kPresent)
		}
		if p.sortable() {
			if key := sortKey(&v); key != nil {
				b := seal.Binding{Account: keys.Account(), Type: resourceType, ID: id, Purpose: p.purpose}
				// Sort values are short: compressing them cost more
				// time than the bytes it saved.
				sealed, err := keys.SealUncompressed(key, b)
				if err != nil {
					return nil, nil, fmt.Errorf("search: seal sort value %s: %w", p.Code, err)
				}
				s.sortAt = append(s.sortAt, s.batch.Len())
				e.b.AddFixed(e.typ, e.code, kSort)
				s.sorts = append(s.sorts, store.SortValue{Value: sealed})
			}
		}
	}
	s.num = e.num
	var err error
	if s.toks, err = keys.AppendTokens(s.toks[:0], &s.batch); err != nil {
		return nil, nil, fmt.Errorf("search: index tokens: %w", err)
	}
	s.distinct()
	// One allocation holds every token and sort slot; each slice is capped
	// so that appending to one cannot overwrite the next.
	const n = seal.TokenSize
	out := make([]byte, (len(s.uniq)+len(s.sortAt))*n)
	tokens := make([][]byte, len(s.uniq))
	for i, j := range s.uniq {
		copy(out[i*n:], s.toks[int(j)*n:][:n])
		tokens[i] = out[i*n : (i+1)*n : (i+1)*n]
	}
	out = out[len(s.uniq)*n:]
	var sorts []store.SortValue
	if len(s.sorts) > 0 {
		sorts = append([]store.SortValue(nil), s.sorts...)
	}
	for i, j := range s.sortAt {
		copy(out[i*n:], s.toks[j*n:][:n])
		sorts[i].Slot = out[i*n : (i+1)*n : (i+1)*n]
	}
	return tokens, sorts, nil
}

// distinct fills s.uniq with the index of the first occurrence of every
// distinct token of s.toks that is not a sort slot.
func (s *indexScratch) distinct() {
	const n = seal.TokenSize
	count := len(s.toks) / n
	size := 16
	for size < 2*count {
		size <<= 1
	}
	s.table = slices.Grow(s.table[:0], size)[:size]
	clear(s.table)
	mask := uint64(size - 1)
	s.uniq = s.uniq[:0]
	next := 0 // position in s.sortAt
	for i := 0; i < count; i++ {
		if next < len(s.sortAt) && s.sortAt[next] == i {
			next++
			continue
		}
		t := s.toks[i*n:][:n]
		// Tokens are HMAC outputs: their first bytes are already uniform.
		for h := binary.LittleEndian.Uint64(t) & mask; ; h = (h + 1) & mask {
			j := s.table[h]
			if j == 0 {
				s.table[h] = uint32(i + 1)
				s.uniq = append(s.uniq, int32(i))
				break
			}
			if bytes.Equal(s.toks[int(j-1)*n:][:n], t) {
				break
			}
		}
	}
}

// release clears s (it holds plaintext search values) and returns it to
// the pool unless it grew too large to keep.
func (x *Indexer) release(s *indexScratch) {
	s.batch.Reset()
	clear(s.num)
	s.sortAt = s.sortAt[:0]
	clear(s.sorts)
	s.sorts = s.sorts[:0]
	clear(s.bases) // they point into the resource
	s.bases = s.bases[:0]
	s.ev = fhirpath.Evaluator{}
	if cap(s.toks) > maxScratch || cap(s.table) > maxScratch/4 {
		return
	}
	x.scratch.Put(s)
}

func compCode(code string, i int) string { return code + "$" + strconv.Itoa(i) }

// emitter adds the token inputs of one parameter's values to a batch.
type emitter struct {
	b    *seal.TokenBatch
	typ  string // resource type
	code string // parameter (or composite component) code
	num  []byte // scratch for tree node names
}

func (e *emitter) add(kind string, value ...string) { e.b.Add(e.typ, e.code, kind, value...) }

// addTree adds kind tokens for the tree nodes of v (see treeNodes), each
// preceded by pre.
func (e *emitter) addTree(kind, pre string, v uint64, bits int) {
	for l := 0; l < bits/fanBits; l++ {
		e.num = append(e.num[:0], pre...)
		e.num = appendNodeName(e.num, l, v>>(uint(l)*fanBits))
		e.b.AddBytes(e.typ, e.code, kind, e.num)
	}
}

// emit adds the token inputs of v.
func (e *emitter) emit(v *values) {
	for _, s := range v.strs {
		e.add(kStrExact, s)
		f := fold(s)
		// prefixes and trigrams of f (see prefixes and trigrams), as
		// substrings; repeated trigrams give repeated tokens, which Index
		// drops.
		runes, next := 0, 0
		var tri [3]int // byte offsets of the last three rune starts
		for i := range f {
			if runes >= 3 {
				e.add(kStrTri, f[tri[0]:i])
			}
			tri[0], tri[1], tri[2] = tri[1], tri[2], i
			if runes > 0 && next < len(prefixLengths) && prefixLengths[next] == runes {
				e.add(kStrPre, f[:i])
				next++
			}
			runes++
		}
		if runes >= 3 {
			e.add(kStrTri, f[tri[0]:])
		}
		if next < len(prefixLengths) && prefixLengths[next] == runes {
			e.add(kStrPre, f)
		}
	}
	for _, t := range v.tokens {
		if t.code != "" {
			e.add(kTokC, t.code)
			if t.hasSystem {
				e.add(kTokSC, t.system, "|", t.code)
			} else {
				e.add(kTokNC, t.code)
			}
		}
		if t.hasSystem {
			e.add(kTokS, t.system)
		}
		for _, txt := range t.text {
			for _, w := range words(fold(txt)) {
				e.add(kTokText, textKey(w))
			}
		}
		for _, ty := range t.typeCodes {
			e.add(kTokType, ty.system, "|", ty.code, "|", t.code)
		}
	}
	for _, r := range v.refs {
		if r.typ != "" && r.id != "" { // r.local() != ""
			e.add(kRef, r.typ, "/", r.id)
			e.add(kRefID, r.id)
		}
		if r.url != "" {
			e.add(kRefURL, r.url)
			if r.version != "" {
				e.add(kRefURL, r.url, "|", r.version)
			}
		}
		if r.ident != nil {
			e.add(kRefIdent, r.ident.system, "|", r.ident.code)
			e.add(kRefIdV, r.ident.code)
		}
	}
	for _, d := range v.dates {
		lo, hi := d.dayRange()
		e.addTree(kDateLow, "", lo, dayBits)
		e.addTree(kDateHigh, "", hi, dayBits)
	}
	for _, n := range v.nums {
		k := numKey(n.f)
		if !v.qty {
			e.addTree(kNum, "", k, numBits)
			continue
		}
		e.addTree(kQty, "", k, numBits)
		if n.code != "" {
			e.addTree(kQtyCode, n.code+"|", k, numBits)
		}
		if n.unit != "" && n.unit != n.code {
			e.addTree(kQtyCode, n.unit+"|", k, numBits)
		}
	}
	for _, u := range v.uris {
		e.add(kURI, u)
		for _, p := range uriPrefixes(u) {
			e.add(kURIBelow, p)
		}
	}
}

// textKey is the indexed form of a display word: its first three runes.
func textKey(w string) string { return runePrefix(w, 3) }

// uriPrefixes returns u and every prefix of it ending before a '/' of its
// path (for :below).
func uriPrefixes(u string) []string {
	u = strings.TrimRight(u, "/")
	out := []string{u}
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
		j := strings.IndexByte(u[start:], '/')
		if j < 0 {
			return out
		}
		start += j
	}
	for i := len(u) - 1; i > start; i-- {
		if u[i] == '/' {
			out = append(out, u[:i])
		}
	}
	return out
}

// maxSortRefs is the most references a sort value lists in full (see
// sortKey).
const maxSortRefs = 16

// sortKey encodes the sealed sort value of v:
//
//	u32 len(min) | min | u32 len(max) | max | refs
//
// bytes.Compare on min orders ascending and on max descending. For
// reference parameters refs lists every distinct local reference
// ("Type/id") as u16 length + bytes when there are at most maxSortRefs of
// them (so _has can read a resource's references without decrypting its
// body); otherwise, and for other types, refs is empty.
func sortKey(v *values) []byte {
	var locals []string // distinct, up to maxSortRefs+1
	for _, r := range v.refs {
		if l := r.local(); l != "" && len(locals) <= maxSortRefs && !slices.Contains(locals, l) {
			locals = append(locals, l)
		}
	}
	var lo, hi []byte
	for _, d := range v.dates {
		a, b := timeKey(d.lo()), timeKey(d.hi())
		if lo == nil || bytes.Compare(a, lo) < 0 {
			lo = a
		}
		if hi == nil || bytes.Compare(b, hi) > 0 {
			hi = b
		}
	}
	for _, n := range v.nums {
		k := floatKey(n.f)
		if lo == nil || bytes.Compare(k, lo) < 0 {
			lo = k
		}
		if hi == nil || bytes.Compare(k, hi) > 0 {
			hi = k
		}
	}
	// Otherwise the least and greatest of the string keys.
	var slo, shi string
	have := false
	key := func(k string) {
		if !have || k < slo {
			slo = k
		}
		if !have || k > shi {
			shi = k
		}
		have = true
	}
	if lo == nil {
		for _, s := range v.strs {
			key(fold(s))
		}
		for _, t := range v.tokens {
			if t.code != "" {
				key(t.code)
			}
		}
		for _, r := range v.refs {
			if l := r.local(); l != "" {
				key(l)
			} else if r.url != "" {
				key(r.url)
			}
		}
		for _, u := range v.uris {
			key(u)
		}
	}
	var out []byte
	switch {
	case lo != nil:
		out = make([]byte, 0, 8+len(lo)+len(hi))
		out = binary.BigEndian.AppendUint32(out, uint32(len(lo)))
		out = append(out, lo...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(hi)))
		out = append(out, hi...)
	case have:
		out = make([]byte, 0, 8+len(slo)+len(shi))
		out = binary.BigEndian.AppendUint32(out, uint32(len(slo)))
		out = append(out, slo...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(shi)))
		out = append(out, shi...)
	default:
		return nil
	}
	if len(locals) > 0 && len(locals) <= maxSortRefs {
		base := len(out)
		sort.Strings(locals)
		for _, l := range locals {
			if len(l) > 0xffff {
				return out[:base]
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(l)))
			out = append(out, l...)
		}
	}
	return out
}

// splitSortKey returns the ascending and descending parts of a sort value,
// and its full reference list (nil when not recorded).
func splitSortKey(k []byte) (asc, desc []byte, refs []string, ok bool) {
	next := func() ([]byte, bool) {
		if len(k) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(k)
		if uint64(n) > uint64(len(k)-4) {
			return nil, false
		}
		part := k[4 : 4+n]
		k = k[4+n:]
		return part, true
	}
	if asc, ok = next(); !ok {
		return nil, nil, nil, false
	}
	if desc, ok = next(); !ok {
		return nil, nil, nil, false
	}
	for len(k) >= 2 {
		n := int(binary.BigEndian.Uint16(k))
		if n > len(k)-2 {
			return nil, nil, nil, false
		}
		refs = append(refs, string(k[2:2+n]))
		k = k[2+n:]
	}
	return asc, desc, refs, len(k) == 0
}

func timeKey(t time.Time) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(t.Unix())+1<<63)
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b
}

func floatKey(f float64) []byte {
	b := math.Float64bits(f)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	out := make([]byte, 8)
	binary.BigEndian.PutUint64(out, b)
	return out
}
