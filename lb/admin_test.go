package lb

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdmin: marathon-lb's admin endpoints answer from the current table, the CSV has
// HAProxy's header and counts the requests made, and Prometheus metrics count them too.
func TestAdmin(t *testing.T) {
	s, reg := newTestServer(t)
	port, tcpPort := freePort(t), freePort(t)
	web := svcDef("web", port, ModeHTTP, httpBackend(t, "w"))
	web.VHosts, web.Path = []string{"web.example"}, "/app"
	swap(t, s, web, svcDef("db", tcpPort, ModeTCP, tcpBackend(t, "db")))
	s.Table().Problems = append(s.Table().Problems, Problem{App: "/web", Label: "HAPROXY_0_FOO", Why: "unknown"})
	for range 3 {
		get(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	}
	admin := httptest.NewServer(s.AdminHandler(reg))
	defer admin.Close()
	body := func(path string) string {
		code, b, _ := get(t, http.DefaultClient, admin.URL+path, nil)
		if code != 200 {
			t.Fatalf("%s = %d %s", path, code, b)
		}
		return b
	}
	if got := body("/_haproxy_health_check"); !strings.Contains(got, "200 OK") {
		t.Errorf("health check %q", got)
	}
	// The proxy counts a response once it has flushed it, so the client can see the
	// third answer a moment before the counters do: read them until they settle.
	const header = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,"
	webName := "web"
	wantRows := []string{"FRONTEND stot=3 status=OPEN type=0 2xx=3", "", "BACKEND stot=3 status=UP type=1 2xx=3"}
	eventually(t, "the CSV counts the 3 requests", func() error {
		csv := strings.Split(body("/haproxy?stats;csv"), "\n")
		if csv[0] != header {
			t.Fatalf("CSV header\n%s\nwant\n%s", csv[0], header)
		}
		var rows []string
		for _, line := range csv[1:] {
			if strings.HasPrefix(line, webName+",") {
				f := strings.Split(line, ",")
				rows = append(rows, fmt.Sprintf("%s stot=%s status=%s type=%s 2xx=%s", f[1], f[7], f[17], f[32], f[40]))
			}
		}
		if len(rows) != 3 || rows[0] != wantRows[0] || rows[2] != wantRows[2] || !strings.HasSuffix(rows[1], " stot=3 status=UP type=2 2xx=3") {
			return fmt.Errorf("CSV rows of %s: %q", webName, rows)
		}
		return nil
	})
	if got := body("/_haproxy_getvhostmap"); got != "web.example/app "+webName+"\n" {
		t.Errorf("vhost map %q", got)
	}
	if got := body("/_haproxy_getappmap"); got != "/web "+webName+"\n" {
		t.Errorf("app map %q", got)
	}
	var table Table
	if err := json.Unmarshal([]byte(body("/_haproxy_getconfig")), &table); err != nil || len(table.Services) != 2 || table.Services[0].Name != "web" {
		t.Errorf("config %+v %v", table, err)
	}
	if got := body("/_atoll_problems"); !strings.Contains(got, `"label": "HAPROXY_0_FOO"`) {
		t.Errorf("problems %q", got)
	}
	if got := body("/haproxy?stats"); !strings.Contains(got, "<td>"+webName+"</td><td>BACKEND</td>") {
		t.Errorf("HTML stats lack the backend row: %s", got)
	}
	wantMetrics := []string{
		fmt.Sprintf(`atoll_lb_http_requests_total{code="2xx",service="%s"} 3`, webName),
		fmt.Sprintf(`atoll_lb_http_request_duration_seconds_count{service="%s"} 3`, webName),
		fmt.Sprintf(`atoll_lb_sessions_total{service="%s"} 3`, webName),
		`atoll_lb_backend_up{backend="`,
	}
	eventually(t, "the metrics count the 3 requests", func() error {
		metrics := body("/metrics")
		var missing []string
		for _, want := range wantMetrics {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("metrics lack %q", missing)
		}
		return nil
	})
}

// TestStatsPageEscapes: the HTML stats page is one header cell per CSV column and one row
// per stats row, classed by its status, with every text HTML-escaped.
func TestStatsPageEscapes(t *testing.T) {
	row := map[string]string{"pxname": `a<b>&"c"`, "svname": "BACKEND", "status": `DOWN" onclick="x`}
	var sb strings.Builder
	writeStatsPage(&sb, "<ext>", []map[string]string{row})
	page := sb.String()
	var head, cells strings.Builder
	for _, col := range csvColumns {
		head.WriteString("<th>" + col + "</th>")
		cells.WriteString("<td>")
		switch col {
		case "pxname":
			cells.WriteString("a&lt;b&gt;&amp;&#34;c&#34;")
		case "svname":
			cells.WriteString("BACKEND")
		case "status":
			cells.WriteString("DOWN&#34; onclick=&#34;x")
		}
		cells.WriteString("</td>")
	}
	want := statsPageHead + "<p>group &lt;ext&gt;</p>\n<table><tr>" + head.String() + "</tr>\n" +
		`<tr class="DOWN&#34; onclick=&#34;x">` + cells.String() + "</tr>\n</table></body></html>\n"
	if page != want {
		t.Errorf("stats page\n%s\nwant\n%s", page, want)
	}
}
