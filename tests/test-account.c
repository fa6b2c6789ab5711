/*
 * test-account.c - the account API end to end in one process: identity on
 * first use, bundles and device lists that validate, a conversation that
 * survives store reopening, tampered and malformed input rejected with the
 * right error and no state damage, duplicates, the store key, catch-up's
 * prekey discipline, bad bundles and changed identity keys.
 */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>
#include <strophe.h>
#include "sim.h"
#include "tap.h"
#include "xsd.h"
#include "b64.h"
#include "internal.h"

#define ALICE "alice@example.org"
#define BOB   "bob@example.org"

static xmpp_ctx_t *xctx;

/* --- XML helpers ----------------------------------------------------------- */

static xmpp_stanza_t *find(xmpp_stanza_t *st, const char *name)
{
	xmpp_stanza_t *c, *f;

	if (xmpp_stanza_get_name(st) && g_str_equal(xmpp_stanza_get_name(st), name))
		return st;
	for (c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c))
		if ((f = find(c, name)))
			return f;
	return NULL;
}

static char *to_text(xmpp_stanza_t *st)
{
	char *buf = NULL, *out;
	size_t len;

	xmpp_stanza_to_text(st, &buf, &len);
	out = g_strndup(buf, len);
	xmpp_free(xctx, buf);
	return out;
}

/* The serialized child element `name` of a stanza. */
static char *element_of(const char *xml, const char *name)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml), *el;
	char *out = NULL;

	if (st && (el = find(st, name)))
		out = to_text(el);
	if (st)
		xmpp_stanza_release(st);
	return out;
}

/* Replaces the text of element `name` (for key: the one with rid) via `edit`. */
typedef char *(*edit_fn)(const char *text);

static char *edit_text(const char *xml, const char *name, uint32_t rid, edit_fn edit)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml), *el, *c;
	char *out, *old, *new;

	el = find(st, name);
	if (rid)
		for (el = xmpp_stanza_get_children(find(st, "header")); el;
		     el = xmpp_stanza_get_next(el)) {
			const char *r = xmpp_stanza_get_attribute(el, "rid");

			if (r && strtoul(r, NULL, 10) == rid)
				break;
		}
	c = xmpp_stanza_get_children(el);
	old = xmpp_stanza_get_text(el);
	new = edit(old);
	xmpp_stanza_set_text(c, new);
	out = to_text(st);
	xmpp_free(xctx, old);
	g_free(new);
	xmpp_stanza_release(st);
	return out;
}

static char *set_attr(const char *xml, const char *name, const char *attr, const char *value)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml);
	char *out;

	xmpp_stanza_set_attribute(find(st, name), attr, value);
	out = to_text(st);
	xmpp_stanza_release(st);
	return out;
}

/* Flips one bit of the decoded value at offset `at` from the end (1 = last byte). */
static char *flip_from_end(const char *b64, size_t at)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	char *out;

	mend_b64_decode(b64, 1 << 20, &raw, &len);
	raw[len - at] ^= 0x01;
	out = mend_b64_encode(raw, len);
	g_free(raw);
	return out;
}

static char *flip_last(const char *b64)
{
	return flip_from_end(b64, 1);
}

static char *flip_first(const char *b64)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	char *out;

	mend_b64_decode(b64, 1 << 20, &raw, &len);
	raw[0] ^= 0x80;
	out = mend_b64_encode(raw, len);
	g_free(raw);
	return out;
}

static char *truncate3(const char *b64)
{
	return g_strndup(b64, strlen(b64) - 3);
}

/* --- helpers ------------------------------------------------------------------ */

static int decrypt_expect(sim_dev *d, const char *wire, const char *body)
{
	mend_message *m = NULL;
	int r = mend_account_decrypt(d->acc, wire, &m);

	if (r == MEND_OK && body && (!m->body || !g_str_equal(m->body, body))) {
		printf("#   decrypted to '%s', want '%s'\n", m->body ? m->body : "(null)", body);
		r = -1000;
	}
	mend_message_free(m);
	return r;
}

/* Sends body from `from` to `to`'s account and returns what the server hands `to`. */
static char *wire_msg(sim *s, sim_dev *from, sim_dev *to, const char *body, int with_sid)
{
	char *stanza = NULL, *wire;
	int r = sim_send(s, from, to->jid, body, &stanza);

	if (r < 0)
		TAP_BAIL("%s cannot encrypt: %s", from->name, mend_strerror(r));
	wire = sim_stamp(s, stanza, from, to, with_sid);
	mend_free(stanza);
	return wire;
}

static int count_substr(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

/* --- the tests --------------------------------------------------------------- */

static void test_first_use(sim *s, sim_dev *a)
{
	char fp[65], fp2[65], *bundle = NULL, *list = NULL, *why = NULL;
	uint32_t id = a->device_id;
	size_t n = 0;

	TAP_OK(id >= 1 && id <= 0x7fffffffu, "device id %u is in 1..2^31-1", id);
	TAP_EQ(a->notices, 1, "no keyring: the user was told once that a key file holds the key");
	TAP_EQ(mend_account_fingerprint(a->acc, fp), MEND_OK, "fingerprint");
	TAP_OK(strlen(fp) == 64 && strspn(fp, "0123456789abcdef") == 64, "fingerprint is 64 hex");
	TAP_EQ(mend_account_prekey_count(a->acc, &n), MEND_OK, "prekey count");
	TAP_EQ(n, 100, "100 one-time prekeys on first use");
	TAP_EQ(mend_account_bundle_xml(a->acc, &bundle), MEND_OK, "bundle");
	TAP_EQ(count_substr(bundle, "<preKeyPublic"), 100, "the bundle publishes 100 prekeys");
	TAP_OK(mend_test_validate("omemo-legacy.xsd", bundle, &why) == 0,
	       "our bundle validates against xep/omemo-legacy.xsd %s", why ? why : "");
	free(why);
	why = NULL;
	TAP_EQ(mend_account_own_devicelist_xml(a->acc, &list), MEND_OK, "device list");
	TAP_OK(mend_test_validate("omemo-legacy.xsd", list, &why) == 0,
	       "our device list validates %s", why ? why : "");
	free(why);
	g_snprintf(fp2, sizeof(fp2), "%u", id);
	TAP_OK(strstr(list, fp2) != NULL, "our device list names us");
	sim_close(a);
	TAP_EQ(sim_open(a), MEND_OK, "reopen");
	mend_account_fingerprint(a->acc, fp2);
	TAP_OK(a->device_id == id && g_str_equal(fp, fp2),
	       "same device id and fingerprint after reopen");
	TAP_EQ(a->notices, 1, "and not told again on reopen");
	mend_free(bundle);
	mend_free(list);
}

static void test_first_message(sim *s, sim_dev *a, sim_dev *b)
{
	char *before = NULL, *after = NULL, *enc, *why = NULL, *wire;
	size_t n = 0;
	int changed = b->bundle_changed, gone = 0;
	char **ids, **p;

	mend_account_bundle_xml(b->acc, &before);
	wire = wire_msg(s, a, b, "hello bob", 0);
	enc = element_of(wire, "encrypted");
	TAP_OK(enc && mend_test_validate("omemo-legacy.xsd", enc, &why) == 0,
	       "our <encrypted/> validates %s", why ? why : "");
	free(why);
	TAP_OK(strstr(wire, "urn:xmpp:eme:0") && strstr(wire, "urn:xmpp:hints") &&
	           strstr(wire, "<body>"),
	       "EME hint, store hint and fallback body are there");
	TAP_OK(!strstr(wire, "hello bob"), "the plaintext is nowhere in the stanza");
	TAP_EQ(decrypt_expect(b, wire, "hello bob"), MEND_OK, "bob decrypts the first message");
	TAP_EQ(mend_account_prekey_count(b->acc, &n), MEND_OK, "count");
	TAP_EQ(n, 100, "bob has 100 unused prekeys again");
	TAP_EQ(b->bundle_changed, changed + 1, "bob was asked to republish his bundle once");
	mend_account_bundle_xml(b->acc, &after);
	ids = g_regex_split_simple("preKeyId=[\"']([0-9]+)[\"']", before, 0, 0);
	for (p = ids + 1; *p && *(p - 1); p += 2) {
		char *dq = g_strdup_printf("preKeyId=\"%s\"", *p);
		char *sq = g_strdup_printf("preKeyId='%s'", *p);

		gone += !strstr(after, dq) && !strstr(after, sq);
		g_free(dq);
		g_free(sq);
	}
	TAP_EQ(gone, 1, "exactly the used prekey left the bundle");
	g_strfreev(ids);
	g_free(enc);
	g_free(wire);
	mend_free(before);
	mend_free(after);
}

/* Each tampered copy is rejected with its error; the untampered one still decrypts. */
static void test_tamper(sim *s, sim_dev *a, sim_dev *b)
{
	char *wire, *bad, *reply;
	char rid[16];

	reply = wire_msg(s, b, a, "hi alice", 0);
	TAP_EQ(decrypt_expect(a, reply, "hi alice"), MEND_OK, "alice decrypts bob's reply");
	wire = wire_msg(s, a, b, "the real text", 0);

	bad = edit_text(wire, "payload", 0, flip_first);
	TAP_EQ(decrypt_expect(b, bad, NULL), MEND_ERR_PAYLOAD_AUTH, "tampered ciphertext rejected");
	g_free(bad);
	bad = edit_text(wire, "key", b->device_id, flip_last);
	TAP_EQ(decrypt_expect(b, bad, NULL), MEND_ERR_KEY_AUTH, "tampered key element rejected");
	g_free(bad);
	g_snprintf(rid, sizeof(rid), "%u", b->device_id ^ 0x5a5a);
	bad = set_attr(wire, "key", "rid", rid);
	TAP_EQ(decrypt_expect(b, bad, NULL), MEND_ERR_NOT_FOR_THIS_DEVICE,
	       "wrong rid: not for this device");
	g_free(bad);
	bad = edit_text(wire, "payload", 0, truncate3);
	TAP_EQ(decrypt_expect(b, bad, NULL), MEND_ERR_BAD_BASE64, "truncated base64 rejected");
	g_free(bad);
	bad = edit_text(wire, "iv", 0, flip_first);
	TAP_EQ(decrypt_expect(b, bad, NULL), MEND_ERR_PAYLOAD_AUTH, "tampered iv rejected");
	g_free(bad);
	TAP_EQ(decrypt_expect(b, wire, "the real text"), MEND_OK,
	       "the untampered message still decrypts after all that (no state damage)");
	TAP_EQ(decrypt_expect(b, wire, NULL), MEND_ERR_DUPLICATE, "delivered again: a duplicate");
	g_free(wire);
	wire = wire_msg(s, a, b, "the next one", 0);
	TAP_EQ(decrypt_expect(b, wire, "the next one"), MEND_OK, "the next good message decrypts");
	g_free(wire);
	g_free(reply);
}

/* Tag after the payload with a 16-byte key (early Conversations), and a 16-byte IV. */
static void test_layouts(sim *s, sim_dev *a, sim_dev *b)
{
	char *stanza = NULL, *wire, *bad;

	mend_account_encrypt_opts(a->acc, b->jid, "old layout", NULL, MEND_ENC_TAG_IN_PAYLOAD,
	                          &stanza);
	wire = sim_stamp(s, stanza, a, b, 0);
	bad = edit_text(wire, "payload", 0, flip_last);
	TAP_EQ(decrypt_expect(b, bad, NULL), MEND_ERR_PAYLOAD_AUTH,
	       "tampered tag (after the payload) rejected");
	TAP_EQ(decrypt_expect(b, wire, "old layout"), MEND_OK,
	       "a 16-byte key with the tag after the payload decrypts");
	g_free(bad);
	g_free(wire);
	mend_free(stanza);
	mend_account_encrypt_opts(a->acc, b->jid, "long iv", NULL, MEND_ENC_IV16, &stanza);
	wire = sim_stamp(s, stanza, a, b, 0);
	TAP_EQ(decrypt_expect(b, wire, "long iv"), MEND_OK, "a 16-byte IV decrypts");
	g_free(wire);
	mend_free(stanza);
}

static void test_malformed(sim *s, sim_dev *a, sim_dev *b)
{
	static const char *const junk[] = {
	    "not xml at all",
	    "<message from='alice@example.org/x'><encrypted "
	    "xmlns='eu.siacs.conversations.axolotl'/></message>",
	    "<message from='alice@example.org/x'><encrypted "
	    "xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key "
	    "rid='1'>AAAA</key></header></encrypted></message>",
	    "<message><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
	    "<iq from='alice@example.org/x'/>",
	};
	char *wire;
	size_t i;
	int bad = 0, r;

	for (i = 0; i < G_N_ELEMENTS(junk); i++) {
		r = decrypt_expect(b, junk[i], NULL);
		if (r != MEND_ERR_MALFORMED) {
			printf("#   junk %zu gave %d\n", i, r);
			bad++;
		}
	}
	TAP_EQ(bad, 0, "malformed stanzas are rejected as malformed");
	TAP_EQ(decrypt_expect(b, "<message from='alice@example.org/x'><body>hi</body></message>",
	                      NULL),
	       MEND_ERR_NOT_FOUND, "a plain message is reported as not OMEMO");
	wire = wire_msg(s, a, b, "after the junk", 0);
	TAP_EQ(decrypt_expect(b, wire, "after the junk"), MEND_OK, "a good message still decrypts");
	g_free(wire);
}

static const char *attr_of(const char *xml, const char *name, const char *attr)
{
	static char value[256];
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml);

	g_strlcpy(value, xmpp_stanza_get_attribute(find(st, name), attr), sizeof(value));
	xmpp_stanza_release(st);
	return value;
}

static void test_stanza_id(sim *s, sim_dev *a, sim_dev *b)
{
	char *wire = wire_msg(s, a, b, "with a stanza-id", 1), *w2, *w3, *reused, *forged, *garbage;
	char *seen_id = g_strdup(attr_of(wire, "stanza-id", "id"));

	TAP_EQ(decrypt_expect(b, wire, "with a stanza-id"), MEND_OK, "stamped message decrypts");
	TAP_EQ(decrypt_expect(b, wire, NULL), MEND_ERR_DUPLICATE,
	       "same stanza-id again: duplicate");
	garbage = edit_text(wire, "payload", 0, flip_first);
	TAP_EQ(decrypt_expect(b, garbage, NULL), MEND_ERR_DUPLICATE,
	       "dedupe by stanza-id comes before anything else");
	w2 = wire_msg(s, a, b, "a new message", 1);
	reused = set_attr(w2, "stanza-id", "id", seen_id);
	forged = set_attr(reused, "stanza-id", "by", "mallory@evil.example");
	TAP_EQ(decrypt_expect(b, forged, "a new message"), MEND_OK,
	       "a seen stanza-id stamped by someone else is not trusted for dedupe");
	w3 = wire_msg(s, a, b, "another new message", 1);
	g_free(reused);
	reused = set_attr(w3, "stanza-id", "id", seen_id);
	TAP_EQ(decrypt_expect(b, reused, NULL), MEND_ERR_DUPLICATE,
	       "a seen stanza-id stamped by our server is a duplicate");
	g_free(reused);
	g_free(forged);
	g_free(garbage);
	g_free(seen_id);
	g_free(wire);
	g_free(w2);
	g_free(w3);
}

static void test_reopen(sim *s, sim_dev *a, sim_dev *b)
{
	char *w1, *w2;

	w1 = wire_msg(s, a, b, "before the restart", 0);
	sim_close(a);
	sim_close(b);
	TAP_OK(sim_open(a) == MEND_OK && sim_open(b) == MEND_OK, "both stores reopen");
	TAP_EQ(decrypt_expect(b, w1, "before the restart"), MEND_OK,
	       "a message sent before the restart decrypts after it");
	w2 = wire_msg(s, b, a, "after the restart", 0);
	TAP_EQ(decrypt_expect(a, w2, "after the restart"), MEND_OK, "the conversation continues");
	g_free(w1);
	g_free(w2);
}

static void test_store_key(sim *s, sim_dev *a)
{
	char *path = g_build_filename(a->dir, "omemo.sqlite.key", NULL), *orig = NULL, *bad;
	mend_account *acc = NULL;
	gsize len = 0;

	sim_close(a);
	TAP_OK(g_file_get_contents(path, &orig, &len, NULL) && len > 0, "the key file is there");
	bad = g_memdup2(orig, len);
	bad[0] = g_ascii_isxdigit(bad[0]) ? (bad[0] == '0' ? '1' : '0') : (char)(bad[0] ^ 1);
	g_file_set_contents(path, bad, (gssize)len, NULL);
	TAP_EQ(mend_account_open(&acc, a->jid, a->dir, MEND_KEYRING_FILE, NULL, NULL),
	       MEND_ERR_STORE_KEY_WRONG, "a wrong store key is refused: %s",
	       mend_strerror(MEND_ERR_STORE_KEY_WRONG));
	g_unlink(path);
	TAP_EQ(mend_account_open(&acc, a->jid, a->dir, MEND_KEYRING_FILE, NULL, NULL),
	       MEND_ERR_STORE_KEY_MISSING, "a missing store key is reported, not replaced");
	g_file_set_contents(path, orig, (gssize)len, NULL);
	g_chmod(path, 0600);
	TAP_EQ(sim_open(a), MEND_OK, "the right key opens the store again");
	g_free(bad);
	g_free(orig);
	g_free(path);
}

/* A bundle cut down to its first prekey, so that two senders use the same one. */
static char *one_prekey_bundle(sim_dev *d)
{
	char *xml = NULL, *out;
	GRegex *re = g_regex_new(
	    "(<preKeyPublic[^>]*>[^<]*</preKeyPublic>)(<preKeyPublic.*)</prekeys>", 0, 0, NULL);

	mend_account_bundle_xml(d->acc, &xml);
	out = g_regex_replace(re, xml, -1, 0, "\\1</prekeys>", 0, NULL);
	g_regex_unref(re);
	mend_free(xml);
	return out;
}

static void test_catchup(sim *s)
{
	sim_dev *c1 = sim_add(s, "carol@example.org", "carol's phone");
	sim_dev *c2 = sim_add(s, "carol@example.org", "carol's laptop");
	sim_dev *d = sim_add(s, "dave@example.org", "dave's phone");
	sim_dev *e = sim_add(s, "erin@example.org", "erin's phone");
	sim_dev *rcpt[2] = {d, e};
	char *w1, *w2, *bundle;
	size_t n;
	int i, changed;

	sim_publish_all(s);
	for (i = 0; i < 2; i++) {
		bundle = one_prekey_bundle(rcpt[i]);
		TAP_OK(count_substr(bundle, "<preKeyPublic") == 1, "bundle cut to one prekey");
		mend_account_bundle_process(c1->acc, rcpt[i]->jid, rcpt[i]->device_id, bundle);
		mend_account_bundle_process(c2->acc, rcpt[i]->jid, rcpt[i]->device_id, bundle);
		g_free(bundle);
		sim_fetch_bundles(s, c1, c1->jid);
		sim_fetch_bundles(s, c2, c2->jid);
		w1 = wire_msg(s, c1, rcpt[i], "from carol's phone", 1);
		w2 = wire_msg(s, c2, rcpt[i], "from carol's laptop", 1);
		changed = rcpt[i]->bundle_changed;
		if (i == 0) {
			TAP_EQ(decrypt_expect(d, w1, "from carol's phone"), MEND_OK,
			       "first prekey message");
			TAP_EQ(decrypt_expect(d, w2, NULL), MEND_ERR_UNKNOWN_PREKEY,
			       "outside catch-up, a used prekey is gone at once");
		} else {
			mend_account_catchup_begin(e->acc);
			TAP_EQ(decrypt_expect(e, w1, "from carol's phone"), MEND_OK,
			       "catch-up: first");
			TAP_EQ(decrypt_expect(e, w2, "from carol's laptop"), MEND_OK,
			       "catch-up: a second message on the same prekey decrypts too");
			TAP_EQ(e->bundle_changed, changed, "no republish during catch-up");
			TAP_EQ(mend_account_catchup_end(e->acc), MEND_OK, "catch-up ends");
			TAP_EQ(e->bundle_changed, changed + 1, "one republish when catch-up ends");
			mend_account_prekey_count(e->acc, &n);
			TAP_EQ(n, 100, "100 unused prekeys after catch-up");
		}
		g_free(w1);
		g_free(w2);
	}
}

/*
 * A sender that picks our highest prekey id (cut to it here; XEP-0384 v0.3
 * §4.4 lets it pick any): that id leaves the bundle and the refill does not
 * hand it out again for another key.
 */
static void test_highest_prekey(sim *s)
{
	sim_dev *g = sim_add(s, "peggy@example.org", "peggy's phone");
	sim_dev *h = sim_add(s, "quinn@example.org", "quinn's phone");
	GRegex *re =
	    g_regex_new("<prekeys>.*(<preKeyPublic preKeyId=\"([0-9]+)\">[^<]*</preKeyPublic>)"
	                "</prekeys>",
	                0, 0, NULL);
	GMatchInfo *mi = NULL;
	char *xml = NULL, *cut, *id = NULL, *attr, *wire;

	sim_publish_all(s);
	mend_account_bundle_xml(h->acc, &xml);
	cut = g_regex_replace(re, xml, -1, 0, "<prekeys>\\1</prekeys>", 0, NULL);
	if (g_regex_match(re, xml, 0, &mi))
		id = g_match_info_fetch(mi, 2);
	TAP_OK(id && g_str_equal(id, "100"), "quinn's highest prekey id is 100 (%s)",
	       id ? id : "none");
	mend_account_bundle_process(g->acc, h->jid, h->device_id, cut);
	wire = wire_msg(s, g, h, "on the last prekey", 1);
	TAP_EQ(decrypt_expect(h, wire, "on the last prekey"), MEND_OK, "quinn decrypts it");
	mend_free(xml);
	xml = NULL;
	mend_account_bundle_xml(h->acc, &xml);
	attr = g_strdup_printf("preKeyId=\"%s\"", id ? id : "");
	TAP_OK(xml && !strstr(xml, attr), "the used highest id %s left quinn's bundle", attr);
	TAP_EQ(count_substr(xml, "<preKeyPublic"), 100, "and 100 other prekeys are in it");
	g_free(attr);
	g_free(wire);
	g_free(id);
	g_free(cut);
	mend_free(xml);
	g_match_info_free(mi);
	g_regex_unref(re);
}

/* --- signed prekey rotation, with the account's clock moved -------------------------------- */

#define DAY (24 * 3600)

static int64_t test_clock(void *data)
{
	return *(const int64_t *)data;
}

/* The signedPreKeyId of d's bundle, or -1. */
static int bundle_spk(sim_dev *d)
{
	char *xml = NULL;
	const char *v;
	int id = -1;

	mend_account_bundle_xml(d->acc, &xml);
	v = xml ? attr_of(xml, "signedPreKeyPublic", "signedPreKeyId") : NULL;
	if (v)
		id = (int)g_ascii_strtoll(v, NULL, 10);
	mend_free(xml);
	return id;
}

static void test_rotation(sim *s)
{
	sim_dev *f = sim_add(s, "frank@example.org", "frank's phone");
	sim_dev *early1 = sim_add(s, "gina@example.org", "gina's phone");
	sim_dev *early2 = sim_add(s, "hank@example.org", "hank's phone");
	sim_dev *later = sim_add(s, "ivy@example.org", "ivy's phone");
	int64_t now = g_get_real_time() / G_USEC_PER_SEC;
	char *m1, *m2, *m3;
	int changed;

	sim_publish_all(s);
	mend_account_set_clock(f->acc, test_clock, &now);
	TAP_EQ(mend_account_rotate_signed_prekey(f->acc), MEND_OK, "day 0: nothing to rotate");
	TAP_EQ(bundle_spk(f), 1, "frank's bundle has signed prekey 1");
	m1 = wire_msg(s, early1, f, "built on signed prekey 1", 1);
	m2 = wire_msg(s, early2, f, "also built on signed prekey 1", 1);

	now += 8 * DAY;
	changed = f->bundle_changed;
	TAP_EQ(mend_account_rotate_signed_prekey(f->acc), MEND_OK, "day 8: rotation");
	TAP_EQ(bundle_spk(f), 2, "the bundle now has signed prekey 2");
	TAP_EQ(f->bundle_changed, changed + 1, "and frank is asked to republish it");
	TAP_EQ(decrypt_expect(f, m1, "built on signed prekey 1"), MEND_OK,
	       "a prekey message built on the previous signed prekey still decrypts");
	m3 = wire_msg(s, later, f, "built on signed prekey 2", 1);

	now += 29 * DAY;
	TAP_EQ(mend_account_rotate_signed_prekey(f->acc), MEND_OK, "day 37: rotation");
	TAP_EQ(bundle_spk(f), 3, "signed prekey 3");
	changed = f->bundle_changed;
	now += 2 * DAY;
	TAP_EQ(mend_account_rotate_signed_prekey(f->acc), MEND_OK, "day 39: no rotation due");
	TAP_EQ(f->bundle_changed, changed, "nothing to republish");
	TAP_EQ(decrypt_expect(f, m2, NULL), MEND_ERR_OLD_SIGNED_PREKEY,
	       "signed prekey 1, replaced 31 days ago, is gone: its message is refused");
	TAP_OK(strstr(mend_strerror(MEND_ERR_OLD_SIGNED_PREKEY), "signed prekey"),
	       "with a clear line: %s", mend_strerror(MEND_ERR_OLD_SIGNED_PREKEY));
	TAP_EQ(decrypt_expect(f, m3, "built on signed prekey 2"), MEND_OK,
	       "signed prekey 2, replaced 2 days ago, still works");
	mend_account_set_clock(f->acc, NULL, NULL);
	g_free(m1);
	g_free(m2);
	g_free(m3);
}

static void test_bad_bundles(sim *s)
{
	sim_dev *f = sim_add(s, "frank@example.org", "frank's phone");
	sim_dev *g = sim_add(s, "grace@example.org", "grace's phone");
	sim_dev *m = sim_add(s, "mallory@example.org", "mallory's phone");
	char *bundle = NULL, *bad, *stanza = NULL, *list;
	uint32_t *ids = NULL;
	size_t n = 0;
	GString *giant;
	int i;

	sim_publish_all(s);
	mend_account_bundle_xml(g->acc, &bundle);
	bad = edit_text(bundle, "signedPreKeySignature", 0, flip_first);
	TAP_EQ(mend_account_bundle_process(f->acc, g->jid, g->device_id, bad), MEND_ERR_INVALID_KEY,
	       "a bundle with a bad signature is rejected");
	mend_account_devices_needing_bundle(f->acc, g->jid, &ids, &n);
	TAP_EQ(n, 0, "that device is not asked for again until it publishes anew");
	mend_free(ids);
	TAP_EQ(mend_account_encrypt(f->acc, g->jid, "x", NULL, &stanza), MEND_ERR_NO_DEVICES,
	       "with no usable device nothing is encrypted");
	TAP_EQ(mend_account_bundle_process(f->acc, g->jid, g->device_id, bundle), MEND_OK,
	       "the good bundle is accepted afterwards");
	g_free(bad);
	mend_free(bundle);
	mend_account_bundle_xml(m->acc, &bundle);
	TAP_EQ(mend_account_bundle_process(f->acc, g->jid, g->device_id, bundle),
	       MEND_ERR_UNTRUSTED,
	       "another identity key for a known device is not trusted automatically");
	mend_free(bundle);
	giant = g_string_new("<list xmlns='eu.siacs.conversations.axolotl'>");
	for (i = 1; i <= 501; i++)
		g_string_append_printf(giant, "<device id='%d'/>", i);
	g_string_append(giant, "</list>");
	TAP_EQ(mend_account_devicelist_update(f->acc, g->jid, giant->str), MEND_ERR_TOO_LARGE,
	       "a giant device list is rejected");
	mend_account_devices(f->acc, g->jid, &ids, &n);
	TAP_OK(n == 1 && ids[0] == g->device_id, "and the known list is kept");
	mend_free(ids);
	g_string_free(giant, TRUE);
	list = g_strdup("<list xmlns='eu.siacs.conversations.axolotl'><device id='0'/></list>");
	TAP_OK(mend_account_devicelist_update(f->acc, g->jid, "<list xmlns='wrong'/>") < 0,
	       "a list in the wrong namespace is rejected");
	g_free(list);
}

/*
 * Two processes on one store (a `mend listen` and a `mend send` of the same
 * device): the session cache of one must notice what the other committed.
 */
static void test_two_handles(sim *s, sim_dev *a, sim_dev *b)
{
	mend_account *twin = NULL;
	char *w1, *w2, *w3 = NULL, *st = NULL;

	TAP_EQ(mend_account_open(&twin, a->jid, a->dir, MEND_KEYRING_FILE, NULL, NULL), MEND_OK,
	       "a second handle on the same store");
	w1 = wire_msg(s, a, b, "one", 0); /* fills a's session cache */
	TAP_EQ(mend_account_encrypt(twin, b->jid, "two", NULL, &st), MEND_OK, "the twin encrypts");
	w2 = sim_stamp(s, st, a, b, 0);
	mend_free(st);
	w3 = wire_msg(s, a, b, "three", 0); /* must not reuse the chain state "two" used */
	TAP_EQ(decrypt_expect(b, w1, "one"), MEND_OK, "first handle's message decrypts");
	TAP_EQ(decrypt_expect(b, w2, "two"), MEND_OK, "second handle's message decrypts");
	TAP_EQ(decrypt_expect(b, w3, "three"), MEND_OK,
	       "and the first handle's next one too: its cache saw the other's commit");
	mend_account_free(twin);
	g_free(w1);
	g_free(w2);
	g_free(w3);
}

/* The verification URI's QR code: square, one text line per two module rows. */
static void test_qr(sim_dev *a)
{
	char *uri = NULL, *qr, **lines;
	glong width;
	int i, same = 1;

	mend_account_verification_uri(a->acc, &uri);
	qr = mend_qr_text(uri);
#ifdef HAVE_QRENCODE
	TAP_OK(qr != NULL, "a QR code of our URI");
	lines = g_strsplit(qr ? qr : "", "\n", -1);
	width = g_utf8_strlen(lines[0], -1);
	for (i = 0; lines[i] && lines[i][0]; i++)
		same &= g_utf8_strlen(lines[i], -1) == width;
	TAP_OK(same && width >= 25 && (i == (width + 1) / 2 || i == width / 2),
	       "the QR code is square: %d lines of %ld cells", i, width);
	g_strfreev(lines);
#else
	TAP_OK(qr == NULL, "no QR code without libqrencode");
#endif
	mend_free(qr);
	mend_free(uri);
}

int main(void)
{
	sim *s = sim_new();
	sim_dev *a, *b;

	xctx = xmpp_ctx_new(NULL, NULL);
	if (!s)
		TAP_BAIL("no temp dir");
	a = sim_add(s, ALICE, "alice's phone");
	b = sim_add(s, BOB, "bob's phone");
	if (!a || !b)
		TAP_BAIL("cannot open accounts");
	if (sim_publish_all(s) < 0)
		TAP_BAIL("cannot publish device lists");
	test_first_use(s, a);
	test_qr(a);
	test_first_message(s, a, b);
	test_tamper(s, a, b);
	test_layouts(s, a, b);
	test_malformed(s, a, b);
	test_stanza_id(s, a, b);
	test_reopen(s, a, b);
	test_two_handles(s, a, b);
	test_store_key(s, a);
	test_catchup(s);
	test_highest_prekey(s);
	test_bad_bundles(s);
	test_rotation(s);
	sim_free(s);
	xmpp_ctx_free(xctx);
	return tap_done();
}
