/*
 * announce.c - whether the device a message came from is in its owner's
 * published device list (XEP-0384 v0.3 §4.2: a device announces itself
 * there). A message from a device absent from the list we know makes us
 * fetch that list once (per contact and connection) before the message is
 * shown; if the device is still absent, the message is shown with
 * announced = 0, which every host shows as such and never as trusted.
 *
 * While a fetch is outstanding, the events that follow (messages, failures,
 * the end of a history query or catch-up) wait behind it, so the host sees
 * them in the order they came. The wait ends with the list (or its error), or
 * when the stream goes down.
 *
 * Messages and failures reported while a store transaction is open (a catch-up
 * result and its archive position commit together) are kept back until it
 * commits, and dropped if it rolls back (DESIGN §4): a crash before the commit
 * must not leave a message shown whose decryption is undone, or it shows again.
 */
#include "config.h"

#include <string.h>
#include "engine.h"

struct mend_announce {
	GQueue waiting;     /* of mend_event* (deep copies), oldest first */
	GHashTable *asked;  /* jids whose list we fetched for this on this connection */
	GHashTable *open;   /* jids whose fetch is outstanding */
	GQueue uncommitted; /* of mend_event*: reported inside a transaction still open */
};

static struct mend_announce *state(mend_account *acc)
{
	if (!acc->announce) {
		acc->announce = g_new0(struct mend_announce, 1);
		g_queue_init(&acc->announce->waiting);
		g_queue_init(&acc->announce->uncommitted);
		acc->announce->asked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->announce->open = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	}
	return acc->announce;
}

/* The event's strings, copied with it. */
static const size_t event_strings[] = {
    G_STRUCT_OFFSET(mend_event, peer),      G_STRUCT_OFFSET(mend_event, from),
    G_STRUCT_OFFSET(mend_event, body),      G_STRUCT_OFFSET(mend_event, timestamp),
    G_STRUCT_OFFSET(mend_event, stanza_id), G_STRUCT_OFFSET(mend_event, id),
    G_STRUCT_OFFSET(mend_event, text),      G_STRUCT_OFFSET(mend_event, room),
    G_STRUCT_OFFSET(mend_event, nick),
};

static const char **event_string(const mend_event *ev, size_t i)
{
	return (const char **)G_STRUCT_MEMBER_P(ev, event_strings[i]);
}

/* A deep copy in one block, the event and then its strings: a catch-up page copies each of
 * its events, and nine allocations for one showed in its profile. */
static mend_event *event_copy(const mend_event *ev)
{
	size_t i, n = sizeof(*ev), len[G_N_ELEMENTS(event_strings)];
	const char *from;
	mend_event *c;
	char *p;

	for (i = 0; i < G_N_ELEMENTS(event_strings); i++) {
		from = *event_string(ev, i);
		len[i] = from ? strlen(from) + 1 : 0;
		n += len[i];
	}
	c = g_malloc(n);
	memcpy(c, ev, sizeof(*ev));
	p = (char *)(c + 1);
	for (i = 0; i < G_N_ELEMENTS(event_strings); i++) {
		from = *event_string(ev, i);
		*event_string(c, i) = from ? memcpy(p, from, len[i]) : NULL;
		p += len[i];
	}
	return c;
}

static void event_free(gpointer p)
{
	mend_event *ev = p;

	if (ev->body)
		explicit_bzero((char *)ev->body, strlen(ev->body));
	g_free(ev);
}

void mend_announce_free(struct mend_announce *a)
{
	if (!a)
		return;
	g_queue_clear_full(&a->waiting, event_free);
	g_queue_clear_full(&a->uncommitted, event_free);
	g_hash_table_destroy(a->asked);
	g_hash_table_destroy(a->open);
	g_free(a);
}

/*
 * Whether device `device` of `jid` is in the device list we know (this device
 * always is). Before any list of jid is known there is nothing to compare with,
 * and a first list from the same server would tell nothing more: yes.
 */
static int listed(mend_account *acc, const char *jid, uint32_t device)
{
	uint32_t *ids = NULL;
	size_t n = 0, i;
	int found = is_own_bare(acc, jid) && device == acc->device_id;

	if (!found && mend_store_devicelist_get(acc->store, jid, &ids, &n) == MEND_OK)
		for (i = 0, found = n == 0; i < n && !found; i++)
			found = ids[i] == device;
	g_free(ids);
	return found;
}

/* Whether a message's device is in the list we know now (a plaintext one: yes). */
static int announced(mend_account *acc, const mend_event *ev)
{
	return ev->from && !ev->plaintext ? listed(acc, ev->from, ev->device) : 1;
}

/* Hands an event to the host; a MESSAGE with `announced` set from the list we know now
 * (fresh: set just now by emit_now, else looked up again: a list may have come meanwhile). */
static void deliver(mend_account *acc, mend_event *ev, int fresh)
{
	mend_file_link *file = NULL;

	if (ev->kind == MEND_EVENT_MESSAGE && !fresh)
		ev->announced = announced(acc, ev);
	/* XEP-0454: a body that is one aesgcm:// link is a file (encrypted messages only) */
	if ((ev->kind == MEND_EVENT_MESSAGE || ev->kind == MEND_EVENT_SENT) && ev->body &&
	    !ev->plaintext && mend_file_link_parse(ev->body, &file) == MEND_OK)
		ev->file = file;
	if (acc->ops.event)
		acc->ops.event(ev, acc->user_data);
	if (ev->kind == MEND_EVENT_MESSAGE)
		mend_store_kill_point(acc->store, "shown"); /* the crash test's */
	mend_shown_done(acc, ev);
	ev->file = NULL;
	mend_file_link_free(file);
}

/* Whether events of this kind keep their order behind a message that waits. */
static int ordered(mend_event_kind kind)
{
	return kind == MEND_EVENT_MESSAGE || kind == MEND_EVENT_UNDECRYPTABLE ||
	       kind == MEND_EVENT_HISTORY_DONE || kind == MEND_EVENT_CATCHUP_DONE;
}

/* Whether a message must wait for a fresh list of its sender's devices (starting the fetch). */
static int must_wait(mend_account *acc, const mend_event *ev)
{
	struct mend_announce *a = state(acc);

	if (ev->kind != MEND_EVENT_MESSAGE || !ev->from || ev->plaintext || ev->announced)
		return 0;
	if (g_hash_table_contains(a->open, ev->from))
		return 1;
	if (g_hash_table_contains(a->asked, ev->from) || !mend_engine_connected(acc))
		return 0;
	g_hash_table_add(a->asked, g_strdup(ev->from));
	if (mend_account_refresh_devices(acc, ev->from) < 0)
		return 0;
	mend_log(acc, MEND_LOG_INFO, "%s device %u is not in its list: fetching the list once",
	         ev->from, ev->device);
	g_hash_table_add(a->open, g_strdup(ev->from));
	return 1;
}

static void emit_now(mend_account *acc, const mend_event *ev)
{
	struct mend_announce *a = state(acc);
	mend_event copy;

	copy = *ev;
	if (copy.kind == MEND_EVENT_MESSAGE) /* looked up once for both questions */
		copy.announced = announced(acc, &copy);
	if (ordered(ev->kind) && (must_wait(acc, &copy) || !g_queue_is_empty(&a->waiting))) {
		g_queue_push_tail(&a->waiting, event_copy(ev));
		return;
	}
	deliver(acc, &copy, 1);
}

void mend_announce_emit(mend_account *acc, const mend_event *ev)
{
	if ((ev->kind == MEND_EVENT_MESSAGE || ev->kind == MEND_EVENT_UNDECRYPTABLE) &&
	    mend_store_depth(acc->store) > 0)
		g_queue_push_tail(&state(acc)->uncommitted, event_copy(ev));
	else
		emit_now(acc, ev);
}

/* Delivers waiting events from the oldest until one still waits for its list. */
static void drain(mend_account *acc, int all)
{
	struct mend_announce *a = state(acc);
	mend_event *ev;

	while ((ev = g_queue_peek_head(&a->waiting))) {
		if (!all && ev->kind == MEND_EVENT_MESSAGE && ev->from &&
		    g_hash_table_contains(a->open, ev->from))
			break;
		g_queue_pop_head(&a->waiting);
		deliver(acc, ev, 0);
		event_free(ev);
	}
}

void mend_announce_list_arrived(mend_account *acc, const char *jid)
{
	if (!acc->announce || !g_hash_table_remove(acc->announce->open, jid))
		return;
	drain(acc, 0);
}

void mend_announce_disconnected(mend_account *acc)
{
	if (!acc->announce)
		return;
	g_hash_table_remove_all(acc->announce->open);
	drain(acc, 1);
	g_hash_table_remove_all(acc->announce->asked);
}

void mend_announce_hand_over(mend_account *acc, GQueue *batch)
{
	mend_event *ev;

	/* the notes of what the host was handed (shown.c) go in one commit */
	mend_store_begin(acc->store);
	while ((ev = g_queue_pop_head(batch))) {
		emit_now(acc, ev);
		event_free(ev);
	}
	mend_shown_settle(acc);
	mend_store_commit(acc->store);
}

void mend_announce_txn_end(int committed, void *data)
{
	mend_account *acc = data;
	GQueue batch = G_QUEUE_INIT;

	if (!committed)
		mend_shown_page_drop(acc);
	if (g_queue_is_empty(&state(acc)->uncommitted))
		return;
	/* taken first: what the host does with them may open and end other transactions */
	batch = state(acc)->uncommitted;
	g_queue_init(&state(acc)->uncommitted);
	if (!committed) {
		g_queue_clear_full(&batch, event_free);
		return;
	}
	mend_announce_hand_over(acc, &batch);
}

mend_event *mend_event_copy(const mend_event *ev)
{
	return event_copy(ev);
}

void mend_event_free(gpointer ev)
{
	event_free(ev);
}
