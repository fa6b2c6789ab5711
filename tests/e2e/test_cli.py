#!/usr/bin/python3
"""The `mend` client on a real Prosody (127.0.0.1, started and stopped here):
1:1 chat both ways, carbons between two of alice's devices, offline delivery
and archive catch-up, a device added later, a forged carbon, interop with an
independent python-omemo peer, and a message queued across a restart.

Every scenario drives the real binary and reads its --json output.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run, skip, start_omemo_peer, test, wait_for, wait_ready, main  # noqa: E402

from mendcli import (MEND, Mend, iso, messages, server, wait_listening,  # noqa: E402
                     wait_message)

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")


def speaks_omemo2():
    """What `mend --version` says: a line "OMEMO:2 ...: yes" on a build that speaks it."""
    out = subprocess.run([MEND, "--version"], capture_output=True, text=True,
                         timeout=20).stdout
    return re.search(r"^OMEMO:2\b.*:\s*yes$", out, re.M) is not None


@test
def alice_and_bob_talk_both_ways():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, bob = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        alice.publish()
        with bob.listen() as bl:
            wait_listening(bl)
            cp = alice.send("bob@localhost", "hello bob, this is secret")
            sent = [o for o in alice.lines(cp) if o["type"] == "sent"]
            assert sent and sent[0]["devices"] >= 1, f"no sent line: {cp.stdout}"
            m = wait_message(bl, "hello bob, this is secret")
            assert m["from"] == "alice@localhost" and m["device"] == alice.device_id(), m
            # two mend devices: OMEMO:2 when the build speaks it (libomemo-c), legacy on
            # libsignal-protocol-c
            want = "2" if speaks_omemo2() else "0.3"
            assert m["carbon"] is None and m["archived"] is False and m["version"] == want, m
        with alice.listen() as al:
            wait_listening(al)
            bob.send("alice@localhost", "hi alice")
            wait_message(al, "hi alice")
        archive = srv.log_text()
        assert "hello bob, this is secret" not in archive, "plaintext reached the server log"


@test
def carbons_between_alices_devices():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone, laptop = Mend(srv, root, "alice", "phone"), Mend(srv, root, "alice", "laptop")
        bob = Mend(srv, root, "bob", "desk")
        bob.publish()
        phone.publish()
        with laptop.listen() as ll, phone.listen() as pl:
            wait_listening(ll)
            wait_listening(pl)
            # the phone's device sends (a second process of the same device)
            Mend(srv, root, "alice", "phone-cli", device="phone").send("bob@localhost",
                                                                      "sent from my phone")
            m = wait_message(ll, "sent from my phone", carbon="sent")
            assert m["outgoing"] is True and m["peer"] == "bob@localhost", m
            # bob writes to the phone's resource: the laptop gets a received carbon
            bob.send("alice@localhost/phone", "for your phone")
            wait_message(pl, "for your phone", carbon=None)
            m = wait_message(ll, "for your phone", carbon="received")
            assert m["from"] == "bob@localhost", m


@test
def offline_messages_arrive_once_in_order_with_their_time():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, bob = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        bob.publish()
        bodies = [f"offline message {i:02d}" for i in range(20)]
        for b in bodies:
            alice.send("bob@localhost", b)
        sent_at = time.time()
        # let the clock pass the send time, so "original time" is distinguishable
        wait_for(lambda: time.time() >= sent_at + 2.0, 5, "the clock to move on")
        with bob.listen("--count", "20", "--timeout", "60") as bl:
            wait_for(lambda: len(messages(bl)) >= 20, 60, "bob to get all 20 messages")
            assert bl.wait_exit(20) == 0, bl.describe()
            got = messages(bl)
        assert [m["body"] for m in got] == bodies, [m["body"] for m in got]
        for m in got:
            assert iso(m["timestamp"]) <= sent_at + 1, f"not the original time: {m}"
        with bob.listen("--timeout", "4") as again:
            assert again.wait_exit(30) == 0, again.describe()
            assert messages(again) == [], f"delivered twice: {messages(again)}"


@test
def a_new_device_gets_new_messages_only():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        phone.publish()
        alice.send("bob@localhost", "before the tablet")
        tablet = Mend(srv, root, "bob", "tablet")
        tablet.publish()
        cp = alice.send("bob@localhost", "after the tablet")
        assert alice.lines(cp)[-1]["devices"] == 2, cp.stdout
        with tablet.listen("--count", "1", "--timeout", "30") as tl:
            wait_message(tl, "after the tablet")
        cp = tablet.run("history", "alice@localhost")
        assert cp.returncode == 0, cp.stderr
        lines = tablet.lines(cp)
        bodies = [o.get("body") for o in lines if o["type"] == "message"]
        assert "after the tablet" in bodies and "before the tablet" not in bodies, lines
        assert any(o["type"] == "error" for o in lines), \
            f"the earlier message should be reported as not for this device: {lines}"


@test
def a_listener_learns_new_devices_by_pep_notification():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        laptop, bob = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        laptop.publish()
        with bob.listen() as bl:
            wait_listening(bl)
            mark = bl.mark()
            Mend(srv, root, "alice", "tablet").publish()
            # XEP-0163 +notify through our caps: the server pushes alice's new list
            ev = bl.wait_line(lambda o: o.get("type") == "devicelist" and
                              o["jid"] == "alice@localhost" and o["devices"] == 2, 20,
                              "bob's listener to be told alice has two devices", start=mark)
            assert ev["devices"] == 2, ev


@test
def a_forged_carbon_is_rejected():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        bob = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"))
        with bob, alice.listen() as al:
            wait_ready(bob)
            wait_listening(al)
            # bob forges a "sent" carbon claiming alice's other device sent this
            forged = (f"<message to='{srv.jid('alice', 'laptop')}' type='chat'>"
                      "<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                      f"<message xmlns='jabber:client' from='{srv.jid('alice', 'phone')}' "
                      "to='bob@localhost' type='chat'><body>forged text</body>"
                      "<encrypted xmlns='eu.siacs.conversations.axolotl'>"
                      "<header sid='12345'><key rid='1'>AAAA</key><iv>AAAAAAAAAAAAAAAA</iv>"
                      "</header><payload>AAAA</payload></encrypted></message>"
                      "</forwarded></sent></message>")
            bob.send_line("raw " + forged)
            bob.wait_line(lambda o: o["type"] == "raw_sent", 10, "bob to send the forgery")
            bob.send_line("send alice@localhost a real message")
            wait_message(al, "a real message")
            assert not [o for o in al.lines if "forged" in json.dumps(o)], al.describe()
            assert not [o for o in al.lines if o.get("carbon") == "sent"], al.describe()


@test
def interop_with_python_omemo_both_ways_and_carbons():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        b1 = start_omemo_peer(srv, "bob", "py1", os.path.join(root, "bob-py1"))
        b2 = start_omemo_peer(srv, "bob", "py2", os.path.join(root, "bob-py2"))
        with b1, b2:
            wait_ready(b1)
            wait_ready(b2)
            for peer in (b1, b2):
                peer.send_line("refresh bob@localhost")
                peer.wait_line(lambda o: o["type"] == "refreshed", 20, "refresh")
            alice.send("bob@localhost", "from mend to python")
            for peer in (b1, b2):
                m = peer.wait_line(lambda o: o["type"] == "message" and
                                   o["body"] == "from mend to python", 30,
                                   f"{peer.name} to decrypt mend's message")
                assert m["from"] == "alice@localhost", m
            with alice.listen() as al:
                wait_listening(al)
                b1.send_line("send alice@localhost from python to mend")
                wait_message(al, "from python to mend")
                m = b2.wait_line(lambda o: o["type"] == "message" and
                                 o["body"] == "from python to mend", 30,
                                 "bob's second device to decrypt the sent carbon")
                assert m["carbon"] == "sent", m


@test
def a_message_queued_before_a_restart_is_sent_once():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, bob = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        bob.publish()
        alice.publish()
        srv.halt()
        cp = alice.send("bob@localhost", "queued while the server was down", expect_rc=75)
        assert "queue" in cp.stderr.lower(), cp.stderr
        srv.restart()
        with bob.listen() as bl:
            wait_listening(bl)
            with alice.listen("--timeout", "8") as al:
                wait_message(bl, "queued while the server was down", timeout=30)
                al.wait_exit(30)
            with alice.listen("--timeout", "4") as al2:
                al2.wait_exit(30)
            n = [m for m in messages(bl) if m["body"] == "queued while the server was down"]
            assert len(n) == 1, f"want exactly one copy, got {len(n)}: {bl.describe()}"


@test
def defaults_from_the_config_file_and_passwords_from_env_or_keyring():
    import shutil
    import subprocess
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        alice = Mend(srv, root, "alice", "laptop")
        cfg = os.path.join(alice.env["XDG_CONFIG_HOME"], "mend")
        os.makedirs(cfg, exist_ok=True)
        with open(os.path.join(cfg, "config"), "w") as f:
            f.write(f"[mend]\njid=alice@localhost/laptop\nserver={srv.address}\ntls=off\n"
                    f"data-dir={os.path.join(alice.dir, 'data')}\n")
        # only the command: everything else from the config file, the password from the env
        env = dict(alice.env, MEND_PASSWORD="pw")
        cp = run([MEND, "--json", "send", "bob@localhost", "configured"], timeout=60, env=env)
        assert cp.returncode == 0, cp.stderr
        with bob.listen("--count", "1", "--timeout", "30") as bl:
            wait_message(bl, "configured")
        # no password anywhere: one sentence naming the three ways, exit 2
        cp = run([MEND, "send", "bob@localhost", "x"], timeout=60, env=alice.env)
        assert cp.returncode == 2 and "MEND_PASSWORD" in cp.stderr, cp.stderr
        # the Secret Service: a real gnome-keyring in a private D-Bus session
        if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
            skip("no dbus-run-session / gnome-keyring-daemon")
        # the daemon owns its bus name a little after --unlock returns: a lookup before that
        # starts a second daemon by D-Bus activation, whose keyring is locked (a flake under
        # load: "Cannot create an item in a locked collection"); wait for it, 10 s at most
        script = ('eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)"; '
                  'n=0; until dbus-send --session --print-reply --dest=org.freedesktop.DBus '
                  '/org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner '
                  'string:org.freedesktop.secrets >/dev/null 2>&1; do n=$((n + 1)); '
                  '[ $n -lt 100 ] || { echo "no org.freedesktop.secrets after 10 s" >&2; exit 3; }; '
                  'sleep 0.1; done; '
                  'printf pw | "$0" account add alice@localhost && '
                  '"$0" --json send bob@localhost "password from the keyring"')
        keyenv = {k: v for k, v in alice.env.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
        cp = subprocess.run(["timeout", "90", "dbus-run-session", "--", "sh", "-c", script, MEND],
                            capture_output=True, text=True, env=keyenv, timeout=120)
        assert cp.returncode == 0, f"{cp.returncode}: {cp.stdout} {cp.stderr}"
        with bob.listen("--count", "1", "--timeout", "30") as bl:
            wait_message(bl, "password from the keyring")


if __name__ == "__main__":
    main()
