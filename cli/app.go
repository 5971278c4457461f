package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api/marathon"
)

// The app commands manage services: Marathon apps, run by the services framework and
// served by its Marathon v2 API on the master port.

func (a *app) appCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Run services: list, add, change, scale, restart and remove apps",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.appListCmd(), a.appShowCmd(), a.appTasksCmd(), a.appAddCmd(), a.appDeployCmd(),
		a.appUpdateCmd(), a.appScaleCmd(), a.appRestartCmd(), a.appRemoveCmd())
	return cmd
}

func (a *app) appListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the apps",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			apps, err := client.ListApps(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(raws(apps))
			}
			return a.printAppTable(apps)
		},
	}
}

func (a *app) printAppTable(apps []marathon.Object[marathon.AppInfo]) error {
	tw := a.table("ID", "INSTANCES", "CPUS", "MEM", "VERSION", "DEPLOYMENTS")
	for _, item := range apps {
		info := item.Value
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", info.ID, instances(info), formatNumber(info.Cpus),
			formatMB(info.Mem), orDash(info.Version), deploymentIDs(info.Deployments))
	}
	return tw.Flush()
}

// instances is "running/target".
func instances(info marathon.AppInfo) string {
	running := 0
	if info.TasksRunning != nil {
		running = *info.TasksRunning
	}
	return fmt.Sprintf("%d/%d", running, info.Instances)
}

func deploymentIDs(refs []marathon.DeploymentRef) string {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return orDash(strings.Join(ids, ","))
}

func (a *app) appShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show APP_ID",
		Short: "Show an app: its definition, status and tasks",
		Args:  oneArg("app id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			info, err := client.GetApp(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(info.Raw)
			}
			return a.printApp(info.Value)
		},
	}
}

// printApp prints an app's main fields, then its tasks.
func (a *app) printApp(info marathon.AppInfo) error {
	counts := func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	}
	command := info.Cmd
	if command == "" && len(info.Args) > 0 {
		command = shellJoin(info.Args)
	}
	image := ""
	var ports []string
	for _, p := range info.PortDefinitions {
		ports = append(ports, strconv.Itoa(p.Port))
	}
	if c := info.Container; c != nil {
		if c.Docker != nil {
			image = c.Docker.Image
		}
		for _, p := range c.PortMappings {
			ports = append(ports, strconv.Itoa(p.ServicePort))
		}
	}
	var constraints []string
	for _, c := range info.Constraints {
		constraints = append(constraints, strings.Join(c, ":"))
	}
	var labels []string
	for k, v := range info.Labels {
		labels = append(labels, k+"="+v)
	}
	slices.Sort(labels)
	lastFailure := ""
	if f := info.LastTaskFailure; f != nil {
		lastFailure = fmt.Sprintf("%s %s on %s at %s: %s", f.TaskID, f.State, orDash(f.Host), f.Timestamp, orDash(f.Message))
	}
	tw := a.table("ID:", info.ID)
	for _, row := range [][2]string{
		{"Command:", orDash(command)},
		{"Image:", orDash(image)},
		{"Instances:", fmt.Sprintf("%d running of %d (%d staged, %d healthy, %d unhealthy)", counts(info.TasksRunning), info.Instances,
			counts(info.TasksStaged), counts(info.TasksHealthy), counts(info.TasksUnhealthy))},
		{"CPUs:", formatNumber(info.Cpus)},
		{"Memory:", formatMB(info.Mem)},
		{"Disk:", formatMB(info.Disk)},
		{"Service ports:", orDash(strings.Join(ports, ","))},
		{"Constraints:", orDash(strings.Join(constraints, " "))},
		{"Labels:", orDash(strings.Join(labels, " "))},
		{"Health checks:", strconv.Itoa(len(info.HealthChecks))},
		{"Version:", orDash(info.Version)},
		{"Deployments:", deploymentIDs(info.Deployments)},
		{"Last failure:", orDash(lastFailure)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	return a.printAppTasks(info.Tasks)
}

func (a *app) appTasksCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tasks APP_ID",
		Short: "List an app's tasks",
		Args:  oneArg("app id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			tasks, err := client.AppTasks(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(raws(tasks))
			}
			list := make([]marathon.Task, len(tasks))
			for i, t := range tasks {
				list[i] = t.Value
			}
			return a.printAppTasks(list)
		},
	}
}

func (a *app) printAppTasks(tasks []marathon.Task) error {
	tw := a.table("ID", "HOST", "PORTS", "STATE", "HEALTH", "STARTED")
	for _, t := range tasks {
		ports := make([]string, len(t.Ports))
		for i, p := range t.Ports {
			ports[i] = strconv.Itoa(p)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, orDash(t.Host), orDash(strings.Join(ports, ",")), t.State,
			taskHealth(t), a.startedAt(t.StartedAt))
	}
	return tw.Flush()
}

// taskHealth sums up a task's health checks: "-" without any, "healthy" when all pass,
// "unhealthy" when one failed, "unknown" before the first results.
func taskHealth(t marathon.Task) string {
	switch {
	case len(t.HealthCheckResults) == 0:
		return "-"
	case taskAlive(t):
		return "healthy"
	}
	for _, r := range t.HealthCheckResults {
		if !r.Alive && (r.ConsecutiveFailures > 0 || r.LastFailure != "") {
			return "unhealthy"
		}
	}
	return "unknown"
}

// startedAt says how long ago a Marathon timestamp was.
func (a *app) startedAt(ts string) string {
	t, err := time.Parse(marathon.TimeLayout, ts)
	if err != nil {
		return "-"
	}
	return formatAge(a.now().Sub(t)) + " ago"
}

// readDefinition reads a JSON definition from a file, or from stdin for "-".
func readDefinition(cmd *cobra.Command, name string) ([]byte, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), marathon.MaxBody+1))
		name = "stdin"
	} else {
		var f *os.File
		if f, err = os.Open(name); err == nil {
			data, err = io.ReadAll(io.LimitReader(f, marathon.MaxBody+1))
			f.Close()
		}
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the definition: %w", err)
	case len(data) > marathon.MaxBody:
		return nil, fmt.Errorf("read the definition: %s is larger than %d MB", name, marathon.MaxBody>>20)
	case len(bytes.TrimSpace(data)) == 0:
		return nil, usagef("%s is empty: want a JSON definition", name)
	}
	return data, nil
}

// statusFields are what GET /v2/apps/{id} adds to an app's definition.
var statusFields = []string{
	"tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments", "tasks",
	"readinessCheckResults", "lastTaskFailure", "taskStats", "versionInfo",
}

// dropStatus makes an app as app show -o json prints it a definition again: it drops the
// status fields, and the version, which the API takes as "go back to that version" and
// refuses next to other fields. Anything else is left as it is, for the API to judge.
func dropStatus(def []byte) []byte {
	var fields map[string]json.RawMessage
	if json.Unmarshal(def, &fields) != nil {
		return def
	}
	changed := false
	for _, name := range statusFields {
		if _, ok := fields[name]; ok {
			delete(fields, name)
			changed = true
		}
	}
	_, hasID := fields["id"]
	if _, ok := fields["version"]; ok && (len(fields) > 2 || len(fields) == 2 && !hasID) {
		delete(fields, "version")
		changed = true
	}
	if !changed {
		return def
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return def
	}
	return out
}

// definitionID is the "id" of a JSON definition, canonical; "" when it has none (the API
// then says what is wrong with it).
func definitionID(data []byte) string {
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &probe) != nil || strings.Trim(probe.ID, "/") == "" {
		return ""
	}
	return canonicalID(probe.ID)
}

// exactArgs accepts n arguments, described as what ("an app id and a file").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
			return usagef("%s takes %s, got %d arguments", path, what, len(args))
		}
		return nil
	}
}

func (a *app) appAddCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Add an app from its JSON definition (FILE, or - for stdin)",
		Args:  oneArg("file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := readDefinition(cmd, args[0])
			if err != nil {
				return err
			}
			def = dropStatus(def)
			client, err := a.marathon()
			if err != nil {
				return err
			}
			return a.runChange(cmd, client, o, change{
				apps:     nonEmpty(definitionID(def)),
				send:     func(ctx context.Context) (marathon.Started, error) { return client.CreateApp(ctx, def, o.force) },
				describe: describeCreated,
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

// describeCreated names the app POST /v2/apps created, from the app it answers with.
func describeCreated(s marathon.Started) string { return "created app " + definitionID(s.Raw) }

// nonEmpty is a list of id, or none when id is "".
func nonEmpty(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}

func (a *app) appDeployCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "deploy FILE",
		Short: "Add an app, or replace its definition with FILE's (- for stdin)",
		Long: "deploy makes the app what FILE defines: it adds the app if there is none with its id,\n" +
			"else it replaces the whole definition (fields FILE leaves out take their defaults).",
		Args: oneArg("file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := readDefinition(cmd, args[0])
			if err != nil {
				return err
			}
			def = dropStatus(def)
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := definitionID(def)
			c := change{
				apps: nonEmpty(id),
				send: func(ctx context.Context) (marathon.Started, error) {
					return client.PutApp(ctx, id, def, o.force, false)
				},
				describe: func(s marathon.Started) string {
					if s.Status == http.StatusCreated {
						return "created app " + id
					}
					return "updating app " + id
				},
			}
			if id == "" {
				// Without an id there is nothing to replace: the API says what is missing.
				c.send = func(ctx context.Context) (marathon.Started, error) { return client.CreateApp(ctx, def, o.force) }
				c.describe = describeCreated
			}
			return a.runChange(cmd, client, o, c)
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

func (a *app) appUpdateCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "update APP_ID FILE",
		Short: "Change an app: the fields in FILE (- for stdin) replace the app's",
		Args:  exactArgs(2, "an app id and a file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := readDefinition(cmd, args[1])
			if err != nil {
				return err
			}
			def = dropStatus(def)
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := canonicalID(args[0])
			return a.runChange(cmd, client, o, change{
				what: "updating app " + id,
				apps: []string{id},
				send: func(ctx context.Context) (marathon.Started, error) { return client.PutApp(ctx, id, def, o.force, true) },
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

func (a *app) appScaleCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "scale APP_ID INSTANCES",
		Short: "Change how many instances of an app run",
		Args:  exactArgs(2, "an app id and a number of instances"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return usagef("instances %q: want a whole number, 0 or more", args[1])
			}
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := canonicalID(args[0])
			body := fmt.Appendf(nil, `{"instances": %d}`, n)
			return a.runChange(cmd, client, o, change{
				what: fmt.Sprintf("scaling app %s to %d instances", id, n),
				apps: []string{id},
				send: func(ctx context.Context) (marathon.Started, error) { return client.PatchApp(ctx, id, body, o.force) },
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

func (a *app) appRestartCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "restart APP_ID",
		Short: "Replace every task of an app, as its upgrade strategy allows",
		Args:  oneArg("app id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := canonicalID(args[0])
			return a.runChange(cmd, client, o, change{
				what: "restarting app " + id,
				apps: []string{id},
				send: func(ctx context.Context) (marathon.Started, error) { return client.RestartApp(ctx, id, o.force) },
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}

func (a *app) appRemoveCmd() *cobra.Command {
	var o changeOptions
	cmd := &cobra.Command{
		Use:   "remove APP_ID",
		Short: "Remove an app and kill its tasks",
		Args:  oneArg("app id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.marathon()
			if err != nil {
				return err
			}
			id := canonicalID(args[0])
			return a.runChange(cmd, client, o, change{
				what:    "removing app " + id,
				apps:    []string{id},
				removes: true,
				send:    func(ctx context.Context) (marathon.Started, error) { return client.DeleteApp(ctx, id, o.force) },
			})
		},
	}
	addChangeFlags(cmd, &o, true)
	return cmd
}
