/*
 * test-engine.c - the protocol engine against a scripted server. The test
 * plays Prosody: every stanza the core sends (host op send_stanza) is kept,
 * parsed and checked; the test answers with IQ results and errors carrying
 * the same id and the `from` a real server sets (our bare JID for IQs to our
 * account, the contact's bare JID for IQs to a contact). A real second
 * account, bob, supplies device ids, bundles and encrypted messages.
 *
 * Cases: connecting (own device list, carbons, publish-options and the
 * configure fallback, READY once), a message queued before READY, a peer
 * without OMEMO, forged carbons (XEP-0280 §11), archive results of our own
 * query only, deduped by stanza-id (XEP-0313, XEP-0359), garbage from the
 * network (DESIGN §7), republishing a device list the server lost, an
 * archive error mid-catch-up (position and used prekeys kept, asked again
 * later), the bundle republished once READY after a catch-up and batched
 * for live prekey messages, and subscribing to a contact's device list
 * (hosts without +notify).
 */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include <sqlite3.h>
#include <glib/gstdio.h>
#include <strophe.h>
#include "mend/mend.h"
#include "internal.h" /* mend_account_set_clock */
#include "engine.h"   /* mend_iso_utc, unix_of */
#include "session2.h" /* mend_omemo2_sessions_supported */
#include "omemo2_account.h"
#include "omemo2_engine.h"
#include "tap.h"
#include "xsd.h"

#define ALICE        "alice@x"
#define ALICE_FULL   "alice@x/r"
#define BOB          "bob@x"
#define CAROL        "carol@x"
#define ERIN         "erin@x"
#define NS_LEGACY    "eu.siacs.conversations.axolotl"
#define NODE_LIST    NS_LEGACY ".devicelist"
#define NODE_BUNDLES NS_LEGACY ".bundles:"
#define NODE2_LIST   "urn:xmpp:omemo:2:devices"
#define NODE2_BUNDLE "urn:xmpp:omemo:2:bundles"
#define NS_PUBSUB    "http://jabber.org/protocol/pubsub"
#define NS_OWNER     "http://jabber.org/protocol/pubsub#owner"
#define NS_CARBONS   "urn:xmpp:carbons:2"
#define NS_MAM       "urn:xmpp:mam:2"
#define NS_STANZAS   "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_RECEIPTS  "urn:xmpp:receipts"
#define STAMP        "2020-01-02T03:04:05Z"

/* One event the core reported, copied. */
typedef struct rec {
	mend_event_kind kind;
	char *id, *peer, *from, *body, *timestamp, *text;
	int error, archived;
	mend_carbon carbon;
	unsigned n_devices;
	int version, downgraded;
	unsigned n_devices2;
} rec;

static xmpp_ctx_t *xctx;
static GPtrArray *sent;                    /* char *: every stanza alice's core sent, in order */
static GHashTable *answered;               /* indices (+1) of sent IQs the server answered */
static GPtrArray *events;                  /* rec *: every event alice's core reported */
static GString *warnings;                  /* every warning alice's core logged, one a line */
static uint32_t aid, bid;                  /* the device ids of alice and bob */
static const char *self_full = ALICE_FULL; /* whom the server's answers go to */
static int host_refuses;                   /* the host's send_stanza fails (connection gone) */

/* --- host ops ---------------------------------------------------------------- */

static int on_send(const char *xml, void *ud)
{
	if (host_refuses)
		return -1;
	g_ptr_array_add(sent, g_strdup(xml));
	return 0;
}

static void on_event(const mend_event *ev, void *ud)
{
	rec *r = g_new0(rec, 1);

	r->kind = ev->kind;
	r->id = g_strdup(ev->id);
	r->peer = g_strdup(ev->peer);
	r->from = g_strdup(ev->from);
	r->body = g_strdup(ev->body);
	r->timestamp = g_strdup(ev->timestamp);
	r->text = g_strdup(ev->text);
	r->error = ev->error;
	r->archived = ev->archived;
	r->carbon = ev->carbon;
	r->n_devices = ev->n_devices;
	r->version = ev->version;
	r->downgraded = ev->downgraded;
	r->n_devices2 = ev->n_devices2;
	g_ptr_array_add(events, r);
}

static void rec_free(gpointer p)
{
	rec *r = p;

	g_free(r->id);
	g_free(r->peer);
	g_free(r->from);
	g_free(r->body);
	g_free(r->timestamp);
	g_free(r->text);
	g_free(r);
}

static void on_log(mend_log_level level, const char *text, void *ud)
{
	if (level <= MEND_LOG_WARNING) {
		printf("# core: %s\n", text);
		g_string_append_printf(warnings, "%s\n", text);
	}
}

static const mend_host_ops alice_ops = {
    .send_stanza = on_send,
    .event = on_event,
    .log = on_log,
};

/* --- events -------------------------------------------------------------------- */

/* How many events of `kind` arrived since event number `mark`. */
static int count_events(guint mark, mend_event_kind kind)
{
	int n = 0;
	guint i;

	for (i = mark; i < events->len; i++)
		n += ((rec *)g_ptr_array_index(events, i))->kind == kind;
	return n;
}

/* The first event of `kind` since `mark`, or NULL. */
static const rec *event_of(guint mark, mend_event_kind kind)
{
	guint i;

	for (i = mark; i < events->len; i++)
		if (((rec *)g_ptr_array_index(events, i))->kind == kind)
			return g_ptr_array_index(events, i);
	return NULL;
}

static int str_is(const char *s, const char *want)
{
	return s && want && g_str_equal(s, want);
}

/* --- stanzas the core sent ----------------------------------------------------- */

/* The first element `name` (in `ns`, when given) at or under `st`. */
static xmpp_stanza_t *find(xmpp_stanza_t *st, const char *name, const char *ns)
{
	const char *n = xmpp_stanza_get_name(st), *s = xmpp_stanza_get_ns(st);
	xmpp_stanza_t *c, *f;

	if (n && g_str_equal(n, name) && (!ns || str_is(s, ns)))
		return st;
	for (c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c))
		if (xmpp_stanza_is_tag(c) && (f = find(c, name, ns)))
			return f;
	return NULL;
}

/* Sent stanza `i`, parsed: xmpp_stanza_release() it. */
static xmpp_stanza_t *sent_st(guint i)
{
	return xmpp_stanza_new_from_string(xctx, g_ptr_array_index(sent, i));
}

/* Attribute `attr` of the top element of sent stanza `i` equals `want` (NULL: absent). */
static int sent_attr_is(int i, const char *attr, const char *want)
{
	xmpp_stanza_t *st;
	const char *v;
	int ok;

	if (i < 0 || !(st = sent_st(i)))
		return 0;
	v = xmpp_stanza_get_attribute(st, attr);
	ok = want ? str_is(v, want) : !v;
	xmpp_stanza_release(st);
	return ok;
}

/* Sent stanza `i` holds element `name` (ns) with attr = value (attr NULL: any). */
static int sent_has(guint i, const char *name, const char *ns, const char *attr, const char *value)
{
	xmpp_stanza_t *st = sent_st(i), *e;
	int ok;

	if (!st)
		return 0;
	e = find(st, name, ns);
	ok = e && (!attr || str_is(xmpp_stanza_get_attribute(e, attr), value));
	xmpp_stanza_release(st);
	return ok;
}

/* The first stanza sent since `mark` that holds such an element; -1 if none. */
static int sent_find(guint mark, const char *name, const char *ns, const char *attr,
                     const char *value)
{
	guint i;

	for (i = mark; i < sent->len; i++)
		if (sent_has(i, name, ns, attr, value))
			return (int)i;
	return -1;
}

/* The first IQ sent since `mark` asking `to` for the items of `node`; -1 if none. */
static int items_query(guint mark, const char *node, const char *to)
{
	guint i;

	for (i = mark; i < sent->len; i++)
		if (sent_has(i, "items", NULL, "node", node) && sent_attr_is(i, "to", to))
			return (int)i;
	return -1;
}

/* How many <message/> stanzas to `to` were sent since `mark`. */
static int messages_to(guint mark, const char *to)
{
	int n = 0;
	guint i;

	for (i = mark; i < sent->len; i++) {
		xmpp_stanza_t *st = sent_st(i);

		n += st && str_is(xmpp_stanza_get_name(st), "message") &&
		     str_is(xmpp_stanza_get_to(st), to);
		if (st)
			xmpp_stanza_release(st);
	}
	return n;
}

/* Some data form field `var` under `st` has the value `value`. */
static int field_is(xmpp_stanza_t *st, const char *var, const char *value)
{
	xmpp_stanza_t *c, *v;
	const char *name = xmpp_stanza_get_name(st);
	char *text;
	int ok = 0;

	if (str_is(name, "field") && str_is(xmpp_stanza_get_attribute(st, "var"), var) &&
	    (v = find(st, "value", NULL))) {
		text = xmpp_stanza_get_text(v);
		ok = str_is(text, value);
		xmpp_free(xctx, text);
		return ok;
	}
	for (c = xmpp_stanza_get_children(st); c && !ok; c = xmpp_stanza_get_next(c))
		ok = xmpp_stanza_is_tag(c) && field_is(c, var, value);
	return ok;
}

/* Sent stanza `i` has a <publish-options/> form with pubsub#access_model open. */
static int sent_opens(int i, const char *holder)
{
	xmpp_stanza_t *st, *e;
	int ok;

	if (i < 0 || !(st = sent_st(i)))
		return 0;
	e = find(st, holder, NULL);
	ok = e && field_is(e, "pubsub#access_model", "open");
	xmpp_stanza_release(st);
	return ok;
}

/* Sent stanza `i` holds a device list that lists device `id`. */
static int sent_lists(int i, uint32_t id)
{
	char want[16];

	g_snprintf(want, sizeof(want), "%u", id);
	return i >= 0 && sent_has(i, "list", NS_LEGACY, NULL, NULL) &&
	       sent_has(i, "device", NULL, "id", want);
}

/* The queryid of the MAM query in sent stanza `i` (g_free), or NULL. */
static char *sent_queryid(int i)
{
	xmpp_stanza_t *st, *q;
	char *id = NULL;

	if (i < 0 || !(st = sent_st(i)))
		return NULL;
	q = find(st, "query", NS_MAM);
	if (q && xmpp_stanza_get_attribute(q, "queryid"))
		id = g_strdup(xmpp_stanza_get_attribute(q, "queryid"));
	xmpp_stanza_release(st);
	return id;
}

/* The text of element `name` in sent stanza `i` is `want`. */
static int sent_text_is(int i, const char *name, const char *want)
{
	xmpp_stanza_t *st, *e;
	char *text = NULL;
	int ok;

	if (i < 0 || !(st = sent_st(i)))
		return 0;
	if ((e = find(st, name, NULL)))
		text = xmpp_stanza_get_text(e);
	ok = str_is(text, want);
	xmpp_free(xctx, text);
	xmpp_stanza_release(st);
	return ok;
}

static int sent_anywhere(const char *needle)
{
	guint i;

	for (i = 0; i < sent->len; i++)
		if (strstr(g_ptr_array_index(sent, i), needle))
			return 1;
	return 0;
}

/* --- the server's answers ------------------------------------------------------- */

static int answer(mend_account *a, int i, const char *from, const char *type, const char *payload);

/*
 * The OMEMO:2 device list fetches to `from` not answered yet get item-not-found (an account
 * of legacy OMEMO only): the answer to a legacy list fetch brings them, so the tests written
 * for legacy OMEMO go on as they were.
 */
static void answer_lists2_none(mend_account *a, const char *from)
{
	static const char err[] =
	    "<error type='cancel'><item-not-found xmlns='" NS_STANZAS "'/></error>";
	guint i;

	for (i = 0; i < sent->len; i++)
		if (!g_hash_table_contains(answered, GINT_TO_POINTER(i + 1)) &&
		    sent_has(i, "items", NULL, "node", NODE2_LIST) && sent_attr_is(i, "to", from))
			answer(a, (int)i, from, "error", err);
}

/* Answers sent IQ `i` from `from` (NULL: no from) with type and payload. */
static int answer(mend_account *a, int i, const char *from, const char *type, const char *payload)
{
	xmpp_stanza_t *st;
	char *xml, *fattr;
	int r;

	if (i < 0 || !(st = sent_st(i)))
		return -1000;
	g_hash_table_add(answered, GINT_TO_POINTER(i + 1));
	fattr = from ? g_strdup_printf(" from='%s'", from) : g_strdup("");
	xml = g_strdup_printf("<iq type='%s' id='%s'%s to='%s'>%s</iq>", type,
	                      xmpp_stanza_get_id(st), fattr, self_full, payload ? payload : "");
	r = mend_account_handle_stanza(a, xml);
	g_free(xml);
	g_free(fattr);
	if (sent_has(i, "items", NULL, "node", NODE_LIST))
		answer_lists2_none(a, from);
	xmpp_stanza_release(st);
	return r;
}

static int answer_ok(mend_account *a, int i, const char *from)
{
	return answer(a, i, from, "result", NULL);
}

/* An error reply with condition `cond` (RFC 6120 §8.3.3). */
static int answer_error(mend_account *a, int i, const char *from, const char *cond)
{
	char *payload =
	    g_strdup_printf("<error type='cancel'><%s xmlns='" NS_STANZAS "'/></error>", cond);
	int r = answer(a, i, from, "error", payload);

	g_free(payload);
	return r;
}

/* A pubsub items result with one item holding `item`. */
static int answer_items(mend_account *a, int i, const char *from, const char *node,
                        const char *item)
{
	char *payload = g_strdup_printf("<pubsub xmlns='" NS_PUBSUB "'><items node='%s'>"
	                                "<item id='current'>%s</item></items></pubsub>",
	                                node, item);
	int r = answer(a, i, from, "result", payload);

	g_free(payload);
	return r;
}

static char *list_xml(uint32_t id)
{
	return g_strdup_printf("<list xmlns='" NS_LEGACY "'><device id='%u'/></list>", id);
}

static int answer_list(mend_account *a, int i, const char *from, uint32_t id)
{
	char *list = list_xml(id);
	int r = answer_items(a, i, from, NODE_LIST, list);

	g_free(list);
	return r;
}

/* --- stanzas from elsewhere -------------------------------------------------------- */

static char *text_of(xmpp_stanza_t *st)
{
	char *buf = NULL, *out = NULL;
	size_t len;

	if (xmpp_stanza_to_text(st, &buf, &len) == XMPP_EOK) {
		out = g_strndup(buf, len);
		xmpp_free(xctx, buf);
	}
	return out;
}

/*
 * `xml` as a server hands it over: from and to set (NULL: unchanged) and, when
 * sid is given, a stanza-id stamped by our server (XEP-0359). g_free it.
 */
static char *stamped(const char *xml, const char *from, const char *to, const char *sid)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml), *s;
	char *out;

	if (!st)
		return NULL;
	if (from)
		xmpp_stanza_set_from(st, from);
	if (to)
		xmpp_stanza_set_to(st, to);
	if (sid) {
		s = xmpp_stanza_new(xctx);
		xmpp_stanza_set_name(s, "stanza-id");
		xmpp_stanza_set_ns(s, "urn:xmpp:sid:0");
		xmpp_stanza_set_attribute(s, "by", ALICE);
		xmpp_stanza_set_attribute(s, "id", sid);
		xmpp_stanza_add_child(st, s);
		xmpp_stanza_release(s);
	}
	out = text_of(st);
	xmpp_stanza_release(st);
	return out;
}

/* A real message from bob to alice, as encrypt returns it (no from). g_free it. */
static char *bob_encrypts(mend_account *b, mend_account *a, const char *body)
{
	char *list = list_xml(aid), *bundle = NULL, *st = NULL, *out;
	int r;

	mend_account_devicelist_update(b, ALICE, list);
	g_free(list);
	r = mend_account_encrypt(b, ALICE, body, NULL, &st);
	if (r == MEND_ERR_NEED_BUNDLE) {
		mend_account_bundle_xml(a, &bundle);
		mend_account_bundle_process(b, ALICE, aid, bundle);
		mend_free(bundle);
		r = mend_account_encrypt(b, ALICE, body, NULL, &st);
	}
	if (r < 0)
		TAP_BAIL("bob cannot encrypt to alice: %s", mend_strerror(r));
	out = g_strdup(st);
	mend_free(st);
	return out;
}

/* Bob's messages with `bodies` to alice, as her archive holds them (from bob's phone, no
 * stanza-id): in[k] (g_free). */
static void bob_archived(mend_account *a, mend_account *b, const char *const *bodies, char **in,
                         int n)
{
	for (int k = 0; k < n; k++) {
		char *w = bob_encrypts(b, a, bodies[k]);

		in[k] = stamped(w, BOB "/phone", ALICE, NULL);
		g_free(w);
	}
}

/* <message from=FROM><KIND xmlns=carbons><forwarded>INNER</forwarded></KIND></message> */
static char *carbon(const char *from, const char *kind, const char *inner)
{
	return g_strdup_printf("<message from='%s' to='" ALICE_FULL "' type='chat'>"
	                       "<%s xmlns='" NS_CARBONS "'><forwarded xmlns='urn:xmpp:forward:0'>"
	                       "%s</forwarded></%s></message>",
	                       from, kind, inner, kind);
}

/* A MAM result for query `qid` (from: NULL for none), archive id `id`, holding `inner`. */
static char *mam_result(const char *from, const char *qid, const char *id, const char *inner)
{
	char *fattr = from ? g_strdup_printf(" from='%s'", from) : g_strdup("");
	char *xml = g_strdup_printf(
	    "<message to='" ALICE_FULL "'%s><result xmlns='" NS_MAM "' queryid='%s' id='%s'>"
	    "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='" STAMP
	    "'/>%s</forwarded></result></message>",
	    fattr, qid, id, inner);

	g_free(fattr);
	return xml;
}

static int handle(mend_account *a, char *xml)
{
	int r = mend_account_handle_stanza(a, xml);

	g_free(xml);
	return r;
}

static size_t pending(mend_account *a)
{
	size_t n = 99;

	if (mend_account_pending_count(a, &n) < 0)
		return 99;
	return n;
}

/* --- 1. connecting ------------------------------------------------------------------ */

/* The device-list publish: refused with options, configured, then published plainly. */
static void publish_fallback(mend_account *a, int list_pub, guint ev0)
{
	guint mark = sent->len;
	int conf, plain;

	TAP_EQ(answer_error(a, list_pub, ALICE, "conflict"), 1, "publish-options refused");
	conf = sent_find(mark, "configure", NULL, "node", NODE_LIST);
	TAP_OK(conf >= 0 && sent_has(conf, "pubsub", NS_OWNER, NULL, NULL),
	       "then the device list node is configured (pubsub#owner)");
	TAP_OK(sent_opens(conf, "configure"), "configured with access_model open");
	mark = sent->len;
	TAP_EQ(answer_ok(a, conf, ALICE), 1, "configure accepted");
	plain = sent_find(mark, "publish", NULL, "node", NODE_LIST);
	TAP_OK(plain >= 0 && !sent_has(plain, "publish-options", NULL, NULL, NULL),
	       "then the device list is published without options");
	TAP_OK(sent_lists(plain, aid), "still listing our device");
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 0, "no READY while a publish is open");
	TAP_EQ(answer_ok(a, plain, ALICE), 1, "plain publish accepted");
}

static void test_connect(mend_account *a)
{
	guint mark = sent->len, ev0 = events->len;
	int q, bundle_pub, list_pub;
	char node[64];

	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", aid);
	TAP_EQ(mend_account_connected(a, ALICE_FULL, MEND_CONNECT_CARBONS), 0, "connected");
	q = items_query(mark, NODE_LIST, ALICE);
	TAP_OK(q >= 0, "asks our account for its device list");
	TAP_OK(sent_find(mark, "enable", NS_CARBONS, NULL, NULL) >= 0, "enables carbons");
	if (q < 0)
		TAP_BAIL("no device list query");
	answer_ok(a, sent_find(mark, "enable", NS_CARBONS, NULL, NULL), ALICE);
	mark = sent->len;
	TAP_EQ(answer_error(a, q, "mallory@evil", "item-not-found"), 1,
	       "a reply from someone else is swallowed");
	TAP_EQ(sent->len, mark, "and changes nothing: nothing sent");
	TAP_EQ(answer_error(a, q, ALICE, "item-not-found"), 1, "the real reply: no list yet");
	bundle_pub = sent_find(mark, "publish", NULL, "node", node);
	list_pub = sent_find(mark, "publish", NULL, "node", NODE_LIST);
	TAP_OK(bundle_pub >= 0 && sent_has(bundle_pub, "bundle", NS_LEGACY, NULL, NULL),
	       "publishes our bundle at %s", node);
	TAP_OK(sent_opens(bundle_pub, "publish-options"), "bundle with access_model open");
	TAP_OK(sent_lists(list_pub, aid), "publishes a device list with our id");
	TAP_OK(sent_opens(list_pub, "publish-options"), "device list with access_model open");
	if (bundle_pub < 0 || list_pub < 0)
		TAP_BAIL("nothing published");
	TAP_EQ(answer_ok(a, bundle_pub, ALICE), 1, "bundle published");
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 0, "no READY with the device list open");
	publish_fallback(a, list_pub, ev0);
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 1, "READY once both publishes succeeded");
	TAP_EQ(answer_ok(a, list_pub, ALICE), 0, "a reply to an answered IQ is not ours");
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 1, "READY exactly once");
	TAP_EQ(count_events(ev0, MEND_EVENT_NOTICE), 0, "no failure notice");
}

/* --- 2. a message queued before READY -------------------------------------------------- */

/* Reconnects (the stream dropped and came back); returns the own device list query. */
static int reconnect(mend_account *a, unsigned flags)
{
	guint mark = sent->len;
	int q;

	mend_account_disconnected(a);
	if (mend_account_connected(a, ALICE_FULL, flags) < 0)
		TAP_BAIL("cannot connect");
	q = items_query(mark, NODE_LIST, ALICE);
	if (q < 0)
		TAP_BAIL("no own device list query on reconnect");
	return q;
}

/* Answers sent IQ `i` with bob's real bundle, as his server would. */
static int answer_bundle(mend_account *a, mend_account *b, int i)
{
	char node[64], *bundle = NULL;
	int r;

	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", bid);
	if (mend_account_bundle_xml(b, &bundle) < 0)
		TAP_BAIL("no bundle for bob");
	r = answer_items(a, i, BOB, node, bundle);
	mend_free(bundle);
	return r;
}

/* Answers bob's device list and bundle fetches as his server would. */
static void serve_bob(mend_account *a, mend_account *b, guint mark)
{
	char node[64];
	int q, bq;

	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", bid);
	q = items_query(mark, NODE_LIST, BOB);
	TAP_OK(q >= 0, "after READY bob's device list is fetched from bob@x");
	TAP_EQ(answer_list(a, q, BOB, bid), 1, "bob's list taken");
	TAP_EQ(messages_to(mark, BOB), 0, "still no message without bob's bundle");
	bq = items_query(mark, node, BOB);
	TAP_OK(bq >= 0, "then bob's bundle %s is fetched from bob@x", node);
	TAP_EQ(answer_bundle(a, b, bq), 1, "bob's bundle taken");
	/* a fetch of our own list, if the core makes one, finds our device */
	q = items_query(mark, NODE_LIST, ALICE);
	if (q >= 0)
		answer_list(a, q, ALICE, aid);
}

/* Bob reads the one message alice's core sent him. */
static void bob_reads(mend_account *b, guint mark, const char *want)
{
	mend_message *m = NULL;
	guint i;
	char *wire;

	for (i = mark; i < sent->len; i++)
		if (sent_has(i, "message", NULL, "to", BOB))
			break;
	if (i == sent->len) {
		TAP_OK(0, "bob decrypts the message");
		return;
	}
	wire = stamped(g_ptr_array_index(sent, i), ALICE_FULL, NULL, NULL);
	TAP_EQ(mend_account_decrypt(b, wire, &m), 0, "bob decrypts the message");
	TAP_OK(m && str_is(m->body, want), "to \"%s\"", want);
	mend_message_free(m);
	g_free(wire);
}

static void test_pending(mend_account *a, mend_account *b)
{
	guint ev0 = events->len, mark = sent->len;
	int q = reconnect(a, 0), msg, pub;
	char *id = NULL, node[64];
	const rec *ev;

	TAP_EQ(mend_account_send(a, BOB, "secret text", &id), 0, "send before READY");
	/* should the core ask for bob's keys already, his server answers at once */
	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", bid);
	answer_list(a, items_query(mark, NODE_LIST, BOB), BOB, bid);
	answer_bundle(a, b, items_query(mark, node, BOB));
	TAP_EQ(messages_to(mark, BOB), 0, "no message leaves before READY");
	TAP_EQ(pending(a), 1, "it waits in the pending queue");
	TAP_EQ(answer_list(a, q, ALICE, aid), 1, "own list (with us) taken");
	pub = sent_find(mark, "publish", NULL, NULL, NULL);
	TAP_EQ(answer_ok(a, pub, ALICE), 1, "bundle republished");
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 1, "READY");
	serve_bob(a, b, mark);
	TAP_EQ(messages_to(mark, BOB), 1, "exactly one message to bob@x");
	msg = sent_find(mark, "message", NULL, "to", BOB);
	TAP_OK(msg >= 0 && sent_has(msg, "encrypted", NS_LEGACY, NULL, NULL), "encrypted");
	TAP_OK(!sent_anywhere("secret text"), "the plaintext is in no stanza the core sent");
	ev = event_of(ev0, MEND_EVENT_SENT);
	TAP_OK(ev && str_is(ev->id, id), "SENT with the message id");
	TAP_EQ(ev ? ev->n_devices : 0, 1, "for bob's one device");
	TAP_EQ(pending(a), 0, "the pending queue is empty");
	bob_reads(b, mark, "secret text");
	mend_free(id);
}

/*
 * The disco#info question the core asks `jid` after its device list was refused
 * (since `mark`), answered with a result (cond NULL) or an error. -1000: none asked.
 */
static int answer_probe(mend_account *a, guint mark, const char *jid, const char *cond)
{
	int i = sent_find(mark, "query", "http://jabber.org/protocol/disco#info", NULL, NULL);

	if (i < 0 || !sent_attr_is(i, "to", jid))
		return -1000;
	return cond ? answer_error(a, i, jid, cond) : answer_ok(a, i, jid);
}

/* --- 3. a peer without OMEMO ------------------------------------------------------------ */

static void test_no_omemo(mend_account *a)
{
	guint ev0 = events->len, mark = sent->len;
	char *id = NULL;
	const rec *ev;
	int q;

	TAP_EQ(mend_account_send(a, CAROL, "hello carol", &id), 0, "send to carol");
	q = items_query(mark, NODE_LIST, CAROL);
	TAP_OK(q >= 0, "carol's device list is fetched");
	TAP_EQ(answer_error(a, q, CAROL, "item-not-found"), 1, "carol has none");
	TAP_EQ(answer_probe(a, mark, CAROL, NULL), 1, "carol's account exists (disco#info)");
	ev = event_of(ev0, MEND_EVENT_SEND_FAILED);
	TAP_OK(ev && str_is(ev->id, id), "SEND_FAILED for that message");
	TAP_EQ(ev ? ev->error : 0, MEND_ERR_NO_DEVICES, "because carol has no device");
	TAP_OK(ev && ev->text && strstr(ev->text, CAROL), "a sentence naming carol@x");
	TAP_EQ(messages_to(mark, CAROL), 0, "nothing was sent to carol");
	TAP_OK(!sent_anywhere("hello carol"), "not even in plaintext");
	TAP_EQ(pending(a), 0, "the pending queue is empty again");
	TAP_EQ(count_events(ev0, MEND_EVENT_SENT), 0, "no SENT");
	mend_free(id);
}

/* --- 4. forged carbons (XEP-0280 §11) ---------------------------------------------------- */

static void test_carbons(mend_account *a, mend_account *b)
{
	char *wire = bob_encrypts(b, a, "via carbons");
	char *as_ours = stamped(wire, ALICE "/other", BOB, NULL);
	char *inner = stamped(wire, BOB "/phone", ALICE "/other", NULL);
	guint ev0 = events->len;
	const rec *ev;

	TAP_EQ(handle(a, carbon(BOB "/evil", "sent", as_ours)), MEND_ERR_FORGED,
	       "a sent carbon from bob@x/evil is forged");
	TAP_EQ(handle(a, carbon(BOB "/evil", "received", inner)), MEND_ERR_FORGED,
	       "a received carbon from bob@x/evil is forged");
	TAP_EQ(handle(a, carbon(ALICE "/other", "received", inner)), MEND_ERR_FORGED,
	       "a carbon from one of our full JIDs is forged too");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "no MESSAGE from forged carbons");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nor anything else");
	TAP_EQ(handle(a, carbon(ALICE, "received", inner)), 1,
	       "the same carbon from our bare JID is taken");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "via carbons"), "and decrypts");
	TAP_EQ(ev ? (int)ev->carbon : -1, MEND_CARBON_RECEIVED, "as a received carbon");
	TAP_OK(ev && str_is(ev->from, BOB), "from bob");
	g_free(wire);
	g_free(as_ours);
	g_free(inner);
}

/* --- 5. the archive (XEP-0313) ------------------------------------------------------------ */

/* Answers the MAM query `q` with a <fin/> whose last id is `last`: the last page, or not. */
static int mam_fin_page(mend_account *a, int q, const char *last, int complete)
{
	char *payload = g_strdup_printf(
	    "<fin xmlns='" NS_MAM "' complete='%s'><set xmlns='http://jabber.org/protocol/rsm'>"
	    "<last>%s</last></set></fin>",
	    complete ? "true" : "false", last);
	int r = answer(a, q, ALICE, "result", payload);

	g_free(payload);
	return r;
}

/* Answers the MAM query `q` with a complete <fin/> whose last id is `last`. */
static int mam_fin(mend_account *a, int q, const char *last)
{
	return mam_fin_page(a, q, last, 1);
}

/* Reconnects with a catch-up; returns the MAM query, *qid its queryid. */
static int catchup(mend_account *a, char **qid)
{
	guint mark = sent->len;
	int q;

	answer_list(a, reconnect(a, MEND_CONNECT_CATCHUP), ALICE, aid);
	answer_ok(a, sent_find(mark, "publish", NULL, NULL, NULL), ALICE);
	q = sent_find(mark, "query", NS_MAM, NULL, NULL);
	*qid = sent_queryid(q);
	if (!*qid)
		TAP_BAIL("no MAM query with a queryid");
	return q;
}

static void mam_replays(mend_account *a, const char *inner)
{
	guint ev0 = events->len;
	char *qid = NULL, *live;
	int q = catchup(a, &qid);

	TAP_OK(sent_text_is(q, "after", "a2"), "the next catch-up starts after a2");
	TAP_EQ(handle(a, mam_result(NULL, qid, "a1", inner)), 1, "a1 again in a new catch-up");
	TAP_EQ(mam_fin(a, q, "a1"), 1, "fin");
	live = stamped(inner, NULL, ALICE_FULL, "a1");
	handle(a, live);
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "a1 is not shown twice");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nor reported undecryptable");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "CATCHUP_DONE");
	g_free(qid);
}

static void test_archive(mend_account *a, mend_account *b)
{
	char *w1 = bob_encrypts(b, a, "from the archive"), *w2 = bob_encrypts(b, a, "second");
	char *i1 = stamped(w1, BOB "/phone", ALICE, NULL),
	     *i2 = stamped(w2, BOB "/phone", ALICE, NULL);
	char *qid = NULL;
	int q = catchup(a, &qid);
	guint ev0 = events->len;
	const rec *ev;

	TAP_EQ(handle(a, mam_result(NULL, "OTHER", "a1", i1)), 0,
	       "another query's result: not ours");
	TAP_EQ(handle(a, mam_result("mallory@evil", qid, "a1", i1)), MEND_ERR_FORGED,
	       "our query's result from mallory@evil is forged");
	TAP_EQ(events->len, ev0, "neither gives an event");
	TAP_EQ(handle(a, mam_result(NULL, qid, "a1", i1)), 1, "our result, no from: taken");
	TAP_EQ(handle(a, mam_result(ALICE, qid, "a2", i2)), 1, "our result from our bare JID");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0,
	       "nothing shown before the page commits, at its <fin/>");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 0, "no CATCHUP_DONE before <fin/>");
	TAP_EQ(mam_fin(a, q, "a2"), 1, "fin complete");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "from the archive"), "decrypted");
	TAP_EQ(ev ? ev->archived : 0, 1, "archived");
	TAP_OK(ev && str_is(ev->timestamp, STAMP), "with the time of <delay/>");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 2, "decrypted too");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "CATCHUP_DONE");
	TAP_OK(mend_store_stanza_seen(a->store, ALICE, "a1") == 0 &&
	           mend_store_stanza_seen(a->store, ALICE, "a2") == 0,
	       "a message kept in history is not marked seen as well");
	TAP_OK(mend_store_stanza_seen_or_kept(a->store, ALICE, "a1") == 1 &&
	           mend_store_stanza_seen_or_kept(a->store, ALICE, "a2") == 1,
	       "its history row marks it");
	mam_replays(a, i1);
	g_free(qid);
	g_free(w1);
	g_free(w2);
	g_free(i1);
	g_free(i2);
}

/*
 * A stanza-id shaped like another kind of history key ("id:" and a message id: our own sent
 * messages' keys) is looked up and marked in seen_stanzas alone: our own message kept under
 * that key does not make bob's new one a duplicate.
 */
static void test_sid_like_own_key(mend_account *a, mend_account *b)
{
	mend_history_item own = {
	    .key = "id:own-1", .peer = BOB, .from = ALICE, .body = "ours", .outgoing = 1};
	char *w = bob_encrypts(b, a, "new from bob");
	guint ev0 = events->len;
	const rec *ev;

	TAP_EQ(mend_store_history_put(a->store, &own), 0, "our own message kept under id:own-1");
	TAP_EQ(handle(a, stamped(w, BOB "/phone", ALICE_FULL, "id:own-1")), 1,
	       "bob's message with the stanza-id id:own-1");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "new from bob"), "is shown, not taken for our own");
	TAP_EQ(mend_store_stanza_seen(a->store, ALICE, "id:own-1"), 1,
	       "and marked seen in seen_stanzas");
	g_free(w);
}

/* --- 5b. the archive answers with an error mid-catch-up ----------------------------------- */

static mend_account *open_in(const char *root, const char *jid, const mend_host_ops *ops);

/* How many MESSAGE events since `mark` had `body`. */
static int count_bodies(guint mark, const char *body)
{
	int n = 0;

	for (guint i = mark; i < events->len; i++) {
		const rec *r = g_ptr_array_index(events, i);

		n += r->kind == MEND_EVENT_MESSAGE && str_is(r->body, body);
	}
	return n;
}

/* --- 5a. a crash in the middle of a catch-up page ------------------------------------------ */

/* A catch-up page is one transaction: results handled, then the process dies before <fin/>. */
static mend_account *test_crash_mid_page(const char *root, mend_account *a, mend_account *b)
{
	const char *bodies[] = {"page 0", "page 1", "page 2", "page 3", "page 4"};
	char *in[5], *qid = NULL;
	guint ev0;
	int q, k;

	bob_archived(a, b, bodies, in, 5);
	q = catchup(a, &qid);
	TAP_EQ(handle(a, mam_result(NULL, qid, "crash0", in[0])), 1, "a page of one result");
	TAP_EQ(mam_fin(a, q, "crash0"), 1, "and its fin: the page commits");
	g_free(qid);
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", "crash0"), "the next catch-up starts after crash0");
	ev0 = events->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, "crash1", in[1])), 1, "crash1 of the next page");
	TAP_EQ(handle(a, mam_result(NULL, qid, "crash2", in[2])), 1, "crash2");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "nothing shown before the page commits");
	/* the process dies here: what a crash leaves is what closing leaves (no commit) */
	mend_account_free(a);
	a = open_in(root, ALICE, &alice_ops);
	g_free(qid);
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", "crash0"),
	       "after the crash the page is asked again from the stored position: after crash0");
	for (k = 1; k < 4; k++) {
		char id[8] = {'c', 'r', 'a', 's', 'h', (char)('0' + k), 0};

		TAP_EQ(handle(a, mam_result(NULL, qid, id, in[k])), 1, "%s again (or new)", id);
	}
	TAP_EQ(mam_fin(a, q, "crash3"), 1, "fin");
	for (k = 1; k < 4; k++)
		TAP_EQ(count_bodies(ev0, bodies[k]), 1, "\"%s\" shown exactly once", bodies[k]);
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0,
	       "nothing undecryptable: the ratchet rolled back with the page");
	g_free(qid);
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", "crash3"), "the position after it is crash3");
	ev0 = events->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, "crash4", in[4])), 1, "crash4 of the next page");
	mend_account_disconnected(a);
	TAP_EQ(count_bodies(ev0, bodies[4]), 1,
	       "the stream goes down mid-page: what came commits and is shown");
	g_free(qid);
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", "crash4"), "the next catch-up starts after crash4");
	mam_fin(a, q, "crash4");
	for (k = 0; k < 5; k++)
		g_free(in[k]);
	g_free(qid);
	return a;
}

static int64_t test_clock(void *data);

/* Whether the stored catch-up position is `want`. */
static int position_is(mend_account *a, const char *want)
{
	char *v = NULL;
	int ok = mend_store_meta_get(a->store, "mam_last", &v) == MEND_OK && str_is(v, want);

	if (!ok)
		printf("#   the position stored is %s\n", v ? v : "none");

	g_free(v);
	return ok;
}

/* The server's page ends at `last` with a <fin/> asking for more; the next query, after it. */
static int page_more(mend_account *a, int q, const char *last)
{
	guint mark = sent->len;
	int next;

	TAP_EQ(mam_fin_page(a, q, last, 0), 1, "the server's page ends at %s, more to come", last);
	next = sent_find(mark, "query", NS_MAM, NULL, NULL);
	TAP_OK(next >= 0 && sent_text_is(next, "after", last),
	       "the next page is asked for, after %s", last);
	return next;
}

/*
 * A catch-up's page spans the server's pages (archive.c, spans()): Prosody sends 50 results
 * at most, and each commit writes the senders' sessions and the position again. A <fin/>
 * asking for more leaves the page open: it commits at the last <fin/>, or when the next page
 * is SPAN_SECONDS late; a crash before that asks all of it again.
 */
static mend_account *test_page_spans_pages(const char *root, mend_account *a, mend_account *b)
{
	const char *bodies[] = {"span 0", "span 1", "span 2", "span 3", "span 4", "span 5"};
	const char *ids[] = {"span0", "span1", "span2", "span3", "span4", "span5"};
	char *in[6], *qid = NULL, *pos0 = NULL;
	int64_t now = g_get_real_time() / G_USEC_PER_SEC;
	guint ev0;
	int q, k;

	bob_archived(a, b, bodies, in, 6);
	mend_store_meta_get(a->store, "mam_last", &pos0);
	q = catchup(a, &qid);
	ev0 = events->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[0], in[0])), 1, "span0");
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[1], in[1])), 1, "span1");
	q = page_more(a, q, ids[1]);
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0,
	       "nothing shown yet: the page stays open across the server's pages");
	TAP_OK(position_is(a, pos0), "and the position is not stored yet (still %s)", pos0);
	TAP_EQ(mend_store_begin(a->store), 0, "other work opens a transaction");
	mend_store_commit(a->store);
	TAP_EQ(count_bodies(ev0, bodies[1]), 1, "it commits the open page first: shown");
	TAP_OK(position_is(a, ids[1]), "with the page's position, span1");
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[2], in[2])), 1,
	       "span2, of the server's next page");
	TAP_EQ(mam_fin(a, q, ids[2]), 1, "the last page's fin");
	for (k = 0; k < 3; k++)
		TAP_EQ(count_bodies(ev0, bodies[k]), 1, "\"%s\" shown once", bodies[k]);
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "the catch-up ends");
	TAP_OK(position_is(a, ids[2]), "the position stored is span2");

	/* the server's next page is late */
	mend_account_set_clock(a, test_clock, &now);
	mend_account_tick(a); /* its hourly work (the signed prekey's age) done before */
	g_free(qid);
	q = catchup(a, &qid);
	ev0 = events->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[3], in[3])), 1, "span3");
	q = page_more(a, q, ids[3]);
	mend_account_tick(a);
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "a tick in the same second: still open");
	now += 1;
	mend_account_tick(a);
	TAP_EQ(count_bodies(ev0, bodies[3]), 1,
	       "the next page a second late: the open page commits and is shown meanwhile");
	TAP_OK(position_is(a, ids[3]), "with its position, span3");
	TAP_EQ(mam_fin(a, q, ids[3]), 1, "the late page: nothing more");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "the catch-up ends");
	mend_account_set_clock(a, NULL, NULL);

	/* the process dies while the page waits for the server's next page */
	g_free(qid);
	q = catchup(a, &qid);
	ev0 = events->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[4], in[4])), 1, "span4");
	page_more(a, q, ids[4]);
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[5], in[5])), 1,
	       "span5, of the server's next page");
	mend_account_free(a); /* what a crash leaves is what closing leaves (no commit) */
	a = open_in(root, ALICE, &alice_ops);
	g_free(qid);
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", ids[3]),
	       "after the crash the catch-up starts after span3 again, before the open page");
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[4], in[4])), 1, "span4 again");
	TAP_EQ(handle(a, mam_result(NULL, qid, ids[5], in[5])), 1, "span5 again");
	TAP_EQ(mam_fin(a, q, ids[5]), 1, "fin");
	for (k = 4; k < 6; k++)
		TAP_EQ(count_bodies(ev0, bodies[k]), 1, "\"%s\" shown exactly once", bodies[k]);
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nothing undecryptable");
	for (k = 0; k < 6; k++)
		g_free(in[k]);
	g_free(qid);
	g_free(pos0);
	return a;
}

/*
 * Bob's n messages with `body` to alice, as results <prefix>0, <prefix>1, ... of one server
 * page of a catch-up, then its fin, where the engine's page is full after `full` results:
 * nothing is shown before the next result, which commits those first (shown, the position
 * at the last of them); the fin shows the rest. `what` says what fills the page.
 */
static void page_fills(mend_account *a, mend_account *b, const char *body, int full, int n,
                       const char *prefix, const char *what)
{
	char *qid = NULL, *w = NULL, *st, id[32], last[32] = "";
	int q, k, taken = 0, shown_early = -1, shown_next = -1;
	guint ev0;

	q = catchup(a, &qid);
	ev0 = events->len;
	for (k = 0; k < n; k++) {
		if (mend_account_encrypt(b, ALICE, body, NULL, &w) < 0)
			TAP_BAIL("bob cannot encrypt to alice");
		g_snprintf(id, sizeof(id), "%s%d", prefix, k);
		if (k == full)
			shown_early = count_events(ev0, MEND_EVENT_MESSAGE);
		st = stamped(w, BOB "/phone", ALICE, NULL);
		taken += handle(a, mam_result(NULL, qid, id, st)) == 1;
		g_free(st);
		mend_free(w);
		if (k == full)
			shown_next = count_events(ev0, MEND_EVENT_MESSAGE);
		if (k == full - 1)
			g_strlcpy(last, id, sizeof(last));
	}
	TAP_EQ(taken, n, "%d results in one server page, each taken", n);
	TAP_EQ(shown_early, 0, "nothing shown after %d results: %s fill one page", full, what);
	TAP_EQ(shown_next, full, "the next result committed the full page first: %d shown", full);
	TAP_OK(position_is(a, last), "with the position of its last result, %s", last);
	TAP_EQ(mam_fin(a, q, id), 1, "fin");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), n, "then the rest, at the fin");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nothing undecryptable");
	g_free(qid);
}

/*
 * A catch-up page holds MEND_CATCHUP_PAGE_MAX results at most, whatever the server sends:
 * the result after that commits the page first, so what a page keeps in memory, and asks
 * again after a crash, stays bounded.
 */
static void test_page_max(mend_account *a, mend_account *b)
{
	page_fills(a, b, "page max", MEND_CATCHUP_PAGE_MAX, MEND_CATCHUP_PAGE_MAX + 1, "pagemax",
	           "they");
}

/*
 * A page's events keep their bodies until it commits: MEND_CATCHUP_PAGE_BYTES of them at
 * most (a message may be 1 MiB), so an archive of large messages commits in smaller pages.
 */
static void test_page_bytes(mend_account *a, mend_account *b)
{
	char *body = g_strnfill(65536, 'b');

	page_fills(a, b, body, MEND_CATCHUP_PAGE_BYTES / 65536, MEND_CATCHUP_PAGE_BYTES / 65536 + 2,
	           "pagebytes", "their 64 KiB bodies");
	g_free(body);
}

/* How many rows note messages not yet shown (shown.c): "unshown|..." and "unshown-page|...". */
static int unshown_rows(mend_account *a)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (mend_store_stmt(a->store,
	                    "SELECT count(*) FROM meta WHERE key >= 'unshown' AND "
	                    "key < 'unshowo'",
	                    &st) == MEND_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	if (st)
		sqlite3_reset(st);
	return n;
}

/*
 * A catch-up page notes its messages in one row as it commits (shown.c). The process is
 * killed (SIGKILL, the store's kill point) right after the host showed the first message
 * of a committed page of three: the ratchet steps, the seen stanza-ids and the position
 * are committed, so only that row can bring the other two back. The next start shows all
 * three (the first again: the host knows it by its stanza-id), and then nothing more.
 */
static mend_account *test_page_crash_after_commit(const char *root, mend_account *a,
                                                  mend_account *b)
{
	const char *bodies[] = {"noted 0", "noted 1", "noted 2"};
	char *in[3], *qid = NULL;
	guint ev0;
	pid_t pid;
	int q, k, status = 0;

	bob_archived(a, b, bodies, in, 3);
	q = catchup(a, &qid);
	mam_fin(a, q, "noted-start");
	g_free(qid);
	TAP_EQ(unshown_rows(a), 0, "no message waits to be shown");
	mend_account_free(a);
	fflush(NULL);
	pid = fork();
	if (pid == 0) { /* the process that dies: its events are its own */
		g_setenv("MEND_TEST_KILL_AT", "shown:1", TRUE);
		a = open_in(root, ALICE, &alice_ops);
		q = catchup(a, &qid);
		for (k = 0; k < 3; k++) {
			char id[8] = {'n', 'o', 't', 'e', 'd', (char)('0' + k), 0};

			handle(a, mam_result(NULL, qid, id, in[k]));
		}
		mam_fin(a, q, "noted2");
		_exit(3); /* not killed: the test below fails */
	}
	TAP_OK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) &&
	           WTERMSIG(status) == SIGKILL,
	       "the process was killed after showing the first message of the page (status %d)",
	       status);
	a = open_in(root, ALICE, &alice_ops);
	TAP_EQ(unshown_rows(a), 1, "the page's row of notes is there after the crash");
	ev0 = events->len;
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", "noted2"),
	       "the page is not asked again: its position committed");
	mam_fin(a, q, "noted2");
	for (k = 0; k < 3; k++)
		TAP_EQ(count_bodies(ev0, bodies[k]), 1, "\"%s\" shown after the restart",
		       bodies[k]);
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nothing undecryptable");
	TAP_EQ(unshown_rows(a), 0, "and no note is left");
	g_free(qid);
	ev0 = events->len;
	q = catchup(a, &qid);
	mam_fin(a, q, "noted2");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0,
	       "the next catch-up shows none of them again");
	for (k = 0; k < 3; k++)
		g_free(in[k]);
	g_free(qid);
	return a;
}

/*
 * A message of a catch-up page from a device not in its sender's list waits for that list
 * (announce.c) when the page is handed over: the page's row of notes goes, and that
 * message keeps a row of its own until the list comes and the host has it.
 */
static void test_page_note_waits(const char *root, mend_account *a)
{
	char *other = g_build_filename(root, "other", NULL), *qid = NULL, *w, *in, *list;
	mend_account *b2 = open_in(other, BOB, &(const mend_host_ops){0});
	uint32_t b2id = mend_account_device_id(b2);
	guint ev0, mark;
	int q, fetch;

	w = bob_encrypts(b2, a, "from a device not listed yet");
	in = stamped(w, BOB "/tablet", ALICE, NULL);
	q = catchup(a, &qid);
	ev0 = events->len;
	mark = sent->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, "wait1", in)), 1, "a result from bob's new device");
	TAP_EQ(mam_fin(a, q, "wait1"), 1, "the page commits");
	fetch = items_query(mark, NODE_LIST, BOB);
	TAP_OK(fetch >= 0, "bob's list is fetched: device %u is not in it", b2id);
	TAP_EQ(count_bodies(ev0, "from a device not listed yet"), 0, "the message waits for it");
	TAP_EQ(unshown_rows(a), 1, "noted by a row of its own, the page's row gone");
	list = g_strdup_printf(
	    "<list xmlns='" NS_LEGACY "'><device id='%u'/><device id='%u'/></list>", bid, b2id);
	answer_items(a, fetch, BOB, NODE_LIST, list);
	TAP_EQ(count_bodies(ev0, "from a device not listed yet"), 1, "shown once the list came");
	TAP_EQ(unshown_rows(a), 0, "and its note is gone");
	g_free(list);
	list = list_xml(bid); /* the tablet goes again: the tests below know bob with one device */
	mend_account_devicelist_update(a, BOB, list);
	mend_account_free(b2);
	g_free(list);
	g_free(other);
	g_free(qid);
	g_free(in);
	g_free(w);
}

static char *damaged(const char *wire);

/*
 * A catch-up page runs without a savepoint per result (archive.c, store.c's lazy batch). A
 * result that fails after its ratchet step was written (a payload that does not open)
 * cannot be undone alone: the page is lost and asked again at once from the stored
 * position, with a savepoint per result; every message is then shown once, the broken
 * one reported once, and nobody is told of an archive error.
 */
static void test_lazy_page_lost(mend_account *a, mend_account *b)
{
	const char *bodies[] = {"lazy 0", "lazy 1", "lazy 2", "lazy 3"};
	char *in[4], *qid = NULL, *qid2 = NULL;
	guint ev0, mark;
	int q, q2, k;

	for (k = 0; k < 4; k++) {
		char *w = bob_encrypts(b, a, bodies[k]), *t = k == 2 ? damaged(w) : NULL;

		in[k] = stamped(t ? t : w, BOB "/phone", ALICE, NULL);
		g_free(t);
		g_free(w);
	}
	q = catchup(a, &qid);
	TAP_EQ(handle(a, mam_result(NULL, qid, "lazy0", in[0])), 1, "a page of one result");
	TAP_EQ(mam_fin(a, q, "lazy0"), 1, "committed");
	g_free(qid);
	q = catchup(a, &qid);
	ev0 = events->len;
	for (k = 1; k < 4; k++) {
		char id[8] = {'l', 'a', 'z', 'y', (char)('0' + k), 0};

		TAP_EQ(handle(a, mam_result(NULL, qid, id, in[k])), 1, "%s taken", id);
	}
	mark = sent->len;
	TAP_EQ(mam_fin(a, q, "lazy3"), 1, "the page's fin");
	q2 = sent_find(mark, "query", NS_MAM, NULL, NULL);
	TAP_OK(q2 >= 0, "the page is asked again at once");
	TAP_OK(q2 >= 0 && sent_text_is(q2, "after", "lazy0"), "from the stored position");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE) + count_events(ev0, MEND_EVENT_UNDECRYPTABLE) +
	           count_events(ev0, MEND_EVENT_NOTICE),
	       0, "nothing of the lost page shown, no notice");
	qid2 = q2 >= 0 ? sent_queryid(q2) : NULL;
	if (!qid2)
		TAP_BAIL("no queryid in the query asked again");
	for (k = 1; k < 4; k++) {
		char id[8] = {'l', 'a', 'z', 'y', (char)('0' + k), 0};

		TAP_EQ(handle(a, mam_result(NULL, qid2, id, in[k])), 1, "%s again", id);
	}
	TAP_EQ(mam_fin(a, q2, "lazy3"), 1, "its fin");
	TAP_OK(count_bodies(ev0, bodies[1]) == 1 && count_bodies(ev0, bodies[3]) == 1,
	       "the messages around the broken one shown exactly once");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 1, "the broken one reported once");
	TAP_EQ(count_events(ev0, MEND_EVENT_NOTICE), 0, "no notice of an archive error");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "the catch-up ends");
	g_free(qid);
	q = catchup(a, &qid);
	TAP_OK(sent_text_is(q, "after", "lazy3"), "the next catch-up starts after lazy3");
	mam_fin(a, q, "lazy3");
	for (k = 0; k < 4; k++)
		g_free(in[k]);
	g_free(qid);
	g_free(qid2);
}

static int64_t test_clock(void *data)
{
	return *(const int64_t *)data;
}

/*
 * Alice's bundle offering only its n-th one-time prekey (0: the first), whose
 * id goes to *id: whoever uses the bundle takes that one. g_free.
 */
static char *nth_prekey_bundle(mend_account *a, int n, char *id)
{
	GRegex *re = g_regex_new("<preKeyPublic preKeyId=['\"]([0-9]+)['\"]>[^<]*</preKeyPublic>",
	                         0, 0, NULL);
	GMatchInfo *mi = NULL;
	char *bundle = NULL, *out = NULL, *keep = NULL, *pid;
	int first = -1, last = -1, start, end, k = 0;

	if (mend_account_bundle_xml(a, &bundle) < 0)
		TAP_BAIL("no bundle for alice");
	for (g_regex_match(re, bundle, 0, &mi); g_match_info_matches(mi);
	     g_match_info_next(mi, NULL)) {
		g_match_info_fetch_pos(mi, 0, &start, &end);
		if (first < 0)
			first = start;
		last = end;
		if (k++ == n) {
			keep = g_match_info_fetch(mi, 0);
			pid = g_match_info_fetch(mi, 1);
			g_strlcpy(id, pid, 16);
			g_free(pid);
		}
	}
	g_match_info_free(mi);
	g_regex_unref(re);
	if (!keep)
		TAP_BAIL("alice's bundle has no prekey %d", n);
	out = g_strdup_printf("%.*s%s%s", first, bundle, keep, bundle + last);
	g_free(keep);
	mend_free(bundle);
	return out;
}

static char *one_prekey_bundle(mend_account *a)
{
	char id[16];

	return nth_prekey_bundle(a, 0, id);
}

/* The first message of `s` to alice, built on `bundle`, as alice's archive holds it. g_free. */
static char *first_message(mend_account *s, const char *from, const char *bundle, const char *body)
{
	char *list = list_xml(aid), *st = NULL, *out;

	mend_account_devicelist_update(s, ALICE, list);
	g_free(list);
	if (mend_account_bundle_process(s, ALICE, aid, bundle) < 0 ||
	    mend_account_encrypt(s, ALICE, body, NULL, &st) < 0)
		TAP_BAIL("%s cannot encrypt to alice", from);
	out = stamped(st, from, ALICE, NULL);
	mend_free(st);
	return out;
}

/*
 * Carol and erin both start a session on the same one-time prekey while
 * alice is offline. The archive serves carol's message, then fails: the
 * catch-up must not end (position and used prekey kept) and must ask again
 * later, from the same position, so that erin's message still decrypts.
 */
static void test_archive_error(const char *root, mend_account *a)
{
	static const mend_host_ops quiet = {0};
	mend_account *c = open_in(root, CAROL, &quiet), *e = open_in(root, ERIN, &quiet);
	char *bundle = one_prekey_bundle(a);
	char *ic = first_message(c, CAROL "/pc", bundle, "carol while offline");
	char *ie = first_message(e, ERIN "/pc", bundle, "erin while offline");
	int64_t now = g_get_real_time() / G_USEC_PER_SEC;
	char *qid = NULL, *qid2 = NULL;
	guint ev0, mark;
	const rec *n;
	int q, q2;

	mend_account_set_clock(a, test_clock, &now);
	q = catchup(a, &qid);
	ev0 = events->len;
	TAP_EQ(handle(a, mam_result(NULL, qid, "e1", ic)), 1, "carol's message from the archive");
	mark = sent->len;
	TAP_EQ(answer_error(a, q, ALICE, "internal-server-error"), 1,
	       "then the archive answers the query with an error");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 0, "the catch-up has not ended");
	n = event_of(ev0, MEND_EVENT_NOTICE);
	TAP_OK(n && n->text && strstr(n->text, "internal-server-error") &&
	           strstr(n->text, "10 seconds"),
	       "the user is told, with the reason and when mend asks again: %s",
	       n && n->text ? n->text : "(no notice)");
	now += 9;
	mend_account_tick(a);
	TAP_EQ(sent_find(mark, "query", NS_MAM, NULL, NULL), -1, "no new query before its time");
	now += 1;
	mend_account_tick(a);
	q2 = sent_find(mark, "query", NS_MAM, NULL, NULL);
	qid2 = sent_queryid(q2);
	TAP_OK(q2 >= 0 && qid2, "10 seconds later the archive is asked again");
	TAP_OK(sent_text_is(q2, "after", "e1"), "from the kept position: after e1");
	if (!qid2)
		TAP_BAIL("no retry");
	TAP_EQ(handle(a, mam_result(NULL, qid2, "e1", ic)), 1, "a server that repeats e1");
	TAP_EQ(handle(a, mam_result(NULL, qid2, "e2", ie)), 1, "erin's message");
	TAP_EQ(mam_fin(a, q2, "e2"), 1, "fin complete");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 2, "two messages");
	TAP_EQ(count_bodies(ev0, "carol while offline"), 1, "carol's, once");
	TAP_EQ(count_bodies(ev0, "erin while offline"), 1,
	       "and erin's, built on the one-time prekey carol used: it was kept");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nothing undecryptable");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "CATCHUP_DONE once, at the end");
	mend_account_set_clock(a, NULL, NULL);
	g_free(qid);
	g_free(qid2);
	g_free(bundle);
	g_free(ic);
	g_free(ie);
	mend_account_free(c);
	mend_account_free(e);
}

/* --- 5c. the published bundle never offers a used prekey ------------------------------------ */

/* The bundle publishes sent since `mark`: their count; *last the index of the last one. */
static int bundle_publishes(guint mark, int *last)
{
	char node[64];
	int n = 0;

	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", aid);
	*last = -1;
	for (guint i = mark; i < sent->len; i++)
		if (sent_has(i, "publish", NULL, "node", node)) {
			n++;
			*last = (int)i;
		}
	return n;
}

/* Whether sent stanza `i` offers one-time prekey `id`. */
static int offers(int i, const char *id)
{
	char *a = g_strdup_printf("preKeyId='%s'", id), *b = g_strdup_printf("preKeyId=\"%s\"", id);
	const char *xml = i >= 0 ? g_ptr_array_index(sent, i) : "";
	int r = strstr(xml, a) || strstr(xml, b);

	g_free(a);
	g_free(b);
	return r;
}

/*
 * A catch-up that used a one-time prekey ends after our bundle publish left
 * but before it was answered (before READY): the refilled bundle must still
 * go out once READY. Then live: three new contacts start sessions at once;
 * the bundle goes out once at the first, once more for the other two.
 */
static void test_republish(const char *root, mend_account *a)
{
	static const mend_host_ops quiet = {0};
	const char *who[] = {"frank@x", "grace@x", "heidi@x", "ivan@x"};
	mend_account *s[4];
	char id[4][16], *qid = NULL;
	guint mark, ev0;
	int q, pub, last, n;

	for (int k = 0; k < 4; k++)
		s[k] = open_in(root, who[k], &quiet);
	mark = sent->len;
	q = items_query(mark, NODE_LIST, ALICE);
	answer_list(a, reconnect(a, MEND_CONNECT_CATCHUP), ALICE, aid);
	q = sent_find(mark, "query", NS_MAM, NULL, NULL);
	qid = sent_queryid(q);
	TAP_EQ(bundle_publishes(mark, &pub), 1, "connected: our bundle is published");
	if (!qid)
		TAP_BAIL("no catch-up query");
	{
		char *b = nth_prekey_bundle(a, 0, id[0]);
		char *m = first_message(s[0], "frank@x/pc", b, "frank while offline");

		TAP_EQ(handle(a, mam_result(NULL, qid, "r1", m)), 1,
		       "frank's first message, archived");
		g_free(b);
		g_free(m);
	}
	TAP_EQ(mam_fin(a, q, "r1"), 1, "catch-up ends before the publish is answered");
	ev0 = events->len;
	mark = sent->len;
	answer_ok(a, pub, ALICE);
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 1, "READY");
	TAP_EQ(bundle_publishes(mark, &pub), 1, "then the refilled bundle is published, once");
	TAP_OK(pub >= 0 && !offers(pub, id[0]), "without prekey %s, which frank used", id[0]);
	answer_ok(a, pub, ALICE);
	TAP_EQ(bundle_publishes(mark, &last), 1, "and no more");

	mark = sent->len;
	for (int k = 1; k < 4; k++) {
		char *b = nth_prekey_bundle(a, k - 1, id[k]);
		char *from = g_strdup_printf("%s/pc", who[k]);
		char *m = first_message(s[k], from, b, "hello, live");
		char *sid = g_strdup_printf("live%d", k), *live = stamped(m, NULL, ALICE_FULL, sid);

		handle(a, live);
		g_free(b);
		g_free(m);
		g_free(sid);
		g_free(from);
	}
	TAP_EQ(count_bodies(ev0, "hello, live"), 3, "three new contacts, three first messages");
	n = bundle_publishes(mark, &pub);
	TAP_EQ(n, 1, "one publish while the first is in flight (not one per used prekey)");
	answer_ok(a, pub, ALICE);
	n = bundle_publishes(mark, &last);
	TAP_EQ(n, 2, "and one more when it is answered");
	TAP_OK(last > pub && !offers(last, id[1]) && !offers(last, id[2]) && !offers(last, id[3]),
	       "which offers none of the three used prekeys");
	answer_ok(a, last, ALICE);
	TAP_EQ(bundle_publishes(mark, &last), 2, "then nothing more");
	g_free(qid);
	for (int k = 0; k < 4; k++)
		mend_account_free(s[k]);
}

/* --- 6. garbage ------------------------------------------------------------------------------ */

static char *huge_list_event(unsigned n)
{
	GString *s = g_string_new("<message from='" BOB "' to='" ALICE_FULL "'>"
	                          "<event xmlns='http://jabber.org/protocol/pubsub#event'>"
	                          "<items node='" NODE_LIST "'><item id='current'>"
	                          "<list xmlns='" NS_LEGACY "'>");
	unsigned i;

	for (i = 1; i <= n; i++)
		g_string_append_printf(s, "<device id='%u'/>", i);
	g_string_append(s, "</list></item></items></event></message>");
	return g_string_free(s, FALSE);
}

static int bob_devices_are(mend_account *a, uint32_t id)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int ok = mend_account_devices(a, BOB, &ids, &n) == 0 && n == 1 && ids[0] == id;

	mend_free(ids);
	return ok;
}

static void test_garbage(mend_account *a, mend_account *b)
{
	guint ev0;
	char *wire;
	const rec *ev;

	TAP_EQ(mend_account_handle_stanza(a, "not xml"), MEND_ERR_MALFORMED, "not XML");
	TAP_EQ(mend_account_handle_stanza(a, "<iq type='result' id='nobody-asked'/>"), 0,
	       "a reply nobody asked for is not ours");
	TAP_OK(bob_devices_are(a, bid), "bob has one device");
	TAP_EQ(handle(a, huge_list_event(501)), 1, "a 501-device list event is consumed");
	TAP_OK(bob_devices_are(a, bid), "and bob's devices are unchanged");
	wire = bob_encrypts(b, a, "after the garbage");
	ev0 = events->len;
	TAP_EQ(handle(a, stamped(wire, BOB "/phone", ALICE_FULL, NULL)), 1, "bob writes again");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "after the garbage"), "and it still decrypts");
	g_free(wire);
}

static mend_account *open_in(const char *root, const char *jid, const mend_host_ops *ops);

/*
 * Another process on our store (a one-shot `mend send` beside `mend listen`) spends one of
 * our one-time prekeys after our bundle left and before the server took it: its own
 * republish may land before ours, which then offers the spent prekey to every sender. Our
 * bundle goes again when the server's answer comes and the store holds another one.
 */
static void test_bundle_outdated_by_other_process(const char *root, mend_account *a)
{
	static const mend_host_ops none = {0};
	mend_account *other = open_in(root, ALICE, &none), *s = open_in(root, "mia@x", &none);
	mend_message *m = NULL;
	char id[16], *b, *w;
	guint mark = sent->len;
	int pub = -1, last = -1;

	answer_list(a, reconnect(a, 0), ALICE, aid);
	TAP_EQ(bundle_publishes(mark, &pub), 1, "connected: our bundle is published");
	TAP_OK(mend_account_device_id(other) == aid, "a second handle on alice's store");
	b = nth_prekey_bundle(a, 0, id);
	w = first_message(s, "mia@x/pc", b, "read by the other process");
	TAP_EQ(mend_account_decrypt(other, w, &m), MEND_OK, "which takes mia's prekey message");
	TAP_OK(offers(pub, id), "on prekey %s, which the bundle in flight offers", id);
	answer_ok(a, pub, ALICE);
	TAP_EQ(bundle_publishes(mark, &last), 2, "once it is taken, our bundle goes again");
	TAP_OK(last > pub && !offers(last, id), "without prekey %s", id);
	answer_ok(a, last, ALICE);
	TAP_EQ(bundle_publishes(mark, &last), 2, "then nothing more");
	mend_message_free(m);
	g_free(w);
	g_free(b);
	mend_account_free(other);
	mend_account_free(s);
}

/* --- 7. the server has no device list for us ------------------------------------------------ */

/*
 * XEP-0384 v0.3 §4.2, DESIGN §3 (fetch, merge, publish): when the server
 * answers that we have no device list, we publish one, whatever our store
 * remembers of an earlier list.
 */
static void test_list_lost(mend_account *a)
{
	guint mark = sent->len, ev0 = events->len;
	int q = reconnect(a, 0), pub;

	TAP_EQ(answer_error(a, q, ALICE, "item-not-found"), 1, "the server lost our list");
	pub = sent_find(mark, "publish", NULL, "node", NODE_LIST);
	TAP_OK(sent_lists(pub, aid), "our device list is published again");
	answer_ok(a, pub, ALICE);
	answer_ok(a, sent_find(mark, "publish", NULL, NULL, NULL), ALICE);
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 1, "READY");
}

/* A first connect whose device-list publish never got an answer: the stream dropped. */
static void test_first_publish_lost(const char *root)
{
	const char *dave = "dave@x";
	mend_account *d;
	guint mark;
	int q, pub;

	self_full = "dave@x/r";
	d = open_in(root, dave, &alice_ops);
	mark = sent->len;
	mend_account_connected(d, self_full, 0);
	q = items_query(mark, NODE_LIST, dave);
	TAP_EQ(answer_error(d, q, dave, "item-not-found"), 1, "dave's first connect: no list");
	pub = sent_find(mark, "publish", NULL, "node", NODE_LIST);
	TAP_OK(sent_lists(pub, mend_account_device_id(d)), "dave publishes his device list");
	mend_account_disconnected(d);
	mark = sent->len;
	mend_account_connected(d, self_full, 0);
	q = items_query(mark, NODE_LIST, dave);
	TAP_EQ(answer_error(d, q, dave, "item-not-found"), 1,
	       "reconnected: the publish never landed, still no list");
	pub = sent_find(mark, "publish", NULL, "node", NODE_LIST);
	TAP_OK(sent_lists(pub, mend_account_device_id(d)), "so dave publishes it again");
	mend_account_free(d);
	self_full = ALICE_FULL;
}

/* --- 8. repair, heartbeats, key-only messages (repair.c) ------------------------------------ */

#define FAY "fay@x"

static unsigned next_sid;

/* Fay's message `wire` as alice's server hands it, with a fresh stanza-id. */
/* `wire` from `from` (a full JID) as alice's server hands it, with a fresh stanza-id. */
static int arrives(mend_account *a, const char *from, const char *wire)
{
	char sid[24];

	g_snprintf(sid, sizeof(sid), "fay-%u", ++next_sid);
	return handle(a, stamped(wire, from, ALICE_FULL, sid));
}

static int fay_arrives(mend_account *a, const char *wire)
{
	return arrives(a, FAY "/r", wire);
}

/* Sent stanza `i` is an OMEMO key transport: <encrypted/> with neither payload nor body. */
static int is_key_transport(guint i)
{
	return sent_has(i, "encrypted", NS_LEGACY, NULL, NULL) &&
	       !sent_has(i, "payload", NULL, NULL, NULL) && !sent_has(i, "body", NULL, NULL, NULL);
}

/* Key transports alice sent to `to` since `mark`; *last gets the last one's index. */
static int key_transports_to(guint mark, const char *to, int *last)
{
	int n = 0;
	guint i;

	for (i = mark; i < sent->len; i++)
		if (sent_attr_is((int)i, "to", to) && is_key_transport(i)) {
			n++;
			if (last)
				*last = (int)i;
		}
	return n;
}

/* Whether the <key/> of an OMEMO stanza says prekey (a PreKeySignalMessage). */
static int is_prekey(const char *xml)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml),
	              *k = st ? find(st, "key", NULL) : NULL;
	int yes = k && str_is(xmpp_stanza_get_attribute(k, "prekey"), "true");

	if (st)
		xmpp_stanza_release(st);
	return yes;
}

/* Fay decrypts sent stanza `i`; *m (may be NULL) gets the message. */
static int fay_reads(mend_account *e, int i, mend_message **m)
{
	mend_message *own = NULL;
	char *wire;
	int r;

	if (i < 0)
		return -1000;
	wire = stamped(g_ptr_array_index(sent, i), ALICE_FULL, NULL, NULL);
	r = mend_account_decrypt(e, wire, m ? m : &own);
	mend_message_free(own);
	g_free(wire);
	return r;
}

/* `xml` without its <payload/>: the same ratchet message as a key transport. g_free it. */
static char *without_payload(const char *xml)
{
	const char *p = strstr(xml, "<payload>"), *q = p ? strstr(p, "</payload>") : NULL;
	char *head, *out;

	if (!q)
		TAP_BAIL("no payload to take away");
	head = g_strndup(xml, (gsize)(p - xml));
	out = g_strconcat(head, q + strlen("</payload>"), NULL);
	g_free(head);
	return out;
}

static void test_heartbeats(mend_account *a, mend_account *e)
{
	guint mark = sent->len, ev0 = events->len;
	char *wire = bob_encrypts(e, a, "hello from fay");
	mend_message *m = NULL;
	int kt = -1, i;

	TAP_OK(is_prekey(wire), "fay's first message starts a session (prekey)");
	TAP_EQ(fay_arrives(a, wire), 1, "alice takes it");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 1, "and shows it");
	TAP_EQ(key_transports_to(mark, FAY, &kt), 1,
	       "alice answers a prekey message with one empty key transport (heartbeat)");
	TAP_OK(sent_has(kt, "store", "urn:xmpp:hints", NULL, NULL), "with a store hint");
	TAP_EQ(fay_reads(e, kt, &m), 0, "fay decrypts the heartbeat");
	TAP_OK(m && m->key_only && !m->body, "as a key-only message without a body");
	mend_message_free(m);
	g_free(wire);
	wire = bob_encrypts(e, a, "second");
	TAP_OK(!is_prekey(wire), "so fay's next message is no prekey message any more");
	mark = sent->len;
	fay_arrives(a, wire);
	g_free(wire);
	for (i = 2; i < 53; i++) {
		wire = bob_encrypts(e, a, "more");
		fay_arrives(a, wire);
		g_free(wire);
	}
	TAP_EQ(key_transports_to(mark, FAY, NULL), 0, "52 messages unanswered: no heartbeat yet");
	wire = bob_encrypts(e, a, "the 53rd");
	fay_arrives(a, wire);
	g_free(wire);
	TAP_EQ(key_transports_to(mark, FAY, &kt), 1, "the 53rd unanswered message: a heartbeat");
	TAP_EQ(fay_reads(e, kt, NULL), 0, "fay decrypts it");
}

static void test_key_only(mend_account *a, mend_account *e)
{
	guint ev0 = events->len;
	char *wire = bob_encrypts(e, a, "never shown"), *ko = without_payload(wire), *rid, *other;

	TAP_EQ(fay_arrives(a, ko), 1, "a key-only message is consumed (the host shows nothing)");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "no MESSAGE for it");
	g_free(wire);
	wire = bob_encrypts(e, a, "for another device");
	g_free(ko);
	ko = without_payload(wire);
	rid = g_strdup_printf("rid='%u'", aid);
	other = g_strdup_printf("rid='%u'", aid ^ 0x5a5a);
	{
		char **parts = g_strsplit(ko, rid, -1);

		g_free(ko);
		ko = g_strjoinv(other, parts);
		g_strfreev(parts);
	}
	TAP_EQ(fay_arrives(a, ko), 1, "a key-only message for another of our devices: consumed");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "still no MESSAGE");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0,
	       "and no 'not encrypted for this device' error");
	g_free(wire);
	g_free(ko);
	g_free(rid);
	g_free(other);
}

/*
 * Outside catch-up a one-time prekey serves one session (XEP-0384 v0.3 §4.5): the second
 * sender on it loses, and the log says which keys its message named and which we lack.
 */
static void test_missing_prekey_logged(const char *root, mend_account *a)
{
	static const mend_host_ops none = {0};
	mend_account *ivy = open_in(root, "ivy@x", &none), *kim = open_in(root, "kim@x", &none);
	char id[16], *bundle = nth_prekey_bundle(a, 0, id), *want;
	char *w1 = first_message(ivy, "ivy@x/r", bundle, "ivy first");
	char *w2 = first_message(kim, "kim@x/r", bundle, "kim on the same prekey");
	guint ev0 = events->len;

	TAP_EQ(arrives(a, "ivy@x/r", w1), 1, "ivy's prekey message");
	TAP_EQ(count_bodies(ev0, "ivy first"), 1, "is shown");
	g_string_truncate(warnings, 0);
	TAP_EQ(arrives(a, "kim@x/r", w2), 1, "kim's, on the prekey ivy used");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 1, "cannot be decrypted");
	want = g_strdup_printf("prekey message from kim@x device %u names a key this device "
	                       "lacks: one-time prekey %s (gone), signed prekey 1 (held)",
	                       mend_account_device_id(kim), id);
	TAP_OK(strstr(warnings->str, want),
	       "the log names the prekey gone and the signed prekey "
	       "held:\n%s",
	       warnings->str);
	g_free(want);
	g_free(w1);
	g_free(w2);
	g_free(bundle);
	mend_account_free(ivy);
	mend_account_free(kim);
}

/*
 * A message that reaches us twice: first as a carbon (no stanza-id of ours), then as itself
 * (say fay wrote to our bare JID from our own account: the server delivers it to every
 * resource and copies it to the others as a carbon). The second copy's message key is used
 * already; that is a duplicate, not a session that went back in time: no repair (which
 * builds a new session on one of fay's prekeys, a prekey another sender may be using).
 */
static void test_copy_twice(mend_account *a, mend_account *e)
{
	const char *bodies[] = {"read twice", NULL};
	guint mark = sent->len, ev0 = events->len;
	int i;

	for (i = 0; i < 2; i++) {
		char *wire = bob_encrypts(e, a, "read twice");
		char *ko = bodies[i] ? g_strdup(wire) : without_payload(wire);
		char *inner = stamped(ko, FAY "/r", ALICE, NULL);

		TAP_EQ(handle(a, carbon(ALICE, "received", inner)), 1, "the carbon copy (%s)",
		       bodies[i] ? "a message" : "a key transport");
		TAP_EQ(fay_arrives(a, ko), 1, "then the copy with our server's stanza-id");
		g_free(inner);
		g_free(ko);
		g_free(wire);
	}
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 1, "the message is shown once");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "no copy is called undecryptable");
	TAP_EQ(key_transports_to(mark, FAY, NULL), 0, "and fay's session is not rebuilt");
}

static void copy_dir(const char *from, const char *to)
{
	GDir *dir = g_dir_open(from, 0, NULL);
	const char *name;

	g_mkdir_with_parents(to, 0700);
	while (dir && (name = g_dir_read_name(dir))) {
		char *src = g_build_filename(from, name, NULL),
		     *dst = g_build_filename(to, name, NULL);
		char *data = NULL;
		gsize len = 0;

		if (g_file_get_contents(src, &data, &len, NULL))
			g_file_set_contents(dst, data, (gssize)len, NULL);
		g_free(data);
		g_free(src);
		g_free(dst);
	}
	if (dir)
		g_dir_close(dir);
}

/* Fay's store as it was in `backup` (a restored backup: her session is behind). */
static mend_account *fay_restored(mend_account *e, const char *root, const char *backup)
{
	char *dir = g_build_filename(root, FAY, NULL);

	mend_account_free(e);
	copy_dir(backup, dir);
	g_free(dir);
	return open_in(root, FAY, NULL);
}

/* Answers alice's fetch of fay's bundle (the first since mark); 1 when there was one. */
static int serve_bundle(mend_account *a, mend_account *e, const char *jid, guint mark)
{
	char node[64], *bundle = NULL;
	int q, r;

	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", mend_account_device_id(e));
	q = items_query(mark, node, jid);
	if (q < 0)
		return 0;
	mend_account_bundle_xml(e, &bundle);
	r = answer_items(a, q, jid, node, bundle);
	mend_free(bundle);
	return r;
}

static mend_account *test_repair(mend_account *a, mend_account *e, const char *root)
{
	char *backup = g_build_filename(root, "fay-backup", NULL), *dir, *wire;
	guint mark, ev0;
	const rec *ev;
	mend_message *m = NULL;
	int64_t now;
	int kt = -1;

	dir = g_build_filename(root, FAY, NULL);
	mend_account_free(e);
	copy_dir(dir, backup);
	g_free(dir);
	e = open_in(root, FAY, NULL);
	for (int i = 0; i < 3; i++) { /* the backup is three messages behind */
		wire = bob_encrypts(e, a, "after the backup");
		fay_arrives(a, wire);
		g_free(wire);
	}
	e = fay_restored(e, root, backup);
	mark = sent->len;
	ev0 = events->len;
	wire = bob_encrypts(e, a, "from a restored backup");
	TAP_EQ(fay_arrives(a, wire), 1, "fay writes from a restored backup");
	g_free(wire);
	ev = event_of(ev0, MEND_EVENT_UNDECRYPTABLE);
	TAP_EQ(ev ? ev->error : 0, MEND_ERR_STALE_SESSION, "alice cannot read it: a stale session");
	TAP_OK(ev && ev->text && strstr(ev->text, "asked to start a new session"),
	       "and is told fay's device was asked to start over");
	TAP_EQ(serve_bundle(a, e, FAY, mark), 1, "alice fetches fay's bundle");
	TAP_EQ(key_transports_to(mark, FAY, &kt), 1, "and sends fay one key transport");
	TAP_OK(kt >= 0 && is_prekey(g_ptr_array_index(sent, kt)),
	       "in a PreKeySignalMessage (a fresh session)");
	TAP_EQ(fay_reads(e, kt, &m), 0, "fay takes it: it replaces her broken session");
	TAP_OK(m && m->key_only && m->prekey, "a key-only prekey message");
	mend_message_free(m);
	ev0 = events->len;
	wire = bob_encrypts(e, a, "readable again");
	fay_arrives(a, wire);
	g_free(wire);
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "readable again"), "fay's next message decrypts");
	e = fay_restored(e, root, backup);
	mark = sent->len;
	ev0 = events->len;
	wire = bob_encrypts(e, a, "stale again");
	fay_arrives(a, wire);
	g_free(wire);
	ev = event_of(ev0, MEND_EVENT_UNDECRYPTABLE);
	TAP_OK(ev && ev->text && !strstr(ev->text, "asked"),
	       "stale again within the hour: reported");
	TAP_EQ(serve_bundle(a, e, FAY, mark), 0, "but no second repair of that device this hour");
	now = g_get_real_time() / G_USEC_PER_SEC + 3601;
	mend_account_set_clock(a, test_clock, &now);
	mark = sent->len;
	wire = bob_encrypts(e, a, "an hour later");
	fay_arrives(a, wire);
	g_free(wire);
	TAP_EQ(serve_bundle(a, e, FAY, mark), 1, "an hour later the device is repaired again");
	TAP_EQ(key_transports_to(mark, FAY, &kt), 1, "with a new key transport");
	TAP_EQ(fay_reads(e, kt, NULL), 0, "which fay takes");
	mend_account_set_clock(a, NULL, NULL);
	g_free(backup);
	return e;
}

#define GUS "gus@x"
#define HAL "hal@x"

/* `wire` (a SignalMessage) with its MAC damaged: it parses, and fails to authenticate. */
static char *damaged_key(const char *wire)
{
	char *out = g_strdup(wire), *end = strstr(strstr(out, "<key "), "</key>");
	char *c = end - 1;

	while (*c == '=')
		c--;
	c -= 3;
	*c = *c == 'A' ? 'B' : 'A';
	return out;
}

/* A session gus has confirmed: his messages are no prekey messages any more. */
static mend_account *gus_with_session(mend_account *a, const char *root)
{
	static const mend_host_ops quiet = {0};
	mend_account *g = open_in(root, GUS, &quiet);
	char *w = bob_encrypts(g, a, "hello, I am gus");
	guint mark = sent->len;
	int kt = -1;

	arrives(a, GUS "/r", w);
	key_transports_to(mark, GUS, &kt);
	if (fay_reads(g, kt, NULL) < 0)
		TAP_BAIL("gus cannot read alice's heartbeat");
	g_free(w);
	return g;
}

/*
 * XEP-0384 v0.3 Business Rules, DESIGN §3: nothing is repaired from the archive,
 * and heartbeats and repairs for live messages wait until the catch-up ended.
 */
static void test_repair_waits_for_catchup(mend_account *a, const char *root)
{
	static const mend_host_ops quiet = {0};
	mend_account *g = gus_with_session(a, root), *h = open_in(root, HAL, &quiet);
	char *first = bob_encrypts(h, a, "hal live during catch-up"), *w, *bad, *inner, *qid = NULL;
	guint mark, ev0;
	const rec *ev;
	int q = catchup(a, &qid), kt = -1;

	mark = sent->len;
	ev0 = events->len;
	TAP_EQ(arrives(a, HAL "/r", first), 1, "a prekey message arrives live during catch-up");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 1, "and is shown");
	w = bob_encrypts(g, a, "archived, damaged");
	bad = damaged_key(w);
	g_free(w);
	inner = stamped(bad, GUS "/r", ALICE, NULL);
	TAP_EQ(handle(a, mam_result(NULL, qid, "gus-a1", inner)), 1,
	       "a damaged message from the archive");
	g_free(inner);
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "waits for its page's commit");
	g_free(bad);
	w = bob_encrypts(g, a, "live, damaged");
	bad = damaged_key(w);
	g_free(w);
	ev0 = events->len;
	arrives(a, GUS "/r", bad);
	ev = event_of(ev0, MEND_EVENT_UNDECRYPTABLE);
	TAP_OK(ev && ev->archived && ev->error == MEND_ERR_KEY_AUTH && !strstr(ev->text, "asked"),
	       "a live message commits the page first: the archived one is reported, and no "
	       "repair is promised for it");
	ev = events->len > ev0 + 1 ? event_of(ev0 + 1, MEND_EVENT_UNDECRYPTABLE) : NULL;
	TAP_OK(ev && !ev->archived && strstr(ev->text, "asked to start a new session"),
	       "a damaged live message during catch-up: the device will be asked to start over");
	TAP_EQ(key_transports_to(mark, GUS, NULL) + key_transports_to(mark, HAL, NULL), 0,
	       "but nothing goes to gus or hal during catch-up");
	TAP_EQ(serve_bundle(a, g, GUS, mark), 0, "not even a bundle request");
	TAP_EQ(mam_fin(a, q, "gus-a1"), 1, "the catch-up ends");
	TAP_EQ(key_transports_to(mark, HAL, &kt), 1, "then hal gets his heartbeat");
	TAP_OK(kt >= 0 && !is_prekey(g_ptr_array_index(sent, kt)), "on the session he started");
	TAP_EQ(serve_bundle(a, g, GUS, mark), 1, "gus's bundle is fetched");
	TAP_EQ(key_transports_to(mark, GUS, &kt), 1, "and one key transport goes to gus");
	TAP_OK(kt >= 0 && is_prekey(g_ptr_array_index(sent, kt)), "a fresh session for him");
	g_free(bad);
	g_free(first);
	g_free(qid);
	mend_account_free(g);
	mend_account_free(h);
}

/* After an identity reset every device alice had a session with learns the new key. */
static void test_reset_announced(mend_account *a, mend_account *e)
{
	guint mark = sent->len;
	mend_device_info *infos = NULL;
	size_t n = 0, i;
	char fp[65];
	int kt = -1, found = 0;

	TAP_EQ(mend_account_reset_identity(a), 0, "alice resets her identity key");
	TAP_EQ(serve_bundle(a, e, FAY, mark), 1, "alice fetches fay's bundle at once");
	TAP_EQ(key_transports_to(mark, FAY, &kt), 1, "and announces the new key to fay");
	TAP_EQ(fay_reads(e, kt, NULL), MEND_ERR_KEY_CHANGED,
	       "fay sees a changed key (not trusted silently)");
	mend_account_fingerprint(a, fp);
	mend_account_device_infos(e, ALICE, &infos, &n);
	for (i = 0; i < n; i++)
		found |= infos[i].id == aid && str_is(infos[i].new_fingerprint, fp);
	TAP_OK(found, "fay's device list shows alice's new fingerprint beside the old key");
	mend_free(infos);
}

/* --- 9. subscribing to a contact's device list (libpurple) ------------------------------------ */

/* A PEP push of bob's device list with devices d1 and d2 (XEP-0163 §4.3). */
static char *bob_list_push(uint32_t d1, uint32_t d2)
{
	return g_strdup_printf("<message from='" BOB "' to='" ALICE "' type='headline'>"
	                       "<event xmlns='http://jabber.org/protocol/pubsub#event'>"
	                       "<items node='" NODE_LIST "'><item id='current'>"
	                       "<list xmlns='" NS_LEGACY "'><device id='%u'/><device id='%u'/>"
	                       "</list></item></items></event></message>",
	                       d1, d2);
}

/* Sends a message to bob and answers what the core asks; returns the subscribe IQ or -1. */
static int send_subscribed(mend_account *a, mend_account *b, guint mark, int first)
{
	char node[64];
	int sub, q;

	mend_account_send(a, BOB, first ? "first" : "second", NULL);
	sub = sent_find(mark, "subscribe", NS_PUBSUB, "node", NODE_LIST);
	if (sub >= 0)
		answer(a, sub, BOB, "result",
		       "<pubsub xmlns='" NS_PUBSUB "'><subscription node='" NODE_LIST
		       "' jid='" ALICE "' subscription='subscribed'/></pubsub>");
	q = items_query(mark, NODE_LIST, BOB);
	if (q >= 0)
		answer_list(a, q, BOB, bid);
	/* bob's bundle, should alice have no session with him (any more) */
	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", bid);
	q = items_query(mark, node, BOB);
	if (q >= 0)
		answer_bundle(a, b, q);
	return sub;
}

/*
 * MEND_CONNECT_SUBSCRIBE (hosts without +notify in their caps): the first
 * fetch of a contact's device list on a connection also subscribes our bare
 * JID to it (XEP-0060 §6.1.1), once; a push naming a new device of a contact
 * we talk to fetches its bundle at once and announces it in that chat.
 */
static void test_subscribe(mend_account *a, mend_account *b, const char *root)
{
	char *dir = g_build_filename(root, "bob-tablet", NULL), node[64], *bundle = NULL;
	mend_account *b2 = NULL;
	guint mark, ev0;
	int sub, q;
	const rec *ev;

	TAP_EQ(sent_find(0, "subscribe", NS_PUBSUB, NULL, NULL), -1,
	       "without the flag the core never subscribed");
	if (mend_account_open(&b2, BOB, dir, MEND_KEYRING_FILE, NULL, NULL) < 0)
		TAP_BAIL("cannot open bob's tablet");
	mark = sent->len;
	answer_list(a, reconnect(a, MEND_CONNECT_SUBSCRIBE), ALICE, aid);
	answer_ok(a, sent_find(mark, "publish", NULL, NULL, NULL), ALICE);
	mark = sent->len;
	sub = send_subscribed(a, b, mark, 1);
	TAP_OK(sub >= 0 && sent_attr_is(sub, "to", BOB) &&
	           sent_has(sub, "subscribe", NS_PUBSUB, "jid", ALICE),
	       "the first message to bob subscribes alice@x to bob's device list");
	TAP_EQ(messages_to(mark, BOB), 1, "and the message leaves");
	mark = sent->len;
	TAP_EQ(send_subscribed(a, b, mark, 0), -1, "the second message subscribes no more");
	TAP_EQ(items_query(mark, NODE_LIST, BOB), -1, "nor fetches the list: pushes keep it");
	TAP_EQ(messages_to(mark, BOB), 1, "it leaves at once");

	mark = sent->len;
	ev0 = events->len;
	TAP_EQ(handle(a, bob_list_push(bid, mend_account_device_id(b2))), 1,
	       "bob's list with a new device is pushed");
	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", mend_account_device_id(b2));
	q = items_query(mark, node, BOB);
	TAP_OK(q >= 0, "the new device's bundle is fetched at once");
	mend_account_bundle_xml(b2, &bundle);
	answer_items(a, q, BOB, node, bundle);
	ev = event_of(ev0, MEND_EVENT_NOTICE);
	TAP_OK(ev && str_is(ev->peer, BOB) && ev->text && strstr(ev->text, "new device"),
	       "and announced in bob's chat: %s", ev && ev->text ? ev->text : "(none)");
	TAP_EQ(count_events(ev0, MEND_EVENT_NOTICE), 1, "once");
	mend_free(bundle);
	mend_account_free(b2);
	g_free(dir);
}

/* --- 10. what became of our messages: the host's send, bounces, receipts ----------------- */

/* The first event of `kind` since `mark` about message `id`, or NULL. */
static const rec *event_for(guint mark, mend_event_kind kind, const char *id)
{
	guint i;

	for (i = mark; i < events->len; i++) {
		const rec *r = g_ptr_array_index(events, i);

		if (r->kind == kind && str_is(r->id, id))
			return r;
	}
	return NULL;
}

/* Bob's device list is fetched again on this connection (his session exists). */
static void bob_known(mend_account *a, mend_account *b)
{
	guint mark = sent->len;
	char node[64];
	int bq;

	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", bid);
	TAP_EQ(mend_account_refresh_devices(a, BOB), 0, "bob's devices are refreshed");
	TAP_EQ(answer_list(a, items_query(mark, NODE_LIST, BOB), BOB, bid), 1, "bob's list");
	bq = items_query(mark, node, BOB);
	if (bq >= 0)
		answer_bundle(a, b, bq);
}

/* The host could not send: the message stays queued, the user is told, it leaves later. */
static void test_host_send_fails(mend_account *a, mend_account *b)
{
	guint ev0, mark;
	char *id = NULL, *id2 = NULL;
	const rec *ev;
	int first;

	bob_known(a, b);
	ev0 = events->len;
	mark = sent->len;
	host_refuses = 1;
	TAP_EQ(mend_account_send(a, BOB, "kept for later", &id), 0, "send while the host refuses");
	host_refuses = 0;
	TAP_EQ(sent->len, mark, "nothing went out");
	TAP_EQ(pending(a), 1, "the message stays in the pending queue");
	TAP_OK(!event_for(ev0, MEND_EVENT_SENT, id), "and is not reported sent");
	ev = event_for(ev0, MEND_EVENT_NOTICE, id);
	TAP_OK(ev && str_is(ev->peer, BOB) && ev->text && strstr(ev->text, "queued"),
	       "the user is told it stays queued: %s", ev && ev->text ? ev->text : "(none)");
	TAP_EQ(mend_account_send(a, BOB, "after it", &id2), 0, "the host takes stanzas again");
	TAP_EQ(messages_to(mark, BOB), 2, "both messages leave now");
	first = sent_find(mark, "message", NULL, "to", BOB);
	TAP_OK(sent_attr_is(first, "id", id), "the held one first, in order");
	TAP_OK(event_for(ev0, MEND_EVENT_SENT, id) && event_for(ev0, MEND_EVENT_SENT, id2),
	       "both reported sent");
	TAP_EQ(pending(a), 0, "the queue is empty");
	bob_reads(b, mark, "kept for later");
	mend_free(id);
	mend_free(id2);
}

/* <message type='error'> from `from` for message `id` with condition `cond`. g_free. */
static char *bounce(const char *from, const char *id, const char *cond)
{
	return g_strdup_printf("<message type='error' from='%s' to='" ALICE_FULL "' id='%s'>"
	                       "<error type='cancel'><%s xmlns='" NS_STANZAS
	                       "'/></error></message>",
	                       from, id, cond);
}

static void test_bounce(mend_account *a)
{
	guint ev0 = events->len, mark = sent->len;
	char *id = NULL;
	const rec *ev;

	TAP_EQ(mend_account_send(a, BOB, "to an account since deleted", &id), 0, "send to bob");
	TAP_EQ(messages_to(mark, BOB), 1, "it left");
	TAP_EQ(handle(a, bounce("mallory@x", id, "service-unavailable")), 0,
	       "a bounce of our id from someone else is not ours");
	TAP_EQ(handle(a, bounce(BOB, "not-our-id", "service-unavailable")), 0,
	       "a bounce of an id we never sent is not ours");
	TAP_EQ(count_events(ev0, MEND_EVENT_SEND_FAILED), 0, "neither reports anything");
	TAP_EQ(handle(a, bounce(BOB, id, "service-unavailable")), 1, "the server bounces it");
	ev = event_for(ev0, MEND_EVENT_SEND_FAILED, id);
	TAP_OK(ev && str_is(ev->peer, BOB), "SEND_FAILED for that message, in bob's chat");
	TAP_EQ(ev ? ev->error : 0, MEND_ERR_UNDELIVERABLE, "as undeliverable");
	TAP_OK(ev && ev->text && strstr(ev->text, "bob@x does not exist") &&
	           strstr(ev->text, "check the address") && !strstr(ev->text, "OMEMO"),
	       "in words: %s", ev && ev->text ? ev->text : "(none)");
	mend_free(id);
}

/* A contact whose device list cannot be fetched: the words name the real cause. */
/*
 * `jid`'s device list is refused with `cond`; if the core then asks whether the
 * account exists, the answer is `probe` ("" a result). SEND_FAILED with `err`.
 */
static void no_list(mend_account *a, const char *jid, const char *cond, const char *probe, int err,
                    const char *want)
{
	guint ev0 = events->len, mark = sent->len;
	char *id = NULL;
	const rec *ev;

	mend_account_send(a, jid, "hello?", &id);
	TAP_EQ(answer_error(a, items_query(mark, NODE_LIST, jid), jid, cond), 1,
	       "%s's device list: %s", jid, cond);
	if (probe)
		TAP_EQ(answer_probe(a, mark, jid, *probe ? probe : NULL), 1,
		       "then the core asks whether %s exists: %s", jid, *probe ? probe : "it does");
	else
		TAP_EQ(answer_probe(a, mark, jid, NULL), -1000, "no need to ask whether it exists");
	ev = event_for(ev0, MEND_EVENT_SEND_FAILED, id);
	TAP_EQ(ev ? ev->error : 0, err, "SEND_FAILED %s", mend_strerror(err));
	TAP_OK(ev && ev->text && strstr(ev->text, want), "says \"%s\": %s", want,
	       ev && ev->text ? ev->text : "(none)");
	TAP_OK(ev && ev->text && !strstr(ev->text, "plaintext") && !strstr(ev->text, "/mend off"),
	       "and never advises plaintext");
	TAP_EQ(messages_to(mark, jid), 0, "nothing was sent");
	mend_free(id);
}

static void test_unknown_recipients(mend_account *a)
{
	char *stanza = NULL, *text;

	no_list(a, "bob@exmaple.org", "remote-server-not-found", NULL, MEND_ERR_UNDELIVERABLE,
	        "The server exmaple.org was not found; check the address bob@exmaple.org.");
	no_list(a, "nobody@x", "service-unavailable", NULL, MEND_ERR_UNDELIVERABLE,
	        "nobody@x does not exist on that server");
	/* Prosody: forbidden for no node and for no account alike; disco#info tells them apart */
	no_list(a, "nobdy@x", "forbidden", "service-unavailable", MEND_ERR_UNDELIVERABLE,
	        "nobdy@x does not exist on that server");
	no_list(a, "quiet@x", "item-not-found", "", MEND_ERR_NO_DEVICES,
	        "quiet@x has no OMEMO device");
	TAP_EQ(pending(a), 0, "none of them stays queued");
	/* the hosts' synchronous path (Profanity, libpurple) gets the same words */
	TAP_EQ(mend_account_encrypt_or_queue(a, "bob@exmaple.org", "again", NULL, &stanza),
	       MEND_ERR_UNDELIVERABLE,
	       "a second message to the typo fails at once, as undeliverable");
	text = mend_account_send_error_text(a, "bob@exmaple.org", MEND_ERR_UNDELIVERABLE);
	TAP_OK(text && strstr(text, "exmaple.org was not found; check the address") &&
	           !strstr(text, "plaintext") && !strstr(text, "without encryption"),
	       "mend_account_send_error_text says why: %s", text ? text : "(null)");
	mend_free(text);
	mend_free(stanza);
}

/* A receipt from `from` for message `id` (XEP-0184 §7). g_free. */
static char *receipt(const char *from, const char *id)
{
	return g_strdup_printf("<message from='%s' to='" ALICE_FULL "' id='ack-%s'>"
	                       "<received xmlns='" NS_RECEIPTS "' id='%s'/></message>",
	                       from, id, id);
}

static void test_receipts_in(mend_account *a)
{
	guint ev0 = events->len, mark = sent->len;
	char *id = NULL;
	const rec *ev;
	int msg;

	TAP_EQ(mend_account_send(a, BOB, "please confirm", &id), 0, "send to bob");
	msg = sent_find(mark, "message", NULL, "to", BOB);
	TAP_OK(msg >= 0 && sent_has(msg, "request", NS_RECEIPTS, NULL, NULL),
	       "the message asks for a receipt (XEP-0184)");
	TAP_OK(sent_attr_is(msg, "id", id), "under the id SENT reports");
	TAP_EQ(handle(a, receipt("carol@x/pc", id)), 0, "a receipt from carol for it is not ours");
	TAP_EQ(handle(a, receipt(BOB "/phone", "never-sent")), 0, "nor one for an id never sent");
	TAP_EQ(count_events(ev0, MEND_EVENT_DELIVERED), 0, "no DELIVERED for those");
	TAP_EQ(handle(a, receipt(BOB "/phone", id)), 1, "bob's phone confirms it");
	ev = event_for(ev0, MEND_EVENT_DELIVERED, id);
	TAP_OK(ev && str_is(ev->peer, BOB), "DELIVERED with the message id, in bob's chat");
	TAP_EQ(handle(a, receipt(BOB "/laptop", id)), 1, "bob's laptop confirms it too");
	TAP_EQ(count_events(ev0, MEND_EVENT_DELIVERED), 1, "DELIVERED once per message");
	mend_free(id);
}

/* Sent stanza `i` is a receipt for `id` and nothing else. */
static int is_receipt_for(int i, const char *id)
{
	return i >= 0 && sent_has(i, "received", NS_RECEIPTS, "id", id) &&
	       !sent_has(i, "request", NS_RECEIPTS, NULL, NULL) &&
	       !sent_has(i, "body", NULL, NULL, NULL);
}

/* `wire` with its payload damaged (one base64 character changed). g_free. */
static char *damaged(const char *wire)
{
	char *out = g_strdup(wire), *p = strstr(out, "<payload>");

	if (p) {
		p += strlen("<payload>");
		*p = *p == 'A' ? 'B' : 'A';
	}
	return out;
}

/* A message id and a resource with markup characters come back in the receipt as they were. */
static void receipt_escaped(mend_account *a, mend_account *b)
{
	static const char odd[] = "x'<&\">y";
	char *wire = bob_encrypts(b, a, "an odd id"), *text = NULL, *live;
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, wire);
	guint mark = sent->len;
	size_t len = 0;
	int r;

	xmpp_stanza_set_id(st, odd);
	xmpp_stanza_to_text(st, &text, &len);
	xmpp_stanza_release(st);
	live = stamped(text, BOB "/it's <mine>", ALICE_FULL, "sid-odd");
	xmpp_free(xctx, text);
	TAP_EQ(handle(a, live), 1, "a message with markup characters in its id and resource");
	r = sent_find(mark, "received", NS_RECEIPTS, NULL, NULL);
	TAP_OK(is_receipt_for(r, odd), "its receipt names that id, escaped");
	TAP_OK(sent_attr_is(r, "to", BOB "/it's <mine>"), "to that full JID, escaped");
	g_free(wire);
}

static void test_receipts_out(mend_account *a, mend_account *b)
{
	char *wire = bob_encrypts(b, a, "do you read me"), *id, *inner;
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, wire);
	guint ev0 = events->len, mark = sent->len;

	id = g_strdup(xmpp_stanza_get_id(st));
	xmpp_stanza_release(st);
	TAP_EQ(handle(a, damaged(wire)), 1, "a damaged copy asking for a receipt");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 1, "cannot be decrypted");
	TAP_EQ(messages_to(mark, BOB "/phone"), 0, "and gets no receipt");
	inner = stamped(wire, BOB "/phone", ALICE "/o", NULL);
	TAP_EQ(handle(a, carbon(ALICE, "received", inner)), 1,
	       "a carbon of it (another device of ours got it)");
	g_free(inner);
	TAP_EQ(messages_to(mark, BOB "/phone"), 0, "gets no receipt from this device");
	g_free(wire);
	g_free(id);
	wire = bob_encrypts(b, a, "and now?");
	st = xmpp_stanza_new_from_string(xctx, wire);
	id = g_strdup(xmpp_stanza_get_id(st));
	xmpp_stanza_release(st);
	mark = sent->len;
	TAP_EQ(handle(a, stamped(wire, BOB "/phone", ALICE_FULL, "sid-rcpt")), 1, "a live message");
	TAP_OK(event_of(ev0, MEND_EVENT_MESSAGE), "is shown");
	TAP_OK(is_receipt_for(sent_find(mark, "received", NS_RECEIPTS, NULL, NULL), id),
	       "and answered with a receipt for its id, nothing else in it");
	TAP_OK(
	    sent_attr_is(sent_find(mark, "received", NS_RECEIPTS, NULL, NULL), "to", BOB "/phone"),
	    "to the full JID that sent it");
	mark = sent->len;
	handle(a, stamped(wire, BOB "/phone", ALICE_FULL, "sid-rcpt"));
	TAP_EQ(messages_to(mark, BOB "/phone"), 0, "a second copy of it gets no second receipt");
	g_free(wire);
	g_free(id);
	receipt_escaped(a, b);
}

/* Bob's message `body` as an archive result of query `qid` (archive id `aid_`). */
static int archived_from_bob(mend_account *a, mend_account *b, const char *qid, const char *aid_,
                             const char *body)
{
	char *wire = bob_encrypts(b, a, body), *inner = stamped(wire, BOB "/phone", ALICE, NULL);
	int r = handle(a, mam_result(NULL, qid, aid_, inner));

	g_free(wire);
	g_free(inner);
	return r;
}

/* XEP-0184 §5.5: the catch-up is the first receipt of what came while offline; history is not. */
static void test_receipts_archive(mend_account *a, mend_account *b)
{
	guint mark = sent->len;
	char *qid = NULL;
	int q = catchup(a, &qid);

	TAP_EQ(archived_from_bob(a, b, qid, "c1", "came while offline"), 1, "a catch-up result");
	TAP_EQ(messages_to(mark, BOB "/phone"), 1, "is answered with a receipt");
	mam_fin(a, q, "c1");
	g_free(qid);
	mark = sent->len;
	TAP_EQ(mend_account_history(a, BOB, NULL), 0, "a history query");
	q = sent_find(mark, "query", NS_MAM, NULL, NULL);
	qid = sent_queryid(q);
	TAP_EQ(archived_from_bob(a, b, qid, "h1", "read in history"), 1, "a history result");
	TAP_EQ(messages_to(mark, BOB "/phone"), 0, "gets no receipt");
	mam_fin(a, q, "h1");
	g_free(qid);
}

/* --- main ---------------------------------------------------------------------------------- */

static void rm_rf(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	if (!dir) {
		g_unlink(path);
		return;
	}
	while ((name = g_dir_read_name(dir))) {
		char *p = g_build_filename(path, name, NULL);

		rm_rf(p);
		g_free(p);
	}
	g_dir_close(dir);
	g_rmdir(path);
}

static mend_account *open_in(const char *root, const char *jid, const mend_host_ops *ops)
{
	char *dir = g_build_filename(root, jid, NULL);
	mend_account *acc = NULL;
	int r = mend_account_open(&acc, jid, dir, MEND_KEYRING_FILE, ops, NULL);

	g_free(dir);
	if (r < 0)
		TAP_BAIL("cannot open %s: %s", jid, mend_strerror(r));
	return acc;
}

/* --- 10. OMEMO:2 beside legacy OMEMO: its nodes (XEP-0384 0.9 §5.3) --------------------------- */

#define NS_OMEMO2 "urn:xmpp:omemo:2"

/* A PEP push of `jid`'s OMEMO:2 device list: devices d1 and d2 (0: fewer). */
static char *list2_push(const char *jid, uint32_t d1, uint32_t d2)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s,
	                       "<message from='%s' to='" ALICE "' type='headline'>"
	                       "<event xmlns='http://jabber.org/protocol/pubsub#event'>"
	                       "<items node='" NODE2_LIST "'><item id='current'>"
	                       "<devices xmlns='" NS_OMEMO2 "'>",
	                       jid);
	if (d1)
		g_string_append_printf(s, "<device id='%u'/>", d1);
	if (d2)
		g_string_append_printf(s, "<device id='%u'/>", d2);
	g_string_append(s, "</devices></item></items></event></message>");
	return g_string_free(s, FALSE);
}

/* The versions (mend_device_info.versions) and send version of device `id` of jid; -1 none. */
static int versions_of(mend_account *a, const char *jid, uint32_t id, int *send)
{
	mend_device_info *infos = NULL;
	size_t n = 0, i;
	int v = -1;

	mend_account_device_infos(a, jid, &infos, &n);
	for (i = 0; i < n; i++)
		if (infos[i].id == id) {
			v = (int)infos[i].versions;
			if (send)
				*send = infos[i].send_version;
		}
	mend_free(infos);
	return v;
}

/* Sent stanza `i` holds an OMEMO:2 <devices/> naming device `id`. */
static int sent_lists2(int i, const char *id)
{
	xmpp_stanza_t *st = i >= 0 ? sent_st(i) : NULL, *c;
	int found = 0;

	c = st ? find(st, "devices", NS_OMEMO2) : NULL;
	for (c = c ? xmpp_stanza_get_children(c) : NULL; c; c = xmpp_stanza_get_next(c))
		found |= str_is(xmpp_stanza_get_name(c), "device") &&
		         str_is(xmpp_stanza_get_attribute(c, "id"), id);
	if (st)
		xmpp_stanza_release(st);
	return found;
}

/* Our OMEMO:2 nodes on connecting: the list with our device added, the bundle under our id. */
static void omemo2_own_nodes(mend_account *a, guint mark, int q2)
{
	char id[16], *items;
	int bpub, lpub;

	g_snprintf(id, sizeof(id), "%u", aid);
	TAP_OK(q2 >= 0, "our OMEMO:2 device list is asked for beside the legacy one");
	items = g_strdup_printf("<pubsub xmlns='" NS_PUBSUB "'><items node='" NODE2_LIST "'>"
	                        "<item id='current'><devices xmlns='" NS_OMEMO2 "'>"
	                        "<device id='777'/></devices></item></items></pubsub>");
	answer(a, q2, ALICE, "result", items);
	g_free(items);
	bpub = sent_find(mark, "publish", NULL, "node", NODE2_BUNDLE);
	TAP_OK(bpub >= 0 && sent_has(bpub, "bundle", NS_OMEMO2, NULL, NULL) &&
	           sent_has(bpub, "item", NULL, "id", id),
	       "our OMEMO:2 bundle is published as item %s of " NODE2_BUNDLE, id);
	TAP_OK(sent_opens(bpub, "publish-options") &&
	           sent_has(bpub, "publish-options", NULL, NULL, NULL) &&
	           sent_anywhere("pubsub#max_items"),
	       "with access_model open and max_items");
	lpub = sent_find(mark, "publish", NULL, "node", NODE2_LIST);
	TAP_OK(sent_has(lpub, "item", NULL, "id", "current") && sent_lists2(lpub, id) &&
	           sent_lists2(lpub, "777"),
	       "our device is added to the OMEMO:2 list, device 777 kept");
	TAP_OK(sent_opens(lpub, "publish-options"), "the list with access_model open");
	answer_ok(a, bpub, ALICE);
	answer_ok(a, lpub, ALICE);
	TAP_EQ(versions_of(a, ALICE, 777, NULL), 2, "our other device 777 publishes OMEMO:2 only");
	TAP_EQ(versions_of(a, ALICE, aid, NULL), 3, "this device publishes both versions");
}

static void test_omemo2_nodes(mend_account *a)
{
	guint mark = sent->len;
	int q = reconnect(a, 0), q2 = items_query(mark, NODE2_LIST, ALICE), send = 0;
	char *push, node[64];

	if (mend_omemo2_sessions_supported())
		omemo2_own_nodes(a, mark, q2);
	else
		TAP_EQ(q2, -1, "libsignal-protocol-c: no OMEMO:2 list asked for");
	answer_list(a, q, ALICE, aid);
	g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", aid);
	TAP_EQ(answer_ok(a, sent_find(mark, "publish", NULL, "node", node), ALICE), 1,
	       "our legacy bundle published: READY");
	push = list2_push(BOB, bid, 555);
	TAP_EQ(mend_account_handle_stanza(a, push), 1, "bob's OMEMO:2 list pushed");
	g_free(push);
	if (mend_omemo2_sessions_supported()) {
		TAP_EQ(versions_of(a, BOB, bid, &send), 3, "bob's device publishes both versions");
		TAP_EQ(send, MEND_OMEMO_2, "and gets OMEMO:2");
		TAP_EQ(versions_of(a, BOB, 555, &send), 2, "bob's device 555 only OMEMO:2");
	} else {
		TAP_EQ(versions_of(a, BOB, bid, &send), 1,
		       "libsignal-protocol-c: bob's device legacy");
		TAP_EQ(send, MEND_OMEMO_LEGACY, "and gets legacy OMEMO");
		TAP_EQ(versions_of(a, BOB, 555, NULL), -1, "no OMEMO:2 device of bob is taken");
	}
	push = list2_push(BOB, 0, 0);
	TAP_EQ(mend_account_handle_stanza(a, push), 1, "bob's OMEMO:2 list emptied");
	g_free(push);
	TAP_EQ(versions_of(a, BOB, bid, &send), 1, "bob's device is legacy only again");
	TAP_EQ(send, MEND_OMEMO_LEGACY, "and gets legacy OMEMO");
	send = 0;
	TAP_EQ(versions_of(a, BOB, 555, &send), mend_omemo2_sessions_supported() ? 0 : -1,
	       "device 555 is listed in no version");
	TAP_EQ(send, 0, "and gets nothing");
}

/* --- 11. OMEMO:2 messages (XEP-0384 0.9 §5.5-5.6, XEP-0420) ----------------------------------- */

/* A pubsub items result for `node` with one item `id` holding `payload`. */
static int answer_item(mend_account *a, int i, const char *from, const char *node, const char *id,
                       const char *payload)
{
	char *p = g_strdup_printf("<pubsub xmlns='" NS_PUBSUB "'><items node='%s'><item id='%s'>%s"
	                          "</item></items></pubsub>",
	                          node, id, payload);
	int r = answer(a, i, from, "result", p);

	g_free(p);
	return r;
}

/* The open query `i` to bob for one of his nodes, answered from his and dan's accounts. */
static void serve_bob_node(mend_account *a, mend_account *b, mend_account *d, int i)
{
	uint32_t did = mend_account_device_id(d);
	char node[64], id[16], *xml = NULL, *list;

	g_snprintf(id, sizeof(id), "%u", bid);
	if (sent_has(i, "items", NULL, "node", NODE2_LIST)) {
		list = g_strdup_printf("<devices xmlns='" NS_OMEMO2 "'><device id='%u'/></devices>",
		                       bid);
		answer_item(a, i, BOB, NODE2_LIST, "current", list);
		g_free(list);
	} else if (sent_has(i, "items", NULL, "node", NODE2_BUNDLE) &&
	           sent_has(i, "item", NULL, "id", id)) {
		mend_account_omemo2_bundle_xml(b, &xml);
		answer_item(a, i, BOB, NODE2_BUNDLE, id, xml);
	} else if (sent_has(i, "items", NULL, "node", NODE_LIST)) {
		list = g_strdup_printf("<list xmlns='" NS_LEGACY "'><device id='%u'/>"
		                       "<device id='%u'/></list>",
		                       bid, did);
		answer_item(a, i, BOB, NODE_LIST, "current", list);
		g_free(list);
	} else if (g_snprintf(node, sizeof(node), NODE_BUNDLES "%u", did) &&
	           sent_has(i, "items", NULL, "node", node)) {
		mend_account_bundle_xml(d, &xml); /* dan's device stands in for a legacy-only one */
		answer_item(a, i, BOB, node, "current", xml);
	} else {
		answer_error(a, i, BOB, "item-not-found");
	}
	mend_free(xml);
}

/* Answers every query still open since `mark` (OMEMO:2 lists first): bob's nodes as his server
 * keeps them, nothing for anyone else. */
static void serve_open(mend_account *a, mend_account *b, mend_account *d, guint mark)
{
	xmpp_stanza_t *st;
	guint i, pass;

	for (pass = 0; pass < 8; pass++)
		for (i = mark; i < sent->len; i++) {
			if (g_hash_table_contains(answered, GINT_TO_POINTER(i + 1)) ||
			    !sent_has(i, "items", NULL, NULL, NULL) ||
			    (pass == 0 && !sent_has(i, "items", NULL, "node", NODE2_LIST)))
				continue;
			if (sent_attr_is(i, "to", BOB)) {
				serve_bob_node(a, b, d, (int)i);
				continue;
			}
			st = sent_st(i);
			answer_error(a, (int)i, st ? xmpp_stanza_get_to(st) : NULL,
			             "item-not-found");
			if (st)
				xmpp_stanza_release(st);
		}
}

/* Sent stanza `i`'s OMEMO:2 <encrypted/> holds a key for device `rid`. */
static int sent_key2_for(int i, uint32_t rid)
{
	char want[16];

	g_snprintf(want, sizeof(want), "%u", rid);
	return i >= 0 && sent_has(i, "encrypted", NS_OMEMO2, NULL, NULL) &&
	       sent_has(i, "key", NULL, "rid", want);
}

/* Sent stanza `i`'s <encrypted/> of namespace `ns`, as the engine sent it, validates against
 * xep/`xsd` (the codec tests validate what the builders make; this is what went out). */
static int sent_valid(int i, const char *ns, const char *xsd)
{
	xmpp_stanza_t *st = i >= 0 ? sent_st((guint)i) : NULL,
	              *e = st ? find(st, "encrypted", ns) : NULL;
	char *text = NULL, *why = NULL;
	size_t len = 0;
	int ok = 0;

	if (e && xmpp_stanza_to_text(e, &text, &len) == XMPP_EOK) {
		ok = mend_test_validate(xsd, text, &why) == 0;
		if (!ok)
			printf("#   %s: %s\n", xsd, why ? why : "?");
		xmpp_free(xctx, text);
	}
	free(why);
	if (st)
		xmpp_stanza_release(st);
	return ok;
}

/* Mixed: bob's device of both versions gets OMEMO:2, his legacy-only one legacy OMEMO. */
static void omemo2_mixed_send(mend_account *a, mend_account *b, mend_account *d)
{
	guint mark = sent->len, ev0 = events->len;
	uint32_t did = mend_account_device_id(d);
	char *id = NULL, *wire, want[16];
	mend_message *m = NULL;
	const rec *ev;
	int i2, i1;

	TAP_EQ(mend_account_refresh_devices(a, BOB), 0, "bob's devices fetched again");
	TAP_EQ(mend_account_send(a, BOB, "one message, two versions", &id), 0, "send to bob");
	serve_open(a, b, d, mark);
	i2 = sent_find(mark, "encrypted", NS_OMEMO2, NULL, NULL);
	i1 = sent_find(mark, "encrypted", NS_LEGACY, NULL, NULL);
	TAP_OK(sent_key2_for(i2, bid) && sent_attr_is(i2, "to", BOB),
	       "an OMEMO:2 stanza to bob with a key for his device %u", bid);
	g_snprintf(want, sizeof(want), "%u", did);
	TAP_OK(i1 > i2 && sent_has(i1, "key", NULL, "rid", want) && !sent_key2_for(i1, bid),
	       "then a legacy stanza, for his legacy-only device %u alone", did);
	TAP_OK(!sent_has(i2, "encrypted", NS_LEGACY, NULL, NULL) && !sent_key2_for(i2, did),
	       "the OMEMO:2 stanza carries only its devices");
	TAP_OK(sent_attr_is(i1, "id", id) && sent_attr_is(i2, "id", id) &&
	           sent_has(i1, "origin-id", "urn:xmpp:sid:0", "id", id) &&
	           sent_has(i2, "origin-id", "urn:xmpp:sid:0", "id", id),
	       "one logical message: the same id and origin-id");
	TAP_OK(sent_has(i1, "body", NULL, NULL, NULL) && sent_has(i2, "body", NULL, NULL, NULL),
	       "each with the fallback body (a host shows what it decrypted in its place)");
	TAP_OK(!sent_anywhere("one message, two versions"), "the plaintext is in no stanza");
	TAP_OK(sent_valid(i2, NS_OMEMO2, "omemo2.xsd"),
	       "the OMEMO:2 <encrypted/> as sent validates against xep/omemo2.xsd");
	TAP_OK(sent_valid(i1, NS_LEGACY, "omemo-legacy.xsd"),
	       "the legacy <encrypted/> as sent validates against xep/omemo-legacy.xsd");
	ev = event_of(ev0, MEND_EVENT_SENT);
	TAP_OK(ev && str_is(ev->id, id) && count_events(ev0, MEND_EVENT_SENT) == 1,
	       "SENT once for the message");
	TAP_OK(ev && ev->n_devices2 == 1 && ev->n_devices >= 2,
	       "for %u devices, %u of them in OMEMO:2", ev ? ev->n_devices : 0,
	       ev ? ev->n_devices2 : 0);
	TAP_EQ(pending(a), 0, "the pending queue is empty");
	wire = i2 >= 0 ? stamped(g_ptr_array_index(sent, i2), ALICE_FULL, NULL, NULL) : NULL;
	TAP_EQ(wire ? mend_account_decrypt(b, wire, &m) : -1000, 0, "bob decrypts the OMEMO:2 one");
	TAP_OK(m && m->version == MEND_OMEMO_2 && str_is(m->body, "one message, two versions"),
	       "in OMEMO:2, the body from its SCE envelope");
	mend_message_free(m);
	g_free(wire);
	m = NULL;
	wire = i1 >= 0 ? stamped(g_ptr_array_index(sent, i1), ALICE_FULL, NULL, NULL) : NULL;
	TAP_EQ(wire ? mend_account_decrypt(d, wire, &m) : -1000, 0,
	       "the legacy-only device decrypts the legacy one");
	TAP_OK(m && m->version == MEND_OMEMO_LEGACY && str_is(m->body, "one message, two versions"),
	       "in legacy OMEMO");
	mend_message_free(m);
	g_free(wire);
	mend_free(id);
}

/* Bob's account learns alice's device in OMEMO:2 (her list and bundle, as a fetch gives them). */
static void bob_learns_alice2(mend_account *a, mend_account *b)
{
	char *xml = NULL;
	xmpp_stanza_t *st;

	mend_omemo2_list_store(b, ALICE, MEND_VERSION_2, &aid, 1);
	mend_account_omemo2_bundle_xml(a, &xml);
	st = xml ? xmpp_stanza_new_from_string(xctx, xml) : NULL;
	if (!st || mend_omemo2_bundle_process(b, ALICE, aid, st) < 0)
		TAP_BAIL("bob cannot build an OMEMO:2 session with alice");
	xmpp_stanza_release(st);
	mend_free(xml);
}

/* What bob's core sends alice for one device (`to` as the envelope's <to/>), as she gets it. */
static char *bob_writes(mend_account *b, int version, const char *to, const char *body,
                        const char *sid)
{
	mend_recipient rc = {(char *)ALICE, aid, version};
	char *st = NULL, *out;
	int r = mend_account_txn_begin(b);

	if (r == MEND_OK)
		r = version == MEND_VERSION_2
		        ? mend_omemo2_encrypt_for(b, to, &rc, 1, body, sid ? sid : "o2-c", 0, 1,
		                                  &st)
		        : mend_account_encrypt_for(b, to, &rc, 1, body, sid, 0, &st);
	r = mend_account_txn_end(b, r);
	if (r < 0)
		TAP_BAIL("bob cannot encrypt: %s", mend_strerror(r));
	out = stamped(st, BOB "/phone", ALICE_FULL, sid);
	g_free(st);
	return out;
}

/* Alice receives OMEMO:2, refuses a forged affix, and warns when bob's device falls back. */
/* A sender's clock two hours behind. */
static int64_t two_hours_ago(void *data)
{
	(void)data;
	return g_get_real_time() / G_USEC_PER_SEC - 2 * 60 * 60;
}

static void omemo2_receive(mend_account *a, mend_account *b)
{
	guint ev0 = events->len;
	char *wire, *bundle = NULL, *carbon_wire;
	const rec *ev;
	int send = 0;

	bob_learns_alice2(a, b);
	wire = bob_writes(b, MEND_VERSION_2, ALICE, "hello in OMEMO:2", "o2-1");
	TAP_EQ(mend_account_handle_stanza(a, wire), 1, "an OMEMO:2 message from bob");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "hello in OMEMO:2") && ev->version == MEND_OMEMO_2,
	       "shown, as OMEMO:2");
	TAP_OK(mend_store_stanza_seen(a->store, ALICE, "o2-1") == 0 &&
	           mend_store_stanza_seen_or_kept(a->store, ALICE, "o2-1") == 1,
	       "marked seen by its history row alone");
	TAP_EQ(mend_account_handle_stanza(a, wire), 1, "the same stanza again");
	TAP_OK(count_events(ev0, MEND_EVENT_MESSAGE) == 1 &&
	           !event_of(ev0, MEND_EVENT_UNDECRYPTABLE),
	       "is a duplicate: not shown again, not undecryptable");
	g_free(wire);
	TAP_OK(!event_of(ev0, MEND_EVENT_NOTICE), "its <time/> fits: no notice");
	ev0 = events->len;
	mend_account_set_clock(b, two_hours_ago, NULL);
	wire = bob_writes(b, MEND_VERSION_2, ALICE, "dated two hours ago", "o2-0");
	mend_account_set_clock(b, NULL, NULL);
	TAP_EQ(mend_account_handle_stanza(a, wire), 1, "an OMEMO:2 message whose <time/> is old");
	g_free(wire);
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "dated two hours ago"),
	       "shown (XEP-0420 §4: alert, or reject)");
	ev = event_of(ev0, MEND_EVENT_NOTICE);
	TAP_OK(ev && ev->text && strstr(ev->text, "minutes away") && strstr(ev->text, "clock"),
	       "with a notice about its time: %s", ev && ev->text ? ev->text : "(none)");
	ev0 = events->len;
	wire = bob_writes(b, MEND_VERSION_2, "mallory@evil", "not for alice", "o2-2");
	TAP_EQ(mend_account_handle_stanza(a, wire), 1, "an OMEMO:2 message whose <to/> is mallory");
	g_free(wire);
	ev = event_of(ev0, MEND_EVENT_UNDECRYPTABLE);
	TAP_OK(ev && ev->error == MEND_ERR_FORGED && ev->text && strstr(ev->text, "affix") &&
	           strstr(ev->text, "is not us"),
	       "refused, saying why: %s", ev && ev->text ? ev->text : "(none)");
	TAP_EQ(count_bodies(ev0, "not for alice"), 0, "and not shown");
	ev0 = events->len;
	wire = bob_writes(b, MEND_VERSION_2, ALICE, "carbon in OMEMO:2", NULL);
	carbon_wire = carbon(ALICE, "received", wire);
	TAP_EQ(mend_account_handle_stanza(a, carbon_wire), 1,
	       "a received carbon of bob's OMEMO:2 message (another of our devices got it)");
	g_free(wire);
	g_free(carbon_wire);
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "carbon in OMEMO:2") && ev->version == MEND_OMEMO_2 &&
	           ev->carbon == MEND_CARBON_RECEIVED,
	       "shown as a received carbon, in OMEMO:2");
	ev0 = events->len;
	if (mend_account_bundle_xml(a, &bundle) == MEND_OK)
		mend_account_bundle_process(b, ALICE, aid, bundle);
	mend_free(bundle);
	wire = bob_writes(b, MEND_VERSION_LEGACY, ALICE, "back to legacy", "o2-3");
	TAP_EQ(mend_account_handle_stanza(a, wire), 1,
	       "then a legacy message from the same device");
	g_free(wire);
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "back to legacy") && ev->version == MEND_OMEMO_LEGACY &&
	           ev->downgraded,
	       "shown as legacy OMEMO, marked as a fallback");
	ev = event_of(ev0, MEND_EVENT_NOTICE);
	TAP_OK(ev && ev->text && strstr(ev->text, "fell back"), "with a warning: %s",
	       ev && ev->text ? ev->text : "(none)");
	TAP_EQ(versions_of(a, BOB, bid, &send), 3, "bob's device still publishes both versions");
	TAP_EQ(send, MEND_OMEMO_2, "so it keeps getting OMEMO:2");
}

#define DAN "dan@x"

/* Bob accepts alice's current key (her identity was reset by an earlier test). */
static void bob_trusts_alice(mend_account *a, mend_account *b)
{
	char fp[65], *bundle = NULL;

	if (mend_account_bundle_xml(a, &bundle) == MEND_OK)
		mend_account_bundle_process(b, ALICE, aid, bundle); /* her new key: a candidate */
	mend_free(bundle);
	mend_account_fingerprint(a, fp);
	if (mend_trust_of(b, ALICE, aid) != MEND_TRUST_VERIFIED &&
	    mend_account_trust_key(b, ALICE, aid, fp) < 0)
		TAP_BAIL("bob cannot accept alice's key");
}

/* Alice's bundle (OMEMO:2 when v2) offering only her first n one-time prekeys. g_free. */
static char *first_prekeys(mend_account *a, int v2, int n)
{
	const char *tag = v2 ? "pk" : "preKeyPublic";
	char *pattern =
	    g_strdup_printf("((?:<%s[^>]*>[^<]*</%s>){%d})<%s.*</prekeys>", tag, tag, n, tag);
	GRegex *re = g_regex_new(pattern, 0, 0, NULL);
	char *xml = NULL, *out;

	if ((v2 ? mend_account_omemo2_bundle_xml(a, &xml) : mend_account_bundle_xml(a, &xml)) < 0)
		TAP_BAIL("no bundle for alice");
	out = g_regex_replace(re, xml, -1, 0, "\\1</prekeys>", 0, NULL);
	g_regex_unref(re);
	g_free(pattern);
	mend_free(xml);
	return out;
}

/* Sender s's first message to alice in one version, on a session built from `bundle`. */
static char *first_of_version(mend_account *s, const char *from, int v2, const char *bundle,
                              const char *body)
{
	mend_recipient rc = {(char *)ALICE, aid, v2 ? MEND_VERSION_2 : MEND_VERSION_LEGACY};
	xmpp_stanza_t *st = v2 ? xmpp_stanza_new_from_string(xctx, bundle) : NULL;
	char *list = list_xml(aid), *out = NULL, *enc = NULL;
	int r;

	mend_account_devicelist_update(s, ALICE, list);
	mend_omemo2_list_store(s, ALICE, MEND_VERSION_2, &aid, 1);
	g_free(list);
	r = v2 ? mend_omemo2_bundle_process(s, ALICE, aid, st)
	       : mend_account_bundle_process(s, ALICE, aid, bundle);
	if (r == MEND_OK)
		r = mend_account_txn_begin(s);
	if (r == MEND_OK)
		r = mend_account_txn_end(
		    s, v2 ? mend_omemo2_encrypt_for(s, ALICE, &rc, 1, body, "o2-apart", 0, 1, &enc)
		          : mend_account_encrypt_for(s, ALICE, &rc, 1, body, NULL, 0, &enc));
	if (r < 0)
		TAP_BAIL("%s cannot write to alice: %s", from, mend_strerror(r));
	out = stamped(enc, from, ALICE_FULL, NULL);
	g_free(enc);
	if (st)
		xmpp_stanza_release(st);
	return out;
}

/*
 * A device builds one session on each of its one-time prekeys (it deletes the prekey then),
 * so a second prekey message on one is lost. A sender builds a second session with a device
 * when it fetched its bundle twice (a rebuild replaces the first session, whose prekey
 * messages left already), or in the other version: mend offers the same prekeys in its
 * legacy and its OMEMO:2 bundle, and a mend sender builds a session of each version with a
 * device that publishes both. So a new session is not built on a prekey one of ours still
 * waits on. Here the first bundle offers alice's first prekey, the second her first two;
 * each order of versions (legacy twice only on libsignal-protocol-c), six senders each:
 * every message must decrypt (without the rule one sender in two takes the first prekey
 * twice).
 */
static void test_prekeys_apart(const char *root, mend_account *a)
{
	static const mend_host_ops none = {0};
	int orders = mend_omemo2_sessions_supported() ? 4 : 1, k, n = 0;
	guint ev0 = events->len;

	for (k = 0; k < 6 * orders; k++) {
		int order =
		    orders == 1 ? 2 : k % 4; /* 0: legacy, OMEMO:2; 1: the reverse; 2, 3: twice */
		int v1 = order == 1 || order == 3, v2 = order >= 2 ? v1 : !v1;
		char jid[16], from[24], *one = first_prekeys(a, v1, 1),
		                        *two = first_prekeys(a, v2, 2);
		char *w1, *w2;
		mend_account *s;

		g_snprintf(jid, sizeof(jid), "lee%d@x", k);
		g_snprintf(from, sizeof(from), "%s/r", jid);
		s = open_in(root, jid, &none);
		w1 = first_of_version(s, from, v1, one, "on the first prekey");
		w2 = first_of_version(s, from, v2, two, "on a second session");
		arrives(a, from, w1);
		arrives(a, from, w2);
		n += 2;
		g_free(w1);
		g_free(w2);
		g_free(one);
		g_free(two);
		mend_account_free(s);
	}
	TAP_EQ(count_bodies(ev0, "on the first prekey"), n / 2, "%d senders' first sessions",
	       n / 2);
	TAP_EQ(count_bodies(ev0, "on a second session"), n / 2,
	       "and their second sessions with alice's device");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "none lost on a used prekey");
}

static void test_omemo2_messages(mend_account *a, mend_account *b, const char *root)
{
	static const mend_host_ops quiet = {0};
	mend_account *d;

	if (!mend_omemo2_sessions_supported())
		return; /* libsignal-protocol-c: legacy only (test_omemo2_nodes) */
	d = open_in(root, DAN, &quiet);
	bob_trusts_alice(a, b);
	omemo2_mixed_send(a, b, d);
	omemo2_receive(a, b);
	mend_account_free(d);
}

/* --- 13. time stamps: the fast path for the servers' form against GLib's parser ------------ */

static void test_iso_times(void)
{
	static const char *zones[] = {"Z", "Z", "Z", "+01:00", "-05:30", "", "z", "+00:00"};
	static const char *fracs[] = {"",         "",  ".5",      ".123456",
	                              ".1234567", ".", ".000001", ".999999"};
	GRand *rng = g_rand_new_with_seed(13);
	int i, bad = 0, fast = 0;

	for (i = 0; i < 20000; i++) {
		/* valid and invalid fields alike: day 31 of every month, 29 February, hour 24 */
		char *s = g_strdup_printf(
		    "%04d-%02d-%02dT%02d:%02d:%02d%s%s", g_rand_int_range(rng, 990, 10000),
		    g_rand_int_range(rng, 0, 14), g_rand_int_range(rng, 0, 33),
		    g_rand_int_range(rng, 0, 25), g_rand_int_range(rng, 0, 61),
		    g_rand_int_range(rng, 0, 61), fracs[g_rand_int_range(rng, 0, 8)],
		    zones[g_rand_int_range(rng, 0, 8)]);
		GDateTime *dt = g_date_time_new_from_iso8601(s, NULL), *utc;
		char *want = NULL, *got = mend_iso_utc(s);

		if (dt) {
			utc = g_date_time_to_utc(dt);
			want = g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ");
			g_date_time_unref(utc);
		}
		if (g_strcmp0(want, got) != 0 || (dt && unix_of(s) != g_date_time_to_unix(dt))) {
			if (bad++ < 5)
				printf("# %s: GLib %s, mend %s\n", s, want ? want : "(none)",
				       got ? got : "(none)");
		}
		fast += dt && g_str_has_suffix(s, "Z") && strlen(s) <= 27;
		if (dt)
			g_date_time_unref(dt);
		g_free(want);
		g_free(got);
		g_free(s);
	}
	TAP_EQ(bad, 0, "20,000 time stamps read as GLib reads them (%d in the servers' form)",
	       fast);
	TAP_EQ(unix_of("2026-12-06T23:59:59Z"), 1796601599, "a known time");
	TAP_EQ(unix_of("2000-02-29T00:00:00.25Z"), 951782400, "a leap day, a fraction");
	g_rand_free(rng);
}

int main(void)
{
	static const mend_host_ops quiet = {0};
	char *root = g_dir_make_tmp("mend-engine-XXXXXX", NULL);
	mend_account *a, *b, *e;

	if (!root)
		TAP_BAIL("no temp dir");
	xctx = xmpp_ctx_new(NULL, NULL);
	sent = g_ptr_array_new_with_free_func(g_free);
	answered = g_hash_table_new(g_direct_hash, g_direct_equal);
	events = g_ptr_array_new_with_free_func(rec_free);
	warnings = g_string_new(NULL);
	a = open_in(root, ALICE, &alice_ops);
	b = open_in(root, BOB, &quiet);
	aid = mend_account_device_id(a);
	bid = mend_account_device_id(b);
	test_iso_times();
	test_connect(a);
	test_pending(a, b);
	test_no_omemo(a);
	test_carbons(a, b);
	test_archive(a, b);
	test_sid_like_own_key(a, b);
	a = test_crash_mid_page(root, a, b);
	a = test_page_spans_pages(root, a, b);
	a = test_page_crash_after_commit(root, a, b);
	test_page_max(a, b);
	test_page_bytes(a, b);
	test_page_note_waits(root, a);
	test_lazy_page_lost(a, b);
	test_archive_error(root, a);
	test_republish(root, a);
	test_bundle_outdated_by_other_process(root, a);
	test_garbage(a, b);
	test_host_send_fails(a, b);
	test_bounce(a);
	test_unknown_recipients(a);
	test_receipts_in(a);
	test_receipts_out(a, b);
	test_receipts_archive(a, b);
	e = open_in(root, FAY, &quiet);
	test_heartbeats(a, e);
	test_key_only(a, e);
	test_copy_twice(a, e);
	test_missing_prekey_logged(root, a);
	e = test_repair(a, e, root);
	test_repair_waits_for_catchup(a, root);
	test_reset_announced(a, e);
	mend_account_free(e);
	test_list_lost(a);
	test_first_publish_lost(root);
	test_subscribe(a, b, root);
	test_omemo2_nodes(a);
	test_omemo2_messages(a, b, root);
	test_prekeys_apart(root, a);
	mend_account_free(a);
	mend_account_free(b);
	g_ptr_array_free(sent, TRUE);
	g_hash_table_destroy(answered);
	g_ptr_array_free(events, TRUE);
	g_string_free(warnings, TRUE);
	xmpp_ctx_free(xctx);
	rm_rf(root);
	g_free(root);
	return tap_done();
}
