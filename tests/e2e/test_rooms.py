#!/usr/bin/python3
"""Group chats (XEP-0045) with OMEMO over a real Prosody with a MUC component
(muc_mam): the harness's room set-up, independent python-omemo members talking
in a members-only, non-anonymous room, and the `mend` client there (join,
send, listen, history, members, leave) with python-omemo and other mend
members: everyone reads everyone, a member offline reads from the room
archive, a restart, a member without OMEMO (held, --allow-partial), and rooms
where OMEMO is refused (open, semi-anonymous).

    /usr/bin/python3 tests/e2e/test_rooms.py

TAP on stdout; exit 0 pass, 1 fail, 77 skip.
"""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PYTHON, HarnessError, Prosody, main, run, skip,  # noqa: E402
                     start_omemo_peer, test, wait_for, wait_ready)
from mendcli import (MEND, Mend, messages, speaks_omemo2, stored_on_server,  # noqa: E402
                     wait_listening)

if not shutil.which("prosody"):
    skip("prosody is not installed")
elif run([PYTHON, "-c", "import slixmpp, omemo, oldmemo.etree"], timeout=60).returncode != 0:
    skip("python3-slixmpp / python3-omemo / python3-oldmemo missing")

USERS = {"alice": "pw", "bob": "pw", "carol": "pw", "dave": "pw"}


def room_server():
    return Prosody(accounts=USERS, muc=True)


def py_member(srv, root, user, resource, room, nick, omemo=None):
    """A python-omemo device of `user` in `room` as `nick` (started, ready and joined);
    omemo: its --omemo mode (legacy by default, "2": OMEMO:2 only, "both")."""
    p = start_omemo_peer(srv, user, resource, os.path.join(root, f"{user}-{resource}"),
                         omemo=omemo)
    wait_ready(p)
    m = p.mark()
    p.send_line(f"join {room} {nick}")
    p.wait_line(lambda o: o["type"] in ("joined", "command_error"), 30, f"{p.name} to join {room}",
                start=m)
    joined = p.find(lambda o: o["type"] == "joined", start=m)
    assert joined, f"{p.name} could not join {room}\n{p.describe()}"
    return p


def py_send(peer, room, text):
    """The python-omemo member sends `text` to the room; its "sent" line (no errors)."""
    m = peer.mark()
    peer.send_line(f"send {room} {text}")
    sent = peer.wait_line(lambda o: o["type"] in ("sent", "command_error"), 30,
                          f"{peer.name} to send {text!r}", start=m)
    assert sent["type"] == "sent" and not sent["errors"], sent
    return sent


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
                sent = py_send(sender, room, text)
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


# --- the mend client in rooms -------------------------------------------------------

def need_mend():
    if not os.access(MEND, os.X_OK):
        skip(f"{MEND} is not built")


def run_ok(m, *cmd, rc=0, timeout=60):
    cp = m.run(*cmd, timeout=timeout)
    assert cp.returncode == rc, (f"mend {' '.join(cmd)} as {m.user}/{m.resource} exited "
                                 f"{cp.returncode}, want {rc}\nstdout:\n{cp.stdout}\n"
                                 f"stderr:\n{cp.stderr}")
    return cp


def mend_member(srv, root, user, resource, room, device=None):
    """A mend device of `user` that joined `room` (remembered in its store)."""
    m = Mend(srv, root, user, resource, device=device)
    cp = run_ok(m, "join", room)
    joined = [o for o in m.lines(cp) if o["type"] == "joined"]
    assert joined and joined[0]["room"] == room and joined[0]["nick"] == user, cp.stdout
    return m


def room_message(proc, body, timeout=30, start=0, **fields):
    def match(o):
        return (o.get("type") == "message" and o.get("body") == body and o.get("room")
                and all(o.get(k) == v for k, v in fields.items()))
    return proc.wait_line(match, timeout, f"{proc.name} to show the room message {body!r} "
                          f"{fields}", start=start)


STALE_PREKEY = -12  # MEND_ERR_NO_PREKEY: built on a one-time key the device used up already
RESENDS = 3  # how often shown_everywhere sends again after STALE_PREKEY


def shown_everywhere(send, listeners, body, sender):
    """send() a room message; every listener shows it. A listener that could not decrypt it
    because the sender built its session on a one-time prekey this device had already used
    (another member's first message took it, while the sender still had the old bundle) says
    so and asks for a new session (the core's repair: a key exchange from the listener's
    device to the sender's); then the sender sends it again, as the error tells the user to.
    The repair has to reach the sender's store first (the listener fetches the sender's
    bundle, then sends; the sender's listen takes it), and a resend started as soon as the
    error shows can overtake it and fail the same way: then it is sent again, at most
    RESENDS times. The message lines, by listener."""
    marks = [p.mark() for p in listeners]
    send()

    def seen(i, start):
        p = listeners[i]
        return p.wait_line(lambda o: (o.get("type") == "message" and o.get("body") == body
                                      and o.get("room")) or
                           (o.get("type") == "error" and o.get("from") == sender
                            and o.get("code") == STALE_PREKEY), 30,
                           f"{p.name} to show the room message {body!r}", start=start)
    got = [seen(i, marks[i]) for i in range(len(listeners))]
    for _ in range(RESENDS):
        if all(o["type"] == "message" for o in got):
            break
        marks = [p.mark() for p in listeners]
        send()
        got = [o if o["type"] == "message" else seen(i, marks[i]) for i, o in enumerate(got)]
    assert all(o["type"] == "message" for o in got), f"not shown after {RESENDS} resends: {got}"
    return got


def sent_id(m, cp):
    sent = [o for o in m.lines(cp) if o["type"] == "sent"]
    assert sent and sent[0]["devices"] >= 1, f"no sent line: {cp.stdout}\n{cp.stderr}"
    return sent[0]["id"]


def team(srv, members=("bob", "carol")):
    return srv.create_room("team", owner="alice", members=members)


@test
def mend_python_omemo_and_mend_read_each_other_in_a_room():
    """alice (mend, two devices), bob (python-omemo), carol (mend): each message from each
    is read by every other member's devices and by the sender's own other device."""
    need_mend()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room = team(srv)
        laptop = mend_member(srv, root, "alice", "laptop", room)
        phone = mend_member(srv, root, "alice", "phone", room)
        carol = mend_member(srv, root, "carol", "desk", room)
        bob = py_member(srv, root, "bob", "py", room, "bob")
        # the senders: a second process of alice's laptop device, and of carol's desk
        laptop_cli = Mend(srv, root, "alice", "laptop-cli", device="laptop")
        carol_cli = Mend(srv, root, "carol", "desk-cli", device="desk")
        ids = {"alice-laptop": laptop.device_id(), "alice-phone": phone.device_id(),
               "carol": carol.device_id()}
        with bob, laptop.listen() as ll, phone.listen() as pl, carol.listen() as cl:
            for p in (ll, pl, cl):
                wait_listening(p)
            # members: everyone with their devices, the keys known (XEP-0045 §9.5)
            cp = run_ok(carol_cli, "members", room)
            members = {o["jid"]: o for o in carol_cli.lines(cp) if o["type"] == "member"}
            assert set(members) == {"alice@localhost", "bob@localhost"}, cp.stdout
            assert members["alice@localhost"]["affiliation"] == "owner", members
            assert members["alice@localhost"]["devices"] == 2, members
            assert members["bob@localhost"]["devices"] == 1 and members["bob@localhost"]["present"]
            devs = [o for o in carol_cli.lines(cp) if o["type"] == "device"]
            assert {d["device"] for d in devs if d["jid"] == "alice@localhost"} == {
                ids["alice-laptop"], ids["alice-phone"]}, devs

            # alice writes from her laptop device
            marks = (ll.mark(), pl.mark(), cl.mark(), bob.mark())
            cps = []
            for got in shown_everywhere(
                    lambda: cps.append(run_ok(laptop_cli, "send", room, "alice to the room")),
                    (pl, cl), "alice to the room", "alice@localhost"):
                assert got["from"] == "alice@localhost" and got["nick"] == "alice", got
                assert got["device"] == ids["alice-laptop"] and got["peer"] == room, got
            m = wait_room_message(bob, "alice to the room", start=marks[3])
            assert m["from"] == "alice@localhost" and m["nick"] == "alice", m
            # the sending run shows the room's reflection as ours (once per device: the
            # laptop's listener shares its store, so it is not shown there again)
            sent_id(laptop_cli, cps[-1])
            mine = [o for o in laptop_cli.lines(cps[-1]) if o["type"] == "message"]
            assert all(o["outgoing"] and o["from"] == "alice@localhost" for o in mine), mine

            # bob (python-omemo) writes: to every member device and his own
            marks = (ll.mark(), pl.mark(), cl.mark())
            sent = py_send(bob, room, "bob to the room")
            assert {(r["jid"], r["device"]) for r in sent["recipients"]} == {
                ("alice@localhost", ids["alice-laptop"]), ("alice@localhost", ids["alice-phone"]),
                ("carol@localhost", ids["carol"])}, sent
            for p, mk in zip((ll, pl, cl), marks):
                got = room_message(p, "bob to the room", start=mk)
                assert got["from"] == "bob@localhost" and got["nick"] == "bob", got
                assert got["outgoing"] is False and got["encrypted"] is True, got

            # carol writes (a second process of her device): alice's two devices, bob
            marks = (ll.mark(), pl.mark(), cl.mark(), bob.mark())
            for got in shown_everywhere(lambda: run_ok(carol_cli, "send", room, "carol to the room"),
                                        (ll, pl), "carol to the room", "carol@localhost"):
                assert got["from"] == "carol@localhost" and got["device"] == ids["carol"], got
            wait_room_message(bob, "carol to the room", start=marks[3])
            # each message shown once per device (a device's own message: once by whichever
            # of its two processes saw the reflection first; they share one store)
            for p, own in ((ll, "alice"), (pl, None), (cl, "carol")):
                ids = [o["id"] for o in messages(p)]
                assert len(ids) == len(set(ids)), f"{p.name} shows a message twice: {ids}"
                for body in ("alice to the room", "bob to the room", "carol to the room"):
                    if not (own and body.startswith(own)):
                        assert [o for o in messages(p) if o["body"] == body], (p.name, body)
        for text in ("alice to the room", "bob to the room", "carol to the room"):
            assert not stored_on_server(srv, text), f"{text!r} is on the server's disk"


def three_members(srv, root):
    """The team room with alice and carol (mend) and bob (python-omemo, started)."""
    room = team(srv)
    alice = mend_member(srv, root, "alice", "laptop", room)
    carol = mend_member(srv, root, "carol", "desk", room)
    return room, alice, carol, py_member(srv, root, "bob", "py", room, "bob")


@test
def an_offline_member_reads_the_room_archive_once_in_order():
    need_mend()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room, alice, carol, bob = three_members(srv, root)  # carol then offline
        bodies = []
        with bob:
            for i in range(3):
                bodies.append(f"while carol was away {i} (alice)")
                run_ok(alice, "send", room, bodies[-1])
                bodies.append(f"while carol was away {i} (bob)")
                py_send(bob, room, bodies[-1])
        # a send enters the room for its run without the room's replay: what came while
        # carol was away stays for her listen (XEP-0045 §7.2.15)
        cp = run_ok(carol, "send", room, "carol is back")
        assert not [o for o in carol.lines(cp) if o["type"] == "message"
                    and o["body"] in bodies], cp.stdout
        with carol.listen("--count", str(len(bodies)), "--timeout", "60") as cl:
            assert cl.wait_exit(90) == 0, cl.describe()
            got = [o for o in messages(cl) if o.get("room") == room
                   and o["body"] != "carol is back"]
        assert [o["body"] for o in got] == bodies, [o["body"] for o in got]
        assert all(o["archived"] for o in got), got
        with carol.listen("--timeout", "6") as again:
            assert again.wait_exit(30) == 0, again.describe()
            wait_for(lambda: again.find(lambda o: o.get("type") == "catchup_done"
                                        and o.get("room") == room), 1,
                     "carol's room catch-up to end")
            assert messages(again) == [], f"shown twice: {messages(again)}"


@test
def after_a_restart_every_message_decrypts_from_the_room_archive():
    need_mend()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room, alice, carol, bob = three_members(srv, root)
        with bob:
            with alice.listen() as al:
                wait_listening(al)
                # (its reflection is shown once by this device: by whichever of its two
                # processes sees it first, so the listener is not asked to)
                run_ok(Mend(srv, root, "alice", "laptop-cli", device="laptop"), "send", room,
                       "alice before her restart")
            # alice's process stopped; the others talk
            run_ok(carol, "send", room, "carol while alice is gone")
            py_send(bob, room, "bob while alice is gone")
            with alice.listen("--count", "2", "--timeout", "60") as al:
                assert al.wait_exit(90) == 0, al.describe()
                got = [o["body"] for o in messages(al)]
            assert got == ["carol while alice is gone", "bob while alice is gone"], got
        # the whole room from its archive: alice's own message shows as hers
        cp = run_ok(alice, "history", room)
        hist = [o for o in alice.lines(cp) if o["type"] == "message"]
        assert [o["body"] for o in hist] == ["alice before her restart",
                                             "carol while alice is gone",
                                             "bob while alice is gone"], hist
        assert hist[0]["from"] == "alice@localhost" and hist[0]["outgoing"] is True, hist[0]
        assert all(o["room"] == room and o["archived"] for o in hist), hist
        # a message of two stanzas (OMEMO:2 for the mend devices, legacy for bob) is one
        # message: its other stanza is neither shown again nor "not for this device"
        assert not [o for o in alice.lines(cp) if o["type"] == "error"], cp.stdout


@test
def a_member_without_omemo_holds_the_message_until_allowed():
    need_mend()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room = team(srv, members=("bob", "dave"))
        alice = mend_member(srv, root, "alice", "laptop", room)
        bob = py_member(srv, root, "bob", "py", room, "bob")
        with bob, srv.client("dave", resource="plain") as dave:
            dave.join_room(room, "dave")  # a plain client: no OMEMO device at all
            m = bob.mark()
            cp = run_ok(alice, "send", room, "held for dave", rc=6)
            held = [o for o in alice.lines(cp) if o["type"] == "held"]
            assert held and "dave@localhost" in held[0]["text"], cp.stdout
            assert "dave@localhost" in cp.stderr and "--allow-partial" in cp.stderr, cp.stderr
            cp = run_ok(alice, "send", "--allow-partial", room, "sent without dave")
            sent_id(alice, cp)
            notes = [o["text"] for o in alice.lines(cp) if o["type"] == "notice"]
            assert any("dave@localhost" in t for t in notes), cp.stdout
            wait_room_message(bob, "sent without dave", start=m)
            assert not bob.find(lambda o: o.get("body") == "held for dave"), bob.describe()
            # dave's client got the encrypted message with its fallback body only
            got = dave.next(lambda e: e.tag.endswith("message") and e.get("type") == "groupchat"
                            and e.find("{eu.siacs.conversations.axolotl}encrypted") is not None,
                            "the encrypted room message at dave's plain client")
            assert "sent without dave" not in json.dumps(got.findtext("{jabber:client}body"))
        for text in ("held for dave", "sent without dave"):
            assert not stored_on_server(srv, text), f"{text!r} is on the server's disk"


@test
def rooms_that_are_open_or_semi_anonymous_are_refused_with_the_reason():
    need_mend()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        lobby = srv.create_room("lobby", owner="alice", members=("bob",), members_only=False)
        masked = srv.create_room("masked", owner="alice", members=("bob",), whois="moderators")
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        for room, why in ((lobby, "members-only"), (masked, "addresses")):
            for cmd in (("send", room, "not here"), ("send", "--room", room, "not here"),
                        ("join", room)):
                cp = run_ok(alice, *cmd, rc=1)
                errors = [o for o in alice.lines(cp) if o["type"] == "error"]
                assert errors and why in errors[0]["text"], cp.stdout
                assert why in cp.stderr, cp.stderr
            cp = run_ok(alice, "leave", room, rc=1)  # never remembered
        assert not stored_on_server(srv, "not here")
        # a contact is no room: the same command sends to bob
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        cp = run_ok(alice, "send", "bob@localhost", "to bob, not a room")
        sent_id(alice, cp)


@test
def join_is_remembered_until_leave():
    need_mend()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room = team(srv, members=("carol",))
        carol = Mend(srv, root, "carol", "desk")
        carol.publish()
        # a send to a room it is not in: found by disco#info, entered for that run only
        alice = Mend(srv, root, "alice", "laptop")
        with carol.listen() as cl:
            wait_listening(cl)
            run_ok(alice, "send", room, "sent without joining")
        run_ok(alice, "leave", room, rc=1)
        mend_member(srv, root, "carol", "desk", room)
        with carol.listen() as cl:
            cl.wait_line(lambda o: o.get("type") == "catchup_done" and o.get("room") == room,
                         30, "carol to enter the remembered room")
        cp = run_ok(carol, "leave", room)
        assert [o["type"] for o in carol.lines(cp)] == ["left"], cp.stdout
        with carol.listen("--timeout", "5") as cl:
            assert cl.wait_exit(30) == 0, cl.describe()
            assert not cl.find(lambda o: o.get("room") == room), cl.describe()
        cp = run_ok(carol, "members", room, rc=1)


# --- OMEMO:2 in rooms (XEP-0384 0.9 §7, the SCE envelope of XEP-0420) -----------------

FORGED = -25  # MEND_ERR_FORGED: an SCE affix that does not fit the room or the sender


def need_omemo2():
    need_mend()
    if not speaks_omemo2():
        skip("this build of mend is legacy OMEMO only (libsignal-protocol-c)")


def alice_and_bob(srv, root, mode="2"):
    """The team room with alice (mend) and bob (python-omemo in `mode`, started)."""
    room = team(srv, members=("bob",))
    alice = mend_member(srv, root, "alice", "laptop", room)
    return room, alice, py_member(srv, root, "bob", "py", room, "bob", omemo=mode)


def mend_sends(m, room, text):
    """mend sends `text` to the room: its "sent" line."""
    cp = run_ok(m, "send", room, text)
    sent = [o for o in m.lines(cp) if o["type"] == "sent"]
    assert sent, f"no sent line: {cp.stdout}\n{cp.stderr}"
    return sent[0]


@test
def mend_and_an_omemo2_only_member_read_each_other_in_a_room():
    """alice (mend) and bob (python-omemo publishing OMEMO:2 only) in a members-only room:
    alice's message reaches bob as OMEMO:2 with the SCE envelope's <to/> the room and
    <from/> alice's real JID (bob's peer refuses any other); bob's reaches alice's listen
    as "version":"2" from bob's real JID. Without OMEMO:2 in rooms mend finds no device of
    bob to encrypt to and cannot read him."""
    need_omemo2()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room, alice, bob = alice_and_bob(srv, root)
        with bob, alice.listen() as al:
            wait_listening(al)
            mb = bob.mark()
            sent = mend_sends(Mend(srv, root, "alice", "laptop-cli", device="laptop"), room,
                              "alice to bob in OMEMO:2")
            assert sent["devices_2"] == 1 and sent["devices_legacy"] == 0, sent
            got = wait_room_message(bob, "alice to bob in OMEMO:2", start=mb)
            assert got["version"] == "2" and got["from"] == "alice@localhost", got
            assert got["sce"]["to"] == room and got["sce"]["from"] == "alice@localhost", got
            assert got["sce"]["rpad"] and got["nick"] == "alice", got

            ma = al.mark()
            sent = py_send(bob, room, "bob to alice in OMEMO:2")
            assert sent["version"] == "2", sent
            got = room_message(al, "bob to alice in OMEMO:2", start=ma)
            assert got["version"] == "2" and got["from"] == "bob@localhost", got
            assert got["nick"] == "bob" and got["peer"] == room and got["encrypted"], got
        for text in ("alice to bob in OMEMO:2", "bob to alice in OMEMO:2"):
            assert not stored_on_server(srv, text), f"{text!r} is on the server's disk"


@test
def a_mixed_room_gets_one_stanza_per_version():
    """bob publishes legacy OMEMO only, carol OMEMO:2 only: one message of alice (mend)
    goes as two groupchat stanzas with one id, OMEMO:2 to carol, legacy to bob, and both
    read it. (The two peers cannot write to such a room: python-omemo wants a device of
    its own version for every member.)"""
    need_omemo2()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room = team(srv, members=("bob", "carol"))
        alice = mend_member(srv, root, "alice", "laptop", room)
        bob = py_member(srv, root, "bob", "py", room, "bob", omemo="legacy")
        carol = py_member(srv, root, "carol", "py", room, "carol", omemo="2")
        with bob, carol, alice.listen() as al:
            wait_listening(al)
            mb, mc = bob.mark(), carol.mark()
            sent = mend_sends(Mend(srv, root, "alice", "laptop-cli", device="laptop"), room,
                              "alice to a mixed room")
            assert sent["devices_2"] == 1 and sent["devices_legacy"] == 1, sent
            b = wait_room_message(bob, "alice to a mixed room", start=mb)
            c = wait_room_message(carol, "alice to a mixed room", start=mc)
            assert b["version"] == "0.3" and c["version"] == "2", (b, c)
            assert b["id"] == c["id"] == sent["id"], (b["id"], c["id"], sent["id"])
            assert c["sce"]["to"] == room and c["sce"]["from"] == "alice@localhost", c
            # each peer got the other version's stanza too, and could not read it
            for p, mk, other in ((bob, mb, "2"), (carol, mc, "0.3")):
                assert p.find(lambda o: o.get("type") == "error" and o.get("version") == other
                              and o.get("id") == sent["id"], start=mk), p.describe()


@test
def a_tampered_room_affix_is_refused():
    """bob (OMEMO:2 only) sends room messages whose encrypted <to/> names him (a room
    message the server could have turned into a private one), whose <from/> names carol,
    and without <to/>: alice's mend refuses each with an error line naming the affix and
    shows no message; with true affixes his next message is shown."""
    need_omemo2()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room, alice, bob = alice_and_bob(srv, root)
        with bob, alice.listen() as al:
            wait_listening(al)
            for affix, why in (("to=bob@localhost", "not this group chat"),
                               (f"to={room} from=carol@localhost", "not the sender"),
                               ("to=none", "without an encrypted <to/>")):
                bob.send_line("affix off")
                bob.send_line(f"affix {affix}")
                ma = al.mark()
                text = f"forged {affix}"
                py_send(bob, room, text)
                err = al.wait_line(lambda o: o.get("type") == "error", 30,
                                   f"alice to refuse {text!r}", start=ma)
                assert err["code"] == FORGED and err["version"] == "2", err
                assert err["from"] == "bob@localhost" and err["peer"] == room, err
                assert "affix" in err["text"] and why in err["text"], err
                assert not al.find(lambda o: o.get("type") == "message"
                                   and o.get("body") == text, start=ma), al.describe()
            bob.send_line("affix off")
            ma = al.mark()
            py_send(bob, room, "bob with true affixes")
            got = room_message(al, "bob with true affixes", start=ma)
            assert got["version"] == "2", got
            assert not al.find(lambda o: o.get("type") == "message" and
                               o.get("body", "").startswith("forged")), al.describe()


@test
def a_member_that_falls_back_to_legacy_in_a_room_is_flagged():
    """bob (python-omemo publishing both versions) writes to the room in OMEMO:2, then
    in legacy OMEMO only: alice shows the second with "downgrade": true and a notice in
    the room that his device fell back; her next message to the room stays OMEMO:2."""
    need_omemo2()
    with room_server() as srv, tempfile.TemporaryDirectory() as root:
        room, alice, bob = alice_and_bob(srv, root, mode="both")
        with bob, alice.listen() as al:
            wait_listening(al)
            ma = al.mark()
            py_send(bob, room, "bob in OMEMO:2 first")
            got = room_message(al, "bob in OMEMO:2 first", start=ma)
            assert got["version"] == "2" and not got.get("downgrade"), got
            ma = al.mark()
            bob.send_line(f"sendv 0.3 {room} bob in legacy now")
            got = room_message(al, "bob in legacy now", start=ma)
            assert got["version"] == "0.3" and got.get("downgrade") is True, got
            note = al.wait_line(lambda o: o.get("type") == "notice"
                                and "fell back" in o.get("text", ""), 30,
                                "the fall-back notice", start=ma)
            assert note["jid"] == room and "bob@localhost" in note["text"], note
            mb = bob.mark()
            sent = mend_sends(Mend(srv, root, "alice", "laptop-cli", device="laptop"), room,
                              "alice still in OMEMO:2")
            assert sent["devices_2"] == 1 and sent["devices_legacy"] == 0, sent
            got = wait_room_message(bob, "alice still in OMEMO:2", start=mb)
            assert got["version"] == "2", got


if __name__ == "__main__":
    main()
