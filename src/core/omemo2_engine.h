/*
 * omemo2_engine.h - OMEMO:2 (XEP-0384 0.9, namespace urn:xmpp:omemo:2)
 * beside legacy OMEMO in the engine: which version each device gets
 * (omemo2_devices.c), publishing and fetching the OMEMO:2 nodes
 * (omemo2_pubsub.c). One device id and one identity key serve both versions
 * (DESIGN §3). With libsignal-protocol-c everything stays legacy.
 */
#ifndef MEND_CORE_OMEMO2_ENGINE_H
#define MEND_CORE_OMEMO2_ENGINE_H

#include "internal.h"

/* --- omemo2_devices.c --- */
/*
 * `version`'s device list of jid names exactly ids: kept per device, and the
 * devices of both lists become jid's device list (mend_store_devicelist_set).
 */
int mend_omemo2_list_store(mend_account *acc, const char *jid, int version, const uint32_t *ids,
                           size_t n);
/* The version we write to a device in (MEND_VERSION_2 or _LEGACY), 0 when none, or <0. */
int mend_omemo2_version_for(mend_account *acc, const char *jid, uint32_t device);
/* Whether we have a session of `version` (0: legacy) with the device: 1, 0 or <0. */
int mend_omemo2_session_exists(mend_account *acc, const char *jid, uint32_t device, int version);
/* Whether the device's bundle of `version` was found unusable: 1, 0 or <0. */
int mend_omemo2_is_broken(mend_account *acc, const char *jid, uint32_t device, int version);

/* Fills the versions of a device (mend_device_info.versions, wrote_version, send_version). */
void mend_omemo2_device_info(mend_account *acc, const char *jid, mend_device_info *d);

/* --- omemo2_pubsub.c --- */
/* Connected: fetches our OMEMO:2 device list, publishes our OMEMO:2 bundle and adds our
 * device to the list when it is missing. */
void mend_omemo2_connected(mend_account *acc);
/* Publishes our OMEMO:2 bundle (when our legacy bundle goes out: the same keys). */
void mend_omemo2_publish_bundle(mend_account *acc);
/* Fetches jid's OMEMO:2 device list (counted as a fetch: pending messages wait for it). */
void mend_omemo2_fetch_list(mend_account *acc, const char *jid);
/* Subscribes to jid's OMEMO:2 device list. */
void mend_omemo2_subscribe(mend_account *acc, const char *jid);
/* A PEP event of urn:xmpp:omemo:2:devices (`items` its <items/>); returns 1 (handled). */
int mend_omemo2_list_event(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *items);

/* --- omemo2_devices.c: the version of each device --- */
/* A version the device publishes whose session we lack and whose bundle was not refused:
 * MEND_VERSION_2 first, then _LEGACY; 0 when none; <0 on a store error. */
int mend_omemo2_missing_version(mend_account *acc, const char *jid, uint32_t device);
/* Parts recipients by version (a version 0 one: OMEMO:2 when it gets that and has its session). */
void mend_omemo2_split(mend_account *acc, const mend_recipient *rs, size_t n, GArray *legacy,
                       GArray *two);

/* --- omemo2_message.c --- */
/*
 * Encrypts `body` (NULL: an empty OMEMO message, §4.5) for these OMEMO:2 devices (each with a
 * session) in an SCE envelope from us to `to`: a <message/> with <encrypted
 * xmlns='urn:xmpp:omemo:2'/>; with_body: also the fallback body. Inside the caller's
 * transaction.
 */
int mend_omemo2_encrypt_for(mend_account *acc, const char *to, const mend_recipient *rs, size_t n,
                            const char *body, const char *id, int flags, int with_body,
                            char **stanza);
/* Decrypts the OMEMO:2 <encrypted/> `enc` of `st` (message.c's mend_account_decrypt_stanza):
 * marks sid_id seen (by dedupe_by) in the same transaction. MEND_ERR_FORGED: an SCE affix does
 * not match (acc->omemo2_why says which). */
int mend_omemo2_decrypt_stanza(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *enc,
                               const char *sid_id, const char *dedupe_by, mend_message *msg);
/* Whether `st` carries an OMEMO:2 <encrypted/> we can read (libomemo-c). */
int mend_omemo2_is_encrypted(xmpp_stanza_t *st);
/* How many <key/> an OMEMO:2 <encrypted/> holds (NULL: 0). */
unsigned mend_omemo2_count_keys(xmpp_stanza_t *enc);
/* A legacy message from (jid, device) decrypted: 1 when the device wrote OMEMO:2 before. */
int mend_omemo2_legacy_arrived(mend_account *acc, const char *jid, uint32_t device);
/* Tells the user (a NOTICE in jid's chat, or in `room` for a room message: NULL for none)
 * that the device fell back to legacy OMEMO. */
void mend_omemo2_fell_back(mend_account *acc, const char *jid, uint32_t device, const char *room);
/* XEP-0420 §4: more than this between a message's SCE <time/> and when it was sent (its
 * delay stamp, or when it arrived) gets a notice to the user. */
#define MEND_OMEMO2_TIME_MARGIN (60 * 60)
void mend_omemo2_check_time(mend_account *acc, const char *jid, uint32_t device, int64_t written,
                            int64_t sent);
/* One logical message goes as one stanza per version (same id): a message of jid read... */
void mend_omemo2_twin_note(mend_account *acc, const char *jid, const char *msg_id);
/* ...so its other stanza, not for this device, is no news: 1 when it was read. */
int mend_omemo2_twin_seen(mend_account *acc, const char *jid, const char *msg_id);
/* The stanzas one encrypted message is made of (one per version), each g_malloc'd. */
GPtrArray *mend_omemo2_stanzas(const char *xml);
/* Hands each of them to the host; 0 when it took all. */
int mend_omemo2_send_each(mend_account *acc, const char *xml);
/* Sends all but the last through the host; *stanza keeps the last (the host sends it). */
int mend_omemo2_send_all_but_last(mend_account *acc, char **stanza);

/* --- omemo2_bundle.c --- */
/* Builds an OMEMO:2 session from `bundle` (its <bundle/>, NULL: none); unusable: broken2. */
int mend_omemo2_bundle_process(mend_account *acc, const char *jid, uint32_t device,
                               xmpp_stanza_t *bundle);
/* Fetches the OMEMO:2 bundle of a device (counted as a fetch) and processes it. */
void mend_omemo2_fetch_bundle(mend_account *acc, const char *jid, uint32_t device);

#endif
