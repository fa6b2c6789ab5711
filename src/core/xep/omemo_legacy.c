/*
 * omemo_legacy.c - codec for legacy OMEMO, XEP-0384 version 0.3.0
 * (namespace eu.siacs.conversations.axolotl): <list/>, <bundle/> and
 * <encrypted/> as libstrophe stanzas <-> the structs of omemo_legacy.h.
 *
 * Parsers read remote data: every count and length is checked against the
 * MEND_MAX_* limits before anything is allocated for it, and on any error
 * the output struct is left cleared. What is accepted beyond the letter of
 * the XEP, and why, is written down in xep/README.md; the schema of what we
 * accept is xep/omemo-legacy.xsd.
 *
 * Builders emit exactly the legacy format, and refuse (NULL) a struct the
 * parsers would reject, so that what we publish or send always parses.
 */
#include "config.h"

#include <string.h>
#include <glib.h>

#include "mend/mend.h"
#include "b64.h"
#include "omemo_legacy.h"
#include "xmlutil.h"

#define MEND_DEVICE_ID_MAX 2147483647u

/* --- stanza helpers -------------------------------------------------------- */

static size_t count_children(xmpp_stanza_t *parent, const char *name)
{
	return mend_xml_count(parent, name, MEND_NS_LEGACY);
}

static int is_legacy_elem(xmpp_stanza_t *el, const char *name)
{
	return mend_xml_is(el, name, MEND_NS_LEGACY);
}

/* --- numbers --------------------------------------------------------------- */

/* XEP-0384 v0.3 §4.1: "a randomly generated integer between 1 and 2^31 - 1". */
int mend_parse_device_id(const char *text, uint32_t *out)
{
	if (!out)
		return MEND_ERR_INVALID_ARG;
	return mend_xml_parse_decimal(text, 1, MEND_DEVICE_ID_MAX, out);
}

/*
 * XEP-0384 v0.3 §4.3 gives prekey ids no range. libsignal's are 32-bit and
 * start at 1; other libraries start at 0. We take any 32-bit value.
 */
static int parse_prekey_id(const char *text, uint32_t *out)
{
	return mend_xml_parse_decimal(text, 0, UINT32_MAX, out);
}

/* --- keys ------------------------------------------------------------------ */

/*
 * A public key as libsignal serializes it: 0x05 || 32 bytes. A bare 32-byte
 * Curve25519 key is taken too, and stored with its type byte.
 */
static int decode_pubkey(xmpp_stanza_t *el, uint8_t out[MEND_PUBKEY_LEN])
{
	uint8_t *raw = NULL;
	size_t len = 0;
	int err;

	err = mend_xml_decode_b64(el, MEND_PUBKEY_LEN, &raw, &len);
	if (err == MEND_ERR_TOO_LARGE)
		err = MEND_ERR_INVALID_KEY;
	if (err)
		goto out;
	if (len == MEND_PUBKEY_LEN && raw[0] == 0x05) {
		memcpy(out, raw, MEND_PUBKEY_LEN);
	} else if (len == MEND_PUBKEY_LEN - 1) {
		out[0] = 0x05;
		memcpy(out + 1, raw, len);
	} else {
		err = MEND_ERR_INVALID_KEY;
	}
	g_free(raw);
out:
	return err;
}

static int decode_signature(xmpp_stanza_t *el, uint8_t out[MEND_SIGNATURE_LEN])
{
	return mend_xml_decode_b64_exact(el, out, MEND_SIGNATURE_LEN, MEND_ERR_INVALID_KEY);
}

/* --- device list ----------------------------------------------------------- */

static int has_id(const uint32_t *ids, size_t n, uint32_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/*
 * XEP-0384 v0.3 §4.2: <list><device id='..'/>..</list>. A device with a bad
 * id is skipped and duplicates are collapsed: one broken entry written by
 * some client must not hide the other devices. More than MEND_MAX_DEVICES
 * <device/> elements is refused whole.
 */
int mend_legacy_devicelist_parse(xmpp_stanza_t *list, mend_devicelist *out)
{
	xmpp_stanza_t *c;
	size_t n;
	uint32_t id;
	int err = 0;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	if (!is_legacy_elem(list, "list")) {
		err = MEND_ERR_MALFORMED;
		goto out;
	}
	n = count_children(list, "device");
	if (n > MEND_MAX_DEVICES) {
		err = MEND_ERR_TOO_LARGE;
		goto out;
	}
	if (n)
		out->ids = g_new(uint32_t, n);
	for (c = xmpp_stanza_get_children(list); c; c = xmpp_stanza_get_next(c)) {
		if (!mend_xml_child_is(c, list, "device", MEND_NS_LEGACY))
			continue;
		if (mend_parse_device_id(xmpp_stanza_get_attribute(c, "id"), &id) < 0)
			continue;
		if (!has_id(out->ids, out->n, id))
			out->ids[out->n++] = id;
	}
out:
	return err;
}

void mend_devicelist_clear(mend_devicelist *dl)
{
	if (!dl)
		return;
	g_free(dl->ids);
	memset(dl, 0, sizeof(*dl));
}

/* --- bundle ---------------------------------------------------------------- */

/* XEP-0384 v0.3 §4.3: signedPreKeyPublic[@signedPreKeyId], signedPreKeySignature. */
static int parse_signed_prekey(xmpp_stanza_t *bundle, mend_bundle *out)
{
	xmpp_stanza_t *spk, *sig;
	int err;

	spk = mend_child(bundle, "signedPreKeyPublic", MEND_NS_LEGACY);
	sig = mend_child(bundle, "signedPreKeySignature", MEND_NS_LEGACY);
	if (!spk || !sig)
		return MEND_ERR_MALFORMED;
	err = parse_prekey_id(xmpp_stanza_get_attribute(spk, "signedPreKeyId"), &out->spk_id);
	if (!err)
		err = decode_pubkey(spk, out->spk);
	if (!err)
		err = decode_signature(sig, out->spk_sig);
	return err;
}

static int has_prekey(const mend_bundle *b, uint32_t id)
{
	size_t i;

	for (i = 0; i < b->n_prekeys; i++)
		if (b->prekeys[i].id == id)
			return 1;
	return 0;
}

/*
 * XEP-0384 v0.3 §4.3: prekeys/preKeyPublic[@preKeyId]. Only one is used
 * (§4.4), so a bad or repeated one is skipped; none left is malformed.
 */
static int parse_prekeys(xmpp_stanza_t *bundle, mend_bundle *out)
{
	xmpp_stanza_t *pks, *c;
	mend_prekey_pub pk;
	size_t n;

	pks = mend_child(bundle, "prekeys", MEND_NS_LEGACY);
	if (!pks)
		return MEND_ERR_MALFORMED;
	n = count_children(pks, "preKeyPublic");
	if (n > MEND_MAX_PREKEYS)
		return MEND_ERR_TOO_LARGE;
	if (n == 0)
		return MEND_ERR_MALFORMED;
	out->prekeys = g_new(mend_prekey_pub, n);
	for (c = xmpp_stanza_get_children(pks); c; c = xmpp_stanza_get_next(c)) {
		if (!mend_xml_child_is(c, pks, "preKeyPublic", MEND_NS_LEGACY))
			continue;
		if (parse_prekey_id(xmpp_stanza_get_attribute(c, "preKeyId"), &pk.id) < 0)
			continue;
		if (decode_pubkey(c, pk.key) < 0 || has_prekey(out, pk.id))
			continue;
		out->prekeys[out->n_prekeys++] = pk;
	}
	return out->n_prekeys ? 0 : MEND_ERR_MALFORMED;
}

int mend_legacy_bundle_parse(xmpp_stanza_t *bundle, mend_bundle *out)
{
	xmpp_stanza_t *ik;
	int err;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	if (!is_legacy_elem(bundle, "bundle")) {
		err = MEND_ERR_MALFORMED;
		goto out;
	}
	err = parse_signed_prekey(bundle, out);
	if (err)
		goto clear;
	ik = mend_child(bundle, "identityKey", MEND_NS_LEGACY);
	err = ik ? decode_pubkey(ik, out->ik) : MEND_ERR_MALFORMED;
	if (err)
		goto clear;
	err = parse_prekeys(bundle, out);
clear:
	if (err)
		mend_bundle_clear(out);
out:
	return err;
}

void mend_bundle_clear(mend_bundle *b)
{
	if (!b)
		return;
	g_free(b->prekeys);
	memset(b, 0, sizeof(*b));
}

/* --- encrypted ------------------------------------------------------------- */

int mend_parse_key_elem(xmpp_stanza_t *el, const char *flag_attr, uint32_t *rid, int *flag,
                        uint8_t **data, size_t *len)
{
	int err;

	err = mend_parse_device_id(xmpp_stanza_get_attribute(el, "rid"), rid);
	if (!err)
		err = mend_xml_parse_bool(xmpp_stanza_get_attribute(el, flag_attr), flag);
	if (!err)
		err = mend_xml_decode_b64(el, MEND_MAX_KEY_LEN, data, len);
	if (!err && *len == 0) {
		g_free(*data);
		*data = NULL;
		err = MEND_ERR_MALFORMED;
	}
	return err;
}

/* XEP-0384 v0.3 §4.5: <key rid='..' prekey='true'>(PreKey)SignalMessage</key>. */
static int parse_key(xmpp_stanza_t *el, mend_key_elem *k)
{
	return mend_parse_key_elem(el, "prekey", &k->rid, &k->prekey, &k->data, &k->len);
}

static int parse_keys(xmpp_stanza_t *header, mend_encrypted *out)
{
	xmpp_stanza_t *c;
	size_t n;
	int err = 0;

	n = count_children(header, "key");
	if (n > MEND_MAX_KEYS)
		return MEND_ERR_TOO_LARGE;
	if (n == 0)
		return MEND_ERR_MALFORMED;
	out->keys = g_new0(mend_key_elem, n);
	for (c = xmpp_stanza_get_children(header); c && !err; c = xmpp_stanza_get_next(c)) {
		if (!mend_xml_child_is(c, header, "key", MEND_NS_LEGACY))
			continue;
		err = parse_key(c, &out->keys[out->n_keys]);
		if (!err)
			out->n_keys++;
	}
	return err;
}

/*
 * XEP-0384 v0.3 §4.5 leaves the IV length open: Conversations, Dino and
 * python-oldmemo send GCM's 12 bytes, Profanity and older clients 16.
 */
static int parse_iv(xmpp_stanza_t *header, mend_encrypted *out)
{
	xmpp_stanza_t *el = mend_child(header, "iv", MEND_NS_LEGACY);
	uint8_t *raw = NULL;
	size_t len = 0;
	int err;

	if (!el)
		return MEND_ERR_MALFORMED;
	err = mend_xml_decode_b64(el, sizeof(out->iv), &raw, &len);
	if (err == MEND_ERR_TOO_LARGE)
		err = MEND_ERR_MALFORMED;
	if (err)
		goto out;
	if (len == 12 || len == 16) {
		memcpy(out->iv, raw, len);
		out->iv_len = len;
	} else {
		err = MEND_ERR_MALFORMED;
	}
	g_free(raw);
out:
	return err;
}

/* XEP-0384 v0.3 §4.6: a key transport element has no <payload/>. */
static int parse_payload(xmpp_stanza_t *encrypted, mend_encrypted *out)
{
	xmpp_stanza_t *el = mend_child(encrypted, "payload", MEND_NS_LEGACY);
	int err;

	if (!el)
		return 0;
	err = mend_xml_decode_b64(el, MEND_MAX_PAYLOAD, &out->payload, &out->payload_len);
	if (!err)
		out->has_payload = 1;
	return err;
}

int mend_legacy_encrypted_parse(xmpp_stanza_t *encrypted, mend_encrypted *out)
{
	xmpp_stanza_t *header;
	int err;

	if (!out)
		return MEND_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	header = mend_child(encrypted, "header", MEND_NS_LEGACY);
	if (!is_legacy_elem(encrypted, "encrypted") || !header) {
		err = MEND_ERR_MALFORMED;
		goto out;
	}
	err = mend_parse_device_id(xmpp_stanza_get_attribute(header, "sid"), &out->sid);
	if (err)
		goto out;
	err = parse_keys(header, out);
	if (!err)
		err = parse_iv(header, out);
	if (!err)
		err = parse_payload(encrypted, out);
	if (err)
		mend_encrypted_clear(out);
out:
	return err;
}

void mend_encrypted_clear(mend_encrypted *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n_keys; i++)
		g_free(m->keys[i].data);
	g_free(m->keys);
	g_free(m->payload);
	memset(m, 0, sizeof(*m));
}

/* --- builders -------------------------------------------------------------- */

static xmpp_stanza_t *new_elem(xmpp_ctx_t *ctx, const char *name)
{
	return mend_xml_new(ctx, name, MEND_NS_LEGACY);
}

static int valid_device_id(uint32_t id)
{
	return id >= 1 && id <= MEND_DEVICE_ID_MAX;
}

static int devicelist_ok(const mend_devicelist *dl)
{
	size_t i;

	if (!dl || dl->n > MEND_MAX_DEVICES || (dl->n && !dl->ids))
		return 0;
	for (i = 0; i < dl->n; i++)
		if (!valid_device_id(dl->ids[i]))
			return 0;
	return 1;
}

/* XEP-0384 v0.3 §4.3: <list xmlns='eu.siacs.conversations.axolotl'><device id/>..</list>. */
xmpp_stanza_t *mend_legacy_devicelist_build(xmpp_ctx_t *ctx, const mend_devicelist *dl)
{
	xmpp_stanza_t *list, *dev;
	size_t i;

	if (!ctx || !devicelist_ok(dl))
		return NULL;
	list = new_elem(ctx, "list");
	for (i = 0; list && i < dl->n; i++) {
		dev = mend_xml_add(list, "device");
		if (!dev || mend_xml_set_uint(dev, "id", dl->ids[i]) < 0) {
			xmpp_stanza_release(list);
			list = NULL;
		}
	}
	return list;
}

static int bundle_ok(const mend_bundle *b)
{
	return b && b->n_prekeys >= 1 && b->n_prekeys <= MEND_MAX_PREKEYS && b->prekeys;
}

static int add_prekeys(xmpp_stanza_t *bundle, const mend_bundle *b)
{
	xmpp_stanza_t *pks = mend_xml_add(bundle, "prekeys");
	size_t i;
	int err = pks ? 0 : MEND_ERR_NOMEM;

	for (i = 0; !err && i < b->n_prekeys; i++)
		err = mend_xml_add_b64(pks, "preKeyPublic", "preKeyId", b->prekeys[i].id,
		                       b->prekeys[i].key, MEND_PUBKEY_LEN);
	return err;
}

/* XEP-0384 v0.3 §4.3: the bundle, with its elements in the XEP's order. */
xmpp_stanza_t *mend_legacy_bundle_build(xmpp_ctx_t *ctx, const mend_bundle *b)
{
	xmpp_stanza_t *bundle;
	int err;

	if (!ctx || !bundle_ok(b))
		return NULL;
	bundle = new_elem(ctx, "bundle");
	if (!bundle)
		goto out;
	err = mend_xml_add_b64(bundle, "signedPreKeyPublic", "signedPreKeyId", b->spk_id, b->spk,
	                       MEND_PUBKEY_LEN);
	if (!err)
		err = mend_xml_add_b64(bundle, "signedPreKeySignature", NULL, 0, b->spk_sig,
		                       MEND_SIGNATURE_LEN);
	if (!err)
		err = mend_xml_add_b64(bundle, "identityKey", NULL, 0, b->ik, MEND_PUBKEY_LEN);
	if (!err)
		err = add_prekeys(bundle, b);
	if (err) {
		xmpp_stanza_release(bundle);
		bundle = NULL;
	}
out:
	return bundle;
}

static int encrypted_ok(const mend_encrypted *m)
{
	size_t i;

	if (!m || !valid_device_id(m->sid) || (m->iv_len != 12 && m->iv_len != 16))
		return 0;
	if (m->n_keys < 1 || m->n_keys > MEND_MAX_KEYS || !m->keys)
		return 0;
	for (i = 0; i < m->n_keys; i++) {
		const mend_key_elem *k = &m->keys[i];

		if (!valid_device_id(k->rid) || !k->data || k->len < 1 || k->len > MEND_MAX_KEY_LEN)
			return 0;
	}
	if (m->has_payload &&
	    (m->payload_len > MEND_MAX_PAYLOAD || (m->payload_len && !m->payload)))
		return 0;
	return 1;
}

/* XEP-0384 v0.3 §4.5: prekey='true' only on a PreKeySignalMessage, else no attribute. */
static int add_key(xmpp_stanza_t *header, const mend_key_elem *k)
{
	xmpp_stanza_t *el = mend_xml_add(header, "key");

	if (!el || mend_xml_set_uint(el, "rid", k->rid) < 0)
		return MEND_ERR_NOMEM;
	if (k->prekey && xmpp_stanza_set_attribute(el, "prekey", "true") != XMPP_EOK)
		return MEND_ERR_NOMEM;
	return mend_xml_set_b64(el, k->data, k->len);
}

static int add_header(xmpp_stanza_t *encrypted, const mend_encrypted *m)
{
	xmpp_stanza_t *header = mend_xml_add(encrypted, "header");
	size_t i;
	int err;

	if (!header)
		return MEND_ERR_NOMEM;
	err = mend_xml_set_uint(header, "sid", m->sid);
	for (i = 0; !err && i < m->n_keys; i++)
		err = add_key(header, &m->keys[i]);
	if (!err)
		err = mend_xml_add_b64(header, "iv", NULL, 0, m->iv, m->iv_len);
	return err;
}

/* XEP-0384 v0.3 §4.5 message element; §4.6 key transport: no <payload/>. */
xmpp_stanza_t *mend_legacy_encrypted_build(xmpp_ctx_t *ctx, const mend_encrypted *m)
{
	xmpp_stanza_t *enc;
	int err;

	if (!ctx || !encrypted_ok(m))
		return NULL;
	enc = new_elem(ctx, "encrypted");
	if (!enc)
		goto out;
	err = add_header(enc, m);
	if (!err && m->has_payload)
		err = mend_xml_add_b64(enc, "payload", NULL, 0, m->payload, m->payload_len);
	if (err) {
		xmpp_stanza_release(enc);
		enc = NULL;
	}
out:
	return enc;
}

/*
 * The same element as mend_legacy_encrypted_build(), written as text: for one
 * message to many devices this is ten times cheaper than building and
 * serializing a stanza tree (bench/README.md).
 */
int mend_legacy_encrypted_text(GString *out, const mend_encrypted *m)
{
	size_t i;

	if (!out || !encrypted_ok(m))
		return MEND_ERR_INVALID_ARG;
	g_string_append_printf(out, "<encrypted xmlns='%s'><header sid='%" G_GUINT32_FORMAT "'>",
	                       MEND_NS_LEGACY, m->sid);
	for (i = 0; i < m->n_keys; i++) {
		g_string_append(out, "<key rid='");
		mend_xml_append_u32(out, m->keys[i].rid);
		g_string_append(out, m->keys[i].prekey ? "' prekey='true'>" : "'>");
		mend_xml_append_b64(out, m->keys[i].data, m->keys[i].len);
		g_string_append(out, "</key>");
	}
	g_string_append(out, "<iv>");
	mend_xml_append_b64(out, m->iv, m->iv_len);
	g_string_append(out, "</iv></header>");
	if (m->has_payload) {
		g_string_append(out, "<payload>");
		mend_xml_append_b64(out, m->payload, m->payload_len);
		g_string_append(out, "</payload>");
	}
	g_string_append(out, "</encrypted>");
	return MEND_OK;
}
