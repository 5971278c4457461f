#!/bin/sh
# Installs an Atoll node from the master that served this script:
#
#   curl -fsSL http://MASTER:5050/install.sh | sudo sh -s -- ROLE [--join ADDR] [--token T] [-- FLAGS]
#
# ROLE is master, agent or lb. --join is the gossip address (host or host:port) of a node
# to join, by default the master that served this script; a URL (http://HOST:PORT) names
# another master to install from and join. FLAGS are atoll's own, passed on to
# `atoll ROLE` (`atoll ROLE --help` lists them). --token is the join token of a secure
# cluster (ATL1-<SHA-256 of the cluster CA>-<secret>, from the first master or `atoll
# token create --role ROLE`): the script fetches the cluster CA from the master, checks
# it against the token's hash before it trusts it (and installs nothing when they
# differ), talks to the master over TLS with that CA from then on, and hands the token to
# the node in the environment file; the node joins with it when it first starts.
#
# The script downloads the master's atoll, checks its platform and checksum, installs it
# with an environment file and a systemd unit, starts the node (in the background where
# systemd does not run), waits until the node has joined the cluster and says which files
# it wrote. Run again, it upgrades the node in place. atoll-uninstall.sh removes it all.
#
# Environment:
#   ATOLL_INSTALL_ROOT        a prefix for every path written and run (for tests)
#   ATOLL_INSTALL_BIN_DIR     where atoll goes (default /usr/local/bin)
#   ATOLL_INSTALL_SKIP_START  1: install, but neither start nor restart the node
#   ATOLL_INSTALL_TIMEOUT     seconds to wait for the node to join (default 60)
#
# Nothing is written before the download is verified, and every file is replaced by a
# rename, so a run that fails leaves the machine as it was.
set -eu

# The master that served this script, and the gossip address new nodes join by default.
served_url='@ATOLL_SERVED_URL@'
served_join='@ATOLL_SERVED_JOIN@'

prog=atoll-install
usage='usage: install.sh master|agent|lb [--join ADDR] [--token TOKEN] [-- ATOLL FLAGS]'

# @lib.sh

main() {
	parse_args "$@"
	root=${ATOLL_INSTALL_ROOT-}
	root=${root%/}
	[ -z "$root" ] || check_path ATOLL_INSTALL_ROOT "$root"
	bin_dir=${ATOLL_INSTALL_BIN_DIR:-/usr/local/bin}
	check_path ATOLL_INSTALL_BIN_DIR "$bin_dir"
	bin=$root$bin_dir/atoll
	uninstaller=$root$bin_dir/atoll-uninstall.sh
	set_paths "$role"
	if [ -z "$data_dir" ]; then
		data_dir=$root/var/lib/atoll
		args="--join $join --data-dir $data_dir$extra"
	else
		check_path --data-dir "$data_dir"
		args="--join $join$extra"
	fi
	timeout=${ATOLL_INSTALL_TIMEOUT:-60}
	case $timeout in
	'' | *[!0-9]*) die "ATOLL_INSTALL_TIMEOUT=$timeout: want a whole number of seconds" ;;
	esac
	if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
		die "run it as root (curl ... | sudo sh -s -- $role ...): it writes to ${bin_dir}, /etc and /var"
	fi
	pick_tools

	tmp=$(mktemp -d "${TMPDIR:-/tmp}/atoll-install.XXXXXX") || die "cannot create a temporary directory in ${TMPDIR:-/tmp}"
	staging=
	trap 'rm -rf "$tmp" ${staging:+"$staging"}' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	say "installing an atoll $role from $master_url"
	api_url=$master_url
	api_token=$token
	ca_file=
	[ -z "$token" ] || check_cluster_ca
	download
	install_files
	if [ "${ATOLL_INSTALL_SKIP_START:-}" = 1 ]; then
		if uses_systemd; then
			say "not started (ATOLL_INSTALL_SKIP_START=1); start it with: systemctl enable --now $unit"
		else
			say "not started (ATOLL_INSTALL_SKIP_START=1); start it with: $(boot_command)"
		fi
		return 0
	fi
	start_node
	wait_joined
	say "done: $uninstaller removes it"
}

# parse_args sets role, join, master_url, token, and from atoll's own flags extra (each
# with a space in front), name and data_dir.
parse_args() {
	[ $# -gt 0 ] || die "no role given. $usage"
	case $1 in
	master | agent | lb) role=$1 ;;
	-h | --help)
		say "$usage"
		exit 0
		;;
	*) die "unknown role '$1': want master, agent or lb. $usage" ;;
	esac
	shift
	join=$served_join
	master_url=$served_url
	token=
	while [ $# -gt 0 ]; do
		case $1 in
		--join | --token)
			[ $# -ge 2 ] || die "$1 needs a value. $usage"
			option "$1" "$2"
			shift 2
			;;
		--join=* | --token=*)
			option "${1%%=*}" "${1#*=}"
			shift
			;;
		--)
			shift
			break
			;;
		*) die "unknown option '$1' (atoll's own flags go after --). $usage" ;;
		esac
	done
	name=$(uname -n)
	data_dir=
	extra=
	prev=
	for arg in "$@"; do
		case $arg in
		*[[:space:]]* | *[\"\'\\\$\`]*)
			die "atoll flag '$arg': spaces, quotes, backslashes and \$ cannot go through the environment file"
			;;
		esac
		case $prev in
		--name) name=$arg ;;
		--data-dir) data_dir=$arg ;;
		esac
		case $arg in
		--name=*) name=${arg#*=} ;;
		--data-dir=*) data_dir=${arg#*=} ;;
		esac
		extra="$extra $arg"
		prev=$arg
	done
	case $name in
	'' | *[!A-Za-z0-9._-]*) die "node name '$name': want letters, digits and . _ - only (give atoll --name after --)" ;;
	esac
}

# option FLAG VALUE takes --join or --token.
option() {
	case $1 in
	--join)
		case $2 in
		http://* | https://*)
			master_url=${2%/}
			join=$(url_host "$master_url")
			;;
		*) join=$2 ;;
		esac
		case $join in
		'' | *[!]A-Za-z0-9._:,[-]*) die "--join '$2': want host, host:port or http://host:port" ;;
		esac
		case $master_url in
		*[!]A-Za-z0-9._:/[-]*) die "--join '$2': want host, host:port or http://host:port" ;;
		esac
		;;
	--token)
		case $2 in
		'' | *[!A-Za-z0-9._~+/=-]*) die "--token: only letters, digits and . _ ~ + / = - may appear in a token" ;;
		esac
		token=$2
		rest=${2#ATL1-}
		hash=${rest%%-*}
		secret=${rest#*-}
		case $2 in
		ATL1-*) ;;
		*) token= ;;
		esac
		case $hash in
		'' | *[!0-9a-f]*) token= ;;
		esac
		case $secret in
		'' | *[!A-Za-z0-9_]*) token= ;;
		esac
		[ "${#hash}" -eq 64 ] && [ "$secret" != "$rest" ] || token=
		[ -n "$token" ] ||
			die "--token: not a join token: want ATL1-<CA hash>-<secret>, as the first master and atoll token create --role $role print it"
		;;
	esac
}

# check_cluster_ca fetches the cluster CA from the master, over plain HTTP as masters
# serve it to machines that trust nothing yet, and checks it against the join token's
# hash. From then on the script calls the master's API over TLS trusting that CA alone,
# with the token's secret (an API token of the node's role) as its bearer.
check_cluster_ca() {
	rest=${token#ATL1-}
	want=${rest%%-*}
	if [ "$fetcher" = busybox-wget ] && [ "${ATOLL_INSTALL_SKIP_START:-}" != 1 ]; then
		die "BusyBox's wget cannot check the master's certificate, which joining a secure cluster needs: install curl (apt-get install curl) and run again"
	fi
	fetch "$master_url/atoll/v1/ca" "$tmp/ca.crt" ||
		die "cannot fetch the cluster CA from $master_url/atoll/v1/ca: is the master secure (atoll master without --secure=false) and reachable? A join token is for secure clusters only"
	got=$(cert_sha256 "$tmp/ca.crt") || die "$master_url/atoll/v1/ca is not a PEM certificate"
	[ "$got" = "$want" ] ||
		die "the cluster CA's hash $got, as $master_url served it, does not match the join token's $want: a man in the middle, or a token of another cluster; nothing was installed"
	say "  the cluster CA matches the join token: SHA-256 $got"
	ca_file=$tmp/ca.crt
	api_url=https://${master_url#*://}
	api_token=${rest#*-}
}

# cert_sha256 PEM prints the SHA-256 of the certificate in the file PEM (of its DER
# encoding, as join tokens hash it).
cert_sha256() {
	sed -n '/^-----BEGIN CERTIFICATE-----/,/^-----END CERTIFICATE-----/p' "$1" | sed '/^-----/d' | tr -d '\r\n' >"$tmp/ca.b64"
	[ -s "$tmp/ca.b64" ] || return 1
	if command -v base64 >/dev/null 2>&1; then
		base64 -d <"$tmp/ca.b64" >"$tmp/ca.der" 2>/dev/null || return 1
	elif command -v openssl >/dev/null 2>&1; then
		openssl base64 -d -A <"$tmp/ca.b64" >"$tmp/ca.der" 2>/dev/null || return 1
	else
		die "cannot check the cluster CA: install base64 (coreutils) or openssl"
	fi
	sha256 "$tmp/ca.der"
}

# url_host prints the host of the URL $1, without its port.
url_host() {
	hostport=${1#*://}
	hostport=${hostport%%/*}
	case $hostport in
	*\]) printf '%s\n' "$hostport" ;;
	*:*) printf '%s\n' "${hostport%:*}" ;;
	*) printf '%s\n' "$hostport" ;;
	esac
}

# pick_tools chooses how to download (curl or wget) and how to checksum.
pick_tools() {
	if command -v curl >/dev/null 2>&1; then
		fetcher=curl
	elif command -v wget >/dev/null 2>&1; then
		fetcher=wget
		# BusyBox's wget has no --version, and some builds crash given a timeout (-T).
		wget --version >/dev/null 2>&1 || fetcher=busybox-wget
	else
		die "neither curl nor wget is installed: install one (apt-get install curl) and run again"
	fi
	if command -v sha256sum >/dev/null 2>&1; then
		hasher=sha256sum
	elif command -v shasum >/dev/null 2>&1; then
		hasher=shasum
	elif command -v openssl >/dev/null 2>&1; then
		hasher=openssl
	else
		die "cannot verify the download: install sha256sum (coreutils), shasum or openssl"
	fi
}

# fetch URL FILE downloads URL into FILE.
fetch() {
	case $fetcher in
	curl) curl -fsSL --connect-timeout 10 -o "$2" "$1" </dev/null ;;
	wget) wget -q -T 10 -O "$2" "$1" </dev/null ;;
	busybox-wget) wget -q -O "$2" "$1" </dev/null ;;
	esac
}

# post URL JSON posts JSON to URL and prints the answer. It sends the API token, if any,
# as the bearer: the master may ask for one before it answers who has joined. A secure
# cluster's master must hold a certificate of its CA.
post() {
	url=$1 body=$2
	shift 2
	[ -z "$api_token" ] || set -- --header "Authorization: Bearer $api_token"
	case $fetcher in
	curl)
		[ -z "$ca_file" ] || set -- "$@" --cacert "$ca_file"
		curl -fsSL --connect-timeout 5 --max-time 10 -H 'Content-Type: application/json' "$@" -d "$body" "$url" </dev/null
		;;
	wget)
		[ -z "$ca_file" ] || set -- "$@" --ca-certificate="$ca_file"
		wget -q -T 10 -O - --header 'Content-Type: application/json' "$@" --post-data "$body" "$url" </dev/null
		;;
	busybox-wget) wget -q -O - --header 'Content-Type: application/json' "$@" --post-data "$body" "$url" </dev/null ;;
	esac
}

# sha256 FILE prints FILE's SHA-256 in hex.
sha256() {
	case $hasher in
	sha256sum) sha256sum "$1" ;;
	shasum) shasum -a 256 "$1" ;;
	openssl) openssl dgst -sha256 -r "$1" ;;
	esac | sed 's/[^0-9a-f].*//'
}

# platform prints this machine's platform as Go names it (linux/amd64).
platform() {
	os=$(uname -s | tr '[:upper:]' '[:lower:]')
	case $(uname -m) in
	x86_64 | amd64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	armv6* | armv7* | armv8l) arch=arm ;;
	i?86) arch=386 ;;
	loongarch64) arch=loong64 ;;
	*) arch=$(uname -m) ;;
	esac
	printf '%s/%s\n' "$os" "$arch"
}

# download fetches atoll and the uninstaller into $tmp and checks them.
download() {
	fetch "$master_url/download/atoll.arch" "$tmp/atoll.arch" ||
		die "cannot reach the master at $master_url (GET /download/atoll.arch failed): is it running, and reachable from this machine?"
	want=$(cat "$tmp/atoll.arch")
	have=$(platform)
	[ "$want" = "$have" ] ||
		die "wrong architecture: the master at $master_url serves atoll for $want, this machine is $have ($(uname -s) $(uname -m)); install from a master of this machine's platform"
	fetch "$master_url/download/atoll.sha256" "$tmp/atoll.sha256" ||
		die "cannot download $master_url/download/atoll.sha256"
	sum=$(sed -n '1s/^\([0-9a-f]\{64\}\).*/\1/p' "$tmp/atoll.sha256")
	[ -n "$sum" ] || die "$master_url/download/atoll.sha256 holds no SHA-256"
	fetch "$master_url/download/atoll" "$tmp/atoll" ||
		die "cannot download $master_url/download/atoll"
	got=$(sha256 "$tmp/atoll")
	[ "$got" = "$sum" ] ||
		die "checksum mismatch: the atoll downloaded from $master_url has SHA-256 $got, the master says $sum (corrupted in transit?); nothing was installed"
	chmod 755 "$tmp/atoll"
	fetch "$master_url/atoll-uninstall.sh" "$tmp/uninstall.sh" ||
		die "cannot download $master_url/atoll-uninstall.sh"
	# The installed uninstaller remembers where this run put things.
	sed "s|^root=.*# @install-settings\$|root='$root' bin_dir='$bin_dir'|" "$tmp/uninstall.sh" >"$tmp/atoll-uninstall.sh"
	grep -q "^root='$root' bin_dir='$bin_dir'\$" "$tmp/atoll-uninstall.sh" ||
		die "$master_url/atoll-uninstall.sh is not the uninstaller this script expects"
	say "  downloaded atoll for $want, SHA-256 $sum: verified"
}

# install_files puts the binary, the uninstaller, the environment file and the unit in
# place, saying what changed.
install_files() {
	mkdir -p "$root$bin_dir" "${env_file%/*}" "${unit_file%/*}"
	old=
	[ ! -f "$bin" ] || old=$(sha256 "$bin")
	place "$tmp/atoll" "$bin" 755
	if [ -n "$old" ] && [ "$old" != "$sum" ]; then
		say "  upgraded atoll: SHA-256 $old -> $sum"
	fi
	place "$tmp/atoll-uninstall.sh" "$uninstaller" 755
	env_content >"$tmp/env"
	# 600: it may hold a join token.
	place "$tmp/env" "$env_file" 600
	unit_content >"$tmp/unit"
	place "$tmp/unit" "$unit_file" 644
}

# place SRC DEST MODE replaces DEST with SRC by a rename, unless they are the same.
place() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		say "  unchanged $2"
		return 0
	fi
	verb=wrote
	[ ! -e "$2" ] || verb=replaced
	staging=$2.atoll-new
	if ! { cp "$1" "$staging" && chmod "$3" "$staging" && mv -f "$staging" "$2"; }; then
		die "cannot write $2"
	fi
	staging=
	say "  $verb $2"
}

env_content() {
	cat <<EOF
# The atoll $role node, as install.sh from $master_url set it up: run it again to change
# this file. systemd (EnvironmentFile=) and the installer's background start read it;
# atoll $role runs with the flags in ATOLL_ARGS.
ATOLL_MASTER_URL="$master_url"
ATOLL_DATA_DIR="$data_dir"
EOF
	if [ -n "$token" ]; then
		cat <<EOF
# The join token: the node joins the cluster with it when it first starts, and keeps
# what it gets (its certificate, the cluster CA, the gossip key) in $data_dir/pki.
ATOLL_JOIN_TOKEN="$token"
EOF
	fi
	printf 'ATOLL_ARGS="%s"\n' "$args"
}

unit_content() {
	cat <<EOF
[Unit]
Description=Atoll $role
Documentation=$master_url/install.sh
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
EnvironmentFile=$env_file
ExecStart=$bin $role \$ATOLL_ARGS
Restart=always
RestartSec=2
# Tasks outlive the node's process, whose next run recovers them: stopping or restarting
# the unit signals atoll alone.
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0

[Install]
WantedBy=multi-user.target
EOF
}

# boot_command prints the command line that runs the node in the background.
boot_command() {
	printf 'setsid %s %s %s </dev/null >>%s 2>&1 &\n' "$bin" "$role" "$args" "$log_file"
}

# registration prints when the master registered this node's agent (its registration
# times), and fails unless the master lists that agent as active.
registration() {
	line=$(member) || return 1
	case $line in
	*'"status":"alive"'*) ;;
	*) return 1 ;;
	esac
	id=$(printf '%s\n' "$line" | sed -n 's/.*"agent_id":"\([^"]*\)".*/\1/p')
	[ -n "$id" ] || return 1
	agent=$(post "$api_url/api/v1" '{"type":"GET_AGENTS"}' 2>/dev/null | sed 's/{"agent_info":/\
&/g' | grep -F "\"id\":{\"value\":\"$id\"}") || return 1
	case $agent in
	*'"active":true'*) ;;
	*) return 1 ;;
	esac
	printf '%s\n' "$agent" | sed -n 'h;s/.*\("registered_time":{[^}]*}\).*/\1/p;g;s/.*\("reregistered_time":{[^}]*}\).*/\1/p'
}

# member prints the gossip member called $name as the master sees it, in JSON on one line.
member() {
	post "$api_url/api/v1" '{"type":"GET_MEMBERS"}' 2>/dev/null | sed 's/{"name":/\
&/g' | grep -F "{\"name\":\"$name\","
}

# joined says whether the node has joined: a master or lb is an alive gossip member, an
# agent is active on the master, registered since the installer (re)started it.
joined() {
	if [ "$role" = agent ]; then
		now=$(registration) || return 1
		[ "$now" != "$before" ]
		return
	fi
	line=$(member) || return 1
	case $line in
	*'"status":"alive"'*) return 0 ;;
	esac
	return 1
}

# start_node starts the node, or restarts it with what was just installed.
start_node() {
	before=
	if [ "$role" = agent ]; then
		before=$(registration) || before=
	fi
	pid=
	if uses_systemd; then
		# A node an earlier run started without systemd.
		stop_background "$role"
		rm -f "$pid_file"
		systemctl daemon-reload </dev/null || die "systemctl daemon-reload failed"
		systemctl enable "$unit.service" </dev/null 2>/dev/null || die "systemctl enable $unit failed"
		systemctl restart "$unit.service" </dev/null ||
			die "systemctl restart $unit failed: journalctl -u $unit says why"
		say "  started $unit with systemd, enabled at boot: systemctl status $unit, journalctl -u $unit"
		return 0
	fi
	stop_background "$role"
	mkdir -p "${log_file%/*}" "${pid_file%/*}"
	detach='nohup'
	if command -v setsid >/dev/null 2>&1; then
		detach='setsid'
	fi
	(
		set -f
		cd /
		# The node's environment, as systemd's EnvironmentFile= gives it: the join token
		# and the master to join through.
		set -a
		# shellcheck disable=SC1090
		. "$env_file"
		set +a
		# ATOLL_ARGS: one word per flag, as systemd splits it.
		# shellcheck disable=SC2086
		exec "$detach" "$bin" "$role" $args
	) </dev/null >>"$log_file" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$pid_file"
	say "  no systemd here: started $unit in the background, pid $pid"
	say "    log:      $log_file"
	say "    pid file: $pid_file"
	say "  to start it at boot, have your init system run (from /etc/rc.local, say):"
	say "    $(boot_command)"
}

# wait_joined waits until the node has joined, showing a dot a second.
wait_joined() {
	printf '  waiting for %s %s to join the cluster at %s ' "$role" "$name" "$master_url"
	deadline=$(($(date +%s) + timeout))
	polls=0
	until joined; do
		if [ -n "$pid" ] && ! alive "$pid"; then
			printf '\n'
			die "$unit exited before it joined; the end of $log_file:
$(tail -n 20 "$log_file")"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			printf '\n'
			die "$role $name has not joined within ${timeout}s (see $log_file, or journalctl -u $unit under systemd); it stays installed: run the installer again to retry, or $uninstaller to remove it"
		fi
		nap
		polls=$((polls + 1))
		if [ $((polls % 5)) -eq 0 ]; then
			printf .
		fi
	done
	printf ' joined\n'
}

main "$@"
