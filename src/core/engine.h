/*
 * engine.h - what the protocol engine (engine.c) shares with the modules
 * split from it (archive.c): stanza builders, IQ tracking, events and the
 * receive path. Nothing here is seen by a host.
 */
#ifndef MEND_CORE_ENGINE_H
#define MEND_CORE_ENGINE_H

#include "internal.h"

#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_MAM     "urn:xmpp:mam:2"
#define NS_RSM     "http://jabber.org/protocol/rsm"

/* The reply to an IQ we sent: ok = type "result", else an error or our own timeout. */
typedef void (*iq_cb)(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data);

/* What came with an encrypted message besides the message itself. */
typedef struct inbound {
	xmpp_stanza_t *msg;     /* the <message/> with <encrypted/> (inner one for carbons/MAM) */
	const char *archive_id; /* the MAM result id: our archive's stanza-id of it */
	char *timestamp;        /* ISO 8601 UTC */
	mend_carbon carbon;
	int archived;
	int history; /* answering a history query: serve local copies */
	/* group chats (room.c): the room's bare JID and the sender's nick, else NULL; in->msg's
	 * from is then the sender's real JID and archive_id the room's stanza-id */
	const char *room;
	const char *nick;
} inbound;

/* --- stanza helpers (engine.c) --- */
xmpp_stanza_t *el(mend_account *acc, const char *name, const char *ns);
/* Adds `child` to `parent`, giving up our reference; returns the child. */
xmpp_stanza_t *add(xmpp_stanza_t *parent, xmpp_stanza_t *child);
void add_text(mend_account *acc, xmpp_stanza_t *parent, const char *text);
/* <field var=VAR [type=TYPE]><value>VALUE</value></field> */
void add_field(mend_account *acc, xmpp_stanza_t *x, const char *var, const char *type,
               const char *value);
/* A data form (XEP-0004) of type submit with FORM_TYPE and one more field. */
xmpp_stanza_t *form(mend_account *acc, const char *form_type, const char *var, const char *value);
/* mend_child(), NULL-safe. */
xmpp_stanza_t *child(xmpp_stanza_t *st, const char *name, const char *ns);
int is_own_bare(mend_account *acc, const char *jid);
void emit(mend_account *acc, const mend_event *ev);
/* shown.c: a message of local history that a crash kept from the host, shown as archived. */
void mend_engine_show_kept(mend_account *acc, const mend_history_item *it);
/* Sends `iq` (consumed) to `to` (NULL: our account) and calls cb with its reply. */
void send_iq(mend_account *acc, xmpp_stanza_t *iq, const char *to, iq_cb cb, void *data,
             GDestroyNotify free_data);
xmpp_stanza_t *iq_new(mend_account *acc, const char *type);
/* Time: now, a XEP-0203 <delay/> under `holder` (NULL if none), ISO 8601 to unix. */
char *iso_now(void);
char *delay_of(xmpp_stanza_t *holder);
/* An ISO 8601 date and time in the form above (UTC, whole seconds); NULL if not one. */
char *mend_iso_utc(const char *stamp);
int64_t unix_of(const char *iso);
/* ISO 8601 UTC of unix seconds (archive.c). g_free. */
char *mend_iso_of_unix(int64_t t);
/* Decrypts, dedupes, stores and emits one inbound encrypted message. */
int process_encrypted(mend_account *acc, const inbound *in);
int mend_engine_connected(mend_account *acc);

/* --- the archive (archive.c, XEP-0313) --- */
/* Catches up from where the last catch-up left (on connect). */
void mend_archive_catchup_start(mend_account *acc);
/* A <result/> of our own archive query; 0 when it is not ours. */
int mend_archive_handle_result(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *result);
/* After `failures` archive errors in a row: seconds until asking again (10 s doubling to 5 min). */
int64_t mend_archive_retry_delay(unsigned failures);
/* Asks the archive again when a catch-up paused by an error is due. */
void mend_archive_poll(mend_account *acc);
/* The host's tick: commits a catch-up page open for a second (waiting for the server's next
 * page), then as mend_archive_poll(). */
void mend_archive_tick(mend_account *acc);
/* READY: remembers when this device was first announced. */
void mend_archive_ready(mend_account *acc);
/*
 * A message that was not for this device, during catch-up: 1 when it predates
 * the device's announcement, counted for one summary line instead of its own.
 */
int mend_archive_quiet(mend_account *acc, int error, int64_t ts);

/* --- what the group-chat modules (room.c, room_msg.c) use of the engine --- */
/* Connected and READY with no device list or bundle fetch outstanding. */
int mend_engine_idle(mend_account *acc);
/* Starts what `jid` still needs (device list, then bundles); how many fetches started. */
unsigned mend_engine_fetch_missing(mend_account *acc, const char *jid);
/* Fetches what `jid` still needs, list then bundles, ahead of a message (a room member). */
void mend_engine_prefetch(mend_account *acc, const char *jid);
/* Keeps our sent message in the sealed local history ("id:" + message id, peer = p->jid). */
void mend_engine_remember_sent(mend_account *acc, const mend_pending *p);
/* SEND_FAILED for a queued message, which leaves the queue. */
void mend_engine_send_failed(mend_account *acc, const mend_pending *p, int err);
/* The host did not take a queued stanza: it stays queued, the user is told. */
void mend_engine_host_refused(mend_account *acc, const mend_pending *p);
/* The sentence naming the devices the last encrypt skipped (g_free), or NULL. */
char *mend_engine_skipped_text(mend_account *acc);
/* How many devices an encrypted stanza of ours is for (each of its stanzas; n2: in OMEMO:2). */
unsigned mend_engine_count_keys(mend_account *acc, const char *stanza, unsigned *n2);
/* Sends what waits for `jid` (a contact or a room) once nothing it needs is fetched. */
void mend_engine_pump(mend_account *acc, const char *jid);

/* --- what OMEMO:2 (omemo2_pubsub.c) uses of the engine --- */
/*
 * Publishes `payload` (serialized, consumed) as item `item_id` (NULL: "current") of `node`
 * with access_model open (max_items: also pubsub#max_items = max), configuring the node when
 * publish-options are refused (DESIGN §3); done(acc, ok) at the end.
 */
void mend_engine_publish(mend_account *acc, const char *node, const char *item_id, int max_items,
                         char *payload, void (*done)(mend_account *acc, int ok));
/* A device list or bundle fetch started / ended (pending messages wait for them). */
void mend_engine_fetch_started(mend_account *acc);
void mend_engine_fetch_done(mend_account *acc);

#endif
