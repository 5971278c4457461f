package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/atoll/atoll/api"
)

// TestUpdateCallEncodesAsAgentCall: an UPDATE call made of the checkpointed JSON of its
// updates decodes, as the master reads it, to the AgentCall it stands for.
func TestUpdateCallEncodesAsAgentCall(t *testing.T) {
	updates := []api.AgentCallUpdate{
		testUpdate("fw-1", "a", api.TaskRunning, 1),
		testUpdate("fw-1", "b", api.TaskFinished, 2),
		testUpdate("fw-2", "c", api.TaskFailed, 3),
	}
	updates[1].Status.Message = "Command exited with status 0"
	updates[2].Status.Labels = &api.Labels{Labels: []api.Label{{Key: sandboxLabel, Value: "/sandboxes/c"}}}
	agentID := &api.AgentID{Value: "agent-1"}
	tests := []struct {
		name    string
		updates []api.AgentCallUpdate
		want    api.AgentCall
	}{
		{name: "one", updates: updates[:1], want: api.AgentCall{Type: api.AgentUpdate, AgentID: agentID, Update: &updates[0]}},
		{name: "several", updates: updates, want: api.AgentCall{Type: api.AgentUpdate, AgentID: agentID, Updates: updates}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			due := make([]queuedUpdate, len(tc.updates))
			for i, u := range tc.updates {
				encoded, err := json.Marshal(u)
				if err != nil {
					t.Fatal(err)
				}
				due[i] = queuedUpdate{update: u, encoded: encoded}
			}
			body, err := json.Marshal(newUpdateCall("agent-1", due))
			if err != nil {
				t.Fatal(err)
			}
			var got api.AgentCall
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded %s\nas %+v\nwant %+v", body, got, tc.want)
			}
		})
	}
}
