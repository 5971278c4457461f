package jobs_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// The Metronome API's shapes, as the tests read them.
type (
	mJob struct {
		ID             string            `json:"id"`
		Description    string            `json:"description"`
		Labels         map[string]string `json:"labels"`
		Run            json.RawMessage   `json:"run"`
		Schedules      []mSchedule       `json:"schedules"`
		ActiveRuns     []mRun            `json:"activeRuns"`
		History        *mHistory         `json:"history"`
		HistorySummary *mHistory         `json:"historySummary"`
	}
	mSchedule struct {
		ID                      string `json:"id"`
		Cron                    string `json:"cron"`
		Timezone                string `json:"timezone"`
		StartingDeadlineSeconds int    `json:"startingDeadlineSeconds"`
		ConcurrencyPolicy       string `json:"concurrencyPolicy"`
		Enabled                 bool   `json:"enabled"`
		NextRunAt               string `json:"nextRunAt"`
	}
	mRun struct {
		ID          string  `json:"id"`
		JobID       string  `json:"jobId"`
		Status      string  `json:"status"`
		CreatedAt   string  `json:"createdAt"`
		CompletedAt *string `json:"completedAt"`
		Tasks       []struct {
			ID, Status string
		} `json:"tasks"`
	}
	mHistory struct {
		SuccessCount           int      `json:"successCount"`
		FailureCount           int      `json:"failureCount"`
		LastSuccessAt          *string  `json:"lastSuccessAt"`
		LastFailureAt          *string  `json:"lastFailureAt"`
		SuccessfulFinishedRuns []mEnded `json:"successfulFinishedRuns"`
		FailedFinishedRuns     []mEnded `json:"failedFinishedRuns"`
	}
	mEnded struct {
		ID         string   `json:"id"`
		CreatedAt  string   `json:"createdAt"`
		FinishedAt string   `json:"finishedAt"`
		Tasks      []string `json:"tasks"`
	}
)

// metronomeTimeLayout is how the Metronome API writes times.
const metronomeTimeLayout = "2006-01-02T15:04:05.000-0700"

// wantBody fails the test unless a call answers status with exactly body (JSON, as the
// API writes it).
func (c *cluster) wantBody(status int, method, path string, reqBody any, body string) {
	c.t.Helper()
	got, data := c.call(method, path, reqBody, nil)
	if got != status || string(data) != body+"\n" {
		c.t.Errorf("%s %s = %d\n%s\nwant %d\n%s", method, path, got, data, status, body)
	}
}

// waitRunEnded waits until the run is no longer active (GET answers 404, as Metronome's
// does once a run ended), and returns the statuses it was seen in.
func (c *cluster) waitRunEnded(job, id string) []string {
	c.t.Helper()
	var seen []string
	eventually(c.t, "run "+id+" of "+job+" ended", func() error {
		var run mRun
		switch status, data := c.call("GET", "/v1/jobs/"+job+"/runs/"+id, nil, &run); status {
		case http.StatusNotFound:
			if string(data) != `{"message":"JobRun not found"}`+"\n" {
				return fmt.Errorf("404 %s", data)
			}
			return nil
		case http.StatusOK:
			if len(seen) == 0 || seen[len(seen)-1] != run.Status {
				seen = append(seen, run.Status)
			}
			return fmt.Errorf("run %s", run.Status)
		default:
			return fmt.Errorf("%d %s", status, data)
		}
	})
	return seen
}

// history reads a job's ?embed=history.
func (c *cluster) history(job string) mHistory {
	c.t.Helper()
	var j mJob
	c.mustCall(http.StatusOK, "GET", "/v1/jobs/"+job+"?embed=history", nil, &j)
	if j.History == nil {
		c.t.Fatalf("job %s without history: %+v", job, j)
	}
	return *j.History
}

// nextBerlin3am is the first 03:00 in Berlin after now, as Metronome writes it.
func nextBerlin3am(t testing.TB, now time.Time) string {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	local := now.In(berlin)
	next := time.Date(local.Year(), local.Month(), local.Day(), 3, 0, 0, 0, berlin)
	if !next.After(now) {
		next = time.Date(local.Year(), local.Month(), local.Day()+1, 3, 0, 0, 0, berlin)
	}
	return next.UTC().Format(metronomeTimeLayout)
}

// TestMetronomeJobsAndSchedules: jobs and their schedules made, read, replaced and
// deleted through /v1/jobs are the Chronos API's jobs (and the Chronos jobs Metronome can
// show are Metronome's); what only Metronome has survives a master restart.
func TestMetronomeJobsAndSchedules(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 0)

	const created = `{"id":"prod.backup","description":"Nightly backup","labels":{"team":"ops"},"run":{"cmd":"pg_dump main","cpus":0.5,"mem":64,"disk":256,"gpus":0,` +
		`"env":{"DB":"main"},"artifacts":[],"placement":{"constraints":[{"attribute":"rack","operator":"IS","value":"r1"}]},"restart":{"policy":"NEVER"},"maxLaunchDelay":3600,"volumes":[]}}`
	c.wantBody(http.StatusCreated, "POST", "/v1/jobs",
		`{"id": "prod.backup", "description": "Nightly backup", "labels": {"team": "ops"}, "run": {"cmd": "pg_dump main", "cpus": 0.5, "mem": 64, "disk": 0, "env": {"DB": "main"},
		"placement": {"constraints": [{"attribute": "rack", "operator": "EQ", "value": "r1"}]}}}`, created)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup", nil, created)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules", nil, `[]`)
	c.wantBody(http.StatusConflict, "POST", "/v1/jobs", `{"id": "prod.backup", "run": {"cmd": "true"}}`, `{"message":"Job with this id already exists"}`)
	c.wantBody(http.StatusNotFound, "GET", "/v1/jobs/nothing", nil, `{"message":"Job not found"}`)
	c.wantBody(http.StatusNotFound, "PUT", "/v1/jobs/nothing", `{"id": "nothing", "run": {"cmd": "true"}}`, `{"message":"Job not found"}`)
	c.wantBody(http.StatusNotFound, "DELETE", "/v1/jobs/nothing", nil, `{"message":"Job not found"}`)

	// The Chronos API serves the same job: a job without a schedule never runs on one.
	chronosJob := c.job("prod.backup")
	if chronosJob.Command != "pg_dump main" || !strings.HasPrefix(chronosJob.Schedule, "R0/") || chronosJob.CPUs != 0.5 || chronosJob.Mem != 64 || chronosJob.Retries != 0 {
		t.Errorf("the job through the Chronos API: %+v", chronosJob)
	}

	// A schedule: its next run is the next 03:00 in Berlin.
	before := time.Now()
	var sched mSchedule
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/prod.backup/schedules",
		`{"id": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "startingDeadlineSeconds": 60}`, &sched)
	want := mSchedule{ID: "nightly", Cron: "0 3 * * *", Timezone: "Europe/Berlin", StartingDeadlineSeconds: 60, ConcurrencyPolicy: "ALLOW", Enabled: true, NextRunAt: nextBerlin3am(t, before)}
	if sched != want {
		t.Errorf("schedule created %+v, want %+v", sched, want)
	}
	var schedules []mSchedule
	c.mustCall(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules", nil, &schedules)
	if len(schedules) != 1 || schedules[0] != want {
		t.Errorf("schedules %+v, want [%+v]", schedules, want)
	}
	var withSchedules mJob
	c.mustCall(http.StatusOK, "GET", "/v1/jobs/prod.backup?embed=schedules", nil, &withSchedules)
	if len(withSchedules.Schedules) != 1 || withSchedules.Schedules[0] != want {
		t.Errorf("embedded schedules %+v, want [%+v]", withSchedules.Schedules, want)
	}
	var chronosCron struct {
		Cron, ScheduleTimeZone, Schedule string
		Disabled, Concurrent             bool
	}
	c.read("/v1/scheduler/job/prod.backup", &chronosCron)
	if chronosCron.Cron != "0 3 * * *" || chronosCron.ScheduleTimeZone != "Europe/Berlin" || chronosCron.Schedule != "" || chronosCron.Disabled || !chronosCron.Concurrent {
		t.Errorf("the schedule through the Chronos API: %+v", chronosCron)
	}
	c.wantBody(http.StatusConflict, "POST", "/v1/jobs/prod.backup/schedules", `{"id": "nightly", "cron": "0 4 * * *"}`, `{"message":"Schedule with this id already exists"}`)
	c.wantBody(http.StatusUnprocessableEntity, "POST", "/v1/jobs/prod.backup/schedules", `{"id": "hourly", "cron": "0 * * * *"}`,
		`{"message":"Object is not valid","details":[{"path":"/id","errors":["job prod.backup has schedule nightly: a job has at most one (replace it with PUT)"]}]}`)
	c.wantBody(http.StatusNotFound, "GET", "/v1/jobs/prod.backup/schedules/hourly", nil, `{"message":"Schedule not found"}`)
	c.wantBody(http.StatusNotFound, "PUT", "/v1/jobs/prod.backup/schedules/hourly", `{"cron": "0 * * * *"}`, `{"message":"Schedule not found"}`)
	c.wantBody(http.StatusNotFound, "POST", "/v1/jobs/nothing/schedules", `{"id": "s", "cron": "0 * * * *"}`, `{"message":"Job not found"}`)

	// What only Metronome has is in the replicated state: a restarted master shows it.
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules/nightly", nil,
		`{"id":"nightly","cron":"0 3 * * *","timezone":"Europe/Berlin","timeZone":"Europe/Berlin","startingDeadlineSeconds":60,"concurrencyPolicy":"ALLOW","enabled":true,"nextRunAt":"`+want.NextRunAt+`"}`)
	c.master.Restart()
	c.read("/v1/jobs", nil)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup", nil, created)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules/nightly", nil,
		`{"id":"nightly","cron":"0 3 * * *","timezone":"Europe/Berlin","timeZone":"Europe/Berlin","startingDeadlineSeconds":60,"concurrencyPolicy":"ALLOW","enabled":true,"nextRunAt":"`+want.NextRunAt+`"}`)

	// Replacing the schedule; disabled, it has no next run.
	c.wantBody(http.StatusOK, "PUT", "/v1/jobs/prod.backup/schedules/nightly", `{"cron": "*/30 * * * *", "enabled": false, "concurrencyPolicy": "FORBID"}`,
		`{"id":"nightly","cron":"*/30 * * * *","timezone":"UTC","timeZone":"UTC","startingDeadlineSeconds":900,"concurrencyPolicy":"FORBID","enabled":false}`)
	c.read("/v1/scheduler/job/prod.backup", &chronosCron)
	if chronosCron.Cron != "*/30 * * * *" || chronosCron.ScheduleTimeZone != "UTC" || !chronosCron.Disabled || chronosCron.Concurrent {
		t.Errorf("the replaced schedule through the Chronos API: %+v", chronosCron)
	}

	// PUT replaces the job; without schedules in it, the schedule stays.
	const replaced = `{"id":"prod.backup","description":"","labels":{},"run":{"args":["/usr/bin/backup","--all"],"cpus":0.1,"mem":128,"disk":256,"gpus":0,` +
		`"env":{},"artifacts":[{"uri":"http://example.com/backup.tgz","extract":true,"executable":false,"cache":false}],"placement":{"constraints":[]},` +
		`"restart":{"policy":"ON_FAILURE","activeDeadlineSeconds":300},"maxLaunchDelay":60,"user":"nobody","volumes":[]}}`
	c.wantBody(http.StatusOK, "PUT", "/v1/jobs/prod.backup", `{"id": "prod.backup", "run": {"args": ["/usr/bin/backup", "--all"], "artifacts": [{"uri": "http://example.com/backup.tgz"}],
		"restart": {"policy": "ON_FAILURE", "activeDeadlineSeconds": 300}, "maxLaunchDelay": 60, "user": "nobody"}}`, replaced)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup", nil, replaced)
	c.mustCall(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules", nil, &schedules)
	if len(schedules) != 1 || schedules[0].ID != "nightly" || schedules[0].Cron != "*/30 * * * *" {
		t.Errorf("schedules after a PUT of the job without them: %+v", schedules)
	}
	if v := c.job("prod.backup"); v.Command != "/usr/bin/backup" || v.Retries != 100 || v.Schedule != "" {
		t.Errorf("the replaced job through the Chronos API: %+v", v)
	}
	// With schedules [] it goes; deleting a schedule is the same.
	c.mustCall(http.StatusOK, "PUT", "/v1/jobs/prod.backup", `{"id": "prod.backup", "run": {"cmd": "true"}, "schedules": []}`, nil)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules", nil, `[]`)
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/prod.backup/schedules", `{"id": "again", "cron": "0 0 1 1 *"}`, nil)
	c.wantBody(http.StatusOK, "DELETE", "/v1/jobs/prod.backup/schedules/again", nil,
		`{"id":"again","cron":"0 0 1 1 *","timezone":"UTC","timeZone":"UTC","startingDeadlineSeconds":900,"concurrencyPolicy":"ALLOW","enabled":true}`)
	c.wantBody(http.StatusNotFound, "GET", "/v1/jobs/prod.backup/schedules/again", nil, `{"message":"Schedule not found"}`)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/prod.backup/schedules", nil, `[]`)

	// Chronos jobs: one Metronome can show, and three it cannot.
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "hourly-report", "command": "make report", "arguments": ["a b"], "cron": "0 * * * *", "owner": "ops@example.com"}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "iso", "command": "true", "schedule": "R/2099-01-01T00:00:00Z/P1D"}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "Upper_Case", "command": "true", "cron": "0 * * * *"}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/dependency", `{"name": "child", "command": "true", "parents": ["prod.backup"]}`, nil)
	var list []mJob
	c.mustCall(http.StatusOK, "GET", "/v1/jobs?embed=schedules", nil, &list)
	var ids []string
	for _, j := range list {
		ids = append(ids, j.ID)
	}
	if !slices.Equal(ids, []string{"hourly-report", "prod.backup"}) {
		t.Fatalf("/v1/jobs lists %v, want hourly-report and prod.backup", ids)
	}
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/hourly-report", nil, `{"id":"hourly-report","description":"","labels":{},"run":{"cmd":"make report 'a b'","cpus":0.1,"mem":128,"disk":256,"gpus":0,`+
		`"env":{},"artifacts":[],"placement":{"constraints":[]},"restart":{"policy":"ON_FAILURE"},"volumes":[]}}`)
	if s := list[0].Schedules; len(s) != 1 || s[0].ID != "default" || s[0].Cron != "0 * * * *" || s[0].ConcurrencyPolicy != "FORBID" || s[0].StartingDeadlineSeconds != 0 || s[0].NextRunAt == "" {
		t.Errorf("the Chronos job's schedule through Metronome: %+v", s)
	}
	c.wantBody(http.StatusNotFound, "GET", "/v1/jobs/iso", nil,
		`{"message":"Job not found: iso is a Chronos job the Metronome API cannot show (its schedule is an ISO 8601 interval); see /v1/scheduler/job/iso"}`)
	c.wantBody(http.StatusNotFound, "GET", "/v1/jobs/child/runs", nil,
		`{"message":"Job not found: child is a Chronos job the Metronome API cannot show (it runs after its parents); see /v1/scheduler/job/child"}`)
	c.wantBody(http.StatusConflict, "POST", "/v1/jobs", `{"id": "iso", "run": {"cmd": "true"}}`,
		`{"message":"Job with this id already exists: a Chronos job the Metronome API cannot show (its schedule is an ISO 8601 interval)"}`)
	// A PUT through Metronome keeps what only Chronos has.
	c.mustCall(http.StatusOK, "PUT", "/v1/jobs/hourly-report", `{"id": "hourly-report", "run": {"cmd": "make report2", "restart": {"policy": "ON_FAILURE"}}}`, nil)
	var owner struct{ Owner, Command string }
	c.read("/v1/scheduler/job/hourly-report", &owner)
	if owner.Owner != "ops@example.com" || owner.Command != "make report2" {
		t.Errorf("the Chronos job after a Metronome PUT: %+v", owner)
	}

	// A job a Chronos job depends on stays; then it goes, with all that was stored of it.
	c.wantBody(http.StatusConflict, "DELETE", "/v1/jobs/prod.backup", nil,
		`{"message":"job prod.backup is a parent of the Chronos jobs child: delete them or change their parents first"}`)
	c.mustCall(http.StatusNoContent, "DELETE", "/v1/scheduler/job/child", nil, nil)
	var deleted mJob
	c.mustCall(http.StatusOK, "DELETE", "/v1/jobs/prod.backup", nil, &deleted)
	if deleted.ID != "prod.backup" {
		t.Errorf("DELETE answered %+v", deleted)
	}
	c.wantBody(http.StatusNotFound, "GET", "/v1/jobs/prod.backup", nil, `{"message":"Job not found"}`)
	c.mustCall(http.StatusNotFound, "GET", "/v1/scheduler/job/prod.backup", nil, nil)
	for _, prefix := range []string{"job/", "state/", "history/", "metronome/"} {
		for _, kv := range c.master.Store().KVList("jobs", prefix) {
			if strings.HasSuffix(kv.Key, "/prod.backup") {
				t.Errorf("key %s left after the job was deleted", kv.Key)
			}
		}
	}
}

// TestMetronomeBadInput: invalid requests are refused in Metronome's shapes (422 with
// the errors of each field, 400 for what is not JSON), and nothing of them is stored.
func TestMetronomeBadInput(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 0)
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs", `{"id": "ok", "run": {"cmd": "true"}}`, nil)
	const notValid = `{"message":"Object is not valid","details":[`
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"a bad id", "POST", "/v1/jobs", `{"id": "Bad_Id", "run": {"cmd": "true"}}`, 422,
			notValid + `{"path":"/id","errors":["\"Bad_Id\": ids are names of lowercase letters, digits and dashes, separated by dots, none starting or ending with a dash"]}]}`},
		{"a bad cron", "POST", "/v1/jobs/ok/schedules", `{"id": "s", "cron": "* * * 13 *"}`, 422,
			notValid + `{"path":"/cron","errors":["cron \"* * * 13 *\": month field \"13\": 13 is out of range 1-12"]}]}`},
		{"a bad cron in a job", "POST", "/v1/jobs", `{"id": "x", "run": {"cmd": "true"}, "schedules": [{"id": "s", "cron": "every day"}]}`, 422,
			notValid + `{"path":"/schedules/0/cron","errors":["cron \"every day\": want 5 fields (minute hour day-of-month month day-of-week), got 2"]}]}`},
		{"an unknown concurrency policy", "POST", "/v1/jobs/ok/schedules", `{"id": "s", "cron": "* * * * *", "concurrencyPolicy": "REPLACE"}`, 422,
			notValid + `{"path":"/concurrencyPolicy","errors":["\"REPLACE\": want ALLOW or FORBID"]}]}`},
		{"a bad restart policy", "PUT", "/v1/jobs/ok", `{"id": "ok", "run": {"cmd": "true", "restart": {"policy": "ALWAYS"}}}`, 422,
			notValid + `{"path":"/run/restart/policy","errors":["\"ALWAYS\": want NEVER or ON_FAILURE"]}]}`},
		{"several fields", "POST", "/v1/jobs", `{"id": "x", "run": {"cmd": "true", "mem": 8, "gpus": 2, "env": {"TOKEN": {"secret": "t"}}}}`, 422,
			notValid + `{"path":"/run/mem","errors":["8 is less than 32"]},{"path":"/run/gpus","errors":["GPUs are not offered by Atoll's agents: want 0"]},` +
				`{"path":"/run/env/TOKEN","errors":["secrets are not supported"]}]}`},
		{"a wrong type", "POST", "/v1/jobs", `{"id": "x", "run": {"cmd": "true", "cpus": "1"}}`, 422,
			notValid + `{"path":"/run/cpus","errors":["want float64, got string"]}]}`},
		{"an unknown field", "POST", "/v1/jobs", `{"id": "x", "run": {"cmd": "true", "command": "x"}}`, 422,
			notValid + `{"path":"/","errors":["unknown field \"command\" is not a field Atoll knows"]}]}`},
		{"an id not the path's", "PUT", "/v1/jobs/ok", `{"id": "other", "run": {"cmd": "true"}}`, 422,
			notValid + `{"path":"/id","errors":["\"other\" differs from the path's \"ok\""]}]}`},
		{"not JSON", "POST", "/v1/jobs", `{"id": `, 400, `{"message":"Invalid JSON: unexpected EOF"}`},
		{"a run override", "POST", "/v1/jobs/ok/runs", `{"env": {"A": "1"}}`, 422,
			notValid + `{"path":"/","errors":["run overrides are not supported: post no body"]}]}`},
		{"an unknown embed", "GET", "/v1/jobs?embed=tasks", "", 400, `{"message":"embed \"tasks\": want activeRuns, schedules, history or historySummary"}`},
		{"a bad stopCurrentJobRuns", "DELETE", "/v1/jobs/ok?stopCurrentJobRuns=yes", "", 400, `{"message":"stopCurrentJobRuns \"yes\": want true or false"}`},
		{"a run that does not exist", "GET", "/v1/jobs/ok/runs/20990101000000000", "", 404, `{"message":"JobRun not found"}`},
		{"stopping a run that does not exist", "POST", "/v1/jobs/ok/runs/20990101000000000/actions/stop", "", 404, `{"message":"JobRun not found"}`},
		{"a run of a job that does not exist", "POST", "/v1/jobs/nothing/runs", "", 404, `{"message":"Job not found"}`},
	}
	for _, tt := range tests {
		var body any
		if tt.body != "" {
			body = tt.body
		}
		status, data := c.call(tt.method, tt.path, body, nil)
		if status != tt.status || string(data) != tt.want+"\n" {
			t.Errorf("%s: %s %s = %d\n%s\nwant %d\n%s", tt.name, tt.method, tt.path, status, data, tt.status, tt.want)
		}
	}
	var keys []string
	for _, kv := range c.master.Store().KVList("jobs", "") {
		keys = append(keys, kv.Key)
	}
	if got := strings.Join(keys, ","); got != "framework-id,job/ok,metronome/ok,state/ok" {
		t.Errorf("stored keys %s", got)
	}
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/ok/schedules", nil, `[]`)
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/ok", nil, `{"id":"ok","description":"","labels":{},"run":{"cmd":"true","cpus":0.1,"mem":128,"disk":256,"gpus":0,`+
		`"env":{},"artifacts":[],"placement":{"constraints":[]},"restart":{"policy":"NEVER"},"maxLaunchDelay":3600,"volumes":[]}}`)
}

// TestMetronomeRuns: a run started through /v1/jobs runs its command and succeeds, with
// its task in the history; ON_FAILURE retries a failed run within one run, and stops
// once the run is past its activeDeadlineSeconds; a stopped run fails and is not
// retried; the embeds show runs and history; a job with runs in progress is deleted only
// with stopCurrentJobRuns.
func TestMetronomeRuns(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")

	// A run that succeeds.
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs", map[string]any{"id": "hello", "run": map[string]any{"cmd": "echo ran $CHRONOS_JOB_NAME > " + out, "mem": 32}}, nil)
	var run mRun
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/hello/runs", nil, &run)
	if len(run.ID) != 17 || run.JobID != "hello" || run.Status != "INITIAL" || run.CompletedAt != nil || len(run.Tasks) != 0 {
		t.Errorf("run started %+v", run)
	}
	created, err := time.Parse(metronomeTimeLayout, run.CreatedAt)
	if err != nil || created.UTC().Format("20060102150405.000") != run.ID[:14]+"."+run.ID[14:] {
		t.Errorf("run %s created at %s (%v)", run.ID, run.CreatedAt, err)
	}
	for _, status := range c.waitRunEnded("hello", run.ID) {
		if status != "INITIAL" && status != "STARTING" && status != "ACTIVE" {
			t.Errorf("an active run was shown %s", status)
		}
	}
	h := c.history("hello")
	if h.SuccessCount != 1 || h.FailureCount != 0 || h.LastSuccessAt == nil || h.LastFailureAt != nil || len(h.FailedFinishedRuns) != 0 ||
		len(h.SuccessfulFinishedRuns) != 1 || h.SuccessfulFinishedRuns[0].ID != run.ID || h.SuccessfulFinishedRuns[0].CreatedAt != run.CreatedAt || len(h.SuccessfulFinishedRuns[0].Tasks) != 1 {
		t.Fatalf("history %+v", h)
	}
	taskID := h.SuccessfulFinishedRuns[0].Tasks[0]
	if data, err := os.ReadFile(out); err != nil || string(data) != "ran hello\n" {
		t.Errorf("the run wrote %q (%v)", data, err)
	}
	if task := completedTask(c, taskID); task == nil || task.State != api.TaskFinished {
		t.Errorf("the run's task %s in the master: %+v", taskID, task)
	}

	// ON_FAILURE: the first attempt fails, the retry succeeds; one run, two tasks.
	marker := filepath.Join(dir, "failed-once")
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs", map[string]any{"id": "retried", "run": map[string]any{
		"cmd": "test -e " + marker + " || { touch " + marker + "; exit 3; }", "mem": 32, "restart": map[string]any{"policy": "ON_FAILURE", "activeDeadlineSeconds": 600}}}, nil)
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/retried/runs", nil, &run)
	c.waitRunEnded("retried", run.ID)
	h = c.history("retried")
	if h.SuccessCount != 1 || h.FailureCount != 0 || len(h.SuccessfulFinishedRuns) != 1 || h.SuccessfulFinishedRuns[0].ID != run.ID || len(h.SuccessfulFinishedRuns[0].Tasks) != 2 {
		t.Errorf("history of a run retried once %+v", h)
	}

	// ON_FAILURE within a second of the run's time: retries stop then.
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs", map[string]any{"id": "failing", "run": map[string]any{
		"cmd": "exit 3", "mem": 32, "restart": map[string]any{"policy": "ON_FAILURE", "activeDeadlineSeconds": 1}}}, nil)
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/failing/runs", nil, &run)
	c.waitRunEnded("failing", run.ID)
	h = c.history("failing")
	if h.SuccessCount != 0 || h.FailureCount != 1 || h.LastFailureAt == nil || len(h.FailedFinishedRuns) != 1 || h.FailedFinishedRuns[0].ID != run.ID {
		t.Fatalf("history of a failing run %+v", h)
	}
	due, _ := time.Parse(metronomeTimeLayout, run.CreatedAt)
	attempts := c.runs("failing")
	if len(attempts) == 0 || len(attempts) > 10 || attempts[len(attempts)-1].Attempt >= 100 {
		t.Errorf("attempts of the failing run: %+v", attempts)
	}
	for i, a := range attempts[:len(attempts)-1] {
		// Each attempt retried ended within the window.
		if end := parseTime(t, a.End); !end.Before(due.Add(time.Second)) {
			t.Errorf("attempt %d ended %v after the run's time and was retried, past its activeDeadlineSeconds", i, end.Sub(due))
		}
	}

	// A run stopped fails, and is not retried though the job says ON_FAILURE.
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs", `{"id": "sleeper", "run": {"cmd": "sleep 60", "mem": 32, "restart": {"policy": "ON_FAILURE"}}}`, nil)
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/sleeper/runs", nil, &run)
	waitActive := func(job, id string) mRun {
		t.Helper()
		var active mRun
		eventually(t, "run "+id+" of "+job+" active", func() error {
			if status, data := c.call("GET", "/v1/jobs/"+job+"/runs/"+id, nil, &active); status != http.StatusOK {
				return fmt.Errorf("%d %s", status, data)
			}
			if active.Status != "ACTIVE" || len(active.Tasks) != 1 || active.Tasks[0].Status != "TASK_RUNNING" {
				return fmt.Errorf("run %+v", active)
			}
			return nil
		})
		return active
	}
	active := waitActive("sleeper", run.ID)
	var runs []mRun
	c.mustCall(http.StatusOK, "GET", "/v1/jobs/sleeper/runs", nil, &runs)
	if len(runs) != 1 || runs[0].ID != run.ID || runs[0].Status != "ACTIVE" {
		t.Errorf("active runs %+v", runs)
	}
	var stopped mRun
	c.mustCall(http.StatusOK, "POST", "/v1/jobs/sleeper/runs/"+run.ID+"/actions/stop", nil, &stopped)
	if stopped.ID != run.ID || stopped.Status != "ACTIVE" {
		t.Errorf("stop answered %+v", stopped)
	}
	c.waitRunEnded("sleeper", run.ID)
	h = c.history("sleeper")
	if h.FailureCount != 1 || len(h.FailedFinishedRuns) != 1 || !slices.Equal(h.FailedFinishedRuns[0].Tasks, []string{active.Tasks[0].ID}) {
		t.Errorf("history of the stopped run %+v", h)
	}
	if task := completedTask(c, active.Tasks[0].ID); task == nil || task.State != api.TaskKilled {
		t.Errorf("the stopped run's task in the master: %+v", task)
	}
	c.wantBody(http.StatusOK, "GET", "/v1/jobs/sleeper/runs", nil, `[]`)

	// The embeds, with a run in progress.
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/sleeper/runs", nil, &run)
	waitActive("sleeper", run.ID)
	var list []mJob
	c.mustCall(http.StatusOK, "GET", "/v1/jobs?embed=activeRuns,schedules&embed=historySummary", nil, &list)
	byID := map[string]mJob{}
	for _, j := range list {
		byID[j.ID] = j
	}
	if hello := byID["hello"]; hello.ActiveRuns == nil || len(hello.ActiveRuns) != 0 || hello.Schedules == nil || len(hello.Schedules) != 0 || hello.History != nil ||
		hello.HistorySummary == nil || hello.HistorySummary.SuccessCount != 1 || hello.HistorySummary.SuccessfulFinishedRuns != nil {
		t.Errorf("hello with embeds %+v", hello)
	}
	if sleeper := byID["sleeper"]; len(sleeper.ActiveRuns) != 1 || sleeper.ActiveRuns[0].ID != run.ID || sleeper.ActiveRuns[0].Status != "ACTIVE" ||
		sleeper.HistorySummary == nil || sleeper.HistorySummary.FailureCount != 1 {
		t.Errorf("sleeper with embeds %+v", sleeper)
	}
	var raw []map[string]json.RawMessage
	c.mustCall(http.StatusOK, "GET", "/v1/jobs", nil, &raw)
	for _, j := range raw {
		if len(j) != 4 || j["id"] == nil || j["description"] == nil || j["labels"] == nil || j["run"] == nil {
			t.Errorf("a job without embeds has fields %v", slices.Sorted(maps.Keys(j)))
		}
	}

	// Deleting a job with a run in progress takes stopCurrentJobRuns.
	c.wantBody(http.StatusConflict, "DELETE", "/v1/jobs/sleeper", nil,
		`{"message":"job sleeper has active runs: stop them first, or delete with ?stopCurrentJobRuns=true"}`)
	c.mustCall(http.StatusOK, "DELETE", "/v1/jobs/sleeper?stopCurrentJobRuns=true", nil, nil)
	eventually(t, "the deleted job's task killed", func() error {
		for _, task := range c.master.Store().Tasks() {
			if task.Info.Name == "ChronosTask:sleeper" {
				return fmt.Errorf("task %s %s", task.ID, task.State)
			}
		}
		return nil
	})
}

// TestMetronomeLaunchDeadline: a run that cannot start (no agent) fails once its
// maxLaunchDelay passes, without a task and without a retry.
func TestMetronomeLaunchDeadline(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 0)
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs", `{"id": "stuck", "run": {"cmd": "true", "maxLaunchDelay": 1, "restart": {"policy": "ON_FAILURE"}}}`, nil)
	var run mRun
	c.mustCall(http.StatusCreated, "POST", "/v1/jobs/stuck/runs", nil, &run)
	var runs []mRun
	c.mustCall(http.StatusOK, "GET", "/v1/jobs/stuck/runs", nil, &runs)
	if len(runs) != 1 || runs[0].ID != run.ID || runs[0].Status != "INITIAL" {
		t.Errorf("runs %+v", runs)
	}
	c.waitRunEnded("stuck", run.ID)
	h := c.history("stuck")
	if h.FailureCount != 1 || len(h.FailedFinishedRuns) != 1 || h.FailedFinishedRuns[0].ID != run.ID || len(h.FailedFinishedRuns[0].Tasks) != 0 {
		t.Errorf("history %+v", h)
	}
	attempts := c.runs("stuck")
	if len(attempts) != 1 || attempts[0].Status != "failure" || attempts[0].State != "TASK_DROPPED" || attempts[0].AgentID != "" {
		t.Errorf("the run through the Chronos API: %+v", attempts)
	}
	var stat struct {
		History []struct{ Killed, Message string } `json:"taskStatHistory"`
	}
	c.read("/v1/scheduler/job/stat/stuck", &stat)
	if len(stat.History) != 1 || stat.History[0].Killed != "maxLaunchDelay" || stat.History[0].Message != "not started within 1s of its time (maxLaunchDelay)" {
		t.Errorf("stat %+v", stat)
	}
}

// completedTask is the master's record of a task that ended, nil when none.
func completedTask(c *cluster, id string) *state.Task {
	for _, task := range c.master.Store().CompletedTasks() {
		if task.ID == id {
			return task
		}
	}
	return nil
}
