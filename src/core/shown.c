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

#define UNSHOWN "unshown|"

static const char sql_add[] =
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('" UNSHOWN "' || ?1, '')";
static const char sql_del[] = "DELETE FROM meta WHERE key = '" UNSHOWN "' || ?1";
static const char sql_list[] = "SELECT substr(key, ?1) FROM meta WHERE key >= '" UNSHOWN
                               "' AND key < '" UNSHOWN "\xff' ORDER BY rowid";

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
	return key && !g_str_has_prefix(key, "room|") ? run_key(acc->store, sql_add, key) : MEND_OK;
}

void mend_shown_done(mend_account *acc, const mend_event *ev)
{
	if (ev->kind == MEND_EVENT_MESSAGE && ev->stanza_id && !ev->room)
		run_key(acc->store, sql_del, ev->stanza_id);
}

/* The noted keys, oldest first (g_free each). */
static GPtrArray *noted(mend_account *acc)
{
	GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
	sqlite3_stmt *st = NULL;

	if (mend_store_stmt(acc->store, sql_list, &st) < 0)
		return keys;
	sqlite3_bind_int(st, 1, (int)strlen(UNSHOWN) + 1);
	while (sqlite3_step(st) == SQLITE_ROW)
		g_ptr_array_add(keys, g_strdup((const char *)sqlite3_column_text(st, 0)));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return keys;
}

void mend_shown_replay(mend_account *acc)
{
	GPtrArray *keys = noted(acc);
	mend_history_item it;
	guint i;

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
