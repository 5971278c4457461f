package placement

import (
	"fmt"
	"testing"

	"github.com/atoll/atoll/api"
)

// uniqueFixture is an app with 1,000 instances on hosts h0…h999 and a UNIQUE hostname
// constraint, and 1,000 offers from hosts h500…h1499: half already run an instance.
func uniqueFixture(tb testing.TB) (*Requirements, []Placed, []*api.Offer) {
	tb.Helper()
	attrs := func(i int) []api.Attribute {
		return []api.Attribute{text("zone", fmt.Sprintf("z%d", i%3)), text("rack", fmt.Sprintf("r%d", i%40))}
	}
	req := &Requirements{CPUs: 0.5, MemMB: 256, Ports: []Port{{Name: "http"}},
		Constraints: []Constraint{mustConstraint(tb, "hostname", "UNIQUE")}}
	placed := make([]Placed, 1000)
	for i := range placed {
		placed[i] = on(fmt.Sprintf("h%d", i), attrs(i)...)
	}
	offers := make([]*api.Offer, 1000)
	for i := range offers {
		offers[i] = newOffer(fmt.Sprintf("o%d", i), fmt.Sprintf("h%d", 500+i), attrs(500+i))
	}
	return req, placed, offers
}

// BenchmarkMatchManyUnique judges 1,000 offers one call each, as a scheduler without a
// Planner would: every call tallies the 1,000 placed instances once.
func BenchmarkMatchManyUnique(b *testing.B) {
	req, placed, offers := uniqueFixture(b)
	matched := 0
	for b.Loop() {
		matched = 0
		for _, offer := range offers {
			claims, _ := MatchMany(offer, req, placed, 5)
			matched += len(claims)
		}
	}
	if matched != 500 {
		b.Fatalf("%d instances placed, want 500", matched)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(offers)), "ns/offer")
}

// BenchmarkPlannerUnique judges the same 1,000 offers with one Planner, which tallies the
// placed instances once and adds the ones it places.
func BenchmarkPlannerUnique(b *testing.B) {
	req, placed, offers := uniqueFixture(b)
	matched := 0
	for b.Loop() {
		planner := NewPlanner(req, placed)
		matched = 0
		for _, offer := range offers {
			claims, _ := planner.MatchMany(offer, 5)
			matched += len(claims)
		}
	}
	if matched != 500 {
		b.Fatalf("%d instances placed, want 500", matched)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(offers)), "ns/offer")
}
