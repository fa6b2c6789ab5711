#!/usr/bin/python3
"""A locked keyring in libpurple (Pidgin, Finch) and Profanity: the plugin asks
the desktop to unlock it and works after the answer; when the dialog is
cancelled, /mend status says "keyring locked", and an unlock done later by
hand is picked up by the plugin's retries without a second dialog.

Everything real and private: a D-Bus session bus of our own with its own
gnome-keyring-daemon, and a private X server (Xvfb) where gnome-keyring's
prompter (gcr-prompter) shows its unlock dialog, answered with xdotool as a
user would. dbus-monitor records the bus, so the plugin's Prompt calls
(org.freedesktop.Secret.Prompt.Prompt) are counted. Prosody and the mend
client are the other side, as in test_purple.py.
"""

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HarnessError, _stop_pid, pid_alive, run, skip, tail, test, main, wait_for  # noqa: E402,E501
from mendcli import BUILD, Mend, server, wait_listening, wait_message  # noqa: E402
from purple import Purple, purple_missing  # noqa: E402
from profanity import Profanity, profanity_missing  # noqa: E402

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")
PROF_PLUGIN = os.path.join(LIBS, "mend.so")
PROF_MODULE = os.path.join(LIBS, "mend-profanity-module.so")
LOGIN = "/org/freedesktop/secrets/collection/login"
PROMPT_CALL = "interface=org.freedesktop.Secret.Prompt; member=Prompt"
LOCKED_STATUS = "mend: keyring locked"
ANSWER_PROMPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "answer-prompt.sh")

for tool in ("Xvfb", "xdotool", "dbus-daemon", "dbus-monitor", "gdbus", "gnome-keyring-daemon"):
    if not shutil.which(tool):
        skip(f"{tool} is not installed")
if not any(os.access(p, os.X_OK) for p in ("/usr/libexec/gcr-prompter",
                                           "/usr/lib/gcr/gcr-prompter")):
    skip("gcr-prompter (package gcr) is not installed")
why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")


class PrivateKeyring:
    """Xvfb + a private session bus + gnome-keyring-daemon unlocked with "pw"."""

    def __init__(self, root):
        self.root = os.path.join(root, "keyring")
        self.procs = []
        self.daemon_pid = None
        self.display_fd = None
        self.env = {}

    def _base_env(self):
        home = os.path.join(self.root, "home")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home,
               "XDG_DATA_HOME": os.path.join(home, "data"),
               "XDG_CONFIG_HOME": os.path.join(home, "config"),
               "XDG_CACHE_HOME": os.path.join(home, "cache"),
               "XDG_RUNTIME_DIR": os.path.join(self.root, "run")}
        for k in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                  "XDG_RUNTIME_DIR"):
            os.makedirs(env[k], mode=0o700, exist_ok=True)
        return env

    def _spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def _start_x(self, env):
        r, w = os.pipe()
        self._spawn(["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-screen", "0",
                     "800x600x24"], pass_fds=(w,), env=env, stdout=subprocess.DEVNULL,
                    stderr=open(os.path.join(self.root, "xvfb.log"), "w"))
        os.close(w)
        self.display_fd = r  # open while Xvfb runs: it dies when it cannot write there
        got = b""
        deadline = time.monotonic() + 20
        while not got.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(r, 32) if ready else b""
            if ready and not chunk:
                break
            got += chunk
        if not got.strip():
            raise HarnessError("Xvfb did not report a display within 20 s:\n"
                               + tail(open(os.path.join(self.root, "xvfb.log")).read()))
        return ":" + got.decode().strip()

    def _start_bus(self, env):
        bus = self._spawn(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True)
        ready, _, _ = select.select([bus.stdout], [], [], 20)
        addr = bus.stdout.readline().strip() if ready else ""
        if not addr:
            raise HarnessError("dbus-daemon did not print its address within 20 s")
        return addr

    def host_env(self):
        """What a host needs to reach this keyring and its prompter (its HOME stays its own)."""
        return {k: self.env[k] for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}

    def gdbus(self, *args, timeout=20):
        return run(["gdbus", "call", "--session", *args], timeout, env=self.env)

    def _secrets_pid(self):
        cp = self.gdbus("-d", "org.freedesktop.DBus", "-o", "/org/freedesktop/DBus", "-m",
                        "org.freedesktop.DBus.GetConnectionUnixProcessID",
                        "org.freedesktop.secrets")
        return cp.returncode == 0 and int(cp.stdout.strip("()\n, ").split()[-1])

    def __enter__(self):
        env = self._base_env()
        env["DISPLAY"] = self._start_x(env)  # the prompter, started by the bus, needs it
        env["DBUS_SESSION_BUS_ADDRESS"] = self._start_bus(env)
        self.env = env
        run(["gnome-keyring-daemon", "--unlock", "--components=secrets"], 30, env=env,
            input="pw", check=True)
        self.daemon_pid = wait_for(self._secrets_pid, 20, "gnome-keyring-daemon on the bus")
        self.monitor_path = os.path.join(self.root, "monitor.txt")
        with open(self.monitor_path, "w") as out:
            self._spawn(["dbus-monitor", "--session"], env=env, stdout=out,
                        stderr=subprocess.STDOUT)
        wait_for(lambda: "member=NameLost" in self.monitor(), 10, "dbus-monitor to listen")
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            _stop_pid(p, timeout=5)
        if self.display_fd is not None:
            os.close(self.display_fd)
        # the daemon leaves with its bus; make sure (it is ours: started above)
        if self.daemon_pid and pid_alive(self.daemon_pid):
            try:
                wait_for(lambda: not pid_alive(self.daemon_pid), 5, "gnome-keyring to leave")
            except AssertionError:
                os.kill(self.daemon_pid, 15)

    def monitor(self):
        with open(self.monitor_path, errors="replace") as f:
            return f.read()

    def prompts(self):
        """How many Prompt calls went over the bus so far."""
        return sum(1 for line in self.monitor().splitlines() if line.endswith(PROMPT_CALL))

    def lock(self):
        self.gdbus("-d", "org.freedesktop.secrets", "-o", "/org/freedesktop/secrets", "-m",
                   "org.freedesktop.Secret.Service.Lock", f"['{LOGIN}']")
        assert self.is_locked(), "the login collection did not lock"

    def is_locked(self):
        cp = self.gdbus("-d", "org.freedesktop.secrets", "-o", LOGIN, "-m",
                        "org.freedesktop.DBus.Properties.Get",
                        "org.freedesktop.Secret.Collection", "Locked")
        return "true" in cp.stdout

    def answer(self, *xdotool):
        """In the background: wait (30 s) for a new unlock dialog, then run xdotool with
        each argument (tests/answer-prompt.sh)."""
        return self._spawn(["sh", ANSWER_PROMPT, *xdotool], env=self.env)

    def unlock_by_hand(self):
        """What a user does in Seahorse: unlock the collection, typing the password."""
        typing = self.answer("type --delay 30 pw", "key Return")
        code = ("import gi; gi.require_version('Secret', '1'); "
                "from gi.repository import Secret; "
                "s = Secret.Service.get_sync(Secret.ServiceFlags.NONE, None); "
                "c = Secret.Collection.for_alias_sync(s, 'default', 0, None); "
                "print(s.unlock_sync([c], None))")
        cp = run(["/usr/bin/python3", "-c", code], 40, env=self.env)
        typing.wait(timeout=30)
        assert not self.is_locked(), f"unlock by hand failed: {cp.stdout} {tail(cp.stderr)}"


def status_lines(a, start):
    return [o.get("text", "") for o in a.ims(start=start) if "system" in o.get("flags", ())]


def mend_status(a, jid):
    """/mend status in the chat with jid -> the system line it wrote."""
    m = a.mark()
    r = a.cmd(jid, "/mend status")
    assert r["status"] == "ok", r
    got = wait_for(lambda: [t for t in status_lines(a, m) if t.startswith("mend")], 10,
                   "the status line")
    return got[-1]


def wait_published(bob):
    """Until bob's mend client sees alice's device (so it can encrypt to her)."""
    def seen():
        cp = bob.run("devices", "alice@localhost")
        return cp.returncode == 0 and any(o.get("type") == "device" and o.get("fingerprint")
                                          for o in bob.lines(cp))
    wait_for(seen, 30, "alice's device to be published", interval=0.3)


def with_mend(srv, kr, xml=False):
    return Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS, env=kr.host_env(),
                  xml=xml)


@test
def locked_keyring_prompts_and_works_after_the_unlock():
    with server() as srv, tempfile.TemporaryDirectory() as root, PrivateKeyring(root) as kr:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, kr) as a:
            a.wait_signed_on()
            assert "device" in mend_status(a, "bob@localhost")
            wait_published(bob)
            store = os.path.join(a.user_dir, "mend", "alice@localhost", "omemo.sqlite")
            assert os.path.exists(store) and not os.path.exists(store + ".key"), \
                "the store key is not in the Secret Service"
            a.quit()
            kr.lock()
            before = kr.prompts()
            typing = kr.answer("type --delay 30 pw", "key Return")
            a.start()
            a.wait_signed_on()
            wait_for(lambda: kr.prompts() > before, 30, "the plugin's Prompt call on D-Bus")
            typing.wait(timeout=40)
            wait_for(lambda: not kr.is_locked(), 20, "the answered prompt to unlock")
            assert "device" in mend_status(a, "bob@localhost")
            assert kr.prompts() == before + 1, kr.prompts() - before
            with bob.listen() as bl:
                wait_listening(bl)
                a.cmd("bob@localhost", "/mend on")
                a.send("bob@localhost", "after the unlock")
                wait_message(bl, "after the unlock", timeout=30)


@test
def prompt_cancelled_status_says_locked_and_a_later_unlock_is_picked_up():
    with server() as srv, tempfile.TemporaryDirectory() as root, PrivateKeyring(root) as kr:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, kr, xml=True) as a:
            a.wait_signed_on()
            assert "device" in mend_status(a, "bob@localhost")
            wait_published(bob)
            a.quit()
            kr.lock()
            before = kr.prompts()
            cancel = kr.answer("key Escape")
            a.start()
            a.wait_signed_on()
            cancel.wait(timeout=40)
            wait_for(lambda: LOCKED_STATUS in mend_status(a, "bob@localhost"), 20,
                     "/mend status to say the keyring is locked")
            assert kr.prompts() == before + 1, kr.prompts() - before
            # a message while locked: no fallback text; it comes from the archive later
            m = a.mark()
            bob.send("alice@localhost", "sent while the keyring was locked")
            a.proc.wait_line(lambda o: o["type"] == "xml" and o["dir"] == "in"
                             and "bob@localhost" in o["xml"] and "<encrypted" in o["xml"],
                             30, "bob's message to reach libpurple", start=m)
            mend_status(a, "bob@localhost")  # handled after that stanza: one thread
            shown = [o.get("text") for o in a.ims(start=m) if "recv" in o.get("flags", ())]
            assert not shown, f"shown while locked: {shown}"
            kr.unlock_by_hand()
            wait_for(lambda: "device" in mend_status(a, "bob@localhost"), 20,
                     "the plugin to open the store after the unlock")
            assert kr.prompts() == before + 2, "the retries asked again"
            # from the archive, decrypted (the text may carry a trust mark in front)
            got = a.wait_im(lambda o: o["text"].endswith("sent while the keyring was locked"),
                            timeout=30, flags=("recv",))
            assert got["who"] == "bob@localhost", got



@test
def profanity_says_keyring_locked_and_starts_after_the_unlock():
    if profanity_missing() or not os.path.exists(PROF_MODULE):
        skip(profanity_missing() or f"{PROF_MODULE} is not built")
    if os.environ.get("MEND_SANITIZERS"):
        skip("a sanitizer build: the plugin cannot load into Profanity (HOSTS.md)")
    with server() as srv, tempfile.TemporaryDirectory() as root, PrivateKeyring(root) as kr:
        env = dict(kr.host_env(), MEND_PROFANITY_MODULE=PROF_MODULE)
        with Profanity(srv, "alice", env=env, plugins=[PROF_PLUGIN]) as p:
            p.connect()
            p.win(1)  # mend's status goes to the console
            p.command("/mend status")
            p.wait_screen("mend: alice@localhost, device", 20, "/mend status to answer")
            p.quit()
            kr.lock()
            before = kr.prompts()
            cancel = kr.answer("key Escape")
            p.restart()
            cancel.wait(timeout=40)
            p.win(1)
            p.command("/mend status")
            p.wait_screen("mend: keyring locked", 20, "/mend status to say keyring locked")
            assert kr.prompts() == before + 1, kr.prompts() - before
            kr.unlock_by_hand()
            p.wait_screen("the keyring is unlocked; OMEMO is on again", 20,
                          "the retry to open the store")
            p.command("/clear")
            p.command("/mend status")
            p.wait_screen("mend: alice@localhost, device", 20, "/mend status to answer")
            assert kr.prompts() == before + 2, "the retries asked again"


if __name__ == "__main__":
    main()
