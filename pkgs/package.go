// Package pkgs is Atoll's package catalog: it loads DC/OS Universe repositories (a checkout in
// the repo/packages/<L>/<name>/<revision>/ layout, the flat <name>/<revision>/ layout, or a
// v3/v4/v5 index, from a file system or over HTTP), checks every package when it loads it,
// searches and resolves packages across an ordered list of repositories the way Cosmos did,
// merges and validates install options against a package's config schema, and renders a
// package's Marathon template into a validated Marathon app — or, as Atoll's extension, a
// group of apps — labelled so that the installed app can be recognised later.
//
// Loaded repositories and catalogs are immutable and safe for concurrent use.
package pkgs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/atoll/atoll/api/universe"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Package is one revision of a package, checked: its template parses and its config schema
// compiles.
type Package struct {
	universe.Package
	// Source is the URI of the repository the package came from (the DCOS_PACKAGE_SOURCE
	// label of the apps it installs).
	Source string

	template *mustacheTemplate  // nil for a package without a Marathon template
	schema   *jsonschema.Schema // nil for a package without config.json
	defaults map[string]any     // the config schema's defaults; never nil

	labelsOnce      sync.Once
	metadataLabel   string // DCOS_PACKAGE_METADATA
	definitionLabel string // DCOS_PACKAGE_DEFINITION
	labelsErr       error
}

// Repository is a named, ordered set of checked packages.
type Repository struct {
	// Name names the repository in the catalog ("Universe", "builtin").
	Name string
	// URI is where it was loaded from.
	URI string
	// Packages are sorted by name, then by release version.
	Packages []*Package
}

// Patterns of the Universe package schema.
var (
	nameRE        = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
	versionRE     = regexp.MustCompile(`^[-a-zA-Z0-9.]+$`)
	tagRE         = regexp.MustCompile(`^[^\s]+$`)
	dcosVersionRE = regexp.MustCompile(`^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*$`)
	urlRE         = regexp.MustCompile(`^https?://`)
)

var packagingVersions = []string{universe.PackagingV2, universe.PackagingV3, universe.PackagingV4, universe.PackagingV5}

// newPackage checks def and compiles its template and schema. The paths of the problems are
// those of the index entry ("tags[0]", "config", "marathon.v2AppMustacheTemplate").
func newPackage(def universe.Package, source string) (*Package, universe.FieldErrors) {
	c := &checker{}
	pv := def.PackagingVersion
	if !slices.Contains(packagingVersions, pv) {
		c.add("packagingVersion", fmt.Sprintf("unknown packaging version %q: must be one of %s", pv, strings.Join(packagingVersions, ", ")))
	}
	c.match("name", def.Name, nameRE)
	if pv == universe.PackagingV2 {
		if def.Version == "" {
			c.add("version", "must not be empty")
		}
	} else {
		c.match("version", def.Version, versionRE)
	}
	if def.ReleaseVersion < 0 {
		c.add("releaseVersion", fmt.Sprintf("must be 0 or more, got %d", def.ReleaseVersion))
	}
	for i, tag := range def.Tags {
		c.match(fmt.Sprintf("tags[%d]", i), tag, tagRE)
	}
	for i, l := range def.Licenses {
		if !urlRE.MatchString(l.URL) {
			c.add(fmt.Sprintf("licenses[%d].url", i), fmt.Sprintf("must be an http or https URL, got %q", l.URL))
		}
	}
	c.checkPackagingRules(&def)
	if def.Resource != nil && def.Resource.CLI != nil {
		c.checkCLI(def.Resource.CLI)
	}

	p := &Package{Package: def, Source: source, defaults: map[string]any{}}
	if def.Marathon != nil {
		p.template = c.template(def.Marathon.V2AppMustacheTemplate)
	} else if pv == universe.PackagingV2 {
		c.add("marathon", "a Marathon template is required in packaging version 2.0")
	}
	if def.Config != nil {
		p.schema, p.defaults = c.config(def.Config)
	}
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return p, nil
}

// checker collects the problems of one package.
type checker struct {
	errs universe.FieldErrors
}

func (c *checker) add(path, msg string) {
	c.errs = append(c.errs, universe.FieldError{Path: path, Message: msg})
}

func (c *checker) match(path, value string, re *regexp.Regexp) {
	if !re.MatchString(value) {
		c.add(path, fmt.Sprintf("%q does not match %s", value, re))
	}
}

// checkPackagingRules rejects fields the package's packaging version does not have.
func (c *checker) checkPackagingRules(def *universe.Package) {
	pv := def.PackagingVersion
	v4 := pv == universe.PackagingV4 || pv == universe.PackagingV5
	notIn := func(path string) {
		c.add(path, "not allowed in packaging version "+pv)
	}
	if def.MinDcosReleaseVersion != "" {
		if pv == universe.PackagingV2 {
			notIn("minDcosReleaseVersion")
		} else {
			c.match("minDcosReleaseVersion", def.MinDcosReleaseVersion, dcosVersionRE)
		}
	}
	for _, list := range []struct {
		path     string
		versions []string
	}{{"upgradesFrom", def.UpgradesFrom}, {"downgradesTo", def.DowngradesTo}} {
		if list.versions != nil && !v4 {
			notIn(list.path)
			continue
		}
		for i, v := range list.versions {
			if v != universe.AnyVersion && !versionRE.MatchString(v) {
				c.add(fmt.Sprintf("%s[%d]", list.path, i), fmt.Sprintf("%q is neither %q nor a version matching %s", v, universe.AnyVersion, versionRE))
			}
		}
	}
	if def.Manager != nil {
		if pv != universe.PackagingV5 {
			notIn("manager")
		} else {
			c.match("manager.packageName", def.Manager.PackageName, nameRE)
		}
	}
	if def.Command != nil && v4 {
		notIn("command")
	}
	if def.Resource != nil && def.Resource.CLI != nil && pv == universe.PackagingV2 {
		notIn("resource.cli")
	}
}

func (c *checker) checkCLI(cli *universe.CLI) {
	if len(cli.Binaries) == 0 {
		c.add("resource.cli.binaries", "must name at least one platform")
	}
	for _, platform := range sortedKeys(cli.Binaries) {
		path := "resource.cli.binaries." + platform
		if !slices.Contains([]string{"linux", "darwin", "windows"}, platform) {
			c.add(path, "unknown platform: must be linux, darwin or windows")
			continue
		}
		for _, arch := range sortedKeys(cli.Binaries[platform]) {
			bin := cli.Binaries[platform][arch]
			if arch != "x86-64" {
				c.add(path+"."+arch, "unknown architecture: must be x86-64")
				continue
			}
			if bin.Kind != "executable" && bin.Kind != "zip" {
				c.add(path+"."+arch+".kind", fmt.Sprintf("unknown kind %q: must be executable or zip", bin.Kind))
			}
			if len(bin.ContentHash) == 0 {
				c.add(path+"."+arch+".contentHash", "must have at least one hash")
			}
			for i, h := range bin.ContentHash {
				if h.Algo != "sha256" {
					c.add(fmt.Sprintf("%s.%s.contentHash[%d].algo", path, arch, i), fmt.Sprintf("unknown algorithm %q: must be sha256", h.Algo))
				}
			}
		}
	}
}

// template decodes and parses the Marathon template.
func (c *checker) template(encoded string) *mustacheTemplate {
	const path = "marathon.v2AppMustacheTemplate"
	text, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		c.add(path, "invalid base64: "+err.Error())
		return nil
	}
	if !utf8.Valid(text) {
		c.add(path, "the template is not UTF-8 text")
		return nil
	}
	tmpl, err := parseTemplate(string(text))
	if err != nil {
		c.add(path, err.Error())
		return nil
	}
	return tmpl
}

// config compiles config.json and extracts its defaults.
func (c *checker) config(raw json.RawMessage) (*jsonschema.Schema, map[string]any) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		c.add("config", "invalid JSON: "+err.Error())
		return nil, map[string]any{}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		c.add("config", "must be an object (a JSON Schema)")
		return nil, map[string]any{}
	}
	schema, err := compileSchema(obj)
	if err != nil {
		c.add("config", "not a valid JSON Schema (draft-04): "+err.Error())
		return nil, map[string]any{}
	}
	return schema, schemaDefaults(obj)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
