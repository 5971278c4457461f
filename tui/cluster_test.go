package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	// The process containerizer re-executes this test binary as each task's supervisor.
	isolate.RunShimIfRequested()
	if addr := os.Getenv(idleChildEnv); addr != "" {
		os.Exit(runIdleChild(addr))
	}
	os.Exit(m.Run())
}

// testTimeout bounds every wait: generous, for a loaded 2-core machine.
const testTimeout = 60 * time.Second

// eventually polls cond until it returns nil, failing the test after testTimeout.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, testTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withFrameworks attaches the services and jobs frameworks to a test master.
func withFrameworks(c *master.Config) {
	c.Extensions = append(c.Extensions, func(m *master.Master) {
		services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		jobs.Attach(m, jobs.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
	})
}

// simResources is what a simulated agent offers.
func simResources(cpus, mem, disk float64) []api.Resource {
	return []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: cpus}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: mem}},
		{Name: "disk", Type: api.Scalar, Scalar: &api.ValueScalar{Value: disk}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31100}}}},
	}
}

// testCluster is a master with the services and jobs frameworks, two simulated agents,
// apps pinned to them, and jobs that do not run by themselves.
type testCluster struct {
	t        testing.TB
	master   *master.TestServer
	marathon *marathon.Client
	chronos  *chronos.Client
	// cosmos is the catalog's client, on a cluster with the catalog.
	cosmos *universe.Client
	// epoch is before anything in the cluster happened: the TUI's clock is 100 days later,
	// so every age it shows of the cluster's times is "99d".
	epoch time.Time
}

func newTestCluster(t testing.TB) *testCluster {
	t.Helper()
	epoch := time.Now()
	ts := master.NewTestServer(t, withFrameworks)
	c := &testCluster{t: t, master: ts, marathon: marathon.NewClient(ts.URL), chronos: chronos.NewClient(ts.URL), epoch: epoch}
	master.StartSimulatedAgent(t, ts.URL, "host-0", simResources(4, 4096, 10000))
	master.StartSimulatedAgent(t, ts.URL, "host-1", simResources(2, 2048, 5000))
	ctx := context.Background()
	eventually(t, "two agents and the Marathon API", func() error {
		if n := len(ts.Store().Agents()); n != 2 {
			return fmt.Errorf("%d agents", n)
		}
		_, err := c.marathon.ListApps(ctx)
		return err
	})
	for _, def := range []string{
		`{"id": "/web", "cmd": "web --port $PORT0", "instances": 2, "cpus": 0.5, "mem": 128, "disk": 0, "constraints": [["hostname", "CLUSTER", "host-0"]]}`,
		`{"id": "/db", "cmd": "db", "instances": 1, "cpus": 1, "mem": 1024, "disk": 100, "constraints": [["hostname", "CLUSTER", "host-1"]]}`,
		`{"id": "/big", "cmd": "big", "instances": 1, "cpus": 64, "mem": 64}`,
		`{"id": "/idle", "cmd": "idle", "instances": 0, "cpus": 0.1, "mem": 32}`,
	} {
		if _, err := c.marathon.CreateApp(ctx, []byte(def), false); err != nil {
			t.Fatalf("create app %s: %v", def, err)
		}
	}
	c.waitRunning("/web", 2)
	c.waitRunning("/db", 1)
	eventually(t, "the queue says why /big waits", func() error {
		q, err := c.marathon.Queue(ctx)
		if err != nil {
			return err
		}
		for _, item := range q {
			if item.Value.App != nil && item.Value.App.ID == "/big" && item.Value.ProcessedOffersSummary.UnusedOffersCount > 0 {
				return nil
			}
		}
		return errors.New("/big is not waiting with declined offers")
	})
	never := "R0/2030-01-01T00:00:00.000Z/PT1H"
	for _, j := range []chronos.Job{
		{Name: "nightly", Command: "backup --all", Cron: "0 3 * * *", ScheduleTimeZone: "UTC"},
		{Name: "report", Command: "report", Parents: []string{"nightly"}},
		{Name: "old", Command: "old", Schedule: never, Disabled: true},
	} {
		if err := c.chronos.PutJob(ctx, j); err != nil {
			t.Fatalf("put job %s: %v", j.Name, err)
		}
	}
	return c
}

// waitRunning waits until an app has n running tasks.
func (c *testCluster) waitRunning(id string, n int) {
	c.t.Helper()
	eventually(c.t, fmt.Sprintf("%s runs %d tasks", id, n), func() error {
		a, err := c.marathon.GetApp(context.Background(), id)
		if err != nil {
			return err
		}
		if a.Value.TasksRunning == nil || *a.Value.TasksRunning != n || len(a.Value.Deployments) > 0 {
			return fmt.Errorf("%d running, deployments %v", deref(a.Value.TasksRunning), a.Value.Deployments)
		}
		return nil
	})
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// testConfig is a configuration for the cluster with a fixed clock and no colour.
func (c *testCluster) testConfig() Config {
	cfg := DefaultConfig()
	cfg.API = api.NewClient(c.master.URL)
	cfg.Marathon = marathon.NewClient(c.master.URL, marathon.WithTimeout(cfg.RequestTimeout))
	cfg.Chronos = chronos.NewClient(c.master.URL, chronos.WithTimeout(cfg.RequestTimeout))
	cfg.Universe = universe.NewClient(c.master.URL, universe.WithTimeout(cfg.RequestTimeout))
	cfg.Addr = "http://master:5050"
	now := c.epoch.Add(100 * 24 * time.Hour)
	cfg.Now = func() time.Time { return now }
	cfg.Renderer = plainRenderer()
	cfg.RefreshDelay = 50 * time.Millisecond
	return cfg
}

// plainRenderer renders without colour or attributes, as with NO_COLOR.
func plainRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

// screenMsg asks the running program for its screen.
type screenMsg struct{ reply chan string }

// probe wraps the model so that a test can read the screen of the running program.
type probe struct{ m *Model }

func (p probe) Init() tea.Cmd { return p.m.Init() }

func (p probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if s, ok := msg.(screenMsg); ok {
		s.reply <- p.m.View()
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p probe) View() string { return p.m.View() }

// tui is the TUI running as a program against a cluster, driven by keys.
type tui struct {
	t  testing.TB
	tm *teatest.TestModel
	m  *Model
}

func startTUI(t testing.TB, cfg Config, width, height int) *tui {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(width, height))
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = tm.Quit()
			tm.WaitFinished(t, teatest.WithFinalTimeout(testTimeout))
			m.Close()
		})
	}
	t.Cleanup(stop)
	return &tui{t: t, tm: tm, m: m}
}

// screen reads the program's screen.
func (u *tui) screen() string {
	reply := make(chan string, 1)
	u.tm.Send(screenMsg{reply})
	select {
	case s := <-reply:
		return s
	case <-time.After(testTimeout):
		u.t.Fatal("the program does not answer")
		return ""
	}
}

// waitScreen waits until the screen shows every text of want, and returns it.
func (u *tui) waitScreen(want ...string) string {
	u.t.Helper()
	var s string
	eventually(u.t, fmt.Sprintf("the screen shows %q", want), func() error {
		s = u.screen()
		for _, w := range want {
			if !strings.Contains(s, w) {
				return fmt.Errorf("no %q on\n%s", w, s)
			}
		}
		return nil
	})
	return s
}

// waitReady waits until the overview shows the whole test cluster: every stream and
// read has answered, so that keys find what they act on.
func (u *tui) waitReady() {
	u.t.Helper()
	u.waitScreen("leader master-1 · dev", "● connected", "APPS       4  running 2 · waiting 1 · suspended 1", "JOBS       3", "host-1")
}

// keys types keys: text, or names like "enter", "esc", "ctrl+k" in angle brackets.
func (u *tui) keys(seq ...string) {
	for _, k := range seq {
		u.tm.Send(keyMsg(k))
	}
}

// keyMsg makes the key message for a key name ("enter", "ctrl+d") or one character.
func keyMsg(k string) tea.KeyMsg {
	named := map[string]tea.KeyType{
		"enter": tea.KeyEnter, "esc": tea.KeyEsc, "tab": tea.KeyTab, "up": tea.KeyUp, "down": tea.KeyDown,
		"backspace": tea.KeyBackspace, "ctrl+d": tea.KeyCtrlD, "ctrl+k": tea.KeyCtrlK, "ctrl+c": tea.KeyCtrlC,
		"pgdown": tea.KeyPgDown, "pgup": tea.KeyPgUp, "home": tea.KeyHome, "end": tea.KeyEnd, "space": tea.KeySpace,
		"shift+tab": tea.KeyShiftTab, "left": tea.KeyLeft, "right": tea.KeyRight, "ctrl+u": tea.KeyCtrlU,
	}
	if t, ok := named[k]; ok {
		return tea.KeyMsg{Type: t}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// typed is the key messages of text typed.
func typed(text string) []string {
	var out []string
	for _, r := range text {
		out = append(out, string(r))
	}
	return out
}

var (
	// uuidPattern matches uuids, and what is left of them where a column cuts them.
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}(-[0-9a-f]{1,12})+`)
	hex8Pattern = regexp.MustCompile(`\b[0-9a-f]{8}\b`)
	portPattern = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// mask replaces what differs between runs (uuids, whole or cut, their first parts, and
// loopback ports) with x's of the same width.
func mask(screen string) string {
	x := func(s string) string { return regexp.MustCompile(`[0-9a-f]`).ReplaceAllString(s, "x") }
	screen = uuidPattern.ReplaceAllStringFunc(screen, x)
	screen = hex8Pattern.ReplaceAllStringFunc(screen, x)
	return portPattern.ReplaceAllStringFunc(screen, func(s string) string {
		return "127.0.0.1:" + strings.Repeat("x", len(s)-len("127.0.0.1:"))
	})
}
