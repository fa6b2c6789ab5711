/*
 * rooms.c - mend in Profanity's group chats (XEP-0045 rooms with OMEMO, XEP-0384).
 *
 * Joining: Profanity joins rooms itself. The core is told (mend_account_room_join with
 * MEND_ROOM_CATCHUP) when our join presence goes out (XEP-0045 §7.2: presence to
 * room/nick with <x xmlns='http://jabber.org/protocol/muc'/>), when our own presence
 * comes back (§7.2.2, status code 110), for a room Profanity was in before the plugin
 * loaded (its window focused, or a message from it), and again after every reconnect
 * (Profanity sends the join presence again).
 *
 * Sending: in a room with encryption on, prof_pre_room_message_send never lets Profanity
 * send: the core encrypts (or queues, or HOLDS when members could not read it) and mend
 * prints the line itself. The room reflects the message with the core's origin-id, which
 * Profanity does not know as its own, so the reflection is dropped here (shown once).
 *
 * Receiving: a live message goes on through Profanity and pre_room_message_display swaps
 * the fallback body for the plaintext, with the sending device's trust as the window's
 * message char for that one line (reset after). Profanity shows the room's history replay
 * (<delay/>, §7.2.15) without a display hook, and archive results not at all, so those
 * mend prints itself, with their time.
 *
 * A line for a room whose window Profanity has not drawn yet (the archive can answer
 * before the window exists) waits and is printed, in order, before anything newer.
 */
#include "config.h"

#include <libintl.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "profanity/files.h"
#include "profanity/rooms.h"

#define _(s)          dgettext(GETTEXT_PACKAGE, s)
#define NS_MUC        "http://jabber.org/protocol/muc"
#define NS_MUC_USER   "http://jabber.org/protocol/muc#user"
#define NS_DELAY      "urn:xmpp:delay"
#define MARK_OURS     "~"
#define MARK_PLAIN    "-"
#define MARK_NOTICE   "-"
#define MARK_BROKEN   "x"
#define MARK_HELD     "!"
#define PENDING_MAX   1000 /* lines kept per room while its window does not exist */
#define ENC_ON        "OMEMO"
#define ENC_UNTRUSTED "OMEMO untrusted"
#define ENC_PARTIAL   "OMEMO partial"
#define HISTORY_DAYS  7  /* how far back a room's history goes when it is first joined */
#define LOADING_MAX   30 /* seconds a room's earlier messages wait for the archive at most */

/* A room message mend sent or holds (by id). */
struct waiting {
	char *room;
	char *body;
	int held; /* HELD: waits for /mend send-anyway or /mend drop */
};

/* A line of a room's earlier messages, with its time (ISO 8601) to sort by. */
struct hline {
	char *ts;
	const char *mark;
	char *text;
};

/* A room's catch-up and history, collected while they run and printed sorted at the end. */
struct loading {
	GPtrArray *lines; /* struct hline */
	GHashTable *keys; /* stanza-id (else id) -> its struct hline in lines */
	int asked;        /* the history query went out */
	gint64 started;   /* g_get_monotonic_time() */
};

struct mend_prof_rooms {
	struct mend_prof_rooms_host h;
	mend_account *acc;
	GHashTable *joined;  /* room -> nick: told to the core on this connection */
	GHashTable *want;    /* room -> nick: to tell once the account is open */
	GHashTable *pending; /* room -> GPtrArray of "MARK\tLINE" waiting for the window */
	GHashTable *waiting; /* id -> struct waiting */
	GHashTable *shown;   /* message ids and stanza-ids shown in this session */
	GHashTable *loading; /* room -> struct loading: earlier messages on their way */
	GHashTable *opened;  /* rooms whose history was shown in this session */
	GHashTable *asking;  /* rooms listed by /mend on that wait for their disco#info (ROOM) */
	/* the message stanza being received */
	int rx_active;
	int rx_history; /* the room's history replay: Profanity shows it without a hook */
	char *rx_room;  /* what Profanity is about to show for it (KEEP) */
	char *rx_text;
	const char *rx_mark;
	char *rx_plain_room; /* a plaintext message from this room is about to be shown */
};

static void waiting_free(gpointer p)
{
	struct waiting *w = p;

	g_free(w->room);
	g_free(w->body);
	g_free(w);
}

static void hline_free(gpointer p)
{
	struct hline *l = p;

	g_free(l->ts);
	g_free(l->text);
	g_free(l);
}

static void loading_free(gpointer p)
{
	struct loading *l = p;

	g_hash_table_unref(l->keys);
	g_ptr_array_unref(l->lines);
	g_free(l);
}

mend_prof_rooms *mend_prof_rooms_new(const struct mend_prof_rooms_host *host)
{
	mend_prof_rooms *r = g_new0(mend_prof_rooms, 1);

	r->h = *host;
	r->joined = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	r->want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	r->pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	                                   (GDestroyNotify)g_ptr_array_unref);
	r->waiting = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, waiting_free);
	r->shown = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	r->loading = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, loading_free);
	r->opened = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	r->asking = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return r;
}

static void rx_clear(mend_prof_rooms *r)
{
	g_clear_pointer(&r->rx_room, g_free);
	g_clear_pointer(&r->rx_text, g_free);
	g_clear_pointer(&r->rx_plain_room, g_free);
	r->rx_active = r->rx_history = 0;
}

void mend_prof_rooms_free(mend_prof_rooms *r)
{
	if (!r)
		return;
	rx_clear(r);
	g_hash_table_unref(r->joined);
	g_hash_table_unref(r->want);
	g_hash_table_unref(r->pending);
	g_hash_table_unref(r->waiting);
	g_hash_table_unref(r->shown);
	g_hash_table_unref(r->loading);
	g_hash_table_unref(r->opened);
	g_hash_table_destroy(r->asking);
	g_free(r);
}

/* --- the room window --------------------------------------------------------------- */

/* Prints the lines that waited for `room`'s window; 0 while it still does not exist. */
static int flush_room(mend_prof_rooms *r, const char *room)
{
	GPtrArray *lines = g_hash_table_lookup(r->pending, room);
	guint done = 0;

	for (; lines && done < lines->len; done++) {
		char **mt = g_strsplit(g_ptr_array_index(lines, done), "\t", 2);
		int ok = mt[0] && mt[1] &&
		         r->h.api->room_show_themed(room, NULL, NULL, NULL, mt[0], mt[1]);

		g_strfreev(mt);
		if (!ok)
			break;
	}
	if (lines && done == lines->len)
		g_hash_table_remove(r->pending, room);
	else if (lines)
		g_ptr_array_remove_range(lines, 0, done);
	return !g_hash_table_contains(r->pending, room);
}

static void flush_all(mend_prof_rooms *r)
{
	GList *rooms = g_hash_table_get_keys(r->pending), *l;

	for (l = rooms; l; l = l->next) {
		char *room = g_strdup(l->data);

		flush_room(r, room);
		g_free(room);
	}
	g_list_free(rooms);
}

/* Prints `text` in `room`'s window with `mark` (one character), after what waited. */
static void show_room(mend_prof_rooms *r, const char *room, const char *mark, const char *text)
{
	GPtrArray *lines;

	if (flush_room(r, room) && r->h.api->room_show_themed(room, NULL, NULL, NULL, mark, text))
		return;
	lines = g_hash_table_lookup(r->pending, room);
	if (!lines) {
		lines = g_ptr_array_new_with_free_func(g_free);
		g_hash_table_insert(r->pending, g_strdup(room), lines);
	}
	if (lines->len < PENDING_MAX)
		g_ptr_array_add(lines, g_strconcat(mark, "\t", text, NULL));
}

static void show_roomf(mend_prof_rooms *r, const char *room, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static void show_roomf(mend_prof_rooms *r, const char *room, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	show_room(r, room, MARK_NOTICE, text);
	g_free(text);
}

int mend_prof_rooms_is_on(mend_prof_rooms *r, const char *room)
{
	return room && r->h.listed(MEND_PROF_ROOMS_KEY, room);
}

/* The title bar: whether the room is encrypted, and whether every member can read it. */
static void mark_room(mend_prof_rooms *r, const char *room)
{
	mend_room_member *m = NULL;
	size_t n = 0, i;
	const char *enc = ENC_ON;

	if (!mend_prof_rooms_is_on(r, room)) {
		r->h.api->room_unset_titlebar_enctext(room);
		return;
	}
	if (r->acc && mend_account_room_members(r->acc, room, &m, &n) == MEND_OK) {
		for (i = 0; i < n; i++) {
			if (m[i].n_devices == 0)
				enc = ENC_PARTIAL;
			else if (m[i].n_devices < m[i].n_known && enc == (const char *)ENC_ON)
				enc = ENC_UNTRUSTED;
		}
		mend_room_members_free(m, n);
	}
	r->h.api->room_set_titlebar_enctext(room, enc);
}

static void mark_all(mend_prof_rooms *r)
{
	GHashTableIter it;
	gpointer room;

	g_hash_table_iter_init(&it, r->joined);
	while (g_hash_table_iter_next(&it, &room, NULL))
		mark_room(r, room);
}

/* --- a room's earlier messages ----------------------------------------------------------- */

static gint hline_cmp(gconstpointer a, gconstpointer b)
{
	const struct hline *x = *(struct hline *const *)a, *y = *(struct hline *const *)b;

	return g_strcmp0(x->ts, y->ts);
}

/* The catch-up and the history of `room` ended (or took too long): printed by time. */
static void loading_done(mend_prof_rooms *r, const char *room)
{
	struct loading *l = g_hash_table_lookup(r->loading, room);
	char *key = g_strdup(room);
	guint i;

	if (l) {
		/* a stable sort: lines of one second keep the archive's order */
		g_ptr_array_sort(l->lines, hline_cmp);
		for (i = 0; i < l->lines->len; i++) {
			struct hline *h = g_ptr_array_index(l->lines, i);

			show_room(r, key, h->mark, h->text);
		}
		g_hash_table_remove(r->loading, key);
	}
	g_free(key);
}

/* The room's catch-up ended: its last HISTORY_DAYS come from the archive and mend's store. */
static void loading_history(mend_prof_rooms *r, const char *room)
{
	struct loading *l = g_hash_table_lookup(r->loading, room);
	GDateTime *now, *since;
	char *iso;
	int rc;

	if (!l || l->asked || !r->acc)
		return;
	l->asked = 1;
	now = g_date_time_new_now_utc();
	since = g_date_time_add_days(now, -HISTORY_DAYS);
	iso = g_date_time_format(since, "%Y-%m-%dT%H:%M:%SZ");
	rc = mend_account_history(r->acc, room, iso);
	g_free(iso);
	g_date_time_unref(since);
	g_date_time_unref(now);
	if (rc < 0)
		loading_done(r, room);
}

static void loading_timeouts(mend_prof_rooms *r)
{
	GList *rooms = g_hash_table_get_keys(r->loading), *it;
	gint64 now = g_get_monotonic_time();

	for (it = rooms; it; it = it->next) {
		struct loading *l = g_hash_table_lookup(r->loading, it->data);

		if (l && now - l->started > (gint64)LOADING_MAX * G_USEC_PER_SEC)
			loading_done(r, it->data);
	}
	g_list_free(rooms);
}

/* --- joining ------------------------------------------------------------------------- */

/* The core learns that we are in `room` as `nick` (once per connection). */
static void join(mend_prof_rooms *r, const char *room, const char *nick)
{
	int rc;

	if (!room || !nick || !*nick || g_hash_table_contains(r->joined, room))
		return;
	if (!r->acc) {
		g_hash_table_replace(r->want, g_strdup(room), g_strdup(nick));
		return;
	}
	g_hash_table_remove(r->want, room);
	rc = mend_account_room_join(r->acc, room, nick, MEND_ROOM_CATCHUP);
	if (rc < 0) {
		char *line = g_strdup_printf("mend: joining %s: %s", room, mend_strerror(rc));

		r->h.api->log_warning(line);
		g_free(line);
		return;
	}
	g_hash_table_replace(r->joined, g_strdup(room), g_strdup(nick));
	if (!g_hash_table_contains(r->opened, room)) {
		struct loading *l = g_new0(struct loading, 1);

		l->lines = g_ptr_array_new_with_free_func(hline_free);
		l->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		l->started = g_get_monotonic_time();
		g_hash_table_add(r->opened, g_strdup(room));
		g_hash_table_replace(r->loading, g_strdup(room), l);
	}
	mark_room(r, room);
}

/*
 * XEP-0045 §7.2: a join presence from an occupant already in the room makes the room send
 * the occupant list again (their real JIDs, which the core needs to read their messages);
 * no history (§7.2.15: maxstanzas 0), the archive catch-up brings it.
 */
static void resync(mend_prof_rooms *r, const char *room, const char *nick)
{
	char *to = g_markup_printf_escaped("%s/%s", room, nick);
	char *xml = g_strdup_printf(
	    "<presence to='%s'><x xmlns='" NS_MUC "'><history maxstanzas='0'/></x></presence>", to);

	r->h.api->send_stanza(xml);
	g_free(xml);
	g_free(to);
}

/* A room Profanity is in that the core was not told about (the plugin loaded later). */
static void join_if_in(mend_prof_rooms *r, const char *room)
{
	const char *nick = room ? r->h.api->get_room_nick(room) : NULL;

	if (!nick || !r->acc || g_hash_table_contains(r->joined, room))
		return;
	join(r, room, nick);
	if (g_hash_table_contains(r->joined, room))
		resync(r, room, nick);
}

void mend_prof_rooms_opened(mend_prof_rooms *r, mend_account *acc)
{
	GHashTable *want = r->want;
	GHashTableIter it;
	gpointer room, nick;

	r->acc = acc;
	r->want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_hash_table_iter_init(&it, want);
	while (g_hash_table_iter_next(&it, &room, &nick))
		join(r, room, nick);
	g_hash_table_unref(want);
	join_if_in(r, r->h.api->get_current_muc());
}

void mend_prof_rooms_closed(mend_prof_rooms *r)
{
	r->acc = NULL;
	/* after a reconnect every room is told to the core again */
	g_hash_table_remove_all(r->joined);
	g_hash_table_remove_all(r->asking);
}

void mend_prof_rooms_tick(mend_prof_rooms *r)
{
	loading_timeouts(r);
	flush_all(r);
}

/* room/nick of a stanza from or to an occupant JID; NULL without a resource. */
static char *occupant(mend_prof_rooms *r, const char *full, const char **nick)
{
	const char *slash = full ? strchr(full, '/') : NULL;

	if (!slash || !slash[1])
		return NULL;
	*nick = slash + 1;
	return r->h.norm(full);
}

static int has_status(xmpp_stanza_t *st, const char *code)
{
	xmpp_stanza_t *x = xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_MUC_USER), *c;

	for (c = x ? xmpp_stanza_get_children(x) : NULL; c; c = xmpp_stanza_get_next(c)) {
		const char *name = xmpp_stanza_get_name(c);
		const char *v = xmpp_stanza_get_attribute(c, "code");

		if (name && !strcmp(name, "status") && v && !strcmp(v, code))
			return 1;
	}
	return 0;
}

/* XEP-0045 §7.2.2: our own presence in the room (status 110) says we are in it. */
void mend_prof_rooms_presence_in(mend_prof_rooms *r, xmpp_stanza_t *st)
{
	const char *nick = NULL, *type = st ? xmpp_stanza_get_type(st) : NULL;
	char *room = st ? occupant(r, xmpp_stanza_get_from(st), &nick) : NULL;

	flush_all(r);
	if (room && !type && has_status(st, "110"))
		join(r, room, nick);
	g_free(room);
}

/* Our join presence (§7.2) goes out: the room is told to the core; a leave forgets it. */
void mend_prof_rooms_presence_out(mend_prof_rooms *r, xmpp_stanza_t *st)
{
	const char *nick = NULL, *type = st ? xmpp_stanza_get_type(st) : NULL;
	char *room = st ? occupant(r, xmpp_stanza_get_to(st), &nick) : NULL;

	if (!room)
		return;
	if (!type && xmpp_stanza_get_child_by_name_and_ns(st, "x", NS_MUC)) {
		join(r, room, nick);
	} else if (type && !strcmp(type, "unavailable") &&
	           (g_hash_table_contains(r->joined, room) ||
	            g_hash_table_contains(r->want, room))) {
		/* the user left the room (/leave, /close): the core forgets it (§7.14) */
		if (r->acc && g_hash_table_contains(r->joined, room))
			mend_account_room_leave(r->acc, room, 0);
		g_hash_table_remove(r->joined, room);
		g_hash_table_remove(r->want, room);
	}
	g_free(room);
}

void mend_prof_rooms_trust_changed(mend_prof_rooms *r)
{
	mark_all(r);
}

void mend_prof_rooms_focus(mend_prof_rooms *r, const char *room)
{
	char *n = r->h.norm(room);

	if (n) {
		join_if_in(r, n);
		flush_room(r, n);
		mark_room(r, n);
	}
	g_free(n);
}

/* --- receiving --------------------------------------------------------------------------- */

static int is_groupchat(xmpp_stanza_t *st)
{
	const char *name = st ? xmpp_stanza_get_name(st) : NULL;
	const char *type = st ? xmpp_stanza_get_type(st) : NULL;

	return name && !strcmp(name, "message") && type && !strcmp(type, "groupchat");
}

void mend_prof_rooms_rx_begin(mend_prof_rooms *r, xmpp_stanza_t *st, int active)
{
	const char *nick = NULL;
	char *room;

	rx_clear(r);
	flush_all(r);
	r->rx_active = active;
	if (!is_groupchat(st))
		return;
	/* §7.2.15: the room's history replay carries a delay; Profanity shows it without a
	 * display hook */
	r->rx_history = xmpp_stanza_get_child_by_name_and_ns(st, "delay", NS_DELAY) != NULL;
	room = occupant(r, xmpp_stanza_get_from(st), &nick);
	join_if_in(r, room);
	g_free(room);
}

void mend_prof_rooms_rx_end(mend_prof_rooms *r, xmpp_stanza_t *st, int handled)
{
	const char *nick = NULL;
	char *room;

	r->rx_active = 0;
	if (handled || !is_groupchat(st) || r->rx_history ||
	    !xmpp_stanza_get_child_by_name(st, "body"))
		return;
	/* a plaintext room message Profanity will show: marked as such */
	room = occupant(r, xmpp_stanza_get_from(st), &nick);
	g_free(r->rx_plain_room);
	r->rx_plain_room = room;
}

static int was_shown(mend_prof_rooms *r, const mend_event *ev)
{
	return (ev->id && g_hash_table_contains(r->shown, ev->id)) ||
	       (ev->stanza_id && g_hash_table_contains(r->shown, ev->stanza_id));
}

static void remember_shown(mend_prof_rooms *r, const char *id, const char *stanza_id)
{
	if (id)
		g_hash_table_add(r->shown, g_strdup(id));
	if (stanza_id)
		g_hash_table_add(r->shown, g_strdup(stanza_id));
}

/* The room of an event: its `room`, or a peer we know as a room. */
static const char *room_of(mend_prof_rooms *r, const mend_event *ev)
{
	if (ev->room)
		return ev->room;
	if (ev->peer && (g_hash_table_contains(r->joined, ev->peer) ||
	                 g_hash_table_contains(r->want, ev->peer)))
		return ev->peer;
	return NULL;
}

/* Our nick in `room` (Profanity's, else the one we told the core), or "me". */
static const char *my_nick(mend_prof_rooms *r, const char *room)
{
	const char *nick = r->h.api->get_room_nick(room);

	if (!nick)
		nick = g_hash_table_lookup(r->joined, room);
	return nick ? nick : "me";
}

/* `room: body` as mend prints a message, with its time when it is not live. */
static char *message_line(mend_prof_rooms *r, const char *room, const mend_event *ev,
                          const char *body)
{
	const char *who = ev->outgoing ? (ev->nick ? ev->nick : my_nick(r, room))
	                  : ev->nick   ? ev->nick
	                  : ev->from   ? ev->from
	                               : "?";

	return ev->timestamp && (ev->archived || r->rx_history)
	           ? g_strdup_printf("%s: %s  [%s]", who, body, ev->timestamp)
	           : g_strdup_printf("%s: %s", who, body);
}

/*
 * An earlier message while the room's catch-up and history run. The history query comes
 * last and in the archive's order, so its copy of a message replaces the catch-up's (the
 * times have whole seconds only: the archive's order decides within one).
 */
static void loading_add(mend_prof_rooms *r, struct loading *l, const char *room,
                        const mend_event *ev, const char *mark, const char *body)
{
	const char *key = ev->stanza_id ? ev->stanza_id : ev->id;
	struct hline *old = key ? g_hash_table_lookup(l->keys, key) : NULL, *h;

	if (old && l->asked)
		g_ptr_array_remove(l->lines, old);
	else if (old || was_shown(r, ev))
		return;
	remember_shown(r, ev->id, ev->stanza_id);
	h = g_new0(struct hline, 1);
	h->ts = g_strdup(ev->timestamp ? ev->timestamp : "");
	h->mark = mark;
	h->text = message_line(r, room, ev, body);
	g_ptr_array_add(l->lines, h);
	if (key)
		g_hash_table_replace(l->keys, g_strdup(key), h);
}

static enum mend_prof_room_rx on_message(mend_prof_rooms *r, const char *room, const mend_event *ev,
                                         const char *mark, const char *body)
{
	struct loading *l = g_hash_table_lookup(r->loading, room);
	int live = r->rx_active && !ev->archived && !r->rx_history;
	char *line;

	if (l && !live) {
		loading_add(r, l, room, ev, mark, body);
		return MEND_PROF_ROOM_DROP;
	}
	if (was_shown(r, ev))
		return MEND_PROF_ROOM_DROP; /* our reflection, or replay and archive of one line */
	remember_shown(r, ev->id, ev->stanza_id);
	if (live) {
		/* Profanity shows it with its time and the sender's nick */
		g_free(r->rx_room);
		g_free(r->rx_text);
		r->rx_room = g_strdup(room);
		r->rx_text = g_strdup(body);
		r->rx_mark = mark;
		return MEND_PROF_ROOM_KEEP;
	}
	/* the room's history replay or archive, which Profanity would not show */
	line = message_line(r, room, ev, body);
	show_room(r, room, mark, line);
	g_free(line);
	return MEND_PROF_ROOM_DROP;
}

/* A message that waited (for keys, or HELD) left (SENT) or will not (SEND_FAILED). */
static void on_send_result(mend_prof_rooms *r, const char *room, const mend_event *ev)
{
	struct waiting *w = ev->id ? g_hash_table_lookup(r->waiting, ev->id) : NULL;
	/* a message queued in an earlier session is known by the event's body alone */
	char *desc = !w && ev->file ? mend_prof_file_sent(ev) : NULL; /* XEP-0454 */
	const char *body = w ? w->body : desc ? desc : ev->body;
	char *line;

	if (ev->kind == MEND_EVENT_SEND_FAILED) {
		if (ev->text)
			show_room(r, room, MARK_NOTICE, ev->text);
		if (body)
			show_roomf(r, room, _("NOT sent: %s"), body);
	} else if (body && !(ev->id && g_hash_table_contains(r->shown, ev->id))) {
		line = g_strdup_printf("%s: %s", my_nick(r, room), body);
		show_room(r, room, MARK_OURS, line);
		remember_shown(r, ev->id, NULL);
		g_free(line);
	}
	/* members left out (no usable device) or devices skipped (not trusted) */
	if (ev->kind == MEND_EVENT_SENT && ev->text && *ev->text)
		show_room(r, room, MARK_NOTICE, ev->text);
	if (ev->id)
		g_hash_table_remove(r->waiting, ev->id);
	g_free(desc);
}

static void keep_waiting(mend_prof_rooms *r, const char *id, const char *room, const char *body,
                         int held)
{
	struct waiting *w = g_new0(struct waiting, 1);

	w->room = g_strdup(room);
	w->body = g_strdup(body);
	w->held = held;
	g_hash_table_replace(r->waiting, g_strdup(id), w);
}

/* A message waits for the user: who could not read it, and what to do. */
static void show_held(mend_prof_rooms *r, const char *room, const char *body, const char *why)
{
	show_roomf(r, room, _("NOT sent yet: %s"), body);
	show_room(r, room, MARK_HELD, why ? why : mend_strerror(MEND_ERR_ROOM_PARTIAL));
	show_roomf(r, room,
	           _("/mend send-anyway sends it to the members who can read it; /mend drop "
	             "drops it."));
}

static void on_held(mend_prof_rooms *r, const char *room, const mend_event *ev)
{
	char *desc = ev->file ? mend_prof_file_sent(ev) : NULL; /* a file's link waits */
	const char *body = desc ? desc : ev->body ? ev->body : "";

	if (ev->id)
		keep_waiting(r, ev->id, room, body, 1);
	show_held(r, room, body, ev->text);
	g_free(desc);
}

/* A message: its text, or a file's link (XEP-0454) as a description with /mend save N. */
static enum mend_prof_room_rx on_room_message(mend_prof_rooms *r, const char *room,
                                              const mend_event *ev)
{
	char *desc = ev->file ? mend_prof_file_received(r->h.api, r->acc, ev) : NULL;
	enum mend_prof_room_rx rx =
	    on_message(r, room, ev, ev->outgoing ? MARK_OURS : r->h.trust_mark(ev),
	               desc       ? desc
	               : ev->body ? ev->body
	                          : "");

	g_free(desc);
	return rx;
}

/* The room's state is known (or changed): /mend on waits for it; the title follows. */
static void on_room_state(mend_prof_rooms *r, const char *room, const mend_event *ev)
{
	const char *why = ev->text ? ev->text : mend_strerror(ev->error);

	if (g_hash_table_remove(r->asking, room)) {
		/* listed since /mend on; what waited in the core leaves now or fails (SEND_FAILED)
		 */
		if (ev->error == 0) {
			show_roomf(r, room, _("OMEMO encryption is on for %s."), room);
		} else {
			r->h.unlist(MEND_PROF_ROOMS_KEY, room);
			show_roomf(r, room, _("mend: encryption stays off for %s: %s"), room, why);
		}
	} else if (ev->error < 0 && mend_prof_rooms_is_on(r, room)) {
		show_roomf(r, room,
		           _("mend: %s cannot be encrypted any more: %s Nothing is sent there "
		             "until it can; /mend off sends in plaintext."),
		           room, why);
	}
	mark_room(r, room);
}

enum mend_prof_room_rx mend_prof_rooms_event(mend_prof_rooms *r, const mend_event *ev)
{
	const char *room = room_of(r, ev);
	struct waiting *w = ev->id ? g_hash_table_lookup(r->waiting, ev->id) : NULL;

	if (!room && w)
		room = w->room;
	if (!room) {
		if (ev->kind == MEND_EVENT_DEVICELIST)
			mark_all(r); /* a member's devices may have changed */
		return MEND_PROF_ROOM_NOT;
	}
	switch (ev->kind) {
	case MEND_EVENT_MESSAGE:
		return on_room_message(r, room, ev);
	case MEND_EVENT_UNDECRYPTABLE:
		return on_message(r, room, ev, MARK_BROKEN, ev->text ? ev->text : "");
	case MEND_EVENT_SENT:
	case MEND_EVENT_SEND_FAILED:
		on_send_result(r, room, ev);
		return MEND_PROF_ROOM_DROP;
	case MEND_EVENT_HELD:
		on_held(r, room, ev);
		return MEND_PROF_ROOM_DROP;
	case MEND_EVENT_ROOM:
		on_room_state(r, room, ev);
		return MEND_PROF_ROOM_DROP;
	case MEND_EVENT_NOTICE:
		show_room(r, room, MARK_NOTICE, ev->text ? ev->text : "");
		return MEND_PROF_ROOM_DROP;
	case MEND_EVENT_CATCHUP_DONE:
		loading_history(r, room);
		return MEND_PROF_ROOM_NOT; /* module.c's too */
	case MEND_EVENT_HISTORY_DONE:
		loading_done(r, room);
		return MEND_PROF_ROOM_NOT;
	default:
		return MEND_PROF_ROOM_NOT; /* catch-up done, device lists...: module.c's */
	}
}

int mend_prof_rooms_known(mend_prof_rooms *r, const char *jid)
{
	return jid &&
	       (g_hash_table_contains(r->joined, jid) || g_hash_table_contains(r->want, jid));
}

int mend_prof_rooms_notice(mend_prof_rooms *r, const char *jid, const char *text)
{
	if (!text || !mend_prof_rooms_known(r, jid))
		return 0;
	show_room(r, jid, MARK_NOTICE, text);
	return 1;
}

/*
 * Profanity is about to show a live room message: the text mend decrypted, with its
 * device's trust as the line's mark; a plaintext one in an encrypted room says so.
 */
char *mend_prof_rooms_pre_display(mend_prof_rooms *r, const char *room, const char *nick,
                                  const char *message)
{
	char *n = r->h.norm(room), *out = NULL;

	if (n && r->rx_text && r->rx_room && !strcmp(n, r->rx_room)) {
		r->h.api->room_set_message_char(room, r->rx_mark);
		out = strdup(r->rx_text);
		g_clear_pointer(&r->rx_text, g_free);
		g_clear_pointer(&r->rx_room, g_free);
	} else if (n && r->rx_plain_room && !strcmp(n, r->rx_plain_room)) {
		g_clear_pointer(&r->rx_plain_room, g_free);
		if (mend_prof_rooms_is_on(r, n)) {
			char *s = g_strdup_printf(_("[unencrypted] %s"), message);

			r->h.api->room_set_message_char(room, MARK_PLAIN);
			out = strdup(s);
			g_free(s);
		}
	}
	g_free(n);
	return out;
}

/* The mark was for that one line: the next lines get Profanity's own again. */
void mend_prof_rooms_post_display(mend_prof_rooms *r, const char *room)
{
	r->h.api->room_unset_message_char(room);
}

/* --- sending ------------------------------------------------------------------------------- */

/* Sends `message` encrypted (or queues or holds it) and prints it once it left. */
static void send_encrypted(mend_prof_rooms *r, const char *room, const char *message)
{
	char *stanza = NULL, *id = g_uuid_string_random(), *line;
	int rc = mend_account_room_encrypt_or_queue(r->acc, room, message, id, 0, &stanza);

	if (rc == 0 && !r->h.api->send_stanza(stanza))
		rc = MEND_ERR_PROTOCOL;
	mend_free(stanza);
	if (rc == 0) {
		line = g_strdup_printf("%s: %s", my_nick(r, room), message);
		show_room(r, room, MARK_OURS, line);
		remember_shown(r, id, NULL);
		g_free(line);
	} else if (rc == 1 && g_hash_table_contains(r->waiting, id)) {
		/* HELD already said why it waits */
	} else if (rc == 1) {
		keep_waiting(r, id, room, message, 0);
		show_roomf(r, room,
		           _("Fetching the members' keys; the message is shown here once it left "
		             "encrypted."));
	} else if (rc == MEND_ERR_ROOM_PARTIAL) {
		if (!g_hash_table_contains(r->waiting, id)) { /* no HELD event said it yet */
			keep_waiting(r, id, room, message, 1);
			show_held(r, room, message, NULL);
		}
	} else {
		show_roomf(r, room, _("The message was NOT sent: %s"), mend_strerror(rc));
	}
	g_free(id);
}

/* Typed in a room window: with encryption on, Profanity neither sends nor shows it. */
char *mend_prof_rooms_pre_send(mend_prof_rooms *r, const char *room, const char *message)
{
	char *n = r->h.norm(room);

	if (!n || !mend_prof_rooms_is_on(r, n)) {
		g_free(n);
		return strdup(message);
	}
	if (!r->acc)
		show_roomf(r, n,
		           _("Not connected to OMEMO yet; the message was NOT sent. Try again in a "
		             "moment."));
	else
		send_encrypted(r, n, message);
	g_free(n);
	return NULL;
}

/*
 * XEP-0045 §7.5: a private message goes through the room to one occupant, whose real JID
 * and keys the core's 1:1 path does not know by room/nick: in an encrypted room it is not
 * sent; elsewhere it goes as Profanity sends it.
 */
char *mend_prof_rooms_pre_priv_send(mend_prof_rooms *r, const char *fulljid, const char *message)
{
	char *room = r->h.norm(fulljid);
	int on = mend_prof_rooms_is_on(r, room);

	if (on)
		show_roomf(
		    r, room,
		    _("mend: a private message in %s cannot be encrypted, so it was NOT sent; "
		      "write to the member's own address instead."),
		    room);
	g_free(room);
	return on ? NULL : strdup(message);
}

/* --- /mend in a room window ------------------------------------------------------------------ */

static void replyf(mend_prof_rooms *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void replyf(mend_prof_rooms *r, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	r->h.reply(text);
	g_free(text);
}

static int need_account(mend_prof_rooms *r)
{
	if (!r->acc)
		r->h.reply(_("mend: not connected; connect an account first."));
	return r->acc != NULL;
}

/* /mend on|off in a room: on only where OMEMO can be used (members-only, non-anonymous). */
static void cmd_on_off(mend_prof_rooms *r, const char *room, int on)
{
	int st;

	if (!on) {
		g_hash_table_remove(r->asking, room);
		r->h.unlist(MEND_PROF_ROOMS_KEY, room);
		mark_room(r, room);
		replyf(r, _("OMEMO encryption is off for %s: messages go in plaintext."), room);
		return;
	}
	if (!need_account(r))
		return;
	join_if_in(r, room);
	st = mend_account_room_status(r->acc, room);
	if (st == MEND_OK || st == MEND_ERR_NOT_FOUND) {
		/* listed at once: sends go through the core, which queues them until it knows */
		r->h.unlist(MEND_PROF_ROOMS_KEY, room);
		r->h.api->settings_string_list_add("mend", (char *)MEND_PROF_ROOMS_KEY,
		                                   (char *)room);
		mark_room(r, room);
	}
	if (st == MEND_OK) {
		replyf(r, _("OMEMO encryption is on for %s."), room);
	} else if (st == MEND_ERR_NOT_FOUND) {
		g_hash_table_add(r->asking, g_strdup(room));
		replyf(r,
		       _("mend: asking %s whether it can be encrypted; nothing is sent there "
		         "unencrypted meanwhile."),
		       room);
	} else {
		replyf(r, _("mend: encryption stays off for %s: %s"), room, mend_strerror(st));
	}
}

static void cmd_members(mend_prof_rooms *r, const char *room)
{
	mend_room_member *m = NULL;
	size_t n = 0, i;
	int rc;

	if (!need_account(r))
		return;
	join_if_in(r, room);
	rc = mend_account_room_members(r->acc, room, &m, &n);
	if (rc < 0) {
		replyf(r, "mend: %s", mend_strerror(rc));
		return;
	}
	replyf(r,
	       dngettext(GETTEXT_PACKAGE, "mend: %zu member of %s besides you:",
	                 "mend: %zu members of %s besides you:", n),
	       n, room);
	for (i = 0; i < n; i++) {
		replyf(r,
		       dngettext(GETTEXT_PACKAGE,
		                 "mend: %s (%s, %s, %s): %u of %u device gets your messages",
		                 "mend: %s (%s, %s, %s): %u of %u devices get your messages",
		                 m[i].n_known),
		       m[i].nick ? m[i].nick : "-", m[i].jid,
		       m[i].affiliation ? m[i].affiliation : "none",
		       m[i].present ? _("in the room") : _("away"), m[i].n_devices, m[i].n_known);
		r->h.show_devices(m[i].jid);
	}
	mend_room_members_free(m, n);
}

/* /mend send-anyway|drop [ID]: the room's HELD messages (or the one named). */
static void cmd_release(mend_prof_rooms *r, const char *room, int send, const char *only)
{
	GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter it;
	gpointer id, p;
	guint i;

	if (!need_account(r))
		goto out;
	g_hash_table_iter_init(&it, r->waiting);
	while (g_hash_table_iter_next(&it, &id, &p)) {
		struct waiting *w = p;

		if (w->held && !strcmp(w->room, room) && (!only || !strcmp(only, id)))
			g_ptr_array_add(ids, g_strdup(id));
	}
	if (ids->len == 0)
		r->h.reply(_("mend: no message waits for a decision in this room."));
	for (i = 0; i < ids->len; i++) {
		int rc = mend_account_release(r->acc, g_ptr_array_index(ids, i), send);

		if (rc < 0)
			replyf(r, "mend: %s", mend_strerror(rc));
	}
out:
	g_ptr_array_free(ids, TRUE);
}

int mend_prof_rooms_command(mend_prof_rooms *r, const char *room, char **args)
{
	const char *sub = args[0];
	char *n = r->h.norm(room);
	int done = 1;

	char *arg = args[1] ? r->h.norm(args[1]) : NULL;

	if (!n)
		done = 0;
	else if ((!strcmp(sub, "on") || !strcmp(sub, "off")) && (!args[1] || !g_strcmp0(arg, n)))
		cmd_on_off(r, n, !strcmp(sub, "on"));
	else if (!strcmp(sub, "members"))
		cmd_members(r, n);
	else if (!strcmp(sub, "send-anyway") || !strcmp(sub, "drop"))
		cmd_release(r, n, !strcmp(sub, "send-anyway"), args[1]);
	else
		done = 0;
	g_free(arg);
	g_free(n);
	return done;
}
