/*
 * session2.c - OMEMO:2 sessions on libomemo-c's protocol version 4
 * (XEP-0384 0.9 §4.2 X3DH, §4.3 Double Ratchet, serialized as the §12
 * protobufs by libomemo-c). The fallback library has no version 4: there,
 * every function says so with MEND_ERR_PROTOCOL.
 */
#include "config.h"

#include <string.h>
#include <glib.h>

#include "mend/mend.h"
#include "internal.h" /* mend_err_from_signal() */
#include "session2.h"

#ifdef MEND_HAVE_LIBOMEMO_C

int mend_omemo2_sessions_supported(void)
{
	return 1;
}

/* Copies a 32-byte signal_buffer (consumed) into `out`. */
static int take32(signal_buffer *buf, uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	int ret = MEND_ERR_NOMEM;

	if (buf && signal_buffer_len(buf) == MEND_OMEMO2_PUBKEY_LEN) {
		memcpy(out, signal_buffer_data(buf), MEND_OMEMO2_PUBKEY_LEN);
		ret = MEND_OK;
	}
	signal_buffer_free(buf);
	return ret;
}

int mend_omemo2_pubkey_ed(const ec_public_key *k, uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	return k && out ? take32(ec_public_key_get_ed(k), out) : MEND_ERR_INVALID_ARG;
}

int mend_omemo2_pubkey_mont(const ec_public_key *k, uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	return k && out ? take32(ec_public_key_get_mont(k), out) : MEND_ERR_INVALID_ARG;
}

int mend_omemo2_ik_to_legacy(signal_context *g, const uint8_t ed[MEND_OMEMO2_PUBKEY_LEN],
                             uint8_t out[MEND_PUBKEY_LEN])
{
	ec_public_key *k = NULL;
	int r;

	if (!g || !ed || !out)
		return MEND_ERR_INVALID_ARG;
	r = curve_decode_point_ed(&k, ed, MEND_OMEMO2_PUBKEY_LEN, g);
	if (r < 0)
		return mend_err_from_signal(r);
	out[0] = 0x05; /* DJB_TYPE */
	r = mend_omemo2_pubkey_mont(k, out + 1);
	SIGNAL_UNREF(k);
	return r;
}

int mend_omemo2_sign_spk(signal_context *g, const ratchet_identity_key_pair *ik,
                         const uint8_t spk[MEND_OMEMO2_PUBKEY_LEN],
                         uint8_t sig[MEND_OMEMO2_SIGNATURE_LEN])
{
	signal_buffer *buf = NULL;
	int r;

	if (!g || !ik || !spk || !sig)
		return MEND_ERR_INVALID_ARG;
	r = curve_calculate_signature(g, &buf, ratchet_identity_key_pair_get_private(ik), spk,
	                              MEND_OMEMO2_PUBKEY_LEN);
	if (r >= 0 && signal_buffer_len(buf) == MEND_OMEMO2_SIGNATURE_LEN)
		memcpy(sig, signal_buffer_data(buf), MEND_OMEMO2_SIGNATURE_LEN);
	else if (r >= 0)
		r = SG_ERR_UNKNOWN;
	signal_buffer_free(buf);
	return mend_err_from_signal(r < 0 ? r : 0);
}

/* The bundle's keys as libomemo-c objects: ik Ed25519, spk and pk Curve25519. */
static int bundle_to_signal(signal_context *g, const signal_protocol_address *addr,
                            const mend_omemo2_bundle *b, size_t i, session_pre_key_bundle **out)
{
	ec_public_key *ik = NULL, *spk = NULL, *pk = NULL;
	int r;

	r = curve_decode_point_ed(&ik, b->ik, sizeof(b->ik), g);
	if (r >= 0)
		r = curve_decode_point_mont(&spk, b->spk, sizeof(b->spk), g);
	if (r >= 0)
		r = curve_decode_point_mont(&pk, b->prekeys[i].key, MEND_OMEMO2_PUBKEY_LEN, g);
	if (r >= 0)
		r = session_pre_key_bundle_create(out, addr->device_id, addr->device_id,
		                                  b->prekeys[i].id, pk, b->spk_id, spk, b->spks,
		                                  sizeof(b->spks), ik);
	SIGNAL_UNREF(ik);
	SIGNAL_UNREF(spk);
	SIGNAL_UNREF(pk);
	return r;
}

int mend_omemo2_session_from_bundle(signal_protocol_store_context *store, signal_context *g,
                                    const signal_protocol_address *addr,
                                    const mend_omemo2_bundle *b, size_t prekey_index)
{
	session_pre_key_bundle *sb = NULL;
	session_builder *builder = NULL;
	int r;

	if (!store || !g || !addr || !b || prekey_index >= b->n_prekeys)
		return MEND_ERR_INVALID_ARG;
	r = bundle_to_signal(g, addr, b, prekey_index, &sb);
	if (r >= 0)
		r = session_builder_create(&builder, store, addr, g);
	if (r >= 0) {
		session_builder_set_version(builder, MEND_OMEMO2_RATCHET_VERSION);
		r = session_builder_process_pre_key_bundle(builder, sb);
	}
	session_builder_free(builder);
	SIGNAL_UNREF(sb);
	return mend_err_from_signal(r < 0 ? r : 0);
}

static int new_cipher(signal_protocol_store_context *store, signal_context *g,
                      const signal_protocol_address *addr, session_cipher **out)
{
	int r = session_cipher_create(out, store, addr, g);

	if (r >= 0)
		session_cipher_set_version(*out, MEND_OMEMO2_RATCHET_VERSION);
	return r;
}

/* Hands a signal_buffer's bytes out as a g_malloc'd copy. */
static void copy_out(const signal_buffer *buf, uint8_t **out, size_t *out_len)
{
	*out_len = signal_buffer_len(buf);
	*out = g_memdup2(signal_buffer_const_data(buf), *out_len ? *out_len : 1);
}

int mend_omemo2_session_encrypt(signal_protocol_store_context *store, signal_context *g,
                                const signal_protocol_address *addr, const uint8_t *keymat,
                                size_t len, uint8_t **out, size_t *out_len, int *kex)
{
	session_cipher *cipher = NULL;
	ciphertext_message *msg = NULL;
	int r;

	if (!store || !g || !addr || !keymat || !len || !out || !out_len || !kex)
		return MEND_ERR_INVALID_ARG;
	r = signal_protocol_session_contains_session(store, addr);
	if (r == 0)
		return MEND_ERR_NO_SESSION;
	if (r > 0)
		r = new_cipher(store, g, addr, &cipher);
	if (r >= 0)
		r = session_cipher_encrypt(cipher, keymat, len, &msg);
	if (r >= 0) {
		*kex = ciphertext_message_get_type(msg) == CIPHERTEXT_PREKEY_TYPE;
		copy_out(ciphertext_message_get_serialized(msg), out, out_len);
	}
	SIGNAL_UNREF(msg);
	session_cipher_free(cipher);
	return mend_err_from_signal(r < 0 ? r : 0);
}

static int decrypt_kex(session_cipher *cipher, signal_context *g, uint32_t reg_id,
                       const uint8_t *data, size_t len, signal_buffer **plain)
{
	pre_key_signal_message *m = NULL;
	int r = pre_key_signal_message_deserialize_omemo(&m, data, len, reg_id, g);

	if (r >= 0)
		r = session_cipher_decrypt_pre_key_signal_message(cipher, m, NULL, plain);
	SIGNAL_UNREF(m);
	return r;
}

static int decrypt_msg(session_cipher *cipher, signal_context *g, const uint8_t *data, size_t len,
                       signal_buffer **plain)
{
	signal_message *m = NULL;
	int r = signal_message_deserialize_omemo(&m, data, len, g);

	if (r >= 0)
		r = session_cipher_decrypt_signal_message(cipher, m, NULL, plain);
	SIGNAL_UNREF(m);
	return r;
}

int mend_omemo2_session_decrypt(signal_protocol_store_context *store, signal_context *g,
                                const signal_protocol_address *addr, int kex, const uint8_t *data,
                                size_t len, uint8_t **out, size_t *out_len)
{
	session_cipher *cipher = NULL;
	signal_buffer *plain = NULL;
	uint32_t reg_id = 0;
	int r;

	if (!store || !g || !addr || !data || !len || !out || !out_len)
		return MEND_ERR_INVALID_ARG;
	if (len > MEND_MAX_KEY_LEN)
		return MEND_ERR_TOO_LARGE;
	r = signal_protocol_identity_get_local_registration_id(store, &reg_id);
	if (r >= 0)
		r = new_cipher(store, g, addr, &cipher);
	if (r >= 0)
		r = kex ? decrypt_kex(cipher, g, reg_id, data, len, &plain)
		        : decrypt_msg(cipher, g, data, len, &plain);
	if (r >= 0)
		copy_out(plain, out, out_len);
	signal_buffer_bzero_free(plain);
	session_cipher_free(cipher);
	return mend_err_from_signal(r < 0 ? r : 0);
}

int mend_omemo2_kex_key_ids(signal_context *g, const uint8_t *data, size_t len, int *has_pk,
                            uint32_t *pk, uint32_t *spk)
{
	pre_key_signal_message *m = NULL;

	/* the registration id only fills a field the parse does not check */
	if (pre_key_signal_message_deserialize_omemo(&m, data, len, 0, g) < 0)
		return MEND_ERR_MALFORMED;
	*has_pk = pre_key_signal_message_has_pre_key_id(m);
	*pk = *has_pk ? pre_key_signal_message_get_pre_key_id(m) : 0;
	*spk = pre_key_signal_message_get_signed_pre_key_id(m);
	SIGNAL_UNREF(m);
	return MEND_OK;
}

#else /* libsignal-protocol-c: legacy OMEMO only */

int mend_omemo2_sessions_supported(void)
{
	return 0;
}

int mend_omemo2_pubkey_ed(const ec_public_key *k, uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_pubkey_mont(const ec_public_key *k, uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_ik_to_legacy(signal_context *g, const uint8_t ed[MEND_OMEMO2_PUBKEY_LEN],
                             uint8_t out[MEND_PUBKEY_LEN])
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_sign_spk(signal_context *g, const ratchet_identity_key_pair *ik,
                         const uint8_t spk[MEND_OMEMO2_PUBKEY_LEN],
                         uint8_t sig[MEND_OMEMO2_SIGNATURE_LEN])
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_session_from_bundle(signal_protocol_store_context *store, signal_context *g,
                                    const signal_protocol_address *addr,
                                    const mend_omemo2_bundle *b, size_t prekey_index)
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_session_encrypt(signal_protocol_store_context *store, signal_context *g,
                                const signal_protocol_address *addr, const uint8_t *keymat,
                                size_t len, uint8_t **out, size_t *out_len, int *kex)
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_session_decrypt(signal_protocol_store_context *store, signal_context *g,
                                const signal_protocol_address *addr, int kex, const uint8_t *data,
                                size_t len, uint8_t **out, size_t *out_len)
{
	return MEND_ERR_PROTOCOL;
}

int mend_omemo2_kex_key_ids(signal_context *g, const uint8_t *data, size_t len, int *has_pk,
                            uint32_t *pk, uint32_t *spk)
{
	return MEND_ERR_PROTOCOL;
}

#endif
