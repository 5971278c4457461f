package placement

import (
	"slices"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

func TestMatchResources(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req       Requirements
		offer     *api.Offer
		want      []api.Resource
		wantPorts []uint32
		reason    Reason
	}{
		{
			name:  "unreserved",
			req:   Requirements{CPUs: 1, MemMB: 128},
			offer: newOffer("o1", "a", nil),
			want:  []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*")},
		},
		{
			name:  "empty role is unreserved",
			req:   Requirements{CPUs: 0.25, MemMB: 64},
			offer: newOffer("o1", "a", nil, scalar("cpus", 1, ""), scalar("mem", 128, "")),
			want:  []api.Resource{scalar("cpus", 0.25, ""), scalar("mem", 64, "")},
		},
		{
			name:  "zero amounts are not claimed",
			req:   Requirements{CPUs: 0.5},
			offer: newOffer("o1", "a", nil),
			want:  []api.Resource{scalar("cpus", 0.5, "*")},
		},
		{
			name:  "negative and NaN amounts count as zero",
			req:   Requirements{CPUs: 0.5, MemMB: -1, DiskMB: nan()},
			offer: newOffer("o1", "a", nil),
			want:  []api.Resource{scalar("cpus", 0.5, "*")},
		},
		{
			name: "disk and gpus",
			req:  Requirements{CPUs: 1, MemMB: 128, DiskMB: 100, GPUs: 1},
			offer: newOffer("o1", "a", nil, scalar("gpus", 2, "*"), scalar("disk", 500, "*"),
				scalar("mem", 1024, "*"), scalar("cpus", 2, "*")),
			want: []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*"), scalar("disk", 100, "*"), scalar("gpus", 1, "*")},
		},
		{
			name: "app's reservation first, then unreserved",
			req:  Requirements{CPUs: 1, MemMB: 128, Role: "web"},
			offer: newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("cpus", 0.5, "web"),
				scalar("mem", 4096, "*"), scalar("mem", 64, "web")),
			want: []api.Resource{scalar("cpus", 0.5, "web"), scalar("cpus", 0.5, "*"),
				scalar("mem", 64, "web"), scalar("mem", 64, "*")},
		},
		{
			name: "reservation covers all",
			req:  Requirements{CPUs: 1, MemMB: 128, Role: "web"},
			offer: newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("cpus", 2, "web"),
				scalar("mem", 4096, "*"), scalar("mem", 1024, "web")),
			want: []api.Resource{scalar("cpus", 1, "web"), scalar("mem", 128, "web")},
		},
		{
			name: "acceptedResourceRoles * ignores the reservation",
			req:  Requirements{CPUs: 1, MemMB: 128, Role: "web", AcceptedRoles: []string{"*"}},
			offer: newOffer("o1", "a", nil, scalar("cpus", 0.5, "web"), scalar("cpus", 4, "*"),
				scalar("mem", 64, "web"), scalar("mem", 4096, "*")),
			want: []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*")},
		},
		{
			name: "acceptedResourceRoles of the app's role only",
			req:  Requirements{CPUs: 1, MemMB: 128, Role: "web", AcceptedRoles: []string{"web"}},
			offer: newOffer("o1", "a", nil, scalar("cpus", 0.5, "web"), scalar("cpus", 4, "*"),
				scalar("mem", 4096, "web")),
			reason: InsufficientCpus,
		},
		{
			name:   "no resource of an accepted role",
			req:    Requirements{CPUs: 1, MemMB: 128},
			offer:  newOffer("o1", "a", nil, scalar("cpus", 4, "web"), scalar("mem", 4096, "web")),
			reason: UnfulfilledRole,
		},
		{
			name:   "another role's reservation is not used by default",
			req:    Requirements{CPUs: 1, MemMB: 128},
			offer:  newOffer("o1", "a", nil, scalar("cpus", 4, "other"), scalar("mem", 4096, "*")),
			reason: InsufficientCpus,
		},
		{
			name: "resources allocated to another role",
			req:  Requirements{CPUs: 1, MemMB: 128},
			offer: newOffer("o1", "a", nil, allocated(scalar("cpus", 4, "*"), "analytics"),
				allocated(scalar("mem", 4096, "*"), "analytics")),
			reason: UnfulfilledRole,
		},
		{
			name: "offer allocated to another role",
			req:  Requirements{CPUs: 1, MemMB: 128},
			offer: func() *api.Offer {
				o := newOffer("o1", "a", nil)
				o.AllocationInfo = &api.AllocationInfo{Role: "web"}
				return o
			}(),
			reason: UnfulfilledRole,
		},
		{
			name: "allocation is kept in the claim",
			req:  Requirements{CPUs: 1, MemMB: 128, Role: "web", Ports: []Port{{Name: "http"}}},
			offer: newOffer("o1", "a", nil, allocated(scalar("cpus", 4, "*"), "web"),
				allocated(scalar("mem", 4096, "*"), "web"), allocated(ports("*", 31000, 31000), "web")),
			want: []api.Resource{allocated(scalar("cpus", 1, "*"), "web"), allocated(scalar("mem", 128, "*"), "web"),
				allocated(ports("*", 31000, 31000), "web")},
			wantPorts: []uint32{31000},
		},
		{
			name: "required port and any port",
			req: Requirements{CPUs: 1, MemMB: 128, RequirePorts: true,
				Ports: []Port{{Name: "admin", Port: 0}, {Name: "http", Port: 31005}}},
			offer:     newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*"), ports("*", 31005, 31006)),
			want:      []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*"), ports("*", 31005, 31006)},
			wantPorts: []uint32{31006, 31005},
		},
		{
			name: "required port not offered",
			req: Requirements{CPUs: 1, MemMB: 128, RequirePorts: true,
				Ports: []Port{{Name: "http", Port: 8080}}},
			offer:  newOffer("o1", "a", nil),
			reason: InsufficientPorts,
		},
		{
			name: "same required port twice",
			req: Requirements{CPUs: 1, MemMB: 128, RequirePorts: true,
				Ports: []Port{{Port: 31000}, {Port: 31000}}},
			offer:  newOffer("o1", "a", nil),
			reason: InsufficientPorts,
		},
		{
			name:      "port numbers without requirePorts take any host port",
			req:       Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{Name: "http", Port: 80}}},
			offer:     newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*"), ports("*", 31000, 31000)),
			want:      []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*"), ports("*", 31000, 31000)},
			wantPorts: []uint32{31000},
		},
		{
			name:   "port exhaustion",
			req:    Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{}, {}, {}}},
			offer:  newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*"), ports("*", 31000, 31001)),
			reason: InsufficientPorts,
		},
		{
			name:   "ports outside 1-65535 are ignored",
			req:    Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{}}},
			offer:  newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*"), ports("*", 0, 0, 70000, 80000)),
			reason: InsufficientPorts,
		},
		{
			name:   "no ports resource",
			req:    Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{}}},
			offer:  newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*")),
			reason: InsufficientPorts,
		},
		{
			name: "ports from the reservation first, then unreserved",
			req:  Requirements{CPUs: 1, MemMB: 128, Role: "web", Ports: []Port{{}, {}}},
			offer: newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*"),
				ports("*", 32000, 32000), ports("web", 31000, 31000)),
			want: []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*"),
				ports("web", 31000, 31000), ports("*", 32000, 32000)},
			wantPorts: []uint32{31000, 32000},
		},
		{
			name: "a port listed twice is handed out once",
			req:  Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{}, {}}},
			offer: newOffer("o1", "a", nil, scalar("cpus", 4, "*"), scalar("mem", 4096, "*"),
				ports("*", 31000, 31000), ports("", 31000, 31001)),
			want: []api.Resource{scalar("cpus", 1, "*"), scalar("mem", 128, "*"),
				ports("*", 31000, 31000), ports("", 31001, 31001)},
			wantPorts: []uint32{31000, 31001},
		},
		{
			name: "scalar of the wrong type is ignored",
			req:  Requirements{CPUs: 1, MemMB: 128},
			offer: newOffer("o1", "a", nil, api.Resource{Name: "cpus", Type: api.Ranges, Ranges: &api.ValueRanges{}},
				scalar("mem", 4096, "*")),
			reason: InsufficientCpus,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claim, reason := Match(tc.offer, &tc.req, nil)
			if reason != tc.reason {
				t.Fatalf("reason = %v, want %v", reason, tc.reason)
			}
			if reason != Matched {
				if claim.Resources != nil || claim.HostPorts != nil {
					t.Errorf("declined with a claim: %+v", claim)
				}
				return
			}
			if got, want := asJSON(t, claim.Resources), asJSON(t, tc.want); got != want {
				t.Errorf("resources\n got %s\nwant %s", got, want)
			}
			if got, want := asJSON(t, claim.HostPorts), asJSON(t, tc.wantPorts); got != want {
				t.Errorf("host ports = %s, want %s", got, want)
			}
		})
	}
}

// TestReasonPrecedence: an offer failing in several ways counts under the first reason of
// Marathon's funnel.
func TestReasonPrecedence(t *testing.T) {
	unique := []Constraint{mustConstraint(t, "hostname", "UNIQUE")}
	placed := []Placed{on("a")}
	big := Requirements{CPUs: 8, MemMB: 8192, DiskMB: 20000, GPUs: 1, Ports: []Port{{}, {}}, Constraints: unique}
	small := func(mutate func(*Requirements)) Requirements {
		r := Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{}}}
		mutate(&r)
		return r
	}
	tiny := []api.Resource{scalar("cpus", 0.5, "*"), scalar("mem", 64, "*"), ports("*", 31000, 31000)}
	for _, tc := range []struct {
		name  string
		req   Requirements
		offer *api.Offer
		want  Reason
	}{
		{"role before constraint and resources", big, newOffer("o1", "a", nil, scalar("cpus", 1, "web")), UnfulfilledRole},
		{"constraint before resources", big, newOffer("o1", "a", nil, tiny...), UnfulfilledConstraint},
		{"cpus before mem and ports", big, newOffer("o1", "b", nil, tiny...), InsufficientCpus},
		{"mem before disk", small(func(r *Requirements) { r.MemMB, r.DiskMB = 8192, 1 }), newOffer("o1", "b", nil), InsufficientMemory},
		{"disk before gpus", small(func(r *Requirements) { r.DiskMB, r.GPUs = 20000, 1 }), newOffer("o1", "b", nil), InsufficientDisk},
		{"gpus before ports", small(func(r *Requirements) { r.CPUs, r.MemMB, r.GPUs, r.Ports = 0.5, 64, 1, []Port{{}, {}} }), newOffer("o1", "b", nil, tiny...), InsufficientGpus},
		{"ports last", small(func(r *Requirements) { r.CPUs, r.MemMB, r.Ports = 0.5, 64, []Port{{}, {}} }), newOffer("o1", "b", nil, tiny...), InsufficientPorts},
		{"nil offer", small(func(*Requirements) {}), nil, UnfulfilledRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := Match(tc.offer, &tc.req, placed); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
	if _, got := Match(newOffer("o1", "a", nil), nil, nil); got != Matched {
		t.Errorf("nil requirements: Match = %v, want Matched", got)
	}
}

// TestPortRotation: "any port" picks start at a position hashed from the offer ID and go
// up from there, wrapping around, so consecutive offers do not hand out the same port.
func TestPortRotation(t *testing.T) {
	req := &Requirements{CPUs: 0.1, Ports: []Port{{Name: "http"}}}
	for _, tc := range []struct {
		name   string
		id     string
		ranges []uint64
		want   []uint32 // one port per instance, packed into one offer
	}{
		// 31000 + hash("o1") mod 1001 = 31200.
		{"hashed start", "o1", []uint64{31000, 32000}, []uint32{31200, 31201, 31202}},
		// hash("o2") mod 1001 = 888.
		{"another offer another start", "o2", []uint64{31000, 32000}, []uint32{31888, 31889}},
		// hash("w0") mod 3 = 2: start at the top, then wrap to the bottom.
		{"wraps around", "w0", []uint64{31000, 31002}, []uint32{31002, 31000, 31001}},
		// hash("o2") mod 11 = 8: the ninth of the eleven ports, counted across ranges.
		{"counts across ranges", "o2", []uint64{31010, 31015, 31000, 31004}, []uint32{31013, 31014, 31015, 31000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offer := newOffer(tc.id, "a", nil, scalar("cpus", 1, "*"), ports("*", tc.ranges...))
			claims, reason := MatchMany(offer, req, nil, len(tc.want))
			if reason != Matched || len(claims) != len(tc.want) {
				t.Fatalf("%d claims, %v; want %d, Matched", len(claims), reason, len(tc.want))
			}
			for i, c := range claims {
				if len(c.HostPorts) != 1 || c.HostPorts[0] != tc.want[i] {
					t.Errorf("instance %d: host ports %v, want [%d]", i, c.HostPorts, tc.want[i])
				}
				wantRes := asJSON(t, []api.Resource{scalar("cpus", 0.1, "*"), ports("*", uint64(tc.want[i]), uint64(tc.want[i]))})
				if got := asJSON(t, c.Resources); got != wantRes {
					t.Errorf("instance %d: resources %s, want %s", i, got, wantRes)
				}
			}
		})
	}
	// The same offer judged again picks the same port: the choice is a function of the offer.
	first, _ := Match(newOffer("o1", "a", nil), req, nil)
	again, _ := Match(newOffer("o1", "a", nil), req, nil)
	if first.HostPorts[0] != 31200 || again.HostPorts[0] != 31200 {
		t.Errorf("offer o1 twice: ports %v and %v, want 31200 both times", first.HostPorts, again.HostPorts)
	}
}

func TestMatchMany(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    Requirements
		offer  *api.Offer
		max    int
		claims int
		reason Reason
	}{
		{"limited by max", Requirements{CPUs: 0.5, MemMB: 128}, newOffer("o1", "a", nil), 5, 5, Matched},
		{"limited by cpus", Requirements{CPUs: 1, MemMB: 128}, newOffer("o1", "a", nil, scalar("cpus", 2.5, "*"), scalar("mem", 4096, "*")), 5, 2, Matched},
		{"limited by ports", Requirements{CPUs: 0.1, Ports: []Port{{}, {}}}, newOffer("o1", "a", nil, scalar("cpus", 4, "*"), ports("*", 31000, 31004)), 5, 2, Matched},
		{"thousandths add up exactly", Requirements{CPUs: 0.1}, newOffer("o1", "a", nil, scalar("cpus", 0.3, "*")), 5, 3, Matched},
		{"max below one packs one", Requirements{CPUs: 0.1}, newOffer("o1", "a", nil), 0, 1, Matched},
		{"none fits", Requirements{CPUs: 8}, newOffer("o1", "a", nil), 5, 0, InsufficientCpus},
		{"UNIQUE packs one", Requirements{CPUs: 0.1, Constraints: []Constraint{mustConstraint(t, "hostname", "UNIQUE")}}, newOffer("o1", "a", nil), 5, 1, Matched},
		{"GROUP_BY packs one per group", Requirements{CPUs: 0.1, Constraints: []Constraint{mustConstraint(t, "@zone", "GROUP_BY", "2")}}, newOffer("o1", "a", []api.Attribute{text("zone", "z1")}), 5, 1, Matched},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims, reason := MatchMany(tc.offer, &tc.req, nil, tc.max)
			if reason != tc.reason || len(claims) != tc.claims {
				t.Fatalf("%d claims, %v; want %d, %v", len(claims), reason, tc.claims, tc.reason)
			}
		})
	}

	// Packed instances split a reservation and the unreserved rest between them exactly.
	req := &Requirements{CPUs: 1, MemMB: 100, Role: "web", Ports: []Port{{}}}
	offer := newOffer("o1", "a", nil, scalar("cpus", 1.5, "web"), scalar("cpus", 1, "*"),
		scalar("mem", 1000, "*"), ports("*", 31000, 31001))
	claims, reason := MatchMany(offer, req, nil, 5)
	if reason != Matched || len(claims) != 2 {
		t.Fatalf("%d claims, %v; want 2, Matched", len(claims), reason)
	}
	want := asJSON(t, []Claim{
		{Resources: []api.Resource{scalar("cpus", 1, "web"), scalar("mem", 100, "*"), ports("*", 31000, 31000)}, HostPorts: []uint32{31000}},
		{Resources: []api.Resource{scalar("cpus", 0.5, "web"), scalar("cpus", 0.5, "*"), scalar("mem", 100, "*"), ports("*", 31001, 31001)}, HostPorts: []uint32{31001}},
	})
	if got := asJSON(t, claims); got != want {
		t.Errorf("claims\n got %s\nwant %s", got, want)
	}
}

// TestMatchDoesNotModifyInput: judging an offer leaves the offer, requirements and placed
// instances as they were.
func TestMatchDoesNotModifyInput(t *testing.T) {
	offer := newOffer("o1", "a", []api.Attribute{text("zone", "z1")},
		scalar("cpus", 4, "*"), scalar("mem", 4096, "*"), ports("*", 31005, 31000, 31000, 31010))
	req := &Requirements{CPUs: 1, MemMB: 128, Ports: []Port{{}, {Port: 31003}}, RequirePorts: true,
		Constraints: []Constraint{mustConstraint(t, "@zone", "GROUP_BY")}}
	placed := []Placed{on("b", text("zone", "z2"))}
	before := asJSON(t, []any{offer, req, placed})
	if _, reason := MatchMany(offer, req, placed, 5); reason != Matched {
		t.Fatalf("reason %v", reason)
	}
	if after := asJSON(t, []any{offer, req, placed}); after != before {
		t.Errorf("input changed\nbefore %s\n after %s", before, after)
	}
}

func TestReasonNames(t *testing.T) {
	want := []string{"Matched", "UnfulfilledRole", "UnavailableNetwork", "UnavailableVolumeDriver", "UnfulfilledConstraint", "NoCorrespondingReservationFound",
		"InsufficientCpus", "InsufficientMemory", "InsufficientDisk", "InsufficientGpus", "InsufficientPorts"}
	for r, name := range want {
		if got := Reason(r).String(); got != name {
			t.Errorf("Reason(%d).String() = %q, want %q", r, got, name)
		}
	}
	if got := Reason(42).String(); got != "Reason(42)" {
		t.Errorf("Reason(42).String() = %q", got)
	}
	if _, err := Reason(-1).MarshalText(); err == nil {
		t.Error("Reason(-1).MarshalText succeeded")
	}
}

// An app joining a named network or using a volume driver fits only agents that list them
// in their attributes, except the local driver, which every agent has; the reason comes
// right after the role's.
func TestMatchAgentNetworksAndDrivers(t *testing.T) {
	attrs := func(networks, drivers string) []api.Attribute {
		var out []api.Attribute
		if networks != "" {
			out = append(out, text(api.AttributeNetworks, networks))
		}
		if drivers != "" {
			out = append(out, text(api.AttributeVolumeDrivers, drivers))
		}
		return out
	}
	tests := []struct {
		name              string
		networks, drivers []string
		attributes        []api.Attribute
		want              Reason
	}{
		{"nothing needed", nil, nil, nil, Matched},
		{"network listed", []string{"dcos"}, nil, attrs("overlay,dcos", ""), Matched},
		{"network missing", []string{"dcos"}, nil, attrs("overlay", "pxd"), UnavailableNetwork},
		{"no attributes", []string{"dcos"}, []string{"pxd"}, nil, UnavailableNetwork},
		{"driver listed", nil, []string{"pxd"}, attrs("", "rexray,pxd"), Matched},
		{"driver missing", []string{"dcos"}, []string{"pxd"}, attrs("dcos", "rexray"), UnavailableVolumeDriver},
		{"local driver everywhere", nil, []string{api.LocalVolumeDriver}, nil, Matched},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			offer := &api.Offer{AgentID: api.AgentID{Value: "a"}, Hostname: "a", Attributes: tc.attributes,
				Resources: []api.Resource{{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1}}}}
			req := &Requirements{CPUs: 0.5, Networks: tc.networks, VolumeDrivers: tc.drivers}
			if _, got := Match(offer, req, nil); got != tc.want {
				t.Errorf("reason %v, want %v", got, tc.want)
			}
		})
	}
	s := NewSummary(10)
	s.Record("a", UnavailableNetwork, time.Unix(1, 0))
	var reasons []string
	for _, step := range s.Snapshot().RejectSummaryLaunchAttempt {
		reasons = append(reasons, step.Reason.String())
	}
	if want := []string{"UnfulfilledRole", "UnavailableNetwork", "UnfulfilledConstraint", "NoCorrespondingReservationFound",
		"InsufficientCpus", "InsufficientMemory", "InsufficientDisk", "InsufficientGpus", "InsufficientPorts"}; !slices.Equal(reasons, want) {
		t.Errorf("funnel %v, want %v", reasons, want)
	}
}
