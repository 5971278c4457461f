package pkgs

import (
	"encoding/json"
	"errors"
	"testing"
)

// demoPackageWith loads the demo package with the given files replaced ("" removes one).
func demoPackageWith(tb testing.TB, files map[string]string) *Package {
	tb.Helper()
	repo, err := LoadFS(demoFS(files), "demo", "https://demo.example.com")
	if err != nil {
		tb.Fatal(err)
	}
	return repo.Packages[0]
}

func resolve(tb testing.TB, name, version string) *Package {
	tb.Helper()
	p, err := NewCatalog(testRepo(tb)).Resolve(name, version)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func jsonString(tb testing.TB, v any) string {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"datastore", "", `{"backup":{"bucket":"","enabled":false,"schedule":"0 3 * * *"},` +
			`"node":{"count":3,"cpus":1,"disk":10240,"disk_type":"ROOT","extra_env":[{"key":"MALLOC_ARENA_MAX","value":"4"},{"key":"TZ","value":"UTC"}],"heap":{"gc":"G1","size":1024},"mem":2048,"ports":{"client":7000,"metrics":7002,"peer":7001}},` +
			`"service":{"backoff_factor":1.15,"cpus":1,"log_level":"INFO","mem":1024,"name":"datastore","placement_constraint":"[[\"hostname\", \"MAX_PER\", \"1\"]]","region":"","role":"*","scheduler_constraints":[["hostname","UNIQUE"]],` +
			`"security":{"authn":{"enabled":false,"secret":""},"tls":{"enabled":false}},"user":"nobody"}}`},
		{"an object's default wins over its properties'", `{"properties": {"a": {"type": "object", "default": {"x": 1}, "properties": {"y": {"default": 2}}}}}`,
			`{"a":{"x":1}}`},
		{"objects without defaults are empty", `{"properties": {"a": {"type": "object", "properties": {"b": {"type": "object", "properties": {"c": {"type": "string"}}}}}}}`,
			`{"a":{"b":{}}}`},
		{"null default", `{"properties": {"a": {"default": null}, "b": {"type": "string"}}}`, `{"a":null}`},
		{"no properties", `{"type": "object"}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p *Package
			if tt.config == "" {
				p = resolve(t, "datastore", "")
			} else {
				p = demoPackageWith(t, map[string]string{"demo/0/config.json": tt.config})
			}
			if got := jsonString(t, p.Defaults()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDefaultsAreACopy(t *testing.T) {
	p := resolve(t, "datastore", "")
	p.Defaults()["service"].(map[string]any)["name"] = "changed"
	if got := p.Defaults()["service"].(map[string]any)["name"]; got != "datastore" {
		t.Errorf("defaults changed: %v", got)
	}
}

func TestOptionsMerge(t *testing.T) {
	p := resolve(t, "hello", "1.1.0")
	tests := []struct {
		name    string
		options string
		want    string
	}{
		{"none", ``, `{"service":{"constraints":[],"cpus":0.1,"greeting":"hello, <world> & \"friends\"","mem":32,"name":"hello"}}`},
		{"null", `null`, `{"service":{"constraints":[],"cpus":0.1,"greeting":"hello, <world> & \"friends\"","mem":32,"name":"hello"}}`},
		{"nested objects merge", `{"service": {"cpus": 2}}`, `{"service":{"constraints":[],"cpus":2,"greeting":"hello, <world> & \"friends\"","mem":32,"name":"hello"}}`},
		{"arrays replace", `{"service": {"constraints": [["hostname", "UNIQUE"]], "name": "hi"}}`,
			`{"service":{"constraints":[["hostname","UNIQUE"]],"cpus":0.1,"greeting":"hello, <world> & \"friends\"","mem":32,"name":"hi"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Options(json.RawMessage(tt.options))
			if err != nil {
				t.Fatal(err)
			}
			if s := jsonStringNoEscape(t, got); s != tt.want {
				t.Errorf("got  %s\nwant %s", s, tt.want)
			}
		})
	}
}

func jsonStringNoEscape(tb testing.TB, v any) string {
	tb.Helper()
	data, err := marshalJSON(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

func TestOptionsErrors(t *testing.T) {
	required := demoPackageWith(t, map[string]string{"demo/0/config.json": `{"type": "object", "properties": {
		"db": {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}, "port": {"type": "integer", "maximum": 65535}}, "required": ["url"]},
		"mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
		"name": {"type": "string", "pattern": "^[a-z]+$", "default": "x"}}, "required": ["db"]}`})
	noConfig := demoPackageWith(t, map[string]string{"demo/0/config.json": "", "demo/0/marathon.json.mustache": `{"id": "demo", "cmd": "x"}`})
	tests := []struct {
		name    string
		pkg     *Package
		options string
		want    string
	}{
		{"wrong type", resolve(t, "hello", "1.1.0"), `{"service": {"cpus": "two"}}`,
			"invalid options for package hello 1.1.0: service.cpus: expected a number, got a string"},
		{"below minimum", resolve(t, "hello", "1.1.0"), `{"service": {"cpus": 0, "mem": 8}}`,
			"invalid options for package hello 1.1.0: service.cpus: must be 0.01 or more, got 0; service.mem: must be 16 or more, got 8"},
		{"unknown option", resolve(t, "hello", "1.1.0"), `{"service": {"cpu": 1}}`,
			"invalid options for package hello 1.1.0: service.cpu: unknown option: the schema allows no other properties here"},
		{"array items", resolve(t, "hello", "1.1.0"), `{"service": {"constraints": [["hostname", "UNIQUE"], ["rack", 1]]}}`,
			"invalid options for package hello 1.1.0: service.constraints[1][1]: expected a string, got a number"},
		{"enum", resolve(t, "datastore", ""), `{"service": {"log_level": "TRACE"}}`,
			"invalid options for package datastore 3.2.1-1.0: service.log_level: value must be one of 'DEBUG', 'INFO', 'WARN', 'ERROR'"},
		{"missing required options", required, ``,
			"invalid options for package demo 1.0: db.url: required option is missing"},
		{"every problem, sorted", required, `{"db": {"port": 70000, "url": "not a uri"}, "mode": "c", "name": "X"}`,
			"invalid options for package demo 1.0: db.port: must be 65535 or less, got 70000; db.url: 'not a uri' is not valid uri: relative url; " +
				"mode: value must be one of 'a', 'b'; name: 'X' does not match pattern '^[a-z]+$'"},
		{"not an object", resolve(t, "hello", "1.1.0"), `[1]`,
			"invalid options for package hello 1.1.0: options must be a JSON object"},
		{"not JSON", resolve(t, "hello", "1.1.0"), `{"service": `,
			"invalid options for package hello 1.1.0: options: invalid JSON: unexpected EOF"},
		{"no config.json", noConfig, `{"a": 1}`,
			"invalid options for package demo 1.0: this package takes no options (it has no config.json)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.pkg.Options(json.RawMessage(tt.options))
			if err == nil {
				t.Fatalf("accepted: %v", got)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			var oerr *OptionsError
			if !errors.As(err, &oerr) || oerr.Package != tt.pkg.Name || oerr.Version != tt.pkg.Version {
				t.Errorf("error %#v is not an *OptionsError of the package", err)
			}
		})
	}
}

func TestOptionsWithoutConfig(t *testing.T) {
	p := demoPackageWith(t, map[string]string{"demo/0/config.json": "", "demo/0/marathon.json.mustache": `{"id": "demo", "cmd": "x"}`})
	for _, options := range []string{``, `{}`, `null`, " \n"} {
		got, err := p.Options(json.RawMessage(options))
		if err != nil || len(got) != 0 {
			t.Errorf("Options(%q) = %v, %v", options, got, err)
		}
	}
}
