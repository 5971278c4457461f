package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// stateJSON is a master's GET_STATE answer: two agents (listed out of order), three frameworks
// and tasks in every list. Timestamps are relative to testNow.
var stateJSON = fmt.Sprintf(`{"type":"GET_STATE","get_state":{
 "get_agents":{"agents":[
  {"agent_info":{"hostname":"node-b","id":{"value":"a2"}},"active":true,
   "total_resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},{"name":"mem","type":"SCALAR","scalar":{"value":8192}},{"name":"disk","type":"SCALAR","scalar":{"value":10240}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}}],
   "allocated_resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.25},"role":"*"},{"name":"cpus","type":"SCALAR","scalar":{"value":0.25},"role":"web"},{"name":"mem","type":"SCALAR","scalar":{"value":160}}],
   "offered_resources":[]},
  {"agent_info":{"hostname":"node-a","id":{"value":"a1"}},"active":false,
   "total_resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":2}},{"name":"mem","type":"SCALAR","scalar":{"value":1536}}],
   "allocated_resources":[],"offered_resources":[]}],
  "recovered_agents":[]},
 "get_frameworks":{"frameworks":[
  {"framework_info":{"user":"root","name":"marathon","id":{"value":"f1"},"roles":["slave_public","*"]},"active":true,"connected":true,"recovered":false,
   "offers":[],"allocated_resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},{"name":"mem","type":"SCALAR","scalar":{"value":160}}],"offered_resources":[]},
  {"framework_info":{"user":"root","name":"chronos","id":{"value":"f2"}},"active":false,"connected":false,"recovered":true,
   "offers":[],"allocated_resources":[],"offered_resources":[]},
  {"framework_info":{"user":"root","name":"chronos","id":{"value":"f0"},"role":"batch"},"active":true,"connected":true,"recovered":false,
   "offers":[],"allocated_resources":[],"offered_resources":[]}],
  "completed_frameworks":[
  {"framework_info":{"user":"root","name":"spark","id":{"value":"f9"}},"active":false,"connected":false,"recovered":false,"offers":[],"allocated_resources":[],"offered_resources":[]}]},
 "get_tasks":{
  "tasks":[
   {"name":"web","task_id":{"value":"web.2"},"framework_id":{"value":"f1"},"agent_id":{"value":"a2"},"state":"TASK_RUNNING",
    "statuses":[{"task_id":{"value":"web.2"},"state":"TASK_STARTING","timestamp":%[1]d},{"task_id":{"value":"web.2"},"state":"TASK_RUNNING","timestamp":%[2]d.5}]},
   {"name":"web","task_id":{"value":"web.1"},"framework_id":{"value":"f1"},"agent_id":{"value":"a2"},"state":"TASK_RUNNING",
    "statuses":[{"task_id":{"value":"web.1"},"state":"TASK_RUNNING","timestamp":%[3]d}]},
   {"name":"backup","task_id":{"value":"backup-1"},"framework_id":{"value":"f2"},"agent_id":{"value":"a1"},"state":"TASK_STAGING"}],
  "unreachable_tasks":[
   {"name":"cache","task_id":{"value":"cache-1"},"framework_id":{"value":"f3"},"agent_id":{"value":"a7"},"state":"TASK_UNREACHABLE"}],
  "completed_tasks":[
   {"name":"etl","task_id":{"value":"etl-1"},"framework_id":{"value":"f9"},"agent_id":{"value":"a2"},"state":"TASK_FINISHED",
    "statuses":[{"task_id":{"value":"etl-1"},"state":"TASK_RUNNING","timestamp":%[4]d},{"task_id":{"value":"etl-1"},"state":"TASK_FINISHED","timestamp":%[5]d}]}]},
 "get_executors":{"executors":[]}}}`,
	testNow.Add(-100*time.Second).Unix(), testNow.Add(-91*time.Second).Unix(), testNow.Add(-3*time.Hour-time.Minute).Unix(),
	testNow.Add(-50*time.Hour).Unix(), testNow.Add(-49*time.Hour).Unix())

const membersJSON = `{"type":"GET_MEMBERS","get_members":{"members":[
 {"name":"node-b","addr":"198.18.0.2","port":7946,"status":"alive","tags":{"role":"agent","version":"0.1.0"}},
 {"name":"node-a","addr":"198.18.0.1","port":7946,"status":"alive","tags":{"role":"master,agent","api":"http://198.18.0.1:5050","version":"0.1.0","id":"m-a"}},
 {"name":"node-d","addr":"198.18.0.4","port":7946,"status":"alive","tags":{"role":"master","api":"http://198.18.0.4:5050","version":"0.1.0","id":"m-d"}},
 {"name":"node-c","addr":"::1","port":7947,"status":"failed","tags":{}}]}}`

const peersJSON = `{"servers":[
 {"id":"m-a","address":"198.18.0.1:5052","suffrage":"voter","leader":true,"state":"leader"},
 {"id":"m-d","address":"198.18.0.4:5052","suffrage":"voter","leader":false,"state":"follower"}],"leader_id":"m-a"}`

// fixedMaster answers the operator calls GET_STATE and GET_MEMBERS with fixed JSON.
func fixedMaster(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == api.RaftPeersPath {
			_, _ = io.WriteString(w, peersJSON)
			return
		}
		switch string(body) {
		case `{"type":"GET_STATE"}`:
			_, _ = io.WriteString(w, stateJSON)
		case `{"type":"GET_MEMBERS"}`:
			_, _ = io.WriteString(w, membersJSON)
		default:
			http.Error(w, "unexpected call "+string(body), http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTables(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"nodes"}, `
ID  HOSTNAME  ACTIVE  CPUS   MEM      DISK   TASKS
a1  node-a    no      0/2    0/1.5G   0/0    1
a2  node-b    yes     0.5/4  160M/8G  0/10G  2
`},
		{[]string{"tasks"}, `
ID        NAME    FRAMEWORK  HOST    STATE             STARTED
backup-1  backup  chronos    node-a  TASK_STAGING      -
cache-1   cache   f3         a7      TASK_UNREACHABLE  -
web.1     web     marathon   node-b  TASK_RUNNING      3h ago
web.2     web     marathon   node-b  TASK_RUNNING      1m ago
`},
		{[]string{"tasks", "--all"}, `
ID        NAME    FRAMEWORK  HOST    STATE             STARTED
backup-1  backup  chronos    node-a  TASK_STAGING      -
cache-1   cache   f3         a7      TASK_UNREACHABLE  -
etl-1     etl     spark      node-b  TASK_FINISHED     2d ago
web.1     web     marathon   node-b  TASK_RUNNING      3h ago
web.2     web     marathon   node-b  TASK_RUNNING      1m ago
`},
		{[]string{"frameworks"}, `
ID  NAME      ACTIVE  CONNECTED  ROLES           TASKS  CPUS  MEM
f0  chronos   yes     yes        batch           0      0     0
f2  chronos   no      no         *               1      0     0
f1  marathon  yes     yes        slave_public,*  2      0.5   160M
`},
		{[]string{"members"}, `
NAME    ADDR             STATUS  ROLE          RAFT      API                     VERSION
node-a  198.18.0.1:7946  alive   master,agent  leader    http://198.18.0.1:5050  0.1.0
node-b  198.18.0.2:7946  alive   agent         -         -                       0.1.0
node-c  [::1]:7947       failed  -             -         -                       -
node-d  198.18.0.4:7946  alive   master        follower  http://198.18.0.4:5050  0.1.0
`},
	}
	srv := fixedMaster(t)
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a := newTestApp(t, map[string]string{addrEnv: srv.URL})
			if code := a.runCLI(t, tt.args...); code != 0 {
				t.Fatalf("exit code = %d", code)
			}
			if got, want := a.stdout.String(), strings.TrimPrefix(tt.want, "\n"); got != want {
				t.Fatalf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	srv := fixedMaster(t)
	t.Run("members", func(t *testing.T) {
		a := newTestApp(t, map[string]string{addrEnv: srv.URL})
		if code := a.runCLI(t, "members", "-o", "json"); code != 0 {
			t.Fatalf("exit code = %d", code)
		}
		want := `[
  {
    "name": "node-a",
    "addr": "198.18.0.1",
    "port": 7946,
    "status": "alive",
    "tags": {
      "api": "http://198.18.0.1:5050",
      "id": "m-a",
      "role": "master,agent",
      "version": "0.1.0"
    }
  },
  {
    "name": "node-b",
    "addr": "198.18.0.2",
    "port": 7946,
    "status": "alive",
    "tags": {
      "role": "agent",
      "version": "0.1.0"
    }
  },
  {
    "name": "node-c",
    "addr": "::1",
    "port": 7947,
    "status": "failed",
    "tags": {}
  },
  {
    "name": "node-d",
    "addr": "198.18.0.4",
    "port": 7946,
    "status": "alive",
    "tags": {
      "api": "http://198.18.0.4:5050",
      "id": "m-d",
      "role": "master",
      "version": "0.1.0"
    }
  }
]
`
		if got := a.stdout.String(); got != want {
			t.Fatalf("output:\n%s\nwant:\n%s", got, want)
		}
	})

	// The other lists print the API objects behind the table rows, in the table's order.
	tests := []struct {
		args    []string
		idField func(map[string]any) string
		wantIDs []string
	}{
		{[]string{"nodes"}, func(m map[string]any) string { return value(m, "agent_info", "id", "value") }, []string{"a1", "a2"}},
		{[]string{"tasks"}, func(m map[string]any) string { return value(m, "task_id", "value") }, []string{"backup-1", "cache-1", "web.1", "web.2"}},
		{[]string{"tasks", "--all"}, func(m map[string]any) string { return value(m, "task_id", "value") }, []string{"backup-1", "cache-1", "etl-1", "web.1", "web.2"}},
		{[]string{"frameworks"}, func(m map[string]any) string { return value(m, "framework_info", "id", "value") }, []string{"f0", "f2", "f1"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a := newTestApp(t, map[string]string{addrEnv: srv.URL})
			if code := a.runCLI(t, append(tt.args, "--output=json")...); code != 0 {
				t.Fatalf("exit code = %d", code)
			}
			out := a.stdout.String()
			if !strings.HasPrefix(out, "[\n  {\n    \"") {
				t.Fatalf("output is not indented JSON: %q", out)
			}
			var objects []map[string]any
			if err := json.Unmarshal([]byte(out), &objects); err != nil {
				t.Fatalf("output is not a JSON list: %v", err)
			}
			var ids []string
			for _, o := range objects {
				ids = append(ids, tt.idField(o))
			}
			if strings.Join(ids, " ") != strings.Join(tt.wantIDs, " ") {
				t.Fatalf("ids = %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

// value digs a string out of decoded JSON.
func value(m map[string]any, path ...string) string {
	var v any = m
	for _, key := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = obj[key]
	}
	s, _ := v.(string)
	return s
}

func TestEmptyLists(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"type":"GET_STATE","get_state":{"get_tasks":null,"get_executors":null,"get_frameworks":null,"get_agents":null}}`)
	}))
	defer srv.Close()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"nodes"}, "ID  HOSTNAME  ACTIVE  CPUS  MEM  DISK  TASKS\n"},
		{[]string{"tasks", "--all"}, "ID  NAME  FRAMEWORK  HOST  STATE  STARTED\n"},
		{[]string{"frameworks", "-o", "json"}, "[]\n"},
	}
	for _, tt := range tests {
		a := newTestApp(t, map[string]string{addrEnv: srv.URL})
		if code := a.runCLI(t, tt.args...); code != 0 {
			t.Fatalf("%v: exit code = %d", tt.args, code)
		}
		if got := a.stdout.String(); got != tt.want {
			t.Errorf("%v: output %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestFormats(t *testing.T) {
	mb := map[float64]string{0: "0", 0.4: "0M", 32: "32M", 1023: "1023M", 1024: "1G", 1536: "1.5G", 23081: "22.5G", 1048576: "1024G"}
	for in, want := range mb {
		if got := formatMB(in); got != want {
			t.Errorf("formatMB(%v) = %q, want %q", in, got, want)
		}
	}
	numbers := map[float64]string{0: "0", 0.1: "0.1", 0.1 + 0.2: "0.3", 2: "2", 1.23456: "1.235"}
	for in, want := range numbers {
		if got := formatNumber(in); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", in, got, want)
		}
	}
	ages := map[time.Duration]string{-time.Second: "0s", 59 * time.Second: "59s", time.Minute: "1m", 119 * time.Minute: "1h", 49 * time.Hour: "2d"}
	for in, want := range ages {
		if got := formatAge(in); got != want {
			t.Errorf("formatAge(%v) = %q, want %q", in, got, want)
		}
	}
}
