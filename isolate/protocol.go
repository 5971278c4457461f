package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// The supervisor protocol: JSON lines over the unix socket StateDir/supervisor.sock. The
// agent sends requests, each with an id of its choosing; the supervisor serves them
// concurrently and answers each with a response carrying the same id, in whatever order
// they finish. Unasked, it also sends every connection an exit event (a response with id
// 0) for each task that ends. A launch's response is written before the task's exit event,
// so an agent always learns of a container before it learns of its end.
const (
	// opHello answers with the supervisor's PID and StartTime; the agent sends it first to
	// check that it reached a supervisor that is serving.
	opHello = "hello"
	// opLaunch starts Request.Launch and answers with the task's PID and StartTime.
	opLaunch = "launch"
	// opKill sends SIGTERM to the container's process group now, if Request.Deadline is
	// still ahead, and SIGKILL at the deadline. A container the supervisor does not run
	// (it has exited) is no error.
	opKill = "kill"
	// opQuery says what became of Request.ContainerIDs: those still running are listed in
	// Response.Running, those that ended in Response.Exited, those whose supervisor died
	// before they ended in Response.Orphaned. Of the others there is no record.
	opQuery = "query"
	// opForget drops the records of a destroyed container, Request.ContainerID.
	opForget = "forget"
	// opStop makes the supervisor exit, if it runs no containers; otherwise it is an error.
	opStop = "stop"
)

// maxMessage bounds one line of the protocol. A launch carries the task's environment and
// arguments, which Linux limits to a few MiB in all.
const maxMessage = 16 << 20

// request is one line from the agent to the supervisor.
type request struct {
	// ID is echoed in the response; it is never 0.
	ID uint64 `json:"id"`
	Op string `json:"op"`
	// Launch is the task to start, for opLaunch.
	Launch *taskSpec `json:"launch,omitempty"`
	// ContainerID is the container to kill or forget, for opKill and opForget.
	ContainerID string `json:"container_id,omitempty"`
	// ContainerIDs are the containers asked about, for opQuery.
	ContainerIDs []string `json:"container_ids,omitempty"`
	// DeadlineUnixNano is when opKill escalates to SIGKILL. It is absolute so that a later
	// request with a shorter grace period can bring it forward while one with a longer
	// period never delays it; wall-clock time, so a clock step during the grace period
	// lengthens or shortens it.
	DeadlineUnixNano int64 `json:"deadline_unix_nano,omitempty"`
}

// taskSpec is everything the supervisor needs to start one task. The agent resolves the
// executable, the user and the environment so that the supervisor stays small.
type taskSpec struct {
	ContainerID string `json:"container_id"`
	// Path is the executable: absolute, or relative to Dir.
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// Dir is the sandbox: the task's working directory.
	Dir string `json:"dir"`
	// Stdout and Stderr are files the task's output is appended to; without a
	// Credential, one that is not there yet is created at its stream's first output.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// LogMaxSize and LogKeep rotate those files (LogRotation); zero means the defaults,
	// and is left out, so that a supervisor that predates them still takes the launch.
	LogMaxSize int64 `json:"log_max_size,omitempty"`
	LogKeep    int   `json:"log_keep,omitempty"`
	// Credential, when set, is the user the task runs as.
	Credential *taskCredential `json:"credential,omitempty"`
}

// taskCredential is a user to switch to.
type taskCredential struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// response is one line from the supervisor to the agent: the answer to a request or, with
// ID 0, an exit event.
type response struct {
	ID uint64 `json:"id,omitempty"`
	// Error says why the request failed; the other fields are then empty.
	Error string `json:"error,omitempty"`
	// PID and StartTime are the task's (opLaunch) or the supervisor's (opHello).
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
	// Running, Exited and Orphaned answer opQuery.
	Running  []string    `json:"running,omitempty"`
	Exited   []exitEvent `json:"exited,omitempty"`
	Orphaned []string    `json:"orphaned,omitempty"`
	// Exit is the event's content.
	Exit *exitEvent `json:"exit,omitempty"`
}

// exitEvent reports that a container's task has ended and been reaped.
type exitEvent struct {
	ContainerID string       `json:"container_id"`
	Status      statusRecord `json:"status"`
}

// decodeRequest decodes and checks one request line.
func decodeRequest(line []byte) (request, error) {
	var req request
	if err := decodeStrict(line, &req); err != nil {
		return request{}, fmt.Errorf("decode request: %w", err)
	}
	if req.ID == 0 {
		return request{}, errors.New("request: id 0")
	}
	if err := req.check(); err != nil {
		return request{}, fmt.Errorf("request %d: %w", req.ID, err)
	}
	return req, nil
}

// check reports a request that does not make sense for its operation.
func (r request) check() error {
	// Which arguments each operation takes: the others must be empty.
	var launch, containerID, deadline, containerIDs bool
	switch r.Op {
	case opHello, opStop:
	case opLaunch:
		launch = true
	case opKill:
		containerID, deadline = true, true
	case opQuery:
		containerIDs = true
	case opForget:
		containerID = true
	default:
		return fmt.Errorf("unknown operation %q", r.Op)
	}
	switch {
	case launch && r.Launch == nil:
		return fmt.Errorf("%s: no task", r.Op)
	case !launch && r.Launch != nil, !containerID && r.ContainerID != "", !deadline && r.DeadlineUnixNano != 0,
		!containerIDs && r.ContainerIDs != nil:
		return fmt.Errorf("%s: unexpected arguments", r.Op)
	case deadline && r.DeadlineUnixNano <= 0:
		return fmt.Errorf("%s: deadline %d is not a time", r.Op, r.DeadlineUnixNano)
	}
	if containerID {
		if err := checkContainerID(r.ContainerID); err != nil {
			return err
		}
	}
	for _, id := range r.ContainerIDs {
		if err := checkContainerID(id); err != nil {
			return err
		}
	}
	if launch {
		return r.Launch.check()
	}
	return nil
}

// check reports a task the supervisor cannot start.
func (s *taskSpec) check() error {
	if err := checkContainerID(s.ContainerID); err != nil {
		return err
	}
	switch {
	case s.Path == "":
		return errors.New("task has no executable")
	case len(s.Args) == 0:
		return errors.New("task has no argv")
	case !filepath.IsAbs(s.Dir) || !filepath.IsAbs(s.Stdout) || !filepath.IsAbs(s.Stderr):
		return fmt.Errorf("task paths %q, %q, %q are not all absolute", s.Dir, s.Stdout, s.Stderr)
	}
	if err := (LogRotation{MaxSize: s.LogMaxSize, Keep: s.LogKeep}).validate(); err != nil {
		return fmt.Errorf("task logs: %w", err)
	}
	for _, kv := range s.Env {
		if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
			return fmt.Errorf("environment entry %q is not NAME=value", kv)
		}
	}
	return nil
}

// decodeResponse decodes and checks one line from the supervisor.
func decodeResponse(line []byte) (response, error) {
	var resp response
	if err := decodeStrict(line, &resp); err != nil {
		return response{}, fmt.Errorf("decode supervisor message: %w", err)
	}
	if resp.ID != 0 {
		if resp.Exit != nil {
			return response{}, fmt.Errorf("response %d carries an exit event", resp.ID)
		}
		for _, id := range slices.Concat(resp.Running, resp.Orphaned) {
			if err := checkContainerID(id); err != nil {
				return response{}, fmt.Errorf("response %d: %w", resp.ID, err)
			}
		}
		for _, ev := range resp.Exited {
			if err := ev.check(); err != nil {
				return response{}, fmt.Errorf("response %d: %w", resp.ID, err)
			}
		}
		return resp, nil
	}
	if resp.Exit == nil || resp.Error != "" || resp.PID != 0 || resp.StartTime != 0 ||
		resp.Running != nil || resp.Exited != nil || resp.Orphaned != nil {
		return response{}, errors.New("supervisor event is not just an exit")
	}
	if err := resp.Exit.check(); err != nil {
		return response{}, err
	}
	return resp, nil
}

// check reports an exit that cannot be.
func (e exitEvent) check() error {
	if err := checkContainerID(e.ContainerID); err != nil {
		return fmt.Errorf("exit: %w", err)
	}
	if _, err := e.Status.exitStatus(); err != nil {
		return fmt.Errorf("exit of %s: %w", e.ContainerID, err)
	}
	return nil
}

// encodeLine encodes one protocol message with its terminating newline.
func encodeLine(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
