/*
 * delivery.c - what became of the messages we send, and what we tell the
 * sender of a message we received:
 *
 *  - XEP-0184 Message Delivery Receipts: our messages carry <request/>
 *    (message.c); a <received/> from the recipient for one of our messages
 *    becomes a DELIVERED event, once per message; a live message we
 *    decrypted and showed is answered with a <received/> (never an archived
 *    one, never one we could not decrypt);
 *  - bounces (RFC 6120 §8.3): a <message type='error'> with the id of one of
 *    our messages becomes a SEND_FAILED event in words the user can act on;
 *  - the words for a contact without usable keys, by the condition the
 *    server gave when we asked for their device list.
 *
 * Which messages are ours is decided by the local history (every message we
 * sent is kept there under its id, with its peer), so a receipt or bounce
 * that arrives in a later run is still recognised, and one from anybody but
 * the peer is ignored.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "internal.h"
#include "xep/omemo_legacy.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_STANZAS  "urn:ietf:params:xml:ns:xmpp-stanzas"

/* How many delivered ids we remember to report each once (per run). */
#define DELIVERED_MAX 4096

struct mend_delivery {
	GHashTable *delivered;   /* message ids reported DELIVERED */
	GHashTable *list_errors; /* jid -> condition of its failed device list fetch */
};

static struct mend_delivery *state(mend_account *acc)
{
	if (!acc->delivery) {
		acc->delivery = g_new0(struct mend_delivery, 1);
		acc->delivery->delivered =
		    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->delivery->list_errors =
		    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	}
	return acc->delivery;
}

void mend_delivery_free(mend_account *acc)
{
	if (!acc->delivery)
		return;
	g_hash_table_destroy(acc->delivery->delivered);
	g_hash_table_destroy(acc->delivery->list_errors);
	g_free(acc->delivery);
	acc->delivery = NULL;
}

static void emit(mend_account *acc, const mend_event *ev)
{
	if (acc->ops.event)
		acc->ops.event(ev, acc->user_data);
}

/* RFC 6120 §8.3.2: the defined condition of an <error/> (its first child in the stanzas ns). */
static const char *condition_of(xmpp_stanza_t *st)
{
	xmpp_stanza_t *e = mend_child(st, "error", NULL), *c;

	for (c = e ? xmpp_stanza_get_children(e) : NULL; c; c = xmpp_stanza_get_next(c)) {
		const char *name = xmpp_stanza_get_name(c), *ns = xmpp_stanza_get_ns(c);

		if (xmpp_stanza_is_tag(c) && name && ns && g_str_equal(ns, NS_STANZAS) &&
		    !g_str_equal(name, "text"))
			return name;
	}
	return NULL;
}

static int is(const char *cond, const char *want)
{
	return cond && g_str_equal(cond, want);
}

/*
 * DESIGN §7: why nothing reaches `jid`, by the server's condition, as a
 * sentence the user can act on (g_free). Never advice to send in plaintext.
 */
static char *why_text(const char *jid, const char *cond)
{
	const char *at = strchr(jid, '@');
	const char *domain = at ? at + 1 : jid;

	if (is(cond, "remote-server-not-found"))
		return g_strdup_printf(_("The server %s was not found; check the address %s."),
		                       domain, jid);
	if (is(cond, "remote-server-timeout"))
		return g_strdup_printf(_("The server %s did not answer in time; check the address "
		                         "%s, or try again later."),
		                       domain, jid);
	if (is(cond, "service-unavailable") || is(cond, "item-not-found") ||
	    is(cond, "recipient-unavailable") || is(cond, "gone"))
		return g_strdup_printf(
		    _("%s does not exist on that server (or accepts nothing from "
		      "you); check the address."),
		    jid);
	if (is(cond, "not-allowed") || is(cond, "forbidden") || is(cond, "not-authorized") ||
	    is(cond, "policy-violation"))
		return g_strdup_printf(_("The server refused to pass it on to %s (%s); check the "
		                         "address."),
		                       jid, cond);
	return g_strdup_printf(_("The server could not deliver it to %s (%s)."), jid,
	                       cond ? cond : _("no reason given"));
}

/* --- bounces (RFC 6120 §8.3) ---------------------------------------------------- */

/* Our sent message `id` to `peer` (bare), looked up in local history into *it (cleared). */
static int ours(mend_account *acc, const char *peer, const char *id, mend_history_item *it)
{
	int found;

	if (!peer || !id)
		return 0;
	found = mend_store_history_by_msg_id(acc->store, peer, id, it) == MEND_OK && it->outgoing;
	if (!found)
		mend_history_clear(it);
	return found;
}

static char *bare_of(const char *jid)
{
	return jid ? g_strndup(jid, strcspn(jid, "/")) : NULL;
}

int mend_delivery_bounced(mend_account *acc, xmpp_stanza_t *st)
{
	mend_event ev = {
	    .kind = MEND_EVENT_SEND_FAILED, .error = MEND_ERR_UNDELIVERABLE, .trust = -1};
	char *peer = bare_of(xmpp_stanza_get_from(st)), *why, *text;
	const char *cond = condition_of(st);
	mend_history_item it = {0};

	ev.id = xmpp_stanza_get_id(st);
	if (!ours(acc, peer, ev.id, &it)) {
		g_free(peer);
		return 0; /* not a message of ours: the host's */
	}
	mend_log(acc, MEND_LOG_WARNING, "our message %s to %s bounced: %s", ev.id, peer,
	         cond ? cond : "?");
	why = why_text(peer, cond);
	text = g_strdup_printf(_("The message to %s was not delivered. %s"), peer, why);
	ev.peer = peer;
	ev.body = it.body;
	ev.text = text;
	emit(acc, &ev);
	mend_history_clear(&it);
	g_free(text);
	g_free(why);
	g_free(peer);
	return 1;
}

/* --- a contact without usable keys: no OMEMO, or no such address? --------------- */

/* Whether a device list refused with `cond` only means "no OMEMO node here". */
static int only_no_node(const char *cond)
{
	/* Prosody answers forbidden for a node that does not exist, also for no account */
	return !cond || is(cond, "forbidden") || is(cond, "item-not-found");
}

void mend_delivery_list_failed(mend_account *acc, const char *jid, xmpp_stanza_t *iq)
{
	const char *cond = iq ? condition_of(iq) : NULL;

	if (iq)
		g_hash_table_replace(state(acc)->list_errors, g_strdup(jid),
		                     g_strdup(cond ? cond : "undefined-condition"));
	else
		g_hash_table_remove(state(acc)->list_errors, jid);
}

int mend_delivery_wants_probe(mend_account *acc, const char *jid)
{
	const char *cond = g_hash_table_lookup(state(acc)->list_errors, jid);
	uint32_t *ids = NULL;
	size_t n = 0;

	if (!cond || !only_no_node(cond))
		return 0;
	mend_store_devicelist_get(acc->store, jid, &ids, &n);
	g_free(ids);
	return n == 0;
}

/*
 * XEP-0030 §3.1 on the bare JID: an account answers (for contacts at least);
 * service-unavailable means no such account, or one that shows us nothing.
 */
void mend_delivery_probed(mend_account *acc, const char *jid, xmpp_stanza_t *iq)
{
	const char *cond = iq ? condition_of(iq) : NULL;

	if (iq && !only_no_node(cond))
		g_hash_table_replace(state(acc)->list_errors, g_strdup(jid),
		                     g_strdup(cond ? cond : "undefined-condition"));
}

int mend_delivery_refine(mend_account *acc, const char *jid, int err)
{
	char *b;
	int addr;

	if (err != MEND_ERR_NO_DEVICES || !jid)
		return err;
	b = bare_of(jid);
	addr = !only_no_node(g_hash_table_lookup(state(acc)->list_errors, b));
	g_free(b);
	return addr ? MEND_ERR_UNDELIVERABLE : err;
}

char *mend_account_send_error_text(mend_account *acc, const char *to, int err)
{
	char *b, *why, *text;
	const char *cond;

	if (!to)
		return g_strdup(mend_strerror(err));
	if (err != MEND_ERR_NO_DEVICES && err != MEND_ERR_UNDELIVERABLE)
		return g_strdup_printf(_("The message to %s was not sent: %s"), to,
		                       mend_strerror(err));
	b = bare_of(to);
	cond = g_hash_table_lookup(state(acc)->list_errors, b);
	if (err == MEND_ERR_UNDELIVERABLE || !only_no_node(cond))
		why = why_text(b, cond ? cond : "service-unavailable");
	else
		why = g_strdup_printf(_("%s has no OMEMO device mend can encrypt to; check the "
		                        "address, and that their client has OMEMO turned on."),
		                      b);
	text = g_strdup_printf(_("%s The message was NOT sent (nothing left unencrypted)."), why);
	g_free(why);
	g_free(b);
	return text;
}

/* --- receipts (XEP-0184) ------------------------------------------------------------ */

/* XEP-0184 §7: a <received id=.../> from the peer for one of our messages. */
int mend_delivery_receipt(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *received)
{
	struct mend_delivery *d = state(acc);
	mend_event ev = {.kind = MEND_EVENT_DELIVERED, .trust = -1};
	char *peer = bare_of(xmpp_stanza_get_from(st));
	mend_history_item it = {0};

	ev.id = xmpp_stanza_get_attribute(received, "id");
	if (!ev.id) /* XEP-0184 before 1.1: no id; the ack reused the message id */
		ev.id = xmpp_stanza_get_id(st);
	if (!ours(acc, peer, ev.id, &it)) {
		mend_log(acc, MEND_LOG_INFO, "receipt from %s for a message not ours ignored",
		         peer ? peer : "?");
		g_free(peer);
		return 0;
	}
	if (!g_hash_table_contains(d->delivered, ev.id)) {
		if (g_hash_table_size(d->delivered) >= DELIVERED_MAX)
			g_hash_table_remove_all(d->delivered);
		g_hash_table_add(d->delivered, g_strdup(ev.id));
		ev.peer = ev.from = peer;
		ev.body = it.body;
		emit(acc, &ev);
	}
	mend_history_clear(&it);
	g_free(peer);
	return 1;
}

/* A random stanza id of 128 bits in hex, as unique as a UUID without its formatting cost. */
static void random_id(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	guint32 v = 0;

	for (int i = 0; i < 32; i++, v >>= 4) {
		if (i % 8 == 0)
			v = g_random_int();
		out[i] = hex[v & 15];
	}
	out[32] = '\0';
}

/* Appends v escaped as an attribute value: JIDs and ids in printable ASCII without
 * markup characters (nearly all) as they are, anything else as GLib escapes it. */
static void append_attr(GString *out, const char *v)
{
	const char *p = v;
	char *esc;

	while (*p >= 0x20 && *p < 0x7f && *p != '<' && *p != '>' && *p != '&' && *p != '\'' &&
	       *p != '"')
		p++;
	if (!*p) {
		g_string_append_len(out, v, p - v);
		return;
	}
	esc = g_markup_escape_text(v, -1);
	g_string_append(out, esc);
	g_free(esc);
}

/*
 * XEP-0184 §7: answers a receipt request of `msg`, a message from someone
 * else, when its decryption (result r) showed a text for the first time: a
 * copy seen before (r DUPLICATE) was answered then, and one we could not
 * decrypt gets no receipt. §5.4 (ack messages): the answer carries only
 * <received/>, never a request. Sent plain, as OMEMO clients do.
 */
void mend_delivery_answer(mend_account *acc, xmpp_stanza_t *msg, int r, const mend_message *m)
{
	const char *from = xmpp_stanza_get_from(msg), *id = xmpp_stanza_get_id(msg);
	char rid[33];
	GString *text;

	if (r != MEND_OK || !m->body || !from || !id || !mend_child(msg, "request", NS_RECEIPTS) ||
	    !acc->ops.send_stanza)
		return;
	/* written as text, as message.c writes messages: one per message of a catch-up */
	random_id(rid);
	text = g_string_sized_new(192);
	g_string_append(text, "<message type='chat' to='");
	append_attr(text, from);
	g_string_append(text, "' id='");
	g_string_append(text, rid);
	g_string_append(text, "'><received xmlns='" NS_RECEIPTS "' id='");
	append_attr(text, id);
	g_string_append(text, "'/></message>");
	acc->ops.send_stanza(text->str, acc->user_data);
	g_string_free(text, TRUE);
}
