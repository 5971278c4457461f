package pkgs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// mustacheTemplate is a parsed Mustache template (mustache(5)): variables, sections,
// inverted sections, comments, partials and set-delimiter tags, with the spec's standalone
// lines (a section, comment, partial or delimiter tag alone on its line takes the line with
// it). Templates render JSON and notes, never HTML, so nothing is HTML-escaped: {{x}},
// {{{x}}} and {{&x}} write the same. Values come from JSON, so there are no lambdas.
//
// Values are looked up as Cosmos's Mustache did: a name through the context stack from the
// innermost section out, a dotted name's first part so and the rest inside what that found.
// What is false in a section: a missing name, false, null (nil or mustacheNull), a string of
// only white space and an empty array. Numbers, 0 too, are true.
type mustacheTemplate struct {
	nodes []mustacheNode
	// partials are the names of the template's partials, in order; they render as nothing.
	partials []string
}

type mustacheKind uint8

const (
	mustacheText mustacheKind = iota
	mustacheVariable
	mustacheSection
	mustacheInverted
	mustachePartial
)

// mustacheNode is a piece of a template: text, or a tag and, for a section, what it holds.
type mustacheNode struct {
	kind  mustacheKind
	text  string // the text, or the tag's name
	nodes []mustacheNode
}

// maxMustacheDepth is how deeply sections may nest: deeper templates are refused rather
// than rendered with ever deeper recursion.
const maxMustacheDepth = 100

// mustacheFrame is a section being parsed.
type mustacheFrame struct {
	node *mustacheNode
	line int // of its opening tag
}

// parseMustache parses a template. Errors name the line: a tag not closed, an empty tag, a
// section closed by another name or never, a closing tag with no section, a bad
// set-delimiter tag, or sections nested deeper than maxMustacheDepth.
func parseMustache(src string) (*mustacheTemplate, error) {
	t := &mustacheTemplate{}
	root := &mustacheNode{kind: mustacheSection}
	stack := []mustacheFrame{{node: root}}
	open, closing := "{{", "}}"
	pos := 0
	line, counted := 1, 0 // line is the line number of src[counted]
	for {
		top := stack[len(stack)-1].node
		i := strings.Index(src[pos:], open)
		if i < 0 {
			top.appendText(src[pos:])
			break
		}
		start := pos + i
		line += strings.Count(src[counted:start], "\n")
		counted = start
		inner := start + len(open)
		closer := closing
		triple := strings.HasPrefix(src[inner:], "{")
		if triple {
			closer = "}" + closing
		}
		j := strings.Index(src[inner:], closer)
		if j < 0 {
			return nil, fmt.Errorf("line %d: the tag %s has no closing %s", line, open, closer)
		}
		end := inner + j + len(closer)
		content := strings.TrimSpace(src[inner : inner+j])
		if triple {
			content = "&" + content[1:]
		}
		if content == "" || content == "&" {
			return nil, fmt.Errorf("line %d: empty tag %s", line, src[start:end])
		}
		sigil, name := content[0], strings.TrimSpace(content[1:])

		// A tag other than a variable, alone on its line, takes the line with it.
		text, next := src[pos:start], end
		if strings.IndexByte("!#^/>=", sigil) >= 0 {
			// The line starts in the text since the last tag, or that text is all of it.
			lineStart := pos + strings.LastIndexByte(src[pos:start], '\n') + 1
			atLineStart := lineStart > pos || pos == 0 || src[pos-1] == '\n'
			after := end
			for after < len(src) && (src[after] == ' ' || src[after] == '\t') {
				after++
			}
			rest := src[after:]
			eol := -1
			switch {
			case rest == "":
				eol = after
			case rest[0] == '\n':
				eol = after + 1
			case strings.HasPrefix(rest, "\r\n"):
				eol = after + 2
			}
			if atLineStart && eol >= 0 && strings.Trim(src[lineStart:start], " \t") == "" {
				text, next = src[pos:lineStart], eol
			}
		}
		top.appendText(text)
		pos = next

		switch sigil {
		case '!':
		case '#', '^':
			if len(stack) > maxMustacheDepth {
				return nil, fmt.Errorf("line %d: sections nest deeper than %d", line, maxMustacheDepth)
			}
			kind := mustacheSection
			if sigil == '^' {
				kind = mustacheInverted
			}
			top.nodes = append(top.nodes, mustacheNode{kind: kind, text: name})
			stack = append(stack, mustacheFrame{node: &top.nodes[len(top.nodes)-1], line: line})
		case '/':
			if len(stack) == 1 {
				return nil, fmt.Errorf("line %d: %s closes no open section", line, src[start:end])
			}
			if opened := stack[len(stack)-1]; opened.node.text != name {
				return nil, fmt.Errorf("line %d: %s closes a section, but the one open is %s (line %d)",
					line, src[start:end], opened.node.text, opened.line)
			}
			stack = stack[:len(stack)-1]
		case '>':
			top.nodes = append(top.nodes, mustacheNode{kind: mustachePartial, text: name})
			t.partials = append(t.partials, name)
		case '=':
			delims := strings.Fields(strings.TrimSuffix(name, "="))
			if !strings.HasSuffix(name, "=") || len(delims) != 2 || strings.Contains(delims[0]+delims[1], "=") {
				return nil, fmt.Errorf("line %d: %s is not a set-delimiter tag like {{=<%% %%>=}}", line, src[start:end])
			}
			open, closing = delims[0], delims[1]
		case '&':
			top.nodes = append(top.nodes, mustacheNode{kind: mustacheVariable, text: name})
		default:
			top.nodes = append(top.nodes, mustacheNode{kind: mustacheVariable, text: content})
		}
	}
	if len(stack) > 1 {
		opened := stack[len(stack)-1]
		return nil, fmt.Errorf("line %d: section %s has no closing {{/%s}}", opened.line, opened.node.text, opened.node.text)
	}
	t.nodes = root.nodes
	return t, nil
}

// appendText adds text to a section (nothing for none), joined to text just before it.
func (n *mustacheNode) appendText(text string) {
	if text == "" {
		return
	}
	if last := len(n.nodes) - 1; last >= 0 && n.nodes[last].kind == mustacheText {
		n.nodes[last].text += text
		return
	}
	n.nodes = append(n.nodes, mustacheNode{kind: mustacheText, text: text})
}

// maxMustacheSteps bounds the work of one render: sections nested over arrays multiply
// (three nested over an array of 1,000 elements render their body a billion times), and a
// template must not hold the master that long.
const maxMustacheSteps = 10_000_000

// maxMustacheOutput bounds what one render writes: 64 MiB, far more than any app.
const maxMustacheOutput = 64 << 20

// errMustacheTooBig is the error of a render beyond maxMustacheSteps or maxMustacheOutput.
var errMustacheTooBig = fmt.Errorf("rendering takes more than %d steps or writes more than %d MiB: are sections nested over large arrays?",
	maxMustacheSteps, maxMustacheOutput>>20)

// render renders the template with ctx as its outermost context.
func (t *mustacheTemplate) render(ctx any) (string, error) {
	r := mustacheRenderer{steps: maxMustacheSteps}
	if !r.render(t.nodes, []any{ctx}) {
		return "", errMustacheTooBig
	}
	return r.out.String(), nil
}

// mustacheRenderer renders a template within its budget of steps.
type mustacheRenderer struct {
	out   strings.Builder
	steps int
}

// render renders nodes with stack as the context stack, innermost last. It reports false
// once the budget is spent.
func (r *mustacheRenderer) render(nodes []mustacheNode, stack []any) bool {
	for _, n := range nodes {
		if r.steps--; r.steps < 0 || r.out.Len() > maxMustacheOutput {
			return false
		}
		switch n.kind {
		case mustacheText:
			r.out.WriteString(n.text)
		case mustacheVariable:
			if v, ok := lookupMustache(stack, n.text); ok {
				writeMustacheValue(&r.out, v)
			}
		case mustacheSection:
			v, ok := lookupMustache(stack, n.text)
			if !ok || !mustacheTrue(v) {
				continue
			}
			inner := append(stack[:len(stack):len(stack)], nil)
			var list []any
			switch x := v.(type) {
			case mustacheArray:
				list = x
			case []any:
				list = x
			default:
				list = []any{v}
			}
			for _, e := range list {
				inner[len(inner)-1] = e
				if !r.render(n.nodes, inner) {
					return false
				}
			}
		case mustacheInverted:
			if v, ok := lookupMustache(stack, n.text); !ok || !mustacheTrue(v) {
				if !r.render(n.nodes, stack) {
					return false
				}
			}
		}
	}
	return true
}

// lookupMustache finds name in the context stack: "." is the innermost context; otherwise
// the first part of a dotted name is looked for in each context from the innermost out,
// and the others each inside what the previous part found.
func lookupMustache(stack []any, name string) (any, bool) {
	if name == "." {
		return stack[len(stack)-1], true
	}
	first, rest, dotted := strings.Cut(name, ".")
	var v any
	found := false
	for i := len(stack) - 1; i >= 0 && !found; i-- {
		if m, ok := stack[i].(map[string]any); ok {
			v, found = m[first]
		}
	}
	for found && dotted {
		first, rest, dotted = strings.Cut(rest, ".")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v, found = m[first]
	}
	return v, found
}

// mustacheTrue reports whether a section of v renders (once, or once per element).
func mustacheTrue(v any) bool {
	switch x := v.(type) {
	case nil, mustacheNull:
		return false
	case bool:
		return x
	case string:
		return strings.TrimSpace(x) != ""
	case mustacheArray:
		return len(x) > 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return x != nil
	default:
		return true
	}
}

// writeMustacheValue writes a variable's value: strings and numbers as they are, null as
// nothing, anything else as Go prints it (a mustacheArray through its String method).
func writeMustacheValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		b.WriteString(x)
	case mustacheNumber:
		b.WriteString(string(x))
	case json.Number:
		b.WriteString(string(x))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case fmt.Stringer:
		b.WriteString(x.String())
	default:
		fmt.Fprint(b, x)
	}
}

// RenderNotes renders a package's notes with the install options, so that they can name
// what was installed ({{service.name}}), values as they are and every partial empty (a note
// must not read files). Notes that are not a valid template are shown as they are.
func RenderNotes(notes string, options map[string]any) string {
	t, err := parseMustache(notes)
	if err != nil {
		return notes
	}
	out, err := t.render(options)
	if err != nil {
		return notes
	}
	return out
}
