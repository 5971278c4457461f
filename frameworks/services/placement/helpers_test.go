package placement

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/atoll/atoll/api"
)

// scalar is an offered or claimed scalar resource; role "" leaves the field empty.
func scalar(name string, value float64, role string) api.Resource {
	return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: value}, Role: role}
}

// ports is an offered or claimed ports resource with ranges given as begin, end pairs.
func ports(role string, bounds ...uint64) api.Resource {
	r := api.Resource{Name: "ports", Type: api.Ranges, Role: role, Ranges: &api.ValueRanges{}}
	for i := 0; i+1 < len(bounds); i += 2 {
		r.Ranges.Range = append(r.Ranges.Range, api.ValueRange{Begin: bounds[i], End: bounds[i+1]})
	}
	return r
}

// allocated sets the allocation role of r.
func allocated(r api.Resource, role string) api.Resource {
	r.AllocationInfo = &api.AllocationInfo{Role: role}
	return r
}

func text(name, value string) api.Attribute {
	return api.Attribute{Name: name, Type: api.Text, Text: &api.ValueText{Value: value}}
}

// standardResources is a typical agent's unreserved offer.
func standardResources() []api.Resource {
	return []api.Resource{
		scalar("cpus", 4, "*"),
		scalar("mem", 4096, "*"),
		scalar("disk", 10000, "*"),
		ports("*", 31000, 32000),
	}
}

func newOffer(id, host string, attrs []api.Attribute, res ...api.Resource) *api.Offer {
	if res == nil {
		res = standardResources()
	}
	return &api.Offer{
		ID:         api.OfferID{Value: id},
		AgentID:    api.AgentID{Value: "agent-" + host},
		Hostname:   host,
		Resources:  res,
		Attributes: attrs,
	}
}

func mustConstraint(tb testing.TB, parts ...string) Constraint {
	tb.Helper()
	c, err := ParseConstraint(parts)
	if err != nil {
		tb.Fatalf("ParseConstraint(%q): %v", parts, err)
	}
	return c
}

// asJSON renders v for comparisons whose failures should be readable.
func asJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func nan() float64 { return math.NaN() }
