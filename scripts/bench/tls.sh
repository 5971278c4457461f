#!/bin/sh
# The cost of security on the Marathon API, measured from outside the master: two
# one-process clusters side by side, `atoll up` (secure: TLS 1.3 with its own CA, an
# admin token checked on every request) and `atoll up --secure=false` (plain HTTP, no
# tokens), each running the same 20 apps of 2 `sleep` instances; wrk (C, OpenSSL) reads
# GET /v2/apps?embed=apps.tasks from each in turn, 16 connections, alternating which goes
# first. Per run it prints requests/s, p99 and the master process's CPU time per request
# (user + system over the run), so the client's own TLS work is not counted against the
# master as it is in the in-process Go benchmarks.
# Needs: root (runc tasks), apt-get install -y wrk curl
# Usage: scripts/bench/tls.sh [runs (5)] [seconds per run (8)]
set -eu
cd "$(dirname "$0")/../.."
runs="${1:-5}"
secs="${2:-8}"
for tool in wrk curl; do
	command -v "$tool" >/dev/null || { echo "tls.sh: $tool not found (apt-get install -y wrk curl)" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=""
cleanup() {
	for p in $pids; do kill -INT "$p" 2>/dev/null || true; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/atoll" .

# start MODE PORT_BASE [FLAGS...]: an `atoll up` of its own on ports PORT_BASE.. .
start() {
	mode=$1 base=$2
	shift 2
	mkdir -p "$work/$mode/home"
	HOME="$work/$mode/home" "$work/atoll" up --data-dir "$work/$mode/data" --api-port "$base" --raft-port $((base + 1)) \
		--dns-port $((base + 2)) --lb-http-port -1 --lb-https-port -1 --lb-app-id-port -1 --lb-admin-port -1 \
		--log-level warn "$@" >"$work/$mode/up.log" 2>&1 &
	pids="$pids $!"
	echo $! >"$work/$mode/pid"
	for _ in $(seq 300); do
		grep -q '^Atoll is up' "$work/$mode/up.log" && return 0
		sleep 0.1
	done
	cat "$work/$mode/up.log" >&2
	echo "tls.sh: atoll up ($mode) did not come up" >&2
	exit 1
}

# call MODE METHOD PATH [BODY]: curl against MODE's cluster with its token and CA.
call() {
	mode=$1 method=$2 path=$3 body="${4:-}"
	if [ "$mode" = secure ]; then
		curl -fsS --cacert "$work/secure/data/pki/ca.crt" -H "Authorization: Bearer $(cat "$work/secure/data/admin.token")" \
			-H 'Content-Type: application/json' -X "$method" ${body:+-d "$body"} "https://127.0.0.1:18500$path"
	else
		curl -fsS -H 'Content-Type: application/json' -X "$method" ${body:+-d "$body"} "http://127.0.0.1:18600$path"
	fi
}

start secure 18500
start plain 18600 --secure=false
for mode in secure plain; do
	for i in $(seq 20); do
		call "$mode" POST /v2/apps "{\"id\":\"/bench/app-$i\",\"cmd\":\"sleep 600\",\"cpus\":0.01,\"mem\":16,\"instances\":2}" >/dev/null
	done
done
for mode in secure plain; do
	for _ in $(seq 300); do
		running=$(call "$mode" GET '/v2/apps?embed=apps.tasks' | grep -o '"tasksRunning":[0-9]*' | awk -F: '{s += $2} END {print s + 0}')
		[ "$running" = 40 ] && break
		sleep 0.5
	done
	[ "$running" = 40 ] || { echo "tls.sh: $mode has $running of 40 instances running" >&2; exit 1; }
done

# cputicks PID: CPU time (user + system, all threads) of process PID, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# measure MODE: "req/s p99 cpu-µs/req" of one wrk run against MODE's cluster.
measure() {
	mode=$1
	pid=$(cat "$work/$mode/pid")
	if [ "$mode" = secure ]; then
		url="https://127.0.0.1:18500/v2/apps?embed=apps.tasks"
		set -- -H "Authorization: Bearer $(cat "$work/secure/data/admin.token")"
	else
		url="http://127.0.0.1:18600/v2/apps?embed=apps.tasks"
		set --
	fi
	before=$(cputicks "$pid")
	out=$(wrk -t2 -c16 -d"${secs}s" --latency "$@" "$url")
	after=$(cputicks "$pid")
	echo "$out" | awk -v ticks=$((after - before)) -v hz="$hz" '
		/Requests\/sec/ {rps = $2}
		/^ +99%/ {p99 = $2}
		/requests in/ {n = $1}
		END {printf "%s req/s  p99 %s  %.0f cpu-µs/req", rps, p99, ticks / hz * 1e6 / n}'
}

echo "run  secure (TLS + token)                       plain HTTP                               load"
for r in $(seq "$runs"); do
	if [ $((r % 2)) = 1 ]; then
		s=$(measure secure)
		p=$(measure plain)
	else
		p=$(measure plain)
		s=$(measure secure)
	fi
	printf '%-4s %-44s %-40s %s\n' "$r" "$s" "$p" "$(cut -d' ' -f1 /proc/loadavg)"
done
