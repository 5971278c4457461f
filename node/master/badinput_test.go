package master_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}

func post(t *testing.T, url, contentType, streamID, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if streamID != "" {
		req.Header.Set(api.StreamIDHeader, streamID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBadSchedulerCalls: every malformed call gets the documented status and a message
// naming the problem, and nothing in the state changes.
func TestBadSchedulerCalls(t *testing.T) {
	ts, _ := cluster(t, func(c *master.Config) { c.MaxBodyBytes = 64 << 10 })
	f := subscribe(t, ts.URL, frameworkInfo("bad"))
	o := f.offers()[0]
	client := api.NewClient(ts.URL)
	before, err := client.GetState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fid := f.id()
	sid := f.stream.StreamID()
	url := ts.URL + "/api/v1/scheduler"
	js := "application/json"
	tests := []struct {
		name        string
		contentType string
		streamID    string
		body        string
		status      int
		message     string
	}{
		{"malformed json", js, sid, `{"type":"DECLINE",`, 400, "failed to parse body into JSON"},
		{"trailing garbage", js, sid, `{"type":"REVIVE","framework_id":{"value":"` + fid + `"}} x`, 400, "trailing data"},
		{"unknown call type", js, sid, `{"type":"LAUNCH_ROCKETS","framework_id":{"value":"` + fid + `"}}`, 400, `unknown call type "LAUNCH_ROCKETS"`},
		{"missing type", js, sid, `{"framework_id":{"value":"` + fid + `"}}`, 400, "expecting 'type' to be present"},
		{"missing framework id", js, sid, `{"type":"REVIVE"}`, 400, "expecting 'framework_id' to be present"},
		{"missing body of call", js, sid, `{"type":"DECLINE","framework_id":{"value":"` + fid + `"}}`, 400, "expecting 'decline' to be present"},
		{"missing stream id", js, "", `{"type":"REVIVE","framework_id":{"value":"` + fid + `"}}`, 400, "Mesos-Stream-Id"},
		{"wrong stream id", js, "not-the-stream", `{"type":"REVIVE","framework_id":{"value":"` + fid + `"}}`, 403, "does not match"},
		{"not subscribed", js, sid, `{"type":"REVIVE","framework_id":{"value":"someone-else"}}`, 403, "is not subscribed"},
		{"subscribe with stream id", js, sid, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`, 400, "must not carry"},
		{"subscribe without name", js, "", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u"}}}`, 400, "framework_info.name"},
		{"bad uuid in ack", js, sid, `{"type":"ACKNOWLEDGE","framework_id":{"value":"` + fid + `"},"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAEC"}}`, 400, "not a valid UUID"},
		{"protobuf", "application/x-protobuf", sid, `x`, 415, "only application/json"},
		{"oversized body", js, sid, `{"type":"REVIVE","framework_id":{"value":"` + strings.Repeat("x", 70<<10) + `"}}`, 413, "larger than"},
		{"unsupported operation", js, sid, `{"type":"ACCEPT","framework_id":{"value":"` + fid + `"},"accept":{"offer_ids":[],"operations":[{"type":"RESERVE"}]}}`, 400, "not supported"},
		{"message", js, sid, `{"type":"MESSAGE","framework_id":{"value":"` + fid + `"},"message":{"agent_id":{"value":"a"},"executor_id":{"value":"e"},"data":""}}`, 501, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, url, tt.contentType, tt.streamID, tt.body)
			if status != tt.status || !strings.Contains(body, tt.message) {
				t.Fatalf("got %d %q, want %d containing %q", status, body, tt.status, tt.message)
			}
		})
	}

	// Resources that do not exist in the offer: the ACCEPT is taken (202) and the task
	// answered TASK_ERROR with the reason; nothing is launched.
	bad := shellTask("greedy", "true", 64, 32)
	f.launch(o, bad)
	st := f.update("greedy", api.TaskError, false)
	if st.Reason != api.ReasonTaskInvalid || !strings.Contains(st.Message, "more resources") {
		t.Fatalf("greedy task: %+v", st)
	}
	unknown := shellTask("gpu-hungry", "true", 0.1, 32)
	unknown.Resources = append(unknown.Resources, scalar("unicorns", 1))
	// The rejected ACCEPT filtered the agent for 5 s; revive instead of waiting.
	if err := f.stream.Revive(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.launch(f.offers()[0], unknown)
	st = f.update("gpu-hungry", api.TaskError, false)
	if !strings.Contains(st.Message, "unicorns") {
		t.Fatalf("unknown resource: %+v", st)
	}
	// A stale offer id: TASK_LOST (not partition-aware) with REASON_INVALID_OFFERS.
	f.launch(o, shellTask("stale", "true", 0.1, 32))
	st = f.update("stale", api.TaskLost, false)
	if st.Reason != api.ReasonInvalidOffers {
		t.Fatalf("stale offer: %+v", st)
	}

	after, err := client.GetState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(after.GetTasks.Tasks)+len(after.GetTasks.CompletedTasks) != 0 || len(after.GetFrameworks.Frameworks) != len(before.GetFrameworks.Frameworks) {
		t.Fatalf("state changed by bad calls: tasks %+v, frameworks %d→%d", after.GetTasks, len(before.GetFrameworks.Frameworks), len(after.GetFrameworks.Frameworks))
	}
}

func TestBadOperatorAndAgentCalls(t *testing.T) {
	ts := master.NewTestServer(t)
	tests := []struct {
		path, body string
		status     int
		message    string
	}{
		{"/api/v1", `{"type":"SELF_DESTRUCT"}`, 400, `unsupported operator call type "SELF_DESTRUCT"`},
		{"/api/v1", `{`, 400, "failed to parse body"},
		{"/api/v1", `{"type":"KILL_TASK"}`, 400, "kill_task"},
		{"/api/v1/agent", `{"type":"SUBSCRIBE","subscribe":{"agent_info":{"hostname":"h","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]}}}`, 400, "cpus"},
		{"/api/v1/agent", `{"type":"UPDATE","agent_id":{"value":"a"}}`, 400, "expecting 'update' or 'updates' to be present"},
		{"/api/v1/agent", `{"type":"UPDATE","agent_id":{"value":"a"},"updates":[]}`, 400, "expecting 'update' or 'updates' to be present"},
		{"/api/v1/agent", `{"type":"UPDATE","agent_id":{"value":"a"},"update":{"framework_id":{"value":"f"},"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}},"updates":[{"framework_id":{"value":"f"},"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}}]}`, 400, "not both"},
		{"/api/v1/agent", `{"type":"UPDATE","agent_id":{"value":"a"},"updates":[{"framework_id":{"value":"f"},"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}},{"framework_id":{"value":"f"},"status":{"task_id":{"value":"t2"}}}]}`, 400, "'updates[1].status.state' must be set"},
		{"/api/v1/agent", `{"type":"UPDATE","agent_id":{"value":"a"},"updates":[{"framework_id":{"value":"f"},"status":{"state":"TASK_RUNNING"}}]}`, 400, "'updates[0]' needs 'status.task_id' and 'framework_id'"},
		{"/api/v1/agent", `{"type":"HEARTBEAT","agent_id":{"value":"nobody"}}`, 403, "not subscribed"},
	}
	for _, tt := range tests {
		status, body := post(t, ts.URL+tt.path, "application/json", "", tt.body)
		if status != tt.status || !strings.Contains(body, tt.message) {
			t.Errorf("POST %s %s: got %d %q, want %d containing %q", tt.path, tt.body, status, body, tt.status, tt.message)
		}
	}
}

func FuzzDecodeCall(f *testing.F) {
	f.Add([]byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`))
	f.Add([]byte(`{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{"offer_ids":[{"value":"o"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[]}}]}}`))
	f.Add([]byte(`{"type":"ACKNOWLEDGE","framework_id":{"value":"f"},"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAECAwQFBgcICQoLDA0ODw=="}}`))
	f.Add([]byte(`{"type":"KILL","framework_id":{"value":"f"},"kill":{"task_id":{"value":""}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := master.DecodeCall(data)
		if err != nil {
			return
		}
		// A call that validates has its body and, but for SUBSCRIBE, its framework id.
		if c.Type != api.CallSubscribe && (c.FrameworkID == nil || c.FrameworkID.Value == "") {
			t.Fatalf("valid %s call without framework id", c.Type)
		}
		if c.Type == api.CallAccept && c.Accept == nil || c.Type == api.CallKill && c.Kill == nil {
			t.Fatalf("valid %s call without its body", c.Type)
		}
	})
}
