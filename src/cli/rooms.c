/*
 * rooms.c - group chats in `mend` (XEP-0045 rooms; OMEMO only in members-only,
 * non-anonymous ones, which the core checks): `join` (the core remembers the
 * room until `leave`), `leave`, `members`, and the room side of `send` (a
 * remembered room, --room, or an address whose disco#info says it is a room),
 * `listen` (every remembered room entered and caught up from its archive) and
 * `history` (the room's archive).
 *
 * A run of `mend` is one connection: `send` enters the room for the time of
 * the run (XEP-0045 §7.2: only occupants may send to a room), `listen` stays in
 * its rooms while it runs. A message some members could not read is HELD: the
 * command explains, drops it and exits CLI_HELD unless --allow-partial.
 */
#include "config.h"

#include <string.h>
#include "cli.h"

#define NS_MUC      "http://jabber.org/protocol/muc"
#define NS_MUC_USER NS_MUC "#user"
#define NS_STANZAS  "urn:ietf:params:xml:ns:xmpp-stanzas"

/* 1 when `room` is remembered (its nick in *nick, g_free, if nick), 0 when not, or <0. */
int cli_room_nick(struct cli *c, const char *room, char **nick)
{
	char **rooms = NULL, **nicks = NULL;
	int r, found = 0;
	size_t i;

	if (nick)
		*nick = NULL;
	r = mend_account_rooms(c->acc, &rooms, &nicks);
	if (r < 0)
		return r;
	for (i = 0; rooms[i] && !found; i++) {
		if (strcmp(rooms[i], room) != 0)
			continue;
		found = 1;
		if (nick)
			*nick = g_strdup(nicks[i]);
	}
	mend_strv_free(rooms);
	mend_strv_free(nicks);
	return found;
}

/* --nick, else the local part of our JID. g_free. */
static char *default_nick(struct cli *c)
{
	return c->o.nick ? g_strdup(c->o.nick) : g_strndup(c->bare, strcspn(c->bare, "@"));
}

/* Our nick for the command's room: remembered, else --nick or the default (room_once). */
static int take_room_nick(struct cli *c)
{
	int r = cli_room_nick(c, c->peer, &c->nick);

	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, _("The rooms mend is in cannot be read: %s"),
		                mend_strerror(r));
	if (r == 0 || (c->o.nick && c->o.command == CMD_JOIN)) {
		g_free(c->nick);
		c->nick = default_nick(c);
	}
	c->room_once = r == 0;
	return CLI_OK;
}

/* A room the command entered only for this run is forgotten again. */
static void forget_once(struct cli *c)
{
	if (c->room_once && c->acc && c->peer)
		mend_account_room_leave(c->acc, c->peer, 0);
	c->room_once = 0;
}

/* --- the room's answer to our presence (XEP-0045 §7.2) --------------------- */

static const char *error_condition(xmpp_stanza_t *st)
{
	xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(st, "error"), *k;

	for (k = e ? xmpp_stanza_get_children(e) : NULL; k; k = xmpp_stanza_get_next(k))
		if (g_strcmp0(xmpp_stanza_get_ns(k), NS_STANZAS) == 0 &&
		    g_strcmp0(xmpp_stanza_get_name(k), "text") != 0)
			return xmpp_stanza_get_name(k);
	return NULL;
}

/* §7.2.6-§7.2.10: why the room did not let us in, as a sentence. */
static void refused_entry(struct cli *c, xmpp_stanza_t *st)
{
	const char *cond = error_condition(st);

	forget_once(c);
	if (g_strcmp0(cond, "registration-required") == 0)
		cli_fail(c, CLI_ERROR, 0,
		         _("%s is members-only and %s is not a member; ask its owner or an admin "
		           "to add you."),
		         c->peer, c->bare);
	else if (g_strcmp0(cond, "conflict") == 0)
		cli_fail(c, CLI_ERROR, 0,
		         _("Someone else uses the nick '%s' in %s; choose another with --nick."),
		         c->nick, c->peer);
	else if (g_strcmp0(cond, "forbidden") == 0)
		cli_fail(c, CLI_ERROR, 0, _("%s is banned from %s."), c->bare, c->peer);
	else
		cli_fail(c, CLI_ERROR, 0, _("%s did not let %s in (%s)."), c->peer, c->bare,
		         cond ? cond : _("no reason given"));
}

static int has_status(xmpp_stanza_t *st, const char *code)
{
	xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_MUC_USER), *k;

	for (k = x ? xmpp_stanza_get_children(x) : NULL; k; k = xmpp_stanza_get_next(k))
		if (g_strcmp0(xmpp_stanza_get_name(k), "status") == 0 &&
		    g_strcmp0(xmpp_stanza_get_attribute(k, "code"), code) == 0)
			return 1;
	return 0;
}

/* Presence from the command's room: our own (status 110) or an error. The core sees it too. */
static int room_presence(xmpp_conn_t *conn G_GNUC_UNUSED, xmpp_stanza_t *st, void *user_data)
{
	struct cli *c = user_data;
	const char *from = xmpp_stanza_get_from(st);
	char *bare = from ? cli_bare_jid(from) : NULL;

	if (!c->finished && bare && c->peer && strcmp(bare, c->peer) == 0) {
		if (g_strcmp0(xmpp_stanza_get_type(st), "error") == 0)
			refused_entry(c, st);
		else if (has_status(st, "110"))
			c->room_joined = 1;
	}
	g_free(bare);
	return 1;
}

/*
 * Enters the command's room and watches the answer. The presence is ours (the core is told
 * of the room without MEND_ROOM_PRESENCE): it asks for no replay of the room's history
 * (XEP-0045 §7.2.15), which would be shown here and then, seen, be missing from `listen`.
 */
static int enter_room(struct cli *c)
{
	char *presence;
	int r;

	xmpp_handler_add(c->conn, room_presence, NULL, "presence", NULL, c);
	r = mend_account_room_join(c->acc, c->peer, c->nick, 0);
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, _("mend cannot enter %s: %s"), c->peer,
		                mend_strerror(r));
	presence = g_markup_printf_escaped("<presence to='%s/%s'><x xmlns='" NS_MUC
	                                   "'><history maxstanzas='0'/></x></presence>",
	                                   c->peer, c->nick);
	cli_send_raw(c, presence);
	g_free(presence);
	return CLI_OK;
}

/* A ROOM event about the command's room: 1 (its state kept), else 0. */
static int own_room_event(struct cli *c, const mend_event *ev)
{
	if (ev->kind != MEND_EVENT_ROOM || !ev->room || g_strcmp0(ev->room, c->peer) != 0)
		return 0;
	c->room_status = ev->error;
	c->room_devices = ev->n_devices;
	return 1;
}

/* The room refuses OMEMO (open, semi-anonymous, not a room): the reason, exit 1. */
static void room_refused(struct cli *c, const mend_event *ev)
{
	forget_once(c);
	cli_fail(c, CLI_ERROR, ev->error, "%s", ev->text ? ev->text : mend_strerror(ev->error));
}

/* --- send ---------------------------------------------------------------------- */

/* HELD: who could not read it and why; without --allow-partial nothing leaves (exit 6). */
static void room_held(struct cli *c, const mend_event *ev)
{
	int r;

	out_held(c, ev, 1);
	cli_fail(c, CLI_HELD, MEND_ERR_ROOM_PARTIAL,
	         _("Nothing was sent to %s. To send it to the members who can read it, use "
	           "--allow-partial."),
	         c->peer);
	r = mend_account_release(c->acc, ev->id, 0); /* its SEND_FAILED comes after the end */
	if (r < 0)
		out_notice(c, c->peer, mend_strerror(r));
}

static void room_send_result(struct cli *c, const mend_event *ev)
{
	if (ev->kind == MEND_EVENT_HELD && c->msg_id && g_strcmp0(ev->id, c->msg_id) == 0)
		room_held(c, ev);
	else
		cli_send_result(c, ev);
}

static void room_send_event(struct cli *c, const mend_event *ev)
{
	if (own_room_event(c, ev))
		return; /* a refusal comes as SEND_FAILED, with the reason */
	if (ev->kind == MEND_EVENT_HELD && !c->in_send)
		room_send_result(c, ev);
	else
		cli_send_event(c, ev); /* SENT, SEND_FAILED: as for a contact */
}

/* Enters the room and gives the message to the core's queue for it. */
static void room_send_go(struct cli *c)
{
	int r;

	c->on_event = room_send_event;
	if (enter_room(c) != CLI_OK)
		return;
	c->o.room = 1;   /* remembered from here on, or named by --room */
	if (c->o.file) { /* the link goes to the room (the caption after it) */
		cli_send_file(c);
		return;
	}
	r = cli_queue_message(c, room_send_result);
	if (r < 0) {
		forget_once(c);
		cli_fail(c, CLI_ERROR, r, _("Not sent to %s: %s"), c->peer, mend_strerror(r));
	}
}

/* A contact after all: the core forgets what it noted about the address as a room. */
static void not_a_room(struct cli *c)
{
	forget_once(c);
}

/* The disco#info answer (XEP-0045 §6.4) says whether the address is a room. */
static void room_detect_event(struct cli *c, const mend_event *ev)
{
	if (!own_room_event(c, ev)) {
		cli_send_event(c, ev);
		return;
	}
	c->on_event = cli_send_event;
	if (ev->error == MEND_ERR_NOT_A_ROOM) {
		not_a_room(c);
		cli_send_direct(c); /* a contact */
	} else if (ev->error == MEND_OK) {
		room_send_go(c);
	} else {
		room_refused(c, ev);
	}
}

/*
 * send: 1 when the recipient is a room (or may be one: its disco#info is asked) and the
 * room code took the command over; 0 for a contact.
 */
int cli_room_send_start(struct cli *c)
{
	if (strchr(c->peer, '/')) { /* a full JID: one resource of a contact */
		if (c->o.room)
			cli_fail(c, CLI_USAGE, 0,
			         _("--room takes the room's bare JID (room@service), not '%s'."),
			         c->peer);
		return c->o.room;
	}
	if (take_room_nick(c) != CLI_OK)
		return 1;
	if (!c->room_once || c->o.room) {
		room_send_go(c);
		return 1;
	}
	c->room_status = mend_account_room_status(c->acc, c->peer);
	if (c->room_status == MEND_ERR_NOT_FOUND) {
		c->on_event = room_detect_event; /* the ROOM event follows */
		return 1;
	}
	if (c->room_status == MEND_ERR_NOT_A_ROOM) {
		not_a_room(c);
		return 0;
	}
	if (c->room_status == MEND_OK) {
		room_send_go(c);
	} else {
		forget_once(c);
		cli_fail(c, CLI_ERROR, c->room_status, "%s", mend_strerror(c->room_status));
	}
	return 1;
}

/* After the run: a room entered only to send one message is not remembered. */
void cli_room_send_done(struct cli *c)
{
	if (c->status != CLI_QUEUED)
		forget_once(c);
}

/* --- listen, history --------------------------------------------------------------- */

/* listen: every remembered room entered and caught up from its archive (XEP-0313). */
void cli_room_listen_join(struct cli *c)
{
	char **rooms = NULL, **nicks = NULL;
	size_t i;
	int r = mend_account_rooms(c->acc, &rooms, &nicks);

	if (r < 0) {
		out_notice(c, NULL, mend_strerror(r));
		return;
	}
	for (i = 0; rooms[i]; i++) {
		r = mend_account_room_join(c->acc, rooms[i], nicks[i],
		                           MEND_ROOM_PRESENCE | MEND_ROOM_CATCHUP);
		if (r < 0)
			out_notice(c, rooms[i], mend_strerror(r));
	}
	mend_strv_free(rooms);
	mend_strv_free(nicks);
}

/* history: a remembered room is made known to the core, so that its archive is asked. */
int cli_room_history_start(struct cli *c)
{
	char *nick = NULL;
	int r = cli_room_nick(c, c->peer, &nick);

	if (r > 0)
		r = mend_account_room_join(c->acc, c->peer, nick, 0);
	g_free(nick);
	return r;
}

/* --- join, leave ---------------------------------------------------------------------- */

static void join_online(struct cli *c)
{
	if (cli_start_engine(c, 0) == CLI_OK && take_room_nick(c) == CLI_OK)
		enter_room(c);
}

static void join_event(struct cli *c, const mend_event *ev)
{
	if (!own_room_event(c, ev))
		cli_common_event(c, ev);
	else if (ev->error != MEND_OK)
		room_refused(c, ev);
}

/*
 * Once: every member's device list asked afresh (XEP-0384 §4.2), so that `members` and
 * `join` show what a message would go to. 1 when something was asked.
 */
static int refresh_members(struct cli *c)
{
	mend_room_member *m = NULL;
	size_t i, n = 0;
	int asked = 0;

	if (c->requested)
		return 0;
	c->requested = 1;
	if (mend_account_room_members(c->acc, c->peer, &m, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			asked |= mend_account_refresh_devices(c->acc, m[i].jid) == MEND_OK;
	mend_room_members_free(m, n);
	return asked;
}

/* The sum of the members' usable devices (ourselves excluded). */
static unsigned member_devices(struct cli *c, size_t *n_members)
{
	mend_room_member *m = NULL;
	unsigned sum = 0;
	size_t i, n = 0;

	if (mend_account_room_members(c->acc, c->peer, &m, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			sum += m[i].n_devices;
	mend_room_members_free(m, n);
	*n_members = n;
	return sum;
}

/* In once the room let us in, OMEMO can be used there and the members' keys are known. */
static void join_tick(struct cli *c)
{
	size_t n = 0;
	unsigned devices;

	if (c->room_status != MEND_OK || !c->room_joined || !c->ready || !c->online ||
	    mend_account_busy(c->acc) || refresh_members(c))
		return;
	devices = member_devices(c, &n);
	out_joined(c, c->peer, c->nick, devices);
	cli_finish(c, CLI_OK);
}

static void join_deadline(struct cli *c)
{
	forget_once(c);
	cli_query_deadline(c);
}

int cli_cmd_join(struct cli *c)
{
	c->peer = cli_peer_arg(c, c->o.args[0]);
	if (!c->peer)
		return CLI_USAGE;
	c->room_status = MEND_ERR_NOT_FOUND;
	c->on_online = join_online;
	c->on_offline = cli_went_offline;
	c->on_event = join_event;
	c->on_tick = join_tick;
	c->on_deadline = join_deadline;
	return cli_run_online(c, 60.0);
}

int cli_cmd_leave(struct cli *c)
{
	int r;

	c->peer = cli_peer_arg(c, c->o.args[0]);
	if (!c->peer)
		return CLI_USAGE;
	r = cli_open_offline(c);
	if (r != CLI_OK)
		return r;
	r = cli_room_nick(c, c->peer, NULL);
	if (r == 0)
		return cli_fail(c, CLI_ERROR, MEND_ERR_NOT_FOUND,
		                _("mend is not in the room %s ('mend join %s' enters it)."),
		                c->peer, c->peer);
	if (r > 0)
		r = mend_account_room_leave(c->acc, c->peer, 0);
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, _("mend cannot leave %s: %s"), c->peer,
		                mend_strerror(r));
	out_left(c, c->peer);
	return CLI_OK;
}

/* --- members ---------------------------------------------------------------------------- */

static void members_online(struct cli *c)
{
	int r;

	if (cli_start_engine(c, 0) != CLI_OK)
		return;
	r = cli_room_nick(c, c->peer, &c->nick);
	if (r == 0)
		cli_fail(c, CLI_ERROR, MEND_ERR_NOT_FOUND,
		         _("mend is not in the room %s ('mend join %s' enters it)."), c->peer,
		         c->peer);
	else if (r > 0) /* in the room: who is present (§7.2.3), the lists, the keys */
		r = enter_room(c);
	if (r < 0)
		cli_fail(c, CLI_ERROR, r, _("The members of %s cannot be fetched: %s"), c->peer,
		         mend_strerror(r));
}

static void members_print(struct cli *c)
{
	mend_room_member *m = NULL;
	mend_device_info *infos = NULL;
	size_t i, j, n = 0, k;
	int r = mend_account_room_members(c->acc, c->peer, &m, &n);

	if (r < 0) {
		cli_fail(c, CLI_ERROR, r, _("The members of %s cannot be listed: %s"), c->peer,
		         mend_strerror(r));
		return;
	}
	for (i = 0; i < n; i++) {
		out_member(c, c->peer, &m[i]);
		k = 0;
		if (mend_account_device_infos(c->acc, m[i].jid, &infos, &k) == MEND_OK)
			for (j = 0; j < k; j++)
				out_device(c, m[i].jid, &infos[j], 0);
		mend_free(infos);
		infos = NULL;
	}
	out_members_done(c, c->peer, n);
	mend_room_members_free(m, n);
	cli_finish(c, CLI_OK);
}

static void members_tick(struct cli *c)
{
	if (c->room_status == MEND_OK && c->room_joined && c->ready && c->online &&
	    !mend_account_busy(c->acc) && !refresh_members(c))
		members_print(c);
}

int cli_cmd_members(struct cli *c)
{
	c->peer = cli_peer_arg(c, c->o.args[0]);
	if (!c->peer)
		return CLI_USAGE;
	c->room_status = MEND_ERR_NOT_FOUND;
	c->on_online = members_online;
	c->on_offline = cli_went_offline;
	c->on_event = join_event;
	c->on_tick = members_tick;
	c->on_deadline = cli_query_deadline;
	return cli_run_online(c, 60.0);
}
