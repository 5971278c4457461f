package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// escapeSeeds are archives that try every way out of the sandbox this package knows.
var escapeSeeds = [][]entry{
	{{name: "../x", body: "x"}},
	{{name: "/x", body: "x"}},
	{{name: "a/../../x", body: "x"}},
	{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "l/x", body: "x"}},
	{{name: "d/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l/x", body: "x"}},
	{{name: "a", typ: tar.TypeSymlink, link: "."}, {name: "b", typ: tar.TypeSymlink, link: "a/../x"}},
	{{name: "h", typ: tar.TypeLink, link: "../x"}},
	{{name: "f", body: "1"}, {name: "f/x", body: "2"}},
	{{name: "dir/", typ: tar.TypeDir, mode: 0o000}, {name: "dir/f", body: "in a closed dir"}},
}

// fuzzExtract extracts data as kind into base/a/b/sandbox and checks that nothing appeared
// beside the sandbox and that, if the archive was accepted, each of its symlinks resolves
// inside (as the kernel resolves it).
func fuzzExtract(t *testing.T, data []byte, kind archiveKind, ext string) {
	base := t.TempDir()
	sandbox := filepath.Join(base, "a", "b", "sandbox")
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(base, "archive"+ext)
	if err := os.WriteFile(archive, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err := extractArchive(context.Background(), archive, kind, sandbox, 1<<20)
	for dir, want := range map[string][]string{
		base:                          {"a", "archive" + ext},
		filepath.Join(base, "a"):      {"b"},
		filepath.Join(base, "a", "b"): {"sandbox"},
	} {
		entries, readErr := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if readErr != nil || strings.Join(names, ",") != strings.Join(want, ",") {
			t.Fatalf("extract (error %v) left %v in %s, want %v", err, names, dir, want)
		}
	}
	if err != nil {
		return
	}
	walkErr := filepath.WalkDir(sandbox, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		resolved, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling: leads nowhere
		}
		if resolved != sandbox && !strings.HasPrefix(resolved, sandbox+"/") {
			t.Errorf("accepted symlink %s resolves to %s, outside the sandbox", p, resolved)
		}
		return nil
	})
	if walkErr != nil {
		t.Fatal(walkErr)
	}
}

func FuzzExtractTar(f *testing.F) {
	for _, s := range escapeSeeds {
		f.Add(tarOf(f, s...))
	}
	f.Add(tarOf(f, helloEntries...))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, tarPlain, ".tar") })
}

func FuzzExtractZip(f *testing.F) {
	for _, s := range escapeSeeds {
		var zipEntries []entry
		for _, e := range s {
			if e.typ != tar.TypeLink {
				zipEntries = append(zipEntries, e)
			}
		}
		f.Add(zipOf(f, zipEntries...))
	}
	f.Add(zipOf(f, helloEntries...))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, data, zipArchive, ".zip") })
}

// FuzzCleanName: an accepted name is clean, relative and inside; a refused one says why.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a", "./a/b/", "../a", "a/../..", "/etc", "a\x00b", "", ".", "..a", "a/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := cleanName(name)
		if err != nil {
			if name != "" && !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("cleanName(%q) error %v is not ErrUnsafePath", name, err)
			}
			return
		}
		if rel != path.Clean(rel) || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsRune(rel, 0) {
			t.Fatalf("cleanName(%q) = %q: not a clean relative path inside", name, rel)
		}
	})
}
