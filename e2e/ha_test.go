package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// leaderKills is how many times TestLeaderKillsKeepTasks kills the leading master (the
// failover figures are over 20 kills); writeKills how many times the continuous-writes
// test does, as the issue asks.
const (
	leaderKills = 20
	writeKills  = 10
)

// others returns masters without h.
func others(masters []*Host, h *Host) []*Host {
	var out []*Host
	for _, m := range masters {
		if m != h {
			out = append(out, m)
		}
	}
	return out
}

// TestLeaderKillsKeepTasks: a framework keeps 20 tasks running on two agents while the
// leading master is SIGKILLed leaderKills (20) times, each restarted and rejoined before the
// next kill. After every kill a new leader accepts the framework's resubscription (the
// first write after the kill; the time from kill to that write is the figure
// leader_kill_to_write), and afterwards the same 20 task processes run: GET_TASKS lists
// exactly those 20 tasks RUNNING with their original executor pids, those pids are the
// processes the agents started, and the framework never had to launch a task twice.
func TestLeaderKillsKeepTasks(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	masters := c.StartMasters(3)
	c.StartAgents(2)
	c.WaitForLeader()
	c.WaitForAgents(2)

	// Not partition-aware: a task the masters gave up on would be LOST, so launched again.
	s := startScheduler(t, masters, schedulerOptions{name: "keeper"})
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("sleeper-%02d", i)
	}
	s.Want(ids...)
	v := s.waitUntil(2*time.Minute, "running 20 tasks", func(v schedView) bool { return v.allRunning(ids) && len(v.PIDs) == len(ids) })
	pids := v.PIDs
	starts := processStarts(t, pids)

	var toWrite []time.Duration
	for kill := 1; kill <= leaderKills; kill++ {
		leader := leaderWithin(t, c, DefaultWaitTimeout)
		before := len(s.View().Subscribed)
		killed := time.Now()
		if err := leader.Proc().Kill(); err != nil {
			t.Fatal(err)
		}
		v := s.waitUntil(DefaultWaitTimeout, fmt.Sprintf("resubscribed after kill %d", kill), func(v schedView) bool { return len(v.Subscribed) > before })
		toWrite = append(toWrite, v.Subscribed[before].Sub(killed))
		next := leaderWithin(t, c, DefaultWaitTimeout)
		if next == leader {
			t.Fatalf("kill %d: %s leads again before its restart", kill, leader.Name())
		}
		t.Logf("kill %d: %s killed, %s leads; framework resubscribed after %v", kill, leader.Name(), next.Name(), toWrite[len(toWrite)-1])
		if err := leader.Proc().Restart(); err != nil {
			t.Fatal(err)
		}
		waitFollows(t, c, leader, next, DefaultWaitTimeout)
		c.WaitForAgents(2)
	}
	recordFigure(t, "leader_kill_to_write_p50", milliseconds(percentile(toWrite, 50)), "ms", len(toWrite))
	recordFigure(t, "leader_kill_to_write_max", milliseconds(percentile(toWrite, 100)), "ms", len(toWrite))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := leaderWithin(t, c, DefaultWaitTimeout)
	tasks, err := c.Client(leader).GetTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v = s.View()
	var live []string
	for _, task := range tasks.Tasks {
		live = append(live, task.TaskID.Value)
		if task.FrameworkID.Value != v.ID || task.State != api.TaskRunning {
			t.Errorf("task %s of framework %s is %s, want %s of %s", task.TaskID.Value, task.FrameworkID.Value, task.State, api.TaskRunning, v.ID)
		}
		for _, st := range task.Statuses {
			if cs := st.ContainerStatus; cs != nil && cs.ExecutorPID != pids[task.TaskID.Value] {
				t.Errorf("task %s: a %s status has executor_pid %d, want %d", task.TaskID.Value, st.State, cs.ExecutorPID, pids[task.TaskID.Value])
			}
		}
	}
	slices.Sort(live)
	if !slices.Equal(live, ids) {
		t.Errorf("GET_TASKS lists live tasks %q, want exactly %q", live, ids)
	}
	if len(tasks.UnreachableTasks) != 0 || len(tasks.CompletedTasks) != 0 {
		t.Errorf("GET_TASKS lists %d unreachable and %d completed tasks, want none", len(tasks.UnreachableTasks), len(tasks.CompletedTasks))
	}
	checkSameProcesses(t, pids, starts)
	for _, id := range ids {
		if n := v.Launches[id]; n != 1 {
			t.Errorf("task %s was launched %d times, want once", id, n)
		}
	}
	if len(v.Launches) != len(ids) {
		t.Errorf("the framework launched %d task ids, want %d", len(v.Launches), len(ids))
	}
	if bad := v.stayedRunning(ids); bad != "" {
		t.Errorf("task %s", bad)
	}
	if len(v.Errors) > 0 {
		t.Errorf("the framework saw errors: %q", v.Errors)
	}
	t.Logf("the framework subscribed %d times for %d leader kills", len(v.Subscribed), leaderKills)
}

// TestLeaderPartition: the leader is cut off from the other two masters (agents and the
// test process still reach every master). The majority elects a new leader; the old one
// steps down: a SUBSCRIBE sent to it right after the cut, while it may still believe it
// leads, is not answered with SUBSCRIBED, and once it steps down its scheduler API
// answers 307 or 503 "no leading master". A framework and a task written through the new
// leader during the cut reach the old leader after the heal: it rejoins as a follower of
// the leader and its own replica (GET_STATE ?stale=true) equals the leader's.
func TestLeaderPartition(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, WithPartitions())
	masters := c.StartMasters(3)
	c.StartAgents(1)
	old := c.WaitForLeader()
	c.WaitForAgents(1)
	before := startScheduler(t, masters, schedulerOptions{name: "before"})
	before.Want("before-1")
	before.waitUntil(2*time.Minute, "running before-1", func(v schedView) bool { return v.allRunning([]string{"before-1"}) })

	// Concurrently with the cut: a write through the leader as it loses its majority.
	type earlyReply struct {
		outcome string
		err     error
	}
	early := make(chan earlyReply, 1)
	cut := time.Now()
	if err := old.Partition(others(masters, old)...); err != nil {
		t.Fatal(err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		reply, err := postRaw(ctx, old.APIURL()+api.SchedulerPath, subscribeCall("early"))
		switch {
		case err != nil:
			// No answer at all is no acknowledgement.
			early <- earlyReply{outcome: err.Error()}
		case reply.status == http.StatusOK && strings.Contains(reply.body, string(api.EventSubscribed)):
			early <- earlyReply{err: fmt.Errorf("SUBSCRIBE sent to the cut-off leader %s right after the cut was answered SUBSCRIBED: %s", old.Name(), reply.body)}
		default:
			early <- earlyReply{outcome: fmt.Sprintf("%d %s", reply.status, strings.TrimSpace(reply.body))}
		}
	}()

	leader := c.WaitForLeaderOtherThan(old)
	elected := time.Since(cut)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := localView(context.Background(), old)
		if v.err == nil && !v.self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still says it leads 30 s after the cut (err %v)", old.Name(), v.err)
		}
		time.Sleep(pollInterval)
	}
	steppedDown := time.Since(cut)
	t.Logf("cut at %s: %s leads after %v, %s stepped down after %v", cut.Format(time.RFC3339Nano), leader.Name(), elected, old.Name(), steppedDown)
	recordFigure(t, "leader_partition_to_new_leader", milliseconds(elected), "ms", 1)
	if reply := <-early; reply.err != nil {
		t.Error(reply.err)
	} else {
		t.Logf("SUBSCRIBE sent to %s right after the cut: %s", old.Name(), reply.outcome)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reply, err := postRaw(ctx, old.APIURL()+api.SchedulerPath, subscribeCall("late"))
	switch {
	case err != nil:
		t.Errorf("SUBSCRIBE to the deposed %s: %v, want a 307 or 503 answer", old.Name(), err)
	case reply.status == http.StatusServiceUnavailable:
		if !strings.Contains(reply.body, "no leading master") {
			t.Errorf("503 from the deposed %s says %q, want it to say there is no leading master", old.Name(), reply.body)
		}
	case reply.status == http.StatusTemporaryRedirect:
		if reply.location == "" || strings.HasPrefix(reply.location, old.APIURL()) {
			t.Errorf("307 from the deposed %s points at %q, want another master", old.Name(), reply.location)
		}
	default:
		t.Errorf("SUBSCRIBE to the deposed %s answered %d %q, want 307 or 503", old.Name(), reply.status, reply.body)
	}
	if stream, err := c.Client(old).Subscribe(ctx, subscribeCall("through-old").Subscribe.FrameworkInfo, nil); err == nil {
		ev, err := stream.Next()
		stream.Close()
		if err == nil && ev.Type == api.EventSubscribed && ev.Subscribed.MasterInfo != nil && ev.Subscribed.MasterInfo.PID == "master@"+old.Addr(APIPort) {
			t.Errorf("the deposed %s accepted a SUBSCRIBE as leader", old.Name())
		}
	}

	// Written while the old leader is cut off: the framework's stream from it ended, so it
	// resubscribes through the new leader.
	before.Want("during-1")
	before.waitUntil(2*time.Minute, "running during-1", func(v schedView) bool { return v.allRunning([]string{"before-1", "during-1"}) })
	during := startScheduler(t, []*Host{leader}, schedulerOptions{name: "during"})
	during.waitUntil(DefaultWaitTimeout, "subscribed", func(v schedView) bool { return v.ID != "" })

	if err := old.Heal(); err != nil {
		t.Fatal(err)
	}
	leader = leaderWithin(t, c, DefaultWaitTimeout)
	if leader == old {
		t.Fatalf("%s, behind the others, leads after the heal", old.Name())
	}
	// Another election may follow the heal (a leader starved of CPU loses its lease):
	// the old leader must follow whichever master leads, and say so in its Raft view.
	deadline = time.Now().Add(DefaultWaitTimeout)
	for {
		leader = waitFollows(t, c, old, leader, DefaultWaitTimeout)
		problem := followsInRaft(ctx, c, old, leader)
		if problem == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s within %v of the heal", problem, DefaultWaitTimeout)
		}
		time.Sleep(pollInterval)
	}

	var got, want stateDigest
	deadline = time.Now().Add(DefaultWaitTimeout)
	for {
		oldState, oerr := staleState(ctx, old)
		leaderState, lerr := staleState(ctx, leader)
		if oerr == nil && lerr == nil {
			got, want = digest(oldState), digest(leaderState)
			if got.equal(want) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's replica differs from the leader %s's (errors %v, %v):\n got %+v\nwant %+v", old.Name(), leader.Name(), oerr, lerr, got, want)
		}
		time.Sleep(pollInterval)
	}
	duringID := during.View().ID
	if !slices.ContainsFunc(got.Frameworks, func(f string) bool { return strings.HasPrefix(f, duringID+" ") }) {
		t.Errorf("%s's replica lacks framework %s, subscribed during the cut: %q", old.Name(), duringID, got.Frameworks)
	}
	if !slices.ContainsFunc(got.Tasks, func(task string) bool {
		return strings.Contains(task, "/during-1 "+string(api.TaskRunning)+" ")
	}) {
		t.Errorf("%s's replica lacks task during-1 RUNNING, launched during the cut: %q", old.Name(), got.Tasks)
	}
	if errs := before.View().Errors; len(errs) > 0 {
		t.Errorf("the framework saw errors: %q", errs)
	}
}

// followsInRaft says what is wrong, or "" when nothing is, with h's Raft view: it must
// name leader as the leader, list 3 servers and call itself a follower.
func followsInRaft(ctx context.Context, c *Cluster, h, leader *Host) string {
	peers, err := c.Client(h).RaftPeers(ctx)
	if err != nil {
		return fmt.Sprintf("raft peers on %s: %v", h.Name(), err)
	}
	leaderPeers, err := c.Client(leader).RaftPeers(ctx)
	if err != nil {
		return fmt.Sprintf("raft peers on %s: %v", leader.Name(), err)
	}
	if peers.LeaderID != leaderPeers.AnsweredBy || peers.AnsweredBy == peers.LeaderID || len(peers.Servers) != 3 {
		return fmt.Sprintf("raft peers on %s: leader %q, answered by %q, %d servers; want leader %q (%s), 3 servers", h.Name(), peers.LeaderID, peers.AnsweredBy, len(peers.Servers), leaderPeers.AnsweredBy, leader.Name())
	}
	for _, srv := range peers.Servers {
		if srv.ID == peers.AnsweredBy && srv.State != api.RaftFollower {
			return fmt.Sprintf("%s says it is %s, want %s", h.Name(), srv.State, api.RaftFollower)
		}
	}
	return ""
}

// TestQuorumLoss: with two of three masters stopped, the remaining one answers the
// operator and scheduler APIs with 503 saying no leader is elected, while the tasks on
// the agent keep running (the same processes). Once the two masters restart, they elect a
// leader by themselves, the agent is active again, and GET_TASKS shows the tasks RUNNING,
// never having ended.
func TestQuorumLoss(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	masters := c.StartMasters(3)
	c.StartAgents(1)
	leader := c.WaitForLeader()
	c.WaitForAgents(1)
	s := startScheduler(t, masters, schedulerOptions{name: "quorum", partitionAware: true})
	ids := []string{"q-1", "q-2"}
	s.Want(ids...)
	v := s.waitUntil(2*time.Minute, "running its tasks", func(v schedView) bool { return v.allRunning(ids) && len(v.PIDs) == len(ids) })
	pids := v.PIDs
	starts := processStarts(t, pids)

	stopped := []*Host{leader, others(masters, leader)[0]}
	survivor := others(masters, leader)[1]
	outage := time.Now()
	for _, m := range stopped {
		if err := m.Proc().Stop(); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, call := range []struct {
		name string
		url  string
		body any
	}{
		{"GET_STATE", survivor.APIURL() + api.OperatorPath, api.OperatorCall{Type: api.OpGetState}},
		{"SUBSCRIBE", survivor.APIURL() + api.SchedulerPath, subscribeCall("no-quorum")},
	} {
		var reply rawReply
		var err error
		deadline := time.Now().Add(DefaultWaitTimeout)
		for {
			reqCtx, reqCancel := context.WithTimeout(ctx, callTimeout)
			reply, err = postRaw(reqCtx, call.url, call.body)
			reqCancel()
			if err == nil && reply.status == http.StatusServiceUnavailable && strings.Contains(reply.body, "no leading master") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s on the last master %s: %d %q (%v), want 503 saying there is no leading master", call.name, survivor.Name(), reply.status, reply.body, err)
			}
			time.Sleep(pollInterval)
		}
	}
	state, err := staleState(ctx, survivor)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(state.GetTasks.Tasks); n != len(ids) {
		t.Errorf("GET_STATE ?stale=true on %s lists %d live tasks, want %d", survivor.Name(), n, len(ids))
	}
	// Longer than the agent timeout, so a master that counted the outage against the
	// agent would give up on it after the restart.
	for time.Since(outage) < 15*time.Second {
		checkSameProcesses(t, pids, starts)
		if t.Failed() {
			t.FailNow()
		}
		time.Sleep(time.Second)
	}

	for _, m := range stopped {
		if err := m.Proc().Restart(); err != nil {
			t.Fatal(err)
		}
	}
	leader = leaderWithin(t, c, DefaultWaitTimeout)
	t.Logf("%s leads %v after the outage began", leader.Name(), time.Since(outage))
	c.WaitForAgents(1)
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		tasks, err := c.Client(leader).GetTasks(ctx)
		var states []string
		if err == nil {
			for _, task := range tasks.Tasks {
				states = append(states, task.TaskID.Value+" "+string(task.State))
			}
			slices.Sort(states)
			if slices.Equal(states, []string{"q-1 TASK_RUNNING", "q-2 TASK_RUNNING"}) && len(tasks.CompletedTasks) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET_TASKS after the restart: %q (%v), want q-1 and q-2 RUNNING and nothing completed", states, err)
		}
		time.Sleep(pollInterval)
	}
	checkSameProcesses(t, pids, starts)
	v = s.waitUntil(DefaultWaitTimeout, "resubscribed", func(v schedView) bool { return len(v.Subscribed) > 1 })
	for _, id := range ids {
		if v.Launches[id] != 1 {
			t.Errorf("task %s was launched %d times, want once", id, v.Launches[id])
		}
	}
	if bad := v.stayedRunning(ids); bad != "" {
		t.Errorf("task %s", bad)
	}
	if len(v.Errors) > 0 {
		t.Errorf("the framework saw errors: %q", v.Errors)
	}
}

// TestAgentSilencedBecomesUnreachable: when an agent's host loses its network, a
// partition-aware framework learns that its task there is UNREACHABLE within the agent
// timeout (10 s by default) plus detection slack; the figure is agent_silence_to_unreachable.
// When the network is back, the agent re-registers and the task, which kept running, is
// RUNNING again.
func TestAgentSilencedBecomesUnreachable(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	masters := c.StartMasters(3)
	agent := c.StartAgents(1)[0]
	c.WaitForLeader()
	c.WaitForAgents(1)
	s := startScheduler(t, masters, schedulerOptions{name: "aware", partitionAware: true})
	ids := []string{"silenced-1"}
	s.Want(ids...)
	v := s.waitUntil(2*time.Minute, "running its task", func(v schedView) bool { return v.allRunning(ids) && len(v.PIDs) == 1 })
	pids := v.PIDs
	starts := processStarts(t, pids)
	waitAgentIDGossiped(t, c, agent)

	down := time.Now()
	if err := agent.LinkDown(); err != nil {
		t.Fatal(err)
	}
	v = s.waitUntil(2*time.Minute, "told the task is unreachable", func(v schedView) bool { return v.Latest[ids[0]].State == api.TaskUnreachable })
	silence := v.LatestAt[ids[0]].Sub(down)
	recordFigure(t, "agent_silence_to_unreachable", milliseconds(silence), "ms", 1)
	if limit := 15 * time.Second; silence > limit {
		t.Errorf("TASK_UNREACHABLE came %v after the agent's network went down, want at most %v (agent timeout 10 s plus detection)", silence, limit)
	}
	checkSameProcesses(t, pids, starts)

	if err := agent.LinkUp(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	v = s.waitUntil(3*time.Minute, "told the task is running again", func(v schedView) bool { return v.allRunning(ids) })
	t.Logf("task RUNNING again %v after the link came back", v.LatestAt[ids[0]].Sub(back))
	checkSameProcesses(t, pids, starts)
	if v.Launches[ids[0]] != 1 {
		t.Errorf("task %s was launched %d times, want once", ids[0], v.Launches[ids[0]])
	}
}

// waitAgentIDGossiped waits until the leader's gossip view of the agent's host carries its
// agent id, which masters need to map a gossip failure to the agent: the agent publishes it
// only after it registered.
func waitAgentIDGossiped(t testing.TB, c *Cluster, agent *Host) {
	t.Helper()
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		members, err := c.Client(leaderWithin(t, c, DefaultWaitTimeout)).GetMembers(ctx)
		cancel()
		if err == nil && slices.ContainsFunc(members.Members, func(m api.Member) bool {
			return m.Name == agent.Name() && m.Tags["agent_id"] != ""
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader's gossip view of %s has no agent id within %v (%v)", agent.Name(), DefaultWaitTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}
