#!/bin/sh
# Footprint and master capacity figures, on loopback:
#  - idle agent RSS: an `atoll agent` registered with an `atoll master`, idle for 15 s;
#  - master RSS with 10,000 running tasks, launched by scripts/bench/loadgen through the
#    scheduler API onto 100 simulated agents (no processes), and the launch rate it saw.
# Usage: scripts/bench/footprint.sh [tasks]
set -eu
cd "$(dirname "$0")/../.."
tasks="${1:-10000}"
work="$(mktemp -d)"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

# Installed as the installer does, by copying: a binary just written by the linker sits in
# the page cache in larger pieces, which map more of it into each process.
./scripts/build.sh "$work/built" >/dev/null
cp "$work/built" "$work/atoll"
go build -o "$work/loadgen" ./scripts/bench/loadgen

# rss PID: the process's resident memory, and how much of it is its own (anonymous) and
# mapped from files (the binary, shared by every Atoll process on the host, and bbolt's
# database).
rss() {
	awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2}
		END {printf "%.1f MB (own %.1f MB, mapped files %.1f MB)", r / 1024, a / 1024, f / 1024}' "/proc/$1/status"
}

"$work/atoll" master --secure=false --name bm --bind 127.0.0.1 --data-dir "$work/m" --api-port 25050 --raft-port 25052 \
	--gossip-port 27946 --dns-port 25053 --log-level warn 2>"$work/master.log" &
master=$!; pids="$pids $master"
"$work/atoll" agent --name ba --bind 127.0.0.1 --join 127.0.0.1:27946 --data-dir "$work/a" --agent-port 25051 \
	--gossip-port 27947 --dns-port 25054 --log-level warn 2>"$work/agent.log" &
agent=$!; pids="$pids $agent"
registered=""
for _ in $(seq 100); do
	"$work/atoll" --addr http://127.0.0.1:25050 nodes 2>/dev/null | grep -q yes && registered=1 && break
	sleep 0.2
done
[ -n "$registered" ] || {
	cat "$work/master.log" "$work/agent.log" >&2
	echo "footprint.sh: the agent did not register" >&2
	exit 1
}
sleep 15
echo "idle agent RSS: $(rss $agent)"
echo "idle master RSS (1 agent): $(rss $master)"
kill "$agent"

"$work/loadgen" -master http://127.0.0.1:25050 -agents 100 -tasks "$tasks" >"$work/loadgen.out" 2>&1 &
pids="$pids $!"
for _ in $(seq 600); do grep -q RUNNING "$work/loadgen.out" && break; sleep 0.5; done
cat "$work/loadgen.out"
sleep 2
echo "master RSS with $tasks running tasks: $(rss $master)"
