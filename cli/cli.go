// Package cli is the atoll command line: the daemons (up, master, agent) that run a node,
// and the clients (nodes, tasks, frameworks, members, task run and kill, operator raft and
// snapshot) that talk to a cluster through api.Client only.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node"
)

// defaultAddr is where a master marathon.Started by `atoll up` serves its API.
const defaultAddr = "http://127.0.0.1:5050"

// addrEnv names the environment variable that replaces defaultAddr.
const addrEnv = "ATOLL_ADDR"

// tokenEnv names the environment variable with the API token, when --token is not given.
const tokenEnv = "ATOLL_TOKEN"

// caCertEnv names the environment variable with the CA file, when --ca-cert is not given.
const caCertEnv = "ATOLL_CA_CERT"

// requestTimeout bounds the one-shot API requests of the listing commands.
const requestTimeout = 30 * time.Second

// Main runs the atoll command line with args (os.Args, program name first) and returns
// the process exit code: 0 on success, 1 when the command failed, 2 for a usage error.
func Main(args []string) int {
	if len(args) > 0 {
		args = args[1:]
	}
	a := &app{
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		now:    time.Now,
		interrupted: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		},
		newID:      randomSuffix,
		waitReport: 5 * time.Second,
		killWait:   10 * time.Second,
	}
	return a.run(context.Background(), args)
}

// app is one run of the command line: where it writes, what it reads from the
// environment, and the global flags once parsed.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// interrupted returns a context that ends on Ctrl-C or SIGTERM; its cancel function
	// restores the default handling, so a second Ctrl-C stops the process at once.
	interrupted func(context.Context) (context.Context, context.CancelFunc)
	// newID makes the random part of task ids.
	newID func() string
	// waitReport is how often `task run` says why it is still waiting for an offer;
	// killWait how long it waits for the task's end after killing it on Ctrl-C.
	waitReport time.Duration
	killWait   time.Duration

	// Global flags; addrSet records whether --addr was given.
	addrFlag string
	addrSet  bool
	output   string
	// tokenFlag is --token; token() resolves it.
	tokenFlag string
	// caCertFlag is --ca-cert; caCert() resolves it.
	caCertFlag string
	// configWarned says a config file that could not be read was reported.
	configWarned bool
	// addr is the resolved master URL, set by client.
	addr string
}

// usageError is a command line that cannot run as given: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// failure is an error from a command that ran: exit code 1.
type failure struct{ err error }

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }

// exitCode ends the program with that code and no message: the command has said why.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// run executes the command line and turns its outcome into an exit code.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var usage *usageError
	var failed *failure
	if errors.As(err, &failed) && !errors.As(err, &usage) {
		fmt.Fprintf(a.stderr, "atoll: %v\n", err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintf(a.stderr, "atoll: is a master running at %s? Start one with 'atoll up', or set --addr or %s.\n", a.addr, addrEnv)
		}
		return 1
	}
	// Everything cobra rejects before a command runs is a usage error too.
	fmt.Fprintf(a.stderr, "atoll: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
	return 2
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "atoll",
		Short:         "Atoll runs services and jobs on a cluster of machines",
		Version:       node.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.addrSet = cmd.Flags().Changed("addr")
			if a.output != "table" && a.output != "json" {
				return usagef("--output %q: want table or json", a.output)
			}
			return nil
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	flags := root.PersistentFlags()
	flags.StringVar(&a.addrFlag, "addr", defaultAddr, "master API URL (env "+addrEnv+")")
	flags.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	flags.StringVar(&a.tokenFlag, "token", "", "API token sent to the masters (env "+tokenEnv+")")
	flags.StringVar(&a.caCertFlag, "ca-cert", "", "PEM file of the CA the masters' certificates must be of, for https masters of a secure cluster "+
		"(<data-dir>/pki/ca.crt on a master; env "+caCertEnv+")")

	task := &cobra.Command{
		Use:   "task",
		Short: "Run and kill single tasks",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	task.AddCommand(a.taskRunCmd(), a.taskKillCmd(), a.taskLogCmd())
	root.AddCommand(
		a.daemonCmd(roleUp), a.daemonCmd(roleMaster), a.daemonCmd(roleAgent), a.daemonCmd(roleLB),
		a.nodesCmd(), a.tasksCmd(), a.frameworksCmd(), a.membersCmd(), a.operatorCmd(),
		task, a.dnsCmd(),
		a.appCmd(), a.deploymentCmd(), a.groupCmd(), a.jobCmd(), a.tuiCmd(), a.frameworkCmd(),
		a.pkgCmd(), a.tokenCmd(), a.loginCmd(), a.logoutCmd(),
		a.nodeCmd(), a.keyringCmd(),
	)
	markFailures(root)
	return root
}

// groupRun runs a command that only groups subcommands: help without arguments, a usage
// error for an unknown subcommand.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// markFailures wraps the errors of every command's RunE as failures (exit 1) unless they
// are usage errors or exit codes already, so run can tell them from cobra's own errors.
func markFailures(cmd *cobra.Command) {
	if runE := cmd.RunE; runE != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := runE(c, args)
			var usage *usageError
			var code exitCode
			if err == nil || errors.As(err, &usage) || errors.As(err, &code) {
				return err
			}
			return &failure{err}
		}
	}
	for _, sub := range cmd.Commands() {
		markFailures(sub)
	}
}

// resolveAddr picks the master address: the --addr flag when given, else the environment,
// else the default. A bare host:port gets http://.
func resolveAddr(flag string, flagSet bool, env string) (string, error) {
	source, addr := "--addr", flag
	if !flagSet {
		source, addr = addrEnv, env
		if addr == "" {
			return defaultAddr, nil
		}
	}
	full := addr
	if !strings.Contains(addr, "://") {
		full = "http://" + addr
	}
	u, err := url.Parse(full)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s %q: want a URL like http://host:5050", source, addr)
	}
	return strings.TrimRight(full, "/"), nil
}

// client returns an API client for the master the flags, the environment or the current
// context name.
func (a *app) client() (*api.Client, error) {
	addr, err := a.masterAddr()
	if err != nil {
		return nil, err
	}
	h, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	return api.NewClient(addr, api.WithToken(a.token()), api.WithHTTPClient(h)), nil
}

// caCert is the CA file the client trusts: --ca-cert, else the environment, else the
// current context's when the master in use (a.addr) is the context's; "" trusts the
// system's roots.
func (a *app) caCert() string {
	return a.setting(a.caCertFlag, caCertEnv, func(c cliContext) string { return c.CACert })
}

// httpClient is what the API calls go through: trusting caCert's CA alone when there is
// one, else nil (the API client's own).
func (a *app) httpClient() (*http.Client, error) {
	path := a.caCert()
	if path == "" {
		return nil, nil
	}
	pool, err := loadCAFile(path)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Transport: transport}, nil
}

// loadCAFile reads a PEM file of CA certificates into a pool.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--ca-cert: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// token is the API token every client sends: --token, else the environment, else the
// current context's when the master in use (a.addr) is the context's; "" sends none.
func (a *app) token() string {
	return a.setting(a.tokenFlag, tokenEnv, func(c cliContext) string { return c.Token })
}

// setting resolves a client setting: flag when given, else the environment variable
// env, else the current context's (of) when the master in use (a.addr) is the
// context's; "" when none has it.
func (a *app) setting(flag, env string, of func(cliContext) string) string {
	if flag != "" {
		return flag
	}
	if v := strings.TrimSpace(a.getenv(env)); v != "" {
		return v
	}
	if ctx, ok := a.currentContext(); ok && a.addr != "" && ctx.Addr == a.addr {
		return of(ctx)
	}
	return ""
}

// noArgs rejects positional arguments as a usage error.
// oneArg accepts exactly one argument, described as what ("task id") in the usage error.
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
			return usagef("%s takes one %s, got %d arguments", path, what, len(args))
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
