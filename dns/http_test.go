package dns

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestHTTPAPI: the Mesos-DNS HTTP API answers from the served records.
func TestHTTPAPI(t *testing.T) {
	s := serveFixture(t)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	port := s.Addr().Port()
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/v1/version", 200, `{"Service":"atoll-dns","URL":"/v1","Version":"test"}`},
		{"/v1/config", 200, `{"Domain":"mesos","TTL":60,"Listener":"127.0.0.1","Port":` + strconv.Itoa(int(port)) +
			`,"Resolvers":[],"Timeout":2,"RecurseOn":false,"RefreshSeconds":0,"IPSources":["netinfo","host"],` +
			`"SOAMname":"ns1.mesos.","SOARname":"root.ns1.mesos.","SOARefresh":60,"SOARetry":600,"SOAExpire":86400,"SOAMinttl":60,"Stale":false}`},
		{"/v1/hosts/web-grp.marathon.mesos", 200, `[{"host":"web-grp.marathon.mesos.","ip":"10.0.1.1"}]`},
		{"/v1/hosts/Executor-1.Spark-Cluster-1.mesos.", 200, `[{"host":"executor-1.spark-cluster-1.mesos.","ip":"fd00::5"}]`},
		{"/v1/hosts/nope.mesos", 200, `[]`},
		{"/v1/services/_http._api-svc._tcp.marathon.mesos", 200,
			`[{"service":"_http._api-svc._tcp.marathon.mesos.","host":"api-svc-u6mcj-s0.marathon.mesos.","ip":"172.17.0.5","port":"8080"}]`},
		{"/v1/services/_leader._tcp.mesos.", 200, `[{"service":"_leader._tcp.mesos.","host":"leader.mesos.","ip":"10.0.0.1","port":"5050"}]`},
		{"/v1/services/nope.mesos", 200, `[]`},
		{"/v1/nothing", 404, "404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := get(t, hs.URL+tt.path)
			if status != tt.status || body != tt.body {
				t.Fatalf("%d %s\nwant %d %s", status, body, tt.status, tt.body)
			}
		})
	}
	if status, _ := post(t, hs.URL+"/v1/version"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/version: %d, want 405", status)
	}
}

// TestHTTPEnumerate: /v1/enumerate lists every published task's records by framework.
func TestHTTPEnumerate(t *testing.T) {
	s := serveFixture(t)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	_, body := get(t, hs.URL+"/v1/enumerate")
	want := `{"frameworks":[{"frameworkname":"Spark Cluster_1","tasks":[{"name":"Executor_1","id":"spark-exec-1","records":[` +
		`{"name":"executor-1.spark-cluster-1.mesos.","host":"fd00::5","rtype":"AAAA"},` +
		`{"name":"executor-1-8adj5-s3.spark-cluster-1.mesos.","host":"fd00::5","rtype":"AAAA"},` +
		`{"name":"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.","host":"executor-1-8adj5-s3.spark-cluster-1.mesos.","rtype":"PTR"},` +
		`{"name":"executor-1.spark-cluster-1.slave.mesos.","host":"10.0.1.1","rtype":"A"},` +
		`{"name":"executor-1-8adj5-s3.spark-cluster-1.slave.mesos.","host":"10.0.1.1","rtype":"A"}]}]},` +
		`{"frameworkname":"marathon","tasks":[`
	if !strings.HasPrefix(body, want) {
		t.Fatalf("enumerate:\n%s\nwant it to start:\n%s", body, want)
	}
	for _, task := range []string{`"name":"/grp/api"`, `"name":"My_Task.With.Dots"`, `"name":"db"`, `"name":"web.grp"`,
		`{"name":"_web-grp._tcp.marathon.mesos.","host":"web-grp-hrimy-s3.marathon.slave.mesos.:31000","rtype":"SRV"}`} {
		if !strings.Contains(body, task) {
			t.Errorf("enumerate lacks %s", task)
		}
	}
	if strings.Contains(body, `"name":"cache"`) {
		t.Errorf("enumerate lists the unhealthy task")
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
