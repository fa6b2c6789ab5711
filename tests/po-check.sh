#!/bin/sh
# po-check.sh - each catalogue in po/LINGUAS passes `msgfmt --check` (formats,
# header, plural forms) and is complete: no untranslated or fuzzy message.
# Messages the sources have and a catalogue still lacks are listed as a note, not a
# failure (a new string must not block a change before a translator has seen it):
# `make -C po update-po` merges them in, untranslated, and from then on this fails
# until they are translated.
set -u
top_srcdir=${top_srcdir:-$(dirname "$0")/..}
if ! command -v msgfmt >/dev/null 2>&1 || ! command -v xgettext >/dev/null 2>&1; then
	echo "1..0 # SKIP gettext's tools are not installed"
	exit 77
fi
cd "$top_srcdir" || exit 99
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
# the same extraction as po/Makevars' XGETTEXT_OPTIONS
xgettext --default-domain=mend --add-comments=TRANSLATORS: --keyword=_ --keyword=N_ \
	--from-code=UTF-8 --language=C --files-from=po/POTFILES.in -o "$tmp/mend.pot" \
	2>"$tmp/xgettext.log" || {
	cat "$tmp/xgettext.log"
	exit 99
}
n=0
bad=0
for l in $(sed -e 's/#.*//' po/LINGUAS); do
	n=$((n + 1))
	why=""
	if ! out=$(msgfmt --check --statistics -o /dev/null "po/$l.po" 2>&1); then
		why="msgfmt --check: $out"
	elif echo "$out" | grep -Eq 'fuzzy|untranslated'; then
		why="not complete: $out"
	fi
	if ! new=$(msgcmp "po/$l.po" "$tmp/mend.pot" 2>&1); then
		echo "$new" | sed "s/^/# po\/$l.po lacks: /"
	fi
	if [ -n "$why" ]; then
		echo "not ok $n - po/$l.po"
		echo "$why" | sed 's/^/# /'
		bad=$((bad + 1))
	else
		echo "ok $n - po/$l.po: $out"
	fi
done
echo "1..$n"
[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
