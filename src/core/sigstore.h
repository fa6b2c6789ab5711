/*
 * sigstore.h - installs the libsignal store callbacks (sessions, prekeys,
 * signed prekeys, identities) of an account on its store context.
 */
#ifndef MEND_CORE_SIGSTORE_H
#define MEND_CORE_SIGSTORE_H

#include "internal.h"

void mend_sigstore_install(mend_account *acc);
/*
 * The session cache is write-through and filled on demand (start-up stays
 * independent of the number of sessions); it is dropped whenever the store
 * may hold something else (another process committed, a transaction rolled
 * back). Called at the start of each operation's transaction.
 */
void mend_sigstore_check_cache(mend_account *acc);
/*
 * XEP-0384 v0.3 §4.4 / 0.9 §5.4: which of a bundle's n one-time prekeys a new session with
 * (jid, device) is built on: one at random, but not one that a session of ours with it (of
 * either version) still waits on, its prekey messages unanswered: a device builds one
 * session on a prekey. `prekeys` is the bundle's array, `size` bytes an element, each
 * beginning with its uint32_t id (mend_prekey_pub, mend_omemo2_prekey). *index: which.
 */
int mend_sigstore_pick_prekey(mend_account *acc, const char *jid, uint32_t device,
                              const void *prekeys, size_t size, size_t n, size_t *index);
/*
 * A prekey message failed for want of a key (SG_ERR_INVALID_KEY_ID): logs the one-time
 * prekey (has_pk: whether the message names one) and the signed prekey it was built on,
 * and whether the store holds each.
 */
void mend_sigstore_log_missing(mend_account *acc, const char *jid, uint32_t device, int has_pk,
                               uint32_t pk, uint32_t spk);

#endif
