/*
 * sigstore.h - installs the libsignal store callbacks (sessions, prekeys,
 * signed prekeys, identities) of an account on its store context.
 */
#ifndef MEND_CORE_SIGSTORE_H
#define MEND_CORE_SIGSTORE_H

#include "internal.h"

void mend_sigstore_install(mend_account *acc);

#endif
