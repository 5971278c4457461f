package marathon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// normalized decodes and normalises an app under base, failing on any error.
func normalized(tb testing.TB, js, base string) *App {
	tb.Helper()
	app, err := DecodeApp([]byte(js))
	if err != nil {
		tb.Fatalf("%s: %v", js, err)
	}
	Normalize(app, base)
	return app
}

func TestCanonicalPath(t *testing.T) {
	tests := []struct{ id, base, want string }{
		{"nginx", "/", "/nginx"},
		{"nginx", "", "/nginx"},
		{"/nginx/", "/", "/nginx"},
		{"//a//b//", "/", "/a/b"},
		{"b", "/a", "/a/b"},
		{"../x", "/a/b", "/a/x"},
		{"./x", "/a", "/a/x"},
		{"../../../x", "/a", "/x"},
		{"/a/./b/../c", "/ignored", "/a/c"},
		{"", "/a", "/a"},
		{"/", "/a", "/"},
	}
	for _, tt := range tests {
		if got := canonicalPath(tt.id, tt.base); got != tt.want {
			t.Errorf("canonicalPath(%q, %q) = %q, want %q", tt.id, tt.base, got, tt.want)
		}
	}
	for _, tt := range []struct{ id, want string }{{"/a/b/c", "/a/b"}, {"/a", "/"}, {"/", "/"}} {
		if got := parentPath(tt.id); got != tt.want {
			t.Errorf("parentPath(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestNormalizeIDsAndDependencies(t *testing.T) {
	app := normalized(t, `{"id": "web/", "cmd": "x", "dependencies": ["db", "../other", "/abs/y/"]}`, "/prod")
	if app.ID != "/prod/web" {
		t.Errorf("id = %q", app.ID)
	}
	if want := []string{"/prod/db", "/other", "/abs/y"}; !reflect.DeepEqual(app.Dependencies, want) {
		t.Errorf("dependencies = %q, want %q", app.Dependencies, want)
	}
}

// TestNormalize compares normalised apps with what Marathon made of the same input.
func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"defaults", `{"id": "a", "cmd": "x"}`,
			`{"id":"/a","cmd":"x","instances":1,"cpus":1,"mem":128,"disk":0,"gpus":0,"executor":"","backoffSeconds":1,` +
				`"backoffFactor":1.15,"maxLaunchDelaySeconds":300,"upgradeStrategy":{"minimumHealthCapacity":1,"maximumOverCapacity":1},` +
				`"labels":{},"killSelection":"YOUNGEST_FIRST","unreachableStrategy":{"inactiveAfterSeconds":0,"expungeAfterSeconds":0},` +
				`"portDefinitions":[{"port":0,"protocol":"tcp","name":"default"}],"requirePorts":false,"networks":[{"mode":"host"}]}`},
		{"no ports", `{"id": "a", "cmd": "x", "portDefinitions": [], "taskKillGracePeriodSeconds": 5, "unreachableStrategy": "disabled"}`,
			`{"id":"/a","cmd":"x","instances":1,"cpus":1,"mem":128,"disk":0,"gpus":0,"executor":"","backoffSeconds":1,` +
				`"backoffFactor":1.15,"maxLaunchDelaySeconds":300,"upgradeStrategy":{"minimumHealthCapacity":1,"maximumOverCapacity":1},` +
				`"labels":{},"killSelection":"YOUNGEST_FIRST","unreachableStrategy":"disabled","taskKillGracePeriodSeconds":5,` +
				`"portDefinitions":[],"requirePorts":false,"networks":[{"mode":"host"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(normalized(t, tt.in, "/"))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b, tt.want)
			}
		})
	}
}

// TestNormalizeLegacy checks each translation of a legacy form by the fields it affects.
func TestNormalizeLegacy(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// want is a JSON object with the fields to compare.
		want string
	}{
		{"ports", `{"ports": [80, 0]}`,
			`{"portDefinitions":[{"port":80,"protocol":"tcp"},{"port":0,"protocol":"tcp"}],"networks":[{"mode":"host"}]}`},
		{"ports equal to port definitions", `{"ports": [80], "portDefinitions": [{"port": 80, "name": "http"}]}`,
			`{"portDefinitions":[{"port":80,"protocol":"tcp","name":"http"}]}`},
		{"uris", `{"uris": ["http://h/a.tgz", "http://h/b.sh", "http://h/c.zip"]}`,
			`{"fetch":[{"uri":"http://h/a.tgz","extract":true,"executable":false,"cache":false},` +
				`{"uri":"http://h/b.sh","extract":false,"executable":false,"cache":false},` +
				`{"uri":"http://h/c.zip","extract":true,"executable":false,"cache":false}]}`},
		{"empty uris with fetch", `{"uris": [], "fetch": [{"uri": "http://h/x"}]}`,
			`{"fetch":[{"uri":"http://h/x","extract":true,"executable":false,"cache":false}]}`},
		{"docker BRIDGE and port mappings", `{"container": {"docker": {"image": "i", "network": "BRIDGE", "portMappings": [{"containerPort": 80}]}}}`,
			`{"container":{"type":"DOCKER","docker":{"image":"i","forcePullImage":false,"privileged":false},` +
				`"portMappings":[{"containerPort":80,"hostPort":0,"servicePort":0,"protocol":"tcp"}]},"networks":[{"mode":"container/bridge"}],"requirePorts":false}`},
		{"docker BRIDGE without mappings gets the default one", `{"requirePorts": true, "container": {"docker": {"image": "i", "network": "BRIDGE"}}}`,
			`{"container":{"type":"DOCKER","docker":{"image":"i","forcePullImage":false,"privileged":false},` +
				`"portMappings":[{"containerPort":0,"hostPort":0,"servicePort":0,"protocol":"tcp","name":"default"}]},"networks":[{"mode":"container/bridge"}],"requirePorts":false}`},
		{"docker HOST drops mappings", `{"container": {"docker": {"image": "i", "network": "HOST", "portMappings": [{"containerPort": 80}]}}}`,
			`{"container":{"type":"DOCKER","docker":{"image":"i","forcePullImage":false,"privileged":false}},"networks":[{"mode":"host"}],` +
				`"portDefinitions":[{"port":0,"protocol":"tcp","name":"default"}]}`},
		{"docker mappings with canonical networks", `{"networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "i", "portMappings": [{"containerPort": 80, "name": "web"}]}}}`,
			`{"container":{"type":"DOCKER","docker":{"image":"i","forcePullImage":false,"privileged":false},` +
				`"portMappings":[{"containerPort":80,"hostPort":0,"servicePort":0,"protocol":"tcp","name":"web"}]},"networks":[{"mode":"container/bridge"}]}`},
		{"legacy ports with bridge need mappings", `{"ports": [0, 0], "container": {"docker": {"image": "i", "network": "BRIDGE", "portMappings": [{"containerPort": 80}]}}}`,
			`{"container":{"type":"DOCKER","docker":{"image":"i","forcePullImage":false,"privileged":false},` +
				`"portMappings":[{"containerPort":80,"hostPort":0,"servicePort":0,"protocol":"tcp"},{"containerPort":0,"hostPort":0,"servicePort":0,"protocol":"tcp"}]}}`},
		{"ipAddress on the mesos bridge with discovery", `{"ipAddress": {"networkName": "mesos-bridge", "labels": {"a": "b"}, "discovery": {"ports": [{"number": 80, "name": "web"}]}}}`,
			`{"container":{"type":"MESOS","portMappings":[{"containerPort":80,"hostPort":0,"servicePort":0,"protocol":"tcp","name":"web"}]},` +
				`"networks":[{"mode":"container/bridge","labels":{"a":"b"}}]}`},
		{"ipAddress with docker HOST", `{"ipAddress": {}, "container": {"docker": {"image": "i", "network": "HOST"}}}`,
			`{"networks":[{"mode":"host"}],"portDefinitions":[{"port":0,"protocol":"tcp","name":"default"}]}`},
		{"bridge without container", `{"networks": [{"mode": "container/bridge"}], "portDefinitions": [{"port": 1}, {"port": 2}]}`,
			`{"container":{"type":"MESOS","portMappings":[{"containerPort":0,"hostPort":0,"servicePort":0,"protocol":"tcp","name":"default"},` +
				`{"containerPort":0,"hostPort":0,"servicePort":0,"protocol":"tcp"}]}}`},
		{"health checks", `{"healthChecks": [{"protocol": "TCP"}, {"protocol": "COMMAND", "command": {"value": "true"}}, {"port": 8080}, {"protocol": "MESOS_HTTP", "portIndex": 0}]}`,
			`{"healthChecks":[` +
				`{"protocol":"TCP","portIndex":0,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ignoreHttp1xx":false},` +
				`{"protocol":"COMMAND","command":{"value":"true"},"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ignoreHttp1xx":false},` +
				`{"protocol":"HTTP","path":"/","port":8080,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ignoreHttp1xx":false},` +
				`{"protocol":"MESOS_HTTP","path":"/","portIndex":0,"gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ignoreHttp1xx":false}]}`},
		{"health check without ports", `{"portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]}`,
			`{"healthChecks":[{"protocol":"TCP","gracePeriodSeconds":300,"intervalSeconds":60,"timeoutSeconds":20,"maxConsecutiveFailures":3,"delaySeconds":15,"ignoreHttp1xx":false}]}`},
		{"check port index", `{"check": {"http": {}}}`,
			`{"check":{"http":{"portIndex":0,"scheme":"HTTP"},"intervalSeconds":60,"timeoutSeconds":20,"delaySeconds":15}}`},
		{"check with a port", `{"portDefinitions": [{}, {}], "check": {"tcp": {"port": 8080}}}`,
			`{"check":{"tcp":{"port":8080},"intervalSeconds":60,"timeoutSeconds":20,"delaySeconds":15}}`},
		{"check without ports", `{"portDefinitions": [], "check": {"tcp": {}, "exec": {"command": {"argv": []}}}}`,
			`{"check":{"tcp":{},"exec":{"command":{}},"intervalSeconds":60,"timeoutSeconds":20,"delaySeconds":15}}`},
		{"readiness status codes", `{"readinessChecks": [{"httpStatusCodesForReady": []}]}`,
			`{"readinessChecks":[{"name":"readinessCheck","protocol":"HTTP","path":"/","portName":"http-api","intervalSeconds":30,"timeoutSeconds":10,"httpStatusCodesForReady":[200],"preserveLastResponse":false}]}`},
		{"empty lists and maps are dropped", `{"args": [], "env": {}, "constraints": [], "container": {"docker": {"image": "i", "parameters": []}, "volumes": []},` +
			`"portDefinitions": [{"labels": {}}], "acceptedResourceRoles": []}`,
			`{"container":{"type":"DOCKER","docker":{"image":"i","forcePullImage":false,"privileged":false}},"labels":{},` +
				`"portDefinitions":[{"port":0,"protocol":"tcp"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(normalized(t, tt.in, "/"))
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			for k, w := range want {
				if !reflect.DeepEqual(got[k], w) {
					gk, _ := json.Marshal(got[k])
					wk, _ := json.Marshal(w)
					t.Errorf("%s = %s\nwant %s", k, gk, wk)
				}
			}
			for _, legacy := range []string{"ports", "uris", "ipAddress"} {
				if _, ok := got[legacy]; ok {
					t.Errorf("normalised app has %s", legacy)
				}
			}
		})
	}
}

// TestNormalizeKeepsConflicts: legacy forms that contradict canonical ones stay for Validate.
func TestNormalizeKeepsConflicts(t *testing.T) {
	app := normalized(t, `{"uris": ["http://a"], "fetch": [{"uri": "http://b"}], "ports": [1], "portDefinitions": [{"port": 2}],
		"networks": [{"mode": "host"}], "ipAddress": {"networkName": "mesos-bridge"}}`, "/")
	if len(app.URIs) != 1 || len(app.Ports) != 1 || app.IPAddress == nil || app.Fetch[0].URI != "http://b" || app.PortDefinitions[0].Port != 2 {
		t.Fatalf("conflicting fields changed: %+v", app)
	}
}

// corpusApps returns the normalised apps of the accepted corpus files of kind app.
func corpusApps(tb testing.TB) map[string]*App {
	tb.Helper()
	skipWithoutCorpus(tb)
	apps := map[string]*App{}
	for _, c := range corpusCases {
		if c.kind != kindApp || c.rejected != 0 {
			continue
		}
		data, err := os.ReadFile(filepath.Join(corpusDir, c.file))
		if err != nil {
			tb.Fatal(err)
		}
		apps[c.file] = normalized(tb, string(data), "/")
	}
	return apps
}

// TestNormalizeIdempotent: normalising a normalised app changes nothing, and marshal,
// decode, normalise gives the same app again.
func TestNormalizeIdempotent(t *testing.T) {
	for name, app := range corpusApps(t) {
		t.Run(name, func(t *testing.T) {
			again := app.Clone()
			Normalize(again, "/")
			if !reflect.DeepEqual(again, app) {
				t.Fatalf("second Normalize changed the app:\n%+v\n%+v", again, app)
			}
			assertRoundTrip(t, app)
		})
	}
}

// assertRoundTrip checks that a normalised app survives marshal → DecodeApp → Normalize.
func assertRoundTrip(tb testing.TB, app *App) {
	tb.Helper()
	b, err := json.Marshal(app)
	if err != nil {
		tb.Fatal(err)
	}
	back, err := DecodeApp(b)
	if err != nil {
		tb.Fatalf("decoding %s: %v", b, err)
	}
	Normalize(back, "/")
	if !reflect.DeepEqual(back, app) {
		b2, _ := json.Marshal(back)
		tb.Fatalf("round trip changed the app:\n%s\n%s\n%#v\n%#v", b, b2, app, back)
	}
}

func TestNormalizeGroup(t *testing.T) {
	g, err := DecodeGroup([]byte(`{"id": "prod/", "dependencies": ["db"], "apps": [{"id": "web", "cmd": "x", "dependencies": ["api"]}],
		"groups": [{"id": "back", "apps": [{"id": "../api", "cmd": "x"}, {"id": "/prod/back/q", "cmd": "x"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	NormalizeGroup(g, "/")
	var ids []string
	for _, a := range g.AllApps() {
		ids = append(ids, a.ID)
	}
	if g.ID != "/prod" || g.Groups[0].ID != "/prod/back" || !reflect.DeepEqual(ids, []string{"/prod/web", "/prod/api", "/prod/back/q"}) {
		t.Fatalf("ids: group %s, subgroup %s, apps %q", g.ID, g.Groups[0].ID, ids)
	}
	if !reflect.DeepEqual(g.Dependencies, []string{"/prod/db"}) || !reflect.DeepEqual(g.Apps[0].Dependencies, []string{"/prod/api"}) {
		t.Fatalf("dependencies: group %q, app %q", g.Dependencies, g.Apps[0].Dependencies)
	}
	if g.Groups[0].Apps == nil || g.Groups[0].Groups == nil || g.Groups[0].Dependencies == nil {
		t.Fatalf("lists stay nil: %+v", g.Groups[0])
	}
	empty := &Group{}
	NormalizeGroup(empty, "/x")
	if empty.ID != "/x" {
		t.Errorf("group without id under /x = %q", empty.ID)
	}
}

func TestClone(t *testing.T) {
	app := normalized(t, `{"id": "a", "cmd": "x", "labels": {"k": "v"}, "healthChecks": [{"portIndex": 0}], "container": {"docker": {"image": "i"}}}`, "/")
	c := app.Clone()
	if !reflect.DeepEqual(c, app) {
		t.Fatal("clone differs")
	}
	c.Labels["k"] = "changed"
	*c.HealthChecks[0].PortIndex = 3
	c.Container.Docker.Image = "other"
	c.PortDefinitions[0].Port = 9
	if app.Labels["k"] != "v" || *app.HealthChecks[0].PortIndex != 0 || app.Container.Docker.Image != "i" || app.PortDefinitions[0].Port != 0 {
		t.Fatalf("clone shares memory with the original: %+v", app)
	}
}

// TestMarshalNeverWritesLegacy: the input-only forms are never written, normalised or not.
func TestMarshalNeverWritesLegacy(t *testing.T) {
	app := &App{ID: "/a", Ports: []int{80}, URIs: []string{"http://h/x"}, IPAddress: &IPAddress{NetworkName: "n"},
		Container: &Container{Type: ContainerDocker, Docker: &Docker{Image: "i", Network: "BRIDGE", PortMappings: []PortMapping{{ContainerPort: 80}}}}}
	b, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	docker := got["container"].(map[string]any)["docker"].(map[string]any)
	for _, present := range []bool{got["ports"] != nil, got["uris"] != nil, got["ipAddress"] != nil, docker["network"] != nil, docker["portMappings"] != nil} {
		if present {
			t.Fatalf("legacy field written: %s", b)
		}
	}
}
