#!/bin/sh
# bench-omemo2.sh - section 9 of mend-bench (one message for 100 OMEMO:2 devices against
# one for 100 legacy devices, bench/README.md) works, in a short run: both rows are
# printed, the sessions were answered in both versions (no key exchange in either
# stanza) and the OMEMO:2 stanza is there. Figures are not judged here. A build on
# libsignal-protocol-c (legacy only) must say that it skips the section.
set -u
top_srcdir=${top_srcdir:-..}
top_builddir=${top_builddir:-.}
bench="$top_builddir/bench/mend-bench"
. "$top_srcdir/tests/tap.sh"

[ -x "$bench" ] || {
	echo "Bail out! $bench is not built"
	exit 99
}
out=$("$bench" -n --only=omemo2 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "mend-bench -n --only=omemo2 exits 0"; else not_ok "mend-bench exits $rc"; fi
if [ "${MEND_SIGNAL:-libomemo-c}" = "libsignal-protocol-c" ]; then
	case $out in
	*"skipped: this build is legacy OMEMO only"*) ok "a legacy-only build skips the section" ;;
	*) not_ok "a legacy-only build does not say it skips the section" ;;
	esac
else
	for row in "legacy OMEMO (eu.siacs.conversations.axolotl)" "OMEMO:2 (urn:xmpp:omemo:2)"; do
		if printf '%s\n' "$out" | grep -A1 -F "  $row" | grep -Eq '^ +100 +[0-9.]+ \('; then
			ok "a row for 100 devices: $row"
		else
			not_ok "no row for 100 devices: $row"
		fi
	done
	if printf '%s\n' "$out" | grep -Eq 'stanza: OMEMO:2 [1-9][0-9]* bytes, legacy [1-9][0-9]* bytes \(key exchanges in them: 0, 0\)'; then
		ok "both stanzas made, every session answered (no key exchange)"
	else
		not_ok "the stanza line is missing or shows key exchanges"
	fi
fi
[ $fail -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
tap_end
