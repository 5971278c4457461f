package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

// cliConfig is the command line's own file (like a kubeconfig): the clusters it was
// logged in to, each a context, and the one used when neither --addr nor ATOLL_ADDR
// names a master.
type cliConfig struct {
	Current  string       `json:"current,omitempty"`
	Contexts []cliContext `json:"contexts"`
}

// cliContext is a master address and the token sent to it.
type cliContext struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Token string `json:"token,omitempty"`
	// CACert is the CA file the master's certificate must be of (--ca-cert at login).
	CACert string `json:"ca_cert,omitempty"`
}

// configPath is the file's path: $XDG_CONFIG_HOME/atoll/config, else
// $HOME/.config/atoll/config; "" when the environment names neither.
func (a *app) configPath() string {
	if dir := a.getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "atoll", "config")
	}
	if home := a.getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "atoll", "config")
	}
	return ""
}

// loadConfig reads the file; a missing one is an empty config.
func (a *app) loadConfig() (*cliConfig, error) {
	path := a.configPath()
	if path == "" {
		return &cliConfig{}, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &cliConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var cfg cliConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s is not an atoll config (%v): fix or remove it", path, err)
	}
	return &cfg, nil
}

// saveConfig writes the file, readable by the user alone: it holds tokens.
func (a *app) saveConfig(cfg *cliConfig) (string, error) {
	path := a.configPath()
	if path == "" {
		return "", errors.New("neither HOME nor XDG_CONFIG_HOME is set: nowhere to keep the login")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	// A crash leaves the old file or the new; CreateTemp makes it 0600 whatever mode an
	// old file had.
	if _, err := writeFileAtomically(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	}); err != nil {
		return "", err
	}
	return path, nil
}

// current is the context in use, if any.
func (c *cliConfig) current() (cliContext, bool) {
	i := slices.IndexFunc(c.Contexts, func(x cliContext) bool { return x.Name == c.Current })
	if i < 0 {
		return cliContext{}, false
	}
	return c.Contexts[i], true
}

// put adds or replaces a context and makes it current.
func (c *cliConfig) put(ctx cliContext) {
	c.Contexts = slices.DeleteFunc(c.Contexts, func(x cliContext) bool { return x.Name == ctx.Name })
	c.Contexts = append(c.Contexts, ctx)
	slices.SortFunc(c.Contexts, func(x, y cliContext) int { return strings.Compare(x.Name, y.Name) })
	c.Current = ctx.Name
}

// currentContext is the context in use; a config that cannot be read is reported once
// and ignored.
func (a *app) currentContext() (cliContext, bool) {
	cfg, err := a.loadConfig()
	if err != nil {
		if !a.configWarned {
			a.configWarned = true
			fmt.Fprintf(a.stderr, "atoll: %v\n", err)
		}
		return cliContext{}, false
	}
	return cfg.current()
}

// masterAddr is the master the client commands talk to: --addr, else ATOLL_ADDR, else
// the current context's, else the default. It sets a.addr.
func (a *app) masterAddr() (string, error) {
	flag, set, env := a.addrFlag, a.addrSet, a.getenv(addrEnv)
	if !set && env == "" {
		if ctx, ok := a.currentContext(); ok {
			flag, set = ctx.Addr, true
		}
	}
	addr, err := resolveAddr(flag, set, env)
	if err != nil {
		return "", &usageError{err}
	}
	a.addr = addr
	return addr, nil
}

func (a *app) loginCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "login --addr URL --token TOKEN",
		Short: "Keep a master's address and a token for the commands that follow",
		Long: "login checks the token with the master, then keeps the address and the token in\n" +
			"$XDG_CONFIG_HOME/atoll/config (else ~/.config/atoll/config, readable by you alone)\n" +
			"as a context, the current one: commands without --addr and ATOLL_ADDR use its\n" +
			"master, and send its token to that master (never to another). 'atoll up --auth' logs\n" +
			"in to the cluster it starts as the context \"local\".",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !a.addrSet && a.getenv(addrEnv) == "" {
				return usagef("login needs the master: --addr URL (or %s)", addrEnv)
			}
			addr, err := a.masterAddr()
			if err != nil {
				return err
			}
			token := a.token()
			if token == "" {
				return usagef("login needs a token: --token TOKEN (or %s)", tokenEnv)
			}
			if name == "" {
				name = strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
			}
			caCert := a.caCertFlag
			if caCert == "" {
				caCert = strings.TrimSpace(a.getenv(caCertEnv))
			}
			if caCert != "" {
				if caCert, err = filepath.Abs(caCert); err != nil {
					return fmt.Errorf("--ca-cert: %w", err)
				}
			}
			h, err := a.httpClient()
			if err != nil {
				return err
			}
			note, err := checkToken(cmd, api.NewClient(addr, api.WithToken(token), api.WithHTTPClient(h)))
			if err != nil {
				return err
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			cfg.put(cliContext{Name: name, Addr: addr, Token: token, CACert: caCert})
			path, err := a.saveConfig(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Logged in to %s as context %q (kept in %s).%s\n", addr, name, path, note)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the context's name (default: the master's host:port)")
	return cmd
}

// checkToken asks the master something any token may read unless its role forbids it: a
// token refused (401) fails the login; one that may not read the state (403, a framework
// token) is taken, with a note.
func checkToken(cmd *cobra.Command, c *api.Client) (string, error) {
	_, err := c.GetVersion(cmd.Context())
	var re *api.HTTPError
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &re) && re.Status == http.StatusForbidden:
		return " The token may not read the cluster's state: commands that do will be refused.", nil
	case errors.As(err, &re) && re.Status == http.StatusUnauthorized:
		return "", fmt.Errorf("the master refused the token: %s", strings.TrimSpace(re.Message))
	default:
		return "", fmt.Errorf("check the token with the master: %w", err)
	}
}

func (a *app) logoutCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "logout [--name NAME]",
		Short: "Forget a context kept by login (the current one by default)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if name == "" {
				name = cfg.Current
			}
			i := slices.IndexFunc(cfg.Contexts, func(x cliContext) bool { return x.Name == name })
			if name == "" || i < 0 {
				return fmt.Errorf("no context %q to log out of (atoll login keeps one)", name)
			}
			cfg.Contexts = slices.Delete(cfg.Contexts, i, i+1)
			if cfg.Current == name {
				cfg.Current = ""
			}
			if _, err := a.saveConfig(cfg); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Logged out of context %q.\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the context to forget")
	return cmd
}
