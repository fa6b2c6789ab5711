/*
 * engine.c - the protocol engine: what turns the core into an XMPP OMEMO
 * client once a host pipes stanzas through it.
 *
 *  - on connect: fetch our device list, add us, publish it and our bundle
 *    (XEP-0384 v0.3 §4.2-4.3, XEP-0060 publish-options with a fallback to
 *    configuring the node), enable carbons (XEP-0280), catch up from the
 *    archive (XEP-0313) from where we left;
 *  - sending: the message waits in the persistent pending queue while device
 *    lists and bundles are fetched; it is encrypted and sent once every device
 *    has a session or is known to be unusable; plaintext never leaves;
 *  - receiving: direct, carbon (outer from must be our bare JID), archive
 *    (our own query only) and offline messages, deduped by stanza-id, kept
 *    in the sealed local history; PEP device list notifications.
 *
 * Requests are IQs tracked by id; a reply counts only from the entity asked.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "internal.h"
#include "files.h"
#include "engine.h"
#include "room.h"
#include "xep/omemo_legacy.h"
#include "xep/omemo2.h"
#include "omemo2_engine.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define NS_PUBSUB       "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_EVENT "http://jabber.org/protocol/pubsub#event"
#define NS_DATA         "jabber:x:data"
#define NS_CARBONS      "urn:xmpp:carbons:2"
#define NS_DELAY        "urn:xmpp:delay"
#define NS_SID          "urn:xmpp:sid:0"
#define NS_DISCO_INFO   "http://jabber.org/protocol/disco#info"
#define NS_RECEIPTS     "urn:xmpp:receipts"

typedef struct iq_wait {
	char *to; /* whom we asked; NULL = our own account */
	iq_cb cb;
	void *data;
	GDestroyNotify free_data;
} iq_wait;

struct mend_engine {
	char *full_jid;
	unsigned flags;
	int connected;
	int ready;
	int publishing;   /* publishes outstanding before READY */
	unsigned fetches; /* device list and bundle fetches outstanding */
	unsigned next_id;
	GHashTable *iqs;        /* id -> iq_wait */
	GHashTable *fresh;      /* jids whose device list was fetched on this connection */
	GHashTable *refreshing; /* jids whose devices mend_account_refresh_devices() fetches */
	GHashTable *touched;    /* "device/jid" -> when we last wrote its last-seen time */
	int republishing;       /* a bundle republish is in flight (archive.c's batching) */
	GHashTable *subscribed; /* jids whose device-list node we subscribed to (1: confirmed) */
	char *bundle_sent;      /* our bundle as last sent (bundle_published) */
};

static void iq_wait_free(gpointer p)
{
	iq_wait *w = p;

	if (w->free_data)
		w->free_data(w->data);
	g_free(w->to);
	g_free(w);
}

static mend_engine *engine(mend_account *acc)
{
	if (!acc->eng) {
		acc->eng = g_new0(mend_engine, 1);
		acc->eng->iqs =
		    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, iq_wait_free);
		acc->eng->fresh = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->eng->refreshing = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->eng->touched = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		acc->eng->subscribed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	}
	return acc->eng;
}

void mend_engine_free(mend_engine *eng)
{
	if (!eng)
		return;
	g_hash_table_destroy(eng->iqs);
	g_hash_table_destroy(eng->fresh);
	g_hash_table_destroy(eng->refreshing);
	g_hash_table_destroy(eng->touched);
	g_hash_table_destroy(eng->subscribed);
	g_free(eng->bundle_sent);
	g_free(eng->full_jid);
	g_free(eng);
}

/* --- stanza helpers -------------------------------------------------------- */

xmpp_stanza_t *el(mend_account *acc, const char *name, const char *ns)
{
	xmpp_stanza_t *st = xmpp_stanza_new(acc->xctx);

	xmpp_stanza_set_name(st, name);
	if (ns)
		xmpp_stanza_set_ns(st, ns);
	return st;
}

/* Adds `child` to `parent`, giving up our reference; returns the child. */
xmpp_stanza_t *add(xmpp_stanza_t *parent, xmpp_stanza_t *child)
{
	xmpp_stanza_add_child(parent, child);
	xmpp_stanza_release(child);
	return child;
}

void add_text(mend_account *acc, xmpp_stanza_t *parent, const char *text)
{
	xmpp_stanza_t *t = xmpp_stanza_new(acc->xctx);

	xmpp_stanza_set_text(t, text);
	add(parent, t);
}

/* <field var=VAR [type=TYPE]><value>VALUE</value></field> */
void add_field(mend_account *acc, xmpp_stanza_t *x, const char *var, const char *type,
               const char *value)
{
	xmpp_stanza_t *f = add(x, el(acc, "field", NULL));

	xmpp_stanza_set_attribute(f, "var", var);
	if (type)
		xmpp_stanza_set_attribute(f, "type", type);
	add_text(acc, add(f, el(acc, "value", NULL)), value);
}

/* A data form (XEP-0004) of type submit with FORM_TYPE and one more field. */
xmpp_stanza_t *form(mend_account *acc, const char *form_type, const char *var, const char *value)
{
	xmpp_stanza_t *x = el(acc, "x", NS_DATA);

	xmpp_stanza_set_type(x, "submit");
	add_field(acc, x, "FORM_TYPE", "hidden", form_type);
	if (var)
		add_field(acc, x, var, NULL, value);
	return x;
}

xmpp_stanza_t *child(xmpp_stanza_t *st, const char *name, const char *ns)
{
	return st ? mend_child(st, name, ns) : NULL;
}

static char *bare(const char *jid)
{
	return jid ? g_strndup(jid, strcspn(jid, "/")) : NULL;
}

int is_own_bare(mend_account *acc, const char *jid)
{
	return jid && g_str_equal(jid, acc->jid);
}

static void send_text(mend_account *acc, xmpp_stanza_t *st)
{
	char *text = mend_stanza_text(st);

	if (text && acc->ops.send_stanza)
		acc->ops.send_stanza(text, acc->user_data);
	g_free(text);
}

void emit(mend_account *acc, const mend_event *ev)
{
	if (mend_archive_defer(acc, ev)) /* shown once its catch-up page commits (archive.c) */
		return;
	mend_announce_emit(acc, ev); /* announced: is its device in the sender's list? */
}

static void notice(mend_account *acc, const char *peer, const char *text)
{
	mend_event ev = {.kind = MEND_EVENT_NOTICE, .peer = peer, .text = text, .trust = -1};

	emit(acc, &ev);
}

/* --- IQ tracking ------------------------------------------------------------ */

/* Sends `iq` (consumed) to `to` (NULL: our account) and calls cb with its reply. */
void send_iq(mend_account *acc, xmpp_stanza_t *iq, const char *to, iq_cb cb, void *data,
             GDestroyNotify free_data)
{
	mend_engine *eng = engine(acc);
	iq_wait *w = g_new0(iq_wait, 1);
	char *id = g_strdup_printf("mend%u-%08x", ++eng->next_id, g_random_int());

	xmpp_stanza_set_id(iq, id);
	if (to)
		xmpp_stanza_set_to(iq, to);
	w->to = g_strdup(to);
	w->cb = cb;
	w->data = data;
	w->free_data = free_data;
	g_hash_table_insert(eng->iqs, id, w);
	send_text(acc, iq);
	xmpp_stanza_release(iq);
}

xmpp_stanza_t *iq_new(mend_account *acc, const char *type)
{
	xmpp_stanza_t *iq = el(acc, "iq", NULL);

	xmpp_stanza_set_type(iq, type);
	return iq;
}

/* RFC 6120 §10.1 / CVE-2017-5589 family: a reply counts only from whom we asked. */
static int reply_from_ok(mend_account *acc, const iq_wait *w, const char *from)
{
	if (!from)
		return !w->to || is_own_bare(acc, w->to);
	if (w->to)
		return g_str_equal(from, w->to);
	return is_own_bare(acc, from) ||
	       (acc->eng->full_jid && g_str_equal(from, acc->eng->full_jid));
}

static int handle_iq_reply(mend_account *acc, xmpp_stanza_t *st, const char *type)
{
	mend_engine *eng = engine(acc);
	const char *id = xmpp_stanza_get_id(st);
	gpointer key = NULL, value = NULL;
	iq_wait *w;

	if (!id || !g_hash_table_lookup_extended(eng->iqs, id, &key, &value))
		return 0;
	w = value;
	if (!reply_from_ok(acc, w, xmpp_stanza_get_from(st))) {
		mend_log(acc, MEND_LOG_WARNING, "reply to %s from %s ignored: not whom we asked",
		         id, xmpp_stanza_get_from(st));
		return 1;
	}
	g_hash_table_steal(eng->iqs, id);
	w->cb(acc, st, g_str_equal(type, "result"), w->data);
	iq_wait_free(w);
	g_free(key);
	return 1;
}

/* --- publishing (XEP-0060 §7.1.5 publish-options, §8.2 configure) ---------- */

typedef struct publish_job {
	char *node;
	char *payload; /* the item's payload, serialized */
	int stage;     /* 0 with options, 1 configuring, 2 without options */
	void (*done)(mend_account *acc, int ok);
	char *item_id; /* NULL: "current" */
	int max_items; /* also pubsub#max_items = max (XEP-0384 0.9 §5.3.2) */
} publish_job;

static void publish_job_free(gpointer p)
{
	publish_job *j = p;

	g_free(j->node);
	g_free(j->payload);
	g_free(j->item_id);
	g_free(j);
}

static const char *access_form = "http://jabber.org/protocol/pubsub#publish-options";

static void publish_step(mend_account *acc, publish_job *j);

static void publish_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	publish_job *j = data;
	publish_job *next;

	if (ok && j->stage != 1) {
		j->done(acc, 1);
		return;
	}
	if (!ok && j->stage == 2) {
		mend_log(acc, MEND_LOG_ERROR, "publishing %s failed", j->node);
		j->done(acc, 0);
		return;
	}
	/* options refused: configure the node open, then publish plainly (DESIGN §3) */
	next = g_new0(publish_job, 1);
	*next = *j;
	next->node = g_strdup(j->node);
	next->payload = g_strdup(j->payload);
	next->item_id = g_strdup(j->item_id);
	next->stage = j->stage + 1;
	publish_step(acc, next);
}

static xmpp_stanza_t *publish_iq(mend_account *acc, const publish_job *j)
{
	xmpp_stanza_t *iq = iq_new(acc, "set"), *ps, *pub, *item, *payload;

	ps = add(iq, el(acc, "pubsub", NS_PUBSUB));
	pub = add(ps, el(acc, "publish", NULL));
	xmpp_stanza_set_attribute(pub, "node", j->node);
	item = add(pub, el(acc, "item", NULL));
	xmpp_stanza_set_id(item, j->item_id ? j->item_id : "current");
	payload = mend_stanza_parse(acc, j->payload);
	if (payload)
		add(item, payload);
	if (j->stage == 0) {
		xmpp_stanza_t *f = form(acc, access_form, "pubsub#access_model", "open");

		if (j->max_items)
			add_field(acc, f, "pubsub#max_items", NULL, "max");
		add(add(ps, el(acc, "publish-options", NULL)), f);
	}
	return iq;
}

static void publish_step(mend_account *acc, publish_job *j)
{
	xmpp_stanza_t *iq, *conf;

	if (j->stage == 1) {
		iq = iq_new(acc, "set");
		conf = add(add(iq, el(acc, "pubsub", NS_PUBSUB_OWNER)), el(acc, "configure", NULL));
		xmpp_stanza_set_attribute(conf, "node", j->node);
		conf = add(conf, form(acc, "http://jabber.org/protocol/pubsub#node_config",
		                      "pubsub#access_model", "open"));
		if (j->max_items)
			add_field(acc, conf, "pubsub#max_items", NULL, "max");
	} else {
		iq = publish_iq(acc, j);
	}
	send_iq(acc, iq, NULL, publish_reply, j, publish_job_free);
}

static void publish(mend_account *acc, const char *node, char *payload,
                    void (*done)(mend_account *acc, int ok))
{
	mend_engine_publish(acc, node, NULL, 0, payload, done);
}

void mend_engine_publish(mend_account *acc, const char *node, const char *item_id, int max_items,
                         char *payload, void (*done)(mend_account *acc, int ok))
{
	publish_job *j = g_new0(publish_job, 1);

	j->node = g_strdup(node);
	j->item_id = g_strdup(item_id);
	j->max_items = max_items;
	j->payload = payload;
	j->done = done;
	publish_step(acc, j);
}

/* --- connecting -------------------------------------------------------------- */

static void pump_all(mend_account *acc);
static void republish_bundle(mend_account *acc);

static void published(mend_account *acc, int ok)
{
	mend_engine *eng = engine(acc);
	mend_event ev = {.kind = MEND_EVENT_READY, .trust = -1};

	if (!ok)
		notice(acc, NULL,
		       _("Publishing this device's OMEMO keys failed; contacts may not be able "
		         "to encrypt to it. See the log for the server's answer."));
	if (eng->publishing > 0 && --eng->publishing == 0 && !eng->ready) {
		eng->ready = 1;
		mend_archive_ready(acc);
		emit(acc, &ev);
		/* prekeys used by a catch-up that ended before READY */
		republish_bundle(acc);
		pump_all(acc);
		mend_repair_flush(acc);
	}
}

static void publish_bundle(mend_account *acc, void (*done)(mend_account *acc, int ok))
{
	mend_engine *eng = engine(acc);
	char node[sizeof(MEND_NODE_LEGACY_BUNDLES) + 12];
	char *xml = NULL;

	if (mend_account_bundle_xml(acc, &xml) < 0) {
		done(acc, 0);
		return;
	}
	g_free(eng->bundle_sent);
	eng->bundle_sent = g_strdup(xml);
	g_snprintf(node, sizeof(node), "%s%u", MEND_NODE_LEGACY_BUNDLES, acc->device_id);
	publish(acc, node, xml, done);
	mend_omemo2_publish_bundle(acc); /* the same keys, kept current in both versions */
}

/*
 * The server took our bundle: is it still the store's? Another process on the
 * store (a one-shot command beside a listener) may have spent a prekey since it was built,
 * and that process's republish may have landed first: ours would offer the spent prekey
 * until our next publish. Then it goes again (XEP-0384 v0.3 §4.3: a used PreKey is
 * replaced in the published bundle).
 */
static void check_bundle(mend_account *acc, int ok)
{
	mend_engine *eng = engine(acc);
	int dirty = acc->bundle_dirty; /* building the bundle clears it */
	char *xml = NULL;

	if (ok && eng->bundle_sent && mend_account_bundle_xml(acc, &xml) == MEND_OK)
		dirty |= !g_str_equal(xml, eng->bundle_sent);
	acc->bundle_dirty = dirty;
	g_free(xml);
}

static void bundle_published(mend_account *acc, int ok)
{
	check_bundle(acc, ok);
	published(acc, ok);
}

static void publish_own_list(mend_account *acc)
{
	char *xml = NULL;

	if (mend_account_own_devicelist_xml(acc, &xml) < 0) {
		published(acc, 0);
		return;
	}
	publish(acc, MEND_NODE_LEGACY_DEVICELIST, xml, published);
}

/* The <list/> inside a pubsub items reply or event, serialized; NULL when absent. */
static char *list_of_items(xmpp_stanza_t *items)
{
	xmpp_stanza_t *item = child(items, "item", NULL);

	return mend_stanza_text(child(item, "list", MEND_NS_LEGACY));
}

/* Whether the list the server gave (pubsub items) names our device: its word, not our memory. */
static int server_lists_us(mend_account *acc, xmpp_stanza_t *items)
{
	xmpp_stanza_t *list = child(child(items, "item", NULL), "list", MEND_NS_LEGACY);
	mend_devicelist dl = {0};
	size_t i;
	int found = 0;

	if (!list || mend_legacy_devicelist_parse(list, &dl) < 0)
		return 0;
	for (i = 0; i < dl.n; i++)
		found |= dl.ids[i] == acc->device_id;
	mend_devicelist_clear(&dl);
	return found;
}

/* A device list arrived for `jid` (fetched or notified): store it; re-add us if dropped. */
static void devicelist_arrived(mend_account *acc, const char *jid, xmpp_stanza_t *items)
{
	char *xml = list_of_items(items);
	uint32_t *ids = NULL;
	size_t n = 0, i;

	/*
	 * No list (an error, or no item): keep what we knew. For our own account
	 * this is what keeps the ids of our other devices when we republish; for
	 * others, nothing known means no OMEMO device.
	 */
	if (xml)
		mend_account_devicelist_update(acc, jid, xml);
	g_free(xml);
	g_hash_table_replace(engine(acc)->fresh, g_strdup(jid),
	                     GSIZE_TO_POINTER((gsize)(g_get_monotonic_time() / G_USEC_PER_SEC)));
	/* devices we could not use before get another chance with a fresh list */
	if (mend_store_devicelist_get(acc->store, jid, &ids, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			mend_store_device_set_broken(acc->store, jid, ids[i], 0);
	g_free(ids);
	mend_announce_list_arrived(acc, jid); /* messages waiting for this list */
}

static xmpp_stanza_t *items_iq(mend_account *acc, const char *node)
{
	xmpp_stanza_t *iq = iq_new(acc, "get"), *items;

	items = add(add(iq, el(acc, "pubsub", NS_PUBSUB)), el(acc, "items", NULL));
	xmpp_stanza_set_attribute(items, "node", node);
	return iq;
}

static xmpp_stanza_t *items_of(xmpp_stanza_t *iq)
{
	return child(child(iq, "pubsub", NS_PUBSUB), "items", NULL);
}

/* Adds our own id to our stored device list (what we are about to publish). */
static void list_self(mend_account *acc)
{
	uint32_t *ids = NULL;
	size_t n = 0;

	size_t i;

	mend_store_devicelist_get(acc->store, acc->jid, &ids, &n);
	for (i = 0; i < n && ids[i] != acc->device_id; i++)
		;
	if (i == n) {
		ids = g_renew(uint32_t, ids, n + 1);
		ids[n++] = acc->device_id;
		mend_store_devicelist_set(acc->store, acc->jid, ids, n);
	}
	mend_store_device_version_add(acc->store, acc->jid, acc->device_id, MEND_VERSION_LEGACY);
	g_free(ids);
}

static void own_list_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	mend_engine *eng = engine(acc);

	/* an error (item-not-found, forbidden on Prosody) means: no list yet */
	devicelist_arrived(acc, acc->jid, ok ? items_of(iq) : NULL);
	eng->publishing = 2;
	publish_bundle(acc, bundle_published);
	/* XEP-0384 v0.3 §4.2: add ourselves, never dropping another device */
	if (ok && server_lists_us(acc, items_of(iq))) {
		published(acc, 1);
		return;
	}
	list_self(acc);
	publish_own_list(acc);
}

static void carbons_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	if (!ok)
		notice(acc, NULL,
		       _("The server did not enable Message Carbons; messages sent and received by "
		         "your other devices will not show here."));
}

static void enable_carbons(mend_account *acc)
{
	xmpp_stanza_t *iq = iq_new(acc, "set");

	add(iq, el(acc, "enable", NS_CARBONS));
	send_iq(acc, iq, NULL, carbons_reply, NULL, NULL);
}

int mend_account_connected(mend_account *acc, const char *full_jid, unsigned flags)
{
	mend_engine *eng;

	if (!full_jid || !g_str_has_prefix(full_jid, acc->jid) ||
	    (full_jid[strlen(acc->jid)] != '/' && full_jid[strlen(acc->jid)] != '\0'))
		return MEND_ERR_INVALID_ARG;
	mend_account_disconnected(acc);
	mend_account_rotate_signed_prekey(acc); /* before our bundle goes out */
	eng = engine(acc);
	eng->full_jid = g_strdup(full_jid);
	eng->flags = flags;
	eng->connected = 1;
	send_iq(acc, items_iq(acc, MEND_NODE_LEGACY_DEVICELIST), acc->jid, own_list_reply, NULL,
	        NULL);
	mend_omemo2_connected(acc);
	if (flags & MEND_CONNECT_CARBONS)
		enable_carbons(acc);
	if (flags & MEND_CONNECT_CATCHUP)
		mend_archive_catchup_start(acc);
	return MEND_OK;
}

void mend_account_disconnected(mend_account *acc)
{
	mend_engine *eng = engine(acc);

	mend_archive_reset(acc); /* an open catch-up page commits; its events go first */
	mend_announce_disconnected(acc);
	g_hash_table_remove_all(eng->iqs);
	g_hash_table_remove_all(eng->fresh);
	g_hash_table_remove_all(eng->refreshing);
	g_hash_table_remove_all(eng->subscribed);
	g_free(eng->full_jid);
	eng->full_jid = NULL;
	eng->connected = eng->ready = eng->publishing = eng->republishing = 0;
	eng->fetches = 0;
	acc->in_catchup = 0;
	mend_repair_disconnected(acc);
	mend_room_disconnected(acc);
}

int mend_account_busy(mend_account *acc)
{
	return g_hash_table_size(engine(acc)->iqs) > 0;
}

int mend_engine_connected(mend_account *acc)
{
	return engine(acc)->connected;
}

static void republished(mend_account *acc, int ok)
{
	engine(acc)->republishing = 0;
	check_bundle(acc, ok);
	if (ok)
		republish_bundle(acc);
}

/*
 * One republish at a time, of the bundle as it is when it leaves: prekeys
 * used while one is in flight go out together when it is answered, so the
 * server offers a used prekey for at most one round trip (XEP-0384 v0.3 §4.3).
 */
static void republish_bundle(mend_account *acc)
{
	mend_engine *eng = engine(acc);

	if (!eng->ready || eng->republishing || !acc->bundle_dirty || acc->in_catchup)
		return;
	eng->republishing = 1;
	publish_bundle(acc, republished);
}

/* Our bundle changed (prekeys replenished): 1 when we republish it (now or once READY). */
int mend_engine_bundle_changed(mend_account *acc)
{
	if (!engine(acc)->connected)
		return 0;
	republish_bundle(acc);
	return 1;
}

int mend_engine_can_send(mend_account *acc)
{
	mend_engine *eng = engine(acc);

	return eng->connected && eng->ready && !acc->mam && !acc->in_catchup;
}

void mend_engine_send(mend_account *acc, const char *xml)
{
	mend_omemo2_send_each(acc, xml);
}

int mend_engine_idle(mend_account *acc)
{
	mend_engine *eng = engine(acc);

	return eng->connected && eng->ready && !eng->fetches;
}

/* --- fetching device lists and bundles --------------------------------------- */

typedef struct fetch {
	char *jid;
	uint32_t device; /* 0: the device list */
} fetch;

static void fetch_free(gpointer p)
{
	fetch *f = p;

	g_free(f->jid);
	g_free(f);
}

static unsigned fetch_missing(mend_account *acc, const char *jid);

/* Continues refreshes: after the list come the bundles; done when nothing is missing. */
static unsigned continue_refreshes(mend_account *acc)
{
	GHashTableIter it;
	gpointer jid;
	unsigned started = 0, n;

	g_hash_table_iter_init(&it, engine(acc)->refreshing);
	while (g_hash_table_iter_next(&it, &jid, NULL)) {
		n = fetch_missing(acc, jid);
		if (!n)
			g_hash_table_iter_remove(&it);
		started += n;
	}
	return started;
}

static void fetch_done(mend_account *acc)
{
	mend_engine *eng = engine(acc);

	if (eng->fetches > 0 && --eng->fetches == 0 && !continue_refreshes(acc))
		pump_all(acc);
}

void mend_engine_fetch_started(mend_account *acc)
{
	engine(acc)->fetches++;
}

void mend_engine_fetch_done(mend_account *acc)
{
	fetch_done(acc);
}

static void probe_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	mend_delivery_probed(acc, ((fetch *)data)->jid, ok ? NULL : iq);
	fetch_done(acc);
}

/* XEP-0030: asks `jid` what it is, to tell an account without OMEMO from no account. */
static void probe_account(mend_account *acc, const char *jid)
{
	xmpp_stanza_t *iq = iq_new(acc, "get");
	fetch *f = g_new0(fetch, 1);

	add(iq, el(acc, "query", NS_DISCO_INFO));
	f->jid = g_strdup(jid);
	engine(acc)->fetches++;
	send_iq(acc, iq, jid, probe_reply, f, fetch_free);
}

static void list_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	fetch *f = data;

	devicelist_arrived(acc, f->jid, ok ? items_of(iq) : NULL);
	mend_delivery_list_failed(acc, f->jid, ok ? NULL : iq);
	if (!is_own_bare(acc, f->jid) && mend_delivery_wants_probe(acc, f->jid))
		probe_account(acc, f->jid);
	fetch_done(acc);
}

static void bundle_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	fetch *f = data;
	char *xml =
	    mend_stanza_text(child(child(items_of(iq), "item", NULL), "bundle", MEND_NS_LEGACY));
	int r = MEND_ERR_NOT_FOUND;

	if (ok && xml)
		r = mend_account_bundle_process(acc, f->jid, f->device, xml);
	if (r < 0) {
		/* skipped until its device list is fetched again */
		mend_log(acc, MEND_LOG_WARNING, "no usable bundle for %s device %u: %s", f->jid,
		         f->device, mend_strerror(r));
		mend_store_device_set_broken(acc->store, f->jid, f->device, 1);
	}
	g_free(xml);
	fetch_done(acc);
}

typedef struct bundle_wait {
	char *jid;
	uint32_t device;
	mend_bundle_cb cb;
} bundle_wait;

static void bundle_wait_free(gpointer p)
{
	bundle_wait *w = p;

	g_free(w->jid);
	g_free(w);
}

static void bundle_for_cb(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	bundle_wait *w = data;
	char *xml =
	    mend_stanza_text(child(child(items_of(iq), "item", NULL), "bundle", MEND_NS_LEGACY));

	w->cb(acc, w->jid, w->device, ok ? xml : NULL);
	g_free(xml);
}

void mend_engine_fetch_bundle(mend_account *acc, const char *jid, uint32_t device,
                              mend_bundle_cb cb)
{
	bundle_wait *w = g_new0(bundle_wait, 1);
	char node[sizeof(MEND_NODE_LEGACY_BUNDLES) + 12];

	w->jid = g_strdup(jid);
	w->device = device;
	w->cb = cb;
	g_snprintf(node, sizeof(node), "%s%u", MEND_NODE_LEGACY_BUNDLES, device);
	send_iq(acc, items_iq(acc, node), jid, bundle_for_cb, w, bundle_wait_free);
}

static void subscribe_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	xmpp_stanza_t *sub = child(child(iq, "pubsub", NS_PUBSUB), "subscription", NULL);
	const char *state = sub ? xmpp_stanza_get_attribute(sub, "subscription") : NULL;

	/* XEP-0060 §6.1.2: "subscribed" (a pending or refused one brings no pushes) */
	if (ok && (!state || g_str_equal(state, "subscribed")))
		g_hash_table_replace(engine(acc)->subscribed, g_strdup(data), GINT_TO_POINTER(1));
	else
		mend_log(acc, MEND_LOG_INFO,
		         "no subscription to %s's device list: refreshed by age",
		         (const char *)data);
}

/*
 * XEP-0060 §6.1.1: subscribes our bare JID to `jid`'s device-list node, once
 * per connection, for hosts whose caps cannot say +notify (XEP-0163 §4.3);
 * measured with Prosody 0.12: the pushes come, and the last item on subscribing.
 */
static void subscribe_list(mend_account *acc, const char *jid)
{
	mend_engine *eng = engine(acc);
	xmpp_stanza_t *iq, *sub;

	if (!(eng->flags & MEND_CONNECT_SUBSCRIBE) || is_own_bare(acc, jid) ||
	    g_hash_table_contains(eng->subscribed, jid))
		return;
	g_hash_table_insert(eng->subscribed, g_strdup(jid), GINT_TO_POINTER(0));
	iq = iq_new(acc, "set");
	sub = add(add(iq, el(acc, "pubsub", NS_PUBSUB)), el(acc, "subscribe", NULL));
	xmpp_stanza_set_attribute(sub, "node", MEND_NODE_LEGACY_DEVICELIST);
	xmpp_stanza_set_attribute(sub, "jid", acc->jid);
	send_iq(acc, iq, jid, subscribe_reply, g_strdup(jid), g_free);
	mend_omemo2_subscribe(acc, jid);
}

static void start_fetch(mend_account *acc, const char *jid, uint32_t device)
{
	fetch *f = g_new0(fetch, 1);
	char node[sizeof(MEND_NODE_LEGACY_BUNDLES) + 12];

	/* a device that gets OMEMO:2 and has no session of it yet: its OMEMO:2 bundle */
	if (device && mend_omemo2_missing_version(acc, jid, device) == MEND_VERSION_2) {
		g_free(f);
		mend_omemo2_fetch_bundle(acc, jid, device);
		return;
	}
	f->jid = g_strdup(jid);
	f->device = device;
	engine(acc)->fetches++;
	if (!device) {
		send_iq(acc, items_iq(acc, MEND_NODE_LEGACY_DEVICELIST), jid, list_reply, f,
		        fetch_free);
		mend_omemo2_fetch_list(acc, jid); /* its OMEMO:2 devices, beside */
		subscribe_list(acc, jid);
		return;
	}
	g_snprintf(node, sizeof(node), "%s%u", MEND_NODE_LEGACY_BUNDLES, device);
	send_iq(acc, items_iq(acc, node), jid, bundle_reply, f, fetch_free);
}

/*
 * Whether `jid`'s device list is known to be current. The first message to a
 * contact on a connection always waits for its list (a chat session starts
 * with a fresh list); after that, a list confirmed by our subscription
 * (MEND_CONNECT_SUBSCRIBE) stays current through its pushes, and any other is
 * fetched again before the next message when it is older than five minutes:
 * +notify pushes can be lost (a server that never asked our caps).
 */
#define LIST_MAX_AGE 300

static int is_fresh(mend_account *acc, const char *jid)
{
	mend_engine *eng = engine(acc);
	gpointer when = NULL;
	gsize now = (gsize)(g_get_monotonic_time() / G_USEC_PER_SEC);

	if (!g_hash_table_lookup_extended(eng->fresh, jid, NULL, &when))
		return 0;
	if (GPOINTER_TO_INT(g_hash_table_lookup(eng->subscribed, jid)))
		return 1;
	return now - GPOINTER_TO_SIZE(when) < LIST_MAX_AGE;
}

/* Starts what `jid` still needs (device list, then bundles); returns how many started. */
static unsigned fetch_missing(mend_account *acc, const char *jid)
{
	uint32_t *ids = NULL;
	size_t n = 0, i;

	if (!is_fresh(acc, jid)) {
		start_fetch(acc, jid, 0);
		return 1;
	}
	if (mend_account_devices_needing_bundle(acc, jid, &ids, &n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		start_fetch(acc, jid, ids[i]);
	g_free(ids);
	return (unsigned)n;
}

unsigned mend_engine_fetch_missing(mend_account *acc, const char *jid)
{
	return fetch_missing(acc, jid);
}

int mend_account_refresh_devices(mend_account *acc, const char *jid)
{
	mend_engine *eng = engine(acc);

	if (!jid || strchr(jid, '/'))
		return MEND_ERR_INVALID_ARG;
	if (!eng->connected)
		return MEND_ERR_NOT_FOUND;
	g_hash_table_remove(eng->fresh, jid);
	g_hash_table_add(eng->refreshing, g_strdup(jid));
	fetch_missing(acc, jid);
	return MEND_OK;
}

/* --- sending ------------------------------------------------------------------ */

char *iso_now(void)
{
	GDateTime *now = g_date_time_new_now_utc();
	char *s = g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");

	g_date_time_unref(now);
	return s;
}

static void remember_sent(mend_account *acc, const mend_pending *p)
{
	mend_history_item it = {0};
	char *ts = iso_now();

	it.key = g_strconcat("id:", p->msg_id, NULL);
	it.peer = bare(p->jid);
	it.from = acc->jid;
	it.device = acc->device_id;
	it.body = p->body;
	it.timestamp = ts;
	it.msg_id = p->msg_id;
	it.outgoing = 1;
	it.ts = g_get_real_time() / G_USEC_PER_SEC;
	mend_store_history_put(acc->store, &it);
	g_free(it.key);
	g_free(it.peer);
	g_free(ts);
}

void mend_engine_remember_sent(mend_account *acc, const mend_pending *p)
{
	remember_sent(acc, p);
}

static void send_failed(mend_account *acc, const mend_pending *p, int err)
{
	mend_event ev = {.kind = MEND_EVENT_SEND_FAILED,
	                 .peer = p->jid,
	                 .id = p->msg_id,
	                 .body = p->body,
	                 .error = err,
	                 .trust = -1};
	char *text;

	ev.error = err = mend_delivery_refine(acc, p->jid, err);
	ev.text = text = mend_account_send_error_text(acc, p->jid, err);
	mend_store_pending_delete(acc->store, p->row);
	emit(acc, &ev);
	g_free(text);
}

/* Addresses a stanza (each of one message's stanzas) to one resource (a full JID). */
static int readdress(mend_account *acc, char **stanza, const char *full)
{
	GPtrArray *parts = mend_omemo2_stanzas(*stanza);
	GString *out = g_string_new(NULL);
	xmpp_stanza_t *st;
	char *text;
	guint i;

	for (i = 0; i < parts->len; i++) {
		st = mend_stanza_parse(acc, parts->pdata[i]);
		if (st)
			xmpp_stanza_set_to(st, full);
		text = st ? mend_stanza_text(st) : NULL;
		if (st)
			xmpp_stanza_release(st);
		if (!text)
			break;
		g_string_append(out, text);
		g_free(text);
	}
	g_free(*stanza);
	*stanza = i == parts->len ? g_string_free(out, FALSE) : (g_string_free(out, TRUE), NULL);
	g_ptr_array_unref(parts);
	return *stanza ? MEND_OK : MEND_ERR_NOMEM;
}

/* Encrypts a pending message and keeps the stanza with it, in one transaction. */
static int encrypt_pending(mend_account *acc, mend_pending *p)
{
	int r = mend_store_begin(acc->store);

	if (r < 0)
		return r;
	char *to = bare(p->jid);

	r = mend_account_encrypt_opts(acc, to, p->body, p->msg_id, 0, &p->stanza);
	g_free(to);
	if (r == MEND_OK && strchr(p->jid, '/'))
		r = readdress(acc, &p->stanza, p->jid);
	if (r == MEND_OK)
		r = mend_store_pending_set_stanza(acc->store, p, p->stanza);
	if (r < 0) {
		mend_store_rollback(acc->store);
		g_free(p->stanza);
		p->stanza = NULL;
		return r;
	}
	return mend_store_commit(acc->store);
}

/* A recipient that showed a new identity key (an announcement, a repair) got the message
 * under its trusted key, which it may no longer have: say so, and how to accept the new one. */
static void changed_key_text(mend_account *acc, GString *s, const char *jid, uint32_t dev)
{
	char fp[65];

	if (!mend_repair_new_key(acc, jid, dev, fp))
		return;
	g_string_append_printf(s,
	                       _("%s%s device %u shows a new identity key and may not be able "
	                         "to read this message; if its owner confirms the new key: trust "
	                         "%s %u %s"),
	                       s->len ? " " : "", jid, dev, jid, dev, fp);
}

/*
 * DESIGN §7: which devices did not get the message and how to include them,
 * e.g. "bob@example.org device 123 (KEY CHANGED) did not get this message;
 * trust it to include it." NULL when every device got it.
 */
static char *skipped_text(mend_account *acc)
{
	GString *s;
	guint i;

	if (!acc->skipped || !acc->skipped->len)
		return NULL;
	s = g_string_new(NULL);
	for (i = 0; i < acc->skipped->len; i++) {
		const char *entry = g_ptr_array_index(acc->skipped, i);
		char **w = g_strsplit(entry + (*entry == '!'), " ", 2);
		uint32_t dev = (uint32_t)g_ascii_strtoull(w[1], NULL, 10);

		if (*entry == '!') {
			changed_key_text(acc, s, w[0], dev);
			g_strfreev(w);
			continue;
		}

		if (mend_device_is_stale(acc, w[0], dev))
			g_string_append_printf(
			    s,
			    _("%s%s device %s (inactive: nothing from it for %d days) did not get "
			      "this message; trust it again to include it."),
			    i ? " " : "", w[0], w[1], MEND_STALE_DAYS);
		else
			g_string_append_printf(
			    s,
			    _("%s%s device %s (%s) did not get this message; "
			      "verify its fingerprint and trust it to include it."),
			    i ? " " : "", w[0], w[1],
			    mend_trust_name(mend_trust_of(acc, w[0], dev)));
		g_strfreev(w);
	}
	return g_string_free(s, s->len == 0);
}

char *mend_engine_skipped_text(mend_account *acc)
{
	return skipped_text(acc);
}

static void report_skipped(mend_account *acc, const char *peer)
{
	char *text = skipped_text(acc);

	if (text)
		notice(acc, peer, text);
	g_free(text);
}

unsigned mend_engine_count_keys(mend_account *acc, const char *stanza, unsigned *n2)
{
	GPtrArray *parts = mend_omemo2_stanzas(stanza);
	xmpp_stanza_t *st, *c;
	unsigned n = 0;
	guint i;

	*n2 = 0;
	for (i = 0; i < parts->len; i++) {
		st = mend_stanza_parse(acc, parts->pdata[i]);
		c = child(child(st, "encrypted", MEND_NS_LEGACY), "header", NULL);
		for (c = c ? xmpp_stanza_get_children(c) : NULL; c; c = xmpp_stanza_get_next(c))
			n += xmpp_stanza_get_name(c) && g_str_equal(xmpp_stanza_get_name(c), "key");
		*n2 += mend_omemo2_count_keys(child(st, "encrypted", MEND_NS_OMEMO2));
		if (st)
			xmpp_stanza_release(st);
	}
	g_ptr_array_unref(parts);
	return n + *n2;
}

/* The host did not take the stanza: the message stays queued, and the user knows. */
static void held(mend_account *acc, const mend_pending *p)
{
	mend_event ev = {.kind = MEND_EVENT_NOTICE, .peer = p->jid, .id = p->msg_id, .trust = -1};
	char *text = g_strdup_printf(_("The message to %s could not be handed to the server; it "
	                               "stays queued and is sent once the connection is back."),
	                             p->jid);

	mend_log(acc, MEND_LOG_WARNING, "the host did not send message %s; kept queued", p->msg_id);
	ev.text = text;
	emit(acc, &ev);
	g_free(text);
}

void mend_engine_host_refused(mend_account *acc, const mend_pending *p)
{
	held(acc, p);
}

/* Sends one queued message; 0 when it is done with (sent or failed), <0 while it waits. */
static int send_pending(mend_account *acc, mend_pending *p)
{
	mend_event ev = {
	    .kind = MEND_EVENT_SENT, .peer = p->jid, .id = p->msg_id, .body = p->body, .trust = -1};
	char *skipped;
	int r = MEND_OK;

	/* a stanza encrypted before a crash is sent as it is: the ratchet dedupes it */
	if (!p->stanza)
		r = encrypt_pending(acc, p);
	if (r == MEND_ERR_NEED_BUNDLE)
		return r; /* a device appeared meanwhile: its bundle is being fetched */
	if (r < 0) {
		send_failed(acc, p, r);
		return MEND_OK;
	}
	/* it leaves the queue only once the host took it (its encrypted stanza stays with it) */
	if (mend_omemo2_send_each(acc, p->stanza) != 0) {
		held(acc, p);
		return MEND_ERR_PROTOCOL;
	}
	mend_store_kill_point(acc->store, "sent"); /* the crash test's */
	remember_sent(acc, p);
	mend_store_pending_delete(acc->store, p->row);
	ev.n_devices = mend_engine_count_keys(acc, p->stanza, &ev.n_devices2);
	ev.text = skipped = skipped_text(acc);
	emit(acc, &ev);
	g_free(skipped);
	return MEND_OK;
}

/* Sends what waits for `jid` once nothing it needs is being fetched. */
static void pump(mend_account *acc, const char *jid)
{
	GArray *list;
	guint i;

	char *b;

	if (!engine(acc)->ready || engine(acc)->fetches || mend_room_pump(acc, jid))
		return;
	b = bare(jid);
	if (fetch_missing(acc, b) > 0 ||
	    (!is_own_bare(acc, b) && fetch_missing(acc, acc->jid) > 0)) {
		g_free(b);
		return;
	}
	g_free(b);
	list = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	mend_store_pending_list(acc->store, jid, list);
	/* in order: once one waits, the later ones wait behind it */
	for (i = 0; i < list->len && send_pending(acc, &g_array_index(list, mend_pending, i)) == 0;
	     i++)
		;
	for (i = 0; i < list->len; i++)
		mend_pending_clear(&g_array_index(list, mend_pending, i));
	g_array_free(list, TRUE);
}

void mend_engine_pump(mend_account *acc, const char *jid)
{
	pump(acc, jid);
}

static void pump_all(mend_account *acc)
{
	GArray *list = g_array_new(FALSE, TRUE, sizeof(mend_pending));
	GHashTable *jids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GHashTableIter it;
	gpointer jid;
	guint i;

	mend_store_pending_list(acc->store, NULL, list);
	for (i = 0; i < list->len; i++) {
		mend_pending *p = &g_array_index(list, mend_pending, i);

		g_hash_table_add(jids, g_strdup(p->jid));
		mend_pending_clear(p);
	}
	g_array_free(list, TRUE);
	g_hash_table_iter_init(&it, jids);
	while (g_hash_table_iter_next(&it, &jid, NULL) && !engine(acc)->fetches)
		pump(acc, jid);
	g_hash_table_destroy(jids);
}

/* Queues `body` for `to` under the message id `msg_id` and sends what can be sent. */
static int queue_message(mend_account *acc, const char *to, const char *body, const char *msg_id)
{
	int r;

	/* a full JID addresses one resource; devices are those of its bare JID */
	if (!to || !*to || *to == '/' || !body || !g_utf8_validate(body, -1, NULL))
		return MEND_ERR_INVALID_ARG;
	r = mend_store_pending_add(acc->store, to, msg_id, body);
	if (r < 0)
		return r;
	pump(acc, to);
	return MEND_OK;
}

int mend_account_send(mend_account *acc, const char *to, const char *body, char **id)
{
	char *msg_id = g_uuid_string_random();
	int r = queue_message(acc, to, body, msg_id);

	if (id)
		*id = r == MEND_OK ? msg_id : NULL;
	if (!id || r != MEND_OK)
		g_free(msg_id);
	return r;
}

/* Whether `jid`'s devices (and ours) are all known on this connection, none waiting for a bundle.
 */
static int keys_at_hand(mend_account *acc, const char *jid)
{
	mend_engine *eng = engine(acc);
	uint32_t *ids = NULL;
	size_t n = 0, m = 0;

	if (!eng->ready || eng->fetches || !is_fresh(acc, jid) || !is_fresh(acc, acc->jid))
		return 0;
	mend_account_devices_needing_bundle(acc, jid, &ids, &n);
	g_free(ids);
	ids = NULL;
	mend_account_devices_needing_bundle(acc, acc->jid, &ids, &m);
	g_free(ids);
	return n + m == 0;
}

int mend_account_encrypt_or_queue(mend_account *acc, const char *to, const char *body,
                                  const char *id, char **stanza)
{
	mend_pending p = {0};
	char *b = bare(to), *own_id = NULL;
	int r;

	*stanza = NULL;
	if (!id)
		id = own_id = g_uuid_string_random();
	if (!b || !*b || !body || !g_utf8_validate(body, -1, NULL)) {
		r = MEND_ERR_INVALID_ARG;
		goto out;
	}
	if (!keys_at_hand(acc, b)) {
		r = queue_message(acc, to, body, id) == MEND_OK ? 1 : MEND_ERR_STORE;
		goto out;
	}
	r = mend_account_encrypt_opts(acc, b, body, id, 0, stanza);
	if (r == MEND_OK && strchr(to, '/'))
		r = readdress(acc, stanza, to);
	if (r == MEND_OK) /* one stanza per version: the host sends the last, after the others */
		r = mend_omemo2_send_all_but_last(acc, stanza);
	if (r == MEND_OK) {
		p.jid = (char *)to;
		p.body = (char *)body;
		p.msg_id = (char *)id;
		remember_sent(acc, &p);
		report_skipped(acc, b);
	}
	if (r == MEND_ERR_NEED_BUNDLE) /* a device appeared: fetch and send it later */
		r = queue_message(acc, to, body, id) == MEND_OK ? 1 : MEND_ERR_STORE;
	r = mend_delivery_refine(acc, b, r); /* no devices: or no such address? */
out:
	g_free(own_id);
	g_free(b);
	return r;
}

int mend_account_pending_count(mend_account *acc, size_t *n)
{
	return mend_store_pending_count(acc->store, n);
}

/* --- receiving ------------------------------------------------------------------ */

/* XEP-0203: the <delay/> stamp under `holder`, normalised to UTC; NULL if none or bad. */
/*
 * The form servers stamp <delay/> in (XEP-0082 DateTime in UTC): "YYYY-MM-DDThh:mm:ss",
 * up to six digits of a second, "Z". Its fields into f (year, month, day, hour, minute,
 * second) and 1 when s is exactly that with a valid date and time; else 0, and GLib's
 * ISO 8601 parser decides (offsets, other precisions, leap seconds, nonsense). Read for
 * every message of a catch-up, where GLib's parse and format were 2% of the time.
 */
static int utc_fields(const char *s, int f[6])
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	static const int at[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};
	static const int max[6] = {9999, 12, 31, 23, 59, 59};
	size_t i;
	int k, j;

	for (i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? !g_ascii_isdigit(s[i]) : s[i] != shape[i])
			return 0;
	if (s[i] == '.') { /* up to microseconds, which GLib keeps exactly: the second stays */
		for (k = 0, i++; k < 7 && g_ascii_isdigit(s[i]); k++)
			i++;
		if (k == 0 || k > 6)
			return 0;
	}
	if (s[i] != 'Z' || s[i + 1] != '\0')
		return 0;
	for (k = 0; k < 6; k++) {
		for (f[k] = 0, j = 0; j < len[k]; j++)
			f[k] = f[k] * 10 + (s[at[k] + j] - '0');
		if (f[k] > max[k])
			return 0;
	}
	/* years below 1000 print with fewer digits in GLib's %Y: left to GLib */
	return f[0] >= 1000 && f[1] >= 1 && f[2] >= 1 &&
	       f[2] <= g_date_get_days_in_month((GDateMonth)f[1], (GDateYear)f[0]);
}

char *mend_iso_utc(const char *stamp)
{
	GDateTime *dt, *utc;
	char *out;
	int f[6];

	if (!stamp)
		return NULL;
	if (utc_fields(stamp, f)) {
		out = g_malloc(21);
		memcpy(out, stamp, 19);
		memcpy(out + 19, "Z", 2);
		return out;
	}
	dt = g_date_time_new_from_iso8601(stamp, NULL);
	if (!dt)
		return NULL;
	utc = g_date_time_to_utc(dt);
	out = g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(utc);
	g_date_time_unref(dt);
	return out;
}

char *delay_of(xmpp_stanza_t *holder)
{
	xmpp_stanza_t *d = child(holder, "delay", NS_DELAY);

	return mend_iso_utc(d ? xmpp_stanza_get_attribute(d, "stamp") : NULL);
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400; /* y >= 999 here: no negative years */
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t unix_of(const char *iso)
{
	GDateTime *dt;
	int64_t t;
	int f[6];

	if (iso && utc_fields(iso, f))
		return days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 + f[5];
	dt = iso ? g_date_time_new_from_iso8601(iso, NULL) : NULL;
	t = dt ? g_date_time_to_unix(dt) : g_get_real_time() / G_USEC_PER_SEC;
	if (dt)
		g_date_time_unref(dt);
	return t;
}

/* XEP-0359 origin-id, else the message's id attribute. */
static const char *msg_id_of(xmpp_stanza_t *msg)
{
	xmpp_stanza_t *o = child(msg, "origin-id", NS_SID);
	const char *id = o ? xmpp_stanza_get_attribute(o, "id") : NULL;

	return id ? id : xmpp_stanza_get_id(msg);
}

static void emit_undecryptable(mend_account *acc, const mend_history_item *it, int archived,
                               int asked, const inbound *in);

/* `in` (may be NULL): what came with the message, for a room's name and the sender's nick. */
static void emit_item(mend_account *acc, const mend_history_item *it, int archived,
                      const inbound *in)
{
	mend_event ev = {.kind = MEND_EVENT_MESSAGE,
	                 .room = in ? in->room : NULL,
	                 .nick = in ? in->nick : NULL,
	                 .peer = it->peer,
	                 .from = it->from,
	                 .device = it->device,
	                 .body = it->body,
	                 .timestamp = it->timestamp,
	                 .stanza_id = it->stanza_id,
	                 .id = it->msg_id,
	                 .carbon = it->carbon,
	                 .archived = archived,
	                 .outgoing = it->outgoing,
	                 .version = it->version,
	                 .downgraded = it->downgraded};

	if (it->error) {
		emit_undecryptable(acc, it, archived, 0, in);
		return;
	}
	ev.trust = it->outgoing && it->device == acc->device_id
	               ? MEND_TRUST_VERIFIED
	               : mend_trust_of(acc, it->from, it->device);
	emit(acc, &ev);
}

/* The conversation of a message: the sender, or for our own messages the recipient. */
static char *peer_of(mend_account *acc, xmpp_stanza_t *msg, const char *from)
{
	if (is_own_bare(acc, from) && xmpp_stanza_get_to(msg))
		return bare(xmpp_stanza_get_to(msg));
	return g_strdup(from);
}

/* The conversation of an inbound message: its room, else as peer_of(). */
static char *conversation_of(mend_account *acc, const inbound *in, const char *from)
{
	return in->room ? g_strdup(in->room) : peer_of(acc, in->msg, from);
}

/* The local history key of a message by its stanza-id: a room's ids are the room's (g_free). */
static char *history_key(const inbound *in, const char *sid)
{
	if (!sid)
		return NULL;
	return in->room ? g_strconcat("room|", in->room, "|", sid, NULL) : g_strdup(sid);
}

/* Fills a history item for a decrypted message (strings borrowed; peer and key g_malloc'd). */
static void item_of(mend_account *acc, const inbound *in, const mend_message *m,
                    mend_history_item *it)
{
	it->peer = conversation_of(acc, in, m->from);
	it->from = m->from;
	it->device = m->device;
	it->body = m->body;
	it->timestamp = in->timestamp;
	it->stanza_id = m->stanza_id;
	it->msg_id = (char *)msg_id_of(in->msg);
	it->carbon = in->carbon;
	it->outgoing = is_own_bare(acc, m->from);
	it->ts = unix_of(in->timestamp);
	it->key = history_key(in, m->stanza_id);
	if (!it->key)
		it->key = g_uuid_string_random();
	it->version = m->version;
	it->downgraded = m->downgraded;
}

/* Last seen, to the minute: written at most once a minute per device (a catch-up is hot). */
static int touch_device(mend_account *acc, const char *jid, uint32_t device)
{
	mend_engine *eng = engine(acc);
	gint64 now = mend_now(acc);
	char buf[128], *key = buf;
	gpointer last;
	int r = MEND_OK, due;

	/* the key on the stack for the usual lookup; allocated when it is kept or long */
	if (g_snprintf(buf, sizeof(buf), "%u/%s", device, jid) >= (int)sizeof(buf))
		key = g_strdup_printf("%u/%s", device, jid);
	last = g_hash_table_lookup(eng->touched, key);
	due = !last || now - (gint64)GPOINTER_TO_SIZE(last) >= 60;
	if (due)
		r = mend_store_device_touch(acc->store, jid, device, now);
	if (due && r == MEND_OK)
		g_hash_table_replace(eng->touched, key == buf ? g_strdup(buf) : key,
		                     GSIZE_TO_POINTER((gsize)now));
	else if (key != buf)
		g_free(key);
	return r;
}

/*
 * Decrypts and keeps the message in local history in ONE transaction: the
 * ratchet step, the seen stanza-id and the history row commit together, so a
 * crash or a failed write can never leave a message marked seen but unkept
 * (it would be lost: the ratchet cannot decrypt it twice).
 */
static int decrypt_and_keep(mend_account *acc, const inbound *in, mend_message *m,
                            mend_history_item *it)
{
	int r = mend_store_begin(acc->store);

	if (r < 0)
		return r;
	/* its history row, keyed by the stanza-id (history_key), marks it seen */
	acc->history_marks = !in->room;
	r = mend_account_decrypt_stanza(acc, in->msg, in->archive_id, m);
	acc->history_marks = 0;
	/* DESIGN §4a: key-only messages are protocol, never history */
	if (r == MEND_OK && !m->key_only) {
		item_of(acc, in, m, it);
		r = mend_store_history_put(acc->store, it);
	}
	/* noted until the host has it (shown.c): a crash before that shows it again */
	if (r == MEND_OK && !m->key_only && !in->history && !in->room && m->stanza_id)
		r = mend_shown_note(acc, it->key);
	if (r == MEND_OK)
		r = touch_device(acc, m->from, m->device);
	mend_store_kill_point(acc->store, "received"); /* the crash test's */
	if (r < 0)
		mend_store_rollback(acc->store);
	else
		r = mend_store_commit(acc->store);
	mend_trust_flush(acc); /* a changed identity key seen while decrypting */
	return mend_held_keep(acc, in->msg, m->stanza_id, in->timestamp, in->carbon, in->archived,
	                      r);
}

void mend_engine_show_kept(mend_account *acc, const mend_history_item *it)
{
	emit_item(acc, it, 1, NULL);
}

/* A copy of our own message (archive, carbon reflection): shown from local history. */
static void own_message(mend_account *acc, const inbound *in, const char *from)
{
	mend_history_item it = {0};
	char *peer = conversation_of(acc, in, from);
	const char *id = msg_id_of(in->msg);

	if (in->history && id && mend_store_history_by_msg_id(acc->store, peer, id, &it) == 0) {
		emit_item(acc, &it, 1, in);
		mend_history_clear(&it);
	}
	g_free(peer);
}

/* asked: the sender's device was asked to start a new session (repair.c). */
static void emit_undecryptable(mend_account *acc, const mend_history_item *it, int archived,
                               int asked, const inbound *in)
{
	mend_event ev = {.kind = MEND_EVENT_UNDECRYPTABLE,
	                 .room = in ? in->room : NULL,
	                 .nick = in ? in->nick : NULL,
	                 .peer = it->peer,
	                 .from = it->from,
	                 .device = it->device,
	                 .timestamp = it->timestamp,
	                 .stanza_id = it->stanza_id,
	                 .id = it->msg_id,
	                 .error = it->error,
	                 .archived = archived,
	                 .carbon = it->carbon,
	                 .trust = -1,
	                 .version = it->version};
	char *text;

	if (it->error == MEND_ERR_KEY_CHANGED) /* held until the user accepts the key */
		text = mend_held_text(acc, it->from, it->device);
	else if (it->error == MEND_ERR_FORGED && acc->omemo2_why) /* XEP-0420 §4 */
		text = g_strdup_printf(_("A message from %s (device %u) was refused: %s (SCE affix "
		                         "mismatch)."),
		                       it->from, it->device, _(acc->omemo2_why));
	else if (it->error == MEND_ERR_NOT_FOR_THIS_DEVICE)
		text = g_strdup_printf(_("A message from %s was not encrypted for this device "
		                         "(device %u); read it on another device."),
		                       it->from, acc->device_id);
	else if (asked)
		text = g_strdup_printf(_("A message from %s could not be decrypted: %s Its device "
		                         "%u was asked to start a new session; ask %s to send it "
		                         "again."),
		                       it->from, mend_strerror(it->error), it->device, it->from);
	else
		text = g_strdup_printf(_("A message from %s could not be decrypted: %s"), it->from,
		                       mend_strerror(it->error));
	ev.text = text;
	emit(acc, &ev);
	g_free(text);
}

/*
 * Said once: the stanza-id is marked, so the live and archived copies don't
 * repeat it; local history keeps the failure, so history shows it each time.
 */
static void undecryptable(mend_account *acc, const inbound *in, const mend_message *m, int r)
{
	mend_history_item it = {0};
	int asked;

	it.peer = conversation_of(acc, in, m->from);
	it.from = m->from;
	it.device = m->device;
	it.timestamp = in->timestamp;
	it.stanza_id = m->stanza_id;
	it.msg_id = (char *)msg_id_of(in->msg);
	it.carbon = in->carbon;
	it.outgoing = is_own_bare(acc, m->from);
	it.error = r;
	it.ts = unix_of(in->timestamp);
	it.version = m->version;
	asked = mend_repair_failed(acc, m->from, m->device, r, in->archived);
	/* a failure of ours (disk, memory) is not the message's: it may come again; a held
	 * message (held.c) is kept apart and shown once its key is accepted */
	if (m->stanza_id && m->from && r != MEND_ERR_STORE && r != MEND_ERR_NOMEM &&
	    r != MEND_ERR_KEY_CHANGED) {
		it.key = history_key(in, m->stanza_id);
		mend_store_stanza_mark(acc->store, in->room ? in->room : acc->jid, m->stanza_id);
		mend_store_history_put(acc->store, &it);
	}
	if (!mend_archive_quiet(acc, r, it.ts) && !mend_room_quiet(acc, in->room, r))
		emit_undecryptable(acc, &it, in->archived, asked, in);
	g_free(it.peer);
	g_free(it.key);
}

/*
 * DESIGN §4a: a key-only message that fails is nobody's conversation: no error, no history.
 * A broken session is still repaired; a new identity key it proves (an announcement after
 * an identity reset, held.c keeps it as a candidate) is said once, with what to do.
 */
static void key_only_failed(mend_account *acc, const inbound *in, const mend_message *m, int r)
{
	char fp[65], *grouped, *text;

	if (r != MEND_ERR_KEY_CHANGED) {
		mend_repair_failed(acc, m->from, m->device, r, in->archived);
		return;
	}
	if (!mend_repair_new_key(acc, m->from, m->device, fp) ||
	    !mend_repair_first_news(acc, m->from, m->device))
		return;
	grouped = mend_fingerprint_grouped(fp);
	text = g_strdup_printf(_("Device %u of %s announced a new identity key: %s. Nothing is "
	                         "encrypted to it until you accept that key; if its owner "
	                         "confirms it: trust %s %u %s"),
	                       m->device, m->from, grouped, m->from, m->device, fp);
	notice(acc, m->from, text);
	g_free(text);
	g_free(grouped);
}

/* Serves a message seen before from local history (history queries only). */
static int from_local(mend_account *acc, const inbound *in, const char *key)
{
	mend_history_item it = {0};
	char *k = history_key(in, key);
	int found = in->history && k && mend_store_history_get(acc->store, k, &it) == MEND_OK;

	g_free(k);
	if (!found)
		return 0;
	emit_item(acc, &it, 1, in);
	/* its stanza of the other OMEMO version, next in the archive, is no news either */
	mend_omemo2_twin_note(acc, it.from, msg_id_of(in->msg));
	mend_history_clear(&it);
	return 1;
}

/* An archived chat message without OMEMO (history queries): a MESSAGE with plaintext = 1. */
static void plaintext_item(mend_account *acc, const inbound *in)
{
	const char *from = xmpp_stanza_get_from(in->msg), *type = xmpp_stanza_get_type(in->msg);
	xmpp_stanza_t *b = child(in->msg, "body", NULL);
	char *body = b ? xmpp_stanza_get_text(b) : NULL, *sender = from ? bare(from) : NULL;
	char *peer = sender ? conversation_of(acc, in, sender) : NULL;
	mend_event ev = {.kind = MEND_EVENT_MESSAGE,
	                 .room = in->room,
	                 .nick = in->nick,
	                 .peer = peer,
	                 .from = sender,
	                 .body = body,
	                 .timestamp = in->timestamp,
	                 .stanza_id = in->archive_id,
	                 .id = msg_id_of(in->msg),
	                 .archived = 1,
	                 .outgoing = sender && is_own_bare(acc, sender),
	                 .trust = -1,
	                 .announced = 1,
	                 .plaintext = 1};

	if (body && sender && (!type || strcmp(type, "error") != 0))
		emit(acc, &ev);
	if (body)
		xmpp_free(xmpp_stanza_get_context(in->msg), body);
	g_free(sender);
	g_free(peer);
}

int process_encrypted(mend_account *acc, const inbound *in)
{
	mend_history_item it = {0};
	mend_message m = {0};
	int r;

	if (from_local(acc, in, in->archive_id))
		return 1;
	r = decrypt_and_keep(acc, in, &m, &it);
	if (r == MEND_OK)
		mend_store_kill_point(acc->store, "kept"); /* the crash test's */
	if (r == MEND_OK)
		mend_omemo2_twin_note(acc, m.from, msg_id_of(in->msg));
	if (r == MEND_OK && !m.key_only)
		emit_item(acc, &it, in->archived, in);
	if (r == MEND_OK && !m.key_only && m.downgraded)
		mend_omemo2_fell_back(acc, m.from, m.device, in->room);
	if (r == MEND_OK && !m.key_only && m.written)
		mend_omemo2_check_time(acc, m.from, m.device, m.written, unix_of(in->timestamp));
	if (r == MEND_OK)
		mend_repair_received(acc, m.from, m.device, m.prekey, in->history);
	else if (r == MEND_ERR_DUPLICATE ||
	         (r == MEND_ERR_STALE_SESSION &&
	          (in->archived || mend_omemo2_twin_seen(acc, m.from, msg_id_of(in->msg)))))
		from_local(acc, in, m.stanza_id); /* a copy of a message read on this connection */
	else if (m.key_only)
		key_only_failed(acc, in, &m, r);
	else if (r == MEND_ERR_NOT_FOR_THIS_DEVICE && is_own_bare(acc, m.from) &&
	         m.device == acc->device_id)
		own_message(acc, in, m.from);
	else if (r == MEND_ERR_NOT_FOR_THIS_DEVICE &&
	         mend_omemo2_twin_seen(acc, m.from, msg_id_of(in->msg)))
		; /* its stanza of the other OMEMO version came first, with our key */
	else if (r != MEND_ERR_NOT_FOUND)
		undecryptable(acc, in, &m, r);
	else if (in->history) /* the archive holds it unencrypted: shown, marked so */
		plaintext_item(acc, in);
	/* XEP-0184 §5.5: a receipt when first received (live, offline, catch-up), not in history */
	if (!in->history && in->carbon == MEND_CARBON_NONE && !in->room &&
	    !is_own_bare(acc, m.from))
		mend_delivery_answer(acc, in->msg, r, &m);
	g_free(it.peer);
	g_free(it.key);
	mend_message_clear(&m);
	return r == MEND_ERR_NOT_FOUND ? 0 : 1;
}

int mend_engine_process_held(mend_account *acc, xmpp_stanza_t *msg, const char *stanza_id,
                             const char *timestamp, int carbon, int archived)
{
	inbound in = {.msg = msg, .archive_id = stanza_id, .carbon = carbon, .archived = archived};
	int r;

	in.timestamp = timestamp ? g_strdup(timestamp) : iso_now();
	r = process_encrypted(acc, &in);
	g_free(in.timestamp);
	return r;
}

static int handle_direct(mend_account *acc, xmpp_stanza_t *st)
{
	inbound in = {.msg = st};
	int r;

	/* offline messages carry their original time (XEP-0203) */
	in.timestamp = delay_of(st);
	if (!in.timestamp)
		in.timestamp = iso_now();
	r = process_encrypted(acc, &in);
	g_free(in.timestamp);
	return r;
}

/* XEP-0280 §11: a carbon counts only when our own account (bare JID) sent it. */
static int handle_carbon(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *wrap,
                         mend_carbon kind)
{
	xmpp_stanza_t *fwd = child(wrap, "forwarded", NS_FORWARD);
	inbound in = {.msg = child(fwd, "message", NULL), .carbon = kind};
	const char *from = xmpp_stanza_get_from(st);
	int r;

	if (!is_own_bare(acc, from)) {
		mend_log(acc, MEND_LOG_WARNING, "forged carbon from %s rejected",
		         from ? from : "?");
		return MEND_ERR_FORGED;
	}
	if (!in.msg)
		return MEND_ERR_MALFORMED;
	in.timestamp = delay_of(fwd);
	if (!in.timestamp)
		in.timestamp = iso_now();
	r = process_encrypted(acc, &in);
	g_free(in.timestamp);
	return r;
}

/* --- PEP notifications (XEP-0163 §4.3) ---------------------------------------- */

static void devicelist_event(mend_account *acc, const char *jid)
{
	mend_event ev = {.kind = MEND_EVENT_DEVICELIST, .peer = jid, .trust = -1};
	uint32_t *ids = NULL;
	size_t n = 0;

	mend_store_devicelist_get(acc->store, jid, &ids, &n);
	ev.n_devices = (unsigned)n;
	g_free(ids);
	emit(acc, &ev);
}

/* A contact we talk to gained a device: its bundle is fetched now, so it is announced at once. */
static void fetch_new_devices(mend_account *acc, const char *jid)
{
	mend_engine *eng = engine(acc);

	if (!eng->connected || !mend_devices_news_pending(acc, jid))
		return;
	g_hash_table_add(eng->refreshing, g_strdup(jid));
	if (!fetch_missing(acc, jid))
		g_hash_table_remove(eng->refreshing, jid);
}

void mend_engine_prefetch(mend_account *acc, const char *jid)
{
	mend_engine *eng = engine(acc);

	if (!eng->connected || !eng->ready)
		return;
	g_hash_table_add(eng->refreshing, g_strdup(jid));
	if (!fetch_missing(acc, jid))
		g_hash_table_remove(eng->refreshing, jid);
}

static int handle_pep_event(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *event)
{
	xmpp_stanza_t *items = child(event, "items", NULL);
	const char *node = items ? xmpp_stanza_get_attribute(items, "node") : NULL;
	const char *from = xmpp_stanza_get_from(st);

	if (node && g_str_equal(node, MEND_NODE_OMEMO2_DEVICES))
		return mend_omemo2_list_event(acc, st, items);
	if (!node || !g_str_equal(node, MEND_NODE_LEGACY_DEVICELIST))
		return 0;
	if (!from || strchr(from, '/')) {
		mend_log(acc, MEND_LOG_WARNING, "device list event from %s ignored",
		         from ? from : "?");
		return 1;
	}
	devicelist_arrived(acc, from, items);
	devicelist_event(acc, from);
	fetch_new_devices(acc, from);
	if (is_own_bare(acc, from) && engine(acc)->ready && !server_lists_us(acc, items)) {
		list_self(acc);
		publish_own_list(acc);
	}
	return 1;
}

/* --- disco#info and ping, for hosts that answer neither (XEP-0030, XEP-0199) ---- */

#define CAPS_NODE "urn:mend:client"

/* What we are and do, sorted as XEP-0115 §5.1 wants for the hash. */
static const char *const features[] = {
    MEND_NODE_LEGACY_DEVICELIST "+notify",
    NS_DISCO_INFO,
    "urn:xmpp:eme:0",
    MEND_NODE_OMEMO2_DEVICES "+notify", /* XEP-0384 0.9 §5.3.1 */
    "urn:xmpp:ping",
    "urn:xmpp:receipts", /* XEP-0184 §6 */
};

/* XEP-0115 §5.1: base64(SHA-1("category/type/lang/name<" + each feature + "<")). */
static char *caps_ver(void)
{
	GChecksum *sha = g_checksum_new(G_CHECKSUM_SHA1);
	guint8 digest[20];
	gsize len = sizeof(digest);
	size_t i;

	g_checksum_update(sha, (const guchar *)"client/bot//mend<", -1);
	for (i = 0; i < G_N_ELEMENTS(features); i++) {
		g_checksum_update(sha, (const guchar *)features[i], -1);
		g_checksum_update(sha, (const guchar *)"<", 1);
	}
	g_checksum_get_digest(sha, digest, &len);
	g_checksum_free(sha);
	return g_base64_encode(digest, len);
}

int mend_account_caps_xml(mend_account *acc, char **xml)
{
	xmpp_stanza_t *c = el(acc, "c", "http://jabber.org/protocol/caps");
	char *ver = caps_ver();

	xmpp_stanza_set_attribute(c, "hash", "sha-1");
	xmpp_stanza_set_attribute(c, "node", CAPS_NODE);
	xmpp_stanza_set_attribute(c, "ver", ver);
	*xml = mend_stanza_text(c);
	xmpp_stanza_release(c);
	g_free(ver);
	return *xml ? MEND_OK : MEND_ERR_NOMEM;
}

static void add_disco_info(mend_account *acc, xmpp_stanza_t *reply, xmpp_stanza_t *q)
{
	xmpp_stanza_t *rq = add(reply, el(acc, "query", NS_DISCO_INFO)), *id;
	size_t i;

	if (xmpp_stanza_get_attribute(q, "node"))
		xmpp_stanza_set_attribute(rq, "node", xmpp_stanza_get_attribute(q, "node"));
	id = add(rq, el(acc, "identity", NULL));
	xmpp_stanza_set_attribute(id, "category", "client");
	xmpp_stanza_set_attribute(id, "type", "bot");
	xmpp_stanza_set_attribute(id, "name", "mend");
	for (i = 0; i < G_N_ELEMENTS(features); i++)
		xmpp_stanza_set_attribute(add(rq, el(acc, "feature", NULL)), "var", features[i]);
}

/*
 * The result to an <iq type='get'/> (RFC 6120 §8.2.3), back to its sender; a request from our
 * own server may come without a from (§8.1.2.1), then the result has no to (xmpp_stanza_reply
 * gives NULL there). NULL for a request without an id, which cannot be answered.
 */
static xmpp_stanza_t *iq_result_for(mend_account *acc, xmpp_stanza_t *st)
{
	const char *id = xmpp_stanza_get_id(st), *from = xmpp_stanza_get_from(st);
	xmpp_stanza_t *reply;

	if (!id)
		return NULL;
	reply = xmpp_iq_new(acc->xctx, "result", id);
	if (reply && from && xmpp_stanza_set_to(reply, from) != XMPP_EOK) {
		xmpp_stanza_release(reply);
		reply = NULL;
	}
	return reply;
}

static int answer_get(mend_account *acc, xmpp_stanza_t *st)
{
	xmpp_stanza_t *q = child(st, "query", NS_DISCO_INFO), *reply;

	if (!(engine(acc)->flags & MEND_CONNECT_DISCO) ||
	    (!q && !child(st, "ping", "urn:xmpp:ping")))
		return 0;
	reply = iq_result_for(acc, st);
	if (!reply) {
		mend_log(acc, MEND_LOG_WARNING, "a request without an id was not answered");
		return MEND_ERR_MALFORMED;
	}
	if (q)
		add_disco_info(acc, reply, q);
	send_text(acc, reply);
	xmpp_stanza_release(reply);
	return 1;
}

/* --- the entry point ------------------------------------------------------------- */

static int handle_message(mend_account *acc, xmpp_stanza_t *st)
{
	xmpp_stanza_t *c;
	int r;

	if ((c = child(st, "event", NS_PUBSUB_EVENT)))
		return handle_pep_event(acc, st, c);
	if ((c = child(st, "received", NS_CARBONS)))
		return handle_carbon(acc, st, c, MEND_CARBON_RECEIVED);
	if ((c = child(st, "sent", NS_CARBONS)))
		return handle_carbon(acc, st, c, MEND_CARBON_SENT);
	if ((c = child(st, "result", NS_MAM)) && mend_room_archive_result(acc, st, c, &r))
		return r;
	if (c)
		return mend_archive_handle_result(acc, st, c);
	if ((c = child(st, "received", NS_RECEIPTS)))
		return mend_delivery_receipt(acc, st, c);
	if (mend_room_is_from_room(acc, st))
		return mend_room_message(acc, st);
	if (child(st, "encrypted", MEND_NS_LEGACY) || mend_omemo2_is_encrypted(st))
		return handle_direct(acc, st);
	return 0;
}

int mend_account_handle_stanza(mend_account *acc, const char *xml)
{
	xmpp_stanza_t *st = mend_stanza_parse(acc, xml);
	const char *name, *type;
	int r = 0;

	if (!st) {
		mend_log(acc, MEND_LOG_WARNING, "a stanza that is not XML was ignored");
		return MEND_ERR_MALFORMED;
	}
	name = xmpp_stanza_get_name(st);
	type = xmpp_stanza_get_type(st);
	if (name && g_str_equal(name, "iq") && type &&
	    (g_str_equal(type, "result") || g_str_equal(type, "error")))
		r = handle_iq_reply(acc, st, type);
	else if (name && g_str_equal(name, "iq") && type && g_str_equal(type, "get"))
		r = answer_get(acc, st);
	else if (name && g_str_equal(name, "message") && type && g_str_equal(type, "error"))
		r = mend_delivery_bounced(acc, st);
	else if (name && g_str_equal(name, "message") && (!type || !g_str_equal(type, "groupchat")))
		r = handle_message(acc, st);
	else if (name && g_str_equal(name, "message"))
		r = mend_room_message(acc, st);
	else if (name && g_str_equal(name, "presence"))
		r = mend_room_presence(acc, st);
	xmpp_stanza_release(st);
	mend_archive_poll(acc);
	mend_room_poll(acc);
	mend_file_jobs_poll(acc);
	return r;
}

void mend_account_tick(mend_account *acc)
{
	int64_t now = mend_now(acc);

	mend_archive_tick(acc);
	mend_room_poll(acc);
	mend_file_jobs_poll(acc);
	if (now - acc->spk_checked >= 3600) {
		acc->spk_checked = now;
		mend_account_rotate_signed_prekey(acc);
	}
}

/* --- devices and trust --------------------------------------------------------- */

static void fill_info(mend_account *acc, const char *jid, mend_device_info *d)
{
	uint8_t *key = NULL;
	size_t len = 0;
	GPtrArray *news;

	d->trust = -1;
	mend_omemo2_device_info(acc, jid, d);
	if (is_own_bare(acc, jid) && d->id == acc->device_id) {
		mend_account_fingerprint(acc, d->fingerprint);
		d->trust = MEND_TRUST_VERIFIED;
		return;
	}
	if (mend_store_peer_identity_get(acc->store, jid, d->id, &key, &len, &d->trust) < 0) {
		d->trust = -1;
		return;
	}
	mend_key_fingerprint(key, len, d->fingerprint);
	g_free(key);
	/* the keys it showed besides this one: the first is the one the user reviews */
	news = mend_trust_candidates(acc, jid, d->id);
	d->n_new_keys = news->len;
	if (news->len)
		mend_key_fingerprint(g_bytes_get_data(news->pdata[0], &len),
		                     g_bytes_get_size(news->pdata[0]), d->new_fingerprint);
	g_ptr_array_unref(news);
	d->has_session = mend_store_session_exists(acc->store, jid, d->id) == 1 ||
	                 mend_store_session_exists_v(acc->store, jid, d->id, MEND_VERSION_2) == 1;
}

int mend_account_device_infos(mend_account *acc, const char *jid, mend_device_info **out, size_t *n)
{
	uint32_t *ids = NULL;
	int *active = NULL;
	int64_t *seen = NULL;
	size_t i;
	int r;

	*out = NULL;
	*n = 0;
	if (!jid || strchr(jid, '/'))
		return MEND_ERR_INVALID_ARG;
	r = mend_store_devices_known(acc->store, jid, &ids, &active, &seen, n);
	if (r < 0)
		return r;
	*out = g_new0(mend_device_info, *n ? *n : 1);
	for (i = 0; i < *n; i++) {
		(*out)[i].id = ids[i];
		(*out)[i].active = active[i];
		(*out)[i].last_seen = seen[i];
		(*out)[i].stale = active[i] && mend_device_is_stale(acc, jid, ids[i]);
		fill_info(acc, jid, &(*out)[i]);
	}
	g_free(ids);
	g_free(active);
	g_free(seen);
	return MEND_OK;
}
