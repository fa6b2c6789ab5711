#!/usr/bin/python3
"""Sessions that mend themselves, over a real Prosody with the mend client and
an independent python-omemo peer (omemo_peer.py):

- heartbeats: after a prekey message mend answers with an empty key transport,
  so python-omemo's next message is no prekey message any more; python-omemo's
  own heartbeats are never shown, counted or reported by `listen` or `history`,
  whichever of alice's devices they reach;
- repair: a python-omemo device restored from a backup writes on a session mend
  has moved past; mend says so, asks the device to start over (a key transport
  in a PreKeySignalMessage) and the following messages decrypt both ways;
- identity reset: bob's mend device announces its new key to alice at once;
  alice is told, her device list shows the new key, nothing reaches it until
  she verifies bob's new URI, then bob reads her message;
- Profanity and libpurple with mend show python-omemo's heartbeats nowhere.
"""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, start_omemo_peer, test, wait_ready, main  # noqa: E402
from mendcli import BUILD, MEND, Mend, messages, server, wait_listening, wait_message  # noqa: E402,E501

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")


def peer_sends(peer, to, text):
    """python-omemo sends `text`; returns its "sent" line."""
    m = peer.mark()
    peer.send_line(f"send {to} {text}")
    sent = peer.wait_line(lambda o: o["type"] in ("sent", "command_error"), 30,
                          f"{peer.name} to send {text!r}", start=m)
    assert sent["type"] == "sent" and not sent["errors"], sent
    return sent


def prekey_to(sent, device):
    """Whether the sent message was a prekey message for `device`."""
    return [r["prekey"] for r in sent["recipients"] if r["device"] == device]


def protocol_noise(proc):
    """Lines a user would see for key-only messages: empty bodies and errors."""
    return [o for o in proc.lines
            if (o.get("type") == "message" and not o.get("body")) or o.get("type") == "error"]


@test
def heartbeats_move_the_ratchet_and_are_never_shown():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "alice", "phone")
        sender = Mend(srv, root, "alice", "cli", device="laptop")  # the laptop, while it listens
        alice.publish()
        phone.publish()
        aid = alice.device_id()
        bob = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"))
        with bob, alice.listen() as al, phone.listen() as pl:
            wait_ready(bob)
            wait_listening(al)
            wait_listening(pl)
            m = bob.mark()
            sent = peer_sends(bob, "alice@localhost", "first, with a key exchange")
            assert prekey_to(sent, aid) == [True], sent
            wait_message(al, "first, with a key exchange")
            # both of alice's devices got a prekey message: each answers with a heartbeat
            hb = bob.wait_line(lambda o: o["type"] == "empty" and o["device"] == aid, 30,
                               "the laptop's heartbeat to reach python-omemo", start=m)
            assert hb["from"] == "alice@localhost" and hb["prekey"] is False, hb
            sent = peer_sends(bob, "alice@localhost", "second")
            assert prekey_to(sent, aid) == [False], \
                f"python-omemo still sends prekey messages after mend's heartbeat: {sent}"
            wait_message(al, "second")
            # mend starts a session with a new python-omemo device: python-omemo answers
            # with its own heartbeat (an empty message for alice's laptop only)
            tablet = start_omemo_peer(srv, "bob", "py2", os.path.join(root, "bob-py2"))
            with tablet:
                wait_ready(tablet)
                sender.send("bob@localhost", "to both of bob's devices")
                tablet.wait_line(lambda o: o.get("body") == "to both of bob's devices", 30,
                                 "bob's new device to decrypt mend's prekey message")
                # a message sent after the heartbeat arrives after it: a barrier
                peer_sends(tablet, "alice@localhost", "after python-omemo's heartbeat")
                wait_message(al, "after python-omemo's heartbeat")
                wait_message(pl, "after python-omemo's heartbeat")
        for proc in (al, pl):
            assert not protocol_noise(proc), f"key-only messages shown: {protocol_noise(proc)}"
        bodies = [o["body"] for o in messages(al)]
        assert bodies == ["first, with a key exchange", "second",
                          "after python-omemo's heartbeat"], bodies
        # the archive holds the key-only messages too (store hint): history shows none
        cp = alice.run("history", "bob@localhost")
        assert cp.returncode == 0, cp.stderr
        hist = alice.lines(cp)
        assert not [o for o in hist if o["type"] == "message" and not o["body"]], cp.stdout
        assert not [o for o in hist if o["type"] == "error"], cp.stdout
        # listen --count counts messages, not heartbeats
        with alice.listen("--count", "1", "--timeout", "30") as al2:
            peer = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"))
            with peer:
                wait_ready(peer)
                wait_listening(al2)
                peer_sends(peer, "alice@localhost", "counted")
                wait_message(al2, "counted")
                assert al2.wait_exit(30) == 0


@test
def a_python_omemo_device_restored_from_a_backup_is_repaired():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        sender = Mend(srv, root, "alice", "cli", device="laptop")  # the laptop, while it listens
        alice.publish()
        aid = alice.device_id()
        bdir = os.path.join(root, "bob-py")
        backup = os.path.join(root, "omemo.json.backup")
        with alice.listen() as al:
            wait_listening(al)
            bob = start_omemo_peer(srv, "bob", "py", bdir)
            with bob:
                wait_ready(bob)
                m = bob.mark()
                peer_sends(bob, "alice@localhost", "one")
                wait_message(al, "one")
                bob.wait_line(lambda o: o["type"] == "empty", 30, "mend's heartbeat", start=m)
                peer_sends(bob, "alice@localhost", "two")
                wait_message(al, "two")
                shutil.copy(os.path.join(bdir, "omemo.json"), backup)
                for text in ("three", "four", "five"):
                    peer_sends(bob, "alice@localhost", text)
                    wait_message(al, text)
                bob.send_line("quit")
                bob.wait_exit(30)
            # the device comes back from its backup: its session is three messages behind
            shutil.copy(backup, os.path.join(bdir, "omemo.json"))
            bob = start_omemo_peer(srv, "bob", "py", bdir)
            with bob:
                bid = wait_ready(bob)["device"]
                m, ma = bob.mark(), al.mark()
                peer_sends(bob, "alice@localhost", "from the backup")
                err = al.wait_line(lambda o: o.get("type") == "error", 30,
                                   "mend to say it cannot read the restored device", start=ma)
                assert err["device"] == bid and "asked to start a new session" in err["text"], err
                kt = bob.wait_line(lambda o: o["type"] in ("empty", "error") and
                                   o["from"] == "alice@localhost", 30,
                                   "mend's repair to reach python-omemo", start=m)
                assert kt["type"] == "empty" and kt["prekey"] is True and kt["device"] == aid, kt
                sent = peer_sends(bob, "alice@localhost", "after the repair")
                assert prekey_to(sent, aid) == [False], sent
                wait_message(al, "after the repair")
                sender.send("bob@localhost", "and back")
                bob.wait_line(lambda o: o["type"] == "message" and o["body"] == "and back", 30,
                              "python-omemo to read mend after the repair")
                errors = [o for o in al.lines if o.get("type") == "error"]
                assert len(errors) == 1, f"more than the one failure was reported: {errors}"


@test
def an_identity_reset_is_announced_and_held_until_verified():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        sender = Mend(srv, root, "alice", "cli", device="laptop")  # the laptop, while it listens
        phone_cli = Mend(srv, root, "bob", "cli", device="phone")
        phone.publish()
        alice.publish()
        pid = phone.device_id()
        alice.send("bob@localhost", "before the reset")
        with phone.listen("--count", "1", "--timeout", "30") as pl:
            wait_message(pl, "before the reset")
        cp = phone.run("identity", "reset")
        assert cp.returncode == 0, cp.stderr
        new_fp = phone.lines(phone.run("fingerprint"))[0]["fingerprint"]
        with alice.listen() as al:
            wait_listening(al)
            with phone.listen() as pl:
                wait_listening(pl)
                # bob's device tells alice's device its new key as soon as it is online
                told = al.wait_line(lambda o: o.get("type") == "notice" and
                                    o.get("jid") == "bob@localhost", 30,
                                    "alice to be told bob's new key")
                assert new_fp in told["text"] and \
                    f"trust bob@localhost {pid} {new_fp}" in told["text"], told
                assert not protocol_noise(al), protocol_noise(al)
                # tofu: the new key gets nothing before alice accepts it (the trusted old
                # key still does: alice is told again, and bob's device says it cannot
                # read that)
                m = pl.mark()
                cp = sender.run("send", "bob@localhost", "not to the new key")
                said = [o["text"] for o in sender.lines(cp) if o["type"] == "notice"]
                assert [t for t in said if "shows a new identity key" in t and
                        f"trust bob@localhost {pid} {new_fp}" in t], cp.stdout
                err = pl.wait_line(lambda o: o.get("type") == "error", 30,
                                   "bob's device to say it cannot read the old key's message",
                                   start=m)
                assert "asked to start a new session" in err["text"], err
                # the device list shows the new key beside the old one, and bob's real
                # verification URI (with the new key) is taken
                cp = sender.run("devices", "bob@localhost")
                d = [o for o in sender.lines(cp) if o["type"] == "device" and
                     o["device"] == pid]
                assert d and d[0]["new_fingerprint"] == new_fp, cp.stdout
                uri = phone_cli.lines(phone_cli.run("uri"))[0]["uri"]
                assert f"omemo-sid-{pid}={new_fp}" in uri, uri
                cp = sender.run("verify", uri)
                assert cp.returncode == 0, cp.stderr
                sender.send("bob@localhost", "after accepting")
                wait_message(pl, "after accepting")
                assert not [o for o in pl.lines if o.get("body") == "not to the new key"]
                assert len([o for o in al.lines if o.get("type") == "notice" and
                            o.get("jid") == "bob@localhost"]) == 1, \
                    "the new key was told more than once"

def heartbeat_then_message(peer, say):
    """The host (through `say`) starts a session with python-omemo, which answers with
    its own heartbeat (an empty message) and then a real message: the heartbeat
    reached alice's host first."""
    peer.send_line("refresh alice@localhost")
    peer.wait_line(lambda o: o["type"] == "refreshed" and o["devices"], 20,
                   "the peer to see alice's device")
    m = peer.mark()
    say("bob@localhost", "to python-omemo")
    peer.wait_line(lambda o: o["type"] == "message" and o["body"] == "to python-omemo", 30,
                   "python-omemo to decrypt mend's first message", start=m)
    peer_sends(peer, "alice@localhost", "after the heartbeat")


@test
def libpurple_shows_no_key_only_message():
    from purple import Purple, purple_missing
    why = purple_missing()
    libs = os.path.join(BUILD, ".libs")
    if why or not os.path.exists(os.path.join(libs, "mend-purple.so")):
        skip(why or "mend-purple.so is not built")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        peer = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"))
        with peer, Purple(srv, "alice", resource="purple", plugins=("core-mend",),
                          plugin_dir=libs) as a:
            wait_ready(peer)
            a.wait_signed_on()
            a.cmd("bob@localhost", "/mend on")
            heartbeat_then_message(peer, a.send)
            a.wait_im(lambda o: o["text"].endswith("after the heartbeat"), timeout=30,
                      flags=("recv",))
            a.ping()
            got = [o for o in a.ims() if "recv" in o.get("flags", ())]
            assert len(got) == 1, f"libpurple showed more than the one message: {got}"
            assert not [o for o in a.ims() if "decrypt" in o["text"] or
                        "this device" in o["text"]], a.ims()


@test
def profanity_shows_no_key_only_message():
    from profanity import Profanity, profanity_missing
    # an ASan-built module cannot load into the uninstrumented Profanity (HOSTS.md)
    why = profanity_missing() or (os.environ.get("MEND_SANITIZERS") and "a sanitizer build")
    libs = os.path.join(BUILD, ".libs")
    plugin, module = os.path.join(libs, "mend.so"), os.path.join(libs, "mend-profanity-module.so")
    if why or not (os.path.exists(plugin) and os.path.exists(module)):
        skip(why or "mend.so is not built")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        peer = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"))
        with peer, Profanity(srv, "alice", env={"MEND_PROFANITY_MODULE": module},
                             plugins=[plugin]) as p:
            wait_ready(peer)
            p.connect()
            p.win(1)
            p.command("/mend status")
            p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), 20, "mend to be ready")
            p.command("/mend on bob@localhost")
            heartbeat_then_message(peer, p.say)
            p.wait_message("bob@localhost", "after the heartbeat", timeout=30)
            theirs = [line for line in p.message_lines() if re.search(r" bob:( |$)", line)]
            assert len(theirs) == 1, f"Profanity showed more than the one message: {theirs}"
            assert not [line for line in p.message_lines() if "decrypt" in line or
                        "this device" in line], p.message_lines()


if __name__ == "__main__":
    main()
