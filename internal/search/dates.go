package search

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// span is a half-open instant range [low, high). An open end is unbounded.
type span struct {
	low, high         time.Time
	lowOpen, highOpen bool
}

var (
	minTime = time.Date(-9999, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func (s span) lo() time.Time {
	if s.lowOpen {
		return minTime
	}
	return s.low
}

func (s span) hi() time.Time {
	if s.highOpen {
		return maxTime
	}
	return s.high
}

// dayRange returns the first and last UTC day numbers the span touches.
func (s span) dayRange() (uint64, uint64) {
	lo := uint64(0)
	if !s.lowOpen {
		lo = dayNumber(s.low)
	}
	hi := uint64(1)<<dayBits - 1
	if !s.highOpen {
		hi = dayNumber(s.high.Add(-time.Nanosecond))
	}
	return lo, hi
}

// parseDateSpan parses a FHIR date, dateTime or instant (and the search
// forms YYYY-MM-DDThh:mm[:ss[.fff]][tz]) into the span its precision
// covers. A value without a time zone is taken as UTC.
func parseDateSpan(s string) (span, error) {
	bad := func() (span, error) { return span{}, fmt.Errorf("search: %q is not a valid date", s) }
	n := len(s)
	if n < 4 {
		return bad()
	}
	num := func(from, to int) (int, bool) {
		if to > len(s) {
			return 0, false
		}
		v := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok := num(0, 4)
	if !ok {
		return bad()
	}
	if n == 4 {
		lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return span{low: lo, high: lo.AddDate(1, 0, 0)}, nil
	}
	if s[4] != '-' {
		return bad()
	}
	m, ok := num(5, 7)
	if !ok || m < 1 || m > 12 {
		return bad()
	}
	if n == 7 {
		lo := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
		return span{low: lo, high: lo.AddDate(0, 1, 0)}, nil
	}
	if n < 10 || s[7] != '-' {
		return bad()
	}
	d, ok := num(8, 10)
	if !ok || d < 1 || d > daysIn(y, m) {
		return bad()
	}
	if n == 10 {
		lo := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
		return span{low: lo, high: lo.AddDate(0, 0, 1)}, nil
	}
	if s[10] != 'T' {
		return bad()
	}
	hh, ok1 := num(11, 13)
	mm, ok2 := num(14, 16)
	if !ok1 || !ok2 || n < 16 || s[13] != ':' || hh > 23 || mm > 59 {
		return bad()
	}
	i := 16
	sec, nanos := 0, 0
	prec := time.Minute
	if i < n && s[i] == ':' {
		v, ok := num(17, 19)
		if !ok || v > 59 {
			return bad()
		}
		sec = v
		prec = time.Second
		i = 19
		if i < n && s[i] == '.' {
			j := i + 1
			for j < n && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			digits := s[i+1 : j]
			if len(digits) == 0 {
				return bad()
			}
			if len(digits) > 9 {
				digits = digits[:9]
			}
			f, _ := strconv.Atoi(digits)
			nanos = f * int(math.Pow10(9-len(digits)))
			prec = time.Duration(math.Pow10(9 - len(digits)))
			i = j
		}
	}
	loc := time.UTC
	switch rest := s[i:]; {
	case rest == "" || rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		th, ok1 := num(i+1, i+3)
		tm, ok2 := num(i+4, i+6)
		if !ok1 || !ok2 || th > 14 || tm > 59 {
			return bad()
		}
		off := th*3600 + tm*60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return bad()
	}
	lo := time.Date(y, time.Month(m), d, hh, mm, sec, nanos, loc).UTC()
	return span{low: lo, high: lo.Add(prec)}, nil
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
