/*
 * store.h - one SQLite database per account (WAL), every secret sealed with
 * AES-256-GCM under a 256-bit store key (DESIGN §4). The store knows bytes,
 * not ratchet types: the account glue serialises libsignal records.
 *
 * Sealing: a sealed value is  0x01 || nonce(12) || ciphertext || tag(16),
 * with AAD = "<table>|<row key>", so a value copied to another row or table
 * fails to open (MEND_ERR_STORE_CORRUPT).
 *
 * Getters return MEND_ERR_NOT_FOUND when there is no such row. Buffers
 * returned through uint8_t ** are g_malloc'd: free with g_free (secrets:
 * the caller wipes them first where it matters).
 *
 * Transactions: mend_store_begin/commit/rollback nest. The outermost level is
 * a transaction (BEGIN IMMEDIATE); inner levels are savepoints, so an inner
 * rollback undoes only the inner level's writes.
 */
#ifndef MEND_CORE_STORE_H
#define MEND_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "crypto.h"

#define MEND_STORE_KEY_LEN        32
#define MEND_STORE_SCHEMA_VERSION 12

typedef struct mend_store mend_store;

/*
 * Opens or creates the database at `path` (file mode 0600) and checks `key`
 * against the sealed check value: MEND_ERR_STORE_KEY_WRONG when it does not
 * open it, MEND_ERR_STORE_VERSION when the schema is newer than ours.
 * Migrates older schemas. `c` is borrowed and must outlive the store.
 * *created is set to 1 when the database was new (may be NULL).
 */
int mend_store_open(mend_store **out, const char *path, const uint8_t key[MEND_STORE_KEY_LEN],
                    mend_crypto *c, int *created);
void mend_store_close(mend_store *s);
/* Whether a store database exists at `path`. */
int mend_store_exists(const char *path);

/*
 * A value that changes whenever what a cache above the store holds may have
 * become stale: another process committed (PRAGMA data_version), or one of
 * our transactions rolled back.
 */
uint64_t mend_store_state(mend_store *s);

int mend_store_begin(mend_store *s);
/* How deep the open transactions nest (0: none). */
int mend_store_depth(mend_store *s);
int mend_store_commit(mend_store *s);
void mend_store_rollback(mend_store *s);

/*
 * fn(committed, data) runs after each outermost commit (committed = 1) or
 * rollback (0), when no transaction is open any more: what was kept back until
 * the work it reports is durable (a message shown) goes then, or is dropped.
 */
void mend_store_on_end(mend_store *s, void (*fn)(int committed, void *data), void *data);

/*
 * The crash test's kill points (tests/e2e/test_crash.py): with
 * MEND_TEST_KILL_AT=POINT:N in the environment the Nth pass through `point`
 * raises SIGKILL. The store itself passes "commit" (before the outermost
 * COMMIT) and "committed" (after it).
 */
void mend_store_kill_point(mend_store *s, const char *point);

/*
 * A batch: one transaction around many units of work (a catch-up page), so
 * that they share one commit. Opened at depth 0; the units nest inside it
 * (as savepoints) only while mend_store_batch_nest(s, 1) says they are the
 * batch's own work. Any other mend_store_begin() first commits the batch, so
 * nothing else is made durable later than it says. `done` is called after the
 * batch's commit with its result (0, or the error: then nothing of it was
 * kept); mend_store_depth() does not count the batch. mend_store_rollback()
 * at the batch's level, or closing the store with a batch open, rolls it back
 * (without `done`), as a crash would.
 */
typedef void (*mend_store_batch_cb)(void *data, int rc);
int mend_store_batch_begin(mend_store *s, mend_store_batch_cb done, void *data);
int mend_store_batch_open(mend_store *s);
void mend_store_batch_nest(mend_store *s, int on);
/* Commits the batch if one is open (then calls its `done`); 0 when none was open. */
int mend_store_batch_end(mend_store *s);
/*
 * Lazy (on = 1, until the batch ends): the levels the batch's own work opens are not
 * savepoints, which cost a copy of every page they change. Committing such a level is
 * nothing, and so is rolling back one that wrote nothing; rolling back one that wrote
 * loses the batch: mend_store_batch_lost() says 1 from then until the next transaction,
 * the batch's commit fails and nothing of it is kept. Its work must be done again, not
 * lazily.
 */
void mend_store_batch_lazy(mend_store *s, int on);
/*
 * fn(data) (data: the batch's) runs as the batch is about to commit, inside it: its last
 * writes. It may run statements but not open a transaction; when it fails (< 0) the
 * batch is lost as a lazy one is (nothing of it is kept). Until the batch ends.
 */
void mend_store_batch_closing(mend_store *s, int (*fn)(void *data));
int mend_store_batch_lost(mend_store *s);

/* Key/value metadata (plain text, not secret): catch-up position and such. */
int mend_store_meta_get(mend_store *s, const char *key, char **value);
int mend_store_meta_set(mend_store *s, const char *key, const char *value);

/* Our identity: device id, public key (33 bytes, 0x05 prefix), private key (sealed). */
int mend_store_identity_get(mend_store *s, uint32_t *device_id, uint8_t **pub, size_t *pub_len,
                            uint8_t **priv, size_t *priv_len);
int mend_store_identity_set(mend_store *s, uint32_t device_id, const uint8_t *pub, size_t pub_len,
                            const uint8_t *priv, size_t priv_len);

/* One-time prekeys: serialized records, sealed. A used prekey stays loadable until deleted. */
int mend_store_prekey_get(mend_store *s, uint32_t id, uint8_t **rec, size_t *len);
int mend_store_prekey_put(mend_store *s, uint32_t id, const uint8_t *rec, size_t len);
int mend_store_prekey_mark_used(mend_store *s, uint32_t id);
int mend_store_prekey_delete(mend_store *s, uint32_t id);
int mend_store_prekey_delete_used(mend_store *s);
int mend_store_prekey_count_unused(mend_store *s, size_t *n);
int mend_store_prekey_max_id(mend_store *s, uint32_t *max_id); /* 0 when none */
/* Calls cb for each unused prekey in id order; a non-zero return stops and is returned. */
int mend_store_prekey_foreach_unused(
    mend_store *s, int (*cb)(uint32_t id, const uint8_t *rec, size_t len, void *ud), void *ud);

/* Signed prekeys: serialized records, sealed. */
int mend_store_signed_prekey_get(mend_store *s, uint32_t id, uint8_t **rec, size_t *len);
int mend_store_signed_prekey_put(mend_store *s, uint32_t id, const uint8_t *rec, size_t len);
int mend_store_signed_prekey_delete(mend_store *s, uint32_t id);
int mend_store_signed_prekey_latest(mend_store *s, uint32_t *id); /* highest id */

/*
 * Sessions per (jid, device, version): serialized session records, sealed. The protocol
 * versions (XEP-0384): legacy OMEMO (namespace eu.siacs.conversations.axolotl, "0.3") and
 * OMEMO:2 (urn:xmpp:omemo:2). The functions without _v are the legacy ones.
 */
#define MEND_VERSION_LEGACY 1
#define MEND_VERSION_2      2
/* A version as a bit of a device's published set (mend_store_device_versions). */
#define MEND_VERSION_BIT(v) (1u << ((v)-1))
int mend_store_session_get_v(mend_store *s, const char *jid, uint32_t device, int version,
                             uint8_t **rec, size_t *len);
int mend_store_session_put_v(mend_store *s, const char *jid, uint32_t device, int version,
                             const uint8_t *rec, size_t len);
/*
 * Where a session's sealed record lives, for a cache above the store: its row id and
 * the nonce of its current seal (that nonce is unique, so a row that still holds it is
 * this session's). get_row fills it; put_row uses it and updates it. Inside a
 * transaction, a put whose row still holds that nonce and whose sealed size is unchanged
 * overwrites the value in place (SQLite's incremental blob I/O: no statement, no record
 * rebuilt); otherwise it writes as put_v does. An id <= 0 means not known yet.
 */
#define MEND_STORE_NONCE_LEN 12
typedef struct mend_store_row {
	int64_t id;
	uint8_t nonce[MEND_STORE_NONCE_LEN];
} mend_store_row;
int mend_store_session_get_row(mend_store *s, const char *jid, uint32_t device, int version,
                               uint8_t **rec, size_t *len, mend_store_row *row);
int mend_store_session_put_row(mend_store *s, const char *jid, uint32_t device, int version,
                               const uint8_t *rec, size_t len, mend_store_row *row);
int mend_store_session_exists_v(mend_store *s, const char *jid, uint32_t device, int version);
int mend_store_session_delete_v(mend_store *s, const char *jid, uint32_t device, int version);
int mend_store_session_devices_v(mend_store *s, const char *jid, int version, uint32_t **ids,
                                 size_t *n);
int mend_store_session_get(mend_store *s, const char *jid, uint32_t device, uint8_t **rec,
                           size_t *len);
int mend_store_session_put(mend_store *s, const char *jid, uint32_t device, const uint8_t *rec,
                           size_t len);
int mend_store_session_exists(mend_store *s, const char *jid, uint32_t device); /* 1, 0 or <0 */
int mend_store_session_delete(mend_store *s, const char *jid, uint32_t device);
int mend_store_session_delete_all(mend_store *s, const char *jid);
/* Device ids of jid that have a session. Free *ids with g_free. */
int mend_store_session_devices(mend_store *s, const char *jid, uint32_t **ids, size_t *n);

/* Peer identity keys per (jid, device), sealed, with a trust state (int, see trust). */
int mend_store_peer_identity_get(mend_store *s, const char *jid, uint32_t device, uint8_t **key,
                                 size_t *len, int *trust);
int mend_store_peer_identity_put(mend_store *s, const char *jid, uint32_t device,
                                 const uint8_t *key, size_t len, int trust);

/*
 * Device lists per jid. set replaces the active set: ids not in the new list
 * stay known but are marked inactive. get returns the active ids, sorted.
 */
int mend_store_devicelist_set(mend_store *s, const char *jid, const uint32_t *ids, size_t n);
int mend_store_devicelist_get(mend_store *s, const char *jid, uint32_t **ids, size_t *n);
/* Marks a device whose bundle cannot be used (1) or clears the mark (0). */
int mend_store_device_set_broken(mend_store *s, const char *jid, uint32_t device, int broken);
int mend_store_device_is_broken(mend_store *s, const char *jid, uint32_t device); /* 1, 0, <0 */

/* XEP-0359 stanza ids already handled (dedupe before anything else). */
int mend_store_stanza_seen(mend_store *s, const char *by, const char *id); /* 1, 0 or <0 */
/*
 * Also 1 when a history row is keyed by `id`: a 1:1 message kept in history is not marked
 * as well (its row says it was seen, in the same transaction), one write fewer for each.
 */
int mend_store_stanza_seen_or_kept(mend_store *s, const char *by, const char *id);
int mend_store_stanza_mark(mend_store *s, const char *by, const char *id);

/* --- message level (store_msgs.c) --------------------------------------- */

/* A message waiting to be sent. Fields g_malloc'd; clear with mend_pending_clear. */
typedef struct mend_pending {
	int64_t row;
	char *jid;
	char *msg_id;
	char *body;
	char *stanza;   /* the encrypted stanza once made, else NULL */
	unsigned flags; /* room.h MEND_PENDING_* (0: a 1:1 message) */
} mend_pending;

int mend_store_pending_add(mend_store *s, const char *jid, const char *msg_id, const char *body);
/* The same with flags (room.h MEND_PENDING_*). */
int mend_store_pending_add_flags(mend_store *s, const char *jid, const char *msg_id,
                                 const char *body, unsigned flags);
int mend_store_pending_set_flags(mend_store *s, int64_t row, unsigned flags);
/* Pending messages (of `jid`, or all when NULL), oldest first, into an array of mend_pending. */
int mend_store_pending_list(mend_store *s, const char *jid, GArray *out);
int mend_store_pending_set_stanza(mend_store *s, const mend_pending *p, const char *stanza);
int mend_store_pending_delete(mend_store *s, int64_t row);
int mend_store_pending_count(mend_store *s, size_t *n);
void mend_pending_clear(mend_pending *p);

/* A message of the local history. Strings g_malloc'd; clear with mend_history_clear. */
typedef struct mend_history_item {
	char *key; /* stanza-id, or "id:" + message id for our own sent messages */
	char *peer;
	char *from;
	uint32_t device;
	char *body;
	char *timestamp; /* ISO 8601 */
	char *stanza_id;
	char *msg_id;
	int carbon;
	int outgoing;
	int error;      /* MEND_ERR_* when it could not be decrypted (body empty) */
	int64_t ts;     /* unix seconds, for ordering and --since */
	int version;    /* the OMEMO version it came in (0: a row from before schema v10) */
	int downgraded; /* legacy from a device that wrote OMEMO:2 before */
} mend_history_item;

/* Adds an item unless one with its key exists (then nothing changes). */
int mend_store_history_put(mend_store *s, const mend_history_item *it);
/* What a history row seals: the serialised GVariant "(ssusssiii)" of the item, as
 * g_variant_new() would make it (g_free; *len bytes). */
uint8_t *mend_store_history_data(const mend_history_item *it, size_t *len);
int mend_store_history_get(mend_store *s, const char *key, mend_history_item *out);
/* Our own sent message to `peer` with message id `msg_id`. */
int mend_store_history_by_msg_id(mend_store *s, const char *peer, const char *msg_id,
                                 mend_history_item *out);
void mend_history_clear(mend_history_item *it);

/* A device's changed identity key, waiting for the user (NULL key clears it). */
int mend_store_peer_pending_get(mend_store *s, const char *jid, uint32_t device, uint8_t **key,
                                size_t *len);
int mend_store_peer_pending_set(mend_store *s, const char *jid, uint32_t device, const uint8_t *key,
                                size_t len);

/* --- keys a device showed besides its trusted one, and what came under them (store_keys.c) ---
 * A candidate key is sealed under "key_candidates|<fingerprint>|<device>|<jid>"; a held
 * message (a stanza that arrived under a candidate key) under
 * "held|<fingerprint>|<device>|<jid>": neither can be moved to another device or key.
 */
#define MEND_STORE_MAX_CANDIDATES 8  /* distinct new keys kept per device */
#define MEND_STORE_MAX_HELD       64 /* messages kept per device */
/* Adds a candidate key unless it is known; MEND_ERR_TOO_LARGE when the device has too many. */
int mend_store_candidate_add(mend_store *s, const char *jid, uint32_t device, const char *fp,
                             const uint8_t *key, size_t len);
/* The candidate keys of a device, oldest first: a GPtrArray of GBytes (unref it). */
int mend_store_candidates(mend_store *s, const char *jid, uint32_t device, GPtrArray **keys);
/* Forgets the candidate `fp` (NULL: all of the device's). */
int mend_store_candidate_delete(mend_store *s, const char *jid, uint32_t device, const char *fp);
int mend_store_held_add(mend_store *s, const char *jid, uint32_t device, const char *fp,
                        const uint8_t *data, size_t len);
/* Held messages of (jid, device, fp), oldest first: row ids (int64_t) and GBytes. */
int mend_store_held_list(mend_store *s, const char *jid, uint32_t device, const char *fp,
                         GArray *rows, GPtrArray *data);
int mend_store_held_delete(mend_store *s, int64_t row);

/* --- sealed values that decide delivery (store_seal.c) --- */
/* A value sealed under "meta|<key>": MEND_ERR_NOT_FOUND, or STORE_CORRUPT when it does not open. */
int mend_store_sealed_get(mend_store *s, const char *key, char **value);
int mend_store_sealed_set(mend_store *s, const char *key, const char *value);
/* jid's active device ids, sealed beside the devices table (mend_store_devicelist_set). */
int mend_store_sealed_list_set(mend_store *s, const char *jid, const uint32_t *ids, size_t n);
/* Keeps in ids only those of jid's sealed list (none when it is missing or does not open). */
int mend_store_sealed_list_filter(mend_store *s, const char *jid, uint32_t *ids, size_t *n);
/* Schema v6: seals the device lists and policies older stores kept in plain, and re-seals the
 * pending queue under "pending|<jid>|<msg_id>". */
int mend_store_seal_upgrade(mend_store *s);

/* Records that `device` of `jid` sent us something at `when` (unix seconds). */
int mend_store_device_touch(mend_store *s, const char *jid, uint32_t device, int64_t when);
/* Every device known for jid, active or not, with its flags. Free the arrays with g_free. */
int mend_store_devices_known(mend_store *s, const char *jid, uint32_t **ids, int **active,
                             int64_t **last_seen, size_t *n);

/*
 * Devices of jid listed for the first time get listed_at = now; when we have
 * a session with another device of jid (we talk to them), they are marked as
 * news: new devices, to be announced once their key is known.
 */
int mend_store_devices_mark_listed(mend_store *s, const char *jid, int64_t now);
/* Whether a device is news (1, 0, <0); clear takes the mark off. */
int mend_store_device_news(mend_store *s, const char *jid, uint32_t device);
int mend_store_device_news_clear(mend_store *s, const char *jid, uint32_t device);
/* Whether a listed device of jid is news (1, 0, <0). */
int mend_store_devices_news_any(mend_store *s, const char *jid);
/* When a device was first listed (or last trusted again) and last sent; 0 when never. */
int mend_store_device_times(mend_store *s, const char *jid, uint32_t device, int64_t *listed_at,
                            int64_t *last_seen);
/* Counts a device's silence from `when` (the user included it again). */
int mend_store_device_relist(mend_store *s, const char *jid, uint32_t device, int64_t when);

/* Sealing and the database handle, for the message-level tables. */
struct sqlite3;
struct sqlite3 *mend_store_db(mend_store *s);
/*
 * A statement for `sql`, prepared once per store (`sql` must be a string
 * constant: it is the key). Reset it (sqlite3_reset, clear bindings) after use.
 */
struct sqlite3_stmt;
int mend_store_stmt(mend_store *s, const char *sql, struct sqlite3_stmt **st);
/*
 * The read cache of small answers about a device read for every message (store.c),
 * under "<what>|<jid>/<device>": 1 and *v when the answer is cached, 0 when not (read it
 * from the tables, then put it). It is emptied when another process commits, a rollback
 * undoes something, a statement of mend_store_stmt() writes sessions, devices,
 * device_versions or peer_identities, and by mend_store_cache_drop(): a writer that
 * changes an answer some other way calls it first.
 */
int mend_store_fact_get(mend_store *s, const char *what, const char *jid, uint32_t device, int *v);
void mend_store_fact_put(mend_store *s, const char *what, const char *jid, uint32_t device, int v);
void mend_store_cache_drop(mend_store *s);
int mend_store_seal(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t **out,
                    size_t *out_len);
int mend_store_unseal(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t **out,
                      size_t *out_len);

/* --- the two OMEMO versions per device (store_omemo2.c, schema v8) --- */
/* The devices of jid whose `version`'s device list names them: exactly ids (bits of others go). */
int mend_store_device_versions_set(mend_store *s, const char *jid, int version, const uint32_t *ids,
                                   size_t n);
/* Ids of jid published in `version` (0: in any), sorted. */
int mend_store_device_versions_list(mend_store *s, const char *jid, int version, uint32_t **ids,
                                    size_t *n);
/* A device's published versions (MEND_VERSION_BIT bits), the version it last wrote to us in
 * (0: none yet) and whether its OMEMO:2 bundle is unusable. Pointers may be NULL. */
int mend_store_device_versions(mend_store *s, const char *jid, uint32_t device, unsigned *published,
                               int *wrote, int *broken2);
int mend_store_device_wrote_set(mend_store *s, const char *jid, uint32_t device, int version);
/* Adds `version` to what a device publishes (our own device, about to be published). */
int mend_store_device_version_add(mend_store *s, const char *jid, uint32_t device, int version);
int mend_store_device_set_broken2(mend_store *s, const char *jid, uint32_t device, int broken);
/* The version a device last wrote to us in and whether it ever wrote OMEMO:2 (downgrade
 * protection); 0 and 0 for a device never seen. */
int mend_store_device_wrote(mend_store *s, const char *jid, uint32_t device, int *wrote,
                            int *wrote2);

#endif
