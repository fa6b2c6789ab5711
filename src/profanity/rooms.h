/*
 * rooms.h - group chats (XEP-0045 rooms) in the Profanity module: what module.c
 * calls in rooms.c, and what rooms.c borrows from module.c.
 *
 * Profanity joins rooms itself: rooms.c tells the core (mend_account_room_join) when
 * it sees our join presence go out or our own presence (status 110) come back, and
 * again after every reconnect. Sending, receiving, the room's history, HELD
 * messages, the title bar and /mend on|off|members|send-anyway|drop in a room
 * window are all here.
 */
#ifndef MEND_PROFANITY_ROOMS_H
#define MEND_PROFANITY_ROOMS_H

#include <strophe.h>
#include "mend/mend.h"
#include "profanity/api.h"

/* What rooms.c borrows from the rest of the module (all required). */
struct mend_prof_rooms_host {
	const struct mend_prof_api *api;
	void (*reply)(const char *text);                 /* /mend output where it was typed */
	void (*show_devices)(const char *jid);           /* /mend devices JID, through reply */
	const char *(*trust_mark)(const mend_event *ev); /* a received message's mark */
	char *(*norm)(const char *jid);                  /* bare, normalised JID, g_free'd */
	int (*listed)(const char *key, const char *jid); /* jid in the settings list key */
	void (*unlist)(const char *key, const char *jid);
};

/* What happens to the stanza whose event mend_prof_rooms_event() saw. */
enum mend_prof_room_rx {
	MEND_PROF_ROOM_NOT = 0, /* not a room's event: module.c handles it */
	MEND_PROF_ROOM_DROP,    /* handled (shown by mend, or a duplicate): Profanity drops it */
	MEND_PROF_ROOM_KEEP     /* Profanity shows it; pre_room_message_display swaps the text */
};

typedef struct mend_prof_rooms mend_prof_rooms;

mend_prof_rooms *mend_prof_rooms_new(const struct mend_prof_rooms_host *host);
void mend_prof_rooms_free(mend_prof_rooms *r);
/* The account is open (rooms waiting to be told to the core are told now) / closed. */
void mend_prof_rooms_opened(mend_prof_rooms *r, mend_account *acc);
void mend_prof_rooms_closed(mend_prof_rooms *r);
/* Every few seconds: lines that waited for their room's window. */
void mend_prof_rooms_tick(mend_prof_rooms *r);

/* A message stanza arrives: before and after mend_account_handle_stanza (its result). */
void mend_prof_rooms_rx_begin(mend_prof_rooms *r, xmpp_stanza_t *st, int active);
void mend_prof_rooms_rx_end(mend_prof_rooms *r, xmpp_stanza_t *st, int handled);
/* The core's event, if it is a room's. */
enum mend_prof_room_rx mend_prof_rooms_event(mend_prof_rooms *r, const mend_event *ev);
/* A notice about `jid`: shown in its room window if it is a room (1), else 0. */
int mend_prof_rooms_notice(mend_prof_rooms *r, const char *jid, const char *text);

void mend_prof_rooms_presence_in(mend_prof_rooms *r, xmpp_stanza_t *st);
void mend_prof_rooms_presence_out(mend_prof_rooms *r, xmpp_stanza_t *st);

/* Whether the user turned encryption on for `room` (bare JID, normalised). */
int mend_prof_rooms_is_on(mend_prof_rooms *r, const char *room);
/* Whether `jid` (bare, normalised) is a room we are in (or joining). */
int mend_prof_rooms_known(mend_prof_rooms *r, const char *jid);
/* A private message to room/nick (XEP-0045 §7.5): NULL (not sent) in an encrypted room. */
char *mend_prof_rooms_pre_priv_send(mend_prof_rooms *r, const char *fulljid, const char *message);

/* Profanity's room hooks (see api.h). */
char *mend_prof_rooms_pre_send(mend_prof_rooms *r, const char *room, const char *message);
char *mend_prof_rooms_pre_display(mend_prof_rooms *r, const char *room, const char *nick,
                                  const char *message);
void mend_prof_rooms_post_display(mend_prof_rooms *r, const char *room);
void mend_prof_rooms_focus(mend_prof_rooms *r, const char *room);
/* The user changed a device's trust: the rooms' title bars follow. */
void mend_prof_rooms_trust_changed(mend_prof_rooms *r);

/* /mend SUB ... typed in room window `room`: 1 if it was a room command (answered). */
int mend_prof_rooms_command(mend_prof_rooms *r, const char *room, char **args);

#endif
