package services_test

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/master"
)

func TestAppLifecycle(t *testing.T) {
	c := newCluster(t, 1)
	var created map[string]any
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "web", "cmd": "echo $PORT0 $PORT_HTTP > port; exec sleep 1000", "cpus": 0.1, "mem": 16, "portDefinitions": [{"port": 0, "name": "http"}]}`, &created)
	if created["id"] != "/web" || created["instances"] != 1.0 || created["cpus"] != 0.1 {
		t.Errorf("created app %v", created)
	}
	v := c.waitDeployed("/web", 1, false)
	task := v.App.Tasks[0]
	if task.AppID != "/web" || task.Host != "host-0" || len(task.Ports) != 1 || task.Ports[0] < 31000 || task.Ports[0] > 31100 {
		t.Errorf("task %+v", task)
	}
	if len(task.ServicePorts) != 1 || task.ServicePorts[0] != 10000 {
		t.Errorf("service ports %v, want [10000]", task.ServicePorts)
	}

	// Scale 1 → 10 → 3.
	c.mustCall(http.StatusOK, "PATCH", "/v2/apps/web", `{"instances": 10}`, nil)
	v = c.waitDeployed("/web", 10, false)
	first := v.App.Tasks[0].ID
	if !slices.ContainsFunc(v.App.Tasks, func(tv taskView) bool { return tv.ID == task.ID }) {
		t.Errorf("scaling up replaced the first task %s", task.ID)
	}
	c.mustCall(http.StatusOK, "PATCH", "/v2/apps/web", `{"instances": 3}`, nil)
	v = c.waitDeployed("/web", 3, false)
	// YOUNGEST_FIRST: the oldest tasks stay.
	if v.App.Tasks[0].ID != first {
		t.Errorf("scaling down killed the oldest task %s; tasks %v", first, v.App.Tasks)
	}
	ports := map[uint32]bool{}
	for _, tv := range v.App.Tasks {
		if ports[tv.Ports[0]] {
			t.Errorf("two tasks on host port %d", tv.Ports[0])
		}
		ports[tv.Ports[0]] = true
	}

	c.mustCall(http.StatusOK, "DELETE", "/v2/apps/web", nil, nil)
	eventually(t, "app removed", func() error {
		status, body := c.call("GET", "/v2/apps/web", nil, nil)
		if status != http.StatusNotFound {
			return errorf("GET after delete = %d %s", status, body)
		}
		return nil
	})
	var tasks struct {
		Tasks []taskView `json:"tasks"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/tasks", nil, &tasks)
	if len(tasks.Tasks) != 0 {
		t.Errorf("tasks left after delete: %+v", tasks.Tasks)
	}
}

// TestEventStreamKeepAlive: a quiet /v2/events stream sends keep-alive comments, and a
// request without Accept: text/event-stream is refused.
func TestEventStreamKeepAlive(t *testing.T) {
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, EventKeepAlive: 50 * time.Millisecond})
		})
	})
	c := &cluster{t: t, master: ts}
	eventually(t, "the framework answers", func() error {
		if status, body := c.call("GET", "/v2/apps", nil, nil); status != http.StatusOK {
			return errorf("%d %s", status, body)
		}
		return nil
	})
	if status, _ := c.call("GET", "/v2/events", nil, nil); status != http.StatusNotAcceptable {
		t.Errorf("GET /v2/events without Accept = %d, want 406", status)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/v2/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var lines []string
	for len(lines) < 6 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v after %q", err, lines)
		}
		lines = append(lines, line)
	}
	if !strings.HasPrefix(lines[0], "event: event_stream_attached") || lines[3] != ": keep-alive\n" || lines[5] != ": keep-alive\n" {
		t.Errorf("stream began %q", lines)
	}
}
