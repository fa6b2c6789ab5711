#!/usr/bin/python3
"""Encrypted files in libpurple (the headless harness, the library of Pidgin and Finch)
with mend-purple.so: a link from the mend client is shown as "file NAME (SIZE): /mend save
N" and saved by /mend save; /mend sendfile uploads to Prosody's mod_http_file_share over
HTTPS and the link bob gets opens with a decryptor written from the XEP-0454 text.
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, test, main  # noqa: E402
from mendcli import BUILD, Mend, wait_listening  # noqa: E402
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
                a.cmd("bob@localhost", "/mend on")
                # the test certificate is trusted as a CA file; verification stays on
                r = a.cmd("bob@localhost", f"/mend files ca {cert}")
                assert r["status"] == "ok", r
                a.wait_im(lambda o: "also trust the certificates in" in o["text"], 10)

                # a second process of bob's device (its own resource: the listener keeps its own)
                Mend(srv, root, "bob", "phone-cli", device="phone").send("alice@localhost", link)
                shown = a.wait_im(lambda o: "file holiday.jpg (4.3" in o["text"] and
                                  "/mend save" in o["text"], 30, flags=("recv",))
                assert "aesgcm://" not in shown["text"], shown
                n = re.search(r"/mend save (\d+)", shown["text"]).group(1)

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
                a.cmd("bob@localhost", f"/mend files ca {cert}")

                m = a.mark()
                a.cmd("bob@localhost", f"/mend save {n}")
                saved = a.wait_im(lambda o: o["text"].startswith("mend: saved "), 30, start=m)
                where = saved["text"][len("mend: saved "):].rsplit(" (", 1)[0]
                assert os.path.basename(where) == "holiday.jpg", saved
                with open(where, "rb") as f:
                    assert f.read() == photo

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


if __name__ == "__main__":
    main()
