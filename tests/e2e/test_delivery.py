#!/usr/bin/python3
"""What becomes of a message `mend` sends, on a real Prosody: delivery receipts
(XEP-0184) both ways with python-omemo and between two mend devices (`send
--wait-receipt`, the `receipt` JSON line, a receipt for a message an earlier
run sent), a bounce for an account that no longer exists and an unreachable
domain reported in words, the body sent exactly as given, and "delivered" in
Profanity and libpurple.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run, skip, start_omemo_peer, test, wait_ready, main  # noqa: E402

from mendcli import MEND, Mend, server, wait_listening, wait_message  # noqa: E402

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")


def python_bob(srv, root, resource="py", receipts=True):
    """A python-omemo device of bob that knows its own device list; receipts on or off."""
    bob = start_omemo_peer(srv, "bob", resource, os.path.join(root, f"bob-{resource}"))
    wait_ready(bob)
    bob.send_line(f"receipts {'on' if receipts else 'off'}")
    bob.wait_line(lambda o: o["type"] == "pong", 10, "bob to switch receipts")
    return bob


def of_type(mend, cp, kind):
    return [o for o in mend.lines(cp) if o["type"] == kind]


@test
def send_wait_receipt_returns_once_python_omemo_confirmed():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        with python_bob(srv, root) as bob:
            cp = alice.run("send", "--wait-receipt", "bob@localhost", "confirm please")
            assert cp.returncode == 0, f"{cp.returncode}\n{cp.stdout}\n{cp.stderr}"
            sent, rcpt = of_type(alice, cp, "sent"), of_type(alice, cp, "receipt")
            assert sent and rcpt, cp.stdout
            assert rcpt[0]["id"] == sent[0]["id"] and rcpt[0]["from"] == "bob@localhost", rcpt
            m = bob.wait_line(lambda o: o["type"] == "message" and o["body"] == "confirm please",
                              20, "bob to decrypt it")
            assert m["receipt_request"] is True and m["id"] == sent[0]["id"], m


@test
def send_wait_receipt_without_an_answer_says_so():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        with python_bob(srv, root, receipts=False) as bob:
            cp = alice.run("send", "--wait-receipt", "--timeout", "6", "bob@localhost", "quiet")
            bob.wait_line(lambda o: o["type"] == "message" and o["body"] == "quiet", 20,
                          "bob to decrypt it (without answering)")
            assert cp.returncode == 1, f"{cp.returncode}\n{cp.stdout}\n{cp.stderr}"
            assert of_type(alice, cp, "sent") and not of_type(alice, cp, "receipt"), cp.stdout
            assert "confirmed" in cp.stderr and "server has the message" in cp.stderr, cp.stderr


@test
def mend_answers_receipt_requests_of_what_it_decrypted_only():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        with python_bob(srv, root) as bob, alice.listen() as al:
            wait_listening(al)
            bob.send_line("refresh alice@localhost")
            bob.wait_line(lambda o: o["type"] == "refreshed", 20, "bob to know alice's device")
            # a broken OMEMO message asking for a receipt: alice cannot decrypt it
            bob.send_line("raw <message to='alice@localhost' type='chat' id='broken-1'>"
                          "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='4242'>"
                          f"<key rid='{alice.device_id()}'>AAAA</key><iv>AAAAAAAAAAAAAAAA</iv>"
                          "</header><payload>AAAA</payload></encrypted>"
                          "<request xmlns='urn:xmpp:receipts'/></message>")
            bob.wait_line(lambda o: o["type"] == "raw_sent", 10, "bob to send the broken one")
            mark = bob.mark()
            bob.send_line("send alice@localhost can you read this")
            sent = bob.wait_line(lambda o: o["type"] == "sent", 20, "bob to send", start=mark)
            al.wait_line(lambda o: o.get("type") == "error" and o.get("id") == "broken-1", 20,
                         "alice to report the broken message as undecryptable")
            wait_message(al, "can you read this")
            r = bob.wait_line(lambda o: o["type"] == "receipt", 20,
                              "alice's receipt for bob's message", start=mark)
            assert r["id"] == sent["id"] and r["from"].startswith("alice@localhost/"), r
            # alice handles stanzas in order: a receipt for the broken one would have come first
            assert not bob.find(lambda o: o["type"] == "receipt" and o["id"] == "broken-1"), \
                bob.describe()


@test
def receipts_between_two_mend_devices_and_in_a_later_run():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, bob = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        alice.publish()
        bob.publish()
        with bob.listen() as bl:
            wait_listening(bl)
            cp = alice.run("send", "--wait-receipt", "bob@localhost", "mend to mend")
            assert cp.returncode == 0, f"{cp.returncode}\n{cp.stdout}\n{cp.stderr}"
            assert of_type(alice, cp, "receipt"), cp.stdout
            wait_message(bl, "mend to mend")
        # sent while bob is offline; his receipt comes when he reads it, to alice's listener
        cp = alice.send("bob@localhost", "read me later")
        sent = of_type(alice, cp, "sent")[0]
        with alice.listen() as al:
            wait_listening(al)
            with bob.listen() as bl:
                wait_message(bl, "read me later")
                r = al.wait_line(lambda o: o.get("type") == "receipt", 30,
                                 "alice's listener to show bob's receipt")
                assert r["id"] == sent["id"] and r["from"] == "bob@localhost", r


@test
def a_bounce_for_a_deleted_account_is_reported_in_words():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, carol = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "carol", "pc")
        carol.publish()
        alice.send("carol@localhost", "while carol exists")
        cp = run(["prosodyctl", "--config", srv.config_path, "deluser", "carol@localhost"],
                 timeout=30, cwd=srv.dir)
        assert cp.returncode == 0, cp.stderr
        cp = alice.run("send", "carol@localhost", "after carol left")
        assert cp.returncode == 1, f"{cp.returncode}\n{cp.stdout}\n{cp.stderr}"
        err = [o for o in alice.lines(cp) if o["type"] == "error"]
        assert err and "carol@localhost does not exist on that server" in err[-1]["text"], cp.stdout
        assert "check the address" in cp.stderr and "plaintext" not in cp.stderr, cp.stderr


@test
def a_mistyped_address_ends_with_check_the_address_not_plaintext():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        for to, words in (("bob@exmaple.org", "refused to pass it on"),
                          ("nobdy@localhost", "does not exist on that server"),
                          ("carol@localhost", "has no OMEMO device")):
            cp = alice.run("send", to, "hello?")
            assert cp.returncode == 1, f"{to}: {cp.returncode}\n{cp.stderr}"
            assert words in cp.stderr and to in cp.stderr, f"{to}: {cp.stderr}"
            assert "check the address" in cp.stderr, cp.stderr
            assert "plaintext" not in cp.stderr and "NOT sent" in cp.stderr, cp.stderr


@test
def the_body_is_sent_exactly_as_given():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice = Mend(srv, root, "alice", "laptop")
        alice.publish()
        with python_bob(srv, root, receipts=False) as bob:
            cases = [(("two lines\n",), None, "two lines\n"),
                     (("ends with CR\r",), None, "ends with CR\r"),
                     (("crlf\r\n",), None, "crlf\r\n"),
                     ((), "from stdin\n", "from stdin"),
                     ((), "keeps one\n\n", "keeps one\n"),
                     ((), "stdin crlf\r\n", "stdin crlf\r"),
                     ((), "no newline", "no newline")]
            for args, stdin, want in cases:
                mark = bob.mark()
                cp = alice.run("send", "bob@localhost", *args, input=stdin)
                assert cp.returncode == 0, f"{args} {stdin!r}: {cp.returncode}\n{cp.stderr}"
                m = bob.wait_line(lambda o: o["type"] == "message", 20,
                                  f"bob to get {want!r}", start=mark)
                assert m["body"] == want, f"sent {args or stdin!r}, bob got {m['body']!r}"


LIBS = os.path.join(os.path.dirname(MEND), ".libs")


@test
def profanity_shows_delivered():
    from profanity import Profanity, profanity_missing
    why = profanity_missing() or (os.environ.get("MEND_SANITIZERS") and "a sanitizer build")
    module = os.path.join(LIBS, "mend-profanity-module.so")
    if why or not os.path.exists(module):
        skip(why or f"{module} is not built")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with Profanity(srv, "alice", resource="prof", env={"MEND_PROFANITY_MODULE": module},
                       plugins=[os.path.join(LIBS, "mend.so")]) as p, bob.listen() as bl:
            p.connect()
            wait_listening(bl)
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "tell me when you have it")
            wait_message(bl, "tell me when you have it", timeout=30)
            p.wait_screen("delivered to bob@localhost", 30, "Profanity to show the receipt")
            # a mistyped address: the server's answer in words, twice (queued, then at once)
            p.command("/mend on bobby@exmaple.org")
            for n, text in ((1, "typo one"), (2, "typo two")):
                p.say("bobby@exmaple.org", text)
                screen = p.wait_screen(lambda s: s.count("check the address") >= n and s, 30,
                                       f"the words for message {n} to the mistyped address")
            assert "without encryption" not in screen and "/mend off" not in screen, screen


@test
def pidgin_shows_delivered():
    from purple import Purple, purple_missing
    plugin = os.path.join(LIBS, "mend-purple.so")
    why = purple_missing()
    if why or not os.path.exists(plugin):
        skip(why or f"{plugin} is not built")
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        with Purple(srv, "alice", resource="purple", plugins=("core-mend",),
                    plugin_dir=LIBS) as a, bob.listen() as bl:
            a.wait_signed_on()
            wait_listening(bl)
            a.cmd("bob@localhost", "/mend on")
            a.send("bob@localhost", "tell me when you have it")
            wait_message(bl, "tell me when you have it", timeout=30)
            a.wait_im("Delivered to bob@localhost.", timeout=30, flags=("system",))
            # a mistyped address: the server's answer in words, twice (queued, then at once)
            a.cmd("bobby@exmaple.org", "/mend on")
            for text in ("typo one", "typo two"):
                mark = a.mark()
                a.send("bobby@exmaple.org", text)
                m = a.wait_im(lambda o: "check the address" in o["text"], 30, start=mark)
                assert "without encryption" not in m["text"] and "/mend off" not in m["text"], m


if __name__ == "__main__":
    main()
