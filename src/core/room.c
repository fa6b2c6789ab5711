/*
 * room.c - group chats (XEP-0045): which rooms OMEMO may be used in, who is
 * in them, and what is remembered of them.
 *
 *  - status: the room's disco#info (XEP-0045 §6.4, §15.2 features
 *    muc_membersonly and muc_nonanonymous, identity category "conference"),
 *    asked on join and again when the room says its configuration changed
 *    (status codes 104, 170-174, XEP-0045 §15.6);
 *  - members: real JIDs from occupant presence (muc#user <item jid=.../>,
 *    §7.2.3) and from the member, admin and owner lists (§9.5, §10.5, asked
 *    with muc#admin, which Prosody answers to members of members-only
 *    non-anonymous rooms), kept current by presence items and the room's
 *    affiliation-change messages (§9.3); ourselves never a member (our own
 *    other devices get every message anyway);
 *  - persistence: the rooms we are in (nick), members (sealed affiliation)
 *    and the room archive position (store_rooms.c).
 * Every presence from a room is left to the host too (returns 0).
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "room.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"

static void room_free(gpointer p)
{
	mend_room *r = p;

	g_free(r->jid);
	g_free(r->nick);
	g_free(r->partial_text);
	g_hash_table_destroy(r->occupants);
	if (r->held_told)
		g_hash_table_destroy(r->held_told);
	g_free(r);
}

static struct mend_rooms *rooms(mend_account *acc)
{
	if (!acc->rooms) {
		acc->rooms = g_new0(struct mend_rooms, 1);
		acc->rooms->by_jid =
		    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, room_free);
	}
	return acc->rooms;
}

void mend_rooms_free(mend_account *acc)
{
	GHashTableIter it;
	gpointer v;

	if (!acc->rooms)
		return;
	g_hash_table_iter_init(&it, acc->rooms->by_jid);
	while (g_hash_table_iter_next(&it, NULL, &v))
		mend_room_mam_free(acc, v);
	g_hash_table_destroy(acc->rooms->by_jid);
	g_free(acc->rooms);
	acc->rooms = NULL;
}

/* A room's normalized bare JID (g_free), or NULL when `jid` is none. */
static char *room_key(const char *jid)
{
	char *k = jid ? mend_jid_normalize(jid) : NULL;

	if (k && !strchr(k, '@')) { /* a room has a localpart (XEP-0045 §4.2 room JID) */
		g_free(k);
		k = NULL;
	}
	return k;
}

mend_room *mend_room_get(mend_account *acc, const char *jid)
{
	char *k = room_key(jid), *nick = NULL;
	mend_room *r = k ? g_hash_table_lookup(rooms(acc)->by_jid, k) : NULL;

	/* a remembered room is known after a restart before it is joined again */
	if (!r && k && mend_store_room_get(acc->store, k, &nick) == MEND_OK) {
		r = mend_room_ensure(acc, k);
		r->nick = nick;
	}
	g_free(k);
	return r;
}

mend_room *mend_room_ensure(mend_account *acc, const char *jid)
{
	char *k = room_key(jid);
	mend_room *r;

	if (!k)
		return NULL;
	r = g_hash_table_lookup(rooms(acc)->by_jid, k);
	if (r) {
		g_free(k);
		return r;
	}
	r = g_new0(mend_room, 1);
	r->jid = g_strdup(k);
	r->status = MEND_ERR_NOT_FOUND;
	r->occupants = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_hash_table_insert(rooms(acc)->by_jid, k, r);
	return r;
}

const char *mend_room_occupant(mend_room *room, const char *nick)
{
	return nick ? g_hash_table_lookup(room->occupants, nick) : NULL;
}

GPtrArray *mend_room_all(mend_account *acc)
{
	GPtrArray *out = g_ptr_array_new();
	GHashTableIter it;
	gpointer v;

	if (!acc->rooms)
		return out;
	g_hash_table_iter_init(&it, acc->rooms->by_jid);
	while (g_hash_table_iter_next(&it, NULL, &v))
		g_ptr_array_add(out, v);
	return out;
}

void mend_room_disconnected(mend_account *acc)
{
	GPtrArray *all = mend_room_all(acc);
	guint i;

	for (i = 0; i < all->len; i++) {
		mend_room *r = all->pdata[i];

		/* presence starts again with the next join; the status is asked again then */
		g_hash_table_remove_all(r->occupants);
		r->disco_out = 0;
		r->lists_out = 0;
		r->history_waiting = 0;
		mend_room_mam_free(acc, r);
	}
	g_ptr_array_unref(all);
}

/* --- status (XEP-0045 §6.4, §15.2) ----------------------------------------------- */

char *mend_room_status_text(const char *room, int status)
{
	switch (status) {
	case MEND_OK:
		return g_strdup_printf(_("%s is members-only and non-anonymous: messages there are "
		                         "encrypted with OMEMO to every member."),
		                       room);
	case MEND_ERR_ROOM_OPEN:
		return g_strdup_printf(
		    _("%s is not members-only: anyone can join and read along, so "
		      "OMEMO is not used there. Make the room members-only to "
		      "encrypt it."),
		    room);
	case MEND_ERR_ROOM_ANONYMOUS:
		return g_strdup_printf(
		    _("%s hides its members' addresses (semi-anonymous), so their "
		      "keys cannot be found and OMEMO is not used there. Make the "
		      "room non-anonymous to encrypt it."),
		    room);
	case MEND_ERR_NOT_FOUND:
		return g_strdup_printf(_("%s has not said yet what kind of room it is."), room);
	default:
		return g_strdup_printf(_("%s is not a group chat (or did not answer), so OMEMO "
		                         "cannot be used for it as a room."),
		                       room);
	}
}

/* How many devices a message to the room would go to now (members' and ours). */
static unsigned device_count(mend_account *acc, mend_room *room)
{
	GPtrArray *jids = mend_room_member_jids(acc, room);
	GArray *rs = g_array_new(FALSE, FALSE, sizeof(mend_recipient));
	size_t missing = 0;
	unsigned n;
	guint i;

	mend_recipients_reset(acc);
	for (i = 0; i < jids->len; i++)
		mend_recipients_add(acc, jids->pdata[i], rs, &missing);
	mend_recipients_add(acc, acc->jid, rs, &missing);
	n = rs->len;
	for (i = 0; i < rs->len; i++)
		g_free(g_array_index(rs, mend_recipient, i).jid);
	g_array_free(rs, TRUE);
	g_ptr_array_unref(jids);
	mend_recipients_reset(acc);
	return n;
}

static void room_event(mend_account *acc, mend_room *room)
{
	char *text = mend_room_status_text(room->jid, room->status);
	mend_event ev = {.kind = MEND_EVENT_ROOM,
	                 .peer = room->jid,
	                 .room = room->jid,
	                 .error = room->status,
	                 .text = text,
	                 .trust = -1};

	ev.n_devices = room->status == MEND_OK ? device_count(acc, room) : 0;
	emit(acc, &ev);
	g_free(text);
}

int mend_room_has_child(xmpp_stanza_t *st, const char *name, const char *attr, const char *value)
{
	xmpp_stanza_t *c;

	for (c = st ? xmpp_stanza_get_children(st) : NULL; c; c = xmpp_stanza_get_next(c))
		if (g_strcmp0(xmpp_stanza_get_name(c), name) == 0 &&
		    g_strcmp0(xmpp_stanza_get_attribute(c, attr), value) == 0)
			return 1;
	return 0;
}

/* Whether the disco#info <query/> holds <feature var=VAR/>. */
static int has_feature(xmpp_stanza_t *q, const char *var)
{
	return mend_room_has_child(q, "feature", "var", var);
}

static int is_conference(xmpp_stanza_t *q)
{
	return mend_room_has_child(q, "identity", "category", "conference");
}

/* XEP-0045 §15.2: the features that let OMEMO work (every member known by real JID). */
static int status_of(xmpp_stanza_t *iq, int ok)
{
	xmpp_stanza_t *q = child(iq, "query", NS_DISCO_INFO);

	if (!ok || !q || !is_conference(q) || !has_feature(q, NS_MUC))
		return MEND_ERR_NOT_A_ROOM;
	if (!has_feature(q, "muc_membersonly"))
		return MEND_ERR_ROOM_OPEN;
	if (!has_feature(q, "muc_nonanonymous"))
		return MEND_ERR_ROOM_ANONYMOUS;
	return MEND_OK;
}

static void disco_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	mend_room *room = mend_room_get(acc, data);

	if (!room)
		return;
	room->disco_out = 0;
	room->status = status_of(iq, ok);
	if (room->status != MEND_OK)
		mend_log(acc, MEND_LOG_INFO, "room %s: no OMEMO there (%s)", room->jid,
		         mend_strerror(room->status));
	room_event(acc, room);       /* the host may forget the room here (a contact after all) */
	mend_engine_pump(acc, data); /* what waited for the answer goes, or fails */
}

void mend_room_ask_status(mend_account *acc, mend_room *room)
{
	xmpp_stanza_t *iq;

	if (room->disco_out || !mend_engine_connected(acc))
		return;
	room->disco_out = 1;
	iq = iq_new(acc, "get");
	add(iq, el(acc, "query", NS_DISCO_INFO));
	send_iq(acc, iq, room->jid, disco_reply, g_strdup(room->jid), g_free);
}

int mend_account_room_status(mend_account *acc, const char *room_jid)
{
	mend_room *room;

	if (!room_jid || strchr(room_jid, '/'))
		return MEND_ERR_INVALID_ARG;
	room = mend_room_get(acc, room_jid);
	if (!room && !(room = mend_room_ensure(acc, room_jid)))
		return MEND_ERR_INVALID_ARG;
	if (room->status == MEND_ERR_NOT_FOUND)
		mend_room_ask_status(acc, room);
	return room->status;
}

/* --- members ------------------------------------------------------------------------ */

static int is_member_affiliation(const char *aff)
{
	return aff && (g_str_equal(aff, "owner") || g_str_equal(aff, "admin") ||
	               g_str_equal(aff, "member"));
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* Adds `jid` unless it is there or ours. */
static void add_unique(mend_account *acc, GPtrArray *a, const char *jid)
{
	guint i;

	if (is_own_bare(acc, jid))
		return;
	for (i = 0; i < a->len; i++)
		if (g_str_equal(a->pdata[i], jid))
			return;
	g_ptr_array_add(a, g_strdup(jid));
}

GPtrArray *mend_room_member_jids(mend_account *acc, mend_room *room)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *jids = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *affs = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter it;
	gpointer v;
	guint i;

	mend_store_room_members(acc->store, room->jid, jids, affs);
	for (i = 0; i < jids->len; i++)
		if (is_member_affiliation(affs->pdata[i]))
			add_unique(acc, out, jids->pdata[i]);
	g_hash_table_iter_init(&it, room->occupants);
	while (g_hash_table_iter_next(&it, NULL, &v))
		add_unique(acc, out, v);
	g_ptr_array_sort(out, cmp_str);
	g_ptr_array_unref(jids);
	g_ptr_array_unref(affs);
	return out;
}

/* A member's devices are fetched now, so that a message finds them known. */
static void fetch_member(mend_account *acc, const char *jid)
{
	mend_engine_prefetch(acc, jid);
}

/* Records one muc#user <item/>; returns 1 when the member set changed. */
static int record_item(mend_account *acc, mend_room *room, xmpp_stanza_t *item, const char *nick,
                       int unavailable)
{
	const char *raw = xmpp_stanza_get_attribute(item, "jid");
	const char *aff = xmpp_stanza_get_attribute(item, "affiliation");
	char *jid = raw ? mend_jid_normalize(raw) : NULL;
	int changed = 0, was;

	if (!jid || !strchr(jid, '@')) {
		if (raw || !nick)
			mend_log(acc, MEND_LOG_WARNING, "room %s: item with a bad JID '%s' ignored",
			         room->jid, raw ? raw : "");
		g_free(jid);
		return 0;
	}
	/* our other devices are occupants too (their messages are ours), never members */
	was = g_hash_table_contains(room->occupants, nick ? nick : "");
	if (nick && unavailable)
		g_hash_table_remove(room->occupants, nick);
	else if (nick)
		g_hash_table_replace(room->occupants, g_strdup(nick), g_strdup(jid));
	changed = nick && was == unavailable && !is_own_bare(acc, jid);
	if (!is_own_bare(acc, jid)) {
		/* XEP-0045 §9.3-9.4: none or outcast: no longer a member */
		if (aff && is_member_affiliation(aff))
			mend_store_room_member_set(acc->store, room->jid, jid, aff);
		else if (aff)
			mend_store_room_member_set(acc->store, room->jid, jid, NULL);
		if (!unavailable && is_member_affiliation(aff))
			fetch_member(acc, jid);
	}
	g_free(jid);
	return changed;
}

void mend_room_items(mend_account *acc, mend_room *room, xmpp_stanza_t *x, const char *nick,
                     int unavailable)
{
	xmpp_stanza_t *c;
	int n = 0, changed = 0;

	for (c = x ? xmpp_stanza_get_children(x) : NULL; c; c = xmpp_stanza_get_next(c))
		if (g_strcmp0(xmpp_stanza_get_name(c), "item") == 0) {
			changed |= record_item(acc, room, c, nick, unavailable);
			n++;
		}
	if (!n && nick)
		mend_log(acc, MEND_LOG_WARNING, "room %s: presence of %s without an item ignored",
		         room->jid, nick);
	if (changed && room->status == MEND_OK)
		room_event(acc, room);
}

/* XEP-0045 §7.2.2: status 110 marks the presence of our own occupant. */
static int has_status(xmpp_stanza_t *x, const char *code)
{
	return mend_room_has_child(x, "status", "code", code);
}

int mend_room_presence(mend_account *acc, xmpp_stanza_t *st)
{
	const char *from = xmpp_stanza_get_from(st), *type = xmpp_stanza_get_type(st);
	const char *nick = from ? strchr(from, '/') : NULL;
	xmpp_stanza_t *x = child(st, "x", NS_MUC_USER);
	mend_room *room;
	char *bare;

	if (!nick || !x || (type && g_str_equal(type, "error")))
		return 0;
	bare = g_strndup(from, (gsize)(nick - from));
	room = mend_room_get(acc, bare);
	g_free(bare);
	if (!room)
		return 0; /* a room we were not told about: the host's */
	nick++;
	if (has_status(x, "110")) { /* our own presence: our nick as the room knows it */
		if (g_strcmp0(room->nick, nick) != 0 &&
		    !(type && g_str_equal(type, "unavailable"))) {
			g_free(room->nick);
			room->nick = g_strdup(nick);
		}
		return 0;
	}
	mend_room_items(acc, room, x, nick, type && g_str_equal(type, "unavailable"));
	return 0;
}

/* --- affiliation lists (XEP-0045 §9.5 members, §10.5 admins and owners) ---------------- */

void mend_room_ask_free(gpointer p)
{
	room_ask *a = p;

	g_free(a->room);
	g_free(a->what);
	g_free(a);
}

/* The list replaces what we knew of that affiliation: who is not in it any more lost it. */
static void list_forget_others(mend_account *acc, mend_room *room, const char *aff,
                               GPtrArray *listed)
{
	GPtrArray *jids = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *affs = g_ptr_array_new_with_free_func(g_free);
	guint i, j;

	mend_store_room_members(acc->store, room->jid, jids, affs);
	for (i = 0; i < jids->len; i++) {
		int found = 0;

		for (j = 0; j < listed->len && !found; j++)
			found = g_str_equal(listed->pdata[j], jids->pdata[i]);
		if (!found && g_str_equal(affs->pdata[i], aff))
			mend_store_room_member_set(acc->store, room->jid, jids->pdata[i], NULL);
	}
	g_ptr_array_unref(jids);
	g_ptr_array_unref(affs);
}

static void list_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	room_ask *l = data;
	mend_room *room = mend_room_get(acc, l->room);
	xmpp_stanza_t *q = child(iq, "query", NS_MUC_ADMIN), *c;
	GPtrArray *listed = g_ptr_array_new_with_free_func(g_free);

	if (!room)
		goto out;
	if (room->lists_out)
		room->lists_out--;
	if (!ok || !q) {
		mend_log(acc, MEND_LOG_INFO, "room %s did not give its %s list", room->jid,
		         l->what);
		goto done;
	}
	for (c = xmpp_stanza_get_children(q); c; c = xmpp_stanza_get_next(c)) {
		const char *raw = g_strcmp0(xmpp_stanza_get_name(c), "item") == 0
		                      ? xmpp_stanza_get_attribute(c, "jid")
		                      : NULL;
		char *jid = raw ? mend_jid_normalize(raw) : NULL;

		if (!jid || !strchr(jid, '@')) {
			mend_log(acc, MEND_LOG_WARNING, "room %s: %s list item '%s' ignored",
			         room->jid, l->what, raw ? raw : "");
			g_free(jid);
			continue;
		}
		if (!is_own_bare(acc, jid)) {
			mend_store_room_member_set(acc->store, room->jid, jid, l->what);
			fetch_member(acc, jid);
		}
		g_ptr_array_add(listed, jid);
	}
	list_forget_others(acc, room, l->what, listed);
done:
	if (!room->lists_out) {
		if (room->status == MEND_OK)
			room_event(acc, room);
		mend_engine_pump(acc, room->jid);
	}
out:
	g_ptr_array_unref(listed);
}

static void ask_lists(mend_account *acc, mend_room *room)
{
	static const char *const affs[] = {"owner", "admin", "member"};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(affs); i++) {
		xmpp_stanza_t *iq = iq_new(acc, "get"), *item;
		room_ask *l = g_new0(room_ask, 1);

		item = add(add(iq, el(acc, "query", NS_MUC_ADMIN)), el(acc, "item", NULL));
		xmpp_stanza_set_attribute(item, "affiliation", affs[i]);
		l->room = g_strdup(room->jid);
		l->what = g_strdup(affs[i]);
		room->lists_out++;
		send_iq(acc, iq, room->jid, list_reply, l, mend_room_ask_free);
	}
}

/* --- joining and leaving -------------------------------------------------------------- */

/* type NULL: the join presence; no_history: the room's replay is not wanted (§7.2.15). */
static void send_presence(mend_account *acc, mend_room *room, const char *type, int no_history)
{
	xmpp_stanza_t *p = el(acc, "presence", NULL);
	char *to = g_strdup_printf("%s/%s", room->jid, room->nick);
	char *text;

	xmpp_stanza_set_to(p, to);
	if (type)
		xmpp_stanza_set_type(p, type);
	else if (!no_history) /* XEP-0045 §7.2.1 */
		add(p, el(acc, "x", NS_MUC));
	else /* the archive catch-up brings it: no replay (§7.2.15) */
		xmpp_stanza_set_attribute(
		    add(add(p, el(acc, "x", NS_MUC)), el(acc, "history", NULL)), "maxstanzas", "0");
	text = mend_stanza_text(p);
	if (text)
		mend_engine_send(acc, text);
	g_free(text);
	g_free(to);
	xmpp_stanza_release(p);
}

int mend_account_room_join(mend_account *acc, const char *room_jid, const char *nick,
                           unsigned flags)
{
	mend_room *room;
	int r;

	if (!room_jid || strchr(room_jid, '/') || !nick || !*nick || strchr(nick, '/') ||
	    !g_utf8_validate(nick, -1, NULL))
		return MEND_ERR_INVALID_ARG;
	room = mend_room_ensure(acc, room_jid);
	if (!room)
		return MEND_ERR_INVALID_ARG;
	r = mend_store_room_put(acc->store, room->jid, nick);
	if (r < 0)
		return r;
	g_free(room->nick);
	room->nick = g_strdup(nick);
	if (!mend_engine_connected(acc))
		return MEND_OK; /* remembered; asked once connected and joined again */
	if (flags & MEND_ROOM_PRESENCE)
		send_presence(acc, room, NULL, flags & MEND_ROOM_CATCHUP);
	room->status = MEND_ERR_NOT_FOUND; /* asked again on every join */
	mend_room_ask_status(acc, room);
	if (!room->lists_out)
		ask_lists(acc, room);
	if (flags & MEND_ROOM_CATCHUP)
		mend_room_catchup_start(acc, room);
	return MEND_OK;
}

int mend_account_room_leave(mend_account *acc, const char *room_jid, unsigned flags)
{
	mend_room *room;
	char *k = room_key(room_jid);
	int r;

	if (!k || strchr(room_jid, '/')) {
		g_free(k);
		return MEND_ERR_INVALID_ARG;
	}
	room = mend_room_get(acc, k);
	if (room && room->nick && (flags & MEND_ROOM_PRESENCE) && mend_engine_connected(acc))
		send_presence(acc, room, "unavailable", 0);
	mend_room_drop_pending(acc, k);
	r = mend_store_room_delete(acc->store, k);
	if (room) {
		mend_room_mam_free(acc, room);
		g_hash_table_remove(rooms(acc)->by_jid, k);
	}
	g_free(k);
	return r;
}

int mend_account_rooms(mend_account *acc, char ***out_rooms, char ***out_nicks)
{
	GPtrArray *rs = g_ptr_array_new(), *ns = g_ptr_array_new();
	int r = mend_store_rooms(acc->store, rs, ns);

	g_ptr_array_add(rs, NULL);
	g_ptr_array_add(ns, NULL);
	if (r < 0) {
		g_strfreev((char **)(void *)g_ptr_array_free(rs, FALSE));
		g_strfreev((char **)(void *)g_ptr_array_free(ns, FALSE));
		return r;
	}
	*out_rooms = (char **)(void *)g_ptr_array_free(rs, FALSE);
	if (out_nicks)
		*out_nicks = (char **)(void *)g_ptr_array_free(ns, FALSE);
	else
		g_strfreev((char **)(void *)g_ptr_array_free(ns, FALSE));
	return MEND_OK;
}

void mend_strv_free(char **v)
{
	g_strfreev(v);
}

/* --- the member list for hosts --------------------------------------------------------- */

static char *affiliation_of(mend_account *acc, mend_room *room, const char *jid)
{
	GPtrArray *jids = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *affs = g_ptr_array_new_with_free_func(g_free);
	char *out = NULL;
	guint i;

	mend_store_room_members(acc->store, room->jid, jids, affs);
	for (i = 0; i < jids->len && !out; i++)
		if (g_str_equal(jids->pdata[i], jid))
			out = g_strdup(affs->pdata[i]);
	g_ptr_array_unref(jids);
	g_ptr_array_unref(affs);
	return out ? out : g_strdup("none");
}

static void fill_member(mend_account *acc, mend_room *room, const char *jid, mend_room_member *m)
{
	GHashTableIter it;
	gpointer k, v;
	uint32_t *ids = NULL;
	size_t n = 0, i;

	m->jid = g_strdup(jid);
	m->affiliation = affiliation_of(acc, room, jid);
	g_hash_table_iter_init(&it, room->occupants);
	while (!m->nick && g_hash_table_iter_next(&it, &k, &v))
		if (g_str_equal(v, jid))
			m->nick = g_strdup(k);
	m->present = m->nick != NULL;
	if (mend_account_devices(acc, jid, &ids, &n) == MEND_OK) {
		m->n_known = (unsigned)n;
		for (i = 0; i < n; i++)
			m->n_devices += mend_store_session_exists(acc->store, jid, ids[i]) == 1 &&
			                mend_trust_is_trusted(mend_trust_of(acc, jid, ids[i]));
	}
	mend_free(ids);
}

int mend_account_room_members(mend_account *acc, const char *room_jid, mend_room_member **out,
                              size_t *n)
{
	mend_room *room;
	GPtrArray *jids;
	guint i;

	*out = NULL;
	*n = 0;
	if (!room_jid || strchr(room_jid, '/'))
		return MEND_ERR_INVALID_ARG;
	room = mend_room_get(acc, room_jid);
	if (!room)
		return MEND_ERR_NOT_FOUND;
	jids = mend_room_member_jids(acc, room);
	*out = g_new0(mend_room_member, jids->len ? jids->len : 1);
	for (i = 0; i < jids->len; i++)
		fill_member(acc, room, jids->pdata[i], &(*out)[i]);
	*n = jids->len;
	g_ptr_array_unref(jids);
	return MEND_OK;
}

void mend_room_members_free(mend_room_member *m, size_t n)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < n; i++) {
		g_free(m[i].jid);
		g_free(m[i].nick);
		g_free(m[i].affiliation);
	}
	g_free(m);
}
