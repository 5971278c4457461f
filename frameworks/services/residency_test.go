package services_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
)

// volumeHolder is a task of a resident app: its agent and its persistent volume.
type volumeHolder struct{ agent, persistenceID, containerPath string }

// volumeHolders are the live tasks of app with their persistent volumes, sorted.
func (c *cluster) volumeHolders(appID string) []volumeHolder {
	c.t.Helper()
	var out []volumeHolder
	for _, task := range c.master.Store().Tasks() {
		if task.Info.Labels.Get(api.LabelAppID) != appID || task.State.Terminal() {
			continue
		}
		for _, r := range task.Info.Resources {
			if r.Disk != nil && r.Disk.Persistence != nil {
				out = append(out, volumeHolder{task.AgentID, r.Disk.Persistence.ID, r.Disk.Volume.ContainerPath})
			}
		}
	}
	slices.SortFunc(out, func(a, b volumeHolder) int { return strings.Compare(a.persistenceID, b.persistenceID) })
	return out
}

// reservationCount is how many reservations of app the key-value table holds.
func (c *cluster) reservationCount(appID string) int {
	return len(c.master.Store().KVList("services", "reservation/"+appID+"@"))
}

// TestResidentAppKeepsItsVolumes: each instance of an app with a local persistent volume
// gets a volume (a disk resource with a persistence id) and a reservation on its agent;
// restarted, scaled down and up, its instances come back on the same agents with the same
// volumes; deleted, its reservations go.
func TestResidentAppKeepsItsVolumes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/db", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "disk": 1,
		"instances": 2, "container": {"type": "MESOS", "volumes": [{"containerPath": "data", "mode": "RW", "persistent": {"size": 5}}]}}`, nil)
	c.waitDeployed("/db", 2, false)
	first := c.volumeHolders("/db")
	if len(first) != 2 || first[0].persistenceID == first[1].persistenceID || first[0].containerPath != "data" || !strings.HasPrefix(first[0].persistenceID, "db#data#") {
		t.Fatalf("volumes %+v", first)
	}
	if n := c.reservationCount("/db"); n != 2 {
		t.Errorf("%d reservations, want 2", n)
	}
	var tasks struct {
		Tasks []taskView `json:"tasks"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/apps/db/tasks", nil, &tasks)
	before := map[string]bool{}
	for _, task := range tasks.Tasks {
		before[task.ID] = true
	}

	c.mustCall(http.StatusOK, "POST", "/v2/apps/db/restart", "", nil)
	eventually(t, "restarted on the same agents with the same volumes", func() error {
		v := c.app("/db")
		if len(v.App.Deployments) > 0 || v.App.TasksRunning != 2 {
			return fmt.Errorf("%d running, deployments %v", v.App.TasksRunning, v.App.Deployments)
		}
		for _, task := range v.App.Tasks {
			if before[task.ID] {
				return fmt.Errorf("task %s not replaced yet", task.ID)
			}
		}
		if got := c.volumeHolders("/db"); !slices.Equal(got, first) {
			return fmt.Errorf("volumes %+v, want %+v", got, first)
		}
		return nil
	})

	c.mustCall(http.StatusOK, "PUT", "/v2/apps/db", `{"instances": 0}`, nil)
	c.waitDeployed("/db", 0, false)
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/db", `{"instances": 3}`, nil)
	c.waitDeployed("/db", 3, false)
	third := c.volumeHolders("/db")
	if len(third) != 3 {
		t.Fatalf("volumes %+v", third)
	}
	kept := slices.DeleteFunc(slices.Clone(third), func(h volumeHolder) bool { return !slices.Contains(first, h) })
	if !slices.Equal(kept, first) {
		t.Errorf("after scaling down and up, volumes %+v, want %+v among them", third, first)
	}
	if n := c.reservationCount("/db"); n != 3 {
		t.Errorf("%d reservations, want 3", n)
	}

	c.mustCall(http.StatusOK, "DELETE", "/v2/apps/db", nil, nil)
	eventually(t, "reservations gone with the app", func() error {
		if n := c.reservationCount("/db"); n != 0 {
			return fmt.Errorf("%d reservations", n)
		}
		return nil
	})
}

// TestQueueSaysWhatAgentsLack: apps that join a named network or use a volume driver no
// agent has wait, and /v2/queue says why.
func TestQueueSaysWhatAgentsLack(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/net", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16,
		"networks": [{"mode": "container", "name": "dcos"}], "container": {"type": "MESOS"}}`, nil)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/px", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16,
		"container": {"type": "MESOS", "volumes": [{"containerPath": "data", "mode": "RW",
		"external": {"name": "px-1", "provider": "dvdi", "options": {"dvdi/driver": "pxd"}}}]}}`, nil)
	var queue queueView
	eventually(t, "both apps waiting, each for its reason", func() error {
		c.mustCall(http.StatusOK, "GET", "/v2/queue", nil, &queue)
		got := map[string]string{}
		for _, q := range queue.Queue {
			for _, r := range q.Summary.RejectSummaryLastOffers {
				if r.Declined > 0 {
					got[q.App.ID] = r.Reason
				}
			}
		}
		if want := map[string]string{"/net": "UnavailableNetwork", "/px": "UnavailableVolumeDriver"}; fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("declined for %v, want %v", got, want)
		}
		return nil
	})
}

// TestSecrets: the secret store takes, lists (names only) and removes secrets; an app
// naming a missing secret is refused, so is its scaling once the secret is gone; a task
// gets its secret's value in its environment; the replacement of a task killed after
// the secret was removed does not launch, and the app says why.
func TestSecrets(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	out := t.TempDir()
	app := `{"id": "/s", "cmd": "echo \"$PW\" > ` + out + `/$MESOS_TASK_ID; exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": %d,
		"secrets": {"pw": {"source": "/db/pw"}}, "env": {"PW": {"secret": "pw"}}}`
	status, body := c.call("POST", "/v2/apps", fmt.Sprintf(app, 1), nil)
	if want := `{"message":"Object is not valid","details":[{"path":"/secrets","errors":["/s: secret pw: /db/pw is not in the secret store (PUT /v1/secrets/db/pw sets it)"]}]}`; status != http.StatusUnprocessableEntity || strings.TrimSpace(string(body)) != want {
		t.Errorf("app with a missing secret: %d %s, want 422 %s", status, body, want)
	}

	c.mustCall(http.StatusBadRequest, "PUT", "/v1/secrets/db/pw%21", `{"value": "x"}`, nil)
	c.mustCall(http.StatusBadRequest, "PUT", "/v1/secrets/db/pw", `{"other": "x"}`, nil)
	c.mustCall(http.StatusCreated, "PUT", "/v1/secrets/db/pw", `{"value": "first"}`, nil)
	c.mustCall(http.StatusNoContent, "PUT", "/v1/secrets/db/pw", `{"value": "s3cret"}`, nil)
	var list struct {
		Secrets []string `json:"secrets"`
	}
	c.mustCall(http.StatusOK, "GET", "/v1/secrets", nil, &list)
	if !slices.Equal(list.Secrets, []string{"db/pw"}) {
		t.Errorf("secrets %q", list.Secrets)
	}

	c.mustCall(http.StatusCreated, "POST", "/v2/apps", fmt.Sprintf(app, 1), nil)
	v := c.waitDeployed("/s", 1, false)
	file := out + "/" + v.App.Tasks[0].ID
	eventually(t, "the task wrote its secret", func() error {
		if got, err := os.ReadFile(file); err != nil || string(got) != "s3cret\n" {
			return fmt.Errorf("%q, %v", got, err)
		}
		return nil
	})

	c.mustCall(http.StatusNoContent, "DELETE", "/v1/secrets/db/pw", nil, nil)
	c.mustCall(http.StatusNotFound, "DELETE", "/v1/secrets/db/pw", nil, nil)
	c.mustCall(http.StatusUnprocessableEntity, "PUT", "/v2/apps/s", `{"instances": 2}`, nil)
	c.mustCall(http.StatusOK, "POST", "/v2/tasks/delete", map[string][]string{"ids": {v.App.Tasks[0].ID}}, nil)
	var failure struct {
		App struct {
			LastTaskFailure struct {
				State   string `json:"state"`
				Message string `json:"message"`
			} `json:"lastTaskFailure"`
			TasksRunning int `json:"tasksRunning"`
		} `json:"app"`
	}
	eventually(t, "its replacement held back, saying why", func() error {
		c.mustCall(http.StatusOK, "GET", "/v2/apps/s", nil, &failure)
		f := failure.App.LastTaskFailure
		if want := "not launched: secret pw: /db/pw is not in the secret store (PUT /v1/secrets/db/pw sets it)"; f.State != "TASK_ERROR" || f.Message != want {
			return fmt.Errorf("last failure %+v, want %q", f, want)
		}
		// The killed task may still be stopping when its replacement is refused.
		if n := failure.App.TasksRunning; n != 0 {
			return fmt.Errorf("%d running, want 0", n)
		}
		return nil
	})
}
