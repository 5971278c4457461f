package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is the registry go-containerregistry resolves Docker Hub names to; Atoll shows
// it the way Docker does, as docker.io.
const (
	dockerHub        = "index.docker.io"
	dockerHubDisplay = "docker.io"
)

// Normalize resolves an image reference the way Docker does and returns its full form:
// "redis" is "docker.io/library/redis:latest", "user/app:1" is "docker.io/user/app:1",
// "host:5000/x@sha256:…" stays as it is. A reference with both a tag and a digest is
// pulled by its digest, so the tag is dropped.
func Normalize(ref string) (string, error) {
	r, err := parseRef(ref, nil)
	if err != nil {
		return "", err
	}
	return displayName(r), nil
}

// parseRef parses ref, treating its registry as plain-HTTP when insecure says so.
func parseRef(ref string, insecure func(registry string) bool) (name.Reference, error) {
	if ref == "" {
		return nil, fmt.Errorf("image reference is empty")
	}
	if strings.TrimSpace(ref) != ref {
		return nil, fmt.Errorf("image reference %q has surrounding spaces", ref)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	if insecure == nil || !insecure(r.Context().RegistryStr()) {
		return r, nil
	}
	r, err = name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return r, nil
}

// displayName is r's full name with Docker Hub spelled docker.io.
func displayName(r name.Reference) string {
	repo := r.Context()
	registry := repo.RegistryStr()
	if registry == dockerHub {
		registry = dockerHubDisplay
	}
	sep := ":"
	if _, ok := r.(name.Digest); ok {
		sep = "@"
	}
	return registry + "/" + repo.RepositoryStr() + sep + r.Identifier()
}
