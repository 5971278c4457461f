package tui

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// column is a column of a table.
type column struct {
	title string
	// min is the narrowest the column is cut to before columns are dropped; max caps its
	// width however long its cells (0: no cap).
	min, max int
	// numeric columns sort by their rows' nums and align right.
	numeric bool
	// drop orders the columns hidden when the screen is too narrow: the highest first;
	// 0 is never.
	drop int
}

// row is a row of a table.
type row struct {
	// key identifies what the row shows, so that the selection follows it.
	key   string
	cells []string
	// nums holds the sort values of numeric columns, by column.
	nums []float64
	tone tone
	// text is the cells joined, what filters match.
	text string
}

// table is a sortable, filterable table with a cursor: it renders only the rows on screen.
type table struct {
	cols []column
	// all is every row; rows those that pass the filter, sorted.
	all  []row
	rows []row
	// natural is each column's widest cell (capped by max).
	natural []int
	sortCol int
	desc    bool
	filter  *regexp.Regexp
	cursor  int
	offset  int
}

func newTable(cols []column, sortCol int, desc bool) *table {
	return &table{cols: cols, sortCol: sortCol, desc: desc}
}

// gutter is the width of the selection mark before each row.
const gutter = 2

// columnGap is the space between columns.
const columnGap = 2

// selectedKey is the key of the row under the cursor, "" when there is none.
func (t *table) selectedKey() string {
	if t.cursor < 0 || t.cursor >= len(t.rows) {
		return ""
	}
	return t.rows[t.cursor].key
}

// setRows replaces the rows, keeping the cursor on the row it was on when that is still
// there.
func (t *table) setRows(rows []row) {
	keep := t.selectedKey()
	t.all = rows
	t.natural = make([]int, len(t.cols))
	for i, c := range t.cols {
		t.natural[i] = ansi.StringWidth(c.title) + 1 // room for the sort mark
	}
	for ri := range rows {
		r := &rows[ri]
		for i, cell := range r.cells {
			if i < len(t.natural) {
				t.natural[i] = max(t.natural[i], ansi.StringWidth(cell))
			}
		}
		r.text = strings.Join(r.cells, " ")
	}
	for i, c := range t.cols {
		if c.max > 0 {
			t.natural[i] = min(t.natural[i], c.max)
		}
	}
	t.refresh(keep)
}

// setFilter filters the rows with re (nil: none).
func (t *table) setFilter(re *regexp.Regexp) {
	t.filter = re
	t.refresh(t.selectedKey())
}

// sortBy sorts by another column (delta columns to the right) or, with delta 0, reverses.
func (t *table) sortBy(delta int) {
	if delta == 0 {
		t.desc = !t.desc
	} else {
		t.sortCol = (t.sortCol + delta + len(t.cols)) % len(t.cols)
		t.desc = t.cols[t.sortCol].numeric
	}
	t.refresh(t.selectedKey())
}

// refresh filters and sorts the rows and puts the cursor on keep when it is there.
func (t *table) refresh(keep string) {
	rows := t.all
	if t.filter != nil {
		rows = make([]row, 0, len(t.all))
		for _, r := range t.all {
			if t.filter.MatchString(r.text) {
				rows = append(rows, r)
			}
		}
	} else {
		rows = slices.Clone(rows)
	}
	col, numeric := t.sortCol, t.sortCol < len(t.cols) && t.cols[t.sortCol].numeric
	slices.SortStableFunc(rows, func(a, b row) int {
		var c int
		if numeric {
			c = cmp.Compare(num(a, col), num(b, col))
		} else {
			c = strings.Compare(cell(a, col), cell(b, col))
		}
		if t.desc {
			c = -c
		}
		return cmp.Or(c, strings.Compare(a.key, b.key))
	})
	t.rows = rows
	t.cursor = min(t.cursor, len(rows)-1)
	if keep != "" {
		if i := slices.IndexFunc(rows, func(r row) bool { return r.key == keep }); i >= 0 {
			t.cursor = i
		}
	}
	t.cursor = max(t.cursor, 0)
}

func num(r row, i int) float64 {
	if i < len(r.nums) {
		return r.nums[i]
	}
	return 0
}

func cell(r row, i int) string {
	if i < len(r.cells) {
		return r.cells[i]
	}
	return ""
}

// move moves the cursor by delta rows, staying on the table.
func (t *table) move(delta int) {
	t.cursor = max(0, min(t.cursor+delta, len(t.rows)-1))
}

// moveTo puts the cursor on the first (top) or last row.
func (t *table) moveTo(top bool) {
	if top {
		t.cursor = 0
	} else {
		t.cursor = max(0, len(t.rows)-1)
	}
}

// layout picks the columns shown in width and their widths: each column as wide as its
// widest cell, the widest cut first, columns dropped in their drop order when cutting
// does not suffice.
func (t *table) layout(width int) (shown []int, widths []int) {
	for i := range t.cols {
		shown = append(shown, i)
	}
	for {
		widths = widths[:0]
		total := gutter
		for n, i := range shown {
			w := t.natural[i]
			widths = append(widths, w)
			total += w
			if n > 0 {
				total += columnGap
			}
		}
		for total > width {
			widest := -1
			for n, i := range shown {
				if widths[n] > t.cols[i].min && (widest < 0 || widths[n] > widths[widest]) {
					widest = n
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
			total--
		}
		if total <= width {
			return shown, widths
		}
		drop := -1
		for n, i := range shown {
			if t.cols[i].drop > 0 && (drop < 0 || t.cols[i].drop > t.cols[shown[drop]].drop) {
				drop = n
			}
		}
		if drop < 0 {
			return shown, widths
		}
		shown = slices.Delete(shown, drop, drop+1)
	}
}

// render draws the header and the rows around the cursor in width × height cells; empty
// is said when no row is there.
func (t *table) render(width, height int, st *styles, empty string) string {
	if len(t.natural) != len(t.cols) {
		t.natural = make([]int, len(t.cols))
		for i, c := range t.cols {
			t.natural[i] = ansi.StringWidth(c.title) + 1
		}
	}
	shown, widths := t.layout(width)
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", gutter))
	for n, i := range shown {
		title := t.cols[i].title
		if i == t.sortCol {
			if t.desc {
				title += "↓"
			} else {
				title += "↑"
			}
		}
		if n > 0 {
			b.WriteString(strings.Repeat(" ", columnGap))
		}
		b.WriteString(st.colTitle.Render(fit(title, widths[n], t.cols[i].numeric)))
	}
	lines := []string{b.String()}
	body := height - 1
	if len(t.rows) == 0 {
		if body > 0 {
			lines = append(lines, st.dim.Render(fit(strings.Repeat(" ", gutter)+empty, width, false)))
		}
		return strings.Join(lines, "\n")
	}
	if t.cursor < t.offset {
		t.offset = t.cursor
	}
	if t.cursor >= t.offset+body {
		t.offset = t.cursor - body + 1
	}
	t.offset = max(0, min(t.offset, len(t.rows)-body))
	for ri := t.offset; ri < len(t.rows) && ri < t.offset+body; ri++ {
		r := t.rows[ri]
		var line strings.Builder
		if ri == t.cursor {
			line.WriteString(">" + strings.Repeat(" ", gutter-1))
		} else {
			line.WriteString(strings.Repeat(" ", gutter))
		}
		for n, i := range shown {
			if n > 0 {
				line.WriteString(strings.Repeat(" ", columnGap))
			}
			line.WriteString(fit(cell(r, i), widths[n], t.cols[i].numeric))
		}
		text := line.String()
		if ri == t.cursor {
			lines = append(lines, st.selected.Render(text))
		} else {
			lines = append(lines, st.tones[r.tone].Render(text))
		}
	}
	return strings.Join(lines, "\n")
}

// fit cuts s to width cells (marking the cut with …) and pads it, to the left when right
// is set.
func fit(s string, width int, right bool) string {
	if width <= 0 {
		return ""
	}
	w := ansi.StringWidth(s)
	if w > width {
		return ansi.Truncate(s, width, "…")
	}
	pad := strings.Repeat(" ", width-w)
	if right {
		return pad + s
	}
	return s + pad
}

// position says where the cursor is, "3/120".
func (t *table) position() string {
	if len(t.rows) == 0 {
		return "0/0"
	}
	return fmt.Sprintf("%d/%d", t.cursor+1, len(t.rows))
}
