# What install.sh and atoll-uninstall.sh share; the master splices it into both where they
# say "@lib.sh". It expects $prog (for messages) and $root (the path prefix) to be set.

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

say() {
	printf '%s\n' "$*"
}

# nap waits a fifth of a second (a second where sleep takes whole seconds only).
nap() {
	sleep 0.2 2>/dev/null || sleep 1
}

# check_path NAME VALUE fails unless VALUE is an absolute path made only of characters
# that a systemd unit, the environment file and a sed replacement all take literally.
check_path() {
	case $2 in
	/*) ;;
	*) die "$1=$2: want an absolute path" ;;
	esac
	case $2 in
	*[!A-Za-z0-9._/+@:,-]*) die "$1=$2: only letters, digits and . _ / + @ : , - may appear in it" ;;
	esac
}

# set_paths ROLE sets where the node of ROLE keeps its files.
set_paths() {
	unit=atoll-$1
	env_file=$root/etc/atoll/$1.env
	unit_file=$root/etc/systemd/system/$unit.service
	log_file=$root/var/log/$unit.log
	pid_file=$root/run/$unit.pid
}

# uses_systemd says whether nodes run under systemd: it manages this machine (the test of
# sd_booted) and the paths are the machine's, not under a test root.
uses_systemd() {
	[ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# alive PID says whether the process PID runs: it exists and has not exited (a zombie
# waiting for its parent has).
alive() {
	state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# node_pid ROLE prints the pid in $pid_file when that process runs $bin as ROLE's node:
# a pid file outliving its process must not stop whatever reuses the pid.
node_pid() {
	[ -f "$pid_file" ] || return 1
	p=$(cat "$pid_file")
	case $p in
	'' | *[!0-9]*) return 1 ;;
	esac
	alive "$p" || return 1
	cmdline=$(tr '\000' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
	case $cmdline in
	"$bin $1 "*) printf '%s\n' "$p" ;;
	*) return 1 ;;
	esac
}

# stop_background ROLE stops the node of ROLE that the installer started without
# systemd, if it runs: SIGTERM, and SIGKILL after 30 seconds. An agent leaves its tasks
# running; the next agent recovers them.
stop_background() {
	p=$(node_pid "$1") || return 0
	kill -TERM "$p" 2>/dev/null || true
	naps=0
	while alive "$p" && [ "$naps" -lt 150 ]; do
		nap
		naps=$((naps + 1))
	done
	if alive "$p"; then
		kill -KILL "$p" 2>/dev/null || true
		while alive "$p"; do
			nap
		done
		say "  killed $unit (pid $p): it had not stopped 30s after SIGTERM"
		return 0
	fi
	say "  stopped $unit (pid $p)"
}
