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

#endif
