package dns

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// requireDig returns the path of dig. Without it the interop tests skip, except under
// CI=true, where they must run (CI installs bind9-dnsutils).
func requireDig(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("dig is not installed (apt-get install -y bind9-dnsutils); the interop tests must run under CI")
	}
	t.Skip("dig is not installed (apt-get install -y bind9-dnsutils)")
	return ""
}

// dig runs dig against s and returns its answer section, one record per line with
// whitespace collapsed, sorted, and dig's whole output.
func dig(t *testing.T, s *Server, args ...string) ([]string, string) {
	t.Helper()
	bin := requireDig(t)
	args = append([]string{"@" + s.Addr().Addr().String(), "-p", strconv.Itoa(int(s.Addr().Port())),
		"+time=5", "+tries=1", "+noall", "+answer", "+comments"}, args...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	answer := []string{}
	inAnswer := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, ";"):
			inAnswer = inAnswer && strings.TrimSpace(line) != ""
		case inAnswer:
			answer = append(answer, strings.Join(strings.Fields(line), " "))
		}
	}
	slices.Sort(answer)
	return answer, string(out)
}

// TestDig: dig, a real resolver client, gets the answers for each record type.
func TestDig(t *testing.T) {
	requireDig(t)
	s := serveFixture(t)
	tests := []struct {
		name   string
		args   []string
		status string
		want   []string
	}{
		{"A", []string{"web-grp.marathon.mesos", "A"}, "NOERROR",
			[]string{"web-grp.marathon.mesos. 60 IN A 10.0.1.1"}},
		{"A uppercase", []string{"WEB-GRP.MARATHON.MESOS", "A"}, "NOERROR",
			[]string{"web-grp.marathon.mesos. 60 IN A 10.0.1.1"}},
		{"SRV", []string{"_api-grp._tcp.marathon.mesos", "SRV"}, "NOERROR",
			[]string{"_api-grp._tcp.marathon.mesos. 60 IN SRV 0 1 8080 api-grp-u6mcj-s0.marathon.mesos."}},
		{"PTR", []string{"-x", "172.17.0.5"}, "NOERROR",
			[]string{"5.0.17.172.in-addr.arpa. 60 IN PTR api-grp-u6mcj-s0.marathon.mesos."}},
		{"PTR IPv6", []string{"-x", "fd00::5"}, "NOERROR",
			[]string{"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 60 IN PTR executor-1-8adj5-s3.spark-cluster-1.mesos."}},
		{"SOA", []string{"mesos", "SOA"}, "NOERROR",
			[]string{"mesos. 60 IN SOA ns1.mesos. root.ns1.mesos. " + strconv.Itoa(int(serialOf(s))) + " 60 600 86400 60"}},
		{"leader", []string{"leader.mesos"}, "NOERROR", []string{"leader.mesos. 60 IN A 10.0.0.1"}},
		{"NXDOMAIN", []string{"nope.marathon.mesos"}, "NXDOMAIN", []string{}},
		{"TCP", []string{"+tcp", "db.marathon.mesos"}, "NOERROR", []string{"db.marathon.mesos. 60 IN A 10.0.1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, out := dig(t, s, tt.args...)
			if !strings.Contains(out, "status: "+tt.status) || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want status %s and %q; dig said:\n%s", got, tt.status, tt.want, out)
			}
		})
	}
}

// TestDigTCPFallback: dig gets a truncated UDP answer, retries over TCP by itself, and
// receives every record.
func TestDigTCPFallback(t *testing.T) {
	requireDig(t)
	const n = 150
	s := serveCluster(t, bigCluster(n), nil)
	got, out := dig(t, s, "+noedns", "big.marathon.mesos", "A")
	if !strings.Contains(out, "Truncated, retrying in TCP mode") || len(got) != n {
		t.Fatalf("%d records, want %d after dig's TCP retry; dig said:\n%s", len(got), n, out)
	}
	got, out = dig(t, s, "+bufsize=1232", "_big._tcp.marathon.mesos", "SRV")
	if !strings.Contains(out, "Truncated, retrying in TCP mode") || len(got) != n {
		t.Fatalf("SRV: %d records, want %d after dig's TCP retry; dig said:\n%s", len(got), n, out)
	}
}
