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

/* An element not yet closed; its name and namespace only on the fast path. */
typedef struct open_el {
	xmpp_stanza_t *el;
	const char *name; /* its name in the fast path's copy of the text (not ended there) */
	size_t len;       /* the name's length */
	const char *ns;   /* its namespace in that copy, NULL or "" for none */
} open_el;

struct mend_parser {
	xmpp_mem_t mem;                /* the libstrophe context's allocator */
	void *free_list[POOL_CLASSES]; /* freed blocks, linked through their first word */
	unsigned kept[POOL_CLASSES];
	XML_Parser expat;      /* kept between stanzas, reset for each */
	xmpp_ctx_t *ctx;       /* the context the tree of the parse under way is in */
	xmpp_stanza_t *result; /* the first complete top-level element */
	open_el *open;         /* the elements not yet closed, outermost first */
	size_t n_open, open_cap;
	GString *text; /* text since the last element boundary (expat) */
	char *buf;     /* the fast path's copy of the text: names and values end in it */
	size_t buf_cap;
	unsigned char cls[256]; /* the fast path's character classes (fast_classes) */
	int depth;              /* 1 inside <stream>, 2 inside a top-level element */
	int failed;             /* out of memory while building */
	int fast;               /* the last parse took the fast path (tests) */
};

/* ---- the pool ---- */

static size_t pool_class(size_t size)
{
	size_t c = size <= 16 ? 0 : (size_t)g_bit_storage((gulong)(size - 1)) - 4;

	return MIN(c, POOL_CLASSES);
}

static size_t pool_capacity(const pool_head *h)
{
	return h->h.cls < POOL_CLASSES ? (size_t)16 << h->h.cls : h->h.size;
}

/* A new block of class c (out of line: the common case takes a freed one). */
G_GNUC_NO_INLINE static void *pool_new(size_t c, size_t size)
{
	pool_head *h = g_try_malloc(sizeof(*h) + (c < POOL_CLASSES ? (size_t)16 << c : size));

	if (!h)
		return NULL;
	h->h.cls = c;
	h->h.size = size;
	return h + 1;
}

static void *pool_alloc(size_t size, void *data)
{
	mend_parser *x = data;
	size_t c = pool_class(size);
	void *p;

	if (c < POOL_CLASSES && (p = x->free_list[c])) {
		x->free_list[c] = *(void **)p;
		x->kept[c]--;
		return p;
	}
	return pool_new(c, size);
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
	size_t c;

	if (!p)
		return;
	c = ((pool_head *)p - 1)->h.cls;
	if (c < POOL_CLASSES && x->kept[c] < pool_keep()) {
		*(void **)p = x->free_list[c];
		x->free_list[c] = p;
		x->kept[c]++;
		return;
	}
	g_free((pool_head *)p - 1);
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
	return x->open[x->n_open - 1].el;
}

/* n bytes of text (no NUL among them) as a text child of the innermost open element. */
static void add_text(mend_parser *x, const char *s, size_t n)
{
	xmpp_stanza_t *t = xmpp_stanza_new(x->ctx);

	if (!t || xmpp_stanza_set_text_with_size(t, s, n) != XMPP_EOK ||
	    xmpp_stanza_add_child(top(x), t) != XMPP_EOK)
		x->failed = 1;
	if (t)
		xmpp_stanza_release(t);
}

/* The text expat gave since the last boundary becomes a text child of the current element
 * (the fast path adds its text at once). */
static void flush_text(mend_parser *x)
{
	if (!x->text->len)
		return;
	add_text(x, x->text->str, x->text->len);
	g_string_truncate(x->text, 0);
}

/*
 * Puts o.el (a new reference) under the innermost open element, the text before it
 * first, and opens it unless it is empty; with none open it is the top-level element (the
 * result, when empty). 0 when it could not be added (o.el released).
 */
static int open_element(mend_parser *x, open_el o, int empty)
{
	int ok = 1;

	if (x->n_open) {
		flush_text(x);
		ok = !x->failed && xmpp_stanza_add_child(top(x), o.el) == XMPP_EOK;
		xmpp_stanza_release(o.el); /* the parent holds it */
		if (!ok)
			return 0;
	} else if (empty) {
		x->result = o.el;
		return 1;
	}
	if (empty)
		return 1;
	if (x->n_open == x->open_cap) {
		x->open_cap = x->open_cap ? 2 * x->open_cap : 16;
		x->open = g_renew(open_el, x->open, x->open_cap);
	}
	x->open[x->n_open++] = o;
	return 1;
}

/* Closes the innermost open element, its text first: 1 when it was the top-level one,
 * now x->result (with the reference its creation gave). */
static int close_element(mend_parser *x)
{
	flush_text(x);
	if (--x->n_open)
		return 0;
	x->result = x->open[0].el;
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
	if (el && !open_element(x, (open_el){el, NULL, 0, NULL}, 0))
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

/* ---- the fast path's character classes (the subset: see below) ---- */

enum {
	C_NAME0 = 1,  /* starts a name: ASCII letters, '_' */
	C_NAME = 2,   /* continues one: those, digits, '-', '.' */
	C_TEXT = 4,   /* character data taken as is: printable ASCII but '<' '&' ']', tab, LF */
	C_VALUE = 8,  /* an attribute value taken as is: printable ASCII but '<' '&' and quotes */
	C_SPACE = 16, /* white space: space, tab, line feed */
};

/* One lookup per byte instead of a chain of comparisons. */
static void fast_classes(unsigned char *cls)
{
	unsigned c;

	memset(cls, 0, 256);
	for (c = 0x20; c < 0x7f; c++)
		cls[c] = C_TEXT | C_VALUE;
	cls['<'] = cls['&'] = 0;
	cls[']'] = C_VALUE;
	cls['\''] = cls['"'] = C_TEXT;
	cls['\n'] = cls['\t'] = C_TEXT | C_SPACE; /* a parser makes them spaces in values */
	cls[' '] |= C_SPACE;
	for (c = 0; c < 26; c++) {
		cls['a' + c] |= C_NAME0 | C_NAME;
		cls['A' + c] |= C_NAME0 | C_NAME;
	}
	cls['_'] |= C_NAME0 | C_NAME;
	for (c = '0'; c <= '9'; c++)
		cls[c] |= C_NAME;
	cls['-'] |= C_NAME;
	cls['.'] |= C_NAME;
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
	fast_classes(x->cls);
	return x;
}

const xmpp_mem_t *mend_parser_mem(mend_parser *x)
{
	return &x->mem;
}

/* Drops a partial tree (an element not closed, or a failure while building). */
static void drop_partial(mend_parser *x)
{
	if (x->n_open)
		xmpp_stanza_release(x->open[0].el); /* it holds the others */
	x->n_open = 0;
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
 * element. Of the prefixes only xml: (on attributes, xml:lang) is taken, but not xml:xmlns.
 * Giving up is never an answer about well-formedness: expat decides.
 *
 * It works on a copy of the text kept in the parser: names and values are ended by a
 * NUL where they stand and entities replaced in place (the result is never longer), so
 * libstrophe copies them straight from there; an element's namespace is a pointer into
 * that copy, which its children inherit. Each byte is classified by one table lookup.
 */

/* The first byte from p on outside the classes of mask (the text's NUL is in none): four
 * a round, as most runs are long (base64 text and values). */
static inline char *fast_run(const unsigned char *cls, char *p, unsigned char mask)
{
	for (;; p += 4) {
		if (!(cls[(unsigned char)p[0]] & mask))
			return p;
		if (!(cls[(unsigned char)p[1]] & mask))
			return p + 1;
		if (!(cls[(unsigned char)p[2]] & mask))
			return p + 2;
		if (!(cls[(unsigned char)p[3]] & mask))
			return p + 3;
	}
}

static char *fast_ws(const unsigned char *cls, char *p)
{
	while (cls[(unsigned char)*p] & C_SPACE)
		p++;
	return p;
}

/* A name at p: its end, or NULL. */
static char *fast_name(const unsigned char *cls, char *p)
{
	if (!(cls[(unsigned char)*p] & C_NAME0))
		return NULL;
	return fast_run(cls, p + 1, C_NAME);
}

/* One of the five predefined entities at p ('&'): its character into *out (at or before
 * p), what follows it, or NULL. */
static char *fast_entity(char *p, char *out)
{
	static const struct {
		const char *ref;
		size_t len;
		char c;
	} ents[] = {{"&lt;", 4, '<'},
	            {"&gt;", 4, '>'},
	            {"&amp;", 5, '&'},
	            {"&quot;", 6, '"'},
	            {"&apos;", 6, '\''}};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(ents); i++)
		if (strncmp(p, ents[i].ref, ents[i].len) == 0) {
			*out = ents[i].c;
			return p + ents[i].len;
		}
	return NULL;
}

/* Character data at p up to the next '<', its entities replaced in place, as a text child
 * of the innermost open element: the '<', or NULL. */
static char *fast_text(mend_parser *x, char *p)
{
	const unsigned char *cls = x->cls;
	char *start = p, *w;

	p = fast_run(cls, p, C_TEXT);
	for (w = p; *p != '<';) {
		if (*p == ']') { /* "]]>" may not appear in text */
			if (p[1] == ']' && p[2] == '>')
				return NULL;
			*w++ = *p++;
		} else if (*p == '&') {
			p = fast_entity(p, w++);
			if (!p)
				return NULL;
		} else {
			return NULL;
		}
		while (cls[(unsigned char)*p] & C_TEXT)
			*w++ = *p++;
	}
	if (w > start)
		add_text(x, start, (size_t)(w - start));
	return x->failed ? NULL : p;
}

/* An attribute value at p (a quote), its entities replaced in place and ended by a NUL:
 * its start into *val, what follows the closing quote, or NULL. */
static char *fast_value(const unsigned char *cls, char *p, char **val)
{
	char q = *p++, *w;

	if (q != '\'' && q != '"')
		return NULL;
	*val = p;
	/* tab and newline are normalized to spaces by a parser: left to expat */
	p = fast_run(cls, p, C_VALUE);
	for (w = p;;) {
		if (*p == q) {
			*w = '\0';
			return p + 1;
		}
		if (*p == '&') {
			p = fast_entity(p, w++);
			if (!p)
				return NULL;
		} else if (*p == '\'' || *p == '"') { /* the other quote */
			*w++ = *p++;
		} else {
			return NULL;
		}
		while (cls[(unsigned char)*p] & C_VALUE)
			*w++ = *p++;
	}
}

/* The attribute at p set on el, or the namespace it declares into *ns: what follows, or
 * NULL (not in the subset). Its name and value end in place. */
static char *fast_attribute(mend_parser *x, xmpp_stanza_t *el, char *p, const char **ns)
{
	const unsigned char *cls = x->cls;
	char *name = p, *e = fast_name(cls, p), *val;
	int n, xml = e && *e == ':' && e - p == 3 && memcmp(p, "xml", 3) == 0;

	if (xml) { /* xml:lang and the like: the namespace is dropped, as libstrophe does */
		name = e + 1;
		e = fast_name(cls, name);
	}
	if (!e || *e == ':')
		return NULL;
	p = fast_ws(cls, e);
	p = *p == '=' ? fast_value(cls, fast_ws(cls, p + 1), &val) : NULL;
	if (!p)
		return NULL;
	*e = '\0';
	if (e - name == 5 && memcmp(name, "xmlns", 5) == 0) {
		/* a second declaration; xml:xmlns is an attribute that libstrophe then
		 * overwrites with the element's namespace: left to expat */
		if (*ns || xml)
			return NULL;
		*ns = val;
		return p;
	}
	n = xmpp_stanza_get_attribute_count(el);
	if (xmpp_stanza_set_attribute(el, name, val) != XMPP_EOK)
		return NULL;
	/* a second attribute of that name replaced the first */
	return xmpp_stanza_get_attribute_count(el) == n + 1 ? p : NULL;
}

/* The start tag at p (after '<'): the element with its attributes and namespace into o
 * (0: not in the subset); *empty when it closes itself; *pp after it. */
static int fast_start(mend_parser *x, char **pp, int *empty, open_el *o)
{
	const unsigned char *cls = x->cls;
	char *p = *pp, *e = fast_name(cls, p), *sp, c;
	const char *ns = NULL;
	int ok;

	if (!e || *e == ':' || !(o->el = xmpp_stanza_new(x->ctx)))
		return 0;
	c = *e;
	*e = '\0';
	ok = xmpp_stanza_set_name(o->el, p) == XMPP_EOK;
	*e = c;
	o->name = p;
	o->len = (size_t)(e - p);
	for (p = e; ok;) {
		sp = p;
		p = fast_ws(cls, p);
		if (*p == '>' || (*p == '/' && p[1] == '>'))
			break;
		/* white space before each attribute */
		p = p == sp ? NULL : fast_attribute(x, o->el, p, &ns);
		ok = p != NULL;
	}
	if (ok) {
		*empty = *p == '/';
		*pp = p + (*empty ? 2 : 1);
		/* the declared namespace, else the parent's; xmlns='' is none (expat's NS mode) */
		if (!ns && x->n_open)
			ns = x->open[x->n_open - 1].ns;
		o->ns = ns;
		ok = !ns || !*ns || xmpp_stanza_set_ns(o->el, ns) == XMPP_EOK;
	}
	if (!ok)
		xmpp_stanza_release(o->el);
	return ok;
}

/* The end tag at p (after "</") of the innermost element: what follows, or NULL. */
static char *fast_end(mend_parser *x, char *p)
{
	const open_el *o = &x->open[x->n_open - 1];
	char *e = fast_name(x->cls, p);

	if (!e || (size_t)(e - p) != o->len || memcmp(p, o->name, o->len) != 0)
		return NULL;
	p = fast_ws(x->cls, e);
	return *p == '>' ? p + 1 : NULL;
}

/* A copy of text in x->buf, to end names and values in place: NULL when too large. */
static char *fast_copy(mend_parser *x, const char *text)
{
	size_t n = strlen(text) + 1;

	if (n > x->buf_cap) {
		g_free(x->buf);
		x->buf_cap = MAX(n, 4096);
		x->buf = g_try_malloc(x->buf_cap);
		if (!x->buf) {
			x->buf_cap = 0;
			return NULL;
		}
	}
	return memcpy(x->buf, text, n);
}

static xmpp_stanza_t *fast_parse(mend_parser *x, const char *text)
{
	char *p = fast_copy(x, text);
	open_el o;
	int empty, ok = p && *(p = fast_ws(x->cls, p)) == '<';

	if (ok)
		p++;
	while (ok) {
		if (*p == '/' && x->n_open) { /* an end tag */
			p = fast_end(x, p + 1);
			ok = p != NULL;
			if (ok && close_element(x))
				break;
		} else {
			ok = fast_start(x, &p, &empty, &o) && open_element(x, o, empty);
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
	if (ok && !x->failed && *fast_ws(x->cls, p) == '\0')
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

/* Does not keep a large buffer after a large text. */
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
	if (x->buf_cap > 65536) {
		g_free(g_steal_pointer(&x->buf));
		x->buf_cap = 0;
	}
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
	g_free(x->open);
	g_free(x->buf);
	pool_drain(x);
	g_free(x);
}
