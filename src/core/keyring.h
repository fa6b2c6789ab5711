/*
 * keyring.h - where the 256-bit store key lives: the Secret Service through
 * libsecret (GNOME Keyring, KWallet), or, where none answers, a 0600 key file
 * beside the database (DESIGN §4).
 */
#ifndef MEND_CORE_KEYRING_H
#define MEND_CORE_KEYRING_H

#include <stdint.h>
#include "mend/mend.h"
#include "store.h"

typedef enum mend_key_source {
	MEND_KEY_FROM_SECRET_SERVICE = 1,
	MEND_KEY_FROM_FILE = 2
} mend_key_source;

/*
 * Finds the store key for (account_jid, db_path); when none exists and
 * `may_create` is set, makes a new random key and keeps it (Secret Service
 * first unless mode is MEND_KEYRING_FILE; the key file `<db_path>.key`, mode
 * 0600, when no Secret Service answers and mode is MEND_KEYRING_AUTO).
 * *source says where the key is; *created is 1 when it was just made.
 * MEND_ERR_STORE_KEY_MISSING when there is none and may_create is 0;
 * MEND_ERR_KEYRING when mode is MEND_KEYRING_SECRET and no Secret Service answers.
 * When the key (or, for a new key, the default collection) is only in a
 * locked collection, the Secret Service is asked to unlock it (the desktop's
 * prompt, unlock.h) and the answer awaited up to `unlock_wait_ms`;
 * MEND_ERR_KEYRING_LOCKED when it stays locked or `unlock_wait_ms` < 0 (no
 * prompt). No key file is made then.
 * When `why` is non-NULL and the Secret Service failed, *why receives its
 * message (g_free) for the log.
 */
int mend_keyring_get_key(const char *account_jid, const char *db_path, mend_keyring_mode mode,
                         int unlock_wait_ms, int may_create, uint8_t key[MEND_STORE_KEY_LEN],
                         mend_key_source *source, int *created, char **why);

/* Removes the key from the Secret Service and the key file (tests, account removal). */
int mend_keyring_forget(const char *account_jid, const char *db_path);

#endif
