/*
 * b64.c - base64 (RFC 4648 §4, standard alphabet, padded) for the text of
 * OMEMO elements.
 *
 * The decoder is strict where GLib's g_base64_decode() is lenient: it skips
 * only white space (space, tab, CR, LF: real clients wrap long values,
 * DESIGN §3) and rejects every other character outside the alphabet, a
 * length that is not a multiple of four, '=' anywhere but in the last one or
 * two places, and non-zero pad bits (RFC 4648 §3.5), so that a truncated or
 * altered value is an error instead of a shorter key.
 */
#include "config.h"

#include <glib.h>

#include "mend/mend.h"
#include "b64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define B64_WS  -2 /* skipped */
#define B64_PAD -3 /* '=' */
#define B64_BAD -1

size_t mend_b64_encode_into(char *out, const uint8_t *data, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)data[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

char *mend_b64_encode(const uint8_t *data, size_t len)
{
	char *out;

	if (!data && len)
		return NULL;
	if (len > (G_MAXSIZE - 1) / 4 * 3 - 3)
		return NULL;
	out = g_try_malloc(MEND_B64_LEN(len) + 1);
	if (!out)
		return NULL;
	out[mend_b64_encode_into(out, data, len)] = '\0';
	return out;
}

/* Each byte's value: 0..63 in the alphabet, 64 white space, 65 '=', 255 anything else. */
/* clang-format off */
static const uint8_t b64_table[256] = {
	255, 255, 255, 255, 255, 255, 255, 255, 255,  64,  64, 255, 255,  64, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	 64, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
	 52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  65, 255, 255,
	255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
	 15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
	255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
	 41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};
/* clang-format on */

/* The value of one character: 0..63, or B64_WS, B64_PAD, B64_BAD. */
static int b64_value(unsigned char c)
{
	int v = b64_table[c];

	if (v < 64)
		return v;
	return v == 64 ? B64_WS : v == 65 ? B64_PAD : B64_BAD;
}

/*
 * First pass: checks every character and where the padding is, and gives
 * the decoded length. Padding is one or two '=' closing the last quantum.
 */
static int b64_measure(const char *text, size_t *decoded_len)
{
	size_t n = 0, pad = 0;
	const char *p;

	for (p = text; *p; p++) {
		int v;

		/* the common case: runs of alphabet characters, four at a time (in order: a NUL
		 * stops the reads) */
		while (!pad && b64_table[(unsigned char)p[0]] < 64 &&
		       b64_table[(unsigned char)p[1]] < 64 && b64_table[(unsigned char)p[2]] < 64 &&
		       b64_table[(unsigned char)p[3]] < 64) {
			p += 4;
			n += 4;
		}
		if (!*p)
			break;
		v = b64_value((unsigned char)*p);
		if (v == B64_WS)
			continue;
		if (v == B64_BAD)
			return MEND_ERR_BAD_BASE64;
		if (v == B64_PAD)
			pad++;
		else if (pad)
			return MEND_ERR_BAD_BASE64; /* data after '=' */
		n++;
	}
	if (n % 4 != 0 || pad > 2)
		return MEND_ERR_BAD_BASE64;
	*decoded_len = n / 4 * 3 - pad;
	return 0;
}

/* Appends the bytes of one quantum of 4 - pad characters; checks the pad bits. */
static int b64_flush(const int q[4], size_t pad, uint8_t *out, size_t *o)
{
	uint32_t v = (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | q[3];

	if (pad == 2 && (v & 0xffff) != 0)
		return MEND_ERR_BAD_BASE64;
	if (pad == 1 && (v & 0xff) != 0)
		return MEND_ERR_BAD_BASE64;
	out[(*o)++] = v >> 16 & 0xff;
	if (pad < 2)
		out[(*o)++] = v >> 8 & 0xff;
	if (pad < 1)
		out[(*o)++] = v & 0xff;
	return 0;
}

/* Second pass over text already checked by b64_measure(). */
static int b64_convert(const char *text, uint8_t *out)
{
	int q[4];
	size_t k = 0, pad = 0, o = 0;
	const char *p;
	int err;

	for (p = text; *p; p++) {
		int v;

		/* the common case: a whole quantum of alphabet characters, no white space */
		while (k == 0 && b64_table[(unsigned char)p[0]] < 64 &&
		       b64_table[(unsigned char)p[1]] < 64 && b64_table[(unsigned char)p[2]] < 64 &&
		       b64_table[(unsigned char)p[3]] < 64) { /* in order: a NUL stops the reads */
			uint32_t w = (uint32_t)b64_table[(unsigned char)p[0]] << 18 |
			             (uint32_t)b64_table[(unsigned char)p[1]] << 12 |
			             (uint32_t)b64_table[(unsigned char)p[2]] << 6 |
			             b64_table[(unsigned char)p[3]];

			out[o++] = w >> 16 & 0xff;
			out[o++] = w >> 8 & 0xff;
			out[o++] = w & 0xff;
			p += 4;
		}
		if (!*p)
			break;
		v = b64_value((unsigned char)*p);
		if (v == B64_WS)
			continue;
		if (v == B64_PAD) {
			pad++;
			v = 0;
		}
		q[k++] = v;
		if (k < 4)
			continue;
		err = b64_flush(q, pad, out, &o);
		if (err)
			return err;
		k = 0;
	}
	return 0;
}

int mend_b64_decode(const char *text, size_t max_len, uint8_t **out, size_t *out_len)
{
	size_t len = 0;
	uint8_t *buf;
	int err;

	if (!text || !out || !out_len)
		return MEND_ERR_INVALID_ARG;
	*out = NULL;
	*out_len = 0;
	err = b64_measure(text, &len);
	if (err)
		goto out;
	if (len > max_len) {
		err = MEND_ERR_TOO_LARGE;
		goto out;
	}
	buf = g_try_malloc(len ? len : 1);
	if (!buf) {
		err = MEND_ERR_NOMEM;
		goto out;
	}
	err = b64_convert(text, buf);
	if (err)
		goto free_buf;
	*out = buf;
	*out_len = len;
	buf = NULL;
free_buf:
	g_free(buf);
out:
	return err;
}
