#!/usr/bin/python3
"""mend in the real Profanity's group chats (Debian's 0.13.1 in tmux) on a throwaway
Prosody with a MUC component: a members-only, non-anonymous room with two Profanity
users running mend (both directions, the room's history after a restart), a room that
cannot be encrypted (refused, with the reason), a member without OMEMO (the message
waits, with the reason, until /mend send-anyway or /mend drop), and Profanity's own
built-in room OMEMO in the same room (both directions).
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, main, wait_for  # noqa: E402
from profanity import Profanity, mend_plugin_or_skip, xmpp_session  # noqa: E402
from mendcli import BUILD, Mend, server, stored_on_server, wait_listening  # noqa: E402
from filesrv import store_files, upload_server  # noqa: E402

MUC = "conference.localhost"
ROOM = "secret@" + MUC
PLUGIN, MODULE = mend_plugin_or_skip(BUILD)


def muc_server():
    """The harness's Prosody with its group chat service (muc + muc_mam)."""
    return server(muc=True)


def make_room(srv, room=ROOM, owner="alice", members=("bob",), private=True):
    """The harness's room set-up: members-only and non-anonymous when private, else open
    and semi-anonymous; named by its JID, since Profanity's title bar shows a room's name."""
    return srv.create_room(room.split("@")[0], owner=owner, members=members,
                           members_only=private, whois="anyone" if private else "moderators",
                           config={"muc#roomconfig_roomname": room})


def with_mend(srv, user, prefs=None):
    return Profanity(srv, user, env={"MEND_PROFANITY_MODULE": MODULE}, plugins=[PLUGIN],
                     prefs=prefs)


def mend_ready(p, timeout=20):
    """mend has published this device: /mend status answers with a device id."""
    p.win(1)
    p.command("/mend status")
    return p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), timeout, "/mend status")


def room_focused(p, room, screen=None):
    return room in p.title(screen)


def join(p, room=ROOM, nick=None):
    """/join ROOM (nick: the user name): waits for the room window."""
    p.command(f"/join {room} nick {nick or p.user}")
    p.wait_screen(lambda s: room_focused(p, room, s) and "You have joined the room" in s, 20,
                  f"{p.user} to be in {room}")


def focus(p, room=ROOM):
    if not room_focused(p, room):
        p.win(room)
        p.wait_screen(lambda s: room_focused(p, room, s), 5, f"the window of {room}")


def mend_on(p, room=ROOM, timeout=20):
    focus(p, room)
    p.command("/mend on")
    p.wait_screen(f"OMEMO encryption is on for {room}.", timeout, "/mend on in the room")
    p.wait_screen(lambda s: "OMEMO" in p.title(s), 10, "the room's title bar to say OMEMO")


def enter(p, on=True, builtin=False):
    """Connects, waits for mend (or sets up Profanity's own OMEMO), joins ROOM, and
    turns mend on there; -> the mend device id (None with builtin)."""
    p.connect()
    dev = None if builtin else int(mend_ready(p).group(1))
    if builtin:
        p.omemo_setup()
    join(p)
    if on and not builtin:
        mend_on(p)
    return dev


def lines_with(p, text, screen=None):
    return [m for m in p.messages(screen) if text in m["text"]]


def wait_room_line(p, text, timeout=30, sender=None, mark=None, room=ROOM):
    """A line of the room window with `text` (and sender / mark); returns it."""
    focus(p, room)

    def pred(s):
        for m in lines_with(p, text, s):
            if (sender is None or m["sender"] == sender) and (mark is None or m["mark"] == mark):
                return m
        return None
    return p.wait_screen(pred, timeout, f"{text!r} from {sender} marked {mark} in {room}")


def say(p, text, room=ROOM):
    focus(p, room)
    p.send_keys(text)


FALLBACK = "OMEMO"


def back_after_a_restart(p, said):
    """p restarts and joins ROOM again: every (sender, text) of `said` shows once, in
    that order, marked as encrypted, with no fallback body anywhere."""
    p.restart()
    mend_ready(p)
    join(p)
    for sender, t in said:
        got = wait_room_line(p, t, sender=sender)
        assert got["mark"] == "~", got
    screen = p.screen()
    shown = p.messages(screen)
    order = [next(i for i, m in enumerate(shown) if t in m["text"]) for _, t in said]
    assert order == sorted(order), f"history out of order:\n{screen}"
    for _, t in said:
        assert len(lines_with(p, t, screen)) == 1, f"{t} not once:\n{screen}"
    no_fallback(p)


def no_fallback(p):
    """No line shows a fallback body ("I sent you an OMEMO encrypted message...")."""
    bad = [m for m in p.messages() if "encrypted message" in m["text"]]
    assert not bad, f"a fallback body is shown: {bad}\n{p.screen()}"


@test
def two_profanities_with_mend_in_a_private_room_and_history_after_a_restart():
    with muc_server() as srv:
        make_room(srv)
        with with_mend(srv, "alice") as a, with_mend(srv, "bob") as b:
            enter(a)
            enter(b)
            say(a, "room-hello-from-alice")
            got = wait_room_line(b, "room-hello-from-alice", sender="alice")
            assert got["mark"] == "~", f"bob's line has no trust mark: {got}"
            mine = wait_room_line(a, "room-hello-from-alice", sender="alice", mark="~")
            say(b, "room-reply-from-bob")
            got = wait_room_line(a, "room-reply-from-bob", sender="bob")
            assert got["mark"] == "~", got
            wait_room_line(b, "room-reply-from-bob", sender="bob")
            # the reflection of our own message is shown once; no fallback body anywhere
            for p, text in ((a, "room-hello-from-alice"), (b, "room-reply-from-bob")):
                assert len(lines_with(p, text)) == 1, f"not once:\n{p.screen()}"
                no_fallback(p)
            for text in ("room-hello-from-alice", "room-reply-from-bob"):
                assert not stored_on_server(srv, text), f"{text} is on the server's disk"
                assert f"<body>{text}</body>" not in a.log_text() + b.log_text()
            del mine
            # alice leaves; bob talks; alice comes back: the room's history decrypts, once
            a.quit()
            away = [f"while-alice-was-away-{i}" for i in range(3)]
            for t in away:
                say(b, t)
                wait_room_line(b, t, sender="bob")
            # her own earlier message shows as hers (from mend's sealed history)
            back_after_a_restart(a, [("alice", "room-hello-from-alice"),
                                     ("bob", "room-reply-from-bob")] + [("bob", t) for t in away])
            # and live again, still encrypted after the restart
            say(a, "after-the-restart")
            wait_room_line(b, "after-the-restart", sender="alice")
            assert not stored_on_server(srv, "after-the-restart")


@test
def mend_on_is_refused_in_a_room_that_cannot_be_encrypted():
    with muc_server() as srv:
        make_room(srv, room="open@" + MUC, private=False)
        with with_mend(srv, "alice") as a:
            a.connect()
            mend_ready(a)
            join(a, "open@" + MUC)
            a.command("/mend on")
            a.wait_screen("encryption stays off for open@" + MUC, 20, "the refusal")
            s = a.screen()
            assert "not members-only" in s or "hides its members' addresses" in s, s
            assert "encryption is on for open@" not in s, s
            assert "OMEMO" not in a.title(), a.title()
            # it stays off: the message goes as Profanity sends it (a positive control)
            say(a, "plain-in-open-room", room="open@" + MUC)
            wait_for(lambda: stored_on_server(srv, "plain-in-open-room"), 20,
                     "the plaintext message to reach the room's archive")


@test
def a_member_without_omemo_holds_the_message_until_the_user_decides():
    with muc_server() as srv:
        make_room(srv, members=("bob", "carol"))  # carol never used OMEMO
        with with_mend(srv, "alice") as a, with_mend(srv, "bob") as b:
            enter(a)
            enter(b, on=False)
            say(a, "held-then-dropped")
            a.wait_screen("NOT sent yet: held-then-dropped", 30, "the message to be held")
            s = a.screen()
            assert "carol@localhost" in s, f"the line does not say who cannot read it:\n{s}"
            assert "/mend send-anyway" in s, s
            assert not [m for m in lines_with(a, "held-then-dropped") if m["sender"] == "alice"]
            a.command("/mend drop")
            a.wait_screen("NOT sent: held-then-dropped", 20, "the drop to be confirmed")
            say(a, "held-then-sent")
            a.wait_screen("NOT sent yet: held-then-sent", 30, "the second one to be held")
            a.command("/mend send-anyway")
            wait_room_line(a, "held-then-sent", sender="alice", mark="~")
            wait_room_line(b, "held-then-sent", sender="alice")
            assert not lines_with(b, "held-then-dropped"), b.screen()
            for t in ("held-then-dropped", "held-then-sent"):
                assert not stored_on_server(srv, t), f"{t} is on the server's disk"
            # /mend members lists carol as a member without a device
            focus(a)
            a.command("/mend members")
            a.wait_screen(re.compile(r"carol@localhost.*0 of 0 device"), 20, "/mend members")


@test
def mend_and_profanitys_builtin_room_omemo_read_each_other():
    with muc_server() as srv:
        make_room(srv)
        with with_mend(srv, "alice") as a, Profanity(srv, "bob") as b:
            enter(a)
            enter(b, builtin=True)
            # Profanity's own OMEMO in the room: it needs members-only and non-anonymous
            focus(b)
            b.command("/omemo start")
            b.wait_screen(lambda s: "[OMEMO]" in b.title(s), 20, "bob's room to say OMEMO")
            b.wait_log(re.compile(r"\[OMEMO\] (?:create session|session) with "
                                  r"alice@localhost device \d+"), 30,
                       "bob's Profanity to have a session with alice's mend device", start=0)
            say(b, "builtin-to-mend")
            got = wait_room_line(a, "builtin-to-mend", sender="bob")
            assert got["mark"] == "~", got
            say(a, "mend-to-builtin")
            got = wait_room_line(b, "mend-to-builtin", sender="alice")
            assert got["mark"] == "~", f"bob's Profanity did not decrypt it: {got}"
            for t in ("builtin-to-mend", "mend-to-builtin"):
                assert not stored_on_server(srv, t), f"{t} is on the server's disk"


@test
def room_messages_carry_the_trust_of_the_senders_device():
    with muc_server() as srv:
        make_room(srv)
        with with_mend(srv, "alice") as a, with_mend(srv, "bob") as b:
            enter(a)
            dev = enter(b)
            say(b, "room-first-use")
            got = wait_room_line(a, "room-first-use", sender="bob")
            assert got["mark"] == "~", f"a first-use device's message: {got}"
            focus(a)
            a.command(f"/mend trust bob@localhost {dev}")
            a.wait_screen("is verified", 10, "bob's device to be verified")
            say(b, "room-verified")
            got = wait_room_line(a, "room-verified", sender="bob")
            assert got["mark"] == "+", f"a verified device's message: {got}"
            a.command(f"/mend untrust bob@localhost {dev}")
            a.wait_screen("will get nothing from you", 10, "bob's device to be untrusted")
            say(b, "room-untrusted")
            got = wait_room_line(a, "room-untrusted", sender="bob")
            assert got["mark"] == "?", f"an untrusted device's message: {got}"
            # the title bar says that a member cannot read what alice sends
            a.wait_screen(lambda s: "OMEMO partial" in a.title(s), 10, "the title bar")


@test
def a_room_joined_before_mend_was_loaded_is_encrypted():
    with muc_server() as srv:
        make_room(srv)
        with Profanity(srv, "alice", env={"MEND_PROFANITY_MODULE": MODULE}) as a, \
                with_mend(srv, "bob") as b:
            a.connect()
            join(a)
            enter(b)
            a.command(f"/plugins install {PLUGIN}")
            a.wait_log("Loaded plugin: mend.so", 10)
            mend_ready(a)
            mend_on(a)
            say(a, "loaded-in-the-room")
            got = wait_room_line(b, "loaded-in-the-room", sender="alice")
            assert got["mark"] == "~", got
            wait_room_line(a, "loaded-in-the-room", sender="alice", mark="~")
            assert not stored_on_server(srv, "loaded-in-the-room"), "it left in plaintext"
            say(b, "to-the-late-loader")
            wait_room_line(a, "to-the-late-loader", sender="bob", mark="~")


@test
def after_a_lost_connection_the_room_is_joined_again_and_caught_up():
    with muc_server() as srv:
        make_room(srv)
        with with_mend(srv, "alice", prefs={"connection": {"reconnect": "2"}}) as a, \
                with_mend(srv, "bob") as b:
            enter(a)
            enter(b)
            say(b, "before-the-reconnect")
            wait_room_line(a, "before-the-reconnect", sender="bob")
            # another login with alice's resource: the server ends her session (a stream
            # conflict, RFC 6120 §4.9.3.3), Profanity calls it a lost connection, keeps its
            # rooms and joins them again when it reconnects
            mark = a.log_mark()
            with xmpp_session("127.0.0.1", srv.port, "alice@localhost", "pw", resource="prof"):
                a.wait_log("Lost connection", 10, "alice's Profanity to lose its connection",
                           start=mark)
                say(b, "while-alice-was-away")
                wait_room_line(b, "while-alice-was-away", sender="bob")
            a.wait_log(re.compile(r"Sending room join presence to: " + re.escape(ROOM)), 30,
                       "alice's Profanity to join the room again", start=mark)
            got = wait_room_line(a, "while-alice-was-away", sender="bob")
            assert got["mark"] == "~", got
            say(b, "after-the-reconnect")
            wait_room_line(a, "after-the-reconnect", sender="bob", mark="~")
            say(a, "alice-after-the-reconnect")
            wait_room_line(b, "alice-after-the-reconnect", sender="alice", mark="~")
            screen = a.screen()
            for t in ("before-the-reconnect", "while-alice-was-away"):
                assert len(lines_with(a, t, screen)) == 1, f"{t} not once:\n{screen}"
            assert not stored_on_server(srv, "alice-after-the-reconnect")


@test
def a_private_message_in_a_room_without_encryption_goes_as_profanity_sends_it():
    # Profanity writes to an occupant of a non-anonymous room at their own JID (1:1, which
    # mend encrypts); in any other room through the room (XEP-0045 §7.5), which mend
    # cannot encrypt and must not mistake for a chat with the room's JID
    room = "open@" + MUC
    with muc_server() as srv:
        make_room(srv, room=room, private=False)
        with with_mend(srv, "alice") as a, with_mend(srv, "bob") as b:
            a.connect()
            mend_ready(a)
            join(a, room)
            b.connect()
            join(b, room, nick="bobby")
            focus(a, room)
            # (Profanity 0.13.1 puts the nick, not the text, in such a message's body)
            a.command("/msg bobby private-in-a-plain-room")
            b.wait_log(re.compile(r"RECV: <message(?=[^>]*from=\"" + re.escape(room) +
                                  r"/alice\")(?=[^>]*type=\"chat\")[^>]*><body>bobby</body>"),
                       20,
                       "bob to get the private message through the room", start=0)
            assert "NOT sent" not in a.screen(), a.screen()


def room_message(proc, body, timeout=30, **fields):
    """A `mend listen` line of a room message with `body` (and fields)."""
    return proc.wait_line(lambda o: o.get("type") == "message" and o.get("body") == body
                          and o.get("room") and all(o.get(k) == v for k, v in fields.items()),
                          timeout, f"{proc.name} to show the room message {body!r}")


def cli(m, *cmd):
    cp = m.run(*cmd)
    assert cp.returncode == 0, f"mend {cmd} exited {cp.returncode}: {cp.stdout}{cp.stderr}"
    return cp


@test
def profanity_and_the_mend_client_in_a_room_and_the_history_after_a_restart():
    with muc_server() as srv, tempfile.TemporaryDirectory() as root:
        make_room(srv)
        bob = Mend(srv, root, "bob", "desk")
        cli(bob, "join", ROOM)
        bob_cli = Mend(srv, root, "bob", "desk-cli", device="desk")
        with with_mend(srv, "alice") as a, bob.listen() as bl:
            wait_listening(bl)
            enter(a)
            say(a, "profanity-to-the-cli")
            got = room_message(bl, "profanity-to-the-cli")
            assert got["from"] == "alice@localhost" and got["nick"] == "alice", got
            cli(bob_cli, "send", ROOM, "cli-to-profanity")
            got = wait_room_line(a, "cli-to-profanity", sender="bob")
            assert got["mark"] == "~", got
            assert not stored_on_server(srv, "profanity-to-the-cli")
            a.quit()
            away = [f"cli-while-profanity-was-closed-{i}" for i in range(3)]
            for t in away:
                cli(bob_cli, "send", ROOM, t)
            back_after_a_restart(a, [("alice", "profanity-to-the-cli"),
                                     ("bob", "cli-to-profanity")] + [("bob", t) for t in away])


@test
def profanitys_own_sendfile_in_an_encrypted_room_uploads_nothing():
    """Profanity's /sendfile would upload the plain file for a room mend encrypts: its
    slot request is replaced, nothing reaches the upload store, the room says why."""
    with tempfile.TemporaryDirectory() as root, upload_server(muc=True) as srv:
        make_room(srv)
        path = os.path.join(root, "plain.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(5000))
        with with_mend(srv, "alice") as a:
            enter(a)
            a.command(f"/sendfile {path}")
            wait_room_line(a, "Use /mend sendfile PATH", 20)
            wait_for(lambda: "upload-blocked" in srv.log_text(), 20,
                     "the replaced slot request to reach the server")
            assert "Issuing upload slot" not in srv.log_text(), "a slot was requested"
            assert store_files(srv) == {}, "Profanity uploaded the file"
            assert a.alive(), a.pane_status()



if __name__ == "__main__":
    main()
