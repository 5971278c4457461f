package tui

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// The package views: :pkgs lists the installed packages with how what they run is doing,
// :catalog the packages the master's repositories offer (tab switches between the two).
// enter describes a package, i installs it through a form of its options (rendered by the
// master first, then confirmed, then installed and followed), u uninstalls it. Every
// request goes through the Cosmos API of the master, as a command.

// packageDetail is a package page's package, as read.
type packageDetail struct {
	// version is the version asked for; "" is the current one.
	version  string
	pkg      *universe.Package
	versions map[string]string
	err      error
	// installAfter opens the install form once the package is read (i on the catalog).
	installAfter bool
}

// catalogMsg is a search of the catalog; seq orders the searches.
type catalogMsg struct {
	seq     int
	query   string
	results []universe.SearchResult
	missing bool
	err     error
}

// searchCatalog asks the master for the packages matching query ("" lists them all).
func (m *Model) searchCatalog(query string) tea.Cmd {
	m.busy++
	m.catalogSeq++
	seq := m.catalogSeq
	return m.request(func(ctx context.Context) tea.Msg {
		resp, err := m.cfg.Universe.Search(ctx, query)
		switch {
		case catalogMissing(err):
			return catalogMsg{seq: seq, query: query, missing: true}
		case err != nil:
			return catalogMsg{seq: seq, query: query, err: err}
		}
		return catalogMsg{seq: seq, query: query, results: resp.Packages}
	})
}

func (m *Model) applyCatalog(msg catalogMsg) {
	m.busy = max(0, m.busy-1)
	if msg.seq != m.catalogSeq {
		// A later search is under way.
		return
	}
	s := m.state
	s.catalogQuery = msg.query
	switch {
	case msg.missing:
		s.catalogSrc = source{known: true, missing: true, why: "the package catalog is not available on this master"}
		s.catalog = nil
	case msg.err != nil:
		s.catalogSrc = source{known: s.catalogSrc.known, why: "searching the catalog failed: " + msg.err.Error()}
		s.catalog = nil
	default:
		s.catalogSrc = source{known: true}
		s.catalog = msg.results
	}
	s.touch(kindCatalog)
}

// describeMsg is a package read for its page.
type describeMsg struct {
	name, version string
	pkg           *universe.Package
	versions      map[string]string
	err           error
}

func (m *Model) fetchDescribe(name, version string) tea.Cmd {
	m.busy++
	return m.request(func(ctx context.Context) tea.Msg {
		msg := describeMsg{name: name, version: version}
		resp, err := m.cfg.Universe.Describe(ctx, name, version)
		if err != nil {
			msg.err = err
			return msg
		}
		msg.pkg = &resp.Package
		// The versions only add to the page: without them it still describes.
		if v, err := m.cfg.Universe.ListVersions(ctx, name); err == nil {
			msg.versions = v.Results
		}
		return msg
	})
}

func (m *Model) applyDescribe(msg describeMsg) tea.Cmd {
	m.busy = max(0, m.busy-1)
	for _, p := range m.pages {
		if p.kind != pagePackage || p.key != msg.name || p.detail.version != msg.version || p.detail.pkg != nil {
			continue
		}
		d := p.detail
		d.pkg, d.versions, d.err = msg.pkg, msg.versions, msg.err
		if d.installAfter && d.err == nil && p == m.top() {
			d.installAfter = false
			m.openForm(p)
		}
	}
	return nil
}

// openPackage opens a package's page and reads the package; with install, its install
// form follows.
func (m *Model) openPackage(name, version string, install bool) tea.Cmd {
	m.push(&page{kind: pagePackage, key: name, detail: &packageDetail{version: version, installAfter: install}})
	return m.fetchDescribe(name, version)
}

// openForm opens the install form of a package page's package.
func (m *Model) openForm(p *page) {
	pkg := p.detail.pkg
	m.push(&page{kind: pageForm, key: pkg.Name, form: newInstallForm(pkg.Name, pkg.Version, pkg.PreInstallNotes, pkg.Config)})
}

// installSelected opens the install form of the package the top page is about or has
// selected, reading the package first when needed.
func (m *Model) installSelected() tea.Cmd {
	p := m.top()
	switch {
	case p.kind == pagePackage && p.detail.pkg != nil:
		m.openForm(p)
	case p.kind == pagePackage && p.detail.err != nil:
		m.flash = flash{text: "package " + p.key + " could not be read: " + p.detail.err.Error(), err: true}
	case p.kind == pagePackage:
		p.detail.installAfter = true
	case p.kind == pageTable && p.view == viewCatalog:
		if name := p.table.selectedKey(); name != "" {
			return m.openPackage(name, "", true)
		}
	}
	return nil
}

// formPage is the page of a form, nil when it was left.
func (m *Model) formPage(f *installForm) *page {
	for _, p := range m.pages {
		if p.form == f {
			return p
		}
	}
	return nil
}

// renderDoneMsg is the master's render of a form's options.
type renderDoneMsg struct {
	form     *installForm
	rendered renderedSummary
	err      error
}

// installDoneMsg is the answer to a form's install.
type installDoneMsg struct {
	form *installForm
	resp *universe.InstallResponse
	err  error
}

// submitForm has the master render the form's options: what is wrong shows on the form,
// nothing is created.
func (m *Model) submitForm(p *page) tea.Cmd {
	f := p.form
	f.stage = stageChecking
	req := universe.RenderRequest{PackageName: f.name, PackageVersion: f.version, Options: f.options(), AppID: f.appID()}
	m.busy++
	return m.request(func(ctx context.Context) tea.Msg {
		resp, err := m.cfg.Universe.Render(ctx, &req)
		msg := renderDoneMsg{form: f, err: err}
		if err == nil {
			msg.rendered = summarizeRendered(resp.MarathonJSON)
		}
		return msg
	})
}

func (m *Model) renderDone(msg renderDoneMsg) tea.Cmd {
	m.busy = max(0, m.busy-1)
	f := msg.form
	if m.formPage(f) == nil {
		return nil
	}
	if msg.err != nil {
		f.stage = stageEdit
		f.setErrors(optionProblems(msg.err))
		return nil
	}
	f.setErrors(nil, "")
	f.rendered = msg.rendered
	f.stage = stageConfirm
	what := "app " + f.rendered.id
	if f.rendered.group {
		what = "group " + f.rendered.id
	}
	cmd := m.ask(fmt.Sprintf("Install %s %s as %s?", f.name, f.version, what),
		choice{key: "y", label: "install", run: func() tea.Cmd { return m.install(f) }})
	m.confirm.cancel = func() { f.stage = stageEdit }
	return cmd
}

// install installs what the form rendered.
func (m *Model) install(f *installForm) tea.Cmd {
	f.stage = stageInstalling
	req := universe.InstallRequest{PackageName: f.name, PackageVersion: f.version, Options: f.options(), AppID: f.appID()}
	m.busy++
	return m.request(func(ctx context.Context) tea.Msg {
		resp, err := m.cfg.Universe.Install(ctx, &req)
		return installDoneMsg{form: f, resp: resp, err: err}
	})
}

func (m *Model) installDone(msg installDoneMsg) tea.Cmd {
	m.busy = max(0, m.busy-1)
	f := msg.form
	p := m.formPage(f)
	if msg.err != nil {
		if p != nil {
			f.stage = stageEdit
			f.setErrors(optionProblems(msg.err))
		}
		m.flash = flash{text: fmt.Sprintf("install %s %s: %s", f.name, f.version, errText(msg.err)), err: true}
		return nil
	}
	r := msg.resp
	m.flash = flash{text: fmt.Sprintf("installed %s %s as %s", r.PackageName, r.PackageVersion, r.AppID)}
	if p != nil {
		// The form is done: the install's page takes its place.
		for m.top() != p {
			m.pop()
		}
		m.pop()
		ip := newTablePage(viewApps, scope{group: r.AppID})
		ip.kind, ip.key, ip.installed = pageInstall, r.AppID, r
		m.push(ip)
	}
	return m.fetchPackages()
}

// optionProblems reads an answer of the master into the option problems it names and
// what else it says.
func optionProblems(err error) (universe.FieldErrors, string) {
	var re *universe.ResponseError
	if !errors.As(err, &re) {
		return nil, errText(err)
	}
	if re.Body.Type == "JsonSchemaMismatch" {
		var data struct {
			Errors universe.FieldErrors `json:"errors"`
		}
		if json.Unmarshal(re.Body.Data, &data) == nil && len(data.Errors) > 0 {
			return data.Errors, ""
		}
	}
	return nil, re.Body.Message
}

// summarizeRendered says what a render answer creates: its app, or its group and apps.
func summarizeRendered(raw json.RawMessage) renderedSummary {
	var g struct {
		ID     string            `json:"id"`
		Apps   []json.RawMessage `json:"apps"`
		Groups []json.RawMessage `json:"groups"`
	}
	if json.Unmarshal(raw, &g) != nil {
		return renderedSummary{}
	}
	sum := renderedSummary{id: g.ID, group: g.Apps != nil || g.Groups != nil}
	var collect func(apps, groups []json.RawMessage)
	collect = func(apps, groups []json.RawMessage) {
		for _, a := range apps {
			var app struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(a, &app) == nil {
				sum.apps = append(sum.apps, app.ID)
			}
		}
		for _, raw := range groups {
			var sub struct {
				Apps   []json.RawMessage `json:"apps"`
				Groups []json.RawMessage `json:"groups"`
			}
			if json.Unmarshal(raw, &sub) == nil {
				collect(sub.Apps, sub.Groups)
			}
		}
	}
	collect(g.Apps, g.Groups)
	return sum
}

// selectedPackage is the package the top page is about or has selected, and on :pkgs
// the installation.
func (m *Model) selectedPackage() (name, appID string) {
	p := m.top()
	switch {
	case p.kind == pagePackage:
		return p.key, ""
	case p.kind == pageTable && p.view == viewCatalog:
		return p.table.selectedKey(), ""
	case p.kind == pageTable && p.view == viewPackages:
		if rec := m.state.installation(p.table.selectedKey()); rec != nil {
			return rec.name, rec.appID
		}
	}
	return "", ""
}

// uninstall uninstalls an installation of a package after asking; without appID it asks
// which when the package is installed more than once.
func (m *Model) uninstall(name, appID string) tea.Cmd {
	if appID != "" {
		return m.ask(fmt.Sprintf("Uninstall %s from %s, removing everything it created?", name, appID),
			choice{key: "y", label: "yes", run: func() tea.Cmd {
				return m.runUninstall(universe.UninstallRequest{PackageName: name, AppID: appID})
			}})
	}
	ids := m.state.installsOf(name)
	switch len(ids) {
	case 0:
		m.flash = flash{text: "package " + name + " is not installed", err: true}
		return nil
	case 1:
		return m.uninstall(name, ids[0])
	}
	var choices []choice
	for i, id := range ids[:min(9, len(ids))] {
		choices = append(choices, choice{key: strconv.Itoa(i + 1), label: id, run: func() tea.Cmd {
			return m.runUninstall(universe.UninstallRequest{PackageName: name, AppID: id})
		}})
	}
	choices = append(choices, choice{key: "a", label: "all", run: func() tea.Cmd {
		return m.runUninstall(universe.UninstallRequest{PackageName: name, All: true})
	}})
	return m.ask(fmt.Sprintf("%s is installed %d times: uninstall which?", name, len(ids)), choices...)
}

func (m *Model) runUninstall(req universe.UninstallRequest) tea.Cmd {
	m.busy++
	return m.request(func(ctx context.Context) tea.Msg {
		resp, err := m.cfg.Universe.Uninstall(ctx, &req)
		if err != nil {
			return actionDoneMsg{err: err, packages: true}
		}
		var ids, notes []string
		for _, r := range resp.Results {
			ids = append(ids, r.AppID)
			if n := strings.Join(strings.Fields(r.PostUninstallNotes), " "); n != "" && !slices.Contains(notes, n) {
				notes = append(notes, n)
			}
		}
		done := fmt.Sprintf("uninstalled %s from %s", req.PackageName, strings.Join(ids, ", "))
		if len(notes) > 0 {
			done += ": " + strings.Join(notes, " ")
		}
		return actionDoneMsg{done: done, packages: true}
	})
}

// installation is the installed package of an app or group id, nil when none.
func (s *clusterState) installation(appID string) *packageRecord {
	for i := range s.packages {
		if s.packages[i].appID == appID {
			return &s.packages[i]
		}
	}
	return nil
}

// installsOf lists the app or group ids a package is installed as.
func (s *clusterState) installsOf(name string) []string {
	var ids []string
	for _, p := range s.packages {
		if p.name == name {
			ids = append(ids, p.appID)
		}
	}
	return ids
}

// appsUnder lists the apps of an app or group id, by id.
func (s *clusterState) appsUnder(id string) []*marathon.AppInfo {
	var out []*marathon.AppInfo
	for appID, a := range s.apps {
		if underID(appID, id) {
			out = append(out, &a.info)
		}
	}
	slices.SortFunc(out, func(a, b *marathon.AppInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// underID says an app id is id or in the group id.
func underID(appID, id string) bool {
	return appID == id || strings.HasPrefix(appID, strings.TrimSuffix(id, "/")+"/")
}

// installStatus is how the apps of an installation are doing, as :pkgs shows it.
type installStatus struct {
	tasks, health, status string
	running               int
	tone                  tone
}

// statusRank orders app statuses by how much they need attention.
var statusRank = map[string]int{appSuspended: 0, appRunning: 1, appDeploying: 2, appDelayed: 3, appWaiting: 4}

func (s *clusterState) installStatus(id string) installStatus {
	apps := s.appsUnder(id)
	if len(apps) == 0 {
		if !s.marathon.known {
			return installStatus{tasks: "-", health: "-", status: "-"}
		}
		return installStatus{tasks: "-", health: "-", status: "no apps", tone: toneWarn}
	}
	var st installStatus
	instances, healthy, checked := 0, 0, 0
	worst := appSuspended
	for _, a := range apps {
		c := s.counts(a.ID)
		st.running += c.running
		instances += a.Instances
		if len(a.HealthChecks) > 0 {
			checked += c.running
			healthy += c.healthy
		}
		if status := s.appStatus(a); statusRank[status] > statusRank[worst] {
			worst = status
		}
	}
	st.tasks, st.status, st.health = fmt.Sprintf("%d/%d", st.running, instances), worst, "-"
	if checked > 0 {
		st.health = fmt.Sprintf("%d/%d", healthy, checked)
	}
	switch worst {
	case appWaiting, appDelayed:
		st.tone = toneBad
	case appDeploying:
		st.tone = toneWarn
	case appSuspended:
		st.tone = toneDim
	}
	return st
}

func packageRows(m *Model, _ *page) []row {
	s := m.state
	rows := make([]row, 0, len(s.packages))
	for _, p := range s.packages {
		st := s.installStatus(p.appID)
		fw := "-"
		if p.framework {
			fw = "yes"
		}
		rows = append(rows, row{key: p.appID, tone: st.tone,
			cells: []string{p.name, p.version, p.appID, fw, st.tasks, st.health, st.status},
			nums:  []float64{0, 0, 0, 0, float64(st.running)}})
	}
	return rows
}

func catalogRows(m *Model, _ *page) []row {
	s := m.state
	installed := map[string]int{}
	for _, p := range s.packages {
		installed[p.name]++
	}
	rows := make([]row, 0, len(s.catalog))
	for _, r := range s.catalog {
		n := installed[r.Name]
		count, tn := "-", toneNormal
		if n > 0 {
			count, tn = strconv.Itoa(n), toneGood
		}
		fw := "-"
		if r.Framework {
			fw = "yes"
		}
		desc, _, _ := strings.Cut(strings.TrimSpace(r.Description), "\n")
		rows = append(rows, row{key: r.Name, tone: tn, cells: []string{r.Name, r.CurrentVersion, count, fw, desc},
			nums: []float64{0, 0, float64(n)}})
	}
	return rows
}

// wrapIndented wraps text to width cells, each line indented by two spaces.
func wrapIndented(text string, width int) []string {
	var out []string
	for _, l := range strings.Split(ansi.Wrap(strings.TrimSpace(text), max(10, width-2), ""), "\n") {
		out = append(out, strings.TrimRight("  "+l, " "))
	}
	return out
}

// packageLines is a package page's text.
func (m *Model) packageLines(p *page) []string {
	d := p.detail
	switch {
	case d.err != nil:
		return []string{"reading package " + p.key + " failed: " + errText(d.err)}
	case d.pkg == nil:
		return []string{"reading package " + p.key + "…"}
	}
	pkg, st, width := d.pkg, &m.st, m.width
	head := fmt.Sprintf("%s %s (release %d)", pkg.Name, pkg.Version, pkg.ReleaseVersion)
	if pkg.Framework {
		head += " · a framework"
	}
	if pkg.Selected {
		head += " · selected"
	}
	lines := []string{st.bold.Render(head)}
	lines = append(lines, wrapIndented(pkg.Description, width)...)
	var installed []string
	for _, rec := range m.state.packages {
		if rec.name == pkg.Name {
			installed = append(installed, fmt.Sprintf("%s (%s)", rec.appID, rec.version))
		}
	}
	lines = append(lines, "")
	for _, kv := range [][2]string{{"maintainer", pkg.Maintainer}, {"website", pkg.Website}, {"tags", strings.Join(pkg.Tags, ", ")},
		{"installed", cmp.Or(strings.Join(installed, ", "), "no")}} {
		if kv[1] != "" {
			lines = append(lines, fmt.Sprintf("%-11s %s", kv[0], strings.Map(printable, kv[1])))
		}
	}
	if len(d.versions) > 0 {
		versions := make([]string, 0, len(d.versions))
		for v := range d.versions {
			versions = append(versions, v)
		}
		release := func(v string) int {
			n, _ := strconv.Atoi(d.versions[v])
			return n
		}
		slices.SortFunc(versions, func(a, b string) int { return cmp.Or(cmp.Compare(release(b), release(a)), cmp.Compare(b, a)) })
		var parts []string
		for _, v := range versions {
			part := fmt.Sprintf("%s (release %s)", v, d.versions[v])
			if v == pkg.Version {
				part += " ← this one"
			}
			parts = append(parts, part)
		}
		lines = append(lines, "", st.bold.Render("VERSIONS"), "  "+strings.Join(parts, " · "))
	}
	for _, notes := range []struct{ title, text string }{{"BEFORE INSTALLING", pkg.PreInstallNotes}, {"AFTER INSTALLING", pkg.PostInstallNotes},
		{"AFTER UNINSTALLING", pkg.PostUninstallNotes}} {
		if strings.TrimSpace(notes.text) != "" {
			lines = append(lines, "", st.bold.Render(notes.title))
			lines = append(lines, wrapIndented(notes.text, width)...)
		}
	}
	lines = append(lines, "", st.bold.Render("OPTIONS")+st.dim.Render("  * required · i installs with a form of them"))
	return append(lines, optionSummary(pkg.Config)...)
}

// optionSummary lists a config.json's options: path, type, default.
func optionSummary(config json.RawMessage) []string {
	fields, err := buildFields(config)
	if err != nil {
		return []string{"  the options do not read: " + err.Error()}
	}
	width := 0
	for _, f := range fields {
		width = max(width, len([]rune(f.path))+2)
	}
	width = min(width, 40)
	var lines []string
	for _, f := range fields {
		if f.kind == fieldSection {
			continue
		}
		label := f.path
		if f.required {
			label += " *"
		}
		what := f.typeName()
		if d := f.defaultText(); d != "" {
			what += " · default " + d
		}
		lines = append(lines, strings.Map(printable, "  "+fit(label, width, false)+"  "+what))
	}
	if len(lines) == 0 {
		return []string{"  none"}
	}
	return lines
}

// formBody draws a form page in h lines: the fields with their problems, the focused
// field's description at the bottom; once the options rendered, what the install does.
func (m *Model) formBody(p *page, h int) string {
	f, st := p.form, &m.st
	head := fmt.Sprintf("install %s %s", f.name, f.version)
	if f.stage == stageConfirm || f.stage == stageInstalling {
		return strings.Join(m.confirmLines(f), "\n")
	}
	lines := []string{st.bold.Render(head) + st.dim.Render("  * required · fields start at the package's defaults")}
	if f.stage == stageChecking {
		lines[0] = st.bold.Render(head) + "  checking the options with the master…"
	}
	if f.schemaErr != nil {
		lines = append(lines, st.errText.Render("the options do not read ("+f.schemaErr.Error()+"): the package installs with its defaults"))
	}
	for _, prob := range f.problems {
		lines = append(lines, st.errText.Render("✗ "+strings.Map(printable, prob)))
	}
	formLines, at := f.lines(st, m.width)
	room := max(1, h-len(lines)-1)
	first := at[f.focus]
	last := first
	if f.focused().err != "" {
		last++
	}
	if first < f.offset {
		f.offset = first
	}
	if last >= f.offset+room {
		f.offset = last - room + 1
	}
	f.offset = max(0, min(f.offset, len(formLines)-room))
	lines = append(lines, formLines[f.offset:min(len(formLines), f.offset+room)]...)
	for len(lines) < h-1 {
		lines = append(lines, "")
	}
	return strings.Join(append(lines, st.dim.Render(f.focused().help)), "\n")
}

// confirmLines say what the install does, while the user is asked and while it runs.
func (m *Model) confirmLines(f *installForm) []string {
	st := &m.st
	head := fmt.Sprintf("install %s %s", f.name, f.version)
	if f.stage == stageInstalling {
		head += " · installing…"
	}
	r := f.rendered
	what := "app " + r.id
	if r.group {
		what = fmt.Sprintf("group %s: %s", r.id, strings.Join(r.apps, ", "))
	}
	lines := []string{st.bold.Render(head), "creates " + what}
	if strings.TrimSpace(f.preInstall) != "" {
		lines = append(lines, "", st.bold.Render("BEFORE INSTALLING"))
		lines = append(lines, wrapIndented(f.preInstall, m.width)...)
	}
	lines = append(lines, "", st.bold.Render("OPTIONS SET"))
	changes := f.changes()
	if id := f.appID(); id != "" {
		changes = append([]string{"app id: " + id}, changes...)
	}
	if len(changes) == 0 {
		changes = []string{"none: the package's defaults"}
	}
	for _, c := range changes {
		lines = append(lines, "  "+strings.Map(printable, c))
	}
	return lines
}

// installSummary is the lines above an install page's apps: the package, the deployment
// under way or how many tasks run, and the post-install notes.
func (m *Model) installSummary(p *page) []string {
	s, r, st := m.state, p.installed, &m.st
	lines := []string{fmt.Sprintf("package %s %s installed as %s", r.PackageName, r.PackageVersion, r.AppID)}
	var deployments []string
	for _, d := range s.deployments {
		if d.ID != r.DeploymentID && !slices.ContainsFunc(d.AffectedApps, func(a string) bool { return underID(a, r.AppID) }) {
			continue
		}
		var actions []string
		for _, a := range d.CurrentActions {
			actions = append(actions, strings.TrimSuffix(a.Action, "Application")+" "+cmp.Or(a.App, a.Pod))
		}
		deployments = append(deployments, st.tones[toneWarn].Render(fmt.Sprintf("deployment %s: step %d/%d %s", shortID(d.ID), d.CurrentStep, d.TotalSteps, strings.Join(actions, ", "))))
	}
	running, instances := 0, 0
	apps := s.appsUnder(r.AppID)
	for _, a := range apps {
		running += s.counts(a.ID).running
		instances += a.Instances
	}
	switch {
	case len(deployments) > 0:
		lines = append(lines, deployments...)
	case len(apps) == 0:
		lines = append(lines, "waiting for its apps to show…")
	case running >= instances:
		lines = append(lines, st.tones[toneGood].Render(fmt.Sprintf("deployed: %d of %s running", running, plural(instances, "task"))))
	default:
		lines = append(lines, st.tones[toneWarn].Render(fmt.Sprintf("starting: %d of %s running", running, plural(instances, "task"))))
	}
	if strings.TrimSpace(r.PostInstallNotes) != "" {
		lines = append(lines, "", st.bold.Render("AFTER INSTALLING"))
		lines = append(lines, wrapIndented(r.PostInstallNotes, m.width)...)
	}
	return lines
}
