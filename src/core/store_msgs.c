/*
 * store_msgs.c - the message-level tables of the store: the pending-send
 * queue (a message survives a restart until it has left, and a stanza
 * encrypted before a crash is resent as is), the sealed local history, and
 * what we saw of each device. Values are sealed like every secret of the
 * store (store.c); statements here run once per message, so they are
 * prepared per call.
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include "mend/mend.h"
#include "store.h"

#define HISTORY_TYPE    "(ssusssiii)"
#define HISTORY_STRINGS 5 /* of HISTORY_TYPE: from, body, timestamp, stanza_id, msg_id */

static int sql_err(int rc)
{
	return (rc & 0xff) == SQLITE_NOMEM ? MEND_ERR_NOMEM : MEND_ERR_STORE;
}

static int prepare(mend_store *s, const char *sql, sqlite3_stmt **st)
{
	return mend_store_stmt(s, sql, st);
}

/* Done with a cached statement: reset it for the next use. */
static void finish(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement to its end and resets it. */
static int exec_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	finish(st);
	return rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
}

static int bind_sealed(mend_store *s, sqlite3_stmt *st, int idx, const char *aad, const void *data,
                       size_t len)
{
	uint8_t *sealed = NULL;
	size_t n = 0;
	int r = mend_store_seal(s, aad, data, len, &sealed, &n);

	if (r < 0)
		return r;
	/* SQLite frees `sealed` with g_free, even when binding fails */
	r = sqlite3_bind_blob(st, idx, sealed, (int)n, g_free);
	return r == SQLITE_OK ? MEND_OK : sql_err(r);
}

/* Unseals column `col` into a NUL-terminated string. */
static int column_text(mend_store *s, sqlite3_stmt *st, int col, const char *aad, char **out)
{
	uint8_t *plain = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return MEND_OK;
	r = mend_store_unseal(s, aad, sqlite3_column_blob(st, col),
	                      (size_t)sqlite3_column_bytes(st, col), &plain, &len);
	if (r < 0)
		return r;
	*out = g_strndup((const char *)plain, len);
	explicit_bzero(plain, len);
	g_free(plain);
	return MEND_OK;
}

/* --- pending --------------------------------------------------------------- */

int mend_store_pending_add(mend_store *s, const char *jid, const char *msg_id, const char *body)
{
	return mend_store_pending_add_flags(s, jid, msg_id, body, 0);
}

int mend_store_pending_set_flags(mend_store *s, int64_t row, unsigned flags)
{
	sqlite3_stmt *st = NULL;
	int r = prepare(s, "UPDATE pending SET flags = ?1 WHERE id = ?2", &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, flags);
	sqlite3_bind_int64(st, 2, row);
	return exec_done(st);
}

int mend_store_pending_add_flags(mend_store *s, const char *jid, const char *msg_id,
                                 const char *body, unsigned flags)
{
	/* the recipient is bound in: a row moved to another jid does not open */
	char *aad = g_strconcat("pending|", jid, "|", msg_id, NULL);
	sqlite3_stmt *st = NULL;
	int r;

	r = prepare(s,
	            "INSERT INTO pending (jid, body, created, msg_id, flags)"
	            " VALUES (?1, ?2, ?3, ?4, ?5)",
	            &st);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 5, flags);
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, g_get_real_time() / G_USEC_PER_SEC);
	sqlite3_bind_text(st, 4, msg_id, -1, SQLITE_STATIC);
	r = bind_sealed(s, st, 2, aad, body, strlen(body));
	if (r < 0)
		finish(st);
	else
		r = exec_done(st);
out:
	g_free(aad);
	return r;
}

static int pending_row(mend_store *s, sqlite3_stmt *st, mend_pending *p)
{
	char *aad;
	int r;

	p->row = sqlite3_column_int64(st, 0);
	p->jid = g_strdup((const char *)sqlite3_column_text(st, 1));
	p->msg_id = g_strdup((const char *)sqlite3_column_text(st, 2));
	p->flags = (unsigned)sqlite3_column_int64(st, 5);
	aad = g_strconcat("pending|", p->jid, "|", p->msg_id, NULL);
	r = column_text(s, st, 3, aad, &p->body);
	if (r == MEND_OK)
		r = column_text(s, st, 4, aad, &p->stanza);
	g_free(aad);
	return r;
}

int mend_store_pending_list(mend_store *s, const char *jid, GArray *out)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = prepare(s,
	            "SELECT id, jid, msg_id, body, stanza, flags FROM pending"
	            " WHERE ?1 IS NULL OR jid = ?1 ORDER BY id",
	            &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mend_pending p = {0};

		r = pending_row(s, st, &p);
		if (r == MEND_ERR_STORE_CORRUPT) { /* edited (another recipient?): never sent */
			mend_pending_clear(&p);
			r = MEND_OK;
			continue;
		}
		if (r < 0) {
			mend_pending_clear(&p);
			break;
		}
		g_array_append_val(out, p);
	}
	if (r == MEND_OK && rc != SQLITE_DONE)
		r = sql_err(rc);
	finish(st);
	return r;
}

int mend_store_pending_set_stanza(mend_store *s, const mend_pending *p, const char *stanza)
{
	char *aad = g_strconcat("pending|", p->jid, "|", p->msg_id, NULL);
	sqlite3_stmt *st = NULL;
	int r;

	r = prepare(s, "UPDATE pending SET stanza = ?1 WHERE id = ?2", &st);
	if (r == MEND_OK) {
		sqlite3_bind_int64(st, 2, p->row);
		r = bind_sealed(s, st, 1, aad, stanza, strlen(stanza));
		if (r < 0)
			finish(st);
		else
			r = exec_done(st);
	}
	g_free(aad);
	return r;
}

int mend_store_pending_delete(mend_store *s, int64_t row)
{
	sqlite3_stmt *st = NULL;
	int r = prepare(s, "DELETE FROM pending WHERE id = ?1", &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, row);
	return exec_done(st);
}

int mend_store_pending_count(mend_store *s, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int r = prepare(s, "SELECT count(*) FROM pending", &st);

	if (r < 0)
		return r;
	r = sqlite3_step(st) == SQLITE_ROW ? MEND_OK : MEND_ERR_STORE;
	*n = r == MEND_OK ? (size_t)sqlite3_column_int64(st, 0) : 0;
	finish(st);
	return r;
}

void mend_pending_clear(mend_pending *p)
{
	g_free(p->jid);
	g_free(p->msg_id);
	if (p->body)
		explicit_bzero(p->body, strlen(p->body));
	g_free(p->body);
	g_free(p->stanza);
	memset(p, 0, sizeof(*p));
}

/* --- history --------------------------------------------------------------- */

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* Writes the offset `v` in `w` bytes, little-endian (GVariant framing offsets). */
static void put_le(uint8_t *p, size_t v, size_t w)
{
	for (size_t i = 0; i < w; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

/* Copies a string with its NUL to `at`; its end (a framing offset) back. */
static size_t put_str(uint8_t *buf, size_t at, const char *v, size_t n)
{
	memcpy(buf + at, v, n + 1);
	return at + n + 1;
}

/* A 32-bit member at the next multiple of 4 (zero padding), in host order as GVariant's. */
static size_t put_u32(uint8_t *buf, size_t at, uint32_t v)
{
	while (at & 3)
		buf[at++] = 0;
	memcpy(buf + at, &v, sizeof(v));
	return at + sizeof(v);
}

/*
 * The serialised GVariant of HISTORY_TYPE, byte for byte what g_variant_new() and
 * g_variant_get_data() give, without their per-member allocations (a catch-up writes a
 * row per message). GVariant specification, "Structures": the members in order, each at
 * its alignment; then the end offset of every variable-size member but the last (the
 * five strings), the first one last, each as wide as the whole needs (1, 2, 4 or 8
 * bytes). g_free the result (*len bytes).
 */
uint8_t *mend_store_history_data(const mend_history_item *it, size_t *len)
{
	const char *str[HISTORY_STRINGS] = {nz(it->from), nz(it->body), nz(it->timestamp),
	                                    nz(it->stanza_id), nz(it->msg_id)};
	size_t n[HISTORY_STRINGS], ends[HISTORY_STRINGS], body = 0, w = 8, at = 0, i;
	uint8_t *buf;

	for (i = 0; i < HISTORY_STRINGS; i++)
		n[i] = strlen(str[i]);
	/* the size the members take, with the padding before the device and the carbon flag */
	body = n[0] + n[1] + 2;
	body += (-body & 3) + 4 + n[2] + n[3] + n[4] + 3;
	body += (-body & 3) + 3 * 4;
	if (body + HISTORY_STRINGS <= G_MAXUINT8)
		w = 1;
	else if (body + 2 * HISTORY_STRINGS <= G_MAXUINT16)
		w = 2;
	else if (body + 4 * HISTORY_STRINGS <= G_MAXUINT32)
		w = 4;
	buf = g_malloc(body + w * HISTORY_STRINGS);
	ends[0] = at = put_str(buf, at, str[0], n[0]);
	ends[1] = at = put_str(buf, at, str[1], n[1]);
	at = put_u32(buf, at, it->device);
	for (i = 2; i < HISTORY_STRINGS; i++)
		ends[i] = at = put_str(buf, at, str[i], n[i]);
	at = put_u32(buf, at, (uint32_t)it->carbon);
	at = put_u32(buf, at, (uint32_t)it->outgoing);
	at = put_u32(buf, at, (uint32_t)it->error);
	for (i = 0; i < HISTORY_STRINGS; i++)
		put_le(buf + at + w * (HISTORY_STRINGS - 1 - i), ends[i], w);
	*len = at + w * HISTORY_STRINGS;
	return buf;
}

int mend_store_history_put(mend_store *s, const mend_history_item *it)
{
	size_t len = 0;
	uint8_t *data = mend_store_history_data(it, &len);
	char *aad = g_strconcat("history|", it->key, NULL);
	sqlite3_stmt *st = NULL;
	int r;

	r = prepare(
	    s,
	    "INSERT OR IGNORE INTO history (key, peer, ts, msg_id, data, version, downgraded)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, it->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, it->peer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, it->ts);
	sqlite3_bind_text(st, 4, it->msg_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, it->version);
	sqlite3_bind_int(st, 7, it->downgraded != 0);
	r = bind_sealed(s, st, 5, aad, data, len);
	if (r < 0)
		finish(st);
	else
		r = exec_done(st);
out:
	g_free(aad);
	explicit_bzero(data, len);
	g_free(data);
	return r;
}

static char *empty_null(char *s)
{
	if (s && !*s) {
		g_free(s);
		return NULL;
	}
	return s;
}

static int history_row(mend_store *s, sqlite3_stmt *st, mend_history_item *it)
{
	uint8_t *plain = NULL;
	size_t len = 0;
	GVariant *v;
	char *aad;
	int r;

	it->key = g_strdup((const char *)sqlite3_column_text(st, 0));
	it->peer = g_strdup((const char *)sqlite3_column_text(st, 1));
	it->ts = sqlite3_column_int64(st, 2);
	it->version = sqlite3_column_int(st, 4);
	it->downgraded = sqlite3_column_int(st, 5);
	aad = g_strconcat("history|", it->key, NULL);
	r = mend_store_unseal(s, aad, sqlite3_column_blob(st, 3),
	                      (size_t)sqlite3_column_bytes(st, 3), &plain, &len);
	g_free(aad);
	if (r < 0)
		return r;
	v = g_variant_ref_sink(
	    g_variant_new_from_data(G_VARIANT_TYPE(HISTORY_TYPE), plain, len, FALSE, NULL, NULL));
	g_variant_get(v, HISTORY_TYPE, &it->from, &it->body, &it->device, &it->timestamp,
	              &it->stanza_id, &it->msg_id, &it->carbon, &it->outgoing, &it->error);
	it->stanza_id = empty_null(it->stanza_id);
	it->msg_id = empty_null(it->msg_id);
	g_variant_unref(v);
	explicit_bzero(plain, len);
	g_free(plain);
	return MEND_OK;
}

static int history_query(mend_store *s, const char *sql, const char *a, const char *b,
                         mend_history_item *out)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	r = prepare(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = history_row(s, st, out);
	else
		r = rc == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(rc);
	finish(st);
	if (r < 0)
		mend_history_clear(out);
	return r;
}

int mend_store_history_get(mend_store *s, const char *key, mend_history_item *out)
{
	return history_query(
	    s, "SELECT key, peer, ts, data, version, downgraded FROM history WHERE key = ?1", key,
	    NULL, out);
}

int mend_store_history_by_msg_id(mend_store *s, const char *peer, const char *msg_id,
                                 mend_history_item *out)
{
	/* our own sent messages are kept under "id:" + their message id */
	char *key = g_strconcat("id:", msg_id, NULL);
	int r = mend_store_history_get(s, key, out);

	g_free(key);
	if (r == MEND_OK && g_strcmp0(out->peer, peer) != 0) {
		mend_history_clear(out);
		r = MEND_ERR_NOT_FOUND;
	}
	return r;
}

void mend_history_clear(mend_history_item *it)
{
	g_free(it->key);
	g_free(it->peer);
	g_free(it->from);
	if (it->body)
		explicit_bzero(it->body, strlen(it->body));
	g_free(it->body);
	g_free(it->timestamp);
	g_free(it->stanza_id);
	g_free(it->msg_id);
	memset(it, 0, sizeof(*it));
}

/* --- devices ------------------------------------------------------------------ */

/*
 * Runs `sql` over (jid ?1, device ?2, value ?3) to its end. A parameter the
 * SQL does not use is not bound (SQLITE_RANGE, ignored).
 */
static int device_exec(mend_store *s, const char *sql, const char *jid, uint32_t device,
                       int64_t value)
{
	sqlite3_stmt *st = NULL;
	int r = prepare(s, sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	sqlite3_bind_int64(st, 3, value);
	return exec_done(st);
}

int mend_store_device_touch(mend_store *s, const char *jid, uint32_t device, int64_t when)
{
	return device_exec(
	    s,
	    "INSERT INTO devices (jid, device, active, broken, last_seen)"
	    " VALUES (?1, ?2, 0, 0, ?3)"
	    " ON CONFLICT (jid, device) DO UPDATE SET last_seen = excluded.last_seen",
	    jid, device, when);
}

int mend_store_devices_known(mend_store *s, const char *jid, uint32_t **ids, int **active,
                             int64_t **last_seen, size_t *n)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	GArray *b = g_array_new(FALSE, FALSE, sizeof(int));
	GArray *c = g_array_new(FALSE, FALSE, sizeof(int64_t));
	sqlite3_stmt *st = NULL;
	int r, rc = SQLITE_DONE;

	r = prepare(
	    s, "SELECT device, active, last_seen FROM devices WHERE jid = ?1 ORDER BY device", &st);
	if (r == MEND_OK) {
		sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uint32_t id = (uint32_t)sqlite3_column_int64(st, 0);
			int act = sqlite3_column_int(st, 1);
			int64_t seen = sqlite3_column_int64(st, 2);

			g_array_append_val(a, id);
			g_array_append_val(b, act);
			g_array_append_val(c, seen);
		}
		r = rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
		finish(st);
	}
	*n = r == MEND_OK ? a->len : 0;
	*ids = (uint32_t *)(void *)g_array_free(a, r < 0);
	*active = (int *)(void *)g_array_free(b, r < 0);
	*last_seen = (int64_t *)(void *)g_array_free(c, r < 0);
	return r;
}

/* 1 when `sql` over (jid ?1, device ?2) yields a row, 0 when not, <0 on errors (as above). */
static int device_exists(mend_store *s, const char *sql, const char *jid, uint32_t device)
{
	sqlite3_stmt *st = NULL;
	int r = prepare(s, sql, &st), rc;

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	rc = sqlite3_step(st);
	r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sql_err(rc);
	finish(st);
	return r;
}

int mend_store_devices_mark_listed(mend_store *s, const char *jid, int64_t now)
{
	int talk = device_exists(s, "SELECT 1 FROM sessions WHERE jid = ?1 LIMIT 1", jid, 0);

	if (talk < 0)
		return talk;
	/* ?2: the news flag in the device's place */
	return device_exec(s,
	                   "UPDATE devices SET listed_at = ?3, news = ?2"
	                   " WHERE jid = ?1 AND active <> 0 AND listed_at = 0",
	                   jid, (uint32_t)talk, now);
}

/* Read for every message: cached (mend_store_fact_get). */
int mend_store_device_news(mend_store *s, const char *jid, uint32_t device)
{
	int r;

	if (jid && mend_store_fact_get(s, "device_news", jid, device, &r))
		return r;
	r = device_exists(s, "SELECT 1 FROM devices WHERE jid = ?1 AND device = ?2 AND news <> 0",
	                  jid, device);
	if (jid && r >= 0)
		mend_store_fact_put(s, "device_news", jid, device, r);
	return r;
}

int mend_store_device_news_clear(mend_store *s, const char *jid, uint32_t device)
{
	return device_exec(s, "UPDATE devices SET news = ?3 WHERE jid = ?1 AND device = ?2", jid,
	                   device, 0);
}

int mend_store_devices_news_any(mend_store *s, const char *jid)
{
	return device_exists(s,
	                     "SELECT 1 FROM devices WHERE jid = ?1 AND news <> 0 AND active <> 0"
	                     " LIMIT 1",
	                     jid, 0);
}

int mend_store_device_times(mend_store *s, const char *jid, uint32_t device, int64_t *listed_at,
                            int64_t *last_seen)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*listed_at = *last_seen = 0;
	r = prepare(s, "SELECT listed_at, last_seen FROM devices WHERE jid = ?1 AND device = ?2",
	            &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*listed_at = sqlite3_column_int64(st, 0);
		*last_seen = sqlite3_column_int64(st, 1);
	}
	r = rc == SQLITE_ROW ? MEND_OK : rc == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(rc);
	finish(st);
	return r;
}

int mend_store_device_relist(mend_store *s, const char *jid, uint32_t device, int64_t when)
{
	return device_exec(s, "UPDATE devices SET listed_at = ?3 WHERE jid = ?1 AND device = ?2",
	                   jid, device, when);
}

/* --- pending identity keys ------------------------------------------------------ */

static char *pending_aad(const char *jid, uint32_t device)
{
	return g_strdup_printf("peer_pending|%s/%u", jid, device);
}

int mend_store_peer_pending_get(mend_store *s, const char *jid, uint32_t device, uint8_t **key,
                                size_t *len)
{
	sqlite3_stmt *st = NULL;
	char *aad;
	int r, rc;

	r = prepare(s, "SELECT pending FROM peer_identities WHERE jid = ?1 AND device = ?2", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		aad = pending_aad(jid, device);
		r = mend_store_unseal(s, aad, sqlite3_column_blob(st, 0),
		                      (size_t)sqlite3_column_bytes(st, 0), key, len);
		g_free(aad);
	} else {
		r = rc == SQLITE_ROW || rc == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(rc);
	}
	finish(st);
	return r;
}

int mend_store_peer_pending_set(mend_store *s, const char *jid, uint32_t device, const uint8_t *key,
                                size_t len)
{
	sqlite3_stmt *st = NULL;
	char *aad = pending_aad(jid, device);
	int r;

	r = prepare(s, "UPDATE peer_identities SET pending = ?1 WHERE jid = ?2 AND device = ?3",
	            &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, device);
	if (key) {
		r = bind_sealed(s, st, 1, aad, key, len);
		if (r < 0) {
			finish(st);
			goto out;
		}
	}
	r = exec_done(st);
out:
	g_free(aad);
	return r;
}
