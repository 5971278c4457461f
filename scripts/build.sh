#!/bin/sh
# Builds the static atoll binary into ./atoll (or $1).
set -eu
cd "$(dirname "$0")/.."
out="${1:-atoll}"
version="$(git describe --always --dirty 2>/dev/null || echo dev)"
CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
	-ldflags "-s -w -X github.com/atoll/atoll/node.Version=$version -linkmode external -extldflags -static" \
	-o "$out" .
echo "built $out ($version)"
