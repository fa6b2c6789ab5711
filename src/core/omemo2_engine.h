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

#endif
