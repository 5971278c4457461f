package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

// logPollInterval is how often `task log -f` asks the agent for more output.
const logPollInterval = 500 * time.Millisecond

// taskLog is where a task's output is: the agent serving its sandbox and the sandbox.
type taskLog struct {
	agentURL string
	sandbox  string
	task     api.Task
}

func (a *app) taskLogCmd() *cobra.Command {
	var follow, stderr bool
	cmd := &cobra.Command{
		Use:   "log TASK_ID",
		Short: "Print a task's output (stdout, or stderr with --stderr) from its agent",
		Long: "Print a task's output, read from its sandbox on the agent that runs (or ran) it.\n" +
			"With -f it keeps printing what the task writes until the task ends or Ctrl-C.",
		Args: oneArg("task id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			file := "stdout"
			if stderr {
				file = "stderr"
			}
			ctx := cmd.Context()
			loc, err := locateTaskLog(ctx, client, args[0])
			if err != nil {
				return err
			}
			return a.copyTaskLog(ctx, client, loc, file, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the task ends")
	cmd.Flags().BoolVar(&stderr, "stderr", false, "print stderr instead of stdout")
	return cmd
}

// locateTaskLog finds a task (live, unreachable or completed; the latest run when an id
// was used more than once) and the agent and sandbox holding its output.
func locateTaskLog(ctx context.Context, client *api.Client, taskID string) (taskLog, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	tasks, err := client.GetTasks(rctx)
	if err != nil {
		return taskLog{}, err
	}
	var found *api.Task
	for _, t := range slices.Concat(tasks.Tasks, tasks.UnreachableTasks, tasks.OrphanTasks, tasks.CompletedTasks) {
		if t.TaskID.Value == taskID {
			found = &t
			break
		}
	}
	if found == nil {
		return taskLog{}, fmt.Errorf("no task %q (see atoll tasks --all)", taskID)
	}
	sandbox := ""
	for _, st := range found.Statuses {
		if dir := st.Labels.Get(sandboxLabel); dir != "" {
			sandbox = dir
		}
	}
	if sandbox == "" {
		return taskLog{}, fmt.Errorf("task %s (%s) has no sandbox yet: its agent has not marathon.Started it", taskID, found.State)
	}
	agents, err := client.GetAgents(rctx)
	if err != nil {
		return taskLog{}, err
	}
	for _, ag := range agents.Agents {
		if ag.AgentInfo.ID == nil || ag.AgentInfo.ID.Value != found.AgentID.Value {
			continue
		}
		addr, ok := strings.CutPrefix(ag.PID, "slave(1)@")
		if !ok || addr == "" {
			return taskLog{}, fmt.Errorf("agent %s publishes no address for its files (pid %q)", found.AgentID.Value, ag.PID)
		}
		return taskLog{agentURL: "http://" + addr, sandbox: sandbox, task: *found}, nil
	}
	return taskLog{}, fmt.Errorf("task %s ran on agent %s, which the master no longer knows", taskID, found.AgentID.Value)
}

// copyTaskLog prints the file from the start; following, it polls for more until the
// task is terminal and the file has no more to give.
func (a *app) copyTaskLog(ctx context.Context, client *api.Client, loc taskLog, file string, follow bool) error {
	filePath := path.Join(loc.sandbox, file)
	var offset int64
	ended := loc.task.State.Terminal()
	for {
		n, err := readAgentFile(ctx, loc.agentURL, filePath, offset, a.stdout)
		if err != nil {
			return err
		}
		offset += n
		if n > 0 {
			continue // drain before waiting
		}
		if !follow {
			return nil
		}
		// A file shorter than what was read has been rotated: the rest of the old one is
		// in file.1, and the new one starts at 0. (Two rotations between polls would lose
		// the middle file: the poll is far quicker than a rotation's worth of output at
		// any rate a terminal can show.)
		if size, err := agentFileSize(ctx, loc.agentURL, filePath); err == nil && size < offset {
			for {
				n, err := readAgentFile(ctx, loc.agentURL, filePath+".1", offset, a.stdout)
				if err != nil || n == 0 {
					break
				}
				offset += n
			}
			offset = 0
			continue
		}
		if ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logPollInterval):
		}
		// One more read after the task ended picks up its last words.
		if st, err := taskState(ctx, client, loc.task); err == nil && st.Terminal() {
			ended = true
		}
	}
}

// taskState is the current state of the task's latest run.
func taskState(ctx context.Context, client *api.Client, task api.Task) (api.TaskState, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	tasks, err := client.GetTasks(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range slices.Concat(tasks.Tasks, tasks.UnreachableTasks, tasks.OrphanTasks, tasks.CompletedTasks) {
		if t.TaskID == task.TaskID && t.FrameworkID == task.FrameworkID {
			return t.State, nil
		}
	}
	return "", fmt.Errorf("task %s is gone", task.TaskID.Value)
}

// agentFileSize asks the agent for a file's size (/files/read without an offset).
func agentFileSize(ctx context.Context, agentURL, filePath string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	q := url.Values{"path": {filePath}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, agentURL+"/files/read?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("size of %s: %s", filePath, resp.Status)
	}
	var chunk struct {
		Offset int64 `json:"offset"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&chunk); err != nil {
		return 0, err
	}
	return chunk.Offset, nil
}

// readAgentFile writes one chunk of the file from offset to w through the agent's
// /files/read and returns how many bytes it wrote (0 at the end of the file).
func readAgentFile(ctx context.Context, agentURL, filePath string, offset int64, w io.Writer) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	q := url.Values{"path": {filePath}, "offset": {fmt.Sprint(offset)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, agentURL+"/files/read?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read %s from the agent: %w", filePath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		return 0, fmt.Errorf("read %s from the agent at %s: %s: %s", filePath, agentURL, resp.Status, e.Message)
	}
	var chunk struct {
		Data   string `json:"data"`
		Offset int64  `json:"offset"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&chunk); err != nil {
		return 0, fmt.Errorf("read %s from the agent: %w", filePath, err)
	}
	if chunk.Offset != offset && chunk.Data != "" {
		return 0, errors.New("the agent answered a read at another offset")
	}
	n, err := io.WriteString(w, chunk.Data)
	return int64(n), err
}
