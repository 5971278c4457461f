package cli

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api/marathon"
)

// The group commands manage trees of apps deployed together through the Marathon API's
// /v2/groups.

func (a *app) groupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage groups: trees of apps deployed together",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.groupListCmd(), a.groupShowCmd(), a.groupAddCmd(), a.groupUpdateCmd(), a.groupRemoveCmd())
	return cmd
}

func (a *app) groupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the groups, the root group / first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			root, err := client.GetGroup(cmd.Context(), "/")
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(root.Raw)
			}
			tw := a.table("ID", "APPS", "GROUPS", "DEPENDENCIES", "VERSION")
			var walk func(g *marathon.Group)
			walk = func(g *marathon.Group) {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", g.ID, len(g.Apps), len(g.Groups),
					orDash(strings.Join(g.Dependencies, ",")), orDash(g.Version))
				for _, sub := range g.Groups {
					if sub != nil {
						walk(sub)
					}
				}
			}
			walk(&root.Value)
			return tw.Flush()
		},
	}
}

func (a *app) groupShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show GROUP_ID",
		Short: "Show a group: its subgroups and apps",
		Args:  oneArg("group id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			g, err := client.GetGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(g.Raw)
			}
			var groups []string
			for _, sub := range g.Value.Groups {
				if sub != nil {
					groups = append(groups, sub.ID)
				}
			}
			tw := a.table("ID:", g.Value.ID)
			fmt.Fprintf(tw, "Version:\t%s\n", orDash(g.Value.Version))
			fmt.Fprintf(tw, "Dependencies:\t%s\n", orDash(strings.Join(g.Value.Dependencies, ",")))
			fmt.Fprintf(tw, "Groups:\t%s\n", orDash(strings.Join(groups, ",")))
			if err := tw.Flush(); err != nil {
				return err
			}
			// The apps with their task counts, as app list shows them.
			all, err := client.ListApps(cmd.Context())
			if err != nil {
				return err
			}
			members := map[string]bool{}
			for _, def := range g.Value.AllApps() {
				if def != nil {
					members[def.ID] = true
				}
			}
			apps := slices.DeleteFunc(all, func(o marathon.Object[marathon.AppInfo]) bool { return !members[o.Value.ID] })
			fmt.Fprintln(a.stdout)
			return a.printAppTable(apps)
		},
	}
}

func (a *app) groupAddCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Add a group of apps from its JSON definition (FILE, or - for stdin)",
		Args:  oneArg("file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := readDefinition(cmd, args[0])
			if err != nil {
				return err
			}
			client, err := a.marathon()
			if err != nil {
				return err
			}
			return a.runChange(cmd, client, o, change{
				what: "creating group " + orDash(definitionID(def)),
				send: func(ctx context.Context) (marathon.Started, error) {
					return client.GroupChange(ctx, http.MethodPost, "", def, o.force)
				},
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

func (a *app) groupUpdateCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "update GROUP_ID FILE",
		Short: "Replace a group with FILE's definition (- for stdin): apps it leaves out are removed",
		Args:  exactArgs(2, "a group id and a file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := readDefinition(cmd, args[1])
			if err != nil {
				return err
			}
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := canonicalID(args[0])
			return a.runChange(cmd, client, o, change{
				what: "updating group " + id,
				send: func(ctx context.Context) (marathon.Started, error) {
					return client.GroupChange(ctx, http.MethodPut, id, def, o.force)
				},
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

func (a *app) groupRemoveCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "remove GROUP_ID",
		Short: "Remove a group with its apps and subgroups",
		Args:  oneArg("group id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := canonicalID(args[0])
			return a.runChange(cmd, client, o, change{
				what: "removing group " + id,
				send: func(ctx context.Context) (marathon.Started, error) {
					return client.GroupChange(ctx, http.MethodDelete, id, nil, o.force)
				},
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}
