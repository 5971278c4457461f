package cli

import (
	"net/netip"
	"testing"

	"github.com/atoll/atoll/dns"
)

// TestDNSLookup: `atoll dns lookup` prints the records a running DNS server answers, asks
// for PTR records of addresses, and exits 1 for a name that does not exist.
func TestDNSLookup(t *testing.T) {
	s := dns.TestServer(t)
	s.SetVIPs([]dns.VIP{{Name: "/web", IP: netip.MustParseAddr("11.0.0.9")}})
	server := s.Addr().String()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"A", []string{"dns", "lookup", "--server", server, "web.marathon.l4lb.thisdcos.directory"}, 0,
			"NAME                                   TTL  TYPE  DATA\nweb.marathon.l4lb.thisdcos.directory.  60   A     11.0.0.9\n", ""},
		{"address", []string{"dns", "lookup", "--server", server, "11.0.0.9"}, 0,
			"NAME                    TTL  TYPE  DATA\n9.0.0.11.in-addr.arpa.  60   PTR   web.marathon.l4lb.thisdcos.directory.\n", ""},
		{"json", []string{"-o", "json", "dns", "lookup", "--server", server, "-t", "ns", "mesos"}, 0,
			"[\n  {\n    \"name\": \"mesos.\",\n    \"type\": \"NS\",\n    \"ttl\": 60,\n    \"data\": \"ns1.mesos.\"\n  }\n]\n", ""},
		{"NXDOMAIN", []string{"dns", "lookup", "--server", server, "nope.marathon.mesos"}, 1,
			"no records\n", "atoll: nope.marathon.mesos. A: NXDOMAIN\n"},
		{"bad type", []string{"dns", "lookup", "--server", server, "-t", "BOGUS", "x.mesos"}, 2,
			"", "atoll: --type \"BOGUS\": not a DNS record type\nRun 'atoll dns lookup --help' for usage.\n"},
		{"no name", []string{"dns", "lookup"}, 2,
			"", "atoll: dns lookup takes one name, got 0 arguments\nRun 'atoll dns lookup --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestApp(t, nil)
			if code := a.runCLI(t, tt.args...); code != tt.code || a.stdout.String() != tt.stdout || a.stderr.String() != tt.stderr {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q", code, a.stdout, a.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
