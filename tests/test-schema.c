/*
 * test-schema.c - xep/omemo-legacy.xsd against what mend builds and what
 * other clients send: the codec's builders and the good fixtures validate;
 * the lenient and bad fixtures and some deliberately wrong elements do not,
 * so the schema is shown to refuse something.
 */
#include "config.h"

#include <glib.h>
#include <strophe.h>

#include "mend/mend.h"
#include "xep/omemo_legacy.h"
#include "tap.h"
#include "xsd.h"

#define XSD "omemo-legacy.xsd"
#define NS  "xmlns='" MEND_NS_LEGACY "'"

static xmpp_ctx_t *ctx;

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

/* libxml2's reason, one TAP comment line per line. */
static void print_why(const char *why)
{
	char **lines = g_strsplit(why, "\n", -1);
	size_t i;

	for (i = 0; lines[i]; i++)
		if (*lines[i])
			printf("#   %s\n", lines[i]);
	g_strfreev(lines);
}

/* 0 when valid; prints libxml2's reason as a TAP comment otherwise. */
static int validate(const char *xml, int quiet)
{
	char *why = NULL;
	int r;

	if (!xml)
		return -1;
	r = mend_test_validate(XSD, xml, &why);
	if (r && why && !quiet)
		print_why(why);
	free(why);
	return r;
}

static void fill(uint8_t *buf, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed + i * 53);
}

static void fill_pub(uint8_t key[MEND_PUBKEY_LEN], uint8_t seed)
{
	fill(key, MEND_PUBKEY_LEN, seed);
	key[0] = 0x05;
}

/* --- what mend builds ------------------------------------------------------ */

static void test_built_list(void)
{
	uint32_t ids[] = {1, 4223, 2147483647};
	mend_devicelist dl = {ids, G_N_ELEMENTS(ids)}, empty = {NULL, 0};
	char *xml;

	xml = to_text(mend_legacy_devicelist_build(ctx, &dl));
	TAP_EQ(validate(xml, 0), 0, "built <list/> validates");
	g_free(xml);
	xml = to_text(mend_legacy_devicelist_build(ctx, &empty));
	TAP_EQ(validate(xml, 0), 0, "built empty <list/> validates");
	g_free(xml);
}

static char *built_bundle(size_t n)
{
	mend_prekey_pub *pks = g_new0(mend_prekey_pub, n);
	mend_bundle b = {0};
	size_t i;
	char *xml;

	b.spk_id = 1;
	fill_pub(b.spk, 1);
	fill(b.spk_sig, sizeof(b.spk_sig), 2);
	fill_pub(b.ik, 3);
	for (i = 0; i < n; i++) {
		pks[i].id = (uint32_t)(i + 1);
		fill_pub(pks[i].key, (uint8_t)i);
	}
	b.prekeys = pks;
	b.n_prekeys = n;
	xml = to_text(mend_legacy_bundle_build(ctx, &b));
	g_free(pks);
	return xml;
}

static void test_built_bundle(void)
{
	char *xml = built_bundle(100);

	TAP_EQ(validate(xml, 0), 0, "built <bundle/> with 100 prekeys validates");
	g_free(xml);
	xml = built_bundle(MEND_MAX_PREKEYS);
	TAP_EQ(validate(xml, 0), 0, "built <bundle/> with %d prekeys validates", MEND_MAX_PREKEYS);
	g_free(xml);
}

static char *built_encrypted(int with_payload, size_t iv_len)
{
	static const uint32_t rids[] = {31415, 12321, 7};
	mend_key_elem keys[3];
	uint8_t data[3 * 100], payload[33];
	mend_encrypted m = {0};
	size_t i;

	fill(data, sizeof(data), 4);
	fill(payload, sizeof(payload), 5);
	for (i = 0; i < G_N_ELEMENTS(keys); i++) {
		keys[i].rid = rids[i];
		keys[i].prekey = i == 0;
		keys[i].data = data + 100 * i;
		keys[i].len = 90 + i;
	}
	m.sid = 27183;
	m.keys = keys;
	m.n_keys = G_N_ELEMENTS(keys);
	fill(m.iv, sizeof(m.iv), 6);
	m.iv_len = iv_len;
	if (with_payload) {
		m.payload = payload;
		m.payload_len = sizeof(payload);
		m.has_payload = 1;
	}
	return to_text(mend_legacy_encrypted_build(ctx, &m));
}

static void test_built_encrypted(void)
{
	char *xml = built_encrypted(1, 12);

	TAP_EQ(validate(xml, 0), 0, "built <encrypted/> (prekey and plain keys) validates");
	g_free(xml);
	xml = built_encrypted(1, 16);
	TAP_EQ(validate(xml, 0), 0, "built <encrypted/> with a 16-byte IV validates");
	g_free(xml);
	xml = built_encrypted(0, 12);
	TAP_EQ(validate(xml, 0), 0, "built key transport element validates");
	g_free(xml);
}

/* --- fixtures -------------------------------------------------------------- */

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

/* Validates every .xml in dir/sub; want_valid says what each should give. */
static void test_fixture_dir(const char *dir, const char *sub, int want_valid)
{
	char *path = g_build_filename(dir, sub, NULL);
	GDir *d = g_dir_open(path, 0, NULL);
	const char *name;
	int n = 0;

	while (d && (name = g_dir_read_name(d))) {
		char *file, *xml = NULL;

		if (!g_str_has_suffix(name, ".xml"))
			continue;
		file = g_build_filename(path, name, NULL);
		if (!g_file_get_contents(file, &xml, NULL, NULL))
			TAP_BAIL("cannot read %s", file);
		if (want_valid)
			TAP_EQ(validate(xml, 0), 0, "fixture %s%s%s validates", sub,
			       *sub ? "/" : "", name);
		else
			TAP_OK(validate(xml, 1) != 0, "fixture %s/%s does not validate", sub, name);
		n++;
		g_free(xml);
		g_free(file);
	}
	if (d)
		g_dir_close(d);
	TAP_OK(n > 0, "%d fixtures in %s", n, path);
	g_free(path);
}

/* --- the schema's teeth ---------------------------------------------------- */

static const struct {
	const char *what;
	const char *xml;
} wrong[] = {
    {"wrong namespace",
     "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><key rid='2'>AAAA</key>"
     "<iv>AAAAAAAAAAAAAAAA</iv></header></encrypted>"},
    {"no namespace", "<list><device id='1'/></list>"},
    {"key without rid",
     "<encrypted " NS "><header sid='1'><key>AAAA</key><iv>AAAAAAAAAAAAAAAA</iv></header>"
     "</encrypted>"},
    {"missing iv",
     "<encrypted " NS "><header sid='1'><key rid='2'>AAAA</key></header></encrypted>"},
    {"header without sid",
     "<encrypted " NS "><header><key rid='2'>AAAA</key><iv>AAAAAAAAAAAAAAAA</iv></header>"
     "</encrypted>"},
    {"payload before header",
     "<encrypted " NS "><payload>AAAA</payload><header sid='1'><key rid='2'>AAAA</key>"
     "<iv>AAAAAAAAAAAAAAAA</iv></header></encrypted>"},
    {"iv of 15 bytes",
     "<encrypted " NS "><header sid='1'><key rid='2'>AAAA</key><iv>AAAAAAAAAAAAAAAAAAAA</iv>"
     "</header></encrypted>"},
    {"device id 0", "<list " NS "><device id='0'/></list>"},
    {"device id 2^31", "<list " NS "><device id='2147483648'/></list>"},
    {"device without id", "<list " NS "><device/></list>"},
    {"bundle without identityKey",
     "<bundle " NS "><signedPreKeyPublic signedPreKeyId='1'>"
     "BQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB</signedPreKeyPublic>"
     "<signedPreKeySignature>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAAAAAAAAAAAAAAAAAA==</signedPreKeySignature><prekeys><preKeyPublic preKeyId='1'>"
     "BQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB</preKeyPublic></prekeys></bundle>"},
    {"an unknown root element", "<devices " NS "/>"},
    {"not well-formed", "<list " NS "><device id='1'></list>"},
};

static void test_wrong(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(wrong); i++) {
		char *why = NULL;
		int r = mend_test_validate(XSD, wrong[i].xml, &why);

		TAP_OK(r != 0 && why && *why, "refused: %s", wrong[i].what);
		if (why)
			print_why(why);
		free(why);
	}
}

static void test_missing_schema(void)
{
	char *why = NULL;
	int r = mend_test_validate("no-such.xsd", "<list " NS "/>", &why);

	TAP_OK(r != 0 && why, "a missing schema is an error, not a pass");
	free(why);
}

int main(void)
{
	char *dir;

	ctx = xmpp_ctx_new(NULL, NULL);
	if (!ctx)
		TAP_BAIL("xmpp_ctx_new failed");
	dir = fixture_dir();
	test_built_list();
	test_built_bundle();
	test_built_encrypted();
	test_fixture_dir(dir, "", 1);
	test_fixture_dir(dir, "lenient", 0);
	test_fixture_dir(dir, "bad", 0);
	test_wrong();
	test_missing_schema();
	g_free(dir);
	xmpp_ctx_free(ctx);
	return tap_done();
}
