package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/atoll/atoll/api/chronos"
)

// The screen: a header line (cluster, connection, spinner), a title line (where the user
// is: page, scope, filter, position), the page's body, a line of the page's keys and a
// status line (messages, questions, the command line).

// chromeLines is how many lines the header, title, keys and status lines take.
const chromeLines = 4

func (m *Model) bodyHeight() int { return max(1, m.height-chromeLines) }

// tableHeight is how many lines a page's table gets, header included.
func (m *Model) tableHeight(p *page) int {
	h := m.bodyHeight()
	switch p.kind {
	case pageApp:
		h -= len(m.appSummary(p.key)) + 1
	case pageJob:
		h -= len(m.jobSummary(p.key)) + 1
	case pageInstall:
		h -= len(m.installSummary(p)) + 1
	}
	return max(2, h)
}

// View draws the screen.
func (m *Model) View() string {
	p := m.top()
	lines := []string{m.headerLine(), m.titleLine(p)}
	body := m.body(p)
	bodyLines := strings.Split(body, "\n")
	h := m.bodyHeight()
	if len(bodyLines) > h {
		bodyLines = bodyLines[:h]
	}
	for len(bodyLines) < h {
		bodyLines = append(bodyLines, "")
	}
	lines = append(lines, bodyLines...)
	lines = append(lines, m.keysLine(p), m.statusLine())
	for i, l := range lines {
		if ansi.StringWidth(l) > m.width {
			l = ansi.Truncate(l, m.width, "…")
		}
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// headerLine names the cluster and says how the connection is.
func (m *Model) headerLine() string {
	s := m.state
	left := m.st.header.Render("atoll") + " " + m.cfg.Addr
	if leader := s.leader(); leader != "" {
		left += " · leader " + s.nodeName(leader)
	}
	if s.version != "" {
		left += " · " + s.version
	}
	if m.cfg.ReadOnly {
		left += " · " + m.st.tones[toneWarn].Render("read-only")
	}
	var right string
	c := m.conn[streamOperator]
	switch c.state {
	case connConnected:
		right = m.st.okText.Render("● connected")
	case connConnecting:
		right = "connecting…"
	default:
		right = m.st.errText.Render(fmt.Sprintf("reconnecting… (%d: %s)", c.attempt, errText(c.err)))
	}
	if mc := m.conn[streamMarathon]; c.state == connConnected && mc.state == connReconnecting {
		right = m.st.tones[toneWarn].Render("marathon reconnecting…") + " " + right
	}
	if m.active() {
		right = m.spinner.View() + " " + right
	}
	return spread(left, right, m.width)
}

// spread puts left and right on one line of width cells; when both do not fit, each
// gets at least half, cut.
func spread(left, right string, width int) string {
	lw, rw := ansi.StringWidth(left), ansi.StringWidth(right)
	if lw+1+rw > width {
		rw = min(rw, max(width/2, width-lw-1))
		right = ansi.Truncate(right, rw, "…")
		left = ansi.Truncate(left, max(0, width-rw-1), "…")
		lw = ansi.StringWidth(left)
	}
	return left + strings.Repeat(" ", max(1, width-lw-rw)) + right
}

// titleLine says where the user is.
func (m *Model) titleLine(p *page) string {
	var crumbs []string
	for _, q := range m.pages {
		crumbs = append(crumbs, m.pageTitle(q))
	}
	title := m.st.crumb.Render(strings.Join(crumbs, " › "))
	var extra []string
	if p.table != nil {
		extra = append(extra, p.table.position())
		if p.filter != "" {
			extra = append(extra, "/"+p.filter+"/")
		}
		if p.showEnded {
			extra = append(extra, "with ended")
		}
		if q := m.state.catalogQuery; p.view == viewCatalog && q != "" {
			extra = append(extra, fmt.Sprintf("search %q", q))
		}
	}
	if p.kind == pageLogs && p.logs != nil {
		extra = append(extra, p.logs.file)
		switch {
		case p.logs.done && p.logs.err != nil:
			extra = append(extra, m.st.errText.Render("stopped: "+p.logs.err.Error()))
		case p.logs.done:
			extra = append(extra, "ended")
		case p.logs.follow:
			extra = append(extra, "following")
		default:
			extra = append(extra, "paused (f follows)")
		}
	}
	if len(extra) == 0 {
		return title
	}
	return title + "  " + m.st.dim.Render(strings.Join(extra, " · "))
}

func (m *Model) pageTitle(p *page) string {
	switch p.kind {
	case pageOverview:
		return "overview"
	case pageTable:
		if l := p.scope.label(m.state); l != "" {
			return p.view.name + " of " + l
		}
		return p.view.name
	case pageApp:
		return "app " + p.key
	case pageTask:
		if r := m.state.tasks[p.key]; r != nil {
			return "task " + r.task.TaskID.Value
		}
		return "task"
	case pageJob:
		return "job " + p.key
	case pageLogs:
		return "logs"
	case pagePackage:
		return "package " + p.key
	case pageForm:
		return "install"
	case pageInstall:
		return "installed " + p.installed.PackageName
	}
	return p.title
}

// keysLine lists the keys of the page, as many as fit before help and back.
func (m *Model) keysLine(p *page) string {
	var parts []string
	add := func(key, what string) { parts = append(parts, m.st.key.Render(key)+" "+what) }
	for _, id := range m.pageActions(p) {
		info := actionInfos[id]
		if info.mutates && m.cfg.ReadOnly {
			continue
		}
		add(info.keys[0], shortHelp[id])
	}
	switch p.kind {
	case pageLogs:
		add("tab", "stdout/stderr")
		add("f", "follow")
	case pageOverview:
		add(":", "views")
	case pageForm:
		if p.form.stage == stageEdit {
			add("enter", "check & install")
			add("tab ↑↓", "move")
			add("space ←→", "toggle/choose")
		}
	}
	if p.table != nil {
		add("/", "filter")
		add("<>", "sort")
	}
	tail := m.st.key.Render("?") + " help  " + m.st.key.Render("q") + " quit"
	switch {
	case p.kind == pageForm:
		tail = m.st.key.Render("esc") + " cancel"
	case len(m.pages) > 1:
		tail = m.st.key.Render("?") + " help  " + m.st.key.Render("esc") + " back"
	}
	line := ""
	room := m.width - 1 - ansi.StringWidth(tail) - 2
	for _, part := range parts {
		if ansi.StringWidth(line)+ansi.StringWidth(part)+2 > room {
			break
		}
		line += part + "  "
	}
	return " " + line + tail
}

// shortHelp is what the keys line says of an action.
var shortHelp = map[actionID]string{
	actOpen: "open", actJSON: "json", actLogs: "logs", actShowEnded: "ended", actScale: "scale", actRestart: "restart",
	actSuspend: "suspend", actDestroy: "destroy", actKill: "kill", actRollback: "rollback", actStopDeployment: "stop",
	actRunJob: "run", actToggleJob: "on/off", actDeleteJob: "delete", actInstall: "install", actUninstall: "uninstall",
	actSearch: "search", actSwitch: "pkgs/catalog",
}

// statusLine is the command line, a question, or the last message.
func (m *Model) statusLine() string {
	switch m.mode {
	case modeCommand:
		word, rest, _ := strings.Cut(m.input.text(), " ")
		hint := ""
		if rest == "" {
			var names []string
			for _, c := range completions(commands, word) {
				names = append(names, c.name)
			}
			hint = strings.Join(names, " ")
		}
		return m.input.view(&m.st, hint)
	case modeFilter, modePrompt:
		return m.input.view(&m.st, "")
	case modeConfirm:
		var choices []string
		for _, c := range m.confirm.choices {
			choices = append(choices, m.st.key.Render(c.key)+" "+c.label)
		}
		return m.st.bold.Render(m.confirm.question) + "  " + strings.Join(choices, "  ")
	}
	if m.flash.text == "" {
		return ""
	}
	if m.flash.err {
		return m.st.errText.Render(m.flash.text)
	}
	return m.st.okText.Render(m.flash.text)
}

// body draws the page.
func (m *Model) body(p *page) string {
	h := m.bodyHeight()
	switch p.kind {
	case pageOverview:
		return m.overview(h)
	case pageTable:
		return p.table.render(m.width, h, &m.st, p.view.empty(m, p))
	case pageApp:
		summary := m.appSummary(p.key)
		return strings.Join(summary, "\n") + "\n\n" + p.table.render(m.width, m.tableHeight(p), &m.st, "no tasks")
	case pageJob:
		summary := m.jobSummary(p.key)
		return strings.Join(summary, "\n") + "\n\n" + p.table.render(m.width, m.tableHeight(p), &m.st, p.view.empty(m, p))
	case pageInstall:
		summary := m.installSummary(p)
		return strings.Join(summary, "\n") + "\n\n" + p.table.render(m.width, m.tableHeight(p), &m.st, "no apps yet")
	case pageForm:
		return m.formBody(p, h)
	case pagePackage:
		p.lines = m.packageLines(p)
		p.offset = max(0, min(p.offset, len(p.lines)-(h-1)))
		return strings.Join(p.lines[p.offset:min(len(p.lines), p.offset+h)], "\n")
	case pageTask:
		return strings.Join(m.taskDetail(p.key), "\n")
	case pageText:
		end := min(len(p.lines), p.offset+h)
		return strings.Join(p.lines[p.offset:end], "\n")
	case pageLogs:
		ls := p.logs
		lines := ls.all()
		if len(lines) == 0 {
			if ls.done {
				return m.st.dim.Render("no output")
			}
			return m.st.dim.Render("reading the task's " + ls.file + "…")
		}
		if ls.follow {
			ls.offset = max(0, len(lines)-h)
		}
		end := min(len(lines), ls.offset+h)
		return strings.Join(lines[ls.offset:end], "\n")
	}
	return ""
}

// overview draws the cluster at a glance in h lines: masters, agents with their
// allocation, frameworks, counts of apps, tasks and jobs, and the latest events.
func (m *Model) overview(h int) string {
	s, now, st := m.state, m.now(), &m.st
	label := func(l string) string { return st.bold.Render(fmt.Sprintf("%-11s", l)) }
	var lines []string

	var masters []string
	if s.raft != nil {
		for _, srv := range s.raft.Servers {
			masters = append(masters, s.nodeName(srv.ID)+" "+srv.State)
		}
	}
	lines = append(lines, label("MASTERS")+orDash(strings.Join(masters, " · ")))

	var fws []string
	ids := make([]string, 0, len(s.frameworks))
	for id := range s.frameworks {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(s.frameworkName(a), s.frameworkName(b)) })
	for _, id := range ids {
		f := s.frameworks[id]
		state := "active"
		if !f.Connected {
			state = "disconnected"
		}
		fws = append(fws, f.FrameworkInfo.Name+" "+state)
	}
	lines = append(lines, label("FRAMEWORKS")+orDash(strings.Join(fws, " · ")))

	appCounts := map[string]int{}
	for _, a := range s.apps {
		appCounts[s.appStatus(&a.info)]++
	}
	appLine := fmt.Sprintf("%d", len(s.apps))
	if s.marathon.missing {
		appLine = "- (no Marathon API)"
	}
	lines = append(lines, label("APPS")+appLine+counted(appCounts, []string{appRunning, appDeploying, appWaiting, appDelayed, appSuspended}))

	taskCounts := map[string]int{}
	live := 0
	for _, r := range s.tasks {
		taskCounts[shortState(r.task.State)]++
		if !r.task.State.Terminal() {
			live++
		}
	}
	lines = append(lines, label("TASKS")+fmt.Sprintf("%d live", live)+counted(taskCounts, []string{"RUNNING", "STAGING", "STARTING", "KILLING",
		"UNREACHABLE", "FINISHED", "FAILED", "KILLED", "LOST", "ERROR"}))

	jobCounts := map[string]int{}
	for _, r := range s.jobs {
		jobCounts[r.summary.State]++
		if r.summary.Status == chronos.StatusFailure {
			jobCounts["failing"]++
		}
		if r.job.Disabled {
			jobCounts["disabled"]++
		}
	}
	jobLine := fmt.Sprintf("%d", len(s.jobs))
	if s.chronos.missing {
		jobLine = "- (no Chronos API)"
	}
	lines = append(lines, label("JOBS")+jobLine+counted(jobCounts, []string{chronos.StateRunning, chronos.StateQueued, chronos.StateIdle, "failing", "disabled"}))
	lines = append(lines, "")

	// Agents, with bars as wide as the screen allows.
	used := s.allocated()
	agentIDs := make([]string, 0, len(s.agents))
	for id := range s.agents {
		agentIDs = append(agentIDs, id)
	}
	slices.SortFunc(agentIDs, func(a, b string) int { return cmp.Compare(s.agentHost(a)+a, s.agentHost(b)+b) })
	hostWidth := 12
	for _, id := range agentIDs {
		hostWidth = max(hostWidth, min(30, ansi.StringWidth(s.agentHost(id))))
	}
	barWidth := max(6, (m.width-2-hostWidth-3*6)/3)
	header := "  " + fit("", hostWidth, false)
	for _, r := range []string{"CPUS", "MEM", "DISK"} {
		header += "  " + fit(r, barWidth+4, false)
	}
	lines = append(lines, label("AGENTS")+fmt.Sprintf("%d", len(s.agents)), st.colTitle.Render(strings.TrimRight(header, " ")))
	// Events get what the agents leave, at least a few lines.
	room := max(1, h-len(lines)-2-min(6, len(s.events)+1))
	for i, id := range agentIDs {
		if i == room-1 && len(agentIDs) > room {
			lines = append(lines, st.dim.Render(fmt.Sprintf("  … and %d more (:agents)", len(agentIDs)-i)))
			break
		}
		a := s.agents[id]
		u := used[id]
		if u == nil {
			u = &usage{}
		}
		total := a.TotalResources
		if len(total) == 0 {
			total = a.AgentInfo.Resources
		}
		line := "  " + fit(s.agentHost(id), hostWidth, false)
		for _, r := range []struct{ used, total float64 }{{u.cpus, scalar(total, "cpus")}, {u.mem, scalar(total, "mem")}, {u.disk, scalar(total, "disk")}} {
			line += "  " + bar(r.used, r.total, barWidth) + fit(percent(r.used, r.total), 4, true)
		}
		tn := toneNormal
		if !a.Active {
			tn = toneWarn
		}
		lines = append(lines, st.tones[tn].Render(line))
	}
	lines = append(lines, "", label("EVENTS")+st.dim.Render("latest first (:events for all)"))
	for i := len(s.events) - 1; i >= 0 && len(lines) < h; i-- {
		ev := s.events[i]
		lines = append(lines, fmt.Sprintf("  %4s  %-8s  %-22s %s %s", age(now, ev.at), ev.source, ev.typ, ev.subject, st.dim.Render(ev.detail)))
	}
	return strings.Join(lines, "\n")
}

// counted lists the non-zero counts in order: "  running 3 · waiting 1".
func counted(counts map[string]int, order []string) string {
	var parts []string
	for _, k := range order {
		if n := counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(k), n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "  " + strings.Join(parts, " · ")
}
