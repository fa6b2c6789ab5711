/*
 * mendpurple.h - what the libpurple plugin's source files share (not installed).
 *
 * plugin.c: one-to-one chats, the account's life, the stanza signals, /mend;
 * rooms.c: group chats (XEP-0045 rooms on the jabber prpl's chat conversations).
 */
#ifndef MEND_PURPLE_H
#define MEND_PURPLE_H

#include <glib.h>

#include <account.h>
#include <connection.h>
#include <conversation.h>
#include <xmlnode.h>

#include "mend/mend.h"

#define _(s)          dgettext(GETTEXT_PACKAGE, s)
#define N_(s)         (s)
#define PREFS         "/plugins/core/mend"
#define PREF_ENABLED  PREFS "/enabled"
#define PREF_DISABLED PREFS "/disabled"

/* One per signed-on jabber account. */
typedef struct conn {
	PurpleConnection *gc;
	mend_account *acc;
	char *bare;
	/* set while the core handles an incoming stanza */
	int rx_consumed;
	/* set while mend writes a message that was (or will go) encrypted */
	int writing_encrypted;
	GHashTable *asked; /* normalised JID -> when we asked for its device list (s) */
	guint tick;        /* the timer calling mend_account_tick() */
	GHashTable *rooms; /* room JID -> our nick: rooms told to the core on this connection */
	GHashTable *held;  /* id of a HELD room message -> its room */
} conn;

/* What a received message is marked with. */
typedef enum mark {
	MARK_VERIFIED,    /* from a device whose fingerprint the user compared */
	MARK_UNVERIFIED,  /* trusted on first use or blindly, never compared */
	MARK_UNTRUSTED,   /* from a device the user does not (or not yet) trust */
	MARK_UNANNOUNCED, /* from a device missing from the sender's published list */
	MARK_PLAINTEXT    /* not encrypted, in a chat that is (or could be) */
} mark;

/* plugin.c */
char *norm_jid(const char *jid);
int listed(const char *pref, PurpleAccount *a, const char *jid);
void set_listed(const char *pref, PurpleAccount *a, const char *jid, int on);
conn *conn_of(PurpleAccount *a);
/* A line in the conversation with jid (a group chat's when jid names an open one). */
void say(PurpleAccount *a, const char *jid, const char *text);
void say_error(PurpleAccount *a, const char *jid, const char *text);
char *with_mark(mark m, const char *escaped);
mark mark_of(const mend_event *ev);
time_t time_of(const char *iso);
void settle_node(xmlnode *node, int r, const char *stanza);
/* /mend WORDS typed in the chat with peer (its lines go there). */
void run_mend(conn *c, PurpleAccount *a, const char *peer, char **words);

/* rooms.c */
void rooms_load(PurplePlugin *plugin);
void rooms_connected(conn *c);
/* The event if it belongs to a group chat (1: handled). */
int room_event(conn *c, const mend_event *ev);
/* jabber-sending-xmlnode: a groupchat message or a room join; 1 when it was one. */
int room_sending(conn *c, PurpleConnection *gc, xmlnode *node);
/* jabber-receiving-xmlnode, before the core: our own presence in a room (status 110). */
void room_receiving(conn *c, xmlnode *node);
/* /mend typed in a group chat. */
void room_command(conn *c, PurpleConversation *conv, char **words);
/* The Pidgin window's toggle: whether the room is encrypted, and switching it. */
int room_state(PurpleAccount *a, const char *room);
void room_set(PurpleAccount *a, const char *room, int on);
/* The chat's state in one sentence (the status line). */
const char *room_state_text(PurpleAccount *a, const char *room);

#endif
