package services

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/services/placement"
)

// pass brings every app toward its target: the apps in the current step of a deployment
// by that deployment's rules, the rest by keeping their instance count. It finishes the
// deployments that are done, sends the kills it decided, and suppresses or revives
// offers as apps stop or start waiting.
func (s *Service) pass(ctx context.Context) error {
	s.mu.Lock()
	stream := s.stream
	if stream == nil || !s.ready {
		s.mu.Unlock()
		return nil
	}
	writes, events := s.advanceDeployments()
	s.mu.Unlock()
	if len(writes) > 0 {
		if err := s.persist(ctx, writes...); err != nil {
			return err
		}
	}
	for _, ev := range events {
		s.events.publish(ev)
	}

	s.mu.Lock()
	active := s.activeApps()
	waiting := false
	now := s.now()
	for id, a := range s.apps {
		step, inDeployment := active[id]
		switch {
		case inDeployment && step == nil:
			// A later step of a deployment: untouched until its turn.
			a.toLaunch = 0
		case inDeployment && step.stop:
			a.toLaunch = 0
			for _, in := range s.byApp[id] {
				if in.live() && !in.killing {
					s.killLocked(in)
				}
			}
		case inDeployment:
			s.probeReadiness(ctx, a)
			s.converge(a, true)
		default:
			s.converge(a, false)
		}
		if a.failures > 0 && s.stableInstance(a, now) {
			a.failures, a.delayUntil = 0, time.Time{}
		}
		if a.toLaunch > 0 && a.waitingSince.IsZero() {
			a.waitingSince = now
			a.summary = placement.NewSummary(summaryAgents)
		} else if a.toLaunch == 0 {
			a.waitingSince = time.Time{}
		}
		if a.toLaunch > 0 && !now.Before(a.delayUntil) {
			waiting = true
		}
	}
	s.retryKills(now)
	s.expungeUnreachable(now)
	// Tasks of apps that no longer exist (deleted while this master was not leading).
	for _, in := range s.instances {
		if _, ok := s.apps[in.appID]; !ok && in.live() {
			if _, stopping := active[in.appID]; !stopping {
				s.killLocked(in)
			}
		}
	}
	kills := s.kills
	s.kills = map[string]string{}
	// Offers declined for long while nothing waited must come back now that something
	// does, as must suppressed ones.
	revive := waiting && (s.suppressed || s.declinedIdle)
	suppress := !waiting && !s.suppressed
	if revive {
		s.suppressed, s.declinedIdle = false, false
	}
	if suppress {
		s.suppressed = true
	}
	s.mu.Unlock()

	for taskID, agentID := range kills {
		if err := stream.Kill(ctx, api.TaskID{Value: taskID}, &api.AgentID{Value: agentID}); err != nil {
			return fmt.Errorf("kill %s: %w", taskID, err)
		}
	}
	switch {
	case revive:
		return stream.Revive(ctx)
	case suppress:
		return stream.Suppress(ctx)
	}
	return nil
}

// converge sets how many instances a should launch, and kills the ones it has too many
// of. deploying says a deployment's current step holds the app: instances of other
// versions are replaced, keeping the upgrade strategy's capacities. Outside deployments
// the app keeps its instance count, whatever their versions.
func (s *Service) converge(a *app, deploying bool) {
	spec := a.spec
	n := spec.instances
	var current, old []*instance
	for _, in := range s.liveInstances(spec.id) {
		if deploying && in.version != spec.configVersion {
			old = append(old, in)
		} else {
			current = append(current, in)
		}
	}
	if len(old) == 0 {
		if extra := len(current) - n; extra > 0 {
			sortForKill(current, spec.oldestFirst, spec.checked)
			for _, in := range current[:extra] {
				s.killLocked(in)
			}
		}
		a.toLaunch = max(n-len(current), 0)
		return
	}
	// A rolling replacement: old instances go as new ones become healthy.
	minHealthy, maxCapacity := spec.capacities(n)
	healthyNew := 0
	for _, in := range current {
		if in.healthyFor(spec.checked) && in.ready(spec) {
			healthyNew++
		}
	}
	sortForKill(old, spec.oldestFirst, true)
	healthyOld := 0
	for _, in := range old {
		if in.healthyFor(in.healthy != nil) {
			healthyOld++
		}
	}
	// Unhealthy old instances serve no one: they go first, whatever the capacity.
	canKill := healthyOld + healthyNew - minHealthy
	if minHealthy >= n && maxCapacity <= n && healthyNew == 0 && len(current) == 0 {
		// {1, 0} leaves no room either way: Marathon replaces one at a time.
		canKill = 1
	}
	kept := old[:0:0]
	for _, in := range old {
		healthy := in.healthyFor(in.healthy != nil)
		switch {
		case !healthy:
			s.killLocked(in)
		case canKill > 0:
			s.killLocked(in)
			canKill--
		default:
			kept = append(kept, in)
		}
	}
	// Instances being killed hold their resources until they end: they count against the
	// capacity until then (those on unreachable agents excepted, which may never answer).
	dying := 0
	for _, in := range s.byApp[spec.id] {
		if in.killing && in.live() && in.unreachableSince.IsZero() {
			dying++
		}
	}
	room := maxCapacity - len(kept) - len(current) - dying
	a.toLaunch = max(min(n-len(current), room), 0)
}

// backoffReset is how long an instance must run (healthy, when checked) for its app's
// launch delay to start over: a task that fails right after it starts keeps the delay
// growing.
const backoffReset = 10 * time.Second

// stableInstance says one of the app's instances has run well for backoffReset.
func (s *Service) stableInstance(a *app, now time.Time) bool {
	for _, in := range s.byApp[a.spec.id] {
		if in.healthyFor(a.spec.checked) && !in.startedAt.IsZero() && now.Sub(in.startedAt) >= backoffReset {
			return true
		}
	}
	return false
}

// liveInstances returns the app's instances that run or are starting, except those
// being killed, expunged, or unreachable for longer than the app lets them count.
func (s *Service) liveInstances(appID string) []*instance {
	var out []*instance
	a := s.apps[appID]
	now := s.now()
	for _, in := range s.byApp[appID] {
		if !in.live() || in.killing || in.expunged {
			continue
		}
		if !in.unreachableSince.IsZero() && a != nil && a.spec.replaceUnreachable && now.Sub(in.unreachableSince) >= a.spec.inactiveAfter {
			continue
		}
		out = append(out, in)
	}
	return out
}

// expungeUnreachable gives up on instances unreachable for longer than their app's
// expungeAfter: they no longer count, and are killed if their agent comes back.
// s.mu is held.
func (s *Service) expungeUnreachable(now time.Time) {
	for _, in := range s.instances {
		a := s.apps[in.appID]
		if in.expunged || in.unreachableSince.IsZero() || a == nil || !a.spec.replaceUnreachable {
			continue
		}
		if now.Sub(in.unreachableSince) >= max(a.spec.expungeAfter, a.spec.inactiveAfter) {
			in.expunged = true
		}
	}
}

// killLocked marks an instance killed and queues the kill. s.mu is held.
func (s *Service) killLocked(in *instance) {
	if in.killing && !in.live() {
		return
	}
	in.killing, in.killSent = true, s.now()
	s.kills[in.taskID] = in.agentID
}

// killRetry is how long a kill may go unanswered before it is sent again: a kill sent
// while the agent was away, or right after a failover before the agents re-registered,
// is lost. It doubles from killRetryFirst up to killRetryMax.
const (
	killRetryFirst = 500 * time.Millisecond
	killRetryMax   = 5 * time.Second
)

// retryKills sends again the kills of instances that still run. s.mu is held.
func (s *Service) retryKills(now time.Time) {
	for _, in := range s.instances {
		if !in.killing || !in.live() {
			continue
		}
		wait := min(killRetryFirst<<min(in.killRetries, 4), killRetryMax)
		if now.Sub(in.killSent) >= wait {
			in.killSent = now
			in.killRetries++
			s.kills[in.taskID] = in.agentID
		}
	}
}

// summaryAgents is how many agents' last offers an app's queue summary remembers.
const summaryAgents = 1000

// offers launches waiting apps' instances on the offers, and declines what is left.
func (s *Service) offers(ctx context.Context, offers []api.Offer) error {
	s.mu.Lock()
	stream := s.stream
	now := s.now()
	waiting := s.waitingApps(now)
	type accept struct {
		offer api.OfferID
		tasks []api.TaskInfo
	}
	var accepts []accept
	var declines []api.OfferID
	// made are the reservations of resident apps begun on these offers, stored before
	// their tasks launch.
	made := map[string][]*reservation{}
	// One planner per app for the whole batch: it counts the app's placed instances once,
	// and every claim it makes is launched, so it stays right from offer to offer.
	planners := map[*app]*placement.Planner{}
	// secrets are the values of the waiting apps' secrets; an app whose secrets the store
	// lacks does not launch, and says why.
	secrets := map[*app]map[string][]byte{}
	for _, a := range waiting {
		if len(a.spec.secrets) == 0 {
			continue
		}
		values, err := s.secretValues(ctx, a.spec.secrets)
		if err != nil {
			a.lastFailure = &taskFailure{State: string(api.TaskError), Message: "not launched: " + err.Error(), Timestamp: marathon.Timestamp(now), Version: a.spec.version}
			continue
		}
		secrets[a] = values
	}
	for i := range offers {
		offer := &offers[i]
		remaining := *offer
		var tasks []api.TaskInfo
		for _, a := range waiting {
			if a.toLaunch <= 0 || len(tasks) >= s.cfg.MaxLaunchesPerOffer {
				continue
			}
			if _, resolved := secrets[a]; len(a.spec.secrets) > 0 && !resolved {
				continue
			}
			planner := planners[a]
			if planner == nil {
				planner = placement.NewPlanner(&a.spec.req, s.placedOf(a.spec.id))
				planners[a] = planner
			}
			want := min(a.toLaunch, s.cfg.MaxLaunchesPerOffer-len(tasks))
			var claims []placement.Claim
			var slots []*reservation
			var reason placement.Reason
			if len(a.spec.persistent) > 0 {
				var begun []*reservation
				claims, slots, begun, reason = s.residentClaims(a, planner, offer, &remaining, want)
				made[a.spec.id] = append(made[a.spec.id], begun...)
			} else {
				claims, reason = planner.MatchMany(&remaining, want)
			}
			a.summary.Record(offer.AgentID.Value, reason, now)
			for j := range claims {
				taskID := newTaskID(a.spec.id)
				task := a.spec.taskInfo(taskID, offer.AgentID.Value, &claims[j])
				if values, ok := secrets[a]; ok {
					task = withSecretValues(task, values)
				}
				var persistenceIDs []string
				if slots != nil {
					persistenceIDs = slots[j].PersistenceIDs
					task.Resources = withPersistentVolumes(task.Resources, a.spec.persistent, persistenceIDs)
				}
				tasks = append(tasks, task)
				s.addInstance(&instance{
					taskID:         taskID,
					appID:          a.spec.id,
					version:        a.spec.configVersion,
					agentID:        offer.AgentID.Value,
					hostname:       offer.Hostname,
					attributes:     offer.Attributes,
					hostPorts:      claims[j].HostPorts,
					persistenceIDs: persistenceIDs,
					servicePorts:   a.spec.servicePorts,
					state:          api.TaskStaging,
					stagedAt:       now,
				})
				a.toLaunch--
				remaining.Resources = placement.Remaining(remaining.Resources, claims[j].Resources)
			}
		}
		if len(tasks) == 0 {
			declines = append(declines, offer.ID)
			continue
		}
		accepts = append(accepts, accept{offer.ID, tasks})
	}
	refuse := s.cfg.DeclineIdle
	if len(waiting) > 0 {
		refuse = s.cfg.DeclineUnfit
	} else if len(declines) > 0 {
		s.declinedIdle = true
	}
	reservations, err := s.reservationWrites(made)
	s.mu.Unlock()

	if err != nil {
		return err
	}
	if reservations != nil {
		if err := s.persist(ctx, reservations); err != nil {
			return fmt.Errorf("store reservations: %w", err)
		}
	}
	for _, acc := range accepts {
		op := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: acc.tasks}}
		// What is left of the offer goes back at once, for the next app.
		zero := 0.0
		if err := stream.Accept(ctx, []api.OfferID{acc.offer}, []api.OfferOperation{op}, &api.Filters{RefuseSeconds: &zero}); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
	}
	if len(declines) > 0 {
		seconds := refuse.Seconds()
		if err := stream.Decline(ctx, declines, &api.Filters{RefuseSeconds: &seconds}); err != nil {
			return fmt.Errorf("decline: %w", err)
		}
	}
	return nil
}

// waitingApps returns the apps that wait for instances and are not held back by their
// launch delay, those of deployments first, then by how long they have waited.
func (s *Service) waitingApps(now time.Time) []*app {
	var out []*app
	for _, a := range s.apps {
		if a.toLaunch > 0 && !now.Before(a.delayUntil) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *app) int {
		if c := a.waitingSince.Compare(b.waitingSince); c != 0 {
			return c
		}
		return compareStrings(a.spec.id, b.spec.id)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// placedOf returns where the app's live instances run, oldest first (CLUSTER without a
// value follows the first), for its constraints.
func (s *Service) placedOf(appID string) []placement.Placed {
	live := s.liveInstances(appID)
	sortInstances(live)
	out := make([]placement.Placed, len(live))
	for i, in := range live {
		out[i] = placement.Placed{AgentID: in.agentID, Hostname: in.hostname, Attributes: in.attributes}
	}
	return out
}

// update takes a task's status: the instance follows it, an unexpected end counts
// toward the app's launch delay, and the update is acknowledged.
func (s *Service) update(ctx context.Context, st *api.TaskStatus) error {
	s.mu.Lock()
	stream := s.stream
	in, ok := s.instances[st.TaskID.Value]
	var ev []event
	if ok {
		wasHealthy := in.healthy
		in.apply(st)
		a := s.apps[in.appID]
		ev = append(ev, s.statusEvent(in, st))
		if st.Healthy != nil && (wasHealthy == nil || *wasHealthy != *st.Healthy) {
			ev = append(ev, healthEvent(in, *st.Healthy))
		}
		if st.State == api.TaskKilled && st.Healthy != nil && !*st.Healthy && !in.killing {
			// The agent killed it for failing its health check.
			ev = append(ev, event{Type: "unhealthy_task_kill_event", Payload: map[string]any{
				"appId": in.appID, "taskId": in.taskID, "instanceId": in.taskID, "version": in.version,
				"reason": st.Message, "host": in.hostname, "slaveId": in.agentID,
			}})
		}
		if a != nil {
			switch {
			case st.State.Terminal() && !in.killing:
				a.failures++
				a.delayUntil = s.now().Add(a.spec.launchDelay(a.failures))
				a.lastFailure = &taskFailure{
					TaskID: in.taskID, State: string(st.State), Message: st.Message, Host: in.hostname,
					Timestamp: marathon.Timestamp(s.now()), Version: in.version, AppID: in.appID, SlaveID: in.agentID,
				}
			}
		}
		if in.expunged && st.State == api.TaskRunning {
			s.killLocked(in)
		}
		if st.State.Terminal() {
			if in.readiness != nil && in.readiness.probing != nil {
				in.readiness.probing()
			}
			s.removeInstance(in)
		}
	} else if !st.State.Terminal() && st.AgentID != nil {
		// A task of no app: left from an app deleted while the framework was away.
		s.kills[st.TaskID.Value] = st.AgentID.Value
	}
	s.mu.Unlock()
	for _, e := range ev {
		s.events.publish(e)
	}
	if len(st.UUID) > 0 && stream != nil {
		if err := stream.Acknowledge(ctx, *st); err != nil {
			return fmt.Errorf("acknowledge %s: %w", st.TaskID.Value, err)
		}
	}
	return nil
}
