#!/usr/bin/python3
"""OMEMO:2 interop vectors made by python-twomemo (Debian's python3-twomemo).

The payload cryptography and the XML come from twomemo's own code
(Twomemo.encrypt_plaintext / decrypt_plaintext, twomemo.etree), not from
anything written for mend, so test-omemo2 checks mend against an
implementation we did not write.

  omemo2-vectors.py make DIR      writes the fixtures into DIR (xep/fixtures/omemo2)
  omemo2-vectors.py decrypt KEYMAT_HEX CIPHERTEXT_B64
                                  twomemo decrypts a payload mend made; prints the
                                  plaintext as base64, exits 1 when twomemo refuses it
  omemo2-vectors.py encrypt PLAINTEXT_B64
                                  twomemo encrypts; prints KEYMAT_HEX CIPHERTEXT_B64
  omemo2-vectors.py kex-to-bob STATE_JSON FROM_JID FROM_DEVICE KEX_B64
                                  the fixture device bob (its state in STATE_JSON) takes
                                  an OMEMOKeyExchange mend made; prints the key material
                                  as hex, exits 1 when twomemo refuses it
  omemo2-vectors.py message-to-bob STATE_JSON ENCRYPTED_XML
                                  the fixture device bob reads a whole <encrypted/> mend
                                  wrote from alice@example.org/1111 (twomemo.etree), takes
                                  its key and decrypts the payload; prints the envelope as
                                  base64, exits 1 when twomemo refuses it
  omemo2-vectors.py message-from-alice BUNDLE_XML TO_JID TO_DEVICE BODY
                                  a new twomemo device alice@example.org/1111 writes a whole
                                  <encrypted/> with an SCE envelope (ElementTree) holding
                                  BODY to mend's bundle; prints it on one line
  omemo2-vectors.py fingerprint IK_B64
                                  python-omemo's fingerprint of an OMEMO:2 identity key
                                  (SessionManager.format_identity_key), as one hex string
  omemo2-vectors.py kex-from-alice BUNDLE_XML TO_JID TO_DEVICE KEYMAT_HEX
                                  a new twomemo device builds a session from mend's
                                  bundle and encrypts KEYMAT; prints the OMEMOKeyExchange
                                  (base64) and its identity key (hex)

Exits 77 (automake: skip) when python3-twomemo is not installed.
Run it with Debian's interpreter (/usr/bin/python3), where the packages are.
"""
import asyncio
import base64
import json
import os
import sys
import xml.etree.ElementTree as ET

try:
    import omemo
    from omemo.storage import Just, Nothing, Storage
    import twomemo
    import twomemo.etree
    from twomemo.twomemo import (ContentImpl, EncryptedKeyMaterialImpl, KeyExchangeImpl,
                                 PlainKeyMaterialImpl, Twomemo)
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"python3-twomemo is not usable: {e}", file=sys.stderr)
    sys.exit(77)

NS_SCE = "urn:xmpp:sce:1"
NS_CLIENT = "jabber:client"
ALICE = "alice@example.org"
BOB = "bob@example.org"
ALICE_DEVICE = 1111
BOB_DEVICE = 2222


class MemoryStorage(Storage):
    def __init__(self, data=None):
        super().__init__()
        self.data = dict(data or {})

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


async def encrypt(plaintext):
    # encrypt_plaintext uses no state of the backend (XEP-0384 §4.4 only)
    content, keymat = await Twomemo.encrypt_plaintext(None, plaintext)
    return keymat.key + keymat.auth_tag, content.ciphertext


async def decrypt(keymat, ciphertext):
    plain = PlainKeyMaterialImpl(keymat[:32], keymat[32:])
    return await Twomemo.decrypt_plaintext(None, ContentImpl(ciphertext), plain)


def envelope(body, frm, to, stamp, rpad, default_ns):
    """An SCE envelope as ElementTree writes it: prefixed (ns0:) unless default_ns."""
    if default_ns:
        env = ET.Element("envelope", {"xmlns": NS_SCE})
        content = ET.SubElement(env, "content")
        ET.SubElement(content, "body", {"xmlns": NS_CLIENT}).text = body
        ET.SubElement(env, "rpad").text = rpad
        ET.SubElement(env, "time", {"stamp": stamp})
        ET.SubElement(env, "from", {"jid": frm})
        ET.SubElement(env, "to", {"jid": to})
    else:
        env = ET.Element(f"{{{NS_SCE}}}envelope")
        content = ET.SubElement(env, f"{{{NS_SCE}}}content")
        ET.SubElement(content, f"{{{NS_CLIENT}}}body").text = body
        ET.SubElement(env, f"{{{NS_SCE}}}rpad").text = rpad
        ET.SubElement(env, f"{{{NS_SCE}}}time", {"stamp": stamp})
        ET.SubElement(env, f"{{{NS_SCE}}}from", {"jid": frm})
        ET.SubElement(env, f"{{{NS_SCE}}}to", {"jid": to})
    return ET.tostring(env, encoding="unicode").encode("utf-8")


async def device(bare_jid, device_id, storage=None):
    backend = Twomemo(storage or MemoryStorage())
    await backend.generate_pre_keys(25)  # XEP-0384 §4.2: at least 25
    bundle = await backend.get_bundle(bare_jid, device_id)
    return backend, bundle


def load_device(state_path):
    with open(state_path) as f:
        return Twomemo(MemoryStorage(json.load(f)))


async def kex_to_bob(state_path, from_jid, from_device, kex_b64):
    """Bob (the fixture's twomemo device) builds the session passively (§5.6)."""
    bob = load_device(state_path)
    kex, auth = KeyExchangeImpl.parse(base64.b64decode(kex_b64))
    ekm = EncryptedKeyMaterialImpl.parse(auth, from_jid, from_device)
    _session, keymat = await bob.build_session_passive(from_jid, from_device, kex, ekm)
    return keymat.key + keymat.auth_tag


async def kex_from_alice(bundle_path, to_jid, to_device, keymat):
    """A new twomemo device builds a session from mend's bundle (§5.4) and encrypts."""
    bundle = twomemo.etree.parse_bundle(ET.parse(bundle_path).getroot(), to_jid, to_device)
    alice, _ = await device(ALICE, ALICE_DEVICE)
    session, ekm = await alice.build_session_active(
        to_jid, to_device, bundle, PlainKeyMaterialImpl(keymat[:32], keymat[32:]))
    return session.key_exchange.serialize(ekm.serialize()), session.key_exchange.identity_key


async def message(sender, receiver_bundle, plaintext):
    """A real <encrypted/>: twomemo builds a session from the bundle (kex) and encrypts."""
    content, keymat = await sender.encrypt_plaintext(plaintext)
    _session, ekm = await sender.build_session_active(
        BOB, BOB_DEVICE, receiver_bundle, keymat)
    msg = omemo.Message(twomemo.twomemo.NAMESPACE, ALICE, ALICE_DEVICE, content,
                        frozenset([(ekm, _session.key_exchange)]))
    return twomemo.etree.serialize_message(msg)


async def message_to_bob(state_path, xml_path):
    bob = load_device(state_path)
    msg = twomemo.etree.parse_message(ET.parse(xml_path).getroot(), ALICE)
    ekm, kex = next((k, x) for k, x in msg.keys
                    if k.bare_jid == BOB and k.device_id == BOB_DEVICE)
    if kex is None:
        raise ValueError("no key exchange for bob: the fixture device has no session")
    _session, keymat = await bob.build_session_passive(msg.bare_jid, msg.device_id, kex, ekm)
    return await bob.decrypt_plaintext(msg.content, keymat)


async def message_from_alice(bundle_path, to_jid, to_device, body):
    bundle = twomemo.etree.parse_bundle(ET.parse(bundle_path).getroot(), to_jid, to_device)
    alice, _ = await device(ALICE, ALICE_DEVICE)
    env = envelope(body, ALICE, to_jid, "2026-12-06T11:00:00Z", "rpad-from-twomemo", False)
    content, keymat = await alice.encrypt_plaintext(env)
    session, ekm = await alice.build_session_active(to_jid, to_device, bundle, keymat)
    msg = omemo.Message(twomemo.twomemo.NAMESPACE, ALICE, ALICE_DEVICE, content,
                        frozenset([(ekm, session.key_exchange)]))
    return ET.tostring(twomemo.etree.serialize_message(msg), encoding="unicode")


def write(path, element_or_text):
    text = element_or_text
    if not isinstance(text, str):
        text = ET.tostring(element_or_text, encoding="unicode")
    with open(path, "w") as f:
        f.write("<!-- made by tests/omemo2-vectors.py with python3-twomemo -->\n")
        f.write(text + "\n")


async def make(outdir):
    os.makedirs(outdir, exist_ok=True)
    vectors = []
    cases = [
        ("Hello from twomemo", "2026-12-06T11:00:00Z", "x" * 17, True),
        ("Grüße, <b>&amp; ünïcödé</b> ✓", "2026-12-06T12:30:45+01:00", "0" * 201, False),
        ("", "2026-12-06T11:00:00.123Z", "", True),
    ]
    for body, stamp, rpad, default_ns in cases:
        env = envelope(body, ALICE, BOB, stamp, rpad, default_ns)
        keymat, ct = await encrypt(env)
        vectors.append(f"{keymat.hex()} {base64.b64encode(ct).decode()} "
                       f"{base64.b64encode(env).decode()}")
    with open(os.path.join(outdir, "payload-vectors.txt"), "w") as f:
        f.write("# made by tests/omemo2-vectors.py with python3-twomemo:\n"
                "# KEYMAT_HEX (key || truncated HMAC) CIPHERTEXT_B64 ENVELOPE_B64\n")
        f.write("\n".join(vectors) + "\n")

    alice, _ = await device(ALICE, ALICE_DEVICE)
    bob_storage = MemoryStorage()
    _bob, bob_bundle = await device(BOB, BOB_DEVICE, bob_storage)
    # bob's private state (test keys only), for kex-to-bob
    with open(os.path.join(outdir, "twomemo-bob-state.json"), "w") as f:
        json.dump(bob_storage.data, f, indent=0, sort_keys=True)
        f.write("\n")
    write(os.path.join(outdir, "twomemo-bundle.xml"), twomemo.etree.serialize_bundle(bob_bundle))
    write(os.path.join(outdir, "twomemo-devices.xml"), twomemo.etree.serialize_device_list(
        {ALICE_DEVICE: "python-twomemo", 31415: None, 27183: "Ünïcode label"}))
    env = envelope("kex from twomemo", ALICE, BOB, "2026-12-06T11:00:00Z", "pad", True)
    write(os.path.join(outdir, "twomemo-message.xml"), await message(alice, bob_bundle, env))


def main(argv):
    if len(argv) == 3 and argv[1] == "make":
        run(make(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "decrypt":
        try:
            plain = run(decrypt(bytes.fromhex(argv[2]), base64.b64decode(argv[3])))
        except Exception as e:  # noqa: BLE001 - twomemo refused it: say why, exit 1
            print(f"twomemo refused: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(base64.b64encode(plain).decode())
        return 0
    if len(argv) == 6 and argv[1] == "kex-to-bob":
        try:
            keymat = run(kex_to_bob(argv[2], argv[3], int(argv[4]), argv[5]))
        except Exception as e:  # noqa: BLE001 - twomemo refused it: say why, exit 1
            print(f"twomemo refused: {type(e).__name__}: {e!r}", file=sys.stderr)
            return 1
        print(keymat.hex())
        return 0
    if len(argv) == 4 and argv[1] == "message-to-bob":
        try:
            env = run(message_to_bob(argv[2], argv[3]))
        except Exception as e:  # noqa: BLE001 - twomemo refused it: say why, exit 1
            print(f"twomemo refused: {type(e).__name__}: {e!r}", file=sys.stderr)
            return 1
        print(base64.b64encode(env).decode())
        return 0
    if len(argv) == 6 and argv[1] == "message-from-alice":
        print(run(message_from_alice(argv[2], argv[3], int(argv[4]), argv[5])))
        return 0
    if len(argv) == 3 and argv[1] == "fingerprint":
        print("".join(omemo.SessionManager.format_identity_key(base64.b64decode(argv[2]))))
        return 0
    if len(argv) == 6 and argv[1] == "kex-from-alice":
        kex, ik = run(kex_from_alice(argv[2], argv[3], int(argv[4]), bytes.fromhex(argv[5])))
        print(base64.b64encode(kex).decode(), ik.hex())
        return 0
    if len(argv) == 3 and argv[1] == "encrypt":
        keymat, ct = run(encrypt(base64.b64decode(argv[2])))
        print(keymat.hex(), base64.b64encode(ct).decode())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
