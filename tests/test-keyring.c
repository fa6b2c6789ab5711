/*
 * test-keyring.c - where the store key lives (src/core/keyring.c).
 * `test-keyring secret`: inside a throwaway D-Bus session with an unlocked
 * gnome-keyring (keyring-secret.sh); `test-keyring nodbus`: with no bus at
 * all (keyring-nodbus.sh), where the key file takes over; `test-keyring
 * locked`: with gnome-keyring's real unlock prompt (gcr-prompter on a
 * private X server), answered by typing the password with xdotool
 * (keyring-locked.sh).
 * HOME and the XDG directories point at a temp dir: no real keyring is used.
 */
#include "config.h"

#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <libsecret/secret.h>
#include "mend/mend.h"
#include "keyring.h"
#include "store.h"
#include "tap.h"

#define JID "alice@example.org"

static const SecretSchema schema = {
    .name = "org.mend.StoreKey",
    .flags = SECRET_SCHEMA_NONE,
    .attributes =
        {
            {"account", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {"store", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {NULL, 0},
        },
};

static mend_crypto *crypto;
static char *tmpdir;

static char *path_in_tmp(const char *name)
{
	return g_build_filename(tmpdir, name, NULL);
}

static void set_env(void)
{
	static const char *const vars[][2] = {
	    {"XDG_DATA_HOME", "data"},
	    {"XDG_CONFIG_HOME", "config"},
	    {"XDG_CACHE_HOME", "cache"},
	};
	char *p;
	size_t i;

	g_setenv("HOME", tmpdir, TRUE);
	for (i = 0; i < G_N_ELEMENTS(vars); i++) {
		p = path_in_tmp(vars[i][1]);
		g_mkdir(p, 0700);
		g_setenv(vars[i][0], p, TRUE);
		g_free(p);
	}
}

static int file_exists(const char *path)
{
	return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* Writes a row into a store opened (created when `create`) with key. */
static void store_write(const char *db, const uint8_t *key, int create)
{
	mend_store *s = NULL;
	int created = -1;

	TAP_EQ(mend_store_open(&s, db, key, crypto, &created), 0, "store opens with the key");
	TAP_EQ(created, create, "store created: %d", create);
	if (!s)
		TAP_BAIL("no store");
	TAP_EQ(mend_store_meta_set(s, "probe", "hello"), 0, "write a row");
	mend_store_close(s);
}

static void store_read(const char *db, const uint8_t *key)
{
	mend_store *s = NULL;
	char *v = NULL;

	TAP_EQ(mend_store_open(&s, db, key, crypto, NULL), 0, "store reopens with the key");
	if (!s)
		TAP_BAIL("no store");
	TAP_EQ(mend_store_meta_get(s, "probe", &v), 0, "row reads back");
	TAP_OK(v && strcmp(v, "hello") == 0, "row value");
	g_free(v);
	mend_store_close(s);
}

static int get_key(const char *db, mend_keyring_mode mode, int may_create, uint8_t *key,
                   mend_key_source *src, int *created, char **why)
{
	*src = 0;
	*created = -1;
	return mend_keyring_get_key(JID, db, mode, 1000, may_create, key, src, created, why);
}

/* The key as the Secret Service holds it, looked up directly. */
static int lookup_direct(const char *db, uint8_t key[MEND_STORE_KEY_LEN])
{
	GError *err = NULL;
	gchar *pw =
	    secret_password_lookup_sync(&schema, NULL, &err, "account", JID, "store", db, NULL);
	int ok = 0, i, hi, lo;

	if (pw && strlen(pw) == 2 * MEND_STORE_KEY_LEN) {
		ok = 1;
		for (i = 0; i < MEND_STORE_KEY_LEN; i++) {
			hi = g_ascii_xdigit_value(pw[2 * i]);
			lo = g_ascii_xdigit_value(pw[2 * i + 1]);
			ok &= hi >= 0 && lo >= 0;
			key[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	if (err)
		printf("# direct lookup: %s\n", err->message);
	g_clear_error(&err);
	secret_password_free(pw);
	return ok;
}

static void secret_first(const char *db, uint8_t key[MEND_STORE_KEY_LEN])
{
	char *keyfile = g_strconcat(db, ".key", NULL);
	mend_key_source src;
	char *why = (char *)"unset";
	int created;

	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 0, key, &src, &created, NULL),
	       MEND_ERR_STORE_KEY_MISSING, "no key before one is made");
	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 1, key, &src, &created, &why), 0, "get_key AUTO");
	TAP_EQ(src, MEND_KEY_FROM_SECRET_SERVICE, "key in the Secret Service");
	TAP_EQ(created, 1, "key created");
	TAP_OK(why == NULL, "no failure to report");
	TAP_OK(!file_exists(keyfile), "no key file on disk");
	g_free(keyfile);
}

static void test_secret(void)
{
	uint8_t key[MEND_STORE_KEY_LEN], again[MEND_STORE_KEY_LEN], direct[MEND_STORE_KEY_LEN];
	char *db = path_in_tmp("acct.db");
	mend_key_source src;
	int created;

	secret_first(db, key);
	store_write(db, key, 1);
	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 0, again, &src, &created, NULL), 0, "get_key again");
	TAP_OK(memcmp(key, again, sizeof(key)) == 0, "same key");
	TAP_EQ(created, 0, "not created this time");
	TAP_EQ(src, MEND_KEY_FROM_SECRET_SERVICE, "from the Secret Service");
	store_read(db, again);
	TAP_OK(lookup_direct(db, direct) && memcmp(direct, key, sizeof(key)) == 0,
	       "key visible through a direct libsecret lookup");
	TAP_EQ(get_key(db, MEND_KEYRING_SECRET, 0, again, &src, &created, NULL), 0,
	       "SECRET mode finds it");
	TAP_EQ(get_key(db, MEND_KEYRING_FILE, 0, again, &src, &created, NULL),
	       MEND_ERR_STORE_KEY_MISSING, "FILE mode does not look in the Secret Service");
	TAP_EQ(mend_keyring_forget(JID, db), 0, "forget");
	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 0, again, &src, &created, NULL),
	       MEND_ERR_STORE_KEY_MISSING, "key gone after forget");
	TAP_OK(!lookup_direct(db, direct), "and gone from the Secret Service");
	g_free(db);
}

static void check_key_file(const char *db, const uint8_t key[MEND_STORE_KEY_LEN])
{
	char *keyfile = g_strconcat(db, ".key", NULL);
	char want[2 * MEND_STORE_KEY_LEN + 2];
	gchar *text = NULL;
	gsize len = 0;
	struct stat sb;
	int i;

	for (i = 0; i < MEND_STORE_KEY_LEN; i++)
		snprintf(want + 2 * i, 3, "%02x", key[i]);
	strcat(want, "\n");
	TAP_EQ(stat(keyfile, &sb), 0, "key file exists");
	TAP_EQ(sb.st_mode & 0777, 0600, "key file mode 0600");
	TAP_OK(g_file_get_contents(keyfile, &text, &len, NULL) && len == strlen(want) &&
	           memcmp(text, want, len) == 0,
	       "key file holds the 32-byte key in hex");
	g_free(text);
	g_free(keyfile);
}

static void nodbus_first(const char *db, uint8_t key[MEND_STORE_KEY_LEN])
{
	mend_key_source src;
	char *why = NULL;
	gint64 t0 = g_get_monotonic_time();
	int created;

	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 1, key, &src, &created, &why), 0, "get_key AUTO");
	printf("# took %.1f ms; why: %s\n", (double)(g_get_monotonic_time() - t0) / 1000.0,
	       why ? why : "(null)");
	TAP_EQ(src, MEND_KEY_FROM_FILE, "key in the key file");
	TAP_EQ(created, 1, "key created");
	TAP_OK(why != NULL, "the Secret Service failure is reported");
	g_free(why);
	check_key_file(db, key);
}

static void nodbus_modes(void)
{
	uint8_t key[MEND_STORE_KEY_LEN];
	char *db = path_in_tmp("other.db"), *keyfile = g_strconcat(db, ".key", NULL);
	mend_key_source src;
	char *why = NULL;
	int created;

	TAP_EQ(get_key(db, MEND_KEYRING_SECRET, 1, key, &src, &created, &why), MEND_ERR_KEYRING,
	       "SECRET mode without a Secret Service");
	TAP_OK(why != NULL, "with a reason");
	g_free(why);
	TAP_EQ(get_key(db, MEND_KEYRING_SECRET, 0, key, &src, &created, NULL), MEND_ERR_KEYRING,
	       "SECRET mode lookup without a Secret Service");
	TAP_OK(!file_exists(keyfile), "SECRET mode wrote no key file");
	TAP_EQ(get_key(db, MEND_KEYRING_FILE, 1, key, &src, &created, NULL), 0, "FILE mode");
	TAP_OK(src == MEND_KEY_FROM_FILE && created == 1, "FILE mode made the key file");
	check_key_file(db, key);
	TAP_OK(g_file_set_contents(keyfile, "0123abcd\n", -1, NULL), "damage the key file");
	TAP_EQ(get_key(db, MEND_KEYRING_FILE, 1, key, &src, &created, NULL),
	       MEND_ERR_STORE_KEY_MISSING, "a malformed key file counts as missing");
	TAP_EQ(mend_keyring_forget(JID, db), 0, "forget removes the key file");
	TAP_OK(!file_exists(keyfile), "key file gone");
	g_free(keyfile);
	g_free(db);
}

static void test_nodbus(void)
{
	uint8_t key[MEND_STORE_KEY_LEN], again[MEND_STORE_KEY_LEN];
	char *db = path_in_tmp("acct.db");
	mend_key_source src;
	int created;

	nodbus_first(db, key);
	store_write(db, key, 1);
	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 0, again, &src, &created, NULL), 0, "get_key again");
	TAP_OK(memcmp(key, again, sizeof(key)) == 0, "same key");
	TAP_EQ(created, 0, "not created this time");
	TAP_EQ(src, MEND_KEY_FROM_FILE, "from the key file");
	store_read(db, again);
	nodbus_modes();
	TAP_EQ(mend_keyring_forget(JID, db), 0, "forget");
	TAP_EQ(get_key(db, MEND_KEYRING_AUTO, 0, again, &src, &created, NULL),
	       MEND_ERR_STORE_KEY_MISSING, "key gone after forget");
	g_free(db);
}

/* ---- locked: the unlock prompt ------------------------------------------ */

/* Locks (or checks) the default collection, where the key went. */
static int default_locked(int lock)
{
	SecretService *svc = secret_service_get_sync(SECRET_SERVICE_NONE, NULL, NULL);
	SecretCollection *coll =
	    svc ? secret_collection_for_alias_sync(svc, SECRET_COLLECTION_DEFAULT,
	                                           SECRET_COLLECTION_NONE, NULL, NULL)
	        : NULL;
	GList one = {coll, NULL, NULL};
	int locked = -1;

	if (coll && lock)
		secret_service_lock_sync(svc, &one, NULL, NULL, NULL);
	if (coll) {
		secret_collection_refresh(coll);
		locked = secret_collection_get_locked(coll);
	}
	g_clear_object(&coll);
	g_clear_object(&svc);
	return locked;
}

#define UNLOCK "type --delay 30 pw", "key Return" /* the password is "pw" */
#define CANCEL "key Escape"

/*
 * Plays the user at the next unlock dialog: tests/answer-prompt.sh (path in
 * MEND_ANSWER_PROMPT) waits for it, then runs xdotool with each argument.
 */
/* Reads the answerer's stdout until its "watching" line (30 s at the most). */
static void wait_watching(int fd)
{
	char buf[256];
	size_t have = 0;
	gint64 until = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;

	while (g_get_monotonic_time() < until && have < sizeof(buf) - 1) {
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		if (strstr(buf, "watching"))
			return;
	}
	printf("# the answerer never said it was watching\n");
}

static GPid answer_prompt(int wait, const char *arg1, const char *arg2, const char *arg3)
{
	const char *script = g_getenv("MEND_ANSWER_PROMPT");
	char *argv[] = {(char *)"sh", (char *)script, (char *)arg1,
	                (char *)arg2, (char *)arg3,   NULL};
	GPid pid = 0;
	int status = -1, out = -1;

	if (!script)
		TAP_BAIL("MEND_ANSWER_PROMPT is not set (run keyring-locked.sh)");
	if (wait)
		g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status,
		             NULL);
	else if (g_spawn_async_with_pipes(NULL, argv, NULL,
	                                  G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL,
	                                  NULL, &pid, NULL, &out, NULL, NULL)) {
		wait_watching(out); /* before the caller makes the dialog appear */
		close(out);
	}
	if (wait)
		printf("# answered %s: status %d\n", arg1, status);
	return pid;
}

static void reap(GPid pid)
{
	int status = -1;

	if (pid > 0)
		waitpid(pid, &status, 0);
	printf("# answerer exited: %d\n", status);
}

/* get_key with an unlock wait; *ms gets how long it took. */
static int get_key_wait(const char *db, int wait_ms, uint8_t *key, double *ms)
{
	mend_key_source src;
	int created, r;
	gint64 t0 = g_get_monotonic_time();

	r = mend_keyring_get_key(JID, db, MEND_KEYRING_AUTO, wait_ms, 0, key, &src, &created, NULL);
	*ms = (double)(g_get_monotonic_time() - t0) / 1000.0;
	printf("# get_key (wait %d ms): %d after %.0f ms\n", wait_ms, r, *ms);
	return r;
}

/* Polls (no prompt) until the key is readable again, up to 15 s. */
static int readable_again(const char *db, uint8_t *key)
{
	int i, r = -1;

	for (i = 0; i < 150 && r != 0; i++) {
		if (i)
			g_usleep(100000);
		r = mend_keyring_get_key(JID, db, MEND_KEYRING_AUTO, -1, 0, key, NULL, NULL, NULL);
	}
	return r;
}

/* A new key goes to the locked default collection: keyring locked, no key file instead. */
static int new_store_while_locked(void)
{
	uint8_t key[MEND_STORE_KEY_LEN];
	char *db = path_in_tmp("new.db"), *keyfile = g_strconcat(db, ".key", NULL);
	int r = mend_keyring_get_key(JID, db, MEND_KEYRING_AUTO, -1, 1, key, NULL, NULL, NULL);

	printf("# new store while locked: %d\n", r);
	r = r == MEND_ERR_KEYRING_LOCKED && !file_exists(keyfile);
	g_free(keyfile);
	g_free(db);
	return r;
}

/* The prompt is left up when nobody answers in time; answered later, the key reads. */
static void locked_unanswered(const char *db, const uint8_t *key)
{
	uint8_t again[MEND_STORE_KEY_LEN];
	char *keyfile = g_strconcat(db, ".key", NULL);
	double ms;

	TAP_EQ(default_locked(1), 1, "the collection is locked");
	TAP_EQ(get_key_wait(db, -1, again, &ms), MEND_ERR_KEYRING_LOCKED,
	       "no prompt asked for: keyring locked");
	TAP_OK(ms < 5000, "at once");
	TAP_EQ(get_key_wait(db, 1500, again, &ms), MEND_ERR_KEYRING_LOCKED,
	       "prompt not answered in time: keyring locked");
	TAP_OK(ms >= 1400 && ms < 10000, "after the bounded wait (%.0f ms)", ms);
	TAP_OK(!file_exists(keyfile), "no key file made while locked");
	TAP_OK(new_store_while_locked(), "a new store's key waits for the unlock too");
	answer_prompt(1, "--present", UNLOCK);
	TAP_EQ(readable_again(db, again), 0, "the prompt left up, answered later, unlocks");
	TAP_OK(memcmp(key, again, MEND_STORE_KEY_LEN) == 0, "same key");
	g_free(keyfile);
}

static void test_locked(void)
{
	uint8_t key[MEND_STORE_KEY_LEN], again[MEND_STORE_KEY_LEN];
	char *db = path_in_tmp("acct.db");
	double ms;
	GPid pid;

	secret_first(db, key);
	store_write(db, key, 1);
	locked_unanswered(db, key);
	TAP_EQ(default_locked(1), 1, "locked again");
	pid = answer_prompt(0, CANCEL, NULL, NULL);
	TAP_EQ(get_key_wait(db, 20000, again, &ms), MEND_ERR_KEYRING_LOCKED,
	       "prompt cancelled: keyring locked");
	TAP_OK(ms < 15000, "without waiting out the limit");
	reap(pid);
	TAP_EQ(default_locked(0), 1, "still locked");
	pid = answer_prompt(0, UNLOCK, NULL);
	TAP_EQ(get_key_wait(db, 20000, again, &ms), 0, "prompt answered: the key");
	reap(pid);
	TAP_OK(memcmp(key, again, sizeof(key)) == 0, "same key");
	TAP_EQ(default_locked(0), 0, "the collection is unlocked");
	store_read(db, again);
	g_free(db);
}

static void rm_tree(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	const char *name;
	char *p;

	while (d && (name = g_dir_read_name(d))) {
		p = g_build_filename(path, name, NULL);
		if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
			rm_tree(p);
		else
			g_unlink(p);
		g_free(p);
	}
	if (d)
		g_dir_close(d);
	g_rmdir(path);
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "secret") != 0 && strcmp(argv[1], "nodbus") != 0 &&
	                  strcmp(argv[1], "locked") != 0)) {
		fprintf(stderr, "usage: %s secret|nodbus|locked\n", argv[0]);
		return 99;
	}
	tmpdir = g_dir_make_tmp("mend-test-keyring-XXXXXX", NULL);
	if (!tmpdir)
		TAP_BAIL("temp dir");
	set_env();
	if (mend_crypto_global_init() || mend_crypto_new(&crypto))
		TAP_BAIL("crypto init");
	if (strcmp(argv[1], "secret") == 0)
		test_secret();
	else if (strcmp(argv[1], "locked") == 0)
		test_locked();
	else
		test_nodbus();
	secret_service_disconnect();
	mend_crypto_free(crypto);
	rm_tree(tmpdir);
	g_free(tmpdir);
	return tap_done();
}
