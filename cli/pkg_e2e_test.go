package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// TestPkgInstallMarathonE2E is Marathon-on-Marathon on the real binary: `atoll pkg install
// marathon --yes` runs a second services framework as an app of the built-in one; it
// registers with the master over HTTP, takes offers and runs an app of its own; `atoll
// pkg uninstall marathon` removes the app, the framework and the framework's tasks.
func TestPkgInstallMarathonE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	// Tasks without an image see the host's root read-only, but a /tmp of their own: the
	// binary the framework's task runs must live elsewhere (installs put it in
	// /usr/local/bin).
	binDir, err := os.MkdirTemp("/var/tmp", "atoll-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "atoll")
	build := exec.Command("go", "build", "-o", bin, "github.com/atoll/atoll")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	apiPort, raftPort, dnsPort := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	addr := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	// The package's framework calls the master over plain HTTP without a token.
	startUp(t, bin, filepath.Join(dir, "data"), apiPort, raftPort, dnsPort, "--secure=false")

	options := filepath.Join(dir, "options.json")
	opts := fmt.Sprintf(`{"service": {"master": %q, "atoll-binary": %q}, "resources": {"cpus": 0.2, "mem": 128}}`, addr, bin)
	if err := os.WriteFile(options, []byte(opts), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runAtoll(t, bin, "--addr", addr, "pkg", "install", "marathon", "--yes", "--options", options, "--timeout", "3m")
	for _, want := range []string{"Installing Marathon app for package [marathon] version [1.0.0]", "/marathon-user: 1/1 tasks running", "finished", `registers as "marathon-user"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("pkg install output lacks %q:\n%s", want, out)
		}
	}

	ctx := context.Background()
	var tasks []marathon.Object[marathon.Task]
	op := api.NewClient(addr)
	apps := marathon.NewClient(addr)
	var frameworkID string
	eventually(t, "the package's framework registered", func() error {
		fws, err := op.GetFrameworks(ctx)
		if err != nil {
			return err
		}
		for _, f := range fws.Frameworks {
			if f.FrameworkInfo.Name == "marathon-user" && f.Active {
				frameworkID = f.FrameworkInfo.ID.Value
				return nil
			}
		}
		return fmt.Errorf("%d frameworks, none is an active marathon-user", len(fws.Frameworks))
	})

	// The second framework's own Marathon API is on the port its task was given.
	tasks, err = apps.AppTasks(ctx, "/marathon-user")
	if err != nil || len(tasks) != 1 || len(tasks[0].Value.Ports) == 0 {
		t.Fatalf("tasks of /marathon-user: %+v, %v", tasks, err)
	}
	inner := fmt.Sprintf("http://127.0.0.1:%d", tasks[0].Value.Ports[0])
	def := filepath.Join(dir, "inner.json")
	if err := os.WriteFile(def, []byte(`{"id": "/inner", "cmd": "exec sleep 1000", "cpus": 0.05, "mem": 16}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out = runAtoll(t, bin, "--addr", inner, "app", "add", def, "--wait")
	if !strings.Contains(out, "/inner: 1/1 tasks running") {
		t.Fatalf("app add on the second framework:\n%s", out)
	}
	var innerTask string
	eventually(t, "the inner app's task running under the second framework", func() error {
		got, err := op.GetTasks(ctx)
		if err != nil {
			return err
		}
		for _, task := range got.Tasks {
			if task.FrameworkID.Value == frameworkID && task.State == api.TaskRunning {
				innerTask = task.TaskID.Value
				return nil
			}
		}
		return fmt.Errorf("no running task of framework %s among %d", frameworkID, len(got.Tasks))
	})
	if builtin, err := apps.ListApps(ctx); err != nil || len(builtin) != 1 || builtin[0].Value.ID != "/marathon-user" {
		t.Fatalf("the built-in framework's apps: %+v, %v; want only /marathon-user", builtin, err)
	}

	out = runAtoll(t, bin, "--addr", addr, "pkg", "uninstall", "marathon")
	if !strings.Contains(out, "/marathon-user: removed") {
		t.Fatalf("pkg uninstall output:\n%s", out)
	}
	eventually(t, "the second framework and its task gone", func() error {
		fws, err := op.GetFrameworks(ctx)
		if err != nil {
			return err
		}
		for _, f := range fws.Frameworks {
			if f.FrameworkInfo.ID.Value == frameworkID {
				return fmt.Errorf("framework %s still registered (active %v)", frameworkID, f.Active)
			}
		}
		got, err := op.GetTasks(ctx)
		if err != nil {
			return err
		}
		if len(got.Tasks) != 0 {
			return fmt.Errorf("%d live tasks, the first %s %s", len(got.Tasks), got.Tasks[0].TaskID.Value, got.Tasks[0].State)
		}
		return nil
	})
	if list := runAtoll(t, bin, "--addr", addr, "pkg", "list"); list != "NAME  VERSION  APP  FRAMEWORK  DESCRIPTION\n" {
		t.Fatalf("pkg list after uninstall:\n%s", list)
	}
	t.Logf("the inner task %s was killed with its framework", innerTask)
}
