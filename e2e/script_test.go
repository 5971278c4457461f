package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// TestNetnsClusterScript: scripts/netns-cluster.sh up starts a one-master, one-agent
// cluster (plus an lb host with only its namespace) that answers from the root namespace,
// and down stops its processes and removes its namespaces, links, bridge and state dir,
// also when run again. The script runs under the names and address slot of an empty
// Cluster, so it never meets a user's cluster and the Cluster's Close sweeps up after it.
func TestNetnsClusterScript(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	prefix := c.ID() + "-"
	stateDir := filepath.Join(c.Dir(), "netns")
	script := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", append([]string{"../scripts/netns-cluster.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "ATOLL_NETNS_PREFIX="+prefix, "ATOLL_NETNS_SLOT="+strconv.Itoa(c.slot), "ATOLL_NETNS_DIR="+stateDir)
		out, err := combined(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	out := script("up", "--masters", "1", "--agents", "1", "--lbs", "1", "--bin", c.Bin())
	masterIP, agentIP, lbIP := slotAddr(c.slot, hostOffset), slotAddr(c.slot, hostOffset+1), slotAddr(c.slot, hostOffset+2)
	for _, want := range []string{
		`m1\s+` + regexp.QuoteMeta(masterIP.String()) + `\s+master, log `,
		`a1\s+` + regexp.QuoteMeta(agentIP.String()) + `\s+agent, log `,
		`l1\s+` + regexp.QuoteMeta(lbIP.String()) + `\s+namespace only: the lb role does not exist yet`,
		regexp.QuoteMeta("ATOLL_ADDR=http://" + masterIP.String() + ":5050 "),
		regexp.QuoteMeta("ip netns exec " + prefix + "a1 "),
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("up's output does not match %s:\n%s", want, out)
		}
	}
	names := []string{prefix + "a1", prefix + "a1", prefix + "br0", prefix + "l1", prefix + "l1", prefix + "m1", prefix + "m1"}
	if got := harnessNames(t, prefix); !slices.Equal(got, names) {
		t.Errorf("after up: %q, want %q (namespaces and links of m1, a1, l1, the bridge)", got, names)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes, err := c.Run(ctx, "--addr", "http://"+masterIP.String()+":5050", "nodes", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var agents []api.AgentState
	if err := json.Unmarshal([]byte(nodes), &agents); err != nil {
		t.Fatalf("nodes -o json: %v\n%s", err, nodes)
	}
	if len(agents) != 1 || agents[0].AgentInfo.Hostname != agentIP.String() || !agents[0].Active {
		t.Errorf("nodes = %+v, want the agent on %s, active", agents, agentIP)
	}

	var pids []int
	for _, host := range []string{"m1", "a1"} {
		raw, err := os.ReadFile(filepath.Join(stateDir, host+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}

	for range 2 {
		script("down")
		if got := harnessNames(t, prefix); len(got) != 0 {
			t.Errorf("after down: %q remain", got)
		}
		if _, err := os.Stat(stateDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state dir after down: %v, want it gone", err)
		}
		for _, pid := range pids {
			if running(pid) {
				t.Errorf("process %d still runs after down", pid)
			}
		}
	}
}

// running reports whether pid is a live process, not a zombie waiting for a reaper.
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}
