package alloc

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
)

func mustParse(t testing.TB, s string) Resources {
	t.Helper()
	r, err := ParseResources(s)
	if err != nil {
		t.Fatalf("ParseResources(%q): %v", s, err)
	}
	return r
}

func TestParseResources(t *testing.T) {
	tests := []struct {
		in, want string // want is String() of the result
	}{
		{"", ""},
		{" ; ;", ""},
		{"cpus:4;mem:8192;disk:1000;ports:[31000-32000,33000-33010];gpus:0;zones:{a,b}",
			"cpus:4;mem:8192;disk:1000;ports:[31000-32000,33000-33010];zones:{a,b}"},
		{" cpus : 0.5 ; mem:1e3 ", "cpus:0.5;mem:1000"},
		{"cpus(*):2", "cpus:2"},
		{"cpus:1;cpus:2.5", "cpus:3.5"},
		{"cpus:0.0004", ""},
		{"cpus:0.0005", "cpus:0.001"},
		{"cpus:1.23456", "cpus:1.235"},
		{"ports:[33000-33010, 31000-32000, 32001-32005]", "ports:[31000-32005,33000-33010]"},
		{"ports:[]", ""},
		{"ports:[5-5,1-3,3-4]", "ports:[1-5]"},
		{"ports:[0-18446744073709551615,7-9]", "ports:[0-18446744073709551615]"},
		{"zones:{b, a, b}", "zones:{a,b}"},
		{"zones:{}", ""},
		{"zones:{a};zones:{c}", "zones:{a,c}"},
		{"bandwidth:100;vlans:[10-20];zones:{x}", "bandwidth:100;vlans:[10-20];zones:{x}"},
		{"zz:1;aa:2;cpus:1", "cpus:1;aa:2;zz:1"},
		{`[{"name":"cpus","type":"SCALAR","scalar":{"value":2}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":1,"end":2}]}}]`,
			"cpus:2;ports:[1-2]"},
	}
	for _, tt := range tests {
		got, err := ParseResources(tt.in)
		if err != nil {
			t.Errorf("ParseResources(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParseResources(%q).String() = %q, want %q", tt.in, got.String(), tt.want)
		}
		again := mustParse(t, got.String())
		if !again.Equal(got) {
			t.Errorf("ParseResources(%q) does not round-trip: %q parses to %q", tt.in, got, again)
		}
	}
}

func TestParseResourcesErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error
	}{
		{"cpus", `resource "cpus": want name:value`},
		{"cpus:x", `resource "cpus:x": scalar "x" is not a number`},
		{"cpus:", `scalar "" is not a number`},
		{"cpus:-1", `resource "cpus:-1": scalar -1 is negative`},
		{"cpus:NaN", "not a finite number"},
		{"mem:Inf", "not a finite number"},
		{"mem:1e13", "exceeds 1e+12"},
		{"mem:6e11;mem:6e11", `resource "mem:6e11": total mem exceeds 1e+12`},
		{"cpus:[1-2]", `resource "cpus:[1-2]": type is "RANGES", cpus must be SCALAR`},
		{"ports:4", `ports must be RANGES`},
		{"ports:{a}", `ports must be RANGES`},
		{"ports:[2-1]", `range [2-1] begins after it ends`},
		{"ports:[1-2", "lack a closing bracket"},
		{"ports:[1]", `range "1": want begin-end`},
		{"ports:[a-2]", `range "a-2": begin is not`},
		{"ports:[1-b]", `range "1-b": end is not`},
		{"ports:[-1-2]", "begin is not"},
		{"zones:{a", "lacks a closing brace"},
		{"zones:{a,,b}", `set item "": empty`},
		{"zones:{a b}", `set item "a b": contains ' '`},
		{":4", `resource ":4": empty name`},
		{"my cpus:4", `contains ' '`},
		{"cpus(web):4", `reserved for role "web"`},
		{"cpus(*:4", "lacks a closing parenthesis"},
		{"zones:{a};zones:4", `resource "zones:4": zones is SCALAR here but SET before`},
		{"[{", "parse resources as JSON"},
		{`[{"name":"cpus","type":"SCALAR"}]`, `resource 0 ("cpus"): a SCALAR resource needs "scalar"`},
	}
	for _, tt := range tests {
		_, err := ParseResources(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseResources(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestFromProtoErrors(t *testing.T) {
	scalar := func(name string, v float64) api.Resource {
		return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
	}
	tests := []struct {
		name string
		in   []api.Resource
		want string
	}{
		{"empty name", []api.Resource{scalar("", 1)}, `resource 0 (""): empty name`},
		{"unknown type", []api.Resource{{Name: "foo", Type: "TEXT"}}, `resource 0 ("foo"): unknown type "TEXT"`},
		{"missing type", []api.Resource{{Name: "foo", Scalar: &api.ValueScalar{Value: 1}}}, `unknown type ""`},
		{"mismatched type", []api.Resource{{Name: "mem", Type: api.Set, Set: &api.ValueSet{Item: []string{"a"}}}}, `resource 0 ("mem"): type is "SET", mem must be SCALAR`},
		{"missing value", []api.Resource{{Name: "foo", Type: api.Ranges}}, `a RANGES resource needs "ranges"`},
		{"extra value", []api.Resource{{Name: "foo", Type: api.Set, Set: &api.ValueSet{}, Scalar: &api.ValueScalar{}}}, `a SET resource needs "set" and nothing else`},
		{"negative", []api.Resource{scalar("cpus", 1), scalar("disk", -0.5)}, `resource 1 ("disk"): scalar -0.5 is negative`},
		{"NaN", []api.Resource{scalar("gpus", math.NaN())}, `resource 0 ("gpus"): scalar NaN is not a finite number`},
		{"infinite", []api.Resource{scalar("foo", math.Inf(1))}, `scalar +Inf is not a finite number`},
		{"begin after end", []api.Resource{{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 1, End: 5}, {Begin: 9, End: 8}}}}},
			`resource 0 ("ports"): range [9-8] begins after it ends`},
		{"types differ", []api.Resource{scalar("foo", 1), {Name: "foo", Type: api.Ranges, Ranges: &api.ValueRanges{}}},
			`resource 1 ("foo"): foo is RANGES here but SCALAR before`},
		{"reserved", []api.Resource{{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1}, Role: "web"}},
			`resource 0 ("cpus"): reserved for role "web": reservations are not supported`},
		{"bad name", []api.Resource{scalar("a;b", 1)}, `contains ';'`},
	}
	for _, tt := range tests {
		_, err := FromProto(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: FromProto error = %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestFromProto(t *testing.T) {
	in := []api.Resource{
		{Name: "ports", Type: api.Ranges, Role: "*", Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31005, End: 31010}, {Begin: 31000, End: 31004}}}},
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.1}, AllocationInfo: &api.AllocationInfo{Role: "*"}},
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.2}},
		{Name: "zones", Type: api.Set, Set: &api.ValueSet{Item: []string{"b", "a"}}},
	}
	got, err := FromProto(in)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "cpus:0.3;ports:[31000-31010];zones:{a,b}" {
		t.Errorf("got %q", got)
	}
	if got.Scalar("cpus") != 0.3 {
		t.Errorf("Scalar(cpus) = %v, want exactly 0.3", got.Scalar("cpus"))
	}
	wantProto := []api.Resource{
		{Name: "cpus", Type: api.Scalar, Role: "*", Scalar: &api.ValueScalar{Value: 0.3}},
		{Name: "ports", Type: api.Ranges, Role: "*", Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31010}}}},
		{Name: "zones", Type: api.Set, Role: "*", Set: &api.ValueSet{Item: []string{"a", "b"}}},
	}
	if !reflect.DeepEqual(got.Proto(), wantProto) {
		t.Errorf("Proto() = %+v, want %+v", got.Proto(), wantProto)
	}
	if p := (Resources{}).Proto(); p == nil || len(p) != 0 {
		t.Errorf("empty Proto() = %#v, want an empty non-nil slice", p)
	}
}

func TestAlgebra(t *testing.T) {
	tests := []struct {
		a, b         string
		sum, diff    string // a+b, a-b
		aHasB, bHasA bool   // a.Contains(b), b.Contains(a)
	}{
		{"", "", "", "", true, true},
		{"cpus:1", "", "cpus:1", "cpus:1", true, false},
		{"cpus:1;mem:512", "cpus:0.5", "cpus:1.5;mem:512", "cpus:0.5;mem:512", true, false},
		{"cpus:0.1", "cpus:0.2", "cpus:0.3", "", false, true},
		{"cpus:1;mem:512", "cpus:2;mem:256", "cpus:3;mem:768", "mem:256", false, false},
		{"cpus:2", "cpus:2", "cpus:4", "", true, true},
		{"gpus:1;disk:10", "disk:10", "disk:20;gpus:1", "gpus:1", true, false},
		{"bandwidth:10", "bandwidth:2.5", "bandwidth:12.5", "bandwidth:7.5", true, false},
		// Ranges: adjacent ranges merge; subtraction splits, trims and ignores what is missing.
		{"ports:[1-10]", "ports:[11-20]", "ports:[1-20]", "ports:[1-10]", false, false},
		{"ports:[1-10]", "ports:[4-6]", "ports:[1-10]", "ports:[1-3,7-10]", true, false},
		{"ports:[1-10]", "ports:[1-1,10-10]", "ports:[1-10]", "ports:[2-9]", true, false},
		{"ports:[1-10]", "ports:[0-20]", "ports:[0-20]", "", false, true},
		{"ports:[1-5,10-15]", "ports:[5-10]", "ports:[1-15]", "ports:[1-4,11-15]", false, false},
		{"ports:[1-5,10-15]", "ports:[6-9]", "ports:[1-15]", "ports:[1-5,10-15]", false, false},
		{"ports:[1-3,5-7,9-11]", "ports:[2-10]", "ports:[1-11]", "ports:[1-1,11-11]", false, false},
		{"ports:[1-3,5-7]", "ports:[1-3,6-6]", "ports:[1-3,5-7]", "ports:[5-5,7-7]", true, false},
		{"ports:[1-3,5-7]", "ports:[3-5]", "ports:[1-7]", "ports:[1-2,6-7]", false, false},
		{"ports:[0-18446744073709551615]", "ports:[0-0,18446744073709551615-18446744073709551615]",
			"ports:[0-18446744073709551615]", "ports:[1-18446744073709551614]", true, false},
		{"ports:[18446744073709551614-18446744073709551615]", "ports:[18446744073709551615-18446744073709551615]",
			"ports:[18446744073709551614-18446744073709551615]", "ports:[18446744073709551614-18446744073709551614]", true, false},
		{"vlans:[1-4]", "vlans:[3-9]", "vlans:[1-9]", "vlans:[1-2]", false, false},
		// Sets.
		{"zones:{a,b}", "zones:{b,c}", "zones:{a,b,c}", "zones:{a}", false, false},
		{"zones:{a,b}", "zones:{b}", "zones:{a,b}", "zones:{a}", true, false},
		{"zones:{a}", "zones:{a}", "zones:{a}", "", true, true},
		{"zones:{a}", "racks:{a}", "racks:{a};zones:{a}", "zones:{a}", false, false},
		// Mixed.
		{"cpus:4;mem:8192;ports:[31000-32000];zones:{a,b}", "cpus:1;mem:1024;ports:[31000-31000];zones:{a}",
			"cpus:5;mem:9216;ports:[31000-32000];zones:{a,b}", "cpus:3;mem:7168;ports:[31001-32000];zones:{b}", true, false},
	}
	for _, tt := range tests {
		a, b := mustParse(t, tt.a), mustParse(t, tt.b)
		if got := a.Add(b); got.String() != tt.sum {
			t.Errorf("%q + %q = %q, want %q", tt.a, tt.b, got, tt.sum)
		}
		if got := b.Add(a); got.String() != tt.sum {
			t.Errorf("%q + %q = %q, want %q", tt.b, tt.a, got, tt.sum)
		}
		if got := a.Subtract(b); got.String() != tt.diff {
			t.Errorf("%q - %q = %q, want %q", tt.a, tt.b, got, tt.diff)
		}
		if got := a.Contains(b); got != tt.aHasB {
			t.Errorf("%q.Contains(%q) = %v, want %v", tt.a, tt.b, got, tt.aHasB)
		}
		if got := b.Contains(a); got != tt.bHasA {
			t.Errorf("%q.Contains(%q) = %v, want %v", tt.b, tt.a, got, tt.bHasA)
		}
		// (a + b) - b contains a - b and is contained in a: scalars may have been clamped.
		if back := a.Add(b).Subtract(b); !a.Contains(back) || !back.Contains(a.Subtract(b)) {
			t.Errorf("(%q + %q) - %q = %q", tt.a, tt.b, tt.b, back)
		}
		if !a.Add(b).Contains(a) || !a.Add(b).Contains(b) {
			t.Errorf("%q + %q does not contain both", tt.a, tt.b)
		}
	}
}

func TestOperandsUnchanged(t *testing.T) {
	a := mustParse(t, "cpus:2;ports:[1-10,20-30];zones:{a,b}")
	b := mustParse(t, "cpus:1;ports:[5-25];zones:{b,c}")
	aBefore, bBefore := a.String(), b.String()
	_ = a.Add(b)
	_ = a.Subtract(b)
	_ = b.Subtract(a)
	ports := a.Ports()
	ports[0].Begin = 99
	if a.String() != aBefore || b.String() != bBefore {
		t.Errorf("operands changed: %q, %q", a, b)
	}
}

func TestScalarAndIsEmpty(t *testing.T) {
	r := mustParse(t, "cpus:1.5;mem:128;disk:10;gpus:2;bandwidth:0.25;zones:{a}")
	for name, want := range map[string]float64{"cpus": 1.5, "mem": 128, "disk": 10, "gpus": 2, "bandwidth": 0.25, "zones": 0, "missing": 0} {
		if got := r.Scalar(name); got != want {
			t.Errorf("Scalar(%q) = %v, want %v", name, got, want)
		}
	}
	if r.IsEmpty() || !mustParse(t, "cpus:0;ports:[]").IsEmpty() || !r.Subtract(r).IsEmpty() {
		t.Error("IsEmpty is wrong")
	}
}

func TestFlat(t *testing.T) {
	got := mustParse(t, "cpus:1;mem:128;ports:[31000-31005,31010-31010];zones:{b,a};bandwidth:2.5").Flat()
	want := map[string]any{"cpus": 1.0, "gpus": 0.0, "mem": 128.0, "disk": 0.0,
		"ports": "[31000-31005, 31010-31010]", "zones": "{a, b}", "bandwidth": 2.5}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Flat() = %v, want %v", got, want)
	}
	js, err := json.Marshal(Resources{}.Flat())
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != `{"cpus":0,"disk":0,"gpus":0,"mem":0}` {
		t.Errorf("empty Flat() JSON = %s", js)
	}
}

func TestHasQuantities(t *testing.T) {
	tests := []struct {
		r, min string
		want   bool
	}{
		{"cpus:0.01", "cpus:0.01", true},
		{"cpus:0.009;mem:1000", "cpus:0.01", false},
		{"ports:[5-7]", "ports:[1-3]", true},
		{"ports:[5-6]", "ports:[1-3]", false},
		{"zones:{x,y}", "zones:{a}", true},
		{"zones:{x}", "zones:{a,b}", false},
		{"cpus:1", "bandwidth:1", false},
	}
	for _, tt := range tests {
		if got := mustParse(t, tt.r).hasQuantities(mustParse(t, tt.min)); got != tt.want {
			t.Errorf("%q.hasQuantities(%q) = %v, want %v", tt.r, tt.min, got, tt.want)
		}
	}
}

func FuzzParseResources(f *testing.F) {
	for _, seed := range []string{
		"cpus:4;mem:8192;disk:1000;ports:[31000-32000,33000-33010];gpus:0;zones:{a,b}",
		"cpus(*):0.5; mem : 12.75",
		"ports:[0-18446744073709551615]",
		"x:[1-2];x:[2-9];y:{q}",
		`[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}]`,
		"cpus:1e12;cpus:1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResources(s)
		if err != nil {
			return
		}
		again, err := ParseResources(r.String())
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", s, r.String(), err)
		}
		if !again.Equal(r) {
			t.Fatalf("round trip of %q: %q != %q", s, again, r)
		}
		fromProto, err := FromProto(r.Proto())
		if err != nil || !fromProto.Equal(r) {
			t.Fatalf("Proto round trip of %q: %q, %v", s, fromProto, err)
		}
	})
}

func FuzzFromProto(f *testing.F) {
	for _, seed := range []string{
		`[{"name":"cpus","type":"SCALAR","scalar":{"value":1.5}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":1,"end":3}]}}]`,
		`[{"name":"zones","type":"SET","set":{"item":["a","b","a"]}},{"name":"zones","type":"SET","set":{"item":["c"]}}]`,
		`[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]`,
		`[{"name":"x","type":"RANGES","ranges":{"range":[{"begin":5,"end":1}]}}]`,
		`[{"name":"mem","type":"SCALAR","scalar":{"value":1},"role":"web"}]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, js string) {
		var rs []api.Resource
		if json.Unmarshal([]byte(js), &rs) != nil {
			return
		}
		r, err := FromProto(rs)
		if err != nil {
			return
		}
		again, err := FromProto(r.Proto())
		if err != nil {
			t.Fatalf("Proto() of %s does not convert back: %v", js, err)
		}
		if !again.Equal(r) {
			t.Fatalf("round trip of %s: %q != %q", js, again, r)
		}
		if s, err := ParseResources(r.String()); err != nil || !s.Equal(r) {
			t.Fatalf("String round trip of %s: %q, %v", js, s, err)
		}
	})
}
