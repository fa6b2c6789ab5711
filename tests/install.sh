#!/bin/sh
# install.sh - `make install DESTDIR=...` puts every file under DESTDIR, where configure
# said: the client, the manual pages, the Profanity plugin and its module (the plugin
# knows the module's installed path), the libpurple plugin and Pidgin's. With the
# default directories (no --with-*-plugindir) every file is under the prefix too.
set -u
# a make of our own, not a part of the `make check` that runs this test
unset MAKEFLAGS MFLAGS MAKELEVEL
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-..}
. "$top_srcdir/tests/tap.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mend-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/dest"
if ! make -C "$top_builddir" -s install DESTDIR="$dest" >"$tmp/install.out" 2>&1; then
	tail -30 "$tmp/install.out" | sed 's/^/# /'
	echo "Bail out! make install DESTDIR=... failed"
	exit 99
fi

var() { # the value of a make variable of the build, expanded
	make -C "$top_builddir" -s --no-print-directory -f Makefile -f - print-var V="$1" <<'EOF'
print-var:
	@echo '$($(V))'
EOF
}
prefix=$(var prefix)
expect="$(var bindir)/mend
$(var mandir)/man1/mend.1
$(var mandir)/man7/mend-plugins.7
$(var pkglibdir)/mend-profanity-module.so
$(var PROFANITY_PLUGINDIR)/mend.so
$(var PURPLE_PLUGINDIR)/mend-purple.so"
if grep -q '^pidginplugin_LTLIBRARIES = mend-pidgin.la' "$top_builddir/Makefile"; then
	expect="$expect
$(var PIDGIN_PLUGINDIR)/mend-pidgin.so"
fi

missing=""
for f in $expect; do
	[ -f "$dest$f" ] || missing="$missing $f"
done
if [ -z "$missing" ]; then
	ok "make install DESTDIR: $(echo $expect | wc -w) files where configure said, inside DESTDIR"
else
	not_ok "not installed inside DESTDIR:$missing"
	(cd "$dest" && find . -type f | sed 's/^/#   /')
fi

# with the default directories, nothing is outside the prefix
if grep -q -- '--with-[a-z]*-plugindir' "$top_builddir/config.status"; then
	ok "# SKIP the build names its own plugin dirs (--with-*-plugindir)"
else
	outside=$(cd "$dest" && find . -type f | sed 's/^\.//' | grep -v "^$prefix/" || true)
	if [ -z "$outside" ]; then
		ok "every installed file is under the prefix $prefix"
	else
		not_ok "installed outside the prefix $prefix:" $outside
	fi
fi

# the plugin finds its module at the installed path
module="$(var pkglibdir)/mend-profanity-module.so"
if grep -q -a -F "$module" "$dest$(var PROFANITY_PLUGINDIR)/mend.so" 2>/dev/null; then
	ok "the installed mend.so loads its module from $module"
else
	not_ok "the installed mend.so does not name $module"
fi

# the installed files are really what the hosts can open
if nm -D --defined-only "$dest$(var PURPLE_PLUGINDIR)/mend-purple.so" 2>/dev/null |
	grep -q ' purple_init_plugin$'; then
	ok "the installed mend-purple.so is a libpurple plugin (purple_init_plugin)"
else
	not_ok "the installed mend-purple.so exports no purple_init_plugin"
fi

tap_end
