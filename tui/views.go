package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
)

// scope narrows the task view to one app, agent, framework or job.
type scope struct {
	app, agent, framework, job string
	// group narrows the app view to an app or group id and the apps in it.
	group string
}

func (sc scope) label(s *clusterState) string {
	switch {
	case sc.app != "":
		return "app " + sc.app
	case sc.agent != "":
		return "agent " + s.agentHost(sc.agent)
	case sc.framework != "":
		return "framework " + s.frameworkName(sc.framework)
	case sc.job != "":
		return "job " + sc.job
	case sc.group != "":
		return "group " + sc.group
	}
	return ""
}

// viewDef is one of the resource views: its command, columns, and how its rows are made
// from the cluster state.
type viewDef struct {
	name    string
	aliases []string
	help    string
	cols    []column
	// sortCol and desc are the initial order.
	sortCol int
	desc    bool
	// deps are the kinds of state the rows show: they are rebuilt when one changes.
	deps []kind
	rows func(m *Model, p *page) []row
	// empty says why there is no row.
	empty func(m *Model, p *page) string
	// actions are the view's keys beyond the table's own.
	actions []actionID
}

// Views by name.
var (
	viewNodes, viewAgents, viewFrameworks, viewApps, viewTasks, viewDeployments, viewJobs, viewPackages, viewCatalog, viewEvents *viewDef
	views                                                                                                                        []*viewDef
	// commands are the command line's commands.
	commands []command
)

func init() {
	viewNodes = &viewDef{
		name: "nodes", aliases: []string{"no", "masters"}, help: "masters and other nodes: Raft state, gossip membership",
		cols: []column{{title: "NAME", min: 8, max: 40}, {title: "ADDRESS", min: 9, max: 40, drop: 2}, {title: "ROLES", min: 6, max: 20},
			{title: "RAFT", min: 6}, {title: "VOTER", min: 5, drop: 3}, {title: "GOSSIP", min: 6, drop: 1}, {title: "VERSION", min: 7, max: 20, drop: 4}},
		deps: []kind{kindNodes}, rows: nodeRows, empty: func(*Model, *page) string { return "no nodes known yet" },
	}
	viewAgents = &viewDef{
		name: "agents", aliases: []string{"ag", "slaves"}, help: "agents and what is allocated of their resources",
		cols: []column{{title: "HOST", min: 8, max: 40}, {title: "ID", min: 8, max: 44, drop: 3}, {title: "CPUS", min: 7, numeric: true},
			{title: "MEM", min: 9, numeric: true}, {title: "DISK", min: 9, numeric: true, drop: 4}, {title: "TASKS", min: 5, numeric: true},
			{title: "STATE", min: 6}, {title: "VERSION", min: 7, max: 20, drop: 2}, {title: "AGE", min: 4, numeric: true, drop: 1}},
		deps: []kind{kindAgents, kindTasks}, rows: agentRows, empty: func(*Model, *page) string { return "no agents registered" },
		actions: []actionID{actOpen, actJSON},
	}
	viewFrameworks = &viewDef{
		name: "frameworks", aliases: []string{"fw"}, help: "frameworks and what they hold",
		cols: []column{{title: "NAME", min: 8, max: 30}, {title: "ID", min: 8, max: 44, drop: 3}, {title: "STATE", min: 8},
			{title: "ROLE", min: 4, max: 20, drop: 2}, {title: "TASKS", min: 5, numeric: true}, {title: "CPUS", min: 4, numeric: true},
			{title: "MEM", min: 5, numeric: true}, {title: "AGE", min: 4, numeric: true, drop: 1}},
		deps: []kind{kindFrameworks, kindTasks}, rows: frameworkRows, empty: func(*Model, *page) string { return "no frameworks registered" },
		actions: []actionID{actOpen, actJSON},
	}
	viewApps = &viewDef{
		name: "apps", aliases: []string{"app", "marathon"}, help: "Marathon apps",
		cols: []column{{title: "ID", min: 10, max: 50}, {title: "TASKS", min: 5, numeric: true}, {title: "HEALTH", min: 6, drop: 3},
			{title: "CPUS", min: 4, numeric: true, drop: 4}, {title: "MEM", min: 5, numeric: true, drop: 5}, {title: "STATUS", min: 9},
			{title: "CMD/IMAGE", min: 9, max: 60, drop: 6}, {title: "VERSION", min: 7, numeric: true, drop: 2}},
		deps: []kind{kindApps, kindTasks, kindDeployments, kindQueue}, rows: appRows,
		empty: func(m *Model, _ *page) string {
			return cmp.Or(m.marathonMissing(), "no apps: deploy one with atoll app add")
		},
		actions: []actionID{actOpen, actJSON, actScale, actRestart, actSuspend, actDestroy},
	}
	viewTasks = &viewDef{
		name: "tasks", aliases: []string{"task", "ts"}, help: "tasks of every framework",
		cols: []column{{title: "ID", min: 12, max: 70}, {title: "OWNER", min: 8, max: 40, drop: 3}, {title: "STATE", min: 7},
			{title: "HOST", min: 6, max: 30}, {title: "HEALTH", min: 6, drop: 2}, {title: "FRAMEWORK", min: 9, max: 20, drop: 4},
			{title: "AGE", min: 4, numeric: true, drop: 1}},
		deps: []kind{kindTasks, kindAgents, kindFrameworks}, rows: taskRows,
		empty: func(m *Model, p *page) string {
			if p.showEnded {
				return "no tasks"
			}
			return "no live tasks (a shows ended ones)"
		},
		actions: []actionID{actOpen, actJSON, actLogs, actKill, actShowEnded},
	}
	viewDeployments = &viewDef{
		name: "deployments", aliases: []string{"deploy", "dp"}, help: "Marathon deployments in progress",
		cols: []column{{title: "ID", min: 8, max: 40}, {title: "APPS", min: 6, max: 50}, {title: "ACTIONS", min: 7, max: 60, drop: 2},
			{title: "STEP", min: 4}, {title: "VERSION", min: 7, numeric: true, drop: 1}},
		deps: []kind{kindDeployments}, rows: deploymentRows,
		empty:   func(m *Model, _ *page) string { return cmp.Or(m.marathonMissing(), "no deployments in progress") },
		actions: []actionID{actJSON, actRollback, actStopDeployment},
	}
	viewJobs = &viewDef{
		name: "jobs", aliases: []string{"job", "chronos"}, help: "Chronos jobs",
		cols: []column{{title: "NAME", min: 8, max: 40}, {title: "SCHEDULE", min: 8, max: 40, drop: 3}, {title: "STATE", min: 7},
			{title: "LAST", min: 7}, {title: "ENABLED", min: 7}, {title: "OK", min: 3, numeric: true, drop: 2},
			{title: "ERRORS", min: 6, numeric: true, drop: 2}, {title: "LAST SUCCESS", min: 5, numeric: true, drop: 1}},
		deps: []kind{kindJobs}, rows: jobRows,
		empty: func(m *Model, _ *page) string {
			if s := m.state.chronos; s.missing || s.why != "" {
				return s.why
			}
			if !m.state.chronos.known {
				return "reading the jobs…"
			}
			return "no jobs: add one with atoll job add"
		},
		actions: []actionID{actOpen, actJSON, actRunJob, actToggleJob, actDeleteJob},
	}
	viewPackages = &viewDef{
		name: "pkgs", aliases: []string{"packages", "pkg"}, help: "installed packages and how their apps do (tab: the catalog)",
		cols: []column{{title: "NAME", min: 8, max: 30}, {title: "VERSION", min: 7, max: 20, drop: 3}, {title: "APP", min: 6, max: 50},
			{title: "FRAMEWORK", min: 5, drop: 4}, {title: "TASKS", min: 5, numeric: true}, {title: "HEALTH", min: 6, drop: 2},
			{title: "STATUS", min: 9, drop: 1}},
		deps: []kind{kindPackages, kindApps, kindTasks, kindDeployments, kindQueue}, rows: packageRows,
		empty: func(m *Model, _ *page) string {
			if s := m.state.packagesSrc; s.missing || s.why != "" {
				return s.why
			}
			if !m.state.packagesSrc.known {
				return "reading the packages…"
			}
			return "no packages installed (tab: the catalog)"
		},
		actions: []actionID{actOpen, actJSON, actUninstall, actSwitch},
	}
	viewCatalog = &viewDef{
		name: "catalog", aliases: []string{"universe", "search"}, help: "packages to install; :catalog WORD asks the master's repositories",
		cols: []column{{title: "NAME", min: 8, max: 30}, {title: "VERSION", min: 7, max: 20, drop: 3}, {title: "INSTALLED", min: 5, numeric: true, drop: 2},
			{title: "FRAMEWORK", min: 5, drop: 4}, {title: "DESCRIPTION", min: 11, max: 80, drop: 1}},
		deps: []kind{kindCatalog, kindPackages}, rows: catalogRows,
		empty: func(m *Model, _ *page) string {
			s := m.state.catalogSrc
			switch {
			case s.missing || s.why != "":
				return s.why
			case !s.known:
				return "reading the catalog…"
			case m.state.catalogQuery != "":
				return fmt.Sprintf("no package matches %q (s searches again)", m.state.catalogQuery)
			}
			return "the catalog is empty: add a repository with atoll pkg repo add"
		},
		actions: []actionID{actOpen, actJSON, actInstall, actUninstall, actSearch, actSwitch},
	}
	viewEvents = &viewDef{
		name: "events", aliases: []string{"ev"}, help: "recent events of both streams",
		cols: []column{{title: "AGE", min: 4, numeric: true}, {title: "SOURCE", min: 6, drop: 2},
			{title: "TYPE", min: 10, max: 30}, {title: "SUBJECT", min: 10, max: 60}, {title: "DETAIL", min: 6, max: 80, drop: 1}},
		deps: []kind{kindEvents}, rows: eventRows,
		empty:   func(*Model, *page) string { return "no events since the TUI started" },
		actions: []actionID{actJSON},
	}
	views = []*viewDef{viewNodes, viewAgents, viewFrameworks, viewApps, viewTasks, viewDeployments, viewJobs, viewPackages, viewCatalog, viewEvents}
	commands = commandList()
}

func nodeRows(m *Model, _ *page) []row {
	s := m.state
	byID := map[string]api.RaftServer{}
	if s.raft != nil {
		for _, srv := range s.raft.Servers {
			byID[srv.ID] = srv
		}
	}
	var rows []row
	seen := map[string]bool{}
	for _, mem := range s.members {
		id := cmp.Or(mem.Tags[api.MemberTagID], mem.Name)
		srv, isServer := byID[id]
		seen[id] = isServer
		raftState, voter := "-", "-"
		if isServer {
			raftState, voter = srv.State, strconv.FormatBool(srv.Suffrage == api.RaftVoter)
		}
		r := row{key: "member/" + mem.Name, cells: []string{mem.Name, fmt.Sprintf("%s:%d", mem.Addr, mem.Port), orDash(mem.Tags[api.MemberTagRole]),
			raftState, voter, mem.Status, orDash(mem.Tags[api.MemberTagVersion])}}
		r.tone = nodeTone(raftState, mem.Status)
		rows = append(rows, r)
	}
	if s.raft != nil {
		for _, srv := range s.raft.Servers {
			if seen[srv.ID] {
				continue
			}
			rows = append(rows, row{key: "raft/" + srv.ID, cells: []string{srv.ID, srv.Address, "master", srv.State,
				strconv.FormatBool(srv.Suffrage == api.RaftVoter), "-", "-"}, tone: nodeTone(srv.State, "alive")})
		}
	}
	return rows
}

func nodeTone(raftState, gossip string) tone {
	switch {
	case raftState == api.RaftUnreachable || raftState == api.RaftUnknown || (gossip != "alive" && gossip != "-"):
		return toneBad
	case raftState == api.RaftCandidate || gossip == "leaving":
		return toneWarn
	}
	return toneNormal
}

// allocated sums the cpus, mem and disk of the live tasks on each agent, and counts them.
func (s *clusterState) allocated() map[string]*usage {
	out := map[string]*usage{}
	for _, r := range s.tasks {
		if r.task.State.Terminal() {
			continue
		}
		u := out[r.task.AgentID.Value]
		if u == nil {
			u = &usage{}
			out[r.task.AgentID.Value] = u
		}
		u.add(r.task.Resources)
	}
	return out
}

// usage is resources in use, and the tasks using them.
type usage struct {
	cpus, mem, disk float64
	tasks           int
}

func (u *usage) add(res []api.Resource) {
	u.cpus += scalar(res, "cpus")
	u.mem += scalar(res, "mem")
	u.disk += scalar(res, "disk")
	u.tasks++
}

func agentRows(m *Model, _ *page) []row {
	s, now := m.state, m.now()
	used := s.allocated()
	rows := make([]row, 0, len(s.agents))
	for id, a := range s.agents {
		u := used[id]
		if u == nil {
			u = &usage{}
		}
		total := a.TotalResources
		if len(total) == 0 {
			total = a.AgentInfo.Resources
		}
		tc, tm, td := scalar(total, "cpus"), scalar(total, "mem"), scalar(total, "disk")
		state, tn := "active", toneNormal
		if !a.Active {
			state, tn = "inactive", toneWarn
		}
		registered := timeInfo(a.RegisteredTime)
		rows = append(rows, row{key: id, tone: tn,
			cells: []string{a.AgentInfo.Hostname, id, cpus(u.cpus) + "/" + cpus(tc), megabytes(u.mem) + "/" + megabytes(tm),
				megabytes(u.disk) + "/" + megabytes(td), strconv.Itoa(u.tasks), state, orDash(a.Version), age(now, registered)},
			nums: []float64{0, 0, ratio(u.cpus, tc), ratio(u.mem, tm), ratio(u.disk, td), float64(u.tasks), 0, 0, ageSeconds(now, registered)}})
	}
	return rows
}

func ratio(used, total float64) float64 {
	if total <= 0 {
		return 0
	}
	return used / total
}

// timeInfo is a TimeInfo as a time.
func timeInfo(t *api.TimeInfo) time.Time {
	if t == nil || t.Nanoseconds == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.Nanoseconds)
}

func frameworkRows(m *Model, _ *page) []row {
	s, now := m.state, m.now()
	type held struct {
		tasks     int
		cpus, mem float64
	}
	byFramework := map[string]*held{}
	for _, r := range s.tasks {
		if r.task.State.Terminal() {
			continue
		}
		h := byFramework[r.task.FrameworkID.Value]
		if h == nil {
			h = &held{}
			byFramework[r.task.FrameworkID.Value] = h
		}
		h.tasks++
		h.cpus += scalar(r.task.Resources, "cpus")
		h.mem += scalar(r.task.Resources, "mem")
	}
	rows := make([]row, 0, len(s.frameworks))
	for id, f := range s.frameworks {
		h := byFramework[id]
		if h == nil {
			h = &held{}
		}
		state, tn := "active", toneNormal
		switch {
		case !f.Connected:
			state, tn = "disconnected", toneWarn
		case !f.Active:
			state, tn = "inactive", toneWarn
		}
		role := cmp.Or(f.FrameworkInfo.Role, strings.Join(f.FrameworkInfo.Roles, ","), "*")
		registered := timeInfo(f.RegisteredTime)
		rows = append(rows, row{key: id, tone: tn,
			cells: []string{f.FrameworkInfo.Name, id, state, role, strconv.Itoa(h.tasks), cpus(h.cpus), megabytes(h.mem), age(now, registered)},
			nums:  []float64{0, 0, 0, 0, float64(h.tasks), h.cpus, h.mem, ageSeconds(now, registered)}})
	}
	return rows
}

func appRows(m *Model, p *page) []row {
	s, now := m.state, m.now()
	rows := make([]row, 0, len(s.apps))
	for id, a := range s.apps {
		if g := p.scope.group; g != "" && !underID(id, g) {
			continue
		}
		app := &a.info
		c := s.counts(id)
		health := "-"
		if len(app.HealthChecks) > 0 {
			health = fmt.Sprintf("%d/%d", c.healthy, c.running)
		}
		status := s.appStatus(app)
		tn := toneNormal
		switch {
		case status == appWaiting || status == appDelayed:
			tn = toneBad
		case status == appDeploying || c.unhealthy > 0:
			tn = toneWarn
		case status == appSuspended:
			tn = toneDim
		}
		what := app.Cmd
		if app.Container != nil && app.Container.Docker != nil && app.Container.Docker.Image != "" {
			what = app.Container.Docker.Image
		}
		version := parseTime(app.Version)
		rows = append(rows, row{key: id, tone: tn,
			cells: []string{id, fmt.Sprintf("%d/%d", c.running, app.Instances), health, cpus(app.Cpus), megabytes(app.Mem), status,
				orDash(strings.Join(strings.Fields(what), " ")), age(now, version)},
			nums: []float64{0, float64(c.running), 0, app.Cpus, app.Mem, 0, 0, ageSeconds(now, version)}})
	}
	return rows
}

func taskRows(m *Model, p *page) []row {
	s, now := m.state, m.now()
	sc := p.scope
	source := s.tasks
	if sc.app != "" {
		source = s.appTasks[sc.app]
	}
	rows := make([]row, 0, len(source))
	for key, r := range source {
		t := &r.task
		switch {
		case !p.showEnded && t.State.Terminal():
			continue
		case sc.agent != "" && t.AgentID.Value != sc.agent,
			sc.framework != "" && t.FrameworkID.Value != sc.framework,
			sc.job != "" && r.job != sc.job:
			continue
		}
		owner := cmp.Or(r.app, r.job, t.Name)
		health := "-"
		if r.healthy != nil {
			health = map[bool]string{true: "healthy", false: "sick"}[*r.healthy]
		}
		rows = append(rows, row{key: key, tone: taskTone(t.State, r.healthy),
			cells: []string{t.TaskID.Value, owner, shortState(t.State), s.agentHost(t.AgentID.Value), health,
				s.frameworkName(t.FrameworkID.Value), age(now, r.started)},
			nums: []float64{0, 0, 0, 0, 0, 0, ageSeconds(now, r.started)}})
	}
	return rows
}

func taskTone(st api.TaskState, healthy *bool) tone {
	switch st {
	case api.TaskRunning:
		if healthy != nil && !*healthy {
			return toneWarn
		}
		return toneGood
	case api.TaskStaging, api.TaskStarting, api.TaskKilling, api.TaskUnreachable:
		return toneWarn
	case api.TaskFailed, api.TaskError, api.TaskLost, api.TaskDropped, api.TaskGone, api.TaskGoneByOperator, api.TaskUnknown:
		return toneBad
	}
	return toneDim
}

func deploymentRows(m *Model, _ *page) []row {
	s, now := m.state, m.now()
	rows := make([]row, 0, len(s.deployments))
	for _, d := range s.deployments {
		var actions []string
		for _, a := range d.CurrentActions {
			actions = append(actions, strings.TrimSuffix(a.Action, "Application")+" "+cmp.Or(a.App, a.Pod))
		}
		version := parseTime(d.Version)
		rows = append(rows, row{key: d.ID, tone: toneWarn,
			cells: []string{d.ID, strings.Join(d.AffectedApps, " "), orDash(strings.Join(actions, ", ")),
				fmt.Sprintf("%d/%d", d.CurrentStep, d.TotalSteps), age(now, version)},
			nums: []float64{0, 0, 0, 0, ageSeconds(now, version)}})
	}
	return rows
}

func jobRows(m *Model, _ *page) []row {
	s, now := m.state, m.now()
	rows := make([]row, 0, len(s.jobs))
	for name, r := range s.jobs {
		j := &r.job
		sched := cmp.Or(j.Schedule, j.Cron)
		if sched == "" && len(j.Parents) > 0 {
			sched = "after " + strings.Join(j.Parents, ",")
		}
		tn := toneNormal
		switch {
		case j.Disabled:
			tn = toneDim
		case r.summary.Status == chronos.StatusFailure:
			tn = toneBad
		case r.summary.State == chronos.StateRunning || r.summary.State == chronos.StateQueued:
			tn = toneWarn
		}
		last := parseTime(j.LastSuccess)
		rows = append(rows, row{key: name, tone: tn,
			cells: []string{name, orDash(sched), r.summary.State, r.summary.Status, strconv.FormatBool(!j.Disabled),
				strconv.FormatInt(j.SuccessCount, 10), strconv.FormatInt(j.ErrorCount, 10), age(now, last)},
			nums: []float64{0, 0, 0, 0, 0, float64(j.SuccessCount), float64(j.ErrorCount), ageSeconds(now, last)}})
	}
	return rows
}

func eventRows(m *Model, _ *page) []row {
	s, now := m.state, m.now()
	rows := make([]row, 0, len(s.events))
	for _, ev := range s.events {
		tn := toneNormal
		if strings.Contains(ev.detail, "FAILED") || strings.Contains(ev.detail, "LOST") || strings.Contains(ev.typ, "failed") ||
			strings.Contains(ev.typ, "failure") || ev.typ == string(api.OpEventAgentRemoved) {
			tn = toneBad
		}
		// Within a second, the later event sorts as the younger.
		rows = append(rows, row{key: eventKey(ev.seq), tone: tn,
			cells: []string{age(now, ev.at), ev.source, ev.typ, orDash(ev.subject), orDash(ev.detail)},
			nums:  []float64{ageSeconds(now, ev.at) - float64(ev.seq)*1e-9}})
	}
	return rows
}

// eventKey is an event's row key.
func eventKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// findView finds a view by name or alias.
func findView(name string) *viewDef {
	i := slices.IndexFunc(views, func(v *viewDef) bool { return v.name == name || slices.Contains(v.aliases, name) })
	if i < 0 {
		return nil
	}
	return views[i]
}
