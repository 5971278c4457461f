package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/pkgs"
)

// The pkg commands speak the Cosmos API the master serves (/package/*), as `dcos package`
// did, with what DC/OS users missed: a progress display until the installed deployment is
// healthy, option errors that name the option, and uninstall that removes everything.

// cosmos returns a client for the master the flags, the environment or the current
// context name.
func (a *app) cosmos() (*universe.Client, error) {
	addr, err := a.masterAddr()
	if err != nil {
		return nil, err
	}
	return universe.NewClient(addr, universe.WithToken(a.token())), nil
}

func (a *app) pkgCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pkg",
		Short: "Find, install and remove packages from the catalog (DC/OS Universe format)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	repo := &cobra.Command{
		Use:   "repo",
		Short: "Manage the package repositories",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	repo.AddCommand(a.pkgRepoListCmd(), a.pkgRepoAddCmd(), a.pkgRepoRemoveCmd())
	cmd.AddCommand(a.pkgSearchCmd(), a.pkgDescribeCmd(), a.pkgInstallCmd(), a.pkgUpdateCmd(), a.pkgListCmd(), a.pkgUninstallCmd(), repo)
	return cmd
}

func (a *app) pkgSearchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "search [QUERY]",
		Short: "Search the packages by name, description and tags (* is a wildcard)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			query := ""
			if len(args) == 1 {
				query = args[0]
			}
			resp, err := client.Search(cmd.Context(), query)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(resp)
			}
			if len(resp.Packages) == 0 {
				fmt.Fprintf(a.stderr, "no package matches %q\n", query)
				return nil
			}
			tw := a.table("NAME", "VERSION", "SELECTED", "FRAMEWORK", "DESCRIPTION")
			for _, p := range resp.Packages {
				fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%s\n", p.Name, p.CurrentVersion, p.Selected, p.Framework, truncate(firstLine(p.Description), 70))
			}
			return tw.Flush()
		},
	}
}

// firstLine is the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// installFlags are the flags install, describe --render and install --dry-run share.
type installFlags struct {
	version string
	options string
	appID   string
}

func (f *installFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.version, "package-version", "", "the package version (default: its current version)")
	fl.StringVar(&f.options, "options", "", "a JSON file of install options, merged over the package's defaults (- for stdin)")
	fl.StringVar(&f.appID, "app-id", "", "install as this app (or group) id instead of the package's")
}

// readOptions reads the options file, checking that it holds a JSON object.
func (f *installFlags) readOptions(cmd *cobra.Command) (json.RawMessage, error) {
	if f.options == "" {
		return nil, nil
	}
	data, err := readDefinition(cmd, f.options)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, usagef("--options %s: not a JSON object of options: %v", f.options, err)
	}
	return data, nil
}

func (a *app) pkgDescribeCmd() *cobra.Command {
	var (
		f        installFlags
		config   bool
		render   bool
		versions bool
	)
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a package: its notes, --config (option schema), --render (the app it installs), --package-versions",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case versions:
				resp, err := client.ListVersions(ctx, args[0])
				if err != nil {
					return err
				}
				if a.output == "json" {
					return a.printJSON(resp)
				}
				tw := a.table("VERSION", "RELEASE")
				for _, v := range sortedVersions(resp.Results) {
					fmt.Fprintf(tw, "%s\t%s\n", v, resp.Results[v])
				}
				return tw.Flush()
			case render:
				options, err := f.readOptions(cmd)
				if err != nil {
					return err
				}
				resp, err := client.Render(ctx, &universe.RenderRequest{PackageName: args[0], PackageVersion: f.version, Options: options, AppID: f.appID})
				if err != nil {
					return optionHint(err)
				}
				return a.printJSON(resp.MarathonJSON)
			}
			resp, err := client.Describe(ctx, args[0], f.version)
			if err != nil {
				return err
			}
			if config {
				return a.printJSON(resp.Package.Config)
			}
			if a.output == "json" {
				return a.printJSON(resp)
			}
			p := resp.Package
			fmt.Fprintf(a.stdout, "%s %s (release %d)\n%s\n", p.Name, p.Version, p.ReleaseVersion, strings.TrimSpace(p.Description))
			for _, line := range []struct{ k, v string }{
				{"maintainer", p.Maintainer}, {"website", p.Website}, {"tags", strings.Join(p.Tags, ", ")},
				{"framework", fmt.Sprint(p.Framework)},
			} {
				if line.v != "" {
					fmt.Fprintf(a.stdout, "  %-11s %s\n", line.k+":", line.v)
				}
			}
			if p.PreInstallNotes != "" {
				fmt.Fprintf(a.stdout, "\nBefore installing:\n%s\n", indent(p.PreInstallNotes))
			}
			fmt.Fprintf(a.stdout, "\nOptions: atoll pkg describe %s --config; what it installs: --render\n", p.Name)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&config, "config", false, "print the JSON Schema of the package's options")
	cmd.Flags().BoolVar(&render, "render", false, "print the app or group the package installs with --options")
	cmd.Flags().BoolVar(&versions, "package-versions", false, "list the package's versions")
	return cmd
}

// sortedVersions orders versions by release version, newest first.
func sortedVersions(results map[string]string) []string {
	out := make([]string, 0, len(results))
	for v := range results {
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y string) int {
		var rx, ry int
		fmt.Sscan(results[x], &rx)
		fmt.Sscan(results[y], &ry)
		if rx != ry {
			return ry - rx
		}
		return strings.Compare(x, y)
	})
	return out
}

// indent indents every line of s by two spaces.
func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}

// optionHint adds where to look to an option error.
func optionHint(err error) error {
	var ce *universe.Error
	if !asCosmos(err, &ce) || ce.Type != "JsonSchemaMismatch" {
		return err
	}
	var data struct {
		Errors universe.FieldErrors `json:"errors"`
	}
	if json.Unmarshal(ce.Data, &data) != nil || len(data.Errors) == 0 {
		return err
	}
	var b strings.Builder
	b.WriteString("the options are not valid:")
	for _, fe := range data.Errors {
		fmt.Fprintf(&b, "\n  %s", fe.String())
	}
	b.WriteString("\natoll: the options and their defaults: atoll pkg describe NAME --config")
	return fmt.Errorf("%s", b.String())
}

// asCosmos finds the Cosmos error body in err.
func asCosmos(err error, target **universe.Error) bool {
	re, ok := err.(*universe.ResponseError)
	if !ok {
		return false
	}
	*target = &re.Body
	return true
}

func (a *app) pkgInstallCmd() *cobra.Command {
	var (
		f      installFlags
		yes    bool
		dryRun bool
		noWait bool
		o      changeOptions
	)
	cmd := &cobra.Command{
		Use:   "install NAME",
		Short: "Install a package and follow its deployment until it is healthy",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			options, err := f.readOptions(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if dryRun {
				resp, err := client.Render(ctx, &universe.RenderRequest{PackageName: args[0], PackageVersion: f.version, Options: options, AppID: f.appID})
				if err != nil {
					return optionHint(err)
				}
				return a.printJSON(resp.MarathonJSON)
			}
			desc, err := client.Describe(ctx, args[0], f.version)
			if err != nil {
				return err
			}
			p := desc.Package
			// Render first: option errors show before the question, and nothing is created.
			if _, err := client.Render(ctx, &universe.RenderRequest{PackageName: p.Name, PackageVersion: p.Version, Options: options, AppID: f.appID}); err != nil {
				return optionHint(err)
			}
			if p.PreInstallNotes != "" && a.output != "json" {
				fmt.Fprintln(a.stdout, strings.TrimSpace(p.PreInstallNotes))
			}
			if !yes {
				ok, err := a.confirm(cmd, "Continue installing? [yes/no] ")
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(a.stdout, "Not installed.")
					return nil
				}
			}
			if a.output != "json" {
				fmt.Fprintf(a.stdout, "Installing Marathon app for package [%s] version [%s]\n", p.Name, p.Version)
			}
			var installed *universe.InstallResponse
			o.wait = !noWait
			if err := a.runChange(cmd, newMarathonClient(a.addr, a.token()), o, change{
				what: fmt.Sprintf("installed package %s %s", p.Name, p.Version),
				send: func(ctx context.Context) (marathon.Started, error) {
					resp, err := client.Install(ctx, &universe.InstallRequest{PackageName: p.Name, PackageVersion: p.Version, Options: options, AppID: f.appID})
					if err != nil {
						return marathon.Started{}, optionHint(err)
					}
					installed = resp
					raw, _ := json.Marshal(resp)
					return marathon.Started{Status: http.StatusCreated, DeploymentID: resp.DeploymentID, Raw: raw}, nil
				},
				describe: func(marathon.Started) string {
					return fmt.Sprintf("installed package %s %s as %s", installed.PackageName, installed.PackageVersion, installed.AppID)
				},
			}); err != nil {
				return err
			}
			if installed.PostInstallNotes != "" && a.output != "json" {
				fmt.Fprintln(a.stdout, strings.TrimSpace(installed.PostInstallNotes))
			}
			return nil
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	fl.BoolVar(&dryRun, "dry-run", false, "print the app or group the install would create, and create nothing")
	fl.BoolVar(&noWait, "no-wait", false, "return once the deployment started, without following it")
	fl.DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "give up following the deployment after this long (it goes on)")
	return cmd
}

func (a *app) pkgUpdateCmd() *cobra.Command {
	var (
		f       installFlags
		replace bool
		yes     bool
		noWait  bool
		o       changeOptions
	)
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Move an installed package to its current version (or --package-version), or change its options, following the deployment",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			options, err := f.readOptions(cmd)
			if err != nil {
				return err
			}
			list, err := client.List(ctx, &universe.ListRequest{PackageName: args[0], AppID: f.appID})
			if err != nil {
				return err
			}
			switch {
			case len(list.Packages) == 0:
				return fmt.Errorf("package %s is not installed (atoll pkg list shows what is)", args[0])
			case len(list.Packages) > 1:
				ids := make([]string, len(list.Packages))
				for i, p := range list.Packages {
					ids[i] = p.AppID
				}
				return usagef("package %s is installed %d times (%s): name one with --app-id", args[0], len(ids), strings.Join(ids, ", "))
			}
			installed := list.Packages[0]
			from := installed.PackageInformation.PackageDefinition.Version
			to := f.version
			if to == "" {
				current, err := client.Describe(ctx, args[0], "")
				if err != nil {
					return err
				}
				to = current.Package.Version
			}
			if to == from && options == nil {
				fmt.Fprintf(a.stdout, "%s is already at %s %s\n", installed.AppID, args[0], to)
				return nil
			}
			if !yes {
				ok, err := a.confirm(cmd, fmt.Sprintf("Update %s from %s %s to %s? [yes/no] ", installed.AppID, args[0], from, to))
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(a.stdout, "Not updated.")
					return nil
				}
			}
			o.wait = !noWait
			return a.runChange(cmd, newMarathonClient(a.addr, a.token()), o, change{
				what: fmt.Sprintf("updating %s from %s %s to %s", installed.AppID, args[0], from, to),
				send: func(ctx context.Context) (marathon.Started, error) {
					resp, err := client.UpdateService(ctx, &universe.ServiceUpdateRequest{AppID: installed.AppID, PackageVersion: to, Options: options, Replace: replace})
					if err != nil {
						return marathon.Started{}, optionHint(err)
					}
					raw, _ := json.Marshal(resp)
					return marathon.Started{Status: http.StatusOK, DeploymentID: resp.MarathonDeploymentID, Raw: raw}, nil
				},
			})
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&replace, "replace", false, "use --options alone instead of merging them over the installed ones")
	fl.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	fl.BoolVar(&noWait, "no-wait", false, "return once the deployment started, without following it")
	fl.DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "give up following the deployment after this long (it goes on)")
	return cmd
}

// confirm asks a yes/no question on stdin.
func (a *app) confirm(cmd *cobra.Command, question string) (bool, error) {
	fmt.Fprint(a.stdout, question)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(a.stdout)
		if err == io.EOF {
			return false, usagef("no answer (stdin is closed): pass --yes to go ahead without asking")
		}
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "yes", "y":
		return true, nil
	}
	return false, nil
}

func (a *app) pkgListCmd() *cobra.Command {
	var appID string
	cmd := &cobra.Command{
		Use:   "list [NAME]",
		Short: "List the installed packages",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			req := &universe.ListRequest{AppID: appID}
			if len(args) == 1 {
				req.PackageName = args[0]
			}
			resp, err := client.List(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(resp)
			}
			tw := a.table("NAME", "VERSION", "APP", "FRAMEWORK", "DESCRIPTION")
			for _, p := range resp.Packages {
				d := p.PackageInformation.PackageDefinition
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", d.Name, d.Version, p.AppID, d.Framework, truncate(firstLine(d.Description), 60))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&appID, "app-id", "", "only the installation with this app id")
	return cmd
}

func (a *app) pkgUninstallCmd() *cobra.Command {
	var (
		appID   string
		all     bool
		noWait  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "uninstall NAME",
		Short: "Remove an installed package and everything it created (apps, groups, frameworks and their tasks)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			resp, err := client.Uninstall(cmd.Context(), &universe.UninstallRequest{PackageName: args[0], AppID: appID, All: all})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(resp)
			}
			for _, r := range resp.Results {
				fmt.Fprintf(a.stdout, "Uninstalling package [%s] version [%s] (%s)\n", r.PackageName, r.PackageVersion, r.AppID)
				if !noWait {
					if err := a.waitGone(cmd.Context(), newMarathonClient(a.addr, a.token()), r.AppID, timeout); err != nil {
						return err
					}
				}
				if r.PostUninstallNotes != "" {
					fmt.Fprintln(a.stdout, strings.TrimSpace(r.PostUninstallNotes))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&appID, "app-id", "", "the installation to remove, when the package is installed more than once")
	cmd.Flags().BoolVar(&all, "all", false, "remove every installation of the package")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the removal started, without waiting for the tasks to stop")
	cmd.Flags().DurationVar(&timeout, "timeout", defaultWaitTimeout, "give up waiting after this long (the removal goes on)")
	return cmd
}

// waitGone waits until the app or group id and its tasks are gone, saying how many tasks
// are left whenever that changes.
func (a *app) waitGone(ctx context.Context, client *marathon.Client, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := -1
	for {
		tasks, err := client.ListTasks(ctx)
		if err != nil {
			return err
		}
		left := 0
		for _, t := range tasks {
			if t.Value.AppID == id || strings.HasPrefix(t.Value.AppID, id+"/") {
				left++
			}
		}
		exists, err := appOrGroupExists(ctx, client, id)
		if err != nil {
			return err
		}
		if !exists && left == 0 {
			fmt.Fprintf(a.stdout, "%s: removed\n", id)
			return nil
		}
		if left != last {
			fmt.Fprintf(a.stdout, "%s: stopping, %s left\n", id, plural(left, "task"))
			last = left
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is still there after %s (%s left); it goes on being removed: atoll deployment list", id, timeout, plural(left, "task"))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// appOrGroupExists says whether id names an app or a group.
func appOrGroupExists(ctx context.Context, client *marathon.Client, id string) (bool, error) {
	notFound := func(err error) bool {
		var ae *marathon.APIError
		return errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound
	}
	if _, err := client.GetApp(ctx, id); err == nil || !notFound(err) {
		return err == nil, err
	}
	if _, err := client.GetGroup(ctx, id); err == nil || !notFound(err) {
		return err == nil, err
	}
	return false, nil
}

func (a *app) pkgRepoListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the package repositories in search order",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			resp, err := client.RepositoryList(cmd.Context())
			if err != nil {
				return err
			}
			return a.printRepos(resp)
		},
	}
}

func (a *app) printRepos(resp *universe.RepositoryListResponse) error {
	if a.output == "json" {
		return a.printJSON(resp)
	}
	tw := a.table("NAME", "URI")
	for _, r := range resp.Repositories {
		fmt.Fprintf(tw, "%s\t%s\n", r.Name, r.URI)
	}
	return tw.Flush()
}

func (a *app) pkgRepoAddCmd() *cobra.Command {
	var index int64
	cmd := &cobra.Command{
		Use:   "add NAME URL|DIR",
		Short: "Add a repository: a Universe index URL, or a directory in the repo/packages/<L>/<name>/<revision>/ layout",
		Args:  exactArgs(2, "NAME and URL or DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			req := &universe.RepositoryAddRequest{Name: args[0], URI: args[1]}
			if cmd.Flags().Changed("index") {
				req.Index = &index
			}
			if st, err := os.Stat(args[1]); err == nil && st.IsDir() {
				repo, err := pkgs.LoadFS(os.DirFS(args[1]), args[0], args[1])
				if err != nil {
					return err
				}
				index, err := json.Marshal(repo.Index())
				if err != nil {
					return err
				}
				req.URI, req.Content = "dir:"+args[1], index
			}
			resp, err := client.RepositoryAdd(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printRepos(resp)
		},
	}
	cmd.Flags().Int64Var(&index, "index", 0, "where the repository goes in the search order (0 is first; default last)")
	return cmd
}

func (a *app) pkgRepoRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a repository (installed packages stay installed)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.cosmos()
			if err != nil {
				return err
			}
			resp, err := client.RepositoryDelete(cmd.Context(), &universe.RepositoryDeleteRequest{Name: args[0]})
			if err != nil {
				return err
			}
			return a.printRepos(resp)
		},
	}
}
