package universe

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// decodeTargets are the types read from the outside: package files, indexes, Cosmos request
// and response bodies and label contents.
var decodeTargets = []func() any{
	func() any { return &Metadata{} },
	func() any { return &Package{} },
	func() any { return &Resource{} },
	func() any { return &Command{} },
	func() any { return &Repository{} },
	func() any { return &PackageMetadata{} },
	func() any { return &StorageEnvelope{} },
	func() any { return &SearchRequest{} },
	func() any { return &SearchResponse{} },
	func() any { return &DescribeRequest{} },
	func() any { return &DescribeResponse{} },
	func() any { return &RenderRequest{} },
	func() any { return &RenderResponse{} },
	func() any { return &InstallRequest{} },
	func() any { return &InstallResponse{} },
	func() any { return &ListRequest{} },
	func() any { return &ListResponse{} },
	func() any { return &UninstallRequest{} },
	func() any { return &UninstallResponse{} },
	func() any { return &ListVersionsRequest{} },
	func() any { return &ListVersionsResponse{} },
	func() any { return &RepositoryListRequest{} },
	func() any { return &RepositoryListResponse{} },
	func() any { return &RepositoryAddRequest{} },
	func() any { return &RepositoryDeleteRequest{} },
	func() any { return &Error{} },
}

// FuzzDecode: for every type, Decode never panics, fails only with FieldErrors, and what it
// accepts marshals to JSON that decodes to a value marshalling the same.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"packageName": "spark", "packageVersion": "2.12.0-3.0.1", "options": {"service": {"cpus": 2}}, "appId": "/spark"}`,
		`{"packagingVersion": "4.0", "name": "n", "version": "1", "maintainer": "m", "description": "d", "tags": ["t"], "releaseVersion": 3, "config": {"type": "object"}}`,
		`{"packages": [{"packagingVersion": "2.0", "name": "n", "version": "1", "maintainer": "m", "description": "d", "tags": [], "releaseVersion": 0, "marathon": {"v2AppMustacheTemplate": "e30="}}]}`,
		`{"assets": {"uris": {"a": "b"}, "container": {"docker": {"i": "j"}}}, "images": {"icon-small": "s"}, "cli": {"binaries": {"linux": {"x86-64": {"kind": "zip", "url": "u", "contentHash": [{"algo": "sha256", "value": "v"}]}}}}}`,
		`{"metadata": {"Content-Type": "x"}, "data": "AAEC"}`,
		`{"type": "PackageNotFound", "message": "m", "data": {"packageName": "x"}}`,
		`{"name": "r", "uri": "http://r", "index": 0}`,
		`{"query": "sp*"}`, `{}`, `null`, `[]`, `{"a": 1}`, `{"tags": [null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, target := range decodeTargets {
			v := target()
			err := Decode(data, v)
			if err != nil {
				if _, ok := err.(FieldErrors); !ok {
					t.Fatalf("%T: error %T %v", v, err, err)
				}
				continue
			}
			first, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T: marshal: %v", v, err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := Decode(first, again); err != nil {
				t.Fatalf("%T: decoding its own JSON %s: %v", v, first, err)
			}
			second, err := json.Marshal(again)
			if err != nil {
				t.Fatalf("%T: marshal: %v", v, err)
			}
			if !bytes.Equal(first, second) {
				t.Fatalf("%T: round trip changed\n%s\n%s", v, first, second)
			}
		}
	})
}
