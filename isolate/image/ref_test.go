package image

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		ref, want, err string
	}{
		{ref: "redis", want: "docker.io/library/redis:latest"},
		{ref: "redis:7", want: "docker.io/library/redis:7"},
		{ref: "user/app:1", want: "docker.io/user/app:1"},
		{ref: "docker.io/redis", want: "docker.io/library/redis:latest"},
		{ref: "index.docker.io/library/redis:7", want: "docker.io/library/redis:7"},
		{ref: "host:5000/x@" + digest, want: "host:5000/x@" + digest},
		{ref: "host:5000/x:1@" + digest, want: "host:5000/x@" + digest},
		{ref: "localhost:5000/a/b/c", want: "localhost:5000/a/b/c:latest"},
		{ref: "127.0.0.1:5000/x:v1.2", want: "127.0.0.1:5000/x:v1.2"},
		{ref: "quay.io/coreos/etcd:v3", want: "quay.io/coreos/etcd:v3"},
		{ref: "", err: "image reference is empty"},
		{ref: " redis", err: `image reference " redis" has surrounding spaces`},
		{ref: "Redis", err: `image reference "Redis": `},
		{ref: "redis:", err: `image reference "redis:": `},
		{ref: "x@sha256:abc", err: `image reference "x@sha256:abc": `},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := Normalize(tt.ref)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("Normalize(%q) = %q, %v; want error starting %q", tt.ref, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}
}

// FuzzNormalize: parsing never panics, and a normalized reference is its own normal form.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"redis", "user/app:1", "host:5000/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "a:b:c", "/x", "x//y", "localhost/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		got, err := Normalize(ref)
		if err != nil {
			return
		}
		again, err := Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", ref, got, got, again, err)
		}
	})
}
