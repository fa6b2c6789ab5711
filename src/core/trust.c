/*
 * trust.c - whose keys we encrypt to: trust policies (trust on first use,
 * blind trust before verification, manual), identity key changes (never
 * trusted silently: the device gets nothing until the user accepts the new
 * key), and verification by fingerprint or by the xmpp: URIs Conversations
 * and Dino exchange (xmpp:JID?omemo-sid-ID=HEX;...).
 *
 * libsignal's identity check only refuses a CHANGED key; which known devices
 * get a message is decided when recipients are chosen (mend_trust_is_trusted).
 */
#include "config.h"

#include <string.h>
#include "internal.h"
#include "xep/omemo_legacy.h"

int mend_trust_is_trusted(int trust)
{
	return trust == MEND_TRUST_TOFU || trust == MEND_TRUST_VERIFIED ||
	       trust == MEND_TRUST_BLIND;
}

/* --- policies ------------------------------------------------------------------ */

static const char *const policy_names[] = {"tofu", "btbv", "manual"};

const char *mend_policy_name(mend_policy policy)
{
	return policy <= MEND_POLICY_MANUAL ? policy_names[policy] : "?";
}

int mend_policy_parse(const char *name)
{
	int i;

	for (i = 0; name && i <= MEND_POLICY_MANUAL; i++)
		if (g_str_equal(name, policy_names[i]))
			return i;
	return -1;
}

static char *policy_key(const char *jid)
{
	return jid ? g_strconcat("policy:", jid, NULL) : g_strdup("policy");
}

int mend_account_set_policy(mend_account *acc, const char *jid, mend_policy policy)
{
	char *key;
	int r;

	if (policy > MEND_POLICY_MANUAL || (jid && strchr(jid, '/')))
		return MEND_ERR_INVALID_ARG;
	key = policy_key(jid);
	r = mend_store_sealed_set(acc->store, key, mend_policy_name(policy));
	g_free(key);
	return r;
}

/*
 * Policies are sealed (DESIGN §4): one that does not open, or an account policy
 * that is gone (every store has one since schema v6), means manual: nothing is
 * trusted without the user. A contact without its own uses the account's.
 */
mend_policy mend_account_get_policy(mend_account *acc, const char *jid)
{
	char *key = policy_key(jid), *v = NULL;
	int p = MEND_POLICY_MANUAL, r;

	r = mend_store_sealed_get(acc->store, key, &v);
	if (r == MEND_OK && mend_policy_parse(v) >= 0)
		p = mend_policy_parse(v);
	else if (r == MEND_ERR_NOT_FOUND && jid)
		p = mend_account_get_policy(acc, NULL);
	g_free(v);
	g_free(key);
	return (mend_policy)p;
}

/* Whether any device of `jid` is verified (btbv stops trusting new devices blindly then). */
static int has_verified(mend_account *acc, const char *jid)
{
	uint32_t *ids = NULL;
	int *active = NULL;
	int64_t *seen = NULL;
	size_t n = 0, i;
	int found = 0;

	if (mend_store_devices_known(acc->store, jid, &ids, &active, &seen, &n) < 0)
		return 0;
	for (i = 0; i < n && !found; i++)
		found = mend_trust_of(acc, jid, ids[i]) == MEND_TRUST_VERIFIED;
	g_free(ids);
	g_free(active);
	g_free(seen);
	return found;
}

/* The trust a device gets when its identity key is first seen. */
int mend_trust_initial(mend_account *acc, const char *jid)
{
	switch (mend_account_get_policy(acc, jid)) {
	case MEND_POLICY_BTBV:
		return has_verified(acc, jid) ? MEND_TRUST_UNDECIDED : MEND_TRUST_BLIND;
	case MEND_POLICY_MANUAL:
		return MEND_TRUST_UNDECIDED;
	default:
		return MEND_TRUST_TOFU;
	}
}

/* --- identity key changes --------------------------------------------------------- */

/*
 * Trust belongs to a key, not to a device id (DESIGN §4): a device that shows
 * another identity key keeps its trusted key, which keeps getting our
 * messages; the new key becomes a candidate beside it, kept only when a
 * message or bundle proves it (it decrypts, or its signature checks out
 * under that key), one row per distinct key so that a later arrival never
 * replaces the one the user is reviewing. Only the user moves trust to a
 * candidate, naming it by fingerprint (mend_account_trust_key).
 *
 * libsignal saw a different identity key for a known device, inside a
 * transaction that is about to roll back: remember it for the caller.
 */
void mend_trust_key_changed(mend_account *acc, const char *jid, uint32_t device, const uint8_t *key,
                            size_t len)
{
	mend_trust_forget_change(acc);
	acc->changed_jid = g_strdup(jid);
	acc->changed_device = device;
	acc->changed_key = g_memdup2(key, len);
	acc->changed_len = len;
}

void mend_trust_forget_change(mend_account *acc)
{
	g_clear_pointer(&acc->changed_jid, g_free);
	g_clear_pointer(&acc->changed_key, g_free);
	acc->changed_len = 0;
}

void mend_trust_flush(mend_account *acc)
{
	if (acc->changed_jid && mend_store_depth(acc->store) == 0)
		mend_log(acc, MEND_LOG_WARNING, "%s device %u showed another identity key",
		         acc->changed_jid, acc->changed_device);
}

int mend_trust_probe_bundle(mend_account *acc, session_builder *builder,
                            session_pre_key_bundle *pkb)
{
	int r;

	if (!acc->changed_key || mend_store_begin(acc->store) < 0)
		return 0;
	acc->probe_key = acc->changed_key;
	acc->probe_len = acc->changed_len;
	r = session_builder_process_pre_key_bundle(builder, pkb);
	acc->probe_key = NULL;
	mend_store_rollback(acc->store);
	return r == 0;
}

int mend_trust_keep_candidate(mend_account *acc)
{
	char fp[65];
	int r;

	if (!acc->changed_jid)
		return MEND_ERR_NOT_FOUND;
	mend_key_fingerprint(acc->changed_key, acc->changed_len, fp);
	r = mend_store_candidate_add(acc->store, acc->changed_jid, acc->changed_device, fp,
	                             acc->changed_key, acc->changed_len);
	if (r < 0)
		mend_log(acc, MEND_LOG_WARNING, "new key of %s device %u not kept: %s",
		         acc->changed_jid, acc->changed_device, mend_strerror(r));
	return r;
}

GPtrArray *mend_trust_candidates(mend_account *acc, const char *jid, uint32_t device)
{
	GPtrArray *keys = NULL;
	uint8_t *key = NULL;
	size_t len = 0;

	if (mend_store_candidates(acc->store, jid, device, &keys) < 0)
		g_ptr_array_set_size(keys, 0);
	/* schema v3 kept one new key beside the device's row */
	if (mend_store_peer_pending_get(acc->store, jid, device, &key, &len) == MEND_OK)
		g_ptr_array_insert(keys, 0, g_bytes_new_take(key, len));
	return keys;
}

/* The candidate of (jid, device) whose fingerprint is `fp`, or NULL. g_bytes_unref. */
static GBytes *candidate_by_fp(mend_account *acc, const char *jid, uint32_t device, const char *fp)
{
	GPtrArray *keys = mend_trust_candidates(acc, jid, device);
	GBytes *found = NULL;
	char kfp[65];
	guint i;

	for (i = 0; i < keys->len && !found; i++) {
		gsize len = 0;
		const uint8_t *k = g_bytes_get_data(keys->pdata[i], &len);

		mend_key_fingerprint(k, len, kfp);
		if (g_str_equal(kfp, fp))
			found = g_bytes_ref(keys->pdata[i]);
	}
	g_ptr_array_unref(keys);
	return found;
}

/* The candidate `key` becomes the device's key with `trust`: a new session follows. */
static int accept_key(mend_account *acc, const char *jid, uint32_t device, GBytes *key,
                      const char *fp, int trust)
{
	gsize len = 0;
	const uint8_t *k = g_bytes_get_data(key, &len);
	int r = mend_store_begin(acc->store);

	if (r < 0)
		return r;
	r = mend_store_peer_identity_put(acc->store, jid, device, k, len, trust);
	if (r == MEND_OK)
		r = mend_store_candidate_delete(acc->store, jid, device, fp);
	if (r == MEND_OK)
		r = mend_store_peer_pending_set(acc->store, jid, device, NULL, 0);
	if (r == MEND_OK) /* the old sessions belong to the old key, in both versions */
		r = mend_store_session_delete(acc->store, jid, device);
	if (r == MEND_OK)
		r = mend_store_session_delete_v(acc->store, jid, device, MEND_VERSION_2);
	if (r == MEND_OK)
		r = mend_store_device_set_broken(acc->store, jid, device, 0);
	if (r == MEND_OK)
		r = mend_store_device_set_broken2(acc->store, jid, device, 0);
	r = r == MEND_OK ? mend_store_commit(acc->store) : (mend_store_rollback(acc->store), r);
	mend_sigstore_forget_sessions(acc);
	return r;
}

/* 64 lower-case hex digits from `in` (spaces allowed); 0 if it is not a fingerprint. */
static int normalize_fp(const char *in, char out[65])
{
	size_t n = 0;

	for (; in && *in; in++) {
		if (*in == ' ')
			continue;
		if (!g_ascii_isxdigit(*in) || n == 64)
			return 0;
		out[n++] = g_ascii_tolower(*in);
	}
	out[n] = '\0';
	return n == 64;
}

int mend_account_trust_key(mend_account *acc, const char *jid, uint32_t device,
                           const char *fingerprint_hex)
{
	uint8_t *key = NULL;
	size_t len = 0;
	GBytes *cand;
	char fp[65], cur[65];
	int trust, r;

	if (!jid || strchr(jid, '/') || !normalize_fp(fingerprint_hex, fp))
		return MEND_ERR_INVALID_ARG;
	r = mend_store_peer_identity_get(acc->store, jid, device, &key, &len, &trust);
	if (r < 0)
		return r;
	mend_key_fingerprint(key, len, cur);
	if (g_str_equal(cur, fp))
		r = mend_store_peer_identity_put(acc->store, jid, device, key, len,
		                                 MEND_TRUST_VERIFIED);
	else if ((cand = candidate_by_fp(acc, jid, device, fp))) {
		r = accept_key(acc, jid, device, cand, fp, MEND_TRUST_VERIFIED);
		g_bytes_unref(cand);
		if (r == MEND_OK)
			mend_held_replay(acc, jid, device, fp);
	} else
		r = MEND_ERR_VERIFY_MISMATCH;
	if (r == MEND_OK) /* an inactive device is included again */
		mend_devices_include(acc, jid, device);
	g_free(key);
	return r;
}

int mend_account_set_trust(mend_account *acc, const char *jid, uint32_t device, mend_trust trust)
{
	uint8_t *key = NULL;
	size_t len = 0;
	GPtrArray *cands;
	int old, r;

	if (!jid || strchr(jid, '/') || trust < MEND_TRUST_UNTRUSTED ||
	    trust > MEND_TRUST_COMPROMISED)
		return MEND_ERR_INVALID_ARG;
	r = mend_store_peer_identity_get(acc->store, jid, device, &key, &len, &old);
	if (r == MEND_OK && mend_trust_is_trusted(trust)) {
		/* a device that showed another key: the user must name the key (DESIGN §4) */
		cands = mend_trust_candidates(acc, jid, device);
		if (cands->len || old == MEND_TRUST_COMPROMISED)
			r = MEND_ERR_KEY_CHANGED;
		g_ptr_array_unref(cands);
	}
	if (r == MEND_OK)
		r = mend_store_peer_identity_put(acc->store, jid, device, key, len, (int)trust);
	if (r == MEND_OK && mend_trust_is_trusted(trust)) /* an inactive device is included again */
		mend_devices_include(acc, jid, device);
	g_free(key);
	return r;
}

/* --- verification URIs ------------------------------------------------------------ */

void mend_key_fingerprint(const uint8_t *key, size_t len, char out[65])
{
	size_t i;

	out[0] = '\0';
	for (i = 0; key && len == MEND_PUBKEY_LEN && i < 32; i++)
		g_snprintf(out + 2 * i, 3, "%02x", key[i + 1]);
}

int mend_trust_of(mend_account *acc, const char *jid, uint32_t device)
{
	uint8_t *key = NULL;
	size_t len = 0;
	int trust = -1;

	if (mend_store_peer_identity_get(acc->store, jid, device, &key, &len, &trust) < 0)
		trust = -1;
	g_free(key);
	return trust;
}

static void append_pair(GString *s, uint32_t id, const char *hex)
{
	g_string_append_printf(s, "%somemo-sid-%u=%s", s->str[s->len - 1] == '?' ? "" : ";", id,
	                       hex);
}

int mend_account_verification_uri(mend_account *acc, char **uri)
{
	GString *s = g_string_new("xmpp:");
	uint32_t *ids = NULL;
	size_t n = 0, i;
	char fp[65];

	g_string_append_printf(s, "%s?", acc->jid);
	mend_account_fingerprint(acc, fp);
	append_pair(s, acc->device_id, fp);
	mend_account_devices(acc, acc->jid, &ids, &n);
	for (i = 0; i < n; i++) {
		uint8_t *key = NULL;
		size_t len = 0;
		int trust;

		if (mend_store_peer_identity_get(acc->store, acc->jid, ids[i], &key, &len,
		                                 &trust) == MEND_OK &&
		    mend_trust_is_trusted(trust)) {
			mend_key_fingerprint(key, len, fp);
			append_pair(s, ids[i], fp);
		}
		g_free(key);
	}
	g_free(ids);
	*uri = g_string_free(s, FALSE);
	return MEND_OK;
}

typedef struct uri_pair {
	uint32_t device;
	char hex[65];
} uri_pair;

/* xmpp:JID?omemo-sid-ID=HEX;... (RFC 5122 with the OMEMO fingerprint parameters). */
static int parse_uri(const char *uri, char **jid, GArray *pairs)
{
	const char *q;
	char **params;
	int i, r = MEND_OK;

	if (!uri || !g_str_has_prefix(uri, "xmpp:") || !(q = strchr(uri, '?')))
		return MEND_ERR_INVALID_ARG;
	*jid = g_uri_unescape_segment(uri + 5, q, NULL);
	params = g_strsplit_set(q + 1, ";&", -1);
	for (i = 0; params[i] && r == MEND_OK; i++) {
		uri_pair p = {0};
		const char *eq = strchr(params[i], '=');

		if (!g_str_has_prefix(params[i], "omemo-sid-") || !eq)
			continue; /* other parameters (action, ...) are not ours */
		char *id = g_strndup(params[i] + 10, (gsize)(eq - params[i] - 10));

		r = mend_parse_device_id(id, &p.device) == MEND_OK ? MEND_OK : MEND_ERR_INVALID_ARG;
		g_free(id);
		if (r == MEND_OK &&
		    (strlen(eq + 1) != 64 || strspn(eq + 1, "0123456789abcdefABCDEF") != 64))
			r = MEND_ERR_INVALID_ARG;
		if (r == MEND_OK) {
			g_strlcpy(p.hex, eq + 1, sizeof(p.hex));
			g_array_append_val(pairs, p);
		}
	}
	g_strfreev(params);
	if (r == MEND_OK && (!*jid || !strchr(*jid, '@') || !pairs->len))
		r = MEND_ERR_INVALID_ARG;
	return r;
}

/* 1: the key matches (current, or one the device showed since), 0: mismatch, <0 unknown. */
static int matches(mend_account *acc, const char *jid, const uri_pair *p)
{
	uint8_t *key = NULL;
	size_t len = 0;
	GBytes *cand;
	char fp[65], want[65];
	int trust, r;

	r = mend_store_peer_identity_get(acc->store, jid, p->device, &key, &len, &trust);
	if (r < 0)
		return r;
	mend_key_fingerprint(key, len, fp);
	g_free(key);
	normalize_fp(p->hex, want);
	if (g_str_equal(fp, want))
		return 1;
	cand = candidate_by_fp(acc, jid, p->device, want);
	if (cand)
		g_bytes_unref(cand);
	return cand != NULL;
}

int mend_account_verify_uri(mend_account *acc, const char *uri, unsigned *verified)
{
	GArray *pairs = g_array_new(FALSE, TRUE, sizeof(uri_pair));
	char *jid = NULL;
	unsigned n = 0;
	guint i;
	int r, m;

	if (verified)
		*verified = 0;
	r = parse_uri(uri, &jid, pairs);
	/* every known device must match before anything is marked */
	for (i = 0; r == MEND_OK && i < pairs->len; i++) {
		m = matches(acc, jid, &g_array_index(pairs, uri_pair, i));
		if (m == 0)
			r = MEND_ERR_VERIFY_MISMATCH;
	}
	for (i = 0; r == MEND_OK && i < pairs->len; i++) {
		uri_pair *p = &g_array_index(pairs, uri_pair, i);

		if (matches(acc, jid, p) == 1 &&
		    mend_account_trust_key(acc, jid, p->device, p->hex) == MEND_OK)
			n++;
	}
	if (r == MEND_OK && n == 0)
		r = MEND_ERR_NOT_FOUND;
	if (verified)
		*verified = n;
	g_free(jid);
	g_array_free(pairs, TRUE);
	return r;
}
