#!/usr/bin/python3
"""mend inside libpurple (2.14, the library Pidgin and Finch run on): the
plugin loaded by a headless libpurple client (tests/purple/harness), signed in
to a throwaway Prosody on 127.0.0.1; against the mend client, the independent
python-omemo peer, our own other device, after being offline, and when the
peer cannot be encrypted to. Finch in tmux loads the plugin too.
"""

import contextlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, start_omemo_peer, test, main, wait_for, wait_ready  # noqa: E402
from mendcli import (BUILD, Mend, archived_only, failing_archive, offline_items, server,  # noqa: E402,E501
                     stored_on_server, wait_listening, wait_message, wait_published)
from purple import Finch, Purple, purple_missing, finch_loads_plugin, finch_missing  # noqa: E402,E501
from profanity import xmpp_session  # noqa: E402

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")

why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")


def ends(text):
    """An "im" line showing `text`, after whatever mark mend put in front."""
    return lambda o: o["text"] == text or o["text"].endswith(" " + text)


def with_mend(srv, user, resource="purple", user_dir=None):
    return Purple(srv, user, resource=resource, plugins=("core-mend",), plugin_dir=LIBS,
                  user_dir=user_dir)


@contextlib.contextmanager
def alice_and_listening_bob(srv, root):
    """alice in libpurple, signed on; bob's mend client (published) listening."""
    bob = Mend(srv, root, "bob", "phone")
    bob.publish()
    with with_mend(srv, "alice") as a, bob.listen() as bl:
        a.wait_signed_on()
        wait_listening(bl)
        yield a, bl


@test
def purple_and_the_mend_client_both_ways():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        with alice_and_listening_bob(srv, root) as (a, bl):
            a.cmd("bob@localhost", "/mend on")
            a.send("bob@localhost", "hello from libpurple")
            m = wait_message(bl, "hello from libpurple", timeout=30)
            assert m["from"] == "alice@localhost", m
            Mend(srv, root, "bob", "cli", device="phone").send("alice@localhost",
                                                               "hello from the mend client")
            got = a.wait_im(ends("hello from the mend client"), timeout=30, flags=("recv",))
            assert got["who"] == "bob@localhost", got
            assert not stored_on_server(srv, "hello from libpurple"), \
                "the plaintext reached the server"


@test
def purple_and_python_omemo_both_ways():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        peer = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"))
        with peer, with_mend(srv, "alice") as a:
            wait_ready(peer)
            a.wait_signed_on()
            a.cmd("bob@localhost", "/mend on")
            # python-omemo rejects a sender whose device list it has not seen (README)
            peer.send_line("refresh alice@localhost")
            peer.wait_line(lambda o: o["type"] == "refreshed" and o["devices"], 20,
                           "the peer to see alice's device")
            a.send("bob@localhost", "to python-omemo")
            m = peer.wait_line(lambda o: o["type"] == "message" and
                               o["body"] == "to python-omemo", 30, "the peer to decrypt")
            assert m["from"] == "alice@localhost", m
            peer.send_line("send alice@localhost from python-omemo")
            a.wait_im(ends("from python-omemo"), timeout=30, flags=("recv",))


@test
def carbons_from_another_own_device():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone, bob = Mend(srv, root, "alice", "phone"), Mend(srv, root, "bob", "desk")
        bob.publish()
        phone.publish()
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")  # carbons are on by then too
            a.cmd("bob@localhost", "/mend on")
            phone.send("bob@localhost", "sent from the phone")
            got = a.wait_im("sent from the phone", timeout=30, flags=("send",))
            assert got["conv"] == "bob@localhost", got
            with phone.listen() as pl:
                wait_listening(pl)
                bob.send("alice@localhost/phone", "to the phone only")
                wait_message(pl, "to the phone only", timeout=30)
                got = a.wait_im(ends("to the phone only"), timeout=30, flags=("recv",))
                assert got["who"] == "bob@localhost", got


@test
def catch_up_after_being_offline_once_and_in_order():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")
            a.quit()
            texts = [f"while offline {i}" for i in range(4)]
            for t in texts:
                bob.send("alice@localhost", t)
            assert offline_items(srv, "alice") == len(texts), offline_items(srv, "alice")
            sent_at = time.time()
            wait_for(lambda: time.time() >= sent_at + 2, 5, "the clock to move on")
            a.restart()
            for t in texts:
                a.wait_im(ends(t), timeout=30)
            got = [m for m in a.ims() if "while offline" in m["text"]]
            assert [m["text"] for m in got] == [f"[unverified] {t}" for t in texts], \
                [m["text"] for m in got]
            for m in got:
                assert m["mtime"] <= sent_at + 1, f"not the original time: {m}"
            # the catch-up did not leave them in the server's offline store (issue 9)
            wait_for(lambda: offline_items(srv, "alice") == 0, 10,
                     f"alice's offline store to be empty (holds {offline_items(srv, 'alice')})")
            a.restart()
            a.ping()
            mark = a.mark()
            a.wait_signed_on()
            bob.send("alice@localhost", "a new one")
            a.wait_im(ends("a new one"), timeout=30, start=mark)
            again = [m for m in a.ims(start=mark) if "while offline" in m["text"]]
            assert again == [], f"shown again after a restart: {again}"


@test
def catch_up_asked_again_after_an_archive_error_without_new_traffic():
    # the retry waits for mend_account_tick(): no stanza arrives after the error
    with tempfile.TemporaryDirectory() as root:
        flag, kw = failing_archive(root)
        with server(**kw) as srv:
            Mend(srv, root, "bob", "phone").publish()
            with with_mend(srv, "alice") as a:
                a.wait_signed_on()
                wait_published(srv, root, "alice")
                a.quit()
                archived_only(srv, root, "only in the archive")
                open(flag, "w").close()
                a.start()
                a.wait_signed_on()
                wait_for(lambda: not os.path.exists(flag), 30, "the archive to fail once")
                # asked again 10 s after the error, at the next tick (5 s); libpurple's
                # own keepalive ping (whose answer would poll the core too) comes at 30 s
                got = a.wait_im(ends("only in the archive"), timeout=22, flags=("recv",))
                assert got["who"] == "bob@localhost", got


@test
def the_peer_receives_no_plaintext():
    with server() as srv:
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            a.cmd("carol@localhost", "/mend on")
            a.send("carol@localhost", "canary-secret-purple")
            a.wait_im(lambda o: "NOT sent" in o["text"], timeout=30, flags=("error",))
            a.cmd("carol@localhost", "/mend off")
            a.send("carol@localhost", "canary-plain-purple")
            wait_for(lambda: stored_on_server(srv, "canary-plain-purple"), 20,
                     "the plaintext control message to reach the server")
            assert not stored_on_server(srv, "canary-secret-purple"), "plaintext left"


def fingerprint(dev):
    cp = dev.run("fingerprint")
    o = dev.lines(cp)[0]
    return o["device"], o["fingerprint"]


@test
def every_received_message_carries_its_trust_mark():
    """verified, trusted on first use, untrusted, a device the contact never
    announced, and plaintext in an encrypted chat: five distinct marks."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone, ghost = Mend(srv, root, "bob", "phone"), Mend(srv, root, "bob", "ghost")
        phone.publish()
        pid, pfp = fingerprint(phone)
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")
            phone.send("alice@localhost", "first use")
            a.wait_im("[unverified] first use", timeout=30, flags=("recv",))
            a.cmd("bob@localhost", f"/mend trust bob@localhost {pid} {pfp}")
            phone.send("alice@localhost", "compared")
            a.wait_im("[verified] compared", timeout=30, flags=("recv",))
            a.cmd("bob@localhost", f"/mend untrust bob@localhost {pid}")
            phone.send("alice@localhost", "from a distrusted phone")
            a.wait_im("[UNTRUSTED device] from a distrusted phone", timeout=30,
                      flags=("recv",))
            with xmpp_session("127.0.0.1", srv.port, "bob@localhost", "pw") as x:
                x._send("<message type='chat' to='alice@localhost' id='p1'>"
                        "<body>in the clear</body></message>")
                a.wait_im("[UNENCRYPTED] in the clear", timeout=30, flags=("recv",))
            a.quit()
            # a device bob's published list does not name (XEP-0384 §4.2)
            ghost.send("alice@localhost", "from nowhere")
            with xmpp_session("127.0.0.1", srv.port, "bob@localhost", "pw") as x:
                x.publish_devicelists([pid])
            a.restart()
            a.wait_im("[device NOT in the contact's list] from nowhere", timeout=30,
                      flags=("recv",))
            shown = [m["text"] for m in a.ims() if m["text"].endswith("from nowhere")]
            assert len(shown) == 1, shown


@test
def per_chat_switch_ignores_case_and_resource_and_rooms_stay_honest():
    with server(extra_config='Component "conference.localhost" "muc"\n') as srv, \
            tempfile.TemporaryDirectory() as root:
        with alice_and_listening_bob(srv, root) as (a, bl):
            a.cmd("bob@localhost", "/mend default off")
            a.cmd("Bob@LocalHost/phone", "/mend on")
            a.send("bob@localhost", "case-folded-secret")
            wait_message(bl, "case-folded-secret", timeout=30)
            a.cmd("bob@localhost", "/mend off")
            a.send("bob@localhost", "plain-while-off")  # ours, unencrypted: marked so
            a.wait_im("[UNENCRYPTED] plain-while-off", timeout=10, flags=("send",))
            sent = [o["text"] for o in a.ims() if "send" in o["flags"]]
            assert not any(t.startswith("[UNENCRYPTED] case-folded") for t in sent), sent
            a.cmd("bob@localhost", "/mend on BOB@localhost/elsewhere")
            a.send("bob@localhost/phone", "resource-secret")
            wait_message(bl, "resource-secret", timeout=30)
            assert not stored_on_server(srv, "case-folded-secret"), "plaintext left"
            assert not stored_on_server(srv, "resource-secret"), "plaintext left"
            a.join("room@conference.localhost", "alice")
            m = a.mark()
            r = a.chatcmd("room@conference.localhost", "/mend on")
            assert r["status"] == "ok", r
            # a room that is not members-only: refused with the reason, stays off
            a.wait_chat(lambda o: "stays off" in o["text"], timeout=30, start=m)
            said = [o["text"] for o in a.find(lambda o: o["type"] == "chat", m)]
            assert not any("is on" in t for t in said), said


@test
def a_failed_send_shows_an_error_not_a_sent_message():
    with server() as srv:
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            a.cmd("carol@localhost", "/mend on")
            a.send("carol@localhost", "never-leaves")
            a.wait_im(lambda o: "NOT sent" in o["text"] and "never-leaves" in o["text"],
                      timeout=30, flags=("error",))
            a.ping()
            sent = [o for o in a.ims() if "send" in o["flags"] and "never-leaves" in o["text"]]
            assert sent == [], f"shown as sent: {sent}"
            assert not stored_on_server(srv, "never-leaves"), "plaintext left"


@test
def help_mend_lists_every_command():
    with server() as srv:
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            m = a.mark()
            a.cmd("bob@localhost", "/help mend")
            text = a.wait_im(lambda o: "mend" in o["text"] and "/mend" in o["text"],
                             timeout=10, start=m)["text"]
            for word in ("on|off", "default", "status", "devices", "fingerprint", "trust",
                         "untrust", "uri", "verify", "policy", "members", "release",
                         "send-anyway", "drop"):
                assert word in text, f"{word!r} missing from /help mend: {text}"


@test
def on_by_default_for_a_contact_with_omemo_devices():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        with alice_and_listening_bob(srv, root) as (a, bl):
            a.send("bob@localhost", "secret-by-default")
            wait_message(bl, "secret-by-default", timeout=30)
            assert not stored_on_server(srv, "secret-by-default"), "plaintext left"
            # the state line follows what mend learnt (Finch's status line)
            a.wait_im("OMEMO: this chat is encrypted.", timeout=30, flags=("system",),
                      conv="bob@localhost")
            # a contact without OMEMO: plaintext once mend knows (the chat says so)
            def carol_known():
                m = a.mark()
                a.cmd("carol@localhost", "/mend status")
                return any("NOT encrypted" in o["text"] for o in a.ims(start=m))
            wait_for(carol_known, 20, "mend to learn that carol has no OMEMO device",
                     interval=0.3)
            a.send("carol@localhost", "plain-to-carol")
            wait_for(lambda: stored_on_server(srv, "plain-to-carol"), 20,
                     "the message to carol to reach the server")
            said = [o["text"] for o in a.ims(conv="carol@localhost")]
            assert any("NOT encrypted" in t for t in said), said



@test
def an_omemo_message_is_never_shown_as_its_fallback_when_mend_cannot_open():
    """The store's key is gone: mend cannot open the account, and an OMEMO
    message from bob becomes an error line, not libpurple's fallback body."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            wait_published(srv, root, "alice")
            a.quit()
            keys = [os.path.join(d, f) for d, _, fs in os.walk(a.user_dir) for f in fs
                    if f.endswith(".key")]
            assert keys, f"no key file under {a.user_dir}"
            for k in keys:
                os.unlink(k)
            a.restart()
            bob.send("alice@localhost", "sealed-while-locked")
            a.wait_im(lambda o: "cannot read" in o["text"], timeout=30, flags=("error",))
            a.ping()
            shown = [o for o in a.ims() if "recv" in o["flags"]]
            assert shown == [], f"a fallback body was shown: {shown}"
            assert not a.find(lambda o: "sealed-while-locked" in json.dumps(o)), "decrypted?"


@test
def finch_shows_the_marks_and_the_help():
    """The real Finch in tmux: received messages with their marks, and /help mend."""
    reason = finch_missing()
    if reason:
        skip(reason)
    if os.environ.get("MEND_SANITIZERS"):
        skip("a sanitizer build: an ASan plugin cannot load into the uninstrumented Finch")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = Mend(srv, root, "bob", "phone")
        phone.publish()
        pid, pfp = fingerprint(phone)
        account = dict(jid="alice@localhost/finch", port=srv.port, password="pw")
        with Finch(plugins=[PLUGIN], account=account, width=120, height=40) as f:
            wait_published(srv, root, "alice")
            phone.send("alice@localhost", "hello finch")
            shown, window, type_line = f.shown, f.window, f.type_line
            window("bob")
            shown("bob: [unverified] hello finch")
            shown("OMEMO: this chat is encrypted")
            type_line(f"/mend trust bob@localhost {pid} {pfp}")
            shown("is verified")
            phone.send("alice@localhost", "checked in finch")
            shown("bob: [verified] checked in finch")
            type_line(f"/mend untrust bob@localhost {pid}")
            shown("will get nothing from you")
            phone.send("alice@localhost", "distrusted in finch")
            shown("bob: [UNTRUSTED device] distrusted in finch")
            with xmpp_session("127.0.0.1", srv.port, "bob@localhost", "pw") as x:
                x._send("<message type='chat' to='alice@localhost' id='f1'>"
                        "<body>clear in finch</body></message>")
                shown("bob: [UNENCRYPTED] clear in finch")
            type_line("/help mend")
            for words in ("/mend on|off", "/mend default on|off", "/mend status",
                          "/mend devices", "/mend fingerprint", "/mend trust", "/mend untrust",
                          "/mend uri", "/mend verify URI", "/mend policy"):
                shown(words)

            def ghost_writes():
                """A device bob's published list does not name (XEP-0384 §4.2) writes while
                Finch is closed; bob's list then names only his phone again."""
                Mend(srv, root, "bob", "ghost").send("alice@localhost", "from nowhere in finch")
                with xmpp_session("127.0.0.1", srv.port, "bob@localhost", "pw") as x:
                    x.publish_devicelists([pid])

            f.restart(ghost_writes)
            window("bob")
            shown("bob: [device NOT in the contact's list] from nowhere in finch")


@test
def finch_lists_and_loads_the_plugin():
    reason = finch_missing()
    if reason:
        skip(reason)
    if os.environ.get("MEND_SANITIZERS"):
        skip("a sanitizer build: an ASan plugin cannot load into the uninstrumented Finch")
    r = finch_loads_plugin(PLUGIN, "core-mend", 30)
    assert r, str(r)


if __name__ == "__main__":
    main()
