package agent

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/fetch"
)

func withFetcher(t *testing.T) func(*Config) {
	return func(c *Config) {
		f, err := fetch.New(fetch.DefaultConfig(filepath.Join(t.TempDir(), "cache")), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Fetcher = f
	}
}

// writeTar writes a tar archive of name → content entries.
func writeTar(t *testing.T, path string, entries map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, content := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFetchedURIs: a task's uris are in its sandbox, extracted, before it runs; an archive
// with an entry escaping the sandbox fails the task with TASK_FAILED naming the entry,
// writes nothing outside, and the agent goes on running tasks.
func TestFetchedURIs(t *testing.T) {
	peer := newProtocolPeer(t)
	TestAgent(t, peer.masters, withFetcher(t))
	peer.nextSubscribe()
	dir := t.TempDir()
	good, evil := filepath.Join(dir, "app.tar"), filepath.Join(dir, "evil.tar")
	writeTar(t, good, map[string]string{"app/run.sh": "echo fetched"})
	writeTar(t, evil, map[string]string{"../escaped": "x"})

	launch := func(id string, uri string) {
		ev := launchEvent(id, "sh app/run.sh")
		ev.Launch.Task.Command.URIs = []api.CommandURI{{Value: uri}}
		peer.send(ev)
	}
	launch("evil", evil)
	failed := peer.nextUpdate()
	wantUpdate(t, failed, "evil", api.TaskFailed)
	if s := failed.Status; s.Reason != api.ReasonContainerLaunchFailed || !strings.Contains(s.Message, `"../escaped" leaves the sandbox`) {
		t.Fatalf("TASK_FAILED = %s %q, want %s naming the escaping entry", s.Reason, s.Message, api.ReasonContainerLaunchFailed)
	}
	peer.ack(failed)
	if _, err := os.Stat(filepath.Join(filepath.Dir(labelSandbox(t, failed.Status)), "escaped")); err == nil {
		t.Fatal("the escaping entry was written beside the sandbox")
	}

	launch("good", good)
	running := peer.nextUpdate()
	wantUpdate(t, running, "good", api.TaskRunning)
	peer.ack(running)
	finished := peer.nextUpdate()
	for finished.Status.State == api.TaskRunning {
		finished = peer.nextUpdate()
	}
	wantUpdate(t, finished, "good", api.TaskFinished)
	sandbox := labelSandbox(t, finished.Status)
	if out, err := os.ReadFile(filepath.Join(sandbox, "stdout")); err != nil || string(out) != "fetched\n" {
		t.Fatalf("stdout %q, %v; want the fetched script's output", out, err)
	}
}

func labelSandbox(t *testing.T, s api.TaskStatus) string {
	t.Helper()
	if s.Labels != nil {
		for _, l := range s.Labels.Labels {
			if l.Key == sandboxLabel {
				return l.Value
			}
		}
	}
	t.Fatalf("status %s has no sandbox label", s.State)
	return ""
}
