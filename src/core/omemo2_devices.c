/*
 * omemo2_devices.c - one device, two versions (XEP-0384 0.9 beside v0.3;
 * DESIGN §3): the device lists of both versions make one set of devices
 * (who gets our messages), and each device is written to in the version it
 * publishes: OMEMO:2 when its OMEMO:2 list names it and its OMEMO:2 bundle
 * was usable, legacy otherwise. With libsignal-protocol-c only legacy.
 */
#include "config.h"

#include <string.h>
#include "engine.h"
#include "session2.h"
#include "omemo2_engine.h"

int mend_omemo2_list_store(mend_account *acc, const char *jid, int version, const uint32_t *ids,
                           size_t n)
{
	uint32_t *all = NULL;
	size_t n_all = 0;
	int r = mend_store_begin(acc->store);

	if (r < 0)
		return r;
	r = mend_store_device_versions_set(acc->store, jid, version, ids, n);
	if (r == MEND_OK)
		r = mend_store_device_versions_list(acc->store, jid, 0, &all, &n_all);
	if (r == MEND_OK)
		r = mend_store_devicelist_set(acc->store, jid, all, n_all);
	g_free(all);
	if (r < 0) {
		mend_store_rollback(acc->store);
		return r;
	}
	r = mend_store_commit(acc->store);
	if (r == MEND_OK)
		mend_devices_listed(acc, jid);
	return r;
}

int mend_omemo2_version_for(mend_account *acc, const char *jid, uint32_t device)
{
	unsigned published = MEND_VERSION_BIT(MEND_VERSION_LEGACY);
	int broken2 = 0, r;

	r = mend_store_device_versions(acc->store, jid, device, &published, NULL, &broken2);
	if (r < 0 && r != MEND_ERR_NOT_FOUND)
		return r;
	if (r == MEND_ERR_NOT_FOUND) /* listed before OMEMO:2 was known: a legacy device */
		published = MEND_VERSION_BIT(MEND_VERSION_LEGACY);
	if (mend_omemo2_sessions_supported() && (published & MEND_VERSION_BIT(MEND_VERSION_2)) &&
	    !broken2)
		return MEND_VERSION_2;
	if (published & MEND_VERSION_BIT(MEND_VERSION_LEGACY))
		return MEND_VERSION_LEGACY;
	return 0;
}

int mend_omemo2_session_exists(mend_account *acc, const char *jid, uint32_t device, int version)
{
	return mend_store_session_exists_v(acc->store, jid, device,
	                                   version ? version : MEND_VERSION_LEGACY);
}

int mend_omemo2_is_broken(mend_account *acc, const char *jid, uint32_t device, int version)
{
	int broken2 = 0, r;

	if (version != MEND_VERSION_2)
		return mend_store_device_is_broken(acc->store, jid, device);
	r = mend_store_device_versions(acc->store, jid, device, NULL, NULL, &broken2);
	return r < 0 ? r : broken2;
}

void mend_omemo2_device_info(mend_account *acc, const char *jid, mend_device_info *d)
{
	unsigned published = 0;
	int wrote = 0;

	if (is_own_bare(acc, jid) && d->id == acc->device_id) { /* this device */
		d->versions =
		    MEND_VERSION_BIT(MEND_VERSION_LEGACY) |
		    (mend_omemo2_sessions_supported() ? MEND_VERSION_BIT(MEND_VERSION_2) : 0);
		return;
	}
	if (mend_store_device_versions(acc->store, jid, d->id, &published, &wrote, NULL) < 0)
		published = 0;
	d->versions = published;
	d->wrote_version = wrote;
	d->send_version = mend_omemo2_version_for(acc, jid, d->id);
	if (d->send_version < 0)
		d->send_version = 0;
}

/* The versions a device publishes and whether its OMEMO:2 bundle was refused. */
static int published_of(mend_account *acc, const char *jid, uint32_t device, unsigned *published,
                        int *broken2)
{
	int r = mend_store_device_versions(acc->store, jid, device, published, NULL, broken2);

	if (r == MEND_ERR_NOT_FOUND) { /* listed before OMEMO:2 was known: a legacy device */
		*published = MEND_VERSION_BIT(MEND_VERSION_LEGACY);
		*broken2 = 0;
		r = MEND_OK;
	}
	if (!mend_omemo2_sessions_supported())
		*published &= MEND_VERSION_BIT(MEND_VERSION_LEGACY);
	return r;
}

int mend_omemo2_missing_version(mend_account *acc, const char *jid, uint32_t device)
{
	unsigned published = 0;
	int broken2 = 0, r = published_of(acc, jid, device, &published, &broken2);

	if (r == MEND_OK && (published & MEND_VERSION_BIT(MEND_VERSION_2)) && !broken2) {
		r = mend_store_session_exists_v(acc->store, jid, device, MEND_VERSION_2);
		if (r == 0)
			return MEND_VERSION_2;
	}
	if (r >= 0 && (published & MEND_VERSION_BIT(MEND_VERSION_LEGACY))) {
		r = mend_store_session_exists(acc->store, jid, device);
		if (r == 0)
			r = mend_store_device_is_broken(acc->store, jid, device);
		if (r == 0)
			return MEND_VERSION_LEGACY;
	}
	return r < 0 ? r : 0;
}

/* The devices of jid with an OMEMO:2 session (sorted), fetched once per run of one JID. */
typedef struct two_ids {
	const char *jid; /* whose ids these are (borrowed from rs) */
	uint32_t *ids;
	size_t n;
} two_ids;

static int has_two_session(mend_account *acc, two_ids *t, const char *jid, uint32_t device)
{
	size_t lo = 0, hi;

	if (!t->jid || !g_str_equal(t->jid, jid)) {
		g_free(t->ids);
		t->ids = NULL;
		t->n = 0;
		t->jid = jid;
		/* an error reads as "none": that device stays legacy, as exists_v < 0 did */
		mend_store_session_devices_v(acc->store, jid, MEND_VERSION_2, &t->ids, &t->n);
	}
	hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->ids[mid] < device)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->n && t->ids[lo] == device;
}

void mend_omemo2_split(mend_account *acc, const mend_recipient *rs, size_t n, GArray *legacy,
                       GArray *two)
{
	two_ids t = {0};
	size_t i;

	for (i = 0; i < n; i++) {
		int v = rs[i].version;

		/* a repair's or heartbeat's device: the version we write to it in, if its session
		 * is there */
		if (!v && has_two_session(acc, &t, rs[i].jid, rs[i].device) &&
		    (mend_omemo2_version_for(acc, rs[i].jid, rs[i].device) == MEND_VERSION_2 ||
		     mend_store_session_exists(acc->store, rs[i].jid, rs[i].device) != 1))
			v = MEND_VERSION_2; /* or only an OMEMO:2 session: the device wrote OMEMO:2
			                     */
		g_array_append_val(v == MEND_VERSION_2 ? two : legacy, rs[i]);
	}
	g_free(t.ids);
}
