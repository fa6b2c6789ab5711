/*
 * omemo2.h - codec for OMEMO:2, XEP-0384 version 0.9 (namespace
 * urn:xmpp:omemo:2): the device list item (<devices/>, §5.3.1), the bundle
 * item (<bundle/>, §5.3.2) and the <encrypted/> element (§5.5.3), stanza <->
 * struct. Legacy OMEMO is omemo_legacy.h; the two share one device id.
 *
 * Parsers take the element itself and apply the limits of the legacy codec
 * (MEND_MAX_*, omemo_legacy.h), checked before anything is allocated. They
 * return MEND_ERR_MALFORMED, MEND_ERR_BAD_BASE64, MEND_ERR_TOO_LARGE or (a
 * bundle key or signature of the wrong length) MEND_ERR_INVALID_KEY, never
 * crash, and leave the output cleared on error. Builders return a new
 * element (xmpp_stanza_release) or NULL, also for a struct the parsers would
 * refuse. What is accepted and why: xep/README.md; schema: xep/omemo2.xsd.
 * Not yet used by the engine.
 */
#ifndef MEND_CORE_XEP_OMEMO2_H
#define MEND_CORE_XEP_OMEMO2_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <strophe.h>
#include "omemo_legacy.h" /* MEND_MAX_*, mend_parse_device_id() */

#define MEND_NS_OMEMO2           "urn:xmpp:omemo:2"
#define MEND_NODE_OMEMO2_DEVICES "urn:xmpp:omemo:2:devices"
#define MEND_NODE_OMEMO2_BUNDLES "urn:xmpp:omemo:2:bundles"

/* §5.3.2: spk and pk are Curve25519 keys, ik the Ed25519 form: 32 bytes each. */
#define MEND_OMEMO2_PUBKEY_LEN    32
#define MEND_OMEMO2_SIGNATURE_LEN 64
/* §5.3.1 recommends labels under 53 code points; longer ones are dropped. */
#define MEND_OMEMO2_MAX_LABEL 512 /* bytes */
#define MEND_OMEMO2_MAX_JID   3071

typedef struct mend_omemo2_device {
	uint32_t id;
	char *label;          /* g_malloc'd UTF-8, or NULL */
	uint8_t labelsig[64]; /* valid when has_labelsig */
	int has_labelsig;
} mend_omemo2_device;

typedef struct mend_omemo2_devicelist {
	mend_omemo2_device *devices; /* g_malloc'd; no duplicate ids, document order */
	size_t n;
} mend_omemo2_devicelist;

typedef struct mend_omemo2_prekey {
	uint32_t id;
	uint8_t key[MEND_OMEMO2_PUBKEY_LEN];
} mend_omemo2_prekey;

typedef struct mend_omemo2_bundle {
	uint32_t spk_id;
	uint8_t spk[MEND_OMEMO2_PUBKEY_LEN];
	uint8_t spks[MEND_OMEMO2_SIGNATURE_LEN];
	uint8_t ik[MEND_OMEMO2_PUBKEY_LEN];
	mend_omemo2_prekey *prekeys; /* g_malloc'd */
	size_t n_prekeys;
} mend_omemo2_bundle;

typedef struct mend_omemo2_key {
	uint32_t rid;
	int kex;       /* 1: an OMEMOKeyExchange, else an OMEMOAuthenticatedMessage */
	uint8_t *data; /* g_malloc'd */
	size_t len;
} mend_omemo2_key;

typedef struct mend_omemo2_keys {
	char *jid; /* g_malloc'd, normalized bare JID (mend_jid_normalize) */
	mend_omemo2_key *keys;
	size_t n_keys;
} mend_omemo2_keys;

typedef struct mend_omemo2_encrypted {
	uint32_t sid;
	mend_omemo2_keys *groups; /* one per <keys jid/> */
	size_t n_groups;
	uint8_t *payload; /* g_malloc'd; NULL for an empty OMEMO message */
	size_t payload_len;
	int has_payload;
} mend_omemo2_encrypted;

int mend_omemo2_devicelist_parse(xmpp_stanza_t *devices, mend_omemo2_devicelist *out);
xmpp_stanza_t *mend_omemo2_devicelist_build(xmpp_ctx_t *ctx, const mend_omemo2_devicelist *dl);
void mend_omemo2_devicelist_clear(mend_omemo2_devicelist *dl);

int mend_omemo2_bundle_parse(xmpp_stanza_t *bundle, mend_omemo2_bundle *out);
xmpp_stanza_t *mend_omemo2_bundle_build(xmpp_ctx_t *ctx, const mend_omemo2_bundle *b);
void mend_omemo2_bundle_clear(mend_omemo2_bundle *b);

int mend_omemo2_encrypted_parse(xmpp_stanza_t *encrypted, mend_omemo2_encrypted *out);
xmpp_stanza_t *mend_omemo2_encrypted_build(xmpp_ctx_t *ctx, const mend_omemo2_encrypted *m);
void mend_omemo2_encrypted_clear(mend_omemo2_encrypted *m);

/* §5.6: the key for device `rid` of `jid` (any form; normalized here), or NULL. */
const mend_omemo2_key *mend_omemo2_find_key(const mend_omemo2_encrypted *m, const char *jid,
                                            uint32_t rid);

#endif
