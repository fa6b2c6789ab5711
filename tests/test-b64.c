/*
 * test-b64.c - base64 (src/core/b64.c): the RFC 4648 §10 vectors both ways,
 * wrapped input, and every way a value can be damaged in transit.
 */
#include "config.h"

#include <glib.h>

#include "mend/mend.h"
#include "b64.h"
#include "tap.h"

static const struct {
	const char *plain;
	const char *encoded;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

/* Decodes `text` and compares with `want` (NUL-terminated). */
static int decodes_to(const char *text, const char *want)
{
	uint8_t *out = NULL;
	size_t len = 0;
	int ok;

	if (mend_b64_decode(text, 1024, &out, &len) != 0)
		return 0;
	ok = out && len == strlen(want) && memcmp(out, want, len) == 0;
	g_free(out);
	return ok;
}

/* The code mend_b64_decode() returns; checks *out is NULL after an error. */
static int decode_code(const char *text, size_t max_len)
{
	uint8_t *out = (uint8_t *)"x";
	size_t len = 7;
	int r = mend_b64_decode(text, max_len, &out, &len);

	if (r == 0) {
		g_free(out);
		return r;
	}
	return out == NULL && len == 0 ? r : 1000;
}

static void test_vectors(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(rfc4648); i++) {
		const char *p = rfc4648[i].plain;
		char *enc = mend_b64_encode((const uint8_t *)p, strlen(p));

		TAP_OK(enc && strcmp(enc, rfc4648[i].encoded) == 0, "encode \"%s\" -> \"%s\"", p,
		       rfc4648[i].encoded);
		g_free(enc);
		TAP_OK(decodes_to(rfc4648[i].encoded, p), "decode \"%s\" -> \"%s\"",
		       rfc4648[i].encoded, p);
	}
}

static void test_empty(void)
{
	uint8_t *out = NULL;
	size_t len = 1;

	TAP_EQ(mend_b64_decode("", 0, &out, &len), 0, "empty input decodes");
	TAP_OK(out != NULL && len == 0, "empty input: *out not NULL, length 0");
	g_free(out);
	TAP_EQ(mend_b64_decode(" \r\n\t", 0, &out, &len), 0, "white space only decodes");
	TAP_OK(out != NULL && len == 0, "white space only: empty");
	g_free(out);
}

static void test_whitespace(void)
{
	TAP_OK(decodes_to("Zm9v\nYmFy", "foobar"), "LF between quanta");
	TAP_OK(decodes_to("Zm9vYm\r\nFy", "foobar"), "CRLF inside a quantum");
	TAP_OK(decodes_to("\n    Zm9v\n    YmE=\n  ", "fooba"), "indented, wrapped (XEP layout)");
	TAP_OK(decodes_to("Z m 9 v\tY g = =", "foob"), "spaces and tabs anywhere, even in padding");
}

/* White space at each place of a quantum that follows a whole one (the decoder reads
 * whole quanta at once when it can), and of the first. */
static void test_whitespace_each_place(void)
{
	static const char *const ws[] = {" ", "\t", "\r", "\n"};
	const char *quanta = "Zm9vYmFyYmF6"; /* foobarbaz */
	size_t at, w;

	for (w = 0; w < G_N_ELEMENTS(ws); w++)
		for (at = 0; at <= strlen(quanta); at++) {
			char *text =
			    g_strdup_printf("%.*s%s%s", (int)at, quanta, ws[w], quanta + at);

			TAP_OK(decodes_to(text, "foobarbaz"), "white space %u at %zu",
			       (unsigned)(unsigned char)ws[w][0], at);
			g_free(text);
		}
}

static void test_rejects(void)
{
	TAP_EQ(decode_code("Zm9vYmF", 64), MEND_ERR_BAD_BASE64, "truncated (7 chars)");
	TAP_EQ(decode_code("Zm9vY", 64), MEND_ERR_BAD_BASE64, "truncated (5 chars)");
	TAP_EQ(decode_code("Zm9=", 64), MEND_ERR_BAD_BASE64, "non-zero pad bits (Zm9=)");
	TAP_EQ(decode_code("Zh==", 64), MEND_ERR_BAD_BASE64, "non-zero pad bits (Zh==)");
	TAP_EQ(decode_code("Zm9v*mFy", 64), MEND_ERR_BAD_BASE64, "bad character '*'");
	TAP_EQ(decode_code("Zm9v-mFy", 64), MEND_ERR_BAD_BASE64, "URL-safe alphabet '-'");
	TAP_EQ(decode_code("Zm9v_mFy", 64), MEND_ERR_BAD_BASE64, "URL-safe alphabet '_'");
	TAP_EQ(decode_code("Zm9v\vYmFy", 64), MEND_ERR_BAD_BASE64, "vertical tab is not skipped");
	TAP_EQ(decode_code("Zm9v\xc3\xa9mFy", 64), MEND_ERR_BAD_BASE64, "non-ASCII byte");
	TAP_EQ(decode_code("Zg", 64), MEND_ERR_BAD_BASE64, "missing padding");
	TAP_EQ(decode_code("Zg=", 64), MEND_ERR_BAD_BASE64, "half the padding");
	TAP_EQ(decode_code("Zg===", 64), MEND_ERR_BAD_BASE64, "too much padding");
	TAP_EQ(decode_code("Z===", 64), MEND_ERR_BAD_BASE64, "three '='");
	TAP_EQ(decode_code("====", 64), MEND_ERR_BAD_BASE64, "only padding");
	TAP_EQ(decode_code("Zg==Zm9v", 64), MEND_ERR_BAD_BASE64, "'=' in the middle");
	TAP_EQ(decode_code("Zm=v", 64), MEND_ERR_BAD_BASE64, "'=' inside a quantum");
	TAP_EQ(decode_code("Zg==\n", 64), 0, "white space after the padding is fine");
	TAP_EQ(decode_code("Zm9vYmFyZm9vYm*y", 64), MEND_ERR_BAD_BASE64,
	       "a bad character after whole quanta (read four at a time)");
	TAP_EQ(decode_code("Zm9vYmFyZm9vYmF", 64), MEND_ERR_BAD_BASE64,
	       "truncated after whole quanta");
}

static void test_max_len(void)
{
	uint8_t *out = NULL;
	size_t len = 0;

	TAP_EQ(decode_code("Zm9vYmFy", 6), 0, "6 bytes within max_len 6");
	TAP_EQ(decode_code("Zm9vYmFy", 5), MEND_ERR_TOO_LARGE, "6 bytes over max_len 5");
	TAP_EQ(decode_code("Zm9vYmE=", 5), 0, "5 bytes (padded) within max_len 5");
	TAP_EQ(decode_code("Zm9vYmE=", 4), MEND_ERR_TOO_LARGE, "5 bytes over max_len 4");
	TAP_EQ(decode_code("Zg==", 0), MEND_ERR_TOO_LARGE, "1 byte over max_len 0");
	TAP_EQ(decode_code("Zm9*", 0), MEND_ERR_BAD_BASE64, "bad base64 reported before size");
	TAP_EQ(mend_b64_decode(NULL, 10, &out, &len), MEND_ERR_INVALID_ARG, "NULL text");
}

/* Every length 0..300 of every byte value goes through and back. */
static void test_round_trip(void)
{
	uint8_t buf[300];
	size_t n, i;
	int bad = 0;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 151 + 7);
	for (n = 0; n <= sizeof(buf); n++) {
		char *enc = mend_b64_encode(buf, n);
		uint8_t *dec = NULL;
		size_t len = 0;

		if (!enc || strlen(enc) != (n + 2) / 3 * 4 ||
		    mend_b64_decode(enc, n, &dec, &len) != 0 || len != n || memcmp(dec, buf, n))
			bad++;
		g_free(enc);
		g_free(dec);
	}
	TAP_EQ(bad, 0, "round trip of lengths 0..300, exact max_len");
}

/* Encoding agrees with GLib's encoder (a second opinion on the alphabet). */
static void test_against_glib(void)
{
	uint8_t buf[256];
	char *ours, *theirs;
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	ours = mend_b64_encode(buf, sizeof(buf));
	theirs = g_base64_encode(buf, sizeof(buf));
	TAP_OK(ours && strcmp(ours, theirs) == 0, "all 256 byte values encode as GLib does");
	g_free(ours);
	g_free(theirs);
}

int main(void)
{
	test_vectors();
	test_empty();
	test_whitespace();
	test_whitespace_each_place();
	test_rejects();
	test_max_len();
	test_round_trip();
	test_against_glib();
	return tap_done();
}
