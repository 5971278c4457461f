package pkgs

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api/universe"
)

// PackageError is what is wrong with one package of a repository.
type PackageError struct {
	// Name and Revision identify the package (as its directory or index entry says).
	Name     string
	Revision string
	// File is the file (in a repository checkout) or the index entry ("packages[3]") the
	// problems are in.
	File string
	Err  error
}

func (e *PackageError) Error() string {
	return fmt.Sprintf("package %s revision %s: %s: %v", e.Name, e.Revision, e.File, e.Err)
}

func (e *PackageError) Unwrap() error { return e.Err }

// The files of a package revision in a repository checkout.
const (
	filePackage  = "package.json"
	fileConfig   = "config.json"
	fileMarathon = "marathon.json.mustache"
	fileResource = "resource.json"
	fileCommand  = "command.json"
)

// LoadFS loads a repository checkout from fsys (a directory, or an embedded file system):
// the Universe layout repo/packages/<L>/<name>/<revision>/ (or packages/<L>/… or <L>/… at
// the root), or the flat layout <name>/<revision>/. <revision> is the release version; each
// revision has package.json and optionally config.json, marathon.json.mustache,
// resource.json and command.json. Every package is checked; the error lists every problem
// of every package (*PackageError, joined).
func LoadFS(fsys fs.FS, name, uri string) (*Repository, error) {
	dirs, err := packageDirs(fsys)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", name, err)
	}
	repo := &Repository{Name: name, URI: uri}
	var errs []error
	for _, dir := range dirs {
		p, err := loadDir(fsys, dir, uri)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		repo.Packages = append(repo.Packages, p)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("repository %s: %w", name, errors.Join(errs...))
	}
	sortPackages(repo.Packages)
	return repo, nil
}

// packageDir is one revision's directory.
type packageDir struct {
	path     string
	name     string
	revision string
	// letter is the letter directory it is under in the Universe layout ("" in the flat one).
	letter string
}

// packageDirs finds the revision directories of either layout: the Universe layout under
// repo/packages, or under packages or the root when every directory there is a single
// capital letter (a package name starts with a small letter, a revision is a number); else
// the flat layout.
func packageDirs(fsys fs.FS) ([]packageDir, error) {
	for _, root := range []string{"repo/packages", "packages", "."} {
		top, err := subdirs(fsys, root)
		if errors.Is(err, fs.ErrNotExist) && root != "." {
			continue
		}
		if err != nil {
			return nil, err
		}
		letters := !slices.ContainsFunc(top, func(d string) bool { return len(d) != 1 || d[0] < 'A' || d[0] > 'Z' })
		if root == "repo/packages" || letters && len(top) > 0 {
			var dirs []packageDir
			for _, letter := range top {
				found, err := revisionDirs(fsys, path.Join(root, letter), letter)
				if err != nil {
					return nil, err
				}
				dirs = append(dirs, found...)
			}
			return dirs, nil
		}
	}
	return revisionDirs(fsys, ".", "")
}

// revisionDirs lists <name>/<revision> under dir.
func revisionDirs(fsys fs.FS, dir, letter string) ([]packageDir, error) {
	names, err := subdirs(fsys, dir)
	if err != nil {
		return nil, err
	}
	var dirs []packageDir
	for _, name := range names {
		revisions, err := subdirs(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		for _, rev := range revisions {
			dirs = append(dirs, packageDir{path: path.Join(dir, name, rev), name: name, revision: rev, letter: letter})
		}
	}
	return dirs, nil
}

// subdirs lists the directories in dir, skipping hidden ones.
func subdirs(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// loadDir reads and checks one revision directory.
func loadDir(fsys fs.FS, dir packageDir, uri string) (*Package, error) {
	fail := func(file string, err error) error {
		return &PackageError{Name: dir.name, Revision: dir.revision, File: path.Join(dir.path, file), Err: err}
	}
	var def universe.Package
	release, err := strconv.ParseInt(dir.revision, 10, 64)
	if err != nil || release < 0 || strconv.FormatInt(release, 10) != dir.revision {
		return nil, fail("", errors.New("the revision directory must be named by a release version (0, 1, 2, …)"))
	}
	def.ReleaseVersion = release

	data, err := fs.ReadFile(fsys, path.Join(dir.path, filePackage))
	if err != nil {
		return nil, fail(filePackage, err)
	}
	if err := universe.Decode(data, &def.Metadata); err != nil {
		return nil, fail(filePackage, err)
	}
	if def.Name != dir.name {
		return nil, fail(filePackage, universe.FieldErrors{{Path: "name", Message: fmt.Sprintf("%q is not the directory's name %q", def.Name, dir.name)}})
	}
	if dir.letter != "" && dir.letter != strings.ToUpper(dir.name[:1]) {
		return nil, fail("", fmt.Errorf("package %s belongs under %s/, not %s/", dir.name, strings.ToUpper(dir.name[:1]), dir.letter))
	}

	var errs []error
	optional := func(file string) ([]byte, bool) {
		data, err := fs.ReadFile(fsys, path.Join(dir.path, file))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false
		}
		if err != nil {
			errs = append(errs, fail(file, err))
			return nil, false
		}
		return data, true
	}
	if data, ok := optional(fileConfig); ok {
		tree, err := universe.ParseJSON(data)
		if _, isObject := tree.(map[string]any); err == nil && !isObject {
			err = fmt.Errorf("expected an object (a JSON Schema), got %s", kindOf(tree))
		}
		var compact bytes.Buffer
		if err == nil {
			err = json.Compact(&compact, data)
		}
		if err != nil {
			errs = append(errs, fail(fileConfig, err))
		} else {
			def.Config = compact.Bytes()
		}
	}
	if data, ok := optional(fileMarathon); ok {
		def.Marathon = &universe.Marathon{V2AppMustacheTemplate: base64.StdEncoding.EncodeToString(data)}
	}
	if data, ok := optional(fileResource); ok {
		def.Resource = &universe.Resource{}
		if err := universe.Decode(data, def.Resource); err != nil {
			errs = append(errs, fail(fileResource, err))
		}
	}
	if data, ok := optional(fileCommand); ok {
		def.Command = &universe.Command{}
		if err := universe.Decode(data, def.Command); err != nil {
			errs = append(errs, fail(fileCommand, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p, problems := newPackage(def, uri)
	if problems != nil {
		return nil, problemsByFile(dir, problems)
	}
	return p, nil
}

// problemsByFile files each problem of an index entry under the file it comes from.
func problemsByFile(dir packageDir, problems universe.FieldErrors) error {
	byFile := map[string]universe.FieldErrors{}
	for _, fe := range problems {
		file, rest := filePackage, fe.Path
		for _, f := range []struct{ prefix, file string }{
			{"config", fileConfig},
			{"marathon", fileMarathon},
			{"resource", fileResource},
			{"command", fileCommand},
		} {
			if fe.Path == f.prefix || strings.HasPrefix(fe.Path, f.prefix+".") {
				file = f.file
				rest = strings.TrimPrefix(strings.TrimPrefix(fe.Path, f.prefix), ".")
				if f.file == fileMarathon {
					rest = ""
				}
			}
		}
		byFile[file] = append(byFile[file], universe.FieldError{Path: rest, Message: fe.Message})
	}
	var errs []error
	for _, file := range []string{filePackage, fileConfig, fileMarathon, fileResource, fileCommand} {
		if list, ok := byFile[file]; ok {
			errs = append(errs, &PackageError{Name: dir.name, Revision: dir.revision, File: path.Join(dir.path, file), Err: list})
		}
	}
	return errors.Join(errs...)
}

// LoadIndex loads a repository index (the JSON of the v3, v4 and v5 media types). Every
// package is checked; the error lists every problem of every package.
func LoadIndex(data []byte, name, uri string) (*Repository, error) {
	pkgs, err := loadIndex(data, uri)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", name, err)
	}
	return &Repository{Name: name, URI: uri, Packages: pkgs}, nil
}

func loadIndex(data []byte, uri string) ([]*Package, error) {
	var index universe.Repository
	if err := universe.Decode(data, &index); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	var pkgs []*Package
	var errs []error
	for i, def := range index.Packages {
		p, problems := newPackage(def, uri)
		if problems != nil {
			errs = append(errs, &PackageError{
				Name:     def.Name,
				Revision: strconv.FormatInt(def.ReleaseVersion, 10),
				File:     fmt.Sprintf("packages[%d]", i),
				Err:      problems,
			})
			continue
		}
		pkgs = append(pkgs, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortPackages(pkgs)
	return pkgs, nil
}

// Index is the repository as an index (what a Universe server serves).
func (r *Repository) Index() *universe.Repository {
	index := &universe.Repository{Packages: make([]universe.Package, len(r.Packages))}
	for i, p := range r.Packages {
		index.Packages[i] = p.Package
	}
	return index
}

func sortPackages(pkgs []*Package) {
	slices.SortStableFunc(pkgs, func(a, b *Package) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.ReleaseVersion, b.ReleaseVersion)
	})
}
