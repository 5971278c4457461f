package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/pkgs/cosmos"
)

// sleeperRepo is a repository with one package, in the flat layout.
var sleeperRepo = fstest.MapFS{
	"sleeper/0/package.json": {Data: []byte(`{"packagingVersion": "4.0", "name": "sleeper", "version": "1.0",
		"maintainer": "tests@atoll.invalid", "description": "Sleeps.\nFor tests.", "tags": ["test"],
		"preInstallNotes": "This sleeps.", "postInstallNotes": "{{service.name}} is asleep.", "postUninstallNotes": "Woken up."}`)},
	"sleeper/0/config.json": {Data: []byte(`{"type": "object", "properties": {"service": {"type": "object", "additionalProperties": false,
		"properties": {"name": {"type": "string", "default": "sleeper"}, "instances": {"type": "integer", "minimum": 0, "default": 1}}}}}`)},
	"sleeper/0/marathon.json.mustache": {Data: []byte(`{"id": "/{{service.name}}", "instances": {{service.instances}}, "cpus": 0.05, "mem": 16, "cmd": "exec sleep 1000"}`)},
}

// catalogCluster is servicesCluster with the package catalog serving repo.
func catalogCluster(t testing.TB, repo fstest.MapFS) *master.TestServer {
	t.Helper()
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
			cosmos.Attach(m, cosmos.Config{Logger: c.Logger, Builtin: repo})
		})
	})
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	eventually(t, "the agent registered", func() error {
		if n := len(ts.Store().Agents()); n != 1 {
			return fmt.Errorf("%d agents", n)
		}
		return nil
	})
	return ts
}

// TestPkgCommands takes a package through search, describe, install (refused, declined,
// then confirmed, following the deployment), list and uninstall.
func TestPkgCommands(t *testing.T) {
	ts := catalogCluster(t, sleeperRepo)
	badOptions := writeFile(t, "bad.json", `{"service": {"instances": -2, "nam": "x"}}`)
	options := writeFile(t, "options.json", `{"service": {"instances": 2}}`)
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"pkg", "search", "sle*"}, stdout: `NAME     VERSION  SELECTED  FRAMEWORK  DESCRIPTION
sleeper  1.0      false     false      Sleeps.
`},
		{args: []string{"pkg", "search", "nothing"}, stderr: "no package matches \"nothing\"\n"},
		{args: []string{"pkg", "describe", "sleeper"}, stdout: `sleeper 1.0 (release 0)
Sleeps.
For tests.
  maintainer: tests@atoll.invalid
  tags:       test
  framework:  false

Before installing:
  This sleeps.

Options: atoll pkg describe sleeper --config; what it installs: --render
`},
		{args: []string{"pkg", "describe", "sleeper", "--package-versions"}, stdout: "VERSION  RELEASE\n1.0      0\n"},
		{args: []string{"pkg", "install", "sleeper", "--options", badOptions}, code: 1, stderr: `atoll: the options are not valid:
  service.instances: must be 0 or more, got -2
  service.nam: unknown option: the schema allows no other properties here
atoll: the options and their defaults: atoll pkg describe NAME --config
`},
		{args: []string{"pkg", "install", "nope", "--yes"}, code: 1, stderr: "atoll: POST /package/describe: 400 Package [nope] not found\n"},
		{args: []string{"pkg", "install", "sleeper"}, code: 2, stdout: "This sleeps.\nContinue installing? [yes/no] \n",
			stderr: "atoll: no answer (stdin is closed): pass --yes to go ahead without asking\nRun 'atoll pkg install --help' for usage.\n"},
		{args: []string{"pkg", "install", "sleeper", "--yes", "--options", options}, stdout: `This sleeps.
Installing Marathon app for package [sleeper] version [1.0]
installed package sleeper 1.0 as /sleeper: deployment <D1>
step 1/1: StartApplication /sleeper
/sleeper: 0/2 tasks running at version <V1>
/sleeper: 1/2 tasks running at version <V1>
/sleeper: 2/2 tasks running at version <V1>
deployment <D1> finished
sleeper is asleep.
`},
		{args: []string{"pkg", "list"}, stdout: `NAME     VERSION  APP       FRAMEWORK  DESCRIPTION
sleeper  1.0      /sleeper  false      Sleeps.
`},
		{args: []string{"pkg", "install", "sleeper", "--yes", "--no-wait"}, code: 1,
			stdout: "This sleeps.\nInstalling Marathon app for package [sleeper] version [1.0]\n",
			stderr: "atoll: POST /package/install: 409 a package is already installed as /sleeper; choose another id with --app-id\n"},
	})
	// How many tasks are left is shown as it changes, which depends on timing: both
	// tasks can be gone by the first look, and the app can outlast its tasks.
	code, stdout, stderr := cliRun(t, ts.URL, "pkg", "uninstall", "sleeper")
	wantOut := regexp.MustCompile(`^Uninstalling package \[sleeper\] version \[1\.0\] \(/sleeper\)
(/sleeper: stopping, 2 tasks left
)?(/sleeper: stopping, 1 task left
)?(/sleeper: stopping, 0 tasks left
)?/sleeper: removed
Woken up\.
$`)
	if code != 0 || !wantOut.MatchString(stdout) || stderr != "" {
		t.Fatalf("atoll pkg uninstall sleeper: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"pkg", "list"}, stdout: "NAME  VERSION  APP  FRAMEWORK  DESCRIPTION\n"},
		{args: []string{"app", "list"}, stdout: "ID  INSTANCES  CPUS  MEM  VERSION  DEPLOYMENTS\n"},
	})
}

// TestPkgRepoCommands: a directory is added as a repository (the CLI reads it and sends
// its index), its packages are found, and it is removed.
func TestPkgRepoCommands(t *testing.T) {
	ts := catalogCluster(t, sleeperRepo)
	dir := t.TempDir()
	for name, f := range map[string]string{
		"package.json":           `{"packagingVersion": "4.0", "name": "other", "version": "2.0", "maintainer": "tests@atoll.invalid", "description": "Another.", "tags": []}`,
		"marathon.json.mustache": `{"id": "/other", "cmd": "exec sleep 1000", "cpus": 0.05, "mem": 16}`,
	} {
		path := filepath.Join(dir, "packages", "O", "other", "0", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"pkg", "repo", "list"}, stdout: "NAME      URI\nbuilt-in  builtin:\n"},
		{args: []string{"pkg", "repo", "add", "mine", dir, "--index", "0"}, stdout: "NAME      URI\nmine      dir:" + dir + "\nbuilt-in  builtin:\n"},
		{args: []string{"pkg", "search"}, stdout: `NAME     VERSION  SELECTED  FRAMEWORK  DESCRIPTION
other    2.0      false     false      Another.
sleeper  1.0      false     false      Sleeps.
`},
		{args: []string{"pkg", "repo", "add", "bad", "http://127.0.0.1:1/repo"}, code: 1, stderr: "atoll: POST /package/repository/add: 502 repository bad: fetch http://<ADDR>/repo: dial tcp <ADDR>: connect: connection refused\n"},
		{args: []string{"pkg", "repo", "remove", "mine"}, stdout: "NAME      URI\nbuilt-in  builtin:\n"},
		{args: []string{"pkg", "describe", "other"}, code: 1, stderr: "atoll: POST /package/describe: 400 Package [other] not found\n"},
	})
}

// TestPkgUpdate: update moves an installation to the current version, keeping its options,
// and follows the deployment.
func TestPkgUpdate(t *testing.T) {
	repo := fstest.MapFS{}
	for k, v := range sleeperRepo {
		repo[k] = v
	}
	repo["sleeper/1/package.json"] = &fstest.MapFile{Data: []byte(`{"packagingVersion": "4.0", "name": "sleeper", "version": "1.1",
		"maintainer": "tests@atoll.invalid", "description": "Sleeps longer.", "tags": ["test"], "upgradesFrom": ["1.0"], "downgradesTo": []}`)}
	repo["sleeper/1/config.json"] = sleeperRepo["sleeper/0/config.json"]
	repo["sleeper/1/marathon.json.mustache"] = &fstest.MapFile{Data: []byte(`{"id": "/{{service.name}}", "instances": {{service.instances}}, "cpus": 0.05, "mem": 16, "cmd": "exec sleep 1001"}`)}
	ts := catalogCluster(t, repo)
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"pkg", "install", "sleeper", "--package-version", "1.0", "--yes", "--no-wait"}, stdout: `This sleeps.
Installing Marathon app for package [sleeper] version [1.0]
installed package sleeper 1.0 as /sleeper: deployment <D1>
sleeper is asleep.
`},
		{args: []string{"pkg", "update", "sleeper", "--package-version", "1.0"}, stdout: "/sleeper is already at sleeper 1.0\n"},
	})
	eventually(t, "the install deployed", func() error {
		code, out, _ := cliRun(t, ts.URL, "deployment", "list")
		if code != 0 || strings.Count(out, "\n") != 1 {
			return fmt.Errorf("deployments:\n%s", out)
		}
		return nil
	})
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"pkg", "update", "sleeper", "--yes"}, stdout: `updating /sleeper from sleeper 1.0 to 1.1: deployment <D1>
step 1/1: RestartApplication /sleeper
/sleeper: 0/1 tasks running at version <V1>
/sleeper: 1/1 tasks running at version <V1>
deployment <D1> finished
`},
		{args: []string{"pkg", "list"}, stdout: `NAME     VERSION  APP       FRAMEWORK  DESCRIPTION
sleeper  1.1      /sleeper  false      Sleeps longer.
`},
		{args: []string{"pkg", "update", "sleeper", "--package-version", "1.0", "--yes"}, code: 1,
			stderr: "atoll: POST /cosmos/service/update: 400 the installed sleeper 1.1 cannot be downgraded to 1.0: its downgradesTo is []\n"},
	})
}
