// Package tui is atoll's terminal UI: a live view and control of a whole cluster (its
// masters, agents, frameworks, apps, tasks, deployments, jobs, packages and events) in the
// manner of k9s, built with bubbletea. It talks to the cluster only through api's clients,
// keeps its picture current from the masters' event streams, and never blocks on the
// network: every request runs as a command with a timeout.
package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// Config configures the terminal UI.
type Config struct {
	// API is the operator API of a master: state, event stream, Raft peers, task kills and
	// logs.
	API *api.Client
	// Marathon is the services framework's Marathon API on the same master.
	Marathon *marathon.Client
	// Chronos is the jobs framework's Chronos API on the same master.
	Chronos *chronos.Client
	// Universe is the package catalog's Cosmos API on the same master.
	Universe *universe.Client
	// Addr is the master's address, shown in the header.
	Addr string
	// ReadOnly refuses every action that would change the cluster.
	ReadOnly bool
	// RequestTimeout bounds each request but the event streams.
	RequestTimeout time.Duration
	// ConnectTimeout bounds the wait for a stream's first answer.
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between reconnection attempts.
	ReconnectMin, ReconnectMax time.Duration
	// NodesInterval is how often the masters' Raft state and the gossip members are read:
	// they are the only state without an event stream.
	NodesInterval time.Duration
	// RefreshDelay is how long after an event what it changed without saying how (an app's
	// definition after a deployment started, the launch queue, the jobs) is read again, so
	// that a burst of events costs one read.
	RefreshDelay time.Duration
	// MaxEvents is how many recent events :events keeps.
	MaxEvents int
	// MaxEndedTasks is how many ended tasks are kept for the task lists.
	MaxEndedTasks int
	// LogLines is how many lines of a task's output the log view keeps.
	LogLines int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Renderer styles the screen; nil is lipgloss's default, which follows the terminal's
	// colours and NO_COLOR.
	Renderer *lipgloss.Renderer
}

// DefaultConfig returns the settings for an interactive session; the clients are left to
// the caller.
func DefaultConfig() Config {
	return Config{
		// Long enough for a master busy with a failover, short enough that a dead one shows
		// as an error while the operator still looks.
		RequestTimeout: 10 * time.Second,
		ConnectTimeout: 10 * time.Second,
		// A failover takes a few seconds: retry quickly at first, then back off so that a
		// master that is gone for good costs little.
		ReconnectMin: 250 * time.Millisecond,
		ReconnectMax: 5 * time.Second,
		// Raft state changes rarely; two small reads every few seconds are nothing to a master.
		NodesInterval: 5 * time.Second,
		// Well below what a person notices, well above the spread of one deployment's events.
		RefreshDelay: 250 * time.Millisecond,
		// Several screens of history, a few hundred kilobytes.
		MaxEvents:     1000,
		MaxEndedTasks: 1000,
		LogLines:      5000,
	}
}

// Validate reports what makes the configuration unusable.
func (c Config) Validate() error {
	switch {
	case c.API == nil || c.Marathon == nil || c.Chronos == nil || c.Universe == nil:
		return errors.New("tui: the API, Marathon, Chronos and Universe clients are required")
	case c.RequestTimeout <= 0 || c.ConnectTimeout <= 0:
		return fmt.Errorf("tui: request timeout %v and connect timeout %v must be positive", c.RequestTimeout, c.ConnectTimeout)
	case c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin:
		return fmt.Errorf("tui: reconnect backoff %v to %v: want 0 < min ≤ max", c.ReconnectMin, c.ReconnectMax)
	case c.NodesInterval <= 0 || c.RefreshDelay <= 0:
		return fmt.Errorf("tui: nodes interval %v and refresh delay %v must be positive", c.NodesInterval, c.RefreshDelay)
	case c.MaxEvents <= 0 || c.MaxEndedTasks < 0 || c.LogLines <= 0:
		return fmt.Errorf("tui: max events %d, max ended tasks %d, log lines %d: want positive numbers", c.MaxEvents, c.MaxEndedTasks, c.LogLines)
	}
	return nil
}

// Run shows the UI on the terminal until the user quits or ctx ends.
func Run(ctx context.Context, cfg Config, opts ...tea.ProgramOption) error {
	m, err := New(cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	opts = append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, opts...)
	_, err = tea.NewProgram(m, opts...).Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}
