/*
 * fuzz-sce.c - the Stanza Content Encryption envelope (src/core/xep/sce.c,
 * XEP-0420): the input is the decrypted bytes of an OMEMO:2 payload. What
 * parses is checked against a sender, a recipient and a room, and for time.
 */
#include "config.h"

#include <string.h>
#include "mend/mend.h"
#include "xep/sce.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mend_sce env = {0};
	const char *why = NULL;
	char *body;
	int r;

	if (mend_sce_parse(fuzz_xmpp_ctx(), data, size, &env) < 0) {
		FUZZ_CHECK(env.content == NULL && env.from == NULL && env.to == NULL &&
		           env.stamp == NULL);
		return 0;
	}
	FUZZ_CHECK(env.content != NULL);
	body = mend_sce_body(&env);
	FUZZ_CHECK(!body || g_utf8_validate(body, -1, NULL));
	g_free(body);
	r = mend_sce_check(&env, "alice@example.org", "bob@example.org", NULL, &why);
	FUZZ_CHECK(r == MEND_OK || (r == MEND_ERR_FORGED && why));
	r = mend_sce_check(&env, "alice@example.org", "bob@example.org", "room@muc.example.org",
	                   &why);
	FUZZ_CHECK(r == MEND_OK || (r == MEND_ERR_FORGED && why));
	r = mend_sce_check_time(&env, 1700000000, 300);
	FUZZ_CHECK(r == MEND_OK || r == MEND_ERR_FORGED);
	mend_sce_clear(&env);
	return 0;
}
