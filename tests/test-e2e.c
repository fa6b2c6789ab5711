/*
 * test-e2e.c - three devices in one process (alice's phone and laptop, bob's
 * phone) exchange 1,000 messages in random directions. Every message goes to
 * every other device (the peer's and the sender's own other device, as
 * carbons would). The "network" reorders deliveries within a small window,
 * drops 5% and duplicates 5%; now and then a device's store is closed and
 * reopened mid-conversation. Every delivered message must decrypt exactly
 * once to its text, every duplicate must be reported as a duplicate, and
 * nothing else may happen.
 *
 * MEND_TEST_SEED=N reruns with another seed (the seed is printed).
 */
#include "config.h"

#include <string.h>
#include "sim.h"
#include "tap.h"

#define N_MESSAGES   1000
#define WINDOW       4 /* deliveries are picked at random among the oldest WINDOW */
#define MAX_AGE      6 /* ... and none waits more than MAX_AGE steps */
#define REOPEN_EVERY 97

typedef struct delivery {
	int msg;
	int step;
	sim_dev *to;
	char *stanza;
} delivery;

typedef struct world {
	sim *s;
	sim_dev *dev[3];
	GRand *rng;
	GPtrArray *pending; /* of delivery*, oldest first */
	char *bodies[N_MESSAGES];
	sim_dev *senders[N_MESSAGES];
	int copies[N_MESSAGES][3]; /* deliveries put on the wire per (message, device) */
	int decrypted[N_MESSAGES][3];
	int n_sent, n_dropped, n_duplicated, n_delivered, n_dup_reported, n_reopened, n_errors;
	int n_prekey;
} world;

static int dev_index(world *w, sim_dev *d)
{
	int i;

	for (i = 0; i < 3; i++)
		if (w->dev[i] == d)
			return i;
	return -1;
}

static void enqueue(world *w, int msg, sim_dev *to, const char *stanza, int step)
{
	delivery *dl = g_new0(delivery, 1);

	dl->msg = msg;
	dl->to = to;
	dl->step = step;
	dl->stanza = g_strdup(stanza);
	g_ptr_array_add(w->pending, dl);
	w->copies[msg][dev_index(w, to)]++;
}

static int send_one(world *w, int step)
{
	sim_dev *from = w->dev[g_rand_int_range(w->rng, 0, 3)];
	const char *to =
	    g_str_equal(from->jid, "alice@example.org") ? "bob@example.org" : "alice@example.org";
	int msg = w->n_sent, i, r;
	char *stanza = NULL;

	w->bodies[msg] = g_strdup_printf("message %d from %s: %s", msg, from->name,
	                                 msg % 7 ? "hello" : "grüße, 你好 ✓");
	w->senders[msg] = from;
	r = sim_send(w->s, from, to, w->bodies[msg], &stanza);
	if (r < 0) {
		printf("# step %d: %s could not encrypt message %d: %s\n", step, from->name, msg,
		       mend_strerror(r));
		return r;
	}
	w->n_sent++;
	for (i = 0; i < 3; i++) {
		sim_dev *rc = w->dev[i];
		char *wire;

		if (rc == from)
			continue;
		if (g_rand_int_range(w->rng, 0, 100) < 5) {
			w->n_dropped++;
			continue;
		}
		wire = sim_stamp(w->s, stanza, from, rc, 0);
		enqueue(w, msg, rc, wire, step);
		if (g_rand_int_range(w->rng, 0, 100) < 5) {
			w->n_duplicated++;
			enqueue(w, msg, rc, wire, step);
		}
		g_free(wire);
	}
	mend_free(stanza);
	return MEND_OK;
}

static void check_decrypted(world *w, delivery *dl, mend_message *m, int di)
{
	int ok = m->body && g_str_equal(m->body, w->bodies[dl->msg]) &&
	         g_str_equal(m->from, w->senders[dl->msg]->jid) &&
	         m->device == w->senders[dl->msg]->device_id;

	if (!ok) {
		printf("# message %d at %s decrypted to the wrong thing: '%s' from %s/%u\n",
		       dl->msg, dl->to->name, m->body ? m->body : "(null)", m->from, m->device);
		w->n_errors++;
	}
	if (++w->decrypted[dl->msg][di] > 1) {
		printf("# message %d decrypted twice at %s\n", dl->msg, dl->to->name);
		w->n_errors++;
	}
	w->n_prekey += m->prekey;
}

static void deliver(world *w, guint idx, int step)
{
	delivery *dl = g_ptr_array_steal_index(w->pending, idx);
	int di = dev_index(w, dl->to), r;
	mend_message *m = NULL;

	r = mend_account_decrypt(dl->to->acc, dl->stanza, &m);
	w->n_delivered++;
	if (r == MEND_OK) {
		check_decrypted(w, dl, m, di);
	} else if (r == MEND_ERR_DUPLICATE && w->decrypted[dl->msg][di] == 1) {
		w->n_dup_reported++;
	} else {
		printf("# step %d: message %d (sent step %d) at %s: %s (%d)\n", step, dl->msg,
		       dl->step, dl->to->name, mend_strerror(r), r);
		w->n_errors++;
	}
	mend_message_free(m);
	g_free(dl->stanza);
	g_free(dl);
}

static void deliver_next(world *w, int step)
{
	guint i, span = MIN(w->pending->len, WINDOW);

	for (i = 0; i < w->pending->len; i++) {
		delivery *dl = g_ptr_array_index(w->pending, i);

		if (step - dl->step >= MAX_AGE) {
			deliver(w, i, step);
			return;
		}
	}
	deliver(w, (guint)g_rand_int_range(w->rng, 0, (gint32)span), step);
}

static void reopen_one(world *w)
{
	sim_dev *d = w->dev[g_rand_int_range(w->rng, 0, 3)];
	int r;

	sim_close(d);
	r = sim_open(d);
	if (r < 0) {
		printf("# reopening %s failed: %s\n", d->name, mend_strerror(r));
		w->n_errors++;
	}
	w->n_reopened++;
}

static void run(world *w)
{
	int step = 0;

	while ((w->n_sent < N_MESSAGES || w->pending->len) && w->n_errors < 20) {
		step++;
		if (step % REOPEN_EVERY == 0)
			reopen_one(w);
		if (w->n_sent < N_MESSAGES &&
		    (w->pending->len < WINDOW || g_rand_boolean(w->rng))) {
			if (send_one(w, step) < 0)
				w->n_errors++;
		} else if (w->pending->len) {
			deliver_next(w, step);
		}
	}
}

static void report(world *w)
{
	int expected_ok = 0, decrypted = 0, dups = 0, i, j;

	for (i = 0; i < w->n_sent; i++)
		for (j = 0; j < 3; j++) {
			expected_ok += w->copies[i][j] > 0;
			dups += w->copies[i][j] > 1 ? w->copies[i][j] - 1 : 0;
			decrypted += w->decrypted[i][j];
		}
	printf("# sent %d, deliveries %d, dropped %d, duplicated %d, reopened %d, prekey %d\n",
	       w->n_sent, w->n_delivered, w->n_dropped, w->n_duplicated, w->n_reopened,
	       w->n_prekey);
	TAP_EQ(w->n_sent, N_MESSAGES, "all %d messages were encrypted", N_MESSAGES);
	TAP_EQ(w->n_errors, 0, "no delivery failed or decrypted wrongly");
	TAP_EQ(decrypted, expected_ok, "every delivered message decrypted exactly once");
	TAP_EQ(w->n_dup_reported, dups, "every duplicate was reported as a duplicate");
	TAP_OK(w->n_dropped > 0 && w->n_duplicated > 0 && w->n_reopened > 0,
	       "the run really dropped, duplicated and reopened");
}

/* The one-time prekey ids in a bundle, as a set. */
static GHashTable *prekey_ids(const char *bundle)
{
	GHashTable *ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GRegex *re = g_regex_new("preKeyId=[\"']([0-9]+)[\"']", 0, 0, NULL);
	GMatchInfo *mi = NULL;

	g_regex_match(re, bundle ? bundle : "", 0, &mi);
	while (g_match_info_matches(mi)) {
		g_hash_table_add(ids, g_match_info_fetch(mi, 1));
		g_match_info_next(mi, NULL);
	}
	g_match_info_free(mi);
	g_regex_unref(re);
	return ids;
}

/*
 * Two senders building on the same one-time prekey of a device before it read
 * either message is a race XEP-0384 v0.3 §5 lets the later one lose (outside
 * catch-up the key is gone at once; test-account covers it). It happened in
 * about one run of 40, so the world hands out disjoint prekeys: checked here.
 */
static void check_disjoint_prekeys(world *w)
{
	int owner, a, shared = 0, offered = 1;

	for (owner = 0; owner < 3; owner++) {
		sim_dev *f[2] = {w->dev[(owner + 1) % 3], w->dev[(owner + 2) % 3]};
		char *b[2] = {sim_bundle_for(w->s, f[0], w->dev[owner]),
		              sim_bundle_for(w->s, f[1], w->dev[owner])};
		GHashTable *ids[2] = {prekey_ids(b[0]), prekey_ids(b[1])};
		GHashTableIter it;
		gpointer id;

		for (a = 0; a < 2; a++)
			offered = offered && g_hash_table_size(ids[a]) > 0;
		g_hash_table_iter_init(&it, ids[0]);
		while (g_hash_table_iter_next(&it, &id, NULL))
			shared += g_hash_table_contains(ids[1], id);
		for (a = 0; a < 2; a++) {
			g_hash_table_destroy(ids[a]);
			g_free(b[a]);
		}
	}
	TAP_OK(offered && shared == 0,
	       "two senders are never offered the same one-time prekey (%d shared)", shared);
}

static void setup(world *w)
{
	w->dev[0] = sim_add(w->s, "alice@example.org", "alice's phone");
	w->dev[1] = sim_add(w->s, "alice@example.org", "alice's laptop");
	w->dev[2] = sim_add(w->s, "bob@example.org", "bob's phone");
	if (!w->dev[0] || !w->dev[1] || !w->dev[2])
		TAP_BAIL("cannot open the three devices");
	if (sim_publish_all(w->s) < 0)
		TAP_BAIL("cannot exchange device lists");
	check_disjoint_prekeys(w);
}

int main(void)
{
	const char *env = g_getenv("MEND_TEST_SEED");
	guint32 seed = env ? (guint32)g_ascii_strtoull(env, NULL, 10) : 20261121;
	world *w = g_new0(world, 1);
	int i;

	printf("# seed %u (rerun with MEND_TEST_SEED=%u)\n", seed, seed);
	w->s = sim_new();
	if (!w->s)
		TAP_BAIL("no temp dir");
	w->s->disjoint_prekeys = 1;
	w->rng = g_rand_new_with_seed(seed);
	w->pending = g_ptr_array_new();
	setup(w);
	run(w);
	report(w);
	for (i = 0; i < N_MESSAGES; i++)
		g_free(w->bodies[i]);
	for (i = 0; i < (int)w->pending->len; i++) {
		delivery *dl = g_ptr_array_index(w->pending, i);

		g_free(dl->stanza);
		g_free(dl);
	}
	g_ptr_array_free(w->pending, TRUE);
	g_rand_free(w->rng);
	sim_free(w->s);
	g_free(w);
	return tap_done();
}
