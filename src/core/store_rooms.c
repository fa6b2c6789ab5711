/*
 * store_rooms.c - the group-chat tables of the store (schema v7): the rooms
 * we are in (our nick, the room archive position) and each room's members.
 * A member's affiliation is sealed under "room_members|<room>|<jid>": who
 * receives our keys is decided by it, so a row written or moved by anyone
 * without the store key does not open and is left out (DESIGN §4).
 */
#include "config.h"

#include <string.h>
#include <sqlite3.h>
#include "room.h"

static int sql_err(int rc)
{
	return (rc & 0xff) == SQLITE_NOMEM ? MEND_ERR_NOMEM : MEND_ERR_STORE;
}

/* Steps a cached statement to its end and resets it. */
static int done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
}

/* A statement over (room ?1, text ?2): run to its end. */
static int exec2(mend_store *s, const char *sql, const char *room, const char *text)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
	if (text)
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	return done(st);
}

int mend_store_room_put(mend_store *s, const char *room, const char *nick)
{
	return exec2(s,
	             "INSERT INTO rooms (room, nick) VALUES (?1, ?2)"
	             " ON CONFLICT (room) DO UPDATE SET nick = excluded.nick",
	             room, nick);
}

int mend_store_room_get(mend_store *s, const char *room, char **nick)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, "SELECT nick FROM rooms WHERE room = ?1", &st), rc;

	*nick = NULL;
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*nick = g_strdup((const char *)sqlite3_column_text(st, 0));
	r = rc == SQLITE_ROW ? MEND_OK : rc == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

int mend_store_room_delete(mend_store *s, const char *room)
{
	int r = mend_store_begin(s);

	if (r < 0)
		return r;
	r = exec2(s, "DELETE FROM rooms WHERE room = ?1", room, NULL);
	if (r == MEND_OK)
		r = exec2(s, "DELETE FROM room_members WHERE room = ?1", room, NULL);
	if (r < 0) {
		mend_store_rollback(s);
		return r;
	}
	return mend_store_commit(s);
}

int mend_store_rooms(mend_store *s, GPtrArray *rooms, GPtrArray *nicks)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, "SELECT room, nick FROM rooms ORDER BY room", &st), rc;

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		g_ptr_array_add(rooms, g_strdup((const char *)sqlite3_column_text(st, 0)));
		g_ptr_array_add(nicks, g_strdup((const char *)sqlite3_column_text(st, 1)));
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
}

int mend_store_room_position_get(mend_store *s, const char *room, char **last, int64_t *ts)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(s, "SELECT mam_last, mam_last_ts FROM rooms WHERE room = ?1", &st);
	int rc;

	*last = NULL;
	*ts = 0;
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*last = g_strdup((const char *)sqlite3_column_text(st, 0));
		*ts = sqlite3_column_int64(st, 1);
	}
	r = rc == SQLITE_ROW ? MEND_OK : rc == SQLITE_DONE ? MEND_ERR_NOT_FOUND : sql_err(rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

int mend_store_room_position_set(mend_store *s, const char *room, const char *last, int64_t ts)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(
	    s, "UPDATE rooms SET mam_last = ?2, mam_last_ts = ?3 WHERE room = ?1", &st);

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, last, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ts);
	return done(st);
}

static char *member_aad(const char *room, const char *jid)
{
	return g_strconcat("room_members|", room, "|", jid, NULL);
}

int mend_store_room_member_set(mend_store *s, const char *room, const char *jid,
                               const char *affiliation)
{
	sqlite3_stmt *st = NULL;
	uint8_t *sealed = NULL;
	size_t n = 0;
	char *aad;
	int r;

	if (!affiliation) {
		r = mend_store_stmt(s, "DELETE FROM room_members WHERE room = ?1 AND jid = ?2",
		                    &st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
		return done(st);
	}
	aad = member_aad(room, jid);
	r = mend_store_seal(s, aad, (const uint8_t *)affiliation, strlen(affiliation), &sealed, &n);
	g_free(aad);
	if (r < 0)
		return r;
	r = mend_store_stmt(
	    s, "INSERT OR REPLACE INTO room_members (room, jid, data) VALUES (?1, ?2, ?3)", &st);
	if (r < 0) {
		g_free(sealed);
		return r;
	}
	sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, jid, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, sealed, (int)n, g_free);
	return done(st);
}

/* Unseals one member row's affiliation (NULL when the row does not open). */
static char *member_affiliation(mend_store *s, sqlite3_stmt *st, const char *room)
{
	const char *jid = (const char *)sqlite3_column_text(st, 0);
	char *aad = member_aad(room, jid), *out = NULL;
	uint8_t *plain = NULL;
	size_t len = 0;

	if (mend_store_unseal(s, aad, sqlite3_column_blob(st, 1),
	                      (size_t)sqlite3_column_bytes(st, 1), &plain, &len) == MEND_OK)
		out = g_strndup((const char *)plain, len);
	g_free(plain);
	g_free(aad);
	return out;
}

int mend_store_room_members(mend_store *s, const char *room, GPtrArray *jids, GPtrArray *affs)
{
	sqlite3_stmt *st = NULL;
	int r = mend_store_stmt(
	    s, "SELECT jid, data FROM room_members WHERE room = ?1 ORDER BY jid", &st);
	int rc;

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *aff = member_affiliation(s, st, room);

		if (!aff)
			continue; /* edited or moved: never a recipient */
		g_ptr_array_add(jids, g_strdup((const char *)sqlite3_column_text(st, 0)));
		g_ptr_array_add(affs, aff);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? MEND_OK : sql_err(rc);
}
