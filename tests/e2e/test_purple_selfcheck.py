#!/usr/bin/python3
"""Self-check of the libpurple test tools (tests/purple/harness.c driven by
tests/e2e/purple.py, and Finch in tmux), with no mend involved:

  1. two harness instances exchange a plain message both ways ("im" lines with
     the "recv" flag and a sane time);
  2. a message sent while the user was offline arrives with its original time;
     restart() keeps the purple user dir;
  3. a small libpurple plugin built here loads by id: its /command runs through
     `cmd`, its "jabber-sending-xmlnode" hook sees `send` and `raw` stanzas;
     a plugin that cannot load is reported with libpurple's error;
  4. the python-omemo peer sends an OMEMO message: libpurple (no OMEMO plugin)
     shows the fallback body, never the secret -- the harness shows what
     libpurple writes into the conversation;
  5. Finch loads a plugin from its prefs.xml (and reports one that cannot load);
     an account written to its accounts.xml signs in.

    top_builddir=build-purple \\
        /usr/bin/python3 tests/e2e/test_purple_selfcheck.py

TAP on stdout; exit 0 pass, 1 fail, 77 skip.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Prosody, main, skip, start_omemo_peer, test,  # noqa: E402
                     wait_for, wait_ready)
from purple import (Finch, Purple, build_purple_plugin,  # noqa: E402
                    finch_loads_plugin, finch_missing, purple_missing)

why = purple_missing()
if why:
    skip(why)
elif not shutil.which("prosody"):
    skip("prosody is not installed")
elif not shutil.which("gcc") or not shutil.which("pkg-config"):
    skip("gcc and pkg-config are needed to build the test plugins")

# A libpurple 2.x plugin: "/selfcheck ARGS" writes a system line into the
# conversation; every outgoing <message> gets <selfcheck xmlns='urn:mend:selfcheck'/>
# (changed in place, as the jabber-sending-xmlnode contract asks).
PLUGIN_C = r"""
#define PURPLE_PLUGINS
#include <glib.h>
#include <time.h>
#include <cmds.h>
#include <conversation.h>
#include <debug.h>
#include <plugin.h>
#include <prpl.h>
#include <version.h>
#include <xmlnode.h>

static PurpleCmdId cmd;

static PurpleCmdRet selfcheck_cmd(PurpleConversation *conv, const gchar *name, gchar **args,
                                  gchar **error, void *data)
{
    char *text = g_strdup_printf("selfcheck: %s", args[0] ? args[0] : "");
    purple_conversation_write(conv, NULL, text, PURPLE_MESSAGE_SYSTEM | PURPLE_MESSAGE_NO_LOG,
                              time(NULL));
    g_free(text);
    return PURPLE_CMD_RET_OK;
}

static void sending(PurpleConnection *gc, xmlnode **packet, gpointer data)
{
    if (*packet && g_str_equal((*packet)->name, "message")) {
        xmlnode *m = xmlnode_new_child(*packet, "selfcheck");
        xmlnode_set_namespace(m, "urn:mend:selfcheck");
    }
}

static gboolean plugin_load(PurplePlugin *plugin)
{
    PurplePlugin *jabber = purple_find_prpl("prpl-jabber");
    if (!jabber)
        return FALSE;
    cmd = purple_cmd_register("selfcheck", "s", PURPLE_CMD_P_PLUGIN,
                              PURPLE_CMD_FLAG_IM | PURPLE_CMD_FLAG_ALLOW_WRONG_ARGS,
                              NULL, selfcheck_cmd, "selfcheck &lt;text&gt;", NULL);
    purple_signal_connect(jabber, "jabber-sending-xmlnode", plugin, PURPLE_CALLBACK(sending),
                          NULL);
    purple_debug_info("selfcheck", "selfcheck plugin loaded\n");
    return TRUE;
}

static gboolean plugin_unload(PurplePlugin *plugin)
{
    purple_cmd_unregister(cmd);
    return TRUE;
}

static PurplePluginInfo info = {
    PURPLE_PLUGIN_MAGIC, PURPLE_MAJOR_VERSION, PURPLE_MINOR_VERSION, PURPLE_PLUGIN_STANDARD,
    NULL, 0, NULL, PURPLE_PRIORITY_DEFAULT, "core-mend-selfcheck", "mend selfcheck", "1.0",
    "selfcheck", "A test plugin of mend's test suite", "mend", NULL,
    plugin_load, plugin_unload, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};

static void init_plugin(PurplePlugin *plugin) { }

PURPLE_INIT_PLUGIN(mend_selfcheck, init_plugin, info)
"""

# Probes fine (lazy binding), fails in purple_plugin_load: an undefined symbol.
BAD_PLUGIN_C = r"""
#define PURPLE_PLUGINS
#include <glib.h>
#include <plugin.h>
#include <version.h>
extern int mend_no_such_symbol(void);
static gboolean plugin_load(PurplePlugin *p) { return mend_no_such_symbol() == 0; }
static PurplePluginInfo info = {
    PURPLE_PLUGIN_MAGIC, PURPLE_MAJOR_VERSION, PURPLE_MINOR_VERSION, PURPLE_PLUGIN_STANDARD,
    NULL, 0, NULL, PURPLE_PRIORITY_DEFAULT, "core-mend-bad", "mend bad", "1.0", "bad", "bad",
    "mend", NULL, plugin_load, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};
static void init_plugin(PurplePlugin *plugin) { }
PURPLE_INIT_PLUGIN(mend_bad, init_plugin, info)
"""

_plugins = {}


def plugins_dir():
    """A temp dir with selfcheck.so and bad.so (built once per run)."""
    if "dir" not in _plugins:
        d = tempfile.mkdtemp(prefix="mend-purple-plugins-")
        build_purple_plugin(PLUGIN_C, os.path.join(d, "selfcheck.so"))
        build_purple_plugin(BAD_PLUGIN_C, os.path.join(d, "bad.so"))
        _plugins["dir"] = d
    return _plugins["dir"]


def sane_time(line, t0, t1, slack=2):
    return t0 - slack <= line["mtime"] <= t1 + slack


@test
def plain_message_both_ways():
    with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
        with Purple(srv, "alice", plugins=()) as a, Purple(srv, "bob", plugins=()) as b:
            assert a.wait_signed_on()["jid"] == "alice@localhost/purple"
            b.wait_signed_on()
            t0 = time.time()
            a.send("bob@localhost", "hello <bob> & co")
            got = b.wait_im("hello <bob> & co", 15, who="alice@localhost", flags=("recv",))
            assert sane_time(got, t0, time.time()), got
            assert got["who"].startswith("alice@localhost"), got
            # alice's own window shows her line, flagged "send"
            mine = a.wait_im("hello <bob> & co", 5, flags=("send",))
            assert "recv" not in mine["flags"], mine
            t0 = time.time()
            b.send("alice@localhost", "hi alice")
            got = a.wait_im("hi alice", 15, who="bob@localhost", flags=("recv",))
            assert sane_time(got, t0, time.time()), got
            # libpurple's jabber binds the conversation to the sender's full JID
            assert got["conv"] == "bob@localhost/purple", got
            assert [o["text"] for o in b.ims() if "recv" in o["flags"]] == ["hello <bob> & co"]
            assert a.ping()["type"] == "pong"


@test
def offline_message_keeps_its_time_and_restart_keeps_state():
    with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
        with Purple(srv, "alice", plugins=()) as a, Purple(srv, "bob", plugins=()) as b:
            a.wait_signed_on()
            b.wait_signed_on()
            a.quit()
            assert os.path.exists(os.path.join(a.user_dir, "accounts.xml"))
            sent_at = time.time()
            b.send("alice@localhost", "while you were out")
            time.sleep(2.2)
            a.start()
            a.wait_signed_on()
            got = a.wait_im("while you were out", 15, who="bob@localhost", flags=("recv",))
            # Prosody's offline store adds <delay stamp=...>: libpurple shows the
            # send time (whole seconds), but flags an IM only "recv" (no "delayed")
            assert int(sent_at) - 1 <= got["mtime"] <= int(sent_at) + 1, (got, sent_at)
            assert got["now"] - got["mtime"] >= 2, got
            assert got["flags"] == ["recv"], got
            a.restart()
            assert a.ims() == [], a.ims()     # a fresh window: no history replayed
            b.send("alice@localhost", "after restart")
            a.wait_im("after restart", 15, flags=("recv",))


def joined(p, room, nick):
    """One try to join `room`: True once joined, False when the room refused (still locked)."""
    m = p.mark()
    p.send_line(f"join {room} {nick}")
    o = p.wait_line(lambda o: o["type"] == "chat_joined" or (o["type"] == "notify" and
                    "Error joining chat" in (o.get("title") or "")), 10, f"joining {room}",
                    start=m)
    return o["type"] == "chat_joined"


@test
def group_chat_typed_both_ways():
    room = "talk@conference.localhost"
    with Prosody(accounts={"alice": "pw", "bob": "pw"},
                 extra_config='Component "conference.localhost" "muc"\n') as srv:
        with Purple(srv, "alice", plugins=()) as a, Purple(srv, "bob", plugins=()) as b:
            a.wait_signed_on()
            b.wait_signed_on()
            m = a.mark()
            assert a.join(room, "al")["conv"] == room
            # libpurple asks the room's maker how to configure it; the room is locked till then
            ask = a.wait_line(lambda o: o["type"] == "request" and o["title"] == "Create New Room",
                              10, "libpurple to ask about the new room", start=m)
            a.answer(ask["id"], str(ask["actions"].index("_Accept Defaults")))
            wait_for(lambda: joined(b, room, "bo"), 15, "the new room to let bob in",
                     interval=0.2)
            a.chatsend(room, "hello <room> & co")
            got = b.wait_chat("hello <room> & co", 15, who="al", flags=("recv",), conv=room)
            assert got["html"] == "hello &lt;room&gt; &amp; co", got
            # the room reflects alice's message: her window shows it as sent
            a.wait_chat("hello <room> & co", 15, who="al", flags=("send",), conv=room)
            b.chatsend(room, "hi al")
            a.wait_chat("hi al", 15, who="bo", flags=("recv",), conv=room)
            assert a.ims() == [], a.ims()
            m = a.mark()
            a.send_line("chatsend nowhere@conference.localhost x")
            o = a.wait_line(lambda o: o["type"] in ("chat_sent", "command_error"), 10,
                            "the answer to chatsend", start=m)
            assert o["type"] == "command_error" and "not in that room" in o["error"], o


@test
def plugin_command_and_stanza_hook():
    d = plugins_dir()
    with Prosody(accounts={"alice": "pw", "bob": "pw", "carol": "pw"}) as srv:
        with Purple(srv, "alice", plugins=("core-mend-selfcheck",), plugin_dir=d,
                    xml=True) as a, Purple(srv, "bob", plugins=()) as b:
            p = a.find(lambda o: o["type"] == "plugin")[0]
            assert p["loaded"] and p["error"] is None and p["path"].endswith("selfcheck.so"), p
            a.wait_signed_on()
            b.wait_signed_on()
            r = a.cmd("bob@localhost", "/selfcheck one two")
            assert r["status"] == "ok", r
            line = a.wait_im("selfcheck: one two", 5, flags=("system",))
            assert "no_log" in line["flags"], line
            r = a.cmd("bob@localhost", "/nosuchcommand x")
            assert r["status"] == "not_found", r
            m = a.mark()
            a.send("bob@localhost", "hooked")
            a.raw("<message to='bob@localhost' type='chat'><body>raw hooked</body></message>")
            b.wait_im("hooked", 15, flags=("recv",))
            b.wait_im("raw hooked", 15, flags=("recv",))
            out = [o["xml"] for o in a.xml_lines("out", m) if "hooked</body>" in o["xml"]]
            assert len(out) == 2 and all("urn:mend:selfcheck" in x for x in out), out
            # rawtext goes past every xmlnode hook
            m = a.mark()
            a.raw_text("<message to='bob@localhost' type='chat'><body>bytes</body></message>")
            b.wait_im("bytes", 15, flags=("recv",))
            out = [o["xml"] for o in a.xml_lines("out", m) if "bytes</body>" in o["xml"]]
            assert out and "selfcheck" not in out[0], out
            assert a.unload("core-mend-selfcheck")["ok"] is True
            assert a.cmd("bob@localhost", "/selfcheck x")["status"] == "not_found"
        # a plugin that cannot load: the "plugin" line carries libpurple's error
        with Purple(srv, "carol", plugins=("core-mend-bad",), plugin_dir=d,
                    check_plugins=False) as c:
            p = c.wait_line(lambda o: o["type"] == "plugin", 10, "the plugin line")
            assert p["id"] == "core-mend-bad" and p["loaded"] is False, p
            assert "mend_no_such_symbol" in (p["error"] or ""), p
            c.wait_signed_on()


@test
def omemo_message_shows_fallback_body():
    d = tempfile.mkdtemp(prefix="mend-purple-peer-")
    try:
        with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
            with Purple(srv, "alice", plugins=(), xml=True) as a:
                a.wait_signed_on()
                # an OMEMO device of alice's own, so that bob has someone to encrypt
                # for; the purple resource has the higher priority and gets the message
                with start_omemo_peer(srv, "alice", "py", os.path.join(d, "alice")) as ap, \
                        start_omemo_peer(srv, "bob", "py", os.path.join(d, "bob")) as bob:
                    wait_ready(ap)
                    wait_ready(bob)
                    m = bob.mark()
                    bob.send_line("send alice@localhost the secret is 4711")
                    sent = bob.wait_line(lambda o: o["type"] in ("sent", "command_error"), 40,
                                         "bob to send", start=m)
                    assert sent["type"] == "sent" and not sent["errors"], sent
                    got = a.wait_im(lambda o: "OMEMO" in o["text"], 20, who="bob@localhost",
                                    flags=("recv",))
                    assert "4711" not in got["text"], got
                    assert got["text"].startswith("I sent you an OMEMO encrypted message"), got
                    # it really was an OMEMO stanza on alice's wire
                    stanza = [o["xml"] for o in a.xml_lines("in")
                              if o["xml"].startswith("<message") and "<payload>" in o["xml"]]
                    assert stanza and "eu.siacs.conversations.axolotl" in stanza[0], stanza
                    assert all("4711" not in o["text"] for o in a.ims()), a.ims()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def finch_loads_a_plugin():
    why = finch_missing()
    if why:
        skip(why)
    d = plugins_dir()
    r = finch_loads_plugin(os.path.join(d, "selfcheck.so"), "core-mend-selfcheck", 30)
    assert r, str(r)
    assert r.report["ui"] == "gnt-purple", r.report
    assert "selfcheck plugin loaded" in r.debug, str(r)
    bad = finch_loads_plugin(os.path.join(d, "bad.so"), "core-mend-bad", 30)
    assert not bad, str(bad)
    assert "mend_no_such_symbol" in str(bad), str(bad)
    # an account in accounts.xml signs in at start-up; a message opens a window
    with Prosody(accounts={"alice": "pw", "bob": "pw"}) as srv:
        with Purple(srv, "bob", plugins=()) as b:
            b.wait_signed_on()
            with Finch(account=dict(jid="alice@localhost/finch", port=srv.port)) as f:
                wait_for(lambda: "Resource bound: alice@localhost/finch" in srv.log_text(), 20,
                         lambda: f"finch to sign in\n{f.diagnostics()}\n{srv.log_tail(20)}")
                b.send("alice@localhost", "hello finch")
                wait_for(lambda: "bob (alice@localhost/finch -- XMPP)" in f.screen(), 15,
                         lambda: f"finch to open bob's window\n{f.diagnostics()}")


if __name__ == "__main__":
    try:
        main()
    finally:
        if "dir" in _plugins:
            shutil.rmtree(_plugins["dir"], ignore_errors=True)
