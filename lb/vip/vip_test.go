package vip

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testRange is the range every VIP test allocates from: the machine's VIP addresses are
// in 198.18.1.0/24, and this part of it is kept for these tests.
var testRange = netip.MustParsePrefix("198.18.1.192/26")

func TestParseLabel(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  Label
		err   string
	}{
		{value: "/myapp:80", want: Label{Name: "myapp", Port: 80}},
		{value: "/grp/web:8080", want: Label{Name: "grpweb", Port: 8080}},
		{value: "myapp:80", want: Label{Name: "myapp", Port: 80}},
		{value: "/api.hdfs:80", want: Label{Name: "api.hdfs", Port: 80}},
		{value: "/My_App..x.:443", want: Label{Name: "my-app.x", Port: 443}},
		{value: "198.18.1.200:5432", want: Label{Addr: netip.MustParseAddr("198.18.1.200"), Port: 5432}},
		{value: "/" + strings.Repeat("a", 70) + ":1", want: Label{Name: strings.Repeat("a", 63), Port: 1}},
		{value: "/myapp", err: `VIP "/myapp": want /name:port or address:port`},
		{value: "/myapp:0", err: `VIP "/myapp:0": port "0" is not 1-65535`},
		{value: "/myapp:65536", err: `VIP "/myapp:65536": port "65536" is not 1-65535`},
		{value: "/myapp:http", err: `VIP "/myapp:http": port "http" is not 1-65535`},
		{value: "/:80", err: `VIP "/:80": the name has no letters or digits`},
		{value: "/-/.:80", err: `VIP "/-/.:80": the name has no letters or digits`},
		{value: "[fd00::1]:80", err: `VIP "[fd00::1]:80": only IPv4 addresses are VIPs`},
		{value: "fd00::1:80", err: `VIP "fd00::1:80": only IPv4 addresses are VIPs`},
	} {
		got, err := ParseLabel(tt.value)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseLabel(%q) = %+v, %v; want error %q", tt.value, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLabel(%q) = %+v, %v; want %+v", tt.value, got, err, tt.want)
		}
	}
}

// FuzzParseLabel: any label value parses or fails without panicking, and what parses is
// a VIP DNS can name or an IPv4 address, with a port.
func FuzzParseLabel(f *testing.F) {
	for _, s := range []string{"/myapp:80", "/grp/web:8080", "198.18.1.200:5432", "/:80", "a:b:c", ":", "/A.b..C:1", "\xff:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		l, err := ParseLabel(value)
		if err != nil {
			return
		}
		if l.Port == 0 {
			t.Fatalf("ParseLabel(%q) = %+v: port 0", value, l)
		}
		if l.Name == "" {
			if !l.Addr.Is4() {
				t.Fatalf("ParseLabel(%q) = %+v: neither a name nor an IPv4 address", value, l)
			}
			return
		}
		for part := range strings.SplitSeq(l.Name, ".") {
			if part == "" || len(part) > maxLabel || strings.HasPrefix(part, "-") || strings.HasSuffix(part, "-") ||
				strings.TrimFunc(part, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' }) != "" {
				t.Fatalf("ParseLabel(%q) = %+v: label %q is not a DNS label", value, l, part)
			}
		}
	})
}

func TestName(t *testing.T) {
	for _, tt := range []struct {
		label, framework, want, err string
	}{
		{label: "grpweb", framework: "marathon", want: "grpweb.marathon"},
		{label: "broker", framework: "Kafka_Prod", want: "broker.kafka-prod"},
		{label: "x", framework: "!!!", err: `framework name "!!!" has no letters or digits`},
		{label: strings.Repeat("a.", 110) + "a", framework: "marathon",
			err: strings.Repeat("a.", 110) + "a.marathon.l4lb.thisdcos.directory is longer than 253 characters"},
	} {
		got, err := Name(tt.label, tt.framework)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Name(%q, %q) = %q, %v; want error %q", tt.label, tt.framework, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Name(%q, %q) = %q, %v; want %q", tt.label, tt.framework, got, err, tt.want)
		}
	}
	if got := FQDN("grpweb.marathon"); got != "grpweb.marathon.l4lb.thisdcos.directory." {
		t.Errorf("FQDN = %q", got)
	}
}

func TestParseRange(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "11.0.0.0/8", want: "11.0.0.0/8"},
		{in: "198.18.1.200/26", want: "198.18.1.192/26"},
		{in: "198.18.1.192/30", want: "198.18.1.192/30"},
		{in: "198.18.1.192/31", err: `VIP range "198.18.1.192/31": want an IPv4 prefix of /30 or larger, like 11.0.0.0/8`},
		{in: "fd00::/64", err: `VIP range "fd00::/64": want an IPv4 prefix of /30 or larger, like 11.0.0.0/8`},
		{in: "11.0.0.0", err: `VIP range "11.0.0.0": netip.ParsePrefix("11.0.0.0"): no '/'`},
	} {
		got, err := ParseRange(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseRange(%q) = %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestAllocate: each name's address is the one its hash picks in the range; names that
// hash to the same address are placed in sorted order, the later ones taking the next
// free address (wrapping around, never the network or broadcast address); address VIPs
// are skipped; names beyond the range's size get none.
func TestAllocate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		r     string
		names []string
		taken []netip.Addr
		want  map[string]string
		left  []string
	}{
		{name: "no collision", r: "198.18.1.192/26",
			names: []string{"web.marathon", "grpweb.marathon", "api.hdfs.marathon"},
			want:  map[string]string{"web.marathon": "198.18.1.206", "grpweb.marathon": "198.18.1.195", "api.hdfs.marathon": "198.18.1.253"}},
		{name: "collision: sorted order", r: "198.18.1.192/26",
			names: []string{"app6.marathon", "app4.marathon"},
			want:  map[string]string{"app4.marathon": "198.18.1.239", "app6.marathon": "198.18.1.240"}},
		{name: "three on one address, the next one taken", r: "198.18.1.192/26",
			names: []string{"web.marathon", "app3.marathon", "app23.marathon", "app15.marathon"},
			want: map[string]string{"app15.marathon": "198.18.1.207", "app23.marathon": "198.18.1.206",
				"app3.marathon": "198.18.1.208", "web.marathon": "198.18.1.209"}},
		{name: "address VIPs skipped", r: "198.18.1.192/26",
			names: []string{"web.marathon"}, taken: addrs("198.18.1.206", "198.18.1.207", "10.0.0.1"),
			want: map[string]string{"web.marathon": "198.18.1.208"}},
		{name: "wraps around past the broadcast address", r: "198.18.1.192/26",
			names: []string{"api.hdfs.marathon"}, taken: addrs("198.18.1.253", "198.18.1.254"),
			want: map[string]string{"api.hdfs.marathon": "198.18.1.193"}},
		{name: "duplicates count once", r: "198.18.1.192/26",
			names: []string{"web.marathon", "web.marathon"},
			want:  map[string]string{"web.marathon": "198.18.1.206"}},
		{name: "full", r: "198.18.1.192/30",
			names: []string{"a.marathon", "b.marathon", "c.marathon", "d.marathon"}, taken: addrs("198.18.1.193"),
			want: map[string]string{"a.marathon": "198.18.1.194"}, left: []string{"b.marathon", "c.marathon", "d.marathon"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, left := Allocate(netip.MustParsePrefix(tt.r), tt.names, tt.taken)
			gotText := map[string]string{}
			for n, a := range got {
				gotText[n] = a.String()
			}
			if !reflect.DeepEqual(gotText, tt.want) || !slices.Equal(left, tt.left) {
				t.Errorf("Allocate = %v, left %v; want %v, left %v", gotText, left, tt.want, tt.left)
			}
		})
	}
}

// FuzzAllocate: for any names and taken addresses, every name gets a distinct usable
// address of the range that is not taken, or is left over only when the range is full,
// and the result does not depend on the order the names come in.
func FuzzAllocate(f *testing.F) {
	f.Add("web,grpweb,api.hdfs", uint8(26), uint64(1))
	f.Add("a,b,c,d,e,f", uint8(30), uint64(7))
	f.Add("app4,app6,app3,app23,app15,web", uint8(27), uint64(3))
	f.Fuzz(func(t *testing.T, list string, bits uint8, seed uint64) {
		r := netip.PrefixFrom(netip.MustParseAddr("198.18.1.192"), 26+int(bits%5)).Masked()
		names := strings.Split(list, ",")
		rng := rand.New(rand.NewPCG(seed, seed))
		var taken []netip.Addr
		first, size := usable(r)
		for range rng.IntN(3) {
			taken = append(taken, addrAt(first+uint32(rng.Uint64N(size))))
		}
		got, left := Allocate(r, names, taken)
		unique := slices.Compact(slices.Sorted(slices.Values(names)))
		if len(got)+len(left) != len(unique) {
			t.Fatalf("%d names allocated and %d left, want %d in all", len(got), len(left), len(unique))
		}
		free := int(size) - len(slices.Compact(slices.SortedFunc(slices.Values(taken), netip.Addr.Compare)))
		if len(left) > 0 && len(got) != free {
			t.Fatalf("%v left with %d of %d free addresses given", left, len(got), free)
		}
		seen := map[netip.Addr]string{}
		for name, a := range got {
			if !InRange(r, a) || slices.Contains(taken, a) {
				t.Fatalf("%s got %s: not a free usable address of %s", name, a, r)
			}
			if other, dup := seen[a]; dup {
				t.Fatalf("%s and %s both got %s", name, other, a)
			}
			seen[a] = name
		}
		shuffled := slices.Clone(names)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again, againLeft := Allocate(r, shuffled, taken)
		if !reflect.DeepEqual(again, got) || !slices.Equal(againLeft, left) {
			t.Fatalf("order changed the allocation: %v %v, then %v %v", got, left, again, againLeft)
		}
	})
}
