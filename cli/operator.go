package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

// The operator commands manage the masters themselves through Atoll's operator Raft API:
// their Raft membership, and snapshots of the cluster state for backups and disaster
// recovery.

func (a *app) operatorCmd() *cobra.Command {
	raftCmd := &cobra.Command{
		Use:   "raft",
		Short: "Inspect and change the masters' Raft configuration",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	raftCmd.AddCommand(a.listPeersCmd(), a.removePeerCmd())
	snapshot := &cobra.Command{
		Use:   "snapshot",
		Short: "Save the cluster state to a file, or replace it with one",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	snapshot.AddCommand(a.snapshotSaveCmd(), a.snapshotRestoreCmd())
	operator := &cobra.Command{
		Use:   "operator",
		Short: "Manage the masters: Raft membership and snapshots of the cluster state",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	operator.AddCommand(raftCmd, snapshot)
	return operator
}

func (a *app) listPeersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list-peers",
		Short: "List the masters in the Raft configuration",
		Long: "List the masters in the Raft configuration as the master at --addr sees them. Its own\n" +
			"state is exact; on the leader, a master its heartbeats fail to reach shows as unreachable.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			peers, err := client.RaftPeers(ctx)
			if err != nil {
				return err
			}
			return a.printPeers(peers.Servers)
		},
	}
}

func (a *app) printPeers(servers []api.RaftServer) error {
	servers = slices.Clone(servers)
	slices.SortStableFunc(servers, func(x, y api.RaftServer) int { return strings.Compare(x.ID, y.ID) })
	if a.output == "json" {
		return a.printJSON(servers)
	}
	tw := a.table("ID", "ADDRESS", "STATE", "VOTER", "LEADER")
	for _, s := range servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, orDash(s.Address), orDash(s.State), yesNo(s.Suffrage == api.RaftVoter), yesNo(s.Leader))
	}
	return tw.Flush()
}

func (a *app) removePeerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove-peer ID",
		Short: "Remove a master that is gone for good from the Raft configuration",
		Long: "Remove a master that is gone for good from the Raft configuration, so that the\n" +
			"quorum no longer counts it. The leader refuses to remove itself, or a master whose\n" +
			"removal would leave fewer reachable voters than a quorum needs.",
		Args: oneArg("server id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			peers, err := client.RaftRemovePeer(ctx, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printPeers(peers.Servers)
			}
			var voters []string
			for _, s := range peers.Servers {
				if s.Suffrage == api.RaftVoter {
					voters = append(voters, s.ID)
				}
			}
			slices.Sort(voters)
			_, err = fmt.Fprintf(a.stdout, "Removed %s from the Raft configuration. Voters now: %s.\n", args[0], strings.Join(voters, ", "))
			return err
		},
	}
}

func (a *app) snapshotSaveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the cluster state to FILE",
		Long: "Save a snapshot of the cluster state to FILE, a gzipped tar with the state, its\n" +
			"metadata and SHA-256 sums. The master at --addr takes it from its own replica (so\n" +
			"this works without a leader too). FILE is replaced only once the whole snapshot\n" +
			"arrived and checked out.",
		Args: oneArg("file name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, stop := a.interrupted(cmd.Context())
			defer stop()
			var meta *api.SnapshotMeta
			size, err := writeFileAtomically(args[0], func(w io.Writer) error {
				var err error
				meta, err = client.SaveSnapshot(ctx, w)
				return err
			})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(meta)
			}
			_, err = fmt.Fprintf(a.stdout, "Saved %s: raft index %d, term %d, taken by %s at %s; %s of state, %s on disk.\n",
				args[0], meta.Index, meta.Term, meta.Master, meta.Created.Format(time.RFC3339), formatBytes(meta.Size), formatBytes(size))
			return err
		},
	}
}

// writeFileAtomically has write fill a temporary file next to path, then syncs it and
// renames it over path, so that path holds either its old content or all of the new. It
// returns the new file's size.
func writeFileAtomically(path string, write func(io.Writer) error) (size int64, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return 0, err
	}
	if size, err = tmp.Seek(0, io.SeekCurrent); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable once the directory is synced too.
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return 0, fmt.Errorf("sync the directory of %s: %w", path, err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return 0, fmt.Errorf("sync the directory of %s: %w", path, err)
	}
	return size, nil
}

func (a *app) snapshotRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole cluster state with the snapshot in FILE",
		Long: "Replace the whole cluster state with the snapshot in FILE, as saved by\n" +
			"'atoll operator snapshot save'. The file is checked first, here and again on the\n" +
			"leader; nothing changes unless it checks out. Frameworks and agents reconnect to\n" +
			"the restored state.",
		Args: oneArg("file name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			// A bad file fails here rather than after an upload.
			if _, err := api.ReadSnapshot(f, io.Discard); err != nil {
				if errors.Is(err, api.ErrBadSnapshot) {
					return fmt.Errorf("%s: %w; nothing was restored", args[0], err)
				}
				return fmt.Errorf("%s: %w", args[0], err)
			}
			ctx, stop := a.interrupted(cmd.Context())
			defer stop()
			meta, err := client.RestoreSnapshot(ctx, f)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(meta)
			}
			_, err = fmt.Fprintf(a.stdout, "Restored %s: the cluster state is now the snapshot %s took at %s (raft index %d, term %d, %s of state).\n",
				args[0], meta.Master, meta.Created.Format(time.RFC3339), meta.Index, meta.Term, formatBytes(meta.Size))
			return err
		},
	}
}

// formatBytes prints a size with a binary unit: 512 B, 1.5 KiB, 12.3 MiB.
func formatBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	value, unit := float64(n)/1024, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if value < 1024 {
			break
		}
		value, unit = value/1024, next
	}
	return strconv.FormatFloat(math.Round(value*10)/10, 'f', -1, 64) + " " + unit
}
