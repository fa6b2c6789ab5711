/*
 * omemo2.c - codec for OMEMO:2, XEP-0384 version 0.9 (urn:xmpp:omemo:2):
 * <devices/> (§5.3.1), <bundle/> (§5.3.2) and <encrypted/> (§5.5.3) as
 * libstrophe stanzas <-> the structs of omemo2.h.
 *
 * The rules follow the legacy codec (omemo_legacy.c): every count is checked
 * against the MEND_MAX_* limits before anything is allocated for it, a
 * broken device entry or prekey is skipped rather than hiding the others,
 * anything else that is wrong refuses the whole element and leaves the
 * output cleared. Unlike legacy OMEMO, OMEMO:2 has one key format (32-byte
 * keys, no type byte) and names the recipient JID of every key.
 */
#include "config.h"

#include <string.h>
#include <glib.h>

#include "mend/mend.h"
#include "b64.h"
#include "omemo2.h"
#include "xmlutil.h"

#define NS MEND_NS_OMEMO2

static int is_elem(xmpp_stanza_t *el, const char *name)
{
	return mend_xml_is(el, name, NS);
}

static int child_is(xmpp_stanza_t *c, xmpp_stanza_t *parent, const char *name)
{
	return mend_xml_child_is(c, parent, name, NS);
}

/* §5.3.2: spk and pk ids are "between 1 and 2^31 - 1", as device ids are. */
static int parse_id(const char *text, uint32_t *out)
{
	return mend_parse_device_id(text, out);
}

static int valid_id(uint32_t id)
{
	return id >= 1 && id <= 2147483647u;
}

/* --- device list (§5.3.1) -------------------------------------------------- */

static int has_device(const mend_omemo2_devicelist *dl, uint32_t id)
{
	size_t i;

	for (i = 0; i < dl->n; i++)
		if (dl->devices[i].id == id)
			return 1;
	return 0;
}

/*
 * The label is shown to users, so it must be UTF-8 of a sane length
 * (otherwise the device stays, without a label). §5.3.1: a label "MUST be
 * ignored if no labelsig attribute is present or the signature does not
 * pass validation" - that check needs the identity key, so it is the
 * caller's; the signature (64 bytes) is kept beside the label.
 */
static void parse_label(xmpp_stanza_t *el, mend_omemo2_device *d)
{
	const char *label = xmpp_stanza_get_attribute(el, "label");
	const char *sig = xmpp_stanza_get_attribute(el, "labelsig");
	uint8_t *raw = NULL;
	size_t len = 0;

	if (label && strlen(label) <= MEND_OMEMO2_MAX_LABEL && g_utf8_validate(label, -1, NULL))
		d->label = g_strdup(label);
	if (sig && mend_b64_decode(sig, sizeof(d->labelsig), &raw, &len) == 0 &&
	    len == sizeof(d->labelsig)) {
		memcpy(d->labelsig, raw, len);
		d->has_labelsig = 1;
	}
	g_free(raw);
}

int mend_omemo2_devicelist_parse(xmpp_stanza_t *devices, mend_omemo2_devicelist *out)
{
	xmpp_stanza_t *c;
	mend_omemo2_device d;
	size_t n;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	if (!is_elem(devices, "devices"))
		return MEND_ERR_MALFORMED;
	n = mend_xml_count(devices, "device", NS);
	if (n > MEND_MAX_DEVICES)
		return MEND_ERR_TOO_LARGE;
	if (n)
		out->devices = g_new0(mend_omemo2_device, n);
	for (c = xmpp_stanza_get_children(devices); c; c = xmpp_stanza_get_next(c)) {
		if (!child_is(c, devices, "device"))
			continue;
		memset(&d, 0, sizeof(d));
		if (parse_id(xmpp_stanza_get_attribute(c, "id"), &d.id) < 0 ||
		    has_device(out, d.id))
			continue;
		parse_label(c, &d);
		out->devices[out->n++] = d;
	}
	return MEND_OK;
}

void mend_omemo2_devicelist_clear(mend_omemo2_devicelist *dl)
{
	size_t i;

	if (!dl)
		return;
	for (i = 0; i < dl->n; i++)
		g_free(dl->devices[i].label);
	g_free(dl->devices);
	memset(dl, 0, sizeof(*dl));
}

/* --- bundle (§5.3.2) ------------------------------------------------------- */

static int decode_key(xmpp_stanza_t *el, uint8_t out[MEND_OMEMO2_PUBKEY_LEN])
{
	return mend_xml_decode_b64_exact(el, out, MEND_OMEMO2_PUBKEY_LEN, MEND_ERR_INVALID_KEY);
}

static int has_prekey(const mend_omemo2_bundle *b, uint32_t id)
{
	size_t i;

	for (i = 0; i < b->n_prekeys; i++)
		if (b->prekeys[i].id == id)
			return 1;
	return 0;
}

/* §5.4: one random pk is used, so a broken or repeated one is skipped; none left is malformed. */
static int parse_prekeys(xmpp_stanza_t *bundle, mend_omemo2_bundle *out)
{
	xmpp_stanza_t *pks = mend_child(bundle, "prekeys", NS), *c;
	mend_omemo2_prekey pk;
	size_t n;

	if (!pks)
		return MEND_ERR_MALFORMED;
	n = mend_xml_count(pks, "pk", NS);
	if (n > MEND_MAX_PREKEYS)
		return MEND_ERR_TOO_LARGE;
	if (n == 0)
		return MEND_ERR_MALFORMED;
	out->prekeys = g_new(mend_omemo2_prekey, n);
	for (c = xmpp_stanza_get_children(pks); c; c = xmpp_stanza_get_next(c)) {
		if (!child_is(c, pks, "pk"))
			continue;
		if (parse_id(xmpp_stanza_get_attribute(c, "id"), &pk.id) < 0 ||
		    decode_key(c, pk.key) < 0 || has_prekey(out, pk.id))
			continue;
		out->prekeys[out->n_prekeys++] = pk;
	}
	return out->n_prekeys ? MEND_OK : MEND_ERR_MALFORMED;
}

static int parse_bundle_keys(xmpp_stanza_t *bundle, mend_omemo2_bundle *out)
{
	xmpp_stanza_t *spk = mend_child(bundle, "spk", NS);
	xmpp_stanza_t *spks = mend_child(bundle, "spks", NS);
	xmpp_stanza_t *ik = mend_child(bundle, "ik", NS);
	int err;

	if (!spk || !spks || !ik)
		return MEND_ERR_MALFORMED;
	err = parse_id(xmpp_stanza_get_attribute(spk, "id"), &out->spk_id);
	if (!err)
		err = decode_key(spk, out->spk);
	if (!err)
		err = mend_xml_decode_b64_exact(spks, out->spks, MEND_OMEMO2_SIGNATURE_LEN,
		                                MEND_ERR_INVALID_KEY);
	if (!err)
		err = decode_key(ik, out->ik);
	return err;
}

int mend_omemo2_bundle_parse(xmpp_stanza_t *bundle, mend_omemo2_bundle *out)
{
	int err;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	if (!is_elem(bundle, "bundle"))
		return MEND_ERR_MALFORMED;
	err = parse_bundle_keys(bundle, out);
	if (!err)
		err = parse_prekeys(bundle, out);
	if (err)
		mend_omemo2_bundle_clear(out);
	return err;
}

void mend_omemo2_bundle_clear(mend_omemo2_bundle *b)
{
	if (!b)
		return;
	g_free(b->prekeys);
	memset(b, 0, sizeof(*b));
}

/* --- encrypted (§5.5.3) ---------------------------------------------------- */

/* <key rid kex>: an OMEMOKeyExchange (kex) or OMEMOAuthenticatedMessage, 1..4096 bytes. */
static int parse_key(xmpp_stanza_t *el, mend_omemo2_key *k)
{
	return mend_parse_key_elem(el, "kex", &k->rid, &k->kex, &k->data, &k->len);
}

/* A bare JID (no resource), stored normalized. */
static int parse_jid(const char *jid, char **out)
{
	if (!jid || !*jid || strchr(jid, '/'))
		return MEND_ERR_MALFORMED;
	if (strlen(jid) > MEND_OMEMO2_MAX_JID)
		return MEND_ERR_TOO_LARGE;
	*out = mend_jid_normalize(jid);
	return *out ? MEND_OK : MEND_ERR_MALFORMED;
}

/* <keys jid>: at least one <key/> (the XEP's schema: a sequence of one or more). */
static int parse_group(xmpp_stanza_t *el, mend_omemo2_keys *g)
{
	xmpp_stanza_t *c;
	size_t n = mend_xml_count(el, "key", NS);
	int err;

	err = parse_jid(xmpp_stanza_get_attribute(el, "jid"), &g->jid);
	if (err)
		return err;
	if (n == 0)
		return MEND_ERR_MALFORMED;
	g->keys = g_new0(mend_omemo2_key, n);
	for (c = xmpp_stanza_get_children(el); c && !err; c = xmpp_stanza_get_next(c)) {
		if (!child_is(c, el, "key"))
			continue;
		err = parse_key(c, &g->keys[g->n_keys]);
		if (!err)
			g->n_keys++;
	}
	return err;
}

/* All <key/> of the header, counted before any is decoded (MEND_MAX_KEYS in all). */
static size_t count_keys(xmpp_stanza_t *header, size_t *n_groups)
{
	xmpp_stanza_t *c;
	size_t n = 0;

	*n_groups = 0;
	for (c = xmpp_stanza_get_children(header); c; c = xmpp_stanza_get_next(c)) {
		if (!child_is(c, header, "keys"))
			continue;
		(*n_groups)++;
		n += mend_xml_count(c, "key", NS);
	}
	return n;
}

static int parse_header(xmpp_stanza_t *header, mend_omemo2_encrypted *out)
{
	xmpp_stanza_t *c;
	size_t n_groups, n_keys = count_keys(header, &n_groups);
	int err;

	err = mend_parse_device_id(xmpp_stanza_get_attribute(header, "sid"), &out->sid);
	if (err)
		return err;
	if (n_keys > MEND_MAX_KEYS || n_groups > MEND_MAX_KEYS)
		return MEND_ERR_TOO_LARGE;
	if (n_groups == 0)
		return MEND_ERR_MALFORMED;
	out->groups = g_new0(mend_omemo2_keys, n_groups);
	for (c = xmpp_stanza_get_children(header); c && !err; c = xmpp_stanza_get_next(c)) {
		if (!child_is(c, header, "keys"))
			continue;
		/* counted first: a failed group is still freed by the clear */
		err = parse_group(c, &out->groups[out->n_groups++]);
	}
	return err;
}

/* §5.5.3: no <payload/> is an empty OMEMO message; an empty one is refused. */
static int parse_payload(xmpp_stanza_t *encrypted, mend_omemo2_encrypted *out)
{
	xmpp_stanza_t *el = mend_child(encrypted, "payload", NS);
	int err;

	if (!el)
		return MEND_OK;
	err = mend_xml_decode_b64(el, MEND_MAX_PAYLOAD, &out->payload, &out->payload_len);
	if (!err && out->payload_len == 0)
		err = MEND_ERR_MALFORMED;
	if (!err)
		out->has_payload = 1;
	return err;
}

int mend_omemo2_encrypted_parse(xmpp_stanza_t *encrypted, mend_omemo2_encrypted *out)
{
	xmpp_stanza_t *header;
	int err;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	header = mend_child(encrypted, "header", NS);
	if (!is_elem(encrypted, "encrypted") || !header)
		return MEND_ERR_MALFORMED;
	err = parse_header(header, out);
	if (!err)
		err = parse_payload(encrypted, out);
	if (err)
		mend_omemo2_encrypted_clear(out);
	return err;
}

void mend_omemo2_encrypted_clear(mend_omemo2_encrypted *m)
{
	size_t i, j;

	if (!m)
		return;
	for (i = 0; i < m->n_groups; i++) {
		for (j = 0; j < m->groups[i].n_keys; j++)
			g_free(m->groups[i].keys[j].data);
		g_free(m->groups[i].keys);
		g_free(m->groups[i].jid);
	}
	g_free(m->groups);
	g_free(m->payload);
	memset(m, 0, sizeof(*m));
}

const mend_omemo2_key *mend_omemo2_find_key(const mend_omemo2_encrypted *m, const char *jid,
                                            uint32_t rid)
{
	const mend_omemo2_key *found = NULL;
	char *norm;
	size_t i, j;

	if (!m || !jid)
		return NULL;
	norm = mend_jid_normalize(jid);
	for (i = 0; norm && !found && i < m->n_groups; i++) {
		if (strcmp(m->groups[i].jid, norm) != 0)
			continue;
		for (j = 0; !found && j < m->groups[i].n_keys; j++)
			if (m->groups[i].keys[j].rid == rid)
				found = &m->groups[i].keys[j];
	}
	g_free(norm);
	return found;
}

/* --- builders -------------------------------------------------------------- */

static xmpp_stanza_t *fail(xmpp_stanza_t *el)
{
	if (el)
		xmpp_stanza_release(el);
	return NULL;
}

static int devicelist_ok(const mend_omemo2_devicelist *dl)
{
	size_t i;

	if (!dl || dl->n > MEND_MAX_DEVICES || (dl->n && !dl->devices))
		return 0;
	for (i = 0; i < dl->n; i++) {
		const char *l = dl->devices[i].label;

		if (!valid_id(dl->devices[i].id) ||
		    (l && (strlen(l) > MEND_OMEMO2_MAX_LABEL || !g_utf8_validate(l, -1, NULL))))
			return 0;
	}
	return 1;
}

static int add_device(xmpp_stanza_t *list, const mend_omemo2_device *d)
{
	xmpp_stanza_t *el = mend_xml_add(list, "device");
	char *sig;
	int err;

	if (!el || mend_xml_set_uint(el, "id", d->id) < 0)
		return MEND_ERR_NOMEM;
	if (d->label && xmpp_stanza_set_attribute(el, "label", d->label) != XMPP_EOK)
		return MEND_ERR_NOMEM;
	if (!d->has_labelsig)
		return MEND_OK;
	sig = mend_b64_encode(d->labelsig, sizeof(d->labelsig));
	err =
	    sig && xmpp_stanza_set_attribute(el, "labelsig", sig) == XMPP_EOK ? 0 : MEND_ERR_NOMEM;
	g_free(sig);
	return err;
}

/* §5.3.1: <devices xmlns='urn:xmpp:omemo:2'><device id label? labelsig?/>..</devices>. */
xmpp_stanza_t *mend_omemo2_devicelist_build(xmpp_ctx_t *ctx, const mend_omemo2_devicelist *dl)
{
	xmpp_stanza_t *list;
	size_t i;

	if (!ctx || !devicelist_ok(dl))
		return NULL;
	list = mend_xml_new(ctx, "devices", NS);
	for (i = 0; list && i < dl->n; i++)
		if (add_device(list, &dl->devices[i]) < 0)
			return fail(list);
	return list;
}

static int bundle_ok(const mend_omemo2_bundle *b)
{
	size_t i;

	if (!b || !valid_id(b->spk_id) || b->n_prekeys < 1 || b->n_prekeys > MEND_MAX_PREKEYS ||
	    !b->prekeys)
		return 0;
	for (i = 0; i < b->n_prekeys; i++)
		if (!valid_id(b->prekeys[i].id))
			return 0;
	return 1;
}

/* §5.3.2: spk, spks, ik, prekeys/pk, in the XEP's order. */
xmpp_stanza_t *mend_omemo2_bundle_build(xmpp_ctx_t *ctx, const mend_omemo2_bundle *b)
{
	xmpp_stanza_t *bundle, *pks;
	size_t i;
	int err;

	if (!ctx || !bundle_ok(b))
		return NULL;
	bundle = mend_xml_new(ctx, "bundle", NS);
	if (!bundle)
		return NULL;
	err = mend_xml_add_b64(bundle, "spk", "id", b->spk_id, b->spk, sizeof(b->spk));
	if (!err)
		err = mend_xml_add_b64(bundle, "spks", NULL, 0, b->spks, sizeof(b->spks));
	if (!err)
		err = mend_xml_add_b64(bundle, "ik", NULL, 0, b->ik, sizeof(b->ik));
	pks = err ? NULL : mend_xml_add(bundle, "prekeys");
	err = pks ? 0 : MEND_ERR_NOMEM;
	for (i = 0; !err && i < b->n_prekeys; i++)
		err = mend_xml_add_b64(pks, "pk", "id", b->prekeys[i].id, b->prekeys[i].key,
		                       MEND_OMEMO2_PUBKEY_LEN);
	return err ? fail(bundle) : bundle;
}

static int group_ok(const mend_omemo2_keys *g, size_t *total)
{
	char *norm;
	size_t i;
	int ok;

	if (!g->jid || strchr(g->jid, '/') || strlen(g->jid) > MEND_OMEMO2_MAX_JID ||
	    g->n_keys < 1 || !g->keys)
		return 0;
	norm = mend_jid_normalize(g->jid);
	ok = norm != NULL;
	g_free(norm);
	for (i = 0; ok && i < g->n_keys; i++)
		ok = valid_id(g->keys[i].rid) && g->keys[i].data && g->keys[i].len >= 1 &&
		     g->keys[i].len <= MEND_MAX_KEY_LEN;
	*total += g->n_keys;
	return ok;
}

static int encrypted_ok(const mend_omemo2_encrypted *m)
{
	size_t i, total = 0;

	if (!m || !valid_id(m->sid) || m->n_groups < 1 || !m->groups)
		return 0;
	for (i = 0; i < m->n_groups; i++)
		if (!group_ok(&m->groups[i], &total))
			return 0;
	if (total > MEND_MAX_KEYS)
		return 0;
	return !m->has_payload ||
	       (m->payload && m->payload_len >= 1 && m->payload_len <= MEND_MAX_PAYLOAD);
}

/* §5.5.3: kex='true' only on a key exchange; no attribute otherwise (it defaults to false). */
static int add_group(xmpp_stanza_t *header, const mend_omemo2_keys *g)
{
	xmpp_stanza_t *keys = mend_xml_add(header, "keys"), *k;
	size_t i;
	int err;

	if (!keys || xmpp_stanza_set_attribute(keys, "jid", g->jid) != XMPP_EOK)
		return MEND_ERR_NOMEM;
	for (i = 0, err = 0; !err && i < g->n_keys; i++) {
		k = mend_xml_add(keys, "key");
		if (!k || mend_xml_set_uint(k, "rid", g->keys[i].rid) < 0 ||
		    (g->keys[i].kex && xmpp_stanza_set_attribute(k, "kex", "true") != XMPP_EOK))
			return MEND_ERR_NOMEM;
		err = mend_xml_set_b64(k, g->keys[i].data, g->keys[i].len);
	}
	return err;
}

/* §5.5.3: <encrypted><header sid><keys jid><key rid kex?/>..</keys>..</header><payload/>?. */
xmpp_stanza_t *mend_omemo2_encrypted_build(xmpp_ctx_t *ctx, const mend_omemo2_encrypted *m)
{
	xmpp_stanza_t *enc, *header;
	size_t i;
	int err;

	if (!ctx || !encrypted_ok(m))
		return NULL;
	enc = mend_xml_new(ctx, "encrypted", NS);
	header = enc ? mend_xml_add(enc, "header") : NULL;
	if (!header || mend_xml_set_uint(header, "sid", m->sid) < 0)
		return fail(enc);
	for (i = 0, err = 0; !err && i < m->n_groups; i++)
		err = add_group(header, &m->groups[i]);
	if (!err && m->has_payload)
		err = mend_xml_add_b64(enc, "payload", NULL, 0, m->payload, m->payload_len);
	return err ? fail(enc) : enc;
}
