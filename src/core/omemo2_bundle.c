/*
 * omemo2_bundle.c - a contact's OMEMO:2 bundle (XEP-0384 0.9 §5.3.2, §5.4):
 * fetched from urn:xmpp:omemo:2:bundles (item = device id) and turned into
 * an OMEMO:2 session on one of its prekeys picked at random, in one store
 * transaction. A bundle that cannot be used marks the device (broken2): it
 * then gets legacy OMEMO if it publishes that, until its OMEMO:2 list comes
 * again. The identity key is trusted as one key in both versions (sigstore.c
 * sees its legacy form, session2.h).
 */
#include "config.h"

#include <string.h>
#include "engine.h"
#include "session2.h"
#include "omemo2_engine.h"
#include "sigstore.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"

/* Builds the OMEMO:2 session with (jid, device) from its parsed bundle. */
static int build_session(mend_account *acc, const char *jid, uint32_t device,
                         const mend_omemo2_bundle *b)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)device};
	size_t pick = 0;
	int r;

	r = mend_sigstore_pick_prekey(acc, jid, device, b->prekeys, sizeof(b->prekeys[0]),
	                              b->n_prekeys, &pick);
	if (r < 0)
		return r;
	r = mend_account_txn_begin(acc);
	if (r < 0)
		return r;
	acc->ratchet_version = MEND_VERSION_2;
	r = mend_omemo2_session_from_bundle(acc->sstore, acc->sctx, &addr, b, pick);
	acc->ratchet_version = 0;
	if (r < 0 && acc->store_err)
		r = acc->store_err;
	if (r == MEND_OK)
		r = mend_store_device_set_broken2(acc->store, jid, device, 0);
	r = mend_account_txn_end(acc, r);
	mend_trust_flush(acc); /* a changed identity key seen on the way */
	return r;
}

int mend_omemo2_bundle_process(mend_account *acc, const char *jid, uint32_t device,
                               xmpp_stanza_t *bundle)
{
	mend_omemo2_bundle b = {0};
	int r = bundle ? mend_omemo2_bundle_parse(bundle, &b) : MEND_ERR_NOT_FOUND;

	if (r == MEND_OK)
		r = build_session(acc, jid, device, &b);
	mend_omemo2_bundle_clear(&b);
	if (r < 0) {
		mend_log(acc, MEND_LOG_WARNING, "no usable OMEMO:2 bundle for %s device %u: %s",
		         jid, device, mend_strerror(r));
		/* skipped (or written to in legacy OMEMO) until its OMEMO:2 list comes again */
		if (r != MEND_ERR_UNTRUSTED && r != MEND_ERR_STORE && r != MEND_ERR_NOMEM)
			mend_store_device_set_broken2(acc->store, jid, device, 1);
	} else {
		mend_devices_announce(acc, jid, device);
	}
	return r;
}

typedef struct bundle_fetch {
	char *jid;
	uint32_t device;
} bundle_fetch;

static void bundle_fetch_free(gpointer p)
{
	bundle_fetch *f = p;

	g_free(f->jid);
	g_free(f);
}

static void bundle_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	bundle_fetch *f = data;
	xmpp_stanza_t *items = ok ? child(child(iq, "pubsub", NS_PUBSUB), "items", NULL) : NULL;

	mend_omemo2_bundle_process(acc, f->jid, f->device,
	                           child(child(items, "item", NULL), "bundle", MEND_NS_OMEMO2));
	mend_engine_fetch_done(acc);
}

/* XEP-0060 §6.5.8: the one item of the bundles node whose id is the device id. */
void mend_omemo2_fetch_bundle(mend_account *acc, const char *jid, uint32_t device)
{
	xmpp_stanza_t *iq = iq_new(acc, "get"), *items, *item;
	bundle_fetch *f = g_new0(bundle_fetch, 1);
	char id[12];

	g_snprintf(id, sizeof(id), "%u", device);
	items = add(add(iq, el(acc, "pubsub", NS_PUBSUB)), el(acc, "items", NULL));
	xmpp_stanza_set_attribute(items, "node", MEND_NODE_OMEMO2_BUNDLES);
	item = add(items, el(acc, "item", NULL));
	xmpp_stanza_set_id(item, id);
	f->jid = g_strdup(jid);
	f->device = device;
	mend_engine_fetch_started(acc);
	send_iq(acc, iq, jid, bundle_reply, f, bundle_fetch_free);
}
