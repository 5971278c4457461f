#!/bin/sh
# The test suite: formatting, vet, staticcheck, then every test with the race detector.
# Under CI=true a privileged test that skipped is a failure.
set -eu
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step gofmt
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

step go vet
go vet ./...

step staticcheck
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "go test -race"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testreport" ./scripts/testreport
status=0
go test -race -count=1 -timeout 20m -json ./... >"$tmp/events" 2>&1 || status=$?
strict=""
if [ "${CI:-}" = "true" ]; then strict=-privileged-skips-fail; fi
# The plain output of every test stays in test.log for whoever wants all of it.
"$tmp/testreport" -log test.log $strict <"$tmp/events" || status=1
exit "$status"
