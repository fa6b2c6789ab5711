#!/usr/bin/python3
"""Catch-up on a real Prosody (127.0.0.1, started and stopped here): the
server's offline store is drained, the bundle published right after a
catch-up offers none of the one-time prekeys that catch-up used, and a new
device sums up the messages that predate it in one line.

What the server holds is read from its own storage (storage = "internal":
Lua files under the harness's data dir): the offline store of an account, the
archived stanzas (whose OMEMO prekey messages name the prekey they use) and
the PEP bundle node.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import skip, test, wait_for, main  # noqa: E402

from mendcli import (MEND, Mend, archived_prekey_ids, messages, offline_items,  # noqa: E402
                     published_prekeys, server, wait_message)

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")


@test
def the_offline_store_is_drained_and_nothing_shows_twice():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, bob = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        bob.publish()
        bodies = [f"while bob is away {i:02d}" for i in range(12)]
        for b in bodies:
            alice.send("bob@localhost", b)
        held = offline_items(srv, "bob")
        assert held == len(bodies), f"Prosody should hold {len(bodies)} offline items, holds {held}"
        with bob.listen("--timeout", "60") as bl:
            wait_for(lambda: any(o.get("type") == "catchup_done" for o in bl.lines), 30,
                     "bob's catch-up to end")
            wait_for(lambda: len(messages(bl)) >= len(bodies), 30, "bob to show every message")
            wait_for(lambda: offline_items(srv, "bob") == 0, 10,
                     f"Prosody's offline store for bob to be empty (holds "
                     f"{offline_items(srv, 'bob')})")
            alice.send("bob@localhost", "and now live")
            wait_message(bl, "and now live")
            got = [m["body"] for m in messages(bl)]
        assert got == bodies + ["and now live"], f"shown (in order, each once): {got}"
        assert offline_items(srv, "bob") == 0, "a live message went to the offline store"
        with bob.listen("--timeout", "4") as again:
            assert again.wait_exit(30) == 0, again.describe()
            assert messages(again) == [], f"shown again: {messages(again)}"


@test
def thirty_new_sessions_while_offline_then_a_clean_bundle():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        bob = Mend(srv, root, "bob", "phone")
        bob.publish()
        bob_id = bob.device_id()
        offered = published_prekeys(srv, "bob", bob_id)
        assert len(offered) == 100, f"bob's first bundle offers {len(offered)} prekeys"
        senders = [Mend(srv, root, "alice", f"d{i:02d}") for i in range(30)]
        for i, s in enumerate(senders):
            s.send("bob@localhost", f"hello from d{i:02d}", timeout=90)
        used = set(archived_prekey_ids(srv, "bob", bob_id))
        assert used and used <= offered, f"prekeys named by the 30 messages: {sorted(used)}"
        print(f"# the 30 prekey messages name {len(used)} distinct one-time prekeys")
        with bob.listen("--timeout", "120") as bl:
            wait_for(lambda: any(o.get("type") == "catchup_done" for o in bl.lines), 60,
                     "bob's catch-up to end")
            wait_for(lambda: not (published_prekeys(srv, "bob", bob_id) & used), 5,
                     "bob's published bundle to drop the used prekeys right after catch-up "
                     f"(still offers {sorted(published_prekeys(srv, 'bob', bob_id) & used)})")
            now = published_prekeys(srv, "bob", bob_id)
            assert len(now) == 100, f"the refilled bundle offers {len(now)} prekeys, not 100"
            wait_for(lambda: len(messages(bl)) >= 30, 30, "bob to show the 30 messages")
            late = Mend(srv, root, "alice", "late")
            late.send("bob@localhost", "a new device, after the catch-up")
            wait_message(bl, "a new device, after the catch-up")
            got = sorted(m["body"] for m in messages(bl))
            errors = [o for o in bl.lines if o.get("type") == "error"]
        want = sorted([f"hello from d{i:02d}" for i in range(30)] +
                      ["a new device, after the catch-up"])
        assert got == want, f"each message once: {got}"
        assert errors == [], f"errors: {errors}"



@test
def a_new_device_sums_up_what_predates_it_in_one_line():
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        phone.publish()
        for i in range(5):
            alice.send("bob@localhost", f"before the tablet {i}")
        tablet = Mend(srv, root, "bob", "tablet")
        tablet.publish()
        cp = alice.send("bob@localhost", "after the tablet")
        assert alice.lines(cp)[-1]["devices"] == 2, cp.stdout
        with tablet.listen("--timeout", "60") as tl:
            wait_for(lambda: any(o.get("type") == "catchup_done" for o in tl.lines), 30,
                     "the tablet's catch-up to end")
            wait_message(tl, "after the tablet")
            wait_for(lambda: offline_items(srv, "bob") == 0, 10, "bob's offline store to drain")
            lines = list(tl.lines)
        errors = [o for o in lines if o.get("type") == "error"]
        notices = [o["text"] for o in lines if o.get("type") == "notice"]
        assert errors == [], f"one error per earlier message: {errors}"
        summary = [n for n in notices if "5 earlier messages" in n]
        assert len(summary) == 1, f"want one summary line for the 5 earlier messages: {notices}"
        assert [m["body"] for m in messages(tl)] == ["after the tablet"], messages(tl)


if __name__ == "__main__":
    main()
