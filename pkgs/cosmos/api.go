package cosmos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/pkgs"
	"github.com/atoll/atoll/pkgs/builtin"
)

// maxRequest bounds a request body: options files and uploaded indexes are small.
const maxRequest = 16 << 20

// routes serves the Cosmos API on the master's handler; followers forward to the leader,
// which alone writes the catalog's state and keeps fetched indexes.
func (s *Service) routes() {
	handle := func(path string, respType string, h func(ctx context.Context, body []byte) (any, error)) {
		s.m.Handle("POST "+path, s.m.LeaderOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := readRequest(r)
			if err == nil {
				var resp any
				resp, err = h(r.Context(), body)
				if err == nil {
					writeJSON(w, http.StatusOK, respType, resp)
					return
				}
			}
			s.writeError(w, path, err)
		})))
	}
	handle("/package/search", universe.MediaTypeSearchResponse, decoded(s.search))
	handle("/package/describe", universe.MediaTypeDescribeResponseV3, decoded(s.describe))
	handle("/package/render", universe.MediaTypeRenderResponse, decoded(s.render))
	handle("/package/install", universe.MediaTypeInstallResponseV2, decoded(s.install))
	handle("/package/list", universe.MediaTypeListResponse, decoded(s.list))
	handle("/package/uninstall", universe.MediaTypeUninstallResponse, decoded(s.uninstall))
	handle("/package/list-versions", universe.MediaTypeListVersionsResponse, decoded(s.listVersions))
	handle("/package/repository/list", universe.MediaTypeRepositoryListResponse, decoded(s.repositoryList))
	handle("/package/repository/add", universe.MediaTypeRepositoryAddResponse, decoded(s.repositoryAdd))
	handle("/package/repository/delete", universe.MediaTypeRepositoryDeleteResponse, decoded(s.repositoryDelete))
	handle("/cosmos/service/update", universe.MediaTypeServiceUpdateResponse, decoded(s.update))
}

// decoded adapts a handler of a typed request: the body is decoded strictly (see
// universe.Decode); an empty body is an empty request.
func decoded[Req, Resp any](h func(context.Context, *Req) (Resp, error)) func(context.Context, []byte) (any, error) {
	return func(ctx context.Context, body []byte) (any, error) {
		req := new(Req)
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := universe.Decode(body, req); err != nil {
				return nil, &cosmosError{http.StatusBadRequest, "MalformedRequest", "the request is not valid: " + err.Error()}
			}
		}
		return h(ctx, req)
	}
}

// readRequest reads a request's body, refusing content types that are not JSON.
func readRequest(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/vnd.dcos.") && strings.HasSuffix(mt, "+json")) {
			return nil, &cosmosError{http.StatusUnsupportedMediaType, "UnsupportedContentType",
				fmt.Sprintf("Content-Type %q is not accepted: send application/json or the Cosmos request media type", ct)}
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		return nil, &cosmosError{http.StatusBadRequest, "MalformedRequest", "read the request: " + err.Error()}
	}
	if len(body) > maxRequest {
		return nil, &cosmosError{http.StatusRequestEntityTooLarge, "MalformedRequest", fmt.Sprintf("the request is larger than %d MB", maxRequest>>20)}
	}
	return body, nil
}

// cosmosError is an error answer: HTTP status, Cosmos error type and message.
type cosmosError struct {
	status  int
	typ     string
	message string
}

func (e *cosmosError) Error() string { return e.typ + ": " + e.message }

// writeError answers err as Cosmos's error body.
func (s *Service) writeError(w http.ResponseWriter, path string, err error) {
	body := universe.Error{Type: "InternalError", Message: err.Error()}
	status := http.StatusInternalServerError
	var (
		ce  *cosmosError
		pnf *pkgs.PackageNotFoundError
		vnf *pkgs.VersionNotFoundError
		oe  *pkgs.OptionsError
		re  *pkgs.RenderError
	)
	switch {
	case errors.As(err, &ce):
		status, body.Type, body.Message = ce.status, ce.typ, ce.message
	case errors.As(err, &pnf):
		status, body.Type = http.StatusBadRequest, "PackageNotFound"
		body.Data = mustJSON(map[string]string{"packageName": pnf.Name})
	case errors.As(err, &vnf):
		status, body.Type = http.StatusBadRequest, "VersionNotFound"
		body.Data = mustJSON(map[string]any{"packageName": vnf.Name, "packageVersion": vnf.Version, "availableVersions": vnf.Available})
	case errors.As(err, &oe):
		status, body.Type = http.StatusBadRequest, "JsonSchemaMismatch"
		body.Data = mustJSON(map[string]any{"errors": oe.Problems})
	case errors.As(err, &re):
		status, body.Type = http.StatusBadRequest, "PackageRenderError"
		var me *marathon.Error
		if errors.As(re, &me) {
			body.Data = mustJSON(map[string]any{"details": me.Details})
		}
	}
	if status >= 500 {
		s.log.Error("catalog request failed", "path", path, "err", err)
	}
	writeJSON(w, status, universe.MediaTypeError, body)
}

func mustJSON(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return data
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) search(ctx context.Context, req *universe.SearchRequest) (*universe.SearchResponse, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	return &universe.SearchResponse{Packages: cat.Search(req.Query)}, nil
}

func (s *Service) describe(ctx context.Context, req *universe.DescribeRequest) (*universe.DescribeResponse, error) {
	p, err := s.resolve(ctx, req.PackageName, req.PackageVersion)
	if err != nil {
		return nil, err
	}
	return &universe.DescribeResponse{Package: p.Package}, nil
}

func (s *Service) render(ctx context.Context, req *universe.RenderRequest) (*universe.RenderResponse, error) {
	p, err := s.resolve(ctx, req.PackageName, req.PackageVersion)
	if err != nil {
		return nil, err
	}
	rendered, err := p.Render(req.Options, req.AppID)
	if err != nil {
		return nil, err
	}
	return &universe.RenderResponse{MarathonJSON: rendered.JSON}, nil
}

func (s *Service) list(_ context.Context, req *universe.ListRequest) (*universe.ListResponse, error) {
	all, err := s.installations()
	if err != nil {
		return nil, err
	}
	resp := &universe.ListResponse{Packages: []universe.Installation{}}
	for _, in := range all {
		if req.PackageName != "" && in.PackageName != req.PackageName || req.AppID != "" && in.AppID != canonicalID(req.AppID) {
			continue
		}
		resp.Packages = append(resp.Packages, universe.Installation{
			AppID: in.AppID,
			PackageInformation: universe.InstalledPackageInformation{
				PackageDefinition:  in.Metadata,
				ResourceDefinition: in.Resource,
			},
		})
	}
	return resp, nil
}

func (s *Service) listVersions(ctx context.Context, req *universe.ListVersionsRequest) (*universe.ListVersionsResponse, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	versions, err := cat.ListVersions(req.PackageName)
	if err != nil {
		return nil, err
	}
	resp := &universe.ListVersionsResponse{Results: map[string]string{}}
	for _, p := range versions {
		if _, ok := resp.Results[p.Version]; !ok {
			resp.Results[p.Version] = strconv.FormatInt(p.ReleaseVersion, 10)
		}
	}
	return resp, nil
}

func (s *Service) repositoryList(context.Context, *universe.RepositoryListRequest) (*universe.RepositoryListResponse, error) {
	return &universe.RepositoryListResponse{Repositories: s.repositories()}, nil
}

// repositoryAdd adds a repository after fetching and checking it: a repository that is
// down or serves garbage is refused, not added.
func (s *Service) repositoryAdd(ctx context.Context, req *universe.RepositoryAddRequest) (*universe.RepositoryListResponse, error) {
	s.changing.Lock()
	defer s.changing.Unlock()
	repos := s.repositories()
	for _, r := range repos {
		if r.Name == req.Name {
			return nil, &cosmosError{http.StatusConflict, "RepositoryAlreadyPresent", fmt.Sprintf("a repository named %q is already in the list (%s)", r.Name, r.URI)}
		}
		if r.URI == req.URI {
			return nil, &cosmosError{http.StatusConflict, "RepositoryAlreadyPresent", fmt.Sprintf("repository %s is already in the list as %q", r.URI, r.Name)}
		}
	}
	if req.Name == "" || strings.TrimSpace(req.Name) != req.Name {
		return nil, &cosmosError{http.StatusBadRequest, "MalformedRequest", fmt.Sprintf("repository name %q must be non-empty without surrounding space", req.Name)}
	}
	at := len(repos)
	if req.Index != nil {
		if *req.Index < 0 || *req.Index > int64(len(repos)) {
			return nil, &cosmosError{http.StatusBadRequest, "RepositoryAddIndexOutOfBounds",
				fmt.Sprintf("index %d is outside the list of %d repositories (0 to %d)", *req.Index, len(repos), len(repos))}
		}
		at = int(*req.Index)
	}
	added := universe.PackageRepository{Name: req.Name, URI: req.URI}
	var puts []state.KVPut
	switch {
	case strings.HasPrefix(req.URI, uploadedScheme):
		if len(req.Content) == 0 {
			return nil, &cosmosError{http.StatusBadRequest, "MalformedRequest", fmt.Sprintf("repository %s: a %s repository needs its index as content (atoll pkg repo add NAME DIR sends it)", req.URI, uploadedScheme)}
		}
		if _, err := pkgs.LoadIndex(req.Content, req.Name, req.URI); err != nil {
			return nil, &cosmosError{http.StatusBadRequest, "IndexNotFound", err.Error()}
		}
		puts = append(puts, state.KVPut{Key: contentPrefix + req.URI, Value: req.Content})
		s.mu.Lock()
		delete(s.indexes, req.URI)
		s.mu.Unlock()
	case len(req.Content) > 0:
		return nil, &cosmosError{http.StatusBadRequest, "MalformedRequest", fmt.Sprintf("repository %s: only a %s repository is sent with its index", req.URI, uploadedScheme)}
	case req.URI != builtin.URI:
		u, err := url.Parse(req.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, &cosmosError{http.StatusBadRequest, "UnsupportedRepositoryUri",
				fmt.Sprintf("repository URI %q must be an http:// or https:// URL of a Universe index (or, from the CLI, a directory)", req.URI)}
		}
		s.mu.Lock()
		delete(s.indexes, req.URI)
		s.mu.Unlock()
		repo, err := s.load(ctx, added)
		if err != nil {
			return nil, err
		}
		// The index fetched goes in the replicated state with the repository: a new
		// leader serves it when the repository cannot be reached.
		content, err := json.Marshal(repo.Index())
		if err != nil {
			return nil, fmt.Errorf("encode the index of repository %s: %w", req.Name, err)
		}
		puts = append(puts, state.KVPut{Key: contentPrefix + req.URI, Value: content})
	}
	repos = slices.Insert(repos, at, added)
	if err := s.saveRepositories(ctx, repos, puts, nil); err != nil {
		return nil, err
	}
	s.log.Info("package repository added", "name", req.Name, "uri", req.URI, "index", at)
	return &universe.RepositoryListResponse{Repositories: repos}, nil
}

func (s *Service) repositoryDelete(ctx context.Context, req *universe.RepositoryDeleteRequest) (*universe.RepositoryListResponse, error) {
	if req.Name == "" && req.URI == "" {
		return nil, &cosmosError{http.StatusBadRequest, "RepoNameOrUriMissing", "name the repository to delete by name or uri"}
	}
	s.changing.Lock()
	defer s.changing.Unlock()
	repos := s.repositories()
	i := slices.IndexFunc(repos, func(r universe.PackageRepository) bool {
		return (req.Name == "" || r.Name == req.Name) && (req.URI == "" || r.URI == req.URI)
	})
	if i < 0 {
		return nil, &cosmosError{http.StatusNotFound, "RepositoryNotPresent", fmt.Sprintf("no repository named %q with uri %q", req.Name, req.URI)}
	}
	removed := repos[i]
	repos = slices.Delete(repos, i, i+1)
	var deletes []string
	if removed.URI != builtin.URI {
		deletes = append(deletes, contentPrefix+removed.URI)
	}
	if err := s.saveRepositories(ctx, repos, nil, deletes); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.indexes, removed.URI)
	s.mu.Unlock()
	s.log.Info("package repository removed", "name", removed.Name, "uri", removed.URI)
	return &universe.RepositoryListResponse{Repositories: repos}, nil
}

// saveRepositories replicates the repository list, with the puts and deletes of uploaded
// indexes, in one write.
func (s *Service) saveRepositories(ctx context.Context, repos []universe.PackageRepository, puts []state.KVPut, deletes []string) error {
	if repos == nil {
		repos = []universe.PackageRepository{}
	}
	data, err := json.Marshal(repos)
	if err != nil {
		return err
	}
	return s.write(ctx, &state.WriteKVRequest{Puts: append(puts, state.KVPut{Key: repositoriesKey, Value: data}), Deletes: deletes})
}
