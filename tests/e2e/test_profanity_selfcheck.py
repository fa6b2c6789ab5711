#!/usr/bin/python3
"""Self-check of tests/e2e/profanity.py (the driver for real Profanity 0.13.1),
with no mend involved:

  1. a trivial C plugin built here loads in Profanity (at start-up from the
     profrc load list, and at run time with /plugins load);
  2. two Profanity instances exchange a plain message both ways;
  3. Profanity's built-in OMEMO and the python-omemo peer exchange an
     OMEMO-encrypted message both ways.

    /usr/bin/python3 tests/e2e/test_profanity_selfcheck.py

TAP on stdout; exit 0 pass, 1 fail, 77 skip.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PYTHON, Prosody, main, pid_alive, run, skip,  # noqa: E402
                     start_omemo_peer, test, wait_for, wait_ready)
from profanity import Profanity, build_c_plugin, profanity_missing  # noqa: E402

why = profanity_missing()
if why:
    skip(why)
elif not shutil.which("prosody"):
    skip("prosody is not installed")
elif not shutil.which("gcc"):
    skip("gcc is not installed")

PLUGIN_C = r"""
#include <stdio.h>
static void mark(const char *what, const char *a, const char *b) {
    FILE *f = fopen(MARKER, "a");
    if (f) { fprintf(f, "%s %s %s\n", what, a ? a : "(null)", b ? b : "(null)"); fclose(f); }
}
void prof_init(const char *version, const char *status, const char *account_name, const char *fulljid)
{ mark("init", account_name, fulljid); (void)version; (void)status; }
void prof_on_start(void) { mark("start", NULL, NULL); }
void prof_on_connect(const char *account_name, const char *fulljid) { mark("connect", account_name, fulljid); }
"""


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def assert_gone(prof):
    """After the with-block: profanity, its tmux server and its temp dir are gone."""
    assert prof.pid and not pid_alive(prof.pid), f"profanity {prof.pid} still alive"
    assert prof.tmux_pid and not pid_alive(prof.tmux_pid), f"tmux server {prof.tmux_pid} still alive"
    assert not os.path.exists(prof.dir), f"{prof.dir} not removed"


@test
def c_plugin_loads():
    tmp = tempfile.mkdtemp(prefix="mend-plugin-")
    try:
        m1, m2 = os.path.join(tmp, "m1"), os.path.join(tmp, "m2")
        so1 = build_c_plugin(PLUGIN_C, os.path.join(tmp, "selfcheck.so"), cflags=[f'-DMARKER="{m1}"'])
        so2 = build_c_plugin(PLUGIN_C, os.path.join(tmp, "selfcheck2.so"), cflags=[f'-DMARKER="{m2}"'])
        with Prosody(accounts={"alice": "pw"}) as srv:
            with Profanity(srv, "alice", plugins=[so1]) as a:
                # loaded at start-up from profrc's [plugins] load=selfcheck.so;
                assert read(m1).splitlines()[:2] == ["init (null) (null)", "start (null) (null)"], read(m1)
                assert a.plugins_loaded() == ["selfcheck.so"], a.plugins_loaded()
                a.command("/plugins")
                a.wait_screen(lambda s: "Loaded plugins:\n  selfcheck.so" in s, 5,
                              "/plugins to list selfcheck.so")
                a.connect()
                wait_for(lambda: "connect alice alice@localhost/prof" in read(m1), 5,
                         lambda: f"prof_on_connect in the marker: {read(m1)!r}")
                # loaded at run time while connected: prof_init gets account and JID,
                # and Profanity adds it to profrc's load list
                a.install_plugin(so2, load_at_start=False)
                a.command("/plugins load selfcheck2.so")
                a.wait_screen("Loaded plugin: selfcheck2.so", 5)
                assert read(m2) == "init alice alice@localhost/prof\n", read(m2)
                wait_for(lambda: "load=selfcheck.so;selfcheck2.so;" in read(a.profrc_path), 5,
                         lambda: f"profrc load list: {read(a.profrc_path)}")
                assert a.quit() == "exited 0", a.pane_status()
            assert_gone(a)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def two_profanities_plain_both_ways():
    with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
        with Profanity(srv, "alice") as a, Profanity(srv, "bob") as b:
            a.connect()
            b.connect()
            a.say("bob@localhost", "hello bob, plain; grüße")
            got = b.wait_message("alice@localhost", "hello bob, plain; grüße", sender="alice")
            assert got["mark"] == "-", got          # '-' = unencrypted
            a.wait_message(None, "hello bob, plain; grüße", sender="me", mark="-")
            b.say("alice@localhost", "hi alice, plain back")
            got = a.wait_message("bob@localhost", "hi alice, plain back", sender="bob")
            assert got["mark"] == "-", got
            b.wait_message(None, "hi alice, plain back", sender="me")
            assert "[unencrypted]" in a.title(), a.title()
            # it really went as a plain <body>
            assert "<body>hello bob, plain; grüße</body>" in a.log_text(), "no plain body in alice's log"
        assert_gone(a)
        assert_gone(b)


@test
def builtin_omemo_with_python_peer():
    cp = run([PYTHON, "-c", "import slixmpp, omemo, oldmemo.etree"], timeout=60)
    if cp.returncode != 0:
        skip("python3-slixmpp / python3-omemo / python3-oldmemo / python3-xmlschema missing")
    tmp = tempfile.mkdtemp(prefix="mend-peer-")
    try:
        with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
            bob = start_omemo_peer(srv, "bob", "py", os.path.join(tmp, "bob"))
            with bob, Profanity(srv, "alice") as a:
                ready = wait_ready(bob)
                a.connect()
                assert a.server_devicelist() is None      # fresh account: no device list yet
                dev = a.omemo_setup()
                assert a.server_devicelist() == [dev], a.server_devicelist()
                a.omemo_start("bob@localhost", devices=[ready["device"]])
                assert "[OMEMO]" in a.title(), a.title()

                m = bob.mark()
                a.send_keys("omemo hello from profanity")
                got = bob.wait_line(lambda o: o["type"] in ("message", "plain")
                                    and o["from"] == "alice@localhost", 20,
                                    "bob to get alice's message", start=m)
                assert got["type"] == "message", f"not OMEMO: {got}"
                assert got["body"] == "omemo hello from profanity", got
                assert got["device"] == dev, got
                a.wait_message(None, "omemo hello from profanity", sender="me", mark="~")
                assert "omemo hello from profanity</body>" not in a.log_text(), \
                    "the plaintext went out as a <body>"

                m = bob.mark()
                bob.send_line("send alice@localhost omemo reply from python")
                sent = bob.wait_line(lambda o: o["type"] == "sent", 20, "bob to send", start=m)
                assert dev in sent["devices"], sent
                got = a.wait_message("bob@localhost", "omemo reply from python", sender="bob")
                assert got["mark"] == "~", got                # '~' = OMEMO
                assert a.quit() == "exited 0", a.pane_status()
            assert_gone(a)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        main()
    finally:
        sys.stderr.write(f"# total {time.monotonic() - t0:.1f}s\n")
