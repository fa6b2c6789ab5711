/*
 * omemo_legacy.h - codec for legacy OMEMO, XEP-0384 version 0.3.0
 * (namespace eu.siacs.conversations.axolotl): device list item, bundle item,
 * encrypted message and key transport element, stanza <-> struct.
 *
 * Parsers take the element itself (<list/>, <bundle/>, <encrypted/>) as a
 * libstrophe stanza and accept what real clients send (DESIGN §3): 12- or
 * 16-byte IV, prekey="true" or "1", wrapped base64, public keys with or
 * without the 0x05 type byte. They reject anything else with
 * MEND_ERR_MALFORMED, MEND_ERR_BAD_BASE64 or MEND_ERR_TOO_LARGE (bundles
 * also MEND_ERR_INVALID_KEY: a key or signature of the wrong length), never
 * crash; on error the output struct is left cleared.
 * Builders return a new element (release with xmpp_stanza_release) or NULL
 * on allocation failure. They also return NULL for a struct the parsers
 * would reject (a device id out of range, an IV not of 12 or 16 bytes, an
 * empty key, no prekey or no key, a count over the limits below), so that
 * whatever mend publishes or sends parses again.
 */
#ifndef MEND_CORE_XEP_OMEMO_LEGACY_H
#define MEND_CORE_XEP_OMEMO_LEGACY_H

#include <stddef.h>
#include <stdint.h>
#include <strophe.h>
#include "xmlutil.h" /* mend_child() */

#define MEND_NS_LEGACY              "eu.siacs.conversations.axolotl"
#define MEND_NODE_LEGACY_DEVICELIST "eu.siacs.conversations.axolotl.devicelist"
#define MEND_NODE_LEGACY_BUNDLES    "eu.siacs.conversations.axolotl.bundles:"

/* Limits on what the network may make us hold (DESIGN §7: giant device lists). */
#define MEND_MAX_DEVICES 500
#define MEND_MAX_PREKEYS 1000
#define MEND_MAX_KEYS    1000
#define MEND_MAX_KEY_LEN 4096
#define MEND_MAX_PAYLOAD (1u << 20)

/* Public key as serialized by libsignal: 0x05 || 32 bytes of Curve25519. */
#define MEND_PUBKEY_LEN    33
#define MEND_SIGNATURE_LEN 64

typedef struct mend_devicelist {
	uint32_t *ids; /* g_malloc'd; ids in 1..2^31-1, no duplicates, document order */
	size_t n;
} mend_devicelist;

typedef struct mend_prekey_pub {
	uint32_t id;
	uint8_t key[MEND_PUBKEY_LEN];
} mend_prekey_pub;

typedef struct mend_bundle {
	uint32_t spk_id;
	uint8_t spk[MEND_PUBKEY_LEN];
	uint8_t spk_sig[MEND_SIGNATURE_LEN];
	uint8_t ik[MEND_PUBKEY_LEN];
	mend_prekey_pub *prekeys; /* g_malloc'd */
	size_t n_prekeys;
} mend_bundle;

typedef struct mend_key_elem {
	uint32_t rid;
	int prekey;    /* 1 when prekey="true"/"1" */
	uint8_t *data; /* g_malloc'd: a serialized (PreKey)SignalMessage */
	size_t len;
} mend_key_elem;

typedef struct mend_encrypted {
	uint32_t sid;
	mend_key_elem *keys; /* g_malloc'd */
	size_t n_keys;
	uint8_t iv[16];
	size_t iv_len;    /* 12 or 16 */
	uint8_t *payload; /* g_malloc'd; NULL for key transport */
	size_t payload_len;
	int has_payload;
} mend_encrypted;

/* Device ids: 1..2^31-1 (XEP-0384 v0.3 §4.1: a random 31-bit id). */
int mend_parse_device_id(const char *text, uint32_t *out);

/*
 * A <key rid='..' FLAG='..'>base64</key> of either OMEMO version: rid a device
 * id, the flag ("prekey" in legacy, "kex" in OMEMO:2) an xs:boolean ("true",
 * "1", "false", "0" or absent), 1..MEND_MAX_KEY_LEN bytes (*data g_free'd).
 */
int mend_parse_key_elem(xmpp_stanza_t *el, const char *flag_attr, uint32_t *rid, int *flag,
                        uint8_t **data, size_t *len);

int mend_legacy_devicelist_parse(xmpp_stanza_t *list, mend_devicelist *out);
xmpp_stanza_t *mend_legacy_devicelist_build(xmpp_ctx_t *ctx, const mend_devicelist *dl);
void mend_devicelist_clear(mend_devicelist *dl);

int mend_legacy_bundle_parse(xmpp_stanza_t *bundle, mend_bundle *out);
xmpp_stanza_t *mend_legacy_bundle_build(xmpp_ctx_t *ctx, const mend_bundle *b);
void mend_bundle_clear(mend_bundle *b);

int mend_legacy_encrypted_parse(xmpp_stanza_t *encrypted, mend_encrypted *out);
xmpp_stanza_t *mend_legacy_encrypted_build(xmpp_ctx_t *ctx, const mend_encrypted *m);
void mend_encrypted_clear(mend_encrypted *m);
/* Appends the element as text to `out` (a GString *); MEND_ERR_INVALID_ARG when the builder would
 * refuse. */
int mend_legacy_encrypted_text(struct _GString *out, const mend_encrypted *m);

#endif
