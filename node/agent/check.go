package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/atoll/atoll/api"
)

// Checks (TaskInfo.check) run next to the task with the health checks' probes, as Mesos's
// executors ran them, but only to report: delay_seconds after the task started the agent
// checks it, then again interval_seconds after each check ended, each bounded by
// timeout_seconds, and whenever the result differs from the last one reported it sends a
// TASK_RUNNING update with check_status and reason REASON_TASK_CHECK_STATUS_UPDATED,
// through the reliable update path. A check never kills its task, whatever it finds. As in
// Mesos, every update the task's executor side makes (TASK_RUNNING, health updates, its
// end) carries the latest check_status, TASK_RUNNING's one without a result yet; a check
// that does not complete (it times out, an HTTP check gets no answer, the command cannot
// run or is killed by a signal) has no result either, which is a change when the last one
// had one. Results are what Mesos reports: an HTTP check's status code, whatever it is; a
// TCP check's success at connecting; a command's exit code.

// The defaults of mesos.proto's CheckInfo.
const (
	defaultCheckDelay    = 15 * time.Second
	defaultCheckInterval = 10 * time.Second
	defaultCheckTimeout  = 20 * time.Second
)

// taskCheck is a validated TaskInfo.check with its defaults applied.
type taskCheck struct {
	kind                     string
	delay, interval, timeout time.Duration
	// port is the HTTP or TCP port, path the HTTP path.
	port    uint32
	path    string
	command *api.CommandInfo
}

// parseCheck validates a task's check; errors name the offending field.
func parseCheck(c *api.CheckInfo) (taskCheck, error) {
	check := taskCheck{kind: c.Type}
	var err error
	if check.delay, check.interval, check.timeout, err = probeTimings("check", c.DelaySeconds, c.IntervalSeconds, c.TimeoutSeconds,
		defaultCheckDelay, defaultCheckInterval, defaultCheckTimeout); err != nil {
		return taskCheck{}, err
	}
	switch c.Type {
	case api.CheckTypeHTTP:
		if c.HTTP == nil {
			return taskCheck{}, errors.New("check.http: required for an HTTP check")
		}
		if err := validHealthPort("check.http.port", c.HTTP.Port); err != nil {
			return taskCheck{}, err
		}
		check.port = c.HTTP.Port
		if check.path, err = probePath("check.http.path", c.HTTP.Path); err != nil {
			return taskCheck{}, err
		}
		return check, nil
	case api.CheckTypeTCP:
		if c.TCP == nil {
			return taskCheck{}, errors.New("check.tcp: required for a TCP check")
		}
		if err := validHealthPort("check.tcp.port", c.TCP.Port); err != nil {
			return taskCheck{}, err
		}
		check.port = c.TCP.Port
		return check, nil
	case api.CheckTypeCommand:
		if c.Command == nil {
			return taskCheck{}, errors.New("check.command: required for a COMMAND check")
		}
		if err := validProbeCommand("check.command.command", "check", &c.Command.Command); err != nil {
			return taskCheck{}, err
		}
		check.command = &c.Command.Command
		return check, nil
	case "":
		return taskCheck{}, errors.New("check.type: missing; want COMMAND, HTTP or TCP")
	default:
		return taskCheck{}, fmt.Errorf("check.type: %q is not COMMAND, HTTP or TCP", c.Type)
	}
}

// checkProbe runs one check and returns its result.
type checkProbe func(ctx context.Context) *api.CheckStatusInfo

// noCheckResult is the status of a check of this type without a result: the type and an
// empty message of it.
func noCheckResult(kind string) *api.CheckStatusInfo {
	s := &api.CheckStatusInfo{Type: kind}
	switch kind {
	case api.CheckTypeHTTP:
		s.HTTP = &api.CheckStatusHTTP{}
	case api.CheckTypeTCP:
		s.TCP = &api.CheckStatusTCP{}
	case api.CheckTypeCommand:
		s.Command = &api.CheckStatusCommand{}
	}
	return s
}

// checkProbeLocked builds the probe of rec's check from the health checks' probes. a.mu
// must be held.
func (a *Agent) checkProbeLocked(rec *taskRecord, check taskCheck) (checkProbe, error) {
	switch check.kind {
	case api.CheckTypeHTTP:
		get := httpGetProbe("http://"+probeAddr(rec, check.port)+check.path, check.timeout)
		return func(ctx context.Context) *api.CheckStatusInfo {
			r := get(ctx)
			if r.err != nil {
				return noCheckResult(api.CheckTypeHTTP)
			}
			code := uint32(r.code)
			return &api.CheckStatusInfo{Type: api.CheckTypeHTTP, HTTP: &api.CheckStatusHTTP{StatusCode: &code}}
		}, nil
	case api.CheckTypeTCP:
		connect := tcpConnectProbe(probeAddr(rec, check.port), check.timeout)
		return func(ctx context.Context) *api.CheckStatusInfo {
			r := connect(ctx)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return noCheckResult(api.CheckTypeTCP)
			}
			succeeded := r.err == nil
			return &api.CheckStatusInfo{Type: api.CheckTypeTCP, TCP: &api.CheckStatusTCP{Succeeded: &succeeded}}
		}, nil
	default:
		run, err := a.commandRunLocked(rec, check.command, check.timeout)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) *api.CheckStatusInfo {
			r := run(ctx)
			if r.err != nil {
				return noCheckResult(api.CheckTypeCommand)
			}
			code := int32(r.code)
			return &api.CheckStatusInfo{Type: api.CheckTypeCommand, Command: &api.CheckStatusCommand{ExitCode: &code}}
		}, nil
	}
}

// startCheckLocked starts the checker of a running task that has a check. a.mu must be
// held, t.rec.Container set and t.done the channel its container goroutine closes.
func (a *Agent) startCheckLocked(t *task) {
	if t.rec.Task.Check == nil || t.rec.Killing || t.rec.Container == nil {
		return
	}
	taskID := t.rec.Task.TaskID.Value
	check, err := parseCheck(t.rec.Task.Check)
	if err != nil {
		// Checked at LAUNCH, so only a checkpoint written by another version gets here.
		a.log.Error("task has an invalid check; not checking it", "task", taskID, "err", err)
		return
	}
	probe, err := a.checkProbeLocked(&t.rec, check)
	if err != nil {
		a.log.Error("cannot set the task's check up; not checking it", "task", taskID, "err", err)
		return
	}
	start := t.rec.Started
	if start.IsZero() {
		start = time.Now()
	}
	a.taskGoroutines.Add(1)
	go func() {
		defer a.taskGoroutines.Done()
		probeTask(a, t, start.Add(check.delay), check.interval, check.timeout, probe, func(result *api.CheckStatusInfo) bool {
			return a.recordCheck(t, result)
		})
	}()
}

// recordCheck reports a check's result when it differs from the last one reported. It
// reports whether checking goes on: until the task is killed or ends.
func (a *Agent) recordCheck(t *task, result *api.CheckStatusInfo) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.rec.Killing || t.rec.State.Terminal() {
		return false
	}
	if reflect.DeepEqual(t.rec.CheckStatus, result) {
		return true
	}
	rec := t.rec
	rec.CheckStatus = result
	a.updateLocked(t, rec, api.TaskStatus{
		State: api.TaskRunning, Source: api.SourceExecutor, Reason: api.ReasonTaskCheckStatusUpdated, CheckStatus: result,
	})
	return true
}

// withCheckStatus gives an update the executor side makes of a task with a check the
// task's latest check status, as Mesos's executors did: none yet is a status without a
// result, which rec then records.
func withCheckStatus(rec *taskRecord, status *api.TaskStatus) {
	if rec.Task.Check == nil || status.Source != api.SourceExecutor || status.CheckStatus != nil {
		return
	}
	if rec.CheckStatus == nil {
		rec.CheckStatus = noCheckResult(rec.Task.Check.Type)
	}
	status.CheckStatus = rec.CheckStatus
}
