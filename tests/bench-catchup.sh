#!/bin/sh
# bench-catchup.sh - section 4 of mend-bench (catch-up through the engine, bench/README.md)
# works, in a short run: the engine rows (archive ids in order, and random; in one page,
# and in the server's pages of 50, each but the last with a <fin/> asking for more; the last
# again once the history holds 10 times as many rows, with random keys) and both
# reference rows (mend_account_decrypt, the bare ratchet decrypt) are printed with figures,
# the host saw every message of each engine run once and none undecryptable, each stored
# its last result as its position, and the engine's median is given as a multiple of the
# bare ratchet's.
# Figures are not judged here.
set -u
top_srcdir=${top_srcdir:-..}
top_builddir=${top_builddir:-.}
bench="$top_builddir/bench/mend-bench"
. "$top_srcdir/tests/tap.sh"

[ -x "$bench" ] || {
	echo "Bail out! $bench is not built"
	exit 99
}
out=$("$bench" -n --only=catchup 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "mend-bench -n --only=catchup exits 0"; else not_ok "mend-bench exits $rc"; fi
for row in "engine: handle_stanza + fin" "same, random archive ids" \
	"ids in order, pages of 50" "random ids, pages of 50" "same, 10000 rows kept before" \
	"reference: mend_account_decrypt" "reference: bare ratchet decrypt"; do
	if printf '%s\n' "$out" | grep -F "  $row" | grep -Eq ' 1000 +[0-9.]+ \( *[0-9.]+\) +[0-9.]+ +[0-9]+ '; then
		ok "a row of 1000 messages: $row"
	else
		not_ok "no row of 1000 messages: $row"
	fi
done
runs=$(printf '%s\n' "$out" | grep -c 'engine events: 1000 MESSAGE (0 with another body), 0 UNDECRYPTABLE, 1 CATCHUP_DONE')
if [ "$runs" -eq 5 ]; then
	ok "in the 5 engine runs the host saw every message, none undecryptable, the catch-up done"
else
	not_ok "$runs engine events lines as they should be, of the 5 runs"
fi
if printf '%s\n' "$out" | grep -q 'catch-up position stored: ARCHIVE-ID-1000$' &&
	printf '%s\n' "$out" | grep -q 'catch-up position stored: ARCHIVE-P50-1000$' &&
	[ "$(printf '%s\n' "$out" | grep -Ec 'catch-up position stored: [0-9a-f-]{36}-1000$')" -eq 3 ]; then
	ok "each run stored its last result's id as its position"
else
	not_ok "a run did not store its last result's id"
fi
if printf '%s\n' "$out" | grep -Eq 'engine median / bare ratchet median: [0-9]+\.[0-9]'; then
	ok "the engine's median as a multiple of the bare ratchet's"
else
	not_ok "no multiple of the bare ratchet's median"
fi
[ $fail -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
tap_end
