/*
 * fuzz-uri.c - verification URIs (mend_account_verify_uri, src/core/trust.c;
 * xmpp:JID?omemo-sid-ID=HEX;... as Conversations and Dino show them): the
 * input, after the replacements of fuzz_expand() ({B} bob's device id, {F}
 * the fingerprint of his key), is given to alice (fuzz-account.c), who knows
 * bob's device. A URI verifies something or says why not.
 */
#include "config.h"

#include "mend/mend.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mend_account *alice = fuzz_alice();
	char *uri = fuzz_expand(data, size);
	unsigned n = 99;
	int r = mend_account_verify_uri(alice, uri, &n);

	FUZZ_CHECK(r == MEND_OK ? n > 0 : n == 0);
	FUZZ_CHECK(r == MEND_OK || r == MEND_ERR_INVALID_ARG || r == MEND_ERR_VERIFY_MISMATCH ||
	           r == MEND_ERR_NOT_FOUND);
	g_free(uri);
	return 0;
}
