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
	r = mend_store_meta_set(acc->store, key, mend_policy_name(policy));
	g_free(key);
	return r;
}

mend_policy mend_account_get_policy(mend_account *acc, const char *jid)
{
	char *key = policy_key(jid), *v = NULL;
	int p = -1;

	if (mend_store_meta_get(acc->store, key, &v) == MEND_OK)
		p = mend_policy_parse(v);
	g_free(v);
	g_free(key);
	if (p < 0 && jid)
		return mend_account_get_policy(acc, NULL);
	return p < 0 ? MEND_POLICY_TOFU : (mend_policy)p;
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
 * libsignal saw a different identity key for a known device, inside a
 * transaction that is about to roll back: remember it, and write it (the
 * device becomes COMPROMISED, the new key waits for the user) once the store
 * is outside any transaction (mend_trust_flush).
 */
void mend_trust_key_changed(mend_account *acc, const char *jid, uint32_t device, const uint8_t *key,
                            size_t len)
{
	g_free(acc->changed_jid);
	g_free(acc->changed_key);
	acc->changed_jid = g_strdup(jid);
	acc->changed_device = device;
	acc->changed_key = g_memdup2(key, len);
	acc->changed_len = len;
}

void mend_trust_flush(mend_account *acc)
{
	uint8_t *known = NULL;
	size_t len = 0;
	int trust = -1;

	if (!acc->changed_jid || mend_store_depth(acc->store) > 0)
		return;
	if (mend_store_begin(acc->store) == MEND_OK) {
		if (mend_store_peer_identity_get(acc->store, acc->changed_jid, acc->changed_device,
		                                 &known, &len, &trust) == MEND_OK &&
		    mend_store_peer_identity_put(acc->store, acc->changed_jid, acc->changed_device,
		                                 known, len, MEND_TRUST_COMPROMISED) == MEND_OK &&
		    mend_store_peer_pending_set(acc->store, acc->changed_jid, acc->changed_device,
		                                acc->changed_key, acc->changed_len) == MEND_OK)
			mend_store_commit(acc->store);
		else
			mend_store_rollback(acc->store);
	}
	g_free(known);
	mend_log(acc, MEND_LOG_WARNING, "%s device %u changed its identity key: not trusted",
	         acc->changed_jid, acc->changed_device);
	g_clear_pointer(&acc->changed_jid, g_free);
	g_clear_pointer(&acc->changed_key, g_free);
}

/* Accepts a COMPROMISED device's new key with `trust`: a new session follows. */
static int accept_new_key(mend_account *acc, const char *jid, uint32_t device, int trust)
{
	uint8_t *key = NULL;
	size_t len = 0;
	int r;

	r = mend_store_peer_pending_get(acc->store, jid, device, &key, &len);
	if (r < 0)
		return r;
	r = mend_store_begin(acc->store);
	if (r == MEND_OK) {
		r = mend_store_peer_identity_put(acc->store, jid, device, key, len, trust);
		if (r == MEND_OK)
			r = mend_store_peer_pending_set(acc->store, jid, device, NULL, 0);
		if (r == MEND_OK) /* the old session belongs to the old key */
			r = mend_store_session_delete(acc->store, jid, device);
		if (r == MEND_OK)
			r = mend_store_device_set_broken(acc->store, jid, device, 0);
		r = r == MEND_OK ? mend_store_commit(acc->store)
		                 : (mend_store_rollback(acc->store), r);
	}
	g_free(key);
	mend_sigstore_forget_sessions(acc);
	return r;
}

int mend_account_set_trust(mend_account *acc, const char *jid, uint32_t device, mend_trust trust)
{
	uint8_t *key = NULL;
	size_t len = 0;
	int old, r;

	if (!jid || strchr(jid, '/') || trust < MEND_TRUST_UNTRUSTED ||
	    trust > MEND_TRUST_COMPROMISED)
		return MEND_ERR_INVALID_ARG;
	r = mend_store_peer_identity_get(acc->store, jid, device, &key, &len, &old);
	if (r == MEND_OK && old == MEND_TRUST_COMPROMISED && mend_trust_is_trusted(trust))
		r = accept_new_key(acc, jid, device, trust);
	else if (r == MEND_OK)
		r = mend_store_peer_identity_put(acc->store, jid, device, key, len, (int)trust);
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

/* 1: the key matches (current, or the new one of a changed device), 0: mismatch, <0 unknown. */
static int matches(mend_account *acc, const char *jid, const uri_pair *p, int *changed)
{
	uint8_t *key = NULL;
	size_t len = 0;
	char fp[65];
	int trust, r;

	*changed = 0;
	r = mend_store_peer_identity_get(acc->store, jid, p->device, &key, &len, &trust);
	if (r < 0)
		return r;
	mend_key_fingerprint(key, len, fp);
	g_free(key);
	if (g_ascii_strcasecmp(fp, p->hex) == 0 && trust != MEND_TRUST_COMPROMISED)
		return 1;
	if (trust != MEND_TRUST_COMPROMISED ||
	    mend_store_peer_pending_get(acc->store, jid, p->device, &key, &len) < 0)
		return 0;
	mend_key_fingerprint(key, len, fp);
	g_free(key);
	*changed = g_ascii_strcasecmp(fp, p->hex) == 0;
	return *changed;
}

int mend_account_verify_uri(mend_account *acc, const char *uri, unsigned *verified)
{
	GArray *pairs = g_array_new(FALSE, TRUE, sizeof(uri_pair));
	char *jid = NULL;
	unsigned n = 0;
	guint i;
	int r, changed, m;

	if (verified)
		*verified = 0;
	r = parse_uri(uri, &jid, pairs);
	/* every known device must match before anything is marked */
	for (i = 0; r == MEND_OK && i < pairs->len; i++) {
		m = matches(acc, jid, &g_array_index(pairs, uri_pair, i), &changed);
		if (m == 0)
			r = MEND_ERR_VERIFY_MISMATCH;
	}
	for (i = 0; r == MEND_OK && i < pairs->len; i++) {
		uri_pair *p = &g_array_index(pairs, uri_pair, i);

		if (matches(acc, jid, p, &changed) == 1 &&
		    mend_account_set_trust(acc, jid, p->device, MEND_TRUST_VERIFIED) == MEND_OK)
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
