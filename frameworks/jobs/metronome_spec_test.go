package jobs

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// specNow is the clock of the spec tests.
var specNow = time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)

// detailsOf returns an error's 422 details as "path: error | path: error", or the error
// text prefixed with its kind.
func detailsOf(err error) string {
	var inv *invalid
	var mal *malformed
	switch {
	case err == nil:
		return ""
	case errors.As(err, &inv):
		var parts []string
		for _, d := range inv.details {
			for _, e := range d.Errors {
				parts = append(parts, d.Path+": "+e)
			}
		}
		return strings.Join(parts, " | ")
	case errors.As(err, &mal):
		return "malformed: " + mal.Error()
	}
	return "other: " + err.Error()
}

func TestDecodeMetronomeJobErrors(t *testing.T) {
	tests := []struct {
		name, body, pathID, want string
	}{
		{"not JSON", `{"id": `, "", "malformed: Invalid JSON: unexpected EOF"},
		{"data after the object", `{"id": "a", "run": {"cmd": "true"}} {}`, "", "malformed: Invalid JSON: data after the object"},
		{"a wrong type", `{"id": "a", "run": {"cmd": "true", "cpus": "lots"}}`, "", "/run/cpus: want float64, got string"},
		{"an unknown field", `{"id": "a", "run": {"cmd": "true"}, "owner": "me"}`, "", `/: unknown field "owner" is not a field Atoll knows`},
		{"no id", `{"run": {"cmd": "true"}}`, "", "/id: a job needs an id"},
		{"upper case", `{"id": "Prod", "run": {"cmd": "true"}}`, "", `/id: "Prod": ids are names of lowercase letters, digits and dashes, separated by dots, none starting or ending with a dash`},
		{"a dash at the end", `{"id": "prod-.x", "run": {"cmd": "true"}}`, "", `/id: "prod-.x": ids are names of lowercase letters, digits and dashes, separated by dots, none starting or ending with a dash`},
		{"an underscore", `{"id": "a_b", "run": {"cmd": "true"}}`, "", `/id: "a_b": ids are names of lowercase letters, digits and dashes, separated by dots, none starting or ending with a dash`},
		{"an empty name", `{"id": "a..b", "run": {"cmd": "true"}}`, "", `/id: "a..b": ids are names of lowercase letters, digits and dashes, separated by dots, none starting or ending with a dash`},
		{"too long", `{"id": "` + strings.Repeat("a", 201) + `", "run": {"cmd": "true"}}`, "", "/id: at most 200 characters"},
		{"an id not the path's", `{"id": "a", "run": {"cmd": "true"}}`, "b", `/id: "a" differs from the path's "b"`},
		{"no run", `{"id": "a"}`, "", "/run: a job needs a run"},
		{"neither cmd nor args", `{"id": "a", "run": {"cpus": 1}}`, "", "/run: give cmd or args"},
		{"both cmd and args", `{"id": "a", "run": {"cmd": "x", "args": ["x"]}}`, "", "/run: give cmd or args, not both"},
		{"a blank cmd", `{"id": "a", "run": {"cmd": "  "}}`, "", "/run/cmd: the command is blank"},
		{"resources too small", `{"id": "a", "run": {"cmd": "x", "cpus": 0, "mem": 16, "disk": -1}}`, "", "/run/cpus: 0 is less than 0.01 | /run/mem: 16 is less than 32 | /run/disk: -1 is less than 0"},
		{"gpus", `{"id": "a", "run": {"cmd": "x", "gpus": 1}}`, "", "/run/gpus: GPUs are not offered by Atoll's agents: want 0"},
		{"docker without an image, privileged", `{"id": "a", "run": {"cmd": "x", "docker": {"privileged": true}}}`, "", "/run/docker/image: a container needs an image | /run/docker/privileged: privileged containers are not supported"},
		{"docker and ucr", `{"id": "a", "run": {"cmd": "x", "docker": {"image": "i"}, "ucr": {"image": {"id": "i"}}}}`, "", "/run: give docker or ucr, not both"},
		{"an appc image", `{"id": "a", "run": {"cmd": "x", "ucr": {"image": {"id": "i", "kind": "appc"}}}}`, "", `/run/ucr/image/kind: "appc": only docker images are supported`},
		{"a secret variable", `{"id": "a", "run": {"cmd": "x", "env": {"PASSWORD": {"secret": "db"}}}}`, "", "/run/env/PASSWORD: secrets are not supported"},
		{"a number variable", `{"id": "a", "run": {"cmd": "x", "env": {"N": 1}}}`, "", "/run/env/N: want a string"},
		{"a bad variable name", `{"id": "a", "run": {"cmd": "x", "env": {"A=B": "1"}}}`, "", `/run/env/A=B: "A=B" is not a variable name`},
		{"an artifact without a uri", `{"id": "a", "run": {"cmd": "x", "artifacts": [{"extract": false}]}}`, "", "/run/artifacts/0/uri: an artifact needs a uri"},
		{"a bad constraint operator", `{"id": "a", "run": {"cmd": "x", "placement": {"constraints": [{"attribute": "rack", "operator": "NEAR", "value": "1"}]}}}`, "", `/run/placement/constraints/0/operator: "NEAR": want IS, EQ, LIKE or UNLIKE`},
		{"a bad LIKE", `{"id": "a", "run": {"cmd": "x", "placement": {"constraints": [{"attribute": "rack", "operator": "LIKE", "value": "("}]}}}`, "", "/run/placement/constraints/0: "},
		{"a bad restart policy", `{"id": "a", "run": {"cmd": "x", "restart": {"policy": "ALWAYS"}}}`, "", `/run/restart/policy: "ALWAYS": want NEVER or ON_FAILURE`},
		{"a negative deadline", `{"id": "a", "run": {"cmd": "x", "restart": {"policy": "NEVER", "activeDeadlineSeconds": -1}}}`, "", "/run/restart/activeDeadlineSeconds: -1: want seconds ≥ 0"},
		{"a negative launch delay", `{"id": "a", "run": {"cmd": "x", "maxLaunchDelay": -5}}`, "", "/run/maxLaunchDelay: -5: want seconds ≥ 1"},
		{"volumes without a container", `{"id": "a", "run": {"cmd": "x", "volumes": [{"containerPath": "/d", "hostPath": "/d"}]}}`, "", "/run/volumes/0: volumes need a container image (docker or ucr)"},
		{"a secret volume", `{"id": "a", "run": {"cmd": "x", "docker": {"image": "i"}, "volumes": [{"containerPath": "/d", "secret": "s"}]}}`, "", "/run/volumes/0/secret: secret volumes are not supported"},
		{"networks, secrets and a grace period", `{"id": "a", "run": {"cmd": "x", "networks": [{"mode": "host"}], "secrets": {"s": {"source": "x"}}, "taskKillGracePeriodSeconds": 5}}`, "",
			"/run/networks: not supported by Atoll's jobs | /run/secrets: not supported by Atoll's jobs | /run/taskKillGracePeriodSeconds: not supported by Atoll's jobs"},
		{"read-only fields", `{"id": "a", "run": {"cmd": "x"}, "activeRuns": []}`, "", "/: activeRuns, history and historySummary are shown with ?embed=, not set"},
		{"two schedules", `{"id": "a", "run": {"cmd": "x"}, "schedules": [{"id": "s1", "cron": "* * * * *"}, {"id": "s2", "cron": "* * * * *"}]}`, "", "/schedules: a job has at most one schedule, got 2"},
		{"a bad schedule", `{"id": "a", "run": {"cmd": "x"}, "schedules": [{"id": "S", "cron": "61 * * * *", "concurrencyPolicy": "REPLACE", "timezone": "Mars/Base"}]}`, "",
			`/schedules/0/id: "S": lowercase letters, digits and dashes, not starting or ending with a dash | /schedules/0/timezone: time zone "Mars/Base": not a known IANA zone name | /schedules/0/cron: cron "61 * * * *": minute field "61": 61 is out of range 0-59 | /schedules/0/concurrencyPolicy: "REPLACE": want ALLOW or FORBID`},
	}
	for _, tt := range tests {
		_, err := decodeMetronomeJob([]byte(tt.body), tt.pathID)
		got := detailsOf(err)
		if got != tt.want && !(strings.HasSuffix(tt.want, ": ") && strings.HasPrefix(got, tt.want)) {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestDecodeMetronomeScheduleErrors(t *testing.T) {
	tests := []struct {
		name, body, pathID, want string
	}{
		{"no id, no cron", `{}`, "", "/id: a schedule needs an id | /cron: a schedule needs a cron expression"},
		{"four fields", `{"id": "s", "cron": "* * * *"}`, "", `/cron: cron "* * * *": want 5 fields (minute hour day-of-month month day-of-week), got 4`},
		{"an unknown policy", `{"id": "s", "cron": "* * * * *", "concurrencyPolicy": "SOMETIMES"}`, "", `/concurrencyPolicy: "SOMETIMES": want ALLOW or FORBID`},
		{"two zones", `{"id": "s", "cron": "* * * * *", "timezone": "UTC", "timeZone": "Europe/Berlin"}`, "", `/timezone: timezone "UTC" and timeZone "Europe/Berlin" differ`},
		{"a negative deadline", `{"id": "s", "cron": "* * * * *", "startingDeadlineSeconds": -1}`, "", "/startingDeadlineSeconds: -1: want seconds ≥ 1"},
		{"an id not the path's", `{"id": "s", "cron": "* * * * *"}`, "t", `/id: "s" differs from the path's "t"`},
		{"an unknown field", `{"id": "s", "cron": "* * * * *", "every": "day"}`, "", `/: unknown field "every" is not a field Atoll knows`},
		{"a dash at the start", `{"id": "-s", "cron": "* * * * *"}`, "", `/id: "-s": lowercase letters, digits and dashes, not starting or ending with a dash`},
	}
	for _, tt := range tests {
		_, err := decodeMetronomeSchedule([]byte(tt.body), tt.pathID)
		if got := detailsOf(err); got != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
	// Defaults, and the path's id for a body without one.
	s, err := decodeMetronomeSchedule([]byte(`{"cron": "0 3 * * *", "timeZone": "Europe/Berlin", "nextRunAt": "2020-01-01T00:00:00.000+0000"}`), "nightly")
	if err != nil {
		t.Fatal(err)
	}
	want := metronomeSchedule{ID: "nightly", Cron: "0 3 * * *", Timezone: "Europe/Berlin", TimeZone: "Europe/Berlin", StartingDeadlineSeconds: 900, ConcurrencyPolicy: "ALLOW"}
	if !*s.Enabled || (func() metronomeSchedule { c := *s; c.Enabled = nil; return c }()) != want {
		t.Errorf("schedule %+v, want %+v enabled", *s, want)
	}
}

// fullSpec is a JobSpec with every field Atoll takes.
const fullSpec = `{
	"id": "prod.example.app",
	"description": "Example Application",
	"labels": {"location": "olympus", "owner": "zeus"},
	"run": {
		"args": ["nuke", "--dry", "--master", "local"],
		"cpus": 1.5, "mem": 32, "disk": 128, "gpus": 0,
		"docker": {"image": "foo/bla:test", "forcePullImage": true, "parameters": [{"key": "label", "value": "x"}]},
		"env": {"MON": "test", "CONNECT": "direct"},
		"artifacts": [{"uri": "http://foo.test/app.zip", "extract": false, "executable": true, "cache": true}, {"uri": "http://foo.test/b.tgz"}],
		"placement": {"constraints": [{"attribute": "rack", "operator": "EQ", "value": "rack-2"}, {"attribute": "host", "operator": "UNLIKE", "value": "db.*"}]},
		"restart": {"policy": "ON_FAILURE", "activeDeadlineSeconds": 120},
		"maxLaunchDelay": 600,
		"user": "nobody",
		"volumes": [{"containerPath": "/mnt/test", "hostPath": "/etc/guest", "mode": "RW"}],
		"networks": [], "secrets": {}
	},
	"schedules": [{"id": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "startingDeadlineSeconds": 60, "concurrencyPolicy": "FORBID", "enabled": false}]
}`

// TestMetronomeToJob: a JobSpec's Chronos job and Metronome fields, and the spec shown
// back; replacing a Chronos job keeps what Metronome cannot say.
func TestMetronomeToJob(t *testing.T) {
	spec, err := decodeMetronomeJob([]byte(fullSpec), "prod.example.app")
	if err != nil {
		t.Fatal(err)
	}
	j, meta, err := spec.toJob(nil, nil, specNow)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	const wantJob = `{"name":"prod.example.app","command":"nuke","shell":false,"arguments":["--dry","--master","local"],"scheduleTimeZone":"Europe/Berlin","cron":"30 2 * * *",` +
		`"retries":100,"cpus":1.5,"mem":32,"disk":128,"disabled":true,"concurrent":false,"description":"Example Application","runAsUser":"nobody",` +
		`"environmentVariables":[{"name":"CONNECT","value":"direct"},{"name":"MON","value":"test"}],"constraints":[["rack","EQUALS","rack-2"],["host","UNLIKE","db.*"]],` +
		`"fetch":[{"uri":"http://foo.test/app.zip","executable":true,"extract":false,"cache":true},{"uri":"http://foo.test/b.tgz","extract":true}],` +
		`"container":{"type":"DOCKER","image":"foo/bla:test","volumes":[{"containerPath":"/mnt/test","hostPath":"/etc/guest","mode":"RW"}],"forcePullImage":true,"parameters":[{"key":"label","value":"x"}]},` +
		`"successCount":0,"errorCount":0,"lastSuccess":"","lastError":"","errorsSinceLastSuccess":0}`
	if string(data) != wantJob {
		t.Errorf("job\n%s\nwant\n%s", data, wantJob)
	}
	wantMeta := metronomeMeta{Labels: map[string]string{"location": "olympus", "owner": "zeus"}, MaxLaunchDelay: 600, ActiveDeadline: 120, ScheduleID: "nightly", StartingDeadline: 60}
	if !reflect.DeepEqual(*meta, wantMeta) {
		t.Errorf("meta %+v, want %+v", *meta, wantMeta)
	}

	shown := metronomeSpec(j, meta)
	shown.Schedules = metronomeSchedules(j, meta, time.Date(2026, 3, 11, 1, 30, 0, 0, time.UTC))
	data, err = json.Marshal(shown)
	if err != nil {
		t.Fatal(err)
	}
	const wantShown = `{"id":"prod.example.app","description":"Example Application","labels":{"location":"olympus","owner":"zeus"},` +
		`"run":{"args":["nuke","--dry","--master","local"],"cpus":1.5,"mem":32,"disk":128,"gpus":0,"docker":{"image":"foo/bla:test","forcePullImage":true,"parameters":[{"key":"label","value":"x"}]},` +
		`"env":{"CONNECT":"direct","MON":"test"},"artifacts":[{"uri":"http://foo.test/app.zip","extract":false,"executable":true,"cache":true},{"uri":"http://foo.test/b.tgz","extract":true,"executable":false,"cache":false}],` +
		`"placement":{"constraints":[{"attribute":"rack","operator":"IS","value":"rack-2"},{"attribute":"host","operator":"UNLIKE","value":"db.*"}]},` +
		`"restart":{"policy":"ON_FAILURE","activeDeadlineSeconds":120},"maxLaunchDelay":600,"user":"nobody","volumes":[{"containerPath":"/mnt/test","hostPath":"/etc/guest","mode":"RW"}]},` +
		`"schedules":[{"id":"nightly","cron":"30 2 * * *","timezone":"Europe/Berlin","timeZone":"Europe/Berlin","startingDeadlineSeconds":60,"concurrencyPolicy":"FORBID","enabled":false}]}`
	if string(data) != wantShown {
		t.Errorf("shown\n%s\nwant\n%s", data, wantShown)
	}

	// A Chronos job replaced through Metronome keeps its Chronos-only fields, its retries
	// (ON_FAILURE) and, without schedules in the request, its schedule.
	chronos, err := decodeJob([]byte(`{"name": "report", "command": "make report", "cron": "0 * * * *", "retries": 3, "owner": "ops@example.com",
		"ownerName": "Ops", "highPriority": true, "softError": true, "maxCompletionTime": 60000, "concurrent": true,
		"container": {"image": "busybox", "network": "HOST"}}`), false, specNow)
	if err != nil {
		t.Fatal(err)
	}
	put, err := decodeMetronomeJob([]byte(`{"id": "report", "run": {"cmd": "make report2", "docker": {"image": "alpine"}, "restart": {"policy": "ON_FAILURE"}}}`), "report")
	if err != nil {
		t.Fatal(err)
	}
	replaced, meta, err := put.toJob(chronos, nil, specNow)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.Command != "make report2" || *replaced.Retries != 3 || replaced.Owner != "ops@example.com" || replaced.OwnerName != "Ops" || !replaced.HighPriority ||
		!replaced.SoftError || replaced.MaxCompletionTime != 60000 || replaced.Cron != "0 * * * *" || !replaced.Concurrent ||
		replaced.Container.Image != "alpine" || replaced.Container.Network != "HOST" || meta.ScheduleID != "" || meta.MaxLaunchDelay != 3600 {
		t.Errorf("replaced %+v (container %+v), meta %+v", replaced, replaced.Container, meta)
	}
	// A job without a schedule never runs on one.
	bare, err := decodeMetronomeJob([]byte(`{"id": "bare", "run": {"cmd": "true"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	j, meta, err = bare.toJob(nil, nil, specNow)
	if err != nil {
		t.Fatal(err)
	}
	if j.Schedule != "R0/2026-03-10T12:30:00.000Z/P1D" || j.Cron != "" || !j.Concurrent || *j.Retries != 0 || j.CPUs != 0.1 || j.Mem != 128 || j.Disk != 256 ||
		metronomeHidden(j) != "" || len(metronomeSchedules(j, meta, time.Time{})) != 0 {
		t.Errorf("a job without a schedule: %+v", j)
	}
}

func TestMetronomeHidden(t *testing.T) {
	tests := []struct {
		job  Job
		want string
	}{
		{Job{Name: "a.b-c", Cron: "* * * * *"}, ""},
		{Job{Name: "never", Schedule: "R0/2026-01-01T00:00:00Z/P1D"}, ""},
		{Job{Name: "Upper", Cron: "* * * * *"}, "its name is not a Metronome job id"},
		{Job{Name: "under_score", Cron: "* * * * *"}, "its name is not a Metronome job id"},
		{Job{Name: "child", Parents: []string{"a"}}, "it runs after its parents"},
		{Job{Name: "iso", Schedule: "R/2026-01-01T00:00:00Z/PT1H"}, "its schedule is an ISO 8601 interval"},
	}
	for _, tt := range tests {
		if got := metronomeHidden(&tt.job); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.job.Name, got, tt.want)
		}
	}
}

func TestMetronomeRunIDAndTime(t *testing.T) {
	due := time.Date(2016, 7, 15, 15, 2, 59, 735_400_000, time.FixedZone("CEST", 2*3600))
	if got := metronomeRunID(due); got != "20160715130259735" {
		t.Errorf("run id %s", got)
	}
	if got := metronomeTime(due); got != "2016-07-15T13:02:59.735+0000" {
		t.Errorf("time %s", got)
	}
}

// TestLaunchDeadline: which deadline a run has, and that only a first attempt has one.
func TestLaunchDeadline(t *testing.T) {
	cronJob, manualJob := &Job{Cron: "* * * * *"}, &Job{Schedule: noSchedule}
	tests := []struct {
		name      string
		meta      metronomeMeta
		job       *Job
		run       run
		wantLimit time.Duration
		wantWhy   string
	}{
		{"a scheduled run, the starting deadline sooner", metronomeMeta{MaxLaunchDelay: 3600, StartingDeadline: 60}, cronJob, run{}, time.Minute, killedStartingDeadline},
		{"a scheduled run, the launch delay sooner", metronomeMeta{MaxLaunchDelay: 30, StartingDeadline: 60}, cronJob, run{}, 30 * time.Second, killedLaunchDelay},
		{"a scheduled run, only a starting deadline", metronomeMeta{StartingDeadline: 60}, cronJob, run{}, time.Minute, killedStartingDeadline},
		{"a run asked for", metronomeMeta{MaxLaunchDelay: 3600, StartingDeadline: 60}, cronJob, run{Manual: true}, time.Hour, killedLaunchDelay},
		{"a job without a schedule", metronomeMeta{MaxLaunchDelay: 3600, StartingDeadline: 60}, manualJob, run{}, time.Hour, killedLaunchDelay},
		{"a retry", metronomeMeta{MaxLaunchDelay: 3600, StartingDeadline: 60}, cronJob, run{Attempt: 1}, 0, ""},
		{"no limits", metronomeMeta{}, cronJob, run{}, 0, killedLaunchDelay},
	}
	for _, tt := range tests {
		limit, why := tt.meta.launchDeadline(tt.job, &tt.run)
		if limit != tt.wantLimit || (limit != 0 && why != tt.wantWhy) {
			t.Errorf("%s: %v %q, want %v %q", tt.name, limit, why, tt.wantLimit, tt.wantWhy)
		}
	}
}

// FuzzMetronomeJob: any body is refused with an error or taken; a job taken is a valid
// Chronos job, and reads back (with its schedule) as a spec that makes the same job.
func FuzzMetronomeJob(f *testing.F) {
	f.Add([]byte(fullSpec))
	f.Add([]byte(`{"id": "a", "run": {"cmd": "true"}}`))
	f.Add([]byte(`{"id": "a.b", "run": {"args": ["x"], "ucr": {"image": {"id": "i"}}, "env": {"A": "\u0041"}}, "schedules": []}`))
	f.Add([]byte(`{"id": "a", "run": {"cmd": "x", "restart": {"policy": "NEVER", "activeDeadlineSeconds": 5}}, "schedules": [{"id": "s", "cron": "@daily", "timeZone": "Asia/Tokyo"}]}`))
	f.Add([]byte(`{"id": "a", "run": {"cmd": "x", "env": {"P": {"secret": "s"}}, "placement": {"constraints": [{"attribute": "a", "operator": "LIKE", "value": "["}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := decodeMetronomeJob(data, "")
		if err != nil {
			return
		}
		j, meta, err := spec.toJob(nil, nil, specNow)
		if err != nil {
			var inv *invalid
			if !errors.As(err, &inv) {
				t.Fatalf("toJob of a valid spec: %v", err)
			}
			return
		}
		if _, err := newEntry(j); err != nil {
			t.Fatalf("the job of a valid spec cannot be scheduled: %v", err)
		}
		if why := metronomeHidden(j); why != "" {
			t.Fatalf("a job made through Metronome is hidden from it: %s", why)
		}
		shown := metronomeSpec(j, meta)
		shown.Schedules = metronomeSchedules(j, meta, time.Time{})
		data2, err := json.Marshal(shown)
		if err != nil {
			t.Fatal(err)
		}
		spec2, err := decodeMetronomeJob(data2, j.Name)
		if err != nil {
			t.Fatalf("the spec shown is refused: %v\n%s", err, data2)
		}
		j2, meta2, err := spec2.toJob(nil, nil, specNow)
		if err != nil {
			t.Fatalf("the spec shown makes no job: %v\n%s", err, data2)
		}
		if !reflect.DeepEqual(j, j2) || !reflect.DeepEqual(meta, meta2) {
			t.Fatalf("read back as another job:\n%+v %+v\n%+v %+v", j, meta, j2, meta2)
		}
	})
}

// FuzzMetronomeSchedule: a schedule taken gives a job a valid schedule, and reads back
// as itself.
func FuzzMetronomeSchedule(f *testing.F) {
	f.Add([]byte(`{"id": "s", "cron": "*/5 * * * *"}`))
	f.Add([]byte(`{"id": "nightly", "cron": "30 2 * * 1-5", "timezone": "America/Chicago", "startingDeadlineSeconds": 60, "concurrencyPolicy": "FORBID", "enabled": false}`))
	f.Add([]byte(`{"id": "s", "cron": "0 0 30 2 *", "timeZone": "UTC", "nextRunAt": "x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sched, err := decodeMetronomeSchedule(data, "")
		if err != nil {
			return
		}
		j := &Job{Name: "job", Command: "true", Schedule: noSchedule}
		meta := &metronomeMeta{}
		setSchedule(j, meta, sched)
		if err := normalize(j, false, specNow); err != nil {
			t.Fatalf("a valid schedule makes an invalid job: %v", err)
		}
		shown := metronomeSchedules(j, meta, time.Time{})
		if len(shown) != 1 || !reflect.DeepEqual(shown[0], *sched) {
			t.Fatalf("schedule %+v reads back as %+v", *sched, shown)
		}
	})
}
