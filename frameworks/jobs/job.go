package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/frameworks/jobs/schedule"
	"github.com/atoll/atoll/frameworks/services/placement"
)

// The job's wire types are api/chronos's: the framework serves what the client reads.
type (
	// Job is a Chronos job definition (with Atoll's cron field), and its counters.
	Job = chronos.Job
	// Counters are a job's read-only statistics, shown with it, never taken from a request.
	Counters = chronos.Counters
	// EnvVar is one environment variable of a job's runs.
	EnvVar = chronos.EnvVar
	// Fetch is a URI fetched into a run's sandbox.
	Fetch = chronos.Fetch
	// Container runs a job's runs in a container.
	Container = chronos.Container
	// Volume mounts a host path into a job's container.
	Volume = chronos.Volume
	// Parameter is a key/value option for the containerizer.
	Parameter = chronos.Parameter
)

// Chronos's defaults for what a job leaves out (or gives as 0).
const (
	defaultRetries = 2
	defaultCPUs    = 0.1
	defaultMem     = 128
	defaultDisk    = 256
)

// jobName is Chronos's job name syntax.
var jobName = regexp.MustCompile(`^[\w.-]+$`)

// maxJobName bounds names: they are parts of keys and task ids.
const maxJobName = 200

// badRequest is a client error: the API answers 400 with the message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &badRequest{fmt.Sprintf(format, args...)}
}

// decodeJob decodes a job from a request body and checks what it alone can tell: its
// name, its schedule (or parents, dependent says which the route wants) and its fields.
// Defaults are filled in. now is the start of a schedule without one.
func decodeJob(data []byte, dependent bool, now time.Time) (*Job, error) {
	var j Job
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&j); err != nil {
		return nil, badRequestf("the job is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, badRequestf("the job is not valid JSON: data after the object")
	}
	j.Counters = Counters{}
	if err := normalize(&j, dependent, now); err != nil {
		return nil, err
	}
	return &j, nil
}

// normalize validates a job and fills in its defaults.
func normalize(j *Job, dependent bool, now time.Time) error {
	switch {
	case j.Name == "":
		return badRequestf("name: a job needs a name")
	case len(j.Name) > maxJobName:
		return badRequestf("name: at most %d characters", maxJobName)
	case !jobName.MatchString(j.Name):
		return badRequestf("name %q: only letters, digits, '_', '.' and '-' are allowed", j.Name)
	case strings.TrimSpace(j.Command) == "":
		return badRequestf("command: job %s has no command", j.Name)
	}
	scheduled := j.Schedule != "" || j.Cron != ""
	switch {
	case scheduled && len(j.Parents) > 0:
		return badRequestf("job %s has both a schedule and parents: give exactly one", j.Name)
	case j.Schedule != "" && j.Cron != "":
		return badRequestf("job %s has both schedule and cron: give exactly one", j.Name)
	case !scheduled && len(j.Parents) == 0:
		return badRequestf("job %s has neither a schedule nor parents: give exactly one", j.Name)
	case dependent && scheduled:
		return badRequestf("job %s: /dependency takes jobs with parents; post scheduled jobs to /iso8601", j.Name)
	case !dependent && !scheduled:
		return badRequestf("job %s: /iso8601 takes scheduled jobs; post jobs with parents to /dependency", j.Name)
	}
	loc, err := schedule.LoadLocation(j.ScheduleTimeZone)
	if err != nil {
		return badRequestf("scheduleTimeZone: %v", err)
	}
	switch {
	case j.Schedule != "":
		zone := loc
		if j.ScheduleTimeZone == "" {
			zone = nil
		}
		iv, err := schedule.ParseISO8601(j.Schedule, zone, now)
		if err != nil {
			return badRequestf("schedule: %v", err)
		}
		// A start of "now" is fixed when the job is stored, so that it means the same
		// after a restart.
		if strings.Contains(j.Schedule, "//") {
			j.Schedule = iv.String()
		}
	case j.Cron != "":
		if _, err := schedule.ParseCron(j.Cron, loc); err != nil {
			return badRequestf("cron: %v", err)
		}
	}
	seen := map[string]bool{}
	for _, p := range j.Parents {
		switch {
		case p == j.Name:
			return badRequestf("parents: job %s cannot depend on itself", j.Name)
		case seen[p]:
			return badRequestf("parents: %s is listed twice", p)
		}
		seen[p] = true
	}
	if j.Retries == nil {
		r := defaultRetries
		j.Retries = &r
	}
	switch {
	case *j.Retries < 0 || *j.Retries > 100:
		return badRequestf("retries: %d, want 0 to 100", *j.Retries)
	case j.CPUs < 0 || j.Mem < 0 || j.Disk < 0:
		return badRequestf("cpus, mem and disk must not be negative")
	case j.MaxCompletionTime < 0:
		return badRequestf("maxCompletionTime: %d, want milliseconds ≥ 0", j.MaxCompletionTime)
	}
	if j.CPUs == 0 {
		j.CPUs = defaultCPUs
	}
	if j.Mem == 0 {
		j.Mem = defaultMem
	}
	if j.Disk == 0 {
		j.Disk = defaultDisk
	}
	if j.Shell == nil {
		shell := true
		j.Shell = &shell
	}
	for i, c := range j.Constraints {
		if _, err := jobConstraint(c); err != nil {
			return badRequestf("constraints[%d]: %v", i, err)
		}
	}
	for i, e := range j.EnvironmentVariables {
		if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") {
			return badRequestf("environmentVariables[%d]: name %q is not a variable name", i, e.Name)
		}
	}
	for i, f := range j.Fetch {
		if f.URI == "" {
			return badRequestf("fetch[%d]: uri is empty", i)
		}
	}
	for i, u := range j.URIs {
		if u == "" {
			return badRequestf("uris[%d]: empty", i)
		}
	}
	if c := j.Container; c != nil {
		switch {
		case c.Type == "":
			c.Type = "DOCKER"
		case c.Type != "DOCKER" && c.Type != "MESOS":
			return badRequestf("container.type %q: want DOCKER or MESOS", c.Type)
		}
		if c.Image == "" {
			return badRequestf("container.image: a container needs an image")
		}
		for i, v := range c.Volumes {
			if v.ContainerPath == "" {
				return badRequestf("container.volumes[%d].containerPath is empty", i)
			}
			if v.Mode != "" && v.Mode != "RO" && v.Mode != "RW" {
				return badRequestf("container.volumes[%d].mode %q: want RO or RW", i, v.Mode)
			}
		}
	}
	return nil
}

// jobConstraint turns a Chronos constraint ([attribute, EQUALS|LIKE|UNLIKE, value]) into
// a placement constraint: EQUALS is Marathon's CLUSTER with a value.
func jobConstraint(c []string) (placement.Constraint, error) {
	if len(c) != 3 {
		return placement.Constraint{}, fmt.Errorf("want [attribute, EQUALS|LIKE|UNLIKE, value], got %d fields", len(c))
	}
	op := c[1]
	switch op {
	case "EQUALS":
		op = placement.Cluster
	case placement.Like, placement.Unlike:
	default:
		return placement.Constraint{}, fmt.Errorf("operator %q: want EQUALS, LIKE or UNLIKE", c[1])
	}
	return placement.ParseConstraint([]string{c[0], op, c[2]})
}

// jobSchedule returns the job's schedule, nil for a dependent job.
func jobSchedule(j *Job) (schedule.Schedule, error) {
	loc, err := schedule.LoadLocation(j.ScheduleTimeZone)
	if err != nil {
		return nil, err
	}
	switch {
	case j.Cron != "":
		return schedule.ParseCron(j.Cron, loc)
	case j.Schedule != "":
		zone := loc
		if j.ScheduleTimeZone == "" {
			zone = nil
		}
		return schedule.ParseISO8601(j.Schedule, zone, time.Now())
	}
	return nil, nil
}

// jobRequirements is what one run of the job needs from an offer.
func jobRequirements(j *Job) (*placement.Requirements, error) {
	req := &placement.Requirements{CPUs: j.CPUs, MemMB: j.Mem, DiskMB: j.Disk}
	for _, c := range j.Constraints {
		pc, err := jobConstraint(c)
		if err != nil {
			return nil, err
		}
		req.Constraints = append(req.Constraints, pc)
	}
	return req, nil
}

// cycleThrough returns a dependency cycle through name, following parentsOf, as the
// job names along it in the order runs flow (a parent before its child), name first and
// last; nil when there is none.
func cycleThrough(name string, parentsOf func(string) []string) []string {
	seen := map[string]bool{}
	var path []string
	var walk func(job string) bool
	walk = func(job string) bool {
		for _, p := range parentsOf(job) {
			if p == name {
				path = append(path, job)
				return true
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			if walk(p) {
				path = append(path, job)
				return true
			}
		}
		return false
	}
	if !walk(name) {
		return nil
	}
	// Each job was added after its parent: path runs from name's first child back
	// round to name.
	return append([]string{name}, path...)
}
