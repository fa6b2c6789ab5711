/*
 * omemo2_pubsub.c - the OMEMO:2 nodes (XEP-0384 0.9 §5.3) beside the legacy
 * ones: our device in urn:xmpp:omemo:2:devices (item "current", §5.3.1) and
 * our bundle in urn:xmpp:omemo:2:bundles (item = our device id, max_items =
 * max, §5.3.2), both with access_model open and the engine's fallback
 * (configure the node, publish plainly); contacts' OMEMO:2 device lists,
 * fetched beside their legacy lists, pushed (+notify) or subscribed to.
 * With libsignal-protocol-c (no OMEMO:2 sessions) nothing here runs.
 */
#include "config.h"

#include <string.h>
#include "engine.h"
#include "session2.h"
#include "omemo2_account.h"
#include "omemo2_engine.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
/* Published without labelsig (XEP-0384 0.9 §5.3.1): python-twomemo 1.0.3 validates lists
 * against the 0.8 schema and refuses a whole list with the attribute (xep/README.md). */
#define DEVICE_LABEL "mend"

static xmpp_stanza_t *items_iq(mend_account *acc, const char *node)
{
	xmpp_stanza_t *iq = iq_new(acc, "get"), *items;

	items = add(add(iq, el(acc, "pubsub", NS_PUBSUB)), el(acc, "items", NULL));
	xmpp_stanza_set_attribute(items, "node", node);
	return iq;
}

/* The <devices/> of the first item of a pubsub <items/> (a reply's or an event's). */
static xmpp_stanza_t *devices_of(xmpp_stanza_t *items)
{
	return child(child(items, "item", NULL), "devices", MEND_NS_OMEMO2);
}

/*
 * Stores the OMEMO:2 devices `items` names for jid; 0 or <0. No list (an error, or no item):
 * what we knew stays, as for legacy lists (engine.c's devicelist_arrived).
 */
static int list_arrived(mend_account *acc, const char *jid, xmpp_stanza_t *items,
                        mend_omemo2_devicelist *dl)
{
	xmpp_stanza_t *devices = devices_of(items);
	uint32_t *ids;
	size_t i;
	int r;

	memset(dl, 0, sizeof(*dl));
	if (!devices)
		return MEND_ERR_NOT_FOUND;
	r = mend_omemo2_devicelist_parse(devices, dl);
	if (r < 0) {
		mend_log(acc, MEND_LOG_WARNING, "OMEMO:2 device list of %s rejected: %s", jid,
		         mend_strerror(r));
		return r;
	}
	ids = g_new(uint32_t, dl->n ? dl->n : 1);
	for (i = 0; i < dl->n; i++)
		ids[i] = dl->devices[i].id;
	r = mend_omemo2_list_store(acc, jid, MEND_VERSION_2, ids, dl->n);
	g_free(ids);
	return r;
}

static int lists_us(mend_account *acc, const mend_omemo2_devicelist *dl)
{
	size_t i;

	for (i = 0; i < dl->n; i++)
		if (dl->devices[i].id == acc->device_id)
			return 1;
	return 0;
}

static void list_published(mend_account *acc, int ok)
{
	if (!ok)
		mend_log(acc, MEND_LOG_ERROR, "publishing this device in %s failed",
		         MEND_NODE_OMEMO2_DEVICES);
}

/* §5.3.1: the list the server has with our device added, never dropping another one. */
static void publish_list_with_us(mend_account *acc, mend_omemo2_devicelist *dl)
{
	xmpp_stanza_t *st;
	char *xml;

	dl->devices = g_renew(mend_omemo2_device, dl->devices, dl->n + 1);
	memset(&dl->devices[dl->n], 0, sizeof(dl->devices[dl->n]));
	dl->devices[dl->n].id = acc->device_id;
	dl->devices[dl->n++].label = g_strdup(DEVICE_LABEL);
	mend_store_device_version_add(acc->store, acc->jid, acc->device_id, MEND_VERSION_2);
	st = mend_omemo2_devicelist_build(acc->xctx, dl);
	xml = mend_stanza_text(st);
	if (st)
		xmpp_stanza_release(st);
	if (!xml) {
		list_published(acc, 0);
		return;
	}
	mend_engine_publish(acc, MEND_NODE_OMEMO2_DEVICES, "current", 0, xml, list_published);
}

static void bundle_published(mend_account *acc, int ok)
{
	if (!ok)
		mend_log(acc, MEND_LOG_ERROR, "publishing this device's OMEMO:2 bundle failed");
}

void mend_omemo2_publish_bundle(mend_account *acc)
{
	char *xml = NULL, id[12];
	int r;

	if (!mend_omemo2_sessions_supported() || !mend_engine_connected(acc))
		return;
	r = mend_account_omemo2_bundle_xml(acc, &xml);
	if (r < 0) {
		mend_log(acc, MEND_LOG_ERROR, "no OMEMO:2 bundle to publish: %s", mend_strerror(r));
		return;
	}
	g_snprintf(id, sizeof(id), "%u", acc->device_id);
	mend_engine_publish(acc, MEND_NODE_OMEMO2_BUNDLES, id, 1, xml, bundle_published);
}

/* Our own OMEMO:2 list: kept, our bundle published, our device added when it is missing. */
static void own_list_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	mend_omemo2_devicelist dl = {0};
	xmpp_stanza_t *items = ok ? child(child(iq, "pubsub", NS_PUBSUB), "items", NULL) : NULL;

	/* an error (item-not-found) means: no list yet; our device is added to what the server has
	 */
	list_arrived(acc, acc->jid, items, &dl);
	mend_omemo2_publish_bundle(acc);
	if (!lists_us(acc, &dl))
		publish_list_with_us(acc, &dl);
	mend_omemo2_devicelist_clear(&dl);
}

void mend_omemo2_connected(mend_account *acc)
{
	if (!mend_omemo2_sessions_supported())
		return;
	send_iq(acc, items_iq(acc, MEND_NODE_OMEMO2_DEVICES), acc->jid, own_list_reply, NULL, NULL);
}

static void list_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	mend_omemo2_devicelist dl = {0};
	xmpp_stanza_t *items = ok ? child(child(iq, "pubsub", NS_PUBSUB), "items", NULL) : NULL;

	/* no node or no item: no OMEMO:2 device known (its legacy ones stay) */
	list_arrived(acc, data, items, &dl);
	mend_omemo2_devicelist_clear(&dl);
	mend_engine_fetch_done(acc);
}

void mend_omemo2_fetch_list(mend_account *acc, const char *jid)
{
	if (!mend_omemo2_sessions_supported())
		return;
	mend_engine_fetch_started(acc);
	send_iq(acc, items_iq(acc, MEND_NODE_OMEMO2_DEVICES), jid, list_reply, g_strdup(jid),
	        g_free);
}

static void subscribe_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	if (!ok)
		mend_log(acc, MEND_LOG_INFO, "no subscription to %s's OMEMO:2 device list",
		         (const char *)data);
}

/* XEP-0060 §6.1.1, as for the legacy list (engine.c's subscribe_list decides when). */
void mend_omemo2_subscribe(mend_account *acc, const char *jid)
{
	xmpp_stanza_t *iq, *sub;

	if (!mend_omemo2_sessions_supported())
		return;
	iq = iq_new(acc, "set");
	sub = add(add(iq, el(acc, "pubsub", NS_PUBSUB)), el(acc, "subscribe", NULL));
	xmpp_stanza_set_attribute(sub, "node", MEND_NODE_OMEMO2_DEVICES);
	xmpp_stanza_set_attribute(sub, "jid", acc->jid);
	send_iq(acc, iq, jid, subscribe_reply, g_strdup(jid), g_free);
}

int mend_omemo2_list_event(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *items)
{
	mend_omemo2_devicelist dl = {0};
	const char *from = xmpp_stanza_get_from(st);

	if (!mend_omemo2_sessions_supported())
		return 1;
	if (!from || strchr(from, '/')) {
		mend_log(acc, MEND_LOG_WARNING, "OMEMO:2 device list event from %s ignored",
		         from ? from : "?");
		return 1;
	}
	if (list_arrived(acc, from, items, &dl) == MEND_OK && is_own_bare(acc, from) &&
	    mend_engine_connected(acc) && !lists_us(acc, &dl))
		publish_list_with_us(acc, &dl);
	mend_omemo2_devicelist_clear(&dl);
	return 1;
}
