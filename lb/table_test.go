package lb

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// corpusDir holds real marathon-lb app definitions, shared by the project's packages.
const corpusDir = "../../shared/corpus/marathon-lb"

// aliceHash is `openssl passwd -6 -salt saltsalt secret`.
const aliceHash = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"

// handApps are hand-written app lists covering every label the table reads.
var handApps = []struct {
	name  string
	group string
	apps  string
}{
	{"every-label", "external", `{"apps": [{
		"id": "/shop/web", "cmd": "serve", "portDefinitions": [{"port": 10000}, {"port": 10001}, {"port": 10002}],
		"healthChecks": [{"protocol": "HTTP", "portIndex": 0}],
		"labels": {"HAPROXY_GROUP": "external",
			"HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "Web.Example.com, www.example.com", "HAPROXY_0_PATH": "/api",
			"HAPROXY_0_BALANCE": "leastconn", "HAPROXY_0_STICKY": "true", "HAPROXY_0_BACKEND_WEIGHT": "5",
			"HAPROXY_0_AUTH": "shop:alice:` + aliceHash + `", "HAPROXY_0_BIND_ADDR": "127.0.0.1",
			"HAPROXY_0_REDIRECT_TO_HTTPS": "yes", "HAPROXY_0_SSL_CERT": "/etc/ssl/web.pem", "HAPROXY_0_USE_HSTS": "1",
			"HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL": "10.0.0.0/8, 127.0.0.1",
			"HAPROXY_1_BALANCE": "source", "HAPROXY_1_PORT": "10500",
			"HAPROXY_2_ENABLED": "false"},
		"tasks": [
			{"id": "shop_web.1", "host": "10.0.0.1", "ports": [31001, 31002, 31003], "state": "TASK_RUNNING", "healthCheckResults": [{"alive": true}]},
			{"id": "shop_web.2", "host": "10.0.0.2", "ports": [31001, 31002, 31003], "state": "TASK_RUNNING", "healthCheckResults": [{"alive": false}]},
			{"id": "shop_web.3", "host": "10.0.0.3", "ports": [31001, 31002, 31003], "state": "TASK_RUNNING"},
			{"id": "shop_web.4", "host": "10.0.0.4", "ports": [31001, 31002, 31003], "state": "TASK_STAGING"},
			{"id": "shop_web.5", "host": "10.0.0.5", "ports": [31005, 31006, 31007], "state": "TASK_RUNNING", "healthCheckResults": [{"alive": true}, {"alive": true}]}
		]}]}`},
	{"groups", "external", `{"apps": [
		{"id": "/internal", "cmd": "x", "portDefinitions": [{"port": 10010}], "labels": {"HAPROXY_GROUP": "internal"},
			"tasks": [{"id": "internal.1", "host": "h1", "ports": [1], "state": "TASK_RUNNING"}]},
		{"id": "/override", "cmd": "x", "portDefinitions": [{"port": 10011}, {"port": 10012}],
			"labels": {"HAPROXY_GROUP": "internal", "HAPROXY_1_GROUP": "external,internal"},
			"tasks": [{"id": "override.1", "host": "h1", "ports": [1, 2], "state": "TASK_RUNNING"}]},
		{"id": "/nogroup", "cmd": "x", "portDefinitions": [{"port": 10013}], "labels": {"HAPROXY_0_VHOST": "a.example"},
			"tasks": [{"id": "nogroup.1", "host": "h1", "ports": [1], "state": "TASK_RUNNING"}]},
		{"id": "/tcp", "cmd": "x", "portDefinitions": [{"port": 10014}], "labels": {"HAPROXY_GROUP": "external"}, "tasks": []}
	]}`},
	{"every-group", "*", `{"apps": [
		{"id": "/internal", "cmd": "x", "portDefinitions": [{"port": 10010}], "labels": {"HAPROXY_GROUP": "internal"}},
		{"id": "/nogroup", "cmd": "x", "portDefinitions": [{"port": 10013}], "labels": {}}
	]}`},
	{"tls-labels", "external", `{"apps": [
		{"id": "/tls", "cmd": "x", "portDefinitions": [{"port": 10030}, {"port": 10031}],
			"labels": {"HAPROXY_GROUP": "external",
				"HAPROXY_0_MODE": "http", "HAPROXY_0_SSL_CERT": "/etc/ssl/a.pem", "HAPROXY_0_REDIRECT_TO_HTTPS": "true", "HAPROXY_0_USE_HSTS": "true",
				"HAPROXY_1_MODE": "tcp", "HAPROXY_1_SSL_CERT": "/etc/ssl/b.pem", "HAPROXY_1_USE_HSTS": "true"}}
	]}`},
	{"malformed", "external", `{"apps": [
		{"id": "/bad", "cmd": "x", "portDefinitions": [{"port": 10020}, {"port": 10021}, {"port": 10022}, {"port": 10023}, {"port": 10024}, {"port": 10025}, {"port": 10027}],
			"labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "udp", "HAPROXY_1_PORT": "70000",
				"HAPROXY_2_AUTH": "realm:bob:plaintext", "HAPROXY_3_BALANCE": "random", "HAPROXY_3_VHOST": "bad host!",
				"HAPROXY_4_MODE": "tcp", "HAPROXY_4_VHOST": "tcp.example", "HAPROXY_4_STICKY": "true", "HAPROXY_4_REDIRECT_TO_HTTPS": "true",
				"HAPROXY_6_MODE": "tcp", "HAPROXY_6_AUTH": "r:u:` + aliceHash + `",
				"HAPROXY_5_PATH": "/nohost", "HAPROXY_5_BACKEND_HEALTHCHECK_PORT_INDEX": "1", "HAPROXY_5_FRONTEND_HEAD": "x",
				"HAPROXY_9_VHOST": "nine.example", "HAPROXY_FOO": "bar", "HAPROXY_DEPLOYMENT_TARGET_INSTANCES": "many",
				"HAPROXY_0_STICKY": "maybe"},
			"tasks": [{"id": "bad.1", "host": "h1", "ports": [1, 2, 3, 4, 5, 6, 7], "state": "TASK_RUNNING"}]},
		{"id": "/good", "cmd": "x", "portDefinitions": [{"port": 10026}], "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "good.example"},
			"tasks": [{"id": "good.1", "host": "h1", "ports": [7], "state": "TASK_RUNNING"}]},
		{"id": "/noport", "cmd": "x", "portDefinitions": [{"port": 0}], "labels": {"HAPROXY_GROUP": "external"}}
	]}`},
	{"port-conflict", "external", `{"apps": [
		{"id": "/a", "cmd": "x", "portDefinitions": [{"port": 10030}], "labels": {"HAPROXY_GROUP": "external"}},
		{"id": "/b", "cmd": "x", "portDefinitions": [{"port": 10031}], "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_PORT": "10030"}},
		{"id": "/c", "cmd": "x", "portDefinitions": [{"port": 10030}], "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_BIND_ADDR": "127.0.0.2"}}
	]}`},
	{"blue-green", "external", `{"apps": [
		{"id": "/web-blue", "cmd": "x", "portDefinitions": [{"port": 10040}],
			"labels": {"HAPROXY_GROUP": "external", "HAPROXY_DEPLOYMENT_GROUP": "web", "HAPROXY_DEPLOYMENT_COLOUR": "blue",
				"HAPROXY_DEPLOYMENT_ALT_PORT": "10041", "HAPROXY_DEPLOYMENT_STARTED_AT": "2024-01-01T10:00:00", "HAPROXY_0_VHOST": "web.example"},
			"tasks": [{"id": "web-blue.1", "host": "h1", "ports": [31000], "state": "TASK_RUNNING"},
				{"id": "web-blue.2", "host": "h2", "ports": [31000], "state": "TASK_KILLING"}]},
		{"id": "/web-green", "cmd": "x", "portDefinitions": [{"port": 10041}],
			"labels": {"HAPROXY_GROUP": "external", "HAPROXY_DEPLOYMENT_GROUP": "web", "HAPROXY_DEPLOYMENT_COLOUR": "green",
				"HAPROXY_DEPLOYMENT_ALT_PORT": "10040", "HAPROXY_DEPLOYMENT_STARTED_AT": "2024-01-02T10:00:00",
				"HAPROXY_DEPLOYMENT_TARGET_INSTANCES": "2", "HAPROXY_0_PORT": "10040", "HAPROXY_0_VHOST": "web.example",
				"HAPROXY_APP_ID": "web"},
			"tasks": [{"id": "web-green.1", "host": "h3", "ports": [31001], "state": "TASK_RUNNING"}]}
	]}`},
	{"networks", "external", `{"apps": [
		{"id": "/bridged", "container": {"type": "MESOS", "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 10050}]},
			"networks": [{"mode": "container/bridge"}], "labels": {"HAPROXY_GROUP": "external"},
			"tasks": [{"id": "bridged.1", "host": "10.0.0.9", "ipAddresses": [{"ipAddress": "172.17.0.2", "protocol": "IPv4"}], "ports": [31999], "state": "TASK_RUNNING"}]},
		{"id": "/overlay", "container": {"type": "MESOS", "portMappings": [{"containerPort": 8080, "servicePort": 10051}]},
			"networks": [{"mode": "container", "name": "dcos"}], "labels": {"HAPROXY_GROUP": "external"},
			"tasks": [{"id": "overlay.1", "host": "10.0.0.9", "ipAddresses": [{"ipAddress": "9.0.0.5", "protocol": "IPv4"}], "ports": [], "state": "TASK_RUNNING"}]}
	]}`},
}

// TestBuildTableGolden: every hand-written app list and every marathon-lb corpus file gives
// exactly the table in testdata/golden (go test -run TestBuildTableGolden -update rewrites).
func TestBuildTableGolden(t *testing.T) {
	type input struct {
		name, group string
		data        []byte
	}
	var inputs []input
	for _, h := range handApps {
		inputs = append(inputs, input{h.name, h.group, []byte(h.apps)})
	}
	corpus, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(corpus) == 0 {
		t.Logf("no corpus in %s: only hand-written apps", corpusDir)
	}
	for _, path := range corpus {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"apps"`)) {
			data = append(append([]byte(`{"apps": [`), data...), "]}"...) // a single app definition
		}
		inputs = append(inputs, input{"corpus-" + strings.TrimSuffix(filepath.Base(path), ".json"), "external", data})
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			apps, problems, err := DecodeApps(in.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 0 {
				t.Fatalf("decode problems: %v", problems)
			}
			table, tableProblems := BuildTable(apps, TableOptions{Group: in.group})
			if len(tableProblems) != len(table.Problems) {
				t.Errorf("returned %d problems, the table has %d", len(tableProblems), len(table.Problems))
			}
			got, err := json.MarshalIndent(table, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", in.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("table differs from %s:\n%s", golden, got)
			}
		})
	}
}

// TestDecodeAppsBadApp: an app that does not decode is a problem, the others still decode.
func TestDecodeAppsBadApp(t *testing.T) {
	apps, problems, err := DecodeApps([]byte(`{"apps": [{"id": "/bad", "instances": "many"}, {"id": "/good", "cmd": "x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 1 || apps[0].ID != "/good" {
		t.Errorf("apps %+v, want only /good", apps)
	}
	if len(problems) != 1 || problems[0].App != "/bad" || !strings.HasPrefix(problems[0].Why, "the app does not decode: ") {
		t.Errorf("problems %+v", problems)
	}
	if _, _, err := DecodeApps([]byte(`[1, 2]`)); err == nil {
		t.Error("a body that is no app list decoded")
	}
}

// TestShaCrypt: hashes made by openssl passwd -5/-6 verify with their password only.
func TestShaCrypt(t *testing.T) {
	for _, tc := range []struct {
		hash, password string
	}{
		{"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!"},
		{"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!"},
		{"$5$rounds=2000$abc$vrlxR7o0DfB5s354U61LJz8WOm8rZtSjUNqI5mJH45A", "secret"},
		{"$6$toolongsaltstrin$HVORu0hdHsOheLM1WO9hf3tacVjHKywcUz1aTsZ5hYxepcv6cJl00D6EYvHRP50Nvzlq8DxhE70/.e8qOYWuN/", "pw"},
		{aliceHash, "secret"},
	} {
		c, err := parseShaCrypt(tc.hash)
		if err != nil {
			t.Errorf("%s: %v", tc.hash, err)
			continue
		}
		if !c.verify(tc.password) {
			t.Errorf("%s does not verify %q", tc.hash, tc.password)
		}
		if c.verify(tc.password + "x") {
			t.Errorf("%s verifies a wrong password", tc.hash)
		}
	}
	for _, bad := range []string{"plain", "$1$md5$x", "$6$salt", "$6$rounds=x$s$d", "$6$rounds=1000000$s$d"} {
		if _, err := parseShaCrypt(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseLabels: no label set makes the parser panic, every problem names a label of the
// input, and a port index it keeps exists.
func FuzzParseLabels(f *testing.F) {
	f.Add("HAPROXY_0_VHOST", "a.example,b.example", "HAPROXY_GROUP", "external", 2)
	f.Add("HAPROXY_1_AUTH", "r:u:"+aliceHash, "HAPROXY_0_MODE", "http", 2)
	f.Add("HAPROXY_0_BACKEND_NETWORK_ALLOWED_ACL", "10.0.0.0/8", "HAPROXY_0_PORT", "99999", 1)
	f.Add("HAPROXY_00000_X", "", "HAPROXY_DEPLOYMENT_ALT_PORT", "-1", 0)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, nports int) {
		nports = max(0, min(nports, 8))
		labels := map[string]string{k1: v1, k2: v2}
		parsed, problems := parseLabels("/app", labels, nports)
		for _, p := range problems {
			if _, ok := labels[p.Label]; !ok || p.App != "/app" || p.Why == "" {
				t.Errorf("problem %+v names no input label", p)
			}
		}
		for index := range parsed.ports {
			if index < 0 || index >= nports {
				t.Errorf("port index %d kept of %d ports", index, nports)
			}
		}
	})
}
