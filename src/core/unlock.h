/*
 * unlock.h - a locked Secret Service collection (GNOME Keyring after a
 * restart) is asked to unlock: org.freedesktop.Secret.Service.Unlock, then
 * the returned prompt's Prompt call, which brings up the desktop's unlock
 * dialog. The answer is awaited for a bounded time only, so a host's main
 * loop never hangs; an unanswered prompt stays up, and the next attempt
 * finds the collection unlocked.
 */
#ifndef MEND_CORE_UNLOCK_H
#define MEND_CORE_UNLOCK_H

#include <libsecret/secret.h>

/* How long the hosts wait for the answer to the unlock prompt. */
#define MEND_UNLOCK_WAIT_MS 30000

/*
 * `items` are the search results for the key. 0 when the key can be read
 * without a prompt now: one of them is (or was just) unlocked, or there are
 * none. MEND_ERR_KEYRING_LOCKED when all are locked and stay so: the prompt
 * was dismissed, not answered within `wait_ms`, or not asked for because
 * `wait_ms` < 0. MEND_ERR_KEYRING when the Secret Service failed (*why set
 * when still NULL, g_free).
 */
int mend_unlock_items(SecretService *svc, GList *items, int wait_ms, char **why);

/* The same for the default collection, where a new key goes. */
int mend_unlock_default(SecretService *svc, int wait_ms, char **why);

#endif
