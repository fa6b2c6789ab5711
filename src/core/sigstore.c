/*
 * sigstore.c - the libsignal store callbacks on top of the sealed store:
 * sessions, one-time and signed prekeys, our identity and the identity keys
 * of peer devices. Sessions load on demand, so start-up does not grow with
 * their number (DESIGN §5); once loaded or written they stay in a cache
 * (dropped when another process commits or a transaction rolls back).
 *
 * The callbacks run inside the transaction the caller (message.c) opened, so
 * that every state change of one encrypt or decrypt commits at once (§4).
 * A store failure is kept in acc->store_err (libsignal sees SG_ERR_UNKNOWN)
 * so the caller can report the real cause.
 */
#include "config.h"

#include <string.h>
#include "internal.h"
#include "sigstore.h"

static char *addr_name(const signal_protocol_address *a)
{
	return g_strndup(a->name, a->name_len);
}

/* Records a store error for the caller and returns what libsignal expects. */
static int fail(mend_account *acc, int err)
{
	if (!acc->store_err)
		acc->store_err = err;
	return err == MEND_ERR_NOMEM ? SG_ERR_NOMEM : SG_ERR_UNKNOWN;
}

/* Hands a store buffer to libsignal as a signal_buffer, wiping the copy. */
static int to_signal_buffer(mend_account *acc, uint8_t *data, size_t len, signal_buffer **out)
{
	*out = signal_buffer_create(data, len);
	memset(data, 0, len);
	g_free(data);
	return *out ? 1 : fail(acc, MEND_ERR_NOMEM);
}

/* --- sessions -------------------------------------------------------------- */

/* --- the session cache (DESIGN §5: no per-message reload of what we just wrote) --- */

/* Whose sessions the callbacks see now: OMEMO:2's or (by default) legacy OMEMO's. */
static int version(const mend_account *acc)
{
	return acc->ratchet_version == MEND_VERSION_2 ? MEND_VERSION_2 : MEND_VERSION_LEGACY;
}

/*
 * A cached session: its address (the key), the store row it lives in (so that a write
 * goes straight to it) and the plain record. The hash table's key points into the entry.
 */
typedef struct sess_key {
	const char *name;
	size_t name_len;
	int32_t device;
	int version;
} sess_key;

typedef struct sess_entry {
	sess_key key;
	mend_store_row row; /* where its sealed record is */
	uint8_t *rec;
	size_t len;
	char name[]; /* key.name: the JID, NUL-terminated */
} sess_entry;

static guint key_hash(gconstpointer p)
{
	const sess_key *k = p;
	guint h = 5381u * 33u + (guint)k->device * 31u + (guint)k->version;
	size_t i;

	for (i = 0; i < k->name_len; i++)
		h = h * 33u + (guchar)k->name[i];
	return h;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
	const sess_key *x = a, *y = b;

	return x->device == y->device && x->version == y->version && x->name_len == y->name_len &&
	       memcmp(x->name, y->name, x->name_len) == 0;
}

static void entry_free(gpointer p)
{
	sess_entry *e = p;

	if (e->rec)
		memset(e->rec, 0, e->len);
	g_free(e->rec);
	g_free(e);
}

static sess_key lookup_key(const mend_account *acc, const signal_protocol_address *a)
{
	sess_key k = {a->name, a->name_len, a->device_id, version(acc)};

	return k;
}

void mend_sigstore_check_cache(mend_account *acc)
{
	uint64_t state = mend_store_state(acc->store);

	if (!acc->sessions)
		acc->sessions = g_hash_table_new_full(key_hash, key_equal, NULL, entry_free);
	else if (state != acc->sessions_state)
		g_hash_table_remove_all(acc->sessions);
	acc->sessions_state = state;
}

static sess_entry *cache_get(mend_account *acc, const signal_protocol_address *a)
{
	sess_key k = lookup_key(acc, a);

	return acc->sessions ? g_hash_table_lookup(acc->sessions, &k) : NULL;
}

/* Keeps a copy of `rec` in e (the old record is wiped). */
static void entry_set(sess_entry *e, const uint8_t *rec, size_t len)
{
	if (e->len != len) {
		if (e->rec)
			memset(e->rec, 0, e->len);
		g_free(e->rec);
		e->rec = g_malloc(len ? len : 1);
		e->len = len;
	}
	memcpy(e->rec, rec, len);
}

/* A new cache entry for a, at store row `row`, holding rec (when the cache is on). */
static void cache_add(mend_account *acc, const signal_protocol_address *a,
                      const mend_store_row *row, const uint8_t *rec, size_t len)
{
	sess_entry *e;

	if (!acc->sessions)
		return;
	e = g_malloc0(sizeof(*e) + a->name_len + 1);
	memcpy(e->name, a->name, a->name_len);
	e->key = lookup_key(acc, a);
	e->key.name = e->name;
	e->row = *row;
	entry_set(e, rec, len);
	g_hash_table_replace(acc->sessions, &e->key, e);
}

static int load_session(signal_buffer **record, signal_buffer **user_record,
                        const signal_protocol_address *address, void *ud)
{
	mend_account *acc = ud;
	sess_entry *hit = cache_get(acc, address);
	uint8_t *data = NULL;
	size_t len = 0;
	mend_store_row row = {0};
	char *jid;
	int r;

	*user_record = NULL;
	if (hit) {
		*record = signal_buffer_create(hit->rec, hit->len);
		return *record ? 1 : fail(acc, MEND_ERR_NOMEM);
	}
	jid = addr_name(address);
	r = mend_store_session_get_row(acc->store, jid, (uint32_t)address->device_id, version(acc),
	                               &data, &len, &row);
	g_free(jid);
	if (r == MEND_ERR_NOT_FOUND)
		return 0;
	if (r < 0)
		return fail(acc, r);
	cache_add(acc, address, &row, data, len);
	return to_signal_buffer(acc, data, len, record);
}

static int get_sub_device_sessions(signal_int_list **sessions, const char *name, size_t name_len,
                                   void *ud)
{
	mend_account *acc = ud;
	char *jid = g_strndup(name, name_len);
	uint32_t *ids = NULL;
	size_t n = 0, i;
	int r;

	r = mend_store_session_devices_v(acc->store, jid, version(acc), &ids, &n);
	g_free(jid);
	if (r < 0)
		return fail(acc, r);
	*sessions = signal_int_list_alloc();
	if (!*sessions) {
		g_free(ids);
		return fail(acc, MEND_ERR_NOMEM);
	}
	for (i = 0; i < n; i++)
		signal_int_list_push_back(*sessions, (int)ids[i]);
	g_free(ids);
	return (int)n;
}

/* One write per change, in place in the session's row when the cache knows it (§4). */
static int store_session(const signal_protocol_address *address, uint8_t *record, size_t record_len,
                         uint8_t *user_record, size_t user_record_len, void *ud)
{
	mend_account *acc = ud;
	sess_entry *e = cache_get(acc, address);
	mend_store_row row = {0};
	char *own = e ? NULL : addr_name(address);
	int r;

	if (e)
		row = e->row;
	r = mend_store_session_put_row(acc->store, e ? e->name : own, (uint32_t)address->device_id,
	                               version(acc), record, record_len, &row);
	g_free(own);
	if (r < 0)
		return fail(acc, r);
	if (e) {
		e->row = row;
		entry_set(e, record, record_len);
	} else {
		cache_add(acc, address, &row, record, record_len);
	}
	return 0;
}

static int contains_session(const signal_protocol_address *address, void *ud)
{
	mend_account *acc = ud;
	char *jid;
	int r;

	/* libsignal asks before every decryption: a cached session is one the store holds (the
	 * cache is emptied by every delete and whenever the store may have changed) */
	if (cache_get(acc, address))
		return 1;
	jid = addr_name(address);
	r = mend_store_session_exists_v(acc->store, jid, (uint32_t)address->device_id,
	                                version(acc));
	g_free(jid);
	return r < 0 ? fail(acc, r) : r;
}

static int delete_session(const signal_protocol_address *address, void *ud)
{
	mend_account *acc = ud;
	char *jid = addr_name(address);
	int r;

	r = mend_store_session_delete_v(acc->store, jid, (uint32_t)address->device_id,
	                                version(acc));
	g_free(jid);
	if (acc->sessions)
		g_hash_table_remove_all(acc->sessions);
	return r < 0 ? fail(acc, r) : 1;
}

static int delete_all_sessions(const char *name, size_t name_len, void *ud)
{
	mend_account *acc = ud;
	char *jid = g_strndup(name, name_len);
	int r;

	r = mend_store_session_delete_all(acc->store, jid);
	g_free(jid);
	if (acc->sessions)
		g_hash_table_remove_all(acc->sessions);
	return r < 0 ? fail(acc, r) : 0;
}

/* --- one-time and signed prekeys: the same records, two tables ------------------ */

typedef int (*key_getter)(mend_store *s, uint32_t id, uint8_t **rec, size_t *len);

static int load_key(mend_account *acc, key_getter get, uint32_t id, signal_buffer **record)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r = get(acc->store, id, &data, &len);

	if (r == MEND_ERR_NOT_FOUND)
		return SG_ERR_INVALID_KEY_ID;
	if (r < 0)
		return fail(acc, r);
	r = to_signal_buffer(acc, data, len, record);
	return r < 0 ? r : SG_SUCCESS;
}

static int contains_key(mend_account *acc, key_getter get, uint32_t id)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r = get(acc->store, id, &data, &len);

	if (r == MEND_ERR_NOT_FOUND)
		return 0;
	if (r < 0)
		return fail(acc, r);
	memset(data, 0, len);
	g_free(data);
	return 1;
}

static int load_pre_key(signal_buffer **record, uint32_t id, void *ud)
{
	return load_key(ud, mend_store_prekey_get, id, record);
}

static int store_pre_key(uint32_t id, uint8_t *record, size_t len, void *ud)
{
	mend_account *acc = ud;
	int r = mend_store_prekey_put(acc->store, id, record, len);

	return r < 0 ? fail(acc, r) : 0;
}

static int contains_pre_key(uint32_t id, void *ud)
{
	return contains_key(ud, mend_store_prekey_get, id);
}

/*
 * A prekey message consumed one-time prekey `id`. XEP-0384 v0.3 §4.5 / DESIGN §3:
 * during catch-up it is only marked used (more archived messages may be built
 * on it) and deleted when catch-up ends; otherwise it goes now. Either way a
 * fresh one replaces it, and the bundle is republished after the commit.
 */
static int remove_pre_key(uint32_t id, void *ud)
{
	mend_account *acc = ud;
	int r;

	r = mend_account_keep_prekey_next(acc); /* a deleted highest id is not reused */
	if (r < 0)
		return fail(acc, r);
	if (acc->in_catchup)
		r = mend_store_prekey_mark_used(acc->store, id);
	else
		r = mend_store_prekey_delete(acc->store, id);
	if (r < 0 && r != MEND_ERR_NOT_FOUND)
		return fail(acc, r);
	r = mend_account_replenish_prekeys(acc);
	return r < 0 ? fail(acc, r) : 0;
}

static int load_signed_pre_key(signal_buffer **record, uint32_t id, void *ud)
{
	return load_key(ud, mend_store_signed_prekey_get, id, record);
}

static int store_signed_pre_key(uint32_t id, uint8_t *record, size_t len, void *ud)
{
	mend_account *acc = ud;
	int r = mend_store_signed_prekey_put(acc->store, id, record, len);

	return r < 0 ? fail(acc, r) : 0;
}

static int contains_signed_pre_key(uint32_t id, void *ud)
{
	return contains_key(ud, mend_store_signed_prekey_get, id);
}

static int remove_signed_pre_key(uint32_t id, void *ud)
{
	mend_account *acc = ud;
	int r = mend_store_signed_prekey_delete(acc->store, id);

	return (r < 0 && r != MEND_ERR_NOT_FOUND) ? fail(acc, r) : 0;
}

/* The prekey our session of `version` with (jid, device) waits on; 0 when none. */
static uint32_t pending_prekey(mend_account *acc, const char *jid, uint32_t device, int version)
{
	session_record *rec = NULL;
	session_state *st;
	uint8_t *data = NULL;
	size_t len = 0;
	uint32_t id = 0;

	if (mend_store_session_get_v(acc->store, jid, device, version, &data, &len) < 0)
		return 0;
	if (session_record_deserialize(&rec, data, len, acc->sctx) >= 0) {
		st = session_record_get_state(rec);
		if (st && session_state_has_unacknowledged_pre_key_message(st) &&
		    session_state_unacknowledged_pre_key_message_has_pre_key_id(st))
			id = session_state_unacknowledged_pre_key_message_get_pre_key_id(st);
	}
	SIGNAL_UNREF(rec);
	if (data)
		explicit_bzero(data, len);
	g_free(data);
	return id;
}

static uint32_t id_at(const void *prekeys, size_t size, size_t i)
{
	uint32_t id;

	memcpy(&id, (const uint8_t *)prekeys + i * size, sizeof(id));
	return id;
}

int mend_sigstore_pick_prekey(mend_account *acc, const char *jid, uint32_t device,
                              const void *prekeys, size_t size, size_t n, size_t *index)
{
	uint32_t pick, busy[2], id;
	int r = n ? mend_random(&pick, sizeof(pick)) : MEND_ERR_INVALID_KEY, tries;

	if (r < 0)
		return r;
	*index = pick % n;
	/* mend devices offer the same prekeys in both versions; a rebuild replaces a session */
	busy[0] = pending_prekey(acc, jid, device, MEND_VERSION_LEGACY);
	busy[1] = pending_prekey(acc, jid, device, MEND_VERSION_2);
	for (tries = 0; tries < 2; tries++) {
		id = id_at(prekeys, size, *index);
		if (id != busy[0] && id != busy[1])
			break;
		*index = (*index + 1) % n;
	}
	return MEND_OK;
}

/* "held", "gone" or "unreadable" (a store error) for key `id` of table `get`. */
static const char *key_state(mend_account *acc, key_getter get, uint32_t id)
{
	int err = acc->store_err, r = contains_key(acc, get, id);

	acc->store_err = err; /* a diagnosis, not the operation's failure */
	return r == 1 ? "held" : r == 0 ? "gone" : "unreadable";
}

void mend_sigstore_log_missing(mend_account *acc, const char *jid, uint32_t device, int has_pk,
                               uint32_t pk, uint32_t spk)
{
	char pk_text[48];

	if (has_pk)
		g_snprintf(pk_text, sizeof(pk_text), "one-time prekey %u (%s)", pk,
		           key_state(acc, mend_store_prekey_get, pk));
	else
		g_strlcpy(pk_text, "no one-time prekey", sizeof(pk_text));
	mend_log(acc, MEND_LOG_WARNING,
	         "prekey message from %s device %u names a key this device lacks: %s, signed "
	         "prekey %u (%s)",
	         jid, device, pk_text, spk, key_state(acc, mend_store_signed_prekey_get, spk));
}

/* --- identities ------------------------------------------------------------ */

static int get_identity_key_pair(signal_buffer **public_data, signal_buffer **private_data,
                                 void *ud)
{
	mend_account *acc = ud;
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	uint32_t id;
	int r;

	r = mend_store_identity_get(acc->store, &id, &pub, &pub_len, &priv, &priv_len);
	if (r < 0)
		return fail(acc, r);
	*public_data = signal_buffer_create(pub, pub_len);
	*private_data = signal_buffer_create(priv, priv_len);
	memset(priv, 0, priv_len);
	g_free(priv);
	g_free(pub);
	if (!*public_data || !*private_data) {
		signal_buffer_free(*public_data);
		signal_buffer_bzero_free(*private_data);
		return fail(acc, MEND_ERR_NOMEM);
	}
	return 0;
}

static int get_local_registration_id(void *ud, uint32_t *registration_id)
{
	mend_account *acc = ud;

	/* Legacy OMEMO uses the device id as the registration id. */
	*registration_id = acc->device_id;
	return 0;
}

/*
 * libsignal asks before it builds a session from a bundle or a prekey message.
 * A CHANGED key is refused here and remembered for the caller (trust.c): it
 * never replaces the key we know by itself (DESIGN §4). While the caller probes
 * whether the message or bundle is valid under that key, that key alone passes.
 * Which devices get messages is decided when recipients are chosen (trust.c).
 */
static int is_trusted_identity(const signal_protocol_address *address, uint8_t *key_data,
                               size_t key_len, void *ud)
{
	mend_account *acc = ud;
	char *jid;
	uint8_t *known = NULL;
	size_t known_len = 0;
	int trust = 0, r;

	if (acc->probe_key)
		return acc->probe_len == key_len && memcmp(acc->probe_key, key_data, key_len) == 0;
	jid = addr_name(address);
	r = mend_store_peer_identity_get(acc->store, jid, (uint32_t)address->device_id, &known,
	                                 &known_len, &trust);
	if (r == MEND_ERR_NOT_FOUND) { /* first use; or a key row that went missing */
		acc->identity_lost =
		    mend_store_session_exists_v(acc->store, jid, (uint32_t)address->device_id,
		                                version(acc)) != 0;
		r = 1;
	} else if (r < 0)
		r = fail(acc, r);
	else
		r = known_len == key_len && memcmp(known, key_data, key_len) == 0 &&
		    trust != MEND_TRUST_COMPROMISED;
	if (r == 0)
		mend_trust_key_changed(acc, jid, (uint32_t)address->device_id, key_data, key_len);
	g_free(known);
	g_free(jid);
	return r;
}

/*
 * First sight of a device's identity key: its trust comes from the policy. A
 * device we already had a session with when libsignal asked (is_trusted_identity)
 * but whose key row is gone (the store was edited) is not trusted on first use
 * again: it waits for the user.
 */
static int save_identity(const signal_protocol_address *address, uint8_t *key_data, size_t key_len,
                         void *ud)
{
	mend_account *acc = ud;
	uint32_t device = (uint32_t)address->device_id;
	char *jid;
	uint8_t *known = NULL;
	size_t known_len = 0;
	int trust = 0, r;

	if (acc->probe_key) /* a probe keeps nothing */
		return 0;
	jid = addr_name(address);
	r = mend_store_peer_identity_get(acc->store, jid, device, &known, &known_len, &trust);
	if (r == MEND_ERR_NOT_FOUND) {
		trust = acc->identity_lost ? MEND_TRUST_UNDECIDED : mend_trust_initial(acc, jid);
		r = mend_store_peer_identity_put(acc->store, jid, device, key_data, key_len, trust);
	}
	g_free(known);
	g_free(jid);
	return r < 0 ? fail(acc, r) : 0;
}

void mend_sigstore_forget_sessions(mend_account *acc)
{
	if (acc->sessions)
		g_hash_table_remove_all(acc->sessions);
}

void mend_sigstore_install(mend_account *acc)
{
	signal_protocol_session_store ss = {
	    .load_session_func = load_session,
	    .get_sub_device_sessions_func = get_sub_device_sessions,
	    .store_session_func = store_session,
	    .contains_session_func = contains_session,
	    .delete_session_func = delete_session,
	    .delete_all_sessions_func = delete_all_sessions,
	    .user_data = acc,
	};
	signal_protocol_pre_key_store ps = {
	    .load_pre_key = load_pre_key,
	    .store_pre_key = store_pre_key,
	    .contains_pre_key = contains_pre_key,
	    .remove_pre_key = remove_pre_key,
	    .user_data = acc,
	};
	signal_protocol_signed_pre_key_store sps = {
	    .load_signed_pre_key = load_signed_pre_key,
	    .store_signed_pre_key = store_signed_pre_key,
	    .contains_signed_pre_key = contains_signed_pre_key,
	    .remove_signed_pre_key = remove_signed_pre_key,
	    .user_data = acc,
	};
	signal_protocol_identity_key_store is = {
	    .get_identity_key_pair = get_identity_key_pair,
	    .get_local_registration_id = get_local_registration_id,
	    .save_identity = save_identity,
	    .is_trusted_identity = is_trusted_identity,
	    .user_data = acc,
	};

	signal_protocol_store_context_set_session_store(acc->sstore, &ss);
	signal_protocol_store_context_set_pre_key_store(acc->sstore, &ps);
	signal_protocol_store_context_set_signed_pre_key_store(acc->sstore, &sps);
	signal_protocol_store_context_set_identity_key_store(acc->sstore, &is);
}
