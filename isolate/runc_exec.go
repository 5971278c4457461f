package isolate

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Execer is a containerizer that can run a process inside one of its running containers,
// as Mesos ran COMMAND health checks: in the container's namespaces and root, with its
// cgroups, user and environment. The runc containerizer is one; the plain-process
// containerizer is not (its tasks share the host's view, so a command can run there).
type Execer interface {
	// Exec runs argv in the container and returns its exit code, or -1 and an error
	// when it could not run or ctx ended first (it is then killed). env is added to the
	// task's own environment; the process starts in the task's working directory as the
	// task's user, with no input or output.
	Exec(ctx context.Context, containerID string, argv, env []string) (int, error)
}

var _ Execer = (*Runc)(nil)

// Exec runs argv inside a running container (see Execer).
func (r *Runc) Exec(ctx context.Context, containerID string, argv, env []string) (int, error) {
	if len(argv) == 0 {
		return -1, errors.New("exec: no command")
	}
	c, err := r.containers.lookup(containerID)
	if err != nil {
		return -1, err
	}
	spec, err := readRecord(c.dir, runcSpecFile, parseRuncShimSpec)
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	lc, err := libcontainer.Load(r.libcontainerRoot(), spec.ID)
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return -1, err
	}
	defer devNull.Close()
	p := &libcontainer.Process{
		Args:             argv,
		Env:              append(append([]string(nil), spec.Process.Env...), env...),
		Cwd:              spec.Process.Cwd,
		UID:              spec.Process.UID,
		GID:              spec.Process.GID,
		AdditionalGroups: spec.Process.Groups,
		Stdin:            devNull,
		Stdout:           devNull,
		Stderr:           devNull,
		Init:             false,
	}
	if err := lc.Run(p); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Signal(unix.SIGKILL)
		case <-done:
		}
	}()
	state, err := p.Wait()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("exec in %s: %w", containerID, ctx.Err())
	}
	if state == nil {
		return -1, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	if ws, ok := state.Sys().(unix.WaitStatus); ok && ws.Signaled() {
		return -1, fmt.Errorf("exec in %s: killed by signal %s", containerID, unix.SignalName(ws.Signal()))
	}
	return state.ExitCode(), nil
}
