/*
 * rooms.c - group chats (XEP-0045 rooms) in Pidgin and Finch: the jabber prpl's
 * chat conversations, through libpurple's public API only.
 *
 *  - The core is told about a room when we join it: at our join presence
 *    (jabber-sending-xmlnode, XEP-0045 §7.2.1) it asks the room's disco#info and
 *    member lists; at the room's self-presence (status 110, §7.2.3), and for chats
 *    already joined when the account opens, it also catches up from the room's
 *    archive; once per connection, so again after every reconnect.
 *  - /mend on in a chat turns encryption on only in a room OMEMO can be used in
 *    (members-only and non-anonymous); elsewhere it says why and stays off. The
 *    choice is remembered per room, beside the one-to-one chats' choices.
 *  - In an encrypted room what the user types (sending-chat-msg) goes to the
 *    core and never leaves in plaintext; a groupchat message with a body that
 *    reaches jabber-sending-xmlnode some other way is encrypted in place or
 *    emptied. The room reflects our message: the core knows it by its origin-id
 *    and it shows once, as ours. A message some members could not read is HELD:
 *    a line says who and why; /mend release sends it to those who can, /mend drop
 *    forgets it.
 *  - Room messages the core decrypted are written into the chat with the
 *    sender's nick, their trust mark and their original time; plaintext in an
 *    encrypted room gets the [UNENCRYPTED] mark.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include <glib.h>

#define PURPLE_PLUGINS
#include <debug.h>
#include <plugin.h>
#include <server.h>
#include <signals.h>
#include <util.h>

#include "mendpurple.h"
#include "purple/files.h"

#define MUC_NS      "http://jabber.org/protocol/muc"
#define MUC_USER_NS "http://jabber.org/protocol/muc#user"
#define WANT_ON     "mend-want-on"    /* chat data: /mend on waits for the room's disco#info */
#define ROOM_STATE  "mend-room-state" /* chat data: the state line last written */

static PurpleConversation *chat_of(PurpleAccount *a, const char *room)
{
	PurpleConversation *conv =
	    room ? purple_find_conversation_with_account(PURPLE_CONV_TYPE_CHAT, room, a) : NULL;

	return conv && !purple_conv_chat_has_left(PURPLE_CONV_CHAT(conv)) ? conv : NULL;
}

static int is_jabber_account(PurpleAccount *a)
{
	return !strcmp(purple_account_get_protocol_id(a), "prpl-jabber");
}

/* The user's choice for the room: on only if OMEMO could be used there when it was made. */
static int room_on(PurpleAccount *a, const char *room)
{
	return listed(PREF_ENABLED, a, room);
}

/* The room as the core names it: the chat's name, normalised. g_free(). */
static char *room_of(PurpleConversation *conv)
{
	return norm_jid(purple_conversation_get_name(conv));
}

/* --- telling the core which rooms we are in ------------------------------------------- */

/* We are in `room` as `nick`: the core hears it once per connection (and when the nick changes). */
static void tell_core(conn *c, const char *room, const char *nick)
{
	char *r = norm_jid(room);
	int e;

	if (!c || !r || !nick || !*nick || !g_strcmp0(g_hash_table_lookup(c->rooms, r), nick)) {
		g_free(r);
		return;
	}
	e = mend_account_room_join(c->acc, r, nick, MEND_ROOM_CATCHUP);
	if (e < 0) {
		purple_debug_warning("mend", "room %s: %s\n", r, mend_strerror(e));
		g_free(r);
		return;
	}
	g_hash_table_replace(c->rooms, r, g_strdup(nick));
}

/* The chats this account is in when mend's account opens (the plugin loaded while connected). */
void rooms_connected(conn *c)
{
	PurpleAccount *a = purple_connection_get_account(c->gc);
	GList *l;

	for (l = purple_get_chats(); l; l = l->next)
		if (purple_conversation_get_account(l->data) == a &&
		    !purple_conv_chat_has_left(PURPLE_CONV_CHAT(l->data)))
			tell_core(c, purple_conversation_get_name(l->data),
			          purple_conv_chat_get_nick(PURPLE_CONV_CHAT(l->data)));
}

/*
 * A presence to ROOM/NICK with the muc element, without a type: a join (XEP-0045 §7.2.1).
 * The core learns of the room now (its disco#info and member lists); the archive is caught
 * up once the room let us in (status 110), when the chat is open to show it. In an encrypted
 * room the room's own history replay is declined (§7.2.15, maxstanzas 0): the archive brings
 * the same messages, in order and once.
 */
static void join_sent(conn *c, PurpleConnection *gc, xmlnode *node)
{
	const char *to = xmlnode_get_attrib(node, "to"), *slash = to ? strchr(to, '/') : NULL;
	xmlnode *x = xmlnode_get_child_with_namespace(node, "x", MUC_NS);
	char *room;

	if (!slash || !x || xmlnode_get_attrib(node, "type"))
		return;
	room = norm_jid(to);
	if (room && room_on(purple_connection_get_account(gc), room) &&
	    !xmlnode_get_child(x, "history"))
		xmlnode_set_attrib(xmlnode_new_child(x, "history"), "maxstanzas", "0");
	if (c && room && g_strcmp0(g_hash_table_lookup(c->rooms, room), slash + 1) != 0)
		mend_account_room_join(c->acc, room, slash + 1, 0);
	g_free(room);
}

/* Our own presence in a room as it tells us (status 110, XEP-0045 §7.2.3). */
void room_receiving(conn *c, xmlnode *node)
{
	const char *from = xmlnode_get_attrib(node, "from"),
	           *slash = from ? strchr(from, '/') : NULL;
	xmlnode *x, *st;

	if (!c || strcmp(node->name, "presence") != 0 || !slash || xmlnode_get_attrib(node, "type"))
		return;
	x = xmlnode_get_child_with_namespace(node, "x", MUC_USER_NS);
	for (st = x ? xmlnode_get_child(x, "status") : NULL; st; st = xmlnode_get_next_twin(st))
		if (!g_strcmp0(xmlnode_get_attrib(st, "code"), "110"))
			tell_core(c, from, slash + 1);
}

/* --- the room's state ---------------------------------------------------------------- */

const char *room_state_text(PurpleAccount *a, const char *room)
{
	conn *c = conn_of(a);
	int st = c ? mend_account_room_status(c->acc, room) : MEND_ERR_NOT_FOUND;

	if (room_on(a, room) && !c)
		return _("OMEMO: this room is encrypted; mend is not ready on this account, so "
		         "nothing is sent until it is.");
	if (room_on(a, room) && st == 0)
		return _("OMEMO: this room is encrypted.");
	if (room_on(a, room) && st == MEND_ERR_NOT_FOUND)
		return _(
		    "OMEMO: this room is encrypted; asking the room about its members (nothing "
		    "leaves unencrypted).");
	if (room_on(a, room))
		return _("OMEMO: this room is encrypted, but OMEMO cannot be used in it now, so "
		         "nothing is sent (/mend status says why; /mend off sends in plaintext).");
	if (st == 0)
		return _("OMEMO: this room is NOT encrypted (/mend on encrypts it).");
	if (st == MEND_ERR_NOT_FOUND)
		return _("OMEMO: this room is NOT encrypted.");
	return _("OMEMO: this room is NOT encrypted: OMEMO needs a members-only room that shows "
	         "members' addresses.");
}

/* The chat's state as a line (Finch's status line), written again only when it changed. */
static void room_state_line(PurpleConversation *conv)
{
	char *room = room_of(conv);
	const char *now = room_state_text(purple_conversation_get_account(conv), room);

	if (purple_conversation_get_data(conv, ROOM_STATE) != now) {
		purple_conversation_set_data(conv, ROOM_STATE, (gpointer)now);
		purple_conversation_write(conv, NULL, now, PURPLE_MESSAGE_SYSTEM, time(NULL));
	}
	g_free(room);
}

int room_state(PurpleAccount *a, const char *room)
{
	char *r = norm_jid(room);
	int on = r && room_on(a, r);

	g_free(r);
	return on;
}

static void changed(PurpleAccount *a, const char *room)
{
	PurpleConversation *conv = chat_of(a, room);

	if (conv)
		room_state_line(conv);
	purple_signal_emit(purple_plugins_find_with_id("core-mend"), "mend-state-changed", a, room);
}

static void switch_to(PurpleAccount *a, const char *room, int on)
{
	set_listed(PREF_ENABLED, a, room, on);
	set_listed(PREF_DISABLED, a, room, !on);
	say(a, room,
	    on ? _("OMEMO encryption is on for this room: messages are encrypted to every "
	           "member's devices.")
	       : _("OMEMO encryption is off for this room: messages go in plaintext."));
	changed(a, room);
}

/* Why OMEMO cannot be used in the room, and that nothing changed. */
static void refused(PurpleAccount *a, const char *room, const char *why)
{
	char *line = g_strdup_printf(_("%s Encryption stays off in this room."), why);

	say_error(a, room, line);
	g_free(line);
}

/* /mend on|off in a room (also the Pidgin window's toggle). */
static void turn(conn *c, PurpleAccount *a, const char *room, int on)
{
	PurpleConversation *conv = chat_of(a, room);
	int st;

	if (!on) {
		if (conv)
			purple_conversation_set_data(conv, WANT_ON, NULL);
		switch_to(a, room, 0);
		return;
	}
	if (!c) {
		say(a, room, _("mend is not connected on this account yet."));
		return;
	}
	st = mend_account_room_status(c->acc, room);
	if (st == MEND_ERR_NOT_FOUND && conv) {
		/* listed at once: what is typed meanwhile waits in the core, never plaintext */
		purple_conversation_set_data(conv, WANT_ON, GINT_TO_POINTER(1));
		set_listed(PREF_ENABLED, a, room, 1);
		set_listed(PREF_DISABLED, a, room, 0);
		say(a, room,
		    _("Asking the room whether OMEMO can be used in it; nothing is sent there "
		      "unencrypted meanwhile."));
		changed(a, room);
	} else if (st < 0) {
		refused(a, room, mend_strerror(st));
	} else {
		switch_to(a, room, 1);
	}
}

void room_set(PurpleAccount *a, const char *room, int on)
{
	turn(conn_of(a), a, room, on);
}

/* The core knows (more) about the room: a waiting /mend on is answered, the state line follows. */
static void room_known(conn *c, const mend_event *ev)
{
	PurpleAccount *a = purple_connection_get_account(c->gc);
	PurpleConversation *conv = chat_of(a, ev->room);

	if (conv && purple_conversation_get_data(conv, WANT_ON)) {
		purple_conversation_set_data(conv, WANT_ON, NULL);
		if (ev->error == 0) {
			switch_to(a, ev->room, 1);
		} else { /* what waited meanwhile is reported NOT sent (SEND_FAILED) */
			set_listed(PREF_ENABLED, a, ev->room, 0);
			refused(a, ev->room, ev->text ? ev->text : mend_strerror(ev->error));
			changed(a, ev->room);
		}
	}
	if (conv)
		room_state_line(conv);
}

/* --- messages ------------------------------------------------------------------------ */

static void show_room_message(conn *c, const mend_event *ev)
{
	PurpleAccount *a = purple_connection_get_account(c->gc);
	PurpleConversation *conv = chat_of(a, ev->room);
	PurpleConvChat *chat = conv ? PURPLE_CONV_CHAT(conv) : NULL;
	PurpleMessageFlags f = ev->archived ? PURPLE_MESSAGE_DELAYED : 0;
	char *esc, *shown, *desc;
	time_t t = time_of(ev->timestamp);

	if (!chat) { /* libpurple drops what is written into a chat we are not in */
		purple_debug_warning("mend", "a message in %s arrived while its chat is closed\n",
		                     ev->room);
		return;
	}
	/* XEP-0454: a file link as "file NAME from HOST: /mend save N" (files.c), as 1:1 */
	desc = !ev->file      ? NULL
	       : ev->outgoing ? mend_purple_file_sent(ev)
	                      : mend_purple_file_received(ev);
	esc = g_markup_escape_text(desc ? desc : ev->body ? ev->body : "", -1);
	g_free(desc);
	c->writing_encrypted = 1;
	if (ev->outgoing) { /* our reflection, our other device, or our history: ours */
		purple_conv_chat_write(chat, purple_conv_chat_get_nick(chat), esc,
		                       PURPLE_MESSAGE_SEND | f, t);
	} else {
		shown = with_mark(mark_of(ev), esc);
		serv_got_chat_in(c->gc, purple_conv_chat_get_id(chat),
		                 ev->nick   ? ev->nick
		                 : ev->from ? ev->from
		                            : ev->room,
		                 f, shown, t);
		g_free(shown);
	}
	c->writing_encrypted = 0;
	g_free(esc);
}

/* A message some members could not read waits: who and why, and the two commands. */
static void show_held(conn *c, const mend_event *ev)
{
	PurpleAccount *a = purple_connection_get_account(c->gc);
	char *desc = ev->file ? mend_purple_file_sent(ev) : NULL; /* a file's link waits */
	char *line =
	    g_strdup_printf(_("NOT sent yet: \"%s\". %s /mend release %s sends it to "
	                      "the members who can read it; /mend drop %s forgets it."),
	                    desc       ? desc
	                    : ev->body ? ev->body
	                               : "",
	                    ev->text ? ev->text : "", ev->id ? ev->id : "", ev->id ? ev->id : "");

	if (ev->id)
		g_hash_table_replace(c->held, g_strdup(ev->id), g_strdup(ev->room));
	say_error(a, ev->room, line);
	g_free(line);
	g_free(desc);
}

int room_event(conn *c, const mend_event *ev)
{
	PurpleAccount *a = purple_connection_get_account(c->gc);

	if (ev->kind == MEND_EVENT_ROOM && ev->room) {
		room_known(c, ev);
		return 1;
	}
	if (ev->kind == MEND_EVENT_HELD && ev->room) {
		show_held(c, ev);
		return 1;
	}
	if (!ev->room)
		return 0;
	if (ev->id && (ev->kind == MEND_EVENT_SENT || ev->kind == MEND_EVENT_SEND_FAILED))
		g_hash_table_remove(c->held, ev->id);
	if (ev->kind == MEND_EVENT_MESSAGE) {
		show_room_message(c, ev);
		return 1;
	}
	if (ev->kind == MEND_EVENT_SENT) { /* the reflection shows it; say whom it skipped */
		if (ev->text)
			say(a, ev->room, ev->text);
		return 1;
	}
	return 0; /* failures and notices: the one-to-one lines, written into the chat */
}

/*
 * sending-chat-msg: what the user typed in a chat. In an encrypted room the core
 * takes it (SENT, HELD or SEND_FAILED follow) and libpurple neither sends nor
 * shows it: the room's reflection shows it once it has left.
 */
static void sending_chat(PurpleAccount *a, char **msg, int id, gpointer data)
{
	PurpleConnection *gc = purple_account_get_connection(a);
	PurpleConversation *conv = gc ? purple_find_chat(gc, id) : NULL;
	conn *c = conn_of(a);
	char *room, *body = NULL, *mid = NULL, *line;
	int r;

	if (!msg || !*msg || !**msg || !conv || !is_jabber_account(a))
		return;
	room = room_of(conv);
	if (!room || !room_on(a, room)) {
		g_free(room);
		return;
	}
	purple_markup_html_to_xhtml(*msg, NULL, &body);
	r = c ? mend_account_room_send(c->acc, room, body ? body : "", 0, &mid)
	      : MEND_ERR_NOT_FOUND;
	if (r < 0) {
		line = g_strdup_printf(_("%s The message was NOT sent: %s"),
		                       r == MEND_ERR_NOT_FOUND && !c
		                           ? _("OMEMO is not ready on this account.")
		                           : mend_strerror(r),
		                       body ? body : "");
		say_error(a, room, line);
		g_free(line);
	}
	mend_free(mid);
	g_free(body);
	g_free(room);
	g_free(*msg);
	*msg = NULL;
}

/* A groupchat message with a body to an encrypted room, not from sending_chat: encrypted in
 * place now, or emptied (the core sends it once it can). */
static void encrypt_groupchat(conn *c, PurpleConnection *gc, xmlnode *node, const char *room)
{
	PurpleAccount *a = purple_connection_get_account(gc);
	char *body = xmlnode_get_data(xmlnode_get_child(node, "body")), *stanza = NULL, *line;
	int r = c ? mend_account_room_encrypt_or_queue(c->acc, room, body ? body : "",
	                                               xmlnode_get_attrib(node, "id"), 0, &stanza)
	          : MEND_ERR_NOT_FOUND;

	settle_node(node, r, stanza);
	if (r < 0) {
		line = g_strdup_printf(_("%s The message was NOT sent: %s"), mend_strerror(r),
		                       body ? body : "");
		say_error(a, room, line);
		g_free(line);
	}
	mend_free(stanza);
	g_free(body);
}

int room_sending(conn *c, PurpleConnection *gc, xmlnode *node)
{
	const char *type = xmlnode_get_attrib(node, "type");
	char *room;

	if (!strcmp(node->name, "presence")) {
		join_sent(c, gc, node);
		return 0;
	}
	if (strcmp(node->name, "message") != 0 || g_strcmp0(type, "groupchat") != 0)
		return 0;
	if (!xmlnode_get_child(node, "body") ||
	    xmlnode_get_child_with_namespace(node, "encrypted", "eu.siacs.conversations.axolotl") ||
	    xmlnode_get_child_with_namespace(node, "encrypted", "urn:xmpp:omemo:2"))
		return 1;
	room = norm_jid(xmlnode_get_attrib(node, "to"));
	if (room && room_on(purple_connection_get_account(gc), room))
		encrypt_groupchat(c, gc, node, room);
	g_free(room);
	return 1;
}

/*
 * receiving-chat-msg: a plaintext message (mend's own are flagged while written) in an
 * encrypted room gets the [UNENCRYPTED] mark, so it never looks like an encrypted one.
 */
static gboolean receiving_chat(PurpleAccount *a, char **sender, char **msg,
                               PurpleConversation *conv, PurpleMessageFlags *flags, gpointer data)
{
	conn *c = conn_of(a);
	char *room, *marked;
	int on;

	if ((c && c->writing_encrypted) || !msg || !*msg || !conv || !is_jabber_account(a))
		return FALSE;
	room = room_of(conv);
	on = room && room_on(a, room);
	g_free(room);
	if (!on)
		return FALSE;
	marked = with_mark(MARK_PLAINTEXT, *msg);
	g_free(*msg);
	*msg = marked;
	return FALSE;
}

/* --- /mend in a chat --------------------------------------------------------------------- */

static void cmd_members(conn *c, PurpleAccount *a, const char *room)
{
	mend_room_member *m = NULL;
	size_t n = 0, i;
	char *line;
	int r = mend_account_room_members(c->acc, room, &m, &n);

	if (r < 0 || !n) {
		line = g_strdup_printf(_("No member of %s is known yet%s%s."), room,
		                       r < 0 ? ": " : "", r < 0 ? mend_strerror(r) : "");
		say(a, room, line);
		g_free(line);
	}
	for (i = 0; i < n; i++) {
		line = g_strdup_printf(
		    dngettext(GETTEXT_PACKAGE, "%s%s%s%s: %s, %s, %u of %u device usable%s",
		              "%s%s%s%s: %s, %s, %u of %u devices usable%s", m[i].n_known),
		    m[i].jid, m[i].nick ? " (" : "", m[i].nick ? m[i].nick : "",
		    m[i].nick ? ")" : "", m[i].affiliation ? m[i].affiliation : "none",
		    m[i].present ? _("in the room") : _("not in the room"), m[i].n_devices,
		    m[i].n_known,
		    m[i].n_devices ? "" : _(": cannot read encrypted messages in this room"));
		say(a, room, line);
		g_free(line);
	}
	mend_room_members_free(m, n);
}

static unsigned held_in(conn *c, const char *room)
{
	GHashTableIter it;
	gpointer v;
	unsigned n = 0;

	g_hash_table_iter_init(&it, c->held);
	while (g_hash_table_iter_next(&it, NULL, &v))
		n += !strcmp(v, room);
	return n;
}

static void cmd_room_status(conn *c, PurpleAccount *a, const char *room)
{
	int st = mend_account_room_status(c->acc, room);
	int why = st < 0 && st != MEND_ERR_NOT_FOUND;
	char *line = g_strdup_printf(dngettext(GETTEXT_PACKAGE, "%s%s%s %u message held.",
	                                       "%s%s%s %u messages held.", held_in(c, room)),
	                             room_state_text(a, room), why ? " " : "",
	                             why ? mend_strerror(st) : "", held_in(c, room));

	say(a, room, line);
	g_free(line);
}

/* /mend release|drop [ID]: one held message, or every one held in this room. */
static void cmd_release(conn *c, PurpleAccount *a, const char *room, const char *id, int send)
{
	GList *ids = NULL, *l;
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, c->held);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (id ? !strcmp(k, id) : !strcmp(v, room))
			ids = g_list_prepend(ids, g_strdup(k));
	if (id && !ids)
		ids = g_list_prepend(ids, g_strdup(id)); /* held before this connection */
	if (ids)
		say(a, room,
		    send ? _("Sending it to the members who can read it.")
		         : _("Dropping it: it will not be sent."));
	for (l = ids; l; l = l->next)
		if (mend_account_release(c->acc, l->data, send) < 0)
			say(a, room, _("No message is held under that ID."));
	if (!ids)
		say(a, room, _("No message is held in this room."));
	g_list_free_full(ids, g_free);
}

/* The one-to-one commands that name a member (or are about us), also typed in a room. */
static int member_command(char **w)
{
	return (w[1] && (!strcmp(w[0], "devices") || !strcmp(w[0], "trust") ||
	                 !strcmp(w[0], "untrust") || !strcmp(w[0], "verify"))) ||
	       !strcmp(w[0], "fingerprint") || !strcmp(w[0], "uri");
}

/* /mend sendfile PATH, save [N|URL], files ca [PATH] (files.c) */
static int file_command(char **w)
{
	return !strcmp(w[0], "sendfile") || !strcmp(w[0], "save") || !strcmp(w[0], "files");
}

void room_command(conn *c, PurpleConversation *conv, char **w)
{
	PurpleAccount *a = purple_conversation_get_account(conv);
	char *room = room_of(conv);

	if (!strcmp(w[0], "on") || !strcmp(w[0], "off"))
		turn(c, a, room, !strcmp(w[0], "on"));
	else if (!c)
		say(a, room, _("mend is not connected on this account yet."));
	else if (!strcmp(w[0], "status"))
		cmd_room_status(c, a, room);
	else if (!strcmp(w[0], "members"))
		cmd_members(c, a, room);
	else if (!strcmp(w[0], "release") || !strcmp(w[0], "send-anyway")) /* Profanity's word */
		cmd_release(c, a, room, w[1], 1);
	else if (!strcmp(w[0], "drop"))
		cmd_release(c, a, room, w[1], 0);
	else if (!strcmp(w[0], "sendfile") && !room_on(a, room))
		say(a, room,
		    _("mend: /mend sendfile PATH works in a group chat mend encrypts (/mend on)."));
	else if (member_command(w) || file_command(w))
		run_mend(c, a, room, w); /* answered in the room; a file goes to the room */
	else
		say(a, room,
		    _("In a group chat: /mend on|off (members-only rooms that show members' "
		      "addresses), /mend status, /mend members, /mend release [ID] (or "
		      "send-anyway: "
		      "send a held message to the members who can read it), /mend drop [ID], and "
		      "/mend devices|trust|untrust JID ..., fingerprint, uri, verify URI, "
		      "sendfile PATH, save [N|URL], files ca [PATH] as in a one-to-one chat."));
	g_free(room);
}

/* chat-joined: the chat's state as its first line (Finch's status line). */
static void chat_joined(PurpleConversation *conv, gpointer data)
{
	PurpleAccount *a = purple_conversation_get_account(conv);

	if (is_jabber_account(a)) {
		purple_conversation_set_data(conv, ROOM_STATE, NULL);
		room_state_line(conv);
	}
}

void rooms_load(PurplePlugin *plugin)
{
	void *convs = purple_conversations_get_handle();

	purple_signal_connect(convs, "sending-chat-msg", plugin, PURPLE_CALLBACK(sending_chat),
	                      NULL);
	purple_signal_connect(convs, "receiving-chat-msg", plugin, PURPLE_CALLBACK(receiving_chat),
	                      NULL);
	purple_signal_connect(convs, "chat-joined", plugin, PURPLE_CALLBACK(chat_joined), NULL);
}
