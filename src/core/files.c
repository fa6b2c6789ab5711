/*
 * files.c - encrypted files as XEP-0454 (OMEMO Media Sharing) shares them:
 * the aesgcm:// link (parsed strictly), AES-256-GCM over a stream (the tag
 * after the data), safe file names from URLs, and placing a finished file in
 * a folder without ever replacing another one. HTTP is in files_http.c, the
 * upload service in files_upload.c.
 */
#include "config.h"

#include <errno.h>
#include <libintl.h>
#include <string.h>
#include <unistd.h>
#include <gcrypt.h>
#include "internal.h"
#include "files.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define LINK_SCHEME  "aesgcm://"
#define NAME_MAX_LEN 200
#define GCM_BLOCK    16

/* --- the link (XEP-0454 §3) ---------------------------------------------------- */

static int hex_digit(char ch)
{
	return g_ascii_xdigit_value(ch);
}

/* `len` hex digits into len/2 bytes; 0 when all are hex. */
static int unhex(const char *s, size_t len, uint8_t *out)
{
	size_t i;

	for (i = 0; i < len; i += 2) {
		if (hex_digit(s[i]) < 0 || hex_digit(s[i + 1]) < 0)
			return -1;
		out[i / 2] = (uint8_t)(hex_digit(s[i]) << 4 | hex_digit(s[i + 1]));
	}
	return 0;
}

/* The host: letters, digits, '.', '-', or a bracketed IPv6 address; a port may follow. */
static char *host_of(const char *authority, size_t len)
{
	size_t n = 0;

	if (len && authority[0] == '[') {
		while (n < len && authority[n] != ']')
			n++;
		if (n == len)
			return NULL;
		n++;
	} else {
		while (n < len && (g_ascii_isalnum(authority[n]) || authority[n] == '.' ||
		                   authority[n] == '-'))
			n++;
	}
	if (n == 0 || (n < len && authority[n] != ':'))
		return NULL; /* user info, odd characters */
	return g_strndup(authority, n);
}

static int fragment_of(mend_file_link *l, const char *frag)
{
	size_t len = strlen(frag);

	/* XEP-0454 §3: 24 or 32 hex digits of IV (12 or 16 bytes), then 64 of key */
	if (len != 24 + 64 && len != 32 + 64)
		return MEND_ERR_MALFORMED;
	l->iv_len = (len - 64) / 2;
	if (unhex(frag, l->iv_len * 2, l->iv) < 0 || unhex(frag + l->iv_len * 2, 64, l->key) < 0)
		return MEND_ERR_MALFORMED;
	return MEND_OK;
}

static int parse_link(mend_file_link *l, const char *t)
{
	const char *rest = t + strlen(LINK_SCHEME), *hash = strchr(rest, '#'), *p;
	size_t auth_len = strcspn(rest, "/?#");
	char *path;

	for (p = t; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return MEND_ERR_MALFORMED; /* URLs are ASCII without spaces */
	if (!hash || strchr(hash + 1, '#'))
		return MEND_ERR_MALFORMED;
	l->host = host_of(rest, auth_len);
	if (!l->host || fragment_of(l, hash + 1) < 0)
		return MEND_ERR_MALFORMED;
	l->url = g_strdup_printf("https://%.*s", (int)(hash - rest), rest);
	p = rest + auth_len;
	path = *p == '/' ? g_strndup(p, strcspn(p, "?#")) : NULL;
	l->name = mend_file_safe_name(path);
	g_free(path);
	return MEND_OK;
}

int mend_file_link_parse(const char *text, mend_file_link **out)
{
	mend_file_link *l;
	const char *start = text;
	char *t;
	int r;

	*out = NULL;
	if (!text)
		return MEND_ERR_INVALID_ARG;
	/* every message shown asks: most are not links, told without a copy (as g_strchug) */
	while (g_ascii_isspace(*start))
		start++;
	if (g_ascii_strncasecmp(start, LINK_SCHEME, strlen(LINK_SCHEME)) != 0)
		return MEND_ERR_MALFORMED;
	t = g_strchomp(g_strdup(start));
	l = g_new0(mend_file_link, 1);
	r = parse_link(l, t);
	g_free(t);
	if (r < 0)
		mend_file_link_free(l);
	else
		*out = l;
	return r;
}

void mend_file_link_free(mend_file_link *link)
{
	if (!link)
		return;
	explicit_bzero(link->key, sizeof(link->key));
	g_free(link->url);
	g_free(link->host);
	g_free(link->name);
	g_free(link);
}

char *mend_file_link_format(const char *https_url, const uint8_t *iv, size_t iv_len,
                            const uint8_t key[MEND_FILE_KEY_LEN])
{
	GString *s;
	size_t i;

	if (!https_url || g_ascii_strncasecmp(https_url, "https://", 8) != 0 ||
	    strchr(https_url, '#'))
		return NULL;
	s = g_string_new(LINK_SCHEME);
	g_string_append(s, https_url + 8);
	g_string_append_c(s, '#');
	for (i = 0; i < iv_len; i++)
		g_string_append_printf(s, "%02x", iv[i]);
	for (i = 0; i < MEND_FILE_KEY_LEN; i++)
		g_string_append_printf(s, "%02x", key[i]);
	return g_string_free(s, FALSE);
}

/* --- safe names ------------------------------------------------------------------- */

/* Cuts `s` to at most max bytes on a character boundary. */
static void utf8_cut(char *s, size_t max)
{
	char *end;

	if (strlen(s) <= max)
		return;
	end = g_utf8_find_prev_char(s, s + max + 1);
	*(end ? end : s) = '\0';
}

char *mend_file_safe_name(const char *url_path)
{
	const char *seg = url_path ? strrchr(url_path, '/') : NULL;
	char *dec, *valid, *p, *name;

	dec = g_uri_unescape_string(seg ? seg + 1 : (url_path ? url_path : ""), NULL);
	if (!dec) /* a bad %-escape: the segment as it stands */
		dec = g_strdup(seg ? seg + 1 : (url_path ? url_path : ""));
	/* a decoded %2F or %5C must not make a path either */
	p = MAX(strrchr(dec, '/'), strrchr(dec, '\\'));
	valid = g_utf8_make_valid(p ? p + 1 : dec, -1);
	g_free(dec);
	for (p = valid; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ':')
			*p = '_';
	g_strstrip(valid);
	for (p = valid; *p == '.' || *p == ' ' || *p == '-'; p++)
		;
	utf8_cut(p, NAME_MAX_LEN);
	name = g_strdup(*p ? p : "file");
	g_free(valid);
	return name;
}

/* --- AES-256-GCM over a stream ---------------------------------------------------- */

struct mend_file_cipher {
	gcry_cipher_hd_t h;
	int decrypt;
	GByteArray *pend; /* bytes not processed yet (whole blocks go; decrypting, 16 stay) */
	mend_file_sink sink;
	void *data;
	uint64_t out;
};

int mend_file_cipher_new(mend_file_cipher **out, int decrypt, const uint8_t *key, const uint8_t *iv,
                         size_t iv_len, mend_file_sink sink, void *data)
{
	mend_file_cipher *c;

	*out = NULL;
	if (mend_crypto_global_init() < 0)
		return MEND_ERR_CRYPTO;
	c = g_new0(mend_file_cipher, 1);
	if (gcry_cipher_open(&c->h, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM, GCRY_CIPHER_SECURE) ||
	    gcry_cipher_setkey(c->h, key, MEND_FILE_KEY_LEN) ||
	    gcry_cipher_setiv(c->h, iv, iv_len)) {
		if (c->h)
			gcry_cipher_close(c->h);
		g_free(c);
		return MEND_ERR_CRYPTO;
	}
	c->decrypt = decrypt;
	c->pend = g_byte_array_new();
	c->sink = sink;
	c->data = data;
	*out = c;
	return MEND_OK;
}

/* Runs the first n pending bytes through the cipher (in place) and hands them on. */
static int process(mend_file_cipher *c, size_t n)
{
	gcry_error_t e;
	int r;

	if (n == 0)
		return MEND_OK;
	e = c->decrypt ? gcry_cipher_decrypt(c->h, c->pend->data, n, NULL, 0)
	               : gcry_cipher_encrypt(c->h, c->pend->data, n, NULL, 0);
	if (e)
		return MEND_ERR_CRYPTO;
	r = c->sink(c->pend->data, n, c->data);
	c->out += n;
	g_byte_array_remove_range(c->pend, 0, (guint)n);
	return r < 0 ? r : MEND_OK;
}

int mend_file_cipher_feed(mend_file_cipher *c, const uint8_t *buf, size_t len)
{
	size_t keep = c->decrypt ? MEND_GCM_TAG_LEN : 0, n;

	g_byte_array_append(c->pend, buf, (guint)len);
	if (c->pend->len <= keep)
		return MEND_OK;
	/* libgcrypt takes whole blocks until the last call */
	n = (c->pend->len - keep) / GCM_BLOCK * GCM_BLOCK;
	return process(c, n);
}

int mend_file_cipher_finish(mend_file_cipher *c)
{
	uint8_t tag[MEND_GCM_TAG_LEN];
	size_t n;
	int r;

	if (c->decrypt && c->pend->len < MEND_GCM_TAG_LEN)
		return MEND_ERR_MALFORMED; /* not even a tag */
	n = c->pend->len - (c->decrypt ? MEND_GCM_TAG_LEN : 0);
	r = process(c, n);
	if (r < 0)
		return r;
	if (c->decrypt)
		return gcry_cipher_checktag(c->h, c->pend->data, MEND_GCM_TAG_LEN)
		           ? MEND_ERR_PAYLOAD_AUTH
		           : MEND_OK;
	if (gcry_cipher_gettag(c->h, tag, sizeof(tag)))
		return MEND_ERR_CRYPTO;
	r = c->sink(tag, sizeof(tag), c->data);
	return r < 0 ? r : MEND_OK;
}

uint64_t mend_file_cipher_out(const mend_file_cipher *c)
{
	return c->out;
}

void mend_file_cipher_free(mend_file_cipher *c)
{
	if (!c)
		return;
	gcry_cipher_close(c->h);
	if (c->pend->len)
		explicit_bzero(c->pend->data, c->pend->len);
	g_byte_array_unref(c->pend);
	g_free(c);
}

/* --- content types ------------------------------------------------------------------ */

const char *mend_file_mime_guess(const char *name)
{
	static const char *const table[][2] = {
	    {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"}, {"png", "image/png"},
	    {"gif", "image/gif"},       {"webp", "image/webp"}, {"heic", "image/heic"},
	    {"mp4", "video/mp4"},       {"webm", "video/webm"}, {"ogg", "audio/ogg"},
	    {"opus", "audio/ogg"},      {"m4a", "audio/mp4"},   {"mp3", "audio/mpeg"},
	    {"pdf", "application/pdf"}, {"txt", "text/plain"},  {"zip", "application/zip"},
	};
	const char *dot = name ? strrchr(name, '.') : NULL;
	size_t i;

	for (i = 0; dot && i < G_N_ELEMENTS(table); i++)
		if (g_ascii_strcasecmp(dot + 1, table[i][0]) == 0)
			return table[i][1];
	return NULL;
}

/* --- progress for the hosts' windows --------------------------------------------- */

#define PROGRESS_FROM (1024 * 1024) /* smaller files go too fast to be worth a line */

char *mend_file_progress_text(const char *name, uint64_t done, uint64_t total, int *last)
{
	int quarter;
	char *a, *b, *s;

	if (!name || !last || total < PROGRESS_FROM || done > total)
		return NULL;
	quarter = (int)(done * 4 / total);
	if (quarter <= *last)
		return NULL;
	*last = quarter;
	a = g_format_size(done);
	b = g_format_size(total);
	s = g_strdup_printf(_("mend: %s: %d%% sent (%s of %s)"), name, quarter * 25, a, b);
	g_free(a);
	g_free(b);
	return s;
}
