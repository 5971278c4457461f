package marathon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// addCorpusSeeds adds the corpus files of these kinds (small ones: every seed runs in each
// plain go test) and the extra seeds.
func addCorpusSeeds(f *testing.F, kinds []corpusKind, extra ...string) {
	for _, s := range extra {
		f.Add([]byte(s))
	}
	if _, err := os.Stat(corpusDir); err != nil {
		return
	}
	for _, c := range corpusCases {
		data, err := os.ReadFile(filepath.Join(corpusDir, c.file))
		if err != nil {
			f.Fatal(err)
		}
		for _, k := range kinds {
			if c.kind == k && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
}

// FuzzDecodeApp: decoding never panics, errors are Marathon errors, Normalize is
// idempotent, and a valid normalised app marshals and decodes back to the same value.
func FuzzDecodeApp(f *testing.F) {
	addCorpusSeeds(f, []corpusKind{kindApp, kindAppPatch},
		`{"id": "a", "cmd": "x", "ports": [1, 1], "uris": ["http://h/a.zip"]}`,
		`{"id": "../a/./b", "container": {"docker": {"image": "i", "network": "BRIDGE", "portMappings": [{}]}}, "ipAddress": {"labels": {"a": "b"}}}`,
		`{"id": "a", "args": ["x"], "env": {"A": {"secret": "s"}}, "unreachableStrategy": "disabled", "resourceLimits": {"cpus": "unlimited", "mem": 1e3}}`,
		`{"id": "a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}], "readinessChecks": [{"portName": "default"}], "constraints": [["a", "LIKE", "(("]]}`,
		`{"id": "a", "cmd": "x", "check": {"http": {"path": "/h"}, "intervalSeconds": 30}, "container": {"type": "MESOS", "volumes": [{"containerPath": "s", "secret": "s"}]}}`,
		`{"id": "a", "cmd": "x", "check": {"exec": {"command": {"argv": ["true"]}}, "tcp": {"port": 1}}}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		app, err := DecodeApp(data)
		if err != nil {
			assertMarathonError(t, err)
			return
		}
		Normalize(app, "/")
		again := app.Clone()
		Normalize(again, "/")
		if !reflect.DeepEqual(again, app) {
			t.Fatalf("Normalize is not idempotent:\n%#v\n%#v", app, again)
		}
		if Validate(app) != nil {
			return
		}
		assertRoundTrip(t, app)
	})
}

// FuzzDecodeGroup is FuzzDecodeApp for groups.
func FuzzDecodeGroup(f *testing.F) {
	addCorpusSeeds(f, []corpusKind{kindGroup},
		`{"id": "/g", "apps": [{"id": "a", "cmd": "x", "dependencies": ["b"]}, {"id": "b", "cmd": "x", "dependencies": ["../g/a"]}]}`,
		`{"id": "g", "dependencies": ["s"], "groups": [{"id": "s", "apps": [{"id": "x", "args": ["y"]}], "groups": [{"id": "t"}]}]}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := DecodeGroup(data)
		if err != nil {
			assertMarathonError(t, err)
			return
		}
		NormalizeGroup(g, "/")
		if ValidateGroup(g) != nil {
			return
		}
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeGroup(b)
		if err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
		NormalizeGroup(back, "/")
		if !reflect.DeepEqual(back, g) {
			t.Fatalf("round trip changed the group:\n%s", b)
		}
	})
}

func assertMarathonError(tb testing.TB, err error) {
	tb.Helper()
	e, ok := err.(*Error)
	if !ok || e == nil || len(e.Details) == 0 {
		tb.Fatalf("err = %#v, want an *Error with details", err)
	}
	switch {
	case e.Status == 400 && e.Message == MessageInvalidJSON, e.Status == 422 && e.Message == MessageInvalidObject:
	default:
		tb.Fatalf("err = %v", e)
	}
}
