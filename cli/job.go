package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// The jobs commands talk to the Chronos API every master serves under /v1/scheduler.
const chronosPrefix = "/v1/scheduler"

// jobView is what the job commands read of a Chronos job.
type jobView struct {
	Name                   string   `json:"name"`
	Command                string   `json:"command"`
	Schedule               string   `json:"schedule"`
	ScheduleTimeZone       string   `json:"scheduleTimeZone"`
	Parents                []string `json:"parents"`
	Disabled               bool     `json:"disabled"`
	SuccessCount           int      `json:"successCount"`
	ErrorCount             int      `json:"errorCount"`
	LastSuccess            string   `json:"lastSuccess"`
	LastError              string   `json:"lastError"`
	ErrorsSinceLastSuccess int      `json:"errorsSinceLastSuccess"`
}

func (a *app) jobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run batch jobs: list, add, run now and remove Chronos jobs",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.jobListCmd(), a.jobShowCmd(), a.jobAddCmd(), a.jobRunCmd(), a.jobRemoveCmd())
	return cmd
}

// jobs reads every job, as the API sent them and decoded.
func (a *app) jobs(cmd *cobra.Command) ([]json.RawMessage, []jobView, error) {
	client, err := a.marathon()
	if err != nil {
		return nil, nil, err
	}
	r, err := client.Do(cmd.Context(), http.MethodGet, chronosPrefix+"/jobs", nil, nil)
	if err != nil {
		return nil, nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(r.Body, &raws); err != nil {
		return nil, nil, fmt.Errorf("GET %s/jobs: the answer is not a list of jobs: %w", chronosPrefix, err)
	}
	views := make([]jobView, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &views[i]); err != nil {
			return nil, nil, fmt.Errorf("GET %s/jobs: job %d: %w", chronosPrefix, i, err)
		}
	}
	return raws, views, nil
}

func (a *app) jobListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the jobs with their schedules and results",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raws, jobs, err := a.jobs(cmd)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(raws)
			}
			tw := a.table("NAME", "SCHEDULE", "PARENTS", "ENABLED", "SUCCESSES", "ERRORS", "LAST SUCCESS", "LAST ERROR")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%d\t%s\t%s\n", j.Name, orDash(j.Schedule), orDash(strings.Join(j.Parents, ",")),
					!j.Disabled, j.SuccessCount, j.ErrorCount, orDash(j.LastSuccess), orDash(j.LastError))
			}
			return tw.Flush()
		},
	}
}

func (a *app) jobShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a job",
		Args:  oneArg("job name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raws, jobs, err := a.jobs(cmd)
			if err != nil {
				return err
			}
			for i, j := range jobs {
				if j.Name != args[0] {
					continue
				}
				if a.output == "json" {
					return a.printJSON(raws[i])
				}
				tw := a.table("FIELD", "VALUE")
				for _, row := range [][2]string{
					{"Name", j.Name}, {"Command", j.Command}, {"Schedule", orDash(j.Schedule)}, {"Time zone", orDash(j.ScheduleTimeZone)},
					{"Parents", orDash(strings.Join(j.Parents, ","))}, {"Enabled", fmt.Sprint(!j.Disabled)},
					{"Successes", fmt.Sprint(j.SuccessCount)}, {"Errors", fmt.Sprint(j.ErrorCount)},
					{"Last success", orDash(j.LastSuccess)}, {"Last error", orDash(j.LastError)},
					{"Errors since success", fmt.Sprint(j.ErrorsSinceLastSuccess)},
				} {
					fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
				}
				return tw.Flush()
			}
			return fmt.Errorf("no job %q (see atoll job list)", args[0])
		},
	}
}

func (a *app) jobAddCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "add FILE",
		Short: "Add or replace a job from a Chronos job definition (FILE may be - for stdin)",
		Args:  oneArg("file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readDefinition(cmd, args[0])
			if err != nil {
				return err
			}
			var probe struct {
				Name    string   `json:"name"`
				Parents []string `json:"parents"`
			}
			if err := json.Unmarshal(data, &probe); err != nil {
				return fmt.Errorf("%s: not a JSON job definition: %w", args[0], err)
			}
			path := chronosPrefix + "/iso8601"
			if len(probe.Parents) > 0 {
				path = chronosPrefix + "/dependency"
			}
			client, err := a.marathon()
			if err != nil {
				return err
			}
			if _, err := client.Do(cmd.Context(), http.MethodPost, path, nil, data); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "job %s added\n", probe.Name)
			return nil
		},
	}
}

func (a *app) jobRunCmd() *cobra.Command {
	var arguments string
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Run a job now",
		Args:  oneArg("job name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			var query url.Values
			if arguments != "" {
				query = url.Values{"arguments": {arguments}}
			}
			if _, err := client.Do(cmd.Context(), http.MethodPut, chronosPrefix+"/job/"+url.PathEscape(args[0]), query, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "job %s started\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&arguments, "arguments", "", "arguments for this run, replacing the job's")
	return cmd
}

func (a *app) jobRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a job",
		Args:  oneArg("job name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			if _, err := client.Do(cmd.Context(), http.MethodDelete, chronosPrefix+"/job/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "job %s removed\n", args[0])
			return nil
		},
	}
}
