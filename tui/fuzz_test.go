package tui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// FuzzMarathonEvent: no /v2/events event, however malformed, panics the state or leaves
// an app without its id.
func FuzzMarathonEvent(f *testing.F) {
	f.Add(marathon.EventAPIPost, []byte(`{"eventType":"api_post_event","appDefinition":{"id":"/a","instances":2}}`))
	f.Add(marathon.EventDeploymentInfo, []byte(`{"id":"d1","plan":{"id":"d1","steps":[{"actions":[{"action":"StartApplication","app":"/a"}]}]},"currentStep":{"actions":[]}}`))
	f.Add(marathon.EventDeploymentSuccess, []byte(`{"id":"d1","plan":{}}`))
	f.Add(marathon.EventStatusUpdate, []byte(`{"taskId":"a.1","taskStatus":"TASK_RUNNING","appId":"/a"}`))
	f.Add(marathon.EventAppTerminated, []byte(`{"appId":"/a"}`))
	f.Add(marathon.EventHealthStatusChanged, []byte(`{"appId":"/a","instanceId":"a.1","alive":true}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		s := newClusterState(time.Now, 10, 10)
		s.applyMarathonEvent(marathon.Event{Type: typ, Data: data})
		for id, a := range s.apps {
			if a.info.ID != id {
				t.Errorf("app %q recorded as %q", a.info.ID, id)
			}
		}
		for _, d := range s.deployments {
			if d.ID == "" {
				t.Errorf("a deployment without an id: %+v", d)
			}
		}
	})
}

// FuzzInstallForm: the form builder reads any config.json without panicking; its fields
// have their paths; an untouched form sends nothing; edited, it sends a JSON object; every
// field takes the master's problem at its path; it draws at any width.
func FuzzInstallForm(f *testing.F) {
	f.Add([]byte(`{"type":"object","properties":{"service":{"type":"object","properties":{"name":{"type":"string","default":"x"},"n":{"type":"integer","minimum":0}},"required":["name"]}}}`))
	f.Add([]byte(`{"properties":{"a":{"enum":["x",1,true,null],"default":1},"b":{"type":["null","boolean"]},"c":{"type":"array","default":[1,{"z":"<&>"}]}}}`))
	f.Add([]byte(`{"properties":{"a":{"default":{"b":2},"properties":{"b":{"type":"number","default":9},"c":{"type":"string"}}}}}`))
	f.Add([]byte(`{"properties":{"a.b":{"type":"string"},"a":{"properties":{"b":{"type":"string"}}}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"properties":{"x":{"enum":[]}}}`))
	f.Add([]byte(`{"properties":{"":{}}}`))
	f.Add([]byte(`{"properties":{"a\nb":{"type":"string","default":"x\ny","description":"d\ne"},"c":{"enum":["1\r2"]}}}`))
	f.Fuzz(func(t *testing.T, config []byte) {
		form := newInstallForm("pkg", "1.0", "notes", config)
		if !form.fields[0].appID || form.focus != 0 {
			t.Fatalf("the app id field is not first and focused")
		}
		seen := map[string]bool{}
		for _, fld := range form.fields[1:] {
			if len(fld.keys) == 0 || fld.path != strings.Join(fld.keys, ".") || fld.kind < fieldString || fld.kind > fieldSection {
				t.Fatalf("field %+v", fld)
			}
			id := strings.Join(fld.keys, "\x00")
			if seen[id] {
				t.Fatalf("two fields for %q", fld.keys)
			}
			seen[id] = true
		}
		if opts := form.options(); opts != nil {
			t.Fatalf("an untouched form sends %s", opts)
		}
		var problems universe.FieldErrors
		for i := range form.fields {
			form.move(1)
			if !form.focused().focusable() {
				t.Fatalf("focus on a section at %d", i)
			}
			fld := form.focused()
			fld.edit(keyMsg(" "))
			fld.edit(keyMsg("1"))
			if !fld.appID && fld.focusable() {
				problems = append(problems, universe.FieldError{Path: fld.path, Message: "bad"})
			}
		}
		if opts := form.options(); opts != nil {
			var obj map[string]any
			if err := json.Unmarshal(opts, &obj); err != nil {
				t.Fatalf("the form sends %s: %v", opts, err)
			}
		}
		form.setErrors(problems, "")
		for _, fld := range form.fields[1:] {
			if fld.focusable() && !strings.Contains(fld.err, "bad") {
				t.Fatalf("field %s has no error: %q", fld.path, fld.err)
			}
		}
		st := newStyles(plainRenderer())
		for _, width := range []int{20, 120} {
			lines, at := form.lines(&st, width)
			if len(at) != len(form.fields) || len(lines) < len(form.fields) {
				t.Fatalf("%d lines, %d positions for %d fields", len(lines), len(at), len(form.fields))
			}
			for _, l := range lines {
				if strings.ContainsAny(l, "\n\r") {
					t.Fatalf("line %q breaks", l)
				}
			}
		}
		for _, l := range optionSummary(config) {
			if strings.ContainsAny(l, "\n\r") {
				t.Fatalf("option line %q breaks", l)
			}
		}
	})
}
