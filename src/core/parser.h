/*
 * parser.h - the account's stanza parser (parser.c): text to a libstrophe element
 * tree, with one expat parser kept between stanzas and a pool of blocks for
 * the account's libstrophe context.
 */
#ifndef MEND_CORE_PARSER_H
#define MEND_CORE_PARSER_H

#include <glib.h>
#include <strophe.h>

typedef struct mend_parser mend_parser;

mend_parser *mend_parser_new(void);
/* The allocator for the libstrophe context (xmpp_ctx_new); free that context first. */
const xmpp_mem_t *mend_parser_mem(mend_parser *x);
/* What xmpp_stanza_new_from_string(ctx, text) gives: the first element, NULL if none or
 * if the text is not well-formed. The tree is in ctx; release it with xmpp_stanza_release. */
xmpp_stanza_t *mend_parser_parse(mend_parser *x, xmpp_ctx_t *ctx, const char *text);
/* Whether two trees are the same: names, namespaces, attributes, text nodes, children in
 * order; if not, why says where (why may be NULL). */
int mend_parser_same_tree(xmpp_stanza_t *a, xmpp_stanza_t *b, GString *why);
/* Whether the last mend_parser_parse() took the path without expat (for tests). */
int mend_parser_was_fast(const mend_parser *x);
void mend_parser_free(mend_parser *x);

#endif
