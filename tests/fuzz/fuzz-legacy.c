/*
 * fuzz-legacy.c - the legacy OMEMO codec (src/core/xep/omemo_legacy.c,
 * XEP-0384 v0.3): the input is one XML element; <list/>, <bundle/> and
 * <encrypted/> go to their parsers. What parses must build again (the
 * builders refuse only what the parsers reject) and parse to the same value.
 */
#include "config.h"

#include <string.h>
#include "mend/mend.h"
#include "xep/omemo_legacy.h"
#include "fuzz.h"

static void devicelist(xmpp_stanza_t *el)
{
	mend_devicelist dl = {0}, again = {0};
	xmpp_stanza_t *built;

	if (mend_legacy_devicelist_parse(el, &dl) < 0) {
		FUZZ_CHECK(dl.ids == NULL && dl.n == 0);
		return;
	}
	FUZZ_CHECK(dl.n <= MEND_MAX_DEVICES);
	built = mend_legacy_devicelist_build(fuzz_xmpp_ctx(), &dl);
	FUZZ_CHECK(built != NULL);
	FUZZ_CHECK(mend_legacy_devicelist_parse(built, &again) == MEND_OK);
	FUZZ_CHECK(again.n == dl.n &&
	           (!dl.n || !memcmp(again.ids, dl.ids, dl.n * sizeof(*dl.ids))));
	xmpp_stanza_release(built);
	mend_devicelist_clear(&again);
	mend_devicelist_clear(&dl);
}

/* Field by field: the structs have padding. */
static int same_prekeys(const mend_bundle *a, const mend_bundle *b)
{
	size_t i;

	if (a->n_prekeys != b->n_prekeys)
		return 0;
	for (i = 0; i < a->n_prekeys; i++)
		if (a->prekeys[i].id != b->prekeys[i].id ||
		    memcmp(a->prekeys[i].key, b->prekeys[i].key, MEND_PUBKEY_LEN))
			return 0;
	return 1;
}

static void bundle(xmpp_stanza_t *el)
{
	mend_bundle b = {0}, again = {0};
	xmpp_stanza_t *built;

	if (mend_legacy_bundle_parse(el, &b) < 0) {
		FUZZ_CHECK(b.prekeys == NULL && b.n_prekeys == 0);
		return;
	}
	FUZZ_CHECK(b.n_prekeys > 0 && b.n_prekeys <= MEND_MAX_PREKEYS);
	built = mend_legacy_bundle_build(fuzz_xmpp_ctx(), &b);
	FUZZ_CHECK(built != NULL);
	FUZZ_CHECK(mend_legacy_bundle_parse(built, &again) == MEND_OK);
	FUZZ_CHECK(again.spk_id == b.spk_id && !memcmp(again.spk, b.spk, sizeof(b.spk)) &&
	           !memcmp(again.spk_sig, b.spk_sig, sizeof(b.spk_sig)) &&
	           !memcmp(again.ik, b.ik, sizeof(b.ik)) && same_prekeys(&again, &b));
	xmpp_stanza_release(built);
	mend_bundle_clear(&again);
	mend_bundle_clear(&b);
}

static int same_keys(const mend_encrypted *a, const mend_encrypted *b)
{
	size_t i;

	if (a->n_keys != b->n_keys)
		return 0;
	for (i = 0; i < a->n_keys; i++)
		if (a->keys[i].rid != b->keys[i].rid || a->keys[i].prekey != b->keys[i].prekey ||
		    a->keys[i].len != b->keys[i].len ||
		    memcmp(a->keys[i].data, b->keys[i].data, a->keys[i].len))
			return 0;
	return 1;
}

static void encrypted(xmpp_stanza_t *el)
{
	mend_encrypted m = {0}, again = {0};
	xmpp_stanza_t *built;
	GString *text;

	if (mend_legacy_encrypted_parse(el, &m) < 0) {
		FUZZ_CHECK(m.keys == NULL && m.payload == NULL && m.n_keys == 0);
		return;
	}
	FUZZ_CHECK(m.iv_len == 12 || m.iv_len == 16);
	FUZZ_CHECK(m.n_keys > 0 && m.n_keys <= MEND_MAX_KEYS);
	built = mend_legacy_encrypted_build(fuzz_xmpp_ctx(), &m);
	FUZZ_CHECK(built != NULL);
	FUZZ_CHECK(mend_legacy_encrypted_parse(built, &again) == MEND_OK);
	FUZZ_CHECK(again.sid == m.sid && again.iv_len == m.iv_len &&
	           !memcmp(again.iv, m.iv, m.iv_len) && same_keys(&again, &m) &&
	           again.has_payload == m.has_payload && again.payload_len == m.payload_len &&
	           (!m.payload_len || !memcmp(again.payload, m.payload, m.payload_len)));
	text = g_string_new(NULL);
	FUZZ_CHECK(mend_legacy_encrypted_text(text, &m) == MEND_OK && text->len > 0);
	g_string_free(text, TRUE);
	xmpp_stanza_release(built);
	mend_encrypted_clear(&again);
	mend_encrypted_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const fuzz_route routes[] = {
	    {"list", devicelist}, {"bundle", bundle}, {"encrypted", encrypted}, {NULL, NULL}};

	return fuzz_xml_route(data, size, routes);
}
