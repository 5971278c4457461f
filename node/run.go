package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/dns"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/install"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/isolate/fetch"
	"github.com/atoll/atoll/isolate/image"
	"github.com/atoll/atoll/isolate/network"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/node/pki"
	"github.com/atoll/atoll/pkgs/cosmos"
)

// Info tells the caller of Run where the started node can be reached.
type Info struct {
	// APIURL is the master API (http://host:port) when this node is a master, else the
	// first master known through gossip.
	APIURL string
	// AgentURL is this node's agent API (http://host:port, https:// on a secure node)
	// when it runs an agent.
	AgentURL string
	// AgentID is the agent's id once registered.
	AgentID string
	// GossipAddr is where other nodes --join this one.
	GossipAddr string
	// DNSAddr is where the node answers DNS (host:port), empty without a DNS server.
	DNSAddr string
	// DataDir is where the node keeps its state.
	DataDir string
	// LBHTTPAddr and LBAdminAddr are the load balancer's virtual-host and admin
	// addresses when it runs one.
	LBHTTPAddr, LBAdminAddr string
}

// Run starts the node's roles and blocks until ctx is done, then stops them cleanly (an
// agent kills its tasks first when KillTasksOnExit is set). ready is called once every
// role is serving.
func Run(ctx context.Context, cfg Config, ready func(Info)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger.With("node", cfg.Name)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	id, err := nodeID(cfg.DataDir)
	if err != nil {
		return err
	}
	adv, err := advertiseIP(cfg)
	if err != nil {
		return err
	}
	info := Info{DataDir: cfg.DataDir}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5)

	// A secure node holds its credentials before it listens or gossips: they decide
	// how it does both.
	creds, createdCluster, err := nodeCredentials(ctx, cfg, adv, log)
	if err != nil {
		return err
	}

	// Listeners first, so port 0 resolves before gossip advertises the addresses.
	var apiLn, marathonLn net.Listener
	tags := map[string]string{TagID: id, TagVersion: Version}
	var roles []string
	if cfg.Master {
		roles = append(roles, RoleMaster)
		apiLn, err = net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.APIPort)))
		if err != nil {
			return fmt.Errorf("master API listener: %w", err)
		}
		defer apiLn.Close()
		scheme := "http://"
		if creds != nil {
			scheme = "https://"
		}
		info.APIURL = scheme + net.JoinHostPort(adv, strconv.Itoa(apiLn.Addr().(*net.TCPAddr).Port))
		tags[TagAPI] = info.APIURL
		if cfg.MarathonPort != 0 {
			if marathonLn, err = net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.MarathonPort))); err != nil {
				return fmt.Errorf("second API listener (--marathon-port): %w", err)
			}
			defer marathonLn.Close()
		}
	}
	if cfg.Agent {
		roles = append(roles, RoleAgent)
	}
	if cfg.LB {
		roles = append(roles, RoleLB)
	}
	tags[TagRole] = strings.Join(roles, ",")

	raftPort := cfg.RaftPort
	if cfg.Master && raftPort == 0 {
		if raftPort, err = freePort(cfg.BindAddr); err != nil {
			return err
		}
	}
	if cfg.Master {
		tags[TagRaft] = net.JoinHostPort(adv, strconv.Itoa(raftPort))
	}

	mcfg := DefaultMembershipConfig()
	mcfg.Name = cfg.Name
	mcfg.BindAddr = cfg.BindAddr
	mcfg.AdvertiseAddr = adv
	mcfg.Port = cfg.GossipPort
	mcfg.Join = cfg.Join
	mcfg.Tags = tags
	mcfg.Dev = cfg.Dev
	mcfg.Logger = cfg.Logger.With("component", "gossip")
	mcfg.SnapshotPath = filepath.Join(cfg.DataDir, "serf.snapshot")
	if creds != nil {
		mcfg.GossipKey = creds.GossipKey
	}
	members, err := NewMembership(mcfg)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	defer members.Shutdown()
	info.GossipAddr = members.Addr()
	if creds != nil {
		wg.Add(1)
		go func() { defer wg.Done(); keepCredentials(ctx, cfg, creds, members, log) }()
	}
	go func() {
		// A name already taken in the cluster can never join: stop instead of idling.
		if err := members.WaitJoined(ctx); errors.Is(err, ErrNameConflict) {
			errc <- fmt.Errorf("gossip: %w (pick another --name)", err)
		}
	}()

	// One registry per node: the master serves it at /metrics.
	registry := prometheus.NewRegistry()
	var dnsSrv *dns.Server
	if cfg.DNSPort >= 0 {
		dnsSrv, err = startDNS(cfg, adv, info.APIURL, members, registry, creds)
		if err != nil {
			return err
		}
		defer dnsSrv.Close()
		info.DNSAddr = dnsSrv.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dnsSrv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("dns: %w", err)
			}
		}()
	}
	runVIPProxy(ctx, cfg, dnsSrv, registry, log, &wg)

	var m *master.Master
	if cfg.Master {
		ms := masterSecurity{creds: creds, createdCluster: createdCluster}
		m, err = startMaster(ctx, cfg, id, adv, raftPort, info.APIURL, members, registry, ms, log)
		// A Raft port picked free can be taken by another process before Raft binds it
		// (tests start many nodes at once): pick another and say so in gossip.
		for attempt := 0; err != nil && cfg.RaftPort == 0 && errors.Is(err, syscall.EADDRINUSE) && attempt < 3; attempt++ {
			if raftPort, err = freePort(cfg.BindAddr); err != nil {
				break
			}
			tags[TagRaft] = net.JoinHostPort(adv, strconv.Itoa(raftPort))
			if err = members.SetTags(tags); err != nil {
				break
			}
			m, err = startMaster(ctx, cfg, id, adv, raftPort, info.APIURL, members, registry, ms, log)
		}
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		if dnsSrv != nil {
			// Mesos-DNS's HTTP API, a route of the master's like its own: behind its tokens.
			dnsAPI := dnsSrv.Handler()
			for _, p := range dnsAPIPaths {
				m.Handle(p, dnsAPI)
			}
		}
		handler := m.Handler()
		if creds != nil {
			handler = requireNodeCerts(handler, m.CheckNodeCert)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		// A secure master's plain HTTP: what a machine without credentials fetches.
		plainSrv := &http.Server{Handler: plainHTTP(handler), ReadHeaderTimeout: 10 * time.Second}
		// Shutting either server down closes the port the two share (SplitTLS): the
		// other then sees its listener closed, which is no failure either.
		serve := func(ln net.Listener, what string) {
			if creds != nil {
				tlsConns, plainConns := pki.SplitTLS(ln)
				ln = tls.NewListener(tlsConns, creds.ServerTLS())
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := plainSrv.Serve(plainConns); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
						errc <- fmt.Errorf("%s (plain HTTP): %w", what, err)
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					errc <- fmt.Errorf("%s: %w", what, err)
				}
			}()
		}
		serve(apiLn, "master API")
		if marathonLn != nil {
			serve(marathonLn, "master API on the Marathon port")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil {
				errc <- fmt.Errorf("master: %w", err)
			}
			shutdownCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = srv.Shutdown(shutdownCtx)
			_ = plainSrv.Shutdown(shutdownCtx)
		}()
		// A secure cluster is bootstrapped by the master that created it, alone.
		if creds == nil && cfg.BootstrapExpect > 1 && !m.Raft().HasState() {
			go bootstrapWhenMastersMeet(ctx, cfg.BootstrapExpect, m, members, log)
		}
		rm := &raftMembers{m: m, members: members, log: log.With("component", "raft-members"),
			deadServerTimeout: cfg.DeadServerTimeout, interval: 2 * time.Second, failedSince: map[raft.ServerID]time.Time{}}
		if cfg.Dev {
			rm.interval = 250 * time.Millisecond
		}
		go rm.run(ctx)
	}

	if cfg.LB {
		lbr, err := startLB(cfg, info.APIURL, members, registry, creds)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		defer lbr.close()
		info.LBHTTPAddr, info.LBAdminAddr = lbr.httpAddr(), lbr.adminAddr()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lbr.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("lb: %w", err)
			}
		}()
	}

	var a *agent.Agent
	if cfg.Agent {
		a, err = startAgent(cfg, adv, members, info.APIURL, creds)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		info.AgentURL = "http://" + a.HTTPAddr()
		if creds != nil {
			info.AgentURL = "https://" + a.HTTPAddr()
		}
		tags = withTag(tags, TagAgentHTTP, a.HTTPAddr())
		if err := members.SetTags(tags); err != nil {
			log.Warn("could not publish the agent address in gossip", "err", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("agent: %w", err)
			}
		}()
	}

	if a != nil {
		// Masters map a gossip failure to the agent by this tag: publish it the moment the
		// agent has an id (at once after a restart, else on registering), not when the
		// whole node is ready.
		go func() {
			if err := waitReady(ctx, nil, a, false); err != nil {
				return
			}
			if err := members.SetTags(withTag(tags, TagAgentID, a.ID())); err != nil {
				log.Warn("could not publish the agent id in gossip", "err", err)
			}
		}()
	}
	go func() {
		if err := waitReady(ctx, m, a, true); err != nil {
			return
		}
		if a != nil {
			info.AgentID = a.ID()
		}
		if info.APIURL == "" {
			if apis := members.MasterAPIs(); len(apis) > 0 {
				info.APIURL = apis[0]
			}
		}
		if ready != nil {
			ready(info)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		log.Error("role failed; stopping the node", "err", runErr)
	}
	if a != nil {
		stopCtx, c := context.WithTimeout(context.Background(), 30*time.Second)
		if err := a.Shutdown(stopCtx, cfg.KillTasksOnExit); err != nil {
			log.Warn("agent shutdown", "err", err)
		}
		c()
	}
	cancel()
	wg.Wait()
	if err := members.Leave(); err != nil {
		log.Debug("gossip leave", "err", err)
	}
	return runErr
}

func withTag(tags map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(tags)+1)
	for key, val := range tags {
		out[key] = val
	}
	out[k] = v
	return out
}

// masterSecurity is what a secure node's master needs of its security.
type masterSecurity struct {
	// creds are the node's credentials; nil on a node without security.
	creds *pki.Credentials
	// createdCluster says this master just created the cluster's CA.
	createdCluster bool
}

func startMaster(ctx context.Context, cfg Config, id, adv string, raftPort int, apiURL string, members *Membership, registry *prometheus.Registry, sec masterSecurity, log *slog.Logger) (*master.Master, error) {
	mc := master.DefaultConfig()
	mc.ID = id
	mc.DataDir = filepath.Join(cfg.DataDir, "master")
	mc.RaftAddr = net.JoinHostPort(cfg.BindAddr, strconv.Itoa(raftPort))
	mc.RaftAdvertise = net.JoinHostPort(adv, strconv.Itoa(raftPort))
	mc.APIURL = apiURL
	mc.Hostname = cfg.Name
	mc.Version = Version
	mc.Dev = cfg.Dev
	mc.RaftFailureTimeout = cfg.RaftFailureTimeout
	// A master joining a secure cluster never bootstraps; the one that created it does.
	mc.BootstrapSelf = sec.createdCluster || cfg.JoinToken == "" && cfg.BootstrapExpect == 1
	mc.AgentTimeout = cfg.AgentTimeout
	mc.OfferTimeout = cfg.OfferTimeout
	mc.Logger = cfg.Logger
	mc.Registry = registry
	mc.Members = members.Members
	mc.Auth = master.AuthConfig{Enabled: cfg.Auth || sec.creds != nil, AdminToken: cfg.AdminToken}
	if sec.creds != nil {
		mc.RaftTLS = &state.RaftTLS{Server: sec.creds.ServerTLS(pki.RoleMaster), Client: sec.creds.ClientTLS(pki.RoleMaster)}
		mc.ForwardTLS = sec.creds.ClientTLS(pki.RoleMaster)
	}
	mc.LeaderAPI = func(serverID string) string {
		for _, mem := range members.Masters() {
			if mem.Tags[TagID] == serverID {
				return mem.Tags[TagAPI]
			}
		}
		return ""
	}
	if cfg.Dev {
		// One process on a laptop: frameworks and agents are local, so failures show fast.
		mc.HeartbeatInterval = 5 * time.Second
	}
	var joinErr error
	mc.Extensions = append(mc.Extensions, func(m *master.Master) {
		services.Attach(m, services.Config{Logger: cfg.Logger})
		jobs.Attach(m, jobs.Config{Logger: cfg.Logger})
		cosmos.Attach(m, cosmos.Config{Logger: cfg.Logger})
		install.Register(m, install.Config{Join: members.Addr(), Logger: cfg.Logger})
		if sec.creds != nil {
			joinErr = master.AttachJoin(m, master.JoinConfig{Credentials: sec.creds, CertValidity: cfg.CertValidity, Keyring: serfKeyring{members},
				OwnToken: sec.creds.APIToken, FirstJoinTokens: func(tokens map[pki.Role]string) { announceJoinCommands(cfg, apiURL, tokens, log) }})
		}
	})
	m, err := master.New(mc)
	if err != nil {
		return nil, err
	}
	if joinErr != nil {
		m.Raft().Close()
		return nil, joinErr
	}
	members.Subscribe(func(ev MemberEvent) {
		agentID := ev.Member.Tags[TagAgentID]
		if agentID == "" || !HasRole(ev.Member, RoleAgent) {
			return
		}
		switch ev.Type {
		case MemberFailed:
			m.AgentFailed(agentID)
		case MemberJoin, MemberUpdate:
			m.AgentAlive(agentID)
		}
	})
	log.Info("master starting", "id", id, "api", apiURL, "raft", mc.RaftAdvertise, "bootstrap_expect", cfg.BootstrapExpect)
	return m, nil
}

// TagAgentID carries the agent id of a node running an agent, so masters can map a gossip
// failure to the agent.
const TagAgentID = "agent_id"

// bootstrapWhenMastersMeet forms the first Raft configuration once bootstrap-expect
// masters know each other. Every master computes the same configuration from gossip, so
// bootstrapping on each of them is safe; one with Raft state on disk never does.
func bootstrapWhenMastersMeet(ctx context.Context, n int, m *master.Master, members *Membership, log *slog.Logger) {
	masters, err := members.WaitForMasters(ctx, n)
	if err != nil {
		return
	}
	// A master that joins a cluster that already formed must not bootstrap a second
	// configuration: the leader adds it (raftMembers) instead.
	for _, mem := range masters {
		if mem.Tags[TagID] == m.ID() || mem.Tags[TagAPI] == "" {
			continue
		}
		askCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		peers, err := api.NewClient(mem.Tags[TagAPI]).RaftPeers(askCtx)
		cancel()
		if err == nil && len(peers.Servers) > 0 {
			log.Info("joining an existing raft cluster instead of bootstrapping", "asked", mem.Name, "leader", peers.LeaderID)
			return
		}
	}
	var servers []raft.Server
	for _, mem := range masters {
		servers = append(servers, raft.Server{ID: raft.ServerID(mem.Tags[TagID]), Address: raft.ServerAddress(mem.Tags[TagRaft])})
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	if err := m.Raft().Bootstrap(servers); err != nil {
		log.Warn("raft bootstrap", "err", err)
		return
	}
	log.Info("raft bootstrapped", "masters", len(servers))
}

// startDNS binds the node's DNS server, which follows the leading master's event stream:
// this node's own master first, then whatever masters gossip knows.
func startDNS(cfg Config, adv, localAPI string, members *Membership, registry prometheus.Registerer, creds *pki.Credentials) (*dns.Server, error) {
	dc := dns.DefaultConfig()
	if cfg.Dev {
		dc = dns.DevConfig()
	}
	dc.Listen = net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.DNSPort))
	dc.NSAddr = adv
	dc.Domain = cfg.DNSDomain
	dc.TTL = uint32(cfg.DNSTTL)
	dc.Upstreams = cfg.DNSUpstreams
	dc.VIPRange = cfg.VIPRange
	dc.Version = Version
	dc.Registerer = registry
	dc.Logger = cfg.Logger
	if creds != nil {
		// A secure node's DNS follows the masters over TLS, with the node's own token.
		dc.HTTPClient, dc.Token = mastersClient(creds), creds.APIToken
	}
	dc.Masters = func() []string {
		apis := members.MasterAPIs()
		if localAPI == "" {
			return apis
		}
		out := []string{localAPI}
		for _, u := range apis {
			if u != localAPI {
				out = append(out, u)
			}
		}
		return out
	}
	s, err := dns.New(dc)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return s, nil
}

// dnsAPIPaths are Mesos-DNS's HTTP API, served on the master port beside the master's own.
var dnsAPIPaths = []string{"/v1/version", "/v1/config", "/v1/enumerate", "/v1/hosts/", "/v1/services/"}

// startAgent makes the node's agent; a secure node's (creds) calls the masters over
// mutual TLS with its API token and serves its own API over TLS.
func startAgent(cfg Config, adv string, members *Membership, localAPI string, creds *pki.Credentials) (*agent.Agent, error) {
	ac := agent.DefaultConfig()
	ac.WorkDir = cfg.WorkDir
	if ac.WorkDir == "" {
		ac.WorkDir = filepath.Join(cfg.DataDir, "agent")
	}
	ac.Hostname = adv
	ac.Resources = cfg.Resources
	ac.Attributes = cfg.Attributes
	if cfg.TaskUser != "" {
		ac.TaskUser = cfg.TaskUser
	}
	if len(cfg.ContainerNetworks) > 0 {
		ac.Attributes = strings.Trim(ac.Attributes+";"+api.AttributeNetworks+":"+strings.Join(cfg.ContainerNetworks, ","), ";")
	}
	ac.HTTPAddr = net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.AgentPort))
	ac.Logger = cfg.Logger
	ac.Version = Version
	if creds != nil {
		ac.MasterTLS = creds.ClientTLS(pki.RoleMaster)
		ac.MasterToken = creds.APIToken
		ac.TLS = creds.ServerTLS()
	}
	ac.Masters = func() []string {
		apis := members.MasterAPIs()
		if localAPI != "" {
			apis = append([]string{localAPI}, apis...)
		}
		return apis
	}
	c, err := newContainerizer(cfg, ac.WorkDir, adv)
	if err != nil {
		return nil, err
	}
	ac.Containerizer = c
	fc := fetch.DefaultConfig(filepath.Join(ac.WorkDir, "fetch-cache"))
	if ac.Fetcher, err = fetch.New(fc, cfg.Logger.With("component", "fetch")); err != nil {
		return nil, fmt.Errorf("fetcher: %w", err)
	}
	return agent.New(ac)
}

// newContainerizer makes the agent's containerizer: runc when asked, or by default when
// the node runs as root; else plain processes, saying so.
func newContainerizer(cfg Config, workDir, adv string) (isolate.Containerizer, error) {
	log := cfg.Logger.With("component", "isolate")
	kind := cfg.Containerizer
	if kind == "" {
		kind = ContainerizerProcess
		if os.Geteuid() == 0 {
			kind = ContainerizerRunc
		}
	}
	if kind == ContainerizerProcess {
		if cfg.Containerizer == "" {
			log.Warn("not running as root: tasks run as plain processes, without namespaces, cgroup limits or images (run as root for the runc containerizer)")
		}
		c, err := isolate.NewProcess(isolate.ProcessConfig{Logger: log, StateDir: filepath.Join(workDir, "containers"), TaskLogs: isolate.LogRotation{MaxSize: cfg.TaskLogMaxSize, Keep: cfg.TaskLogKeep}})
		if err != nil {
			return nil, fmt.Errorf("process containerizer: %w", err)
		}
		return c, nil
	}
	ic := image.DefaultConfig(filepath.Join(workDir, "images"))
	ic.InsecureRegistries = cfg.InsecureRegistries
	store, err := image.New(ic, cfg.Logger.With("component", "image"))
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	rc := isolate.DefaultRuncConfig()
	rc.Logger = log
	rc.StateDir = filepath.Join(workDir, "runc")
	rc.TaskLogs = isolate.LogRotation{MaxSize: cfg.TaskLogMaxSize, Keep: cfg.TaskLogKeep}
	rc.Images = isolate.ImageRootFS{Store: store}
	// Tasks on the host's filesystem see neither the node's state nor other sandboxes.
	rc.HiddenPaths = []string{cfg.DataDir}
	if !within(cfg.DataDir, workDir) {
		rc.HiddenPaths = append(rc.HiddenPaths, workDir)
	}
	// Tasks resolve through this node's DNS when it is where resolv.conf can name it.
	if cfg.DNSPort == 53 {
		rc.DNS = []string{dnsAddrForTasks(cfg.BindAddr, adv)}
	}
	if cfg.BridgeSubnet != "" {
		nc := network.DefaultConfig()
		nc.Subnet = netip.MustParsePrefix(cfg.BridgeSubnet)
		nc.StateDir = filepath.Join(workDir, "network")
		bridge, err := network.Open(context.Background(), nc, cfg.Logger.With("component", "network"))
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("bridge network %s on %s: %w (--bridge-subnet '' turns bridge networking off)", nc.Bridge, nc.Subnet, err)
		}
		rc.Network = bridge
		rc.BridgeNames = cfg.ContainerNetworks
	}
	c, err := isolate.NewRunc(rc)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("runc containerizer: %w (--containerizer process runs tasks without isolation)", err)
	}
	log.Info("tasks run in runc containers", "state_dir", rc.StateDir)
	return c, nil
}

// dnsAddrForTasks is the address tasks reach this node's DNS at: its bind address, or
// loopback when it listens on every address (bridge tasks get the bridge's gateway).
func dnsAddrForTasks(bind, adv string) string {
	if ip, err := netip.ParseAddr(bind); err == nil && !ip.IsUnspecified() {
		return bind
	}
	if adv != "" {
		return adv
	}
	return "127.0.0.1"
}

// within reports whether path is dir or below it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// waitReady waits until m (if any) knows a leader and a (if any) has an id — and, with
// registered, is subscribed to the leader, so that what the master says of it (its
// address, after a restart) is current.
func waitReady(ctx context.Context, m *master.Master, a *agent.Agent, registered bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok := true
		if m != nil && !m.IsLeader() && !m.HasLeader() {
			ok = false
		}
		if a != nil && (a.ID() == "" || registered && !a.Registered()) {
			ok = false
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// nodeID returns the node's stable id, made once and kept in the data dir.
func nodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	id := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

// advertiseIP picks the address other nodes use: AdvertiseAddr, else BindAddr, else the
// first non-loopback IPv4 address when bound to all interfaces.
func advertiseIP(cfg Config) (string, error) {
	if cfg.AdvertiseAddr != "" {
		return cfg.AdvertiseAddr, nil
	}
	if ip := net.ParseIP(cfg.BindAddr); ip != nil && !ip.IsUnspecified() {
		return cfg.BindAddr, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String(), nil
		}
	}
	return "127.0.0.1", nil
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
