package tui

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// kind names a part of the cluster state; views rebuild their rows when a part they
// show changes.
type kind int

const (
	kindAgents kind = iota
	kindFrameworks
	kindTasks
	kindApps
	kindDeployments
	kindQueue
	kindJobs
	kindNodes
	kindPackages
	kindCatalog
	kindEvents
	kindCount
)

// source says whether a part of the API is there: the Marathon, Chronos and package
// APIs are served only when their frameworks run.
type source struct {
	// known is false until the first answer.
	known bool
	// missing says the master does not serve the API; why says so in words.
	missing bool
	why     string
}

// taskRecord is a task as the operator API shows it, with what the TUI derives from it.
type taskRecord struct {
	task api.Task
	// app and job are the app id or job name from the task's labels ("" when none).
	app, job string
	// started is the time of its first status, updated the time of its latest.
	started, updated time.Time
	// healthy is the latest status's health, nil when not checked.
	healthy *bool
	// order counts arrivals, so that ended tasks are dropped oldest first.
	order uint64
}

// appRecord is a Marathon app: its definition and status as last read, and its tasks
// counted from the operator stream.
type appRecord struct {
	info marathon.AppInfo
}

// jobRecord is a Chronos job and its summary.
type jobRecord struct {
	job     chronos.Job
	summary chronos.Summary
}

// eventRecord is one event of either stream, as :events shows it.
type eventRecord struct {
	seq     uint64
	at      time.Time
	source  string
	typ     string
	subject string
	detail  string
	// raw is the event, shown as JSON.
	raw any
}

// packageRecord is one installed package: what /package/list says of it.
type packageRecord struct {
	name, version, appID string
	framework            bool
	info                 universe.Installation
}

// clusterState is what the TUI knows of the cluster: the operator stream's state and
// events, and what the Marathon, Chronos and package APIs last answered. Only the
// bubbletea loop touches it.
type clusterState struct {
	now func() time.Time
	// rev counts the changes to each kind of state.
	rev [kindCount]uint64

	agents     map[string]*api.AgentState
	frameworks map[string]*api.FrameworkState
	tasks      map[string]*taskRecord
	// appTasks indexes tasks by app id.
	appTasks  map[string]map[string]*taskRecord
	taskOrder uint64
	// maxEnded bounds the ended tasks kept.
	maxEnded int

	marathon    source
	apps        map[string]*appRecord
	deployments []marathon.Deployment
	queue       map[string]marathon.QueueItem

	chronos source
	jobs    map[string]*jobRecord

	raft    *api.RaftPeers
	members []api.Member
	version string

	packagesSrc source
	packages    []packageRecord

	// catalog is the latest search of the catalog, for catalogQuery.
	catalogSrc   source
	catalog      []universe.SearchResult
	catalogQuery string

	events    []eventRecord
	eventSeq  uint64
	maxEvents int
}

func newClusterState(now func() time.Time, maxEvents, maxEnded int) *clusterState {
	return &clusterState{
		now:        now,
		agents:     map[string]*api.AgentState{},
		frameworks: map[string]*api.FrameworkState{},
		tasks:      map[string]*taskRecord{},
		appTasks:   map[string]map[string]*taskRecord{},
		apps:       map[string]*appRecord{},
		queue:      map[string]marathon.QueueItem{},
		jobs:       map[string]*jobRecord{},
		maxEvents:  maxEvents,
		maxEnded:   maxEnded,
	}
}

func (s *clusterState) touch(kinds ...kind) {
	for _, k := range kinds {
		s.rev[k]++
	}
}

// taskKey identifies a task: ids are unique per framework.
func taskKey(frameworkID, taskID string) string { return frameworkID + "/" + taskID }

// floatTime turns a status timestamp (seconds since the epoch) into a time.
func floatTime(sec float64) time.Time {
	if sec <= 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(sec*1e9))
}

// putTask records a task (new, or replacing what was known of it).
func (s *clusterState) putTask(t api.Task) *taskRecord {
	key := taskKey(t.FrameworkID.Value, t.TaskID.Value)
	r := s.tasks[key]
	if r == nil {
		s.taskOrder++
		r = &taskRecord{order: s.taskOrder}
		s.tasks[key] = r
	}
	r.task = t
	r.app, r.job = t.Labels.Get(api.LabelAppID), t.Labels.Get(api.LabelJobName)
	r.started, r.updated, r.healthy = time.Time{}, time.Time{}, nil
	for _, st := range t.Statuses {
		at := floatTime(st.Timestamp)
		if r.started.IsZero() || (!at.IsZero() && at.Before(r.started)) {
			r.started = at
		}
		if at.After(r.updated) {
			r.updated = at
		}
		r.healthy = st.Healthy
	}
	if r.app != "" {
		if s.appTasks[r.app] == nil {
			s.appTasks[r.app] = map[string]*taskRecord{}
		}
		s.appTasks[r.app][key] = r
	}
	return r
}

// updateTask applies a status update to a known task; it reports false for an unknown one.
func (s *clusterState) updateTask(frameworkID string, st api.TaskStatus, state api.TaskState) (*taskRecord, bool) {
	r := s.tasks[taskKey(frameworkID, st.TaskID.Value)]
	if r == nil {
		return nil, false
	}
	r.task.State = state
	r.task.Statuses = append(r.task.Statuses, st)
	at := floatTime(st.Timestamp)
	if at.IsZero() {
		at = s.now()
	}
	if r.started.IsZero() {
		r.started = at
	}
	r.updated = at
	if st.Healthy != nil {
		r.healthy = st.Healthy
	}
	return r, true
}

// dropEndedTasks forgets the oldest ended tasks beyond maxEnded.
func (s *clusterState) dropEndedTasks() {
	var ended []*taskRecord
	for _, r := range s.tasks {
		if r.task.State.Terminal() {
			ended = append(ended, r)
		}
	}
	if len(ended) <= s.maxEnded {
		return
	}
	slices.SortFunc(ended, func(a, b *taskRecord) int { return cmp.Compare(a.order, b.order) })
	for _, r := range ended[:len(ended)-s.maxEnded] {
		key := taskKey(r.task.FrameworkID.Value, r.task.TaskID.Value)
		delete(s.tasks, key)
		if r.app != "" {
			delete(s.appTasks[r.app], key)
			if len(s.appTasks[r.app]) == 0 {
				delete(s.appTasks, r.app)
			}
		}
	}
}

// applyState replaces the operator part of the state with a full snapshot.
func (s *clusterState) applyState(st *api.GetState) {
	s.agents = map[string]*api.AgentState{}
	s.frameworks = map[string]*api.FrameworkState{}
	s.tasks = map[string]*taskRecord{}
	s.appTasks = map[string]map[string]*taskRecord{}
	if st == nil {
		s.touch(kindAgents, kindFrameworks, kindTasks, kindApps)
		return
	}
	if st.GetAgents != nil {
		for i := range st.GetAgents.Agents {
			a := st.GetAgents.Agents[i]
			if a.AgentInfo.ID != nil {
				s.agents[a.AgentInfo.ID.Value] = &a
			}
		}
	}
	if st.GetFrameworks != nil {
		for i := range st.GetFrameworks.Frameworks {
			f := st.GetFrameworks.Frameworks[i]
			if f.FrameworkInfo.ID != nil {
				s.frameworks[f.FrameworkInfo.ID.Value] = &f
			}
		}
	}
	if st.GetTasks != nil {
		// Completed first, so that a live run of a reused id wins.
		for _, t := range slices.Concat(st.GetTasks.CompletedTasks, st.GetTasks.OrphanTasks, st.GetTasks.UnreachableTasks, st.GetTasks.Tasks) {
			s.putTask(t)
		}
	}
	s.dropEndedTasks()
	s.touch(kindAgents, kindFrameworks, kindTasks, kindApps)
}

// applyOperatorEvent applies one operator event and records it for :events.
func (s *clusterState) applyOperatorEvent(ev *api.OperatorEvent) {
	at := s.now()
	switch ev.Type {
	case api.OpEventSubscribed:
		if ev.Subscribed != nil {
			s.applyState(ev.Subscribed.GetState)
		}
		return
	case api.OpEventHeartbeat:
		return
	case api.OpEventTaskAdded:
		if ev.TaskAdded == nil {
			return
		}
		r := s.putTask(ev.TaskAdded.Task)
		s.touch(kindTasks, kindAgents, kindFrameworks, kindApps)
		s.record(eventRecord{at: at, source: "mesos", typ: string(ev.Type), subject: r.task.TaskID.Value, detail: shortState(r.task.State), raw: ev})
	case api.OpEventTaskUpdated:
		u := ev.TaskUpdated
		if u == nil {
			return
		}
		if _, ok := s.updateTask(u.FrameworkID.Value, u.Status, u.State); ok && u.State.Terminal() {
			s.dropEndedTasks()
		}
		s.touch(kindTasks, kindAgents, kindFrameworks, kindApps)
		detail := shortState(u.State)
		if u.Status.Message != "" {
			detail += ": " + u.Status.Message
		}
		s.record(eventRecord{at: at, source: "mesos", typ: string(ev.Type), subject: u.Status.TaskID.Value, detail: detail, raw: ev})
	case api.OpEventAgentAdded:
		if ev.AgentAdded == nil || ev.AgentAdded.Agent.AgentInfo.ID == nil {
			return
		}
		a := ev.AgentAdded.Agent
		s.agents[a.AgentInfo.ID.Value] = &a
		s.touch(kindAgents)
		s.record(eventRecord{at: at, source: "mesos", typ: string(ev.Type), subject: a.AgentInfo.Hostname, detail: a.AgentInfo.ID.Value, raw: ev})
	case api.OpEventAgentRemoved:
		if ev.AgentRemoved == nil {
			return
		}
		id := ev.AgentRemoved.AgentID.Value
		subject := id
		if a := s.agents[id]; a != nil {
			subject = a.AgentInfo.Hostname
		}
		delete(s.agents, id)
		s.touch(kindAgents)
		s.record(eventRecord{at: at, source: "mesos", typ: string(ev.Type), subject: subject, detail: id, raw: ev})
	case api.OpEventFrameworkAdded, api.OpEventFrameworkUpdated:
		c := ev.FrameworkAdded
		if ev.Type == api.OpEventFrameworkUpdated {
			c = ev.FrameworkUpdated
		}
		if c == nil || c.Framework.FrameworkInfo.ID == nil {
			return
		}
		f := c.Framework
		s.frameworks[f.FrameworkInfo.ID.Value] = &f
		s.touch(kindFrameworks)
		s.record(eventRecord{at: at, source: "mesos", typ: string(ev.Type), subject: f.FrameworkInfo.Name, detail: f.FrameworkInfo.ID.Value, raw: ev})
	case api.OpEventFrameworkRemoved:
		if ev.FrameworkRemoved == nil || ev.FrameworkRemoved.FrameworkInfo.ID == nil {
			return
		}
		info := ev.FrameworkRemoved.FrameworkInfo
		delete(s.frameworks, info.ID.Value)
		s.touch(kindFrameworks)
		s.record(eventRecord{at: at, source: "mesos", typ: string(ev.Type), subject: info.Name, detail: info.ID.Value, raw: ev})
	}
}

// marathonEffect is what a Marathon event asks the TUI to read again. packages: a
// deployment ended or an app went, which is how an install or uninstall by anyone shows.
type marathonEffect struct {
	apps            []string
	queue, packages bool
}

// applyMarathonEvent applies one /v2/events event as far as it carries the change, records
// it for :events, and says what must be read again for the rest.
func (s *clusterState) applyMarathonEvent(ev marathon.Event) marathonEffect {
	var eff marathonEffect
	rec := eventRecord{at: s.now(), source: "marathon", typ: ev.Type, raw: json.RawMessage(ev.Data)}
	switch ev.Type {
	case marathon.EventStatusUpdate:
		var e marathon.StatusUpdateEvent
		if json.Unmarshal(ev.Data, &e) == nil {
			rec.subject, rec.detail = e.TaskID, shortState(api.TaskState(e.TaskStatus))
			if e.Message != "" {
				rec.detail += ": " + e.Message
			}
		}
		eff.queue = true
	case marathon.EventAPIPost:
		var e marathon.APIPostEvent
		if json.Unmarshal(ev.Data, &e) == nil && e.AppDefinition != nil {
			rec.subject, rec.detail = e.AppDefinition.ID, e.URI
			r := s.apps[e.AppDefinition.ID]
			if r == nil {
				r = &appRecord{}
				s.apps[e.AppDefinition.ID] = r
			}
			r.info.App = *e.AppDefinition
			s.touch(kindApps)
			eff.apps = append(eff.apps, e.AppDefinition.ID)
		}
	case marathon.EventAppTerminated:
		var e marathon.AppTerminatedEvent
		if json.Unmarshal(ev.Data, &e) == nil {
			rec.subject = e.AppID
			delete(s.apps, e.AppID)
			delete(s.queue, e.AppID)
			s.touch(kindApps, kindQueue)
		}
		eff.packages = true
	case marathon.EventDeploymentInfo, marathon.EventDeploymentSuccess, marathon.EventDeploymentFailed,
		marathon.EventDeploymentStepSuccess, marathon.EventDeploymentStepFailure:
		var e struct {
			ID   string              `json:"id"`
			Plan marathon.Deployment `json:"plan"`
		}
		if json.Unmarshal(ev.Data, &e) == nil {
			d := e.Plan
			d.ID = cmp.Or(d.ID, e.ID)
			if len(d.AffectedApps) == 0 {
				d.AffectedApps = deploymentApps(d)
			}
			rec.subject, rec.detail = shortID(d.ID), strings.Join(d.AffectedApps, " ")
			eff.apps = append(eff.apps, d.AffectedApps...)
			if ev.Type == marathon.EventDeploymentSuccess || ev.Type == marathon.EventDeploymentFailed {
				s.deployments = slices.DeleteFunc(s.deployments, func(x marathon.Deployment) bool { return x.ID == d.ID })
				eff.packages = true
			} else if d.ID != "" {
				s.putDeployment(d)
			}
			s.touch(kindDeployments, kindApps)
		}
		eff.queue = true
	case marathon.EventHealthStatusChanged:
		var e marathon.HealthStatusChangedEvent
		if json.Unmarshal(ev.Data, &e) == nil {
			rec.subject, rec.detail = cmp.Or(e.TaskID, e.InstanceID), "unhealthy"
			if e.Alive {
				rec.detail = "healthy"
			}
		}
	case marathon.EventUnhealthyTaskKill:
		var e marathon.UnhealthyTaskKillEvent
		if json.Unmarshal(ev.Data, &e) == nil {
			rec.subject, rec.detail = e.TaskID, e.Reason
		}
	case marathon.EventGroupChangeSuccess, marathon.EventGroupChangeFailed:
		var e marathon.GroupChangeEvent
		if json.Unmarshal(ev.Data, &e) == nil {
			rec.subject, rec.detail = e.GroupID, e.Reason
		}
	case marathon.EventStreamAttached, marathon.EventStreamDetached:
		// The TUI's own connection, and other clients': not news.
		return eff
	}
	s.record(rec)
	return eff
}

// putDeployment adds or replaces a deployment.
func (s *clusterState) putDeployment(d marathon.Deployment) {
	for i := range s.deployments {
		if s.deployments[i].ID == d.ID {
			s.deployments[i] = d
			return
		}
	}
	s.deployments = append(s.deployments, d)
}

// deploymentApps lists the apps a deployment's steps touch.
func deploymentApps(d marathon.Deployment) []string {
	var apps []string
	for _, step := range d.Steps {
		for _, a := range step.Actions {
			if a.App != "" && !slices.Contains(apps, a.App) {
				apps = append(apps, a.App)
			}
		}
	}
	return apps
}

// record keeps an event, dropping the oldest beyond maxEvents.
func (s *clusterState) record(ev eventRecord) {
	s.eventSeq++
	ev.seq = s.eventSeq
	s.events = append(s.events, ev)
	if over := len(s.events) - s.maxEvents; over > 0 {
		s.events = slices.Delete(s.events, 0, over)
	}
	s.touch(kindEvents)
}

// setApps replaces every app (a full read of /v2/apps).
func (s *clusterState) setApps(apps []marathon.AppInfo) {
	s.apps = make(map[string]*appRecord, len(apps))
	for _, a := range apps {
		s.apps[a.ID] = &appRecord{info: a}
	}
	s.touch(kindApps)
}

// setApp replaces one app, or removes it when gone.
func (s *clusterState) setApp(id string, info *marathon.AppInfo) {
	if info == nil {
		delete(s.apps, id)
	} else {
		s.apps[id] = &appRecord{info: *info}
	}
	s.touch(kindApps)
}

// setQueue replaces the launch queue.
func (s *clusterState) setQueue(items []marathon.QueueItem) {
	s.queue = make(map[string]marathon.QueueItem, len(items))
	for _, q := range items {
		if q.App != nil {
			s.queue[q.App.ID] = q
		}
	}
	s.touch(kindQueue, kindApps)
}

// setJobs replaces every job.
func (s *clusterState) setJobs(jobs []chronos.Job, summaries []chronos.Summary) {
	s.jobs = make(map[string]*jobRecord, len(jobs))
	for _, j := range jobs {
		s.jobs[j.Name] = &jobRecord{job: j, summary: chronos.Summary{Name: j.Name, Status: chronos.StatusFresh, State: chronos.StateIdle}}
	}
	for _, sum := range summaries {
		if r := s.jobs[sum.Name]; r != nil {
			r.summary = sum
		}
	}
	s.touch(kindJobs)
}

// appCounts are an app's tasks by what they do.
type appCounts struct {
	staged, running, healthy, unhealthy int
}

// counts counts an app's live tasks.
func (s *clusterState) counts(appID string) appCounts {
	var c appCounts
	for _, r := range s.appTasks[appID] {
		switch r.task.State {
		case api.TaskStaging, api.TaskStarting:
			c.staged++
		case api.TaskRunning:
			c.running++
			if r.healthy != nil {
				if *r.healthy {
					c.healthy++
				} else {
					c.unhealthy++
				}
			}
		}
	}
	return c
}

// appDeployments lists the deployments that touch an app.
func (s *clusterState) appDeployments(appID string) []marathon.Deployment {
	var out []marathon.Deployment
	for _, d := range s.deployments {
		if slices.Contains(d.AffectedApps, appID) {
			out = append(out, d)
		}
	}
	return out
}

// App statuses, as Marathon's UI named them.
const (
	appRunning   = "Running"
	appDeploying = "Deploying"
	appWaiting   = "Waiting"
	appDelayed   = "Delayed"
	appSuspended = "Suspended"
)

// appStatus says what an app is doing. An app waits when it has instances to launch and
// offers came that did not fit them.
func (s *clusterState) appStatus(a *marathon.AppInfo) string {
	q, queued := s.queue[a.ID]
	queued = queued && q.Count > 0
	switch {
	case queued && q.Delay != nil && q.Delay.TimeLeftSeconds > 0 && !q.Delay.Overdue:
		return appDelayed
	case queued && q.ProcessedOffersSummary.UnusedOffersCount > 0:
		return appWaiting
	case len(s.appDeployments(a.ID)) > 0:
		return appDeploying
	case a.Instances == 0:
		return appSuspended
	}
	return appRunning
}

// leader is the leading master's id, "" when none is known.
func (s *clusterState) leader() string {
	if s.raft == nil {
		return ""
	}
	return s.raft.LeaderID
}

// nodeName is the name of the node whose stable id (its gossip tag) is id, or id when no
// member says: Raft knows masters by id, people by name.
func (s *clusterState) nodeName(id string) string {
	for _, mem := range s.members {
		if mem.Tags[api.MemberTagID] == id {
			return mem.Name
		}
	}
	return id
}

// frameworkName is a framework's name, or its id when unknown.
func (s *clusterState) frameworkName(id string) string {
	if f := s.frameworks[id]; f != nil && f.FrameworkInfo.Name != "" {
		return f.FrameworkInfo.Name
	}
	return id
}

// agentHost is an agent's hostname, or its id when unknown.
func (s *clusterState) agentHost(id string) string {
	if a := s.agents[id]; a != nil && a.AgentInfo.Hostname != "" {
		return a.AgentInfo.Hostname
	}
	return id
}

// shortState is a task state without its TASK_ prefix.
func shortState(st api.TaskState) string { return strings.TrimPrefix(string(st), "TASK_") }

// shortID is the first part of a uuid, enough to tell deployments apart on screen.
func shortID(id string) string {
	if i := strings.IndexByte(id, '-'); i >= 8 {
		return id[:i]
	}
	return id
}
