package tui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/atoll/atoll/api/universe"
)

// The install form: one field per leaf option of a package's config.json (a draft-04 JSON
// Schema), in the schema's order, nested objects as sections. Fields are typed by the
// schema (text, integer, number, a boolean toggle, a choice among an enum, JSON text for
// arrays and free-form objects) and start at the default Cosmos would use. The form checks
// nothing itself: what the user typed goes to the master as the closest JSON value ("3" a
// number, "many" a string), and the master's render answers every problem with the path
// of the option it is about, which the form shows next to that field.

// fieldKind says how a field is edited and what JSON its value becomes.
type fieldKind int

const (
	fieldString fieldKind = iota
	fieldInteger
	fieldNumber
	fieldBoolean
	fieldChoice
	// fieldJSON is an array, a free-form object or a schema the form cannot break down,
	// edited as JSON text.
	fieldJSON
	// fieldSection heads the fields of a nested object; it holds no value.
	fieldSection
)

// maxFormDepth is how deep objects nest as sections; deeper ones are JSON fields, so that
// a line keeps room for the value.
const maxFormDepth = 8

// maxJSONDepth bounds the nesting of a config.json the form reads, as encoding/json does.
const maxJSONDepth = 10000

// formField is one line of the form: an option, a section heading, or the app id.
type formField struct {
	// keys is the option's path from the options' root; path joins it with dots, as the
	// master's option errors name it.
	keys []string
	path string
	kind fieldKind
	// depth is how many sections enclose the field.
	depth    int
	required bool
	// help is the schema's description.
	help string
	// bounds are the limits the schema sets ("≥ 0"), said with the type.
	bounds string
	// jsonType is the schema's type of a JSON field ("array", "object"), "" when it has none.
	jsonType string
	// def is the default Cosmos merges in when the option is not sent.
	def    any
	hasDef bool
	// choices are an enum's values; with unset, choices[0] stands for "not sent".
	choices            []any
	unset              bool
	choice, initChoice int
	// on is a boolean's value.
	on, initOn bool
	// input holds a text kind's value; initial is its text as the form opened.
	input   *lineInput
	initial string
	// err is what the master said of the value.
	err string
	// appID marks the app id field, sent as the install's appId, not as an option.
	appID bool
}

// printable shows a control character (a newline in a default) as a dot, so that a
// field stays on its line.
func printable(r rune) rune {
	if unicode.IsControl(r) {
		return '·'
	}
	return r
}

// name is the field's label: its last key.
func (f *formField) name() string {
	if f.appID {
		return "app id"
	}
	return f.keys[len(f.keys)-1]
}

// focusable says the field takes keys.
func (f *formField) focusable() bool { return f.kind != fieldSection }

// jsonObject is a JSON object that keeps its keys in document order: the form lists
// options in the order the package's author wrote them.
type jsonObject struct {
	keys []string
	vals map[string]any
}

func (o *jsonObject) get(key string) any { return o.vals[key] }

func (o *jsonObject) lookup(key string) (any, bool) {
	v, ok := o.vals[key]
	return v, ok
}

// MarshalJSON writes the object with its keys in order.
func (o *jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	writeJSON(&b, o)
	return b.Bytes(), nil
}

// decodeOrdered reads one JSON document, objects as *jsonObject and numbers as
// json.Number.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

func readJSON(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch delim {
	case '{':
		obj := &jsonObject{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := kt.(string)
			if !ok {
				return nil, fmt.Errorf("object key %v is not a string", kt)
			}
			v, err := readJSON(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := obj.vals[key]; !dup {
				obj.keys = append(obj.keys, key)
			}
			obj.vals[key] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return obj, nil
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := readJSON(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected %v", delim)
}

// writeJSON writes v compactly, objects in their order, without escaping HTML.
func writeJSON(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case *jsonObject:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, k)
			b.WriteByte(':')
			writeJSON(b, v.vals[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, x)
		}
		b.WriteByte(']')
	default:
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			b.WriteString("null")
			return
		}
		// Encode ends the value with a newline.
		b.Truncate(b.Len() - 1)
	}
}

// jsonText is v as compact JSON.
func jsonText(v any) string {
	var b bytes.Buffer
	writeJSON(&b, v)
	return b.String()
}

// displayText is how a value shows in a field: a string as itself, anything else as JSON.
func displayText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return jsonText(v)
}

// buildFields reads a config.json into the form's fields; an empty config has none.
func buildFields(config json.RawMessage) ([]*formField, error) {
	if len(bytes.TrimSpace(config)) == 0 {
		return nil, nil
	}
	root, err := decodeOrdered(config)
	if err != nil {
		return nil, fmt.Errorf("config.json is not JSON: %w", err)
	}
	obj, ok := root.(*jsonObject)
	if !ok {
		return nil, errors.New("config.json is not a JSON Schema object")
	}
	var fields []*formField
	addObject(&fields, nil, obj, nil, false, 0)
	return fields, nil
}

// addObject adds the fields of an object schema's properties. With inherit, an enclosing
// object has a default, which is where Cosmos takes the properties' defaults from (their
// own are ignored); inherited is that default when it is an object.
func addObject(fields *[]*formField, keys []string, schema *jsonObject, inherited *jsonObject, inherit bool, depth int) {
	props, _ := schema.get("properties").(*jsonObject)
	if props == nil {
		return
	}
	required := map[string]bool{}
	if names, ok := schema.get("required").([]any); ok {
		for _, n := range names {
			if s, ok := n.(string); ok {
				required[s] = true
			}
		}
	}
	for _, name := range props.keys {
		node, ok := props.vals[name].(*jsonObject)
		if !ok {
			continue
		}
		childKeys := append(slices.Clip(keys), name)
		def, hasDef := node.lookup("default")
		if inherit {
			def, hasDef = nil, false
			if inherited != nil {
				def, hasDef = inherited.lookup(name)
			}
		}
		f := &formField{keys: childKeys, path: strings.Join(childKeys, "."), kind: schemaKind(node, def, hasDef), depth: depth,
			required: required[name], bounds: schemaBounds(node)}
		if s, ok := node.get("description").(string); ok {
			f.help = strings.Join(strings.Fields(s), " ")
		}
		if f.kind == fieldSection && depth >= maxFormDepth {
			f.kind = fieldJSON
		}
		if t := schemaType(node); f.kind == fieldJSON && (t == "array" || t == "object") {
			f.jsonType = t
		}
		if f.kind != fieldSection {
			f.setDefault(node, def, hasDef)
			*fields = append(*fields, f)
			continue
		}
		at := len(*fields)
		*fields = append(*fields, f)
		childInherited, _ := def.(*jsonObject)
		addObject(fields, childKeys, node, childInherited, hasDef, depth+1)
		if len(*fields) == at+1 {
			// Nothing to edit inside: no heading either.
			*fields = (*fields)[:at]
		}
	}
}

// schemaType is a schema's type; of a list of types, the first that is not null.
func schemaType(node *jsonObject) string {
	switch t := node.get("type").(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && s != "null" {
				return s
			}
		}
	}
	return ""
}

// schemaKind picks how an option is edited: an enum is a choice whatever its type; a
// schema without a type is read from its properties or its default.
func schemaKind(node *jsonObject, def any, hasDef bool) fieldKind {
	if enum, ok := node.get("enum").([]any); ok && len(enum) > 0 {
		return fieldChoice
	}
	props, _ := node.get("properties").(*jsonObject)
	switch schemaType(node) {
	case "string":
		return fieldString
	case "integer":
		return fieldInteger
	case "number":
		return fieldNumber
	case "boolean":
		return fieldBoolean
	case "object":
		if props != nil && len(props.keys) > 0 {
			return fieldSection
		}
		return fieldJSON
	case "":
		if props != nil && len(props.keys) > 0 {
			return fieldSection
		}
		if hasDef {
			switch def.(type) {
			case string:
				return fieldString
			case json.Number:
				return fieldNumber
			case bool:
				return fieldBoolean
			}
		}
	}
	return fieldJSON
}

// schemaBounds says a number's limits: "≥ 0", "> 0 ≤ 100".
func schemaBounds(node *jsonObject) string {
	var parts []string
	if n, ok := node.get("minimum").(json.Number); ok {
		op := "≥"
		if ex, _ := node.get("exclusiveMinimum").(bool); ex {
			op = ">"
		}
		parts = append(parts, op+" "+n.String())
	}
	if n, ok := node.get("maximum").(json.Number); ok {
		op := "≤"
		if ex, _ := node.get("exclusiveMaximum").(bool); ex {
			op = "<"
		}
		parts = append(parts, op+" "+n.String())
	}
	return strings.Join(parts, " ")
}

// setDefault starts the field at its default.
func (f *formField) setDefault(node *jsonObject, def any, hasDef bool) {
	f.def, f.hasDef = def, hasDef
	switch f.kind {
	case fieldBoolean:
		f.on, _ = def.(bool)
		f.initOn = f.on
	case fieldChoice:
		f.choices, _ = node.get("enum").([]any)
		f.choices = slices.Clone(f.choices)
		at := -1
		if hasDef {
			at = slices.IndexFunc(f.choices, func(c any) bool { return jsonText(c) == jsonText(def) })
		}
		if at < 0 {
			f.choices = append([]any{nil}, f.choices...)
			f.unset, at = true, 0
		}
		f.choice, f.initChoice = at, at
	case fieldJSON:
		if hasDef {
			f.initial = jsonText(def)
		}
		f.input = newLineInput("", f.initial)
	default:
		if hasDef {
			f.initial = displayText(def)
		}
		f.input = newLineInput("", f.initial)
	}
}

// typeName says what the field holds, as the hint next to it and the describe page say.
func (f *formField) typeName() string {
	var s string
	switch f.kind {
	case fieldString:
		s = "string"
	case fieldInteger:
		s = "integer"
	case fieldNumber:
		s = "number"
	case fieldBoolean:
		s = "boolean"
	case fieldChoice:
		var names []string
		for i, c := range f.choices {
			if !f.unset || i > 0 {
				names = append(names, displayText(c))
			}
		}
		s = "one of " + strings.Join(names, ", ")
	case fieldSection:
		s = "object"
	default:
		s = strings.TrimSpace("JSON " + f.jsonType)
	}
	if f.bounds != "" {
		s += " " + f.bounds
	}
	return s
}

// defaultText is the field's default as the form shows it.
func (f *formField) defaultText() string {
	if !f.hasDef {
		return ""
	}
	if s, ok := f.def.(string); ok {
		return strconv.Quote(s)
	}
	return jsonText(f.def)
}

// text is a text kind's value.
func (f *formField) text() string { return f.input.text() }

// changed says the user changed the value from where the form started it.
func (f *formField) changed() bool {
	switch f.kind {
	case fieldSection:
		return false
	case fieldBoolean:
		return f.on != f.initOn
	case fieldChoice:
		return f.choice != f.initChoice
	}
	return f.text() != f.initial
}

// value is what is sent for the field, and whether anything is: only what the user
// changed, so that the installation records the user's options and the package's defaults
// apply to the rest. A cleared number or JSON field is not sent: its default applies.
func (f *formField) value() (any, bool) {
	if f.appID || !f.changed() {
		return nil, false
	}
	switch f.kind {
	case fieldBoolean:
		return f.on, true
	case fieldChoice:
		if f.unset && f.choice == 0 {
			return nil, false
		}
		return f.choices[f.choice], true
	case fieldInteger, fieldNumber:
		text := strings.TrimSpace(f.text())
		if text == "" {
			return nil, false
		}
		if _, err := strconv.ParseFloat(text, 64); err == nil && json.Valid([]byte(text)) {
			return json.Number(text), true
		}
		return f.text(), true
	case fieldJSON:
		text := strings.TrimSpace(f.text())
		if text == "" {
			return nil, false
		}
		if v, err := decodeOrdered([]byte(text)); err == nil {
			return v, true
		}
		return f.text(), true
	}
	return f.text(), true
}

// edit applies a key to the field; it reports whether the value changed.
func (f *formField) edit(k tea.KeyMsg) bool {
	switch f.kind {
	case fieldBoolean:
		switch k.String() {
		case " ", "left", "right":
			f.on = !f.on
			return true
		}
	case fieldChoice:
		n := len(f.choices)
		switch k.String() {
		case " ", "right":
			f.choice = (f.choice + 1) % n
			return true
		case "left":
			f.choice = (f.choice + n - 1) % n
			return true
		}
	case fieldSection:
	default:
		before := f.text()
		f.input.update(k)
		return f.text() != before
	}
	return false
}

// installForm is the install form of one package version.
type installForm struct {
	name, version string
	// preInstall are the package's notes shown before the install is confirmed.
	preInstall string
	fields     []*formField
	// schemaErr says why config.json gave no fields; the package then installs with its
	// defaults.
	schemaErr error
	focus     int
	// offset is the first form line on screen.
	offset int
	// problems are what the master said that no field is about.
	problems []string
	stage    formStage
	// rendered is what the options render to, once the master rendered them.
	rendered renderedSummary
}

// formStage is where the form is in the install.
type formStage int

const (
	stageEdit formStage = iota
	// stageChecking: the options are being rendered by the master.
	stageChecking
	// stageConfirm: they rendered; the user is asked.
	stageConfirm
	// stageInstalling: the install request is under way.
	stageInstalling
)

// renderedSummary is what an install would create: an app, or a group and its apps.
type renderedSummary struct {
	id   string
	apps []string
	// group says the package renders a group.
	group bool
}

func newInstallForm(name, version, preInstall string, config json.RawMessage) *installForm {
	f := &installForm{name: name, version: version, preInstall: preInstall}
	fields, err := buildFields(config)
	f.schemaErr = err
	f.fields = append([]*formField{{appID: true, kind: fieldString, input: newLineInput("", ""),
		help: "install as this app or group id; empty: the id the package's options give"}}, fields...)
	return f
}

// focused is the field under the cursor.
func (f *installForm) focused() *formField { return f.fields[f.focus] }

// move moves the focus by delta fields, skipping section headings.
func (f *installForm) move(delta int) {
	step := 1
	if delta < 0 {
		step, delta = -1, -delta
	}
	at := f.focus
	for ; delta > 0; delta-- {
		next := at + step
		for next >= 0 && next < len(f.fields) && !f.fields[next].focusable() {
			next += step
		}
		if next < 0 || next >= len(f.fields) {
			break
		}
		at = next
	}
	f.focus = at
}

// appID is the app id typed, "" for the package's own.
func (f *installForm) appID() string { return strings.TrimSpace(f.fields[0].text()) }

// options are the options to send: the changed fields' values in nested objects; nil
// when nothing changed.
func (f *installForm) options() json.RawMessage {
	root := map[string]any{}
	for _, fld := range f.fields {
		v, ok := fld.value()
		if !ok {
			continue
		}
		obj := root
		for _, k := range fld.keys[:len(fld.keys)-1] {
			next, _ := obj[k].(map[string]any)
			if next == nil {
				next = map[string]any{}
				obj[k] = next
			}
			obj = next
		}
		obj[fld.keys[len(fld.keys)-1]] = v
	}
	if len(root) == 0 {
		return nil
	}
	return json.RawMessage(jsonText(root))
}

// changes lists the options set, "path: value", in the form's order.
func (f *installForm) changes() []string {
	var out []string
	for _, fld := range f.fields {
		if v, ok := fld.value(); ok {
			out = append(out, fmt.Sprintf("%s: %s", fld.path, jsonText(v)))
		}
	}
	return out
}

// setErrors shows the master's problems: each next to the field of its path, or of the
// nearest enclosing path (an array element's at its array, a free-form object's member at
// the object; at every field of the path, when property names with dots make two), the
// rest above the form. The focus goes to the first field with a problem.
func (f *installForm) setErrors(problems universe.FieldErrors, other string) {
	f.problems = nil
	for _, fld := range f.fields {
		fld.err = ""
	}
	if other != "" {
		f.problems = append(f.problems, other)
	}
	first := -1
	for _, p := range problems {
		path, matched := "", false
		for _, fld := range f.fields {
			if !fld.appID && fld.focusable() && (!matched || len(fld.path) > len(path)) && (p.Path == fld.path ||
				strings.HasPrefix(p.Path, fld.path+".") || strings.HasPrefix(p.Path, fld.path+"[")) {
				path, matched = fld.path, true
			}
		}
		if !matched {
			f.problems = append(f.problems, p.String())
			continue
		}
		for i, fld := range f.fields {
			if fld.appID || !fld.focusable() || fld.path != path {
				continue
			}
			if fld.err != "" {
				fld.err += "; "
			}
			if p.Path != path {
				fld.err += p.Path[len(path):] + ": "
			}
			fld.err += p.Message
			if first < 0 || i < first {
				first = i
			}
		}
	}
	if first >= 0 {
		f.focus = first
	}
}

// lines draws the form's fields in width cells: each field a line, with its problem on
// the next; at is the index of the line of each field.
func (f *installForm) lines(st *styles, width int) (lines []string, at []int) {
	labelWidth := 12
	for _, fld := range f.fields {
		labelWidth = max(labelWidth, fld.depth*2+len([]rune(fld.name()))+2)
	}
	labelWidth = min(labelWidth, max(12, width/3))
	valueWidth := max(8, min(40, width-gutter-labelWidth-2-14))
	for i, fld := range f.fields {
		at = append(at, len(lines))
		mark := strings.Repeat(" ", gutter)
		if i == f.focus {
			mark = ">" + strings.Repeat(" ", gutter-1)
		}
		label := strings.Repeat("  ", fld.depth) + strings.Map(printable, fld.name())
		if fld.required {
			label += " *"
		}
		if fld.kind == fieldSection {
			lines = append(lines, mark+st.bold.Render(label))
			continue
		}
		var value string
		switch fld.kind {
		case fieldBoolean:
			value = "[ ]"
			if fld.on {
				value = "[x]"
			}
		case fieldChoice:
			c := "-"
			if !fld.unset || fld.choice > 0 {
				c = displayText(fld.choices[fld.choice])
			}
			value = fit("‹ "+strings.Map(printable, c)+" ›", valueWidth, false)
		default:
			if i == f.focus {
				value = fld.input.viewWidth(st, valueWidth)
			} else {
				value = fit(strings.Map(printable, fld.text()), valueWidth, false)
			}
		}
		value += strings.Repeat(" ", max(0, valueWidth-ansi.StringWidth(value)))
		hint := fld.typeName()
		if fld.appID {
			hint = "optional"
		}
		if fld.changed() && fld.hasDef {
			hint += " · default " + fld.defaultText()
		}
		hint = strings.Map(printable, hint)
		line := mark + fit(label, labelWidth, false) + "  " + value + "  " + st.dim.Render(hint)
		if i == f.focus {
			line = mark + st.bold.Render(fit(label, labelWidth, false)) + "  " + value + "  " + st.dim.Render(hint)
		}
		lines = append(lines, line)
		if fld.err != "" {
			lines = append(lines, strings.Repeat(" ", gutter+labelWidth+2)+st.errText.Render("✗ "+strings.Map(printable, fld.err)))
		}
	}
	return lines, at
}
