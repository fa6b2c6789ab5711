"""Drive the real Profanity (0.13.1, Debian's /usr/bin/profanity) from tests.

Each `Profanity` runs one profanity process inside its own private tmux server
(`tmux -S <tempdir>/tmux.sock -f <tempdir>/tmux.conf`), with HOME and the XDG_* dirs in
a temp dir, TERM=xterm-256color, a fixed 200x50 window, no D-Bus, and debug
logging.  The account (tls.policy=disable, server 127.0.0.1, the harness's
port) and a quiet profrc are written before start, so nothing depends on
typing the account setup.

    from harness import Prosody, test, main
    from profanity import Profanity

    with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
        with Profanity(srv, "alice") as a, Profanity(srv, "bob") as b:
            a.connect(); b.connect()
            a.say("bob@localhost", "hello bob")
            b.wait_message("alice@localhost", "hello bob")

Every wait has a condition and a time limit; a failed wait raises
AssertionError showing the screen and the tail of Profanity's log.  The
profanity process is stopped by its PID and the tmux server by its socket,
never by name.  Standard library only.
"""

import atexit
import base64
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HarnessError, pid_alive, skip, tail, wait_for  # noqa: E402

__all__ = [
    "Profanity", "profanity_missing", "build_c_plugin", "parse_line", "xmpp_session", "XmppSession",
    "PROFANITY", "TMUX", "OMEMO_NS", "DEVICELIST_NODE", "BUNDLES_NODE",
]

PROFANITY = shutil.which("profanity") or "/usr/bin/profanity"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"

OMEMO_NS = "eu.siacs.conversations.axolotl"
DEVICELIST_NODE = OMEMO_NS + ".devicelist"
BUNDLES_NODE = OMEMO_NS + ".bundles:"      # + device id

# profrc written before start: a quiet, stable screen for tests.  Keys are
# those Profanity 0.13.1 itself writes for the commands in the comments
# (measured with `/save`).
DEFAULT_PREFS = {
    "ui": {
        # Timestamps off in the console etc. (/time console off ...), but ON in
        # chat/MUC/private windows: Profanity prints a message's encryption
        # mark ('~' OMEMO/OTR/PGP, '-' none, or a plugin's char) only together
        # with its timestamp.  Lines then read "HH:MM:SS ~ bob: text".
        "time.console": "off", "time.chat": "%H:%M:%S", "time.muc": "%H:%M:%S",
        "time.config": "off", "time.private": "%H:%M:%S", "time.xmlconsole": "off",
        "time.statusbar": "off",
        # /presence console|chat|room none, /presence titlebar off
        "statuses.console": "none", "statuses.chat": "none", "statuses.muc": "none",
        "presence": "false",
        "beep": "false", "flash": "false",              # /beep off, /flash off
        "intype": "false", "intype.console": "false",   # /intype titlebar|console off
        "wintitle.show": "false",                        # /wintitle show off
        "vercheck": "false",                             # /vercheck off
        "history": "false",   # /history off: a new chat window shows no earlier messages
        "roster": "false",                               # /roster hide
        "occupants": "false",                            # [ui] occupants (MUC side panel)
        "splash": "false",                               # /splash off
        "resource.title": "false", "resource.message": "false",
        "console.chat": "all", "console.private": "all",
        "color.nick": "false",
        "inpblock": "50",                                # /inpblock timeout 50 (snappier input)
    },
    "notifications": {
        "message": "false", "room": "false", "typing": "false",
        "invite": "false", "sub": "false",
    },
    "presence": {"autoaway.mode": "off"},
    "chatstates": {"enabled": "false", "outtype": "false", "gone": "0"},
    "connection": {"receipts.request": "false", "receipts.send": "false", "reconnect": "0"},
    "logging": {"chlog": "true", "grlog": "false"},
}


def profanity_missing():
    """None if profanity (with C plugins + OMEMO) and tmux are usable, else a reason to skip."""
    for exe in (PROFANITY, TMUX):
        if not os.access(exe, os.X_OK):
            return f"{exe} not found (apt-get install -y profanity tmux)"
    try:
        out = subprocess.run([PROFANITY, "--version"], capture_output=True, text=True,
                             timeout=20, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"profanity --version failed: {e}"
    for need in ("C plugins: Enabled", "OMEMO support: Enabled"):
        if need not in out:
            return f"this profanity lacks '{need}'"
    return None


def mend_plugin_or_skip(build):
    """(plugin, module): the build's Profanity plugin and the module it opens. Skips the
    whole test file when they cannot run: no usable Profanity, a sanitizer build (the
    plugin cannot load into Profanity), or the plugin not built."""
    libs = os.path.join(build, ".libs")
    plugin = os.path.join(libs, "mend.so")
    module = os.path.join(libs, "mend-profanity-module.so")
    why = profanity_missing()
    # HOSTS.md: an ASan-built module cannot load into an uninstrumented Profanity; the
    # core runs under the sanitizers through the unit tests and the mend client instead
    if not why and os.environ.get("MEND_SANITIZERS"):
        why = "a sanitizer build: the plugin cannot load into Profanity"
    if not why and not (os.path.exists(plugin) and os.path.exists(module)):
        why = f"{plugin} is not built"
    if why:
        skip(why)
    return plugin, module


def _gkey_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "".join(str(x) + ";" for x in v)
    return str(v)


def _write_keyfile(path, groups):
    with open(path, "w") as f:
        for group, keys in groups.items():
            f.write(f"[{group}]\n")
            for k, v in keys.items():
                f.write(f"{k}={_gkey_value(v)}\n")
            f.write("\n")
    os.chmod(path, 0o600)


_live = set()


@atexit.register
def _cleanup_all():
    for p in list(_live):
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Profanity:
    """One real profanity in a private tmux server.

        Profanity(srv, "alice")                # account alice@srv.host on srv.port
        Profanity(jid="a@localhost", port=5222, password="pw")

    Arguments (all keyword after `user`):
      srv        harness.Prosody (gives host, port); or jid= and port=
      password   account password ("pw")
      resource   resource ("prof")
      account    Profanity account name (default: the user name)
      plugins    paths of .so/.py plugins installed (copied + put in profrc's
                 load list) before start, so they load at start-up
      prefs      {group: {key: value}} merged over DEFAULT_PREFS into profrc
      log_level  "DEBUG" (default; XMPP stanzas are logged too), INFO, WARN, ERROR
      width, height  tmux window size (200x50)
      env        extra environment for profanity
      start      False: don't start in __enter__ (call .start() yourself)

    Paths: .dir (temp root), .home, .config_dir ($XDG_CONFIG_HOME/profanity),
    .data_dir ($XDG_DATA_HOME/profanity), .plugins_dir, .log_path,
    .profrc_path, .accounts_path.  MEND_E2E_KEEP=1 keeps the temp dir.
    """

    def __init__(self, srv=None, user=None, *, password="pw", resource="prof", jid=None,
                 port=None, server="127.0.0.1", account=None, plugins=(), prefs=None,
                 log_level="DEBUG", width=200, height=50, env=None, name=None,
                 start=True, start_timeout=20.0, keep_dir=None):
        if srv is not None:
            if user is None:
                raise HarnessError("Profanity(srv, user): user is required with srv")
            jid = jid or srv.jid(user)
            port = port or srv.port
        if not jid or not port:
            raise HarnessError("Profanity needs srv+user or jid+port")
        self.srv = srv
        self.jid = jid                       # bare JID
        self.user = jid.split("@", 1)[0]
        self.domain = jid.split("@", 1)[1]
        self.password = password
        self.resource = resource
        self.fulljid = f"{jid}/{resource}"
        self.server = server
        self.port = int(port)
        self.account = account or self.user
        self.name = name or self.account
        self.log_level = log_level
        self.width, self.height = width, height
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.keep_dir = bool(os.environ.get("MEND_E2E_KEEP")) if keep_dir is None else keep_dir
        self._autostart = start
        self._prefs = {g: dict(kv) for g, kv in DEFAULT_PREFS.items()}
        for g, kv in (prefs or {}).items():
            self._prefs.setdefault(g, {}).update(kv)
        self._pending_plugins = list(plugins)
        self.pid = None
        self.shell_pid = None
        self.tmux_pid = None
        self.device_id = None
        self.names = {}          # bare JID -> roster name, if not its user name
        self.dir = None
        self._log_mark = 0
        self._stopped = False

    # -- paths ----------------------------------------------------------------

    def _paths(self):
        d = self.dir
        self.home = os.path.join(d, "home")
        self.xdg_config = os.path.join(d, "config")
        self.xdg_data = os.path.join(d, "data")
        self.xdg_cache = os.path.join(d, "cache")
        self.xdg_runtime = os.path.join(d, "run")
        self.config_dir = os.path.join(self.xdg_config, "profanity")
        self.data_dir = os.path.join(self.xdg_data, "profanity")
        self.plugins_dir = os.path.join(self.data_dir, "plugins")
        self.log_path = os.path.join(self.data_dir, "logs", "profanity.log")
        self.profrc_path = os.path.join(self.config_dir, "profrc")
        self.accounts_path = os.path.join(self.data_dir, "accounts")
        self.omemo_dir = os.path.join(self.data_dir, "omemo", self.jid.replace("@", "_at_"))
        self.socket = os.path.join(d, "tmux.sock")
        self.tmux_conf = os.path.join(d, "tmux.conf")
        self.status_path = os.path.join(d, "exit-status")

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self):
        self.prepare()
        if self._autostart:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def prepare(self):
        """Make the temp dirs, accounts file and profrc (idempotent; start() calls it)."""
        if self.dir is not None:
            return
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name)
        self.dir = tempfile.mkdtemp(prefix=f"mend-prof-{safe}-")
        _live.add(self)
        self._paths()
        for p in (self.home, self.xdg_config, self.xdg_data, self.xdg_cache, self.xdg_runtime,
                  self.config_dir, self.data_dir, self.plugins_dir,
                  os.path.dirname(self.log_path)):
            os.makedirs(p, mode=0o700, exist_ok=True)
        _write_keyfile(self.accounts_path, {self.account: {
            "enabled": True, "jid": self.jid, "resource": self.resource,
            "server": self.server, "port": self.port, "password": self.password,
            # no STARTTLS on the harness's Prosody: plain TCP, SCRAM/PLAIN in clear
            "tls.policy": "disable",
            "presence.last": "online", "presence.login": "online",
            "priority.online": 0, "priority.chat": 0, "priority.away": 0,
            "priority.xa": 0, "priority.dnd": 0,
        }})
        for path in self._pending_plugins:
            self.install_plugin(path)
        self._pending_plugins = []
        self._write_profrc()
        with open(self.tmux_conf, "w") as f:
            # read only by our private server: no tmux status line (the pane is
            # the whole width x height), a dead pane stays visible (its last
            # screen and exit status) until stop()
            f.write("set -g status off\n"
                    "set -g remain-on-exit on\n"
                    "set -g history-limit 10000\n"
                    "set -g default-terminal xterm-256color\n"
                    "set -g escape-time 0\n")

    def _write_profrc(self):
        _write_keyfile(self.profrc_path, self._prefs)

    def env(self):
        e = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.home,
            "XDG_CONFIG_HOME": self.xdg_config,
            "XDG_DATA_HOME": self.xdg_data,
            "XDG_CACHE_HOME": self.xdg_cache,
            "XDG_RUNTIME_DIR": self.xdg_runtime,
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=" + os.path.join(self.dir, "no-dbus"),
            "TMUX_TMPDIR": self.dir,
        }
        e.update(self.extra_env)
        return e

    def _tmux(self, *args, timeout=10, check=True):
        argv = [TMUX, "-S", self.socket, "-f", self.tmux_conf, *args]
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, env=self._tmux_env())
        except subprocess.TimeoutExpired:
            raise HarnessError(f"timed out after {timeout}s running {argv!r}") from None
        if check and cp.returncode != 0:
            raise HarnessError(f"{argv!r} exited {cp.returncode}: {cp.stderr.strip()}")
        return cp

    def _tmux_env(self):
        e = self.env()
        e.pop("TMUX", None)
        return e

    def start(self):
        """Start profanity in the tmux server; wait for its main loop."""
        self.prepare()
        if self.pid is not None:
            raise HarnessError(f"{self.name}: already started")
        mark = self.log_mark()
        try:
            os.unlink(self.status_path)
        except FileNotFoundError:
            pass
        argv = [PROFANITY, "-l", self.log_level]
        envargs = [f"{k}={v}" for k, v in self.env().items()]
        # sh runs profanity in the foreground of the pane and records its exit
        # status (tmux 3.3a's #{pane_dead_status} is often empty)
        script = f'/usr/bin/env -i "$@"; echo "$?" > {shlex.quote(self.status_path)}'
        self._tmux("new-session", "-d", "-s", "prof", "-n", "prof",
                   "-x", str(self.width), "-y", str(self.height),
                   "/bin/sh", "-c", script, "sh", *envargs, *argv)
        info = self._tmux("display-message", "-p", "-t", "prof", "#{pane_pid} #{pid}").stdout.split()
        self.shell_pid, self.tmux_pid = int(info[0]), int(info[1])
        self._stopped = False
        self.pid = wait_for(self._find_profanity_pid, 10,
                            lambda: f"{self.name}: the profanity process to appear\n{self._diag()}")
        self.wait_log("Starting main event loop", self.start_timeout, "profanity to start", start=mark)
        self.wait_screen(lambda s: s.strip() != "", 10, "profanity to draw its screen")

    def _find_profanity_pid(self):
        """PID of the profanity child of the pane's shell (once env has exec'd it)."""
        sh = self.shell_pid
        kids = []
        try:
            with open(f"/proc/{sh}/task/{sh}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            pass
        for pid in kids:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "profanity":
                        return pid
            except OSError:
                pass
        if self._exit_code() is not None:
            raise AssertionError(f"{self.name}: profanity exited at once "
                                 f"({self.pane_status()})\n{self._diag()}")
        return None

    def _exit_code(self):
        try:
            with open(self.status_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError, TypeError):
            return None

    def _dead_status(self):
        """pane_status() of a process that just died (waits briefly for its status)."""
        try:
            wait_for(lambda: self._exit_code() is not None, 2, "exit status")
        except AssertionError:
            pass
        return self.pane_status()

    def alive(self):
        return self.pid is not None and pid_alive(self.pid)

    def pane_status(self):
        """'running', 'exited N', 'killed by signal N' (e.g. 11 = SIGSEGV,
        6 = SIGABRT), or 'gone' (killed with its shell, no status)."""
        if self.alive():
            return "running"
        code = self._exit_code()
        if code is None:
            return "not started" if self.pid is None else "gone"
        if code > 128:
            return f"killed by signal {code - 128}"
        return f"exited {code}"

    def quit(self, timeout=10.0, check=True):
        """/quit, wait up to `timeout` s for the PID to go, else SIGKILL it.

        Returns the pane status ('exited 0' normally).  With check=True a
        process that had to be killed raises AssertionError (after killing).
        """
        if not self.alive():
            return self.pane_status()
        self.command("/quit")
        try:
            wait_for(lambda: not self.alive(), timeout, "profanity to exit after /quit")
        except AssertionError:
            screen = self._safe_screen()
            self._kill_pid()
            if check:
                raise AssertionError(f"{self.name}: profanity did not exit {timeout}s after /quit"
                                     f" (killed)\n{self._diag(screen)}") from None
        try:   # the pane's shell writes the exit status right after
            wait_for(lambda: self._exit_code() is not None, 2, "exit status")
        except AssertionError:
            pass
        return self.pane_status()

    def restart(self, connect=True, timeout=10.0):
        """/quit (or kill) and start again on the same dirs: keys, OMEMO state,
        plugin settings and profrc persist.  Connects again unless connect=False."""
        if self.alive():
            self.quit(timeout)
        self._stop_tmux()
        self.pid = None
        self.start()
        if connect:
            self.connect()
        return self

    def _stop_tmux(self):
        if self.dir and os.path.exists(self.socket):
            self._tmux("kill-server", check=False, timeout=5)
        if self.tmux_pid is not None:
            try:
                wait_for(lambda: not pid_alive(self.tmux_pid), 3, "tmux server to exit")
            except AssertionError:
                try:
                    os.kill(self.tmux_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    wait_for(lambda: not pid_alive(self.tmux_pid), 3, "tmux server to die")
                except AssertionError:
                    pass

    def _kill_pid(self, sig=signal.SIGKILL):
        if self.pid is not None and pid_alive(self.pid):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self):
        """Kill profanity (by PID) and the private tmux server (by socket, then PID);
        remove the temp dir.  Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.pid is not None and pid_alive(self.pid):
                self._kill_pid(signal.SIGTERM)
                try:
                    wait_for(lambda: not pid_alive(self.pid), 3, "profanity to exit on SIGTERM")
                except AssertionError:
                    self._kill_pid(signal.SIGKILL)
                    try:
                        wait_for(lambda: not pid_alive(self.pid), 5, "profanity to die")
                    except AssertionError:
                        pass
            self._stop_tmux()
        finally:
            _live.discard(self)
            if self.dir and not self.keep_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            elif self.dir:
                sys.stderr.write(f"# kept profanity dir {self.dir}\n")

    # -- input ----------------------------------------------------------------

    def send_keys(self, text, enter=True):
        """Type `text` literally (tmux send-keys -l), then Enter unless enter=False."""
        if not self.alive():
            raise AssertionError(f"{self.name}: cannot type {text!r}: profanity is not running "
                                 f"({self.pane_status()})\n{self._diag()}")
        # tmux takes an argument that ends in ';' as a command separator and
        # drops the ';': send trailing semicolons as hex key codes instead
        body = text.rstrip(";")
        if body:
            self._tmux("send-keys", "-t", "prof", "-l", "--", body)
        if len(body) < len(text):
            self._tmux("send-keys", "-t", "prof", "-H", *(["3b"] * (len(text) - len(body))))
        if enter:
            self._tmux("send-keys", "-t", "prof", "Enter")

    def key(self, *names):
        """Send tmux key names, e.g. key("PageUp"), key("M-Left"), key("C-c")."""
        self._tmux("send-keys", "-t", "prof", *names)

    def command(self, cmd):
        """Type a /command (the leading '/' is added if missing) and Enter."""
        if not cmd.startswith("/"):
            cmd = "/" + cmd
        self.send_keys(cmd)

    # -- screen -----------------------------------------------------------------

    def screen(self):
        """The visible screen (capture-pane -p -J), trailing spaces stripped."""
        cp = self._tmux("capture-pane", "-p", "-J", "-t", "prof", check=False)
        if cp.returncode != 0:
            return ""
        return "\n".join(line.rstrip() for line in cp.stdout.split("\n")).rstrip("\n") + "\n"

    def _safe_screen(self):
        try:
            return self.screen()
        except Exception as e:  # noqa: BLE001
            return f"(no screen: {e})"

    def scrollback(self, lines=1000, settle=0.5):
        """All of the current Profanity window's buffer that fits in `lines` rows.

        Profanity draws on the alternate screen, so tmux keeps no history;
        this grows the tmux window to `lines` rows, lets Profanity redraw,
        captures, and restores the size.  Stable only while nothing arrives.
        """
        self._tmux("resize-window", "-t", "prof", "-x", str(self.width), "-y", str(lines))
        try:
            time.sleep(settle)
            text = self.screen()
        finally:
            self._tmux("resize-window", "-t", "prof", "-x", str(self.width), "-y", str(self.height))
            time.sleep(settle / 2)
        return text

    def body(self, screen=None):
        """The screen without Profanity's title bar (first row) and status/input rows
        (last two): the message area of the current window."""
        rows = (screen if screen is not None else self.screen()).rstrip("\n").split("\n")
        return "\n".join(rows[1:-2]) + "\n"

    def wait_screen(self, cond, timeout=10.0, what=None, interval=0.1):
        """Poll the screen until `cond` holds; return what it gave.

        cond: a str (substring; returns the screen), a compiled regex (returns
        the match) or callable(screen_text) -> truthy.  On timeout (or if
        profanity dies) raises AssertionError with the last screen and the
        log tail.
        """
        if isinstance(cond, str):
            needle = cond

            def pred(s):
                return s if needle in s else None
            desc = what or f"screen to show {needle!r}"
        elif isinstance(cond, re.Pattern):
            rx = cond

            def pred(s):
                return rx.search(s)
            desc = what or f"screen to match /{rx.pattern}/"
        else:
            pred = cond
            desc = what or getattr(cond, "__name__", "screen condition")
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            last = self.screen()
            value = pred(last)
            if value:
                return value
            if self.pid is not None and not pid_alive(self.pid):
                raise AssertionError(f"{self.name}: profanity died ({self._dead_status()}) "
                                     f"while waiting for {desc}\n{self._diag(last)}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for "
                                     f"{desc}\n{self._diag(last)}")
            time.sleep(interval)

    # -- log --------------------------------------------------------------------

    def log_text(self, start=0):
        """Profanity's log ($XDG_DATA_HOME/profanity/logs/profanity.log) from byte `start`."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except (FileNotFoundError, TypeError):
            return ""

    def log_mark(self):
        """Current size of the log: pass as start= to look only at newer lines."""
        try:
            return os.path.getsize(self.log_path)
        except (OSError, TypeError):
            return 0

    def log_tail(self, lines=40):
        return tail(self.log_text(), lines)

    def wait_log(self, cond, timeout=10.0, what=None, start=None):
        """Poll the log (from byte `start`, default: whole log) for a substring,
        regex or callable(text); return the match / text / value."""
        start = 0 if start is None else start
        if isinstance(cond, str):
            needle = cond

            def pred(t):
                return t if needle in t else None
            desc = what or f"log to contain {needle!r}"
        elif isinstance(cond, re.Pattern):
            rx = cond

            def pred(t):
                return rx.search(t)
            desc = what or f"log to match /{rx.pattern}/"
        else:
            pred = cond
            desc = what or "log condition"
        deadline = time.monotonic() + timeout
        while True:
            value = pred(self.log_text(start))
            if value:
                return value
            if self.pid is not None and not pid_alive(self.pid):
                raise AssertionError(f"{self.name}: profanity died ({self._dead_status()}) "
                                     f"while waiting for {desc}\n{self._diag()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for "
                                     f"{desc}\n{self._diag()}")
            time.sleep(0.1)

    def _diag(self, screen=None, log_lines=30):
        if screen is None:
            screen = self._safe_screen()
        rows = screen.rstrip("\n").split("\n")
        text = "\n".join("    |" + r for r in rows)
        # the debug log is dominated by stream-management acks: leave them out
        log = "\n".join(l for l in self.log_text().splitlines()
                        if "urn:xmpp:sm:3" not in l)
        out = (f"  {self.name} screen ({self.width}x{self.height}):\n{text}\n"
               f"  {self.name} log ({self.log_path}) tail:\n{tail(log, log_lines)}")
        if self.srv is not None:
            try:
                plog = "\n".join(l for l in self.srv.log_text().splitlines()
                                 if not any(n in l for n in _SMACKS_NOISE))
                out += f"\n  prosody log tail:\n{tail(plog, 12)}"
            except Exception:  # noqa: BLE001
                pass
        return out

    def describe(self):
        return self._diag()

    # -- XMPP -------------------------------------------------------------------

    def connect(self, timeout=20.0):
        """/connect ACCOUNT; wait until logged in, roster and server features arrived."""
        mark = self.log_mark()
        self.command(f"/connect {self.account}")

        def state(t):
            if "Login failed" in t or "Connection failed" in t or "Lost connection" in t:
                return "failed"
            if (f"{self.jid} logged in successfully" in t
                    and "connection_features_received" in t
                    and (self.log_level != "DEBUG" or _ROSTER_RX.search(t))):
                return "ok"
            return None

        got = self.wait_log(state, timeout, f"{self.jid} to log in", start=mark)
        if got == "failed":
            raise AssertionError(f"{self.name}: login failed\n{self._diag()}")
        # the console line confirms the UI got it too
        self.wait_screen(f"{self.fulljid} logged in successfully", 5,
                         "the console to say logged in")
        return self

    def win(self, target):
        """/win TARGET (a number, 'console', or a JID of an open window)."""
        self.command(f"/win {target}")

    def title(self, screen=None):
        """The title bar (first row) of the current window, stripped."""
        return (screen if screen is not None else self.screen()).split("\n", 1)[0].strip()

    def chat_focused(self, jid, screen=None):
        """True if the current window is jid's chat window: its title bar starts
        with the contact's roster name (the harness's shared roster names each
        account by its user name) or, for a non-contact, the bare JID."""
        words = self.title(screen).split()
        names = {jid, jid.split("@", 1)[0], self.names.get(jid)}
        return bool(words) and words[0] in names

    def open_chat(self, jid, timeout=5.0):
        """/msg JID: open (or focus) the chat window for jid; wait for its title bar."""
        if self.chat_focused(jid):
            return
        self.command(f"/msg {jid}")
        self.wait_screen(lambda s: self.chat_focused(jid, s), timeout,
                         f"the chat window for {jid} to be focused")

    def say(self, jid, text):
        """Send `text` to jid in its chat window (opened/focused first), as typed text."""
        self.open_chat(jid)
        self.send_keys(text)

    def wait_message(self, jid, text, timeout=10.0, sender=None, mark=None):
        """Wait until a chat line whose text contains `text` shows in jid's chat
        window (focused first; jid None: the current window).

        sender: also require this sender ("me" for our own, the contact's
        roster name for theirs); mark: also require this encryption mark
        ('~', '-', ...).  Returns the parsed line
        {"time","mark","sender","text","line"} (see parse_line)."""
        if jid is not None:
            self.open_chat(jid)

        def pred(s):
            for m in self.messages(s):
                if (text in m["text"] and (sender is None or m["sender"] == sender)
                        and (mark is None or m["mark"] == mark)):
                    return m
            return None
        extra = "".join([f" from {sender!r}" if sender else "",
                         f" marked {mark!r}" if mark else ""])
        return self.wait_screen(pred, timeout, f"a chat line {text!r}{extra} in the window of "
                                f"{jid or 'the current window'}")

    def message_lines(self, screen=None):
        """Non-blank lines of the current window (title/status/input rows removed)."""
        return [line for line in self.body(screen).split("\n") if line.strip()]

    def messages(self, screen=None):
        """Chat lines of the current window parsed by parse_line (others skipped)."""
        return [m for m in map(parse_line, self.message_lines(screen)) if m]

    # -- plugins ----------------------------------------------------------------

    def install_plugin(self, path, load_at_start=True):
        """Copy a .so (or .py) into .plugins_dir; before start() also add it to
        profrc's [plugins] load= list so it loads at start-up.  -> file name.

        After start, use command('/plugins load NAME') (or '/plugins install PATH')."""
        self.prepare()
        name = os.path.basename(path)
        shutil.copy2(path, os.path.join(self.plugins_dir, name))
        if load_at_start:
            loads = list(self._prefs.setdefault("plugins", {}).get("load", []))
            if name not in loads:
                loads.append(name)
            self._prefs["plugins"]["load"] = loads
            if self.pid is None:
                self._write_profrc()
        return name

    def plugins_loaded(self):
        """Names Profanity's log says were loaded ('Loaded plugin: NAME')."""
        return re.findall(r"INF: Loaded plugin: (\S+)", self.log_text())

    # -- built-in OMEMO -----------------------------------------------------------

    def xmpp(self, resource="setup"):
        """A raw XMPP session as this account (another resource) on the same server."""
        return xmpp_session(self.server, self.port, self.jid, self.password, resource)

    def server_devicelist(self, jid=None):
        """Device ids in jid's (default: our) OMEMO device list on the server, or None."""
        with self.xmpp() as x:
            return x.devicelist(jid or self.jid)

    def omemo_setup(self, timeout=20.0):
        """Profanity's built-in OMEMO: blind trust, /omemo gen, and make it publish.

        Profanity 0.13.1 asks for its own device list after `/omemo gen` and
        publishes its device id only when that request *succeeds*: Prosody
        answers `forbidden` for a node that does not exist yet, and Profanity
        then never publishes.  So if the account has no device list yet, we
        first publish an empty one from a raw XMPP session of the same account
        (resource "setup"); Profanity then adds itself to it.  Waits until the
        server has our device id in the list and our bundle; returns the id.
        """
        with self.xmpp() as x:
            if x.devicelist(self.jid) is None:
                x.publish_devicelist([])
        self.command("/omemo trustmode blind")
        self.wait_screen("ALL OMEMO fingerprints will be trusted automatically", 5,
                         "/omemo trustmode blind to be confirmed")
        self.command("/omemo gen")
        m = self.wait_screen(re.compile(r"OMEMO crytographic materials generated\. "
                                        r"Your Device ID is (\d+)\."), timeout,
                             "/omemo gen to finish")
        self.device_id = int(m.group(1))

        def published():
            with self.xmpp() as x:
                devices = x.devicelist(self.jid) or []
                return (self.device_id in devices
                        and x.has_item(self.jid, BUNDLES_NODE + str(self.device_id)))
        wait_for(published, timeout, lambda: f"{self.name}: device {self.device_id} in the "
                 f"server's device list and its bundle\n{self._diag()}", interval=0.3)
        return self.device_id

    def omemo_start(self, jid, devices=None, timeout=15.0):
        """/omemo start JID (opens the chat window with OMEMO on); wait until
        Profanity has a session with each of `devices` (or with at least one
        device of jid if None).  Returns the device ids seen."""
        self.command(f"/omemo start {jid}")
        rx = re.compile(r"\[OMEMO\] (?:create session|session) with " + re.escape(jid)
                        + r" device (\d+)")

        def ready(t):
            seen = {int(d) for d in rx.findall(t)}
            if devices is None:
                return seen or None
            return seen if set(devices) <= seen else None

        # sessions may already exist from `/omemo gen` (it starts sessions with
        # every roster contact): look at the whole log, not just from `mark`
        seen = self.wait_log(lambda t: ready(t), timeout,
                             f"an OMEMO session with {jid} {sorted(devices) if devices else ''}",
                             start=0)
        self.wait_screen(lambda s: self.chat_focused(jid, s) and "[OMEMO]" in self.title(s), 5,
                         f"the chat window for {jid} with [OMEMO] in its title")
        return sorted(seen)


_SMACKS_NOISE = ("urn:xmpp:sm:3", "smacks", "#queue", "Sending <r>")
_ROSTER_RX = re.compile(r'RECV: <iq id="roster"[^>]*type="result"')
_LINE_RX = re.compile(r"^(\d\d:\d\d:\d\d) (\S) (.+?): (.*)$")


def parse_line(line):
    """A chat window line "HH:MM:SS C SENDER: TEXT" -> {"time", "mark", "sender",
    "text", "line"}, else None.  C is the encryption mark: '~' built-in OMEMO
    (also OTR/PGP), '-' unencrypted, or what a plugin set with
    prof_chat_set_incoming_char / _outgoing_char.  SENDER is "me" for our own
    messages, else the contact's roster name (or bare JID)."""
    m = _LINE_RX.match(line.strip())
    if not m:
        return None
    return {"time": m.group(1), "mark": m.group(2), "sender": m.group(3),
            "text": m.group(4), "line": line.strip()}


# --------------------------------------------------------------------------
# C plugins for tests
# --------------------------------------------------------------------------

def build_c_plugin(source, out_path, cflags=(), timeout=60):
    """gcc -shared -fPIC `source` (C text) -> out_path (.so); HarnessError on failure."""
    src = os.path.splitext(out_path)[0] + ".c"
    with open(src, "w") as f:
        f.write(source)
    cp = subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-g", "-Wall", *cflags,
                         "-o", out_path, src], capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    if cp.returncode != 0:
        raise HarnessError(f"gcc failed ({cp.returncode}) for {src}:\n{tail(cp.stderr)}")
    return out_path


# --------------------------------------------------------------------------
# A minimal raw XMPP client (no TLS, SASL PLAIN) for setup and checks
# --------------------------------------------------------------------------

class XmppSession:
    """Blocking, one-request-at-a-time XMPP client for test setup: PEP
    queries/publishes as the account under test from another resource.

        with xmpp_session("127.0.0.1", port, "alice@localhost", "pw") as x:
            x.devicelist("alice@localhost")      # [ids] or None (no node / no item)
            x.publish_devicelist([])
            x.iq("<iq type='get' ...>...</iq>")  # raw reply text
    """

    def __init__(self, host, port, jid, password, resource="setup", timeout=10.0):
        self.jid = jid
        self.user, self.domain = jid.split("@", 1)
        self.timeout = timeout
        self._n = 0
        self.buf = ""
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        try:
            self._open()
            self._read_until(lambda b: "</stream:features>" in b, "stream features")
            creds = base64.b64encode(f"\0{self.user}\0{password}".encode()).decode()
            self._send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                       f"{creds}</auth>")
            got = self._read_until(lambda b: "<success" in b or "<failure" in b, "SASL result")
            if "<failure" in got:
                raise HarnessError(f"XMPP login as {jid} failed: {got[-300:]}")
            self.buf = ""
            self._open()
            self._read_until(lambda b: "</stream:features>" in b, "stream features after auth")
            self.buf = ""
            reply = self.iq(f"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:"
                            f"xmpp-bind'><resource>{resource}</resource></bind></iq>", "bind1")
            if "type='result'" not in reply and 'type="result"' not in reply:
                raise HarnessError(f"bind failed: {reply}")
        except BaseException:
            self.sock.close()
            raise

    def _open(self):
        self._send(f"<?xml version='1.0'?><stream:stream to='{self.domain}' "
                   f"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                   f"version='1.0'>")

    def _send(self, text):
        self.sock.sendall(text.encode("utf-8"))

    def _read_until(self, pred, what):
        deadline = time.monotonic() + self.timeout
        while not pred(self.buf):
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"XMPP setup session: timed out waiting for {what}; "
                                   f"got: {self.buf[-500:]}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise HarnessError(f"XMPP setup session: connection closed waiting for {what}; "
                                   f"got: {self.buf[-500:]}")
            self.buf += data.decode("utf-8", "replace")
        return self.buf

    def iq(self, xml, iq_id):
        """Send an IQ whose id is iq_id; return the reply's text (<iq ...>...</iq>)."""
        self._send(xml)
        rx = re.compile(r"<iq\b[^>]*\bid=['\"]" + re.escape(iq_id) + r"['\"][^>]*?(/>|>.*?</iq>)",
                        re.S)
        self._read_until(lambda b: rx.search(b), f"reply to iq {iq_id}")
        m = rx.search(self.buf)
        self.buf = self.buf[m.end():]
        return m.group(0)

    def _next_id(self):
        self._n += 1
        return f"t{self._n}"

    def items(self, jid, node):
        """Raw reply to a PEP items request for jid's node."""
        i = self._next_id()
        return self.iq(f"<iq type='get' to='{jid}' id='{i}'><pubsub xmlns='http://jabber.org/"
                       f"protocol/pubsub'><items node='{node}'/></pubsub></iq>", i)

    @staticmethod
    def _is_result(reply):
        return re.search(r"^<iq\b[^>]*\btype=['\"]result['\"]", reply) is not None

    def has_item(self, jid, node):
        reply = self.items(jid, node)
        return self._is_result(reply) and "<item" in reply

    def devicelist(self, jid):
        """[device ids] of jid's current device list item; None if no node/item."""
        reply = self.items(jid, DEVICELIST_NODE)
        if not self._is_result(reply) or "<item" not in reply:
            return None
        return [int(d) for d in re.findall(r"<device\b[^>]*\bid=['\"](\d+)['\"]", reply)]

    def publish_devicelist(self, device_ids):
        """Publish our device list (item 'current'), default node config."""
        i = self._next_id()
        devs = "".join(f"<device id='{d}'/>" for d in device_ids)
        reply = self.iq(f"<iq type='set' id='{i}'><pubsub xmlns='http://jabber.org/protocol/"
                        f"pubsub'><publish node='{DEVICELIST_NODE}'><item id='current'>"
                        f"<list xmlns='{OMEMO_NS}'>{devs}</list></item></publish></pubsub></iq>", i)
        if not self._is_result(reply):
            raise HarnessError(f"publishing {self.jid}'s device list failed: {reply}")
        return reply

    def publish_devicelists(self, device_ids):
        """Publish the legacy list and the OMEMO:2 one (urn:xmpp:omemo:2:devices, item
        'current', XEP-0384 0.9 §5.3.1) naming these devices: a device left out of both is
        no longer announced in either version."""
        self.publish_devicelist(device_ids)
        i = self._next_id()
        devs = "".join(f"<device id='{d}'/>" for d in device_ids)
        reply = self.iq(f"<iq type='set' id='{i}'><pubsub xmlns='http://jabber.org/protocol/"
                        f"pubsub'><publish node='urn:xmpp:omemo:2:devices'><item id='current'>"
                        f"<devices xmlns='urn:xmpp:omemo:2'>{devs}</devices></item></publish>"
                        f"</pubsub></iq>", i)
        if not self._is_result(reply):
            raise HarnessError(f"publishing {self.jid}'s OMEMO:2 device list failed: {reply}")
        return reply

    def close(self):
        try:
            self._send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def xmpp_session(host, port, jid, password, resource="setup", timeout=10.0):
    return XmppSession(host, port, jid, password, resource, timeout)
