"""The real Pidgin 2.14 (GTK) for tests: a private X server (Xvfb), openbox as
its window manager, Pidgin with a private --config dir, its debug log (-d)
in a file, xdotool to click and type, ImageMagick's import for screenshots.

    with Pidgin(plugins=[core_so, gtk_so], account=dict(jid=..., port=...)) as p:
        p.wait_debug(r"gtk-mend: bob@localhost.*: encrypted")
        p.screenshot("shot.png")
        p.click(x, y); p.type_text("hello"); p.key("Return")

Standard library only; every wait has a condition and a limit, and a failed
one shows the debug log's tail.
"""

import os
import re
import select
import shutil
import subprocess
import tempfile

from harness import HarnessError, pid_alive, run, tail, wait_for
from purple import _isolated_env, accounts_xml, blist_xml, plugins_prefs_xml, read_text

__all__ = ["Pidgin", "pidgin_missing"]

TOOLS = ("Xvfb", "openbox", "pidgin", "xdotool", "import")


def pidgin_missing():
    """None if Pidgin and the X tools are installed, else why (for skip())."""
    gone = [t for t in TOOLS if not shutil.which(t)]
    if gone:
        return f"not installed: {' '.join(gone)} (scripts/deps.sh installs them)"
    return None


def _stop(p, timeout=5):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)


class Pidgin:
    """Pidgin on its own X display. plugins: .so paths copied to <config>/plugins
    and loaded at start (prefs.xml /pidgin/plugins/loaded); account: as Finch's;
    chats: (room@service, nick) pairs in the buddy list that Pidgin joins when the
    account signs on (its "autojoin" setting)."""

    def __init__(self, plugins=(), account=None, size="1024x768", chats=()):
        self.plugins = list(plugins)
        self.account = account
        self.chats = list(chats)
        self.size = size
        self.dir = tempfile.mkdtemp(prefix="mend-pidgin-")
        self.config = os.path.join(self.dir, "purple")
        self.debug_path = os.path.join(self.dir, "pidgin-debug.log")
        self.procs = []
        self.display = None
        self._display_fd = None
        self.pidgin = None

    def _env(self):
        e = _isolated_env(self.dir)
        if self.display:
            e["DISPLAY"] = self.display
        return e

    def _xvfb(self):
        r, w = os.pipe()
        self.procs.append(subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-screen", "0",
             f"{self.size}x24"], pass_fds=(w,), env=self._env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.close(w)
        self._display_fd = r
        ready, _, _ = select.select([r], [], [], 20)
        number = os.read(r, 32).decode().strip() if ready else ""
        if not number:
            raise HarnessError("Xvfb did not report its display within 20 s")
        self.display = ":" + number

    def start(self):
        plugdir = os.path.join(self.config, "plugins")
        os.makedirs(plugdir, mode=0o700)
        paths = []
        for p in self.plugins:
            paths.append(os.path.join(plugdir, os.path.basename(p)))
            shutil.copy2(p, paths[-1])
        with open(os.path.join(self.config, "prefs.xml"), "w") as f:
            f.write(plugins_prefs_xml("pidgin", paths))
        if self.account:
            with open(os.path.join(self.config, "accounts.xml"), "w") as f:
                f.write(accounts_xml(self.account, "gtk-gaim"))
        if self.chats:
            with open(os.path.join(self.config, "blist.xml"), "w") as f:
                f.write(blist_xml(self.account["jid"], self.chats, "gtk-autojoin"))
        self._xvfb()
        self.procs.append(subprocess.Popen(["openbox"], env=self._env(),
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        self.pidgin = subprocess.Popen(["pidgin", "--config", self.config, "-d"],
                                       env=self._env(), stdout=open(self.debug_path, "w"),
                                       stderr=subprocess.STDOUT)
        self.procs.append(self.pidgin)
        return self

    def alive(self):
        return self.pidgin is not None and pid_alive(self.pidgin.pid) and \
            self.pidgin.poll() is None

    def debug_text(self):
        return read_text(self.debug_path)

    def diagnostics(self):
        state = "running" if self.alive() else f"exited {self.pidgin and self.pidgin.poll()}"
        return f"  pidgin ({state}), dir {self.dir}\n  debug log tail:\n" + \
            tail(self.debug_text(), 30)

    def wait_debug(self, pattern, timeout=30, start=0):
        """The first match of regex `pattern` in the debug log after offset start."""
        rx = re.compile(pattern)

        def found():
            if not self.alive():
                raise AssertionError(f"pidgin died\n{self.diagnostics()}")
            return rx.search(self.debug_text(), start)
        return wait_for(found, timeout, lambda: f"{pattern!r} in Pidgin's debug log\n"
                        f"{self.diagnostics()}", interval=0.2)

    def mark(self):
        return len(self.debug_text())

    def xdotool(self, *args):
        cp = run(["xdotool", *args], 20, env=self._env())
        if cp.returncode != 0:
            raise HarnessError(f"xdotool {args} failed: {cp.stderr}")
        return cp.stdout

    def activate(self, title):
        """Bring the first window whose title contains `title` to the front."""
        wid = wait_for(lambda: run(["xdotool", "search", "--onlyvisible", "--name", title], 10,
                                   env=self._env()).stdout.split(), 20,
                       lambda: f"a window {title!r}\n{self.diagnostics()}", interval=0.3)[0]
        self.xdotool("windowactivate", "--sync", wid)
        return wid

    def click(self, x, y):
        self.xdotool("mousemove", "--sync", str(x), str(y), "click", "1")

    def type_text(self, text):
        self.xdotool("type", "--clearmodifiers", "--delay", "40", text)

    def key(self, name):
        self.xdotool("key", name)

    def screenshot(self, path):
        cp = run(["import", "-display", self.display, "-window", "root", path], 30,
                 env=self._env())
        if cp.returncode != 0 or not os.path.exists(path):
            raise HarnessError(f"import failed: {cp.stderr}")
        return path

    def stop(self):
        for p in reversed(self.procs):
            _stop(p)
        if self._display_fd is not None:
            os.close(self._display_fd)
            self._display_fd = None
        if os.environ.get("MEND_E2E_KEEP"):
            print(f"# kept pidgin dir {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

