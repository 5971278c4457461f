package services

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/services/placement"
	"github.com/atoll/atoll/node/master/state"
)

// Deployment actions, Marathon's names.
const (
	actionStart   = "StartApplication"
	actionStop    = "StopApplication"
	actionScale   = "ScaleApplication"
	actionRestart = "RestartApplication"
)

// deployment is a change in progress, stored so that a new leader resumes it: the apps'
// target definitions (nil to remove the app) in steps, run one after the other (apps a
// step's apps depend on are in an earlier step), and what they were before, for a
// rollback.
type deployment struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	// Steps hold the actions, each naming an app.
	Steps [][]deployAction `json:"steps"`
	// Current is the index of the step in progress.
	Current int `json:"current"`
	// Targets are the apps' definitions once deployed; a stopped app has none.
	Targets map[string]*marathon.App `json:"targets"`
	// Previous are the definitions the deployment replaced; a new app has none.
	Previous map[string]*marathon.App `json:"previous"`
	// Seq orders deployments by creation.
	Seq uint64 `json:"seq"`
}

// deployAction is one app's change.
type deployAction struct {
	Action string `json:"action"`
	App    string `json:"app"`
}

// stepState is how the current step treats one app.
type stepState struct {
	stop bool
}

// sortDeployments orders deployments by creation.
func sortDeployments(ds []*deployment) {
	slices.SortFunc(ds, func(a, b *deployment) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
}

// apps returns the ids of the apps the deployment changes.
func (d *deployment) apps() []string {
	var ids []string
	for _, step := range d.Steps {
		for _, a := range step {
			ids = append(ids, a.App)
		}
	}
	return ids
}

// activeApps maps each app in a deployment to how its current step treats it, or nil
// when its step is still to come. s.mu is held.
func (s *Service) activeApps() map[string]*stepState {
	out := map[string]*stepState{}
	for _, d := range s.deployments {
		for i, step := range d.Steps {
			for _, a := range step {
				if _, ok := out[a.App]; ok {
					continue
				}
				switch {
				case i < d.Current:
				case i == d.Current:
					out[a.App] = &stepState{stop: a.Action == actionStop}
				default:
					out[a.App] = nil
				}
			}
		}
	}
	return out
}

// appDone says an app reached its deployment target: every live instance runs the target
// version and is healthy, there are as many as it should have, and none is still being
// killed. A stopped app is done when nothing of it runs.
func (s *Service) appDone(id string, stop bool) bool {
	for _, in := range s.byApp[id] {
		// An unreachable instance is not waited for: it is killed should it come back.
		if in.live() && (stop || in.killing) && in.unreachableSince.IsZero() {
			return false
		}
	}
	if stop {
		return true
	}
	a := s.apps[id]
	if a == nil {
		return true
	}
	live := s.liveInstances(id)
	if len(live) != a.spec.instances {
		return false
	}
	for _, in := range live {
		if in.version != a.spec.configVersion || !in.healthyFor(a.spec.checked) || !in.ready(a.spec) {
			return false
		}
	}
	return true
}

// advanceDeployments moves deployments whose current step is done to their next step,
// and finishes those with no step left: it returns the key-value writes that record it
// and the events to publish. s.mu is held.
func (s *Service) advanceDeployments() ([]*state.WriteKVRequest, []event) {
	var writes []*state.WriteKVRequest
	var events []event
	remaining := s.deployments[:0:0]
	for _, d := range s.deployments {
		advanced := false
		for d.Current < len(d.Steps) {
			done := true
			for _, a := range d.Steps[d.Current] {
				if !s.appDone(a.App, a.Action == actionStop) {
					done = false
					break
				}
			}
			if !done {
				break
			}
			events = append(events, s.deploymentEvent("deployment_step_success", d))
			d.Current++
			advanced = true
		}
		if d.Current < len(d.Steps) {
			remaining = append(remaining, d)
			if advanced {
				data, _ := json.Marshal(d)
				writes = append(writes, &state.WriteKVRequest{Namespace: s.namespace, Puts: []state.KVPut{{Key: deploymentKey(d.ID), Value: data}}})
			}
			continue
		}
		w := &state.WriteKVRequest{Namespace: s.namespace, Deletes: []string{deploymentKey(d.ID)}}
		for _, step := range d.Steps {
			for _, a := range step {
				if a.Action == actionStop && d.Targets[a.App] == nil {
					w.Deletes = append(w.Deletes, appKey(a.App))
					w.DeletePrefixes = append(w.DeletePrefixes, versionPrefix(a.App), reservationPrefix(a.App))
					delete(s.apps, a.App)
					events = append(events, event{Type: "app_terminated_event", Payload: map[string]any{"appId": a.App}})
				}
			}
		}
		writes = append(writes, w)
		events = append(events, s.deploymentEvent("deployment_success", d))
		s.log.Info("deployment finished", "deployment", d.ID, "apps", d.apps())
	}
	s.deployments = remaining
	return writes, events
}

// persist replicates key-value writes.
func (s *Service) persist(ctx context.Context, writes ...*state.WriteKVRequest) error {
	for _, w := range writes {
		if _, err := s.host.WriteKV(ctx, w); err != nil {
			return fmt.Errorf("record the services state: %w", err)
		}
	}
	return nil
}

// plan is a change asked through the API: new definitions for some apps (nil removes
// one), with the version they take.
type plan struct {
	version string
	targets map[string]*marathon.App
	// restart forces new instances of apps whose definition did not change.
	restart map[string]bool
	// dependencies adds to each app's own dependencies (its groups').
	dependencies map[string][]string
}

// newDeployment makes the deployment for a plan against the current apps: the action for
// each app, and steps that honour dependencies (an app runs after the apps and groups it
// depends on). s.mu is held.
func (s *Service) newDeployment(p *plan) *deployment {
	d := &deployment{
		ID:       uuid.NewString(),
		Version:  p.version,
		Targets:  map[string]*marathon.App{},
		Previous: map[string]*marathon.App{},
		Seq:      s.nextSeq(),
	}
	actions := map[string]string{}
	for id, target := range p.targets {
		current := s.apps[id]
		if current != nil {
			d.Previous[id] = current.def
		}
		d.Targets[id] = target
		switch {
		case target == nil:
			actions[id] = actionStop
		case current == nil:
			actions[id] = actionStart
		case p.restart[id] || configChanged(current.def, target):
			actions[id] = actionRestart
		default:
			actions[id] = actionScale
		}
	}
	d.Steps = orderSteps(actions, p.targets, s.apps, p.dependencies)
	return d
}

// nextSeq numbers a new deployment after every existing one.
func (s *Service) nextSeq() uint64 {
	var seq uint64
	for _, d := range s.deployments {
		seq = max(seq, d.Seq)
	}
	return seq + 1
}

// configChanged says two definitions differ in more than their instance count (and
// version): a change that restarts instances.
func configChanged(a, b *marathon.App) bool {
	ca, cb := *a, *b
	ca.Instances, cb.Instances = 0, 0
	ca.Version, cb.Version = "", ""
	ca.VersionInfo, cb.VersionInfo = nil, nil
	ja, _ := json.Marshal(&ca)
	jb, _ := json.Marshal(&cb)
	return string(ja) != string(jb)
}

// orderSteps puts the actions in steps: an app comes after every app it depends on that
// the deployment also changes (dependencies on a group mean the group's apps). Stops come
// in one last step, apps that depend on others first.
func orderSteps(actions map[string]string, targets map[string]*marathon.App, current map[string]*app, extra map[string][]string) [][]deployAction {
	deps := func(id string) []string {
		var def *marathon.App
		if t := targets[id]; t != nil {
			def = t
		} else if c := current[id]; c != nil {
			def = c.def
		}
		if def == nil {
			return nil
		}
		var out []string
		for _, dep := range append(slices.Clone(def.Dependencies), extra[id]...) {
			for other := range actions {
				if other != id && (other == dep || isUnder(other, dep)) {
					out = append(out, other)
				}
			}
		}
		return out
	}
	level := map[string]int{}
	var depth func(id string, seen map[string]bool) int
	depth = func(id string, seen map[string]bool) int {
		if l, ok := level[id]; ok {
			return l
		}
		if seen[id] {
			return 0 // a cycle: validation refuses these, so it is not expected
		}
		seen[id] = true
		l := 0
		for _, dep := range deps(id) {
			l = max(l, depth(dep, seen)+1)
		}
		level[id] = l
		return l
	}
	var steps [][]deployAction
	var stops []deployAction
	ids := make([]string, 0, len(actions))
	for id := range actions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if actions[id] == actionStop {
			stops = append(stops, deployAction{Action: actionStop, App: id})
			continue
		}
		l := depth(id, map[string]bool{})
		for len(steps) <= l {
			steps = append(steps, nil)
		}
		steps[l] = append(steps[l], deployAction{Action: actions[id], App: id})
	}
	if len(stops) > 0 {
		steps = append(steps, stops)
	}
	out := steps[:0]
	for _, step := range steps {
		if len(step) > 0 {
			out = append(out, step)
		}
	}
	return out
}

// isUnder says id is inside the group path group.
func isUnder(id, group string) bool {
	if group == "/" {
		return true
	}
	return len(id) > len(group) && id[:len(group)] == group && id[len(group)] == '/'
}

// lockingDeployments returns the deployments in progress that change any of the apps.
// s.mu is held.
func (s *Service) lockingDeployments(ids []string) []*deployment {
	var out []*deployment
	for _, d := range s.deployments {
		for _, id := range d.apps() {
			if slices.Contains(ids, id) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

// start records a plan's deployment and applies its targets: the apps take their new
// definitions at once (their instances follow as the deployment runs). Deployments it
// overrides (force) are cancelled. It returns the deployment.
func (s *Service) start(ctx context.Context, p *plan, override []*deployment) (*deployment, error) {
	if err := s.checkSecrets(ctx, p.targets); err != nil {
		return nil, err
	}
	d := s.newDeployment(p)
	w := &state.WriteKVRequest{Namespace: s.namespace}
	for _, old := range override {
		w.Deletes = append(w.Deletes, deploymentKey(old.ID))
	}
	specs := map[string]*appSpec{}
	for id, target := range p.targets {
		if target == nil {
			continue
		}
		if target.Role == "" && s.cfg.Role != "*" {
			// Marathon (1.9 and later) records the framework's role in an app that
			// names none.
			target.Role = s.cfg.Role
		}
		spec, err := compile(target)
		if err != nil {
			return nil, &marathon.Error{Status: 422, Message: "Object is not valid", Details: []marathon.ErrorDetail{{Path: "/", Errors: []string{err.Error()}}}}
		}
		specs[id] = spec
		data, err := json.Marshal(target)
		if err != nil {
			return nil, err
		}
		w.Puts = append(w.Puts, state.KVPut{Key: appKey(id), Value: data}, state.KVPut{Key: versionKey(id, target.Version), Value: data})
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	w.Puts = append(w.Puts, state.KVPut{Key: deploymentKey(d.ID), Value: data})
	if err := s.persist(ctx, w); err != nil {
		return nil, err
	}
	s.deployments = slices.DeleteFunc(s.deployments, func(x *deployment) bool { return slices.Contains(override, x) })
	for _, old := range override {
		s.events.publish(s.deploymentEvent("deployment_failed", old))
	}
	s.deployments = append(s.deployments, d)
	for id, spec := range specs {
		a := s.apps[id]
		if a == nil {
			a = &app{summary: placement.NewSummary(summaryAgents)}
			s.apps[id] = a
		}
		a.def, a.spec, a.defJSON = p.targets[id], spec, nil
		a.failures, a.delayUntil = 0, time.Time{}
	}
	s.trimVersions(ctx, p.targets)
	s.trigger()
	return d, nil
}

// trimVersions forgets the oldest stored versions of the apps beyond maxVersions. A
// failure only leaves more versions stored than needed. s.mu is held.
func (s *Service) trimVersions(ctx context.Context, apps map[string]*marathon.App) {
	w := &state.WriteKVRequest{Namespace: s.namespace}
	for id, def := range apps {
		if def == nil {
			continue
		}
		versions, err := s.host.KVList(ctx, versionPrefix(id))
		if err != nil {
			s.log.Warn("cannot forget old app versions", "app", id, "err", err)
			return
		}
		for i := 0; i < len(versions)-maxVersions; i++ {
			w.Deletes = append(w.Deletes, versions[i].Key)
		}
	}
	if len(w.Deletes) == 0 {
		return
	}
	if err := s.persist(ctx, w); err != nil {
		s.log.Warn("cannot forget old app versions", "err", err)
	}
}
