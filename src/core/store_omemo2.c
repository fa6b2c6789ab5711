/*
 * store_omemo2.c - what the store keeps per device about the two OMEMO
 * versions (schema v8, XEP-0384 0.9 beside v0.3): the versions whose device
 * lists name it, the version it last wrote to us in (downgrade protection),
 * and whether its OMEMO:2 bundle was unusable. Sessions per version are
 * store.c's (mend_store_session_*_v).
 */
#include "config.h"

#include <sqlite3.h>
#include "mend/mend.h"
#include "store.h"

static int sql_err(int rc)
{
	return (rc & 0xff) == SQLITE_NOMEM ? MEND_ERR_NOMEM : MEND_ERR_STORE;
}

/* Steps a cached statement to its end and resets it. */
static int done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
}

static int valid_version(int version)
{
	return version == MEND_VERSION_LEGACY || version == MEND_VERSION_2;
}

/* A statement over (jid ?1, device ?2, int ?3; a statement may leave some out) run to its end. */
static int exec_dev(mend_store *s, const char *sql, const char *jid, uint32_t device, int64_t v)
{
	sqlite3_stmt *st = NULL;
	int r = jid ? mend_store_stmt(s, sql, &st) : MEND_ERR_INVALID_ARG;

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	sqlite3_bind_int64(st, 3, v);
	return done(st);
}

int mend_store_device_versions_set(mend_store *s, const char *jid, int version, const uint32_t *ids,
                                   size_t n)
{
	unsigned bit = valid_version(version) ? MEND_VERSION_BIT(version) : 0;
	size_t i;
	int r;

	if (!jid || !bit || (n && !ids))
		return MEND_ERR_INVALID_ARG;
	r = mend_store_begin(s);
	if (r < 0)
		return r;
	r = exec_dev(s, "UPDATE device_versions SET published = published & ~?3 WHERE jid = ?1",
	             jid, 0, bit);
	for (i = 0; r == MEND_OK && i < n; i++)
		r = mend_store_device_version_add(s, jid, ids[i], version);
	/* a new OMEMO:2 list gives its bundles another chance, as a legacy list does */
	if (r == MEND_OK && version == MEND_VERSION_2)
		r = exec_dev(s, "UPDATE device_versions SET broken2 = 0 WHERE jid = ?1", jid, 0, 0);
	if (r < 0) {
		mend_store_rollback(s);
		return r;
	}
	return mend_store_commit(s);
}

/* Ids of jid (one bound int ?2 besides), in column 0 of `sql`. */
static int read_ids(mend_store *s, const char *sql, const char *jid, int64_t v, uint32_t **ids,
                    size_t *n)
{
	GArray *a;
	sqlite3_stmt *st = NULL;
	uint32_t id;
	int r = jid ? mend_store_stmt(s, sql, &st) : MEND_ERR_INVALID_ARG;

	*ids = NULL;
	*n = 0;
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	a = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		id = (uint32_t)sqlite3_column_int64(st, 0);
		g_array_append_val(a, id);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r != SQLITE_DONE) {
		g_array_free(a, TRUE);
		return sql_err(r);
	}
	*n = a->len;
	*ids = (uint32_t *)(void *)g_array_free(a, FALSE);
	return MEND_OK;
}

int mend_store_device_versions_list(mend_store *s, const char *jid, int version, uint32_t **ids,
                                    size_t *n)
{
	unsigned bits = version == 0 ? ~0u : valid_version(version) ? MEND_VERSION_BIT(version) : 0;

	if (!bits)
		return MEND_ERR_INVALID_ARG;
	return read_ids(s,
	                "SELECT device FROM device_versions WHERE jid = ?1 AND published & ?2 <> 0"
	                " ORDER BY device",
	                jid, bits, ids, n);
}

int mend_store_device_versions(mend_store *s, const char *jid, uint32_t device, unsigned *published,
                               int *wrote, int *broken2)
{
	sqlite3_stmt *st = NULL;
	int r = jid ? mend_store_stmt(s,
	                              "SELECT published, wrote, broken2 FROM device_versions"
	                              " WHERE jid = ?1 AND device = ?2",
	                              &st)
	            : MEND_ERR_INVALID_ARG;

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		if (published)
			*published = (unsigned)sqlite3_column_int64(st, 0);
		if (wrote)
			*wrote = sqlite3_column_int(st, 1);
		if (broken2)
			*broken2 = sqlite3_column_int(st, 2);
		r = MEND_OK;
	} else {
		r = r == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(r);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

int mend_store_device_wrote_set(mend_store *s, const char *jid, uint32_t device, int version)
{
	int wrote = 0, wrote2 = 0;

	if (!valid_version(version))
		return MEND_ERR_INVALID_ARG;
	/* nothing to write when it changes nothing (every message of a catch-up says so) */
	if (mend_store_device_wrote(s, jid, device, &wrote, &wrote2) == MEND_OK &&
	    wrote == version && wrote2 >= (version == MEND_VERSION_2))
		return MEND_OK;
	/* wrote2 stays once set: a device that fell back is told for every legacy message */
	return exec_dev(s,
	                "INSERT INTO device_versions (jid, device, wrote, wrote2)"
	                " VALUES (?1, ?2, ?3, ?3 = 2)"
	                " ON CONFLICT (jid, device) DO UPDATE SET wrote = ?3,"
	                " wrote2 = max(wrote2, ?3 = 2)",
	                jid, device, version);
}

/* Read for every message: cached (mend_store_fact_get) as wrote | wrote2 << 8. */
int mend_store_device_wrote(mend_store *s, const char *jid, uint32_t device, int *wrote,
                            int *wrote2)
{
	sqlite3_stmt *st = NULL;
	int r, v = 0;

	*wrote = *wrote2 = 0;
	if (jid && mend_store_fact_get(s, "device_wrote", jid, device, &v)) {
		*wrote = v & 0xff;
		*wrote2 = v >> 8;
		return MEND_OK;
	}
	r = jid ? mend_store_stmt(s,
	                          "SELECT wrote, wrote2 FROM device_versions"
	                          " WHERE jid = ?1 AND device = ?2",
	                          &st)
	        : MEND_ERR_INVALID_ARG;
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*wrote = sqlite3_column_int(st, 0) & 0xff;
		*wrote2 = sqlite3_column_int(st, 1) != 0;
	}
	r = r == SQLITE_ROW || r == SQLITE_DONE ? MEND_OK : sql_err(r);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r == MEND_OK)
		mend_store_fact_put(s, "device_wrote", jid, device, *wrote | *wrote2 << 8);
	return r;
}

int mend_store_device_set_broken2(mend_store *s, const char *jid, uint32_t device, int broken)
{
	return exec_dev(s,
	                "INSERT INTO device_versions (jid, device, broken2) VALUES (?1, ?2, ?3)"
	                " ON CONFLICT (jid, device) DO UPDATE SET broken2 = ?3",
	                jid, device, broken ? 1 : 0);
}

int mend_store_device_version_add(mend_store *s, const char *jid, uint32_t device, int version)
{
	if (!valid_version(version))
		return MEND_ERR_INVALID_ARG;
	return exec_dev(s,
	                "INSERT INTO device_versions (jid, device, published) VALUES (?1, ?2, ?3)"
	                " ON CONFLICT (jid, device) DO UPDATE SET published = published | ?3",
	                jid, device, MEND_VERSION_BIT(version));
}
