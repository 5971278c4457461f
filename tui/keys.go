package tui

import (
	"fmt"
	"slices"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// commandList is the commands of the command line (:name): the overview, the views,
// help and quit.
func commandList() []command {
	cmds := []command{{name: "overview", aliases: []string{"home", "ov"}, help: "the cluster at a glance"}}
	for _, v := range views {
		cmds = append(cmds, command{name: v.name, aliases: v.aliases, help: v.help})
	}
	return append(cmds, command{name: "help", aliases: []string{"h"}, help: "every key"}, command{name: "quit", aliases: []string{"q", "q!", "exit"}, help: "leave"})
}

// keyHelp is a line of the help: keys and what they do.
type keyHelp struct{ keys, help string }

var (
	globalKeys = []keyHelp{
		{":", "command line: a view (tab completes); \":apps web\" also filters"},
		{"/", "filter by regular expression; enter keeps it, esc drops it"},
		{"esc", "back (first clears the filter)"},
		{"?", "this help"},
		{"q", "back, or quit on the overview"},
		{"ctrl+c", "quit"},
	}
	tableKeys = []keyHelp{
		{"↑ ↓  k j", "move"},
		{"pgup pgdn  ctrl+b ctrl+f", "page"},
		{"home end  g G", "first, last"},
		{"< >", "sort by the column to the left, right"},
		{"I", "invert the order"},
	}
	textKeys = []keyHelp{
		{"↑ ↓  pgup pgdn  g G", "scroll"},
		{"f", "logs: follow the end, or stop following"},
		{"tab", "logs: switch between stdout and stderr"},
	}
	confirmKeys = []keyHelp{
		{"y / n", "answer a question; esc is no"},
	}
	formKeys = []keyHelp{
		{"tab ↓  shift+tab ↑", "next, previous field"},
		{"space ← →", "toggle a boolean, pick among choices"},
		{"enter", "check the options with the master, then confirm and install"},
		{"esc", "leave the form"},
	}
)

// key handles a key press.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return m.quit()
	}
	switch m.mode {
	case modeCommand:
		return m.commandKey(k)
	case modeFilter:
		return m.filterKey(k)
	case modePrompt:
		return m.promptKey(k)
	case modeConfirm:
		return m.confirmKey(k)
	}
	m.flash = flash{}
	p := m.top()
	if p.kind == pageForm {
		// Every key is the form's: text fields take ":", "/", "?" and "q".
		return m.formKey(p, k)
	}
	switch k.String() {
	case ":":
		m.mode, m.input = modeCommand, newLineInput(":", "")
		return nil
	case "/":
		if p.table != nil {
			m.mode, m.input = modeFilter, newLineInput("/", p.filter)
		}
		return nil
	case "?":
		m.openHelp()
		return nil
	case "esc":
		if p.filter != "" {
			m.setFilter(p, "")
			return nil
		}
		m.pop()
		return nil
	case "q":
		if len(m.pages) == 1 {
			return m.quit()
		}
		m.pop()
		return nil
	}
	switch p.kind {
	case pageText:
		m.scrollText(p, k.String())
		return nil
	case pageLogs:
		return m.logsKey(p, k.String())
	}
	if p.table != nil && m.tableKey(p, k.String()) {
		return nil
	}
	for _, id := range m.pageActions(p) {
		if slices.Contains(actionInfos[id].keys, k.String()) {
			return m.act(id)
		}
	}
	if p.kind == pagePackage {
		p.lines = m.packageLines(p)
		m.scrollText(p, k.String())
	}
	return nil
}

// formKey edits a form: moves between fields, edits the focused one, submits it.
func (m *Model) formKey(p *page, k tea.KeyMsg) tea.Cmd {
	f := p.form
	if k.String() == "esc" {
		m.pop()
		if f.stage == stageInstalling {
			m.flash = flash{text: "the install of " + f.name + " goes on"}
		} else {
			m.flash = flash{text: "install of " + f.name + " cancelled"}
		}
		return nil
	}
	if f.stage != stageEdit {
		// The master is answering.
		return nil
	}
	switch k.String() {
	case "enter":
		return m.submitForm(p)
	case "tab", "down", "ctrl+n":
		f.move(1)
	case "shift+tab", "up", "ctrl+p":
		f.move(-1)
	case "pgdown":
		f.move(max(1, m.bodyHeight()-4))
	case "pgup":
		f.move(-max(1, m.bodyHeight()-4))
	default:
		if fld := f.focused(); fld.edit(k) {
			fld.err = ""
		}
	}
	return nil
}

func (m *Model) quit() tea.Cmd {
	m.Close()
	return tea.Quit
}

// tableKey moves, pages and sorts a table; it reports whether the key was one of those.
func (m *Model) tableKey(p *page, key string) bool {
	t := p.table
	page := max(1, m.tableHeight(p)-1)
	switch key {
	case "up", "k":
		t.move(-1)
	case "down", "j":
		t.move(1)
	case "pgup", "ctrl+b":
		t.move(-page)
	case "pgdown", "ctrl+f", " ":
		t.move(page)
	case "home", "g":
		t.moveTo(true)
	case "end", "G":
		t.moveTo(false)
	case "<":
		t.sortBy(-1)
	case ">":
		t.sortBy(1)
	case "I":
		t.sortBy(0)
	default:
		return false
	}
	return true
}

func (m *Model) commandKey(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		m.mode, m.input = modeNormal, nil
		return nil
	case "tab":
		word, rest, _ := strings.Cut(m.input.text(), " ")
		if rest == "" {
			m.input.set(complete(commands, word))
		}
		return nil
	case "enter":
		text := strings.TrimSpace(m.input.text())
		m.mode, m.input = modeNormal, nil
		return m.runCommand(text)
	}
	m.input.update(k)
	return nil
}

// runCommand runs a command line: a command's name, and for views a filter after it.
func (m *Model) runCommand(text string) tea.Cmd {
	word, arg, _ := strings.Cut(text, " ")
	if word == "" {
		return nil
	}
	c, ok := resolveCommand(commands, word)
	if !ok {
		matches := completions(commands, word)
		if len(matches) > 1 {
			var names []string
			for _, c := range matches {
				names = append(names, c.name)
			}
			m.flash = flash{text: fmt.Sprintf(":%s could be %s", word, strings.Join(names, ", ")), err: true}
		} else {
			m.flash = flash{text: fmt.Sprintf("no command :%s (? lists them)", word), err: true}
		}
		return nil
	}
	switch c.name {
	case "quit":
		return m.quit()
	case "catalog":
		// The argument searches the master's repositories, not the rows on screen.
		m.openView(viewCatalog, "")
		return m.searchCatalog(strings.TrimSpace(arg))
	case "help":
		m.openHelp()
	case "overview":
		for len(m.pages) > 1 {
			m.pop()
		}
	default:
		m.openView(findView(c.name), strings.TrimSpace(arg))
	}
	return nil
}

func (m *Model) filterKey(k tea.KeyMsg) tea.Cmd {
	p := m.top()
	switch k.String() {
	case "esc":
		m.mode, m.input = modeNormal, nil
		m.setFilter(p, "")
		return nil
	case "enter":
		m.mode, m.input = modeNormal, nil
		return nil
	}
	if m.input.update(k) {
		m.setFilter(p, m.input.text())
	}
	return nil
}

func (m *Model) promptKey(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		m.mode, m.input, m.prompt = modeNormal, nil, nil
		return nil
	case "enter":
		submit, text := m.prompt.submit, m.input.text()
		m.mode, m.input, m.prompt = modeNormal, nil, nil
		return submit(text)
	}
	m.input.update(k)
	return nil
}

func (m *Model) confirmKey(k tea.KeyMsg) tea.Cmd {
	key := k.String()
	if key == "esc" {
		key = "n"
	}
	conf := m.confirm
	for _, c := range conf.choices {
		if c.key == key {
			m.mode, m.confirm = modeNormal, nil
			if c.run == nil {
				if conf.cancel != nil {
					conf.cancel()
				}
				m.flash = flash{text: "cancelled"}
				return nil
			}
			return c.run()
		}
	}
	return nil
}

// scrollText scrolls a text page.
func (m *Model) scrollText(p *page, key string) {
	body := m.bodyHeight() - 1
	last := max(0, len(p.lines)-body)
	switch key {
	case "up", "k":
		p.offset--
	case "down", "j":
		p.offset++
	case "pgup", "ctrl+b":
		p.offset -= body
	case "pgdown", "ctrl+f", " ":
		p.offset += body
	case "home", "g":
		p.offset = 0
	case "end", "G":
		p.offset = last
	}
	p.offset = max(0, min(p.offset, last))
}

// logsKey scrolls a logs page, follows its end and switches its file.
func (m *Model) logsKey(p *page, key string) tea.Cmd {
	ls := p.logs
	body := m.bodyHeight() - 1
	lines := len(ls.all())
	last := max(0, lines-body)
	if ls.follow {
		ls.offset = last
	}
	switch key {
	case "tab":
		file := "stderr"
		if ls.file == "stderr" {
			file = "stdout"
		}
		return m.startLogs(p, file)
	case "f":
		ls.follow = !ls.follow
		return nil
	case "up", "k":
		ls.offset--
	case "down", "j":
		ls.offset++
	case "pgup", "ctrl+b":
		ls.offset -= body
	case "pgdown", "ctrl+f", " ":
		ls.offset += body
	case "home", "g":
		ls.offset = 0
	case "end", "G":
		ls.offset = last
	default:
		return nil
	}
	ls.offset = max(0, min(ls.offset, last))
	ls.follow = ls.offset == last
	return nil
}

// openHelp opens the help: every key, the page's actions first.
func (m *Model) openHelp() {
	if p := m.top(); p.kind == pageText && p.title == "help" {
		return
	}
	var lines []string
	section := func(title string, keys []keyHelp) {
		lines = append(lines, title)
		width := 0
		for _, k := range keys {
			width = max(width, len([]rune(k.keys)))
		}
		for _, k := range keys {
			lines = append(lines, fmt.Sprintf("  %-*s  %s", width, k.keys, k.help))
		}
		lines = append(lines, "")
	}
	if acts := m.pageActions(m.top()); len(acts) > 0 {
		var keys []keyHelp
		for _, id := range acts {
			info := actionInfos[id]
			help := info.help
			if info.mutates && m.cfg.ReadOnly {
				help += " (disabled: read-only)"
			}
			keys = append(keys, keyHelp{strings.Join(info.keys, " "), help})
		}
		section("THIS PAGE", keys)
	}
	section("EVERYWHERE", globalKeys)
	section("TABLES", tableKeys)
	section("TEXT AND LOGS", textKeys)
	section("QUESTIONS", confirmKeys)
	var cmds []keyHelp
	for _, c := range commands {
		names := ":" + c.name
		if len(c.aliases) > 0 {
			names += " (" + strings.Join(c.aliases, " ") + ")"
		}
		cmds = append(cmds, keyHelp{names, c.help})
	}
	section("COMMANDS", cmds)
	for _, v := range []struct {
		name string
		acts []actionID
	}{
		{"APPS", viewApps.actions}, {"AN APP", m.pageActions(&page{kind: pageApp})}, {"TASKS", viewTasks.actions},
		{"A TASK", m.pageActions(&page{kind: pageTask})}, {"DEPLOYMENTS", viewDeployments.actions}, {"JOBS", viewJobs.actions},
		{"A JOB", m.pageActions(&page{kind: pageJob})}, {"AGENTS AND FRAMEWORKS", viewAgents.actions},
		{"INSTALLED PACKAGES", viewPackages.actions}, {"THE CATALOG", viewCatalog.actions},
		{"A PACKAGE", m.pageActions(&page{kind: pagePackage})}, {"NODES, EVENTS", viewEvents.actions},
	} {
		var keys []keyHelp
		for _, id := range v.acts {
			keys = append(keys, keyHelp{strings.Join(actionInfos[id].keys, " "), actionInfos[id].help})
		}
		section("KEYS OF "+v.name, keys)
	}
	section("THE INSTALL FORM", formKeys)
	m.push(&page{kind: pageText, title: "help", lines: lines})
}
