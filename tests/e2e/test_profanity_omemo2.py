#!/usr/bin/python3
"""OMEMO:2 (urn:xmpp:omemo:2, issue 13) where a Profanity user sees it: the real
Profanity 0.13.1 with the mend plugin, in tmux, against python-omemo peers that speak
only OMEMO:2 or both versions. What is asserted is read from the screen: the chat
window's lines with their encryption mark, the core's notice that a device fell back
to legacy OMEMO, the refusal of a tampered SCE affix (and no message body), and
`/mend devices` naming each device's OMEMO versions. The peer says which version
arrived ("version":"2").
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (main, peer_command, peer_message, peer_send, peer_sees, skip,  # noqa: E402
                     start_omemo_peer, test, wait_ready)
from profanity import Profanity, mend_plugin_or_skip  # noqa: E402
from mendcli import BUILD, MEND, server, speaks_omemo2  # noqa: E402

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


if __name__ == "__main__":
    main()
