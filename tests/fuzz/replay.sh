#!/bin/sh
# replay.sh - runs every fuzz target once over its seeds (corpus/TARGET/) and its
# regression inputs (regress/TARGET/: inputs that once crashed it; they must pass now).
# Built with libFuzzer, -runs=0 replays the folders without fuzzing; without it,
# driver.c runs the same files. Fails on the first target that crashes or aborts.
set -u
src=${top_srcdir:-.}/tests/fuzz
bin=${top_builddir:-.}/tests/fuzz
echo "1..8"
i=0
status=0
for t in legacy omemo2 sce b64 link unseal uri stanza; do
	i=$((i + 1))
	dirs="$src/corpus/$t"
	[ -d "$src/regress/$t" ] && dirs="$dirs $src/regress/$t"
	n_reg=$(ls "$src/regress/$t" 2>/dev/null | wc -l)
	# shellcheck disable=SC2086
	if "$bin/fuzz-$t" -runs=0 $dirs >"$bin/replay-$t.out" 2>&1; then
		echo "ok $i - fuzz-$t: seeds and $n_reg regression inputs pass"
	else
		echo "not ok $i - fuzz-$t failed on an input:"
		tail -30 "$bin/replay-$t.out" | sed 's/^/# /'
		status=1
	fi
done
exit $status
