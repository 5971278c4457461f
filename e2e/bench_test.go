package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/atoll/atoll/api"
)

// BenchmarkRaftWritesThreeMasters measures writes through the scheduler API of a cluster
// of three masters on their own hosts, Raft replicating every write to a majority over the
// bridge, with two agents running real processes:
//
//   - tasks: four frameworks each launch batches of ten `true` tasks, one batch per offer,
//     as fast as offers come, acknowledging every update. One op is one task launched and
//     finished (its record and two status updates go through Raft).
//   - frameworks: 16 clients subscribe new frameworks (one Raft write each before
//     SUBSCRIBED) and hang up (the disconnect is written too; the frameworks stay
//     registered for their failover_timeout). One op is one framework subscribed.
//
// Both report raft-writes/s, the leader's Raft log growth per second, besides their ops
// per second.
//
//	go test -run XXX -bench RaftWrites -benchtime 2000x ./e2e
func BenchmarkRaftWritesThreeMasters(b *testing.B) {
	c := NewCluster(b)
	c.StartMasters(3)
	c.StartAgents(2)
	leader := c.WaitForLeader()
	c.WaitForAgents(2)
	raftIndex := func(b *testing.B) uint64 {
		b.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		peers, err := c.Client(leader).RaftPeers(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return peers.LastIndex
	}
	b.Run("tasks", func(b *testing.B) {
		first := raftIndex(b)
		benchmarkTasks(b, leader)
		b.ReportMetric(float64(raftIndex(b)-first)/b.Elapsed().Seconds(), "raft-writes/s")
	})
	b.Run("frameworks", func(b *testing.B) {
		first := raftIndex(b)
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				conn, err := subscribeChurn(context.Background(), leader.APIURL(), "bench-subscribe", "")
				if err != nil {
					b.Error(err)
					return
				}
				conn.close()
			}
		})
		b.StopTimer()
		elapsed := b.Elapsed()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frameworks/s")
		b.ReportMetric(float64(raftIndex(b)-first)/elapsed.Seconds(), "raft-writes/s")
	})
}

// benchmarkTasks runs the tasks half of BenchmarkRaftWritesThreeMasters.
func benchmarkTasks(b *testing.B, leader *Host) {
	const frameworks, batch = 4, 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &churner{t: b, ledger: newWriteLedger()}
	conns := make([]*churnConn, frameworks)
	for i := range conns {
		conn, err := subscribeChurn(ctx, leader.APIURL(), fmt.Sprintf("bench-%d", i), "")
		if err != nil {
			b.Fatal(err)
		}
		defer conn.close()
		conns[i] = conn
	}
	finished := make(chan struct{}, frameworks*batch)
	errs := make(chan error, frameworks)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, conn := range conns {
		wg.Go(func() {
			for round := 0; ctx.Err() == nil; round++ {
				if err := w.launchBatch(ctx, conn, fmt.Sprintf("r%d-", round), batch, finished); err != nil {
					if !errors.Is(err, context.Canceled) {
						errs <- err
					}
					return
				}
			}
		})
	}
	for b.Loop() {
		select {
		case <-finished:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// launchBatch launches n `true` tasks from one offer and waits until all of them
// finished, acknowledging their updates and signalling finished once per task.
func (w *churner) launchBatch(ctx context.Context, c *churnConn, prefix string, n int, finished chan<- struct{}) error {
	offer, err := w.nextOffer(ctx, c, n)
	if err != nil {
		return err
	}
	role := "*"
	if offer.AllocationInfo != nil {
		role = offer.AllocationInfo.Role
	}
	tasks := make([]api.TaskInfo, n)
	for i := range tasks {
		tasks[i] = newTask(fmt.Sprintf("%s%d", prefix, i), "true", offer.AgentID, role)
	}
	refuse := 0.0
	op := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks}}
	if err := callWithin(ctx, func(ctx context.Context) error {
		return c.stream.Accept(ctx, []api.OfferID{offer.ID}, []api.OfferOperation{op}, &api.Filters{RefuseSeconds: &refuse})
	}); err != nil {
		return err
	}
	done := map[string]bool{}
	return w.waitStates(ctx, c, func() bool {
		for _, task := range tasks {
			id := task.TaskID.Value
			if done[id] || !c.states[id].Terminal() {
				continue
			}
			done[id] = true
			if st := c.states[id]; st != api.TaskFinished {
				// Reported by the caller's select through the next waitStates' timeout
				// would hide the cause: fail loudly instead.
				w.t.Errorf("task %s ended %s (%s), want %s", id, st, c.messages[id], api.TaskFinished)
			}
			select {
			case finished <- struct{}{}:
			case <-ctx.Done():
			}
		}
		return len(done) == len(tasks)
	})
}
