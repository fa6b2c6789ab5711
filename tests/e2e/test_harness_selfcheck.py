#!/usr/bin/python3
"""Self-check of the e2e harness and the independent OMEMO peer (no mend involved):
a throwaway Prosody, alice on two python-omemo devices and bob on one, talking.

    /usr/bin/python3 tests/e2e/test_harness_selfcheck.py

TAP on stdout; exit 0 pass, 1 fail, 77 skip.
"""

import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (PYTHON, HarnessError, JsonLinesProcess, Prosody,  # noqa: E402
                     main, pid_alive, run, skip, start_omemo_peer, test, wait_for, wait_ready)

if not os.path.exists(PYTHON):
    skip(f"{PYTHON} not found")
elif not shutil.which("prosody"):
    skip("prosody is not installed")
else:
    cp = run([PYTHON, "-c", "import slixmpp, omemo, oldmemo.etree"], timeout=60)
    if cp.returncode != 0:
        skip("python3-slixmpp / python3-omemo / python3-oldmemo / python3-xmlschema missing: "
             + cp.stderr.strip().splitlines()[-1])


def expect_raises(exc_type, fn, contains):
    try:
        fn()
    except exc_type as e:
        assert contains in str(e), f"{exc_type.__name__} text lacks {contains!r}: {e}"
        return e
    raise AssertionError(f"expected {exc_type.__name__} containing {contains!r}")


@test
def wait_for_and_run():
    t0 = time.monotonic()
    expect_raises(AssertionError, lambda: wait_for(lambda: False, 0.3, "nothing"),
                  "timed out after 0.3s waiting for nothing")
    assert time.monotonic() - t0 < 2, "wait_for overran its limit"
    n = []
    assert wait_for(lambda: n.append(1) or len(n) >= 3 and "yes", 5, "three polls") == "yes"
    cp = run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (cp.returncode, cp.stdout, cp.stderr) == (3, "out\n", "err\n"), cp
    expect_raises(HarnessError, lambda: run(["sh", "-c", "echo partial; sleep 30"], timeout=0.5),
                  "timed out after 0.5s")
    assert run(["cat"], timeout=10, input="abc").stdout == "abc"


@test
def json_lines_process():
    script = ("import sys, json\n"
              "print(json.dumps({'type': 'hello'}), flush=True)\n"
              "print('not json', flush=True)\n"
              "for line in sys.stdin:\n"
              "    print(json.dumps({'type': 'echo', 'text': line.strip()}), flush=True)\n"
              "    print('to stderr', file=sys.stderr, flush=True)\n")
    with JsonLinesProcess([PYTHON, "-c", script], name="echo") as p:
        p.wait_line(lambda m: m["type"] == "hello", 10, "hello")
        p.wait_line(lambda m: m["type"] == "_raw" and m["text"] == "not json", 10, "raw line")
        p.send_line("ping 1")
        got = p.wait_line(lambda m: m["type"] == "echo", 10, "echo")
        assert got["text"] == "ping 1", got
        e = expect_raises(AssertionError,
                          lambda: p.wait_line(lambda m: m["type"] == "never", 0.3, "a line that never comes"),
                          "waiting for a line that never comes")
        assert '"echo"' in str(e) and "to stderr" in str(e), f"failure text lacks lines/stderr: {e}"
        pid = p.pid
    assert not pid_alive(pid), f"echo child {pid} still alive after stop"


def stream_features(port, host):
    """Open a c2s stream on 127.0.0.1:port; return the raw <stream:features> text."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((f"<?xml version='1.0'?><stream:stream to='{host}' xmlns='jabber:client' "
                   "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode())
        data = b""
        deadline = time.monotonic() + 10
        while b"</stream:features>" not in data:
            assert time.monotonic() < deadline, f"timed out after 10s waiting for stream features: {data!r}"
            chunk = s.recv(4096)
            assert chunk, f"server closed the stream: {data!r}"
            data += chunk
        return data.decode("utf-8", "replace")


@test
def prosody_busy_port_and_tls():
    # The first port offered is already taken: the harness must notice from
    # Prosody's log and retry on another.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    offered = iter([taken])
    real_free_port = harness.free_port
    harness.free_port = lambda: next(offered, None) or real_free_port()
    try:
        with Prosody(accounts={"alice": "pw"}, tls=True) as srv:
            assert srv.port != taken, "harness kept the busy port"
            assert f"Failed to open server port {taken}" in srv.log_text(), srv.log_tail()
            feats = stream_features(srv.port, srv.host)
            assert "urn:ietf:params:xml:ns:xmpp-tls" in feats, f"no STARTTLS offered: {feats}"
            assert "<required" not in feats, f"TLS must stay optional: {feats}"
            assert os.path.exists(srv.cert_path)
        with Prosody() as srv:
            feats = stream_features(srv.port, srv.host)
            assert "xmpp-tls" not in feats and "PLAIN" in feats and "SCRAM-SHA-1" in feats, feats
    finally:
        harness.free_port = real_free_port
        busy.close()


def start_peer(srv, tmp, user, resource):
    return start_omemo_peer(srv, user, resource, os.path.join(tmp, f"{user}-{resource}"))


def ready(peer):
    r = wait_ready(peer)
    assert isinstance(r["device"], int) and 1 <= r["device"] < 2 ** 31, r
    assert len(r["fingerprint"]) == 64, r
    return r


@test
def two_accounts_three_devices():
    tmp = tempfile.mkdtemp(prefix="mend-selfcheck-")
    peers = []
    try:
        with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
            prosody_pid = srv.pid
            assert pid_alive(prosody_pid)
            a1 = start_peer(srv, tmp, "alice", "pyA")
            b = start_peer(srv, tmp, "bob", "pyB")
            a2 = start_peer(srv, tmp, "alice", "pyA2")
            peers += [a1, b, a2]
            ra1, rb, ra2 = ready(a1), ready(b), ready(a2)
            assert ra1["jid"] == srv.jid("alice", "pyA"), ra1
            assert ra1["device"] != ra2["device"], "two alice devices share an id"
            assert ra1["fingerprint"] != ra2["fingerprint"]
            alice, bob = srv.jid("alice"), srv.jid("bob")
            # pep_notify: Prosody pushed each peer its own device list (+notify via caps).
            for r, p in ((ra1, a1), (rb, b), (ra2, a2)):
                assert r["pep_notify"], f"{p.name} got no PEP notification\n{p.describe()}"

            # alice/pyA -> bob: bob decrypts, alice/pyA2 gets a sent carbon it decrypts.
            marks = [p.mark() for p in peers]
            a1.send_line(f"send {bob} hello bob \u00e9")
            sent = a1.wait_line(lambda m: m["type"] in ("sent", "command_error"), 20, "alice's send")
            assert sent["type"] == "sent", sent
            assert set(sent["devices"]) == {rb["device"], ra2["device"]}, \
                f"expected bob's and alice's other device: {sent}"
            got = b.wait_line(lambda m: m["type"] in ("message", "error"), 20,
                              "bob to decrypt alice's message", start=marks[1])
            assert got["type"] == "message", got
            assert (got["from"], got["device"], got["body"], got["carbon"]) == \
                (alice, ra1["device"], "hello bob \u00e9", None), got
            assert got["prekey"] is True, f"first message should be a prekey message: {got}"
            carbon = a2.wait_line(lambda m: m["type"] in ("message", "error"), 20,
                                  "alice/pyA2 to decrypt the sent carbon", start=marks[2])
            assert carbon["type"] == "message", carbon
            assert (carbon["from"], carbon["to"], carbon["body"], carbon["carbon"]) == \
                (alice, bob, "hello bob \u00e9", "sent"), carbon

            # bob -> alice: both alice devices decrypt.
            marks = [p.mark() for p in peers]
            b.send_line(f"send {alice} hi alice")
            sent = b.wait_line(lambda m: m["type"] in ("sent", "command_error"), 20, "bob's send",
                               start=marks[1])
            assert sent["type"] == "sent", sent
            assert set(sent["devices"]) == {ra1["device"], ra2["device"]}, sent
            for i, p in ((0, a1), (2, a2)):
                got = p.wait_line(lambda m: m["type"] in ("message", "error") and m["from"] == bob,
                                  20, f"{p.name} to decrypt bob's reply", start=marks[i])
                assert got["type"] == "message" and got["body"] == "hi alice", got
                assert got["device"] == rb["device"], got

            # A forged carbon (outer from is bob, not alice's bare JID) is refused.
            marks = [p.mark() for p in peers]
            b.send_line(
                f"raw <message to='{alice}' type='chat'><received xmlns='urn:xmpp:carbons:2'>"
                f"<forwarded xmlns='urn:xmpp:forward:0'><message from='{srv.jid('mallory')}' "
                f"to='{alice}' type='chat'><body>forged</body></message></forwarded></received></message>")
            for i, p in ((0, a1), (2, a2)):
                f = p.wait_line(lambda m: m["type"] in ("forged_carbon", "plain"), 20,
                                f"{p.name} to refuse the forged carbon", start=marks[i])
                assert f["type"] == "forged_carbon", f

            # bob restarts from his data dir: same device, and the session still works.
            b.send_line("quit")
            assert b.wait_exit(15) == 0, b.describe()
            b.cleanup()
            b2 = start_peer(srv, tmp, "bob", "pyB")
            peers[1] = b2
            rb2 = ready(b2)
            assert (rb2["device"], rb2["fingerprint"]) == (rb["device"], rb["fingerprint"]), (rb, rb2)
            a1.send_line(f"send {bob} after restart")
            got = b2.wait_line(lambda m: m["type"] in ("message", "error"), 20,
                               "restarted bob to decrypt")
            assert got["type"] == "message" and got["body"] == "after restart", got
            assert got["prekey"] is False, f"session should have survived the restart: {got}"

            for p in peers:
                p.send_line("quit")
            for p in peers:
                assert p.wait_exit(15) == 0, p.describe()
                p.cleanup()
            peers = []
        # Prosody context left: its PID must be gone and its dir removed.
        wait_for(lambda: not pid_alive(prosody_pid), 10, f"prosody pid {prosody_pid} to exit")
        assert not os.path.exists(srv.dir), f"prosody dir {srv.dir} left behind"
    finally:
        for p in peers:
            p.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
