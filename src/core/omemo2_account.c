/*
 * omemo2_account.c - the account's own OMEMO:2 bundle from the keys of its
 * legacy one (XEP-0384 0.9 §5.3.2; DESIGN §3: one identity key and one
 * device id for both versions). Read-only on the store.
 */
#include "config.h"

#include <string.h>
#include <glib.h>

#include "internal.h"
#include "session2.h"
#include "omemo2_account.h"

#ifdef MEND_HAVE_LIBOMEMO_C

#define MAX_ID 2147483647u

/* §4.2 Encode(PK): our identity key in its Ed25519 form. */
static int fill_identity(mend_account *acc, mend_omemo2_bundle *b)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	ec_public_key *k = NULL;
	uint32_t id;
	int r;

	r = mend_store_identity_get(acc->store, &id, &pub, &pub_len, &priv, &priv_len);
	if (r < 0)
		return r;
	memset(priv, 0, priv_len);
	g_free(priv);
	r = curve_decode_point(&k, pub, pub_len, acc->sctx) < 0 ? MEND_ERR_STORE_CORRUPT : MEND_OK;
	if (r == MEND_OK)
		r = mend_omemo2_pubkey_ed(k, b->ik);
	SIGNAL_UNREF(k);
	g_free(pub);
	return r;
}

/* The latest signed prekey: its Curve25519 key and the signature of those 32 bytes. */
static int fill_signed_prekey(mend_account *acc, mend_omemo2_bundle *b)
{
	session_signed_pre_key *spk = NULL;
	uint8_t *rec = NULL;
	size_t len = 0;
	int r;

	r = mend_store_signed_prekey_latest(acc->store, &b->spk_id);
	if (r == MEND_OK)
		r = mend_store_signed_prekey_get(acc->store, b->spk_id, &rec, &len);
	if (r < 0)
		return r;
	if (b->spk_id < 1 || b->spk_id > MAX_ID ||
	    session_signed_pre_key_deserialize(&spk, rec, len, acc->sctx) < 0 ||
	    session_signed_pre_key_get_signature_omemo_len(spk) != MEND_OMEMO2_SIGNATURE_LEN)
		r = MEND_ERR_STORE_CORRUPT;
	if (r == MEND_OK) {
		memcpy(b->spks, session_signed_pre_key_get_signature_omemo(spk),
		       MEND_OMEMO2_SIGNATURE_LEN);
		r = mend_omemo2_pubkey_mont(
		    ec_key_pair_get_public(session_signed_pre_key_get_key_pair(spk)), b->spk);
	}
	SIGNAL_UNREF(spk);
	memset(rec, 0, len);
	g_free(rec);
	return r;
}

struct walk {
	mend_account *acc;
	GArray *arr;
};

static int add_prekey(uint32_t id, const uint8_t *rec, size_t len, void *ud)
{
	struct walk *w = ud;
	session_pre_key *pk = NULL;
	mend_omemo2_prekey pub = {.id = id};
	int r;

	if (id < 1 || id > MAX_ID)
		return MEND_OK; /* §5.3.2: ids are 1..2^31-1 */
	if (session_pre_key_deserialize(&pk, rec, len, w->acc->sctx) < 0)
		return MEND_ERR_STORE_CORRUPT;
	r = mend_omemo2_pubkey_mont(ec_key_pair_get_public(session_pre_key_get_key_pair(pk)),
	                            pub.key);
	SIGNAL_UNREF(pk);
	if (r == MEND_OK)
		g_array_append_val(w->arr, pub);
	return r;
}

int mend_account_omemo2_bundle(mend_account *acc, mend_omemo2_bundle *out)
{
	struct walk w = {acc, NULL};
	int r;

	if (!acc || !out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	w.arr = g_array_new(FALSE, FALSE, sizeof(mend_omemo2_prekey));
	r = fill_identity(acc, out);
	if (r == MEND_OK)
		r = fill_signed_prekey(acc, out);
	if (r == MEND_OK)
		r = mend_store_prekey_foreach_unused(acc->store, add_prekey, &w);
	out->n_prekeys = w.arr->len;
	out->prekeys = (mend_omemo2_prekey *)g_array_free(w.arr, FALSE);
	if (r < 0)
		mend_omemo2_bundle_clear(out);
	return r;
}

#else /* libsignal-protocol-c: legacy OMEMO only */

int mend_account_omemo2_bundle(mend_account *acc, mend_omemo2_bundle *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	return MEND_ERR_PROTOCOL;
}

#endif

int mend_account_omemo2_bundle_xml(mend_account *acc, char **xml)
{
	mend_omemo2_bundle b;
	xmpp_stanza_t *st;
	int r;

	if (!xml)
		return MEND_ERR_INVALID_ARG;
	*xml = NULL;
	r = mend_account_omemo2_bundle(acc, &b);
	if (r < 0)
		return r;
	st = mend_omemo2_bundle_build(acc->xctx, &b);
	*xml = mend_stanza_text(st);
	if (st)
		xmpp_stanza_release(st);
	mend_omemo2_bundle_clear(&b);
	return *xml ? MEND_OK : MEND_ERR_NOMEM;
}
