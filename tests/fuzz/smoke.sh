#!/bin/sh
# smoke.sh - runs libFuzzer targets (a build configured with --enable-fuzzing) one after
# the other, each from its seeds and regression inputs, and prints libFuzzer's final
# line per target. Fails if one finds a crash, a leak or a sanitizer report (the input
# is left as crash-*/leak-* in the work folder, named in the output).
#   tests/fuzz/smoke.sh BUILDDIR [TARGET...]      (default: all targets)
# Environment: FUZZ_SECONDS (default 20) per target; FUZZ_RUNS=N: N executions (and at
# most FUZZ_SECONDS when both are set);
# FUZZ_WORK: where new inputs go (default BUILDDIR/tests/fuzz/runs/TARGET, kept, so a
# longer run goes on from the last; a failing input is written as WORK/TARGET-crash-*);
# FUZZ_TIMEOUT: seconds one input may take (default 10; a long run that is paused with
# SIGSTOP needs more, or the pause counts as a hang).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: smoke.sh BUILDDIR [TARGET...]}
shift
targets=${*:-legacy omemo2 sce b64 link unseal uri stanza}
work=${FUZZ_WORK:-$build/tests/fuzz/runs}
if [ -n "${FUZZ_RUNS:-}" ]; then
	limit="-runs=$FUZZ_RUNS -max_total_time=${FUZZ_SECONDS:-0}"
else
	limit="-max_total_time=${FUZZ_SECONDS:-20}"
fi
status=0
for t in $targets; do
	case $t in
	link | uri) len=512 dict=uri.dict ;;
	b64 | unseal) len=1024 dict= ;;
	*) len=4096 dict=xmpp.dict ;;
	esac
	mkdir -p "$work/$t"
	set -- "$work/$t" "$here/corpus/$t"
	[ -d "$here/regress/$t" ] && set -- "$@" "$here/regress/$t"
	[ -n "$dict" ] && set -- -dict="$here/dict/$dict" "$@"
	log="$work/$t.log"
	start=$(date +%s)
	"$build/tests/fuzz/fuzz-$t" $limit -max_len=$len -rss_limit_mb=2048 \
		-timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="$work/$t-" -print_final_stats=1 "$@" \
		>"$log" 2>&1
	rc=$?
	end=$(date +%s)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	final=$(grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -1)
	echo "fuzz-$t: ${runs:-?} executions in $((end - start)) s; ${final:-no final line}"
	if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "fuzz-$t FAILED (exit $rc); the input and the report:"
		grep -E 'Test unit written to|SUMMARY|runtime error' "$log" | head -5
		tail -40 "$log" | sed 's/^/# /'
		status=1
	fi
done
exit $status
