/*
 * parser.c - the account's stanza parser: text to the libstrophe element tree
 * that xmpp_stanza_new_from_string() builds, faster.
 *
 * libstrophe creates an expat parser for every string, joins text with
 * strncat() and takes every node, attribute and string from malloc(). At
 * catch-up (up to 250 archive results per page, each parsed once) that was
 * a quarter of the time per message. Here the account keeps one expat
 * parser and resets it per stanza, text is joined with its length known,
 * and the account's libstrophe context takes its memory from a small pool
 * of freed blocks by size class.
 *
 * The tree is the same as libstrophe's (tests/test-parser.c compares them on
 * the fuzzing seeds and hand-made cases; the stanza fuzz target compares
 * every input): the text is wrapped in <stream>...</stream> and fed in three
 * parts, the first complete top-level element is the result and the rest
 * must still be well-formed; names and namespaces are split on U+001F as
 * libstrophe asks expat to; namespaced attributes lose their namespace; the
 * text between two child elements becomes one text node.
 */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <expat.h>
#include <glib.h>

#include "parser.h"

#define NS_SEP '\x1F' /* what libstrophe's parser splits names on */

/* Payload sizes of the pool's classes: 16 << c for c in 0 .. POOL_CLASSES-1. */
#define POOL_CLASSES 8
#if defined(__SANITIZE_ADDRESS__)
#define POOL_KEEP 0 /* AddressSanitizer sees every free */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_KEEP 0
#endif
#endif
#ifndef POOL_KEEP
#define POOL_KEEP 128 /* freed blocks kept per class */
#endif

/* What precedes each block: its class and, for a large one, its size. */
typedef union pool_head {
	struct {
		size_t cls;
		size_t size;
	} h;
	max_align_t align;
} pool_head;

struct mend_parser {
	xmpp_mem_t mem;                /* the libstrophe context's allocator */
	void *free_list[POOL_CLASSES]; /* freed blocks, linked through their first word */
	unsigned kept[POOL_CLASSES];
	XML_Parser expat;      /* kept between stanzas, reset for each */
	xmpp_ctx_t *ctx;       /* the context the tree of the parse under way is in */
	xmpp_stanza_t *result; /* the first complete top-level element */
	GPtrArray *open;       /* the elements not yet closed, outermost first */
	GString *text;         /* text since the last element boundary */
	GString *val;          /* an attribute value (the fast path) */
	int depth;             /* 1 inside <stream>, 2 inside a top-level element */
	int failed;            /* out of memory while building */
	int fast;              /* the last parse took the fast path (tests) */
};

/* ---- the pool ---- */

static size_t pool_class(size_t size)
{
	size_t c = 0;

	while (c < POOL_CLASSES && ((size_t)16 << c) < size)
		c++;
	return c;
}

static size_t pool_capacity(const pool_head *h)
{
	return h->h.cls < POOL_CLASSES ? (size_t)16 << h->h.cls : h->h.size;
}

static void *pool_alloc(size_t size, void *data)
{
	mend_parser *x = data;
	size_t c = pool_class(size ? size : 1);
	pool_head *h;

	if (c < POOL_CLASSES && x->free_list[c]) {
		h = (pool_head *)x->free_list[c] - 1;
		x->free_list[c] = *(void **)x->free_list[c];
		x->kept[c]--;
		return h + 1;
	}
	h = g_try_malloc(sizeof(*h) + (c < POOL_CLASSES ? (size_t)16 << c : size));
	if (!h)
		return NULL;
	h->h.cls = c;
	h->h.size = size;
	return h + 1;
}

/* How many freed blocks a class keeps (a function: 0 under a sanitizer, which a
 * comparison with the constant would warn about). */
static unsigned pool_keep(void)
{
	return POOL_KEEP;
}

static void pool_free(void *p, void *data)
{
	mend_parser *x = data;
	pool_head *h;

	if (!p)
		return;
	h = (pool_head *)p - 1;
	if (h->h.cls < POOL_CLASSES && x->kept[h->h.cls] < pool_keep()) {
		*(void **)p = x->free_list[h->h.cls];
		x->free_list[h->h.cls] = p;
		x->kept[h->h.cls]++;
		return;
	}
	g_free(h);
}

static void *pool_realloc(void *p, size_t size, void *data)
{
	void *n;
	size_t cap;

	if (!p)
		return pool_alloc(size, data);
	cap = pool_capacity((pool_head *)p - 1);
	if (size <= cap && size > cap / 2)
		return p;
	n = pool_alloc(size, data);
	if (!n)
		return NULL;
	memcpy(n, p, MIN(cap, size));
	pool_free(p, data);
	return n;
}

static void pool_drain(mend_parser *x)
{
	size_t c;

	for (c = 0; c < POOL_CLASSES; c++) {
		while (x->free_list[c]) {
			void *p = x->free_list[c];

			x->free_list[c] = *(void **)p;
			g_free((pool_head *)p - 1);
		}
		x->kept[c] = 0;
	}
}

/* ---- building the tree (the same steps as libstrophe's parser_expat.c) ---- */

/* The part of an expat name after the namespace separator, or all of it. */
static const char *local_name(const char *nsname)
{
	const char *c = strchr(nsname, NS_SEP);

	return c ? c + 1 : nsname;
}

/* The innermost element not yet closed. */
static xmpp_stanza_t *top(mend_parser *x)
{
	return g_ptr_array_index(x->open, x->open->len - 1);
}

/* The text gathered since the last boundary becomes a text child of the current element. */
static void flush_text(mend_parser *x)
{
	xmpp_stanza_t *t;

	if (!x->text->len)
		return;
	t = xmpp_stanza_new(x->ctx);
	if (!t || xmpp_stanza_set_text(t, x->text->str) != XMPP_EOK ||
	    xmpp_stanza_add_child(top(x), t) != XMPP_EOK)
		x->failed = 1;
	if (t)
		xmpp_stanza_release(t);
	g_string_truncate(x->text, 0);
}

/*
 * Puts el (a new reference) under the innermost open element, the text before it first,
 * and opens it unless it is empty; with none open it is the top-level element (the
 * result, when empty). 0 when it could not be added (el released).
 */
static int open_element(mend_parser *x, xmpp_stanza_t *el, int empty)
{
	int ok = 1;

	if (x->open->len) {
		flush_text(x);
		ok = !x->failed && xmpp_stanza_add_child(top(x), el) == XMPP_EOK;
		xmpp_stanza_release(el); /* the parent holds it */
		if (!ok)
			return 0;
	} else if (empty) {
		x->result = el;
		return 1;
	}
	if (!empty)
		g_ptr_array_add(x->open, el);
	return 1;
}

/* Closes the innermost open element, its text first: 1 when it was the top-level one,
 * now x->result (with the reference its creation gave). */
static int close_element(mend_parser *x)
{
	xmpp_stanza_t *el;

	flush_text(x);
	el = g_ptr_array_steal_index(x->open, x->open->len - 1);
	if (x->open->len)
		return 0;
	x->result = el;
	return 1;
}

/* Name, attributes (namespaces dropped) and namespace, in libstrophe's order. */
static xmpp_stanza_t *new_element(mend_parser *x, const char *nsname, const char **attrs)
{
	xmpp_stanza_t *el = xmpp_stanza_new(x->ctx);
	const char *sep = strchr(nsname, NS_SEP);
	char *ns;
	size_t i;

	if (!el || xmpp_stanza_set_name(el, local_name(nsname)) != XMPP_EOK)
		goto fail;
	for (i = 0; attrs && attrs[i]; i += 2)
		if (xmpp_stanza_set_attribute(el, local_name(attrs[i]), attrs[i + 1]) != XMPP_EOK)
			goto fail;
	if (sep) {
		ns = g_strndup(nsname, (size_t)(sep - nsname));
		i = xmpp_stanza_set_ns(el, ns) != XMPP_EOK;
		g_free(ns);
		if (i)
			goto fail;
	}
	return el;
fail:
	if (el)
		xmpp_stanza_release(el);
	x->failed = 1;
	return NULL;
}

static void XMLCALL on_start(void *data, const XML_Char *nsname, const XML_Char **attrs)
{
	mend_parser *x = data;
	xmpp_stanza_t *el;

	/* depth 0 is our <stream>; only the first top-level element is built */
	if (x->depth++ == 0 || x->result || x->failed)
		return;
	el = new_element(x, nsname, attrs);
	if (el && !open_element(x, el, 0))
		x->failed = 1;
}

static void XMLCALL on_end(void *data, const XML_Char *nsname)
{
	mend_parser *x = data;

	(void)nsname;
	if (--x->depth == 0 || x->result || x->failed)
		return;
	close_element(x);
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	mend_parser *x = data;

	if (x->depth >= 2 && !x->result && !x->failed && len > 0)
		g_string_append_len(x->text, s, len);
}

/* ---- the parser ---- */

mend_parser *mend_parser_new(void)
{
	mend_parser *x = g_new0(mend_parser, 1);

	x->mem.alloc = pool_alloc;
	x->mem.free = pool_free;
	x->mem.realloc = pool_realloc;
	x->mem.userdata = x;
	x->text = g_string_sized_new(256);
	x->open = g_ptr_array_sized_new(16);
	x->val = g_string_sized_new(64);
	return x;
}

const xmpp_mem_t *mend_parser_mem(mend_parser *x)
{
	return &x->mem;
}

/* Drops a partial tree (an element not closed, or a failure while building). */
static void drop_partial(mend_parser *x)
{
	if (x->open->len)
		xmpp_stanza_release(g_ptr_array_index(x->open, 0)); /* it holds the others */
	g_ptr_array_set_size(x->open, 0);
}

/* ---- the common case without expat: a strict subset of XML ---- */

/*
 * Archive results and live messages are plain ASCII XML: names without
 * prefixes, default namespace declarations, the five predefined entities.
 * fast_parse() builds the tree for exactly that subset and gives up (NULL,
 * nothing built) on anything else, which expat then parses: a byte outside
 * printable ASCII, tab and line feed (expat normalizes CR and white space in
 * attribute values), a prefix, a character reference, a comment, CDATA, a
 * processing instruction or DOCTYPE, a duplicate attribute, "]]>" in text,
 * an end tag that does not match, anything but white space around the
 * element. Of the prefixes only xml: (on attributes, xml:lang) is taken. Giving up is
 * never an answer about well-formedness: expat decides.
 */

/* A name character of the subset: ASCII letters, digits, '_', '-', '.'. */
static int fast_name_char(unsigned char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return 1;
	return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* A byte allowed in text and attribute values of the subset (before '<' and '&'). */
static int fast_text_char(unsigned char c)
{
	return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t';
}

static const char *fast_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t')
		p++;
	return p;
}

/* A name at p: its end, or NULL. */
static const char *fast_name(const char *p)
{
	if (!fast_name_char((unsigned char)*p, 1))
		return NULL;
	while (fast_name_char((unsigned char)*++p, 0))
		;
	return p;
}

/* One of the five predefined entities at p ('&'), appended; the end, or NULL. */
static const char *fast_entity(const char *p, GString *out)
{
	static const struct {
		const char *ref;
		char c;
	} ents[] = {
	    {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(ents); i++) {
		size_t n = strlen(ents[i].ref);

		if (strncmp(p, ents[i].ref, n) == 0) {
			g_string_append_c(out, ents[i].c);
			return p + n;
		}
	}
	return NULL;
}

/* Character data up to the next '<' into x->text; the '<', or NULL. */
static const char *fast_text(mend_parser *x, const char *p)
{
	const char *run = p;

	for (;;) {
		while (fast_text_char((unsigned char)*p) && *p != '<' && *p != '&' && *p != ']')
			p++;
		g_string_append_len(x->text, run, p - run);
		if (*p == '<')
			return p;
		if (*p == ']') { /* "]]>" may not appear in text */
			if (strncmp(p, "]]>", 3) == 0)
				return NULL;
			g_string_append_c(x->text, *p++);
		} else if (*p == '&') {
			p = fast_entity(p, x->text);
			if (!p)
				return NULL;
		} else {
			return NULL;
		}
		run = p;
	}
}

/* An attribute value at p (a quote) into val; what follows the closing quote, or NULL. */
static const char *fast_value(const char *p, GString *val)
{
	char q = *p++;
	const char *run;

	if (q != '\'' && q != '"')
		return NULL;
	g_string_truncate(val, 0);
	for (run = p;;) {
		/* tab and newline are normalized to spaces by a parser: left to expat */
		while (*p >= 0x20 && *p < 0x7f && *p != q && *p != '<' && *p != '&')
			p++;
		g_string_append_len(val, run, p - run);
		if (*p == q)
			return p + 1;
		if (*p != '&')
			return NULL;
		p = fast_entity(p, val);
		if (!p)
			return NULL;
		run = p;
	}
}

/* The start tag at p (after '<'): the element with its attributes and namespace (NULL:
 * not in the subset); *empty when it closes itself. */
static xmpp_stanza_t *fast_start(mend_parser *x, const char **pp, int *empty)
{
	const char *p = *pp, *e = fast_name(p), *ns = NULL;
	xmpp_stanza_t *el;
	char *name;
	int ok = 1;

	if (!e || *e == ':')
		return NULL;
	el = xmpp_stanza_new(x->ctx);
	name = g_strndup(p, (size_t)(e - p));
	ok = el && xmpp_stanza_set_name(el, name) == XMPP_EOK;
	g_free(name);
	for (p = e; ok;) {
		const char *sp = p;

		p = fast_ws(p);
		if (*p == '>' || (*p == '/' && p[1] == '>'))
			break;
		e = p == sp ? NULL : fast_name(p); /* white space before each attribute */
		if (e && *e == ':' && e - p == 3 && strncmp(p, "xml", 3) == 0) {
			p = e + 1; /* xml:lang and the like: the namespace is dropped, as libstrophe
			              does */
			e = fast_name(p);
		}
		if (!e || *e == ':') {
			ok = 0;
			break;
		}
		name = g_strndup(p, (size_t)(e - p));
		p = fast_ws(e);
		p = *p == '=' ? fast_value(fast_ws(p + 1), x->val) : NULL;
		if (!p ||
		    (strcmp(name, "xmlns") == 0 ? ns != NULL
		                                : xmpp_stanza_get_attribute(el, name) != NULL))
			ok = 0; /* not a value, or a second attribute of that name */
		else if (strcmp(name, "xmlns") == 0)
			ns = g_string_free(g_string_new_len(x->val->str, (gssize)x->val->len),
			                   FALSE);
		else
			ok = xmpp_stanza_set_attribute(el, name, x->val->str) == XMPP_EOK;
		g_free(name);
	}
	if (ok) {
		*empty = *p == '/';
		*pp = p + (*empty ? 2 : 1);
		/* the declared namespace, else the parent's; xmlns='' is none (expat's NS mode) */
		if (!ns && x->open->len)
			ns = g_strdup(xmpp_stanza_get_ns(top(x)));
		if (ns && *ns && xmpp_stanza_set_ns(el, ns) != XMPP_EOK)
			ok = 0;
	}
	g_free((char *)ns);
	if (!ok && el) {
		xmpp_stanza_release(el);
		el = NULL;
	}
	return el;
}

/* The end tag at p (after "</") of the innermost element: what follows, or NULL. */
static const char *fast_end(mend_parser *x, const char *p)
{
	const char *e = fast_name(p), *name = xmpp_stanza_get_name(top(x));
	size_t n = e ? (size_t)(e - p) : 0;

	if (!e || strlen(name) != n || strncmp(p, name, n) != 0)
		return NULL;
	p = fast_ws(e);
	return *p == '>' ? p + 1 : NULL;
}

static xmpp_stanza_t *fast_parse(mend_parser *x, const char *text)
{
	const char *p = fast_ws(text);
	xmpp_stanza_t *el;
	int empty, ok = *p == '<';

	if (ok)
		p++;
	while (ok) {
		if (*p == '/' && x->open->len) { /* an end tag */
			p = fast_end(x, p + 1);
			ok = p != NULL;
			if (ok && close_element(x))
				break;
		} else {
			el = fast_start(x, &p, &empty);
			ok = el && open_element(x, el, empty);
			if (ok && x->result)
				break;
		}
		ok = ok && !x->failed;
		if (ok) {
			p = fast_text(x, p);
			ok = p && *p == '<';
			if (ok)
				p++;
		}
	}
	if (ok && !x->failed && *fast_ws(p) == '\0')
		return g_steal_pointer(&x->result);
	drop_partial(x);
	if (x->result)
		xmpp_stanza_release(g_steal_pointer(&x->result));
	return NULL;
}

/* A fresh build into ctx: nothing open, no result, no text. */
static void build_reset(mend_parser *x, xmpp_ctx_t *ctx)
{
	x->ctx = ctx;
	x->result = NULL;
	x->depth = x->failed = 0;
	g_string_truncate(x->text, 0);
}

/* Through expat, fed as libstrophe feeds it. */
static xmpp_stanza_t *expat_parse(mend_parser *x, const char *text)
{
	static const char start[] = "<stream>", end[] = "</stream>";
	size_t len = strlen(text);
	xmpp_stanza_t *out;
	int ok;

	if (len > INT_MAX)
		return NULL;
	if (x->expat)
		ok = XML_ParserReset(x->expat, NULL) == XML_TRUE;
	else
		ok = (x->expat = XML_ParserCreateNS(NULL, NS_SEP)) != NULL;
	if (!ok)
		return NULL;
	XML_SetUserData(x->expat, x);
	XML_SetElementHandler(x->expat, on_start, on_end);
	XML_SetCharacterDataHandler(x->expat, on_text);
	/* not final, as libstrophe feeds them: what follows </stream> is not looked at */
	ok = XML_Parse(x->expat, start, sizeof(start) - 1, 0) == XML_STATUS_OK &&
	     XML_Parse(x->expat, text, (int)len, 0) == XML_STATUS_OK &&
	     XML_Parse(x->expat, end, sizeof(end) - 1, 0) == XML_STATUS_OK;
	drop_partial(x);
	out = g_steal_pointer(&x->result);
	if (out && (!ok || x->failed)) {
		xmpp_stanza_release(out);
		out = NULL;
	}
	return out;
}

/* Does not keep a large buffer after a large text or value, whichever path it took. */
static void trim(GString **buf, gsize keep)
{
	if ((*buf)->allocated_len > 65536) {
		g_string_free(*buf, TRUE);
		*buf = g_string_sized_new(keep);
	}
}

xmpp_stanza_t *mend_parser_parse(mend_parser *x, xmpp_ctx_t *ctx, const char *text)
{
	xmpp_stanza_t *out;

	if (!x || !ctx || !text)
		return NULL;
	build_reset(x, ctx);
	out = fast_parse(x, text);
	x->fast = out != NULL;
	if (!out) {
		build_reset(x, ctx);
		out = expat_parse(x, text);
	}
	trim(&x->text, 256);
	trim(&x->val, 64);
	return out;
}

/* ---- comparing two trees (the tests and the stanza fuzz target) ---- */

/* Appends to why, when there is one. */
static void why_add(GString *why, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void why_add(GString *why, const char *fmt, ...)
{
	va_list ap;

	if (!why)
		return;
	va_start(ap, fmt);
	g_string_append_vprintf(why, fmt, ap);
	va_end(ap);
}

int mend_parser_same_tree(xmpp_stanza_t *a, xmpp_stanza_t *b, GString *why)
{
	const char **aa;
	xmpp_stanza_t *ca, *cb;
	int n, i, ok = 1;

	if (xmpp_stanza_is_text(a) != xmpp_stanza_is_text(b)) {
		why_add(why, "text node against element");
		return 0;
	}
	if (xmpp_stanza_is_text(a)) {
		ok = g_strcmp0(xmpp_stanza_get_text_ptr(a), xmpp_stanza_get_text_ptr(b)) == 0;
		if (!ok)
			why_add(why, "text '%s' against '%s'", xmpp_stanza_get_text_ptr(a),
			        xmpp_stanza_get_text_ptr(b));
		return ok;
	}
	if (g_strcmp0(xmpp_stanza_get_name(a), xmpp_stanza_get_name(b)) ||
	    g_strcmp0(xmpp_stanza_get_ns(a), xmpp_stanza_get_ns(b))) {
		why_add(why, "element %s (%s) against %s (%s)", xmpp_stanza_get_name(a),
		        xmpp_stanza_get_ns(a), xmpp_stanza_get_name(b), xmpp_stanza_get_ns(b));
		return 0;
	}
	n = xmpp_stanza_get_attribute_count(a);
	if (n != xmpp_stanza_get_attribute_count(b)) {
		why_add(why, "%s: %d attributes against %d", xmpp_stanza_get_name(a), n,
		        xmpp_stanza_get_attribute_count(b));
		return 0;
	}
	aa = g_new0(const char *, (gsize)n * 2 + 2);
	xmpp_stanza_get_attributes(a, aa, n * 2);
	for (i = 0; ok && i < n * 2; i += 2)
		if (g_strcmp0(aa[i + 1], xmpp_stanza_get_attribute(b, aa[i]))) {
			why_add(why, "%s: attribute %s='%s' against '%s'", xmpp_stanza_get_name(a),
			        aa[i], aa[i + 1], xmpp_stanza_get_attribute(b, aa[i]));
			ok = 0;
		}
	g_free(aa);
	ca = xmpp_stanza_get_children(a);
	cb = xmpp_stanza_get_children(b);
	for (; ok && ca && cb; ca = xmpp_stanza_get_next(ca), cb = xmpp_stanza_get_next(cb))
		ok = mend_parser_same_tree(ca, cb, why);
	if (ok && (ca || cb)) {
		why_add(why, "%s: not the same number of children", xmpp_stanza_get_name(a));
		ok = 0;
	}
	return ok;
}

int mend_parser_was_fast(const mend_parser *x)
{
	return x && x->fast;
}

void mend_parser_free(mend_parser *x)
{
	if (!x)
		return;
	if (x->expat)
		XML_ParserFree(x->expat);
	g_string_free(x->text, TRUE);
	g_ptr_array_free(x->open, TRUE);
	g_string_free(x->val, TRUE);
	pool_drain(x);
	g_free(x);
}
