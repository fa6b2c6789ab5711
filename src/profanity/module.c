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
 * Marks (the character after the time): every received message says how it
 * came: "+" from a verified device, "~" from a trusted one (first use,
 * blind trust), "?" from an untrusted or unknown one, "!" from a device its
 * owner does not announce, and a plaintext message in a chat where
 * encryption is on gets "-" and "[unencrypted]", never "~".
 *
 * Group chats are in rooms.c.
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
#include "profanity/rooms.h"
#include "profanity/files.h"
#include "sigproto.h"

#define _(s)             dgettext(GETTEXT_PACKAGE, s)
#define N_(s)            (s)
#define ENC_CHAR         "~" /* from a trusted device (first use or blind trust), or ours */
#define MARK_VERIFIED    "+"
#define MARK_UNTRUSTED   "?"
#define MARK_UNANNOUNCED "!"
#define MARK_PLAIN       "-" /* unencrypted */
#define MARK_NOTICE      "-"
#define MARK_BROKEN      "x" /* an OMEMO message we cannot read */
#define SETTINGS         "mend"
#define HELD_MAX         1000 /* stanzas held while the account is not open */

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
	const char *rx_mark;
	char *rx_plain_peer; /* a plaintext message from this JID is about to be shown */
	/* where the running /mend command was typed (NULL: the console) */
	char *here_chat;
	char *here_room;
	GPtrArray *held;      /* OMEMO stanzas that arrived before the account was open */
	GHashTable *outbox;   /* message id -> "peer\nbody" of messages waiting for keys */
	GHashTable *shown;    /* ids of messages shown in this session (history skips them) */
	GHashTable *opened;   /* chats whose history mend showed in this session */
	GHashTable *no_omemo; /* contacts found without OMEMO devices (on by default skips them) */
	char *history_wanted; /* a chat whose history waits for the archive query running now */
	mend_prof_rooms *rooms; /* group chats (rooms.c) */
	int archive_idle;       /* the archive query that made it wait has ended */
} M;

/* --- small helpers ---------------------------------------------------------- */

/*
 * Opens `jid`'s chat window as the user would (/msg JID) and goes back to the window
 * that was current (the plugin API has no call that opens a window in the background).
 */
static void open_chat_window(const char *jid)
{
	const char *chat = M.api->get_current_recipient();
	const char *room = M.api->get_current_muc();
	char *back = chat                              ? g_strdup_printf("/win %s", chat)
	             : room                            ? g_strdup_printf("/win %s", room)
	             : M.api->current_win_is_console() ? g_strdup("/win console")
	                                               : NULL;
	char *line = g_strdup_printf("/msg %s", jid);

	M.api->send_line(line);
	if (back)
		M.api->send_line(back);
	g_free(line);
	g_free(back);
}

/* Prints `text` in `jid`'s chat window with `mark`, opening the window if there is none. */
static void show_marked(const char *jid, const char *mark, const char *text)
{
	if (!jid) {
		M.api->cons_show(text);
		return;
	}
	if (M.api->chat_show_themed(jid, NULL, NULL, NULL, mark, text))
		return;
	open_chat_window(jid);
	if (!M.api->chat_show_themed(jid, NULL, NULL, NULL, mark, text))
		M.api->cons_show(text);
}

/* A notice about `jid`'s chat (NULL: the console). */
static void show(const char *jid, const char *text)
{
	show_marked(jid, MARK_NOTICE, text);
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

/* Command output: in the window the command was typed in (chat, room or console). */
static void reply(const char *text)
{
	if (M.here_chat &&
	    M.api->chat_show_themed(M.here_chat, NULL, NULL, NULL, MARK_NOTICE, text))
		return;
	if (M.here_room && M.api->room_show(M.here_room, text))
		return;
	M.api->cons_show(text);
}

static void replyf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void replyf(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	reply(text);
	g_free(text);
}

/* The bare JID every setting and lookup is keyed by (mend_jid_normalize), g_free'd. */
static char *norm(const char *jid)
{
	char *n = jid ? mend_jid_normalize(jid) : NULL;
	char *out = g_strdup(n);

	mend_free(n);
	return out;
}

static int in_list(const char *key, const char *jid)
{
	char **list = M.api->settings_string_list_get(SETTINGS, (char *)key);
	int found = 0, i;

	for (i = 0; list && list[i]; i++) {
		char *n = norm(list[i]);

		found |= n && strcmp(n, jid) == 0;
		g_free(n);
	}
	g_strfreev(list);
	return found;
}

/* Removes every spelling of `jid` (normalised) from the settings list `key`. */
static void list_remove(const char *key, const char *jid)
{
	char **list = M.api->settings_string_list_get(SETTINGS, (char *)key);
	int i;

	for (i = 0; list && list[i]; i++) {
		char *n = norm(list[i]);

		if (!n || strcmp(n, jid) == 0)
			M.api->settings_string_list_remove(SETTINGS, (char *)key, list[i]);
		g_free(n);
	}
	g_strfreev(list);
}

/* The settings key of this account's default ("default.ACCOUNT"; "default" when unknown). */
static char *default_key(void)
{
	return M.account ? g_strconcat("default.", M.account, NULL) : g_strdup("default");
}

/* Whether new chats are encrypted (when the contact has OMEMO): on unless the user said off. */
static int default_on(void)
{
	char *key = default_key();
	int on = M.api->settings_boolean_get(SETTINGS, "default", 1);

	on = M.api->settings_boolean_get(SETTINGS, key, on);
	g_free(key);
	return on;
}

/*
 * Whether messages to `jid` are encrypted: what the user said for this chat; else the
 * default, unless mend found that the contact publishes no OMEMO device (M.no_omemo).
 * Not knowing yet counts as on: the first message waits for the device list rather than
 * leave in plaintext.
 */
static int enabled(const char *jid)
{
	char *n = norm(jid);
	int on;

	if (!n)
		return default_on();
	if (in_list("disabled", n))
		on = 0;
	else if (in_list("enabled", n))
		on = 1;
	else
		on = default_on() && !g_hash_table_contains(M.no_omemo, n);
	g_free(n);
	return on;
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
	if (!mend_prof_rooms_notice(M.rooms, jid, text))
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

/*
 * Whether the sending device is missing from its owner's published device list (a list we
 * know: for a contact whose list we never saw there is nothing to compare with).
 */
static int unannounced(const mend_event *ev)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	int listed = 0;

	if (!M.acc || !ev->from || ev->outgoing ||
	    mend_account_device_infos(M.acc, ev->from, &d, &n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		listed |= d[i].id == ev->device && d[i].active;
	mend_free(d);
	return n > 0 && !listed;
}

/* The mark of a message from a device in this state (see the top of this file). */
static const char *trust_mark(const mend_event *ev)
{
	if (unannounced(ev))
		return MARK_UNANNOUNCED;
	if (ev->trust == MEND_TRUST_VERIFIED)
		return MARK_VERIFIED;
	if (mend_trust_is_trusted(ev->trust))
		return ENC_CHAR;
	return MARK_UNTRUSTED;
}

/* Remembers that the message `id` / `stanza_id` was shown (history then skips it). */
static void remember_shown(const char *id, const char *stanza_id)
{
	if (id)
		g_hash_table_add(M.shown, g_strdup(id));
	if (stanza_id)
		g_hash_table_add(M.shown, g_strdup(stanza_id));
}

static int was_shown(const mend_event *ev)
{
	return (ev->id && g_hash_table_contains(M.shown, ev->id)) ||
	       (ev->stanza_id && g_hash_table_contains(M.shown, ev->stanza_id));
}

/* Messages Profanity will not show itself (sent carbons, the archive, held ones): shown here. */
static void show_ourselves(const mend_event *ev)
{
	const char *mark = ev->outgoing ? ENC_CHAR : trust_mark(ev);
	char *line, *who;

	if (ev->archived && was_shown(ev))
		return;
	remember_shown(ev->id, ev->stanza_id);
	/* named as Profanity names the contact in its own lines */
	who = ev->outgoing || !ev->from ? strdup(ev->outgoing ? "me" : "?")
	                                : M.api->get_name_from_roster(ev->from);
	if (ev->archived)
		line = g_strdup_printf("%s: %s  [%s]", who, ev->body, ev->timestamp);
	else
		line = g_strdup_printf("%s: %s", who, ev->body);
	show_marked(ev->peer, mark, line);
	free(who);
	g_free(line);
}

/* What Profanity is about to show for the stanza being received (pre_display swaps it in). */
static void set_rx(const char *peer, const char *text, const char *mark)
{
	M.rx_keep = 1;
	g_free(M.rx_peer);
	g_free(M.rx_text);
	M.rx_peer = g_strdup(peer);
	M.rx_text = g_strdup(text);
	M.rx_mark = mark;
}

static void show_message(const mend_event *ev);

/* XEP-0454: a file link is shown as a short description with the command that saves it. */
static void on_message(const mend_event *ev)
{
	mend_event e = *ev;
	char *desc = ev->file ? mend_prof_file_received(M.api, M.acc, ev) : NULL;

	if (desc)
		e.body = desc;
	show_message(&e);
	g_free(desc);
}

static void show_message(const mend_event *ev)
{
	if (M.rx_active && !ev->archived && ev->carbon != MEND_CARBON_SENT) {
		/* Profanity shows it: pre_chat_message_display gets our text */
		remember_shown(ev->id, ev->stanza_id);
		set_rx(ev->peer, ev->body, trust_mark(ev));
		return;
	}
	show_ourselves(ev);
}

static void on_undecryptable(const mend_event *ev)
{
	if (M.rx_active && !ev->archived) {
		set_rx(ev->peer, ev->text, MARK_BROKEN);
		return;
	}
	show_marked(ev->peer, MARK_BROKEN, ev->text);
}

/* A message that waited for keys left (SENT) or will not leave (SEND_FAILED). */
static void on_send_result(const mend_event *ev)
{
	char *waiting = ev->id ? g_hash_table_lookup(M.outbox, ev->id) : NULL;
	char *line;

	if (ev->kind == MEND_EVENT_SEND_FAILED) {
		show(ev->peer, ev->text);
		if (ev->error == MEND_ERR_NO_DEVICES && ev->peer && !in_list("enabled", ev->peer)) {
			/* on by default only where the contact has OMEMO: the next one goes plain
			 */
			g_hash_table_add(M.no_omemo, g_strdup(ev->peer));
			mark_window(ev->peer);
			showf(ev->peer,
			      _("Encryption is now off for %s (no OMEMO); send it again to send it "
			        "unencrypted, or /mend on %s to require encryption."),
			      ev->peer, ev->peer);
		}
		if (waiting) {
			line = g_strdup_printf(_("NOT sent: %s"), waiting);
			show(ev->peer, line);
			g_free(line);
		}
	} else if (waiting) {
		line = g_strconcat("me: ", waiting, NULL);
		show_marked(ev->peer, ENC_CHAR, line);
		remember_shown(ev->id, NULL);
		g_free(line);
	}
	if (ev->kind == MEND_EVENT_SENT && ev->text && *ev->text)
		show(ev->peer, ev->text); /* devices skipped (not trusted) */
	if (ev->id)
		g_hash_table_remove(M.outbox, ev->id);
}

/* XEP-0184: a device of the contact confirmed our message; a line in its open chat window. */
static void on_delivered(const mend_event *ev)
{
	char *text = g_strdup_printf(_("delivered to %s"), ev->peer);

	M.api->chat_show_themed(ev->peer, NULL, NULL, NULL, "\xe2\x9c\x93", text);
	g_free(text);
}

static void op_event(const mend_event *ev, void *ud)
{
	enum mend_prof_room_rx room = mend_prof_rooms_event(M.rooms, ev);

	if (room == MEND_PROF_ROOM_KEEP)
		M.rx_keep = 1; /* Profanity shows it; pre_room_message_display swaps the text */
	if (room != MEND_PROF_ROOM_NOT)
		return;
	switch (ev->kind) {
	case MEND_EVENT_MESSAGE:
		on_message(ev);
		break;
	case MEND_EVENT_UNDECRYPTABLE:
		on_undecryptable(ev);
		break;
	case MEND_EVENT_SENT:
	case MEND_EVENT_SEND_FAILED:
		on_send_result(ev);
		break;
	case MEND_EVENT_NOTICE:
		show(ev->peer, ev->text);
		break;
	case MEND_EVENT_CATCHUP_DONE:
	case MEND_EVENT_HISTORY_DONE:
		M.archive_idle = 1; /* a waiting history query goes once the core returned */
		break;
	case MEND_EVENT_DEVICELIST:
		if (ev->peer && ev->n_devices > 0)
			g_hash_table_remove(M.no_omemo, ev->peer);
		mark_window(ev->peer);
		break;
	case MEND_EVENT_DELIVERED:
		on_delivered(ev);
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
	mend_prof_rooms_closed(M.rooms);
	if (M.acc) {
		mend_account_disconnected(M.acc);
		mend_account_free(M.acc);
		M.acc = NULL;
	}
	g_clear_pointer(&M.fulljid, g_free);
	g_clear_pointer(&M.bare, g_free);
}

/* The stanzas held while the account was not open, handled now that it is. */
static void release_held(void)
{
	GPtrArray *held = M.held;
	guint i;

	M.held = g_ptr_array_new_with_free_func(g_free);
	for (i = 0; held && i < held->len; i++)
		mend_account_handle_stanza(M.acc, g_ptr_array_index(held, i));
	if (held)
		g_ptr_array_free(held, TRUE);
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
	mend_prof_rooms_opened(M.rooms, M.acc); /* before held stanzas: their rooms are known */
	release_held();
	return r;
}

static void connect_account(const char *account_name, const char *fulljid)
{
	disconnect();
	g_free(M.account);
	M.account = g_strdup(account_name);
	M.bare = norm(fulljid);
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

/* Every few seconds while connected: what waits for time (archive retry, prekey rotation). */
static void tick(void)
{
	if (M.acc)
		mend_account_tick(M.acc);
	mend_prof_rooms_tick(M.rooms);
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
	g_clear_pointer(&M.held, g_ptr_array_unref);
	g_clear_pointer(&M.outbox, g_hash_table_unref);
	g_clear_pointer(&M.shown, g_hash_table_unref);
	g_clear_pointer(&M.opened, g_hash_table_unref);
	g_clear_pointer(&M.no_omemo, g_hash_table_unref);
	g_clear_pointer(&M.rooms, mend_prof_rooms_free);
	g_clear_pointer(&M.history_wanted, g_free);
	g_clear_pointer(&M.account, g_free);
	g_clear_pointer(&M.rx_peer, g_free);
	g_clear_pointer(&M.rx_text, g_free);
	g_clear_pointer(&M.rx_plain_peer, g_free);
	mend_prof_files_free();
}

/* --- receiving ----------------------------------------------------------------- */

static void history_flush(void);

static int has_child_ns(xmpp_stanza_t *st, const char *ns)
{
	return st && xmpp_stanza_get_child_by_ns(st, ns) != NULL;
}

/* Whether the stanza carries an OMEMO <encrypted/> (legacy or OMEMO:2), maybe in a carbon. */
static int has_omemo_payload(const char *text)
{
	return strstr(text, "<encrypted") &&
	       (strstr(text, "eu.siacs.conversations.axolotl\"") ||
	        strstr(text, "eu.siacs.conversations.axolotl'") ||
	        strstr(text, "urn:xmpp:omemo:2\"") || strstr(text, "urn:xmpp:omemo:2'"));
}

/*
 * A plaintext chat message Profanity will show: remembers its sender, so that
 * pre_display marks it unencrypted. A received carbon names the sender inside.
 */
static void note_plaintext(xmpp_stanza_t *st)
{
	xmpp_stanza_t *fwd, *inner;
	const char *type = st ? xmpp_stanza_get_type(st) : NULL;

	g_clear_pointer(&M.rx_plain_peer, g_free);
	if (!st || (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return;
	fwd = xmpp_stanza_get_child_by_name_and_ns(st, "received", "urn:xmpp:carbons:2");
	fwd = fwd ? xmpp_stanza_get_child_by_name(fwd, "forwarded") : NULL;
	inner = fwd ? xmpp_stanza_get_child_by_name(fwd, "message") : st;
	if (inner && xmpp_stanza_get_child_by_name(inner, "body"))
		M.rx_plain_peer = norm(xmpp_stanza_get_from(inner));
}

static int on_message_receive(const char *text)
{
	xmpp_stanza_t *st;
	int r, pep;

	if (!M.acc) {
		/* mend cannot judge it yet (store not open, keyring locked): hold it, never shown
		 * as its fallback body; what the cap drops comes back from the archive catch-up */
		if (!has_omemo_payload(text))
			return 1;
		if (M.held && M.held->len < HELD_MAX)
			g_ptr_array_add(M.held, g_strdup(text));
		return 0;
	}
	st = xmpp_stanza_new_from_string(M.xctx, text);
	/* device list events are Profanity's too (its own OMEMO reads them) */
	pep = has_child_ns(st, "http://jabber.org/protocol/pubsub#event");
	/* a device list event can release messages that waited for it (announce.c): Profanity
	 * shows none of them for this stanza, so mend shows them itself */
	M.rx_active = !pep;
	M.rx_keep = 0;
	mend_prof_rooms_rx_begin(M.rooms, st, !pep);
	r = mend_account_handle_stanza(M.acc, text);
	mend_prof_rooms_rx_end(M.rooms, st, r != 0);
	M.rx_active = 0;
	history_flush();
	if (r == 0 && !pep)
		note_plaintext(st);
	if (st)
		xmpp_stanza_release(st);
	if (r == 0 || pep)
		return 1;
	/* ours: shown through Profanity (rx_keep), shown by us, or a duplicate to drop */
	return M.rx_keep;
}

static int on_iq_receive(const char *text)
{
	int r;

	if (!M.acc)
		return 1;
	/* a reply to one of our requests is ours alone */
	r = mend_account_handle_stanza(M.acc, text);
	history_flush();
	return r == 1 ? 0 : 1;
}

/* Presence: the core follows rooms' occupants (XEP-0045 §7.2.3); Profanity needs it too. */
static int on_presence_receive(const char *text)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(M.xctx, text);

	if (M.acc)
		mend_account_handle_stanza(M.acc, text);
	else if (has_child_ns(st, "http://jabber.org/protocol/muc#user") && M.held &&
	         M.held->len < HELD_MAX)
		/* a room's occupants (their real JIDs) before the store is open: after a
		 * reconnect Profanity rejoins its rooms before mend's on_connect */
		g_ptr_array_add(M.held, g_strdup(text));
	mend_prof_rooms_presence_in(M.rooms, st);
	history_flush();
	if (st)
		xmpp_stanza_release(st);
	return 1;
}

/* Our presence going out: a room join tells the core about the room. Sent unchanged. */
static char *on_presence_send(const char *text)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(M.xctx, text);

	mend_prof_rooms_presence_out(M.rooms, st);
	if (st)
		xmpp_stanza_release(st);
	return NULL;
}

static char *pre_room_send(const char *roomjid, const char *message)
{
	return mend_prof_rooms_pre_send(M.rooms, roomjid, message);
}

static char *pre_room_display(const char *roomjid, const char *nick, const char *message)
{
	return mend_prof_rooms_pre_display(M.rooms, roomjid, nick, message);
}

static void post_room_display(const char *roomjid, const char *nick, const char *message)
{
	mend_prof_rooms_post_display(M.rooms, roomjid);
}

static void on_room_focus(const char *roomjid)
{
	mend_prof_rooms_focus(M.rooms, roomjid);
}

static char *pre_priv_send(const char *fulljid, const char *message)
{
	return mend_prof_rooms_pre_priv_send(M.rooms, fulljid, message);
}

/* The body OMEMO clients put beside the encrypted payload (mend's, Conversations', Dino's...). */
static int looks_like_fallback(const char *text)
{
	return text && strlen(text) < 400 && strstr(text, "OMEMO") &&
	       (strstr(text, "encrypted") || strstr(text, "ENCRYPTED"));
}

/*
 * Profanity is about to show a message from `barejid` (live, or from its history): the
 * text mend decrypted, with the sending device's trust as the mark; a plaintext message in
 * a chat where encryption is on with the unencrypted mark and a word saying so.
 */
static char *pre_display(const char *barejid, const char *resource, const char *message)
{
	char *n = norm(barejid), *out = NULL;

	if (M.rx_text && M.rx_peer && n && strcmp(n, M.rx_peer) == 0) {
		M.api->chat_set_incoming_char(barejid, M.rx_mark);
		out = strdup(M.rx_text);
		g_clear_pointer(&M.rx_text, g_free);
		g_clear_pointer(&M.rx_peer, g_free);
	} else if (M.rx_plain_peer && n && strcmp(n, M.rx_plain_peer) == 0) {
		g_clear_pointer(&M.rx_plain_peer, g_free);
		M.api->chat_set_incoming_char(barejid, MARK_PLAIN);
		if (enabled(n)) {
			char *s = g_strdup_printf(_("[unencrypted] %s"), message);

			out = strdup(s);
			g_free(s);
		}
	} else if (looks_like_fallback(message)) {
		/* Profanity's history keeps what came on the wire: mend shows the text itself */
		out = strdup(_("[an OMEMO message: mend shows its text from its own history]"));
	}
	g_free(n);
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

static void say_no_devices(const char *bare)
{
	showf(bare,
	      _("%s has no OMEMO device mend can encrypt to; the message was NOT sent. /mend off "
	        "%s sends without encryption."),
	      bare, bare);
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
		say_no_devices(bare);
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
	bare = norm(to);
	if (body && bare && type && strcmp(type, "groupchat") == 0 &&
	    !has_child_ns(st, "eu.siacs.conversations.axolotl") &&
	    !has_child_ns(st, "urn:xmpp:omemo:2") && mend_prof_rooms_is_on(M.rooms, bare)) {
		/* a room with encryption on never gets plaintext, whatever path it took */
		showf(NULL,
		      _("mend: a plaintext message to %s was NOT sent: encryption is on there. "
		        "/mend off in its window sends without encryption."),
		      bare);
		out = empty_message(NULL, NULL);
		goto out;
	}
	if (body && mend_prof_rooms_known(M.rooms, bare) && strchr(to, '/')) {
		/* XEP-0045 §7.5, a private message: pre_priv_message_send decided */
		if (mend_prof_rooms_is_on(M.rooms, bare))
			out = empty_message(NULL, NULL);
		goto out;
	}
	if (!body || !bare || (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0) ||
	    has_child_ns(st, "eu.siacs.conversations.axolotl") ||
	    has_child_ns(st, "urn:xmpp:omemo:2") || !enabled(bare)) /* ours: already encrypted */
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
 * (NULL); mend sends it encrypted and shows it with the encryption mark once it
 * left (now, or when the keys arrive); a message that does not leave is never
 * shown as sent.
 */
static char *pre_send(const char *barejid, const char *message)
{
	char *stanza = NULL, *id, *to = norm(barejid);
	int r;

	if (!enabled(barejid)) {
		g_free(to);
		return strdup(message);
	}
	if (!M.acc || !to) {
		showf(barejid, _("Not connected to OMEMO yet; the message was NOT sent. Try again "
		                 "in a moment."));
		g_free(to);
		return NULL;
	}
	id = g_uuid_string_random();
	r = mend_account_encrypt_or_queue(M.acc, to, message, id, &stanza);
	if (r == 0 && !M.api->send_stanza(stanza))
		r = MEND_ERR_PROTOCOL;
	mend_free(stanza);
	if (r == MEND_ERR_NO_DEVICES)
		say_no_devices(to);
	else if (r < 0)
		showf(barejid, _("The message was NOT sent: %s"), mend_strerror(r));
	if (r == 0) {
		char *line = g_strconcat("me: ", message, NULL);

		show_marked(barejid, ENC_CHAR, line);
		remember_shown(id, NULL);
		g_free(line);
	} else if (r == 1) {
		g_hash_table_replace(M.outbox, g_strdup(id), g_strdup(message));
		showf(barejid,
		      _("Fetching %s's keys; the message is shown here once it left encrypted."),
		      to);
	}
	g_free(id);
	g_free(to);
	return NULL;
}

#define HISTORY_DAYS 7 /* how far back a chat's history goes when it is opened */

/*
 * The first time a chat is opened in this session: mend's own history of it (the sealed
 * local copies and the server archive) of the last HISTORY_DAYS days. The core runs one
 * archive query at a time: while another runs (the catch-up after connecting), the chat
 * waits in M.history_wanted until that one ends.
 */
static void show_history(const char *jid)
{
	GDateTime *now, *since;
	char *iso;
	int r;

	if (!M.acc || g_hash_table_contains(M.opened, jid))
		return;
	now = g_date_time_new_now_utc();
	since = g_date_time_add_days(now, -HISTORY_DAYS);
	iso = g_date_time_format(since, "%Y-%m-%dT%H:%M:%SZ");
	r = mend_account_history(M.acc, jid, iso);
	g_free(iso);
	g_date_time_unref(since);
	g_date_time_unref(now);
	g_clear_pointer(&M.history_wanted, g_free);
	M.archive_idle = 0;
	if (r == MEND_OK)
		g_hash_table_add(M.opened, g_strdup(jid));
	else
		M.history_wanted = g_strdup(jid);
}

/* Asks for a chat's history that waited for another archive query, now that it ended. */
static void history_flush(void)
{
	char *jid;

	if (!M.archive_idle || !M.history_wanted)
		return;
	jid = g_strdup(M.history_wanted);
	show_history(jid);
	g_free(jid);
}

static void on_focus(const char *barejid)
{
	char *n = norm(barejid);

	mark_window(barejid);
	if (n && M.acc)
		show_history(n);
	g_free(n);
}

/* --- /mend --------------------------------------------------------------------- */

static int need_account(void)
{
	if (M.acc)
		return 1;
	if (M.locked) {
		reply(
		    _("mend: keyring locked. Unlock the keyring to use mend on this account; mend "
		      "tries again every few seconds."));
		return 0;
	}
	reply(_("mend: not connected; connect an account first."));
	return 0;
}

static void cmd_on_off(int on, char *arg)
{
	char *jid = norm(arg ? arg : M.here_chat);

	if (!jid) {
		reply(arg ? _("mend: that is not a JID.")
		          : _("mend: give a contact (/mend on JID) or open a chat first."));
		return;
	}
	list_remove("enabled", jid);
	list_remove("disabled", jid);
	M.api->settings_string_list_add(SETTINGS, on ? "enabled" : "disabled", jid);
	if (on && M.acc)
		mend_account_refresh_devices(M.acc, jid);
	mark_window(jid);
	replyf(on ? _("OMEMO encryption is on for %s.")
	          : _("OMEMO encryption is off for %s: messages go in plaintext."),
	       jid);
	g_free(jid);
}

static void cmd_default(const char *arg)
{
	char *key = default_key();
	int on = arg && !strcmp(arg, "on");

	if (arg && (on || !strcmp(arg, "off")))
		M.api->settings_boolean_set(SETTINGS, key, on);
	else if (arg)
		reply(_("mend: usage: /mend default on|off"));
	replyf(_("mend: new chats with contacts who have OMEMO are %s by default."),
	       default_on() ? _("encrypted") : _("not encrypted"));
	g_free(key);
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
	replyf(_("mend: %s, device %u"), M.bare, mend_account_device_id(M.acc));
	replyf(_("mend: fingerprint %s"), g);
	replyf(dngettext(GETTEXT_PACKAGE,
	                 "mend: %zu message waiting to be sent; new chats encrypted: %s",
	                 "mend: %zu messages waiting to be sent; new chats encrypted: %s", pending),
	       pending, default_on() ? _("yes") : _("no"));
	replyf(_("mend: ratchet library %s"), info.dli_fname ? info.dli_fname : "?");
	mend_free(g);
}

/* The OMEMO versions whose device lists name a device, as "OMEMO versions 2, 0.3"; ""
 * when none is known. g_free. */
static char *versions_text(unsigned bits)
{
	const char *names = mend_versions_name(bits);

	return names ? g_strdup_printf(_("OMEMO versions %s"), names) : g_strdup("");
}

static void show_devices(const char *jid)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	char *g, *v;

	if (mend_account_device_infos(M.acc, jid, &d, &n) < 0 || n == 0) {
		replyf(_("mend: no OMEMO device known for %s yet."), jid);
		mend_free(d);
		return;
	}
	for (i = 0; i < n; i++) {
		g = mend_fingerprint_grouped(d[i].fingerprint[0] ? d[i].fingerprint : "?");
		v = versions_text(d[i].versions);
		replyf("mend: %s device %u%s  %s  %s%s  %s", jid, d[i].id,
		       d[i].id == mend_account_device_id(M.acc) && !strcmp(jid, M.bare) ? " (this)"
		                                                                        : "",
		       g, mend_trust_name(d[i].trust),
		       !d[i].active ? _(" (gone)")
		       : d[i].stale ? _(" (inactive: skipped)")
		                    : "",
		       v);
		mend_free(g);
		g_free(v);
	}
	mend_free(d);
}

/* /mend devices [JID]: the contact's (the chat's when typed in one), or ours. */
static void cmd_devices(char *arg)
{
	char *jid;

	if (!need_account())
		return;
	jid = norm(arg ? arg : M.here_chat ? M.here_chat : M.bare);
	if (!jid) {
		reply(_("mend: that is not a JID."));
		return;
	}
	if (strcmp(jid, M.bare) != 0)
		mend_account_refresh_devices(M.acc, jid);
	show_devices(jid);
	g_free(jid);
}

/* A device that showed a new key: its old and new fingerprint and the command that accepts it. */
static void show_key_changed(const char *jid, uint32_t id)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	char *old, *new;

	mend_account_device_infos(M.acc, jid, &d, &n);
	for (i = 0; i < n; i++) {
		if (d[i].id != id || !d[i].new_fingerprint[0])
			continue;
		old = mend_fingerprint_grouped(d[i].fingerprint);
		new = mend_fingerprint_grouped(d[i].new_fingerprint);
		replyf(_("mend: %s device %u showed a new key; nothing was changed."), jid, id);
		replyf(_("mend:   old key %s"), old);
		replyf(_("mend:   NEW key %s"), new);
		replyf(_("mend: if its owner confirms the new key: /mend trust %s %u %s"), jid, id,
		       d[i].new_fingerprint);
		mend_free(old);
		mend_free(new);
	}
	mend_free(d);
}

/* /mend trust JID DEVICE [FINGERPRINT]: a changed key is accepted only by naming it. */
static void cmd_trust(int trust, char *arg, char *dev, char *fp)
{
	uint32_t id = dev ? (uint32_t)g_ascii_strtoull(dev, NULL, 10) : 0;
	char *jid = norm(arg);
	int r;

	if (!need_account())
		goto out;
	if (!jid || !id) {
		reply(_("mend: usage: /mend trust JID DEVICE [FINGERPRINT] | /mend untrust JID "
		        "DEVICE"));
		goto out;
	}
	if (trust && fp)
		r = mend_account_trust_key(M.acc, jid, id, fp);
	else
		r = mend_account_set_trust(M.acc, jid, id,
		                           trust ? MEND_TRUST_VERIFIED : MEND_TRUST_UNTRUSTED);
	if (r == MEND_ERR_KEY_CHANGED)
		show_key_changed(jid, id);
	else if (r < 0)
		replyf(_("mend: %s device %u: %s Run /mend devices %s first."), jid, id,
		       mend_strerror(r), jid);
	else
		replyf(trust ? _("mend: %s device %u is verified.")
		             : _("mend: %s device %u will get nothing from you."),
		       jid, id);
	mark_window(jid);
	mend_prof_rooms_trust_changed(M.rooms);
out:
	g_free(jid);
}

/* The URI's QR code, a line at a time. */
static void show_qr(const char *uri)
{
	char *qr = mend_qr_text(uri), **lines;
	int i;

	if (!qr)
		return;
	lines = g_strsplit(qr, "\n", -1);
	for (i = 0; lines[i] && lines[i][0]; i++)
		reply(lines[i]);
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
		replyf(_("mend: our verification URI (scan or compare it): %s"), uri);
		show_qr(uri);
		mend_free(uri);
	} else if (!strcmp(sub, "verify")) {
		r = a ? mend_account_verify_uri(M.acc, a, &n) : MEND_ERR_INVALID_ARG;
		if (r < 0)
			replyf("mend: %s", mend_strerror(r));
		else
			replyf(dngettext(GETTEXT_PACKAGE, "mend: %u device verified.",
			                 "mend: %u devices verified.", n),
			       n);
	} else {
		char *jid = a && mend_policy_parse(a) < 0 ? norm(a) : NULL;
		const char *name = a && mend_policy_parse(a) < 0 ? b : a;

		p = name ? mend_policy_parse(name) : 0;
		if (name && p >= 0)
			mend_account_set_policy(M.acc, jid, (mend_policy)p);
		else if (name)
			reply(_("mend: a policy is tofu, btbv or manual."));
		replyf(_("mend: trust policy for %s: %s"), jid ? jid : _("this account"),
		       mend_policy_name(mend_account_get_policy(M.acc, jid)));
		g_free(jid);
	}
}

/* Commands that only make sense in a room window, typed elsewhere. */
static int room_only(const char *sub)
{
	if (strcmp(sub, "members") && strcmp(sub, "send-anyway") && strcmp(sub, "drop"))
		return 0;
	replyf(_("mend: type /mend %s in the room's window."), sub);
	return 1;
}

/* /mend sendfile: to this chat or room if mend encrypts it; /mend save: answered here
 * (files.c). */
static void cmd_file(const char *sub, const char *arg)
{
	char *room = M.here_room ? norm(M.here_room) : NULL;
	int any = !strcmp(sub, "save");

	mend_prof_file_command(M.api, M.acc, sub, arg,
	                       M.here_chat && (any || enabled(M.here_chat)) ? M.here_chat : NULL,
	                       room && (any || mend_prof_rooms_is_on(M.rooms, room)) ? room : NULL,
	                       reply);
	g_free(room);
}

static void cmd_dispatch(char **args)
{
	const char *sub = args[0];

	if (M.here_room && mend_prof_rooms_command(M.rooms, M.here_room, args))
		return;
	if (room_only(sub))
		return;
	if (!strcmp(sub, "on") || !strcmp(sub, "off"))
		cmd_on_off(!strcmp(sub, "on"), args[1]);
	else if (!strcmp(sub, "default"))
		cmd_default(args[1]);
	else if (!strcmp(sub, "status"))
		cmd_status();
	else if (!strcmp(sub, "devices") || !strcmp(sub, "fingerprint"))
		cmd_devices(args[1]);
	else if (!strcmp(sub, "trust") || !strcmp(sub, "untrust"))
		cmd_trust(!strcmp(sub, "trust"), args[1], args[2], args[2] ? args[3] : NULL);
	else if (!strcmp(sub, "uri") || !strcmp(sub, "verify") || !strcmp(sub, "policy"))
		cmd_trust_extra(sub, args[1], args[2]);
	else if (!strcmp(sub, "sendfile") || !strcmp(sub, "save"))
		cmd_file(sub, args[1]);
	else
		reply(_("mend: unknown command; see /help mend."));
}

/* /mend ...: answered in the window it was typed in. */
static void cmd_mend(char **args)
{
	const char *chat = M.api->get_current_recipient();
	const char *room = M.api->get_current_muc ? M.api->get_current_muc() : NULL;

	M.here_chat = g_strdup(chat && *chat ? chat : NULL);
	M.here_room = g_strdup(room && *room ? room : NULL);
	cmd_dispatch(args);
	g_clear_pointer(&M.here_chat, g_free);
	g_clear_pointer(&M.here_room, g_free);
}

static void register_commands(void)
{
	static char *synopsis[] = {"/mend on|off [<jid>]",
	                           "/mend members",
	                           "/mend send-anyway|drop [<id>]",
	                           "/mend default on|off",
	                           "/mend status",
	                           "/mend devices [<jid>]",
	                           "/mend fingerprint [<jid>]",
	                           "/mend trust|untrust <jid> <device> [<fingerprint>]",
	                           "/mend uri",
	                           "/mend verify <uri>",
	                           "/mend policy [<jid>] [tofu|btbv|manual]",
	                           "/mend sendfile <path>",
	                           "/mend save [<n>|<url>]",
	                           NULL};
	static const char *arguments[][2] = {
	    {"on|off [<jid>]",
	     N_("Encrypt messages to the contact, or not (default: the current chat). In a room "
	        "window: the room, which must be members-only and show members' addresses "
	        "(otherwise mend says why and it stays off).")},
	    {"members", N_("In a room window: its members, their devices and trust.")},
	    {"send-anyway|drop [<id>]",
	     N_("In a room window: a message some members could not read (it waits, with a line "
	        "saying who and why) is sent to those who can, or dropped.")},
	    {"default on|off",
	     N_("Whether chats with contacts who have OMEMO are encrypted unless turned off (this "
	        "account; on when never set).")},
	    {"status", N_("This device's id, fingerprint, queue and library.")},
	    {"devices [<jid>]",
	     N_("Devices of a contact (default: the current chat, else yours), fingerprints and "
	        "trust.")},
	    {"fingerprint [<jid>]", N_("The same as devices.")},
	    {"trust|untrust <jid> <device> [<fingerprint>]",
	     N_("Mark a device verified, or never encrypt to it. A device that showed a new key "
	        "is trusted only by naming that key's fingerprint (64 hex digits, quoted if "
	        "spaced).")},
	    {"uri", N_("Our verification URI, as Conversations and Dino scan it.")},
	    {"verify <uri>", N_("Verify a contact's devices from their URI.")},
	    {"policy [<jid>] [tofu|btbv|manual]", N_("How new devices are trusted.")},
	    {"sendfile <path>", N_("Send a file encrypted (XEP-0454) in this chat or room; use it "
	                           "instead of /sendfile.")},
	    {"save [<n>|<url>]",
	     N_("Save received file n (default: the last), or an aesgcm:// link, in ~/Downloads.")},
	    {NULL, NULL}};
	static char *examples[] = {"/mend on bob@example.org", "/mend devices bob@example.org",
	                           "/mend trust bob@example.org 12345", NULL};
	static char *subs[] = {"on",          "off",     "default",     "status", "devices",
	                       "fingerprint", "trust",   "untrust",     "uri",    "verify",
	                       "policy",      "members", "send-anyway", "drop",   "sendfile",
	                       "save",        NULL};
	static char *onoff[] = {"on", "off", NULL};
	static char *policies[] = {"tofu", "btbv", "manual", NULL};

	char *args[G_N_ELEMENTS(arguments)][2] = {{NULL, NULL}};
	size_t i;

	for (i = 0; arguments[i][0]; i++) { /* Profanity shows them as given: translated here */
		args[i][0] = (char *)arguments[i][0];
		args[i][1] = (char *)_(arguments[i][1]);
	}
	M.api->register_command(MEND_PROF_FILE, "/mend", 1, 4, synopsis,
	                        _("OMEMO encryption on every device (mend). Marks before a "
	                          "received message: + verified device, ~ trusted, ? untrusted, ! "
	                          "not announced by its owner, - unencrypted."),
	                        args, examples, cmd_mend);
	M.api->completer_add(MEND_PROF_FILE, "/mend", subs);
	M.api->completer_add(MEND_PROF_FILE, "/mend default", onoff);
	M.api->completer_add(MEND_PROF_FILE, "/mend policy", policies);
	M.api->disco_add_feature(MEND_PROF_FILE,
	                         (char *)"eu.siacs.conversations.axolotl.devicelist+notify");
	/* XEP-0384 0.9 §5.3.1: contacts' OMEMO:2 device lists are pushed too */
	M.api->disco_add_feature(MEND_PROF_FILE, (char *)"urn:xmpp:omemo:2:devices+notify");
}

/* --- the entry point ------------------------------------------------------------- */

/* What rooms.c borrows from this file. */
static mend_prof_rooms *rooms_new(void)
{
	const struct mend_prof_rooms_host host = {
	    .api = M.api,
	    .reply = reply,
	    .show_devices = show_devices,
	    .trust_mark = trust_mark,
	    .norm = norm,
	    .listed = in_list,
	    .unlist = list_remove,
	};

	return mend_prof_rooms_new(&host);
}

static void init(const char *version, const char *status, const char *account_name,
                 const char *fulljid)
{
	mend_i18n_init();
	M.xctx = xmpp_ctx_new(NULL, NULL);
	M.held = g_ptr_array_new_with_free_func(g_free);
	M.outbox = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	M.shown = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	M.opened = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	M.no_omemo = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	M.rooms = rooms_new();
	register_commands();
	M.api->register_timed(MEND_PROF_FILE, retry_locked, 5);
	M.api->register_timed(MEND_PROF_FILE, tick, MEND_TICK_SECONDS);
	/* loaded while connected: there will be no on_connect (HOSTS.md) */
	if (account_name && fulljid)
		connect_account(account_name, fulljid);
}

/* Whether the user has turned mend on in any room. */
static int any_room_on(void)
{
	char **list = M.api->settings_string_list_get(SETTINGS, (char *)MEND_PROF_ROOMS_KEY);
	int on = list && list[0];

	g_strfreev(list);
	return on;
}

/*
 * Profanity's own /sendfile where mend encrypts: its slot request is replaced (files.c).
 * /sendfile works only in chat, room and private windows; the plugin API names no private
 * window (neither recipient nor room, not the console), so there it is stopped while any
 * room is encrypted: the room of the window cannot be told.
 */
static char *on_iq_send(const char *text)
{
	const char *chat = M.api->get_current_recipient();
	const char *room = M.api->get_current_muc();
	char *bare = room ? norm(room) : NULL;
	char *out;
	int on;

	if (chat)
		on = enabled(chat);
	else if (room) /* keyed by the normalised JID, like every other lookup */
		on = !bare || mend_prof_rooms_is_on(M.rooms, bare);
	else
		on = !M.api->current_win_is_console() && any_room_on();
	out = mend_prof_file_iq_send(M.api, text, chat, room, on);
	g_free(bare);
	return out;
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
    .on_presence_stanza_receive = on_presence_receive,
    .on_presence_stanza_send = on_presence_send,
    .pre_room_message_send = pre_room_send,
    .pre_room_message_display = pre_room_display,
    .post_room_message_display = post_room_display,
    .on_room_win_focus = on_room_focus,
    .on_iq_stanza_send = on_iq_send,
    .pre_priv_message_send = pre_priv_send,
};

__attribute__((visibility("default"))) const struct mend_prof_hooks *
mend_profanity_module(const struct mend_prof_api *api)
{
	if (!api || api->abi != MEND_PROF_ABI)
		return NULL;
	M.api = api;
	return &hooks;
}
