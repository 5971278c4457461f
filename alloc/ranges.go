package alloc

import (
	"cmp"
	"math"
	"slices"

	"github.com/atoll/atoll/api"
)

// Range lists are kept normalized: sorted by begin, disjoint and not adjacent ([1-2] and
// [3-4] become [1-4]), so equal sets of values have equal lists. Functions here never
// modify their arguments and may return one of them.

// normalizeRanges returns a normalized copy of ranges, each of which has begin <= end.
func normalizeRanges(ranges []api.ValueRange) []api.ValueRange {
	if len(ranges) == 0 {
		return nil
	}
	sorted := slices.Clone(ranges)
	slices.SortFunc(sorted, func(a, b api.ValueRange) int { return cmp.Compare(a.Begin, b.Begin) })
	out := sorted[:0]
	for _, rg := range sorted {
		out = appendRange(out, rg)
	}
	return slices.Clip(out)
}

// appendRange appends rg to a normalized list whose last range begins no later than rg,
// merging it into that range when they overlap or touch.
func appendRange(out []api.ValueRange, rg api.ValueRange) []api.ValueRange {
	if n := len(out); n > 0 {
		last := &out[n-1]
		if last.End == math.MaxUint64 || rg.Begin <= last.End+1 {
			last.End = max(last.End, rg.End)
			return out
		}
	}
	return append(out, rg)
}

func addRanges(a, b []api.ValueRange) []api.ValueRange {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]api.ValueRange, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j == len(b) || (i < len(a) && a[i].Begin <= b[j].Begin) {
			out = appendRange(out, a[i])
			i++
		} else {
			out = appendRange(out, b[j])
			j++
		}
	}
	return out
}

// subtractRanges returns the values of a that are not in b.
func subtractRanges(a, b []api.ValueRange) []api.ValueRange {
	if len(a) == 0 || len(b) == 0 {
		return a
	}
	var out []api.ValueRange
	j := 0
	for _, rg := range a {
		for j < len(b) && b[j].End < rg.Begin {
			j++
		}
		next, whole := rg.Begin, true
		for k := j; k < len(b) && b[k].Begin <= rg.End; k++ {
			if b[k].Begin > next {
				out = append(out, api.ValueRange{Begin: next, End: b[k].Begin - 1})
			}
			if b[k].End >= rg.End {
				whole = false
				break
			}
			next = max(next, b[k].End+1)
		}
		if whole {
			out = append(out, api.ValueRange{Begin: next, End: rg.End})
		}
	}
	return out
}

// containsRanges reports whether every value of b is in a. As a is normalized, each range
// of b must lie within a single range of a.
func containsRanges(a, b []api.ValueRange) bool {
	i := 0
	for _, rg := range b {
		for i < len(a) && a[i].End < rg.Begin {
			i++
		}
		if i == len(a) || a[i].Begin > rg.Begin || a[i].End < rg.End {
			return false
		}
	}
	return true
}

// countRanges returns how many values the ranges hold, saturating at MaxUint64.
func countRanges(ranges []api.ValueRange) uint64 {
	var n uint64
	for _, rg := range ranges {
		size := rg.End - rg.Begin + 1 // 0 when the range covers every uint64
		if size == 0 || n+size < n {
			return math.MaxUint64
		}
		n += size
	}
	return n
}

// Sets are sorted string slices without duplicates.

func normalizeSet(items []string) []string {
	if len(items) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(items)))
}

func unionSet(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	return normalizeSet(append(slices.Clone(a), b...))
}

func subtractSet(a, b []string) []string {
	var out []string
	for _, item := range a {
		if _, found := slices.BinarySearch(b, item); !found {
			out = append(out, item)
		}
	}
	return out
}

func containsSet(a, b []string) bool {
	for _, item := range b {
		if _, found := slices.BinarySearch(a, item); !found {
			return false
		}
	}
	return true
}
