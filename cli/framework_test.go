package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/master"
)

func TestFrameworkSetup(t *testing.T) {
	remote := func(masterURL, listen, namespace string) host.RemoteConfig {
		c := host.DefaultRemoteConfig()
		c.Master, c.Listen, c.Namespace = masterURL, listen, namespace
		return c
	}
	defaults := func(kind frameworkKind) frameworkFlags {
		def := frameworkDefaults[kind]
		return frameworkFlags{name: def.name, role: "*", listen: def.listen, logs: logFlags{level: "info", format: "text"}}
	}
	tests := []struct {
		name      string
		kind      frameworkKind
		change    func(*frameworkFlags)
		listenSet bool
		env       map[string]string
		want      frameworkSetup
		wantErr   string
	}{
		{name: "services defaults", kind: kindServices,
			want: frameworkSetup{host: remote(defaultAddr, "127.0.0.1:8080", "services.marathon-user"), name: "marathon-user", role: "*"}},
		{name: "jobs defaults", kind: kindJobs,
			want: frameworkSetup{host: remote(defaultAddr, "127.0.0.1:4400", "jobs.chronos-user"), name: "chronos-user", role: "*"}},
		{name: "every flag", kind: kindServices, listenSet: true,
			change: func(f *frameworkFlags) {
				f.master, f.name, f.role, f.principal, f.listen, f.namespace = "http://198.18.0.1:5050/", "mine", "web", "ops", "0.0.0.0:9090", "my.state"
				f.logs = logFlags{level: "debug", format: "json"}
			},
			want: frameworkSetup{host: remote("http://198.18.0.1:5050", "0.0.0.0:9090", "my.state"), name: "mine", role: "web", principal: "ops",
				logs: logOptions{level: slog.LevelDebug, json: true}}},
		{name: "master from the environment", kind: kindJobs, env: map[string]string{addrEnv: "198.18.0.2:5050"},
			want: frameworkSetup{host: remote("http://198.18.0.2:5050", "127.0.0.1:4400", "jobs.chronos-user"), name: "chronos-user", role: "*"}},
		{name: "run as a Marathon app", kind: kindServices, env: map[string]string{"PORT0": "31005", "HOST": "agent-1"},
			want: frameworkSetup{host: func() host.RemoteConfig {
				c := remote(defaultAddr, ":31005", "services.marathon-user")
				c.AdvertiseHost = "agent-1"
				return c
			}(), name: "marathon-user", role: "*"}},
		{name: "--listen over $PORT0", kind: kindServices, listenSet: true, env: map[string]string{"PORT0": "31005"},
			change: func(f *frameworkFlags) { f.listen = "127.0.0.1:8181" },
			want:   frameworkSetup{host: remote(defaultAddr, "127.0.0.1:8181", "services.marathon-user"), name: "marathon-user", role: "*"}},
		{name: "namespace from any name", kind: kindServices, change: func(f *frameworkFlags) { f.name = "My Marathon/2" },
			want: frameworkSetup{host: remote(defaultAddr, "127.0.0.1:8080", "services.my-marathon-2"), name: "My Marathon/2", role: "*"}},
		{name: "built-in namespace", kind: kindServices, change: func(f *frameworkFlags) { f.namespace = "services" },
			wantErr: `key-value namespace "services" belongs to the built-in services framework and cannot be used through the key-value API: give the framework a namespace of its own`},
		{name: "built-in jobs namespace", kind: kindJobs, change: func(f *frameworkFlags) { f.namespace = "jobs" },
			wantErr: `key-value namespace "jobs" belongs to the built-in jobs framework and cannot be used through the key-value API: give the framework a namespace of its own`},
		{name: "bad namespace", kind: kindJobs, change: func(f *frameworkFlags) { f.namespace = "Jobs!" },
			wantErr: `key-value namespace "Jobs!": want 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit`},
		{name: "empty name", kind: kindJobs, change: func(f *frameworkFlags) { f.name = "" }, wantErr: "--name: empty"},
		{name: "bad master", kind: kindServices, change: func(f *frameworkFlags) { f.master = "ftp://m" }, wantErr: `master URL "ftp://m": want a URL like http://host:5050`},
		{name: "bad listen", kind: kindServices, listenSet: true, change: func(f *frameworkFlags) { f.listen = "8080" }, wantErr: `listen address "8080": address 8080: missing port in address`},
		{name: "bad log level", kind: kindServices, change: func(f *frameworkFlags) { f.logs.level = "loud" }, wantErr: `log-level "loud": want debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestApp(t, tt.env)
			flags := defaults(tt.kind)
			if tt.change != nil {
				tt.change(&flags)
			}
			got, err := a.frameworkSetup(tt.kind, flags, tt.listenSet)
			if tt.wantErr != "" {
				var usage *usageError
				if !errors.As(err, &usage) || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want the usage error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.host.Logger = got.host.Logger
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("setup\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// listeningURL finds in the logs where the framework's API listens.
var listeningURL = regexp.MustCompile(`msg="framework API listening" .*url=(http://\S+)`)

// TestFrameworkCommand runs `atoll framework services|jobs` against a master running the
// built-in frameworks: each registers a framework of its own next to them and serves its
// API, and on SIGTERM stops with exit code 0, disconnected from the master.
func TestFrameworkCommand(t *testing.T) {
	tests := []struct {
		kind, name, ready string
	}{
		{"services", "marathon-user", "/v2/info"},
		{"jobs", "chronos-user", "/v1/scheduler/jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			ts := master.NewTestServer(t, func(c *master.Config) {
				c.Extensions = append(c.Extensions, func(m *master.Master) {
					services.Attach(m, services.Config{Logger: c.Logger})
					jobs.Attach(m, jobs.Config{Logger: c.Logger})
				})
			})
			a := newTestApp(t, nil)
			exit := make(chan int, 1)
			go func() {
				exit <- a.run(context.Background(), []string{"framework", tt.kind, "--master", ts.URL, "--listen", "127.0.0.1:0", "--log-level", "debug"})
			}()
			var url string
			eventually(t, "the framework's API listening", func() error {
				m := listeningURL.FindStringSubmatch(a.stderr.String())
				if m == nil {
					return errors.New("not in the logs yet")
				}
				url = m[1]
				if status, body := httpGet(t, url+tt.ready); status != http.StatusOK {
					return fmt.Errorf("GET %s = %d %s", tt.ready, status, body)
				}
				return nil
			})
			var id string
			eventually(t, "the built-in frameworks and the new one connected", func() error {
				list, err := api.NewClient(ts.URL).GetFrameworks(context.Background())
				if err != nil {
					return err
				}
				names := map[string]string{}
				for _, f := range list.Frameworks {
					if f.Connected {
						names[f.FrameworkInfo.Name] = f.FrameworkInfo.ID.Value
					}
				}
				if len(names) != 3 || names["marathon"] == "" || names["chronos"] == "" || names[tt.name] == "" {
					return fmt.Errorf("connected frameworks %v, want marathon, chronos and %s", names, tt.name)
				}
				id = names[tt.name]
				return nil
			})

			a.interrupt()
			select {
			case code := <-exit:
				if code != 0 {
					t.Fatalf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, a.stderr)
				}
			case <-time.After(testTimeout):
				t.Fatalf("still running %v after SIGTERM", testTimeout)
			}
			eventually(t, "the framework disconnected", func() error {
				if f, ok := ts.Store().Framework(id); !ok || f.Connected {
					return fmt.Errorf("framework %s recorded %v, connected", id, ok)
				}
				return nil
			})
			if _, err := http.Get(url + tt.ready); err == nil {
				t.Errorf("the framework's API still answers after the command ended")
			}
		})
	}
}
