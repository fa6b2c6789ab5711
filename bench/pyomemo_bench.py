#!/usr/bin/python3
"""The work of mend-bench's sections 1 and 4 done by python-omemo (python3-omemo with
python3-oldmemo, OMEMO 0.3), so that mend-bench can print its speed as a multiple.

It prints lines on stdout (seconds), for mend-bench to read:
  encrypt N MEDIAN MIN SETUP_PER_DEVICE
  decrypt MESSAGES MEDIAN MIN MESSAGES_PER_SECOND

Like mend-bench, recipients are aliases: one real account's bundle is published under
many (JID, device) pairs, 100 devices per JID. The storage is a dict in memory (nothing
is written to disk, unlike mend's store, which commits to SQLite): python-omemo's cost
without any persistence. Every figure is a median after a warm-up.
"""
import argparse
import asyncio
import logging
import statistics
import sys
import time
import xml.etree.ElementTree as ET

import omemo
import oldmemo
import oldmemo.etree
from omemo.storage import Just, Nothing, Storage
from omemo.types import TrustLevel
from oldmemo.oldmemo import NAMESPACE as NS

BODY = (b"Are we still on for lunch tomorrow? I can book the place "
        b"near the station for half past twelve.")
DOMAIN = "bench.example"
PER_JID = 100


class MemoryStorage(Storage):
    def __init__(self):
        super().__init__()
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


class Server:
    """Bundles and device lists by JID, and the stanzas sent (heartbeats), in memory."""

    def __init__(self):
        self.bundles = {}  # (jid, device) -> serialized <bundle/>
        self.lists = {}    # jid -> {device: label}
        self.sent = []     # (message, to)


def manager_class(server):
    class Manager(omemo.SessionManager):
        async def _upload_bundle(self, bundle):
            server.bundles[(bundle.bare_jid, bundle.device_id)] = \
                oldmemo.etree.serialize_bundle(bundle)

        async def _download_bundle(self, namespace, bare_jid, device_id):
            xml = server.bundles.get((bare_jid, device_id))
            if xml is None:
                raise omemo.BundleNotFound(f"{bare_jid}/{device_id}")
            return oldmemo.etree.parse_bundle(xml, bare_jid, device_id)

        async def _delete_bundle(self, namespace, device_id):
            pass

        async def _upload_device_list(self, namespace, device_list):
            server.lists.setdefault(self._own_bare_jid_for_bench, {}).update(device_list)

        async def _download_device_list(self, namespace, bare_jid):
            return dict(server.lists.get(bare_jid, {}))

        async def _evaluate_custom_trust_level(self, device):
            return TrustLevel.TRUSTED

        async def _make_trust_decision(self, undecided, identifier):
            for device in undecided:
                await self.set_trust(device.bare_jid, device.identity_key, "blind")

        async def _send_message(self, message, bare_jid):
            server.sent.append((message, bare_jid))

    return Manager


async def account(server, jid):
    cls = manager_class(server)
    cls._own_bare_jid_for_bench = jid
    storage = MemoryStorage()
    sm = await cls.create(backends=[oldmemo.Oldmemo(storage)], storage=storage,
                          own_bare_jid=jid, initial_own_label=None,
                          undecided_trust_level_name="blind")
    await sm.after_history_sync()
    own, _ = await sm.get_own_device_information()
    return sm, own.device_id


def message_text(messages):
    message = next(m for m in messages if m.namespace == NS)
    return ET.tostring(oldmemo.etree.serialize_message(message), encoding="unicode")


async def timed(fn, warm, reps):
    for _ in range(warm):
        await fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t), min(t)


async def bench_encrypt(ns, quick):
    """One message for N alias devices of a real account (sessions built, not answered)."""
    server = Server()
    sender, _ = await account(server, "sender@" + DOMAIN)
    real, real_id = await account(server, "real@" + DOMAIN)
    bundle = server.bundles[("real@" + DOMAIN, real_id)]
    out = {}
    for n in ns:
        jids = set()
        for i in range(n):
            jid = f"peer{n}x{i // PER_JID}@{DOMAIN}"
            server.bundles[(jid, 1000 + i)] = bundle
            server.lists.setdefault(jid, {})[1000 + i] = None
            jids.add(jid)
        jids = frozenset(jids)
        for jid in jids:
            await sender.refresh_device_list(NS, jid)
        t0 = time.perf_counter()
        messages, errors = await sender.encrypt(jids, {NS: BODY})
        setup = time.perf_counter() - t0
        keys = sum(1 for _ in next(m for m in messages if m.namespace == NS).keys)
        if errors or keys != n:
            raise RuntimeError(f"encrypt for {n}: {keys} keys, errors {errors}")
        reps = 5 if n >= 1000 else (9 if quick else 21)

        async def one():
            await sender.encrypt(jids, {NS: BODY})
        med, mn = await timed(one, 1 if n >= 1000 else 2, reps)
        out[str(n)] = {"median": med, "min": mn, "setup_per_device": setup / n}
    return out


async def bench_decrypt(n):
    """n normal messages from an answered session, each parsed from text and decrypted."""
    server = Server()
    alice, _ = await account(server, "alice@" + DOMAIN)
    bob, _ = await account(server, "bob@" + DOMAIN)
    await alice.refresh_device_list(NS, "bob@" + DOMAIN)
    await bob.refresh_device_list(NS, "alice@" + DOMAIN)
    msgs, _ = await alice.encrypt(frozenset({"bob@" + DOMAIN}), {NS: BODY})
    first = next(m for m in msgs if m.namespace == NS)
    await bob.decrypt(first)
    answer, _ = await bob.encrypt(frozenset({"alice@" + DOMAIN}), {NS: BODY})
    await alice.decrypt(next(m for m in answer if m.namespace == NS))
    texts = []
    for _ in range(n):
        msgs, _ = await alice.encrypt(frozenset({"bob@" + DOMAIN}), {NS: BODY})
        texts.append(message_text(msgs))
    t = []
    t_all = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        message = await oldmemo.etree.parse_message(ET.fromstring(text), "alice@" + DOMAIN,
                                                    "bob@" + DOMAIN, bob)
        plaintext, _, _ = await bob.decrypt(message)
        t.append(time.perf_counter() - t0)
        if plaintext != BODY:
            raise RuntimeError("decrypted another text")
    total = time.perf_counter() - t_all
    return {"messages": n, "median": statistics.median(t), "min": min(t),
            "per_second": n / total}


async def main_async(args):
    ns = [int(x) for x in args.n.split(",")]
    for n, e in (await bench_encrypt(ns, args.quick)).items():
        print(f"encrypt {n} {e['median']:.9f} {e['min']:.9f} {e['setup_per_device']:.9f}",
              flush=True)
    d = await bench_decrypt(args.messages)
    print(f"decrypt {d['messages']} {d['median']:.9f} {d['min']:.9f} {d['per_second']:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1,10,100", help="recipient device counts")
    ap.add_argument("--messages", type=int, default=1000, help="messages to decrypt")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # its notes on our in-memory server's device lists
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
