"""Drive libpurple 2.x in tests: the headless client tests/purple/harness (built
by `make check`), and the real Finch in a private tmux server.

    from harness import Prosody, test, main
    from purple import Purple, finch_loads_plugin, build_purple_plugin

    with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
        with Purple(srv, "alice", plugins=("core-mend",), plugin_dir=".libs") as a:
            a.wait_signed_on()
            a.cmd("bob@localhost", "/mend on")          # -> {"type":"cmd","status":"ok",...}
            a.send("bob@localhost", "hi")
            m = a.wait_im("reply", who="bob@localhost", flags=("recv",))
            a.restart()                                 # same purple user dir
    r = finch_loads_plugin(".libs/mend-purple.so", "core-mend", 30)
    assert r, str(r)

The harness prints JSON lines (see tests/e2e/README.md and the header of
tests/purple/harness.c); Purple is a JsonLinesProcess with helpers, and every
failed wait shows the harness's output and stderr tails and Prosody's log tail.
Standard library only; run with /usr/bin/python3.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from harness import (HarnessError, JsonLinesProcess, pid_alive, tail, wait_for)

__all__ = ["Purple", "harness_path", "purple_missing", "build_purple_plugin",
           "accounts_xml", "blist_xml", "plugins_prefs_xml", "read_text",
           "Finch", "FinchResult", "finch_loads_plugin", "finch_missing"]

TMUX = shutil.which("tmux") or "/usr/bin/tmux"
FINCH = shutil.which("finch") or "/usr/bin/finch"

# build/ at the top of the repository (this file is tests/e2e/purple.py)
DEFAULT_BUILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")


def harness_path():
    """$top_builddir/tests/purple/harness (top_builddir: `make check` exports it;
    default: build/ in the repository)."""
    top = os.environ.get("top_builddir") or DEFAULT_BUILD
    return os.path.join(os.path.abspath(top), "tests", "purple", "harness")


def purple_missing():
    """None if the harness binary exists, else why (for skip())."""
    p = harness_path()
    if not os.access(p, os.X_OK):
        return f"{p} is not built (make check builds it; set top_builddir)"
    return None


def _isolated_env(root, extra=None):
    """HOME/XDG dirs under `root`, no D-Bus, no proxies, no display."""
    dirs = {k: os.path.join(root, v) for k, v in (
        ("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"), ("XDG_RUNTIME_DIR", "run"))}
    for d in dirs.values():
        os.makedirs(d, mode=0o700, exist_ok=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           # a socket that does not exist: libpurple's D-Bus server and libsecret
           # fail fast instead of reaching a real session bus
           "DBUS_SESSION_BUS_ADDRESS": "unix:path=" + os.path.join(root, "no-dbus")}
    env.update(dirs)
    if os.environ.get("MEND_SANITIZERS"):
        # libpurple, NSS and dbus-glib leak at exit on their own; the core's leaks are
        # checked by the unit tests and the mend client under the same sanitizers
        # (the caller's own options, e.g. fast_unwind_on_malloc=0, are kept)
        env["ASAN_OPTIONS"] = ":".join(o for o in (os.environ.get("ASAN_OPTIONS"),
                                                   "detect_leaks=0") if o)
    for k in ("top_builddir", "top_srcdir", "MEND_XEP_DIR", "MEND_SIGNAL", "MEND_SANITIZERS",
              "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra or {})
    return env


_FLAG_NAMES = ("send", "recv", "system", "auto_resp", "active_only", "nick", "no_log",
               "whisper", "error", "delayed", "raw", "images", "notify", "no_linkify",
               "invisible", "remote_send")


class Purple:
    """The headless libpurple client as user@srv.host/resource.

        Purple(srv, "alice", resource="purple", plugins=("core-mend",),
               plugin_dir=None, user_dir=None, env=None, xml=False, verbose=False)

    plugins     plugin ids (or .so paths) loaded after purple_core_init, before
                the account is enabled; each gives a {"type":"plugin"} line,
                checked at start (check_plugins=False to look yourself)
    plugin_dir  extra plugin search path (default: $top_builddir/.libs, where
                libtool puts mend-purple.so); None entries are skipped
    user_dir    the purple user dir (accounts.xml, blist.xml, prefs.xml, and
                whatever plugins keep there); default a temp dir, kept across
                restart(), removed by stop() unless MEND_E2E_KEEP=1
    env         extra environment (HOME and XDG_* are private temp dirs)
    xml         print the wire as {"type":"xml","dir":"in"|"out","xml":...}
    verbose     libpurple's whole debug log to stderr (stderr_text())
    start       False: call start() yourself

    Lines: .lines, .mark(), .wait_line(pred, timeout, what, start=), .find(pred).
    """

    def __init__(self, srv=None, user=None, resource="purple", *, password="pw",
                 plugins=("core-mend",), plugin_dir=(), user_dir=None, env=None,
                 xml=False, verbose=None, jid=None, port=None, server="127.0.0.1",
                 security="opportunistic_tls", check_plugins=True, start=True,
                 name=None, keep_dir=None):
        if srv is not None:
            jid = jid or srv.jid(user)
            port = port or srv.port
        if not jid or not port:
            raise HarnessError("Purple needs srv+user or jid+port")
        self.srv = srv
        self.jid = jid
        self.resource = resource
        self.fulljid = f"{jid}/{resource}"
        self.password = password
        self.server = server
        self.port = int(port)
        self.security = security
        self.plugins = list(plugins or ())
        if plugin_dir == ():
            top = os.environ.get("top_builddir") or DEFAULT_BUILD
            plugin_dir = [os.path.join(os.path.abspath(top), ".libs")]
        elif isinstance(plugin_dir, str):
            plugin_dir = [plugin_dir]
        self.plugin_dirs = [d for d in (plugin_dir or []) if d]
        self.extra_env = dict(env or {})
        self.xml = xml
        self.verbose = bool(os.environ.get("MEND_E2E_VERBOSE")) if verbose is None else verbose
        self.check_plugins = check_plugins
        self.name = name or f"purple-{jid.split('@')[0]}/{resource}"
        self.keep_dir = bool(os.environ.get("MEND_E2E_KEEP")) if keep_dir is None else keep_dir
        self._own_dir = None
        if user_dir is None:
            self._own_dir = tempfile.mkdtemp(prefix="mend-purple-")
            user_dir = os.path.join(self._own_dir, "purple")
        self.user_dir = user_dir
        self.root = self._own_dir or tempfile.mkdtemp(prefix="mend-purple-env-")
        self.proc = None
        self.runs = []           # earlier JsonLinesProcess instances (after restart)
        self._autostart = start

    # -- lifecycle -----------------------------------------------------------------

    def argv(self):
        argv = [harness_path(), "--user-dir", self.user_dir, "--jid", self.fulljid,
                "--password", self.password, "--server", self.server,
                "--port", str(self.port), "--security", self.security]
        for d in self.plugin_dirs:
            argv += ["--plugin-dir", d]
        for p in self.plugins:
            argv += ["--plugin", p]
        if self.xml:
            argv.append("--xml")
        if self.verbose:
            argv.append("--verbose")
        return argv

    def env(self):
        return _isolated_env(self.root, self.extra_env)

    def _context(self):
        return self.srv.log_tail(20) if self.srv is not None else "(no Prosody)"

    def start(self, timeout=20):
        """Start the harness; wait for "ready" (and the plugins to load)."""
        why = purple_missing()
        if why:
            raise HarnessError(why)
        if self.proc is not None and self.proc.running():
            raise HarnessError(f"{self.name} already running")
        os.makedirs(self.user_dir, mode=0o700, exist_ok=True)
        if self.proc is not None:
            self.runs.append(self.proc)
        self.proc = JsonLinesProcess(self.argv(), env=self.env(), name=self.name,
                                     context=self._context)
        self.proc.wait_line(lambda o: o["type"] == "ready", timeout, f"{self.name} to start")
        if self.check_plugins:
            for p in self.plugins:
                got = self.proc.find(lambda o, p=p: o["type"] == "plugin"
                                     and p in (o.get("id"), o.get("path")))
                if not got or not got[-1].get("loaded"):
                    raise AssertionError(f"{self.name}: plugin {p} did not load: "
                                         f"{got[-1] if got else 'no plugin line'}\n"
                                         f"{self.describe()}")
                self._check_plugin_origin(p, got[-1])
        return self

    def _check_plugin_origin(self, wanted, line):
        """A plugin asked for by id must be the one in our plugin dirs (the build's),
        never a copy installed elsewhere on the machine (the system plugin dir)."""
        if os.path.sep in wanted or not self.plugin_dirs:
            return
        path = os.path.realpath(line.get("path") or "")
        dirs = [os.path.realpath(d) for d in self.plugin_dirs]
        if os.path.dirname(path) not in dirs:
            raise AssertionError(f"{self.name}: plugin {wanted} came from {path}, not from "
                                 f"{' or '.join(dirs)}: a copy installed elsewhere won\n"
                                 f"{self.describe()}")

    def __enter__(self):
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

    def quit(self, timeout=15):
        """`quit` (libpurple disconnects, unloads plugins, saves its files) and wait
        for exit 0. Returns the exit status."""
        p = self.proc
        if p is None or not p.running():
            return p.proc.returncode if p else None
        p.send_line("quit")
        rc = p.wait_exit(timeout)
        p.stop()
        if rc != 0:
            raise AssertionError(f"{self.name} exited {rc} after quit\n{p.describe()}")
        return rc

    def restart(self, signed_on=True, timeout=30):
        """quit, start again on the same user dir (and wait for sign-on)."""
        self.quit()
        self.start()
        if signed_on:
            self.wait_signed_on(timeout)
        return self

    def stop(self):
        """Stop the harness (quit, then SIGTERM/SIGKILL by PID) and remove temp dirs."""
        if self.proc is not None:
            if self.proc.running():
                try:
                    self.proc.send_line("quit")
                    self.proc.wait_exit(10)
                except (AssertionError, HarnessError):
                    pass
            self.proc.cleanup()
        for p in self.runs:
            p.cleanup()
        self.runs = []
        if self.keep_dir:
            sys.stderr.write(f"# kept purple dir {self.root}\n")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def running(self):
        return self.proc is not None and self.proc.running()

    # -- lines -----------------------------------------------------------------------

    @property
    def lines(self):
        return self.proc.lines

    def mark(self):
        return self.proc.mark()

    def find(self, pred, start=0):
        return self.proc.find(pred, start)

    def wait_line(self, pred, timeout, what, start=0):
        return self.proc.wait_line(pred, timeout, what, start)

    def describe(self):
        return self.proc.describe() if self.proc else "(not started)"

    def stderr_text(self):
        return self.proc.stderr_text() if self.proc else ""

    def send_line(self, text):
        self.proc.send_line(text)

    # -- XMPP --------------------------------------------------------------------------

    def wait_signed_on(self, timeout=30):
        """Wait for this run's "signed_on" line; a "connection_error" fails at once."""
        o = self.proc.wait_line(lambda o: o["type"] in ("signed_on", "connection_error"),
                                timeout, f"{self.name} to sign on")
        if o["type"] != "signed_on":
            raise AssertionError(f"{self.name}: connection error: {o.get('text')}\n"
                                 f"{self.describe()}")
        return o

    def _command(self, line, result_types, timeout, what):
        m = self.mark()
        self.proc.send_line(line)
        o = self.proc.wait_line(lambda o: o["type"] in (*result_types, "command_error"),
                                timeout, what, start=m)
        if o["type"] == "command_error":
            raise AssertionError(f"{self.name}: {line!r} failed: {o.get('error')}\n"
                                 f"{self.describe()}")
        return o

    def send(self, jid, text, timeout=10):
        """Type `text` into the IM conversation with jid and press Enter (the text
        is escaped into markup as a UI's entry does). -> {"type":"sent"}."""
        if "\n" in text:
            raise HarnessError("send: one line only")
        return self._command(f"send {jid} {text}", ("sent",), timeout, f"send to {jid}")

    def send_html(self, jid, html, timeout=10):
        return self._command(f"sendhtml {jid} {html}", ("sent",), timeout, f"send to {jid}")

    def cmd(self, jid, command, timeout=10):
        """Run a /command in the IM conversation with jid (purple_cmd_do_command).
        -> {"type":"cmd","status":"ok"|"failed"|"not_found"|"wrong_args"|...,"error":...}"""
        return self._command(f"cmd {jid} {command}", ("cmd",), timeout, f"{command} for {jid}")

    def chatcmd(self, room, command, timeout=10):
        """The same as cmd() in a group chat conversation with `room` (not joined)."""
        return self._command(f"chatcmd {room} {command}", ("cmd",), timeout,
                             f"{command} in {room}")

    def chatsend(self, room, text, timeout=10):
        """Type `text` into the joined group chat with `room` and press Enter
        (purple_conv_chat_send). -> {"type":"chat_sent"}."""
        if "\n" in text:
            raise HarnessError("chatsend: one line only")
        return self._command(f"chatsend {room} {text}", ("chat_sent",), timeout,
                             f"send to {room}")

    def join(self, room, nick, timeout=20):
        """Join the group chat room@service as nick; wait until libpurple says joined."""
        m = self.mark()
        self._command(f"join {room} {nick}", ("join_sent",), timeout, f"join {room}")
        return self.wait_line(lambda o: o["type"] == "chat_joined", timeout,
                              f"{self.name} to join {room}", start=m)

    def raw(self, xml, timeout=10):
        """Send a stanza through "jabber-sending-xmlnode" (plugins see it, as the
        prpl's own stanzas). -> {"type":"raw_sent","blocked":BOOL}"""
        return self._command("raw " + xml.replace("\n", " "), ("raw_sent",), timeout, "raw")

    def raw_text(self, xml, timeout=10):
        """Write bytes with the prpl's send_raw (past every xmlnode hook)."""
        return self._command("rawtext " + xml.replace("\n", " "), ("raw_sent",), timeout,
                             "rawtext")

    def close(self, jid, timeout=10):
        return self._command(f"close {jid}", ("closed",), timeout, f"close {jid}")

    def load(self, plugin, timeout=10):
        return self._command(f"load {plugin}", ("plugin",), timeout, f"load {plugin}")

    def unload(self, plugin_id, timeout=10):
        return self._command(f"unload {plugin_id}", ("unloaded",), timeout, "unload")

    def answer(self, request_id, arg="", timeout=10):
        return self._command(f"answer {request_id} {arg}".rstrip(), ("answered",), timeout,
                             "answer")

    def reconnect(self, while_offline=None, timeout=30):
        """The account disconnects (its group chats are left, as when the connection is
        lost), while_offline() runs, and it signs on again (waited for)."""
        m = self.mark()
        self._command("disconnect", ("disconnected",), timeout, "disconnect")
        self.wait_line(lambda o: o["type"] == "signed_off", timeout, f"{self.name} to sign off",
                       start=m)
        if while_offline:
            while_offline()
        m = self.mark()
        self._command("connect", ("connecting",), timeout, "connect")
        o = self.wait_line(lambda o: o["type"] in ("signed_on", "connection_error"), timeout,
                           f"{self.name} to sign on again", start=m)
        if o["type"] != "signed_on":
            raise AssertionError(f"{self.name}: connection error: {o.get('text')}\n"
                                 f"{self.describe()}")
        return o

    def account(self, timeout=10):
        return self._command("account", ("account",), timeout, "account")

    def ping(self, timeout=10):
        """A barrier: every earlier command has been handled."""
        return self._command("ping", ("pong",), timeout, "pong")

    # -- what the user sees ------------------------------------------------------------

    def ims(self, start=0, conv=None, kind="im"):
        """All {"type":"im"} lines so far (of this run), optionally of one conversation
        (kind="chat": the group chats' lines)."""
        return self.find(lambda o: o["type"] == kind
                         and (conv is None or _bare(o.get("conv")) == _bare(conv)), start)

    def chats(self, start=0, conv=None):
        """All {"type":"chat"} lines (what group chat windows show)."""
        return self.ims(start, conv, kind="chat")

    def wait_chat(self, match, timeout=20, who=None, flags=None, conv=None, start=0):
        """As wait_im() for a group chat's lines; `who` is the sender's nick."""
        return self.wait_im(match, timeout, who, flags, conv, start, kind="chat")

    def wait_im(self, match, timeout=20, who=None, flags=None, conv=None, start=0, kind="im"):
        """The first "im" line (index >= start) whose text equals `match` (a str) or
        for which match(line) is true; `who`: bare or full JID of the sender (as
        libpurple names it; compared by bare JID); `flags`: names that must all be
        set (e.g. ("recv",) or ("send",)); `conv`: conversation name (bare)."""
        flags = tuple(flags or ())
        for f in flags:
            if f not in _FLAG_NAMES:
                raise HarnessError(f"unknown flag {f!r}")

        def pred(o):
            if o["type"] != kind:
                return False
            if who is not None and _bare(o.get("who")) != _bare(who):
                return False
            if conv is not None and _bare(o.get("conv")) != _bare(conv):
                return False
            if not all(f in o.get("flags", ()) for f in flags):
                return False
            return match(o) if callable(match) else o.get("text") == match

        desc = f"an {kind} line {match!r}" if not callable(match) else "a matching im line"
        if who:
            desc += f" from {who}"
        if flags:
            desc += f" with flags {list(flags)}"
        return self.proc.wait_line(pred, timeout, f"{self.name}: {desc}", start=start)

    def xml_lines(self, direction=None, start=0):
        """{"type":"xml"} lines (needs xml=True): the wire, "in" or "out"."""
        return self.find(lambda o: o["type"] == "xml"
                         and (direction is None or o["dir"] == direction), start)


def _bare(jid):
    return (jid or "").split("/", 1)[0].lower()


def build_purple_plugin(source, out_path, cflags=(), timeout=60):
    """gcc -shared -fPIC `source` (C text) against libpurple -> out_path (.so)."""
    src = os.path.splitext(out_path)[0] + ".c"
    with open(src, "w") as f:
        f.write(source)
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "purple"], capture_output=True,
                        text=True, timeout=30)
    if pc.returncode != 0:
        raise HarnessError(f"pkg-config purple failed: {pc.stderr.strip()}")
    argv = ["gcc", "-shared", "-fPIC", "-O0", "-g", "-Wall",
            "-Werror=implicit-function-declaration", *cflags, "-o", out_path, src,
            *shlex.split(pc.stdout)]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                        stdin=subprocess.DEVNULL)
    if cp.returncode != 0:
        raise HarnessError(f"gcc failed ({cp.returncode}) for {src}:\n{tail(cp.stderr)}")
    return out_path


# --------------------------------------------------------------------------
# Finch (libpurple's own curses UI) in a private tmux server
# --------------------------------------------------------------------------

def finch_missing():
    for exe, pkg in ((FINCH, "finch"), (TMUX, "tmux"), ("gcc", "gcc"),
                     ("pkg-config", "pkg-config")):
        if not shutil.which(exe):
            return f"{exe} is not installed (apt-get install {pkg})"
    return None


# A plugin that reports, from inside Finch, which plugins libpurple loaded: it is
# listed last in /finch/plugins/loaded, so the plugins before it were loaded
# (or failed) already when its load() runs; it writes its report then and again
# after 2 s (a plugin that unloads itself late shows there).
REPORTER_C = r"""
#define PURPLE_PLUGINS
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <plugin.h>
#include <version.h>
#include <debug.h>
#include <core.h>

static void esc(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s < 0x20) { fprintf(f, "\\u%04x", *s); continue; }
        fputc(*s, f);
    }
    fputc('"', f);
}

static void report(const char *when)
{
    const char *path = getenv("MEND_FINCH_REPORT");
    FILE *f;
    GList *l;
    if (!path || !(f = fopen(path, "a")))
        return;
    fprintf(f, "{\"when\":\"%s\",\"ui\":", when);
    esc(f, purple_core_get_ui());
    fputs(",\"plugins\":[", f);
    for (l = purple_plugins_get_all(); l; l = l->next) {
        PurplePlugin *p = l->data;
        fputs("{\"id\":", f);
        esc(f, p->info && p->info->id ? p->info->id : "");
        fputs(",\"path\":", f);
        esc(f, p->path ? p->path : "");
        fprintf(f, ",\"loaded\":%s,\"error\":", purple_plugin_is_loaded(p) ? "true" : "false");
        esc(f, p->error ? p->error : "");
        fputs(l->next ? "}," : "}", f);
    }
    fputs("]}\n", f);
    fclose(f);
    purple_debug_info("mend-finch-reporter", "report written (%s)\n", when);
}

static gboolean later(gpointer data) { report("later"); return FALSE; }

static gboolean plugin_load(PurplePlugin *plugin)
{
    report("load");
    g_timeout_add(2000, later, NULL);
    return TRUE;
}

static PurplePluginInfo info = {
    PURPLE_PLUGIN_MAGIC, PURPLE_MAJOR_VERSION, PURPLE_MINOR_VERSION, PURPLE_PLUGIN_STANDARD,
    NULL, 0, NULL, PURPLE_PRIORITY_DEFAULT, "core-mend-finch-reporter", "mend finch reporter",
    "1.0", "Reports loaded plugins", "Test helper of mend's test suite", "mend", NULL,
    plugin_load, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};

static void init_plugin(PurplePlugin *plugin) { }

PURPLE_INIT_PLUGIN(mend_finch_reporter, init_plugin, info)
"""


def _xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def read_text(path):
    """A log file's text so far ("" while it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def plugins_prefs_xml(ui, paths):
    """prefs.xml that makes UI ("finch", "pidgin") load the plugins at `paths` at start-up."""
    items = "".join(f"\t\t\t\t<item value='{_xml_escape(p)}'/>\n" for p in paths)
    return ("<?xml version='1.0' encoding='UTF-8' ?>\n\n"
            "<pref version='1' name='/'>\n"
            f"\t<pref name='{ui}'>\n"
            "\t\t<pref name='plugins'>\n"
            "\t\t\t<pref name='loaded' type='pathlist'>\n"
            f"{items}"
            "\t\t\t</pref>\n"
            "\t\t</pref>\n"
            "\t</pref>\n"
            "</pref>\n")


def blist_xml(account, chats, autojoin):
    """blist.xml with the group chats `chats` ((room@service, nick), ...) of `account`,
    each joined at sign-on (the UI's setting `autojoin`: Pidgin "gtk-autojoin", Finch
    "gnt-autojoin")."""
    items = ""
    for room, nick in chats:
        node, server = room.split("@", 1)
        items += (f"<chat proto='prpl-jabber' account='{_xml_escape(account)}'>"
                  f"<component name='room'>{_xml_escape(node)}</component>"
                  f"<component name='server'>{_xml_escape(server)}</component>"
                  f"<component name='handle'>{_xml_escape(nick)}</component>"
                  f"<setting name='{autojoin}' type='bool'>1</setting></chat>")
    return ("<?xml version='1.0' encoding='UTF-8' ?>\n<purple version='1.0'><blist>"
            f"<group name='Chats'>{items}</group></blist><privacy/></purple>\n")


def accounts_xml(a, ui):
    """accounts.xml with one jabber account (dict jid, port, password, server) that
    UI ("gnt-purple" Finch, "gtk-gaim" Pidgin) signs in at start-up."""
    return f"""<?xml version='1.0' encoding='UTF-8' ?>

<account version='1.0'>
	<account>
		<protocol>prpl-jabber</protocol>
		<name>{_xml_escape(a["jid"])}</name>
		<password>{_xml_escape(a.get("password", "pw"))}</password>
		<settings>
			<setting name='connect_server' type='string'>{_xml_escape(a.get("server", "127.0.0.1"))}</setting>
			<setting name='port' type='int'>{int(a["port"])}</setting>
			<setting name='connection_security' type='string'>opportunistic_tls</setting>
			<setting name='auth_plain_in_clear' type='bool'>1</setting>
		</settings>
		<settings ui='{ui}'>
			<setting name='auto-login' type='bool'>1</setting>
		</settings>
		<proxy>
			<type>none</type>
		</proxy>
	</account>
</account>
"""


class Finch:
    """Finch 2.14 in a private tmux server (`tmux -S <tmp>/tmux.sock`, never the
    user's), HOME/XDG in its own temp dir, TERM=xterm-256color, no D-Bus, purple
    user dir `finch -c <tmp>/purple`, debug log `finch -d 2> <tmp>/finch-debug.log`.

        with Finch(plugins=["/path/x.so"]) as f:       # copied to <purple>/plugins,
            f.wait_debug("Loading saved plugin")      # listed in prefs.xml
            f.screen()

    plugins   .so paths copied into the user dir's plugins/ and listed (in order)
              in prefs.xml /finch/plugins/loaded, so Finch loads them at start-up
    account   optional dict(jid=FULLJID, password=, server=, port=) written to
              accounts.xml (jabber, no TLS, PLAIN in clear, auto-login) before start
    chats     (room@service, nick) pairs in blist.xml that Finch joins at sign-on
    env       extra environment
    Stopping kills finch by PID and the tmux server by its socket (then PID).
    """

    def __init__(self, plugins=(), account=None, env=None, width=160, height=50,
                 keep_dir=None, name="finch", chats=()):
        self.plugins = list(plugins)
        self.account = account
        self.chats = list(chats)
        self.extra_env = dict(env or {})
        self.width, self.height = width, height
        self.keep_dir = bool(os.environ.get("MEND_E2E_KEEP")) if keep_dir is None else keep_dir
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="mend-finch-")
        self.user_dir = os.path.join(self.dir, "purple")
        self.plugins_dir = os.path.join(self.user_dir, "plugins")
        self.debug_path = os.path.join(self.dir, "finch-debug.log")
        self.socket = os.path.join(self.dir, "tmux.sock")
        self.tmux_conf = os.path.join(self.dir, "tmux.conf")
        self.status_path = os.path.join(self.dir, "exit-status")
        self.installed = []       # plugin paths inside plugins_dir, in load order
        self.pid = None
        self.shell_pid = None
        self.tmux_pid = None
        os.makedirs(self.plugins_dir, mode=0o700, exist_ok=True)

    def env(self):
        e = _isolated_env(self.dir, self.extra_env)
        e["TERM"] = "xterm-256color"
        e["TMUX_TMPDIR"] = self.dir
        return e

    def install_plugin(self, path):
        dst = os.path.join(self.plugins_dir, os.path.basename(path))
        shutil.copy2(path, dst)
        self.installed.append(dst)
        return dst

    def prepare(self):
        for p in self.plugins:
            self.install_plugin(p)
        self.plugins = []
        with open(os.path.join(self.user_dir, "prefs.xml"), "w") as f:
            f.write(plugins_prefs_xml("finch", self.installed))
        if self.account:
            with open(os.path.join(self.user_dir, "accounts.xml"), "w") as f:
                f.write(accounts_xml(self.account, "gnt-purple"))
        if self.chats:
            with open(os.path.join(self.user_dir, "blist.xml"), "w") as f:
                f.write(blist_xml(self.account["jid"], self.chats, "gnt-autojoin"))
        with open(self.tmux_conf, "w") as f:
            f.write("set -g status off\nset -g remain-on-exit on\n"
                    "set -g default-terminal xterm-256color\nset -g escape-time 0\n")

    def _tmux(self, *args, timeout=10, check=True):
        argv = [TMUX, "-S", self.socket, "-f", self.tmux_conf, *args]
        env = self.env()
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"timed out after {timeout}s running {argv!r}") from None
        if check and cp.returncode != 0:
            raise HarnessError(f"{argv!r} exited {cp.returncode}: {cp.stderr.strip()}")
        return cp

    def start(self, timeout=15):
        self.prepare()
        argv = [FINCH, "-c", self.user_dir, "-d"]
        envargs = [f"{k}={v}" for k, v in self.env().items()]
        script = (f'/usr/bin/env -i "$@" 2>>{shlex.quote(self.debug_path)}; '
                  f'echo "$?" > {shlex.quote(self.status_path)}')
        self._tmux("new-session", "-d", "-s", "finch", "-n", "finch",
                   "-x", str(self.width), "-y", str(self.height),
                   "/bin/sh", "-c", script, "sh", *envargs, *argv)
        info = self._tmux("display-message", "-p", "-t", "finch",
                          "#{pane_pid} #{pid}").stdout.split()
        self.shell_pid, self.tmux_pid = int(info[0]), int(info[1])
        self.pid = wait_for(self._find_pid, timeout,
                            lambda: f"the finch process to appear\n{self.diagnostics()}")
        return self

    def _find_pid(self):
        try:
            with open(f"/proc/{self.shell_pid}/task/{self.shell_pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        for pid in kids:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "finch":
                        return pid
            except OSError:
                pass
        if os.path.exists(self.status_path):
            raise AssertionError(f"finch exited at once\n{self.diagnostics()}")
        return None

    def alive(self):
        return self.pid is not None and pid_alive(self.pid)

    def exit_status(self):
        try:
            with open(self.status_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def debug_text(self):
        return read_text(self.debug_path)

    def wait_debug(self, text, timeout=15):
        return wait_for(lambda: text in self.debug_text() or (not self.alive() and None),
                        timeout, lambda: f"{text!r} in finch's debug log\n{self.diagnostics()}")

    def screen(self):
        if self.tmux_pid is None or not pid_alive(self.tmux_pid):
            return "(no tmux)"
        cp = self._tmux("capture-pane", "-p", "-J", "-t", "finch", check=False)
        return "\n".join(line.rstrip() for line in cp.stdout.splitlines()).rstrip()

    def send_keys(self, *keys):
        self._tmux("send-keys", "-t", "finch", *keys)

    def text(self):
        """The front window's text as one line (Finch wraps long lines itself): the rows
        between its left border and its right one (the 'k' of its top)."""
        rows = self.screen().splitlines()
        top = re.match(r"l[^k]*k", rows[0]) if rows else None
        right = top.end() - 1 if top else 200
        return " ".join(r[1:right].rstrip(" a") for r in rows[1:] if r.startswith("x"))

    def shown(self, text, timeout=30):
        """Until the front window shows `text`."""
        return wait_for(lambda: text in self.text(), timeout,
                        lambda: f"{text!r} on Finch's screen\n{self.diagnostics()}",
                        interval=0.3)

    def window(self, title, timeout=30):
        """Brings the window `title` of the task bar to the front (gnt: M-N, window N)."""
        def number():  # the task bar: the lowest row with a tab that starts with title
            for row in reversed(self.screen().splitlines()):
                tabs = [t.strip() for t in row.split("x")]
                n = next((i + 1 for i, t in enumerate(tabs) if t.startswith(title)), None)
                if n:
                    return n
            return None
        n = wait_for(number, timeout, lambda: f"a window {title!r}\n{self.diagnostics()}",
                     interval=0.3)
        self.send_keys(f"M-{n}")
        wait_for(lambda: title in self.screen().splitlines()[0], 10,
                 lambda: f"{title!r} in front\n{self.diagnostics()}", interval=0.2)

    def type_line(self, text):
        """Types `text` into the front window and presses Enter."""
        self.send_keys("-l", text)
        self.send_keys("Enter")

    def diagnostics(self, lines=40):
        status = ("running" if self.alive() else
                  f"exited {self.exit_status()}" if self.exit_status() is not None else
                  "not running")
        return (f"  finch (pid {self.pid}, {status}), dir {self.dir}\n"
                f"  finch screen:\n{tail(self.screen(), 25)}\n"
                f"  finch debug log tail:\n{tail(self.debug_text(), lines)}")

    def restart(self, while_stopped=None, timeout=15):
        """Stops finch (and its tmux server) keeping its profile, runs while_stopped(),
        and starts it again on the same profile."""
        keep, self.keep_dir = self.keep_dir, True
        try:
            self.stop()
        finally:
            self.keep_dir = keep
        if os.path.exists(self.status_path):
            os.unlink(self.status_path)
        if while_stopped:
            while_stopped()
        return self.start(timeout)

    def stop(self):
        if self.pid is not None and pid_alive(self.pid):
            try:
                os.kill(self.pid, 15)
                wait_for(lambda: not pid_alive(self.pid), 5, "finch to exit")
            except (ProcessLookupError, AssertionError):
                try:
                    os.kill(self.pid, 9)
                except ProcessLookupError:
                    pass
        if self.tmux_pid is not None:
            self._tmux("kill-server", check=False)
            try:
                wait_for(lambda: not pid_alive(self.tmux_pid), 5, "tmux to exit")
            except AssertionError:
                try:
                    os.kill(self.tmux_pid, 9)
                except ProcessLookupError:
                    pass
        if self.keep_dir:
            sys.stderr.write(f"# kept finch dir {self.dir}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class FinchResult:
    """finch_loads_plugin()'s answer: truthy if the plugin loaded; str() is the
    diagnostics (report, screen, debug log tail)."""

    def __init__(self, loaded, why, report=None, plugin=None, debug="", screen=""):
        self.loaded = loaded
        self.why = why
        self.report = report          # the reporter's last JSON report (dict) or None
        self.plugin = plugin          # the report's entry for the plugin, or None
        self.debug = debug
        self.screen = screen

    def __bool__(self):
        return bool(self.loaded)

    def __str__(self):
        return (f"finch {'loaded' if self.loaded else 'did NOT load'} the plugin: {self.why}\n"
                f"  plugin entry: {self.plugin}\n"
                f"  finch screen:\n{tail(self.screen, 20)}\n"
                f"  finch debug log tail:\n{tail(self.debug, 40)}")


def finch_loads_plugin(plugin_so_path, plugin_id, timeout=30, env=None):
    """Start Finch with `plugin_so_path` in its purple user dir's plugins/ and in
    prefs.xml's /finch/plugins/loaded, followed by a reporter plugin built here
    that writes, from inside Finch, every plugin's id/path/loaded/error. The
    answer is truthy when the plugin with `plugin_id` is loaded both when the
    reporter loads and 2 s later. Finch and its tmux server are stopped after."""
    why = finch_missing()
    if why:
        raise HarnessError(why)
    build = tempfile.mkdtemp(prefix="mend-finch-reporter-")
    try:
        reporter = build_purple_plugin(REPORTER_C, os.path.join(build, "zz_mend_reporter.so"))
        report_path = os.path.join(build, "report.jsonl")
        extra = dict(env or {})
        extra["MEND_FINCH_REPORT"] = report_path
        f = Finch(plugins=[plugin_so_path, reporter], env=extra)
        try:
            f.start()

            def reports():
                try:
                    with open(report_path) as fh:
                        return [json.loads(x) for x in fh if x.strip()]
                except (OSError, ValueError):
                    return []

            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                rs = reports()
                if any(r["when"] == "later" for r in rs) or not f.alive():
                    break
                time.sleep(0.1)
            rs = reports()
            debug, screen = f.debug_text(), f.screen()
            alive = f.alive()
            status = "running" if alive else f"finch exited ({f.exit_status()})"
        finally:
            f.stop()
        if not rs:
            return FinchResult(False, f"the reporter plugin never ran ({status})",
                               debug=debug, screen=screen)
        base = os.path.basename(plugin_so_path)

        def entry(r):
            for p in r["plugins"]:
                if p["id"] == plugin_id or os.path.basename(p["path"]) == base:
                    return p
            return None

        last = rs[-1]
        pl = entry(last)
        if pl is None:
            return FinchResult(False, f"libpurple did not list {base} ({plugin_id}); "
                               f"{status}", report=last, debug=debug, screen=screen)
        if os.path.dirname(os.path.realpath(pl["path"])) != os.path.realpath(f.plugins_dir):
            return FinchResult(False, f"libpurple took {pl['path']}, not the copy in "
                               f"{f.plugins_dir}: a plugin installed elsewhere won",
                               report=last, plugin=pl, debug=debug, screen=screen)
        if pl["id"] != plugin_id:
            return FinchResult(False, f"{base} has id {pl['id']!r}, not {plugin_id!r}",
                               report=last, plugin=pl, debug=debug, screen=screen)
        if not all((entry(r) or {}).get("loaded") for r in rs):
            return FinchResult(False, f"not loaded (error {pl['error']!r}); {status}",
                               report=last, plugin=pl, debug=debug, screen=screen)
        if last["when"] != "later":
            return FinchResult(False, f"no report 2 s after loading; {status}",
                               report=last, plugin=pl, debug=debug, screen=screen)
        if not alive:
            return FinchResult(False, status, report=last, plugin=pl, debug=debug,
                               screen=screen)
        return FinchResult(True, f"loaded in Finch (ui {last['ui']!r})", report=last,
                           plugin=pl, debug=debug, screen=screen)
    finally:
        if not os.environ.get("MEND_E2E_KEEP"):
            shutil.rmtree(build, ignore_errors=True)
