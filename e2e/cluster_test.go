package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// TestClusterBasics: three masters and two agents, each on its own host, form one
// cluster: the masters elect a leader, the CLI on an agent host sees five alive members
// with their roles, the leader lists both agents as active, and a task launched with
// `atoll task run` from the root namespace runs on one of them to TASK_FINISHED.
func TestClusterBasics(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	masters := c.StartMasters(3)
	agents := c.StartAgents(2)

	leader := c.WaitForLeader()
	if !slices.Contains(masters, leader) {
		t.Fatalf("leader %s is not a master", leader.Name())
	}
	active := c.WaitForAgents(2)
	var hostnames []string
	for _, a := range active {
		hostnames = append(hostnames, a.AgentInfo.Hostname)
	}
	if want := []string{agents[0].IP(), agents[1].IP()}; !slices.Equal(hostnames, want) {
		t.Errorf("active agents on %q, want %q", hostnames, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all, err := c.Client(leader).GetAgents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Agents) != 2 || !all.Agents[0].Active || !all.Agents[1].Active {
		t.Errorf("GET_AGENTS = %+v, want 2 active agents", all.Agents)
	}

	type member struct{ name, addr, status, role string }
	want := []member{
		{"a1", agents[0].IP(), "alive", "agent"},
		{"a2", agents[1].IP(), "alive", "agent"},
		{"m1", masters[0].IP(), "alive", "master"},
		{"m2", masters[1].IP(), "alive", "master"},
		{"m3", masters[2].IP(), "alive", "master"},
	}
	var got []member
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := agents[0].Run(ctx, "--addr", masters[1].APIURL(), "members", "-o", "json")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var list []api.Member
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("members -o json: %v\n%s", err, out)
		}
		got = got[:0]
		for _, m := range list {
			got = append(got, member{m.Name, m.Addr, m.Status, m.Tags["role"]})
		}
		if slices.Equal(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollInterval)
	}
	if !slices.Equal(got, want) {
		t.Errorf("atoll members on a1 = %+v, want %+v", got, want)
	}

	out, err := c.Run(ctx, "--addr", masters[0].APIURL(), "task", "run", "--name", "hi", "--", "echo", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "TASK_FINISHED") {
		t.Fatalf("task run output lacks TASK_FINISHED:\n%s", out)
	}
	var ranOn, stdoutPath string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "stdout: "); ok {
			ranOn, stdoutPath, _ = strings.Cut(rest, ":")
		}
	}
	if ranOn != agents[0].IP() && ranOn != agents[1].IP() {
		t.Errorf("task ran on %q, want an agent host (task run said:\n%s)", ranOn, out)
	}
	if b, err := os.ReadFile(stdoutPath); err != nil || string(b) != "hi\n" {
		t.Errorf("task stdout at %q = %q, %v; want \"hi\\n\"", stdoutPath, b, err)
	}

	tasks, err := c.Client(leader).GetTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, task := range tasks.CompletedTasks {
		states = append(states, task.Name+" "+string(task.State))
	}
	if want := []string{"hi TASK_FINISHED"}; !slices.Equal(states, want) {
		t.Errorf("completed tasks = %q, want %q", states, want)
	}
}

// TestLeaderKillRestartPartition checks the harness pieces HA tests lean on: Leader names
// a new master after the leader's process is killed (Kill waits until it is gone, and Wait
// then reports SIGKILL), a restarted master rejoins and follows that leader, Stop ends a
// master cleanly, and a leader partitioned from the other masters gives way to a new one.
func TestLeaderKillRestartPartition(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, WithPartitions())
	masters := c.StartMasters(3)
	first := c.WaitForLeader()

	p := first.Proc()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("Running after Kill")
	}
	var exit *exec.ExitError
	if err := p.Wait(context.Background()); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait after Kill = %v, want killed by SIGKILL", err)
	}
	second := c.WaitForLeaderOtherThan(first)

	oldPID := p.PID()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if !p.Running() || p.PID() == oldPID {
		t.Fatalf("after Restart: running %t, pid %d (was %d)", p.Running(), p.PID(), oldPID)
	}
	wantLeader := "master@" + second.Addr(APIPort)
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		v := fetchView(context.Background(), &http.Client{Timeout: stateTimeout}, first)
		if v.leader == wantLeader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted %s sees leader %q (%v), want %q", first.Name(), v.leader, v.err, wantLeader)
		}
		time.Sleep(pollInterval)
	}
	log, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "=== e2e: restarted "); n != 1 {
		t.Errorf("log has %d restart markers, want 1", n)
	}

	var others []*Host
	for _, m := range masters {
		if m != second {
			others = append(others, m)
		}
	}
	if err := second.Partition(others...); err != nil {
		t.Fatal(err)
	}
	c.WaitForLeaderOtherThan(second)
	if err := second.Heal(); err != nil {
		t.Fatal(err)
	}

	if err := first.Proc().Stop(); err != nil {
		t.Errorf("Stop: %v, want a clean exit", err)
	}
	if err := first.Proc().Stop(); err != nil {
		t.Errorf("Stop after Stop: %v, want nil", err)
	}
}
