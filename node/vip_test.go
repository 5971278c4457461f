package node

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/dns"
	"github.com/atoll/atoll/lb/vip"
)

// requireRoot skips a test that needs root, or fails it under CI, where it must run.
func requireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs root to %s, and CI=true", why)
	}
	t.Skipf("needs root to %s", why)
}

// interfaceHas reports whether the interface name exists and holds addr.
func interfaceHas(name string, addr netip.Addr) (exists, holds bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return false, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return true, false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(addr.AsSlice()) {
			return true, true
		}
	}
	return true, false
}

// TestNamedVIP (root): on a node running master, agent and DNS, an app whose port has the
// label VIP_0 "/vipweb:8080" gets vipweb.marathon.l4lb.thisdcos.directory, which the
// node's DNS answers with the VIP's address; the node's VIP balancer puts the address on
// its interface, and HTTP requests to VIP:8080 reach the app's tasks, both of them in
// turn. When the node stops, the interface goes.
func TestNamedVIP(t *testing.T) {
	requireRoot(t, "put VIP addresses on an interface")
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the backend is %s (busybox-static): %v", busybox, err)
		}
		t.Skipf("the backend is %s (busybox-static): %v", busybox, err)
	}
	cfg := loopbackConfig(t, "vips")
	cfg.Master, cfg.Agent, cfg.BootstrapExpect = true, true, 1
	cfg.VIPProxy, cfg.VIPRange = true, dns.TestVIPRange
	cfg.VIPInterface = fmt.Sprintf("atvipn%d", os.Getpid()%100000)
	node := startRun(t, cfg)
	info := node.info(t)

	app := `{"id": "/vipweb", "instances": 2,
		"cmd": "echo $MESOS_TASK_ID > index.html; exec ` + busybox + ` httpd -f -p $PORT0 -h .",
		"cpus": 0.1, "mem": 32, "portDefinitions": [{"port": 0, "labels": {"VIP_0": "/vipweb:8080"}}]}`
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(info.APIURL+"/v2/apps", "application/json", strings.NewReader(app))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST /v2/apps: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	addrs, _ := vip.Allocate(netip.MustParsePrefix(dns.TestVIPRange), []string{"vipweb.marathon"}, nil)
	want := addrs["vipweb.marathon"]
	for deadline := time.Now().Add(60 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := dns.Lookup(ctx, info.DNSAddr, "vipweb.marathon.l4lb.thisdcos.directory.", mdns.TypeA)
		cancel()
		if err == nil && len(resp.Answer) == 1 && resp.Answer[0].(*mdns.A).A.String() == want.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DNS: vipweb.marathon.l4lb.thisdcos.directory = %v, %v; want A %s", resp, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Only once the address is the node's does a request go to it: before, it would
	// leave the machine.
	client := &http.Client{Timeout: 5 * time.Second}
	seen := map[string]bool{}
	for deadline := time.Now().Add(60 * time.Second); len(seen) < 2; {
		if _, holds := interfaceHas(cfg.VIPInterface, want); holds {
			resp, err := client.Get("http://" + netip.AddrPortFrom(want, 8080).String() + "/")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "vipweb.") {
					seen[strings.TrimSpace(string(body))] = true
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests to %s:8080 reached %v, want both tasks", want, slices.Sorted(maps.Keys(seen)))
		}
		time.Sleep(50 * time.Millisecond)
	}

	node.stop()
	if exists, _ := interfaceHas(cfg.VIPInterface, want); exists {
		t.Errorf("interface %s left behind after the node stopped", cfg.VIPInterface)
	}
}
