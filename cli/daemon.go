package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atoll/atoll/node"
	"github.com/atoll/atoll/node/pki"
)

// daemonRole selects a daemon command: its preset and its flags.
type daemonRole string

const (
	roleUp     daemonRole = "up"
	roleMaster daemonRole = "master"
	roleAgent  daemonRole = "agent"
	roleLB     daemonRole = "lb"
)

// preset is the configuration a daemon starts from before its flags.
func (r daemonRole) preset() node.Config {
	switch r {
	case roleUp:
		return node.DevConfig()
	case roleMaster:
		c := node.DefaultConfig()
		// Secure by default: the first master makes the cluster's CA; nodes join with
		// tokens. --secure=false runs a plain cluster.
		c.Master, c.Secure = true, true
		return c
	case roleLB:
		c := node.DefaultConfig()
		c.LB = true
		return c
	default:
		c := node.DefaultConfig()
		c.Agent = true
		return c
	}
}

// logOptions are the daemons' logging flags, checked.
type logOptions struct {
	level slog.Level
	json  bool
}

// logFlags holds the logging flags as given.
type logFlags struct {
	level, format string
}

// daemonFlags registers role's flags on fs, bound to cfg and logs.
func daemonFlags(fs *pflag.FlagSet, role daemonRole, cfg *node.Config, logs *logFlags) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "node name, unique in the cluster")
	fs.StringVar(&cfg.BindAddr, "bind", cfg.BindAddr, "IP address every listener binds to")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the node's state")
	if role != roleUp {
		fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "IP address other nodes reach this one at (default: the bind address)")
		fs.StringSliceVar(&cfg.Join, "join", cfg.Join, "gossip address (host or host:port) of a node to join; repeatable, comma-separated")
		fs.IntVar(&cfg.GossipPort, "gossip-port", cfg.GossipPort, "serf gossip port")
	}
	// Which roles the process runs, for the flags that belong to one.
	master, agent := role == roleUp || role == roleMaster, role == roleUp || role == roleAgent
	if master {
		fs.IntVar(&cfg.APIPort, "api-port", cfg.APIPort, "master HTTP API port")
		fs.IntVar(&cfg.MarathonPort, "marathon-port", cfg.MarathonPort, "also serve the master API (with Marathon's /v2) on this port, e.g. 8080 (0: off)")
	}
	if master {
		fs.BoolVar(&cfg.Auth, "auth", cfg.Auth, "require an API token (Authorization: Bearer) on every master API request but /health, /ping and the installer; "+
			"a cluster without an admin token gets one, shown once (atoll up: in <data-dir>/admin.token). On with --secure, whose agents and load balancers send tokens of their own; "+
			"off by default otherwise, since DNS servers and standalone frameworks send none yet")
		fs.IntVar(&cfg.RaftPort, "raft-port", cfg.RaftPort, "Raft transport port")
		fs.DurationVar(&cfg.AgentTimeout, "agent-timeout", cfg.AgentTimeout, "how long an agent may be away before its tasks become UNREACHABLE (LOST for frameworks that are not partition-aware)")
		fs.DurationVar(&cfg.OfferTimeout, "offer-timeout", cfg.OfferTimeout, "rescind offers a framework holds longer than this (0: never)")
	}
	if role == roleMaster {
		fs.DurationVar(&cfg.DeadServerTimeout, "dead-server-timeout", cfg.DeadServerTimeout, "how long a master may be gone before the leader removes it from Raft")
		fs.DurationVar(&cfg.RaftFailureTimeout, "raft-failure-timeout", cfg.RaftFailureTimeout, "how long masters go without hearing from the leader before electing another; raise it on links with long pauses")
		fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "number of masters that form the first Raft configuration")
	}
	if agent {
		fs.StringVar(&cfg.Resources, "resources", cfg.Resources, "agent resources, e.g. 'cpus:4;mem:8192;ports:[31000-32000]' (default: detected)")
		fs.StringVar(&cfg.Attributes, "attributes", cfg.Attributes, "agent attributes, e.g. 'rack:r1;zone:a'")
	}
	if role == roleAgent {
		fs.StringVar(&cfg.WorkDir, "work-dir", cfg.WorkDir, "agent work directory: checkpoint and sandboxes (default: <data-dir>/agent)")
		fs.IntVar(&cfg.AgentPort, "agent-port", cfg.AgentPort, "agent HTTP port (sandbox files)")
	}
	if agent {
		fs.StringVar(&cfg.Containerizer, "containerizer", cfg.Containerizer, "how tasks run: runc (isolated; needs root) or process (plain processes); default runc when root")
		fs.StringSliceVar(&cfg.ContainerNetworks, "container-network", cfg.ContainerNetworks, "another name of the bridge network, for apps that join a named container network (like DC/OS's dcos); advertised to the schedulers; repeatable")
		fs.StringVar(&cfg.BridgeSubnet, "bridge-subnet", cfg.BridgeSubnet, "subnet of the atoll0 bridge for tasks on the bridge network (runc only; '' turns it off)")
		fs.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", cfg.InsecureRegistries, "image registry (host:port, as image references name it) to pull from over plain HTTP; repeatable (runc only; loopback registries always may be)")
		fs.Int64Var(&cfg.TaskLogMaxSize, "log-max-size", cfg.TaskLogMaxSize, "bytes at which a task's stdout and stderr rotate (0: 10 MiB)")
		fs.IntVar(&cfg.TaskLogKeep, "log-keep", cfg.TaskLogKeep, "rotated files kept of each task's stdout and stderr (0: 5)")
		fs.StringVar(&cfg.TaskUser, "task-user", cfg.TaskUser, "user that tasks on the host's filesystem run as when neither their command nor their framework names one; it must exist (default: nobody when root, else the agent's own user)")
	}
	if role == roleUp || role == roleLB {
		fs.StringVar(&cfg.LBGroup, "group", cfg.LBGroup, "load balancer group: serve apps whose HAPROXY_GROUP is this")
		fs.IntVar(&cfg.LBHTTPPort, "lb-http-port", cfg.LBHTTPPort, "load balancer port for virtual hosts (HAPROXY_{n}_VHOST); -1: none")
		fs.IntVar(&cfg.LBHTTPSPort, "lb-https-port", cfg.LBHTTPSPort, "load balancer port for virtual hosts over TLS (HAPROXY_{n}_SSL_CERT); -1: none")
		fs.StringVar(&cfg.LBDefaultCert, "lb-default-cert", cfg.LBDefaultCert, "PEM file with the certificate and key for TLS virtual hosts without their own (default: a self-signed one)")
		fs.IntVar(&cfg.LBAppIDPort, "lb-app-id-port", cfg.LBAppIDPort, "load balancer port routing by X-Marathon-App-Id; -1: none")
		fs.IntVar(&cfg.LBAdminPort, "lb-admin-port", cfg.LBAdminPort, "load balancer admin and stats port (/haproxy?stats, /metrics); -1: none")
	}
	if role == roleUp {
		fs.BoolVar(&cfg.LB, "lb", cfg.LB, "run the load balancer role too")
		fs.BoolVar(&cfg.Secure, "secure", cfg.Secure, "run a secure cluster: a CA and gossip key of its own (in <data-dir>/pki), the API over TLS with tokens required; "+
			"the admin token goes to <data-dir>/admin.token and the CLI logs in with it. --secure=false: plain HTTP, no tokens (unless --auth)")
	}
	if role == roleLB {
		fs.StringSliceVar(&cfg.VIPs, "vip", cfg.VIPs, "virtual IP with prefix length (198.18.1.10/24) held by VRRP among the lb nodes; repeatable")
		fs.IntVar(&cfg.VRID, "vrid", cfg.VRID, "VRRP virtual router id (1-255), the same on every lb node of a VIP")
		fs.IntVar(&cfg.VRRPPriority, "priority", cfg.VRRPPriority, "VRRP priority (1-254; 255 owns the address): the highest holds the VIP")
		fs.StringVar(&cfg.VRRPInterface, "interface", cfg.VRRPInterface, "network interface the VIP is added to and VRRP runs on")
		fs.DurationVar(&cfg.AdvertInterval, "advert-interval", cfg.AdvertInterval, "VRRP advertisement interval (10ms steps); failover takes about 3.6 of them")
	}
	fs.IntVar(&cfg.DNSPort, "dns-port", cfg.DNSPort, "DNS port for the cluster domain, UDP and TCP (-1: no DNS server)")
	fs.StringVar(&cfg.VIPRange, "vip-range", cfg.VIPRange, "IPv4 prefix named VIPs (VIP_<n> port labels) get their addresses from; the same on every node")
	if role != roleMaster {
		fs.BoolVar(&cfg.VIPProxy, "vip-proxy", cfg.VIPProxy, "balance the named VIPs on this node: their addresses on the "+cfg.VIPInterface+" interface (needs root), their TCP ports proxied to the tasks")
	}
	if role == roleMaster {
		fs.BoolVar(&cfg.Secure, "secure", cfg.Secure, "run a secure cluster (the default): the first master creates its CA and gossip key (in <data-dir>/pki) and prints, once, "+
			"the commands that install the other nodes with join tokens; node traffic is TLS, gossip encrypted, API tokens required. "+
			"--secure=false: plain HTTP, agents join without tokens")
	}
	if role == roleAgent || role == roleLB {
		fs.BoolVar(&cfg.Secure, "secure", cfg.Secure, "refuse to start outside a secure cluster: without credentials in <data-dir>/pki or --join-token")
	}
	if role != roleUp {
		fs.StringVar(&cfg.JoinToken, "join-token", cfg.JoinToken, "join token (ATL1-…, from the first master or atoll token create --role "+string(role)+
			") that joins this node to a secure cluster, once: it keeps its credentials in <data-dir>/pki (env "+joinTokenEnv+")")
		fs.StringVar(&cfg.MasterURL, "master-url", cfg.MasterURL, "master API to join through with --join-token (default: the first --join host at port 5050; env "+masterURLEnv+")")
		fs.StringSliceVar(&cfg.TLSNames, "tls-san", cfg.TLSNames, "IP address or DNS name this node's certificate holds besides its own addresses and names; repeatable")
		fs.StringVar(&cfg.DNSDomain, "dns-domain", cfg.DNSDomain, "cluster DNS domain (names like web.marathon.<domain>)")
		fs.IntVar(&cfg.DNSTTL, "dns-ttl", cfg.DNSTTL, "time to live of the cluster's DNS records, in seconds")
		fs.StringSliceVar(&cfg.DNSUpstreams, "dns-upstream", cfg.DNSUpstreams, "resolver (host:port or IP) for names outside the cluster domain; repeatable (default: /etc/resolv.conf's)")
	}
	fs.StringVar(&logs.level, "log-level", logs.level, "log level: debug, info, warn or error")
	fs.StringVar(&logs.format, "log-format", logs.format, "log format: text or json")
}

// The environment variables of the daemons' join flags: install.sh's environment file
// sets them, so that the token stays out of the command line (and of ps).
const (
	joinTokenEnv = "ATOLL_JOIN_TOKEN"
	masterURLEnv = "ATOLL_MASTER_URL"
)

// daemonConfig parses a daemon's arguments over its role's preset, and the environment
// (getenv) under them, into the node configuration and logging options. It is all of
// the daemons' flag handling.
func daemonConfig(role daemonRole, args []string, getenv func(string) string) (node.Config, logOptions, error) {
	cfg := role.preset()
	if role != roleUp {
		cfg.JoinToken = strings.TrimSpace(getenv(joinTokenEnv))
		cfg.MasterURL = strings.TrimSpace(getenv(masterURLEnv))
	}
	logs := logFlags{level: "info", format: "text"}
	fs := pflag.NewFlagSet(string(role), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	daemonFlags(fs, role, &cfg, &logs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return node.Config{}, logOptions{}, err
		}
		return node.Config{}, logOptions{}, &usageError{err}
	}
	if fs.NArg() > 0 {
		return node.Config{}, logOptions{}, usagef("atoll %s takes no arguments, got %q", role, fs.Args())
	}
	if role == roleUp && cfg.Auth && !cfg.Secure {
		// Its agent, load balancer and DNS server get tokens of their own only in a
		// secure cluster.
		return node.Config{}, logOptions{}, usagef("atoll up --auth --secure=false: the cluster's own agent and load balancer would have no token; tokens come with the secure cluster atoll up runs by default")
	}
	var join []string
	for _, j := range cfg.Join {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	cfg.Join = join
	if err := cfg.Validate(); err != nil {
		return node.Config{}, logOptions{}, &usageError{err}
	}
	var opts logOptions
	if err := opts.level.UnmarshalText([]byte(logs.level)); err != nil {
		return node.Config{}, logOptions{}, usagef("log-level %q: want debug, info, warn or error", logs.level)
	}
	switch logs.format {
	case "text":
	case "json":
		opts.json = true
	default:
		return node.Config{}, logOptions{}, usagef("log-format %q: want text or json", logs.format)
	}
	return cfg, opts, nil
}

func newLogger(w io.Writer, opts logOptions) *slog.Logger {
	handlerOpts := &slog.HandlerOptions{Level: opts.level}
	if opts.json {
		return slog.New(slog.NewJSONHandler(w, handlerOpts))
	}
	return slog.New(slog.NewTextHandler(w, handlerOpts))
}

var daemonHelp = map[daemonRole][2]string{
	roleUp: {"Run a whole cluster (master and agent) in this process",
		"up runs a master and an agent in one process on 127.0.0.1, for a laptop or a test.\nCtrl-C stops it and the tasks it ran."},
	roleMaster: {"Run a master: Raft member, allocator and HTTP API",
		"master runs a master. Start 1, 3 or 5 with the same --bootstrap-expect and --join."},
	roleAgent: {"Run an agent: offer this machine's resources and run tasks",
		"agent runs tasks on this machine for the cluster it joins."},
	roleLB: {"Run a load balancer: serve apps by their marathon-lb labels",
		"lb proxies to the apps of its --group (HAPROXY_GROUP labels) on their service ports,\nvirtual hosts and app ids, following the masters it finds by --join."},
}

// daemonCmd is `atoll up|master|agent`. Its flags are parsed by daemonConfig, so the
// command only registers them for its help text.
func (a *app) daemonCmd(role daemonRole) *cobra.Command {
	cmd := &cobra.Command{
		Use:                string(role) + " [flags]",
		Short:              daemonHelp[role][0],
		Long:               daemonHelp[role][1],
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, logs, err := daemonConfig(role, args, a.getenv)
			if errors.Is(err, pflag.ErrHelp) {
				return cmd.Help()
			}
			if err != nil {
				return err
			}
			return a.runDaemon(cmd.Context(), role, cfg, logs)
		},
	}
	helpCfg, helpLogs := role.preset(), logFlags{level: "info", format: "text"}
	daemonFlags(cmd.Flags(), role, &helpCfg, &helpLogs)
	return cmd
}

// runDaemon runs the node until Ctrl-C or SIGTERM.
func (a *app) runDaemon(ctx context.Context, role daemonRole, cfg node.Config, logs logOptions) error {
	ctx, stop := a.interrupted(ctx)
	defer stop()
	cfg.Logger = newLogger(a.stderr, logs)
	// The admin token a new cluster gets; `atoll up` logs in to its cluster with it.
	var adminToken struct {
		sync.Mutex
		value string
	}
	// A master makes one only when it requires tokens: with --auth, or when secure.
	cfg.AdminToken = func(token string) {
		adminToken.Lock()
		adminToken.value = token
		adminToken.Unlock()
		a.showAdminToken(role, cfg.DataDir, token)
	}
	cfg.JoinCommands = a.showJoinCommands
	if role == roleUp {
		// A one-process cluster on 127.0.0.1 has no other hosts to install; atoll token
		// create makes join tokens should one ever be wanted.
		cfg.JoinCommands = func(map[pki.Role]string) {}
	}
	ready := func(info node.Info) {
		cfg.Logger.Info("node ready", "api", info.APIURL, "agent", info.AgentURL, "dns", info.DNSAddr, "data_dir", info.DataDir)
		if role != roleUp {
			return
		}
		adminToken.Lock()
		token := adminToken.value
		adminToken.Unlock()
		if token != "" {
			caCert := ""
			if strings.HasPrefix(info.APIURL, "https://") {
				caCert = filepath.Join(cfg.DataDir, "pki", pki.CACertFile)
			}
			a.loginLocal(info.APIURL, token, caCert)
		}
		a.announceUp(info)
	}
	if err := node.Run(ctx, cfg, ready); err != nil {
		return fmt.Errorf("%s: %w", role, err)
	}
	return nil
}

// adminTokenFile is where `atoll up --auth` keeps the admin token, in its data dir.
const adminTokenFile = "admin.token"

// showAdminToken hands the user the admin token the cluster was given, the only copy:
// `atoll up` writes it to a file of the data dir, only the user may read; a master prints
// it.
func (a *app) showAdminToken(role daemonRole, dataDir, token string) {
	if role == roleUp {
		path := filepath.Join(dataDir, adminTokenFile)
		// A file left from an earlier cluster goes first: WriteFile keeps an existing
		// file's mode, which may let others read it.
		_ = os.Remove(path)
		err := os.WriteFile(path, []byte(token+"\n"), 0o600)
		if err == nil {
			fmt.Fprintf(a.stdout, "Admin API token written to %s. Use it with:\n  export %s=$(cat %s)\n", path, tokenEnv, path)
			return
		}
		fmt.Fprintf(a.stderr, "atoll: could not write the admin token to %s (%v); here it is instead.\n", path, err)
	}
	fmt.Fprintf(a.stdout, "Admin API token, shown only this once (the cluster keeps only its hash):\n  %s\n"+
		"Use it with atoll --token or %s=…, and make tokens for others with 'atoll token create --role …'.\n", token, tokenEnv)
}

// showJoinCommands hands the user the commands that install the other nodes of the new
// secure cluster this master created, the only copies of their join tokens.
func (a *app) showJoinCommands(commands map[pki.Role]string) {
	var b strings.Builder
	b.WriteString("A new secure cluster. Install its other nodes with these commands, shown only this once\n" +
		"(make more join tokens with 'atoll token create --role agent|lb|master'):\n")
	for _, role := range pki.Roles {
		fmt.Fprintf(&b, "  %s:\n    %s\n", role, commands[role])
	}
	_, _ = io.WriteString(a.stdout, b.String())
}

// localContext is the context `atoll up` logs in to its cluster as, when it has tokens.
const localContext = "local"

// loginLocal keeps the new cluster's address, admin token and CA certificate file (""
// for plain HTTP) as the current context, so that the commands that follow just work;
// failing that, it says how to log in.
func (a *app) loginLocal(addr, token, caCert string) {
	cfg, err := a.loadConfig()
	if err == nil {
		cfg.put(cliContext{Name: localContext, Addr: addr, Token: token, CACert: caCert})
		var path string
		if path, err = a.saveConfig(cfg); err == nil {
			fmt.Fprintf(a.stdout, "Logged in to %s as context %q (kept in %s): atoll commands use it.\n", addr, localContext, path)
			return
		}
	}
	fmt.Fprintf(a.stderr, "atoll: could not log in to the new cluster (%v); use atoll login --addr %s --token …\n", err, addr)
}

// orNone is s, or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// announceUp tells the user of `atoll up` where the cluster is and what to try.
func (a *app) announceUp(info node.Info) {
	try := "atoll task run -- echo hello"
	loggedIn := false
	if cfg, err := a.loadConfig(); err == nil {
		current, ok := cfg.current()
		loggedIn = ok && current.Addr == info.APIURL
	}
	if !loggedIn && info.APIURL != defaultAddr {
		try = "atoll --addr " + info.APIURL + " task run -- echo hello"
	}
	dnsLine := ""
	if info.DNSAddr != "" {
		dnsLine = fmt.Sprintf("  DNS:      %s (atoll dns lookup leader.mesos)\n", info.DNSAddr)
	}
	lbLine := ""
	if info.LBHTTPAddr != "" || info.LBAdminAddr != "" {
		lbLine = fmt.Sprintf("  LB:       virtual hosts on %s, stats on http://%s/haproxy?stats\n", orNone(info.LBHTTPAddr), orNone(info.LBAdminAddr))
	}
	fmt.Fprintf(a.stdout, "Atoll is up.\n  API:      %s\n%s%s  Data dir: %s\nTry: %s\nCtrl-C stops the cluster.\n", info.APIURL, dnsLine, lbLine, info.DataDir, try)
}
