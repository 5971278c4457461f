package placement

import (
	"math/rand/v2"
	"testing"

	"github.com/atoll/atoll/api"
)

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		parts   []string
		want    Constraint
		wantErr string
	}{
		{parts: []string{"hostname", "UNIQUE"}, want: Constraint{Field: "hostname", Operator: Unique}},
		{parts: []string{"@hostname", "UNIQUE", ""}, want: Constraint{Field: "@hostname", Operator: Unique}},
		{parts: []string{"rack", "CLUSTER"}, want: Constraint{Field: "rack", Operator: Cluster}},
		{parts: []string{"rack", "CLUSTER", "r1"}, want: Constraint{Field: "rack", Operator: Cluster, Value: "r1"}},
		{parts: []string{"@zone", "GROUP_BY"}, want: Constraint{Field: "@zone", Operator: GroupBy}},
		{parts: []string{"@zone", "GROUP_BY", "3"}, want: Constraint{Field: "@zone", Operator: GroupBy, Value: "3"}},
		{parts: []string{"@zone", "GROUP_BY", "-2"}, want: Constraint{Field: "@zone", Operator: GroupBy, Value: "-2"}},
		{parts: []string{"hostname", "LIKE", "srv2.*"}, want: Constraint{Field: "hostname", Operator: Like, Value: "srv2.*"}},
		{parts: []string{"hostname", "UNLIKE", "a|b"}, want: Constraint{Field: "hostname", Operator: Unlike, Value: "a|b"}},
		{parts: []string{"hostname", "MAX_PER", "2"}, want: Constraint{Field: "hostname", Operator: MaxPer, Value: "2"}},
		{parts: []string{"@region", "IS", "eu"}, want: Constraint{Field: "@region", Operator: Is, Value: "eu"}},

		{parts: nil, wantErr: "each constraint must have either 2 or 3 fields"},
		{parts: []string{"hostname"}, wantErr: "each constraint must have either 2 or 3 fields"},
		{parts: []string{"hostname", "UNIQUE", "", ""}, wantErr: "each constraint must have either 2 or 3 fields"},
		{parts: []string{"", "UNIQUE"}, wantErr: "constraint field is empty"},
		{parts: []string{"hostname", "unique"}, wantErr: `constraint operator must be one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS, not "unique"`},
		{parts: []string{"hostname", "IN", "a,b"}, wantErr: `constraint operator must be one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS, not "IN"`},
		{parts: []string{"hostname", "UNIQUE", "x"}, wantErr: "UNIQUE takes no value, but one was specified"},
		{parts: []string{"@zone", "GROUP_BY", "two"}, wantErr: `GROUP_BY may either have no value or an integer value, not "two"`},
		{parts: []string{"@zone", "GROUP_BY", "9999999999"}, wantErr: `GROUP_BY may either have no value or an integer value, not "9999999999"`},
		{parts: []string{"hostname", "MAX_PER"}, wantErr: `MAX_PER must have an integer value, not ""`},
		{parts: []string{"hostname", "MAX_PER", "1.5"}, wantErr: `MAX_PER must have an integer value, not "1.5"`},
		{parts: []string{"hostname", "MAX_PER", "0"}, wantErr: "MAX_PER must be at least 1, not 0"},
		{parts: []string{"hostname", "LIKE"}, wantErr: "LIKE needs a regular expression value"},
		{parts: []string{"hostname", "UNLIKE", ""}, wantErr: "UNLIKE needs a regular expression value"},
		{parts: []string{"hostname", "LIKE", "a)|(b"}, wantErr: `"a)|(b" is not a valid regular expression: error parsing regexp: unexpected ): ` + "`a)|(b`"},
		{parts: []string{"hostname", "LIKE", "(?=x)"}, wantErr: `"(?=x)" is not a valid regular expression: error parsing regexp: invalid or unsupported Perl syntax: ` + "`(?=`"},
		{parts: []string{"@zone", "IS"}, wantErr: "IS requires a value"},
	} {
		got, err := ParseConstraint(tc.parts)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseConstraint(%q) error = %v, want %q", tc.parts, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseConstraint(%q): %v", tc.parts, err)
			continue
		}
		if got.Field != tc.want.Field || got.Operator != tc.want.Operator || got.Value != tc.want.Value {
			t.Errorf("ParseConstraint(%q) = %+v, want %+v", tc.parts, got, tc.want)
		}
		if (got.re != nil) != (got.Operator == Like || got.Operator == Unlike) {
			t.Errorf("ParseConstraint(%q): compiled pattern %v", tc.parts, got.re)
		}
	}
}

func TestConstraintString(t *testing.T) {
	for _, tc := range []struct {
		c    Constraint
		want string
	}{
		{Constraint{Field: "hostname", Operator: Unique}, "hostname:UNIQUE"},
		{Constraint{Field: "@zone", Operator: GroupBy, Value: "3"}, "@zone:GROUP_BY:3"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// on is an instance placed on host with the given attributes.
func on(host string, attrs ...api.Attribute) Placed {
	return Placed{AgentID: "agent-" + host, Hostname: host, Attributes: attrs}
}

func TestConstraintOperators(t *testing.T) {
	scalarAttr := func(name string, v float64) api.Attribute {
		return api.Attribute{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
	}
	rangesAttr := api.Attribute{Name: "span", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 20, End: 30}, {Begin: 1, End: 10}}}}
	setAttr := api.Attribute{Name: "disks", Type: api.Set, Set: &api.ValueSet{Item: []string{"ssd", "hdd"}}}
	for _, tc := range []struct {
		name       string
		constraint []string
		placed     []Placed
		host       string
		attrs      []api.Attribute
		want       Reason
	}{
		{"UNIQUE hostname, nothing placed", []string{"hostname", "UNIQUE"}, nil, "a", nil, Matched},
		{"UNIQUE hostname, same host", []string{"hostname", "UNIQUE"}, []Placed{on("a")}, "a", nil, UnfulfilledConstraint},
		{"UNIQUE hostname, other host", []string{"hostname", "UNIQUE"}, []Placed{on("a")}, "b", nil, Matched},
		{"UNIQUE @hostname, same host", []string{"@hostname", "UNIQUE"}, []Placed{on("b"), on("a")}, "a", nil, UnfulfilledConstraint},
		{"UNIQUE attribute, same value", []string{"rack", "UNIQUE"}, []Placed{on("a", text("rack", "r1"))}, "b", []api.Attribute{text("rack", "r1")}, UnfulfilledConstraint},
		{"UNIQUE attribute, other value", []string{"rack", "UNIQUE"}, []Placed{on("a", text("rack", "r1"))}, "b", []api.Attribute{text("rack", "r2")}, Matched},
		{"UNIQUE attribute, placed lacks it", []string{"rack", "UNIQUE"}, []Placed{on("a")}, "b", []api.Attribute{text("rack", "r1")}, Matched},
		{"UNIQUE attribute, offer lacks it", []string{"rack", "UNIQUE"}, nil, "b", nil, UnfulfilledConstraint},
		{"UNIQUE compares formatted values", []string{"rack", "UNIQUE"}, []Placed{on("a", scalarAttr("rack", 3))}, "b", []api.Attribute{text("rack", "3")}, UnfulfilledConstraint},

		{"CLUSTER value, same", []string{"rack", "CLUSTER", "r1"}, nil, "a", []api.Attribute{text("rack", "r1")}, Matched},
		{"CLUSTER value, other", []string{"rack", "CLUSTER", "r1"}, nil, "a", []api.Attribute{text("rack", "r2")}, UnfulfilledConstraint},
		{"CLUSTER value, offer lacks it", []string{"rack", "CLUSTER", "r1"}, nil, "a", nil, UnfulfilledConstraint},
		{"CLUSTER no value, nothing placed", []string{"rack", "CLUSTER"}, nil, "a", []api.Attribute{text("rack", "r2")}, Matched},
		{"CLUSTER no value, pinned to same", []string{"rack", "CLUSTER"}, []Placed{on("b", text("rack", "r2"))}, "a", []api.Attribute{text("rack", "r2")}, Matched},
		{"CLUSTER no value, pinned to other", []string{"rack", "CLUSTER"}, []Placed{on("b", text("rack", "r2"))}, "a", []api.Attribute{text("rack", "r1")}, UnfulfilledConstraint},
		{"CLUSTER no value, first placed decides", []string{"rack", "CLUSTER"}, []Placed{on("b", text("rack", "r2")), on("c", text("rack", "r1"))}, "a", []api.Attribute{text("rack", "r1")}, UnfulfilledConstraint},
		{"CLUSTER no value, first placed lacks it", []string{"rack", "CLUSTER"}, []Placed{on("b")}, "a", []api.Attribute{text("rack", "r1")}, UnfulfilledConstraint},
		{"CLUSTER hostname pinned", []string{"hostname", "CLUSTER"}, []Placed{on("a")}, "a", nil, Matched},
		{"CLUSTER hostname pinned elsewhere", []string{"hostname", "CLUSTER"}, []Placed{on("a")}, "b", nil, UnfulfilledConstraint},

		{"GROUP_BY new value", []string{"@zone", "GROUP_BY"}, []Placed{on("a", text("zone", "z1")), on("b", text("zone", "z1")), on("c", text("zone", "z2"))}, "d", []api.Attribute{text("zone", "z3")}, Matched},
		{"GROUP_BY smallest group", []string{"@zone", "GROUP_BY"}, []Placed{on("a", text("zone", "z1")), on("b", text("zone", "z1")), on("c", text("zone", "z2"))}, "d", []api.Attribute{text("zone", "z2")}, Matched},
		{"GROUP_BY largest group", []string{"@zone", "GROUP_BY"}, []Placed{on("a", text("zone", "z1")), on("b", text("zone", "z1")), on("c", text("zone", "z2"))}, "d", []api.Attribute{text("zone", "z1")}, UnfulfilledConstraint},
		{"GROUP_BY even groups", []string{"@zone", "GROUP_BY"}, []Placed{on("a", text("zone", "z1")), on("c", text("zone", "z2"))}, "d", []api.Attribute{text("zone", "z1")}, Matched},
		{"GROUP_BY too few groups yet", []string{"@zone", "GROUP_BY", "3"}, []Placed{on("a", text("zone", "z1")), on("c", text("zone", "z2"))}, "d", []api.Attribute{text("zone", "z1")}, UnfulfilledConstraint},
		{"GROUP_BY too few groups, new value", []string{"@zone", "GROUP_BY", "3"}, []Placed{on("a", text("zone", "z1")), on("c", text("zone", "z2"))}, "d", []api.Attribute{text("zone", "z3")}, Matched},
		{"GROUP_BY lacking instances form a group", []string{"@zone", "GROUP_BY"}, []Placed{on("a", text("zone", "z1")), on("b", text("zone", "z1")), on("c")}, "d", []api.Attribute{text("zone", "z1")}, UnfulfilledConstraint},
		{"GROUP_BY lacking group counts as smallest", []string{"@zone", "GROUP_BY"}, []Placed{on("a", text("zone", "z1")), on("c")}, "d", []api.Attribute{text("zone", "z1")}, Matched},
		{"GROUP_BY offer lacks it", []string{"@zone", "GROUP_BY"}, nil, "d", nil, UnfulfilledConstraint},

		{"MAX_PER below", []string{"hostname", "MAX_PER", "2"}, []Placed{on("a")}, "a", nil, Matched},
		{"MAX_PER reached", []string{"hostname", "MAX_PER", "2"}, []Placed{on("a"), on("b"), on("a")}, "a", nil, UnfulfilledConstraint},
		{"MAX_PER other value", []string{"hostname", "MAX_PER", "2"}, []Placed{on("a"), on("a")}, "b", nil, Matched},
		{"MAX_PER offer lacks it", []string{"rack", "MAX_PER", "2"}, nil, "b", nil, UnfulfilledConstraint},

		{"LIKE full match", []string{"hostname", "LIKE", "agent-1"}, nil, "agent-1", nil, Matched},
		{"LIKE is not a substring match", []string{"hostname", "LIKE", "agent-1"}, nil, "agent-10", nil, UnfulfilledConstraint},
		{"LIKE not at the start", []string{"hostname", "LIKE", "agent-[0-9]+"}, nil, "xagent-10", nil, UnfulfilledConstraint},
		{"LIKE alternation anchored as a whole", []string{"hostname", "LIKE", "a|b"}, nil, "ab", nil, UnfulfilledConstraint},
		{"LIKE pattern", []string{"hostname", "LIKE", "agent-[0-9]+"}, nil, "agent-10", nil, Matched},
		{"LIKE offer lacks it", []string{"rack", "LIKE", ".*"}, nil, "a", nil, UnfulfilledConstraint},
		{"UNLIKE is not a substring match", []string{"hostname", "UNLIKE", "agent-1"}, nil, "agent-10", nil, Matched},
		{"UNLIKE full match", []string{"hostname", "UNLIKE", "agent-1"}, nil, "agent-1", nil, UnfulfilledConstraint},
		{"UNLIKE offer lacks it", []string{"rack", "UNLIKE", "r1"}, nil, "a", nil, Matched},

		{"IS equal", []string{"@zone", "IS", "z1"}, nil, "a", []api.Attribute{text("zone", "z1")}, Matched},
		{"IS other", []string{"@zone", "IS", "z1"}, nil, "a", []api.Attribute{text("zone", "z2")}, UnfulfilledConstraint},
		{"IS offer lacks it", []string{"@zone", "IS", "z1"}, nil, "a", nil, UnfulfilledConstraint},
		{"IS @region", []string{"@region", "IS", "eu"}, nil, "a", []api.Attribute{text("region", "eu")}, Matched},
		{"IS hostname", []string{"hostname", "IS", "a"}, nil, "a", nil, Matched},
		{"IS scalar integer", []string{"gen", "IS", "3"}, nil, "a", []api.Attribute{scalarAttr("gen", 3)}, Matched},
		{"IS scalar fraction", []string{"gen", "IS", "2.5"}, nil, "a", []api.Attribute{scalarAttr("gen", 2.5)}, Matched},
		{"IS scalar three decimals", []string{"gen", "IS", "1.235"}, nil, "a", []api.Attribute{scalarAttr("gen", 1.23456)}, Matched},
		{"IS scalar without grouping", []string{"gen", "IS", "1234"}, nil, "a", []api.Attribute{scalarAttr("gen", 1234)}, Matched},
		{"IS ranges sorted", []string{"span", "IS", "[1-10,20-30]"}, nil, "a", []api.Attribute{rangesAttr}, Matched},
		{"IS set sorted", []string{"disks", "IS", "{hdd,ssd}"}, nil, "a", []api.Attribute{setAttr}, Matched},
		{"malformed attribute counts as missing", []string{"gen", "UNLIKE", ".*"}, nil, "a", []api.Attribute{{Name: "gen", Type: api.Scalar}}, Matched},
		{"malformed attribute fails IS", []string{"gen", "IS", "0"}, nil, "a", []api.Attribute{{Name: "gen", Type: api.Scalar}}, UnfulfilledConstraint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustConstraint(t, tc.constraint...)
			req := &Requirements{CPUs: 1, MemMB: 128, Constraints: []Constraint{c}}
			_, got := Match(newOffer("o1", tc.host, tc.attrs), req, tc.placed)
			if got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestInvalidConstraintNeverHolds: constraints written as literals that ParseConstraint
// would reject make every offer fail instead of being ignored.
func TestInvalidConstraintNeverHolds(t *testing.T) {
	for _, c := range []Constraint{
		{Field: "hostname", Operator: "NEAR"},
		{Field: "hostname", Operator: Like, Value: "("},
		{Field: "hostname", Operator: MaxPer, Value: "many"},
	} {
		req := &Requirements{CPUs: 1, Constraints: []Constraint{c}}
		if _, got := Match(newOffer("o1", "a", nil), req, nil); got != UnfulfilledConstraint {
			t.Errorf("%v: Match = %v, want UnfulfilledConstraint", c, got)
		}
	}
	// A literal LIKE compiles on use.
	req := &Requirements{CPUs: 1, Constraints: []Constraint{{Field: "hostname", Operator: Like, Value: "a.*"}}}
	if _, got := Match(newOffer("o1", "ab", nil), req, nil); got != Matched {
		t.Errorf("literal LIKE: Match = %v, want Matched", got)
	}
	// A parsed pattern whose Value was changed afterwards uses the new Value.
	c := mustConstraint(t, "hostname", "LIKE", "x")
	c.Value = "a.*"
	req = &Requirements{CPUs: 1, Constraints: []Constraint{c}}
	if _, got := Match(newOffer("o1", "ab", nil), req, nil); got != Matched {
		t.Errorf("edited LIKE: Match = %v, want Matched", got)
	}
}

// TestUniqueHostnameThreeAgents: one instance per agent on three agents, and a fourth
// offer (a new offer from one of them) is declined for the constraint.
func TestUniqueHostnameThreeAgents(t *testing.T) {
	req := &Requirements{CPUs: 1, MemMB: 128, Constraints: []Constraint{mustConstraint(t, "hostname", "UNIQUE")}}
	var placed []Placed
	for i, host := range []string{"a", "b", "c"} {
		offer := newOffer("o"+string(rune('1'+i)), host, nil)
		claims, reason := MatchMany(offer, req, placed, 5)
		if reason != Matched || len(claims) != 1 {
			t.Fatalf("offer from %s: %d claims, %v; want 1, Matched", host, len(claims), reason)
		}
		placed = append(placed, PlacedOn(offer))
	}
	if claims, reason := MatchMany(newOffer("o4", "b", nil), req, placed, 5); reason != UnfulfilledConstraint || claims != nil {
		t.Errorf("fourth offer: %v, %v; want nil, UnfulfilledConstraint", claims, reason)
	}

	// A Planner remembers what it placed.
	planner := NewPlanner(req, nil)
	for i, host := range []string{"a", "b", "c"} {
		if _, reason := planner.Match(newOffer("p"+string(rune('1'+i)), host, nil)); reason != Matched {
			t.Fatalf("planner, offer from %s: %v", host, reason)
		}
	}
	if _, reason := planner.Match(newOffer("p4", "a", nil)); reason != UnfulfilledConstraint {
		t.Errorf("planner, fourth offer: %v, want UnfulfilledConstraint", reason)
	}
}

// TestGroupByZoneSpreading: GROUP_BY with three zones fills every zone before any zone gets
// a second instance, and keeps them even after.
func TestGroupByZoneSpreading(t *testing.T) {
	zoneOf := map[string]string{"a1": "z1", "a2": "z1", "b1": "z2", "c1": "z3"}
	req := &Requirements{CPUs: 0.5, Constraints: []Constraint{mustConstraint(t, "@zone", "GROUP_BY", "3")}}
	planner := NewPlanner(req, nil)
	for i, step := range []struct {
		host string
		want Reason
	}{
		{"a1", Matched},               // z1:1
		{"a2", UnfulfilledConstraint}, // only one zone used of three
		{"b1", Matched},               // z2:1
		{"a2", UnfulfilledConstraint}, // two zones of three
		{"c1", Matched},               // z3:1
		{"a2", Matched},               // z1:2
		{"a1", UnfulfilledConstraint}, // z1 is ahead
		{"b1", Matched},               // z2:2
		{"c1", Matched},               // z3:2
		{"a1", Matched},               // z1:3
	} {
		offer := newOffer("o"+string(rune('a'+i)), step.host, []api.Attribute{text("zone", zoneOf[step.host])})
		if claims, got := planner.MatchMany(offer, 1); got != step.want {
			t.Fatalf("step %d (%s): %d claims, %v; want %v", i, step.host, len(claims), got, step.want)
		}
	}
}

// TestMaxPerTwo: MAX_PER 2 on hostname packs two instances into an offer that could hold
// more, then declines that host.
func TestMaxPerTwo(t *testing.T) {
	req := &Requirements{CPUs: 0.5, Constraints: []Constraint{mustConstraint(t, "hostname", "MAX_PER", "2")}}
	planner := NewPlanner(req, []Placed{on("b")})
	if claims, reason := planner.MatchMany(newOffer("o1", "a", nil), 5); reason != Matched || len(claims) != 2 {
		t.Fatalf("host a: %d claims, %v; want 2, Matched", len(claims), reason)
	}
	if claims, reason := planner.MatchMany(newOffer("o2", "a", nil), 5); reason != UnfulfilledConstraint {
		t.Fatalf("host a again: %d claims, %v; want UnfulfilledConstraint", len(claims), reason)
	}
	if claims, reason := planner.MatchMany(newOffer("o3", "b", nil), 5); reason != Matched || len(claims) != 1 {
		t.Fatalf("host b: %d claims, %v; want 1, Matched", len(claims), reason)
	}
}

// TestClusterPinsFirstValue: CLUSTER without a value takes the value of wherever the first
// instance lands.
func TestClusterPinsFirstValue(t *testing.T) {
	req := &Requirements{CPUs: 1, Constraints: []Constraint{mustConstraint(t, "rack", "CLUSTER")}}
	planner := NewPlanner(req, nil)
	for i, step := range []struct {
		host, rack string
		want       Reason
		claims     int
	}{
		{"b", "r2", Matched, 4}, // pins r2; four cpus fit four instances
		{"a", "r1", UnfulfilledConstraint, 0},
		{"c", "r2", Matched, 4},
	} {
		offer := newOffer("o"+string(rune('1'+i)), step.host, []api.Attribute{text("rack", step.rack)})
		claims, got := planner.MatchMany(offer, 5)
		if got != step.want || len(claims) != step.claims {
			t.Fatalf("step %d: %d claims, %v; want %d, %v", i, len(claims), got, step.claims, step.want)
		}
	}
}

// TestGroupByTallyKeepsMinimum: the smallest group's count, kept up to date as instances
// are added, equals a recount after every addition.
func TestGroupByTallyKeepsMinimum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 200 {
		tl := newTally(Constraint{Field: "@zone", Operator: GroupBy})
		for i := range 60 {
			value := string(rune('a' + rng.IntN(1+round%6)))
			tl.add(value, rng.IntN(10) != 0)
			recount := -1
			for _, n := range tl.counts {
				if recount < 0 || n < recount {
					recount = n
				}
			}
			if tl.minCount != recount {
				t.Fatalf("round %d, addition %d: minCount %d, recount %d (%v)", round, i, tl.minCount, recount, tl.counts)
			}
		}
	}
}
