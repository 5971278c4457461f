package services_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// corpus returns the path of a file in ../shared/corpus, skipping the test when the
// corpus is absent (a fresh clone has no ../shared).
func corpus(t testing.TB, rel string) string {
	t.Helper()
	path := filepath.Join("..", "..", "..", "shared", "corpus", rel)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("corpus file %s not available: %v", rel, err)
	}
	return path
}

type groupView struct {
	ID           string      `json:"id"`
	Dependencies []string    `json:"dependencies"`
	Apps         []appDef    `json:"apps"`
	Groups       []groupView `json:"groups"`
}

type appDef struct {
	ID        string `json:"id"`
	Instances int    `json:"instances"`
}

func (g groupView) appIDs() []string {
	var ids []string
	for _, a := range g.Apps {
		ids = append(ids, a.ID)
	}
	for _, sub := range g.Groups {
		ids = append(ids, sub.appIDs()...)
	}
	return ids
}

func TestGroupDependencies(t *testing.T) {
	c := newCluster(t, 1)
	group := `{"id": "/shop", "groups": [
		{"id": "db", "apps": [{"id": "pg", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}]},
		{"id": "web", "dependencies": ["/shop/db"], "apps": [
			{"id": "front", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "dependencies": ["/shop/web/api"]},
			{"id": "api", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}]}]}`
	var plan struct {
		Steps []struct {
			Actions []struct {
				Action string `json:"action"`
				App    string `json:"app"`
			} `json:"actions"`
		} `json:"steps"`
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/groups/shop?dryRun=true", group, &plan)
	var got [][]string
	for _, step := range plan.Steps {
		var apps []string
		for _, a := range step.Actions {
			apps = append(apps, a.Action+" "+a.App)
		}
		got = append(got, apps)
	}
	want := [][]string{{"StartApplication /shop/db/pg"}, {"StartApplication /shop/web/api"}, {"StartApplication /shop/web/front"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dry run steps %q, want %q", got, want)
	}
	if status, body := c.call("GET", "/v2/apps/shop/db/pg", nil, nil); status != http.StatusNotFound {
		t.Errorf("a dry run created the app: %d %s", status, body)
	}

	c.mustCall(http.StatusCreated, "POST", "/v2/groups", group, nil)
	pg := c.waitDeployed("/shop/db/pg", 1, false)
	api := c.waitDeployed("/shop/web/api", 1, false)
	front := c.waitDeployed("/shop/web/front", 1, false)
	if !(pg.App.Tasks[0].StartedAt <= api.App.Tasks[0].StagedAt && api.App.Tasks[0].StartedAt <= front.App.Tasks[0].StagedAt) {
		t.Errorf("tasks did not start in dependency order: pg started %s, api staged %s started %s, front staged %s",
			pg.App.Tasks[0].StartedAt, api.App.Tasks[0].StagedAt, api.App.Tasks[0].StartedAt, front.App.Tasks[0].StagedAt)
	}
	var g groupView
	c.mustCall(http.StatusOK, "GET", "/v2/groups/shop", nil, &g)
	if ids := g.appIDs(); !reflect.DeepEqual(ids, []string{"/shop/db/pg", "/shop/web/api", "/shop/web/front"}) {
		t.Errorf("group apps %q", ids)
	}
	if len(g.Groups) != 2 || !reflect.DeepEqual(g.Groups[1].Dependencies, []string{"/shop/db"}) {
		t.Errorf("group %+v", g)
	}

	// PUT replaces the group: front is left out, so it is removed.
	c.mustCall(http.StatusOK, "PUT", "/v2/groups/shop/web", `{"apps": [{"id": "api", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}]}`, nil)
	eventually(t, "front removed", func() error {
		if status, _ := c.call("GET", "/v2/apps/shop/web/front", nil, nil); status != http.StatusNotFound {
			return fmt.Errorf("front still there: %d", status)
		}
		return nil
	})
	c.mustCall(http.StatusOK, "DELETE", "/v2/groups/shop", nil, nil)
	eventually(t, "group removed", func() error {
		if status, _ := c.call("GET", "/v2/groups/shop", nil, nil); status != http.StatusNotFound {
			return fmt.Errorf("group still there: %d", status)
		}
		var tasks struct {
			Tasks []taskView `json:"tasks"`
		}
		c.mustCall(http.StatusOK, "GET", "/v2/tasks", nil, &tasks)
		if len(tasks.Tasks) != 0 {
			return fmt.Errorf("%d tasks left", len(tasks.Tasks))
		}
		return nil
	})
}

func TestRealGroupsPostAndListBack(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"real-100-apps.json", "real-1000-apps.json", "sleep-group.json"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(corpus(t, "marathon/groups/"+name))
			if err != nil {
				t.Fatal(err)
			}
			var in groupView
			if err := json.Unmarshal(data, &in); err != nil {
				t.Fatal(err)
			}
			// No agent: the deployment waits, which is enough to list the group back.
			c := newCluster(t, 0)
			c.mustCall(http.StatusCreated, "POST", "/v2/groups", string(data), nil)
			var root groupView
			c.mustCall(http.StatusOK, "GET", "/v2/groups", nil, &root)
			var apps struct {
				Apps []appDef `json:"apps"`
			}
			c.mustCall(http.StatusOK, "GET", "/v2/apps", nil, &apps)
			if got, want := len(root.appIDs()), len(in.appIDs()); got != want || len(apps.Apps) != want {
				t.Errorf("posted %d apps; the group lists %d, /v2/apps %d", want, got, len(apps.Apps))
			}
		})
	}
}

// TestGroupServicePorts: apps created together get different service ports, and a group
// update that only changes instances keeps them, so it scales rather than restarts.
func TestGroupServicePorts(t *testing.T) {
	c := newCluster(t, 1)
	group := func(instances int) string {
		return fmt.Sprintf(`{"id": "/ports", "apps": [
			{"id": "a", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": %d},
			{"id": "b", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": %d, "portDefinitions": [{"port": 0}, {"port": 0}]}]}`, instances, instances)
	}
	c.mustCall(http.StatusCreated, "POST", "/v2/groups", group(1), nil)
	a := c.waitDeployed("/ports/a", 1, false)
	b := c.waitDeployed("/ports/b", 1, false)
	got := append(append([]uint32{}, a.App.Tasks[0].ServicePorts...), b.App.Tasks[0].ServicePorts...)
	if want := []uint32{10000, 10001, 10002}; !reflect.DeepEqual(got, want) {
		t.Errorf("service ports %v, want %v", got, want)
	}
	var plan struct {
		Steps []struct {
			Actions []struct {
				Action string `json:"action"`
				App    string `json:"app"`
			} `json:"actions"`
		} `json:"steps"`
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/groups/ports?dryRun=true", group(2), &plan)
	for _, step := range plan.Steps {
		for _, action := range step.Actions {
			if action.Action != "ScaleApplication" {
				t.Errorf("changing instances plans %s of %s, want ScaleApplication", action.Action, action.App)
			}
		}
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/groups/ports", group(2), nil)
	after := c.waitDeployed("/ports/a", 2, false)
	if after.App.Tasks[0].ID != a.App.Tasks[0].ID {
		t.Errorf("scaling restarted the first task: %s, then %s", a.App.Tasks[0].ID, after.App.Tasks[0].ID)
	}
}
