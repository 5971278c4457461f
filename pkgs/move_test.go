package pkgs

import (
	"encoding/json"
	"testing"
)

// TestMoveGroup: installing a group under another id moves every absolute id below the
// rendered group's id, and the dependencies on them; relative ids and ids elsewhere stay.
func TestMoveGroup(t *testing.T) {
	tests := []struct {
		name, in, old, to, want string
	}{
		{"absolute app ids and dependencies", `{"id":"/pair","apps":[{"id":"/pair/db"},{"id":"/pair/web","dependencies":["/pair/db","/other"]}]}`,
			"/pair", "/stack", `{"apps":[{"id":"/stack/db"},{"dependencies":["/stack/db","/other"],"id":"/stack/web"}],"id":"/stack"}`},
		{"relative ids stay relative", `{"id":"/pair","apps":[{"id":"db"},{"id":"web","dependencies":["db"]}]}`,
			"/pair", "/prod/pair", `{"apps":[{"id":"db"},{"dependencies":["db"],"id":"web"}],"id":"/prod/pair"}`},
		{"nested groups", `{"id":"/a","groups":[{"id":"/a/b","apps":[{"id":"/a/b/c"}]}]}`,
			"/a", "/x/y", `{"groups":[{"apps":[{"id":"/x/y/b/c"}],"id":"/x/y/b"}],"id":"/x/y"}`},
		{"a prefix that is not a path segment", `{"id":"/a","apps":[{"id":"/ab/c"}]}`,
			"/a", "/z", `{"apps":[{"id":"/ab/c"}],"id":"/z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obj map[string]any
			if err := json.Unmarshal([]byte(tt.in), &obj); err != nil {
				t.Fatal(err)
			}
			moveGroup(obj, tt.old, tt.to)
			got, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("moved %s\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}
