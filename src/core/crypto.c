/*
 * crypto.c - the core's cryptography on libgcrypt: the signal crypto
 * provider (random, HMAC-SHA256, SHA-512, AES-CBC-PKCS5 and AES-CTR), AES-GCM
 * for payloads and store sealing, HMAC-SHA256 and HKDF-SHA256 (RFC 5869).
 *
 * A mend_crypto keeps gcrypt handles open and re-keys them per use, since
 * every gcry_*_open polls the random pool and allocates (DESIGN §5: a
 * provider that keeps its handles is about 4x faster). HMAC and SHA-512
 * handles live in small free lists, because libsignal may hold two HMAC
 * contexts at once; cipher handles are opened on first use, one per mode
 * and key size. A NULL mend_crypto means: open a one-shot handle, close it.
 */
#include "config.h"

#include <errno.h>
#include <gcrypt.h>
#include <glib.h>
#include <string.h>
#include <sys/random.h>

#include "mend/mend.h"
#include "crypto.h"

#define POOL_MAX   4 /* free handles kept per pool; more are closed */
#define AES_BLOCK  16
#define SHA256_LEN 32
#define SHA512_LEN 64

enum cipher_mode { MODE_GCM, MODE_CBC, MODE_CTR, N_MODES };
enum { N_KEY_SIZES = 3 };

struct mend_crypto {
	gcry_cipher_hd_t cipher[N_MODES][N_KEY_SIZES]; /* NULL until first used */
	gcry_md_hd_t md[POOL_MAX];                     /* free SHA-512 handles */
	size_t n_md;
	struct hmac_ctx *hmac[POOL_MAX]; /* free HMAC-SHA256 contexts */
	size_t n_hmac;
};

#define SHA256_BLOCK 64

/*
 * HMAC-SHA256 (RFC 2104) on a SHA-256 handle, for mend_hmac_sha256(), HKDF and the
 * signal provider: the inner hash streams, the outer one is a single call. A ratchet
 * step makes dozens of HMACs under keys used once; keying a gcry_mac handle cost about
 * 200 ns more per HMAC than this (tests/test-crypto.c checks RFC 4231 and RFC 5869).
 */
struct hmac_ctx {
	gcry_md_hd_t h;             /* SHA-256: K ^ ipad, then the data (once started) */
	uint8_t ipad[SHA256_BLOCK]; /* K ^ 0x36.. (to start again under the same key) */
	uint8_t opad[SHA256_BLOCK]; /* K ^ 0x5c.. */
	int started;                /* h holds K ^ ipad and the data written since */
};

static const int gcry_modes[N_MODES] = {
    [MODE_GCM] = GCRY_CIPHER_MODE_GCM,
    [MODE_CBC] = GCRY_CIPHER_MODE_CBC,
    [MODE_CTR] = GCRY_CIPHER_MODE_CTR,
};

static const int gcry_aes[N_KEY_SIZES] = {GCRY_CIPHER_AES128, GCRY_CIPHER_AES192,
                                          GCRY_CIPHER_AES256};

/* Overwrites secrets in a way the compiler does not remove (explicit_bzero: glibc's
 * word-wide clear, where a volatile byte loop cost 3% of an archived message). */
static void wipe(void *p, size_t len)
{
	explicit_bzero(p, len);
}

static int gcrypt_init(void)
{
	int ret = MEND_OK;

	if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		goto out; /* the host did it */
	if (!gcry_check_version(NULL)) {
		ret = MEND_ERR_CRYPTO;
		goto out;
	}
	gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
out:
	return ret;
}

int mend_crypto_global_init(void)
{
	static gsize once;
	static int result;

	if (g_once_init_enter(&once)) {
		result = gcrypt_init();
		g_once_init_leave(&once, 1);
	}
	return result;
}

int mend_crypto_new(mend_crypto **out)
{
	int ret;

	ret = mend_crypto_global_init();
	if (ret)
		goto out;
	*out = calloc(1, sizeof(**out));
	if (!*out)
		ret = MEND_ERR_NOMEM;
out:
	return ret;
}

static void close_handles(mend_crypto *c)
{
	int m, k;

	for (m = 0; m < N_MODES; m++)
		for (k = 0; k < N_KEY_SIZES; k++)
			if (c->cipher[m][k])
				gcry_cipher_close(c->cipher[m][k]);
	while (c->n_md)
		gcry_md_close(c->md[--c->n_md]);
	while (c->n_hmac) {
		struct hmac_ctx *x = c->hmac[--c->n_hmac];

		gcry_md_close(x->h);
		free(x);
	}
}

void mend_crypto_free(mend_crypto *c)
{
	if (c) {
		close_handles(c);
		free(c);
	}
}

/* 0, 1, 2 for AES-128, -192, -256; -1 for any other key length. */
static int key_index(size_t key_len)
{
	return key_len == 16 ? 0 : key_len == 24 ? 1 : key_len == 32 ? 2 : -1;
}

/* Gives back a handle from cipher_acquire(): closes a one-shot one. */
static void cipher_release(mend_crypto *c, gcry_cipher_hd_t h)
{
	if (!c)
		gcry_cipher_close(h);
}

/*
 * A cipher handle for `mode` and `key_len` (valid), keyed with `key` and
 * reset: the cached one, or a one-shot one when c is NULL. Give it back
 * with cipher_release().
 */
static int cipher_acquire(mend_crypto *c, enum cipher_mode mode, const uint8_t *key, size_t key_len,
                          gcry_cipher_hd_t *h)
{
	int k = key_index(key_len);
	int ret = MEND_OK;

	if (c && c->cipher[mode][k]) {
		*h = c->cipher[mode][k];
	} else {
		if (gcry_cipher_open(h, gcry_aes[k], gcry_modes[mode], 0)) {
			ret = MEND_ERR_CRYPTO;
			goto out;
		}
		if (c)
			c->cipher[mode][k] = *h;
	}
	/* setkey keeps a copy of the keyed state; reset restores it */
	if (gcry_cipher_setkey(*h, key, key_len) || gcry_cipher_reset(*h)) {
		cipher_release(c, *h);
		ret = MEND_ERR_CRYPTO;
	}
out:
	return ret;
}

static int md_acquire(mend_crypto *c, gcry_md_hd_t *h)
{
	int ret = MEND_OK;

	if (c && c->n_md)
		*h = c->md[--c->n_md];
	else if (gcry_md_open(h, GCRY_MD_SHA512, 0))
		ret = MEND_ERR_CRYPTO;
	return ret;
}

static void md_release(mend_crypto *c, gcry_md_hd_t h)
{
	if (c && c->n_md < POOL_MAX) {
		gcry_md_reset(h);
		c->md[c->n_md++] = h;
	} else {
		gcry_md_close(h);
	}
}

int mend_nonce(void *buf, size_t len)
{
	int ret;

	ret = mend_crypto_global_init();
	if (!ret && len)
		gcry_create_nonce(buf, len);
	return ret;
}

/*
 * Keys come from the kernel's generator (getrandom(2), the source libgcrypt's own is seeded
 * from): 0.3 µs a call where gcry_randomize(GCRY_STRONG_RANDOM) took 7.4 µs (it stirs its
 * whole pool each time), and every message draws its payload key. It blocks only until the
 * kernel's generator is first seeded, at boot. libgcrypt's is the fallback.
 */
int mend_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t got;
	int ret;

	ret = mend_crypto_global_init();
	while (!ret && len) {
		got = getrandom(p, len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			gcry_randomize(p, len, GCRY_STRONG_RANDOM);
			break;
		}
		p += got;
		len -= (size_t)got;
	}
	return ret;
}

/* ---- AES-GCM ---- */

static int gcm_check(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                     const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                     const uint8_t *out)
{
	int ret = MEND_ERR_INVALID_ARG;

	if (key && key_index(key_len) >= 0 && iv && iv_len >= 12 && (aad || !aad_len) &&
	    ((in && out) || !len))
		ret = mend_crypto_global_init();
	return ret;
}

/* Encrypts through a keyed GCM handle: IV (which restarts the message), AAD, data, tag. */
static int gcm_seal_with(gcry_cipher_hd_t h, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                         uint8_t tag[MEND_GCM_TAG_LEN])
{
	int ret = MEND_OK;

	/* in == out is in-place: gcrypt wants NULL, 0 for that */
	if (gcry_cipher_setiv(h, iv, iv_len) ||
	    (aad_len && gcry_cipher_authenticate(h, aad, aad_len)) ||
	    (len && gcry_cipher_encrypt(h, out, len, in == out ? NULL : in, in == out ? 0 : len)) ||
	    gcry_cipher_gettag(h, tag, MEND_GCM_TAG_LEN))
		ret = MEND_ERR_CRYPTO;
	return ret;
}

/* The same for decryption; on a tag mismatch `out` is wiped. */
static int gcm_open_with(gcry_cipher_hd_t h, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len, const uint8_t *tag,
                         size_t tag_len, uint8_t *out)
{
	gcry_error_t err;
	int ret = MEND_OK;

	if (gcry_cipher_setiv(h, iv, iv_len) ||
	    (aad_len && gcry_cipher_authenticate(h, aad, aad_len)) ||
	    (len && gcry_cipher_decrypt(h, out, len, in == out ? NULL : in, in == out ? 0 : len))) {
		ret = MEND_ERR_CRYPTO;
		goto wipe_out;
	}
	err = gcry_cipher_checktag(h, tag, tag_len);
	if (gcry_err_code(err) == GPG_ERR_CHECKSUM)
		ret = MEND_ERR_PAYLOAD_AUTH;
	else if (err)
		ret = MEND_ERR_CRYPTO;
wipe_out:
	if (ret && len)
		wipe(out, len);
	return ret;
}

int mend_aes_gcm_encrypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                         size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                         size_t len, uint8_t *out, uint8_t tag[MEND_GCM_TAG_LEN])
{
	gcry_cipher_hd_t h;
	int ret;

	ret = gcm_check(key, key_len, iv, iv_len, aad, aad_len, in, len, out);
	if (!ret && !tag)
		ret = MEND_ERR_INVALID_ARG;
	if (ret)
		goto out;
	ret = cipher_acquire(c, MODE_GCM, key, key_len, &h);
	if (ret)
		goto out;
	ret = gcm_seal_with(h, iv, iv_len, aad, aad_len, in, len, out, tag);
	cipher_release(c, h);
out:
	return ret;
}

/* On a tag mismatch `out` is wiped: unauthenticated plaintext never leaves. */
int mend_aes_gcm_decrypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                         size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                         size_t len, const uint8_t *tag, size_t tag_len, uint8_t *out)
{
	gcry_cipher_hd_t h;
	int ret;

	ret = gcm_check(key, key_len, iv, iv_len, aad, aad_len, in, len, out);
	if (!ret && (!tag || tag_len < 12 || tag_len > MEND_GCM_TAG_LEN))
		ret = MEND_ERR_INVALID_ARG;
	if (ret)
		goto out;
	ret = cipher_acquire(c, MODE_GCM, key, key_len, &h);
	if (ret)
		goto out;
	ret = gcm_open_with(h, iv, iv_len, aad, aad_len, in, len, tag, tag_len, out);
	cipher_release(c, h);
out:
	return ret;
}

/* ---- AES-GCM under one fixed key ---- */

struct mend_gcm_key {
	gcry_cipher_hd_t h; /* keyed once; every use sets its IV, which restarts GCM */
};

int mend_gcm_key_new(mend_gcm_key **out, const uint8_t *key, size_t key_len)
{
	mend_gcm_key *k = NULL;
	int ret = MEND_ERR_INVALID_ARG;

	if (!key || key_index(key_len) < 0)
		goto out;
	ret = mend_crypto_global_init();
	if (ret)
		goto out;
	k = calloc(1, sizeof(*k));
	ret = k ? MEND_OK : MEND_ERR_NOMEM;
	if (k && gcry_cipher_open(&k->h, gcry_aes[key_index(key_len)], GCRY_CIPHER_MODE_GCM, 0)) {
		ret = MEND_ERR_CRYPTO;
		k->h = NULL;
	}
	if (!ret && gcry_cipher_setkey(k->h, key, key_len))
		ret = MEND_ERR_CRYPTO;
	if (ret) {
		mend_gcm_key_free(k);
		k = NULL;
	}
	*out = k;
out:
	return ret;
}

void mend_gcm_key_free(mend_gcm_key *k)
{
	if (k) {
		if (k->h)
			gcry_cipher_close(k->h); /* gcrypt wipes the key schedule */
		free(k);
	}
}

int mend_gcm_key_encrypt(mend_gcm_key *k, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                         uint8_t tag[MEND_GCM_TAG_LEN])
{
	if (!k || !iv || iv_len < 12 || (!aad && aad_len) || (len && (!in || !out)) || !tag)
		return MEND_ERR_INVALID_ARG;
	return gcm_seal_with(k->h, iv, iv_len, aad, aad_len, in, len, out, tag);
}

int mend_gcm_key_decrypt(mend_gcm_key *k, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len, const uint8_t *tag,
                         size_t tag_len, uint8_t *out)
{
	if (!k || !iv || iv_len < 12 || (!aad && aad_len) || (len && (!in || !out)) || !tag ||
	    tag_len < 12 || tag_len > MEND_GCM_TAG_LEN)
		return MEND_ERR_INVALID_ARG;
	return gcm_open_with(k->h, iv, iv_len, aad, aad_len, in, len, tag, tag_len, out);
}

/* ---- HMAC-SHA256 and HKDF ---- */

/* An HMAC context from the pool (or a new one), not yet keyed. */
static struct hmac_ctx *hmac_acquire(mend_crypto *c)
{
	struct hmac_ctx *x;

	if (c && c->n_hmac)
		return c->hmac[--c->n_hmac];
	x = calloc(1, sizeof(*x));
	if (x && gcry_md_open(&x->h, GCRY_MD_SHA256, 0)) {
		free(x);
		x = NULL;
	}
	return x;
}

/* Gives a context back with its key material wiped. */
static void hmac_release(mend_crypto *c, struct hmac_ctx *x)
{
	gcry_md_reset(x->h);
	wipe(x->ipad, sizeof(x->ipad));
	wipe(x->opad, sizeof(x->opad));
	if (c && c->n_hmac < POOL_MAX) {
		c->hmac[c->n_hmac++] = x;
		return;
	}
	gcry_md_close(x->h);
	free(x);
}

/* Keys the context (RFC 2104 §2: a key longer than a block is hashed first); the inner
 * hash starts with the first data (hmac_start). */
static void hmac_key(struct hmac_ctx *x, const uint8_t *key, size_t key_len)
{
	uint8_t k[SHA256_BLOCK] = {0};
	size_t i;

	if (key_len > SHA256_BLOCK)
		gcry_md_hash_buffer(GCRY_MD_SHA256, k, key, key_len);
	else if (key_len)
		memcpy(k, key, key_len);
	for (i = 0; i < SHA256_BLOCK; i++) {
		x->ipad[i] = k[i] ^ 0x36;
		x->opad[i] = k[i] ^ 0x5c;
	}
	wipe(k, sizeof(k));
	x->started = 0;
}

/* The inner hash starts with K ^ ipad when the first data (or the read) comes: a context
 * read is seldom used again, and starting it again at once cost a block for nothing. */
static void hmac_start(struct hmac_ctx *x)
{
	if (x->started)
		return;
	gcry_md_reset(x->h);
	gcry_md_write(x->h, x->ipad, sizeof(x->ipad));
	x->started = 1;
}

static void hmac_write(struct hmac_ctx *x, const uint8_t *data, size_t len)
{
	hmac_start(x);
	if (len)
		gcry_md_write(x->h, data, len);
}

/* The HMAC of what was written since the key or the last read; the context is then
 * ready for another message under the same key. */
static int hmac_read(struct hmac_ctx *x, uint8_t out[SHA256_LEN])
{
	const unsigned char *inner;
	gcry_buffer_t outer[2] = {{0}};
	int ret = MEND_OK;

	hmac_start(x);
	inner = gcry_md_read(x->h, GCRY_MD_SHA256);
	outer[0].len = sizeof(x->opad);
	outer[0].data = x->opad;
	outer[1].len = SHA256_LEN;
	outer[1].data = (void *)inner;
	if (!inner || gcry_md_hash_buffers(GCRY_MD_SHA256, 0, out, outer, 2))
		ret = MEND_ERR_CRYPTO;
	x->started = 0; /* the next write or read starts again under the same key */
	return ret;
}

int mend_hmac_sha256(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *data,
                     size_t len, uint8_t out[32])
{
	struct hmac_ctx *x;
	int ret;

	ret = MEND_ERR_INVALID_ARG;
	if ((!key && key_len) || !out || (!data && len))
		goto out;
	ret = mend_crypto_global_init();
	if (ret)
		goto out;
	x = hmac_acquire(c);
	if (!x) {
		ret = MEND_ERR_CRYPTO;
		goto out;
	}
	hmac_key(x, key, key_len);
	hmac_write(x, data, len);
	ret = hmac_read(x, out);
	hmac_release(c, x);
out:
	return ret;
}

/* RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) | info | i), the context keyed with PRK. */
static int hkdf_expand(struct hmac_ctx *x, const uint8_t *info, size_t info_len, uint8_t *out,
                       size_t out_len)
{
	uint8_t t[SHA256_LEN];
	size_t done, n, t_len = 0;
	uint8_t i = 0;
	int ret = MEND_OK;

	for (done = 0; done < out_len; done += n) {
		i++;
		hmac_write(x, t, t_len);
		hmac_write(x, info, info_len);
		hmac_write(x, &i, 1);
		ret = hmac_read(x, t);
		if (ret)
			break;
		t_len = SHA256_LEN;
		n = MIN(SHA256_LEN, out_len - done);
		memcpy(out + done, t, n);
	}
	wipe(t, sizeof(t));
	return ret;
}

int mend_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	static const uint8_t zeros[SHA256_LEN];
	uint8_t prk[SHA256_LEN];
	struct hmac_ctx *x;
	int ret;

	ret = MEND_ERR_INVALID_ARG;
	if ((!ikm && ikm_len) || (!info && info_len) || (!out && out_len) ||
	    out_len > 255 * SHA256_LEN)
		goto out;
	ret = mend_crypto_global_init();
	if (ret)
		goto out;
	if (!salt || !salt_len) { /* RFC 5869 §2.2: HashLen zeros */
		salt = zeros;
		salt_len = sizeof(zeros);
	}
	x = hmac_acquire(NULL);
	if (!x) {
		ret = MEND_ERR_CRYPTO;
		goto out;
	}
	hmac_key(x, salt, salt_len);
	hmac_write(x, ikm, ikm_len);
	ret = hmac_read(x, prk);
	if (!ret) {
		hmac_key(x, prk, sizeof(prk));
		ret = hkdf_expand(x, info, info_len, out, out_len);
	}
	if (ret && out_len)
		wipe(out, out_len);
	wipe(prk, sizeof(prk));
	hmac_release(NULL, x);
out:
	return ret;
}

/* ---- the signal crypto provider: SG_ERR_* codes, output in new buffers ---- */

static int provider_random(uint8_t *data, size_t len, void *user_data)
{
	return mend_random(data, len) ? SG_ERR_UNKNOWN : 0;
}

static int provider_hmac_init(void **ctx, const uint8_t *key, size_t key_len, void *user_data)
{
	struct hmac_ctx *x;

	if (!ctx || (!key && key_len))
		return SG_ERR_INVAL;
	x = hmac_acquire(user_data);
	if (!x)
		return SG_ERR_NOMEM;
	hmac_key(x, key, key_len);
	*ctx = x;
	return 0;
}

static int provider_hmac_update(void *ctx, const uint8_t *data, size_t len, void *user_data)
{
	if (!ctx || (!data && len))
		return SG_ERR_INVAL;
	hmac_write(ctx, data, len);
	return 0;
}

static int provider_hmac_final(void *ctx, signal_buffer **output, void *user_data)
{
	uint8_t md[SHA256_LEN];
	int ret = 0;

	if (!ctx || !output)
		return SG_ERR_INVAL;
	if (hmac_read(ctx, md)) /* ready for another message under the same key */
		ret = SG_ERR_UNKNOWN;
	if (!ret) {
		*output = signal_buffer_create(md, sizeof(md));
		if (!*output)
			ret = SG_ERR_NOMEM;
	}
	wipe(md, sizeof(md));
	return ret;
}

static void provider_hmac_cleanup(void *ctx, void *user_data)
{
	if (ctx)
		hmac_release(user_data, ctx);
}

static int provider_sha512_init(void **ctx, void *user_data)
{
	gcry_md_hd_t h;
	int ret = 0;

	if (!ctx)
		ret = SG_ERR_INVAL;
	else if (md_acquire(user_data, &h))
		ret = SG_ERR_UNKNOWN;
	else
		*ctx = h;
	return ret;
}

static int provider_sha512_update(void *ctx, const uint8_t *data, size_t len, void *user_data)
{
	int ret = 0;

	if (!ctx || (!data && len))
		ret = SG_ERR_INVAL;
	else if (len)
		gcry_md_write(ctx, data, len);
	return ret;
}

static int provider_sha512_final(void *ctx, signal_buffer **output, void *user_data)
{
	const unsigned char *md;
	int ret = 0;

	if (!ctx || !output) {
		ret = SG_ERR_INVAL;
		goto out;
	}
	md = gcry_md_read(ctx, GCRY_MD_SHA512);
	if (!md) {
		ret = SG_ERR_UNKNOWN;
		goto out;
	}
	*output = signal_buffer_create(md, SHA512_LEN);
	if (!*output)
		ret = SG_ERR_NOMEM;
	gcry_md_reset(ctx); /* the provider contract: ready for reuse */
out:
	return ret;
}

static void provider_sha512_cleanup(void *ctx, void *user_data)
{
	if (ctx)
		md_release(user_data, ctx);
}

/* AES-CTR: `iv` is the whole 16-byte initial counter block. */
static int ctr_crypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                     const uint8_t *in, size_t len, signal_buffer **output)
{
	gcry_cipher_hd_t h;
	signal_buffer *buf;
	int ret = SG_ERR_UNKNOWN;

	if (cipher_acquire(c, MODE_CTR, key, key_len, &h))
		goto out;
	if (gcry_cipher_setctr(h, iv, AES_BLOCK))
		goto release_cipher;
	buf = signal_buffer_alloc(len);
	if (!buf) {
		ret = SG_ERR_NOMEM;
		goto release_cipher;
	}
	if (len && gcry_cipher_encrypt(h, signal_buffer_data(buf), len, in, len)) {
		signal_buffer_bzero_free(buf);
		goto release_cipher;
	}
	*output = buf;
	ret = 0;
release_cipher:
	cipher_release(c, h);
out:
	return ret;
}

/* AES-CBC with PKCS#5 padding: 1 to 16 bytes, each holding the pad length. */
static int cbc_encrypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                       const uint8_t *in, size_t len, signal_buffer **output)
{
	size_t pad = AES_BLOCK - len % AES_BLOCK;
	gcry_cipher_hd_t h;
	signal_buffer *buf;
	uint8_t *p;
	int ret = SG_ERR_NOMEM;

	if (len > SIZE_MAX - AES_BLOCK)
		goto out;
	buf = signal_buffer_alloc(len + pad);
	if (!buf)
		goto out;
	p = signal_buffer_data(buf);
	if (len)
		memcpy(p, in, len);
	memset(p + len, (int)pad, pad);
	ret = SG_ERR_UNKNOWN;
	if (cipher_acquire(c, MODE_CBC, key, key_len, &h))
		goto free_buf;
	if (!gcry_cipher_setiv(h, iv, AES_BLOCK) &&
	    !gcry_cipher_encrypt(h, p, len + pad, NULL, 0)) {
		*output = buf;
		buf = NULL;
		ret = 0;
	}
	cipher_release(c, h);
free_buf:
	if (buf)
		signal_buffer_bzero_free(buf);
out:
	return ret;
}

/* The pad length of the last block, or -1; looks at all 16 bytes whatever the pad. */
static int pkcs5_pad_len(const uint8_t *last)
{
	unsigned int pad = last[AES_BLOCK - 1];
	unsigned int bad = (pad == 0) | (pad > AES_BLOCK);
	unsigned int i;

	for (i = 0; i < AES_BLOCK; i++)
		bad |= (i < pad) & (last[AES_BLOCK - 1 - i] != pad);
	return bad ? -1 : (int)pad;
}

static int cbc_decrypt(mend_crypto *c, const uint8_t *key, size_t key_len, const uint8_t *iv,
                       const uint8_t *in, size_t len, signal_buffer **output)
{
	gcry_cipher_hd_t h;
	signal_buffer *buf;
	uint8_t *p;
	int pad, ret = SG_ERR_UNKNOWN;

	if (!len || len % AES_BLOCK)
		goto out;
	buf = signal_buffer_alloc(len);
	if (!buf) {
		ret = SG_ERR_NOMEM;
		goto out;
	}
	p = signal_buffer_data(buf);
	if (cipher_acquire(c, MODE_CBC, key, key_len, &h))
		goto free_buf;
	if (gcry_cipher_setiv(h, iv, AES_BLOCK) || gcry_cipher_decrypt(h, p, len, in, len))
		goto release_cipher;
	pad = pkcs5_pad_len(p + len - AES_BLOCK);
	if (pad < 0)
		goto release_cipher;
	*output = signal_buffer_create(p, len - (size_t)pad);
	ret = *output ? 0 : SG_ERR_NOMEM;
release_cipher:
	cipher_release(c, h);
free_buf:
	signal_buffer_bzero_free(buf);
out:
	return ret;
}

static int provider_check(signal_buffer **output, const uint8_t *key, size_t key_len,
                          const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t len)
{
	int ok =
	    output && key && key_index(key_len) >= 0 && iv && iv_len == AES_BLOCK && (in || !len);

	return ok ? 0 : SG_ERR_INVAL;
}

static int provider_encrypt(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len,
                            const uint8_t *iv, size_t iv_len, const uint8_t *plaintext,
                            size_t plaintext_len, void *user_data)
{
	int ret;

	ret = provider_check(output, key, key_len, iv, iv_len, plaintext, plaintext_len);
	if (ret)
		goto out;
	if (cipher == SG_CIPHER_AES_CBC_PKCS5)
		ret = cbc_encrypt(user_data, key, key_len, iv, plaintext, plaintext_len, output);
	else if (cipher == SG_CIPHER_AES_CTR_NOPADDING)
		ret = ctr_crypt(user_data, key, key_len, iv, plaintext, plaintext_len, output);
	else
		ret = SG_ERR_INVAL;
out:
	return ret;
}

static int provider_decrypt(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len,
                            const uint8_t *iv, size_t iv_len, const uint8_t *ciphertext,
                            size_t ciphertext_len, void *user_data)
{
	int ret;

	ret = provider_check(output, key, key_len, iv, iv_len, ciphertext, ciphertext_len);
	if (ret)
		goto out;
	if (cipher == SG_CIPHER_AES_CBC_PKCS5)
		ret = cbc_decrypt(user_data, key, key_len, iv, ciphertext, ciphertext_len, output);
	else if (cipher == SG_CIPHER_AES_CTR_NOPADDING)
		ret = ctr_crypt(user_data, key, key_len, iv, ciphertext, ciphertext_len, output);
	else
		ret = SG_ERR_INVAL;
out:
	return ret;
}

void mend_crypto_fill_provider(mend_crypto *c, signal_crypto_provider *p)
{
	memset(p, 0, sizeof(*p));
	p->random_func = provider_random;
	p->hmac_sha256_init_func = provider_hmac_init;
	p->hmac_sha256_update_func = provider_hmac_update;
	p->hmac_sha256_final_func = provider_hmac_final;
	p->hmac_sha256_cleanup_func = provider_hmac_cleanup;
	p->sha512_digest_init_func = provider_sha512_init;
	p->sha512_digest_update_func = provider_sha512_update;
	p->sha512_digest_final_func = provider_sha512_final;
	p->sha512_digest_cleanup_func = provider_sha512_cleanup;
	p->encrypt_func = provider_encrypt;
	p->decrypt_func = provider_decrypt;
	p->user_data = c;
}
