package universe

import "encoding/json"

// Media types of the Cosmos API. Every /package endpoint takes a POST whose Content-Type is
// its request type and answers with the response type the client's Accept header asks for;
// errors are answered with MediaTypeError.
const (
	MediaTypeSearchRequest            = "application/vnd.dcos.package.search-request+json;charset=utf-8;version=v1"
	MediaTypeSearchResponse           = "application/vnd.dcos.package.search-response+json;charset=utf-8;version=v1"
	MediaTypeDescribeRequest          = "application/vnd.dcos.package.describe-request+json;charset=utf-8;version=v1"
	MediaTypeDescribeResponseV3       = "application/vnd.dcos.package.describe-response+json;charset=utf-8;version=v3"
	MediaTypeRenderRequest            = "application/vnd.dcos.package.render-request+json;charset=utf-8;version=v1"
	MediaTypeRenderResponse           = "application/vnd.dcos.package.render-response+json;charset=utf-8;version=v1"
	MediaTypeInstallRequest           = "application/vnd.dcos.package.install-request+json;charset=utf-8;version=v1"
	MediaTypeInstallResponseV1        = "application/vnd.dcos.package.install-response+json;charset=utf-8;version=v1"
	MediaTypeInstallResponseV2        = "application/vnd.dcos.package.install-response+json;charset=utf-8;version=v2"
	MediaTypeListRequest              = "application/vnd.dcos.package.list-request+json;charset=utf-8;version=v1"
	MediaTypeListResponse             = "application/vnd.dcos.package.list-response+json;charset=utf-8;version=v1"
	MediaTypeUninstallRequest         = "application/vnd.dcos.package.uninstall-request+json;charset=utf-8;version=v1"
	MediaTypeUninstallResponse        = "application/vnd.dcos.package.uninstall-response+json;charset=utf-8;version=v1"
	MediaTypeListVersionsRequest      = "application/vnd.dcos.package.list-versions-request+json;charset=utf-8;version=v1"
	MediaTypeListVersionsResponse     = "application/vnd.dcos.package.list-versions-response+json;charset=utf-8;version=v1"
	MediaTypeRepositoryListRequest    = "application/vnd.dcos.package.repository.list-request+json;charset=utf-8;version=v1"
	MediaTypeRepositoryListResponse   = "application/vnd.dcos.package.repository.list-response+json;charset=utf-8;version=v1"
	MediaTypeRepositoryAddRequest     = "application/vnd.dcos.package.repository.add-request+json;charset=utf-8;version=v1"
	MediaTypeRepositoryAddResponse    = "application/vnd.dcos.package.repository.add-response+json;charset=utf-8;version=v1"
	MediaTypeRepositoryDeleteRequest  = "application/vnd.dcos.package.repository.delete-request+json;charset=utf-8;version=v1"
	MediaTypeRepositoryDeleteResponse = "application/vnd.dcos.package.repository.delete-response+json;charset=utf-8;version=v1"
	MediaTypeError                    = "application/vnd.dcos.package.error+json;charset=utf-8;version=v1"
	MediaTypeServiceUpdateRequest     = "application/vnd.dcos.service.update-request+json;charset=utf-8;version=v1"
	MediaTypeServiceUpdateResponse    = "application/vnd.dcos.service.update-response+json;charset=utf-8;version=v1"
)

// Media types of repository indexes, as a Universe server answers them.
const (
	MediaTypeRepositoryV3 = "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v3"
	MediaTypeRepositoryV4 = "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v4"
	MediaTypeRepositoryV5 = "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v5"
	// MediaTypePackageV4 is the Content-Type of the Package in a DCOS_PACKAGE_DEFINITION
	// envelope.
	MediaTypePackageV4 = "application/vnd.dcos.universe.package+json;charset=utf-8;version=v4"
)

// SearchRequest is the body of /package/search. An empty query lists every package; a
// query with "*" is a wildcard pattern matched against a whole name, description or tag,
// otherwise it is a case-insensitive substring of one.
type SearchRequest struct {
	Query string `json:"query,omitempty"`
}

// SearchResponse answers /package/search: selected packages first, then by name.
type SearchResponse struct {
	Packages []SearchResult `json:"packages"`
}

// SearchResult is one package of a search answer.
type SearchResult struct {
	Name string `json:"name"`
	// CurrentVersion is the version installed when none is asked for.
	CurrentVersion string `json:"currentVersion"`
	// Versions maps every version of the package to its release version.
	Versions    map[string]int64 `json:"versions"`
	Description string           `json:"description"`
	Framework   bool             `json:"framework"`
	Tags        []string         `json:"tags"`
	Selected    bool             `json:"selected,omitempty"`
	Images      *Images          `json:"images,omitempty"`
}

// DescribeRequest is the body of /package/describe; without a version it describes the
// current one.
type DescribeRequest struct {
	PackageName    string `json:"packageName" universe:"required"`
	PackageVersion string `json:"packageVersion,omitempty"`
}

// DescribeResponse answers /package/describe (media type version v3).
type DescribeResponse struct {
	Package Package `json:"package" universe:"required"`
}

// RenderRequest is the body of /package/render: what an install would create, without
// creating it.
type RenderRequest struct {
	PackageName    string `json:"packageName" universe:"required"`
	PackageVersion string `json:"packageVersion,omitempty"`
	// Options is an object of install options, merged over the package's defaults.
	Options json.RawMessage `json:"options,omitempty" universe:"object"`
	// AppID replaces the id the template renders.
	AppID string `json:"appId,omitempty"`
}

// RenderResponse answers /package/render.
type RenderResponse struct {
	// MarathonJSON is the app (or group) the package renders to, with the package labels.
	MarathonJSON json.RawMessage `json:"marathonJson"`
}

// InstallRequest is the body of /package/install.
type InstallRequest struct {
	PackageName    string          `json:"packageName" universe:"required"`
	PackageVersion string          `json:"packageVersion,omitempty"`
	Options        json.RawMessage `json:"options,omitempty" universe:"object"`
	AppID          string          `json:"appId,omitempty"`
}

// InstallResponse answers /package/install. Version v1 of the media type always has appId
// and nothing after it; v2 adds the post-install notes and the CLI.
type InstallResponse struct {
	PackageName      string `json:"packageName"`
	PackageVersion   string `json:"packageVersion"`
	AppID            string `json:"appId,omitempty"`
	PostInstallNotes string `json:"postInstallNotes,omitempty"`
	CLI              *CLI   `json:"cli,omitempty"`
	// DeploymentID is Atoll's extension: the deployment that starts what the package
	// installed, to follow its progress.
	DeploymentID string `json:"deploymentId,omitempty"`
}

// ListRequest is the body of /package/list; both filters are optional.
type ListRequest struct {
	PackageName string `json:"packageName,omitempty"`
	AppID       string `json:"appId,omitempty"`
}

// ListResponse answers /package/list.
type ListResponse struct {
	Packages []Installation `json:"packages"`
}

// Installation is one installed package.
type Installation struct {
	AppID              string                      `json:"appId" universe:"required"`
	PackageInformation InstalledPackageInformation `json:"packageInformation" universe:"required"`
}

// InstalledPackageInformation describes an installed package.
type InstalledPackageInformation struct {
	PackageDefinition  PackageMetadata `json:"packageDefinition" universe:"required"`
	ResourceDefinition *Resource       `json:"resourceDefinition,omitempty"`
}

// UninstallRequest is the body of /package/uninstall. Without appId the package must be
// installed once, unless all is true.
type UninstallRequest struct {
	PackageName    string `json:"packageName" universe:"required"`
	AppID          string `json:"appId,omitempty"`
	All            bool   `json:"all,omitempty"`
	PackageVersion string `json:"packageVersion,omitempty"`
}

// UninstallResponse answers /package/uninstall.
type UninstallResponse struct {
	Results []UninstallResult `json:"results"`
}

// UninstallResult is one removed installation.
type UninstallResult struct {
	PackageName        string `json:"packageName"`
	AppID              string `json:"appId"`
	PackageVersion     string `json:"packageVersion,omitempty"`
	PostUninstallNotes string `json:"postUninstallNotes,omitempty"`
}

// ListVersionsRequest is the body of /package/list-versions.
type ListVersionsRequest struct {
	PackageName            string `json:"packageName" universe:"required"`
	IncludePackageVersions bool   `json:"includePackageVersions"`
}

// ListVersionsResponse answers /package/list-versions: version → release version (a
// string here, unlike in search results, as in Cosmos).
type ListVersionsResponse struct {
	Results map[string]string `json:"results"`
}

// PackageRepository is a configured repository.
type PackageRepository struct {
	Name string `json:"name" universe:"required"`
	URI  string `json:"uri" universe:"required"`
}

// RepositoryListRequest is the (empty) body of /package/repository/list.
type RepositoryListRequest struct{}

// RepositoryListResponse answers /package/repository/list, /add and /delete with the
// repositories in search order.
type RepositoryListResponse struct {
	Repositories []PackageRepository `json:"repositories"`
}

// RepositoryAddRequest is the body of /package/repository/add. Index is where the new
// repository goes in the list (absent: at the end).
type RepositoryAddRequest struct {
	Name  string `json:"name" universe:"required"`
	URI   string `json:"uri" universe:"required"`
	Index *int64 `json:"index,omitempty"`
	// Content is Atoll's extension: the repository's index itself, for a repository the
	// client read from its own disk (the master cannot fetch it).
	Content json.RawMessage `json:"content,omitempty" universe:"object"`
}

// RepositoryDeleteRequest is the body of /package/repository/delete: name or uri.
type RepositoryDeleteRequest struct {
	Name string `json:"name,omitempty"`
	URI  string `json:"uri,omitempty"`
}

// ServiceUpdateRequest is the body of /cosmos/service/update: move an installed package to
// another version, or change its options. Without packageVersion it stays at its version;
// a new version must list the installed one in upgradesFrom (or the installed one list it
// in downgradesTo). Options are merged over the installed ones unless replace is set.
type ServiceUpdateRequest struct {
	AppID          string          `json:"appId" universe:"required"`
	PackageVersion string          `json:"packageVersion,omitempty"`
	Options        json.RawMessage `json:"options,omitempty" universe:"object"`
	Replace        bool            `json:"replace,omitempty"`
}

// ServiceUpdateResponse answers /cosmos/service/update.
type ServiceUpdateResponse struct {
	Package Package `json:"package"`
	// ResolvedOptions are the options rendered with, the package's defaults included.
	ResolvedOptions map[string]any `json:"resolvedOptions"`
	// MarathonDeploymentID is the deployment that replaces the apps; "" when nothing
	// changed.
	MarathonDeploymentID string `json:"marathonDeploymentId"`
	// PreviousVersion is the version the package was at (Atoll's extension).
	PreviousVersion string `json:"previousVersion,omitempty"`
}

// Error is Cosmos's error body. Type is the error's name ("PackageNotFound",
// "VersionNotFound", "JsonSchemaMismatch", …) and Data its details.
type Error struct {
	Type    string          `json:"type" universe:"required"`
	Message string          `json:"message" universe:"required"`
	Data    json.RawMessage `json:"data,omitempty" universe:"object"`
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }
