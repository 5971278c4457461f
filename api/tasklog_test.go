package api_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	// The process containerizer re-executes this test binary as each task's supervisor.
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// logTimeout bounds every wait of the task log tests: generous, for a loaded machine.
const logTimeout = 60 * time.Second

// syncBuilder is a strings.Builder a test may read while a follower writes to it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logCluster is a master running the jobs framework and one agent whose process
// containerizer rotates task output at rotateAt bytes (0: never).
type logCluster struct {
	t      testing.TB
	client *api.Client
	jobs   *chronos.Client
}

func newLogCluster(t testing.TB, rotateAt int64) *logCluster {
	t.Helper()
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			jobs.Attach(m, jobs.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) {
		pc := isolate.DefaultProcessConfig()
		pc.StateDir = filepath.Join(cfg.WorkDir, "containers")
		pc.Logger = cfg.Logger
		if rotateAt > 0 {
			pc.TaskLogs = isolate.LogRotation{MaxSize: rotateAt, Keep: 2}
		}
		c, err := isolate.NewProcess(pc)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Containerizer = c
	})
	return &logCluster{t: t, client: api.NewClient(ts.URL), jobs: chronos.NewClient(ts.URL)}
}

// run runs command once as a job and returns the id of its task once the agent has
// reported its sandbox.
func (c *logCluster) run(name, command string) string {
	c.t.Helper()
	ctx := context.Background()
	waitFor(c.t, "the jobs API answers", func() error {
		return c.jobs.PutJob(ctx, chronos.Job{Name: name, Command: command, Schedule: "R0/2030-01-01T00:00:00.000Z/PT1H"})
	})
	if err := c.jobs.RunNow(ctx, name); err != nil {
		c.t.Fatal(err)
	}
	var id string
	waitFor(c.t, "the job's task has a sandbox", func() error {
		tasks, err := c.client.GetTasks(ctx)
		if err != nil {
			return err
		}
		for _, task := range append(tasks.Tasks, tasks.CompletedTasks...) {
			if !strings.Contains(task.TaskID.Value, ":"+name+":") {
				continue
			}
			for _, st := range task.Statuses {
				if st.Labels.Get(api.SandboxLabel) != "" {
					id = task.TaskID.Value
					return nil
				}
			}
		}
		return errors.New("no task with a sandbox yet")
	})
	return id
}

// waitFor polls cond until it returns nil, failing the test after logTimeout.
func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(logTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, logTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCopyTaskLog reads an ended task's stdout and stderr, whole and their tails.
func TestCopyTaskLog(t *testing.T) {
	c := newLogCluster(t, 0)
	id := c.run("talk", "echo one; echo two; echo oops >&2")
	ctx := context.Background()
	var loc api.TaskLog
	waitFor(t, "the task ended", func() error {
		var err error
		if loc, err = c.client.LocateTaskLog(ctx, id); err != nil {
			return err
		}
		if !loc.Task.State.Terminal() {
			return fmt.Errorf("task is %s", loc.Task.State)
		}
		return nil
	})
	if !strings.HasPrefix(loc.AgentURL, "http://127.0.0.1:") || !filepath.IsAbs(loc.Sandbox) || loc.Task.TaskID.Value != id {
		t.Errorf("located %+v", loc)
	}
	tests := []struct {
		name string
		opts api.TaskLogOptions
		want string
	}{
		{name: "stdout", opts: api.TaskLogOptions{}, want: "one\ntwo\n"},
		{name: "stderr", opts: api.TaskLogOptions{File: "stderr"}, want: "oops\n"},
		{name: "tail", opts: api.TaskLogOptions{Tail: 4}, want: "two\n"},
		{name: "tail beyond the start", opts: api.TaskLogOptions{Tail: 100}, want: "one\ntwo\n"},
		{name: "follow an ended task", opts: api.TaskLogOptions{Follow: true, PollInterval: 10 * time.Millisecond}, want: "one\ntwo\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if err := c.client.CopyTaskLog(ctx, loc, &out, tt.opts); err != nil || out.String() != tt.want {
				t.Errorf("CopyTaskLog = %q, %v; want %q", out.String(), err, tt.want)
			}
		})
	}
	_, err := c.client.LocateTaskLog(ctx, "no-such-task")
	if !errors.Is(err, api.ErrNoTask) || err.Error() != `no such task: "no-such-task"` {
		t.Errorf("LocateTaskLog of an unknown task = %v", err)
	}
	err = c.client.CopyTaskLog(ctx, loc, &strings.Builder{}, api.TaskLogOptions{File: "nothing"})
	wantErr := fmt.Sprintf("read %s/nothing from the agent at %s: 404 Not Found: no such file or directory: %[1]s/nothing", loc.Sandbox, loc.AgentURL)
	if err == nil || err.Error() != wantErr {
		t.Errorf("CopyTaskLog of a missing file = %v, want the agent's 404", err)
	}
}

// TestTaskLogFollowsRotation follows a task's stdout while the agent rotates it several
// times: every line arrives once, in order, and following ends with the task.
func TestTaskLogFollowsRotation(t *testing.T) {
	// About 8 bytes a line: a rotation every 30 lines or so, 1.5 s apart, a few times the
	// follower's poll.
	c := newLogCluster(t, 256)
	const lines = 100
	id := c.run("spew", fmt.Sprintf("for i in $(seq 1 %d); do echo line $i; sleep 0.05; done", lines))
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	loc, err := c.client.LocateTaskLog(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuilder
	if err := c.client.CopyTaskLog(ctx, loc, &out, api.TaskLogOptions{Follow: true}); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if out.String() != want.String() {
		t.Errorf("followed:\n%s\nwant every line once:\n%s", out.String(), want.String())
	}
	if ctx.Err() != nil {
		t.Errorf("following did not end with the task")
	}
}

// TestTaskLogFollowStopsWithContext: a follower of a task that runs on returns nil, with
// what it read, once its context ends.
func TestTaskLogFollowStopsWithContext(t *testing.T) {
	c := newLogCluster(t, 0)
	id := c.run("long", "echo started; sleep 600")
	loc, err := c.client.LocateTaskLog(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuilder
	done := make(chan error, 1)
	go func() {
		done <- c.client.CopyTaskLog(ctx, loc, &out, api.TaskLogOptions{Follow: true, PollInterval: 10 * time.Millisecond})
	}()
	waitFor(t, "the first line arrived", func() error {
		if out.String() != "started\n" {
			return fmt.Errorf("read %q", out.String())
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("CopyTaskLog = %v, want nil", err)
		}
	case <-time.After(logTimeout):
		t.Fatal("CopyTaskLog did not return after its context ended")
	}
	if err := c.jobs.KillTasks(context.Background(), "long"); err != nil {
		t.Fatal(err)
	}
}
