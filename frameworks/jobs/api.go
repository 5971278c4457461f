package jobs

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/node/master/state"
)

// maxBody bounds request bodies: a job is small.
const maxBody = 1 << 20

// routes serves the Chronos API on the host's routes, under both /v1/scheduler
// (Chronos 3) and /scheduler (Chronos 2): every path forwards to where the framework
// schedules.
func (s *Service) routes() {
	handle := s.handleWith(writeError)
	for _, prefix := range []string{"/v1/scheduler", "/scheduler"} {
		for _, method := range []string{"POST", "PUT"} {
			handle(method+" "+prefix+"/iso8601", s.postJob(false))
			handle(method+" "+prefix+"/dependency", s.postJob(true))
		}
		handle("GET "+prefix+"/jobs", s.listJobs)
		handle("GET "+prefix+"/jobs/summary", s.summary)
		handle("GET "+prefix+"/jobs/search", s.search)
		handle("GET "+prefix+"/job/{name}", s.getJob)
		handle("PUT "+prefix+"/job/{name}", s.runNow)
		handle("DELETE "+prefix+"/job/{name}", s.deleteJob)
		handle("PUT "+prefix+"/job/success/{name}", s.markSuccess)
		handle("GET "+prefix+"/job/stat/{name}", s.stat)
		handle("DELETE "+prefix+"/task/kill/{name}", s.killTasks)
		handle("GET "+prefix+"/graph/dot", s.graphDot)
		handle("GET "+prefix+"/graph/csv", s.graphCSV)
		handle("GET "+prefix+"/leader", s.leader)
	}
	handle("GET /leader", s.leader)
	s.metronomeRoutes()
}

// handleWith returns a function that serves a pattern with f where the framework
// schedules, answering f's errors with writeErr.
func (s *Service) handleWith(writeErr func(http.ResponseWriter, error)) func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
	return func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
		s.host.HandleLeader(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeErr(w, err)
			}
		}))
	}
}

// notFound is an API error for a job that does not exist.
type notFound struct{ name string }

func (e *notFound) Error() string { return fmt.Sprintf("job %s does not exist", e.name) }

// writeError answers {"message": …} with the error's status.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var bad *badRequest
	var missing *notFound
	switch {
	case errors.As(err, &bad):
		status = http.StatusBadRequest
	case errors.As(err, &missing):
		status = http.StatusNotFound
	case errors.Is(err, errNotReady):
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"message": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// lockReady takes s.mu once the state is loaded; the caller unlocks.
func (s *Service) lockReady() error {
	s.mu.Lock()
	if !s.ready {
		s.mu.Unlock()
		return errNotReady
	}
	return nil
}

// lockJob takes s.mu and returns the named job; the caller unlocks when err is nil.
func (s *Service) lockJob(r *http.Request) (*entry, error) {
	if err := s.lockReady(); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	e := s.jobs[name]
	if e == nil {
		s.mu.Unlock()
		return nil, &notFound{name}
	}
	return e, nil
}

// postJob creates or replaces a job: scheduled ones on /iso8601, dependent ones on
// /dependency.
func (s *Service) postJob(dependent bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
		if err != nil {
			return badRequestf("request body: %v", err)
		}
		// Milliseconds: a start of now is stored to the millisecond, and must not fall
		// before now.
		now := s.now().Truncate(time.Millisecond)
		j, err := decodeJob(data, dependent, now)
		if err != nil {
			return err
		}
		if err := s.lockReady(); err != nil {
			return err
		}
		defer s.mu.Unlock()
		if err := s.putJobLocked(r.Context(), j, now, nil); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// putJobLocked creates or replaces a valid job, and writes puts (keys of the job's
// besides its definition and state) in the same replicated write. Nothing is stored
// unless its parents exist and it closes no cycle. now is when a new schedule starts.
// s.mu is held.
func (s *Service) putJobLocked(ctx context.Context, j *Job, now time.Time, puts []state.KVPut) error {
	e, err := s.newEntry(j)
	if err != nil {
		return badRequestf("job %s: %v", j.Name, err)
	}
	for _, p := range j.Parents {
		if s.jobs[p] == nil {
			return badRequestf("parents: job %s does not exist", p)
		}
	}
	parentsOf := func(name string) []string {
		if name == j.Name {
			return j.Parents
		}
		if pe := s.jobs[name]; pe != nil {
			return pe.job.Parents
		}
		return nil
	}
	if cycle := cycleThrough(j.Name, parentsOf); cycle != nil {
		return badRequestf("parents: job %s would close a dependency cycle: %s", j.Name, strings.Join(cycle, " → "))
	}
	old := s.jobs[j.Name]
	if old != nil {
		e.st, e.history = old.st, old.history
	}
	rescheduled := old == nil || old.job.Schedule != j.Schedule || old.job.Cron != j.Cron || old.job.ScheduleTimeZone != j.ScheduleTimeZone
	if old != nil && old.ahead != nil {
		if rescheduled {
			// The run recorded ahead was of the old schedule: launched ahead of its
			// time, its task is killed (it ends without having started).
			e.st.Runs = slices.DeleteFunc(slices.Clone(old.st.Runs), func(r *run) bool { return r == old.ahead })
			if old.ahead.State != runQueued {
				delete(s.byTask, old.ahead.TaskID)
				s.kills[old.ahead.TaskID] = old.ahead.Agent
			}
		} else {
			e.ahead = old.ahead
		}
	}
	if rescheduled {
		e.st.Next = time.Time{}
		if e.sched != nil {
			// The first run at or after now: a start in the past is not made up.
			if next, ok := e.sched.Next(now.Add(-time.Nanosecond)); ok {
				e.st.Next = next
			}
		}
	}
	def, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.Name, err)
	}
	st, err := json.Marshal(&e.st)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.Name, err)
	}
	puts = append([]state.KVPut{{Key: jobKey(j.Name), Value: def}, {Key: stateKey(j.Name), Value: st}}, puts...)
	if _, err := s.host.WriteKV(ctx, &state.WriteKVRequest{Namespace: s.namespace, Puts: puts}); err != nil {
		return fmt.Errorf("record job %s: %w", j.Name, err)
	}
	if old != nil {
		s.timers.remove(old)
		s.unlink(j.Name, old.job.Parents)
		if old.ahead != nil && e.ahead == nil {
			heap.Remove(&s.ahead, old.ahead.aheadIndex)
			delete(s.queued, old.ahead)
		}
	}
	s.jobs[j.Name] = e
	s.link(j.Name, j.Parents)
	if e.ahead == nil {
		s.setTimerLocked(e)
	}
	s.trigger()
	return nil
}

// link records name as a child of each of parents. s.mu is held.
func (s *Service) link(name string, parents []string) {
	for _, p := range parents {
		if s.children[p] == nil {
			s.children[p] = map[string]bool{}
		}
		s.children[p][name] = true
	}
}

// unlink undoes link. s.mu is held.
func (s *Service) unlink(name string, parents []string) {
	for _, p := range parents {
		delete(s.children[p], name)
		if len(s.children[p]) == 0 {
			delete(s.children, p)
		}
	}
}

// jobJSON is a job as the API shows it, with its counters.
func jobJSON(e *entry) *Job {
	j := *e.job
	j.Counters = Counters{
		SuccessCount:           e.st.SuccessCount,
		ErrorCount:             e.st.ErrorCount,
		LastSuccess:            timestamp(e.st.LastSuccess),
		LastError:              timestamp(e.st.LastError),
		ErrorsSinceLastSuccess: e.st.ErrorsSinceLastSuccess,
	}
	return &j
}

// timestamp formats a time as Chronos does, "" for none.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// sortedLocked returns the jobs by name. s.mu is held.
func (s *Service) sortedLocked() []*entry {
	out := make([]*entry, 0, len(s.jobs))
	for _, e := range s.jobs {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.job.Name, b.job.Name) })
	return out
}

func (s *Service) listJobs(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	out := []*Job{}
	for _, e := range s.sortedLocked() {
		out = append(out, jobJSON(e))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) getJob(w http.ResponseWriter, r *http.Request) error {
	e, err := s.lockJob(r)
	if err != nil {
		return err
	}
	out := jobJSON(e)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// status is a job's latest outcome as Chronos names it: success, failure or fresh.
func status(e *entry) string {
	if e.st.LastStatus == "" {
		return "fresh"
	}
	return e.st.LastStatus
}

// runState is what a job does now: running, queued or idle.
func runState(e *entry) string {
	switch {
	case e.active():
		return "running"
	case e.hasQueued():
		return "queued"
	}
	return "idle"
}

// jobSummary is one job of /jobs/summary.
type jobSummary struct {
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	State    string   `json:"state"`
	Schedule string   `json:"schedule"`
	Parents  []string `json:"parents"`
	Disabled bool     `json:"disabled"`
}

func (s *Service) summary(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	out := []jobSummary{}
	for _, e := range s.sortedLocked() {
		sched := e.job.Schedule
		if sched == "" {
			sched = e.job.Cron
		}
		out = append(out, jobSummary{Name: e.job.Name, Status: status(e), State: runState(e), Schedule: sched, Parents: append([]string{}, e.job.Parents...), Disabled: e.job.Disabled})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
	return nil
}

// search finds jobs whose name (name=), command (command=) or either (any=) contains
// the text, ignoring case; limit and offset page the answer.
func (s *Service) search(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	name, command, anyText := strings.ToLower(q.Get("name")), strings.ToLower(q.Get("command")), strings.ToLower(q.Get("any"))
	limit, offset := -1, 0
	for key, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		if v := q.Get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return badRequestf("%s %q: want a number ≥ 0", key, v)
			}
			*dst = n
		}
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	out := []*Job{}
	for _, e := range s.sortedLocked() {
		n, c := strings.ToLower(e.job.Name), strings.ToLower(e.job.Command)
		if (name != "" && !strings.Contains(n, name)) || (command != "" && !strings.Contains(c, command)) ||
			(anyText != "" && !strings.Contains(n, anyText) && !strings.Contains(c, anyText)) {
			continue
		}
		out = append(out, jobJSON(e))
	}
	s.mu.Unlock()
	out = out[min(offset, len(out)):]
	if limit >= 0 {
		out = out[:min(limit, len(out))]
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// runNow queues a run of the job now, with ?arguments= (space-separated) replacing the
// job's arguments for this run. It answers once the run is in the replicated state.
func (s *Service) runNow(w http.ResponseWriter, r *http.Request) error {
	e, err := s.lockJob(r)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.queueRun(e, s.now(), 0, strings.Fields(r.URL.Query().Get("arguments")), true)
	if err := s.flushLocked(r.Context()); err != nil {
		return err
	}
	s.trigger()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteJob removes a job and kills its runs. A job others depend on stays: the answer
// names them.
func (s *Service) deleteJob(w http.ResponseWriter, r *http.Request) error {
	e, err := s.lockJob(r)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	name := e.job.Name
	if children := s.childrenOf(name); len(children) > 0 {
		return badRequestf("job %s is a parent of %s: delete them or change their parents first", name, strings.Join(children, ", "))
	}
	if err := s.removeJobLocked(r.Context(), e); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeJobLocked deletes a job no other depends on, with everything stored of it, and
// kills its runs. s.mu is held.
func (s *Service) removeJobLocked(ctx context.Context, e *entry) error {
	name := e.job.Name
	if _, err := s.host.WriteKV(ctx, &state.WriteKVRequest{Namespace: s.namespace, Deletes: []string{jobKey(name), stateKey(name), historyKey(name), metronomeKey(name)}}); err != nil {
		return fmt.Errorf("delete job %s: %w", name, err)
	}
	if e.ahead != nil {
		heap.Remove(&s.ahead, e.ahead.aheadIndex)
	}
	for _, run := range e.st.Runs {
		delete(s.queued, run)
		if run.State != runQueued {
			delete(s.byTask, run.TaskID)
			s.kills[run.TaskID] = run.Agent
		}
	}
	s.timers.remove(e)
	s.unlink(name, e.job.Parents)
	delete(s.jobs, name)
	delete(s.metronome, name)
	delete(s.dirty, name)
	delete(s.dirtyHistory, name)
	s.trigger()
	return nil
}

// markSuccess counts a success of the job now, as if a run had succeeded: its children
// whose parents all succeeded run.
func (s *Service) markSuccess(w http.ResponseWriter, r *http.Request) error {
	e, err := s.lockJob(r)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	e.st.SuccessCount++
	e.st.LastSuccess, e.st.ErrorsSinceLastSuccess, e.st.LastStatus = now, 0, runSuccess
	s.dirty[e.job.Name] = true
	s.triggerChildren(e.job.Name, now)
	if err := s.flushLocked(r.Context()); err != nil {
		return err
	}
	s.trigger()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// runView is a run as /job/stat shows it.
type runView struct {
	TaskID    string   `json:"taskId"`
	JobName   string   `json:"jobName"`
	Attempt   int      `json:"attempt"`
	Scheduled string   `json:"scheduledTime"`
	Start     string   `json:"taskStartTime,omitempty"`
	End       string   `json:"taskEndTime,omitempty"`
	State     string   `json:"taskState"`
	Status    string   `json:"status"`
	AgentID   string   `json:"slaveId,omitempty"`
	Host      string   `json:"host,omitempty"`
	Message   string   `json:"message,omitempty"`
	Killed    string   `json:"killed,omitempty"`
	Duration  float64  `json:"durationSeconds,omitempty"`
	Arguments []string `json:"arguments,omitempty"`
}

func viewRun(job string, r *run) runView {
	v := runView{TaskID: r.TaskID, JobName: job, Attempt: r.Attempt, Scheduled: timestamp(r.Scheduled), Start: timestamp(r.Start), End: timestamp(r.End),
		State: string(r.TaskState), Status: r.State, AgentID: r.Agent, Host: r.Host, Message: r.Message, Killed: r.Killed, Arguments: r.Arguments}
	if !r.Start.IsZero() && !r.End.IsZero() {
		v.Duration = r.End.Sub(r.Start).Seconds()
	}
	return v
}

// stat answers the job's run durations as Chronos's histogram (seconds, of the runs in
// its history that succeeded) and its runs: the history, then the runs not yet ended.
func (s *Service) stat(w http.ResponseWriter, r *http.Request) error {
	e, err := s.lockJob(r)
	if err != nil {
		return err
	}
	var durations []float64
	history := []runView{}
	for _, run := range e.history {
		v := viewRun(e.job.Name, run)
		history = append(history, v)
		if run.State == runSuccess && v.Duration > 0 {
			durations = append(durations, v.Duration)
		}
	}
	for _, run := range e.st.Runs {
		history = append(history, viewRun(e.job.Name, run))
	}
	s.mu.Unlock()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		if len(durations) == 0 {
			return 0
		}
		return durations[min(int(math.Ceil(p*float64(len(durations))))-1, len(durations)-1)]
	}
	mean := 0.0
	for _, d := range durations {
		mean += d / float64(len(durations))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"histogram": map[string]any{
			"75thPercentile": pct(0.75), "95thPercentile": pct(0.95), "98thPercentile": pct(0.98), "99thPercentile": pct(0.99),
			"median": pct(0.5), "mean": mean, "count": len(durations),
		},
		"taskStatHistory": history,
	})
	return nil
}

// killTasks kills the job's launched runs and drops its waiting ones; killed runs are
// not retried.
func (s *Service) killTasks(w http.ResponseWriter, r *http.Request) error {
	e, err := s.lockJob(r)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	for _, run := range slices.Clone(e.st.Runs) {
		s.killRunLocked(e, run, killedUser, now)
	}
	if err := s.flushLocked(r.Context()); err != nil {
		return err
	}
	s.trigger()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// graphCSV answers the dependency graph as Chronos's CSV: a node line per job
// (node,<name>,<success|failure|fresh>,<idle|queued|running>) and a link line per edge.
func (s *Service) graphCSV(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	var b strings.Builder
	sorted := s.sortedLocked()
	for _, e := range sorted {
		fmt.Fprintf(&b, "node,%s,%s,%s\n", e.job.Name, status(e), runState(e))
	}
	for _, e := range sorted {
		for _, p := range e.job.Parents {
			fmt.Fprintf(&b, "link,%s,%s\n", p, e.job.Name)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, b.String())
	return nil
}

// graphDot answers the dependency graph in Graphviz's language, jobs coloured by their
// latest outcome.
func (s *Service) graphDot(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	colors := map[string]string{"success": "lightgreen", "failure": "salmon", "fresh": "lightgrey"}
	var b strings.Builder
	b.WriteString("digraph G {\n  node [style=filled];\n")
	sorted := s.sortedLocked()
	for _, e := range sorted {
		fmt.Fprintf(&b, "  %q [fillcolor=%s];\n", e.job.Name, colors[status(e)])
	}
	for _, e := range sorted {
		for _, p := range e.job.Parents {
			fmt.Fprintf(&b, "  %q -> %q;\n", p, e.job.Name)
		}
	}
	s.mu.Unlock()
	b.WriteString("}\n")
	w.Header().Set("Content-Type", "text/vnd.graphviz")
	_, _ = io.WriteString(w, b.String())
	return nil
}

// leader answers the address the framework's API is served at, host:port: the leading
// master's, or the framework's own when it runs by itself.
func (s *Service) leader(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"leader": strings.TrimPrefix(strings.TrimPrefix(s.host.APIURL(), "http://"), "https://")})
	return nil
}
