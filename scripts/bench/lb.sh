#!/bin/sh
# Load balancer throughput on loopback, Atoll's lb.Server beside HAProxy in front of the
# same nginx backend:
#  - nginx (Debian's) serves a 612-byte page at / and a 1 MiB file at /big on a loopback
#    port, with its own config in a temp dir (2 workers, no access log);
#  - HAProxy (Debian's 2.6) with nbthread 2 and http-reuse always has an HTTP frontend
#    (option forwardfor, as marathon-lb's) and a TCP frontend, each with nginx as its one
#    server;
#  - scripts/bench/lbfixture runs Atoll's lb.Server with the equivalent two-service table
#    (GOMAXPROCS is the core count, as HAProxy's threads);
#  - after a 2-second warm-up of each, wrk measures, one proxy at a time and alternating which goes first from run to run:
#    L7 keep-alive (wrk -t2 -c64, requests/s and p99), L4 throughput of the 1 MiB file
#    (-t2 -c8) and L4 new connections (-t2 -c32, Connection: close), and nginx direct
#    once per run as a reference. The 1-minute load average after each run is printed:
#    the machine is shared, and a figure means little without it; so is each proxy's
#    CPU time per request (or per connection) over the run, which what else runs sways
#    less than requests per second, and the share of nginx's CPU time its first worker
#    took (how the proxy's requests fell on nginx's two workers);
#  - at the end, a verdict per test: Atoll's figure over HAProxy's in each run, the median
#    over the runs, and in how many runs the target (>= 1.0x, p99 <= HAProxy's) held.
# Needs: apt-get install -y haproxy nginx wrk
# Usage: scripts/bench/lb.sh [runs (3)] [seconds per L7 run (8)]
# LB_GOMAXPROCS and HAPROXY_THREADS change Atoll's GOMAXPROCS and HAProxy's nbthread (default:
# the core count, both); LB_TESTS picks the tests (default "l7 big conns"); LB_FIXTURE runs a
# prebuilt lbfixture binary instead of building this checkout's (for A/B runs).
set -eu
cd "$(dirname "$0")/../.."
runs="${1:-3}"
secs="${2:-8}"
nginx_port=18090
haproxy_http=18080
haproxy_tcp=18081
atoll_http=18180
atoll_tcp=18181
for tool in haproxy nginx wrk; do
	command -v "$tool" >/dev/null || { echo "lb.sh: $tool not found (apt-get install -y haproxy nginx wrk)" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

mkdir -p "$work/www"
head -c 1048576 /dev/urandom >"$work/www/big"
# shellcheck source=scripts/bench/lbpeers.sh
. scripts/bench/lbpeers.sh
bench_nginx "$nginx_port"

# HAPROXY_SPLICE=1: HAProxy's TCP backend splices both ways (option splice-request and
# splice-response; splice-auto hardly ever engaged here), with pipes for 1,024
# connections (its default, maxconn/4, would need more descriptors than allowed).
haproxy_splice=""
haproxy_pipes=""
if [ -n "${HAPROXY_SPLICE:-}" ]; then
	haproxy_splice="$(printf '\toption splice-request\n\toption splice-response\n ')"
	haproxy_pipes="maxpipes 1024"
fi
{
	haproxy_l7 "$nginx_port" "$haproxy_pipes"
	cat <<CONF
frontend l4
	mode tcp
	bind 127.0.0.1:$haproxy_tcp
	default_backend raw
backend raw
	mode tcp
$haproxy_splice	server nginx 127.0.0.1:$nginx_port
CONF
} >"$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
haproxy_pid=$!
pids="$pids $haproxy_pid"

if [ -n "${LB_FIXTURE:-}" ]; then cp "$LB_FIXTURE" "$work/lbfixture"; else go build -o "$work/lbfixture" ./scripts/bench/lbfixture; fi
GOMAXPROCS="${LB_GOMAXPROCS:-$(nproc)}" "$work/lbfixture" -backend "127.0.0.1:$nginx_port" -http-port "$atoll_http" -tcp-port "$atoll_tcp" >"$work/lbfixture.log" 2>&1 &
atoll_pid=$!
pids="$pids $atoll_pid"
for _ in $(seq 100); do
	grep -q '^ready' "$work/lbfixture.log" && curl -fs -o /dev/null "http://127.0.0.1:$haproxy_http/" && break
	sleep 0.1
done
grep -q '^ready' "$work/lbfixture.log" || { cat "$work/lbfixture.log" >&2; echo "lb.sh: Atoll not ready" >&2; exit 1; }
for port in $nginx_port $haproxy_http $haproxy_tcp $atoll_http $atoll_tcp; do
	curl -fs -o /dev/null "http://127.0.0.1:$port/big" || { cat "$work"/*.log >&2; echo "lb.sh: nothing answers on $port" >&2; exit 1; }
done

# cputicks PID: the CPU time (user and system, all threads) process PID and its
# children (nginx's workers) have used, in clock ticks.
cputicks() {
	for p in "$1" $(pgrep -P "$1"); do cat "/proc/$p/stat"; done | awk '{t += $14 + $15} END {print t}'
}

# busyticks: the CPU time the whole machine has spent busy (not idle or waiting for
# I/O), in clock ticks.
busyticks() {
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# workerticks: the CPU time each of nginx's two workers has used, in clock ticks.
workerticks() {
	for p in $(pgrep -P "$nginx_pid" | sort -n); do cat "/proc/$p/stat"; done | awk '{printf "%d ", $14 + $15}'
}

# wrkrun PID ARGS...: "req/s p99 transfer/s cpu-us/req all-us/req load1 p50 worker1" of
# one wrk run against the server PID: all-us/req is the whole machine's busy time per
# request (the client, the backend and the kernel's share of both included); worker1 is
# the share of nginx's CPU time its first worker took (a proxy that sends most requests
# to one worker's connections shows here).
wrkrun() {
	pid=$1
	shift
	before="$(cputicks "$pid")" allbefore="$(busyticks)" wbefore="$(workerticks)"
	wrk "$@" >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out" >&2; exit 1; }
	after="$(cputicks "$pid")" allafter="$(busyticks)" wafter="$(workerticks)"
	awk -v load="$(cut -d' ' -f1 /proc/loadavg)" -v ticks="$((after - before))" -v all="$((allafter - allbefore))" -v hz="$(getconf CLK_TCK)" \
		-v workers="$wbefore $wafter" \
		'/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /^Requests\/sec:/ {r=$2} /^Transfer\/sec:/ {x=$2} / requests in / {n=$1}
		/Non-2xx|Socket errors/ {errs=errs " [" $0 "]"}
		END {
			split(workers, w, " "); w1 = w[3] - w[1]; w2 = w[4] - w[2]
			printf "%10s %9s %10s %11.1f %11.1f %6s %8s %6s%s", r, (p99 == "" ? "-" : p99), x, ticks / hz * 1e6 / n, all / hz * 1e6 / n, load,
				(p50 == "" ? "-" : p50), (w1 + w2 > 0 ? sprintf("%d%%", 100 * w1 / (w1 + w2)) : "-"), errs
		}' "$work/wrk.out"
}

l7() { wrkrun "$1" -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$2/"; }
big() { wrkrun "$1" -t2 -c8 -d6s "http://127.0.0.1:$2/big"; }
conns() { wrkrun "$1" -t2 -c32 -d6s -H "Connection: close" "http://127.0.0.1:$2/"; }

# A warm-up for both proxies (connection pools, buffers, the Go heap), not measured.
for port in $haproxy_http $atoll_http; do
	wrk -t2 -c64 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
done

echo "lb.sh: $runs runs on $(nproc) cores; HAProxy $(haproxy -v | head -1 | cut -d' ' -f3), nginx backend on $nginx_port"
printf '%-4s %-6s %-8s %10s %9s %10s %11s %11s %6s %8s %6s\n' run test proxy req/s p99 transfer cpu-us/req all-us/req load1 p50 worker1
for run in $(seq "$runs"); do
	if [ $((run % 2)) -eq 1 ]; then order="haproxy atoll"; else order="atoll haproxy"; fi
	for test in ${LB_TESTS:-l7 big conns}; do
		for proxy in $order; do
			if [ "$proxy" = haproxy ]; then
				pid=$haproxy_pid port=$haproxy_http
				[ "$test" = l7 ] || port=$haproxy_tcp
			else
				pid=$atoll_pid port=$atoll_http
				[ "$test" = l7 ] || port=$atoll_tcp
			fi
			printf '%-4s %-6s %-8s %s\n' "$run" "$test" "$proxy" "$($test "$pid" "$port")" | tee -a "$work/results"
		done
	done
	case " ${LB_TESTS:-l7} " in
	*" l7 "*) printf '%-4s %-6s %-8s %s\n' "$run" l7 nginx "$(l7 "$nginx_pid" "$nginx_port")" ;;
	esac
done

# The verdict: per test, Atoll's figure over HAProxy's in each run (requests/s; for L7 also
# the p99, where lower is better), their median over the runs, and in how many runs the
# target held (>= 1.0x, p99 <= HAProxy's). One run is noisy on two shared cores (the
# BENCHMARKS.md lb section has the spread); the median of the runs is the figure to compare.
awk '
	function sec(x) { return x ~ /ms$/ ? x / 1000 : x ~ /us$/ ? x / 1e6 : x + 0 }
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ rate[$1, $2, $3] = $4; p99[$1, $2, $3] = sec($5); if (!($2 in seen)) { seen[$2] = 1; tests[++nt] = $2 } if ($1 > runs) runs = $1 }
	END {
		print "verdict (Atoll / HAProxy per run; median; runs meeting the target):"
		for (t = 1; t <= nt; t++) {
			test = tests[t]; n = 0; met = 0; list = ""
			for (r = 1; r <= runs; r++) {
				if (!((r, test, "atoll") in rate) || !((r, test, "haproxy") in rate)) continue
				x = rate[r, test, "atoll"] / rate[r, test, "haproxy"]
				v[++n] = x; met += x >= 1; list = list sprintf(" %.2f", x)
			}
			if (n == 0) continue
			printf "  %-6s req/s %s; median %.2fx; >= 1.0x in %d of %d\n", test, list, median(v, n), met, n
			if (test != "l7") continue
			n = 0; met = 0; list = ""
			for (r = 1; r <= runs; r++) {
				if (!((r, test, "atoll") in p99) || !((r, test, "haproxy") in p99)) continue
				x = p99[r, test, "atoll"] / p99[r, test, "haproxy"]
				v[++n] = x; met += x <= 1; list = list sprintf(" %.2f", x)
			}
			printf "  %-6s p99   %s; median %.2fx; <= HAProxy'"'"'s in %d of %d\n", test, list, median(v, n), met, n
		}
	}' "$work/results"
