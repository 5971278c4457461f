package agent

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

// userLaunch launches command as a task of a framework of user frameworkUser; the
// command names commandUser unless it is empty.
func userLaunch(taskID, command, frameworkUser, commandUser string) api.AgentEvent {
	ev := launchEvent(taskID, command)
	ev.Launch.FrameworkInfo.User = frameworkUser
	if commandUser != "" {
		ev.Launch.Task.Command.User = &commandUser
	}
	return ev
}

// uidOf is the uid of the user name on the host.
func uidOf(t *testing.T, name string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("the test needs the user %s: %v", name, err)
	}
	return u.Uid
}

// ownerOf is the uid that owns path.
func ownerOf(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10)
}

// TestTaskUser: a task whose command and framework name no user runs as the agent's
// TaskUser, nobody by default, in a sandbox that is that user's, with its output
// captured, on the host's filesystem with either containerizer; a named user, root
// included, is kept.
func TestTaskUser(t *testing.T) {
	requireRoot(t)
	if got := DefaultConfig().TaskUser; got != "nobody" {
		t.Fatalf("DefaultConfig().TaskUser = %q as root, want nobody", got)
	}
	type run struct {
		frameworkUser, cmdUser string
		wantUser               string
	}
	tests := []struct {
		name string
		// taskUser sets the agent's TaskUser unless it is "default".
		taskUser string
		runc     bool
		runs     []run
	}{
		{name: "default", taskUser: "default", runs: []run{
			{wantUser: "nobody"},
			{frameworkUser: "daemon", wantUser: "daemon"},
			{frameworkUser: "root", wantUser: "root"},
		}},
		{name: "daemon", taskUser: "daemon", runs: []run{
			{wantUser: "daemon"},
			{frameworkUser: "nobody", cmdUser: "root", wantUser: "root"},
		}},
		{name: "the agent's own", taskUser: "", runs: []run{{wantUser: "root"}}},
		{name: "default/runc", taskUser: "default", runc: true, runs: []run{
			{wantUser: "nobody"},
			{frameworkUser: "root", wantUser: "root"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each agent is on its own; the runc ones share a cgroup parent.
			if !tc.runc {
				t.Parallel()
			}
			peer := newProtocolPeer(t)
			workDir := t.TempDir()
			opts := []func(*Config){withWorkDir(workDir)}
			if tc.taskUser != "default" {
				opts = append(opts, func(c *Config) { c.TaskUser = tc.taskUser })
			}
			if tc.runc {
				opts = append(opts, withRunc(t, workDir, nil))
			}
			a := TestAgent(t, peer.masters, opts...)
			peer.nextSubscribe()
			for i, r := range tc.runs {
				what := fmt.Sprintf("task of framework user %q, command user %q", r.frameworkUser, r.cmdUser)
				taskID := fmt.Sprintf("whoami-%d", i)
				peer.send(userLaunch(taskID, "id -u; echo written > owned", r.frameworkUser, r.cmdUser))
				running := peer.nextUpdate()
				wantUpdate(t, running, taskID, api.TaskRunning)
				sandbox := a.Tasks()[0].Sandbox
				peer.ack(running)
				if u := peer.nextUpdate(); u.Status.State != api.TaskFinished {
					t.Fatalf("%s ended %s (%s), want TASK_FINISHED", what, u.Status.State, u.Status.Message)
				} else {
					peer.ack(u)
				}
				uid := uidOf(t, r.wantUser)
				if got := readSandboxFile(t, sandbox, "stdout"); got != uid+"\n" {
					t.Errorf("%s: stdout = %q, want %s's uid %s", what, got, r.wantUser, uid)
				}
				for _, name := range []string{"", "stdout", "owned"} {
					if got := ownerOf(t, filepath.Join(sandbox, name)); got != uid {
						t.Errorf("%s: sandbox/%s belongs to uid %s, want %s's %s", what, name, got, r.wantUser, uid)
					}
				}
				waitUntil(t, "the task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
			}
		})
	}
}

// readSandboxFile is the content of a file in a sandbox.
func readSandboxFile(t *testing.T, sandbox, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sandbox, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestTaskUserUnknown: a task of a user the host does not have fails, saying which.
func TestTaskUserUnknown(t *testing.T) {
	requireRoot(t)
	peer := newProtocolPeer(t)
	TestAgent(t, peer.masters)
	peer.nextSubscribe()
	peer.send(userLaunch("ghost-user", "true", "no-such-user", ""))
	u := peer.nextUpdate()
	wantUpdate(t, u, "ghost-user", api.TaskFailed)
	s := u.Status
	const want = `user "no-such-user": user: unknown user no-such-user`
	if s.Reason != api.ReasonContainerLaunchFailed || s.Source != api.SourceAgent || !strings.HasSuffix(s.Message, want) {
		t.Fatalf("status %s from %s: %q; want REASON_CONTAINER_LAUNCH_FAILED from the agent ending %q", s.Reason, s.Source, s.Message, want)
	}
}

// TestTaskUserConfig: the agent refuses a task user the host does not have, or one it
// could not switch to, when its config is validated.
func TestTaskUserConfig(t *testing.T) {
	self, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	otherUserErr := ""
	if os.Geteuid() != 0 {
		otherUserErr = `agent config: TaskUser: tasks can run as user "nobody" only when the agent runs as root`
	}
	tests := []struct {
		taskUser string
		want     string
	}{
		{taskUser: ""},
		{taskUser: self.Username},
		{taskUser: "nobody", want: otherUserErr},
		{taskUser: "no-such-user", want: `agent config: TaskUser: no user "no-such-user" on this host`},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		cfg.WorkDir = t.TempDir()
		cfg.Masters = func() []string { return nil }
		cfg.Containerizer = &isolate.Process{}
		cfg.TaskUser = tc.taskUser
		err := cfg.Validate()
		if got := errString(err); got != tc.want {
			t.Errorf("Validate with TaskUser %q = %q, want %q", tc.taskUser, got, tc.want)
		}
		if tc.want == "" {
			continue
		}
		if _, err := New(cfg); errString(err) != tc.want {
			t.Errorf("New with TaskUser %q = %v, want %q", tc.taskUser, err, tc.want)
		}
	}
}

// errString is err's message, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
