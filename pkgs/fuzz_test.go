package pkgs

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/atoll/atoll/api/universe"
)

// FuzzLoadIndex: loading an index never panics, and a loaded index serves an index that
// loads back to the same packages.
func FuzzLoadIndex(f *testing.F) {
	index, err := json.Marshal(testRepo(f).Index())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(index)
	f.Add([]byte(`{"packages": []}`))
	f.Add([]byte(`{"packages": [{"packagingVersion": "2.0", "name": "ab", "version": "1", "maintainer": "m", "description": "d", "tags": [], "releaseVersion": 0, "marathon": {"v2AppMustacheTemplate": "e319"}}]}`))
	f.Add([]byte(`{"packages": [{"packagingVersion": "4.0", "name": "ab", "version": "1", "maintainer": "m", "description": "d", "tags": ["x"], "releaseVersion": 2, "config": {"properties": {"a": {"$ref": "#/definitions/b"}}, "definitions": {"b": {"type": "string", "id": "x"}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		repo, err := LoadIndex(data, "fuzz", "")
		if err != nil {
			return
		}
		again, err := json.Marshal(repo.Index())
		if err != nil {
			t.Fatal(err)
		}
		repo2, err := LoadIndex(again, "fuzz", "")
		if err != nil {
			t.Fatalf("the served index does not load: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(coordinates(repo.Packages), coordinates(repo2.Packages)) {
			t.Fatalf("packages %v, then %v", coordinates(repo.Packages), coordinates(repo2.Packages))
		}
	})
}

// FuzzOptions: merging and checking options never panics; refusals are *OptionsError with
// problems; accepted options are a fixed point (accepting them again changes nothing).
func FuzzOptions(f *testing.F) {
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"service": {"cpus": 2, "name": "x"}}`,
		`{"service": {"cpus": "2", "log_level": "TRACE", "scheduler_constraints": [1, [2]]}, "node": {"count": 0, "heap": null}}`,
		`{"backup": {"enabled": true, "bucket": "b"}, "extra": 1}`, `{"service": {"constraints": [["a", "b"]], "greeting": "\u0000"}}`} {
		f.Add([]byte(s))
	}
	repo := testRepo(f)
	f.Fuzz(func(t *testing.T, options []byte) {
		for _, p := range repo.Packages {
			merged, err := p.Options(options)
			if err != nil {
				var oerr *OptionsError
				if !errors.As(err, &oerr) || len(oerr.Problems) == 0 {
					t.Fatalf("%s: error %#v", p.Name, err)
				}
				for _, pr := range oerr.Problems {
					if pr.Message == "" {
						t.Fatalf("%s: empty message in %v", p.Name, oerr)
					}
				}
				continue
			}
			data, err := json.Marshal(merged)
			if err != nil {
				t.Fatal(err)
			}
			again, err := p.Options(data)
			if err != nil {
				t.Fatalf("%s: merged options %s refused: %v", p.Name, data, err)
			}
			if again2, _ := json.Marshal(again); string(again2) != string(data) {
				t.Fatalf("%s: merging again changed %s into %s", p.Name, data, again2)
			}
		}
	})
}

// FuzzRender: rendering any template with any options never panics; it fails with a
// *RenderError or *OptionsError, or gives a valid app or group and its JSON.
func FuzzRender(f *testing.F) {
	f.Add(`{"id": "{{name}}", "cmd": "{{cmd}}", "cpus": {{cpus}}, "constraints": {{c}}}`, []byte(`{"name": "a", "cmd": "x\"y", "cpus": 0.5, "c": [["a", "UNIQUE"]]}`))
	f.Add(`{"id": "g", "apps": [{{#apps}}{"id": "{{.}}", "cmd": "x"}{{/apps}}]}`, []byte(`{"apps": ["a", "b"]}`))
	f.Add(`{{#a}}{{#b}}{{c}}{{/b}}{{/a}}{{^d}}{{{e}}}{{/d}}{{! comment }}{{=<% %>=}}<%x%>`, []byte(`{"a": {"b": [1, {"c": null}]}, "e": "<&>"}`))
	f.Add(`{"id": "x", "cmd": "x", "labels": {{l}}}`, []byte(`{"l": {"a": 1}}`))
	f.Add(`{"id": "x", "cmd": "{{resource.assets.uris.u}}"}`, []byte(``))
	resource := &universe.Resource{Assets: &universe.Assets{URIs: map[string]string{"u": "http://x/u"}}}
	f.Fuzz(func(t *testing.T, template string, options []byte) {
		def := universe.Package{
			Metadata: universe.Metadata{PackagingVersion: "3.0", Name: "fuzz", Version: "1", Maintainer: "m", Description: "d", Tags: []string{}},
			Marathon: &universe.Marathon{V2AppMustacheTemplate: base64.StdEncoding.EncodeToString([]byte(template))},
			Config:   json.RawMessage(`{"type": "object"}`),
			Resource: resource,
		}
		p, problems := newPackage(def, "")
		if problems != nil {
			return
		}
		r, err := p.Render(options, "")
		if err != nil {
			var rerr *RenderError
			var oerr *OptionsError
			if !errors.As(err, &rerr) && !errors.As(err, &oerr) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if (r.App == nil) == (r.Group == nil) {
			t.Fatalf("app %v group %v", r.App, r.Group)
		}
		if !json.Valid(r.JSON) {
			t.Fatalf("invalid JSON %s", r.JSON)
		}
	})
}
