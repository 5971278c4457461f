package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// TestTaskLogFollowsRotation follows a task's stdout while the agent rotates it several
// times: `task log -f` prints every line once, in order.
func TestTaskLogFollowsRotation(t *testing.T) {
	ts := master.NewTestServer(t)
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) {
		pc := isolate.DefaultProcessConfig()
		pc.StateDir = filepath.Join(cfg.WorkDir, "containers")
		pc.Logger = cfg.Logger
		// About 8 bytes a line: a rotation every 30 lines or so, 1.5 s apart, a few
		// times the follower's poll.
		pc.TaskLogs = isolate.LogRotation{MaxSize: 256, Keep: 2}
		c, err := isolate.NewProcess(pc)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Containerizer = c
	})
	const lines = 100
	ran := make(chan string, 1)
	go func() {
		_, out, errOut := cliRun(t, ts.URL, "task", "run", "--name", "spew", "--", "sh", "-c", fmt.Sprintf("for i in $(seq 1 %d); do echo line $i; sleep 0.05; done", lines))
		ran <- out + errOut
	}()
	var id string
	eventually(t, "the task started", func() error {
		for _, task := range ts.Store().Tasks() {
			if task.Info.Name == "spew" && task.State == api.TaskRunning {
				id = task.ID
				return nil
			}
		}
		return fmt.Errorf("no running spew task")
	})
	code, out, errOut := cliRun(t, ts.URL, "task", "log", "-f", id)
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if code != 0 || out != want.String() {
		t.Errorf("task log -f = %d, stderr %q, stdout:\n%s\nwant every line once:\n%s", code, errOut, out, want.String())
	}
	if out := <-ran; !strings.Contains(out, "TASK_FINISHED") {
		t.Errorf("task run: %s", out)
	}
}
