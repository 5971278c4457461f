package pkgs

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/atoll/atoll/api/universe"
)

//go:embed testdata/repo
var embedded embed.FS

// testRepo loads testdata/repo (the Universe layout) as repository "test".
func testRepo(tb testing.TB) *Repository {
	tb.Helper()
	repo, err := LoadFS(os.DirFS("testdata"), "test", "https://repo.example.com/test.json")
	if err != nil {
		tb.Fatal(err)
	}
	return repo
}

// coordinates lists "name@version#release" of packages.
func coordinates(pkgs []*Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name+"@"+p.Version+"#"+strconv.FormatInt(p.ReleaseVersion, 10))
	}
	return out
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

func subFS(tb testing.TB, fsys fs.FS, dir string) fs.FS {
	tb.Helper()
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return sub
}

// flatFS copies testdata/repo/packages/<L>/* into the flat layout.
func flatFS(tb testing.TB) fs.FS {
	tb.Helper()
	flat := fstest.MapFS{}
	err := fs.WalkDir(embedded, "testdata/repo/packages", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := embedded.ReadFile(path)
		if err != nil {
			return err
		}
		// testdata/repo/packages/H/hello/0/package.json → hello/0/package.json
		parts := strings.Split(path, "/")
		flat[strings.Join(parts[4:], "/")] = &fstest.MapFile{Data: data}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return flat
}

func TestLoadFSLayouts(t *testing.T) {
	want := []string{"datastore@3.2.1-1.0#3", "hello@1.0.0#0", "hello@1.1.0#1", "webstack@0.1.0#0"}
	tests := []struct {
		name string
		fsys fs.FS
	}{
		{"checkout (repo/packages/<L>/<name>/<revision>)", os.DirFS("testdata")},
		{"rooted at packages (<L>/<name>/<revision>)", os.DirFS("testdata/repo/packages")},
		{"packages/<L>/<name>/<revision>", os.DirFS("testdata/repo")},
		{"embedded checkout", subFS(t, embedded, "testdata")},
		{"embedded packages directory", subFS(t, embedded, "testdata/repo")},
		{"flat (<name>/<revision>)", flatFS(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, err := LoadFS(tt.fsys, "test", "file:///test")
			if err != nil {
				t.Fatal(err)
			}
			if got := coordinates(repo.Packages); !reflect.DeepEqual(got, want) {
				t.Errorf("packages %q, want %q", got, want)
			}
			if repo.Name != "test" || repo.URI != "file:///test" || repo.Packages[0].Source != "file:///test" {
				t.Errorf("name %q, uri %q, source %q", repo.Name, repo.URI, repo.Packages[0].Source)
			}
		})
	}
}

func TestLoadFSEmpty(t *testing.T) {
	repo, err := LoadFS(fstest.MapFS{"README": {Data: []byte("x")}}, "empty", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Packages) != 0 {
		t.Errorf("packages %v", coordinates(repo.Packages))
	}
}

// The files of a small valid package, "demo" revision 0, to break one at a time.
const (
	demoPackage  = `{"packagingVersion": "3.0", "name": "demo", "version": "1.0", "maintainer": "m", "description": "d", "tags": ["t"]}`
	demoConfig   = `{"type": "object", "properties": {"cpus": {"type": "number", "default": 0.5}}}`
	demoTemplate = `{"id": "demo", "cmd": "sleep 100", "cpus": {{cpus}}}`
)

func demoFS(overrides map[string]string) fstest.MapFS {
	files := map[string]string{
		"demo/0/package.json":           demoPackage,
		"demo/0/config.json":            demoConfig,
		"demo/0/marathon.json.mustache": demoTemplate,
	}
	for k, v := range overrides {
		if v == "" {
			delete(files, k)
		} else {
			files[k] = v
		}
	}
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return fsys
}

func TestLoadFSErrors(t *testing.T) {
	const prefix = "repository r: package demo revision 0: "
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"package.json wrong type", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `["t"]`, `["t", 1]`, 1)},
			prefix + "demo/0/package.json: tags[1]: expected a string, got a number"},
		{"package.json unknown field", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"tags"`, `"tag": "x", "tags"`, 1)},
			prefix + "demo/0/package.json: tag: unknown field"},
		{"package.json missing", map[string]string{"demo/0/package.json": ""},
			prefix + "demo/0/package.json: open demo/0/package.json: file does not exist"},
		{"name is not the directory", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"demo"`, `"other"`, 1)},
			prefix + `demo/0/package.json: name: "other" is not the directory's name "demo"`},
		{"invalid name", map[string]string{"demo/0/package.json": "", "demo/0/config.json": "", "demo/0/marathon.json.mustache": "", "demo_x/0/package.json": strings.Replace(demoPackage, `"demo"`, `"demo_x"`, 1)},
			`repository r: package demo_x revision 0: demo_x/0/package.json: name: "demo_x" does not match ^[a-z][a-z0-9-]*[a-z0-9]$`},
		{"invalid version and tag", map[string]string{"demo/0/package.json": strings.Replace(strings.Replace(demoPackage, `"1.0"`, `"1.0 beta"`, 1), `["t"]`, `["a tag"]`, 1)},
			prefix + `demo/0/package.json: version: "1.0 beta" does not match ^[-a-zA-Z0-9.]+$; tags[0]: "a tag" does not match ^[^\s]+$`},
		{"revision is not a number", map[string]string{"demo/0/package.json": "", "demo/0/config.json": "", "demo/0/marathon.json.mustache": "", "demo/latest/package.json": demoPackage},
			"repository r: package demo revision latest: demo/latest: the revision directory must be named by a release version (0, 1, 2, …)"},
		{"unknown packaging version", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"3.0"`, `"1.0"`, 1)},
			prefix + `demo/0/package.json: packagingVersion: unknown packaging version "1.0": must be one of 2.0, 3.0, 4.0, 5.0`},
		{"upgradesFrom before 4.0", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"tags"`, `"upgradesFrom": ["*"], "tags"`, 1)},
			prefix + "demo/0/package.json: upgradesFrom: not allowed in packaging version 3.0"},
		{"invalid upgradesFrom entry", map[string]string{"demo/0/package.json": strings.Replace(strings.Replace(demoPackage, `"3.0"`, `"4.0"`, 1), `"tags"`, `"upgradesFrom": ["*", "1 0"], "downgradesTo": [], "tags"`, 1)},
			prefix + `demo/0/package.json: upgradesFrom[1]: "1 0" is neither "*" nor a version matching ^[-a-zA-Z0-9.]+$`},
		{"command.json in 4.0", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"3.0"`, `"4.0"`, 1), "demo/0/command.json": `{"pip": ["x"]}`},
			prefix + "demo/0/command.json: not allowed in packaging version 4.0"},
		{"minDcosReleaseVersion in 2.0", map[string]string{"demo/0/package.json": strings.Replace(strings.Replace(demoPackage, `"3.0"`, `"2.0"`, 1), `"tags"`, `"minDcosReleaseVersion": "1.10", "tags"`, 1)},
			prefix + "demo/0/package.json: minDcosReleaseVersion: not allowed in packaging version 2.0"},
		{"2.0 without a template", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"3.0"`, `"2.0"`, 1), "demo/0/marathon.json.mustache": ""},
			prefix + "demo/0/marathon.json.mustache: a Marathon template is required in packaging version 2.0"},
		{"license URL", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"tags"`, `"licenses": [{"name": "x", "url": "ftp://x"}], "tags"`, 1)},
			prefix + `demo/0/package.json: licenses[0].url: must be an http or https URL, got "ftp://x"`},
		{"config.json not JSON", map[string]string{"demo/0/config.json": `{"type": `},
			prefix + "demo/0/config.json: invalid JSON: unexpected EOF"},
		{"config.json not an object", map[string]string{"demo/0/config.json": `[]`},
			prefix + "demo/0/config.json: expected an object (a JSON Schema), got an array"},
		{"config.json not a schema", map[string]string{"demo/0/config.json": `{"type": "objet"}`},
			prefix + `demo/0/config.json: not a valid JSON Schema (draft-04): "urn:atoll:package:config.json#" is not valid against metaschema: jsonschema validation failed with 'http://json-schema.org/draft-04/schema#'
- at '/type': 'anyOf' failed
  - at '/type': value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'
  - at '/type': got string, want array`},
		{"config.json reads a file", map[string]string{"demo/0/config.json": `{"properties": {"a": {"$ref": "file:///etc/passwd"}}}`},
			prefix + `demo/0/config.json: not a valid JSON Schema (draft-04): failing loading "file:///etc/passwd": references outside config.json are not supported (file:///etc/passwd)`},
		{"template syntax", map[string]string{"demo/0/marathon.json.mustache": `{"id": "{{#a}}x"}`},
			prefix + "demo/0/marathon.json.mustache: line 1: section a has no closing {{/a}}"},
		{"template partial", map[string]string{"demo/0/marathon.json.mustache": `{"id": "{{#a}}{{> /etc/passwd}}{{/a}}"}`},
			prefix + "demo/0/marathon.json.mustache: partials are not supported: {{> /etc/passwd}}"},
		{"resource.json", map[string]string{"demo/0/resource.json": `{"images": {"icon-tiny": "x"}, "assets": {"uris": []}}`},
			prefix + "demo/0/resource.json: assets.uris: expected an object, got an array; images.icon-tiny: unknown field"},
		{"cli", map[string]string{"demo/0/resource.json": `{"cli": {"binaries": {"beos": {}, "linux": {"arm": {"kind": "zip", "url": "u", "contentHash": []}, "x86-64": {"kind": "tar", "url": "u", "contentHash": [{"algo": "md5", "value": "v"}]}}}}}`},
			prefix + `demo/0/resource.json: cli.binaries.beos: unknown platform: must be linux, darwin or windows; cli.binaries.linux.arm: unknown architecture: must be x86-64; cli.binaries.linux.x86-64.kind: unknown kind "tar": must be executable or zip; cli.binaries.linux.x86-64.contentHash[0].algo: unknown algorithm "md5": must be sha256`},
		{"several files", map[string]string{"demo/0/package.json": strings.Replace(demoPackage, `"3.0"`, `"4.0"`, 1), "demo/0/config.json": `{"type": 1}`, "demo/0/command.json": `{"pip": "x"}`},
			prefix + `demo/0/command.json: pip: expected an array, got a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, err := LoadFS(demoFS(tt.files), "r", "")
			if err == nil {
				t.Fatalf("loaded %v", coordinates(repo.Packages))
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			var perr *PackageError
			if !errors.As(err, &perr) {
				t.Errorf("error is not a *PackageError")
			}
		})
	}
}

func TestLoadFSLetter(t *testing.T) {
	fsys := fstest.MapFS{}
	for k, v := range demoFS(nil) {
		fsys["repo/packages/X/"+k] = v
	}
	_, err := LoadFS(fsys, "r", "")
	want := "repository r: package demo revision 0: repo/packages/X/demo/0: package demo belongs under D/, not X/"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// TestLoadFSAllProblems: one load reports every broken package and every broken file.
func TestLoadFSAllProblems(t *testing.T) {
	fsys := demoFS(map[string]string{
		"demo/0/config.json":             `[]`,
		"demo/0/resource.json":           `{"x": 1}`,
		"other/2/package.json":           strings.Replace(demoPackage, `"demo"`, `"other"`, 1),
		"other/2/marathon.json.mustache": `{{/x}}`,
	})
	_, err := LoadFS(fsys, "r", "")
	want := "repository r: package demo revision 0: demo/0/config.json: expected an object (a JSON Schema), got an array\n" +
		"package demo revision 0: demo/0/resource.json: x: unknown field\n" +
		"package other revision 2: other/2/marathon.json.mustache: line 1: {{/x}} closes no open section"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

func TestLoadIndex(t *testing.T) {
	repo := testRepo(t)
	data, err := json.Marshal(repo.Index())
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadIndex(data, "again", "https://again.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Packages) != len(repo.Packages) {
		t.Fatalf("got %v, want %v", coordinates(again.Packages), coordinates(repo.Packages))
	}
	for i, p := range again.Packages {
		if got, want := mustJSON(p.Package), mustJSON(repo.Packages[i].Package); string(got) != string(want) {
			t.Errorf("package %d differs:\n got %s\nwant %s", i, got, want)
		}
		if p.Source != "https://again.example.com" {
			t.Errorf("source %q", p.Source)
		}
	}
}

func TestLoadIndexErrors(t *testing.T) {
	entry := func(edit func(*universe.Package)) string {
		p := universe.Package{
			Metadata: universe.Metadata{PackagingVersion: "4.0", Name: "demo", Version: "1.0", Maintainer: "m", Description: "d", Tags: []string{}},
			Marathon: &universe.Marathon{V2AppMustacheTemplate: "e30="},
		}
		edit(&p)
		return string(mustJSON(p))
	}
	tests := []struct {
		name  string
		index string
		want  string
	}{
		{"not JSON", `{"packages": [`, "repository r: index: invalid JSON: unexpected EOF"},
		{"not an index", `{"package": []}`, "repository r: index: package: unknown field; packages: missing required field"},
		{"entry shape", `{"packages": [{"name": "demo"}]}`,
			"repository r: index: packages[0].packagingVersion: missing required field; packages[0].version: missing required field; " +
				"packages[0].maintainer: missing required field; packages[0].description: missing required field; packages[0].tags: missing required field; " +
				"packages[0].releaseVersion: missing required field"},
		{"entries", `{"packages": [` +
			entry(func(p *universe.Package) { p.ReleaseVersion = -1 }) + `, ` +
			entry(func(*universe.Package) {}) + `, ` +
			entry(func(p *universe.Package) {
				p.Name = "x"
				p.Marathon.V2AppMustacheTemplate = "not base64"
				p.Config = json.RawMessage(`{"minimum": "1"}`)
			}) + `]}`,
			"repository r: package demo revision -1: packages[0]: releaseVersion: must be 0 or more, got -1\n" +
				`package x revision 0: packages[2]: name: "x" does not match ^[a-z][a-z0-9-]*[a-z0-9]$; ` +
				"marathon.v2AppMustacheTemplate: invalid base64: illegal base64 data at input byte 3; " +
				`config: not a valid JSON Schema (draft-04): "urn:atoll:package:config.json#" is not valid against metaschema: jsonschema validation failed with 'http://json-schema.org/draft-04/schema#'` + "\n" +
				`- at '/minimum': got string, want number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, err := LoadIndex([]byte(tt.index), "r", "")
			if err == nil {
				t.Fatalf("loaded %v", coordinates(repo.Packages))
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}
