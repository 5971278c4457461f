package placement

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
)

func FuzzParseConstraint(f *testing.F) {
	for _, seed := range [][]string{
		{"hostname", "UNIQUE", ""}, {"@zone", "GROUP_BY", "3"}, {"rack", "CLUSTER", "r1"},
		{"hostname", "LIKE", "srv2.*"}, {"hostname", "UNLIKE", "a)|(b"}, {"hostname", "MAX_PER", "2"},
		{"@region", "IS", "eu"}, {"", "IS", "x"}, {"hostname", "MAX_PER", "-1"},
	} {
		f.Add(seed[0], seed[1], seed[2], uint8(3))
		f.Add(seed[0], seed[1], seed[2], uint8(2))
	}
	f.Fuzz(func(t *testing.T, field, operator, value string, arity uint8) {
		parts := []string{field, operator, value}[:min(int(arity%4), 3)]
		c, err := ParseConstraint(parts)
		if err != nil {
			return
		}
		if !slices.Contains([]string{Unique, Cluster, GroupBy, Like, Unlike, MaxPer, Is}, c.Operator) || c.Field == "" {
			t.Fatalf("ParseConstraint(%q) accepted %+v", parts, c)
		}
		again, err := ParseConstraint([]string{c.Field, c.Operator, c.Value})
		if err != nil || again.String() != c.String() {
			t.Fatalf("%+v does not parse back: %+v, %v", c, again, err)
		}
		if c.Operator == Like || c.Operator == Unlike {
			// A full match is a match.
			loose := regexp.MustCompile(c.Value)
			for _, s := range []string{field, value, "", "a"} {
				if c.re.MatchString(s) && !loose.MatchString(s) {
					t.Fatalf("%q matches %q in full but not at all", c.Value, s)
				}
			}
		}
		// Evaluating the constraint never panics, whatever the agents look like.
		req := &Requirements{CPUs: 0.1, Constraints: []Constraint{c}}
		attrs := []api.Attribute{text(field, value), text("zone", value), {Name: "rack", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1}}}
		placed := []Placed{{Hostname: value, Attributes: attrs}, {Hostname: field}}
		MatchMany(newOffer("o1", value, attrs), req, placed, 3)
	})
}

// byteReader hands out fuzz input a byte at a time, zeros once it runs out.
type byteReader []byte

func (r *byteReader) next() byte {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return b
}

func (r *byteReader) uint16() uint64 { return uint64(r.next())<<8 | uint64(r.next()) }

func (r *byteReader) pick(options ...string) string { return options[int(r.next())%len(options)] }

// amount returns a scalar amount: mostly multiples of scale, sometimes odd values.
func (r *byteReader) amount(scale float64) float64 {
	switch b := r.next(); b {
	case 255:
		return math.NaN()
	case 254:
		return -1
	case 253:
		return 1e300
	case 252:
		return 0.0016
	default:
		return float64(b) * scale
	}
}

// portBound returns a port bound, sometimes far outside valid ports.
func (r *byteReader) portBound() uint64 {
	if r.next() == 255 {
		return math.MaxUint64 - uint64(r.next())
	}
	return 31000 + r.uint16()%64
}

func fuzzOffer(r *byteReader) *api.Offer {
	offer := &api.Offer{ID: api.OfferID{Value: r.pick("o1", "o2", "o3")}, Hostname: r.pick("a", "b")}
	if r.next()%4 == 0 {
		offer.AllocationInfo = &api.AllocationInfo{Role: r.pick("*", "web")}
	}
	for range 2 + int(r.next()%8) {
		res := api.Resource{Name: r.pick("cpus", "mem", "disk", "gpus", "ports", "ports", "bogus"), Role: r.pick("", "*", "*", "web", "other")}
		if r.next()%4 == 0 {
			res.AllocationInfo = &api.AllocationInfo{Role: r.pick("", "*", "web")}
		}
		wantRanges := res.Name == "ports"
		switch r.next() % 16 {
		case 0:
			res.Type = api.Scalar // without a value
		case 1:
			res.Type = api.Ranges // without a value
		case 2:
			wantRanges = !wantRanges // the wrong type for the name
			fallthrough
		default:
			if !wantRanges {
				res.Type, res.Scalar = api.Scalar, &api.ValueScalar{Value: r.amount(0.25)}
				break
			}
			res.Type, res.Ranges = api.Ranges, &api.ValueRanges{}
			for range int(r.next() % 4) {
				res.Ranges.Range = append(res.Ranges.Range, api.ValueRange{Begin: r.portBound(), End: r.portBound()})
			}
		}
		offer.Resources = append(offer.Resources, res)
	}
	offer.Attributes = []api.Attribute{text("zone", r.pick("z1", "z2"))}
	return offer
}

func fuzzRequirements(r *byteReader) *Requirements {
	req := &Requirements{
		CPUs: r.amount(0.01), MemMB: r.amount(0.01), DiskMB: r.amount(0.01), GPUs: r.amount(0.01),
		RequirePorts: r.next()%2 == 0,
		Role:         r.pick("", "*", "web"),
	}
	for range int(r.next() % 3) {
		req.AcceptedRoles = append(req.AcceptedRoles, r.pick("", "*", "web", "other"))
	}
	for range int(r.next() % 5) {
		port := Port{}
		if r.next()%4 == 0 {
			port.Port = uint32(31000 + r.uint16()%64)
		}
		req.Ports = append(req.Ports, port)
	}
	switch r.next() % 5 {
	case 0:
		req.Constraints = []Constraint{{Field: "hostname", Operator: MaxPer, Value: "2"}}
	case 1:
		req.Constraints = []Constraint{{Field: "@zone", Operator: GroupBy}}
	case 2:
		req.Constraints = []Constraint{{Field: "@zone", Operator: Unique}}
	}
	return req
}

// offerString prints the parts of an offer MatchMany reads, NaNs included.
func offerString(o *api.Offer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %v", o.ID.Value, o.Hostname, o.AllocationInfo)
	for _, r := range o.Resources {
		fmt.Fprintf(&b, "|%s %s %q %v", r.Name, r.Type, r.Role, r.AllocationInfo)
		if r.Scalar != nil {
			fmt.Fprintf(&b, " %v", r.Scalar.Value)
		}
		if r.Ranges != nil {
			fmt.Fprintf(&b, " %v", r.Ranges.Range)
		}
	}
	return b.String()
}

// resourceKind is what claimed resources are totalled by.
type resourceKind struct{ name, role, allocation string }

func kindOf(r *api.Resource) resourceKind {
	return resourceKind{r.Name, r.Role, allocationRole(r)}
}

// FuzzMatch checks, for arbitrary offers and requirements, that MatchMany never claims more
// of a resource than the offer holds, never a port outside the offer's ranges or twice, and
// gives every instance exactly what it asked for.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{})
	// Inputs that pack several instances with several ports each (with requirePorts first).
	f.Add([]byte{0xfd, 0x17, 0x5e, 0x93, 0x33, 0xa2, 0x5f, 0x27, 0xc1, 0xd2, 0xf1, 0x6b, 0x8, 0xe9, 0x58, 0x5f, 0x16, 0xb7, 0x6f, 0x2b, 0xa7, 0x8c, 0x21, 0x2d, 0x67, 0x3b, 0xd6, 0xa8, 0xfe, 0x4e, 0xa6, 0x8, 0x73, 0x6a, 0x99, 0xc8, 0xac, 0x73, 0xb6, 0x11, 0xcf, 0x20, 0x71, 0xec, 0x21, 0xb3, 0x70, 0xb9, 0x5a, 0x68, 0x93, 0x8c, 0xb8, 0xb0, 0x9, 0x12, 0xfe, 0xc9, 0xb3, 0xe0})
	f.Add([]byte{0x7b, 0x4f, 0xa7, 0xbb, 0x6c, 0xdc, 0xaa, 0x48, 0x7b, 0xac, 0xe2, 0x41, 0x6a, 0xfb, 0xae, 0xd, 0x92, 0x8f, 0x5e, 0xac, 0xd4, 0x77, 0x1e, 0x8, 0xf9, 0x60, 0x73, 0x56, 0x57, 0xca, 0x35, 0xb5, 0x24, 0x32, 0xc2, 0x24, 0x2e, 0xa6, 0x45, 0x14, 0xfd, 0xa9, 0x40, 0x7, 0xc9, 0xc6, 0x9c, 0xc8, 0x2d, 0xff, 0x9a, 0x0, 0x77, 0x82, 0x5e, 0x9, 0xf2, 0xf6, 0x7d, 0x57})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := byteReader(data)
		offer := fuzzOffer(&r)
		req := fuzzRequirements(&r)
		var placed []Placed
		for range int(r.next() % 3) {
			placed = append(placed, Placed{Hostname: r.pick("a", "b"), Attributes: []api.Attribute{text("zone", r.pick("z1", "z2"))}})
		}
		maxInstances := int(r.next()%7) - 1
		before := offerString(offer)

		claims, reason := MatchMany(offer, req, placed, maxInstances)

		if offerString(offer) != before {
			t.Fatal("MatchMany modified the offer")
		}
		// A Planner, which tallies every value rather than the offer's, agrees.
		planned, plannedReason := NewPlanner(req, placed).MatchMany(offer, maxInstances)
		if plannedReason != reason || asJSON(t, planned) != asJSON(t, claims) {
			t.Fatalf("MatchMany: %v %v; Planner: %v %v", claims, reason, planned, plannedReason)
		}
		if (reason == Matched) != (len(claims) > 0) || len(claims) > max(maxInstances, 1) {
			t.Fatalf("%d claims with reason %v for max %d", len(claims), reason, maxInstances)
		}
		offered := map[resourceKind]int64{}
		var offeredPorts []api.ValueRange
		for i := range offer.Resources {
			res := &offer.Resources[i]
			switch {
			case res.Type == api.Scalar && res.Scalar != nil:
				offered[kindOf(res)] += toMilli(res.Scalar.Value)
			case res.Type == api.Ranges && res.Ranges != nil && res.Name == "ports":
				offeredPorts = append(offeredPorts, res.Ranges.Range...)
			}
		}
		claimed := map[resourceKind]int64{}
		used := map[uint64]bool{}
		for i, c := range claims {
			if len(c.HostPorts) != len(req.Ports) {
				t.Fatalf("claim %d: %d host ports for %d ports", i, len(c.HostPorts), len(req.Ports))
			}
			perName := map[string]int64{}
			var claimPorts []uint64
			for j := range c.Resources {
				res := &c.Resources[j]
				switch res.Type {
				case api.Scalar:
					milli := int64(math.Round(res.Scalar.Value * 1000))
					claimed[kindOf(res)] += milli
					perName[res.Name] += milli
				case api.Ranges:
					for _, rg := range res.Ranges.Range {
						for port := rg.Begin; port <= rg.End; port++ {
							claimPorts = append(claimPorts, port)
						}
					}
				}
			}
			for s, name := range scalarNames {
				want := toMilli([numScalars]float64{req.CPUs, req.MemMB, req.DiskMB, req.GPUs}[s])
				if perName[name] != want {
					t.Fatalf("claim %d: %d thousandths of %s, want %d", i, perName[name], name, want)
				}
			}
			hostPorts := make([]uint64, len(c.HostPorts))
			for j, port := range c.HostPorts {
				hostPorts[j] = uint64(port)
				if req.RequirePorts && req.Ports[j].Port != 0 && port != req.Ports[j].Port {
					t.Fatalf("claim %d: port %d got host port %d", i, req.Ports[j].Port, port)
				}
			}
			slices.Sort(hostPorts)
			slices.Sort(claimPorts)
			if !slices.Equal(hostPorts, claimPorts) {
				t.Fatalf("claim %d: host ports %v but ports resources hold %v", i, hostPorts, claimPorts)
			}
			for _, port := range hostPorts {
				if used[port] {
					t.Fatalf("port %d claimed twice", port)
				}
				used[port] = true
				if port < minPort || port > maxPort || !slices.ContainsFunc(offeredPorts, func(rg api.ValueRange) bool {
					return rg.Begin <= port && port <= rg.End
				}) {
					t.Fatalf("port %d is not offered: %v", port, offeredPorts)
				}
			}
		}
		for kind, milli := range claimed {
			if milli > offered[kind] {
				t.Fatalf("claimed %d thousandths of %+v, offered %d", milli, kind, offered[kind])
			}
		}
	})
}
