#!/usr/bin/python3
"""Every message the mend client shows carries its sender device's state, over a
real Prosody: a verified device, an untrusted one, a device its owner's device
list does not announce (the list is fetched once more, then the message is shown
marked "unannounced"), and a plaintext message in an encrypted chat
("[unencrypted]", "encrypted": false; hidden by --encrypted-only). Asserted in
`listen --json`, in `history` (human) and in `history --json --encrypted-only`.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run, skip, start_omemo_peer, test, main, wait_ready  # noqa: E402
from mendcli import MEND, Mend, server, wait_listening, wait_message  # noqa: E402

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")

NS = "eu.siacs.conversations.axolotl"


def one(me, *cmd, rc=0):
    cp = me.run(*cmd)
    assert cp.returncode == rc, f"mend {' '.join(cmd)} exited {cp.returncode}: {cp.stderr}"
    return cp


def fingerprint(me):
    return me.lines(one(me, "fingerprint"))[0]["fingerprint"]


def publish_list(peer, ids):
    """bob's device lists as the server keeps them, published by one of bob's clients: the
    legacy one and the OMEMO:2 one (mend's devices are in both; a device is announced when
    either names it)."""
    devices = "".join(f"<device id='{i}'/>" for i in ids)
    peer.send_line(f"raw <iq type='set' id='list-{len(ids)}'><pubsub "
                   f"xmlns='http://jabber.org/protocol/pubsub'><publish node='{NS}.devicelist'>"
                   f"<item id='current'><list xmlns='{NS}'>{devices}</list></item></publish>"
                   f"</pubsub></iq>")
    peer.send_line(f"raw <iq type='set' id='list2-{len(ids)}'><pubsub "
                   f"xmlns='http://jabber.org/protocol/pubsub'>"
                   f"<publish node='urn:xmpp:omemo:2:devices'><item id='current'>"
                   f"<devices xmlns='urn:xmpp:omemo:2'>{devices}</devices></item></publish>"
                   f"</pubsub></iq>")


def human(me, *cmd):
    argv = [a for a in me.argv(*cmd) if a != "--json"]
    cp = run(argv, timeout=60, env=me.env)
    assert cp.returncode == 0, f"mend {' '.join(cmd)} exited {cp.returncode}: {cp.stderr}"
    return cp.stdout


WANT = {  # body: (JSON mark, encrypted, announced, human mark)
    "from a device bob never announced": ("unannounced", True, False, "[unannounced device]"),
    "from the verified phone": ("verified", True, True, "[verified]"),
    "from the untrusted tablet": ("untrusted", True, True, "[untrusted]"),
    "plain hello, no encryption": ("unencrypted", False, True, "[unencrypted]"),
}


@test
def each_message_is_marked_with_its_senders_state():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        phone, tablet = Mend(srv, root, "bob", "phone"), Mend(srv, root, "bob", "tablet")
        phone.publish()
        tablet.publish()
        alice.publish()
        alice.send("bob@localhost", "hello bob")  # alice learns both of bob's keys
        pid, tid = phone.device_id(), tablet.device_id()
        one(alice, "trust", "bob@localhost", str(pid), fingerprint(phone))
        one(alice, "untrust", "bob@localhost", str(tid))

        # a device of bob writes while alice is away; then bob's list no longer names it
        ghost = Mend(srv, root, "bob", "ghost")
        ghost.send("alice@localhost", "from a device bob never announced")
        gid = ghost.device_id()
        with start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py")) as py:
            wait_ready(py)
            publish_list(py, [pid, tid])
            py.wait_line(lambda o: o["type"] == "devicelist" and o["from"] == "bob@localhost"
                         and gid not in o["devices"], 30, "bob's list without the ghost")
            with alice.listen("--count", "4", "--timeout", "90") as al:
                wait_listening(al)
                phone.send("alice@localhost", "from the verified phone")
                tablet.send("alice@localhost", "from the untrusted tablet")
                # plaintext in the encrypted chat, as a client without OMEMO sends it
                py.send_line("raw <message to='alice@localhost' type='chat' id='plain-1'>"
                             "<body>plain hello, no encryption</body></message>")
                for body, (mark, enc, ann, _) in WANT.items():
                    m = wait_message(al, body, timeout=60)
                    assert (m["mark"], m["encrypted"], m["announced"]) == (mark, enc, ann), m
                al.wait_exit(30)

        # history, as a person reads it: one distinct mark per line
        text = human(alice, "history", "bob@localhost")
        for body, (_, _, _, mark) in WANT.items():
            lines = [ln for ln in text.splitlines() if ln.endswith(": " + body)]
            assert len(lines) == 1 and mark in lines[0], f"{body!r} not marked {mark}:\n{text}"
        # --encrypted-only hides the plaintext one, and only it
        cp = one(alice, "history", "bob@localhost", "--encrypted-only")
        bodies = [o["body"] for o in alice.lines(cp) if o["type"] == "message"]
        assert "plain hello, no encryption" not in bodies, bodies
        assert all(b in bodies for b in WANT if WANT[b][1]), bodies


if __name__ == "__main__":
    main()
