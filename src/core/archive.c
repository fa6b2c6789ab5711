/*
 * archive.c - catching up from our archive and reading a conversation's
 * history (XEP-0313 MAM, paged with XEP-0059 RSM).
 *
 * A catch-up starts on connect from the last archive id we processed (or, if
 * the archive no longer knows it, from the time of the last one). Until it
 * ends, used one-time prekeys stay (DESIGN §3).
 *
 * A page of results is one transaction (a store batch): what decrypting each
 * result changed (ratchet state, history row, dedupe mark) and the position
 * after it commit together when the page's <fin/> comes (or after PAGE_MAX
 * results, at a tick once it is PAGE_SECONDS old, or before any other work opens a
 * transaction). A catch-up's page spans the server's pages (spans(): Prosody
 * pages by 50 at most, and every commit writes the senders' sessions, the
 * history's last pages, a page of the history's key index per message with
 * random archive ids, and the position again). The page's events wait until
 * then: a crash mid-page leaves the position before the page and
 * nothing shown, so the page is fetched again, decrypts again, and each
 * message is shown once. The position is written once a page, as it commits,
 * whatever commits it (page_closing): other work that opens a transaction
 * commits the open page first, with its position.
 *
 * A catch-up page's results run without a savepoint each (mend_store_batch_lazy): a
 * result that fails after writing something cannot be undone alone, so its whole page
 * is lost and asked again at once from the stored position, this time with a savepoint
 * per result (`careful`, until a page commits).
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "engine.h"
#include "room.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define MAM_PAGE "250"
#define PAGE_MAX MEND_CATCHUP_PAGE_MAX /* results per commit at most (internal.h) */
/* The bodies a page's events hold until it commits, at most (each may be 1 MiB) */
#define PAGE_BYTES MEND_CATCHUP_PAGE_BYTES
/* After an archive error the catch-up pauses: 10 s, doubling up to 5 minutes. */
#define MAM_RETRY_FIRST 10
#define MAM_RETRY_MAX   300
/* How long a page stays open at most (its events wait, another process's writes wait):
 * it commits at the first tick after that (mend_archive_tick). */
#define PAGE_SECONDS 1

enum mam_kind { MAM_CATCHUP = 1, MAM_HISTORY = 2 };

typedef struct mend_mam_query {
	enum mam_kind kind;
	char *queryid;
	char *with;
	char *start;
	char *unknown;      /* a position the archive said it does not know */
	int64_t retry_at;   /* paused by an archive error until then (0: running) */
	unsigned failures;  /* errors in a row */
	unsigned predating; /* messages from before this device was announced (not for it) */
	GQueue held;        /* of mend_event*: the open page's events, until it commits */
	unsigned page_n;    /* results in the open page */
	size_t page_bytes;  /* the bodies of its events in `held` */
	int page_failed;    /* a page's commit failed: its results must be fetched again */
	char *pos_id;       /* the open page's last result: stored once, as the page commits */
	int64_t pos_ts;
	int careful;   /* a savepoint per result: a lazy page was lost (until a page commits) */
	int page_lost; /* the page failed for a lazy undo only: asked again at once, carefully */
	int64_t page_since; /* when the open page began (0: none open) */
} mam_query;

/* The open page takes no more results: it commits before the next (PAGE_MAX, PAGE_BYTES). */
static int page_full(const mam_query *q)
{
	return q->page_n >= PAGE_MAX || q->page_bytes >= PAGE_BYTES;
}

static void mam_free(mam_query *q)
{
	if (!q)
		return;
	g_queue_clear_full(&q->held, mend_event_free);
	g_free(q->queryid);
	g_free(q->with);
	g_free(q->start);
	g_free(q->unknown);
	g_free(q->pos_id);
	g_free(q);
}

int mend_archive_defer(mend_account *acc, const mend_event *ev)
{
	if (!acc->mam || !mend_store_batch_open(acc->store))
		return 0;
	g_queue_push_tail(&acc->mam->held, mend_event_copy(ev));
	acc->mam->page_bytes += ev->body ? strlen(ev->body) : 0;
	return 1;
}

/* The page's transaction ended: its events go to the host, or (it failed) nowhere. */
static void page_done(void *data, int rc)
{
	mend_account *acc = data;

	if (!acc->mam)
		return;
	acc->mam->page_n = 0;
	acc->mam->page_bytes = 0;
	acc->mam->page_since = 0;
	if (rc < 0) {
		g_clear_pointer(&acc->mam->pos_id, g_free); /* not stored: the page comes again */
		acc->mam->page_lost = mend_store_batch_lost(acc->store);
		if (acc->mam->page_lost)
			mend_log(acc, MEND_LOG_INFO,
			         "a result of the catch-up page could not be undone "
			         "alone; the page is asked again");
		else
			mend_log(acc, MEND_LOG_WARNING,
			         "catch-up page not stored (%s); it is asked again",
			         mend_strerror(rc));
		acc->mam->page_failed = 1;
		g_queue_clear_full(&acc->mam->held, mend_event_free);
		return;
	}
	acc->mam->careful = 0;
	mend_announce_hand_over(acc, &acc->mam->held);
}

/* The catch-up position after the results taken so far (in the open page's transaction). */
static void position_store(mend_account *acc)
{
	char ts[24];

	if (!acc->mam->pos_id)
		return;
	mend_store_meta_set(acc->store, "mam_last", acc->mam->pos_id);
	g_snprintf(ts, sizeof(ts), "%" G_GINT64_FORMAT, acc->mam->pos_ts);
	mend_store_meta_set(acc->store, "mam_last_ts", ts);
	g_clear_pointer(&acc->mam->pos_id, g_free);
}

/* The page's last writes, inside it, whoever ends it: the position after its results and
 * the notes of its messages (shown.c). */
static int page_closing(void *data)
{
	mend_account *acc = data;

	if (acc->mam)
		position_store(acc);
	return mend_shown_page_write(acc);
}

/* Commits the open page (if any) and delivers its events; 1 when a page was lost. */
static int page_end(mend_account *acc)
{
	int failed;

	mend_store_batch_end(acc->store); /* its position with it (page_closing) */
	failed = acc->mam->page_failed;
	acc->mam->page_failed = 0;
	return failed;
}

void mend_archive_reset(mend_account *acc)
{
	if (acc->mam)
		page_end(acc);
	mam_free(acc->mam);
	acc->mam = NULL;
}

void mend_archive_close(mend_account *acc)
{
	if (acc->store && mend_store_batch_open(acc->store))
		mend_store_rollback(acc->store);
	mend_archive_reset(acc);
}

static void mam_send(mend_account *acc, const char *after);

char *mend_iso_of_unix(int64_t t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");

	g_date_time_unref(dt);
	return s;
}

/* Where a catch-up starts when it has no archive id: when we last saw one, or our birth. */
static char *catchup_since(mend_account *acc)
{
	char *v = NULL;
	int64_t t = mend_now(acc);

	if (mend_store_meta_get(acc->store, "mam_last_ts", &v) == MEND_OK ||
	    mend_store_meta_get(acc->store, "created", &v) == MEND_OK)
		t = g_ascii_strtoll(v, NULL, 10);
	g_free(v);
	/* Prosody's start filter has one-second resolution (DESIGN §8) */
	return mend_iso_of_unix(t - 1);
}

/* (Re)asks the archive from the stored position: after the last id, else by time. */
static void catchup_query(mend_account *acc)
{
	char *last = NULL;

	g_free(acc->mam->queryid);
	acc->mam->queryid = g_uuid_string_random();
	acc->mam->retry_at = 0;
	if (mend_store_meta_get(acc->store, "mam_last", &last) == MEND_OK &&
	    g_strcmp0(last, acc->mam->unknown) == 0)
		g_clear_pointer(&last, g_free);
	if (!last && !acc->mam->start)
		acc->mam->start = catchup_since(acc);
	mam_send(acc, last);
	g_free(last);
}

void mend_archive_catchup_start(mend_account *acc)
{
	mend_account_catchup_begin(acc);
	mend_shown_replay(acc); /* what a crash kept from the host comes first */
	acc->mam = g_new0(mam_query, 1);
	acc->mam->kind = MAM_CATCHUP;
	catchup_query(acc);
}

void mend_archive_poll(mend_account *acc)
{
	if (acc->mam && acc->mam->retry_at && mend_now(acc) >= acc->mam->retry_at) {
		mend_log(acc, MEND_LOG_INFO, "asking the archive again (attempt %u)",
		         acc->mam->failures + 1);
		catchup_query(acc);
	}
}

void mend_archive_tick(mend_account *acc)
{
	int64_t since = acc->mam ? acc->mam->page_since : 0, now = mend_now(acc);

	/* the open page is old (the server's next page is late): it commits and is shown. On
	 * the host's timer, not per stanza: a page is never cut by the clock mid-burst. */
	if (since && (now < since || now - since >= PAGE_SECONDS))
		acc->mam->page_failed = page_end(acc);
	mend_archive_poll(acc);
}

/* Once a catch-up ends: the messages that predate this device, in one line. */
static void predating_summary(mend_account *acc, unsigned n)
{
	mend_event ev = {.kind = MEND_EVENT_NOTICE, .trust = -1};
	char *text;

	if (!n)
		return;
	text = g_strdup_printf(dngettext(GETTEXT_PACKAGE,
	                                 "%u earlier message was sent before this device was "
	                                 "announced, so it was not encrypted for it; read it on "
	                                 "another device.",
	                                 "%u earlier messages were sent before this device was "
	                                 "announced, so they were not encrypted for it; read them "
	                                 "on another device.",
	                                 n),
	                       n);
	ev.text = text;
	emit(acc, &ev);
	g_free(text);
}

/* When others could first know this device (its first READY; not yet: now). A message
 * stamped in that very second may predate it: seconds are all a delay stamp has. */
static int64_t announced(mend_account *acc)
{
	char *v = NULL;
	int64_t t = mend_now(acc);

	if (mend_store_meta_get(acc->store, "announced", &v) == MEND_OK)
		t = g_ascii_strtoll(v, NULL, 10);
	g_free(v);
	return t;
}

void mend_archive_ready(mend_account *acc)
{
	char *v = NULL, now[24];

	if (mend_store_meta_get(acc->store, "announced", &v) == MEND_OK) {
		g_free(v);
		return;
	}
	g_snprintf(now, sizeof(now), "%" G_GINT64_FORMAT, mend_now(acc));
	mend_store_meta_set(acc->store, "announced", now);
}

int mend_archive_quiet(mend_account *acc, int error, int64_t ts)
{
	if (!acc->mam || acc->mam->kind != MAM_CATCHUP || error != MEND_ERR_NOT_FOR_THIS_DEVICE ||
	    ts > announced(acc))
		return 0;
	acc->mam->predating++;
	return 1;
}

static void mam_finish(mend_account *acc, int err)
{
	mend_event ev = {.error = err, .trust = -1};
	unsigned predating;

	page_end(acc);
	predating = acc->mam->predating;

	ev.kind = acc->mam->kind == MAM_CATCHUP ? MEND_EVENT_CATCHUP_DONE : MEND_EVENT_HISTORY_DONE;
	mam_free(acc->mam);
	acc->mam = NULL;
	mend_account_catchup_end(acc);
	if (err)
		mend_log(acc, MEND_LOG_WARNING, "archive query failed: %s", mend_strerror(err));
	predating_summary(acc, predating);
	emit(acc, &ev);
	mend_repair_flush(acc); /* repairs and heartbeats wait for the end of catch-up */
}

static const char *fin_last(xmpp_stanza_t *fin)
{
	xmpp_stanza_t *last = child(child(fin, "set", NS_RSM), "last", NULL);

	return last ? xmpp_stanza_get_text_ptr(xmpp_stanza_get_children(last)) : NULL;
}

/* RFC 6120 §8.3.3: the defined condition of an IQ error, or "" when there is none. */
static const char *error_condition(xmpp_stanza_t *iq)
{
	xmpp_stanza_t *c = xmpp_stanza_get_children(child(iq, "error", NULL));

	for (; c; c = xmpp_stanza_get_next(c))
		if (xmpp_stanza_get_name(c) &&
		    g_strcmp0(xmpp_stanza_get_ns(c), "urn:ietf:params:xml:ns:xmpp-stanzas") == 0)
			return xmpp_stanza_get_name(c);
	return "";
}

int64_t mend_archive_retry_delay(unsigned failures)
{
	int64_t delay = MAM_RETRY_FIRST;

	for (unsigned i = 0; i < failures && delay < MAM_RETRY_MAX; i++)
		delay *= 2;
	return MIN(delay, MAM_RETRY_MAX);
}

/*
 * The archive answered a catch-up page with an error. The catch-up has not
 * ended: the position and the used one-time prekeys stay (DESIGN §3), and
 * the same query is asked again later (mend_archive_poll, on the next connect).
 */
static void catchup_pause(mend_account *acc, const char *condition)
{
	mam_query *q = acc->mam;
	int64_t delay = MAM_RETRY_FIRST;
	mend_event ev = {.kind = MEND_EVENT_NOTICE, .trust = -1};
	char *text;

	delay = mend_archive_retry_delay(q->failures);
	q->failures++;
	q->retry_at = mend_now(acc) + delay;
	mend_log(acc, MEND_LOG_WARNING,
	         "archive error (%s); catch-up paused, retry in %" G_GINT64_FORMAT " s",
	         *condition ? condition : "no condition", delay);
	text = g_strdup_printf(_("The server's archive answered with an error (%s); catching up "
	                         "again in %d seconds. Messages that came while you were offline "
	                         "may be missing until then."),
	                       *condition ? condition : _("no reason given"), (int)delay);
	ev.text = text;
	emit(acc, &ev);
	g_free(text);
}

/*
 * Whether the open page stays open across the server's next page (a catch-up's <fin/> that
 * is not its last): when every result up to `last` is in it, nothing of it failed, and it
 * holds fewer than PAGE_MAX results. The position is then stored as the page commits.
 */
static int spans(mend_account *acc, int ok, int complete, const char *last)
{
	const mam_query *q = acc->mam;

	return ok && !complete && last && q->kind == MAM_CATCHUP && !q->careful &&
	       !q->page_failed && !page_full(q) && mend_store_batch_open(acc->store) &&
	       g_strcmp0(q->pos_id, last) == 0;
}

static void mam_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	xmpp_stanza_t *fin = child(iq, "fin", NS_MAM);
	const char *complete = fin ? xmpp_stanza_get_attribute(fin, "complete") : NULL;
	const char *last = fin_last(fin);
	int done = complete && (g_str_equal(complete, "true") || g_str_equal(complete, "1"));
	int failed;

	if (!acc->mam || !g_str_equal(acc->mam->queryid, (const char *)data))
		return;
	if (spans(acc, ok, done, last)) {
		acc->mam->failures = 0;
		mam_send(acc, last);
		return;
	}
	failed = page_end(acc);
	if (failed && acc->mam->page_lost && acc->mam->kind == MAM_CATCHUP) {
		acc->mam->page_lost = 0;
		acc->mam->careful = 1;
		catchup_query(acc); /* at once: nothing failed but the lazy shortcut */
		return;
	}
	if (failed) { /* results of this query were not stored: from the position again */
		if (acc->mam->kind == MAM_CATCHUP)
			catchup_pause(acc, "local store");
		else
			mam_finish(acc, MEND_ERR_STORE);
		return;
	}
	if (!ok && acc->mam->kind == MAM_CATCHUP && !acc->mam->start &&
	    g_str_equal(error_condition(iq), "item-not-found")) {
		/* XEP-0313 §5.1: the archive no longer knows our last id: go by time instead */
		mend_log(acc, MEND_LOG_INFO, "archive position unknown; catching up by time");
		acc->mam->start = catchup_since(acc);
		g_free(acc->mam->unknown);
		acc->mam->unknown = NULL;
		mend_store_meta_get(acc->store, "mam_last", &acc->mam->unknown);
		mam_send(acc, NULL);
		return;
	}
	if (!ok && acc->mam->kind == MAM_CATCHUP) {
		catchup_pause(acc, error_condition(iq));
		return;
	}
	if (!ok) {
		mam_finish(acc, MEND_ERR_PROTOCOL);
		return;
	}
	acc->mam->failures = 0;
	if (last && acc->mam->kind == MAM_CATCHUP)
		mend_store_meta_set(acc->store, "mam_last", last);
	if (done)
		mam_finish(acc, 0);
	else if (last)
		mam_send(acc, last);
	else
		mam_finish(acc, 0);
}

static void mam_send(mend_account *acc, const char *after)
{
	mam_query *q = acc->mam;
	xmpp_stanza_t *iq = iq_new(acc, "set"), *query, *x, *set;

	query = add(iq, el(acc, "query", NS_MAM));
	xmpp_stanza_set_attribute(query, "queryid", q->queryid);
	x = add(query, form(acc, NS_MAM, q->with ? "with" : NULL, q->with));
	if (q->start)
		add_field(acc, x, "start", NULL, q->start);
	set = add(query, el(acc, "set", NS_RSM));
	add_text(acc, add(set, el(acc, "max", NULL)), MAM_PAGE);
	if (after)
		add_text(acc, add(set, el(acc, "after", NULL)), after);
	send_iq(acc, iq, NULL, mam_reply, g_strdup(q->queryid), g_free);
}

/* XEP-0313 §4.2: results of our own query, from our own archive only. */
int mend_archive_handle_result(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *result)
{
	xmpp_stanza_t *fwd = child(result, "forwarded", NS_FORWARD);
	const char *qid = xmpp_stanza_get_attribute(result, "queryid");
	const char *from = xmpp_stanza_get_from(st);
	inbound in = {.msg = child(fwd, "message", NULL), .archived = 1};
	int batch, r;

	if (!acc->mam || !qid || !g_str_equal(qid, acc->mam->queryid))
		return 0; /* the host's own query */
	if (from && !is_own_bare(acc, from)) {
		mend_log(acc, MEND_LOG_WARNING, "archive result from %s rejected", from);
		return MEND_ERR_FORGED;
	}
	in.archive_id = xmpp_stanza_get_id(result);
	in.history = acc->mam->kind == MAM_HISTORY;
	if (!in.msg || !in.archive_id)
		return MEND_ERR_MALFORMED;
	if (acc->mam->page_failed)
		return 1; /* a result after a lost one: its page is asked again at the <fin/> */
	/* the message and the catch-up position commit together, with the rest of the page */
	if (page_full(acc->mam))
		page_end(acc);
	r = mend_store_batch_begin(acc->store, page_done, acc);
	batch = r == MEND_OK; /* else inside a transaction already: a part of it */
	if (batch)
		mend_store_batch_closing(acc->store, page_closing);
	if (!batch && (r != MEND_ERR_INVALID_ARG || mend_store_begin(acc->store) < 0))
		return MEND_ERR_STORE;
	mend_store_batch_nest(acc->store, batch);
	if (batch && !acc->mam->page_n)
		acc->mam->page_since = mend_now(acc);
	if (batch)
		mend_store_batch_lazy(acc->store,
		                      acc->mam->kind == MAM_CATCHUP && !acc->mam->careful);
	acc->mam->page_n += batch;
	in.timestamp = delay_of(fwd);
	if (!in.timestamp)
		in.timestamp = iso_now();
	process_encrypted(acc, &in);
	mend_store_kill_point(acc->store, "result"); /* the crash test's */
	if (!in.history) { /* stored as the page commits (page_end), or now, in the caller's */
		g_free(acc->mam->pos_id);
		acc->mam->pos_id = g_strdup(in.archive_id);
		acc->mam->pos_ts = unix_of(in.timestamp);
	}
	if (!batch)
		position_store(acc);
	if (batch)
		mend_store_batch_nest(acc->store, 0);
	else
		mend_store_commit(acc->store);
	/* lost: ended now, failed (page_done); the rest of the page waits for it to come again */
	if (batch && mend_store_batch_lost(acc->store))
		acc->mam->page_failed = page_end(acc);
	mend_trust_flush(acc);
	g_free(in.timestamp);
	return 1;
}

int mend_account_history(mend_account *acc, const char *with, const char *since)
{
	GDateTime *dt = NULL;

	if (!with || strchr(with, '/'))
		return MEND_ERR_INVALID_ARG;
	if (since && !(dt = g_date_time_new_from_iso8601(since, NULL)))
		return MEND_ERR_INVALID_ARG;
	if (mend_room_get(acc, with)) { /* a room's own archive (room_msg.c) */
		if (dt)
			g_date_time_unref(dt);
		return mend_room_history(acc, with, since);
	}
	if (!mend_engine_connected(acc) || acc->mam) {
		if (dt)
			g_date_time_unref(dt);
		return mend_engine_connected(acc) ? MEND_ERR_PROTOCOL : MEND_ERR_NOT_FOUND;
	}
	mend_account_catchup_begin(acc);
	acc->mam = g_new0(mam_query, 1);
	acc->mam->kind = MAM_HISTORY;
	acc->mam->queryid = g_uuid_string_random();
	acc->mam->with = g_strdup(with);
	if (dt) {
		acc->mam->start = mend_iso_of_unix(g_date_time_to_unix(dt));
		g_date_time_unref(dt);
	}
	mam_send(acc, NULL);
	return MEND_OK;
}
