#!/bin/sh
# A multi-host Atoll cluster on this machine: each host is a network namespace with a veth
# on a bridge, every address in 198.18.0.0/24, each running the atoll binary.
#
#   scripts/netns-cluster.sh up [--masters N] [--agents N] [--lbs N] [--bin PATH]
#   scripts/netns-cluster.sh down
#
# up builds the binary with scripts/build.sh unless --bin is given, creates the bridge
# <prefix>br0 and hosts <prefix>m1.., <prefix>a1.., <prefix>l1.., starts a master on each m
# host and an agent on each a host (the lb role does not exist yet: l hosts get their
# namespace only), waits for the cluster and says how to reach it. down stops every
# process in the namespaces, deletes the namespaces, links and bridge and the state dir;
# it is idempotent. Needs root and iproute2. Nothing is routed or NATed beyond the bridge.
#
# Environment (for running several clusters, as the e2e tests do):
#   ATOLL_NETNS_PREFIX  prefix of namespace and link names, at most 12 of [a-z0-9-]
#                       (default atoll-)
#   ATOLL_NETNS_SLOT    which /27 of 198.18.0.0/24 to use, 0-7 (default 0); in slot S the
#                       bridge has 198.18.0.(32S+1) and hosts 198.18.0.(32S+11) onwards.
#                       The e2e tests use slots 1-7.
#   ATOLL_NETNS_DIR     state dir: binary, pids, data dirs, logs (default /tmp/atoll-netns)
set -eu

prefix=${ATOLL_NETNS_PREFIX:-atoll-}
slot=${ATOLL_NETNS_SLOT:-0}
dir=${ATOLL_NETNS_DIR:-/tmp/atoll-netns}
# marker names the prefix a cluster was made with; its presence makes dir ours to delete.
marker="$dir/.atoll-netns-prefix"
net=198.18.0
max_hosts=20
api_port=5050
ready_timeout=90

die() { echo "netns-cluster: $*" >&2; exit 1; }

usage() {
	sed -n '5,6p' "$0" | sed 's/^# *//' >&2
	exit 2
}

need_root() {
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces and bridges are privileged)"
	command -v ip >/dev/null || die "needs iproute2's ip command"
}

check_prefix() {
	case "$prefix" in
	'' | *[!a-z0-9-]*) die "ATOLL_NETNS_PREFIX '$prefix': want 1 to 12 of [a-z0-9-]" ;;
	esac
	[ "${#prefix}" -le 12 ] || die "ATOLL_NETNS_PREFIX '$prefix': longer than 12 (interface names end at 15)"
}

count() { # flag value
	case "$2" in
	'' | *[!0-9]*) die "$1 '$2': want a number" ;;
	esac
	echo "$2"
}

# ours NAME: is NAME one of this cluster's namespaces or host links?
ours() {
	case "$1" in
	"$prefix"m[0-9]* | "$prefix"a[0-9]* | "$prefix"l[0-9]*) return 0 ;;
	esac
	return 1
}

# up ------------------------------------------------------------------------------------

# no_ipv6 LINK [NS]: no IPv6 link-local address, so no neighbour discovery: the hosts speak
# IPv4 on their /27 only. (Nothing to do on a kernel without IPv6.)
no_ipv6() {
	[ -e /proc/net/if_inet6 ] || return 0
	ip ${2:+-n "$2"} link set "$1" addrgenmode none
}

add_host() { # name ip
	ns="$prefix$1"
	ip netns add "$ns"
	ip link add "$ns" type veth peer name eth0 netns "$ns"
	no_ipv6 "$ns"
	no_ipv6 eth0 "$ns"
	ip -n "$ns" addr add "$2/27" dev eth0
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	ip link set "$ns" master "$bridge" up
}

start() { # name atoll-args...
	name=$1
	shift
	nohup ip netns exec "$prefix$name" "$bin" "$@" </dev/null >"$dir/$name.log" 2>&1 &
	echo $! >"$dir/$name.pid"
}

up() {
	masters=1 agents=1 lbs=0 bin=
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || usage
		case "$1" in
		--masters) masters=$(count "$1" "$2") ;;
		--agents) agents=$(count "$1" "$2") ;;
		--lbs) lbs=$(count "$1" "$2") ;;
		--bin) bin=$2 ;;
		*) usage ;;
		esac
		shift 2
	done
	[ "$masters" -ge 1 ] || die "--masters $masters: want at least 1"
	[ $((masters + agents + lbs)) -le $max_hosts ] || die "at most $max_hosts hosts in all"
	case "$slot" in
	[0-7]) ;;
	*) die "ATOLL_NETNS_SLOT '$slot': want 0 to 7" ;;
	esac
	base=$((slot * 32))
	bridge="${prefix}br0"
	bridge_ip="$net.$((base + 1))"

	[ ! -e "$marker" ] || die "a cluster is up already (state in $dir); run: $0 down"
	if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
		die "$dir exists and is not empty; set ATOLL_NETNS_DIR to another dir"
	fi
	! ip link show "$bridge" >/dev/null 2>&1 || die "link $bridge exists already; run: $0 down"
	[ -z "$(ip -o -4 addr show to "$net.$base/27")" ] || die "$net.$base/27 is in use here; pick another ATOLL_NETNS_SLOT"

	mkdir -p "$dir/data"
	echo "$prefix" >"$marker"
	# From here on a failure takes down what was made.
	trap 'echo "netns-cluster: up failed; cleaning up" >&2; down' EXIT
	trap 'exit 1' INT TERM

	if [ -z "$bin" ]; then
		"$(dirname "$0")/build.sh" "$dir/atoll"
		bin="$dir/atoll"
	fi
	case "$bin" in
	/*) ;;
	*) bin="$PWD/$bin" ;;
	esac
	[ -x "$bin" ] || die "--bin $bin: not an executable"

	ip link add "$bridge" type bridge
	no_ipv6 "$bridge"
	ip addr add "$bridge_ip/27" dev "$bridge"
	ip link set "$bridge" up

	i=0
	join=
	hosts=
	for kind in m a l; do
		case $kind in
		m) n=$masters ;;
		a) n=$agents ;;
		l) n=$lbs ;;
		esac
		k=1
		while [ "$k" -le "$n" ]; do
			host_ip="$net.$((base + 11 + i))"
			add_host "$kind$k" "$host_ip"
			hosts="$hosts $kind$k:$host_ip"
			[ "$kind" != m ] || join="${join:+$join,}$host_ip"
			i=$((i + 1))
			k=$((k + 1))
		done
	done

	first_master=
	for h in $hosts; do
		name=${h%%:*} host_ip=${h#*:}
		case $name in
		m*)
			first_master=${first_master:-$host_ip}
			start "$name" master --secure=false --name "$name" --bind "$host_ip" --join "$join" \
				--bootstrap-expect "$masters" --data-dir "$dir/data/$name"
			;;
		a*)
			# Plain processes: `down` ends hosts with SIGKILL, which would leave runc
			# containers' cgroups behind.
			start "$name" agent --name "$name" --bind "$host_ip" --join "$join" \
				--data-dir "$dir/data/$name" --containerizer process
			;;
		esac
	done
	trap - EXIT INT TERM

	addr="http://$first_master:$api_port"
	waited=0
	until [ "$("$bin" --addr "$addr" nodes 2>/dev/null | grep -c " yes ")" -ge "$agents" ] &&
		"$bin" --addr "$addr" members >/dev/null 2>&1; do
		if [ "$waited" -ge "$ready_timeout" ]; then
			echo "netns-cluster: the cluster is not ready after ${ready_timeout}s; see the logs in $dir, then: $0 down" >&2
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done

	echo "Atoll cluster up: $masters masters, $agents agents, $lbs lb hosts on bridge $bridge ($bridge_ip/27)."
	for h in $hosts; do
		name=${h%%:*} host_ip=${h#*:}
		case $name in
		m*) what="master, log $dir/$name.log" ;;
		a*) what="agent, log $dir/$name.log" ;;
		*) what="namespace only: the lb role does not exist yet, nothing runs there" ;;
		esac
		printf '  %-4s %-15s %s\n' "$name" "$host_ip" "$what"
	done
	cat <<EOF
Reach it:
  ATOLL_ADDR=$addr $bin members
  ATOLL_ADDR=$addr $bin task run -- echo hi
  ip netns exec ${prefix}a1 sh     # a shell on a host
Take it down: $0 down
EOF
}

# down ----------------------------------------------------------------------------------

# in_ns PID NS: does process PID run in namespace NS? (A pid file from before a reboot may
# name an unrelated process.)
in_ns() { ip netns identify "$1" 2>/dev/null | grep -qx "$2"; }

# signal_daemons SIGNAL: signal each recorded daemon that still runs; says whether any did.
signal_daemons() {
	found=1
	for f in "$dir"/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if in_ns "$pid" "$prefix$(basename "$f" .pid)"; then
			kill "-$1" "$pid" 2>/dev/null || true
			found=0
		fi
	done
	return $found
}

# kill_ns NS: SIGKILL whatever runs in the namespace (tasks, the task supervisor) until
# nothing does.
kill_ns() {
	tries=0
	while pids=$(ip netns pids "$1" 2>/dev/null) && [ -n "$pids" ]; do
		[ "$tries" -lt 30 ] || die "processes $pids in $1 survive SIGKILL"
		# shellcheck disable=SC2086 # one pid per word
		kill -KILL $pids 2>/dev/null || true
		sleep 1
		tries=$((tries + 1))
	done
}

down() {
	trap - EXIT INT TERM
	if [ -f "$marker" ]; then
		prefix=$(cat "$marker")
		check_prefix
		# SIGTERM first, so the daemons leave gossip cleanly.
		waited=0
		if signal_daemons TERM; then
			while [ "$waited" -lt 15 ] && signal_daemons 0; do
				sleep 1
				waited=$((waited + 1))
			done
		fi
	fi
	for ns in $(ip netns list | cut -d' ' -f1); do
		if ours "$ns"; then
			kill_ns "$ns"
			ip netns delete "$ns"
		fi
	done
	for link in $(ip -o link show | cut -d: -f2 | cut -d@ -f1); do
		if ours "$link" || [ "$link" = "${prefix}br0" ]; then
			# A veth may go with its namespace meanwhile.
			if ! ip link delete "$link" 2>/dev/null && ip link show "$link" >/dev/null 2>&1; then
				die "cannot delete link $link"
			fi
		fi
	done
	if [ -f "$marker" ]; then
		rm -rf "$dir"
	elif [ -d "$dir" ]; then
		echo "netns-cluster: leaving $dir: it has no $marker, so it is not a cluster's state dir" >&2
	fi
}

need_root
check_prefix
case "${1:-}" in
up)
	shift
	up "$@"
	;;
down)
	shift
	[ $# -eq 0 ] || usage
	down
	;;
*) usage ;;
esac
