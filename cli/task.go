package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

// frameworkName is the name `atoll task run` subscribes with.
const frameworkName = "atoll-task-run"

// refuseSeconds is how long declined offers stay away from `task run`: long enough not to
// churn the allocator, short enough to notice resources freed on a busy agent.
const refuseSeconds = 5.0

// sandboxLabel is the status-update label in which agents report a task's sandbox.
const sandboxLabel = "sandbox_directory"

// taskRunOptions are the flags of `atoll task run`.
type taskRunOptions struct {
	name            string
	cpus, mem, disk float64
	ports           int
	env             []string
	role            string
	shell           bool
}

func (a *app) taskRunCmd() *cobra.Command {
	o := taskRunOptions{cpus: 0.1, mem: 32, role: "*", shell: true}
	cmd := &cobra.Command{
		Use:   "run [flags] [--] COMMAND [ARG...]",
		Short: "Run a command as a task and wait for its end",
		Long: `run launches one task, as mesos-execute did: it waits for an offer that fits, launches
the command, prints the task's status updates and exits 0 when the task finished, 1 otherwise.
The arguments are quoted for /bin/sh -c; for shell syntax run sh -c '...'. Ctrl-C kills the task.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("task run needs a command: atoll task run [flags] -- COMMAND [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runTask(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	// Flags end at the command, so `atoll task run ls -l` works without "--".
	f.SetInterspersed(false)
	f.StringVar(&o.name, "name", "", "task name (default: the command's name)")
	f.Float64Var(&o.cpus, "cpus", o.cpus, "CPUs for the task")
	f.Float64Var(&o.mem, "mem", o.mem, "memory for the task, MB")
	f.Float64Var(&o.disk, "disk", o.disk, "disk for the task, MB")
	f.IntVar(&o.ports, "ports", 0, "number of host ports for the task")
	f.StringArrayVar(&o.env, "env", nil, "environment variable NAME=value for the task; repeatable")
	f.StringVar(&o.role, "role", o.role, "role whose resources the task uses")
	f.BoolVar(&o.shell, "shell", o.shell, "run the command through /bin/sh -c; false executes it directly")
	return cmd
}

// need is what a task asks of an offer.
type need struct {
	cpus, mem, disk float64
	ports           int
}

func (n need) String() string {
	s := "cpus:" + formatNumber(n.cpus) + ";mem:" + formatNumber(n.mem)
	if n.disk > 0 {
		s += ";disk:" + formatNumber(n.disk)
	}
	if n.ports > 0 {
		s += ";ports:" + strconv.Itoa(n.ports)
	}
	return s
}

// newTaskInfo builds the task `task run` launches, still without agent and resources
// (the offer supplies them). idSuffix makes its id unique.
func newTaskInfo(o taskRunOptions, args []string, idSuffix string) (api.TaskInfo, need, error) {
	switch {
	case o.cpus <= 0 || math.IsNaN(o.cpus) || math.IsInf(o.cpus, 0):
		return api.TaskInfo{}, need{}, usagef("--cpus %v: want more than 0", o.cpus)
	case o.mem < 0 || math.IsNaN(o.mem) || math.IsInf(o.mem, 0):
		return api.TaskInfo{}, need{}, usagef("--mem %v: want 0 or more", o.mem)
	case o.disk < 0 || math.IsNaN(o.disk) || math.IsInf(o.disk, 0):
		return api.TaskInfo{}, need{}, usagef("--disk %v: want 0 or more", o.disk)
	case o.ports < 0:
		return api.TaskInfo{}, need{}, usagef("--ports %d: want 0 or more", o.ports)
	case o.role == "":
		return api.TaskInfo{}, need{}, usagef("--role: empty")
	}
	command := &api.CommandInfo{}
	if o.shell {
		value := shellJoin(args)
		command.Value = &value
	} else {
		shell := false
		command.Shell = &shell
		command.Value = &args[0]
		command.Arguments = args
	}
	for _, kv := range o.env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return api.TaskInfo{}, need{}, usagef("--env %q: want NAME=value", kv)
		}
		if command.Environment == nil {
			command.Environment = &api.Environment{}
		}
		command.Environment.Variables = append(command.Environment.Variables, api.EnvironmentVariable{Name: name, Value: value})
	}
	name := o.name
	if name == "" {
		name = commandName(args[0])
	}
	task := api.TaskInfo{Name: name, TaskID: api.TaskID{Value: name + "-" + idSuffix}, Command: command}
	return task, need{cpus: o.cpus, mem: o.mem, disk: o.disk, ports: o.ports}, nil
}

// commandName makes a task name of a command: its base name with anything unusual in a
// task id replaced by "-".
func commandName(command string) string {
	name := strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '.' || r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, path.Base(command))
	if strings.Trim(name, ".-") == "" {
		return "task"
	}
	return name
}

// shellJoin quotes args for /bin/sh so that it runs exactly them as one command.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, arg := range args {
		quoted[i] = shellQuote(arg, i == 0)
	}
	return strings.Join(quoted, " ")
}

// shellReserved are the words sh treats as syntax in command position.
var shellReserved = map[string]bool{
	"!": true, "{": true, "}": true, "case": true, "do": true, "done": true, "elif": true, "else": true,
	"esac": true, "fi": true, "for": true, "if": true, "in": true, "then": true, "until": true, "while": true,
}

// shellQuote quotes one word for sh; first says it is the command name, where NAME=value
// would be an assignment and reserved words are syntax.
func shellQuote(arg string, first bool) string {
	safe := arg != "" && !(first && shellReserved[arg])
	for _, r := range arg {
		if !(r < 0x80 && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("@%+:,./_-", r) || r == '=' && !first)) {
			safe = false
			break
		}
	}
	if safe {
		return arg
	}
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics if the OS source does)
	return hex.EncodeToString(b)
}

func currentUser(getenv func(string) string) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := getenv("USER"); name != "" {
		return name
	}
	return strconv.Itoa(os.Getuid())
}

// runTask is `atoll task run`: subscribe, launch on the first offer that fits, follow the
// task to its end, tear the framework down.
func (a *app) runTask(ctx context.Context, o taskRunOptions, args []string) error {
	task, need, err := newTaskInfo(o, args, a.newID())
	if err != nil {
		return err
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	info := api.FrameworkInfo{User: currentUser(a.getenv), Name: frameworkName, Role: o.role, Hostname: hostname}
	stream, err := client.Subscribe(ctx, info, nil)
	if err != nil {
		return err
	}
	r := &taskRunner{a: a, stream: stream, task: task, need: need, role: o.role, lacks: map[string][]lack{}}
	return r.run(ctx)
}

// taskRunner follows one `task run` subscription. Only run's goroutine touches it.
type taskRunner struct {
	a      *app
	stream *api.SchedulerStream
	task   api.TaskInfo
	need   need
	role   string

	// lacks holds, by agent id, what that agent's latest offer lacked.
	lacks    map[string][]lack
	launched bool
	// host is the agent's hostname once launched; sandbox the sandbox directory once an
	// update reported it; reached whether the task got to its agent.
	host    string
	sandbox string
	reached bool
	// last is the last update printed.
	last *api.TaskStatus
	// streamEnded says the master ended the subscription, which removes the framework.
	streamEnded bool
}

type streamItem struct {
	event *api.Event
	err   error
}

func (r *taskRunner) run(ctx context.Context) error {
	events := make(chan streamItem)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ev, err := r.stream.Next()
			select {
			case events <- streamItem{ev, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		r.teardown()
		close(done)
		_ = r.stream.Close()
		wg.Wait()
	}()

	interruptCtx, stopSignals := r.a.interrupted(ctx)
	defer stopSignals()
	interrupt := interruptCtx.Done()
	report := time.NewTicker(r.a.waitReport)
	defer report.Stop()
	var killTimeout <-chan time.Time

	out := r.a.stdout
	fmt.Fprintf(out, "waiting for an offer with %s …\n", r.need)
	for {
		select {
		case <-interrupt:
			interrupt = nil
			stopSignals()
			if !r.launched {
				fmt.Fprintln(out, "interrupted before the task was launched")
				return exitCode(1)
			}
			fmt.Fprintf(out, "interrupted: killing task %s …\n", r.task.TaskID.Value)
			if err := r.stream.Kill(ctx, r.task.TaskID, &r.task.AgentID); err != nil {
				return fmt.Errorf("kill task %s: %w", r.task.TaskID.Value, err)
			}
			timer := time.NewTimer(r.a.killWait)
			defer timer.Stop()
			killTimeout = timer.C
		case <-killTimeout:
			return fmt.Errorf("task %s did not end within %s of being killed", r.task.TaskID.Value, r.a.killWait)
		case <-report.C:
			if !r.launched {
				fmt.Fprintln(out, r.waitingReason())
			}
		case item := <-events:
			if item.err != nil {
				r.streamEnded = true
				if item.err == io.EOF {
					return errors.New("the master ended the subscription")
				}
				return fmt.Errorf("subscription: %w", item.err)
			}
			if done, err := r.handle(ctx, item.event); done || err != nil {
				return err
			}
		}
	}
}

// teardown removes the framework, which also kills the task if it still runs.
func (r *taskRunner) teardown() {
	if r.streamEnded || r.stream.FrameworkID().Value == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := r.stream.Teardown(ctx); err != nil {
		fmt.Fprintf(r.a.stderr, "atoll: %v\n", err)
	}
}

// handle acts on one event. done says the task ended; err is then its outcome (nil when
// it finished), otherwise why following it failed.
func (r *taskRunner) handle(ctx context.Context, ev *api.Event) (done bool, err error) {
	switch ev.Type {
	case api.EventOffers:
		if ev.Offers != nil {
			return false, r.offers(ctx, ev.Offers.Offers)
		}
	case api.EventUpdate:
		if ev.Update != nil {
			return r.update(ctx, ev.Update.Status)
		}
	case api.EventError:
		msg := "no reason given"
		if ev.Error != nil {
			msg = ev.Error.Message
		}
		r.streamEnded = true
		return false, fmt.Errorf("the master ended the subscription: %s", msg)
	case api.EventFailure:
		if f := ev.Failure; f != nil && f.AgentID != nil && f.ExecutorID == nil && r.launched && *f.AgentID == r.task.AgentID {
			fmt.Fprintf(r.a.stdout, "agent %s (%s) failed\n", f.AgentID.Value, r.host)
		}
	}
	return false, nil
}

// offers launches the task on the first offer that fits and declines the others.
func (r *taskRunner) offers(ctx context.Context, offers []api.Offer) error {
	var decline []api.OfferID
	for _, offer := range offers {
		if r.launched {
			decline = append(decline, offer.ID)
			continue
		}
		resources, lacks := fit(offer.Resources, r.need)
		if len(lacks) > 0 {
			r.lacks[offer.AgentID.Value] = lacks
			decline = append(decline, offer.ID)
			continue
		}
		if err := r.launch(ctx, offer, resources); err != nil {
			return err
		}
	}
	if len(decline) == 0 {
		return nil
	}
	return r.stream.Decline(ctx, decline, refuse())
}

func refuse() *api.Filters {
	seconds := refuseSeconds
	return &api.Filters{RefuseSeconds: &seconds}
}

func (r *taskRunner) launch(ctx context.Context, offer api.Offer, resources []api.Resource) error {
	r.task.AgentID = offer.AgentID
	r.task.Resources = resources
	op := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: []api.TaskInfo{r.task}}}
	if err := r.stream.Accept(ctx, []api.OfferID{offer.ID}, []api.OfferOperation{op}, refuse()); err != nil {
		return fmt.Errorf("launch task %s on %s: %w", r.task.TaskID.Value, offer.Hostname, err)
	}
	r.launched = true
	r.host = offer.Hostname
	fmt.Fprintf(r.a.stdout, "launching task %s on %s\n", r.task.TaskID.Value, r.host)
	// One task is all this framework launches; further offers would only be declined.
	if err := r.stream.Suppress(ctx); err != nil {
		fmt.Fprintf(r.a.stderr, "atoll: %v\n", err)
	}
	return nil
}

// update prints and acknowledges a status update.
func (r *taskRunner) update(ctx context.Context, status api.TaskStatus) (done bool, err error) {
	ours := status.TaskID == r.task.TaskID
	if ours {
		if dir := status.Labels.Get(sandboxLabel); dir != "" {
			r.sandbox = dir
		}
		if status.Source != api.SourceMaster {
			r.reached = true
		}
		// Updates are delivered at least once; print a repeated one once.
		if r.last == nil || r.last.State != status.State || r.last.Message != status.Message {
			fmt.Fprintln(r.a.stdout, r.statusLine(status))
		}
		r.last = &status
	}
	if len(status.UUID) > 0 {
		if err := r.stream.Acknowledge(ctx, status); err != nil {
			return false, err
		}
	}
	if !ours || !status.State.Terminal() {
		return false, nil
	}
	r.printSandbox()
	if status.State == api.TaskFinished {
		return true, nil
	}
	return true, exitCode(1)
}

func (r *taskRunner) statusLine(status api.TaskStatus) string {
	line := string(status.State)
	if status.State == api.TaskRunning {
		agent := r.task.AgentID
		if status.AgentID != nil {
			agent = *status.AgentID
		}
		line += fmt.Sprintf(" on %s (agent %s)", r.host, agent.Value)
	}
	if status.Message != "" {
		line += ": " + status.Message
	}
	if status.Reason != "" && status.State != api.TaskRunning {
		line += " (" + string(status.Reason) + ")"
	}
	return line
}

// printSandbox says where the ended task's output is.
func (r *taskRunner) printSandbox() {
	switch {
	case r.sandbox != "":
		fmt.Fprintf(r.a.stdout, "stdout: %s:%s\nstderr: %s:%s\n",
			r.host, path.Join(r.sandbox, "stdout"), r.host, path.Join(r.sandbox, "stderr"))
	case r.reached:
		fmt.Fprintf(r.a.stdout, "task %s ran on %s (agent %s); its stdout and stderr are in its sandbox there\n",
			r.task.TaskID.Value, r.host, r.task.AgentID.Value)
	}
}

// waitingReason says why no offer fitted so far.
func (r *taskRunner) waitingReason() string {
	if len(r.lacks) == 0 {
		return fmt.Sprintf("no offers yet: is an agent registered with free resources for role %s?", r.role)
	}
	return lackSummary(r.lacks)
}

// lack is a resource an offer has too little of.
type lack struct {
	name       string
	have, need float64
}

// lackSummary sums up, per resource, how many agents' offers lacked it.
func lackSummary(byAgent map[string][]lack) string {
	type total struct {
		agents     int
		have, need float64
	}
	totals := map[string]*total{}
	for _, lacks := range byAgent {
		for _, l := range lacks {
			t := totals[l.name]
			if t == nil {
				t = &total{have: l.have, need: l.need}
				totals[l.name] = t
			}
			t.agents++
			t.have = max(t.have, l.have)
		}
	}
	var parts []string
	for _, name := range []string{"cpus", "mem", "disk", "ports"} {
		t := totals[name]
		switch {
		case t == nil:
		case t.agents == 1:
			parts = append(parts, fmt.Sprintf("offers from 1 agent lack %s (have %s, need %s)", name, formatNumber(t.have), formatNumber(t.need)))
		default:
			parts = append(parts, fmt.Sprintf("offers from %d agents lack %s (have at most %s, need %s)", t.agents, name, formatNumber(t.have), formatNumber(t.need)))
		}
	}
	return strings.Join(parts, "; ")
}

// fit takes what n needs from an offer's resources: the task's resources, each taken from
// an offered resource with its role and allocation kept, or else what the offer lacks.
func fit(offered []api.Resource, n need) ([]api.Resource, []lack) {
	var taken []api.Resource
	var lacks []lack
	for _, want := range []struct {
		name   string
		amount float64
	}{{"cpus", n.cpus}, {"mem", n.mem}, {"disk", n.disk}} {
		if want.amount <= 0 {
			continue
		}
		got, have := takeScalar(offered, want.name, want.amount)
		if got == nil {
			lacks = append(lacks, lack{want.name, have, want.amount})
		}
		taken = append(taken, got...)
	}
	if n.ports > 0 {
		got, have := takePorts(offered, n.ports)
		if got == nil {
			lacks = append(lacks, lack{"ports", float64(have), float64(n.ports)})
		}
		taken = append(taken, got...)
	}
	if len(lacks) > 0 {
		return nil, lacks
	}
	return taken, nil
}

// milli converts a scalar to the thousandths Mesos computes in.
func milli(v float64) int64 { return int64(math.Round(v * 1000)) }

// takeScalar takes amount of the named scalar resource, or returns nil and how much
// there is.
func takeScalar(offered []api.Resource, name string, amount float64) ([]api.Resource, float64) {
	var have int64
	for _, res := range offered {
		if res.Name == name && res.Type == api.Scalar && res.Scalar != nil && res.Scalar.Value > 0 {
			have += milli(res.Scalar.Value)
		}
	}
	left := milli(amount)
	if have < left {
		return nil, float64(have) / 1000
	}
	var taken []api.Resource
	for _, res := range offered {
		if left == 0 {
			break
		}
		if res.Name != name || res.Type != api.Scalar || res.Scalar == nil || res.Scalar.Value <= 0 {
			continue
		}
		take := min(left, milli(res.Scalar.Value))
		part := res
		part.Scalar = &api.ValueScalar{Value: float64(take) / 1000}
		taken = append(taken, part)
		left -= take
	}
	return taken, float64(have) / 1000
}

// takePorts takes the n lowest offered ports, or returns nil and how many there are.
func takePorts(offered []api.Resource, n int) ([]api.Resource, uint64) {
	isPorts := func(res api.Resource) bool {
		return res.Name == "ports" && res.Type == api.Ranges && res.Ranges != nil
	}
	var have uint64
	for _, res := range offered {
		if !isPorts(res) {
			continue
		}
		for _, rg := range res.Ranges.Range {
			if rg.End >= rg.Begin {
				// Saturate rather than overflow on absurd ranges; n is all that matters.
				have += min(rg.End-rg.Begin, uint64(n)) + 1
			}
		}
	}
	if have < uint64(n) {
		return nil, have
	}
	var taken []api.Resource
	left := uint64(n)
	for _, res := range offered {
		if left == 0 {
			break
		}
		if !isPorts(res) {
			continue
		}
		var picked []api.ValueRange
		for _, rg := range res.Ranges.Range {
			if left == 0 || rg.End < rg.Begin {
				continue
			}
			count := min(rg.End-rg.Begin, left-1) + 1
			picked = append(picked, api.ValueRange{Begin: rg.Begin, End: rg.Begin + count - 1})
			left -= count
		}
		if len(picked) > 0 {
			part := res
			part.Ranges = &api.ValueRanges{Range: picked}
			taken = append(taken, part)
		}
	}
	return taken, have
}

func (a *app) taskKillCmd() *cobra.Command {
	var frameworkID string
	cmd := &cobra.Command{
		Use:   "kill TASK_ID",
		Short: "Kill a task",
		Args:  oneArg("task id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			taskID := args[0]
			if frameworkID == "" {
				if frameworkID, err = owningFramework(ctx, client, taskID); err != nil {
					return err
				}
			}
			if err := client.KillTask(ctx, frameworkID, taskID); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "kill requested for %s\n", taskID)
			return nil
		},
	}
	cmd.Flags().StringVar(&frameworkID, "framework", "", "ID of the task's framework (default: looked up)")
	return cmd
}

// owningFramework finds the framework of a task that has not ended.
func owningFramework(ctx context.Context, client *api.Client, taskID string) (string, error) {
	tasks, err := client.GetTasks(ctx)
	if err != nil {
		return "", err
	}
	var frameworks []string
	for _, t := range slices.Concat(tasks.Tasks, tasks.UnreachableTasks, tasks.OrphanTasks) {
		if t.TaskID.Value == taskID && !slices.Contains(frameworks, t.FrameworkID.Value) {
			frameworks = append(frameworks, t.FrameworkID.Value)
		}
	}
	switch len(frameworks) {
	case 0:
		return "", fmt.Errorf("no task %q is running (see atoll tasks)", taskID)
	case 1:
		return frameworks[0], nil
	}
	slices.Sort(frameworks)
	return "", usagef("task %q exists in frameworks %s: choose one with --framework", taskID, strings.Join(frameworks, ", "))
}
