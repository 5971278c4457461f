package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/pki"
)

// secureLogLines are what a new secure cluster's first master prints once: its admin
// token and the command that installs an agent with a join token.
var (
	adminTokenLine   = regexp.MustCompile(`(?m)^  (atl_[a-z2-7]+_[a-z2-7]+)$`)
	agentCommandLine = regexp.MustCompile(`(?m)^  agent:\n    (curl -fsSL http://\S+/install\.sh \| sudo sh -s -- agent --token (ATL1-\S+))$`)
)

// TestSecureInstall: the first master of a secure cluster (atoll master --secure) prints
// its admin token and the commands that install the other nodes. The agent's command,
// run on another host (install.sh piped from the master over plain HTTP), checks the
// cluster CA against the join token before it installs anything, starts the agent, which
// joins with the token (its certificate, gossip key and API token in its data dir) and
// registers over mutual TLS, and a task of an app posted to the master runs on it. The
// same command with a token that pins another CA is refused on a third host, which keeps
// nothing. The uninstaller removes the agent.
func TestSecureInstall(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	master := c.AddHost("m1")
	proc := master.Start("master", "--secure", "--name", master.Name(), "--bind", master.IP(), "--data-dir", master.DataDir())

	var admin, command, token string
	pollUntil(t, DefaultWaitTimeout, "the master's admin token and join commands", func() error {
		out, err := os.ReadFile(proc.LogPath())
		if err != nil {
			return err
		}
		a, cmd := adminTokenLine.FindSubmatch(out), agentCommandLine.FindSubmatch(out)
		if a == nil || cmd == nil {
			return fmt.Errorf("not in %s yet", proc.LogPath())
		}
		admin, command, token = string(a[1]), string(cmd[1]), string(cmd[2])
		return nil
	})
	if want := "curl -fsSL http://" + master.Addr(APIPort) + "/install.sh | sudo sh -s -- agent --token " + token; command != want {
		t.Fatalf("the agent's join command: %q, want %q", command, want)
	}
	caPEM, err := os.ReadFile(filepath.Join(master.DataDir(), "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := pki.ParseJoinToken(token); err != nil || parsed.CAHash != ca.Hash() {
		t.Fatalf("join token %q: %v, want one of CA %s", token, err, ca.Hash())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(transport.CloseIdleConnections)
	apiURL := "https://" + master.Addr(APIPort)
	client := api.NewClient(apiURL, api.WithToken(admin), api.WithHTTPClient(&http.Client{Transport: transport}))

	// A token pinning another CA: refused before anything is installed.
	other, err := pki.NewCA("mitm", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mitmHost := c.AddHost("x1")
	mitmRoot := filepath.Join(mitmHost.Dir(), "root")
	mitmToken := "ATL1-" + other.Hash() + strings.TrimPrefix(token, "ATL1-"+ca.Hash())
	out, err := secureInstall(mitmHost, master, mitmRoot, mitmToken)
	want := "atoll-install: the cluster CA's hash " + ca.Hash() + ", as http://" + master.Addr(APIPort) + " served it, does not match the join token's " +
		other.Hash() + ": a man in the middle, or a token of another cluster; nothing was installed"
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("install.sh with a token of another CA: %v, output:\n%s\nwant it to fail with %q", err, out, want)
	}
	if entries, err := os.ReadDir(mitmRoot); err == nil && len(entries) > 0 {
		t.Errorf("install.sh refused on %s but left %d entries in %s", mitmHost.Name(), len(entries), mitmRoot)
	}

	host := c.AddHost("a1")
	root := filepath.Join(host.Dir(), "root")
	out, err = secureInstall(host, master, root, token, "--name", host.Name(), "--bind", host.IP(), "--containerizer", "process")
	if err != nil {
		t.Fatalf("install.sh agent with the join token: %v\n%s", err, out)
	}
	t.Logf("install.sh agent on %s:\n%s", host.Name(), out)
	for _, line := range []string{"  the cluster CA matches the join token: SHA-256 " + ca.Hash() + "\n", " joined\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("install.sh's output has no %q", line)
		}
	}
	creds, err := pki.LoadCredentials(filepath.Join(root, "var", "lib", "atoll", "pki"))
	if err != nil || creds.CA.Hash() != ca.Hash() || creds.APIToken == "" || strings.Join(rolesOf(creds), ",") != "agent" {
		t.Fatalf("the agent's credentials: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	var agentID string
	pollUntil(t, DefaultWaitTimeout, "the agent active on the master", func() error {
		agents, err := client.GetAgents(ctx)
		if err != nil {
			return err
		}
		for _, a := range agents.Agents {
			if a.Active && a.AgentInfo.Hostname == host.IP() && a.AgentInfo.ID != nil {
				agentID = a.AgentInfo.ID.Value
				return nil
			}
		}
		return fmt.Errorf("agents %+v", agents.Agents)
	})
	app, _ := json.Marshal(map[string]any{"id": "/secured", "cmd": "exec sleep 3600", "cpus": 0.1, "mem": 16, "instances": 1})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v2/apps", bytes.NewReader(app))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %s", resp.Status)
	}
	pollUntil(t, DefaultWaitTimeout, "the app's task running on "+host.Name(), func() error {
		tasks, err := client.GetTasks(ctx)
		if err != nil {
			return err
		}
		for _, task := range tasks.Tasks {
			if task.State == api.TaskRunning && task.AgentID.Value == agentID {
				return nil
			}
		}
		return fmt.Errorf("tasks %+v", tasks.Tasks)
	})

	if out := runUninstall(t, host, root); !strings.Contains(out, "\n  stopped atoll-agent (pid ") {
		t.Errorf("the uninstaller's output:\n%s", out)
	}
}

// secureInstall pipes the master's install.sh into sh on host, to install an agent with
// the join token and atoll's flags, and returns its combined output.
func secureInstall(host, master *Host, root, token string, flags ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := host.Command(ctx, "sh", append([]string{"-c", `url=$1 token=$2; shift 2; curl -fsSL "$url/install.sh" | sh -s -- agent --token "$token" -- "$@"`,
		"sh", master.APIURL(), token}, flags...)...)
	cmd.Env = append(os.Environ(), "ATOLL_INSTALL_ROOT="+root, "ATOLL_INSTALL_TIMEOUT="+fmt.Sprint(int(DefaultWaitTimeout/time.Second)))
	return combined(cmd)
}

// rolesOf names the roles of a node's certificate.
func rolesOf(creds *pki.Credentials) []string {
	var names []string
	for _, r := range creds.Roles() {
		names = append(names, string(r))
	}
	return names
}
