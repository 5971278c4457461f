package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestJobCommands(t *testing.T) {
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			jobs.Attach(m, jobs.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	eventually(t, "the jobs API answers", func() error {
		if code, _, errOut := cliRunQuiet(t, ts.URL, "job", "list"); code != 0 {
			return fmt.Errorf("job list: %s", errOut)
		}
		return nil
	})
	def := writeFile(t, "job.json", `{"name": "hello", "command": "echo hi", "schedule": "R0//PT1H"}`)
	if code, out, errOut := cliRun(t, ts.URL, "job", "add", def); code != 0 || out != "job hello added\n" {
		t.Fatalf("job add = %d %q %q", code, out, errOut)
	}
	_, out, _ := cliRun(t, ts.URL, "job", "list")
	// The schedule's start is the time the job was stored: compared by its shape.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	wantHeader := []string{"NAME", "SCHEDULE", "PARENTS", "ENABLED", "SUCCESSES", "ERRORS", "LAST", "SUCCESS", "LAST", "ERROR"}
	if len(lines) != 2 || !slices.Equal(strings.Fields(lines[0]), wantHeader) {
		t.Fatalf("job list:\n%s", out)
	}
	row := strings.Fields(lines[1])
	if len(row) != 8 || row[0] != "hello" || !strings.HasPrefix(row[1], "R0/") || !strings.HasSuffix(row[1], "Z/PT1H") ||
		!slices.Equal(row[2:], []string{"-", "true", "0", "0", "-", "-"}) {
		t.Errorf("job list row %q", row)
	}
	if code, out, _ := cliRun(t, ts.URL, "job", "run", "hello"); code != 0 || out != "job hello started\n" {
		t.Fatalf("job run = %d %q", code, out)
	}
	eventually(t, "the run succeeded", func() error {
		_, out, _ := cliRunQuiet(t, ts.URL, "job", "show", "hello")
		if !strings.Contains(out, "Successes             1\n") {
			return fmt.Errorf("job show:\n%s", out)
		}
		return nil
	})
	if code, out, _ := cliRun(t, ts.URL, "job", "show", "hello", "-o", "json"); code != 0 || !strings.Contains(out, `"name":"hello"`) && !strings.Contains(out, `"name": "hello"`) {
		t.Errorf("job show -o json = %d %s", code, out)
	}
	bad := writeFile(t, "bad.json", `{"name": "bad name!", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT1H"}`)
	if code, _, errOut := cliRunQuiet(t, ts.URL, "job", "add", bad); code != 1 || !strings.Contains(errOut, "400") {
		t.Errorf("job add of a bad name = %d %q, want exit 1 and the 400", code, errOut)
	}
	if code, out, _ := cliRun(t, ts.URL, "job", "remove", "hello"); code != 0 || out != "job hello removed\n" {
		t.Fatalf("job remove = %d %q", code, out)
	}
	if code, _, errOut := cliRunQuiet(t, ts.URL, "job", "show", "hello"); code != 1 || errOut != "atoll: no job \"hello\" (see atoll job list)\n" {
		t.Errorf("job show of a removed job = %d %q", code, errOut)
	}
}

// cliRunQuiet is cliRun for commands expected to fail, or polled.
func cliRunQuiet(t testing.TB, addr string, args ...string) (int, string, string) {
	t.Helper()
	a := newTestApp(t, map[string]string{addrEnv: addr})
	a.now = time.Now
	code := a.runCLI(t, args...)
	return code, a.stdout.String(), a.stderr.String()
}
