package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/node"
)

// testTimeout bounds every wait in these tests; generous for a loaded machine.
const testTimeout = 30 * time.Second

// syncBuffer is a bytes.Buffer that a test may read while a command writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testApp is an app writing to buffers, with env as its whole environment, a fixed clock
// and task ids ending in "0001". Its interrupt is the returned cancel function.
type testApp struct {
	*app
	stdout, stderr *syncBuffer
	interrupt      context.CancelFunc
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestApp(t testing.TB, env map[string]string) *testApp {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	interruptCtx, interrupt := context.WithCancel(context.Background())
	t.Cleanup(interrupt)
	a := &app{
		stdout: stdout,
		stderr: stderr,
		getenv: func(k string) string { return env[k] },
		now:    func() time.Time { return testNow },
		interrupted: func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(interruptCtx, cancel)
			return ctx, func() { stop(); cancel() }
		},
		newID:      func() string { return "0001" },
		waitReport: 10 * time.Millisecond,
		killWait:   testTimeout,
	}
	return &testApp{app: a, stdout: stdout, stderr: stderr, interrupt: interrupt}
}

// runCLI runs the command line and returns its exit code.
func (a *testApp) runCLI(t testing.TB, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	code := a.run(ctx, args)
	t.Logf("atoll %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, a.stdout, a.stderr)
	return code
}

// testJoinToken is a join token of the right form.
var testJoinToken = "ATL1-" + strings.Repeat("ab", 32) + "-atl_secret"

func TestDaemonConfig(t *testing.T) {
	tests := []struct {
		name     string
		role     daemonRole
		args     []string
		env      map[string]string
		want     func(*node.Config)
		wantLogs logOptions
	}{
		{name: "up defaults", role: roleUp, want: func(c *node.Config) {}},
		{name: "agent defaults", role: roleAgent, args: []string{"--join", "198.18.0.1"}, want: func(c *node.Config) {
			c.Agent, c.Join = true, []string{"198.18.0.1"}
		}},
		{
			name: "up flags",
			role: roleUp,
			args: []string{"--data-dir", "/tmp/d", "--api-port", "6060", "--resources", "cpus:2;mem:1024", "--attributes", "rack:r1", "--bind", "127.0.0.2", "--log-level", "debug", "--log-format", "json"},
			want: func(c *node.Config) {
				c.DataDir, c.APIPort, c.Resources, c.Attributes, c.BindAddr = "/tmp/d", 6060, "cpus:2;mem:1024", "rack:r1", "127.0.0.2"
			},
			wantLogs: logOptions{level: slog.LevelDebug, json: true},
		},
		{
			name: "master",
			role: roleMaster,
			args: []string{"--bind", "198.18.0.1", "--advertise", "198.18.0.11", "--join", "198.18.0.2,198.18.0.3:7946", "--join=198.18.0.4",
				"--bootstrap-expect", "3", "--data-dir", "/var/lib/m", "--api-port", "1", "--raft-port", "2", "--gossip-port", "3", "--name", "m1",
				"--agent-timeout", "30s", "--offer-timeout", "1m", "--raft-failure-timeout", "2s"},
			want: func(c *node.Config) {
				c.Master, c.Secure = true, true
				c.AgentTimeout, c.OfferTimeout, c.RaftFailureTimeout = 30*time.Second, time.Minute, 2*time.Second
				c.BindAddr, c.AdvertiseAddr, c.Join = "198.18.0.1", "198.18.0.11", []string{"198.18.0.2", "198.18.0.3:7946", "198.18.0.4"}
				c.BootstrapExpect, c.DataDir, c.APIPort, c.RaftPort, c.GossipPort, c.Name = 3, "/var/lib/m", 1, 2, 3, "m1"
			},
		},
		{name: "master defaults", role: roleMaster, want: func(c *node.Config) { c.Master, c.Secure = true, true }},
		{name: "plain master", role: roleMaster, args: []string{"--secure=false"}, want: func(c *node.Config) { c.Master = true }},
		{name: "secure master", role: roleMaster, args: []string{"--secure", "--tls-san", "api.example.com", "--tls-san=10.0.0.9"}, want: func(c *node.Config) {
			c.Master, c.Secure, c.TLSNames = true, true, []string{"api.example.com", "10.0.0.9"}
		}},
		{name: "agent join token", role: roleAgent, args: []string{"--join", "10.0.0.1", "--join-token", testJoinToken, "--master-url", "https://10.0.0.1:5050", "--secure"},
			want: func(c *node.Config) {
				c.Agent, c.Join, c.JoinToken, c.MasterURL, c.Secure = true, []string{"10.0.0.1"}, testJoinToken, "https://10.0.0.1:5050", true
			}},
		{name: "lb join token from the environment", role: roleLB, args: []string{"--join", "10.0.0.1"},
			env: map[string]string{joinTokenEnv: testJoinToken + "\n", masterURLEnv: "http://10.0.0.1:5050"},
			want: func(c *node.Config) {
				c.LB, c.Join, c.JoinToken, c.MasterURL = true, []string{"10.0.0.1"}, testJoinToken, "http://10.0.0.1:5050"
			}},
		{name: "flag over the environment", role: roleAgent, args: []string{"--join", "10.0.0.1", "--join-token", testJoinToken},
			env:  map[string]string{joinTokenEnv: "ATL1-other"},
			want: func(c *node.Config) { c.Agent, c.Join, c.JoinToken = true, []string{"10.0.0.1"}, testJoinToken }},
		{name: "up ignores the join environment", role: roleUp, env: map[string]string{joinTokenEnv: testJoinToken}, want: func(c *node.Config) {}},
		{name: "master auth", role: roleMaster, args: []string{"--secure=false", "--auth"}, want: func(c *node.Config) { c.Master, c.Auth = true, true }},
		{name: "up auth", role: roleUp, args: []string{"--auth"}, want: func(c *node.Config) { c.Auth = true }},
		{name: "up plain", role: roleUp, args: []string{"--secure=false"}, want: func(c *node.Config) { c.Secure = false }},
		{
			name: "agent insecure registries",
			role: roleAgent,
			args: []string{"--join", "198.18.0.1", "--insecure-registry", "198.18.0.1:5000", "--insecure-registry=registry.lan,mirror:5001"},
			want: func(c *node.Config) {
				c.Agent, c.Join = true, []string{"198.18.0.1"}
				c.InsecureRegistries = []string{"198.18.0.1:5000", "registry.lan", "mirror:5001"}
			},
		},
		{name: "up insecure registry", role: roleUp, args: []string{"--insecure-registry", "10.0.0.5:5000"}, want: func(c *node.Config) {
			c.InsecureRegistries = []string{"10.0.0.5:5000"}
		}},
		{name: "agent task user", role: roleAgent, args: []string{"--join", "198.18.0.1", "--task-user", "daemon"}, want: func(c *node.Config) {
			c.Agent, c.Join, c.TaskUser = true, []string{"198.18.0.1"}, "daemon"
		}},
		{name: "up task user", role: roleUp, args: []string{"--task-user=daemon"}, want: func(c *node.Config) { c.TaskUser = "daemon" }},
		{
			name: "agent",
			role: roleAgent,
			args: []string{"--join", " 198.18.0.1 , ,198.18.0.2", "--work-dir", "/w", "--resources", "cpus:1", "--attributes", "zone:a",
				"--bind", "0.0.0.0", "--advertise", "198.18.0.5", "--agent-port", "5", "--gossip-port", "6", "--name", "a1", "--log-level", "WARN"},
			want: func(c *node.Config) {
				c.Agent = true
				c.Join, c.WorkDir, c.Resources, c.Attributes = []string{"198.18.0.1", "198.18.0.2"}, "/w", "cpus:1", "zone:a"
				c.BindAddr, c.AdvertiseAddr, c.AgentPort, c.GossipPort, c.Name = "0.0.0.0", "198.18.0.5", 5, 6, "a1"
			},
			wantLogs: logOptions{level: slog.LevelWarn},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, logs, err := daemonConfig(tt.role, tt.args, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatalf("daemonConfig: %v", err)
			}
			want := node.DefaultConfig()
			if tt.role == roleUp {
				want = node.DevConfig()
			}
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("config:\n got %+v\nwant %+v", got, want)
			}
			if logs != tt.wantLogs {
				t.Fatalf("logs = %+v, want %+v", logs, tt.wantLogs)
			}
		})
	}
}

func TestDaemonConfigErrors(t *testing.T) {
	tests := []struct {
		role daemonRole
		args []string
		want string
	}{
		{roleUp, []string{"--join", "x"}, "unknown flag: --join"},
		{roleUp, []string{"extra"}, `atoll up takes no arguments, got ["extra"]`},
		{roleUp, []string{"--api-port", "x"}, `invalid argument "x" for "--api-port" flag: strconv.ParseInt: parsing "x": invalid syntax`},
		{roleUp, []string{"--api-port", "70000"}, "api-port: 70000 is not a port"},
		{roleUp, []string{"--log-level", "loud"}, `log-level "loud": want debug, info, warn or error`},
		{roleUp, []string{"--log-format", "xml"}, `log-format "xml": want text or json`},
		{roleMaster, []string{"--bootstrap-expect", "0"}, "bootstrap-expect: 0, want at least 1"},
		{roleMaster, []string{"--agent-timeout", "0s"}, "agent-timeout: 0s, want > 0"},
		{roleMaster, []string{"--offer-timeout", "-1s"}, "offer-timeout: -1s, want ≥ 0 (0: never)"},
		{roleAgent, []string{"--join", "x", "--offer-timeout", "1s"}, "unknown flag: --offer-timeout"},
		{roleMaster, []string{"--raft-failure-timeout", "10ms"}, "raft-failure-timeout: 10ms, want at least 100ms (a busy leader would be deposed)"},
		{roleUp, []string{"--raft-failure-timeout", "1s"}, "unknown flag: --raft-failure-timeout"},
		{roleAgent, []string{"--join", "x", "--containerizer", "docker"}, `containerizer: "docker", want runc or process`},
		{roleMaster, []string{"--containerizer", "runc"}, "unknown flag: --containerizer"},
		{roleAgent, []string{"--join", "x", "--bridge-subnet", "10.0.0.0/30"}, `bridge-subnet: "10.0.0.0/30", want an IPv4 prefix of /29 or larger, like 10.251.0.0/20`},
		{roleUp, []string{"--dns-port", "-2"}, "dns-port: -2 is not a port (-1: no DNS server)"},
		{roleMaster, []string{"--resources", "cpus:1"}, "unknown flag: --resources"},
		{roleAgent, nil, "join: an agent needs --join with the address of any node"},
		{roleAgent, []string{"--join", " , "}, "join: an agent needs --join with the address of any node"},
		{roleAgent, []string{"--join", "x", "--data-dir", ""}, "data-dir: empty"},
		{roleAgent, []string{"--join", "x", "--raft-port", "1"}, "unknown flag: --raft-port"},
		{roleAgent, []string{"--join", "x", "--auth"}, "unknown flag: --auth"},
		{roleAgent, []string{"--join", "x", "--insecure-registry", "http://r:5000"}, `insecure-registry: "http://r:5000", want host or host:port (no scheme or path)`},
		{roleAgent, []string{"--join", "x", "--container-network", "dcos net"}, `container-network: "dcos net", want a network name of letters, digits and ._- (like dcos)`},
		{roleAgent, []string{"--join", "x", "--containerizer", "process", "--container-network", "dcos"}, `container-network dcos: named networks are names of the bridge network, which needs the runc containerizer and --bridge-subnet`},
		{roleAgent, []string{"--join", "x", "--bridge-subnet", "", "--container-network", "dcos"}, `container-network dcos: named networks are names of the bridge network, which needs the runc containerizer and --bridge-subnet`},
		{roleAgent, []string{"--join", "x", "--insecure-registry", "r:5000,"}, `insecure-registry: "", want host or host:port (no scheme or path)`},
		{roleMaster, []string{"--insecure-registry", "r:5000"}, "unknown flag: --insecure-registry"},
		{roleLB, []string{"--join", "x", "--insecure-registry", "r:5000"}, "unknown flag: --insecure-registry"},
		{roleUp, []string{"--auth", "--secure=false"}, "atoll up --auth --secure=false: the cluster's own agent and load balancer would have no token; tokens come with the secure cluster atoll up runs by default"},
		{roleUp, []string{"--secure=maybe"}, `invalid argument "maybe" for "--secure" flag: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{roleUp, []string{"--join-token", testJoinToken}, "unknown flag: --join-token"},
		{roleAgent, []string{"--join", "x", "--join-token", "atl_abc_def"}, "join-token: token is not an Atoll join token: " +
			"want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{roleAgent, []string{"--join-token", testJoinToken}, "join: an agent needs --join with the address of any node"},
		{roleMaster, []string{"--master-url", "ftp://m:1"}, `master-url: master URL "ftp://m:1": scheme "ftp", want https`},
		{roleLB, []string{"--join", "x", "--tls-san", "a b"}, `tls-san: "a b", want an IP address or a DNS name`},
	}
	for _, tt := range tests {
		t.Run(string(tt.role)+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := daemonConfig(tt.role, tt.args, func(string) string { return "" })
			var usage *usageError
			if !errors.As(err, &usage) || err.Error() != tt.want {
				t.Fatalf("err = %#v, want usage error %q", err, tt.want)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"bogus"}, 2, "atoll: unknown command \"bogus\" for \"atoll\"\nRun 'atoll --help' for usage.\n"},
		{[]string{"task", "bogus"}, 2, "atoll: unknown command \"bogus\" for \"atoll task\"\nRun 'atoll task --help' for usage.\n"},
		{[]string{"nodes", "extra"}, 2, "atoll: atoll nodes takes no arguments, got [\"extra\"]\nRun 'atoll nodes --help' for usage.\n"},
		{[]string{"tasks", "--bogus"}, 2, "atoll: unknown flag: --bogus\nRun 'atoll tasks --help' for usage.\n"},
		{[]string{"-o", "yaml", "members"}, 2, "atoll: --output \"yaml\": want table or json\nRun 'atoll members --help' for usage.\n"},
		{[]string{"--addr", "http://", "frameworks"}, 2, "atoll: --addr \"http://\": want a URL like http://host:5050\nRun 'atoll frameworks --help' for usage.\n"},
		{[]string{"task", "run"}, 2, "atoll: task run needs a command: atoll task run [flags] -- COMMAND [ARG...]\nRun 'atoll task run --help' for usage.\n"},
		{[]string{"task", "run", "--env", "NOVALUE", "--", "true"}, 2, "atoll: --env \"NOVALUE\": want NAME=value\nRun 'atoll task run --help' for usage.\n"},
		{[]string{"task", "run", "--cpus", "0", "true"}, 2, "atoll: --cpus 0: want more than 0\nRun 'atoll task run --help' for usage.\n"},
		{[]string{"task", "kill"}, 2, "atoll: task kill takes one task id, got 0 arguments\nRun 'atoll task kill --help' for usage.\n"},
		{[]string{"master", "--bootstrap-expect", "0"}, 2, "atoll: bootstrap-expect: 0, want at least 1\nRun 'atoll master --help' for usage.\n"},
		{[]string{"agent", "--work-dir", "/w"}, 2, "atoll: join: an agent needs --join with the address of any node\nRun 'atoll agent --help' for usage.\n"},
		{[]string{"--help"}, 0, ""},
		{[]string{"up", "--help"}, 0, ""},
		{[]string{"task"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a := newTestApp(t, nil)
			if code := a.runCLI(t, tt.args...); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d", code, tt.wantCode)
			}
			if got := a.stderr.String(); got != tt.wantStderr {
				t.Fatalf("stderr = %q, want %q", got, tt.wantStderr)
			}
			if tt.wantCode == 2 && a.stdout.String() != "" {
				t.Fatalf("stdout = %q, want nothing", a.stdout)
			}
		})
	}
}

func TestHelpListsDaemonFlags(t *testing.T) {
	a := newTestApp(t, nil)
	if code := a.runCLI(t, "agent", "--help"); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	for _, flag := range []string{"--join strings", "--work-dir string", "--agent-port int", "--log-format string"} {
		if !strings.Contains(a.stdout.String(), flag) {
			t.Errorf("agent --help lacks %q", flag)
		}
	}
}

func TestFailureExitsOne(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "missing token", http.StatusUnauthorized)
	}))
	defer srv.Close()
	a := newTestApp(t, nil)
	if code := a.runCLI(t, "--addr", srv.URL, "nodes"); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	if got, want := a.stderr.String(), "atoll: GET_STATE: 401 Unauthorized: missing token\n"; got != want {
		t.Fatalf("stderr = %q, want %q", got, want)
	}
}

func TestResolveAddr(t *testing.T) {
	tests := []struct {
		flag    string
		flagSet bool
		env     string
		want    string
		wantErr string
	}{
		{flag: defaultAddr, want: defaultAddr},
		{flag: defaultAddr, env: "http://198.18.0.1:5050", want: "http://198.18.0.1:5050"},
		{flag: "http://127.0.0.1:6000", flagSet: true, env: "http://198.18.0.1:5050", want: "http://127.0.0.1:6000"},
		{flag: "127.0.0.1:6000/", flagSet: true, want: "http://127.0.0.1:6000"},
		{flag: defaultAddr, env: "198.18.0.1:5050", want: "http://198.18.0.1:5050"},
		{flag: "https://m.example:443", flagSet: true, want: "https://m.example:443"},
		{flag: "ftp://x", flagSet: true, wantErr: `--addr "ftp://x": want a URL like http://host:5050`},
		{flag: defaultAddr, env: "http://", wantErr: `ATOLL_ADDR "http://": want a URL like http://host:5050`},
	}
	for _, tt := range tests {
		got, err := resolveAddr(tt.flag, tt.flagSet, tt.env)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("resolveAddr(%q, %v, %q) err = %v, want %q", tt.flag, tt.flagSet, tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolveAddr(%q, %v, %q) = %q, %v; want %q", tt.flag, tt.flagSet, tt.env, got, err, tt.want)
		}
	}
}

// TestAddrPrecedence checks which master the commands talk to: --addr over ATOLL_ADDR.
func TestAddrPrecedence(t *testing.T) {
	master := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"type":"GET_MEMBERS","get_members":{"members":[{"name":"` + name + `","addr":"127.0.0.1","port":7946,"status":"alive"}]}}`))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	fromEnv, fromFlag := master("env-master"), master("flag-master")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"members"}, "env-master"},
		{[]string{"--addr", fromFlag.URL, "members"}, "flag-master"},
		{[]string{"members", "--addr", fromFlag.URL}, "flag-master"},
	}
	for _, tt := range tests {
		a := newTestApp(t, map[string]string{addrEnv: fromEnv.URL})
		if code := a.runCLI(t, tt.args...); code != 0 {
			t.Fatalf("%v: exit code %d", tt.args, code)
		}
		if !strings.Contains(a.stdout.String(), tt.want) {
			t.Errorf("%v: output %q, want rows from %s", tt.args, a.stdout, tt.want)
		}
	}
}
