/*
 * fuzz-stanza.c - the engine's entry for everything the server sends
 * (mend_account_handle_stanza, src/core/engine.c): the input is one stanza
 * as text, after the replacements of fuzz_expand() ({A} {B} {F} {I}), fed to
 * alice (fuzz-account.c), who keeps her state from one input to the next.
 * The engine parses the text itself with libstrophe, as hosts hand it over.
 */
#include "config.h"

#include "mend/mend.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mend_account *alice = fuzz_alice();
	char *xml = fuzz_expand(data, size);
	int r = mend_account_handle_stanza(alice, xml);

	FUZZ_CHECK(r > MEND_ERR_LAST && r <= 1);
	g_free(xml);
	return 0;
}
