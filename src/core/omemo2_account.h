/*
 * omemo2_account.h - the account's own OMEMO:2 bundle (XEP-0384 0.9 §5.3.2):
 * the same identity key, signed prekey and one-time prekeys as its legacy
 * bundle (DESIGN §3: one device, two versions), in OMEMO:2 form. Needs the
 * keys in libomemo-c's records (the signed prekey's XEdDSA signature of its
 * 32-byte form is made when the key is made); with libsignal-protocol-c:
 * MEND_ERR_PROTOCOL. Not yet published by the engine.
 */
#ifndef MEND_CORE_OMEMO2_ACCOUNT_H
#define MEND_CORE_OMEMO2_ACCOUNT_H

#include "internal.h"
#include "xep/omemo2.h"

/*
 * Fills `out` (clear with mend_omemo2_bundle_clear) from the store: the
 * identity key in Ed25519 form, the latest signed prekey with its OMEMO
 * signature, every unused one-time prekey (those with an id above 2^31-1,
 * which §5.3.2 does not allow, are left out). MEND_ERR_STORE_CORRUPT when a
 * record cannot be read or the signed prekey has no OMEMO signature.
 */
int mend_account_omemo2_bundle(mend_account *acc, mend_omemo2_bundle *out);

/* The same as a <bundle xmlns='urn:xmpp:omemo:2'/> element's text (g_free). */
int mend_account_omemo2_bundle_xml(mend_account *acc, char **xml);

#endif
