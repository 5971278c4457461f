package tui

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// Reads the UI makes besides the streams: each a command bounded by RequestTimeout,
// whose answer comes back as a message.

// maxAppReads is how many apps are read one by one before reading them all is cheaper.
const maxAppReads = 20

// request runs f with a context bounded by RequestTimeout.
func (m *Model) request(f func(ctx context.Context) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.RequestTimeout)
		defer cancel()
		return f(ctx)
	}
}

// nodesMsg is the masters' Raft state, the gossip members and the version.
type nodesMsg struct {
	raft    *api.RaftPeers
	members []api.Member
	version string
	err     error
}

func (m *Model) fetchNodes() tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		var msg nodesMsg
		var errs []error
		peers, err := m.cfg.API.RaftPeers(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		msg.raft = peers
		if members, err := m.cfg.API.GetMembers(ctx); err != nil {
			errs = append(errs, err)
		} else {
			msg.members = members.Members
		}
		if v, err := m.cfg.API.GetVersion(ctx); err == nil {
			msg.version = v.VersionInfo.Version
		}
		msg.err = errors.Join(errs...)
		return msg
	})
}

func (m *Model) applyNodes(msg nodesMsg) {
	s := m.state
	if msg.raft != nil {
		s.raft = msg.raft
	}
	if msg.members != nil || msg.err == nil {
		s.members = msg.members
	}
	if msg.version != "" {
		s.version = msg.version
	}
	s.touch(kindNodes)
}

// appsMsg is apps read again: all of them (all), or those of ids, nil when gone.
type appsMsg struct {
	all  bool
	apps []marathon.AppInfo
	ids  []string
	got  map[string]*marathon.AppInfo
	err  error
}

func (m *Model) fetchAllApps() tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		apps, err := m.cfg.Marathon.ListApps(ctx)
		msg := appsMsg{all: true, err: err}
		for _, a := range apps {
			msg.apps = append(msg.apps, a.Value)
		}
		return msg
	})
}

func (m *Model) fetchApps(ids []string) tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		msg := appsMsg{ids: ids, got: map[string]*marathon.AppInfo{}}
		for _, id := range ids {
			a, err := m.cfg.Marathon.GetApp(ctx, id)
			var ae *marathon.APIError
			switch {
			case errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound:
				msg.got[id] = nil
			case err != nil:
				msg.err = err
				return msg
			default:
				msg.got[id] = &a.Value
			}
		}
		return msg
	})
}

func (m *Model) applyApps(msg appsMsg) {
	if msg.err != nil {
		return
	}
	if msg.all {
		m.state.setApps(msg.apps)
		return
	}
	for _, id := range msg.ids {
		m.state.setApp(id, msg.got[id])
	}
}

// queueMsg is the launch queue read again.
type queueMsg struct {
	items []marathon.QueueItem
	err   error
}

func (m *Model) fetchQueue() tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		q, err := m.cfg.Marathon.Queue(ctx)
		msg := queueMsg{err: err}
		for _, item := range q {
			msg.items = append(msg.items, item.Value)
		}
		return msg
	})
}

// jobsMsg is the jobs and their summaries.
type jobsMsg struct {
	jobs      []chronos.Job
	summaries []chronos.Summary
	err       error
}

func (m *Model) fetchJobs() tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		jobs, err := m.cfg.Chronos.ListJobs(ctx)
		if err != nil {
			return jobsMsg{err: err}
		}
		summaries, err := m.cfg.Chronos.Summaries(ctx)
		return jobsMsg{jobs: jobs, summaries: summaries, err: err}
	})
}

func (m *Model) applyJobs(msg jobsMsg) {
	s := m.state
	switch {
	case errors.Is(msg.err, chronos.ErrNoJobsAPI):
		s.chronos = source{known: true, missing: true, why: "the Chronos API is not served by this master (no jobs framework)"}
		s.setJobs(nil, nil)
	case msg.err != nil:
		s.chronos = source{known: s.chronos.known, why: "reading the jobs failed: " + msg.err.Error()}
		s.touch(kindJobs)
	default:
		s.chronos = source{known: true}
		s.setJobs(msg.jobs, msg.summaries)
	}
}

// statMsg is a job's runs.
type statMsg struct {
	job  string
	stat chronos.Stat
	err  error
}

func (m *Model) fetchStat(job string) tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		st, err := m.cfg.Chronos.Stat(ctx, job)
		return statMsg{job: job, stat: st, err: err}
	})
}

func (m *Model) applyStat(msg statMsg) {
	for _, p := range m.pages {
		if p.kind == pageJob && p.key == msg.job {
			p.statErr = msg.err
			if msg.err == nil {
				p.stat = &msg.stat
			}
			p.dirty = true
		}
	}
}

// packagesMsg is the installed packages.
type packagesMsg struct {
	packages []packageRecord
	missing  bool
	err      error
}

func (m *Model) fetchPackages() tea.Cmd {
	return m.request(func(ctx context.Context) tea.Msg {
		resp, err := m.cfg.Universe.List(ctx, &universe.ListRequest{})
		switch {
		case catalogMissing(err):
			return packagesMsg{missing: true}
		case err != nil:
			return packagesMsg{err: err}
		}
		out := make([]packageRecord, 0, len(resp.Packages))
		for _, p := range resp.Packages {
			def := p.PackageInformation.PackageDefinition
			out = append(out, packageRecord{name: def.Name, version: def.Version, appID: p.AppID, framework: def.Framework, info: p})
		}
		slices.SortFunc(out, func(a, b packageRecord) int { return cmp.Compare(a.appID, b.appID) })
		return packagesMsg{packages: out}
	})
}

// catalogMissing says err is the answer of a master that does not serve the catalog.
func catalogMissing(err error) bool {
	var re *universe.ResponseError
	return errors.As(err, &re) && re.Status == http.StatusNotFound
}

func (m *Model) applyPackages(msg packagesMsg) {
	s := m.state
	switch {
	case msg.missing:
		s.packagesSrc = source{known: true, missing: true, why: "the package catalog is not available on this master"}
		s.packages = nil
	case msg.err != nil:
		s.packagesSrc = source{known: s.packagesSrc.known, why: "reading the packages failed: " + msg.err.Error()}
	default:
		s.packagesSrc = source{known: true}
		s.packages = msg.packages
	}
	s.touch(kindPackages)
}

// jobOfEvent is the job whose task an operator event is about, "" for none.
func jobOfEvent(m *Model, ev *api.OperatorEvent) string {
	switch {
	case ev.TaskAdded != nil:
		return ev.TaskAdded.Task.Labels.Get(api.LabelJobName)
	case ev.TaskUpdated != nil:
		if r := m.state.tasks[taskKey(ev.TaskUpdated.FrameworkID.Value, ev.TaskUpdated.Status.TaskID.Value)]; r != nil {
			return r.job
		}
	}
	return ""
}
