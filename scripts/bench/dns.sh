#!/bin/sh
# DNS throughput on loopback, Atoll's DNS server beside unbound serving the same records:
#  - scripts/bench/dnsfixture makes a cluster of 10,000 tasks (2,000 apps of 5 on 1,000
#    agents), feeds it to Atoll's DNS server through a master's event stream, and writes
#    the query files of the in-domain A and SRV names and the same records as unbound
#    local-data;
#  - unbound (Debian's) is started by this script with its own config in a temp dir, on a
#    loopback port (the system's unbound and /etc/resolv.conf are never touched);
#  - dnsperf queries each server with each file for the same time and settings, one after
#    the other; queries per second, average latency, lost queries and the load average
#    after the run are printed side by side.
# Fair both ways:
#  - the same number of threads: unbound's num-threads and the Go server's GOMAXPROCS are
#    both the machine's core count, and each opens that many UDP sockets on its port with
#    SO_REUSEPORT (unbound's so-reuseport, Atoll's Config.UDPSockets);
#  - the same records and names: unbound answers from a static local-zone, its fastest
#    path (no cache, recursion or validation involved; module-config "iterator" only
#    because local zones are answered before any module runs); both use the OS's
#    socket buffer sizes;
#  - what differs is design, and is what is measured: Atoll reads and writes a batch of
#    datagrams per system call (recvmmsg/sendmmsg), unbound one each; the kernel hands
#    each query to one of Atoll's sockets at random (a BPF program on the SO_REUSEPORT
#    group), and to one of unbound's by the hash of the client's address and port (with
#    dnsperf's 4 client sockets and 2 server sockets, a run may put 3 or all 4 clients on
#    one of unbound's sockets); Atoll's SRV answers carry the targets' addresses in the
#    additional section, unbound's local-data answers do not (so Atoll's SRV answers are
#    the bigger ones: 790 bytes on average here).
# The machine is shared: a run's load average says how much else was running, and the
# servers' CPU time per query is less swayed by it than their queries per second.
# Needs: apt-get install -y dnsperf unbound
# Usage: scripts/bench/dns.sh [seconds per run (15)]
set -eu
cd "$(dirname "$0")/../.."
secs="${1:-15}"
atoll_port=18053
unbound_port=18054
for tool in dnsperf unbound dig; do
	command -v "$tool" >/dev/null || { echo "dns.sh: $tool not found (apt-get install -y dnsperf unbound dnsutils)" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

threads="$(nproc)"
go build -o "$work/dnsfixture" ./scripts/bench/dnsfixture
GOMAXPROCS="$threads" "$work/dnsfixture" -listen "127.0.0.1:$atoll_port" -udp-sockets "$threads" -out "$work" >"$work/fixture.log" 2>&1 &
atoll_pid=$!
pids="$pids $atoll_pid"
for _ in $(seq 600); do grep -q '^ready' "$work/fixture.log" && break; sleep 0.2; done
grep -q '^ready' "$work/fixture.log" || { cat "$work/fixture.log" >&2; echo "dns.sh: fixture not ready" >&2; exit 1; }
head -1 "$work/fixture.log"

cat >"$work/unbound.conf" <<EOF
server:
	interface: 127.0.0.1
	port: $unbound_port
	do-ip6: no
	do-daemonize: no
	chroot: ""
	username: ""
	directory: "$work"
	pidfile: "$work/unbound.pid"
	use-syslog: no
	logfile: ""
	verbosity: 0
	num-threads: $threads
	so-reuseport: yes
	access-control: 127.0.0.0/8 allow
	module-config: "iterator"
	include: "$work/unbound-records.conf"
remote-control:
	control-enable: no
EOF
unbound -d -c "$work/unbound.conf" 2>"$work/unbound.log" &
unbound_pid=$!
pids="$pids $unbound_pid"
probe="$(head -1 "$work/a.queries" | cut -d' ' -f1)"
for _ in $(seq 300); do
	[ -n "$(dig +short +tries=1 +time=1 -p "$unbound_port" @127.0.0.1 "$probe" A 2>/dev/null)" ] && break
	sleep 0.2
done
[ -n "$(dig +short +tries=1 +time=1 -p "$unbound_port" @127.0.0.1 "$probe" A)" ] || { cat "$work/unbound.log" >&2; echo "dns.sh: unbound not answering" >&2; exit 1; }
[ -n "$(dig +short +tries=1 +time=1 -p "$atoll_port" @127.0.0.1 "$probe" A)" ] || { echo "dns.sh: atoll dns not answering" >&2; exit 1; }

# cputicks PID: the CPU time (user and system) process PID has used, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# perf PORT FILE PID: "qps avg-latency-ms lost cpu-us/query load1" of one dnsperf run
# (EDNS0 on, 4 client sockets, 100 queries outstanding) against the server PID on PORT:
# cpu-us/query is the server's CPU time over the run divided by the queries it answered
# (less swayed than qps by what else runs on the machine), load1 the 1-minute load
# average after the run.
perf() {
	before="$(cputicks "$3")"
	dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$secs" -e -c 4 -q 100 >"$work/dnsperf.out" 2>&1 || { cat "$work/dnsperf.out" >&2; exit 1; }
	after="$(cputicks "$3")"
	awk -v load="$(cut -d' ' -f1 /proc/loadavg)" -v ticks="$((after - before))" -v hz="$(getconf CLK_TCK)" \
		'/Queries completed:/ {done=$3} /Queries per second:/ {q=$4} /Average Latency/ {l=$4*1000} /Queries lost:/ {lost=$3}
		END {printf "%9.0f %9.3f %6s %11.2f %6s", q, l, lost, ticks / hz * 1e6 / done, load}' "$work/dnsperf.out"
}

echo "dnsperf -l $secs -e -c 4 -q 100, one server at a time, on $(nproc) cores; $threads threads and UDP sockets each"
printf '%-22s %-7s %9s %9s %6s %11s %6s\n' queries server qps avg-ms lost cpu-us/query load1
for kind in a srv; do
	names="$(wc -l <"$work/$kind.queries" | tr -d ' ')"
	label="$(echo "$kind" | tr a-z A-Z) ($names names)"
	printf '%-22s %-7s %s\n' "$label" atoll "$(perf "$atoll_port" "$work/$kind.queries" "$atoll_pid")"
	printf '%-22s %-7s %s\n' "$label" unbound "$(perf "$unbound_port" "$work/$kind.queries" "$unbound_pid")"
done
