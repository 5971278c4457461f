package master

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// The /master/state document keeps the shape of Mesos's state.json, which tools such as
// Mesos-DNS and dashboards read: flat resources, seconds as floats, "slaves".

type stateJSON struct {
	Version                string          `json:"version"`
	StartTime              float64         `json:"start_time"`
	ElectedTime            float64         `json:"elected_time,omitempty"`
	ID                     string          `json:"id"`
	PID                    string          `json:"pid"`
	Hostname               string          `json:"hostname"`
	ActivatedSlaves        int             `json:"activated_slaves"`
	DeactivatedSlaves      int             `json:"deactivated_slaves"`
	UnreachableSlaves      int             `json:"unreachable_slaves"`
	Leader                 string          `json:"leader,omitempty"`
	LeaderInfo             *api.MasterInfo `json:"leader_info,omitempty"`
	Cluster                string          `json:"cluster,omitempty"`
	Flags                  map[string]any  `json:"flags"`
	Slaves                 []slaveJSON     `json:"slaves"`
	Frameworks             []frameworkJSON `json:"frameworks"`
	CompletedFrameworks    []frameworkJSON `json:"completed_frameworks"`
	OrphanTasks            []taskJSON      `json:"orphan_tasks"`
	UnregisteredFrameworks []string        `json:"unregistered_frameworks"`
}

type slaveJSON struct {
	ID                  string         `json:"id"`
	Hostname            string         `json:"hostname"`
	Port                int            `json:"port"`
	Attributes          map[string]any `json:"attributes"`
	PID                 string         `json:"pid"`
	RegisteredTime      float64        `json:"registered_time"`
	ReregisteredTime    float64        `json:"reregistered_time,omitempty"`
	Resources           map[string]any `json:"resources"`
	UsedResources       map[string]any `json:"used_resources"`
	OfferedResources    map[string]any `json:"offered_resources"`
	UnreservedResources map[string]any `json:"unreserved_resources"`
	Active              bool           `json:"active"`
	Deactivated         bool           `json:"deactivated"`
	Version             string         `json:"version"`
	Capabilities        []string       `json:"capabilities"`
}

type frameworkJSON struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	PID              string         `json:"pid,omitempty"`
	UsedResources    map[string]any `json:"used_resources"`
	OfferedResources map[string]any `json:"offered_resources"`
	Capabilities     []string       `json:"capabilities"`
	Hostname         string         `json:"hostname"`
	WebuiURL         string         `json:"webui_url"`
	Active           bool           `json:"active"`
	Connected        bool           `json:"connected"`
	Recovered        bool           `json:"recovered"`
	User             string         `json:"user"`
	FailoverTimeout  float64        `json:"failover_timeout"`
	Checkpoint       bool           `json:"checkpoint"`
	RegisteredTime   float64        `json:"registered_time"`
	UnregisteredTime float64        `json:"unregistered_time"`
	Role             string         `json:"role"`
	Roles            []string       `json:"roles"`
	Tasks            []taskJSON     `json:"tasks"`
	UnreachableTasks []taskJSON     `json:"unreachable_tasks"`
	CompletedTasks   []taskJSON     `json:"completed_tasks"`
	Offers           []offerJSON    `json:"offers"`
	Executors        []any          `json:"executors"`
	Labels           []api.Label    `json:"labels,omitempty"`
}

type offerJSON struct {
	ID          string         `json:"id"`
	FrameworkID string         `json:"framework_id"`
	SlaveID     string         `json:"slave_id"`
	Resources   map[string]any `json:"resources"`
}

type taskJSON struct {
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	FrameworkID string             `json:"framework_id"`
	ExecutorID  string             `json:"executor_id"`
	SlaveID     string             `json:"slave_id"`
	State       api.TaskState      `json:"state"`
	Resources   map[string]any     `json:"resources"`
	Role        string             `json:"role"`
	Statuses    []api.TaskStatus   `json:"statuses"`
	Labels      []api.Label        `json:"labels,omitempty"`
	Discovery   *api.DiscoveryInfo `json:"discovery,omitempty"`
	Container   *api.ContainerInfo `json:"container,omitempty"`
}

func seconds(t interface{ UnixNano() int64 }) float64 { return float64(t.UnixNano()) / 1e9 }

func taskJSONOf(t *state.Task) taskJSON {
	out := taskJSON{
		ID:          t.ID,
		Name:        t.Info.Name,
		FrameworkID: t.FrameworkID,
		SlaveID:     t.AgentID,
		State:       t.State,
		Resources:   mustResources(t.Info.Resources).Flat(),
		Role:        t.Role,
		Statuses:    t.Statuses,
		Discovery:   t.Info.Discovery,
		Container:   withoutSecretValues(t.Info.Container),
	}
	if out.Statuses == nil {
		out.Statuses = []api.TaskStatus{}
	}
	if t.Info.Labels != nil {
		out.Labels = t.Info.Labels.Labels
	}
	return out
}

// attributesJSON flattens attributes as state.json does: text and scalars as values,
// ranges and sets in their text form.
func attributesJSON(attrs []api.Attribute) map[string]any {
	out := map[string]any{}
	for _, a := range attrs {
		switch {
		case a.Text != nil:
			out[a.Name] = a.Text.Value
		case a.Scalar != nil:
			out[a.Name] = a.Scalar.Value
		case a.Ranges != nil:
			var parts []string
			for _, r := range a.Ranges.Range {
				parts = append(parts, formatRange(r))
			}
			out[a.Name] = "[" + strings.Join(parts, ", ") + "]"
		case a.Set != nil:
			out[a.Name] = "{" + strings.Join(a.Set.Item, ", ") + "}"
		}
	}
	return out
}

func formatRange(r api.ValueRange) string {
	return strconv.FormatUint(r.Begin, 10) + "-" + strconv.FormatUint(r.End, 10)
}

func (m *Master) handleState(w http.ResponseWriter, r *http.Request) {
	if m.forwardToLeader(w, r) {
		return
	}
	store := m.fsm.Store()
	v := m.view()
	tasks := v.tasks
	usedByAgent, usedByFramework := v.usedByAgent, v.usedByFramework
	offeredByAgent, offeredByFramework := v.offeredByAgent, v.offeredByFramework
	connected := m.connectedAgents()
	leaderURL := m.leaderURL()

	doc := stateJSON{
		Version:                m.cfg.Version,
		StartTime:              seconds(m.started),
		ID:                     m.cfg.ID,
		PID:                    m.masterInfo().PID,
		Hostname:               m.cfg.Hostname,
		Flags:                  map[string]any{"agent_timeout": m.cfg.AgentTimeout.String(), "allocation_interval": m.cfg.AllocationInterval.String()},
		Slaves:                 []slaveJSON{},
		Frameworks:             []frameworkJSON{},
		CompletedFrameworks:    []frameworkJSON{},
		OrphanTasks:            []taskJSON{},
		UnregisteredFrameworks: []string{},
	}
	if leaderURL != "" {
		doc.Leader = "master@" + strings.TrimPrefix(leaderURL, "http://")
		if m.isLeader() {
			doc.LeaderInfo = m.masterInfo()
		}
	}
	for _, a := range store.Agents() {
		if a.Unreachable {
			doc.UnreachableSlaves++
			continue
		}
		active, known := connected[a.ID]
		if !known && !m.isLeader() {
			active = true
		}
		if active {
			doc.ActivatedSlaves++
		} else {
			doc.DeactivatedSlaves++
		}
		total := mustResources(a.Info.Resources)
		doc.Slaves = append(doc.Slaves, slaveJSON{
			ID:                  a.ID,
			Hostname:            a.Info.Hostname,
			Port:                a.Info.Port,
			Attributes:          attributesJSON(a.Info.Attributes),
			PID:                 "slave(1)@" + a.HTTPAddress,
			RegisteredTime:      seconds(a.RegisteredTime),
			Resources:           total.Flat(),
			UsedResources:       usedByAgent[a.ID].Flat(),
			OfferedResources:    offeredByAgent[a.ID].Flat(),
			UnreservedResources: total.Flat(),
			Active:              active,
			Version:             a.Version,
			Capabilities:        []string{"MULTI_ROLE"},
		})
	}
	byFramework := map[string][]*state.Task{}
	for _, t := range tasks {
		byFramework[t.FrameworkID] = append(byFramework[t.FrameworkID], t)
	}
	completed := map[string][]*state.Task{}
	for _, t := range store.CompletedTasks() {
		completed[t.FrameworkID] = append(completed[t.FrameworkID], t)
	}
	for _, f := range store.Frameworks() {
		fj := frameworkJSON{
			ID:               f.ID,
			Name:             f.Info.Name,
			UsedResources:    usedByFramework[f.ID].Flat(),
			OfferedResources: offeredByFramework[f.ID].Flat(),
			Capabilities:     []string{},
			Hostname:         f.Info.Hostname,
			WebuiURL:         f.Info.WebuiURL,
			Active:           f.Connected && !f.Removed,
			Connected:        f.Connected && !f.Removed,
			User:             f.Info.User,
			FailoverTimeout:  f.Info.FailoverTimeout,
			Checkpoint:       f.Info.Checkpoint,
			RegisteredTime:   seconds(f.RegisteredTime),
			Role:             f.Info.AllRoles()[0],
			Roles:            f.Info.AllRoles(),
			Tasks:            []taskJSON{},
			UnreachableTasks: []taskJSON{},
			CompletedTasks:   []taskJSON{},
			Offers:           []offerJSON{},
			Executors:        []any{},
		}
		if !f.UnregisteredTime.IsZero() {
			fj.UnregisteredTime = seconds(f.UnregisteredTime)
		}
		for _, c := range f.Info.Capabilities {
			fj.Capabilities = append(fj.Capabilities, c.Type)
		}
		if f.Info.Labels != nil {
			fj.Labels = f.Info.Labels.Labels
		}
		for _, t := range byFramework[f.ID] {
			if t.State == api.TaskUnreachable {
				fj.UnreachableTasks = append(fj.UnreachableTasks, taskJSONOf(t))
			} else {
				fj.Tasks = append(fj.Tasks, taskJSONOf(t))
			}
		}
		for _, t := range completed[f.ID] {
			fj.CompletedTasks = append(fj.CompletedTasks, taskJSONOf(t))
		}
		if f.Removed {
			doc.CompletedFrameworks = append(doc.CompletedFrameworks, fj)
		} else {
			doc.Frameworks = append(doc.Frameworks, fj)
		}
	}
	writeJSON(w, http.StatusOK, doc)
}
