/*
 * xmlutil.h - what the XEP codecs (omemo_legacy.c, omemo2.c, sce.c) share:
 * finding and counting children by name and namespace, strict decimal
 * numbers, base64 text, and building elements in a namespace.
 *
 * Readers never trust the stanza: a missing attribute or text is an error
 * the caller turns into MEND_ERR_MALFORMED, base64 is decoded with a length
 * limit checked before anything is allocated (b64.h).
 * Builders return MEND_ERR_NOMEM (or NULL) when libstrophe cannot allocate.
 */
#ifndef MEND_CORE_XEP_XMLUTIL_H
#define MEND_CORE_XEP_XMLUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <strophe.h>

/* The element itself is <name xmlns='ns'/> (its own namespace). */
int mend_xml_is(xmpp_stanza_t *el, const char *name, const char *ns);

/*
 * `child` of `parent` is an element `name` in `ns` (NULL: any namespace). A
 * child built in memory without its own xmlns is in its parent's namespace.
 */
int mend_xml_child_is(xmpp_stanza_t *child, xmpp_stanza_t *parent, const char *name,
                      const char *ns);

/* Finds the first child of `parent` named `name` in namespace `ns` (NULL ns: any). */
xmpp_stanza_t *mend_child(xmpp_stanza_t *parent, const char *name, const char *ns);

/* How many children `name` in `ns` `parent` has. */
size_t mend_xml_count(xmpp_stanza_t *parent, const char *name, const char *ns);

/* Decimal digits only (no sign, no white space), min..max; else MEND_ERR_MALFORMED. */
int mend_xml_parse_decimal(const char *text, uint32_t min, uint32_t max, uint32_t *out);

/*
 * An xs:boolean attribute: "true"/"1" -> 1; "false"/"0"/absent (NULL) -> 0;
 * anything else ("yes") MEND_ERR_MALFORMED.
 */
int mend_xml_parse_bool(const char *text, int *out);

/*
 * Decodes the base64 text of `el` (no text: empty) into a new buffer
 * (g_free). Errors of mend_b64_decode().
 */
int mend_xml_decode_b64(xmpp_stanza_t *el, size_t max_len, uint8_t **out, size_t *out_len);

/*
 * Decodes the base64 text of `el` into exactly `len` bytes of `out`;
 * `bad_len` is returned for any other length.
 */
int mend_xml_decode_b64_exact(xmpp_stanza_t *el, uint8_t *out, size_t len, int bad_len);

/* The text of `el` as a g_malloc'd string ("" when it has none), or NULL on NOMEM. */
char *mend_xml_text(xmpp_stanza_t *el);

/* A new element `name` in `ns` (release with xmpp_stanza_release), or NULL. */
xmpp_stanza_t *mend_xml_new(xmpp_ctx_t *ctx, const char *name, const char *ns);

/* Adds `child` to `parent`, which takes its own reference; drops ours. */
int mend_xml_adopt(xmpp_stanza_t *parent, xmpp_stanza_t *child);

/* Adds a new child `name` in the parent's namespace; returns it (borrowed) or NULL. */
xmpp_stanza_t *mend_xml_add(xmpp_stanza_t *parent, const char *name);

int mend_xml_set_uint(xmpp_stanza_t *el, const char *name, uint32_t v);

/* Sets the text of `el` to the padded base64 of `data` (empty: no text). */
int mend_xml_set_b64(xmpp_stanza_t *el, const uint8_t *data, size_t len);

/* <name attr='id'>base64</name> under parent; attr NULL: no attribute. */
int mend_xml_add_b64(xmpp_stanza_t *parent, const char *name, const char *attr, uint32_t id,
                     const uint8_t *data, size_t len);

/* Appends the base64 of `data` to `out`. */
void mend_xml_append_b64(GString *out, const uint8_t *data, size_t len);
/* Appends v in decimal (no printf: it runs for every key of a message). */
void mend_xml_append_u32(GString *out, uint32_t v);

#endif
