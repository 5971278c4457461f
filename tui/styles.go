package tui

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// tone colours a cell or a line by what it says.
type tone int

const (
	toneNormal tone = iota
	toneGood
	toneWarn
	toneBad
	toneDim
)

// styles are the UI's lipgloss styles, made with one renderer: without colour (NO_COLOR,
// a dumb terminal) they print plain text, and nothing on screen depends on colour alone.
type styles struct {
	header, crumb, dim, bold, selected, colTitle, key, errText, okText, box, cursor lipgloss.Style
	tones                                                                           [5]lipgloss.Style
	// plain says the renderer prints no colour or attributes.
	plain bool
}

func newStyles(r *lipgloss.Renderer) styles {
	s := func() lipgloss.Style { return r.NewStyle() }
	green, yellow, red, grey := lipgloss.Color("2"), lipgloss.Color("3"), lipgloss.Color("1"), lipgloss.Color("8")
	st := styles{
		header:   s().Bold(true),
		crumb:    s().Bold(true).Foreground(lipgloss.Color("6")),
		dim:      s().Foreground(grey),
		bold:     s().Bold(true),
		selected: s().Reverse(true),
		colTitle: s().Bold(true).Underline(true),
		key:      s().Bold(true).Foreground(lipgloss.Color("6")),
		errText:  s().Foreground(red).Bold(true),
		okText:   s().Foreground(green),
		box:      s().Border(lipgloss.NormalBorder()).Padding(0, 1),
		cursor:   s().Reverse(true),
		plain:    r.ColorProfile() == termenv.Ascii,
	}
	st.tones = [5]lipgloss.Style{s(), s().Foreground(green), s().Foreground(yellow), s().Foreground(red), s().Foreground(grey)}
	return st
}
