#!/usr/bin/python3
"""Group chats in libpurple (Pidgin, Finch): the plugin in the headless libpurple
client (tests/purple/harness) in a members-only, non-anonymous room of a throwaway
Prosody with the mend client, another libpurple member and python-omemo: both directions, the room's
history after a restart, /mend on refused in an open room with the reason, and a
message held because a member has no OMEMO device, then released or dropped.
"""

import contextlib
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Prosody, skip, start_omemo_peer, test, main, wait_for,  # noqa: E402
                     wait_ready)
from mendcli import (BUILD, Mend, slow_disco, stored_on_server, wait_listening,  # noqa: E402
                     wait_published)
from purple import Finch, Purple, finch_missing, purple_missing  # noqa: E402

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")
ROOM = "secret@conference.localhost"

why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")


def server():
    return Prosody(accounts={"alice": "pw", "bob": "pw", "carol": "pw", "dave": "pw"}, muc=True)


def with_mend(srv, user="alice", user_dir=None):
    return Purple(srv, user, plugins=("core-mend",), plugin_dir=LIBS, user_dir=user_dir)


def ends(text):
    """A chat line showing `text`, after whatever mark mend put in front."""
    return lambda o: o["text"] == text or o["text"].endswith(" " + text)


def room_said(a, words, start=0, flags=()):
    """The first chat line (from `start`) containing `words`."""
    return a.wait_chat(lambda o: words in o["text"], timeout=30, conv=ROOM, start=start,
                       flags=flags)


def encrypt_room(a, room=ROOM):
    m = a.mark()
    r = a.chatcmd(room, "/mend on")
    assert r["status"] == "ok", r
    room_said(a, "OMEMO encryption is on for this room", start=m)


@contextlib.contextmanager
def alice_and_bob_in_the_room(srv, root, members=("alice",)):
    """alice and bob (the room's owner), each libpurple with mend, in the members-only
    non-anonymous room with `members`; alice turned OMEMO on there."""
    srv.create_room("secret", owner="bob", members=members)
    with with_mend(srv, "alice") as a, with_mend(srv, "bob") as b:
        for p in (a, b):
            p.wait_signed_on()
        wait_published(srv, root, "alice")
        wait_published(srv, root, "bob")
        a.join(ROOM, "alice")
        b.join(ROOM, "bob")
        encrypt_room(a)
        yield a, b


@test
def two_purple_members_both_ways_and_history_after_restart():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        with alice_and_bob_in_the_room(srv, root) as (a, b):
            encrypt_room(b)
            m = a.mark()
            a.chatsend(ROOM, "hello from alice")
            got = b.wait_chat(ends("hello from alice"), who="alice", flags=("recv",), conv=ROOM)
            assert got["text"] == "[unverified] hello from alice", got
            a.wait_chat("hello from alice", who="alice", flags=("send",), conv=ROOM, start=m)
            b.chatsend(ROOM, "hello from bob")
            a.wait_chat("[unverified] hello from bob", who="bob", flags=("recv",), conv=ROOM)
            # a member's device verified from the room window: its messages are [verified]
            m = a.mark()
            a.chatcmd(ROOM, "/mend devices bob@localhost")
            dev = re.match(r"bob@localhost device (\d+): ", room_said(a, "bob@localhost device",
                                                                       start=m)["text"])[1]
            a.chatcmd(ROOM, f"/mend trust bob@localhost {dev}")
            room_said(a, f"bob@localhost device {dev} is verified.", start=m)
            b.chatsend(ROOM, "checked in the room")
            a.wait_chat("[verified] checked in the room", who="bob", conv=ROOM, start=m)
            a.ping()
            ours = [o for o in a.chats(conv=ROOM) if "hello from alice" in o["text"]]
            assert len(ours) == 1, f"our message shown {len(ours)} times: {ours}"
            for t in ("hello from alice", "hello from bob"):
                assert not stored_on_server(srv, t), f"plaintext {t!r} left"
            a.quit()
            texts = [f"while alice was away {i}" for i in range(3)]
            for t in texts:
                m = b.mark()
                b.chatsend(ROOM, t)
                b.wait_chat(t, flags=("send",), conv=ROOM, start=m)
            sent_at = time.time()
            wait_for(lambda: time.time() >= sent_at + 2, 5, "the clock to move on")
            a.start()
            a.wait_signed_on()
            a.join(ROOM, "alice")
            a.wait_chat(ends(texts[-1]), who="bob", conv=ROOM, timeout=30)
            a.ping()
            got = [o for o in a.chats(conv=ROOM) if "while alice was away" in o["text"]]
            assert [o["text"] for o in got] == [f"[verified] {t}" for t in texts], got
            for o in got:
                assert o["mtime"] <= sent_at + 1, f"not the original time: {o}"
                assert "delayed" in o["flags"], o
            # what the window showed before the restart is not shown again
            again = [o for o in a.chats(conv=ROOM) if "hello from" in o["text"] or
                     "checked in the room" in o["text"]]
            assert again == [], again
            a.wait_chat("OMEMO: this room is encrypted.", flags=("system",), conv=ROOM)
            m = b.mark()
            a.chatsend(ROOM, "back again")
            b.wait_chat("[unverified] back again", who="alice", conv=ROOM, start=m)


@test
def after_a_reconnect_the_room_is_caught_up_and_both_ways_work():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        with alice_and_bob_in_the_room(srv, root) as (a, b):
            encrypt_room(b)

            def bob_writes():
                m = b.mark()
                b.chatsend(ROOM, "while alice reconnects")
                b.wait_chat("while alice reconnects", flags=("send",), conv=ROOM, start=m)
            a.reconnect(bob_writes)
            m = a.mark()
            a.join(ROOM, "alice")  # as Pidgin and Finch join their open rooms again
            a.wait_chat("[unverified] while alice reconnects", who="bob", conv=ROOM, start=m)
            a.chatsend(ROOM, "alice is back")
            b.wait_chat("[unverified] alice is back", who="alice", conv=ROOM)
            a.ping()
            shown = [o for o in a.chats(conv=ROOM) if "while alice reconnects" in o["text"]]
            assert len(shown) == 1, shown


def room_message(proc, body, timeout=30, start=0):
    """A `mend listen` line: `body` decrypted in ROOM."""
    return proc.wait_line(lambda o: o.get("type") == "message" and o.get("body") == body
                          and o.get("room") == ROOM, timeout,
                          f"{proc.name} to show {body!r} in {ROOM}", start=start)


@test
def purple_and_the_mend_client_in_a_room_both_ways_and_history_after_restart():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        srv.create_room("secret", owner="bob", members=("alice",))
        bob = Mend(srv, root, "bob", "cli")
        cp = bob.run("join", ROOM, "--nick", "bob")
        assert cp.returncode == 0, cp.stderr
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")
            a.join(ROOM, "alice")
            encrypt_room(a)
            with bob.listen() as bl:
                wait_listening(bl)
                m = a.mark()
                a.chatsend(ROOM, "hello room from purple")
                got = room_message(bl, "hello room from purple")
                assert got["from"] == "alice@localhost" and got["nick"] == "alice", got
                a.wait_chat("hello room from purple", who="alice", flags=("send",), conv=ROOM,
                            start=m)
                bob.send(ROOM, "hello from the mend client")
                a.wait_chat("[unverified] hello from the mend client", who="bob",
                            flags=("recv",), conv=ROOM)
            assert not stored_on_server(srv, "hello room from purple"), "plaintext left"
            a.quit()
            texts = [f"while purple was away {i}" for i in range(3)]
            for t in texts:
                bob.send(ROOM, t)
            a.start()
            a.wait_signed_on()
            a.join(ROOM, "alice")
            a.wait_chat(ends(texts[-1]), who="bob", conv=ROOM)
            a.ping()
            got = [o["text"] for o in a.chats(conv=ROOM) if "while purple was away" in o["text"]]
            assert got == [f"[unverified] {t}" for t in texts], got


@test
def purple_and_python_omemo_in_a_room_both_ways():
    """The independent python-omemo as the other member of the room."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        room = srv.create_room("secret", owner="bob", members=("alice",))
        with with_mend(srv, "alice") as a, \
                start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py")) as peer:
            a.wait_signed_on()
            wait_ready(peer)
            wait_published(srv, root, "alice")
            m = peer.mark()
            peer.send_line(f"join {room} bob")
            peer.wait_line(lambda o: o["type"] == "joined", 30, "the peer to join", start=m)
            a.join(room, "alice")
            encrypt_room(a)
            # python-omemo rejects a sender whose device list it has not seen (README)
            peer.send_line("refresh alice@localhost")
            peer.wait_line(lambda o: o["type"] == "refreshed" and o["devices"], 20,
                           "the peer to see alice's device")
            a.chatsend(room, "to python-omemo in a room")
            got = peer.wait_line(lambda o: o["type"] == "message" and o.get("groupchat") and
                                 o["body"] == "to python-omemo in a room", 30,
                                 "the peer to decrypt alice's room message")
            assert got["from"] == "alice@localhost" and got["nick"] == "alice", got
            m = peer.mark()
            peer.send_line(f"send {room} from python-omemo in a room")
            sent = peer.wait_line(lambda o: o["type"] in ("sent", "command_error"), 30,
                                  "the peer to send", start=m)
            assert sent["type"] == "sent" and not sent["errors"], sent
            assert "alice@localhost" in {r["jid"] for r in sent["recipients"]}, sent
            a.wait_chat("[unverified] from python-omemo in a room", who="bob", conv=room)
            assert not stored_on_server(srv, "to python-omemo in a room"), "plaintext left"


@test
def finch_shows_the_room_state_and_a_decrypted_room_message():
    """The real Finch in tmux joins the room from its buddy list: the room's state line,
    /mend on typed in the room window, and a member's encrypted message with its mark."""
    reason = finch_missing()
    if reason:
        skip(reason)
    if os.environ.get("MEND_SANITIZERS"):
        skip("a sanitizer build: an ASan plugin cannot load into the uninstrumented Finch")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        srv.create_room("secret", owner="bob", members=("alice",))
        account = dict(jid="alice@localhost/finch", port=srv.port, password="pw")
        with Finch(plugins=[PLUGIN], account=account, width=120, height=40,
                   chats=[(ROOM, "alice")]) as f, with_mend(srv, "bob") as b:
            f.window("secret")
            f.shown("OMEMO: this room is NOT encrypted")
            f.type_line("/mend on")
            f.shown("OMEMO encryption is on for this room")
            f.shown("OMEMO: this room is encrypted.")
            b.wait_signed_on()
            wait_published(srv, root, "alice")
            b.join(ROOM, "bob")
            encrypt_room(b)
            b.chatsend(ROOM, "hello finch room")
            f.shown("bob: [unverified] hello finch room")
            assert not stored_on_server(srv, "hello finch room"), "plaintext left"


@test
def mend_on_is_refused_in_an_open_room_with_the_reason():
    with server() as srv:
        open_room = srv.create_room("open", owner="bob", members_only=False)
        with with_mend(srv) as a:
            a.wait_signed_on()
            a.join(open_room, "alice")
            m = a.mark()
            a.chatcmd(open_room, "/mend on")
            said = a.wait_chat(lambda o: "not members-only" in o["text"], timeout=30,
                               conv=open_room, start=m)
            assert "stays off" in said["text"], said
            assert not a.find(lambda o: o["type"] == "chat" and "is on for this room"
                              in o["text"], m), "claimed on"
            a.chatsend(open_room, "plain in the open room")
            wait_for(lambda: stored_on_server(srv, "plain in the open room"), 20,
                     "the plaintext message to reach the room")
            a.chatcmd(open_room, "/mend status")
            a.wait_chat(lambda o: "NOT encrypted" in o["text"], conv=open_room, start=m)


@test
def a_message_a_member_cannot_read_is_held_then_released_or_dropped():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        with alice_and_bob_in_the_room(srv, root, ("alice", "dave")) as (a, b):  # dave: no OMEMO
            m = a.mark()
            a.chatsend(ROOM, "held-secret")
            held = a.wait_chat(lambda o: "NOT sent yet" in o["text"], flags=("error",),
                               conv=ROOM, start=m)
            assert "dave@localhost" in held["text"] and "/mend release" in held["text"], held
            a.chatcmd(ROOM, "/mend members")
            a.wait_chat(lambda o: o["text"].startswith("dave@localhost") and
                        "cannot read" in o["text"], conv=ROOM, start=m)
            a.ping()
            assert not stored_on_server(srv, "held-secret"), "held, yet it left"
            assert not b.find(lambda o: "held-secret" in o.get("text", "")), "held, yet it left"
            held_id = re.search(r"/mend release (\S+) sends it", held["text"])[1]
            a.chatcmd(ROOM, f"/mend release {held_id}")
            b.wait_chat("[unverified] held-secret", who="alice", conv=ROOM)
            a.wait_chat("held-secret", flags=("send",), conv=ROOM, start=m)
            assert not stored_on_server(srv, "held-secret"), "plaintext left"
            m = a.mark()
            a.chatsend(ROOM, "dropped-secret")
            a.wait_chat(lambda o: "NOT sent yet" in o["text"], conv=ROOM, start=m)
            a.chatcmd(ROOM, "/mend drop")
            a.wait_chat(lambda o: "dropped-secret" in o["text"] and "error" in o["flags"]
                        and "NOT sent yet" not in o["text"], conv=ROOM, start=m)
            # bob's side of the room is not encrypted: his plaintext is marked so
            b.chatsend(ROOM, "after the drop")
            a.wait_chat("[UNENCRYPTED] after the drop", who="bob", conv=ROOM, start=m)
            b.ping()
            assert not b.find(lambda o: "dropped-secret" in o.get("text", "")), "dropped, yet it left"
            assert not stored_on_server(srv, "dropped-secret"), "plaintext left"



@test
def what_is_typed_while_rooms_are_asked_waits_and_never_leaves_in_plaintext():
    """Two rooms whose disco#info the server answers late (mod_mend_slow_disco.lua): /mend on
    turns them on at once and what is typed meanwhile waits in the core; once they answer,
    the members-only room's message leaves encrypted, the open room refuses with the reason
    and the message is reported NOT sent; nothing reaches the server in plaintext."""
    with tempfile.TemporaryDirectory() as root:
        flag, config = slow_disco(root)
        accounts = {"alice": "pw", "bob": "pw", "carol": "pw"}
        with Prosody(accounts=accounts, muc=True, muc_modules=("mend_slow_disco",),
                     extra_config=config) as srv:
            with open(flag, "w"):  # the set-up checks the rooms' disco#info
                pass
            ok = srv.create_room("slowok", owner="bob", members=("alice",))
            shut = srv.create_room("slowopen", owner="bob", members_only=False)
            os.remove(flag)
            Mend(srv, root, "bob", "phone").publish()  # a member who can read it
            with with_mend(srv, "alice") as a:
                a.wait_signed_on()
                m = a.mark()
                for room, text in ((ok, "typed while asking ok"), (shut, "typed while asking open")):
                    a.join(room, "alice")
                    a.chatcmd(room, "/mend on")
                    a.wait_chat(lambda o: "nothing is sent there unencrypted" in o["text"],
                                conv=room, start=m)
                    a.chatsend(room, text)
                assert not stored_on_server(srv, "typed while asking"), "sent in plaintext"
                with open(flag, "w"):
                    pass
                said = a.wait_chat(lambda o: "not members-only" in o["text"], timeout=30,
                                   conv=shut, start=m)
                assert "stays off" in said["text"], said
                a.wait_chat(lambda o: "not sent" in o["text"] and "typed while asking open"
                            in o["text"], timeout=30, conv=shut, start=m)
                a.wait_chat(lambda o: "OMEMO encryption is on for this room" in o["text"],
                            timeout=30, conv=ok, start=m)
                a.wait_chat(ends("typed while asking ok"), timeout=30, conv=ok, start=m)
                assert not stored_on_server(srv, "typed while asking"), "sent in plaintext"
                a.chatcmd(shut, "/mend status")
                a.wait_chat(lambda o: "NOT encrypted" in o["text"], conv=shut, start=m)


if __name__ == "__main__":
    main()
