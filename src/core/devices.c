/*
 * devices.c - what the user hears about a contact's devices (issues 9, 10):
 *
 *  - a new device is announced in the contact's chat, once (the mark is in
 *    the store, so a restart does not repeat it), as soon as its identity key
 *    is known (from its bundle or its first message), with its fingerprint
 *    and what the trust policy made of it. Only devices that appear after we
 *    started talking to the contact are new; the devices we first meet them
 *    with are not announced;
 *  - a contact's device from which nothing came for MEND_STALE_DAYS (counted
 *    from when it was first listed, or from when the user last trusted it) is
 *    inactive: messages skip it while the contact has another device to
 *    encrypt to, and it is active again the moment it sends something.
 */
#include "config.h"

#include <libintl.h>
#include "internal.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define STALE_SECONDS ((int64_t)MEND_STALE_DAYS * 24 * 60 * 60)

static int is_own(const mend_account *acc, const char *jid)
{
	return g_str_equal(jid, acc->jid);
}

static char *announcement(mend_account *acc, const char *jid, uint32_t device, const char *fp,
                          int trust)
{
	char *grouped = mend_fingerprint_grouped(fp), *text;

	if (mend_trust_is_trusted(trust))
		text =
		    g_strdup_printf(_("%s has a new device %u (fingerprint %s); it now gets your "
		                      "messages."),
		                    jid, device, grouped);
	else
		text = g_strdup_printf(_("%s has a new device %u (fingerprint %s); it gets nothing "
		                         "until you trust it."),
		                       jid, device, grouped);
	g_free(grouped);
	return text;
}

void mend_devices_announce(mend_account *acc, const char *jid, uint32_t device)
{
	mend_event ev = {.kind = MEND_EVENT_NOTICE, .trust = -1};
	uint8_t *key = NULL;
	size_t len = 0;
	char fp[65];
	int trust = -1;

	if (!jid || is_own(acc, jid) || mend_store_device_news(acc->store, jid, device) != 1 ||
	    mend_store_peer_identity_get(acc->store, jid, device, &key, &len, &trust) < 0)
		return;
	mend_key_fingerprint(key, len, fp);
	g_free(key);
	/* said once: the mark goes first, so a failure never repeats the line */
	if (!fp[0] || mend_store_device_news_clear(acc->store, jid, device) < 0)
		return;
	ev.peer = jid;
	ev.device = device;
	ev.trust = trust;
	ev.text = announcement(acc, jid, device, fp, trust);
	if (acc->ops.event)
		acc->ops.event(&ev, acc->user_data);
	g_free((char *)ev.text);
}

void mend_devices_listed(mend_account *acc, const char *jid)
{
	uint32_t *ids = NULL;
	size_t n = 0, i;

	if (is_own(acc, jid) ||
	    mend_store_devices_mark_listed(acc->store, jid, g_get_real_time() / G_USEC_PER_SEC) < 0)
		return;
	/* a new device whose key we already know (it wrote to us first) */
	if (mend_store_devicelist_get(acc->store, jid, &ids, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			mend_devices_announce(acc, jid, ids[i]);
	g_free(ids);
}

int mend_devices_news_pending(mend_account *acc, const char *jid)
{
	return !is_own(acc, jid) && mend_store_devices_news_any(acc->store, jid) == 1;
}

int mend_device_is_stale(mend_account *acc, const char *jid, uint32_t device)
{
	int64_t listed = 0, seen = 0;

	if (is_own(acc, jid) ||
	    mend_store_device_times(acc->store, jid, device, &listed, &seen) < 0)
		return 0;
	if (!listed && !seen)
		return 0; /* never listed: nothing to count from */
	return mend_now(acc) - MAX(listed, seen) > STALE_SECONDS;
}

void mend_devices_include(mend_account *acc, const char *jid, uint32_t device)
{
	if (mend_device_is_stale(acc, jid, device))
		mend_store_device_relist(acc->store, jid, device, mend_now(acc));
}
