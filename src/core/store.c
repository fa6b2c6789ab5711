/*
 * store.c - the account's SQLite database (DESIGN §4, §5): the schema and
 * its table of migrations (PRAGMA user_version), statements prepared once at
 * open, transactions that nest by counting, and AES-256-GCM sealing of every
 * secret value with "<table>|<row key>" as AAD, so that a value moved to
 * another row does not open.
 *
 * Ids (device ids, prekey ids) are uint32_t stored as SQLite INTEGERs.
 * Lists of ids may come back as NULL with *n == 0.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <glib.h>
#include <sqlite3.h>
#include "mend/mend.h"
#include "store.h"

#define SEAL_VERSION   0x01
#define SEAL_NONCE_LEN MEND_STORE_NONCE_LEN
#define SEAL_CT_OFF    (1 + SEAL_NONCE_LEN)
#define SEAL_OVERHEAD  (SEAL_CT_OFF + MEND_GCM_TAG_LEN)
#define NONCE_POOL     32 /* seal nonces drawn at once */
/* "<table>|" + a bare JID (RFC 7622: at most 2047 bytes) + "/<device>" */
#define AAD_MAX         2304
#define BUSY_TIMEOUT_MS 5000
#define LAZY_LEVELS     32   /* the nesting levels a lazy batch can track (bits of a uint32_t) */
#define CACHE_MAX       4096 /* entries the read caches hold before they start again */
#define CHECK_AAD       "meta|check"
#define CHECK_KEY       "check"

static const char check_plain[] = "mend store key check, version 1";

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_META_GET,
	ST_META_SET,
	ST_ID_GET,
	ST_ID_SET,
	ST_PK_GET,
	ST_PK_PUT,
	ST_PK_MARK,
	ST_PK_DEL,
	ST_PK_DEL_USED,
	ST_PK_COUNT,
	ST_PK_MAX,
	ST_PK_UNUSED,
	ST_SPK_GET,
	ST_SPK_PUT,
	ST_SPK_DEL,
	ST_SPK_LATEST,
	ST_SESS_GET,
	ST_SESS_PUT,
	ST_SESS_EXISTS,
	ST_SESS_DEL,
	ST_SESS_DEL_ALL,
	ST_SESS_DEVICES,
	ST_PEER_GET,
	ST_PEER_PUT,
	ST_DEV_DEACT,
	ST_DEV_ACT,
	ST_DEV_GET,
	ST_DEV_BROKEN_SET,
	ST_DEV_BROKEN_GET,
	ST_SEEN,
	ST_SEEN_KEPT,
	ST_MARK,
	ST_DATA_VERSION,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT nested",
    [ST_RELEASE] = "RELEASE nested",
    [ST_ROLLBACK_TO] = "ROLLBACK TO nested",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [ST_ID_GET] = "SELECT device_id, pub, priv FROM identity WHERE slot = 0",
    [ST_ID_SET] = "INSERT OR REPLACE INTO identity (slot, device_id, pub, priv)"
                  " VALUES (0, ?1, ?2, ?3)",
    [ST_PK_GET] = "SELECT record FROM prekeys WHERE id = ?1",
    [ST_PK_PUT] = "INSERT INTO prekeys (id, record, used) VALUES (?1, ?2, 0)"
                  " ON CONFLICT (id) DO UPDATE SET record = excluded.record, used = 0",
    [ST_PK_MARK] = "UPDATE prekeys SET used = 1 WHERE id = ?1",
    [ST_PK_DEL] = "DELETE FROM prekeys WHERE id = ?1",
    [ST_PK_DEL_USED] = "DELETE FROM prekeys WHERE used <> 0",
    [ST_PK_COUNT] = "SELECT count(*) FROM prekeys WHERE used = 0",
    [ST_PK_MAX] = "SELECT coalesce(max(id), 0) FROM prekeys",
    [ST_PK_UNUSED] = "SELECT id, record FROM prekeys WHERE used = 0 ORDER BY id",
    [ST_SPK_GET] = "SELECT record FROM signed_prekeys WHERE id = ?1",
    [ST_SPK_PUT] = "INSERT INTO signed_prekeys (id, record, created) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (id) DO UPDATE SET record = excluded.record",
    [ST_SPK_DEL] = "DELETE FROM signed_prekeys WHERE id = ?1",
    [ST_SPK_LATEST] = "SELECT max(id) FROM signed_prekeys",
    [ST_SESS_GET] = "SELECT record, rowid FROM sessions"
                    " WHERE jid = ?1 AND device = ?2 AND version = ?4",
    [ST_SESS_PUT] = "INSERT INTO sessions (jid, device, record, version) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (jid, device, version) DO UPDATE SET record = excluded.record",
    [ST_SESS_EXISTS] = "SELECT 1 FROM sessions WHERE jid = ?1 AND device = ?2 AND version = ?4",
    [ST_SESS_DEL] = "DELETE FROM sessions WHERE jid = ?1 AND device = ?2 AND version = ?4",
    [ST_SESS_DEL_ALL] = "DELETE FROM sessions WHERE jid = ?1",
    [ST_SESS_DEVICES] = "SELECT device FROM sessions WHERE jid = ?1 AND version = ?4"
                        " ORDER BY device",
    [ST_PEER_GET] = "SELECT key FROM peer_identities WHERE jid = ?1 AND device = ?2",
    [ST_PEER_PUT] = "INSERT INTO peer_identities (jid, device, key, first_seen)"
                    " VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (jid, device) DO UPDATE SET key = excluded.key",
    [ST_DEV_DEACT] = "UPDATE devices SET active = 0 WHERE jid = ?1",
    [ST_DEV_ACT] = "INSERT INTO devices (jid, device, active, broken, last_seen)"
                   " VALUES (?1, ?2, 1, 0, ?3)"
                   " ON CONFLICT (jid, device) DO UPDATE SET active = 1",
    [ST_DEV_GET] = "SELECT device FROM devices WHERE jid = ?1 AND active <> 0"
                   " ORDER BY device",
    [ST_DEV_BROKEN_SET] = "INSERT INTO devices (jid, device, active, broken, last_seen)"
                          " VALUES (?1, ?2, 0, ?3, ?4)"
                          " ON CONFLICT (jid, device) DO UPDATE SET broken = excluded.broken",
    [ST_DEV_BROKEN_GET] = "SELECT broken FROM devices WHERE jid = ?1 AND device = ?2",
    [ST_SEEN] = "SELECT 1 FROM seen_stanzas WHERE \"by\" = ?1 AND id = ?2",
    [ST_SEEN_KEPT] = "SELECT 1 FROM seen_stanzas WHERE \"by\" = ?1 AND id = ?2"
                     " UNION ALL SELECT 1 FROM history WHERE key = ?2 LIMIT 1",
    [ST_MARK] = "INSERT OR IGNORE INTO seen_stanzas (\"by\", id, seen_at) VALUES (?1, ?2, ?3)",
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

/* Version 0 -> 1: every table. Sealed columns are BLOBs. */
static const char schema_v1[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL);"
    "CREATE TABLE identity (slot INTEGER PRIMARY KEY CHECK (slot = 0),"
    " device_id INTEGER NOT NULL, pub BLOB NOT NULL, priv BLOB NOT NULL);"
    "CREATE TABLE prekeys (id INTEGER PRIMARY KEY, record BLOB NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE signed_prekeys (id INTEGER PRIMARY KEY, record BLOB NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE sessions (jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " record BLOB NOT NULL, PRIMARY KEY (jid, device));"
    /* key: sealed (trust, 4 bytes big-endian) || identity key */
    "CREATE TABLE peer_identities (jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " key BLOB NOT NULL, first_seen INTEGER NOT NULL, PRIMARY KEY (jid, device));"
    "CREATE TABLE devices (jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " active INTEGER NOT NULL DEFAULT 1, broken INTEGER NOT NULL DEFAULT 0,"
    " last_seen INTEGER NOT NULL, PRIMARY KEY (jid, device));"
    "CREATE TABLE seen_stanzas (\"by\" TEXT NOT NULL, id TEXT NOT NULL,"
    " seen_at INTEGER NOT NULL, PRIMARY KEY (\"by\", id));"
    "CREATE TABLE pending (id INTEGER PRIMARY KEY, jid TEXT NOT NULL,"
    " body BLOB NOT NULL, created INTEGER NOT NULL);";

/* Version 1 -> 2: the message-level tables of the protocol engine. */
static const char schema_v2[] =
    /* pending: the body sealed under "pending|<msg_id>" (v6: "pending|<jid>|<msg_id>"); stanza: the
     * encrypted stanza, sealed likewise, once it was encrypted (resent as is after a crash) */
    "ALTER TABLE pending ADD COLUMN msg_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE pending ADD COLUMN stanza BLOB;"
    /* history: decrypted messages, sealed under "history|<key>" (forward secrecy means an
     * archived message cannot be decrypted twice, so local history keeps the text) */
    "CREATE TABLE history (key TEXT PRIMARY KEY NOT NULL, peer TEXT NOT NULL,"
    " ts INTEGER NOT NULL, msg_id TEXT, data BLOB NOT NULL);"
    "CREATE INDEX history_peer_ts ON history (peer, ts);";

/* Version 2 -> 3: a device's new identity key, kept (sealed) until the user accepts it. */
static const char schema_v3[] = "ALTER TABLE peer_identities ADD COLUMN pending BLOB;";

/*
 * Version 3 -> 4: trust bound to a key. key_candidates: the other identity keys a device
 * showed (sealed, one row per distinct key); held: messages that came under them, sealed
 * until the user accepts that key; devices.seal binds a device's list state into a seal.
 */
static const char schema_v4[] =
    "CREATE TABLE key_candidates (jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " fingerprint TEXT NOT NULL, key BLOB NOT NULL, first_seen INTEGER NOT NULL,"
    " PRIMARY KEY (jid, device, fingerprint));"
    "CREATE TABLE held (id INTEGER PRIMARY KEY, jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " fingerprint TEXT NOT NULL, data BLOB NOT NULL, received INTEGER NOT NULL);"
    "CREATE INDEX held_device ON held (jid, device, fingerprint);"
    "ALTER TABLE devices ADD COLUMN seal BLOB;";

/*
 * Version 4 -> 5: when a device was first listed (or last trusted again: its
 * silence counts from then) and whether it is a new device still to be
 * announced. Devices listed now count from the upgrade.
 */
static const char schema_v5[] =
    "ALTER TABLE devices ADD COLUMN listed_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN news INTEGER NOT NULL DEFAULT 0;"
    "UPDATE devices SET listed_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE active <> 0;";

/*
 * Version 5 -> 6: nothing in SQL; what decides delivery is sealed by
 * mend_store_seal_upgrade() (store_seal.c): device lists, policies, the pending
 * queue's recipient.
 */
#define SEALED_VERSION 6
static const char schema_v6[] = "";

/*
 * Version 6 -> 7: group chats (store_rooms.c). rooms: the rooms we are in, our nick and the
 * room archive position; room_members: a member's affiliation sealed under
 * "room_members|<room>|<jid>" (who gets our keys is never plain); pending.flags: a room message
 * and how it may go (room.h MEND_PENDING_*).
 */
static const char schema_v7[] =
    "CREATE TABLE rooms (room TEXT PRIMARY KEY NOT NULL, nick TEXT NOT NULL,"
    " mam_last TEXT, mam_last_ts INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE room_members (room TEXT NOT NULL, jid TEXT NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (room, jid));"
    "ALTER TABLE pending ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;";

/*
 * Version 7 -> 8: OMEMO:2 beside legacy OMEMO (XEP-0384 0.9; DESIGN §3: one device id, two
 * versions). sessions gain the protocol version in their key (1: legacy, 2: OMEMO:2; an
 * OMEMO:2 record is sealed under "sessions2|<jid>/<device>"); device_versions: which
 * versions a device's published lists name (bits, MEND_VERSION_BIT()) and which version it
 * last wrote to us in (downgrade protection), whether its OMEMO:2 bundle could not be used
 * (broken2, as devices.broken for legacy). Devices
 * listed so far were legacy ones.
 */
static const char schema_v8[] =
    "CREATE TABLE sessions_v (jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " version INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (jid, device, version));"
    "INSERT INTO sessions_v (jid, device, version, record)"
    " SELECT jid, device, 1, record FROM sessions;"
    "DROP TABLE sessions;"
    "ALTER TABLE sessions_v RENAME TO sessions;"
    "CREATE TABLE device_versions (jid TEXT NOT NULL, device INTEGER NOT NULL,"
    " published INTEGER NOT NULL DEFAULT 0, wrote INTEGER NOT NULL DEFAULT 0,"
    " broken2 INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (jid, device));"
    "INSERT INTO device_versions (jid, device, published)"
    " SELECT jid, device, 1 FROM devices WHERE active <> 0;";

/* Version 8 -> 9: whether a device ever wrote to us in OMEMO:2 (it stays: downgrade protection). */
static const char schema_v9[] =
    "ALTER TABLE device_versions ADD COLUMN wrote2 INTEGER NOT NULL DEFAULT 0;"
    "UPDATE device_versions SET wrote2 = 1 WHERE wrote = 2;";

/* Version 9 -> 10: the OMEMO version a history message came in (XEP-0384 §5.5 or legacy
 * 0.3.0) and whether it was a downgrade, so that a replay says what actually arrived. 0:
 * a row written before this version, all of them legacy OMEMO or plaintext. */
static const char schema_v10[] =
    "ALTER TABLE history ADD COLUMN version INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE history ADD COLUMN downgraded INTEGER NOT NULL DEFAULT 0;";

/*
 * Version 10 -> 11: cheaper writes for every message, the same rows. seen_stanzas is
 * WITHOUT ROWID (its primary key is the table: one B-tree insert, not two), and the index
 * history_peer_ts goes: nothing reads history by peer (only by key), yet every message
 * wrote it.
 */
static const char schema_v11[] =
    "CREATE TABLE seen_v11 (\"by\" TEXT NOT NULL, id TEXT NOT NULL,"
    " seen_at INTEGER NOT NULL, PRIMARY KEY (\"by\", id)) WITHOUT ROWID;"
    "INSERT INTO seen_v11 (\"by\", id, seen_at) SELECT \"by\", id, seen_at FROM seen_stanzas;"
    "DROP TABLE seen_stanzas;"
    "ALTER TABLE seen_v11 RENAME TO seen_stanzas;"
    "DROP INDEX IF EXISTS history_peer_ts;";

/*
 * Version 11 -> 12: a contact's sessions of one version found without reading the others'
 * (ST_SESS_DEVICES: every message sent asks which devices have OMEMO:2 sessions; with the
 * primary key's order, jid then device, it read every session of the contact).
 */
static const char schema_v12[] =
    "CREATE INDEX IF NOT EXISTS sessions_version ON sessions (jid, version, device);";

/* migrations[v] takes a database from version v to v + 1. */
static const char *const migrations[MEND_STORE_SCHEMA_VERSION] = {
    [0] = schema_v1, [1] = schema_v2,  [2] = schema_v3,   [3] = schema_v4,
    [4] = schema_v5, [5] = schema_v6,  [6] = schema_v7,   [7] = schema_v8,
    [8] = schema_v9, [9] = schema_v10, [10] = schema_v11, [11] = schema_v12,
};

struct mend_store {
	sqlite3 *db;
	mend_crypto *c;    /* borrowed */
	mend_gcm_key *gcm; /* AES-256-GCM keyed once with the store key: every seal and unseal */
	/* nonces drawn ahead from libgcrypt's nonce generator, SEAL_NONCE_LEN at a time; each
	 * seals once. A store is never used across fork(): SQLite forbids that already. */
	uint8_t nonces[NONCE_POOL * SEAL_NONCE_LEN];
	size_t nonce_next;   /* offset of the next unused nonce (sizeof(nonces): none left) */
	GByteArray *scratch; /* put_sealed's sealed value, bound SQLITE_STATIC until reset */
	sqlite3_blob *blob;  /* a session record written in place; closed at every txn boundary */
	int depth;           /* transaction nesting */
	int batch;           /* 1: the outermost transaction is a batch (mend_store_batch_begin) */
	int batch_nest;      /* 1: the batch's own work runs: begins nest inside the batch */
	mend_store_batch_cb batch_done;
	void *batch_data;
	int (*batch_closing)(void *data); /* the batch's last writes, before it commits */
	uint64_t rollbacks; /* how many rollbacks happened: caches above the store check it */
	GHashTable *cached; /* SQL text (static) -> prepared statement, for store_msgs.c */
	sqlite3_stmt *st[ST_COUNT];
	char *kill_at;  /* test hook: the point MEND_TEST_KILL_AT names, or NULL */
	long kill_left; /* passes left before it kills */
	void (*on_end)(int committed, void *data); /* after the outermost commit or rollback */
	void *on_end_data;
	int lazy;             /* the batch's own levels run without savepoints (batch_lazy) */
	uint32_t lazy_levels; /* bit d: level d is lazy (no SAVEPOINT was run for it) */
	int64_t lazy_mark[LAZY_LEVELS]; /* writes() as lazy level d began */
	int64_t blob_writes;  /* in-place writes, which SQLite's change count does not see */
	int lost;             /* a lazy level that wrote was rolled back: the batch is undone */
	GHashTable *lists;    /* jid -> GArray of its listed device ids (devicelist_get) */
	GHashTable *idents;   /* "peer_identities|<jid>/<device>" -> GBytes: trust || key */
	uint64_t cache_state; /* what data_version and rollbacks were as the caches filled */
	GHashTable *facts;    /* "<what>|<jid>/<device>" -> a small answer (mend_store_fact_get) */
	sqlite3_int64 dv;     /* PRAGMA data_version as read in the open transaction */
	int dv_known;         /* 1: dv was read in this transaction (data_version()) */
	GHashTable *deferred; /* row id -> struct sess_deferred: session writes of a lazy batch */
};

/*
 * A session record written inside a lazy batch's level, kept here and written once as the
 * batch commits (session_defer): a catch-up page steps each sender's session once per
 * message, and sealing and writing the record each time cost more than the rest of the
 * page's rows. Whatever reads or deletes session rows writes them first (deferred_flush).
 */
struct sess_deferred {
	int64_t id;                    /* its row */
	uint8_t nonce[SEAL_NONCE_LEN]; /* the seal the row held when the first write was kept */
	char aad[AAD_MAX];
	char *jid;
	uint32_t device;
	int version;
	GByteArray *rec;
};

/* A statement of mend_store_stmt(): whether it writes a table the read caches read, and
 * whether it reads or writes session rows (then deferred writes go first). */
struct cached_stmt {
	sqlite3_stmt *st;
	int drops;
	int sessions;
};

static void fact_forget(mend_store *s, const char *key);
static void deferred_drop(mend_store *s);
static int deferred_flush(mend_store *s);

struct pk_item {
	uint32_t id;
	uint8_t *rec;
	size_t len;
};

static int sql_err(int rc)
{
	return (rc & 0xff) == SQLITE_NOMEM ? MEND_ERR_NOMEM : MEND_ERR_STORE;
}

static void wipe_free(void *p, size_t len)
{
	if (p)
		explicit_bzero(p, len);
	g_free(p);
}

static int db_exec(mend_store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_err(rc);
}

static void blob_close(mend_store *s)
{
	if (s->blob)
		sqlite3_blob_close(s->blob);
	s->blob = NULL;
}

/* Grows with every row written (SQLite's count) and every in-place session write. */
static int64_t writes(mend_store *s)
{
	return (int64_t)sqlite3_total_changes64(s->db) + s->blob_writes;
}

static void st_reset(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_DONE ? 0 : sql_err(rc);
}

/* Steps a statement that yields one integer, or NOT_FOUND for no row or NULL. */
static int step_int(sqlite3_stmt *st, sqlite3_int64 *v)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*v = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		rc = MEND_ERR_NOT_FOUND;
	} else {
		rc = sql_err(rc);
	}
	return rc;
}

/* Steps a statement whose answer is whether it has a row: 1, 0 or < 0. */
static int step_exists(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = 1;
	else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = sql_err(rc);
	return rc;
}

static int bind_rc(int rc)
{
	return rc == SQLITE_OK ? 0 : sql_err(rc);
}

static int bind_jid_dev(sqlite3_stmt *st, const char *jid, uint32_t device)
{
	int rc = sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, device);
	return bind_rc(rc);
}

static int bind_two_texts(sqlite3_stmt *st, const char *a, const char *b)
{
	int rc = sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	return bind_rc(rc);
}

static int aad_fmt(char aad[AAD_MAX], const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static int aad_fmt(char aad[AAD_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(aad, AAD_MAX, fmt, ap);
	va_end(ap);
	return n < 0 || n >= AAD_MAX ? MEND_ERR_INVALID_ARG : 0;
}

/* "<table>|<jid>/<device>", written by hand: it is built for every session read and write. */
static int aad_jid(char aad[AAD_MAX], const char *table, const char *jid, uint32_t device)
{
	char digits[10];
	size_t t, j, n = 0;

	if (!jid)
		return MEND_ERR_INVALID_ARG;
	t = strlen(table);
	j = strlen(jid);
	do
		digits[n++] = (char)('0' + device % 10);
	while ((device /= 10) && n < sizeof(digits));
	if (t + j + n + 3 > AAD_MAX)
		return MEND_ERR_INVALID_ARG;
	memcpy(aad, table, t);
	aad[t++] = '|';
	memcpy(aad + t, jid, j);
	t += j;
	aad[t++] = '/';
	while (n)
		aad[t++] = digits[--n];
	aad[t] = '\0';
	return 0;
}

/* The next seal's nonce, unique: never handed out twice (DESIGN §4). */
static int next_nonce(mend_store *s, uint8_t nonce[SEAL_NONCE_LEN])
{
	int rc = MEND_OK;

	if (s->nonce_next >= sizeof(s->nonces)) {
		rc = mend_nonce(s->nonces, sizeof(s->nonces));
		s->nonce_next = 0;
	}
	if (!rc) {
		memcpy(nonce, s->nonces + s->nonce_next, SEAL_NONCE_LEN);
		s->nonce_next += SEAL_NONCE_LEN;
	}
	return rc;
}

/* Seals `in` into buf[len + SEAL_OVERHEAD]: 0x01 || nonce || ciphertext || tag. */
static int seal_into(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t *buf)
{
	int rc;

	buf[0] = SEAL_VERSION;
	rc = next_nonce(s, buf + 1);
	if (!rc)
		rc = mend_gcm_key_encrypt(s->gcm, buf + 1, SEAL_NONCE_LEN, (const uint8_t *)aad,
		                          strlen(aad), in, len, buf + SEAL_CT_OFF,
		                          buf + SEAL_CT_OFF + len);
	return rc;
}

/* Seals `in` into a new buffer. */
static int seal(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t **out,
                size_t *out_len)
{
	uint8_t *buf = NULL;
	int rc = MEND_ERR_TOO_LARGE;

	if (len > (size_t)INT_MAX - SEAL_OVERHEAD)
		goto out;
	buf = g_malloc(len + SEAL_OVERHEAD);
	rc = seal_into(s, aad, in, len, buf);
	if (rc)
		goto out;
	*out = buf;
	*out_len = len + SEAL_OVERHEAD;
	buf = NULL;
out:
	g_free(buf);
	return rc;
}

/* Opens a sealed value into a new buffer (g_free; never NULL on success). */
static int unseal(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t **out,
                  size_t *out_len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = MEND_ERR_STORE_CORRUPT;

	if (!in || len < SEAL_OVERHEAD || in[0] != SEAL_VERSION)
		goto out;
	n = len - SEAL_OVERHEAD;
	buf = g_malloc(n ? n : 1);
	rc = mend_gcm_key_decrypt(s->gcm, in + 1, SEAL_NONCE_LEN, (const uint8_t *)aad, strlen(aad),
	                          in + SEAL_CT_OFF, n, in + SEAL_CT_OFF + n, MEND_GCM_TAG_LEN, buf);
	if (rc == MEND_ERR_PAYLOAD_AUTH)
		rc = MEND_ERR_STORE_CORRUPT;
	if (rc)
		goto out;
	*out = buf;
	*out_len = n;
	buf = NULL;
out:
	wipe_free(buf, n);
	return rc;
}

/* Unseals column `col` of the current row of `st`. */
static int column_unseal(mend_store *s, sqlite3_stmt *st, int col, const char *aad, uint8_t **out,
                         size_t *len)
{
	const uint8_t *blob = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	return unseal(s, aad, blob, (size_t)n, out, len);
}

/* Steps a bound statement for one row whose column `col` is sealed under aad. */
static int get_sealed(mend_store *s, sqlite3_stmt *st, int col, const char *aad, uint8_t **out,
                      size_t *len)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = column_unseal(s, st, col, aad, out, len);
	else if (rc == SQLITE_DONE)
		rc = MEND_ERR_NOT_FOUND;
	else
		rc = sql_err(rc);
	return rc;
}

/*
 * Seals `data` under aad into parameter `idx` of `st` and steps it. The sealed value
 * lives in the store's scratch buffer, bound without a copy: the caller resets `st`
 * before the next seal (every put does, right after this).
 */
static int put_sealed(mend_store *s, sqlite3_stmt *st, int idx, const char *aad,
                      const uint8_t *data, size_t len)
{
	int rc = MEND_ERR_TOO_LARGE;

	if (len > (size_t)INT_MAX - SEAL_OVERHEAD)
		goto out;
	g_byte_array_set_size(s->scratch, (guint)(len + SEAL_OVERHEAD));
	rc = seal_into(s, aad, data, len, s->scratch->data);
	if (!rc)
		rc = bind_rc(sqlite3_bind_blob(st, idx, s->scratch->data,
		                               (int)(len + SEAL_OVERHEAD), SQLITE_STATIC));
	if (!rc)
		rc = step_done(st);
out:
	return rc;
}

/* Collects the ids in column 0 of every row of `st`. */
static int read_ids(sqlite3_stmt *st, uint32_t **ids, size_t *n)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	uint32_t id;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = (uint32_t)sqlite3_column_int64(st, 0);
		g_array_append_val(a, id);
	}
	if (rc != SQLITE_DONE) {
		rc = sql_err(rc);
		g_array_free(a, TRUE);
		goto out;
	}
	rc = 0;
	*n = a->len;
	*ids = (uint32_t *)(void *)g_array_free(a, FALSE);
out:
	return rc;
}

/* ---- opening ---------------------------------------------------------- */

/* Creates the file with mode 0600 unless it exists; *made when it did not. */
static int create_file(const char *path, int *made)
{
	int fd, rc = 0;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = errno == EEXIST ? 0 : MEND_ERR_STORE;
		goto out;
	}
	*made = 1;
	if (fchmod(fd, 0600) != 0)
		rc = MEND_ERR_STORE;
	close(fd);
out:
	return rc;
}

static int db_open(mend_store *s, const char *path)
{
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* temp_store: savepoint journals stay in memory; on disk they spill past 64 KiB and
	 * a catch-up page (one savepoint per result) wrote its pages there over and over.
	 * cache_size: a catch-up page's changed pages stay in memory until it commits; in
	 * SQLite's 2 MiB they were written to the WAL mid-page, the history's key index
	 * pages again and again (with a 100,000-row history, 4.5 KiB a message against 1.9) */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db,
		                  "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
		                  " PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192;",
		                  NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_err(rc);
}

static int user_version(mend_store *s, int *v)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 n = 0;
	int rc;

	rc = bind_rc(sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL));
	if (!rc)
		rc = step_int(st, &n);
	sqlite3_finalize(st);
	*v = (int)n;
	return rc;
}

/* Whether the key opens the sealed check value (nothing is written). */
static int check_key(mend_store *s)
{
	sqlite3_stmt *st = NULL;
	uint8_t *plain = NULL;
	size_t n = 0;
	int rc;

	rc = bind_rc(
	    sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'check'", -1, &st, NULL));
	if (!rc)
		rc = get_sealed(s, st, 0, CHECK_AAD, &plain, &n);
	if (rc == MEND_ERR_STORE_CORRUPT)
		rc = MEND_ERR_STORE_KEY_WRONG;
	else if (rc == MEND_ERR_NOT_FOUND)
		rc = MEND_ERR_STORE_CORRUPT;
	else if (!rc && (n != strlen(check_plain) || memcmp(plain, check_plain, n) != 0))
		rc = MEND_ERR_STORE_CORRUPT;
	wipe_free(plain, n);
	sqlite3_finalize(st);
	return rc;
}

static int check_create(mend_store *s)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = bind_rc(sqlite3_prepare_v2(s->db, "INSERT INTO meta (key, value) VALUES ('check', ?1)",
	                                -1, &st, NULL));
	if (!rc)
		rc = put_sealed(s, st, 1, CHECK_AAD, (const uint8_t *)check_plain,
		                strlen(check_plain));
	sqlite3_finalize(st);
	return rc;
}

/* Applies the missing migrations in one transaction; *made for a new store. */
static int migrate(mend_store *s, int *made)
{
	char sql[64];
	int v, from, rc;

	rc = db_exec(s, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* Again under the write lock: another process may have been first. */
	rc = user_version(s, &v);
	if (!rc && v > MEND_STORE_SCHEMA_VERSION)
		rc = MEND_ERR_STORE_VERSION;
	if (!rc && v > 0)
		rc = check_key(s);
	*made = !rc && v == 0;
	from = v;
	for (; !rc && v < MEND_STORE_SCHEMA_VERSION; v++)
		rc = db_exec(s, migrations[v]);
	if (!rc && from < SEALED_VERSION)
		rc = mend_store_seal_upgrade(s);
	if (!rc && *made)
		rc = check_create(s);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", MEND_STORE_SCHEMA_VERSION);
	if (!rc)
		rc = db_exec(s, sql);
	if (!rc)
		rc = db_exec(s, "COMMIT");
	if (rc && !sqlite3_get_autocommit(s->db))
		db_exec(s, "ROLLBACK");
out:
	return rc;
}

/*
 * Checks the version and the key before anything is written, so a wrong key
 * or a newer store leaves the file as it was; then WAL and migrations.
 */
static int schema_apply(mend_store *s, int *made)
{
	int v, rc;

	rc = user_version(s, &v);
	if (!rc && v > MEND_STORE_SCHEMA_VERSION)
		rc = MEND_ERR_STORE_VERSION;
	if (!rc && v > 0)
		rc = check_key(s);
	if (!rc)
		rc = db_exec(s, "PRAGMA journal_mode = WAL");
	if (!rc && v < MEND_STORE_SCHEMA_VERSION)
		rc = migrate(s, made);
	return rc;
}

static int prepare_all(mend_store *s)
{
	int i, rc = 0;

	for (i = 0; !rc && i < ST_COUNT; i++)
		rc = bind_rc(sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                                &s->st[i], NULL));
	return rc;
}

/*
 * The crash test's hook (tests/e2e/test_crash.py): MEND_TEST_KILL_AT=POINT:N
 * kills this process with SIGKILL the Nth time it passes POINT (N >= 1), as a
 * power cut would. Unset, nothing happens.
 */
static void kill_hook_init(mend_store *s)
{
	const char *env = getenv("MEND_TEST_KILL_AT");
	const char *colon = env ? strrchr(env, ':') : NULL;
	char *end = NULL;
	long n;

	if (!colon || colon == env)
		return;
	n = strtol(colon + 1, &end, 10);
	if (n < 1 || !end || *end)
		return;
	s->kill_at = g_strndup(env, (gsize)(colon - env));
	s->kill_left = n;
}

void mend_store_kill_point(mend_store *s, const char *point)
{
	if (s && s->kill_at && g_str_equal(s->kill_at, point) && --s->kill_left == 0)
		raise(SIGKILL);
}

void mend_store_on_end(mend_store *s, void (*fn)(int committed, void *data), void *data)
{
	s->on_end = fn;
	s->on_end_data = data;
}

static void ended(mend_store *s, int committed)
{
	deferred_drop(s); /* written by the commit, or rolled back with it */
	if (s->on_end)
		s->on_end(committed, s->on_end_data);
}

int mend_store_open(mend_store **out, const char *path, const uint8_t key[MEND_STORE_KEY_LEN],
                    mend_crypto *c, int *created)
{
	mend_store *s;
	int rc = MEND_ERR_INVALID_ARG, file_made = 0, made = 0;

	if (!out || !path || !key)
		goto out;
	s = g_new0(mend_store, 1);
	s->c = c;
	s->nonce_next = sizeof(s->nonces);
	s->scratch = g_byte_array_new();
	kill_hook_init(s);
	rc = mend_gcm_key_new(&s->gcm, key, MEND_STORE_KEY_LEN);
	if (!rc)
		rc = create_file(path, &file_made);
	if (!rc)
		rc = db_open(s, path);
	if (!rc)
		rc = schema_apply(s, &made);
	if (!rc)
		rc = prepare_all(s);
	if (rc)
		goto close_store;
	*out = s;
	if (created)
		*created = made;
	goto out;
close_store:
	mend_store_close(s);
	if (file_made)
		unlink(path);
out:
	return rc;
}

void mend_store_close(mend_store *s)
{
	int i;

	if (!s)
		return;
	blob_close(s);
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->cached)
		g_hash_table_destroy(s->cached);
	if (s->lists)
		g_hash_table_destroy(s->lists);
	if (s->idents)
		g_hash_table_destroy(s->idents);
	if (s->facts)
		g_hash_table_destroy(s->facts);
	if (s->deferred)
		g_hash_table_destroy(s->deferred);
	sqlite3_close(s->db);
	mend_gcm_key_free(s->gcm);
	g_byte_array_unref(s->scratch);
	g_free(s->kill_at);
	g_free(s);
}

int mend_store_exists(const char *path)
{
	struct stat sb;

	return path && stat(path, &sb) == 0 ? 1 : 0;
}

/* ---- transactions ----------------------------------------------------- */

/* Runs a transaction statement; the blob handle never outlives a transaction level. */
static int run(mend_store *s, enum stmt which)
{
	int rc;

	blob_close(s);
	rc = step_done(s->st[which]);

	st_reset(s->st[which]);
	return rc;
}

int mend_store_depth(mend_store *s)
{
	return s->depth - s->batch;
}

/*
 * A level of a lazy batch's own work runs no SAVEPOINT: SQLite would copy every page it
 * changes into its statement journal, for each message of a catch-up page. Committing it
 * is nothing; rolling it back is nothing as long as it wrote nothing (the usual failure:
 * a message that does not decrypt), else the whole batch is lost (mend_store_batch_lost).
 */
static int lazy_level(mend_store *s)
{
	return s->batch && s->batch_nest && s->lazy && s->depth >= 1 && s->depth + 1 < LAZY_LEVELS;
}

/* Ends level `level` if it is lazy: 1, and a rollback of one that wrote loses the batch. */
static int lazy_end(mend_store *s, int level, int rollback)
{
	uint32_t bit = 1u << level;

	if (level >= LAZY_LEVELS || !(s->lazy_levels & bit))
		return 0;
	s->lazy_levels &= ~bit;
	if (rollback && (writes(s) != s->lazy_mark[level] || sqlite3_get_autocommit(s->db)))
		s->lost = 1;
	return 1;
}

/* Nesting: the outermost level is a transaction, inner levels are savepoints. */
int mend_store_begin(mend_store *s)
{
	int rc;

	if (s->batch && !s->batch_nest)
		mend_store_batch_end(s); /* other work: the batch is made durable first */
	if (lazy_level(s)) {
		s->depth++;
		s->lazy_levels |= 1u << s->depth;
		s->lazy_mark[s->depth] = writes(s);
		return 0;
	}
	if (s->depth == 0)
		s->lost = s->dv_known = 0;
	rc = run(s, s->depth == 0 ? ST_BEGIN : ST_SAVEPOINT);

	if (!rc)
		s->depth++;
	return rc;
}

int mend_store_commit(mend_store *s)
{
	int rc;

	if (s->depth == 0)
		return MEND_ERR_INVALID_ARG;
	if (--s->depth > 0)
		return lazy_end(s, s->depth + 1, 0) ? 0 : run(s, ST_RELEASE);
	s->lazy = 0;
	s->lazy_levels = 0;
	if (!s->lost)
		deferred_flush(s); /* a failure loses the batch */
	mend_store_kill_point(s, "commit");
	rc = s->lost ? MEND_ERR_STORE : run(s, ST_COMMIT);
	/* a failed commit leaves nothing behind */
	if (rc && !sqlite3_get_autocommit(s->db))
		run(s, ST_ROLLBACK);
	if (rc)
		s->rollbacks++;
	else
		mend_store_kill_point(s, "committed");
	ended(s, !rc);
	return rc;
}

void mend_store_rollback(mend_store *s)
{
	if (s->depth == 0)
		return;
	s->rollbacks++;
	if (--s->depth > 0) {
		if (lazy_end(s, s->depth + 1, 1))
			return;
		run(s, ST_ROLLBACK_TO);
		run(s, ST_RELEASE);
		return;
	}
	s->batch = s->batch_nest = s->lazy = 0; /* a batch rolled back: nothing of it is kept */
	s->lazy_levels = 0;
	s->batch_done = NULL;
	s->batch_closing = NULL;
	if (!sqlite3_get_autocommit(s->db))
		run(s, ST_ROLLBACK);
	ended(s, 0);
}

int mend_store_batch_begin(mend_store *s, mend_store_batch_cb done, void *data)
{
	int rc;

	if (s->batch)
		return MEND_OK;
	if (s->depth)
		return MEND_ERR_INVALID_ARG;
	rc = mend_store_begin(s);
	if (rc)
		return rc;
	s->batch = 1;
	s->batch_done = done;
	s->batch_data = data;
	return MEND_OK;
}

int mend_store_batch_open(mend_store *s)
{
	return s->batch;
}

void mend_store_batch_nest(mend_store *s, int on)
{
	s->batch_nest = on;
}

void mend_store_batch_closing(mend_store *s, int (*fn)(void *data))
{
	if (s->batch)
		s->batch_closing = fn;
}

void mend_store_batch_lazy(mend_store *s, int on)
{
	s->lazy = s->batch && on;
}

int mend_store_batch_lost(mend_store *s)
{
	return s->lost;
}

int mend_store_batch_end(mend_store *s)
{
	mend_store_batch_cb done = s->batch_done;
	int (*closing)(void *data);
	int rc;

	if (!s->batch)
		return MEND_OK;
	if (s->depth != 1) /* the batch's own work is still open */
		return MEND_ERR_INVALID_ARG;
	closing = s->batch_closing;
	s->batch_closing = NULL;
	if (closing && closing(s->batch_data) < 0)
		s->lost = 1; /* its last writes failed: nothing of it commits */
	s->batch = s->batch_nest = 0;
	s->batch_done = NULL;
	rc = mend_store_commit(s);
	if (done)
		done(s->batch_data, rc);
	return rc;
}

/* ---- metadata --------------------------------------------------------- */

static int meta_read(sqlite3_stmt *st, char **value)
{
	const unsigned char *text;
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE) {
		rc = MEND_ERR_NOT_FOUND;
	} else if (rc != SQLITE_ROW) {
		rc = sql_err(rc);
	} else {
		text = sqlite3_column_text(st, 0);
		rc = text ? 0 : MEND_ERR_NOMEM;
		if (text)
			*value = g_strdup((const char *)text);
	}
	return rc;
}

int mend_store_meta_get(mend_store *s, const char *key, char **value)
{
	sqlite3_stmt *st = s->st[ST_META_GET];
	int rc = MEND_ERR_INVALID_ARG;

	if (!key || strcmp(key, CHECK_KEY) == 0)
		goto out;
	rc = bind_rc(sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC));
	if (!rc)
		rc = meta_read(st, value);
	st_reset(st);
out:
	return rc;
}

int mend_store_meta_set(mend_store *s, const char *key, const char *value)
{
	sqlite3_stmt *st = s->st[ST_META_SET];
	int rc = MEND_ERR_INVALID_ARG;

	if (!key || !value || strcmp(key, CHECK_KEY) == 0)
		goto out;
	rc = bind_two_texts(st, key, value);
	if (!rc)
		rc = step_done(st);
	st_reset(st);
out:
	return rc;
}

/* ---- our identity ----------------------------------------------------- */

static int identity_read(mend_store *s, sqlite3_stmt *st, uint32_t *device_id, uint8_t **pub,
                         size_t *pub_len, uint8_t **priv, size_t *priv_len)
{
	const void *p = sqlite3_column_blob(st, 1);
	size_t n = (size_t)sqlite3_column_bytes(st, 1);
	int rc = MEND_ERR_STORE_CORRUPT;

	if (!p || n == 0)
		goto out;
	rc = column_unseal(s, st, 2, "identity|", priv, priv_len);
	if (rc)
		goto out;
	*device_id = (uint32_t)sqlite3_column_int64(st, 0);
	*pub = g_malloc(n);
	memcpy(*pub, p, n);
	*pub_len = n;
out:
	return rc;
}

int mend_store_identity_get(mend_store *s, uint32_t *device_id, uint8_t **pub, size_t *pub_len,
                            uint8_t **priv, size_t *priv_len)
{
	sqlite3_stmt *st = s->st[ST_ID_GET];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = identity_read(s, st, device_id, pub, pub_len, priv, priv_len);
	else if (rc == SQLITE_DONE)
		rc = MEND_ERR_NOT_FOUND;
	else
		rc = sql_err(rc);
	st_reset(st);
	return rc;
}

int mend_store_identity_set(mend_store *s, uint32_t device_id, const uint8_t *pub, size_t pub_len,
                            const uint8_t *priv, size_t priv_len)
{
	sqlite3_stmt *st = s->st[ST_ID_SET];
	int rc = MEND_ERR_INVALID_ARG;

	if (!pub || !priv || pub_len == 0 || pub_len > INT_MAX)
		goto out;
	rc = bind_rc(sqlite3_bind_int64(st, 1, device_id));
	if (!rc)
		rc = bind_rc(sqlite3_bind_blob(st, 2, pub, (int)pub_len, SQLITE_STATIC));
	if (!rc)
		rc = put_sealed(s, st, 3, "identity|", priv, priv_len);
	st_reset(st);
out:
	return rc;
}

/* ---- records by id: prekeys and signed prekeys ------------------------ */

static int id_get(mend_store *s, enum stmt which, const char *table, uint32_t id, uint8_t **rec,
                  size_t *len)
{
	sqlite3_stmt *st = s->st[which];
	char aad[AAD_MAX];
	int rc = aad_fmt(aad, "%s|%" G_GUINT32_FORMAT, table, id);

	if (!rc)
		rc = bind_rc(sqlite3_bind_int64(st, 1, id));
	if (!rc)
		rc = get_sealed(s, st, 0, aad, rec, len);
	st_reset(st);
	return rc;
}

/* Stores a sealed record by id; parameter 3, when there is one, is now. */
static int id_put(mend_store *s, enum stmt which, const char *table, uint32_t id,
                  const uint8_t *rec, size_t len)
{
	sqlite3_stmt *st = s->st[which];
	char aad[AAD_MAX];
	int rc = aad_fmt(aad, "%s|%" G_GUINT32_FORMAT, table, id);

	if (!rc)
		rc = bind_rc(sqlite3_bind_int64(st, 1, id));
	if (!rc && sqlite3_bind_parameter_count(st) >= 3)
		rc = bind_rc(sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL)));
	if (!rc)
		rc = put_sealed(s, st, 2, aad, rec, len);
	st_reset(st);
	return rc;
}

/* Runs a statement whose only parameter is an id. */
static int id_run(mend_store *s, enum stmt which, uint32_t id)
{
	sqlite3_stmt *st = s->st[which];
	int rc = bind_rc(sqlite3_bind_int64(st, 1, id));

	if (!rc)
		rc = step_done(st);
	st_reset(st);
	return rc;
}

int mend_store_prekey_get(mend_store *s, uint32_t id, uint8_t **rec, size_t *len)
{
	return id_get(s, ST_PK_GET, "prekeys", id, rec, len);
}

int mend_store_prekey_put(mend_store *s, uint32_t id, const uint8_t *rec, size_t len)
{
	return id_put(s, ST_PK_PUT, "prekeys", id, rec, len);
}

int mend_store_prekey_mark_used(mend_store *s, uint32_t id)
{
	return id_run(s, ST_PK_MARK, id);
}

int mend_store_prekey_delete(mend_store *s, uint32_t id)
{
	return id_run(s, ST_PK_DEL, id);
}

int mend_store_prekey_delete_used(mend_store *s)
{
	return run(s, ST_PK_DEL_USED);
}

int mend_store_prekey_count_unused(mend_store *s, size_t *n)
{
	sqlite3_stmt *st = s->st[ST_PK_COUNT];
	sqlite3_int64 v = 0;
	int rc = step_int(st, &v);

	if (!rc)
		*n = (size_t)v;
	st_reset(st);
	return rc;
}

int mend_store_prekey_max_id(mend_store *s, uint32_t *max_id)
{
	sqlite3_stmt *st = s->st[ST_PK_MAX];
	sqlite3_int64 v = 0;
	int rc = step_int(st, &v);

	if (!rc)
		*max_id = (uint32_t)v;
	st_reset(st);
	return rc;
}

static void pk_items_free(GArray *items)
{
	struct pk_item *it;
	guint i;

	for (i = 0; i < items->len; i++) {
		it = &g_array_index(items, struct pk_item, i);
		wipe_free(it->rec, it->len);
	}
	g_array_free(items, TRUE);
}

/* Reads and unseals every unused prekey first, so the callback may use the store. */
static int pk_collect_unused(mend_store *s, GArray *items)
{
	sqlite3_stmt *st = s->st[ST_PK_UNUSED];
	struct pk_item it;
	char aad[AAD_MAX];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		it.id = (uint32_t)sqlite3_column_int64(st, 0);
		rc = aad_fmt(aad, "prekeys|%" G_GUINT32_FORMAT, it.id);
		if (!rc)
			rc = column_unseal(s, st, 1, aad, &it.rec, &it.len);
		if (rc)
			break;
		g_array_append_val(items, it);
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = sql_err(rc);
	st_reset(st);
	return rc;
}

int mend_store_prekey_foreach_unused(
    mend_store *s, int (*cb)(uint32_t id, const uint8_t *rec, size_t len, void *ud), void *ud)
{
	GArray *items = g_array_new(FALSE, TRUE, sizeof(struct pk_item));
	struct pk_item *it;
	guint i;
	int rc = pk_collect_unused(s, items);

	for (i = 0; !rc && i < items->len; i++) {
		it = &g_array_index(items, struct pk_item, i);
		rc = cb(it->id, it->rec, it->len, ud);
	}
	pk_items_free(items);
	return rc;
}

int mend_store_signed_prekey_get(mend_store *s, uint32_t id, uint8_t **rec, size_t *len)
{
	return id_get(s, ST_SPK_GET, "signed_prekeys", id, rec, len);
}

int mend_store_signed_prekey_put(mend_store *s, uint32_t id, const uint8_t *rec, size_t len)
{
	return id_put(s, ST_SPK_PUT, "signed_prekeys", id, rec, len);
}

int mend_store_signed_prekey_delete(mend_store *s, uint32_t id)
{
	return id_run(s, ST_SPK_DEL, id);
}

int mend_store_signed_prekey_latest(mend_store *s, uint32_t *id)
{
	sqlite3_stmt *st = s->st[ST_SPK_LATEST];
	sqlite3_int64 v = 0;
	int rc = step_int(st, &v);

	if (!rc)
		*id = (uint32_t)v;
	st_reset(st);
	return rc;
}

/* ---- sessions --------------------------------------------------------- */

/* The seal's table name of a session record: legacy records keep the one they had. */
static const char *session_table(int version)
{
	return version == MEND_VERSION_2 ? "sessions2" : "sessions";
}

static int bind_session(sqlite3_stmt *st, const char *jid, uint32_t device, int version)
{
	int rc = version == MEND_VERSION_LEGACY || version == MEND_VERSION_2
	             ? bind_jid_dev(st, jid, device)
	             : MEND_ERR_INVALID_ARG;

	if (!rc)
		rc = bind_rc(sqlite3_bind_int(st, 4, version));
	return rc;
}

/* Notes where the value in column `col` of `st`'s row lives: the row id in column idcol. */
static void note_row(sqlite3_stmt *st, int col, int idcol, mend_store_row *row)
{
	const uint8_t *blob = sqlite3_column_blob(st, col);

	row->id = sqlite3_column_int64(st, idcol);
	if (blob && sqlite3_column_bytes(st, col) >= SEAL_CT_OFF)
		memcpy(row->nonce, blob + 1, SEAL_NONCE_LEN);
	else
		row->id = 0;
}

int mend_store_session_get_row(mend_store *s, const char *jid, uint32_t device, int version,
                               uint8_t **rec, size_t *len, mend_store_row *row)
{
	sqlite3_stmt *st = s->st[ST_SESS_GET];
	char aad[AAD_MAX];
	int rc = aad_jid(aad, session_table(version), jid, device);

	if (!rc)
		rc = deferred_flush(s);
	if (!rc)
		rc = bind_session(st, jid, device, version);
	if (!rc)
		rc = get_sealed(s, st, 0, aad, rec, len);
	if (!rc && row)
		note_row(st, 0, 1, row);
	st_reset(st);
	return rc;
}

int mend_store_session_get_v(mend_store *s, const char *jid, uint32_t device, int version,
                             uint8_t **rec, size_t *len)
{
	return mend_store_session_get_row(s, jid, device, version, rec, len, NULL);
}

/* Where a session was just written. */
static int session_row(mend_store *s, const char *jid, uint32_t device, int version,
                       mend_store_row *row)
{
	sqlite3_stmt *st = s->st[ST_SESS_GET];
	int rc = bind_session(st, jid, device, version);

	if (!rc)
		rc = sqlite3_step(st) == SQLITE_ROW ? 0 : MEND_ERR_STORE;
	if (!rc)
		note_row(st, 0, 1, row);
	st_reset(st);
	return rc;
}

/* Points the store's blob handle at the record of row `id` (opened once per transaction). */
static int blob_at(mend_store *s, int64_t id)
{
	int rc = s->blob ? sqlite3_blob_reopen(s->blob, id)
	                 : sqlite3_blob_open(s->db, "main", "sessions", "record", id, 1, &s->blob);

	if (rc != SQLITE_OK)
		blob_close(s); /* after a failed open or reopen the handle is of no more use */
	return rc;
}

/*
 * Overwrites the sealed record of row->id in place when the row still holds the seal
 * row->nonce names and the new seal has the same size: 1 done, 0 not (write otherwise),
 * <0 on a failed write. Only inside a transaction: an open blob handle outside one would
 * keep a write transaction open.
 */
static int session_write_in_place(mend_store *s, const char *aad, const uint8_t *rec, size_t len,
                                  mend_store_row *row)
{
	size_t n = len + SEAL_OVERHEAD;
	uint8_t was[SEAL_NONCE_LEN];
	int rc;

	if (s->depth == 0 || row->id <= 0 || len > (size_t)INT_MAX - SEAL_OVERHEAD)
		return 0;
	if (blob_at(s, row->id) != SQLITE_OK || sqlite3_blob_bytes(s->blob) != (int)n ||
	    sqlite3_blob_read(s->blob, was, SEAL_NONCE_LEN, 1) != SQLITE_OK ||
	    memcmp(was, row->nonce, SEAL_NONCE_LEN) != 0)
		return 0;
	g_byte_array_set_size(s->scratch, (guint)n);
	rc = seal_into(s, aad, rec, len, s->scratch->data);
	s->blob_writes++; /* before: a failed write may have written part */
	if (!rc && sqlite3_blob_write(s->blob, s->scratch->data, (int)n, 0) != SQLITE_OK) {
		blob_close(s);
		rc = MEND_ERR_STORE;
	}
	if (!rc)
		memcpy(row->nonce, s->scratch->data + 1, SEAL_NONCE_LEN);
	return rc < 0 ? rc : 1;
}

static void deferred_free(gpointer p)
{
	struct sess_deferred *d = p;

	explicit_bzero(d->rec->data, d->rec->len);
	g_byte_array_unref(d->rec);
	g_free(d->jid);
	g_free(d);
}

/* Forgets the kept writes (the batch rolled back, or they were written). */
static void deferred_drop(mend_store *s)
{
	if (s->deferred)
		g_hash_table_remove_all(s->deferred);
}

/*
 * Keeps the write of row->id's record for the batch's commit when the level open now is
 * lazy (only a lazy batch's own work, a catch-up page, runs in one): 1 kept, 0 write it
 * now. A kept write counts as a write of the level: rolling the level back loses the
 * batch, whose kept writes are then dropped with it.
 */
static int session_defer(mend_store *s, const char *aad, const char *jid, uint32_t device,
                         int version, const uint8_t *rec, size_t len, const mend_store_row *row)
{
	struct sess_deferred *d;

	if (row->id <= 0 || s->depth >= LAZY_LEVELS || !(s->lazy_levels & (1u << s->depth)) ||
	    len > (size_t)INT_MAX - SEAL_OVERHEAD)
		return 0;
	if (!s->deferred)
		s->deferred =
		    g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, deferred_free);
	d = g_hash_table_lookup(s->deferred, &row->id);
	if (!d) {
		d = g_new0(struct sess_deferred, 1);
		d->id = row->id;
		memcpy(d->nonce, row->nonce, SEAL_NONCE_LEN);
		g_strlcpy(d->aad, aad, sizeof(d->aad));
		d->jid = g_strdup(jid);
		d->device = device;
		d->version = version;
		d->rec = g_byte_array_new();
		g_hash_table_insert(s->deferred, &d->id, d);
	} else {
		explicit_bzero(d->rec->data, d->rec->len);
	}
	g_byte_array_set_size(d->rec, (guint)len);
	memcpy(d->rec->data, rec, len);
	s->blob_writes++;
	return 1;
}

/* Writes a session record by its key (jid, device, version): the row is made or replaced. */
static int session_put_by_key(mend_store *s, const char *aad, const char *jid, uint32_t device,
                              int version, const uint8_t *rec, size_t len)
{
	sqlite3_stmt *st = s->st[ST_SESS_PUT];
	int rc = bind_session(st, jid, device, version);

	if (!rc) {
		fact_forget(s, aad); /* mend_store_session_exists_v's answer */
		rc = put_sealed(s, st, 3, aad, rec, len);
	}
	st_reset(st);
	return rc;
}

/* Writes one kept record: in place when its row still holds the seal it held, else by key. */
static int deferred_write(mend_store *s, struct sess_deferred *d)
{
	mend_store_row row = {.id = d->id};
	int rc;

	memcpy(row.nonce, d->nonce, SEAL_NONCE_LEN);
	rc = session_write_in_place(s, d->aad, d->rec->data, d->rec->len, &row);
	if (rc)
		return rc < 0 ? rc : 0;
	return session_put_by_key(s, d->aad, d->jid, d->device, d->version, d->rec->data,
	                          d->rec->len);
}

/* Writes the kept session records (before the batch commits, and before anything reads or
 * deletes session rows); on a failure the batch is lost, as a failed write loses it. */
static int deferred_flush(mend_store *s)
{
	GHashTableIter it;
	gpointer v;
	int rc = 0;

	if (!s->deferred || g_hash_table_size(s->deferred) == 0)
		return 0;
	g_hash_table_iter_init(&it, s->deferred);
	while (!rc && g_hash_table_iter_next(&it, NULL, &v))
		rc = deferred_write(s, v);
	deferred_drop(s);
	if (rc)
		s->lost = 1;
	return rc;
}

int mend_store_session_put_row(mend_store *s, const char *jid, uint32_t device, int version,
                               const uint8_t *rec, size_t len, mend_store_row *row)
{
	char aad[AAD_MAX];
	int rc = aad_jid(aad, session_table(version), jid, device);

	if (!rc && row && (version == MEND_VERSION_LEGACY || version == MEND_VERSION_2)) {
		rc = session_defer(s, aad, jid, device, version, rec, len, row);
		if (!rc)
			rc = session_write_in_place(s, aad, rec, len, row);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = session_put_by_key(s, aad, jid, device, version, rec, len);
	if (!rc && row)
		rc = session_row(s, jid, device, version, row);
	return rc;
}

int mend_store_session_put_v(mend_store *s, const char *jid, uint32_t device, int version,
                             const uint8_t *rec, size_t len)
{
	return mend_store_session_put_row(s, jid, device, version, rec, len, NULL);
}

/* Runs a statement over (jid, device, version); `exists` for a 1/0 answer. */
static int session_run(mend_store *s, enum stmt which, const char *jid, uint32_t device,
                       int version, int exists)
{
	sqlite3_stmt *st = s->st[which];
	int rc = MEND_ERR_INVALID_ARG;

	if (jid)
		rc = bind_session(st, jid, device, version);
	if (!rc)
		rc = exists ? step_exists(st) : step_done(st);
	st_reset(st);
	return rc;
}

/* Read for every message: its answer is cached (mend_store_fact_get) under the seal's AAD. */
int mend_store_session_exists_v(mend_store *s, const char *jid, uint32_t device, int version)
{
	const char *table = session_table(version);
	int valid = jid && (version == MEND_VERSION_LEGACY || version == MEND_VERSION_2), rc;

	if (valid && mend_store_fact_get(s, table, jid, device, &rc))
		return rc;
	rc = session_run(s, ST_SESS_EXISTS, jid, device, version, 1);
	if (valid && rc >= 0)
		mend_store_fact_put(s, table, jid, device, rc);
	return rc;
}

int mend_store_session_delete_v(mend_store *s, const char *jid, uint32_t device, int version)
{
	char key[AAD_MAX];
	int rc = deferred_flush(s);

	if (jid && aad_jid(key, session_table(version), jid, device) == 0)
		fact_forget(s, key);
	return rc ? rc : session_run(s, ST_SESS_DEL, jid, device, version, 0);
}

int mend_store_session_get(mend_store *s, const char *jid, uint32_t device, uint8_t **rec,
                           size_t *len)
{
	return mend_store_session_get_v(s, jid, device, MEND_VERSION_LEGACY, rec, len);
}

int mend_store_session_put(mend_store *s, const char *jid, uint32_t device, const uint8_t *rec,
                           size_t len)
{
	return mend_store_session_put_v(s, jid, device, MEND_VERSION_LEGACY, rec, len);
}

int mend_store_session_exists(mend_store *s, const char *jid, uint32_t device)
{
	return mend_store_session_exists_v(s, jid, device, MEND_VERSION_LEGACY);
}

int mend_store_session_delete(mend_store *s, const char *jid, uint32_t device)
{
	return mend_store_session_delete_v(s, jid, device, MEND_VERSION_LEGACY);
}

/* Runs a statement over jid: rows with ids (ids != NULL) or none. */
static int jid_run(mend_store *s, enum stmt which, const char *jid, uint32_t **ids, size_t *n)
{
	sqlite3_stmt *st = s->st[which];
	int rc = MEND_ERR_INVALID_ARG;

	if (jid)
		rc = bind_rc(sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC));
	if (!rc)
		rc = ids ? read_ids(st, ids, n) : step_done(st);
	st_reset(st);
	return rc;
}

int mend_store_session_delete_all(mend_store *s, const char *jid)
{
	int rc = deferred_flush(s);

	mend_store_cache_drop(s);
	return rc ? rc : jid_run(s, ST_SESS_DEL_ALL, jid, NULL, NULL);
}

int mend_store_session_devices_v(mend_store *s, const char *jid, int version, uint32_t **ids,
                                 size_t *n)
{
	sqlite3_stmt *st = s->st[ST_SESS_DEVICES];
	int rc = MEND_ERR_INVALID_ARG;

	if (jid)
		rc = bind_session(st, jid, 0, version);
	if (!rc)
		rc = read_ids(st, ids, n);
	st_reset(st);
	return rc;
}

int mend_store_session_devices(mend_store *s, const char *jid, uint32_t **ids, size_t *n)
{
	return mend_store_session_devices_v(s, jid, MEND_VERSION_LEGACY, ids, n);
}

/* ---- peer identities: (trust, key) sealed together -------------------- */

/* ---- read caches -------------------------------------------------------- */

/*
 * PRAGMA data_version: what changes when another connection (another mend process)
 * commits. Inside our open transaction (BEGIN IMMEDIATE: it holds WAL's one write lock
 * and reads one snapshot) no other connection can commit, so it is read once per
 * transaction (mend_store_begin forgets it); outside one, at every call.
 */
static int data_version(mend_store *s, sqlite3_int64 *v)
{
	sqlite3_stmt *st = s->st[ST_DATA_VERSION];
	int in_txn = s->depth > 0 && !sqlite3_get_autocommit(s->db), rc;

	if (in_txn && s->dv_known) {
		*v = s->dv;
		return 0;
	}
	rc = step_int(st, v);
	st_reset(st);
	s->dv = *v;
	s->dv_known = in_txn && !rc;
	return rc;
}

/* What changes when another connection commits or a rollback of ours undoes something;
 * <0 when it cannot be read. */
static int store_state(mend_store *s, uint64_t *state)
{
	sqlite3_int64 v = 0;
	int rc = data_version(s, &v);

	*state = ((uint64_t)v << 32) ^ s->rollbacks;
	return rc;
}

static void array_free(gpointer a)
{
	g_array_free(a, TRUE);
}

void mend_store_cache_drop(mend_store *s)
{
	if (s->lists) {
		g_hash_table_remove_all(s->lists);
		g_hash_table_remove_all(s->idents);
		g_hash_table_remove_all(s->facts);
	}
}

/*
 * Whether the read caches (a contact's device list, a device's identity key and trust,
 * the small per-device answers of mend_store_fact_get: read for every message) may be
 * used, emptied first when they may be stale: since they were filled another process
 * committed (PRAGMA data_version) or a rollback undid something. Writes through this store
 * empty them themselves (mend_store_cache_drop; mend_store_stmt for the statements it hands
 * out).
 */
static int cache_ok(mend_store *s)
{
	uint64_t now;

	if (store_state(s, &now) < 0)
		return 0;
	if (!s->lists) {
		s->lists = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, array_free);
		s->idents = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
		                                  (GDestroyNotify)g_bytes_unref);
		s->facts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	}
	if (now != s->cache_state || g_hash_table_size(s->lists) + g_hash_table_size(s->idents) +
	                                     g_hash_table_size(s->facts) >=
	                                 CACHE_MAX) {
		mend_store_cache_drop(s);
		s->cache_state = now;
	}
	return 1;
}

int mend_store_fact_get(mend_store *s, const char *what, const char *jid, uint32_t device, int *v)
{
	char key[AAD_MAX];
	gpointer found = NULL;

	if (aad_jid(key, what, jid, device) < 0 || !cache_ok(s) ||
	    !g_hash_table_lookup_extended(s->facts, key, NULL, &found))
		return 0;
	*v = GPOINTER_TO_INT(found);
	return 1;
}

void mend_store_fact_put(mend_store *s, const char *what, const char *jid, uint32_t device, int v)
{
	char key[AAD_MAX];

	if (aad_jid(key, what, jid, device) == 0 && cache_ok(s))
		g_hash_table_insert(s->facts, g_strdup(key), GINT_TO_POINTER(v));
}

/* Forgets one answer (its row is written). */
static void fact_forget(mend_store *s, const char *key)
{
	if (s->facts)
		g_hash_table_remove(s->facts, key);
}

static int peer_split(uint8_t *plain, size_t n, uint8_t **key, size_t *len, int *trust)
{
	uint32_t t;

	if (n < 4)
		return MEND_ERR_STORE_CORRUPT;
	t = (uint32_t)plain[0] << 24 | (uint32_t)plain[1] << 16 | (uint32_t)plain[2] << 8 |
	    plain[3];
	*trust = (int)(int32_t)t;
	memmove(plain, plain + 4, n - 4);
	*key = plain;
	*len = n - 4;
	return 0;
}

int mend_store_peer_identity_get(mend_store *s, const char *jid, uint32_t device, uint8_t **key,
                                 size_t *len, int *trust)
{
	sqlite3_stmt *st = s->st[ST_PEER_GET];
	char aad[AAD_MAX];
	uint8_t *plain = NULL;
	size_t n = 0;
	int rc = aad_jid(aad, "peer_identities", jid, device), cache = !rc && cache_ok(s);
	GBytes *hit = cache ? g_hash_table_lookup(s->idents, aad) : NULL;

	if (hit) {
		n = g_bytes_get_size(hit);
		plain = g_memdup2(g_bytes_get_data(hit, NULL), n);
		return peer_split(plain, n, key, len, trust);
	}
	if (!rc)
		rc = bind_jid_dev(st, jid, device);
	if (!rc)
		rc = get_sealed(s, st, 0, aad, &plain, &n);
	st_reset(st);
	if (!rc && cache && n >= 4)
		g_hash_table_insert(s->idents, g_strdup(aad), g_bytes_new(plain, n));
	if (!rc)
		rc = peer_split(plain, n, key, len, trust);
	if (rc)
		wipe_free(plain, n);
	return rc;
}

int mend_store_peer_identity_put(mend_store *s, const char *jid, uint32_t device,
                                 const uint8_t *key, size_t len, int trust)
{
	sqlite3_stmt *st = s->st[ST_PEER_PUT];
	char aad[AAD_MAX];
	uint32_t t = (uint32_t)trust;
	uint8_t *plain = NULL;
	int rc = aad_jid(aad, "peer_identities", jid, device);

	if (!rc && (!key || len > (size_t)INT_MAX - 4))
		rc = MEND_ERR_INVALID_ARG;
	if (rc)
		goto out;
	mend_store_cache_drop(s);
	plain = g_malloc(len + 4);
	plain[0] = t >> 24;
	plain[1] = t >> 16;
	plain[2] = t >> 8;
	plain[3] = t;
	memcpy(plain + 4, key, len);
	rc = bind_jid_dev(st, jid, device);
	if (!rc)
		rc = bind_rc(sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL)));
	if (!rc)
		rc = put_sealed(s, st, 3, aad, plain, len + 4);
	st_reset(st);
	g_free(plain);
out:
	return rc;
}

/* ---- device lists ----------------------------------------------------- */

static int device_activate(mend_store *s, const char *jid, uint32_t device)
{
	sqlite3_stmt *st = s->st[ST_DEV_ACT];
	int rc = bind_jid_dev(st, jid, device);

	/* last_seen: 0 until a message from it arrives (mend_store_device_touch) */
	if (!rc)
		rc = bind_rc(sqlite3_bind_int64(st, 3, 0));
	if (!rc)
		rc = step_done(st);
	st_reset(st);
	return rc;
}

int mend_store_devicelist_set(mend_store *s, const char *jid, const uint32_t *ids, size_t n)
{
	size_t i;
	int rc = MEND_ERR_INVALID_ARG;

	if (!jid || (n && !ids))
		goto out;
	rc = mend_store_begin(s);
	if (rc)
		goto out;
	mend_store_cache_drop(s);
	rc = jid_run(s, ST_DEV_DEACT, jid, NULL, NULL);
	for (i = 0; !rc && i < n; i++)
		rc = device_activate(s, jid, ids[i]);
	if (!rc) /* what decides delivery is sealed (DESIGN §4) */
		rc = mend_store_sealed_list_set(s, jid, ids, n);
	if (rc)
		mend_store_rollback(s);
	else
		rc = mend_store_commit(s);
out:
	return rc;
}

/* Active ids that the sealed list confirms: a row edited to active counts for nothing. */
int mend_store_devicelist_get(mend_store *s, const char *jid, uint32_t **ids, size_t *n)
{
	int cache = jid && cache_ok(s), rc;
	GArray *hit = cache ? g_hash_table_lookup(s->lists, jid) : NULL;

	if (hit) {
		*n = hit->len;
		*ids = hit->len ? g_memdup2(hit->data, hit->len * sizeof(uint32_t)) : NULL;
		return 0;
	}
	rc = jid_run(s, ST_DEV_GET, jid, ids, n);
	if (!rc)
		rc = mend_store_sealed_list_filter(s, jid, *ids, n);
	if (!rc && cache) {
		hit = g_array_sized_new(FALSE, FALSE, sizeof(uint32_t), (guint)*n);
		g_array_append_vals(hit, *ids, (guint)*n);
		g_hash_table_insert(s->lists, g_strdup(jid), hit);
	}
	return rc;
}

int mend_store_device_set_broken(mend_store *s, const char *jid, uint32_t device, int broken)
{
	sqlite3_stmt *st = s->st[ST_DEV_BROKEN_SET];
	int rc = MEND_ERR_INVALID_ARG;

	if (jid)
		rc = bind_jid_dev(st, jid, device);
	if (!rc) {
		mend_store_cache_drop(s);
		rc = bind_rc(sqlite3_bind_int(st, 3, broken ? 1 : 0));
	}
	if (!rc)
		rc = bind_rc(sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL)));
	if (!rc)
		rc = step_done(st);
	st_reset(st);
	return rc;
}

int mend_store_device_is_broken(mend_store *s, const char *jid, uint32_t device)
{
	sqlite3_stmt *st = s->st[ST_DEV_BROKEN_GET];
	sqlite3_int64 v = 0;
	int rc = MEND_ERR_INVALID_ARG;

	if (jid)
		rc = bind_jid_dev(st, jid, device);
	if (!rc)
		rc = step_int(st, &v);
	if (rc == MEND_ERR_NOT_FOUND)
		rc = 0;
	else if (!rc)
		rc = v != 0;
	st_reset(st);
	return rc;
}

/* ---- seen stanza ids (XEP-0359) --------------------------------------- */

static int stanza_seen(mend_store *s, enum stmt which, const char *by, const char *id)
{
	sqlite3_stmt *st = s->st[which];
	int rc = MEND_ERR_INVALID_ARG;

	if (by && id)
		rc = bind_two_texts(st, by, id);
	if (!rc)
		rc = step_exists(st);
	st_reset(st);
	return rc;
}

int mend_store_stanza_seen(mend_store *s, const char *by, const char *id)
{
	return stanza_seen(s, ST_SEEN, by, id);
}

int mend_store_stanza_seen_or_kept(mend_store *s, const char *by, const char *id)
{
	return stanza_seen(s, ST_SEEN_KEPT, by, id);
}

int mend_store_stanza_mark(mend_store *s, const char *by, const char *id)
{
	sqlite3_stmt *st = s->st[ST_MARK];
	int rc = MEND_ERR_INVALID_ARG;

	if (by && id)
		rc = bind_two_texts(st, by, id);
	if (!rc)
		rc = bind_rc(sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL)));
	if (!rc)
		rc = step_done(st);
	st_reset(st);
	return rc;
}

/* ---- for the message-level tables (store_msgs.c) ------------------------ */

int mend_store_seal(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t **out,
                    size_t *out_len)
{
	return seal(s, aad, in, len, out, out_len);
}

int mend_store_unseal(mend_store *s, const char *aad, const uint8_t *in, size_t len, uint8_t **out,
                      size_t *out_len)
{
	return unseal(s, aad, in, len, out, out_len);
}

sqlite3 *mend_store_db(mend_store *s)
{
	return s->db;
}

uint64_t mend_store_state(mend_store *s)
{
	uint64_t state;

	if (store_state(s, &state) < 0)
		state = ((uint64_t)-1 << 32) ^ s->rollbacks;
	return state;
}

static void finalize_stmt(gpointer p)
{
	struct cached_stmt *c = p;

	sqlite3_finalize(c->st);
	g_free(c);
}

/* The tables the read caches read: a statement that writes one empties them. */
static int cached_table(const char *table)
{
	static const char *const tables[] = {"sessions", "devices", "device_versions",
	                                     "peer_identities"};
	size_t i;

	for (i = 0; table && i < G_N_ELEMENTS(tables); i++)
		if (g_ascii_strcasecmp(table, tables[i]) == 0)
			return 1;
	return 0;
}

/* SQLite's authorizer as a statement is prepared: notes whether it writes a cached table. */
static int note_writes(void *data, int action, const char *a, const char *b, const char *c,
                       const char *d)
{
	struct cached_stmt *cs = data;
	int write = action == SQLITE_INSERT || action == SQLITE_UPDATE || action == SQLITE_DELETE;

	(void)b;
	(void)c;
	(void)d;
	if (write && cached_table(a))
		cs->drops = 1;
	if ((write || action == SQLITE_READ) && a && g_ascii_strcasecmp(a, "sessions") == 0)
		cs->sessions = 1;
	return SQLITE_OK;
}

static int stmt_prepare(mend_store *s, const char *sql, struct cached_stmt **out)
{
	struct cached_stmt *c = g_new0(struct cached_stmt, 1);
	int rc;

	sqlite3_set_authorizer(s->db, note_writes, c);
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st, NULL);
	sqlite3_set_authorizer(s->db, NULL, NULL);
	if (rc != SQLITE_OK) {
		g_free(c);
		return sql_err(rc);
	}
	*out = c;
	return 0;
}

/*
 * A statement that writes a table the read caches read empties them as it is handed out:
 * its caller steps it before it reads through the store again (every caller does at once).
 */
int mend_store_stmt(mend_store *s, const char *sql, sqlite3_stmt **out)
{
	struct cached_stmt *c;
	int rc;

	if (!s->cached)
		s->cached =
		    g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, finalize_stmt);
	c = g_hash_table_lookup(s->cached, sql);
	if (!c) {
		rc = stmt_prepare(s, sql, &c);
		if (rc)
			return rc;
		g_hash_table_insert(s->cached, (gpointer)sql, c);
	}
	if (c->drops)
		mend_store_cache_drop(s);
	if (c->sessions) {
		rc = deferred_flush(s);
		if (rc)
			return rc;
	}
	*out = c->st;
	return 0;
}
