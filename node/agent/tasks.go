package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

const (
	// defaultKillGrace is the Mesos default time between SIGTERM and SIGKILL.
	defaultKillGrace = 3 * time.Second
	// destroyTimeout bounds releasing an exited container.
	destroyTimeout = 30 * time.Second
	// maxPort is the highest TCP/UDP port.
	maxPort = 65535
)

// launch checkpoints a new task and starts launching it.
func (a *Agent) launch(ev *api.AgentEventLaunch) {
	frameworkID, taskID := ev.FrameworkID.Value, ev.Task.TaskID.Value
	if frameworkID == "" || taskID == "" {
		a.log.Warn("ignoring LAUNCH without a framework id or task id", "framework", frameworkID, "task", taskID)
		return
	}
	key := taskKey(frameworkID, taskID)
	a.mu.Lock()
	defer a.mu.Unlock()
	if held, ok := a.tasks[key]; ok {
		// The master only relaunches an id whose last run it has as terminal; this agent
		// still holds that run (its last update unacknowledged, or a run the master gave up
		// on). The new run cannot share the old one's record, so it is refused in words the
		// master records, which ends the task it created for this launch.
		msg := fmt.Sprintf("task id %s is still held by this agent (its previous run is %s with an unacknowledged update); launch it under a new id", taskID, held.rec.State)
		a.log.Warn("refusing LAUNCH of a task id this agent already holds", "framework", frameworkID, "task", taskID, "held_state", held.rec.State)
		a.sendUnreliableLocked(api.AgentCallUpdate{FrameworkID: ev.FrameworkID, Status: api.TaskStatus{
			TaskID: ev.Task.TaskID, State: api.TaskDropped, Source: api.SourceAgent, Reason: api.ReasonTaskInvalid, Message: msg,
		}})
		return
	}
	containerID := uuid.NewString()
	t := &task{
		rec: taskRecord{
			FrameworkID: frameworkID,
			Framework:   ev.FrameworkInfo,
			Task:        ev.Task,
			ContainerID: containerID,
			// One directory per run, named after the task and the run: creating a file is
			// the costliest step of a launch on some disks, so no level more than needed.
			Sandbox: filepath.Join(a.sandboxes, pathComponent(frameworkID), pathComponent(taskID)+"."+containerID),
			State:   api.TaskStaging,
		},
		backoff: a.cfg.UpdateRetryInitial,
	}
	// The task is in the checkpoint before anything runs (runTask waits for it), so an
	// agent that crashes from here on finds it when it restarts.
	t.written = a.cp.putTaskAsync(&t.rec)
	a.tasks[key] = t
	if a.stopping {
		a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskDropped, Source: api.SourceAgent, Message: "agent is shutting down"})
		return
	}
	spec, err := a.launchSpecLocked(&t.rec)
	if err != nil {
		a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskError, Source: api.SourceAgent, Reason: api.ReasonTaskInvalid, Message: err.Error()})
		return
	}
	t.spec = spec
	t.done = make(chan struct{})
	a.taskGoroutines.Add(1)
	go a.runTask(t)
}

// launchSpecLocked validates a task and builds its launch spec. a.mu must be held.
func (a *Agent) launchSpecLocked(rec *taskRecord) (isolate.LaunchSpec, error) {
	task := &rec.Task
	switch {
	case task.Executor != nil:
		return isolate.LaunchSpec{}, errors.New("custom executors are not supported; give the task a command")
	case task.Command == nil:
		return isolate.LaunchSpec{}, errors.New("task has no command")
	case task.Command.IsShell() && (task.Command.Value == nil || *task.Command.Value == ""):
		return isolate.LaunchSpec{}, errors.New("shell command has no value")
	case !task.Command.IsShell() && (task.Command.Value == nil || *task.Command.Value == "") && !hasImage(task.Container):
		// An image's entrypoint runs when the command names no executable.
		return isolate.LaunchSpec{}, errors.New("command has no executable (value) and the task no image")
	}
	resources, err := alloc.FromProto(task.Resources)
	if err != nil {
		return isolate.LaunchSpec{}, fmt.Errorf("resources: %w", err)
	}
	ports, err := taskPorts(task.Resources)
	if err != nil {
		return isolate.LaunchSpec{}, fmt.Errorf("resources: %w", err)
	}
	if task.HealthCheck != nil {
		if _, err := parseHealthCheck(task.HealthCheck); err != nil {
			return isolate.LaunchSpec{}, err
		}
	}
	if task.Check != nil {
		if _, err := parseCheck(task.Check); err != nil {
			return isolate.LaunchSpec{}, err
		}
	}
	return isolate.LaunchSpec{
		ContainerID: rec.ContainerID,
		TaskID:      task.TaskID.Value,
		Sandbox:     rec.Sandbox,
		Command:     *task.Command,
		Container:   task.Container,
		// Tasks run as the framework's user unless the command or the image says
		// otherwise, and as the agent's TaskUser when no one names one.
		FrameworkUser: a.cfg.frameworkUser(rec.Framework.User, task.Container),
		Env: taskEnv(taskEnvInput{
			sandbox:     rec.Sandbox,
			taskID:      task.TaskID.Value,
			frameworkID: rec.FrameworkID,
			agentID:     a.agentID,
			hostname:    a.cfg.Hostname,
			ports:       ports,
		}),
		CPUs:  resources.Scalar(alloc.CPUs),
		MemMB: resources.Scalar(alloc.Mem),
		// Its persistent volumes are among them.
		Resources: task.Resources,
	}, nil
}

// hasImage reports whether the container runs an image (Mesos or Docker).
func hasImage(c *api.ContainerInfo) bool {
	return c != nil && (c.Mesos != nil && c.Mesos.Image != nil || c.Docker != nil && c.Docker.Image != "")
}

// runTask launches t's container, reports TASK_RUNNING, and watches it to its end.
func (a *Agent) runTask(t *task) {
	defer a.taskGoroutines.Done()
	defer close(t.done)
	// A task from LAUNCH starts only once its record is written; one from recovery (no
	// op) was read from disk.
	if t.written != nil {
		if err := t.written.wait(); err != nil {
			a.log.Error("cannot checkpoint the task, so it is not launched", "framework", t.rec.FrameworkID, "task", t.rec.Task.TaskID.Value, "err", err)
			a.mu.Lock()
			delete(a.tasks, t.rec.key())
			a.mu.Unlock()
			return
		}
	}
	release, ok := a.launchSlot()
	if !ok {
		// The agent is stopping; the restarted agent reports the task.
		return
	}
	a.mu.Lock()
	if t.rec.Killing {
		a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskKilled, Source: api.SourceAgent, Reason: api.ReasonTaskKilledDuringLaunch, Message: "task killed before it was launched"})
		a.mu.Unlock()
		release()
		return
	}
	spec := t.spec
	a.mu.Unlock()

	state, err := a.launchContainer(spec)
	release()

	a.mu.Lock()
	if err != nil {
		if a.stopCtx.Err() != nil {
			// The agent is stopping; the restarted agent reports the task.
			a.mu.Unlock()
			return
		}
		a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskFailed, Source: api.SourceAgent, Reason: api.ReasonContainerLaunchFailed, Message: err.Error()})
		a.mu.Unlock()
		return
	}
	rec := t.rec
	rec.Container, rec.Started = &state, time.Now()
	a.updateLocked(t, rec, api.TaskStatus{State: api.TaskRunning, Source: api.SourceExecutor})
	a.startHealthCheckLocked(t)
	a.startCheckLocked(t)
	killing, grace := t.rec.Killing, a.killGraceLocked(t, nil)
	a.mu.Unlock()
	if killing {
		a.killContainer(spec.TaskID, spec.ContainerID, grace)
	}
	a.watch(t, spec.ContainerID, false)
}

// launchSlotHold is how long a launch holds its slot (see launchSlot): far longer than a
// process takes to start, far shorter than an image takes to pull.
const launchSlotHold = 2 * time.Second

// launchSlot waits for one of the Config.MaxConcurrentLaunches slots and returns its
// release, or false once the agent stops. A launch still running after launchSlotHold
// gives its slot up on its own, so that a slow one (an image being pulled) does not hold
// up the launches queued behind it.
func (a *Agent) launchSlot() (release func(), ok bool) {
	select {
	case a.launchSlots <- struct{}{}:
	case <-a.stopCtx.Done():
		return nil, false
	}
	free := sync.OnceFunc(func() { <-a.launchSlots })
	timer := time.AfterFunc(launchSlotHold, free)
	return func() {
		timer.Stop()
		free()
	}, true
}

func (a *Agent) launchContainer(spec isolate.LaunchSpec) (isolate.State, error) {
	// One mkdir, unless the framework's directory is not there yet: MkdirAll looks up
	// the path and its parent first.
	if err := os.Mkdir(spec.Sandbox, 0o755); err != nil {
		if err := os.MkdirAll(spec.Sandbox, 0o755); err != nil {
			return isolate.State{}, fmt.Errorf("create sandbox: %w", err)
		}
	}
	if uris := spec.Command.URIs; len(uris) > 0 {
		if a.cfg.Fetcher == nil {
			return isolate.State{}, errors.New("the task has uris, but this agent has no fetcher")
		}
		if _, err := a.cfg.Fetcher.Fetch(a.stopCtx, spec.Sandbox, uris); err != nil {
			return isolate.State{}, fmt.Errorf("fetch uris: %w", err)
		}
	}
	state, err := a.cfg.Containerizer.Launch(a.stopCtx, spec)
	if err != nil {
		return isolate.State{}, fmt.Errorf("launch container: %w", err)
	}
	return state, nil
}

// watch waits for the container to exit and reports how it ended.
func (a *Agent) watch(t *task, containerID string, recovered bool) {
	exit, err := a.cfg.Containerizer.Wait(a.stopCtx, containerID)
	if a.stopCtx.Err() != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var status api.TaskStatus
	switch {
	case err != nil && recovered:
		status = api.TaskStatus{State: api.TaskFailed, Source: api.SourceAgent, Reason: api.ReasonExecutorTerminated, Message: "container lost while the agent was down: " + err.Error()}
	case err != nil:
		status = api.TaskStatus{State: api.TaskFailed, Source: api.SourceAgent, Reason: api.ReasonExecutorTerminated, Message: "container lost: " + err.Error()}
	default:
		status = terminalStatus(exit, t.rec.Killing)
		if t.rec.UnhealthyKill != "" {
			status = unhealthyKillStatus(status, t.rec.UnhealthyKill)
		}
	}
	a.updateLocked(t, t.rec, status)
}

// terminalStatus is the update for a container that exited, as the Mesos command executor
// words it.
func terminalStatus(exit isolate.ExitStatus, killing bool) api.TaskStatus {
	message := fmt.Sprintf("Command exited with status %d", exit.Code)
	if exit.Signal != 0 {
		message = "Command terminated with signal " + signalName(exit.Signal)
	}
	switch {
	case killing:
		return api.TaskStatus{State: api.TaskKilled, Source: api.SourceExecutor, Message: message}
	case exit.OOMKilled:
		return api.TaskStatus{State: api.TaskFailed, Source: api.SourceExecutor, Reason: api.ReasonContainerLimitationMem, Message: "Memory limit exceeded: " + message}
	case exit.Succeeded():
		return api.TaskStatus{State: api.TaskFinished, Source: api.SourceExecutor, Message: message}
	default:
		return api.TaskStatus{State: api.TaskFailed, Source: api.SourceExecutor, Message: message}
	}
}

// signalName is strsignal's wording ("Terminated", "Killed").
func signalName(sig int) string {
	name := syscall.Signal(sig).String()
	if name == "" {
		return strconv.Itoa(sig)
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// kill kills a task; an unknown task is answered with TASK_LOST.
func (a *Agent) kill(ev *api.AgentEventKill) {
	frameworkID, taskID := ev.FrameworkID.Value, ev.TaskID.Value
	key := taskKey(frameworkID, taskID)
	a.mu.Lock()
	t := a.tasks[key]
	if t == nil {
		t = &task{
			rec:     taskRecord{FrameworkID: frameworkID, Task: api.TaskInfo{TaskID: ev.TaskID}, Unknown: true},
			backoff: a.cfg.UpdateRetryInitial,
		}
		a.tasks[key] = t
		if !a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskLost, Source: api.SourceAgent, Reason: api.ReasonTaskUnknown, Message: "task is unknown to this agent"}) {
			delete(a.tasks, key)
		}
		a.mu.Unlock()
		return
	}
	if t.rec.State.Terminal() {
		a.mu.Unlock()
		a.log.Debug("ignoring KILL of a task that already ended", "framework", frameworkID, "task", taskID)
		return
	}
	grace := a.killGraceLocked(t, ev.KillPolicy)
	t.killGrace = grace
	rec := t.rec
	rec.Killing = true
	switch {
	case rec.Container != nil && rec.State != api.TaskKilling && rec.Framework.HasCapability(api.CapabilityTaskKillingState):
		a.updateLocked(t, rec, api.TaskStatus{State: api.TaskKilling, Source: api.SourceExecutor})
	case !t.rec.Killing:
		if err := a.cp.putTask(&rec); err != nil {
			a.log.Error("cannot checkpoint kill request", "task", taskID, "err", err)
		}
		t.rec = rec
	}
	launched := rec.Container != nil
	a.mu.Unlock()
	if !launched {
		// runTask sees Killing: before the launch it reports TASK_KILLED, after it kills.
		a.log.Info("kill requested while the task is being launched", "framework", frameworkID, "task", taskID)
		return
	}
	a.killContainer(taskID, rec.ContainerID, grace)
}

// killGraceLocked is the grace period of a kill: the request's policy, else the task's,
// else the Mesos default; an earlier kill's grace stands when override is nil.
func (a *Agent) killGraceLocked(t *task, override *api.KillPolicy) time.Duration {
	if override == nil && t.killGrace > 0 {
		return t.killGrace
	}
	return killGrace(override, t.rec.Task.KillPolicy)
}

func killGrace(policies ...*api.KillPolicy) time.Duration {
	for _, p := range policies {
		if p != nil && p.GracePeriod != nil {
			return max(time.Duration(p.GracePeriod.Nanoseconds), 0)
		}
	}
	return defaultKillGrace
}

func (a *Agent) killContainer(taskID, containerID string, grace time.Duration) {
	a.log.Info("killing task", "task", taskID, "container", containerID, "grace", grace)
	if err := a.cfg.Containerizer.Kill(a.stopCtx, containerID, grace); err != nil {
		a.log.Warn("kill failed", "task", taskID, "container", containerID, "err", err)
	}
}

// shutdownFramework kills and forgets every task of a framework the master removed; their
// updates are dropped, since nobody is left to acknowledge them.
func (a *Agent) shutdownFramework(frameworkID string) {
	type victim struct {
		taskID, containerID string
		grace               time.Duration
	}
	var victims []victim
	a.mu.Lock()
	for _, t := range a.tasks {
		if t.rec.FrameworkID != frameworkID {
			continue
		}
		rec := t.rec
		rec.FrameworkRemoved, rec.Killing = true, true
		if err := a.cp.dropUpdates(&rec); err != nil {
			a.log.Error("cannot checkpoint framework removal", "task", rec.Task.TaskID.Value, "err", err)
			continue
		}
		t.rec, t.queue = rec, nil
		switch {
		case rec.State.Terminal():
			a.removeTaskLocked(t)
		case rec.Container != nil:
			victims = append(victims, victim{rec.Task.TaskID.Value, rec.ContainerID, a.killGraceLocked(t, nil)})
		}
	}
	a.mu.Unlock()
	a.log.Info("framework removed, killing its tasks", "framework", frameworkID, "running_tasks", len(victims))
	for _, v := range victims {
		a.killContainer(v.taskID, v.containerID, v.grace)
	}
}

// removeTaskLocked forgets t and destroys its container once the task is deleted from the
// checkpoint. Nothing waits for that deletion: the acknowledgements that end tasks arrive
// one after another on the master's stream, and waiting for each write would hold up all
// the events behind it. a.mu must be held.
func (a *Agent) removeTaskLocked(t *task) {
	key := t.rec.key()
	deleted := a.cp.deleteTask(key)
	delete(a.tasks, key)
	taskID, containerID, launched := t.rec.Task.TaskID.Value, t.rec.ContainerID, t.rec.Container != nil
	a.background.Go(func() {
		// The container's records outlive the task's on disk, so that a crash in between
		// leaves a task whose container can still be asked about.
		if err := deleted.wait(); err != nil {
			a.log.Error("cannot remove the task from the checkpoint", "task", taskID, "err", err)
			return
		}
		if !launched {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
		defer cancel()
		if err := a.cfg.Containerizer.Destroy(ctx, containerID); err != nil && !errors.Is(err, isolate.ErrUnknownContainer) {
			a.log.Warn("cannot destroy container", "container", containerID, "err", err)
		}
	})
}

// recoverContainers re-attaches to the containers of checkpointed tasks and watches them;
// a task whose container was never launched failed with the previous agent process, and
// an ended task with no update left to send is deleted.
func (a *Agent) recoverContainers(ctx context.Context) {
	a.mu.Lock()
	var states []isolate.State
	for _, t := range a.tasks {
		if t.rec.Container != nil {
			states = append(states, *t.rec.Container)
		}
	}
	a.mu.Unlock()
	if len(states) > 0 {
		// Recovery is per container: the ones that failed are unknown to the
		// containerizer, so waiting for them reports their tasks as failed.
		if err := a.cfg.Containerizer.Recover(ctx, states); err != nil {
			a.log.Warn("some containers could not be recovered; their tasks are reported failed", "err", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	watched := 0
	for _, t := range a.tasks {
		switch {
		case t.rec.State.Terminal() && len(t.queue) == 0:
			// Its last update was acknowledged, and the previous agent process did not
			// live to delete it.
			a.removeTaskLocked(t)
		case t.rec.State.Terminal():
		case t.rec.Container == nil:
			a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskFailed, Source: api.SourceAgent, Reason: api.ReasonExecutorTerminated, Message: "agent restarted before the task's container was launched"})
		default:
			watched++
			t.done = make(chan struct{})
			killing, grace := t.rec.Killing, a.killGraceLocked(t, nil)
			taskID, containerID := t.rec.Task.TaskID.Value, t.rec.ContainerID
			a.taskGoroutines.Add(1)
			go func() {
				defer a.taskGoroutines.Done()
				defer close(t.done)
				if killing {
					// The previous process may have died before its grace period ran out.
					a.killContainer(taskID, containerID, grace)
				}
				a.watch(t, containerID, true)
			}()
			a.startHealthCheckLocked(t)
			a.startCheckLocked(t)
		}
	}
	if len(states) > 0 {
		a.log.Info("recovered containers", "containers", len(states), "watched", watched)
	}
}

// destroyEnded destroys the containers of ended tasks, as an agent stopping with its
// tasks killed does: their cgroups, mounts and network endpoints go now rather than when
// their last updates are acknowledged, which a stopping agent may never see. The tasks
// stay checkpointed without a container, so a restarted agent still sends their updates.
func (a *Agent) destroyEnded(ctx context.Context) {
	a.mu.Lock()
	var ended []*task
	for _, t := range a.tasks {
		if t.rec.State.Terminal() && t.rec.Container != nil {
			ended = append(ended, t)
		}
	}
	a.mu.Unlock()
	for _, t := range ended {
		a.mu.Lock()
		rec := t.rec
		a.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, destroyTimeout)
		err := a.cfg.Containerizer.Destroy(dctx, rec.ContainerID)
		cancel()
		if err != nil && !errors.Is(err, isolate.ErrUnknownContainer) {
			a.log.Warn("cannot destroy the container of a killed task", "task", rec.Task.TaskID.Value, "container", rec.ContainerID, "err", err)
			continue
		}
		a.mu.Lock()
		// Unless its last acknowledgement came meanwhile and removed it.
		if a.tasks[rec.key()] == t {
			rec = t.rec
			rec.Container = nil
			if err := a.cp.putTask(&rec); err != nil {
				a.log.Warn("cannot checkpoint the destroyed container", "task", rec.Task.TaskID.Value, "err", err)
			} else {
				t.rec = rec
			}
		}
		a.mu.Unlock()
	}
}

// killAll kills every task that has not ended and waits until each has reported its end.
func (a *Agent) killAll(ctx context.Context) error {
	type victim struct {
		taskID, containerID string
		grace               time.Duration
	}
	var victims []victim
	var waits []chan struct{}
	a.mu.Lock()
	for _, t := range a.tasks {
		if t.rec.State.Terminal() {
			continue
		}
		if !t.rec.Killing {
			rec := t.rec
			rec.Killing = true
			if err := a.cp.putTask(&rec); err != nil {
				a.log.Error("cannot checkpoint kill request", "task", rec.Task.TaskID.Value, "err", err)
			}
			t.rec = rec
		}
		if t.rec.Container != nil {
			victims = append(victims, victim{t.rec.Task.TaskID.Value, t.rec.ContainerID, a.killGraceLocked(t, nil)})
		}
		if t.done != nil {
			waits = append(waits, t.done)
		}
	}
	a.mu.Unlock()
	for _, v := range victims {
		a.killContainer(v.taskID, v.containerID, v.grace)
	}
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for killed tasks to exit: %w", ctx.Err())
		}
	}
	return nil
}

// taskPorts lists a task's ports in the order its "ports" resources give them.
func taskPorts(resources []api.Resource) ([]uint64, error) {
	var ports []uint64
	for _, r := range resources {
		if r.Name != alloc.Ports || r.Ranges == nil {
			continue
		}
		for _, rng := range r.Ranges.Range {
			if rng.Begin > rng.End || rng.End > maxPort {
				return nil, fmt.Errorf("invalid port range [%d-%d]", rng.Begin, rng.End)
			}
			for p := rng.Begin; p <= rng.End; p++ {
				ports = append(ports, p)
			}
		}
	}
	return ports, nil
}

// taskEnvInput is what a task's environment is made of.
type taskEnvInput struct {
	sandbox, taskID, frameworkID, agentID, hostname string
	ports                                           []uint64
}

// taskEnv is the environment the agent gives a task, as Mesos and Marathon did: the
// MESOS_* ids and sandbox, HOST, and PORT0..n, PORT and PORTS for its host ports.
func taskEnv(in taskEnvInput) []string {
	env := []string{
		"MESOS_SANDBOX=" + in.sandbox,
		"MESOS_TASK_ID=" + in.taskID,
		"MESOS_FRAMEWORK_ID=" + in.frameworkID,
		"MESOS_AGENT_ID=" + in.agentID,
		"HOST=" + in.hostname,
	}
	if len(in.ports) == 0 {
		return env
	}
	list := make([]string, len(in.ports))
	for i, p := range in.ports {
		list[i] = strconv.FormatUint(p, 10)
		env = append(env, "PORT"+strconv.Itoa(i)+"="+list[i])
	}
	return append(env, "PORT="+list[0], "PORTS="+strings.Join(list, ","))
}

// pathComponent makes a framework or task id safe as one directory name.
func pathComponent(id string) string {
	escaped := url.PathEscape(id)
	switch escaped {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return escaped
}
