#!/bin/sh
# Requests failed during routing changes under load: Atoll's lb.Server swapping its table
# beside HAProxy reloading its configuration, both in front of the same nginx.
#  - nginx (Debian's) serves a 612-byte page on two loopback ports, the "old" and the
#    "new" backend (as an app's tasks before and after a deployment);
#  - HAProxy 2.6 runs in master-worker mode (-W): a reload is SIGUSR2 to the master after
#    its config file was rewritten with the other backend, what marathon-lb did on every
#    change (a new worker takes over the listeners; the old one finishes and goes);
#  - scripts/bench/lbfixture runs Atoll's lb.Server with the equivalent table; a SIGHUP
#    has it swap in the table with the other backend (lb.Server.Swap, as the watcher does
#    on every change of the apps and tasks);
#  - wrk keeps 64 keep-alive connections busy against one proxy at a time for the run,
#    and the script changes the routing every interval meanwhile, alternating the two
#    backends. wrk's socket errors (connect, read, write, timeout) and non-2xx answers
#    are the failed requests.
# Needs: apt-get install -y haproxy nginx wrk
# Usage: scripts/bench/lbswap.sh [runs (2)] [seconds per run (10)] [seconds between changes (0.5)]
set -eu
cd "$(dirname "$0")/../.."
runs="${1:-2}"
secs="${2:-10}"
every="${3:-0.5}"
old_port=18090
new_port=18091
haproxy_http=18080
atoll_http=18180
atoll_tcp=18181
for tool in haproxy nginx wrk; do
	command -v "$tool" >/dev/null || { echo "lbswap.sh: $tool not found (apt-get install -y haproxy nginx wrk)" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

# shellcheck source=scripts/bench/lbpeers.sh
. scripts/bench/lbpeers.sh
bench_nginx "$old_port" "$new_port"

# haproxy_config PORT: HAProxy's config with the backend on PORT.
haproxy_config() {
	haproxy_l7 "$1" >"$work/haproxy.cfg.new"
	mv "$work/haproxy.cfg.new" "$work/haproxy.cfg"
}
haproxy_config $old_port
haproxy -W -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
haproxy_pid=$!
pids="$pids $haproxy_pid"

go build -o "$work/lbfixture" ./scripts/bench/lbfixture
"$work/lbfixture" -backend "127.0.0.1:$old_port" -backend2 "127.0.0.1:$new_port" -http-port "$atoll_http" -tcp-port "$atoll_tcp" >"$work/lbfixture.log" 2>&1 &
atoll_pid=$!
pids="$pids $atoll_pid"
for _ in $(seq 100); do
	grep -q '^ready' "$work/lbfixture.log" && curl -fs -o /dev/null "http://127.0.0.1:$haproxy_http/" && break
	sleep 0.1
done
grep -q '^ready' "$work/lbfixture.log" || { cat "$work/lbfixture.log" >&2; echo "lbswap.sh: Atoll not ready" >&2; exit 1; }
curl -fs -o /dev/null "http://127.0.0.1:$haproxy_http/" || { cat "$work/haproxy.log" >&2; echo "lbswap.sh: HAProxy not ready" >&2; exit 1; }

# change PROXY N: the N-th routing change of PROXY (odd N: to the new backend).
change() {
	if [ $(($2 % 2)) -eq 1 ]; then port=$new_port; else port=$old_port; fi
	if [ "$1" = haproxy ]; then
		haproxy_config $port
		kill -USR2 "$haproxy_pid"
	else
		kill -HUP "$atoll_pid"
	fi
}

# changes: how many routing changes each proxy has taken so far (HAProxy's master logs
# each reload it completes, the fixture each swap).
changes() {
	if [ "$1" = haproxy ]; then
		grep -c 'Loading success' "$work/haproxy.log" || true
	else
		grep -c '^swapped to' "$work/lbfixture.log" || true
	fi
}

echo "lbswap.sh: $runs runs of ${secs}s on $(nproc) cores, a routing change every ${every}s; HAProxy $(haproxy -v | head -1 | cut -d' ' -f3)"
printf '%-4s %-8s %8s %10s %10s %8s %s\n' run proxy changes requests req/s failed errors
n=0
for run in $(seq "$runs"); do
	if [ $((run % 2)) -eq 1 ]; then order="haproxy atoll"; else order="atoll haproxy"; fi
	for proxy in $order; do
		if [ "$proxy" = haproxy ]; then port=$haproxy_http; else port=$atoll_http; fi
		before="$(changes "$proxy")"
		wrk -t2 -c64 -d"${secs}s" "http://127.0.0.1:$port/" >"$work/wrk.out" 2>&1 &
		wrk_pid=$!
		sleep 0.5
		while kill -0 "$wrk_pid" 2>/dev/null; do
			n=$((n + 1))
			change "$proxy" "$n"
			sleep "$every"
		done
		wait "$wrk_pid" || { cat "$work/wrk.out" >&2; exit 1; }
		sleep 1
		taken=$(($(changes "$proxy") - before))
		awk -v run="$run" -v proxy="$proxy" -v taken="$taken" '
			/ requests in / {n = $1}
			/Requests\/sec:/ {r = $2}
			/Socket errors:/ {gsub(",", ""); for (i = 3; i < NF; i += 2) failed += $(i + 1); errs = errs " [" $0 "]"}
			/Non-2xx/ {failed += $NF; errs = errs " [" $0 "]"}
			END {printf "%-4s %-8s %8d %10d %10s %8d%s\n", run, proxy, taken, n, r, failed, errs}' "$work/wrk.out"
	done
done
