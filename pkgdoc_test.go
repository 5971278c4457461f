package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs: every package has exactly one doc comment, starting "Package <name> ".
func TestPackageDocs(t *testing.T) {
	docs := map[string][]string{} // dir → doc comments found
	names := map[string]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		names[dir] = f.Name.Name
		if f.Doc != nil {
			docs[dir] = append(docs[dir], path+": "+strings.SplitN(f.Doc.Text(), "\n", 2)[0])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, name := range names {
		if name == "main" {
			continue
		}
		got := docs[dir]
		if len(got) != 1 {
			t.Errorf("package %s (%s) has %d doc comments, want 1: %q", name, dir, len(got), got)
			continue
		}
		if !strings.Contains(got[0], ": Package "+name+" ") {
			t.Errorf("package %s doc should start \"Package %s …\": %s", name, name, got[0])
		}
	}
}
