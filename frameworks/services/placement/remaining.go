package placement

import (
	"slices"

	"github.com/atoll/atoll/api"
)

// Remaining returns an offer's resources less what claims took (same name, role and
// allocation), dropping what is used up; ports are removed from their ranges. A framework
// that packs several apps' or jobs' instances into one offer matches each against what
// the ones before left.
func Remaining(resources, used []api.Resource) []api.Resource {
	out := make([]api.Resource, 0, len(resources))
	for _, r := range resources {
		r := r
		for _, u := range used {
			if u.Name != r.Name || u.Role != r.Role || !sameAllocation(u.AllocationInfo, r.AllocationInfo) {
				continue
			}
			switch {
			case r.Scalar != nil && u.Scalar != nil:
				r.Scalar = &api.ValueScalar{Value: r.Scalar.Value - u.Scalar.Value}
			case r.Ranges != nil && u.Ranges != nil:
				r.Ranges = &api.ValueRanges{Range: removeRanges(r.Ranges.Range, u.Ranges.Range)}
			}
		}
		if (r.Scalar != nil && r.Scalar.Value < 0.0005) || (r.Ranges != nil && len(r.Ranges.Range) == 0) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func sameAllocation(a, b *api.AllocationInfo) bool {
	if a == nil || b == nil {
		return a == b || (a == nil && b.Role == "") || (b == nil && a.Role == "")
	}
	return a.Role == b.Role
}

// removeRanges returns ranges without the values in remove.
func removeRanges(ranges, remove []api.ValueRange) []api.ValueRange {
	out := slices.Clone(ranges)
	for _, rm := range remove {
		var next []api.ValueRange
		for _, r := range out {
			if rm.End < r.Begin || rm.Begin > r.End {
				next = append(next, r)
				continue
			}
			if rm.Begin > r.Begin {
				next = append(next, api.ValueRange{Begin: r.Begin, End: rm.Begin - 1})
			}
			if rm.End < r.End {
				next = append(next, api.ValueRange{Begin: rm.End + 1, End: r.End})
			}
		}
		out = next
	}
	return out
}
