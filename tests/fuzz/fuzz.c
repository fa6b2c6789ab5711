/*
 * fuzz.c - helpers of the fuzz targets (fuzz.h).
 */
#include "config.h"

#include <string.h>
#include "fuzz.h"

xmpp_ctx_t *fuzz_xmpp_ctx(void)
{
	static xmpp_ctx_t *ctx;

	if (!ctx)
		ctx = xmpp_ctx_new(NULL, NULL);
	FUZZ_CHECK(ctx != NULL);
	return ctx;
}

char *fuzz_text(const uint8_t *data, size_t size)
{
	return g_strndup((const char *)data, size);
}

xmpp_stanza_t *fuzz_xml(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	xmpp_stanza_t *el = xmpp_stanza_new_from_string(fuzz_xmpp_ctx(), text);

	g_free(text);
	return el;
}

/* Whether the element is named `name`. */
static int fuzz_is(xmpp_stanza_t *el, const char *name)
{
	const char *n = xmpp_stanza_get_name(el);

	return n && strcmp(n, name) == 0;
}

int fuzz_xml_route(const uint8_t *data, size_t size, const fuzz_route *routes)
{
	xmpp_stanza_t *el = fuzz_xml(data, size);
	const fuzz_route *r;

	if (!el)
		return 0;
	for (r = routes; r->name && !fuzz_is(el, r->name); r++)
		;
	if (r->name)
		r->check(el);
	xmpp_stanza_release(el);
	return 0;
}
