// Package node runs one Atoll node process: it translates the user-facing Config into each
// role's own configuration, joins the gossip membership (serf) and wires the master, agent
// and (later) load-balancer roles together.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/atoll/atoll/lb/vip"
	"github.com/atoll/atoll/lb/vipproxy"
	"github.com/atoll/atoll/node/pki"
)

// Version is the Atoll version, set at build time with -ldflags "-X …/node.Version=…".
var Version = "0.1.0-dev"

// Config is the one user-facing configuration of a node process.
type Config struct {
	// Name is this node's gossip name; unique in the cluster. Defaults to the hostname.
	Name string
	// Master and Agent select the roles this process runs.
	Master bool
	Agent  bool
	// BindAddr is the IP every listener binds to unless its own address says otherwise.
	BindAddr string
	// AdvertiseAddr is the IP other nodes reach this one at; defaults to BindAddr (or the
	// first non-loopback address when BindAddr is 0.0.0.0).
	AdvertiseAddr string
	// Join lists gossip addresses (host or host:port) of any existing nodes.
	Join []string
	// DataDir holds the master's Raft state (DataDir/master), the agent's work dir
	// (DataDir/agent unless WorkDir is set) and the node's own files.
	DataDir string
	// WorkDir is the agent's work dir (checkpoint, sandboxes); defaults to DataDir/agent.
	WorkDir string
	// BootstrapExpect is how many masters form the first Raft configuration.
	BootstrapExpect int
	// Auth makes the master API require tokens (master.AuthConfig). Off by default while
	// agents, load balancers, DNS servers and standalone frameworks send none; on with
	// Secure or JoinToken.
	Auth bool
	// AdminToken receives the admin token the leading master creates when the cluster
	// has no working one (Auth only): the only copy. nil: the master logs it.
	AdminToken func(token string)
	// Secure runs the node with node security, on the credentials in DataDir/pki: the
	// master API over TLS (and over plain HTTP only what a machine fetches before it has
	// joined: install.sh, the binary, the CA, /health), Raft over mutual TLS, encrypted
	// gossip, and API tokens required (Auth). A master that has no credentials and no
	// JoinToken starts a secure cluster: it creates the CA, the gossip key and its own
	// certificate, bootstraps Raft alone whatever BootstrapExpect says (the other
	// masters join it with a token, and the leader adds each to Raft), and makes one
	// join token per node role (JoinCommands). A node with JoinToken, or with
	// credentials in DataDir/pki (it joined before), is secure without it. The agent
	// and lb roles of a secure node call the masters over mutual TLS with the API token
	// they got by joining, and the agent serves its own API over TLS; the masters take
	// agent calls only from clients with an agent's certificate.
	Secure bool
	// JoinToken ("ATL1-<CA hash>-<secret>") joins this node to a secure cluster through
	// MasterURL: the node checks the master's CA against the hash, sends the secret (an
	// API token of role master, agent or lb) with a certificate request, and keeps the
	// certificate, the CA and the gossip key it receives in DataDir/pki, so that a
	// restart joins no more.
	JoinToken string
	// MasterURL is the master a node with JoinToken joins through (https://host:port);
	// empty: the host of the first Join address, at APIPort.
	MasterURL string
	// CertValidity is how long the node certificates a secure master signs are valid (the
	// certificates of joining nodes, renewals, and its own); 0 is pki.DefaultCertValidity.
	// Nodes renew theirs once two thirds of it have passed.
	CertValidity time.Duration
	// TLSNames are IP addresses and DNS names this node's certificate holds besides its
	// advertise and bind addresses, its name, the hostname and localhost: the names
	// users reach it at (a load balancer's, a DNS alias).
	TLSNames []string
	// JoinCommands receives the commands that install the other nodes of a new secure
	// cluster, one per role ("curl … | sudo sh -s -- agent --token ATL1-…"), when this
	// master's cluster makes its first join tokens: the only copies. nil: the node logs
	// them.
	JoinCommands func(commands map[pki.Role]string)
	// APIPort is the master HTTP API port; AgentPort the agent's HTTP port; RaftPort the
	// Raft transport; GossipPort serf's.
	APIPort   int
	AgentPort int
	// MarathonPort, when set, serves the master API on a second port too, for tools
	// that expect Marathon on 8080.
	MarathonPort int
	// LB runs the load balancer role: apps of LBGroup (HAPROXY_GROUP) served on their
	// service ports, virtual hosts on LBHTTPPort, routing by app id on LBAppIDPort,
	// admin and stats on LBAdminPort (0 picks a free port; -1 serves none).
	LB          bool
	LBGroup     string
	LBHTTPPort  int
	LBAppIDPort int
	LBAdminPort int
	// LBHTTPSPort serves the virtual hosts over TLS (HAPROXY_{n}_SSL_CERT, else
	// LBDefaultCert, a PEM file with certificate and key, else a self-signed one).
	LBHTTPSPort   int
	LBDefaultCert string
	// VIPs, when set, are held by VRRP (RFC 5798, version 3) among the lb nodes of
	// VRID on Interface: the one with the highest Priority adds them and announces them;
	// the others take over within the master down interval. AdvertInterval is the
	// advertisement interval (centiseconds; under a second for sub-second failover).
	VIPs           []string
	VRID           int
	VRRPPriority   int
	VRRPInterface  string
	AdvertInterval time.Duration
	RaftPort       int
	GossipPort     int
	// Resources and Attributes are the agent's flags ('cpus:4;mem:8192;ports:[31000-32000]',
	// 'rack:r1;zone:a'); anything not given is detected.
	Resources  string
	Attributes string
	// AgentTimeout is how long the master waits for a silent agent before its tasks become
	// UNREACHABLE.
	AgentTimeout time.Duration
	// OfferTimeout rescinds offers held longer than this; 0 never.
	OfferTimeout time.Duration
	// DeadServerTimeout is how long a master may be gone (failed or left gossip) before the
	// leader removes it from Raft.
	DeadServerTimeout time.Duration
	// RaftFailureTimeout is how long masters go without hearing from the leader before
	// electing another (a dead leader is replaced within about twice this).
	RaftFailureTimeout time.Duration
	// Containerizer runs the agent's tasks: "runc" (namespaces and cgroups, images; needs
	// root), "process" (plain processes, no isolation) or "" for runc when root, else
	// process.
	Containerizer string
	// BridgeSubnet is the agent's subnet for tasks on the bridge network (Docker BRIDGE,
	// Marathon container/bridge), on the atoll0 bridge; empty turns bridge networking off
	// (such tasks fail). Only the runc containerizer has it.
	BridgeSubnet string
	// ContainerNetworks are other names of the bridge network: a task asking for a named
	// container network (Marathon's networks of mode container, as DC/OS's "dcos") joins
	// the bridge when its name is here. The agent advertises them (agent attribute
	// atoll_networks), so that such tasks go to agents that have them; elsewhere they
	// wait, and the queue says why.
	ContainerNetworks []string
	// InsecureRegistries are the image registries ("host" or "host:port", as image
	// references name them) the agent pulls from over plain HTTP; loopback registries
	// always may be, any other only over TLS. Only the runc containerizer pulls images.
	InsecureRegistries []string
	// TaskLogMaxSize is the size in bytes at which a task's stdout and stderr rotate, and
	// TaskLogKeep how many rotated files each keeps; 0 takes isolate's defaults (10 MiB, 5).
	TaskLogMaxSize int64
	TaskLogKeep    int
	// TaskUser is the user the agent's tasks on the host's filesystem run as when neither
	// their command nor their framework names one; empty takes the agent's default
	// (nobody when the node runs as root, else the node's own user).
	TaskUser string
	// DNSPort is where the node answers DNS for the cluster domain (UDP and TCP, on
	// BindAddr); 0 picks a free port, -1 runs no DNS server.
	DNSPort int
	// DNSDomain is the cluster domain ("mesos": web.marathon.mesos), DNSTTL the records'
	// time to live in seconds.
	DNSDomain string
	DNSTTL    int
	// DNSUpstreams are the resolvers other names are forwarded to (host:port or IP);
	// empty takes the nameservers of /etc/resolv.conf.
	DNSUpstreams []string
	// VIPRange is the IPv4 prefix named VIPs (VIP_<n> port labels) get their addresses
	// from. Every node computes them on its own, so all must have the same.
	VIPRange string
	// VIPProxy balances the VIPs on a node running an agent or a load balancer: their
	// addresses go on the VIPInterface dummy interface (which needs root) and their TCP
	// ports are proxied to the tasks. It follows the node's DNS server.
	VIPProxy     bool
	VIPInterface string
	// Dev selects tight timings for a one-process cluster on a laptop (`atoll up`).
	Dev bool
	// KillTasksOnExit kills every task when the process stops (`atoll up` on Ctrl-C).
	KillTasksOnExit bool
	// Logger receives the node's structured logs.
	Logger *slog.Logger
}

// DefaultConfig is the production preset.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:     host,
		BindAddr: "0.0.0.0",
		DataDir:  "/var/lib/atoll",
		// One master is a valid cluster; HA asks for 3 explicitly.
		BootstrapExpect: 1,
		APIPort:         5050,
		AgentPort:       5051,
		RaftPort:        5052,
		GossipPort:      7946,
		// Mesos needed 75 s; gossip tells us much sooner that a node is gone, and 10 s rides
		// out a GC pause or a brief network blip.
		AgentTimeout: 10 * time.Second,
		// Long enough to restart or upgrade a master by hand; a dead one then stops
		// counting toward the quorum.
		DeadServerTimeout: 5 * time.Minute,
		// A LAN round trip is well under a millisecond and the leader heartbeats every
		// 30 ms: a dead leader is replaced within about a second.
		RaftFailureTimeout: 300 * time.Millisecond,
		// Port 53 needs root (CAP_NET_BIND_SERVICE); a node run by a user answers on 8053.
		BridgeSubnet: "10.251.0.0/20",
		DNSPort:      defaultDNSPort(),
		DNSDomain:    "mesos",
		DNSTTL:       60,
		VIPRange:     vip.DefaultRange,
		VIPProxy:     true,
		VIPInterface: vipproxy.DefaultInterface,
		// marathon-lb's ports.
		LBGroup:     "external",
		LBHTTPPort:  80,
		LBAppIDPort: 9091,
		LBAdminPort: 9090,
		LBHTTPSPort: 443,
		VRID:        51,
		// keepalived's default priority; a tenth of a second between advertisements
		// makes failover well under a second.
		VRRPPriority:   100,
		AdvertInterval: 100 * time.Millisecond,
		Logger:         slog.Default(),
	}
}

// DevConfig is the `atoll up` preset: every role in one process on 127.0.0.1, state under
// the user's state directory, tasks killed on exit.
func DevConfig() Config {
	c := DefaultConfig()
	c.Master, c.Agent = true, true
	c.BindAddr = "127.0.0.1"
	c.DataDir = defaultStateDir()
	c.Dev = true
	c.KillTasksOnExit = true
	// Secure from the start: its own CA and gossip key, the API over TLS with tokens, the
	// admin token in the data dir (atoll up logs the CLI in with it).
	c.Secure = true
	// Nothing joins a one-process cluster, so gossip and the agent take any free port and
	// two clusters on one laptop do not collide; Raft keeps its port because it is stored
	// in the Raft configuration.
	c.GossipPort, c.AgentPort = 0, 0
	c.DNSPort = devDNSPort
	// A laptop's one-process cluster leaves the host's networking alone.
	c.BridgeSubnet = ""
	c.VIPProxy = false
	// And balances its apps, on :80 when it may bind it, else on 8081.
	c.LB = true
	c.LBHTTPPort = devLBHTTPPort()
	if c.LBHTTPPort != 80 {
		c.LBHTTPSPort = 8443
	}
	return c
}

// The containerizers an agent can run tasks with.
const (
	ContainerizerRunc    = "runc"
	ContainerizerProcess = "process"
)

// devDNSPort is the DNS port of `atoll up`, and of nodes not run as root.
const devDNSPort = 8053

// devLBHTTPPort is where `atoll up` serves virtual hosts: :80 as root, else 8081.
func devLBHTTPPort() int {
	if os.Geteuid() == 0 {
		return 80
	}
	return 8081
}

func defaultDNSPort() int {
	if os.Geteuid() == 0 {
		return 53
	}
	return devDNSPort
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "atoll")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "atoll")
	}
	return filepath.Join(os.TempDir(), "atoll")
}

// Validate reports the first thing wrong with c, naming the field.
func (c Config) Validate() error {
	if !c.Master && !c.Agent && !c.LB {
		return errors.New("no role: run at least a master, an agent or a load balancer")
	}
	if len(c.VIPs) > 0 && (c.VRID < 1 || c.VRID > 255 || c.VRRPPriority < 1 || c.VRRPPriority > 255 || c.VRRPInterface == "") {
		return fmt.Errorf("vrrp: --vrid %d and --priority %d must be 1-255 and --interface set (%q) to hold --vip", c.VRID, c.VRRPPriority, c.VRRPInterface)
	}
	if c.TaskLogMaxSize < 0 || c.TaskLogKeep < 0 {
		return fmt.Errorf("task logs: --log-max-size %d and --log-keep %d must not be negative", c.TaskLogMaxSize, c.TaskLogKeep)
	}
	if c.Name == "" {
		return errors.New("name: empty (set --name or the hostname)")
	}
	if c.DataDir == "" {
		return errors.New("data-dir: empty")
	}
	if c.Master && c.BootstrapExpect < 1 {
		return fmt.Errorf("bootstrap-expect: %d, want at least 1", c.BootstrapExpect)
	}
	if !c.Master && len(c.Join) == 0 {
		return errors.New("join: an agent needs --join with the address of any node")
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	switch c.Containerizer {
	case "", ContainerizerRunc, ContainerizerProcess:
	default:
		return fmt.Errorf("containerizer: %q, want %s or %s", c.Containerizer, ContainerizerRunc, ContainerizerProcess)
	}
	if c.BridgeSubnet != "" {
		if p, err := netip.ParsePrefix(c.BridgeSubnet); err != nil || !p.Addr().Is4() || p.Bits() > 29 {
			return fmt.Errorf("bridge-subnet: %q, want an IPv4 prefix of /29 or larger, like 10.251.0.0/20", c.BridgeSubnet)
		}
	}
	for _, n := range c.ContainerNetworks {
		if !containerNetworkName.MatchString(n) {
			return fmt.Errorf("container-network: %q, want a network name of letters, digits and ._- (like dcos)", n)
		}
		if c.BridgeSubnet == "" || c.Containerizer == ContainerizerProcess {
			return fmt.Errorf("container-network %s: named networks are names of the bridge network, which needs the runc containerizer and --bridge-subnet", n)
		}
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.ContainsAny(r, "/ ") {
			return fmt.Errorf("insecure-registry: %q, want host or host:port (no scheme or path)", r)
		}
	}
	if c.DNSPort < -1 || c.DNSPort > 65535 {
		return fmt.Errorf("dns-port: %d is not a port (-1: no DNS server)", c.DNSPort)
	}
	if c.DNSPort >= 0 && c.DNSTTL < 0 {
		return fmt.Errorf("dns-ttl: %d, want ≥ 0", c.DNSTTL)
	}
	if _, err := vip.ParseRange(c.VIPRange); err != nil {
		return fmt.Errorf("vip-range: %w", err)
	}
	if c.VIPProxy && c.VIPInterface == "" {
		return errors.New("vip proxy: no interface name for the VIP addresses")
	}
	for name, p := range map[string]int{"api-port": c.APIPort, "agent-port": c.AgentPort, "raft-port": c.RaftPort, "gossip-port": c.GossipPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%s: %d is not a port", name, p)
		}
	}
	if c.AgentTimeout <= 0 {
		return fmt.Errorf("agent-timeout: %v, want > 0", c.AgentTimeout)
	}
	if c.Master && c.DeadServerTimeout <= 0 {
		return fmt.Errorf("dead-server-timeout: %v, want > 0", c.DeadServerTimeout)
	}
	if c.OfferTimeout < 0 {
		return fmt.Errorf("offer-timeout: %v, want ≥ 0 (0: never)", c.OfferTimeout)
	}
	if c.Master && !c.Dev && c.RaftFailureTimeout < 100*time.Millisecond {
		return fmt.Errorf("raft-failure-timeout: %v, want at least 100ms (a busy leader would be deposed)", c.RaftFailureTimeout)
	}
	return nil
}

// validateSecurity checks the fields of a secure node.
// containerNetworkName is what a ContainerNetworks name looks like.
var containerNetworkName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (c Config) validateSecurity() error {
	if c.JoinToken != "" {
		if _, err := pki.ParseJoinToken(c.JoinToken); err != nil {
			return fmt.Errorf("join-token: %w", err)
		}
		if c.MasterURL == "" && len(c.Join) == 0 {
			return errors.New("join-token: a node joins through a master: give --join or --master-url")
		}
	}
	if c.CertValidity < 0 {
		return fmt.Errorf("cert-validity: %v, want ≥ 0 (0: a year)", c.CertValidity)
	}
	if c.MasterURL != "" {
		if _, err := pki.MasterBaseURL(c.MasterURL); err != nil {
			return fmt.Errorf("master-url: %w", err)
		}
	}
	for _, name := range c.TLSNames {
		if net.ParseIP(name) == nil && !isNameText(name) || name == "" {
			return fmt.Errorf("tls-san: %q, want an IP address or a DNS name", name)
		}
	}
	return nil
}

// secure reports whether the node runs with node security.
func (c Config) secure() bool { return c.Secure || c.JoinToken != "" }
