/*
 * crypto2.c - OMEMO:2 payload encryption, XEP-0384 0.9 §4.4 (Message
 * Encryption) and §4.5 (Message Decryption), on libgcrypt: HKDF-SHA-256 and
 * HMAC-SHA-256 from crypto.c, AES-256-CBC with PKCS#7 padding here. One
 * cipher handle per payload (not per device), so it is not cached.
 */
#include "config.h"

#include <gcrypt.h>
#include <glib.h>
#include <string.h>

#include "mend/mend.h"
#include "crypto2.h"
#include "xep/omemo_legacy.h" /* MEND_MAX_PAYLOAD */

#define AES_BLOCK 16
#define ENC_LEN   32
#define AUTH_LEN  32
#define DERIVED   (ENC_LEN + AUTH_LEN + AES_BLOCK) /* 80 */

/* XEP-0384 §4.4 step 2: HKDF-SHA-256, 256 zero bits of salt, info "OMEMO Payload". */
static const char payload_info[] = "OMEMO Payload";

static void wipe(void *p, size_t len)
{
	volatile uint8_t *v = p;

	while (len--)
		*v++ = 0;
}

/* §4.4 steps 2-3: enc key || auth key || IV. */
static int derive(const uint8_t key[MEND_OMEMO2_KEY_LEN], uint8_t out[DERIVED])
{
	static const uint8_t salt[32];

	return mend_hkdf_sha256(salt, sizeof(salt), key, MEND_OMEMO2_KEY_LEN,
	                        (const uint8_t *)payload_info, sizeof(payload_info) - 1, out,
	                        DERIVED);
}

/* AES-256-CBC over whole blocks, in place. */
static int cbc(int encrypt, const uint8_t derived[DERIVED], uint8_t *buf, size_t len)
{
	gcry_cipher_hd_t h;
	gcry_error_t e;

	if (gcry_cipher_open(&h, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_CBC, 0))
		return MEND_ERR_CRYPTO;
	e = gcry_cipher_setkey(h, derived, ENC_LEN);
	if (!e)
		e = gcry_cipher_setiv(h, derived + ENC_LEN + AUTH_LEN, AES_BLOCK);
	if (!e)
		e = encrypt ? gcry_cipher_encrypt(h, buf, len, NULL, 0)
		            : gcry_cipher_decrypt(h, buf, len, NULL, 0);
	gcry_cipher_close(h);
	return e ? MEND_ERR_CRYPTO : MEND_OK;
}

/* §4.4 step 5: HMAC-SHA-256 of the ciphertext, truncated to 16 bytes. */
static int tag(mend_crypto *c, const uint8_t derived[DERIVED], const uint8_t *ct, size_t len,
               uint8_t out[MEND_OMEMO2_TAG_LEN])
{
	uint8_t full[32];
	int ret;

	ret = mend_hmac_sha256(c, derived + ENC_LEN, AUTH_LEN, ct, len, full);
	if (!ret)
		memcpy(out, full, MEND_OMEMO2_TAG_LEN);
	wipe(full, sizeof(full));
	return ret;
}

int mend_omemo2_payload_encrypt_key(mend_crypto *c, const uint8_t key[MEND_OMEMO2_KEY_LEN],
                                    const uint8_t *in, size_t len, uint8_t **out, size_t *out_len,
                                    uint8_t keymat[MEND_OMEMO2_KEYMAT_LEN])
{
	uint8_t derived[DERIVED];
	size_t pad = AES_BLOCK - len % AES_BLOCK;
	uint8_t *buf;
	int ret;

	if (!key || (!in && len) || !out || !out_len || !keymat)
		return MEND_ERR_INVALID_ARG;
	if (len > MEND_MAX_PAYLOAD - AES_BLOCK)
		return MEND_ERR_TOO_LARGE;
	ret = derive(key, derived);
	if (ret)
		goto out;
	/* §4.4 step 4: PKCS#7, 1 to 16 bytes each holding the pad length */
	buf = g_malloc(len + pad);
	if (len)
		memcpy(buf, in, len);
	memset(buf + len, (int)pad, pad);
	ret = cbc(1, derived, buf, len + pad);
	if (!ret)
		ret = tag(c, derived, buf, len + pad, keymat + MEND_OMEMO2_KEY_LEN);
	if (ret) {
		wipe(buf, len + pad);
		g_free(buf);
		goto out;
	}
	/* §4.4 step 6: key || HMAC goes to the ratchet */
	memcpy(keymat, key, MEND_OMEMO2_KEY_LEN);
	*out = buf;
	*out_len = len + pad;
out:
	wipe(derived, sizeof(derived));
	return ret;
}

int mend_omemo2_payload_encrypt(mend_crypto *c, const uint8_t *in, size_t len, uint8_t **out,
                                size_t *out_len, uint8_t keymat[MEND_OMEMO2_KEYMAT_LEN])
{
	uint8_t key[MEND_OMEMO2_KEY_LEN];
	int ret;

	/* §4.4 step 1: 32 bytes of cryptographically secure random data */
	ret = mend_random(key, sizeof(key));
	if (!ret)
		ret = mend_omemo2_payload_encrypt_key(c, key, in, len, out, out_len, keymat);
	wipe(key, sizeof(key));
	return ret;
}

/* Compares without an early exit, so timing tells nothing of where they differ. */
static int same_tag(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;
	size_t i;

	for (i = 0; i < MEND_OMEMO2_TAG_LEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* The PKCS#7 pad length of a decrypted buffer (len >= 16), or -1. */
static int pad_len(const uint8_t *buf, size_t len)
{
	unsigned int pad = buf[len - 1], i;

	if (pad == 0 || pad > AES_BLOCK)
		return -1;
	for (i = 1; i <= pad; i++)
		if (buf[len - i] != pad)
			return -1;
	return (int)pad;
}

static int decrypt_check(const uint8_t *keymat, size_t keymat_len, const uint8_t *in, size_t len,
                         uint8_t **out, size_t *out_len)
{
	if (!keymat || !in || !out || !out_len)
		return MEND_ERR_INVALID_ARG;
	if (len > MEND_MAX_PAYLOAD)
		return MEND_ERR_TOO_LARGE;
	if (keymat_len != MEND_OMEMO2_KEYMAT_LEN || len == 0 || len % AES_BLOCK)
		return MEND_ERR_MALFORMED;
	return MEND_OK;
}

int mend_omemo2_payload_decrypt(mend_crypto *c, const uint8_t *keymat, size_t keymat_len,
                                const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t derived[DERIVED], want[MEND_OMEMO2_TAG_LEN];
	uint8_t *buf = NULL;
	int pad, ret;

	ret = decrypt_check(keymat, keymat_len, in, len, out, out_len);
	if (ret)
		return ret;
	ret = derive(keymat, derived);
	if (ret)
		goto out;
	/* §4.5 step 4: the HMAC first; nothing unauthenticated is decrypted */
	ret = tag(c, derived, in, len, want);
	if (ret)
		goto out;
	if (!same_tag(want, keymat + MEND_OMEMO2_KEY_LEN)) {
		ret = MEND_ERR_PAYLOAD_AUTH;
		goto out;
	}
	buf = g_malloc(len + 1);
	memcpy(buf, in, len);
	ret = cbc(0, derived, buf, len);
	pad = ret ? -1 : pad_len(buf, len);
	if (!ret && pad < 0)
		ret = MEND_ERR_MALFORMED;
	if (ret) {
		wipe(buf, len);
		g_free(buf);
		goto out;
	}
	buf[len - (size_t)pad] = '\0';
	*out = buf;
	*out_len = len - (size_t)pad;
out:
	wipe(derived, sizeof(derived));
	return ret;
}

int mend_omemo2_keymat_is_empty(const uint8_t *keymat, size_t keymat_len)
{
	static const uint8_t zeros[MEND_OMEMO2_KEY_LEN];

	return keymat && keymat_len == MEND_OMEMO2_KEY_LEN &&
	       memcmp(keymat, zeros, keymat_len) == 0;
}
