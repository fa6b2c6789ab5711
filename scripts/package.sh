#!/bin/sh
# package.sh - run from a configured build directory (./run package does): make
# distcheck, then the Debian packages built from the tarball it checked, in a
# temporary directory, then lintian on them. Fails on a distcheck failure, a
# package that does not build, or any lintian error or warning. Prints the times.
set -eu
jobs=$(nproc 2>/dev/null || echo 2)
now() { date +%s; }

t0=$(now)
if ! make -j"$jobs" distcheck >distcheck.out 2>&1; then
	grep -E '^(FAIL|ERROR)|ERROR:|Error [0-9]' distcheck.out | head -20
	for t in $(sed -n 's/^\(FAIL\|ERROR\): \([^ ]*\).*/\2/p' distcheck.out); do
		echo "----- $t.log (in the distcheck tree)"
		find . -path "*/_build/*/${t%.*}.log" -exec tail -40 {} \; 2>/dev/null || true
	done
	tail -20 distcheck.out
	echo "make distcheck FAILED (build dir: distcheck.out)"
	exit 1
fi
t1=$(now)
tarball=$(sed -n 's/^\(mend-[0-9.]*\.tar\.gz\) is ready for distribution.*/\1/p' distcheck.out |
	tail -1)
[ -n "$tarball" ] || tarball=$(ls -t mend-*.tar.gz | head -1)
echo "make distcheck: passed in $((t1 - t0)) s ($tarball)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mend-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp"
src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'mend-*')
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
	dpkg-buildpackage -us -uc -b -Pnocheck) >deb.out 2>&1; then
	tail -40 deb.out
	echo "dpkg-buildpackage FAILED (build dir: deb.out)"
	exit 1
fi
t2=$(now)
echo "dpkg-buildpackage -b: built in $((t2 - t1)) s:" $(cd "$tmp" && ls ./*.deb | sed 's|^\./||')
for deb in "$tmp"/*.deb; do
	case "$deb" in *-dbgsym_*) continue ;; esac
	echo "  $(basename "$deb"):"
	dpkg-deb -c "$deb" | awk '$6 !~ /\/$/ && $6 !~ /usr\/share\/doc/ { print "    " substr($6, 2) }'
done
cp "$tmp"/*.deb .
status=0
lintian --fail-on error,warning "$tmp"/*.changes >lintian.out 2>&1 || status=$?
t3=$(now)
grep -v '^running with root privileges' lintian.out || true
if [ "$status" != 0 ]; then
	echo "lintian FAILED (status $status; build dir: lintian.out)"
	exit 1
fi
echo "lintian: no error, no warning ($((t3 - t2)) s); the .debs are in $(pwd)"
