package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

// Health checks (TaskInfo.health_check) run next to the task, as Mesos's executors ran
// them: delay_seconds after the task started the agent probes it, then again
// interval_seconds after each probe ended, each probe bounded by timeout_seconds. A
// change of health is reported as a TASK_RUNNING update with healthy set and reason
// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, through the reliable update path. Failures
// within grace_period_seconds of the start are ignored until the first success ends the
// grace; consecutive_failures failures in a row make the task unhealthy, and the agent
// kills it with the task's kill grace period. Its TASK_KILLED carries healthy=false, as
// Mesos's executors reported a kill for failing health checks (Mesos has no reason for
// it), and a message naming the last failure.

// The defaults of mesos.proto's HealthCheck, which frameworks written for Mesos rely on.
const (
	defaultHealthDelay    = 15 * time.Second
	defaultHealthInterval = 10 * time.Second
	defaultHealthTimeout  = 20 * time.Second
	defaultHealthGrace    = 10 * time.Second
	defaultHealthFailures = 3
)

// maxHealthSeconds bounds a health check's durations: a year is beyond any sensible
// value and far inside time.Duration's range.
const maxHealthSeconds = 365 * 24 * 60 * 60

// healthCheckTypes are the health check types the agent runs.
const (
	healthCommand = "COMMAND"
	healthHTTP    = "HTTP"
	healthTCP     = "TCP"
)

// healthCheck is a validated TaskInfo.health_check with its defaults applied.
type healthCheck struct {
	kind                            string
	delay, interval, timeout, grace time.Duration
	// failures is consecutive_failures; as in Mesos, 0 kills at the first counted failure.
	failures uint32
	// port is the HTTP or TCP port.
	port uint32
	// scheme and path make the HTTP URL; statuses are the healthy HTTP statuses, nil for
	// 200–399.
	scheme, path string
	statuses     []uint32
	command      *api.CommandInfo
}

// parseHealthCheck validates a task's health check; errors name the offending field.
func parseHealthCheck(hc *api.HealthCheck) (healthCheck, error) {
	check := healthCheck{kind: hc.Type, failures: defaultHealthFailures}
	if hc.ConsecutiveFailures != nil {
		check.failures = *hc.ConsecutiveFailures
	}
	var err error
	if check.delay, check.interval, check.timeout, err = probeTimings("health_check", hc.DelaySeconds, hc.IntervalSeconds, hc.TimeoutSeconds,
		defaultHealthDelay, defaultHealthInterval, defaultHealthTimeout); err != nil {
		return healthCheck{}, err
	}
	if check.grace, err = probeSeconds("health_check.grace_period_seconds", hc.GracePeriodSeconds, defaultHealthGrace); err != nil {
		return healthCheck{}, err
	}
	switch hc.Type {
	case healthHTTP:
		if hc.HTTP == nil {
			return healthCheck{}, errors.New("health_check.http: required for an HTTP health check")
		}
		return check, parseHTTPHealthCheck(&check, hc.HTTP)
	case healthTCP:
		if hc.TCP == nil {
			return healthCheck{}, errors.New("health_check.tcp: required for a TCP health check")
		}
		if err := validHealthPort("health_check.tcp.port", hc.TCP.Port); err != nil {
			return healthCheck{}, err
		}
		check.port = hc.TCP.Port
		return check, nil
	case healthCommand:
		if hc.Command == nil {
			return healthCheck{}, errors.New("health_check.command: required for a COMMAND health check")
		}
		if err := validProbeCommand("health_check.command", "health check", hc.Command); err != nil {
			return healthCheck{}, err
		}
		check.command = hc.Command
		return check, nil
	case "":
		return healthCheck{}, errors.New("health_check.type: missing; want COMMAND, HTTP or TCP")
	default:
		return healthCheck{}, fmt.Errorf("health_check.type: %q is not COMMAND, HTTP or TCP", hc.Type)
	}
}

func parseHTTPHealthCheck(check *healthCheck, h *api.HTTPHealthCheck) error {
	if err := validHealthPort("health_check.http.port", h.Port); err != nil {
		return err
	}
	check.port = h.Port
	switch h.Scheme {
	case "", "http":
		check.scheme = "http"
	case "https":
		check.scheme = "https"
	default:
		return fmt.Errorf("health_check.http.scheme: %q is not http or https", h.Scheme)
	}
	path, err := probePath("health_check.http.path", h.Path)
	if err != nil {
		return err
	}
	check.path = path
	for _, s := range h.Statuses {
		if s < 100 || s > 599 {
			return fmt.Errorf("health_check.http.statuses: %d is not an HTTP status (100-599)", s)
		}
	}
	check.statuses = h.Statuses
	return nil
}

func validHealthPort(field string, port uint32) error {
	if port == 0 || port > maxPort {
		return fmt.Errorf("%s: %d is not a port (1-%d)", field, port, maxPort)
	}
	return nil
}

// probePath is an HTTP probe's path ("/" when empty); field names it in errors.
func probePath(field, path string) (string, error) {
	if path == "" {
		return "/", nil
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("%s: %q does not start with /", field, path)
	}
	if _, err := url.Parse("http://127.0.0.1" + path); err != nil {
		return "", fmt.Errorf("%s: %q is not a URL path", field, path)
	}
	return path, nil
}

// validProbeCommand checks the command of a check (noun: "health check"); field
// ("health_check.command") names it in errors.
func validProbeCommand(field, noun string, c *api.CommandInfo) error {
	switch {
	case c.IsShell() && (c.Value == nil || *c.Value == ""):
		return errors.New(field + ".value: empty shell command")
	case !c.IsShell() && (c.Value == nil || *c.Value == ""):
		return errors.New(field + ".value: no executable")
	case len(c.URIs) > 0:
		return fmt.Errorf("%s.uris: not supported; a %s fetches nothing", field, noun)
	}
	if c.Environment != nil {
		for _, v := range c.Environment.Variables {
			if v.Type != "" && v.Type != "VALUE" {
				return fmt.Errorf("%s.environment: variable %q: type %q is not supported", field, v.Name, v.Type)
			}
			if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") || strings.ContainsRune(v.Value, 0) {
				return fmt.Errorf("%s.environment: variable %q is invalid", field, v.Name)
			}
		}
	}
	return nil
}

// probeTimings converts the delay, interval and timeout of a check (prefix names it in
// errors), each its default when unset; the interval must be positive.
func probeTimings(prefix string, delaySeconds, intervalSeconds, timeoutSeconds *float64, delayDefault, intervalDefault, timeoutDefault time.Duration) (delay, interval, timeout time.Duration, err error) {
	if delay, err = probeSeconds(prefix+".delay_seconds", delaySeconds, delayDefault); err != nil {
		return 0, 0, 0, err
	}
	if interval, err = probeSeconds(prefix+".interval_seconds", intervalSeconds, intervalDefault); err != nil {
		return 0, 0, 0, err
	}
	if interval == 0 {
		// Probing without pause would spin on the agent's CPUs.
		return 0, 0, 0, errors.New(prefix + ".interval_seconds: must be positive")
	}
	if timeout, err = probeSeconds(prefix+".timeout_seconds", timeoutSeconds, timeoutDefault); err != nil {
		return 0, 0, 0, err
	}
	return delay, interval, timeout, nil
}

// probeSeconds converts a check's seconds field, def when it is unset.
func probeSeconds(field string, seconds *float64, def time.Duration) (time.Duration, error) {
	if seconds == nil {
		return def, nil
	}
	s := *seconds
	if math.IsNaN(s) || s < 0 || s > maxHealthSeconds {
		return 0, fmt.Errorf("%s: %v is out of range (0-%d)", field, s, maxHealthSeconds)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// healthProbe runs one check and returns nil when the task is healthy, else the failure
// in words ("connect to 127.0.0.1:31002: connection refused").
type healthProbe func(ctx context.Context) error

// startHealthCheckLocked starts the health checker of a running task that has a health
// check. a.mu must be held, t.rec.Container set and t.done the channel its container
// goroutine closes.
func (a *Agent) startHealthCheckLocked(t *task) {
	if t.rec.Task.HealthCheck == nil || t.rec.Killing || t.rec.Container == nil {
		return
	}
	taskID := t.rec.Task.TaskID.Value
	check, err := parseHealthCheck(t.rec.Task.HealthCheck)
	if err != nil {
		// Checked at LAUNCH, so only a checkpoint written by another version gets here.
		a.log.Error("task has an invalid health check; not checking it", "task", taskID, "err", err)
		return
	}
	probe, err := a.healthProbeLocked(&t.rec, check)
	if err != nil {
		a.log.Error("cannot set the task's health check up; not checking it", "task", taskID, "err", err)
		return
	}
	start := t.rec.Started
	if start.IsZero() {
		start = time.Now()
	}
	// A health already reported means a check concluded before (in an earlier agent
	// process): the grace period is over.
	concluded := t.rec.Healthy != nil
	a.taskGoroutines.Add(1)
	go a.checkHealth(t, check, probe, start, concluded)
}

// healthRun is a checker's own state.
type healthRun struct {
	// graceOver is set by the first success.
	graceOver bool
	failures  uint32
}

// checkHealth probes the task until it ends, is killed, or fails its health check.
func (a *Agent) checkHealth(t *task, check healthCheck, probe healthProbe, start time.Time, concluded bool) {
	defer a.taskGoroutines.Done()
	run := healthRun{graceOver: concluded}
	probeTask(a, t, start.Add(check.delay), check.interval, check.timeout, probe, func(failure error) bool {
		return a.recordHealth(t, check, &run, start, failure)
	})
}

// probeTask probes t at first, then interval after each probe ended, each probe bounded by
// timeout (0: none), and hands each result to record, until record returns false, the
// task's container goroutine ends or the agent stops.
func probeTask[R any](a *Agent, t *task, first time.Time, interval, timeout time.Duration, probe func(context.Context) R, record func(R) bool) {
	ctx, cancel := context.WithCancel(a.stopCtx)
	defer cancel()
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	timer := time.NewTimer(time.Until(first))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		probeCtx, cancelProbe := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			probeCtx, cancelProbe = context.WithTimeout(ctx, timeout)
		}
		result := probe(probeCtx)
		cancelProbe()
		if ctx.Err() != nil {
			return
		}
		if !record(result) {
			return
		}
		timer.Reset(interval)
	}
}

// recordHealth applies one probe's result: a change of health is reported, and enough
// failures in a row kill the task. It reports whether checking goes on.
func (a *Agent) recordHealth(t *task, check healthCheck, run *healthRun, start time.Time, failure error) bool {
	a.mu.Lock()
	if t.rec.Killing || t.rec.State.Terminal() {
		a.mu.Unlock()
		return false
	}
	taskID := t.rec.Task.TaskID.Value
	if failure == nil {
		run.graceOver, run.failures = true, 0
		if t.rec.Healthy == nil || !*t.rec.Healthy {
			a.reportHealthLocked(t, t.rec, true, "")
		}
		a.mu.Unlock()
		return true
	}
	if !run.graceOver && time.Since(start) <= check.grace {
		a.mu.Unlock()
		a.log.Debug("health check failed within the grace period", "task", taskID, "failure", failure)
		return true
	}
	run.failures++
	if run.failures < check.failures {
		a.mu.Unlock()
		a.log.Info("health check failed", "task", taskID, "failures", run.failures, "of", check.failures, "failure", failure)
		return true
	}
	a.killUnhealthyLocked(t, run.failures, failure)
	containerID, grace := t.rec.ContainerID, a.killGraceLocked(t, nil)
	a.mu.Unlock()
	a.killContainer(taskID, containerID, grace)
	return false
}

// reportHealthLocked records and reports a change of t's health, with rec as its new
// record. a.mu must be held.
func (a *Agent) reportHealthLocked(t *task, rec taskRecord, healthy bool, message string) {
	rec.Healthy = &healthy
	a.updateLocked(t, rec, api.TaskStatus{
		State: api.TaskRunning, Source: api.SourceExecutor, Reason: api.ReasonTaskHealthCheckUpdated,
		Healthy: &healthy, Message: message,
	})
}

// killUnhealthyLocked marks t as killed for failing its health check (reporting it
// unhealthy, then TASK_KILLING to frameworks that want it); the caller kills the
// container. a.mu must be held.
func (a *Agent) killUnhealthyLocked(t *task, failures uint32, failure error) {
	rec := t.rec
	rec.Killing = true
	plural := "s"
	if failures == 1 {
		plural = ""
	}
	rec.UnhealthyKill = fmt.Sprintf("killed after %d consecutive failed health check%s, the last: %s", failures, plural, failure)
	a.log.Warn("task failed its health check; killing it", "task", rec.Task.TaskID.Value, "failures", failures, "failure", failure)
	if rec.Healthy == nil || *rec.Healthy {
		a.reportHealthLocked(t, rec, false, failure.Error())
	} else {
		if err := a.cp.putTask(&rec); err != nil {
			a.log.Error("cannot checkpoint kill request", "task", rec.Task.TaskID.Value, "err", err)
		}
		t.rec = rec
	}
	if t.rec.State != api.TaskKilling && t.rec.Framework.HasCapability(api.CapabilityTaskKillingState) {
		a.updateLocked(t, t.rec, api.TaskStatus{State: api.TaskKilling, Source: api.SourceExecutor})
	}
}

// unhealthyKillStatus words the terminal update of a task killed for failing its health
// check.
func unhealthyKillStatus(status api.TaskStatus, why string) api.TaskStatus {
	unhealthy := false
	status.Healthy = &unhealthy
	status.Message = why + "; " + status.Message
	return status
}

// healthProbeLocked builds the probe of rec's health check. a.mu must be held.
func (a *Agent) healthProbeLocked(rec *taskRecord, check healthCheck) (healthProbe, error) {
	switch check.kind {
	case healthHTTP:
		return httpProbe(check.scheme+"://"+probeAddr(rec, check.port)+check.path, check.statuses, check.timeout), nil
	case healthTCP:
		return tcpProbe(probeAddr(rec, check.port), check.timeout), nil
	default:
		return a.commandProbeLocked(rec, check)
	}
}

// probeResult is what one probe of a task saw: an HTTP answer, a TCP connection, a
// command's exit. Health checks and checks interpret it each their own way.
type probeResult struct {
	// err says why there is no answer: no HTTP response, no TCP connection, a command that
	// could not run, timed out or was killed by a signal.
	err error
	// code is the HTTP status code or the command's exit code, when err is nil.
	code int
	// status is the HTTP status line's text ("503 Service Unavailable").
	status string
}

// probeAddr is the address HTTP and TCP probes reach rec's port at.
func probeAddr(rec *taskRecord, port uint32) string {
	return net.JoinHostPort(healthHost(rec.Container), strconv.FormatUint(uint64(port), 10))
}

// healthHost is the address HTTP and TCP checks reach a task at: its own address on a
// network of its own (bridge), else loopback, as the task shares the host's network.
func healthHost(c *isolate.State) string {
	for _, n := range c.NetworkInfos {
		for _, ip := range n.IPAddresses {
			if ip.IPAddress != "" {
				return ip.IPAddress
			}
		}
	}
	return "127.0.0.1"
}

func httpProbe(target string, statuses []uint32, timeout time.Duration) healthProbe {
	get := httpGetProbe(target, timeout)
	return func(ctx context.Context) error {
		r := get(ctx)
		if r.err != nil {
			return r.err
		}
		if !healthyStatus(r.code, statuses) {
			return fmt.Errorf("HTTP GET %s: %s", target, r.status)
		}
		return nil
	}
}

// httpGetProbe GETs target and reports the answer's status.
func httpGetProbe(target string, timeout time.Duration) func(context.Context) probeResult {
	client := &http.Client{
		Transport: &http.Transport{
			// A fresh connection per check, as a probe from outside would make; never a
			// proxy, the task is local.
			DisableKeepAlives: true,
			// Like Mesos's, HTTPS checks do not verify the task's certificate: tasks serve
			// self-signed ones, and the check is about liveness, not identity.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		},
		// A redirect (3xx) is an answer, and healthy by default.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context) probeResult {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return probeResult{err: fmt.Errorf("HTTP GET %s: %w", target, err)}
		}
		resp, err := client.Do(req)
		if err != nil {
			return probeResult{err: fmt.Errorf("HTTP GET %s: %s", target, probeError(err, timeout))}
		}
		resp.Body.Close()
		return probeResult{code: resp.StatusCode, status: resp.Status}
	}
}

// healthyStatus reports whether an HTTP status means healthy: one of statuses, or
// 200–399 when none are given.
func healthyStatus(code int, statuses []uint32) bool {
	if len(statuses) == 0 {
		return code >= 200 && code <= 399
	}
	return slices.Contains(statuses, uint32(code))
}

func tcpProbe(addr string, timeout time.Duration) healthProbe {
	connect := tcpConnectProbe(addr, timeout)
	return func(ctx context.Context) error { return connect(ctx).err }
}

// tcpConnectProbe connects to addr and reports whether it could.
func tcpConnectProbe(addr string, timeout time.Duration) func(context.Context) probeResult {
	return func(ctx context.Context) probeResult {
		var dialer net.Dialer
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return probeResult{err: fmt.Errorf("connect to %s: %s", addr, probeError(err, timeout))}
		}
		conn.Close()
		return probeResult{}
	}
}

// probeError words why a connection or request failed: "connection refused", "timed out
// after 2s".
func probeError(err error, timeout time.Duration) string {
	var errno syscall.Errno
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out after " + timeout.String()
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &urlErr):
		return urlErr.Err.Error()
	}
	return err.Error()
}

// commandProbeLocked builds a COMMAND health check's probe. a.mu must be held.
func (a *Agent) commandProbeLocked(rec *taskRecord, check healthCheck) (healthProbe, error) {
	run, err := a.commandRunLocked(rec, check.command, check.timeout)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		r := run(ctx)
		if r.err != nil {
			return r.err
		}
		if r.code != 0 {
			return fmt.Errorf("command exited with status %d", r.code)
		}
		return nil
	}, nil
}

// commandRunLocked builds a probe that runs a check's command c and reports its exit code.
// In a container of a containerizer that can run processes inside its containers (runc),
// the command runs there, as Mesos ran it: in the task's namespaces, root and cgroups, as
// its user, in its working directory, with its environment and the check command's.
// Otherwise it runs on the host in the task's sandbox, with the task's environment (the
// command's variables and the agent's, as the task got them, then the check command's) and
// as the task's user. a.mu must be held.
func (a *Agent) commandRunLocked(rec *taskRecord, c *api.CommandInfo, timeout time.Duration) (func(context.Context) probeResult, error) {
	if execer, ok := a.cfg.Containerizer.(isolate.Execer); ok && rec.Container != nil && rec.Container.Kind == isolate.RuncKind {
		argv := []string{"/bin/sh", "-c", *c.Value}
		if !c.IsShell() {
			// The value is what runs; the arguments are its argv, their first its name.
			argv = []string{*c.Value}
			if len(c.Arguments) > 1 {
				argv = append(argv, c.Arguments[1:]...)
			}
		}
		env := appendCommandEnv(nil, c.Environment)
		containerID := rec.ContainerID
		return func(ctx context.Context) probeResult {
			code, err := execer.Exec(ctx, containerID, argv, env)
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				return probeResult{err: fmt.Errorf("command timed out after %s", timeout)}
			case err != nil:
				return probeResult{err: fmt.Errorf("command: %w", err)}
			}
			return probeResult{code: code}
		}, nil
	}
	ports, err := taskPorts(rec.Task.Resources)
	if err != nil {
		return nil, fmt.Errorf("resources: %w", err)
	}
	userName := rec.Framework.User
	switch {
	case c.User != nil && *c.User != "":
		userName = *c.User
	case rec.Task.Command != nil && rec.Task.Command.User != nil && *rec.Task.Command.User != "":
		userName = *rec.Task.Command.User
	}
	// An unknown user fails every check, as it would have failed the task's launch.
	cred, userErr := lookupCredential(userName)
	env := hostBaseEnv(os.Environ())
	if cred != nil {
		env = append(env, "HOME="+cred.home, "USER="+userName, "LOGNAME="+userName)
	}
	if rec.Task.Command != nil {
		env = appendCommandEnv(env, rec.Task.Command.Environment)
	}
	env = append(env, taskEnv(taskEnvInput{
		sandbox:     rec.Sandbox,
		taskID:      rec.Task.TaskID.Value,
		frameworkID: rec.FrameworkID,
		agentID:     a.agentID,
		hostname:    a.cfg.Hostname,
		ports:       ports,
	})...)
	env = appendCommandEnv(env, c.Environment)

	path, args := "/bin/sh", []string{"sh", "-c", *c.Value}
	if !c.IsShell() {
		path, args = *c.Value, c.Arguments
		if len(args) == 0 {
			args = []string{*c.Value}
		}
	}
	sandbox := rec.Sandbox
	return func(ctx context.Context) probeResult {
		if userErr != nil {
			return probeResult{err: fmt.Errorf("command: %w", userErr)}
		}
		exe, err := lookPathIn(path, env, sandbox)
		if err != nil {
			return probeResult{err: fmt.Errorf("command: %w", err)}
		}
		cmd := exec.CommandContext(ctx, exe)
		cmd.Args, cmd.Env, cmd.Dir = args, env, sandbox
		// Its own process group, so a timeout kills what the shell started too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if cred != nil {
			cmd.SysProcAttr.Credential = &cred.Credential
		}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		err = cmd.Run()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			return probeResult{}
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return probeResult{err: fmt.Errorf("command timed out after %s", timeout)}
		case errors.As(err, &exitErr):
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return probeResult{err: fmt.Errorf("command terminated with signal %s", signalName(int(ws.Signal())))}
			}
			return probeResult{code: exitErr.ExitCode()}
		default:
			return probeResult{err: fmt.Errorf("command: %w", err)}
		}
	}, nil
}

// hostBaseEnv picks the variables a task inherits from the agent's environment, with a
// PATH even when the agent has none.
func hostBaseEnv(agentEnv []string) []string {
	var env []string
	for _, name := range []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"} {
		if value, ok := envLookup(agentEnv, name); ok {
			env = append(env, name+"="+value)
		}
	}
	if _, ok := envLookup(env, "PATH"); !ok {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return env
}

// appendCommandEnv appends a CommandInfo's variables; later definitions win when the
// command runs.
func appendCommandEnv(env []string, e *api.Environment) []string {
	if e == nil {
		return env
	}
	for _, v := range e.Variables {
		env = append(env, v.Name+"="+v.Value)
	}
	return env
}

// envLookup returns the last definition of name in env.
func envLookup(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if value, ok := strings.CutPrefix(env[i], name+"="); ok {
			return value, true
		}
	}
	return "", false
}

// lookPathIn finds an executable as execvp(3) would with env's PATH; a name with a slash
// is taken as it is, relative to dir. Relative PATH entries are relative to dir.
func lookPathIn(file string, env []string, dir string) (string, error) {
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) {
			return filepath.Join(dir, file), nil
		}
		return file, nil
	}
	pathList, _ := envLookup(env, "PATH")
	for _, entry := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(entry) {
			entry = filepath.Join(dir, entry)
		}
		candidate := filepath.Join(entry, file)
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in PATH", file)
}

// userCredential is who a check runs as, with the user's home directory.
type userCredential struct {
	syscall.Credential
	home string
}

// lookupCredential resolves the user a check runs as: nil for the empty name and for the
// agent's own user, which need no switch.
func lookupCredential(name string) (*userCredential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", name, err)
	}
	if u.Uid == strconv.Itoa(os.Getuid()) {
		return nil, nil
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	return &userCredential{Credential: syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, home: u.HomeDir}, nil
}
