package services_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/master/state"
)

// standalone is a services framework run by itself against the cluster's master, over
// HTTP, as `atoll framework services` runs it; calls go to its own API.
type standalone struct {
	*cluster
	stop func()
}

// startStandalone starts a services framework named name with role, keeping its state
// in namespace, and waits until its API answers; it stops when the test ends.
func (c *cluster) startStandalone(name, role, namespace string) *standalone {
	c.t.Helper()
	r := host.StartTestRemote(c.t, c.master.URL, namespace, func(h host.Host, logger *slog.Logger) {
		services.New(h, services.Config{Logger: logger, Name: name, Role: role, TickInterval: 100 * time.Millisecond})
	})
	sc := &standalone{cluster: &cluster{t: c.t, master: c.master, base: r.URL}, stop: r.Stop}
	sc.waitReady()
	return sc
}

// waitReady waits until the framework has loaded its state.
func (c *cluster) waitReady() {
	c.t.Helper()
	eventually(c.t, "the framework's API ready", func() error {
		if status, body := c.call("GET", "/v2/info", nil, nil); status != http.StatusOK {
			return fmt.Errorf("GET /v2/info = %d %s", status, body)
		}
		return nil
	})
}

// frameworkID reads the framework id from /v2/info.
func (c *cluster) frameworkID() string {
	c.t.Helper()
	var info struct {
		FrameworkID string `json:"frameworkId"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/info", nil, &info)
	if info.FrameworkID == "" {
		c.t.Fatalf("%s/v2/info has no framework id", c.url())
	}
	return info.FrameworkID
}

// appIDs lists the ids of /v2/apps.
func (c *cluster) appIDs() []string {
	c.t.Helper()
	var list struct {
		Apps []struct {
			ID string `json:"id"`
		} `json:"apps"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/apps", nil, &list)
	var ids []string
	for _, a := range list.Apps {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return ids
}

// taskIDs are the ids of an app's tasks, sorted.
func taskIDs(v appView) []string {
	var ids []string
	for _, task := range v.App.Tasks {
		ids = append(ids, task.ID)
	}
	slices.Sort(ids)
	return ids
}

// masterTasks returns the master's record of a framework's tasks: the live ones by id
// with their state and role, and the ids of the completed ones.
func (c *cluster) masterTasks(frameworkID string) (map[string]string, []string) {
	live := map[string]string{}
	snap := c.master.Store().Snapshot()
	for _, task := range snap.TasksByFramework(frameworkID) {
		live[task.ID] = string(task.State) + " " + task.Role
	}
	var completed []string
	for _, task := range snap.CompletedTasksByFramework(frameworkID) {
		completed = append(completed, task.ID)
	}
	return live, completed
}

// keys are the keys of entries.
func keys(entries []*state.KVEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key)
	}
	return out
}

// TestStandaloneFramework runs a second services framework as a process of its own, next
// to the built-in one: it registers over HTTP with a role of its own and runs its own
// app on the agents with that role, under its own framework id and in its own
// namespace, leaving the built-in framework's apps alone; restarted, and after DELETE
// /v2/leader, it comes back as the same framework and adopts its tasks instead of
// launching new ones.
func TestStandaloneFramework(t *testing.T) {
	c := newCluster(t, 0)
	c.simulatedAgentsT(2)
	const app = `{"id": "%s", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": %d}`
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", fmt.Sprintf(app, "/builtin", 1), nil)
	builtinTasks := taskIDs(c.waitDeployed("/builtin", 1, false))
	builtinID := c.frameworkID()

	const namespace = "services.marathon-user"
	sc := c.startStandalone("marathon-user", "web", namespace)
	sc.mustCall(http.StatusCreated, "POST", "/v2/apps", fmt.Sprintf(app, "/web", 3), nil)
	webTasks := taskIDs(sc.waitDeployed("/web", 3, false))
	userID := sc.frameworkID()
	if userID == builtinID {
		t.Fatalf("the standalone framework has the built-in one's id %s", userID)
	}

	// The master runs two frameworks, each with exactly its own tasks.
	frameworks, err := api.NewClient(c.master.URL).GetFrameworks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range frameworks.Frameworks {
		if !f.Active {
			t.Errorf("framework %s (%s) is not active", f.FrameworkInfo.Name, f.FrameworkInfo.ID.Value)
		}
		got[f.FrameworkInfo.Name] = f.FrameworkInfo.ID.Value + " " + strings.Join(f.FrameworkInfo.Roles, ",")
	}
	if want := map[string]string{"marathon": builtinID + " *", "marathon-user": userID + " web"}; !maps.Equal(got, want) {
		t.Fatalf("frameworks (id and roles) %v, want %v", got, want)
	}
	for _, tc := range []struct {
		framework, role string
		tasks           []string
	}{{builtinID, "*", builtinTasks}, {userID, "web", webTasks}} {
		live, completed := c.masterTasks(tc.framework)
		if !sameRunning(live, tc.role, tc.tasks) || len(completed) != 0 {
			t.Errorf("framework %s: the master has live tasks %v and completed %v, want %v running with role %s and none completed", tc.framework, live, completed, tc.tasks, tc.role)
		}
	}
	var web struct {
		App struct {
			Role string `json:"role"`
		} `json:"app"`
	}
	if sc.mustCall(http.StatusOK, "GET", "/v2/apps/web", nil, &web); web.App.Role != "web" {
		t.Errorf("/web has role %q, want the framework's web", web.App.Role)
	}
	if ids := c.appIDs(); !slices.Equal(ids, []string{"/builtin"}) {
		t.Errorf("the built-in framework's apps: %v, want [/builtin]", ids)
	}
	if ids := sc.appIDs(); !slices.Equal(ids, []string{"/web"}) {
		t.Errorf("the standalone framework's apps: %v, want [/web]", ids)
	}
	store := c.master.Store()
	if got := keys(store.KVList(namespace, "app/")); !slices.Equal(got, []string{"app//web"}) {
		t.Errorf("apps in namespace %s: %v, want [app//web]", namespace, got)
	}
	if got := keys(store.KVList("services", "app/")); !slices.Equal(got, []string{"app//builtin"}) {
		t.Errorf("apps in namespace services: %v, want [app//builtin]", got)
	}

	// Stopped, the framework is disconnected and its tasks keep running; started again,
	// it re-registers with the id it recorded and adopts them.
	sc.stop()
	eventually(t, "the standalone framework disconnected", func() error {
		if f, ok := store.Framework(userID); !ok || f.Connected {
			return fmt.Errorf("framework %s recorded %v, connected", userID, ok)
		}
		return nil
	})
	sc = c.startStandalone("marathon-user", "web", namespace)
	if id := sc.frameworkID(); id != userID {
		t.Fatalf("restarted with framework id %s, want %s", id, userID)
	}
	if got := taskIDs(sc.waitDeployed("/web", 3, false)); !slices.Equal(got, webTasks) {
		t.Errorf("after the restart /web has tasks %v, want the same %v", got, webTasks)
	}
	live, completed := c.masterTasks(userID)
	if !sameRunning(live, "web", webTasks) || len(completed) != 0 {
		t.Errorf("after the restart the master has live tasks %v and completed %v, want %v running and none completed", live, completed, webTasks)
	}

	// DELETE /v2/leader starts the scheduler over: its event streams end, and it comes
	// back as the same framework with the same tasks.
	events := sc.events()
	var reply map[string]string
	sc.mustCall(http.StatusOK, "DELETE", "/v2/leader", nil, &reply)
	if reply["message"] != "Leadership abdicated" {
		t.Errorf("DELETE /v2/leader answered %v", reply)
	}
	deadline := time.After(testTimeout)
	for ended := false; !ended; {
		select {
		case _, ok := <-events:
			ended = !ok
		case <-deadline:
			t.Fatalf("/v2/events still open %v after DELETE /v2/leader", testTimeout)
		}
	}
	sc.waitReady()
	if id := sc.frameworkID(); id != userID {
		t.Fatalf("after abdicating the framework id is %s, want %s", id, userID)
	}
	if got := taskIDs(sc.waitDeployed("/web", 3, false)); !slices.Equal(got, webTasks) {
		t.Errorf("after abdicating /web has tasks %v, want the same %v", got, webTasks)
	}
	if ids := c.appIDs(); !slices.Equal(ids, []string{"/builtin"}) {
		t.Errorf("the built-in framework's apps at the end: %v, want [/builtin]", ids)
	}
	if got := taskIDs(c.waitDeployed("/builtin", 1, false)); !slices.Equal(got, builtinTasks) {
		t.Errorf("the built-in app's tasks at the end: %v, want %v", got, builtinTasks)
	}
}

// sameRunning says live (see masterTasks) holds exactly the tasks ids, all running with
// role.
func sameRunning(live map[string]string, role string, ids []string) bool {
	if len(live) != len(ids) {
		return false
	}
	for _, id := range ids {
		if live[id] != string(api.TaskRunning)+" "+role {
			return false
		}
	}
	return true
}
