/*
 * mend.c - the Profanity plugin mend.so: a thin shim (DESIGN §2).
 *
 * Profanity loads it RTLD_GLOBAL next to its own libsignal-protocol-c. The
 * shim loads the real module (the adapter, the core, libomemo-c) with
 * RTLD_DEEPBIND so the module's ratchet calls bind to libomemo-c, hands it
 * Profanity's API as function pointers, and forwards every hook.
 *
 * This is the one file that includes profapi.h (it defines the pointer
 * variables Profanity fills at load); its name makes Profanity file the
 * commands it registers under mend.so.
 *
 * Safety net: if the module cannot be loaded, messages to contacts and rooms for
 * which encryption is on are replaced by an empty chat state, never sent in
 * plaintext, and the user is told why.
 */
#include "config.h"

#include <dlfcn.h>
#include <libintl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <profapi.h>
#include "api.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define EXPORT __attribute__((visibility("default")))

/* The hooks Profanity looks up with dlsym (Debian installs no profhooks.h: HOSTS.md). */
EXPORT void prof_init(const char *version, const char *status, const char *account_name,
                      const char *fulljid);
EXPORT void prof_on_shutdown(void);
EXPORT void prof_on_unload(void);
EXPORT void prof_on_connect(const char *account_name, const char *fulljid);
EXPORT void prof_on_disconnect(const char *account_name, const char *fulljid);
EXPORT char *prof_on_message_stanza_send(const char *const text);
EXPORT int prof_on_message_stanza_receive(const char *const text);
EXPORT int prof_on_iq_stanza_receive(const char *const text);
EXPORT char *prof_pre_chat_message_display(const char *const barejid, const char *const resource,
                                           const char *message);
EXPORT void prof_on_chat_win_focus(const char *const barejid);
EXPORT char *prof_pre_chat_message_send(const char *const barejid, const char *message);
EXPORT int prof_on_presence_stanza_receive(const char *const text);
EXPORT char *prof_on_presence_stanza_send(const char *const text);
EXPORT char *prof_pre_room_message_send(const char *const roomjid, const char *message);
EXPORT char *prof_pre_room_message_display(const char *const roomjid, const char *const nick,
                                           const char *message);
EXPORT void prof_post_room_message_display(const char *const roomjid, const char *const nick,
                                           const char *message);
EXPORT void prof_on_room_win_focus(const char *const roomjid);
EXPORT char *prof_on_iq_stanza_send(const char *const text);
EXPORT char *prof_pre_priv_message_send(const char *const fulljid, const char *message);

static const struct mend_prof_hooks *hooks;
static char load_error[512];

static void fill_api(struct mend_prof_api *a)
{
	a->abi = MEND_PROF_ABI;
	a->cons_show = prof_cons_show;
	a->register_command = _prof_register_command;
	a->register_timed = _prof_register_timed;
	a->completer_add = _prof_completer_add;
	a->disco_add_feature = _prof_disco_add_feature;
	a->get_current_recipient = prof_get_current_recipient;
	a->log_debug = prof_log_debug;
	a->log_info = prof_log_info;
	a->log_warning = prof_log_warning;
	a->log_error = prof_log_error;
	a->send_stanza = prof_send_stanza;
	a->send_line = prof_send_line;
	a->settings_boolean_get = prof_settings_boolean_get;
	a->settings_boolean_set = prof_settings_boolean_set;
	a->settings_string_list_get = prof_settings_string_list_get;
	a->settings_string_get = prof_settings_string_get;
	a->settings_string_list_add = prof_settings_string_list_add;
	a->settings_string_list_remove = prof_settings_string_list_remove;
	a->chat_set_titlebar_enctext = prof_chat_set_titlebar_enctext;
	a->chat_unset_titlebar_enctext = prof_chat_unset_titlebar_enctext;
	a->chat_set_incoming_char = prof_chat_set_incoming_char;
	a->chat_unset_incoming_char = prof_chat_unset_incoming_char;
	a->chat_set_outgoing_char = prof_chat_set_outgoing_char;
	a->chat_unset_outgoing_char = prof_chat_unset_outgoing_char;
	a->chat_show = prof_chat_show;
	a->chat_show_themed = prof_chat_show_themed;
	a->get_current_muc = prof_get_current_muc;
	a->room_show = prof_room_show;
	a->current_win_is_console = prof_current_win_is_console;
	a->get_name_from_roster = prof_get_name_from_roster;
	a->room_show_themed = prof_room_show_themed;
	a->room_set_titlebar_enctext = prof_room_set_titlebar_enctext;
	a->room_unset_titlebar_enctext = prof_room_unset_titlebar_enctext;
	a->room_set_message_char = prof_room_set_message_char;
	a->room_unset_message_char = prof_room_unset_message_char;
	a->get_room_nick = prof_get_room_nick;
}

/* The module sits beside the installed plugin; MEND_PROFANITY_MODULE overrides (tests). */
static const char *module_path(void)
{
	const char *env = getenv("MEND_PROFANITY_MODULE");

	return env && *env ? env : MEND_PROFANITY_MODULE;
}

static void load_module(void)
{
	static struct mend_prof_api api;
	const char *path = module_path();
	mend_prof_entry entry;
	void *h;

	fill_api(&api);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!h) {
		snprintf(load_error, sizeof(load_error), "%s", dlerror());
		return;
	}
	entry = (mend_prof_entry)dlsym(h, MEND_PROF_ENTRY);
	hooks = entry ? entry(&api) : NULL;
	if (!hooks || hooks->abi != MEND_PROF_ABI) {
		snprintf(load_error, sizeof(load_error), _("%s: not a mend module of this version"),
		         path);
		hooks = NULL;
	}
}

/* The module binds the text domain (mend_i18n_init); without it, this file does. */
static void bind_domain(void)
{
	const char *dir = getenv("MEND_LOCALEDIR"); /* tests: the build's catalogues */

	bindtextdomain(GETTEXT_PACKAGE, dir && *dir ? dir : LOCALEDIR);
	bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
}

static void say_unloaded(void)
{
	char line[700];

	snprintf(line, sizeof(line),
	         _("mend: the OMEMO module could not be loaded (%s); messages to contacts with "
	           "encryption on are NOT sent. Reinstall mend."),
	         load_error);
	prof_cons_show(line);
}

EXPORT void prof_init(const char *version, const char *status, const char *account_name,
                      const char *fulljid)
{
	bind_domain();
	load_module();
	if (!hooks) {
		say_unloaded();
		return;
	}
	hooks->init(version, status, account_name, fulljid);
}

EXPORT void prof_on_shutdown(void)
{
	if (hooks && hooks->on_shutdown)
		hooks->on_shutdown();
}

EXPORT void prof_on_unload(void)
{
	prof_on_shutdown();
}

EXPORT void prof_on_connect(const char *account_name, const char *fulljid)
{
	if (hooks && hooks->on_connect)
		hooks->on_connect(account_name, fulljid);
}

EXPORT void prof_on_disconnect(const char *account_name, const char *fulljid)
{
	if (hooks && hooks->on_disconnect)
		hooks->on_disconnect(account_name, fulljid);
}

/* Whether `jid` is in the settings list `key` (JIDs compare without case: RFC 7622 §3.2). */
static int listed(char *key, const char *jid)
{
	char **list = prof_settings_string_list_get("mend", key);
	int i, found = 0;

	for (i = 0; list && list[i]; i++) {
		found |= jid && strcasecmp(list[i], jid) == 0;
		free(list[i]);
	}
	free(list);
	return found;
}

/*
 * Without the module: is encryption on for `jid` (settings only)? Chats are encrypted by
 * default and the module cannot tell whether the contact has OMEMO: only an explicit
 * /mend off lets a message go.
 */
static int on_for(const char *jid)
{
	if (listed("disabled", jid))
		return 0;
	return listed("enabled", jid) || prof_settings_boolean_get("mend", "default", 1);
}

/* Without the module: is encryption on for the stanza's recipient? */
static int blocked_without_module(const char *text)
{
	const char *to = strstr(text, " to=");
	char jid[1024];
	size_t n;

	if (!strstr(text, "<body"))
		return 0;
	if (!to || (to[4] != '\'' && to[4] != '"'))
		return on_for(NULL);
	n = strcspn(to + 5, "'\"/");
	if (n >= sizeof(jid))
		return 1;
	memcpy(jid, to + 5, n);
	jid[n] = '\0';
	return on_for(jid);
}

EXPORT char *prof_pre_chat_message_send(const char *const barejid, const char *message)
{
	if (hooks)
		return hooks->pre_chat_message_send(barejid, message);
	if (!on_for(barejid))
		return strdup(message);
	say_unloaded();
	return NULL;
}

/* A harmless stanza instead of a plaintext one: Profanity sends whatever we return. */
static char *empty_message(void)
{
	return strdup("<message type='chat'><active "
	              "xmlns='http://jabber.org/protocol/chatstates'/></message>");
}

EXPORT char *prof_on_message_stanza_send(const char *const text)
{
	if (hooks)
		return hooks->on_message_stanza_send(text);
	if (!blocked_without_module(text))
		return NULL;
	say_unloaded();
	return empty_message();
}

EXPORT int prof_on_message_stanza_receive(const char *const text)
{
	return hooks ? hooks->on_message_stanza_receive(text) : 1;
}

EXPORT int prof_on_iq_stanza_receive(const char *const text)
{
	return hooks ? hooks->on_iq_stanza_receive(text) : 1;
}

EXPORT char *prof_pre_chat_message_display(const char *const barejid, const char *const resource,
                                           const char *message)
{
	return hooks ? hooks->pre_chat_message_display(barejid, resource, message) : NULL;
}

EXPORT void prof_on_chat_win_focus(const char *const barejid)
{
	if (hooks && hooks->on_chat_win_focus)
		hooks->on_chat_win_focus(barejid);
}

/* Without the module: a room message goes only where the user never turned mend on. */
EXPORT char *prof_pre_room_message_send(const char *const roomjid, const char *message)
{
	if (hooks)
		return hooks->pre_room_message_send(roomjid, message);
	if (!listed(MEND_PROF_ROOMS_KEY, roomjid))
		return strdup(message);
	say_unloaded();
	return NULL;
}

EXPORT char *prof_pre_room_message_display(const char *const roomjid, const char *const nick,
                                           const char *message)
{
	return hooks ? hooks->pre_room_message_display(roomjid, nick, message) : NULL;
}

EXPORT void prof_post_room_message_display(const char *const roomjid, const char *const nick,
                                           const char *message)
{
	if (hooks)
		hooks->post_room_message_display(roomjid, nick, message);
}

EXPORT int prof_on_presence_stanza_receive(const char *const text)
{
	return hooks ? hooks->on_presence_stanza_receive(text) : 1;
}

EXPORT char *prof_on_presence_stanza_send(const char *const text)
{
	return hooks ? hooks->on_presence_stanza_send(text) : NULL;
}

EXPORT void prof_on_room_win_focus(const char *const roomjid)
{
	if (hooks)
		hooks->on_room_win_focus(roomjid);
}

/* Profanity's own upload slot requests (files.c in the module decides). */
EXPORT char *prof_on_iq_stanza_send(const char *const text)
{
	return hooks && hooks->on_iq_stanza_send ? hooks->on_iq_stanza_send(text) : NULL;
}

/* Without the module: a private message goes only where the room is not encrypted. */
EXPORT char *prof_pre_priv_message_send(const char *const fulljid, const char *message)
{
	char room[1024];
	size_t n = strcspn(fulljid, "/");

	if (hooks)
		return hooks->pre_priv_message_send(fulljid, message);
	if (n >= sizeof(room))
		return NULL;
	memcpy(room, fulljid, n);
	room[n] = '\0';
	if (!listed(MEND_PROF_ROOMS_KEY, room))
		return strdup(message);
	say_unloaded();
	return NULL;
}
