#!/bin/sh
# keyring-secret.sh - the store key in a real Secret Service: a throwaway
# D-Bus session with its own gnome-keyring-daemon, unlocked with a known
# password, under a temp HOME and XDG directories so that no real keyring is
# touched (DESIGN §8). The daemon is gone afterwards (checked by its PID).
# shellcheck disable=SC2317 # functions run from the EXIT trap
set -eu

for tool in dbus-run-session gnome-keyring-daemon timeout; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool not installed"
		exit 77
	fi
done

: "${top_builddir:=$(dirname "$0")/..}"
prog="$top_builddir/tests/test-keyring"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mend-keyring-XXXXXX")
pidfile="$tmp/daemon.pid"

# Whether process $1 is alive (a zombie waiting for its reaper is not).
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)
	[ "$state" != Z ]
}

# The daemon leaves when its bus goes away; make sure, by its PID.
stop_daemon() {
	pid=$(cat "$pidfile" 2>/dev/null || :)
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	n=0
	while alive "$pid" && [ "$n" -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if alive "$pid" && grep -q '^gnome-keyring' "/proc/$pid/comm" 2>/dev/null; then
		echo "# gnome-keyring-daemon $pid outlived its bus; killing it"
		kill "$pid" 2>/dev/null || :
	fi
}

cleanup() {
	stop_daemon
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' INT TERM HUP

# shellcheck source=tests/private-home.sh
. "${top_srcdir:-$(dirname "$0")/..}/tests/private-home.sh"

status=0
# The daemon claims its bus name a little after --unlock returns: wait for
# it (and note its PID), or the first lookup would activate a second daemon.
# shellcheck disable=SC2016 # expanded by the inner shell
timeout 60 dbus-run-session -- sh -c '
	eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)"
	if command -v dbus-send >/dev/null 2>&1; then
		n=0
		pid=
		while [ -z "$pid" ] && [ $n -lt 100 ]; do
			[ $n -gt 0 ] && sleep 0.1
			pid=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus \
				/org/freedesktop/DBus \
				org.freedesktop.DBus.GetConnectionUnixProcessID \
				string:org.freedesktop.secrets 2>/dev/null |
				sed -n "s/^ *uint32 \([0-9][0-9]*\).*/\1/p")
			n=$((n + 1))
		done
		echo "$pid" >"$1"
	fi
	exec "$2" secret
' sh "$pidfile" "$prog" || status=$?
exit "$status"
