package tui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/master"
)

// idleChildEnv names the master a re-executed test binary shows the UI of (see
// runIdleChild); TestMain runs it instead of the tests when it is set.
const idleChildEnv = "ATOLL_TUI_IDLE_MASTER"

// BenchmarkIdleCPU is issue 10's idle figure: the CPU the UI uses, as a percentage of one
// core, while it shows a cluster of 1,000 apps and 10,000 running tasks in which nothing
// happens. The UI runs in a process of its own (this test binary re-executed, its screen
// drawn to nowhere at 200×50), so that its CPU is not mixed with the master's; the
// master's services framework runs the tasks on simulated agents.
//
//	go test -run XXX -bench IdleCPU -benchtime 1x -timeout 20m ./tui
func BenchmarkIdleCPU(b *testing.B) {
	const (
		apps      = 1000
		instances = 10
		settle    = 15 * time.Second
		window    = 30 * time.Second
	)
	ts := master.NewTestServer(b, func(c *master.Config) {
		c.Logger = slog.New(slog.DiscardHandler)
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger})
		})
	})
	for i := range 20 {
		master.StartSimulatedAgent(b, ts.URL, fmt.Sprintf("sim-%d", i), simResources(1000, 1<<20, 1<<20))
	}
	client := marathon.NewClient(ts.URL)
	ctx := context.Background()
	start := time.Now()
	for i := range apps {
		def := fmt.Sprintf(`{"id": "/bench/app-%04d", "cmd": "sleep 1000", "instances": %d, "cpus": 0.01, "mem": 1, "disk": 0, "portDefinitions": []}`, i, instances)
		if _, err := client.CreateApp(ctx, []byte(def), false); err != nil {
			b.Fatalf("create app %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for running(ts) < apps*instances {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d tasks running after 10 minutes", running(ts), apps*instances)
		}
		time.Sleep(time.Second)
	}
	b.Logf("%d apps, %d tasks running after %v", apps, apps*instances, time.Since(start).Round(time.Second))

	for range b.N {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), idleChildEnv+"="+ts.URL)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		// The first paint and the first reads of 10,000 tasks are done well within this.
		time.Sleep(settle)
		before := cpuTicks(b, cmd.Process.Pid)
		b.ResetTimer()
		time.Sleep(window)
		b.StopTimer()
		used := cpuTicks(b, cmd.Process.Pid) - before
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("the UI process: %v: %s", err, stderr.Bytes())
		}
		screen := stdout.String()
		if want := fmt.Sprintf("%d", apps*instances); !strings.Contains(screen, want) {
			b.Fatalf("the UI's screen does not show the %s tasks:\n%s", want, screen)
		}
		b.ReportMetric(100*float64(used)/clockTicks/window.Seconds(), "idle-cpu-%")
	}
}

// running counts the master's running tasks.
func running(ts *master.TestServer) int {
	n := 0
	for _, t := range ts.Store().Tasks() {
		if t.State == api.TaskRunning {
			n++
		}
	}
	return n
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// cpuTicks is a process's user and system CPU time so far, in clock ticks.
func cpuTicks(tb testing.TB, pid int) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	// utime and stime are fields 14 and 15, that is 11 and 12 after the state (field 3).
	if len(fields) < 13 {
		tb.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	var total int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: %q: %v", pid, data, err)
		}
		total += n
	}
	return total
}

// runIdleChild shows the UI of the master at addr, as `atoll tui` does, drawn to nowhere
// at 200×50, until SIGTERM; it returns the exit code.
func runIdleChild(addr string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := DefaultConfig()
	cfg.API = api.NewClient(addr)
	cfg.Marathon = marathon.NewClient(addr, marathon.WithTimeout(cfg.RequestTimeout))
	cfg.Chronos = chronos.NewClient(addr, chronos.WithTimeout(cfg.RequestTimeout))
	cfg.Universe = universe.NewClient(addr, universe.WithTimeout(cfg.RequestTimeout))
	cfg.Addr = addr
	m, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer m.Close()
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(nil), tea.WithOutput(io.Discard), tea.WithoutSignalHandler())
	go p.Send(tea.WindowSizeMsg{Width: 200, Height: 50})
	if _, err := p.Run(); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The screen it ended on, for the benchmark to check what was shown.
	fmt.Print(m.View())
	return 0
}
