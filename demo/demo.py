#!/usr/bin/python3
"""The mend demo: a throwaway Prosody on 127.0.0.1, alice on two devices (phone
and laptop) and bob on one, all using the real `mend` client. It shows the
device ids and fingerprints, an exchange where every device reads along
(carbons), and bob catching up from the server archive on what was sent while
he was offline. It cleans up after itself.

    /usr/bin/python3 demo/demo.py [path/to/mend]
"""

import os
import shlex
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from harness import Prosody, JsonLinesProcess, run  # noqa: E402

MEND = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "mend")


class Device:
    def __init__(self, srv, root, user, resource, label):
        self.srv, self.user, self.resource, self.label = srv, user, resource, label
        self.dir = os.path.join(root, f"{user}-{resource}")
        os.makedirs(self.dir)
        self.pwfile = os.path.join(self.dir, "password")
        with open(self.pwfile, "w") as f:
            f.write("demo-password\n")
        self.env = dict(os.environ, HOME=self.dir,
                        DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/mend-demo")

    def argv(self, *cmd, json=False, resource=None):
        # one-shot commands get a resource of their own (mend picks one), so they
        # don't end this device's running `listen`; both share the device's store
        return ([MEND, "--jid", self.srv.jid(self.user, resource), "--password-file",
                 self.pwfile, "--server", self.srv.address, "--tls", "off", "--data-dir",
                 os.path.join(self.dir, "data")] + (["--json"] if json else []) + list(cmd))

    def run(self, *cmd, show=True):
        if show:
            print(f"  $ mend {' '.join(shlex.quote(c) for c in cmd)}     ({self.label})")
        cp = run(self.argv(*cmd), timeout=60, env=self.env)
        if cp.returncode != 0:
            raise SystemExit(f"mend {' '.join(cmd)} failed: {cp.stderr.strip()}")
        return cp

    def listen(self, *args):
        return JsonLinesProcess(self.argv("listen", *args, json=True, resource=self.resource),
                                env=self.env,
                                name=self.label)


def show(proc, start, want, timeout=30):
    """Prints the messages `proc` got since `start` until `want` of them came."""
    got = proc.wait_line(lambda o: o["type"] == "message" and
                         len([m for m in proc.lines[start:] if m["type"] == "message"]) >= want,
                         timeout, f"{proc.name} to get {want} message(s)", start=start)
    del got
    for m in proc.lines[start:]:
        if m["type"] != "message":
            continue
        how = {"sent": "copy of what her other device sent",
               "received": "copy of what her other device received"}.get(m["carbon"], "")
        if m["archived"]:
            how = f"from the archive, sent {m['timestamp']}"
        print(f"    {proc.name:15} reads  {m['from']} (device {m['device']}): "
              f"\"{m['body']}\"" + (f"  [{how}]" if how else ""))


def main():
    if not os.access(MEND, os.X_OK):
        raise SystemExit(f"{MEND} is not built; run ./run demo")
    print("Starting a throwaway Prosody on 127.0.0.1 ...")
    with Prosody(accounts={"alice": "demo-password", "bob": "demo-password"}) as srv, \
            tempfile.TemporaryDirectory(prefix="mend-demo-") as root:
        print(f"  server on {srv.address}; accounts alice@{srv.host} and bob@{srv.host}\n")
        phone = Device(srv, root, "alice", "phone", "alice's phone")
        laptop = Device(srv, root, "alice", "laptop", "alice's laptop")
        bob = Device(srv, root, "bob", "phone", "bob's phone")

        print("Each device makes its identity and publishes its keys:")
        for d in (phone, laptop, bob):
            d.run("devices", show=False)
            fp = d.run("fingerprint", show=False).stdout.strip().replace("\n", "  ")
            print(f"  {d.label:15} {fp}")

        with laptop.listen() as ll, bob.listen() as bl, phone.listen() as pl:
            for p in (ll, bl, pl):
                p.wait_line(lambda o: o["type"] == "ready", 30, f"{p.name} to connect")
            print("\nalice's phone writes to bob; her laptop reads along (sent carbon):")
            marks = (bl.mark(), ll.mark())
            phone.run("send", f"bob@{srv.host}", "Hi Bob! This is end-to-end encrypted.")
            show(bl, marks[0], 1)
            show(ll, marks[1], 1)

            print("\nbob answers; both of alice's devices can read it:")
            marks = (pl.mark(), ll.mark())
            bob.run("send", f"alice@{srv.host}", "Hi Alice, both your devices get this.")
            show(pl, marks[0], 1)
            show(ll, marks[1], 1)

            print("\nbob goes offline; alice writes from her laptop:")
            bl.stop()
            for i in range(1, 4):
                laptop.run("send", f"bob@{srv.host}", f"Message {i} while you were away.")

        print("\nbob comes back and catches up from the server's archive:")
        with bob.listen("--count", "3", "--timeout", "30") as back:
            show(back, 0, 3)
            back.wait_exit(30)
        print("\nWhat the server stored is ciphertext only: "
              + ("no plaintext in its log." if "while you were away" not in srv.log_text()
                 else "PLAINTEXT FOUND IN THE SERVER LOG!"))
    print("Done; the server and every temp file are gone.")


if __name__ == "__main__":
    main()
