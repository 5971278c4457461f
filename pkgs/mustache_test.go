package pkgs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestMustache pins the Mustache that templates and notes are rendered with, case by case
// as mustache(5) and its spec describe, plus Cosmos's false values.
func TestMustache(t *testing.T) {
	tests := []struct {
		name, template, data, want string
	}{
		{"text", "no tags\n", `{}`, "no tags\n"},
		{"variable", `Hi {{name}}!`, `{"name": "Jo"}`, `Hi Jo!`},
		{"spaces in tags", `{{ name }}{{{ name }}}{{& name }}`, `{"name": "a"}`, `aaa`},
		{"nothing escaped", `{{s}}{{{s}}}`, `{"s": "<&\"'>"}`, `<&"'><&"'>`},
		{"numbers and booleans", `{{i}} {{f}} {{t}} {{n}}`, `{"i": 7, "f": 0.5, "t": true, "n": null}`, `7 0.5 true `},
		{"missing", `[{{x}}][{{x.y}}][{{a.x}}]`, `{"a": {}}`, `[][][]`},
		{"dotted", `{{a.b.c}}`, `{"a": {"b": {"c": "d"}}}`, `d`},
		{"dotted names do not climb back up", `{{#a}}{{b.c}}{{/a}}`, `{"a": {"b": {}}, "b": {"c": "outer"}}`, ``},
		{"inner context first", `{{#a}}{{x}}{{/a}}{{x}}`, `{"a": {"x": "in"}, "x": "out"}`, `inout`},
		{"outer context reached", `{{#a}}{{x}}{{/a}}`, `{"a": {"y": 1}, "x": "out"}`, `out`},
		{"list", `{{#l}}<{{v}}>{{/l}}`, `{"l": [{"v": 1}, {"v": 2}, {"v": 3}]}`, `<1><2><3>`},
		{"implicit iterator", `{{#l}}{{.}},{{/l}}`, `{"l": ["a", 1, true]}`, `a,1,true,`},
		{"scalar section pushes itself", `{{#s}}({{.}}){{/s}}`, `{"s": "x"}`, `(x)`},
		{"nested lists", `{{#a}}{{#b}}{{.}}{{/b}};{{/a}}`, `{"a": [{"b": [1, 2]}, {"b": [3]}]}`, `12;3;`},
		{"false values", `{{#f}}1{{/f}}{{#n}}2{{/n}}{{#e}}3{{/e}}{{#w}}4{{/w}}{{#l}}5{{/l}}{{#m}}6{{/m}}`,
			`{"f": false, "n": null, "e": "", "w": " \t", "l": []}`, ``},
		{"true values", `{{#t}}1{{/t}}{{#o}}2{{/o}}{{#s}}3{{/s}}{{#z}}4{{/z}}{{#d}}5{{/d}}`, `{"t": true, "o": {}, "s": "0", "z": 0, "d": 0.0}`, `12345`},
		{"inverted", `{{^f}}F{{/f}}{{^t}}T{{/t}}{{^m}}M{{/m}}{{^l}}L{{/l}}`, `{"f": false, "t": true, "l": []}`, `FML`},
		{"inverted keeps the context", `{{#a}}{{^no}}{{x}}{{/no}}{{/a}}`, `{"a": {"x": "y"}}`, `y`},
		{"comment", `a{{! anything
at all }}b`, `{}`, `ab`},
		{"standalone lines go", "a\n  {{#s}}  \n  x\n  {{/s}}\n{{! c }}\nb\n", `{"s": true}`, "a\n  x\nb\n"},
		{"standalone with CRLF", "a\r\n{{#s}}\r\nx\r\n{{/s}}\r\nb", `{"s": true}`, "a\r\nx\r\nb"},
		{"standalone at the end", "a\n{{! c }}", `{}`, "a\n"},
		{"not standalone beside text", "a {{#s}}\nx{{/s}} b\n", `{"s": true}`, "a \nx b\n"},
		{"not standalone beside another tag", "{{x}} {{#s}}\ny{{/s}}", `{"s": true, "x": 1}`, "1 \ny"},
		{"variables are never standalone", "  {{x}}\n", `{"x": 1}`, "  1\n"},
		{"set delimiters", `{{=<% %>=}}<%x%> {{x}} <%={{ }}=%>{{x}}`, `{"x": 1}`, `1 {{x}} 1`},
		{"sections under other delimiters", `{{=| |=}}|#l||.||/l|`, `{"l": [1, 2]}`, `12`},
		{"partials are empty", "a{{> p}}b\n  {{>q}}\nc", `{}`, "ab\nc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseMustache(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			var data any
			dec := json.NewDecoder(strings.NewReader(tt.data))
			dec.UseNumber()
			if err := dec.Decode(&data); err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.render(data)
			if err != nil || got != tt.want {
				t.Errorf("render %q with %s = %q, %v; want %q", tt.template, tt.data, got, err, tt.want)
			}
		})
	}
}

func TestMustacheErrors(t *testing.T) {
	tests := map[string]string{
		"a {{b":                       "line 1: the tag {{ has no closing }}",
		"\n{{{b}}":                    "line 2: the tag {{ has no closing }}}",
		"{{ }}":                       "line 1: empty tag {{ }}",
		"{{{ }}}":                     "line 1: empty tag {{{ }}}",
		"{{#a}}\n{{#b}}\n{{/b}}":      "line 1: section a has no closing {{/a}}",
		"x\n{{/a}}":                   "line 2: {{/a}} closes no open section",
		"{{#a}}\n{{#b}}\n{{/a}}":      "line 3: {{/a}} closes a section, but the one open is b (line 2)",
		"{{=<% %>}}":                  "line 1: {{=<% %>}} is not a set-delimiter tag like {{=<% %>=}}",
		"{{= a b c =}}":               "line 1: {{= a b c =}} is not a set-delimiter tag like {{=<% %>=}}",
		strings.Repeat("{{#a}}", 101): "line 1: sections nest deeper than 100",
	}
	for template, want := range tests {
		if _, err := parseMustache(template); err == nil || err.Error() != want {
			t.Errorf("parse %q: error %v, want %s", template, err, want)
		}
	}
	if _, err := parseTemplate(`{"id": "{{#a}}{{> /etc/passwd}}{{/a}}"}`); err == nil || err.Error() != "partials are not supported: {{> /etc/passwd}}" {
		t.Errorf("a Marathon template with a partial: error %v", err)
	}
}

// TestMustacheBudget: sections nested over an array multiply the work; a render that would
// take too long stops with an error instead.
func TestMustacheBudget(t *testing.T) {
	list := make([]any, 1000)
	for i := range list {
		list[i] = float64(i + 1)
	}
	tmpl, err := parseMustache(`{{#l}}{{#l}}{{#l}}.{{/l}}{{/l}}{{/l}}`)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tmpl.render(map[string]any{"l": list}); !errors.Is(err, errMustacheTooBig) || out != "" {
		t.Errorf("render = %d bytes, %v; want errMustacheTooBig", len(out), err)
	}
	// Two levels (a million bodies) are within the budget.
	tmpl, err = parseMustache(`{{#l}}{{#l}}.{{/l}}{{/l}}`)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tmpl.render(map[string]any{"l": list}); err != nil || len(out) != 1000*1000 {
		t.Errorf("render = %d bytes, %v; want 1,000,000", len(out), err)
	}
	if got := RenderNotes("{{#l}}{{#l}}{{#l}}.{{/l}}{{/l}}{{/l}}", map[string]any{"l": list}); got != "{{#l}}{{#l}}{{#l}}.{{/l}}{{/l}}{{/l}}" {
		t.Errorf("notes beyond the budget render as %d bytes, want them as they are", len(got))
	}
}

func TestRenderNotes(t *testing.T) {
	options := map[string]any{"service": map[string]any{"name": "web", "count": json.Number("3"), "tags": []any{"a", "b"}}}
	tests := map[string]string{
		"plain":                               "plain",
		"{{service.name}} ×{{service.count}}": "web ×3",
		"{{#service.tags}}[{{.}}]{{/service.tags}}": "[a][b]",
		"{{> partial}}x": "x",
		"broken {{#a}}":  "broken {{#a}}",
	}
	for notes, want := range tests {
		if got := RenderNotes(notes, options); got != want {
			t.Errorf("RenderNotes(%q) = %q, want %q", notes, got, want)
		}
	}
}

// FuzzMustache: any template parses or is refused with a line-numbered error, and renders
// with any options without panicking, within the budget or with errMustacheTooBig; text
// without tags renders as itself.
func FuzzMustache(f *testing.F) {
	f.Add(`{{#a}}{{#b}}{{c}}{{/b}}{{/a}}{{^d}}{{{e}}}{{/d}}{{! comment }}{{=<% %>=}}<%x%>`, []byte(`{"a": {"b": [1, {"c": null}]}, "e": "<&>"}`))
	f.Add("a\n  {{#a}}  \nx{{.}}\n  {{/a}}\r\n{{! c }}\n{{> p}}\n", []byte(`{"a": ["x", 1, true, [], {"k": "v"}]}`))
	f.Add(`{{a.b.c}} {{a}} {{#a}}{{b.c}}{{/a}} {{^x}}{{a.b}}{{/x}}`, []byte(`{"a": {"b": {"c": 2.5}}, "x": "  "}`))
	f.Add("{{=| |=}}\n|#a|\n  |x|\n|/a|\n|={{ }}=|{{{a}}}", []byte(`{"a": "1", "x": [2]}`))
	f.Fuzz(func(t *testing.T, template string, options []byte) {
		tmpl, err := parseMustache(template)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("parse %q: error without a line: %v", template, err)
			}
			return
		}
		if !strings.Contains(template, "{{") {
			if out, err := tmpl.render(nil); err != nil || out != template {
				t.Fatalf("text %q renders as %q, %v", template, out, err)
			}
		}
		opts, err := parseOptions(json.RawMessage(options))
		if err != nil {
			return
		}
		if _, err := tmpl.render(mustacheContext(opts, false)); err != nil && !errors.Is(err, errMustacheTooBig) {
			t.Fatalf("render %q: %v", template, err)
		}
	})
}
