package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/isolate/fetch"
)

// Config configures an agent. DefaultConfig gives production values; TestAgent tightens the
// timings for tests.
type Config struct {
	// WorkDir holds everything the agent keeps on disk: the checkpoint (meta/agent.log), the
	// task sandboxes (sandboxes/<framework>/<task>.<container>) and, by convention, the
	// containerizer's state (containers/). It is created if missing.
	WorkDir string

	// Hostname is what the agent reports to the master and gives tasks as HOST; empty means
	// os.Hostname().
	Hostname string

	// Resources is the agent's total in flag syntax, "cpus:4;mem:8192;ports:[31000-32000]".
	// Standard names left out are detected: cpus from the CPU count, mem from MemTotal less a
	// 1 GiB reserve, disk from the free space under WorkDir less a 5 GiB reserve (each reserve
	// at most half of the total), and ports [31000-32000].
	Resources string

	// Attributes are the agent's fixed properties, "rack:r1;zone:a". As in Mesos, numbers
	// become SCALAR, "[a-b,c-d]" RANGES, "{x,y}" SET and anything else TEXT.
	Attributes string

	// Masters returns the candidate master base URLs (http://host:port). It is called before
	// every registration attempt, so it may follow gossip; the agent tries each in turn and
	// follows a non-leader's redirect to the leader.
	Masters func() []string

	// MasterTLS, when set, is the TLS configuration of the agent's calls to the masters:
	// a secure cluster's CA and the agent's node certificate (pki.Credentials.ClientTLS),
	// for masters at https URLs. nil uses the system's roots.
	MasterTLS *tls.Config
	// MasterToken, when set, is the API token the agent sends with every call to the
	// masters ("Authorization: Bearer").
	MasterToken string

	// HTTPAddr is where the agent's own HTTP API (health, sandbox files) listens.
	HTTPAddr string
	// TLS, when set, serves that API over TLS with this configuration (a secure
	// cluster's node certificate, pki.Credentials.ServerTLS); nil serves plain HTTP.
	TLS *tls.Config

	// Containerizer launches, watches and kills the task containers. Required.
	Containerizer isolate.Containerizer
	// Fetcher downloads a task's CommandInfo.uris into its sandbox before it launches;
	// nil fails tasks that have uris.
	Fetcher *fetch.Fetcher

	// TaskUser is the host user a task on the host's filesystem runs as when neither its
	// command nor its framework names one (a task with an image runs as its image says).
	// Empty runs such tasks as the agent's own user; any other user needs an agent
	// running as root. It must exist on the host.
	TaskUser string

	// MaxConcurrentLaunches bounds the containers being launched at once; further
	// launches wait for one to finish (or to have taken launchSlotHold). Spawning a burst
	// of tasks all at once makes the spawns compete for the CPUs with the status updates
	// of the tasks already running, which then reach the master late, and makes the
	// launches finish in clumps; a few at a time, the host spawns as fast and each task's
	// TASK_RUNNING goes out at once.
	MaxConcurrentLaunches int

	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger

	// HeartbeatInterval is how often the agent sends HEARTBEAT calls to the master.
	HeartbeatInterval time.Duration

	// UpdateRetryInitial is how long the agent waits for the acknowledgement of a status
	// update before resending it; the wait doubles after each resend up to UpdateRetryMax.
	UpdateRetryInitial time.Duration
	// UpdateRetryMax caps the status update resend interval.
	UpdateRetryMax time.Duration

	// ReconnectBackoff is the first wait after failing to register with a master (or after
	// losing the connection); it doubles after each failure up to ReconnectBackoffMax.
	ReconnectBackoff time.Duration
	// ReconnectBackoffMax caps the wait between registration attempts.
	ReconnectBackoffMax time.Duration

	// Version is the agent software version reported to the master.
	Version string

	// BootID identifies the host's current boot; empty means read
	// /proc/sys/kernel/random/boot_id. A checkpoint written under another boot id belongs to
	// tasks that died with the host, so the agent then starts afresh as a new agent.
	BootID string
}

// DefaultConfig returns the production configuration; Masters and Containerizer must still
// be set.
func DefaultConfig() Config {
	return Config{
		// The FHS place for a daemon's persistent state.
		WorkDir: "/var/lib/atoll/agent",
		// Spawning is CPU work (fork, exec, the task's own start): two launches per CPU
		// keep the CPUs busy spawning while leaving room for the rest of the agent. On 2
		// CPUs, 1,000 tasks in one burst are spawned about as fast 4 at a time as all at
		// once, and their TASK_RUNNING reaches the master far sooner; 8 or 16 at a time
		// already delay it (BENCHMARKS.md, DNS).
		MaxConcurrentLaunches: 2 * runtime.NumCPU(),
		// Empty Resources means detect everything, as a Mesos agent does without --resources.
		Resources: "",
		// 5051 is the Mesos agent port, which tools expect for /files and /health.
		HTTPAddr: ":5051",
		// A task nobody named a user for must not get root's power over the host.
		TaskUser: defaultTaskUser(),
		// Mesos masters ping agents every 15 s; heartbeating at the same pace keeps the
		// master's view of the agent as fresh as it was with Mesos.
		// Well inside the masters' 10 s agent timeout, which counts from the last call.
		HeartbeatInterval: 3 * time.Second,
		// The Mesos status update manager's values: resending sooner only adds load on a
		// master that is already slow to acknowledge, and 10 min bounds the wait once it is
		// back.
		UpdateRetryInitial: 10 * time.Second,
		UpdateRetryMax:     10 * time.Minute,
		// Mesos's registration backoff factor is 1 s; 30 s keeps a restarted master from
		// waiting long for its agents while not hammering an unreachable one.
		ReconnectBackoff: time.Second,
		// Short enough that an agent is back within a new leader's re-registration window
		// soon after the masters are.
		ReconnectBackoffMax: 5 * time.Second,
	}
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case c.WorkDir == "":
		return errors.New("agent config: WorkDir is required")
	case c.HTTPAddr == "":
		return errors.New("agent config: HTTPAddr is required")
	case c.Masters == nil:
		return errors.New("agent config: Masters is required")
	case c.Containerizer == nil:
		return errors.New("agent config: Containerizer is required")
	case c.MaxConcurrentLaunches <= 0:
		return fmt.Errorf("agent config: MaxConcurrentLaunches must be positive, got %d", c.MaxConcurrentLaunches)
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("agent config: HeartbeatInterval must be positive, got %s", c.HeartbeatInterval)
	case c.UpdateRetryInitial <= 0:
		return fmt.Errorf("agent config: UpdateRetryInitial must be positive, got %s", c.UpdateRetryInitial)
	case c.UpdateRetryMax < c.UpdateRetryInitial:
		return fmt.Errorf("agent config: UpdateRetryMax (%s) is below UpdateRetryInitial (%s)", c.UpdateRetryMax, c.UpdateRetryInitial)
	case c.ReconnectBackoff <= 0:
		return fmt.Errorf("agent config: ReconnectBackoff must be positive, got %s", c.ReconnectBackoff)
	case c.ReconnectBackoffMax < c.ReconnectBackoff:
		return fmt.Errorf("agent config: ReconnectBackoffMax (%s) is below ReconnectBackoff (%s)", c.ReconnectBackoffMax, c.ReconnectBackoff)
	}
	if c.Resources != "" {
		if _, err := alloc.ParseResources(c.Resources); err != nil {
			return fmt.Errorf("agent config: Resources: %w", err)
		}
	}
	if _, err := parseAttributes(c.Attributes); err != nil {
		return fmt.Errorf("agent config: Attributes: %w", err)
	}
	if err := checkTaskUser(c.TaskUser); err != nil {
		return fmt.Errorf("agent config: TaskUser: %w", err)
	}
	return nil
}
