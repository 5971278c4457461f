package tui

import (
	"strings"
	"unicode"

	tea "github.com/charmbracelet/bubbletea"
)

// lineInput is a one-line text field: the command line, the filter, the scale prompt.
type lineInput struct {
	prompt string
	value  []rune
	pos    int
}

func newLineInput(prompt, value string) *lineInput {
	v := []rune(value)
	return &lineInput{prompt: prompt, value: v, pos: len(v)}
}

func (in *lineInput) text() string { return string(in.value) }

func (in *lineInput) set(s string) {
	in.value = []rune(s)
	in.pos = len(in.value)
}

// update edits the field with a key; it reports whether the key was an edit.
func (in *lineInput) update(k tea.KeyMsg) bool {
	switch k.Type {
	case tea.KeyRunes, tea.KeySpace:
		r := k.Runes
		if k.Type == tea.KeySpace {
			r = []rune{' '}
		}
		in.value = append(in.value[:in.pos], append(append([]rune{}, r...), in.value[in.pos:]...)...)
		in.pos += len(r)
	case tea.KeyBackspace:
		if in.pos > 0 {
			in.value = append(in.value[:in.pos-1], in.value[in.pos:]...)
			in.pos--
		}
	case tea.KeyDelete:
		if in.pos < len(in.value) {
			in.value = append(in.value[:in.pos], in.value[in.pos+1:]...)
		}
	case tea.KeyLeft:
		in.pos = max(0, in.pos-1)
	case tea.KeyRight:
		in.pos = min(len(in.value), in.pos+1)
	case tea.KeyHome, tea.KeyCtrlA:
		in.pos = 0
	case tea.KeyEnd, tea.KeyCtrlE:
		in.pos = len(in.value)
	case tea.KeyCtrlU:
		in.value, in.pos = in.value[in.pos:], 0
	case tea.KeyCtrlW:
		start := in.pos
		for start > 0 && unicode.IsSpace(in.value[start-1]) {
			start--
		}
		for start > 0 && !unicode.IsSpace(in.value[start-1]) {
			start--
		}
		in.value = append(in.value[:start], in.value[in.pos:]...)
		in.pos = start
	default:
		return false
	}
	return true
}

// view draws the prompt, the text and the cursor; hint follows in dim text.
func (in *lineInput) view(st *styles, hint string) string {
	before, after := string(in.value[:in.pos]), string(in.value[in.pos:])
	var cur string
	switch {
	case st.plain:
		cur = "_"
	case after == "":
		cur = st.cursor.Render(" ")
	default:
		r := []rune(after)
		cur, after = st.cursor.Render(string(r[0])), string(r[1:])
	}
	out := st.key.Render(in.prompt) + before + cur + after
	if hint != "" {
		out += " " + st.dim.Render(hint)
	}
	return out
}

// command is a command of the command line.
type command struct {
	name    string
	aliases []string
	help    string
}

// completions lists the commands whose name or an alias starts with prefix, by name.
func completions(cmds []command, prefix string) []command {
	var out []command
	for _, c := range cmds {
		if strings.HasPrefix(c.name, prefix) {
			out = append(out, c)
			continue
		}
		for _, a := range c.aliases {
			if strings.HasPrefix(a, prefix) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// resolveCommand finds the command a word names: a name or alias exactly, else the only
// command it is a prefix of.
func resolveCommand(cmds []command, word string) (command, bool) {
	for _, c := range cmds {
		if c.name == word {
			return c, true
		}
		for _, a := range c.aliases {
			if a == word {
				return c, true
			}
		}
	}
	if matches := completions(cmds, word); word != "" && len(matches) == 1 {
		return matches[0], true
	}
	return command{}, false
}

// complete extends the command word to the longest prefix the matching names share.
func complete(cmds []command, word string) string {
	matches := completions(cmds, word)
	if len(matches) == 0 {
		return word
	}
	common := matches[0].name
	if !strings.HasPrefix(common, word) {
		// Only an alias matched: complete to the command's name.
		if len(matches) == 1 {
			return common
		}
		return word
	}
	for _, c := range matches[1:] {
		for !strings.HasPrefix(c.name, common) {
			common = common[:len(common)-1]
		}
	}
	if len(common) < len(word) {
		return word
	}
	return common
}

// viewWidth draws the text and the cursor in at most width cells, the text scrolled so
// that the cursor shows (at the end it takes a cell of its own).
func (in *lineInput) viewWidth(st *styles, width int) string {
	width = max(2, width)
	start := max(0, in.pos-(width-1))
	end := min(len(in.value), start+width)
	shown := make([]rune, 0, end-start)
	for _, r := range in.value[start:end] {
		shown = append(shown, printable(r))
	}
	window := &lineInput{value: shown, pos: in.pos - start}
	return window.view(st, "")
}
