/*
 * b64.h - base64 (RFC 4648 §4) for OMEMO elements. Decoding is strict about
 * the alphabet and padding (a truncated value is rejected) but skips white
 * space, since real clients wrap long values (DESIGN §3).
 */
#ifndef MEND_CORE_B64_H
#define MEND_CORE_B64_H

#include <stddef.h>
#include <stdint.h>

/* Encodes `len` bytes; returns a NUL-terminated string (g_free) or NULL. */
char *mend_b64_encode(const uint8_t *data, size_t len);
/* The encoded length of `len` bytes (no NUL). */
#define MEND_B64_LEN(len) (((len) + 2) / 3 * 4)
/* Encodes into out[MEND_B64_LEN(len)] (no NUL written); returns how many chars. */
size_t mend_b64_encode_into(char *out, const uint8_t *data, size_t len);

/*
 * Decodes `text` into a new buffer (*out, g_free'd by the caller; never NULL
 * on success, even for empty input) of *out_len bytes.
 * MEND_ERR_BAD_BASE64 on a bad character, bad padding or a length that is not
 * a multiple of four once white space is removed. MEND_ERR_TOO_LARGE when the
 * decoded value would exceed `max_len`.
 */
int mend_b64_decode(const char *text, size_t max_len, uint8_t **out, size_t *out_len);

#endif
