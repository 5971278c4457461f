package agent

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
)

func fixedProbe(cpus int, memMB, diskMB float64) hostProbe {
	return hostProbe{
		cpus:       func() int { return cpus },
		memTotalMB: func() (float64, error) { return memMB, nil },
		diskFreeMB: func() (float64, error) { return diskMB, nil },
	}
}

// failingProbe fails every measurement, proving that given resources are not detected.
var failingProbe = hostProbe{
	cpus:       func() int { panic("cpus detected although given") },
	memTotalMB: func() (float64, error) { return 0, errors.New("no meminfo") },
	diskFreeMB: func() (float64, error) { return 0, errors.New("no statfs") },
}

func TestResolveResources(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		probe   hostProbe
		want    string
		wantErr string
	}{
		{name: "all detected", spec: "", probe: fixedProbe(8, 16384, 100000),
			want: "cpus:8;mem:15360;disk:94880;ports:[31000-32000]"},
		{name: "small host keeps half", spec: "  ", probe: fixedProbe(1, 1500.9, 6000),
			want: "cpus:1;mem:750;disk:3000;ports:[31000-32000]"},
		{name: "reserve exactly half", spec: "", probe: fixedProbe(2, 2048, 10240),
			want: "cpus:2;mem:1024;disk:5120;ports:[31000-32000]"},
		{name: "all given", spec: "cpus:4;mem:8192;disk:1000;ports:[31000-31100]", probe: failingProbe,
			want: "cpus:4;mem:8192;disk:1000;ports:[31000-31100]"},
		{name: "zero means none, not detect", spec: "cpus:2;mem:512;disk:0;ports:[]", probe: failingProbe,
			want: "cpus:2;mem:512"},
		{name: "some given", spec: "mem:100;gpus:1;zone:{a}", probe: fixedProbe(3, 9999, 9999),
			want: "cpus:3;mem:100;disk:4999;gpus:1;ports:[31000-32000];zone:{a}"},
		{name: "role given", spec: "cpus(*):2;mem(*):64;disk(*):1;ports(*):[1-2]", probe: failingProbe,
			want: "cpus:2;mem:64;disk:1;ports:[1-2]"},
		{name: "json", spec: `[{"name":"cpus","type":"SCALAR","scalar":{"value":2}},{"name":"mem","type":"SCALAR","scalar":{"value":64}},{"name":"disk","type":"SCALAR","scalar":{"value":1}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":5,"end":6}]}}]`,
			probe: failingProbe, want: "cpus:2;mem:64;disk:1;ports:[5-6]"},
		{name: "bad spec", spec: "cpus:x", probe: failingProbe, wantErr: "cpus"},
		{name: "mem detection fails", spec: "cpus:1", probe: failingProbe, wantErr: "detect mem (give it in the resources to skip detection): no meminfo"},
		{name: "disk detection fails", spec: "cpus:1;mem:1", probe: failingProbe, wantErr: "detect disk (give it in the resources to skip detection): no statfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveResources(tt.spec, tt.probe)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("resources = %q, want %q", got.String(), tt.want)
			}
		})
	}
}

// TestSystemProbe checks the real measurements are plausible on this host.
func TestSystemProbe(t *testing.T) {
	probe := systemProbe(t.TempDir())
	if probe.cpus() < 1 {
		t.Fatalf("cpus = %d", probe.cpus())
	}
	if mem, err := probe.memTotalMB(); err != nil || mem < 64 {
		t.Fatalf("mem = %v, %v", mem, err)
	}
	if disk, err := probe.diskFreeMB(); err != nil || disk <= 0 {
		t.Fatalf("disk = %v, %v", disk, err)
	}
	if _, err := systemProbe("/nonexistent/dir").diskFreeMB(); err == nil {
		t.Fatal("statfs of a missing dir succeeded")
	}
}

func TestParseMemTotal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr string
	}{
		{name: "proc", in: "MemTotal:       16318480 kB\nMemFree:         1234 kB\n", want: 16318480},
		{name: "not first", in: "Foo: 1 kB\nMemTotal: 2048 kB\n", want: 2048},
		{name: "missing", in: "MemFree: 1 kB\n", wantErr: "no MemTotal line"},
		{name: "no unit", in: "MemTotal: 1\n", wantErr: "malformed MemTotal line"},
		{name: "bad number", in: "MemTotal: x kB\n", wantErr: "malformed MemTotal value"},
		{name: "empty", in: "", wantErr: "no MemTotal line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMemTotal(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzParseMemTotal(f *testing.F) {
	f.Add("MemTotal:       16318480 kB\n")
	f.Add("MemTotal: 1\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		kb, err := parseMemTotal(strings.NewReader(in))
		if err == nil && !strings.Contains(in, "MemTotal:") {
			t.Fatalf("parsed %d from input without MemTotal", kb)
		}
	})
}

func TestAfterReserve(t *testing.T) {
	tests := []struct {
		total, reserve float64
		want           int64
	}{
		{16384, 1024, 15360},
		{2048, 1024, 1024},
		{1000, 1024, 500},
		{1001.9, 1024, 500},
		{0, 1024, 0},
		{-5, 1024, 0},
		{100000.7, 5120, 94880},
	}
	for _, tt := range tests {
		if got := afterReserve(tt.total, tt.reserve); got != tt.want {
			t.Errorf("afterReserve(%v, %v) = %d, want %d", tt.total, tt.reserve, got, tt.want)
		}
	}
}

func TestParseAttributes(t *testing.T) {
	text := func(name, v string) api.Attribute {
		return api.Attribute{Name: name, Type: api.Text, Text: &api.ValueText{Value: v}}
	}
	scalar := func(name string, v float64) api.Attribute {
		return api.Attribute{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
	}
	tests := []struct {
		name    string
		in      string
		want    []api.Attribute
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "text", in: "rack:r1;zone:a", want: []api.Attribute{text("rack", "r1"), text("zone", "a")}},
		{name: "spaces and empty entries", in: " rack : r1 ;; zone:a;", want: []api.Attribute{text("rack", "r1"), text("zone", "a")}},
		{name: "scalar", in: "level:3;weight:-0.5", want: []api.Attribute{scalar("level", 3), scalar("weight", -0.5)}},
		{name: "nan and inf are text", in: "a:NaN;b:inf", want: []api.Attribute{text("a", "NaN"), text("b", "inf")}},
		{name: "ranges", in: "ports:[1-10, 20-30]", want: []api.Attribute{{Name: "ports", Type: api.Ranges,
			Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 1, End: 10}, {Begin: 20, End: 30}}}}}},
		{name: "set", in: "disks:{ssd, hdd}", want: []api.Attribute{{Name: "disks", Type: api.Set, Set: &api.ValueSet{Item: []string{"ssd", "hdd"}}}}},
		{name: "value with colon", in: "url:http://x", want: []api.Attribute{text("url", "http://x")}},
		{name: "duplicate names kept", in: "a:1;a:x", want: []api.Attribute{scalar("a", 1), text("a", "x")}},
		{name: "no colon", in: "rack", wantErr: `attribute "rack": want name:value`},
		{name: "no name", in: ":x", wantErr: `attribute ":x": want name:value`},
		{name: "no value", in: "rack:", wantErr: `attribute "rack:": want name:value`},
		{name: "unclosed range", in: "p:[1-2", wantErr: `attribute "p": ranges "[1-2": missing ']'`},
		{name: "range without dash", in: "p:[5]", wantErr: `attribute "p": range "5": want begin-end`},
		{name: "backwards range", in: "p:[5-1]", wantErr: `attribute "p": range "5-1": begin is after end`},
		{name: "bad range number", in: "p:[a-1]", wantErr: `attribute "p": range "a-1": begin`},
		{name: "unclosed set", in: "s:{a", wantErr: `attribute "s": set "{a": missing '}'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAttributes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseAttributes(f *testing.F) {
	for _, s := range []string{"rack:r1;zone:a", "p:[1-10,20-30]", "s:{a,b}", "n:1.5", "bad", "p:[5-1]", ";;:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		attrs, err := parseAttributes(in)
		if err != nil {
			return
		}
		for _, a := range attrs {
			if a.Name == "" {
				t.Fatalf("attribute without a name from %q", in)
			}
			set := 0
			for _, present := range []bool{a.Scalar != nil, a.Ranges != nil, a.Set != nil, a.Text != nil} {
				if present {
					set++
				}
			}
			if set != 1 {
				t.Fatalf("attribute %+v from %q has %d values", a, in, set)
			}
			if a.Ranges != nil {
				for _, r := range a.Ranges.Range {
					if r.Begin > r.End {
						t.Fatalf("backwards range %+v from %q", r, in)
					}
				}
			}
		}
	})
}
