package jobs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/frameworks/jobs"
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

// withJobs is a master option that attaches the jobs framework, with the tick tight
// enough for tests.
func withJobs(c *master.Config) {
	c.Extensions = append(c.Extensions, func(m *master.Master) {
		jobs.Attach(m, jobs.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
	})
}

// cluster is a master running the jobs framework, and an agent.
type cluster struct {
	t      testing.TB
	master *master.TestServer
	// base is the Chronos API the calls go to: the master's when empty, else a jobs
	// framework's own.
	base string
}

// newCluster starts a master with the jobs framework and n agents with the process
// containerizer.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	ts := master.NewTestServer(t, withJobs)
	c := &cluster{t: t, master: ts}
	for i := range n {
		agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) { cfg.Hostname = fmt.Sprintf("host-%d", i) })
	}
	c.waitAgents(n)
	return c
}

// waitAgents waits until the master knows n agents and the jobs framework has loaded
// its state (until then its API answers 503).
func (c *cluster) waitAgents(n int) {
	c.t.Helper()
	eventually(c.t, fmt.Sprintf("%d agents registered", n), func() error {
		if got := len(c.master.Store().Agents()); got != n {
			return fmt.Errorf("%d agents", got)
		}
		return nil
	})
	c.read("/v1/scheduler/jobs", nil)
}

// call sends a request to the master and decodes a 2xx JSON answer into out (unless
// nil); it returns the status and the raw body.
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
	base := c.base
	if base == "" {
		base = c.master.URL
	}
	req, err := http.NewRequest(method, base+path, reader)
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

// mustCall is call that fails the test unless the status is want.
func (c *cluster) mustCall(want int, method, path string, body any, out any) []byte {
	c.t.Helper()
	status, data := c.call(method, path, body, out)
	if status != want {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, status, data, want)
	}
	return data
}

// jobView is what the tests read of a job.
type jobView struct {
	Name                   string   `json:"name"`
	Command                string   `json:"command"`
	Schedule               string   `json:"schedule"`
	Parents                []string `json:"parents"`
	Retries                int      `json:"retries"`
	CPUs                   float64  `json:"cpus"`
	Mem                    float64  `json:"mem"`
	Disk                   float64  `json:"disk"`
	Disabled               bool     `json:"disabled"`
	SuccessCount           int      `json:"successCount"`
	ErrorCount             int      `json:"errorCount"`
	LastSuccess            string   `json:"lastSuccess"`
	LastError              string   `json:"lastError"`
	ErrorsSinceLastSuccess int      `json:"errorsSinceLastSuccess"`
}

// runView is one run of /job/stat.
type runView struct {
	TaskID    string  `json:"taskId"`
	Attempt   int     `json:"attempt"`
	Scheduled string  `json:"scheduledTime"`
	Start     string  `json:"taskStartTime"`
	End       string  `json:"taskEndTime"`
	State     string  `json:"taskState"`
	Status    string  `json:"status"`
	AgentID   string  `json:"slaveId"`
	Duration  float64 `json:"durationSeconds"`
}

// job reads one job.
func (c *cluster) job(name string) jobView {
	c.t.Helper()
	var v jobView
	c.read("/v1/scheduler/job/"+name, &v)
	return v
}

// runs reads a job's runs: its history, then those not ended.
func (c *cluster) runs(name string) []runView {
	c.t.Helper()
	var v struct {
		History []runView `json:"taskStatHistory"`
	}
	c.read("/v1/scheduler/job/stat/"+name, &v)
	return v.History
}

// read GETs path into out, waiting while the framework answers 503 (it is starting,
// as after a failover or restart), and fails the test on any other status but 200.
func (c *cluster) read(path string, out any) {
	c.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		status, data := c.call("GET", path, nil, out)
		if status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if status != http.StatusOK {
			c.t.Fatalf("GET %s = %d %s, want 200", path, status, data)
		}
		return
	}
}

// waitCounts waits until the job has the counts given.
func (c *cluster) waitCounts(name string, successes, errors int) jobView {
	c.t.Helper()
	var v jobView
	eventually(c.t, fmt.Sprintf("job %s with %d successes and %d errors", name, successes, errors), func() error {
		v = jobView{}
		if status, body := c.call("GET", "/v1/scheduler/job/"+name, nil, &v); status != http.StatusOK {
			return fmt.Errorf("GET job = %d %s", status, body)
		}
		if v.SuccessCount != successes || v.ErrorCount != errors {
			return fmt.Errorf("%d successes, %d errors", v.SuccessCount, v.ErrorCount)
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

// parseTime parses an API timestamp.
func parseTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("timestamp %q: %v", s, err)
	}
	return v
}
