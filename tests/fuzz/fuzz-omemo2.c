/*
 * fuzz-omemo2.c - the OMEMO:2 codec (src/core/xep/omemo2.c, XEP-0384 v0.9):
 * the input is one XML element; <devices/>, <bundle/> and <encrypted/> go
 * to their parsers. What parses must build again and parse to the same
 * value; every key of a parsed message is found again by its JID and id.
 */
#include "config.h"

#include <string.h>
#include "mend/mend.h"
#include "xep/omemo2.h"
#include "fuzz.h"

static void devices(xmpp_stanza_t *el)
{
	mend_omemo2_devicelist dl = {0}, again = {0};
	xmpp_stanza_t *built;
	size_t i;

	if (mend_omemo2_devicelist_parse(el, &dl) < 0) {
		FUZZ_CHECK(dl.devices == NULL && dl.n == 0);
		return;
	}
	FUZZ_CHECK(dl.n <= MEND_MAX_DEVICES);
	built = mend_omemo2_devicelist_build(fuzz_xmpp_ctx(), &dl);
	FUZZ_CHECK(built != NULL);
	FUZZ_CHECK(mend_omemo2_devicelist_parse(built, &again) == MEND_OK && again.n == dl.n);
	for (i = 0; i < dl.n; i++)
		FUZZ_CHECK(again.devices[i].id == dl.devices[i].id &&
		           g_strcmp0(again.devices[i].label, dl.devices[i].label) == 0 &&
		           again.devices[i].has_labelsig == dl.devices[i].has_labelsig);
	xmpp_stanza_release(built);
	mend_omemo2_devicelist_clear(&again);
	mend_omemo2_devicelist_clear(&dl);
}

/* Field by field: the structs may have padding. */
static int same_prekeys(const mend_omemo2_bundle *a, const mend_omemo2_bundle *b)
{
	size_t i;

	if (a->n_prekeys != b->n_prekeys)
		return 0;
	for (i = 0; i < a->n_prekeys; i++)
		if (a->prekeys[i].id != b->prekeys[i].id ||
		    memcmp(a->prekeys[i].key, b->prekeys[i].key, MEND_OMEMO2_PUBKEY_LEN))
			return 0;
	return 1;
}

static void bundle(xmpp_stanza_t *el)
{
	mend_omemo2_bundle b = {0}, again = {0};
	xmpp_stanza_t *built;

	if (mend_omemo2_bundle_parse(el, &b) < 0) {
		FUZZ_CHECK(b.prekeys == NULL && b.n_prekeys == 0);
		return;
	}
	FUZZ_CHECK(b.n_prekeys <= MEND_MAX_PREKEYS);
	built = mend_omemo2_bundle_build(fuzz_xmpp_ctx(), &b);
	FUZZ_CHECK(built != NULL);
	FUZZ_CHECK(mend_omemo2_bundle_parse(built, &again) == MEND_OK);
	FUZZ_CHECK(again.spk_id == b.spk_id && !memcmp(again.spk, b.spk, sizeof(b.spk)) &&
	           !memcmp(again.spks, b.spks, sizeof(b.spks)) &&
	           !memcmp(again.ik, b.ik, sizeof(b.ik)) && same_prekeys(&again, &b));
	xmpp_stanza_release(built);
	mend_omemo2_bundle_clear(&again);
	mend_omemo2_bundle_clear(&b);
}

/* Every key is found by (jid, rid) and the groups come back alike. */
static void same_groups(const mend_omemo2_encrypted *m, const mend_omemo2_encrypted *again)
{
	size_t i, j;

	FUZZ_CHECK(again->n_groups == m->n_groups);
	for (i = 0; i < m->n_groups; i++) {
		const mend_omemo2_keys *g = &m->groups[i], *h = &again->groups[i];

		FUZZ_CHECK(g->jid && strcmp(g->jid, h->jid) == 0 && g->n_keys == h->n_keys);
		for (j = 0; j < g->n_keys; j++) {
			FUZZ_CHECK(mend_omemo2_find_key(m, g->jid, g->keys[j].rid) != NULL);
			FUZZ_CHECK(g->keys[j].rid == h->keys[j].rid &&
			           g->keys[j].kex == h->keys[j].kex &&
			           g->keys[j].len == h->keys[j].len &&
			           !memcmp(g->keys[j].data, h->keys[j].data, g->keys[j].len));
		}
	}
}

static void encrypted(xmpp_stanza_t *el)
{
	mend_omemo2_encrypted m = {0}, again = {0};
	xmpp_stanza_t *built;

	if (mend_omemo2_encrypted_parse(el, &m) < 0) {
		FUZZ_CHECK(m.groups == NULL && m.payload == NULL && m.n_groups == 0);
		return;
	}
	built = mend_omemo2_encrypted_build(fuzz_xmpp_ctx(), &m);
	FUZZ_CHECK(built != NULL);
	FUZZ_CHECK(mend_omemo2_encrypted_parse(built, &again) == MEND_OK);
	FUZZ_CHECK(again.sid == m.sid && again.has_payload == m.has_payload &&
	           again.payload_len == m.payload_len &&
	           (!m.payload_len || !memcmp(again.payload, m.payload, m.payload_len)));
	same_groups(&m, &again);
	xmpp_stanza_release(built);
	mend_omemo2_encrypted_clear(&again);
	mend_omemo2_encrypted_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const fuzz_route routes[] = {
	    {"devices", devices}, {"bundle", bundle}, {"encrypted", encrypted}, {NULL, NULL}};

	return fuzz_xml_route(data, size, routes);
}
