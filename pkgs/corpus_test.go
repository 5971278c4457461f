package pkgs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// corpusDir holds real Universe packages and schemas (shared/corpus beside the repository).
const corpusDir = "../../shared/corpus"

func skipWithoutCorpus(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(corpusDir, "universe")); err != nil {
		tb.Skipf("no corpus at %s: %v", corpusDir, err)
	}
}

// corpusCase is what one Universe package (the latest revision in the corpus) does.
type corpusCase struct {
	name string
	// options are the fewest install options the package needs: its config schema requires
	// options without defaults, so rendering with the defaults alone must fail with an
	// *OptionsError naming them (missing).
	options string
	missing string
	// rejected is the exact error of rendering (with options when there are some); "" means
	// the package renders to a valid Marathon app or group.
	rejected string
	why      string
}

// corpusCases: one row per package. For a package that renders, why says what it renders to;
// for one that does not, why the refusal is right.
var corpusCases = []corpusCase{
	{name: "airfield", why: "MESOS container of a Docker image; container/bridge networking; health checks MESOS_HTTP"},
	{name: "arangodb3", why: "DOCKER container of a Docker image; host networking; health checks HTTP; a framework scheduler"},
	{name: "artifactory-lb", why: "DOCKER container of a Docker image; host networking; health checks HTTP; constraints"},
	{name: "beakerx", why: "MESOS container of a Docker image; container/bridge networking; 1 fetched URIs; health checks HTTP"},
	{name: "beta-confluent-kafka", why: "a command; host networking; 5 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "beta-confluent-zookeeper", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "beta-datastax-dse", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "beta-dcos-monitoring", why: "MESOS container of a Docker image; host networking; 5 fetched URIs; health checks HTTP; a framework scheduler"},
	{name: "beta-dse-opscenter", why: "a command; host networking; 3 fetched URIs; health checks HTTP, HTTP; a framework scheduler"},
	{name: "beta-hdfs", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "beta-jenkins", why: "a resident app: MESOS container of a Docker image with a local persistent volume, shown at a path of the container by a sandbox volume; host networking; health checks MESOS_HTTP; a framework scheduler"},
	{name: "beta-kafka-zookeeper", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "beta-kubernetes", why: "a command; host networking; 4 fetched URIs; health checks HTTP, MESOS_HTTP; a framework scheduler"},
	{name: "beta-mesosphere-jupyter-service", why: "MESOS container of a Docker image on the named container network dcos (agents that have it make it their bridge); health checks MESOS_HTTP"},
	{name: "beta-nifi", options: `{"zookeeper": {"connect_string": "zk-1.zk:2181,zk-2.zk:2181"}}`,
		missing: "zookeeper.connect_string: required option is missing",
		why:     "MESOS container of a Docker image; host networking; 5 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "beta-portworx-tensorflow", why: "a command; host networking; 5 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "beta-spark-history", options: `{"service": {"hdfs-config-url": "http://api.hdfs.marathon.l4lb.thisdcos.directory/v1/endpoints"}}`,
		missing: "service.hdfs-config-url: required option is missing",
		why:     "MESOS container of a Docker image; host networking; 2 fetched URIs; health checks COMMAND"},
	{name: "bitbucket", why: "DOCKER container of a Docker image; container/bridge networking; health checks COMMAND"},
	{name: "cadvisor", why: "DOCKER container of a Docker image; container/bridge networking; health checks MESOS_HTTP; constraints"},
	{name: "cassandra", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "ceph-dash", options: `{"service": {"ceph_conf_URI": "http://files.example.com/ceph.conf", "ceph_client_admin_keyring_URI": "http://files.example.com/ceph.client.admin.keyring"}}`,
		missing: "service.ceph_client_admin_keyring_URI: required option is missing; service.ceph_conf_URI: required option is missing",
		why:     "DOCKER container of a Docker image; container/bridge networking; 2 fetched URIs; health checks COMMAND"},
	{name: "chronos", why: "DOCKER container of a Docker image; host networking; health checks HTTP; a framework scheduler"},
	{name: "cloudflare-argotunnel", why: "a command with a secret of the secret store as a file (a secret volume); host networking; 2 fetched URIs"},
	{name: "concord", why: "DOCKER container of a Docker image; host networking; constraints; a framework scheduler"},
	{name: "confluent-control-center", why: "MESOS container of a Docker image; host networking; health checks COMMAND; a framework scheduler"},
	{name: "confluent-replicator", why: "DOCKER container of a Docker image; container/bridge networking; health checks COMMAND; a framework scheduler"},
	{name: "confluent-schema-registry", why: "MESOS container of a Docker image; host networking; health checks COMMAND; a framework scheduler"},
	{name: "consul", why: "a command; host networking; 6 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "crate", why: "a command; host networking; 2 fetched URIs; health checks COMMAND; a framework scheduler"},
	{name: "datadog", options: `{"datadog": {"api_key": "0123456789abcdef0123456789abcdef"}}`,
		missing: "datadog.api_key: required option is missing",
		why:     "DOCKER container of a Docker image with docker parameters (env) and host path volumes; container/bridge networking; health checks COMMAND; constraints"},
	{name: "datastax-ops", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "dcos-core-cli", rejected: "render package dcos-core-cli 2.1-patch.0: nothing to render: the package has no Marathon template: it installs no app",
		why: "installs only the DC/OS CLI: nothing to run"},
	{name: "dcos-monitoring", why: "MESOS container of a Docker image; host networking; 5 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "dse", why: "a command; host networking; 2 fetched URIs; health checks HTTP; readiness checks; a framework scheduler"},
	{name: "ecr-login", options: `{"ecr-login": {"registry_accounts": "123456789012"}}`,
		missing: "ecr-login.registry_accounts: required option is missing",
		why:     "DOCKER container of a Docker image; host networking; health checks COMMAND; constraints"},
	{name: "edgelb-pool", options: `{"service": {"name": "edgelb/pools/web"}, "edgelbPool": {"count": 1, "cpus": 0.9, "mem": 992, "disk": 256}}`,
		missing: "edgelbPool.count: required option is missing; edgelbPool.cpus: required option is missing; edgelbPool.disk: required option is missing; edgelbPool.mem: required option is missing",
		why:     "MESOS container; host networking; 4 fetched URIs; health checks MESOS_HTTP; constraints; a framework scheduler"},
	{name: "elasticsearch", why: "DOCKER container of a Docker image; host networking; health checks HTTP; a framework scheduler"},
	{name: "etcd", why: "a command; host networking; 5 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "exhibitor", why: "a resident app: DOCKER container of a Docker image with a local persistent volume, shown at a path of the container by a sandbox volume; host networking; health checks HTTP"},
	{name: "geoserver", why: "DOCKER container of a Docker image; container/bridge networking; health checks HTTP; a framework scheduler"},
	{name: "gitlab", why: "DOCKER container of a Docker image; container/bridge networking; health checks COMMAND; constraints"},
	{name: "hdfs", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "hive-metastore", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "httpbin", why: "DOCKER container of a Docker image; container/bridge networking; health checks HTTP"},
	{name: "humio-agent", options: `{"humio": {"host": "cloud.humio.com", "dataspace": "atoll", "ingestToken": "token"}}`,
		missing: "humio.dataspace: required option is missing; humio.host: required option is missing; humio.ingestToken: required option is missing",
		why:     "a command; host networking; 2 fetched URIs; health checks HTTP; constraints; a framework scheduler"},
	{name: "instana-agent", options: `{"instana-agent": {"agent_key": "0123456789abcdef"}}`,
		missing: "instana-agent.agent_key: required option is missing",
		why:     "a privileged DOCKER container of a Docker image with docker parameters (env, pid=host, ipc=host) and host path volumes (/dev, /sys); host networking; health checks COMMAND; constraints"},
	{name: "jupyterlab", why: "MESOS container of a Docker image on the named container network dcos (agents that have it make it their bridge); health checks MESOS_HTTP"},
	{name: "kafka-manager", options: `{"kafka-manager": {"application_secret": "s3cr3t"}}`,
		missing: "kafka-manager.application_secret: required option is missing",
		why:     "DOCKER container of a Docker image; container/bridge networking; health checks MESOS_HTTP"},
	{name: "kibana", why: "MESOS container of a Docker image; host networking; 3 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "kong", why: "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "kubernetes-cluster", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "linkerd-viz", why: "a privileged DOCKER container of a Docker image; host networking; health checks HTTP"},
	{name: "marathon", why: "DOCKER container of a Docker image; host networking; health checks HTTP; constraints; a framework scheduler"},
	{name: "marathon-lb", why: "a privileged DOCKER container of a Docker image with docker parameters (label); host networking; health checks MESOS_HTTP"},
	{name: "marathon-slack", options: `{"marathon-slack": {"slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X"}}`,
		missing: "marathon-slack.slack_webhook_url: required option is missing",
		why:     "DOCKER container of a Docker image; host networking; health checks HTTP"},
	{name: "memsql", why: "DOCKER container of a Docker image; host networking; health checks HTTP; a framework scheduler"},
	{name: "miniod", why: "a command; host networking; 8 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "mongodb-admin", why: "DOCKER container of a Docker image; host networking; health checks HTTP"},
	{name: "mr-redis", why: "DOCKER container of a Docker image; host networking; health checks HTTP; a framework scheduler"},
	{name: "mysql", why: "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "namerd", rejected: "render package namerd 0.7.0-0.1: the rendered template is not valid JSON: line 6, column 29: invalid character '\\\\' looking for beginning of value: \"acceptedResourceRoles\": [\\\"*\\\", \\\"slave_public\\\"],",
		why: "the template writes a string option as JSON ([{{{namerd.resource-roles}}}]); Cosmos escapes string options for JSON (\\\"*\\\"), so the output is not JSON there either"},
	{name: "neo4j-proxy", why: "DOCKER container of a Docker image; container/bridge networking; health checks HTTP"},
	{name: "netsil", why: "a resident app: DOCKER container of a Docker image with 10 local persistent volumes, shown at paths of the container by sandbox volumes; container/bridge networking"},
	{name: "nexclipper-agent", rejected: "render package nexclipper-agent 1.0.0: the rendered app is not valid: 400 Invalid JSON: /instances: error.expected.jsnumber; /cpus: error.expected.jsnumber; /mem: error.expected.jsnumber",
		why: "the template quotes numbers (\"cpus\": \"{{…}}\"), which Marathon refused too"},
	{name: "nexus", why: "DOCKER container of a Docker image; container/bridge networking; health checks COMMAND"},
	{name: "nifi", options: `{"zookeeper": {"connect_string": "zk-1.zk:2181,zk-2.zk:2181"}}`,
		missing: "zookeeper.connect_string: required option is missing",
		why:     "MESOS container of a Docker image; host networking; 5 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "openldap-admin", why: "DOCKER container of a Docker image; container/bridge networking; health checks HTTP"},
	{name: "openvpn-admin", why: "DOCKER container of a Docker image; container/bridge networking; health checks HTTP"},
	{name: "percona-pxc-mysql", why: "a command; host networking; 8 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "portworx", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "portworx-confluent-kafka", why: "a command; host networking; 5 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "portworx-data-science-engine", why: "MESOS container of a Docker image with a Portworx external (DVDI) volume, on the agents that have the pxd driver; on the named container network dcos; health checks MESOS_HTTP"},
	{name: "portworx-datastax-ops", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "portworx-hadoop", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "portworx-jenkins", why: "MESOS container of a Docker image with a Portworx external (DVDI) volume, on the agents that have the pxd driver; host networking; health checks MESOS_HTTP; a framework scheduler"},
	{name: "portworx-kafka", why: "a command; host networking; 5 fetched URIs; health checks MESOS_HTTP; a Mesos app check (http); a framework scheduler"},
	{name: "portworx-nifi", why: "a command; host networking; 4 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "portworx-prometheus", why: "a command; host networking; 5 fetched URIs; health checks MESOS_HTTP; a framework scheduler"},
	{name: "postgresql", why: "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "predator", why: "DOCKER container of a Docker image; host networking; health checks MESOS_HTTP"},
	{name: "quobyte", why: "DOCKER container of a Docker image; host networking; health checks HTTP; a framework scheduler"},
	{name: "redis", why: "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "registry", why: "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "scale", why: "DOCKER container of a Docker image; host networking; health checks COMMAND; constraints; a framework scheduler"},
	{name: "spark", why: "MESOS container of a Docker image; host networking; health checks MESOS_HTTP; a framework scheduler"},
	{name: "spark-notebook", why: "a command; host networking; 2 fetched URIs; health checks HTTP"},
	{name: "spark-thrift-server", why: "DOCKER container of a Docker image; host networking; health checks TCP"},
	{name: "sqlserver", why: "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "sysdig-cloud", why: "a privileged DOCKER container of a Docker image with docker parameters (pid=host, shm-size) and host path volumes; host networking; health checks COMMAND; constraints"},
	{name: "traefik", why: "a command; host networking; 3 fetched URIs; health checks MESOS_HTTP"},
	{name: "vamp", options: `{"service": {"elasticsearch-url": "http://elasticsearch.marathon.mesos:9200"}}`,
		missing: "service.elasticsearch-url: required option is missing",
		why:     "DOCKER container of a Docker image; container/bridge networking; health checks TCP"},
	{name: "weavescope-probe", options: `{"weavescope": {"probe": {"instances": 3}}}`,
		missing: "weavescope.probe.instances: required option is missing",
		why:     "a privileged DOCKER container of a Docker image with docker parameters (pid=host) and a host path volume; host networking; constraints"},
	{name: "zeppelin", why: "MESOS container of a Docker image; host networking; health checks TCP"},
}

// corpusPackageFS reads one package of the corpus (every revision) into a flat file system.
func corpusPackageFS(tb testing.TB, name string) fstest.MapFS {
	tb.Helper()
	fsys := fstest.MapFS{}
	root := filepath.Join(corpusDir, "universe", name)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(filepath.Join(corpusDir, "universe"), path)
		if err != nil {
			return err
		}
		fsys[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return fsys
}

func corpusPackageNames(tb testing.TB) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(corpusDir, "universe"))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// universeSchemas compiles Universe's own schemas for package.json, config.json,
// resource.json (v2 and v3), command.json and the v5 index.
type universeSchemas struct {
	pkg, config, resourceV2, resourceV3, command, repoV5 *jsonschema.Schema
}

func compileUniverseSchemas(tb testing.TB) *universeSchemas {
	tb.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(noLoader{})
	dir := filepath.Join(corpusDir, "universe-schema")
	for _, f := range []string{"package-schema.json", "config-schema.json", "v2-resource-schema.json", "v3-resource-schema.json",
		"command-schema.json", "v5-repo-schema.json", "vX-repo-definitions.json"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			tb.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource("https://universe.invalid/schema/"+f, doc); err != nil {
			tb.Fatal(err)
		}
	}
	compile := func(f string) *jsonschema.Schema {
		s, err := c.Compile("https://universe.invalid/schema/" + f)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		return s
	}
	return &universeSchemas{
		pkg: compile("package-schema.json"), config: compile("config-schema.json"),
		resourceV2: compile("v2-resource-schema.json"), resourceV3: compile("v3-resource-schema.json"),
		command: compile("command-schema.json"), repoV5: compile("v5-repo-schema.json"),
	}
}

// check validates the files of one revision directory against the schemas.
func (s *universeSchemas) check(fsys fstest.MapFS, dir, packagingVersion string) error {
	var errs []error
	for file, schema := range map[string]*jsonschema.Schema{
		"package.json": s.pkg, "config.json": s.config, "command.json": s.command, "resource.json": s.resourceV3,
	} {
		f, ok := fsys[dir+"/"+file]
		if !ok {
			continue
		}
		if file == "resource.json" && packagingVersion == "2.0" {
			schema = s.resourceV2
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.Data))
		if err == nil {
			err = schema.Validate(doc)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
		}
	}
	return errors.Join(errs...)
}

func TestCorpusTableIsComplete(t *testing.T) {
	skipWithoutCorpus(t)
	var rows []string
	for _, c := range corpusCases {
		rows = append(rows, c.name)
	}
	if !sort.StringsAreSorted(rows) {
		t.Errorf("corpusCases is not sorted by name")
	}
	names := corpusPackageNames(t)
	for _, n := range names {
		if !slices.Contains(rows, n) {
			t.Errorf("corpus package %s has no row in corpusCases: add one saying whether it renders and why", n)
		}
	}
	for _, r := range rows {
		if !slices.Contains(names, r) {
			t.Errorf("corpusCases names %s, which is not in the corpus", r)
		}
	}
}

// TestCorpusPackages: every Universe package of the corpus loads, its files are valid
// against Universe's schemas, and it renders (with its defaults, or the fewest options it
// needs) into a valid Marathon app — or is refused for exactly the reason its row gives.
func TestCorpusPackages(t *testing.T) {
	skipWithoutCorpus(t)
	schemas := compileUniverseSchemas(t)
	var total, withDefaults, withOptions int
	for _, c := range corpusCases {
		t.Run(c.name, func(t *testing.T) {
			total++
			fsys := corpusPackageFS(t, c.name)
			repo, err := LoadFS(fsys, "corpus", "https://universe.example.com/repo")
			if err != nil {
				t.Fatal(err)
			}
			p := repo.Packages[len(repo.Packages)-1]
			dir := fmt.Sprintf("%s/%d", p.Name, p.ReleaseVersion)
			if err := schemas.check(fsys, dir, p.PackagingVersion); err != nil {
				t.Errorf("not valid against universe-schema: %v", err)
			}

			_, err = p.Render(nil, "")
			if c.options != "" {
				var oerr *OptionsError
				if !errors.As(err, &oerr) {
					t.Fatalf("rendering with the defaults: %v, want the missing options", err)
				}
				if got := oerr.Problems.Error(); got != c.missing {
					t.Errorf("missing options\n got %s\nwant %s", got, c.missing)
				}
				_, err = p.Render(json.RawMessage(c.options), "")
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.rejected {
				t.Errorf("render\n got %q\nwant %q", got, c.rejected)
			}
			if got == "" {
				withOptions++
				if c.options == "" {
					withDefaults++
				}
			}
		})
	}
	t.Logf("%d of %d Universe packages render to a valid Marathon app with their default options; %d of %d with the options they require",
		withDefaults, total, withOptions, total)
}

// TestCorpusRepository: the whole corpus loads as one repository, its index is valid against
// Universe's v5 repository schema and loads back, and the catalog answers over it.
func TestCorpusRepository(t *testing.T) {
	skipWithoutCorpus(t)
	repo, err := LoadFS(os.DirFS(filepath.Join(corpusDir, "universe")), "Universe", "https://universe.example.com/repo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(repo.Packages), len(corpusPackageNames(t)); got != want {
		t.Errorf("%d packages, want %d", got, want)
	}
	index, err := json.Marshal(repo.Index())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(index))
	if err != nil {
		t.Fatal(err)
	}
	if err := compileUniverseSchemas(t).repoV5.Validate(doc); err != nil {
		t.Errorf("the index is not valid against v5-repo-schema.json: %v", err)
	}
	again, err := LoadIndex(index, "again", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Packages) != len(repo.Packages) {
		t.Errorf("%d packages loaded back, want %d", len(again.Packages), len(repo.Packages))
	}

	c := NewCatalog(repo)
	if got := len(c.Search("")); got != len(repo.Packages) {
		t.Errorf("Search(\"\") found %d", got)
	}
	spark, err := c.Resolve("spark", "")
	if err != nil || spark.Version != "2.12.0-3.0.1" {
		t.Errorf("spark: %v, %v", spark, err)
	}
	// Selected packages first, then by name; "kafka*" matches the tag "kafka" too.
	wantKafka := []string{"confluent-control-center", "confluent-replicator", "confluent-schema-registry", "beta-confluent-kafka",
		"beta-confluent-zookeeper", "beta-kafka-zookeeper", "kafka-manager", "portworx-confluent-kafka", "portworx-kafka"}
	if got := names(c.Search("kafka*")); !reflect.DeepEqual(got, wantKafka) {
		t.Errorf("Search(kafka*) = %q", got)
	}
}
