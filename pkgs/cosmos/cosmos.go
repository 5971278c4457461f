// Package cosmos serves the package catalog on the master: the Cosmos API (/package/search,
// describe, render, install, list, uninstall, list-versions and repository/list|add|delete)
// with Cosmos's media types and error bodies.
//
// It is a master.LeaderService next to the services framework. The list of repositories
// and every installation live in the replicated key-value table (namespace "packages"),
// so a new leader knows what is installed and where packages come from. A package installs
// through the services framework's own Marathon API, called in-process: what the package
// renders is checked and deployed exactly as a user's app would be. Uninstall removes what
// the installation created: its app or group, and for a framework package the framework
// it registered, with its tasks.
package cosmos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/pkgs"
	"github.com/atoll/atoll/pkgs/builtin"
)

// Config configures the catalog service.
type Config struct {
	Logger *slog.Logger
	// Fetch says how repository indexes are fetched over HTTP.
	Fetch pkgs.FetchConfig
	// Builtin is the built-in repository (the builtin package's FS when nil).
	Builtin fs.FS
	// Refresh is how long a fetched index is used before it is fetched again.
	Refresh time.Duration
	// BuiltinFrameworkNamespaces are the key-value namespaces whose "framework-id" key holds
	// the id of a built-in framework, which uninstall never tears down.
	BuiltinFrameworkNamespaces []string
	Now                        func() time.Time
}

// DefaultConfig is the configuration Attach fills missing fields from.
func DefaultConfig() Config {
	return Config{
		Logger:                     slog.Default(),
		Fetch:                      pkgs.DefaultFetchConfig(),
		Refresh:                    10 * time.Minute,
		BuiltinFrameworkNamespaces: []string{"services", "jobs"},
		Now:                        time.Now,
	}
}

// namespace is the key-value namespace of the catalog's state.
const namespace = "packages"

// Keys of the namespace: the repository list, and one installation per app or group id.
const (
	repositoriesKey = "repositories"
	installPrefix   = "install/"
	// contentPrefix keys a repository's index by the repository's URI: an uploaded
	// repository's (a directory the CLI read), or the copy last fetched of an HTTP one,
	// which serves when the repository cannot be reached.
	contentPrefix = "repository-content/"
)

// uploadedScheme starts the URI of a repository whose index was uploaded with it (the
// CLI's `repo add NAME DIR`): "dir:/path/it/was/read/from".
const uploadedScheme = "dir:"

// Service is the catalog of one master.
type Service struct {
	cfg      Config
	log      *slog.Logger
	m        *master.Master
	marathon *marathon.Client
	operator *api.Client

	// builtin is the built-in repository, loaded once; builtinErr says why it is missing.
	builtin    *pkgs.Repository
	builtinErr error

	mu sync.Mutex
	// indexes are the fetched repositories by URI.
	indexes map[string]*fetched
	// changing serialises installs, uninstalls and repository changes: each reads the
	// state, acts, then writes it.
	changing sync.Mutex
}

// fetched is a repository fetched over HTTP.
type fetched struct {
	repo *pkgs.Repository
	at   time.Time
}

// Attach creates the catalog on m and serves the Cosmos API on m's handler. Call it from a
// master.Config extension, after the services framework is attached.
func Attach(m *master.Master, cfg Config) *Service {
	def := DefaultConfig()
	if cfg.Logger == nil {
		cfg.Logger = def.Logger
	}
	if cfg.Fetch == (pkgs.FetchConfig{}) {
		cfg.Fetch = def.Fetch
	}
	if cfg.Builtin == nil {
		cfg.Builtin = builtin.FS()
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = def.Refresh
	}
	if cfg.BuiltinFrameworkNamespaces == nil {
		cfg.BuiltinFrameworkNamespaces = def.BuiltinFrameworkNamespaces
	}
	if cfg.Now == nil {
		cfg.Now = def.Now
	}
	inProcess := &http.Client{Transport: api.HandlerTransport(handlerOf(m))}
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "catalog"),
		m:        m,
		marathon: marathon.NewClient("http://in-process", marathon.WithHTTPClient(inProcess)),
		operator: m.InProcessClient(),
		indexes:  map[string]*fetched{},
	}
	s.builtin, s.builtinErr = pkgs.LoadFS(cfg.Builtin, builtin.Name, builtin.URI)
	if s.builtinErr != nil {
		s.log.Error("the built-in package repository does not load", "err", s.builtinErr)
	}
	s.routes()
	return s
}

// handlerOf defers to m's handler, built once all routes are registered.
func handlerOf(m *master.Master) http.Handler {
	var once sync.Once
	var h http.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { h = m.Handler() })
		h.ServeHTTP(w, r)
	})
}

// repositories reads the configured repositories in search order: the built-in one alone
// until an operator changes the list.
func (s *Service) repositories() []universe.PackageRepository {
	entry, ok := s.m.Store().KV(namespace, repositoriesKey)
	if !ok {
		return []universe.PackageRepository{{Name: builtin.Name, URI: builtin.URI}}
	}
	var repos []universe.PackageRepository
	if err := json.Unmarshal(entry.Value, &repos); err != nil {
		s.log.Error("the stored repository list is unreadable; using the built-in repository", "err", err)
		return []universe.PackageRepository{{Name: builtin.Name, URI: builtin.URI}}
	}
	return repos
}

// catalog builds the catalog of the configured repositories, fetching indexes that are
// missing or older than Refresh. A repository that cannot be fetched is left out with a
// warning when an older copy exists; otherwise it is an error naming it.
func (s *Service) catalog(ctx context.Context) (*pkgs.Catalog, error) {
	var repos []*pkgs.Repository
	for _, r := range s.repositories() {
		repo, err := s.load(ctx, r)
		if err != nil {
			return nil, err
		}
		repos = append(repos, repo)
	}
	return pkgs.NewCatalog(repos...), nil
}

// resolve finds a package version in the catalog ("" is the current version).
func (s *Service) resolve(ctx context.Context, name, version string) (*pkgs.Package, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	return cat.Resolve(name, version)
}

// load returns one repository.
func (s *Service) load(ctx context.Context, r universe.PackageRepository) (*pkgs.Repository, error) {
	if r.URI == builtin.URI {
		if s.builtinErr != nil {
			return nil, &cosmosError{http.StatusInternalServerError, "RepositoryNotPresent", "the built-in repository does not load: " + s.builtinErr.Error()}
		}
		return s.builtin, nil
	}
	s.mu.Lock()
	f := s.indexes[r.URI]
	s.mu.Unlock()
	if strings.HasPrefix(r.URI, uploadedScheme) {
		return s.loadUploaded(r, f)
	}
	if f != nil && s.cfg.Now().Sub(f.at) < s.cfg.Refresh {
		return f.repo, nil
	}
	repo, err := pkgs.FetchIndex(ctx, s.cfg.Fetch, r.Name, r.URI)
	if err != nil {
		if f != nil {
			s.log.Warn("a repository could not be fetched again; using the copy fetched before", "repository", r.Name, "uri", r.URI, "fetched", f.at, "err", err)
			return f.repo, nil
		}
		kept, ok, keptErr := s.keptIndex(r)
		switch {
		case keptErr != nil:
			return nil, &cosmosError{http.StatusBadGateway, "RepositoryUriConnection", fmt.Sprintf("%v (and the copy of its index kept does not load: %v)", err, keptErr)}
		case !ok:
			return nil, &cosmosError{http.StatusBadGateway, "RepositoryUriConnection", err.Error()}
		}
		// Fetched by an earlier leader, or before a restart: that copy serves until the
		// repository answers again (tried at the next Refresh).
		s.log.Warn("a repository could not be fetched; using the copy kept in the replicated state", "repository", r.Name, "uri", r.URI, "err", err)
		s.mu.Lock()
		s.indexes[r.URI] = &fetched{repo: kept, at: s.cfg.Now()}
		s.mu.Unlock()
		return kept, nil
	}
	s.mu.Lock()
	s.indexes[r.URI] = &fetched{repo: repo, at: s.cfg.Now()}
	s.mu.Unlock()
	s.keepIndex(ctx, r, repo)
	return repo, nil
}

// keptIndex loads the copy of a fetched repository's index kept in the replicated state;
// ok is false when there is none.
func (s *Service) keptIndex(r universe.PackageRepository) (repo *pkgs.Repository, ok bool, err error) {
	entry, ok := s.m.Store().KV(namespace, contentPrefix+r.URI)
	if !ok {
		return nil, false, nil
	}
	repo, err = pkgs.LoadIndex(entry.Value, r.Name, r.URI)
	return repo, err == nil, err
}

// keepIndex replaces the copy of a repository's index kept in the replicated state with
// one fetched since, when it differs. A repository still being added has no copy yet: its
// own write stores it. A failed write is logged; the older copy stays.
func (s *Service) keepIndex(ctx context.Context, r universe.PackageRepository, repo *pkgs.Repository) {
	entry, ok := s.m.Store().KV(namespace, contentPrefix+r.URI)
	if !ok {
		return
	}
	content, err := json.Marshal(repo.Index())
	if err != nil {
		s.log.Warn("the index fetched could not be encoded to be kept", "repository", r.Name, "err", err)
		return
	}
	if bytes.Equal(content, entry.Value) {
		return
	}
	if _, err := s.m.WriteKV(ctx, &state.WriteKVRequest{Namespace: namespace, Puts: []state.KVPut{{Key: contentPrefix + r.URI, Value: content}}}); err != nil {
		s.log.Warn("the index fetched could not be kept in the replicated state; the older copy stays", "repository", r.Name, "err", err)
	}
}

// loadUploaded loads a repository whose index is in the replicated state; f is the copy
// loaded before, if any (the index changes only with the repository list).
func (s *Service) loadUploaded(r universe.PackageRepository, f *fetched) (*pkgs.Repository, error) {
	if f != nil {
		return f.repo, nil
	}
	entry, ok := s.m.Store().KV(namespace, contentPrefix+r.URI)
	if !ok {
		return nil, &cosmosError{http.StatusInternalServerError, "RepositoryNotPresent", fmt.Sprintf("the index of repository %s (%s) is missing from the replicated state; remove and add it again", r.Name, r.URI)}
	}
	repo, err := pkgs.LoadIndex(entry.Value, r.Name, r.URI)
	if err != nil {
		return nil, &cosmosError{http.StatusInternalServerError, "IndexNotFound", err.Error()}
	}
	s.mu.Lock()
	s.indexes[r.URI] = &fetched{repo: repo, at: s.cfg.Now()}
	s.mu.Unlock()
	return repo, nil
}

// installation is the record of an installed package.
type installation struct {
	AppID string `json:"appId"`
	// Group says the package rendered a group, so AppID is a group id.
	Group          bool                     `json:"group,omitempty"`
	PackageName    string                   `json:"packageName"`
	PackageVersion string                   `json:"packageVersion"`
	ReleaseVersion int64                    `json:"releaseVersion"`
	Source         string                   `json:"source"`
	Metadata       universe.PackageMetadata `json:"metadata"`
	Resource       *universe.Resource       `json:"resource,omitempty"`
	// Options are the options the user gave, not merged with the defaults.
	Options json.RawMessage `json:"options,omitempty"`
	// Frameworks are the names of the frameworks the installed apps register
	// (DCOS_PACKAGE_FRAMEWORK_NAME), torn down on uninstall.
	Frameworks         []string  `json:"frameworks,omitempty"`
	PostUninstallNotes string    `json:"postUninstallNotes,omitempty"`
	InstalledAt        time.Time `json:"installedAt"`
	DeploymentID       string    `json:"deploymentId,omitempty"`
}

// installations reads every installation, ordered by app id.
func (s *Service) installations() ([]*installation, error) {
	var out []*installation
	for _, e := range s.m.Store().KVList(namespace, installPrefix) {
		var in installation
		if err := json.Unmarshal(e.Value, &in); err != nil {
			return nil, fmt.Errorf("installation record %s is unreadable: %w", e.Key, err)
		}
		out = append(out, &in)
	}
	return out, nil
}

// write replicates a change of the catalog's state.
func (s *Service) write(ctx context.Context, req *state.WriteKVRequest) error {
	req.Namespace = namespace
	if _, err := s.m.WriteKV(ctx, req); err != nil {
		return &cosmosError{http.StatusServiceUnavailable, "ServiceUnavailable", "replicate the catalog's state: " + err.Error()}
	}
	return nil
}

// install renders a package and creates what it renders, then records the installation.
// Nothing is left behind when a step fails.
func (s *Service) install(ctx context.Context, req *universe.InstallRequest) (*universe.InstallResponse, error) {
	p, err := s.resolve(ctx, req.PackageName, req.PackageVersion)
	if err != nil {
		return nil, err
	}
	rendered, err := p.Render(req.Options, req.AppID)
	if err != nil {
		return nil, err
	}
	in := &installation{
		PackageName:    p.Name,
		PackageVersion: p.Version,
		ReleaseVersion: p.ReleaseVersion,
		Source:         p.Source,
		Metadata:       p.PackageMetadata(),
		Resource:       p.Resource,
		Options:        req.Options,
		InstalledAt:    s.cfg.Now().UTC(),
	}
	if rendered.Group != nil {
		in.Group, in.AppID = true, rendered.Group.ID
		in.Frameworks = frameworkNames(rendered.Group.AllApps())
	} else {
		in.AppID = rendered.App.ID
		in.Frameworks = frameworkNames([]*marathon.App{rendered.App})
	}
	in.PostUninstallNotes = pkgs.RenderNotes(p.PostUninstallNotes, rendered.Options)

	s.changing.Lock()
	defer s.changing.Unlock()
	if _, ok := s.m.Store().KV(namespace, installPrefix+in.AppID); ok {
		return nil, &cosmosError{http.StatusConflict, "PackageAlreadyInstalled",
			fmt.Sprintf("a package is already installed as %s; choose another id with --app-id", in.AppID)}
	}
	if err := s.checkFrameworkNames(ctx, in.Frameworks); err != nil {
		return nil, err
	}
	var started marathon.Started
	if in.Group {
		started, err = s.marathon.GroupChange(ctx, http.MethodPost, "", rendered.JSON, false)
	} else {
		started, err = s.marathon.CreateApp(ctx, rendered.JSON, false)
	}
	if err != nil {
		return nil, marathonError(in.AppID, err)
	}
	in.DeploymentID = started.DeploymentID
	record, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if err := s.write(ctx, &state.WriteKVRequest{Puts: []state.KVPut{{Key: installPrefix + in.AppID, Value: record}}}); err != nil {
		if _, rerr := s.remove(context.WithoutCancel(ctx), in); rerr != nil {
			s.log.Error("an install failed and what it created could not be removed", "app", in.AppID, "err", rerr)
		}
		return nil, err
	}
	s.log.Info("package installed", "package", p.Name, "version", p.Version, "app", in.AppID, "deployment", in.DeploymentID)
	return &universe.InstallResponse{
		PackageName:      p.Name,
		PackageVersion:   p.Version,
		AppID:            in.AppID,
		PostInstallNotes: pkgs.RenderNotes(p.PostInstallNotes, rendered.Options),
		CLI:              cliOf(p.Resource),
		DeploymentID:     in.DeploymentID,
	}, nil
}

// cliOf is the CLI a package's resource.json offers.
func cliOf(r *universe.Resource) *universe.CLI {
	if r == nil {
		return nil
	}
	return r.CLI
}

// frameworkNames lists the framework names the apps' labels declare.
func frameworkNames(apps []*marathon.App) []string {
	var names []string
	for _, a := range apps {
		if n := a.Labels[universe.LabelFrameworkName]; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// checkFrameworkNames refuses to install a framework under a name a registered framework
// has: its uninstall would not know which one to tear down.
func (s *Service) checkFrameworkNames(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	fws, err := s.operator.GetFrameworks(ctx)
	if err != nil {
		return fmt.Errorf("list the registered frameworks: %w", err)
	}
	for _, f := range fws.Frameworks {
		if slices.Contains(names, f.FrameworkInfo.Name) {
			return &cosmosError{http.StatusConflict, "PackageAlreadyInstalled",
				fmt.Sprintf("a framework named %q is already registered (id %s); install under another service.name", f.FrameworkInfo.Name, f.FrameworkInfo.ID.Value)}
		}
	}
	return nil
}

// uninstall removes the installations a request names.
func (s *Service) uninstall(ctx context.Context, req *universe.UninstallRequest) (*universe.UninstallResponse, error) {
	s.changing.Lock()
	defer s.changing.Unlock()
	all, err := s.installations()
	if err != nil {
		return nil, err
	}
	var matching []*installation
	for _, in := range all {
		if in.PackageName != req.PackageName {
			continue
		}
		if req.AppID != "" && in.AppID != canonicalID(req.AppID) {
			continue
		}
		if req.PackageVersion != "" && in.PackageVersion != req.PackageVersion {
			continue
		}
		matching = append(matching, in)
	}
	switch {
	case len(matching) == 0 && req.AppID != "":
		return nil, &cosmosError{http.StatusBadRequest, "UninstallNonExistentAppForPackage",
			fmt.Sprintf("package [%s] with app id [%s] is not installed", req.PackageName, canonicalID(req.AppID))}
	case len(matching) == 0:
		return nil, &cosmosError{http.StatusBadRequest, "PackageNotInstalled", fmt.Sprintf("package [%s] is not installed", req.PackageName)}
	case len(matching) > 1 && !req.All:
		ids := make([]string, len(matching))
		for i, in := range matching {
			ids[i] = in.AppID
		}
		return nil, &cosmosError{http.StatusBadRequest, "AmbiguousAppId",
			fmt.Sprintf("package [%s] is installed %d times (%s): name one with --app-id, or uninstall all with --all", req.PackageName, len(ids), strings.Join(ids, ", "))}
	}
	resp := &universe.UninstallResponse{Results: []universe.UninstallResult{}}
	for _, in := range matching {
		torn, err := s.remove(ctx, in)
		if err != nil {
			return nil, err
		}
		if err := s.write(ctx, &state.WriteKVRequest{Deletes: []string{installPrefix + in.AppID}}); err != nil {
			return nil, err
		}
		s.log.Info("package uninstalled", "package", in.PackageName, "app", in.AppID, "frameworks_torn_down", torn)
		resp.Results = append(resp.Results, universe.UninstallResult{
			PackageName:        in.PackageName,
			AppID:              in.AppID,
			PackageVersion:     in.PackageVersion,
			PostUninstallNotes: in.PostUninstallNotes,
		})
	}
	return resp, nil
}

// remove deletes an installation's app or group, then tears down the frameworks it
// registered (but never a built-in one). It returns the framework ids torn down.
func (s *Service) remove(ctx context.Context, in *installation) ([]string, error) {
	var err error
	if in.Group {
		_, err = s.marathon.GroupChange(ctx, http.MethodDelete, in.AppID, nil, true)
	} else {
		_, err = s.marathon.DeleteApp(ctx, in.AppID, true)
	}
	var ae *marathon.APIError
	if err != nil && !(errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound) {
		return nil, marathonError(in.AppID, err)
	}
	if len(in.Frameworks) == 0 {
		return nil, nil
	}
	builtins := s.builtinFrameworkIDs()
	fws, err := s.operator.GetFrameworks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the registered frameworks: %w", err)
	}
	var torn []string
	for _, f := range fws.Frameworks {
		id := f.FrameworkInfo.ID.Value
		if !slices.Contains(in.Frameworks, f.FrameworkInfo.Name) || slices.Contains(builtins, id) {
			continue
		}
		if err := s.operator.Teardown(ctx, id); err != nil {
			return torn, fmt.Errorf("tear down framework %s (%s) of %s: %w", f.FrameworkInfo.Name, id, in.AppID, err)
		}
		torn = append(torn, id)
	}
	return torn, nil
}

// builtinFrameworkIDs are the ids the built-in frameworks registered with.
func (s *Service) builtinFrameworkIDs() []string {
	var ids []string
	for _, ns := range s.cfg.BuiltinFrameworkNamespaces {
		if e, ok := s.m.Store().KV(ns, "framework-id"); ok {
			var id string
			if json.Unmarshal(e.Value, &id) != nil {
				id = string(e.Value)
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// canonicalID is an id as Marathon writes it: "/a/b".
func canonicalID(id string) string { return "/" + strings.Trim(id, "/") }

// marathonError turns the Marathon API's refusal into a Cosmos error that says what
// Marathon said.
func marathonError(id string, err error) error {
	var ae *marathon.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("deploy %s: %w", id, err)
	}
	switch {
	case ae.Body.Status == http.StatusConflict && len(ae.Body.Deployments) > 0:
		return &cosmosError{http.StatusConflict, "MarathonAppLocked", fmt.Sprintf("%s is being deployed (deployment %s); try again when it finishes, or stop it: atoll deployment stop %s", id, ae.Body.Deployments[0].ID, ae.Body.Deployments[0].ID)}
	case ae.Body.Status == http.StatusConflict:
		return &cosmosError{http.StatusConflict, "MarathonAppAlreadyExists", fmt.Sprintf("an app or group %s already exists: %s", id, ae.Body.Message)}
	case ae.Body.Status == http.StatusUnprocessableEntity, ae.Body.Status == http.StatusBadRequest:
		return &cosmosError{http.StatusBadRequest, "MarathonBadResponse", err.Error()}
	}
	return &cosmosError{http.StatusBadGateway, "MarathonBadGateway", err.Error()}
}

// update moves an installation to another version of its package, or changes its
// options: the app or group is replaced with the new rendering, which deploys like any
// change of it, and the record follows.
func (s *Service) update(ctx context.Context, req *universe.ServiceUpdateRequest) (*universe.ServiceUpdateResponse, error) {
	s.changing.Lock()
	defer s.changing.Unlock()
	id := canonicalID(req.AppID)
	entry, ok := s.m.Store().KV(namespace, installPrefix+id)
	if !ok {
		return nil, &cosmosError{http.StatusNotFound, "MarathonAppNotFound", fmt.Sprintf("no package is installed as %s (atoll pkg list shows what is)", id)}
	}
	var in installation
	if err := json.Unmarshal(entry.Value, &in); err != nil {
		return nil, fmt.Errorf("installation record %s is unreadable: %w", entry.Key, err)
	}
	cat, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	version := req.PackageVersion
	if version == "" {
		version = in.PackageVersion
	}
	p, err := cat.Resolve(in.PackageName, version)
	if err != nil {
		return nil, err
	}
	if err := checkVersionChange(cat, &in, p); err != nil {
		return nil, err
	}
	options := req.Options
	if !req.Replace {
		if options, err = pkgs.MergeOptions(in.Options, req.Options); err != nil {
			return nil, &cosmosError{http.StatusBadRequest, "MalformedRequest", err.Error()}
		}
	}
	rendered, err := p.Render(options, in.AppID)
	if err != nil {
		return nil, err
	}
	if (rendered.Group != nil) != in.Group {
		return nil, &cosmosError{http.StatusBadRequest, "ServiceUpdateError",
			fmt.Sprintf("%s %s renders %s, but %s is installed as %s: uninstall and install it instead", p.Name, p.Version, kindName(rendered.Group != nil), in.AppID, kindName(in.Group))}
	}
	var started marathon.Started
	if in.Group {
		started, err = s.marathon.GroupChange(ctx, http.MethodPut, in.AppID, rendered.JSON, false)
		in.Frameworks = frameworkNames(rendered.Group.AllApps())
	} else {
		started, err = s.marathon.PutApp(ctx, in.AppID, rendered.JSON, false, false)
		in.Frameworks = frameworkNames([]*marathon.App{rendered.App})
	}
	if err != nil {
		return nil, marathonError(in.AppID, err)
	}
	previous := in.PackageVersion
	in.PackageVersion, in.ReleaseVersion, in.Source = p.Version, p.ReleaseVersion, p.Source
	in.Metadata, in.Resource, in.Options = p.PackageMetadata(), p.Resource, options
	in.PostUninstallNotes = pkgs.RenderNotes(p.PostUninstallNotes, rendered.Options)
	in.DeploymentID = started.DeploymentID
	record, err := json.Marshal(&in)
	if err != nil {
		return nil, err
	}
	if err := s.write(ctx, &state.WriteKVRequest{Puts: []state.KVPut{{Key: installPrefix + in.AppID, Value: record}}}); err != nil {
		return nil, err
	}
	s.log.Info("package updated", "package", p.Name, "from", previous, "to", p.Version, "app", in.AppID, "deployment", started.DeploymentID)
	return &universe.ServiceUpdateResponse{
		Package:              p.Package,
		ResolvedOptions:      rendered.Options,
		MarathonDeploymentID: started.DeploymentID,
		PreviousVersion:      previous,
	}, nil
}

// checkVersionChange refuses a version change the packages do not allow: an upgrade (a
// higher release) needs the new package to list the installed version in upgradesFrom; a
// downgrade needs the installed package (still in a repository) to list the new version in
// downgradesTo.
func checkVersionChange(cat *pkgs.Catalog, in *installation, to *pkgs.Package) error {
	if to.Version == in.PackageVersion {
		return nil
	}
	if to.ReleaseVersion > in.ReleaseVersion {
		if to.UpgradesFrom(in.PackageVersion) {
			return nil
		}
		return &cosmosError{http.StatusBadRequest, "VersionUpgradeNotSupported",
			fmt.Sprintf("%s %s cannot upgrade the installed %s: its upgradesFrom is [%s]", to.Name, to.Version, in.PackageVersion, strings.Join(to.Metadata.UpgradesFrom, ", "))}
	}
	from, err := cat.Resolve(in.PackageName, in.PackageVersion)
	if err != nil {
		return &cosmosError{http.StatusBadRequest, "VersionUpgradeNotSupported",
			fmt.Sprintf("%s %s is older than the installed %s, which no repository has any more to say whether it may be downgraded", to.Name, to.Version, in.PackageVersion)}
	}
	if from.DowngradesTo(to.Version) {
		return nil
	}
	return &cosmosError{http.StatusBadRequest, "VersionUpgradeNotSupported",
		fmt.Sprintf("the installed %s %s cannot be downgraded to %s: its downgradesTo is [%s]", in.PackageName, in.PackageVersion, to.Version, strings.Join(from.Metadata.DowngradesTo, ", "))}
}

func kindName(group bool) string {
	if group {
		return "a group"
	}
	return "an app"
}
