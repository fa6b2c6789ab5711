/*
 * keyring.c - finds or makes the 256-bit store key (DESIGN §4): the Secret
 * Service through libsecret (schema "org.mend.StoreKey", attributes account
 * and store path), or, where none answers, the 0600 key file
 * "<db_path>.key" written atomically beside the database.
 *
 * Both hold the key as 64 lower-case hex digits (the file adds a newline).
 * A key file that cannot be read or is not 64 hex digits counts as missing
 * (MEND_ERR_STORE_KEY_MISSING), as does a wrong value in the Secret Service.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <libsecret/secret.h>
#include "keyring.h"
#include "unlock.h"

#define HEX_LEN (2 * MEND_STORE_KEY_LEN)

static const SecretSchema key_schema = {
    .name = "org.mend.StoreKey",
    .flags = SECRET_SCHEMA_NONE,
    .attributes =
        {
            {"account", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {"store", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {NULL, 0},
        },
};

/* What one call found out; `store` is the absolute database path. */
struct key_ctx {
	const char *jid;
	char *store;
	char *file;
	char *why;          /* the Secret Service's error, g_free */
	int no_service;     /* the Secret Service did not answer */
	int unlock_wait_ms; /* < 0: a locked keyring is not asked to unlock */
};

static void hex_encode(const uint8_t key[MEND_STORE_KEY_LEN], char hex[HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < MEND_STORE_KEY_LEN; i++) {
		hex[2 * i] = digits[key[i] >> 4];
		hex[2 * i + 1] = digits[key[i] & 0xf];
	}
	hex[HEX_LEN] = '\0';
}

/* Decodes exactly 64 hex digits (either case); -1 otherwise. */
static int hex_decode(const char *hex, size_t len, uint8_t key[MEND_STORE_KEY_LEN])
{
	int i, hi, lo;

	if (len != HEX_LEN)
		return -1;
	for (i = 0; i < MEND_STORE_KEY_LEN; i++) {
		hi = g_ascii_xdigit_value(hex[2 * i]);
		lo = g_ascii_xdigit_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void note_failure(struct key_ctx *k, GError *err)
{
	k->no_service = 1;
	if (!k->why)
		k->why = g_strdup(err->message);
}

/* ---- Secret Service --------------------------------------------------- */

/*
 * Unlocks what holds the key when all of it is locked (the desktop's
 * prompt, unlock.c): 0 readable now, MEND_ERR_KEYRING_LOCKED still locked,
 * MEND_ERR_KEYRING no answer. For a new key (`items_only` 0), the default
 * collection is unlocked as well.
 */
static int secret_unlock(struct key_ctx *k, int items_only)
{
	SecretService *svc;
	GHashTable *attrs;
	GError *err = NULL;
	GList *items;
	int rc = MEND_ERR_KEYRING;

	svc = secret_service_get_sync(SECRET_SERVICE_NONE, NULL, &err);
	if (!svc)
		goto out;
	attrs = secret_attributes_build(&key_schema, "account", k->jid, "store", k->store, NULL);
	items = secret_service_search_sync(svc, &key_schema, attrs, SECRET_SEARCH_ALL, NULL, &err);
	g_hash_table_unref(attrs);
	if (!err)
		rc = mend_unlock_items(svc, items, k->unlock_wait_ms, &k->why);
	g_list_free_full(items, g_object_unref);
	if (rc == 0 && !items_only)
		rc = mend_unlock_default(svc, k->unlock_wait_ms, &k->why);
	g_object_unref(svc);
out:
	if (err)
		note_failure(k, err);
	else if (rc == MEND_ERR_KEYRING)
		k->no_service = 1;
	g_clear_error(&err);
	return rc;
}

/* 1 found, 0 not there, < 0 no answer (k->no_service), locked or a bad value. */
static int secret_lookup(struct key_ctx *k, uint8_t key[MEND_STORE_KEY_LEN])
{
	GError *err = NULL;
	gchar *pw;
	int rc = secret_unlock(k, 1);

	if (rc)
		return rc;
	pw = secret_password_lookup_sync(&key_schema, NULL, &err, "account", k->jid, "store",
	                                 k->store, NULL);
	if (err) {
		note_failure(k, err);
		g_error_free(err);
		rc = MEND_ERR_KEYRING;
	} else if (pw) {
		rc = hex_decode(pw, strlen(pw), key) ? MEND_ERR_STORE_KEY_MISSING : 1;
		secret_password_free(pw);
	}
	return rc;
}

static int secret_store(struct key_ctx *k, const uint8_t key[MEND_STORE_KEY_LEN])
{
	char hex[HEX_LEN + 1];
	GError *err = NULL;
	gchar *label;
	int rc = 0;

	rc = secret_unlock(k, 0);
	if (rc)
		return rc;
	hex_encode(key, hex);
	label = g_strdup_printf("mend store key for %s", k->jid);
	if (!secret_password_store_sync(&key_schema, SECRET_COLLECTION_DEFAULT, label, hex, NULL,
	                                &err, "account", k->jid, "store", k->store, NULL)) {
		if (err)
			note_failure(k, err);
		else
			k->no_service = 1;
		rc = MEND_ERR_KEYRING;
	}
	g_clear_error(&err);
	g_free(label);
	explicit_bzero(hex, sizeof(hex));
	return rc;
}

/* ---- key file --------------------------------------------------------- */

/* 1 found, 0 no such file, MEND_ERR_STORE_KEY_MISSING unreadable or malformed. */
static int file_read(const char *path, uint8_t key[MEND_STORE_KEY_LEN])
{
	char buf[HEX_LEN + 2];
	ssize_t n;
	size_t len;
	int fd, rc = MEND_ERR_STORE_KEY_MISSING;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : MEND_ERR_STORE_KEY_MISSING;
		goto out;
	}
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		goto wipe_buf;
	len = (size_t)n;
	if (len == HEX_LEN + 1 && buf[HEX_LEN] == '\n')
		len = HEX_LEN;
	if (hex_decode(buf, len, key) == 0)
		rc = 1;
wipe_buf:
	explicit_bzero(buf, sizeof(buf));
out:
	return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Flushes the directory holding `path`, so the new name survives a crash. */
static void sync_dir(const char *path)
{
	char *dir = g_path_get_dirname(path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	g_free(dir);
}

/* Writes a new temporary file next to `path` holding the key; its name in *tmp. */
static int file_write_tmp(const char *path, const uint8_t key[MEND_STORE_KEY_LEN], char **tmp)
{
	char hex[HEX_LEN + 2];
	int fd, rc = MEND_ERR_KEYRING;

	*tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
	fd = g_mkstemp_full(*tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		goto free_name;
	hex_encode(key, hex);
	hex[HEX_LEN] = '\n';
	if (fchmod(fd, 0600) == 0 && write_all(fd, hex, HEX_LEN + 1) == 0 && fsync(fd) == 0)
		rc = 0;
	explicit_bzero(hex, sizeof(hex));
	if (close(fd) != 0)
		rc = MEND_ERR_KEYRING;
	if (!rc)
		goto out;
	unlink(*tmp);
free_name:
	g_free(*tmp);
	*tmp = NULL;
out:
	return rc;
}

/*
 * Writes the key file atomically (temp file, fsync, link). When another
 * process made the file first, its key wins: 1 with `key` replaced.
 */
static int file_create(const char *path, uint8_t key[MEND_STORE_KEY_LEN])
{
	char *tmp;
	int rc = file_write_tmp(path, key, &tmp);

	if (rc)
		goto out;
	if (link(tmp, path) == 0)
		rc = 0;
	else if (errno == EEXIST)
		rc = file_read(path, key) == 1 ? 1 : MEND_ERR_KEYRING;
	else /* no hard links here: rename, which replaces */
		rc = rename(tmp, path) == 0 ? 0 : MEND_ERR_KEYRING;
	unlink(tmp);
	if (rc == 0)
		sync_dir(path);
	g_free(tmp);
out:
	return rc;
}

/* ---- the order of things ---------------------------------------------- */

/* Looks where `mode` allows: 1 found (*source set), 0 nowhere, < 0 error. */
static int key_find(struct key_ctx *k, mend_keyring_mode mode, uint8_t key[MEND_STORE_KEY_LEN],
                    mend_key_source *source)
{
	int rc = 0;

	if (mode != MEND_KEYRING_FILE) {
		rc = secret_lookup(k, key);
		if (rc == 1)
			*source = MEND_KEY_FROM_SECRET_SERVICE;
		if (rc == MEND_ERR_KEYRING)
			rc = mode == MEND_KEYRING_SECRET ? MEND_ERR_KEYRING : 0;
	}
	if (rc == 0 && mode != MEND_KEYRING_SECRET) {
		rc = file_read(k->file, key);
		if (rc == 1)
			*source = MEND_KEY_FROM_FILE;
	}
	return rc;
}

/* Makes a new key and keeps it where `mode` allows. */
static int key_make(struct key_ctx *k, mend_keyring_mode mode, uint8_t key[MEND_STORE_KEY_LEN],
                    mend_key_source *source, int *created)
{
	int rc = mend_random(key, MEND_STORE_KEY_LEN);

	if (rc)
		goto out;
	rc = MEND_ERR_KEYRING;
	/* Not again when the lookup already got no answer: it would not now. */
	if (mode != MEND_KEYRING_FILE && !k->no_service)
		rc = secret_store(k, key);
	if (rc == 0) {
		*source = MEND_KEY_FROM_SECRET_SERVICE;
		*created = 1;
		goto out;
	}
	if (mode == MEND_KEYRING_SECRET || rc == MEND_ERR_KEYRING_LOCKED)
		goto out;
	rc = file_create(k->file, key);
	*source = MEND_KEY_FROM_FILE;
	*created = rc == 0;
	if (rc == 1)
		rc = 0;
out:
	return rc;
}

int mend_keyring_get_key(const char *account_jid, const char *db_path, mend_keyring_mode mode,
                         int unlock_wait_ms, int may_create, uint8_t key[MEND_STORE_KEY_LEN],
                         mend_key_source *source, int *created, char **why)
{
	struct key_ctx k = {.jid = account_jid, .unlock_wait_ms = unlock_wait_ms};
	mend_key_source src = 0;
	int made = 0, rc = MEND_ERR_INVALID_ARG;

	if (!account_jid || !db_path || !key)
		goto out;
	k.store = g_canonicalize_filename(db_path, NULL);
	k.file = g_strconcat(k.store, ".key", NULL);
	rc = key_find(&k, mode, key, &src);
	if (rc == 0 && !may_create)
		rc = MEND_ERR_STORE_KEY_MISSING;
	else if (rc == 0)
		rc = key_make(&k, mode, key, &src, &made);
	else if (rc == 1)
		rc = 0;
	if (rc)
		explicit_bzero(key, MEND_STORE_KEY_LEN);
	if (!rc && source)
		*source = src;
	if (!rc && created)
		*created = made;
	if (why)
		*why = g_steal_pointer(&k.why);
	g_free(k.why);
	g_free(k.file);
	g_free(k.store);
out:
	return rc;
}

/*
 * Removes the key from both places. MEND_ERR_KEYRING only when the Secret
 * Service did not answer and there was no key file to remove either.
 */
int mend_keyring_forget(const char *account_jid, const char *db_path)
{
	GError *err = NULL;
	char *store, *file;
	int rc = MEND_ERR_INVALID_ARG, removed;

	if (!account_jid || !db_path)
		goto out;
	store = g_canonicalize_filename(db_path, NULL);
	file = g_strconcat(store, ".key", NULL);
	secret_password_clear_sync(&key_schema, NULL, &err, "account", account_jid, "store", store,
	                           NULL);
	removed = unlink(file) == 0;
	if (!removed && errno != ENOENT)
		rc = MEND_ERR_STORE;
	else if (err && !removed)
		rc = MEND_ERR_KEYRING;
	else
		rc = 0;
	g_clear_error(&err);
	g_free(file);
	g_free(store);
out:
	return rc;
}
