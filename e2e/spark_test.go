package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/isolate/image/imagetest"
)

const (
	// sparkVIPRange is where the test's named VIPs get their addresses, on every node.
	sparkVIPRange = "198.18.1.192/26"
	// sparkVHost is the master UI's virtual host (option master.ui-vhost).
	sparkVHost = "spark.test"
	// sparkMasterURL is what the package tells workers and users to connect to.
	sparkMasterURL = "spark://master-spark.marathon.mesos:7077"
	// sparkMasterPort and sparkMasterUIPort are the package's master.port and
	// master.webui-port defaults, which the master binds on its agent (requirePorts).
	sparkMasterPort   = 7077
	sparkMasterUIPort = 8090
	// sparkAgentPorts are the port resources the agents offer: the default range and the
	// master's two ports, which it needs free on one agent.
	sparkAgentPorts = "ports:[7077-7077,8090-8090,31000-32000]"
	// vipInterface is the dummy interface agents and load balancers put VIP addresses on
	// (vipproxy.DefaultInterface, which no flag of the harness changes).
	vipInterface = "atoll-vip0"
)

// The package's DNS names for /spark: its apps' Mesos-DNS names and its named VIP.
const (
	sparkMasterName = "master-spark.marathon.mesos."
	sparkWorkerName = "worker-spark.marathon.mesos."
	sparkVIPName    = "spark-master.marathon.l4lb.thisdcos.directory."
)

// The package's notes, as `atoll pkg install` and `uninstall` print them for service.name
// spark.
const (
	sparkPreInstallNotes = "This installs a Spark standalone cluster: 1 master (1 CPU, 1 GiB) and, by default, 2 workers (2 CPUs, 4 GiB each). " +
		"The master binds ports 7077 and 8090 (its UI) on its agent, so one agent must offer them " +
		"(atoll agent --resources 'ports:[7077-7077,8090-8090,31000-32000]'), or set master.port and master.webui-port within the agents' port range."
	sparkPostInstallNotes = "Spark master: spark://master-spark.marathon.mesos:7077. Try:\n" +
		"  spark-submit --master spark://master-spark.marathon.mesos:7077 --class org.apache.spark.examples.SparkPi /opt/spark/examples/jars/spark-examples_2.12-3.5.3.jar 100\n" +
		"The master UI is served through the load balancer."
	sparkPostUninstallNotes = "The Spark cluster is removed. Event logs written outside the sandboxes (history.log-dir) are left in place."
)

// sparkClass stands in for Apache Spark's bin/spark-class: a standalone master and worker
// with Spark's command lines, ports and web UIs, made of busybox. A worker resolves the
// master's host name with the cluster's DNS (the container's resolv.conf), registers over
// the master's port — "REGISTER ID HOST:PORT UI-URL", answered "REGISTERED ID" — and does
// again every 2 seconds, as Spark's workers send heartbeats. The master's UI lists the
// registered workers; a worker's says which master it joined, at which address.
const sparkClass = `#!/bin/sh
set -u
www=${MESOS_SANDBOX:-/tmp}/spark-standin/www
mkdir -p "$www"

# publish replaces the UI's page with its input.
publish() {
	cat >"$www/.index.html" && mv "$www/.index.html" "$www/index.html"
}

class=${1:-}
[ $# -gt 0 ] && shift
case $class in
org.apache.spark.deploy.master.Master)
	host=0.0.0.0 port=7077 ui=8080
	while [ $# -gt 0 ]; do
		case $1 in
		--host) host=$2; shift ;;
		--port) port=$2; shift ;;
		--webui-port) ui=$2; shift ;;
		esac
		shift
	done
	url=spark://${SPARK_PUBLIC_DNS:-$host}:$port
	export SPARK_STANDIN_WORKERS=${MESOS_SANDBOX:-/tmp}/spark-standin/workers
	mkdir -p "$SPARK_STANDIN_WORKERS"
	page() {
		set -- "$SPARK_STANDIN_WORKERS"/worker-*
		[ -e "$1" ] || set --
		{
			echo "<html><body><h1>Spark Master at $url</h1>"
			echo "<p>Alive Workers: $#</p>"
			echo "<ul>"
			for w; do cat "$w"; done
			echo "</ul></body></html>"
		} | publish
	}
	page
	nc -ll -p "$port" "$host" -e /opt/spark/bin/standin-register &
	(while sleep 1; do page; done) &
	exec httpd -f -p "$ui" -h "$www"
	;;
org.apache.spark.deploy.worker.Worker)
	port= ui= master=
	while [ $# -gt 0 ]; do
		case $1 in
		--port) port=$2; shift ;;
		--webui-port) ui=$2; shift ;;
		--cores | --memory) shift ;;
		spark://*) master=$1 ;;
		esac
		shift
	done
	hostport=${master#spark://}
	mhost=${hostport%:*}
	mport=${hostport##*:}
	id=worker-$HOST-$port
	page() {
		printf '<html><body><h1>Spark Worker at %s</h1>\n<p>%s</p>\n</body></html>\n' "$HOST:$port" "$1" | publish
	}
	page "Not joined to $master yet"
	nc -ll -p "$port" -e /bin/true &
	(
		while :; do
			ip=$(nslookup -type=a "$mhost" 2>/dev/null | awk '/^Name:/ { named = 1 } named && /^Address/ { print $NF; exit }')
			reply=
			if [ -n "$ip" ] && reply=$(echo "REGISTER $id $HOST:$port http://$HOST:$ui" | nc -w 5 "$ip" "$mport") && [ "$reply" = "REGISTERED $id" ]; then
				page "Joined $master at $ip:$mport"
			else
				echo "spark-class stand-in: $mhost resolved to '$ip', registration answered '$reply'" >&2
			fi
			sleep 2
		done
	) &
	exec httpd -f -p "$ui" -h "$www"
	;;
*)
	echo "spark-class stand-in: unknown class '$class'" >&2
	exit 1
	;;
esac
`

// sparkRegister is the stand-in master's side of a registration, which nc runs for each
// connection to the master's port: it records the worker as a line of the master's page.
const sparkRegister = `#!/bin/sh
read -r verb id addr ui || exit 0
if [ "$verb" != REGISTER ] || [ "${id#worker-}" = "$id" ] || [ "${id%%/*}" != "$id" ]; then
	echo "ERROR bad request"
	exit 0
fi
echo "<li>$id $addr $ui</li>" >"$SPARK_STANDIN_WORKERS/$id"
echo "REGISTERED $id"
`

// sparkApplets are the busybox applets the stand-in runs besides imagetest.BusyboxApplets.
var sparkApplets = []string{"awk", "httpd", "mv", "nc", "nslookup"}

// sparkStandIn builds the stand-in Spark image: busybox, more applets, a root user (tasks
// run as the agent's user), and the scripts in /opt/spark/bin.
func sparkStandIn(t testing.TB) v1.Image {
	t.Helper()
	files := []imagetest.File{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: "root:x:0:0:root:/root:/bin/sh\n"},
		{Name: "etc/group", Body: "root:x:0:\n"},
		{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		{Name: "opt/", Type: tar.TypeDir},
		{Name: "opt/spark/", Type: tar.TypeDir},
		{Name: "opt/spark/bin/", Type: tar.TypeDir},
		{Name: "opt/spark/bin/spark-class", Body: sparkClass, Mode: 0o755},
		{Name: "opt/spark/bin/standin-register", Body: sparkRegister, Mode: 0o755},
	}
	for _, applet := range sparkApplets {
		files = append(files, imagetest.File{Name: "bin/" + applet, Type: tar.TypeSymlink, Linkname: "busybox"})
	}
	return imagetest.Image(t, v1.Config{Env: []string{"PATH=/opt/spark/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		imagetest.BusyboxLayer(t), imagetest.Files(t, files...))
}

// TestSparkPackage: the built-in spark package, installed with the atoll CLI, runs a
// standalone Spark cluster in runc containers, from a stand-in image (busybox with
// Spark's spark-class command line, ports and web UIs) that a registry on the bridge
// serves, which the agents may reach over plain HTTP (--insecure-registry). One master,
// two runc agents offering the master's ports 7077 and 8090, a load balancer serving
// virtual hosts on port 80, and a client host; every node with --vip-range
// 198.18.1.192/26.
//
// `atoll pkg install spark --yes --options F` (the stand-in image, small tasks, 2
// workers, master.ui-vhost spark.test) prints the pre-install notes, follows the
// deployment until both apps are healthy and prints the post-install notes. Then:
//   - the group /spark has the apps master (1 task) and worker (2 tasks), all RUNNING and
//     healthy, the master on its agent's ports 7077 and 8090;
//   - the DNS of the load balancer and of an agent, asked from the client host with
//     `atoll dns lookup`, answer master-spark.marathon.mesos with the master's agent,
//     worker-spark.marathon.mesos with the workers' agents and
//     spark-master.marathon.l4lb.thisdcos.directory with an address of the VIP range,
//     which the agents and the load balancer put on their VIP interface;
//   - each worker resolved the master's name from inside its container and joined it:
//     its UI, fetched from the client host, says so, and the master's UI, fetched from the
//     client through the load balancer (port 80, Host: spark.test) and from an agent
//     through the VIP (port 80), lists both workers;
//   - the Raft state (a snapshot through `atoll operator snapshot save`) holds the
//     installation and the services framework's records of /spark.
//
// `atoll pkg uninstall spark` waits until the group is gone and prints the
// post-uninstall notes. Then nothing is left: /v2/apps/spark/master, /v2/apps/spark/worker
// and /v2/groups/spark answer 404, `atoll pkg list` is empty, the names answer NXDOMAIN
// on every node's DNS, the VIP address is off every VIP interface, the load balancer no
// longer serves spark.test, the Raft state has no live task, key or value naming /spark
// (installation record, apps, groups, versions, deployments), and the agents have no
// container left, nor its cgroups.
func TestSparkPackage(t *testing.T) {
	t.Parallel()
	vipRange := netip.MustParsePrefix(sparkVIPRange)
	c := NewCluster(t, WithRuncAgents(), WithMasterArgs("--vip-range", sparkVIPRange),
		WithAgentArgs("--vip-range", sparkVIPRange, "--resources", sparkAgentPorts))
	masters := c.StartMasters(1)
	registry := c.StartRegistry()
	imageRef := registry + "/spark-standin:3.5.3"
	PushImage(t, imageRef, sparkStandIn(t))
	agents := c.StartAgents(2)
	lb := c.StartLB("lb", "--lb-http-port", "80", "--dns-port", dnsPort, "--vip-range", sparkVIPRange)
	client := c.AddHost("client")
	leader := c.WaitForLeader()
	c.WaitForAgents(2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dnsHosts := slices.Concat(masters, agents, []*Host{lb})

	options := filepath.Join(t.TempDir(), "spark-options.json")
	writeJSON(t, options, map[string]any{
		"service": map[string]any{"docker-image": imageRef},
		"master":  map[string]any{"cpus": 0.1, "mem": 64, "ui-vhost": sparkVHost},
		"worker":  map[string]any{"cpus": 0.1, "mem": 64, "count": 2},
	})
	installed := time.Now()
	out, err := c.Run(ctx, "--addr", leader.APIURL(), "pkg", "install", "spark", "--yes", "--options", options, "--timeout", "3m")
	if err != nil {
		t.Fatalf("pkg install: %v", err)
	}
	t.Logf("atoll pkg install spark (%v):\n%s", time.Since(installed).Round(time.Millisecond), out)
	checkInstallOutput(t, out)

	// The group and its apps, running and healthy.
	master := getApp(ctx, t, leader, "/spark/master")
	workers := getApp(ctx, t, leader, "/spark/worker")
	var group marathon.Group
	if err := marathonCall(ctx, leader.APIURL(), http.MethodGet, "/v2/groups/spark", nil, &group); err != nil {
		t.Fatal(err)
	}
	var groupApps []string
	for _, a := range group.Apps {
		groupApps = append(groupApps, a.ID)
	}
	slices.Sort(groupApps)
	if want := []string{"/spark/master", "/spark/worker"}; group.ID != "/spark" || !slices.Equal(groupApps, want) {
		t.Errorf("/v2/groups/spark: group %q with apps %q, want /spark with %q", group.ID, groupApps, want)
	}
	checkHealthyTasks(t, master, 1)
	checkHealthyTasks(t, workers, 2)
	if t.Failed() {
		t.FailNow()
	}
	masterTask := master.Tasks[0]
	masterAgent := hostWithIP(t, agents, masterTask.Host)
	if want := []int{sparkMasterPort, sparkMasterUIPort}; !slices.Equal(masterTask.Ports, want) {
		t.Errorf("the master task has ports %v, want %v", masterTask.Ports, want)
	}
	var workerHosts []string
	for _, w := range workers.Tasks {
		hostWithIP(t, agents, w.Host)
		workerHosts = append(workerHosts, "A "+w.Host)
	}
	slices.Sort(workerHosts)
	workerHosts = slices.Compact(workerHosts)

	// DNS, asked from the client host: the apps' names and the VIP's.
	for _, server := range []*Host{lb, agents[0]} {
		if got := lookupUntil(ctx, t, client, server, sparkMasterName, []string{"A " + masterTask.Host}); !slices.Equal(got, []string{"A " + masterTask.Host}) {
			t.Errorf("%s's DNS, asked from %s: %s = %q, want the master's agent %s", server.Name(), client.Name(), sparkMasterName, got, masterTask.Host)
		}
		if got := lookupUntil(ctx, t, client, server, sparkWorkerName, workerHosts); !slices.Equal(got, workerHosts) {
			t.Errorf("%s's DNS, asked from %s: %s = %q, want the workers' agents %q", server.Name(), client.Name(), sparkWorkerName, got, workerHosts)
		}
	}
	vipAnswer := lookupUntil(ctx, t, client, lb, sparkVIPName, nil)
	var vipAddr netip.Addr
	if len(vipAnswer) == 1 {
		vipAddr, _ = netip.ParseAddr(strings.TrimPrefix(vipAnswer[0], "A "))
	}
	if !vipRange.Contains(vipAddr) {
		t.Fatalf("%s = %q, want one address in %s", sparkVIPName, vipAnswer, vipRange)
	}
	for _, h := range agents {
		lookupUntil(ctx, t, client, h, sparkVIPName, vipAnswer)
	}
	for _, h := range append(slices.Clone(agents), lb) {
		waitVIPAddr(t, h, vipAddr, true)
	}

	// Every worker joined the master it resolved; the master's UI lists them, through the
	// load balancer and through the VIP.
	for _, w := range workers.Tasks {
		url := "http://" + net.JoinHostPort(w.Host, strconv.Itoa(w.Ports[1])) + "/"
		want := workerPage(w, masterTask.Host)
		if got, err := httpGetUntil(ctx, client, url, "", want); err != nil || got != want {
			t.Errorf("worker %s's UI %s from %s: %q, %v; want %q", w.ID, url, client.Name(), got, err, want)
			stderr, err := c.Run(ctx, "--addr", leader.APIURL(), "task", "log", "--stderr", w.ID)
			t.Logf("worker %s's stderr (%v):\n%s", w.ID, err, stderr)
		}
	}
	wantMaster := masterPage(workers.Tasks)
	lbURL := "http://" + lb.Addr(80) + "/"
	if got, err := httpGetUntil(ctx, client, lbURL, sparkVHost, wantMaster); err != nil || got != wantMaster {
		t.Errorf("the master's UI through the load balancer (%s, Host: %s) from %s: %q, %v; want %q", lbURL, sparkVHost, client.Name(), got, err, wantMaster)
	}
	vipURL := "http://" + netip.AddrPortFrom(vipAddr, 80).String() + "/"
	if got, err := httpGetUntil(ctx, agents[0], vipURL, "", wantMaster); err != nil || got != wantMaster {
		t.Errorf("the master's UI through the VIP (%s) from %s: %q, %v; want %q", vipURL, agents[0].Name(), got, err, wantMaster)
	}
	t.Logf("spark: master on %s, workers on %q, VIP %s; installed and joined %v after the install started",
		masterAgent.Name(), workerHosts, vipAddr, time.Since(installed).Round(time.Millisecond))

	// What Raft holds of the installation, and the containers the agents run.
	before := raftState(ctx, t, c, leader)
	if left := before.spark(); !slices.Contains(left, "packages/install//spark") || !slices.Contains(left, "services/app//spark/master") ||
		!slices.Contains(left, "services/app//spark/worker") || !slices.Contains(left, "services/group//spark") {
		t.Errorf("before the uninstall, Raft's records of /spark are %q: want the installation, both apps and the group among them", left)
	}
	if got := len(before.liveTasks()); got != 3 {
		t.Errorf("before the uninstall, Raft has %d live tasks of /spark, want 3", got)
	}
	containers, err := c.RuncContainers()
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 3 {
		t.Errorf("the agents run containers %q, want 3", containers)
	}
	var cgroups []string
	for _, id := range containers {
		paths, err := ContainerCgroups(id)
		if err != nil {
			t.Fatal(err)
		}
		cgroups = append(cgroups, paths...)
	}

	// Uninstall: nothing is left.
	out, err = c.Run(ctx, "--addr", leader.APIURL(), "pkg", "uninstall", "spark")
	if err != nil {
		t.Fatalf("pkg uninstall: %v", err)
	}
	t.Logf("atoll pkg uninstall spark:\n%s", out)
	checkUninstallOutput(t, out)
	for _, id := range []string{"/spark/master", "/spark/worker"} {
		if err := marathonCall(ctx, leader.APIURL(), http.MethodGet, "/v2/apps"+id, nil, nil); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
			t.Errorf("GET /v2/apps%s after the uninstall: %v, want 404", id, err)
		}
	}
	if err := marathonCall(ctx, leader.APIURL(), http.MethodGet, "/v2/groups/spark", nil, nil); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("GET /v2/groups/spark after the uninstall: %v, want 404", err)
	}
	var tasks struct {
		Tasks []marathon.Task `json:"tasks"`
	}
	if err := marathonCall(ctx, leader.APIURL(), http.MethodGet, "/v2/tasks", nil, &tasks); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks.Tasks {
		if strings.HasPrefix(task.AppID, "/spark/") {
			t.Errorf("after the uninstall /v2/tasks lists %s of %s (%s)", task.ID, task.AppID, task.State)
		}
	}
	var list struct {
		Packages []json.RawMessage `json:"packages"`
	}
	if out, err := c.Run(ctx, "--addr", leader.APIURL(), "-o", "json", "pkg", "list"); err != nil || json.Unmarshal([]byte(out), &list) != nil || list.Packages == nil || len(list.Packages) > 0 {
		t.Errorf("atoll pkg list after the uninstall: %q, %v; want no packages", out, err)
	}
	for _, h := range dnsHosts {
		for _, name := range []string{sparkMasterName, sparkWorkerName, sparkVIPName} {
			waitNXDOMAIN(ctx, t, h, name)
		}
	}
	for _, h := range append(slices.Clone(agents), lb) {
		waitVIPAddr(t, h, vipAddr, false)
	}
	waitNotServed(ctx, t, client, lbURL, sparkVHost)
	after := raftState(ctx, t, c, leader)
	if left := after.spark(); len(left) > 0 {
		t.Errorf("after the uninstall Raft still has records of /spark: %q", left)
	}
	if live := after.liveTasks(); len(live) > 0 {
		t.Errorf("after the uninstall Raft still has live tasks of /spark: %q", live)
	}
	waitNoContainers(t, c, cgroups)
}

// writeJSON writes v to path as JSON.
func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// installProgress are lines `atoll pkg install` prints while it follows the deployment
// (not on a terminal), in this order: the workers start after the master they depend on
// is healthy, and each app gets to all of its tasks running and healthy.
var installProgress = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^step 1/2: StartApplication /spark/master$`),
	regexp.MustCompile(`(?m)^/spark/master: 1/1 tasks running at version \S+, 1 healthy$`),
	regexp.MustCompile(`(?m)^step 2/2: StartApplication /spark/worker$`),
	regexp.MustCompile(`(?m)^/spark/worker: 2/2 tasks running at version \S+, 2 healthy$`),
	regexp.MustCompile(`(?m)^deployment \S+ finished$`),
}

// checkInstallOutput checks what `atoll pkg install spark --yes` printed: the
// pre-install notes, the deployment it started, its progress, and the post-install notes.
func checkInstallOutput(t *testing.T, out string) {
	t.Helper()
	head := sparkPreInstallNotes + "\nInstalling Marathon app for package [spark] version [3.5.3-1]\ninstalled package spark 3.5.3-1 as /spark: deployment "
	if !strings.HasPrefix(out, head) {
		t.Errorf("pkg install printed:\n%s\nwant it to start with:\n%s", out, head)
	}
	rest := out
	for _, re := range installProgress {
		loc := re.FindStringIndex(rest)
		if loc == nil {
			t.Errorf("pkg install printed:\n%s\nwant a line matching %s after the lines matching those before it", out, re)
			break
		}
		rest = rest[loc[1]:]
	}
	if !strings.HasSuffix(out, "finished\n"+sparkPostInstallNotes+"\n") {
		t.Errorf("pkg install printed:\n%s\nwant it to end with the deployment finished and the post-install notes:\n%s", out, sparkPostInstallNotes)
	}
}

// checkUninstallOutput checks what `atoll pkg uninstall spark` printed: the installation
// it removes, how many tasks are left until none, and the post-uninstall notes.
func checkUninstallOutput(t *testing.T, out string) {
	t.Helper()
	head := "Uninstalling package [spark] version [3.5.3-1] (/spark)\n"
	tail := "/spark: removed\n" + sparkPostUninstallNotes + "\n"
	if !strings.HasPrefix(out, head) || !strings.HasSuffix(out, tail) {
		t.Errorf("pkg uninstall printed:\n%s\nwant it to start with %q and end with %q", out, head, tail)
	}
}

// getApp reads an app with its tasks.
func getApp(ctx context.Context, t *testing.T, master *Host, id string) marathon.AppInfo {
	t.Helper()
	var reply struct {
		App marathon.AppInfo `json:"app"`
	}
	if err := marathonCall(ctx, master.APIURL(), http.MethodGet, "/v2/apps"+id, nil, &reply); err != nil {
		t.Fatal(err)
	}
	return reply.App
}

// checkHealthyTasks checks that the app has n tasks, each RUNNING with two ports and
// passing its one health check, and no deployment.
func checkHealthyTasks(t *testing.T, app marathon.AppInfo, n int) {
	t.Helper()
	if len(app.Tasks) != n || len(app.Deployments) != 0 {
		t.Errorf("%s: %d tasks, deployments %v; want %d tasks, no deployment", app.ID, len(app.Tasks), app.Deployments, n)
		return
	}
	for _, task := range app.Tasks {
		if task.State != string(api.TaskRunning) || len(task.Ports) != 2 || len(task.HealthCheckResults) != 1 || !task.HealthCheckResults[0].Alive {
			t.Errorf("%s: task %s is %s with ports %v and health %+v; want RUNNING, 2 ports, healthy", app.ID, task.ID, task.State, task.Ports, task.HealthCheckResults)
		}
	}
}

// hostWithIP returns the host of hosts with address ip.
func hostWithIP(t *testing.T, hosts []*Host, ip string) *Host {
	t.Helper()
	i := slices.IndexFunc(hosts, func(h *Host) bool { return h.IP() == ip })
	if i < 0 {
		t.Fatalf("%s is none of the agents", ip)
	}
	return hosts[i]
}

// workerPage is the UI page of a stand-in worker that joined the master at masterIP.
func workerPage(w marathon.Task, masterIP string) string {
	return fmt.Sprintf("<html><body><h1>Spark Worker at %s:%d</h1>\n<p>Joined %s at %s:%d</p>\n</body></html>\n",
		w.Host, w.Ports[0], sparkMasterURL, masterIP, sparkMasterPort)
}

// masterPage is the stand-in master's UI page with workers registered.
func masterPage(workers []marathon.Task) string {
	var items []string
	for _, w := range workers {
		id := fmt.Sprintf("worker-%s-%d", w.Host, w.Ports[0])
		items = append(items, fmt.Sprintf("<li>%s %s:%d http://%s:%d</li>\n", id, w.Host, w.Ports[0], w.Host, w.Ports[1]))
	}
	slices.Sort(items)
	return fmt.Sprintf("<html><body><h1>Spark Master at %s</h1>\n<p>Alive Workers: %d</p>\n<ul>\n%s</ul></body></html>\n",
		sparkMasterURL, len(workers), strings.Join(items, ""))
}

// httpGet fetches url from host h, with Host header vhost unless empty, on a new
// connection, and returns the body of a 200 answer.
func httpGet(ctx context.Context, h *Host, url, vhost string) (string, error) {
	client := &http.Client{Timeout: callTimeout, Transport: &http.Transport{DialContext: h.Dialer().DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if vhost != "" {
		req.Host = vhost
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("GET %s from %s: %w", url, h.Name(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s from %s: %s", url, h.Name(), resp.Status)
	}
	return string(body), nil
}

// httpGetUntil fetches url from h until it answers want or a minute passes, and returns
// the last answer.
func httpGetUntil(ctx context.Context, h *Host, url, vhost, want string) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := httpGet(ctx, h, url, vhost)
		if err == nil && got == want || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(pollInterval)
	}
}

// waitNotServed waits up to a minute until h's request for url with Host header vhost
// fails or is refused: the load balancer no longer has the virtual host.
func waitNotServed(ctx context.Context, t *testing.T, h *Host, url, vhost string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := httpGet(ctx, h, url, vhost)
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after the uninstall %s (Host: %s) still answers %s: %q", url, vhost, h.Name(), got)
			return
		}
		time.Sleep(pollInterval)
	}
}

// lookup runs `atoll dns lookup` on host from, asking server's DNS for name's A records,
// and returns them sorted as "A IP".
func lookup(ctx context.Context, from, server *Host, name string) ([]string, error) {
	out, err := from.Run(ctx, "-o", "json", "dns", "lookup", "--server", net.JoinHostPort(server.IP(), dnsPort), name)
	if err != nil {
		return nil, err
	}
	var records []struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &records); err != nil {
		return nil, fmt.Errorf("atoll dns lookup %s: %w: %q", name, err, out)
	}
	var got []string
	for _, r := range records {
		got = append(got, r.Type+" "+r.Data)
	}
	slices.Sort(got)
	return got, nil
}

// lookupUntil looks name up (see lookup) until the answer is want (nil: any answer with
// records) or a minute passes, and returns the last answer.
func lookupUntil(ctx context.Context, t *testing.T, from, server *Host, name string, want []string) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := lookup(ctx, from, server, name)
		if err == nil && (want == nil && len(got) > 0 || want != nil && slices.Equal(got, want)) {
			return got
		}
		if time.Now().After(deadline) {
			t.Errorf("%s's DNS, asked from %s: %s = %q, %v", server.Name(), from.Name(), name, got, err)
			return got
		}
		time.Sleep(pollInterval)
	}
}

// waitNXDOMAIN waits up to a minute until h's DNS answers NXDOMAIN for name.
func waitNXDOMAIN(ctx context.Context, t *testing.T, h *Host, name string) {
	t.Helper()
	want := name + " A: NXDOMAIN"
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := dnsAnswer(ctx, h, name, mdns.TypeA)
		if err != nil && err.Error() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s's DNS: %s = %q, %v; want NXDOMAIN", h.Name(), name, got, err)
			return
		}
		time.Sleep(pollInterval)
	}
}

// waitVIPAddr waits up to a minute until h has (or, present false, no longer has) addr
// on its VIP interface.
func waitVIPAddr(t *testing.T, h *Host, addr netip.Addr, present bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		addrs, err := h.Addrs(vipInterface)
		has := slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr() == addr })
		if err == nil && has == present {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s's %s: addresses %v (%v); want %s there: %t", h.Name(), vipInterface, addrs, err, addr, present)
			return
		}
		time.Sleep(pollInterval)
	}
}

// raftSnapshot is what a snapshot of the Raft state holds that the test looks at.
type raftSnapshot struct {
	// kv are the key-value entries as "namespace/key" with their values.
	kv map[string]string
	// tasks are the task records (live tasks) by task id, with their state.
	tasks map[string]string
}

// raftState saves a snapshot of the leader's Raft state with `atoll operator snapshot
// save` and reads its records: a JSON header, then one JSON object per record.
func raftState(ctx context.Context, t *testing.T, c *Cluster, leader *Host) raftSnapshot {
	t.Helper()
	file := filepath.Join(t.TempDir(), "state.tar.gz")
	if _, err := c.Run(ctx, "--addr", leader.APIURL(), "operator", "snapshot", "save", file); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var state bytes.Buffer
	if _, err := api.ReadSnapshot(f, &state); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&state)
	var header struct {
		Version int `json:"version"`
	}
	if err := dec.Decode(&header); err != nil {
		t.Fatalf("snapshot header: %v", err)
	}
	s := raftSnapshot{kv: map[string]string{}, tasks: map[string]string{}}
	for {
		var record struct {
			Task *struct {
				ID    string `json:"id"`
				State string `json:"state"`
			} `json:"task"`
			KV *struct {
				Namespace string          `json:"namespace"`
				Key       string          `json:"key"`
				Value     json.RawMessage `json:"value"`
			} `json:"kv"`
		}
		err := dec.Decode(&record)
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			t.Fatalf("snapshot record: %v", err)
		}
		if record.Task != nil {
			s.tasks[record.Task.ID] = record.Task.State
		}
		if record.KV != nil {
			s.kv[record.KV.Namespace+"/"+record.KV.Key] = string(record.KV.Value)
		}
	}
}

// spark lists, sorted, the keys whose key or value names the group /spark or its apps.
func (s raftSnapshot) spark() []string {
	var out []string
	for key, value := range s.kv {
		if strings.Contains(key, "/spark") || strings.Contains(value, `"/spark`) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

// liveTasks lists, sorted, the task records of /spark's apps (ids spark_APP.…) with
// their states.
func (s raftSnapshot) liveTasks() []string {
	var out []string
	for id, state := range s.tasks {
		if strings.HasPrefix(id, "spark_") {
			out = append(out, id+" "+state)
		}
	}
	slices.Sort(out)
	return out
}

// waitNoContainers waits up to a minute until the agents have no container recorded and
// cgroups, those of the containers they ran, are gone.
func waitNoContainers(t *testing.T, c *Cluster, cgroups []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ids, err := c.RuncContainers()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, p := range cgroups {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				left = append(left, p)
			}
		}
		if len(ids) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after the uninstall the agents still have containers %q and cgroups %q", ids, left)
			return
		}
		time.Sleep(pollInterval)
	}
}
