/*
 * fuzz-stanza.c - the engine's entry for everything the server sends
 * (mend_account_handle_stanza, src/core/engine.c): the input is one stanza
 * as text, after the replacements of fuzz_expand() ({A} {B} {F} {I}), fed to
 * alice (fuzz-account.c), who keeps her state from one input to the next.
 * The engine parses the text with its own parser (src/core/parser.c); each
 * input is first parsed by it and by libstrophe, and the trees must agree.
 */
#include "config.h"

#include "mend/mend.h"
#include "parser.h"
#include "fuzz.h"

/* The core's parser, with a context taking memory from it, kept across inputs. */
static mend_parser *fuzz_parser(xmpp_ctx_t **ctx)
{
	static mend_parser *p;
	static xmpp_ctx_t *c;

	if (!p) {
		p = mend_parser_new();
		c = xmpp_ctx_new(mend_parser_mem(p), NULL);
		FUZZ_CHECK(c != NULL);
	}
	*ctx = c;
	return p;
}

/* Our parser's tree is libstrophe's, or both say the text is not one element. */
static void same_as_libstrophe(const char *xml)
{
	xmpp_ctx_t *ctx;
	mend_parser *p = fuzz_parser(&ctx);
	xmpp_stanza_t *ours = mend_parser_parse(p, ctx, xml);
	xmpp_stanza_t *theirs = xmpp_stanza_new_from_string(fuzz_xmpp_ctx(), xml);
	GString *why = g_string_new(NULL);

	if (!ours != !theirs || (ours && !mend_parser_same_tree(ours, theirs, why)))
		fprintf(stderr, "fuzz-stanza: the parsers disagree (%s, %s): %s\n",
		        ours ? "ours an element" : "ours NULL",
		        theirs ? "libstrophe's an element" : "libstrophe's NULL", why->str);
	FUZZ_CHECK(!ours == !theirs && (!ours || mend_parser_same_tree(ours, theirs, NULL)));
	g_string_free(why, TRUE);
	if (ours)
		xmpp_stanza_release(ours);
	if (theirs)
		xmpp_stanza_release(theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mend_account *alice = fuzz_alice();
	char *xml = fuzz_expand(data, size);
	int r;

	same_as_libstrophe(xml);
	r = mend_account_handle_stanza(alice, xml);
	FUZZ_CHECK(r > MEND_ERR_LAST && r <= 1);
	g_free(xml);
	return 0;
}
