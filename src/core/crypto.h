/*
 * crypto.h - libgcrypt for the core: the signal crypto provider (HMAC-SHA256,
 * SHA-512, AES-CBC/CTR, random), AES-GCM for payloads and store sealing,
 * HMAC and HKDF. A mend_crypto caches open gcrypt handles and re-keys them:
 * opening a handle polls the random pool and allocates (DESIGN §5), so a
 * provider that keeps handles is several times faster.
 * A mend_crypto is used by one thread at a time (the signal context lock).
 */
#ifndef MEND_CORE_CRYPTO_H
#define MEND_CORE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "sigproto.h"

#define MEND_GCM_TAG_LEN 16

typedef struct mend_crypto mend_crypto;

/* Initialises libgcrypt unless the host already did (GCRYCTL_INITIALIZATION_FINISHED_P). */
int mend_crypto_global_init(void);

/* A handle cache. Free with mend_crypto_free(). */
int mend_crypto_new(mend_crypto **out);
void mend_crypto_free(mend_crypto *c);

/* Fills `p` with callbacks whose user_data is `c`. */
void mend_crypto_fill_provider(mend_crypto *c, signal_crypto_provider *p);

/* Strong random bytes (keys). */
int mend_random(void *buf, size_t len);
/*
 * Unpredictable bytes for nonces and IVs (libgcrypt's nonce generator): 35x
 * cheaper than mend_random, which re-mixes its pool on every call.
 */
int mend_nonce(void *buf, size_t len);

/*
 * AES-GCM with a 128-, 192- or 256-bit key, any IV length >= 12, optional
 * AAD, a 16-byte tag. `out` has room for `len` bytes (it may equal `in`).
 * `c` may be NULL (a one-shot handle is used). Decrypt returns
 * MEND_ERR_PAYLOAD_AUTH when the tag does not match (tag_len 12..16 accepted).
 */
int mend_aes_gcm_encrypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                         size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                         size_t len, uint8_t *out, uint8_t tag[MEND_GCM_TAG_LEN]);
int mend_aes_gcm_decrypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                         size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                         size_t len, const uint8_t *tag, size_t tag_len, uint8_t *out);

/*
 * AES-GCM under one key that stays for the object's life (the store's sealing): keyed
 * once, so a use costs the IV, the AAD and the data, not the key schedule. Arguments
 * and errors as above. Not shared between threads. Free with mend_gcm_key_free().
 */
typedef struct mend_gcm_key mend_gcm_key;
int mend_gcm_key_new(mend_gcm_key **out, const uint8_t *key, size_t key_len);
void mend_gcm_key_free(mend_gcm_key *k);
int mend_gcm_key_encrypt(mend_gcm_key *k, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                         uint8_t tag[MEND_GCM_TAG_LEN]);
int mend_gcm_key_decrypt(mend_gcm_key *k, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len, const uint8_t *tag,
                         size_t tag_len, uint8_t *out);

/* HMAC-SHA-256 of data under key into out[32]. */
int mend_hmac_sha256(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *data,
                     size_t len, uint8_t out[32]);

/* HKDF-SHA-256 (RFC 5869): extract with salt (NULL = zeros), expand to out_len <= 8160. */
int mend_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

#endif
