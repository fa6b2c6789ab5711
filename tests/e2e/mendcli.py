"""Helpers for driving the `mend` client in end-to-end tests: one device
(account, resource, data dir) as a Python object, its --json output parsed.
"""

import base64
import datetime
import json
import os
import re

from harness import (HERE, JsonLinesProcess, Prosody, peer_message, peer_send, peer_sees_devices,
                     peer_sends_to_another_resource, run, start_omemo_peer, wait_for,
                     wait_ready)

BUILD = os.environ.get("top_builddir") or os.path.join(HERE, "..", "..", "build")
MEND = os.environ.get("MEND_BIN") or os.path.join(BUILD, "mend")


def iso(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class Mend:
    """One mend device: an account, a resource and its own data dir."""

    def __init__(self, srv, root, user, resource, password="pw", device=None):
        """device: the name of the device (data dir) when another resource uses it too."""
        self.srv, self.user, self.resource = srv, user, resource
        self.jid = srv.jid(user)
        self.dir = os.path.join(root, f"{user}-{device or resource}")
        os.makedirs(self.dir, exist_ok=True)
        self.pwfile = os.path.join(self.dir, "password")
        with open(self.pwfile, "w") as f:
            f.write(password + "\n")
        home = os.path.join(self.dir, "home")
        os.makedirs(home, exist_ok=True)
        # never a real keyring, never the user's config
        self.env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home + "/.config",
                        XDG_DATA_HOME=home + "/.local/share",
                        DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/mend-test-bus")
        self.env.pop("DISPLAY", None)
        self.env.pop("MEND_PASSWORD", None)

    def argv(self, *cmd):
        return [MEND, "--jid", self.srv.jid(self.user, self.resource), "--password-file",
                self.pwfile, "--server", self.srv.address, "--tls", "off",
                "--data-dir", os.path.join(self.dir, "data"), "--json", *cmd]

    def run(self, *cmd, timeout=60, input=None):
        return run(self.argv(*cmd), timeout=timeout, env=self.env, input=input)

    def lines(self, cp):
        out = []
        for line in cp.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def send(self, to, text, expect_rc=0, timeout=60):
        cp = self.run("send", to, text, timeout=timeout)
        if cp.returncode != expect_rc:
            raise AssertionError(f"mend send as {self.user}/{self.resource} exited "
                                 f"{cp.returncode}, want {expect_rc}\nstdout:\n{cp.stdout}\n"
                                 f"stderr:\n{cp.stderr}")
        return cp

    def publish(self):
        """Connect once so that our device list and bundle are on the server."""
        cp = self.run("devices")
        if cp.returncode != 0:
            raise AssertionError(f"mend devices failed ({cp.returncode}): {cp.stderr}")
        return cp

    def listen(self, *args):
        return JsonLinesProcess(self.argv("listen", *args), env=self.env,
                                name=f"mend {self.user}/{self.resource}",
                                context=lambda: self.srv.log_tail(20))

    def device_id(self):
        cp = self.run("fingerprint")
        return self.lines(cp)[0]["device"]


def speaks_omemo2(binary=MEND):
    """What the build says: `mend --version` has a line "OMEMO:2 ...: yes" when it reads
    and writes OMEMO:2 (libomemo-c), none or "no" when it is legacy only."""
    cp = run([binary, "--version"], timeout=20)
    assert cp.returncode == 0, f"{binary} --version: {cp.returncode} {cp.stderr}"
    return re.search(r"^OMEMO:2\b.*:\s*yes\s*$", cp.stdout, re.M) is not None


def wait_listening(proc, timeout=30):
    """A listen process is ready when it said so (our keys published, catch-up done)."""
    return proc.wait_line(lambda o: o.get("type") == "ready", timeout,
                          f"{proc.name} to be ready")


def messages(proc, start=0):
    return [o for o in proc.lines[start:] if o.get("type") == "message"]


def wait_message(proc, body, timeout=30, start=0, **fields):
    def match(o):
        return (o.get("type") == "message" and o.get("body") == body and
                all(o.get(k) == v for k, v in fields.items()))
    return proc.wait_line(match, timeout, f"{proc.name} to show {body!r} {fields}", start=start)


def server(**kw):
    return Prosody(accounts={"alice": "pw", "bob": "pw", "carol": "pw"}, **kw)


def failing_archive(root):
    """(flag, server() kwargs) for a Prosody whose archive answers one query with an error
    while the file `flag` exists (mod_mend_mam_fail.lua removes it when it does)."""
    flag = os.path.join(root, "mam-fails")
    lua = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    return flag, {"extra_modules": ("mend_mam_fail",),
                  "extra_config": f"plugin_paths = {{ {lua(HERE)} }}\nmam_fail_flag = {lua(flag)}\n"}


def slow_disco(root):
    """(flag, Prosody config lines) for a MUC component that loads mod_mend_slow_disco.lua
    (add "mend_slow_disco" to its modules_enabled): disco#info queries to rooms named
    slow... are answered only once the file `flag` exists."""
    flag = os.path.join(root, "disco-answers")
    lua = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    return flag, f"plugin_paths = {{ {lua(HERE)} }}\nslow_disco_flag = {lua(flag)}\n"


def archived_only(srv, root, text):
    """bob sends `text` to alice while only her mend device "phone" is online: the server
    archives it and keeps nothing offline, so alice's other devices have it from the archive."""
    phone = Mend(srv, root, "alice", "phone")
    with phone.listen() as pl:
        wait_listening(pl)
        Mend(srv, root, "bob", "phone").send("alice@localhost", text)
        wait_message(pl, text, timeout=30)


# --- OMEMO:2 in the hosts (test_profanity_omemo2.py, test_purple_omemo2.py) ----------------

def omemo2_while_away(srv, bob, phone):
    """While alice's host is closed, with bob an OMEMO:2-only omemo_peer.py: alice's mend
    device `phone` writes to bob (her archive alone keeps it for her other devices), bob
    writes one message that a plain resource of alice's takes live (the archive alone
    keeps it) and two that the offline store keeps too. -> (bob's texts, the phone's)."""
    peer_sees_devices(bob, "alice@localhost", [phone.device_id()])
    mine = "omemo2-sent-from-the-phone"
    mark = bob.mark()
    phone.send("bob@localhost", mine)
    assert peer_message(bob, mine, start=mark)["version"] == "2"
    texts = ["omemo2-from-the-archive"]
    sent = peer_sends_to_another_resource(srv, bob, "alice", texts[0])
    assert sent["version"] == "2" and not offline_holds(srv, "alice", sent["id"]), sent
    ids = []
    for i in range(2):
        texts.append(f"omemo2-kept-offline-{i}")
        sent = peer_send(bob, "alice@localhost", texts[-1])
        assert sent["version"] == "2", sent
        ids.append(sent["id"])
    wait_for(lambda: all(offline_holds(srv, "alice", i) for i in ids), 10,
             "both in alice's offline store")
    return texts, mine


def omemo2_from_own_devices(srv, root, bob, phone, ours):
    """alice writes to bob, an OMEMO:2-only omemo_peer.py, from a python-omemo device of
    hers (OMEMO:2 only), which must encrypt for `ours` (the host's device) too, and from
    her mend device `phone`; bob reads both in version 2. -> the two texts."""
    texts = ("omemo2-from-python-omemo", "omemo2-from-the-mend-client")
    other = start_omemo_peer(srv, "alice", "py2", os.path.join(root, "alice-py2"), omemo="2")
    with other:
        mine = wait_ready(other)["device"]
        peer_sees_devices(bob, "alice@localhost", [ours, mine, phone.device_id()])
        sent = peer_send(other, "bob@localhost", texts[0])
        assert sent["version"] == "2" and ours in sent["devices"], \
            f"not encrypted for the host's device {ours}: {sent}"
        got = peer_message(bob, texts[0])
        assert got["version"] == "2" and got["from"] == "alice@localhost", got
    mark = bob.mark()
    phone.send("bob@localhost", texts[1])
    assert peer_message(bob, texts[1], start=mark)["version"] == "2"
    return texts


def omemo2_received_carbon(srv, bob):
    """bob, an OMEMO:2-only omemo_peer.py, writes in version 2 to the full JID of a plain
    resource of alice's, so her online host has it only as a received carbon (XEP-0280).
    -> the text."""
    text = "omemo2-received-carbon"
    sent = peer_sends_to_another_resource(srv, bob, "alice", text, full=True)
    assert sent["version"] == "2", sent
    return text


def offline_items(srv, user):
    """How many stanzas Prosody keeps in `user`'s offline store (mod_offline, storage internal)."""
    try:
        with open(os.path.join(srv.dir, "data", srv.host, "offline", f"{user}.list"),
                  encoding="utf-8") as f:
            return len(re.findall(r"^item\(", f.read(), re.M))
    except FileNotFoundError:
        return 0


def offline_holds(srv, user, stanza_id):
    """Whether `user`'s offline store holds the stanza with this id."""
    return f'"{stanza_id}"' in read_text(server_file(srv, "offline", user))


def stored_on_server(srv, text):
    """Whether `text` stands in plaintext anywhere in the Prosody's data (archives, offline store)."""
    for dirpath, _, files in os.walk(os.path.join(srv.dir, "data")):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                if text.encode() in fh.read():
                    return True
    return False


def wait_published(srv, root, user):
    """Until a plugin's mend has published user's device (another client sees it)."""
    probe = Mend(srv, root, "carol", "probe")

    def seen():
        cp = probe.run("devices", f"{user}@localhost")
        return cp.returncode == 0 and any(o.get("type") == "device" and o.get("fingerprint")
                                          for o in probe.lines(cp))
    wait_for(seen, 30, f"{user}'s mend device to be published", interval=0.3)


# --- what the server holds (storage = "internal": Lua files under the data dir) ---------

def server_file(srv, store, user):
    """The Lua file of `store` (archive, offline, a PEP node) for `user` in Prosody's data."""
    return os.path.join(srv.dir, "data", srv.host, store, f"{user}.list")


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def published_bundle(srv, user, device):
    """The legacy bundle `user` has on the server for `device`, as
    {"spk": signed prekey id or None, "prekeys": {id: base64 public key}}."""
    node = f"pep_eu%2esiacs%2econversations%2eaxolotl%2ebundles%3a{device}"
    item = read_text(server_file(srv, node, user)).split("item(")[-1]
    keys = {}
    for m in re.finditer(r'"([A-Za-z0-9+/=]+)";\s*\["attr"\] = \{([^}]*)\}', item):
        pk = re.search(r'\["preKeyId"\] = "(\d+)"', m.group(2))
        if pk:
            keys[int(pk.group(1))] = m.group(1)
    spk = re.search(r'\["signedPreKeyId"\] = "(\d+)"', item)
    return {"spk": int(spk.group(1)) if spk else None, "prekeys": keys}


def published_prekeys(srv, user, device):
    """The one-time prekey ids of the bundle `user` has on the server for `device`."""
    return set(published_bundle(srv, user, device)["prekeys"])


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def prekey_fields(message):
    """{protobuf field number: value} of a PreKeySignalMessage (version byte + protobuf):
    1 preKeyId, 2 baseKey, 3 identityKey, 5 registrationId, 6 signedPreKeyId."""
    out, i = {}, 1
    while i < len(message):
        key, i = _varint(message, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            out[field], i = _varint(message, i)
        elif wire == 2:
            n, i = _varint(message, i)
            out[field] = bytes(message[i:i + n])
            i += n
        else:
            raise ValueError(f"wire type {wire} in a PreKeySignalMessage")
    return out


def archived_prekey_messages(srv, user, device):
    """The OMEMO prekey messages for `device` in `user`'s archive, in archive order, as
    dicts of prekey_fields() plus "id" (the message's id, origin-id when mend sent it)."""
    text = read_text(server_file(srv, "archive", user))
    out = []
    for item in text.split("item(")[1:]:
        mid = re.search(r'\["name"\] = "origin-id";', item) and re.search(
            r'\["id"\] = "([^"]+)";\s*\["xmlns"\] = "urn:xmpp:sid:0"', item)
        # an element is a Lua table {"text"; ["name"] = ...; ["attr"] = {...}} in any order
        for m in re.finditer(r"\{((?:[^{}]|\{[^{}]*\})*)\}", item):
            el = m.group(1)
            attrs = re.search(r'\["attr"\] = \{([^}]*)\}', el)
            b64 = re.search(r'^\s*"([A-Za-z0-9+/=]+)";', el, re.M)
            if not (re.search(r'\["name"\] = "key";', el) and attrs and b64 and
                    f'["rid"] = "{device}"' in attrs.group(1)):
                continue
            if re.search(r'\["prekey"\] = "(true|1)"', attrs.group(1)):
                f = prekey_fields(base64.b64decode(b64.group(1)))
            elif re.search(r'\["kex"\] = "(true|1)"', attrs.group(1)):
                # OMEMO:2 (XEP-0384 0.9 §12): an OMEMOKeyExchange, protobuf alone: pk_id 1,
                # spk_id 2, ik 3, ek 4; given in the legacy message's numbers
                k = prekey_fields(b"\0" + base64.b64decode(b64.group(1)))
                f = {1: k.get(1), 6: k.get(2), 3: k.get(3), 2: k.get(4), "omemo2": True}
            else:
                continue
            f["id"] = mid.group(1) if mid else None
            out.append(f)
    return out


def archived_prekey_ids(srv, user, device):
    """The prekey ids named by the OMEMO prekey messages for `device` in `user`'s archive."""
    return [f.get(1) for f in archived_prekey_messages(srv, user, device)]
