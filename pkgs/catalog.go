package pkgs

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/atoll/atoll/api/universe"
)

// PackageNotFoundError is the answer for a package no repository has (Cosmos's
// PackageNotFound).
type PackageNotFoundError struct {
	Name string
}

func (e *PackageNotFoundError) Error() string {
	return "Package [" + e.Name + "] not found"
}

// VersionNotFoundError is the answer for a version the package does not have (Cosmos's
// VersionNotFound), with the versions it does have.
type VersionNotFoundError struct {
	Name    string
	Version string
	// Available are the package's versions, current first.
	Available []string
}

func (e *VersionNotFoundError) Error() string {
	return fmt.Sprintf("Version [%s] of package [%s] not found; available versions: %s", e.Version, e.Name, strings.Join(e.Available, ", "))
}

// Catalog is the packages of an ordered list of repositories. Where two repositories have
// the same version of a package, the earlier one's counts; a package's current version is
// the one with the highest release version in the earliest repository that has the package.
type Catalog struct {
	repos []*Repository
	// byName lists each package's versions, current first: by repository, then by release
	// version, newest first.
	byName map[string][]*Package
	// entries are the search entries, selected packages first, then by name.
	entries []searchEntry
}

// searchEntry is one package's search result with its text lower-cased for matching.
type searchEntry struct {
	result universe.SearchResult
	name   string
	desc   string
	tags   []string
}

// NewCatalog builds the catalog of repos, in search order.
func NewCatalog(repos ...*Repository) *Catalog {
	c := &Catalog{repos: slices.Clone(repos), byName: map[string][]*Package{}}
	type ranked struct {
		pkg  *Package
		repo int
	}
	byName := map[string][]ranked{}
	for i, r := range repos {
		for _, p := range r.Packages {
			byName[p.Name] = append(byName[p.Name], ranked{p, i})
		}
	}
	for name, list := range byName {
		slices.SortStableFunc(list, func(a, b ranked) int {
			if c := cmp.Compare(a.repo, b.repo); c != 0 {
				return c
			}
			return cmp.Compare(b.pkg.ReleaseVersion, a.pkg.ReleaseVersion)
		})
		seen := map[string]bool{}
		for _, rp := range list {
			if !seen[rp.pkg.Version] {
				seen[rp.pkg.Version] = true
				c.byName[name] = append(c.byName[name], rp.pkg)
			}
		}
	}
	for _, name := range sortedKeys(c.byName) {
		c.entries = append(c.entries, newSearchEntry(c.byName[name]))
	}
	slices.SortStableFunc(c.entries, func(a, b searchEntry) int {
		if a.result.Selected != b.result.Selected {
			if a.result.Selected {
				return -1
			}
			return 1
		}
		return strings.Compare(a.result.Name, b.result.Name)
	})
	return c
}

func newSearchEntry(versions []*Package) searchEntry {
	cur := versions[0]
	r := universe.SearchResult{
		Name:           cur.Name,
		CurrentVersion: cur.Version,
		Versions:       map[string]int64{},
		Description:    cur.Description,
		Framework:      cur.Framework,
		Tags:           cur.Tags,
		Selected:       cur.Selected,
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	if cur.Resource != nil {
		r.Images = cur.Resource.Images
	}
	for _, p := range versions {
		r.Versions[p.Version] = p.ReleaseVersion
	}
	e := searchEntry{result: r, name: strings.ToLower(r.Name), desc: strings.ToLower(r.Description)}
	for _, t := range r.Tags {
		e.tags = append(e.tags, strings.ToLower(t))
	}
	return e
}

// Repositories are the catalog's repositories, in search order.
func (c *Catalog) Repositories() []*Repository {
	return slices.Clone(c.repos)
}

// Search finds packages as Cosmos did. An empty query matches every package. A query with
// "*" is a pattern in which "*" matches anything and the rest literally (case-sensitive),
// and it must match a whole name, description or tag ("spark*", "*kafka*"). Any other query
// matches a name, description or tag that contains it, ignoring case. Selected packages come
// first, then by name. The results are the caller's.
func (c *Catalog) Search(query string) []universe.SearchResult {
	var match func(e *searchEntry) bool
	switch {
	case query == "":
		match = func(*searchEntry) bool { return true }
	case strings.Contains(query, "*"):
		parts := strings.Split(query, "*")
		glob := func(s string) bool { return globMatch(parts, s) }
		match = func(e *searchEntry) bool {
			return glob(e.result.Name) || glob(e.result.Description) || slices.ContainsFunc(e.result.Tags, glob)
		}
	default:
		q := strings.ToLower(query)
		match = func(e *searchEntry) bool {
			return strings.Contains(e.name, q) || strings.Contains(e.desc, q) ||
				slices.ContainsFunc(e.tags, func(t string) bool { return strings.Contains(t, q) })
		}
	}
	results := []universe.SearchResult{}
	for i := range c.entries {
		if e := &c.entries[i]; match(e) {
			r := e.result
			r.Versions = maps.Clone(r.Versions)
			r.Tags = slices.Clone(r.Tags)
			if r.Images != nil {
				images := *r.Images
				images.Screenshots = slices.Clone(images.Screenshots)
				r.Images = &images
			}
			results = append(results, r)
		}
	}
	return results
}

// globMatch says whether s matches the pattern split at its "*"s: each "*" matches anything
// (newlines too), the rest literally, and the pattern the whole of s.
func globMatch(parts []string, s string) bool {
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

// Resolve finds a package's version: the current one when version is "". The errors are
// *PackageNotFoundError and *VersionNotFoundError.
func (c *Catalog) Resolve(name, version string) (*Package, error) {
	versions, ok := c.byName[name]
	if !ok {
		return nil, &PackageNotFoundError{Name: name}
	}
	if version == "" {
		return versions[0], nil
	}
	for _, p := range versions {
		if p.Version == version {
			return p, nil
		}
	}
	available := make([]string, len(versions))
	for i, p := range versions {
		available[i] = p.Version
	}
	return nil, &VersionNotFoundError{Name: name, Version: version, Available: available}
}

// ListVersions lists a package's versions, current first (then by repository and release
// version, newest first). The error is a *PackageNotFoundError.
func (c *Catalog) ListVersions(name string) ([]*Package, error) {
	versions, ok := c.byName[name]
	if !ok {
		return nil, &PackageNotFoundError{Name: name}
	}
	return slices.Clone(versions), nil
}
