/*
 * test-store.c - the sealed store (src/core/store.c): every kind of row
 * round-trips, values are really sealed on disk, the key and schema version
 * are checked before anything is written, a sealed value moved to another
 * row does not open, nested transactions, device lists, prekeys, stanza ids.
 */
#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include "mend/mend.h"
#include "store.h"
#include "tap.h"

#define MARKER "MEND-PLAINTEXT-MARKER-5f3a"

static mend_crypto *crypto;
static char *tmpdir;
static uint8_t key[MEND_STORE_KEY_LEN];
static uint8_t session_rec[200]; /* random: must not appear on disk */

static char *path_in_tmp(const char *name)
{
	return g_build_filename(tmpdir, name, NULL);
}

/* Runs SQL on the database file directly, as an attacker or a newer mend would. */
static int plain_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static mend_store *open_ok(const char *path, int want_created)
{
	mend_store *s = NULL;
	int created = -1;
	int rc = mend_store_open(&s, path, key, crypto, &created);

	TAP_EQ(rc, 0, "open %s", path);
	TAP_EQ(created, want_created, "created is %d", want_created);
	if (rc)
		TAP_BAIL("cannot open the store");
	return s;
}

static int bytes_eq(const uint8_t *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static void put_rows(mend_store *s)
{
	static const uint8_t pub[33] = {0x05, 1, 2, 3};
	static const uint8_t peer[33] = {0x05, 9, 9, 9};

	TAP_EQ(mend_store_meta_set(s, "catchup", "2024-01-01T00:00:00Z"), 0, "meta_set");
	TAP_EQ(mend_store_meta_set(s, "check", "x"), MEND_ERR_INVALID_ARG, "meta 'check' reserved");
	TAP_EQ(mend_store_identity_set(s, 4242, pub, sizeof(pub), (const uint8_t *)MARKER "priv",
	                               strlen(MARKER "priv")),
	       0, "identity_set");
	TAP_EQ(mend_store_prekey_put(s, 17, (const uint8_t *)MARKER "pk17", strlen(MARKER "pk17")),
	       0, "prekey_put");
	TAP_EQ(mend_store_signed_prekey_put(s, 3, (const uint8_t *)MARKER "spk3",
	                                    strlen(MARKER "spk3")),
	       0, "signed_prekey_put 3");
	TAP_EQ(mend_store_signed_prekey_put(s, 5, (const uint8_t *)"spk5", 4), 0,
	       "signed_prekey_put 5");
	TAP_EQ(mend_store_session_put(s, "bob@x", 1234, session_rec, sizeof(session_rec)), 0,
	       "session_put");
	TAP_EQ(mend_store_session_put(s, "bob@x", 99, (const uint8_t *)MARKER "s99",
	                              strlen(MARKER "s99")),
	       0, "session_put 99");
	TAP_EQ(mend_store_peer_identity_put(s, "bob@x", 1234, peer, sizeof(peer), 2), 0,
	       "peer_identity_put");
}

static void check_identity(mend_store *s)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	uint32_t dev = 0;
	int rc = mend_store_identity_get(s, &dev, &pub, &pub_len, &priv, &priv_len);

	TAP_EQ(rc, 0, "identity_get");
	TAP_EQ(dev, 4242, "identity device id");
	TAP_OK(pub && pub_len == 33 && pub[0] == 0x05 && pub[3] == 3, "identity pub");
	TAP_OK(priv && bytes_eq(priv, priv_len, MARKER "priv", strlen(MARKER "priv")),
	       "identity priv");
	g_free(pub);
	g_free(priv);
}

static void check_records(mend_store *s)
{
	uint8_t *rec = NULL;
	size_t len = 0;
	uint32_t id = 0;

	TAP_EQ(mend_store_prekey_get(s, 17, &rec, &len), 0, "prekey_get");
	TAP_OK(rec && bytes_eq(rec, len, MARKER "pk17", strlen(MARKER "pk17")), "prekey value");
	g_free(rec);
	rec = NULL;
	TAP_EQ(mend_store_prekey_get(s, 18, &rec, &len), MEND_ERR_NOT_FOUND, "prekey missing");
	TAP_EQ(mend_store_signed_prekey_get(s, 3, &rec, &len), 0, "signed_prekey_get");
	TAP_OK(rec && bytes_eq(rec, len, MARKER "spk3", strlen(MARKER "spk3")), "spk value");
	g_free(rec);
	rec = NULL;
	TAP_EQ(mend_store_signed_prekey_latest(s, &id), 0, "signed_prekey_latest");
	TAP_EQ(id, 5, "latest signed prekey id");
	TAP_EQ(mend_store_session_get(s, "bob@x", 1234, &rec, &len), 0, "session_get");
	TAP_OK(rec && bytes_eq(rec, len, session_rec, sizeof(session_rec)), "session value");
	g_free(rec);
	rec = NULL;
	TAP_EQ(mend_store_session_get(s, "bob@x", 1235, &rec, &len), MEND_ERR_NOT_FOUND,
	       "session missing");
	TAP_EQ(mend_store_session_exists(s, "bob@x", 1234), 1, "session_exists");
	TAP_EQ(mend_store_session_exists(s, "carol@x", 1234), 0, "session_exists other jid");
}

static void check_peer_meta(mend_store *s)
{
	uint8_t *k = NULL;
	size_t len = 0;
	char *v = NULL;
	int trust = -1;

	TAP_EQ(mend_store_peer_identity_get(s, "bob@x", 1234, &k, &len, &trust), 0,
	       "peer_identity_get");
	TAP_OK(k && len == 33 && k[0] == 0x05 && k[1] == 9, "peer key");
	TAP_EQ(trust, 2, "peer trust");
	g_free(k);
	k = NULL;
	TAP_EQ(mend_store_peer_identity_get(s, "bob@x", 1, &k, &len, &trust), MEND_ERR_NOT_FOUND,
	       "peer identity missing");
	TAP_EQ(mend_store_meta_get(s, "catchup", &v), 0, "meta_get");
	TAP_OK(v && strcmp(v, "2024-01-01T00:00:00Z") == 0, "meta value");
	g_free(v);
	v = NULL;
	TAP_EQ(mend_store_meta_get(s, "nothing", &v), MEND_ERR_NOT_FOUND, "meta missing");
}

static void check_rows(mend_store *s)
{
	check_identity(s);
	check_records(s);
	check_peer_meta(s);
}

static void check_session_list(mend_store *s)
{
	uint32_t *ids = NULL;
	size_t n = 0;

	TAP_EQ(mend_store_session_devices(s, "bob@x", &ids, &n), 0, "session_devices");
	TAP_OK(n == 2 && ids[0] == 99 && ids[1] == 1234, "session devices sorted");
	g_free(ids);
	TAP_EQ(mend_store_session_delete(s, "bob@x", 99), 0, "session_delete");
	TAP_EQ(mend_store_session_exists(s, "bob@x", 99), 0, "session deleted");
	TAP_EQ(mend_store_session_put(s, "carol@x", 7, (const uint8_t *)"c", 1), 0, "carol");
	TAP_EQ(mend_store_session_delete_all(s, "carol@x"), 0, "session_delete_all");
	TAP_EQ(mend_store_session_exists(s, "carol@x", 7), 0, "carol's sessions gone");
	TAP_EQ(mend_store_session_exists(s, "bob@x", 1234), 1, "bob's session kept");
}

/* Reads a file, or an empty buffer when it does not exist. */
static GBytes *slurp(const char *path)
{
	gchar *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &data, &len, NULL))
		return g_bytes_new(NULL, 0);
	return g_bytes_new_take(data, len);
}

static int file_has(const char *path, const void *needle, size_t len)
{
	GBytes *b = slurp(path);
	gsize n;
	const void *p = g_bytes_get_data(b, &n);
	int found = p && memmem(p, n, needle, len) != NULL;

	g_bytes_unref(b);
	return found;
}

static void check_sealed_on_disk(const char *db)
{
	char *wal = g_strconcat(db, "-wal", NULL);

	TAP_OK(file_has(db, "bob@x", 5) || file_has(wal, "bob@x", 5),
	       "plain jid is on disk (the test can see the data)");
	TAP_OK(!file_has(db, session_rec, sizeof(session_rec)), "session record not on disk");
	TAP_OK(!file_has(wal, session_rec, sizeof(session_rec)), "session record not in WAL");
	TAP_OK(!file_has(db, MARKER, strlen(MARKER)), "no plaintext marker on disk");
	TAP_OK(!file_has(wal, MARKER, strlen(MARKER)), "no plaintext marker in WAL");
	g_free(wal);
}

static void test_create_and_reopen(const char *db)
{
	mend_store *s = open_ok(db, 1);
	char *wal = g_strconcat(db, "-wal", NULL);
	struct stat sb;

	TAP_EQ(stat(db, &sb), 0, "stat db");
	TAP_EQ(sb.st_mode & 0777, 0600, "db file mode 0600");
	TAP_EQ(mend_store_exists(db), 1, "store exists");
	put_rows(s);
	if (stat(wal, &sb) == 0)
		TAP_EQ(sb.st_mode & 0777, 0600, "WAL file mode 0600");
	check_sealed_on_disk(db); /* with the WAL still there */
	check_rows(s);
	mend_store_close(s);
	check_sealed_on_disk(db);
	s = open_ok(db, 0);
	check_rows(s);
	check_session_list(s);
	mend_store_close(s);
	g_free(wal);
}

static void test_wrong_key(const char *db)
{
	uint8_t wrong[MEND_STORE_KEY_LEN];
	mend_store *s = NULL;
	struct stat a, b;
	GBytes *before, *after;

	memcpy(wrong, key, sizeof(wrong));
	wrong[0] ^= 1;
	before = slurp(db);
	TAP_EQ(stat(db, &a), 0, "stat before");
	TAP_EQ(mend_store_open(&s, db, wrong, crypto, NULL), MEND_ERR_STORE_KEY_WRONG,
	       "a wrong key is refused");
	TAP_OK(s == NULL, "no store handed out");
	after = slurp(db);
	TAP_EQ(stat(db, &b), 0, "stat after");
	TAP_OK(g_bytes_equal(before, after), "file bytes unchanged");
	TAP_OK(a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec,
	       "file mtime unchanged");
	g_bytes_unref(before);
	g_bytes_unref(after);
}

static int test_identity_damaged(mend_store *s)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len, priv_len;
	uint32_t dev;
	int rc = mend_store_identity_get(s, &dev, &pub, &pub_len, &priv, &priv_len);

	g_free(pub);
	g_free(priv);
	return rc;
}

static void test_moved_values(const char *db)
{
	mend_store *s;
	uint8_t *rec = NULL;
	size_t len = 0;
	int trust = 0;

	TAP_EQ(plain_sql(db, "INSERT INTO sessions (jid, device, version, record)"
	                     " SELECT jid, 5, version, record FROM sessions WHERE device = 1234;"
	                     "INSERT INTO sessions (jid, device, version, record)"
	                     " SELECT jid, device, 2, record FROM sessions WHERE device = 1234;"
	                     "UPDATE signed_prekeys SET record = (SELECT record FROM prekeys"
	                     " WHERE id = 17) WHERE id = 5;"
	                     "INSERT INTO peer_identities (jid, device, key, first_seen)"
	                     " SELECT 'eve@x', device, key, first_seen FROM peer_identities;"
	                     "UPDATE prekeys SET record = x'01' || zeroblob(40) WHERE id = 17;"
	                     "UPDATE identity SET priv = x'0102';"),
	       SQLITE_OK, "copy and damage sealed values with plain SQL");
	s = open_ok(db, 0);
	TAP_EQ(mend_store_session_get(s, "bob@x", 5, &rec, &len), MEND_ERR_STORE_CORRUPT,
	       "session copied to another device does not open");
	TAP_EQ(mend_store_session_get_v(s, "bob@x", 1234, MEND_VERSION_2, &rec, &len),
	       MEND_ERR_STORE_CORRUPT,
	       "a legacy session copied to the device's OMEMO:2 session does not open");
	TAP_EQ(mend_store_signed_prekey_get(s, 5, &rec, &len), MEND_ERR_STORE_CORRUPT,
	       "prekey copied into signed_prekeys does not open");
	TAP_EQ(mend_store_peer_identity_get(s, "eve@x", 1234, &rec, &len, &trust),
	       MEND_ERR_STORE_CORRUPT, "peer identity copied to another jid does not open");
	TAP_EQ(mend_store_prekey_get(s, 17, &rec, &len), MEND_ERR_STORE_CORRUPT,
	       "a damaged value does not open");
	TAP_EQ(test_identity_damaged(s), MEND_ERR_STORE_CORRUPT, "a truncated value does not open");
	TAP_EQ(mend_store_session_get(s, "bob@x", 1234, &rec, &len), 0, "the original opens");
	g_free(rec);
	mend_store_close(s);
}

/*
 * What decides who gets a message fails closed when the file is edited: a
 * pending message moved to another recipient is never sent, a device row set
 * active again counts for nothing, a device list or policy copied to another
 * contact does not open, a trust row copied or deleted is no trust.
 */
static void test_fail_closed(const char *db)
{
	static const uint32_t two[] = {1, 2}, one[] = {1}, carols[] = {7};
	mend_store *s = open_ok(db, 0);
	GArray *pend = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	uint32_t *ids = NULL;
	uint8_t *k = NULL;
	size_t n = 0, len = 0;
	char *v = NULL;
	int trust = 0;

	TAP_EQ(mend_store_pending_add(s, "bob@x", "m1", "for bob only"), 0, "queued for bob");
	TAP_EQ(mend_store_pending_add(s, "bob@x", "m2", "also for bob"), 0, "and another");
	TAP_EQ(mend_store_devicelist_set(s, "bob@x", two, 2), 0, "bob lists 1 and 2");
	TAP_EQ(mend_store_devicelist_set(s, "bob@x", one, 1), 0, "then only 1");
	TAP_EQ(mend_store_devicelist_set(s, "carol@x", carols, 1), 0, "carol lists 7");
	TAP_EQ(mend_store_devicelist_set(s, "dave@x", one, 1), 0, "dave lists 1");
	TAP_EQ(mend_store_peer_identity_put(s, "bob@x", 1, (const uint8_t *)"bobkey", 6, 2), 0,
	       "bob's device 1: verified");
	TAP_EQ(mend_store_peer_identity_put(s, "bob@x", 2, (const uint8_t *)"oldkey", 6, 0), 0,
	       "bob's device 2: untrusted");
	TAP_EQ(mend_store_sealed_set(s, "policy:bob@x", "manual"), 0, "bob: manual");
	mend_store_close(s);
	TAP_EQ(plain_sql(
	           db, "UPDATE pending SET jid = 'mallory@x' WHERE msg_id = 'm1';"
	               "UPDATE devices SET active = 1 WHERE jid = 'bob@x';"
	               "INSERT INTO devices (jid, device, active, broken, last_seen)"
	               " VALUES ('bob@x', 99, 1, 0, 0);"
	               "UPDATE meta SET value = (SELECT value FROM meta WHERE"
	               " key = 'sealed:devicelist:carol@x') WHERE key = 'sealed:devicelist:dave@x';"
	               "UPDATE peer_identities SET key = (SELECT key FROM peer_identities"
	               " WHERE jid = 'bob@x' AND device = 1) WHERE jid = 'bob@x' AND device = 2;"
	               "INSERT INTO meta (key, value) SELECT 'sealed:policy:eve@x', value FROM"
	               " meta WHERE key = 'sealed:policy:bob@x';"),
	       SQLITE_OK, "edit the delivery rows with plain SQL");
	s = open_ok(db, 0);
	TAP_EQ(mend_store_pending_list(s, NULL, pend), 0, "the queue reads");
	TAP_EQ(pend->len, 1, "the message moved to mallory is not in it");
	TAP_OK(pend->len == 1 && g_str_equal(g_array_index(pend, mend_pending, 0).jid, "bob@x") &&
	           g_str_equal(g_array_index(pend, mend_pending, 0).body, "also for bob"),
	       "bob's other message is");
	TAP_EQ(mend_store_devicelist_get(s, "bob@x", &ids, &n), 0, "bob's list reads");
	TAP_OK(n == 1 && ids[0] == 1, "rows set active by hand count for nothing (%zu ids)", n);
	g_free(ids);
	ids = NULL;
	TAP_EQ(mend_store_devicelist_get(s, "dave@x", &ids, &n), 0, "dave's list reads");
	TAP_EQ(n, 0, "carol's sealed list copied onto dave's opens for nobody");
	g_free(ids);
	TAP_EQ(mend_store_peer_identity_get(s, "bob@x", 2, &k, &len, &trust),
	       MEND_ERR_STORE_CORRUPT, "a verified trust row copied onto another device: no trust");
	TAP_EQ(mend_store_sealed_get(s, "policy:eve@x", &v), MEND_ERR_STORE_CORRUPT,
	       "a policy copied to another contact does not open");
	for (n = 0; n < pend->len; n++)
		mend_pending_clear(&g_array_index(pend, mend_pending, n));
	g_array_free(pend, TRUE);
	mend_store_close(s);
}

static void test_version(void)
{
	char *db = path_in_tmp("newer.db");
	mend_store *s = open_ok(db, 1);

	mend_store_close(s);
	TAP_EQ(plain_sql(db, "PRAGMA user_version = 99"), SQLITE_OK, "user_version = 99");
	s = NULL;
	TAP_EQ(mend_store_open(&s, db, key, crypto, NULL), MEND_ERR_STORE_VERSION,
	       "a newer schema is refused");
	TAP_OK(s == NULL, "no store for a newer schema");
	g_free(db);
}

static int read_user_version(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_v0_migrates(void)
{
	char *db = path_in_tmp("v0.db");
	mend_store *s;
	char *v = NULL;

	/* A version 0 database: a valid SQLite file with no schema of ours. */
	TAP_EQ(plain_sql(db, "CREATE TABLE unrelated (x); DROP TABLE unrelated;"), SQLITE_OK,
	       "make an empty v0 database");
	TAP_EQ(read_user_version(db), 0, "it is version 0");
	s = open_ok(db, 1);
	TAP_EQ(mend_store_meta_set(s, "k", "v"), 0, "write to the migrated store");
	mend_store_close(s);
	TAP_EQ(read_user_version(db), MEND_STORE_SCHEMA_VERSION, "migrated to the current version");
	s = open_ok(db, 0);
	TAP_EQ(mend_store_meta_get(s, "k", &v), 0, "value survives");
	g_free(v);
	mend_store_close(s);
	g_free(db);
}

/* Takes a current store back to schema v7: sessions keyed by (jid, device), no versions. */
static const char to_v7[] =
    "DROP TABLE device_versions;"
    "CREATE TABLE s7 (jid TEXT NOT NULL, device INTEGER NOT NULL, record BLOB NOT NULL,"
    " PRIMARY KEY (jid, device));"
    "INSERT INTO s7 SELECT jid, device, record FROM sessions WHERE version = 1;"
    "DROP TABLE sessions; ALTER TABLE s7 RENAME TO sessions;"
    "ALTER TABLE history DROP COLUMN version; ALTER TABLE history DROP COLUMN downgraded;"
    "PRAGMA user_version = 7;";

/* Schema v8: sessions per version; a v7 store's sessions and devices are legacy ones. */
static void test_v7_migrates(void)
{
	static const uint32_t listed[] = {11, 12};
	char *db = path_in_tmp("v7.db");
	mend_store *s = open_ok(db, 1);
	uint8_t *rec = NULL;
	uint32_t *ids = NULL;
	size_t len = 0, n = 0;
	unsigned published = 0;
	int wrote = -1, broken2 = -1;

	TAP_EQ(mend_store_session_put(s, "bob@x", 11, (const uint8_t *)"legacy", 6), 0,
	       "a legacy session");
	TAP_EQ(mend_store_devicelist_set(s, "bob@x", listed, 2), 0, "a device list");
	mend_store_close(s);
	TAP_EQ(plain_sql(db, to_v7), SQLITE_OK, "the store taken back to schema v7");
	s = open_ok(db, 0);
	TAP_EQ(read_user_version(db), MEND_STORE_SCHEMA_VERSION, "migrated to the current version");
	TAP_EQ(mend_store_session_get_v(s, "bob@x", 11, MEND_VERSION_LEGACY, &rec, &len), 0,
	       "the session is the device's legacy one");
	TAP_OK(bytes_eq(rec, len, "legacy", 6), "with its record");
	g_free(rec);
	TAP_EQ(mend_store_session_exists_v(s, "bob@x", 11, MEND_VERSION_2), 0,
	       "no OMEMO:2 session");
	TAP_EQ(mend_store_device_versions_list(s, "bob@x", MEND_VERSION_LEGACY, &ids, &n), 0,
	       "legacy devices");
	TAP_OK(n == 2 && ids[0] == 11 && ids[1] == 12, "the listed devices publish legacy OMEMO");
	g_free(ids);
	TAP_EQ(mend_store_device_versions(s, "bob@x", 12, &published, &wrote, &broken2), 0,
	       "device 12's versions");
	TAP_OK(published == MEND_VERSION_BIT(MEND_VERSION_LEGACY) && wrote == 0 && broken2 == 0,
	       "legacy only, never wrote, bundle usable");
	mend_store_close(s);
	g_free(db);
}

/* One device, two versions: separate sessions, published versions, who wrote how. */
static void test_versions(mend_store *s)
{
	static const uint32_t legacy[] = {1, 2}, v2[] = {2, 3};
	uint8_t *rec = NULL;
	uint32_t *ids = NULL;
	size_t len = 0, n = 0;
	unsigned published = 0;
	int wrote = 0, broken2 = 0;

	TAP_EQ(mend_store_session_put(s, "v@x", 2, (const uint8_t *)"old", 3), 0, "legacy session");
	TAP_EQ(mend_store_session_put_v(s, "v@x", 2, MEND_VERSION_2, (const uint8_t *)"two", 3), 0,
	       "OMEMO:2 session of the same device");
	TAP_EQ(mend_store_session_get(s, "v@x", 2, &rec, &len), 0, "legacy one read");
	TAP_OK(bytes_eq(rec, len, "old", 3), "the OMEMO:2 one did not replace it");
	g_free(rec);
	TAP_EQ(mend_store_session_get_v(s, "v@x", 2, MEND_VERSION_2, &rec, &len), 0,
	       "OMEMO:2 one read");
	TAP_OK(bytes_eq(rec, len, "two", 3), "with its own record");
	g_free(rec);
	TAP_EQ(mend_store_session_put_v(s, "v@x", 2, 3, (const uint8_t *)"x", 1),
	       MEND_ERR_INVALID_ARG, "no version 3");
	TAP_EQ(mend_store_session_delete(s, "v@x", 2), 0, "legacy session deleted");
	TAP_EQ(mend_store_session_exists_v(s, "v@x", 2, MEND_VERSION_2), 1, "OMEMO:2 one stays");
	TAP_EQ(mend_store_device_versions_set(s, "v@x", MEND_VERSION_LEGACY, legacy, 2), 0,
	       "legacy list 1 2");
	TAP_EQ(mend_store_device_versions_set(s, "v@x", MEND_VERSION_2, v2, 2), 0,
	       "OMEMO:2 list 2 3");
	TAP_EQ(mend_store_device_versions_list(s, "v@x", 0, &ids, &n), 0, "devices of either");
	TAP_OK(n == 3 && ids[0] == 1 && ids[2] == 3, "1 2 3");
	g_free(ids);
	TAP_EQ(mend_store_device_versions(s, "v@x", 2, &published, NULL, NULL), 0, "device 2");
	TAP_EQ(published, 3u, "publishes both");
	TAP_EQ(mend_store_device_versions_set(s, "v@x", MEND_VERSION_2, NULL, 0), 0,
	       "an empty OMEMO:2 list");
	TAP_EQ(mend_store_device_versions_list(s, "v@x", MEND_VERSION_2, &ids, &n), 0, "OMEMO:2");
	TAP_EQ(n, 0u, "no OMEMO:2 device left");
	g_free(ids);
	TAP_EQ(mend_store_device_wrote_set(s, "v@x", 2, MEND_VERSION_2), 0, "device 2 wrote in 2");
	TAP_EQ(mend_store_device_set_broken2(s, "v@x", 2, 1), 0, "its OMEMO:2 bundle unusable");
	TAP_EQ(mend_store_device_versions(s, "v@x", 2, &published, &wrote, &broken2), 0,
	       "device 2 again");
	TAP_OK(published == 1 && wrote == MEND_VERSION_2 && broken2 == 1,
	       "legacy published, wrote OMEMO:2, OMEMO:2 bundle unusable");
	TAP_EQ(mend_store_device_versions(s, "v@x", 9, NULL, NULL, NULL), MEND_ERR_NOT_FOUND,
	       "an unknown device");
}

static int session_is(mend_store *s, uint32_t dev, const char *want)
{
	uint8_t *rec = NULL;
	size_t len = 0;
	int rc = mend_store_session_get(s, "tx@x", dev, &rec, &len);
	int ok =
	    want ? rc == 0 && bytes_eq(rec, len, want, strlen(want)) : rc == MEND_ERR_NOT_FOUND;

	g_free(rec);
	return ok;
}

static void put_s(mend_store *s, uint32_t dev, const char *v)
{
	TAP_EQ(mend_store_session_put(s, "tx@x", dev, (const uint8_t *)v, strlen(v)), 0, "put %s",
	       v);
}

static void test_transactions(mend_store *s)
{
	put_s(s, 1, "old");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	put_s(s, 1, "new");
	TAP_EQ(mend_store_begin(s), 0, "nested begin");
	put_s(s, 2, "inner");
	mend_store_rollback(s);
	put_s(s, 3, "after");
	TAP_EQ(mend_store_commit(s), 0, "outer commit after an inner rollback (a savepoint)");
	TAP_OK(session_is(s, 1, "new"), "outer change kept");
	TAP_OK(session_is(s, 2, NULL), "inner change rolled back");
	TAP_OK(session_is(s, 3, "after"), "later change kept");
	put_s(s, 1, "old");

	TAP_EQ(mend_store_begin(s), 0, "begin");
	put_s(s, 1, "discarded");
	mend_store_rollback(s);
	TAP_OK(session_is(s, 1, "old"), "rollback keeps the previous value");

	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_begin(s), 0, "nested begin");
	put_s(s, 1, "kept");
	TAP_EQ(mend_store_commit(s), 0, "inner commit");
	put_s(s, 2, "kept2");
	TAP_EQ(mend_store_commit(s), 0, "outer commit");
	TAP_OK(session_is(s, 1, "kept") && session_is(s, 2, "kept2"), "nested commit writes");
	TAP_EQ(mend_store_commit(s), MEND_ERR_INVALID_ARG, "commit without begin");
}

static void batch_done(void *data, int rc)
{
	*(int *)data = rc == 0 ? 1 : -1;
}

/* A batch (a catch-up page): its own work nests, any other transaction commits it first. */
static void test_batch(mend_store *s)
{
	int done = 0;

	put_s(s, 1, "old");
	TAP_EQ(mend_store_batch_begin(s, batch_done, &done), 0, "a batch begins");
	TAP_EQ(mend_store_depth(s), 0, "the batch is not counted as nesting");
	mend_store_batch_nest(s, 1);
	TAP_EQ(mend_store_begin(s), 0, "its own work begins inside it");
	put_s(s, 1, "page");
	TAP_EQ(mend_store_commit(s), 0, "and ends (a savepoint released)");
	mend_store_batch_nest(s, 0);
	TAP_EQ(mend_store_batch_open(s), 1, "the batch is still open");
	TAP_EQ(done, 0, "not committed yet");
	TAP_EQ(mend_store_begin(s), 0, "other work begins");
	TAP_EQ(done, 1, "after the batch committed");
	TAP_EQ(mend_store_batch_open(s), 0, "which is closed");
	mend_store_rollback(s);
	TAP_OK(session_is(s, 1, "page"), "the other work's rollback keeps the batch's writes");

	done = 0;
	TAP_EQ(mend_store_batch_begin(s, batch_done, &done), 0, "another batch");
	put_s(s, 1, "lost");
	mend_store_rollback(s);
	TAP_OK(session_is(s, 1, "page") && !mend_store_batch_open(s) && done == 0,
	       "rolled back at its level: nothing kept, no done");
	TAP_EQ(mend_store_batch_begin(s, batch_done, &done), 0, "a third");
	put_s(s, 2, "kept");
	TAP_EQ(mend_store_batch_end(s), 0, "ended");
	TAP_OK(done == 1 && session_is(s, 2, "kept"), "committed, done told");
	TAP_EQ(mend_store_batch_end(s), 0, "ending no batch does nothing");
}

static int count_savepoints(unsigned type, void *ctx, void *p, void *x)
{
	(void)type;
	(void)x;
	if (g_str_has_prefix(sqlite3_sql(p), "SAVEPOINT"))
		(*(int *)ctx)++;
	return 0;
}

/* Opens a lazy batch whose own work is nested: a level on top of it. */
static void lazy_level(mend_store *s, int *done)
{
	*done = 0;
	TAP_EQ(mend_store_batch_begin(s, batch_done, done), 0, "a lazy batch");
	mend_store_batch_nest(s, 1);
	mend_store_batch_lazy(s, 1);
	TAP_EQ(mend_store_begin(s), 0, "a level of its own work");
}

/*
 * A lazy batch (a catch-up page, archive.c) runs no SAVEPOINT for its own levels:
 * committing one keeps its writes, rolling back one that wrote nothing is harmless,
 * rolling back one that wrote (a row, or a session in place) loses the whole batch, which
 * then says so and keeps nothing. Not lazy, the same level is a savepoint again.
 */
static void test_batch_lazy(mend_store *s)
{
	mend_store_row row = {0};
	int done = 0, savepoints = 0, changes;

	sqlite3_trace_v2(mend_store_db(s), SQLITE_TRACE_STMT, count_savepoints, &savepoints);
	put_s(s, 1, "before");
	lazy_level(s, &done);
	put_s(s, 1, "kept");
	TAP_EQ(mend_store_begin(s), 0, "a level inside it");
	TAP_EQ(mend_store_commit(s), 0, "committed");
	TAP_EQ(mend_store_commit(s), 0, "the outer level committed");
	TAP_EQ(mend_store_begin(s), 0, "another level");
	TAP_OK(session_is(s, 1, "kept"), "reads what the lazy level wrote");
	mend_store_rollback(s); /* it wrote nothing */
	TAP_EQ(mend_store_batch_lost(s), 0,
	       "rolling back a level that wrote nothing loses nothing");
	mend_store_batch_nest(s, 0);
	TAP_EQ(mend_store_batch_end(s), 0, "the batch commits");
	TAP_OK(done == 1 && session_is(s, 1, "kept"), "with the lazy level's write");
	TAP_EQ(savepoints, 0, "and no SAVEPOINT ran");

	lazy_level(s, &done);
	TAP_EQ(mend_store_commit(s), 0, "a level");
	TAP_EQ(mend_store_begin(s), 0, "a level that writes");
	put_s(s, 1, "undone");
	mend_store_rollback(s);
	TAP_EQ(mend_store_batch_lost(s), 1, "rolled back: the batch is lost");
	mend_store_batch_nest(s, 0);
	TAP_OK(mend_store_batch_end(s) < 0 && done == -1, "its commit fails, done is told");
	TAP_OK(session_is(s, 1, "kept"), "and nothing of it is kept");
	TAP_EQ(mend_store_batch_lost(s), 1, "it says so until the next transaction");

	TAP_EQ(mend_store_session_put_row(s, "tx@x", 1, MEND_VERSION_LEGACY,
	                                  (const uint8_t *)"row-1", 5, &row),
	       0, "a session row");
	lazy_level(s, &done);
	TAP_EQ(mend_store_batch_lost(s), 0, "a new batch is not lost");
	changes = sqlite3_total_changes(mend_store_db(s));
	TAP_EQ(mend_store_session_put_row(s, "tx@x", 1, MEND_VERSION_LEGACY,
	                                  (const uint8_t *)"row-2", 5, &row),
	       0, "a session written in a lazy level");
	TAP_EQ(sqlite3_total_changes(mend_store_db(s)), changes, "in place: no statement wrote");
	mend_store_rollback(s);
	TAP_EQ(mend_store_batch_lost(s), 1, "an in-place write rolled back loses the batch too");
	mend_store_batch_nest(s, 0);
	mend_store_batch_end(s);
	TAP_OK(session_is(s, 1, "row-1"), "the in-place write is undone");

	TAP_EQ(mend_store_batch_begin(s, batch_done, &done), 0, "a batch, not lazy");
	mend_store_batch_nest(s, 1);
	TAP_EQ(mend_store_begin(s), 0, "a level");
	put_s(s, 1, "rolled back");
	mend_store_rollback(s);
	TAP_OK(savepoints == 1 && !mend_store_batch_lost(s) && session_is(s, 1, "row-1"),
	       "is a savepoint, rolled back alone (%d SAVEPOINT)", savepoints);
	put_s(s, 2, "batch");
	mend_store_batch_nest(s, 0);
	TAP_OK(mend_store_batch_end(s) == 0 && session_is(s, 2, "batch"), "the batch commits");
	sqlite3_trace_v2(mend_store_db(s), 0, NULL, NULL);
}

/* Bytes this process handed to write(2) so far (/proc/self/io), or -1 where unknown. */
static gint64 bytes_written(void)
{
	char *io = NULL, *w;
	gint64 n = -1;

	if (g_file_get_contents("/proc/self/io", &io, NULL, NULL) && (w = strstr(io, "wchar:")))
		n = g_ascii_strtoll(w + 6, NULL, 10);
	g_free(io);
	return n;
}

/*
 * A catch-up page is one batch of many savepoints (one per result). SQLite keeps
 * what a savepoint may undo in a sub-journal; with the default temp_store it spills
 * to a temp file past 64 KiB, and a page wrote its pages there over and over before
 * its commit. Nothing may be written before the commit.
 */
static void test_batch_writes(mend_store *s)
{
	gint64 before = bytes_written(), during;
	uint8_t big[3000]; /* one row a page */
	uint32_t d, i;
	int rc = 0;

	if (before < 0) {
		TAP_OK(1, "# SKIP no /proc/self/io here");
		return;
	}
	memset(big, 0x5a, sizeof(big));
	for (d = 0; d < 40; d++) /* the rows the page changes exist before it */
		rc |= mend_store_session_put(s, "page@x", d, big, sizeof(big));
	before = bytes_written();
	rc |= mend_store_batch_begin(s, NULL, NULL);
	mend_store_batch_nest(s, 1);
	for (i = 0; i < 10; i++) { /* each savepoint changes 40 pages: 160 KiB to undo */
		big[0] = (uint8_t)i;
		rc |= mend_store_begin(s);
		for (d = 0; d < 40; d++)
			rc |= mend_store_session_put(s, "page@x", d, big, sizeof(big));
		rc |= mend_store_commit(s);
	}
	mend_store_batch_nest(s, 0);
	during = bytes_written() - before;
	rc |= mend_store_batch_end(s);
	TAP_EQ(rc, 0, "a batch of savepoints commits");
	TAP_OK(during < 16 * 1024, "nothing written before its commit (%" G_GINT64_FORMAT " bytes)",
	       during);
}

static int ids_are(mend_store *s, const char *jid, const uint32_t *want, size_t n)
{
	uint32_t *ids = NULL;
	size_t got = 99;
	int ok = mend_store_devicelist_get(s, jid, &ids, &got) == 0 && got == n &&
	         (n == 0 || memcmp(ids, want, n * sizeof(*ids)) == 0);

	g_free(ids);
	return ok;
}

static void test_devicelist(mend_store *s)
{
	static const uint32_t l1[] = {3, 1, 2}, s1[] = {1, 2, 3}, l2[] = {4, 2};
	static const uint32_t s2[] = {2, 4};

	TAP_OK(ids_are(s, "dl@x", NULL, 0), "no devices yet");
	TAP_EQ(mend_store_devicelist_set(s, "dl@x", l1, 3), 0, "devicelist_set");
	TAP_OK(ids_are(s, "dl@x", s1, 3), "devicelist_get sorted");
	TAP_EQ(mend_store_device_set_broken(s, "dl@x", 2, 1), 0, "set_broken 2");
	TAP_EQ(mend_store_device_set_broken(s, "dl@x", 1, 1), 0, "set_broken 1");
	TAP_EQ(mend_store_devicelist_set(s, "dl@x", l2, 2), 0, "devicelist_set again");
	TAP_OK(ids_are(s, "dl@x", s2, 2), "only the new list is active");
	TAP_EQ(mend_store_device_is_broken(s, "dl@x", 2), 1, "broken mark kept");
	TAP_EQ(mend_store_device_is_broken(s, "dl@x", 1), 1, "inactive device keeps its mark");
	TAP_EQ(mend_store_device_is_broken(s, "dl@x", 4), 0, "new device not broken");
	TAP_EQ(mend_store_device_is_broken(s, "dl@x", 77), 0, "unknown device not broken");
	TAP_EQ(mend_store_device_set_broken(s, "dl@x", 2, 0), 0, "clear broken");
	TAP_EQ(mend_store_device_is_broken(s, "dl@x", 2), 0, "broken mark cleared");
	TAP_EQ(mend_store_devicelist_set(s, "dl@x", l1, 3), 0, "old devices come back");
	TAP_OK(ids_are(s, "dl@x", s1, 3), "reactivated");
	TAP_EQ(mend_store_device_is_broken(s, "dl@x", 1), 1, "and keep their broken mark");
	TAP_OK(ids_are(s, "other@x", NULL, 0), "lists are per jid");
	TAP_EQ(mend_store_devicelist_set(s, "dl@x", NULL, 0), 0, "empty list");
	TAP_OK(ids_are(s, "dl@x", NULL, 0), "nobody active");
}

struct visit {
	uint32_t ids[8];
	int n, stop_at;
	int bad;
};

static int visit_cb(uint32_t id, const uint8_t *rec, size_t len, void *ud)
{
	struct visit *v = ud;
	char want[16];

	snprintf(want, sizeof(want), "pk%u", (unsigned)id);
	if (!bytes_eq(rec, len, want, strlen(want)))
		v->bad++;
	if (v->n < 8)
		v->ids[v->n] = id;
	v->n++;
	return v->n == v->stop_at ? 42 : 0;
}

static void prekeys_put(mend_store *s, uint32_t from, uint32_t to)
{
	char rec[16];
	uint32_t id;
	int rc = 0;

	for (id = from; id <= to; id++) {
		snprintf(rec, sizeof(rec), "pk%u", (unsigned)id);
		rc |= mend_store_prekey_put(s, id, (const uint8_t *)rec, strlen(rec));
	}
	TAP_EQ(rc, 0, "prekey_put %u..%u", (unsigned)from, (unsigned)to);
}

static void test_prekey_walk(mend_store *s)
{
	struct visit v = {.stop_at = 0};

	TAP_EQ(mend_store_prekey_foreach_unused(s, visit_cb, &v), 0, "foreach_unused");
	TAP_OK(v.n == 3 && v.ids[0] == 1 && v.ids[1] == 3 && v.ids[2] == 5 && !v.bad,
	       "unused prekeys in id order with their records");
	memset(&v, 0, sizeof(v));
	v.stop_at = 2;
	TAP_EQ(mend_store_prekey_foreach_unused(s, visit_cb, &v), 42, "callback stops the walk");
	TAP_EQ(v.n, 2, "no call after the stop");
}

static void test_prekeys(mend_store *s)
{
	uint8_t *rec = NULL;
	uint32_t max = 99;
	size_t n = 0, len = 0;

	TAP_EQ(mend_store_prekey_max_id(s, &max), 0, "max_id on an empty table");
	TAP_EQ(max, 0, "max_id 0 when none");
	prekeys_put(s, 1, 5);
	TAP_EQ(mend_store_prekey_mark_used(s, 2), 0, "mark_used 2");
	TAP_EQ(mend_store_prekey_mark_used(s, 4), 0, "mark_used 4");
	TAP_EQ(mend_store_prekey_count_unused(s, &n), 0, "count_unused");
	TAP_EQ(n, 3, "three unused");
	test_prekey_walk(s);
	TAP_EQ(mend_store_prekey_get(s, 2, &rec, &len), 0, "a used prekey stays loadable");
	g_free(rec);
	rec = NULL;
	TAP_EQ(mend_store_prekey_delete_used(s), 0, "delete_used");
	TAP_EQ(mend_store_prekey_get(s, 2, &rec, &len), MEND_ERR_NOT_FOUND, "used prekey gone");
	TAP_EQ(mend_store_prekey_count_unused(s, &n), 0, "count_unused");
	TAP_EQ(n, 3, "unused ones kept");
	TAP_EQ(mend_store_prekey_max_id(s, &max), 0, "max_id");
	TAP_EQ(max, 5, "max_id 5");
	TAP_EQ(mend_store_prekey_delete(s, 5), 0, "delete 5");
	TAP_EQ(mend_store_prekey_max_id(s, &max), 0, "max_id");
	TAP_EQ(max, 3, "max_id 3 after delete");
	TAP_EQ(mend_store_signed_prekey_latest(s, &max), MEND_ERR_NOT_FOUND,
	       "no signed prekey yet");
}

static void test_stanzas(mend_store *s)
{
	TAP_EQ(mend_store_stanza_seen(s, "bob@x", "id1"), 0, "stanza not seen");
	TAP_EQ(mend_store_stanza_mark(s, "bob@x", "id1"), 0, "stanza_mark");
	TAP_EQ(mend_store_stanza_seen(s, "bob@x", "id1"), 1, "stanza seen");
	TAP_EQ(mend_store_stanza_mark(s, "bob@x", "id1"), 0, "marking twice is fine");
	TAP_EQ(mend_store_stanza_seen(s, "carol@x", "id1"), 0, "ids are per 'by'");
	TAP_EQ(mend_store_stanza_seen_or_kept(s, "bob@x", "id1"), 1, "seen_or_kept: marked");
	TAP_EQ(mend_store_stanza_seen_or_kept(s, "bob@x", "kept1"), 0, "seen_or_kept: neither");
	TAP_EQ(mend_store_history_put(s, &(mend_history_item){.key = "kept1",
	                                                      .peer = "bob@x",
	                                                      .from = "bob@x",
	                                                      .body = "b"}),
	       0, "a history row keyed by the id");
	TAP_EQ(mend_store_stanza_seen_or_kept(s, "bob@x", "kept1"), 1, "seen_or_kept: kept");
	TAP_EQ(mend_store_stanza_seen(s, "bob@x", "kept1"), 0, "seen alone reads no history");
}

static void expect_session(mend_store *s, const char *jid, uint32_t device, const char *want,
                           const char *what)
{
	uint8_t *rec = NULL;
	size_t len = 0;

	TAP_EQ(mend_store_session_get(s, jid, device, &rec, &len), 0, "%s: get", what);
	TAP_OK(rec && bytes_eq(rec, len, want, strlen(want)), "%s: %s", what, want);
	g_free(rec);
}

/*
 * Where a session lives (mend_store_row): a write in a transaction goes in place into
 * its row, and only while that row still holds the seal the cache saw: never into a row
 * that changed, went to another session, or would need another size.
 */
static void test_session_rows(mend_store *s)
{
	const int v = MEND_VERSION_LEGACY;
	mend_store_row row = {0}, got = {0}, seen;
	uint8_t *rec = NULL;
	size_t len = 0;
	int changes;

	TAP_EQ(mend_store_session_put_row(s, "rows@x", 1, v, (const uint8_t *)"a1", 2, &row), 0,
	       "put_row: a new session");
	TAP_OK(row.id > 0, "put_row: its row id");
	TAP_EQ(mend_store_session_get_row(s, "rows@x", 1, v, &rec, &len, &got), 0, "get_row");
	TAP_OK(rec && bytes_eq(rec, len, "a1", 2) && got.id == row.id &&
	           memcmp(got.nonce, row.nonce, sizeof(row.nonce)) == 0,
	       "get_row: the record, its row and its seal");
	g_free(rec);
	seen = row;
	TAP_EQ(mend_store_begin(s), 0, "begin");
	changes = sqlite3_total_changes(mend_store_db(s));
	TAP_EQ(mend_store_session_put_row(s, "rows@x", 1, v, (const uint8_t *)"a2", 2, &row), 0,
	       "put_row: in place");
	TAP_EQ(sqlite3_total_changes(mend_store_db(s)), changes,
	       "in place: blob I/O, no statement wrote");
	TAP_OK(row.id == seen.id && memcmp(row.nonce, seen.nonce, sizeof(row.nonce)) != 0,
	       "in place: same row, a new seal");
	expect_session(s, "rows@x", 1, "a2", "in place, in the transaction");
	mend_store_rollback(s);
	expect_session(s, "rows@x", 1, "a1", "in place, rolled back");
	/* the row changed behind the cache: its seal is not the one the cache saw */
	row = seen;
	TAP_EQ(mend_store_session_put(s, "rows@x", 1, (const uint8_t *)"a3", 2), 0, "put");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_session_put_row(s, "rows@x", 1, v, (const uint8_t *)"a4", 2, &row), 0,
	       "put_row: with an old seal");
	TAP_EQ(mend_store_commit(s), 0, "commit");
	expect_session(s, "rows@x", 1, "a4", "old seal");
	/* another size: not in place */
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_session_put_row(s, "rows@x", 1, v, (const uint8_t *)"a5-longer", 9, &row),
	       0, "put_row: another size");
	TAP_EQ(mend_store_commit(s), 0, "commit");
	expect_session(s, "rows@x", 1, "a5-longer", "another size");
	/* the row goes; its id comes back for another session (SQLite reuses the highest) */
	seen = row;
	TAP_EQ(mend_store_session_delete(s, "rows@x", 1), 0, "delete");
	got.id = 0;
	TAP_EQ(mend_store_session_put_row(s, "rows@x", 2, v, (const uint8_t *)"b1-longer", 9, &got),
	       0, "put_row: another session");
	TAP_EQ(got.id, seen.id, "it has the deleted session's row id");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_session_put_row(s, "rows@x", 1, v, (const uint8_t *)"a6-longer", 9, &row),
	       0, "put_row: the stale row id");
	TAP_EQ(mend_store_commit(s), 0, "commit");
	expect_session(s, "rows@x", 2, "b1-longer", "the stale row id left the other session");
	expect_session(s, "rows@x", 1, "a6-longer", "the session written again");
	TAP_OK(row.id != seen.id, "under a new row id");
}

/* The sealed bytes of session row `id` as SQLite holds them now (not through the store). */
static GBytes *raw_record(mend_store *s, int64_t id)
{
	sqlite3_stmt *st = NULL;
	GBytes *b = NULL;

	if (sqlite3_prepare_v2(mend_store_db(s), "SELECT record FROM sessions WHERE rowid = ?1", -1,
	                       &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		b = g_bytes_new(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	return b;
}

static void put_row(mend_store *s, uint32_t dev, const char *v, mend_store_row *row)
{
	TAP_EQ(mend_store_session_put_row(s, "df@x", dev, MEND_VERSION_LEGACY, (const uint8_t *)v,
	                                  strlen(v), row),
	       0, "put_row %s", v);
}

/* Whether row `id` holds the same sealed bytes as `was` (which is freed). */
static int raw_same(mend_store *s, int64_t id, GBytes *was)
{
	GBytes *now = raw_record(s, id);
	int same = now && was && g_bytes_equal(now, was);

	if (now)
		g_bytes_unref(now);
	if (was)
		g_bytes_unref(was);
	return same;
}

/* Ends a lazy batch opened by lazy_level(): its level, then the batch. */
static int lazy_end(mend_store *s)
{
	int rc = mend_store_commit(s);

	mend_store_batch_nest(s, 0);
	return rc ? rc : mend_store_batch_end(s);
}

/*
 * In a lazy batch (a catch-up page) a session's writes are kept and written once, as the
 * batch commits: until then its row holds the old seal. Whatever reads or deletes session
 * rows writes them first; a level that wrote nothing and rolled back keeps them; a lost
 * batch drops them.
 */
static void test_batch_deferred(mend_store *s)
{
	mend_store_row row = {0}, other = {0};
	sqlite3_stmt *st = NULL;
	GBytes *was;
	int done = 0;

	put_row(s, 1, "d-0", &row);
	put_row(s, 2, "e-0", &other);
	was = raw_record(s, row.id);
	lazy_level(s, &done);
	put_row(s, 1, "d-1", &row);
	put_row(s, 1, "d-2", &row);
	TAP_OK(raw_same(s, row.id, was), "kept: the row holds its old seal in the batch");
	TAP_EQ(mend_store_begin(s), 0, "a level that writes nothing");
	mend_store_rollback(s);
	TAP_EQ(mend_store_batch_lost(s), 0, "rolled back, it loses nothing");
	TAP_OK(lazy_end(s) == 0 && done == 1, "the batch commits");
	expect_session(s, "df@x", 1, "d-2", "written as the batch committed");

	lazy_level(s, &done);
	put_row(s, 1, "d-3", &row);
	expect_session(s, "df@x", 1, "d-3", "a read in the batch writes it first");
	TAP_EQ(lazy_end(s), 0, "committed");
	expect_session(s, "df@x", 1, "d-3", "and it stays");

	lazy_level(s, &done);
	put_row(s, 2, "e-1", &other);
	TAP_EQ(mend_store_session_delete(s, "df@x", 2), 0, "deleted in the batch");
	TAP_EQ(lazy_end(s), 0, "committed");
	TAP_EQ(mend_store_session_exists(s, "df@x", 2), 0, "the kept write does not bring it back");
	put_row(s, 2, "e-2", &other);
	lazy_level(s, &done);
	put_row(s, 2, "e-3", &other);
	TAP_EQ(mend_store_session_delete_all(s, "df@x"), 0, "all of the contact's deleted");
	TAP_EQ(lazy_end(s), 0, "committed");
	TAP_EQ(mend_store_session_exists(s, "df@x", 2), 0, "nor after deleting them all");

	put_row(s, 1, "d-4", &row);
	was = raw_record(s, row.id);
	lazy_level(s, &done);
	put_row(s, 1, "d-5", &row);
	TAP_EQ(mend_store_stmt(s, "SELECT count(*) FROM sessions WHERE jid = ?1", &st), 0,
	       "a statement reading sessions");
	sqlite3_reset(st);
	TAP_OK(!raw_same(s, row.id, was), "is handed out after the kept write is written");
	TAP_EQ(lazy_end(s), 0, "committed");

	lazy_level(s, &done);
	put_row(s, 1, "d-6", &row);
	TAP_EQ(mend_store_begin(s), 0, "a level");
	put_row(s, 1, "d-7", &row);
	mend_store_rollback(s);
	TAP_EQ(mend_store_batch_lost(s), 1, "a kept write rolled back loses the batch");
	TAP_OK(lazy_end(s) < 0 && done == -1, "its commit fails");
	expect_session(s, "df@x", 1, "d-5", "and none of its kept writes is written");
}

/* Every seal gets its own nonce, across refills of the store's nonce pool. */
static void test_seal_nonces(mend_store *s)
{
	GHashTable *seen =
	    g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref, NULL);
	uint8_t *out = NULL, *plain = NULL;
	size_t n = 0, m = 0;
	int i, bad = 0;

	for (i = 0; i < 200; i++) {
		bad |= mend_store_seal(s, "t|x", (const uint8_t *)"same", 4, &out, &n) != 0;
		if (out && n > 13)
			bad |= !g_hash_table_add(seen, g_bytes_new(out + 1, 12));
		bad |= mend_store_unseal(s, "t|x", out, n, &plain, &m) != 0 ||
		       !bytes_eq(plain, m, "same", 4);
		g_free(out);
		g_free(plain);
		out = plain = NULL;
	}
	TAP_OK(!bad && g_hash_table_size(seen) == 200, "200 seals, 200 distinct nonces");
	g_hash_table_destroy(seen);
}

/* DESIGN §5: 100 session loads + 100 stores + one commit. Reported, not checked. */
static void time_hundred(mend_store *s)
{
	uint8_t *rec;
	size_t len;
	uint32_t d;
	gint64 t0;
	int rc = 0;

	for (d = 0; d < 100; d++)
		rc |= mend_store_session_put(s, "perf@x", d, session_rec, sizeof(session_rec));
	t0 = g_get_monotonic_time();
	rc |= mend_store_begin(s);
	for (d = 0; d < 100; d++) {
		rec = NULL;
		rc |= mend_store_session_get(s, "perf@x", d, &rec, &len);
		rc |= mend_store_session_put(s, "perf@x", d, rec, len);
		g_free(rec);
	}
	rc |= mend_store_commit(s);
	TAP_EQ(rc, 0, "100 loads + 100 stores + commit");
	printf("# 100 session loads + stores + commit: %.3f ms\n",
	       (double)(g_get_monotonic_time() - t0) / 1000.0);
}

/* Local history keeps the OMEMO version a message came in (schema v10): a replay says
 * "2" for an OMEMO:2 message and marks a downgrade; a row from before v10 reads as 0. */
static void test_history_versions(void)
{
	char *db = path_in_tmp("history.db");
	mend_store *s = open_ok(db, 1);
	mend_history_item in2 = {.key = "sid-2",
	                         .peer = "bob@x",
	                         .from = "bob@x",
	                         .device = 7,
	                         .body = "in OMEMO:2",
	                         .timestamp = "2026-12-06T10:00:00Z",
	                         .ts = 1,
	                         .version = MEND_VERSION_2};
	mend_history_item down = {.key = "sid-3",
	                          .peer = "bob@x",
	                          .from = "bob@x",
	                          .device = 7,
	                          .body = "fell back",
	                          .timestamp = "2026-12-06T10:01:00Z",
	                          .ts = 2,
	                          .version = MEND_VERSION_LEGACY,
	                          .downgraded = 1};
	mend_history_item out = {0};

	TAP_EQ(mend_store_history_put(s, &in2), 0, "an OMEMO:2 message kept");
	TAP_EQ(mend_store_history_put(s, &down), 0, "a downgraded legacy message kept");
	TAP_EQ(mend_store_history_get(s, "sid-2", &out), 0, "the OMEMO:2 message read back");
	TAP_OK(out.version == MEND_VERSION_2 && !out.downgraded && g_str_equal(out.body, in2.body),
	       "it says it came in OMEMO:2 (version %d, downgraded %d)", out.version,
	       out.downgraded);
	mend_history_clear(&out);
	TAP_EQ(mend_store_history_get(s, "sid-3", &out), 0, "the legacy message read back");
	TAP_OK(out.version == MEND_VERSION_LEGACY && out.downgraded,
	       "it says legacy, and a downgrade (version %d, downgraded %d)", out.version,
	       out.downgraded);
	mend_history_clear(&out);
	mend_store_close(s);
	TAP_EQ(plain_sql(db,
	                 "ALTER TABLE history DROP COLUMN version;"
	                 "ALTER TABLE history DROP COLUMN downgraded; PRAGMA user_version = 9;"),
	       SQLITE_OK, "the store taken back to schema v9");
	s = open_ok(db, 0);
	TAP_EQ(read_user_version(db), MEND_STORE_SCHEMA_VERSION, "migrated to the current version");
	TAP_EQ(mend_store_history_get(s, "sid-2", &out), 0, "a v9 row still reads");
	TAP_OK(out.version == 0 && !out.downgraded && g_str_equal(out.body, in2.body),
	       "with no version known (version %d)", out.version);
	mend_history_clear(&out);
	mend_store_close(s);
	g_free(db);
}

/* The integer the first row of `sql` on the file gives (-1: none). */
static int plain_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Takes a current store back to schema v10: seen_stanzas with a rowid, history indexed. */
static const char to_v10[] =
    "CREATE TABLE s10 (\"by\" TEXT NOT NULL, id TEXT NOT NULL, seen_at INTEGER NOT NULL,"
    " PRIMARY KEY (\"by\", id));"
    "INSERT INTO s10 SELECT \"by\", id, seen_at FROM seen_stanzas;"
    "INSERT INTO s10 VALUES ('archive@x', 'old', 12345);"
    "DROP TABLE seen_stanzas; ALTER TABLE s10 RENAME TO seen_stanzas;"
    "CREATE INDEX history_peer_ts ON history (peer, ts);"
    "PRAGMA user_version = 10;";

/* Schema v11: seen_stanzas WITHOUT ROWID, no history_peer_ts; every row is kept. */
static void test_v10_migrates(void)
{
	char *db = path_in_tmp("v10.db");
	mend_store *s = open_ok(db, 1);
	mend_history_item it = {.key = "sid-1", .peer = "bob@x", .from = "bob@x", .body = "kept"};
	mend_history_item out = {0};

	TAP_EQ(mend_store_stanza_mark(s, "archive@x", "s1"), 0, "a stanza id seen");
	TAP_EQ(mend_store_history_put(s, &it), 0, "a message kept");
	mend_store_close(s);
	TAP_EQ(plain_sql(db, to_v10), SQLITE_OK, "the store taken back to schema v10");
	TAP_EQ(plain_int(db, "SELECT count(*) FROM seen_stanzas"), 2, "with two seen ids");
	s = open_ok(db, 0);
	TAP_EQ(read_user_version(db), MEND_STORE_SCHEMA_VERSION, "migrated to the current version");
	TAP_EQ(plain_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'seen_stanzas'"
	                     " AND sql LIKE '%WITHOUT ROWID'"),
	       1, "seen_stanzas is WITHOUT ROWID");
	TAP_EQ(plain_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'history_peer_ts'"),
	       0, "history_peer_ts is gone");
	TAP_EQ(mend_store_stanza_seen(s, "archive@x", "s1"), 1, "the seen id is kept");
	TAP_EQ(mend_store_stanza_seen(s, "archive@x", "old"), 1, "the v10 one too");
	TAP_EQ(plain_int(db, "SELECT seen_at FROM seen_stanzas WHERE id = 'old'"), 12345,
	       "with when it was seen");
	TAP_EQ(mend_store_stanza_seen(s, "archive@x", "s2"), 0, "an id not seen");
	TAP_EQ(mend_store_stanza_mark(s, "archive@x", "s2"), 0, "marked");
	TAP_EQ(mend_store_stanza_mark(s, "archive@x", "s2"), 0, "marked twice: no error");
	TAP_EQ(mend_store_stanza_seen(s, "archive@x", "s2"), 1, "seen now");
	TAP_EQ(mend_store_history_get(s, "sid-1", &out), 0, "the message reads back");
	TAP_OK(out.body && g_str_equal(out.body, "kept"), "its body kept");
	mend_history_clear(&out);
	mend_store_close(s);
	g_free(db);
}

/* Whether SQLite's plan for `sql` on the file names `index`. */
static int plan_uses(const char *path, const char *sql, const char *index)
{
	char *explain = g_strconcat("EXPLAIN QUERY PLAN ", sql, NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int found = 0;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, explain, -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW)
			found |= strstr((const char *)sqlite3_column_text(st, 3), index) != NULL;
	sqlite3_finalize(st);
	sqlite3_close(db);
	g_free(explain);
	return found;
}

/* Schema v12: a contact's sessions of one version are found by an index of their own. */
static void test_v11_migrates(void)
{
	static const char devices2[] =
	    "SELECT device FROM sessions WHERE jid = 'bob@x' AND version = 2";
	static const uint8_t rec[] = "a session record";
	char *db = path_in_tmp("v11.db");
	mend_store *s = open_ok(db, 1);
	uint32_t *ids = NULL, d;
	size_t n = 0;

	for (d = 1; d <= 6; d++)
		TAP_EQ(mend_store_session_put_v(s, "bob@x", d,
		                                d % 3 ? MEND_VERSION_LEGACY : MEND_VERSION_2, rec,
		                                sizeof(rec)),
		       0, "session %u kept", d);
	mend_store_close(s);
	TAP_EQ(plain_sql(db, "DROP INDEX sessions_version; PRAGMA user_version = 11;"), SQLITE_OK,
	       "the store taken back to schema v11");
	TAP_OK(!plan_uses(db, devices2, "sessions_version"),
	       "v11 reads every session of the contact");
	s = open_ok(db, 0);
	TAP_EQ(read_user_version(db), MEND_STORE_SCHEMA_VERSION, "migrated to the current version");
	TAP_OK(plan_uses(db, devices2, "sessions_version"),
	       "a contact's OMEMO:2 sessions are found by their own index");
	TAP_EQ(mend_store_session_devices_v(s, "bob@x", MEND_VERSION_2, &ids, &n), 0,
	       "the OMEMO:2 devices listed");
	TAP_OK(n == 2 && ids[0] == 3 && ids[1] == 6, "devices 3 and 6 (%zu listed)", n);
	g_free(ids);
	mend_store_close(s);
	g_free(db);
}

/* One history item's sealed bytes as GLib makes them, against mend_store_history_data(). */
static int history_data_matches(const mend_history_item *it)
{
	GVariant *v = g_variant_ref_sink(g_variant_new(
	    "(ssusssiii)", it->from ? it->from : "", it->body ? it->body : "", it->device,
	    it->timestamp ? it->timestamp : "", it->stanza_id ? it->stanza_id : "",
	    it->msg_id ? it->msg_id : "", it->carbon, it->outgoing, it->error));
	size_t len = 0;
	uint8_t *data = mend_store_history_data(it, &len);
	int ok = bytes_eq(data, len, g_variant_get_data(v), g_variant_get_size(v));

	g_free(data);
	g_variant_unref(v);
	return ok;
}

/*
 * A history row's data is written by hand (store_msgs.c), not by g_variant_new(): it is
 * the same bytes for every size of framing offset (1, 2 and 4 bytes, and either side of
 * each step), every padding before the 32-bit members, absent strings and negative
 * numbers, and a row written so reads back through GLib's parser.
 */
static void test_history_data(mend_store *s)
{
	/* body lengths around each change of the offsets' width (a row of about 255 and 65535
	 * bytes) and beyond */
	static const size_t first[] = {0, 180, 65380, 69990}, last[] = {20, 300, 65560, 70000};
	char *body = g_malloc(70001), *from = g_strdup("bob@example.org");
	mend_history_item it = {.key = "data-1", .peer = "bob@example.org", .device = 12345};
	mend_history_item out = {0};
	size_t i, n, j, bad = 0, tried = 0;

	memset(body, 'x', 70000);
	for (i = 0; i < G_N_ELEMENTS(first); i++) {
		for (n = first[i]; n <= last[i]; n++) {
			for (j = 0; j < 4;
			     j++, tried++) { /* the padding moves with body and from */
				body[n] = '\0';
				from[strlen(from) - j] = '\0';
				it.body = body;
				it.from = from;
				it.timestamp = j & 1 ? NULL : "2026-12-06T10:00:00Z";
				it.stanza_id = j & 2 ? "sid" : NULL;
				it.msg_id = j == 3 ? NULL : "m-1";
				it.carbon = (int)j;
				it.outgoing = j & 1;
				it.error = -(int)j * 7;
				bad += !history_data_matches(&it);
				body[n] = 'x';
				g_free(from);
				from = g_strdup("bob@example.org");
			}
		}
	}
	TAP_EQ(bad, 0, "history data is GVariant's byte for byte (%zu items)", tried);
	body[300] = '\0';
	it.body = body;
	it.from = from;
	it.stanza_id = "sid-data";
	it.msg_id = NULL;
	it.timestamp = "2026-12-06T10:00:00Z";
	it.error = MEND_ERR_STORE;
	TAP_EQ(mend_store_history_put(s, &it), 0, "a history row written");
	TAP_EQ(mend_store_history_get(s, "data-1", &out), 0, "and read back");
	TAP_OK(g_strcmp0(out.body, body) == 0 && g_strcmp0(out.from, from) == 0 &&
	           out.device == 12345 && g_strcmp0(out.timestamp, it.timestamp) == 0 &&
	           g_strcmp0(out.stanza_id, "sid-data") == 0 && out.msg_id == NULL &&
	           out.error == MEND_ERR_STORE && out.carbon == it.carbon &&
	           out.outgoing == it.outgoing,
	       "every field as written");
	mend_history_clear(&out);
	g_free(body);
	g_free(from);
}

/* The device list and identity key as the store reads them now (1: matches). */
static int list_is(mend_store *s, const uint32_t *want, size_t n)
{
	uint32_t *ids = NULL;
	size_t got = 0;
	int ok = mend_store_devicelist_get(s, "cache@x", &ids, &got) == 0 && got == n &&
	         (!n || memcmp(ids, want, n * sizeof(*ids)) == 0);

	g_free(ids);
	return ok;
}

static int trust_is(mend_store *s, int want)
{
	uint8_t *pub = NULL;
	size_t len = 0;
	int trust = -99, rc = mend_store_peer_identity_get(s, "cache@x", 7, &pub, &len, &trust);

	g_free(pub);
	return want == -1 ? rc == MEND_ERR_NOT_FOUND : rc == 0 && len == 3 && trust == want;
}

/*
 * Device lists and identity keys are read for every message shown, from a cache
 * (store.c): what this store writes, what a rollback undoes and what another
 * connection commits (an edited row too) are seen at once.
 */
static void test_read_caches(void)
{
	char *db = path_in_tmp("caches.db");
	mend_store *s = open_ok(db, 1);
	const uint32_t two[] = {1, 2}, one[] = {1}, three[] = {3};

	TAP_EQ(mend_store_devicelist_set(s, "cache@x", two, 2), 0, "a list of two");
	TAP_OK(list_is(s, two, 2) && list_is(s, two, 2), "read (twice: the second from the cache)");
	TAP_EQ(mend_store_devicelist_set(s, "cache@x", three, 1), 0, "another list");
	TAP_OK(list_is(s, three, 1), "is read at once");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_devicelist_set(s, "cache@x", two, 2), 0, "a list in a transaction");
	TAP_OK(list_is(s, two, 2), "read inside it");
	mend_store_rollback(s);
	TAP_OK(list_is(s, three, 1), "rolled back: the list before");
	TAP_EQ(mend_store_devicelist_set(s, "cache@x", two, 2), 0, "two again");
	TAP_OK(list_is(s, two, 2), "read");
	TAP_EQ(plain_sql(db, "UPDATE devices SET active = 0 WHERE device = 2"), SQLITE_OK,
	       "another connection takes device 2 out");
	TAP_OK(list_is(s, one, 1), "seen at once");
	TAP_EQ(plain_sql(db, "UPDATE devices SET active = 1 WHERE device = 2"), SQLITE_OK,
	       "and edits it back in");
	TAP_OK(list_is(s, two, 2), "seen too");

	TAP_OK(trust_is(s, -1), "no identity key yet");
	TAP_EQ(mend_store_peer_identity_put(s, "cache@x", 7, (const uint8_t *)"abc", 3, 1), 0,
	       "a key, trust 1");
	TAP_OK(trust_is(s, 1) && trust_is(s, 1), "read (twice)");
	TAP_EQ(mend_store_peer_identity_put(s, "cache@x", 7, (const uint8_t *)"abc", 3, 2), 0,
	       "trust 2");
	TAP_OK(trust_is(s, 2), "is read at once");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_peer_identity_put(s, "cache@x", 7, (const uint8_t *)"abc", 3, 3), 0,
	       "trust 3 in a transaction");
	TAP_OK(trust_is(s, 3), "read inside it");
	mend_store_rollback(s);
	TAP_OK(trust_is(s, 2), "rolled back: trust 2");
	TAP_EQ(plain_sql(db, "DELETE FROM peer_identities"), SQLITE_OK,
	       "another connection deletes the key");
	TAP_OK(trust_is(s, -1), "gone at once");
	mend_store_close(s);
	g_free(db);
}

static int wrote_is(mend_store *s, int want, int want2)
{
	int wrote = -1, wrote2 = -1;

	return mend_store_device_wrote(s, "fact@x", 5, &wrote, &wrote2) == 0 && wrote == want &&
	       wrote2 == want2;
}

/* Runs one statement through mend_store_stmt(), as account.c does: 1 when it ran. */
static int stmt_run(mend_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int ok = mend_store_stmt(s, sql, &st) == 0 && sqlite3_step(st) == SQLITE_DONE;

	sqlite3_reset(st);
	return ok;
}

/*
 * Which version a device wrote in: cached; a write that changes nothing is not made; what
 * this store writes, a rollback and another connection's commit are seen at once, and in a
 * later transaction too (data_version is read once per transaction, not carried over).
 */
static void test_cached_wrote(mend_store *s, const char *db)
{
	sqlite3_int64 changes;

	TAP_OK(wrote_is(s, 0, 0) && wrote_is(s, 0, 0), "never wrote (twice: from the cache)");
	TAP_EQ(mend_store_device_wrote_set(s, "fact@x", 5, MEND_VERSION_LEGACY), 0, "wrote legacy");
	TAP_OK(wrote_is(s, 1, 0), "read at once");
	changes = sqlite3_total_changes64(mend_store_db(s));
	TAP_EQ(mend_store_device_wrote_set(s, "fact@x", 5, MEND_VERSION_LEGACY), 0, "legacy again");
	TAP_EQ(sqlite3_total_changes64(mend_store_db(s)), changes, "changes nothing: no write");
	TAP_EQ(mend_store_device_wrote_set(s, "fact@x", 5, MEND_VERSION_2), 0, "wrote OMEMO:2");
	TAP_OK(wrote_is(s, 2, 1), "read at once");
	TAP_EQ(mend_store_device_wrote_set(s, "fact@x", 5, MEND_VERSION_LEGACY), 0, "fell back");
	TAP_OK(wrote_is(s, 1, 1), "legacy, and OMEMO:2 once");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_device_wrote_set(s, "fact@x", 5, MEND_VERSION_2), 0, "OMEMO:2 in it");
	TAP_OK(wrote_is(s, 2, 1), "read inside it");
	mend_store_rollback(s);
	TAP_OK(wrote_is(s, 1, 1), "rolled back: legacy");
	TAP_EQ(plain_sql(db, "UPDATE device_versions SET wrote = 2 WHERE device = 5"), SQLITE_OK,
	       "another connection says OMEMO:2");
	TAP_OK(wrote_is(s, 2, 1), "seen at once");
	TAP_EQ(mend_store_begin(s), 0, "a transaction");
	TAP_OK(wrote_is(s, 2, 1), "read in it");
	TAP_EQ(mend_store_commit(s), 0, "commit");
	TAP_EQ(plain_sql(db, "UPDATE device_versions SET wrote = 1 WHERE device = 5"), SQLITE_OK,
	       "another connection says legacy");
	TAP_EQ(mend_store_begin(s), 0, "the next transaction");
	TAP_OK(wrote_is(s, 1, 1), "sees it");
	TAP_EQ(mend_store_commit(s), 0, "commit");
}

/* Whether a device is news and whether a session exists: cached, and as fresh. */
static void test_cached_news_sessions(mend_store *s, const char *db)
{
	static const uint32_t five[] = {5};

	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_2), 0, "no session");
	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_2), 0, "(from the cache)");
	TAP_EQ(mend_store_session_put_v(s, "fact@x", 9, MEND_VERSION_2, session_rec, 8), 0, "put");
	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_2), 1, "one now");
	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_LEGACY), 0, "per version");
	TAP_EQ(mend_store_session_delete_v(s, "fact@x", 9, MEND_VERSION_2), 0, "delete");
	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_2), 0, "none now");
	TAP_EQ(mend_store_begin(s), 0, "begin");
	TAP_EQ(mend_store_session_put_v(s, "fact@x", 9, MEND_VERSION_2, session_rec, 8), 0, "put");
	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_2), 1, "one inside");
	mend_store_rollback(s);
	TAP_EQ(mend_store_session_exists_v(s, "fact@x", 9, MEND_VERSION_2), 0, "rolled back");
	TAP_EQ(mend_store_session_put(s, "fact@x", 9, session_rec, 8), 0, "a legacy session");
	TAP_EQ(mend_store_session_exists(s, "fact@x", 9), 1, "exists");
	TAP_EQ(mend_store_session_delete_all(s, "fact@x"), 0, "all of fact@x deleted");
	TAP_EQ(mend_store_session_exists(s, "fact@x", 9), 0, "gone");
	TAP_EQ(mend_store_session_put(s, "fact@x", 9, session_rec, 8), 0, "again");
	TAP_EQ(mend_store_session_exists(s, "fact@x", 9), 1, "exists");
	TAP_OK(stmt_run(s, "DELETE FROM sessions"), "every session deleted by other SQL");
	TAP_EQ(mend_store_session_exists(s, "fact@x", 9), 0, "gone");
	TAP_EQ(plain_sql(db, "INSERT INTO sessions (jid, device, version, record)"
	                     " VALUES ('fact@x', 9, 1, x'00')"),
	       SQLITE_OK, "another connection adds one");
	TAP_EQ(mend_store_session_exists(s, "fact@x", 9), 1, "seen at once");

	TAP_EQ(mend_store_devicelist_set(s, "fact@x", five, 1), 0, "device 5 listed");
	TAP_EQ(mend_store_device_news(s, "fact@x", 5), 0, "not news yet");
	TAP_EQ(mend_store_device_news(s, "fact@x", 5), 0, "(from the cache)");
	TAP_EQ(mend_store_devices_mark_listed(s, "fact@x", 1000), 0, "marked listed, we talk");
	TAP_EQ(mend_store_device_news(s, "fact@x", 5), 1, "news now");
	TAP_EQ(mend_store_device_news_clear(s, "fact@x", 5), 0, "cleared");
	TAP_EQ(mend_store_device_news(s, "fact@x", 5), 0, "not news");
	TAP_EQ(plain_sql(db, "UPDATE devices SET news = 1 WHERE device = 5"), SQLITE_OK,
	       "another connection makes it news");
	TAP_EQ(mend_store_device_news(s, "fact@x", 5), 1, "seen at once");
}

static void test_cached_facts(void)
{
	char *db = path_in_tmp("facts.db");
	mend_store *s = open_ok(db, 1);

	test_cached_wrote(s, db);
	test_cached_news_sessions(s, db);
	mend_store_close(s);
	g_free(db);
}

static void test_operations(void)
{
	char *db = path_in_tmp("ops.db");
	mend_store *s = open_ok(db, 1);

	test_transactions(s);
	test_versions(s);
	test_batch(s);
	test_batch_lazy(s);
	test_batch_writes(s);
	test_devicelist(s);
	test_prekeys(s);
	test_stanzas(s);
	test_session_rows(s);
	test_batch_deferred(s);
	test_seal_nonces(s);
	test_history_data(s);
	time_hundred(s);
	mend_store_close(s);
	g_free(db);
}

static void rm_tree(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	char *p;

	while (d && (name = g_dir_read_name(d))) {
		p = g_build_filename(dir, name, NULL);
		g_unlink(p);
		g_free(p);
	}
	if (d)
		g_dir_close(d);
	g_rmdir(dir);
}

int main(void)
{
	char *db, *none;

	if (mend_crypto_global_init() || mend_crypto_new(&crypto))
		TAP_BAIL("crypto init");
	tmpdir = g_dir_make_tmp("mend-test-store-XXXXXX", NULL);
	if (!tmpdir)
		TAP_BAIL("temp dir");
	if (mend_random(key, sizeof(key)) || mend_random(session_rec, sizeof(session_rec)))
		TAP_BAIL("random");
	db = path_in_tmp("store.db");
	none = path_in_tmp("none.db");
	TAP_EQ(mend_store_exists(none), 0, "no store yet");
	test_create_and_reopen(db);
	test_wrong_key(db);
	test_moved_values(db);
	test_fail_closed(db);
	test_version();
	test_v0_migrates();
	test_v7_migrates();
	test_history_versions();
	test_v10_migrates();
	test_v11_migrates();
	test_read_caches();
	test_cached_facts();
	test_operations();
	rm_tree(tmpdir);
	g_free(none);
	g_free(db);
	g_free(tmpdir);
	mend_crypto_free(crypto);
	return tap_done();
}
