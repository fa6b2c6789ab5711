/*
 * module.c - mend inside Profanity: the adapter between Profanity's plugin
 * hooks and the core (mend-profanity-module.so, loaded by the shim mend.so).
 *
 * Receive (HOSTS.md, measured): every message stanza goes to the core first.
 * A decrypted direct message or received carbon goes on through Profanity
 * (its timestamps, windows, logs) and pre_chat_message_display swaps the
 * fallback body for the plaintext; sent carbons and archive results take a
 * path without a display hook, so we show them ourselves and drop the stanza.
 * Duplicates are dropped.
 *
 * Send: the stanza hook returns the encrypted stanza when keys are at hand;
 * otherwise the core queues the message (it leaves encrypted once the keys
 * arrive) and an empty chat state goes instead. Plaintext never leaves for a
 * contact with encryption on, not even when something fails here.
 *
 * Profanity's hooks run on one thread, so the adapter keeps one state.
 */
#include "config.h"

#include <dlfcn.h>
#include <libintl.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <strophe.h>
#include "mend/mend.h"
#include "profanity/api.h"
#include "sigproto.h"

#define _(s)     dgettext(GETTEXT_PACKAGE, s)
#define ENC_CHAR "~"
#define SETTINGS "mend"

static struct {
	const struct mend_prof_api *api;
	mend_account *acc;
	int locked; /* the keyring holding the store key is locked: retried every few seconds */
	char *account;
	char *fulljid;
	char *bare;
	xmpp_ctx_t *xctx;
	/* the message being received: what Profanity should show for it */
	int rx_active;
	int rx_keep; /* let Profanity go on with the stanza */
	char *rx_peer;
	char *rx_text;
} M;

/* --- small helpers ---------------------------------------------------------- */

static void show(const char *jid, const char *text)
{
	char *line;

	if (!jid) {
		M.api->cons_show(text);
		return;
	}
	if (M.api->chat_show_themed(jid, NULL, NULL, NULL, ENC_CHAR, text))
		return;
	/* no window for that chat yet: open it as the user would (/msg JID), then show */
	line = g_strdup_printf("/msg %s", jid);
	M.api->send_line(line);
	g_free(line);
	if (!M.api->chat_show_themed(jid, NULL, NULL, NULL, ENC_CHAR, text))
		M.api->cons_show(text);
}

static void showf(const char *jid, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void showf(const char *jid, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	show(jid, text);
	g_free(text);
}

static char *bare_of(const char *jid)
{
	return jid ? g_strndup(jid, strcspn(jid, "/")) : NULL;
}

static int in_list(const char *key, const char *jid)
{
	char **list = M.api->settings_string_list_get(SETTINGS, (char *)key);
	int found = 0, i;

	for (i = 0; list && list[i]; i++)
		found |= strcmp(list[i], jid) == 0;
	g_strfreev(list);
	return found;
}

/* Whether messages to `jid` are encrypted: the default, unless the user said otherwise. */
static int enabled(const char *jid)
{
	if (M.api->settings_boolean_get(SETTINGS, "default", 0))
		return !in_list("disabled", jid);
	return in_list("enabled", jid);
}

/* --- the chat window's marks ------------------------------------------------- */

static int all_trusted(const char *jid)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	int ok = 1;

	if (!M.acc || mend_account_device_infos(M.acc, jid, &d, &n) < 0)
		return 1;
	for (i = 0; i < n; i++)
		ok &= !d[i].active || d[i].trust < 0 || mend_trust_is_trusted(d[i].trust);
	mend_free(d);
	return ok;
}

static void mark_window(const char *jid)
{
	if (!jid)
		return;
	if (!enabled(jid)) {
		M.api->chat_unset_titlebar_enctext(jid);
		M.api->chat_unset_incoming_char(jid);
		return;
	}
	M.api->chat_set_titlebar_enctext(jid, all_trusted(jid) ? "OMEMO" : "OMEMO untrusted");
	/*
	 * Not prof_chat_set_outgoing_char: Profanity 0.13.1's chatwin_outgoing_msg frees
	 * the window's outgoing char after the first message, so the next message (or an
	 * unset) frees it again and aborts. mend prints its outgoing lines itself.
	 */
	M.api->chat_set_incoming_char(jid, ENC_CHAR);
}

/* --- host ops -------------------------------------------------------------- */

static int op_send(const char *xml, void *ud)
{
	return M.api->send_stanza((char *)xml) ? 0 : -1;
}

static void op_notice(mend_notice_kind kind, const char *jid, const char *text, void *ud)
{
	show(jid, text);
}

static void op_log(mend_log_level level, const char *text, void *ud)
{
	char *line = g_strconcat("mend: ", text, NULL);

	if (level == MEND_LOG_ERROR)
		M.api->log_error(line);
	else if (level == MEND_LOG_WARNING)
		M.api->log_warning(line);
	else if (level == MEND_LOG_INFO)
		M.api->log_info(line);
	else
		M.api->log_debug(line);
	g_free(line);
}

/* Messages Profanity will not show itself (sent carbons, the archive): shown here. */
static void show_ourselves(const mend_event *ev)
{
	const char *who = ev->outgoing ? "me" : ev->from;

	if (ev->archived)
		showf(ev->peer, "%s: %s  [%s]", who, ev->body, ev->timestamp);
	else
		showf(ev->peer, "%s: %s", who, ev->body);
}

static void on_message(const mend_event *ev)
{
	if (M.rx_active && !ev->archived && ev->carbon != MEND_CARBON_SENT) {
		/* Profanity shows it: pre_chat_message_display gets our text */
		M.rx_keep = 1;
		g_free(M.rx_peer);
		g_free(M.rx_text);
		M.rx_peer = g_strdup(ev->peer);
		M.rx_text = g_strdup(ev->body);
		return;
	}
	show_ourselves(ev);
}

static void on_undecryptable(const mend_event *ev)
{
	if (M.rx_active && !ev->archived) {
		M.rx_keep = 1;
		g_free(M.rx_peer);
		g_free(M.rx_text);
		M.rx_peer = g_strdup(ev->peer);
		M.rx_text = g_strdup(ev->text);
		return;
	}
	show(ev->peer, ev->text);
}

static void op_event(const mend_event *ev, void *ud)
{
	switch (ev->kind) {
	case MEND_EVENT_MESSAGE:
		on_message(ev);
		break;
	case MEND_EVENT_UNDECRYPTABLE:
		on_undecryptable(ev);
		break;
	case MEND_EVENT_SENT:
		break;
	case MEND_EVENT_SEND_FAILED:
	case MEND_EVENT_NOTICE:
		show(ev->peer, ev->text);
		break;
	case MEND_EVENT_DEVICELIST:
		mark_window(ev->peer);
		break;
	default:
		break;
	}
}

static const mend_host_ops ops = {
    .send_stanza = op_send,
    .show_notice = op_notice,
    .log = op_log,
    .event = op_event,
};

/* --- connecting -------------------------------------------------------------- */

static void disconnect(void)
{
	M.locked = 0;
	if (M.acc) {
		mend_account_disconnected(M.acc);
		mend_account_free(M.acc);
		M.acc = NULL;
	}
	g_clear_pointer(&M.fulljid, g_free);
	g_clear_pointer(&M.bare, g_free);
}

/* Opens the store of M.bare (the keyring may prompt unless `mode` says not to). */
static int open_account(int mode)
{
	char *dir = g_build_filename(g_get_user_data_dir(), "mend", "profanity", M.bare, NULL);
	int r = mend_account_open(&M.acc, M.bare, dir, (mend_keyring_mode)mode, &ops, NULL);

	g_free(dir);
	M.locked = r == MEND_ERR_KEYRING_LOCKED;
	if (M.locked && (mode & MEND_KEYRING_NO_PROMPT))
		return r; /* said so at the first attempt */
	if (r < 0) {
		showf(NULL, _("mend: cannot open the OMEMO store for %s: %s"), M.bare,
		      mend_strerror(r));
		return r;
	}
	/* Profanity answers disco and sends presence; carbons we enable, the archive we read */
	mend_account_connected(M.acc, M.fulljid, MEND_CONNECT_CARBONS | MEND_CONNECT_CATCHUP);
	return r;
}

static void connect_account(const char *account_name, const char *fulljid)
{
	disconnect();
	M.bare = bare_of(fulljid);
	M.fulljid = g_strdup(fulljid);
	open_account(MEND_KEYRING_AUTO);
}

/* Every few seconds: while the keyring is locked, try again without a new prompt. */
static void retry_locked(void)
{
	if (M.locked && !M.acc && M.bare &&
	    open_account(MEND_KEYRING_AUTO | MEND_KEYRING_NO_PROMPT) == 0)
		M.api->cons_show(_("mend: the keyring is unlocked; OMEMO is on again."));
}

static void on_connect(const char *account_name, const char *fulljid)
{
	connect_account(account_name, fulljid);
}

static void on_disconnect(const char *account_name, const char *fulljid)
{
	disconnect();
}

static void on_shutdown(void)
{
	disconnect();
	if (M.xctx)
		xmpp_ctx_free(M.xctx);
	M.xctx = NULL;
}

/* --- receiving ----------------------------------------------------------------- */

static int has_child_ns(xmpp_stanza_t *st, const char *ns)
{
	return st && xmpp_stanza_get_child_by_ns(st, ns) != NULL;
}

static int on_message_receive(const char *text)
{
	xmpp_stanza_t *st;
	int r, pep;

	if (!M.acc && !M.locked)
		return 1;
	st = xmpp_stanza_new_from_string(M.xctx, text);
	if (!M.acc) {
		/* unreadable until the keyring opens: not shown as its fallback body; the
		 * catch-up from the archive (XEP-0313) after the unlock brings it back */
		r = has_child_ns(st, "eu.siacs.conversations.axolotl");
		if (st)
			xmpp_stanza_release(st);
		return !r;
	}
	/* device list events are Profanity's too (its own OMEMO reads them) */
	pep = has_child_ns(st, "http://jabber.org/protocol/pubsub#event");
	if (st)
		xmpp_stanza_release(st);
	M.rx_active = 1;
	M.rx_keep = 0;
	r = mend_account_handle_stanza(M.acc, text);
	M.rx_active = 0;
	if (r == 0 || pep)
		return 1;
	/* ours: shown through Profanity (rx_keep), shown by us, or a duplicate to drop */
	return M.rx_keep;
}

static int on_iq_receive(const char *text)
{
	if (!M.acc)
		return 1;
	/* a reply to one of our requests is ours alone */
	return mend_account_handle_stanza(M.acc, text) == 1 ? 0 : 1;
}

static char *pre_display(const char *barejid, const char *resource, const char *message)
{
	char *out;

	if (!M.rx_text || !M.rx_peer || strcmp(barejid, M.rx_peer) != 0)
		return NULL;
	out = strdup(M.rx_text);
	g_clear_pointer(&M.rx_text, g_free);
	g_clear_pointer(&M.rx_peer, g_free);
	return out;
}

/* --- sending -------------------------------------------------------------------- */

/* What goes instead of a message we must not send in plaintext. */
static char *empty_message(const char *to, const char *id)
{
	char *eto = g_markup_escape_text(to ? to : "", -1);
	char *eid = g_markup_escape_text(id ? id : "", -1);
	char *s = g_strdup_printf("<message to='%s' id='%s' type='chat'><active "
	                          "xmlns='http://jabber.org/protocol/chatstates'/></message>",
	                          eto, eid);
	char *out = strdup(s);

	g_free(s);
	g_free(eto);
	g_free(eid);
	return out;
}

static char *encrypt_outgoing(const char *to, const char *bare, const char *id, const char *body)
{
	char *stanza = NULL, *out;
	int r;

	if (!M.acc) {
		showf(bare, _("Not connected to OMEMO yet; the message was NOT sent. Try again in "
		              "a moment."));
		return empty_message(to, id);
	}
	r = mend_account_encrypt_or_queue(M.acc, to, body, id, &stanza);
	if (r == 0) {
		out = strdup(stanza);
		mend_free(stanza);
		return out;
	}
	if (r == 1)
		showf(bare,
		      _("Fetching %s's keys; the message leaves encrypted as soon as they "
		        "arrive."),
		      bare);
	else if (r == MEND_ERR_NO_DEVICES)
		showf(bare,
		      _("%s has no OMEMO device mend can encrypt to; the message was NOT "
		        "sent. /mend off %s sends without encryption."),
		      bare, bare);
	else
		showf(bare, _("The message was NOT sent: %s"), mend_strerror(r));
	return empty_message(to, id);
}

/*
 * Profanity hands over every message stanza it sends. Returning NULL sends it
 * as it is, so NULL is returned only when this stanza may go unencrypted.
 */
static char *on_message_send(const char *text)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(M.xctx, text), *body;
	const char *to, *type;
	char *bare = NULL, *plain = NULL, *out = NULL;

	if (!st) {
		/* cannot read it, cannot know where it goes: never let a body out unread */
		if (!strstr(text, "<body"))
			return NULL;
		M.api->log_error("mend: an unreadable outgoing message with a body was blocked");
		return empty_message(NULL, NULL);
	}
	to = xmpp_stanza_get_to(st);
	type = xmpp_stanza_get_type(st);
	body = xmpp_stanza_get_child_by_name(st, "body");
	bare = bare_of(to);
	if (!body || !bare || (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0) ||
	    has_child_ns(st, "eu.siacs.conversations.axolotl") || !enabled(bare))
		goto out;
	plain = xmpp_stanza_get_text(body);
	out = plain ? encrypt_outgoing(to, bare, xmpp_stanza_get_id(st), plain)
	            : empty_message(to, xmpp_stanza_get_id(st));
out:
	if (plain)
		xmpp_free(M.xctx, plain);
	g_free(bare);
	xmpp_stanza_release(st);
	return out;
}

/*
 * Typed in a chat with encryption on: Profanity neither sends nor shows it
 * (NULL); mend sends it encrypted (now, or queued until the keys arrive) and
 * shows it with the encryption mark.
 */
static char *pre_send(const char *barejid, const char *message)
{
	char *stanza = NULL, *line;
	int r;

	if (!enabled(barejid))
		return strdup(message);
	if (!M.acc) {
		showf(barejid, _("Not connected to OMEMO yet; the message was NOT sent. Try again "
		                 "in a moment."));
		return NULL;
	}
	r = mend_account_encrypt_or_queue(M.acc, barejid, message, NULL, &stanza);
	if (r == 0 && !M.api->send_stanza(stanza))
		r = MEND_ERR_PROTOCOL;
	mend_free(stanza);
	if (r == MEND_ERR_NO_DEVICES) {
		showf(barejid,
		      _("%s has no OMEMO device mend can encrypt to; the message was NOT sent. "
		        "/mend off %s sends without encryption."),
		      barejid, barejid);
		return NULL;
	}
	if (r < 0) {
		showf(barejid, _("The message was NOT sent: %s"), mend_strerror(r));
		return NULL;
	}
	line = g_strconcat("me: ", message, NULL);
	show(barejid, line);
	g_free(line);
	if (r == 1)
		showf(barejid,
		      _("Fetching %s's keys; the message leaves encrypted as soon as they "
		        "arrive."),
		      barejid);
	return NULL;
}

static void on_focus(const char *barejid)
{
	mark_window(barejid);
}

/* --- /mend --------------------------------------------------------------------- */

static const char *target(char *arg)
{
	const char *jid = arg ? arg : M.api->get_current_recipient();

	return jid && *jid ? jid : NULL;
}

static int need_account(void)
{
	if (M.acc)
		return 1;
	if (M.locked) {
		M.api->cons_show(_("mend: keyring locked. Unlock the keyring to use mend on this "
		                   "account; mend tries again every few seconds."));
		return 0;
	}
	M.api->cons_show(_("mend: not connected; connect an account first."));
	return 0;
}

static void cmd_on_off(int on, char *arg)
{
	const char *jid = target(arg);
	int deflt = M.api->settings_boolean_get(SETTINGS, "default", 0);

	if (!jid) {
		M.api->cons_show(_("mend: give a contact (/mend on JID) or open a chat first."));
		return;
	}
	M.api->settings_string_list_remove(SETTINGS, "enabled", (char *)jid);
	M.api->settings_string_list_remove(SETTINGS, "disabled", (char *)jid);
	if (on != deflt)
		M.api->settings_string_list_add(SETTINGS, on ? "enabled" : "disabled", (char *)jid);
	if (on && M.acc)
		mend_account_refresh_devices(M.acc, jid);
	mark_window(jid);
	showf(jid,
	      on ? _("OMEMO encryption is on for %s.")
	         : _("OMEMO encryption is off for %s: messages go in plaintext."),
	      jid);
}

static void cmd_status(void)
{
	char fp[65], *g;
	size_t pending = 0;
	Dl_info info = {0};

	if (!need_account())
		return;
	mend_account_fingerprint(M.acc, fp);
	g = mend_fingerprint_grouped(fp);
	mend_account_pending_count(M.acc, &pending);
	/* which ratchet library our calls reach (DESIGN §2: libomemo-c, not Profanity's) */
	dladdr((void *)signal_context_create, &info);
	showf(NULL, _("mend: %s, device %u"), M.bare, mend_account_device_id(M.acc));
	showf(NULL, _("mend: fingerprint %s"), g);
	showf(NULL, _("mend: %zu message(s) waiting to be sent; new chats encrypted: %s"), pending,
	      M.api->settings_boolean_get(SETTINGS, "default", 0) ? _("yes") : _("no"));
	showf(NULL, _("mend: ratchet library %s"), info.dli_fname ? info.dli_fname : "?");
	mend_free(g);
}

static void show_devices(const char *jid)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	char *g;

	if (mend_account_device_infos(M.acc, jid, &d, &n) < 0 || n == 0) {
		showf(NULL, _("mend: no OMEMO device known for %s yet."), jid);
		mend_free(d);
		return;
	}
	for (i = 0; i < n; i++) {
		g = mend_fingerprint_grouped(d[i].fingerprint[0] ? d[i].fingerprint : "?");
		showf(NULL, "mend: %s device %u%s  %s  %s%s", jid, d[i].id,
		      d[i].id == mend_account_device_id(M.acc) && !strcmp(jid, M.bare) ? " (this)"
		                                                                       : "",
		      g, mend_trust_name(d[i].trust), d[i].active ? "" : _(" (gone)"));
		mend_free(g);
	}
	mend_free(d);
}

static void cmd_trust(int trust, char *jid, char *dev)
{
	uint32_t id = dev ? (uint32_t)g_ascii_strtoull(dev, NULL, 10) : 0;
	int r;

	if (!need_account())
		return;
	if (!jid || !id) {
		M.api->cons_show(_("mend: usage: /mend trust|untrust JID DEVICE"));
		return;
	}
	r = mend_account_set_trust(M.acc, jid, id,
	                           trust ? MEND_TRUST_VERIFIED : MEND_TRUST_UNTRUSTED);
	if (r < 0)
		showf(NULL, _("mend: %s device %u: %s Run /mend devices %s first."), jid, id,
		      mend_strerror(r), jid);
	else
		showf(NULL,
		      trust ? _("mend: %s device %u is verified.")
		            : _("mend: %s device %u will get nothing from you."),
		      jid, id);
	mark_window(jid);
}

/* The URI's QR code in the console, a line at a time. */
static void show_qr(const char *uri)
{
	char *qr = mend_qr_text(uri), **lines;
	int i;

	if (!qr)
		return;
	lines = g_strsplit(qr, "\n", -1);
	for (i = 0; lines[i] && lines[i][0]; i++)
		M.api->cons_show(lines[i]);
	g_strfreev(lines);
	mend_free(qr);
}

/* /mend uri | verify URI | policy [JID] [tofu|btbv|manual] */
static void cmd_trust_extra(const char *sub, char *a, char *b)
{
	char *uri = NULL;
	unsigned n = 0;
	int r, p;

	if (!need_account())
		return;
	if (!strcmp(sub, "uri")) {
		mend_account_verification_uri(M.acc, &uri);
		showf(NULL, _("mend: our verification URI (scan or compare it): %s"), uri);
		show_qr(uri);
		mend_free(uri);
	} else if (!strcmp(sub, "verify")) {
		r = a ? mend_account_verify_uri(M.acc, a, &n) : MEND_ERR_INVALID_ARG;
		if (r < 0)
			showf(NULL, "mend: %s", mend_strerror(r));
		else
			showf(NULL, _("mend: %u device(s) verified."), n);
	} else {
		const char *jid = a && mend_policy_parse(a) < 0 ? a : NULL, *name = jid ? b : a;

		p = name ? mend_policy_parse(name) : 0;
		if (name && p >= 0)
			mend_account_set_policy(M.acc, jid, (mend_policy)p);
		else if (name)
			M.api->cons_show(_("mend: a policy is tofu, btbv or manual."));
		showf(NULL, _("mend: trust policy for %s: %s"), jid ? jid : _("this account"),
		      mend_policy_name(mend_account_get_policy(M.acc, jid)));
	}
}

static void cmd_mend(char **args)
{
	const char *sub = args[0];

	if (!strcmp(sub, "on") || !strcmp(sub, "off")) {
		cmd_on_off(!strcmp(sub, "on"), args[1]);
	} else if (!strcmp(sub, "default") && args[1]) {
		M.api->settings_boolean_set(SETTINGS, "default", !strcmp(args[1], "on"));
		showf(NULL, _("mend: new chats are %s by default."),
		      !strcmp(args[1], "on") ? _("encrypted") : _("not encrypted"));
	} else if (!strcmp(sub, "status")) {
		cmd_status();
	} else if (!strcmp(sub, "devices") || !strcmp(sub, "fingerprint")) {
		if (need_account()) {
			const char *jid = args[1] ? args[1] : M.bare;

			if (strcmp(jid, M.bare) != 0)
				mend_account_refresh_devices(M.acc, jid);
			show_devices(jid);
		}
	} else if (!strcmp(sub, "trust") || !strcmp(sub, "untrust")) {
		cmd_trust(!strcmp(sub, "trust"), args[1], args[2]);
	} else if (!strcmp(sub, "uri") || !strcmp(sub, "verify") || !strcmp(sub, "policy")) {
		cmd_trust_extra(sub, args[1], args[2]);
	} else {
		M.api->cons_show(_("mend: unknown command; see /help mend."));
	}
}

static void register_commands(void)
{
	static char *synopsis[] = {"/mend on|off [<jid>]",
	                           "/mend default on|off",
	                           "/mend status",
	                           "/mend devices [<jid>]",
	                           "/mend fingerprint [<jid>]",
	                           "/mend trust|untrust <jid> <device>",
	                           NULL};
	static char *arguments[][2] = {
	    {"on|off [<jid>]", "Encrypt messages to the contact (default: the current chat)."},
	    {"default on|off", "Whether chats are encrypted unless turned off."},
	    {"status", "This device's id, fingerprint, queue and library."},
	    {"devices [<jid>]", "Devices of a contact (or yours), fingerprints and trust."},
	    {"fingerprint [<jid>]", "The same as devices."},
	    {"trust|untrust <jid> <device>",
	     "Mark a device verified (accepting a changed key), or never encrypt to it."},
	    {"uri", "Our verification URI, as Conversations and Dino scan it."},
	    {"verify <uri>", "Verify a contact's devices from their URI."},
	    {"policy [<jid>] [tofu|btbv|manual]", "How new devices are trusted."},
	    {NULL, NULL}};
	static char *examples[] = {"/mend on bob@example.org", "/mend devices bob@example.org",
	                           "/mend trust bob@example.org 12345", NULL};
	static char *subs[] = {"on",    "off",     "default", "status", "devices", "fingerprint",
	                       "trust", "untrust", "uri",     "verify", "policy",  NULL};
	static char *onoff[] = {"on", "off", NULL};

	M.api->register_command(MEND_PROF_FILE, "/mend", 1, 3, synopsis,
	                        _("OMEMO encryption on every device (mend)."), arguments, examples,
	                        cmd_mend);
	M.api->completer_add(MEND_PROF_FILE, "/mend", subs);
	M.api->completer_add(MEND_PROF_FILE, "/mend default", onoff);
	M.api->disco_add_feature(MEND_PROF_FILE,
	                         (char *)"eu.siacs.conversations.axolotl.devicelist+notify");
}

/* --- the entry point ------------------------------------------------------------- */

static void init(const char *version, const char *status, const char *account_name,
                 const char *fulljid)
{
	mend_i18n_init();
	M.xctx = xmpp_ctx_new(NULL, NULL);
	register_commands();
	M.api->register_timed(MEND_PROF_FILE, retry_locked, 5);
	/* loaded while connected: there will be no on_connect (HOSTS.md) */
	if (account_name && fulljid)
		connect_account(account_name, fulljid);
}

static const struct mend_prof_hooks hooks = {
    .abi = MEND_PROF_ABI,
    .init = init,
    .on_shutdown = on_shutdown,
    .on_connect = on_connect,
    .on_disconnect = on_disconnect,
    .on_message_stanza_send = on_message_send,
    .on_message_stanza_receive = on_message_receive,
    .on_iq_stanza_receive = on_iq_receive,
    .pre_chat_message_display = pre_display,
    .on_chat_win_focus = on_focus,
    .pre_chat_message_send = pre_send,
};

__attribute__((visibility("default"))) const struct mend_prof_hooks *
mend_profanity_module(const struct mend_prof_api *api)
{
	if (!api || api->abi != MEND_PROF_ABI)
		return NULL;
	M.api = api;
	return &hooks;
}
