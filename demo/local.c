/*
 * local.c - the in-process demo: alice on two devices (phone, laptop) and
 * bob on one exchange OMEMO messages through an in-memory "server"; then bob
 * goes offline, alice sends, and bob catches up. Every step is printed.
 * (The demo over a real Prosody replaces this once the mend client exists.)
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include "sim.h"

static int failures;

static void show_device(sim_dev *d)
{
	char fp[65];
	int i;

	mend_account_fingerprint(d->acc, fp);
	printf("  %-15s %-18s device %10u  fingerprint ", d->name, d->jid, d->device_id);
	for (i = 0; i < 64; i += 8)
		printf("%.8s%s", fp + i, i < 56 ? " " : "\n");
}

static void receive(sim *s, sim_dev *from, sim_dev *to, const char *stanza, const char *how)
{
	char *wire = sim_stamp(s, stanza, from, to, 1);
	mend_message *m = NULL;
	int r = mend_account_decrypt(to->acc, wire, &m);

	if (r == MEND_OK)
		printf("    %-15s <- %s (device %u%s%s): \"%s\"\n", to->name, m->from, m->device,
		       m->prekey ? ", new session" : "", how, m->body);
	else {
		printf("    %-15s !! %s\n", to->name, mend_strerror(r));
		failures++;
	}
	mend_message_free(m);
	g_free(wire);
}

static char *send(sim *s, sim_dev *from, const char *to, const char *body)
{
	char *stanza = NULL;
	int r = sim_send(s, from, to, body, &stanza);

	if (r < 0) {
		printf("  %s cannot send: %s\n", from->name, mend_strerror(r));
		failures++;
		return NULL;
	}
	printf("  %s -> %s: \"%s\"  (%zu bytes of OMEMO on the wire)\n", from->name, to, body,
	       strlen(stanza));
	return stanza;
}

/* alice's device sends to bob: bob gets it, her other device gets a carbon. */
static void alice_says(sim *s, sim_dev *from, sim_dev *other, sim_dev *bob, const char *body)
{
	char *st = send(s, from, bob->jid, body);

	if (!st)
		return;
	if (bob->acc)
		receive(s, from, bob, st, "");
	receive(s, from, other, st, ", sent carbon");
	mend_free(st);
}

int main(void)
{
	sim *s = sim_new();
	sim_dev *phone, *laptop, *bob;
	char *queued[3];
	int i;

	if (!s)
		return 1;
	phone = sim_add(s, "alice@example.org", "alice's phone");
	laptop = sim_add(s, "alice@example.org", "alice's laptop");
	bob = sim_add(s, "bob@example.org", "bob's phone");
	if (!phone || !laptop || !bob)
		return 1;
	sim_publish_all(s);
	printf("Three devices, each with its own identity key:\n");
	show_device(phone);
	show_device(laptop);
	show_device(bob);

	printf(
	    "\nalice's phone writes to bob; her laptop sees it too (encrypted for it as well):\n");
	alice_says(s, phone, laptop, bob, "Hi Bob, this is end-to-end encrypted.");
	printf("\nbob answers; both of alice's devices can read it:\n");
	{
		char *st =
		    send(s, bob, "alice@example.org", "Hi Alice! Both your devices get this.");

		receive(s, bob, phone, st, "");
		receive(s, bob, laptop, st, "");
		mend_free(st);
	}
	printf("\nbob goes offline; alice writes from her laptop:\n");
	sim_close(bob);
	for (i = 0; i < 3; i++) {
		char body[64];

		g_snprintf(body, sizeof(body), "Message %d while you were away.", i + 1);
		queued[i] = send(s, laptop, "bob@example.org", body);
		if (queued[i])
			receive(s, laptop, phone, queued[i], ", sent carbon");
	}
	printf("\nbob comes back and catches up on what the server kept for him:\n");
	sim_open(bob);
	mend_account_catchup_begin(bob->acc);
	for (i = 0; i < 3; i++)
		if (queued[i]) {
			receive(s, laptop, bob, queued[i], ", from the archive");
			mend_free(queued[i]);
		}
	mend_account_catchup_end(bob->acc);
	sim_free(s);
	printf("\n%s\n",
	       failures ? "The demo FAILED." : "Every message decrypted on every device.");
	return failures ? 1 : 0;
}
