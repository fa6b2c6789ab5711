/*
 * session2.h - OMEMO:2 sessions (XEP-0384 0.9 §4.2-4.3) on libomemo-c's
 * protocol version 4: a session built from an OMEMO:2 bundle, and the key
 * material of one payload (crypto2.h) encrypted for one device, or
 * decrypted from one. What goes on the wire is libomemo-c's serialization of
 * an OMEMOKeyExchange (kex) or an OMEMOAuthenticatedMessage (§12).
 *
 * Keys in OMEMO:2 form: the identity key as Ed25519 (32 bytes), the signed
 * prekey and prekeys as Curve25519 u-coordinates (32 bytes), the signed
 * prekey's signature an XEdDSA signature of those 32 bytes.
 *
 * The store is any signal_protocol_store_context (the account's sigstore.c
 * later; a test's own now): these functions keep no state. With the
 * libsignal-protocol-c fallback (legacy OMEMO only) every function returns
 * MEND_ERR_PROTOCOL and mend_omemo2_sessions_supported() is 0.
 * Not yet used by the engine.
 */
#ifndef MEND_CORE_SESSION2_H
#define MEND_CORE_SESSION2_H

#include <stddef.h>
#include <stdint.h>
#include "sigproto.h"
#include "xep/omemo2.h"

/* libomemo-c's protocol version for OMEMO 0.4+ (CIPHERTEXT_OMEMO_VERSION). */
#define MEND_OMEMO2_RATCHET_VERSION 4

/* 1 when built on libomemo-c, 0 on the legacy-only libsignal-protocol-c. */
int mend_omemo2_sessions_supported(void);

/* The public key `k` in OMEMO:2 form: Ed25519 (the identity key) or Curve25519 (others). */
int mend_omemo2_pubkey_ed(const ec_public_key *k, uint8_t out[MEND_OMEMO2_PUBKEY_LEN]);
int mend_omemo2_pubkey_mont(const ec_public_key *k, uint8_t out[MEND_OMEMO2_PUBKEY_LEN]);

/*
 * An OMEMO:2 identity key (Ed25519, as published) in the legacy form mend
 * keeps and shows: 0x05 || Curve25519 u (RFC 7748 birational map, XEP-0384
 * §4.2 "Encode(PK)"). The fingerprint is the hex of its last 32 bytes in both
 * versions, as python-omemo shows it (format_identity_key): one identity key,
 * one trust decision, whichever version it arrived in (DESIGN §3).
 */
int mend_omemo2_ik_to_legacy(signal_context *g, const uint8_t ed[MEND_OMEMO2_PUBKEY_LEN],
                             uint8_t out[MEND_PUBKEY_LEN]);

/* §5.3.2 spks: the identity key's XEdDSA signature of the signed prekey's 32 bytes. */
int mend_omemo2_sign_spk(signal_context *g, const ratchet_identity_key_pair *ik,
                         const uint8_t spk[MEND_OMEMO2_PUBKEY_LEN],
                         uint8_t sig[MEND_OMEMO2_SIGNATURE_LEN]);

/*
 * §5.4: builds a session with device `addr` from its bundle, on the prekey
 * b->prekeys[prekey_index] (the caller picks one at random). The signature
 * of the signed prekey is checked (MEND_ERR_INVALID_KEY); the store's
 * is_trusted_identity decides on the identity key (MEND_ERR_UNTRUSTED).
 */
int mend_omemo2_session_from_bundle(signal_protocol_store_context *store, signal_context *g,
                                    const signal_protocol_address *addr,
                                    const mend_omemo2_bundle *b, size_t prekey_index);

/*
 * §4.4 step 6: encrypts `len` bytes of key material (48, or 32 zero bytes
 * for an empty message) for `addr`, whose session exists. *out (g_free)
 * is the <key/>'s content; *kex is 1 for an OMEMOKeyExchange (the session
 * is not yet confirmed by the peer), 0 for an OMEMOAuthenticatedMessage.
 */
int mend_omemo2_session_encrypt(signal_protocol_store_context *store, signal_context *g,
                                const signal_protocol_address *addr, const uint8_t *keymat,
                                size_t len, uint8_t **out, size_t *out_len, int *kex);

/*
 * §5.6: decrypts a <key/> from `addr` (kex: an OMEMOKeyExchange, which
 * builds the session on our prekey). *out (g_free) is the key material.
 * Errors: MEND_ERR_MALFORMED (not a message of version 4), MEND_ERR_NO_SESSION,
 * MEND_ERR_KEY_AUTH, MEND_ERR_UNKNOWN_PREKEY, MEND_ERR_DUPLICATE, ...
 */
int mend_omemo2_session_decrypt(signal_protocol_store_context *store, signal_context *g,
                                const signal_protocol_address *addr, int kex, const uint8_t *data,
                                size_t len, uint8_t **out, size_t *out_len);

/*
 * The keys an OMEMOKeyExchange was built on: our one-time prekey (*has_pk: whether it names
 * one) and our signed prekey. MEND_ERR_MALFORMED when it does not parse.
 */
int mend_omemo2_kex_key_ids(signal_context *g, const uint8_t *data, size_t len, int *has_pk,
                            uint32_t *pk, uint32_t *spk);

#endif
