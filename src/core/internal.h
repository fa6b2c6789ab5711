/*
 * internal.h - what the core's modules share and no host sees: the account
 * context and its log helper.
 */
#ifndef MEND_CORE_INTERNAL_H
#define MEND_CORE_INTERNAL_H

#include <glib.h>
#include <strophe.h>
#include "mend/mend.h"
#include "crypto.h"
#include "signal.h"
#include "store.h"

struct mend_account {
	char *jid;                 /* our bare JID */
	mend_host_ops ops;
	void *user_data;
	xmpp_ctx_t *xctx;          /* stanza model only; no connection */
	mend_crypto *crypto;
	mend_store *store;
	signal_context *sctx;
	signal_protocol_store_context *sstore;
	GRecMutex lock;            /* the signal context lock */
	uint32_t device_id;
	int in_catchup;
	int bundle_dirty;          /* prekeys replenished since the last publish request */
};

/* A log line through the host ops (printf-style). */
void mend_log(const mend_account *acc, mend_log_level level, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

/* Translation of a libsignal SG_ERR_* code into a MEND_ERR_* code. */
int mend_err_from_signal(int sg_err);

#endif
