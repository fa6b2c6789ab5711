/*
 * test-trust.c - whose keys alice encrypts to, in one process: trust on
 * first use (the default) for every new device, an identity key change
 * (a candidate beside the trusted key, which keeps getting messages, until
 * alice accepts the new key by its fingerprint; the message that came with
 * it is held and then shown), a forged key change, blind trust before
 * verification, manual trust for one contact,
 * verification URIs as Conversations and Dino exchange them, and all of it
 * kept across a restart.
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include <strophe.h>
#include "sim.h"
#include "tap.h"

#define ALICE "alice@example.org"
#define BOB   "bob@example.org"
#define CAROL "carol@example.org"
#define DAVE  "dave@example.org"
#define ERIN  "erin@example.org"
#define FRANK "frank@example.org"
#define GRACE "grace@example.org"
#define HENRY "henry@example.org"

#define NOT_LISTED (-2) /* trust_of(): the device is not in device_infos at all */

static xmpp_ctx_t *xctx;

/* --- helpers ------------------------------------------------------------------ */

/* Adds a device and tells everybody (as PEP would). */
static sim_dev *add(sim *s, const char *jid, const char *name)
{
	sim_dev *d = sim_add(s, jid, name);

	if (!d)
		TAP_BAIL("cannot open %s", name);
	if (sim_publish_all(s) < 0)
		TAP_BAIL("cannot publish the device lists after adding %s", name);
	return d;
}

/* What `d` knows of device `id` of `jid`; trust NOT_LISTED when it is not listed. */
static mend_device_info info_of(sim_dev *d, const char *jid, uint32_t id)
{
	mend_device_info *all = NULL, found = {.trust = NOT_LISTED};
	size_t n = 0, i;

	if (mend_account_device_infos(d->acc, jid, &all, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			if (all[i].id == id)
				found = all[i];
	mend_free(all);
	return found;
}

static int trust_of(sim_dev *d, const char *jid, uint32_t id)
{
	return info_of(d, jid, id).trust;
}

static void fp_of(sim_dev *d, char fp[65])
{
	fp[0] = '\0';
	mend_account_fingerprint(d->acc, fp);
}

/* Compares two strings (fingerprints, URIs) and says how they differ. */
static int same(const char *got, const char *want)
{
	if (g_str_equal(got, want))
		return 1;
	printf("#   got  '%s'\n#   want '%s'\n", got, want);
	return 0;
}

/* How many <key rid='rid'/> the header of `stanza` holds; -1 if it does not parse. */
static int keys_for(const char *stanza, uint32_t rid)
{
	xmpp_stanza_t *st, *enc, *hdr, *k;
	int n = 0;

	if (!stanza || !(st = xmpp_stanza_new_from_string(xctx, stanza)))
		return -1;
	enc = xmpp_stanza_get_child_by_name(st, "encrypted");
	hdr = enc ? xmpp_stanza_get_child_by_name(enc, "header") : NULL;
	for (k = hdr ? xmpp_stanza_get_children(hdr) : NULL; k; k = xmpp_stanza_get_next(k)) {
		const char *name = xmpp_stanza_get_name(k);
		const char *r = xmpp_stanza_get_attribute(k, "rid");

		if (name && r && g_str_equal(name, "key") && strtoul(r, NULL, 10) == rid)
			n++;
	}
	xmpp_stanza_release(st);
	return hdr ? n : -1;
}

/* The server hands `stanza` from `from` to `to`, which decrypts it (body NULL: any body). */
static int deliver(sim *s, const char *stanza, sim_dev *from, sim_dev *to, const char *body)
{
	mend_message *m = NULL;
	char *wire;
	int r;

	if (!stanza)
		return -1001;
	wire = sim_stamp(s, stanza, from, to, 0);
	r = mend_account_decrypt(to->acc, wire, &m);
	if (r == MEND_OK && body && (!m->body || !g_str_equal(m->body, body))) {
		printf("#   %s decrypted '%s', want '%s'\n", to->name, m->body ? m->body : "(null)",
		       body);
		r = -1000;
	}
	mend_message_free(m);
	g_free(wire);
	return r;
}

/* Feeds `a` the bundle `d` publishes now. */
static int give_bundle(sim_dev *a, sim_dev *d)
{
	char *bundle = NULL;
	int r = mend_account_bundle_xml(d->acc, &bundle);

	if (r == MEND_OK)
		r = mend_account_bundle_process(a->acc, d->jid, d->device_id, bundle);
	mend_free(bundle);
	return r;
}

/* Sends body from `from` to `to`'s account and checks that `to` decrypts it. */
static void talk(sim *s, sim_dev *from, sim_dev *to, const char *body)
{
	char *st = NULL;

	TAP_EQ(sim_send(s, from, to->jid, body, &st), MEND_OK, "%s encrypts '%s'", from->name,
	       body);
	TAP_EQ(keys_for(st, to->device_id), 1, "it has a key for %s", to->name);
	TAP_EQ(deliver(s, st, from, to, body), MEND_OK, "%s decrypts it", to->name);
	mend_free(st);
}

/* --- 1. trust on first use ------------------------------------------------------ */

static sim_dev *test_tofu(sim *s, sim_dev *a, sim_dev *b1)
{
	mend_device_info i;
	char fp[65];
	sim_dev *b2;

	TAP_EQ(mend_account_get_policy(a->acc, NULL), MEND_POLICY_TOFU, "tofu is the default");
	TAP_EQ(trust_of(a, BOB, b1->device_id), -1, "before any message bob's key is unknown");
	talk(s, a, b1, "hello bob");
	i = info_of(a, BOB, b1->device_id);
	fp_of(b1, fp);
	TAP_EQ(i.trust, MEND_TRUST_TOFU, "bob's phone is trusted on first use");
	TAP_OK(same(i.fingerprint, fp), "alice knows bob's phone by its fingerprint");
	TAP_OK(i.new_fingerprint[0] == '\0', "and no new key waits");

	b2 = add(s, BOB, "bob's laptop");
	talk(s, a, b2, "hello bob's laptop");
	i = info_of(a, BOB, b2->device_id);
	fp_of(b2, fp);
	TAP_EQ(i.trust, MEND_TRUST_TOFU, "bob's second device is trusted on first use too");
	TAP_OK(same(i.fingerprint, fp), "with its own fingerprint");
	return b2;
}

/* --- 2. an identity key change ---------------------------------------------------- */

/* Checks what alice shows for device `id`: trust, fingerprint, first new key and how many. */
static void shows(sim_dev *a, const char *jid, uint32_t id, int trust, const char *fp,
                  const char *new_fp, unsigned n_new, const char *what)
{
	mend_device_info i = info_of(a, jid, id);

	TAP_EQ(i.trust, trust, "%s: trust", what);
	TAP_OK(same(i.fingerprint, fp), "%s: the fingerprint of the trusted key", what);
	TAP_OK(same(i.new_fingerprint, new_fp), "%s: the new key beside it", what);
	TAP_EQ(i.n_new_keys, n_new, "%s: %u new key(s)", what, n_new);
}

static void test_key_change(sim *s, sim_dev *a, sim_dev *b1, sim_dev *b2)
{
	char old_fp[65], new_fp[65], *st = NULL, *grouped;
	int r, seen;

	fp_of(b2, old_fp);
	TAP_EQ(mend_account_reset_identity(b2->acc), MEND_OK, "bob's laptop makes a new key");
	fp_of(b2, new_fp);
	TAP_OK(mend_account_device_id(b2->acc) == b2->device_id && !g_str_equal(old_fp, new_fp),
	       "same device id, another fingerprint");
	TAP_EQ(give_bundle(a, b2), MEND_ERR_UNTRUSTED,
	       "alice does not take the laptop's new bundle");
	shows(a, BOB, b2->device_id, MEND_TRUST_TOFU, old_fp, new_fp, 1,
	      "a changed key is a candidate beside the trusted one");
	TAP_EQ(give_bundle(a, b2), MEND_ERR_UNTRUSTED, "the same bundle again");
	shows(a, BOB, b2->device_id, MEND_TRUST_TOFU, old_fp, new_fp, 1, "a key seen twice");

	TAP_EQ(mend_account_encrypt(a->acc, BOB, "still for the old key", NULL, &st), MEND_OK,
	       "alice still writes to bob");
	TAP_EQ(keys_for(st, b1->device_id), 1, "bob's phone gets it");
	TAP_EQ(keys_for(st, b2->device_id), 1,
	       "the laptop's trusted key too: a new key never displaces it by itself");
	TAP_EQ(deliver(s, st, a, b1, "still for the old key"), MEND_OK, "bob's phone decrypts it");
	mend_free(st);

	TAP_EQ(sim_send(s, b2, ALICE, "from my new key", &st), MEND_OK,
	       "the laptop writes to alice with its new key");
	seen = a->messages;
	r = deliver(s, st, b2, a, NULL);
	TAP_EQ(r, MEND_ERR_KEY_CHANGED, "alice holds its prekey message until she accepts the key");
	TAP_EQ(a->messages, seen, "and shows nothing of it yet");
	mend_free(st);
	shows(a, BOB, b2->device_id, MEND_TRUST_TOFU, old_fp, new_fp, 1, "after the message");

	TAP_EQ(mend_account_set_trust(a->acc, BOB, b2->device_id, MEND_TRUST_VERIFIED),
	       MEND_ERR_KEY_CHANGED, "trust without the fingerprint accepts nothing");
	shows(a, BOB, b2->device_id, MEND_TRUST_TOFU, old_fp, new_fp, 1, "nothing changed");
	TAP_EQ(mend_account_trust_key(a->acc, BOB, b2->device_id, "0123"), MEND_ERR_INVALID_ARG,
	       "a fingerprint must have 64 hex digits");
	grouped = mend_fingerprint_grouped(new_fp);
	grouped[0] = grouped[0] == '0' ? '1' : '0';
	TAP_EQ(mend_account_trust_key(a->acc, BOB, b2->device_id, grouped),
	       MEND_ERR_VERIFY_MISMATCH, "a key the laptop never showed is not accepted");
	mend_free(grouped);
	grouped = mend_fingerprint_grouped(new_fp);
	TAP_EQ(mend_account_trust_key(a->acc, BOB, b2->device_id, grouped), MEND_OK,
	       "alice accepts the new key, naming its fingerprint (grouped)");
	mend_free(grouped);
	shows(a, BOB, b2->device_id, MEND_TRUST_VERIFIED, new_fp, "", 0, "accepted");
	TAP_EQ(a->messages, seen + 1, "the held message is shown now");
	TAP_OK(a->last_body && same(a->last_body, "from my new key"), "decrypted");
	talk(s, a, b2, "welcome back, laptop");
}

/* Frank has one device: his new key waits beside the old one, which still gets messages. */
static sim_dev *test_only_device_changed(sim *s, sim_dev *a)
{
	sim_dev *f = add(s, FRANK, "frank's phone");
	char *st = NULL;

	talk(s, a, f, "hello frank");
	TAP_EQ(mend_account_reset_identity(f->acc), MEND_OK, "frank's phone makes a new key");
	TAP_EQ(give_bundle(a, f), MEND_ERR_UNTRUSTED, "alice does not take frank's new bundle");
	TAP_EQ(trust_of(a, FRANK, f->device_id), MEND_TRUST_TOFU,
	       "frank's old key keeps its trust");
	TAP_EQ(mend_account_encrypt(a->acc, FRANK, "x", NULL, &st), MEND_OK,
	       "alice still encrypts to frank's trusted key");
	TAP_EQ(keys_for(st, f->device_id), 1, "for his phone");
	mend_free(st);
	return f;
}

/* --- 3. a forged key change --------------------------------------------------------- */

/*
 * Mallory writes as one of grace's devices (its id in the header) under her own
 * identity key. Delivery to grace's trusted key goes on; trust without the
 * fingerprint accepts nothing; a second forged key does not replace the first.
 */
static char *forge(sim *s, sim_dev *a, sim_dev *victim, const char *body, char fp[65])
{
	sim *elsewhere = sim_new();
	sim_dev *m = elsewhere ? sim_add(elsewhere, victim->jid, "mallory") : NULL;
	char *bundle = NULL, *list, *st = NULL, *wire = NULL, *from, *to;
	GString *g;

	if (!m)
		TAP_BAIL("cannot make mallory");
	list = g_strdup_printf("<list xmlns='eu.siacs.conversations.axolotl'><device id='%u'/>"
	                       "</list>",
	                       a->device_id);
	if (mend_account_devicelist_update(m->acc, ALICE, list) == MEND_OK &&
	    mend_account_bundle_xml(a->acc, &bundle) == MEND_OK &&
	    mend_account_bundle_process(m->acc, ALICE, a->device_id, bundle) == MEND_OK &&
	    mend_account_encrypt(m->acc, ALICE, body, NULL, &st) == MEND_OK) {
		/* the header as the server serialises it: sid="ID" */
		from = g_strdup_printf("sid=\"%u\"", m->device_id);
		to = g_strdup_printf("sid=\"%u\"", victim->device_id);
		wire = sim_stamp(s, st, victim, a, 0);
		g = g_string_new(wire);
		if (g_string_replace(g, from, to, 1) != 1)
			TAP_BAIL("no %s in %s", from, wire);
		g_free(wire);
		wire = g_string_free(g, FALSE);
		g_free(from);
		g_free(to);
	}
	fp_of(m, fp);
	mend_free(st);
	mend_free(bundle);
	g_free(list);
	sim_free(elsewhere);
	return wire;
}

static sim_dev *test_forged_change(sim *s, sim_dev *a)
{
	sim_dev *g = add(s, GRACE, "grace's phone");
	char fp[65], m1[65], m2[65], *w1, *w2, *st = NULL;
	mend_message *msg = NULL;
	int seen;

	talk(s, a, g, "hello grace");
	fp_of(g, fp);
	w1 = forge(s, a, g, "it is me, grace, with a new key", m1);
	w2 = forge(s, a, g, "no, this is my new key", m2);
	TAP_OK(w1 && w2, "mallory forges two messages naming grace's device id");
	seen = a->messages;
	TAP_EQ(mend_account_decrypt(a->acc, w1, &msg), MEND_ERR_KEY_CHANGED,
	       "the first is held: it decrypts only under mallory's key");
	shows(a, GRACE, g->device_id, MEND_TRUST_TOFU, fp, m1, 1, "after one forged key");
	TAP_EQ(mend_account_decrypt(a->acc, w2, &msg), MEND_ERR_KEY_CHANGED, "the second too");
	shows(a, GRACE, g->device_id, MEND_TRUST_TOFU, fp, m1, 2,
	      "the last arrival does not replace the key under review");
	TAP_EQ(a->messages, seen, "neither is shown");

	TAP_EQ(mend_account_encrypt(a->acc, GRACE, "to the real grace", NULL, &st), MEND_OK,
	       "alice still writes to grace");
	TAP_EQ(keys_for(st, g->device_id), 1, "grace's trusted key still gets it");
	TAP_EQ(deliver(s, st, a, g, "to the real grace"), MEND_OK, "and grace reads it");
	mend_free(st);
	TAP_EQ(mend_account_set_trust(a->acc, GRACE, g->device_id, MEND_TRUST_VERIFIED),
	       MEND_ERR_KEY_CHANGED, "trust without a fingerprint accepts nothing");
	TAP_EQ(mend_account_set_trust(a->acc, GRACE, g->device_id, MEND_TRUST_TOFU),
	       MEND_ERR_KEY_CHANGED, "not even on first use");
	shows(a, GRACE, g->device_id, MEND_TRUST_TOFU, fp, m1, 2, "nothing changed");

	TAP_EQ(mend_account_trust_key(a->acc, GRACE, g->device_id, m2), MEND_OK,
	       "alice accepts exactly the second key, naming it");
	shows(a, GRACE, g->device_id, MEND_TRUST_VERIFIED, m2, m1, 1,
	      "that key is trusted, the other still waits");
	TAP_EQ(a->messages, seen + 1, "the message that came with it is shown, and only it");
	TAP_OK(a->last_body && same(a->last_body, "no, this is my new key"), "decrypted");
	g_free(w1);
	g_free(w2);
	return g;
}

/* --- 4. manual trust for one contact ----------------------------------------------- */

static void test_manual(sim *s, sim_dev *a)
{
	sim_dev *d = add(s, DAVE, "dave's phone"), *e = add(s, ERIN, "erin's phone");
	mend_device_info i;
	char *st = NULL, fp[65];

	TAP_EQ(mend_account_set_policy(a->acc, DAVE, MEND_POLICY_MANUAL), MEND_OK,
	       "alice trusts dave's devices manually");
	TAP_EQ(mend_account_get_policy(a->acc, DAVE), MEND_POLICY_MANUAL, "dave: manual");
	TAP_EQ(mend_account_get_policy(a->acc, ERIN), MEND_POLICY_TOFU, "erin: still tofu");
	TAP_EQ(mend_account_get_policy(a->acc, NULL), MEND_POLICY_TOFU, "the account: tofu");
	TAP_EQ(sim_send(s, a, DAVE, "hello dave", &st), MEND_ERR_NONE_TRUSTED,
	       "nothing goes to dave while his device is undecided");
	TAP_OK(st == NULL, "and no stanza comes out");
	mend_free(st);
	st = NULL;
	i = info_of(a, DAVE, d->device_id);
	fp_of(d, fp);
	TAP_EQ(i.trust, MEND_TRUST_UNDECIDED, "dave's phone waits for alice");
	TAP_OK(same(i.fingerprint, fp), "with its fingerprint shown");
	talk(s, a, e, "hello erin");
	TAP_EQ(trust_of(a, ERIN, e->device_id), MEND_TRUST_TOFU,
	       "erin's phone: trusted on first use");
	TAP_EQ(mend_account_set_trust(a->acc, DAVE, d->device_id, MEND_TRUST_TOFU), MEND_OK,
	       "alice trusts dave's phone");
	talk(s, a, d, "hello dave");
}

/* --- 5. verification URIs --------------------------------------------------------- */

static int trust2(sim_dev *b, sim_dev *a1, sim_dev *a2, int want)
{
	int t1 = trust_of(b, a1->jid, a1->device_id), t2 = trust_of(b, a2->jid, a2->device_id);

	if (t1 != want || t2 != want)
		printf("#   trust %d and %d, want %d\n", t1, t2, want);
	return t1 == want && t2 == want;
}

static void test_bad_uris(sim_dev *b, sim_dev *a1, sim_dev *a2, const char *fp)
{
	char *bad[] = {
	    g_strdup_printf("alice@example.org?omemo-sid-%u=%s", a1->device_id, fp),
	    g_strdup_printf("xmpp:alice@example.org;omemo-sid-%u=%s", a1->device_id, fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-x%u=%s", a1->device_id, fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-=%s", fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-0=%s", fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-99999999999=%s", fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-%u=%.63s", a1->device_id, fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-%u=%s0", a1->device_id, fp),
	    g_strdup_printf("xmpp:alice@example.org?omemo-sid-%u=%.63sg", a1->device_id, fp),
	    g_strdup_printf("xmpp:?omemo-sid-%u=%s", a1->device_id, fp),
	    g_strdup("xmpp:alice@example.org?"),
	    g_strdup(""),
	};
	unsigned n;
	size_t k;
	int wrong = 0, r;

	for (k = 0; k < G_N_ELEMENTS(bad); k++) {
		n = 99;
		r = mend_account_verify_uri(b->acc, bad[k], &n);
		if (r != MEND_ERR_INVALID_ARG || n != 0) {
			printf("#   '%s': %d (%s), %u verified\n", bad[k], r, mend_strerror(r), n);
			wrong++;
		}
		g_free(bad[k]);
	}
	TAP_EQ(wrong, 0, "malformed URIs are invalid arguments");
	TAP_EQ(mend_account_verify_uri(b->acc, NULL, NULL), MEND_ERR_INVALID_ARG, "so is NULL");
	TAP_OK(trust2(b, a1, a2, MEND_TRUST_TOFU), "and they changed nothing");
}

static void test_uris(sim *s, sim_dev *a, sim_dev *b)
{
	sim_dev *a2 = add(s, ALICE, "alice's laptop");
	char fp1[65], fp2[65], *uri = NULL, *want, *bad, *conv, *up, *st = NULL;
	unsigned n = 99;
	uint32_t unknown = 1;

	fp_of(a, fp1);
	fp_of(a2, fp2);
	talk(s, a, b, "I have a laptop now");
	TAP_EQ(trust_of(a, ALICE, a2->device_id), MEND_TRUST_TOFU, "alice trusts her new laptop");
	TAP_EQ(mend_account_verification_uri(a->acc, &uri), MEND_OK, "alice's verification URI");
	want = g_strdup_printf("xmpp:%s?omemo-sid-%u=%s;omemo-sid-%u=%s", ALICE, a->device_id, fp1,
	                       a2->device_id, fp2);
	TAP_OK(uri && same(uri, want), "it names both her devices with their fingerprints");

	TAP_EQ(sim_send(s, b, ALICE, "hi both of you", &st), MEND_OK, "bob writes to alice");
	TAP_EQ(deliver(s, st, b, a2, "hi both of you"), MEND_OK, "alice's laptop reads it");
	mend_free(st);
	TAP_OK(trust2(b, a, a2, MEND_TRUST_TOFU),
	       "bob trusts both of alice's devices on first use");

	bad = g_strdup(uri);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
	TAP_EQ(mend_account_verify_uri(b->acc, bad, &n), MEND_ERR_VERIFY_MISMATCH,
	       "one hex digit changed: a mismatch");
	TAP_EQ(n, 0, "nothing verified");
	TAP_OK(trust2(b, a, a2, MEND_TRUST_TOFU), "not even the device that matched");
	test_bad_uris(b, a, a2, fp1);

	n = 99;
	TAP_EQ(mend_account_verify_uri(b->acc, uri, &n), MEND_OK, "bob verifies alice's URI");
	TAP_EQ(n, 2, "both devices verified");
	TAP_OK(trust2(b, a, a2, MEND_TRUST_VERIFIED), "both are VERIFIED");

	mend_account_set_trust(b->acc, ALICE, a->device_id, MEND_TRUST_TOFU);
	mend_account_set_trust(b->acc, ALICE, a2->device_id, MEND_TRUST_TOFU);
	TAP_OK(trust2(b, a, a2, MEND_TRUST_TOFU), "bob takes both back to tofu");
	up = g_ascii_strup(fp1, -1);
	conv = g_strdup_printf("xmpp:%s?omemo-sid-%u=%s;action=message", ALICE, a->device_id, up);
	n = 99;
	TAP_EQ(mend_account_verify_uri(b->acc, conv, &n), MEND_OK,
	       "a Conversations URI (upper-case hex, another parameter) verifies: %s", conv);
	TAP_EQ(n, 1, "one device verified");
	TAP_EQ(trust_of(b, ALICE, a->device_id), MEND_TRUST_VERIFIED, "the one it names");
	TAP_EQ(trust_of(b, ALICE, a2->device_id), MEND_TRUST_TOFU, "and not the other");
	g_free(conv);

	while (unknown == a->device_id || unknown == a2->device_id)
		unknown++;
	conv = g_strdup_printf("xmpp:%s?omemo-sid-%u=%s", ALICE, unknown, fp1);
	TAP_EQ(mend_account_verify_uri(b->acc, conv, &n), MEND_ERR_NOT_FOUND,
	       "a URI naming only an unknown device: not found");
	g_free(conv);
	conv = g_strdup_printf("xmpp:nobody@example.org?omemo-sid-%u=%s", a->device_id, fp1);
	TAP_EQ(mend_account_verify_uri(b->acc, conv, &n), MEND_ERR_NOT_FOUND,
	       "a URI of an unknown contact: not found");
	TAP_EQ(trust_of(b, ALICE, a2->device_id), MEND_TRUST_TOFU, "and nothing changed");
	g_free(conv);
	g_free(up);
	g_free(bad);
	g_free(want);
	mend_free(uri);
}

/* --- 3. blind trust before verification ------------------------------------------- */

static void test_btbv(sim *s, sim_dev *a)
{
	sim_dev *c1 = add(s, CAROL, "carol's phone"), *c2;
	char *st = NULL;

	TAP_EQ(mend_account_set_policy(a->acc, NULL, MEND_POLICY_BTBV), MEND_OK,
	       "alice switches her account to btbv");
	TAP_EQ(mend_account_get_policy(a->acc, CAROL), MEND_POLICY_BTBV, "carol: btbv");
	TAP_EQ(mend_account_get_policy(a->acc, DAVE), MEND_POLICY_MANUAL, "dave keeps manual");
	talk(s, a, c1, "hello carol");
	TAP_EQ(trust_of(a, CAROL, c1->device_id), MEND_TRUST_BLIND,
	       "carol's first device is trusted blindly");
	TAP_EQ(mend_account_set_trust(a->acc, CAROL, c1->device_id, MEND_TRUST_VERIFIED), MEND_OK,
	       "alice verifies carol's phone");

	c2 = add(s, CAROL, "carol's laptop");
	TAP_EQ(sim_send(s, a, CAROL, "only for the verified one", &st), MEND_OK,
	       "alice writes to carol");
	TAP_EQ(trust_of(a, CAROL, c2->device_id), MEND_TRUST_UNDECIDED,
	       "after a verification a new device waits for alice");
	TAP_EQ(keys_for(st, c1->device_id), 1, "the verified phone gets it");
	TAP_EQ(keys_for(st, c2->device_id), 0, "the undecided laptop does not");
	TAP_EQ(deliver(s, st, a, c1, "only for the verified one"), MEND_OK, "the phone reads it");
	TAP_EQ(deliver(s, st, a, c2, NULL), MEND_ERR_NOT_FOR_THIS_DEVICE, "the laptop cannot");
	mend_free(st);
	TAP_EQ(mend_account_set_trust(a->acc, CAROL, c2->device_id, MEND_TRUST_TOFU), MEND_OK,
	       "alice trusts carol's laptop");
	talk(s, a, c2, "now for the laptop too");
}

/* --- 6. a restart -------------------------------------------------------------------- */

/* All `d` knows of the devices of `jid`: id, trust, fingerprint, new fingerprint. */
static char *snapshot(sim_dev *d, const char *jid)
{
	GString *s = g_string_new(jid);
	mend_device_info *all = NULL;
	size_t n = 0, i;

	if (mend_account_device_infos(d->acc, jid, &all, &n) < 0)
		g_string_append(s, " (error)");
	for (i = 0; i < n; i++)
		g_string_append_printf(s, " %u:%d:%s:%s", all[i].id, all[i].trust,
		                       all[i].fingerprint, all[i].new_fingerprint);
	mend_free(all);
	return g_string_free(s, FALSE);
}

static void test_restart(sim *s, sim_dev *a, sim_dev *f)
{
	static const char *const jids[] = {ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE};
	char *before[G_N_ELEMENTS(jids)], *after, *st = NULL, *uri = NULL, *old;
	char fp[65];
	size_t k;
	unsigned n = 0;

	for (k = 0; k < G_N_ELEMENTS(jids); k++)
		before[k] = snapshot(a, jids[k]);
	TAP_EQ(sim_close(a), MEND_OK, "alice quits");
	TAP_EQ(sim_open(a), MEND_OK, "and comes back");
	TAP_EQ(mend_account_get_policy(a->acc, NULL), MEND_POLICY_BTBV, "account: still btbv");
	TAP_EQ(mend_account_get_policy(a->acc, DAVE), MEND_POLICY_MANUAL, "dave: still manual");
	TAP_EQ(mend_account_get_policy(a->acc, ERIN), MEND_POLICY_BTBV, "erin: the account's");
	for (k = 0; k < G_N_ELEMENTS(jids); k++) {
		after = snapshot(a, jids[k]);
		TAP_OK(same(after, before[k]), "every trust state of %s is kept", jids[k]);
		g_free(after);
		g_free(before[k]);
	}
	fp_of(f, fp);
	TAP_OK(same(info_of(a, FRANK, f->device_id).new_fingerprint, fp),
	       "frank's new key still waits beside the old one");
	TAP_EQ(mend_account_encrypt(a->acc, FRANK, "x", NULL, &st), MEND_OK,
	       "and his old key still gets messages");
	mend_free(st);

	/* frank shows alice his new key: the URI accepts it */
	old = g_strdup_printf("xmpp:%s?omemo-sid-%u=%s", FRANK, f->device_id,
	                      info_of(a, FRANK, f->device_id).fingerprint);
	TAP_EQ(mend_account_verify_uri(a->acc, old, &n), MEND_OK,
	       "a URI with the old key verifies the old key");
	TAP_OK(same(info_of(a, FRANK, f->device_id).new_fingerprint, fp),
	       "and leaves the new one waiting");
	TAP_EQ(mend_account_verification_uri(f->acc, &uri), MEND_OK, "frank's URI");
	TAP_EQ(mend_account_verify_uri(a->acc, uri, &n), MEND_OK, "alice verifies it");
	TAP_EQ(n, 1, "one device verified");
	TAP_EQ(trust_of(a, FRANK, f->device_id), MEND_TRUST_VERIFIED, "frank's new key: VERIFIED");
	TAP_OK(same(info_of(a, FRANK, f->device_id).fingerprint, fp), "with his new fingerprint");
	TAP_EQ(give_bundle(a, f), MEND_OK, "frank's new bundle is accepted");
	talk(s, a, f, "hello again frank");
	mend_free(uri);
	g_free(old);
}

/* The text of <identityKey> in a bundle (g_free), or NULL. */
static char *identity_of(const char *bundle)
{
	const char *a = bundle ? strstr(bundle, "<identityKey") : NULL;
	const char *b = a ? strchr(a, '>') : NULL, *e = b ? strstr(b, "</identityKey>") : NULL;

	return e ? g_strndup(b + 1, (gsize)(e - b - 1)) : NULL;
}

/*
 * A bundle that names grace's device under another identity key whose
 * signature does not hold under that key proves nothing: no candidate.
 */
static void test_unproven_key(sim_dev *a, sim_dev *g)
{
	sim *elsewhere = sim_new();
	sim_dev *m = elsewhere ? sim_add(elsewhere, GRACE, "m") : NULL;
	char *real = NULL, *other = NULL, *gk, *mk;
	unsigned before;
	GString *forged;

	if (!g || !m)
		TAP_BAIL("no grace or no mallory");
	before = info_of(a, GRACE, g->device_id).n_new_keys;
	mend_account_bundle_xml(g->acc, &real);
	mend_account_bundle_xml(m->acc, &other);
	gk = identity_of(real);
	mk = identity_of(other);
	forged = g_string_new(real);
	TAP_OK(gk && mk && g_string_replace(forged, gk, mk, 1) == 1,
	       "grace's bundle with mallory's identity key in it");
	TAP_EQ(mend_account_bundle_process(a->acc, GRACE, g->device_id, forged->str),
	       MEND_ERR_UNTRUSTED, "alice does not take it");
	TAP_EQ(info_of(a, GRACE, g->device_id).n_new_keys, before,
	       "and keeps no candidate: its signature does not hold under that key");
	g_string_free(forged, TRUE);
	g_free(gk);
	g_free(mk);
	mend_free(real);
	mend_free(other);
	sim_free(elsewhere);
}

/* --- 8. an edited store fails closed ------------------------------------------------ */

static int sql_on(sim_dev *d, const char *sql)
{
	char *path = g_build_filename(d->dir, "omemo.sqlite", NULL);
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	g_free(path);
	return rc;
}

/* Henry's device: a trust row copied from a verified device, or deleted, is no trust. */
static void test_tampered(sim *s, sim_dev *a, sim_dev *b1)
{
	sim_dev *h = add(s, HENRY, "henry's phone");
	char *st = NULL, *sql;

	talk(s, a, h, "hello henry");
	TAP_EQ(mend_account_set_trust(a->acc, HENRY, h->device_id, MEND_TRUST_UNTRUSTED), MEND_OK,
	       "alice untrusts henry's phone");
	sql = g_strdup_printf("UPDATE peer_identities SET key = (SELECT key FROM peer_identities"
	                      " WHERE jid = '%s' AND device = %u) WHERE jid = '%s'",
	                      BOB, b1->device_id, HENRY);
	TAP_EQ(sql_on(a, sql), SQLITE_OK, "bob's trusted row is copied over henry's");
	g_free(sql);
	TAP_EQ(trust_of(a, HENRY, h->device_id), -1, "it does not open: no trust");
	TAP_EQ(mend_account_encrypt(a->acc, HENRY, "x", NULL, &st), MEND_ERR_NONE_TRUSTED,
	       "nothing is encrypted to henry's session");
	mend_free(st);
	st = NULL;
	sql = g_strdup_printf("DELETE FROM peer_identities WHERE jid = '%s'", HENRY);
	TAP_EQ(sql_on(a, sql), SQLITE_OK, "henry's row is deleted");
	g_free(sql);
	TAP_EQ(mend_account_encrypt(a->acc, HENRY, "x", NULL, &st), MEND_ERR_NONE_TRUSTED,
	       "a missing trust row is no trust either");
	mend_free(st);

	TAP_EQ(sql_on(a, "DELETE FROM meta WHERE key = 'sealed:policy:dave@example.org';"
	                 "INSERT INTO meta (key, value) SELECT 'sealed:policy:dave@example.org',"
	                 " value FROM meta WHERE key = 'sealed:policy'"),
	       SQLITE_OK, "the account's policy is copied onto dave's");
	TAP_EQ(mend_account_get_policy(a->acc, DAVE), MEND_POLICY_MANUAL,
	       "it does not open there: manual");
	TAP_EQ(sql_on(a, "DELETE FROM meta WHERE key = 'sealed:policy'"), SQLITE_OK,
	       "the account's policy is deleted");
	TAP_EQ(mend_account_get_policy(a->acc, NULL), MEND_POLICY_MANUAL,
	       "a missing account policy is manual, not trust on first use");
	TAP_EQ(mend_account_get_policy(a->acc, ERIN), MEND_POLICY_MANUAL, "for erin too");
}

int main(void)
{
	sim *s = sim_new();
	sim_dev *a, *b1, *b2, *f;

	if (!s)
		TAP_BAIL("no temp dir");
	xctx = xmpp_ctx_new(NULL, NULL);
	a = add(s, ALICE, "alice's phone");
	b1 = add(s, BOB, "bob's phone");
	b2 = test_tofu(s, a, b1);
	test_key_change(s, a, b1, b2);
	f = test_only_device_changed(s, a);
	test_unproven_key(a, test_forged_change(s, a));
	test_manual(s, a);
	test_uris(s, a, b1);
	test_btbv(s, a);
	test_restart(s, a, f);
	test_tampered(s, a, b1);
	sim_free(s);
	xmpp_ctx_free(xctx);
	return tap_done();
}
