#!/bin/sh
# exports.sh - the core exports only its public API: every dynamic symbol of a
# shared object built from it is a function declared with MEND_EXPORT in
# include/mend/mend.h (one prefix, hidden visibility for everything else).
set -u
top_srcdir=${top_srcdir:-$(dirname "$0")/..}
top_builddir=${top_builddir:-.}
so="$top_builddir/tests/.libs/libmend-exports.so"
if [ ! -f "$so" ]; then
	echo "not ok 1 - $so was not built"
	exit 99
fi
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u)
declared=$(grep -v '^#' "$top_srcdir/include/mend/mend.h" | grep -o 'MEND_EXPORT [^(]*(' |
	sed 's/($//; s/.*[ *]//' | sort -u)
fail=0
extra=$(printf '%s\n' "$exported" | grep -vxF "$declared" | grep -v '^_' || true)
if [ -n "$extra" ]; then
	echo "not ok 1 - symbols exported but not in the public API:"
	printf '#   %s\n' $extra
	fail=1
else
	echo "ok 1 - only public API symbols are exported ($(printf '%s\n' "$exported" | grep -c .))"
fi
missing=$(printf '%s\n' "$declared" | grep -vxF "$exported" || true)
if [ -n "$missing" ]; then
	echo "not ok 2 - declared but not exported:"
	printf '#   %s\n' $missing
	fail=1
else
	echo "ok 2 - every public API function is exported"
fi
case "$(printf '%s\n' "$declared" | grep -v '^mend_' || true)" in
"") echo "ok 3 - every public name has the mend_ prefix" ;;
*) echo "not ok 3 - a public name without the mend_ prefix"; fail=1 ;;
esac
echo "1..3"
exit $fail
