package api

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
	"strconv"
	"strings"
	"time"
)

// A task's output is in its sandbox on the agent that runs (or ran) it, and the agent's
// HTTP API serves it (Mesos's /files/read). Agents report the sandbox in a label of their
// status updates, and their API address in their operator pid.

// SandboxLabel is the status-update label in which agents report a task's sandbox
// directory.
const SandboxLabel = "sandbox_directory"

// agentPIDPrefix is what comes before host:port in an agent's operator pid.
const agentPIDPrefix = "slave(1)@"

// DefaultLogPollInterval is how often a follower asks the agent for more output.
const DefaultLogPollInterval = 500 * time.Millisecond

// logRequestTimeout bounds each request made while locating or reading a task's output.
const logRequestTimeout = 30 * time.Second

// ErrNoTask says the master knows no task of that id, live or ended.
var ErrNoTask = errors.New("no such task")

// TaskLog says where a task's output is.
type TaskLog struct {
	// AgentURL is the API of the agent holding the sandbox ("http://host:5051";
	// https when the master's URL is).
	AgentURL string
	// Sandbox is the task's sandbox directory on that agent.
	Sandbox string
	// Task is the task as the master knew it when it was located.
	Task Task
}

// TaskLogOptions say what CopyTaskLog reads.
type TaskLogOptions struct {
	// File is the file of the sandbox to read: "stdout" (the default) or "stderr".
	File string
	// Follow keeps reading what the task writes, across rotations of the file, until the
	// task has ended and the file has no more to give, or ctx ends.
	Follow bool
	// Tail starts that many bytes before the end of the file; 0 reads it from the start.
	Tail int64
	// PollInterval is how often a follower asks for more; 0 is DefaultLogPollInterval.
	PollInterval time.Duration
}

// allTasks is every task the master knows: live, unreachable, orphaned and completed.
func allTasks(tasks *GetTasks) []Task {
	return slices.Concat(tasks.Tasks, tasks.UnreachableTasks, tasks.OrphanTasks, tasks.CompletedTasks)
}

// LocateTaskLog finds a task (live or ended; the latest run when an id was used more than
// once) and the agent and sandbox holding its output.
func (c *Client) LocateTaskLog(ctx context.Context, taskID string) (TaskLog, error) {
	ctx, cancel := context.WithTimeout(ctx, logRequestTimeout)
	defer cancel()
	tasks, err := c.GetTasks(ctx)
	if err != nil {
		return TaskLog{}, err
	}
	var found *Task
	for _, t := range allTasks(tasks) {
		if t.TaskID.Value == taskID {
			found = &t
			break
		}
	}
	if found == nil {
		return TaskLog{}, fmt.Errorf("%w: %q", ErrNoTask, taskID)
	}
	sandbox := ""
	for _, st := range found.Statuses {
		if dir := st.Labels.Get(SandboxLabel); dir != "" {
			sandbox = dir
		}
	}
	if sandbox == "" {
		return TaskLog{}, fmt.Errorf("task %s (%s) has no sandbox yet: its agent has not started it", taskID, found.State)
	}
	agents, err := c.GetAgents(ctx)
	if err != nil {
		return TaskLog{}, err
	}
	for _, ag := range agents.Agents {
		if ag.AgentInfo.ID == nil || ag.AgentInfo.ID.Value != found.AgentID.Value {
			continue
		}
		addr, ok := strings.CutPrefix(ag.PID, agentPIDPrefix)
		if !ok || addr == "" {
			return TaskLog{}, fmt.Errorf("agent %s publishes no address for its files (pid %q)", found.AgentID.Value, ag.PID)
		}
		// A secure cluster's agents serve their API over TLS, as its masters do.
		scheme := "http://"
		if strings.HasPrefix(c.baseURL, "https://") {
			scheme = "https://"
		}
		return TaskLog{AgentURL: scheme + addr, Sandbox: sandbox, Task: *found}, nil
	}
	return TaskLog{}, fmt.Errorf("task %s ran on agent %s, which the master no longer knows", taskID, found.AgentID.Value)
}

// CopyTaskLog writes a file of the task's sandbox to w, from the start or the last
// opts.Tail bytes; following, it polls for more until the task is terminal and the file
// has no more to give, and returns nil when ctx ends.
func (c *Client) CopyTaskLog(ctx context.Context, loc TaskLog, w io.Writer, opts TaskLogOptions) error {
	file := opts.File
	if file == "" {
		file = "stdout"
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = DefaultLogPollInterval
	}
	filePath := path.Join(loc.Sandbox, file)
	var offset int64
	if opts.Tail > 0 {
		size, err := c.agentFileSize(ctx, loc.AgentURL, filePath)
		if err != nil {
			return err
		}
		offset = max(0, size-opts.Tail)
	}
	ended := loc.Task.State.Terminal()
	for {
		n, err := c.readAgentFile(ctx, loc.AgentURL, filePath, offset, w)
		if err != nil {
			if opts.Follow && ctx.Err() != nil {
				return nil
			}
			return err
		}
		offset += n
		if n > 0 {
			continue // drain before waiting
		}
		if !opts.Follow {
			return nil
		}
		// A file shorter than what was read has been rotated: the rest of the old one is
		// in file.1, and the new one starts at 0. (Two rotations between polls would lose
		// the middle file: the poll is far quicker than a rotation's worth of output at
		// any rate a reader can follow.)
		if size, err := c.agentFileSize(ctx, loc.AgentURL, filePath); err == nil && size < offset {
			for {
				n, err := c.readAgentFile(ctx, loc.AgentURL, filePath+".1", offset, w)
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
		case <-time.After(poll):
		}
		// One more read after the task ended picks up its last words.
		if st, err := c.taskState(ctx, loc.Task); err == nil && st.Terminal() {
			ended = true
		}
	}
}

// taskState is the current state of the task's latest run.
func (c *Client) taskState(ctx context.Context, task Task) (TaskState, error) {
	ctx, cancel := context.WithTimeout(ctx, logRequestTimeout)
	defer cancel()
	tasks, err := c.GetTasks(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range allTasks(tasks) {
		if t.TaskID == task.TaskID && t.FrameworkID == task.FrameworkID {
			return t.State, nil
		}
	}
	return "", fmt.Errorf("task %s is gone", task.TaskID.Value)
}

// fileChunk is the agent's /files/read answer.
type fileChunk struct {
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
}

// readChunk asks the agent's /files/read for the file at offset (-1: only its size).
func (c *Client) readChunk(ctx context.Context, agentURL, filePath string, offset int64) (fileChunk, error) {
	ctx, cancel := context.WithTimeout(ctx, logRequestTimeout)
	defer cancel()
	q := url.Values{"path": {filePath}, "offset": {strconv.FormatInt(offset, 10)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, agentURL+"/files/read?"+q.Encode(), nil)
	if err != nil {
		return fileChunk{}, fmt.Errorf("read %s from the agent: %w", filePath, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fileChunk{}, fmt.Errorf("read %s from the agent: %w", filePath, err)
	}
	defer discard(resp)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&e)
		return fileChunk{}, fmt.Errorf("read %s from the agent at %s: %s: %s", filePath, agentURL, resp.Status, e.Message)
	}
	var chunk fileChunk
	if err := json.NewDecoder(resp.Body).Decode(&chunk); err != nil {
		return fileChunk{}, fmt.Errorf("read %s from the agent: %w", filePath, err)
	}
	return chunk, nil
}

// agentFileSize asks the agent for a file's size.
func (c *Client) agentFileSize(ctx context.Context, agentURL, filePath string) (int64, error) {
	chunk, err := c.readChunk(ctx, agentURL, filePath, -1)
	return chunk.Offset, err
}

// readAgentFile writes one chunk of the file from offset to w and returns how many bytes
// it wrote (0 at the end of the file).
func (c *Client) readAgentFile(ctx context.Context, agentURL, filePath string, offset int64, w io.Writer) (int64, error) {
	chunk, err := c.readChunk(ctx, agentURL, filePath, offset)
	if err != nil {
		return 0, err
	}
	if chunk.Offset != offset && chunk.Data != "" {
		return 0, errors.New("the agent answered a read at another offset")
	}
	n, err := io.WriteString(w, chunk.Data)
	return int64(n), err
}
