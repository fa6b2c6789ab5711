"""Encrypted files (XEP-0454 over XEP-0363) end to end: `mend send --file`, `mend listen
--save-dir` and `mend fetch` against a throwaway Prosody whose mod_http_file_share serves
HTTPS on loopback with the test certificate, and against a small HTTPS server of this test
for what Prosody would never do (16-byte IVs, wrong keys, tampered data, 404, a stall).

The independent decryptor is written here from the XEP-0454 text with python's
`cryptography`: the fragment is 24 or 32 hex digits of IV then 64 of key, the file is
AES-256-GCM with the 16-byte tag appended.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

from harness import run, test, skip, main, start_omemo_peer, wait_for, wait_ready
from mendcli import MEND, speaks_omemo2, wait_listening
from filesrv import (AESGCM, MIB, HttpsFiles, TlsMend, independent_decrypt, make_cert,
                     make_link, parse_link, sha256, store_files, upload_server)

if AESGCM is None:
    skip("python3-cryptography is not installed (Debian: python3-cryptography)")

def fetch(*args, tls="trust-any", timeout=60):
    """`mend fetch` (no account needed) -> CompletedProcess."""
    home = tempfile.mkdtemp(prefix="mend-fetch-home-")
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home + "/.config",
               XDG_DATA_HOME=home + "/.local/share")
    argv = [MEND, "--json"] + (["--tls", tls] if tls else []) + ["fetch", *args]
    try:
        return run(argv, timeout=timeout, env=env)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def json_lines(cp):
    import json
    return [json.loads(x) for x in cp.stdout.splitlines() if x.startswith("{")]


def listing(d):
    return sorted(os.listdir(d))


def random_file(root, name, size):
    """`size` random bytes in root/name -> (data, path)."""
    data, path = os.urandom(size), os.path.join(root, name)
    with open(path, "wb") as f:
        f.write(data)
    return data, path


def file_message(proc, name, start=0, timeout=60):
    return proc.wait_line(lambda o: o.get("type") == "message" and o.get("file") and
                          o["file"].get("name") == name, timeout,
                          f"{proc.name} to show the file {name}", start=start)


@test
def files_round_trip_cli_to_cli():
    """0 B, 1 KiB and 5 MiB from bob's mend to alice's, byte-identical; the server keeps
    ciphertext only; each link opens with the independent decryptor."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    try:
        files = {"empty.bin": b"", "kib.txt": os.urandom(1024), "photo.png": os.urandom(5 * MIB)}
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        save = os.path.join(root, "saved")
        with upload_server() as srv:
            alice = TlsMend(srv, root, "alice", "laptop")
            bob = TlsMend(srv, root, "bob", "phone")
            alice.publish()
            links = {}
            with alice.listen("--save-dir", save) as al:
                wait_listening(al)
                for name in files:
                    extra = ("a caption",) if name == "kib.txt" else ()
                    cp = bob.run("send", "alice@localhost", "--file", os.path.join(root, name),
                                 *extra, timeout=120)
                    assert cp.returncode == 0, f"send --file {name}: {cp.returncode}\n{cp.stderr}"
                    sent = [o for o in bob.lines(cp) if o["type"] == "file_sent"]
                    assert sent and sent[0]["link"].startswith("aesgcm://localhost:"), cp.stdout
                    links[name] = sent[0]["link"]
                    if name == "photo.png":
                        assert "100%" in cp.stderr, f"no progress for 5 MiB: {cp.stderr!r}"
                    else:
                        assert "%" not in cp.stderr, f"progress for a small file: {cp.stderr!r}"
                for name, data in files.items():
                    m = file_message(al, name)
                    f = m["file"]
                    assert f["size"] == len(data) and f["sha256"] == sha256(data), f
                    with open(f["path"], "rb") as fh:
                        assert fh.read() == data, f"{f['path']} differs from what bob sent"
                    assert os.path.dirname(f["path"]) == save, f["path"]
                    assert m["body"] == links[name], (m["body"], links[name])
                assert file_message(al, "photo.png")["file"].get("mime") == "image/png"
                al.wait_line(lambda o: o.get("type") == "message" and o["body"] == "a caption",
                             30, "the caption after the file")
            assert "Issuing upload slot" in srv.log_text()
            store = store_files(srv)
            assert sorted(len(b) for b in store.values()) == sorted(
                len(d) + 16 for d in files.values()), {k: len(v) for k, v in store.items()}
            for name, data in files.items():
                if data:
                    probe = data[:64]
                    assert not any(probe in blob for blob in store.values()), \
                        f"plaintext of {name} on the server's disk"
                # XEP-0454 read by a decryptor written from the XEP, not by mend
                assert independent_decrypt(links[name]) == data, name
            for link in links.values():
                assert len(parse_link(link)[1]) == 12, "mend sends 12-byte IVs"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def a_file_sent_to_a_room_is_saved_by_a_member():
    """send ROOM --file: the link goes to the room encrypted for its members (type
    groupchat), the caption after it; bob's listen saves the file byte-identical; the
    server keeps ciphertext only."""
    root = tempfile.mkdtemp(prefix="mend-files-room-")
    try:
        data, path = random_file(root, "plan.pdf", 3000)
        save = os.path.join(root, "saved")
        with upload_server(muc=True) as srv:
            room = srv.create_room("team", owner="alice", members=("bob",))
            alice = TlsMend(srv, root, "alice", "laptop")
            bob = TlsMend(srv, root, "bob", "phone")
            for m in (alice, bob):
                cp = m.run("join", room)
                assert cp.returncode == 0, f"join as {m.user}: {cp.returncode}\n{cp.stderr}"
            with bob.listen("--save-dir", save) as bl:
                wait_listening(bl)
                cp = alice.run("send", room, "--file", path, "the plan", timeout=120)
                assert cp.returncode == 0, f"send ROOM --file: {cp.returncode}\n{cp.stderr}"
                sent = [o for o in alice.lines(cp) if o["type"] == "file_sent"]
                assert sent and sent[0]["link"].startswith("aesgcm://localhost:"), cp.stdout
                m = file_message(bl, "plan.pdf")
                assert m.get("room") == room and m.get("from") == "alice@localhost", m
                f = m["file"]
                assert f["size"] == len(data) and f["sha256"] == sha256(data), f
                with open(f["path"], "rb") as fh:
                    assert fh.read() == data, f"{f['path']} differs from what alice sent"
                bl.wait_line(lambda o: o.get("type") == "message" and o.get("room") == room
                             and o["body"] == "the plan", 30, "the caption after the file")
            store = store_files(srv)
            assert [len(b) for b in store.values()] == [len(data) + 16], store.keys()
            assert not any(data[:64] in b for b in store.values()), "plaintext on the disk"
            assert independent_decrypt(sent[0]["link"]) == data
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def a_file_link_goes_both_ways_over_omemo2_in_a_room():
    """bob is python-omemo publishing OMEMO:2 only (python-twomemo): alice's send ROOM
    --file reaches him as OMEMO:2 whose SCE <content/> body is the aesgcm:// link, which
    opens (independent decryptor) to the file; the same link from bob in OMEMO:2 is taken
    by alice's listen --save-dir as a file and saved byte-identical."""
    if not speaks_omemo2():
        skip("this build of mend is legacy OMEMO only (libsignal-protocol-c)")
    root = tempfile.mkdtemp(prefix="mend-files-o2-")
    try:
        data, path = random_file(root, "notes.txt", 2500)
        save = os.path.join(root, "saved")
        with upload_server(muc=True) as srv:
            room = srv.create_room("team", owner="alice", members=("bob",))
            alice = TlsMend(srv, root, "alice", "laptop")
            cp = alice.run("join", room)
            assert cp.returncode == 0, f"join: {cp.returncode}\n{cp.stderr}"
            bob = start_omemo_peer(srv, "bob", "py", os.path.join(root, "bob-py"), omemo="2")
            with bob:
                wait_ready(bob)
                m = bob.mark()
                bob.send_line(f"join {room} bob")
                bob.wait_line(lambda o: o["type"] == "joined", 30, "bob to join", start=m)
                m = bob.mark()
                cp = alice.run("send", room, "--file", path, timeout=120)
                assert cp.returncode == 0, f"send ROOM --file: {cp.returncode}\n{cp.stderr}"
                link = [o for o in alice.lines(cp) if o["type"] == "file_sent"][0]["link"]
                got = bob.wait_line(lambda o: o["type"] == "message" and o.get("groupchat"),
                                    30, "bob to decrypt the file message", start=m)
                assert got["version"] == "2" and got["body"] == link, (got, link)
                assert got["content"] == ["{jabber:client}body"], got
                assert got["sce"]["to"] == room, got
                assert independent_decrypt(got["body"]) == data
                with alice.listen("--save-dir", save) as al:
                    wait_listening(al)
                    m = bob.mark()
                    bob.send_line(f"send {room} {link}")
                    bob.wait_line(lambda o: o["type"] in ("sent", "command_error"), 30,
                                  "bob to send the link", start=m)
                    f = file_message(al, "notes.txt")
                    assert f["version"] == "2" and f["from"] == "bob@localhost", f
                    assert f["file"]["sha256"] == sha256(data), f
                    with open(f["file"]["path"], "rb") as fh:
                        assert fh.read() == data
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def links_from_others_in_both_iv_lengths_and_bad_keys():
    """Links made by this test (16- and 12-byte IVs) sent by bob as text: alice's listen saves
    them; a wrong key is a clear line and leaves nothing in the folder."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    try:
        cert, key = make_cert(root)
        save = os.path.join(root, "saved")
        iv16, iv12, plain = os.urandom(3000), os.urandom(777), os.urandom(100)
        with HttpsFiles(cert, key) as web, upload_server() as srv:
            l16 = web.add("/f/sixteen.bin", iv16, iv_len=16)
            l12 = web.add("/f/twelve.txt", iv12, iv_len=12)
            good = web.add("/f/wrongkey.bin", plain)
            bad = good[:-64] + os.urandom(32).hex()
            alice = TlsMend(srv, root, "alice", "laptop")
            bob = TlsMend(srv, root, "bob", "phone")
            alice.publish()
            with alice.listen("--save-dir", save) as al:
                wait_listening(al)
                for link in (l16, l12, bad):
                    bob.send("alice@localhost", link)
                for name, data in (("sixteen.bin", iv16), ("twelve.txt", iv12)):
                    f = file_message(al, name)["file"]
                    assert f["sha256"] == sha256(data), f
                    with open(f["path"], "rb") as fh:
                        assert fh.read() == data
                f = file_message(al, "wrongkey.bin")["file"]
                assert "integrity check" in f.get("error", "") and "path" not in f, f
                assert "removed" in f["error"], f
                assert listing(save) == ["sixteen.bin", "twelve.txt"], listing(save)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def over_the_servers_limit_is_refused_before_uploading():
    root = tempfile.mkdtemp(prefix="mend-files-")
    try:
        path = os.path.join(root, "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(2000))
        with upload_server(limit=1000) as srv:
            bob = TlsMend(srv, root, "bob", "phone")
            TlsMend(srv, root, "alice", "laptop").publish()
            cp = bob.run("send", "alice@localhost", "--file", path)
            assert "upload.localhost" in srv.log_text(), "the upload service was never asked"
            assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
            assert "1000 bytes" in cp.stderr and "nothing was uploaded" in cp.stderr, cp.stderr
            assert not [o for o in bob.lines(cp) if o["type"] in ("file_sent", "sent")]
            assert store_files(srv) == {}
            # the service was asked (its limit came from disco#info), a slot never was
            assert "Issuing upload slot" not in srv.log_text(), "a slot was requested"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def an_upload_service_on_the_domain_itself_is_found():
    """XEP-0363 §3: the server's domain may be the service (no disco item); mend asks the
    domain's disco#info first, and the file goes through."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    try:
        path = os.path.join(root, "a.txt")
        with open(path, "wb") as f:
            f.write(b"on the domain itself")
        with upload_server(on_host=True) as srv:
            bob = TlsMend(srv, root, "bob", "phone")
            TlsMend(srv, root, "alice", "laptop").publish()
            cp = bob.run("send", "alice@localhost", "--file", path)
            assert cp.returncode == 0, (cp.returncode, cp.stdout, cp.stderr)
            sent = [o for o in bob.lines(cp) if o["type"] == "file_sent"]
            assert sent and independent_decrypt(sent[0]["link"]) == b"on the domain itself", \
                cp.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)


@test
def a_file_still_growing_is_sent_as_it_was_announced():
    """A log still being written: its size goes into the slot request, and exactly that
    much is encrypted and uploaded (more would not match the announced length and the
    tag would not check); the link opens to the file as it was, a prefix of what it is."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    stop = threading.Event()
    try:
        path = os.path.join(root, "growing.log")
        with open(path, "wb") as f:
            f.write(os.urandom(2 * 1024 * 1024))

        def grow():
            with open(path, "ab") as f:
                while not stop.is_set():
                    f.write(os.urandom(4096))
                    f.flush()
                    stop.wait(0.001)

        with upload_server() as srv:
            bob = TlsMend(srv, root, "bob", "phone")
            TlsMend(srv, root, "alice", "laptop").publish()
            writer = threading.Thread(target=grow, daemon=True)
            writer.start()
            cp = bob.run("send", "alice@localhost", "--file", path)
            stop.set()
            writer.join(10)
            assert cp.returncode == 0, (cp.returncode, cp.stdout, cp.stderr)
            sent = [o for o in bob.lines(cp) if o["type"] == "file_sent"]
            assert sent, cp.stdout
            got = independent_decrypt(sent[0]["link"])  # raises on a tag failure
            with open(path, "rb") as f:
                now = f.read()
            assert len(now) > len(got) >= 2 * 1024 * 1024, (len(now), len(got))
            assert got == now[:len(got)], "the upload is not the file as it was"
    finally:
        stop.set()
        shutil.rmtree(root, ignore_errors=True)


@test
def fetch_bad_input():
    """Tampered data, a wrong key, 404, hostile names, no overwrite, unverified TLS, a stall:
    each a clear line, nothing half-written."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    try:
        cert, key = make_cert(root)
        d = os.path.join(root, "dl")
        os.makedirs(d)
        with HttpsFiles(cert, key) as web:
            data = os.urandom(40000)
            good = web.add("/x/report.pdf", data)
            # tampered: one ciphertext byte flipped
            web.routes["/x/tampered.bin"] = bytearray(web.routes["/x/report.pdf"])
            web.routes["/x/tampered.bin"][100] ^= 1
            web.routes["/x/tampered.bin"] = bytes(web.routes["/x/tampered.bin"])
            _, iv, k = parse_link(good)
            for link, what in ((make_link(web.port, "/x/tampered.bin", iv, k), "tampered"),
                               (good[:-64] + os.urandom(32).hex(), "wrong key")):
                cp = fetch(link, "--save-dir", d)
                assert cp.returncode == 1 and "integrity check" in cp.stderr, (what, cp.stderr)
                assert "partial file was removed" in cp.stderr, cp.stderr
                assert listing(d) == [], (what, listing(d))

            cp = fetch(make_link(web.port, "/x/missing.bin", iv, k), "--save-dir", d)
            assert cp.returncode == 1 and "HTTP status 404" in cp.stderr, cp.stderr
            assert listing(d) == []

            # hostile names stay in the folder
            outside = listing(root)
            for path, name in (("/x/..%2F..%2Fevil.txt", "evil.txt"),
                               ("/x/%2Ftmp%2Fabs.txt", "abs.txt"),
                               ("/x/%2e%2e", None)):
                link = web.add(path, b"hostile")
                cp = fetch(link, "--save-dir", d)
                assert cp.returncode == 0, (path, cp.stderr)
                saved = json_lines(cp)[0]["path"]
                assert os.path.dirname(saved) == d, saved
                if name:
                    assert os.path.basename(saved) == name, saved
            assert listing(root) == outside, listing(root)
            assert sorted(listing(d)) == ["abs.txt", "evil.txt", "file"], listing(d)

            # never overwrite
            cp1, cp2 = fetch(good, "--save-dir", d), fetch(good, "--save-dir", d)
            names = [os.path.basename(json_lines(c)[0]["path"]) for c in (cp1, cp2)]
            assert names == ["report.pdf", "report-1.pdf"], names
            assert json_lines(cp1)[0]["sha256"] == sha256(data)
            assert json_lines(cp1)[0]["mime"] == "application/pdf"
            out = os.path.join(root, "kept.txt")
            with open(out, "w") as f:
                f.write("mine")
            cp = fetch(good, "--out", out)
            assert cp.returncode == 1 and "exists already" in cp.stderr, cp.stderr
            with open(out) as f:
                assert f.read() == "mine"
            # --out an existing folder (with or without '/'): the link's name in it, reported
            o = os.path.join(root, "outdir")
            os.makedirs(o)
            for arg, name in ((o, "report.pdf"), (o + "/", "report-1.pdf")):
                cp = fetch(good, "--out", arg)
                assert cp.returncode == 0, (arg, cp.stderr)
                saved = json_lines(cp)[0]["path"]
                assert saved == os.path.join(o, name), (arg, saved)
                with open(saved, "rb") as f:
                    assert f.read() == data, saved
            assert sorted(listing(o)) == ["report-1.pdf", "report.pdf"], listing(o)

            # certificates are verified unless --tls trust-any says otherwise
            before = listing(d)
            for tls in (None, "required", "off"):
                cp = fetch(good, "--save-dir", d, tls=tls)
                assert cp.returncode == 1 and "certificate" in cp.stderr, (tls, cp.stderr)
            assert listing(d) == before

            # a server that stalls after 10 bytes
            web.routes["/x/slow.bin"] = "stall"
            t0 = time.monotonic()
            cp = fetch(make_link(web.port, "/x/slow.bin", iv, k), "--save-dir", d,
                       "--timeout", "2")
            took = time.monotonic() - t0
            assert cp.returncode == 1 and "did not answer for 2 seconds" in cp.stderr, cp.stderr
            assert took < 20, took
            assert listing(d) == before, listing(d)

            cp = fetch("aesgcm://127.0.0.1/x#" + "ab" * 20, "--save-dir", d)
            assert cp.returncode == 2 and "not an encrypted file link" in cp.stderr, cp.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def open_files_in(pid, d, min_size):
    """A file the process `pid` holds open in folder d with at least min_size bytes (its
    /proc/PID/fd link, "(deleted)" for one without a name), or None."""
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, fd))
            size = os.stat(os.path.join(fds, fd)).st_size
        except OSError:
            continue
        if target.startswith(d + "/") and size >= min_size:
            return target
    return None


@test
def a_stalled_download_never_shows_plaintext_in_the_folder():
    """While a download stalls half-way, the plaintext received so far is in a file of the
    save folder that has no name: the folder lists only what it held before; after the
    process is killed (kill -9, no clean-up), the folder is still exactly as before."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    home = os.path.join(root, "home")
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home + "/.config",
               XDG_DATA_HOME=home + "/.local/share")
    try:
        cert, key = make_cert(root)
        d = os.path.join(root, "dl")
        os.makedirs(d)
        with open(os.path.join(d, "kept.txt"), "w") as f:
            f.write("mine")
        with HttpsFiles(cert, key) as web:
            link = web.add("/x/half.bin", os.urandom(300000))
            web.routes["/x/half.bin"] = ("stall-after", web.routes["/x/half.bin"], 200000)
            proc = subprocess.Popen([MEND, "--json", "--tls", "trust-any", "fetch", link,
                                     "--save-dir", d, "--timeout", "60"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                held = wait_for(lambda: open_files_in(proc.pid, d, 150000), 30,
                                "mend fetch to have written 150 kB of plaintext")
                assert listing(d) == ["kept.txt"], f"{listing(d)} (the fetch holds {held})"
            finally:
                proc.kill()
                proc.wait()
            assert listing(d) == ["kept.txt"], listing(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)



@test
def listen_stops_on_sigterm_during_a_download():
    """mend listen --save-dir saving a file from a server that stalls: SIGTERM stops it at
    once (the download gives up, the folder stays as it was), not when the stall times out."""
    root = tempfile.mkdtemp(prefix="mend-files-")
    try:
        cert, key = make_cert(root)
        save = os.path.join(root, "saved")
        os.makedirs(save)
        with HttpsFiles(cert, key) as web, upload_server() as srv:
            link = web.add("/s/slow.bin", os.urandom(300000))
            web.routes["/s/slow.bin"] = ("stall-after", web.routes["/s/slow.bin"], 100000)
            alice = TlsMend(srv, root, "alice", "laptop")
            bob = TlsMend(srv, root, "bob", "phone")
            alice.publish()
            with alice.listen("--save-dir", save) as al:
                wait_listening(al)
                bob.send("alice@localhost", link)
                wait_for(lambda: open_files_in(al.pid, save, 50000), 30,
                         "alice's listen to be saving the file")
                t0 = time.monotonic()
                al.proc.terminate()
                try:
                    al.proc.wait(10)
                except subprocess.TimeoutExpired:
                    raise AssertionError("listen did not stop within 10 s of SIGTERM "
                                         "during a stalled download")
                took = time.monotonic() - t0
                assert took < 10, took
            assert listing(save) == [], listing(save)
    finally:
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
