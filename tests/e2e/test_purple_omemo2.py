#!/usr/bin/python3
"""OMEMO:2 (urn:xmpp:omemo:2, issue 13) where a Pidgin or Finch user sees it: the
libpurple plugin in the headless libpurple harness (tests/purple/harness: its "im"
lines are what the conversation window draws), against python-omemo peers that speak
only OMEMO:2 or both versions: messages both ways with the usual trust mark, the core's
notice that a device fell back to legacy OMEMO, the refusal of a tampered SCE affix
(and no message body), and `/mend devices` naming each device's OMEMO versions. The
peer says which version arrived ("version":"2"). Also OMEMO:2 messages that came while
the client was offline (from the offline store and from the archive catch-up, XEP-0313)
and alice's own OMEMO:2 messages from her other devices (sent carbons, XEP-0280), each
written once, and bob's OMEMO:2 message to another resource of hers (a received carbon),
written once as received.
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (main, peer_command, peer_message, peer_send, peer_sees, skip,  # noqa: E402
                     start_omemo_peer, test, wait_for, wait_ready)
from mendcli import (BUILD, MEND, Mend, offline_items, omemo2_from_own_devices,  # noqa: E402
                     omemo2_received_carbon, omemo2_while_away, server, speaks_omemo2,
                     stored_on_server)
from purple import Purple, purple_missing  # noqa: E402

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")
ALICE, BOB = "alice@localhost", "bob@localhost"

why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")
if not speaks_omemo2(MEND):
    skip("this build of mend does not speak OMEMO:2 (libsignal-protocol-c)")


def alice_and_bob(srv, root, mode):
    """alice in libpurple with mend and bob's python-omemo peer in `mode` ("2", "both")."""
    bob = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"), omemo=mode)
    return bob, Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS)


def ready(a, bob):
    """alice signed on and published; bob's peer has seen her device."""
    rb = wait_ready(bob)
    a.wait_signed_on()
    peer_sees(bob, ALICE)
    return rb


def shown(a, text, timeout=30, start=0):
    """The conversation line that shows `text` (mend's trust mark may stand before it)."""
    return a.wait_im(lambda o: o["text"] == text or o["text"].endswith(" " + text),
                     timeout=timeout, start=start)


def device_line(a, device, versions):
    """`/mend devices` in bob's conversation: bob's device named with its OMEMO versions."""
    mark = a.mark()
    r = a.cmd(BOB, "/mend devices")
    assert r["status"] == "ok", r
    return a.wait_im(lambda o: o["text"].startswith(f"{BOB} device {device}:") and
                     o["text"].endswith(f"; OMEMO versions {versions}"), timeout=20,
                     start=mark)


@test
def an_omemo2_only_peer_both_ways():
    """alice -> the OMEMO:2-only peer goes (on by default) and arrives as version 2; its
    reply shows with the usual [unverified] mark of a first-use device, the chat says it
    is encrypted; /mend devices says "OMEMO versions 2"."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, a = alice_and_bob(srv, root, "2")
        with bob, a:
            rb = ready(a, bob)
            mark = bob.mark()
            a.send(BOB, "to the OMEMO:2 peer")
            got = peer_message(bob, "to the OMEMO:2 peer", start=mark)
            assert got["version"] == "2" and got["from"] == "alice@localhost", got
            assert got["sce"]["to"] == BOB and got["sce"]["from"] == "alice@localhost", got
            peer_send(bob, ALICE, "an OMEMO:2 reply")
            line = shown(a, "an OMEMO:2 reply")
            assert line["text"] == "[unverified] an OMEMO:2 reply" and \
                "recv" in line["flags"], line
            a.wait_im("OMEMO: this chat is encrypted.", timeout=30, flags=("system",),
                      conv=BOB)
            device_line(a, rb["device"], "2")
            assert not stored_on_server(srv, "to the OMEMO:2 peer"), "plaintext left"


@test
def a_device_falling_back_to_legacy_is_shown_with_a_notice():
    """The both-versions peer writes OMEMO:2, then legacy: the legacy message shows and
    so does the core's notice that the device fell back; /mend devices says "OMEMO
    versions 2, 0.3"."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, a = alice_and_bob(srv, root, "both")
        with bob, a:
            rb = ready(a, bob)
            assert peer_send(bob, ALICE, "first in OMEMO:2", "2")["version"] == "2"
            assert shown(a, "first in OMEMO:2")["text"] == "[unverified] first in OMEMO:2"
            assert not [o for o in a.ims() if "fell back" in o["text"]], a.ims()
            mark = a.mark()
            assert peer_send(bob, ALICE, "then in legacy", "0.3")["version"] == "0.3"
            line = shown(a, "then in legacy", start=mark)
            assert "recv" in line["flags"], line
            notice = a.wait_im(lambda o: "fell back from OMEMO:2 to legacy OMEMO" in o["text"],
                               timeout=20, start=mark)
            assert f"{BOB} device {rb['device']}" in notice["text"], notice
            device_line(a, rb["device"], "2, 0.3")


@test
def a_tampered_sce_affix_is_refused_in_the_conversation():
    """The peer's encrypted <to/> names someone else: the conversation shows the refusal
    (an error line naming the SCE affix) and never the body; an honest one after it shows."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, a = alice_and_bob(srv, root, "2")
        with bob, a:
            ready(a, bob)
            peer_send(bob, ALICE, "an honest one first")
            shown(a, "an honest one first")
            assert not peer_command(bob, "affix to=mallory@localhost")
            mark = a.mark()
            peer_send(bob, ALICE, "tampered-canary")
            refused = a.wait_im(lambda o: "SCE affix mismatch" in o["text"], timeout=30,
                                flags=("error",), start=mark)
            assert "is not us" in refused["text"], refused
            assert not peer_command(bob, "affix off")
            peer_send(bob, ALICE, "honest again")
            shown(a, "honest again", start=mark)
            leaked = [o for o in a.ims() if "tampered-canary" in o["text"]]
            assert not leaked, f"the tampered body was shown: {leaked}"


def alices_phone(srv, root):
    """alice's mend device "phone", published before her host starts (no list races)."""
    phone = Mend(srv, root, "alice", "phone")
    phone.publish()
    return phone


def written(a, text):
    """The lines bob's conversation has for `text` (this run of the harness)."""
    return [o for o in a.ims(conv=BOB) if o["text"] == text or o["text"].endswith(" " + text)]


def nothing_unreadable(a):
    """No error line in bob's conversation (a message mend could not read) and no
    fallback body."""
    bad = [o for o in a.ims(conv=BOB) if "error" in o["flags"] or
           "OMEMO-encrypted" in o["text"]]
    assert not bad, f"unreadable or fallback lines: {bad}"


@test
def omemo2_messages_from_while_offline_appear_once():
    """While alice's libpurple is offline, bob's OMEMO:2-only peer writes one message while
    another resource of hers is online (libpurple has it only from mend's archive
    catch-up) and two while none is (offline store and archive both), and her mend client
    writes to bob (her archive alone keeps it). After sign-on each is written exactly once
    into bob's conversation: bob's as received with the [unverified] mark, hers as sent;
    no error line; the session goes on (a live one after it)."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = alices_phone(srv, root)
        bob, a = alice_and_bob(srv, root, "2")
        with bob, a:
            ready(a, bob)
            a.quit()
            texts, mine = omemo2_while_away(srv, bob, phone)
            a.start()
            a.wait_signed_on()
            for t in texts:
                shown(a, t)
            a.wait_im(mine, timeout=30, flags=("send",), conv=BOB)
            # after the catch-up page that held them all: a live one, read on the same session
            assert peer_send(bob, ALICE, "omemo2-live-after")["version"] == "2"
            shown(a, "omemo2-live-after")
            a.ping()
            for t in texts:
                got = written(a, t)
                assert [(o["text"], "recv" in o["flags"]) for o in got] == \
                    [(f"[unverified] {t}", True)], f"{t!r} not once as received: {got}"
            got = written(a, mine)
            assert [(o["text"], "send" in o["flags"]) for o in got] == [(mine, True)], \
                f"not once as sent: {got}"
            nothing_unreadable(a)
            wait_for(lambda: offline_items(srv, "alice") == 0, 10,
                     f"alice's offline store to be empty (holds {offline_items(srv, 'alice')})")


def own_device(a):
    """Our device id, from `/mend status` in bob's conversation."""
    mark = a.mark()
    assert a.cmd(BOB, "/mend status")["status"] == "ok"
    line = a.wait_im(lambda o: re.search(r"mend: \S+, device \d+", o["text"]), timeout=20,
                     start=mark)
    return int(re.search(r"device (\d+)", line["text"]).group(1))


@test
def omemo2_from_alices_other_devices_is_written_as_her_own():
    """alice writes to bob's OMEMO:2-only peer from her other devices, a python-omemo
    device (OMEMO:2 only) and her mend client: bob's peer reads each in version 2, and
    bob's conversation in alice's libpurple has each exactly once as sent by her, without
    a mark, from the sent carbon; no error line."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        phone = alices_phone(srv, root)
        bob, a = alice_and_bob(srv, root, "2")
        with bob, a:
            ready(a, bob)
            ours = own_device(a)
            texts = omemo2_from_own_devices(srv, root, bob, phone, ours)
            for t in texts:
                a.wait_im(t, timeout=30, flags=("send",), conv=BOB)
            # a later line: anything written twice would be there by now
            peer_send(bob, ALICE, "omemo2-bob-answers")
            shown(a, "omemo2-bob-answers")
            a.ping()
            for t in texts:
                got = written(a, t)
                assert [(o["text"], o["flags"]) for o in got] == [(t, ["send"])], \
                    f"{t!r} not once as ours: {got}"
            nothing_unreadable(a)


@test
def omemo2_to_alices_other_resource_is_written_once_as_received():
    """bob's OMEMO:2-only peer writes to another resource of alice's (its full JID) while
    her libpurple is online: libpurple has it only as a received carbon (XEP-0280), and
    bob's conversation has it exactly once, decrypted, as received with the [unverified]
    mark (not as sent by her); no error line."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob, a = alice_and_bob(srv, root, "2")
        with bob, a:
            ready(a, bob)
            text = omemo2_received_carbon(srv, bob)
            shown(a, text)
            # a later line: anything written twice would be there by now
            peer_send(bob, ALICE, "omemo2-after-the-carbon")
            shown(a, "omemo2-after-the-carbon")
            a.ping()
            got = written(a, text)
            assert [(o["text"], "recv" in o["flags"], "send" in o["flags"]) for o in got] == \
                [(f"[unverified] {text}", True, False)], \
                f"not once as received: {got}"
            nothing_unreadable(a)


if __name__ == "__main__":
    main()
