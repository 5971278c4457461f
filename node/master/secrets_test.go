package master_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
)

// TestSecretValuesNotShown: a task whose secret volume carries its value (as the services
// framework launches them) shows the secret without its value in GET_TASKS and in
// /master/state; the agent gets the value in the LAUNCH, which is all it is for.
func TestSecretValuesNotShown(t *testing.T) {
	ts := master.NewTestServer(t)
	master.StartSimulatedAgent(t, ts.URL, "sim", []api.Resource{scalar("cpus", 4), scalar("mem", 4096)})
	f := subscribe(t, ts.URL, frameworkInfo("secrets"))
	task := shellTask("with-secret", "sleep 60", 0.1, 32)
	task.Container = &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{{
		ContainerPath: "/run/secrets/db", Mode: api.VolumeRO,
		Source: &api.VolumeSource{Type: api.VolumeSourceSecret, Secret: &api.Secret{Type: api.SecretValueType, Value: &api.SecretValue{Data: []byte("hunter2-value")}}},
	}}}
	f.launch(f.offers()[0], task)
	f.update("with-secret", api.TaskRunning, true)

	encoded := base64.StdEncoding.EncodeToString([]byte("hunter2-value"))
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPost, api.OperatorPath, `{"type": "GET_TASKS"}`},
		{http.MethodPost, api.OperatorPath, `{"type": "GET_STATE"}`},
		{http.MethodGet, "/master/state", ""},
	} {
		r, err := http.NewRequest(req.method, ts.URL+req.path, strings.NewReader(req.body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusOK:
			t.Errorf("%s %s: %s", req.method, req.path, resp.Status)
		case bytes.Contains(body, []byte(encoded)):
			t.Errorf("%s %s %s shows the secret's value", req.method, req.path, req.body)
		case !bytes.Contains(body, []byte(`"secret":{"type":"VALUE"}`)):
			t.Errorf("%s %s %s does not show the secret volume without its value: %s", req.method, req.path, req.body, body)
		}
	}
}
