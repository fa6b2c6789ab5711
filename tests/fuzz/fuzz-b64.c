/*
 * fuzz-b64.c - base64 (src/core/b64.c): the input as text is decoded; what
 * decodes encodes back to the same text less its white space. The input as
 * bytes is encoded and must decode to itself.
 */
#include "config.h"

#include <string.h>
#include "mend/mend.h"
#include "b64.h"
#include "fuzz.h"

#define LIMIT (64 * 1024)

/* `text` without space, tab, CR and LF (what the decoder skips). g_free. */
static char *squeeze(const char *text)
{
	char *out = g_malloc(strlen(text) + 1), *o = out;

	for (; *text; text++)
		if (!strchr(" \t\r\n", *text))
			*o++ = *text;
	*o = '\0';
	return out;
}

static void decode(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size), *enc, *plain;
	uint8_t *out = NULL;
	size_t len = 0;

	if (mend_b64_decode(text, LIMIT, &out, &len) < 0) {
		FUZZ_CHECK(out == NULL);
		g_free(text);
		return;
	}
	FUZZ_CHECK(out != NULL && len <= LIMIT);
	enc = mend_b64_encode(out, len);
	plain = squeeze(text);
	FUZZ_CHECK(enc && strcmp(enc, plain) == 0);
	g_free(plain);
	g_free(enc);
	g_free(out);
	g_free(text);
}

static void round_trip(const uint8_t *data, size_t size)
{
	char *enc = mend_b64_encode(data, size);
	uint8_t *out = NULL;
	size_t len = 0;

	FUZZ_CHECK(enc != NULL);
	FUZZ_CHECK(mend_b64_decode(enc, size, &out, &len) == MEND_OK);
	FUZZ_CHECK(len == size && (!size || memcmp(out, data, size) == 0));
	g_free(out);
	g_free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode(data, size);
	round_trip(data, size);
	return 0;
}
