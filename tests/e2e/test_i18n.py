#!/usr/bin/python3
"""mend speaks the user's language in every host (issue 15): under LANGUAGE=de
the CLI, the libpurple plugin and the real Profanity's plugin show German lines
from po/de.po, plural forms included.

The catalogues come from the build tree: `make check` compiles them into
tests/locale, and MEND_LOCALEDIR points the hosts there instead of the install's
LOCALEDIR. LANG/LC_ALL stay C.UTF-8 (the harnesses set it): gettext honours
LANGUAGE under any locale but plain "C", so no German locale has to be generated.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run, skip, test, main  # noqa: E402
from mendcli import BUILD, MEND, Mend, server  # noqa: E402
from purple import Purple, purple_missing  # noqa: E402
from profanity import Profanity, profanity_missing  # noqa: E402

if not os.access(MEND, os.X_OK):
    skip(f"{MEND} is not built")

LIBS = os.path.join(BUILD, ".libs")
LOCALE = os.path.join(BUILD, "tests", "locale")
GERMAN = {"LANGUAGE": "de", "MEND_LOCALEDIR": LOCALE}


def german_catalogue():
    mo = os.path.join(LOCALE, "de", "LC_MESSAGES", "mend.mo")
    assert os.path.exists(mo), f"{mo} is missing (make check builds it from po/de.po)"


def plain(me, *cmd):
    """Runs mend without --json, in German; returns its stdout."""
    argv = [a for a in me.argv(*cmd) if a != "--json"]
    cp = run(argv, 60, env=dict(me.env, LC_ALL="C.UTF-8", **GERMAN))
    assert cp.returncode == 0, f"mend {' '.join(cmd)} exited {cp.returncode}: {cp.stderr}"
    return cp.stdout


@test
def the_cli_speaks_german_with_its_plural_forms():
    german_catalogue()
    with server() as srv, tempfile.TemporaryDirectory() as root:
        alice, phone = Mend(srv, root, "alice", "laptop"), Mend(srv, root, "bob", "phone")
        phone.publish()
        out = plain(alice, "send", "bob@localhost", "hallo")
        assert "An bob@localhost gesendet (1 Gerät)." in out, out
        Mend(srv, root, "bob", "tablet").publish()
        out = plain(alice, "send", "bob@localhost", "hallo ihr beiden")
        assert "An bob@localhost gesendet (2 Geräte)." in out, out
        # the same build without LANGUAGE: English
        cp = run([a for a in alice.argv("send", "bob@localhost", "hello") if a != "--json"],
                 60, env=dict(alice.env, LC_ALL="C.UTF-8", LANGUAGE="",
                              MEND_LOCALEDIR=LOCALE))
        assert "Sent to bob@localhost (2 devices)." in cp.stdout, cp.stdout + cp.stderr


@test
def the_libpurple_plugin_speaks_german():
    german_catalogue()
    plugin = os.path.join(LIBS, "mend-purple.so")
    why = purple_missing() or (not os.path.exists(plugin) and f"{plugin} is not built")
    if why:
        skip(why)
    with server() as srv, Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS,
                                 env=GERMAN) as a:
        a.wait_signed_on()
        m = a.mark()
        a.cmd("bob@localhost", "/mend on")
        a.wait_im(lambda o: o["text"] == "OMEMO-Verschlüsselung ist für diesen Chat an.",
                  timeout=20, conv="bob@localhost", start=m)
        # a plural form in the plugin: nothing queued is "0 Nachrichten" (German n != 1)
        m = a.mark()
        a.cmd("bob@localhost", "/mend status")
        a.wait_im(lambda o: "Fingerabdruck" in o["text"] and "; 0 Nachrichten warten." in
                  o["text"], timeout=20, conv="bob@localhost", start=m)


@test
def profanity_speaks_german():
    german_catalogue()
    why = profanity_missing()
    if why:
        skip(why)
    if os.environ.get("MEND_SANITIZERS"):
        skip("a sanitizer build: the plugin cannot load into Profanity")
    plugin = os.path.join(LIBS, "mend.so")
    module = os.path.join(LIBS, "mend-profanity-module.so")
    if not (os.path.exists(plugin) and os.path.exists(module)):
        skip(f"{plugin} is not built")
    with server() as srv, Profanity(srv, "alice", plugins=[plugin],
                                    env=dict(GERMAN, MEND_PROFANITY_MODULE=module)) as p:
        p.connect()
        p.command("/mend on bob@localhost")
        p.wait_screen("OMEMO-Verschlüsselung ist für bob@localhost an.", 30,
                      "the German line for /mend on")


if __name__ == "__main__":
    main()
