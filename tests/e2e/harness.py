"""End-to-end test harness for mend: a throwaway Prosody on loopback, child
processes that speak JSON lines, bounded waits, and a tiny TAP test runner.

Run with Debian's interpreter (/usr/bin/python3). Standard library only.

    from harness import Prosody, JsonLinesProcess, wait_for, run, test, skip, main

    @test
    def alice_talks_to_bob():
        with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
            ...

    if __name__ == "__main__":
        main()

Every wait has a condition and a time limit; every failure names what it
waited for and shows the relevant log tail.  Processes are stopped by the PID
this module started, never by name.
"""

import atexit
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET

__all__ = [
    "Prosody", "JsonLinesProcess", "wait_for", "run", "free_port", "tail", "pid_alive",
    "start_omemo_peer", "wait_ready", "test", "skip", "Skip", "main", "HarnessError", "PYTHON", "HERE",
    "XmppClient",
]

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))

# Everything this module started, so that an interrupted run still cleans up.
_live_children = set()


class HarnessError(Exception):
    """A harness step failed (not an assertion about the system under test)."""


def tail(text, lines=40):
    """The last `lines` lines of `text`, indented for failure messages."""
    if text is None:
        return "    (nothing)"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    rows = text.rstrip("\n").splitlines()[-lines:]
    if not rows:
        return "    (empty)"
    return "\n".join("    " + r for r in rows)


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate() every `interval` s; return its first truthy value.

    Raises AssertionError("timed out after {timeout}s waiting for {what}").
    `what` may be a callable returning a string (evaluated only on failure,
    so it can include a log tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            desc = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {desc}")
        time.sleep(interval)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, timeout, env=None, input=None, cwd=None, check=False):
    """Run argv to completion -> CompletedProcess (text stdout/stderr).

    On timeout the child is killed and HarnessError carries both outputs.
    With check=True a non-zero exit raises HarnessError as well.
    """
    try:
        cp = subprocess.run(argv, input=input, capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=cwd,
                            stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(
            f"timed out after {timeout}s running {argv!r}\n"
            f"  stdout:\n{tail(e.stdout)}\n  stderr:\n{tail(e.stderr)}") from None
    if check and cp.returncode != 0:
        raise HarnessError(
            f"{argv!r} exited {cp.returncode}\n"
            f"  stdout:\n{tail(cp.stdout)}\n  stderr:\n{tail(cp.stderr)}")
    return cp


def _stop_pid(proc, timeout=10.0):
    """SIGTERM this Popen's PID, wait up to `timeout`, then SIGKILL. -> returncode."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    _live_children.discard(proc)
    return proc.returncode


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


@atexit.register
def _cleanup_children():
    for proc in list(_live_children):
        try:
            _stop_pid(proc, timeout=3)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# --------------------------------------------------------------------------
# Prosody
# --------------------------------------------------------------------------

DEFAULT_CONTACTS = ("alice", "bob", "carol", "dave", "eve", "frank", "mallory")


class Prosody:
    """A throwaway Prosody 0.12 on 127.0.0.1:<free port>.

        with Prosody(accounts={"alice": "pw"}) as srv:
            srv.register("bob", "pw")
            srv.host, srv.port, srv.jid("bob"), srv.log_text()

    All accounts named in `contacts` (default: alice bob carol dave eve frank
    mallory) plus those in `accounts` share one roster group, so every test
    account has every other as a contact with subscription "both" (Profanity
    publishes its keys with the default presence access model).  Accounts
    registered after start() that are not in that set are NOT shared contacts.

    tls=False (default): mod_tls is not loaded, so no STARTTLS is offered and
    clients go plain on loopback (PLAIN auth in clear is allowed).
    tls=True: a self-signed certificate for `host` is made with openssl and
    STARTTLS is offered but not required; srv.cert_path names the PEM.

    muc=True: a group chat service (XEP-0045) at srv.muc_host ("conference." + host),
    Prosody's `muc` component with `muc_mam` (XEP-0313 on room JIDs, archive kept for
    ever); srv.create_room() makes and configures rooms, srv.set_affiliation() changes
    member lists, srv.room_features() reads a room's disco#info.
    """

    def __init__(self, host="localhost", accounts=None, contacts=DEFAULT_CONTACTS,
                 tls=False, extra_config="", start_timeout=20.0, keep_dir=False,
                 extra_modules=(), muc=False, muc_modules=()):
        self.host = host
        self.muc_modules = ["muc_mam"] + list(muc_modules)  # the MUC component's modules
        self.muc_host = f"conference.{host}" if muc else None
        self.port = None
        self.pid = None
        self.tls = tls
        self.extra_config = extra_config
        self.extra_modules = list(extra_modules)  # more modules_enabled (see plugin_paths)
        self.start_timeout = start_timeout
        self.keep_dir = keep_dir or bool(os.environ.get("MEND_E2E_KEEP"))
        self._accounts = dict(accounts or {})
        self._contacts = list(dict.fromkeys(list(contacts) + list(self._accounts)))
        self.dir = None
        self.config_path = None
        self.log_path = None
        self.cert_path = None
        self.key_path = None
        self._proc = None
        self._log_offset = 0

    # -- paths and config ---------------------------------------------------

    def jid(self, user, resource=None):
        j = f"{user}@{self.host}"
        return f"{j}/{resource}" if resource else j

    @property
    def address(self):
        """'127.0.0.1:PORT' as omemo_peer.py --server wants it."""
        return f"127.0.0.1:{self.port}"

    def _write_config(self):
        d = self.dir
        lua = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
        modules = ["roster", "saslauth", "disco", "carbons", "pep", "private",
                   "blocklist", "vcard4", "vcard_legacy", "version", "uptime",
                   "time", "ping", "register", "mam", "offline", "smacks",
                   "csi_simple", "groups", "posix"] + self.extra_modules
        if self.tls:
            modules.append("tls")
        tls_lines = ""
        if self.tls:
            tls_lines = (f"ssl = {{ certificate = {lua(self.cert_path)};"
                         f" key = {lua(self.key_path)} }}\n")
        with open(os.path.join(d, "groups.txt"), "w") as f:
            f.write("[Testers]\n")
            for user in self._contacts:
                f.write(f"{user}@{self.host}={user}\n")
        cfg = f"""-- generated by tests/e2e/harness.py
run_as_root = {"true" if os.geteuid() == 0 else "false"}
daemonize = false
data_path = {lua(os.path.join(d, "data"))}
pidfile = {lua(os.path.join(d, "prosody.pid"))}
log = {{ debug = {lua(self.log_path)} }}
plugin_paths = {{ }}
admins = {{ }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ {"; ".join(lua(m) for m in modules)} }}
modules_disabled = {{ "s2s"; "s2s_auth_certs"; "admin_shell"; "admin_telnet"; "admin_socket" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
archive_expires_after = "never"
default_archive_policy = true
max_archive_query_results = 1000
groups_file = {lua(os.path.join(d, "groups.txt"))}
certificates = {lua(os.path.join(d, "certs"))}
{tls_lines}{self.extra_config}
VirtualHost {lua(self.host)}
{self._muc_config(lua)}"""
        with open(self.config_path, "w") as f:
            f.write(cfg)

    def _muc_config(self, lua):
        """The MUC component (XEP-0045) with its archive (XEP-0313 on the room JID).
        New rooms stay locked until their owner submits the configuration form (§10.1.2)."""
        if not self.muc_host:
            return ""
        return (f"Component {lua(self.muc_host)} \"muc\"\n"
                f"    modules_enabled = {{ {'; '.join(lua(m) for m in self.muc_modules)} }}\n"
                "    restrict_room_creation = false\n"
                "    muc_room_locking = true\n"
                "    muc_log_by_default = true\n"
                "    muc_log_expires_after = \"never\"\n"
                "    muc_room_default_history_length = 20\n")

    def _make_cert(self):
        if not shutil.which("openssl"):
            raise HarnessError("tls=True needs openssl, which is not installed")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "2", "-subj", f"/CN={self.host}",
             "-addext", f"subjectAltName=DNS:{self.host}",
             "-keyout", self.key_path, "-out", self.cert_path],
            timeout=60, check=True)
        os.chmod(self.key_path, 0o600)

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if self._proc is not None:
            raise HarnessError("Prosody already started")
        for exe in ("prosody", "prosodyctl"):
            if not shutil.which(exe):
                raise HarnessError(f"{exe} not found (apt-get install prosody)")
        self.dir = tempfile.mkdtemp(prefix="mend-prosody-")
        os.makedirs(os.path.join(self.dir, "data"), mode=0o750)
        os.makedirs(os.path.join(self.dir, "certs"), mode=0o750)
        self.config_path = os.path.join(self.dir, "prosody.cfg.lua")
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.cert_path = os.path.join(self.dir, "certs", f"{self.host}.crt")
        self.key_path = os.path.join(self.dir, "certs", f"{self.host}.key")
        if self.tls:
            self._make_cert()
        else:
            self.cert_path = self.key_path = None
        # Accounts given up front are made before the server starts.
        self.port = free_port()
        self._write_config()
        for user, pw in self._accounts.items():
            self.register(user, pw)
        errors = []
        for attempt in range(5):
            if attempt:
                self.port = free_port()
                self._write_config()
            ok, why = self._start_once()
            if ok:
                return self
            errors.append(why)
        raise HarnessError("Prosody did not start after 5 tries:\n" + "\n".join(errors))

    def _start_once(self):
        """Start prosody; True once its log says c2s listens on our port."""
        with open(self.log_path, "a") as f:
            self._log_offset = f.tell()
        out = open(os.path.join(self.dir, "prosody.stdout"), "ab")
        try:
            self._proc = subprocess.Popen(
                ["prosody", "-F", "--config", self.config_path],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True)
        finally:
            out.close()
        _live_children.add(self._proc)
        self.pid = self._proc.pid
        listening = f"Activated service 'c2s' on [127.0.0.1]:{self.port}"
        failed = f"Failed to open server port {self.port}"

        def state():
            log = self._new_log()
            if listening in log:
                return "up"
            if failed in log:
                return "port"
            if self._proc.poll() is not None:
                return "exited"
            return None

        try:
            result = wait_for(state, self.start_timeout,
                              f"prosody to listen on 127.0.0.1:{self.port}")
        except AssertionError as e:
            result = None
            why = str(e)
        if result == "up":
            return True, ""
        if result == "port":
            why = f"port {self.port} was taken"
        elif result == "exited":
            why = f"prosody exited with status {self._proc.returncode}"
        why += "\n" + self._diagnostics()
        _stop_pid(self._proc)
        self._proc = None
        self.pid = None
        if result == "port":
            return False, why
        raise HarnessError(why)

    def _new_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(self._log_offset)
                return f.read()
        except FileNotFoundError:
            return ""

    def _diagnostics(self, lines=40):
        out = ""
        try:
            with open(os.path.join(self.dir, "prosody.stdout"), errors="replace") as f:
                out = f.read()
        except OSError:
            pass
        return (f"  prosody log ({self.log_path}):\n{tail(self.log_text(), lines)}\n"
                f"  prosody stdout/stderr:\n{tail(out, 15)}")

    def log_text(self):
        """The whole prosody log so far ('' if none)."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return tail(self.log_text(), lines)

    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def halt(self, timeout=5.0):
        """Stop the server process (by PID) but keep its data: restart() resumes it."""
        self._stop_process(timeout)

    def restart(self):
        """Start the halted server again on its data (another port if ours was taken)."""
        if self._proc is not None:
            raise HarnessError("Prosody is running")
        errors = []
        for attempt in range(5):
            if attempt:
                self.port = free_port()
                self._write_config()
            ok, why = self._start_once()
            if ok:
                return self
            errors.append(why)
        raise HarnessError("Prosody did not restart after 5 tries:\n" + "\n".join(errors))

    def stop(self, timeout=5.0):
        """Stop THE prosody this object started (by PID); remove the temp dir.

        SIGTERM, then SIGKILL after `timeout` s -- or at once if Prosody's
        shutdown hits a Lua error: 0.12 has a race where a SIGTERM handled
        while a client connection is being closed makes the shutdown fail
        with a traceback ("error in async handler") and the server never
        exits.  A normal stop takes at most about 1 s.
        """
        self._stop_process(timeout)
        if self.dir and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            sys.stderr.write(f"# kept prosody dir {self.dir}\n")

    def _stop_process(self, timeout):
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                mark = len(self.log_text())
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    wait_for(lambda: proc.poll() is not None
                             or "traceback" in self.log_text()[mark:],
                             timeout, "prosody to exit")
                except AssertionError:
                    pass
            _stop_pid(proc, timeout=0.5)
            self._proc = None

    # -- accounts ---------------------------------------------------------------

    def register(self, user, password, timeout=30.0):
        """Create user@host (works with the server up or down)."""
        if self.config_path is None:
            # Not started yet: remember it, start() registers it.
            self._accounts[user] = password
            if user not in self._contacts:
                self._contacts.append(user)
            return self.jid(user)
        cp = run(["prosodyctl", "--config", self.config_path, "register",
                  user, self.host, password], timeout=timeout, cwd=self.dir)
        if cp.returncode != 0:
            raise HarnessError(
                f"prosodyctl register {user}@{self.host} exited {cp.returncode}\n"
                f"  stdout:\n{tail(cp.stdout)}\n  stderr:\n{tail(cp.stderr)}\n"
                + (self._diagnostics() if self.running() else ""))
        if self.running() and user not in self._contacts:
            sys.stderr.write(f"# note: {user} registered after start is not in the shared roster\n")
        return self.jid(user)

    # -- group chats (muc=True) -------------------------------------------------

    def room_jid(self, name):
        """name@conference.HOST (a bare room JID passes through)."""
        if "@" in name:
            return name
        if not self.muc_host:
            raise HarnessError("this Prosody has no group chat service: use Prosody(muc=True)")
        return f"{name}@{self.muc_host}"

    def _user_jid(self, who):
        return who if "@" in who else self.jid(who)

    def client(self, user, resource=None, password=None, timeout=10.0):
        """A logged-in XmppClient as user (password from `accounts`, else "pw")."""
        return XmppClient(self, user, password or self._accounts.get(user, "pw"),
                          resource or f"setup-{uuid.uuid4().hex[:8]}", timeout)

    def create_room(self, name, owner="alice", members=(), admins=(), members_only=True,
                    whois="anyone", persistent=True, archive=True, config=None):
        """Create room `name` as `owner` and configure it (XEP-0045 §10.1: the owner
        submits the room configuration form, then sets affiliations, §9.3/§10.3), then the
        owner's set-up session leaves. Defaults: what OMEMO needs (members-only, real JIDs
        visible to anyone, persistent, archived). members_only=False makes an open room,
        whois="moderators" a semi-anonymous one. `config`: more form fields {var: value}.
        Checks the room's disco#info afterwards; returns the room's JID."""
        room = self.room_jid(name)
        fields = {"muc#roomconfig_persistentroom": persistent,
                  "muc#roomconfig_membersonly": members_only,
                  "muc#roomconfig_whois": whois,
                  "muc#roomconfig_enablearchiving": archive}
        fields.update(config or {})
        with self.client(owner) as x:
            nick = f"{owner}-setup-{uuid.uuid4().hex[:4]}"
            x.join_room(room, nick)
            x.configure_room(room, fields)
            for who in admins:
                x.set_affiliation(room, self._user_jid(who), "admin")
            for who in members:
                x.set_affiliation(room, self._user_jid(who), "member")
            x.leave_room(room, nick)
            features = x.disco_features(room)
        want = {"muc_persistent" if persistent else "muc_temporary",
                "muc_membersonly" if members_only else "muc_open",
                "muc_nonanonymous" if whois == "anyone" else "muc_semianonymous"}
        if want - features:
            raise HarnessError(f"room {room} lacks {sorted(want - features)} after its "
                               f"configuration; it has {sorted(features)}\n{self._diagnostics()}")
        return room

    def set_affiliation(self, room, who, affiliation, actor="alice"):
        """Give `who` (user or JID) `affiliation` in `room` (member, admin, owner, outcast,
        none) as `actor`, an owner or admin (XEP-0045 §9.3, §9.4, §10.3)."""
        room = self.room_jid(room)
        with self.client(actor) as x:
            x.set_affiliation(room, self._user_jid(who), affiliation)

    def affiliations(self, room, affiliation="member", actor="alice"):
        """The bare JIDs with `affiliation` in `room`, as `actor` sees them (§9.5)."""
        with self.client(actor) as x:
            return x.affiliations(self.room_jid(room), affiliation)

    def room_features(self, room, user="alice"):
        """The room's disco#info features (set of strings), asked by `user`."""
        with self.client(user) as x:
            return x.disco_features(self.room_jid(room))


# --------------------------------------------------------------------------
# A minimal XMPP client for test set-up (standard library only)
# --------------------------------------------------------------------------

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"


def _xa(value):
    """An XML attribute value, quoted."""
    return "'" + (str(value).replace("&", "&amp;").replace("<", "&lt;")
                  .replace("'", "&apos;").replace('"', "&quot;")) + "'"


def _xt(value):
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class XmppClient:
    """A blocking XMPP client for test set-up on the harness's Prosody: SASL PLAIN in
    clear, a bound resource, no presence unless asked. Received stanzas are parsed
    (xml.etree, tags as '{jabber:client}iq') and kept until a wait takes them.

        with srv.client("alice") as x:              # or XmppClient(srv, "alice", "pw")
            reply = x.iq("get", room, f"<query xmlns='{NS_DISCO_INFO}'/>")
            x.join_room(room, "nick"); x.configure_room(room, {...}); x.leave_room(room, "nick")

    Every wait has a limit (`timeout`, 10 s) and fails with HarnessError naming what it
    waited for and what came instead.
    """

    def __init__(self, srv, user, password, resource="setup", timeout=10.0):
        self.bare = srv.jid(user)
        self.host = srv.host
        self.timeout = timeout
        self.full = None
        self.stanzas = []           # received top-level elements not yet taken
        self._seen = []             # short descriptions of everything received (failures)
        self._n = 0
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
        try:
            self._login(user, password, resource)
        except BaseException:
            self.sock.close()
            raise

    def _login(self, user, password, resource):
        self._open()
        feats = self.next(lambda e: e.tag == f"{{{NS_STREAMS}}}features", "stream features")
        mechs = [m.text for m in feats.iter(f"{{{NS_SASL}}}mechanism")]
        if "PLAIN" not in mechs:
            raise HarnessError(f"no SASL PLAIN offered to {self.bare} (got {mechs})")
        creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
        got = self.next(lambda e: e.tag in (f"{{{NS_SASL}}}success", f"{{{NS_SASL}}}failure"),
                        "the SASL result")
        if got.tag.endswith("failure"):
            raise HarnessError(f"login as {self.bare} refused: {ET.tostring(got).decode()}")
        self._open()
        self.next(lambda e: e.tag == f"{{{NS_STREAMS}}}features", "stream features after login")
        reply = self.iq("set", None, f"<bind xmlns='{NS_BIND}'><resource>{_xt(resource)}"
                                     "</resource></bind>")
        self.full = reply.findtext(f".//{{{NS_BIND}}}jid")

    def _open(self):
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root = None
        self.send(f"<?xml version='1.0'?><stream:stream to={_xa(self.host)} "
                  f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}' version='1.0'>")

    def send(self, xml):
        self.sock.sendall(xml.encode("utf-8"))

    def _read(self, deadline, what):
        left = deadline - time.monotonic()
        if left <= 0:
            raise HarnessError(f"{self.bare}: timed out after {self.timeout}s waiting for "
                               f"{what}; received:\n{tail(chr(10).join(self._seen), 15)}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            raise HarnessError(f"{self.bare}: the server closed the stream while waiting for "
                               f"{what}; received:\n{tail(chr(10).join(self._seen), 15)}")
        self._parser.feed(data)
        for event, elem in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = elem
                continue
            self._depth -= 1
            if self._depth == 1:
                self.stanzas.append(elem)
                self._seen.append(ET.tostring(elem, encoding="unicode")[:300])
                self._root.remove(elem)

    def next(self, pred, what, timeout=None):
        """Take the first received stanza for which pred(element) is true (waiting)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, e in enumerate(self.stanzas):
                if pred(e):
                    return self.stanzas.pop(i)
            self._read(deadline, what)

    def iq(self, kind, to, payload, check=True):
        """Send <iq type=kind to=to>payload</iq>; the reply element. With check, an error
        reply raises HarnessError."""
        self._n += 1
        iq_id = f"h{self._n}-{uuid.uuid4().hex[:6]}"
        to_attr = f" to={_xa(to)}" if to else ""
        self.send(f"<iq type={_xa(kind)} id={_xa(iq_id)}{to_attr}>{payload}</iq>")
        reply = self.next(lambda e: e.tag == f"{{{NS_CLIENT}}}iq" and e.get("id") == iq_id
                          and e.get("type") in ("result", "error"), f"the reply to {kind} {payload[:80]}")
        if check and reply.get("type") == "error":
            raise HarnessError(f"{self.bare}: {kind} {payload[:200]} to {to} failed: "
                               f"{ET.tostring(reply, encoding='unicode')}")
        return reply

    def disco_features(self, jid):
        reply = self.iq("get", jid, f"<query xmlns='{NS_DISCO_INFO}'/>")
        return {f.get("var") for f in reply.iter(f"{{{NS_DISCO_INFO}}}feature")}

    # -- XEP-0045 -----------------------------------------------------------------

    def join_room(self, room, nick):
        """Enter `room` as `nick` (no history); the self-presence (status 110) element."""
        occupant = f"{room}/{nick}"
        self.send(f"<presence to={_xa(occupant)}><x xmlns='{NS_MUC}'><history maxstanzas='0'/>"
                  "</x></presence>")

        def ours(e):
            if e.tag != f"{{{NS_CLIENT}}}presence" or e.get("from") != occupant:
                return False
            return e.get("type") == "error" or any(
                s.get("code") == "110" for s in e.iter(f"{{{NS_MUC_USER}}}status"))
        pres = self.next(ours, f"our presence in {occupant}")
        if pres.get("type") == "error":
            raise HarnessError(f"{self.bare} cannot enter {occupant}: "
                               f"{ET.tostring(pres, encoding='unicode')}")
        return pres

    def leave_room(self, room, nick):
        occupant = f"{room}/{nick}"
        self.send(f"<presence to={_xa(occupant)} type='unavailable'/>")
        self.next(lambda e: e.tag == f"{{{NS_CLIENT}}}presence" and e.get("from") == occupant
                  and e.get("type") == "unavailable", f"leaving {occupant}")

    def configure_room(self, room, fields):
        """Submit the room configuration form (§10.2) with `fields` changed ({var: value};
        bool -> "1"/"0", list -> several values); the other fields keep their values.
        A field the form does not have raises HarnessError."""
        form = self.iq("get", room, f"<query xmlns='{NS_MUC_OWNER}'/>").find(
            f".//{{{NS_DATA}}}x")
        if form is None:
            raise HarnessError(f"{room} sent no configuration form")
        values = {}
        for f in form.iter(f"{{{NS_DATA}}}field"):
            if f.get("var") and f.get("type") != "fixed":
                values[f.get("var")] = [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
        unknown = set(fields) - set(values)
        if unknown:
            raise HarnessError(f"{room}'s configuration form has no {sorted(unknown)}; "
                               f"it has {sorted(values)}")
        for var, v in fields.items():
            if isinstance(v, bool):
                v = "1" if v else "0"
            values[var] = [str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)]
        body = "".join(f"<field var={_xa(var)}>" + "".join(f"<value>{_xt(x)}</value>" for x in vs)
                       + "</field>" for var, vs in values.items())
        self.iq("set", room, f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='{NS_DATA}' "
                             f"type='submit'>{body}</x></query>")

    def set_affiliation(self, room, jid, affiliation):
        self.iq("set", room, f"<query xmlns='{NS_MUC_ADMIN}'><item affiliation={_xa(affiliation)} "
                             f"jid={_xa(jid)}/></query>")

    def affiliations(self, room, affiliation):
        reply = self.iq("get", room, f"<query xmlns='{NS_MUC_ADMIN}'><item "
                                     f"affiliation={_xa(affiliation)}/></query>")
        return sorted(i.get("jid") for i in reply.iter(f"{{{NS_MUC_ADMIN}}}item"))

    def close(self):
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --------------------------------------------------------------------------
# Child processes that print JSON lines
# --------------------------------------------------------------------------

class JsonLinesProcess:
    """A child process whose stdout is JSON lines, read on a thread.

        with JsonLinesProcess([PYTHON, "omemo_peer.py", ...], name="bob") as p:
            ready = p.wait_line(lambda m: m["type"] == "ready", 30, "bob ready")
            p.send_line("send alice@localhost hi")

    Non-JSON stdout lines are kept as {"type": "_raw", "text": LINE}.
    stderr goes to a file (p.stderr_path) so it can never block the child.
    `context`: an optional callable returning text appended to every failure
    message (e.g. context=srv.log_tail to show Prosody's log as well).
    """

    def __init__(self, argv, env=None, cwd=None, name=None, stop_timeout=10.0, context=None):
        self.argv = list(argv)
        self.context = context
        self.name = name or os.path.basename(self.argv[0])
        self.stop_timeout = stop_timeout
        self.lines = []          # parsed objects, in order
        self._cond = threading.Condition()
        self._eof = False
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.name)
        fd, self.stderr_path = tempfile.mkstemp(prefix=f"mend-{safe}-", suffix=".stderr")
        self._stderr = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, start_new_session=True)
        _live_children.add(self.proc)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, name=f"read-{self.name}", daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                continue
            try:
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    obj = {"type": "_raw", "text": text}
            except ValueError:
                obj = {"type": "_raw", "text": text}
            with self._cond:
                self.lines.append(obj)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stderr_text(self):
        try:
            self._stderr.flush()
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except (OSError, ValueError):
            return ""

    def describe(self, lines=30):
        with self._cond:
            seen = [json.dumps(o) for o in self.lines[-lines:]]
        status = self.proc.poll()
        text = (f"  {self.name} (pid {self.pid}, "
                f"{'running' if status is None else f'exited {status}'}) stdout lines:\n"
                f"{tail(chr(10).join(seen), lines)}\n"
                f"  {self.name} stderr tail:\n{tail(self.stderr_text(), 25)}")
        if self.context is not None:
            try:
                text += "\n  context:\n" + str(self.context())
            except Exception as e:  # noqa: BLE001
                text += f"\n  context: ({type(e).__name__}: {e})"
        return text

    def wait_line(self, pred, timeout, what, start=0):
        """First parsed line (index >= start) for which pred(obj) is truthy.

        Waits up to `timeout` s; raises AssertionError with the lines seen so
        far and the stderr tail.  Fails early if the process exits first.
        """
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    obj = self.lines[i]
                    i += 1
                    try:
                        if pred(obj):
                            return obj
                    except (KeyError, TypeError, AttributeError):
                        pass
                if self._eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.25))
        why = "process exited" if self._eof else f"timed out after {timeout}s"
        raise AssertionError(f"{why} waiting for {what}\n{self.describe()}")

    def mark(self):
        """Index of the next line: pass as start= to wait only for newer lines."""
        with self._cond:
            return len(self.lines)

    def find(self, pred, start=0):
        """All lines so far (from `start`) matching pred, without waiting."""
        with self._cond:
            out = []
            for obj in self.lines[start:]:
                try:
                    if pred(obj):
                        out.append(obj)
                except (KeyError, TypeError, AttributeError):
                    pass
            return out

    def send_line(self, text):
        if self.proc.poll() is not None:
            raise HarnessError(f"cannot write to {self.name}: it exited\n{self.describe()}")
        try:
            self.proc.stdin.write((text.rstrip("\n") + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise HarnessError(f"cannot write to {self.name}: broken pipe\n{self.describe()}") from None

    def running(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"timed out after {timeout}s waiting for {self.name} to exit\n"
                                 f"{self.describe()}") from None

    def stop(self):
        """Close stdin, SIGTERM the PID, wait, then SIGKILL. -> returncode."""
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except OSError:
            pass
        rc = _stop_pid(self.proc, self.stop_timeout)
        self._reader.join(timeout=5)
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        try:
            self._stderr.close()
        except OSError:
            pass
        return rc

    def cleanup(self):
        self.stop()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


def start_omemo_peer(srv, user, resource, data_dir, password="pw", verbose=False, omemo=None):
    """omemo_peer.py (python-omemo) as user@host/resource on `srv`; `omemo` is its
    --omemo mode: "legacy" (the default), "2" (OMEMO:2 only) or "both".

    Returns a JsonLinesProcess whose failure messages include Prosody's log
    tail; keep `data_dir` to restart the same device later.
    """
    argv = [PYTHON, os.path.join(HERE, "omemo_peer.py"), "--jid", srv.jid(user, resource),
            "--password", password, "--server", srv.address, "--data-dir", data_dir]
    if omemo:
        argv += ["--omemo", omemo]
    if verbose or os.environ.get("MEND_E2E_VERBOSE"):
        argv.append("--verbose")
    return JsonLinesProcess(argv, name=f"{user}/{resource}", context=lambda: srv.log_tail(20))


def wait_ready(peer, timeout=40):
    """Wait for omemo_peer's {"type":"ready"} line and return it."""
    r = peer.wait_line(lambda m: m["type"] in ("ready", "fatal"), timeout, f"{peer.name} to be ready")
    if r["type"] != "ready":
        raise AssertionError(f"{peer.name} failed to start: {r.get('error')}\n{peer.describe()}")
    return r


def peer_command(peer, line, kind=None, timeout=40):
    """Sends one command to omemo_peer.py and waits until it was handled (the peer runs
    its commands in order, so a "ping" after it is answered then). Returns the lines it
    printed meanwhile of type `kind` (if given) and "command_error"."""
    m = peer.mark()
    peer.send_line(line)
    peer.send_line("ping")
    end = peer.wait_line(lambda o: o == {"type": "pong"}, timeout,
                         f"{peer.name} to run {line!r}", start=m)
    return [o for o in peer.lines[m:] if o is not end and o["type"] in (kind, "command_error")]


def peer_send(peer, to, text, version=None):
    """omemo_peer.py encrypts `text` to `to` (in `version` only, "2" or "0.3", if given) and
    sends it; returns its "sent" line (one version: one stanza)."""
    cmd = f"sendv {version} {to} {text}" if version else f"send {to} {text}"
    sent = peer_command(peer, cmd, "sent")
    assert sent and sent[-1]["type"] == "sent", f"{peer.name}: {cmd!r}: {sent}"
    return sent[-1]


def peer_message(peer, text, timeout=30, start=0):
    """omemo_peer.py's "message" line for `text` (decrypted), from line `start` on."""
    return peer.wait_line(lambda o: o["type"] == "message" and o["body"] == text, timeout,
                          f"{peer.name} to decrypt {text!r}", start=start)


def peer_sees(peer, jid, timeout=30):
    """Until omemo_peer.py finds a device of `jid` (its lists re-fetched each time: python-omemo
    refuses a sender it does not know); returns the "refreshed" line."""
    def seen():
        got = peer_command(peer, f"refresh {jid}", "refreshed")
        return got[-1] if got and got[-1]["type"] == "refreshed" and got[-1]["devices"] else None
    return wait_for(seen, timeout, f"{peer.name} to see a device of {jid}", interval=0.5)


def peer_sees_devices(peer, jid, devices, timeout=30):
    """Until omemo_peer.py knows every one of `devices` of `jid` (its lists re-fetched
    each time; it refuses a sender device it has not seen)."""
    def seen():
        got = peer_command(peer, f"refresh {jid}", "refreshed")
        return got and got[-1]["type"] == "refreshed" and \
            set(devices) <= {d["device"] for d in got[-1]["devices"]}
    wait_for(seen, timeout, f"{peer.name} to see the devices {sorted(devices)} of {jid}",
             interval=0.5)


def peer_sends_to_another_resource(srv, peer, user, text, timeout=20, full=False):
    """omemo_peer.py writes `text` to `user`'s bare JID while only a plain resource of
    theirs (no OMEMO client) is online and takes it live: the server archives it and keeps
    nothing offline, so `user`'s OMEMO devices can have it only from the archive
    (XEP-0313). full: to that resource's full JID instead, while `user`'s OMEMO clients
    are online too: they get it as a received carbon (XEP-0280 §6). Returns the peer's
    "sent" line."""
    with srv.client(user, resource="elsewhere") as x:
        x.send("<presence/>")
        x.iq("get", srv.host, "<ping xmlns='urn:xmpp:ping'/>")  # the presence was handled
        to = srv.jid(user, "elsewhere" if full else None)
        sent = peer_send(peer, to, text)
        x.next(lambda e: e.tag == f"{{{NS_CLIENT}}}message" and e.get("id") == sent["id"],
               f"{peer.name}'s message {text!r} at {user}'s resource elsewhere", timeout)
        # unavailable before the stream closes: nothing later may go to this resource
        x.send("<presence type='unavailable'/>")
        x.iq("get", srv.host, "<ping xmlns='urn:xmpp:ping'/>")
    return sent


# --------------------------------------------------------------------------
# A tiny TAP runner
# --------------------------------------------------------------------------

_tests = []
_skip_reason = None
_in_test = False
TEST_TIME_LIMIT = int(os.environ.get("MEND_E2E_TEST_TIMEOUT", "180"))


class _TestTimeout(BaseException):
    pass


class Skip(Exception):
    """Raised by skip() inside a test: that test is reported as skipped."""


def test(fn):
    """Register fn as a test of this module (run in definition order)."""
    _tests.append(fn)
    return fn


def skip(reason):
    """At module level: skip the whole module (1..0 # SKIP, exit 77).
    Inside a test: skip that test (ok N - name # SKIP reason)."""
    global _skip_reason
    if _in_test:
        raise Skip(reason)
    _skip_reason = reason


def _on_alarm(signum, frame):
    raise _TestTimeout(f"test exceeded its overall limit of {TEST_TIME_LIMIT}s")


def main():
    """Run the registered tests; print TAP; exit 0 (all passed), 1 (any
    failed) or 77 (module skipped, or every test skipped)."""
    global _in_test
    if _skip_reason is not None:
        print(f"1..0 # SKIP {_skip_reason}")
        sys.stdout.flush()
        sys.exit(77)
    signal.signal(signal.SIGALRM, _on_alarm)
    failed = skipped = 0
    for n, fn in enumerate(_tests, 1):
        name = fn.__name__
        t0 = time.monotonic()
        _in_test = True
        signal.alarm(TEST_TIME_LIMIT)
        try:
            fn()
        except Skip as e:
            signal.alarm(0)
            skipped += 1
            print(f"ok {n} - {name} # SKIP {e}")
        except BaseException as e:  # noqa: BLE001 - report everything
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            print(f"not ok {n} - {name}")
            if isinstance(e, (AssertionError, HarnessError, _TestTimeout)):
                text = f"{type(e).__name__}: {e}"
                tb = traceback.extract_tb(e.__traceback__)
                where = [f for f in tb if f.filename != __file__]
                if where:
                    f = where[-1]
                    text = f"at {os.path.basename(f.filename)}:{f.lineno}: " + text
            else:
                text = traceback.format_exc()
            for line in text.rstrip("\n").splitlines():
                print(f"#   {line}")
        else:
            signal.alarm(0)
            print(f"ok {n} - {name} # {time.monotonic() - t0:.1f}s")
        finally:
            _in_test = False
            _cleanup_children()
        sys.stdout.flush()
    print(f"1..{len(_tests)}")
    passed = len(_tests) - failed - skipped
    print(f"# {passed} passed, {failed} failed, {skipped} skipped")
    sys.stdout.flush()
    if failed:
        sys.exit(1)
    if _tests and skipped == len(_tests):
        sys.exit(77)
    sys.exit(0)
