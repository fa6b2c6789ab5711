#!/bin/sh
# format.sh - every C file is formatted with the repo's .clang-format (DESIGN §6).
set -u
top_srcdir=${top_srcdir:-$(dirname "$0")/..}
if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format is not installed"
	exit 77
fi
cd "$top_srcdir" || exit 99
files=$(find include src tests demo -name '*.[ch]' 2>/dev/null | sort)
bad=0
n=0
for f in $files; do
	n=$((n + 1))
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "not ok $n - $f is not formatted: run clang-format -i $f"
		bad=$((bad + 1))
	else
		echo "ok $n - $f"
	fi
done
echo "1..$n"
[ "$bad" -eq 0 ]
