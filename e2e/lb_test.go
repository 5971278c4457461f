package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/lb/vrrp"
)

const (
	// lbVHost is the web app's virtual host.
	lbVHost = "web.test"
	// lbAdvertInterval is the VRRP advertisement interval of the test's load balancers.
	lbAdvertInterval = 100 * time.Millisecond
	// vipRequestTimeout bounds each of the client's requests through the VIP.
	vipRequestTimeout = time.Second
	// vipRequestPause spaces the client's requests.
	vipRequestPause = 20 * time.Millisecond
	// maxFailoverGap bounds the outage the client sees when the VRRP master dies: about
	// 25 Master_Down_Intervals of the backup (361 ms), for a loaded 2-core machine.
	maxFailoverGap = 10 * time.Second
)

// lbWebCommand serves, on the task's first port, a page naming version and the task.
func lbWebCommand(version int) string {
	return fmt.Sprintf(`mkdir -p www && printf 'web v%d %%s\n' "$MESOS_TASK_ID" > www/index.html && exec %s httpd -f -p "$PORT0" -h www`, version, busybox)
}

// healthyAt says the app is deployed at version and every task passes its health check.
func healthyAt(s appSnapshot, version string) bool {
	if !s.deployed(version) {
		return false
	}
	for _, task := range s.app.Tasks {
		if len(task.HealthCheckResults) == 0 {
			return false
		}
		for _, r := range task.HealthCheckResults {
			if !r.Alive {
				return false
			}
		}
	}
	return true
}

// TestLoadBalancerVIP: one master, two agents (process tasks), two load balancers with
// the same VIP and VRID at priorities 150 and 100 (adverts every 100 ms), and a client
// host that routes the VIP on its link. An app of 3 busybox httpd instances (labels
// HAPROXY_GROUP=external, HAPROXY_0_MODE=http, HAPROXY_0_VHOST=web.test, a MESOS_HTTP
// health check) serves a page naming its version and task. Both load balancers' admin
// endpoints answer /_haproxy_health_check, and /haproxy?stats;csv lists exactly the
// app's 3 tasks as servers of its backend; the VIP is on the priority-150 host only.
//
// The client, in the test process with its sockets in the client host's namespace,
// loops GET http://VIP:8080/ with Host: web.test, a new connection per request (no
// keep-alive: every request dials the VIP and goes through the load balancer's accept
// and backend choice), a 1 s timeout, 20 ms apart, and counts per phase:
//
//	(0) steady state: no failure, and every one of the 3 tasks answers (round robin);
//	(a) a new version (rolling, minimumHealthCapacity 1, maximumOverCapacity 0.34):
//	    no failure, every answer names version 1 or 2, both are seen, and every request
//	    started after the deployment finished is answered by version 2;
//	(b) DELETE /v2/apps/web/tasks/ID kills one task, which Marathon replaces: no failure;
//	(c) SIGKILL of the VRRP master's atoll (no priority-0 resign): the backup takes the
//	    VIP (the test logs when, against Master_Down_Interval); the client sees one
//	    outage, bounded by maxFailoverGap, and no failure after its first answer since;
//	    the backup's stats list the 3 tasks; and within 5 s the VIP is on the backup's
//	    interface only (when not, the test logs which hosts answer ARP for it).
//
// Figures: lb_vip_failover_failed_requests and lb_vip_failover_gap (from the client's
// last answer before the first failure to its first answer after it).
func TestLoadBalancerVIP(t *testing.T) {
	t.Parallel()
	requireHostFile(t, busybox, "busybox (apt-get install busybox-static) for the app's web server")
	c := NewCluster(t)
	c.StartMasters(1)
	c.StartAgents(2)
	vip := c.VIP(0)
	vrrpArgs := func(priority int) []string {
		return []string{"--group", "external", "--vip", netip.PrefixFrom(vip, 24).String(), "--vrid", "51",
			"--priority", strconv.Itoa(priority), "--interface", "eth0", "--advert-interval", lbAdvertInterval.String()}
	}
	primary := c.StartLB("lb1", vrrpArgs(150)...)
	backup := c.StartLB("lb2", vrrpArgs(100)...)
	client := c.AddHost("client")
	if err := client.RouteVIPs(); err != nil {
		t.Fatal(err)
	}
	leader := c.WaitForLeader()
	c.WaitForAgents(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dialer := client.Dialer()
	admin := &lbAdmin{client: &http.Client{Timeout: callTimeout, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}}
	for _, lb := range []*Host{primary, backup} {
		admin.checkHealth(ctx, t, lb)
	}

	w := watchApp(t, c, "/web")
	var created marathon.AppInfo
	if err := marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v2/apps", map[string]any{
		"id": "/web", "cmd": lbWebCommand(1), "cpus": taskCPUs, "mem": 16, "instances": 3,
		"portDefinitions": []map[string]any{{"port": 0}},
		"labels":          map[string]string{"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": lbVHost},
		"healthChecks": []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "delaySeconds": 0,
			"intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30, "maxConsecutiveFailures": 3}},
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 1, "maximumOverCapacity": 0.34},
	}, &created); err != nil {
		t.Fatal(err)
	}
	s := w.waitUntil(3*time.Minute, "deployed and healthy", func(s appSnapshot) bool { return healthyAt(s, created.Version) })
	if len(s.app.PortDefinitions) != 1 || s.app.PortDefinitions[0].Port == 0 {
		t.Fatalf("the app's port definitions %+v: want one with a service port", s.app.PortDefinitions)
	}
	backend := backendOf("/web", s.app.PortDefinitions[0].Port)
	for _, lb := range []*Host{primary, backup} {
		admin.waitServers(ctx, t, lb, backend, s.app.Tasks)
	}
	if !waitVIP(t, DefaultWaitTimeout, vip, primary, backup) {
		t.Fatalf("the VIP is not on %s (priority 150) only", primary.Name())
	}

	cl := startVIPClient(t, dialer, "http://"+netip.AddrPortFrom(vip, LBHTTPPort).String()+"/")

	// (0) Steady state.
	cl.waitFor(t, "0", "requests in the steady state", 100, nil)
	tasks := map[string]bool{}
	for _, task := range s.app.Tasks {
		tasks[task.ID] = true
	}
	served := map[string]bool{}
	for _, r := range cl.phase("0") {
		if r.err == nil {
			served[r.task] = true
		}
	}
	if !maps.Equal(served, tasks) {
		t.Errorf("in the steady state the client was served by tasks %q, want all of the app's %q", slices.Sorted(maps.Keys(served)), slices.Sorted(maps.Keys(tasks)))
	}

	// (a) A rolling upgrade to version 2.
	cl.setPhase("a")
	var updated struct {
		Version string `json:"version"`
	}
	if err := marathonCall(ctx, leader.APIURL(), http.MethodPut, "/v2/apps/web", map[string]any{"cmd": lbWebCommand(2)}, &updated); err != nil {
		t.Fatal(err)
	}
	s = w.waitUntil(3*time.Minute, "upgraded and healthy", func(s appSnapshot) bool { return healthyAt(s, updated.Version) })
	upgraded := s.at
	for _, lb := range []*Host{primary, backup} {
		admin.waitServers(ctx, t, lb, backend, s.app.Tasks)
	}
	cl.waitFor(t, "a", "version 2 answers after the upgrade", 50, func(r vipResult) bool { return r.start.After(upgraded) })
	versions := map[string]int{}
	for _, r := range cl.phase("a") {
		if r.err != nil {
			continue
		}
		versions[r.version]++
		if r.start.After(upgraded) && r.version != "v2" {
			t.Errorf("a request started %v after the upgrade finished was answered by %s task %s, want v2", r.start.Sub(upgraded), r.version, r.task)
		}
	}
	if len(versions) != 2 || versions["v1"] == 0 || versions["v2"] == 0 {
		t.Errorf("during the upgrade the client saw versions %v, want v1 and v2 only", versions)
	}

	// (b) One task killed; Marathon replaces it.
	cl.setPhase("b")
	victim := s.app.Tasks[0].ID
	if err := marathonCall(ctx, leader.APIURL(), http.MethodDelete, "/v2/apps/web/tasks/"+victim, nil, nil); err != nil {
		t.Fatal(err)
	}
	killedTask := time.Now()
	s = w.waitUntil(3*time.Minute, "replacing the killed task", func(s appSnapshot) bool {
		return healthyAt(s, updated.Version) && !slices.ContainsFunc(s.app.Tasks, func(task marathon.Task) bool { return task.ID == victim })
	})
	t.Logf("task %s killed; replaced and healthy after %v", victim, s.at.Sub(killedTask))
	for _, lb := range []*Host{primary, backup} {
		admin.waitServers(ctx, t, lb, backend, s.app.Tasks)
	}
	replaced := time.Now()
	cl.waitFor(t, "b", "answers after the replacement", 50, func(r vipResult) bool { return r.start.After(replaced) })
	for _, r := range cl.phase("b") {
		if r.err == nil && (r.version != "v2" || r.start.After(replaced) && r.task == victim) {
			t.Errorf("in phase b a request started at %v was answered by %s task %s, want v2, not the killed %s after the replacement", r.start.Format(time.StampMilli), r.version, r.task, victim)
		}
	}

	// (c) The VRRP master's atoll dies without resigning.
	cl.setPhase("c")
	cl.waitFor(t, "c", "answers before the kill", 10, nil)
	if err := primary.Proc().Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	moved := waitVIPOn(t, vip, backup)
	t.Logf("the VIP is on %s %v after the kill (Master_Down_Interval %v)", backup.Name(), moved.Sub(killed), vrrp.MasterDownInterval(100, lbAdvertInterval))
	cl.waitFor(t, "c", "answers after the failover", 100, func(r vipResult) bool { return r.err == nil && r.start.After(moved) })
	cl.stop()
	// The VIP should have left the dead host's interface by now.
	if !waitVIP(t, 5*time.Second, vip, backup, primary) {
		t.Errorf("after the failover the VIP is not on %s's interface only", backup.Name())
		logARP(ctx, t, client, vip, primary, backup)
	}
	admin.waitServers(ctx, t, backup, backend, s.app.Tasks)

	for _, phase := range []string{"0", "a", "b", "c"} {
		results := cl.phase(phase)
		failed := 0
		for _, r := range results {
			if r.err != nil {
				failed++
			}
		}
		t.Logf("phase %s: %d requests, %d failed", phase, len(results), failed)
		if phase == "c" {
			errs := map[string]int{}
			for _, r := range results {
				if r.err != nil {
					errs[r.err.Error()]++
				}
			}
			for _, e := range slices.Sorted(maps.Keys(errs)) {
				t.Logf("phase c: %d× %s", errs[e], e)
			}
			continue
		}
		for _, r := range results {
			if r.err != nil {
				t.Errorf("phase %s: request at %v failed: %v", phase, r.start.Format(time.StampMilli), r.err)
			}
		}
	}
	o := findOutage(cl.phase("c"))
	t.Logf("failover: %d failed requests, gap %v, first answer after the outage %v after the kill; failures after it: %d", o.failed, o.gap, o.recovered.Sub(killed), o.late)
	switch {
	case o.recovered.IsZero():
		t.Errorf("the client got no answer after the VRRP master was killed")
	case o.gap > maxFailoverGap:
		t.Errorf("the client's outage lasted %v, more than %v", o.gap, maxFailoverGap)
	}
	if o.late > 0 {
		for _, r := range cl.phase("c") {
			if r.err != nil && r.start.After(o.recovered) {
				t.Errorf("phase c: request at %v failed after the VIP moved: %v", r.start.Format(time.StampMilli), r.err)
			}
		}
	}
	recordFigure(t, "lb_vip_failover_failed_requests", float64(o.failed), "requests", 1)
	recordFigure(t, "lb_vip_failover_gap", milliseconds(o.gap), "ms", 1)
}

// backendOf is the load balancer's name of an app's backend on a service port.
func backendOf(appID string, servicePort int) string {
	return strings.ReplaceAll(strings.TrimPrefix(appID, "/"), "/", "_") + "_" + strconv.Itoa(servicePort)
}

// serverOf is the load balancer's stats name of a task's server: its host and port with
// '.' and ':' made '_'.
func serverOf(task marathon.Task) string {
	return strings.NewReplacer(".", "_", ":", "_").Replace(task.Host + ":" + strconv.Itoa(task.Ports[0]))
}

// waitVIP waits up to timeout until holder has vip on eth0 and none of others has, and
// reports whether it came to that; it logs where the VIP is when it did not.
func waitVIP(t *testing.T, timeout time.Duration, vip netip.Addr, holder *Host, others ...*Host) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		where, err := vipHolders(vip, append([]*Host{holder}, others...))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(where, []string{holder.Name()}) {
			return true
		}
		if time.Now().After(deadline) {
			t.Logf("VIP %s is on %q after %v, want on %s only", vip, where, timeout, holder.Name())
			return false
		}
		time.Sleep(pollInterval)
	}
}

// waitVIPOn polls fast until h has vip on eth0 and returns when it saw it.
func waitVIPOn(t *testing.T, vip netip.Addr, h *Host) time.Time {
	t.Helper()
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		where, err := vipHolders(vip, []*Host{h})
		if err != nil {
			t.Fatal(err)
		}
		if len(where) == 1 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIP %s not on %s within %v", vip, h.Name(), DefaultWaitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logARP logs which of hosts answer ARP for vip on the link, as from probes by h.
func logARP(ctx context.Context, t *testing.T, h *Host, vip netip.Addr, hosts ...*Host) {
	t.Helper()
	for _, o := range hosts {
		out, err := output("ip", "-n", o.Netns(), "-o", "link", "show", "dev", "eth0")
		t.Logf("%s's eth0: %s (%v)", o.Name(), strings.TrimSpace(out), err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	out, err := h.Command(ctx, busybox, "arping", "-b", "-c", "3", "-w", "3", "-I", "eth0", vip.String()).CombinedOutput()
	t.Logf("broadcast ARP requests for %s from %s (%v):\n%s", vip, h.Name(), err, out)
}

// vipHolders lists the hosts that have vip on eth0.
func vipHolders(vip netip.Addr, hosts []*Host) ([]string, error) {
	var where []string
	for _, h := range hosts {
		addrs, err := h.Addrs("eth0")
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr() == vip }) {
			where = append(where, h.Name())
		}
	}
	return where, nil
}

// lbAdmin reads load balancers' admin endpoints from a host.
type lbAdmin struct {
	client *http.Client
}

// healthPage is what /_haproxy_health_check answers.
const healthPage = "<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n"

func (a *lbAdmin) get(ctx context.Context, lb *Host, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lb.Addr(LBAdminPort)+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w", path, lb.Name(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s on %s: %s: %q", path, lb.Name(), resp.Status, body)
	}
	return string(body), nil
}

// checkHealth waits until lb's /_haproxy_health_check answers, and checks its page.
func (a *lbAdmin) checkHealth(ctx context.Context, t *testing.T, lb *Host) {
	t.Helper()
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		body, err := a.get(ctx, lb, "/_haproxy_health_check")
		if err == nil {
			if body != healthPage {
				t.Errorf("/_haproxy_health_check on %s: %q, want %q", lb.Name(), body, healthPage)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lb admin: %v", err)
		}
		time.Sleep(pollInterval)
	}
}

// waitServers waits until lb's /haproxy?stats;csv lists exactly tasks as the servers of
// backend, each UP, between the backend's FRONTEND and BACKEND rows.
func (a *lbAdmin) waitServers(ctx context.Context, t *testing.T, lb *Host, backend string, tasks []marathon.Task) {
	t.Helper()
	want := make([]string, len(tasks))
	for i, task := range tasks {
		want[i] = serverOf(task)
	}
	slices.Sort(want)
	deadline := time.Now().Add(DefaultWaitTimeout)
	var last string
	for {
		body, err := a.get(ctx, lb, "/haproxy?stats;csv")
		if err == nil {
			servers, err := statsServers(body, backend)
			if err == nil && slices.Equal(servers, want) {
				return
			}
			last = fmt.Sprintf("servers %q (%v) in:\n%s", servers, err, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's stats do not list servers %q of %s within %v; last: %s", lb.Name(), want, backend, DefaultWaitTimeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// statsServers parses HAProxy's stats CSV and returns the sorted names of backend's
// servers, checking the rows of the proxy: a FRONTEND, servers (type 2) that are UP, a
// BACKEND.
func statsServers(csv, backend string) ([]string, error) {
	lines := strings.Split(strings.TrimRight(csv, "\n"), "\n")
	header, ok := strings.CutPrefix(lines[0], "# ")
	if !ok {
		return nil, fmt.Errorf("stats CSV header %q: want '# pxname,…'", lines[0])
	}
	columns := strings.Split(header, ",")
	col := func(name string) int { return slices.Index(columns, name) }
	px, sv, status, typ := col("pxname"), col("svname"), col("status"), col("type")
	if px < 0 || sv < 0 || status < 0 || typ < 0 {
		return nil, fmt.Errorf("stats CSV header %q lacks pxname, svname, status or type", header)
	}
	var kinds, servers []string
	for _, line := range lines[1:] {
		fields := strings.Split(line, ",")
		if len(fields) < len(columns) {
			return nil, fmt.Errorf("stats CSV row %q: %d fields, want %d", line, len(fields), len(columns))
		}
		if fields[px] != backend {
			continue
		}
		switch fields[typ] {
		case "0", "1":
			kinds = append(kinds, fields[sv])
		case "2":
			kinds = append(kinds, "server")
			if fields[status] != "UP" {
				return nil, fmt.Errorf("server %s of %s is %s", fields[sv], backend, fields[status])
			}
			servers = append(servers, fields[sv])
		default:
			return nil, fmt.Errorf("stats CSV row %q: type %q", line, fields[typ])
		}
	}
	wantKinds := slices.Concat([]string{"FRONTEND"}, slices.Repeat([]string{"server"}, len(servers)), []string{"BACKEND"})
	if !slices.Equal(kinds, wantKinds) {
		return nil, fmt.Errorf("rows of %s: %q, want %q", backend, kinds, wantKinds)
	}
	slices.Sort(servers)
	return servers, nil
}

// vipResult is one request of the client.
type vipResult struct {
	phase      string
	start, end time.Time
	// version ("v1") and task are what the page named.
	version, task string
	err           error
}

// vipClient loops GET requests, each on a new connection from a host's namespace, and
// keeps every result with the phase it started in.
type vipClient struct {
	http   *http.Client
	url    string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	current string
	results []vipResult
}

// startVIPClient starts the loop in phase "0"; it stops when the test ends.
func startVIPClient(t *testing.T, dialer *Dialer, url string) *vipClient {
	ctx, cancel := context.WithCancel(context.Background())
	c := &vipClient{
		http:    &http.Client{Timeout: vipRequestTimeout, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}},
		url:     url,
		cancel:  cancel,
		done:    make(chan struct{}),
		current: "0",
	}
	t.Cleanup(c.stop)
	go c.run(ctx)
	return c
}

func (c *vipClient) run(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		c.mu.Lock()
		r := vipResult{phase: c.current, start: time.Now()}
		c.mu.Unlock()
		r.version, r.task, r.err = c.get(ctx)
		r.end = time.Now()
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.results = append(c.results, r)
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(vipRequestPause):
		}
	}
}

// get fetches the page and returns the version and task it names.
func (c *vipClient) get(ctx context.Context) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return "", "", err
	}
	req.Host = lbVHost
	resp, err := c.http.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", "", fmt.Errorf("read the page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("%s: %q", resp.Status, body)
	}
	fields := strings.Fields(string(body))
	if len(fields) != 3 || fields[0] != "web" || !strings.HasPrefix(fields[1], "v") {
		return "", "", fmt.Errorf("page %q: want 'web vN TASK'", body)
	}
	return fields[1], fields[2], nil
}

// stop ends the loop and waits for it.
func (c *vipClient) stop() {
	c.cancel()
	<-c.done
}

// setPhase tags the requests started from now on.
func (c *vipClient) setPhase(phase string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = phase
}

// phase returns the results of the requests started in phase, in order.
func (c *vipClient) phase(phase string) []vipResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []vipResult
	for _, r := range c.results {
		if r.phase == phase {
			out = append(out, r)
		}
	}
	return out
}

// waitFor waits until n requests of phase satisfy cond (nil: any request).
func (c *vipClient) waitFor(t *testing.T, phase, what string, n int, cond func(vipResult) bool) {
	t.Helper()
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		got := 0
		for _, r := range c.phase(phase) {
			if cond == nil || cond(r) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("phase %s: %d %s within %v, want %d", phase, got, what, DefaultWaitTimeout, n)
		}
		time.Sleep(pollInterval)
	}
}

// outage is the client's view of one failover.
type outage struct {
	// failed counts the failed requests; late those after recovered.
	failed, late int
	// gap is from the last answer before the first failure (or the first failure's
	// start, when none came before) to the first answer after it; recovered is that
	// answer's end. Both are zero without a failure.
	gap       time.Duration
	recovered time.Time
}

// findOutage finds the outage in a phase's results: the first failure, the first answer
// after it, and how many requests failed, before it and after.
func findOutage(results []vipResult) outage {
	var o outage
	first := slices.IndexFunc(results, func(r vipResult) bool { return r.err != nil })
	for _, r := range results {
		if r.err != nil {
			o.failed++
		}
	}
	if first < 0 {
		return o
	}
	from := results[first].start
	if first > 0 {
		from = results[first-1].end
	}
	next := slices.IndexFunc(results[first:], func(r vipResult) bool { return r.err == nil })
	if next < 0 {
		return o
	}
	rec := results[first+next]
	o.recovered, o.gap = rec.end, rec.end.Sub(from)
	for _, r := range results[first+next:] {
		if r.err != nil {
			o.late++
		}
	}
	return o
}

func TestFindOutage(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }
	ok := func(start, end int) vipResult { return vipResult{start: at(start), end: at(end)} }
	failed := func(start, end int) vipResult {
		return vipResult{start: at(start), end: at(end), err: errors.New("connection refused")}
	}
	tests := []struct {
		name    string
		results []vipResult
		want    outage
	}{
		{name: "no requests", want: outage{}},
		{name: "no failure", results: []vipResult{ok(0, 5), ok(25, 30)}, want: outage{}},
		{
			name:    "one outage",
			results: []vipResult{ok(0, 5), failed(25, 26), failed(46, 47), ok(67, 70), ok(90, 95)},
			want:    outage{failed: 2, gap: 65 * time.Millisecond, recovered: at(70)},
		},
		{
			name:    "failures from the start",
			results: []vipResult{failed(0, 1000), ok(1020, 1030)},
			want:    outage{failed: 1, gap: 1030 * time.Millisecond, recovered: at(1030)},
		},
		{
			name:    "failures after the recovery",
			results: []vipResult{ok(0, 5), failed(25, 26), ok(46, 50), failed(70, 71), failed(91, 92), ok(112, 115)},
			want:    outage{failed: 3, late: 2, gap: 45 * time.Millisecond, recovered: at(50)},
		},
		{
			name:    "never recovered",
			results: []vipResult{ok(0, 5), failed(25, 26), failed(46, 47)},
			want:    outage{failed: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findOutage(tt.results); got != tt.want {
				t.Errorf("findOutage = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatsServers(t *testing.T) {
	header := "# pxname,svname,status,type,\n"
	tests := []struct {
		name    string
		csv     string
		want    []string
		wantErr bool
	}{
		{
			name: "servers between the frontend and backend rows, other proxies skipped",
			csv: header + "web_10000,FRONTEND,OPEN,0,\nweb_10000,198_18_0_45_31002,UP,2,\nweb_10000,198_18_0_44_31000,UP,2,\nweb_10000,BACKEND,UP,1,\n" +
				"db_10001,FRONTEND,OPEN,0,\ndb_10001,198_18_0_44_31001,UP,2,\ndb_10001,BACKEND,UP,1,\n",
			want: []string{"198_18_0_44_31000", "198_18_0_45_31002"},
		},
		{name: "no servers", csv: header + "web_10000,FRONTEND,OPEN,0,\nweb_10000,BACKEND,DOWN,1,\n", want: nil},
		{name: "a server down", csv: header + "web_10000,FRONTEND,OPEN,0,\nweb_10000,198_18_0_44_31000,DOWN,2,\nweb_10000,BACKEND,DOWN,1,\n", wantErr: true},
		{name: "backend missing", csv: header, wantErr: true},
		{name: "no header", csv: "web_10000,FRONTEND,OPEN,0,\n", wantErr: true},
		{name: "short row", csv: header + "web_10000,FRONTEND\n", wantErr: true},
		{name: "header without type", csv: "# pxname,svname,status,\nweb_10000,FRONTEND,OPEN,\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statsServers(tt.csv, "web_10000")
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("statsServers = %q, %v; want %q, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzStatsServers(f *testing.F) {
	f.Add("# pxname,svname,status,type,\nweb_10000,FRONTEND,OPEN,0,\nweb_10000,a,UP,2,\nweb_10000,BACKEND,UP,1,\n")
	f.Add("")
	f.Add("# ,\n,,")
	f.Fuzz(func(t *testing.T, csv string) {
		servers, err := statsServers(csv, "web_10000")
		if err != nil && servers != nil {
			t.Fatalf("statsServers(%q) = %q with error %v", csv, servers, err)
		}
		if !slices.IsSorted(servers) {
			t.Fatalf("statsServers(%q) = %q, not sorted", csv, servers)
		}
	})
}
