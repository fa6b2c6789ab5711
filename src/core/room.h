/*
 * room.h - what the group-chat modules share (room.c: status, membership,
 * persistence; room_msg.c: sending, receiving, the room archive;
 * store_rooms.c: their tables) and the hooks the engine calls. Nothing here
 * is seen by a host.
 */
#ifndef MEND_CORE_ROOM_H
#define MEND_CORE_ROOM_H

#include "engine.h"

#define NS_MUC       "http://jabber.org/protocol/muc"
#define NS_MUC_USER  "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"

/* Flags of a pending row (store column pending.flags). */
#define MEND_PENDING_ROOM    0x1 /* its jid is a room: a groupchat message to every member */
#define MEND_PENDING_PARTIAL 0x2 /* members without a usable device are left out */
#define MEND_PENDING_HELD    0x4 /* HELD was said: waits for mend_account_release() */

typedef struct room_mam room_mam;

/* One room as this connection knows it. */
typedef struct mend_room {
	char *jid;
	char *nick;    /* our nick, or NULL */
	int status;    /* 0, MEND_ERR_ROOM_OPEN/_ANONYMOUS, _NOT_A_ROOM; NOT_FOUND: not known */
	int disco_out; /* a disco#info question is unanswered */
	unsigned lists_out;    /* affiliation lists asked and not answered */
	GHashTable *occupants; /* nick -> real bare JID (present occupants) */
	room_mam *mam;         /* the room archive query under way (room_msg.c), or NULL */
	char *partial_text;    /* who the last room message left out (sentence), or NULL */
	/* a history query asked while the room's catch-up ran: it starts when that ends */
	int history_waiting;
	int64_t history_since; /* its start (unix seconds), or -1 for all */
	/* held messages' ids -> the HELD text told in this session (memory only, so that a
	 * restart tells them again) */
	GHashTable *held_told;
} mend_room;

struct mend_rooms {
	GHashTable *by_jid; /* normalized bare JID -> mend_room */
};

/* An IQ asked about a room, for its reply (room.c's lists, room_msg.c's archive queries). */
typedef struct room_ask {
	char *room;
	char *what; /* the affiliation of a list, the queryid of an archive query */
} room_ask;

/* --- room.c --- */
void mend_room_ask_free(gpointer p);
/* Whether `st` has a child <name attr=value/>. */
int mend_room_has_child(xmpp_stanza_t *st, const char *name, const char *attr, const char *value);
/* Every room the core knows now (borrowed rooms; g_ptr_array_unref the array). */
GPtrArray *mend_room_all(mend_account *acc);
/* The room `jid` if the core knows it (remembered or asked about), else NULL. */
mend_room *mend_room_get(mend_account *acc, const char *jid);
/* The room `jid`, created (status unknown) when new. */
mend_room *mend_room_ensure(mend_account *acc, const char *jid);
/* Asks the room's disco#info (XEP-0045 §6.4) unless a question is out. */
void mend_room_ask_status(mend_account *acc, mend_room *room);
/* The members' real bare JIDs (ourselves excluded, sorted): free with g_ptr_array_unref. */
GPtrArray *mend_room_member_jids(mend_account *acc, mend_room *room);
/* The sentence of a room status (0: OMEMO can be used). g_free. */
char *mend_room_status_text(const char *room, int status);
/* The real JID of occupant `nick` (borrowed), or NULL. */
const char *mend_room_occupant(mend_room *room, const char *nick);
/* Records the muc#user <item/>s under `x` (XEP-0045 §7.2.3, §9.3); nick: the occupant's. */
void mend_room_items(mend_account *acc, mend_room *room, xmpp_stanza_t *x, const char *nick,
                     int unavailable);

/* --- room_msg.c --- */
/* Sends what waits for the room; 1 when `jid` is a room (0: a contact, the engine's). */
int mend_room_pump(mend_account *acc, const char *jid);
/* A type=groupchat message, or a message from a room's bare JID. 1: consumed, 0: the host's. */
int mend_room_message(mend_account *acc, xmpp_stanza_t *st);
/* Whether `st` (not groupchat) comes from a known room's bare JID. */
int mend_room_is_from_room(mend_account *acc, xmpp_stanza_t *st);
/* A MAM <result/>: 1 when it answers a room query of ours (*r: what handle_stanza returns). */
int mend_room_archive_result(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *result, int *r);
/* Starts the room's archive catch-up from the stored position. */
void mend_room_catchup_start(mend_account *acc, mend_room *room);
/* Asks again the room archives whose catch-up paused on an error, when due. */
void mend_room_poll(mend_account *acc);
/* mend_account_history() for a remembered room. */
int mend_room_history(mend_account *acc, const char *room, const char *since);
/* SEND_FAILED for every message still queued for the room (we left it). */
void mend_room_drop_pending(mend_account *acc, const char *room_jid);
/*
 * A message of `room` (NULL: none) that failed with `error` during the room's first
 * catch-up: 1 when it was not for this device (most of that page predates our joining),
 * counted for one summary line at the end instead of its own.
 */
int mend_room_quiet(mend_account *acc, const char *room, int error);
/* Frees a room's archive query (the stream went down, or the room is forgotten). */
void mend_room_mam_free(mend_account *acc, mend_room *room);

/* --- room.c: the engine's hooks --- */
int mend_room_presence(mend_account *acc, xmpp_stanza_t *st);
void mend_room_disconnected(mend_account *acc);

/* --- store_rooms.c --- */
int mend_store_room_put(mend_store *s, const char *room, const char *nick);
/* The remembered room's nick: MEND_ERR_NOT_FOUND when it is not remembered. */
int mend_store_room_get(mend_store *s, const char *room, char **nick);
/* Forgets a room, its members and its catch-up position. */
int mend_store_room_delete(mend_store *s, const char *room);
/* The remembered rooms and their nicks, by room (GPtrArrays of g_malloc'd strings). */
int mend_store_rooms(mend_store *s, GPtrArray *rooms, GPtrArray *nicks);
/* The room archive position: the last archive id processed (NULL when none) and its time. */
int mend_store_room_position_get(mend_store *s, const char *room, char **last, int64_t *ts);
int mend_store_room_position_set(mend_store *s, const char *room, const char *last, int64_t ts);
/* A member's affiliation (sealed, bound to room and JID); NULL deletes the member. */
int mend_store_room_member_set(mend_store *s, const char *room, const char *jid,
                               const char *affiliation);
/* The members of a room (rows that do not open are left out): JIDs and affiliations. */
int mend_store_room_members(mend_store *s, const char *room, GPtrArray *jids, GPtrArray *affs);

#endif
