#!/usr/bin/python3
"""Encrypted files in libpurple (the headless harness, the library of Pidgin and Finch)
with mend-purple.so: a link from the mend client is shown as "file NAME from HOST: /mend
save N" without any request to the file's server, and saved by /mend save (in a thread:
the window answers while a server stalls); /mend sendfile uploads to Prosody's
mod_http_file_share over HTTPS and the link bob gets opens with a decryptor written from
the XEP-0454 text. In an encrypted room, a file sent by one libpurple member is shown
described to the other and saved byte-identical, both ways.
"""

import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, test, main, wait_for  # noqa: E402
from mendcli import BUILD, Mend, wait_listening, wait_published  # noqa: E402
from purple import Purple, purple_missing  # noqa: E402
from filesrv import (AESGCM, HttpsFiles, independent_decrypt, make_cert, sha256,  # noqa: E402
                     store_files, upload_server)

LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")

why = purple_missing()
if why:
    skip(why)
if not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")
if AESGCM is None:
    skip("python3-cryptography is not installed")


@test
def libpurple_saves_and_sends_files():
    with tempfile.TemporaryDirectory() as root:
        cert, key = make_cert(root)
        data = os.urandom(150000)
        path = os.path.join(root, "from-purple.bin")
        with open(path, "wb") as f:
            f.write(data)
        with HttpsFiles(cert, key) as web, upload_server(https_cert=(cert, key)) as srv:
            photo = os.urandom(4321)
            link = web.add("/share/holiday.jpg", photo, iv_len=16)
            bob = Mend(srv, root, "bob", "phone")  # plain XMPP; bob sends only text here
            bob.publish()
            with Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS) as a, \
                    bob.listen() as bl:
                a.wait_signed_on()
                wait_listening(bl)
                # bob encrypts for the devices the server lists: wait until it lists alice's
                wait_published(srv, root, "alice")
                a.cmd("bob@localhost", "/mend on")
                # the test certificate is trusted as a CA file; verification stays on
                r = a.cmd("bob@localhost", f"/mend files ca {cert}")
                assert r["status"] == "ok", r
                a.wait_im(lambda o: "also trust the certificates in" in o["text"], 10)

                # a second process of bob's device (its own resource: the listener keeps its own)
                Mend(srv, root, "bob", "phone-cli", device="phone").send("alice@localhost", link)
                shown = a.wait_im(lambda o: "file holiday.jpg from 127.0.0.1: /mend save"
                                  in o["text"], 30, flags=("recv",))
                assert "aesgcm://" not in shown["text"], shown
                n = re.search(r"/mend save (\d+)", shown["text"]).group(1)
                # a received link alone makes no request (privacy; no frozen window): the
                # file server is asked only by /mend save
                a.ping()
                assert web.requests == [], web.requests

                # without the CA file the self-signed certificate is refused: nothing saved
                m = a.mark()
                a.cmd("bob@localhost", "/mend files ca")
                a.wait_im(lambda o: "trust the system's certificates only" in o["text"], 10,
                          start=m)
                a.cmd("bob@localhost", f"/mend save {n}")
                refused = a.wait_im(lambda o: "could not be verified" in o["text"] or
                                    o["text"].startswith("mend: saved "), 30, start=m)
                assert "HTTPS certificate of 127.0.0.1 could not be verified" in \
                    refused["text"], refused
                assert web.requests == [], "a request went out over an unverified connection"
                a.cmd("bob@localhost", f"/mend files ca {cert}")

                m = a.mark()
                a.cmd("bob@localhost", f"/mend save {n}")
                saved = a.wait_im(lambda o: o["text"].startswith("mend: saved "), 30, start=m)
                where = saved["text"][len("mend: saved "):].rsplit(" (", 1)[0]
                assert os.path.basename(where) == "holiday.jpg", saved
                with open(where, "rb") as f:
                    assert f.read() == photo
                assert web.requests == [("GET", "/share/holiday.jpg")], web.requests

                # a server that stalls: /mend save runs beside the window, which still answers
                stalled = web.add("/share/stalled.bin", os.urandom(50000))
                web.routes["/share/stalled.bin"] = ("stall-after",
                                                    web.routes["/share/stalled.bin"], 1000)
                Mend(srv, root, "bob", "phone-cli", device="phone").send("alice@localhost",
                                                                         stalled)
                shown = a.wait_im(lambda o: "file stalled.bin from" in o["text"], 30,
                                  flags=("recv",))
                n = re.search(r"/mend save (\d+)", shown["text"]).group(1)
                t0 = time.monotonic()
                a.cmd("bob@localhost", f"/mend save {n}")
                wait_for(lambda: ("GET", "/share/stalled.bin") in web.requests, 10,
                         "the download of stalled.bin to start")
                a.ping(timeout=5)  # the main loop runs while the download waits for the server
                assert time.monotonic() - t0 < 15, time.monotonic() - t0

                m = bl.mark()
                a.cmd("bob@localhost", f"/mend sendfile {path}")
                got = bl.wait_line(lambda o: o.get("type") == "message" and o.get("file"), 60,
                                   "bob to get alice's file link", start=m)
                assert got["file"]["name"] == "from-purple.bin", got
                assert independent_decrypt(got["body"]) == data
                assert sha256(data) not in str(store_files(srv))
                a.wait_im(lambda o: "file from-purple.bin (sent encrypted)" in o["text"], 30,
                          flags=("send",))

                # the upload without the CA file: refused with the reason, nothing stored
                before = store_files(srv)
                m = a.mark()
                a.cmd("bob@localhost", "/mend files ca")
                a.cmd("bob@localhost", f"/mend sendfile {path}")
                no = a.wait_im(lambda o: "was not sent" in o["text"] or
                               "sent encrypted" in o["text"], 60, start=m)
                assert re.search(r"HTTPS certificate of localhost(:\d+)? could not be verified",
                                 no["text"]), no
                assert store_files(srv) == before


@test
def a_stalled_upload_leaves_the_window_answering():
    """/mend sendfile whose upload server takes the request and then nothing: the PUT runs in
    a thread of its own, libpurple's main loop keeps answering."""
    with tempfile.TemporaryDirectory() as root:
        cert, key = make_cert(root)
        path = os.path.join(root, "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024))
        with HttpsFiles(cert, key) as web, \
                upload_server(https_cert=(cert, key), external_port=web.port) as srv:
            Mend(srv, root, "bob", "phone").publish()
            with Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS) as a:
                a.wait_signed_on()
                a.cmd("bob@localhost", f"/mend files ca {cert}")
                t0, m = time.monotonic(), a.mark()
                a.cmd("bob@localhost", f"/mend sendfile {path}")
                wait_for(lambda: any(r == "PUT" for r, _ in web.requests), 30,
                         "the upload to reach the server")
                a.ping(timeout=5)  # the main loop runs while the upload waits for the server
                assert time.monotonic() - t0 < 25, time.monotonic() - t0
                # how far it got, in words: a 3 MiB file shows its progress by quarters
                shown = a.wait_im(lambda o: re.match(
                    r"mend: big\.bin: (25|50|75|100)% sent \(.+ of 3\.1\sMB\)", o["text"]),
                    30, start=m)
                assert shown, "no progress line"


ROOM = "secret@conference.localhost"


def room_file_sent_and_saved(sender, receiver, path, data):
    """sender's /mend sendfile PATH in the room; receiver sees the description and saves the
    file with /mend save N: byte-identical."""
    name = os.path.basename(path)
    m, ms = receiver.mark(), sender.mark()
    sender.chatcmd(ROOM, f"/mend sendfile {path}")
    try:
        shown = receiver.wait_chat(
            lambda o: f"file {name} from localhost: /mend save" in o["text"], 60,
            who=sender.jid.split("@")[0], flags=("recv",), conv=ROOM, start=m)
    except AssertionError as e:  # what the sender saw says whether it went out
        raise AssertionError(f"{e}\n--- the sender, {sender.name}:\n{sender.describe()}") \
            from None
    assert shown["text"].startswith("[unverified] "), shown
    sender.wait_chat(f"file {name} (sent encrypted)", 30, flags=("send",), conv=ROOM, start=ms)
    n = re.search(r"/mend save (\d+)", shown["text"]).group(1)
    receiver.chatcmd(ROOM, f"/mend save {n}")
    saved = receiver.wait_chat(lambda o: o["text"].startswith("mend: saved ") or
                               "was not saved" in o["text"], 30, conv=ROOM, start=m)
    assert saved["text"].startswith("mend: saved "), saved
    where = saved["text"][len("mend: saved "):].rsplit(" (", 1)[0]
    assert os.path.basename(where) == name, saved
    with open(where, "rb") as f:
        assert f.read() == data, f"{where} differs from what was sent"


@test
def files_in_an_encrypted_room():
    """Two libpurple members of an encrypted members-only room: each one's /mend sendfile
    in the room window is shown to the other as a description and saved by /mend save
    there; /mend sendfile in a room mend does not encrypt is refused."""
    with tempfile.TemporaryDirectory() as root:
        cert, key = make_cert(root)
        files = {}
        for who in ("alice", "bob"):
            files[who] = (os.path.join(root, f"from-{who}.bin"), os.urandom(60000))
            with open(files[who][0], "wb") as f:
                f.write(files[who][1])
        with upload_server(https_cert=(cert, key), muc=True) as srv:
            srv.create_room("secret", owner="bob", members=("alice",))
            with Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS) as a, \
                    Purple(srv, "bob", plugins=("core-mend",), plugin_dir=LIBS) as b:
                for p, who in ((a, "alice"), (b, "bob")):
                    p.wait_signed_on()
                    wait_published(srv, root, who)
                    p.join(ROOM, who)
                    m = p.mark()
                    p.chatcmd(ROOM, f"/mend files ca {cert}")
                    p.wait_chat(lambda o: "also trust the certificates in" in o["text"], 10,
                                conv=ROOM, start=m)
                m = a.mark()
                a.chatcmd(ROOM, f"/mend sendfile {files['alice'][0]}")
                a.wait_chat(lambda o: "works in a group chat mend encrypts" in o["text"], 10,
                            conv=ROOM, start=m)
                for p in (a, b):
                    m = p.mark()
                    p.chatcmd(ROOM, "/mend on")
                    p.wait_chat(lambda o: "OMEMO encryption is on for this room" in o["text"],
                                30, conv=ROOM, start=m)
                room_file_sent_and_saved(b, a, *files["bob"])
                room_file_sent_and_saved(a, b, *files["alice"])
                store = store_files(srv)
                assert len(store) == 2, store.keys()
                assert not any(d[:64] in body for _, d in files.values()
                               for body in store.values()), "plaintext on the server's disk"


if __name__ == "__main__":
    main()
