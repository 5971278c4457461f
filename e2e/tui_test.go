package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// Terminal size of the TUI under test: wide enough that no column of the app and task
// views is dropped.
const (
	termWidth  = 120
	termHeight = 40
)

// screenTimeout bounds the wait for something to show on the TUI's screen: generous, as
// it includes deployments and a failover on a loaded machine.
const screenTimeout = 2 * time.Minute

// terminal is `atoll tui` running in a tmux session of its own tmux server (a private
// socket), driven with send-keys and read with capture-pane.
type terminal struct {
	t    testing.TB
	sock string
	last string
}

// requireTmux skips the test without tmux, or fails it under CI=true.
func requireTmux(t testing.TB) {
	t.Helper()
	if onPath("tmux") {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("e2e: the TUI test cannot run under CI=true: needs tmux (apt-get install tmux)")
	}
	t.Skip("e2e: the TUI test skipped: needs tmux (apt-get install tmux)")
}

// startTUI runs `atoll tui --addr addr` in a detached tmux session of termWidth ×
// termHeight. The session's shell reports the exit of atoll tui on screen instead of
// closing, so a crash shows in the capture. The tmux server is killed when the test ends.
func startTUI(t testing.TB, bin, addr string) *terminal {
	t.Helper()
	term := &terminal{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	script := fmt.Sprintf("%q tui --addr %q; echo \"[atoll tui exited: $?]\"; sleep 3600", bin, addr)
	if out, err := term.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", fmt.Sprint(termWidth), "-y", fmt.Sprint(termHeight), "sh", "-c", script); err != nil {
		t.Fatalf("e2e: start tmux: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e: the TUI's last screen:\n%s", term.last)
		}
		if out, err := term.tmux("kill-server"); err != nil {
			t.Errorf("e2e: kill the tmux server: %v: %s", err, out)
		}
	})
	return term
}

// tmux runs a tmux command against the test's server.
func (term *terminal) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-S", term.sock}, args...)...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// capture is the screen as it is now.
func (term *terminal) capture() string {
	term.t.Helper()
	out, err := term.tmux("capture-pane", "-p", "-t", "tui")
	if err != nil {
		term.t.Fatalf("e2e: capture the TUI's screen: %v: %s", err, out)
	}
	term.last = out
	return out
}

// typeText types text, then the named keys (tmux key names: Enter, Escape).
func (term *terminal) typeText(text string, keys ...string) {
	term.t.Helper()
	if text != "" {
		if out, err := term.tmux("send-keys", "-t", "tui", "-l", "--", text); err != nil {
			term.t.Fatalf("e2e: type %q: %v: %s", text, err, out)
		}
	}
	if len(keys) > 0 {
		if out, err := term.tmux(append([]string{"send-keys", "-t", "tui"}, keys...)...); err != nil {
			term.t.Fatalf("e2e: keys %q: %v: %s", keys, err, out)
		}
	}
}

// waitFor polls the screen until cond accepts it, and returns it.
func (term *terminal) waitFor(what string, cond func(screen string) error) string {
	term.t.Helper()
	deadline := time.Now().Add(screenTimeout)
	for {
		screen := term.capture()
		err := cond(screen)
		if err == nil {
			return screen
		}
		if strings.Contains(screen, "[atoll tui exited:") {
			term.t.Fatalf("e2e: waiting for %s, atoll tui exited:\n%s", what, screen)
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("e2e: the TUI did not show %s within %v: %v\n%s", what, screenTimeout, err, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until the screen shows every text of want.
func (term *terminal) waitText(want ...string) string {
	term.t.Helper()
	return term.waitFor(fmt.Sprintf("%q", want), func(screen string) error {
		for _, w := range want {
			if !strings.Contains(screen, w) {
				return fmt.Errorf("no %q", w)
			}
		}
		return nil
	})
}

// runningRows counts the lines of a task view that show a RUNNING task of app.
func runningRows(screen, app string) int {
	n := 0
	for _, line := range strings.Split(screen, "\n") {
		if strings.Contains(line, app+".") && strings.Contains(line, " RUNNING ") {
			n++
		}
	}
	return n
}

// TestTUIScaleAndFailover drives `atoll tui` in tmux against a three-master cluster,
// through a follower (which forwards to the leader): an app created with one instance
// through the API is scaled to three from the TUI's app view (s, the new count, enter),
// and the task view shows three RUNNING tasks. Then the leading master is killed: the TUI
// says it is reconnecting, and then shows the cluster again, read from the new leader:
// connected, the new leader named, the app at 3/3 with its three tasks RUNNING.
func TestTUIScaleAndFailover(t *testing.T) {
	t.Parallel()
	requireTmux(t)
	c := NewCluster(t)
	masters := c.StartMasters(3)
	c.StartAgents(1)
	leader := c.WaitForLeader()
	c.WaitForAgents(1)
	follower := others(masters, leader)[0]

	const id = "/tui-scale"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := watchApp(t, c, id)
	if err := marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v2/apps", map[string]any{
		"id": id, "cmd": "exec sleep 3600", "cpus": taskCPUs, "mem": 16, "instances": 1,
	}, nil); err != nil {
		t.Fatal(err)
	}
	running := func(n int) func(appSnapshot) bool {
		return func(s appSnapshot) bool {
			live := s.live()
			for _, task := range live {
				if task.State != string(api.TaskRunning) {
					return false
				}
			}
			return len(live) == n && s.app.Instances == n
		}
	}
	w.waitUntil(3*time.Minute, "1 task running", running(1))

	term := startTUI(t, c.Bin(), follower.APIURL())
	term.waitText("● connected", "leader "+leader.Name())
	term.typeText(":apps tui-scale", "Enter")
	term.waitText("overview › apps  1/1", "> /tui-scale", "1/1")
	term.typeText("s")
	term.waitText("scale /tui-scale to (now 1):")
	term.typeText("3", "Enter")
	term.waitText("> /tui-scale", "3/3")
	w.waitUntil(3*time.Minute, "3 tasks running", running(3))
	term.typeText(":tasks tui-scale", "Enter")
	term.waitFor("3 RUNNING tasks of /tui-scale", func(screen string) error {
		if n := runningRows(screen, "tui-scale"); n != 3 {
			return fmt.Errorf("%d RUNNING rows", n)
		}
		return nil
	})

	if err := leader.Proc().Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	term.waitText("reconnecting…")
	next := c.WaitForLeaderOtherThan(leader)
	screen := term.waitFor("the cluster again, from "+next.Name(), func(screen string) error {
		switch {
		case !strings.Contains(screen, "● connected"):
			return errors.New("not connected")
		case strings.Contains(screen, "reconnecting"):
			return errors.New("a stream is reconnecting")
		case !strings.Contains(screen, "leader "+next.Name()):
			return fmt.Errorf("the header does not name %s", next.Name())
		case runningRows(screen, "tui-scale") != 3:
			return fmt.Errorf("%d RUNNING rows", runningRows(screen, "tui-scale"))
		}
		return nil
	})
	t.Logf("the TUI showed the cluster again %v after the leader %s was killed (%s leads):\n%s", time.Since(killed), leader.Name(), next.Name(), screen)
	term.typeText(":apps", "Enter")
	term.waitText("> /tui-scale", "3/3", "Running")
	var reply struct {
		App marathon.AppInfo `json:"app"`
	}
	if err := marathonAnyMaster(ctx, c, http.MethodGet, "/v2/apps"+id, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.App.Instances != 3 || reply.App.TasksRunning == nil || *reply.App.TasksRunning != 3 {
		t.Errorf("after the failover %s has %d instances, %v running; want 3 and 3", id, reply.App.Instances, reply.App.TasksRunning)
	}
}
