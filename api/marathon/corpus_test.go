package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// corpusDir holds real Marathon inputs (shared/corpus beside the repository).
const corpusDir = "../../../shared/corpus"

// corpusKind says how a corpus file is read.
type corpusKind int

const (
	kindApp         corpusKind = iota // DecodeApp, Normalize under "/", Validate
	kindGroup                         // DecodeGroup, NormalizeGroup under "/", ValidateGroup
	kindAppList                       // DecodeAppList, then each app as kindApp
	kindAppPatch                      // DecodeAppPatch, merged onto patchBase, Normalize, Validate
	kindTasks                         // a TaskList response
	kindDeployments                   // a []Deployment response
	kindQueue                         // a Queue response
	kindInfo                          // an Info response
)

// patchBase is the app that patches from the corpus apply to.
const patchBase = `{"id": "/foo", "cmd": "sleep 1000", "instances": 1}`

// corpusCase is the expected outcome for one corpus file. Accepted definitions are compared
// with testdata/golden/<dir>-<name>.json (dir with / as -); responses are decoded, compared
// with their golden file and checked to keep every field of the input.
type corpusCase struct {
	file string
	kind corpusKind
	// rejected is the status (400 or 422) and paths are the error details' paths, in order.
	rejected int
	paths    []string
	// apps is how many apps an accepted group or list has.
	apps int
	// noGolden skips the golden file (too large to keep; the app count and a spot check
	// stand for it).
	noGolden bool
	why      string
}

var corpusCases = []corpusCase{
	// marathon/apps: Marathon's own integration-test apps.
	{file: "marathon/apps/app-with-https-readiness-checks.json", kind: kindApp,
		why: "legacy BRIDGE docker app: docker.portMappings become container.portMappings, the readiness check's portName https names one"},
	{file: "marathon/apps/docker-http-server.json", kind: kindApp,
		why: "legacy BRIDGE docker app with an unnamed mapping; protocol defaults to tcp"},
	{file: "marathon/apps/docker-nginx-ssl.json", kind: kindApp,
		why: "legacy BRIDGE docker app with two named mappings and no cmd (the image's entrypoint runs)"},
	{file: "marathon/apps/external-volume-mesos-app.json", kind: kindApp,
		why: "an external (DVDI/REX-Ray) volume: it waits for an agent that has the volume driver"},
	{file: "marathon/apps/fake-framework.json", kind: kindApp,
		why: "single-instance framework app: MARATHON_SINGLE_INSTANCE_APP with 0/0 upgrade strategy and the DC/OS migration labels are valid"},
	{file: "marathon/apps/healthcheck-and-volume.json", kind: kindApp,
		why: "a local persistent volume on the named container network of docker network USER"},
	{file: "marathon/apps/http-server.json", kind: kindApp,
		why: "plain command app: default port definition, host networking"},
	{file: "marathon/apps/ipv6-healthcheck.json", kind: kindApp,
		why: "networks mode container: a named container network, on the agents that have it"},
	{file: "marathon/apps/large-sleep.json", kind: kindApp,
		why: "relative id \"sleep\" becomes /sleep"},
	{file: "marathon/apps/mesos-app.json", kind: kindApp,
		why: "MESOS container without an image: the command runs on the host's filesystem"},
	{file: "marathon/apps/persistent-volume-app.json", kind: kindApp,
		why: "a local persistent volume: a resident app"},
	{file: "marathon/apps/pinger-bridge-app.json", kind: kindApp,
		why: "BRIDGE app with a fixed host port and a host volume; docker.requirePorts is an unknown field Marathon ignored"},
	{file: "marathon/apps/pinger-container-app.json", kind: kindApp,
		why: "ipAddress asks for the named container network dcos"},
	{file: "marathon/apps/pinger-localhost-app.json", kind: kindApp,
		why: "requirePorts with a fixed port definition"},
	{file: "marathon/apps/private-docker-app.json", kind: kindApp,
		why: "docker image with a fetched docker.tar.gz (Mesos' credential trick; the file is just fetched)"},
	{file: "marathon/apps/private-ucr-docker-app.json", kind: kindApp, rejected: 422,
		paths: []string{"/container/docker/pullConfig"},
		why:   "a pull config (registry credentials from a secret), which Atoll does not support"},
	{file: "marathon/apps/readiness-and-health-app.json", kind: kindApp,
		why: "HTTP health check and readiness check on the port named api"},
	{file: "marathon/apps/resident-docker-app.json", kind: kindApp,
		why: "a resident app with a persistent volume on a USER network"},
	{file: "marathon/apps/sleep-app.json", kind: kindApp,
		why: "the smallest app"},
	{file: "marathon/apps/ucr-docker-http-server.json", kind: kindApp,
		why: "MESOS container with a docker image (runc runs both)"},

	// marathon/examples: the REST API documentation's examples.
	{file: "marathon/examples/app-check-http-example.json", kind: kindApp,
		why: "a Mesos app check (check) on the port named http: the agents run it and the tasks show its result"},
	{file: "marathon/examples/app-simple.json", kind: kindApp,
		why: "the documentation's simple app"},
	{file: "marathon/examples/app.json", kind: kindApp, rejected: 422,
		paths: []string{"/ipAddress/discovery/ports", "/", "/env/PASSWORD", "/container/docker/parameters/0/key"},
		why:   "the all-fields showcase is not a valid app: discovery ports on a DOCKER container, both cmd and args, an env secret its secrets do not declare, and the docker parameter name (a Docker container name, which runc has no use for)"},
	{file: "marathon/examples/app_patch.json", kind: kindAppPatch,
		why: "PATCH body: instances 2 replaces instances, the id stays the path's"},
	{file: "marathon/examples/app_tasks.json", kind: kindTasks,
		why: "GET /v2/apps/{id}/tasks response"},
	{file: "marathon/examples/apps_create.json", kind: kindAppList, apps: 2,
		why: "PUT /v2/apps body: a bare array; a dependency outside the list is fine for apps"},
	{file: "marathon/examples/deployments.json", kind: kindDeployments,
		why: "GET /v2/deployments response (with a pod step)"},
	{file: "marathon/examples/group.json", kind: kindGroup, apps: 3,
		why: "a group of three docker apps in subgroups; the datadog agent runs privileged"},
	{file: "marathon/examples/info.json", kind: kindInfo,
		why: "GET /v2/info response"},
	{file: "marathon/examples/queue.json", kind: kindQueue,
		why: "GET /v2/queue response with the offer-matching summary"},
	{file: "marathon/examples/tasks.json", kind: kindTasks,
		why: "GET /v2/tasks response"},

	// marathon/groups: real groups.
	{file: "marathon/groups/real-100-apps.json", kind: kindGroup, apps: 100,
		why: "a real group of 100 docker apps with CLUSTER constraints"},
	{file: "marathon/groups/real-1000-apps.json", kind: kindGroup, apps: 1000, noGolden: true,
		why: "a real group of 1000 apps (same shape as real-100)"},
	{file: "marathon/groups/sleep-group.json", kind: kindGroup, apps: 2,
		why: "nested groups with absolute ids"},

	// marathon-lb: what marathon-lb's tests feed it.
	{file: "marathon-lb/1-nginx.json", kind: kindApp,
		why: "marathon-lb's sample app: relative id, legacy BRIDGE port mapping with a service port, HAPROXY labels"},
	{file: "marathon-lb/marathon15_apps.json", kind: kindAppList, apps: 1,
		why: "a Marathon 1.5 GET /v2/apps answer: canonical networks and container.portMappings; tasks and counts are ignored"},
	{file: "marathon-lb/zdd_app_blue.json", kind: kindAppList, apps: 1,
		why: "an old GET /v2/apps answer: null cmd/args/user/ipAddress, legacy ports with BRIDGE port mappings"},
}

func skipWithoutCorpus(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(corpusDir); err != nil {
		tb.Skipf("no corpus at %s: %v", corpusDir, err)
	}
}

// TestCorpusTableIsComplete fails when a corpus file has no row (or a row names no file).
func TestCorpusTableIsComplete(t *testing.T) {
	skipWithoutCorpus(t)
	var files []string
	for _, dir := range []string{"marathon/apps", "marathon/examples", "marathon/groups", "marathon-lb"} {
		matches, err := filepath.Glob(filepath.Join(corpusDir, dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			rel, err := filepath.Rel(corpusDir, m)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, filepath.ToSlash(rel))
		}
	}
	var rows []string
	for _, c := range corpusCases {
		rows = append(rows, c.file)
	}
	slices.Sort(rows)
	slices.Sort(files)
	for _, f := range files {
		if !slices.Contains(rows, f) {
			t.Errorf("corpus file %s has no row in corpusCases: add one saying whether it is accepted and why", f)
		}
	}
	for _, r := range rows {
		if !slices.Contains(files, r) {
			t.Errorf("corpusCases names %s, which is not in the corpus", r)
		}
	}
}

func TestCorpus(t *testing.T) {
	skipWithoutCorpus(t)
	for _, c := range corpusCases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			got, apps, err := runCorpusCase(c.kind, data)
			if c.rejected != 0 {
				var e *Error
				if !errors.As(err, &e) || e == nil {
					t.Fatalf("accepted (err %v), want %d at %q (%s)", err, c.rejected, c.paths, c.why)
				}
				if e.Status != c.rejected || !slices.Equal(detailPaths(e), c.paths) {
					t.Fatalf("got %v, want %d at %q (%s)", e, c.rejected, c.paths, c.why)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v (%s)", err, c.why)
			}
			if apps != c.apps {
				t.Errorf("%d apps, want %d", apps, c.apps)
			}
			if !c.noGolden {
				compareGolden(t, goldenName(c.file), got)
			}
		})
	}
}

// runCorpusCase runs a corpus file through its pipeline and returns the value to compare
// with the golden file and how many apps it held.
func runCorpusCase(kind corpusKind, data []byte) (any, int, error) {
	switch kind {
	case kindApp:
		app, err := DecodeApp(data)
		if err != nil {
			return nil, 0, err
		}
		Normalize(app, "/")
		if e := Validate(app); e != nil {
			return nil, 0, e
		}
		return app, 0, nil
	case kindGroup:
		g, err := DecodeGroup(data)
		if err != nil {
			return nil, 0, err
		}
		NormalizeGroup(g, "/")
		if e := ValidateGroup(g); e != nil {
			return nil, 0, e
		}
		return g, len(g.AllApps()), nil
	case kindAppList:
		apps, err := DecodeAppList(data)
		if err != nil {
			return nil, 0, err
		}
		for _, app := range apps {
			Normalize(app, "/")
			if e := Validate(app); e != nil {
				return nil, 0, e
			}
		}
		return apps, len(apps), nil
	case kindAppPatch:
		patch, err := DecodeAppPatch(data)
		if err != nil {
			return nil, 0, err
		}
		base, err := DecodeApp([]byte(patchBase))
		if err != nil {
			return nil, 0, err
		}
		Normalize(base, "/")
		merged := base.Merge(patch)
		Normalize(merged, "/")
		if e := Validate(merged); e != nil {
			return nil, 0, e
		}
		return merged, 0, nil
	default:
		v := responseValue(kind)
		if err := json.Unmarshal(data, v); err != nil {
			return nil, 0, err
		}
		return v, 0, nil
	}
}

func responseValue(kind corpusKind) any {
	switch kind {
	case kindTasks:
		return &TaskList{}
	case kindDeployments:
		return &[]Deployment{}
	case kindQueue:
		return &Queue{}
	default:
		return &Info{}
	}
}

// TestCorpusResponsesKeepEveryField checks that the response types name every field of
// Marathon's example responses: decoding and encoding again loses nothing (apps inside the
// queue are App values, whose legacy input fields are dropped on purpose).
func TestCorpusResponsesKeepEveryField(t *testing.T) {
	skipWithoutCorpus(t)
	for _, c := range corpusCases {
		if c.kind < kindTasks {
			continue
		}
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			v := responseValue(c.kind)
			if err := json.Unmarshal(data, v); err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var before, after any
			if err := json.Unmarshal(data, &before); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(again, &after); err != nil {
				t.Fatal(err)
			}
			if lost := lostFields(before, after, ""); len(lost) > 0 {
				t.Errorf("fields lost by a decode/encode round trip: %q", lost)
			}
		})
	}
}

// lostFields lists the paths of before's object fields that after lacks or holds a
// different scalar at, skipping apps.
func lostFields(before, after any, path string) []string {
	switch b := before.(type) {
	case map[string]any:
		a, ok := after.(map[string]any)
		if !ok {
			return []string{path}
		}
		var lost []string
		for _, k := range slices.Sorted(maps.Keys(b)) {
			if k == "app" {
				continue
			}
			av, ok := a[k]
			if !ok {
				lost = append(lost, path+"/"+k)
				continue
			}
			lost = append(lost, lostFields(b[k], av, path+"/"+k)...)
		}
		return lost
	case []any:
		a, ok := after.([]any)
		if !ok || len(a) != len(b) {
			return []string{path}
		}
		var lost []string
		for i := range b {
			lost = append(lost, lostFields(b[i], a[i], path+"/"+strconv.Itoa(i))...)
		}
		return lost
	default:
		if before != after {
			return []string{path}
		}
		return nil
	}
}

// TestCorpusQueueSummary spot-checks the offer-matching summary of the queue example.
func TestCorpusQueueSummary(t *testing.T) {
	skipWithoutCorpus(t)
	data, err := os.ReadFile(filepath.Join(corpusDir, "marathon/examples/queue.json"))
	if err != nil {
		t.Fatal(err)
	}
	var q Queue
	if err := json.Unmarshal(data, &q); err != nil {
		t.Fatal(err)
	}
	if len(q.Queue) != 2 {
		t.Fatalf("%d queue items, want 2", len(q.Queue))
	}
	item := q.Queue[1]
	if item.App.ID != "/foo" || item.Count != 2 || item.Role != "*" || !item.Delay.Overdue {
		t.Errorf("item = app %s count %d role %q delay %+v", item.App.ID, item.Count, item.Role, item.Delay)
	}
	// The app was read as App.UnmarshalJSON reads it: legacy fields kept for Normalize.
	if !slices.Equal(item.App.URIs, []string{"http://www.mesosphere.io/index.html"}) || !slices.Equal(item.App.Ports, []int{10010}) {
		t.Errorf("legacy fields = uris %q ports %v", item.App.URIs, item.App.Ports)
	}
	want := DeclinedOfferStep{Reason: ReasonInsufficientCpus, Declined: 75, Processed: 123}
	if got := item.ProcessedOffersSummary.RejectSummaryLastOffers[3]; got != want {
		t.Errorf("rejectSummaryLastOffers[3] = %+v, want %+v", got, want)
	}
	if got := item.LastUnusedOffers[0].Offer.Resources[0].Ranges[0]; got != (OfferRange{Begin: 1, End: 5}) {
		t.Errorf("offer range = %+v", got)
	}
}

// TestCorpusRealGroups decodes, normalises and validates the real groups and counts their
// apps; for the one without a golden file it checks the normalised apps' shape.
func TestCorpusRealGroups(t *testing.T) {
	skipWithoutCorpus(t)
	for _, tt := range []struct {
		file string
		apps int
	}{
		{"real-100-apps.json", 100},
		{"real-1000-apps.json", 1000},
	} {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, "marathon/groups", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			g, err := DecodeGroup(data)
			if err != nil {
				t.Fatal(err)
			}
			NormalizeGroup(g, "/")
			if e := ValidateGroup(g); e != nil {
				t.Fatal(e)
			}
			apps := g.AllApps()
			if g.ID != "/cudcos" || len(apps) != tt.apps || len(g.Groups) != 0 {
				t.Fatalf("group %s with %d apps and %d groups", g.ID, len(apps), len(g.Groups))
			}
			ids := map[string]bool{}
			for _, app := range apps {
				ids[app.ID] = true
				if !strings.HasPrefix(app.ID, "/cudcos/mactest") || app.Container.Type != ContainerDocker ||
					len(app.PortDefinitions) != 1 || app.Networks[0].Mode != NetworkHost || len(app.Constraints) != 2 {
					t.Fatalf("app %s not as expected: %+v", app.ID, app)
				}
			}
			if len(ids) != tt.apps {
				t.Errorf("%d distinct ids, want %d", len(ids), tt.apps)
			}
		})
	}
}

func goldenName(file string) string {
	dir, name := filepath.Split(file)
	return strings.ReplaceAll(strings.TrimSuffix(dir, "/"), "/", "-") + "-" + name
}

// compareGolden compares v's indented JSON with testdata/golden/name, or rewrites it with
// -update.
func compareGolden(tb testing.TB, name string, v any) {
	tb.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func detailPaths(e *Error) []string {
	var paths []string
	for _, d := range e.Details {
		paths = append(paths, d.Path)
	}
	return paths
}

// BenchmarkGroup1000 decodes, normalises and validates real-1000-apps.json.
func BenchmarkGroup1000(b *testing.B) {
	skipWithoutCorpus(b)
	data, err := os.ReadFile(filepath.Join(corpusDir, "marathon/groups/real-1000-apps.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		g, err := DecodeGroup(data)
		if err != nil {
			b.Fatal(err)
		}
		NormalizeGroup(g, "/")
		if e := ValidateGroup(g); e != nil {
			b.Fatal(e)
		}
	}
}
