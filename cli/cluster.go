package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

// The listing commands read the cluster through the operator API and print a table, or
// with -o json the API objects behind its rows, in the same order.

func (a *app) nodesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the agents and what their resources are used for",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := a.getState(cmd.Context())
			if err != nil {
				return err
			}
			return a.printNodes(state)
		},
	}
}

func (a *app) tasksCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List the tasks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := a.getState(cmd.Context())
			if err != nil {
				return err
			}
			return a.printTasks(state, all)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include completed tasks")
	return cmd
}

func (a *app) frameworksCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "frameworks",
		Short: "List the frameworks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := a.getState(cmd.Context())
			if err != nil {
				return err
			}
			return a.printFrameworks(state)
		},
	}
}

func (a *app) membersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List the nodes in the gossip membership and their roles",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			members, err := client.GetMembers(ctx)
			if err != nil {
				return err
			}
			// Raft state is best effort: without it (an old master, no quorum yet) the
			// column says "-" rather than the listing failing.
			peers, err := client.RaftPeers(ctx)
			if err != nil {
				peers = nil
			}
			return a.printMembers(members, peers)
		},
	}
}

// getState fetches GET_STATE, with every part present (empty when the master left it out).
func (a *app) getState(ctx context.Context) (*api.GetState, error) {
	client, err := a.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	state, err := client.GetState(ctx)
	if err != nil {
		return nil, err
	}
	if state.GetAgents == nil {
		state.GetAgents = &api.GetAgents{}
	}
	if state.GetFrameworks == nil {
		state.GetFrameworks = &api.GetFrameworks{}
	}
	if state.GetTasks == nil {
		state.GetTasks = &api.GetTasks{}
	}
	return state, nil
}

func (a *app) printNodes(state *api.GetState) error {
	agents := slices.Clone(state.GetAgents.Agents)
	slices.SortStableFunc(agents, func(x, y api.AgentState) int {
		return compareKeys(x.AgentInfo.Hostname, agentID(x.AgentInfo), y.AgentInfo.Hostname, agentID(y.AgentInfo))
	})
	if a.output == "json" {
		return a.printJSON(agents)
	}
	tasksOn := map[string]int{}
	for _, t := range state.GetTasks.Tasks {
		tasksOn[t.AgentID.Value]++
	}
	tw := a.table("ID", "HOSTNAME", "ACTIVE", "CPUS", "MEM", "DISK", "TASKS")
	for _, ag := range agents {
		used, total := ag.AllocatedResources, ag.TotalResources
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s/%s\t%s/%s\t%d\n",
			orDash(agentID(ag.AgentInfo)), orDash(ag.AgentInfo.Hostname), yesNo(ag.Active),
			formatNumber(scalar(used, "cpus")), formatNumber(scalar(total, "cpus")),
			formatMB(scalar(used, "mem")), formatMB(scalar(total, "mem")),
			formatMB(scalar(used, "disk")), formatMB(scalar(total, "disk")),
			tasksOn[agentID(ag.AgentInfo)])
	}
	return tw.Flush()
}

func (a *app) printTasks(state *api.GetState, all bool) error {
	lists := state.GetTasks
	tasks := slices.Concat(lists.Tasks, lists.UnreachableTasks, lists.OrphanTasks)
	if all {
		tasks = append(tasks, lists.CompletedTasks...)
	}
	slices.SortStableFunc(tasks, func(x, y api.Task) int {
		return compareKeys(x.Name, x.TaskID.Value, y.Name, y.TaskID.Value)
	})
	if a.output == "json" {
		return a.printJSON(tasks)
	}
	frameworkNames := map[string]string{}
	for _, f := range slices.Concat(state.GetFrameworks.Frameworks, state.GetFrameworks.CompletedFrameworks) {
		if f.FrameworkInfo.ID != nil {
			frameworkNames[f.FrameworkInfo.ID.Value] = f.FrameworkInfo.Name
		}
	}
	hosts := map[string]string{}
	for _, ag := range state.GetAgents.Agents {
		hosts[agentID(ag.AgentInfo)] = ag.AgentInfo.Hostname
	}
	tw := a.table("ID", "NAME", "FRAMEWORK", "HOST", "STATE", "STARTED")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			t.TaskID.Value, orDash(t.Name),
			orDash(cmp.Or(frameworkNames[t.FrameworkID.Value], t.FrameworkID.Value)),
			orDash(cmp.Or(hosts[t.AgentID.Value], t.AgentID.Value)),
			t.State, a.started(t))
	}
	return tw.Flush()
}

// marathon.Started says how long ago the task first ran, from its TASK_RUNNING status.
func (a *app) started(t api.Task) string {
	for _, s := range t.Statuses {
		if s.State == api.TaskRunning && s.Timestamp > 0 {
			sec, frac := math.Modf(s.Timestamp)
			return formatAge(a.now().Sub(time.Unix(int64(sec), int64(frac*1e9)))) + " ago"
		}
	}
	return "-"
}

// formatAge is a duration in its largest whole unit: 42s, 5m, 3h, 2d.
func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}

func (a *app) printFrameworks(state *api.GetState) error {
	frameworks := slices.Clone(state.GetFrameworks.Frameworks)
	slices.SortStableFunc(frameworks, func(x, y api.FrameworkState) int {
		return compareKeys(x.FrameworkInfo.Name, frameworkID(x.FrameworkInfo), y.FrameworkInfo.Name, frameworkID(y.FrameworkInfo))
	})
	if a.output == "json" {
		return a.printJSON(frameworks)
	}
	tasksOf := map[string]int{}
	for _, t := range state.GetTasks.Tasks {
		tasksOf[t.FrameworkID.Value]++
	}
	tw := a.table("ID", "NAME", "ACTIVE", "CONNECTED", "ROLES", "TASKS", "CPUS", "MEM")
	for _, f := range frameworks {
		info := f.FrameworkInfo
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			orDash(frameworkID(info)), orDash(info.Name), yesNo(f.Active), yesNo(f.Connected),
			strings.Join(info.AllRoles(), ","), tasksOf[frameworkID(info)],
			formatNumber(scalar(f.AllocatedResources, "cpus")), formatMB(scalar(f.AllocatedResources, "mem")))
	}
	return tw.Flush()
}

// raftState describes a master's place in Raft from peers: "leader", "follower" or
// "nonvoter" (with "unreachable" when the leader cannot reach it), "-" when unknown.
func raftState(m api.Member, peers *api.RaftPeers) string {
	if peers == nil || m.Tags["id"] == "" {
		return "-"
	}
	for _, s := range peers.Servers {
		if s.ID != m.Tags["id"] {
			continue
		}
		state := s.State
		if s.Suffrage != api.RaftVoter {
			state = s.Suffrage
		}
		if state == "" {
			return "-"
		}
		return state
	}
	return "-"
}

func (a *app) printMembers(members *api.GetMembers, peers *api.RaftPeers) error {
	list := slices.Clone(members.Members)
	slices.SortStableFunc(list, func(x, y api.Member) int {
		return compareKeys(x.Name, x.Addr, y.Name, y.Addr)
	})
	if a.output == "json" {
		return a.printJSON(list)
	}
	tw := a.table("NAME", "ADDR", "STATUS", "ROLE", "RAFT", "API", "VERSION")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			orDash(m.Name), net.JoinHostPort(m.Addr, strconv.Itoa(m.Port)), orDash(m.Status),
			orDash(m.Tags["role"]), raftState(m, peers), orDash(m.Tags["api"]), orDash(m.Tags["version"]))
	}
	return tw.Flush()
}

// table starts a table on stdout with its header row.
func (a *app) table(header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// printJSON prints v as indented JSON; nil lists print as [].
func (a *app) printJSON(v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if string(data) == "null" {
		data = []byte("[]")
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", data)
	return err
}

// compareKeys orders rows by a name, then by an id for rows with equal names.
func compareKeys(name1, id1, name2, id2 string) int {
	if c := strings.Compare(name1, name2); c != 0 {
		return c
	}
	return strings.Compare(id1, id2)
}

func agentID(info api.AgentInfo) string {
	if info.ID == nil {
		return ""
	}
	return info.ID.Value
}

func frameworkID(info api.FrameworkInfo) string {
	if info.ID == nil {
		return ""
	}
	return info.ID.Value
}

// scalar sums the named scalar resource.
func scalar(resources []api.Resource, name string) float64 {
	var sum float64
	for _, r := range resources {
		if r.Name == name && r.Scalar != nil {
			sum += r.Scalar.Value
		}
	}
	return sum
}

// formatNumber prints a resource amount with at most three decimals, as Mesos keeps them.
func formatNumber(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// formatMB prints megabytes with a unit: 0, 512M, 1.5G.
func formatMB(mb float64) string {
	switch {
	case mb == 0:
		return "0"
	case mb < 1024:
		return formatNumber(math.Round(mb)) + "M"
	default:
		return strconv.FormatFloat(math.Round(mb/1024*10)/10, 'f', -1, 64) + "G"
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
