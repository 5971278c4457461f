package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// actionID names something a key does to what is selected.
type actionID int

const (
	actOpen actionID = iota
	actJSON
	actLogs
	actShowEnded
	actScale
	actRestart
	actSuspend
	actDestroy
	actKill
	actRollback
	actStopDeployment
	actRunJob
	actToggleJob
	actDeleteJob
	actInstall
	actUninstall
	actSearch
	actSwitch
)

// actionInfo is an action's keys and what the help says of it; mutates marks the
// actions --read-only refuses.
type actionInfo struct {
	keys    []string
	help    string
	mutates bool
}

var actionInfos = map[actionID]actionInfo{
	actOpen:           {keys: []string{"enter"}, help: "open"},
	actJSON:           {keys: []string{"d"}, help: "definition (JSON)"},
	actLogs:           {keys: []string{"l"}, help: "follow the task's output"},
	actShowEnded:      {keys: []string{"a"}, help: "show or hide ended tasks"},
	actScale:          {keys: []string{"s"}, help: "scale the app", mutates: true},
	actRestart:        {keys: []string{"r"}, help: "restart the app", mutates: true},
	actSuspend:        {keys: []string{"z"}, help: "suspend the app (scale to 0)", mutates: true},
	actDestroy:        {keys: []string{"ctrl+d"}, help: "destroy the app", mutates: true},
	actKill:           {keys: []string{"ctrl+k"}, help: "kill the task", mutates: true},
	actRollback:       {keys: []string{"r"}, help: "roll the deployment back", mutates: true},
	actStopDeployment: {keys: []string{"ctrl+d"}, help: "stop the deployment where it is", mutates: true},
	actRunJob:         {keys: []string{"r"}, help: "run the job now", mutates: true},
	actToggleJob:      {keys: []string{"e"}, help: "enable or disable the job", mutates: true},
	actDeleteJob:      {keys: []string{"ctrl+d"}, help: "delete the job", mutates: true},
	actInstall:        {keys: []string{"i"}, help: "install the package (a form of its options)", mutates: true},
	actUninstall:      {keys: []string{"u"}, help: "uninstall the package and everything it created", mutates: true},
	actSearch:         {keys: []string{"s"}, help: "search the catalog (the master's repositories)"},
	actSwitch:         {keys: []string{"tab"}, help: "switch between the installed packages and the catalog"},
}

// confirmation is a question on the bottom line that a key answers; cancel, when set,
// runs when the answer is no.
type confirmation struct {
	question string
	choices  []choice
	cancel   func()
}

// choice is an answer to a confirmation.
type choice struct {
	key, label string
	// run is what the answer does; nil cancels.
	run func() tea.Cmd
}

// promptState is a question answered with a line of text.
type promptState struct {
	submit func(text string) tea.Cmd
}

// actionDoneMsg reports the end of an action.
type actionDoneMsg struct {
	done string
	err  error
	// jobs asks for the jobs to be read again: the Chronos API has no events.
	jobs bool
	// packages asks for the installed packages to be read again.
	packages bool
}

// perform runs an action request: the spinner turns while it is under way, and the
// answer comes back as an actionDoneMsg.
func (m *Model) perform(done string, jobs bool, f func(ctx context.Context) error) tea.Cmd {
	m.busy++
	return m.request(func(ctx context.Context) tea.Msg {
		return actionDoneMsg{done: done, err: f(ctx), jobs: jobs}
	})
}

func (m *Model) actionDone(msg actionDoneMsg) tea.Cmd {
	m.busy = max(0, m.busy-1)
	if msg.err != nil {
		m.flash = flash{text: msg.err.Error(), err: true}
	} else {
		m.flash = flash{text: msg.done}
	}
	if msg.packages {
		return m.fetchPackages()
	}
	if msg.jobs {
		m.refresh.jobs = true
		m.refresh.stat = true
		return m.scheduleRefresh()
	}
	return nil
}

// ask puts a confirmation on the bottom line.
func (m *Model) ask(question string, choices ...choice) tea.Cmd {
	m.confirm = &confirmation{question: question, choices: append(choices, choice{key: "n", label: "no"})}
	m.mode = modeConfirm
	return nil
}

// act runs an action on what is selected.
func (m *Model) act(id actionID) tea.Cmd {
	info := actionInfos[id]
	if info.mutates && m.cfg.ReadOnly {
		m.flash = flash{text: fmt.Sprintf("read-only: %s is disabled (atoll tui runs with --read-only)", strings.SplitN(info.help, " (", 2)[0]), err: true}
		return nil
	}
	switch id {
	case actOpen:
		return m.open()
	case actJSON:
		return m.showJSON()
	case actLogs:
		if key := m.selectedTask(); key != "" {
			return m.openLogs(key, "stdout")
		}
	case actShowEnded:
		p := m.top()
		p.showEnded = !p.showEnded
		p.dirty = true
	case actScale, actRestart, actSuspend, actDestroy:
		if app := m.selectedApp(); app != "" {
			return m.appAction(app, id)
		}
	case actKill:
		if key := m.selectedTask(); key != "" {
			return m.killTask(key)
		}
	case actRollback, actStopDeployment:
		if p := m.top(); p.table != nil && p.view == viewDeployments {
			if d := p.table.selectedKey(); d != "" {
				return m.deploymentAction(d, id == actRollback)
			}
		}
	case actRunJob, actToggleJob, actDeleteJob:
		if name := m.selectedJob(); name != "" {
			return m.jobAction(name, id)
		}
	case actInstall:
		return m.installSelected()
	case actUninstall:
		if name, appID := m.selectedPackage(); name != "" {
			return m.uninstall(name, appID)
		}
	case actSearch:
		m.input = newLineInput("search the catalog: ", m.state.catalogQuery)
		m.prompt = &promptState{submit: func(text string) tea.Cmd { return m.searchCatalog(strings.TrimSpace(text)) }}
		m.mode = modePrompt
	case actSwitch:
		if m.top().view == viewPackages {
			m.openView(viewCatalog, "")
			return m.searchCatalog(m.state.catalogQuery)
		}
		m.openView(viewPackages, "")
	}
	return nil
}

// selectedApp is the app the top page is about or has selected.
func (m *Model) selectedApp() string {
	p := m.top()
	switch {
	case p.kind == pageApp:
		return p.key
	case p.kind == pageTable && p.view == viewApps:
		return p.table.selectedKey()
	}
	return ""
}

// selectedTask is the key of the task the top page is about or has selected.
func (m *Model) selectedTask() string {
	p := m.top()
	switch p.kind {
	case pageTask:
		return p.key
	case pageApp:
		return p.table.selectedKey()
	case pageTable:
		if p.view == viewTasks {
			return p.table.selectedKey()
		}
	case pageJob:
		return m.taskOfRun(p.table.selectedKey())
	}
	return ""
}

// taskOfRun finds the task of a job run by its task id, "" when the master forgot it.
func (m *Model) taskOfRun(taskID string) string {
	for key, r := range m.state.tasks {
		if r.task.TaskID.Value == taskID && r.job != "" {
			return key
		}
	}
	return ""
}

// selectedJob is the job the top page is about or has selected.
func (m *Model) selectedJob() string {
	p := m.top()
	switch {
	case p.kind == pageJob:
		return p.key
	case p.kind == pageTable && p.view == viewJobs:
		return p.table.selectedKey()
	}
	return ""
}

// appAction scales, restarts, suspends or destroys an app, asking first when it kills
// tasks.
func (m *Model) appAction(id string, action actionID) tea.Cmd {
	a := m.state.apps[id]
	if a == nil {
		m.flash = flash{text: "app " + id + " is gone", err: true}
		return nil
	}
	running := m.state.counts(id).running
	mc := m.cfg.Marathon
	switch action {
	case actScale:
		m.input = newLineInput(fmt.Sprintf("scale %s to (now %d): ", id, a.info.Instances), "")
		m.prompt = &promptState{submit: func(text string) tea.Cmd {
			n, err := strconv.Atoi(strings.TrimSpace(text))
			if err != nil || n < 0 || n > 1_000_000 {
				m.flash = flash{text: fmt.Sprintf("scale %s: %q is not a number of instances", id, text), err: true}
				return nil
			}
			scale := func() tea.Cmd { return m.scaleApp(id, n) }
			if n < a.info.Instances {
				return m.ask(fmt.Sprintf("Scale %s down from %d to %d, killing %s?", id, a.info.Instances, n, plural(a.info.Instances-n, "task")),
					choice{key: "y", label: "yes", run: scale})
			}
			return scale()
		}}
		m.mode = modePrompt
		return nil
	case actRestart:
		return m.ask(fmt.Sprintf("Restart %s, replacing its %s?", id, plural(running, "task")),
			choice{key: "y", label: "yes", run: func() tea.Cmd {
				return m.perform("restarting "+id, false, func(ctx context.Context) error {
					_, err := mc.RestartApp(ctx, id, false)
					return err
				})
			}})
	case actSuspend:
		return m.ask(fmt.Sprintf("Suspend %s: scale it to 0, killing its %s?", id, plural(running, "task")),
			choice{key: "y", label: "yes", run: func() tea.Cmd { return m.scaleApp(id, 0) }})
	case actDestroy:
		return m.ask(fmt.Sprintf("Destroy %s and kill its %s? Its definition is gone for good.", id, plural(running, "task")),
			choice{key: "y", label: "yes", run: func() tea.Cmd {
				return m.perform("destroying "+id, false, func(ctx context.Context) error {
					_, err := mc.DeleteApp(ctx, id, false)
					return err
				})
			}})
	}
	return nil
}

func (m *Model) scaleApp(id string, n int) tea.Cmd {
	body, _ := json.Marshal(map[string]int{"instances": n})
	return m.perform(fmt.Sprintf("scaling %s to %d", id, n), false, func(ctx context.Context) error {
		_, err := m.cfg.Marathon.PatchApp(ctx, id, body, false)
		return err
	})
}

// killTask kills a task after asking; an app's task may take its app down by one.
func (m *Model) killTask(key string) tea.Cmd {
	r := m.state.tasks[key]
	if r == nil {
		m.flash = flash{text: "the task is gone", err: true}
		return nil
	}
	if r.task.State.Terminal() {
		m.flash = flash{text: fmt.Sprintf("task %s has ended (%s)", r.task.TaskID.Value, shortState(r.task.State)), err: true}
		return nil
	}
	taskID, frameworkID := r.task.TaskID.Value, r.task.FrameworkID.Value
	kill := choice{key: "y", label: "kill", run: func() tea.Cmd {
		return m.perform("killing "+taskID, r.job != "", func(ctx context.Context) error {
			return m.cfg.API.KillTask(ctx, frameworkID, taskID)
		})
	}}
	if r.app == "" {
		return m.ask(fmt.Sprintf("Kill task %s?", taskID), kill)
	}
	app := r.app
	kill.label = "kill (" + app + " replaces it)"
	return m.ask(fmt.Sprintf("Kill task %s of %s?", taskID, app), kill,
		choice{key: "s", label: "kill and scale " + app + " down by one", run: func() tea.Cmd {
			return m.perform(fmt.Sprintf("killing %s and scaling %s down", taskID, app), false, func(ctx context.Context) error {
				_, err := m.cfg.Marathon.Do(ctx, http.MethodDelete, "/v2/apps"+app+"/tasks/"+url.PathEscape(taskID), url.Values{"scale": {"true"}}, nil)
				return err
			})
		}})
}

// deploymentAction rolls a deployment back or stops it, after asking.
func (m *Model) deploymentAction(id string, rollback bool) tea.Cmd {
	apps := ""
	for _, d := range m.state.deployments {
		if d.ID == id {
			apps = strings.Join(d.AffectedApps, ", ")
		}
	}
	if rollback {
		return m.ask(fmt.Sprintf("Roll back deployment %s, returning %s to the definition before it?", shortID(id), orDash(apps)),
			choice{key: "y", label: "yes", run: func() tea.Cmd {
				return m.perform("rolling back deployment "+shortID(id), false, func(ctx context.Context) error {
					_, err := m.cfg.Marathon.RollbackDeployment(ctx, id)
					return err
				})
			}})
	}
	return m.ask(fmt.Sprintf("Stop deployment %s where it is, leaving %s half done?", shortID(id), orDash(apps)),
		choice{key: "y", label: "yes", run: func() tea.Cmd {
			return m.perform("stopping deployment "+shortID(id), false, func(ctx context.Context) error {
				return m.cfg.Marathon.StopDeployment(ctx, id)
			})
		}})
}

// jobAction runs, enables, disables or deletes a job; disabling and deleting ask first.
func (m *Model) jobAction(name string, id actionID) tea.Cmd {
	c := m.cfg.Chronos
	switch id {
	case actRunJob:
		return m.perform("job "+name+" started", true, func(ctx context.Context) error { return c.RunNow(ctx, name) })
	case actToggleJob:
		r := m.state.jobs[name]
		if r == nil {
			return nil
		}
		if r.job.Disabled {
			return m.perform("job "+name+" enabled", true, func(ctx context.Context) error { return c.SetDisabled(ctx, name, false) })
		}
		return m.ask(fmt.Sprintf("Disable job %s? Its schedule stops until it is enabled again.", name),
			choice{key: "y", label: "yes", run: func() tea.Cmd {
				return m.perform("job "+name+" disabled", true, func(ctx context.Context) error { return c.SetDisabled(ctx, name, true) })
			}})
	case actDeleteJob:
		return m.ask(fmt.Sprintf("Delete job %s and kill its runs?", name),
			choice{key: "y", label: "yes", run: func() tea.Cmd {
				return m.perform("job "+name+" deleted", true, func(ctx context.Context) error { return c.DeleteJob(ctx, name) })
			}})
	}
	return nil
}

// open drills down into what is selected.
func (m *Model) open() tea.Cmd {
	p := m.top()
	key := ""
	if p.table != nil {
		key = p.table.selectedKey()
	}
	if key == "" {
		return nil
	}
	switch {
	case p.kind == pageApp || (p.kind == pageTable && p.view == viewTasks):
		m.push(&page{kind: pageTask, key: key})
	case p.kind == pageJob:
		if task := m.taskOfRun(key); task != "" {
			m.push(&page{kind: pageTask, key: task})
		} else {
			m.flash = flash{text: "the master no longer knows task " + key, err: true}
		}
	case p.view == viewApps:
		m.push(newAppPage(key))
	case p.view == viewAgents:
		m.push(newTablePage(viewTasks, scope{agent: key}))
	case p.view == viewFrameworks:
		m.push(newTablePage(viewTasks, scope{framework: key}))
	case p.view == viewJobs:
		m.push(newJobPage(key))
		return m.fetchStat(key)
	case p.view == viewCatalog:
		return m.openPackage(key, "", false)
	case p.view == viewPackages:
		if rec := m.state.installation(key); rec != nil {
			return m.openPackage(rec.name, rec.version, false)
		}
	default:
		return m.showJSON()
	}
	return nil
}

// showJSON opens the JSON of what the top page is about or has selected.
func (m *Model) showJSON() tea.Cmd {
	title, v, ok := m.definition()
	if !ok {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		m.flash = flash{text: "encode " + title + ": " + err.Error(), err: true}
		return nil
	}
	m.push(&page{kind: pageText, title: title, lines: strings.Split(string(data), "\n")})
	return nil
}

// definition is what showJSON shows.
func (m *Model) definition() (string, any, bool) {
	p := m.top()
	s := m.state
	key := ""
	if p.table != nil {
		key = p.table.selectedKey()
	}
	switch {
	case p.kind == pageApp:
		if a := s.apps[p.key]; a != nil {
			return "app " + p.key, a.info, true
		}
	case p.kind == pageTask:
		if r := s.tasks[p.key]; r != nil {
			return "task " + r.task.TaskID.Value, r.task, true
		}
	case p.kind == pageJob:
		if r := s.jobs[p.key]; r != nil {
			return "job " + p.key, r.job, true
		}
	case p.kind == pagePackage:
		if pkg := p.detail.pkg; pkg != nil {
			return "package " + pkg.Name + " " + pkg.Version, pkg, true
		}
	case key == "":
		return "", nil, false
	case p.view == viewApps:
		if a := s.apps[key]; a != nil {
			return "app " + key, a.info, true
		}
	case p.view == viewTasks:
		if r := s.tasks[key]; r != nil {
			return "task " + r.task.TaskID.Value, r.task, true
		}
	case p.view == viewAgents:
		if a := s.agents[key]; a != nil {
			return "agent " + a.AgentInfo.Hostname, a, true
		}
	case p.view == viewFrameworks:
		if f := s.frameworks[key]; f != nil {
			return "framework " + f.FrameworkInfo.Name, f, true
		}
	case p.view == viewDeployments:
		for _, d := range s.deployments {
			if d.ID == key {
				return "deployment " + shortID(key), d, true
			}
		}
	case p.view == viewJobs:
		if r := s.jobs[key]; r != nil {
			return "job " + key, r.job, true
		}
	case p.view == viewPackages:
		if rec := s.installation(key); rec != nil {
			return "package " + rec.name + " at " + rec.appID, rec.info, true
		}
	case p.view == viewCatalog:
		for _, r := range s.catalog {
			if r.Name == key {
				return "package " + r.Name, r, true
			}
		}
	case p.view == viewEvents:
		for _, ev := range s.events {
			if eventKey(ev.seq) == key {
				return fmt.Sprintf("event %d", ev.seq), ev.raw, true
			}
		}
	case p.view == viewNodes:
		return m.nodeDefinition(key)
	}
	return "", nil, false
}

func (m *Model) nodeDefinition(key string) (string, any, bool) {
	kind, name, _ := strings.Cut(key, "/")
	if kind == "member" {
		for _, mem := range m.state.members {
			if mem.Name == name {
				return "node " + name, mem, true
			}
		}
	}
	if m.state.raft != nil {
		for _, srv := range m.state.raft.Servers {
			if srv.ID == name {
				return "master " + name, srv, true
			}
		}
	}
	return "", nil, false
}

// waitingReasons says why an app waits for offers, from the launch queue: the checks
// offers failed, most declined first, and the last failure.
func waitingReasons(q marathon.QueueItem) []string {
	var out []string
	summary := q.ProcessedOffersSummary
	if q.Delay != nil && q.Delay.TimeLeftSeconds > 0 && !q.Delay.Overdue {
		out = append(out, fmt.Sprintf("backing off after failures: next launch in %ds", q.Delay.TimeLeftSeconds))
	}
	steps := summary.RejectSummaryLastOffers
	if len(steps) == 0 {
		steps = summary.RejectSummaryLaunchAttempt
	}
	for _, s := range steps {
		if s.Declined > 0 {
			out = append(out, fmt.Sprintf("%s: %d of %d offers declined", reasonText(s.Reason), s.Declined, s.Processed))
		}
	}
	if len(out) == 0 && len(q.LastUnusedOffers) > 0 {
		last := q.LastUnusedOffers[len(q.LastUnusedOffers)-1]
		var reasons []string
		for _, r := range last.Reason {
			reasons = append(reasons, reasonText(r))
		}
		out = append(out, fmt.Sprintf("last offer (from %s): %s", last.Offer.Hostname, strings.Join(reasons, ", ")))
	}
	if len(out) == 0 && summary.ProcessedOffersCount == 0 {
		out = append(out, "no offers received yet")
	}
	if f := q.LastTaskFailure; f != nil {
		out = append(out, fmt.Sprintf("last failure: %s %s", shortState(api.TaskState(f.State)), f.Message))
	}
	return out
}

// reasonText says in words why an offer did not fit.
func reasonText(reason string) string {
	switch reason {
	case marathon.ReasonUnfulfilledRole:
		return "not the app's role"
	case marathon.ReasonUnfulfilledConstraint:
		return "constraints not met"
	case marathon.ReasonNoCorrespondingReservationFound:
		return "no reservation"
	case marathon.ReasonAgentMaintenance:
		return "agent in maintenance"
	case marathon.ReasonInsufficientCpus:
		return "not enough cpus"
	case marathon.ReasonInsufficientMemory:
		return "not enough memory"
	case marathon.ReasonInsufficientDisk:
		return "not enough disk"
	case marathon.ReasonInsufficientGpus:
		return "not enough gpus"
	case marathon.ReasonInsufficientPorts:
		return "not enough ports"
	case marathon.ReasonDeclinedScarceResources:
		return "would take scarce resources"
	}
	return reason
}
