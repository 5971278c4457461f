package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// metronomeRoutes serves the Metronome API (DC/OS Jobs, /v1/jobs) over the jobs the
// Chronos API serves; see metronome_spec.go for how its jobs map onto them.
func (s *Service) metronomeRoutes() {
	handle := s.handleWith(writeMetronomeError)
	handle("GET /v1/jobs", s.listMetronomeJobs)
	handle("POST /v1/jobs", s.createMetronomeJob)
	handle("GET /v1/jobs/{id}", s.getMetronomeJob)
	handle("PUT /v1/jobs/{id}", s.putMetronomeJob)
	handle("DELETE /v1/jobs/{id}", s.deleteMetronomeJob)
	handle("GET /v1/jobs/{id}/schedules", s.listMetronomeSchedules)
	handle("POST /v1/jobs/{id}/schedules", s.createMetronomeSchedule)
	handle("GET /v1/jobs/{id}/schedules/{scheduleId}", s.getMetronomeSchedule)
	handle("PUT /v1/jobs/{id}/schedules/{scheduleId}", s.putMetronomeSchedule)
	handle("DELETE /v1/jobs/{id}/schedules/{scheduleId}", s.deleteMetronomeSchedule)
	handle("GET /v1/jobs/{id}/runs", s.listMetronomeRuns)
	handle("POST /v1/jobs/{id}/runs", s.startMetronomeRun)
	handle("GET /v1/jobs/{id}/runs/{runId}", s.getMetronomeRun)
	handle("POST /v1/jobs/{id}/runs/{runId}/actions/stop", s.stopMetronomeRun)
}

// Metronome's run statuses.
const (
	statusInitial   = "INITIAL"
	statusStarting  = "STARTING"
	statusActive    = "ACTIVE"
	statusSucceeded = "SUCCESS"
	statusFailed    = "FAILED"
)

// Why the framework failed a run of a Metronome job that did not start in time
// (run.Killed).
const (
	killedLaunchDelay      = "maxLaunchDelay"
	killedStartingDeadline = "startingDeadlineSeconds"
)

// metronomeRunView is a job run as the Metronome API shows it.
type metronomeRunView struct {
	ID          string          `json:"id"`
	JobID       string          `json:"jobId"`
	Status      string          `json:"status"`
	CreatedAt   string          `json:"createdAt"`
	CompletedAt *string         `json:"completedAt"`
	Tasks       []metronomeTask `json:"tasks"`
}

// metronomeTask is a task of a run: the run's first attempt, and each retry.
type metronomeTask struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	StartedAt   *string `json:"startedAt"`
	CompletedAt *string `json:"completedAt"`
}

// metronomeHistory is a job's ?embed=history, or without its runs ?embed=historySummary.
type metronomeHistory struct {
	SuccessCount           int64                  `json:"successCount"`
	FailureCount           int64                  `json:"failureCount"`
	LastSuccessAt          *string                `json:"lastSuccessAt"`
	LastFailureAt          *string                `json:"lastFailureAt"`
	SuccessfulFinishedRuns []metronomeFinishedRun `json:"successfulFinishedRuns,omitzero"`
	FailedFinishedRuns     []metronomeFinishedRun `json:"failedFinishedRuns,omitzero"`
}

// metronomeFinishedRun is a run that ended, in a job's history, newest first.
type metronomeFinishedRun struct {
	ID         string   `json:"id"`
	CreatedAt  string   `json:"createdAt"`
	FinishedAt string   `json:"finishedAt"`
	Tasks      []string `json:"tasks"`
}

// metronomeStatus is an error the Metronome API answers with its status and
// {"message": …}.
type metronomeStatus struct {
	status int
	msg    string
}

func (e *metronomeStatus) Error() string { return e.msg }

func metronomeErrorf(status int, format string, args ...any) error {
	return &metronomeStatus{status, fmt.Sprintf(format, args...)}
}

// writeMetronomeError answers an error in Metronome's shapes: 422 with each field's
// errors for an invalid request, {"message": …} otherwise.
func writeMetronomeError(w http.ResponseWriter, err error) {
	var (
		inv    *invalid
		bad    *badRequest
		status *metronomeStatus
		mal    *malformed
	)
	type notValid struct {
		Message string   `json:"message"`
		Details []detail `json:"details"`
	}
	switch {
	case errors.As(err, &inv):
		writeJSON(w, http.StatusUnprocessableEntity, notValid{"Object is not valid", inv.details})
	case errors.As(err, &bad):
		writeJSON(w, http.StatusUnprocessableEntity, notValid{"Object is not valid", []detail{{Path: "/", Errors: []string{bad.msg}}}})
	case errors.As(err, &status):
		writeJSON(w, status.status, map[string]string{"message": status.msg})
	case errors.As(err, &mal):
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": mal.Error()})
	default:
		writeError(w, err)
	}
}

// embeds are the ?embed= of a job: what is shown with it.
type embeds struct{ activeRuns, schedules, history, historySummary bool }

// parseEmbeds reads ?embed=, given once per value or comma-separated.
func parseEmbeds(r *http.Request) (embeds, error) {
	var em embeds
	for _, value := range r.URL.Query()["embed"] {
		for name := range strings.SplitSeq(value, ",") {
			switch strings.TrimSpace(name) {
			case "activeRuns":
				em.activeRuns = true
			case "schedules":
				em.schedules = true
			case "history":
				em.history = true
			case "historySummary":
				em.historySummary = true
			default:
				return em, metronomeErrorf(http.StatusBadRequest, "embed %q: want activeRuns, schedules, history or historySummary", name)
			}
		}
	}
	return em, nil
}

// withJob runs f on the job of the path's {id} with s.mu held, and answers what f
// returns with status.
func (s *Service) withJob(w http.ResponseWriter, r *http.Request, status int, f func(e *entry) (any, error)) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	e, err := s.metronomeJobLocked(r.PathValue("id"))
	var out any
	if err == nil {
		out, err = f(e)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

// metronomeJobLocked returns the job of a Metronome id. A job the Metronome API cannot
// show is not found, and the error says why. s.mu is held.
func (s *Service) metronomeJobLocked(id string) (*entry, error) {
	e := s.jobs[id]
	if e == nil {
		return nil, metronomeErrorf(http.StatusNotFound, "Job not found")
	}
	if why := metronomeHidden(e.job); why != "" {
		return nil, metronomeErrorf(http.StatusNotFound, "Job not found: %s is a Chronos job the Metronome API cannot show (%s); see /v1/scheduler/job/%s", id, why, id)
	}
	return e, nil
}

// decodeRequest reads a request's body and decodes it, its path naming pathID.
func decodeRequest[T any](r *http.Request, pathID string, decode func(data []byte, pathID string) (T, error)) (T, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var zero T
		return zero, &malformed{fmt.Errorf("request body: %w", err)}
	}
	return decode(data, pathID)
}

// metronomeViewLocked is a job as the Metronome API shows it, with what em embeds.
// s.mu is held.
func (s *Service) metronomeViewLocked(e *entry, em embeds, now time.Time) *metronomeJob {
	meta := s.metronome[e.job.Name]
	v := metronomeSpec(e.job, meta)
	if em.schedules {
		v.Schedules = metronomeSchedules(e.job, meta, nextRun(e))
	}
	var groups []*runGroup
	if em.activeRuns || em.history {
		groups = runGroups(e, now)
	}
	if em.activeRuns {
		v.ActiveRuns = []metronomeRunView{}
		for _, g := range groups {
			if g.active {
				v.ActiveRuns = append(v.ActiveRuns, g.view(e.job.Name))
			}
		}
	}
	if em.history || em.historySummary {
		h := &metronomeHistory{
			SuccessCount: e.st.SuccessCount, FailureCount: e.st.ErrorCount,
			LastSuccessAt: optionalTime(e.st.LastSuccess), LastFailureAt: optionalTime(e.st.LastError),
		}
		if em.historySummary {
			v.HistorySummary = h
		}
		if em.history {
			full := *h
			full.SuccessfulFinishedRuns, full.FailedFinishedRuns = []metronomeFinishedRun{}, []metronomeFinishedRun{}
			for _, g := range slices.Backward(groups) {
				if g.active {
					continue
				}
				last := g.attempts[len(g.attempts)-1]
				fr := metronomeFinishedRun{ID: g.id, CreatedAt: metronomeTime(g.due), FinishedAt: metronomeTime(last.End), Tasks: []string{}}
				for _, t := range g.view(e.job.Name).Tasks {
					fr.Tasks = append(fr.Tasks, t.ID)
				}
				if last.State == runSuccess {
					full.SuccessfulFinishedRuns = append(full.SuccessfulFinishedRuns, fr)
				} else {
					full.FailedFinishedRuns = append(full.FailedFinishedRuns, fr)
				}
			}
			v.History = &full
		}
	}
	return v
}

// nextRun is when the job next runs on its schedule: the run recorded ahead of its time,
// or the next one the schedule gives; zero for none.
func nextRun(e *entry) time.Time {
	if e.ahead != nil {
		return e.ahead.Scheduled
	}
	return e.st.Next
}

// optionalTime is a time as Metronome shows it, nil (null) for none.
func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := metronomeTime(t)
	return &s
}

// putMetronomeLocked stores a job and its Metronome fields in one replicated write.
// s.mu is held.
func (s *Service) putMetronomeLocked(ctx context.Context, j *Job, meta *metronomeMeta, now time.Time) error {
	value, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode the Metronome fields of job %s: %w", j.Name, err)
	}
	if err := s.putJobLocked(ctx, j, now, []state.KVPut{{Key: metronomeKey(j.Name), Value: value}}); err != nil {
		return err
	}
	s.metronome[j.Name] = meta
	return nil
}

func (s *Service) listMetronomeJobs(w http.ResponseWriter, r *http.Request) error {
	em, err := parseEmbeds(r)
	if err != nil {
		return err
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	now := s.now()
	out := []*metronomeJob{}
	for _, e := range s.sortedLocked() {
		if metronomeHidden(e.job) == "" {
			out = append(out, s.metronomeViewLocked(e, em, now))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) getMetronomeJob(w http.ResponseWriter, r *http.Request) error {
	em, err := parseEmbeds(r)
	if err != nil {
		return err
	}
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		return s.metronomeViewLocked(e, em, s.now()), nil
	})
}

// createMetronomeJob creates a job (201); an id taken, also by a Chronos job the
// Metronome API cannot show, is 409.
func (s *Service) createMetronomeJob(w http.ResponseWriter, r *http.Request) error {
	spec, err := decodeRequest(r, "", decodeMetronomeJob)
	if err != nil {
		return err
	}
	now := s.now().Truncate(time.Millisecond)
	j, meta, err := spec.toJob(nil, nil, now)
	if err != nil {
		return err
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if old := s.jobs[j.Name]; old != nil {
		if why := metronomeHidden(old.job); why != "" {
			return metronomeErrorf(http.StatusConflict, "Job with this id already exists: a Chronos job the Metronome API cannot show (%s)", why)
		}
		return metronomeErrorf(http.StatusConflict, "Job with this id already exists")
	}
	if err := s.putMetronomeLocked(r.Context(), j, meta, now); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.metronomeViewLocked(s.jobs[j.Name], embeds{schedules: spec.Schedules != nil}, now))
	return nil
}

// putMetronomeJob replaces a job: what the Chronos model has beyond Metronome, and the
// schedule when the request gives none, are kept.
func (s *Service) putMetronomeJob(w http.ResponseWriter, r *http.Request) error {
	spec, err := decodeRequest(r, r.PathValue("id"), decodeMetronomeJob)
	if err != nil {
		return err
	}
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		now := s.now().Truncate(time.Millisecond)
		j, meta, err := spec.toJob(e.job, s.metronome[e.job.Name], now)
		if err != nil {
			return nil, err
		}
		if err := s.putMetronomeLocked(r.Context(), j, meta, now); err != nil {
			return nil, err
		}
		return s.metronomeViewLocked(s.jobs[j.Name], embeds{schedules: spec.Schedules != nil}, now), nil
	})
}

// deleteMetronomeJob removes a job and answers it. One with runs in progress stays
// unless ?stopCurrentJobRuns=true, which kills them; one Chronos jobs depend on stays.
func (s *Service) deleteMetronomeJob(w http.ResponseWriter, r *http.Request) error {
	stop, err := parseBool("stopCurrentJobRuns", r.URL.Query().Get("stopCurrentJobRuns"))
	if err != nil {
		return metronomeErrorf(http.StatusBadRequest, "%v", err)
	}
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		name, now := e.job.Name, s.now()
		if children := s.childrenOf(name); len(children) > 0 {
			return nil, metronomeErrorf(http.StatusConflict, "job %s is a parent of the Chronos jobs %s: delete them or change their parents first", name, strings.Join(children, ", "))
		}
		if len(activeRuns(e, now)) > 0 && !stop {
			return nil, metronomeErrorf(http.StatusConflict, "job %s has active runs: stop them first, or delete with ?stopCurrentJobRuns=true", name)
		}
		out := s.metronomeViewLocked(e, embeds{}, now)
		return out, s.removeJobLocked(r.Context(), e)
	})
}

// jobSchedules returns the job's schedules (none or one). s.mu is held.
func (s *Service) jobSchedules(e *entry) []metronomeSchedule {
	return metronomeSchedules(e.job, s.metronome[e.job.Name], nextRun(e))
}

// findSchedule returns the job's schedule of the path's {scheduleId}. s.mu is held.
func (s *Service) findSchedule(e *entry, r *http.Request) (*metronomeSchedule, error) {
	for _, sched := range s.jobSchedules(e) {
		if sched.ID == r.PathValue("scheduleId") {
			return &sched, nil
		}
	}
	return nil, metronomeErrorf(http.StatusNotFound, "Schedule not found")
}

// setScheduleLocked gives the job the schedule, or none (nil), and returns the job's
// schedules then. s.mu is held.
func (s *Service) setScheduleLocked(ctx context.Context, e *entry, sched *metronomeSchedule) ([]metronomeSchedule, error) {
	j := *e.job
	meta := &metronomeMeta{}
	if old := s.metronome[j.Name]; old != nil {
		*meta = *old
	}
	setSchedule(&j, meta, sched)
	now := s.now().Truncate(time.Millisecond)
	if err := normalize(&j, false, now); err != nil {
		return nil, invalidf("/", "%v", err)
	}
	if err := s.putMetronomeLocked(ctx, &j, meta, now); err != nil {
		return nil, err
	}
	return s.jobSchedules(s.jobs[j.Name]), nil
}

func (s *Service) listMetronomeSchedules(w http.ResponseWriter, r *http.Request) error {
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) { return s.jobSchedules(e), nil })
}

// createMetronomeSchedule gives a job its schedule (201). A job has at most one: the
// same id again is 409, another 422.
func (s *Service) createMetronomeSchedule(w http.ResponseWriter, r *http.Request) error {
	sched, err := decodeRequest(r, "", decodeMetronomeSchedule)
	if err != nil {
		return err
	}
	return s.withJob(w, r, http.StatusCreated, func(e *entry) (any, error) {
		if existing := s.jobSchedules(e); len(existing) > 0 {
			if existing[0].ID == sched.ID {
				return nil, metronomeErrorf(http.StatusConflict, "Schedule with this id already exists")
			}
			return nil, invalidf("/id", "job %s has schedule %s: a job has at most one (replace it with PUT)", e.job.Name, existing[0].ID)
		}
		schedules, err := s.setScheduleLocked(r.Context(), e, sched)
		if err != nil {
			return nil, err
		}
		return schedules[0], nil
	})
}

func (s *Service) getMetronomeSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) { return s.findSchedule(e, r) })
}

// putMetronomeSchedule replaces a job's schedule.
func (s *Service) putMetronomeSchedule(w http.ResponseWriter, r *http.Request) error {
	sched, err := decodeRequest(r, r.PathValue("scheduleId"), decodeMetronomeSchedule)
	if err != nil {
		return err
	}
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		if _, err := s.findSchedule(e, r); err != nil {
			return nil, err
		}
		schedules, err := s.setScheduleLocked(r.Context(), e, sched)
		if err != nil {
			return nil, err
		}
		return schedules[0], nil
	})
}

// deleteMetronomeSchedule removes a job's schedule and answers it: the job then runs
// only when asked to.
func (s *Service) deleteMetronomeSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		sched, err := s.findSchedule(e, r)
		if err != nil {
			return nil, err
		}
		if _, err := s.setScheduleLocked(r.Context(), e, nil); err != nil {
			return nil, err
		}
		sched.NextRunAt = ""
		return sched, nil
	})
}

// runGroup is a Metronome job run: a run of the job and its retries, the attempts due
// at one time.
type runGroup struct {
	id  string
	due time.Time
	// attempts are oldest first: those ended, then those not.
	attempts []*run
	// active says an attempt has not ended.
	active bool
}

// runGroups returns the job's runs, earliest due first: those in its history and those
// not ended, but not a run recorded ahead of its time (it is not due yet). s.mu is held.
func runGroups(e *entry, now time.Time) []*runGroup {
	byID := map[string]*runGroup{}
	var out []*runGroup
	add := func(r *run, active bool) {
		if r.Scheduled.After(now) {
			return
		}
		id := metronomeRunID(r.Scheduled)
		g := byID[id]
		if g == nil {
			g = &runGroup{id: id, due: r.Scheduled}
			byID[id] = g
			out = append(out, g)
		}
		g.attempts = append(g.attempts, r)
		g.active = g.active || active
	}
	for _, r := range e.history {
		add(r, false)
	}
	for _, r := range e.st.Runs {
		add(r, true)
	}
	slices.SortStableFunc(out, func(a, b *runGroup) int { return a.due.Compare(b.due) })
	return out
}

// activeRuns returns the job's runs that have not ended. s.mu is held.
func activeRuns(e *entry, now time.Time) []*runGroup {
	return slices.DeleteFunc(runGroups(e, now), func(g *runGroup) bool { return !g.active })
}

// view is the run as the Metronome API shows it: its tasks are the attempts that were
// launched.
func (g *runGroup) view(job string) metronomeRunView {
	v := metronomeRunView{ID: g.id, JobID: job, CreatedAt: metronomeTime(g.due), Tasks: []metronomeTask{}}
	last := g.attempts[len(g.attempts)-1]
	switch {
	case !g.active && last.State == runSuccess:
		v.Status, v.CompletedAt = statusSucceeded, optionalTime(last.End)
	case !g.active:
		v.Status, v.CompletedAt = statusFailed, optionalTime(last.End)
	case slices.ContainsFunc(g.attempts, func(r *run) bool { return r.State == runRunning }):
		v.Status = statusActive
	case slices.ContainsFunc(g.attempts, func(r *run) bool { return r.State == runLaunched }):
		v.Status = statusStarting
	default:
		v.Status = statusInitial
	}
	for _, r := range g.attempts {
		if r.State == runQueued || r.Agent == "" {
			continue
		}
		status := string(r.TaskState)
		switch {
		case status != "":
		case r.State == runRunning:
			status = string(api.TaskRunning)
		default:
			status = string(api.TaskStaging)
		}
		started := r.Start
		if started.IsZero() {
			started = r.Launched
		}
		v.Tasks = append(v.Tasks, metronomeTask{ID: r.TaskID, Status: status, StartedAt: optionalTime(started), CompletedAt: optionalTime(r.End)})
	}
	return v
}

// findRun returns the job's run of the path's {runId}, one that has not ended: one that
// has is in the job's history (?embed=history), as with Metronome. s.mu is held.
func (s *Service) findRun(e *entry, r *http.Request) (*runGroup, error) {
	for _, g := range activeRuns(e, s.now()) {
		if g.id == r.PathValue("runId") {
			return g, nil
		}
	}
	return nil, metronomeErrorf(http.StatusNotFound, "JobRun not found")
}

// listMetronomeRuns answers the job's runs that have not ended.
func (s *Service) listMetronomeRuns(w http.ResponseWriter, r *http.Request) error {
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		out := []metronomeRunView{}
		for _, g := range activeRuns(e, s.now()) {
			out = append(out, g.view(e.job.Name))
		}
		return out, nil
	})
}

// startMetronomeRun starts a run of the job now (201 with the run), once it is in the
// replicated state. Metronome's per-run overrides are not supported: the body must be
// empty.
func (s *Service) startMetronomeRun(w http.ResponseWriter, r *http.Request) error {
	if _, err := decodeRequest(r, "", func(data []byte, _ string) (struct{}, error) {
		if !emptyJSON(data) {
			return struct{}{}, invalidf("/", "run overrides are not supported: post no body")
		}
		return struct{}{}, nil
	}); err != nil {
		return err
	}
	return s.withJob(w, r, http.StatusCreated, func(e *entry) (any, error) {
		// A run's id is its time to the millisecond: a run asked for in the same
		// millisecond as another is due a millisecond earlier.
		due := s.now().Truncate(time.Millisecond)
		all := slices.Concat(e.history, e.st.Runs)
		for slices.ContainsFunc(all, func(x *run) bool { return metronomeRunID(x.Scheduled) == metronomeRunID(due) }) {
			due = due.Add(-time.Millisecond)
		}
		queued := s.queueRun(e, due, 0, nil, true)
		if err := s.flushLocked(r.Context()); err != nil {
			return nil, err
		}
		s.trigger()
		g := &runGroup{id: metronomeRunID(due), due: due, attempts: []*run{queued}, active: true}
		return g.view(e.job.Name), nil
	})
}

func (s *Service) getMetronomeRun(w http.ResponseWriter, r *http.Request) error {
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		g, err := s.findRun(e, r)
		if err != nil {
			return nil, err
		}
		return g.view(e.job.Name), nil
	})
}

// stopMetronomeRun kills the run's tasks (a waiting one is dropped); the run is not
// retried. It answers the run as it was when stopped.
func (s *Service) stopMetronomeRun(w http.ResponseWriter, r *http.Request) error {
	return s.withJob(w, r, http.StatusOK, func(e *entry) (any, error) {
		g, err := s.findRun(e, r)
		if err != nil {
			return nil, err
		}
		out := g.view(e.job.Name)
		now := s.now()
		for _, attempt := range g.attempts {
			if slices.Contains(e.st.Runs, attempt) {
				s.killRunLocked(e, attempt, killedUser, now)
			}
		}
		if err := s.flushLocked(r.Context()); err != nil {
			return nil, err
		}
		s.trigger()
		return out, nil
	})
}

// loadMetronome reads the Metronome fields of the jobs, by job name.
func (s *Service) loadMetronome(ctx context.Context) (map[string]*metronomeMeta, error) {
	entries, err := s.host.KVList(ctx, metronomeKey(""))
	if err != nil {
		return nil, err
	}
	out := map[string]*metronomeMeta{}
	for _, kv := range entries {
		var m metronomeMeta
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("job %s: %w", kv.Key, err)
		}
		out[strings.TrimPrefix(kv.Key, metronomeKey(""))] = &m
	}
	return out, nil
}

// launchDeadline is how long after it was due a run of j must have started, and which
// limit says so; 0 for no limit. Only a run's first attempt has one: its retries are
// bounded by the restart window instead (see mayRetry).
func (m *metronomeMeta) launchDeadline(j *Job, r *run) (time.Duration, string) {
	if r.Attempt > 0 {
		return 0, ""
	}
	limit, why := time.Duration(m.MaxLaunchDelay)*time.Second, killedLaunchDelay
	if start := time.Duration(m.StartingDeadline) * time.Second; !r.Manual && j.Cron != "" && start > 0 && (limit == 0 || start < limit) {
		limit, why = start, killedStartingDeadline
	}
	return limit, why
}

// checkLaunchDeadlines fails the runs of Metronome jobs that did not start by their
// deadline: one waiting for an offer ends without a task, one launched has its task
// killed. Neither is retried. s.mu is held.
func (s *Service) checkLaunchDeadlines(now time.Time) {
	for name, m := range s.metronome {
		e := s.jobs[name]
		if e == nil || (m.MaxLaunchDelay == 0 && m.StartingDeadline == 0) {
			continue
		}
		for _, r := range slices.Clone(e.st.Runs) {
			if r.State == runRunning || r.Killed != "" {
				continue
			}
			limit, why := m.launchDeadline(e.job, r)
			if limit == 0 || now.Sub(r.Scheduled) <= limit {
				continue
			}
			r.Killed = why
			if r.State != runQueued {
				s.sendKillLocked(r, now)
				continue
			}
			st := &api.TaskStatus{TaskID: api.TaskID{Value: r.TaskID}, State: api.TaskDropped, Message: fmt.Sprintf("not started within %s of its time (%s)", limit, why)}
			s.finishLocked(e, r, st, now)
		}
	}
}

// mayRetry says a failed run of e may be retried as far as Metronome's rules go: not
// one that did not start in time, nor one past its job's restart window
// (restart.activeDeadlineSeconds from when the run was due). s.mu is held.
func (s *Service) mayRetry(e *entry, r *run, now time.Time) bool {
	if r.Killed == killedLaunchDelay || r.Killed == killedStartingDeadline {
		return false
	}
	m := s.metronome[e.job.Name]
	return m == nil || m.ActiveDeadline == 0 || now.Sub(r.Scheduled) < time.Duration(m.ActiveDeadline)*time.Second
}
