package builtin_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/pkgs"
	"github.com/atoll/atoll/pkgs/builtin"
)

// TestBuiltinPackages: every built-in package loads, renders with its defaults (or, where
// an option has no safe default, is refused naming it) into a valid app or group with the
// apps expected, and names what it installs in its notes.
func TestBuiltinPackages(t *testing.T) {
	repo, err := pkgs.LoadFS(builtin.FS(), builtin.Name, builtin.URI)
	if err != nil {
		t.Fatalf("the built-in repository does not load: %v", err)
	}
	cat := pkgs.NewCatalog(repo)
	tests := []struct {
		name      string
		framework bool
		options   string
		// apps are the ids of the apps the package installs with options.
		apps []string
		// defaultsRefused is the option path an install with the defaults is refused for.
		defaultsRefused string
	}{
		{"cassandra", false, ``, []string{"/cassandra"}, ""},
		{"chronos", true, ``, []string{"/chronos-user"}, ""},
		{"jenkins", false, ``, []string{"/jenkins"}, ""},
		{"kafka", false, ``, []string{"/kafka/broker1", "/kafka/broker2", "/kafka/broker3"}, ""},
		{"marathon", true, ``, []string{"/marathon-user"}, ""},
		{"nginx", false, `{"nginx": {"vhost": "www.example.test"}}`, []string{"/nginx"}, ""},
		{"postgresql", false, `{"postgresql": {"password": "s3cret-enough"}}`, []string{"/postgresql"}, "postgresql"},
		{"redis", false, ``, []string{"/redis"}, ""},
		{"spark", false, `{"history": {"enabled": true}, "worker": {"count": 3}}`, []string{"/spark/master", "/spark/worker", "/spark/history"}, ""},
		{"zookeeper", false, ``, []string{"/zookeeper/node1", "/zookeeper/node2", "/zookeeper/node3"}, ""},
	}
	var names []string
	for _, p := range cat.Search("") {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	var want []string
	for _, tt := range tests {
		want = append(want, tt.name)
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("built-in packages %v, want %v", names, want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := cat.Resolve(tt.name, "")
			if err != nil {
				t.Fatal(err)
			}
			if p.Framework != tt.framework || p.PreInstallNotes == "" || p.PostInstallNotes == "" || p.PostUninstallNotes == "" {
				t.Errorf("framework %v (want %v), notes %q / %q / %q", p.Framework, tt.framework, p.PreInstallNotes, p.PostInstallNotes, p.PostUninstallNotes)
			}
			_, err = p.Render(nil, "")
			var oe *pkgs.OptionsError
			switch {
			case tt.defaultsRefused == "" && err != nil:
				t.Errorf("render with the defaults: %v", err)
			case tt.defaultsRefused != "" && (!errors.As(err, &oe) || !strings.Contains(err.Error(), tt.defaultsRefused)):
				t.Errorf("render with the defaults: %v, want an options error naming %s", err, tt.defaultsRefused)
			}
			r, err := p.Render(json.RawMessage(tt.options), "")
			if err != nil {
				t.Fatalf("render with %s: %v", tt.options, err)
			}
			var ids []string
			if r.Group != nil {
				for _, a := range r.Group.AllApps() {
					ids = append(ids, a.ID)
					if a.Labels[universe.LabelName] != tt.name {
						t.Errorf("app %s lacks the package label: %v", a.ID, a.Labels)
					}
				}
			} else {
				ids = []string{r.App.ID}
				if tt.framework && r.App.Labels[universe.LabelFrameworkName] != strings.TrimPrefix(r.App.ID, "/") {
					t.Errorf("framework app %s registers as %q", r.App.ID, r.App.Labels[universe.LabelFrameworkName])
				}
			}
			if !reflect.DeepEqual(ids, tt.apps) {
				t.Errorf("apps %v, want %v", ids, tt.apps)
			}
		})
	}
}

// TestBuiltinImageOverride: every package that runs an image runs service.docker-image
// instead when it is given (a mirror in a private registry), in every app.
func TestBuiltinImageOverride(t *testing.T) {
	repo, err := pkgs.LoadFS(builtin.FS(), builtin.Name, builtin.URI)
	if err != nil {
		t.Fatal(err)
	}
	cat := pkgs.NewCatalog(repo)
	const mirror = "registry.example.test:5000/mirror/image:1"
	for _, name := range []string{"cassandra", "jenkins", "kafka", "nginx", "postgresql", "redis", "spark", "zookeeper"} {
		t.Run(name, func(t *testing.T) {
			p, err := cat.Resolve(name, "")
			if err != nil {
				t.Fatal(err)
			}
			options := `{"service": {"docker-image": "` + mirror + `"}, "postgresql": {"password": "long-enough"}}`
			if name != "postgresql" {
				options = `{"service": {"docker-image": "` + mirror + `"}}`
			}
			r, err := p.Render(json.RawMessage(options), "")
			if err != nil {
				t.Fatal(err)
			}
			apps := []*marathon.App{r.App}
			if r.Group != nil {
				apps = r.Group.AllApps()
			}
			for _, a := range apps {
				if a.Container == nil || a.Container.Docker == nil || a.Container.Docker.Image != mirror {
					t.Errorf("app %s runs %+v, want %s", a.ID, a.Container, mirror)
				}
			}
		})
	}
}
