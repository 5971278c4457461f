package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/dns"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/pki"
)

func TestMain(m *testing.M) {
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// testNode is a node started with Run in the background.
type testNode struct {
	name  string
	ready <-chan Info
	done  <-chan error
	stop  func()
}

// startRun runs cfg's node until the test ends (or stop); it does not wait for it.
func startRun(t *testing.T, cfg Config) testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, func(i Info) { ready <- i }) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node %s: %v", cfg.Name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("node %s did not stop within 30s", cfg.Name)
		}
	}
	t.Cleanup(stop)
	return testNode{name: cfg.Name, ready: ready, done: done, stop: stop}
}

// info waits until the node says it is ready.
func (n testNode) info(t *testing.T) Info {
	t.Helper()
	select {
	case info := <-n.ready:
		return info
	case err := <-n.done:
		t.Fatalf("node %s stopped: %v", n.name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s not ready within 30s", n.name)
	}
	return Info{}
}

// runNode starts a node and waits until it is ready.
func runNode(t *testing.T, cfg Config) Info {
	t.Helper()
	return startRun(t, cfg).info(t)
}

func loopbackConfig(t *testing.T, name string) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1"
	cfg.DataDir = t.TempDir()
	cfg.APIPort, cfg.AgentPort, cfg.RaftPort, cfg.GossipPort, cfg.DNSPort = 0, 0, 0, 0, 0
	cfg.Dev = true
	cfg.KillTasksOnExit = true
	// In-process nodes on loopback: plain processes, and the host's networking untouched.
	cfg.Containerizer, cfg.BridgeSubnet, cfg.VIPProxy = ContainerizerProcess, "", false
	cfg.Resources = "cpus:2;mem:2048;disk:1000;ports:[31000-31010]"
	cfg.Logger = agent.TestLogger(t)
	return cfg
}

// TestMasterAndAgentMeetThroughGossip: a master and an agent on separate "hosts" (their
// own data dirs and ports) find each other through gossip alone — the agent knows only a
// gossip address — and the agent registers with the master it learnt from the tags.
func TestMasterAndAgentMeetThroughGossip(t *testing.T) {
	mcfg := loopbackConfig(t, "m1")
	mcfg.Master = true
	mcfg.BootstrapExpect = 1
	minfo := runNode(t, mcfg)
	if !strings.HasPrefix(minfo.APIURL, "http://127.0.0.1:") {
		t.Fatalf("master API %q", minfo.APIURL)
	}

	acfg := loopbackConfig(t, "a1")
	acfg.Agent = true
	acfg.Join = []string{minfo.GossipAddr}
	acfg.Attributes = "rack:r1;zone:a"
	ainfo := runNode(t, acfg)
	if ainfo.APIURL != minfo.APIURL || ainfo.AgentID == "" {
		t.Fatalf("agent node info %+v; want the master's API %s and an agent id", ainfo, minfo.APIURL)
	}

	client := api.NewClient(minfo.APIURL)
	ctx := context.Background()
	agents, err := client.GetAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents.Agents) != 1 || agents.Agents[0].AgentInfo.ID.Value != ainfo.AgentID || !agents.Agents[0].Active {
		t.Fatalf("agents %+v, want %s active", agents.Agents, ainfo.AgentID)
	}
	attrs := map[string]string{}
	for _, a := range agents.Agents[0].AgentInfo.Attributes {
		if a.Text != nil {
			attrs[a.Name] = a.Text.Value
		}
	}
	if attrs["rack"] != "r1" || attrs["zone"] != "a" {
		t.Fatalf("attributes %+v", agents.Agents[0].AgentInfo.Attributes)
	}

	// Both members, with their roles and the master's API in the tags.
	deadline := time.Now().Add(10 * time.Second)
	for {
		members, err := client.GetMembers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, m := range members.Members {
			got[m.Name] = fmt.Sprintf("%s %s %s %s", m.Status, m.Tags[TagRole], m.Tags[TagAPI], m.Tags[TagAgentID])
		}
		want := map[string]string{
			"m1": "alive master " + minfo.APIURL + " ",
			"a1": "alive agent  " + ainfo.AgentID,
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeServesDNS: a master node and an agent node each answer DNS for the cluster on
// their own port: leader.mesos names the master on both, the agent's DNS following the
// master it found through gossip; the Mesos-DNS HTTP API and the DNS metrics are on the
// master's port.
func TestNodeServesDNS(t *testing.T) {
	mcfg := loopbackConfig(t, "m1")
	mcfg.Master = true
	mcfg.BootstrapExpect = 1
	minfo := runNode(t, mcfg)
	acfg := loopbackConfig(t, "a1")
	acfg.Agent = true
	acfg.Join = []string{minfo.GossipAddr}
	ainfo := runNode(t, acfg)
	if minfo.DNSAddr == "" || ainfo.DNSAddr == "" || minfo.DNSAddr == ainfo.DNSAddr {
		t.Fatalf("DNS addresses %q and %q, want one per node", minfo.DNSAddr, ainfo.DNSAddr)
	}
	for _, server := range []string{minfo.DNSAddr, ainfo.DNSAddr} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := dns.Lookup(ctx, server, "leader.mesos.", mdns.TypeA)
			cancel()
			if err == nil && len(resp.Answer) == 1 && resp.Answer[0].(*mdns.A).A.String() == "127.0.0.1" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("DNS at %s: leader.mesos = %v, %v; want A 127.0.0.1", server, resp, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for path, want := range map[string]string{
		"/v1/hosts/leader.mesos": `"ip":"127.0.0.1"`,
		"/metrics":               "atoll_dns_stale 0",
	} {
		resp, err := http.Get(minfo.APIURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s %s, want 200 containing %s", path, resp.Status, body, want)
		}
	}
}

// TestMarathonPort: with --marathon-port the master API, Marathon's /v2 included, answers
// on the second port as on the first.
func TestMarathonPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := loopbackConfig(t, "m")
	cfg.Master, cfg.Agent, cfg.BootstrapExpect = true, false, 1
	cfg.MarathonPort = port
	info := runNode(t, cfg)
	for _, base := range []string{info.APIURL, fmt.Sprintf("http://127.0.0.1:%d", port)} {
		var body []byte
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(base + "/v2/apps")
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s/v2/apps: %v %s", base, err, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if string(body) != "{\"apps\":[]}\n" {
			t.Errorf("GET %s/v2/apps = %q", base, body)
		}
	}
}

// TestLoadBalancerRole: a node running master, agent and lb serves an app labelled for
// the external group on its virtual host, and its admin port answers.
func TestLoadBalancerRole(t *testing.T) {
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the backend is %s (busybox-static): %v", busybox, err)
		}
		t.Skipf("the backend is %s (busybox-static): %v", busybox, err)
	}
	cfg := loopbackConfig(t, "all")
	cfg.Master, cfg.Agent, cfg.LB, cfg.BootstrapExpect = true, true, true, 1
	cfg.LBHTTPPort, cfg.LBHTTPSPort, cfg.LBAppIDPort, cfg.LBAdminPort = 0, 0, -1, 0
	info := runNode(t, cfg)
	if info.LBHTTPAddr == "" || info.LBAdminAddr == "" {
		t.Fatalf("lb addresses %q, %q", info.LBHTTPAddr, info.LBAdminAddr)
	}
	app := `{"id": "/web", "cmd": "echo hello from web > index.html; exec ` + busybox + ` httpd -f -p $PORT0 -h .",
		"cpus": 0.1, "mem": 32, "portDefinitions": [{"port": 0}],
		"labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.test", "HAPROXY_0_MODE": "http"}}`
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
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; {
		req, _ := http.NewRequest("GET", "http://"+info.LBHTTPAddr+"/", nil)
		req.Host = "web.test"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == http.StatusOK && body == "hello from web\n" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET web.test through the lb: %v %q", err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + info.LBAdminAddr + "/_haproxy_health_check")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("lb health check: %s", resp.Status)
	}
}

// TestRaftPortTaken: a Raft port in use fails the master with an error that says so
// (EADDRINUSE, which the retry of an automatically picked port relies on).
func TestRaftPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := loopbackConfig(t, "taken")
	cfg.Master, cfg.Agent, cfg.BootstrapExpect = true, false, 1
	cfg.RaftPort = ln.Addr().(*net.TCPAddr).Port
	err = Run(context.Background(), cfg, nil)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run with the Raft port taken = %v, want EADDRINUSE", err)
	}
}

// TestSecureCluster: the first master of a secure cluster creates its CA, bootstraps
// Raft alone and hands out the join commands once; its API is TLS, with only what a
// machine fetches before it has joined over plain HTTP on the same port. A master whose
// token pins another CA is refused before it sends its secret; one with the master join
// token joins, and the leader adds it to Raft, over mutual TLS and encrypted gossip.
func TestSecureCluster(t *testing.T) {
	sm := startSecureMaster(t, nil, func(c *Config) { c.BootstrapExpect = 3 })
	m1, host, creds, tokens := sm.info, sm.host, sm.creds, sm.tokens
	userTLS, client, admin := sm.tls, sm.client, sm.admin

	// Plain HTTP serves the installer's routes alone; the API is TLS with the cluster CA.
	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{pki.CAPath, http.StatusOK, string(creds.CA.CertPEM())},
		{"/health", http.StatusOK, "ok\n"},
		{"/master/state", http.StatusBadRequest, "this master serves its API over TLS: use https://" + host + "/master/state\n"},
		{"/download/../master/state", http.StatusBadRequest, "this master serves its API over TLS: use https://" + host + "/download/../master/state\n"},
	} {
		resp, err := http.Get("http://" + host + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(body) != tt.body {
			t.Errorf("plain GET %s: %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
	}

	// A token of another cluster's CA: refused, nothing kept.
	other, err := pki.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bad := loopbackConfig(t, "m2")
	bad.Master, bad.DNSPort, bad.Join, bad.MasterURL = true, -1, []string{m1.GossipAddr}, m1.APIURL
	bad.JoinToken = pki.JoinToken{CAHash: other.Hash(), Secret: tokens[pki.RoleMaster].Secret}.String()
	want := "join the cluster with --join-token: the cluster CA's hash " + creds.CA.Hash() + ", as " + m1.APIURL + " presented it, does not match the join token's " +
		other.Hash() + ": a man in the middle, or a token of another cluster; nothing was sent to that server"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Run(ctx, bad, nil); err == nil || err.Error() != want {
		t.Fatalf("a master with a token of another CA: Run() = %v\nwant %s", err, want)
	}
	if _, err := os.Stat(filepath.Join(bad.DataDir, "pki")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused master kept credentials: %v", err)
	}

	// The master join token: the second master joins, and Raft has both.
	cfg2 := loopbackConfig(t, "m2")
	cfg2.Master, cfg2.DNSPort, cfg2.Join, cfg2.MasterURL = true, -1, []string{m1.GossipAddr}, m1.APIURL
	cfg2.JoinToken = tokens[pki.RoleMaster].String()
	m2 := runNode(t, cfg2)
	if !strings.HasPrefix(m2.APIURL, "https://127.0.0.1:") {
		t.Fatalf("second master's API %q", m2.APIURL)
	}
	creds2, err := pki.LoadCredentials(filepath.Join(cfg2.DataDir, "pki"))
	if err != nil || creds2.CA.Hash() != creds.CA.Hash() || !creds2.CA.CanSign() || !bytes.Equal(creds2.GossipKey, creds.GossipKey) {
		t.Fatalf("second master's credentials: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		peers, err := client.RaftPeers(context.Background())
		if err == nil && len(peers.Servers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raft peers after 30s: %+v, %v; want both masters", peers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The second master, a follower, forwards reads to the leader, over TLS, once its
	// replica has the admin token.
	deadline = time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, m2.APIURL+"/master/state", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := userTLS.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /master/state from the second master: %s %s", resp.Status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfigSecurityFields(t *testing.T) {
	token := "ATL1-" + strings.Repeat("ab", 32) + "-atl_secret"
	tests := []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"token", func(c *Config) { c.JoinToken, c.Join = token, []string{"10.0.0.1"} }, ""},
		{"not a join token", func(c *Config) { c.JoinToken, c.Join = "atl_x_y", []string{"10.0.0.1"} },
			"join-token: token is not an Atoll join token: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{"token without a master to join", func(c *Config) { c.JoinToken = token }, "join-token: a node joins through a master: give --join or --master-url"},
		{"master URL", func(c *Config) { c.JoinToken, c.MasterURL = token, "https://10.0.0.1:5050" }, ""},
		{"bad master URL", func(c *Config) { c.MasterURL = "10.0.0.1" }, `master-url: master URL "10.0.0.1": want https://host:port`},
		{"TLS names", func(c *Config) { c.TLSNames = []string{"10.0.0.9", "api.example.com"} }, ""},
		{"bad TLS name", func(c *Config) { c.TLSNames = []string{"a b"} }, `tls-san: "a b", want an IP address or a DNS name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loopbackConfig(t, "m1")
			cfg.Master = true
			tt.edit(&cfg)
			if err := cfg.Validate(); errString(err) != tt.err {
				t.Fatalf("Validate() = %q, want %q", errString(err), tt.err)
			}
		})
	}
}

// TestSecureNodeRefusals: a secure node that cannot hold credentials of the cluster its
// token names says why and starts nothing; one whose master does not answer keeps trying.
func TestSecureNodeRefusals(t *testing.T) {
	clusterA, err := pki.NewCluster("a", pki.Identity{Name: "a1", Roles: []pki.Role{pki.RoleAgent}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + closed.Addr().String()
	closed.Close()
	tokenB := pki.JoinToken{CAHash: strings.Repeat("cd", 32), Secret: "atl_secret"}.String()
	tests := []struct {
		name  string
		edit  func(*Config)
		creds *pki.Credentials
		err   func(cfg Config) string
	}{
		{"agent without a token", func(c *Config) { c.Secure = true }, nil, func(cfg Config) string {
			return "no node credentials in " + filepath.Join(cfg.DataDir, "pki") + ": a node joins a secure cluster with --join-token (ATL1-…, from the first master or atoll token create --role agent)"
		}},
		{"credentials of another cluster", func(c *Config) { c.JoinToken = tokenB }, clusterA, func(cfg Config) string {
			return filepath.Join(cfg.DataDir, "pki") + " holds the credentials of another cluster (CA " + clusterA.CA.Hash() + ") than --join-token pins (CA " + strings.Repeat("cd", 32) + "): remove it to join this one"
		}},
		{"credentials without the role", func(c *Config) { c.Secure, c.LB = true, true }, clusterA, func(cfg Config) string {
			return "the credentials in " + filepath.Join(cfg.DataDir, "pki") + " do not fit this node: the node certificate lacks the lb role; join again with --join-token"
		}},
		{"master unreachable", func(c *Config) { c.JoinToken, c.MasterURL = tokenB, deadURL }, nil, func(Config) string {
			return "join the cluster with --join-token: context deadline exceeded"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loopbackConfig(t, "a1")
			cfg.Agent, cfg.Join, cfg.DNSPort = true, []string{"127.0.0.1:1"}, -1
			tt.edit(&cfg)
			if tt.creds != nil {
				if err := tt.creds.Save(filepath.Join(cfg.DataDir, "pki")); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := Run(ctx, cfg, nil); errString(err) != tt.err(cfg) {
				t.Fatalf("Run() = %q\nwant %q", errString(err), tt.err(cfg))
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
