package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

func (a *app) taskLogCmd() *cobra.Command {
	var follow, stderr bool
	cmd := &cobra.Command{
		Use:   "log TASK_ID",
		Short: "Print a task's output (stdout, or stderr with --stderr) from its agent",
		Long: "Print a task's output, read from its sandbox on the agent that runs (or ran) it.\n" +
			"With -f it keeps printing what the task writes until the task ends or Ctrl-C.",
		Args: oneArg("task id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			opts := api.TaskLogOptions{File: "stdout", Follow: follow}
			if stderr {
				opts.File = "stderr"
			}
			ctx := cmd.Context()
			loc, err := client.LocateTaskLog(ctx, args[0])
			if errors.Is(err, api.ErrNoTask) {
				return fmt.Errorf("%w (see atoll tasks --all)", err)
			}
			if err != nil {
				return err
			}
			return client.CopyTaskLog(ctx, loc, a.stdout, opts)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the task ends")
	cmd.Flags().BoolVar(&stderr, "stderr", false, "print stderr instead of stdout")
	return cmd
}
