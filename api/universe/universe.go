// Package universe holds the wire types of DC/OS Universe package repositories (package.json,
// config.json, resource.json, the marathon template and the v3/v4/v5 repository index) and of
// the Cosmos package API (/package/* request and response bodies, the error body, the
// versioned media types and the labels Cosmos put on the apps it installed), with Cosmos's
// exact field names, and Decode, a strict decoder that names every field it rejects.
//
// These types carry shape only; pkgs checks what the values mean (name and version syntax,
// packaging-version rules, template and option schema) when it loads a repository.
package universe

import "encoding/json"

// Packaging versions of package.json ("packagingVersion").
const (
	PackagingV2 = "2.0"
	PackagingV3 = "3.0"
	PackagingV4 = "4.0"
	PackagingV5 = "5.0"
)

// AnyVersion in upgradesFrom or downgradesTo matches every version.
const AnyVersion = "*"

// Metadata is package.json: what a package is, without its files.
type Metadata struct {
	PackagingVersion string `json:"packagingVersion" universe:"required"`
	Name             string `json:"name" universe:"required"`
	// Version is the package's own version ("2.12.0-3.0.1").
	Version     string   `json:"version" universe:"required"`
	Maintainer  string   `json:"maintainer" universe:"required"`
	Description string   `json:"description" universe:"required"`
	Tags        []string `json:"tags" universe:"required"`
	// Selected marks a featured package; search lists selected packages first.
	Selected bool   `json:"selected,omitempty"`
	Scm      string `json:"scm,omitempty"`
	Website  string `json:"website,omitempty"`
	// Framework says the package installs a Mesos framework.
	Framework          bool      `json:"framework,omitempty"`
	PreInstallNotes    string    `json:"preInstallNotes,omitempty"`
	PostInstallNotes   string    `json:"postInstallNotes,omitempty"`
	PostUninstallNotes string    `json:"postUninstallNotes,omitempty"`
	Licenses           []License `json:"licenses,omitempty"`
	// MinDcosReleaseVersion is the oldest DC/OS release the package runs on ("1.11"; 3.0 and
	// later).
	MinDcosReleaseVersion string `json:"minDcosReleaseVersion,omitempty"`
	// UpgradesFrom and DowngradesTo list the versions this one can replace or be replaced by
	// (4.0 and later); AnyVersion matches all, absent or empty matches none.
	UpgradesFrom []string `json:"upgradesFrom,omitempty"`
	DowngradesTo []string `json:"downgradesTo,omitempty"`
	// HasKnownIssues and LastUpdated (unix seconds) are informational (3.0 and later).
	HasKnownIssues bool    `json:"hasKnownIssues,omitempty"`
	LastUpdated    float64 `json:"lastUpdated,omitempty"`
	// Manager names the package that manages this one's installs (5.0 only).
	Manager *Manager `json:"manager,omitempty"`
}

// License is one entry of package.json's licenses.
type License struct {
	Name string `json:"name" universe:"required"`
	URL  string `json:"url" universe:"required"`
}

// Manager is a 5.0 package's custom package manager.
type Manager struct {
	PackageName       string `json:"packageName" universe:"required"`
	MinPackageVersion string `json:"minPackageVersion,omitempty"`
}

// Package is one revision of a package as a repository index serves it: package.json's
// fields plus the revision number and the package's files. It is also the "package" of a
// describe response.
type Package struct {
	Metadata
	// ReleaseVersion is the revision: the directory number in a repository checkout.
	ReleaseVersion int64 `json:"releaseVersion" universe:"required"`
	// Marathon is absent for packages that install only a CLI.
	Marathon *Marathon `json:"marathon,omitempty"`
	// Config is config.json: the JSON Schema (draft-04) of the install options.
	Config   json.RawMessage `json:"config,omitempty" universe:"object"`
	Resource *Resource       `json:"resource,omitempty"`
	// Command is the deprecated command.json (2.0 and 3.0 only).
	Command *Command `json:"command,omitempty"`
}

// Marathon holds marathon.json.mustache.
type Marathon struct {
	// V2AppMustacheTemplate is the template, base64-encoded (standard alphabet, padded).
	V2AppMustacheTemplate string `json:"v2AppMustacheTemplate" universe:"required"`
}

// Resource is resource.json: the package's external assets, images and CLI.
type Resource struct {
	Assets *Assets `json:"assets,omitempty"`
	Images *Images `json:"images,omitempty"`
	// CLI is 3.0 and later.
	CLI *CLI `json:"cli,omitempty"`
}

// Assets are the URIs and Docker images a template refers to by alias
// ({{resource.assets.uris.jre}}, {{resource.assets.container.docker.spark_docker}}).
type Assets struct {
	URIs      map[string]string `json:"uris,omitempty"`
	Container *AssetContainer   `json:"container,omitempty"`
}

// AssetContainer maps aliases to Docker image references.
type AssetContainer struct {
	Docker map[string]string `json:"docker,omitempty"`
}

// Images are the icons and screenshots shown for a package.
type Images struct {
	IconSmall   string   `json:"icon-small,omitempty"`
	IconMedium  string   `json:"icon-medium,omitempty"`
	IconLarge   string   `json:"icon-large,omitempty"`
	Screenshots []string `json:"screenshots,omitempty"`
}

// CLI is the package's DC/OS CLI subcommand.
type CLI struct {
	// Binaries maps a platform ("linux", "darwin", "windows") to an architecture
	// ("x86-64") to the binary.
	Binaries map[string]map[string]CLIBinary `json:"binaries" universe:"required"`
}

// CLIBinary is one downloadable CLI binary.
type CLIBinary struct {
	// Kind is "executable" or "zip".
	Kind        string `json:"kind" universe:"required"`
	URL         string `json:"url" universe:"required"`
	ContentHash []Hash `json:"contentHash" universe:"required"`
}

// Hash is a digest of a CLI binary.
type Hash struct {
	// Algo is "sha256".
	Algo  string `json:"algo" universe:"required"`
	Value string `json:"value" universe:"required"`
}

// Command is the deprecated command.json: pip requirements of a Python CLI subcommand.
type Command struct {
	Pip []string `json:"pip" universe:"required"`
}

// Repository is a repository index (the v3, v4 and v5 media types share this shape; they
// differ in the packaging versions they may hold).
type Repository struct {
	Packages []Package `json:"packages" universe:"required"`
}

// PackageMetadata is the content of the DCOS_PACKAGE_METADATA label: package.json's
// descriptive fields and the package's images.
type PackageMetadata struct {
	PackagingVersion   string    `json:"packagingVersion" universe:"required"`
	Name               string    `json:"name" universe:"required"`
	Version            string    `json:"version" universe:"required"`
	Maintainer         string    `json:"maintainer" universe:"required"`
	Description        string    `json:"description" universe:"required"`
	Tags               []string  `json:"tags"`
	Selected           bool      `json:"selected"`
	Scm                string    `json:"scm,omitempty"`
	Website            string    `json:"website,omitempty"`
	Framework          bool      `json:"framework"`
	PreInstallNotes    string    `json:"preInstallNotes,omitempty"`
	PostInstallNotes   string    `json:"postInstallNotes,omitempty"`
	PostUninstallNotes string    `json:"postUninstallNotes,omitempty"`
	Licenses           []License `json:"licenses,omitempty"`
	Images             *Images   `json:"images,omitempty"`
}

// Labels Cosmos put on every app it installed, so that an installed app can be recognised
// (and uninstalled, listed, described) from Marathon alone. The values of the metadata,
// options and definition labels are base64 (standard alphabet) of JSON.
const (
	// LabelName is the package's name.
	LabelName = "DCOS_PACKAGE_NAME"
	// LabelVersion is the package's version.
	LabelVersion = "DCOS_PACKAGE_VERSION"
	// LabelMetadata is a PackageMetadata.
	LabelMetadata = "DCOS_PACKAGE_METADATA"
	// LabelSource is the URI of the repository the package came from.
	LabelSource = "DCOS_PACKAGE_SOURCE"
	// LabelOptions is the options object the user gave (not merged with the defaults).
	LabelOptions = "DCOS_PACKAGE_OPTIONS"
	// LabelDefinition is a StorageEnvelope holding the whole Package.
	LabelDefinition = "DCOS_PACKAGE_DEFINITION"
	// LabelFrameworkName is the framework name of a framework package's scheduler app
	// (written by the template, not by Cosmos).
	LabelFrameworkName = "DCOS_PACKAGE_FRAMEWORK_NAME"
)

// StorageEnvelope is how Cosmos stored a typed document in a label: Data is the document's
// JSON, gzip-compressed when Metadata's Content-Encoding says "gzip" (base64 in JSON, as
// []byte marshals), and Metadata's Content-Type its media type.
type StorageEnvelope struct {
	Metadata map[string]string `json:"metadata" universe:"required"`
	Data     []byte            `json:"data" universe:"required"`
}
