/*
 * sce.c - the XEP-0420 (0.5.0) envelope under the OMEMO:2 profile of
 * XEP-0384 0.9 §5.5.1: built as text, parsed from decrypted bytes, with the
 * affix elements checked against the stanza's sender and recipient.
 *
 * Parsing: the bytes must be UTF-8 without NUL, hold no DTD, comment or
 * processing instruction (RFC 6120 §11.1; one leading XML declaration is
 * skipped), and be exactly one well-formed element (libxml2 checks that:
 * libstrophe's parser stops at the end of the first element and would
 * ignore what follows). The tree is then read with libstrophe.
 */
#include "config.h"

#include <limits.h>
#include <string.h>
#include <glib.h>
#include <libxml/parser.h>

#include "mend/mend.h"
#include "crypto.h"
#include "xep/omemo_legacy.h" /* MEND_MAX_PAYLOAD */
#include "xmlutil.h"
#include "sce.h"

#define N_(s) (s) /* marked for translation; the host translates (domain mend) */

#define RPAD_MIN_ENVELOPE 200 /* pad every envelope to this size... */
#define RPAD_RANDOM_MAX   200 /* ...then add 0..200 random bytes (XEP-0420 §4) */

/* XEP-0420 §9: server-processed elements, discarded when found inside <content/>. */
static const char *const forbidden_ns[] = {
    "urn:xmpp:hints",                     /* XEP-0334 */
    "urn:xmpp:sid:0",                     /* XEP-0359 */
    "http://jabber.org/protocol/address", /* XEP-0033 */
    "urn:xmpp:eme:0",                     /* XEP-0380 */
};

/* --- text checks ----------------------------------------------------------- */

/* Skips white space and one leading <?xml ...?>; NULL if a declaration is not closed. */
static const char *skip_declaration(const char *p)
{
	const char *end;

	while (g_ascii_isspace(*p))
		p++;
	if (strncmp(p, "<?xml", 5) != 0 || !(g_ascii_isspace(p[5]) || p[5] == '?'))
		return p;
	end = strstr(p, "?>");
	return end ? end + 2 : NULL;
}

/* One element, well-formed, no DTD (libxml2; nothing fetched, nothing printed). */
static int well_formed(const char *text, size_t len)
{
	xmlDocPtr doc;
	int ok;

	if (len > INT_MAX)
		return 0;
	doc = xmlReadMemory(text, (int)len, NULL, "UTF-8",
	                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	ok = doc && !doc->intSubset && !doc->extSubset;
	xmlFreeDoc(doc);
	return ok;
}

/*
 * RFC 6120 §11.1: no comments, processing instructions or DTDs in a stanza.
 * '<' is escaped in text and attributes, so "<!" and "<?" can only be markup
 * (a CDATA section, also refused: no client needs it for an envelope).
 */
static int plain_markup(const char *text)
{
	return !strstr(text, "<!") && !strstr(text, "<?");
}

/* The decrypted bytes as a NUL-terminated string past any declaration, or an error. */
static int envelope_text(const uint8_t *data, size_t len, char **copy, const char **start)
{
	if (!data && len)
		return MEND_ERR_INVALID_ARG;
	if (len > MEND_MAX_PAYLOAD)
		return MEND_ERR_TOO_LARGE;
	if (memchr(data, '\0', len) || !g_utf8_validate((const char *)data, (gssize)len, NULL))
		return MEND_ERR_MALFORMED;
	*copy = g_strndup((const char *)data, len);
	*start = skip_declaration(*copy);
	if (!*start || !plain_markup(*start) || !well_formed(*start, strlen(*start))) {
		g_free(*copy);
		*copy = NULL;
		return MEND_ERR_MALFORMED;
	}
	return MEND_OK;
}

/* --- affix elements -------------------------------------------------------- */

/* A bare JID (no resource) of 1..MEND_SCE_MAX_JID bytes that normalizes. */
static int bare_jid_ok(const char *jid)
{
	char *n;
	int ok;

	if (!jid || !*jid || strlen(jid) > MEND_SCE_MAX_JID || strchr(jid, '/'))
		return 0;
	n = mend_jid_normalize(jid);
	ok = n != NULL;
	g_free(n);
	return ok;
}

/* <from jid/> and <to jid/>: the attribute is required (XEP-0420 §4). */
static int parse_jid_affix(xmpp_stanza_t *el, char **out)
{
	const char *jid = xmpp_stanza_get_attribute(el, "jid");

	if (*out)
		return MEND_ERR_MALFORMED; /* twice */
	if (jid && strlen(jid) > MEND_SCE_MAX_JID)
		return MEND_ERR_TOO_LARGE;
	if (!bare_jid_ok(jid))
		return MEND_ERR_MALFORMED;
	*out = g_strdup(jid);
	return MEND_OK;
}

/* XEP-0082 §3.2 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, the zone required. */
static int parse_stamp(const char *stamp, gint64 *out)
{
	GDateTime *dt;

	if (!stamp || strlen(stamp) < 20 || strlen(stamp) > MEND_SCE_MAX_STAMP ||
	    stamp[10] != 'T' || !g_ascii_isdigit(stamp[0]))
		return MEND_ERR_MALFORMED;
	dt = g_date_time_new_from_iso8601(stamp, NULL);
	if (!dt)
		return MEND_ERR_MALFORMED;
	*out = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return MEND_OK;
}

static int parse_time(xmpp_stanza_t *el, mend_sce *out)
{
	const char *stamp = xmpp_stanza_get_attribute(el, "stamp");

	if (out->stamp)
		return MEND_ERR_MALFORMED;
	if (stamp && strlen(stamp) > MEND_SCE_MAX_STAMP)
		return MEND_ERR_TOO_LARGE;
	if (parse_stamp(stamp, &out->time) < 0)
		return MEND_ERR_MALFORMED;
	out->stamp = g_strdup(stamp);
	return MEND_OK;
}

static int parse_rpad(xmpp_stanza_t *el, int *seen, mend_sce *out)
{
	char *text;

	if ((*seen)++)
		return MEND_ERR_MALFORMED;
	text = mend_xml_text(el);
	if (!text)
		return MEND_ERR_NOMEM;
	out->rpad_len = strlen(text);
	g_free(text);
	return MEND_OK;
}

/* --- content --------------------------------------------------------------- */

static int is_forbidden(const char *ns)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(forbidden_ns); i++)
		if (strcmp(ns, forbidden_ns[i]) == 0)
			return 1;
	return 0;
}

/*
 * XEP-0420 §10: content elements are identified by name and namespace; one
 * without its own (inheriting urn:xmpp:sce:1) is not, and is dropped with
 * the server-processed ones of §9.
 */
static int permitted(xmpp_stanza_t *child)
{
	const char *ns = xmpp_stanza_get_ns(child);

	return ns && strcmp(ns, MEND_NS_SCE) != 0 && !is_forbidden(ns);
}

static size_t count_tags(xmpp_stanza_t *el)
{
	xmpp_stanza_t *c;
	size_t n = 0;

	for (c = xmpp_stanza_get_children(el); c; c = xmpp_stanza_get_next(c))
		n += xmpp_stanza_is_tag(c) ? 1 : 0;
	return n;
}

static int parse_content(xmpp_stanza_t *el, mend_sce *out)
{
	xmpp_stanza_t *c, *copy;
	int err = MEND_OK;

	if (out->content)
		return MEND_ERR_MALFORMED;
	if (count_tags(el) > MEND_SCE_MAX_CONTENT)
		return MEND_ERR_TOO_LARGE;
	out->content = mend_xml_new(xmpp_stanza_get_context(el), "content", MEND_NS_SCE);
	if (!out->content)
		return MEND_ERR_NOMEM;
	for (c = xmpp_stanza_get_children(el); c && !err; c = xmpp_stanza_get_next(c)) {
		if (!xmpp_stanza_is_tag(c))
			continue;
		if (!permitted(c)) {
			out->n_dropped++;
			continue;
		}
		copy = xmpp_stanza_copy(c);
		err = copy ? mend_xml_adopt(out->content, copy) : MEND_ERR_NOMEM;
	}
	return err;
}

/* --- the envelope ---------------------------------------------------------- */

/* Text between the envelope's children: white space only (the schema has no mixed content). */
static int blank_text(xmpp_stanza_t *t)
{
	const char *p = xmpp_stanza_get_text_ptr(t);

	while (p && g_ascii_isspace(*p))
		p++;
	return !p || !*p;
}

static int parse_child(xmpp_stanza_t *env, xmpp_stanza_t *c, int *rpad, mend_sce *out)
{
	const char *name = xmpp_stanza_get_name(c);

	if (xmpp_stanza_is_text(c))
		return blank_text(c) ? MEND_OK : MEND_ERR_MALFORMED;
	if (!mend_xml_child_is(c, env, name, MEND_NS_SCE))
		return MEND_OK; /* another namespace: a profile's own affix, ignored */
	if (strcmp(name, "content") == 0)
		return parse_content(c, out);
	if (strcmp(name, "rpad") == 0)
		return parse_rpad(c, rpad, out);
	if (strcmp(name, "time") == 0)
		return parse_time(c, out);
	if (strcmp(name, "from") == 0)
		return parse_jid_affix(c, &out->from);
	if (strcmp(name, "to") == 0)
		return parse_jid_affix(c, &out->to);
	return MEND_OK; /* XEP-0420 §4: profiles may add affix elements */
}

static int parse_envelope(xmpp_stanza_t *env, mend_sce *out)
{
	xmpp_stanza_t *c;
	int rpad = 0, err = MEND_OK;

	if (!mend_xml_is(env, "envelope", MEND_NS_SCE))
		return MEND_ERR_MALFORMED;
	for (c = xmpp_stanza_get_children(env); c && !err; c = xmpp_stanza_get_next(c))
		err = parse_child(env, c, &rpad, out);
	/* XEP-0384 §5.5.1: an OMEMO envelope MUST contain <rpad/> */
	if (!err && (!out->content || !rpad))
		err = MEND_ERR_MALFORMED;
	return err;
}

int mend_sce_parse(xmpp_ctx_t *ctx, const uint8_t *data, size_t len, mend_sce *out)
{
	xmpp_stanza_t *env;
	const char *start;
	char *text = NULL;
	int err;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	if (!ctx)
		return MEND_ERR_INVALID_ARG;
	err = envelope_text(data, len, &text, &start);
	if (err)
		return err;
	env = xmpp_stanza_new_from_string(ctx, start);
	err = env ? parse_envelope(env, out) : MEND_ERR_MALFORMED;
	if (env)
		xmpp_stanza_release(env);
	g_free(text);
	if (err)
		mend_sce_clear(out);
	return err;
}

void mend_sce_clear(mend_sce *env)
{
	if (!env)
		return;
	if (env->content)
		xmpp_stanza_release(env->content);
	g_free(env->from);
	g_free(env->to);
	g_free(env->stamp);
	memset(env, 0, sizeof(*env));
}

char *mend_sce_body(const mend_sce *env)
{
	xmpp_stanza_t *body;

	if (!env || !env->content)
		return NULL;
	body = mend_child(env->content, "body", MEND_NS_CLIENT);
	return body ? mend_xml_text(body) : NULL;
}

/* --- checks ---------------------------------------------------------------- */

static int same_jid(const char *a, const char *b)
{
	char *na = mend_jid_normalize(a), *nb = mend_jid_normalize(b);
	int same = na && nb && strcmp(na, nb) == 0;

	g_free(na);
	g_free(nb);
	return same;
}

int mend_sce_check(const mend_sce *env, const char *sender, const char *us, const char *room,
                   const char **why)
{
	const char *reason = NULL;

	if (!env || !env->content || !sender || (!us && !room))
		return MEND_ERR_INVALID_ARG;
	if (env->from && !same_jid(env->from, sender))
		reason = N_("the encrypted <from/> is not the sender");
	else if (room && !env->to)
		reason = N_("a group chat message without an encrypted <to/>");
	else if (room && !same_jid(env->to, room))
		reason = N_("the encrypted <to/> is not this group chat");
	else if (!room && env->to && !same_jid(env->to, us))
		reason = N_("the encrypted <to/> is not us");
	if (why)
		*why = reason;
	return reason ? MEND_ERR_FORGED : MEND_OK;
}

int mend_sce_check_time(const mend_sce *env, gint64 sent, gint64 margin)
{
	gint64 d;

	if (!env || margin < 0)
		return MEND_ERR_INVALID_ARG;
	if (!env->stamp)
		return MEND_OK;
	d = env->time > sent ? env->time - sent : sent - env->time;
	return d <= margin ? MEND_OK : MEND_ERR_FORGED;
}

/* --- building -------------------------------------------------------------- */

static int out_ok(const mend_sce_out *o)
{
	if (!o || (!o->body && !o->content_xml))
		return 0;
	if ((o->from && !bare_jid_ok(o->from)) || (o->to && !bare_jid_ok(o->to)))
		return 0;
	if (o->body && !g_utf8_validate(o->body, -1, NULL))
		return 0;
	return !o->content_xml || g_utf8_validate(o->content_xml, -1, NULL);
}

static void append_attr_elem(GString *s, const char *name, const char *attr, const char *value)
{
	char *esc = g_markup_escape_text(value, -1);

	g_string_append_printf(s, "<%s %s='%s'/>", name, attr, esc);
	g_free(esc);
}

/* Random printable ASCII, none of it XML markup. */
static int append_rpad(GString *s, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-_.:!%";
	uint8_t *r = g_malloc(n ? n : 1);
	size_t i;
	int err;

	err = mend_nonce(r, n);
	for (i = 0; !err && i < n; i++)
		g_string_append_c(s, alphabet[r[i] % (sizeof(alphabet) - 1)]);
	g_free(r);
	return err;
}

/* XEP-0420 §4: pad to a minimum size, then add 0..RPAD_RANDOM_MAX. */
static int random_rpad_len(size_t so_far, size_t *out)
{
	uint8_t r[2];
	int err = mend_nonce(r, sizeof(r));

	*out = (so_far < RPAD_MIN_ENVELOPE ? RPAD_MIN_ENVELOPE - so_far : 0) +
	       (((size_t)r[0] << 8 | r[1]) % (RPAD_RANDOM_MAX + 1)) + 1;
	return err;
}

static int append_affixes(GString *s, const mend_sce_out *o)
{
	GDateTime *dt;
	char *stamp;

	if (o->time >= 0) {
		dt = g_date_time_new_from_unix_utc(o->time);
		stamp = dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : NULL;
		if (dt)
			g_date_time_unref(dt);
		if (!stamp)
			return MEND_ERR_INVALID_ARG;
		append_attr_elem(s, "time", "stamp", stamp);
		g_free(stamp);
	}
	if (o->from)
		append_attr_elem(s, "from", "jid", o->from);
	if (o->to)
		append_attr_elem(s, "to", "jid", o->to);
	return MEND_OK;
}

char *mend_sce_build(const mend_sce_out *o, size_t *len)
{
	GString *s;
	size_t pad;
	int err;

	if (!out_ok(o))
		return NULL;
	s = g_string_new("<envelope xmlns='" MEND_NS_SCE "'><content>");
	if (o->body) {
		char *esc = g_markup_escape_text(o->body, -1);

		g_string_append_printf(s, "<body xmlns='" MEND_NS_CLIENT "'>%s</body>", esc);
		g_free(esc);
	}
	if (o->content_xml)
		g_string_append(s, o->content_xml);
	g_string_append(s, "</content><rpad>");
	err = o->rpad_len ? (pad = o->rpad_len, 0) : random_rpad_len(s->len, &pad);
	if (!err)
		err = append_rpad(s, pad);
	g_string_append(s, "</rpad>");
	if (!err)
		err = append_affixes(s, o);
	g_string_append(s, "</envelope>");
	/* what we send must parse again: content_xml is the caller's text */
	if (err || !plain_markup(s->str) || !well_formed(s->str, s->len)) {
		g_string_free(s, TRUE);
		return NULL;
	}
	if (len)
		*len = s->len;
	return g_string_free(s, FALSE);
}
