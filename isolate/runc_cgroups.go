package isolate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

// cgroupPoll is how often a container's cgroups are checked for processes that have yet
// to exit.
const cgroupPoll = 10 * time.Millisecond

// cgroupManager returns the manager of a container's cgroups: those at paths when known
// (from libcontainer's state), else those its config names.
func cgroupManager(cg *cgroups.Cgroup, paths map[string]string) (cgroups.Manager, error) {
	if cg == nil {
		return nil, errors.New("no cgroup config")
	}
	if cg.Resources == nil {
		// The v1 managers expect resources, even when there are none.
		cg.Resources = &cgroups.Resources{}
	}
	if len(paths) > 0 {
		return manager.NewWithPaths(cg, paths)
	}
	return manager.New(cg)
}

// oomKillCount returns how many of the container's processes the kernel killed for
// exceeding its memory limit.
func oomKillCount(cg *cgroups.Cgroup, paths map[string]string) (uint64, error) {
	m, err := cgroupManager(cg, paths)
	if err != nil {
		return 0, err
	}
	return m.OOMKillCount()
}

// destroyCgroups removes a container's cgroups when libcontainer cannot, as when its init
// died before libcontainer recorded it: whatever still runs in them is killed first.
func destroyCgroups(ctx context.Context, cg *cgroups.Cgroup) error {
	m, err := cgroupManager(cg, nil)
	if err != nil {
		return err
	}
	for {
		pids, err := m.GetAllPids()
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("list the processes of the container's cgroups: %w", err)
		}
		if len(pids) == 0 {
			break
		}
		// Frozen, they cannot fork new ones while they are killed.
		if err := m.Freeze(cgroups.Frozen); err != nil {
			return fmt.Errorf("freeze the container's cgroups: %w", err)
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("kill process %d of the container: %w", pid, err)
			}
		}
		if err := m.Freeze(cgroups.Thawed); err != nil {
			return fmt.Errorf("thaw the container's cgroups: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the container's processes to exit: %w", ctx.Err())
		case <-time.After(cgroupPoll):
		}
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove the container's cgroups: %w", err)
	}
	return nil
}
