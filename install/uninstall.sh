#!/bin/sh
# Removes what Atoll's install.sh installed on this machine:
#
#   atoll-uninstall.sh [master|agent|lb ...]
#
# For each role given (by default every one installed) it stops the node and removes its
# systemd unit or pid file, environment file, log and data directory: the node's state,
# with which an agent's tasks end. Once no role is left, it removes atoll and itself.
#
# install.sh writes its ATOLL_INSTALL_ROOT and ATOLL_INSTALL_BIN_DIR into the copy it
# installs; the copy a master serves at /atoll-uninstall.sh reads them from the environment.
set -eu

root=${ATOLL_INSTALL_ROOT-} bin_dir=${ATOLL_INSTALL_BIN_DIR:-/usr/local/bin} # @install-settings

prog=atoll-uninstall

# @lib.sh

main() {
	root=${root%/}
	[ -z "$root" ] || check_path ATOLL_INSTALL_ROOT "$root"
	check_path ATOLL_INSTALL_BIN_DIR "$bin_dir"
	bin=$root$bin_dir/atoll
	for r in "$@"; do
		case $r in
		master | agent | lb) ;;
		*) die "unknown role '$r': want master, agent or lb" ;;
		esac
	done
	if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
		die "run it as root (sudo $0): it removes files from $bin_dir, /etc and /var"
	fi
	if [ $# -eq 0 ]; then
		for r in master agent lb; do
			set_paths "$r"
			if [ -e "$env_file" ] || [ -e "$unit_file" ] || [ -e "$pid_file" ]; then
				set -- "$@" "$r"
			fi
		done
		[ $# -gt 0 ] || say "no atoll node is installed under ${root:-/}"
	fi
	for r in "$@"; do
		remove_role "$r"
	done
	if uses_systemd; then
		systemctl daemon-reload </dev/null
	fi
	for r in master agent lb; do
		set_paths "$r"
		if [ -e "$env_file" ]; then
			say "kept $bin: the atoll $r is still installed"
			return 0
		fi
	done
	for f in "$bin" "$root$bin_dir/atoll-uninstall.sh"; do
		if [ -e "$f" ]; then
			rm -f "$f"
			say "removed $f"
		fi
	done
	if rmdir "$root/etc/atoll" 2>/dev/null; then
		say "removed $root/etc/atoll"
	fi
}

# remove_role ROLE stops ROLE's node and removes its files.
remove_role() {
	say "removing the atoll $1"
	set_paths "$1"
	data_dir=
	if [ -f "$env_file" ]; then
		data_dir=$(sed -n 's/^ATOLL_DATA_DIR="\(.*\)"$/\1/p' "$env_file")
	fi
	if uses_systemd && [ -f "$unit_file" ]; then
		systemctl disable --now "$unit.service" </dev/null >/dev/null 2>&1 || true
		say "  stopped and disabled $unit"
	fi
	stop_background "$1"
	for f in "$unit_file" "$env_file" "$log_file" "$pid_file"; do
		if [ -e "$f" ]; then
			rm -f "$f"
			say "  removed $f"
		fi
	done
	# Only a directory atoll made: it wrote its node id there.
	case $data_dir in
	'' | / | "$root") return 0 ;;
	esac
	if [ -f "$data_dir/node-id" ]; then
		# A task writing its log may add a file while rm runs; the second pass comes after
		# the tasks have ended.
		rm -rf "$data_dir" 2>/dev/null || {
			sleep 2
			rm -rf "$data_dir"
		}
		say "  removed $data_dir (the node's state; an agent's tasks end with it)"
	fi
}

main "$@"
