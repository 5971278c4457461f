package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/frameworks/services"
)

// frameworkKind is a framework `atoll framework` runs by itself.
type frameworkKind string

const (
	kindServices frameworkKind = "services"
	kindJobs     frameworkKind = "jobs"
)

// frameworkDefaults are a kind's defaults: the name a second instance registers under
// (DC/OS's names for a user's own Marathon and Chronos) and the port of its API
// (Marathon's and Chronos's).
var frameworkDefaults = map[frameworkKind]struct{ name, listen, short, long string }{
	kindServices: {"marathon-user", "127.0.0.1:8080", "Run a services framework (the Marathon API) by itself against a cluster",
		`services runs a services framework of its own, a second Marathon next to the one built
into the masters: it registers with a master over the HTTP scheduler API, keeps its
state in a key-value namespace of its own on the masters, and serves the Marathon API
on --listen. Run as a Marathon app (as 'atoll pkg install marathon' does), it listens
on $PORT0. Stopped and started again, it registers as the same framework and adopts
its tasks. SIGTERM or Ctrl-C stops it; its tasks keep running.`},
	kindJobs: {"chronos-user", "127.0.0.1:4400", "Run a jobs framework (the Chronos API) by itself against a cluster",
		`jobs runs a jobs framework of its own, a second Chronos next to the one built into the
masters: it registers with a master over the HTTP scheduler API, keeps its state in a
key-value namespace of its own on the masters, and serves the Chronos API on --listen.
Run as a Marathon app (as 'atoll pkg install chronos' does), it listens on $PORT0.
Stopped and started again, it registers as the same framework and adopts its runs.
SIGTERM or Ctrl-C stops it.`},
}

// frameworkFlags are the flags of `atoll framework services|jobs` as given.
type frameworkFlags struct {
	master, name, role, principal, listen, namespace string
	logs                                             logFlags
}

// frameworkSetup is what `atoll framework` runs: the host's configuration and the
// framework's identity.
type frameworkSetup struct {
	host            host.RemoteConfig
	name            string
	role, principal string
	logs            logOptions
}

func (a *app) frameworkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "framework",
		Short: "Run a services or jobs framework by itself against a cluster",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.frameworkRunCmd(kindServices), a.frameworkRunCmd(kindJobs))
	return cmd
}

// frameworkRunCmd is `atoll framework services|jobs`.
func (a *app) frameworkRunCmd(kind frameworkKind) *cobra.Command {
	def := frameworkDefaults[kind]
	flags := frameworkFlags{name: def.name, role: "*", listen: def.listen, logs: logFlags{level: "info", format: "text"}}
	cmd := &cobra.Command{
		Use:   string(kind) + " [flags]",
		Short: def.short,
		Long:  def.long,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setup, err := a.frameworkSetup(kind, flags, cmd.Flags().Changed("listen"))
			if err != nil {
				return err
			}
			return a.runFramework(cmd.Context(), kind, setup)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&flags.master, "master", "", "master API URL (default: --addr, or $"+addrEnv+")")
	fs.StringVar(&flags.name, "name", flags.name, "framework name: DNS names its tasks <app>.<name>.<domain>")
	fs.StringVar(&flags.role, "role", flags.role, "role the framework subscribes with and takes resources of")
	fs.StringVar(&flags.principal, "principal", "", "principal the framework authenticates as")
	fs.StringVar(&flags.listen, "listen", flags.listen, "host:port of the framework's own API; when not given and $PORT0 is set, :$PORT0")
	fs.StringVar(&flags.namespace, "namespace", "", "key-value namespace of its state on the masters (default: "+string(kind)+".<name>)")
	fs.StringVar(&flags.logs.level, "log-level", flags.logs.level, "log level: debug, info, warn or error")
	fs.StringVar(&flags.logs.format, "log-format", flags.logs.format, "log format: text or json")
	return cmd
}

// frameworkSetup checks the flags and fills in what they leave out: the master from
// --addr or the environment, the listener from $PORT0 (a Marathon app's port, on every
// interface, advertised as $HOST), the namespace from the name.
func (a *app) frameworkSetup(kind frameworkKind, flags frameworkFlags, listenSet bool) (frameworkSetup, error) {
	masterURL := flags.master
	if masterURL == "" {
		addr, err := a.masterAddr()
		if err != nil {
			return frameworkSetup{}, err
		}
		masterURL = addr
	}
	a.addr = masterURL
	cfg := host.DefaultRemoteConfig()
	cfg.Master, cfg.Listen = strings.TrimRight(masterURL, "/"), flags.listen
	if port := a.getenv("PORT0"); port != "" && !listenSet {
		cfg.Listen, cfg.AdvertiseHost = net.JoinHostPort("", port), a.getenv("HOST")
	}
	if flags.name == "" {
		return frameworkSetup{}, usagef("--name: empty")
	}
	cfg.Namespace = flags.namespace
	if cfg.Namespace == "" {
		cfg.Namespace = string(kind) + "." + namespaceOf(flags.name)
	}
	if err := cfg.Validate(); err != nil {
		return frameworkSetup{}, &usageError{err}
	}
	logs, err := parseLogFlags(flags.logs)
	if err != nil {
		return frameworkSetup{}, err
	}
	return frameworkSetup{host: cfg, name: flags.name, role: flags.role, principal: flags.principal, logs: logs}, nil
}

// namespaceOf turns a framework name into a key-value namespace's form: lower case, with
// '-' for whatever else a namespace may not hold.
func namespaceOf(name string) string {
	out := []rune(strings.ToLower(name))
	for i, r := range out {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			out[i] = '-'
		}
	}
	return string(out)
}

// parseLogFlags checks the logging flags.
func parseLogFlags(logs logFlags) (logOptions, error) {
	var opts logOptions
	if err := opts.level.UnmarshalText([]byte(logs.level)); err != nil {
		return logOptions{}, usagef("log-level %q: want debug, info, warn or error", logs.level)
	}
	switch logs.format {
	case "text":
	case "json":
		opts.json = true
	default:
		return logOptions{}, usagef("log-format %q: want text or json", logs.format)
	}
	return opts, nil
}

// runFramework runs the framework until Ctrl-C or SIGTERM, then lets the requests in
// flight finish.
func (a *app) runFramework(ctx context.Context, kind frameworkKind, setup frameworkSetup) error {
	ctx, stop := a.interrupted(ctx)
	defer stop()
	logger := newLogger(a.stderr, setup.logs)
	setup.host.Logger = logger
	h, err := host.NewRemote(setup.host)
	if err != nil {
		return fmt.Errorf("framework %s: %w", setup.name, err)
	}
	switch kind {
	case kindServices:
		services.New(h, services.Config{Logger: logger, Name: setup.name, Role: setup.role, Principal: setup.principal})
	case kindJobs:
		jobs.New(h, jobs.Config{Logger: logger, Name: setup.name, Role: setup.role, Principal: setup.principal})
	}
	logger.Info("framework starting", "kind", kind, "name", setup.name, "namespace", setup.host.Namespace, "api", h.APIURL(), "master", setup.host.Master)
	if err := h.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("framework %s: %w", setup.name, err)
	}
	return nil
}
