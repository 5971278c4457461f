package marathon

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// wantError asserts that err is an *Error with this status, message and details.
func wantError(tb testing.TB, err error, status int, message string, details []ErrorDetail) {
	tb.Helper()
	var e *Error
	if !errors.As(err, &e) || e == nil {
		tb.Fatalf("err = %v, want %d %s %v", err, status, message, details)
	}
	if e.Status != status || e.Message != message || !reflect.DeepEqual(e.Details, details) {
		tb.Fatalf("got %d %s %q,\nwant %d %s %q", e.Status, e.Message, e.Details, status, message, details)
	}
}

func TestDecodeAppTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []ErrorDetail
	}{
		{"id number", `{"id": 5}`, []ErrorDetail{{"/id", []string{"error.expected.jsstring"}}}},
		{"cpus string", `{"cpus": "1"}`, []ErrorDetail{{"/cpus", []string{"error.expected.jsnumber"}}}},
		{"instances fraction", `{"instances": 1.5}`, []ErrorDetail{{"/instances", []string{"error.expected.int"}}}},
		{"instances too large", `{"instances": 2147483648}`, []ErrorDetail{{"/instances", []string{"error.expected.int"}}}},
		{"instances bool", `{"instances": true}`, []ErrorDetail{{"/instances", []string{"error.expected.jsnumber"}}}},
		{"cpus overflow", `{"cpus": 1e400}`, []ErrorDetail{{"/cpus", []string{"error.expected.jsnumber"}}}},
		{"container string", `{"container": "docker"}`, []ErrorDetail{{"/container", []string{"error.expected.jsobject"}}}},
		{"args object", `{"args": {}}`, []ErrorDetail{{"/args", []string{"error.expected.jsarray"}}}},
		{"args element", `{"args": ["a", 1]}`, []ErrorDetail{{"/args/1", []string{"error.expected.jsstring"}}}},
		{"requirePorts string", `{"requirePorts": "yes"}`, []ErrorDetail{{"/requirePorts", []string{"error.expected.jsboolean"}}}},
		{"label value", `{"labels": {"a": 1}}`, []ErrorDetail{{"/labels/a", []string{"error.expected.jsstring"}}}},
		{"env value", `{"env": {"A": 1}}`, []ErrorDetail{{"/env/A", []string{"error.expected.jsstring"}}}},
		{"env secret not string", `{"env": {"A": {"secret": 1}}}`, []ErrorDetail{{"/env/A/secret", []string{"error.expected.jsstring"}}}},
		{"constraint value", `{"constraints": [["hostname", "GROUP_BY", 3]]}`, []ErrorDetail{{"/constraints/0/2", []string{"error.expected.jsstring"}}}},
		{"nested", `{"container": {"docker": {"image": ["x"]}, "volumes": [{"mode": 1}]}}`, []ErrorDetail{
			{"/container/docker/image", []string{"error.expected.jsstring"}},
			{"/container/volumes/0/mode", []string{"error.expected.jsstring"}},
		}},
		{"health check port index", `{"healthChecks": [{"portIndex": "0"}]}`, []ErrorDetail{{"/healthChecks/0/portIndex", []string{"error.expected.jsnumber"}}}},
		{"check port index", `{"check": {"http": {"portIndex": "0"}}}`, []ErrorDetail{{"/check/http/portIndex", []string{"error.expected.jsnumber"}}}},
		{"check argv", `{"check": {"exec": {"command": {"argv": "ls -l"}}}}`, []ErrorDetail{{"/check/exec/command/argv", []string{"error.expected.jsarray"}}}},
		{"check interval", `{"check": {"tcp": {}, "intervalSeconds": 0.5}}`, []ErrorDetail{{"/check/intervalSeconds", []string{"error.expected.int"}}}},
		{"null array element", `{"healthChecks": [null]}`, []ErrorDetail{{"/healthChecks/0", []string{"error.expected.jsobject"}}}},
		{"unreachable strategy word", `{"unreachableStrategy": "enabled"}`, []ErrorDetail{{"/unreachableStrategy", []string{"error.unknown.enum.literal"}}}},
		{"unreachable strategy number", `{"unreachableStrategy": 5}`, []ErrorDetail{{"/unreachableStrategy", []string{"error.expected.jsobject"}}}},
		{"unreachable seconds", `{"unreachableStrategy": {"inactiveAfterSeconds": "5"}}`, []ErrorDetail{{"/unreachableStrategy/inactiveAfterSeconds", []string{"error.expected.jsnumber"}}}},
		{"unreachable seconds fraction", `{"unreachableStrategy": {"expungeAfterSeconds": 0.5}}`, []ErrorDetail{{"/unreachableStrategy/expungeAfterSeconds", []string{"error.expected.long"}}}},
		{"resource limit word", `{"resourceLimits": {"cpus": "lots"}}`, []ErrorDetail{{"/resourceLimits/cpus", []string{"error.unknown.enum.literal"}}}},
		{"resource limit bool", `{"resourceLimits": {"mem": true}}`, []ErrorDetail{{"/resourceLimits/mem", []string{"error.expected.jsnumber"}}}},
		{"legacy ports", `{"ports": ["80"]}`, []ErrorDetail{{"/ports/0", []string{"error.expected.jsnumber"}}}},
		{"legacy docker network", `{"container": {"docker": {"network": 1}}}`, []ErrorDetail{{"/container/docker/network", []string{"error.expected.jsstring"}}}},
		{"several, in field order", `{"mem": "x", "id": 1, "cpus": false}`, []ErrorDetail{
			{"/id", []string{"error.expected.jsstring"}},
			{"/cpus", []string{"error.expected.jsnumber"}},
			{"/mem", []string{"error.expected.jsnumber"}},
		}},
		{"not an object", `[1]`, []ErrorDetail{{"/", []string{"error.expected.jsobject"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeApp([]byte(tt.json))
			wantError(t, err, 400, "Invalid JSON", tt.want)
		})
	}
}

func TestDecodeSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string
	}{
		{"empty", ``, "unexpected EOF"},
		{"cut", `{"id": "/a"`, "unexpected EOF"},
		{"bad character", `{"id": x}`, "invalid character 'x' looking for beginning of value (at offset 8)"},
		{"trailing data", `{} {}`, "unexpected data after the document at offset 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeApp([]byte(tt.json))
			wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/", []string{tt.want}}})
			_, err = DecodeGroup([]byte(tt.json))
			wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/", []string{tt.want}}})
		})
	}
}

// TestDecodeAppDefaults: absent fields get Marathon's defaults, explicit zeros stay, null is
// absent and unknown fields are ignored.
func TestDecodeAppDefaults(t *testing.T) {
	app, err := DecodeApp([]byte(`{"id": "a", "cmd": null, "user": null, "tasksRunning": 3, "unknown": {"x": 1},
		"healthChecks": [{"maxConsecutiveFailures": 0}], "fetch": [{"uri": "http://x/y", "extract": false}],
		"readinessChecks": [{}], "portDefinitions": [{"name": "http"}], "networks": [{"name": "n"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &App{
		ID: "a", Instances: 1, Cpus: 1, Mem: 128, BackoffSeconds: 1, BackoffFactor: 1.15, MaxLaunchDelaySeconds: 300,
		UpgradeStrategy: UpgradeStrategy{1, 1}, KillSelection: KillYoungestFirst,
		HealthChecks: []HealthCheck{{Protocol: HealthHTTP, GracePeriodSeconds: 300, IntervalSeconds: 60,
			TimeoutSeconds: 20, MaxConsecutiveFailures: 0, DelaySeconds: 15}},
		Fetch: []Fetch{{URI: "http://x/y"}},
		ReadinessChecks: []ReadinessCheck{{Name: "readinessCheck", Protocol: HealthHTTP, Path: "/",
			PortName: "http-api", IntervalSeconds: 30, TimeoutSeconds: 10}},
		PortDefinitions: []PortDefinition{{Protocol: ProtocolTCP, Name: "http"}},
		Networks:        []Network{{Mode: NetworkContainer, Name: "n"}},
	}
	if !reflect.DeepEqual(app, want) {
		t.Fatalf("got  %+v\nwant %+v", app, want)
	}
	zeros, err := DecodeApp([]byte(`{"instances": 0, "mem": 0, "backoffSeconds": 0, "maxLaunchDelaySeconds": 0,
		"upgradeStrategy": {"minimumHealthCapacity": 0.5}, "unreachableStrategy": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	checked, err := DecodeApp([]byte(`{"check": {"http": {}, "tcp": {"port": 8080}, "exec": {"command": {"shell": "true"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	wantCheck := &Check{HTTP: &HTTPCheck{Scheme: CheckSchemeHTTP}, TCP: &TCPCheck{Port: new(8080)},
		Exec: &ExecCheck{Command: CheckCommand{Shell: "true"}}, IntervalSeconds: 60, TimeoutSeconds: 20, DelaySeconds: 15}
	if !reflect.DeepEqual(checked.Check, wantCheck) {
		t.Fatalf("check = %+v, want %+v", checked.Check, wantCheck)
	}
	if zeros.Instances != 0 || zeros.Mem != 0 || zeros.BackoffSeconds != 0 || zeros.MaxLaunchDelaySeconds != 0 ||
		zeros.UpgradeStrategy != (UpgradeStrategy{0.5, 1}) ||
		zeros.UnreachableStrategy != (UnreachableStrategy{InactiveAfterSeconds: 300, ExpungeAfterSeconds: 600}) {
		t.Fatalf("explicit zeros and partial objects: %+v", zeros)
	}
}

func TestDecodeUnsupported(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []ErrorDetail
	}{
		{"store urls", `{"storeUrls": ["http://x"]}`, []ErrorDetail{{"/storeUrls", []string{msgStoreURLs}}}},
		{"appc", `{"container": {"type": "MESOS", "appc": {"image": "x"}}}`, []ErrorDetail{{"/container/appc", []string{msgAppC}}}},
		{"linux info", `{"container": {"linuxInfo": {"seccomp": {}}}}`, []ErrorDetail{{"/container/linuxInfo", []string{msgLinuxInfo}}}},
		{"credential", `{"container": {"docker": {"image": "x", "credential": {"principal": "p"}}}}`, []ErrorDetail{{"/container/docker/credential", []string{msgCredential}}}},
		{"docker network NONE", `{"container": {"docker": {"image": "x", "network": "NONE"}}}`, []ErrorDetail{{"/container/docker/network", []string{msgNoNetwork}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeApp([]byte(tt.json))
			wantError(t, err, 422, "Object is not valid", tt.want)
		})
	}
	// What Atoll can do: empty lists, the Mesos bridge by name, ipAddress on a docker bridge.
	for _, ok := range []string{
		`{"storeUrls": [], "container": {"volumes": []}}`,
		`{"ipAddress": {"networkName": "mesos-bridge"}}`,
		`{"ipAddress": {"networkName": "dcos"}}`,
		`{"container": {"docker": {"image": "x", "network": "USER"}}, "ipAddress": {"networkName": "dcos"}}`,
		`{"ipAddress": {}, "container": {"docker": {"image": "x", "network": "BRIDGE"}}}`,
		`{"residency": null, "check": null}`,
		`{"check": {"http": {"portIndex": 0}}}`,
		`{"container": {"volumes": [{"containerPath": "s", "secret": "s"}]}}`,
	} {
		if _, err := DecodeApp([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestDecodeGroupPaths(t *testing.T) {
	_, err := DecodeGroup([]byte(`{"id": "/g", "groups": [{"id": "s", "apps": [{"id": "a", "cpus": "x"}]}]}`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/groups/0/apps/0/cpus", []string{"error.expected.jsnumber"}}})
	_, err = DecodeGroup([]byte(`{"id": "/g", "apps": [null]}`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/apps/0", []string{"error.expected.jsobject"}}})
	_, err = DecodeGroup([]byte(`{"id": "/g", "pods": [{"id": "p"}], "groups": [{"apps": [{"storeUrls": ["http://x"]}]}]}`))
	wantError(t, err, 422, "Object is not valid", []ErrorDetail{
		{"/pods", []string{msgPods}},
		{"/groups/0/apps/0/storeUrls", []string{msgStoreURLs}},
	})
	g, err := DecodeGroup([]byte(`{"id": "/g", "pods": [], "apps": [{"id": "a"}], "enforceRole": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Apps) != 1 || g.Apps[0].Cpus != 1 || !g.EnforceRole {
		t.Fatalf("group = %+v, app %+v", g, g.Apps[0])
	}
}

func TestDecodeAppList(t *testing.T) {
	for _, tt := range []struct {
		json string
		ids  []string
	}{
		{`[{"id": "a"}, {"id": "b"}]`, []string{"a", "b"}},
		{`{"apps": [{"id": "a"}]}`, []string{"a"}},
		{`[]`, []string{}},
	} {
		apps, err := DecodeAppList([]byte(tt.json))
		if err != nil {
			t.Fatalf("%s: %v", tt.json, err)
		}
		ids := []string{}
		for _, a := range apps {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(ids, tt.ids) {
			t.Errorf("%s: ids %q, want %q", tt.json, ids, tt.ids)
		}
	}
	_, err := DecodeAppList([]byte(`[{"id": "a"}, {"id": 1}]`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/1/id", []string{"error.expected.jsstring"}}})
	_, err = DecodeAppList([]byte(`{"apps": [{"id": 1}]}`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/apps/0/id", []string{"error.expected.jsstring"}}})
	_, err = DecodeAppList([]byte(`{"apps": {}}`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/apps", []string{"error.expected.jsarray"}}})
	_, err = DecodeAppList([]byte(`"x"`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/", []string{"error.expected.jsarray"}}})
	_, err = DecodeAppList([]byte(`[{"id": "a", "storeUrls": ["http://x"]}]`))
	wantError(t, err, 422, "Object is not valid", []ErrorDetail{{"/0/storeUrls", []string{msgStoreURLs}}})
}

// A resident app without an upgrade strategy gets {0.5, 0}, in an app, a list and a group;
// one with an upgrade strategy keeps it, and so does an app without persistent volumes.
func TestDecodeResidentDefaults(t *testing.T) {
	const resident = `{"id": "a", "cmd": "x", "container": {"type": "MESOS", "volumes": [{"containerPath": "d", "mode": "RW", "persistent": {"size": 1}}]}}`
	const given = `{"id": "b", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}, "container": {"type": "MESOS", "volumes": [{"containerPath": "d", "mode": "RW", "persistent": {"size": 1}}]}}`
	const plain = `{"id": "c", "cmd": "x"}`
	want := []UpgradeStrategy{{0.5, 0}, {0, 0}, {1, 1}}
	app, err := DecodeApp([]byte(resident))
	if err != nil || app.UpgradeStrategy != want[0] {
		t.Errorf("DecodeApp: %+v, %v", app, err)
	}
	apps, err := DecodeAppList([]byte("[" + resident + "," + given + "," + plain + "]"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeGroup([]byte(`{"id": "/", "groups": [{"id": "g", "apps": [` + resident + "," + given + "," + plain + `]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if apps[i].UpgradeStrategy != want[i] || g.Groups[0].Apps[i].UpgradeStrategy != want[i] {
			t.Errorf("app %d: list %+v, group %+v, want %+v", i, apps[i].UpgradeStrategy, g.Groups[0].Apps[i].UpgradeStrategy, want[i])
		}
	}
	Normalize(app, "/")
	if app.Residency == nil || *app.Residency != (Residency{RelaunchEscalationTimeoutSeconds: 3600, TaskLostBehavior: TaskLostWaitForever}) {
		t.Errorf("normalised residency %+v", app.Residency)
	}
}

// TestWireForms: the types whose JSON is not a plain object marshal and unmarshal both ways.
func TestWireForms(t *testing.T) {
	tests := []struct {
		name string
		v    any
		json string
	}{
		{"env string", &EnvValue{Value: "x"}, `"x"`},
		{"env secret", &EnvValue{Secret: "db"}, `{"secret":"db"}`},
		{"unreachable disabled", &UnreachableStrategy{Disabled: true}, `"disabled"`},
		{"unreachable enabled", &UnreachableStrategy{InactiveAfterSeconds: 5, ExpungeAfterSeconds: 10}, `{"inactiveAfterSeconds":5,"expungeAfterSeconds":10}`},
		{"limit number", &ResourceLimit{Value: 2.5}, `2.5`},
		{"limit unlimited", &ResourceLimit{Unlimited: true}, `"unlimited"`},
		{"constraint", &Constraint{"@hostname", "MAX_PER", "2"}, `["@hostname","MAX_PER","2"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil || string(b) != tt.json {
				t.Fatalf("marshal = %s, %v; want %s", b, err, tt.json)
			}
			back := reflect.New(reflect.TypeOf(tt.v).Elem()).Interface()
			if err := json.Unmarshal(b, back); err != nil || !reflect.DeepEqual(back, tt.v) {
				t.Fatalf("unmarshal = %+v, %v; want %+v", back, err, tt.v)
			}
		})
	}
	var env EnvValue
	wantError(t, json.Unmarshal([]byte(`3`), &env), 400, "Invalid JSON", []ErrorDetail{{"/", []string{"error.expected.jsstring"}}})
	c := Constraint{"rack", "GROUP_BY"}
	if v, ok := c.Value(); c.Field() != "rack" || c.Operator() != OpGroupBy || v != "" || ok {
		t.Errorf("constraint accessors: %q %q %q %v", c.Field(), c.Operator(), v, ok)
	}
}

// TestAppUnmarshalJSON: encoding/json reads apps as DecodeApp does, without the checks for
// unsupported features.
func TestAppUnmarshalJSON(t *testing.T) {
	var app App
	if err := json.Unmarshal([]byte(`{"id": "/a", "ports": [80], "check": {}}`), &app); err != nil {
		t.Fatal(err)
	}
	if app.Cpus != 1 || !slices.Equal(app.Ports, []int{80}) {
		t.Fatalf("app = %+v", app)
	}
	wantError(t, json.Unmarshal([]byte(`{"id": 1}`), &app), 400, "Invalid JSON", []ErrorDetail{{"/id", []string{"error.expected.jsstring"}}})
}

func TestAppInfoJSON(t *testing.T) {
	info := AppInfo{App: App{ID: "/a", Instances: 2, Labels: map[string]string{}}, AppStatus: AppStatus{TasksRunning: new(2)}}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"/a","instances":2,"cpus":0,"mem":0,"disk":0,"gpus":0,"executor":"","backoffSeconds":0,"backoffFactor":0,` +
		`"maxLaunchDelaySeconds":0,"upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0},"labels":{},` +
		`"killSelection":"","unreachableStrategy":{"inactiveAfterSeconds":0,"expungeAfterSeconds":0},"requirePorts":false,"tasksRunning":2}`
	if string(b) != want {
		t.Fatalf("marshal =\n%s\nwant\n%s", b, want)
	}
	var back AppInfo
	if err := json.Unmarshal([]byte(`{"id": "/a", "tasksRunning": 2, "tasks": [{"id": "a.1", "appId": "/a", "host": "h", "ports": [1], "state": "TASK_RUNNING"}]}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != "/a" || back.Cpus != 1 || *back.TasksRunning != 2 || len(back.Tasks) != 1 || back.Tasks[0].Ports[0] != 1 {
		t.Fatalf("unmarshal = %+v", back)
	}
	bare, err := json.Marshal(AppInfo{App: App{ID: "/b"}})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(bare, &fields); err != nil || fields["id"] != "/b" || fields["tasksRunning"] != nil {
		t.Fatalf("without status: %s, %v", bare, err)
	}
}

func TestErrorJSON(t *testing.T) {
	e := &Error{Status: 422, Message: MessageInvalidObject, Details: []ErrorDetail{{"/upgradeStrategy/minimumHealthCapacity", []string{"is greater than 1"}}}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}`; string(b) != want {
		t.Errorf("body = %s, want %s", b, want)
	}
	if got, want := e.Error(), "422 Object is not valid: /upgradeStrategy/minimumHealthCapacity: is greater than 1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	locked, err := json.Marshal(NewAppLockedError("d1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"message":"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/d1'.","deployments":[{"id":"d1"}]}`; string(locked) != want {
		t.Errorf("locked = %s", locked)
	}
	if e := NewAppExistsError("/x"); e.Status != 409 || e.Message != "An app with id [/x] already exists." {
		t.Errorf("exists = %+v", e)
	}
}

func TestEventJSON(t *testing.T) {
	ev := StatusUpdateEvent{
		EventHeader: EventHeader{EventType: EventStatusUpdate, Timestamp: "2014-03-01T23:29:30.158Z"},
		SlaveID:     "s1", TaskID: "a.1", TaskStatus: "TASK_RUNNING", AppID: "/a", Host: "h", Ports: []int{31000}, Version: "v",
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"eventType":"status_update_event","timestamp":"2014-03-01T23:29:30.158Z","slaveId":"s1","taskId":"a.1",` +
		`"taskStatus":"TASK_RUNNING","appId":"/a","host":"h","ports":[31000],"version":"v"}`
	if string(b) != want {
		t.Errorf("event = %s\nwant    %s", b, want)
	}
	attached, err := json.Marshal(EventStreamEvent{EventHeader: EventHeader{EventType: EventStreamAttached, Timestamp: "t"}, RemoteAddress: "127.0.0.1"})
	if err != nil || string(attached) != `{"eventType":"event_stream_attached","timestamp":"t","remoteAddress":"127.0.0.1"}` {
		t.Errorf("attached = %s, %v", attached, err)
	}
}

// TestDecoderHandlesEveryWireType walks the types DecodeApp and DecodeGroup fill and checks
// that the decoder knows each kind (its default case is for programming errors only).
func TestDecoderHandlesEveryWireType(t *testing.T) {
	wire := reflect.TypeFor[wireDecoder]()
	seen := map[reflect.Type]bool{}
	var walk func(tp reflect.Type, path string)
	walk = func(tp reflect.Type, path string) {
		if seen[tp] {
			return
		}
		seen[tp] = true
		if reflect.PointerTo(tp).Implements(wire) {
			return
		}
		switch tp.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			walk(tp.Elem(), path)
		case reflect.Struct:
			for _, f := range fieldsOf(tp) {
				walk(tp.Field(f.index).Type, path+"/"+f.name)
			}
		case reflect.String, reflect.Bool, reflect.Float64, reflect.Int, reflect.Int64:
		default:
			t.Errorf("%s: the decoder cannot fill a %s", path, tp)
		}
	}
	walk(reflect.TypeFor[Group](), "")
	walk(reflect.TypeFor[unreachableEnabled](), "")
	if !seen[reflect.TypeFor[App]()] || len(seen) < 20 {
		t.Fatalf("walked %d types", len(seen))
	}
}
