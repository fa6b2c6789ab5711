/*
 * test-codec.c - the legacy OMEMO codec (src/core/xep/omemo_legacy.c):
 * device ids, build -> text -> parse round trips, the limits, every fixture
 * of xep/fixtures/legacy/ (good, lenient and bad) with the values or error
 * codes expected of it, and random damage to serialized elements (run under
 * --enable-sanitizers to see that nothing leaks or overflows).
 */
#include "config.h"

#include <glib.h>
#include <strophe.h>

#include "mend/mend.h"
#include "b64.h"
#include "xep/omemo_legacy.h"
#include "tap.h"

static xmpp_ctx_t *ctx;

enum kind { LIST, BUNDLE, ENC };

union parsed {
	mend_devicelist dl;
	mend_bundle b;
	mend_encrypted m;
};

/* --- helpers --------------------------------------------------------------- */

static xmpp_stanza_t *from_text(const char *xml)
{
	return xmpp_stanza_new_from_string(ctx, xml);
}

/* Serializes `st` (consumed) to a g_malloc'd string. */
static char *to_text(xmpp_stanza_t *st)
{
	char *buf = NULL, *copy = NULL;
	size_t len = 0;

	if (!st)
		return NULL;
	if (xmpp_stanza_to_text(st, &buf, &len) == XMPP_EOK)
		copy = g_strndup(buf, len);
	if (buf)
		xmpp_free(ctx, buf);
	xmpp_stanza_release(st);
	return copy;
}

static int parse_kind(enum kind k, xmpp_stanza_t *st, union parsed *p)
{
	if (k == LIST)
		return mend_legacy_devicelist_parse(st, &p->dl);
	if (k == BUNDLE)
		return mend_legacy_bundle_parse(st, &p->b);
	return mend_legacy_encrypted_parse(st, &p->m);
}

static void clear_kind(enum kind k, union parsed *p)
{
	if (k == LIST)
		mend_devicelist_clear(&p->dl);
	else if (k == BUNDLE)
		mend_bundle_clear(&p->b);
	else
		mend_encrypted_clear(&p->m);
}

static int is_cleared(enum kind k, const union parsed *p)
{
	static const union parsed zero;
	size_t n = k == LIST ? sizeof(p->dl) : k == BUNDLE ? sizeof(p->b) : sizeof(p->m);

	return memcmp(p, &zero, n) == 0;
}

/* Parses XML text as `k`; on error checks the output was left cleared. */
static int parse_text(enum kind k, const char *xml, union parsed *p)
{
	xmpp_stanza_t *st = from_text(xml);
	int r;

	memset(p, 0xa5, sizeof(*p));
	if (!st)
		return 1000;
	r = parse_kind(k, st, p);
	xmpp_stanza_release(st);
	if (r != 0 && !is_cleared(k, p))
		r = 2000;
	return r;
}

static void fill(uint8_t *buf, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed + i * 37);
}

static void fill_pub(uint8_t key[MEND_PUBKEY_LEN], uint8_t seed)
{
	fill(key, MEND_PUBKEY_LEN, seed);
	key[0] = 0x05;
}

/* --- device ids ------------------------------------------------------------ */

static void test_device_id(void)
{
	static const char *const bad[] = {
	    "0",   "2147483648", "4294967296", "99999999999999999999999",
	    "-1",  "+1",         " 1",         "1 ",
	    "1\n", "",           "12a",        "0x10",
	    "1.0", "\xd9\xa1",
	};
	uint32_t id = 0;
	size_t i;
	int rejected = 0;

	TAP_OK(mend_parse_device_id("1", &id) == 0 && id == 1, "device id 1");
	TAP_OK(mend_parse_device_id("2147483647", &id) == 0 && id == 2147483647u,
	       "device id 2^31-1");
	TAP_OK(mend_parse_device_id("007", &id) == 0 && id == 7, "leading zeros are decimal");
	for (i = 0; i < G_N_ELEMENTS(bad); i++)
		if (mend_parse_device_id(bad[i], &id) == MEND_ERR_MALFORMED)
			rejected++;
		else
			printf("# accepted device id \"%s\"\n", bad[i]);
	TAP_EQ(rejected, G_N_ELEMENTS(bad), "bad device ids rejected (0, 2^31, sign, junk...)");
	TAP_EQ(mend_parse_device_id(NULL, &id), MEND_ERR_MALFORMED, "missing device id");
}

/* --- mend_child ------------------------------------------------------------ */

static void test_child(void)
{
	xmpp_stanza_t *st = from_text("<a xmlns='urn:a'>text<b xmlns='urn:x'/><c/><b n='2'/></a>");
	xmpp_stanza_t *c;

	if (!st)
		TAP_BAIL("libstrophe cannot parse a trivial element");
	c = mend_child(st, "b", "urn:a");
	TAP_OK(c && g_strcmp0(xmpp_stanza_get_attribute(c, "n"), "2") == 0,
	       "mend_child skips a child in another namespace");
	c = mend_child(st, "b", NULL);
	TAP_OK(c && g_strcmp0(xmpp_stanza_get_ns(c), "urn:x") == 0, "mend_child with NULL ns");
	TAP_OK(mend_child(st, "d", NULL) == NULL, "mend_child: no such child");
	TAP_OK(mend_child(NULL, "b", NULL) == NULL, "mend_child: NULL parent");
	xmpp_stanza_release(st);
}

/* --- round trips ----------------------------------------------------------- */

static void test_devicelist_round_trip(void)
{
	uint32_t ids[] = {12345, 1, 2147483647, 4223};
	mend_devicelist dl = {ids, G_N_ELEMENTS(ids)}, empty = {NULL, 0};
	union parsed p;
	char *xml;

	xml = to_text(mend_legacy_devicelist_build(ctx, &dl));
	TAP_OK(xml != NULL, "device list built: %s", xml ? xml : "(null)");
	TAP_EQ(parse_text(LIST, xml, &p), 0, "device list parses back");
	TAP_OK(p.dl.n == dl.n && memcmp(p.dl.ids, ids, sizeof(ids)) == 0,
	       "device list round trip: same ids, same order");
	mend_devicelist_clear(&p.dl);
	g_free(xml);

	xml = to_text(mend_legacy_devicelist_build(ctx, &empty));
	TAP_OK(xml && parse_text(LIST, xml, &p) == 0 && p.dl.n == 0, "empty device list: %s",
	       xml ? xml : "(null)");
	mend_devicelist_clear(&p.dl);
	g_free(xml);
}

static void make_bundle(mend_bundle *b, mend_prekey_pub *pks, size_t n)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	b->spk_id = 4000000000u;
	fill_pub(b->spk, 1);
	fill(b->spk_sig, MEND_SIGNATURE_LEN, 2);
	fill_pub(b->ik, 3);
	for (i = 0; i < n; i++) {
		pks[i].id = (uint32_t)(i + 1);
		fill_pub(pks[i].key, (uint8_t)(i + 10));
	}
	b->prekeys = pks;
	b->n_prekeys = n;
}

static int bundle_equal(const mend_bundle *a, const mend_bundle *b)
{
	size_t i;

	if (a->spk_id != b->spk_id || memcmp(a->spk, b->spk, MEND_PUBKEY_LEN) ||
	    memcmp(a->spk_sig, b->spk_sig, MEND_SIGNATURE_LEN) ||
	    memcmp(a->ik, b->ik, MEND_PUBKEY_LEN) || a->n_prekeys != b->n_prekeys)
		return 0;
	for (i = 0; i < a->n_prekeys; i++) /* field by field: the struct has padding */
		if (a->prekeys[i].id != b->prekeys[i].id ||
		    memcmp(a->prekeys[i].key, b->prekeys[i].key, MEND_PUBKEY_LEN))
			return 0;
	return 1;
}

static void test_bundle_round_trip(void)
{
	mend_prekey_pub pks[100];
	mend_bundle b;
	union parsed p;
	char *xml;

	make_bundle(&b, pks, G_N_ELEMENTS(pks));
	xml = to_text(mend_legacy_bundle_build(ctx, &b));
	TAP_OK(xml != NULL, "bundle with 100 prekeys built");
	TAP_EQ(parse_text(BUNDLE, xml, &p), 0, "bundle parses back");
	TAP_OK(bundle_equal(&p.b, &b), "bundle round trip: every field equal");
	mend_bundle_clear(&p.b);
	g_free(xml);
}

static void make_encrypted(mend_encrypted *m, mend_key_elem *keys, uint8_t *data, uint8_t *payload,
                           size_t payload_len, size_t iv_len)
{
	static const uint32_t rids[] = {31415, 12321, 1};
	size_t i;

	memset(m, 0, sizeof(*m));
	m->sid = 27183;
	for (i = 0; i < 3; i++) {
		keys[i].rid = rids[i];
		keys[i].prekey = i == 1;
		keys[i].data = data + 40 * i;
		keys[i].len = 30 + i;
	}
	fill(data, 120, 9);
	m->keys = keys;
	m->n_keys = 3;
	fill(m->iv, sizeof(m->iv), 5);
	m->iv_len = iv_len;
	m->payload = payload;
	m->payload_len = payload_len;
	m->has_payload = payload != NULL;
}

static int encrypted_equal(const mend_encrypted *a, const mend_encrypted *b)
{
	size_t i;

	if (a->sid != b->sid || a->n_keys != b->n_keys || a->iv_len != b->iv_len ||
	    memcmp(a->iv, b->iv, a->iv_len) || a->has_payload != b->has_payload ||
	    a->payload_len != b->payload_len)
		return 0;
	if (a->payload_len && memcmp(a->payload, b->payload, a->payload_len))
		return 0;
	for (i = 0; i < a->n_keys; i++)
		if (a->keys[i].rid != b->keys[i].rid || a->keys[i].prekey != b->keys[i].prekey ||
		    a->keys[i].len != b->keys[i].len ||
		    memcmp(a->keys[i].data, b->keys[i].data, a->keys[i].len))
			return 0;
	return 1;
}

static int count_str(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

/* The element as message.c writes it, as text: the same fields parse back (all paddings). */
static void test_encrypted_text_round_trip(void)
{
	mend_key_elem keys[3];
	uint8_t data[120], payload[58];
	mend_encrypted m;
	union parsed p;
	GString *xml = g_string_new(NULL);

	fill(payload, sizeof(payload), 78);
	make_encrypted(&m, keys, data, payload, sizeof(payload), 12);
	keys[2].rid = 2147483647u; /* the largest device id */
	TAP_EQ(mend_legacy_encrypted_text(xml, &m), 0, "message element written as text");
	TAP_EQ(parse_text(ENC, xml->str, &p), 0, "the text parses back");
	TAP_OK(encrypted_equal(&p.m, &m), "text round trip: every field equal");
	TAP_EQ(count_str(xml->str, "rid='2147483647'"), 1, "a ten-digit rid");
	TAP_EQ(count_str(xml->str, "prekey='true'"), 1, "prekey='true' on the prekey key only");
	mend_encrypted_clear(&p.m);
	g_string_free(xml, TRUE);
}

static void test_encrypted_round_trip(void)
{
	mend_key_elem keys[3];
	uint8_t data[120], payload[57];
	mend_encrypted m;
	union parsed p;
	char *xml;

	fill(payload, sizeof(payload), 77);
	make_encrypted(&m, keys, data, payload, sizeof(payload), 12);
	xml = to_text(mend_legacy_encrypted_build(ctx, &m));
	TAP_OK(xml != NULL, "message element built");
	TAP_EQ(parse_text(ENC, xml, &p), 0, "message element parses back");
	TAP_OK(encrypted_equal(&p.m, &m), "message round trip: every field equal");
	TAP_EQ(count_str(xml, "prekey=\"true\""), 1, "prekey=\"true\" on the prekey key only");
	TAP_EQ(count_str(xml, "prekey"), 1, "no prekey attribute on the other keys");
	mend_encrypted_clear(&p.m);
	g_free(xml);

	make_encrypted(&m, keys, data, NULL, 0, 16);
	xml = to_text(mend_legacy_encrypted_build(ctx, &m));
	TAP_OK(xml && !strstr(xml, "payload"), "key transport built without <payload/>");
	TAP_EQ(parse_text(ENC, xml, &p), 0, "key transport parses back");
	TAP_OK(encrypted_equal(&p.m, &m) && !p.m.has_payload && !p.m.payload,
	       "key transport round trip, 16-byte IV");
	mend_encrypted_clear(&p.m);
	g_free(xml);
}

/* A built element, not serialized, parses as well (children built with their ns). */
static void test_parse_in_memory(void)
{
	mend_key_elem keys[3];
	uint8_t data[120], payload[4] = {1, 2, 3, 4};
	mend_encrypted m;
	union parsed p;
	xmpp_stanza_t *st;

	make_encrypted(&m, keys, data, payload, sizeof(payload), 12);
	st = mend_legacy_encrypted_build(ctx, &m);
	TAP_OK(st && mend_legacy_encrypted_parse(st, &p.m) == 0 && encrypted_equal(&p.m, &m),
	       "built element parses without serialization");
	mend_encrypted_clear(&p.m);
	if (st)
		xmpp_stanza_release(st);
}

static void test_builders_refuse(void)
{
	mend_key_elem keys[3];
	uint8_t data[120];
	uint32_t ids[] = {5, 0};
	mend_devicelist dl = {ids, 2};
	mend_prekey_pub pks[1];
	mend_encrypted m;
	mend_bundle b;

	TAP_OK(mend_legacy_devicelist_build(ctx, &dl) == NULL, "no device list with id 0");
	make_bundle(&b, pks, 0);
	TAP_OK(mend_legacy_bundle_build(ctx, &b) == NULL, "no bundle without prekeys");
	make_encrypted(&m, keys, data, NULL, 0, 8);
	TAP_OK(mend_legacy_encrypted_build(ctx, &m) == NULL, "no element with an 8-byte IV");
	make_encrypted(&m, keys, data, NULL, 0, 12);
	m.sid = 2147483648u;
	TAP_OK(mend_legacy_encrypted_build(ctx, &m) == NULL, "no element with sid 2^31");
	make_encrypted(&m, keys, data, NULL, 0, 12);
	keys[2].len = 0;
	TAP_OK(mend_legacy_encrypted_build(ctx, &m) == NULL, "no element with an empty key");
}

/* --- limits ---------------------------------------------------------------- */

/* <encrypted/> with n keys of key_len bytes and a payload of payload_len. */
static char *encrypted_text(size_t n, size_t key_len, size_t payload_len)
{
	GString *s = g_string_new("<encrypted xmlns='" MEND_NS_LEGACY "'><header sid='1'>");
	uint8_t *buf = g_malloc0(MAX(key_len, payload_len) + 1);
	char *key = mend_b64_encode(buf, key_len), *pl = mend_b64_encode(buf, payload_len);
	size_t i;

	for (i = 0; i < n; i++)
		g_string_append_printf(s, "<key rid='%zu'>%s</key>", i + 1, key);
	g_string_append_printf(s,
	                       "<iv>AAAAAAAAAAAAAAAA</iv></header><payload>%s</payload>"
	                       "</encrypted>",
	                       pl);
	g_free(buf);
	g_free(key);
	g_free(pl);
	return g_string_free(s, FALSE);
}

static char *bundle_text(size_t n)
{
	GString *s = g_string_new("<bundle xmlns='" MEND_NS_LEGACY "'>");
	uint8_t k[MEND_PUBKEY_LEN], sig[MEND_SIGNATURE_LEN];
	char *k64, *sig64;
	size_t i;

	fill_pub(k, 1);
	fill(sig, sizeof(sig), 2);
	k64 = mend_b64_encode(k, sizeof(k));
	sig64 = mend_b64_encode(sig, sizeof(sig));
	g_string_append_printf(s,
	                       "<signedPreKeyPublic signedPreKeyId='1'>%s</signedPreKeyPublic>"
	                       "<signedPreKeySignature>%s</signedPreKeySignature>"
	                       "<identityKey>%s</identityKey><prekeys>",
	                       k64, sig64, k64);
	for (i = 0; i < n; i++)
		g_string_append_printf(s, "<preKeyPublic preKeyId='%zu'>%s</preKeyPublic>", i, k64);
	g_string_append(s, "</prekeys></bundle>");
	g_free(k64);
	g_free(sig64);
	return g_string_free(s, FALSE);
}

static int parse_clear(enum kind k, char *xml)
{
	union parsed p;
	int r = parse_text(k, xml, &p);

	if (r == 0)
		clear_kind(k, &p);
	g_free(xml);
	return r;
}

static void test_limits(void)
{
	TAP_EQ(parse_clear(ENC, encrypted_text(MEND_MAX_KEYS, 32, 1)), 0, "%d keys accepted",
	       MEND_MAX_KEYS);
	TAP_EQ(parse_clear(ENC, encrypted_text(MEND_MAX_KEYS + 1, 32, 1)), MEND_ERR_TOO_LARGE,
	       "%d keys refused", MEND_MAX_KEYS + 1);
	TAP_EQ(parse_clear(ENC, encrypted_text(1, MEND_MAX_KEY_LEN, 1)), 0,
	       "key of %d bytes accepted", MEND_MAX_KEY_LEN);
	TAP_EQ(parse_clear(ENC, encrypted_text(1, MEND_MAX_KEY_LEN + 1, 1)), MEND_ERR_TOO_LARGE,
	       "key of %d bytes refused", MEND_MAX_KEY_LEN + 1);
	TAP_EQ(parse_clear(ENC, encrypted_text(1, 32, MEND_MAX_PAYLOAD)), 0,
	       "payload of %u bytes accepted", MEND_MAX_PAYLOAD);
	TAP_EQ(parse_clear(ENC, encrypted_text(1, 32, MEND_MAX_PAYLOAD + 1)), MEND_ERR_TOO_LARGE,
	       "payload of %u bytes refused", MEND_MAX_PAYLOAD + 1);
	TAP_EQ(parse_clear(ENC, encrypted_text(1, 32, 0)), 0, "empty <payload/> accepted");
	TAP_EQ(parse_clear(BUNDLE, bundle_text(MEND_MAX_PREKEYS)), 0, "%d prekeys accepted",
	       MEND_MAX_PREKEYS);
	TAP_EQ(parse_clear(BUNDLE, bundle_text(MEND_MAX_PREKEYS + 1)), MEND_ERR_TOO_LARGE,
	       "%d prekeys refused", MEND_MAX_PREKEYS + 1);
}

/* Elements of the wrong name or namespace, and NULL. */
static void test_wrong_element(void)
{
	union parsed p;

	TAP_EQ(parse_text(ENC, "<list xmlns='" MEND_NS_LEGACY "'/>", &p), MEND_ERR_MALFORMED,
	       "a <list/> is not an <encrypted/>");
	TAP_EQ(parse_text(LIST, "<list xmlns='urn:xmpp:omemo:2'/>", &p), MEND_ERR_MALFORMED,
	       "a list in another namespace");
	TAP_EQ(parse_text(BUNDLE, "<bundle/>", &p), MEND_ERR_MALFORMED, "a bundle without xmlns");
	TAP_EQ(mend_legacy_encrypted_parse(NULL, &p.m), MEND_ERR_MALFORMED, "NULL element");
	TAP_EQ(mend_legacy_devicelist_parse(NULL, NULL), MEND_ERR_INVALID_ARG, "NULL output");
}

/* --- fixtures -------------------------------------------------------------- */

struct good {
	const char *file;
	enum kind kind;
	size_t count;   /* devices, prekeys or keys */
	uint32_t first; /* first device id, signed prekey id, or sid */
	int n_prekey;   /* keys with prekey set */
	size_t iv_len;
	long payload_len; /* -1: key transport */
};

static const struct good goods[] = {
    {"xep-example-devicelist.xml", LIST, 2, 12345, 0, 0, -1},
    {"xep-example-devicelist-own.xml", LIST, 3, 12345, 0, 0, -1},
    {"xep-example-bundle.xml", BUNDLE, 3, 1, 0, 0, -1},
    {"xep-example-message.xml", ENC, 2, 27183, 1, 12, 5},
    {"xep-example-keytransport.xml", ENC, 2, 27183, 1, 12, -1},
    {"conversations-devicelist.xml", LIST, 3, 1411233502, 0, 0, -1},
    {"conversations-bundle.xml", BUNDLE, 100, 11, 0, 0, -1},
    {"conversations-message.xml", ENC, 3, 1177673746, 1, 12, 23},
    {"conversations-keytransport.xml", ENC, 1, 1170801604, 1, 12, -1},
    {"dino-devicelist.xml", LIST, 2, 2134095998, 0, 0, -1},
    {"dino-message.xml", ENC, 2, 1983561095, 2, 12, 41},
    {"gajim-bundle.xml", BUNDLE, 20, 7, 0, 0, -1},
    {"gajim-message.xml", ENC, 2, 1959287531, 1, 12, 120},
    {"profanity-message.xml", ENC, 2, 1634295812, 1, 16, 12},
    {"oldclient-message.xml", ENC, 2, 2091457542, 1, 16, 25},
    {"edge-empty-devicelist.xml", LIST, 0, 0, 0, 0, -1},
    {"edge-bundle-raw-keys.xml", BUNDLE, 2, 0, 0, 0, -1},
    {"edge-message-prekey-false.xml", ENC, 2, 2147483647, 0, 12, 3},
    {"lenient/devicelist-bad-ids.xml", LIST, 2, 12345, 0, 0, -1},
    {"lenient/bundle-bad-prekeys.xml", BUNDLE, 2, 1, 0, 0, -1},
    {"lenient/message-unknown-children.xml", ENC, 1, 24649626, 0, 12, 7},
};

static const struct {
	const char *file;
	enum kind kind;
	int err;
} bads[] = {
    {"bad/truncated-base64.xml", ENC, MEND_ERR_BAD_BASE64},
    {"bad/bad-char-base64.xml", ENC, MEND_ERR_BAD_BASE64},
    {"bad/xep-placeholder.xml", ENC, MEND_ERR_BAD_BASE64},
    {"bad/device-id-zero.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/device-id-2147483648.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/device-id-non-numeric.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/missing-iv.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/iv-8-bytes.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/missing-header.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/empty-key.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/no-keys.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/key-without-rid.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/prekey-yes.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/wrong-namespace.xml", ENC, MEND_ERR_MALFORMED},
    {"bad/giant-devicelist.xml", LIST, MEND_ERR_TOO_LARGE},
    {"bad/bundle-short-identity-key.xml", BUNDLE, MEND_ERR_INVALID_KEY},
    {"bad/bundle-bad-signature.xml", BUNDLE, MEND_ERR_INVALID_KEY},
    {"bad/bundle-no-prekeys.xml", BUNDLE, MEND_ERR_MALFORMED},
};

static char *fixture_dir(void)
{
	const char *dir = g_getenv("MEND_XEP_DIR");
	const char *top = g_getenv("top_srcdir");

	if (dir)
		return g_build_filename(dir, "fixtures", "legacy", NULL);
	if (top)
		return g_build_filename(top, "xep", "fixtures", "legacy", NULL);
	return g_build_filename("..", "xep", "fixtures", "legacy", NULL);
}

static char *read_fixture(const char *dir, const char *file)
{
	char *path = g_build_filename(dir, file, NULL), *text = NULL;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		TAP_BAIL("cannot read fixture %s", path);
	g_free(path);
	return text;
}

static int bundle_keys_typed(const mend_bundle *b)
{
	size_t i;

	if (b->spk[0] != 0x05 || b->ik[0] != 0x05)
		return 0;
	for (i = 0; i < b->n_prekeys; i++)
		if (b->prekeys[i].key[0] != 0x05)
			return 0;
	return 1;
}

static int prekey_count(const mend_encrypted *m)
{
	size_t i;
	int n = 0;

	for (i = 0; i < m->n_keys; i++)
		n += m->keys[i].prekey;
	return n;
}

static int good_matches(const struct good *g, const union parsed *p)
{
	if (g->kind == LIST)
		return p->dl.n == g->count && (!g->count || p->dl.ids[0] == g->first);
	if (g->kind == BUNDLE)
		return p->b.n_prekeys == g->count && p->b.spk_id == g->first &&
		       bundle_keys_typed(&p->b);
	return p->m.n_keys == g->count && p->m.sid == g->first &&
	       prekey_count(&p->m) == g->n_prekey && p->m.iv_len == g->iv_len &&
	       p->m.has_payload == (g->payload_len >= 0) &&
	       (g->payload_len < 0 ? p->m.payload == NULL
	                           : (long)p->m.payload_len == g->payload_len);
}

static void test_good_fixtures(const char *dir)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(goods); i++) {
		char *xml = read_fixture(dir, goods[i].file);
		union parsed p;
		int r = parse_text(goods[i].kind, xml, &p);

		TAP_EQ(r, 0, "fixture %s parses", goods[i].file);
		if (r == 0) {
			TAP_OK(good_matches(&goods[i], &p), "fixture %s: expected values",
			       goods[i].file);
			clear_kind(goods[i].kind, &p);
		}
		g_free(xml);
	}
}

static void test_lenient_details(const char *dir)
{
	char *xml = read_fixture(dir, "lenient/devicelist-bad-ids.xml");
	union parsed p;

	TAP_OK(parse_text(LIST, xml, &p) == 0 && p.dl.n == 2 && p.dl.ids[0] == 12345 &&
	           p.dl.ids[1] == 4223,
	       "bad ids skipped, duplicate collapsed: 12345, 4223");
	mend_devicelist_clear(&p.dl);
	g_free(xml);
	xml = read_fixture(dir, "lenient/bundle-bad-prekeys.xml");
	TAP_OK(parse_text(BUNDLE, xml, &p) == 0 && p.b.n_prekeys == 2 && p.b.prekeys[0].id == 2 &&
	           p.b.prekeys[1].id == 5,
	       "bad prekeys skipped: ids 2 and 5");
	mend_bundle_clear(&p.b);
	g_free(xml);
	xml = read_fixture(dir, "edge-bundle-raw-keys.xml");
	TAP_OK(parse_text(BUNDLE, xml, &p) == 0 && p.b.prekeys[0].id == 0 &&
	           p.b.prekeys[1].id == 4294967295u,
	       "prekey ids 0 and 2^32-1 accepted");
	mend_bundle_clear(&p.b);
	g_free(xml);
}

static void test_bad_fixtures(const char *dir)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(bads); i++) {
		char *xml = read_fixture(dir, bads[i].file);
		union parsed p;
		int r = parse_text(bads[i].kind, xml, &p);

		TAP_EQ(r, bads[i].err, "fixture %s refused: %s", bads[i].file,
		       mend_strerror(bads[i].err));
		if (r == 0)
			clear_kind(bads[i].kind, &p);
		g_free(xml);
	}
}

static int listed(const char *file)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(goods); i++)
		if (strcmp(goods[i].file, file) == 0)
			return 1;
	for (i = 0; i < G_N_ELEMENTS(bads); i++)
		if (strcmp(bads[i].file, file) == 0)
			return 1;
	return 0;
}

/* Every .xml in the three directories is in a table above: none goes untested. */
static void test_all_listed(const char *dir)
{
	static const char *const subdirs[] = {"", "lenient", "bad"};
	size_t i, unlisted = 0, seen = 0;

	for (i = 0; i < G_N_ELEMENTS(subdirs); i++) {
		char *path = g_build_filename(dir, subdirs[i], NULL);
		GDir *d = g_dir_open(path, 0, NULL);
		const char *name;

		while (d && (name = g_dir_read_name(d))) {
			char *rel =
			    *subdirs[i] ? g_strconcat(subdirs[i], "/", name, NULL) : g_strdup(name);

			if (g_str_has_suffix(name, ".xml")) {
				seen++;
				if (!listed(rel)) {
					printf("# fixture %s is not in test-codec's tables\n", rel);
					unlisted++;
				}
			}
			g_free(rel);
		}
		if (d)
			g_dir_close(d);
		g_free(path);
	}
	TAP_EQ(unlisted, 0, "all %zu fixtures have expectations", seen);
	TAP_EQ(seen, G_N_ELEMENTS(goods) + G_N_ELEMENTS(bads), "every table entry has a file");
}

/* --- random damage --------------------------------------------------------- */

/* How much of `want` bytes from pos stays clear of markup characters. */
static gssize text_run(const GString *s, gsize pos, gssize want)
{
	gssize n = 0;

	while (n < want && pos + (gsize)n < s->len && !strchr("<>'\"&", s->str[pos + (gsize)n]))
		n++;
	return n;
}

/*
 * One to three random edits. Most stay clear of markup (a changed
 * character inside a value, a run deleted or repeated) so that the codec,
 * not only libstrophe's parser, sees damaged input.
 */
static void mutate(GRand *rng, GString *s)
{
	int n = g_rand_int_range(rng, 1, 4), i;

	for (i = 0; i < n && s->len > 1; i++) {
		gsize pos = (gsize)g_rand_int_range(rng, 0, (gint32)s->len);
		gssize run = text_run(s, pos, g_rand_int_range(rng, 1, 40));

		switch (g_rand_int_range(rng, 0, 10)) {
		case 0: /* flip a bit anywhere */
			s->str[pos] ^= (char)(1 << g_rand_int_range(rng, 0, 8));
			break;
		case 1: /* truncate */
			g_string_truncate(s, pos);
			break;
		case 2:
		case 3: /* delete a run */
			g_string_erase(s, (gssize)pos, run);
			break;
		case 4:
		case 5: /* repeat a run */
			g_string_insert_len(s, (gssize)pos, s->str + pos, run);
			break;
		default: /* a character that matters to base64 or to a number */
			if (run)
				s->str[pos] = "=/+ 0a9Z-\n\t1"[g_rand_int_range(rng, 0, 12)];
			break;
		}
	}
	s->len = strlen(s->str); /* a flipped bit may have written a NUL */
}

static void fuzz(enum kind k, const char *seed_xml, int rounds, guint32 seed)
{
	GRand *rng = g_rand_new_with_seed(seed);
	int i, parsed = 0, ok = 0, dirty = 0;

	for (i = 0; i < rounds; i++) {
		GString *s = g_string_new(seed_xml);
		union parsed p;
		int r;

		mutate(rng, s);
		r = parse_text(k, s->str, &p);
		if (r != 1000)
			parsed++;
		if (r == 0) {
			ok++;
			clear_kind(k, &p);
		}
		if (r == 2000)
			dirty++;
		g_string_free(s, TRUE);
	}
	g_rand_free(rng);
	TAP_EQ(dirty, 0, "%d mutations (seed %u): %d well-formed, %d accepted, no crash", rounds,
	       seed, parsed, ok);
}

static void test_fuzz(const char *dir)
{
	mend_key_elem keys[3];
	uint8_t data[120], payload[40];
	mend_encrypted m;
	char *xml;

	fill(payload, sizeof(payload), 3);
	make_encrypted(&m, keys, data, payload, sizeof(payload), 12);
	xml = to_text(mend_legacy_encrypted_build(ctx, &m));
	if (!xml)
		TAP_BAIL("cannot build the element to damage");
	fuzz(ENC, xml, 2000, 384);
	g_free(xml);
	xml = read_fixture(dir, "gajim-bundle.xml");
	fuzz(BUNDLE, xml, 500, 385);
	g_free(xml);
	xml = read_fixture(dir, "lenient/devicelist-bad-ids.xml");
	fuzz(LIST, xml, 500, 386);
	g_free(xml);
}

int main(void)
{
	char *dir;

	ctx = xmpp_ctx_new(NULL, NULL);
	if (!ctx)
		TAP_BAIL("xmpp_ctx_new failed");
	dir = fixture_dir();
	printf("# fixtures: %s\n", dir);
	test_device_id();
	test_child();
	test_devicelist_round_trip();
	test_bundle_round_trip();
	test_encrypted_round_trip();
	test_encrypted_text_round_trip();
	test_parse_in_memory();
	test_builders_refuse();
	test_limits();
	test_wrong_element();
	test_good_fixtures(dir);
	test_lenient_details(dir);
	test_bad_fixtures(dir);
	test_all_listed(dir);
	test_fuzz(dir);
	g_free(dir);
	xmpp_ctx_free(ctx);
	return tap_done();
}
