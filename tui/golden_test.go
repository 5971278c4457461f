package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/exp/golden"
)

// TestViews draws every view of a real cluster and compares the screens with
// testdata/TestViews/*.golden (regenerate them with go test -run TestViews -update): ids
// and loopback ports are masked, the clock is fixed and colour is off.
func TestViews(t *testing.T) {
	c := newTestCluster(t)
	tests := []struct {
		name          string
		width, height int
		keys          []string
		// want is what the screen must show before it is taken: the data has arrived.
		want []string
	}{
		{name: "overview", width: 80, height: 24, want: []string{"connected", "host-1", "waiting 1", "idle 3"}},
		{name: "overview-wide", width: 160, height: 40, want: []string{"connected", "host-1", "waiting 1", "idle 3"}},
		{name: "apps", width: 80, height: 24, keys: cmdKeys("apps"), want: []string{"Waiting", "Suspended", "2/2"}},
		{name: "app-waiting", width: 100, height: 24, keys: append(cmdKeys("apps"), "enter"), want: []string{"not enough cpus: 2 of 2 offers declined"}},
		{name: "app-tasks", width: 120, height: 24, keys: append(cmdKeys("apps web"), "enter"), want: []string{"running 2", "RUNNING"}},
		{name: "task", width: 120, height: 24, keys: append(cmdKeys("tasks db"), "enter"), want: []string{"STATUS UPDATES", "RUNNING"}},
		{name: "tasks", width: 160, height: 24, keys: cmdKeys("tasks"), want: []string{"db.", "web."}},
		{name: "tasks-narrow", width: 80, height: 24, keys: cmdKeys("tasks"), want: []string{"/db", "/web"}},
		{name: "agents", width: 160, height: 24, keys: cmdKeys("agents"), want: []string{"host-0", "host-1", "1.0G/2.0G"}},
		{name: "agent-tasks", width: 160, height: 24, keys: append(cmdKeys("agents"), "enter"), want: []string{"tasks of agent host-0", "web."}},
		{name: "frameworks", width: 160, height: 24, keys: cmdKeys("frameworks"), want: []string{"chronos", "marathon"}},
		{name: "deployments", width: 120, height: 24, keys: cmdKeys("deployments"), want: []string{"/big"}},
		{name: "jobs", width: 120, height: 24, keys: cmdKeys("jobs"), want: []string{"nightly", "after nightly", "false"}},
		{name: "job", width: 120, height: 24, keys: append(cmdKeys("jobs"), "enter"), want: []string{"job nightly", "no runs yet"}},
		{name: "job-json", width: 80, height: 30, keys: append(cmdKeys("jobs"), "d"), want: []string{`"name": "nightly"`}},
		{name: "pkgs", width: 80, height: 24, keys: cmdKeys("pkgs"), want: []string{"the package catalog is not available on this master"}},
		{name: "nodes", width: 120, height: 24, keys: cmdKeys("nodes"), want: []string{"master-1", "leader"}},
		{name: "help", width: 80, height: 40, keys: append(cmdKeys("apps"), "?"), want: []string{"THIS PAGE", "scale the app"}},
		{name: "command-line", width: 80, height: 24, keys: []string{":", "a"}, want: []string{":a_ agents apps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := startTUI(t, c.testConfig(), tt.width, tt.height)
			u.waitReady()
			u.keys(tt.keys...)
			screen := u.waitScreen(tt.want...)
			golden.RequireEqual(t, []byte(mask(screen)+"\n"))
		})
	}

	// An action from the TUI, and the events it causes.
	t.Run("events", func(t *testing.T) {
		u := startTUI(t, c.testConfig(), 120, 24)
		u.waitReady()
		u.keys(append(cmdKeys("apps db"), "s")...)
		u.waitScreen("scale /db to (now 1): _")
		u.keys("2", "enter")
		u.waitScreen("scaling /db to 2", "2/2")
		u.keys(cmdKeys("events deployment")...)
		u.waitScreen("deployment_success")
		// The cursor stays on the event it was on as newer ones arrive: to the top.
		u.keys("g")
		screen := u.waitScreen("1/3", ">   0s  marathon  deployment_success")
		golden.RequireEqual(t, []byte(mask(screen)+"\n"))
	})
}

// cmdKeys is the keys that run a command line.
func cmdKeys(line string) []string {
	return append(append([]string{":"}, typed(line)...), "enter")
}

// TestGoldenMask: the mask keeps widths and hides what changes between runs.
func TestGoldenMask(t *testing.T) {
	in := "web.22c34211-9fc7-4a2e-87f8-a7be7ddb782a web.22c34211-9fc7-4a… deployment ac6486e8 host 127.0.0.1:41827 mem 1024 cafe"
	want := "web.xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx web.xxxxxxxx-xxxx-xx… deployment xxxxxxxx host 127.0.0.1:xxxxx mem 1024 cafe"
	if got := mask(in); got != want || len(got) != len(in) {
		t.Errorf("mask(%q) = %q, want %q", in, got, want)
	}
	if strings.Contains(mask("\x1b[1m"), "x") {
		t.Error("mask touched an escape sequence")
	}
}
