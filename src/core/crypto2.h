/*
 * crypto2.h - the payload cryptography of OMEMO:2 (XEP-0384 0.9 §4.4 and
 * §4.5, namespace urn:xmpp:omemo:2): a random 32-byte key, HKDF-SHA-256
 * (salt: 32 zero bytes, info "OMEMO Payload") to 80 bytes = AES-256 key ||
 * HMAC-SHA-256 key || IV, AES-256-CBC with PKCS#7 padding, the HMAC of the
 * ciphertext truncated to 16 bytes. What the Double Ratchet then encrypts
 * for each device is key || HMAC: 48 bytes ("key material").
 *
 * Legacy OMEMO's payload (AES-128-GCM) is crypto.h's; nothing here is used
 * by the legacy path.
 */
#ifndef MEND_CORE_CRYPTO2_H
#define MEND_CORE_CRYPTO2_H

#include <stddef.h>
#include <stdint.h>
#include "crypto.h"

#define MEND_OMEMO2_KEY_LEN    32
#define MEND_OMEMO2_TAG_LEN    16
#define MEND_OMEMO2_KEYMAT_LEN (MEND_OMEMO2_KEY_LEN + MEND_OMEMO2_TAG_LEN)

/*
 * Encrypts `len` bytes (an SCE envelope) under a new random key. On success
 * *out (g_free) holds the ciphertext, a multiple of 16 bytes, and keymat the
 * 48 bytes to hand to the ratchet. `c` may be NULL.
 * MEND_ERR_TOO_LARGE over MEND_MAX_PAYLOAD (omemo_legacy.h) less a block.
 */
int mend_omemo2_payload_encrypt(mend_crypto *c, const uint8_t *in, size_t len, uint8_t **out,
                                size_t *out_len, uint8_t keymat[MEND_OMEMO2_KEYMAT_LEN]);

/* The same with a given key (test vectors). */
int mend_omemo2_payload_encrypt_key(mend_crypto *c, const uint8_t key[MEND_OMEMO2_KEY_LEN],
                                    const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                                    uint8_t keymat[MEND_OMEMO2_KEYMAT_LEN]);

/*
 * Decrypts a payload with the key material the ratchet gave back. The HMAC
 * is checked (in constant time) before anything is decrypted.
 * MEND_ERR_MALFORMED: key material not of 48 bytes, a ciphertext empty or
 * not a multiple of 16 bytes, bad padding (only a sender that authenticated
 * it can produce that); MEND_ERR_PAYLOAD_AUTH: the HMAC does not match;
 * MEND_ERR_TOO_LARGE: over MEND_MAX_PAYLOAD. On error nothing is allocated.
 * *out (g_free) is NUL-terminated one byte past *out_len, for text.
 */
int mend_omemo2_payload_decrypt(mend_crypto *c, const uint8_t *keymat, size_t keymat_len,
                                const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/*
 * XEP-0384 §4.5: an empty OMEMO message (no payload) sends 32 zero bytes
 * through the ratchet. 1 when `keymat` is that, 0 otherwise.
 */
int mend_omemo2_keymat_is_empty(const uint8_t *keymat, size_t keymat_len);

#endif
