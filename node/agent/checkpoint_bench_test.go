package agent

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// BenchmarkCheckpointTaskLifecycle makes the checkpoint writes of b.N tasks' whole lives
// as the agent does under load, 50 tasks at a time: the record at LAUNCH (waited for),
// TASK_RUNNING (waited for), its acknowledgement, the terminal update (waited for) and
// the task's deletion once that is acknowledged. It reports the process's CPU time per
// task.
//
//	go test -run XXX -bench CheckpointTaskLifecycle ./node/agent
func BenchmarkCheckpointTaskLifecycle(b *testing.B) {
	cp := openTestCheckpoint(b, b.TempDir())
	const concurrent = 50
	next := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range concurrent {
		wg.Go(func() {
			for i := range next {
				rec := testRecord("fw-1", fmt.Sprint("t", i), api.TaskStaging)
				if err := cp.putTask(&rec); err != nil {
					b.Error(err)
					return
				}
				rec.State = api.TaskRunning
				running, err := cp.appendUpdate(&rec, testUpdate("fw-1", rec.Task.TaskID.Value, api.TaskRunning, 1))
				if err != nil {
					b.Error(err)
					return
				}
				cp.removeUpdate(rec.key(), running)
				rec.State = api.TaskFinished
				if _, err := cp.appendUpdate(&rec, testUpdate("fw-1", rec.Task.TaskID.Value, api.TaskFinished, 2)); err != nil {
					b.Error(err)
					return
				}
				cp.deleteTask(rec.key())
			}
		})
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/task")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b testing.TB) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
