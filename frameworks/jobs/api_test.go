package jobs_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBadInput: invalid jobs are refused with 400 and a message naming the problem, and
// nothing of them is stored.
func TestBadInput(t *testing.T) {
	c := newCluster(t, 0)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "a", "command": "true", "schedule": "R/2099-01-01T00:00:00Z/P1D"}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/dependency", `{"name": "b", "command": "true", "parents": ["a"]}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/dependency", `{"name": "c", "command": "true", "parents": ["b"]}`, nil)
	tests := []struct {
		name, path, body, want string
	}{
		{"not JSON", "/iso8601", `{"name": `, "not valid JSON"},
		{"a wrong type", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "cpus": "lots"}`, "not valid JSON"},
		{"no name", "/iso8601", `{"command": "true", "schedule": "R//P1D"}`, "a job needs a name"},
		{"a bad name", "/iso8601", `{"name": "no spaces", "command": "true", "schedule": "R//P1D"}`, `name "no spaces"`},
		{"a slash in the name", "/iso8601", `{"name": "a/b", "command": "true", "schedule": "R//P1D"}`, `name "a/b"`},
		{"no command", "/iso8601", `{"name": "x", "schedule": "R//P1D"}`, "has no command"},
		{"an invalid schedule", "/iso8601", `{"name": "x", "command": "true", "schedule": "R/2024-01-01T00:00:00Z/1D"}`, `schedule: schedule "R/2024-01-01T00:00:00Z/1D": period "1D"`},
		{"an invalid start", "/iso8601", `{"name": "x", "command": "true", "schedule": "R/tomorrow/P1D"}`, "start"},
		{"an unknown zone", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "scheduleTimeZone": "Mars/Base"}`, "scheduleTimeZone"},
		{"an invalid cron", "/iso8601", `{"name": "x", "command": "true", "cron": "61 * * * *"}`, "cron"},
		{"schedule and cron", "/iso8601", `{"name": "x", "command": "true", "cron": "* * * * *", "schedule": "R//P1D"}`, "both schedule and cron"},
		{"schedule and parents", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "parents": ["a"]}`, "both a schedule and parents"},
		{"neither", "/iso8601", `{"name": "x", "command": "true"}`, "neither a schedule nor parents"},
		{"parents on /iso8601", "/iso8601", `{"name": "x", "command": "true", "parents": ["a"]}`, "/iso8601 takes scheduled jobs"},
		{"a schedule on /dependency", "/dependency", `{"name": "x", "command": "true", "schedule": "R//P1D"}`, "/dependency takes jobs with parents"},
		{"an unknown parent", "/dependency", `{"name": "x", "command": "true", "parents": ["a", "ghost"]}`, "parents: job ghost does not exist"},
		{"its own parent", "/dependency", `{"name": "x", "command": "true", "parents": ["x"]}`, "cannot depend on itself"},
		{"a cycle", "/dependency", `{"name": "a", "command": "true", "parents": ["c"]}`, "cycle: a → b → c → a"},
		{"negative resources", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "mem": -1}`, "must not be negative"},
		{"too many retries", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "retries": -1}`, "retries"},
		{"a bad constraint", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "constraints": [["rack", "NEAR", "1"]]}`, `constraints[0]: operator "NEAR"`},
		{"a bad LIKE", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "constraints": [["rack", "LIKE", "("]]}`, "constraints[0]"},
		{"a bad container", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "container": {"type": "LXC", "image": "busybox"}}`, "container.type"},
		{"a container without an image", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "container": {"type": "DOCKER"}}`, "container.image"},
		{"a bad environment variable", "/iso8601", `{"name": "x", "command": "true", "schedule": "R//P1D", "environmentVariables": [{"name": "A=B", "value": "1"}]}`, "environmentVariables[0]"},
	}
	for _, prefix := range []string{"/v1/scheduler", "/scheduler"} {
		for _, tt := range tests {
			status, body := c.call("POST", prefix+tt.path, tt.body, nil)
			var msg struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(body, &msg)
			if status != http.StatusBadRequest || !strings.Contains(msg.Message, tt.want) {
				t.Errorf("%s: POST %s%s = %d %s, want 400 with %q", tt.name, prefix, tt.path, status, body, tt.want)
			}
		}
	}
	var list []jobView
	c.mustCall(http.StatusOK, "GET", "/v1/scheduler/jobs", nil, &list)
	var names []string
	for _, j := range list {
		names = append(names, j.Name)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("jobs %v, want a, b, c", names)
	}
	if a := c.job("a"); a.Schedule != "R/2099-01-01T00:00:00Z/P1D" || len(a.Parents) != 0 {
		t.Errorf("job a changed by a refused update: %+v", a)
	}
	var keys []string
	for _, kv := range c.master.Store().KVList("jobs", "") {
		keys = append(keys, kv.Key)
	}
	if got := strings.Join(keys, ","); got != "framework-id,job/a,job/b,job/c,state/a,state/b,state/c" {
		t.Errorf("stored keys %s", got)
	}
	// A parent cannot go while a child needs it.
	status, body := c.call("DELETE", "/v1/scheduler/job/a", nil, nil)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "job a is a parent of b") {
		t.Errorf("DELETE a parent = %d %s", status, body)
	}
}

// TestAPI: defaults, listing, summary, search, stat, success, kill, delete and leader,
// under both prefixes.
func TestAPI(t *testing.T) {
	c := newCluster(t, 0)
	c.mustCall(http.StatusNoContent, "POST", "/scheduler/iso8601", `{"name": "backup-db", "command": "pg_dump", "schedule": "R/2099-01-01T00:00:00Z/P1D", "epsilon": "PT30M", "async": false, "owner": "ops@example.com"}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/scheduler/dependency", `{"name": "report", "command": "make report", "parents": ["backup-db"], "retries": 0, "cpus": 2, "mem": 64, "disk": 10}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "nightly.cron", "command": "true", "cron": "30 2 * * *", "scheduleTimeZone": "Europe/Berlin"}`, nil)

	backup := c.job("backup-db")
	if backup.Retries != 2 || backup.CPUs != 0.1 || backup.Mem != 128 || backup.Disk != 256 || backup.Disabled {
		t.Errorf("defaults: %+v", backup)
	}
	report := c.job("report")
	if report.Retries != 0 || report.CPUs != 2 || report.Mem != 64 || report.Disk != 10 {
		t.Errorf("given values: %+v", report)
	}

	var summary struct {
		Jobs []struct {
			Name, Status, State, Schedule string
			Parents                       []string
		} `json:"jobs"`
	}
	c.mustCall(http.StatusOK, "GET", "/v1/scheduler/jobs/summary", nil, &summary)
	if len(summary.Jobs) != 3 || summary.Jobs[0].Name != "backup-db" || summary.Jobs[0].Status != "fresh" || summary.Jobs[0].State != "idle" ||
		summary.Jobs[1].Schedule != "30 2 * * *" || summary.Jobs[2].Parents[0] != "backup-db" {
		t.Errorf("summary %+v", summary)
	}

	for _, tt := range []struct{ query, want string }{
		{"name=BACKUP", "backup-db"},
		{"command=make", "report"},
		{"any=P", "backup-db,report"},
		{"any=p&offset=1&limit=1", "report"},
		{"any=p&limit=1", "backup-db"},
		{"name=nothing", ""},
	} {
		var found []jobView
		c.mustCall(http.StatusOK, "GET", "/scheduler/jobs/search?"+tt.query, nil, &found)
		var names []string
		for _, j := range found {
			names = append(names, j.Name)
		}
		if got := strings.Join(names, ","); got != tt.want {
			t.Errorf("search %s = %s, want %s", tt.query, got, tt.want)
		}
	}
	c.mustCall(http.StatusBadRequest, "GET", "/scheduler/jobs/search?limit=-1", nil, nil)

	// Marking the parent successful sets off the child; it waits for an agent.
	c.mustCall(http.StatusNoContent, "PUT", "/v1/scheduler/job/success/backup-db", nil, nil)
	if v := c.job("backup-db"); v.SuccessCount != 1 || v.LastSuccess == "" {
		t.Errorf("after success: %+v", v)
	}
	csv := string(c.mustCall(http.StatusOK, "GET", "/v1/scheduler/graph/csv", nil, nil))
	if !strings.Contains(csv, "node,backup-db,success,idle\n") || !strings.Contains(csv, "node,report,fresh,queued\n") {
		t.Errorf("graph csv after success:\n%s", csv)
	}
	runs := c.runs("report")
	if len(runs) != 1 || runs[0].Status != "queued" || !strings.HasPrefix(runs[0].TaskID, "ct:") {
		t.Errorf("report's runs %+v", runs)
	}
	// Killing drops the waiting run.
	c.mustCall(http.StatusNoContent, "DELETE", "/scheduler/task/kill/report", nil, nil)
	if runs := c.runs("report"); len(runs) != 0 {
		t.Errorf("runs after kill %+v", runs)
	}

	var stat struct {
		Histogram map[string]float64 `json:"histogram"`
	}
	c.mustCall(http.StatusOK, "GET", "/scheduler/job/stat/backup-db", nil, &stat)
	if stat.Histogram["count"] != 0 {
		t.Errorf("stat %+v", stat)
	}

	var leader map[string]string
	for _, path := range []string{"/leader", "/scheduler/leader", "/v1/scheduler/leader"} {
		c.mustCall(http.StatusOK, "GET", path, nil, &leader)
		if leader["leader"] != strings.TrimPrefix(c.master.URL, "http://") {
			t.Errorf("GET %s = %v", path, leader)
		}
	}

	c.mustCall(http.StatusNoContent, "DELETE", "/v1/scheduler/job/report", nil, nil)
	c.mustCall(http.StatusNoContent, "DELETE", "/scheduler/job/backup-db", nil, nil)
	c.mustCall(http.StatusNotFound, "DELETE", "/scheduler/job/backup-db", nil, nil)
	c.mustCall(http.StatusNotFound, "GET", "/scheduler/job/stat/backup-db", nil, nil)
	var list []jobView
	c.mustCall(http.StatusOK, "GET", "/scheduler/jobs", nil, &list)
	if len(list) != 1 || list[0].Name != "nightly.cron" {
		t.Errorf("jobs after deletes %+v", list)
	}
	if kvs := c.master.Store().KVList("jobs", "history/backup-db"); len(kvs) != 0 {
		t.Errorf("history left after delete: %d keys", len(kvs))
	}
}
