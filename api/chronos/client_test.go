package chronos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	// The process containerizer re-executes this test binary as each task's supervisor.
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// testTimeout bounds every wait: generous, for a loaded 2-core machine.
const testTimeout = 60 * time.Second

// jobsMaster starts a master running the jobs framework and one agent.
func jobsMaster(t testing.TB) *master.TestServer {
	t.Helper()
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			jobs.Attach(m, jobs.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	return ts
}

// eventually polls cond until it returns nil, failing the test after testTimeout.
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

// getRaw GETs a path of the master and returns the body of a 200 answer.
func getRaw(t testing.TB, ts *master.TestServer, path string) []byte {
	t.Helper()
	resp, err := http.Get(ts.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s: %v", path, resp.StatusCode, data, err)
	}
	return data
}

// decodeFaithfully decodes what the server sent into v, refusing fields v does not have,
// and checks that v encodes back to the same JSON: the types lose nothing the server
// sends and add nothing it does not.
func decodeFaithfully(t testing.TB, raw []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", raw, v, err)
	}
	back, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var sent, encoded any
	if err := json.Unmarshal(raw, &sent); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(back, &encoded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sent, encoded) {
		t.Errorf("%T encodes as\n%s\nthe server sent\n%s", v, back, raw)
	}
}

func ptr[T any](v T) *T { return &v }

// TestWireTypesMatchServer posts jobs using every field, runs one, and decodes every
// answer of the jobs framework strictly into the package's types.
func TestWireTypesMatchServer(t *testing.T) {
	ts := jobsMaster(t)
	client := chronos.NewClient(ts.URL)
	ctx := context.Background()
	eventually(t, "the jobs API answers", func() error {
		_, err := client.ListJobs(ctx)
		return err
	})
	full := chronos.Job{
		Name: "full", Command: "echo full", Shell: ptr(true), Arguments: []string{"a", "b"},
		Cron: "0 3 * * *", ScheduleTimeZone: "Europe/Berlin", Retries: ptr(3),
		CPUs: 0.5, Mem: 64, Disk: 32, Disabled: true, Concurrent: true,
		Owner: "ops@example.com", OwnerName: "Ops", Description: "every field", RunAsUser: "nobody",
		EnvironmentVariables: []chronos.EnvVar{{Name: "A", Value: "1"}},
		Constraints:          [][]string{{"hostname", "EQUALS", "host-0"}},
		HighPriority:         true, SoftError: true, MaxCompletionTime: 60000,
		Fetch:     []chronos.Fetch{{URI: "http://127.0.0.1:1/a.tgz", Executable: true, Extract: ptr(false), Cache: true}},
		URIs:      []string{"http://127.0.0.1:1/b"},
		Container: &chronos.Container{Type: "MESOS", Image: "busybox", Network: "HOST", Volumes: []chronos.Volume{{ContainerPath: "/data", HostPath: "/tmp", Mode: "RO"}}, ForcePullImage: true, Parameters: []chronos.Parameter{{Key: "k", Value: "v"}}},
		Epsilon:   "PT5M", Async: true,
	}
	for _, j := range []chronos.Job{
		full,
		{Name: "quick", Command: "echo quick", Schedule: "R0/2030-01-01T00:00:00.000Z/PT1H"},
		{Name: "child", Command: "echo child", Parents: []string{"quick"}},
	} {
		if err := client.PutJob(ctx, j); err != nil {
			t.Fatalf("PutJob %s: %v", j.Name, err)
		}
	}

	var listed []chronos.Job
	decodeFaithfully(t, getRaw(t, ts, "/v1/scheduler/jobs"), &listed)
	if len(listed) != 3 || listed[0].Name != "child" || listed[1].Name != "full" || listed[2].Name != "quick" {
		t.Fatalf("jobs = %+v, want child, full, quick", listed)
	}
	// The server fills in defaults; the rest is what was posted.
	wantFull := full
	if !reflect.DeepEqual(listed[1], wantFull) {
		t.Errorf("job full = %+v\nwant %+v", listed[1], wantFull)
	}
	got, err := client.GetJob(ctx, "quick")
	if err != nil {
		t.Fatal(err)
	}
	wantQuick := chronos.Job{Name: "quick", Command: "echo quick", Shell: ptr(true), Schedule: "R0/2030-01-01T00:00:00.000Z/PT1H", Retries: ptr(2), CPUs: 0.1, Mem: 128, Disk: 256}
	if !reflect.DeepEqual(got, wantQuick) {
		t.Errorf("GetJob quick = %+v\nwant %+v", got, wantQuick)
	}

	var summary struct {
		Jobs []chronos.Summary `json:"jobs"`
	}
	decodeFaithfully(t, getRaw(t, ts, "/v1/scheduler/jobs/summary"), &summary)
	summaries, err := client.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSummaries := []chronos.Summary{
		{Name: "child", Status: chronos.StatusFresh, State: chronos.StateIdle, Parents: []string{"quick"}},
		{Name: "full", Status: chronos.StatusFresh, State: chronos.StateIdle, Schedule: "0 3 * * *", Parents: []string{}, Disabled: true},
		{Name: "quick", Status: chronos.StatusFresh, State: chronos.StateIdle, Schedule: "R0/2030-01-01T00:00:00.000Z/PT1H", Parents: []string{}},
	}
	if !reflect.DeepEqual(summaries, wantSummaries) || !reflect.DeepEqual(summary.Jobs, wantSummaries) {
		t.Errorf("Summaries = %+v\nwant %+v", summaries, wantSummaries)
	}

	if err := client.RunNow(ctx, "quick", "x", "y"); err != nil {
		t.Fatal(err)
	}
	var stat chronos.Stat
	eventually(t, "quick and its child succeeded", func() error {
		var err error
		if stat, err = client.Stat(ctx, "quick"); err != nil {
			return err
		}
		child, err := client.GetJob(ctx, "child")
		if err != nil {
			return err
		}
		if len(stat.History) != 1 || stat.History[0].Status != chronos.RunSuccess || child.SuccessCount != 1 {
			return fmt.Errorf("runs %+v, child %d successes", stat.History, child.SuccessCount)
		}
		return nil
	})
	var rawStat chronos.Stat
	decodeFaithfully(t, getRaw(t, ts, "/v1/scheduler/job/stat/quick"), &rawStat)
	run := stat.History[0]
	if run.JobName != "quick" || run.Attempt != 0 || run.TaskState != "TASK_FINISHED" || run.Host != "host-0" ||
		!reflect.DeepEqual(run.Arguments, []string{"x", "y"}) || !strings.HasPrefix(run.TaskID, "ct:") || run.TaskEndTime == "" {
		t.Errorf("run = %+v", run)
	}
	if stat.Histogram.Count != 1 || stat.Histogram.Median <= 0 {
		t.Errorf("histogram = %+v, want one run", stat.Histogram)
	}

	if err := client.SetDisabled(ctx, "quick", true); err != nil {
		t.Fatal(err)
	}
	quick, err := client.GetJob(ctx, "quick")
	if err != nil {
		t.Fatal(err)
	}
	if !quick.Disabled || quick.SuccessCount != 1 || quick.LastSuccess == "" || quick.Schedule != wantQuick.Schedule {
		t.Errorf("after SetDisabled: %+v, want disabled with its success kept", quick)
	}
	if err := client.SetDisabled(ctx, "quick", false); err != nil {
		t.Fatal(err)
	}
	if quick, err = client.GetJob(ctx, "quick"); err != nil || quick.Disabled {
		t.Errorf("after enabling: disabled %v, %v", quick.Disabled, err)
	}
	if err := client.MarkSuccess(ctx, "full"); err != nil {
		t.Fatal(err)
	}
	if err := client.KillTasks(ctx, "full"); err != nil {
		t.Fatal(err)
	}
	if f, err := client.GetJob(ctx, "full"); err != nil || f.SuccessCount != 1 {
		t.Errorf("after MarkSuccess: %d successes, %v", f.SuccessCount, err)
	}

	err = client.DeleteJob(ctx, "quick")
	var apiErr *chronos.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !apiErr.FromChronos ||
		apiErr.Message != "job quick is a parent of child: delete them or change their parents first" {
		t.Errorf("DeleteJob of a parent = %v", err)
	}
	for _, name := range []string{"child", "quick"} {
		if err := client.DeleteJob(ctx, name); err != nil {
			t.Fatalf("DeleteJob %s: %v", name, err)
		}
	}
	_, err = client.GetJob(ctx, "quick")
	if !errors.As(err, &apiErr) || !apiErr.NotFound() || errors.Is(err, chronos.ErrNoJobsAPI) {
		t.Errorf("GetJob of a deleted job = %v, want the API's 404", err)
	}
	if err.Error() != "GET /v1/scheduler/job/quick: 404 job quick does not exist" {
		t.Errorf("error text %q", err)
	}
}

// TestNoJobsAPI: a master without the jobs framework answers 404 to the API's paths.
func TestNoJobsAPI(t *testing.T) {
	ts := master.NewTestServer(t)
	_, err := chronos.NewClient(ts.URL).ListJobs(context.Background())
	var apiErr *chronos.Error
	if !errors.Is(err, chronos.ErrNoJobsAPI) || !errors.As(err, &apiErr) || apiErr.NotFound() {
		t.Errorf("ListJobs = %v, want ErrNoJobsAPI", err)
	}
}

// TestErrors covers answers that are not the API's: bodies of other servers, a timeout.
func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
		noAPI  bool
	}{
		{name: "api json", status: 400, body: `{"message":"name: a job needs a name"}`, want: "GET /v1/scheduler/jobs: 400 name: a job needs a name"},
		{name: "plain 404", status: 404, body: "404 page not found\n", want: "GET /v1/scheduler/jobs: 404 404 page not found", noAPI: true},
		{name: "empty 503", status: 503, body: "", want: "GET /v1/scheduler/jobs: 503 Service Unavailable"},
		{name: "not json", status: 200, body: "<html>", want: "GET /v1/scheduler/jobs: the answer is not what the Chronos API sends (6 bytes): invalid character '<' looking for beginning of value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			_, err := chronos.NewClient(srv).ListJobs(context.Background())
			if err == nil || err.Error() != tt.want || errors.Is(err, chronos.ErrNoJobsAPI) != tt.noAPI {
				t.Errorf("ListJobs = %v, want %q (no API %v)", err, tt.want, tt.noAPI)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer close(release)
		_, err := chronos.NewClient(srv, chronos.WithTimeout(50*time.Millisecond)).Summaries(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Summaries = %v, want a deadline error", err)
		}
	})
	t.Run("token", func(t *testing.T) {
		var got string
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.Header.Get("Authorization")
			_, _ = io.WriteString(w, "[]")
		}))
		if _, err := chronos.NewClient(srv, chronos.WithToken("s3cret")).ListJobs(context.Background()); err != nil || got != "Bearer s3cret" {
			t.Errorf("ListJobs = %v, Authorization %q", err, got)
		}
	})
}

// newServer serves h on loopback until the test ends and returns its URL.
func newServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
