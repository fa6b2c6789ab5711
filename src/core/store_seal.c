/*
 * store_seal.c - what decides who gets a message is sealed, so that editing
 * the database cannot widen or redirect delivery (DESIGN §4): the trust
 * policies and each contact's published device list are kept as sealed
 * values (AAD "meta|<key>"), beside the plain rows that index them. What does
 * not open reads as the narrowest answer: no device, the manual policy.
 *
 * Schema v6 (mend_store_seal_upgrade) seals what older stores kept in plain:
 * the policies, the device lists, and the pending queue's AAD that now names
 * the recipient ("pending|<jid>|<msg_id>").
 */
#include "config.h"

#include <stdlib.h>
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

int mend_store_sealed_get(mend_store *s, const char *key, char **value)
{
	char *name = g_strconcat("sealed:", key, NULL), *aad = g_strconcat("meta|", key, NULL);
	sqlite3_stmt *st = NULL;
	uint8_t *plain = NULL;
	size_t len = 0;
	int r, rc;

	*value = NULL;
	r = mend_store_stmt(s, "SELECT value FROM meta WHERE key = ?1", &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = mend_store_unseal(s, aad, sqlite3_column_blob(st, 0),
		                      (size_t)sqlite3_column_bytes(st, 0), &plain, &len);
	else
		r = rc == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(rc);
	finish(st);
	if (r == MEND_OK) {
		*value = g_strndup((const char *)plain, len);
		g_free(plain);
	}
out:
	g_free(name);
	g_free(aad);
	return r;
}

int mend_store_sealed_set(mend_store *s, const char *key, const char *value)
{
	char *name = g_strconcat("sealed:", key, NULL), *aad = g_strconcat("meta|", key, NULL);
	sqlite3_stmt *st = NULL;
	uint8_t *sealed = NULL;
	size_t n = 0;
	int r;

	r = mend_store_seal(s, aad, (const uint8_t *)value, strlen(value), &sealed, &n);
	if (r == MEND_OK)
		r = mend_store_stmt(s,
		                    "INSERT INTO meta (key, value) VALUES (?1, ?2)"
		                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
		                    &st);
	if (r == MEND_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, sealed, (int)n, g_free);
		sealed = NULL;
		r = sqlite3_step(st);
		r = r == SQLITE_DONE ? MEND_OK : sql_err(r);
		finish(st);
	}
	g_free(sealed);
	g_free(name);
	g_free(aad);
	return r;
}

/* --- device lists ---------------------------------------------------------------- */

int mend_store_sealed_list_set(mend_store *s, const char *jid, const uint32_t *ids, size_t n)
{
	GString *v = g_string_new(NULL);
	char *key = g_strconcat("devicelist:", jid, NULL);
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		g_string_append_printf(v, "%s%u", i ? "," : "", ids[i]);
	r = mend_store_sealed_set(s, key, v->str);
	g_string_free(v, TRUE);
	g_free(key);
	return r;
}

/* Keeps in ids[0..*n) only those in jid's sealed list; none when it is missing or does not open. */
int mend_store_sealed_list_filter(mend_store *s, const char *jid, uint32_t *ids, size_t *n)
{
	char *key = g_strconcat("devicelist:", jid, NULL), *v = NULL, **parts;
	GHashTable *sealed = g_hash_table_new(g_direct_hash, g_direct_equal);
	size_t i, kept = 0;
	int r = mend_store_sealed_get(s, key, &v), j;

	parts = g_strsplit(v ? v : "", ",", -1);
	for (j = 0; parts[j]; j++)
		if (*parts[j])
			g_hash_table_add(sealed, GSIZE_TO_POINTER(strtoul(parts[j], NULL, 10)));
	for (i = 0; i < *n; i++)
		if (g_hash_table_contains(sealed, GSIZE_TO_POINTER((gsize)ids[i])))
			ids[kept++] = ids[i];
	*n = kept;
	g_strfreev(parts);
	g_hash_table_destroy(sealed);
	g_free(v);
	g_free(key);
	return r == MEND_ERR_NOT_FOUND || r == MEND_ERR_STORE_CORRUPT ? MEND_OK : r;
}

/* --- schema v6: sealing what older stores kept in plain --------------------------------- */

/* Every jid's active device list, sealed as it stands. */
static int seal_lists(mend_store *s)
{
	sqlite3_stmt *st = NULL;
	uint32_t *ids = NULL;
	size_t n = 0;
	int r, rc;

	r = sqlite3_prepare_v2(mend_store_db(s), "SELECT DISTINCT jid FROM devices", -1, &st, NULL);
	if (r != SQLITE_OK)
		return sql_err(r);
	r = MEND_OK;
	while (r == MEND_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *jid = g_strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_stmt *q = NULL;

		n = 0;
		r = sqlite3_prepare_v2(mend_store_db(s),
		                       "SELECT device FROM devices WHERE jid = ?1 AND active <> 0",
		                       -1, &q, NULL) == SQLITE_OK
		        ? MEND_OK
		        : MEND_ERR_STORE;
		if (r == MEND_OK) {
			sqlite3_bind_text(q, 1, jid, -1, SQLITE_STATIC);
			ids = g_new(uint32_t, 1);
			while (sqlite3_step(q) == SQLITE_ROW) {
				ids = g_renew(uint32_t, ids, n + 1);
				ids[n++] = (uint32_t)sqlite3_column_int64(q, 0);
			}
			sqlite3_finalize(q);
			r = mend_store_sealed_list_set(s, jid, ids, n);
			g_free(ids);
		}
		g_free(jid);
	}
	sqlite3_finalize(st);
	return r;
}

/* The policies ("policy", "policy:JID") kept in plain text before, sealed. */
static int seal_policies(mend_store *s)
{
	sqlite3_stmt *st = NULL;
	int r, rc, account = 0;

	r = sqlite3_prepare_v2(
	    mend_store_db(s),
	    "SELECT key, value FROM meta WHERE key = 'policy' OR key LIKE 'policy:%'", -1, &st,
	    NULL);
	if (r != SQLITE_OK)
		return sql_err(r);
	r = MEND_OK;
	while (r == MEND_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);

		account |= strcmp(key, "policy") == 0;
		r = mend_store_sealed_set(s, key, (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	if (r == MEND_OK)
		r = sqlite3_exec(mend_store_db(s),
		                 "DELETE FROM meta WHERE key = 'policy' OR key LIKE 'policy:%'",
		                 NULL, NULL, NULL) == SQLITE_OK
		        ? MEND_OK
		        : MEND_ERR_STORE;
	/* from now on a missing account policy means the store was edited */
	if (r == MEND_OK && !account)
		r = mend_store_sealed_set(s, "policy", "tofu");
	return r;
}

/* Re-seals one pending column from "pending|<msg_id>" to "pending|<jid>|<msg_id>". */
static int reseal_pending(mend_store *s, sqlite3_int64 id, const char *jid, const char *msg_id,
                          const char *col, const void *blob, int len)
{
	char *old_aad = g_strconcat("pending|", msg_id, NULL);
	char *aad = g_strconcat("pending|", jid, "|", msg_id, NULL);
	char *sql = g_strdup_printf("UPDATE pending SET %s = ?1 WHERE id = ?2", col);
	uint8_t *plain = NULL, *sealed = NULL;
	size_t n = 0, m = 0;
	sqlite3_stmt *st = NULL;
	int r;

	r = mend_store_unseal(s, old_aad, blob, (size_t)len, &plain, &n);
	if (r == MEND_OK)
		r = mend_store_seal(s, aad, plain, n, &sealed, &m);
	if (r == MEND_OK && sqlite3_prepare_v2(mend_store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		r = MEND_ERR_STORE;
	if (r == MEND_OK) {
		sqlite3_bind_blob(st, 1, sealed, (int)m, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, id);
		r = sqlite3_step(st) == SQLITE_DONE ? MEND_OK : MEND_ERR_STORE;
		sqlite3_finalize(st);
	}
	if (plain)
		explicit_bzero(plain, n);
	g_free(plain);
	g_free(sealed);
	g_free(sql);
	g_free(aad);
	g_free(old_aad);
	return r == MEND_ERR_STORE_CORRUPT ? MEND_OK : r; /* what did not open stays unreadable */
}

static int seal_pending(mend_store *s)
{
	sqlite3_stmt *st = NULL;
	int r = MEND_OK;

	if (sqlite3_prepare_v2(mend_store_db(s),
	                       "SELECT id, jid, msg_id, body, stanza FROM pending", -1, &st,
	                       NULL) != SQLITE_OK)
		return MEND_ERR_STORE;
	while (r == MEND_OK && sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_int64 id = sqlite3_column_int64(st, 0);
		const char *jid = (const char *)sqlite3_column_text(st, 1);
		const char *msg_id = (const char *)sqlite3_column_text(st, 2);

		r = reseal_pending(s, id, jid, msg_id, "body", sqlite3_column_blob(st, 3),
		                   sqlite3_column_bytes(st, 3));
		if (r == MEND_OK && sqlite3_column_type(st, 4) != SQLITE_NULL)
			r = reseal_pending(s, id, jid, msg_id, "stanza", sqlite3_column_blob(st, 4),
			                   sqlite3_column_bytes(st, 4));
	}
	sqlite3_finalize(st);
	return r;
}

int mend_store_seal_upgrade(mend_store *s)
{
	int r = seal_lists(s);

	if (r == MEND_OK)
		r = seal_policies(s);
	if (r == MEND_OK)
		r = seal_pending(s);
	return r;
}
