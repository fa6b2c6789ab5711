#!/usr/bin/python3
"""Group chats (XEP-0045) with OMEMO over a real Prosody with a MUC component
(muc_mam): the harness's room set-up, and independent python-omemo members
talking in a members-only, non-anonymous room.

    /usr/bin/python3 tests/e2e/test_rooms.py

TAP on stdout; exit 0 pass, 1 fail, 77 skip.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PYTHON, HarnessError, Prosody, main, run, skip,  # noqa: E402
                     start_omemo_peer, test, wait_ready)

if not shutil.which("prosody"):
    skip("prosody is not installed")
elif run([PYTHON, "-c", "import slixmpp, omemo, oldmemo.etree"], timeout=60).returncode != 0:
    skip("python3-slixmpp / python3-omemo / python3-oldmemo missing")

USERS = {"alice": "pw", "bob": "pw", "carol": "pw", "dave": "pw"}


def room_server():
    return Prosody(accounts=USERS, muc=True)


def py_member(srv, root, user, resource, room, nick):
    """A python-omemo device of `user` in `room` as `nick` (started, ready and joined)."""
    p = start_omemo_peer(srv, user, resource, os.path.join(root, f"{user}-{resource}"))
    wait_ready(p)
    m = p.mark()
    p.send_line(f"join {room} {nick}")
    p.wait_line(lambda o: o["type"] in ("joined", "command_error"), 30, f"{p.name} to join {room}",
                start=m)
    joined = p.find(lambda o: o["type"] == "joined", start=m)
    assert joined, f"{p.name} could not join {room}\n{p.describe()}"
    return p


def jid_of(peer):
    return peer.name.split("/")[0] + "@localhost"


def wait_room_message(peer, body, timeout=30, start=0):
    return peer.wait_line(lambda o: o["type"] == "message" and o.get("groupchat")
                          and o["body"] == body, timeout,
                          f"{peer.name} to decrypt the room message {body!r}", start=start)


@test
def room_setup_makes_the_rooms_the_tests_ask_for():
    with room_server() as srv:
        team = srv.create_room("team", owner="alice", members=("bob", "carol"))
        f = srv.room_features(team, user="bob")
        for feature in ("muc_membersonly", "muc_nonanonymous", "muc_persistent", "urn:xmpp:mam:2"):
            assert feature in f, f"{team} lacks {feature}: {sorted(f)}"
        # members read the member list in such a room (XEP-0045 §9.5; what OMEMO needs)
        assert srv.affiliations(team, "member", actor="bob") == ["bob@localhost",
                                                                 "carol@localhost"]
        assert srv.affiliations(team, "owner", actor="carol") == ["alice@localhost"]
        srv.set_affiliation(team, "dave", "member")
        assert "dave@localhost" in srv.affiliations(team, "member")
        # the rooms of the refusal tests
        assert "muc_open" in srv.room_features(srv.create_room("lobby", members_only=False))
        assert "muc_semianonymous" in srv.room_features(srv.create_room("masked",
                                                                        whois="moderators"))
        # a non-member cannot enter a members-only room
        with srv.client("dave", resource="x") as x:
            x.join_room(team, "dave")  # dave is a member now
        with srv.client("carol", resource="x") as x:
            try:  # carol is a member, not an admin: she cannot add anybody
                x.set_affiliation(team, "eve@localhost", "member")
            except HarnessError as e:
                assert "forbidden" in str(e) or "not-allowed" in str(e), e
            else:
                raise AssertionError("a plain member changed the member list")


@test
def python_omemo_members_talk_in_a_room():
    """Three python-omemo accounts (bob on two devices) in a members-only, non-anonymous
    room: each message is read by every other member and by the sender's other device."""
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room = srv.create_room("team", owner="alice", members=("bob", "carol"))
        alice = py_member(srv, root, "alice", "py", room, "alice")
        bob = py_member(srv, root, "bob", "py1", room, "bob")
        bob2 = py_member(srv, root, "bob", "py2", room, "bob-tablet")
        carol = py_member(srv, root, "carol", "py", room, "carol")
        with alice, bob, bob2, carol:
            everyone = {"alice": alice, "bob": bob, "bob-tablet": bob2, "carol": carol}
            ready = {n: p.find(lambda o: o["type"] == "ready")[0]["device"]
                     for n, p in everyone.items()}
            for nick, sender in everyone.items():
                text = f"hello room from {nick}"
                marks = {n: p.mark() for n, p in everyone.items()}
                sender.send_line(f"send {room} {text}")
                sent = sender.wait_line(lambda o: o["type"] in ("sent", "command_error"), 30,
                                        f"{nick} to send", start=marks[nick])
                assert sent["type"] == "sent" and not sent["errors"], sent
                # every member's devices and the sender's other devices, none else
                want = {(jid_of(p), ready[n]) for n, p in everyone.items() if n != nick}
                got = {(r["jid"], r["device"]) for r in sent["recipients"]}
                assert got == want, f"recipients {got}, want {want}"
                for other, p in everyone.items():
                    if other == nick:
                        p.wait_line(lambda o: o["type"] == "reflection" and o["origin_id"] ==
                                    sent["id"], 30, f"{nick}'s reflection", start=marks[nick])
                        continue
                    m = wait_room_message(p, text, start=marks[other])
                    assert m["from"] == jid_of(sender) and m["device"] == ready[nick], m
                    assert m["room"] == room and m["nick"] == nick, m
                    assert m["stanza_id"], f"no room stanza-id: {m}"


if __name__ == "__main__":
    main()
