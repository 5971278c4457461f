package isolate

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// benchLaunchers is how many goroutines launch at once, as an agent starting a burst of
// tasks would.
const benchLaunchers = 64

// BenchmarkLaunch measures the containerizer's launch throughput: b.N containers running
// the shell command "true", each launched, waited for and destroyed by one of
// benchLaunchers concurrent launchers. Besides launches/s it reports the CPU time each
// launch costs in the launching process (the agent's share), in the supervisor, and in
// the tasks themselves (the shell's exec, run and exit), which no launcher can avoid.
func BenchmarkLaunch(b *testing.B) {
	// Logs are discarded: b.Log output is always shown for benchmarks.
	cfg := DefaultProcessConfig()
	cfg.StateDir = b.TempDir()
	p, err := NewProcess(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := p.StopSupervisor(context.Background()); err != nil {
			b.Error(err)
		}
	})
	sandbox := b.TempDir()
	script := "true"
	ctx := context.Background()
	// The first launch starts the supervisor, which is not what is measured.
	if err := launchWaitDestroy(ctx, p, LaunchSpec{ContainerID: "bench-warmup", Sandbox: sandbox, Command: api.CommandInfo{Value: &script}}); err != nil {
		b.Fatal(err)
	}
	supervisor := p.conn.pid
	supervisorBefore, tasksBefore := supervisorCPU(b, supervisor)
	var selfBefore syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &selfBefore)

	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range benchLaunchers {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				if err := launchWaitDestroy(ctx, p, LaunchSpec{
					ContainerID: "bench-" + strconv.FormatInt(n, 10),
					Sandbox:     sandbox,
					Command:     api.CommandInfo{Value: &script},
				}); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	var selfAfter syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &selfAfter)
	supervisorAfter, tasksAfter := supervisorCPU(b, supervisor)
	perLaunch := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "launches/s")
	b.ReportMetric(perLaunch(rusageCPU(selfAfter)-rusageCPU(selfBefore)), "launcher-µs/op")
	b.ReportMetric(perLaunch(supervisorAfter-supervisorBefore), "supervisor-µs/op")
	b.ReportMetric(perLaunch(tasksAfter-tasksBefore), "task-µs/op")
}

// launchWaitDestroy runs one container to completion and checks that it succeeded.
func launchWaitDestroy(ctx context.Context, p *Process, spec LaunchSpec) error {
	if _, err := p.Launch(ctx, spec); err != nil {
		return err
	}
	status, err := p.Wait(ctx, spec.ContainerID)
	if err != nil {
		return err
	}
	if !status.Succeeded() {
		return fmt.Errorf("%s: %s", spec.ContainerID, status.Message)
	}
	return p.Destroy(ctx, spec.ContainerID)
}

// supervisorCPU returns the CPU time the supervisor has used and that its reaped
// children, the tasks, have.
func supervisorCPU(b *testing.B, pid int) (own, children time.Duration) {
	b.Helper()
	fields := procStat(pid)
	if fields == nil {
		b.Fatalf("supervisor %d is not running", pid)
	}
	// Fields 14 to 17 (utime, stime, cutime, cstime); fields[0] is field 3.
	var ticks [4]int64
	for i := range ticks {
		n, err := strconv.ParseInt(fields[11+i], 10, 64)
		if err != nil {
			b.Fatalf("supervisor stat: %v", err)
		}
		ticks[i] = n
	}
	tick := time.Second / clockTicks
	return time.Duration(ticks[0]+ticks[1]) * tick, time.Duration(ticks[2]+ticks[3]) * tick
}

// rusageCPU is the user and system time in a rusage.
func rusageCPU(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
