/*
 * sim.h - an in-process XMPP world for tests and the local demo: devices
 * (each a mend_account with its own store in a temp dir), a "PEP" made of
 * their device lists and bundles, and stamping stanzas the way a server does
 * (from, XEP-0359 stanza-id). No network.
 */
#ifndef MEND_TESTS_SIM_H
#define MEND_TESTS_SIM_H

#include <glib.h>
#include "mend/mend.h"

typedef struct sim_dev {
	char *name; /* "alice's phone" */
	char *jid;  /* bare JID */
	char *resource;
	char *dir;          /* its data dir */
	mend_account *acc;  /* NULL while closed ("offline") */
	int bundle_changed; /* how often the core asked for a republish */
	int notices;        /* how many notices it showed */
	uint32_t device_id;
	int messages;     /* MESSAGE events reported to it */
	char *last_body;  /* the body of the last one */
	GPtrArray *notes; /* "PEER: TEXT" of every NOTICE event it reported (NULL until one) */
} sim_dev;

typedef struct sim {
	char *root;      /* temp dir, removed by sim_free */
	GPtrArray *devs; /* of sim_dev* */
	unsigned long next_sid;
	/*
	 * When set, each device fetching a bundle gets only the one-time prekeys
	 * whose id is its index modulo the number of devices, so two senders never
	 * build on the same one (that race, which XEP-0384 v0.3 §5 lets the later
	 * sender lose outside catch-up, is test-account's, not every test's).
	 */
	int disjoint_prekeys;
} sim;

sim *sim_new(void);
void sim_free(sim *s);
/* Removes a file or a folder and all below it. */
void sim_rm_rf(const char *path);
/* Adds and opens a device (store key in a key file: tests never touch a keyring). */
sim_dev *sim_add(sim *s, const char *jid, const char *name);
int sim_close(sim_dev *d);
int sim_open(sim_dev *d);
/* Every device learns every account's device list (as PEP notifications would tell it). */
int sim_publish_all(sim *s);
/* Builds sessions from bundles for every device of `jid` that `d` still lacks. */
int sim_fetch_bundles(sim *s, sim_dev *d, const char *jid);
/* The bundle of `owner` as PEP serves it to `fetcher` (see disjoint_prekeys); g_free. */
char *sim_bundle_for(sim *s, sim_dev *fetcher, sim_dev *owner);
/* Encrypts body from d to `to`, fetching bundles first if needed. *stanza: mend_free. */
int sim_send(sim *s, sim_dev *d, const char *to, const char *body, char **stanza);
/*
 * The stanza as the server hands it to `rcpt`: from = sender's full JID, and
 * when with_sid, a stanza-id stamped by rcpt's server. g_free the result.
 */
char *sim_stamp(sim *s, const char *stanza, const sim_dev *sender, const sim_dev *rcpt,
                int with_sid);
sim_dev *sim_find(sim *s, const char *jid, uint32_t device_id);

#endif
