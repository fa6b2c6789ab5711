#!/usr/bin/python3
"""mend inside libpurple (2.14, the library Pidgin and Finch run on): the
plugin loaded by a headless libpurple client (tests/purple/harness), signed in
to a throwaway Prosody on 127.0.0.1; against the mend client, the independent
python-omemo peer, our own other device, after being offline, and when the
peer cannot be encrypted to. Finch in tmux loads the plugin too.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, start_omemo_peer, test, main, wait_for, wait_ready  # noqa: E402
from mendcli import BUILD, Mend, server, stored_on_server, wait_listening, wait_message  # noqa: E402,E501
from purple import Purple, purple_missing, finch_loads_plugin, finch_missing  # noqa: E402

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")

why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")


def with_mend(srv, user, resource="purple", user_dir=None):
    return Purple(srv, user, resource=resource, plugins=("core-mend",), plugin_dir=LIBS,
                  user_dir=user_dir)


def wait_published(srv, root, user):
    """Until mend in libpurple has published user's device (another client sees it)."""
    probe = Mend(srv, root, "carol", "probe")

    def seen():
        cp = probe.run("devices", f"{user}@localhost")
        return cp.returncode == 0 and any(o.get("type") == "device" and o.get("fingerprint")
                                          for o in probe.lines(cp))
    wait_for(seen, 30, f"{user}'s mend device to be published", interval=0.3)


@test
def purple_and_the_mend_client_both_ways():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with with_mend(srv, "alice") as a, bob.listen() as bl:
            a.wait_signed_on()
            wait_listening(bl)
            a.cmd("bob@localhost", "/mend on")
            a.send("bob@localhost", "hello from libpurple")
            m = wait_message(bl, "hello from libpurple", timeout=30)
            assert m["from"] == "alice@localhost", m
            Mend(srv, root, "bob", "cli", device="phone").send("alice@localhost",
                                                               "hello from the mend client")
            got = a.wait_im("hello from the mend client", timeout=30, flags=("recv",))
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
            a.wait_im("from python-omemo", timeout=30, flags=("recv",))


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
                got = a.wait_im("to the phone only", timeout=30, flags=("recv",))
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
            sent_at = time.time()
            wait_for(lambda: time.time() >= sent_at + 2, 5, "the clock to move on")
            a.restart()
            for t in texts:
                a.wait_im(t, timeout=30)
            got = [m for m in a.ims() if m["text"].startswith("while offline")]
            assert [m["text"] for m in got] == texts, [m["text"] for m in got]
            for m in got:
                assert m["mtime"] <= sent_at + 1, f"not the original time: {m}"
            a.restart()
            a.ping()
            mark = a.mark()
            a.wait_signed_on()
            bob.send("alice@localhost", "a new one")
            a.wait_im("a new one", timeout=30, start=mark)
            again = [m for m in a.ims(start=mark) if m["text"].startswith("while offline")]
            assert again == [], f"shown again after a restart: {again}"


@test
def the_peer_receives_no_plaintext():
    with server() as srv:
        with with_mend(srv, "alice") as a:
            a.wait_signed_on()
            a.cmd("carol@localhost", "/mend on")
            a.send("carol@localhost", "canary-secret-purple")
            a.wait_im(lambda o: "NOT sent" in o["text"], timeout=30, flags=("system",))
            a.cmd("carol@localhost", "/mend off")
            a.send("carol@localhost", "canary-plain-purple")
            wait_for(lambda: stored_on_server(srv, "canary-plain-purple"), 20,
                     "the plaintext control message to reach the server")
            assert not stored_on_server(srv, "canary-secret-purple"), "plaintext left"


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
