package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
)

// raftMembers keeps the Raft configuration in line with gossip, on the leader only
// (autopilot-style): masters gossip knows but Raft does not are added as voters — so a new
// master needs nothing but --join — and masters gone (failed or left) for longer than
// deadServerTimeout are removed, never below a quorum of the voters still alive.
type raftMembers struct {
	m       *master.Master
	members *Membership
	log     *slog.Logger
	// deadServerTimeout is how long a master may be failed before it is removed: long
	// enough for a crashed master to be restarted, short enough that a dead one does not
	// keep the cluster one failure from losing quorum for long.
	deadServerTimeout time.Duration
	interval          time.Duration

	failedSince map[raft.ServerID]time.Time
}

func (r *raftMembers) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.m.IsLeader() {
				r.reconcile(ctx, time.Now())
			} else {
				clear(r.failedSince)
			}
		}
	}
}

// reconcile makes one pass.
func (r *raftMembers) reconcile(ctx context.Context, now time.Time) {
	future := r.m.Raft().GetConfiguration()
	if err := future.Error(); err != nil {
		r.log.Warn("read raft configuration", "err", err)
		return
	}
	cfg := future.Configuration()
	inRaft := map[raft.ServerID]raft.Server{}
	for _, s := range cfg.Servers {
		inRaft[s.ID] = s
	}
	byID := map[raft.ServerID]api.Member{}
	for _, mem := range r.members.Members() {
		if HasRole(mem, RoleMaster) && mem.Tags[TagID] != "" {
			byID[raft.ServerID(mem.Tags[TagID])] = mem
		}
	}

	for id, mem := range byID {
		if _, ok := inRaft[id]; ok || mem.Status != "alive" || mem.Tags[TagRaft] == "" {
			continue
		}
		r.log.Info("adding master to raft", "id", id, "name", mem.Name, "raft", mem.Tags[TagRaft])
		if err := r.m.Raft().AddVoter(id, raft.ServerAddress(mem.Tags[TagRaft]), future.Index(), 10*time.Second).Error(); err != nil {
			r.log.Warn("add master to raft", "id", id, "err", err)
		}
		return // the configuration changed: re-read it next pass
	}

	voters, alive := 0, 0
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if mem, ok := byID[s.ID]; ok && mem.Status == "alive" || s.ID == raft.ServerID(r.m.ID()) {
			alive++
		}
	}
	for _, s := range cfg.Servers {
		if s.ID == raft.ServerID(r.m.ID()) {
			continue
		}
		mem, known := byID[s.ID]
		if !known {
			continue // not (yet) in gossip: nothing to judge it by
		}
		switch mem.Status {
		case "alive":
			delete(r.failedSince, s.ID)
			continue
		case "left", "failed":
			// A master that left gracefully is treated like a failed one: a restart or
			// an upgrade must not shrink the quorum, only a long absence does.
			since, ok := r.failedSince[s.ID]
			if !ok {
				r.failedSince[s.ID] = now
				continue
			}
			if now.Sub(since) < r.deadServerTimeout {
				continue
			}
		default:
			continue
		}
		// The voters that stay must still hold a quorum of the new configuration.
		if remaining := voters - 1; alive < remaining/2+1 {
			r.log.Warn("not removing dead master: the rest would lack a quorum", "id", s.ID, "voters", voters, "alive", alive)
			continue
		}
		r.log.Info("removing master from raft", "id", s.ID, "name", mem.Name, "status", mem.Status)
		if err := r.m.Raft().RemovePeer(ctx, s.ID, future.Index()); err != nil {
			r.log.Warn("remove master from raft", "id", s.ID, "err", err)
		}
		delete(r.failedSince, s.ID)
		return
	}
}
