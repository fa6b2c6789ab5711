/*
 * account.c - one context per XMPP account (no globals): opening the store
 * with its key from the keyring, our identity on first use (device id,
 * identity key pair, signed prekey, 100 one-time prekeys), our bundle and
 * device list, the device lists and bundles of others, and catch-up.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <glib/gstdio.h>
#include <libintl.h>
#include "internal.h"
#include "omemo2_engine.h"
#include "files.h"
#include "keyring.h"
#include "unlock.h"
#include <sqlite3.h>
#include "sigstore.h"
#include "xep/omemo_legacy.h"
#include "parser.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

void mend_log(const mend_account *acc, mend_log_level level, const char *fmt, ...)
{
	va_list ap;
	char *text;

	if (!acc->ops.log)
		return;
	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	acc->ops.log(level, text, acc->user_data);
	g_free(text);
}

static void signal_log_cb(int level, const char *message, size_t len, void *ud)
{
	mend_log(ud, level <= SG_LOG_WARNING ? MEND_LOG_WARNING : MEND_LOG_DEBUG, "libsignal: %.*s",
	         (int)len, message);
}

static void lock_cb(void *ud)
{
	g_rec_mutex_lock(&((mend_account *)ud)->lock);
}

static void unlock_cb(void *ud)
{
	g_rec_mutex_unlock(&((mend_account *)ud)->lock);
}

char *mend_stanza_text(xmpp_stanza_t *st)
{
	char *buf = NULL, *out;
	size_t len = 0;

	if (!st || xmpp_stanza_to_text(st, &buf, &len) != XMPP_EOK)
		return NULL;
	out = g_strndup(buf, len);
	xmpp_free(xmpp_stanza_get_context(st), buf);
	return out;
}

xmpp_stanza_t *mend_stanza_parse(mend_account *acc, const char *xml)
{
	if (!xml)
		return NULL;
	return mend_parser_parse(acc->parser, acc->xctx, xml);
}

/* --- transactions ---------------------------------------------------------- */

int mend_account_txn_begin(mend_account *acc)
{
	int r;

	acc->store_err = 0;
	if (mend_store_depth(acc->store) == 0)
		mend_trust_forget_change(acc);
	r = mend_store_begin(acc->store);
	if (r == MEND_OK)
		mend_sigstore_check_cache(acc);
	return r;
}

int mend_account_txn_end(mend_account *acc, int r)
{
	if (r < 0)
		mend_store_rollback(acc->store);
	else
		r = mend_store_commit(acc->store);
	mend_trust_flush(acc);
	return r;
}

int mend_account_signal_err(mend_account *acc, int sg_err)
{
	return acc->store_err ? acc->store_err : mend_err_from_signal(sg_err);
}

/* --- identity on first use ------------------------------------------------- */

static int store_prekeys(mend_account *acc, uint32_t start, unsigned count)
{
	signal_protocol_key_helper_pre_key_list_node *head = NULL, *node;
	signal_buffer *buf = NULL;
	int r;

	r = signal_protocol_key_helper_generate_pre_keys(&head, start, count, acc->sctx);
	if (r < 0)
		return mend_account_signal_err(acc, r);
	for (node = head; node && r >= 0; node = signal_protocol_key_helper_key_list_next(node)) {
		session_pre_key *pk = signal_protocol_key_helper_key_list_element(node);

		r = session_pre_key_serialize(&buf, pk);
		if (r < 0) {
			r = mend_account_signal_err(acc, r);
			break;
		}
		r = mend_store_prekey_put(acc->store, session_pre_key_get_id(pk),
		                          signal_buffer_data(buf), signal_buffer_len(buf));
		signal_buffer_bzero_free(buf);
	}
	signal_protocol_key_helper_key_list_free(head);
	return r < 0 ? r : MEND_OK;
}

/*
 * Where the next one-time prekey ids start. Kept in the store rather than
 * derived from the highest id present: a used prekey that was the highest
 * would otherwise have its id reused at once, for a different key, and a
 * sender still holding our old bundle would build a session that fails.
 */
static int next_prekey_id(mend_account *acc, uint32_t *next)
{
	uint32_t max_id = 0;
	char *v = NULL;
	int r;

	r = mend_store_meta_get(acc->store, "prekey_next", &v);
	if (r == MEND_OK) {
		*next = (uint32_t)g_ascii_strtoull(v, NULL, 10);
		g_free(v);
	} else {
		r = mend_store_prekey_max_id(acc->store, &max_id);
		*next = max_id + 1;
	}
	if (*next == 0 || *next > MEND_PREKEY_ID_MAX)
		*next = 1; /* ids wrap within libsignal's 24-bit range */
	return r == MEND_ERR_NOT_FOUND ? MEND_OK : r;
}

/*
 * Records where the next prekey ids start if the store does not say yet (a
 * new identity, or a store from before this was kept). Called before a used
 * prekey is deleted, so that its id stays counted even if it was the highest.
 */
int mend_account_keep_prekey_next(mend_account *acc)
{
	char buf[16];
	char *v = NULL;
	uint32_t next = 0;
	int r;

	r = mend_store_meta_get(acc->store, "prekey_next", &v);
	g_free(v);
	if (r != MEND_ERR_NOT_FOUND)
		return r;
	r = next_prekey_id(acc, &next);
	if (r < 0)
		return r;
	g_snprintf(buf, sizeof(buf), "%u", next);
	return mend_store_meta_set(acc->store, "prekey_next", buf);
}

int mend_account_replenish_prekeys(mend_account *acc)
{
	char buf[16];
	size_t n = 0;
	uint32_t start, count;
	int r;

	r = mend_store_prekey_count_unused(acc->store, &n);
	if (r < 0 || n >= MEND_PREKEY_TARGET)
		return r;
	r = next_prekey_id(acc, &start);
	if (r < 0)
		return r;
	count = (uint32_t)(MEND_PREKEY_TARGET - n);
	if (start + count - 1 > MEND_PREKEY_ID_MAX)
		start = 1;
	r = store_prekeys(acc, start, count);
	if (r == MEND_OK) {
		g_snprintf(buf, sizeof(buf), "%u", start + count);
		r = mend_store_meta_set(acc->store, "prekey_next", buf);
	}
	if (r == MEND_OK)
		acc->bundle_dirty = 1;
	mend_store_kill_point(acc->store, "refill"); /* the crash test's */
	return r;
}

static int new_device_id(uint32_t *id)
{
	int r;

	do {
		r = mend_random(id, sizeof(*id));
		*id &= 0x7fffffffu; /* XEP-0384 v0.3 §4.2: 1..2^31-1 */
	} while (r == MEND_OK && *id == 0);
	return r;
}

static int create_signed_prekey(mend_account *acc, ratchet_identity_key_pair *ikp, uint32_t id)
{
	session_signed_pre_key *spk = NULL;
	signal_buffer *buf = NULL;
	int r;

	r = signal_protocol_key_helper_generate_signed_pre_key(
	    &spk, ikp, id, (uint64_t)mend_now(acc) * 1000, acc->sctx);
	if (r < 0)
		return mend_account_signal_err(acc, r);
	r = session_signed_pre_key_serialize(&buf, spk);
	SIGNAL_UNREF(spk);
	if (r < 0)
		return mend_account_signal_err(acc, r);
	r = mend_store_signed_prekey_put(acc->store, id, signal_buffer_data(buf),
	                                 signal_buffer_len(buf));
	signal_buffer_bzero_free(buf);
	return r;
}

static int save_identity_pair(mend_account *acc, ratchet_identity_key_pair *ikp)
{
	signal_buffer *pub = NULL, *priv = NULL;
	int r;

	r = ec_public_key_serialize(&pub, ratchet_identity_key_pair_get_public(ikp));
	if (r >= 0)
		r = ec_private_key_serialize(&priv, ratchet_identity_key_pair_get_private(ikp));
	if (r < 0) {
		r = mend_account_signal_err(acc, r);
		goto out;
	}
	r = mend_store_identity_set(acc->store, acc->device_id, signal_buffer_data(pub),
	                            signal_buffer_len(pub), signal_buffer_data(priv),
	                            signal_buffer_len(priv));
out:
	signal_buffer_free(pub);
	signal_buffer_bzero_free(priv);
	return r;
}

/* When this device was made: where its first archive catch-up starts. */
static int store_created(mend_account *acc)
{
	char now[24];

	g_snprintf(now, sizeof(now), "%" G_GINT64_FORMAT, g_get_real_time() / G_USEC_PER_SEC);
	return mend_store_meta_set(acc->store, "created", now);
}

static int create_identity(mend_account *acc)
{
	ratchet_identity_key_pair *ikp = NULL;
	int r;

	r = new_device_id(&acc->device_id);
	if (r < 0)
		return r;
	r = signal_protocol_key_helper_generate_identity_key_pair(&ikp, acc->sctx);
	if (r < 0)
		return mend_account_signal_err(acc, r);
	r = mend_account_txn_begin(acc);
	if (r < 0)
		goto free_ikp;
	r = save_identity_pair(acc, ikp);
	if (r >= 0)
		r = create_signed_prekey(acc, ikp, 1);
	if (r >= 0)
		r = store_prekeys(acc, 1, MEND_PREKEY_TARGET);
	if (r >= 0)
		r = mend_account_keep_prekey_next(acc);
	if (r >= 0)
		r = store_created(acc);
	r = mend_account_txn_end(acc, r);
	if (r == MEND_OK)
		mend_log(acc, MEND_LOG_INFO, "new OMEMO identity for %s: device %u", acc->jid,
		         acc->device_id);
free_ikp:
	SIGNAL_UNREF(ikp);
	return r;
}

static int load_identity(mend_account *acc)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	int r;

	r = mend_store_identity_get(acc->store, &acc->device_id, &pub, &pub_len, &priv, &priv_len);
	if (r == MEND_ERR_NOT_FOUND)
		return create_identity(acc);
	if (r == MEND_OK) {
		memset(priv, 0, priv_len);
		g_free(priv);
		g_free(pub);
	}
	return r;
}

/* Deletes every one-time prekey and every session (a new identity invalidates them). */
static int drop_keys_and_sessions(mend_account *acc)
{
	sqlite3_stmt *st = NULL;
	int r;

	r = mend_store_stmt(acc->store, "DELETE FROM prekeys", &st);
	if (r == MEND_OK) {
		r = sqlite3_step(st) == SQLITE_DONE ? MEND_OK : MEND_ERR_STORE;
		sqlite3_reset(st);
	}
	if (r == MEND_OK)
		r = mend_store_stmt(acc->store, "DELETE FROM sessions", &st);
	if (r == MEND_OK) {
		r = sqlite3_step(st) == SQLITE_DONE ? MEND_OK : MEND_ERR_STORE;
		sqlite3_reset(st);
	}
	mend_sigstore_forget_sessions(acc);
	return r;
}

int mend_account_reset_identity(mend_account *acc)
{
	ratchet_identity_key_pair *ikp = NULL;
	uint32_t spk = 0;
	int r;

	r = signal_protocol_key_helper_generate_identity_key_pair(&ikp, acc->sctx);
	if (r < 0)
		return mend_account_signal_err(acc, r);
	mend_store_signed_prekey_latest(acc->store, &spk);
	r = mend_account_txn_begin(acc);
	if (r == MEND_OK) {
		r = save_identity_pair(acc, ikp);
		if (r >= 0)
			r = create_signed_prekey(acc, ikp, spk + 1);
		if (r >= 0) /* our peers are told the new key (repair.c) */
			r = mend_repair_note_sessions(acc);
		if (r >= 0)
			r = drop_keys_and_sessions(acc);
		if (r >= 0)
			r = mend_account_replenish_prekeys(acc);
		r = mend_account_txn_end(acc, r);
	}
	SIGNAL_UNREF(ikp);
	if (r == MEND_OK) {
		mend_log(acc, MEND_LOG_WARNING, "new identity key for device %u", acc->device_id);
		mend_account_notify_bundle(acc);
		mend_repair_flush(acc);
	}
	return r;
}

/* --- opening --------------------------------------------------------------- */

static int open_signal(mend_account *acc)
{
	signal_crypto_provider provider;
	int r;

	r = signal_context_create(&acc->sctx, acc);
	if (r < 0)
		return mend_err_from_signal(r);
	mend_crypto_fill_provider(acc->crypto, &provider);
	signal_context_set_crypto_provider(acc->sctx, &provider);
	signal_context_set_locking_functions(acc->sctx, lock_cb, unlock_cb);
	signal_context_set_log_function(acc->sctx, signal_log_cb);
	r = signal_protocol_store_context_create(&acc->sstore, acc->sctx);
	if (r < 0)
		return mend_err_from_signal(r);
	mend_sigstore_install(acc);
	return MEND_OK;
}

static void notice_keyfile(mend_account *acc, const char *db_path, const char *why)
{
	char *text;

	mend_log(acc, MEND_LOG_WARNING, "no Secret Service (%s); store key kept in %s.key",
	         why ? why : "?", db_path);
	if (!acc->ops.show_notice)
		return;
	text = g_strdup_printf(_("No keyring (Secret Service) is available, so the key that "
	                         "protects your OMEMO keys is kept in the file %s.key, readable "
	                         "only by you. Start GNOME Keyring or KWallet to keep it there "
	                         "instead."),
	                       db_path);
	acc->ops.show_notice(MEND_NOTICE_KEYFILE_FALLBACK, NULL, text, acc->user_data);
	g_free(text);
}

static int open_store(mend_account *acc, const char *data_dir, mend_keyring_mode mode)
{
	uint8_t key[MEND_STORE_KEY_LEN];
	mend_key_source source = 0;
	int created = 0, r;
	char *why = NULL, *path;

	if (g_mkdir_with_parents(data_dir, 0700) < 0) {
		mend_log(acc, MEND_LOG_ERROR, "cannot create %s: %s", data_dir, g_strerror(errno));
		return MEND_ERR_STORE;
	}
	path = g_build_filename(data_dir, "omemo.sqlite", NULL);
	r = mend_keyring_get_key(acc->jid, path, mode & ~MEND_KEYRING_NO_PROMPT,
	                         mode & MEND_KEYRING_NO_PROMPT ? -1 : MEND_UNLOCK_WAIT_MS,
	                         !mend_store_exists(path), key, &source, &created, &why);
	if (r == MEND_OK && created && source == MEND_KEY_FROM_FILE)
		notice_keyfile(acc, path, why);
	if (r == MEND_OK)
		r = mend_store_open(&acc->store, path, key, acc->crypto, NULL);
	memset(key, 0, sizeof(key));
	g_free(why);
	g_free(path);
	return r;
}

int mend_account_open(mend_account **out, const char *bare_jid, const char *data_dir,
                      mend_keyring_mode keyring, const mend_host_ops *ops, void *user_data)
{
	mend_account *acc;
	int r;

	if (!out || !bare_jid || !*bare_jid || strchr(bare_jid, '/') || !data_dir)
		return MEND_ERR_INVALID_ARG;
	*out = NULL;
	mend_i18n_init();
	r = mend_crypto_global_init();
	if (r < 0)
		return r;
	acc = g_new0(mend_account, 1);
	g_rec_mutex_init(&acc->lock);
	acc->jid = g_strdup(bare_jid);
	if (ops)
		acc->ops = *ops;
	acc->user_data = user_data;
	/* the crash test (tests/e2e/test_crash.py) makes signed-prekey rotation due with it */
	if (g_getenv("MEND_TEST_CLOCK_SKEW"))
		acc->clock_skew = g_ascii_strtoll(g_getenv("MEND_TEST_CLOCK_SKEW"), NULL, 10);
	acc->parser = mend_parser_new();
	acc->xctx = xmpp_ctx_new(mend_parser_mem(acc->parser), NULL);
	r = acc->xctx ? mend_crypto_new(&acc->crypto) : MEND_ERR_NOMEM;
	if (r == MEND_OK)
		r = open_store(acc, data_dir, keyring);
	if (r == MEND_OK) {
		mend_store_on_end(acc->store, mend_announce_txn_end, acc);
		r = open_signal(acc);
	}
	if (r == MEND_OK)
		r = load_identity(acc);
	if (r < 0) {
		mend_account_free(acc);
		return r;
	}
	*out = acc;
	return MEND_OK;
}

void mend_account_free(mend_account *acc)
{
	if (acc && acc->omemo2_twins)
		g_hash_table_destroy(acc->omemo2_twins);
	if (!acc)
		return;
	mend_file_jobs_free(acc); /* transfers still running are cancelled and waited for */
	mend_archive_close(acc);
	mend_engine_free(acc->eng);
	mend_rooms_free(acc);
	mend_repair_free(acc->rep);
	mend_announce_free(acc->announce);
	mend_shown_free(acc->shown);
	mend_delivery_free(acc);
	g_free(acc->changed_jid);
	g_free(acc->changed_key);
	if (acc->skipped)
		g_ptr_array_free(acc->skipped, TRUE);
	if (acc->sessions)
		g_hash_table_destroy(acc->sessions);
	if (acc->sstore)
		signal_protocol_store_context_destroy(acc->sstore);
	if (acc->sctx)
		signal_context_destroy(acc->sctx);
	mend_store_close(acc->store);
	mend_crypto_free(acc->crypto);
	if (acc->xctx)
		xmpp_ctx_free(acc->xctx);
	mend_parser_free(acc->parser); /* after the context that takes its memory from it */
	g_rec_mutex_clear(&acc->lock);
	g_free(acc->jid);
	g_free(acc);
}

const char *mend_account_jid(const mend_account *acc)
{
	return acc->jid;
}

uint32_t mend_account_device_id(const mend_account *acc)
{
	return acc->device_id;
}

int mend_account_fingerprint(const mend_account *acc, char out[65])
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	uint32_t id;
	int r;

	r = mend_store_identity_get(acc->store, &id, &pub, &pub_len, &priv, &priv_len);
	if (r < 0)
		return r;
	memset(priv, 0, priv_len);
	g_free(priv);
	/* DESIGN §3: the hex of the 32-byte Curve25519 form (without the 0x05 type byte). */
	if (pub_len != MEND_PUBKEY_LEN) {
		g_free(pub);
		return MEND_ERR_STORE_CORRUPT;
	}
	mend_key_fingerprint(pub, pub_len, out);
	g_free(pub);
	return MEND_OK;
}

/* --- our bundle and device list -------------------------------------------- */

static int copy_public(ec_public_key *key, uint8_t out[MEND_PUBKEY_LEN])
{
	signal_buffer *buf = NULL;
	int r = ec_public_key_serialize(&buf, key);

	if (r < 0)
		return mend_err_from_signal(r);
	r = signal_buffer_len(buf) == MEND_PUBKEY_LEN ? MEND_OK : MEND_ERR_INVALID_KEY;
	if (r == MEND_OK)
		memcpy(out, signal_buffer_data(buf), MEND_PUBKEY_LEN);
	signal_buffer_free(buf);
	return r;
}

struct prekey_walk {
	mend_account *acc;
	GArray *arr;
};

static int add_prekey_cb(uint32_t id, const uint8_t *rec, size_t len, void *ud)
{
	struct prekey_walk *w = ud;
	session_pre_key *pk = NULL;
	mend_prekey_pub pub = {.id = id};
	int r;

	r = session_pre_key_deserialize(&pk, rec, len, w->acc->sctx);
	if (r < 0)
		return MEND_ERR_STORE_CORRUPT;
	r = copy_public(ec_key_pair_get_public(session_pre_key_get_key_pair(pk)), pub.key);
	SIGNAL_UNREF(pk);
	if (r == MEND_OK)
		g_array_append_val(w->arr, pub);
	return r;
}

/* Signed prekey `id` from the store (SIGNAL_UNREF it); MEND_ERR_NOT_FOUND if gone. */
static int load_signed_prekey(mend_account *acc, uint32_t id, session_signed_pre_key **spk)
{
	uint8_t *rec = NULL;
	size_t len = 0;
	int r = mend_store_signed_prekey_get(acc->store, id, &rec, &len);

	if (r < 0)
		return r;
	r = session_signed_pre_key_deserialize(spk, rec, len, acc->sctx);
	memset(rec, 0, len);
	g_free(rec);
	return r < 0 ? MEND_ERR_STORE_CORRUPT : MEND_OK;
}

static int fill_signed_prekey(mend_account *acc, mend_bundle *b)
{
	session_signed_pre_key *spk = NULL;
	int r;

	r = mend_store_signed_prekey_latest(acc->store, &b->spk_id);
	if (r == MEND_OK)
		r = load_signed_prekey(acc, b->spk_id, &spk);
	if (r < 0)
		return r;
	r = copy_public(ec_key_pair_get_public(session_signed_pre_key_get_key_pair(spk)), b->spk);
	if (r == MEND_OK && session_signed_pre_key_get_signature_len(spk) != MEND_SIGNATURE_LEN)
		r = MEND_ERR_STORE_CORRUPT;
	if (r == MEND_OK)
		memcpy(b->spk_sig, session_signed_pre_key_get_signature(spk), MEND_SIGNATURE_LEN);
	SIGNAL_UNREF(spk);
	return r;
}

int mend_account_fill_bundle(mend_account *acc, mend_bundle *b)
{
	GArray *arr = g_array_new(FALSE, FALSE, sizeof(mend_prekey_pub));
	struct prekey_walk walk = {acc, arr};
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	uint32_t id;
	int r;

	r = mend_store_identity_get(acc->store, &id, &pub, &pub_len, &priv, &priv_len);
	if (r < 0)
		goto free_arr;
	memset(priv, 0, priv_len);
	g_free(priv);
	if (pub_len == MEND_PUBKEY_LEN)
		memcpy(b->ik, pub, MEND_PUBKEY_LEN);
	else
		r = MEND_ERR_STORE_CORRUPT;
	g_free(pub);
	if (r == MEND_OK)
		r = fill_signed_prekey(acc, b);
	if (r == MEND_OK)
		r = mend_store_prekey_foreach_unused(acc->store, add_prekey_cb, &walk);
	if (r < 0)
		goto free_arr;
	b->n_prekeys = arr->len;
	b->prekeys = (mend_prekey_pub *)g_array_free(arr, FALSE);
	return MEND_OK;
free_arr:
	g_array_free(arr, TRUE);
	return r;
}

int mend_account_bundle_xml(mend_account *acc, char **xml)
{
	mend_bundle b = {0};
	xmpp_stanza_t *st;
	int r;

	*xml = NULL;
	r = mend_account_fill_bundle(acc, &b);
	if (r < 0)
		return r;
	st = mend_legacy_bundle_build(acc->xctx, &b);
	*xml = mend_stanza_text(st);
	if (st)
		xmpp_stanza_release(st);
	mend_bundle_clear(&b);
	acc->bundle_dirty = 0;
	return *xml ? MEND_OK : MEND_ERR_NOMEM;
}

int mend_account_own_devicelist_xml(mend_account *acc, char **xml)
{
	mend_devicelist dl = {0};
	xmpp_stanza_t *st;
	size_t i;
	int r;

	*xml = NULL;
	/* the devices our legacy list named (a device of OMEMO:2 only stays out of it) */
	r = mend_store_device_versions_list(acc->store, acc->jid, MEND_VERSION_LEGACY, &dl.ids,
	                                    &dl.n);
	if (r == MEND_ERR_NOT_FOUND)
		r = MEND_OK;
	if (r < 0)
		return r;
	/* XEP-0384 v0.3 §4.2: add ourselves, never drop another device's id. */
	for (i = 0; i < dl.n && dl.ids[i] != acc->device_id; i++)
		;
	if (i == dl.n) {
		dl.ids = g_renew(uint32_t, dl.ids, dl.n + 1);
		dl.ids[dl.n++] = acc->device_id;
	}
	if (dl.n > MEND_MAX_DEVICES) {
		mend_devicelist_clear(&dl);
		return MEND_ERR_TOO_LARGE;
	}
	st = mend_legacy_devicelist_build(acc->xctx, &dl);
	*xml = mend_stanza_text(st);
	if (st)
		xmpp_stanza_release(st);
	mend_devicelist_clear(&dl);
	return *xml ? MEND_OK : MEND_ERR_NOMEM;
}

/* --- others' device lists and bundles -------------------------------------- */

int mend_account_devicelist_update(mend_account *acc, const char *jid, const char *list_xml)
{
	mend_devicelist dl = {0};
	xmpp_stanza_t *st;
	int r;

	if (!jid || !list_xml)
		return MEND_ERR_INVALID_ARG;
	st = mend_stanza_parse(acc, list_xml);
	if (!st) {
		mend_log(acc, MEND_LOG_WARNING, "device list of %s: not XML, ignored", jid);
		return MEND_ERR_MALFORMED;
	}
	r = mend_legacy_devicelist_parse(st, &dl);
	xmpp_stanza_release(st);
	if (r < 0) {
		mend_log(acc, MEND_LOG_WARNING, "device list of %s rejected: %s", jid,
		         mend_strerror(r));
		return r;
	}
	r = mend_omemo2_list_store(acc, jid, MEND_VERSION_LEGACY, dl.ids, dl.n);
	mend_devicelist_clear(&dl);
	return r;
}

/* The devices we encrypt to for `jid`: its list, without our own device. */
int mend_account_devices(mend_account *acc, const char *jid, uint32_t **ids, size_t *n)
{
	size_t i, j = 0;
	int r;

	*ids = NULL;
	*n = 0;
	r = mend_store_devicelist_get(acc->store, jid, ids, n);
	if (r == MEND_ERR_NOT_FOUND)
		return MEND_OK;
	if (r < 0)
		return r;
	for (i = 0; i < *n; i++)
		if (!(g_str_equal(jid, acc->jid) && (*ids)[i] == acc->device_id))
			(*ids)[j++] = (*ids)[i];
	*n = j;
	return MEND_OK;
}

int mend_account_devices_needing_bundle(mend_account *acc, const char *jid, uint32_t **ids,
                                        size_t *n)
{
	size_t i, j = 0;
	int r;

	r = mend_account_devices(acc, jid, ids, n);
	for (i = 0; r == MEND_OK && i < *n; i++) {
		/* a version it publishes whose session we lack */
		r = mend_omemo2_missing_version(acc, jid, (*ids)[i]);
		if (r > 0)
			(*ids)[j++] = (*ids)[i];
		if (r > 0)
			r = MEND_OK;
	}
	if (r < 0) {
		g_free(*ids);
		*ids = NULL;
		j = 0;
	}
	*n = j;
	return r;
}

static int decode_bundle(mend_account *acc, const char *xml, mend_bundle *b)
{
	xmpp_stanza_t *st = mend_stanza_parse(acc, xml);
	int r;

	if (!st)
		return MEND_ERR_MALFORMED;
	r = mend_legacy_bundle_parse(st, b);
	xmpp_stanza_release(st);
	return r;
}

static int make_prekey_bundle(mend_account *acc, const mend_bundle *b, const char *jid,
                              uint32_t device, session_pre_key_bundle **out)
{
	ec_public_key *pk = NULL, *spk = NULL, *ik = NULL;
	size_t pick = 0;
	int r;

	r = mend_sigstore_pick_prekey(acc, jid, device, b->prekeys, sizeof(b->prekeys[0]),
	                              b->n_prekeys, &pick);
	if (r < 0)
		return r;
	r = curve_decode_point(&pk, b->prekeys[pick].key, MEND_PUBKEY_LEN, acc->sctx);
	if (r >= 0)
		r = curve_decode_point(&spk, b->spk, MEND_PUBKEY_LEN, acc->sctx);
	if (r >= 0)
		r = curve_decode_point(&ik, b->ik, MEND_PUBKEY_LEN, acc->sctx);
	if (r >= 0)
		r = session_pre_key_bundle_create(out, device, (int)device, b->prekeys[pick].id, pk,
		                                  b->spk_id, spk, b->spk_sig, MEND_SIGNATURE_LEN,
		                                  ik);
	SIGNAL_UNREF(pk);
	SIGNAL_UNREF(spk);
	SIGNAL_UNREF(ik);
	return r < 0 ? MEND_ERR_INVALID_KEY : MEND_OK;
}

static int build_session(mend_account *acc, const char *jid, uint32_t device,
                         session_pre_key_bundle *pkb)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)device};
	session_builder *builder = NULL;
	int r, valid = 0;

	r = session_builder_create(&builder, acc->sstore, &addr, acc->sctx);
	if (r < 0)
		return mend_err_from_signal(r);
	r = mend_account_txn_begin(acc);
	if (r == MEND_OK) {
		r = session_builder_process_pre_key_bundle(builder, pkb);
		if (r < 0)
			r = mend_account_signal_err(acc, r);
		/* another key than the one we trust: a candidate if its bundle is valid */
		if (r == MEND_ERR_UNTRUSTED)
			valid = mend_trust_probe_bundle(acc, builder, pkb);
		if (r == MEND_OK)
			r = mend_store_device_set_broken(acc->store, jid, device, 0);
		r = mend_account_txn_end(acc, r);
	}
	if (valid)
		mend_trust_keep_candidate(acc);
	session_builder_free(builder);
	return r;
}

int mend_account_bundle_process(mend_account *acc, const char *jid, uint32_t device,
                                const char *bundle_xml)
{
	session_pre_key_bundle *pkb = NULL;
	mend_bundle b = {0};
	int r;

	if (!jid || !bundle_xml || device == 0 || device > 0x7fffffffu)
		return MEND_ERR_INVALID_ARG;
	r = decode_bundle(acc, bundle_xml, &b);
	if (r == MEND_OK)
		r = make_prekey_bundle(acc, &b, jid, device, &pkb);
	if (r == MEND_OK)
		r = build_session(acc, jid, device, pkb);
	SIGNAL_UNREF(pkb);
	mend_bundle_clear(&b);
	if (r < 0) {
		mend_log(acc, MEND_LOG_WARNING, "bundle of %s device %u rejected: %s", jid, device,
		         mend_strerror(r));
		/* A bundle we cannot use: skip that device until it publishes a good one. */
		if (r == MEND_ERR_MALFORMED || r == MEND_ERR_BAD_BASE64 ||
		    r == MEND_ERR_INVALID_KEY || r == MEND_ERR_TOO_LARGE)
			mend_store_device_set_broken(acc->store, jid, device, 1);
	} else {
		mend_devices_announce(acc, jid, device);
	}
	return r;
}

/* --- the clock ----------------------------------------------------------- */

int64_t mend_now(const mend_account *acc)
{
	if (acc->now)
		return acc->now(acc->now_data);
	return g_get_real_time() / G_USEC_PER_SEC + acc->clock_skew;
}

void mend_account_set_clock(mend_account *acc, int64_t (*now)(void *data), void *data)
{
	acc->now = now;
	acc->now_data = data;
}

/* --- signed prekey rotation -------------------------------------------------- */

/* When signed prekey `id` was made (seconds, from its record); MEND_ERR_NOT_FOUND if gone. */
static int spk_made(mend_account *acc, uint32_t id, int64_t *when)
{
	session_signed_pre_key *spk = NULL;
	int r = load_signed_prekey(acc, id, &spk);

	if (r < 0)
		return r;
	*when = (int64_t)(session_signed_pre_key_get_timestamp(spk) / 1000);
	SIGNAL_UNREF(spk);
	return MEND_OK;
}

static int new_signed_prekey(mend_account *acc, uint32_t id)
{
	ratchet_identity_key_pair *ikp = NULL;
	int r = signal_protocol_identity_get_key_pair(acc->sstore, &ikp);

	if (r < 0)
		return mend_account_signal_err(acc, r);
	r = create_signed_prekey(acc, ikp, id);
	SIGNAL_UNREF(ikp);
	if (r == MEND_OK)
		acc->bundle_dirty = 1;
	return r;
}

/* Deletes the signed prekeys replaced more than MEND_SPK_KEEP seconds ago (below `latest`). */
static int retire_signed_prekeys(mend_account *acc, uint32_t latest, int64_t now)
{
	int64_t replaced = 0;
	uint32_t id;
	int r = MEND_OK;

	/* ids are consecutive: the successor of `id` says when `id` was replaced */
	for (id = latest; id > 1 && r == MEND_OK; id--) {
		r = spk_made(acc, id, &replaced);
		if (r == MEND_OK && now - replaced > MEND_SPK_KEEP) {
			r = mend_store_signed_prekey_delete(acc->store, id - 1);
			if (r == MEND_OK)
				mend_log(acc, MEND_LOG_INFO, "signed prekey %u retired", id - 1);
		}
	}
	return r == MEND_ERR_NOT_FOUND ? MEND_OK : r;
}

/*
 * XEP-0384 v0.3 §4.3 leaves rotation to us: a new signed prekey every
 * MEND_SPK_ROTATE seconds, the replaced ones kept MEND_SPK_KEEP seconds more
 * for prekey messages built on them that are still on their way.
 */
int mend_account_rotate_signed_prekey(mend_account *acc)
{
	int64_t now = mend_now(acc), made = 0;
	uint32_t latest = 0;
	int r, rotated = 0;

	r = mend_account_txn_begin(acc);
	if (r < 0)
		return r;
	r = mend_store_signed_prekey_latest(acc->store, &latest);
	if (r == MEND_OK)
		r = spk_made(acc, latest, &made);
	if (r == MEND_OK && now - made >= MEND_SPK_ROTATE) {
		r = new_signed_prekey(acc, ++latest);
		rotated = r == MEND_OK;
		mend_store_kill_point(acc->store, "rotate"); /* the crash test's */
	}
	if (r == MEND_OK)
		r = retire_signed_prekeys(acc, latest, now);
	r = mend_account_txn_end(acc, r);
	if (r == MEND_OK && rotated) {
		mend_log(acc, MEND_LOG_INFO, "new signed prekey %u", latest);
		mend_account_notify_bundle(acc);
	}
	return r;
}

/* --- catch-up -------------------------------------------------------------- */

void mend_account_catchup_begin(mend_account *acc)
{
	acc->in_catchup = 1;
}

int mend_account_catchup_end(mend_account *acc)
{
	int r;

	/* DESIGN §3: used prekeys stay until every catch-up (ours, the rooms') has ended */
	if (acc->room_catchups)
		return MEND_OK;
	acc->in_catchup = 0;
	r = mend_store_prekey_delete_used(acc->store);
	if (r == MEND_OK)
		mend_account_notify_bundle(acc);
	return r;
}

void mend_account_notify_bundle(mend_account *acc)
{
	if (!acc->bundle_dirty || acc->in_catchup || acc->probe_key)
		return;
	/* connected, the engine publishes it (building it clears the flag), once READY */
	if (!mend_engine_bundle_changed(acc))
		acc->bundle_dirty = 0;
	if (acc->ops.bundle_changed)
		acc->ops.bundle_changed(acc->user_data);
}

int mend_account_prekey_count(mend_account *acc, size_t *n)
{
	return mend_store_prekey_count_unused(acc->store, n);
}
