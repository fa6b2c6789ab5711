#!/bin/sh
# fuzz-smoke.sh - the fuzzing step of `./run test` (tests/fuzz/README.md): builds the
# core and the libFuzzer targets with clang in build-fuzz/ (--enable-fuzzing: ASan and
# UBSan too), replays every seed and regression input, then fuzzes each target for
# FUZZ_SECONDS (default 20) seconds. Skipped, saying so, when clang is not installed
# (scripts/deps.sh installs it).
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null 2>&1; then
	echo "fuzzing skipped: no clang (scripts/deps.sh installs clang and libclang-rt-14-dev)"
	exit 0
fi
mkdir -p build-fuzz
cd build-fuzz
if [ ! -f Makefile ] || [ ../configure -nt Makefile ]; then
	CC=clang ../configure --enable-fuzzing >configure.out 2>&1 || {
		tail -20 configure.out
		echo "fuzzing: configure --enable-fuzzing failed"
		exit 1
	}
fi
targets=""
for t in legacy omemo2 sce b64 link unseal uri stanza; do
	targets="$targets tests/fuzz/fuzz-$t"
done
# shellcheck disable=SC2086
make -s -j"$(nproc 2>/dev/null || echo 2)" $targets >make.out 2>&1 || {
	tail -40 make.out
	echo "fuzzing: the targets did not build"
	exit 1
}
top_srcdir=.. top_builddir=. sh ../tests/fuzz/replay.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-20} sh ../tests/fuzz/smoke.sh "$PWD"
