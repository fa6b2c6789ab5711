#!/usr/bin/python3
"""An independent OMEMO peer for mend's end-to-end tests: python-omemo 1.0
(SessionManager) + python-oldmemo 1.0 (legacy, eu.siacs.conversations.axolotl) +
python-twomemo 1.0 (OMEMO:2, urn:xmpp:omemo:2) + slixmpp 1.8, nothing from mend.

    /usr/bin/python3 omemo_peer.py --jid USER@HOST/RESOURCE --password PW \
        --server 127.0.0.1:PORT --data-dir DIR [--omemo legacy|2|both] [--verbose]

--omemo: what we publish and speak. legacy (default): the legacy device list and
bundles only. 2: urn:xmpp:omemo:2:devices / :bundles only. both: the same device id
and identity key in both, and a device that has both gets OMEMO:2 (python-omemo's
backend priority). OMEMO:2 messages carry an XEP-0420 envelope (<content><body/>,
<rpad/>, <time/>, <to/>, <from/>); on receipt <from/> must be the sender and <to/> the
stanza's recipient (our bare JID, or the peer for our own sent carbons), else an
"affix_error" line and no "message". Group chats take both versions the same way: each
member device gets the first of our versions it publishes, one stanza per version, and an
OMEMO:2 envelope's <to/> is the room and <from/> our real bare JID (XEP-0384 §5.5.1, §7);
on receipt <to/> must be the room and <from/> the sender's real JID.

stdout: one JSON object per line
    {"type":"ready","jid":FULLJID,"device":ID,"fingerprint":HEX,"pep_notify":BOOL,
     "versions":["2"|"0.3",...]}       fingerprint: python-omemo's format_identity_key
                                       (the Curve25519 form, hex, the same in both versions)
    {"type":"message","from":BARE,"to":BARE,"device":SID,"body":TEXT,
     "carbon":"sent"|"received"|null,"id":ID,"stanza_id":ID|null,"prekey":BOOL,
     "receipt_request":BOOL,"receipt_sent":BOOL,"version":"2"|"0.3","rids":[IDS],
     "sce":{"to","from","time","rpad"},"content":[TAGS],
     "envelope":XML,"encrypted_xml":XML}   (OMEMO:2 only: the decrypted <envelope/> and
                                       the <encrypted/> as received, for schema checks);
                                       rids: every device the <encrypted/> has a key for
    {"type":"affix_error","from":BARE,"device":SID,"error":STR,"sce":{...},...}
                                       an OMEMO:2 message whose <to/>/<from/> do not fit
    every line about a received message has "version"; from "mam" also "archived":true
    and "timestamp" (the archive's delay stamp)
    {"type":"receipt","from":FULLJID,"id":ID,"carbon":...}   a XEP-0184 <received/> arrived
    {"type":"empty","from":BARE,"device":SID,"carbon":...}   key transport / session completion
    {"type":"plain","from":BARE,"body":TEXT,"carbon":...}    an unencrypted body arrived
    {"type":"not_for_us","from":BARE,"device":SID,"rids":[IDS],"carbon":...}  no <key> for us
    {"type":"error","from":BARE,"device":SID|null,"error":STR,"carbon":...}   undecryptable
    {"type":"forged_carbon","from":OUTER_FROM}                carbon not from our bare JID: ignored
    {"type":"stanza_error","from":JID,"id":ID,"error":STR}   a <message type='error'>
    {"type":"devicelist","from":BARE,"devices":[IDS],"version":V}   PEP notification
    {"type":"sent","to":BARE,"id":ID,"devices":[IDS],"recipients":[{"jid","device","prekey"}],
     "errors":[STR],"version":V}      one per stanza: a send to devices of both kinds
                                       sends one stanza per version
    {"type":"mam_done","count":N,"skipped":N,"complete":BOOL}   after "mam"
    {"type":"refreshed","jid":BARE,"devices":[{"device","fingerprint","identity_key","trust",
     "active","versions"}]}            identity_key: hex, the form python-omemo keeps
                                       (Ed25519, from either version's bundle)
    {"type":"devices","jid":BARE,"devices":[...]}            (same, from the local cache)
    {"type":"pong"} | {"type":"raw_sent"} | {"type":"command_error","command":LINE,"error":STR} | {"type":"bye"}
    {"type":"fatal","error":STR}    (then exit 1)
  group chats (XEP-0045; "from" is the sender's real bare JID, "to" and "room" the room):
    {"type":"joined","room":ROOM,"nick":NICK,"occupants":{NICK:BARE},"members":[BARES]}
    {"type":"occupant","room":ROOM,"nick":NICK,"jid":BARE|null,"present":BOOL}   presence
    {"type":"members","room":ROOM,"occupants":{NICK:BARE},"members":[BARES]}
    {"type":"left","room":ROOM}
    message / empty / not_for_us / error / plain as above, with "room", "nick",
    "groupchat":true (and "stanza_id" the room's, by=ROOM)
    {"type":"reflection","room":ROOM,"nick":NICK,"id":ID,"origin_id":ID}   our own message back
    {"type":"sent","to":ROOM,"room":ROOM,...}  (as above; "recipients" lists every member device)

stdin: one command per line
    send JID TEXT...   encrypt TEXT for all of JID's devices and our own other devices
                       (device lists are re-fetched first), send as type=chat (to JID's
                       bare JID; a full JID addresses that resource, the SCE <to/> stays bare)
    sendv 2|0.3 JID|ROOM TEXT   the same in that version only (one of ours): a "both"
                       peer that wrote OMEMO:2 falls back to legacy (downgrade tests)
    affix to=JID from=JID | affix off   OMEMO:2 sends from now on carry these SCE
                       affixes instead of the true ones (tampering tests; "none" leaves
                       the affix out); prints "pong"
    mam [JID]          query our archive (XEP-0313; the chat with JID) and handle every
                       result as a live message, except those decrypted live before
                       (their keys are spent); then "mam_done"
    refresh JID        re-fetch JID's device list (and missing bundles); prints "refreshed"
    devices JID        like refresh, without fetching
    raw XML            send one stanza verbatim (default namespace jabber:client), e.g. a
                       forged carbon or a malformed OMEMO element; prints {"type":"raw_sent"}
    receipts on|off    XEP-0184 (default off): request receipts on what we send, and answer
                       requests of messages we decrypted (as Conversations does); prints "pong"
    ping               prints {"type":"pong"} (a barrier: earlier commands are done)
    quit               disconnect and exit 0 (EOF on stdin does the same)
  group chats (slixmpp's xep_0045):
    join ROOM NICK     enter ROOM (no history replay) and fetch its member, admin and owner
                       lists (XEP-0045 §9.5: members may read them in a members-only,
                       non-anonymous room); prints "joined"
    send ROOM TEXT     for a joined room: encrypt TEXT to the devices of every member (the
                       affiliation lists and the occupants' real JIDs, device lists re-fetched)
                       and our own other devices, sent as type=groupchat, one stanza per
                       version as for JID (python-omemo refuses, with NoEligibleDevices, when
                       a member has no OMEMO device); "affix" applies here too
    members ROOM       re-read the affiliation lists; prints "members"
    leave ROOM         prints "left"

Trust: blind (every new identity is trusted). State: DIR/omemo.json, so a
restart keeps the same device id, identity and sessions.
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import uuid
import xml.etree.ElementTree as ET

from slixmpp import ClientXMPP, JID
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath

import omemo
from omemo.storage import Just, Nothing, Storage
from omemo.types import TrustLevel
import oldmemo
import oldmemo.etree
from oldmemo.oldmemo import NAMESPACE as OLDMEMO_NS
import twomemo
import twomemo.etree
from twomemo.twomemo import NAMESPACE as TWOMEMO_NS

log = logging.getLogger("omemo_peer")

NS_CLIENT = "jabber:client"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_DATA = "jabber:x:data"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_EME = "urn:xmpp:eme:0"
NS_SID = "urn:xmpp:sid:0"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"

DEVICELIST_NODE = f"{OLDMEMO_NS}.devicelist"
BUNDLES_NODE = f"{OLDMEMO_NS}.bundles:"          # + device id
DEVICES2_NODE = f"{TWOMEMO_NS}:devices"          # XEP-0384 §5.3.1: item "current"
BUNDLES2_NODE = f"{TWOMEMO_NS}:bundles"          # XEP-0384 §5.3.2: item id = device id
NS_SCE = "urn:xmpp:sce:1"
NS_MAM = "urn:xmpp:mam:2"
NS_DELAY = "urn:xmpp:delay"
# --omemo: the versions we publish and use, with their namespaces and the order in
# which python-omemo picks a version for a device that has both
MODES = {"legacy": [OLDMEMO_NS], "2": [TWOMEMO_NS], "both": [TWOMEMO_NS, OLDMEMO_NS]}
VERSION_NAME = {OLDMEMO_NS: "0.3", TWOMEMO_NS: "2"}
NAMESPACE_OF = {v: k for k, v in VERSION_NAME.items()}
CAPS_NODE = "https://mend.invalid/omemo_peer"
FALLBACK_BODY = ("I sent you an OMEMO encrypted message but your client doesn't seem to support "
                 "that. Find more information on https://conversations.im/omemo")

IDENTITY = ("client", "bot", "", "omemo_peer")   # category, type, lang, name

TRUST_BLIND = "BLINDLY_TRUSTED"
TRUST_UNDECIDED = "UNDECIDED"
TRUST_DISTRUSTED = "DISTRUSTED"

_emit_lock = threading.Lock()


def emit(obj):
    with _emit_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def features(namespaces):
    """What we announce; "+notify" makes Prosody push device list updates of the
    versions we speak."""
    notify = {OLDMEMO_NS: DEVICELIST_NODE, TWOMEMO_NS: DEVICES2_NODE}
    return sorted([NS_DISCO_INFO, NS_CAPS, NS_CARBONS, NS_EME] +
                  [f"{notify[ns]}+notify" for ns in namespaces])


def caps_ver(feats):
    """XEP-0115 §5.1 verification string for IDENTITY + feats (no forms)."""
    cat, typ, lang, name = IDENTITY
    s = f"{cat}/{typ}/{lang}/{name}<" + "".join(f + "<" for f in feats)
    return base64.b64encode(hashlib.sha1(s.encode("utf-8")).digest()).decode("ascii")


def el(tag, attrib=None, text=None, children=()):
    e = ET.Element(tag, attrib or {})
    if text is not None:
        e.text = text
    for c in children:
        e.append(c)
    return e


def sce_envelope(body, sender, to, affixes=None):
    """The plaintext of an OMEMO:2 message: an XEP-0420 <envelope/> with the body in
    <content/>, a random <rpad/> (XEP-0384 §5.5.1: MUST), <time/>, <to/> and <from/>.
    `affixes` replaces <to/>/<from/> values (a tampering test sends someone else's)."""
    affixes = affixes or {}
    env = el(f"{{{NS_SCE}}}envelope")
    env.append(el(f"{{{NS_SCE}}}content", children=[el(f"{{{NS_CLIENT}}}body", text=body)]))
    pad = base64.b64encode(os.urandom(1 + os.urandom(1)[0] % 32)).decode("ascii")
    env.append(el(f"{{{NS_SCE}}}rpad", text=pad))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    env.append(el(f"{{{NS_SCE}}}time", {"stamp": now}))
    for name, value in (("to", affixes.get("to", to)), ("from", affixes.get("from", sender))):
        if value != "none":  # "affix to=none": no such affix at all
            env.append(el(f"{{{NS_SCE}}}{name}", {"jid": value}))
    return ET.tostring(env, encoding="utf-8")


def parse_sce(plaintext):
    """The body and affixes of a decrypted OMEMO:2 <envelope/> (XEP-0420 §4) -> dict;
    raises ValueError when it is not one."""
    env = ET.fromstring(plaintext)
    if env.tag != f"{{{NS_SCE}}}envelope":
        raise ValueError(f"not an SCE envelope: {env.tag}")
    content = env.find(f"{{{NS_SCE}}}content")
    if content is None:
        raise ValueError("SCE envelope without <content/>")
    body = content.find(f"{{{NS_CLIENT}}}body")

    def affix(name):
        e = env.find(f"{{{NS_SCE}}}{name}")
        return None if e is None else e.get("stamp" if name == "time" else "jid")
    rpad = env.find(f"{{{NS_SCE}}}rpad")
    return {"body": None if body is None else (body.text or ""),
            "content": [c.tag for c in content],
            "sce": {"to": affix("to"), "from": affix("from"), "time": affix("time"),
                    "rpad": rpad is not None}}


def affix_problem(sce, sender, expected_to):
    """Why the affixes do not fit this message (XEP-0420 §5: <from/> the sender, <to/>
    the recipient), or None."""
    if sce["from"] is not None and JID(sce["from"]).bare != sender:
        return f"SCE <from/> is {sce['from']}, the sender is {sender}"
    if sce["to"] is not None and JID(sce["to"]).bare != expected_to:
        return f"SCE <to/> is {sce['to']}, expected {expected_to}"
    return None


def iq_error_text(e):
    if isinstance(e, IqTimeout):
        return "timeout"
    if isinstance(e, IqError):
        cond = e.iq["error"]["condition"]
        text = e.iq["error"]["text"]
        return f"{cond}" + (f" ({text})" if text else "")
    return f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------
# Storage: one JSON file, rewritten atomically on every change
# --------------------------------------------------------------------------

class JsonFileStorage(Storage):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.data = {}
        if os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)

    def _flush(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    async def _load(self, key):
        if key in self.data:
            return Just(self.data[key])
        return Nothing()

    async def _store(self, key, value):
        self.data[key] = value
        self._flush()

    async def _delete(self, key):
        if self.data.pop(key, None) is not None:
            self._flush()


# --------------------------------------------------------------------------
# XMPP / PEP plumbing, used by the SessionManager
# --------------------------------------------------------------------------

class Peer(ClientXMPP):
    def __init__(self, jid, password, data_dir, ready_timeout, namespaces=(OLDMEMO_NS,)):
        super().__init__(jid, password)
        self.namespaces = list(namespaces)   # the versions we speak, preferred first
        self.mode = next(m for m, nss in MODES.items() if nss == self.namespaces)
        self.caps_features = features(self.namespaces)
        self.affixes = {}                 # "affix to=JID": SCE values replaced on sending
        self.mam_results = {}             # query id -> [(forwarded message, delay stamp)]
        self.seen = set()                 # stanza ids of the messages we decrypted
        self.data_dir = data_dir
        self.ready_timeout = ready_timeout
        self.sm = None
        self.lock = asyncio.Lock()
        self.done = None              # future set when we should exit
        self.exit_code = 0
        self.quitting = False
        self.own_devicelist_seen = None   # asyncio.Event
        self.publish_options_ok = None    # learnt on the first publish
        self.commands = None              # asyncio.Queue of stdin lines
        self.receipts = False             # XEP-0184: request and answer receipts
        self.rooms = {}                   # joined room -> Room

        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.register_handler(CoroutineCallback(
            "omemo_peer messages", MatchXPath(f"{{{NS_CLIENT}}}message"), self.on_message))
        self.register_handler(Callback(
            "omemo_peer MAM results",
            MatchXPath(f"{{{NS_CLIENT}}}message/{{{NS_MAM}}}result"), self.on_mam_result))
        self.register_handler(Callback(
            "omemo_peer disco#info",
            MatchXPath(f"{{{NS_CLIENT}}}iq/{{{NS_DISCO_INFO}}}query"), self.on_disco_info))
        # XEP-0045 occupant tracking; its xep_0030 dependency must not answer disco
        # requests next to ours (we announce exactly FEATURES, see caps_ver)
        self.register_plugin("xep_0045")
        self.remove_handler("Disco Info")
        self.remove_handler("Disco Items")
        self.add_event_handler("groupchat_presence", self.on_room_presence)

    @property
    def bare(self):
        return self.boundjid.bare

    # -- lifecycle --------------------------------------------------------

    def finish(self, code):
        if self.done is not None and not self.done.done():
            self.exit_code = code
            self.done.set_result(code)

    def fatal(self, text):
        log.error("fatal: %s", text)
        emit({"type": "fatal", "error": text})
        self.quitting = True
        try:
            self.disconnect(wait=1.0)
        except Exception:  # noqa: BLE001
            pass
        self.finish(1)

    def on_failed_auth(self, *_):
        self.fatal("authentication failed")

    def on_connection_failed(self, err):
        self.fatal(f"connection failed: {err}")

    def on_disconnected(self, reason):
        if self.quitting:
            self.finish(self.exit_code)
        else:
            self.fatal(f"disconnected unexpectedly: {reason}")

    async def on_session_start(self, _event):
        try:
            await asyncio.wait_for(self.set_up(), self.ready_timeout)
        except asyncio.TimeoutError:
            self.fatal(f"not ready after {self.ready_timeout}s")
            return
        except Exception as e:  # noqa: BLE001
            log.exception("set-up failed")
            self.fatal(f"set-up failed: {type(e).__name__}: {e}")
            return
        asyncio.ensure_future(self.command_loop())

    async def set_up(self):
        self.own_devicelist_seen = asyncio.Event()
        PeerSessionManager.client = self
        storage = JsonFileStorage(os.path.join(self.data_dir, "omemo.json"))
        async with self.lock:
            backends = {OLDMEMO_NS: oldmemo.Oldmemo, TWOMEMO_NS: twomemo.Twomemo}
            self.sm = await PeerSessionManager.create(
                backends=[backends[ns](storage) for ns in self.namespaces],
                storage=storage,
                own_bare_jid=self.bare,
                initial_own_label=None,
                undecided_trust_level_name=TRUST_UNDECIDED,
            )
            # Re-publish after a restart too (a fresh server has nothing).
            await self.sm.ensure_data_consistency()
            # No MAM catch-up here: leave history-sync mode at once, so that
            # pre keys are replaced and sessions completed right away.
            await self.sm.after_history_sync()
        await self.enable_carbons()
        self.send_presence_with_caps()
        own, _ = await self.sm.get_own_device_information()
        # Our own device list arrives by PEP once Prosody knows our +notify.
        try:
            await asyncio.wait_for(self.own_devicelist_seen.wait(), 10)
            notify = True
        except asyncio.TimeoutError:
            log.warning("no PEP notification of our own device list within 10 s")
            notify = False
        emit({"type": "ready", "jid": self.boundjid.full, "device": own.device_id,
              "fingerprint": "".join(self.sm.format_identity_key(own.identity_key)),
              "pep_notify": notify, "versions": [VERSION_NAME[ns] for ns in self.namespaces]})

    async def enable_carbons(self):
        iq = self.Iq()
        iq["type"] = "set"
        iq.append(el(f"{{{NS_CARBONS}}}enable"))
        await iq.send(timeout=10)

    def send_presence_with_caps(self):
        pres = self.make_presence()
        pres.append(el(f"{{{NS_CAPS}}}c", {"hash": "sha-1", "node": CAPS_NODE,
                                           "ver": caps_ver(self.caps_features)}))
        pres.send()

    def on_disco_info(self, iq):
        if iq["type"] != "get":
            return
        query = iq.xml.find(f"{{{NS_DISCO_INFO}}}query")
        node = query.get("node") if query is not None else None
        reply = iq.reply(clear=True)
        attrs = {"node": node} if node else {}
        q = el(f"{{{NS_DISCO_INFO}}}query", attrs)
        cat, typ, _lang, name = IDENTITY
        q.append(el(f"{{{NS_DISCO_INFO}}}identity", {"category": cat, "type": typ, "name": name}))
        for f in self.caps_features:
            q.append(el(f"{{{NS_DISCO_INFO}}}feature", {"var": f}))
        reply.append(q)
        reply.send()
        log.info("answered disco#info from %s (node %s)", iq["from"], node)

    # -- PEP ----------------------------------------------------------------

    async def pubsub_items(self, jid, node):
        """Items of `node` at `jid` -> list of <item> elements; [] if the node is absent."""
        iq = self.Iq()
        iq["type"] = "get"
        iq["to"] = jid
        iq.append(el(f"{{{NS_PUBSUB}}}pubsub", children=[el(f"{{{NS_PUBSUB}}}items", {"node": node})]))
        try:
            res = await iq.send(timeout=10)
        except IqError as e:
            cond = e.iq["error"]["condition"]
            if cond in ("item-not-found", "forbidden"):
                # Prosody answers "forbidden" for a node that does not exist yet.
                log.info("items %s at %s: %s -> treated as empty", node, jid, cond)
                return None
            raise
        items = res.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}items")
        return [] if items is None else list(items.findall(f"{{{NS_PUBSUB}}}item"))

    @staticmethod
    def _options_form(form_type, options):
        form = el(f"{{{NS_DATA}}}x", {"type": "submit"})
        form.append(el(f"{{{NS_DATA}}}field", {"var": "FORM_TYPE", "type": "hidden"}, children=[
            el(f"{{{NS_DATA}}}value", text=form_type)]))
        for var, value in options.items():
            form.append(el(f"{{{NS_DATA}}}field", {"var": var}, children=[
                el(f"{{{NS_DATA}}}value", text=value)]))
        return form

    def _publish_iq(self, node, item_id, payload, with_options, options):
        iq = self.Iq()
        iq["type"] = "set"
        pubsub = el(f"{{{NS_PUBSUB}}}pubsub")
        publish = el(f"{{{NS_PUBSUB}}}publish", {"node": node})
        publish.append(el(f"{{{NS_PUBSUB}}}item", {"id": item_id}, children=[payload]))
        pubsub.append(publish)
        if with_options:
            form = self._options_form("http://jabber.org/protocol/pubsub#publish-options", options)
            pubsub.append(el(f"{{{NS_PUBSUB}}}publish-options", children=[form]))
        iq.append(pubsub)
        return iq

    async def configure_open(self, node, options):
        iq = self.Iq()
        iq["type"] = "set"
        form = self._options_form("http://jabber.org/protocol/pubsub#node_config", options)
        iq.append(el(f"{{{NS_PUBSUB_OWNER}}}pubsub", children=[
            el(f"{{{NS_PUBSUB_OWNER}}}configure", {"node": node}, children=[form])]))
        await iq.send(timeout=10)

    async def publish(self, node, item_id, payload, max_items=None):
        """Publish with publish-options access_model=open (and pubsub#max_items); if the
        server refuses, publish plainly and configure the node so."""
        options = {"pubsub#access_model": "open"}
        if max_items:
            options["pubsub#max_items"] = max_items
        if self.publish_options_ok is not False:
            try:
                await self._publish_iq(node, item_id, payload, True, options).send(timeout=10)
                self.publish_options_ok = True
                log.info("published %s with publish-options", node)
                return
            except IqError as e:
                log.warning("publish %s with publish-options refused: %s; falling back",
                            node, iq_error_text(e))
        await self._publish_iq(node, item_id, payload, False, options).send(timeout=10)
        try:
            await self.configure_open(node, options)
        except (IqError, IqTimeout) as e:
            log.warning("configure %s access_model=open failed: %s", node, iq_error_text(e))
        log.info("published %s without publish-options", node)

    async def fetch_device_list(self, jid, namespace=OLDMEMO_NS):
        legacy = namespace == OLDMEMO_NS
        items = await self.pubsub_items(jid, DEVICELIST_NODE if legacy else DEVICES2_NODE)
        if not items:
            return {}
        # The spec says item id "current"; take it, else the last item.
        item = next((i for i in items if i.get("id") == "current"), items[-1])
        lst = item.find(f"{{{OLDMEMO_NS}}}list" if legacy else f"{{{TWOMEMO_NS}}}devices")
        if lst is None:
            return {}
        return (oldmemo.etree if legacy else twomemo.etree).parse_device_list(lst)

    # -- incoming stanzas ---------------------------------------------------

    async def on_message(self, msg):
        try:
            await self.handle_message(msg)
        except Exception as e:  # noqa: BLE001 - a test peer must keep going
            log.exception("handling message failed")
            emit({"type": "error", "from": JID(msg["from"]).bare, "device": None,
                  "error": f"{type(e).__name__}: {e}", "carbon": None})

    async def handle_message(self, msg, archived=None):
        """One <message/>; `archived` (from a MAM result) is merged into what we print."""
        x = msg.xml if hasattr(msg, "xml") else msg
        outer_from = x.get("from") or ""
        outer_bare = JID(outer_from).bare if outer_from else self.bare

        if x.get("type") == "error":
            err = x.find(f"{{{NS_CLIENT}}}error")
            cond = None
            if err is not None:
                cond = next((c.tag.split("}")[1] for c in err
                             if c.tag.startswith(f"{{{NS_STANZAS}}}") and not c.tag.endswith("}text")), None)
            emit({"type": "stanza_error", "from": str(outer_from), "id": x.get("id"), "error": cond})
            return

        event = x.find(f"{{{NS_PUBSUB_EVENT}}}event")
        if event is not None:
            await self.handle_pep_event(outer_bare, event)
            return
        if x.find(f"{{{NS_MAM}}}result") is not None:
            return      # stashed by on_mam_result, handled when the query is done

        if x.get("type") == "groupchat":
            if outer_bare in self.rooms:
                await self.handle_groupchat(self.rooms[outer_bare], x)
            return

        carbon = None
        inner = x
        for kind in ("sent", "received"):
            c = x.find(f"{{{NS_CARBONS}}}{kind}")
            if c is not None:
                carbon = kind
                # XEP-0280 §11: only our own bare JID may send us carbons.
                if outer_bare != self.bare:
                    log.warning("forged %s carbon from %s ignored", kind, outer_from)
                    emit({"type": "forged_carbon", "from": str(outer_from), "carbon": kind})
                    return
                inner = c.find(f"{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message")
                if inner is None:
                    return
                break

        sender = JID(inner.get("from") or self.bare).bare
        to = JID(inner.get("to") or self.bare).bare
        stanza_id = None
        sid = inner.find("{urn:xmpp:sid:0}stanza-id")
        if sid is not None and JID(sid.get("by") or "").bare == self.bare:
            stanza_id = sid.get("id")
        rcv = inner.find(f"{{{NS_RECEIPTS}}}received")
        if rcv is not None:
            emit({"type": "receipt", "from": inner.get("from") or str(outer_from),
                  "id": rcv.get("id"), "carbon": carbon})
            return
        enc = find_encrypted(inner)
        if enc is None:
            body = inner.find(f"{{{NS_CLIENT}}}body")
            if body is not None:
                emit(dict({"type": "plain", "from": sender, "to": to, "body": body.text or "",
                           "carbon": carbon, "id": inner.get("id")}, **(archived or {})))
            return

        base = dict({"from": sender, "to": to, "device": sender_device(enc), "carbon": carbon,
                     "id": inner.get("id"), "stanza_id": stanza_id,
                     "version": VERSION_NAME[enc.tag[1:].split("}")[0]]}, **(archived or {}))
        request = inner.find(f"{{{NS_RECEIPTS}}}request") is not None
        # XEP-0184 §5: answer only live messages to us that we decrypted
        answer = self.receipts and request and carbon is None and inner.get("id")
        msg = await self.decrypt_and_emit(enc, sender, base, x, {
            "receipt_request": request, "receipt_sent": bool(answer)})
        if msg is not None and answer:
            ack = self.make_message(mto=inner.get("from"), mtype="chat")
            ack["id"] = str(uuid.uuid4())
            ack.append(el(f"{{{NS_RECEIPTS}}}received", {"id": inner.get("id")}))
            ack.send()

    async def decrypt_and_emit(self, enc, sender, base, stanza, extra=None):
        """Decrypt an OMEMO <encrypted/> from sender (bare JID); emit what came of it
        (a "message" line has `extra` too); the message line, or None."""
        namespace = enc.tag[1:].split("}")[0]
        if namespace not in self.namespaces:
            emit(dict(base, type="error", error=f"OMEMO version {VERSION_NAME[namespace]} is "
                      f"not spoken here (--omemo {self.mode})"))
            return None
        async with self.lock:
            try:
                if namespace == OLDMEMO_NS:
                    message = await oldmemo.etree.parse_message(enc, sender, self.bare, self.sm)
                else:
                    message = twomemo.etree.parse_message(enc, sender)
                own_id = (await self.sm.get_own_device_information())[0].device_id
                prekey = any(k.device_id == own_id and kex is not None for k, kex in message.keys)
                plaintext, dev, _ = await self.sm.decrypt(message)
            except omemo.MessageNotForUs:
                emit(dict(base, type="not_for_us",
                          rids=sorted(k.device_id for k, _ in message.keys)))
                return None
            except Exception as e:  # noqa: BLE001
                log.warning("cannot decrypt from %s/%s: %s: %s", sender, base.get("device"),
                            type(e).__name__, e)
                log.debug("undecryptable stanza: %s", ET.tostring(stanza, encoding="unicode"))
                emit(dict(base, type="error", error=f"{type(e).__name__}: {e}"))
                return None
        if plaintext is None:
            emit(dict(base, type="empty", prekey=prekey))
            return None
        if namespace == OLDMEMO_NS:
            body, sce = plaintext.decode("utf-8", "replace"), {}
        else:
            try:
                env = parse_sce(plaintext)
            except (ET.ParseError, ValueError) as e:
                emit(dict(base, type="error", error=f"bad SCE envelope: {e}"))
                return None
            problem = affix_problem(env["sce"], sender, base["to"])
            if problem:
                emit(dict(base, type="affix_error", error=problem, sce=env["sce"]))
                return None
            body, sce = env["body"], {"sce": env["sce"], "content": env["content"],
                                      "envelope": plaintext.decode("utf-8", "replace"),
                                      "encrypted_xml": ET.tostring(enc, encoding="unicode")}
        msg = dict(base, type="message", device=dev.device_id, body=body, prekey=prekey,
                   rids=sorted({k.device_id for k, _ in message.keys}), **sce, **(extra or {}))
        self.seen.add(base.get("stanza_id"))
        emit(msg)
        return msg

    # -- archive (XEP-0313) ------------------------------------------------------

    def on_mam_result(self, msg):
        """A result of our archive query (§4.2), kept in arrival order until the query's
        <iq/> result says all came; from our own account only."""
        x = msg.xml
        if x.get("from") and JID(x.get("from")).bare != self.bare:
            return
        result = x.find(f"{{{NS_MAM}}}result")
        fwd = result.find(f"{{{NS_FORWARD}}}forwarded")
        if result.get("queryid") not in self.mam_results or fwd is None:
            return
        inner = fwd.find(f"{{{NS_CLIENT}}}message")
        delay = fwd.find(f"{{{NS_DELAY}}}delay")
        if inner is not None:
            self.mam_results[result.get("queryid")].append(
                (inner, result.get("id"), delay.get("stamp") if delay is not None else None))

    async def catch_up(self, with_jid):
        """Query our archive (all of it, or the chat with `with_jid`) and decrypt every
        result in order as a live message would be, each line with "archived": true;
        then {"type":"mam_done","count":N,"complete":BOOL}."""
        qid = str(uuid.uuid4())
        self.mam_results[qid] = []
        iq = self.Iq()
        iq["type"] = "set"
        query = el(f"{{{NS_MAM}}}query", {"queryid": qid})
        if with_jid:
            query.append(self._options_form(NS_MAM, {"with": JID(with_jid).bare}))
        iq.append(query)
        try:
            res = await iq.send(timeout=20)
        finally:
            results = self.mam_results.pop(qid)
        fin = res.xml.find(f"{{{NS_MAM}}}fin")
        # what we decrypted live cannot be decrypted again (its keys are gone)
        fresh = [r for r in results if r[1] not in self.seen]
        for inner, archive_id, stamp in fresh:
            await self.handle_message(inner, {"archived": True, "stanza_id": archive_id,
                                              "timestamp": stamp})
        emit({"type": "mam_done", "count": len(results), "skipped": len(results) - len(fresh),
              "complete": fin is not None and fin.get("complete") == "true"})

    # -- group chats (XEP-0045) ---------------------------------------------------

    def on_room_presence(self, pres):
        room = self.rooms.get(pres["from"].bare)
        if room is None:
            return
        nick = pres["from"].resource
        item = pres.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
        real = JID(item.get("jid")).bare if item is not None and item.get("jid") else None
        present = pres["type"] != "unavailable"
        if real:
            room.nicks[nick] = real
        if present:
            room.present.add(nick)
        else:
            room.present.discard(nick)
        if present and real and real != self.bare:
            room.occupants.add(real)
        emit({"type": "occupant", "room": room.jid, "nick": nick, "jid": real,
              "present": present})

    async def join_room(self, room_jid, nick):
        """Enter the room as nick without history (§7.2.14), wait for our own presence
        (status 110, §7.2.3), then read the affiliation lists."""
        muc = self.plugin["xep_0045"]
        room = Room(room_jid, nick)
        self.rooms[room_jid] = room
        muc.rooms[JID(room_jid)] = {}
        muc.our_nicks[JID(room_jid)] = nick
        done = asyncio.get_event_loop().create_future()

        def finished(pres):
            if not done.done():
                done.set_result(pres)
        pres = self.make_presence(pto=f"{room_jid}/{nick}")
        pres.enable("muc_join")
        pres["muc_join"]["history"]["maxstanzas"] = "0"
        with self.event_handler(f"muc::{room_jid}::self-presence", finished), \
                self.event_handler(f"muc::{room_jid}::presence-error", finished):
            pres.send()
            got = await asyncio.wait_for(done, 20)
        if got["type"] == "error":
            del self.rooms[room_jid]
            raise RuntimeError(f"cannot join {room_jid}: {got['error']['condition']}")
        await self.read_members(room)
        emit({"type": "joined", "room": room_jid, "nick": nick,
              "occupants": room.occupant_map(), "members": sorted(room.members)})

    async def read_members(self, room):
        """Members, admins and owners (XEP-0045 §9.5, §10.5) of a room we are in."""
        members = set()
        for affiliation in ("member", "admin", "owner"):
            iq = self.Iq()
            iq["type"] = "get"
            iq["to"] = room.jid
            iq.append(el(f"{{{NS_MUC_ADMIN}}}query", children=[
                el(f"{{{NS_MUC_ADMIN}}}item", {"affiliation": affiliation})]))
            res = await iq.send(timeout=10)
            for item in res.xml.iter(f"{{{NS_MUC_ADMIN}}}item"):
                if item.get("jid"):
                    members.add(JID(item.get("jid")).bare)
        room.members = members - {self.bare}

    async def send_room(self, room, text, namespaces=None):
        """Encrypt to every member's devices (and ours), each device in the first of
        `namespaces` (default: ours) it publishes, and send one type=groupchat stanza per
        version used. OMEMO:2's envelope: <to/> the room, <from/> our real bare JID
        (XEP-0384 §5.5.1: <to/> is a MUST in group chats)."""
        await self.read_members(room)
        recipients = sorted(room.members | room.occupants)
        namespaces = namespaces or self.namespaces
        async with self.lock:
            for ns in namespaces:
                for bare in recipients + [self.bare]:
                    await self.sm.refresh_device_list(ns, bare)
            plain = {OLDMEMO_NS: text.encode("utf-8"),
                     TWOMEMO_NS: sce_envelope(text, self.bare, room.jid, self.affixes)}
            messages, errors = await self.sm.encrypt(
                frozenset(recipients), {ns: plain[ns] for ns in namespaces},
                backend_priority_order=namespaces)
        if not messages:
            raise RuntimeError(f"nothing sent to {room.jid}: {self.error_texts(errors)}")
        for message in sorted(messages, key=lambda m: namespaces.index(m.namespace)):
            msg_id = str(uuid.uuid4())
            stanza = self.message_stanza(room.jid, "groupchat", message, msg_id)
            room.sent_ids.add(msg_id)
            stanza.send()
            self.emit_sent(room.jid, msg_id, message, errors, room=room.jid,
                           version=VERSION_NAME[message.namespace])

    async def handle_groupchat(self, room, x):
        """A type=groupchat message from one of our rooms: the sender's real JID from its
        muc#user item (archived copies) or from occupant presence; our own reflection is
        recognised by its origin-id (XEP-0359) or our nick, and not decrypted (we hold no
        key for our own sending device)."""
        nick = JID(x.get("from") or "").resource
        item = x.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
        real = JID(item.get("jid")).bare if item is not None and item.get("jid") else None
        sender = real or room.nicks.get(nick)
        stanza_id = None
        for sid in x.findall(f"{{{NS_SID}}}stanza-id"):
            if JID(sid.get("by") or "").bare == room.jid:
                stanza_id = sid.get("id")
        origin = x.find(f"{{{NS_SID}}}origin-id")
        origin_id = origin.get("id") if origin is not None else None
        enc = find_encrypted(x)
        base = {"from": sender, "to": room.jid, "room": room.jid, "nick": nick,
                "groupchat": True, "carbon": None, "id": x.get("id"), "stanza_id": stanza_id,
                "version": VERSION_NAME[enc.tag[1:].split("}")[0]] if enc is not None else None}
        if (origin_id and origin_id in room.sent_ids) or (nick == room.nick and sender in (None, self.bare)):
            emit(dict(base, type="reflection", origin_id=origin_id))
            return
        if enc is None:
            body = x.find(f"{{{NS_CLIENT}}}body")
            if body is not None:
                emit(dict(base, type="plain", body=body.text or ""))
            return
        if sender is None:
            emit(dict(base, type="error", device=None,
                      error=f"no real JID known for nick {nick!r} in {room.jid}"))
            return
        base["device"] = sender_device(enc)
        # an OMEMO:2 envelope must say <to/> the room, <from/> the sender's real JID
        await self.decrypt_and_emit(enc, sender, base, x)

    async def handle_pep_event(self, from_bare, event):
        items = event.find(f"{{{NS_PUBSUB_EVENT}}}items")
        nodes = {DEVICELIST_NODE: (OLDMEMO_NS, "list", oldmemo.etree),
                 DEVICES2_NODE: (TWOMEMO_NS, "devices", twomemo.etree)}
        if items is None or items.get("node") not in nodes:
            return
        namespace, tag, codec = nodes[items.get("node")]
        if namespace not in self.namespaces:
            return
        item = None
        for i in items.findall(f"{{{NS_PUBSUB_EVENT}}}item"):
            item = i
        if item is None:
            return
        lst = item.find(f"{{{namespace}}}{tag}")
        if lst is None:
            return
        try:
            devices = codec.parse_device_list(lst)
        except Exception as e:  # noqa: BLE001
            emit({"type": "error", "from": from_bare, "device": None, "carbon": None,
                  "error": f"bad device list: {type(e).__name__}: {e}"})
            return
        emit({"type": "devicelist", "from": from_bare, "devices": sorted(devices),
              "version": VERSION_NAME[namespace]})
        if self.sm is None:
            return
        async with self.lock:
            await self.sm.update_device_list(namespace, from_bare, devices)
        if from_bare == self.bare and self.own_devicelist_seen is not None:
            self.own_devicelist_seen.set()

    # -- commands -------------------------------------------------------------

    async def command_loop(self):
        while True:
            line = await self.commands.get()
            if line is None:
                line = "quit"
            line = line.strip()
            if not line:
                continue
            try:
                stop = await self.run_command(line)
            except Exception as e:  # noqa: BLE001
                log.exception("command failed: %s", line)
                emit({"type": "command_error", "command": line, "error": f"{type(e).__name__}: {e}"})
                continue
            if stop:
                return

    async def run_command(self, line):
        parts = line.split(" ", 2)
        cmd = parts[0]
        if cmd == "quit":
            emit({"type": "bye"})
            self.quitting = True
            self.disconnect(wait=2.0)
            # "disconnected" finishes us; this is the fallback.
            asyncio.get_event_loop().call_later(5, self.finish, 0)
            return True
        if cmd == "ping":
            emit({"type": "pong"})
        elif cmd == "send" and len(parts) == 3 and JID(parts[1]).bare in self.rooms:
            await self.send_room(self.rooms[JID(parts[1]).bare], parts[2])
        elif cmd == "send" and len(parts) == 3:
            await self.send_encrypted(parts[1], parts[2])
        elif cmd == "sendv" and len(line.split(" ", 3)) == 4:
            _, version, to, text = line.split(" ", 3)
            if NAMESPACE_OF.get(version) not in self.namespaces:
                raise ValueError(f"version {version} is not one of ours "
                                 f"({[VERSION_NAME[ns] for ns in self.namespaces]})")
            if JID(to).bare in self.rooms:
                await self.send_room(self.rooms[JID(to).bare], text, [NAMESPACE_OF[version]])
            else:
                await self.send_encrypted(to, text, [NAMESPACE_OF[version]])
        elif cmd == "affix" and len(parts) >= 2:
            self.set_affixes(line.split()[1:])
            emit({"type": "pong", "affixes": self.affixes})
        elif cmd == "mam" and len(parts) <= 2:
            await self.catch_up(parts[1] if len(parts) == 2 else None)
        elif cmd == "join" and len(parts) == 3:
            await self.join_room(JID(parts[1]).bare, parts[2])
        elif cmd in ("members", "leave") and len(parts) == 2 and JID(parts[1]).bare in self.rooms:
            room = self.rooms[JID(parts[1]).bare]
            if cmd == "members":
                await self.read_members(room)
                emit({"type": "members", "room": room.jid, "occupants": room.occupant_map(),
                      "members": sorted(room.members)})
            else:
                self.plugin["xep_0045"].leave_muc(JID(room.jid), room.nick)
                del self.rooms[room.jid]
                emit({"type": "left", "room": room.jid})
        elif cmd == "receipts" and len(parts) == 2 and parts[1] in ("on", "off"):
            self.receipts = parts[1] == "on"
            emit({"type": "pong"})
        elif cmd == "raw" and len(parts) >= 2:
            xml = line[len("raw "):].strip()
            ET.fromstring(xml)      # must be well-formed; sent verbatim
            self.send_raw(xml)
            emit({"type": "raw_sent"})
        elif cmd in ("refresh", "devices") and len(parts) == 2:
            bare = JID(parts[1]).bare
            async with self.lock:
                if cmd == "refresh":
                    for ns in self.namespaces:
                        await self.sm.refresh_device_list(ns, bare)
                emit({"type": "refreshed" if cmd == "refresh" else "devices", "jid": bare,
                      "devices": await self.describe_devices(bare)})
        else:
            raise ValueError("unknown command or wrong arguments (send JID|ROOM TEXT | sendv 2|0.3 "
                             "JID TEXT | affix to=JID from=JID|off | mam [JID] | refresh JID"
                             " | devices JID | raw XML | receipts on|off | join ROOM NICK | "
                             "members ROOM | leave ROOM | ping | quit)")
        return False

    async def describe_devices(self, bare):
        out = []
        for d in sorted(await self.sm.get_device_information(bare), key=lambda d: d.device_id):
            out.append({"device": d.device_id,
                        "fingerprint": "".join(self.sm.format_identity_key(d.identity_key)),
                        "identity_key": d.identity_key.hex(),
                        "trust": d.trust_level_name,
                        "active": any(a for _, a in d.active),
                        "versions": sorted(VERSION_NAME[ns] for ns in d.namespaces)})
        return out

    def set_affixes(self, words):
        """`affix to=JID from=JID` replaces those SCE affixes in what we send in OMEMO:2
        from now on (a tampering test); `affix off` goes back to the true values."""
        if words == ["off"]:
            self.affixes = {}
            return
        for w in words:
            key, sep, value = w.partition("=")
            if not sep or key not in ("to", "from"):
                raise ValueError(f"affix: want to=JID, from=JID or off, not {w!r}")
            self.affixes[key] = value

    async def send_encrypted(self, to, text, namespaces=None):
        """Encrypt for every device of `to` and our own other devices: each device gets
        the first version of `namespaces` (default: ours, OMEMO:2 first) it publishes,
        one stanza per version used (XEP-0384 §5.5: OMEMO:2 carries an SCE envelope)."""
        to_bare = JID(to).bare
        namespaces = namespaces or self.namespaces
        async with self.lock:
            # Fresh device lists for the recipient and for ourselves.
            for ns in namespaces:
                await self.sm.refresh_device_list(ns, to_bare)
                if to_bare != self.bare:
                    await self.sm.refresh_device_list(ns, self.bare)
            plain = {OLDMEMO_NS: text.encode("utf-8"),
                     TWOMEMO_NS: sce_envelope(text, self.bare, to_bare, self.affixes)}
            messages, errors = await self.sm.encrypt(
                frozenset([to_bare]), {ns: plain[ns] for ns in namespaces},
                backend_priority_order=namespaces)
        # a full JID addresses that resource (its account's other devices get carbons)
        address = str(JID(to)) if JID(to).resource else to_bare
        for message in sorted(messages, key=lambda m: namespaces.index(m.namespace)):
            msg_id = str(uuid.uuid4())
            stanza = self.message_stanza(address, "chat", message, msg_id)
            if self.receipts:
                stanza.append(el(f"{{{NS_RECEIPTS}}}request"))
            stanza.send()
            self.emit_sent(to_bare, msg_id, message, errors,
                           version=VERSION_NAME[message.namespace])
        if not messages:
            raise RuntimeError(f"nothing sent to {to_bare}: {self.error_texts(errors)}")

    def message_stanza(self, to, mtype, message, msg_id):
        """An OMEMO message stanza with the fallback body, store hint (XEP-0334), EME
        (XEP-0380) and origin-id (XEP-0359)."""
        stanza = self.make_message(mto=to, mbody=FALLBACK_BODY, mtype=mtype)
        stanza["id"] = msg_id
        stanza.append(serialize_message(message))
        stanza.append(el(f"{{{NS_HINTS}}}store"))
        stanza.append(el(f"{{{NS_EME}}}encryption", {"namespace": message.namespace,
                                                     "name": "OMEMO"}))
        stanza.append(el(f"{{{NS_SID}}}origin-id", {"id": msg_id}))
        return stanza

    @staticmethod
    def error_texts(errors):
        return sorted(f"{e.bare_jid}/{e.device_id}: {type(e.exception).__name__}: "
                      f"{e.exception}" for e in errors)

    def emit_sent(self, to, msg_id, message, errors, **extra):
        recipients = sorted(({"jid": k.bare_jid, "device": k.device_id, "prekey": kex is not None}
                             for k, kex in message.keys),
                            key=lambda r: (r["jid"], r["device"]))
        emit(dict({"type": "sent", "to": to, "id": msg_id,
                   "devices": sorted(r["device"] for r in recipients),
                   "recipients": recipients,
                   "errors": self.error_texts(errors)}, **extra))

    def send_omemo_stanza(self, message, bare_jid):
        """Send an OMEMO message made by python-omemo itself (empty/key transport)."""
        stanza = self.make_message(mto=bare_jid, mtype="chat")
        stanza["id"] = str(uuid.uuid4())
        stanza.append(serialize_message(message))
        stanza.append(el(f"{{{NS_HINTS}}}store"))
        stanza.send()
        log.info("sent empty OMEMO message to %s (%s)", bare_jid,
                 [k.device_id for k, _ in message.keys])


def serialize_message(message):
    """python-omemo's message as <encrypted/> of its version."""
    if message.namespace == TWOMEMO_NS:
        return twomemo.etree.serialize_message(message)
    return oldmemo.etree.serialize_message(message)


def find_encrypted(stanza):
    """The OMEMO <encrypted/> of a message, OMEMO:2 or legacy, or None."""
    for ns in (TWOMEMO_NS, OLDMEMO_NS):
        enc = stanza.find(f"{{{ns}}}encrypted")
        if enc is not None:
            return enc
    return None


def sender_device(enc):
    """The sid of an <encrypted/>'s <header/> as an int, or None."""
    header = enc.find(f"{enc.tag.split('}')[0]}}}header")
    sid = header.get("sid") if header is not None else None
    return int(sid) if sid and sid.isdigit() else None


class Room:
    """A group chat we joined: our nick, who is in it (nick -> real bare JID, kept after
    they leave so that their late messages still have a sender), its affiliated JIDs, the
    ids of what we sent (to know our reflections)."""

    def __init__(self, jid, nick):
        self.jid = jid
        self.nick = nick
        self.nicks = {}
        self.present = set()     # nicks in the room now
        self.occupants = set()   # real bare JIDs of everyone who was in it
        self.members = set()
        self.sent_ids = set()

    def occupant_map(self):
        return {n: self.nicks.get(n) for n in sorted(self.present) if n != self.nick}


class PeerSessionManager(omemo.SessionManager):
    client = None   # the Peer; set before create()

    @classmethod
    def _c(cls):
        return cls.client

    async def _upload_bundle(self, bundle):
        c = self._c()
        try:
            if bundle.namespace == OLDMEMO_NS:
                await c.publish(f"{BUNDLES_NODE}{bundle.device_id}", "current",
                                oldmemo.etree.serialize_bundle(bundle))
            elif bundle.namespace == TWOMEMO_NS:
                # XEP-0384 §5.3.2: one node, item id = device id, max_items = max
                await c.publish(BUNDLES2_NODE, str(bundle.device_id),
                                twomemo.etree.serialize_bundle(bundle), max_items="max")
            else:
                raise omemo.UnknownNamespace(bundle.namespace)
        except (IqError, IqTimeout) as e:
            raise omemo.BundleUploadFailed(iq_error_text(e)) from e

    async def _download_bundle(self, namespace, bare_jid, device_id):
        if namespace not in (OLDMEMO_NS, TWOMEMO_NS):
            raise omemo.UnknownNamespace(namespace)
        legacy = namespace == OLDMEMO_NS
        c = self._c()
        try:
            if legacy:
                items = await c.pubsub_items(bare_jid, f"{BUNDLES_NODE}{device_id}")
            else:
                items = [i for i in await c.pubsub_items(bare_jid, BUNDLES2_NODE) or []
                         if i.get("id") == str(device_id)]
        except (IqError, IqTimeout) as e:
            raise omemo.BundleDownloadFailed(iq_error_text(e)) from e
        if not items:
            raise omemo.BundleNotFound(f"no bundle for {bare_jid}/{device_id}")
        bundle = items[-1].find(f"{{{namespace}}}bundle")
        if bundle is None:
            raise omemo.BundleNotFound(f"bundle item for {bare_jid}/{device_id} has no <bundle/>")
        try:
            if legacy:
                return oldmemo.etree.parse_bundle(bundle, bare_jid, device_id)
            return twomemo.etree.parse_bundle(bundle, bare_jid, device_id)
        except Exception as e:  # noqa: BLE001
            raise omemo.BundleDownloadFailed(f"bad bundle: {type(e).__name__}: {e}") from e

    async def _delete_bundle(self, namespace, device_id):
        if namespace not in (OLDMEMO_NS, TWOMEMO_NS):
            raise omemo.UnknownNamespace(namespace)
        c = self._c()
        iq = c.Iq()
        iq["type"] = "set"
        if namespace == OLDMEMO_NS:
            iq.append(el(f"{{{NS_PUBSUB_OWNER}}}pubsub", children=[
                el(f"{{{NS_PUBSUB_OWNER}}}delete", {"node": f"{BUNDLES_NODE}{device_id}"})]))
        else:
            iq.append(el(f"{{{NS_PUBSUB}}}pubsub", children=[
                el(f"{{{NS_PUBSUB}}}retract", {"node": BUNDLES2_NODE, "notify": "true"},
                   children=[el(f"{{{NS_PUBSUB}}}item", {"id": str(device_id)})])]))
        try:
            await iq.send(timeout=10)
        except IqError:
            pass
        except IqTimeout as e:
            raise omemo.BundleDeletionFailed("timeout") from e

    async def _upload_device_list(self, namespace, device_list):
        if namespace not in (OLDMEMO_NS, TWOMEMO_NS):
            raise omemo.UnknownNamespace(namespace)
        c = self._c()
        try:
            # Never drop another device's id: merge with what is online now.
            merged = dict(await c.fetch_device_list(c.bare, namespace))
            merged.update(device_list)
            if namespace == OLDMEMO_NS:
                await c.publish(DEVICELIST_NODE, "current",
                                oldmemo.etree.serialize_device_list(merged))
            else:
                await c.publish(DEVICES2_NODE, "current",
                                twomemo.etree.serialize_device_list(merged))
        except (IqError, IqTimeout) as e:
            raise omemo.DeviceListUploadFailed(iq_error_text(e)) from e

    async def _download_device_list(self, namespace, bare_jid):
        if namespace not in (OLDMEMO_NS, TWOMEMO_NS):
            raise omemo.UnknownNamespace(namespace)
        try:
            return await self._c().fetch_device_list(bare_jid, namespace)
        except (IqError, IqTimeout) as e:
            raise omemo.DeviceListDownloadFailed(iq_error_text(e)) from e

    async def _evaluate_custom_trust_level(self, device):
        if device.trust_level_name == TRUST_BLIND:
            return TrustLevel.TRUSTED
        if device.trust_level_name == TRUST_DISTRUSTED:
            return TrustLevel.DISTRUSTED
        if device.trust_level_name == TRUST_UNDECIDED:
            return TrustLevel.UNDECIDED
        raise omemo.UnknownTrustLevel(device.trust_level_name)

    async def _make_trust_decision(self, undecided, identifier):
        # Blind trust: every identity we meet is trusted (tests only).
        for device in undecided:
            await self.set_trust(device.bare_jid, device.identity_key, TRUST_BLIND)

    async def _send_message(self, message, bare_jid):
        self._c().send_omemo_stanza(message, bare_jid)


# --------------------------------------------------------------------------

def stdin_reader(loop, queue):
    for raw in sys.stdin.buffer:
        loop.call_soon_threadsafe(queue.put_nowait, raw.decode("utf-8", "replace"))
    loop.call_soon_threadsafe(queue.put_nowait, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jid", required=True, help="USER@HOST/RESOURCE")
    ap.add_argument("--password", required=True)
    ap.add_argument("--server", required=True, help="127.0.0.1:PORT")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--ready-timeout", type=float, default=40.0)
    ap.add_argument("--verbose", action="store_true", help="debug logs (with stanzas) on stderr")
    ap.add_argument("--omemo", choices=sorted(MODES), default="legacy",
                    help="the OMEMO versions we publish and speak (both: OMEMO:2 preferred)")
    args = ap.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:
        for name in ("slixmpp", "omemo", "oldmemo", "twomemo", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)

    os.makedirs(args.data_dir, exist_ok=True)
    host, _, port = args.server.rpartition(":")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    peer = Peer(args.jid, args.password, args.data_dir, args.ready_timeout, MODES[args.omemo])
    peer.done = loop.create_future()
    peer.commands = asyncio.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: peer.commands.put_nowait("quit")
                                if peer.sm is not None else peer.finish(1))
    threading.Thread(target=stdin_reader, args=(loop, peer.commands), daemon=True).start()

    def startup_watchdog():
        if peer.sm is None and not peer.done.done():
            peer.fatal(f"no XMPP session after {args.ready_timeout}s")
    loop.call_later(args.ready_timeout + 5, startup_watchdog)

    peer.connect((host, int(port)), force_starttls=False, disable_starttls=True)
    code = loop.run_until_complete(peer.done)
    sys.stdout.flush()
    os._exit(code)   # do not wait for the stdin thread


if __name__ == "__main__":
    main()
