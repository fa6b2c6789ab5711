/*
 * gtkui.c - mend's piece of Pidgin's conversation window (plugin gtk-mend,
 * built only when pidgin-dev is found): an OMEMO toggle button in every IM
 * and group chat window's toolbar that shows whether the chat is encrypted and switches it,
 * and the same switch as "Encrypt with OMEMO" in the window's Conversation
 * menu (following the window's active chat).
 *
 * Only Pidgin's public headers (gtkconv.h, gtkplugin.h) and libpurple's
 * public plugin IPC are used: the state comes from the libpurple plugin
 * core-mend ("state", "set", signal "mend-state-changed"), so Finch and
 * Pidgin share one setting per chat.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include <glib.h>
#include <gtk/gtk.h>

#define PURPLE_PLUGINS
#include <conversation.h>
#include <debug.h>
#include <plugin.h>
#include <signals.h>
#include <version.h>

#include <gtkconv.h>
#include <gtkconvwin.h>
#include <gtkplugin.h>

#define _(s)      dgettext(GETTEXT_PACKAGE, s)
#define N_(s)     (s)
#define PLUGIN_ID "gtk-mend"
#define CORE_ID   "core-mend"
#define BUTTON    "mend-button" /* conversation data: our toggle button */
#define ITEM      "mend-item"   /* window data: our check item in its Conversation menu */
#define REFRESH   2             /* seconds: device lists change the default's answer */

static guint refresh_timer;

static PurplePlugin *core(void)
{
	return purple_plugins_find_with_id(CORE_ID);
}

/* A one-to-one chat or a group chat (the room's state: only members-only, non-anonymous rooms
 * can be switched on; core-mend says why otherwise). */
static int is_jabber_conv(PurpleConversation *conv)
{
	PurpleConversationType t = purple_conversation_get_type(conv);

	return (t == PURPLE_CONV_TYPE_IM || t == PURPLE_CONV_TYPE_CHAT) &&
	       !strcmp(purple_account_get_protocol_id(purple_conversation_get_account(conv)),
	               "prpl-jabber");
}

/* 1 when core-mend says this chat is encrypted. */
static int encrypted(PurpleConversation *conv)
{
	gboolean ok = FALSE;
	int on = GPOINTER_TO_INT(purple_plugin_ipc_call(core(), "state", &ok,
	                                                purple_conversation_get_account(conv),
	                                                purple_conversation_get_name(conv)));

	return ok && on;
}

/* Where the button is drawn, in the debug log (for tests that click it). */
static void log_place(GtkWidget *b, GtkAllocation *where, PurpleConversation *conv)
{
	int x = 0, y = 0;

	if (gtk_widget_get_window(b))
		gdk_window_get_origin(gtk_widget_get_window(b), &x, &y);
	purple_debug_info(PLUGIN_ID, "%s: %s (button at %d,%d %dx%d) label \"%s\"\n",
	                  purple_conversation_get_name(conv),
	                  gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(b)) ? "encrypted"
	                                                                     : "not encrypted",
	                  x + where->x, y + where->y, where->width, where->height,
	                  gtk_button_get_label(GTK_BUTTON(b)));
}

/* The button shows the state (changed only when it changed). */
static void show_state(PurpleConversation *conv)
{
	GtkWidget *b = purple_conversation_get_data(conv, BUTTON);
	int on = encrypted(conv);

	/* "mend-shown": 1 + the state the label says (a click changes the button, not the label) */
	if (!b || (gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(b)) == on &&
	           GPOINTER_TO_INT(g_object_get_data(G_OBJECT(b), "mend-shown")) == on + 1))
		return;
	g_object_set_data(G_OBJECT(b), "mend-shown", GINT_TO_POINTER(on + 1));
	g_signal_handlers_block_matched(b, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, conv);
	gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(b), on);
	gtk_button_set_label(GTK_BUTTON(b), on ? _("OMEMO: encrypted") : _("OMEMO: NOT encrypted"));
	g_signal_handlers_unblock_matched(b, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, conv);
	log_place(b, &b->allocation, conv);
}

/* The window's "Encrypt with OMEMO" item follows its active chat. */
static void show_menu(PidginWindow *win)
{
	GtkWidget *item = win ? g_object_get_data(G_OBJECT(win->window), ITEM) : NULL;
	PurpleConversation *conv = item ? pidgin_conv_window_get_active_conversation(win) : NULL;
	int usable = conv && is_jabber_conv(conv), on = usable && encrypted(conv);

	if (!item || (gtk_check_menu_item_get_active(GTK_CHECK_MENU_ITEM(item)) == on &&
	              g_object_get_data(G_OBJECT(item), "mend-conv") == conv))
		return;
	g_object_set_data(G_OBJECT(item), "mend-conv", conv);
	g_signal_handlers_block_matched(item, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, win);
	gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(item), on);
	gtk_widget_set_sensitive(item, usable);
	g_signal_handlers_unblock_matched(item, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, win);
	purple_debug_info(PLUGIN_ID, "menu of %s: %s\n",
	                  conv ? purple_conversation_get_name(conv) : "-",
	                  on ? "checked" : "unchecked");
}

static void toggled(GtkToggleButton *b, PurpleConversation *conv)
{
	purple_plugin_ipc_call(core(), "set", NULL, purple_conversation_get_account(conv),
	                       purple_conversation_get_name(conv),
	                       (guint)gtk_toggle_button_get_active(b));
	show_state(conv);
}

static void menu_toggled(GtkCheckMenuItem *item, PidginWindow *win)
{
	PurpleConversation *conv = pidgin_conv_window_get_active_conversation(win);

	if (conv && is_jabber_conv(conv))
		purple_plugin_ipc_call(core(), "set", NULL, purple_conversation_get_account(conv),
		                       purple_conversation_get_name(conv),
		                       (guint)gtk_check_menu_item_get_active(item));
	if (conv)
		show_state(conv);
	show_menu(win);
}

/* Adds "Encrypt with OMEMO" to the window's Conversation menu (the one with View Log). */
static void add_menu(PidginWindow *win)
{
	GtkWidget *menu, *item;

	if (!win || g_object_get_data(G_OBJECT(win->window), ITEM) || !win->menu.view_log)
		return;
	menu = gtk_widget_get_parent(win->menu.view_log);
	item = gtk_check_menu_item_new_with_mnemonic(_("_Encrypt with OMEMO (mend)"));
	gtk_menu_shell_append(GTK_MENU_SHELL(menu), item);
	g_signal_connect(item, "toggled", G_CALLBACK(menu_toggled), win);
	g_object_set_data(G_OBJECT(win->window), ITEM, item);
	gtk_widget_show(item);
}

/* Adds the toggle to an IM or chat window's toolbar (as pidgin-otr adds its button). */
static void attach(PurpleConversation *conv)
{
	PidginConversation *gtkconv = PIDGIN_CONVERSATION(conv);
	GtkWidget *b;

	if (!gtkconv || !is_jabber_conv(conv) || purple_conversation_get_data(conv, BUTTON))
		return;
	b = gtk_toggle_button_new_with_label("");
	gtk_button_set_relief(GTK_BUTTON(b), GTK_RELIEF_NONE);
	gtk_widget_set_tooltip_text(b, _("Encrypt this chat with OMEMO (mend); the same as "
	                                 "/mend on and /mend off"));
	gtk_box_pack_end(GTK_BOX(gtkconv->toolbar), b, FALSE, FALSE, 0);
	g_signal_connect(b, "toggled", G_CALLBACK(toggled), conv);
	g_signal_connect(b, "size-allocate", G_CALLBACK(log_place), conv);
	purple_conversation_set_data(conv, BUTTON, b);
	gtk_widget_show(b);
	add_menu(gtkconv->win);
	show_state(conv);
	show_menu(gtkconv->win);
}

static void detach(PurpleConversation *conv)
{
	GtkWidget *b = purple_conversation_get_data(conv, BUTTON);

	if (b)
		gtk_widget_destroy(b);
	purple_conversation_set_data(conv, BUTTON, NULL);
}

static void displayed(PidginConversation *gtkconv, gpointer data)
{
	attach(gtkconv->active_conv);
}

static void switched(PurpleConversation *conv, gpointer data)
{
	PidginConversation *gtkconv = PIDGIN_CONVERSATION(conv);

	if (gtkconv)
		show_menu(gtkconv->win);
}

static void state_changed(PurpleAccount *a, const char *jid, gpointer data)
{
	GList *l;

	for (l = purple_get_conversations(); l; l = l->next)
		if (purple_conversation_get_account(l->data) == a)
			show_state(l->data);
	for (l = pidgin_conv_windows_get_list(); l; l = l->next)
		show_menu(l->data);
}

static gboolean refresh(gpointer data)
{
	GList *l;

	for (l = purple_get_conversations(); l; l = l->next)
		show_state(l->data);
	for (l = pidgin_conv_windows_get_list(); l; l = l->next)
		show_menu(l->data);
	return TRUE;
}

static gboolean plugin_load(PurplePlugin *plugin)
{
	GList *l;

	if (!core())
		return FALSE;
	purple_signal_connect(pidgin_conversations_get_handle(), "conversation-displayed", plugin,
	                      PURPLE_CALLBACK(displayed), NULL);
	purple_signal_connect(pidgin_conversations_get_handle(), "conversation-switched", plugin,
	                      PURPLE_CALLBACK(switched), NULL);
	purple_signal_connect(core(), "mend-state-changed", plugin, PURPLE_CALLBACK(state_changed),
	                      NULL);
	for (l = purple_get_conversations(); l; l = l->next)
		attach(l->data);
	refresh_timer = purple_timeout_add_seconds(REFRESH, refresh, NULL);
	return TRUE;
}

static gboolean plugin_unload(PurplePlugin *plugin)
{
	GList *l;

	purple_timeout_remove(refresh_timer);
	purple_signals_disconnect_by_handle(plugin);
	for (l = purple_get_conversations(); l; l = l->next)
		detach(l->data);
	for (l = pidgin_conv_windows_get_list(); l; l = l->next) {
		PidginWindow *win = l->data;
		GtkWidget *item = g_object_get_data(G_OBJECT(win->window), ITEM);

		if (item)
			gtk_widget_destroy(item);
		g_object_set_data(G_OBJECT(win->window), ITEM, NULL);
	}
	return TRUE;
}

static PurplePluginInfo info = {
    PURPLE_PLUGIN_MAGIC,
    PURPLE_MAJOR_VERSION,
    PURPLE_MINOR_VERSION,
    PURPLE_PLUGIN_STANDARD,
    PIDGIN_PLUGIN_TYPE,
    0,
    NULL,
    PURPLE_PRIORITY_DEFAULT,
    PLUGIN_ID,
    "mend (Pidgin window)",
    PACKAGE_VERSION,
    N_("OMEMO on/off in every conversation window"),
    N_("A toggle in each chat window's toolbar that shows whether mend encrypts the chat and "
       "switches it."),
    "the mend authors",
    "",
    plugin_load,
    plugin_unload,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

static void init_plugin(PurplePlugin *plugin)
{
	const char *dir = g_getenv("MEND_LOCALEDIR"); /* tests: the build's catalogues */

	bindtextdomain(GETTEXT_PACKAGE, dir && *dir ? dir : LOCALEDIR);
	bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
	info.summary = (char *)_(info.summary);
	info.description = (char *)_(info.description);
	info.dependencies = g_list_append(NULL, (gpointer)CORE_ID);
}

PURPLE_INIT_PLUGIN(mend_gtk, init_plugin, info)
