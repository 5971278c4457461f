package placement

import (
	"reflect"
	"testing"

	"github.com/atoll/atoll/api"
)

func TestRemaining(t *testing.T) {
	offered := []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 2}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 100}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31010}}}},
	}
	used := []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 2}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 40}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31000}, {Begin: 31005, End: 31006}}}},
	}
	want := []api.Resource{
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 60}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31001, End: 31004}, {Begin: 31007, End: 31010}}}},
	}
	if got := Remaining(offered, used); !reflect.DeepEqual(got, want) {
		t.Errorf("Remaining = %+v, want %+v", got, want)
	}
}
