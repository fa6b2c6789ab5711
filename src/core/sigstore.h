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
 * The one-time prekey of (jid, device) that our session of `version` with it was built on,
 * while that session still waits for an answer to its prekey messages; 0 when it does not
 * (or there is no session, or it cannot be read). Ids start at 1.
 */
uint32_t mend_sigstore_pending_prekey(mend_account *acc, const char *jid, uint32_t device,
                                      int version);
/*
 * A prekey message failed for want of a key (SG_ERR_INVALID_KEY_ID): logs the one-time
 * prekey (has_pk: whether the message names one) and the signed prekey it was built on,
 * and whether the store holds each.
 */
void mend_sigstore_log_missing(mend_account *acc, const char *jid, uint32_t device, int has_pk,
                               uint32_t pk, uint32_t spk);

#endif
