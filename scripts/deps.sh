#!/bin/sh
# deps.sh - installs the Debian 12 packages mend needs to build, test and run
# its demo, when they are missing. Needs root (or sudo) only when something is
# missing.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config gettext autopoint
libomemo-c-dev libsignal-protocol-c-dev libstrophe-dev libexpat1-dev libgcrypt20-dev libxml2-dev libglib2.0-dev
libsqlite3-dev libsecret-1-dev gnome-keyring dbus dbus-daemon binutils clang-format
prosody openssl python3-slixmpp python3-omemo python3-oldmemo python3-twomemo
python3-xmlschema profanity tmux libpurple-dev finch libqrencode-dev gcr xvfb xdotool
pidgin pidgin-dev openbox imagemagick libcurl4-openssl-dev python3-cryptography
clang libclang-rt-14-dev
man-db groff-base debhelper dpkg-dev fakeroot lintian"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "These Debian packages are missing:$missing" >&2
		echo "Install them as root: apt-get install$missing" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
