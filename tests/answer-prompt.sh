#!/bin/sh
# answer-prompt.sh - plays the user at gnome-keyring's unlock dialog (gcr-prompter
# on the test's private X server): waits up to 30 s for a visible "Unlock"
# window that was not there when it started (a dialog just answered may still
# be closing), then runs `xdotool ARG` for each argument, e.g.
#   answer-prompt.sh "type --delay 30 pw" "key Return"     (unlock)
#   answer-prompt.sh "key Escape"                          (cancel)
# With --present first, a dialog already on screen counts too. It prints a line
# ("# answer-prompt: watching") once it knows which windows are old: a caller
# that makes the dialog appear waits for that line first, or the dialog could
# be taken for an old one.
# The dialog grabs the keyboard, so the keys reach it without a window manager.
set -u

windows() {
	xdotool search --onlyvisible --name Unlock 2>/dev/null | sort
}

old=$(windows)
if [ "${1-}" = --present ]; then
	old=
	shift
fi
# the caller may now make the dialog appear: it is new to us from here on
echo "# answer-prompt: watching"
exec >/dev/null # a caller may close its end once it has read that
n=0
while :; do
	new=$(windows | while read -r w; do
		printf '%s\n' "$old" | grep -qx "$w" || echo "$w"
	done)
	[ -n "$new" ] && break
	n=$((n + 1))
	if [ $n -ge 300 ]; then
		echo "answer-prompt: no new unlock dialog within 30 s" >&2
		exit 1
	fi
	sleep 0.1
done
for a in "$@"; do
	# shellcheck disable=SC2086 # each argument is one xdotool command line
	xdotool $a || exit 1
done
