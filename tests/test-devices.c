/*
 * test-devices.c - what alice hears about bob's devices, in one process:
 *
 *  1. a device bob adds after they started talking is announced once in
 *     bob's chat, when its key is known, with its fingerprint and "it now gets
 *     your messages" (tofu); never for the devices alice first meets bob
 *     with, not twice, not again after a restart;
 *  2. under the manual policy the line says it gets nothing until trusted;
 *  3. a new device that writes first is announced when its message arrives;
 *  4. a device silent for MEND_STALE_DAYS is inactive: listed so, skipped
 *     while bob has another device to encrypt to, all of them get it when
 *     none is active, and trusting it again includes it. (The core's clock is
 *     moved with mend_account_set_clock; that a device comes back when it
 *     sends again is shown over Prosody in tests/e2e/test_devices.py.)
 */
#include "config.h"

#include <string.h>
#include "internal.h"
#include "sim.h"
#include "tap.h"

#define ALICE "alice@example.org"
#define BOB   "bob@example.org"
#define CAROL "carol@example.org"

#define DAY ((int64_t)24 * 60 * 60)

/* The test's clock: the real time moved by *offset seconds. */
static int64_t moved_clock(void *offset)
{
	return g_get_real_time() / G_USEC_PER_SEC + *(int64_t *)offset;
}

static sim_dev *add(sim *s, const char *jid, const char *name)
{
	sim_dev *d = sim_add(s, jid, name);

	if (!d || sim_publish_all(s) < 0)
		TAP_BAIL("cannot add %s", name);
	return d;
}

static guint n_notes(const sim_dev *d)
{
	return d->notes ? d->notes->len : 0;
}

static const char *last_note(const sim_dev *d)
{
	return n_notes(d) ? g_ptr_array_index(d->notes, d->notes->len - 1) : "";
}

/* Whether the last notice of `a` announces device `d` with its fingerprint and `state`. */
static int announces(const sim_dev *a, const sim_dev *d, const char *state)
{
	char fp[65] = "", *grouped, *want;
	int ok;

	mend_account_fingerprint(d->acc, fp);
	grouped = mend_fingerprint_grouped(fp);
	want = g_strdup_printf("%s: %s has a new device %u (fingerprint %s); %s", d->jid, d->jid,
	                       d->device_id, grouped, state);
	ok = g_str_equal(last_note(a), want);
	if (!ok)
		printf("#   got  '%s'\n#   want '%s'\n", last_note(a), want);
	g_free(want);
	mend_free(grouped);
	return ok;
}

/* Encrypts body from `from` to `jid`, fetching bundles as needed. mend_free the result. */
static char *encrypt_to(sim *s, sim_dev *from, const char *jid, const char *body, int want)
{
	char *st = NULL;

	TAP_EQ(sim_send(s, from, jid, body, &st), want, "%s encrypts '%s' for %s", from->name, body,
	       jid);
	return st;
}

/* What `to` makes of a stanza `from` sent: MEND_OK when it reads `body`. */
static int reads(sim *s, const char *stanza, sim_dev *from, sim_dev *to, const char *body)
{
	char *wire = stanza ? sim_stamp(s, stanza, from, to, 0) : NULL;
	mend_message *m = NULL;
	int r = wire ? mend_account_decrypt(to->acc, wire, &m) : -1000;

	if (r == MEND_OK && (!m->body || !g_str_equal(m->body, body)))
		r = -1001;
	mend_message_free(m);
	g_free(wire);
	return r;
}

static mend_device_info info_of(sim_dev *a, const char *jid, uint32_t id)
{
	mend_device_info *all = NULL, found = {.trust = -2};
	size_t n = 0, i;

	if (mend_account_device_infos(a->acc, jid, &all, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			if (all[i].id == id)
				found = all[i];
	mend_free(all);
	return found;
}

/* --- 1. a new device under tofu ------------------------------------------------- */

static sim_dev *test_new_device(sim *s, sim_dev *a, sim_dev *b1)
{
	sim_dev *b2;
	char *st;

	st = encrypt_to(s, a, BOB, "hello bob", MEND_OK);
	TAP_EQ(reads(s, st, a, b1, "hello bob"), MEND_OK, "bob's phone reads alice");
	mend_free(st);
	TAP_EQ(n_notes(a), 0, "no line for the device alice first meets bob with");

	b2 = add(s, BOB, "bob's tablet");
	TAP_EQ(n_notes(a), 0, "the new device is not announced before its key is known");
	TAP_EQ(sim_fetch_bundles(s, a, BOB), MEND_OK, "alice fetches the tablet's bundle");
	TAP_EQ(n_notes(a), 1, "then it is announced, once");
	TAP_OK(announces(a, b2, "it now gets your messages."),
	       "in bob's chat, with its fingerprint; tofu: it gets alice's messages");

	st = encrypt_to(s, a, BOB, "to both", MEND_OK);
	TAP_EQ(reads(s, st, a, b2, "to both"), MEND_OK, "the tablet reads alice's next message");
	TAP_EQ(reads(s, st, a, b1, "to both"), MEND_OK, "and so does the phone");
	mend_free(st);

	TAP_EQ(sim_publish_all(s), MEND_OK, "the same device list comes again");
	TAP_EQ(sim_fetch_bundles(s, a, BOB), MEND_OK, "nothing more to fetch");
	sim_close(a);
	TAP_EQ(sim_open(a), MEND_OK, "alice restarts");
	TAP_EQ(sim_publish_all(s), MEND_OK, "and hears bob's list again");
	TAP_EQ(n_notes(a), 1, "the tablet is not announced twice, not after a restart");
	return b2;
}

/* --- 2. manual trust ------------------------------------------------------------- */

static void test_manual(sim *s, sim_dev *a)
{
	sim_dev *c1 = add(s, CAROL, "carol's phone"), *c2;
	char *st;

	TAP_EQ(mend_account_set_policy(a->acc, CAROL, MEND_POLICY_MANUAL), MEND_OK,
	       "alice trusts carol's devices manually");
	st = encrypt_to(s, a, CAROL, "hello carol", MEND_ERR_NONE_TRUSTED);
	mend_free(st);
	TAP_EQ(mend_account_set_trust(a->acc, CAROL, c1->device_id, MEND_TRUST_VERIFIED), MEND_OK,
	       "alice verifies carol's phone");
	st = encrypt_to(s, a, CAROL, "hello carol", MEND_OK);
	TAP_EQ(reads(s, st, a, c1, "hello carol"), MEND_OK, "carol's phone reads it");
	mend_free(st);

	c2 = add(s, CAROL, "carol's laptop");
	TAP_EQ(sim_fetch_bundles(s, a, CAROL), MEND_OK, "alice fetches the laptop's bundle");
	TAP_OK(announces(a, c2, "it gets nothing until you trust it."),
	       "manual: the new device gets nothing until alice trusts it");
	st = encrypt_to(s, a, CAROL, "not for the laptop", MEND_OK);
	TAP_EQ(reads(s, st, a, c2, "not for the laptop"), MEND_ERR_NOT_FOR_THIS_DEVICE,
	       "and indeed it does not");
	mend_free(st);
}

/* --- 3. a new device that writes first ----------------------------------------------- */

static sim_dev *test_writes_first(sim *s, sim_dev *a)
{
	sim_dev *b3 = add(s, BOB, "bob's laptop");
	guint before = n_notes(a);
	char *st;

	st = encrypt_to(s, b3, ALICE, "hi from my laptop", MEND_OK);
	TAP_EQ(reads(s, st, b3, a, "hi from my laptop"), MEND_OK, "alice reads bob's laptop");
	mend_free(st);
	TAP_EQ(n_notes(a), before + 1, "its first message announces it");
	TAP_OK(announces(a, b3, "it now gets your messages."), "with its fingerprint");
	TAP_EQ(sim_fetch_bundles(s, a, BOB), MEND_OK, "nothing left to fetch");
	TAP_EQ(n_notes(a), before + 1, "and only once");
	return b3;
}

/* --- 4. inactive devices ------------------------------------------------------------ */

static void test_stale(sim *s, sim_dev *a, sim_dev *b1, sim_dev *b2, sim_dev *b3)
{
	int64_t offset = 0;
	mend_device_info i;
	char *st;

	mend_account_set_clock(a->acc, moved_clock, &offset);
	i = info_of(a, BOB, b1->device_id);
	TAP_OK(i.active && !i.stale, "bob's phone is active today");
	offset = (MEND_STALE_DAYS - 1) * DAY;
	TAP_OK(!info_of(a, BOB, b1->device_id).stale, "and still after %d days of silence",
	       MEND_STALE_DAYS - 1);
	offset = (MEND_STALE_DAYS + 1) * DAY;
	i = info_of(a, BOB, b1->device_id);
	TAP_OK(i.active && i.stale, "after %d days it is inactive (still listed)",
	       MEND_STALE_DAYS + 1);
	TAP_OK(!info_of(a, ALICE, mend_account_device_id(a->acc)).stale,
	       "alice's own device never is");

	st = encrypt_to(s, a, BOB, "anyone there?", MEND_OK);
	TAP_EQ(reads(s, st, a, b1, "anyone there?"), MEND_OK,
	       "when every device of bob is inactive, they all get it");
	TAP_EQ(reads(s, st, a, b2, "anyone there?"), MEND_OK, "the tablet too");
	mend_free(st);

	TAP_EQ(mend_account_set_trust(a->acc, BOB, b3->device_id, MEND_TRUST_VERIFIED), MEND_OK,
	       "alice trusts bob's laptop again");
	TAP_OK(!info_of(a, BOB, b3->device_id).stale, "which makes it active");
	st = encrypt_to(s, a, BOB, "laptop only", MEND_OK);
	TAP_EQ(reads(s, st, a, b3, "laptop only"), MEND_OK, "the laptop reads the next message");
	TAP_EQ(reads(s, st, a, b1, "laptop only"), MEND_ERR_NOT_FOR_THIS_DEVICE,
	       "the inactive phone is skipped");
	TAP_OK(a->acc->skipped && a->acc->skipped->len == 2, "and named with the tablet (%u)",
	       a->acc->skipped ? a->acc->skipped->len : 0);
	mend_free(st);
	mend_account_set_clock(a->acc, NULL, NULL);
}

/* The versions a device's lists name, in words as the hosts show them. */
static void test_versions_name(void)
{
	unsigned v2 = 1u << (MEND_OMEMO_2 - 1), legacy = 1u << (MEND_OMEMO_LEGACY - 1);

	TAP_OK(g_strcmp0(mend_versions_name(v2 | legacy), "2, 0.3") == 0, "both versions: 2, 0.3");
	TAP_OK(g_strcmp0(mend_versions_name(v2), "2") == 0, "OMEMO:2 alone: 2");
	TAP_OK(g_strcmp0(mend_versions_name(legacy), "0.3") == 0, "legacy alone: 0.3");
	TAP_OK(mend_versions_name(0) == NULL, "none known: NULL");
}

int main(void)
{
	sim *s = sim_new();
	sim_dev *a, *b1, *b2, *b3;

	if (!s)
		TAP_BAIL("no sim");
	a = add(s, ALICE, "alice");
	b1 = add(s, BOB, "bob's phone");
	b2 = test_new_device(s, a, b1);
	test_manual(s, a);
	b3 = test_writes_first(s, a);
	test_stale(s, a, b1, b2, b3);
	test_versions_name();
	sim_free(s);
	return tap_done();
}
