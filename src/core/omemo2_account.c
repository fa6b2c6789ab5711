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

/* §4.2 Encode(PK): our identity key (legacy form 0x05 || Curve25519) in its Ed25519 form. */
static int identity_ed(mend_account *acc, const uint8_t legacy[MEND_PUBKEY_LEN],
                       uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	ec_public_key *k = NULL;
	int r;

	if (curve_decode_point(&k, legacy, MEND_PUBKEY_LEN, acc->sctx) < 0)
		return MEND_ERR_STORE_CORRUPT;
	r = mend_omemo2_pubkey_ed(k, out);
	SIGNAL_UNREF(k);
	return r;
}

/* §5.3.2 spks: the signed prekey's signature of its 32-byte form, made with the key. */
static int omemo_signature(mend_account *acc, uint32_t id, uint8_t out[MEND_OMEMO2_SIGNATURE_LEN])
{
	session_signed_pre_key *spk = NULL;
	uint8_t *rec = NULL;
	size_t len = 0;
	int r;

	r = mend_store_signed_prekey_get(acc->store, id, &rec, &len);
	if (r < 0)
		return r;
	if (session_signed_pre_key_deserialize(&spk, rec, len, acc->sctx) < 0 ||
	    session_signed_pre_key_get_signature_omemo_len(spk) != MEND_OMEMO2_SIGNATURE_LEN)
		r = MEND_ERR_STORE_CORRUPT;
	else
		memcpy(out, session_signed_pre_key_get_signature_omemo(spk),
		       MEND_OMEMO2_SIGNATURE_LEN);
	SIGNAL_UNREF(spk);
	memset(rec, 0, len);
	g_free(rec);
	return r;
}

/* The legacy bundle's keys without their type byte; ids above 2^31-1 (§5.3.2) left out. */
static int convert(mend_account *acc, const mend_bundle *lb, mend_omemo2_bundle *b)
{
	size_t i;

	if (lb->spk_id < 1 || lb->spk_id > MAX_ID)
		return MEND_ERR_STORE_CORRUPT;
	b->spk_id = lb->spk_id;
	memcpy(b->spk, lb->spk + 1, MEND_OMEMO2_PUBKEY_LEN);
	b->prekeys = g_new(mend_omemo2_prekey, lb->n_prekeys ? lb->n_prekeys : 1);
	for (i = 0; i < lb->n_prekeys; i++) {
		if (lb->prekeys[i].id < 1 || lb->prekeys[i].id > MAX_ID)
			continue;
		b->prekeys[b->n_prekeys].id = lb->prekeys[i].id;
		memcpy(b->prekeys[b->n_prekeys++].key, lb->prekeys[i].key + 1,
		       MEND_OMEMO2_PUBKEY_LEN);
	}
	return identity_ed(acc, lb->ik, b->ik);
}

int mend_account_omemo2_bundle(mend_account *acc, mend_omemo2_bundle *out)
{
	mend_bundle lb = {0};
	int r;

	if (!acc || !out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	r = mend_account_fill_bundle(acc, &lb);
	if (r == MEND_OK)
		r = convert(acc, &lb, out);
	if (r == MEND_OK)
		r = omemo_signature(acc, out->spk_id, out->spks);
	if (r < 0)
		mend_omemo2_bundle_clear(out);
	mend_bundle_clear(&lb);
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
