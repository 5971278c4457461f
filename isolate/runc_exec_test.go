package isolate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRuncExec(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 1000")
	spec.Command.Environment = nil
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	ctx := context.Background()
	tests := []struct {
		name   string
		script string
		want   int
	}{
		// Inside the container's PID namespace PID 1 is the task; on the host it is init.
		{"runs in the container's PID namespace", `[ "$(cat /proc/1/comm)" = sleep ]`, 0},
		{"runs in the task's working directory", `[ "$PWD" = /mnt/mesos/sandbox ] && [ -e stdout ]`, 0},
		{"has the task's environment and the extra", `[ "$MESOS_SANDBOX" = /mnt/mesos/sandbox ] && [ "$CHECK" = yes ]`, 0},
		{"runs in the task's cgroups", `[ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ]`, 0},
		{"exit code", `exit 7`, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, err := r.Exec(ctx, spec.ContainerID, []string{"/bin/sh", "-c", tt.script}, []string{"CHECK=yes"})
			if err != nil || code != tt.want {
				t.Errorf("Exec = %d, %v; want %d", code, err, tt.want)
			}
		})
	}

	// A command that outlives its context is killed.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if code, err := r.Exec(short, spec.ContainerID, []string{"/bin/sh", "-c", "exec sleep 100"}, nil); code != -1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec past its deadline = %d, %v; want -1 and the deadline", code, err)
	}
	if took := time.Since(start); took > testTimeout {
		t.Errorf("Exec past its deadline returned after %v", took)
	}
	if _, err := r.Exec(ctx, "no-such", []string{"true"}, nil); !errors.Is(err, ErrUnknownContainer) {
		t.Errorf("Exec in an unknown container: %v, want ErrUnknownContainer", err)
	}
	if _, err := r.Exec(ctx, spec.ContainerID, nil, nil); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("Exec of nothing: %v", err)
	}

	if err := r.Kill(ctx, spec.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	waitExit(t, r, spec.ContainerID)
	if _, err := r.Exec(ctx, spec.ContainerID, []string{"true"}, nil); err == nil {
		t.Error("Exec in an exited container succeeded")
	}
	runcDestroy(t, r, spec, paths)
}
