/*
 * api.h - the contract between mend.so (the Profanity plugin: a thin shim)
 * and mend-profanity-module.so (the adapter, the core and libomemo-c).
 *
 * DESIGN §2: Profanity links libsignal-protocol-c and loads plugins with
 * RTLD_GLOBAL; libomemo-c exports the same names. So the shim, which Profanity
 * loads, never touches the ratchet: it dlopen()s the module with RTLD_DEEPBIND
 * (its calls then bind to libomemo-c) and hands it Profanity's API as the
 * function pointers below, since the module must not include profapi.h (it
 * would bind to its own NULL copies of Profanity's pointer variables).
 */
#ifndef MEND_PROFANITY_API_H
#define MEND_PROFANITY_API_H

#define MEND_PROF_ABI   3
#define MEND_PROF_ENTRY "mend_profanity_module"
/* The plugin's file name as Profanity knows it, for the calls that take one. */
#define MEND_PROF_FILE "mend.c"
/* The settings list (group "mend") of rooms with encryption on; the shim reads it too. */
#define MEND_PROF_ROOMS_KEY "rooms"

typedef void (*mend_prof_cmd_cb)(char **args);
typedef void (*mend_prof_timed_cb)(void);

/* Profanity's API, as the shim got it (see profapi.h for each call). */
struct mend_prof_api {
	int abi;
	int (*cons_show)(const char *const message);
	void (*register_command)(const char *filename, const char *command_name, int min_args,
	                         int max_args, char **synopsis, const char *description,
	                         char *arguments[][2], char **examples, mend_prof_cmd_cb callback);
	void (*register_timed)(const char *filename, mend_prof_timed_cb callback, int seconds);
	void (*completer_add)(const char *filename, const char *key, char **items);
	void (*disco_add_feature)(const char *filename, char *feature);
	char *(*get_current_recipient)(void);
	void (*log_debug)(const char *message);
	void (*log_info)(const char *message);
	void (*log_warning)(const char *message);
	void (*log_error)(const char *message);
	int (*send_stanza)(char *stanza);
	void (*send_line)(char *line);
	int (*settings_boolean_get)(char *group, char *key, int def);
	void (*settings_boolean_set)(char *group, char *key, int value);
	char **(*settings_string_list_get)(char *group, char *key);
	void (*settings_string_list_add)(char *group, char *key, char *value);
	int (*settings_string_list_remove)(char *group, char *key, char *value);
	int (*chat_set_titlebar_enctext)(const char *barejid, const char *enctext);
	int (*chat_unset_titlebar_enctext)(const char *barejid);
	int (*chat_set_incoming_char)(const char *barejid, const char *ch);
	int (*chat_unset_incoming_char)(const char *barejid);
	int (*chat_set_outgoing_char)(const char *barejid, const char *ch);
	int (*chat_unset_outgoing_char)(const char *barejid);
	int (*chat_show)(const char *const barejid, const char *const message);
	int (*chat_show_themed)(const char *const barejid, const char *const group,
	                        const char *const item, const char *const def, const char *const ch,
	                        const char *const message);
	char *(*get_current_muc)(void);
	int (*room_show)(const char *const roomjid, const char *const message);
	int (*current_win_is_console)(void);
	char *(*get_name_from_roster)(const char *barejid); /* malloc'd */
	/* group chats (ABI 3) */
	int (*room_show_themed)(const char *const roomjid, const char *const group,
	                        const char *const item, const char *const def, const char *const ch,
	                        const char *const message);
	int (*room_set_titlebar_enctext)(const char *roomjid, const char *enctext);
	int (*room_unset_titlebar_enctext)(const char *roomjid);
	int (*room_set_message_char)(const char *roomjid, const char *ch);
	int (*room_unset_message_char)(const char *roomjid);
	char *(*get_room_nick)(
	    const char *barejid); /* Profanity's own: not freed; NULL if not in it */
	/* files.tls.ca: allocated (free), def when unset */
	char *(*settings_string_get)(char *group, char *key, char *def);
};

/* The module's side: Profanity's hooks, forwarded by the shim (NULL members are skipped). */
struct mend_prof_hooks {
	int abi;
	void (*init)(const char *version, const char *status, const char *account_name,
	             const char *fulljid);
	void (*on_shutdown)(void);
	void (*on_connect)(const char *account_name, const char *fulljid);
	void (*on_disconnect)(const char *account_name, const char *fulljid);
	/* returns a malloc'd stanza to send instead, or NULL to send the original */
	char *(*on_message_stanza_send)(const char *text);
	/* 1: Profanity goes on with the stanza; 0: it drops it */
	int (*on_message_stanza_receive)(const char *text);
	int (*on_iq_stanza_receive)(const char *text);
	/* a malloc'd replacement for what is shown, or NULL */
	char *(*pre_chat_message_display)(const char *barejid, const char *resource,
	                                  const char *message);
	void (*on_chat_win_focus)(const char *barejid);
	/* a malloc'd message to send on, or NULL: Profanity neither sends nor shows it */
	char *(*pre_chat_message_send)(const char *barejid, const char *message);
	/* group chats (ABI 3) */
	int (*on_presence_stanza_receive)(const char *text); /* 1: Profanity goes on */
	char *(*on_presence_stanza_send)(const char *text);  /* as on_message_stanza_send */
	char *(*pre_room_message_send)(const char *roomjid, const char *message);
	char *(*pre_room_message_display)(const char *roomjid, const char *nick,
	                                  const char *message);
	void (*post_room_message_display)(const char *roomjid, const char *nick,
	                                  const char *message);
	void (*on_room_win_focus)(const char *roomjid);
	/* a malloc'd IQ to send instead, or NULL to send the original */
	char *(*on_iq_stanza_send)(const char *text);
	/* a private message to a room occupant (room/nick): as pre_chat_message_send */
	char *(*pre_priv_message_send)(const char *fulljid, const char *message);
};

typedef const struct mend_prof_hooks *(*mend_prof_entry)(const struct mend_prof_api *api);

/* The module's one exported symbol (MEND_PROF_ENTRY). */
const struct mend_prof_hooks *mend_profanity_module(const struct mend_prof_api *api);

#endif
