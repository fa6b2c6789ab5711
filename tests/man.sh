#!/bin/sh
# man.sh - the manual pages: groff has no warning for them (man --warnings), and
# they stay complete: every option of `mend --help` and of each command's --help,
# every command, exit status and environment variable of the CLI is in mend(1);
# every /mend subcommand of both plugins is in mend-plugins(7).
set -u
top_srcdir=${top_srcdir:-..}
top_builddir=${top_builddir:-.}
mend="$top_builddir/mend"
page1="$top_builddir/man/mend.1"
page7="$top_builddir/man/mend-plugins.7"
. "$top_srcdir/tests/tap.sh"

if ! command -v man >/dev/null 2>&1; then
	echo "1..0 # SKIP man (man-db) is not installed; scripts/deps.sh installs it"
	exit 77
fi
for f in "$page1" "$page7" "$mend"; do
	[ -e "$f" ] || {
		echo "Bail out! $f is not built"
		exit 99
	}
done

# groff's warnings (man-db passes -w to troff); any line on stderr is one.
# Besides the pages as configured, the pages with every installation path
# made long (as under distcheck's _inst or a deep --prefix): a path that
# cannot fit a line must not leave groff a line it cannot adjust.
longdir=$(mktemp -d) || exit 99
trap 'rm -rf "$longdir"' EXIT
long=/a/prefix/as/long/as/a/distcheck/or/a/packaging/staging/directory/gives/it/lib/x86_64-linux-gnu/mend/plugins
for src in "$top_srcdir/man/mend.1.in" "$top_srcdir/man/mend-plugins.7.in"; do
	sed "s|@[A-Za-z_]*@|$long|g" "$src" >"$longdir/$(basename "$src" .in)"
done
for page in "$page1" "$page7" "$longdir/mend.1" "$longdir/mend-plugins.7"; do
	case $page in "$longdir"/*) what="$(basename "$page") with long paths" ;; *) what=$(basename "$page") ;; esac
	warn=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
	if [ -z "$warn" ]; then
		ok "man --warnings: $what formats without a warning"
	else
		not_ok "man --warnings: $what:"
		printf '%s\n' "$warn" | sed 's/^/#   /'
	fi
done

# the page's text, hyphens unescaped, as grep sees it
text1=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page1")
text7=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page7")
has() { # has TEXT WORD: WORD appears as a whole word (not as part of a longer option)
	printf '%s\n' "$1" | grep -q -e "\(^\|[^a-z-]\)$2\([^a-z-]\|$\)"
}

# every option that any --help prints
commands=$(sed -n '/^static const struct {/,/^};/s/^ *{"\([a-z]*\)", CMD_.*/\1/p' \
	"$top_srcdir/src/cli/config.c")
[ -n "$commands" ] || not_ok "no command found in src/cli/config.c's table"
opts=$({
	"$mend" --help
	for c in $commands; do "$mend" "$c" --help; done
} 2>&1 | grep -o -e '--[a-z][a-z-]*' | sort -u)
missing=""
for o in $opts; do
	has "$text1" "$o" || missing="$missing $o"
done
if [ -z "$missing" ]; then
	ok "mend(1) names all $(echo $opts | wc -w) options of the --help texts"
else
	not_ok "mend(1) lacks options of --help:$missing"
fi

# every command, as a heading of COMMANDS (.TP then .B/.BI/.BR COMMAND)
missing=""
for c in $commands; do
	printf '%s\n' "$text1" | grep -q -e "^\.B[IR]* \"*$c\( \|\"\|$\)" || missing="$missing $c"
done
if [ -z "$missing" ]; then
	ok "mend(1) describes all $(echo $commands | wc -w) commands"
else
	not_ok "mend(1) does not describe the commands:$missing"
fi

# every exit status of the CLI's contract (src/cli/cli.h enum cli_status)
codes=$(sed -n 's/^\tCLI_[A-Z]* = \([0-9][0-9]*\),.*/\1/p' "$top_srcdir/src/cli/cli.h")
missing=""
for s in $codes; do
	printf '%s\n' "$text1" | sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' | grep -q -x "\.B $s" ||
		missing="$missing $s"
done
if [ -n "$codes" ] && [ -z "$missing" ]; then
	ok "mend(1) EXIT STATUS lists $(echo $codes | wc -w) statuses:" $codes
else
	not_ok "mend(1) EXIT STATUS lacks:$missing (statuses: $(echo $codes))"
fi

# every environment variable the CLI reads
vars=$(grep -h -o 'getenv("[A-Z_]*")' "$top_srcdir"/src/cli/*.c | sed 's/getenv("\(.*\)")/\1/' |
	sort -u)
missing=""
for v in $vars XDG_CONFIG_HOME XDG_DATA_HOME; do
	printf '%s\n' "$text1" | sed -n '/^\.SH ENVIRONMENT/,/^\.SH /p' | grep -q "$v" ||
		missing="$missing $v"
done
if [ -z "$missing" ]; then
	ok "mend(1) ENVIRONMENT names" $vars XDG_CONFIG_HOME XDG_DATA_HOME
else
	not_ok "mend(1) ENVIRONMENT lacks:$missing"
fi

# Profanity's /mend subcommands (the completer's list) and libpurple's (its help text)
subs=$(sed -n '/static char \*subs\[\] = {/,/};/p' "$top_srcdir/src/profanity/module.c" |
	grep -o '"[a-z-]*"' | tr -d '"')
psubs=$(sed -n '/^#define HELP_TEXT/,/^$/p' "$top_srcdir/src/purple/plugin.c" |
	grep -o '/mend [a-z-]*' | sed 's|/mend ||' | sort -u)
[ -n "$subs" ] && [ -n "$psubs" ] || not_ok "no /mend subcommands found in the plugins' sources"
missing=""
for s in $subs; do
	printf '%s\n' "$text7" | sed -n '/^\.SH PROFANITY/,/^\.SH /p' | grep -q -e "/mend.*$s" ||
		missing="$missing $s"
done
for s in $psubs; do
	printf '%s\n' "$text7" | sed -n '/^\.SH PIDGIN AND FINCH/,/^\.SH /p' |
		grep -q -e "/mend[ \"]*$s\|$s" || missing="$missing purple:$s"
done
if [ -z "$missing" ]; then
	ok "mend-plugins(7) has Profanity's /mend" $subs "and libpurple's" $psubs
else
	not_ok "mend-plugins(7) lacks the /mend subcommands:$missing"
fi

# Profanity's plugin settings (the *_KEY names of src/profanity/)
keys=$(sed -n 's/^#define [A-Z_]*_KEY *"\([a-z.-]*\)".*/\1/p' "$top_srcdir"/src/profanity/*.c |
	sort -u)
missing=""
for k in $keys; do
	printf '%s\n' "$text7" | grep -q -F "$k=" || missing="$missing $k"
done
if [ -z "$missing" ]; then
	ok "mend-plugins(7) has Profanity's settings" $keys
else
	not_ok "mend-plugins(7) lacks Profanity's settings:$missing"
fi

# the installed paths were filled in
if grep -n '@[A-Za-z_]*@' "$page1" "$page7"; then
	not_ok "a placeholder is left in a page"
else
	ok "no placeholder left in the pages"
fi

tap_end
