/*
 * repair.c - keeping sessions working without the user (DESIGN §4a): empty
 * OMEMO key transport messages (XEP-0384 v0.3 §4.5, no <payload/>) that
 *
 *  - repair: a message for this device that cannot be decrypted because the
 *    session is missing, stale or built on a key we no longer have is answered
 *    with a key transport in a PreKeySignalMessage built from the sender's
 *    bundle, which replaces the sender's broken session (v0.3 Business Rules);
 *    at most once per device per hour, never while reading the archive;
 *  - heartbeats: after a PreKeySignalMessage, or after STALENESS messages from
 *    a device we did not answer, a key transport on the session completes it
 *    (the sender stops sending prekey messages) and moves the ratchet forward
 *    (python-omemo's STALENESS_MAGIC_NUMBER, Conversations' practice);
 *  - announcements: after an identity reset, every device we had a session
 *    with gets a key transport under the new key, so its client learns the
 *    change at once instead of after a failed message.
 *
 * Nothing here is shown to the user except what engine.c says about a repair.
 * What must wait (catch-up, no connection) waits in `due` until
 * mend_repair_flush(); announcements wait in the store (meta) across restarts.
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include "internal.h"
#include "xep/omemo_legacy.h"

#define REPAIR_INTERVAL 3600 /* seconds between two repairs of one device */
#define STALENESS       53   /* messages received from a device we did not answer */
#define META_ANNOUNCE   "repair:announce"
#define META_REPAIRED   "repair:" /* + "device/jid": when we last asked it to start over */

enum want { WANT_HEARTBEAT = 1, WANT_REBUILD = 2 };

struct mend_repair {
	GHashTable *due;        /* "device/jid" -> enum want, sent once we may */
	GHashTable *received;   /* "device/jid" -> messages received since we last sent to it */
	GHashTable *told;       /* "device/jid" whose new identity key the user was told of */
	GHashTable *announcing; /* "device/jid" of the stored announcements under way */
};

static mend_repair *state(mend_account *acc)
{
	if (!acc->rep) {
		acc->rep = g_new0(mend_repair, 1);
		acc->rep->due = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->rep->received = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->rep->told = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->rep->announcing = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	}
	return acc->rep;
}

void mend_repair_free(mend_repair *rep)
{
	if (!rep)
		return;
	g_hash_table_destroy(rep->due);
	g_hash_table_destroy(rep->received);
	g_hash_table_destroy(rep->told);
	g_hash_table_destroy(rep->announcing);
	g_free(rep);
}

static char *dev_key(const char *jid, uint32_t device)
{
	return g_strdup_printf("%u/%s", device, jid);
}

/* "device/jid" -> jid (g_free) and device; 0 when it is not one. */
static int split_key(const char *key, char **jid, uint32_t *device)
{
	const char *slash = strchr(key, '/');
	char *id;
	int ok;

	if (!slash || !slash[1])
		return 0;
	id = g_strndup(key, (gsize)(slash - key));
	ok = mend_parse_device_id(id, device) == MEND_OK;
	g_free(id);
	if (ok)
		*jid = g_strdup(slash + 1);
	return ok;
}

/* We know no key of it yet (a bundle will tell), or we trust the one we know. */
static int may_talk_to(mend_account *acc, const char *jid, uint32_t device)
{
	int trust = mend_trust_of(acc, jid, device);

	return trust < 0 || mend_trust_is_trusted(trust);
}

/* XEP-0384 v0.3 §4.5: an empty key transport message to one device, on its current session. */
static int send_key_transport(mend_account *acc, const char *jid, uint32_t device)
{
	mend_recipient rc = {(char *)jid, device, 0}; /* 0: the version of its session */
	char *stanza = NULL;
	int r;

	if (!mend_trust_is_trusted(mend_trust_of(acc, jid, device)))
		return MEND_ERR_UNTRUSTED;
	r = mend_account_encrypt_for(acc, jid, &rc, 1, NULL, NULL, 0, &stanza);
	if (r == MEND_OK) {
		mend_engine_send(acc, stanza);
		mend_log(acc, MEND_LOG_INFO, "key transport sent to %s device %u", jid, device);
	}
	g_free(stanza);
	return r;
}

/* An announcement is done (sent, or the device has no usable bundle): off the stored list. */
static void announced(mend_account *acc, const char *key)
{
	char *list = NULL, **lines;
	GString *rest = g_string_new(NULL);
	int i;

	if (!g_hash_table_remove(state(acc)->announcing, key) ||
	    mend_store_meta_get(acc->store, META_ANNOUNCE, &list) != MEND_OK) {
		g_string_free(rest, TRUE);
		return;
	}
	lines = g_strsplit(list, "\n", -1);
	for (i = 0; lines[i]; i++)
		if (*lines[i] && !g_str_equal(lines[i], key))
			g_string_append_printf(rest, "%s%s", rest->len ? "\n" : "", lines[i]);
	mend_store_meta_set(acc->store, META_ANNOUNCE, rest->str);
	g_strfreev(lines);
	g_free(list);
	g_string_free(rest, TRUE);
}

/* The bundle for a repair or an announcement: a new session, then a PreKeySignalMessage. */
static void bundle_arrived(mend_account *acc, const char *jid, uint32_t device, const char *xml)
{
	char *key = dev_key(jid, device);
	int r = MEND_ERR_NOT_FOUND;

	if (xml)
		r = mend_account_bundle_process(acc, jid, device, xml);
	if (r == MEND_OK)
		r = send_key_transport(acc, jid, device);
	if (r < 0)
		mend_log(acc, MEND_LOG_WARNING,
		         "cannot ask %s device %u to start a new session: %s", jid, device,
		         mend_strerror(r));
	announced(acc, key);
	g_free(key);
}

static void send_due(mend_account *acc, const char *key, enum want what)
{
	uint32_t device = 0;
	char *jid = NULL;
	int r;

	if (!split_key(key, &jid, &device))
		return;
	if (what == WANT_REBUILD) {
		mend_engine_fetch_bundle(acc, jid, device, bundle_arrived);
	} else if (mend_store_session_exists(acc->store, jid, device) == 1 ||
	           mend_store_session_exists_v(acc->store, jid, device, MEND_VERSION_2) == 1) {
		/* either version: a device we only have an OMEMO:2 session with gets its
		 * heartbeat in OMEMO:2 (XEP-0384 0.9 §7, omemo2_devices.c picks the version) */
		r = send_key_transport(acc, jid, device);
		if (r < 0 && r != MEND_ERR_UNTRUSTED)
			mend_log(acc, MEND_LOG_WARNING, "no heartbeat for %s device %u: %s", jid,
			         device, mend_strerror(r));
	}
	g_free(jid);
}

/*
 * Announcements of a new identity key become due; they stay in the store until
 * sent, so a process that ends first (mend send) leaves them to the next one.
 */
static void take_announcements(mend_account *acc)
{
	char *list = NULL, **lines;
	int i;

	if (mend_store_meta_get(acc->store, META_ANNOUNCE, &list) != MEND_OK) {
		g_free(list);
		return;
	}
	lines = g_strsplit(list, "\n", -1);
	for (i = 0; lines[i]; i++)
		if (*lines[i] && g_hash_table_add(state(acc)->announcing, g_strdup(lines[i])))
			g_hash_table_replace(state(acc)->due, g_strdup(lines[i]),
			                     GINT_TO_POINTER(WANT_REBUILD));
	g_strfreev(lines);
	g_free(list);
}

void mend_repair_disconnected(mend_account *acc)
{
	/* bundle requests under way are forgotten with the stream: take them again */
	g_hash_table_remove_all(state(acc)->announcing);
}

void mend_repair_flush(mend_account *acc)
{
	GHashTable *due;
	GHashTableIter it;
	gpointer key, what;

	if (!mend_engine_can_send(acc))
		return;
	take_announcements(acc);
	due = state(acc)->due;
	if (!g_hash_table_size(due))
		return;
	/* what a send adds meanwhile waits for the next flush */
	acc->rep->due = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_hash_table_iter_init(&it, due);
	while (g_hash_table_iter_next(&it, &key, &what))
		send_due(acc, key, (enum want)GPOINTER_TO_INT(what));
	g_hash_table_destroy(due);
}

/* Marks a device for a key transport (a rebuild includes a heartbeat) and sends what may go. */
static void want(mend_account *acc, const char *jid, uint32_t device, enum want what)
{
	GHashTable *due = state(acc)->due;
	char *key = dev_key(jid, device);
	int had = GPOINTER_TO_INT(g_hash_table_lookup(due, key));

	g_hash_table_replace(due, key, GINT_TO_POINTER(MAX(had, (int)what)));
	mend_repair_flush(acc);
}

void mend_repair_received(mend_account *acc, const char *jid, uint32_t device, int prekey,
                          int history)
{
	GHashTable *received = state(acc)->received;
	char *key;
	unsigned n;

	if (history || (g_str_equal(jid, acc->jid) && device == acc->device_id))
		return;
	key = dev_key(jid, device);
	n = GPOINTER_TO_UINT(g_hash_table_lookup(received, key)) + 1;
	if (prekey || n >= STALENESS) {
		g_hash_table_remove(received, key);
		g_free(key);
		want(acc, jid, device, WANT_HEARTBEAT);
		return;
	}
	g_hash_table_replace(received, key, GUINT_TO_POINTER(n));
}

void mend_repair_sent(mend_account *acc, const char *jid, uint32_t device)
{
	GHashTable *received = state(acc)->received;
	char *key;

	if (!g_hash_table_size(received)) /* the usual case: once per device of every send */
		return;
	key = dev_key(jid, device);
	g_hash_table_remove(received, key);
	g_free(key);
}

int mend_repair_new_key(mend_account *acc, const char *jid, uint32_t device, char fp[65])
{
	GPtrArray *keys = mend_trust_candidates(acc, jid, device);
	int found = keys->len > 0;
	gsize len = 0;
	const uint8_t *k;

	if (found && fp) {
		k = g_bytes_get_data(keys->pdata[keys->len - 1], &len);
		mend_key_fingerprint(k, len, fp);
	}
	g_ptr_array_unref(keys);
	return found;
}

int mend_repair_first_news(mend_account *acc, const char *jid, uint32_t device)
{
	return g_hash_table_add(state(acc)->told, dev_key(jid, device));
}

/* Failures a new session mends: none of them is the message's or the user's doing. */
static int repairable(int err)
{
	return err == MEND_ERR_NO_SESSION || err == MEND_ERR_UNKNOWN_PREKEY ||
	       err == MEND_ERR_KEY_AUTH || err == MEND_ERR_STALE_SESSION ||
	       err == MEND_ERR_PROTOCOL;
}

/* Once per device per hour, remembered across restarts. */
static int repair_allowed(mend_account *acc, const char *key)
{
	char *meta = g_strconcat(META_REPAIRED, key, NULL), *v = NULL, now[24];
	gint64 t = mend_now(acc);
	int ok = 1;

	if (mend_store_meta_get(acc->store, meta, &v) == MEND_OK && *v)
		ok = t - g_ascii_strtoll(v, NULL, 10) >= REPAIR_INTERVAL;
	if (ok) {
		g_snprintf(now, sizeof(now), "%" G_GINT64_FORMAT, t);
		ok = mend_store_meta_set(acc->store, meta, now) == MEND_OK;
	}
	g_free(v);
	g_free(meta);
	return ok;
}

int mend_repair_failed(mend_account *acc, const char *jid, uint32_t device, int err, int archived)
{
	char *key;
	int ok;

	if (archived || !jid || !device || !repairable(err) || !may_talk_to(acc, jid, device) ||
	    (g_str_equal(jid, acc->jid) && device == acc->device_id))
		return 0;
	key = dev_key(jid, device);
	ok = repair_allowed(acc, key);
	g_free(key);
	if (ok)
		want(acc, jid, device, WANT_REBUILD);
	return ok;
}

int mend_repair_note_sessions(mend_account *acc)
{
	struct sqlite3_stmt *st = NULL;
	GString *list = g_string_new(NULL);
	char *old = NULL;
	int r;

	if (mend_store_meta_get(acc->store, META_ANNOUNCE, &old) == MEND_OK)
		g_string_append(list, old);
	r = mend_store_stmt(acc->store, "SELECT DISTINCT jid, device FROM sessions", &st);
	while (r == MEND_OK && sqlite3_step(st) == SQLITE_ROW)
		g_string_append_printf(list, "%s%u/%s", list->len ? "\n" : "",
		                       (uint32_t)sqlite3_column_int64(st, 1),
		                       (const char *)sqlite3_column_text(st, 0));
	if (st)
		sqlite3_reset(st);
	if (r == MEND_OK)
		r = mend_store_meta_set(acc->store, META_ANNOUNCE, list->str);
	g_string_free(list, TRUE);
	g_free(old);
	return r;
}
