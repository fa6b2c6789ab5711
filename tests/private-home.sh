# private-home.sh - sourced by the keyring tests: HOME and the XDG directories
# under "$tmp" (which the caller made and removes), and no way to a keyring
# daemon or bus of the real session (DESIGN §8).
# shellcheck shell=sh disable=SC2154 # tmp is the caller's
export HOME="$tmp/home"
export XDG_DATA_HOME="$HOME/.local/share" XDG_CONFIG_HOME="$HOME/.config"
export XDG_CACHE_HOME="$HOME/.cache" XDG_RUNTIME_DIR="$tmp/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$tmp" "$XDG_RUNTIME_DIR"
unset GNOME_KEYRING_CONTROL GNOME_KEYRING_PID DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY
