package tui

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
)

// viewRuns is a job page's table: the job's runs, from its stat.
var viewRuns = &viewDef{
	name: "runs",
	cols: []column{{title: "TASK", min: 12, max: 60}, {title: "ATTEMPT", min: 3, numeric: true, drop: 3}, {title: "STATUS", min: 7},
		{title: "STATE", min: 7, drop: 2}, {title: "HOST", min: 6, max: 30, drop: 4}, {title: "SCHEDULED", min: 5, numeric: true},
		{title: "SECONDS", min: 7, numeric: true, drop: 1}},
	sortCol: 5,
	deps:    []kind{kindJobs},
	rows: func(m *Model, p *page) []row {
		if p.stat == nil {
			return nil
		}
		now := m.now()
		rows := make([]row, 0, len(p.stat.History))
		for _, r := range p.stat.History {
			scheduled := parseTime(r.ScheduledTime)
			tn := toneNormal
			switch r.Status {
			case "failure":
				tn = toneBad
			case "success":
				tn = toneGood
			case "running", "launched", "queued":
				tn = toneWarn
			}
			secs := "-"
			if r.DurationSeconds > 0 {
				secs = strconv.FormatFloat(r.DurationSeconds, 'f', 1, 64)
			}
			rows = append(rows, row{key: r.TaskID, tone: tn,
				cells: []string{r.TaskID, strconv.Itoa(r.Attempt), r.Status, orDash(shortState(api.TaskState(r.TaskState))), orDash(r.Host), age(now, scheduled), secs},
				nums:  []float64{0, float64(r.Attempt), 0, 0, 0, ageSeconds(now, scheduled), r.DurationSeconds}})
		}
		return rows
	},
	empty: func(m *Model, p *page) string {
		switch {
		case p.statErr != nil:
			return "reading the runs failed: " + p.statErr.Error()
		case p.stat == nil:
			return "reading the runs…"
		}
		return "no runs yet (r runs the job now)"
	},
	actions: []actionID{actOpen, actLogs},
}

func newAppPage(id string) *page {
	p := newTablePage(viewTasks, scope{app: id})
	p.kind, p.key = pageApp, id
	return p
}

func newJobPage(name string) *page {
	p := newTablePage(viewRuns, scope{job: name})
	p.kind, p.key = pageJob, name
	return p
}

// pageActions are the actions the keys of a page do.
func (m *Model) pageActions(p *page) []actionID {
	switch p.kind {
	case pageTable:
		return p.view.actions
	case pageApp:
		return []actionID{actOpen, actJSON, actLogs, actKill, actShowEnded, actScale, actRestart, actSuspend, actDestroy}
	case pageTask:
		return []actionID{actJSON, actLogs, actKill}
	case pageJob:
		return []actionID{actOpen, actLogs, actJSON, actRunJob, actToggleJob, actDeleteJob}
	case pagePackage:
		return []actionID{actInstall, actUninstall, actJSON}
	case pageInstall:
		return []actionID{actOpen, actJSON}
	}
	return nil
}

// appSummary is the lines above an app page's tasks: its definition in short, its
// deployments, and why it waits.
func (m *Model) appSummary(id string) []string {
	s := m.state
	a := s.apps[id]
	if a == nil {
		if s.marathon.missing {
			return []string{s.marathon.why}
		}
		return []string{"app " + id + " is gone"}
	}
	app := &a.info
	c := s.counts(id)
	what := "cmd: " + orDash(strings.Join(strings.Fields(app.Cmd), " "))
	if app.Container != nil && app.Container.Docker != nil && app.Container.Docker.Image != "" {
		what = "image: " + app.Container.Docker.Image
	}
	lines := []string{
		fmt.Sprintf("status: %s · instances %d · running %d · staged %d · healthy %d · unhealthy %d",
			s.appStatus(app), app.Instances, c.running, c.staged, c.healthy, c.unhealthy),
		fmt.Sprintf("cpus %s · mem %s · disk %s · version %s", cpus(app.Cpus), megabytes(app.Mem), megabytes(app.Disk), age(m.now(), parseTime(app.Version))+" ago"),
		what,
	}
	for _, d := range s.appDeployments(id) {
		var actions []string
		for _, act := range d.CurrentActions {
			actions = append(actions, act.Action)
		}
		lines = append(lines, fmt.Sprintf("deployment %s: step %d/%d %s", shortID(d.ID), d.CurrentStep, d.TotalSteps, strings.Join(actions, ", ")))
	}
	if q, ok := s.queue[id]; ok && q.Count > 0 {
		lines = append(lines, fmt.Sprintf("waiting to launch %s:", plural(q.Count, "instance")))
		for _, reason := range waitingReasons(q) {
			lines = append(lines, "  "+reason)
		}
	}
	if f := app.LastTaskFailure; f != nil {
		lines = append(lines, fmt.Sprintf("last task failure %s ago: %s %s", age(m.now(), parseTime(f.Timestamp)), shortState(api.TaskState(f.State)), f.Message))
	}
	return lines
}

// jobSummary is the lines above a job page's runs.
func (m *Model) jobSummary(name string) []string {
	r := m.state.jobs[name]
	if r == nil {
		return []string{"job " + name + " is gone"}
	}
	j := &r.job
	sched := cmp.Or(j.Schedule, j.Cron)
	if len(j.Parents) > 0 {
		sched = "after " + strings.Join(j.Parents, ", ")
	}
	enabled := "enabled"
	if j.Disabled {
		enabled = "disabled"
	}
	return []string{
		fmt.Sprintf("%s · %s · last %s · schedule %s", enabled, r.summary.State, r.summary.Status, orDash(sched)),
		fmt.Sprintf("successes %d · errors %d (%d since the last success) · last success %s · last error %s",
			j.SuccessCount, j.ErrorCount, j.ErrorsSinceLastSuccess, orDash(j.LastSuccess), orDash(j.LastError)),
		"command: " + strings.Join(strings.Fields(j.Command), " "),
	}
}

// taskDetail is a task page's text.
func (m *Model) taskDetail(key string) []string {
	s := m.state
	r := s.tasks[key]
	if r == nil {
		return []string{"the master no longer knows this task"}
	}
	t := &r.task
	now := m.now()
	health := "not checked"
	if r.healthy != nil {
		health = map[bool]string{true: "healthy", false: "unhealthy"}[*r.healthy]
	}
	lines := []string{
		"id         " + t.TaskID.Value,
		"name       " + orDash(t.Name),
		"state      " + shortState(t.State) + " · " + health,
		"agent      " + s.agentHost(t.AgentID.Value) + " (" + t.AgentID.Value + ")",
		"framework  " + s.frameworkName(t.FrameworkID.Value),
	}
	switch {
	case r.app != "":
		lines = append(lines, "app        "+r.app)
	case r.job != "":
		lines = append(lines, "job        "+r.job)
	}
	lines = append(lines,
		fmt.Sprintf("resources  cpus %s · mem %s · disk %s", cpus(scalar(t.Resources, "cpus")), megabytes(scalar(t.Resources, "mem")), megabytes(scalar(t.Resources, "disk"))),
		"started    "+age(now, r.started)+" ago",
		"",
		"STATUS UPDATES (newest first)")
	for i := len(t.Statuses) - 1; i >= 0; i-- {
		st := t.Statuses[i]
		line := fmt.Sprintf("  %-5s %-10s", age(now, floatTime(st.Timestamp)), shortState(st.State))
		if st.Reason != "" {
			line += " " + string(st.Reason)
		}
		if st.Message != "" {
			line += " " + st.Message
		}
		lines = append(lines, line)
	}
	return lines
}

// logState is a logs page's follower of a task's output.
type logState struct {
	id     int
	taskID string
	file   string
	lines  []string
	// partial is the last line, not yet ended.
	partial string
	// follow keeps the end in view; offset is the first line shown otherwise.
	follow bool
	offset int
	done   bool
	err    error
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan tea.Msg
}

// logChunkMsg is output of follower id; end is set when the follower stopped after it.
type logChunkMsg struct {
	id   int
	text string
	end  *logEndMsg
}

// logEndMsg says follower id stopped, and why.
type logEndMsg struct {
	id  int
	err error
}

// logTail is how much of a file the log view starts with: enough for a screenful of
// history, little enough to arrive at once over a slow link.
const logTail = 256 << 10

// openLogs opens a logs page following a task's file.
func (m *Model) openLogs(key, file string) tea.Cmd {
	r := m.state.tasks[key]
	if r == nil {
		m.flash = flash{text: "the task is gone", err: true}
		return nil
	}
	p := &page{kind: pageLogs, key: key, title: r.task.TaskID.Value}
	m.push(p)
	return m.startLogs(p, file)
}

// startLogs starts a follower of the task's file on a logs page, ending its last one.
func (m *Model) startLogs(p *page, file string) tea.Cmd {
	if p.logs != nil {
		p.logs.stop()
	}
	m.logSeq++
	ctx, cancel := context.WithCancel(m.ctx)
	ls := &logState{id: m.logSeq, taskID: p.title, file: file, follow: true, ctx: ctx, cancel: cancel, ch: make(chan tea.Msg, 64)}
	p.logs = ls
	client := m.cfg.API
	go func() {
		loc, err := client.LocateTaskLog(ctx, ls.taskID)
		if err == nil {
			err = client.CopyTaskLog(ctx, loc, chanWriter{ctx: ctx, id: ls.id, ch: ls.ch}, api.TaskLogOptions{File: file, Follow: true, Tail: logTail})
		}
		select {
		case ls.ch <- logEndMsg{id: ls.id, err: err}:
		case <-ctx.Done():
		}
	}()
	return ls.wait()
}

func (ls *logState) stop() { ls.cancel() }

// wait delivers the follower's next output, joined with what else is ready, and its end
// when that follows.
func (ls *logState) wait() tea.Cmd {
	ch, ctx, id := ls.ch, ls.ctx, ls.id
	return func() tea.Msg {
		var b strings.Builder
		for b.Len() < 1<<20 {
			var next tea.Msg
			if b.Len() == 0 {
				select {
				case next = <-ch:
				case <-ctx.Done():
					return nil
				}
			} else {
				select {
				case next = <-ch:
				default:
					return logChunkMsg{id: id, text: b.String()}
				}
			}
			switch msg := next.(type) {
			case logChunkMsg:
				b.WriteString(msg.text)
			case logEndMsg:
				return logChunkMsg{id: id, text: b.String(), end: &msg}
			}
		}
		return logChunkMsg{id: id, text: b.String()}
	}
}

// chanWriter hands what a follower writes to the UI.
type chanWriter struct {
	ctx context.Context
	id  int
	ch  chan tea.Msg
}

func (w chanWriter) Write(p []byte) (int, error) {
	select {
	case w.ch <- logChunkMsg{id: w.id, text: string(p)}:
		return len(p), nil
	case <-w.ctx.Done():
		return 0, w.ctx.Err()
	}
}

// logsPage finds the page whose follower is id.
func (m *Model) logsPage(id int) *page {
	for _, p := range m.pages {
		if p.logs != nil && p.logs.id == id {
			return p
		}
	}
	return nil
}

func (m *Model) logChunk(msg logChunkMsg) tea.Cmd {
	p := m.logsPage(msg.id)
	if p == nil {
		return nil
	}
	ls := p.logs
	text := ls.partial + strings.ReplaceAll(msg.text, "\r\n", "\n")
	parts := strings.Split(text, "\n")
	ls.partial = parts[len(parts)-1]
	for _, line := range parts[:len(parts)-1] {
		ls.lines = append(ls.lines, expandTabs(line))
	}
	if over := len(ls.lines) - m.cfg.LogLines; over > 0 {
		ls.lines = ls.lines[over:]
		ls.offset = max(0, ls.offset-over)
	}
	if msg.end != nil {
		ls.done, ls.err = true, msg.end.err
		return nil
	}
	return ls.wait()
}

// expandTabs turns tabs into spaces, so that widths on screen are what they seem.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		if r == '\t' {
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
			continue
		}
		b.WriteRune(r)
		col++
	}
	return b.String()
}

// all is what a logs page shows: the ended lines and the one being written.
func (ls *logState) all() []string {
	if ls.partial == "" {
		return ls.lines
	}
	return append(ls.lines[:len(ls.lines):len(ls.lines)], ls.partial)
}
