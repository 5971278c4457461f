package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// The deployment commands list the services framework's deployments, roll them back or
// stop them; every command that starts a deployment can follow it with --wait.

// defaultWaitTimeout bounds --wait: long enough for a rolling upgrade of a large app,
// short enough that a script notices a deployment stuck waiting for offers.
const defaultWaitTimeout = 10 * time.Minute

// pollInterval is how often --wait asks /v2/deployments whether the deployment is still
// there and /v2/queue why it may wait for offers.
const pollInterval = time.Second

// redrawInterval is how often the terminal display refreshes without news (its clock).
const redrawInterval = 500 * time.Millisecond

// recentEvents is how many status updates the terminal display shows.
const recentEvents = 5

// barWidth is the width of the terminal display's progress bars.
const barWidth = 20

// watchedEvents are the /v2/events types --wait follows.
var watchedEvents = []string{
	marathon.EventStatusUpdate, marathon.EventHealthStatusChanged, marathon.EventDeploymentInfo,
	marathon.EventDeploymentStepSuccess, marathon.EventDeploymentSuccess, marathon.EventDeploymentFailed,
}

func (a *app) deploymentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployment",
		Short: "List, roll back and stop the deployments of apps",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.deploymentListCmd(), a.deploymentRollbackCmd(), a.deploymentStopCmd())
	return cmd
}

func (a *app) deploymentListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the deployments in progress",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			list, err := client.ListDeployments(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(raws(list))
			}
			tw := a.table("ID", "APPS", "STEP", "ACTIONS", "VERSION")
			for _, d := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", d.Value.ID, orDash(strings.Join(d.Value.AffectedApps, ",")),
					d.Value.CurrentStep, d.Value.TotalSteps, orDash(describeActions(currentActions(d.Value.CurrentActions))), orDash(d.Value.Version))
			}
			return tw.Flush()
		},
	}
}

func (a *app) deploymentRollbackCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "rollback DEPLOYMENT_ID",
		Short: "Roll a deployment back: a new deployment to the apps' definitions before it",
		Args:  oneArg("deployment id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := args[0]
			return a.runChange(cmd, client, o, change{
				what: "rolling back deployment " + id,
				send: func(ctx context.Context) (marathon.Started, error) { return client.RollbackDeployment(ctx, id) },
			})
		},
	}
	// No --force: ?force=true on this call is Marathon's stop, which is `deployment stop`.
	addChangeFlags(cmd, &o, false)
	return cmd
}

func (a *app) deploymentStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop DEPLOYMENT_ID",
		Short: "Stop a deployment where it is, changing nothing back",
		Args:  oneArg("deployment id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			if err := client.StopDeployment(cmd.Context(), args[0]); err != nil {
				return err
			}
			// The API answers 202 without a body: -o json prints nothing.
			if a.output != "json" {
				fmt.Fprintf(a.stdout, "stopped deployment %s: its apps stay as they are now\n", args[0])
			}
			return nil
		},
	}
}

// raws lists the API's JSON of objects.
func raws[T any](list []marathon.Object[T]) []json.RawMessage {
	out := make([]json.RawMessage, len(list))
	for i, o := range list {
		out[i] = o.Raw
	}
	return out
}

// describeActions says what a step does: "ScaleApplication /web, StartApplication /db".
func describeActions(actions []marathon.DeploymentAction) string {
	parts := make([]string, 0, len(actions))
	for _, action := range actions {
		parts = append(parts, strings.TrimSpace(action.Action+" "+cmp.Or(action.App, action.Pod)))
	}
	return strings.Join(parts, ", ")
}

// currentActions are the actions of a deployment's current step.
func currentActions(infos []marathon.DeploymentActionInfo) []marathon.DeploymentAction {
	actions := make([]marathon.DeploymentAction, len(infos))
	for i, info := range infos {
		actions[i] = marathon.DeploymentAction{Action: info.Action, App: info.App, Pod: info.Pod}
	}
	return actions
}

// changeOptions are the flags of the commands that start a deployment.
type changeOptions struct {
	force   bool
	wait    bool
	timeout time.Duration
}

// addChangeFlags adds --wait and --timeout, and --force when force is set.
func addChangeFlags(cmd *cobra.Command, o *changeOptions, force bool) {
	f := cmd.Flags()
	if force {
		f.BoolVar(&o.force, "force", false, "make the change even while deployments lock the apps (it supersedes them)")
	}
	f.BoolVar(&o.wait, "wait", false, "follow the deployment until it finishes, showing its progress")
	f.DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "with --wait: give up waiting after this long (the deployment goes on)")
}

func (o changeOptions) validate(cmd *cobra.Command) error {
	if cmd.Flags().Changed("timeout") && !o.wait {
		return usagef("--timeout needs --wait")
	}
	if o.timeout <= 0 {
		return usagef("--timeout %s: want more than 0", o.timeout)
	}
	return nil
}

// change is one call that starts a deployment.
type change struct {
	// what says what the call does: "scaling app /web to 3 instances".
	what string
	// apps are the apps the call changes, as far as the command knows; removes says it
	// removes them.
	apps    []string
	removes bool
	// send makes the call.
	send func(ctx context.Context) (marathon.Started, error)
	// describe, when set, replaces what once the answer is known.
	describe func(marathon.Started) string
}

// runChange makes a change and says which deployment it marathon.Started (-o json: prints the
// API's answer); with --wait it then follows the deployment to its end.
func (a *app) runChange(cmd *cobra.Command, client *marathon.Client, o changeOptions, c change) error {
	if err := o.validate(cmd); err != nil {
		return err
	}
	ctx := cmd.Context()
	var stream *marathon.EventStream
	var before []marathon.Object[marathon.Task]
	if o.wait {
		// Subscribe before the change, so that no event of its deployment is missed.
		var err error
		stream, err = client.Events(ctx, watchedEvents...)
		if err != nil {
			fmt.Fprintf(a.stderr, "atoll: following the deployment by polling: %v\n", err)
		} else {
			defer stream.Close()
		}
		if before, err = client.ListTasks(ctx); err != nil {
			return err
		}
	}
	s, err := c.send(ctx)
	if err != nil {
		return lockHint(err)
	}
	what := c.what
	if c.describe != nil {
		what = c.describe(s)
	}
	switch {
	case a.output == "json":
		if err := a.printJSON(s.Raw); err != nil {
			return err
		}
	case s.DeploymentID == "":
		fmt.Fprintf(a.stdout, "%s: nothing to deploy\n", what)
	default:
		fmt.Fprintf(a.stdout, "%s: deployment %s\n", what, s.DeploymentID)
	}
	if !o.wait || s.DeploymentID == "" {
		return nil
	}
	out := a.stdout
	if a.output == "json" {
		out = a.stderr // stdout holds the JSON
	}
	w := newDeploymentWatch(a, client, out, s, before)
	w.fallbackApps, w.fallbackRemoves = c.apps, c.removes
	return w.run(ctx, stream, o.timeout)
}

// lockHint adds what to do to the API's 409 for a locked app.
func lockHint(err error) error {
	var ae *marathon.APIError
	if !errors.As(err, &ae) || ae.Body.Status != http.StatusConflict || len(ae.Body.Deployments) == 0 {
		return err
	}
	id := ae.Body.Deployments[0].ID
	return fmt.Errorf("%w\natoll: --force overrides the deployment; or end it first: atoll deployment rollback %s, or atoll deployment stop %s", err, id, id)
}

// deploymentWatch follows one deployment for --wait: its plan from deployment events
// (or /v2/deployments when the event stream is unavailable), the tasks of its apps from
// status updates, and why it waits from /v2/queue. On a terminal it redraws a display
// with a progress bar per app; otherwise it prints a line for each change. Only run's
// goroutine touches it.
type deploymentWatch struct {
	a      *app
	client *marathon.Client
	out    io.Writer
	// terminal says out is a terminal width columns wide.
	terminal bool
	width    int

	id      string
	version string
	start   time.Time
	// fallbackApps are the apps the command changes (fallbackRemoves: removes), checked
	// when the deployment ends before the watch learnt its plan.
	fallbackApps    []string
	fallbackRemoves bool

	// known says the plan is known: steps, apps and their targets.
	known            bool
	step, totalSteps int
	actions          string
	apps             map[string]*appProgress
	order            []string
	// tasks are the live tasks of every app, by id: the list before the change, then
	// what status updates say.
	tasks map[string]*taskProgress
	// recent are the last status updates of the deployment's apps.
	recent []string

	// pollsGone counts the polls that did not find the deployment.
	pollsGone int
	// streamDown says the event stream is unavailable: the watch polls.
	streamDown bool
	// lastPollErr is the last failure to poll, told when the wait times out.
	lastPollErr error

	// printedStep is the step last printed (plain lines); drawn how many lines the last
	// terminal frame had.
	printedStep int
	drawn       int
}

// appProgress is one app of the deployment and its target.
type appProgress struct {
	id string
	// stop says the deployment stops the app; initial is then how many tasks it had.
	stop    bool
	initial int
	// instances and version are the target: tasks running at the version.
	instances int
	version   string
	// checked says the app has health checks.
	checked bool
	// waiting says why it waits for offers ("" when it does not); waitingKey is the same
	// without counts.
	waiting, waitingKey string
	// printed and printedWaiting are the last lines printed about it (plain lines).
	printed        string
	printedWaiting string
}

// taskProgress is what the watch knows of a task.
type taskProgress struct {
	appID, version, state string
	healthy               bool
}

func newDeploymentWatch(a *app, client *marathon.Client, out io.Writer, s marathon.Started, before []marathon.Object[marathon.Task]) *deploymentWatch {
	w := &deploymentWatch{
		a: a, client: client, out: out, id: s.DeploymentID, version: s.Version, start: time.Now(),
		apps: map[string]*appProgress{}, tasks: map[string]*taskProgress{},
	}
	if a.getenv("TERM") != "dumb" {
		w.width, w.terminal = terminalWidth(out)
	}
	for _, t := range before {
		w.tasks[t.Value.ID] = &taskProgress{appID: t.Value.AppID, version: t.Value.Version, state: t.Value.State, healthy: taskAlive(t.Value)}
	}
	return w
}

// terminalWidth says whether w is a terminal, and how wide.
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	size, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, false
	}
	if size.Col == 0 {
		return 80, true
	}
	return int(size.Col), true
}

// taskAlive says every health check of the task passes.
func taskAlive(t marathon.Task) bool {
	if len(t.HealthCheckResults) == 0 {
		return false
	}
	for _, r := range t.HealthCheckResults {
		if !r.Alive {
			return false
		}
	}
	return true
}

type sseItem struct {
	ev  marathon.Event
	err error
}

// run follows the deployment until it ends, timeout passes or Ctrl-C. stream may be nil
// (poll only).
func (w *deploymentWatch) run(ctx context.Context, stream *marathon.EventStream, timeout time.Duration) error {
	ctx, stopSignals := w.a.interrupted(ctx)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var items chan sseItem
	if stream != nil {
		items = make(chan sseItem, 64)
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				ev, err := stream.Next()
				select {
				case items <- sseItem{ev, err}:
				case <-done:
					return
				}
				if err != nil {
					return
				}
			}
		}()
	} else {
		w.streamDown = true
	}
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	var redraw <-chan time.Time
	if w.terminal {
		ticker := time.NewTicker(redrawInterval)
		defer ticker.Stop()
		redraw = ticker.C
	}
	if w.streamDown {
		if done, err := w.poll(ctx); done || err != nil {
			return err
		}
	}
	w.show()
	for {
		select {
		case <-ctx.Done():
			return w.gaveUp(ctx, timeout)
		case item := <-items:
			if item.err != nil {
				items = nil
				w.streamDown = true
				fmt.Fprintf(w.a.stderr, "atoll: the event stream ended (%v): following the deployment by polling\n", item.err)
				if done, err := w.poll(ctx); done || err != nil {
					return err
				}
				continue
			}
			if done, err := w.handle(ctx, item.ev); done || err != nil {
				return err
			}
		case <-poll.C:
			if done, err := w.poll(ctx); done || err != nil {
				return err
			}
		case <-redraw:
		}
		w.show()
	}
}

// gaveUp says why the wait ended early: the timeout or Ctrl-C.
func (w *deploymentWatch) gaveUp(ctx context.Context, timeout time.Duration) error {
	w.show()
	var b strings.Builder
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprintf(&b, "timed out after %s waiting for deployment %s", timeout, w.id)
	} else {
		fmt.Fprintf(&b, "stopped waiting for deployment %s", w.id)
	}
	for _, line := range w.summary() {
		b.WriteString("\n  " + line)
	}
	if w.lastPollErr != nil {
		b.WriteString("\n  last poll: " + w.lastPollErr.Error())
	}
	fmt.Fprintf(&b, "\nThe deployment goes on: see atoll deployment list, or undo it with atoll deployment rollback %s", w.id)
	return errors.New(b.String())
}

// summary is the state of each app and why it waits.
func (w *deploymentWatch) summary() []string {
	var out []string
	for _, id := range w.order {
		p := w.apps[id]
		out = append(out, w.progressLine(p))
		if p.waiting != "" {
			out = append(out, p.waiting)
		}
	}
	return out
}

// pollFailed remembers why a poll failed, unless the wait is over anyway.
func (w *deploymentWatch) pollFailed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		w.lastPollErr = err
	}
}

// handle acts on one event; done says the deployment ended (err: it failed).
func (w *deploymentWatch) handle(ctx context.Context, ev marathon.Event) (done bool, err error) {
	switch ev.Type {
	case marathon.EventStatusUpdate:
		var u marathon.StatusUpdateEvent
		if json.Unmarshal(ev.Data, &u) != nil || u.TaskID == "" {
			return false, nil
		}
		w.statusUpdate(u)
	case marathon.EventHealthStatusChanged:
		var h marathon.HealthStatusChangedEvent
		if json.Unmarshal(ev.Data, &h) != nil {
			return false, nil
		}
		if t := w.tasks[cmp.Or(h.TaskID, h.InstanceID)]; t != nil {
			t.healthy = h.Alive
		}
	case marathon.EventDeploymentInfo, marathon.EventDeploymentStepSuccess, marathon.EventDeploymentSuccess, marathon.EventDeploymentFailed:
		var d struct {
			ID   string              `json:"id"`
			Plan marathon.Deployment `json:"plan"`
		}
		if json.Unmarshal(ev.Data, &d) != nil || cmp.Or(d.ID, d.Plan.ID) != w.id {
			return false, nil
		}
		switch ev.Type {
		case marathon.EventDeploymentInfo:
			if err := w.learn(ctx, d.Plan); err != nil {
				w.pollFailed(ctx, err)
			}
		case marathon.EventDeploymentStepSuccess:
			// The event names the step that finished; the next one starts. The step's
			// apps are done: their last status updates may still be on their way, so
			// their state is read, and shown before the next step.
			finished := d.Plan.CurrentStep
			if finished >= 1 && finished <= len(d.Plan.Steps) {
				var ids []string
				for _, action := range d.Plan.Steps[finished-1].Actions {
					ids = append(ids, action.App)
				}
				w.refresh(ctx, ids...)
				w.show()
			}
			if next := finished + 1; next <= len(d.Plan.Steps) {
				w.step, w.actions = next, describeActions(d.Plan.Steps[next-1].Actions)
			}
		case marathon.EventDeploymentSuccess:
			return true, w.finish(ctx)
		case marathon.EventDeploymentFailed:
			w.refresh(ctx)
			w.show()
			return true, fmt.Errorf("deployment %s failed: it was rolled back or stopped (see atoll deployment list)", w.id)
		}
	}
	return false, nil
}

// statusUpdate records a task's new state.
func (w *deploymentWatch) statusUpdate(u marathon.StatusUpdateEvent) {
	if api.TaskState(u.TaskStatus).Terminal() {
		delete(w.tasks, u.TaskID)
	} else {
		t := w.tasks[u.TaskID]
		if t == nil {
			t = &taskProgress{}
			w.tasks[u.TaskID] = t
		}
		t.appID, t.version, t.state = u.AppID, u.Version, u.TaskStatus
	}
	if _, ours := w.apps[u.AppID]; !ours {
		return
	}
	line := fmt.Sprintf("%s %s on %s", u.TaskID, u.TaskStatus, orDash(u.Host))
	if u.Message != "" {
		line += ": " + u.Message
	}
	if ts, err := time.Parse(marathon.TimeLayout, u.Timestamp); err == nil {
		w.recent = append(w.recent, ts.Local().Format("15:04:05")+" "+line)
	} else {
		w.recent = append(w.recent, line)
	}
	if len(w.recent) > recentEvents {
		w.recent = w.recent[len(w.recent)-recentEvents:]
	}
	// Plain lines tell the failures only: the progress lines count the rest.
	if !w.terminal && failedState(u.TaskStatus) {
		fmt.Fprintf(w.out, "%s: task %s\n", u.AppID, line)
	}
}

// failedState says a task state is an end other than being killed or finishing.
func failedState(state string) bool {
	s := api.TaskState(state)
	return s.Terminal() && s != api.TaskKilled && s != api.TaskFinished
}

// learn takes the deployment's plan: its step, and its apps with their targets (once:
// a failure to read them leaves the plan unknown, for the next poll to learn).
func (w *deploymentWatch) learn(ctx context.Context, d marathon.Deployment) error {
	w.version = cmp.Or(d.Version, w.version)
	w.totalSteps = cmp.Or(d.TotalSteps, len(d.Steps))
	w.step = min(max(d.CurrentStep, 1), w.totalSteps)
	w.actions = describeActions(currentActions(d.CurrentActions))
	if w.actions == "" && w.step > 0 && w.step <= len(d.Steps) {
		w.actions = describeActions(d.Steps[w.step-1].Actions)
	}
	if w.known {
		return nil
	}
	stops := map[string]bool{}
	for _, step := range d.Steps {
		for _, action := range step.Actions {
			if action.App != "" {
				stops[action.App] = action.Action == marathon.ActionStopApplication
			}
		}
	}
	for _, id := range d.AffectedApps {
		if _, ok := stops[id]; !ok {
			stops[id] = false
		}
	}
	apps := map[string]*appProgress{}
	for id, stop := range stops {
		p := &appProgress{id: id, stop: stop}
		if !stop {
			info, err := w.client.GetApp(ctx, id)
			var ae *marathon.APIError
			switch {
			case errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound:
				p.stop = true
			case err != nil:
				return fmt.Errorf("read the target of %s: %w", id, err)
			default:
				p.instances, p.checked = info.Value.Instances, len(info.Value.HealthChecks) > 0
				p.version = info.Value.Version
				if vi := info.Value.VersionInfo; vi != nil && vi.LastConfigChangeAt != "" {
					p.version = vi.LastConfigChangeAt
				}
			}
		}
		if p.stop {
			p.initial = w.live(id)
		}
		apps[id] = p
	}
	w.known, w.apps = true, apps
	w.order = slices.Sorted(maps.Keys(apps))
	return nil
}

// live counts the live tasks of an app; running those running at the target version,
// healthy those of them that pass their health checks.
func (w *deploymentWatch) live(appID string) int {
	n := 0
	for _, t := range w.tasks {
		if t.appID == appID {
			n++
		}
	}
	return n
}

func (w *deploymentWatch) running(p *appProgress) (running, healthy int) {
	for _, t := range w.tasks {
		if t.appID == p.id && t.version == p.version && t.state == string(api.TaskRunning) {
			running++
			if t.healthy {
				healthy++
			}
		}
	}
	return running, healthy
}

// poll asks /v2/deployments after the deployment, and /v2/queue why its apps wait. A
// deployment gone without an event is settled by looking at its apps.
func (w *deploymentWatch) poll(ctx context.Context) (done bool, err error) {
	list, err := w.client.ListDeployments(ctx)
	if err != nil {
		w.pollFailed(ctx, err)
		return false, nil
	}
	var ours *marathon.Deployment
	for _, d := range list {
		if d.Value.ID == w.id {
			ours = &d.Value
		}
	}
	if ours == nil {
		w.pollsGone++
		// With the event stream, its deployment_success is on its way: the list drops a
		// finished deployment a moment before the event goes out.
		if w.streamDown || w.pollsGone > 1 {
			return true, w.settle(ctx)
		}
		return false, nil
	}
	w.pollsGone = 0
	if w.streamDown || !w.known {
		if err := w.learn(ctx, *ours); err != nil {
			w.pollFailed(ctx, err)
			return false, nil
		}
		w.refresh(ctx)
	}
	w.explainWaiting(ctx)
	return false, nil
}

// refresh replaces what the watch knows of the tasks of apps (default: all of its apps)
// with the API's lists.
func (w *deploymentWatch) refresh(ctx context.Context, apps ...string) {
	if len(apps) == 0 {
		apps = w.order
	}
	for _, id := range apps {
		if _, ours := w.apps[id]; !ours {
			continue
		}
		tasks, err := w.client.AppTasks(ctx, id)
		var ae *marathon.APIError
		if err != nil && !(errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound) {
			w.pollFailed(ctx, err)
			continue
		}
		for tid, t := range w.tasks {
			if t.appID == id {
				delete(w.tasks, tid)
			}
		}
		for _, t := range tasks {
			w.tasks[t.Value.ID] = &taskProgress{appID: id, version: t.Value.Version, state: t.Value.State, healthy: taskAlive(t.Value)}
		}
	}
}

// explainWaiting reads /v2/queue: why offers did not fit the apps, or their launch delay.
func (w *deploymentWatch) explainWaiting(ctx context.Context) {
	queue, err := w.client.Queue(ctx)
	if err != nil {
		w.pollFailed(ctx, err)
		return
	}
	for _, p := range w.apps {
		p.waiting, p.waitingKey = "", ""
	}
	for _, item := range queue {
		if item.Value.App == nil {
			continue
		}
		if p := w.apps[item.Value.App.ID]; p != nil && !p.stop {
			p.waiting, p.waitingKey = waitingReason(p.id, item.Value, time.Now())
		}
	}
}

// noOffersAfter is how long an app may wait without seeing any offer before --wait says
// so: offers normally come within a second or two.
const noOffersAfter = 5 * time.Second

// waitingReason says why an app of the queue waits at now: its launch delay after
// failures, the offers that did not fit, by reason, or that no offer came at all; ""
// when there is nothing to say. key is the same without the counts and times, which
// change with every offer.
func waitingReason(appID string, item marathon.QueueItem, now time.Time) (reason, key string) {
	if d := item.Delay; d != nil && !d.Overdue && d.TimeLeftSeconds > 0 {
		reason = fmt.Sprintf("%s: launch delayed %ds after task failures", appID, d.TimeLeftSeconds)
		if f := item.LastTaskFailure; f != nil {
			reason += fmt.Sprintf(" (last: %s on %s: %s)", f.State, orDash(f.Host), orDash(f.Message))
		}
		return reason, "delay"
	}
	declined := 0
	var reasons, names []string
	for _, step := range item.ProcessedOffersSummary.RejectSummaryLaunchAttempt {
		if step.Declined > 0 {
			declined += step.Declined
			reasons = append(reasons, fmt.Sprintf("%s %d", step.Reason, step.Declined))
			names = append(names, step.Reason)
		}
	}
	if declined == 0 {
		since, err := time.Parse(marathon.TimeLayout, item.Since)
		if err != nil || item.ProcessedOffersSummary.ProcessedOffersCount > 0 || now.Sub(since) < noOffersAfter {
			return "", ""
		}
		return fmt.Sprintf("%s: waiting for offers: none came in %s: is an agent registered, with free resources for the app's role?",
			appID, formatAge(now.Sub(since))), "no offers"
	}
	reason = fmt.Sprintf("%s: waiting for offers: %s declined: %s", appID, plural(declined, "offer"), strings.Join(reasons, ", "))
	return reason, "offers: " + strings.Join(names, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// settle decides how a deployment ended that left /v2/deployments without an event:
// it succeeded if its apps are at its version (removed apps gone).
func (w *deploymentWatch) settle(ctx context.Context) error {
	ids := w.order
	if !w.known {
		ids = w.fallbackApps
	}
	for _, id := range ids {
		stop := w.fallbackRemoves
		if p := w.apps[id]; p != nil {
			stop = p.stop
		}
		info, err := w.client.GetApp(ctx, id)
		var ae *marathon.APIError
		gone := errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound
		switch {
		case err != nil && !gone:
			return fmt.Errorf("deployment %s ended; reading %s: %w", w.id, id, err)
		case stop:
			if !gone {
				return fmt.Errorf("deployment %s ended before it removed %s", w.id, id)
			}
		case gone:
			return fmt.Errorf("deployment %s ended and %s is gone: another change removed it", w.id, id)
		case w.version != "" && info.Value.Version != w.version:
			return fmt.Errorf("deployment %s ended before it was done: another change took %s to version %s", w.id, id, info.Value.Version)
		}
	}
	return w.finish(ctx)
}

// finish shows the final state of a deployment that succeeded.
func (w *deploymentWatch) finish(ctx context.Context) error {
	w.refresh(ctx)
	w.show()
	fmt.Fprintf(w.out, "deployment %s finished\n", w.id)
	return nil
}

// progressLine says how far an app is.
func (w *deploymentWatch) progressLine(p *appProgress) string {
	if p.stop {
		return fmt.Sprintf("%s: stopping, %s left", p.id, plural(w.live(p.id), "task"))
	}
	running, healthy := w.running(p)
	if running > p.instances {
		return fmt.Sprintf("%s: %s running, scaling down to %d", p.id, plural(running, "task"), p.instances)
	}
	line := fmt.Sprintf("%s: %d/%d tasks running at version %s", p.id, running, p.instances, p.version)
	if p.checked {
		line += fmt.Sprintf(", %d healthy", healthy)
	}
	return line
}

// show tells what changed: on a terminal by redrawing the display, otherwise with a line
// for each new step, app progress and waiting reason.
func (w *deploymentWatch) show() {
	if w.terminal {
		w.draw()
		return
	}
	if !w.known {
		return
	}
	if w.step != w.printedStep {
		fmt.Fprintf(w.out, "step %d/%d: %s\n", w.step, w.totalSteps, w.actions)
		w.printedStep = w.step
	}
	for _, id := range w.order {
		p := w.apps[id]
		if line := w.progressLine(p); line != p.printed {
			fmt.Fprintln(w.out, line)
			p.printed = line
		}
		if p.waitingKey != p.printedWaiting {
			if p.waiting != "" {
				fmt.Fprintln(w.out, p.waiting)
			}
			p.printedWaiting = p.waitingKey
		}
	}
}

// draw replaces the terminal display with the current frame.
func (w *deploymentWatch) draw() {
	var b strings.Builder
	if w.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", w.drawn)
	}
	b.WriteString("\x1b[J")
	lines := w.frame(time.Since(w.start))
	for _, line := range lines {
		b.WriteString(truncate(line, w.width-1))
		b.WriteByte('\n')
	}
	w.drawn = len(lines)
	io.WriteString(w.out, b.String())
}

// frame is the terminal display: the deployment and its step, a bar per app, why apps
// wait, and the last status updates.
func (w *deploymentWatch) frame(elapsed time.Duration) []string {
	lines := []string{fmt.Sprintf("deployment %s  (%s)", w.id, formatAge(elapsed))}
	if w.known {
		lines = append(lines, fmt.Sprintf("  step %d/%d: %s", w.step, w.totalSteps, w.actions))
	}
	for _, id := range w.order {
		lines = append(lines, "  "+w.barLine(w.apps[id]))
	}
	for _, id := range w.order {
		if p := w.apps[id]; p.waiting != "" {
			lines = append(lines, "  "+p.waiting)
		}
	}
	for _, r := range w.recent {
		lines = append(lines, "    "+r)
	}
	return lines
}

// barLine is an app's progress bar: tasks running at the target version of the
// instances wanted, or for an app being stopped, the tasks stopped of those it had.
func (w *deploymentWatch) barLine(p *appProgress) string {
	if p.stop {
		left := w.live(p.id)
		return fmt.Sprintf("%s %s stopping, %s left", p.id, bar(p.initial-left, p.initial), plural(left, "task"))
	}
	running, healthy := w.running(p)
	line := fmt.Sprintf("%s %s %d/%d running at %s", p.id, bar(running, p.instances), running, p.instances, p.version)
	if p.checked {
		line += fmt.Sprintf(", %d healthy", healthy)
	}
	return line
}

// bar draws done of total as a bar of barWidth cells; nothing to do is a full bar.
func bar(done, total int) string {
	filled := barWidth
	if total > 0 {
		filled = min(max(done, 0)*barWidth/total, barWidth)
	}
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", barWidth-filled) + "]"
}

// truncate cuts a line to width runes so that it never wraps, which would break the
// redraw.
func truncate(line string, width int) string {
	if width <= 0 || utf8.RuneCountInString(line) <= width {
		return line
	}
	runes := []rune(line)
	return string(runes[:width-1]) + "…"
}
