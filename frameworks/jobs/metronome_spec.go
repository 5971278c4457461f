package jobs

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/frameworks/jobs/schedule"
)

// The Metronome API (DC/OS Jobs, /v1/jobs) serves the jobs the Chronos API serves. A
// Metronome job is a Chronos job with a cron schedule, or with none; what Metronome has
// beyond the Chronos model (labels, launch and restart deadlines, the schedule's id and
// starting deadline) is a metronomeMeta, stored next to the job. The mapping:
//
//   - id is the job's name; a Chronos job whose name is not a Metronome id, that has
//     parents, or whose schedule is an ISO 8601 interval that runs, is not shown.
//   - run.cmd is a shell command; run.args runs args[0] with the rest as arguments.
//   - run.docker is a DOCKER container, run.ucr a MESOS one (Docker images only).
//   - restart NEVER is no retries; ON_FAILURE retries (onFailureRetries times, or as many
//     as the Chronos job had) while the run is within activeDeadlineSeconds of when it
//     was due (see mayRetry).
//   - maxLaunchDelay and a schedule's startingDeadlineSeconds fail a run that has not
//     started that long after it was due (see checkLaunchDeadlines).
//   - A run is the attempts due at one time (a run and its retries), its id that time to
//     the millisecond; its tasks are the attempts launched. A run that ended is in the
//     job's history (?embed=history), no longer under /runs, as with Metronome.
//   - A job without a schedule has an ISO 8601 schedule that never runs (R0); a schedule
//     is the job's cron and time zone, enabled is not disabled, concurrencyPolicy ALLOW
//     runs concurrently, FORBID does not (a run then waits for the one before to end).
//   - What the Chronos model has beyond Metronome (owner, ownerName, highPriority,
//     softError, maxCompletionTime, a container's network) is kept when a job is
//     replaced through Metronome, as the Metronome fields are when it is replaced
//     through Chronos.
//
// Fields Atoll cannot honour (gpus, secrets, networks, privileged containers,
// taskKillGracePeriodSeconds) are refused by name, never dropped.

// Metronome's defaults for what a job or schedule leaves out.
const (
	defaultMaxLaunchDelay   = 3600
	defaultStartingDeadline = 900
	defaultScheduleID       = "default"
	// onFailureRetries is how often restart ON_FAILURE retries a run: the most the
	// Chronos model allows, Metronome's "until activeDeadlineSeconds" being unbounded.
	onFailureRetries = 100
	// noSchedule is the ISO 8601 schedule of a job without one: it never runs; its start
	// is fixed to when it is stored.
	noSchedule = "R0//P1D"
)

// Metronome's restart policies and concurrency policies.
const (
	restartNever     = "NEVER"
	restartOnFailure = "ON_FAILURE"
	concurrencyAllow = "ALLOW"
	// concurrencyForbid is documented by Metronome but not implemented there; here it is
	// a Chronos job that does not run concurrently.
	concurrencyForbid = "FORBID"
)

var (
	// metronomeID is Metronome's job id: dot-separated names of lowercase letters,
	// digits and dashes, none starting or ending with a dash.
	metronomeID = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9]+)*)([.][a-z0-9]([a-z0-9-]*[a-z0-9]+)*)*$`)
	// scheduleID is a schedule's id: one such name.
	scheduleID = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// metronomeMeta is what a job made or changed through the Metronome API has beyond the
// Chronos model, stored at metronomeKey(name).
type metronomeMeta struct {
	Labels map[string]string `json:"labels,omitempty"`
	// MaxLaunchDelay (seconds) fails a run not started that long after it was due; 0
	// is no limit.
	MaxLaunchDelay int64 `json:"maxLaunchDelay,omitempty"`
	// ActiveDeadline (seconds) ends the retries of a run that long after it was due; 0
	// retries as long as the job has retries.
	ActiveDeadline int64 `json:"activeDeadlineSeconds,omitempty"`
	// ScheduleID names the job's schedule ("" when it has none).
	ScheduleID string `json:"scheduleId,omitempty"`
	// StartingDeadline (seconds) fails a scheduled run not started that long after it
	// was due; 0 is no limit.
	StartingDeadline int64 `json:"startingDeadlineSeconds,omitempty"`
}

func metronomeKey(name string) string { return "metronome/" + name }

// metronomeJob is a Metronome JobSpec, and how the API shows a job: with the embedded
// fields asked for.
type metronomeJob struct {
	ID          string            `json:"id"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"`
	Run         *metronomeRun     `json:"run"`
	// Schedules set the job's schedule (at most one) on a POST or PUT; a PUT without
	// them keeps it.
	Schedules []metronomeSchedule `json:"schedules,omitzero"`
	// The rest are shown with ?embed= and refused in a request.
	ActiveRuns     []metronomeRunView `json:"activeRuns,omitzero"`
	History        *metronomeHistory  `json:"history,omitempty"`
	HistorySummary *metronomeHistory  `json:"historySummary,omitempty"`
}

// metronomeRun is a JobSpec's run: what each run of the job runs.
type metronomeRun struct {
	Cmd       string                     `json:"cmd,omitempty"`
	Args      []string                   `json:"args,omitempty"`
	CPUs      *float64                   `json:"cpus"`
	Mem       *float64                   `json:"mem"`
	Disk      *float64                   `json:"disk"`
	GPUs      int                        `json:"gpus"`
	Docker    *metronomeDocker           `json:"docker,omitempty"`
	UCR       *metronomeUCR              `json:"ucr,omitempty"`
	Env       map[string]json.RawMessage `json:"env"`
	Artifacts []metronomeArtifact        `json:"artifacts"`
	Placement *metronomePlacement        `json:"placement"`
	Restart   *metronomeRestart          `json:"restart"`
	// MaxLaunchDelay is in seconds.
	MaxLaunchDelay int64             `json:"maxLaunchDelay,omitempty"`
	User           string            `json:"user,omitempty"`
	Volumes        []metronomeVolume `json:"volumes"`
	// Metronome's, not Atoll's: refused unless empty.
	Networks                   json.RawMessage `json:"networks,omitempty"`
	Secrets                    json.RawMessage `json:"secrets,omitempty"`
	TaskKillGracePeriodSeconds json.RawMessage `json:"taskKillGracePeriodSeconds,omitempty"`
}

// metronomeDocker runs a job's runs in a Docker image (a DOCKER container).
type metronomeDocker struct {
	Image          string               `json:"image"`
	ForcePullImage bool                 `json:"forcePullImage,omitempty"`
	Privileged     bool                 `json:"privileged,omitempty"`
	Parameters     []metronomeParameter `json:"parameters,omitempty"`
}

// metronomeParameter is a key/value option for the containerizer.
type metronomeParameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// metronomeUCR runs a job's runs in an image with the Mesos containerizer (a MESOS
// container).
type metronomeUCR struct {
	Image      metronomeUCRImage `json:"image"`
	Privileged bool              `json:"privileged,omitempty"`
}

// metronomeUCRImage is the image of a UCR container.
type metronomeUCRImage struct {
	ID string `json:"id"`
	// Kind is docker (or empty); appc images are refused.
	Kind      string `json:"kind,omitempty"`
	ForcePull bool   `json:"forcePull,omitempty"`
}

// metronomeArtifact is a URI fetched into a run's sandbox.
type metronomeArtifact struct {
	URI string `json:"uri"`
	// Extract unpacks archives; nil means true.
	Extract    *bool `json:"extract,omitempty"`
	Executable bool  `json:"executable"`
	Cache      bool  `json:"cache"`
}

// metronomePlacement says which agents a job's runs may run on.
type metronomePlacement struct {
	Constraints []metronomeConstraint `json:"constraints"`
}

// metronomeConstraint is a placement constraint on an agent attribute.
type metronomeConstraint struct {
	Attribute string `json:"attribute"`
	// Operator is IS (or EQ), LIKE or UNLIKE.
	Operator string `json:"operator"`
	Value    string `json:"value"`
}

// metronomeRestart says whether a failed run is retried, and for how long.
type metronomeRestart struct {
	Policy                string `json:"policy"`
	ActiveDeadlineSeconds int64  `json:"activeDeadlineSeconds,omitempty"`
}

// metronomeVolume mounts a host path into a job's container.
type metronomeVolume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath,omitempty"`
	Mode          string `json:"mode,omitempty"`
	Secret        string `json:"secret,omitempty"`
}

// metronomeSchedule is a ScheduleSpec. Metronome writes the zone as "timezone" and
// documents it as "timeZone": both are read and written.
type metronomeSchedule struct {
	ID                      string `json:"id"`
	Cron                    string `json:"cron"`
	Timezone                string `json:"timezone,omitempty"`
	TimeZone                string `json:"timeZone,omitempty"`
	StartingDeadlineSeconds int64  `json:"startingDeadlineSeconds,omitempty"`
	ConcurrencyPolicy       string `json:"concurrencyPolicy,omitempty"`
	Enabled                 *bool  `json:"enabled,omitempty"`
	// NextRunAt is shown, and ignored in a request.
	NextRunAt string `json:"nextRunAt,omitempty"`
}

// detail is one field's errors in a 422 answer.
type detail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// invalid is a request the Metronome API refuses with 422 "Object is not valid" and the
// errors of each field.
type invalid struct{ details []detail }

func (e *invalid) Error() string {
	var parts []string
	for _, d := range e.details {
		parts = append(parts, d.Path+": "+strings.Join(d.Errors, "; "))
	}
	return "Object is not valid: " + strings.Join(parts, ", ")
}

// add records an error of the field at path.
func (e *invalid) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for i := range e.details {
		if e.details[i].Path == path {
			e.details[i].Errors = append(e.details[i].Errors, msg)
			return
		}
	}
	e.details = append(e.details, detail{Path: path, Errors: []string{msg}})
}

// err is e, or nil when no field had errors.
func (e *invalid) err() error {
	if len(e.details) == 0 {
		return nil
	}
	return e
}

// invalidf is a request with one field in error.
func invalidf(path, format string, args ...any) error {
	e := &invalid{}
	e.add(path, format, args...)
	return e
}

// malformed is a body that is not JSON: 400.
type malformed struct{ err error }

func (e *malformed) Error() string { return "Invalid JSON: " + e.err.Error() }

// decodeStrict decodes one JSON value into v, refusing fields v does not have. A body
// that is not JSON is malformed; one of the wrong shape is invalid, naming the field.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the object")
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		path := "/" + strings.ReplaceAll(typeErr.Field, ".", "/")
		return invalidf(path, "want %s, got %s", typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalidf("/", "%s is not a field Atoll knows", strings.TrimPrefix(err.Error(), "json: "))
	}
	return &malformed{err}
}

// decodeMetronomeJob decodes and checks a JobSpec, filling in its schedules' defaults.
// pathID, when not empty, is the id the request's path names: the spec's must be it, or
// empty.
func decodeMetronomeJob(data []byte, pathID string) (*metronomeJob, error) {
	var spec metronomeJob
	if err := decodeChecked(data, &spec, &spec.ID, pathID, spec.validate); err != nil {
		return nil, err
	}
	return &spec, nil
}

// decodeMetronomeSchedule decodes and checks a ScheduleSpec, filling in its defaults.
// pathID is as decodeMetronomeJob's.
func decodeMetronomeSchedule(data []byte, pathID string) (*metronomeSchedule, error) {
	var sched metronomeSchedule
	if err := decodeChecked(data, &sched, &sched.ID, pathID, func(v *invalid) { sched.validate(v, "") }); err != nil {
		return nil, err
	}
	return &sched, nil
}

// decodeChecked decodes a request body into body and checks it: its id (at id) must be
// pathID or empty, which is pathID then; check records the rest of its errors.
func decodeChecked(data []byte, body any, id *string, pathID string, check func(v *invalid)) error {
	if err := decodeStrict(data, body); err != nil {
		return err
	}
	v := &invalid{}
	switch {
	case pathID == "" || *id == pathID:
	case *id == "":
		*id = pathID
	default:
		v.add("/id", "%q differs from the path's %q", *id, pathID)
	}
	check(v)
	return v.err()
}

// emptyJSON says a refused field was given empty (null, [], {}, 0, false), as a
// Metronome job read back carries it.
func emptyJSON(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "[]", "{}", "0", "false":
		return true
	}
	return false
}

// validate checks a JobSpec and fills in its schedules' defaults.
func (spec *metronomeJob) validate(v *invalid) {
	switch {
	case spec.ID == "":
		v.add("/id", "a job needs an id")
	case len(spec.ID) > maxJobName:
		v.add("/id", "at most %d characters", maxJobName)
	case !metronomeID.MatchString(spec.ID):
		v.add("/id", "%q: ids are names of lowercase letters, digits and dashes, separated by dots, none starting or ending with a dash", spec.ID)
	}
	if spec.ActiveRuns != nil || spec.History != nil || spec.HistorySummary != nil {
		v.add("/", "activeRuns, history and historySummary are shown with ?embed=, not set")
	}
	if len(spec.Schedules) > 1 {
		v.add("/schedules", "a job has at most one schedule, got %d", len(spec.Schedules))
	}
	for i := range spec.Schedules {
		spec.Schedules[i].validate(v, fmt.Sprintf("/schedules/%d", i))
	}
	run := spec.Run
	if run == nil {
		v.add("/run", "a job needs a run")
		return
	}
	switch {
	case run.Cmd == "" && len(run.Args) == 0:
		v.add("/run", "give cmd or args")
	case run.Cmd != "" && len(run.Args) > 0:
		v.add("/run", "give cmd or args, not both")
	case len(run.Args) > 0 && strings.TrimSpace(run.Args[0]) == "":
		v.add("/run/args/0", "the program to run is empty")
	case run.Cmd != "" && strings.TrimSpace(run.Cmd) == "":
		v.add("/run/cmd", "the command is blank")
	}
	for _, r := range []struct {
		path  string
		value *float64
		min   float64
	}{{"/run/cpus", run.CPUs, 0.01}, {"/run/mem", run.Mem, 32}, {"/run/disk", run.Disk, 0}} {
		if r.value != nil && !(*r.value >= r.min) {
			v.add(r.path, "%v is less than %v", *r.value, r.min)
		}
	}
	if run.GPUs != 0 {
		v.add("/run/gpus", "GPUs are not offered by Atoll's agents: want 0")
	}
	if run.Docker != nil && run.UCR != nil {
		v.add("/run", "give docker or ucr, not both")
	}
	if d := run.Docker; d != nil {
		if d.Image == "" {
			v.add("/run/docker/image", "a container needs an image")
		}
		if d.Privileged {
			v.add("/run/docker/privileged", "privileged containers are not supported")
		}
		for i, p := range d.Parameters {
			if p.Key == "" {
				v.add(fmt.Sprintf("/run/docker/parameters/%d/key", i), "empty")
			}
		}
	}
	if u := run.UCR; u != nil {
		if u.Image.ID == "" {
			v.add("/run/ucr/image/id", "a container needs an image")
		}
		if u.Image.Kind != "" && u.Image.Kind != "docker" {
			v.add("/run/ucr/image/kind", "%q: only docker images are supported", u.Image.Kind)
		}
		if u.Privileged {
			v.add("/run/ucr/privileged", "privileged containers are not supported")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(run.Env)) {
		path := "/run/env/" + name
		if name == "" || strings.ContainsAny(name, "=\x00") {
			v.add(path, "%q is not a variable name", name)
		}
		var value string
		if err := json.Unmarshal(run.Env[name], &value); err != nil || emptyJSON(run.Env[name]) {
			var secret struct {
				Secret string `json:"secret"`
			}
			if json.Unmarshal(run.Env[name], &secret) == nil && secret.Secret != "" {
				v.add(path, "secrets are not supported")
			} else {
				v.add(path, "want a string")
			}
		}
	}
	for i, a := range run.Artifacts {
		if a.URI == "" {
			v.add(fmt.Sprintf("/run/artifacts/%d/uri", i), "an artifact needs a uri")
		}
	}
	if run.Placement != nil {
		for i, c := range run.Placement.Constraints {
			path := fmt.Sprintf("/run/placement/constraints/%d", i)
			if c.Attribute == "" {
				v.add(path+"/attribute", "a constraint needs an attribute")
			}
			op, ok := constraintOperator(c.Operator)
			if !ok {
				v.add(path+"/operator", "%q: want IS, EQ, LIKE or UNLIKE", c.Operator)
				continue
			}
			if _, err := jobConstraint([]string{c.Attribute, op, c.Value}); err != nil && c.Attribute != "" {
				v.add(path, "%v", err)
			}
		}
	}
	if rs := run.Restart; rs != nil {
		if rs.Policy != restartNever && rs.Policy != restartOnFailure {
			v.add("/run/restart/policy", "%q: want NEVER or ON_FAILURE", rs.Policy)
		}
		if rs.ActiveDeadlineSeconds < 0 {
			v.add("/run/restart/activeDeadlineSeconds", "%d: want seconds ≥ 0", rs.ActiveDeadlineSeconds)
		}
	}
	if run.MaxLaunchDelay < 0 {
		v.add("/run/maxLaunchDelay", "%d: want seconds ≥ 1", run.MaxLaunchDelay)
	}
	for i, vol := range run.Volumes {
		path := fmt.Sprintf("/run/volumes/%d", i)
		switch {
		case run.Docker == nil && run.UCR == nil:
			v.add(path, "volumes need a container image (docker or ucr)")
		case vol.ContainerPath == "":
			v.add(path+"/containerPath", "empty")
		case vol.Secret != "":
			v.add(path+"/secret", "secret volumes are not supported")
		case vol.Mode != "" && vol.Mode != "RO" && vol.Mode != "RW":
			v.add(path+"/mode", "%q: want RO or RW", vol.Mode)
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"networks", run.Networks}, {"secrets", run.Secrets}, {"taskKillGracePeriodSeconds", run.TaskKillGracePeriodSeconds}} {
		if !emptyJSON(f.raw) {
			v.add("/run/"+f.name, "not supported by Atoll's jobs")
		}
	}
}

// constraintOperator is the Chronos operator of a Metronome one.
func constraintOperator(op string) (string, bool) {
	switch op {
	case "IS", "EQ":
		return "EQUALS", true
	case "LIKE", "UNLIKE":
		return op, true
	}
	return "", false
}

// validate checks a ScheduleSpec at path (its place in the request) and fills in its
// defaults.
func (s *metronomeSchedule) validate(v *invalid, path string) {
	switch {
	case s.ID == "":
		v.add(path+"/id", "a schedule needs an id")
	case len(s.ID) > maxJobName:
		v.add(path+"/id", "at most %d characters", maxJobName)
	case !scheduleID.MatchString(s.ID):
		v.add(path+"/id", "%q: lowercase letters, digits and dashes, not starting or ending with a dash", s.ID)
	}
	if s.Timezone != "" && s.TimeZone != "" && s.Timezone != s.TimeZone {
		v.add(path+"/timezone", "timezone %q and timeZone %q differ", s.Timezone, s.TimeZone)
	}
	zone := s.zone()
	loc, err := schedule.LoadLocation(zone)
	if err != nil {
		v.add(path+"/timezone", "%v", err)
		loc = time.UTC
	}
	if s.Cron == "" {
		v.add(path+"/cron", "a schedule needs a cron expression")
	} else if _, err := schedule.ParseCron(s.Cron, loc); err != nil {
		v.add(path+"/cron", "%v", err)
	}
	switch {
	case s.StartingDeadlineSeconds == 0:
		s.StartingDeadlineSeconds = defaultStartingDeadline
	case s.StartingDeadlineSeconds < 0:
		v.add(path+"/startingDeadlineSeconds", "%d: want seconds ≥ 1", s.StartingDeadlineSeconds)
	}
	switch s.ConcurrencyPolicy {
	case "":
		s.ConcurrencyPolicy = concurrencyAllow
	case concurrencyAllow, concurrencyForbid:
	default:
		v.add(path+"/concurrencyPolicy", "%q: want ALLOW or FORBID", s.ConcurrencyPolicy)
	}
	if s.Enabled == nil {
		enabled := true
		s.Enabled = &enabled
	}
	s.Timezone, s.TimeZone, s.NextRunAt = zone, zone, ""
}

// zone is the schedule's time zone name, UTC when it names none.
func (s *metronomeSchedule) zone() string {
	return cmp.Or(s.Timezone, s.TimeZone, "UTC")
}

// toJob makes the Chronos job of a valid JobSpec. old is the job it replaces (nil for a
// new one) and oldMeta its Metronome fields: what the spec cannot say is kept from them.
// The job is validated and filled in as the Chronos API does (normalize).
func (spec *metronomeJob) toJob(old *Job, oldMeta *metronomeMeta, now time.Time) (*Job, *metronomeMeta, error) {
	run := spec.Run
	j := &Job{Name: spec.ID, Description: spec.Description, RunAsUser: run.User}
	meta := &metronomeMeta{Labels: spec.Labels, MaxLaunchDelay: run.MaxLaunchDelay}
	if len(meta.Labels) == 0 {
		meta.Labels = nil
	}
	if meta.MaxLaunchDelay == 0 {
		meta.MaxLaunchDelay = defaultMaxLaunchDelay
	}
	shell := run.Cmd != ""
	j.Shell = &shell
	switch {
	case shell:
		j.Command = run.Cmd
	case len(run.Args) > 1:
		j.Command, j.Arguments = run.Args[0], slices.Clone(run.Args[1:])
	default:
		j.Command = run.Args[0]
	}
	for _, r := range []struct {
		dst *float64
		src *float64
	}{{&j.CPUs, run.CPUs}, {&j.Mem, run.Mem}, {&j.Disk, run.Disk}} {
		if r.src != nil {
			*r.dst = *r.src
		}
	}
	switch {
	case run.Docker != nil:
		d := run.Docker
		j.Container = &Container{Type: "DOCKER", Image: d.Image, ForcePullImage: d.ForcePullImage}
		for _, p := range d.Parameters {
			j.Container.Parameters = append(j.Container.Parameters, Parameter{Key: p.Key, Value: p.Value})
		}
	case run.UCR != nil:
		j.Container = &Container{Type: "MESOS", Image: run.UCR.Image.ID, ForcePullImage: run.UCR.Image.ForcePull}
	}
	if j.Container != nil {
		for _, vol := range run.Volumes {
			j.Container.Volumes = append(j.Container.Volumes, Volume{ContainerPath: vol.ContainerPath, HostPath: vol.HostPath, Mode: vol.Mode})
		}
		if old != nil && old.Container != nil {
			j.Container.Network = old.Container.Network
		}
	}
	for _, name := range slices.Sorted(maps.Keys(run.Env)) {
		var value string
		if err := json.Unmarshal(run.Env[name], &value); err != nil {
			return nil, nil, invalidf("/run/env/"+name, "want a string")
		}
		j.EnvironmentVariables = append(j.EnvironmentVariables, EnvVar{Name: name, Value: value})
	}
	for _, a := range run.Artifacts {
		extract := a.Extract == nil || *a.Extract
		j.Fetch = append(j.Fetch, Fetch{URI: a.URI, Extract: &extract, Executable: a.Executable, Cache: a.Cache})
	}
	if run.Placement != nil {
		for _, c := range run.Placement.Constraints {
			op, _ := constraintOperator(c.Operator)
			j.Constraints = append(j.Constraints, []string{c.Attribute, op, c.Value})
		}
	}
	retries := 0
	if rs := run.Restart; rs != nil {
		if rs.Policy == restartOnFailure {
			retries = onFailureRetries
			if old != nil && old.Retries != nil && *old.Retries > 0 {
				retries = *old.Retries
			}
		}
		// Kept with NEVER too, where it has no effect, so that the job reads back as
		// it was written.
		meta.ActiveDeadline = rs.ActiveDeadlineSeconds
	}
	j.Retries = &retries
	if old != nil {
		// What Metronome cannot say.
		j.Owner, j.OwnerName, j.HighPriority, j.SoftError = old.Owner, old.OwnerName, old.HighPriority, old.SoftError
		j.MaxCompletionTime, j.Epsilon, j.Async = old.MaxCompletionTime, old.Epsilon, old.Async
	}
	switch {
	case len(spec.Schedules) > 0:
		setSchedule(j, meta, &spec.Schedules[0])
	case spec.Schedules != nil:
		setSchedule(j, meta, nil)
	case old != nil:
		// A PUT without schedules keeps the job's.
		j.Schedule, j.Cron, j.ScheduleTimeZone = old.Schedule, old.Cron, old.ScheduleTimeZone
		j.Disabled, j.Concurrent = old.Disabled, old.Concurrent
		if oldMeta != nil {
			meta.ScheduleID, meta.StartingDeadline = oldMeta.ScheduleID, oldMeta.StartingDeadline
		}
	default:
		setSchedule(j, meta, nil)
	}
	if err := normalize(j, false, now); err != nil {
		return nil, nil, invalidf("/", "%v", err)
	}
	return j, meta, nil
}

// setSchedule gives j and meta a valid schedule, or none (nil).
func setSchedule(j *Job, meta *metronomeMeta, s *metronomeSchedule) {
	if s == nil {
		j.Schedule, j.Cron, j.ScheduleTimeZone, j.Disabled, j.Concurrent = noSchedule, "", "", false, true
		meta.ScheduleID, meta.StartingDeadline = "", 0
		return
	}
	j.Schedule, j.Cron, j.ScheduleTimeZone = "", s.Cron, s.zone()
	j.Disabled, j.Concurrent = !*s.Enabled, s.ConcurrencyPolicy == concurrencyAllow
	meta.ScheduleID, meta.StartingDeadline = s.ID, s.StartingDeadlineSeconds
}

// metronomeHidden says why the Metronome API cannot show a job, "" when it can.
func metronomeHidden(j *Job) string {
	switch {
	case !metronomeID.MatchString(j.Name):
		return "its name is not a Metronome job id"
	case len(j.Parents) > 0:
		return "it runs after its parents"
	case j.Schedule != "" && !neverRuns(j.Schedule):
		return "its schedule is an ISO 8601 interval"
	}
	return ""
}

// neverRuns says an ISO 8601 schedule has no runs (R0): a job without a schedule.
func neverRuns(iso string) bool {
	iv, err := schedule.ParseISO8601(iso, nil, time.Unix(0, 0))
	return err == nil && iv.Repeat == 0
}

// metronomeSpec is how the Metronome API shows a job it can show (see metronomeHidden),
// without embedded fields. meta is nil for a job never written through it.
func metronomeSpec(j *Job, meta *metronomeMeta) *metronomeJob {
	if meta == nil {
		meta = &metronomeMeta{}
	}
	cpus, mem, disk := j.CPUs, j.Mem, j.Disk
	run := &metronomeRun{
		CPUs: &cpus, Mem: &mem, Disk: &disk,
		User:           j.RunAsUser,
		MaxLaunchDelay: meta.MaxLaunchDelay,
		Env:            map[string]json.RawMessage{},
		Artifacts:      []metronomeArtifact{},
		Placement:      &metronomePlacement{Constraints: []metronomeConstraint{}},
		Restart:        &metronomeRestart{Policy: restartNever},
		Volumes:        []metronomeVolume{},
	}
	if j.Shell == nil || *j.Shell {
		run.Cmd = j.Command
		for _, a := range j.Arguments {
			run.Cmd += " " + shellQuote(a)
		}
	} else {
		run.Args = append([]string{j.Command}, j.Arguments...)
	}
	if c := j.Container; c != nil {
		switch c.Type {
		case "MESOS":
			run.UCR = &metronomeUCR{Image: metronomeUCRImage{ID: c.Image, Kind: "docker", ForcePull: c.ForcePullImage}}
		default:
			run.Docker = &metronomeDocker{Image: c.Image, ForcePullImage: c.ForcePullImage}
			for _, p := range c.Parameters {
				run.Docker.Parameters = append(run.Docker.Parameters, metronomeParameter{Key: p.Key, Value: p.Value})
			}
		}
		for _, v := range c.Volumes {
			run.Volumes = append(run.Volumes, metronomeVolume{ContainerPath: v.ContainerPath, HostPath: v.HostPath, Mode: v.Mode})
		}
	}
	for _, e := range j.EnvironmentVariables {
		value, _ := json.Marshal(e.Value)
		run.Env[e.Name] = value
	}
	for _, f := range j.Fetch {
		extract := f.Extract == nil || *f.Extract
		run.Artifacts = append(run.Artifacts, metronomeArtifact{URI: f.URI, Extract: &extract, Executable: f.Executable, Cache: f.Cache})
	}
	for _, u := range j.URIs {
		extract := true
		run.Artifacts = append(run.Artifacts, metronomeArtifact{URI: u, Extract: &extract})
	}
	for _, c := range j.Constraints {
		if len(c) != 3 {
			continue
		}
		op := c[1]
		if op == "EQUALS" {
			op = "IS"
		}
		run.Placement.Constraints = append(run.Placement.Constraints, metronomeConstraint{Attribute: c[0], Operator: op, Value: c[2]})
	}
	run.Restart.ActiveDeadlineSeconds = meta.ActiveDeadline
	if j.Retries != nil && *j.Retries > 0 {
		run.Restart.Policy = restartOnFailure
	}
	labels := maps.Clone(meta.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	return &metronomeJob{ID: j.Name, Description: j.Description, Labels: labels, Run: run}
}

// metronomeSchedules are a job's schedules as the Metronome API shows them: none, or
// its cron schedule, next due at next (zero when it is disabled or has no next run).
func metronomeSchedules(j *Job, meta *metronomeMeta, next time.Time) []metronomeSchedule {
	if j.Cron == "" {
		return []metronomeSchedule{}
	}
	if meta == nil {
		meta = &metronomeMeta{}
	}
	enabled := !j.Disabled
	policy := concurrencyForbid
	if j.Concurrent {
		policy = concurrencyAllow
	}
	zone := cmp.Or(j.ScheduleTimeZone, "UTC")
	s := metronomeSchedule{
		ID:                      cmp.Or(meta.ScheduleID, defaultScheduleID),
		Cron:                    j.Cron,
		Timezone:                zone,
		TimeZone:                zone,
		StartingDeadlineSeconds: meta.StartingDeadline,
		ConcurrencyPolicy:       policy,
		Enabled:                 &enabled,
	}
	if enabled && !next.IsZero() {
		s.NextRunAt = metronomeTime(next)
	}
	return []metronomeSchedule{s}
}

// metronomeTime formats a time as Metronome does: "2016-07-15T13:02:59.735+0000".
func metronomeTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000-0700")
}

// metronomeRunID is the id of the run of a job due at t: its time to the millisecond,
// "20160715130259735". A job's runs due at once are one run (the run and its retries).
func metronomeRunID(t time.Time) string {
	t = t.UTC()
	return t.Format("20060102150405") + fmt.Sprintf("%03d", t.Nanosecond()/int(time.Millisecond))
}

// parseBool reads a query parameter that is true or false, false when absent.
func parseBool(name, value string) (bool, error) {
	if value == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, fmt.Errorf("%s %q: want true or false", name, value)
	}
	return b, nil
}
