/*
 * internal.h - what the core's modules share and no host sees: the account
 * context and its log helper.
 */
#ifndef MEND_CORE_INTERNAL_H
#define MEND_CORE_INTERNAL_H

#include <glib.h>
#include <strophe.h>
#include "mend/mend.h"
#include "crypto.h"
#include "sigproto.h"
#include "store.h"

typedef struct mend_engine mend_engine;

struct mend_account {
	char *jid; /* our bare JID */
	mend_host_ops ops;
	void *user_data;
	xmpp_ctx_t *xctx;           /* stanza model only; no connection */
	struct mend_parser *parser; /* the stanza parser, and xctx's memory (parser.c) */
	mend_crypto *crypto;
	mend_store *store;
	signal_context *sctx;
	signal_protocol_store_context *sstore;
	GRecMutex lock; /* the signal context lock */
	uint32_t device_id;
	int in_catchup;
	int bundle_dirty; /* prekeys replenished since the last publish request */
	mend_engine *eng; /* the protocol engine's state (engine.c) */
	/* an identity key change seen inside a transaction that rolls back (trust.c) */
	char *changed_jid;
	uint32_t changed_device;
	uint8_t *changed_key;
	size_t changed_len;
	/* while probing whether a message or bundle is valid under a changed key (trust.c) */
	const uint8_t *probe_key;
	size_t probe_len;
	int replaying;     /* decrypting a held message again: it was marked seen when held */
	int identity_lost; /* the device asked about has a session but no key row (sigstore.c) */
	struct mend_announce *announce; /* events waiting for a sender's device list (announce.c) */
	struct mend_shown *shown;       /* a catch-up page's notes (shown.c) */
	/* devices skipped by the last encrypt (not trusted): "jid device" strings */
	GPtrArray *skipped;
	GHashTable *sessions;    /* write-through cache of session records (sigstore.c) */
	uint64_t sessions_state; /* mend_store_state() the cache is valid for */
	int store_err;           /* the store failure behind a libsignal error, or 0 */
	/* the archive query under way, if any (archive.c) */
	struct mend_mam_query *mam;
	/* the clock, seconds since the epoch (NULL: the real one); tests move it */
	int64_t (*now)(void *data);
	void *now_data;
	struct mend_repair *rep; /* repair.c: key transports waiting to be sent */
	int64_t spk_checked;     /* when mend_account_tick() last looked at the signed prekey */
	struct mend_delivery *delivery; /* receipts and bounces of our messages (delivery.c) */
	struct mend_rooms *rooms;       /* group chats (room.c) */
	/* while a room message is processed: the room, whose stanza-ids dedupe it (XEP-0359 by) */
	const char *sid_by;
	unsigned room_catchups; /* room archive catch-ups under way (room_msg.c) */
	/* the protocol version whose sessions the libsignal callbacks see: MEND_VERSION_2 while
	 * an OMEMO:2 operation runs (omemo2_*.c), else (0) legacy (sigstore.c) */
	int ratchet_version;
	int64_t clock_skew; /* seconds added to the real clock: MEND_TEST_CLOCK_SKEW (tests) */
	/* file transfers in threads of their own (files_job.c) */
	struct mend_file_jobs *file_jobs;
	/* why the last OMEMO:2 message was refused for its SCE affixes (a static sentence) */
	const char *omemo2_why;
	GHashTable *omemo2_twins; /* "jid|message id" of messages read (omemo2_message.c) */
	/* while decrypt_and_keep() runs for a 1:1 message: a decrypted message's history row,
	 * keyed by its stanza-id, is its seen mark (mend_store_stanza_seen_or_kept) */
	int history_marks;
};

/* How many one-time prekeys we keep published (XEP-0384 v0.3 §4.3: at least 20; we keep 100). */
#define MEND_PREKEY_TARGET 100
/* libsignal's prekey ids are 24-bit (PRE_KEY_MEDIUM_MAX_VALUE). */
#define MEND_PREKEY_ID_MAX 0xFFFFFEu

/* Brings the unused one-time prekeys back to MEND_PREKEY_TARGET (inside the caller's transaction).
 */
int mend_account_replenish_prekeys(mend_account *acc);
/* Stores the next prekey id if not stored yet (before a used prekey is deleted). */
int mend_account_keep_prekey_next(mend_account *acc);

/* A new signed prekey every 7 days; a replaced one is kept 30 days more (account.c). */
#define MEND_SPK_ROTATE (7 * 24 * 3600)
#define MEND_SPK_KEEP   (30 * 24 * 3600)
/* Rotates the signed prekey when due and retires old ones; republishes if it rotated. */
int mend_account_rotate_signed_prekey(mend_account *acc);

void mend_engine_free(mend_engine *eng);
/* Frees the group-chat state (room.c). */
void mend_rooms_free(mend_account *acc);
/*
 * Archive results per commit at most, whatever the server sends (archive.c). Each commit
 * writes every page of the history's key index that the page's rows landed in: with
 * random archive ids (Prosody's) nearly all of them once the history is long. 10,000 (was
 * 1,000) cut what a catch-up writes on a 100,000-row history from 6.5 to 1.9 KiB a message
 * (bench/README.md, the "rows kept before" row); a page still commits at the first tick
 * once it is a second old, so a slow archive gives smaller pages.
 */
#define MEND_CATCHUP_PAGE_MAX 10000
/* A page's events wait with their bodies until it commits: once they hold this many bytes it
 * commits before the next result (a message may be 1 MiB, MEND_MAX_PAYLOAD). */
#define MEND_CATCHUP_PAGE_BYTES (8u << 20)
/* Forgets the archive query under way (archive.c); the page so far commits, its events go. */
void mend_archive_reset(mend_account *acc);
/* Closing: forgets the query; an uncommitted page is rolled back, its events dropped. */
void mend_archive_close(mend_account *acc);
/* While a catch-up page's transaction is open: keeps the event until it commits (1). */
int mend_archive_defer(mend_account *acc, const mend_event *ev);

/* The account's clock: seconds since the epoch (account.c). */
int64_t mend_now(const mend_account *acc);
/* For tests: replaces the clock (now = NULL: the real one again). */
void mend_account_set_clock(mend_account *acc, int64_t (*now)(void *data), void *data);

/* trust.c */
/* 64 hex digits of a serialized public key's Curve25519 form; "" if it is not 33 bytes. */
void mend_key_fingerprint(const uint8_t *key, size_t len, char out[65]);
/* The trust state of a device of jid, or -1 when its key is not known. */
int mend_trust_of(mend_account *acc, const char *jid, uint32_t device);
int mend_trust_initial(mend_account *acc, const char *jid);
void mend_trust_key_changed(mend_account *acc, const char *jid, uint32_t device, const uint8_t *key,
                            size_t len);
/* Logs a remembered key change once no transaction is open (held.c keeps the key). */
void mend_trust_flush(mend_account *acc);
/* Forgets a remembered key change (a new operation starts). */
void mend_trust_forget_change(mend_account *acc);
/*
 * After a bundle was refused for a changed key (inside the caller's transaction):
 * whether it is valid under that key (the signature checks out); nothing is kept.
 */
int mend_trust_probe_bundle(mend_account *acc, session_builder *builder,
                            session_pre_key_bundle *pkb);
/* Keeps the remembered changed key as a candidate (outside any transaction). */
int mend_trust_keep_candidate(mend_account *acc);
/* The candidate keys of a device (legacy pending key first): GPtrArray of GBytes. */
GPtrArray *mend_trust_candidates(mend_account *acc, const char *jid, uint32_t device);

/* announce.c: whether a message's device is in its sender's published list */
/* Hands an event to the host; a message from an unlisted device waits for one list fetch. */
void mend_announce_emit(mend_account *acc, const mend_event *ev);
/* The device list of `jid` arrived (or failed): the messages waiting for it go. */
void mend_announce_list_arrived(mend_account *acc, const char *jid);
/* The stream went down: everything waiting goes, with the lists we know. */
void mend_announce_disconnected(mend_account *acc);
void mend_announce_free(struct mend_announce *a);
/* The outermost store transaction ended (mend_store_on_end): what it kept back goes or is dropped.
 */
void mend_announce_txn_end(int committed, void *data);
/* Hands committed events (deep copies, consumed) to the host in one transaction. */
void mend_announce_hand_over(mend_account *acc, GQueue *batch);

/* shown.c: a kept message noted until the host has it; shown again after a crash */
int mend_shown_note(mend_account *acc, const char *key);
void mend_shown_done(mend_account *acc, const mend_event *ev);
void mend_shown_replay(mend_account *acc);
/* A catch-up page's notes: one row, written as the page commits (its batch's closing). */
int mend_shown_page_write(mend_account *acc);
/* The page's events were handed over: the row goes, what still waits keeps a row. */
void mend_shown_settle(mend_account *acc);
/* A transaction rolled back: the page noted in memory is gone with it. */
void mend_shown_page_drop(mend_account *acc);
void mend_shown_free(struct mend_shown *sh);

/* A deep copy of an event (its strings), and its free (wipes the body). */
mend_event *mend_event_copy(const mend_event *ev);
void mend_event_free(gpointer ev);

/* message.c: whether a decrypted message's history row marks it seen (acc->history_marks):
 * then no seen_stanzas row is written for stanza-id `sid`. */
int mend_history_marks_seen(mend_account *acc, const char *sid, int has_payload);

/* held.c: messages that came under a changed key, kept sealed until it is accepted */
/*
 * `msg` was refused because its sender showed another identity key: when it decrypts
 * under that key, keep the key as a candidate and the message sealed, mark it seen, and
 * return MEND_ERR_KEY_CHANGED; otherwise return `r`. Outside any transaction.
 */
int mend_held_keep(mend_account *acc, xmpp_stanza_t *msg, const char *stanza_id,
                   const char *timestamp, int carbon, int archived, int r);
/* The sentence for a held message: the old and new fingerprint and the command. g_free. */
char *mend_held_text(mend_account *acc, const char *jid, uint32_t device);
/* Decrypts and reports the messages held for key `fp` of (jid, device), then drops them. */
void mend_held_replay(mend_account *acc, const char *jid, uint32_t device, const char *fp);
/* engine.c: a held message, decrypted and reported as it would have been on arrival. */
int mend_engine_process_held(mend_account *acc, xmpp_stanza_t *msg, const char *stanza_id,
                             const char *timestamp, int carbon, int archived);
/* Drops the session cache (sessions were deleted behind it). */
void mend_sigstore_forget_sessions(mend_account *acc);
/* Republishes our bundle when connected (prekeys were replenished): 1 if it does. */
int mend_engine_bundle_changed(mend_account *acc);

/* Asks the host to republish our bundle if prekeys changed (not during catch-up). */
void mend_account_notify_bundle(mend_account *acc);

/* engine.c, for repair.c */
/* Connected, our keys published, no archive being read: protocol messages may leave now. */
int mend_engine_can_send(mend_account *acc);
/* Sends a stanza through the host. */
void mend_engine_send(mend_account *acc, const char *xml);
/* Fetches one device's bundle; cb gets its <bundle/> serialized, or NULL when there is none. */
typedef void (*mend_bundle_cb)(mend_account *acc, const char *jid, uint32_t device,
                               const char *bundle_xml);
void mend_engine_fetch_bundle(mend_account *acc, const char *jid, uint32_t device,
                              mend_bundle_cb cb);

/* repair.c: session repair, heartbeats, identity announcements (key transport messages) */
typedef struct mend_repair mend_repair;
void mend_repair_free(mend_repair *rep);
/* A message from `device` of `jid` decrypted (prekey: it started a session); history: an old one
 * served to a history query. Sends a heartbeat when one is due. */
void mend_repair_received(mend_account *acc, const char *jid, uint32_t device, int prekey,
                          int history);
/* We encrypted for this device: no heartbeat is due. */
void mend_repair_sent(mend_account *acc, const char *jid, uint32_t device);
/* A message from it failed with `err`: 1 when the device is (or will be, after catch-up) asked
 * to start a new session, 0 when not (archived, not a session failure, asked this hour). */
int mend_repair_failed(mend_account *acc, const char *jid, uint32_t device, int err, int archived);
/* 1 when the device proved a new identity key not accepted yet; fp (may be NULL) gets the
 * newest one's fingerprint. */
int mend_repair_new_key(mend_account *acc, const char *jid, uint32_t device, char fp[65]);
/* 1 the first time it is asked about this device (a new identity key told once). */
int mend_repair_first_news(mend_account *acc, const char *jid, uint32_t device);
/* The stream went down: announcements under way are taken again on the next connection. */
void mend_repair_disconnected(mend_account *acc);
/* Sends what waited for the end of catch-up or for the connection. */
void mend_repair_flush(mend_account *acc);
/* Identity reset: every device we have a session with is told the new key (inside the reset's
 * transaction, before the sessions go). */
int mend_repair_note_sessions(mend_account *acc);

/* Encrypt variants, for interop with what older clients send (and for tests). */
#define MEND_ENC_TAG_IN_PAYLOAD 0x1 /* 16-byte key, tag after the payload */
#define MEND_ENC_IV16           0x2 /* a 16-byte IV */
#define MEND_ENC_GROUPCHAT      0x4 /* type groupchat, no receipt request (XEP-0045 §7.4) */
/* One recipient device. */
typedef struct mend_recipient {
	char *jid;
	uint32_t device;
	int version; /* MEND_VERSION_2 or _LEGACY; 0: the version of its session (legacy first) */
} mend_recipient;
/* Encrypts for exactly these devices (which must have sessions); the rest as encrypt_opts.
 * body NULL: a key transport message (XEP-0384 v0.3 §4.5, no payload, no fallback body). */
int mend_account_encrypt_for(mend_account *acc, const char *to, const mend_recipient *rs, size_t n,
                             const char *body, const char *id, int flags, char **stanza);
int mend_account_encrypt_opts(mend_account *acc, const char *to, const char *body, const char *id,
                              int flags, char **stanza);

/* message.c, for rooms: the usable devices of `jid` into rs (as 1:1 encryption picks them;
 * untrusted ones go to acc->skipped); *missing counts those waiting for a bundle. Returns how
 * many were added, or <0. */
int mend_recipients_add(mend_account *acc, const char *jid, GArray *rs, size_t *missing);
/* Empties acc->skipped before a new encryption. */
void mend_recipients_reset(mend_account *acc);

/*
 * Decrypts a parsed <message/>. stanza_id: the dedupe key (a MAM archive id),
 * or NULL for the message's own stanza-id stamped by our server. `msg` (zeroed
 * by the caller, cleared with mend_message_clear) gets from/device/stanza_id
 * as far as the message parsed, and the body on success.
 */
int mend_account_decrypt_stanza(mend_account *acc, xmpp_stanza_t *st, const char *stanza_id,
                                mend_message *msg);
void mend_message_clear(mend_message *msg);
/* XEP-0359: the stanza-id our own server stamped (by = our JID), or NULL. */
const char *mend_our_stanza_id(mend_account *acc, xmpp_stanza_t *msg);

/* Starts a store transaction for one operation and clears store_err. */
int mend_account_txn_begin(mend_account *acc);
/* Commits (r == 0) or rolls back (r < 0); returns r, or the commit's error. */
int mend_account_txn_end(mend_account *acc, int r);
/* The MEND_ERR_* behind a failed libsignal call. */
int mend_account_signal_err(mend_account *acc, int sg_err);

/* devices.c */
/* A device list of jid was stored: new devices are marked (and announced if their key is known). */
void mend_devices_listed(mend_account *acc, const char *jid);
/* Announces a new device of jid once, when its key is known (a NOTICE in jid's chat). */
void mend_devices_announce(mend_account *acc, const char *jid, uint32_t device);
/* Whether a listed device of jid is new and not announced yet. */
int mend_devices_news_pending(mend_account *acc, const char *jid);
/* Whether a contact's device has been silent for MEND_STALE_DAYS. */
int mend_device_is_stale(mend_account *acc, const char *jid, uint32_t device);
/* The user trusts the device: a stale one counts its silence from now. */
void mend_devices_include(mend_account *acc, const char *jid, uint32_t device);

/* delivery.c: what became of our messages (XEP-0184 receipts, bounces), in words */
void mend_delivery_free(mend_account *acc);
/* A <message type='error'>: 1 (and SEND_FAILED) when it bounces a message of ours, else 0. */
int mend_delivery_bounced(mend_account *acc, xmpp_stanza_t *st);
/* A receipt (XEP-0184 <received/>): 1 (and DELIVERED once) when it is for a message of ours. */
int mend_delivery_receipt(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *received);
/* Answers the receipt request of a message shown for the first time (decrypt result r). */
void mend_delivery_answer(mend_account *acc, xmpp_stanza_t *msg, int r, const mend_message *m);
/* Remembers why the device list fetch of `jid` failed (iq NULL: it did not fail). */
void mend_delivery_list_failed(mend_account *acc, const char *jid, xmpp_stanza_t *iq);
/* Whether `jid` (no devices known, its list refused) should be asked whether it exists. */
int mend_delivery_wants_probe(mend_account *acc, const char *jid);
/* The answer to that question (iq NULL: it exists; else the error). */
void mend_delivery_probed(mend_account *acc, const char *jid, xmpp_stanza_t *iq);
/* MEND_ERR_NO_DEVICES becomes MEND_ERR_UNDELIVERABLE when the address itself failed. */
int mend_delivery_refine(mend_account *acc, const char *jid, int err);

/* Serializes a stanza into a g_malloc'd string (NULL on failure). */
char *mend_stanza_text(xmpp_stanza_t *st);
/* Parses one element from text (NULL on malformed XML). */
xmpp_stanza_t *mend_stanza_parse(mend_account *acc, const char *xml);

/* A log line through the host ops (printf-style). */
void mend_log(const mend_account *acc, mend_log_level level, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Translation of a libsignal SG_ERR_* code into a MEND_ERR_* code. */
int mend_err_from_signal(int sg_err);

/* Our legacy bundle from the store (mend_bundle_clear it); the OMEMO:2 one is built on it. */
struct mend_bundle;
int mend_account_fill_bundle(mend_account *acc, struct mend_bundle *b);

#endif
