package marathon

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// baseApp is a normalised app with a little of everything to patch.
const baseApp = `{"id": "/web", "cmd": "serve", "instances": 2, "cpus": 0.5, "labels": {"team": "a"},
	"portDefinitions": [{"port": 0, "name": "http"}], "healthChecks": [{"protocol": "HTTP", "portIndex": 0}],
	"fetch": [{"uri": "http://h/old.tgz"}], "version": "2020-01-01T00:00:00.000Z"}`

// patched applies a patch to baseApp and returns the base and the normalised result.
func patched(tb testing.TB, patch string) (*App, *App) {
	tb.Helper()
	base := normalized(tb, baseApp, "/")
	p, err := DecodeAppPatch([]byte(patch))
	if err != nil {
		tb.Fatalf("%s: %v", patch, err)
	}
	merged := base.Merge(p)
	Normalize(merged, "/")
	if e := Validate(merged); e != nil {
		tb.Fatalf("%s: merged app invalid: %v", patch, e)
	}
	return base, merged
}

func TestMergeScale(t *testing.T) {
	base, merged := patched(t, `{"instances": 4}`)
	want := base.Clone()
	want.Instances = 4
	if !reflect.DeepEqual(merged, want) {
		mb, _ := json.Marshal(merged)
		wb, _ := json.Marshal(want)
		t.Fatalf("merged\n%s\nwant\n%s", mb, wb)
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name   string
		patch  string
		fields []string
		check  func(t *testing.T, base, merged *App)
	}{
		{"id and version stay the app's", `{"id": "/other", "cmd": "x", "versionInfo": {"lastScalingAt": "x", "lastConfigChangeAt": "y"}}`,
			[]string{"cmd", "id", "versionInfo"},
			func(t *testing.T, base, merged *App) {
				if merged.ID != "/web" || merged.Cmd != "x" || merged.Version != base.Version || merged.VersionInfo != nil {
					t.Errorf("id %s cmd %s version %s %v", merged.ID, merged.Cmd, merged.Version, merged.VersionInfo)
				}
			}},
		{"null is absent", `{"cmd": null, "labels": null, "instances": 3}`, []string{"instances"},
			func(t *testing.T, base, merged *App) {
				if merged.Cmd != "serve" || merged.Labels["team"] != "a" || merged.Instances != 3 {
					t.Errorf("merged %+v", merged)
				}
			}},
		{"a present field replaces the whole field", `{"labels": {"b": "1"}, "healthChecks": []}`, []string{"healthChecks", "labels"},
			func(t *testing.T, base, merged *App) {
				if !reflect.DeepEqual(merged.Labels, map[string]string{"b": "1"}) || merged.HealthChecks != nil {
					t.Errorf("labels %v health checks %v", merged.Labels, merged.HealthChecks)
				}
			}},
		{"legacy uris become fetch", `{"uris": ["http://h/new.sh"]}`, []string{"fetch"},
			func(t *testing.T, base, merged *App) {
				if want := []Fetch{{URI: "http://h/new.sh"}}; !reflect.DeepEqual(merged.Fetch, want) {
					t.Errorf("fetch %+v", merged.Fetch)
				}
			}},
		{"legacy ports become port definitions", `{"ports": [8080]}`, []string{"portDefinitions"},
			func(t *testing.T, base, merged *App) {
				if want := []PortDefinition{{Port: 8080, Protocol: ProtocolTCP}}; !reflect.DeepEqual(merged.PortDefinitions, want) {
					t.Errorf("port definitions %+v", merged.PortDefinitions)
				}
			}},
		{"to the bridge", `{"container": {"docker": {"image": "nginx", "network": "BRIDGE", "portMappings": [{"containerPort": 80, "name": "http"}]}}}`,
			[]string{"container", "networks"},
			func(t *testing.T, base, merged *App) {
				if merged.PortDefinitions != nil || merged.Networks[0].Mode != NetworkBridge || *merged.Container.PortMappings[0].HostPort != 0 {
					t.Errorf("port definitions %+v networks %+v container %+v", merged.PortDefinitions, merged.Networks, merged.Container)
				}
			}},
		{"canonical networks to the bridge", `{"networks": [{"mode": "container/bridge"}]}`, []string{"networks"},
			func(t *testing.T, base, merged *App) {
				want := []PortMapping{{HostPort: new(0), Protocol: ProtocolTCP, Name: "default"}}
				if merged.PortDefinitions != nil || merged.Container.Type != ContainerMesos || !reflect.DeepEqual(merged.Container.PortMappings, want) {
					t.Errorf("port definitions %+v container %+v", merged.PortDefinitions, merged.Container)
				}
			}},
		{"same networks keep port definitions", `{"networks": [{"mode": "host"}]}`, []string{"networks"},
			func(t *testing.T, base, merged *App) {
				if !reflect.DeepEqual(merged.PortDefinitions, base.PortDefinitions) {
					t.Errorf("port definitions %+v", merged.PortDefinitions)
				}
			}},
		{"version alone", `{"id": "/web", "version": "2019-01-01T00:00:00.000Z"}`, []string{"id", "version"},
			func(t *testing.T, base, merged *App) {
				if !reflect.DeepEqual(merged, base) {
					t.Errorf("merge of a version changed the app")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeAppPatch([]byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.FieldNames(); !slices.Equal(got, tt.fields) {
				t.Errorf("fields %q, want %q", got, tt.fields)
			}
			base, merged := patched(t, tt.patch)
			tt.check(t, base, merged)
		})
	}
}

// TestMergeSharesNothing: changing the merged app changes neither the app nor the patch.
func TestMergeSharesNothing(t *testing.T) {
	base := normalized(t, baseApp, "/")
	before := base.Clone()
	p, err := DecodeAppPatch([]byte(`{"labels": {"x": "y"}, "env": {"A": "1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	merged := base.Merge(p)
	Normalize(merged, "/")
	merged.Labels["x"] = "changed"
	merged.Env["A"] = EnvValue{Value: "changed"}
	merged.PortDefinitions[0].Name = "changed"
	if !reflect.DeepEqual(base, before) || p.App.Labels["x"] != "y" || p.App.Env["A"].Value != "1" {
		t.Fatalf("merge shares memory: base %+v patch %+v", base, p.App)
	}
}

func TestDecodeAppPatchErrors(t *testing.T) {
	_, err := DecodeAppPatch([]byte(`{"instances": "4"}`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/instances", []string{"error.expected.jsnumber"}}})
	_, err = DecodeAppPatch([]byte(`{"version": "2019-01-01T00:00:00.000Z", "instances": 4}`))
	wantError(t, err, 422, "Object is not valid", []ErrorDetail{{"/", []string{msgVersionOnly}}})
	_, err = DecodeAppPatch([]byte(`{"container": {"appc": {"image": "x"}}}`))
	wantError(t, err, 422, "Object is not valid", []ErrorDetail{{"/container/appc", []string{msgAppC}}})

	// Contradicting legacy and canonical fields both reach the merged app, which is invalid.
	p, err := DecodeAppPatch([]byte(`{"uris": ["http://a"], "fetch": [{"uri": "http://b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	merged := normalized(t, baseApp, "/").Merge(p)
	Normalize(merged, "/")
	wantError(t, Validate(merged), 422, "Object is not valid", []ErrorDetail{{"/uris", []string{msgUrisAndFetch}}})
}

func TestDecodeAppPatchList(t *testing.T) {
	patches, err := DecodeAppPatchList([]byte(`{"apps": [{"id": "/a", "instances": 2}, {"id": "/b", "cmd": "x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(patches) != 2 || patches[0].App.ID != "/a" || patches[0].App.Instances != 2 ||
		!slices.Equal(patches[1].FieldNames(), []string{"cmd", "id"}) {
		t.Fatalf("patches %+v %+v", patches[0], patches[1])
	}
	_, err = DecodeAppPatchList([]byte(`[{"instances": 2}, 3]`))
	wantError(t, err, 400, "Invalid JSON", []ErrorDetail{{"/1", []string{"error.expected.jsobject"}}})
	_, err = DecodeAppPatchList([]byte(`[{"instances": 2}]`))
	wantError(t, err, 422, "Object is not valid", []ErrorDetail{{"/0/id", []string{"error.path.missing"}}})
}
