package search

import (
	"math"
	"strconv"
	"time"
)

// The blind date and number indexes are trees over a fixed integer domain
// with a fan-out of 16 (four bits per level). A value is indexed by the
// prefix of its integer at every level but the root (5 tokens for a day, 6
// for a number); a range query becomes the nodes that exactly cover the
// range's integers (at most 30 per level), so the store answers it as one
// token IN-list.
const fanBits = 4

// dayBits is the size of the day-number domain: 2^20 days from 0001-01-01
// (about 2870 years); days outside are clamped.
const dayBits = 20

// numBits is the size of the number domain: the top 24 bits of the
// order-preserving encoding of a float64 (sign, exponent and 12 bits of
// mantissa, a relative resolution of about 2.4e-4).
const numBits = 24

// unixDay0001 is the number of days from 0001-01-01 to 1970-01-01.
const unixDay0001 = 719162

// dayNumber maps an instant to its UTC day number since 0001-01-01,
// clamped to the domain.
func dayNumber(t time.Time) uint64 {
	sec := t.Unix()
	days := sec / 86400
	if sec%86400 < 0 {
		days--
	}
	days += unixDay0001
	if days < 0 {
		return 0
	}
	if days > 1<<dayBits-1 {
		return 1<<dayBits - 1
	}
	return uint64(days)
}

// numKey maps a float to the number-tree domain, preserving order.
func numKey(f float64) uint64 {
	if math.IsNaN(f) {
		f = 0
	}
	b := math.Float64bits(f)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return b >> (64 - numBits)
}

// treeNodes returns the node names of v at every level below the root of a
// tree of the given bit size.
func treeNodes(v uint64, bits int) []string {
	out := make([]string, 0, bits/fanBits)
	for l := 0; l < bits/fanBits; l++ {
		out = append(out, nodeName(l, v>>(uint(l)*fanBits)))
	}
	return out
}

func nodeName(level int, prefix uint64) string {
	return string(appendNodeName(nil, level, prefix))
}

// appendNodeName appends the name of a tree node: "level:prefix in hex".
func appendNodeName(dst []byte, level int, prefix uint64) []byte {
	dst = strconv.AppendInt(dst, int64(level), 10)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, prefix, 16)
}

// cover returns the node names that exactly cover the integers [a, b] of a
// tree of the given bit size. all is true when the range is the whole
// domain (no constraint); an empty result with all false means the range
// is empty.
func cover(a, b uint64, bits int) (nodes []string, all bool) {
	max := uint64(1)<<uint(bits) - 1
	if b > max {
		b = max
	}
	if a > b {
		return nil, false
	}
	if a == 0 && b == max {
		return nil, true
	}
	const f = 1 << fanBits
	lo, hi := a, b
	for l := 0; l < bits/fanBits && lo <= hi; l++ {
		for lo%f != 0 && lo <= hi {
			nodes = append(nodes, nodeName(l, lo))
			lo++
		}
		for (hi+1)%f != 0 && lo <= hi {
			nodes = append(nodes, nodeName(l, hi))
			if hi == 0 {
				return nodes, false
			}
			hi--
		}
		if lo > hi {
			break
		}
		if l == bits/fanBits-1 {
			// remaining full top-level nodes
			for x := lo; x <= hi; x++ {
				nodes = append(nodes, nodeName(l, x))
			}
			break
		}
		lo /= f
		hi = (hi+1)/f - 1
	}
	return nodes, false
}
