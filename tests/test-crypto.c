/*
 * test-crypto.c - known answers for src/core/crypto.c: AES-GCM (McGrew and
 * Viega's GCM spec test cases), HMAC-SHA-256 (RFC 4231), HKDF-SHA-256
 * (RFC 5869), SHA-512 (FIPS 180-2), AES-CBC and AES-CTR (NIST SP 800-38A)
 * through the signal crypto provider, PKCS#5 padding, tampering, random,
 * and the handle cache against one-shot handles.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "mend/mend.h"
#include "crypto.h"
#include "tap.h"

#define MAXBUF 160

/* Decodes a hex string into out (room for max bytes); bails on bad input. */
static size_t unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = strlen(s) / 2, i;
	unsigned int b;

	if (strlen(s) % 2 || n > max)
		TAP_BAIL("bad hex vector %.20s", s);
	for (i = 0; i < n; i++) {
		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			TAP_BAIL("bad hex vector %.20s", s);
		out[i] = (uint8_t)b;
	}
	return n;
}

/* True when buf[0..len) equals the bytes of the hex string. */
static int eq_hex(const uint8_t *buf, size_t len, const char *hex)
{
	uint8_t want[MAXBUF];
	size_t n = unhex(hex, want, sizeof(want));

	return n == len && memcmp(buf, want, n) == 0;
}

/* ---- AES-GCM ---- */

struct gcm_vec {
	const char *name, *key, *iv, *aad, *pt, *ct, *tag;
};

#define GCM_P64                                                                                    \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532"        \
	"fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
#define GCM_P60                                                                                    \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532"        \
	"fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define GCM_K128 "feffe9928665731c6d6a8f9467308308"
#define GCM_AAD  "feedfacedeadbeeffeedfacedeadbeefabaddad2"
#define GCM_IV   "cafebabefacedbaddecaf888"

static const struct gcm_vec gcm_vecs[] = {
    {"GCM TC1 (AES-128, empty)", "00000000000000000000000000000000", "000000000000000000000000", "",
     "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
    {"GCM TC2 (AES-128, one block)", "00000000000000000000000000000000", "000000000000000000000000",
     "", "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"},
    {"GCM TC3 (AES-128, no AAD)", GCM_K128, GCM_IV, "", GCM_P64,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7"
     "d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"GCM TC4 (AES-128, AAD)", GCM_K128, GCM_IV, GCM_AAD, GCM_P60,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7"
     "d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"GCM TC6 (AES-128, 60-byte IV)", GCM_K128,
     "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539f"
     "cf0e2429a6b525416aedbf5a0de6a57a637b39b",
     GCM_AAD, GCM_P60,
     "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90c"
     "cdcb281d48c7c6fd62875d2aca417034c34aee5",
     "619cc5aefffe0bfa462af43c1699d050"},
    {"GCM TC15 (AES-256, no AAD)", GCM_K128 GCM_K128, GCM_IV, "", GCM_P64,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da"
     "7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"GCM TC16 (AES-256, AAD)", GCM_K128 GCM_K128, GCM_IV, GCM_AAD, GCM_P60,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da"
     "7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    /* not from the spec: computed with OpenSSL 3.0 (python-cryptography) */
    {"GCM AES-128, 16-byte IV (OpenSSL)", GCM_K128, "000102030405060708090a0b0c0d0e0f", GCM_AAD,
     GCM_P60,
     "9333269f7190747c0c40f4e68b264bccb425eb7f01668da81e32f7c519b375249297ea2dc3f88c3a2"
     "b1c70373831df37959db053642fb009a4710555",
     "e2982c8b98fdd5eaa7d9f52990d8978b"},
};

struct gcm_buf {
	uint8_t key[32], iv[MAXBUF], aad[MAXBUF], pt[MAXBUF], ct[MAXBUF], tag[16];
	size_t key_len, iv_len, aad_len, pt_len, ct_len, tag_len;
};

static void gcm_load(const struct gcm_vec *v, struct gcm_buf *b)
{
	b->key_len = unhex(v->key, b->key, sizeof(b->key));
	b->iv_len = unhex(v->iv, b->iv, sizeof(b->iv));
	b->aad_len = unhex(v->aad, b->aad, sizeof(b->aad));
	b->pt_len = unhex(v->pt, b->pt, sizeof(b->pt));
	b->ct_len = unhex(v->ct, b->ct, sizeof(b->ct));
	b->tag_len = unhex(v->tag, b->tag, sizeof(b->tag));
}

static int gcm_dec(mend_crypto *c, const struct gcm_buf *b, const uint8_t *ct, const uint8_t *aad,
                   const uint8_t *tag, size_t tag_len, uint8_t *out)
{
	return mend_aes_gcm_decrypt(c, b->key, b->key_len, b->iv, b->iv_len,
	                            b->aad_len ? aad : NULL, b->aad_len, ct, b->ct_len, tag,
	                            tag_len, out);
}

/* Encrypts and decrypts one vector through `c` (NULL: one-shot handles). */
static void test_gcm_vec(mend_crypto *c, const struct gcm_vec *v)
{
	const char *how = c ? "cached" : "one-shot";
	uint8_t out[MAXBUF], tag[16];
	struct gcm_buf b;
	int ret;

	gcm_load(v, &b);
	ret = mend_aes_gcm_encrypt(c, b.key, b.key_len, b.iv, b.iv_len, b.aad_len ? b.aad : NULL,
	                           b.aad_len, b.pt, b.pt_len, out, tag);
	TAP_EQ(ret, MEND_OK, "%s: encrypt (%s)", v->name, how);
	TAP_OK(eq_hex(out, b.pt_len, v->ct), "%s: ciphertext (%s)", v->name, how);
	TAP_OK(eq_hex(tag, 16, v->tag), "%s: tag (%s)", v->name, how);
	memset(out, 0xa5, sizeof(out));
	ret = gcm_dec(c, &b, b.ct, b.aad, b.tag, 16, out);
	TAP_EQ(ret, MEND_OK, "%s: decrypt (%s)", v->name, how);
	TAP_OK(memcmp(out, b.pt, b.pt_len) == 0, "%s: plaintext (%s)", v->name, how);
}

/* Tag, ciphertext and AAD tampering, a truncated tag, bad sizes; on TC4. */
static void test_gcm_tamper(mend_crypto *c)
{
	struct gcm_buf b;
	uint8_t out[MAXBUF], x[MAXBUF];

	gcm_load(&gcm_vecs[3], &b);
	memcpy(x, b.tag, 16);
	x[15] ^= 1;
	TAP_EQ(gcm_dec(c, &b, b.ct, b.aad, x, 16, out), MEND_ERR_PAYLOAD_AUTH, "GCM: tampered tag");
	memcpy(x, b.ct, b.ct_len);
	x[7] ^= 0x80;
	memset(out, 0x5a, sizeof(out));
	TAP_EQ(gcm_dec(c, &b, x, b.aad, b.tag, 16, out), MEND_ERR_PAYLOAD_AUTH,
	       "GCM: tampered ciphertext");
	memset(x, 0, sizeof(x));
	TAP_OK(memcmp(out, x, b.ct_len) == 0, "GCM: output wiped after a failed tag");
	memcpy(x, b.aad, b.aad_len);
	x[0] ^= 1;
	TAP_EQ(gcm_dec(c, &b, b.ct, x, b.tag, 16, out), MEND_ERR_PAYLOAD_AUTH, "GCM: tampered AAD");
	TAP_EQ(gcm_dec(c, &b, b.ct, b.aad, b.tag, 12, out), MEND_OK, "GCM: 12-byte tag accepted");
	TAP_OK(memcmp(out, b.pt, b.pt_len) == 0, "GCM: 12-byte tag plaintext");
	memcpy(x, b.tag, 16);
	x[11] ^= 1;
	TAP_EQ(gcm_dec(c, &b, b.ct, b.aad, x, 12, out), MEND_ERR_PAYLOAD_AUTH,
	       "GCM: tampered 12-byte tag");
	TAP_EQ(gcm_dec(c, &b, b.ct, b.aad, b.tag, 11, out), MEND_ERR_INVALID_ARG,
	       "GCM: 11-byte tag refused");
	TAP_EQ(gcm_dec(c, &b, b.ct, b.aad, b.tag, 17, out), MEND_ERR_INVALID_ARG,
	       "GCM: 17-byte tag refused");
	TAP_EQ(mend_aes_gcm_encrypt(c, b.key, 20, b.iv, 12, NULL, 0, b.pt, 16, out, x),
	       MEND_ERR_INVALID_ARG, "GCM: 20-byte key refused");
	TAP_EQ(mend_aes_gcm_encrypt(c, b.key, 16, b.iv, 11, NULL, 0, b.pt, 16, out, x),
	       MEND_ERR_INVALID_ARG, "GCM: 11-byte IV refused");
}

/* 16-byte IV round trip, in place, with an AES-192 key. */
static void test_gcm_in_place(mend_crypto *c)
{
	uint8_t key[24], iv[16], buf[100], orig[100], tag[16];
	int ret;

	memset(key, 0x42, sizeof(key));
	memset(iv, 0x17, sizeof(iv));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = orig[i] = (uint8_t)i;
	ret = mend_aes_gcm_encrypt(c, key, 24, iv, 16, NULL, 0, buf, sizeof(buf), buf, tag);
	TAP_EQ(ret, MEND_OK, "GCM AES-192 16-byte IV: encrypt in place");
	TAP_OK(memcmp(buf, orig, sizeof(buf)) != 0, "GCM in place: buffer changed");
	ret = mend_aes_gcm_decrypt(c, key, 24, iv, 16, NULL, 0, buf, sizeof(buf), tag, 16, buf);
	TAP_EQ(ret, MEND_OK, "GCM AES-192 16-byte IV: decrypt in place");
	TAP_OK(memcmp(buf, orig, sizeof(buf)) == 0, "GCM in place: round trip");
}

/* 1000 encrypts alternating keys through one cache equal one-shot ones. */
static void test_gcm_cache(mend_crypto *c)
{
	uint8_t k1[16], k2[32], iv[12], pt[48], a[48], b[48], ta[16], tb[16];
	int i, bad = 0;

	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	memset(pt, 'p', sizeof(pt));
	for (i = 0; i < 1000; i++) {
		const uint8_t *k = i % 2 ? k2 : k1;
		size_t kl = i % 2 ? sizeof(k2) : sizeof(k1);

		memset(iv, 0, sizeof(iv));
		memcpy(iv, &i, sizeof(i));
		bad |= mend_aes_gcm_encrypt(c, k, kl, iv, 12, iv, 12, pt, sizeof(pt), a, ta);
		bad |= mend_aes_gcm_encrypt(NULL, k, kl, iv, 12, iv, 12, pt, sizeof(pt), b, tb);
		bad |= memcmp(a, b, sizeof(a)) != 0 || memcmp(ta, tb, 16) != 0;
	}
	TAP_OK(!bad, "GCM: 1000 alternating-key encrypts, cached == one-shot");
}

/*
 * A keyed handle (the store's sealing): the spec vectors with AES-256, used again and
 * again (each use sets its IV), a failed tag in between, and the same bytes as one-shot.
 */
static void test_gcm_key(void)
{
	uint8_t out[MAXBUF], tag[16], x[16];
	struct gcm_buf b, b2;
	mend_gcm_key *k = NULL;
	int round, bad = 0;

	gcm_load(&gcm_vecs[6], &b);  /* TC16: AES-256 with AAD */
	gcm_load(&gcm_vecs[5], &b2); /* TC15: same key, no AAD */
	TAP_EQ(mend_gcm_key_new(&k, b.key, 20), MEND_ERR_INVALID_ARG, "GCM key: 20 bytes refused");
	TAP_EQ(mend_gcm_key_new(&k, b.key, b.key_len), MEND_OK, "GCM key: new");
	if (!k)
		return;
	for (round = 0; round < 3; round++) {
		bad |= mend_gcm_key_encrypt(k, b.iv, b.iv_len, b.aad, b.aad_len, b.pt, b.pt_len,
		                            out, tag) != MEND_OK;
		bad |= !eq_hex(out, b.pt_len, gcm_vecs[6].ct) || !eq_hex(tag, 16, gcm_vecs[6].tag);
		bad |= mend_gcm_key_encrypt(k, b2.iv, b2.iv_len, NULL, 0, b2.pt, b2.pt_len, out,
		                            tag) != MEND_OK;
		bad |= !eq_hex(out, b2.pt_len, gcm_vecs[5].ct) || !eq_hex(tag, 16, gcm_vecs[5].tag);
		memcpy(x, b.tag, 16);
		x[0] ^= 1;
		bad |= mend_gcm_key_decrypt(k, b.iv, b.iv_len, b.aad, b.aad_len, b.ct, b.ct_len, x,
		                            16, out) != MEND_ERR_PAYLOAD_AUTH;
		bad |= mend_gcm_key_decrypt(k, b.iv, b.iv_len, b.aad, b.aad_len, b.ct, b.ct_len,
		                            b.tag, 16, out) != MEND_OK;
		bad |= memcmp(out, b.pt, b.pt_len) != 0;
	}
	TAP_OK(!bad, "GCM key: TC16/TC15 three times over, a bad tag in between");
	TAP_EQ(mend_gcm_key_encrypt(k, b.iv, 11, NULL, 0, b.pt, 16, out, tag), MEND_ERR_INVALID_ARG,
	       "GCM key: 11-byte IV refused");
	TAP_EQ(mend_gcm_key_decrypt(k, b.iv, 12, NULL, 0, b.ct, 16, b.tag, 11, out),
	       MEND_ERR_INVALID_ARG, "GCM key: 11-byte tag refused");
	mend_gcm_key_free(k);
	mend_gcm_key_free(NULL);
}

static void test_gcm(mend_crypto *c)
{
	size_t i;

	for (i = 0; i < sizeof(gcm_vecs) / sizeof(gcm_vecs[0]); i++) {
		test_gcm_vec(c, &gcm_vecs[i]);
		test_gcm_vec(NULL, &gcm_vecs[i]);
	}
	test_gcm_tamper(c);
	test_gcm_tamper(NULL);
	test_gcm_in_place(c);
	test_gcm_cache(c);
	test_gcm_key();
}

/* ---- HMAC-SHA-256 (RFC 4231) ---- */

struct hmac_vec {
	const char *name, *key, *data, *mac; /* data is text, the rest hex */
};

static const struct hmac_vec hmac_vecs[] = {
    {"RFC 4231 TC1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {"RFC 4231 TC2", "4a656665", "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"RFC 4231 TC6 (131-byte key)",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaa",
     "Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
};

/* One HMAC through the provider, the data fed in two pieces. */
static int provider_hmac(const signal_crypto_provider *p, const uint8_t *key, size_t key_len,
                         const char *data, uint8_t out[32])
{
	size_t len = strlen(data), half = len / 2;
	signal_buffer *buf = NULL;
	void *ctx = NULL;
	int ret;

	ret = p->hmac_sha256_init_func(&ctx, key, key_len, p->user_data);
	if (ret)
		goto out;
	ret = p->hmac_sha256_update_func(ctx, (const uint8_t *)data, half, p->user_data);
	if (!ret)
		ret = p->hmac_sha256_update_func(ctx, (const uint8_t *)data + half, len - half,
		                                 p->user_data);
	if (!ret)
		ret = p->hmac_sha256_final_func(ctx, &buf, p->user_data);
	if (!ret && signal_buffer_len(buf) == 32)
		memcpy(out, signal_buffer_data(buf), 32);
	else if (!ret)
		ret = -1;
	signal_buffer_free(buf);
	p->hmac_sha256_cleanup_func(ctx, p->user_data);
out:
	return ret;
}

static void test_hmac_vec(mend_crypto *c, const signal_crypto_provider *p, const struct hmac_vec *v)
{
	uint8_t key[MAXBUF], out[32];
	size_t key_len = unhex(v->key, key, sizeof(key));
	int ret;

	ret = mend_hmac_sha256(c, key, key_len, (const uint8_t *)v->data, strlen(v->data), out);
	TAP_OK(ret == MEND_OK && eq_hex(out, 32, v->mac), "HMAC %s (cached)", v->name);
	ret = mend_hmac_sha256(NULL, key, key_len, (const uint8_t *)v->data, strlen(v->data), out);
	TAP_OK(ret == MEND_OK && eq_hex(out, 32, v->mac), "HMAC %s (one-shot)", v->name);
	memset(out, 0, sizeof(out));
	ret = provider_hmac(p, key, key_len, v->data, out);
	TAP_OK(ret == 0 && eq_hex(out, 32, v->mac), "HMAC %s (provider, two updates)", v->name);
}

/* One provider context, two messages in a row under its key (final leaves it ready for
 * the next): each gets its RFC 4231 value (TC2's key and data twice). */
static void test_hmac_again(const signal_crypto_provider *p)
{
	const struct hmac_vec *v = &hmac_vecs[1];
	uint8_t key[32];
	size_t key_len = unhex(v->key, key, sizeof(key)), len = strlen(v->data);
	signal_buffer *b1 = NULL, *b2 = NULL;
	void *ctx = NULL;
	int ret;

	ret = p->hmac_sha256_init_func(&ctx, key, key_len, p->user_data);
	if (!ret)
		ret = p->hmac_sha256_update_func(ctx, (const uint8_t *)v->data, len, p->user_data);
	if (!ret)
		ret = p->hmac_sha256_final_func(ctx, &b1, p->user_data);
	if (!ret)
		ret = p->hmac_sha256_update_func(ctx, (const uint8_t *)v->data, len, p->user_data);
	if (!ret)
		ret = p->hmac_sha256_final_func(ctx, &b2, p->user_data);
	TAP_OK(ret == 0 && b1 && b2 && eq_hex(signal_buffer_data(b1), 32, v->mac) &&
	           eq_hex(signal_buffer_data(b2), 32, v->mac),
	       "HMAC provider: a second message under the same context");
	signal_buffer_free(b1);
	signal_buffer_free(b2);
	if (ctx)
		p->hmac_sha256_cleanup_func(ctx, p->user_data);
}

/* Two provider contexts alive at once, fed in turns: TC1 and TC2. */
static void test_hmac_interleaved(const signal_crypto_provider *p)
{
	const struct hmac_vec *v1 = &hmac_vecs[0], *v2 = &hmac_vecs[1];
	uint8_t k1[32], k2[32];
	size_t l1 = unhex(v1->key, k1, sizeof(k1)), l2 = unhex(v2->key, k2, sizeof(k2));
	signal_buffer *b1 = NULL, *b2 = NULL;
	void *c1 = NULL, *c2 = NULL;
	void *u = p->user_data;
	int ret = 0;

	ret |= p->hmac_sha256_init_func(&c1, k1, l1, u);
	ret |= p->hmac_sha256_init_func(&c2, k2, l2, u);
	TAP_OK(ret == 0 && c1 && c2 && c1 != c2, "HMAC provider: two contexts at once");
	ret |= p->hmac_sha256_update_func(c1, (const uint8_t *)v1->data, 3, u);
	ret |= p->hmac_sha256_update_func(c2, (const uint8_t *)v2->data, 10, u);
	ret |=
	    p->hmac_sha256_update_func(c1, (const uint8_t *)v1->data + 3, strlen(v1->data) - 3, u);
	ret |= p->hmac_sha256_update_func(c2, (const uint8_t *)v2->data + 10, strlen(v2->data) - 10,
	                                  u);
	ret |= p->hmac_sha256_final_func(c2, &b2, u);
	ret |= p->hmac_sha256_final_func(c1, &b1, u);
	TAP_EQ(ret, 0, "HMAC provider interleaved: no error");
	TAP_OK(b1 && eq_hex(signal_buffer_data(b1), signal_buffer_len(b1), v1->mac),
	       "HMAC provider interleaved: TC1");
	TAP_OK(b2 && eq_hex(signal_buffer_data(b2), signal_buffer_len(b2), v2->mac),
	       "HMAC provider interleaved: TC2");
	signal_buffer_free(b1);
	signal_buffer_free(b2);
	p->hmac_sha256_cleanup_func(c1, u);
	p->hmac_sha256_cleanup_func(c2, u);
}

static void test_hmac(mend_crypto *c, const signal_crypto_provider *p)
{
	size_t i;
	int round;

	/* the second round reuses pooled handles */
	for (round = 0; round < 2; round++)
		for (i = 0; i < sizeof(hmac_vecs) / sizeof(hmac_vecs[0]); i++)
			test_hmac_vec(c, p, &hmac_vecs[i]);
	test_hmac_again(p);
	test_hmac_interleaved(p);
	test_hmac_vec(c, p, &hmac_vecs[2]);
}

/* ---- HKDF-SHA-256 (RFC 5869) ---- */

static void test_hkdf(void)
{
	uint8_t ikm[80], salt[80], info[80], out[82];
	size_t i;
	int ret;

	memset(ikm, 0x0b, 22);
	unhex("000102030405060708090a0b0c", salt, sizeof(salt));
	unhex("f0f1f2f3f4f5f6f7f8f9", info, sizeof(info));
	ret = mend_hkdf_sha256(salt, 13, ikm, 22, info, 10, out, 42);
	TAP_OK(ret == MEND_OK &&
	           eq_hex(out, 42,
	                  "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf3"
	                  "4007208d5b887185865"),
	       "HKDF RFC 5869 TC1");

	for (i = 0; i < 80; i++) {
		ikm[i] = (uint8_t)i;
		salt[i] = (uint8_t)(0x60 + i);
		info[i] = (uint8_t)(0xb0 + i);
	}
	ret = mend_hkdf_sha256(salt, 80, ikm, 80, info, 80, out, 82);
	TAP_OK(ret == MEND_OK &&
	           eq_hex(out, 82,
	                  "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a"
	                  "99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec"
	                  "3e87c14c01d5c1f3434f1d87"),
	       "HKDF RFC 5869 TC2 (long inputs)");

	memset(ikm, 0x0b, 22);
	ret = mend_hkdf_sha256(NULL, 0, ikm, 22, NULL, 0, out, 42);
	TAP_OK(ret == MEND_OK &&
	           eq_hex(out, 42,
	                  "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9"
	                  "d201395faa4b61a96c8"),
	       "HKDF RFC 5869 TC3 (no salt, no info)");
	ret = mend_hkdf_sha256(salt, 0, ikm, 22, info, 0, out, 42);
	TAP_OK(ret == MEND_OK &&
	           eq_hex(out, 42,
	                  "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9"
	                  "d201395faa4b61a96c8"),
	       "HKDF RFC 5869 TC3 (empty salt)");
	TAP_EQ(mend_hkdf_sha256(NULL, 0, ikm, 22, NULL, 0, out, 255 * 32 + 1), MEND_ERR_INVALID_ARG,
	       "HKDF: more than 255*32 bytes refused");
}

/* ---- SHA-512 through the provider (FIPS 180-2) ---- */

static int provider_sha512(const signal_crypto_provider *p, const char *msg, uint8_t out[64])
{
	signal_buffer *buf = NULL;
	void *ctx = NULL;
	int ret;

	ret = p->sha512_digest_init_func(&ctx, p->user_data);
	if (ret)
		goto out;
	ret = p->sha512_digest_update_func(ctx, (const uint8_t *)msg, strlen(msg), p->user_data);
	if (!ret)
		ret = p->sha512_digest_final_func(ctx, &buf, p->user_data);
	if (!ret && signal_buffer_len(buf) == 64)
		memcpy(out, signal_buffer_data(buf), 64);
	else if (!ret)
		ret = -1;
	signal_buffer_free(buf);
	p->sha512_digest_cleanup_func(ctx, p->user_data);
out:
	return ret;
}

static void test_sha512(const signal_crypto_provider *p)
{
	static const char abc[] =
	    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
	static const char empty[] =
	    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
	    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
	uint8_t out[64];
	int round;

	for (round = 0; round < 2; round++) { /* the second reuses the pooled handle */
		TAP_OK(provider_sha512(p, "abc", out) == 0 && eq_hex(out, 64, abc),
		       "SHA-512 \"abc\" (round %d)", round + 1);
		TAP_OK(provider_sha512(p, "", out) == 0 && eq_hex(out, 64, empty),
		       "SHA-512 empty string (round %d)", round + 1);
	}
}

/* ---- AES-CBC-PKCS5 and AES-CTR through the provider (SP 800-38A) ---- */

#define SP_KEY "2b7e151628aed2a6abf7158809cf4f3c"
#define SP_PT                                                                                      \
	"6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e"        \
	"5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"

static int prov_crypt(const signal_crypto_provider *p, int enc, int cipher, const uint8_t *key,
                      const uint8_t *iv, const uint8_t *in, size_t len, signal_buffer **out)
{
	*out = NULL;
	return (enc ? p->encrypt_func : p->decrypt_func)(out, cipher, key, 16, iv, 16, in, len,
	                                                 p->user_data);
}

static void test_cbc_vectors(const signal_crypto_provider *p)
{
	uint8_t key[16], iv[16], pt[64];
	signal_buffer *ct = NULL, *back = NULL;
	int ret;

	unhex(SP_KEY, key, sizeof(key));
	unhex("000102030405060708090a0b0c0d0e0f", iv, sizeof(iv));
	unhex(SP_PT, pt, sizeof(pt));
	ret = prov_crypt(p, 1, SG_CIPHER_AES_CBC_PKCS5, key, iv, pt, 64, &ct);
	TAP_OK(ret == 0 && ct && signal_buffer_len(ct) == 80, "CBC: 64 bytes pad to 80");
	TAP_OK(ct &&
	           eq_hex(signal_buffer_data(ct), 64,
	                  "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b"
	                  "8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"),
	       "CBC: SP 800-38A F.2.1 AES-128 ciphertext");
	if (ct)
		ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 80,
		                 &back);
	TAP_OK(ct && ret == 0 && back && signal_buffer_len(back) == 64 &&
	           memcmp(signal_buffer_data(back), pt, 64) == 0,
	       "CBC: F.2.1 decrypts back, padding stripped");
	signal_buffer_free(ct);
	signal_buffer_free(back);
}

static void test_cbc_padding(const signal_crypto_provider *p)
{
	static const size_t lens[] = {0, 1, 15, 16, 17};
	uint8_t key[16], iv[16], pt[32];
	signal_buffer *ct, *back;
	size_t i, want;
	int ret;

	memset(key, 7, sizeof(key));
	memset(iv, 9, sizeof(iv));
	memset(pt, 'x', sizeof(pt));
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		want = (lens[i] / 16 + 1) * 16;
		ret = prov_crypt(p, 1, SG_CIPHER_AES_CBC_PKCS5, key, iv, pt, lens[i], &ct);
		TAP_OK(ret == 0 && signal_buffer_len(ct) == want, "CBC: %zu bytes encrypt to %zu",
		       lens[i], want);
		back = NULL;
		if (ret == 0)
			ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv,
			                 signal_buffer_data(ct), signal_buffer_len(ct), &back);
		TAP_OK(ret == 0 && back && signal_buffer_len(back) == lens[i] &&
		           memcmp(signal_buffer_data(back), pt, lens[i]) == 0,
		       "CBC: %zu bytes round trip", lens[i]);
		signal_buffer_free(ct);
		signal_buffer_free(back);
	}
}

/* Encrypts one raw block with CBC and a zero IV: a chosen last block. */
static signal_buffer *cbc_raw_block(const signal_crypto_provider *p, const uint8_t *key,
                                    const uint8_t *iv, const uint8_t block[16])
{
	signal_buffer *ct = NULL;

	prov_crypt(p, 1, SG_CIPHER_AES_CBC_PKCS5, key, iv, block, 16, &ct);
	return ct; /* first 16 bytes: the block encrypted; then a full pad block */
}

static void test_cbc_bad(const signal_crypto_provider *p)
{
	uint8_t key[16], iv[16], blk[16];
	signal_buffer *ct, *out;
	int ret;

	memset(key, 3, sizeof(key));
	memset(iv, 0, sizeof(iv));
	/* last byte 4 but one of the other pad bytes wrong: every byte is checked */
	memset(blk, 4, sizeof(blk));
	blk[12] = 5;
	ct = cbc_raw_block(p, key, iv, blk);
	ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 16, &out);
	TAP_EQ(ret, SG_ERR_UNKNOWN, "CBC: a wrong inner padding byte refused");
	TAP_OK(out == NULL, "CBC: no output on bad padding");
	signal_buffer_free(ct);

	blk[12] = 4;
	ct = cbc_raw_block(p, key, iv, blk);
	ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 16, &out);
	TAP_OK(ret == 0 && signal_buffer_len(out) == 12, "CBC: the same block padded right is 12");
	signal_buffer_free(out);
	signal_buffer_free(ct);

	memset(blk, 0, sizeof(blk));
	ct = cbc_raw_block(p, key, iv, blk);
	ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 16, &out);
	TAP_EQ(ret, SG_ERR_UNKNOWN, "CBC: pad byte 0 refused");
	signal_buffer_free(ct);

	memset(blk, 17, sizeof(blk));
	ct = cbc_raw_block(p, key, iv, blk);
	ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 16, &out);
	TAP_EQ(ret, SG_ERR_UNKNOWN, "CBC: pad byte 17 refused");

	ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 31, &out);
	TAP_OK(ret < 0 && out == NULL, "CBC: 31-byte ciphertext refused");
	ret = prov_crypt(p, 0, SG_CIPHER_AES_CBC_PKCS5, key, iv, signal_buffer_data(ct), 0, &out);
	TAP_OK(ret < 0 && out == NULL, "CBC: empty ciphertext refused");
	signal_buffer_free(ct);

	out = NULL;
	ret =
	    p->encrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, key, 15, iv, 16, blk, 16, p->user_data);
	TAP_EQ(ret, SG_ERR_INVAL, "provider: 15-byte key refused");
	ret = p->encrypt_func(&out, 99, key, 16, iv, 16, blk, 16, p->user_data);
	TAP_EQ(ret, SG_ERR_INVAL, "provider: unknown cipher refused");
}

static void test_ctr(const signal_crypto_provider *p)
{
	uint8_t key[16], ctr[16], pt[64];
	signal_buffer *ct = NULL, *back = NULL;
	int ret;

	unhex(SP_KEY, key, sizeof(key));
	unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", ctr, sizeof(ctr));
	unhex(SP_PT, pt, sizeof(pt));
	ret = prov_crypt(p, 1, SG_CIPHER_AES_CTR_NOPADDING, key, ctr, pt, 64, &ct);
	TAP_OK(ret == 0 && ct &&
	           eq_hex(signal_buffer_data(ct), signal_buffer_len(ct),
	                  "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df"
	                  "3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"),
	       "CTR: SP 800-38A F.5.1 AES-128 ciphertext");
	if (ct)
		ret = prov_crypt(p, 0, SG_CIPHER_AES_CTR_NOPADDING, key, ctr,
		                 signal_buffer_data(ct), 40, &back);
	TAP_OK(ct && ret == 0 && back && signal_buffer_len(back) == 40 &&
	           memcmp(signal_buffer_data(back), pt, 40) == 0,
	       "CTR: F.5.1 decrypts back (40 bytes, no padding)");
	signal_buffer_free(ct);
	signal_buffer_free(back);
}

/* ---- random ---- */

static void test_random(const signal_crypto_provider *p)
{
	uint8_t a[32], b[32], zero[32] = {0};

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	TAP_EQ(mend_random(a, sizeof(a)), MEND_OK, "random: first draw");
	TAP_EQ(p->random_func(b, sizeof(b), p->user_data), 0, "random: provider draw");
	TAP_OK(memcmp(a, b, 32) != 0, "random: two draws differ");
	TAP_OK(memcmp(a, zero, 32) != 0 && memcmp(b, zero, 32) != 0, "random: not all zero");
}

int main(void)
{
	signal_crypto_provider p;
	mend_crypto *c = NULL;

	if (mend_crypto_global_init() != MEND_OK || mend_crypto_global_init() != MEND_OK)
		TAP_BAIL("mend_crypto_global_init failed");
	if (mend_crypto_new(&c) != MEND_OK)
		TAP_BAIL("mend_crypto_new failed");
	mend_crypto_fill_provider(c, &p);
	TAP_OK(p.user_data == c, "provider: user_data is the cache");

	test_gcm(c);
	test_hmac(c, &p);
	test_hkdf();
	test_sha512(&p);
	test_cbc_vectors(&p);
	test_cbc_padding(&p);
	test_cbc_bad(&p);
	test_ctr(&p);
	test_random(&p);

	/* the same provider without a cache: one-shot handles everywhere */
	mend_crypto_fill_provider(NULL, &p);
	test_hmac_interleaved(&p);
	test_sha512(&p);
	test_cbc_vectors(&p);
	test_ctr(&p);

	mend_crypto_free(c);
	mend_crypto_free(NULL);
	return tap_done();
}
