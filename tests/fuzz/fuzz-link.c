/*
 * fuzz-link.c - the aesgcm:// link of a received file (src/core/files.c,
 * XEP-0454): the input is a message body. A link that parses has an
 * https:// URL, a host, a safe name, a 12- or 16-byte IV, and formats back
 * to a link that parses to the same. The input as a URL path gives a safe
 * file name (files.h: never empty, no '/' or '\\', no control character,
 * not starting with '.', at most 200 bytes).
 */
#include "config.h"

#include <string.h>
#include "mend/mend.h"
#include "files.h"
#include "fuzz.h"

static void check_name(const char *name)
{
	const char *p;

	FUZZ_CHECK(name && *name && name[0] != '.' && strlen(name) <= 200);
	for (p = name; *p; p++)
		FUZZ_CHECK(*p != '/' && *p != '\\' && (unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void check_link(const char *text)
{
	mend_file_link *l = NULL, *again = NULL;
	char *formatted;

	if (mend_file_link_parse(text, &l) < 0) {
		FUZZ_CHECK(l == NULL);
		return;
	}
	FUZZ_CHECK(g_str_has_prefix(l->url, "https://") && l->host && *l->host);
	FUZZ_CHECK(l->iv_len == 12 || l->iv_len == 16);
	check_name(l->name);
	formatted = mend_file_link_format(l->url, l->iv, l->iv_len, l->key);
	FUZZ_CHECK(formatted != NULL);
	FUZZ_CHECK(mend_file_link_parse(formatted, &again) == MEND_OK);
	FUZZ_CHECK(strcmp(again->url, l->url) == 0 && strcmp(again->host, l->host) == 0 &&
	           strcmp(again->name, l->name) == 0 && again->iv_len == l->iv_len &&
	           !memcmp(again->iv, l->iv, l->iv_len) && !memcmp(again->key, l->key, 32));
	mend_file_link_free(again);
	g_free(formatted);
	mend_file_link_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size), *name;

	check_link(text);
	name = mend_file_safe_name(text);
	check_name(name);
	g_free(name);
	g_free(text);
	return 0;
}
