#!/bin/sh
# keyring-nodbus.sh - the store key with no Secret Service reachable: a
# session bus address that leads nowhere and no display to autolaunch one,
# so mend must fall back to the 0600 key file quickly (no hang: timeout).
# test-keyring itself points HOME and the XDG directories at a temp dir.
set -eu

: "${top_builddir:=$(dirname "$0")/..}"
prog="$top_builddir/tests/test-keyring"

if ! command -v timeout >/dev/null 2>&1; then
	echo "1..0 # SKIP timeout(1) not installed"
	exit 77
fi

exec env -u DISPLAY -u WAYLAND_DISPLAY \
	DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/mend-no-bus \
	timeout 60 "$prog" nodbus
