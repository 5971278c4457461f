// Package isolate runs tasks in isolated containers on an agent: the Containerizer seam,
// the runc containerizer (libcontainer namespaces and cgroup limits, on the host's
// filesystem or an OCI image's from isolate/image, on the host's network or
// isolate/network's bridge, with volumes: host and sandbox paths, local persistent
// volumes, the local volume driver's, secrets) and the plain-process containerizer, the
// unprivileged fallback.
package isolate

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
)

// ErrUnknownContainer is returned for a container id the containerizer does not know.
var ErrUnknownContainer = errors.New("unknown container")

// ErrClosed is returned by a containerizer that was let go of: a Process after Close or
// StopSupervisor, a Runc after Release.
var ErrClosed = errors.New("containerizer is closed")

// LaunchSpec is everything a containerizer needs to start one task.
type LaunchSpec struct {
	// ContainerID is unique per launch on this agent.
	ContainerID string
	// TaskID is the framework's task id, for logs and the environment.
	TaskID string
	// Sandbox is the task's directory, already created by the agent, and its working
	// directory unless its image names one; the task's stdout and stderr go to
	// Sandbox/stdout and Sandbox/stderr, rotated to stdout.1 … (see LogRotation). The
	// process containerizer creates each file at its stream's first output when the
	// task runs as the agent's own user, so a task that writes nothing has none (unless
	// the sandbox came with them).
	Sandbox string
	// Command is what runs: through /bin/sh -c when Command.IsShell(), else Value with
	// Arguments as argv. In a container with an image, a command without a value runs
	// the image's entrypoint and cmd (see Runc).
	Command api.CommandInfo
	// Container is the task's ContainerInfo; nil runs in the host's filesystem.
	Container *api.ContainerInfo
	// Env is added to the task's environment after Command.Environment (MESOS_SANDBOX,
	// MESOS_TASK_ID, PORT0.., HOST, …), as "NAME=value".
	Env []string
	// FrameworkUser is the user of the task's framework (FrameworkInfo.user): the task
	// runs as this user when neither Command.User nor the container's image names one.
	// The agent passes its TaskUser when the framework names none. Empty runs such a task
	// as the agent's own user.
	FrameworkUser string
	// CPUs and MemMB are the task's resources, for containerizers that enforce limits.
	CPUs  float64
	MemMB float64
	// Resources are the task's resources as its TaskInfo has them: the disk resources
	// with a persistence id and a volume are local persistent volumes, which the runc
	// containerizer keeps across the task's launches and mounts where their volume says.
	Resources []api.Resource
}

// State is what the agent checkpoints about a running container so a restarted agent can
// re-attach to it with Recover. Containerizers own its meaning.
type State struct {
	ContainerID string `json:"container_id"`
	// Kind names the containerizer that made it ("process", "runc").
	Kind    string `json:"kind"`
	Sandbox string `json:"sandbox"`
	// PID is the task's main process, which leads the task's process group; ShimPID the
	// supervisor that is its parent (for the process containerizer, one supervisor serves
	// every container of the agent).
	PID     int `json:"pid"`
	ShimPID int `json:"shim_pid"`
	// StartTime guards PID against pid reuse: the task's start time in clock ticks since
	// boot (field 22 of /proc/PID/stat).
	StartTime uint64 `json:"start_time"`
	// NetworkInfos are the container's addresses and port mappings on a network of its
	// own (the runc containerizer's bridge), as TASK_RUNNING's container_status reports
	// them; empty for a container on the host's network.
	NetworkInfos []api.NetworkInfo `json:"network_infos,omitempty"`
}

// ExitStatus is how a container ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when the task was killed by a signal.
	Code int
	// Signal is the terminating signal number, 0 when it exited.
	Signal int
	// OOMKilled reports that the memory limit killed it.
	OOMKilled bool
	// Message says what happened in words ("exited with status 1", "killed by SIGKILL").
	Message string
}

// Succeeded reports a zero exit code.
func (s ExitStatus) Succeeded() bool { return s.Code == 0 && s.Signal == 0 && !s.OOMKilled }

// Containerizer starts, watches and stops containers. Implementations are safe for
// concurrent use; containers outlive the agent process that started them.
type Containerizer interface {
	// Launch starts the container and returns once its process is running.
	Launch(ctx context.Context, spec LaunchSpec) (State, error)
	// Wait blocks until the container exits (or ctx ends) and returns how it ended. It may
	// be called for launched and recovered containers, by several callers.
	Wait(ctx context.Context, containerID string) (ExitStatus, error)
	// Kill sends SIGTERM to every process of the container, then SIGKILL after grace.
	// It returns without waiting for the exit; Wait reports it.
	Kill(ctx context.Context, containerID string, grace time.Duration) error
	// Recover re-attaches to containers a previous agent process launched. Containers that
	// exited meanwhile are recovered too, and Wait returns their status at once.
	Recover(ctx context.Context, states []State) error
	// Destroy releases what is left of an exited container (its records, cgroups); the
	// sandbox directory stays for the logs.
	Destroy(ctx context.Context, containerID string) error
	// Release lets go of the containerizer when the agent stops. Running containers keep
	// running for the next agent process, unless tasksKilled says none is left, in which
	// case helper processes (the process containerizer's supervisor) stop too.
	Release(ctx context.Context, tasksKilled bool) error
}

// helperExecutable is the binary a containerizer re-executes as its helper processes:
// configured, or else the running one.
func helperExecutable(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	return os.Executable()
}

// goRuntimeEnv picks the Go runtime's settings from the agent's environment for the
// helper processes (the supervisor, the shims), which need nothing else from it.
func goRuntimeEnv(agentEnv []string) []string {
	var env []string
	for _, kv := range agentEnv {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GODEBUG", "GOTRACEBACK", "GORACE":
			env = append(env, kv)
		}
	}
	return env
}

// loggerOrDiscard is logger, or one that discards everything when it is nil.
func loggerOrDiscard(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}
