/*
 * fuzz-unseal.c - the store's unseal of a damaged row (src/core/store.c,
 * store_seal.c). A store is made once with a fixed key, holding bob's sealed
 * device list 1,2,3. The first input byte picks what the rest is:
 *   even: the bytes of that row as a modified database file holds them; the
 *         list must read as no device unless the row opens (and then be whole);
 *   odd:  a value sealed by us that is not a list of ids (a row written by
 *         some other version); only ids asked about come out, once each.
 * The seeds (corpus/unseal/) are sealed under the fixed key below.
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include "mend/mend.h"
#include "crypto.h"
#include "store.h"
#include "sim.h" /* sim_rm_rf */
#include "fuzz.h"

#define BOB     "bob@x"
#define ROW     "sealed:devicelist:" BOB
#define ROW_AAD "meta|devicelist:" BOB

typedef struct world {
	mend_crypto *crypto;
	mend_store *store;
	char *dir;
} world;

static world *w;

static void world_free(void)
{
	mend_store_close(w->store);
	mend_crypto_free(w->crypto);
	sim_rm_rf(w->dir);
	g_free(w->dir);
	g_free(w);
}

static world *world_get(void)
{
	static const uint32_t ids[] = {1, 2, 3};
	uint8_t key[MEND_STORE_KEY_LEN];
	char *path;

	if (w)
		return w;
	w = g_new0(world, 1);
	memset(key, 0x42, sizeof(key));
	w->dir = g_dir_make_tmp("mend-fuzz-unseal-XXXXXX", NULL);
	FUZZ_CHECK(w->dir != NULL);
	path = g_build_filename(w->dir, "store.db", NULL);
	FUZZ_CHECK(mend_crypto_global_init() == 0 && mend_crypto_new(&w->crypto) == 0);
	FUZZ_CHECK(mend_store_open(&w->store, path, key, w->crypto, NULL) == MEND_OK);
	FUZZ_CHECK(mend_store_sealed_list_set(w->store, BOB, ids, 3) == MEND_OK);
	g_free(path);
	atexit(world_free);
	return w;
}

/* Puts `len` bytes as the row's value, as an edit of the database file would. */
static void damage_row(const uint8_t *blob, size_t len)
{
	sqlite3_stmt *st = NULL;

	FUZZ_CHECK(sqlite3_prepare_v2(mend_store_db(w->store),
	                              "UPDATE meta SET value = ?1 WHERE key = '" ROW "'", -1, &st,
	                              NULL) == SQLITE_OK);
	sqlite3_bind_blob(st, 1, len ? blob : (const void *)"", (int)len, SQLITE_TRANSIENT);
	FUZZ_CHECK(sqlite3_step(st) == SQLITE_DONE &&
	           sqlite3_changes(mend_store_db(w->store)) == 1);
	sqlite3_finalize(st);
}

/* What bob's list reads as now: a mask of the ids 1..4 it keeps (1, 2 and 3 are in the row). */
static unsigned list_now(void)
{
	uint32_t ids[] = {1, 2, 3, 4};
	size_t n = 4, i;
	unsigned mask = 0;

	FUZZ_CHECK(mend_store_sealed_list_filter(w->store, BOB, ids, &n) == MEND_OK);
	FUZZ_CHECK(n <= 4);
	for (i = 0; i < n; i++) {
		FUZZ_CHECK(ids[i] >= 1 && ids[i] <= 4 && !(mask & (1u << ids[i])));
		mask |= 1u << ids[i];
	}
	return mask;
}

static void damaged(const uint8_t *data, size_t size)
{
	uint8_t *plain = NULL;
	size_t len = 0;
	int r = mend_store_unseal(w->store, ROW_AAD, data, size, &plain, &len);
	unsigned mask;

	FUZZ_CHECK(r == MEND_OK || r == MEND_ERR_STORE_CORRUPT);
	FUZZ_CHECK(r != MEND_OK || (plain != NULL && len + 29 == size));
	g_free(plain);
	damage_row(data, size);
	mask = list_now();
	/* nothing unless the row opens */
	FUZZ_CHECK(r == MEND_OK || mask == 0);
}

static void odd_value(const uint8_t *data, size_t size)
{
	uint8_t *sealed = NULL;
	size_t len = 0;

	FUZZ_CHECK(mend_store_seal(w->store, ROW_AAD, data, size, &sealed, &len) == MEND_OK);
	damage_row(sealed, len);
	g_free(sealed);
	list_now();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	world_get();
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		damaged(data + 1, size - 1);
	else
		odd_value(data + 1, size - 1);
	return 0;
}
