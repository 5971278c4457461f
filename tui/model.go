package tui

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/universe"
)

// pageKind says what a page shows.
type pageKind int

const (
	pageOverview pageKind = iota
	// pageTable is a resource view.
	pageTable
	// pageApp is an app: its summary, why it waits, and its tasks.
	pageApp
	// pageTask is a task's detail.
	pageTask
	// pageJob is a job: its summary and its runs.
	pageJob
	// pageText is scrollable text: a JSON definition, the help.
	pageText
	// pageLogs is a task's output, followed.
	pageLogs
	// pagePackage describes a package of the catalog.
	pagePackage
	// pageForm is a package's install form.
	pageForm
	// pageInstall follows what an install created: its apps and their deployment.
	pageInstall
)

// page is one screen of the navigation stack; esc goes back to the one below.
type page struct {
	kind pageKind
	// view and table are the page's table (the tasks of an app page, the runs of a job page).
	view  *viewDef
	table *table
	scope scope
	// showEnded lists ended tasks too.
	showEnded bool
	// built are the state revisions the rows were made from; dirty forces a rebuild.
	built [kindCount]uint64
	dirty bool
	// filter is the table's filter as typed.
	filter string
	// key is what the page is about: an app id, a task key, a job name.
	key   string
	title string
	// lines and offset are a text page's content and scroll position.
	lines  []string
	offset int
	logs   *logState
	// stat is a job page's runs, as last read.
	stat    *chronos.Stat
	statErr error
	// detail is a package page's package, as read.
	detail *packageDetail
	// form is a form page's form.
	form *installForm
	// installed is what an install page follows.
	installed *universe.InstallResponse
}

// mode says where keys go.
type mode int

const (
	modeNormal mode = iota
	modeCommand
	modeFilter
	modePrompt
	modeConfirm
)

// flash is a message on the bottom line until the next key.
type flash struct {
	text string
	err  bool
}

// refreshSet is what is to be read again once RefreshDelay has passed; pending says the
// read is scheduled.
type refreshSet struct {
	apps                                 map[string]bool
	queue, jobs, stat, packages, pending bool
}

// Model is the terminal UI's bubbletea model. Build it with New; Close it when the
// program has ended.
type Model struct {
	cfg    Config
	st     styles
	state  *clusterState
	feed   *feed
	ctx    context.Context
	cancel context.CancelFunc

	width, height int
	spinner       spinner.Model
	spinning      bool
	// busy counts the requests the user waits for.
	busy int
	conn map[streamName]connMsg

	pages   []*page
	mode    mode
	input   *lineInput
	prompt  *promptState
	confirm *confirmation
	flash   flash

	refresh refreshSet
	// started says Init ran: the feed runs.
	started bool
	logSeq  int
	// catalogSeq numbers the catalog searches, so that only the latest shows.
	catalogSeq int
}

// New builds the UI's model for cfg; it starts talking to the cluster when the program
// starts it.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := cfg.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := newStyles(r)
	m := &Model{
		cfg:     cfg,
		st:      st,
		state:   newClusterState(cfg.Now, cfg.MaxEvents, cfg.MaxEndedTasks),
		feed:    newFeed(ctx, cfg),
		ctx:     ctx,
		cancel:  cancel,
		width:   80,
		height:  24,
		spinner: spinner.New(spinner.WithSpinner(spinner.Line), spinner.WithStyle(st.key)),
		conn:    map[streamName]connMsg{streamOperator: {stream: streamOperator}, streamMarathon: {stream: streamMarathon}},
		pages:   []*page{{kind: pageOverview}},
	}
	return m, nil
}

// Close stops the streams and every request in flight.
func (m *Model) Close() {
	m.cancel()
	m.feed.close()
}

func (m *Model) now() time.Time { return m.cfg.Now() }

func (m *Model) top() *page { return m.pages[len(m.pages)-1] }

// Init starts the event streams.
func (m *Model) Init() tea.Cmd {
	if !m.started {
		m.started = true
		m.feed.start()
	}
	return tea.Batch(m.feed.wait(), m.startSpinner(), m.fetchNodes(), tickNodes(m.cfg.NodesInterval))
}

// nodesTickMsg asks for the periodic read of the masters and members.
type nodesTickMsg struct{}

// refreshTickMsg asks for the reads events scheduled.
type refreshTickMsg struct{}

func tickNodes(d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return nodesTickMsg{} })
}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	m.syncTop()
	if m.active() && !m.spinning {
		cmd = tea.Batch(cmd, m.startSpinner())
	}
	return m, cmd
}

// active says something is under way that the spinner shows.
func (m *Model) active() bool {
	return m.busy > 0 || m.conn[streamOperator].state != connConnected
}

func (m *Model) startSpinner() tea.Cmd {
	m.spinning = true
	return m.spinner.Tick
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = max(msg.Width, 20), max(msg.Height, 8)
		return nil
	case tea.KeyMsg:
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			// Keys typed faster than they are read arrive together: each is a key of its
			// own (":" then "a", not ":a"). A paste stays whole, for the field it goes in.
			var cmds []tea.Cmd
			for _, r := range msg.Runes {
				cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}))
			}
			return tea.Batch(cmds...)
		}
		return m.key(msg)
	case spinner.TickMsg:
		if !m.active() {
			m.spinning = false
			return nil
		}
		var cmd tea.Cmd
		m.spinner, cmd = m.spinner.Update(msg)
		return cmd
	case feedBatch:
		var cmds []tea.Cmd
		for _, one := range msg {
			cmds = append(cmds, m.feedMsg(one))
		}
		return tea.Batch(append(cmds, m.feed.wait())...)
	case nodesTickMsg:
		// Ages on screen move on too.
		m.top().dirty = true
		return tea.Batch(m.fetchNodes(), tickNodes(m.cfg.NodesInterval))
	case refreshTickMsg:
		return m.runRefresh()
	case nodesMsg:
		m.applyNodes(msg)
	case appsMsg:
		m.applyApps(msg)
	case queueMsg:
		if msg.err == nil {
			m.state.setQueue(msg.items)
		}
	case jobsMsg:
		m.applyJobs(msg)
	case packagesMsg:
		m.applyPackages(msg)
	case catalogMsg:
		m.applyCatalog(msg)
	case describeMsg:
		return m.applyDescribe(msg)
	case renderDoneMsg:
		return m.renderDone(msg)
	case installDoneMsg:
		return m.installDone(msg)
	case statMsg:
		m.applyStat(msg)
	case actionDoneMsg:
		return m.actionDone(msg)
	case logChunkMsg:
		return m.logChunk(msg)
	}
	return nil
}

// feedMsg applies one message of the feed.
func (m *Model) feedMsg(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case connMsg:
		m.conn[msg.stream] = msg
		switch {
		case msg.stream == streamOperator && msg.state == connConnected:
			// What has no stream is read on every (re)connect.
			return tea.Batch(m.fetchNodes(), m.fetchJobs(), m.fetchPackages())
		case msg.stream == streamMarathon && msg.state == connMissing:
			m.state.marathon = source{known: true, missing: true, why: "the Marathon API is not served by this master (no services framework)"}
			m.state.setApps(nil)
			m.state.deployments = nil
			m.state.touch(kindDeployments)
		}
	case operatorEventMsg:
		m.state.applyOperatorEvent(msg.ev)
		if job := jobOfEvent(m, msg.ev); job != "" {
			m.refresh.jobs = true
			if p := m.top(); p.kind == pageJob && p.key == job {
				m.refresh.stat = true
			}
			return m.scheduleRefresh()
		}
	case marathonSnapshotMsg:
		m.state.marathon = source{known: true}
		m.state.setApps(msg.apps)
		m.state.deployments = msg.deployments
		m.state.touch(kindDeployments)
		m.state.setQueue(msg.queue)
	case marathonEventMsg:
		eff := m.state.applyMarathonEvent(msg.ev)
		for _, id := range eff.apps {
			if m.refresh.apps == nil {
				m.refresh.apps = map[string]bool{}
			}
			m.refresh.apps[id] = true
		}
		if eff.queue {
			m.refresh.queue = true
		}
		// Without the catalog there is nothing to read.
		if eff.packages && !m.state.packagesSrc.missing {
			m.refresh.packages = true
		}
		if len(eff.apps) > 0 || eff.queue || m.refresh.packages {
			return m.scheduleRefresh()
		}
	}
	return nil
}

// scheduleRefresh runs the scheduled reads after RefreshDelay, once for a burst.
func (m *Model) scheduleRefresh() tea.Cmd {
	if m.refresh.pending {
		return nil
	}
	m.refresh.pending = true
	return tea.Tick(m.cfg.RefreshDelay, func(time.Time) tea.Msg { return refreshTickMsg{} })
}

// runRefresh starts the scheduled reads.
func (m *Model) runRefresh() tea.Cmd {
	r := m.refresh
	m.refresh = refreshSet{}
	var cmds []tea.Cmd
	switch {
	case len(r.apps) > maxAppReads:
		cmds = append(cmds, m.fetchAllApps())
	case len(r.apps) > 0:
		ids := make([]string, 0, len(r.apps))
		for id := range r.apps {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		cmds = append(cmds, m.fetchApps(ids))
	}
	if r.queue {
		cmds = append(cmds, m.fetchQueue())
	}
	if r.jobs {
		cmds = append(cmds, m.fetchJobs())
	}
	if r.packages {
		cmds = append(cmds, m.fetchPackages())
	}
	if p := m.top(); r.stat && p.kind == pageJob {
		cmds = append(cmds, m.fetchStat(p.key))
	}
	return tea.Batch(cmds...)
}

// syncTop rebuilds the top page's rows when what they show changed.
func (m *Model) syncTop() {
	p := m.top()
	if p.table == nil || p.view == nil {
		return
	}
	stale := p.dirty
	for _, k := range p.view.deps {
		if p.built[k] != m.state.rev[k] {
			stale = true
		}
	}
	if !stale {
		return
	}
	p.table.setRows(p.view.rows(m, p))
	p.built = m.state.rev
	p.dirty = false
}

// push opens a page on top of the stack.
func (m *Model) push(p *page) {
	m.pages = append(m.pages, p)
	p.dirty = true
}

// pop goes back to the page below, ending what the top page followed.
func (m *Model) pop() {
	if len(m.pages) == 1 {
		return
	}
	if p := m.top(); p.logs != nil {
		p.logs.stop()
	}
	m.pages = m.pages[:len(m.pages)-1]
	m.top().dirty = true
}

// openView makes a resource view the page above the overview; filter, when given, filters it.
func (m *Model) openView(v *viewDef, filter string) {
	for len(m.pages) > 1 {
		m.pop()
	}
	p := newTablePage(v, scope{})
	m.push(p)
	if filter != "" {
		m.setFilter(p, filter)
	}
}

func newTablePage(v *viewDef, sc scope) *page {
	return &page{kind: pageTable, view: v, table: newTable(v.cols, v.sortCol, v.desc), scope: sc}
}

// setFilter filters the page's table with a regular expression; one that does not
// compile is taken as literal text.
func (m *Model) setFilter(p *page, text string) {
	p.filter = text
	if p.table == nil {
		return
	}
	if text == "" {
		p.table.setFilter(nil)
		return
	}
	re, err := regexp.Compile("(?i)" + text)
	if err != nil {
		re = regexp.MustCompile("(?i)" + regexp.QuoteMeta(text))
		m.flash = flash{text: fmt.Sprintf("/%s is not a regular expression (%v): matching it as text", text, err), err: true}
	}
	m.syncTop()
	p.table.setFilter(re)
}

// marathonMissing says why the apps and deployments cannot be shown, "" when they can.
func (m *Model) marathonMissing() string {
	if src := m.state.marathon; src.missing {
		return src.why
	}
	if m.state.marathon.known {
		return ""
	}
	switch c := m.conn[streamMarathon]; c.state {
	case connConnecting:
		return "connecting…"
	case connReconnecting:
		return "reconnecting: " + errText(c.err)
	}
	return ""
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimSpace(err.Error())
}
