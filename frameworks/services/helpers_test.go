package services_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// testTimeout bounds every wait: generous, for a loaded 2-core machine.
const testTimeout = 60 * time.Second

// cluster is a master running the services framework, and agents.
type cluster struct {
	t      testing.TB
	master *master.TestServer
	agents []*agent.Agent
	// base is the Marathon API the calls go to: the master's when empty, else a
	// services framework's own.
	base string
}

// newCluster starts a master with the services framework and n agents with the
// process containerizer; agentOpts adjust each agent's config (i is its index).
func newCluster(t testing.TB, n int, agentOpts ...func(i int, c *agent.Config)) *cluster {
	t.Helper()
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	c := &cluster{t: t, master: ts}
	for i := range n {
		c.agents = append(c.agents, agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) {
			cfg.Hostname = fmt.Sprintf("host-%d", i)
			for _, o := range agentOpts {
				o(i, cfg)
			}
		}))
	}
	c.waitAgents(n)
	return c
}

// waitAgents waits until the master knows n agents.
func (c *cluster) waitAgents(n int) {
	c.t.Helper()
	eventually(c.t, fmt.Sprintf("%d agents registered", n), func() error {
		if got := len(c.master.Store().Agents()); got != n {
			return fmt.Errorf("%d agents", got)
		}
		return nil
	})
}

// call sends a request to the master and decodes the JSON answer into out (unless nil);
// it returns the status and the raw body.
func (c *cluster) call(method, path string, body any, out any) (int, []byte) {
	c.t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.url()+path, reader)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

// url is the base URL of the Marathon API the calls go to.
func (c *cluster) url() string {
	if c.base != "" {
		return c.base
	}
	return c.master.URL
}

// mustCall is call that fails the test unless the status is want.
func (c *cluster) mustCall(want int, method, path string, body any, out any) []byte {
	c.t.Helper()
	status, data := c.call(method, path, body, out)
	if status != want {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, status, data, want)
	}
	return data
}

// appView is what the tests read of GET /v2/apps/{id}.
type appView struct {
	App struct {
		ID             string `json:"id"`
		Instances      int    `json:"instances"`
		Version        string `json:"version"`
		TasksRunning   int    `json:"tasksRunning"`
		TasksStaged    int    `json:"tasksStaged"`
		TasksHealthy   int    `json:"tasksHealthy"`
		TasksUnhealthy int    `json:"tasksUnhealthy"`
		Deployments    []struct {
			ID string `json:"id"`
		} `json:"deployments"`
		Tasks []taskView `json:"tasks"`
	} `json:"app"`
}

type taskView struct {
	ID                 string   `json:"id"`
	AppID              string   `json:"appId"`
	Host               string   `json:"host"`
	SlaveID            string   `json:"slaveId"`
	State              string   `json:"state"`
	Ports              []uint32 `json:"ports"`
	ServicePorts       []uint32 `json:"servicePorts"`
	Version            string   `json:"version"`
	StagedAt           string   `json:"stagedAt"`
	StartedAt          string   `json:"startedAt"`
	HealthCheckResults []struct {
		Alive bool `json:"alive"`
	} `json:"healthCheckResults"`
	CheckResult json.RawMessage `json:"checkResult"`
}

// queueView is what the tests read of GET /v2/queue.
type queueView struct {
	Queue []struct {
		App struct {
			ID string `json:"id"`
		} `json:"app"`
		Count   int `json:"count"`
		Summary struct {
			RejectSummaryLastOffers []struct {
				Reason   string `json:"reason"`
				Declined int    `json:"declined"`
			} `json:"rejectSummaryLastOffers"`
		} `json:"processedOffersSummary"`
	} `json:"queue"`
}

// app reads an app.
func (c *cluster) app(id string) appView {
	c.t.Helper()
	var v appView
	c.mustCall(http.StatusOK, "GET", "/v2/apps"+id, nil, &v)
	return v
}

// waitDeployed waits until the app has n running tasks (healthy, when healthy is set),
// all of one version, and no deployment.
func (c *cluster) waitDeployed(id string, n int, healthy bool) appView {
	c.t.Helper()
	var v appView
	eventually(c.t, fmt.Sprintf("%s deployed with %d tasks", id, n), func() error {
		// A master failing over answers 503 for a moment.
		v = appView{}
		if status, body := c.call("GET", "/v2/apps"+id, nil, &v); status != http.StatusOK {
			return fmt.Errorf("GET /v2/apps%s = %d %s", id, status, body)
		}
		a := v.App
		switch {
		case len(a.Deployments) > 0:
			return fmt.Errorf("deployments %v in progress; %d running, %d staged", a.Deployments, a.TasksRunning, a.TasksStaged)
		case a.TasksRunning != n || len(a.Tasks) != n:
			return fmt.Errorf("%d running of %d tasks, want %d", a.TasksRunning, len(a.Tasks), n)
		case healthy && a.TasksHealthy != n:
			return fmt.Errorf("%d healthy, want %d", a.TasksHealthy, n)
		}
		return nil
	})
	return v
}

// eventually polls cond until it returns nil or testTimeout passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, testTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// sseEvent is one /v2/events event.
type sseEvent struct {
	Type string
	Data map[string]any
}

// events subscribes to /v2/events (with optional event_type filters) until the test ends.
func (c *cluster) events(types ...string) <-chan sseEvent {
	c.t.Helper()
	q := ""
	for i, typ := range types {
		if i == 0 {
			q = "?"
		} else {
			q += "&"
		}
		q += "event_type=" + typ
	}
	req, err := http.NewRequest("GET", c.url()+"/v2/events"+q, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		c.t.Fatalf("GET /v2/events: %s", resp.Status)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	out := make(chan sseEvent, 10000)
	go func() {
		defer close(out)
		scanner := bufio.NewScanner(resp.Body)
		scanner.Buffer(make([]byte, 1<<20), 16<<20)
		var ev sseEvent
		for scanner.Scan() {
			line := scanner.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = map[string]any{}
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data)
			case line == "" && ev.Type != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

// nextEvent waits for the next event of the given type ("" for any).
func nextEvent(t testing.TB, events <-chan sseEvent, typ string) sseEvent {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("event stream ended waiting for %s", typ)
			}
			if typ == "" || ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within %v", typ, testTimeout)
		}
	}
}
