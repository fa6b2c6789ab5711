/*
 * room_msg.c - messages in group chats (XEP-0045 rooms; OMEMO:2 and legacy OMEMO,
 * XEP-0384 0.9 §7 "Group Chats" beside v0.3).
 *
 *  - sending: a room message waits in the persistent pending queue (a row
 *    whose jid is the room, flagged MEND_PENDING_ROOM) until the room's
 *    status and affiliation lists are known and every member's device list
 *    and bundles are fetched; it is then encrypted once to every usable
 *    device of every member and ours (1:1's recipient rules per contact, and
 *    1:1's choice of version per device: OMEMO:2 when the device publishes
 *    it, legacy otherwise; one stanza per version when both are needed) and
 *    sent as type="groupchat" with 1:1's stanza (EME, store hint, fallback
 *    body, XEP-0359 origin-id). The OMEMO:2 SCE envelope's <to/> is the room
 *    and its <from/> our real bare JID (XEP-0384 0.9 §5.5.1, XEP-0420 §3).
 *    Members nobody can reach hold it (HELD) until the user releases or
 *    drops it; plaintext never leaves. What we sent is kept sealed in local
 *    history by origin-id: the room's reflection of it shows as ours, once,
 *    and is never decrypted (we hold no key for our own sending device).
 *  - receiving: type="groupchat" from room/nick. Deduped by the room's
 *    stanza-id (XEP-0359, by = the room) before anything else, so the room's
 *    history replay, live copies and archive results show once. The sender's
 *    real JID comes from the occupant map (live), the muc#user item that
 *    Prosody's mod_muc_mam adds to archived copies in non-anonymous rooms,
 *    or the sender device among the members' known devices; then the message
 *    is decrypted as 1:1's are (engine.c process_encrypted); an OMEMO:2
 *    envelope must name the room as <to/> and that real JID as <from/>
 *    (omemo2_message.c), else it is refused with an error line.
 *  - the room archive (XEP-0313 on the room JID, RSM paging): on join with
 *    MEND_ROOM_CATCHUP, from the stored position; the first time, the last
 *    page of 100 (RSM <before/>: Prosody returns it oldest first), so a new
 *    member sees the recent conversation. Results count only from the room's
 *    bare JID and for our queryid. Until every catch-up (ours and the rooms')
 *    has ended, used prekeys stay (DESIGN §3). Errors pause and retry as
 *    archive.c does.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "room.h"
#include "omemo2_engine.h"
#include "xep/omemo_legacy.h"
#include "xep/omemo2.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define NS_SID   "urn:xmpp:sid:0"
#define NS_DELAY "urn:xmpp:delay"
/* The first catch-up of a room: this many of its latest messages. */
#define ROOM_FIRST_PAGE "100"
#define ROOM_PAGE       "250"

/* --- sending ------------------------------------------------------------------- */

static void recipients_free(GArray *rs)
{
	guint i;

	for (i = 0; i < rs->len; i++)
		g_free(g_array_index(rs, mend_recipient, i).jid);
	g_array_free(rs, TRUE);
}

/* Why `jid` gets nothing (DESIGN §7: what it is and what to do). */
static void why_not(mend_account *acc, GString *s, const char *jid, int untrusted)
{
	uint32_t *ids = NULL;
	size_t n = 0;

	mend_account_devices(acc, jid, &ids, &n);
	mend_free(ids);
	if (s->len)
		g_string_append(s, "; ");
	if (untrusted)
		g_string_append_printf(s,
		                       _("%s: none of its devices is trusted (verify a fingerprint "
		                         "and trust it)"),
		                       jid);
	else if (n)
		g_string_append_printf(s, _("%s: its devices published no usable keys"), jid);
	else
		g_string_append_printf(s,
		                       _("%s: no OMEMO device (no device list, or one we may not "
		                         "read)"),
		                       jid);
}

/*
 * Every usable device of every member and ours into rs. MEND_ERR_NEED_BUNDLE while a
 * device waits for its bundle; *left (g_free, NULL when none) names the members who get
 * nothing and why; *reached counts the members who get it.
 */
static int room_recipients(mend_account *acc, mend_room *room, GArray *rs, char **left,
                           unsigned *reached)
{
	GPtrArray *jids = mend_room_member_jids(acc, room);
	GString *s = g_string_new(NULL);
	size_t missing = 0;
	guint i, before;
	int r = MEND_OK, added;

	mend_recipients_reset(acc);
	*reached = 0;
	for (i = 0; i < jids->len && r >= 0; i++) {
		before = acc->skipped->len;
		added = r = mend_recipients_add(acc, jids->pdata[i], rs, &missing);
		if (added > 0)
			(*reached)++;
		else if (added == 0)
			why_not(acc, s, jids->pdata[i], acc->skipped->len > before);
	}
	if (r >= 0)
		r = mend_recipients_add(acc, acc->jid, rs, &missing);
	if (r >= 0)
		r = missing ? MEND_ERR_NEED_BUNDLE : MEND_OK;
	*left = g_string_free(s, s->len == 0);
	g_ptr_array_unref(jids);
	return r;
}

/*
 * Encrypts `body` for the room: MEND_OK with *stanza, MEND_ERR_ROOM_PARTIAL when members
 * could not read it and `partial` is not set (*left says who), MEND_ERR_NEED_BUNDLE, or
 * another error (MEND_ERR_NO_DEVICES: no member could read it).
 */
static int room_encrypt(mend_account *acc, mend_room *room, const char *body, const char *id,
                        int partial, char **stanza, char **left)
{
	GArray *rs = g_array_new(FALSE, FALSE, sizeof(mend_recipient));
	unsigned reached = 0;
	int r;

	*stanza = NULL;
	r = room_recipients(acc, room, rs, left, &reached);
	if (r == MEND_OK && *left && !reached)
		r = MEND_ERR_NO_DEVICES; /* nobody but us: that is no delivery */
	else if (r == MEND_OK && *left && !partial)
		r = MEND_ERR_ROOM_PARTIAL;
	if (r == MEND_OK)
		r = mend_account_encrypt_for(acc, room->jid,
		                             (const mend_recipient *)(void *)rs->data, rs->len,
		                             body, id, MEND_ENC_GROUPCHAT, stanza);
	recipients_free(rs);
	return r;
}

/* SEND_FAILED for a queued room message, with `text`; it leaves the queue. */
static void room_failed(mend_account *acc, const mend_pending *p, int err, const char *text)
{
	mend_event ev = {.kind = MEND_EVENT_SEND_FAILED,
	                 .peer = p->jid,
	                 .room = p->jid,
	                 .id = p->msg_id,
	                 .body = p->body,
	                 .error = err,
	                 .text = text,
	                 .trust = -1};

	mend_store_pending_delete(acc->store, p->row);
	emit(acc, &ev);
}

static void room_failed_status(mend_account *acc, mend_room *room, const mend_pending *p, int err)
{
	char *why = err == MEND_ERR_ROOM_OPEN || err == MEND_ERR_ROOM_ANONYMOUS ||
	                    err == MEND_ERR_NOT_A_ROOM
	                ? mend_room_status_text(room->jid, err)
	                : g_strdup(mend_strerror(err));
	char *text = g_strdup_printf(_("The message to %s was not sent: %s"), room->jid, why);

	room_failed(acc, p, err, text);
	g_free(text);
	g_free(why);
}

/* The HELD sentence: who cannot read it now, what to do, what waits behind it. g_free. */
static char *held_text(const mend_pending *p, const char *left, unsigned behind)
{
	GString *s = g_string_new(NULL);

	if (left)
		g_string_printf(
		    s,
		    _("Not sent to %s yet: some members could not read it (%s). Send it "
		      "to the members who can read it, or drop it."),
		    p->jid, left);
	else
		g_string_printf(
		    s,
		    _("Not sent to %s yet: it waits for your confirmation (every member "
		      "can read it now). Send it, or drop it."),
		    p->jid);
	if (behind)
		g_string_append_printf(
		    s,
		    dngettext(GETTEXT_PACKAGE, " %u later message to %s waits behind it.",
		              " %u later messages to %s wait behind it.", behind),
		    behind, p->jid);
	return g_string_free(s, FALSE);
}

/*
 * HELD: who could not read it and what to do. The flag is stored; what was told is kept
 * in memory only, so HELD comes once per account session (a restarted host learns of it
 * again) and again whenever its sentence changes.
 */
static void room_hold(mend_account *acc, mend_room *room, const mend_pending *p, const char *left,
                      unsigned behind)
{
	mend_event ev = {.kind = MEND_EVENT_HELD,
	                 .peer = p->jid,
	                 .room = p->jid,
	                 .id = p->msg_id,
	                 .body = p->body,
	                 .error = MEND_ERR_ROOM_PARTIAL,
	                 .trust = -1};
	char *text = held_text(p, left, behind);

	if (!(p->flags & MEND_PENDING_HELD))
		mend_store_pending_set_flags(acc->store, p->row, p->flags | MEND_PENDING_HELD);
	if (!room->held_told)
		room->held_told = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	if (g_strcmp0(g_hash_table_lookup(room->held_told, p->msg_id), text) != 0) {
		g_hash_table_replace(room->held_told, g_strdup(p->msg_id), g_strdup(text));
		ev.text = text;
		emit(acc, &ev);
	}
	g_free(text);
}

/*
 * A held message leaves only when the user releases it (mend_account_release), however
 * the members change meanwhile: HELD again, with who cannot read it now. <0 (it waits).
 */
static int room_still_held(mend_account *acc, mend_room *room, const mend_pending *p,
                           unsigned behind)
{
	GArray *rs = g_array_new(FALSE, FALSE, sizeof(mend_recipient));
	char *left = NULL;
	unsigned reached = 0;
	int r = room_recipients(acc, room, rs, &left, &reached);

	recipients_free(rs);
	if (r == MEND_OK)
		room_hold(acc, room, p, left, behind);
	g_free(left);
	return r < 0 ? r : MEND_ERR_ROOM_PARTIAL;
}

/* Hands the encrypted stanza to the host; SENT names who was left out. */
static int room_deliver(mend_account *acc, mend_room *room, mend_pending *p)
{
	mend_event ev = {.kind = MEND_EVENT_SENT,
	                 .peer = p->jid,
	                 .room = p->jid,
	                 .id = p->msg_id,
	                 .body = p->body,
	                 .trust = -1};
	char *skipped, *text = NULL;

	/* one stanza per OMEMO version, in order */
	if (mend_omemo2_send_each(acc, p->stanza) != 0) {
		mend_engine_host_refused(acc, p);
		return MEND_ERR_PROTOCOL;
	}
	mend_engine_remember_sent(acc, p);
	mend_store_pending_delete(acc->store, p->row);
	skipped = mend_engine_skipped_text(acc);
	if (room->partial_text)
		text =
		    g_strdup_printf(_("Left out (they cannot read it): %s.%s%s"),
		                    room->partial_text, skipped ? " " : "", skipped ? skipped : "");
	ev.n_devices = mend_engine_count_keys(acc, p->stanza, &ev.n_devices2);
	ev.text = text ? text : skipped;
	emit(acc, &ev);
	g_free(text);
	g_free(skipped);
	g_clear_pointer(&room->partial_text, g_free);
	return MEND_OK;
}

/* Encrypts a queued message and keeps the stanza with it, in one transaction. */
static int room_encrypt_pending(mend_account *acc, mend_room *room, mend_pending *p, char **left)
{
	int r = mend_store_begin(acc->store);

	if (r < 0)
		return r;
	r = room_encrypt(acc, room, p->body, p->msg_id, p->flags & MEND_PENDING_PARTIAL, &p->stanza,
	                 left);
	if (r == MEND_OK)
		r = mend_store_pending_set_stanza(acc->store, p, p->stanza);
	if (r < 0) {
		mend_store_rollback(acc->store);
		g_clear_pointer(&p->stanza, g_free);
		return r;
	}
	return mend_store_commit(acc->store);
}

/*
 * One queued room message: 0 when done with (sent or failed), <0 while it waits (`behind`
 * later ones wait behind it).
 */
static int room_send_pending(mend_account *acc, mend_room *room, mend_pending *p, unsigned behind)
{
	char *left = NULL;
	int r = MEND_OK;

	if (p->flags & MEND_PENDING_HELD)
		return room_still_held(acc, room, p, behind);
	/* a stanza encrypted before a crash is sent as it is */
	if (!p->stanza)
		r = room_encrypt_pending(acc, room, p, &left);
	if (r == MEND_ERR_ROOM_PARTIAL)
		room_hold(acc, room, p, left, behind);
	if (r == MEND_ERR_NO_DEVICES) {
		char *text =
		    g_strdup_printf(_("The message to %s was not sent: no member could read "
		                      "it (%s)."),
		                    room->jid, left);
		room_failed(acc, p, r, text);
		g_free(text);
		r = MEND_OK;
	} else if (r < 0 && r != MEND_ERR_ROOM_PARTIAL && r != MEND_ERR_NEED_BUNDLE) {
		room_failed_status(acc, room, p, r);
		r = MEND_OK;
	} else if (r == MEND_OK) {
		g_free(room->partial_text);
		room->partial_text = g_strdup(left);
		r = room_deliver(acc, room, p);
	}
	g_free(left);
	return r;
}

static void pending_list_free(GArray *list)
{
	guint i;

	for (i = 0; i < list->len; i++)
		mend_pending_clear(&g_array_index(list, mend_pending, i));
	g_array_free(list, TRUE);
}

/* Starts the fetches the members (and we) still need; how many started. */
static unsigned fetch_members(mend_account *acc, mend_room *room)
{
	GPtrArray *jids = mend_room_member_jids(acc, room);
	unsigned started = mend_engine_fetch_missing(acc, acc->jid);
	guint i;

	for (i = 0; i < jids->len; i++)
		started += mend_engine_fetch_missing(acc, jids->pdata[i]);
	g_ptr_array_unref(jids);
	return started;
}

/* Whether what the room needs is known: its status, its lists, every member's keys. */
static int room_ready(mend_account *acc, mend_room *room)
{
	if (room->status == MEND_ERR_NOT_FOUND) {
		mend_room_ask_status(acc, room);
		return 0;
	}
	return !room->lists_out && (room->status != MEND_OK || fetch_members(acc, room) == 0);
}

int mend_room_pump(mend_account *acc, const char *jid)
{
	mend_room *room = mend_room_get(acc, jid);
	GArray *list;
	guint i;

	if (!room)
		return 0;
	if (!mend_engine_idle(acc) || !room_ready(acc, room))
		return 1;
	list = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	mend_store_pending_list(acc->store, room->jid, list);
	for (i = 0; i < list->len; i++) {
		mend_pending *p = &g_array_index(list, mend_pending, i);

		if (room->status != MEND_OK) {
			room_failed_status(acc, room, p, room->status);
			continue;
		}
		if (room_send_pending(acc, room, p, list->len - i - 1) < 0)
			break; /* in order: the later ones wait behind it */
	}
	pending_list_free(list);
	return 1;
}

void mend_room_drop_pending(mend_account *acc, const char *room_jid)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	char *text =
	    g_strdup_printf(_("The message to %s was not sent: you left the room."), room_jid);
	guint i;

	mend_store_pending_list(acc->store, room_jid, list);
	for (i = 0; i < list->len; i++)
		if (g_array_index(list, mend_pending, i).flags & MEND_PENDING_ROOM)
			room_failed(acc, &g_array_index(list, mend_pending, i), MEND_ERR_NOT_FOUND,
			            text);
	pending_list_free(list);
	g_free(text);
}

/* The room for sending: known, and not refused (status errors come back at once). */
static int room_for_send(mend_account *acc, const char *room_jid, const char *body, mend_room **out)
{
	mend_room *room;

	if (!room_jid || strchr(room_jid, '/') || !body || !g_utf8_validate(body, -1, NULL))
		return MEND_ERR_INVALID_ARG;
	room = mend_room_get(acc, room_jid);
	if (!room && !(room = mend_room_ensure(acc, room_jid)))
		return MEND_ERR_INVALID_ARG;
	*out = room;
	if (room->status != MEND_OK && room->status != MEND_ERR_NOT_FOUND)
		return room->status;
	return MEND_OK;
}

static int room_queue(mend_account *acc, mend_room *room, const char *body, const char *id,
                      unsigned flags)
{
	unsigned pf =
	    MEND_PENDING_ROOM | ((flags & MEND_SEND_ALLOW_PARTIAL) ? MEND_PENDING_PARTIAL : 0);
	int r = mend_store_pending_add_flags(acc->store, room->jid, id, body, pf);

	if (r < 0)
		return r;
	mend_engine_pump(acc, room->jid);
	return MEND_OK;
}

int mend_account_room_send(mend_account *acc, const char *room_jid, const char *body,
                           unsigned flags, char **id)
{
	mend_room *room = NULL;
	char *msg_id;
	int r = room_for_send(acc, room_jid, body, &room);

	if (id)
		*id = NULL;
	if (r < 0)
		return r;
	msg_id = g_uuid_string_random();
	r = room_queue(acc, room, body, msg_id, flags);
	if (id && r == MEND_OK)
		*id = msg_id;
	else
		g_free(msg_id);
	return r;
}

/* Whether a message to the room can be encrypted now, with nothing queued before it. */
static int room_at_hand(mend_account *acc, mend_room *room)
{
	GArray *list;
	int queued;

	if (!mend_engine_idle(acc) || room->status != MEND_OK || room->lists_out ||
	    fetch_members(acc, room))
		return 0;
	list = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	mend_store_pending_list(acc->store, room->jid, list);
	queued = list->len > 0;
	pending_list_free(list);
	return !queued;
}

int mend_account_room_encrypt_or_queue(mend_account *acc, const char *room_jid, const char *body,
                                       const char *id, unsigned flags, char **stanza)
{
	mend_room *room = NULL;
	mend_pending p = {0};
	char *own_id = NULL, *left = NULL;
	int r;

	*stanza = NULL;
	r = room_for_send(acc, room_jid, body, &room);
	if (r < 0)
		return r;
	if (!id)
		id = own_id = g_uuid_string_random();
	r = room_at_hand(acc, room)
	        ? room_encrypt(acc, room, body, id, flags & MEND_SEND_ALLOW_PARTIAL, stanza, &left)
	        : MEND_ERR_NEED_BUNDLE;
	if (r == MEND_OK) /* one stanza per version: the host sends the last, after the others */
		r = mend_omemo2_send_all_but_last(acc, stanza);
	if (r == MEND_OK) {
		p.jid = room->jid;
		p.body = (char *)body;
		p.msg_id = (char *)id;
		mend_engine_remember_sent(acc, &p);
	} else if (r == MEND_ERR_NEED_BUNDLE || r == MEND_ERR_ROOM_PARTIAL) {
		/* the queue fetches, holds (HELD says who) or sends it */
		r = room_queue(acc, room, body, id, flags) == MEND_OK ? 1 : MEND_ERR_STORE;
	}
	g_free(left);
	g_free(own_id);
	return r;
}

int mend_account_release(mend_account *acc, const char *id, int send)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	GPtrArray *rooms = g_ptr_array_new_with_free_func(g_free);
	guint i, found = 0;

	mend_store_pending_list(acc->store, NULL, list);
	for (i = 0; i < list->len; i++) {
		mend_pending *p = &g_array_index(list, mend_pending, i);

		if (!(p->flags & MEND_PENDING_HELD) || (id && g_strcmp0(id, p->msg_id) != 0))
			continue;
		found++;
		if (!send) {
			char *text = g_strdup_printf(
			    _("The message to %s was dropped: it was not sent."), p->jid);

			room_failed(acc, p, MEND_ERR_ROOM_PARTIAL, text);
			g_free(text);
			continue;
		}
		mend_store_pending_set_flags(
		    acc->store, p->row, (p->flags & ~MEND_PENDING_HELD) | MEND_PENDING_PARTIAL);
		g_ptr_array_add(rooms, g_strdup(p->jid));
	}
	pending_list_free(list);
	for (i = 0; i < rooms->len; i++)
		mend_engine_pump(acc, rooms->pdata[i]);
	g_ptr_array_unref(rooms);
	return found ? MEND_OK : MEND_ERR_NOT_FOUND;
}

/* --- receiving --------------------------------------------------------------------------- */

/* XEP-0359 §3: the stanza-id the room stamped (by = the room's JID), or NULL. */
static const char *room_stanza_id(mend_room *room, xmpp_stanza_t *msg)
{
	xmpp_stanza_t *c;

	for (c = xmpp_stanza_get_children(msg); c; c = xmpp_stanza_get_next(c)) {
		const char *by = xmpp_stanza_get_attribute(c, "by");
		char *nby = by ? mend_jid_normalize(by) : NULL;
		int ok = nby && g_strcmp0(xmpp_stanza_get_name(c), "stanza-id") == 0 &&
		         g_strcmp0(xmpp_stanza_get_ns(c), NS_SID) == 0 &&
		         g_str_equal(nby, room->jid);

		g_free(nby);
		if (ok)
			return xmpp_stanza_get_attribute(c, "id");
	}
	return NULL;
}

static const char *origin_id(xmpp_stanza_t *msg)
{
	xmpp_stanza_t *o = child(msg, "origin-id", NS_SID);

	return o ? xmpp_stanza_get_attribute(o, "id") : NULL;
}

/* The OMEMO <encrypted/> of a message, legacy or OMEMO:2 (libomemo-c), or NULL. */
static xmpp_stanza_t *room_encrypted(xmpp_stanza_t *msg)
{
	xmpp_stanza_t *enc = child(msg, "encrypted", MEND_NS_LEGACY);

	return enc                             ? enc
	       : mend_omemo2_is_encrypted(msg) ? child(msg, "encrypted", MEND_NS_OMEMO2)
	                                       : NULL;
}

/* The sender device of an OMEMO message (its <header sid/>, either version), or 0. */
static uint32_t sender_device(xmpp_stanza_t *msg)
{
	xmpp_stanza_t *h = child(room_encrypted(msg), "header", NULL);
	const char *sid = h ? xmpp_stanza_get_attribute(h, "sid") : NULL;
	guint64 v = sid ? g_ascii_strtoull(sid, NULL, 10) : 0;

	return v > 0 && v < 0x80000000u ? (uint32_t)v : 0;
}

/*
 * The real JID in the muc#user <item/> of a message (Prosody's mod_muc_mam adds it to
 * archived copies in non-anonymous rooms, after whatever the sender put there: the last
 * one counts). g_free; NULL if none.
 */
static char *item_jid(xmpp_stanza_t *msg)
{
	xmpp_stanza_t *c, *item;
	char *out = NULL;

	for (c = xmpp_stanza_get_children(msg); c; c = xmpp_stanza_get_next(c)) {
		const char *raw;

		if (g_strcmp0(xmpp_stanza_get_name(c), "x") != 0 ||
		    g_strcmp0(xmpp_stanza_get_ns(c), NS_MUC_USER) != 0)
			continue;
		item = child(c, "item", NULL);
		raw = item ? xmpp_stanza_get_attribute(item, "jid") : NULL;
		if (raw) {
			g_free(out);
			out = mend_jid_normalize(raw);
		}
	}
	if (out && !strchr(out, '@'))
		g_clear_pointer(&out, g_free);
	return out;
}

/* The member whose known devices include `device`, when exactly one does. g_free. */
static char *member_by_device(mend_account *acc, mend_room *room, uint32_t device)
{
	GPtrArray *jids = mend_room_member_jids(acc, room);
	char *found = NULL;
	guint i, hits = 0;

	for (i = 0; device && i < jids->len; i++) {
		uint32_t *ids = NULL;
		int *active = NULL;
		int64_t *seen = NULL;
		size_t n = 0, j;

		if (mend_store_devices_known(acc->store, jids->pdata[i], &ids, &active, &seen,
		                             &n) == MEND_OK)
			for (j = 0; j < n; j++)
				if (ids[j] == device && hits++ == 0)
					found = g_strdup(jids->pdata[i]);
		g_free(ids);
		g_free(active);
		g_free(seen);
	}
	g_ptr_array_unref(jids);
	if (hits > 1)
		g_clear_pointer(&found, g_free);
	return found;
}

/* Who sent it: live, the occupant now; archived, the item the room kept; else by device. */
static char *real_sender(mend_account *acc, mend_room *room, xmpp_stanza_t *msg, const char *nick,
                         int archived)
{
	const char *occ = mend_room_occupant(room, nick);
	char *jid = NULL;

	/* another device of ours under our nick (a nick shared by several sessions) */
	if (!occ && room->nick && g_strcmp0(nick, room->nick) == 0)
		occ = acc->jid;
	if (occ && !archived)
		return g_strdup(occ);
	/* XEP-0045 §7.2.3: our other devices may share our nick (one occupant, several
	 * sessions); what is not this device's own (is_ours) came from one of them */
	if (!archived && nick && room->nick && g_strcmp0(nick, room->nick) == 0)
		return g_strdup(acc->jid);
	if (!archived)
		return NULL; /* a live message comes from a present occupant */
	jid = item_jid(msg);
	if (!jid && occ)
		jid = g_strdup(occ);
	if (!jid)
		jid = member_by_device(acc, room, sender_device(msg));
	return jid;
}

/* What came with a room message, for the receive path. */
typedef struct room_in {
	xmpp_stanza_t *msg;
	const char *nick;
	const char *sid; /* the room's stanza-id (or the archive result id) */
	char *timestamp;
	int archived;
	int history;
} room_in;

static int history_shown(mend_room *room, const char *oid);

/* Our own message, reflected by the room: shown as ours from the sealed history, once (once
 * per history query: its stanzas of both OMEMO versions share the origin-id). */
static int own_reflection(mend_account *acc, mend_room *room, const room_in *ri)
{
	mend_history_item it = {0};
	const char *oid = origin_id(ri->msg);
	char *by = g_strconcat("own|", room->jid, NULL);
	mend_event ev = {
	    .kind = MEND_EVENT_MESSAGE, .room = room->jid, .trust = MEND_TRUST_VERIFIED};
	int shown = oid && mend_store_stanza_seen(acc->store, by, oid) > 0;

	if (ri->sid)
		mend_store_stanza_mark(acc->store, room->jid, ri->sid);
	if (oid && (ri->history ? !history_shown(room, oid) : !shown) &&
	    mend_store_history_by_msg_id(acc->store, room->jid, oid, &it) == MEND_OK) {
		mend_store_stanza_mark(acc->store, by, oid);
		ev.peer = room->jid;
		ev.from = acc->jid;
		ev.nick = ri->nick;
		ev.device = acc->device_id;
		ev.body = it.body;
		ev.timestamp = ri->timestamp ? ri->timestamp : it.timestamp;
		ev.stanza_id = ri->sid;
		ev.id = oid;
		ev.archived = ri->archived;
		ev.outgoing = 1;
		emit(acc, &ev);
		mend_history_clear(&it);
	}
	g_free(by);
	return 1;
}

/* Whether a room message is one of ours: its origin-id is in our sent history, or it comes
 * from this very device under our nick. */
static int is_ours(mend_account *acc, mend_room *room, const room_in *ri)
{
	mend_history_item it = {0};
	const char *oid = origin_id(ri->msg);
	int ours = oid && mend_store_history_by_msg_id(acc->store, room->jid, oid, &it) == MEND_OK;

	mend_history_clear(&it);
	return ours || (sender_device(ri->msg) == acc->device_id && room->nick &&
	                g_strcmp0(ri->nick, room->nick) == 0);
}

/* Decrypts a room message as 1:1's, with the sender's real JID in place of room/nick. */
static int room_decrypt(mend_account *acc, mend_room *room, const room_in *ri, const char *real)
{
	xmpp_stanza_t *copy = xmpp_stanza_copy(ri->msg);
	inbound in = {.msg = copy,
	              .archive_id = ri->sid,
	              .timestamp = ri->timestamp,
	              .archived = ri->archived,
	              .history = ri->history,
	              .room = room->jid,
	              .nick = ri->nick};
	int r;

	xmpp_stanza_set_from(copy, real);
	acc->sid_by = room->jid;
	r = process_encrypted(acc, &in);
	acc->sid_by = NULL;
	xmpp_stanza_release(copy);
	return r;
}

/* One OMEMO message of the room (live, replayed or archived). */
static int room_receive(mend_account *acc, mend_room *room, const room_in *ri)
{
	char *real;
	int r;

	/* XEP-0359: dedupe before anything else (a history query serves seen ones locally) */
	if (ri->sid && !ri->history && mend_store_stanza_seen(acc->store, room->jid, ri->sid) > 0)
		return 1;
	if (is_ours(acc, room, ri))
		return own_reflection(acc, room, ri);
	real = real_sender(acc, room, ri->msg, ri->nick, ri->archived);
	if (!real) {
		mend_log(acc, MEND_LOG_WARNING,
		         "room %s: OMEMO message from unknown occupant '%s' rejected", room->jid,
		         ri->nick);
		return MEND_ERR_PROTOCOL;
	}
	r = room_decrypt(acc, room, ri, real);
	g_free(real);
	return r;
}

/* XEP-0045 §15.6: codes that mean the room's configuration (or privacy) changed. */
static int config_changed(xmpp_stanza_t *x)
{
	static const char *const codes[] = {"104", "170", "171", "172", "173", "174"};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(codes); i++)
		if (mend_room_has_child(x, "status", "code", codes[i]))
			return 1;
	return 0;
}

int mend_room_is_from_room(mend_account *acc, xmpp_stanza_t *st)
{
	const char *from = xmpp_stanza_get_from(st);

	return from && !strchr(from, '/') && mend_room_get(acc, from) != NULL;
}

int mend_room_message(mend_account *acc, xmpp_stanza_t *st)
{
	const char *from = xmpp_stanza_get_from(st);
	const char *slash = from ? strchr(from, '/') : NULL;
	xmpp_stanza_t *x = child(st, "x", NS_MUC_USER);
	xmpp_stanza_t *enc = room_encrypted(st);
	char *bare = from ? g_strndup(from, slash ? (gsize)(slash - from) : strlen(from)) : NULL;
	mend_room *room = bare ? mend_room_get(acc, bare) : NULL;
	room_in ri = {.msg = st};
	int r;

	g_free(bare);
	if (!room) {
		if (enc)
			mend_log(acc, MEND_LOG_WARNING,
			         "groupchat OMEMO message from %s, not a room we are in: rejected",
			         from ? from : "?");
		return enc ? MEND_ERR_FORGED : 0;
	}
	if (config_changed(x)) {
		room->status = MEND_ERR_NOT_FOUND;
		mend_room_ask_status(acc, room);
	}
	if (!slash) { /* XEP-0045 §9.3: affiliation changes of absent users come from the room */
		if (x)
			mend_room_items(acc, room, x, NULL, 0);
		if (enc)
			mend_log(acc, MEND_LOG_WARNING, "OMEMO message from room %s itself ignored",
			         room->jid);
		return enc ? MEND_ERR_MALFORMED : 0;
	}
	if (!enc)
		return 0; /* plaintext groupchat: the host's business */
	ri.nick = slash + 1;
	ri.sid = room_stanza_id(room, st);
	ri.timestamp = delay_of(st);
	ri.archived = ri.timestamp != NULL; /* the room's history replay */
	if (!ri.timestamp)
		ri.timestamp = iso_now();
	r = room_receive(acc, room, &ri);
	g_free(ri.timestamp);
	return r;
}

/* --- the room archive (XEP-0313 on the room JID) ------------------------------------------ */

enum { ROOM_CATCHUP = 1, ROOM_HISTORY = 2 };

struct room_mam {
	int kind;
	char *queryid;
	char *start;      /* history: since; catch-up: by time when the position is unknown */
	int first;        /* no position yet: the latest page only */
	unsigned quiet;   /* messages of that page not encrypted for this device */
	int64_t retry_at; /* paused by an archive error until then (0: running) */
	unsigned failures;
	GHashTable *shown; /* history: the origin-ids of our own messages it showed */
};

static int history_shown(mend_room *room, const char *oid)
{
	room_mam *q = room->mam;

	if (!q || q->kind != ROOM_HISTORY)
		return 0;
	if (!q->shown)
		q->shown = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return !g_hash_table_add(q->shown, g_strdup(oid));
}

static void room_mam_send(mend_account *acc, mend_room *room, const char *after);

void mend_room_mam_free(mend_account *acc, mend_room *room)
{
	room_mam *q = room->mam;

	if (!q)
		return;
	room->mam = NULL;
	if (acc->room_catchups)
		acc->room_catchups--;
	g_free(q->queryid);
	g_free(q->start);
	if (q->shown)
		g_hash_table_destroy(q->shown);
	g_free(q);
}

int mend_room_quiet(mend_account *acc, const char *room_jid, int error)
{
	mend_room *room = room_jid ? mend_room_get(acc, room_jid) : NULL;

	if (!room || !room->mam || room->mam->kind != ROOM_CATCHUP || !room->mam->first ||
	    error != MEND_ERR_NOT_FOR_THIS_DEVICE)
		return 0;
	room->mam->quiet++;
	return 1;
}

/* The first catch-up's messages that were not for this device, in one line. */
static void quiet_summary(mend_account *acc, mend_room *room, unsigned n)
{
	mend_event ev = {
	    .kind = MEND_EVENT_NOTICE, .peer = room->jid, .room = room->jid, .trust = -1};
	char *text;

	if (!n)
		return;
	text = g_strdup_printf(dngettext(GETTEXT_PACKAGE,
	                                 "%u earlier message in %s was not encrypted for this "
	                                 "device (sent before it was in the room); read it on "
	                                 "another device.",
	                                 "%u earlier messages in %s were not encrypted for this "
	                                 "device (sent before it was in the room); read them on "
	                                 "another device.",
	                                 n),
	                       n, room->jid);
	ev.text = text;
	emit(acc, &ev);
	g_free(text);
}

static void history_start(mend_account *acc, mend_room *room, int64_t since);

/* A catch-up or history query ended: once none runs, used prekeys go (DESIGN §3). */
static void room_mam_finish(mend_account *acc, mend_room *room, int err)
{
	mend_event ev = {.peer = room->jid, .room = room->jid, .error = err, .trust = -1};
	unsigned quiet = room->mam->quiet;

	ev.kind =
	    room->mam->kind == ROOM_CATCHUP ? MEND_EVENT_CATCHUP_DONE : MEND_EVENT_HISTORY_DONE;
	mend_room_mam_free(acc, room);
	if (err)
		mend_log(acc, MEND_LOG_WARNING, "room %s archive query failed: %s", room->jid,
		         mend_strerror(err));
	if (!acc->room_catchups && !acc->mam) {
		mend_account_catchup_end(acc);
		mend_repair_flush(acc);
	}
	quiet_summary(acc, room, quiet);
	emit(acc, &ev);
	if (room->history_waiting && mend_engine_connected(acc)) {
		room->history_waiting = 0;
		history_start(acc, room, room->history_since);
	}
}

/* (Re)asks from the stored position: after the last id, else the latest page. */
static void room_catchup_query(mend_account *acc, mend_room *room)
{
	char *last = NULL;
	int64_t ts = 0;

	g_free(room->mam->queryid);
	room->mam->queryid = g_uuid_string_random();
	room->mam->retry_at = 0;
	mend_store_room_position_get(acc->store, room->jid, &last, &ts);
	room->mam->first = !last && !room->mam->start;
	room_mam_send(acc, room, room->mam->start ? NULL : last);
	g_free(last);
}

void mend_room_catchup_start(mend_account *acc, mend_room *room)
{
	if (room->mam || !mend_engine_connected(acc))
		return;
	mend_account_catchup_begin(acc);
	acc->room_catchups++;
	room->mam = g_new0(room_mam, 1);
	room->mam->kind = ROOM_CATCHUP;
	room_catchup_query(acc, room);
}

void mend_room_poll(mend_account *acc)
{
	GPtrArray *all = mend_room_all(acc);
	guint i;

	for (i = 0; i < all->len; i++) {
		mend_room *room = all->pdata[i];

		if (room->mam && room->mam->retry_at && mend_now(acc) >= room->mam->retry_at) {
			mend_log(acc, MEND_LOG_INFO, "asking room %s's archive again", room->jid);
			room_catchup_query(acc, room);
		}
	}
	g_ptr_array_unref(all);
}

/* An archive error: the catch-up pauses (position and used prekeys kept) and asks again. */
static void room_pause(mend_account *acc, mend_room *room)
{
	room_mam *q = room->mam;
	int64_t delay;
	mend_event ev = {
	    .kind = MEND_EVENT_NOTICE, .peer = room->jid, .room = room->jid, .trust = -1};
	char *text;

	delay = mend_archive_retry_delay(q->failures);
	q->failures++;
	q->retry_at = mend_now(acc) + delay;
	mend_log(acc, MEND_LOG_WARNING,
	         "room %s archive error; catch-up paused, retry in %" G_GINT64_FORMAT " s",
	         room->jid, delay);
	text =
	    g_strdup_printf(_("The archive of %s answered with an error; catching up again in %d "
	                      "seconds. Its messages may be missing until then."),
	                    room->jid, (int)delay);
	ev.text = text;
	emit(acc, &ev);
	g_free(text);
}

static int item_not_found(xmpp_stanza_t *iq)
{
	return child(child(iq, "error", NULL), "item-not-found",
	             "urn:ietf:params:xml:ns:xmpp-stanzas") != NULL;
}

static void room_mam_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	room_ask *a = data;
	mend_room *room = mend_room_get(acc, a->room);
	xmpp_stanza_t *fin = child(iq, "fin", NS_MAM);
	xmpp_stanza_t *lastel = child(child(fin, "set", NS_RSM), "last", NULL);
	const char *complete = fin ? xmpp_stanza_get_attribute(fin, "complete") : NULL;
	char *last = lastel ? xmpp_stanza_get_text(lastel) : NULL;
	int64_t ts = 0;
	char *pos = NULL;

	if (!room || !room->mam || g_strcmp0(room->mam->queryid, a->what) != 0)
		goto out;
	if (!ok && room->mam->kind == ROOM_CATCHUP && !room->mam->start && item_not_found(iq)) {
		/* XEP-0313 §5.1: the archive no longer knows our position: go by its time */
		mend_store_room_position_get(acc->store, room->jid, &pos, &ts);
		room->mam->start = mend_iso_of_unix(ts > 0 ? ts - 1 : mend_now(acc));
		g_free(pos);
		room_mam_send(acc, room, NULL);
	} else if (!ok && room->mam->kind == ROOM_CATCHUP) {
		room_pause(acc, room);
	} else if (!ok) {
		room_mam_finish(acc, room, MEND_ERR_PROTOCOL);
	} else if (room->mam->first || !last ||
	           (complete && (g_str_equal(complete, "true") || g_str_equal(complete, "1")))) {
		room_mam_finish(acc, room, 0);
	} else {
		room->mam->failures = 0;
		room_mam_send(acc, room, last);
	}
out:
	if (last)
		xmpp_free(xmpp_stanza_get_context(iq), last);
}

static void room_mam_send(mend_account *acc, mend_room *room, const char *after)
{
	room_mam *q = room->mam;
	xmpp_stanza_t *iq = iq_new(acc, "set"), *query, *x, *set;
	room_ask *a = g_new0(room_ask, 1);

	query = add(iq, el(acc, "query", NS_MAM));
	xmpp_stanza_set_attribute(query, "queryid", q->queryid);
	x = add(query, form(acc, NS_MAM, NULL, NULL));
	if (q->start)
		add_field(acc, x, "start", NULL, q->start);
	set = add(query, el(acc, "set", NS_RSM));
	add_text(acc, add(set, el(acc, "max", NULL)), q->first ? ROOM_FIRST_PAGE : ROOM_PAGE);
	if (q->first) /* XEP-0059 §2.5: the last page */
		add(set, el(acc, "before", NULL));
	else if (after)
		add_text(acc, add(set, el(acc, "after", NULL)), after);
	a->room = g_strdup(room->jid);
	a->what = g_strdup(q->queryid);
	send_iq(acc, iq, room->jid, room_mam_reply, a, mend_room_ask_free);
}

/* The room whose archive query has this queryid, or NULL. */
static mend_room *room_of_query(mend_account *acc, const char *qid)
{
	GPtrArray *all = mend_room_all(acc);
	mend_room *found = NULL;
	guint i;

	for (i = 0; qid && !found && i < all->len; i++) {
		mend_room *r = all->pdata[i];

		if (r->mam && g_str_equal(r->mam->queryid, qid))
			found = r;
	}
	g_ptr_array_unref(all);
	return found;
}

/* One archived message of the room (its result id is the room's stanza-id). */
static int room_result(mend_account *acc, mend_room *room, xmpp_stanza_t *result)
{
	xmpp_stanza_t *fwd = child(result, "forwarded", NS_FORWARD);
	xmpp_stanza_t *msg = child(fwd, "message", NULL);
	const char *from = msg ? xmpp_stanza_get_from(msg) : NULL;
	const char *slash = from ? strchr(from, '/') : NULL;
	room_in ri = {.msg = msg, .sid = xmpp_stanza_get_id(result), .archived = 1};
	char *bare = slash ? g_strndup(from, (gsize)(slash - from)) : NULL;
	char *nb = bare ? mend_jid_normalize(bare) : NULL;
	int ok = nb && g_str_equal(nb, room->jid), r = 1;

	g_free(bare);
	g_free(nb);
	if (!ri.sid || !ok) {
		mend_log(acc, MEND_LOG_WARNING, "room %s: archived message from '%s' ignored",
		         room->jid, from ? from : "");
		return MEND_ERR_MALFORMED;
	}
	ri.nick = slash + 1;
	ri.history = room->mam->kind == ROOM_HISTORY;
	ri.timestamp = delay_of(fwd);
	if (!ri.timestamp)
		ri.timestamp = iso_now();
	/* the message and the catch-up position commit together */
	if (mend_store_begin(acc->store) == MEND_OK) {
		if (room_encrypted(msg))
			r = room_receive(acc, room, &ri);
		if (!ri.history)
			mend_store_room_position_set(acc->store, room->jid, ri.sid,
			                             unix_of(ri.timestamp));
		mend_store_commit(acc->store);
		mend_trust_flush(acc);
	}
	g_free(ri.timestamp);
	return r;
}

int mend_room_archive_result(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *result, int *r)
{
	mend_room *room = room_of_query(acc, xmpp_stanza_get_attribute(result, "queryid"));
	const char *from = xmpp_stanza_get_from(st);

	if (!room)
		return 0;
	/* XEP-0313 §4.2, DESIGN §3: only the room itself answers for its archive */
	if (!from || strchr(from, '/') || !mend_room_get(acc, from) ||
	    mend_room_get(acc, from) != room) {
		mend_log(acc, MEND_LOG_WARNING,
		         "forged archive result for room %s from %s rejected", room->jid,
		         from ? from : "?");
		*r = MEND_ERR_FORGED;
		return 1;
	}
	*r = room_result(acc, room, result);
	return 1;
}

/* Asks the room's archive for its history since `since` (unix seconds; <0: all). */
static void history_start(mend_account *acc, mend_room *room, int64_t since)
{
	mend_account_catchup_begin(acc);
	acc->room_catchups++;
	room->mam = g_new0(room_mam, 1);
	room->mam->kind = ROOM_HISTORY;
	room->mam->queryid = g_uuid_string_random();
	if (since >= 0)
		room->mam->start = mend_iso_of_unix(since);
	room_mam_send(acc, room, NULL);
}

int mend_room_history(mend_account *acc, const char *room_jid, const char *since)
{
	mend_room *room = mend_room_get(acc, room_jid);
	GDateTime *dt = NULL;
	int64_t t = -1;

	if (!room)
		return MEND_ERR_NOT_FOUND;
	if (since && !(dt = g_date_time_new_from_iso8601(since, NULL)))
		return MEND_ERR_INVALID_ARG;
	if (dt) {
		t = g_date_time_to_unix(dt);
		g_date_time_unref(dt);
	}
	if (!mend_engine_connected(acc))
		return MEND_ERR_NOT_FOUND;
	if (room->mam && (room->mam->kind != ROOM_CATCHUP || room->history_waiting))
		return MEND_ERR_PROTOCOL;
	if (room->mam) { /* after the catch-up, so that it shows what that brought too */
		room->history_waiting = 1;
		room->history_since = t;
		return MEND_OK;
	}
	history_start(acc, room, t);
	return MEND_OK;
}
