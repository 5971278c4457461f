package cli

import (
	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/tui"
)

func (a *app) tuiCmd() *cobra.Command {
	var readOnly bool
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Watch and drive the cluster in a terminal UI",
		Long: "Open a live view of the cluster: masters, agents, frameworks, apps, tasks, deployments,\n" +
			"jobs, packages and events, updated from the masters' event streams. Type : and a view's\n" +
			"name to switch views, / to filter, enter to open, ? for every key. With --read-only no\n" +
			"key changes the cluster.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			cfg := tui.DefaultConfig()
			cfg.API = client
			cfg.Marathon = marathon.NewClient(a.addr, marathon.WithTimeout(cfg.RequestTimeout), marathon.WithToken(a.token()))
			cfg.Chronos = chronos.NewClient(a.addr, chronos.WithTimeout(cfg.RequestTimeout), chronos.WithToken(a.token()))
			cfg.Universe = universe.NewClient(a.addr, universe.WithTimeout(cfg.RequestTimeout), universe.WithToken(a.token()))
			cfg.Addr = a.addr
			cfg.ReadOnly = readOnly
			return tui.Run(cmd.Context(), cfg, tea.WithInput(cmd.InOrStdin()), tea.WithOutput(cmd.OutOrStdout()))
		},
	}
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "refuse every action that would change the cluster")
	return cmd
}
