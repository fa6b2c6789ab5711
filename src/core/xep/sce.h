/*
 * sce.h - the Stanza Content Encryption envelope, XEP-0420 version 0.5.0
 * (namespace urn:xmpp:sce:1), with the OMEMO:2 profile of XEP-0384 0.9
 * §5.5.1: <rpad/> required, <time/> optional, <from/> recommended, <to/>
 * required in group chats.
 *
 *   <envelope xmlns='urn:xmpp:sce:1'>
 *     <content><body xmlns='jabber:client'>Hello</body></content>
 *     <rpad>random</rpad><time stamp='...'/><from jid='a@x'/><to jid='b@y'/>
 *   </envelope>
 *
 * The envelope is what OMEMO:2 encrypts (crypto2.h), so it travels as bytes:
 * mend_sce_build() writes text, mend_sce_parse() reads the decrypted bytes.
 * The parser reads remote data (after the HMAC, but from any device that
 * holds a session with us): it refuses anything that is not exactly one
 * well-formed <envelope/>, and drops what XEP-0420 §9 forbids inside
 * <content/>. Not yet used by the engine (xep/README.md, OMEMO:2).
 */
#ifndef MEND_CORE_XEP_SCE_H
#define MEND_CORE_XEP_SCE_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <strophe.h>

#define MEND_NS_SCE    "urn:xmpp:sce:1"
#define MEND_NS_CLIENT "jabber:client"

/* Limits on what a decrypted envelope may hold. */
#define MEND_SCE_MAX_JID     3071 /* RFC 7622 §3.1: a JID is at most 3071 bytes */
#define MEND_SCE_MAX_STAMP   64
#define MEND_SCE_MAX_CONTENT 100 /* children of <content/> */

/* What to put in an envelope. */
typedef struct mend_sce_out {
	const char *body; /* text of <body xmlns='jabber:client'> (escaped here); NULL: none */
	const char *content_xml; /* more children of <content/>, serialized XML; NULL: none */
	const char *from;        /* bare JID of the sender; NULL: no <from/> */
	const char *to;          /* bare JID of the recipient or room; NULL: no <to/> */
	gint64 time;             /* Unix seconds for <time stamp/>; < 0: no <time/> */
	size_t rpad_len;         /* exact <rpad/> length; 0: a random length (below) */
} mend_sce_out;

/* A parsed envelope. */
typedef struct mend_sce {
	xmpp_stanza_t *content; /* a <content/> holding only the permitted children (owned) */
	size_t n_dropped;       /* children of <content/> dropped (XEP-0420 §9) */
	char *from;             /* <from jid/>, g_malloc'd, or NULL when absent */
	char *to;               /* <to jid/>, or NULL */
	char *stamp;            /* <time stamp/>, or NULL */
	gint64 time;            /* the stamp in Unix seconds (valid when stamp != NULL) */
	size_t rpad_len;        /* length of <rpad/>'s text (XEP-0420 §4: any length accepted) */
} mend_sce;

/*
 * Writes the envelope as UTF-8 text: <content/> first, then <rpad/>,
 * <time/>, <from/>, <to/>. A random <rpad/> of printable ASCII brings the
 * envelope to at least 200 bytes and then adds 0..200 more (XEP-0420 §4).
 * Returns a g_malloc'd string (its length in *len, may be NULL), or NULL
 * when `o` is not valid: no body and no content, a JID that is not a bare
 * JID of at most MEND_SCE_MAX_JID bytes, body or content not UTF-8, or
 * content_xml that is not well-formed.
 */
char *mend_sce_build(const mend_sce_out *o, size_t *len);

/*
 * Parses `len` decrypted bytes (a leading XML declaration is allowed). On
 * error the struct is left cleared and:
 * MEND_ERR_MALFORMED: not UTF-8, a NUL byte, not well-formed XML, a DTD,
 * comment or processing instruction (RFC 6120 §11.1), a root other than
 * <envelope xmlns='urn:xmpp:sce:1'/>, no or two <content/>, no <rpad/> (the
 * OMEMO:2 profile), two of one affix, an affix without its attribute, a JID
 * that is not bare or a stamp that is not an XEP-0082 DateTime, a child of
 * <content/> without a namespace;
 * MEND_ERR_TOO_LARGE: over MEND_MAX_PAYLOAD bytes, or over the limits above.
 */
int mend_sce_parse(xmpp_ctx_t *ctx, const uint8_t *data, size_t len, mend_sce *out);
void mend_sce_clear(mend_sce *env);

/*
 * XEP-0420 §4 affix checks for a received envelope (XEP-0384 §5.5.1):
 * <from/>, when present, must be `sender` (the real bare JID of who wrote);
 * in a group chat (`room` not NULL) <to/> must be present and be the room;
 * otherwise <to/>, when present, must be `us`. JIDs are compared after
 * mend_jid_normalize(). MEND_ERR_FORGED on a mismatch, with *why (may be
 * NULL) set to a static English sentence, marked for translation (gettext
 * domain mend: the host shows dgettext("mend", why)).
 */
int mend_sce_check(const mend_sce *env, const char *sender, const char *us, const char *room,
                   const char **why);

/*
 * XEP-0420 §4: <time/> within `margin` seconds of `sent` (the stanza's
 * delay stamp, or when it arrived). 0 when it is, or when there is no
 * <time/>; MEND_ERR_FORGED otherwise.
 */
int mend_sce_check_time(const mend_sce *env, gint64 sent, gint64 margin);

/* The text of the first <body xmlns='jabber:client'/> in <content/> (g_free), or NULL. */
char *mend_sce_body(const mend_sce *env);

#endif
