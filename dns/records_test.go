package dns

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixture is a cluster state for golden tests: the masters, the VIPs and a GET_STATE.
type fixture struct {
	Masters  []Master `json:"masters"`
	VIPs     []VIP    `json:"vips"`
	GetState api.GetState
}

func (f *fixture) UnmarshalJSON(data []byte) error {
	var raw struct {
		Masters  []Master     `json:"masters"`
		GetState api.GetState `json:"get_state"`
		VIPs     []struct {
			Name string     `json:"name"`
			IP   netip.Addr `json:"ip"`
		} `json:"vips"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	f.Masters, f.GetState = raw.Masters, raw.GetState
	for _, v := range raw.VIPs {
		f.VIPs = append(f.VIPs, VIP{Name: v.Name, IP: v.IP})
	}
	return nil
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &f
}

// testZone is the zone golden files are made with.
var testZone = Zone{Domain: "mesos", TTL: 60, Serial: 7, NSAddr: netip.MustParseAddr("10.0.0.53"),
	VIPRange: netip.MustParsePrefix(TestVIPRange)}

// render writes a record set as the golden files hold it: one record per line in zone
// file form, then the skipped names.
func render(recs *Records) string {
	var b strings.Builder
	for _, rr := range recs.RRs {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	for _, s := range recs.Skipped {
		b.WriteString("; skipped: " + s + "\n")
	}
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", name, diffLines(string(want), got))
	}
}

// diffLines lists the lines only in want (-) and only in got (+).
func diffLines(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return "(same lines, different order)"
	}
	return strings.Join(out, "\n")
}

// TestRecordsGolden: a fixed cluster state gives exactly the record set in
// testdata/records.golden: every name form, odd task names, health and state filtering,
// and what was skipped.
func TestRecordsGolden(t *testing.T) {
	f := loadFixture(t, "cluster.json")
	recs := BuildRecords(NewCluster(f.Masters, &f.GetState), f.VIPs, testZone)
	checkGolden(t, "records.golden", render(recs))
}

// TestRecordsFromEvents: the same state reached through the event stream's deltas (an
// empty SUBSCRIBED, then additions and status updates) gives the same records, and
// building twice gives the same result.
func TestRecordsFromEvents(t *testing.T) {
	f := loadFixture(t, "cluster.json")
	c := NewCluster(f.Masters, nil)
	c.Apply(&api.OperatorEvent{Type: api.OpEventSubscribed, Subscribed: &api.OpSubscribed{GetState: &api.GetState{}}})
	for _, a := range f.GetState.GetAgents.Agents {
		c.Apply(&api.OperatorEvent{Type: api.OpEventAgentAdded, AgentAdded: &api.OpAgentAdded{Agent: a}})
	}
	for _, fw := range f.GetState.GetFrameworks.Frameworks {
		c.Apply(&api.OperatorEvent{Type: api.OpEventFrameworkAdded, FrameworkAdded: &api.OpFrameworkChanged{Framework: fw}})
	}
	tasks := append(append([]api.Task(nil), f.GetState.GetTasks.Tasks...), f.GetState.GetTasks.UnreachableTasks...)
	for _, task := range tasks {
		added := task
		added.State, added.Statuses = api.TaskStaging, nil
		c.Apply(&api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: added}})
		statuses := task.Statuses
		if len(statuses) == 0 {
			statuses = []api.TaskStatus{{TaskID: task.TaskID, State: task.State}}
		}
		for _, st := range statuses {
			c.Apply(&api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
				FrameworkID: task.FrameworkID, Status: st, State: st.State}})
		}
	}
	got := render(BuildRecords(c, f.VIPs, testZone))
	want := render(BuildRecords(NewCluster(f.Masters, &f.GetState), f.VIPs, testZone))
	if got != want {
		t.Errorf("records from events differ from records from the state:\n%s", diffLines(want, got))
	}
	if again := render(BuildRecords(c, f.VIPs, testZone)); again != got {
		t.Errorf("building twice differs:\n%s", diffLines(got, again))
	}
}

// TestApply: each event changes exactly the names it should.
func TestApply(t *testing.T) {
	const fw, agent = "fw-marathon-0000", "20160107-001256-134875658-5050-27524-S3"
	status := func(task string, state api.TaskState) *api.OperatorEvent {
		return &api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
			FrameworkID: api.FrameworkID{Value: fw}, Status: api.TaskStatus{TaskID: api.TaskID{Value: task}, State: state}, State: state}}
	}
	tests := []struct {
		name     string
		event    *api.OperatorEvent
		changed  bool
		gone     []string // names that must disappear
		appeared []string // names that must appear
	}{
		{name: "heartbeat", event: &api.OperatorEvent{Type: api.OpEventHeartbeat}},
		{name: "killed task", event: status("grp_web.a1b2c3", api.TaskKilled), changed: true,
			gone: []string{"web-grp.marathon.mesos.", "_web-grp._tcp.marathon.mesos."}},
		{name: "killing task", event: status("grp_web.a1b2c3", api.TaskKilling), changed: true,
			gone: []string{"web-grp.marathon.mesos."}},
		{name: "staging task runs", event: status("starting.1", api.TaskRunning), changed: true,
			appeared: []string{"starting.marathon.mesos.", "starting.marathon.slave.mesos."}},
		{name: "update of an unknown task", event: status("nope", api.TaskRunning)},
		{name: "agent removed", event: &api.OperatorEvent{Type: api.OpEventAgentRemoved, AgentRemoved: &api.OpAgentRemoved{AgentID: api.AgentID{Value: agent}}},
			changed: true, gone: []string{"agent-1-example-com.agent.mesos.", "web-grp.marathon.mesos.", "1.1.0.10.in-addr.arpa."}},
		{name: "framework removed", event: &api.OperatorEvent{Type: api.OpEventFrameworkRemoved, FrameworkRemoved: &api.OpFrameworkRemovedEvt{
			FrameworkInfo: api.FrameworkInfo{Name: "marathon", ID: &api.FrameworkID{Value: fw}}}},
			changed: true, gone: []string{"web-grp.marathon.mesos.", "marathon.mesos.", "5.0.17.172.in-addr.arpa."}},
		{name: "framework renamed", event: &api.OperatorEvent{Type: api.OpEventFrameworkUpdated, FrameworkUpdated: &api.OpFrameworkChanged{
			Framework: api.FrameworkState{FrameworkInfo: api.FrameworkInfo{Name: "Services", ID: &api.FrameworkID{Value: fw}, Hostname: "10.0.0.1"}}}},
			changed: true, gone: []string{"web-grp.marathon.mesos."}, appeared: []string{"web-grp.services.mesos.", "services.mesos."}},
		{name: "subscribed without state", event: &api.OperatorEvent{Type: api.OpEventSubscribed}},
		{name: "task added without ids", event: &api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: api.Task{Name: "x", State: api.TaskRunning}}},
			changed: true},
		{name: "task added finished", event: &api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: api.Task{Name: "web.grp",
			TaskID: api.TaskID{Value: "grp_web.a1b2c3"}, FrameworkID: api.FrameworkID{Value: fw}, State: api.TaskFinished}}},
			changed: true, gone: []string{"web-grp.marathon.mesos."}},
		{name: "unknown event", event: &api.OperatorEvent{Type: "SOMETHING_NEW"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := loadFixture(t, "cluster.json")
			c := NewCluster(f.Masters, &f.GetState)
			before := names(BuildRecords(c, nil, testZone))
			if got := c.Apply(tt.event); got != tt.changed {
				t.Errorf("Apply = %v, want %v", got, tt.changed)
			}
			after := names(BuildRecords(c, nil, testZone))
			for _, n := range tt.gone {
				if !before[n] || after[n] {
					t.Errorf("%s: before %v, after %v; want it to disappear", n, before[n], after[n])
				}
			}
			for _, n := range tt.appeared {
				if before[n] || !after[n] {
					t.Errorf("%s: before %v, after %v; want it to appear", n, before[n], after[n])
				}
			}
			if !tt.changed && len(before) != len(after) {
				t.Errorf("names %d → %d for an event that changes nothing", len(before), len(after))
			}
		})
	}
}

func names(recs *Records) map[string]bool {
	out := map[string]bool{}
	for _, rr := range recs.RRs {
		out[rr.Header().Name] = true
	}
	return out
}

// TestBuildRecordsTaskRecords: each published task lists its own records, in framework
// and task name order, for /v1/enumerate.
func TestBuildRecordsTaskRecords(t *testing.T) {
	f := loadFixture(t, "cluster.json")
	recs := BuildRecords(NewCluster(f.Masters, &f.GetState), nil, testZone)
	var got []string
	for _, tr := range recs.Tasks {
		got = append(got, tr.Framework+"/"+tr.Name)
	}
	want := []string{
		"Spark Cluster_1/Executor_1",
		"marathon//grp/api", "marathon/My_Task.With.Dots",
		"marathon/a-very-long-task-name-that-goes-on-and-on-well-beyond-the-sixty-three-characters-a-label-may-have",
		"marathon/db", "marathon/web.grp",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tasks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var db []string
	for _, rr := range recs.Tasks[4].RRs {
		db = append(db, rr.String())
	}
	wantDB := []string{
		"db.marathon.mesos.\t60\tIN\tA\t10.0.1.1",
		"db-" + taskHash("db.1") + "-s3.marathon.mesos.\t60\tIN\tA\t10.0.1.1",
		"db.marathon.slave.mesos.\t60\tIN\tA\t10.0.1.1",
		"db-" + taskHash("db.1") + "-s3.marathon.slave.mesos.\t60\tIN\tA\t10.0.1.1",
		"_db._tcp.marathon.mesos.\t60\tIN\tSRV\t0 1 5432 db-" + taskHash("db.1") + "-s3.marathon.mesos.",
	}
	if strings.Join(db, "\n") != strings.Join(wantDB, "\n") {
		t.Errorf("db's records:\n%s\nwant:\n%s", strings.Join(db, "\n"), strings.Join(wantDB, "\n"))
	}
}

func TestLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", "web"},
		{"Web.Grp", "web-grp"},
		{"my_task", "my-task"},
		{"-lead-and-trail-", "lead-and-trail"},
		{"___", ""},
		{"", ""},
		{"ünïcode", "n-code"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{strings.Repeat("a", 62) + "-b", strings.Repeat("a", 62)},
	}
	for _, tt := range tests {
		if got := label(tt.in, maxLabel); got != tt.want {
			t.Errorf("label(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTaskLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/web", "web"},
		{"/grp/web", "web-grp"},
		{"/a/b/c", "c-b-a"},
		{"web.grp", "web-grp"},
		{"/", ""},
	}
	for _, tt := range tests {
		if got := taskLabel(tt.in); got != tt.want {
			t.Errorf("taskLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestTaskHash checks the z-base-32 hash against values worked out by hand: SHA-1("")
// starts da39a3ee, whose first 25 bits are 11011 01000 11100 11010 00111.
func TestTaskHash(t *testing.T) {
	tests := []struct{ id, want string }{
		{"", "5eh48"},
	}
	for _, tt := range tests {
		if got := taskHash(tt.id); got != tt.want {
			t.Errorf("taskHash(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if h := taskHash("web.1234"); len(h) != 5 {
		t.Errorf("taskHash is %q, want 5 characters", h)
	}
}

func TestCanonicalLabel(t *testing.T) {
	long := strings.Repeat("x", 63)
	tests := []struct{ task, hash, tail, want string }{
		{"web", "abcde", "s3", "web-abcde-s3"},
		{"web", "abcde", "", "web-abcde"},
		{long, "abcde", "s0", strings.Repeat("x", 54) + "-abcde-s0"},
	}
	for _, tt := range tests {
		got := canonicalLabel(tt.task, tt.hash, tt.tail)
		if got != tt.want || len(got) > maxLabel {
			t.Errorf("canonicalLabel(%q, %q, %q) = %q, want %q", tt.task, tt.hash, tt.tail, got, tt.want)
		}
	}
	if got := srvLabel(long); got != "_"+strings.Repeat("x", 62) {
		t.Errorf("srvLabel(63 x) = %q", got)
	}
	if got := agentTail("20160107-001256-134875658-5050-27524-S3"); got != "s3" {
		t.Errorf("agentTail = %q, want s3", got)
	}
}

// TestRecordNamesValid: every name in the golden set is a valid domain name that miekg/dns
// packs.
func TestRecordNamesValid(t *testing.T) {
	f := loadFixture(t, "cluster.json")
	recs := BuildRecords(NewCluster(f.Masters, &f.GetState), f.VIPs, testZone)
	buf := make([]byte, 1024)
	for _, rr := range recs.RRs {
		if _, ok := mdns.IsDomainName(rr.Header().Name); !ok {
			t.Errorf("%q is not a domain name", rr.Header().Name)
		}
		if _, err := mdns.PackRR(rr, buf, 0, nil, false); err != nil {
			t.Errorf("pack %s: %v", rr, err)
		}
	}
}
