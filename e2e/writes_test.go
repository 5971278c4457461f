package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// Shape of the churn in TestWritesSurviveLeaderKills.
const (
	// churnWorkers run frameworks concurrently.
	churnWorkers = 3
	// churnRounds is how many launch-and-kill rounds a framework does before TEARDOWN.
	churnRounds = 4
	// maxChurnFrameworks stays below the masters' 50 completed frameworks, so every
	// framework torn down is still listed at the end.
	maxChurnFrameworks = 40
	// churnWait bounds each wait for an offer or a status; a framework that waits longer
	// resubscribes.
	churnWait = 20 * time.Second
)

// taskKey names a task of a framework.
type taskKey struct{ framework, task string }

// writeLedger records every write the cluster acknowledged with a 2xx during the churn,
// and what the frameworks were told about their tasks. Safe for concurrent use.
type writeLedger struct {
	mu sync.Mutex
	// subscribed holds the frameworks that got SUBSCRIBED (their record was written).
	subscribed map[string]bool
	// tornDown holds the frameworks whose TEARDOWN was answered 202.
	tornDown map[string]bool
	// accepted holds the tasks of ACCEPTs answered 202.
	accepted map[taskKey]bool
	// refused holds the tasks the master answered TASK_DROPPED or TASK_ERROR: not recorded.
	refused map[taskKey]api.TaskState
	// killed holds the tasks whose framework received TASK_KILLED, which the master records
	// before it forwards it.
	killed map[taskKey]bool
	// acked counts every acknowledged write; frameworks the frameworks started.
	acked      int
	frameworks int
}

func newWriteLedger() *writeLedger {
	return &writeLedger{subscribed: map[string]bool{}, tornDown: map[string]bool{}, accepted: map[taskKey]bool{},
		refused: map[taskKey]api.TaskState{}, killed: map[taskKey]bool{}}
}

// record runs fn under the ledger's lock and counts one acknowledged write.
func (l *writeLedger) record(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn()
	l.acked++
}

// startFramework reports whether one more framework may start.
func (l *writeLedger) startFramework() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.frameworks == maxChurnFrameworks {
		return false
	}
	l.frameworks++
	return true
}

func (l *writeLedger) writes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// waitWrites waits until n more writes than before were acknowledged.
func (l *writeLedger) waitWrites(t testing.TB, before, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for l.writes() < before+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d writes acknowledged in 2 minutes, want %d", what, l.writes()-before, n)
		}
		time.Sleep(pollInterval)
	}
}

// churnConn is one subscription of a churning framework; a goroutine reads its events.
type churnConn struct {
	id     string
	stream *api.SchedulerStream
	cancel context.CancelFunc
	events chan *api.Event
	// err is why the stream ended, set before events is closed.
	err error
	// states is each task's latest state as the framework was told; messages the message
	// that came with it.
	states   map[string]api.TaskState
	messages map[string]string
}

var errRemoved = errors.New("framework removed")

// subscribeChurn subscribes (or, with id, resubscribes) a churning framework through url.
func subscribeChurn(ctx context.Context, url, name, id string) (*churnConn, error) {
	cctx, cancel := context.WithCancel(ctx)
	info := api.FrameworkInfo{User: "root", Name: name, FailoverTimeout: 120}
	if id != "" {
		info.ID = &api.FrameworkID{Value: id}
	}
	watchdog := time.AfterFunc(subscribeTimeout, cancel)
	defer watchdog.Stop()
	stream, err := api.NewClient(url).Subscribe(cctx, info, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	ev, err := stream.Next()
	switch {
	case err != nil:
	case ev.Type == api.EventError:
		err = fmt.Errorf("%w: %+v", errRemoved, ev.Error)
	case ev.Type != api.EventSubscribed:
		err = fmt.Errorf("first event %s, want SUBSCRIBED", ev.Type)
	}
	if err != nil {
		stream.Close()
		cancel()
		return nil, err
	}
	c := &churnConn{id: ev.Subscribed.FrameworkID.Value, stream: stream, cancel: cancel, events: make(chan *api.Event),
		states: map[string]api.TaskState{}, messages: map[string]string{}}
	go func() {
		defer close(c.events)
		for {
			ev, err := stream.Next()
			if err != nil {
				c.err = err
				return
			}
			select {
			case c.events <- ev:
			case <-cctx.Done():
				c.err = cctx.Err()
				return
			}
		}
	}()
	return c, nil
}

func (c *churnConn) close() {
	c.cancel()
	c.stream.Close()
	for range c.events {
	}
}

// churner runs short-lived frameworks one after the other, recording what the cluster
// acknowledged in the ledger.
type churner struct {
	t       testing.TB
	worker  int
	masters []string
	ledger  *writeLedger
}

func (w *churner) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		if !w.ledger.startFramework() {
			<-ctx.Done()
			return
		}
		w.framework(ctx, fmt.Sprintf("churn-%d-%d", w.worker, n))
	}
}

// framework runs one framework through churnRounds rounds and its TEARDOWN, resubscribing
// with its id to each master in turn whenever its stream breaks.
func (w *churner) framework(ctx context.Context, name string) {
	id := ""
	round, launched := 0, 0
	for attempt := 0; ctx.Err() == nil; attempt++ {
		conn, err := subscribeChurn(ctx, w.masters[attempt%len(w.masters)], name, id)
		if errors.Is(err, errRemoved) {
			// After its last round the framework was tearing down: a TEARDOWN whose answer
			// was lost in a leader kill may still have committed, and then "removed" is
			// its outcome (not an acknowledged write, so not in the ledger). Before that,
			// removal would be a lost framework.
			if round < churnRounds {
				w.t.Errorf("framework %s (%s): %v", name, id, err)
			}
			return
		}
		if err == nil {
			id = conn.id
			w.ledger.record(func() { w.ledger.subscribed[id] = true })
			done, err := w.rounds(ctx, conn, name, &round, &launched)
			conn.close()
			if done || ctx.Err() != nil {
				return
			}
			w.t.Logf("framework %s (%s) resubscribes: %v", name, id, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(resubscribeInterval):
		}
	}
}

// rounds launches two tasks, kills one of them and waits for its end, churnRounds times,
// then tears the framework down. It reports whether the framework is done.
func (w *churner) rounds(ctx context.Context, c *churnConn, name string, round, launched *int) (bool, error) {
	for ; *round < churnRounds; *round++ {
		offer, err := w.nextOffer(ctx, c, 2)
		if err != nil {
			return false, err
		}
		role := "*"
		if offer.AllocationInfo != nil {
			role = offer.AllocationInfo.Role
		}
		var tasks []api.TaskInfo
		var ids []string
		for range 2 {
			*launched++
			ids = append(ids, fmt.Sprintf("%s-t%d", name, *launched))
			tasks = append(tasks, newTask(ids[len(ids)-1], sleepCommand, offer.AgentID, role))
		}
		refuse := 0.0
		op := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks}}
		if err := callWithin(ctx, func(ctx context.Context) error {
			return c.stream.Accept(ctx, []api.OfferID{offer.ID}, []api.OfferOperation{op}, &api.Filters{RefuseSeconds: &refuse})
		}); err != nil {
			return false, err
		}
		w.ledger.record(func() {
			for _, id := range ids {
				w.ledger.accepted[taskKey{c.id, id}] = true
			}
		})
		if err := w.waitStates(ctx, c, func() bool {
			return started(c.states[ids[0]]) && started(c.states[ids[1]])
		}); err != nil {
			return false, err
		}
		if c.states[ids[0]] == api.TaskRunning {
			if err := callWithin(ctx, func(ctx context.Context) error {
				return c.stream.Kill(ctx, api.TaskID{Value: ids[0]}, &offer.AgentID)
			}); err != nil {
				return false, err
			}
			if err := w.waitStates(ctx, c, func() bool { return c.states[ids[0]].Terminal() }); err != nil {
				return false, err
			}
		}
	}
	if err := callWithin(ctx, c.stream.Teardown); err != nil {
		return false, err
	}
	w.ledger.record(func() { w.ledger.tornDown[c.id] = true })
	return true, nil
}

// started reports whether a task got past launching: running or ended.
func started(s api.TaskState) bool { return s == api.TaskRunning || s.Terminal() }

func callWithin(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return fn(ctx)
}

// nextOffer handles events until an offer with room for n tasks arrives and returns it.
func (w *churner) nextOffer(ctx context.Context, c *churnConn, n int) (api.Offer, error) {
	var offer *api.Offer
	take := func(o api.Offer) bool {
		if offer != nil || scalar(o.Resources, "cpus") < float64(n)*taskCPUs || scalar(o.Resources, "mem") < float64(n)*taskMem {
			return false
		}
		offer = &o
		return true
	}
	if err := w.handleUntil(ctx, c, take, func() bool { return offer != nil }); err != nil {
		return api.Offer{}, err
	}
	return *offer, nil
}

// waitStates handles events until cond holds on the task states.
func (w *churner) waitStates(ctx context.Context, c *churnConn, cond func() bool) error {
	return w.handleUntil(ctx, c, nil, cond)
}

// handleUntil handles events until done holds, the stream ends or churnWait passes. It
// records and acknowledges updates, and hands offers to take (nil: takes none). It
// declines the offers take does not keep, for a moment only: offers come back piecemeal
// as tasks end, declined pieces merge into larger offers, and an offer held unused would
// keep its resources from every other framework.
func (w *churner) handleUntil(ctx context.Context, c *churnConn, take func(api.Offer) bool, done func() bool) error {
	timeout := time.NewTimer(churnWait)
	defer timeout.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("framework %s: nothing awaited within %v (tasks: %v)", c.id, churnWait, c.states)
		case ev, ok := <-c.events:
			if !ok {
				return fmt.Errorf("framework %s: stream ended: %w", c.id, c.err)
			}
			switch ev.Type {
			case api.EventUpdate:
				if err := w.update(ctx, c, ev.Update.Status); err != nil {
					return err
				}
			case api.EventOffers:
				var rest []api.OfferID
				for _, o := range ev.Offers.Offers {
					if take == nil || !take(o) {
						rest = append(rest, o.ID)
					}
				}
				if len(rest) > 0 {
					refuse := 0.2
					if err := callWithin(ctx, func(ctx context.Context) error {
						return c.stream.Decline(ctx, rest, &api.Filters{RefuseSeconds: &refuse})
					}); err != nil {
						return err
					}
				}
			case api.EventError:
				return fmt.Errorf("framework %s: ERROR event %+v", c.id, ev.Error)
			}
		}
	}
	return nil
}

func (w *churner) update(ctx context.Context, c *churnConn, st api.TaskStatus) error {
	key := taskKey{c.id, st.TaskID.Value}
	c.states[key.task] = st.State
	c.messages[key.task] = st.Message
	switch {
	case st.State == api.TaskKilled:
		w.ledger.mu.Lock()
		w.ledger.killed[key] = true
		w.ledger.mu.Unlock()
	case (st.State == api.TaskDropped || st.State == api.TaskError) && st.Source == api.SourceMaster:
		w.ledger.mu.Lock()
		w.ledger.refused[key] = st.State
		w.ledger.mu.Unlock()
	}
	if len(st.UUID) == 0 {
		return nil
	}
	return callWithin(ctx, func(ctx context.Context) error { return c.stream.Acknowledge(ctx, st) })
}

// TestWritesSurviveLeaderKills: three workers keep writing through the scheduler API —
// frameworks subscribe (and resubscribe after failures), launch tasks, kill some and tear
// down — while the leading master is SIGKILLed writeKills (10) times, each restarted before the
// next kill, with writes acknowledged in between. Afterwards every write that was
// acknowledged with a 2xx is in the leader's state: every framework that got SUBSCRIBED is
// listed, every one torn down is among the completed frameworks and has no live task,
// every task of an ACCEPT answered 202 is listed (live or completed) unless the master
// told the framework it dropped it, and every task whose framework was told TASK_KILLED is
// completed as KILLED.
func TestWritesSurviveLeaderKills(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	masters := c.StartMasters(3)
	c.StartAgents(2)
	c.WaitForLeader()
	c.WaitForAgents(2)

	urls := make([]string, len(masters))
	for i, m := range masters {
		urls[i] = m.APIURL()
	}
	ledger := newWriteLedger()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	for worker := range churnWorkers {
		w := &churner{t: t, worker: worker, masters: urls, ledger: ledger}
		wg.Go(func() { w.run(ctx) })
	}

	for kill := 1; kill <= writeKills; kill++ {
		ledger.waitWrites(t, ledger.writes(), 5, fmt.Sprintf("before kill %d", kill))
		leader := leaderWithin(t, c, DefaultWaitTimeout)
		if err := leader.Proc().Kill(); err != nil {
			t.Fatal(err)
		}
		next := leaderWithin(t, c, DefaultWaitTimeout)
		if err := leader.Proc().Restart(); err != nil {
			t.Fatal(err)
		}
		waitFollows(t, c, leader, next, DefaultWaitTimeout)
		t.Logf("kill %d: %s killed, %s leads; %d writes acknowledged so far", kill, leader.Name(), next.Name(), ledger.writes())
	}
	ledger.waitWrites(t, ledger.writes(), 3, "after the last kill")
	stop()
	wg.Wait()

	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := leaderWithin(t, c, DefaultWaitTimeout)
	frameworks, err := c.Client(leader).GetFrameworks(rctx)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.Client(leader).GetTasks(rctx)
	if err != nil {
		t.Fatal(err)
	}
	active, completed := map[string]bool{}, map[string]bool{}
	for _, f := range frameworks.Frameworks {
		active[f.FrameworkInfo.ID.Value] = true
	}
	for _, f := range frameworks.CompletedFrameworks {
		completed[f.FrameworkInfo.ID.Value] = true
	}
	live, ended := map[taskKey]api.Task{}, map[taskKey]api.Task{}
	for _, list := range [][]api.Task{tasks.Tasks, tasks.UnreachableTasks} {
		for _, task := range list {
			live[taskKey{task.FrameworkID.Value, task.TaskID.Value}] = task
		}
	}
	for _, task := range tasks.CompletedTasks {
		ended[taskKey{task.FrameworkID.Value, task.TaskID.Value}] = task
	}

	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	t.Logf("%d writes acknowledged: %d frameworks subscribed, %d torn down, %d tasks accepted (%d refused by the master), %d told KILLED",
		ledger.acked, len(ledger.subscribed), len(ledger.tornDown), len(ledger.accepted), len(ledger.refused), len(ledger.killed))
	if len(ledger.tornDown) == 0 || len(ledger.killed) == 0 {
		t.Errorf("the churn tore down %d frameworks and saw %d tasks killed, want some of each", len(ledger.tornDown), len(ledger.killed))
	}
	for id := range ledger.subscribed {
		if !active[id] && !completed[id] {
			t.Errorf("framework %s got SUBSCRIBED but is not listed", id)
		}
	}
	for id := range ledger.tornDown {
		if !completed[id] || active[id] {
			t.Errorf("framework %s was torn down (202) but is active %t, completed %t", id, active[id], completed[id])
		}
	}
	for key := range ledger.accepted {
		if _, ok := ledger.refused[key]; ok {
			if task, ok := live[key]; ok {
				t.Errorf("task %s of %s was refused by the master yet is live (%s)", key.task, key.framework, task.State)
			}
			continue
		}
		task, isLive := live[key]
		done, isEnded := ended[key]
		switch {
		case !isLive && !isEnded:
			t.Errorf("task %s of %s was accepted (202) but is not listed", key.task, key.framework)
		case ledger.tornDown[key.framework] && isLive:
			t.Errorf("task %s of torn-down %s is still live (%s)", key.task, key.framework, task.State)
		case ledger.killed[key] && (!isEnded || done.State != api.TaskKilled):
			t.Errorf("task %s of %s was reported KILLED to its framework but is listed live %t, completed as %s", key.task, key.framework, isLive, done.State)
		}
	}
}
