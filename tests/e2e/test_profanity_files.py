#!/usr/bin/python3
"""Encrypted files in the real Profanity (0.13.1, in tmux) with mend.so, on a Prosody with
mod_http_file_share over HTTPS: /mend sendfile reaches the mend client byte-identical, a
file from the mend client is shown as "file NAME from HOST: /mend save N" and saved by
/mend save, and Profanity's own /sendfile in the mend-encrypted chat uploads nothing.
Interop with Profanity's built-in OMEMO (no mend plugin): its /sendfile (aesgcm://) is
saved by mend byte-identical, and a file sent by mend is opened by its /url save.
"""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run, skip, test, main, wait_for  # noqa: E402
from profanity import Profanity, mend_plugin_or_skip  # noqa: E402
from mendcli import BUILD, MEND, wait_listening  # noqa: E402
from filesrv import (AESGCM, HttpsFiles, TlsMend, sha256, store_files,  # noqa: E402
                     upload_server)

PLUGIN, MODULE = mend_plugin_or_skip(BUILD)
if AESGCM is None:
    skip("python3-cryptography is not installed")


def profanity_trusting_the_test_cert(srv, user, save_dir=None):
    """Profanity with mend.so whose transfers trust the self-signed test certificate as a CA
    file, verification on (the plugin setting [mend] files.tls.ca, written before start);
    save_dir: the setting files.save-dir (received files saved there at once)."""
    p = Profanity(srv, user, resource="prof", env={"MEND_PROFANITY_MODULE": MODULE},
                  plugins=[PLUGIN], start=False)
    p.prepare()
    with open(os.path.join(p.data_dir, "plugin_settings"), "w") as f:
        f.write(f"[mend]\nfiles.tls.ca={srv.cert_path}\n")
        if save_dir:
            f.write(f"files.save-dir={save_dir}\n")
    return p


def mend_ready(p, timeout=20):
    p.win(1)
    p.command("/mend status")
    return p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), timeout, "/mend status to answer")


@test
def profanity_sends_saves_and_never_uploads_plaintext():
    with tempfile.TemporaryDirectory() as root, upload_server() as srv:
        bob = TlsMend(srv, root, "bob", "phone")
        bob.publish()
        out = os.path.join(root, "to-bob.bin")
        data = os.urandom(200000)
        with open(out, "wb") as f:
            f.write(data)
        back = os.path.join(root, "photo.png")
        photo = os.urandom(3000)
        with open(back, "wb") as f:
            f.write(photo)
        p = profanity_trusting_the_test_cert(srv, "alice")
        with p, bob.listen("--save-dir", os.path.join(root, "bob-saved")) as bl:
            p.start()
            p.connect()
            mend_ready(p)
            wait_listening(bl)
            p.command("/mend on bob@localhost")
            p.say("bob@localhost", "files coming")
            bl.wait_line(lambda o: o.get("body") == "files coming", 30, "bob to get the text")

            # /mend sendfile: encrypted, uploaded, the link to bob's mend
            p.command(f"/mend sendfile {out}")
            m = bl.wait_line(lambda o: o.get("type") == "message" and o.get("file"), 60,
                             "bob to save alice's file")
            assert m["file"]["sha256"] == sha256(data), m
            p.wait_screen("me: file to-bob.bin (encrypted, uploaded)", 10, "the sent line")

            # a file from bob: a description and /mend save
            cp = bob.run("send", "alice@localhost", "--file", back)
            assert cp.returncode == 0, cp.stderr
            p.wait_screen(re.compile(r"file photo\.png from localhost: /mend save \d+"), 30,
                          "the file's description in alice's chat")
            n = re.findall(r"/mend save (\d+)", p.screen())[-1]
            p.command(f"/mend save {n}")
            saved = os.path.join(p.home, "Downloads", "photo.png")
            p.wait_screen(f"mend: saved {saved}", 30, "/mend save to answer")
            with open(saved, "rb") as f:
                assert f.read() == photo

            # a server that stalls: /mend save runs beside Profanity's window, which answers
            with HttpsFiles(srv.cert_path, srv.key_path) as web:
                iv, key = os.urandom(12), os.urandom(32)
                web.routes["/s/stalled.bin"] = (
                    "stall-after", AESGCM(key).encrypt(iv, os.urandom(50000), None), 1000)
                cp = bob.run("send", "alice@localhost",
                             f"aesgcm://localhost:{web.port}/s/stalled.bin#{iv.hex()}{key.hex()}")
                assert cp.returncode == 0, cp.stderr
                p.wait_screen(re.compile(r"file stalled\.bin from localhost: /mend save \d+"),
                              30, "the stalled file's description")
                n = re.findall(r"stalled\.bin from localhost: /mend save (\d+)", p.screen())[-1]
                p.command(f"/mend save {n}")
                wait_for(lambda: ("GET", "/s/stalled.bin") in web.requests, 10,
                         "the download of stalled.bin to start")
                p.command("/mend save 999999")
                p.wait_screen("mend: no such file", 5, "Profanity to answer during the download")

            # Profanity's own /sendfile in this mend-encrypted chat: stopped, nothing uploaded
            before = len(store_files(srv))
            slots = srv.log_text().count("Issuing upload slot to alice@localhost/prof")
            p.command(f"/sendfile {out}")
            p.wait_screen("Use /mend sendfile PATH", 20, "the warning about /sendfile")
            wait_for(lambda: "upload-blocked" in srv.log_text(), 20,
                     "the replaced slot request to reach the server")
            assert len(store_files(srv)) == before, "Profanity uploaded the file"
            assert srv.log_text().count("Issuing upload slot to alice@localhost/prof") == slots
            assert p.alive(), p.pane_status()


ROOM = "secret@conference.localhost"


def in_room_window(p, room=ROOM):
    """/join ROOM (Profanity's own join, focusing its window) and /mend on there."""
    p.command(f"/join {room} nick {p.user}")
    p.wait_screen(lambda s: room in p.title(s) and "You have joined the room" in s, 20,
                  f"{p.user} to be in {room}")
    p.command("/mend on")
    p.wait_screen(f"OMEMO encryption is on for {room}.", 20, "/mend on in the room")


def room_line(p, text, sender, timeout=30):
    """A line of the current (room) window from `sender` containing `text`."""
    return p.wait_screen(lambda s: next((m for m in p.messages(s) if text in m["text"] and
                                         m["sender"] == sender), None), timeout,
                         f"{text!r} from {sender} in the room window")


@test
def files_in_an_encrypted_room_window():
    """A file sent to the room by another member (the mend client) shows in the room window
    as a description, is saved at once in the folder of the setting files.save-dir, and
    /mend save there saves it byte-identical too; /mend sendfile in the room window reaches
    the member, who saves it byte-identical; the server keeps only ciphertext."""
    with tempfile.TemporaryDirectory() as root, upload_server(muc=True) as srv:
        srv.create_room("secret", owner="alice", members=("bob",),
                        config={"muc#roomconfig_roomname": ROOM})
        bob = TlsMend(srv, root, "bob", "phone")
        cp = bob.run("join", ROOM)
        assert cp.returncode == 0, cp.stderr
        photo = os.urandom(7000)
        back = os.path.join(root, "room-photo.png")
        with open(back, "wb") as f:
            f.write(photo)
        data = os.urandom(150000)
        out = os.path.join(root, "to-the-room.bin")
        with open(out, "wb") as f:
            f.write(data)
        auto = os.path.join(root, "alice-auto")
        p = profanity_trusting_the_test_cert(srv, "alice", save_dir=auto)
        with p, bob.listen("--save-dir", os.path.join(root, "bob-saved")) as bl:
            p.start()
            p.connect()
            mend_ready(p)
            wait_listening(bl)
            in_room_window(p)

            # a second process of bob's device (its own resource) sends the file to the room
            cp = TlsMend(srv, root, "bob", "phone-cli", device="phone").run(
                "send", ROOM, "--file", back, timeout=120)
            assert cp.returncode == 0, cp.stderr
            line = room_line(p, "file room-photo.png from localhost: /mend save", "bob")
            assert line["mark"] == "~", line
            assert "aesgcm://" not in p.screen(), p.screen()
            n = re.search(r"/mend save (\d+)", line["text"]).group(1)
            # files.save-dir: saved at once, and the line says where
            auto_saved = os.path.join(auto, "room-photo.png")
            p.wait_screen(f"mend: saved {auto_saved}", 10, "the automatic save's line")
            with open(auto_saved, "rb") as f:
                assert f.read() == photo
            p.command(f"/mend save {n}")
            saved = os.path.join(p.home, "Downloads", "room-photo.png")
            p.wait_screen(f"mend: saved {saved}", 30, "/mend save to answer in the room")
            with open(saved, "rb") as f:
                assert f.read() == photo

            # /mend sendfile in the room window: bob's mend saves it
            m = bl.mark()
            p.command(f"/mend sendfile {out}")
            got = bl.wait_line(lambda o: o.get("type") == "message" and o.get("file") and
                               o.get("room") == ROOM, 60, "bob to save alice's file", start=m)
            assert got["from"] == "alice@localhost", got
            assert got["file"]["sha256"] == sha256(data), got
            with open(got["file"]["path"], "rb") as f:
                assert f.read() == data
            room_line(p, "file to-the-room.bin (encrypted, uploaded)", "alice")
            assert not any(data[:64] in b or photo[:64] in b
                           for b in store_files(srv).values()), "plaintext on the server"
            assert p.alive(), p.pane_status()


def trusted_certs_dir(srv, root):
    """A CA directory holding the test certificate, for Profanity's /tls certpath (curl's
    CAPATH: hashed names)."""
    d = os.path.join(root, "certs")
    os.makedirs(d, exist_ok=True)
    shutil.copy(srv.cert_path, d)
    run(["openssl", "rehash", d], timeout=30, check=True)
    return d


@test
def profanitys_builtin_omemo_files_to_and_from_mend():
    """Interop with an implementation we did not write: Profanity's own OMEMO /sendfile
    (its aesgcm:// upload) is saved by mend byte-identical; a file sent by mend is opened by
    Profanity's own /url save."""
    with tempfile.TemporaryDirectory() as root, upload_server() as srv:
        bob = TlsMend(srv, root, "bob", "phone")
        bob.publish()
        out = os.path.join(root, "from-profanity.bin")
        data = os.urandom(120000)
        with open(out, "wb") as f:
            f.write(data)
        back = os.path.join(root, "from-mend.txt")
        text = os.urandom(5000)
        with open(back, "wb") as f:
            f.write(text)
        with Profanity(srv, "alice") as a, bob.listen() as bl:
            a.connect()
            a.omemo_setup()
            wait_listening(bl)
            a.command(f"/tls certpath set {trusted_certs_dir(srv, root)}")
            a.omemo_start("bob@localhost")
            m = bl.mark()
            a.command(f"/sendfile {out}")
            got = bl.wait_line(lambda o: o.get("type") == "message" and o.get("file"), 60,
                               "bob's mend to get Profanity's file link", start=m)
            assert got["file"]["name"] == "from-profanity.bin", got
            saved = os.path.join(root, "saved.bin")
            cp = run([MEND, "--json", "--tls", "trust-any", "fetch", got["body"], "--out", saved],
                     timeout=60)
            assert cp.returncode == 0, cp.stderr
            with open(saved, "rb") as f:
                assert f.read() == data, "Profanity's file differs once saved by mend"

            cp = TlsMend(srv, root, "bob", "phone-cli", device="phone").run(
                "send", "alice@localhost", "--file", back)
            assert cp.returncode == 0, cp.stderr
            link = [o for o in bob.lines(cp) if o["type"] == "file_sent"][0]["link"]
            a.wait_screen("from-mend.txt#", 30, "Profanity to show mend's file link")
            dest = os.path.join(root, "profanity-saved.txt")
            a.command(f"/url save {link} {dest}")

            def saved_by_profanity():
                try:
                    with open(dest, "rb") as f:
                        return f.read() == text
                except OSError:
                    return False
            wait_for(saved_by_profanity, 30, lambda: "Profanity's /url save to write the file"
                     f"\n{a.screen()}")


if __name__ == "__main__":
    main()
