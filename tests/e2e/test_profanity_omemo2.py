#!/usr/bin/python3
"""OMEMO:2 (urn:xmpp:omemo:2, issue 13) where a Profanity user sees it: the real
Profanity 0.13.1 with the mend plugin, in tmux, against python-omemo peers that speak
only OMEMO:2 or both versions. What is asserted is read from the screen: the chat
window's lines with their encryption mark, the core's notice that a device fell back
to legacy OMEMO, the refusal of a tampered SCE affix (and no message body), and
`/mend devices` naming each device's OMEMO versions. The peer says which version
arrived ("version":"2"). Also OMEMO:2 messages that came while Profanity was closed
(from the offline store and from the archive catch-up, XEP-0313) and alice's own OMEMO:2
messages from her other devices (sent carbons, XEP-0280), each shown once, and bob's
OMEMO:2 message to another resource of hers (a received carbon), shown once as bob's.
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (main, peer_command, peer_message, peer_send, peer_sees, skip,  # noqa: E402
                     start_omemo_peer, test, wait_for, wait_ready)
from profanity import Profanity, mend_plugin_or_skip  # noqa: E402
from mendcli import (BUILD, MEND, Mend, offline_items, omemo2_from_own_devices,  # noqa: E402
                     omemo2_received_carbon, omemo2_while_away, server, speaks_omemo2)

ALICE, BOB = "alice@localhost", "bob@localhost"
PLUGIN, MODULE = mend_plugin_or_skip(BUILD)
if not speaks_omemo2(MEND):
    skip("this build of mend does not speak OMEMO:2 (libsignal-protocol-c)")


def alice_and_bob(srv, root, mode):
    """alice's Profanity with mend and bob's python-omemo peer in `mode` ("2", "both")."""
    bob = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"), omemo=mode)
    p = Profanity(srv, "alice", resource="prof", plugins=[PLUGIN],
                  env={"MEND_PROFANITY_MODULE": MODULE})
    return bob, p


def ready(p, bob):
    """alice connected and published; bob's peer has seen her device; bob's window open."""
    rb = wait_ready(bob)
    p.connect()
    p.win(1)
    p.command("/mend status")
    p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), 20, "/mend status to answer")
    peer_sees(bob, ALICE)
    p.open_chat(BOB)
    return rb


def no_line(p, text):
    """No chat line in bob's window shows `text` (read after a later line arrived)."""
    p.open_chat(BOB)
    shown = [m for m in p.messages() if text in m["text"]]
    assert not shown, f"{text!r} is shown:\n{p.screen()}"


@test
def an_omemo2_only_peer_both_ways():
    """alice -> the OMEMO:2-only peer arrives as version 2; its reply shows with the
    encryption mark and the [OMEMO] title, as with legacy; /mend devices says "OMEMO
    versions 2"."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, p = alice_and_bob(srv, root, "2")
        with bob, p:
            rb = ready(p, bob)
            mark = bob.mark()
            p.say(BOB, "to the OMEMO:2 peer")
            got = peer_message(bob, "to the OMEMO:2 peer", start=mark)
            assert got["version"] == "2" and got["from"] == "alice@localhost", got
            assert got["sce"]["to"] == BOB and got["sce"]["from"] == "alice@localhost", got
            mine = p.wait_message(BOB, "to the OMEMO:2 peer", sender="me")
            assert mine["mark"] == "~", mine
            peer_send(bob, ALICE, "an OMEMO:2 reply")
            line = p.wait_message(BOB, "an OMEMO:2 reply", timeout=30)
            assert line["mark"] == "~" and line["sender"] == "bob", line
            assert "[OMEMO]" in p.title(), p.title()
            p.command("/mend devices")
            p.wait_screen(re.compile(rf"mend: {BOB} device {rb['device']} .*OMEMO versions 2$",
                                     re.M), 20, "bob's device with its OMEMO version")
            assert "<body>to the OMEMO:2 peer</body>" not in p.log_text(), \
                "the plaintext left in a <body>"


@test
def a_device_falling_back_to_legacy_is_shown_with_a_notice():
    """The both-versions peer writes OMEMO:2, then legacy: the legacy message shows and
    so does the core's notice that the device fell back; /mend devices says "OMEMO
    versions 2, 0.3"."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, p = alice_and_bob(srv, root, "both")
        with bob, p:
            rb = ready(p, bob)
            assert peer_send(bob, ALICE, "first in OMEMO:2", "2")["version"] == "2"
            line = p.wait_message(BOB, "first in OMEMO:2", timeout=30)
            assert line["mark"] == "~", line
            assert "fell back" not in p.screen(), p.screen()
            assert peer_send(bob, ALICE, "then in legacy", "0.3")["version"] == "0.3"
            line = p.wait_message(BOB, "then in legacy", timeout=30)
            assert line["sender"] == "bob", line
            p.wait_screen(f"{BOB} device {rb['device']} fell back from OMEMO:2 to legacy "
                          "OMEMO", 20, "the notice that bob's device fell back")
            p.command("/mend devices")
            p.wait_screen(re.compile(rf"mend: {BOB} device {rb['device']} .*OMEMO versions "
                                     r"2, 0\.3"), 20, "bob's device with both OMEMO versions")


@test
def a_tampered_sce_affix_is_refused_on_screen():
    """The peer's encrypted <to/> names someone else: the window shows the refusal (the
    core's text names the SCE affix) and never the body; an honest one after it shows."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, p = alice_and_bob(srv, root, "2")
        with bob, p:
            ready(p, bob)
            peer_send(bob, ALICE, "an honest one first")
            p.wait_message(BOB, "an honest one first", timeout=30)
            assert not peer_command(bob, "affix to=mallory@localhost")
            peer_send(bob, ALICE, "tampered-canary")
            refused = p.wait_message(BOB, "SCE affix mismatch", timeout=30)
            assert refused["mark"] == "x" and "is not us" in refused["text"], refused
            assert not peer_command(bob, "affix off")
            peer_send(bob, ALICE, "honest again")
            p.wait_message(BOB, "honest again", timeout=30)
            no_line(p, "tampered-canary")


def alices_phone(srv, root):
    """alice's mend device "phone", published before her host starts (no list races)."""
    phone = Mend(srv, root, "alice", "phone")
    phone.publish()
    return phone


def lines_with(p, text):
    """The chat lines of bob's window that show `text` (the window read once)."""
    p.open_chat(BOB)
    return [m for m in p.messages() if text in m["text"]]


def nothing_unreadable(p):
    """bob's window shows no message mend could not read, and no fallback body."""
    p.open_chat(BOB)
    screen = p.screen()
    broken = [m for m in p.messages(screen) if m["mark"] == "x"]
    assert not broken and "OMEMO-encrypted" not in screen, \
        f"a message shown as unreadable or as its fallback body:\n{screen}"


@test
def omemo2_messages_from_while_profanity_was_closed_appear_once():
    """While alice's Profanity is closed, bob's OMEMO:2-only peer writes one message while
    another resource of hers is online (Profanity has it only from mend's archive
    catch-up) and two while none is (offline store and archive both), and her mend client
    writes to bob (her archive alone keeps it). After login each shows exactly once in
    bob's window, bob's from bob and hers from "me", with the encryption mark; none as
    unreadable or as the fallback body; the session goes on (a live one after it)."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = alices_phone(srv, root)
        bob, p = alice_and_bob(srv, root, "2")
        with bob, p:
            ready(p, bob)
            p.quit()
            texts, mine = omemo2_while_away(srv, bob, phone)
            p.restart()
            for t in texts:
                got = p.wait_message(BOB, t, timeout=30)
                assert got["mark"] == "~" and got["sender"] == "bob", got
            p.wait_message(BOB, mine, timeout=30, sender="me", mark="~")
            # after the catch-up page that held them all: a live one, read on the same session
            assert peer_send(bob, ALICE, "omemo2-live-after")["version"] == "2"
            p.wait_message(BOB, "omemo2-live-after", timeout=30, sender="bob", mark="~")
            for t in texts + [mine]:
                shown = lines_with(p, t)
                assert len(shown) == 1, f"{t!r} shown {len(shown)} times:\n{p.screen()}"
            nothing_unreadable(p)
            wait_for(lambda: offline_items(srv, "alice") == 0, 10,
                     f"alice's offline store to be empty (holds {offline_items(srv, 'alice')})")


@test
def omemo2_from_alices_other_devices_shows_as_her_own():
    """alice writes to bob's OMEMO:2-only peer from her other devices, a python-omemo
    device (OMEMO:2 only) and her mend client: bob's peer reads each in version 2, and
    alice's Profanity shows each exactly once in bob's window as hers ("me") with the
    encryption mark, from the sent carbon; nothing unreadable."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = alices_phone(srv, root)
        bob, p = alice_and_bob(srv, root, "2")
        with bob, p:
            ready(p, bob)
            p.win(1)
            ours = int(p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), 5,
                                     "our device id").group(1))
            texts = omemo2_from_own_devices(srv, root, bob, phone, ours)
            for t in texts:
                p.wait_message(BOB, t, timeout=30, sender="me")
            # a later line: anything shown twice would be on screen by now
            peer_send(bob, ALICE, "omemo2-bob-answers")
            p.wait_message(BOB, "omemo2-bob-answers", timeout=30, sender="bob")
            for t in texts:
                shown = lines_with(p, t)
                assert [(m["sender"], m["mark"]) for m in shown] == [("me", "~")], \
                    f"{t!r} not once as ours with the mark:\n{p.screen()}"
            nothing_unreadable(p)


@test
def omemo2_to_alices_other_resource_shows_once_as_bobs():
    """bob's OMEMO:2-only peer writes to another resource of alice's (its full JID) while
    her Profanity is online: Profanity has it only as a received carbon (XEP-0280) and
    shows it exactly once in bob's window, decrypted, as bob's (not "me"), with the
    encryption mark; nothing unreadable."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, p = alice_and_bob(srv, root, "2")
        with bob, p:
            ready(p, bob)
            text = omemo2_received_carbon(srv, bob)
            p.wait_message(BOB, text, timeout=30, sender="bob", mark="~")
            # a later line: anything shown twice would be on screen by now
            peer_send(bob, ALICE, "omemo2-after-the-carbon")
            p.wait_message(BOB, "omemo2-after-the-carbon", timeout=30, sender="bob")
            shown = lines_with(p, text)
            assert [(m["sender"], m["mark"]) for m in shown] == [("bob", "~")], \
                f"not once as bob's with the mark:\n{p.screen()}"
            nothing_unreadable(p)


if __name__ == "__main__":
    main()
