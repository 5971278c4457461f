package api

import "testing"

func TestLabelsGet(t *testing.T) {
	var none *Labels
	labels := &Labels{Labels: []Label{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "3"}}}
	for _, tt := range []struct {
		labels    *Labels
		key, want string
	}{{none, "a", ""}, {labels, "a", "1"}, {labels, "b", "2"}, {labels, "c", ""}} {
		if got := tt.labels.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
