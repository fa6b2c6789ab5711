#!/usr/bin/python3
"""The tests load the build's own libpurple plugin, never a copy installed on the
machine (issue 15: a sanitizer build that `make install` had left in the system
plugin directory broke the Finch test).

In a private mount namespace (the rest of the machine sees nothing), libpurple's
system plugin directory gets a decoy mend-purple.so that ends any process that opens
it (exit 86, as an ASan build aborts inside an uninstrumented client) and a decoy
plugin with mend's id core-mend under another file name. Then:

  0. the decoy works: the harness without the build's plugin dir opens it and dies;
  1. the headless libpurple harness, asked for core-mend, loads the build's
     .libs/mend-purple.so and stays alive (purple.Purple checks where it came from);
  2. Finch, with the build's plugin in its private plugins/ directory, loads that
     copy (finch_loads_plugin checks the path) and is still running 2 s later;
  3. the Profanity plugin where debian/rules installs it is the directory the real
     Profanity's "/plugins install mend.so" takes a bare name from (the path is read
     from the profanity binary): with mend.so there (same namespace), the command
     installs and loads it and /mend answers.

Needs root and unshare(1) (util-linux); skipped otherwise.

TAP on stdout; exit 0 pass, 1 fail, 77 skip.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Prosody, main, skip, test  # noqa: E402
from mendcli import BUILD  # noqa: E402
from profanity import Profanity, profanity_missing  # noqa: E402
from purple import (Purple, build_purple_plugin, finch_loads_plugin,  # noqa: E402
                    finch_missing, harness_path, purple_missing)

INNER = "MEND_PRIVATE_MOUNTS"
LIBS = os.path.join(BUILD, ".libs")
PLUGIN = os.path.join(LIBS, "mend-purple.so")
PROF_PLUGIN = os.path.join(LIBS, "mend.so")
PROF_MODULE = os.path.join(LIBS, "mend-profanity-module.so")
SRCDIR = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")

DECOY_ABORT_C = r"""
#include <unistd.h>
__attribute__((constructor)) static void decoy(void)
{
	static const char m[] = "mend decoy: a copy of mend-purple.so installed on the machine was opened\n";
	(void)!write(2, m, sizeof m - 1);
	_exit(86);
}
"""

DECOY_ID_C = r"""
#define PURPLE_PLUGINS
#include <glib.h>
#include <plugin.h>
#include <version.h>
static gboolean load(PurplePlugin *p) { return FALSE; }
static PurplePluginInfo info = {
    PURPLE_PLUGIN_MAGIC, PURPLE_MAJOR_VERSION, PURPLE_MINOR_VERSION, PURPLE_PLUGIN_STANDARD,
    NULL, 0, NULL, PURPLE_PRIORITY_DEFAULT, "core-mend", "mend (installed decoy)", "0",
    "decoy", "decoy", "", "", load, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static void init_plugin(PurplePlugin *p) {}
PURPLE_INIT_PLUGIN(mend_decoy, init_plugin, info)
"""


def system_plugindir():
    cp = subprocess.run(["pkg-config", "--variable=plugindir", "purple"], capture_output=True,
                        text=True, timeout=30)
    return cp.stdout.strip()


def enter_private_namespace():
    """Re-run this file in a private mount namespace, then cover libpurple's plugin dir
    with a copy that has the decoys."""
    if os.environ.get(INNER):
        return
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        return
    env = dict(os.environ, **{INNER: "1"})
    sys.stdout.flush()
    os.execve(unshare, [unshare, "--mount", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__)], env)


enter_private_namespace()
why = purple_missing()
if why:
    skip(why)
elif not os.path.exists(PLUGIN):
    skip(f"{PLUGIN} is not built")
elif os.environ.get("MEND_SANITIZERS"):
    skip("a sanitizer build: the decoy stands for one; the normal build runs this")
elif not os.environ.get(INNER):
    skip("needs root and unshare(1) for a private mount namespace")
elif not shutil.which("prosody"):
    skip("prosody is not installed")

SYSDIR = system_plugindir()
_decoys = tempfile.mkdtemp(prefix="mend-decoy-")


def cover_system_dir():
    """The system plugin dir, seen only in this namespace: its files plus the decoys."""
    if os.path.exists(os.path.join(SYSDIR, "libmend-purple-old.so")):
        return
    cover = os.path.join(_decoys, "purple-2")
    shutil.copytree(SYSDIR, cover, symlinks=True)
    build_purple_plugin(DECOY_ABORT_C, os.path.join(cover, "mend-purple.so"))
    build_purple_plugin(DECOY_ID_C, os.path.join(cover, "libmend-purple-old.so"))
    subprocess.run(["mount", "--bind", cover, SYSDIR], check=True, timeout=30)
    assert os.path.exists(os.path.join(SYSDIR, "mend-purple.so")), "the decoy is not in place"


@test
def the_decoy_ends_a_client_that_opens_it():
    """Without the build's plugin dir, libpurple probes the system dir and dies."""
    cover_system_dir()
    with tempfile.TemporaryDirectory() as d:
        cp = subprocess.run([harness_path(), "--user-dir", d, "--jid", "x@localhost/r",
                             "--password", "pw", "--server", "127.0.0.1", "--port", "9"],
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL, env=dict(os.environ, HOME=d))
    assert cp.returncode == 86 and "mend decoy" in cp.stderr, \
        f"the decoy did not act (exit {cp.returncode}): {cp.stderr[-500:]}"


@test
def harness_loads_the_build_plugin_not_the_installed_one():
    cover_system_dir()
    with Prosody(accounts={"alice": "pw"}) as srv:
        with Purple(srv, "alice", plugins=("core-mend",), plugin_dir=LIBS) as a:
            line = a.proc.find(lambda o: o["type"] == "plugin")[-1]
            assert os.path.realpath(line["path"]) == os.path.realpath(PLUGIN), line
            a.wait_signed_on()
            assert a.proc.running(), "the harness died"


@test
def finch_loads_the_build_plugin_not_the_installed_one():
    why = finch_missing()
    if why:
        skip(why)
    cover_system_dir()
    r = finch_loads_plugin(PLUGIN, "core-mend", 30)
    assert r, str(r)


def profanity_global_c_dir():
    """Where Profanity takes `/plugins install NAME.so` from: a path compiled into it."""
    exe = shutil.which("profanity") or "/usr/bin/profanity"
    with open(exe, "rb") as f:
        found = set(re.findall(rb"\x00(/[\w/.-]+/plugins)\x00", f.read()))
    c_dirs = sorted(d.decode() for d in found if not d.startswith(b"/usr/share"))
    assert len(c_dirs) == 1, f"cannot tell Profanity's C plugin dir from {exe}: {c_dirs}"
    return c_dirs[0]


@test
def profanity_installs_mend_so_by_name_where_debian_puts_it():
    why = profanity_missing()
    if why:
        skip(why)
    gdir = profanity_global_c_dir()
    with open(os.path.join(SRCDIR, "debian", "rules")) as f:
        rules = f.read()
    m = re.search(r"--with-profanity-plugindir=(\S+)", rules)
    assert m and m.group(1) == gdir, \
        f"debian/rules installs mend.so in {m and m.group(1)}, Profanity looks in {gdir}"
    # the directory as the package leaves it, seen only in this namespace
    top = gdir
    while not os.path.isdir(top):
        top = os.path.dirname(top)
    cover = os.path.join(_decoys, "prof-cover")
    shutil.copytree(top, cover, symlinks=True)
    os.makedirs(os.path.join(cover, os.path.relpath(gdir, top)), exist_ok=True)
    shutil.copy(PROF_PLUGIN, os.path.join(cover, os.path.relpath(gdir, top), "mend.so"))
    subprocess.run(["mount", "--bind", cover, top], check=True, timeout=30)
    with Prosody(accounts={"alice": "pw"}) as srv:
        with Profanity(srv, "alice", env={"MEND_PROFANITY_MODULE": PROF_MODULE}) as p:
            p.connect()
            p.command("/plugins install mend.so")
            p.wait_log("Loaded plugin: mend.so", 15)
            p.win(1)
            p.command("/mend status")
            p.wait_screen(re.compile(r"mend: \S+, device (\d+)"), 20, "/mend status to answer")


try:
    main()
finally:
    shutil.rmtree(_decoys, ignore_errors=True)
