#!/usr/bin/python3
"""Trust over a real Prosody with the mend client: trust on first use, a
changed identity key (a candidate beside the trusted one, accepted only by its
fingerprint; the message that came with it is held and shown then),
blind trust before verification, manual trust, and verification URIs between
two mend devices.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, test, main  # noqa: E402
from mendcli import MEND, Mend, server, wait_listening, wait_message  # noqa: E402

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")


def devices(me, jid):
    cp = me.run("devices", jid)
    assert cp.returncode == 0, cp.stderr
    return {o["device"]: o for o in me.lines(cp) if o["type"] == "device"}


def one(me, *cmd, rc=0):
    cp = me.run(*cmd)
    assert cp.returncode == rc, f"mend {' '.join(cmd)} exited {cp.returncode}: {cp.stderr}"
    return cp


@test
def tofu_first_contact_and_new_devices():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        phone.publish()
        alice.send("bob@localhost", "first contact")
        d = devices(alice, "bob@localhost")[phone.device_id()]
        assert d["trust"] == "tofu", d
        assert d["fingerprint"] == phone.lines(phone.run("fingerprint"))[0]["fingerprint"], d
        tablet = Mend(srv, root, "bob", "tablet")
        tablet.publish()
        alice.send("bob@localhost", "to both")
        assert devices(alice, "bob@localhost")[tablet.device_id()]["trust"] == "tofu"
        with tablet.listen("--count", "1", "--timeout", "30") as tl:
            wait_message(tl, "to both")


@test
def a_changed_identity_key_is_accepted_only_by_its_fingerprint():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        phone.publish()
        alice.publish()
        alice.send("bob@localhost", "before the reset")
        pid = phone.device_id()
        old_fp = phone.lines(phone.run("fingerprint"))[0]["fingerprint"]
        one(phone, "identity", "reset")
        new_fp = phone.lines(phone.run("fingerprint"))[0]["fingerprint"]
        assert new_fp != old_fp
        with alice.listen() as al:
            wait_listening(al)
            # bob's device writes with its new key: alice holds it, says so, trusts nothing
            phone.send("alice@localhost", "from the new key")
            err = al.wait_line(lambda o: o.get("type") == "error" and o.get("device") == pid,
                               30, "alice to hold the message under the changed key")
            assert err["code"] == -29 and new_fp in err["text"], err
            assert f"trust bob@localhost {pid} {new_fp}" in err["text"], err
            assert not [o for o in al.lines if o.get("body") == "from the new key"]
        d = devices(alice, "bob@localhost")[pid]
        assert d["trust"] == "tofu", d
        assert d["fingerprint"] == old_fp and d["new_fingerprint"] == new_fp, d
        assert d["new_keys"] == 1, d
        # trust without the fingerprint: the new one and the command, exit 2, nothing changes
        cp = one(alice, "trust", "bob@localhost", str(pid), rc=2)
        assert f"mend trust bob@localhost {pid} FINGERPRINT" in cp.stderr, cp.stderr
        shown = [o for o in alice.lines(cp) if o["type"] == "device"]
        assert shown and shown[0]["new_fingerprint"] == new_fp, cp.stdout
        assert devices(alice, "bob@localhost")[pid] == d, "trust without a fingerprint changed it"
        # naming the key (grouped as users read it) accepts it, and the held message is shown
        grouped = [new_fp[i:i + 8] for i in range(0, 64, 8)]
        cp = one(alice, "trust", "bob@localhost", str(pid), *grouped)
        got = [o for o in alice.lines(cp) if o["type"] == "message"]
        assert [o["body"] for o in got] == ["from the new key"], cp.stdout
        assert got[0]["trust"] == "verified", got
        d = devices(alice, "bob@localhost")[pid]
        assert d["trust"] == "verified" and d["fingerprint"] == new_fp, d
        assert d["new_fingerprint"] is None, d
        alice.send("bob@localhost", "after accepting")
        with phone.listen("--count", "1", "--timeout", "30") as pl:
            wait_message(pl, "after accepting")


@test
def blind_trust_until_a_verification():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, c1 = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "carol", "phone")
        one(alice, "policy", "btbv")
        c1.publish()
        alice.send("carol@localhost", "blindly trusted")
        assert devices(alice, "carol@localhost")[c1.device_id()]["trust"] == "blind"
        # verification by URI, as Conversations shows it in a QR code
        uri = c1.lines(one(c1, "uri"))[0]["uri"]
        assert uri.startswith("xmpp:carol@localhost?omemo-sid-"), uri
        bad = uri[:-1] + ("0" if uri[-1] != "0" else "1")
        one(alice, "verify", bad, rc=1)
        assert devices(alice, "carol@localhost")[c1.device_id()]["trust"] == "blind", \
            "a mismatching URI changed something"
        one(alice, "verify", uri)
        assert devices(alice, "carol@localhost")[c1.device_id()]["trust"] == "verified"
        c2 = Mend(srv, root, "carol", "tablet")
        c2.publish()
        cp = alice.send("carol@localhost", "verified only")
        told = [o for o in alice.lines(cp) if o["type"] == "notice"]
        assert told and str(c2.device_id()) in told[0]["text"] and "trust" in told[0]["text"], \
            f"the skipped device is not named: {cp.stdout} {cp.stderr}"
        assert devices(alice, "carol@localhost")[c2.device_id()]["trust"] == "undecided"
        with c2.listen("--timeout", "5") as tl:
            tl.wait_exit(30)
            assert not [o for o in tl.lines if o.get("body") == "verified only"]
        one(alice, "trust", "carol@localhost", str(c2.device_id()))
        alice.send("carol@localhost", "now both")
        with c2.listen("--count", "1", "--timeout", "30") as tl:
            wait_message(tl, "now both")


@test
def manual_trust_sends_nothing_until_told():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, dave = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "carol", "phone")
        one(alice, "policy", "carol@localhost", "manual")
        assert "tofu" in alice.lines(one(alice, "policy"))[0]["text"]
        dave.publish()
        cp = alice.send("carol@localhost", "not yet", expect_rc=1)
        assert "trust" in cp.stderr.lower(), cp.stderr
        d = devices(alice, "carol@localhost")[dave.device_id()]
        assert d["trust"] == "undecided", d
        one(alice, "trust", "carol@localhost", str(dave.device_id()))
        alice.send("carol@localhost", "now trusted")
        with dave.listen("--count", "1", "--timeout", "30") as dl:
            wait_message(dl, "now trusted")
            assert not [o for o in dl.lines if o.get("body") == "not yet"]


if __name__ == "__main__":
    main()
