package network

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "default", change: func(*Config) {}},
		{name: "small subnet", change: func(c *Config) { c.Subnet = netip.MustParsePrefix("198.18.0.128/30") }},
		{name: "empty bridge", change: func(c *Config) { c.Bridge = "" }, wantErr: `bridge: interface name "": want 1 to 15 bytes`},
		{name: "long bridge", change: func(c *Config) { c.Bridge = "atoll0123456789a" }, wantErr: `bridge: interface name "atoll0123456789a": want 1 to 15 bytes`},
		{name: "bridge with slash", change: func(c *Config) { c.Bridge = "at/0" }, wantErr: `bridge: interface name "at/0" has a "/", ":" or white space`},
		{name: "bridge dot", change: func(c *Config) { c.Bridge = ".." }, wantErr: `bridge: interface name ".." is reserved`},
		{name: "no subnet", change: func(c *Config) { c.Subnet = netip.Prefix{} }, wantErr: `subnet "invalid Prefix": want an IPv4 subnet such as 10.251.0.0/20`},
		{name: "ipv6 subnet", change: func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, wantErr: `subnet "fd00::/64": want an IPv4 subnet such as 10.251.0.0/20`},
		{name: "subnet too big", change: func(c *Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/8") }, wantErr: "subnet 10.0.0.0/8: prefix length 8 is out of range 16-30"},
		{name: "subnet too small", change: func(c *Config) { c.Subnet = netip.MustParsePrefix("198.18.0.0/31") }, wantErr: "subnet 198.18.0.0/31: prefix length 31 is out of range 16-30"},
		{name: "host bits", change: func(c *Config) { c.Subnet = netip.MustParsePrefix("198.18.0.129/26") }, wantErr: "subnet 198.18.0.129/26 has host bits set: did you mean 198.18.0.128/26?"},
		{name: "empty table", change: func(c *Config) { c.Table = "" }, wantErr: `table: nftables table name "": want 1 to 64 characters`},
		{name: "bad table", change: func(c *Config) { c.Table = "at oll" }, wantErr: `table: nftables table name "at oll": only ASCII letters, digits, "_" and "-" are allowed`},
		{name: "relative state dir", change: func(c *Config) { c.StateDir = "network" }, wantErr: `state dir "network": want an absolute path`},
		{name: "tiny mtu", change: func(c *Config) { c.MTU = 67 }, wantErr: "mtu 67 is out of range 68-65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v, want %s", err, tt.wantErr)
			}
		})
	}
}

func TestCheckContainerID(t *testing.T) {
	for id, wantErr := range map[string]string{
		"2f1c9a5e-3b4d-4c7e-9f10-0a1b2c3d4e5f": "",
		"task_1+a.b-c":                         "",
		strings.Repeat("a", 100):               "",
		"":                                     `container id "": want 1 to 100 characters`,
		strings.Repeat("a", 101):               `container id "` + strings.Repeat("a", 101) + `": want 1 to 100 characters`,
		"..":                                   `container id must not be "." or ".."`,
		"a/b":                                  `container id "a/b": only ASCII letters, digits and "_+-." are allowed`,
		"a b":                                  `container id "a b": only ASCII letters, digits and "_+-." are allowed`,
	} {
		err := checkContainerID(id)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || err.Error() != wantErr) {
			t.Errorf("checkContainerID(%q) = %v, want %q", id, err, wantErr)
		}
	}
}

func TestHostVeth(t *testing.T) {
	a := &Bridge{cfg: Config{Bridge: "atoll0"}}
	b := &Bridge{cfg: Config{Bridge: "atoll1"}}
	long := strings.Repeat("x", maxContainerIDLen)
	names := map[string]bool{}
	for _, name := range []string{a.hostVeth("c1"), a.hostVeth("c2"), a.hostVeth(long), b.hostVeth("c1")} {
		if len(name) != 14 || !strings.HasPrefix(name, "ve") || checkIfName(name) != nil {
			t.Errorf("host veth name %q: want ve and 12 hex digits", name)
		}
		names[name] = true
	}
	if len(names) != 4 {
		t.Errorf("host veth names collide: %v", names)
	}
	if restarted := (&Bridge{cfg: Config{Bridge: "atoll0"}}); restarted.hostVeth("c1") != a.hostVeth("c1") {
		t.Error("host veth name differs between two Bridges of one config")
	}
}

func TestEndpointNetworkInfo(t *testing.T) {
	ep := &Endpoint{
		IP: netip.MustParseAddr("198.18.0.130"),
		PortMappings: []PortMapping{
			{HostPort: 31000, ContainerPort: 80, Protocol: TCP},
			{HostPort: 31001, ContainerPort: 53, Protocol: UDP},
		},
	}
	want := api.NetworkInfo{
		IPAddresses: []api.IPAddress{{Protocol: "IPv4", IPAddress: "198.18.0.130"}},
		PortMappings: []api.PortMapping{
			{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 31001, ContainerPort: 53, Protocol: "udp"},
		},
	}
	if got := ep.NetworkInfo(); !reflect.DeepEqual(got, want) {
		t.Errorf("NetworkInfo() = %+v, want %+v", got, want)
	}
}
