package lb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// waitTimeout bounds every wait on the cluster: generous, for a loaded 2-core machine.
const waitTimeout = 60 * time.Second

func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func busybox(t testing.TB) string {
	t.Helper()
	const path = "/bin/busybox"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (apt-get install busybox-static): %v", path, err)
		}
		t.Skipf("%s is missing (apt-get install busybox-static)", path)
	}
	return path
}

// TestWatcherFollowsMaster: with a real master and agent, the watcher's tables route a
// labelled app's healthy tasks; they follow a scale up and down, and a client loop sees no
// failed request through a rolling upgrade.
func TestWatcherFollowsMaster(t *testing.T) {
	bb := busybox(t)
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			cfg := services.DefaultConfig()
			cfg.Logger, cfg.TickInterval, cfg.EventKeepAlive = c.Logger, 100*time.Millisecond, time.Second
			services.Attach(m, cfg)
		})
	})
	agent.TestAgent(t, ts.Masters)

	s, _ := newTestServer(t)
	wcfg := DefaultWatcherConfig()
	wcfg.Logger = testLogger(t)
	wcfg.Masters = ts.Masters()
	wcfg.Refresh = 5 * time.Second
	wcfg.SilenceTimeout = 5 * time.Second
	w, err := NewWatcher(wcfg, s.Swap)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	port := freePort(t)
	app := func(instances int, version string) string {
		return fmt.Sprintf(`{"id": "/web", "cpus": 0.1, "mem": 16, "instances": %d,
			"cmd": "echo %s $HOSTNAME:$PORT0 > index.html; exec %s httpd -f -p $PORT0 -h .",
			"portDefinitions": [{"port": 0}],
			"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
				"intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 3, "delaySeconds": 0}],
			"labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_PORT": "%d", "HAPROXY_0_VHOST": "web.example"}}`,
			instances, version, bb, port)
	}
	call := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s = %s %s", method, path, resp.Status, data)
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	// seen sends requests through the load balancer and returns the distinct answers.
	seen := func() (map[string]bool, error) {
		out := map[string]bool{}
		for range 12 {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				return nil, err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return nil, fmt.Errorf("status %d %q", resp.StatusCode, body)
			}
			out[strings.TrimSpace(string(body))] = true
		}
		return out, nil
	}
	want := func(n int, version string) func() error {
		return func() error {
			got, err := seen()
			if err != nil {
				return err
			}
			for answer := range got {
				if !strings.HasPrefix(answer, version+" ") {
					return fmt.Errorf("answers %v, want only %s", got, version)
				}
			}
			if len(got) != n {
				return fmt.Errorf("%d backends answered (%v), want %d", len(got), got, n)
			}
			return nil
		}
	}

	call("POST", "/v2/apps", app(2, "v1"))
	eventually(t, "2 tasks behind the load balancer", want(2, "v1"))
	call("PUT", "/v2/apps/web", app(3, "v1"))
	eventually(t, "scaled up to 3", want(3, "v1"))
	call("PUT", "/v2/apps/web", app(1, "v1"))
	eventually(t, "scaled down to 1", want(1, "v1"))
	// The scale-down's deployment ends once the killed tasks have ended, which can be
	// after the load balancer dropped them: a change before then is refused (409).
	eventually(t, "no deployment in progress", func() error {
		resp, err := http.Get(ts.URL + "/v2/deployments")
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(data)) != "[]" {
			return fmt.Errorf("GET /v2/deployments = %d %s", resp.StatusCode, data)
		}
		return nil
	})

	// A rolling upgrade under a client loop on the virtual host port.
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var loop sync.WaitGroup
	loop.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr().String()+"/", nil)
			req.Host = "web.example"
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				lastErr.Store(fmt.Sprintf("%d %s", resp.StatusCode, body))
				continue
			}
			ok.Add(1)
		}
	})
	call("PUT", "/v2/apps/web", app(2, "v2"))
	eventually(t, "upgraded to v2", want(2, "v2"))
	close(stop)
	loop.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("rolling upgrade: %d requests failed (last: %v), %d succeeded; want 0 failed", failed.Load(), lastErr.Load(), ok.Load())
	}
	if w.Tables() < 2 {
		t.Errorf("%d tables applied", w.Tables())
	}
}
