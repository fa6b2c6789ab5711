/*
 * xmlutil.c - stanza helpers shared by the XEP codecs: children by name and
 * namespace, strict decimals, base64 text in and out, building elements.
 */
#include "config.h"

#include <string.h>
#include <glib.h>

#include "mend/mend.h"
#include "b64.h"
#include "xmlutil.h"

/* --- reading --------------------------------------------------------------- */

/*
 * The namespace of a child: its own xmlns, or (a stanza built in memory, not
 * parsed) its parent's. libstrophe's parser gives every element its xmlns.
 */
static const char *child_ns(xmpp_stanza_t *child, xmpp_stanza_t *parent)
{
	const char *ns = xmpp_stanza_get_ns(child);

	return ns ? ns : xmpp_stanza_get_ns(parent);
}

int mend_xml_is(xmpp_stanza_t *el, const char *name, const char *ns)
{
	const char *n, *elns;

	if (!el || !xmpp_stanza_is_tag(el))
		return 0;
	n = xmpp_stanza_get_name(el);
	elns = xmpp_stanza_get_ns(el);
	return n && elns && strcmp(n, name) == 0 && strcmp(elns, ns) == 0;
}

int mend_xml_child_is(xmpp_stanza_t *child, xmpp_stanza_t *parent, const char *name, const char *ns)
{
	const char *cname, *cns;

	if (!xmpp_stanza_is_tag(child))
		return 0;
	cname = xmpp_stanza_get_name(child);
	if (!cname || strcmp(cname, name) != 0)
		return 0;
	if (!ns)
		return 1;
	cns = child_ns(child, parent);
	return cns && strcmp(cns, ns) == 0;
}

xmpp_stanza_t *mend_child(xmpp_stanza_t *parent, const char *name, const char *ns)
{
	xmpp_stanza_t *c;

	if (!parent || !name)
		return NULL;
	for (c = xmpp_stanza_get_children(parent); c; c = xmpp_stanza_get_next(c))
		if (mend_xml_child_is(c, parent, name, ns))
			return c;
	return NULL;
}

size_t mend_xml_count(xmpp_stanza_t *parent, const char *name, const char *ns)
{
	xmpp_stanza_t *c;
	size_t n = 0;

	for (c = xmpp_stanza_get_children(parent); c; c = xmpp_stanza_get_next(c))
		if (mend_xml_child_is(c, parent, name, ns))
			n++;
	return n;
}

int mend_xml_parse_decimal(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (!text || !*text)
		return MEND_ERR_MALFORMED;
	for (p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return MEND_ERR_MALFORMED;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			return MEND_ERR_MALFORMED;
	}
	if (v < min)
		return MEND_ERR_MALFORMED;
	*out = (uint32_t)v;
	return 0;
}

int mend_xml_parse_bool(const char *text, int *out)
{
	if (!text || strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
		*out = 0;
	else if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
		*out = 1;
	else
		return MEND_ERR_MALFORMED;
	return 0;
}

static int has_text_child(xmpp_stanza_t *el)
{
	xmpp_stanza_t *c;

	for (c = xmpp_stanza_get_children(el); c; c = xmpp_stanza_get_next(c))
		if (xmpp_stanza_is_text(c))
			return 1;
	return 0;
}

char *mend_xml_text(xmpp_stanza_t *el)
{
	xmpp_ctx_t *ctx = xmpp_stanza_get_context(el);
	char *text = xmpp_stanza_get_text(el), *copy;

	if (!text)
		return has_text_child(el) ? NULL : g_strdup("");
	copy = g_strdup(text);
	xmpp_free(ctx, text);
	return copy;
}

int mend_xml_decode_b64(xmpp_stanza_t *el, size_t max_len, uint8_t **out, size_t *out_len)
{
	xmpp_ctx_t *ctx = xmpp_stanza_get_context(el);
	char *text = xmpp_stanza_get_text(el);
	int err;

	if (!text && has_text_child(el))
		return MEND_ERR_NOMEM;
	err = mend_b64_decode(text ? text : "", max_len, out, out_len);
	if (text)
		xmpp_free(ctx, text);
	return err;
}

int mend_xml_decode_b64_exact(xmpp_stanza_t *el, uint8_t *out, size_t len, int bad_len)
{
	uint8_t *raw = NULL;
	size_t got = 0;
	int err;

	err = mend_xml_decode_b64(el, len, &raw, &got);
	if (err == MEND_ERR_TOO_LARGE)
		err = bad_len;
	if (err)
		return err;
	if (got == len)
		memcpy(out, raw, len);
	else
		err = bad_len;
	g_free(raw);
	return err;
}

/* --- building -------------------------------------------------------------- */

xmpp_stanza_t *mend_xml_new(xmpp_ctx_t *ctx, const char *name, const char *ns)
{
	xmpp_stanza_t *el = xmpp_stanza_new(ctx);

	if (!el)
		return NULL;
	if (xmpp_stanza_set_name(el, name) != XMPP_EOK ||
	    (ns && xmpp_stanza_set_ns(el, ns) != XMPP_EOK)) {
		xmpp_stanza_release(el);
		return NULL;
	}
	return el;
}

int mend_xml_adopt(xmpp_stanza_t *parent, xmpp_stanza_t *child)
{
	int err = xmpp_stanza_add_child(parent, child);

	xmpp_stanza_release(child);
	return err == XMPP_EOK ? 0 : MEND_ERR_NOMEM;
}

xmpp_stanza_t *mend_xml_add(xmpp_stanza_t *parent, const char *name)
{
	xmpp_stanza_t *el =
	    mend_xml_new(xmpp_stanza_get_context(parent), name, xmpp_stanza_get_ns(parent));

	if (!el || mend_xml_adopt(parent, el) < 0)
		return NULL;
	return el;
}

int mend_xml_set_uint(xmpp_stanza_t *el, const char *name, uint32_t v)
{
	char buf[16];

	g_snprintf(buf, sizeof(buf), "%" G_GUINT32_FORMAT, v);
	return xmpp_stanza_set_attribute(el, name, buf) == XMPP_EOK ? 0 : MEND_ERR_NOMEM;
}

int mend_xml_set_b64(xmpp_stanza_t *el, const uint8_t *data, size_t len)
{
	xmpp_stanza_t *t = NULL;
	char *text;
	int err = MEND_ERR_NOMEM;

	text = mend_b64_encode(data, len);
	if (!text)
		goto out;
	if (!*text) {
		err = 0;
		goto free_text;
	}
	t = xmpp_stanza_new(xmpp_stanza_get_context(el));
	if (!t)
		goto free_text;
	if (xmpp_stanza_set_text(t, text) != XMPP_EOK) {
		xmpp_stanza_release(t);
		goto free_text;
	}
	err = mend_xml_adopt(el, t);
free_text:
	g_free(text);
out:
	return err;
}

int mend_xml_add_b64(xmpp_stanza_t *parent, const char *name, const char *attr, uint32_t id,
                     const uint8_t *data, size_t len)
{
	xmpp_stanza_t *el = mend_xml_add(parent, name);

	if (!el)
		return MEND_ERR_NOMEM;
	if (attr && mend_xml_set_uint(el, attr, id) < 0)
		return MEND_ERR_NOMEM;
	return mend_xml_set_b64(el, data, len);
}

void mend_xml_append_u32(GString *out, uint32_t v)
{
	char d[10];
	size_t n = 0;

	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(d));
	while (n)
		g_string_append_c(out, d[--n]);
}

/* Written straight into `out`: one key per device of every message goes through here. */
void mend_xml_append_b64(GString *out, const uint8_t *data, size_t len)
{
	gsize at = out->len;

	if (!data && len)
		return;
	g_string_set_size(out, at + MEND_B64_LEN(len));
	mend_b64_encode_into(out->str + at, data, len);
}
