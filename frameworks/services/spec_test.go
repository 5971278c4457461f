package services

import (
	"encoding/json"
	"testing"

	"github.com/atoll/atoll/frameworks/services/placement"
)

// TestDiscoveryInfo: every instance publishes Marathon's DiscoveryInfo — visible to the
// framework, named like the task, one port per protocol of each port definition (or, with
// bridge networking, port mapping, labelled network-scope host) numbered with the
// instance's host port, with the port's name and labels — so DNS and the VIP balancers
// learn named VIPs (VIP_n) from the tasks.
func TestDiscoveryInfo(t *testing.T) {
	for _, tt := range []struct {
		name      string
		app       string
		hostPorts []uint32
		want      string
	}{
		{
			name: "port definitions",
			app: `{"id": "/grp/web", "cmd": "serve", "portDefinitions": [
				{"port": 10000, "name": "http", "labels": {"VIP_0": "/grp/web:80", "A": "b"}},
				{"port": 10001, "protocol": "udp,tcp"}]}`,
			hostPorts: []uint32{31000, 31001},
			want: `{"visibility":"FRAMEWORK","name":"web.grp","ports":{"ports":[` +
				`{"number":31000,"name":"http","protocol":"tcp","labels":{"labels":[{"key":"A","value":"b"},{"key":"VIP_0","value":"/grp/web:80"}]}},` +
				`{"number":31001,"protocol":"udp"},{"number":31001,"protocol":"tcp"}]}}`,
		},
		{
			name: "bridge port mappings",
			app: `{"id": "/db", "cmd": "run", "networks": [{"mode": "container/bridge"}],
				"container": {"type": "MESOS", "portMappings": [
					{"containerPort": 6379, "hostPort": 0, "name": "redis", "labels": {"VIP_0": "198.18.1.200:6379"}},
					{"containerPort": 9121, "hostPort": 0, "protocol": "udp", "labels": {"network-scope": "container"}}]}}`,
			hostPorts: []uint32{31005, 31006},
			want: `{"visibility":"FRAMEWORK","name":"db","ports":{"ports":[` +
				`{"number":31005,"name":"redis","protocol":"tcp","labels":{"labels":[{"key":"VIP_0","value":"198.18.1.200:6379"},{"key":"network-scope","value":"host"}]}},` +
				`{"number":31006,"protocol":"udp","labels":{"labels":[{"key":"network-scope","value":"host"}]}}]}}`,
		},
		{
			name: "no ports",
			app:  `{"id": "/batch/worker", "cmd": "work", "portDefinitions": []}`,
			want: `{"visibility":"FRAMEWORK","name":"worker.batch"}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := compiled(t, tt.app)
			task := spec.taskInfo("x.1", "agent-1", &placement.Claim{HostPorts: tt.hostPorts})
			got, err := json.Marshal(task.Discovery)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("discovery\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
