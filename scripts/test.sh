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
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
go test -race -count=1 -timeout 20m ./... -v >"$log" 2>&1 || status=$?
grep -E '^(--- (FAIL|SKIP)|FAIL|ok|panic:|PASS$)' "$log" || true
if [ "$status" -ne 0 ]; then
	echo; echo "== failures (excerpts)"; grep -B2 -A30 -E '^--- FAIL|^panic:' "$log" | head -400
	echo; echo "== what the tests reported (log lines left out)"
	grep -E '^[[:space:]]+[[:alnum:]_]+_test\.go:[0-9]+: ' "$log" | grep -v 'time=' | tail -80
fi
passed=$(grep -c -- '^--- PASS' "$log" || true)
failed=$(grep -c -- '^--- FAIL' "$log" || true)
skipped=$(grep -c -- '^--- SKIP' "$log" || true)
if [ "${CI:-}" = "true" ] && grep -A2 -- '^--- SKIP' "$log" | grep -qi 'privileged\|root'; then
	echo "privileged tests skipped under CI=true:"; grep -A2 -- '^--- SKIP' "$log"
	status=1
fi
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
