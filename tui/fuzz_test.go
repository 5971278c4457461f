package tui

import (
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
)

// FuzzMarathonEvent: no /v2/events event, however malformed, panics the state or leaves
// an app without its id.
func FuzzMarathonEvent(f *testing.F) {
	f.Add(marathon.EventAPIPost, []byte(`{"eventType":"api_post_event","appDefinition":{"id":"/a","instances":2}}`))
	f.Add(marathon.EventDeploymentInfo, []byte(`{"id":"d1","plan":{"id":"d1","steps":[{"actions":[{"action":"StartApplication","app":"/a"}]}]},"currentStep":{"actions":[]}}`))
	f.Add(marathon.EventDeploymentSuccess, []byte(`{"id":"d1","plan":{}}`))
	f.Add(marathon.EventStatusUpdate, []byte(`{"taskId":"a.1","taskStatus":"TASK_RUNNING","appId":"/a"}`))
	f.Add(marathon.EventAppTerminated, []byte(`{"appId":"/a"}`))
	f.Add(marathon.EventHealthStatusChanged, []byte(`{"appId":"/a","instanceId":"a.1","alive":true}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		s := newClusterState(time.Now, 10, 10)
		s.applyMarathonEvent(marathon.Event{Type: typ, Data: data})
		for id, a := range s.apps {
			if a.info.ID != id {
				t.Errorf("app %q recorded as %q", a.info.ID, id)
			}
		}
		for _, d := range s.deployments {
			if d.ID == "" {
				t.Errorf("a deployment without an id: %+v", d)
			}
		}
	})
}

// FuzzDecodePackages: the package list decoder rejects or reads anything without
// panicking, and keeps every package's JSON.
func FuzzDecodePackages(f *testing.F) {
	f.Add([]byte(`{"packages":[{"appId":"/kafka","packageInformation":{"packageDefinition":{"name":"kafka","version":"2.3.0"}}}]}`))
	f.Add([]byte(`{"packages":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := decodePackages(data)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if len(p.raw) == 0 {
				t.Errorf("package %+v lost its JSON", p)
			}
		}
	})
}
