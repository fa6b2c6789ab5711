/*
 * engine.c - the protocol engine (being written): PEP device lists and
 * bundles, carbons, MAM catch-up, the pending-send queue.
 */
#include "config.h"

#include "internal.h"

int mend_account_connected(mend_account *acc, const char *full_jid, unsigned flags)
{
	return MEND_ERR_INVALID_ARG;
}

void mend_account_disconnected(mend_account *acc)
{
}

int mend_account_handle_stanza(mend_account *acc, const char *xml)
{
	return 0;
}

int mend_account_send(mend_account *acc, const char *to, const char *body, char **id)
{
	return MEND_ERR_INVALID_ARG;
}

int mend_account_pending_count(mend_account *acc, size_t *n)
{
	*n = 0;
	return MEND_OK;
}

int mend_account_history(mend_account *acc, const char *with, const char *since)
{
	return MEND_ERR_INVALID_ARG;
}

int mend_account_refresh_devices(mend_account *acc, const char *jid)
{
	return MEND_ERR_INVALID_ARG;
}

int mend_account_busy(mend_account *acc)
{
	return 0;
}

int mend_account_device_infos(mend_account *acc, const char *jid, mend_device_info **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return MEND_OK;
}

int mend_account_set_trust(mend_account *acc, const char *jid, uint32_t device, mend_trust trust)
{
	return MEND_ERR_INVALID_ARG;
}
