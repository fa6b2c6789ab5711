#!/usr/bin/python3
"""OMEMO:2 (urn:xmpp:omemo:2, XEP-0384 0.8+) beside legacy OMEMO (0.3), issue 13:
mend against python-omemo peers that publish only OMEMO:2 (python-twomemo), only
legacy (python-oldmemo), or both, in both directions, 1:1, with carbons and with
archive (MAM) catch-up; the fingerprint as each side shows it; mend's two builds
(libomemo-c and libsignal-protocol-c) talking. With OMEMO:2 only: what mend puts on
the wire validates against xep/omemo2.xsd and xep/sce.xsd, a tampered SCE affix is
refused, a device falling back to legacy is flagged (and still gets OMEMO:2), and a
message to devices of both kinds goes as one stanza per version.

What is demanded depends on the build. On libsignal-protocol-c (MEND_SIGNAL, legacy
only) mend must keep talking legacy to legacy and "both" peers and must refuse,
sending nothing, to a peer that publishes only OMEMO:2. A libomemo-c build publishes
OMEMO:2 beside legacy (one identity key, checked in the bundles on the server); once
`mend --version` says it reads and writes OMEMO:2 ("OMEMO:2 ...: yes") it must use
OMEMO:2 with every peer that publishes it and report "version":"2"; until then the
cases with OMEMO:2 peers are skipped, saying why. Each case asserts what happened on the
wire as the independent peer saw it.
"""

import contextlib
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run, skip, start_omemo_peer, test, wait_ready, main  # noqa: E402

from mendcli import MEND, Mend, server, speaks_omemo2, wait_listening, wait_message  # noqa: E402

NS_PUBSUB = "http://jabber.org/protocol/pubsub"

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")

# The other build of mend (libsignal-protocol-c beside libomemo-c, or the reverse):
# `./run test` names it when both builds exist (see mend_two_builds_talk).
OTHER = os.environ.get("MEND_OTHER_BIN")


OMEMO2 = speaks_omemo2(MEND)


# The build's Double Ratchet library (make check sets MEND_SIGNAL): libomemo-c builds
# publish OMEMO:2 (devices list and bundle) beside legacy; libsignal-protocol-c is legacy only.
PUBLISHES_OMEMO2 = (os.environ.get("MEND_SIGNAL") or "libomemo-c") == "libomemo-c"


def expected_version(mode):
    """The version mend and a peer in `mode` must use with each other; None: they
    cannot talk (a legacy-only build and an OMEMO:2-only peer)."""
    if mode == "legacy":
        return "0.3"
    if not PUBLISHES_OMEMO2:
        return "0.3" if mode == "both" else None
    if not OMEMO2:
        # the core publishes OMEMO:2 (issue 13 steps 1-2) but does not yet say it reads
        # and writes it: python-omemo would pick OMEMO:2 and mend could not read it
        skip("this build publishes OMEMO:2 but mend --version does not say it reads and "
             "writes it yet (issue 13: send and receive)")
    return "2"


class Build(Mend):
    """A mend device run from a given binary (the other build)."""

    def __init__(self, binary, *args, **kw):
        super().__init__(*args, **kw)
        self.binary = binary

    def argv(self, *cmd):
        return [self.binary] + super().argv(*cmd)[1:]


def peer(srv, root, user, mode, resource="py"):
    p = start_omemo_peer(srv, user, resource, os.path.join(root, f"{user}-{resource}"),
                         omemo=mode)
    return p


def peer_sends(p, to, text, version=None):
    """The peer sends `text` (in `version` only, if given); its sent/command_error lines."""
    m = p.mark()
    p.send_line(f"sendv {version} {to} {text}" if version else f"send {to} {text}")
    p.send_line("ping")
    p.wait_line(lambda o: o["type"] == "pong", 40, f"{p.name} to send {text!r}", start=m)
    return [o for o in p.lines[m:] if o["type"] in ("sent", "command_error")]


def peer_got(p, text, timeout=30, start=0):
    """The peer's line about the message `text` (or its first error/affix_error)."""
    return p.wait_line(lambda o: o["type"] == "message" and o["body"] == text, timeout,
                       f"{p.name} to decrypt {text!r}", start=start)


def lines_of(mend, cp, kind):
    return [o for o in mend.lines(cp) if o.get("type") == kind]


# --------------------------------------------------------------------------
# the peer itself: its three modes between themselves (python-omemo only)
# --------------------------------------------------------------------------

@test
def the_peer_modes_talk_between_themselves():
    """omemo_peer.py --omemo 2|both|legacy: an OMEMO:2-only and a both peer use
    OMEMO:2, a legacy and a both peer legacy; the same device and fingerprint in both
    versions; a tampered SCE <to/> is refused by the receiving peer."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        two, both, old = peer(srv, root, "alice", "2"), peer(srv, root, "bob", "both"), \
            peer(srv, root, "carol", "legacy")
        with two, both, old:
            r2, rb, rl = wait_ready(two), wait_ready(both), wait_ready(old)
            assert (r2["versions"], rb["versions"], rl["versions"]) == \
                (["2"], ["2", "0.3"], ["0.3"]), (r2, rb, rl)
            for sender, to, recv, text, version in (
                    (two, "bob@localhost", both, "two to both", "2"),
                    (both, "alice@localhost", two, "both to two", "2"),
                    (old, "bob@localhost", both, "legacy to both", "0.3"),
                    (both, "carol@localhost", old, "both to legacy", "0.3")):
                m = recv.mark()
                sent = peer_sends(sender, to, text)
                assert [s.get("version") for s in sent] == [version], sent
                got = peer_got(recv, text, start=m)
                assert got["version"] == version, got
                if version == "2":
                    assert got["sce"]["to"] == to and got["sce"]["rpad"], got
            # python-omemo's view of bob's one device: both versions, one fingerprint
            both.send_line("refresh bob@localhost")
            two.send_line("refresh bob@localhost")
            seen = two.wait_line(lambda o: o["type"] == "refreshed", 20, "alice's view of bob")
            assert [(d["device"], d["fingerprint"], d["versions"]) for d in seen["devices"]] == \
                [(rb["device"], rb["fingerprint"], ["2"])], seen
            # a downgrade on request: bob writes legacy to carol only (alice has no legacy)
            assert peer_sends(both, "alice@localhost", "x", version="0.3")[0]["type"] == \
                "command_error"
            # SCE: <to/> of someone else is refused by the receiving python-omemo peer
            two.send_line("affix to=mallory@localhost")
            m = both.mark()
            peer_sends(two, "bob@localhost", "tampered")
            bad = both.wait_line(lambda o: o["type"] in ("affix_error", "message"), 20,
                                 "bob to refuse the tampered message", start=m)
            assert bad["type"] == "affix_error" and "mallory@localhost" in bad["error"], bad


# --------------------------------------------------------------------------
# mend against each peer mode
# --------------------------------------------------------------------------

def one_to_one(mode):
    """alice (mend) and bob (the peer in `mode`) write to each other."""
    want = expected_version(mode)
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        bob = peer(srv, root, "bob", mode)
        with bob:
            rb = wait_ready(bob)
            m = bob.mark()
            cp = alice.run("send", "bob@localhost", f"mend to {mode} peer")
            if want is None:
                # a legacy-only mend and an OMEMO:2-only peer: refused, nothing sent
                assert cp.returncode == 1 and "NOT sent" in cp.stderr, cp.stdout + cp.stderr
                assert not lines_of(alice, cp, "sent"), cp.stdout
                sent = peer_sends(bob, "alice@localhost", "never")
                assert sent and sent[0]["type"] == "command_error" and \
                    "NoEligibleDevices" in sent[0]["error"], sent
                assert "<body>never</body>" not in srv.log_text()
                return
            assert cp.returncode == 0, cp.stdout + cp.stderr
            got = peer_got(bob, f"mend to {mode} peer", start=m)
            assert got["version"] == want and got["from"] == "alice@localhost", got
            assert got["device"] == alice.device_id(), got
            if want == "2":
                assert got["sce"]["from"] == "alice@localhost" and \
                    got["sce"]["to"] == "bob@localhost" and got["sce"]["rpad"], got
            with alice.listen() as al:
                wait_listening(al)
                sent = peer_sends(bob, "alice@localhost", f"{mode} peer to mend")
                assert [s.get("version") for s in sent] == [want], sent
                msg = wait_message(al, f"{mode} peer to mend")
                assert msg["version"] == want and msg["device"] == rb["device"], msg
                assert msg["encrypted"] is True and msg["carbon"] is None, msg


@test
def mend_and_a_legacy_only_peer():
    one_to_one("legacy")


@test
def mend_and_a_peer_with_both_versions():
    one_to_one("both")


@test
def mend_and_an_omemo2_only_peer():
    one_to_one("2")


@test
def an_omemo2_key_exchange_is_answered_with_a_heartbeat():
    """XEP-0384 0.9 §4.5/§7: mend answers an OMEMO:2 key exchange with an empty OMEMO:2
    message (no <payload/>), so the peer hears from the device and its next message is
    no key exchange any more."""
    if expected_version("2") is None:
        skip("a legacy-only build and an OMEMO:2-only peer do not talk (one_to_one shows it)")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        aid = alice.device_id()
        bob = peer(srv, root, "bob", "2")
        with bob, alice.listen() as al:
            wait_ready(bob)
            wait_listening(al)
            m = bob.mark()
            sent = peer_sends(bob, "alice@localhost", "first, with a key exchange")
            assert [r["prekey"] for r in sent[0]["recipients"] if r["device"] == aid] == \
                [True], sent
            wait_message(al, "first, with a key exchange")
            hb = bob.wait_line(lambda o: o["type"] == "empty" and o["device"] == aid, 30,
                               "mend's OMEMO:2 heartbeat to reach python-omemo", start=m)
            assert hb["version"] == "2" and hb["prekey"] is False, hb
            sent = peer_sends(bob, "alice@localhost", "second")
            assert [r["prekey"] for r in sent[0]["recipients"] if r["device"] == aid] == \
                [False], f"python-omemo still sends key exchanges after the heartbeat: {sent}"
            wait_message(al, "second")


def carbons(mode):
    """alice has two mend devices; bob (the peer) writes to one resource, the other gets
    a received carbon; alice's phone writes, the laptop gets the sent carbon."""
    want = expected_version(mode)
    if want is None:
        skip("a legacy-only build and an OMEMO:2-only peer do not talk (one_to_one shows it)")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        laptop, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "alice", "phone")
        phone.publish()
        laptop.publish()
        bob = peer(srv, root, "bob", mode)
        with bob, laptop.listen() as ll, phone.listen() as pl:
            wait_ready(bob)
            wait_listening(ll)
            wait_listening(pl)
            sent = peer_sends(bob, srv.jid("alice", "phone"), "to the phone")
            assert [s.get("version") for s in sent] == [want], sent
            assert len(sent[0]["devices"]) == 2, f"not both of alice's devices: {sent}"
            m = wait_message(pl, "to the phone", carbon=None)
            assert m["version"] == want, m
            m = wait_message(ll, "to the phone", carbon="received")
            assert m["version"] == want and m["from"] == "bob@localhost", m
            mark = bob.mark()
            Mend(srv, root, "alice", "phone-cli", device="phone").send("bob@localhost",
                                                                      "from the phone")
            got = peer_got(bob, "from the phone", start=mark)
            assert got["version"] == want, got
            # the laptop reads the copy written for it: the version alice's own mend
            # devices speak between themselves (OMEMO:2 beside a legacy-only peer's stanza)
            m = wait_message(ll, "from the phone", carbon="sent")
            assert m["version"] == ("2" if OMEMO2 else "0.3") and m["outgoing"] is True, m


@test
def carbons_with_a_legacy_only_peer():
    carbons("legacy")


@test
def carbons_with_a_peer_with_both_versions():
    carbons("both")


def archive(mode):
    """Catch-up from the archive both ways. bob (the peer) writes while alice's laptop
    is off (her phone, online, takes it live so the server keeps nothing offline): the
    laptop's listen finds it in the archive. alice writes while bob's device is off (his
    second peer device takes it live): the first catches up with a MAM query."""
    want = expected_version(mode)
    if want is None:
        skip("a legacy-only build and an OMEMO:2-only peer do not talk (one_to_one shows it)")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        laptop, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "alice", "phone")
        # both devices listed before bob starts: a device first published by the phone's
        # listen may reach bob's device list after bob's message has left without it
        laptop.publish()
        phone.publish()
        bob = peer(srv, root, "bob", mode)
        with bob:
            wait_ready(bob)
            with phone.listen() as pl:
                wait_listening(pl)
                sent = peer_sends(bob, "alice@localhost", "while the laptop was off")
                assert [s.get("version") for s in sent] == [want], sent
                wait_message(pl, "while the laptop was off")
            bob.send_line("quit")
            assert bob.wait_exit(20) == 0, bob.describe()
        with laptop.listen() as ll:
            m = wait_message(ll, "while the laptop was off", timeout=40)
            assert m["archived"] is True and m["version"] == want, m
        bob2 = peer(srv, root, "bob", mode, resource="py2")
        with bob2:
            wait_ready(bob2)
            mark = bob2.mark()
            cp = laptop.run("send", "bob@localhost", "while bob's first device was off")
            # bob's two devices and alice's phone
            assert cp.returncode == 0 and lines_of(laptop, cp, "sent")[0]["devices"] == 3, \
                cp.stdout + cp.stderr
            peer_got(bob2, "while bob's first device was off", start=mark)
            bob = peer(srv, root, "bob", mode)
            with bob:
                wait_ready(bob)
                mark = bob.mark()
                bob.send_line("mam alice@localhost")
                got = peer_got(bob, "while bob's first device was off", start=mark)
                assert got["archived"] is True and got["version"] == want, got
                done = bob.wait_line(lambda o: o["type"] == "mam_done", 20, "the MAM query",
                                     start=mark)
                assert done["complete"], done


@test
def archive_catch_up_with_a_legacy_only_peer():
    archive("legacy")


@test
def archive_catch_up_with_a_peer_with_both_versions():
    archive("both")


@test
def carbons_and_archive_with_an_omemo2_only_peer():
    carbons("2")
    archive("2")


# --------------------------------------------------------------------------
# fingerprints
# --------------------------------------------------------------------------

def pep_item(client, jid, node):
    """The payload of the last item of `node` at `jid` (XEP-0060 §6.5), as XML text."""
    import xml.etree.ElementTree as ET
    reply = client.iq("get", jid, f"<pubsub xmlns='{NS_PUBSUB}'><items node='{node}'/></pubsub>")
    items = reply.findall(f".//{{{NS_PUBSUB}}}item")
    assert items, f"no item in {node} at {jid}: {ET.tostring(reply, encoding='unicode')}"
    return ET.tostring(list(items[-1])[0], encoding="unicode"), [i.get("id") for i in items]



def published_identity_keys(srv, jid, device):
    """The identity key of `device` as its bundles on the server carry it, in the
    Curve25519 form as hex: {"0.3": legacy <identityKey/> without its 0x05 type byte,
    "2": OMEMO:2 <ik/> (Ed25519, XEP-0384 §5.3.2) converted to Curve25519}; and the
    OMEMO:2 <ik/> as it stands (Ed25519, hex; None without an OMEMO:2 bundle)."""
    import base64
    import xml.etree.ElementTree as ET
    import xeddsa
    probe, out, ed = srv.client("carol"), {}, None
    legacy, _ = pep_item(probe, jid, f"eu.siacs.conversations.axolotl.bundles:{device}")
    ik = ET.fromstring(legacy).find("{eu.siacs.conversations.axolotl}identityKey")
    raw = base64.b64decode(ik.text)
    assert len(raw) == 33 and raw[0] == 5, f"legacy identityKey {raw.hex()}"
    out["0.3"] = raw[1:].hex()
    if PUBLISHES_OMEMO2:
        reply = probe.iq("get", jid, f"<pubsub xmlns='{NS_PUBSUB}'><items "
                         f"node='urn:xmpp:omemo:2:bundles'><item id='{device}'/></items></pubsub>")
        ik = reply.find(f".//{{{NS_PUBSUB}}}item/{{urn:xmpp:omemo:2}}bundle/{{urn:xmpp:omemo:2}}ik")
        assert ik is not None, ET.tostring(reply, encoding="unicode")
        raw = base64.b64decode(ik.text)
        assert len(raw) == 32, f"OMEMO:2 ik {raw.hex()}"
        out["2"], ed = xeddsa.ed25519_pub_to_curve25519_pub(raw).hex(), raw.hex()
    return out, ed


@test
def one_fingerprint_for_a_device_in_both_versions():
    """mend's `fingerprint` for its own device is the identity key of both its bundles
    as the server holds them (the legacy key and the OMEMO:2 Ed25519 key converted) and
    what python-omemo (format_identity_key, the Curve25519 form) shows for it, whether
    it found the device in both lists, only in the OMEMO:2 one (then python-omemo keeps
    the Ed25519 <ik/> mend published, byte for byte) or only in the legacy one; mend
    shows each peer device, whichever version's bundle it came from, with the
    fingerprint that device's python-omemo shows for itself."""
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        own = lines_of(alice, alice.run("fingerprint"), "fingerprint")[0]
        keys, ed = published_identity_keys(srv, "alice@localhost", own["device"])
        want = ["0.3", "2"] if PUBLISHES_OMEMO2 else ["0.3"]
        assert sorted(keys) == want and set(keys.values()) == {own["fingerprint"]}, \
            (own, keys)
        peers = {"both": peer(srv, root, "bob", "both"),
                 "legacy": peer(srv, root, "carol", "legacy", resource="old")}
        if PUBLISHES_OMEMO2:
            peers["2"] = peer(srv, root, "carol", "2", resource="two")
        with contextlib.ExitStack() as stack:
            ready = {}
            for mode, p in peers.items():
                stack.enter_context(p)
                ready[mode] = wait_ready(p)
            for mode, p in peers.items():
                m = p.mark()
                p.send_line("refresh alice@localhost")
                seen = p.wait_line(lambda o: o["type"] == "refreshed", 20,
                                   f"the {mode} peer's view of alice", start=m)
                versions = {"both": want, "legacy": ["0.3"], "2": ["2"]}[mode]
                assert [(d["device"], d["fingerprint"], d["versions"]) for d in
                        seen["devices"]] == [(own["device"], own["fingerprint"], versions)], \
                    (mode, own, seen)
                if mode == "2":
                    assert seen["devices"][0]["identity_key"] == ed, (ed, seen)
            for jid in ("bob@localhost", "carol@localhost"):
                cp = alice.run("devices", jid)
                shown = sorted((d["device"], d["fingerprint"])
                               for d in lines_of(alice, cp, "device") if d["jid"] == jid)
                assert shown == sorted((r["device"], r["fingerprint"]) for r in ready.values()
                                       if r["jid"].startswith(jid + "/")), (ready, cp.stdout)


# --------------------------------------------------------------------------
# OMEMO:2 only: the wire format, the SCE affixes, downgrades, mixed devices
# --------------------------------------------------------------------------

def needs_omemo2():
    if not OMEMO2:
        skip("this build is legacy only (mend --version): mend_and_an_omemo2_only_peer "
             "shows that it refuses an OMEMO:2-only peer")


def xep_schema(name):
    """One of the repository's schemas (xep/: the XEPs' own, tightened; see xep/README.md)."""
    import xmlschema
    xep = os.environ.get("MEND_XEP_DIR") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "xep")
    return xmlschema.XMLSchema(os.path.join(xep, name))


def node_config(client, node):
    """pubsub#access_model and pubsub#max_items of our own PEP node (XEP-0060 §8.2)."""
    reply = client.iq("get", None, f"<pubsub xmlns='{NS_PUBSUB}#owner'>"
                      f"<configure node='{node}'/></pubsub>")
    out = {}
    for f in reply.iter("{jabber:x:data}field"):
        if f.get("var") in ("pubsub#access_model", "pubsub#max_items"):
            v = f.find("{jabber:x:data}value")
            out[f.get("var")] = v.text if v is not None else None
    return out


@test
def what_mend_sends_in_omemo2_validates():
    """The OMEMO:2 elements mend put on the wire, as the server and python-omemo got
    them: its <devices/> and <bundle/> items (with the node configuration XEP-0384 §5.3
    asks for) validate against xep/omemo2.xsd; the <encrypted/> of a message (a key
    exchange, then a plain one) against xep/omemo2.xsd, its decrypted SCE <envelope/>
    against xep/sce.xsd, with <rpad/>, <time/>, <to/> and <from/> (XEP-0384 §5.5.1,
    XEP-0420 §4)."""
    needs_omemo2()
    omemo2, sce = xep_schema("omemo2.xsd"), xep_schema("sce.xsd")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        own = alice.device_id()
        probe = srv.client("carol")
        devices, ids = pep_item(probe, "alice@localhost", "urn:xmpp:omemo:2:devices")
        assert ids == ["current"] and f'id="{own}"' in devices, devices
        omemo2.validate(devices)
        bundle, ids = pep_item(probe, "alice@localhost", "urn:xmpp:omemo:2:bundles")
        assert str(own) in ids, ids
        omemo2.validate(bundle)
        owner = srv.client("alice")
        for node, want in (("urn:xmpp:omemo:2:devices", {"pubsub#access_model": "open"}),
                           ("urn:xmpp:omemo:2:bundles", {"pubsub#access_model": "open",
                                                         "pubsub#max_items": "max"})):
            conf = node_config(owner, node)
            for k, v in want.items():
                # Prosody shows max_items "max" as its limit (pep_max_items)
                assert conf.get(k) == v or (v == "max" and int(conf.get(k) or 0) > 1), \
                    (node, conf)
        bob = peer(srv, root, "bob", "2")
        with bob:
            wait_ready(bob)
            for text, kex in (("a key exchange to validate", True),
                              ("a plain message to validate", False)):
                m = bob.mark()
                alice.send("bob@localhost", text)
                got = peer_got(bob, text, start=m)
                assert got["version"] == "2" and got["prekey"] is kex, got
                omemo2.validate(got["encrypted_xml"])
                sce.validate(got["envelope"])
                assert got["sce"]["rpad"] and got["sce"]["time"], got
                assert (got["sce"]["from"], got["sce"]["to"]) == \
                    ("alice@localhost", "bob@localhost"), got
                assert got["content"] == ["{jabber:client}body"], got
                if kex:
                    # once mend reads bob's device, its next message is no key exchange
                    peer_sends(bob, "alice@localhost", "a reply")
                    with alice.listen() as al:
                        wait_message(al, "a reply")


@test
def a_tampered_sce_affix_is_refused():
    """python-omemo sends OMEMO:2 whose encrypted <to/> names someone else, then whose
    <from/> is not the sender (the affixes a server cannot forge, XEP-0420 §4): mend shows
    no message, an error line saying why, and reads the honest messages after them."""
    needs_omemo2()
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        bob = peer(srv, root, "bob", "2")
        with bob, alice.listen() as al:
            rb = wait_ready(bob)
            wait_listening(al)
            peer_sends(bob, "alice@localhost", "an honest one first")
            assert wait_message(al, "an honest one first")["version"] == "2"
            for affix, why in (("to", "the encrypted <to/> is not us"),
                               ("from", "the encrypted <from/> is not the sender")):
                bob.send_line(f"affix {affix}=mallory@localhost")
                mark = al.mark()
                peer_sends(bob, "alice@localhost", f"tampered {affix}")
                err = al.wait_line(lambda o: o.get("type") in ("error", "message"), 30,
                                   f"alice to refuse the tampered <{affix}/>", start=mark)
                assert err["type"] == "error" and why in err["text"] and \
                    "affix" in err["text"], err
                assert (err["from"], err["device"], err.get("version")) == \
                    ("bob@localhost", rb["device"], "2"), err
                assert f"tampered {affix}" not in str(err), err
                bob.send_line("affix off")
            # still talking afterwards, and nothing tampered was shown
            peer_sends(bob, "alice@localhost", "honest again")
            assert wait_message(al, "honest again")["version"] == "2"
            assert not [o for o in al.lines if "tampered" in str(o.get("body"))], al.describe()
        cp = alice.run("history", "bob@localhost")
        assert "tampered" not in cp.stdout and "honest again" in cp.stdout, cp.stdout


@test
def a_device_that_falls_back_to_legacy_is_flagged():
    """A device that wrote OMEMO:2 then writes legacy (XEP-0384 §5.6: a downgrade an
    attacker could force): the message is shown with "downgrade" and a notice that the
    device fell back; mend keeps writing OMEMO:2 to it."""
    needs_omemo2()
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        bob = peer(srv, root, "bob", "both")
        with bob:
            rb = wait_ready(bob)
            with alice.listen() as al:
                wait_listening(al)
                peer_sends(bob, "alice@localhost", "in OMEMO:2", version="2")
                m = wait_message(al, "in OMEMO:2")
                assert m["version"] == "2" and not m.get("downgrade"), m
                mark = al.mark()
                peer_sends(bob, "alice@localhost", "in legacy", version="0.3")
                m = wait_message(al, "in legacy", start=mark)
                assert m["version"] == "0.3" and m.get("downgrade") is True and \
                    m["device"] == rb["device"], m
                al.wait_line(lambda o: o.get("type") == "notice" and "fell back" in o["text"]
                             and str(rb["device"]) in o["text"], 20,
                             "a notice that bob's device fell back", start=mark)
            cp = alice.run("devices", "bob@localhost")
            dev = [o for o in lines_of(alice, cp, "device") if o["jid"] == "bob@localhost"]
            assert [(d["device"], d["wrote"], d["send_version"]) for d in dev] == \
                [(rb["device"], "0.3", "2")], cp.stdout
            mark = bob.mark()
            alice.send("bob@localhost", "still OMEMO:2 to you")
            got = peer_got(bob, "still OMEMO:2 to you", start=mark)
            assert got["version"] == "2", got


@test
def one_message_to_devices_of_both_kinds():
    """bob has an OMEMO:2-only and a legacy-only device, alice (mend) an OMEMO:2-only
    python-omemo device beside her mend: one message is one stanza per version (same
    id), each with keys for its own devices only; every device reads it; mend devices
    shows each device's versions."""
    needs_omemo2()
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        two = peer(srv, root, "bob", "2", resource="two")
        old = peer(srv, root, "bob", "legacy", resource="old")
        mine = peer(srv, root, "alice", "2", resource="py")
        with two, old, mine:
            r2, rl, rm = wait_ready(two), wait_ready(old), wait_ready(mine)
            cp = alice.run("devices", "bob@localhost")
            versions = {o["device"]: set(o.get("versions") or ()) for o in
                        lines_of(alice, cp, "device") if o["jid"] == "bob@localhost"}
            assert versions == {r2["device"]: {"2"}, rl["device"]: {"0.3"}}, cp.stdout
            m2, ml, mm = two.mark(), old.mark(), mine.mark()
            cp = alice.send("bob@localhost", "to both kinds")
            sent = lines_of(alice, cp, "sent")[0]
            assert (sent["devices"], sent.get("devices_2"), sent.get("devices_legacy")) == \
                (3, 2, 1), cp.stdout
            got2 = peer_got(two, "to both kinds", start=m2)
            gotl = peer_got(old, "to both kinds", start=ml)
            gotm = mine.wait_line(lambda o: o["type"] == "message" and o["carbon"] == "sent",
                                  30, "alice's python-omemo device to read the sent carbon",
                                  start=mm)
            assert (got2["version"], gotl["version"], gotm["version"]) == ("2", "0.3", "2")
            assert gotm["body"] == "to both kinds" and gotm["to"] == "bob@localhost", gotm
            assert got2["rids"] == sorted([r2["device"], rm["device"]]), got2
            assert gotl["rids"] == [rl["device"]], gotl
            assert got2["id"] == gotl["id"] == gotm["id"], (got2, gotl, gotm)
            # the legacy stanza's carbon reaches the OMEMO:2-only device too: not for it
            mine.wait_line(lambda o: o["type"] == "error" and o["version"] == "0.3" and
                           o["id"] == got2["id"], 30, "the legacy stanza's carbon", start=mm)


# --------------------------------------------------------------------------
# mend's two builds
# --------------------------------------------------------------------------

@test
def mend_two_builds_talk():
    """One device of each build (libomemo-c here or there, libsignal-protocol-c, legacy
    only, on the other side): alice's two devices and bob, both ways, with carbons.
    MEND_OTHER_BIN names the other build's binary; `./run test --libsignal` sets it
    to build/mend when that build exists (CI builds both), `./run test` to
    build-libsignal/mend."""
    if not OTHER:
        skip("MEND_OTHER_BIN (the other build's mend) is not set")
    assert os.access(OTHER, os.X_OK), f"MEND_OTHER_BIN={OTHER} is not executable"
    # libsignal-protocol-c is legacy only, so the two builds meet in legacy OMEMO
    want = "2" if OMEMO2 and speaks_omemo2(OTHER) else "0.3"
    with server() as srv, tempfile.TemporaryDirectory() as root:
        here, there = Mend(srv, root, "alice", "here"), Build(OTHER, srv, root, "alice", "there")
        bob = Build(OTHER, srv, root, "bob", "there")
        for d in (here, there, bob):
            d.publish()
        with there.listen() as tl, bob.listen() as bl:
            wait_listening(tl)
            wait_listening(bl)
            cp = here.send("bob@localhost", "from this build")
            assert lines_of(here, cp, "sent")[0]["devices"] == 2, cp.stdout
            m = wait_message(bl, "from this build")
            assert m["version"] == want, m
            m = wait_message(tl, "from this build", carbon="sent")
            assert m["version"] == want, m
        with here.listen() as hl:
            wait_listening(hl)
            Build(OTHER, srv, root, "bob", "cli", device="there").send("alice@localhost",
                                                                      "from the other build")
            m = wait_message(hl, "from the other build")
            assert m["version"] == want and m["from"] == "bob@localhost", m
            Build(OTHER, srv, root, "alice", "cli", device="there").send("bob@localhost",
                                                                        "alice's other device")
            m = wait_message(hl, "alice's other device", carbon="sent")
            assert m["version"] == want, m


if __name__ == "__main__":
    main()
