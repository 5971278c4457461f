// Package agent runs tasks on a node: it registers with the leading master over the agent
// stream, launches and kills tasks through an isolate.Containerizer, checkpoints tasks and
// status updates so nothing is lost across restarts, and resends unacknowledged updates
// until the framework acknowledges them.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

// ErrShutdown is returned by Run once Shutdown has begun.
var ErrShutdown = errors.New("agent is shut down")

// bootIDPath is where Linux publishes the id of the current boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// Agent runs tasks for the masters. Its methods are safe for concurrent use.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	cp         *checkpoint
	resources  []api.Resource
	attributes []api.Attribute
	bootID     string
	// ip is the address tasks are reachable at (host networking) and the agent API is
	// advertised on.
	ip        string
	sandboxes string

	listener   net.Listener
	httpServer *http.Server
	httpDone   chan struct{}
	transport  *http.Transport
	client     *http.Client

	// stopCtx ends with Shutdown; task goroutines and calls hang off it.
	stopCtx context.Context
	stop    context.CancelFunc
	// kick wakes the status update sender.
	kick chan struct{}
	// launchSlots holds a token per container being launched (see launchSlot).
	launchSlots chan struct{}
	// recovered is closed once Run has recovered the checkpointed tasks' containers.
	recovered chan struct{}
	// taskGoroutines counts the goroutines launching and watching containers; background
	// counts container destroys. Both only grow while Run runs.
	taskGoroutines sync.WaitGroup
	background     sync.WaitGroup

	mu      sync.Mutex
	agentID string
	tasks   map[string]*task
	session *session
	runDone chan struct{}
	// stopping is set when Shutdown begins: launches are refused from then on.
	stopping     bool
	shutdownDone chan struct{}
}

// task is the agent's live view of one task; guarded by Agent.mu.
type task struct {
	rec taskRecord
	// queue holds the unacknowledged updates, oldest first; only queue[0] is ever sent.
	queue []queuedUpdate
	// nextSend is when queue[0] is (re)sent; backoff the wait after that send.
	nextSend time.Time
	backoff  time.Duration
	// killGrace is the grace period of the latest kill request.
	killGrace time.Duration
	// spec is the container to start, built when LAUNCH arrived; kept in memory only,
	// since a restarted agent never launches a checkpointed task again.
	spec isolate.LaunchSpec
	// done is closed when the goroutine launching or watching the container exits; nil
	// while none runs.
	done chan struct{}
	// written settles once the task's record from LAUNCH is written to the checkpoint,
	// where a restarted agent finds it (it is synced with the task's first update); the
	// container is not started before.
	written *cpOp
}

// TaskView is a snapshot of one task the agent holds.
type TaskView struct {
	FrameworkID string
	TaskID      string
	// State is the state of the latest status update made for the task.
	State       api.TaskState
	ContainerID string
	Sandbox     string
	// PendingUpdates counts checkpointed updates not yet acknowledged.
	PendingUpdates int
	// Healthy is the health last reported for the task; nil while it has no health check
	// or its check has not concluded yet.
	Healthy *bool
}

// New opens (or creates) the agent's work dir and checkpoint, detects its resources and
// starts its HTTP listener. Run connects it to the masters; Shutdown releases everything.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	workDir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent work dir: %w", err)
	}
	cfg.WorkDir = workDir
	if cfg.Hostname == "" {
		if cfg.Hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("agent hostname: %w", err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bootID := cfg.BootID
	if bootID == "" {
		b, err := os.ReadFile(bootIDPath)
		if err != nil {
			return nil, fmt.Errorf("agent boot id: %w", err)
		}
		bootID = strings.TrimSpace(string(b))
	}
	attributes, err := parseAttributes(cfg.Attributes)
	if err != nil {
		return nil, fmt.Errorf("agent attributes: %w", err)
	}
	sandboxes := filepath.Join(workDir, "sandboxes")
	if err := os.MkdirAll(sandboxes, 0o755); err != nil {
		return nil, fmt.Errorf("agent work dir: %w", err)
	}
	total, err := resolveResources(cfg.Resources, systemProbe(workDir))
	if err != nil {
		return nil, fmt.Errorf("agent resources: %w", err)
	}
	cp, err := openCheckpoint(filepath.Join(workDir, "meta"))
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Status updates go out concurrently; keep that many connections to the master open
	// instead of dialling anew for most calls (the default keeps two).
	transport.MaxIdleConnsPerHost = maxConcurrentUpdates
	if cfg.MasterTLS != nil {
		transport.TLSClientConfig = cfg.MasterTLS.Clone()
	}
	var toMasters http.RoundTripper = transport
	if cfg.MasterToken != "" {
		toMasters = bearerTransport{base: transport, token: cfg.MasterToken}
	}
	a := &Agent{
		cfg:        cfg,
		log:        logger.With("component", "agent"),
		cp:         cp,
		resources:  total.Proto(),
		attributes: attributes,
		bootID:     bootID,
		sandboxes:  sandboxes,
		transport:  transport,
		client: &http.Client{
			Transport: toMasters,
			// Redirects from non-leaders are followed by hand, to log them and to learn
			// the leader's address for later calls.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		kick:        make(chan struct{}, 1),
		launchSlots: make(chan struct{}, cfg.MaxConcurrentLaunches),
		recovered:   make(chan struct{}),
		tasks:       map[string]*task{},
	}
	cp.onCommit = a.kickSender
	if err := a.load(); err != nil {
		cp.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		cp.close()
		return nil, fmt.Errorf("agent HTTP listener: %w", err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	a.listener = ln
	a.stopCtx, a.stop = context.WithCancel(context.Background())
	a.ip = advertisedIP(ln.Addr(), cfg.Hostname)
	a.httpServer = &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.httpDone = make(chan struct{})
	go func() {
		defer close(a.httpDone)
		if err := a.httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("agent HTTP server stopped", "err", err)
		}
	}()
	return a, nil
}

// bearerTransport sends every request with "Authorization: Bearer token": the agent's
// API token, on its calls to the masters.
type bearerTransport struct {
	base  http.RoundTripper
	token string
}

func (t bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(req)
}

// load reads the checkpoint into memory, dropping it when it belongs to an earlier boot.
func (a *Agent) load() error {
	agentID, bootID, err := a.cp.identity()
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	switch bootID {
	case "":
		if err := a.cp.setBootID(a.bootID); err != nil {
			return err
		}
	case a.bootID:
	default:
		old, err := a.cp.tasks()
		if err != nil {
			return err
		}
		a.log.Warn("host rebooted since the checkpoint was written: its tasks died with the host, so the agent starts as a new agent",
			"old_agent_id", agentID, "dropped_tasks", len(old), "old_boot_id", bootID, "boot_id", a.bootID)
		if err := a.cp.reset(a.bootID); err != nil {
			return err
		}
		agentID = ""
	}
	a.agentID = agentID
	checkpointed, err := a.cp.tasks()
	if err != nil {
		return err
	}
	pending := 0
	for _, ct := range checkpointed {
		a.tasks[ct.record.key()] = &task{rec: ct.record, queue: ct.updates, backoff: a.cfg.UpdateRetryInitial}
		pending += len(ct.updates)
	}
	if agentID != "" || len(checkpointed) > 0 {
		a.log.Info("recovered checkpoint", "agent_id", agentID, "tasks", len(checkpointed), "pending_updates", pending)
	}
	return nil
}

// advertisedIP is the address tasks and the agent API are reached at: the listener's
// address when it is bound to one, else the hostname when it is an IP address, else the
// host's first global unicast IPv4 address, else loopback.
func advertisedIP(addr net.Addr, hostname string) string {
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP != nil && !tcp.IP.IsUnspecified() {
		return tcp.IP.String()
	}
	if ip := net.ParseIP(hostname); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipNet, ok := a.(*net.IPNet); ok && ipNet.IP.To4() != nil && ipNet.IP.IsGlobalUnicast() {
				return ipNet.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// ID returns the agent id the master gave; "" until the agent first registered.
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.agentID
}

// Registered reports whether the agent is subscribed to the leading master right now.
func (a *Agent) Registered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.session != nil
}

// HTTPAddr returns the address the agent's HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.listener.Addr().String() }

// Tasks returns every task the agent holds (running, or with unacknowledged updates),
// ordered by framework and task id.
func (a *Agent) Tasks() []TaskView {
	a.mu.Lock()
	defer a.mu.Unlock()
	views := make([]TaskView, 0, len(a.tasks))
	for _, t := range a.tasks {
		var healthy *bool
		if t.rec.Healthy != nil {
			healthy = new(*t.rec.Healthy)
		}
		views = append(views, TaskView{
			FrameworkID:    t.rec.FrameworkID,
			TaskID:         t.rec.Task.TaskID.Value,
			State:          t.rec.State,
			ContainerID:    t.rec.ContainerID,
			Sandbox:        t.rec.Sandbox,
			PendingUpdates: len(t.queue),
			Healthy:        healthy,
		})
	}
	slices.SortFunc(views, func(x, y TaskView) int {
		if c := strings.Compare(x.FrameworkID, y.FrameworkID); c != 0 {
			return c
		}
		return strings.Compare(x.TaskID, y.TaskID)
	})
	return views
}

// Run recovers the containers of checkpointed tasks, then registers with the leading
// master and serves it until ctx ends or Shutdown is called, reconnecting with backoff
// whenever the connection is lost. It returns nil when stopped, ErrShutdown once Shutdown
// has begun, and an error when Run was already called.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.shutdownDone != nil {
		a.mu.Unlock()
		return ErrShutdown
	}
	if a.runDone != nil {
		a.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	done := make(chan struct{})
	a.runDone = done
	a.mu.Unlock()
	defer close(done)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.stopCtx, cancel)()

	a.recoverContainers(ctx)
	close(a.recovered)
	var sender sync.WaitGroup
	sender.Go(func() { a.sendUpdates(ctx) })
	a.connect(ctx)
	cancel()
	sender.Wait()
	return nil
}

// Shutdown stops the agent and releases its listener and checkpoint. With killTasks it
// first kills every task (SIGTERM, then SIGKILL after the task's grace period) and waits
// until their terminal updates are checkpointed; without, tasks keep running and a new
// agent on the same work dir re-attaches to them. Later calls wait for the first.
func (a *Agent) Shutdown(ctx context.Context, killTasks bool) error {
	a.mu.Lock()
	if a.shutdownDone != nil {
		done := a.shutdownDone
		a.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.shutdownDone = make(chan struct{})
	a.stopping = true
	runDone := a.runDone
	a.mu.Unlock()
	defer close(a.shutdownDone)

	var errs []error
	if killTasks {
		if err := a.killAll(ctx); err != nil {
			errs = append(errs, err)
		} else {
			a.destroyEnded(ctx)
		}
	}
	// Everything below ends promptly once stopCtx is cancelled: calls and container waits
	// hang off it, and container destroys have their own timeout.
	a.stop()
	if runDone != nil {
		<-runDone
	}
	a.taskGoroutines.Wait()
	a.background.Wait()
	if err := a.httpServer.Shutdown(ctx); err != nil {
		a.httpServer.Close()
		errs = append(errs, fmt.Errorf("stop agent HTTP server: %w", err))
	}
	<-a.httpDone
	a.transport.CloseIdleConnections()
	if err := a.cfg.Containerizer.Release(ctx, killTasks); err != nil {
		errs = append(errs, err)
	}
	if err := a.cp.close(); err != nil {
		errs = append(errs, fmt.Errorf("close checkpoint: %w", err))
	}
	a.log.Info("agent stopped", "killed_tasks", killTasks)
	return errors.Join(errs...)
}

// httpPort is the port of the agent's HTTP listener.
func (a *Agent) httpPort() int { return a.listener.Addr().(*net.TCPAddr).Port }
