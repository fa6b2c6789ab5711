#!/bin/sh
# keyring-locked.sh - a locked keyring asks for the unlock: a throwaway D-Bus
# session with its own gnome-keyring-daemon and a private X server (Xvfb)
# where gnome-keyring's real prompter (gcr-prompter) shows the unlock dialog;
# test-keyring, then the mend client, answer or cancel it with xdotool.
# dbus-monitor records the D-Bus traffic: the Prompt calls must be exactly the
# ones asked for (six; none while retrying without a prompt). HOME and XDG
# directories are temporary, so no real keyring is touched (DESIGN §8).
# shellcheck disable=SC2317 # functions run from the EXIT trap
set -eu

for tool in dbus-run-session dbus-monitor gnome-keyring-daemon Xvfb xdotool timeout; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool not installed"
		exit 77
	fi
done
if [ ! -x /usr/libexec/gcr-prompter ] && [ ! -x /usr/lib/gcr/gcr-prompter ]; then
	echo "1..0 # SKIP gcr-prompter (package gcr) not installed"
	exit 77
fi

: "${top_builddir:=$(dirname "$0")/..}"
if [ "${1-}" = in-session ]; then
	tmp=$2
else
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/mend-locked-XXXXXX")
fi
xpid=

# ---- inside the private session ($1 = in-session) ------------------------

# Waits (10 s) for the daemon to own its bus name.
await_daemon() {
	n=0
	until dbus-send --session --print-reply --dest=org.freedesktop.DBus \
		/org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner \
		string:org.freedesktop.secrets >/dev/null 2>&1; do
		n=$((n + 1))
		[ $n -lt 100 ] || { echo "Bail out! no org.freedesktop.secrets"; exit 99; }
		sleep 0.1
	done
}

lock_login() {
	gdbus call --session -d org.freedesktop.secrets -o /org/freedesktop/secrets \
		-m org.freedesktop.Secret.Service.Lock \
		"['/org/freedesktop/secrets/collection/login']" >/dev/null
}

# Answers the next unlock dialog (one xdotool command line per argument) in the
# background; returns once the answerer knows which dialogs are old, so that the
# one the caller makes appear next counts as new (30 s at the most).
answer() {
	: >"$tmp/watching"
	sh "$MEND_ANSWER_PROMPT" "$@" >"$tmp/watching" &
	n=0
	until grep -q watching "$tmp/watching"; do
		n=$((n + 1))
		if [ $n -ge 300 ]; then
			echo "# the answerer never said it was watching"
			break
		fi
		sleep 0.1
	done
}

# The client: exit 5 and the sentence while locked, its fingerprint after the unlock.
cli_checks() {
	if mend fingerprint >"$tmp/fp1" 2>"$tmp/err"; then
		echo "ok - mend opens a new store"
	else
		echo "not ok - mend fingerprint: $(cat "$tmp/err")"
	fi
	lock_login
	answer "key Escape"
	rc=0
	mend fingerprint >/dev/null 2>"$tmp/err" || rc=$?
	wait
	if [ $rc = 5 ] && grep -q "The keyring is locked" "$tmp/err"; then
		echo "ok - prompt cancelled: mend exits 5 and says the keyring is locked"
	else
		echo "not ok - exit $rc, want 5: $(cat "$tmp/err")"
	fi
	answer "type --delay 30 pw" "key Return"
	rc=0
	mend fingerprint >"$tmp/fp2" 2>"$tmp/err" || rc=$?
	wait
	if [ $rc = 0 ] && cmp -s "$tmp/fp1" "$tmp/fp2"; then
		echo "ok - prompt answered: mend opens the store, same identity"
	else
		echo "not ok - exit $rc: $(cat "$tmp/err")"
	fi
	# the XMPP password in the keyring: locked is not "no password"
	printf 'xmpp-pw\n' | mend account add alice@localhost >/dev/null 2>&1
	lock_login
	answer "key Escape"
	rc=0
	mend send bob@localhost hi >/dev/null 2>"$tmp/err" || rc=$?
	wait
	if [ $rc = 5 ] && grep -q "The keyring is locked" "$tmp/err"; then
		echo "ok - password prompt cancelled: mend exits 5 and says the keyring is locked"
	else
		echo "not ok - exit $rc, want 5: $(cat "$tmp/err")"
	fi
}

mend() {
	"$top_builddir/mend" --jid alice@localhost --data-dir "$tmp/cli" "$@"
}

if [ "${1-}" = in-session ]; then
	eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)"
	await_daemon
	dbus-monitor --session >"$tmp/monitor" 2>&1 &
	mon=$!
	# the monitor is in place once it lost its name (BecomeMonitor)
	n=0
	until grep -q "member=NameLost" "$tmp/monitor" 2>/dev/null || [ $n -ge 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	rc=0
	"$top_builddir/tests/test-keyring" locked >"$tmp/tap" || rc=$?
	cat "$tmp/tap"
	[ $rc = 0 ] && cli_checks | tee -a "$tmp/tap"
	kill "$mon"
	! grep -q "^not ok" "$tmp/tap" && exit $rc
	exit 1
fi

# ---- outside: the X server, then this script again in a private session ---

MEND_ANSWER_PROMPT="${top_srcdir:-$(dirname "$0")/..}/tests/answer-prompt.sh"
export MEND_ANSWER_PROMPT

cleanup() {
	[ -n "$xpid" ] && kill "$xpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' INT TERM HUP

# shellcheck source=tests/private-home.sh
. "${top_srcdir:-$(dirname "$0")/..}/tests/private-home.sh"

# A free display number: Xvfb writes it once it accepts connections.
Xvfb -displayfd 3 -nolisten tcp -screen 0 800x600x24 3>"$tmp/display" >"$tmp/xvfb.log" 2>&1 &
xpid=$!
n=0
while [ ! -s "$tmp/display" ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
if [ ! -s "$tmp/display" ]; then
	echo "Bail out! Xvfb did not start: $(cat "$tmp/xvfb.log")"
	exit 99
fi
DISPLAY=":$(cat "$tmp/display")"
export DISPLAY

status=0
timeout 120 dbus-run-session -- sh "$0" in-session "$tmp" || status=$?
prompts=$(grep -c "interface=org.freedesktop.Secret.Prompt; member=Prompt$" "$tmp/monitor" || :)
echo "# D-Bus Prompt calls seen: $prompts"
if [ "$status" -eq 0 ] && [ "$prompts" != 6 ]; then
	echo "Bail out! expected 6 Prompt calls on the bus (3 test-keyring, 3 mend), saw $prompts"
	status=1
fi
exit "$status"
