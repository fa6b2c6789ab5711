/*
 * shown.c - a message is shown at least once, even across a crash (DESIGN §4).
 *
 * Decrypting a message, keeping it in local history and marking its stanza-id
 * seen commit together (engine.c); only then does the host get it. A crash
 * between that commit and the host showing it would lose the message for good:
 * the ratchet cannot decrypt it again and the stanza-id dedupes every copy. So
 * the same commit also notes the message as not yet shown (a meta row
 * "unshown|<history key>"); once the host has it, the note goes. When the
 * account next catches up, what is still noted is shown again from local
 * history, as archived, with its stanza-id (a host that kept it by stanza-id
 * knows it already). 1:1 messages only: room history keys are not noted.
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include "internal.h"
#include "engine.h"

/*
 * A catch-up page (archive.c: up to 250 results in one transaction) does not note each
 * message with a row of its own: its keys are kept in memory while the page runs and
 * written as ONE row, "unshown-page|<first key>" whose value is the keys joined by NUL,
 * as the page commits (mend_store_batch_closing). The page's events then go to the
 * host in one transaction (announce.c); in that same transaction the page row goes and
 * the keys of messages the host did not get yet (waiting for a device list) get rows of
 * their own. A crash anywhere in between shows the page's messages again, as it showed
 * a noted message again before.
 */
#define UNSHOWN      "unshown|"
#define UNSHOWN_PAGE "unshown-page|"

static const char sql_add[] =
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('" UNSHOWN "' || ?1, '')";
static const char sql_del[] = "DELETE FROM meta WHERE key = '" UNSHOWN "' || ?1";
static const char sql_page_add[] =
    "INSERT OR REPLACE INTO meta (key, value) VALUES ('" UNSHOWN_PAGE "' || ?1, ?2)";
static const char sql_page_del[] = "DELETE FROM meta WHERE key = '" UNSHOWN_PAGE "' || ?1";
/* both kinds of rows ("unshown|", "unshown-page|"), oldest first */
static const char sql_list[] =
    "SELECT key, value FROM meta WHERE key >= 'unshown' AND key < 'unshowo' ORDER BY rowid";

struct mend_shown {
	GPtrArray *page;     /* the keys noted in the open catch-up page (in memory) */
	char *row;           /* the first key: names the page row, once written */
	GHashTable *handing; /* keys of the written row the host has not had yet */
};

static struct mend_shown *state(mend_account *acc)
{
	if (!acc->shown) {
		acc->shown = g_new0(struct mend_shown, 1);
		acc->shown->page = g_ptr_array_new_with_free_func(g_free);
		acc->shown->handing = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	}
	return acc->shown;
}

void mend_shown_free(struct mend_shown *sh)
{
	if (!sh)
		return;
	g_ptr_array_free(sh->page, TRUE);
	g_hash_table_destroy(sh->handing);
	g_free(sh->row);
	g_free(sh);
}

static int run_key(mend_store *s, const char *sql, const char *key)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, sql, &st);

	if (r < 0)
		return r;
	r = sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	if (r == SQLITE_OK)
		r = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r == SQLITE_OK ? MEND_OK : MEND_ERR_STORE;
}

int mend_shown_note(mend_account *acc, const char *key)
{
	if (!key || g_str_has_prefix(key, "room|"))
		return MEND_OK;
	if (!mend_store_batch_open(acc->store)) /* not a page: a row now */
		return run_key(acc->store, sql_add, key);
	g_ptr_array_add(state(acc)->page, g_strdup(key));
	return MEND_OK;
}

int mend_shown_page_write(mend_account *acc)
{
	struct mend_shown *sh = state(acc);
	GByteArray *keys;
	sqlite3_stmt *st = NULL;
	guint i;
	int r;

	if (!sh->page->len)
		return MEND_OK;
	if (sh->row) /* the last page's row is not settled: its keys get rows of their own */
		mend_shown_settle(acc);
	keys = g_byte_array_new();
	for (i = 0; i < sh->page->len; i++) {
		const char *k = g_ptr_array_index(sh->page, i);

		g_byte_array_append(keys, (const guint8 *)k, (guint)strlen(k) + 1);
	}
	r = mend_store_stmt(acc->store, sql_page_add, &st);
	if (r == MEND_OK) {
		sqlite3_bind_text(st, 1, g_ptr_array_index(sh->page, 0), -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, keys->data, (int)keys->len, SQLITE_STATIC);
		r = sqlite3_step(st) == SQLITE_DONE ? MEND_OK : MEND_ERR_STORE;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	g_byte_array_free(keys, TRUE);
	if (r == MEND_OK) { /* the keys move from the page to the set handed over */
		gsize n = 0;
		char **taken = (char **)g_ptr_array_steal(sh->page, &n);

		sh->row = g_strdup(taken[0]);
		for (i = 0; i < n; i++)
			g_hash_table_add(sh->handing, taken[i]);
		g_free(taken);
	}
	g_ptr_array_set_size(sh->page, 0);
	return r;
}

void mend_shown_page_drop(mend_account *acc)
{
	struct mend_shown *sh = acc->shown;

	if (!sh) /* no page was ever noted */
		return;
	g_ptr_array_set_size(sh->page, 0);
	g_hash_table_remove_all(sh->handing);
	g_clear_pointer(&sh->row, g_free);
}

void mend_shown_settle(mend_account *acc)
{
	struct mend_shown *sh = acc->shown;
	GHashTableIter it;
	gpointer key;

	if (!sh || !sh->row)
		return;
	g_hash_table_iter_init(&it, sh->handing);
	while (g_hash_table_iter_next(&it, &key, NULL))
		run_key(acc->store, sql_add, key);
	run_key(acc->store, sql_page_del, sh->row);
	g_hash_table_remove_all(sh->handing);
	g_clear_pointer(&sh->row, g_free);
}

void mend_shown_done(mend_account *acc, const mend_event *ev)
{
	if (ev->kind != MEND_EVENT_MESSAGE || !ev->stanza_id || ev->room)
		return;
	/* one of the page row's: the row goes as the page is settled */
	if (acc->shown && acc->shown->row &&
	    g_hash_table_remove(acc->shown->handing, ev->stanza_id))
		return;
	run_key(acc->store, sql_del, ev->stanza_id);
}

/* The keys of a page row's value (NUL-terminated, one after the other). */
static void page_keys(const char *v, size_t len, GPtrArray *keys)
{
	size_t at = 0, n;

	while (v && at < len) {
		n = strnlen(v + at, len - at);
		if (n)
			g_ptr_array_add(keys, g_strndup(v + at, n));
		at += n + 1;
	}
}

/* Keys of the rows whose key starts with prefix (g_free each), oldest first; with pages,
 * the keys a page row holds follow its own. */
static GPtrArray *noted(mend_account *acc, const char *prefix, GPtrArray *pages)
{
	GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st = NULL;
	size_t n = strlen(prefix);

	if (mend_store_stmt(acc->store, sql_list, &st) < 0)
		return keys;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		if (strncmp(k, prefix, n) != 0)
			continue;
		g_ptr_array_add(keys, g_strdup(k + n));
		if (pages)
			page_keys(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
			          pages);
	}
	sqlite3_reset(st);
	return keys;
}

/* Page rows left by a crash become rows of one message each, in one commit. */
static void unfold_pages(mend_account *acc)
{
	GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *rows = noted(acc, UNSHOWN_PAGE, keys);
	guint i;

	if (rows->len && mend_store_begin(acc->store) == MEND_OK) {
		for (i = 0; i < keys->len; i++)
			run_key(acc->store, sql_add, g_ptr_array_index(keys, i));
		for (i = 0; i < rows->len; i++)
			run_key(acc->store, sql_page_del, g_ptr_array_index(rows, i));
		mend_store_commit(acc->store);
	}
	g_ptr_array_free(rows, TRUE);
	g_ptr_array_free(keys, TRUE);
}

void mend_shown_replay(mend_account *acc)
{
	GPtrArray *keys;
	mend_history_item it;
	guint i;

	unfold_pages(acc);
	keys = noted(acc, UNSHOWN, NULL);
	for (i = 0; i < keys->len; i++) {
		const char *key = g_ptr_array_index(keys, i);

		memset(&it, 0, sizeof(it));
		if (mend_store_history_get(acc->store, key, &it) == MEND_OK) {
			mend_log(acc, MEND_LOG_INFO,
			         "a message kept before a crash is shown again");
			mend_engine_show_kept(acc, &it);
			mend_history_clear(&it);
		} else {
			run_key(acc->store, sql_del, key);
		}
	}
	g_ptr_array_free(keys, TRUE);
}
