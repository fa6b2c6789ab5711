/*
 * plugin.c - mend inside Pidgin and Finch: a libpurple 2.x plugin.
 *
 * Only libpurple's public API and the jabber prpl's public signals are used
 * (no private headers, no link against libjabber):
 *  - jabber-receiving-xmlnode: every stanza goes to the core first; what the
 *    core consumed (OMEMO messages, replies to its requests, archive results)
 *    is freed and the pointer cleared, so libpurple never shows a fallback
 *    body; decrypted messages are written into their conversations with
 *    their original time;
 *  - jabber-sending-xmlnode: a chat message with a body to a contact with
 *    encryption on is never let out (the pointer is cleared; the caller owns
 *    and frees the node); mend sends the encrypted stanza instead, now or
 *    once the keys are fetched. Our own stanzas go out through the same
 *    signal, which the prpl turns into bytes on the wire.
 * libpurple has neither carbons nor MAM: the core enables carbons and catches
 * up from the archive on sign-on (DESIGN §8: libpurple's PEP helpers are not
 * used either, the core sends its own pubsub requests).
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include <glib.h>

#define PURPLE_PLUGINS
#include <cmds.h>
#include <connection.h>
#include <conversation.h>
#include <debug.h>
#include <notify.h>
#include <plugin.h>
#include <pluginpref.h>
#include <prefs.h>
#include <server.h>
#include <signals.h>
#include <util.h>
#include <version.h>
#include <xmlnode.h>

#include "mend/mend.h"
#include "mendpurple.h"
#include "purple/files.h"

#define PLUGIN_ID    "core-mend"
#define PREF_DEFAULT PREFS "/encrypt_by_default"
#define ACCT_DEFAULT "mend-default"
#define ASKED_WINDOW 15           /* seconds an asked-for device list may take to arrive */
#define STATE        "mend-state" /* conversation data: the state line last written */
#define LOCKED_RETRY 5            /* seconds between silent retries while the keyring is locked */

static PurplePlugin *self;
static GHashTable *conns;  /* PurpleConnection* -> conn* */
static GHashTable *locked; /* PurpleConnection* -> retry timer, while the keyring is locked */

/*
 * A connection between signing on and mend's account being open, or whose
 * account could not be opened: until the first try its one-to-one messages
 * are held; after a failed one an OMEMO message becomes an error line. So
 * nothing reaches the screen before mend can judge it.
 */
typedef struct early {
	GQueue held; /* xmlnode* <message/> stanzas, oldest first */
	int err;     /* why the account could not be opened; 0 while not tried */
} early;

static GHashTable *earlies; /* PurpleConnection* -> early* */
static PurpleCmdId cmd_id;
static guint recheck_timer;

static PurplePlugin *jabber(void)
{
	return purple_find_prpl("prpl-jabber");
}

/* The key of every per-chat setting and lookup: the core's one normaliser (bare, case-folded);
 * g_free()able. */
char *norm_jid(const char *jid)
{
	char *n = mend_jid_normalize(jid), *r = n ? g_strdup(n) : NULL;

	mend_free(n);
	return r;
}

/* --- settings: per conversation, with a per-account default ------------------- */

static char *pref_key(PurpleAccount *a, const char *jid)
{
	char *n = norm_jid(jid), *key = g_strdup_printf("%s %s", purple_account_get_username(a), n);

	g_free(n);
	return key;
}

int listed(const char *pref, PurpleAccount *a, const char *jid)
{
	char *key = pref_key(a, jid);
	GList *l = purple_prefs_get_string_list(pref), *it;
	int found = 0;

	for (it = l; it; it = it->next)
		found |= strcmp(it->data, key) == 0;
	g_list_free_full(l, g_free);
	g_free(key);
	return found;
}

void set_listed(const char *pref, PurpleAccount *a, const char *jid, int on)
{
	char *key = pref_key(a, jid);
	GList *l = purple_prefs_get_string_list(pref), *it, *next;

	for (it = l; it; it = next) {
		next = it->next;
		if (strcmp(it->data, key) == 0) {
			g_free(it->data);
			l = g_list_delete_link(l, it);
		}
	}
	if (on)
		l = g_list_append(l, g_strdup(key));
	purple_prefs_set_string_list(pref, l);
	g_list_free_full(l, g_free);
	g_free(key);
}

conn *conn_of(PurpleAccount *a)
{
	return conns ? g_hash_table_lookup(conns, purple_account_get_connection(a)) : NULL;
}

static int account_default(PurpleAccount *a)
{
	return purple_account_get_bool(a, ACCT_DEFAULT, purple_prefs_get_bool(PREF_DEFAULT));
}

/* Asks for jid's device list now, so that the default can go by it (DESIGN §7). */
static void ask_devices(conn *c, const char *jid)
{
	char *n = norm_jid(jid);

	if (c && n && strcmp(n, c->bare) != 0 && mend_account_refresh_devices(c->acc, n) == MEND_OK)
		g_hash_table_replace(
		    c->asked, g_strdup(n),
		    GINT_TO_POINTER((int)(g_get_monotonic_time() / G_USEC_PER_SEC)));
	g_free(n);
}

/*
 * Whether jid publishes OMEMO devices as far as we know. While an answer to
 * our own request for its list may still be on its way (asked less than
 * ASKED_WINDOW seconds ago and the core still waiting for answers), the
 * answer is yes: the message then waits for the list, and fails with a clear
 * error if there is none, rather than leaving unencrypted.
 */
static int has_devices(conn *c, const char *jid, int asked_counts)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	char *k = norm_jid(jid);
	gpointer asked = NULL;
	int now = (int)(g_get_monotonic_time() / G_USEC_PER_SEC);

	if (c && k)
		mend_account_devices(c->acc, k, &ids, &n);
	mend_free(ids);
	if (!n && asked_counts && c && k && g_hash_table_lookup_extended(c->asked, k, NULL, &asked))
		n = now - GPOINTER_TO_INT(asked) < ASKED_WINDOW && mend_account_busy(c->acc);
	g_free(k);
	return n > 0;
}

/*
 * Whether the chat with jid is encrypted: the user's choice for this chat,
 * else the account's default for contacts who publish OMEMO devices (on by
 * default, as Conversations, Dino and Gajim).
 */
static int enabled(PurpleAccount *a, const char *jid)
{
	if (listed(PREF_ENABLED, a, jid))
		return 1;
	if (listed(PREF_DISABLED, a, jid))
		return 0;
	return account_default(a) && has_devices(conn_of(a), jid, 1);
}

/* --- writing into conversations ------------------------------------------------ */

/* The IM conversation with jid: by its name, else one bound to any resource of it. */
static PurpleConversation *conv_for(PurpleAccount *a, const char *jid)
{
	PurpleConversation *c = purple_find_conversation_with_account(PURPLE_CONV_TYPE_IM, jid, a);
	char *want = c ? NULL : norm_jid(jid), *have;
	GList *l;

	for (l = purple_get_ims(); !c && l; l = l->next) {
		if (purple_conversation_get_account(l->data) != a)
			continue;
		have = norm_jid(purple_conversation_get_name(l->data));
		if (!g_strcmp0(have, want))
			c = l->data;
		g_free(have);
	}
	g_free(want);
	return c ? c : purple_conversation_new(PURPLE_CONV_TYPE_IM, a, jid);
}

static void write_line(PurpleAccount *a, const char *jid, const char *text,
                       PurpleMessageFlags flags)
{
	char *esc = g_markup_escape_text(text, -1);
	PurpleConversation *room =
	    jid ? purple_find_conversation_with_account(PURPLE_CONV_TYPE_CHAT, jid, a) : NULL;

	if (jid)
		purple_conversation_write(room ? room : conv_for(a, jid), NULL, esc, flags,
		                          time(NULL));
	else
		purple_notify_info(self, "mend", text, NULL);
	g_free(esc);
}

void say(PurpleAccount *a, const char *jid, const char *text)
{
	write_line(a, jid, text, PURPLE_MESSAGE_SYSTEM);
}

/* An error in the conversation, drawn as one (Pidgin in red, Finch in its error colour). */
void say_error(PurpleAccount *a, const char *jid, const char *text)
{
	write_line(a, jid, text, PURPLE_MESSAGE_ERROR);
}

/* --- what a received message is marked with ------------------------------------------ */

static const char *mark_text(mark m)
{
	switch (m) {
	case MARK_VERIFIED:
		return _("[verified]");
	case MARK_UNVERIFIED:
		return _("[unverified]");
	case MARK_UNTRUSTED:
		return _("[UNTRUSTED device]");
	case MARK_UNANNOUNCED:
		return _("[device NOT in the contact's list]");
	default:
		return _("[UNENCRYPTED]");
	}
}

/* `escaped` (markup) with its mark in front; warnings in bold. g_free() the result. */
char *with_mark(mark m, const char *escaped)
{
	char *t = g_markup_escape_text(mark_text(m), -1), *r;

	r = m <= MARK_UNVERIFIED ? g_strdup_printf("%s %s", t, escaped)
	                         : g_strdup_printf("<b>%s</b> %s", t, escaped);
	g_free(t);
	return r;
}

/* The core says whether the device is in its owner's published list (XEP-0384 §4.2). */
mark mark_of(const mend_event *ev)
{
	if (!ev->announced)
		return MARK_UNANNOUNCED;
	if (!mend_trust_is_trusted(ev->trust))
		return MARK_UNTRUSTED;
	return ev->trust == MEND_TRUST_VERIFIED ? MARK_VERIFIED : MARK_UNVERIFIED;
}

time_t time_of(const char *iso)
{
	GDateTime *dt = iso ? g_date_time_new_from_iso8601(iso, NULL) : NULL;
	time_t t = dt ? (time_t)g_date_time_to_unix(dt) : time(NULL);

	if (dt)
		g_date_time_unref(dt);
	return t;
}

/* Our own message, encrypted, as sent (markup) in the chat with peer; who as libpurple's. */
static void write_ours(conn *c, PurpleAccount *a, const char *peer, const char *who,
                       const char *markup, PurpleMessageFlags f, time_t t)
{
	if (c)
		c->writing_encrypted = 1;
	purple_conv_im_write(PURPLE_CONV_IM(conv_for(a, peer)), who, markup,
	                     PURPLE_MESSAGE_SEND | f, t);
	if (c)
		c->writing_encrypted = 0;
}

static void show_message(conn *c, const mend_event *ev)
{
	PurpleAccount *a = purple_connection_get_account(c->gc);
	PurpleMessageFlags f = ev->archived ? PURPLE_MESSAGE_DELAYED : 0;
	/* XEP-0454: a file link as "file NAME from HOST: /mend save N" (files.c) */
	char *desc = !ev->file      ? NULL
	             : ev->outgoing ? mend_purple_file_sent(ev)
	                            : mend_purple_file_received(ev);
	char *esc = g_markup_escape_text(desc ? desc : ev->body ? ev->body : "", -1), *shown;
	time_t t = time_of(ev->timestamp);

	if (ev->outgoing) { /* a sent carbon or our own message from the archive */
		write_ours(c, a, ev->peer, purple_account_get_username(a), esc, f, t);
	} else {
		shown = with_mark(mark_of(ev), esc);
		c->writing_encrypted = 1;
		serv_got_im(c->gc, ev->peer, shown, PURPLE_MESSAGE_RECV | f, t);
		c->writing_encrypted = 0;
		g_free(shown);
	}
	g_free(esc);
	g_free(desc);
}

/*
 * receiving-im-msg: every message libpurple is about to show. A plaintext
 * one (mend's own decrypted ones are flagged while written) in a chat that
 * is encrypted, or with a contact who has OMEMO devices, gets the
 * [UNENCRYPTED] mark, so it never looks like an encrypted one.
 */
static gboolean receiving_im(PurpleAccount *a, char **sender, char **msg, PurpleConversation *conv,
                             PurpleMessageFlags *flags, gpointer data)
{
	conn *c = conn_of(a);
	char *marked;

	if ((c && c->writing_encrypted) || !sender || !*sender || !msg || !*msg ||
	    strcmp(purple_account_get_protocol_id(a), "prpl-jabber") != 0)
		return FALSE;
	if (!listed(PREF_ENABLED, a, *sender) && !has_devices(c, *sender, 0))
		return FALSE;
	marked = with_mark(MARK_PLAINTEXT, *msg);
	g_free(*msg);
	*msg = marked;
	return FALSE;
}

/* --- host ops ------------------------------------------------------------------------ */

static int op_send(const char *xml, void *ud)
{
	conn *c = ud;
	xmlnode *node = xmlnode_from_str(xml, -1);

	if (!node)
		return -1;
	purple_signal_emit(jabber(), "jabber-sending-xmlnode", c->gc, &node);
	if (node)
		xmlnode_free(node);
	return 0;
}

static void op_notice(mend_notice_kind kind, const char *jid, const char *text, void *ud)
{
	say(purple_connection_get_account(((conn *)ud)->gc), jid, text);
}

static void op_log(mend_log_level level, const char *text, void *ud)
{
	if (level == MEND_LOG_ERROR)
		purple_debug_error("mend", "%s\n", text);
	else if (level == MEND_LOG_WARNING)
		purple_debug_warning("mend", "%s\n", text);
	else
		purple_debug_info("mend", "%s\n", text);
}

/*
 * writing-im-msg: our own plaintext message (anything sent that mend did not
 * encrypt) to a contact who has OMEMO devices is shown with [UNENCRYPTED].
 */
static gboolean writing_im(PurpleAccount *a, const char *who, char **msg, PurpleConversation *conv,
                           PurpleMessageFlags flags, gpointer data)
{
	conn *c = conn_of(a);
	char *marked;

	if (!(flags & PURPLE_MESSAGE_SEND) || !c || c->writing_encrypted || !msg || !*msg ||
	    !has_devices(c, purple_conversation_get_name(conv), 0))
		return FALSE;
	marked = with_mark(MARK_PLAINTEXT, *msg);
	g_free(*msg);
	*msg = marked;
	return FALSE;
}

/* Our message as sent, in the conversation with peer (text is plain). */
static void show_sent(conn *c, PurpleAccount *a, const char *peer, const char *text)
{
	char *esc = g_markup_escape_text(text ? text : "", -1);

	write_ours(c, a, peer, NULL, esc, 0, time(NULL));
	g_free(esc);
}

/* XEP-0184: a device of the contact confirmed our message; a system line in its open chat. */
static void delivered(PurpleAccount *a, const char *jid)
{
	PurpleConversation *conv =
	    purple_find_conversation_with_account(PURPLE_CONV_TYPE_IM, jid, a);
	char *text, *esc;

	if (!conv)
		return;
	esc = g_markup_escape_text(jid, -1);
	text = g_strdup_printf(_("Delivered to %s."), esc);
	purple_conversation_write(conv, NULL, text, PURPLE_MESSAGE_SYSTEM | PURPLE_MESSAGE_NO_LOG,
	                          time(NULL));
	g_free(text);
	g_free(esc);
}

static void op_event(const mend_event *ev, void *ud)
{
	conn *c = ud;
	PurpleAccount *a = purple_connection_get_account(c->gc);
	char *failed, *desc;

	if (room_event(c, ev))
		return;
	switch (ev->kind) {
	case MEND_EVENT_MESSAGE:
		show_message(c, ev);
		break;
	case MEND_EVENT_SENT: /* a message that waited for keys has left: now it shows as sent */
		desc = ev->file ? mend_purple_file_sent(ev) : NULL;
		show_sent(c, a, ev->peer, desc ? desc : ev->body);
		g_free(desc);
		if (ev->text) /* the devices it skipped (untrusted, inactive), how to include them
		               */
			say(a, ev->peer, ev->text);
		break;
	case MEND_EVENT_SEND_FAILED:
		failed =
		    g_strdup_printf("%s %s", ev->text ? ev->text : "", ev->body ? ev->body : "");
		say_error(a, ev->peer, failed);
		g_free(failed);
		break;
	case MEND_EVENT_UNDECRYPTABLE:
		say_error(a, ev->peer, ev->text);
		break;
	case MEND_EVENT_NOTICE:
		say(a, ev->peer, ev->text);
		break;
	case MEND_EVENT_DELIVERED:
		delivered(a, ev->peer);
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

/* --- signed on / off ------------------------------------------------------------ */

static void conn_free(gpointer p)
{
	conn *c = p;

	if (c->tick)
		purple_timeout_remove(c->tick);
	if (c->acc) {
		mend_account_disconnected(c->acc);
		mend_account_free(c->acc);
	}
	if (c->asked)
		g_hash_table_destroy(c->asked);
	if (c->rooms)
		g_hash_table_destroy(c->rooms);
	if (c->held)
		g_hash_table_destroy(c->held);
	g_free(c->bare);
	g_free(c);
}

static int is_jabber(PurpleConnection *gc)
{
	return strcmp(purple_account_get_protocol_id(purple_connection_get_account(gc)),
	              "prpl-jabber") == 0;
}

/* Every few seconds while signed on: what waits for time (archive retry, prekey rotation). */
static gboolean tick(gpointer data)
{
	mend_account_tick(((conn *)data)->acc);
	return TRUE;
}

/* Opens the account's store (the keyring may prompt, unless `mode` says not to). */
static int start_conn(PurpleConnection *gc, int mode)
{
	PurpleAccount *a = purple_connection_get_account(gc);
	const char *full = purple_connection_get_display_name(gc);
	const char *user = purple_account_get_username(a);
	conn *c;
	char *dir, *raw;
	int r;

	c = g_new0(conn, 1);
	c->gc = gc;
	c->bare = norm_jid(user);
	c->asked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	c->rooms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	c->held = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	raw = g_strndup(user, strcspn(user, "/")); /* the store's name, as it always was */
	dir = g_build_filename(purple_user_dir(), "mend", raw, NULL);
	r = mend_account_open(&c->acc, raw, dir, (mend_keyring_mode)mode, &ops, c);
	g_free(dir);
	g_free(raw);
	if (r < 0) {
		conn_free(c);
		return r;
	}
	g_hash_table_replace(conns, gc, c);
	if (!full || !strchr(full, '/'))
		full = purple_account_get_username(a);
	/* libpurple's caps cannot say +notify: subscribe to contacts' device lists */
	mend_account_connected(
	    c->acc, full, MEND_CONNECT_CARBONS | MEND_CONNECT_CATCHUP | MEND_CONNECT_SUBSCRIBE);
	c->tick = purple_timeout_add_seconds(MEND_TICK_SECONDS, tick, c);
	rooms_connected(c);
	return 0;
}

static void early_free(gpointer p)
{
	early *e = p;

	g_queue_clear_full(&e->held, (GDestroyNotify)xmlnode_free);
	g_free(e);
}

static void signing_on(PurpleConnection *gc, gpointer data)
{
	if (is_jabber(gc))
		g_hash_table_replace(earlies, gc, g_new0(early, 1));
}

static int is_omemo(xmlnode *node)
{
	char *text = xmlnode_to_str(node, NULL);
	int omemo = text && (strstr(text, "eu.siacs.conversations.axolotl") ||
	                     strstr(text, "urn:xmpp:omemo:2"));

	g_free(text);
	return omemo;
}

/* An OMEMO message mend cannot read now: an error line in its chat instead of its fallback body.
 */
static void refuse(PurpleConnection *gc, xmlnode *node, int err)
{
	char *from = norm_jid(xmlnode_get_attrib(node, "from")), *line;

	if (err == MEND_ERR_KEYRING_LOCKED) /* the archive brings it back after the unlock */
		line =
		    g_strdup_printf(_("An encrypted message from %s arrived while the keyring is "
		                      "locked; it shows once the keyring is unlocked."),
		                    from ? from : "?");
	else
		line = g_strdup_printf(_("An encrypted message from %s arrived, but mend cannot "
		                         "read it now (%s); it is not shown."),
		                       from ? from : "?", mend_strerror(err));
	say_error(purple_connection_get_account(gc), from, line);
	g_free(line);
	g_free(from);
}

/* A held plaintext message, shown as libpurple would have (plaintext marks apply). */
static void show_plain(PurpleConnection *gc, xmlnode *node)
{
	xmlnode *b = xmlnode_get_child(node, "body"), *d = xmlnode_get_child(node, "delay");
	char *body = b ? xmlnode_get_data(b) : NULL, *esc;
	const char *from = xmlnode_get_attrib(node, "from");

	if (body && *body && from) {
		esc = g_markup_escape_text(body, -1);
		serv_got_im(gc, from, esc, PURPLE_MESSAGE_RECV,
		            time_of(d ? xmlnode_get_attrib(d, "stamp") : NULL));
		g_free(esc);
	}
	g_free(body);
}

/*
 * After a try to open the account (r): what was held goes to the core first,
 * as if just received; if the account could not be opened, OMEMO messages
 * are refused and the rest shown. Once open, the connection is no longer early.
 */
static void settle_early(PurpleConnection *gc, int r)
{
	early *e = g_hash_table_lookup(earlies, gc);
	conn *c = g_hash_table_lookup(conns, gc);
	xmlnode *n;
	char *text;

	if (!e)
		return;
	e->err = r < 0 ? r : 0;
	while ((n = g_queue_pop_head(&e->held)) != NULL) {
		text = xmlnode_to_str(n, NULL);
		if (!c && is_omemo(n))
			refuse(gc, n, r);
		else if (!c || mend_account_handle_stanza(c->acc, text) == 0)
			show_plain(gc, n);
		g_free(text);
		xmlnode_free(n);
	}
	if (c)
		g_hash_table_remove(earlies, gc);
}

/*
 * A <message/> for a connection without an open account: held until the
 * first try to open it; after a failed one an OMEMO message is refused (an
 * error line) and the rest passes. Group chat messages and errors pass.
 */
static void hold_early(PurpleConnection *gc, xmlnode **packet)
{
	early *e = g_hash_table_lookup(earlies, gc);
	const char *type = xmlnode_get_attrib(*packet, "type");

	if (!e || strcmp((*packet)->name, "message") != 0 || (type && !strcmp(type, "error")))
		return;
	if (type && !strcmp(type, "groupchat")) { /* the room's archive brings it back later */
		if (is_omemo(*packet)) {
			refuse(gc, *packet, e->err ? e->err : MEND_ERR_NOT_FOUND);
			xmlnode_free(*packet);
			*packet = NULL;
		}
		return;
	}
	if (e->err && !is_omemo(*packet))
		return;
	if (e->err) {
		refuse(gc, *packet, e->err);
		xmlnode_free(*packet);
	} else {
		g_queue_push_tail(&e->held, *packet); /* ours now: the signal frees only *packet */
	}
	*packet = NULL;
}

/* While the keyring stays locked: try again without a prompt (the first one may still be up). */
static gboolean retry_locked(gpointer data)
{
	PurpleConnection *gc = data;
	int r = start_conn(gc, MEND_KEYRING_AUTO | MEND_KEYRING_NO_PROMPT);

	if (r == MEND_ERR_KEYRING_LOCKED)
		return TRUE;
	g_hash_table_steal(locked, gc); /* this timer ends by returning FALSE */
	settle_early(gc, r);
	if (r < 0)
		say(purple_connection_get_account(gc), NULL, mend_strerror(r));
	return FALSE;
}

static void stop_retry(gpointer timer)
{
	purple_timeout_remove(GPOINTER_TO_UINT(timer));
}

static void signed_on(PurpleConnection *gc, gpointer data)
{
	int r;

	if (!is_jabber(gc))
		return;
	r = start_conn(gc, MEND_KEYRING_AUTO);
	if (r == MEND_ERR_KEYRING_LOCKED)
		g_hash_table_replace(
		    locked, gc,
		    GUINT_TO_POINTER(purple_timeout_add_seconds(LOCKED_RETRY, retry_locked, gc)));
	if (r < 0)
		say(purple_connection_get_account(gc), NULL, mend_strerror(r));
	settle_early(gc, r);
}

static void signing_off(PurpleConnection *gc, gpointer data)
{
	g_hash_table_remove(locked, gc);
	g_hash_table_remove(conns, gc);
	g_hash_table_remove(earlies, gc);
}

/* --- the stanza signals ------------------------------------------------------------ */

static void receiving(PurpleConnection *gc, xmlnode **packet, gpointer data)
{
	conn *c = g_hash_table_lookup(conns, gc);
	char *text;
	int r;

	if (!packet || !*packet)
		return;
	if (!c) {
		hold_early(gc, packet);
		return;
	}
	room_receiving(c, *packet);
	text = xmlnode_to_str(*packet, NULL);
	r = mend_account_handle_stanza(c->acc, text);
	g_free(text);
	if (r == 0)
		return;
	/* ours (shown, rejected or a duplicate): libpurple must not show its fallback body */
	xmlnode_free(*packet);
	*packet = NULL;
}

static int encrypts(PurpleConnection *gc, xmlnode *node, char **to, char **body)
{
	const char *type = xmlnode_get_attrib(node, "type");
	xmlnode *b;

	if (strcmp(node->name, "message") != 0 ||
	    (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return 0;
	if (xmlnode_get_child_with_namespace(node, "encrypted", "eu.siacs.conversations.axolotl") ||
	    xmlnode_get_child_with_namespace(node, "encrypted", "urn:xmpp:omemo:2"))
		return 0; /* ours, already encrypted (legacy OMEMO or OMEMO:2) */
	b = xmlnode_get_child(node, "body");
	*to = norm_jid(xmlnode_get_attrib(node, "to"));
	if (!b || !*to || !enabled(purple_connection_get_account(gc), *to)) {
		g_free(*to);
		*to = NULL;
		return 0;
	}
	*body = xmlnode_get_data(b);
	return 1;
}

/* Empties a message node in place: its attributes stay, every child element goes. */
static void strip_children(xmlnode *node)
{
	xmlnode *c = node->child, *next;

	for (; c; c = next) {
		next = c->next;
		if (c->type != XMLNODE_TYPE_ATTRIB)
			xmlnode_free(c);
	}
}

/* Makes `node` the encrypted message (its children from `stanza`), in place. */
static void become(xmlnode *node, const char *stanza)
{
	xmlnode *enc = xmlnode_from_str(stanza, -1), *c;

	for (c = enc ? enc->child : NULL; c; c = c->next)
		if (c->type == XMLNODE_TYPE_TAG)
			xmlnode_insert_child(node, xmlnode_copy(c));
	if (enc)
		xmlnode_free(enc);
}

/* A message node the plaintext must not leave in: the encrypted message when r == 0 (its
 * children from `stanza`), else an empty chat state (XEP-0085). In place. */
void settle_node(xmlnode *node, int r, const char *stanza)
{
	strip_children(node);
	if (r == 0)
		become(node, stanza);
	else
		xmlnode_set_namespace(xmlnode_new_child(node, "active"),
		                      "http://jabber.org/protocol/chatstates");
}

/* What the user reads when a message could not leave encrypted at once (r from encrypt_or_queue).
 */
static void report_unsent(PurpleAccount *a, const char *to, const char *text, int r)
{
	conn *c = conn_of(a);
	char *line, *why = NULL;

	if (r == 1) {
		say(a, to,
		    _("Fetching the contact's keys; the message leaves encrypted as soon as they "
		      "arrive, and shows here once it has."));
		return;
	}
	/* the core's words: a mistyped address is never told to go unencrypted */
	if ((r == MEND_ERR_NO_DEVICES || r == MEND_ERR_UNDELIVERABLE) && c)
		why = mend_account_send_error_text(c->acc, to, r);
	line =
	    g_strdup_printf("%s %s",
	                    why ? why
	                    : r == MEND_ERR_NOT_FOUND
	                        ? _("OMEMO is not ready on this account; the message was NOT sent:")
	                        : mend_strerror(r),
	                    text);
	say_error(a, to, line);
	g_free(line);
	mend_free(why);
}

/* Encrypts now (the node becomes the encrypted message), or queues (the node becomes a chat state).
 */
static void encrypt_in_place(conn *c, PurpleAccount *a, xmlnode *node, const char *to,
                             const char *body)
{
	const char *id = xmlnode_get_attrib(node, "id");
	char *stanza = NULL, *keep_id = g_strdup(id);
	int r = c ? mend_account_encrypt_or_queue(c->acc, to, body, keep_id, &stanza)
	        : g_hash_table_contains(locked, purple_account_get_connection(a))
	            ? MEND_ERR_KEYRING_LOCKED
	            : MEND_ERR_NOT_FOUND;

	settle_node(node, r, stanza);
	if (r != 0)
		report_unsent(a, to, body, r);
	mend_free(stanza);
	g_free(keep_id);
}

/*
 * sending-im-msg: what the user typed, before libpurple sends and shows it.
 * In an encrypted chat mend takes the message over, so that what the window
 * shows as sent was sent: encrypted now, it is sent and shown as sent; when
 * keys must be fetched first, it is shown once it has left (MEND_EVENT_SENT);
 * when it cannot be encrypted, an error is shown instead and nothing leaves.
 * libpurple then neither sends nor shows it (*msg = NULL).
 */
static void sending_im(PurpleAccount *a, const char *who, char **msg, gpointer data)
{
	conn *c = conn_of(a);
	char *to, *body = NULL, *stanza = NULL;
	int r;

	if (!msg || !*msg || !**msg || !who ||
	    strcmp(purple_account_get_protocol_id(a), "prpl-jabber") != 0 || !enabled(a, who))
		return;
	to = norm_jid(who);
	purple_markup_html_to_xhtml(*msg, NULL, &body);
	r = c ? mend_account_encrypt_or_queue(c->acc, to, body ? body : "", NULL, &stanza)
	      : MEND_ERR_NOT_FOUND;
	if (r == 0) {
		op_send(stanza, c);
		write_ours(c, a, who, NULL, *msg, 0, time(NULL));
	} else {
		report_unsent(a, who, body ? body : "", r);
	}
	mend_free(stanza);
	g_free(body);
	g_free(to);
	g_free(*msg);
	*msg = NULL;
}

/*
 * jabber-sending-xmlnode: the node belongs to the caller, so it is changed in
 * place. A chat message with a body to a contact with encryption on becomes
 * the encrypted message, or, when it cannot be encrypted now, an empty chat
 * state: the plaintext never leaves.
 */
static void sending(PurpleConnection *gc, xmlnode **packet, gpointer data)
{
	char *to = NULL, *body = NULL;

	if (!packet || !*packet || !is_jabber(gc) ||
	    room_sending(g_hash_table_lookup(conns, gc), gc, *packet) ||
	    !encrypts(gc, *packet, &to, &body))
		return;
	encrypt_in_place(g_hash_table_lookup(conns, gc), purple_connection_get_account(gc), *packet,
	                 to, body ? body : "");
	g_free(body);
	g_free(to);
}

/* --- /mend ---------------------------------------------------------------------- */

/* Every /mend command, for /help mend and the usage line. */
#define HELP_TEXT                                                                                  \
	_("mend: OMEMO encryption. /mend on|off [JID]: encrypt this chat or not; /mend default "   \
	  "on|off: whether new chats with contacts who use OMEMO are encrypted (this account); "   \
	  "/mend status; /mend devices [JID]; /mend fingerprint; /mend trust JID DEVICE "          \
	  "[FINGERPRINT] (a device that showed a new key needs it); "                              \
	  "/mend untrust JID DEVICE; /mend uri: our verification URI; /mend verify URI; "          \
	  "/mend policy [tofu|btbv|manual]; /mend sendfile PATH: a file, encrypted; /mend save "   \
	  "[N|URL]: save a received file. In a group chat (members-only rooms that show "          \
	  "members' addresses): /mend on|off, /mend status, /mend members, /mend release [ID] "    \
	  "(or send-anyway: send a held message to the members who can read it), /mend drop "      \
	  "[ID].")

/* The chat's state in one sentence (the status line and /mend status). */
static const char *looking_up_text(void)
{
	return _("OMEMO: this chat is encrypted; the contact's devices are being looked up "
	         "(nothing leaves unencrypted).");
}

static const char *state_text(PurpleAccount *a, const char *peer)
{
	conn *c = conn_of(a);

	if (listed(PREF_ENABLED, a, peer) && !c)
		return _("OMEMO: this chat is encrypted; mend is not ready on this account, so "
		         "nothing is sent until it is.");
	if (enabled(a, peer) && has_devices(c, peer, 0))
		return _("OMEMO: this chat is encrypted.");
	if (enabled(a, peer))
		return looking_up_text();
	if (listed(PREF_DISABLED, a, peer))
		return _("OMEMO: this chat is NOT encrypted (turned off; /mend on encrypts it).");
	return _("OMEMO: this chat is NOT encrypted: the contact publishes no OMEMO device "
	         "(/mend on encrypts it anyway).");
}

/* The OMEMO versions whose device lists name a device, as "; OMEMO versions 2, 0.3"; ""
 * when none is known. g_free. */
static char *versions_text(unsigned bits)
{
	const char *names = mend_versions_name(bits);
	char *text, *out;

	if (!names)
		return g_strdup("");
	text = g_strdup_printf(_("OMEMO versions %s"), names);
	out = g_strconcat("; ", text, NULL);
	g_free(text);
	return out;
}

static void cmd_devices(conn *c, PurpleAccount *a, const char *peer, const char *jid)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	char *g, *v, *line;

	if (strcmp(jid, c->bare) != 0)
		mend_account_refresh_devices(c->acc, jid);
	if (mend_account_device_infos(c->acc, jid, &d, &n) < 0 || !n) {
		line = g_strdup_printf(_("No OMEMO device known for %s yet."), jid);
		say(a, peer, line);
		g_free(line);
	}
	for (i = 0; i < n; i++) {
		g = mend_fingerprint_grouped(d[i].fingerprint[0] ? d[i].fingerprint : "?");
		v = versions_text(d[i].versions);
		line = g_strdup_printf("%s device %u: %s, %s%s%s", jid, d[i].id, g,
		                       mend_trust_name(d[i].trust),
		                       !d[i].active ? _(" (gone)")
		                       : d[i].stale ? _(" (inactive: skipped)")
		                                    : "",
		                       v);
		say(a, peer, line);
		g_free(line);
		g_free(v);
		mend_free(g);
	}
	mend_free(d);
}

static void cmd_status(conn *c, PurpleAccount *a, const char *peer)
{
	char fp[65], *g, *line;
	size_t pending = 0;

	mend_account_fingerprint(c->acc, fp);
	g = mend_fingerprint_grouped(fp);
	mend_account_pending_count(c->acc, &pending);
	line = g_strdup_printf(
	    dngettext(GETTEXT_PACKAGE,
	              "mend: %s, device %u, fingerprint %s; %zu message waiting. %s",
	              "mend: %s, device %u, fingerprint %s; %zu messages waiting. %s", pending),
	    c->bare, mend_account_device_id(c->acc), g, pending, state_text(a, peer));
	say(a, peer, line);
	g_free(line);
	mend_free(g);
}

/* A device that showed a new key: its old and new fingerprint and the command. g_free. */
static char *key_changed_text(conn *c, const char *jid, uint32_t id)
{
	mend_device_info *d = NULL;
	size_t n = 0, i;
	char *old, *new, *line = NULL;

	mend_account_device_infos(c->acc, jid, &d, &n);
	for (i = 0; i < n && !line; i++) {
		if (d[i].id != id || !d[i].new_fingerprint[0])
			continue;
		old = mend_fingerprint_grouped(d[i].fingerprint);
		new = mend_fingerprint_grouped(d[i].new_fingerprint);
		line =
		    g_strdup_printf(_("%s device %u showed a new key; nothing was changed. Old key "
		                      "%s, NEW key %s. If its owner confirms the new key: /mend "
		                      "trust %s %u %s"),
		                    jid, id, old, new, jid, id, d[i].new_fingerprint);
		mend_free(old);
		mend_free(new);
	}
	mend_free(d);
	return line ? line : g_strdup(mend_strerror(MEND_ERR_KEY_CHANGED));
}

/* /mend trust JID DEVICE [FINGERPRINT]: a changed key is accepted only by naming it. */
static void cmd_trust(conn *c, PurpleAccount *a, const char *peer, char **words, int trust)
{
	uint32_t id = words[1] ? (uint32_t)g_ascii_strtoull(words[1], NULL, 10) : 0;
	char *line;
	int r;

	if (!words[1] || !id) {
		say(a, peer,
		    _("Usage: /mend trust JID DEVICE [FINGERPRINT] | /mend untrust JID DEVICE"));
		return;
	}
	if (trust && words[2])
		r = mend_account_trust_key(c->acc, words[0], id, words[2]);
	else
		r = mend_account_set_trust(c->acc, words[0], id,
		                           trust ? MEND_TRUST_VERIFIED : MEND_TRUST_UNTRUSTED);
	if (r == MEND_ERR_KEY_CHANGED)
		line = key_changed_text(c, words[0], id);
	else
		line = r < 0 ? g_strdup_printf(_("%s device %u: %s Run /mend devices %s first."),
		                               words[0], id, mend_strerror(r), words[0])
		             : g_strdup_printf(trust ? _("%s device %u is verified.")
		                                     : _("%s device %u will get nothing from you."),
		                               words[0], id);
	say(a, peer, line);
	g_free(line);
}

/* /mend uri | verify URI | policy [tofu|btbv|manual] (for this chat's contact) */
static void cmd_trust_extra(conn *c, PurpleAccount *a, const char *peer, char **w)
{
	char *uri = NULL, *line;
	unsigned n = 0;
	int r, p;

	if (!strcmp(w[0], "uri")) {
		mend_account_verification_uri(c->acc, &uri);
		line = g_strdup_printf(_("Our verification URI (scan or compare it): %s"), uri);
		mend_free(uri);
	} else if (!strcmp(w[0], "verify")) {
		r = w[1] ? mend_account_verify_uri(c->acc, w[1], &n) : MEND_ERR_INVALID_ARG;
		line = r < 0 ? g_strdup(mend_strerror(r))
		             : g_strdup_printf(dngettext(GETTEXT_PACKAGE, "%u device verified.",
		                                         "%u devices verified.", n),
		                               n);
	} else {
		p = w[1] ? mend_policy_parse(w[1]) : 0;
		if (w[1] && p >= 0)
			mend_account_set_policy(c->acc, peer, (mend_policy)p);
		line = g_strdup_printf(_("Trust policy for %s: %s"), peer,
		                       mend_policy_name(mend_account_get_policy(c->acc, peer)));
	}
	say(a, peer, line);
	g_free(line);
}

/* /mend on|off [JID], typed in the chat with peer */
static void cmd_on_off(PurpleAccount *a, const char *peer, const char *jid, int on)
{
	set_listed(PREF_ENABLED, a, jid, on);
	set_listed(PREF_DISABLED, a, jid, !on);
	if (on)
		ask_devices(conn_of(a), jid);
	say(a, peer,
	    on ? _("OMEMO encryption is on for this chat.")
	       : _("OMEMO encryption is off for this chat: messages go in plaintext."));
	purple_signal_emit(self, "mend-state-changed", a, jid);
}

/*
 * IPC for the Pidgin window's toggle (gtk-mend), libpurple's public plugin
 * IPC: "state" (account, jid) -> 1 when the chat is encrypted, and "set"
 * (account, jid, on) as /mend on|off typed in that chat. The signal
 * "mend-state-changed" (account, jid) tells when a chat's switch changed.
 */
static int is_room(PurpleAccount *a, const char *jid)
{
	return purple_find_conversation_with_account(PURPLE_CONV_TYPE_CHAT, jid, a) != NULL;
}

static int ipc_state(PurpleAccount *a, const char *jid)
{
	if (a && jid && is_room(a, jid))
		return room_state(a, jid);
	return a && jid && enabled(a, jid);
}

static void ipc_set(PurpleAccount *a, const char *jid, unsigned on)
{
	char *peer = a && jid ? norm_jid(jid) : NULL;

	if (peer && is_room(a, jid))
		room_set(a, peer, on != 0);
	else if (peer)
		cmd_on_off(a, peer, peer, on != 0);
	g_free(peer);
}

/* /mend sendfile PATH, save [N|URL], files ca [PATH]: 1 when it was one of them. */
static int run_file_command(conn *c, PurpleAccount *a, const char *peer, char **w)
{
	char *rest = w[1] ? g_strjoinv(" ", w + 1) : NULL;
	int done = mend_purple_file_command(c->acc, a, peer, w[0], rest, say);

	g_free(rest);
	return done;
}

void run_mend(conn *c, PurpleAccount *a, const char *peer, char **w)
{
	if (!strcmp(w[0], "on") || !strcmp(w[0], "off")) {
		cmd_on_off(a, peer, w[1] ? w[1] : peer, !strcmp(w[0], "on"));
	} else if (!strcmp(w[0], "default") && w[1]) {
		purple_account_set_bool(a, ACCT_DEFAULT, !strcmp(w[1], "on"));
		say(a, peer,
		    !strcmp(w[1], "on") ? _("Chats with contacts who use OMEMO are encrypted by "
		                            "default on this account.")
		                        : _("Chats on this account are not encrypted by "
		                            "default."));
	} else if (!c && g_hash_table_contains(locked, purple_account_get_connection(a))) {
		say(a, peer,
		    _("mend: keyring locked. Unlock the keyring to use mend on this account; mend "
		      "tries again every few seconds."));
	} else if (!c) {
		say(a, peer, _("mend is not connected on this account yet."));
	} else if (!strcmp(w[0], "status")) {
		cmd_status(c, a, peer);
	} else if (!strcmp(w[0], "devices") || !strcmp(w[0], "fingerprint")) {
		cmd_devices(c, a, peer,
		            w[1] ? w[1] : (!strcmp(w[0], "fingerprint") ? c->bare : peer));
	} else if ((!strcmp(w[0], "trust") || !strcmp(w[0], "untrust")) && w[1]) {
		cmd_trust(c, a, peer, w + 1, !strcmp(w[0], "trust"));
	} else if (!strcmp(w[0], "uri") || !strcmp(w[0], "verify") || !strcmp(w[0], "policy")) {
		cmd_trust_extra(c, a, peer, w);
	} else if (run_file_command(c, a, peer, w)) {
		/* sendfile, save, files (files.c) */
	} else {
		say(a, peer, HELP_TEXT);
	}
}

static PurpleCmdRet cmd_mend(PurpleConversation *conv, const gchar *cmd, gchar **args,
                             gchar **error, void *data)
{
	PurpleAccount *a = purple_conversation_get_account(conv);
	conn *c = conn_of(a);
	char *peer = norm_jid(purple_conversation_get_name(conv));
	char **w = g_strsplit_set(args[0] ? args[0] : "", " \t", 4);

	if (!w[0] || !*w[0]) {
		g_strfreev(w);
		w = g_strsplit("status", " ", 1);
	}
	if (purple_conversation_get_type(conv) == PURPLE_CONV_TYPE_CHAT)
		room_command(c, conv, w);
	else
		run_mend(c, a, peer, w);
	g_strfreev(w);
	g_free(peer);
	return PURPLE_CMD_RET_OK;
}

/* The chat's state as a line (Finch's status line), written again only when it changed. */
static void state_line(PurpleConversation *conv)
{
	char *peer = norm_jid(purple_conversation_get_name(conv));
	const char *now = state_text(purple_conversation_get_account(conv), peer);

	if (purple_conversation_get_data(conv, STATE) != now) {
		purple_conversation_set_data(conv, STATE, (gpointer)now);
		purple_conversation_write(conv, NULL, now, PURPLE_MESSAGE_SYSTEM, time(NULL));
	}
	g_free(peer);
}

/*
 * conversation-created: the chat's state as its first line (Finch's status
 * line; Pidgin also shows it in the window), and the contact's device list
 * asked for so that the default goes by what the contact publishes now.
 */
static void conversation_created(PurpleConversation *conv, gpointer data)
{
	PurpleAccount *a = purple_conversation_get_account(conv);
	conn *c = conn_of(a);
	char *peer;

	if (!c || purple_conversation_get_type(conv) != PURPLE_CONV_TYPE_IM)
		return;
	peer = norm_jid(purple_conversation_get_name(conv));
	ask_devices(c, peer);
	state_line(conv);
	g_free(peer);
}

/* Once a second: a chat whose devices were being looked up gets its state line again. */
static gboolean recheck_states(gpointer data)
{
	GList *l;

	for (l = purple_get_ims(); l; l = l->next)
		if (purple_conversation_get_data(l->data, STATE) == looking_up_text())
			state_line(l->data);
	return TRUE;
}

/* --- actions and preferences ------------------------------------------------------- */

static void action_fingerprints(PurplePluginAction *action)
{
	GString *s = g_string_new(NULL);
	GHashTableIter it;
	gpointer value;
	char fp[65], *g;

	g_hash_table_iter_init(&it, conns);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		conn *c = value;

		mend_account_fingerprint(c->acc, fp);
		g = mend_fingerprint_grouped(fp);
		g_string_append_printf(s, "%s, device %u:\n%s\n\n", c->bare,
		                       mend_account_device_id(c->acc), g);
		mend_free(g);
	}
	purple_notify_formatted(self, "mend", _("This device's OMEMO fingerprints"), NULL,
	                        s->len ? s->str : _("No account is signed on."), NULL, NULL);
	g_string_free(s, TRUE);
}

static GList *actions(PurplePlugin *plugin, gpointer context)
{
	return g_list_append(
	    NULL, purple_plugin_action_new(_("Show my OMEMO fingerprints"), action_fingerprints));
}

static PurplePluginPrefFrame *pref_frame(PurplePlugin *plugin)
{
	PurplePluginPrefFrame *frame = purple_plugin_pref_frame_new();

	purple_plugin_pref_frame_add(
	    frame, purple_plugin_pref_new_with_name_and_label(
	               PREF_DEFAULT, _("Encrypt new chats with OMEMO unless turned off")));
	return frame;
}

static PurplePluginUiInfo prefs_info = {pref_frame, 0, NULL, NULL, NULL, NULL, NULL};

/* --- load / unload ------------------------------------------------------------------- */

static gboolean plugin_load(PurplePlugin *plugin)
{
	PurplePlugin *prpl = jabber();
	void *conn_handle = purple_connections_get_handle();
	GList *l;

	if (!prpl)
		return FALSE;
	self = plugin;
	mend_i18n_init();
	conns = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, conn_free);
	purple_plugin_ipc_register(
	    plugin, "state", PURPLE_CALLBACK(ipc_state), purple_marshal_INT__POINTER_POINTER,
	    purple_value_new(PURPLE_TYPE_INT), 2, purple_value_new(PURPLE_TYPE_POINTER),
	    purple_value_new(PURPLE_TYPE_STRING));
	purple_plugin_ipc_register(
	    plugin, "set", PURPLE_CALLBACK(ipc_set), purple_marshal_VOID__POINTER_POINTER_UINT,
	    NULL, 3, purple_value_new(PURPLE_TYPE_POINTER), purple_value_new(PURPLE_TYPE_STRING),
	    purple_value_new(PURPLE_TYPE_UINT));
	purple_signal_register(plugin, "mend-state-changed", purple_marshal_VOID__POINTER_POINTER,
	                       NULL, 2, purple_value_new(PURPLE_TYPE_POINTER),
	                       purple_value_new(PURPLE_TYPE_STRING));
	locked = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, stop_retry);
	earlies = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, early_free);
	purple_signal_connect(conn_handle, "signing-on", plugin, PURPLE_CALLBACK(signing_on), NULL);
	purple_signal_connect(conn_handle, "signed-on", plugin, PURPLE_CALLBACK(signed_on), NULL);
	purple_signal_connect(conn_handle, "signing-off", plugin, PURPLE_CALLBACK(signing_off),
	                      NULL);
	purple_signal_connect(prpl, "jabber-receiving-xmlnode", plugin, PURPLE_CALLBACK(receiving),
	                      NULL);
	purple_signal_connect(purple_conversations_get_handle(), "sending-im-msg", plugin,
	                      PURPLE_CALLBACK(sending_im), NULL);
	purple_signal_connect(purple_conversations_get_handle(), "writing-im-msg", plugin,
	                      PURPLE_CALLBACK(writing_im), NULL);
	purple_signal_connect(purple_conversations_get_handle(), "receiving-im-msg", plugin,
	                      PURPLE_CALLBACK(receiving_im), NULL);
	purple_signal_connect(purple_conversations_get_handle(), "conversation-created", plugin,
	                      PURPLE_CALLBACK(conversation_created), NULL);
	purple_signal_connect(prpl, "jabber-sending-xmlnode", plugin, PURPLE_CALLBACK(sending),
	                      NULL);
	cmd_id =
	    purple_cmd_register("mend", "s", PURPLE_CMD_P_PLUGIN,
	                        PURPLE_CMD_FLAG_IM | PURPLE_CMD_FLAG_CHAT |
	                            PURPLE_CMD_FLAG_ALLOW_WRONG_ARGS | PURPLE_CMD_FLAG_PRPL_ONLY,
	                        "prpl-jabber", cmd_mend, HELP_TEXT, NULL);
	recheck_timer = purple_timeout_add_seconds(1, recheck_states, NULL);
	rooms_load(plugin);
	/* loaded while connected */
	for (l = purple_connections_get_all(); l; l = l->next)
		if (purple_connection_get_state(l->data) == PURPLE_CONNECTED)
			signed_on(l->data, NULL);
	return TRUE;
}

static gboolean plugin_unload(PurplePlugin *plugin)
{
	purple_cmd_unregister(cmd_id);
	purple_timeout_remove(recheck_timer);
	purple_signals_disconnect_by_handle(plugin);
	purple_signals_unregister_by_instance(plugin);
	purple_plugin_ipc_unregister_all(plugin);
	g_hash_table_destroy(locked);
	g_hash_table_destroy(earlies);
	g_hash_table_destroy(conns);
	conns = NULL;
	mend_purple_files_free();
	return TRUE;
}

static PurplePluginInfo info = {
    PURPLE_PLUGIN_MAGIC,
    PURPLE_MAJOR_VERSION,
    PURPLE_MINOR_VERSION,
    PURPLE_PLUGIN_STANDARD,
    NULL,
    0,
    NULL,
    PURPLE_PRIORITY_DEFAULT,
    PLUGIN_ID,
    "mend",
    PACKAGE_VERSION,
    N_("OMEMO encryption on every device"),
    N_("mend: OMEMO (XEP-0384) for XMPP, with history on every device through carbons and "
       "the server archive."),
    "the mend authors",
    "",
    plugin_load,
    plugin_unload,
    NULL,
    NULL,
    NULL,
    &prefs_info,
    actions,
    NULL,
    NULL,
    NULL,
    NULL,
};

static void init_plugin(PurplePlugin *plugin)
{
	mend_i18n_init(); /* the plugin list shows these translated */
	info.summary = (char *)_(info.summary);
	info.description = (char *)_(info.description);
	purple_prefs_add_none(PREFS);
	purple_prefs_add_bool(PREF_DEFAULT, TRUE);
	purple_prefs_add_string_list(PREF_ENABLED, NULL);
	purple_prefs_add_string_list(PREF_DISABLED, NULL);
	info.dependencies = g_list_append(NULL, (gpointer) "prpl-jabber");
}

PURPLE_INIT_PLUGIN(mend, init_plugin, info)
