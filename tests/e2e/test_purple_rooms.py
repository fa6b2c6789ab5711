#!/usr/bin/python3
"""Group chats in libpurple (Pidgin, Finch): the plugin in the headless libpurple
client (tests/purple/harness) in a members-only, non-anonymous room of a throwaway
Prosody with the mend client as the other member: both directions, the room's
history after a restart, /mend on refused in an open room with the reason, and a
message held because a member has no OMEMO device, then released or dropped.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, test, main, wait_for  # noqa: E402
from mendcli import BUILD, Mend, stored_on_server, wait_listening, wait_published  # noqa: E402
from purple import Purple, purple_missing  # noqa: E402
from profanity import xmpp_session  # noqa: E402
from harness import Prosody  # noqa: E402

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")
MUC = "conference.localhost"
ROOM = f"secret@{MUC}"

why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")


def server():
    return Prosody(accounts={"alice": "pw", "bob": "pw", "carol": "pw"},
                   extra_config=f'Component "{MUC}" "muc"\n'
                                '    modules_enabled = { "muc_mam" }\n'
                                '    muc_log_all_rooms = true\n')


def make_room(srv, room, owner="bob", members=(), private=True):
    """`room` made by `owner` (persistent; members-only and non-anonymous if private),
    with `members` (user names) as members."""
    with xmpp_session("127.0.0.1", srv.port, srv.jid(owner), "pw", resource="roomsetup") as x:
        x._send(f"<presence to='{room}/{owner}-setup'>"
                "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
        x._read_until(lambda b: "code='201'" in b or 'code="201"' in b, "the room to be made")
        fields = {"muc#roomconfig_persistentroom": "1"}
        if private:
            fields.update({"muc#roomconfig_membersonly": "1", "muc#roomconfig_whois": "anyone"})
        form = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
        reply = x.iq(f"<iq type='set' to='{room}' id='cfg'><query xmlns='http://jabber.org/"
                     "protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
                     "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig"
                     f"</value></field>{form}</x></query></iq>", "cfg")
        assert "type='result'" in reply or 'type="result"' in reply, reply
        if members:
            items = "".join(f"<item affiliation='member' jid='{srv.jid(m)}'/>" for m in members)
            reply = x.iq(f"<iq type='set' to='{room}' id='aff'><query xmlns='http://jabber.org/"
                         f"protocol/muc#admin'>{items}</query></iq>", "aff")
            assert "type='result'" in reply or 'type="result"' in reply, reply
        x._send(f"<presence type='unavailable' to='{room}/{owner}-setup'/>")


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


def bob_in_room(srv, root):
    bob = Mend(srv, root, "bob", "cli")
    cp = bob.run("join", ROOM, "--nick", "bob")
    assert cp.returncode == 0, cp.stderr
    return bob


def room_message(proc, body, timeout=30, start=0):
    return proc.wait_line(lambda o: o.get("type") == "message" and o.get("body") == body
                          and o.get("room") == ROOM, timeout,
                          f"{proc.name} to show {body!r} in {ROOM}", start=start)


@test
def purple_in_a_room_with_the_mend_client_both_ways_and_history_after_restart():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        make_room(srv, ROOM, owner="bob", members=("alice",))
        bob = bob_in_room(srv, root)
        with with_mend(srv) as a:
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
                mine = a.wait_chat("hello room from purple", flags=("send",), start=m)
                assert mine["conv"] == ROOM, mine
                bob.send(ROOM, "hello from the mend client")
                got = a.wait_chat(ends("hello from the mend client"), who="bob",
                                  flags=("recv",), conv=ROOM)
                assert got["text"] == "[unverified] hello from the mend client", got
            a.ping()
            ours = [o for o in a.chats(conv=ROOM) if "hello room from purple" in o["text"]]
            assert len(ours) == 1, f"our message shown {len(ours)} times: {ours}"
            assert not stored_on_server(srv, "hello room from purple"), "plaintext left"
            a.quit()
            texts = [f"while purple was away {i}" for i in range(3)]
            for t in texts:
                bob.send(ROOM, t)
            sent_at = time.time()
            wait_for(lambda: time.time() >= sent_at + 2, 5, "the clock to move on")
            a.start()
            a.wait_signed_on()
            a.join(ROOM, "alice")
            for t in texts:
                a.wait_chat(ends(t), who="bob", conv=ROOM)
            a.ping()
            got = [o for o in a.chats(conv=ROOM) if "while purple was away" in o["text"]]
            assert [o["text"] for o in got] == [f"[unverified] {t}" for t in texts], got
            for o in got:
                assert o["mtime"] <= sent_at + 1, f"not the original time: {o}"
            # what the window showed before the restart is not shown again
            again = [o for o in a.chats(conv=ROOM) if "hello" in o["text"]]
            assert again == [], again
            a.wait_chat("OMEMO: this room is encrypted.", flags=("system",), conv=ROOM)


@test
def mend_on_is_refused_in_an_open_room_with_the_reason():
    open_room = f"open@{MUC}"
    with server() as srv:
        make_room(srv, open_room, owner="bob", private=False)
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
        make_room(srv, ROOM, owner="bob", members=("alice", "carol"))  # carol: no OMEMO
        bob = bob_in_room(srv, root)
        with with_mend(srv) as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")
            a.join(ROOM, "alice")
            encrypt_room(a)
            with bob.listen() as bl:
                wait_listening(bl)
                m = a.mark()
                a.chatsend(ROOM, "held-secret")
                held = a.wait_chat(lambda o: "NOT sent yet" in o["text"], flags=("error",),
                                   conv=ROOM, start=m)
                assert "carol@localhost" in held["text"] and "/mend release" in held["text"], held
                a.chatcmd(ROOM, "/mend members")
                a.wait_chat(lambda o: o["text"].startswith("carol@localhost") and
                            "0 of 0" in o["text"], conv=ROOM, start=m)
                assert not stored_on_server(srv, "held-secret"), "held, yet it left"
                a.chatcmd(ROOM, "/mend release")
                room_message(bl, "held-secret")
                a.wait_chat("held-secret", flags=("send",), conv=ROOM, start=m)
                assert not stored_on_server(srv, "held-secret"), "plaintext left"
                m = a.mark()
                a.chatsend(ROOM, "dropped-secret")
                a.wait_chat(lambda o: "NOT sent yet" in o["text"], conv=ROOM, start=m)
                a.chatcmd(ROOM, "/mend drop")
                a.wait_chat(lambda o: "dropped-secret" in o["text"] and "error" in o["flags"]
                            and "NOT sent yet" not in o["text"], conv=ROOM, start=m)
                bob.send(ROOM, "after the drop")
                room_message(bl, "after the drop")
                a.wait_chat(ends("after the drop"), who="bob", conv=ROOM, start=m)
                a.ping()
                assert not room_message_seen(bl, "dropped-secret"), "a dropped message left"
                assert not stored_on_server(srv, "dropped-secret"), "plaintext left"


def room_message_seen(proc, body):
    return any(o.get("type") == "message" and o.get("body") == body for o in proc.lines)


if __name__ == "__main__":
    main()
