package universe

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecodeMetadata(t *testing.T) {
	data := `{
		"packagingVersion": "4.0", "name": "spark", "version": "2.12.0-3.0.1",
		"maintainer": "m@example.com", "description": "d", "tags": ["a", "b"],
		"selected": true, "framework": true, "upgradesFrom": ["*"], "downgradesTo": [],
		"licenses": [{"name": "Apache", "url": "https://example.com/l"}],
		"minDcosReleaseVersion": "1.11", "hasKnownIssues": false, "lastUpdated": 1571120354,
		"preInstallNotes": null
	}`
	var got Metadata
	if err := Decode([]byte(data), &got); err != nil {
		t.Fatal(err)
	}
	want := Metadata{
		PackagingVersion: "4.0", Name: "spark", Version: "2.12.0-3.0.1",
		Maintainer: "m@example.com", Description: "d", Tags: []string{"a", "b"},
		Selected: true, Framework: true, UpgradesFrom: []string{"*"}, DowngradesTo: []string{},
		Licenses:              []License{{Name: "Apache", URL: "https://example.com/l"}},
		MinDcosReleaseVersion: "1.11", LastUpdated: 1571120354,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		into any
		data string
		want string
	}{
		{"not JSON", &Metadata{}, `{"name": `, "invalid JSON: unexpected EOF"},
		{"empty", &Metadata{}, ``, "invalid JSON: empty document"},
		{"syntax", &Metadata{}, `{"name" "x"}`, "invalid JSON at offset 9: invalid character '\"' after object key"},
		{"trailing data", &SearchRequest{}, `{} {}`, "invalid JSON: unexpected data after the document at offset 3"},
		{"not an object", &Metadata{}, `[1]`, "expected an object, got an array"},
		{"null document", &SearchRequest{}, `null`, "expected an object, got null"},
		{"missing required", &Metadata{}, `{"name": "x"}`,
			"packagingVersion: missing required field; version: missing required field; maintainer: missing required field; description: missing required field; tags: missing required field"},
		{"null is absent", &DescribeRequest{}, `{"packageName": null}`, "packageName: missing required field"},
		{"unknown field", &InstallRequest{}, `{"packageName": "x", "packageVerison": "1"}`, "packageVerison: unknown field"},
		{"wrong types", &InstallRequest{}, `{"packageName": 1, "appId": true, "options": []}`,
			"appId: expected a string, got a boolean; options: expected an object, got an array; packageName: expected a string, got a number"},
		{"nested paths", &Package{}, `{"packagingVersion": "3.0", "name": "n", "version": "1", "maintainer": "m",
			"description": "d", "tags": ["ok", 2, null], "releaseVersion": 1.5,
			"resource": {"images": {"icon-tiny": "x"}, "cli": {"binaries": {"linux": {"x86-64": {"kind": "zip", "url": "u"}}}}},
			"marathon": {}}`,
			"marathon.v2AppMustacheTemplate: missing required field; releaseVersion: expected an integer, got 1.5; " +
				"resource.cli.binaries.linux.x86-64.contentHash: missing required field; resource.images.icon-tiny: unknown field; " +
				"tags[1]: expected a string, got a number; tags[2]: must not be null"},
		{"map value null", &Assets{}, `{"uris": {"a": null}}`, "uris.a: must not be null"},
		{"integer too large", &RepositoryAddRequest{}, `{"name": "n", "uri": "u", "index": 1e300}`, "index: expected an integer, got 1e300"},
		{"number out of range", &Metadata{}, `{"packagingVersion": "3.0", "name": "n", "version": "1", "maintainer": "m", "description": "d", "tags": [], "lastUpdated": 1e400}`,
			"lastUpdated: number out of range: 1e400"},
		{"bad base64", &StorageEnvelope{}, `{"metadata": {}, "data": "!!"}`, "data: invalid base64: illegal base64 data at input byte 0"},
		{"base64 wrong type", &StorageEnvelope{}, `{"metadata": {}, "data": 1}`, "data: expected a base64 string, got a number"},
		{"error body data", &Error{}, `{"type": "T", "message": "m", "data": "x"}`, "data: expected an object, got a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode([]byte(tt.data), tt.into)
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", tt.into, tt.want)
			}
			if _, ok := err.(FieldErrors); !ok {
				t.Errorf("error is %T, want FieldErrors", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	var req SearchRequest
	for _, v := range []any{req, (*SearchRequest)(nil), nil} {
		if err := Decode([]byte(`{}`), v); err == nil {
			t.Errorf("Decode into %T succeeded", v)
		}
	}
}

// TestRoundTrip: what a type marshals, Decode reads back to the same value.
func TestRoundTrip(t *testing.T) {
	values := []any{
		&Package{
			Metadata: Metadata{PackagingVersion: "4.0", Name: "n", Version: "1.0", Maintainer: "m", Description: "d",
				Tags: []string{"t"}, Selected: true, UpgradesFrom: []string{"*"}, Manager: &Manager{PackageName: "mgr"}},
			ReleaseVersion: 0,
			Marathon:       &Marathon{V2AppMustacheTemplate: "e30="},
			Config:         json.RawMessage(`{"properties":{"a":{"default":1}},"type":"object"}`),
			Resource: &Resource{
				Assets: &Assets{URIs: map[string]string{"a": "http://x"}, Container: &AssetContainer{Docker: map[string]string{"i": "img"}}},
				Images: &Images{IconSmall: "s", Screenshots: []string{"x"}},
				CLI: &CLI{Binaries: map[string]map[string]CLIBinary{"linux": {"x86-64": {
					Kind: "zip", URL: "u", ContentHash: []Hash{{Algo: "sha256", Value: "v"}}}}}},
			},
			Command: &Command{Pip: []string{"x==1"}},
		},
		&SearchResponse{Packages: []SearchResult{{Name: "n", CurrentVersion: "1", Versions: map[string]int64{"1": 3},
			Description: "d", Framework: true, Tags: []string{"t"}, Selected: true, Images: &Images{IconLarge: "l"}}}},
		&RenderResponse{MarathonJSON: json.RawMessage(`{"id":"/a"}`)},
		&InstallRequest{PackageName: "n", PackageVersion: "1", Options: json.RawMessage(`{"a":{"b":[1,"x"]}}`), AppID: "/a"},
		&InstallResponse{PackageName: "n", PackageVersion: "1", AppID: "/a", PostInstallNotes: "p"},
		&ListResponse{Packages: []Installation{{AppID: "/a", PackageInformation: InstalledPackageInformation{
			PackageDefinition: PackageMetadata{PackagingVersion: "3.0", Name: "n", Version: "1", Maintainer: "m", Description: "d", Tags: []string{}},
		}}}},
		&UninstallRequest{PackageName: "n", AppID: "/a", All: true},
		&UninstallResponse{Results: []UninstallResult{{PackageName: "n", AppID: "/a", PackageVersion: "1", PostUninstallNotes: "bye"}}},
		&ListVersionsRequest{PackageName: "n", IncludePackageVersions: true},
		&ListVersionsResponse{Results: map[string]string{"1": "0"}},
		&RepositoryAddRequest{Name: "r", URI: "http://r", Index: new(int64)},
		&RepositoryListResponse{Repositories: []PackageRepository{{Name: "r", URI: "http://r"}}},
		&RepositoryDeleteRequest{URI: "http://r"},
		&Error{Type: "PackageNotFound", Message: "Package [x] not found", Data: json.RawMessage(`{"packageName":"x"}`)},
		&StorageEnvelope{Metadata: map[string]string{"Content-Type": MediaTypePackageV4}, Data: []byte{0, 1, 2}},
	}
	for _, v := range values {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := Decode(data, got); err != nil {
			t.Errorf("%T: %v\n%s", v, err, data)
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", v, got, v)
		}
	}
}

// TestWireNames pins the JSON names Cosmos clients rely on.
func TestWireNames(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{SearchResult{Name: "n", CurrentVersion: "1", Versions: map[string]int64{"1": 0}, Description: "d", Tags: []string{}},
			`{"name":"n","currentVersion":"1","versions":{"1":0},"description":"d","framework":false,"tags":[]}`},
		{Images{IconSmall: "s", IconMedium: "m", IconLarge: "l"}, `{"icon-small":"s","icon-medium":"m","icon-large":"l"}`},
		{InstallResponse{PackageName: "n", PackageVersion: "1", AppID: "/a"}, `{"packageName":"n","packageVersion":"1","appId":"/a"}`},
		{RenderResponse{MarathonJSON: json.RawMessage(`{}`)}, `{"marathonJson":{}}`},
		{Error{Type: "VersionNotFound", Message: "m"}, `{"type":"VersionNotFound","message":"m"}`},
		{Package{Metadata: Metadata{PackagingVersion: "2.0", Name: "n", Version: "1", Maintainer: "m", Description: "d", Tags: []string{}},
			ReleaseVersion: 0, Marathon: &Marathon{V2AppMustacheTemplate: "e30="}},
			`{"packagingVersion":"2.0","name":"n","version":"1","maintainer":"m","description":"d","tags":[],"releaseVersion":0,"marathon":{"v2AppMustacheTemplate":"e30="}}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%T\n got %s\nwant %s", tt.v, got, tt.want)
		}
	}
}
