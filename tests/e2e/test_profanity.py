#!/usr/bin/python3
"""mend inside the real Profanity (Debian's 0.13.1, driven in tmux, temp HOME),
on a throwaway Prosody: the plugin against the mend client, against another
Profanity using its own built-in OMEMO, as one of alice's two devices, after
being closed, and when the peer's keys cannot be had (no plaintext leaves).
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, main, wait_for  # noqa: E402
from profanity import Profanity, mend_plugin_or_skip, xmpp_session  # noqa: E402
from mendcli import BUILD, Mend, archived_only, failing_archive, offline_items, server, stored_on_server, wait_listening, wait_message  # noqa: E402,E501

PLUGIN, MODULE = mend_plugin_or_skip(BUILD)
SIGNAL = os.environ.get("MEND_SIGNAL") or "libomemo-c"


def with_mend(srv, user, resource="prof", load_at_start=True, prefs=None):
    """Profanity with mend.so: loaded at start-up (or later by the test)."""
    return Profanity(srv, user, resource=resource, env={"MEND_PROFANITY_MODULE": MODULE},
                     plugins=[PLUGIN] if load_at_start else (), prefs=prefs)


def mend_ready(p, timeout=20):
    """mend has published this device: /mend status answers with a device id."""
    p.win(1)  # mend's command output goes to the console
    p.command("/mend status")
    return p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), timeout,
                         "/mend status to answer")


@test
def profanity_and_the_mend_client_both_ways():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as p, bob.listen() as bl:
            p.connect()
            mend_ready(p)
            wait_listening(bl)
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "hello from profanity")
            m = wait_message(bl, "hello from profanity", timeout=30)
            assert m["from"] == "alice@localhost" and m["carbon"] is None, m
            # a second process of bob's device (its own resource: the listener keeps its own)
            Mend(srv, root, "bob", "phone-cli", device="phone").send(
                "alice@localhost", "hello from the mend client")
            line = p.wait_message("bob@localhost", "hello from the mend client", timeout=30)
            assert line["mark"] == "~", f"no encryption mark: {line}"
            assert "[OMEMO]" in p.title(), p.title()
            mine = p.wait_message("bob@localhost", "hello from profanity", sender="me")
            assert mine["mark"] == "~", mine
            # several in a row, then off and on: Profanity 0.13.1 double-frees a plugin's
            # outgoing mark on the second message, so mend must not use that API
            for i in range(3):
                p.say("bob@localhost", f"one more {i}")
                wait_message(bl, f"one more {i}", timeout=30)
            p.command("/mend off bob@localhost")
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "still alive")
            wait_message(bl, "still alive", timeout=30)
            assert p.alive(), p.pane_status()
            # trust shows in the title bar; a device the user distrusts gets nothing
            p.command(f"/mend untrust bob@localhost {bob.device_id()}")
            p.open_chat("bob@localhost")
            p.wait_screen(lambda sc: "OMEMO untrusted" in p.title(sc), 10,
                          "the title bar to say a device is untrusted")
            # our verification URI, with its QR code, in the console
            p.win(1)
            p.command("/mend uri")
            p.wait_screen(lambda sc: "omemo-sid-" in sc and "\u2580" in sc, 10,
                          "the URI and its QR code")
            assert "<body>hello from profanity</body>" not in p.log_text(), \
                "the plaintext left in a <body>"


@test
def plugin_loaded_while_connected_works():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice", load_at_start=False) as p, bob.listen() as bl:
            p.connect()
            wait_listening(bl)
            p.command(f"/plugins install {PLUGIN}")
            p.wait_log("Loaded plugin: mend.so", 10)
            mend_ready(p)
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "loaded while connected")
            wait_message(bl, "loaded while connected", timeout=30)


@test
def the_module_uses_libomemo_c_next_to_profanitys_own_omemo():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as p, bob.listen() as bl:
            p.connect()
            p.omemo_setup()  # Profanity's own OMEMO, on libsignal-protocol-c
            status = mend_ready(p)
            maps = open(f"/proc/{p.pid}/maps").read()
            assert "libsignal-protocol-c" in maps and SIGNAL in maps, \
                f"Profanity's libsignal-protocol-c and mend's {SIGNAL} should be loaded"
            line = p.wait_screen(re.compile(r"ratchet library (\S+)"), 5, "the library")
            assert SIGNAL in line.group(1), f"mend's calls reach {line.group(1)}, not {SIGNAL}"
            del status
            wait_listening(bl)
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "both libraries, one process")
            wait_message(bl, "both libraries, one process", timeout=30)
            Mend(srv, root, "bob", "phone-cli", device="phone").send("alice@localhost",
                                                                    "and back")
            p.wait_message("bob@localhost", "and back", timeout=30)


@test
def profanity_with_mend_and_profanitys_builtin_omemo():
    with server() as srv:
        with with_mend(srv, "alice") as a, Profanity(srv, "bob") as b:
            a.connect()
            mend_ready(a)
            b.connect()
            b.omemo_setup()
            a.command("/mend on bob@localhost")
            # bob's built-in OMEMO encrypts to alice's mend device
            b.omemo_start("alice@localhost")
            b.say("alice@localhost", "from builtin omemo")
            got = a.wait_message("bob@localhost", "from builtin omemo", timeout=30)
            assert got["mark"] == "~", got
            a.say("bob@localhost", "from mend in profanity")
            got = b.wait_message("alice@localhost", "from mend in profanity", timeout=30)
            assert got["mark"] == "~", f"bob's Profanity did not decrypt it as OMEMO: {got}"
            assert "<body>from mend in profanity</body>" not in a.log_text()


@test
def profanity_laptop_and_cli_phone_see_each_others_messages():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = Mend(srv, root, "alice", "phone")
        bob = Mend(srv, root, "bob", "desk")
        bob.publish()
        phone.publish()
        with with_mend(srv, "alice", resource="laptop") as p, phone.listen() as pl:
            p.connect()
            mend_ready(p)
            wait_listening(pl)
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "typed on the laptop")
            m = wait_message(pl, "typed on the laptop", timeout=30, carbon="sent")
            assert m["outgoing"] is True, m
            Mend(srv, root, "alice", "phone-cli", device="phone").send("bob@localhost",
                                                                      "sent from the phone")
            line = p.wait_message("bob@localhost", "sent from the phone", timeout=30)
            assert line["sender"] == "me", f"the phone's message should be ours: {line}"


@test
def messages_sent_while_profanity_was_closed_appear_once():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as p:
            p.connect()
            mend_ready(p)
            p.quit()
            texts = [f"while you were away {i}" for i in range(3)]
            for t in texts:
                bob.send("alice@localhost", t)
            assert offline_items(srv, "alice") == len(texts), offline_items(srv, "alice")
            p.restart()
            for t in texts:
                got = p.wait_message("bob@localhost", t, timeout=30)
                assert got["mark"] == "~" and got["sender"] == "bob", got
            mend_ready(p)  # catch-up has run by now as well
            p.open_chat("bob@localhost")
            lines = [m["text"] for m in p.messages()]
            for t in texts:
                assert sum(1 for x in lines if t in x) == 1, f"{t!r} not exactly once: {lines}"
            # held until mend could judge them: never shown as the fallback body
            assert "OMEMO-encrypted" not in p.screen(), p.screen()
            # the catch-up did not leave them in the server's offline store (issue 9)
            wait_for(lambda: offline_items(srv, "alice") == 0, 10,
                     f"alice's offline store to be empty (holds {offline_items(srv, 'alice')})")


@test
def catch_up_asked_again_after_an_archive_error_without_new_traffic():
    # the retry waits for mend_account_tick(): no stanza arrives after the error
    with tempfile.TemporaryDirectory() as root:
        flag, kw = failing_archive(root)
        with server(**kw) as srv:
            Mend(srv, root, "bob", "phone").publish()
            with with_mend(srv, "alice") as p:
                p.connect()
                dev = int(mend_ready(p).group(1))
                # bob encrypts for the devices the server lists: quit only once it lists ours
                wait_for(lambda: dev in (p.server_devicelist() or []), 20,
                         "Profanity's device to be in alice's device list on the server")
                p.quit()
                archived_only(srv, root, "only in the archive")
                open(flag, "w").close()
                p.restart()
                wait_for(lambda: not os.path.exists(flag), 30, "the archive to fail once")
                # asked again 10 s after the error, at the next tick (5 s)
                got = p.wait_message("bob@localhost", "only in the archive", timeout=22)
                assert got["sender"] == "bob", got


@test
def no_plaintext_when_the_peers_keys_cannot_be_had():
    with server() as srv:
        with with_mend(srv, "alice") as p:
            p.connect()
            mend_ready(p)
            # carol never used OMEMO: mend cannot encrypt to her
            p.command("/mend on carol@localhost")
            p.say("carol@localhost", "canary-secret-1")
            p.wait_screen("NOT sent", 20, "mend to say the message was not sent")
            # a message that did not leave is not shown as an outgoing one
            sent = [m for m in p.messages() if m["sender"] == "me" and "canary-secret-1" in m["text"]]
            assert not sent, f"a failed message shown as sent: {sent}\n{p.screen()}"
            # a positive control: with mend off the same check does see plaintext
            p.command("/mend off carol@localhost")
            p.say("carol@localhost", "canary-plain-2")
            wait_for(lambda: stored_on_server(srv, "canary-plain-2"), 20,
                     "the plaintext control message to reach carol's offline store")
            assert not stored_on_server(srv, "canary-secret-1"), "the encrypted-only message left in plaintext"
            assert "<body>canary-secret-1</body>" not in p.log_text()


FALLBACK = "OMEMO-encrypted"


def bob_plaintext(srv, text):
    """bob sends `text` to alice unencrypted, from a raw session (not an OMEMO client)."""
    with xmpp_session("127.0.0.1", srv.port, "bob@localhost", "pw", resource="plain") as x:
        x._send(f"<message to='alice@localhost' type='chat' id='plain-{abs(hash(text))}'>"
                f"<body>{text}</body></message>")
        # a round trip: the server handled the message before the stream closes
        x.iq("<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>", "ping1")


@test
def received_messages_carry_their_devices_trust():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        dev = bob.device_id()
        bob_cli = Mend(srv, root, "bob", "phone-cli", device="phone")
        with with_mend(srv, "alice") as p, bob.listen() as bl:
            p.connect()
            mend_ready(p)
            wait_listening(bl)
            # on by default: nothing typed about encryption, bob has OMEMO
            p.say("bob@localhost", "default-on-canary")
            wait_message(bl, "default-on-canary", timeout=30)
            assert not stored_on_server(srv, "default-on-canary"), "on by default left plaintext"
            p.wait_message("bob@localhost", "default-on-canary", timeout=10, sender="me",
                           mark="~")
            bob_cli.send("alice@localhost", "from-first-use")
            got = p.wait_message("bob@localhost", "from-first-use", timeout=30)
            assert got["mark"] == "~", got
            p.command(f"/mend trust bob@localhost {dev}")
            p.wait_screen("is verified", 10, "the device to be verified")
            bob_cli.send("alice@localhost", "from-verified")
            got = p.wait_message("bob@localhost", "from-verified", timeout=30)
            assert got["mark"] == "+", f"a verified device's message: {got}"
            p.command(f"/mend untrust bob@localhost {dev}")
            p.wait_screen("will get nothing from you", 10, "the device to be untrusted")
            bob_cli.send("alice@localhost", "from-untrusted")
            got = p.wait_message("bob@localhost", "from-untrusted", timeout=30)
            assert got["mark"] == "?", f"an untrusted device's message: {got}"
            bob_plaintext(srv, "plain-in-encrypted-chat")
            got = p.wait_message("bob@localhost", "plain-in-encrypted-chat", timeout=30)
            assert got["mark"] == "-" and got["text"].startswith("[unencrypted]"), \
                f"plaintext in an encrypted chat must say so: {got}"


@test
def a_device_the_contact_never_announced_is_marked():
    """XEP-0384 §4.2: a message from a device missing from its owner's published
    list is marked "!" (unannounced), never with a trusted mark."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone, ghost = Mend(srv, root, "bob", "phone"), Mend(srv, root, "bob", "ghost")
        phone.publish()
        pid = phone.device_id()
        with with_mend(srv, "alice") as p:
            p.connect()
            mend_ready(p)
            phone.send("alice@localhost", "from-the-phone")
            got = p.wait_message("bob@localhost", "from-the-phone", timeout=30)
            assert got["mark"] == "~", got
            p.quit()
            ghost.send("alice@localhost", "from-nowhere")
            with xmpp_session("127.0.0.1", srv.port, "bob@localhost", "pw") as x:
                x.publish_devicelists([pid])
            p.restart()
            got = p.wait_message("bob@localhost", "from-nowhere", timeout=30)
            assert got["mark"] == "!", f"an unannounced device's message: {got}"
            mend_ready(p)
            p.open_chat("bob@localhost")
            shown = [m for m in p.messages() if m["text"].endswith("from-nowhere")]
            assert len(shown) == 1, shown


@test
def mend_on_with_another_case_or_a_resource_encrypts():
    with server(extra_config='Component "conference.localhost" "muc"\n') as srv, \
            tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as p, bob.listen() as bl:
            p.connect()
            mend_ready(p)
            wait_listening(bl)
            p.command("/mend default off")
            p.wait_screen("not encrypted by default", 10, "the default to be off")
            # a positive control: off means plaintext, which the disk check sees
            p.say("bob@localhost", "case-control-plain")
            wait_for(lambda: stored_on_server(srv, "case-control-plain"), 20,
                     "the plaintext control to reach the server")
            for i, spelling in enumerate(["Bob@LocalHost", "bob@localhost/Phone"]):
                p.command("/mend off bob@localhost")
                p.command(f"/mend on {spelling}")
                p.wait_screen(f"encryption is on for bob@localhost.", 10,
                              f"/mend on {spelling} to confirm")
                text = f"case-canary-{i}"
                p.say("bob@localhost", text)
                wait_message(bl, text, timeout=30)
                assert not stored_on_server(srv, text), f"/mend on {spelling}: plaintext left"
            # an open group chat: never a claim of "on" (test_profanity_rooms.py has more)
            p.command("/join room@conference.localhost")
            p.wait_screen("You have joined the room", 15, "the room window")
            p.command("/mend on")
            p.wait_screen("encryption stays off for room@conference.localhost", 20,
                          "the refusal in the room")
            assert "encryption is on for room" not in p.screen(), p.screen()


@test
def mend_output_goes_to_the_window_it_was_typed_in():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        dev = bob.device_id()
        with with_mend(srv, "alice") as p:
            p.connect()
            mend_ready(p)
            p.open_chat("bob@localhost")
            p.command("/mend devices")
            p.wait_screen(f"mend: bob@localhost device {dev}", 20,
                          "bob's devices in bob's chat window")
            assert p.chat_focused("bob@localhost"), p.title()
            assert "alice@localhost device" not in p.screen(), "our devices, not the contact's"
            p.command("/mend status")
            p.wait_screen(re.compile(r"mend: alice@localhost, device \d+"), 10,
                          "/mend status in the chat window")
            assert p.chat_focused("bob@localhost"), p.title()
            # the help lists every command
            p.win(1)
            p.command("/help mend")
            p.wait_screen("/mend policy", 10, "the help")
            for sub in ("on|off", "default on|off", "status", "devices", "fingerprint",
                        "trust|untrust", "/mend uri", "/mend verify", "/mend members",
                        "/mend send-anyway|drop"):
                assert sub in p.screen(), f"/help mend lacks {sub}:\n{p.screen()}"


@test
def reopened_chat_shows_decrypted_history_both_ways():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        # Profanity's own history on: it shows what its chat log holds for the chat
        with with_mend(srv, "alice", prefs={"ui": {"history": "true"}}) as p, \
                bob.listen() as bl:
            p.connect()
            mend_ready(p)
            wait_listening(bl)
            p.say("bob@localhost", "history-out-1")
            wait_message(bl, "history-out-1", timeout=30)
            Mend(srv, root, "bob", "phone-cli", device="phone").send("alice@localhost",
                                                                    "history-in-2")
            p.wait_message("bob@localhost", "history-in-2", timeout=30)
            p.restart()
            # opened at once, while mend's catch-up from the archive may still run
            p.open_chat("bob@localhost")
            p.wait_message("bob@localhost", "history-out-1", timeout=30, sender="me")
            p.wait_message("bob@localhost", "history-in-2", timeout=30)
            assert FALLBACK not in p.screen(), f"the fallback body is shown:\n{p.screen()}"


@test
def a_message_that_waited_for_keys_and_failed_is_not_shown_as_sent():
    with server() as srv:
        with with_mend(srv, "alice") as p:
            p.connect()
            mend_ready(p)
            # on by default: mend must learn that carol has no OMEMO; the message waits, fails
            p.say("carol@localhost", "canary-waited-3")
            p.wait_screen("NOT sent: canary-waited-3", 30, "mend to say it was not sent")
            sent = [m for m in p.messages() if m["sender"] == "me"]
            assert not sent, f"a failed message shown as sent: {sent}\n{p.screen()}"
            assert not stored_on_server(srv, "canary-waited-3"), "it left in plaintext"
            # now known to have no OMEMO: the next one goes unencrypted, and looks it
            p.say("carol@localhost", "canary-plain-4")
            got = p.wait_message("carol@localhost", "canary-plain-4", timeout=20, sender="me")
            assert got["mark"] == "-", got
            wait_for(lambda: stored_on_server(srv, "canary-plain-4"), 20,
                     "the unencrypted message to reach carol's offline store")


if __name__ == "__main__":
    main()
