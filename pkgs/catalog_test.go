package pkgs

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/atoll/atoll/api/universe"
)

// indexRepo makes a repository of small packages: each "name@version#release" with the
// given description and tags.
func indexRepo(tb testing.TB, name string, pkgs ...universe.Package) *Repository {
	tb.Helper()
	for i := range pkgs {
		if pkgs[i].PackagingVersion == "" {
			pkgs[i].PackagingVersion = universe.PackagingV3
		}
		pkgs[i].Maintainer = "m"
		if pkgs[i].Tags == nil {
			pkgs[i].Tags = []string{}
		}
		pkgs[i].Marathon = &universe.Marathon{V2AppMustacheTemplate: "eyJpZCI6ICJ4IiwgImNtZCI6ICJ4In0="} // {"id": "x", "cmd": "x"}
	}
	data, err := json.Marshal(universe.Repository{Packages: pkgs})
	if err != nil {
		tb.Fatal(err)
	}
	repo, err := LoadIndex(data, name, "https://"+name+".example.com/repo")
	if err != nil {
		tb.Fatal(err)
	}
	return repo
}

func pkg(name, version string, release int64, desc string, tags ...string) universe.Package {
	return universe.Package{
		Metadata:       universe.Metadata{Name: name, Version: version, Description: desc, Tags: tags},
		ReleaseVersion: release,
	}
}

func selected(p universe.Package) universe.Package {
	p.Selected = true
	return p
}

// testCatalog: "first" has kafka 2.0 and 2.1, spark; "second" has kafka 2.1 (shadowed),
// 3.0 (release 9, newer but in a later repository) and zeppelin.
func testCatalog(tb testing.TB) *Catalog {
	tb.Helper()
	first := indexRepo(tb, "first",
		pkg("kafka", "2.0", 1, "Apache Kafka, a distributed log", "message", "Broker"),
		pkg("kafka", "2.1", 2, "Apache Kafka, a distributed log", "message", "Broker"),
		selected(pkg("spark", "3.0.1", 0, "Apache Spark: cluster computing", "bigdata", "analytics")),
	)
	second := indexRepo(tb, "second",
		pkg("kafka", "2.1", 7, "Kafka from the second repository", "message"),
		pkg("kafka", "3.0", 9, "Kafka 3", "message"),
		pkg("zeppelin", "0.9", 4, "Web notebook for Spark", "notebook"),
	)
	return NewCatalog(first, second)
}

func names(results []universe.SearchResult) []string {
	out := []string{}
	for _, r := range results {
		out = append(out, r.Name)
	}
	return out
}

func TestSearch(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"spark", "kafka", "zeppelin"}},
		{"kafka", []string{"kafka"}},
		{"KAFKA", []string{"kafka"}},
		{"spark", []string{"spark", "zeppelin"}}, // zeppelin's description mentions Spark
		{"broker", []string{"kafka"}},            // a tag, ignoring case
		{"distributed", []string{"kafka"}},       // the current version's description
		{"second", []string{}},                   // a shadowed version's description does not count
		{"nothing", []string{}},
		{"k*", []string{"kafka"}},
		{"*a*", []string{"spark", "kafka", "zeppelin"}},
		{"*park", []string{"spark", "zeppelin"}}, // "Web notebook for Spark" ends with "park"
		{"spar*k", []string{"spark"}},
		{"K*", []string{}},               // wildcard patterns are case-sensitive
		{"*Spark", []string{"zeppelin"}}, // and match a whole description
		{"Broker*", []string{"kafka"}},   // or tag
		{"a.*", []string{}},              // the rest of the pattern is literal
		{"*", []string{"spark", "kafka", "zeppelin"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := names(c.Search(tt.query)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Search(%q) = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func TestSearchResult(t *testing.T) {
	c := testCatalog(t)
	got := c.Search("kafka")
	want := []universe.SearchResult{{
		Name:           "kafka",
		CurrentVersion: "2.1",
		Versions:       map[string]int64{"2.0": 1, "2.1": 2, "3.0": 9},
		Description:    "Apache Kafka, a distributed log",
		Tags:           []string{"message", "Broker"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// Results are the caller's.
	got[0].Versions["x"] = 1
	got[0].Tags[0] = "changed"
	if again := c.Search("kafka"); !reflect.DeepEqual(again, want) {
		t.Errorf("the catalog changed: %+v", again)
	}
}

func TestSearchImages(t *testing.T) {
	c := NewCatalog(testRepo(t))
	got := c.Search("hello")
	if len(got) != 1 {
		t.Fatalf("got %q", names(got))
	}
	want := universe.SearchResult{
		Name: "hello", CurrentVersion: "1.1.0", Versions: map[string]int64{"1.0.0": 0, "1.1.0": 1},
		Description: "A web server that says hello.", Tags: []string{"web", "example"}, Selected: true,
		Images: &universe.Images{IconSmall: "https://example.com/hello-small.png", IconMedium: "https://example.com/hello-medium.png"},
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("got %+v\nwant %+v", got[0], want)
	}
}

func TestResolve(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		name, version string
		want          string // name@version from repository
		err           string
	}{
		{"kafka", "", "kafka@2.1 from first", ""},
		{"kafka", "2.0", "kafka@2.0 from first", ""},
		{"kafka", "2.1", "kafka@2.1 from first", ""},
		{"kafka", "3.0", "kafka@3.0 from second", ""},
		{"zeppelin", "", "zeppelin@0.9 from second", ""},
		{"kafka", "9.9", "", "Version [9.9] of package [kafka] not found; available versions: 2.1, 2.0, 3.0"},
		{"cassandra", "", "", "Package [cassandra] not found"},
		{"cassandra", "1.0", "", "Package [cassandra] not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"@"+tt.version, func(t *testing.T) {
			p, err := c.Resolve(tt.name, tt.version)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%s@%s from %s", p.Name, p.Version, p.Source[len("https://"):len(p.Source)-len(".example.com/repo")]); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestResolveErrorTypes(t *testing.T) {
	c := testCatalog(t)
	_, err := c.Resolve("kafka", "9.9")
	var verr *VersionNotFoundError
	if !errors.As(err, &verr) || verr.Name != "kafka" || verr.Version != "9.9" || !reflect.DeepEqual(verr.Available, []string{"2.1", "2.0", "3.0"}) {
		t.Errorf("error %#v", err)
	}
	_, err = c.Resolve("nope", "")
	var perr *PackageNotFoundError
	if !errors.As(err, &perr) || perr.Name != "nope" {
		t.Errorf("error %#v", err)
	}
}

func TestListVersions(t *testing.T) {
	c := testCatalog(t)
	got, err := c.ListVersions("kafka")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kafka@2.1#2", "kafka@2.0#1", "kafka@3.0#9"}; !reflect.DeepEqual(coordinates(got), want) {
		t.Errorf("got %q, want %q", coordinates(got), want)
	}
	if _, err := c.ListVersions("nope"); err == nil || err.Error() != "Package [nope] not found" {
		t.Errorf("error %v", err)
	}
	if got := c.Repositories(); len(got) != 2 || got[0].Name != "first" || got[1].Name != "second" {
		t.Errorf("repositories %v", got)
	}
}

func TestEmptyCatalog(t *testing.T) {
	c := NewCatalog()
	if got := c.Search(""); got == nil || len(got) != 0 {
		t.Errorf("Search = %#v, want an empty list", got)
	}
	if _, err := c.Resolve("x", ""); err == nil {
		t.Error("resolved a package in an empty catalog")
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"**", "abc", true},
		{"a*", "abc", true},
		{"a*", "bac", false},
		{"*c", "abc", true},
		{"a*a", "a", false}, // the prefix and suffix may not overlap
		{"a*a", "aa", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a*b*b*c", "abbc", true},
		{"a*b*b*c", "abc", false},
		{"*x*", "line\nx\nline", true},
		{"a.*", "abc", false},
	}
	for _, tt := range tests {
		if got := globMatch(strings.Split(tt.pattern, "*"), tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
