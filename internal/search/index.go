package search

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strings"
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
	ps *params
}

// NewIndexer compiles every R4 search parameter expression of reg once.
// model supplies element types (nil: inferred from JSON).
func NewIndexer(reg *searchparam.Registry, model fhirpath.Model) (*Indexer, error) {
	if reg == nil {
		return nil, fmt.Errorf("search: NewIndexer needs a registry")
	}
	return &Indexer{ps: newParams(reg, fhirpath.Env{Model: model})}, nil
}

// Broken lists the parameters whose expressions did not compile (they are
// neither indexed nor searchable).
func (x *Indexer) Broken() []string { return append([]string(nil), x.ps.broken...) }

// Index returns the blind tokens and sealed sort values of res, a resource
// of resourceType with the given id (meta.lastUpdated already stamped).
// Tokens are distinct; the order is unspecified.
func (x *Indexer) Index(keys *seal.AccountKeys, resourceType, id string, res map[string]any) ([][]byte, []store.SortValue, error) {
	list, ok := x.ps.lists[resourceType]
	if !ok {
		return nil, nil, fmt.Errorf("search: index: unknown resource type %q", resourceType)
	}
	seen := map[string]bool{}
	var tokens [][]byte
	var sorts []store.SortValue
	for _, p := range list {
		add := func(code string) func(kind, value string) {
			return func(kind, value string) {
				t := keys.Token(resourceType, code, kind, value)
				if !seen[string(t)] {
					seen[string(t)] = true
					tokens = append(tokens, t)
				}
			}
		}
		if p.Type == searchparam.Composite {
			rows := x.ps.extractComposite(p, res)
			if len(rows) == 0 {
				continue
			}
			add(p.Code)(kPresent, "")
			for _, row := range rows {
				for i := range row {
					emit(&row[i], add(compCode(p.Code, i)))
				}
			}
			continue
		}
		v := x.ps.extract(p, res)
		if !v.present {
			continue
		}
		emit(&v, add(p.Code))
		add(p.Code)(kPresent, "")
		if p.sortable() {
			if key := sortKey(&v); key != nil {
				b := seal.Binding{Account: keys.Account(), Type: resourceType, ID: id, Purpose: "sort:" + p.Code}
				sealed, err := keys.Seal(key, b)
				if err != nil {
					return nil, nil, fmt.Errorf("search: seal sort value %s: %w", p.Code, err)
				}
				sorts = append(sorts, store.SortValue{Slot: keys.Token(resourceType, p.Code, kSort, ""), Value: sealed})
			}
		}
	}
	return tokens, sorts, nil
}

func compCode(code string, i int) string { return fmt.Sprintf("%s$%d", code, i) }

// emit produces the token (kind, value) pairs of v.
func emit(v *values, add func(kind, value string)) {
	for _, s := range v.strs {
		add(kStrExact, s)
		f := fold(s)
		for _, p := range prefixes(f) {
			add(kStrPre, p)
		}
		for _, t := range trigrams(f) {
			add(kStrTri, t)
		}
	}
	for _, t := range v.tokens {
		if t.code != "" {
			add(kTokC, t.code)
			if t.hasSystem {
				add(kTokSC, t.system+"|"+t.code)
			} else {
				add(kTokNC, t.code)
			}
		}
		if t.hasSystem {
			add(kTokS, t.system)
		}
		for _, txt := range t.text {
			for _, w := range words(fold(txt)) {
				add(kTokText, textKey(w))
			}
		}
		for _, ty := range t.typeCodes {
			add(kTokType, ty.system+"|"+ty.code+"|"+t.code)
		}
	}
	for _, r := range v.refs {
		if l := r.local(); l != "" {
			add(kRef, l)
			add(kRefID, r.id)
		}
		if r.url != "" {
			add(kRefURL, r.url)
			if r.version != "" {
				add(kRefURL, r.url+"|"+r.version)
			}
		}
		if r.ident != nil {
			add(kRefIdent, r.ident.system+"|"+r.ident.code)
			add(kRefIdV, r.ident.code)
		}
	}
	for _, d := range v.dates {
		lo, hi := d.dayRange()
		for _, n := range treeNodes(lo, dayBits) {
			add(kDateLow, n)
		}
		for _, n := range treeNodes(hi, dayBits) {
			add(kDateHigh, n)
		}
	}
	for _, n := range v.nums {
		k := numKey(n.f)
		for _, node := range treeNodes(k, numBits) {
			if !v.qty {
				add(kNum, node)
				continue
			}
			add(kQty, node)
			for _, c := range unitCodes(n) {
				add(kQtyCode, c+"|"+node)
			}
		}
	}
	for _, u := range v.uris {
		add(kURI, u)
		for _, p := range uriPrefixes(u) {
			add(kURIBelow, p)
		}
	}
}

// textKey is the indexed form of a display word: its first three runes.
func textKey(w string) string { return runePrefix(w, 3) }

// unitCodes are the unit names a quantity answers to: its code, and its
// human unit when different.
func unitCodes(n numValue) []string {
	var out []string
	if n.code != "" {
		out = append(out, n.code)
	}
	if n.unit != "" && n.unit != n.code {
		out = append(out, n.unit)
	}
	return out
}

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
	var keys [][]byte
	for _, s := range v.strs {
		keys = append(keys, []byte(fold(s)))
	}
	for _, t := range v.tokens {
		if t.code != "" {
			keys = append(keys, []byte(t.code))
		}
	}
	var locals []string
	seen := map[string]bool{}
	for _, r := range v.refs {
		if l := r.local(); l != "" {
			keys = append(keys, []byte(l))
			if !seen[l] {
				seen[l] = true
				locals = append(locals, l)
			}
		} else if r.url != "" {
			keys = append(keys, []byte(r.url))
		}
	}
	for _, u := range v.uris {
		keys = append(keys, []byte(u))
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
	if lo == nil && len(keys) > 0 {
		sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
		lo, hi = keys[0], keys[len(keys)-1]
	}
	if lo == nil {
		return nil
	}
	out := make([]byte, 0, 8+len(lo)+len(hi))
	out = binary.BigEndian.AppendUint32(out, uint32(len(lo)))
	out = append(out, lo...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(hi)))
	out = append(out, hi...)
	if len(locals) > 0 && len(locals) <= maxSortRefs {
		sort.Strings(locals)
		for _, l := range locals {
			if len(l) > 0xffff {
				return out[:8+len(lo)+len(hi)]
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
