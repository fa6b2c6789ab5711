/*
 * store_keys.c - what a device showed besides the key we trust (DESIGN §4):
 * candidate identity keys, one row per distinct key so that a later arrival
 * never replaces the one a user is reviewing, and the messages that came under
 * them, held sealed until the user accepts that key. Both are sealed with the
 * device and the key's fingerprint in the AAD: a row moved to another device or
 * key fails to open and counts as absent.
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include "mend/mend.h"
#include "store.h"

static int sql_err(int rc)
{
	return (rc & 0xff) == SQLITE_NOMEM ? MEND_ERR_NOMEM : MEND_ERR_STORE;
}

static void finish(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static char *aad_of(const char *table, const char *fp, uint32_t device, const char *jid)
{
	return g_strdup_printf("%s|%s|%u|%s", table, fp, device, jid);
}

/* Binds jid (1), device (2) and fingerprint (3, may be NULL). */
static void bind_key(sqlite3_stmt *st, const char *jid, uint32_t device, const char *fp)
{
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	sqlite3_bind_text(st, 3, fp, -1, SQLITE_STATIC);
}

/* Seals `data` into parameter `idx` and runs the statement. */
static int run_sealed(mend_store *s, sqlite3_stmt *st, int idx, const char *aad,
                      const uint8_t *data, size_t len)
{
	uint8_t *sealed = NULL;
	size_t n = 0;
	int r = mend_store_seal(s, aad, data, len, &sealed, &n);

	if (r == MEND_OK) {
		sqlite3_bind_blob(st, idx, sealed, (int)n, g_free);
		r = sqlite3_step(st);
		r = r == SQLITE_DONE ? MEND_OK : sql_err(r);
	}
	finish(st);
	return r;
}

/* Unseals column `col`; a value that does not open is skipped (it counts as absent). */
static GBytes *column_open(mend_store *s, sqlite3_stmt *st, int col, const char *aad)
{
	uint8_t *plain = NULL;
	size_t len = 0;

	if (mend_store_unseal(s, aad, sqlite3_column_blob(st, col),
	                      (size_t)sqlite3_column_bytes(st, col), &plain, &len) < 0)
		return NULL;
	return g_bytes_new_take(plain, len);
}

/* Runs a count over (jid, device, fp) into *n. */
static int count_rows(mend_store *s, const char *sql, const char *jid, uint32_t device,
                      const char *fp, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, sql, &st);

	if (r < 0)
		return r;
	bind_key(st, jid, device, fp);
	r = sqlite3_step(st) == SQLITE_ROW ? MEND_OK : MEND_ERR_STORE;
	*n = r == MEND_OK ? (size_t)sqlite3_column_int64(st, 0) : 0;
	finish(st);
	return r;
}

/* One row that a limit caps: (jid, device, fp, sealed value, now) into `insert`, under `table`. */
typedef struct capped {
	const char *table;
	const char *count; /* SELECT count(*) of the rows the limit counts */
	const char *insert;
	size_t max;
} capped;

static int add_capped(mend_store *s, const capped *c, const char *jid, uint32_t device,
                      const char *fp, const uint8_t *data, size_t len)
{
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	char *aad;
	int r = count_rows(s, c->count, jid, device, fp, &n);

	if (r == MEND_OK && n >= c->max)
		r = MEND_ERR_TOO_LARGE;
	if (r == MEND_OK)
		r = mend_store_stmt(s, c->insert, &st);
	if (r < 0)
		return r;
	bind_key(st, jid, device, fp);
	sqlite3_bind_int64(st, 5, g_get_real_time() / G_USEC_PER_SEC);
	aad = aad_of(c->table, fp, device, jid);
	r = run_sealed(s, st, 4, aad, data, len);
	g_free(aad);
	return r;
}

static const capped candidates = {
    "key_candidates",
    /* the other keys of this device: a key seen again is not one more */
    "SELECT count(*) FROM key_candidates WHERE jid = ?1 AND device = ?2"
    " AND fingerprint IS NOT ?3",
    "INSERT OR IGNORE INTO key_candidates (jid, device, fingerprint, key, first_seen)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
    MEND_STORE_MAX_CANDIDATES};

static const capped held = {
    "held", "SELECT count(*) FROM held WHERE jid = ?1 AND device = ?2 AND ?3 IS NOT NULL",
    "INSERT INTO held (jid, device, fingerprint, data, received) VALUES (?1, ?2, ?3, ?4, ?5)",
    MEND_STORE_MAX_HELD};

int mend_store_candidate_add(mend_store *s, const char *jid, uint32_t device, const char *fp,
                             const uint8_t *key, size_t len)
{
	return add_capped(s, &candidates, jid, device, fp, key, len);
}

int mend_store_candidates(mend_store *s, const char *jid, uint32_t device, GPtrArray **keys)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*keys = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	r = mend_store_stmt(s,
	                    "SELECT fingerprint, key FROM key_candidates WHERE jid = ?1 AND"
	                    " device = ?2 ORDER BY first_seen, rowid",
	                    &st);
	if (r < 0)
		return r;
	bind_key(st, jid, device, NULL);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *aad =
		    aad_of("key_candidates", (const char *)sqlite3_column_text(st, 0), device, jid);
		GBytes *key = column_open(s, st, 1, aad);

		if (key)
			g_ptr_array_add(*keys, key);
		g_free(aad);
	}
	r = rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
	finish(st);
	return r;
}

int mend_store_candidate_delete(mend_store *s, const char *jid, uint32_t device, const char *fp)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s,
	                        "DELETE FROM key_candidates WHERE jid = ?1 AND device = ?2"
	                        " AND (?3 IS NULL OR fingerprint = ?3)",
	                        &st);

	if (r < 0)
		return r;
	bind_key(st, jid, device, fp);
	r = sqlite3_step(st);
	finish(st);
	return r == SQLITE_DONE ? MEND_OK : sql_err(r);
}

int mend_store_held_add(mend_store *s, const char *jid, uint32_t device, const char *fp,
                        const uint8_t *data, size_t len)
{
	return add_capped(s, &held, jid, device, fp, data, len);
}

int mend_store_held_list(mend_store *s, const char *jid, uint32_t device, const char *fp,
                         GArray *rows, GPtrArray *data)
{
	sqlite3_stmt *st = NULL;
	char *aad;
	int r, rc;

	r = mend_store_stmt(s,
	                    "SELECT id, data FROM held WHERE jid = ?1 AND device = ?2"
	                    " AND fingerprint = ?3 ORDER BY id",
	                    &st);
	if (r < 0)
		return r;
	bind_key(st, jid, device, fp);
	aad = aad_of("held", fp, device, jid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t row = sqlite3_column_int64(st, 0);
		GBytes *b = column_open(s, st, 1, aad);

		if (!b)
			continue;
		g_array_append_val(rows, row);
		g_ptr_array_add(data, b);
	}
	g_free(aad);
	r = rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
	finish(st);
	return r;
}

int mend_store_held_delete(mend_store *s, int64_t row)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, "DELETE FROM held WHERE id = ?1", &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, row);
	r = sqlite3_step(st);
	finish(st);
	return r == SQLITE_DONE ? MEND_OK : sql_err(r);
}
