#!/usr/bin/python3
"""A changed identity key in the Pidgin/Finch plugin (headless libpurple,
tests/purple/harness) and in the real Profanity (tmux), over a real Prosody: bob's phone makes a new key and
writes; alice's chat says the message is kept until she accepts that key;
`/mend trust JID DEVICE` without the fingerprint shows the old and the new
fingerprint and the command and changes nothing; with the fingerprint the key is
accepted and the kept message is shown.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, test, main  # noqa: E402
from mendcli import BUILD, Mend, server, wait_published  # noqa: E402
from profanity import Profanity, profanity_missing  # noqa: E402
from purple import Purple, purple_missing  # noqa: E402

PLUGIN = os.path.join(BUILD, ".libs", "mend-purple.so")
PROF_PLUGIN = os.path.join(BUILD, ".libs", "mend.so")
PROF_MODULE = os.path.join(BUILD, ".libs", "mend-profanity-module.so")

why = purple_missing() or profanity_missing()
if why:
    skip(why)
if os.environ.get("MEND_SANITIZERS"):
    skip("a sanitizer build: the plugins cannot load into the hosts")
if not all(os.path.exists(p) for p in (PLUGIN, PROF_PLUGIN, PROF_MODULE)):
    skip("the plugins are not built")


def fingerprint(me):
    cp = me.run("fingerprint")
    assert cp.returncode == 0, cp.stderr
    return me.lines(cp)[0]["fingerprint"]


def grouped(fp):
    return " ".join(fp[i:i + 8] for i in range(0, 64, 8))


@test
def pidgin_accepts_a_changed_key_only_by_its_fingerprint():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = Mend(srv, root, "bob", "phone")
        phone.publish()
        pid, old = phone.device_id(), fingerprint(phone)
        with Purple(srv, "alice", plugins=("core-mend",),
                    plugin_dir=os.path.dirname(PLUGIN)) as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")
            phone.send("alice@localhost", "under the old key")
            a.wait_im(lambda o: o["text"].endswith("under the old key"), timeout=30,
                      flags=("recv",))
            assert phone.run("identity", "reset").returncode == 0
            new = fingerprint(phone)
            phone.send("alice@localhost", "under the new key")
            a.wait_im(lambda o: f"trust bob@localhost {pid} {new}" in o["text"], timeout=30)
            assert not [m for m in a.ims() if m["text"].endswith("under the new key")]
            mark = a.mark()
            a.cmd("bob@localhost", f"/mend trust bob@localhost {pid}")
            said = a.wait_im(lambda o: "showed a new key" in o["text"], timeout=10, start=mark)
            assert grouped(old) in said["text"] and grouped(new) in said["text"], said
            assert f"/mend trust bob@localhost {pid} {new}" in said["text"], said
            assert not [m for m in a.ims() if m["text"].endswith("under the new key")]
            a.cmd("bob@localhost", f"/mend trust bob@localhost {pid} {grouped(new)}")
            got = a.wait_im(lambda o: o["text"].endswith("under the new key"), timeout=30,
                            flags=("recv",))
            assert "[verified]" in got["text"], got


@test
def profanity_accepts_a_changed_key_only_by_its_fingerprint():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = Mend(srv, root, "bob", "phone")
        phone.publish()
        pid, old = phone.device_id(), fingerprint(phone)
        with Profanity(srv, "alice", resource="prof", plugins=[PROF_PLUGIN],
                       env={"MEND_PROFANITY_MODULE": PROF_MODULE}) as p:
            p.connect()
            wait_published(srv, root, "alice")
            phone.send("alice@localhost", "under the old key")
            p.wait_message("bob@localhost", "under the old key", timeout=30)
            assert phone.run("identity", "reset").returncode == 0
            new = fingerprint(phone)
            phone.send("alice@localhost", "under the new key")
            p.wait_screen(f"trust bob@localhost {pid} {new}", 30, "the held message's notice")
            p.win(1)
            p.command(f"/mend trust bob@localhost {pid}")
            p.wait_screen(f"/mend trust bob@localhost {pid} {new}", 10, "the command to accept")
            screen = p.screen()
            assert grouped(old) in screen and grouped(new) in screen, screen
            assert "under the new key" not in screen, screen
            p.command(f"/mend trust bob@localhost {pid} {new}")
            p.wait_message("bob@localhost", "under the new key", timeout=30)


if __name__ == "__main__":
    main()
