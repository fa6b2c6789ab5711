/*
 * harness.c - a headless libpurple 2.x client for mend's end-to-end tests.
 *
 *   harness --user-dir DIR --jid USER@HOST/RESOURCE --password PW
 *           --server 127.0.0.1 --port PORT [--security opportunistic_tls]
 *           [--plugin-dir DIR] [--plugin ID|PATH]... [--xml] [--verbose]
 *
 * It is set up like libpurple's nullclient example: libpurple's event loop on
 * GLib's main loop, purple_util_set_user_dir() and the plugin search paths
 * before purple_core_init(), a buddy list and the prefs loaded from the user
 * dir, then the plugins loaded by id, then one jabber account enabled.
 *
 * stdout: one JSON object per line (see tests/e2e/README.md for all of them):
 *   {"type":"plugin","id":ID,"loaded":BOOL,"error":STR|null,"path":STR|null}
 *   {"type":"ready","jid":JID,"ui":"mend-harness","libpurple":"2.14.12"}
 *   {"type":"signed_on","jid":JID,"display_name":STR}
 *   {"type":"connection_error","reason":N,"fatal":BOOL,"text":STR}
 *   {"type":"im","conv":NAME,"who":STR,"alias":STR,"text":PLAIN,"html":MARKUP,
 *    "flags":["recv",...],"mtime":UNIX}           what the conversation window shows
 *   {"type":"xml","dir":"in"|"out","xml":STR}     the wire (with --xml)
 *   {"type":"notify",...}, {"type":"request",...}, command results, {"type":"bye"}
 * stdin: one command per line (send, sendhtml, cmd, chatcmd, chatsend, join, disconnect, connect,
 * raw, rawtext, close, load, unload, answer, cancel, account, ping, quit); EOF quits too. stderr:
 * libpurple's warnings and errors; everything with --verbose.
 */
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>

#include <account.h>
#include <cmds.h>
#include <connection.h>
#include <conversation.h>
#include <core.h>
#include <debug.h>
#include <eventloop.h>
#include <notify.h>
#include <plugin.h>
#include <prefs.h>
#include <proxy.h>
#include <prpl.h>
#include <request.h>
#include <savedstatuses.h>
#include <server.h>
#include <signals.h>
#include <status.h>
#include <util.h>
#include <version.h>
#include <xmlnode.h>

#define UI_ID       "mend-harness"
#define PRPL_JABBER "prpl-jabber"

static struct {
	char *user_dir;
	char *jid;
	char *password;
	char *server;
	int port;
	char *security;
	char **plugin_dirs;
	char **plugins;
	gboolean xml;
	gboolean verbose;
} opt;

static GMainLoop *loop;
static PurpleAccount *account;
static int handle; /* our signal handle: any unique address */
static gboolean quitting;
static int exit_code;

/* --- JSON lines on stdout ------------------------------------------------------ */

static void json_string(GString *out, const char *s)
{
	char *valid;
	const char *p;

	if (s == NULL) {
		g_string_append(out, "null");
		return;
	}
	valid = g_utf8_make_valid(s, -1);
	g_string_append_c(out, '"');
	for (p = valid; *p; p++) {
		unsigned char c = (unsigned char)*p;

		switch (c) {
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		case '\r':
			g_string_append(out, "\\r");
			break;
		case '\t':
			g_string_append(out, "\\t");
			break;
		default:
			if (c < 0x20)
				g_string_append_printf(out, "\\u%04x", c);
			else
				g_string_append_c(out, (char)c);
		}
	}
	g_string_append_c(out, '"');
	g_free(valid);
}

static GString *json_begin(const char *type)
{
	GString *out = g_string_new("{\"type\":");

	json_string(out, type);
	return out;
}

static void json_str(GString *out, const char *key, const char *value)
{
	g_string_append_printf(out, ",\"%s\":", key);
	json_string(out, value);
}

static void json_int(GString *out, const char *key, long long value)
{
	g_string_append_printf(out, ",\"%s\":%lld", key, value);
}

static void json_bool(GString *out, const char *key, gboolean value)
{
	g_string_append_printf(out, ",\"%s\":%s", key, value ? "true" : "false");
}

/* Print and free. One write per line, flushed: the reader is a pipe. */
static void json_end(GString *out)
{
	g_string_append(out, "}\n");
	fwrite(out->str, 1, out->len, stdout);
	fflush(stdout);
	g_string_free(out, TRUE);
}

static void emit_error(const char *command, const char *error)
{
	GString *j = json_begin("command_error");

	json_str(j, "command", command);
	json_str(j, "error", error);
	json_end(j);
}

/* --- libpurple's event loop on GLib's (as in nullclient) --------------------- */

#define READ_COND  (G_IO_IN | G_IO_HUP | G_IO_ERR)
#define WRITE_COND (G_IO_OUT | G_IO_HUP | G_IO_ERR | G_IO_NVAL)

typedef struct io_closure {
	PurpleInputFunction function;
	guint result;
	gpointer data;
} io_closure;

static gboolean io_invoke(GIOChannel *source, GIOCondition condition, gpointer data)
{
	io_closure *closure = data;
	int cond = 0;

	if (condition & READ_COND)
		cond |= PURPLE_INPUT_READ;
	if (condition & WRITE_COND)
		cond |= PURPLE_INPUT_WRITE;
	closure->function(closure->data, g_io_channel_unix_get_fd(source),
	                  (PurpleInputCondition)cond);
	return TRUE;
}

static guint input_add(gint fd, PurpleInputCondition condition, PurpleInputFunction function,
                       gpointer data)
{
	io_closure *closure = g_new0(io_closure, 1);
	GIOChannel *channel;
	int cond = 0;

	closure->function = function;
	closure->data = data;
	if (condition & PURPLE_INPUT_READ)
		cond |= READ_COND;
	if (condition & PURPLE_INPUT_WRITE)
		cond |= WRITE_COND;
	channel = g_io_channel_unix_new(fd);
	closure->result = g_io_add_watch_full(channel, G_PRIORITY_DEFAULT, (GIOCondition)cond,
	                                      io_invoke, closure, g_free);
	g_io_channel_unref(channel);
	return closure->result;
}

static PurpleEventLoopUiOps eventloop_ops = {
    .timeout_add = g_timeout_add,
    .timeout_remove = g_source_remove,
    .input_add = input_add,
    .input_remove = g_source_remove,
    .input_get_error = NULL,
    .timeout_add_seconds = g_timeout_add_seconds,
};

/* --- debug: stderr only (libpurple's own printing would go to stdout) ---------- */

static const char *level_name(PurpleDebugLevel level)
{
	switch (level) {
	case PURPLE_DEBUG_MISC:
		return "misc";
	case PURPLE_DEBUG_INFO:
		return "info";
	case PURPLE_DEBUG_WARNING:
		return "warning";
	case PURPLE_DEBUG_ERROR:
		return "error";
	case PURPLE_DEBUG_FATAL:
		return "fatal";
	default:
		return "all";
	}
}

static gboolean debug_is_enabled(PurpleDebugLevel level, const char *category)
{
	return opt.verbose || level >= PURPLE_DEBUG_WARNING;
}

static void debug_print(PurpleDebugLevel level, const char *category, const char *text)
{
	GDateTime *now = g_date_time_new_now_local();
	char *stamp = g_date_time_format(now, "%H:%M:%S");
	size_t n = text ? strlen(text) : 0;

	fprintf(stderr, "(%s.%03d) %s %s: %s%s", stamp, g_date_time_get_microsecond(now) / 1000,
	        level_name(level), category ? category : "-", text ? text : "",
	        n && text[n - 1] == '\n' ? "" : "\n");
	g_free(stamp);
	g_date_time_unref(now);
}

static PurpleDebugUiOps debug_ops = {
    .print = debug_print,
    .is_enabled = debug_is_enabled,
};

static void print_to_stderr(const gchar *text)
{
	fputs(text, stderr);
}

/* --- the conversation window ------------------------------------------------------ */

static const struct {
	PurpleMessageFlags flag;
	const char *name;
} flag_names[] = {
    {PURPLE_MESSAGE_SEND, "send"},
    {PURPLE_MESSAGE_RECV, "recv"},
    {PURPLE_MESSAGE_SYSTEM, "system"},
    {PURPLE_MESSAGE_AUTO_RESP, "auto_resp"},
    {PURPLE_MESSAGE_ACTIVE_ONLY, "active_only"},
    {PURPLE_MESSAGE_NICK, "nick"},
    {PURPLE_MESSAGE_NO_LOG, "no_log"},
    {PURPLE_MESSAGE_WHISPER, "whisper"},
    {PURPLE_MESSAGE_ERROR, "error"},
    {PURPLE_MESSAGE_DELAYED, "delayed"},
    {PURPLE_MESSAGE_RAW, "raw"},
    {PURPLE_MESSAGE_IMAGES, "images"},
    {PURPLE_MESSAGE_NOTIFY, "notify"},
    {PURPLE_MESSAGE_NO_LINKIFY, "no_linkify"},
    {PURPLE_MESSAGE_INVISIBLE, "invisible"},
    {PURPLE_MESSAGE_REMOTE_SEND, "remote_send"},
};

/*
 * write_conv is what a UI draws: libpurple calls it from
 * purple_conversation_write() after the "writing-im-msg" signal (which may
 * change or cancel the text) and before "wrote-im-msg". write_im is left
 * NULL, so purple_conv_im_write() falls back to purple_conversation_write()
 * as Pidgin's and Finch's write_im do in the end.
 */
static void write_conv(PurpleConversation *conv, const char *name, const char *alias,
                       const char *message, PurpleMessageFlags flags, time_t mtime)
{
	PurpleConversationType type = purple_conversation_get_type(conv);
	GString *j = json_begin(type == PURPLE_CONV_TYPE_CHAT ? "chat" : "im");
	char *plain = purple_markup_strip_html(message ? message : "");
	size_t i;
	int first = 1;

	json_str(j, "conv", purple_conversation_get_name(conv));
	json_str(j, "who", name);
	json_str(j, "alias", alias);
	json_str(j, "text", plain);
	json_str(j, "html", message);
	g_string_append(j, ",\"flags\":[");
	for (i = 0; i < G_N_ELEMENTS(flag_names); i++) {
		if (!(flags & flag_names[i].flag))
			continue;
		if (!first)
			g_string_append_c(j, ',');
		json_string(j, flag_names[i].name);
		first = 0;
	}
	g_string_append_c(j, ']');
	json_int(j, "mtime", (long long)mtime);
	json_int(j, "now", (long long)time(NULL));
	json_end(j);
	g_free(plain);
}

static PurpleConversationUiOps conv_ops = {
    .write_conv = write_conv,
};

/* --- notifications and requests (a test answers requests by id) ---------------- */

static const char *notify_kind(PurpleNotifyMsgType type)
{
	switch (type) {
	case PURPLE_NOTIFY_MSG_ERROR:
		return "error";
	case PURPLE_NOTIFY_MSG_WARNING:
		return "warning";
	default:
		return "info";
	}
}

static void *notify_message(PurpleNotifyMsgType type, const char *title, const char *primary,
                            const char *secondary)
{
	GString *j = json_begin("notify");

	json_str(j, "kind", notify_kind(type));
	json_str(j, "title", title);
	json_str(j, "primary", primary);
	json_str(j, "secondary", secondary);
	json_end(j);
	return NULL;
}

static void *notify_formatted(const char *title, const char *primary, const char *secondary,
                              const char *text)
{
	GString *j = json_begin("notify");
	char *plain = purple_markup_strip_html(text ? text : "");

	json_str(j, "kind", "formatted");
	json_str(j, "title", title);
	json_str(j, "primary", primary);
	json_str(j, "secondary", secondary);
	json_str(j, "text", plain);
	json_end(j);
	g_free(plain);
	return NULL;
}

static void *notify_userinfo(PurpleConnection *gc, const char *who, PurpleNotifyUserInfo *info)
{
	GString *j = json_begin("notify");
	char *html = purple_notify_user_info_get_text_with_newline(info, "\n");
	char *plain = purple_markup_strip_html(html ? html : "");

	json_str(j, "kind", "userinfo");
	json_str(j, "who", who);
	json_str(j, "text", plain);
	json_end(j);
	g_free(plain);
	g_free(html);
	return NULL;
}

static PurpleNotifyUiOps notify_ops = {
    .notify_message = notify_message,
    .notify_formatted = notify_formatted,
    .notify_userinfo = notify_userinfo,
};

typedef struct request {
	unsigned id;
	PurpleRequestType type;
	const char *kind;
	GCallback ok_cb;
	GCallback cancel_cb;
	void *user_data;
	int default_value;
	char *default_text;
	PurpleRequestFields *fields;
	GPtrArray *callbacks; /* actions: GCallback per action */
	GArray *values;       /* choices: int value per choice */
} request;

static GHashTable *requests; /* id -> request* */
static unsigned next_request_id = 1;

static void request_free(gpointer data)
{
	request *r = data;

	if (r->callbacks)
		g_ptr_array_free(r->callbacks, TRUE);
	if (r->values)
		g_array_free(r->values, TRUE);
	g_free(r->default_text);
	g_free(r);
}

static request *request_new(PurpleRequestType type, const char *kind, GString *j, const char *title,
                            const char *primary, const char *secondary, PurpleAccount *acct,
                            const char *who)
{
	request *r = g_new0(request, 1);

	r->id = next_request_id++;
	r->type = type;
	r->kind = kind;
	g_hash_table_insert(requests, GUINT_TO_POINTER(r->id), r);
	json_int(j, "id", r->id);
	json_str(j, "kind", kind);
	json_str(j, "title", title);
	json_str(j, "primary", primary);
	json_str(j, "secondary", secondary);
	json_str(j, "who", who);
	json_str(j, "account", acct ? purple_account_get_username(acct) : NULL);
	return r;
}

static void *request_input(const char *title, const char *primary, const char *secondary,
                           const char *default_value, gboolean multiline, gboolean masked,
                           gchar *hint, const char *ok_text, GCallback ok_cb,
                           const char *cancel_text, GCallback cancel_cb, PurpleAccount *acct,
                           const char *who, PurpleConversation *conv, void *user_data)
{
	GString *j = json_begin("request");
	request *r =
	    request_new(PURPLE_REQUEST_INPUT, "input", j, title, primary, secondary, acct, who);

	r->ok_cb = ok_cb;
	r->cancel_cb = cancel_cb;
	r->user_data = user_data;
	r->default_text = g_strdup(default_value);
	json_str(j, "default", default_value);
	json_end(j);
	return r;
}

static void *request_choice(const char *title, const char *primary, const char *secondary,
                            int default_value, const char *ok_text, GCallback ok_cb,
                            const char *cancel_text, GCallback cancel_cb, PurpleAccount *acct,
                            const char *who, PurpleConversation *conv, void *user_data,
                            va_list choices)
{
	GString *j = json_begin("request");
	request *r =
	    request_new(PURPLE_REQUEST_CHOICE, "choice", j, title, primary, secondary, acct, who);
	const char *label;
	int first = 1;

	r->ok_cb = ok_cb;
	r->cancel_cb = cancel_cb;
	r->user_data = user_data;
	r->default_value = default_value;
	r->values = g_array_new(FALSE, FALSE, sizeof(int));
	g_string_append(j, ",\"choices\":[");
	while ((label = va_arg(choices, const char *)) != NULL) {
		int value = va_arg(choices, int);

		g_array_append_val(r->values, value);
		g_string_append_printf(j, "%s{\"label\":", first ? "" : ",");
		json_string(j, label);
		g_string_append_printf(j, ",\"value\":%d}", value);
		first = 0;
	}
	g_string_append_c(j, ']');
	json_int(j, "default", default_value);
	json_end(j);
	return r;
}

static void *request_actions(const char *kind, const char *title, const char *primary,
                             const char *secondary, int default_action, PurpleAccount *acct,
                             const char *who, void *user_data, size_t action_count, va_list actions)
{
	GString *j = json_begin("request");
	request *r =
	    request_new(PURPLE_REQUEST_ACTION, kind, j, title, primary, secondary, acct, who);
	size_t i;

	r->user_data = user_data;
	r->default_value = default_action;
	r->callbacks = g_ptr_array_new();
	g_string_append(j, ",\"actions\":[");
	for (i = 0; i < action_count; i++) {
		const char *label = va_arg(actions, const char *);
		GCallback cb = va_arg(actions, GCallback);

		g_ptr_array_add(r->callbacks, (gpointer)cb);
		if (i)
			g_string_append_c(j, ',');
		json_string(j, label);
	}
	g_string_append_c(j, ']');
	json_int(j, "default", default_action);
	json_end(j);
	return r;
}

static void *request_action(const char *title, const char *primary, const char *secondary,
                            int default_action, PurpleAccount *acct, const char *who,
                            PurpleConversation *conv, void *user_data, size_t action_count,
                            va_list actions)
{
	return request_actions("action", title, primary, secondary, default_action, acct, who,
	                       user_data, action_count, actions);
}

static void *request_action_with_icon(const char *title, const char *primary, const char *secondary,
                                      int default_action, PurpleAccount *acct, const char *who,
                                      PurpleConversation *conv, gconstpointer icon_data,
                                      gsize icon_size, void *user_data, size_t action_count,
                                      va_list actions)
{
	return request_actions("action", title, primary, secondary, default_action, acct, who,
	                       user_data, action_count, actions);
}

static void *request_fields(const char *title, const char *primary, const char *secondary,
                            PurpleRequestFields *fields, const char *ok_text, GCallback ok_cb,
                            const char *cancel_text, GCallback cancel_cb, PurpleAccount *acct,
                            const char *who, PurpleConversation *conv, void *user_data)
{
	GString *j = json_begin("request");
	request *r =
	    request_new(PURPLE_REQUEST_FIELDS, "fields", j, title, primary, secondary, acct, who);

	r->ok_cb = ok_cb;
	r->cancel_cb = cancel_cb;
	r->user_data = user_data;
	r->fields = fields;
	json_end(j);
	return r;
}

static void close_request(PurpleRequestType type, void *ui_handle)
{
	request *r = ui_handle;
	GString *j = json_begin("request_closed");

	json_int(j, "id", r->id);
	json_end(j);
	g_hash_table_remove(requests, GUINT_TO_POINTER(r->id));
}

static PurpleRequestUiOps request_ops = {
    .request_input = request_input,
    .request_choice = request_choice,
    .request_action = request_action,
    .request_fields = request_fields,
    .close_request = close_request,
    .request_action_with_icon = request_action_with_icon,
};

/* answer ID [ARG]: action index | choice value | input text | fields (defaults);
 * cancel ID. The request is closed as a UI closes its dialog. */
static void cmd_answer(const char *line, const char *args, gboolean cancel)
{
	char *end = NULL;
	unsigned long id = strtoul(args, &end, 10);
	request *r = g_hash_table_lookup(requests, GUINT_TO_POINTER((guint)id));
	const char *arg;
	GString *j;

	if (r == NULL || end == args) {
		emit_error(line, "no such request");
		return;
	}
	arg = end;
	while (*arg == ' ')
		arg++;
	if (r->type == PURPLE_REQUEST_ACTION) {
		long i = *arg ? strtol(arg, NULL, 10) : r->default_value;

		if (cancel)
			i = (long)r->callbacks->len - 1;
		if (i < 0 || (guint)i >= r->callbacks->len) {
			emit_error(line, "no such action");
			return;
		}
		if (g_ptr_array_index(r->callbacks, i))
			((PurpleRequestActionCb)g_ptr_array_index(r->callbacks, i))(r->user_data,
			                                                            (int)i);
	} else if (r->type == PURPLE_REQUEST_CHOICE) {
		int value = *arg ? (int)strtol(arg, NULL, 10) : r->default_value;
		GCallback cb = cancel ? r->cancel_cb : r->ok_cb;

		if (cb)
			((PurpleRequestChoiceCb)cb)(r->user_data, value);
	} else if (r->type == PURPLE_REQUEST_INPUT) {
		GCallback cb = cancel ? r->cancel_cb : r->ok_cb;

		if (cb)
			((PurpleRequestInputCb)cb)(r->user_data, cancel ? r->default_text : arg);
	} else if (r->type == PURPLE_REQUEST_FIELDS) {
		GCallback cb = cancel ? r->cancel_cb : r->ok_cb;

		if (cb)
			((PurpleRequestFieldsCb)cb)(r->user_data, r->fields);
	}
	j = json_begin("answered");
	json_int(j, "id", (long long)id);
	json_bool(j, "cancel", cancel);
	json_end(j);
	/* the callback may have closed it already */
	r = g_hash_table_lookup(requests, GUINT_TO_POINTER((guint)id));
	if (r)
		purple_request_close(r->type, r);
}

/* --- connection signals --------------------------------------------------------- */

static void signed_on(PurpleConnection *gc, gpointer data)
{
	GString *j = json_begin("signed_on");

	json_str(j, "jid", purple_account_get_username(purple_connection_get_account(gc)));
	json_str(j, "display_name", purple_connection_get_display_name(gc));
	json_end(j);
}

static void signed_off(PurpleConnection *gc, gpointer data)
{
	GString *j = json_begin("signed_off");

	json_str(j, "jid", purple_account_get_username(purple_connection_get_account(gc)));
	json_end(j);
}

static void connection_error(PurpleConnection *gc, PurpleConnectionError reason, const char *text,
                             gpointer data)
{
	GString *j = json_begin("connection_error");

	json_str(j, "jid", purple_account_get_username(purple_connection_get_account(gc)));
	json_int(j, "reason", reason);
	json_bool(j, "fatal", purple_connection_error_is_fatal(reason));
	json_str(j, "text", text);
	json_end(j);
}

/* --xml: the wire as the prpl sees it. Received stanzas before any plugin
 * (lowest priority runs first), sent text after every plugin (highest runs
 * last; jabber-sending-text is emitted right before the bytes are written). */
static void xml_in(PurpleConnection *gc, xmlnode **packet, gpointer data)
{
	char *text;
	GString *j;

	if (packet == NULL || *packet == NULL)
		return;
	text = xmlnode_to_str(*packet, NULL);
	j = json_begin("xml");
	json_str(j, "dir", "in");
	json_str(j, "xml", text);
	json_end(j);
	g_free(text);
}

static gboolean blank(const char *s)
{
	for (; *s; s++)
		if (!g_ascii_isspace(*s))
			return FALSE;
	return TRUE;
}

static void xml_out(PurpleConnection *gc, char **text, gpointer data)
{
	GString *j;

	/* whitespace keepalives: nothing to see */
	if (text == NULL || *text == NULL || blank(*text))
		return;
	j = json_begin("xml");
	json_str(j, "dir", "out");
	json_str(j, "xml", *text);
	json_end(j);
}

/* --- core ------------------------------------------------------------------------- */

static GHashTable *ui_info;

static GHashTable *get_ui_info(void)
{
	if (ui_info == NULL) {
		ui_info = g_hash_table_new(g_str_hash, g_str_equal);
		g_hash_table_insert(ui_info, "name", "mend-harness");
		g_hash_table_insert(ui_info, "version", "0");
		g_hash_table_insert(ui_info, "client_type", "pc");
	}
	return ui_info;
}

static void ui_quit(void)
{
	if (ui_info)
		g_hash_table_destroy(ui_info);
	ui_info = NULL;
}

static void ui_init(void)
{
	purple_conversations_set_ui_ops(&conv_ops);
	purple_notify_set_ui_ops(&notify_ops);
	purple_request_set_ui_ops(&request_ops);
}

static PurpleCoreUiOps core_ops = {
    .ui_init = ui_init,
    .quit = ui_quit,
    .get_ui_info = get_ui_info,
};

/* --- plugins --------------------------------------------------------------------- */

static void emit_plugin(const char *wanted, PurplePlugin *p, gboolean loaded, const char *error)
{
	GString *j = json_begin("plugin");

	json_str(j, "id", p && p->info ? p->info->id : wanted);
	json_bool(j, "loaded", loaded);
	json_str(j, "error", error);
	json_str(j, "path", p ? p->path : NULL);
	json_end(j);
}

/* After a failed lookup: why? Probe every file of the plugin dirs again and
 * report the ones libpurple could not use (dlopen errors, ABI, no init). */
static void report_probe_errors(void)
{
	char **d;

	for (d = opt.plugin_dirs; d && *d; d++) {
		GDir *dir = g_dir_open(*d, 0, NULL);
		const char *name;

		if (dir == NULL)
			continue;
		while ((name = g_dir_read_name(dir)) != NULL) {
			char *path;
			PurplePlugin *p;
			GString *j;

			if (!g_str_has_suffix(name, "." G_MODULE_SUFFIX))
				continue;
			path = g_build_filename(*d, name, NULL);
			p = purple_plugin_probe(path);
			j = json_begin("plugin_probe");
			json_str(j, "path", path);
			json_str(j, "id", p && p->info ? p->info->id : NULL);
			json_str(j, "error", p ? p->error : "not a libpurple plugin");
			json_end(j);
			g_free(path);
		}
		g_dir_close(dir);
	}
}

static PurplePlugin *find_plugin(const char *what)
{
	if (strchr(what, '/') != NULL)
		return purple_plugin_probe(what);
	return purple_plugins_find_with_id(what);
}

static gboolean load_plugin(const char *what)
{
	PurplePlugin *p = find_plugin(what);
	gboolean ok;

	if (p == NULL) {
		emit_plugin(what, NULL, FALSE, "not found in the plugin search path");
		report_probe_errors();
		return FALSE;
	}
	ok = purple_plugin_is_loaded(p) || purple_plugin_load(p);
	emit_plugin(what, p, ok && purple_plugin_is_loaded(p),
	            ok ? NULL : (p->error ? p->error : "purple_plugin_load failed"));
	return ok;
}

/* --- the account ------------------------------------------------------------------ */

static void setup_account(void)
{
	PurpleProxyInfo *proxy;
	PurpleSavedStatus *status;

	account = purple_accounts_find(opt.jid, PRPL_JABBER);
	if (account == NULL) {
		account = purple_account_new(opt.jid, PRPL_JABBER);
		purple_accounts_add(account);
	}
	purple_account_set_password(account, opt.password);
	purple_account_set_remember_password(account, TRUE);
	purple_account_set_string(account, "connect_server", opt.server);
	purple_account_set_int(account, "port", opt.port);
	/* the test Prosody offers no STARTTLS: plain TCP, PLAIN in clear */
	purple_account_set_string(account, "connection_security", opt.security);
	purple_account_set_bool(account, "auth_plain_in_clear", TRUE);
	proxy = purple_proxy_info_new();
	purple_proxy_info_set_type(proxy, PURPLE_PROXY_NONE);
	purple_account_set_proxy_info(account, proxy);
	purple_account_set_enabled(account, UI_ID, TRUE);
	status = purple_savedstatus_new(NULL, PURPLE_STATUS_AVAILABLE);
	purple_savedstatus_activate(status);
}

static PurpleConnection *connection(const char *line)
{
	PurpleConnection *gc = purple_account_get_connection(account);

	if (gc == NULL || !PURPLE_CONNECTION_IS_CONNECTED(gc)) {
		emit_error(line, "not connected");
		return NULL;
	}
	return gc;
}

static PurpleConversation *im_conv(const char *line, const char *jid)
{
	PurpleConversation *conv;

	if (connection(line) == NULL)
		return NULL;
	conv = purple_conversation_new(PURPLE_CONV_TYPE_IM, account, jid);
	if (conv == NULL)
		emit_error(line, "no conversation");
	return conv;
}

/* /help [COMMAND], as Pidgin's and Finch's own: the registered help texts of a command */
static PurpleCmdRet help_cb(PurpleConversation *conv, const gchar *cmd, gchar **args, gchar **error,
                            void *data)
{
	GList *text = purple_cmd_help(conv, args[0] && *args[0] ? args[0] : NULL), *l;
	GString *s = g_string_new(NULL);

	for (l = text; l; l = l->next)
		g_string_append_printf(s, "%s%s", (char *)l->data, l->next ? "\n" : "");
	if (!text)
		g_string_append(s, "No such command (in this context).");
	purple_conversation_write(conv, NULL, s->str, PURPLE_MESSAGE_NO_LOG, time(NULL));
	g_list_free(text);
	g_string_free(s, TRUE);
	return PURPLE_CMD_RET_OK;
}

/* --- commands on stdin ------------------------------------------------------------- */

static void do_quit(void)
{
	GString *j;

	if (quitting)
		return;
	quitting = TRUE;
	/* like Pidgin/Finch on quit: the core disconnects every account, unloads the
	 * plugins and saves accounts.xml, blist.xml and prefs.xml */
	purple_core_quit();
	if (requests)
		g_hash_table_destroy(requests);
	requests = NULL;
	j = json_begin("bye");
	json_end(j);
	g_main_loop_quit(loop);
}

static const char *cmd_status_name(PurpleCmdStatus s)
{
	switch (s) {
	case PURPLE_CMD_STATUS_OK:
		return "ok";
	case PURPLE_CMD_STATUS_FAILED:
		return "failed";
	case PURPLE_CMD_STATUS_NOT_FOUND:
		return "not_found";
	case PURPLE_CMD_STATUS_WRONG_ARGS:
		return "wrong_args";
	case PURPLE_CMD_STATUS_WRONG_PRPL:
		return "wrong_prpl";
	case PURPLE_CMD_STATUS_WRONG_TYPE:
		return "wrong_type";
	default:
		return "unknown";
	}
}

/* split "WORD REST" -> word (newly allocated), *rest (inside line) */
static char *first_word(const char *s, const char **rest)
{
	size_t n = strcspn(s, " ");
	const char *r = s + n;

	while (*r == ' ')
		r++;
	*rest = r;
	return g_strndup(s, n);
}

static void cmd_send(const char *line, const char *args, gboolean html)
{
	const char *text;
	char *jid = first_word(args, &text);
	PurpleConversation *conv;

	if (!*jid || !*text) {
		emit_error(line, "usage: send JID TEXT");
	} else if ((conv = im_conv(line, jid)) != NULL) {
		/* a UI's text entry gives markup: what the user typed, escaped */
		char *markup = html ? g_strdup(text) : g_markup_escape_text(text, -1);
		GString *j;

		purple_conv_im_send(PURPLE_CONV_IM(conv), markup);
		g_free(markup);
		j = json_begin("sent");
		json_str(j, "to", jid);
		json_end(j);
	}
	g_free(jid);
}

/* a group chat conversation (not joined: for commands typed in its window) */
static PurpleConversation *chat_conv(const char *line, const char *room)
{
	PurpleConversation *conv;

	if (connection(line) == NULL)
		return NULL;
	conv = purple_find_conversation_with_account(PURPLE_CONV_TYPE_CHAT, room, account);
	if (conv == NULL)
		conv = purple_conversation_new(PURPLE_CONV_TYPE_CHAT, account, room);
	if (conv == NULL)
		emit_error(line, "no conversation");
	return conv;
}

/* chatsend ROOM TEXT: typed into the joined group chat's entry (escaped to markup, as a UI's
 * entry gives it), then purple_conv_chat_send */
static void cmd_chatsend(const char *line, const char *args)
{
	const char *text;
	char *room = first_word(args, &text), *markup;
	PurpleConversation *conv;
	GString *j;

	if (!*room || !*text) {
		emit_error(line, "usage: chatsend ROOM TEXT");
	} else if ((conv = chat_conv(line, room)) != NULL) {
		/* joined: among the connection's chats (serv_got_joined_chat put it there) */
		if (!g_slist_find(purple_conversation_get_gc(conv)->buddy_chats, conv) ||
		    purple_conv_chat_has_left(PURPLE_CONV_CHAT(conv))) {
			emit_error(line, "not in that room");
		} else {
			markup = g_markup_escape_text(text, -1);
			purple_conv_chat_send(PURPLE_CONV_CHAT(conv), markup);
			g_free(markup);
			j = json_begin("chat_sent");
			json_str(j, "to", room);
			json_end(j);
		}
	}
	g_free(room);
}

static void cmd_cmd(const char *line, const char *args, gboolean chat)
{
	const char *cmdline;
	char *jid = first_word(args, &cmdline);
	PurpleConversation *conv;

	if (*cmdline == '/')
		cmdline++;
	if (!*jid || !*cmdline) {
		emit_error(line, "usage: cmd|chatcmd JID /COMMAND ARGS");
	} else if ((conv = chat ? chat_conv(line, jid) : im_conv(line, jid)) != NULL) {
		char *markup = g_markup_escape_text(cmdline, -1);
		char *error = NULL;
		PurpleCmdStatus s = purple_cmd_do_command(conv, cmdline, markup, &error);
		GString *j = json_begin("cmd");

		json_str(j, "jid", jid);
		json_str(j, "command", cmdline);
		json_str(j, "status", cmd_status_name(s));
		json_str(j, "error", error);
		json_end(j);
		g_free(error);
		g_free(markup);
	}
	g_free(jid);
}

/* raw XML: through "jabber-sending-xmlnode", exactly as the prpl's own
 * jabber_send() does (plugins see it; the caller frees the original node) */
static void cmd_raw(const char *line, const char *xml)
{
	PurpleConnection *gc = connection(line);
	xmlnode *node, *orig;
	GString *j;

	if (gc == NULL)
		return;
	node = xmlnode_from_str(xml, -1);
	if (node == NULL) {
		emit_error(line, "not well-formed XML");
		return;
	}
	orig = node;
	purple_signal_emit(purple_connection_get_prpl(gc), "jabber-sending-xmlnode", gc, &node);
	xmlnode_free(orig);
	j = json_begin("raw_sent");
	json_bool(j, "blocked", node == NULL);
	json_end(j);
}

/* rawtext XML: the prpl's send_raw: bytes to the socket, past every xmlnode hook */
static void cmd_rawtext(const char *line, const char *xml)
{
	PurpleConnection *gc = connection(line);
	PurplePluginProtocolInfo *info;
	GString *j;
	int n;

	if (gc == NULL)
		return;
	info = PURPLE_PLUGIN_PROTOCOL_INFO(purple_connection_get_prpl(gc));
	if (info->send_raw == NULL) {
		emit_error(line, "the prpl has no send_raw");
		return;
	}
	n = info->send_raw(gc, xml, (int)strlen(xml));
	j = json_begin("raw_sent");
	json_int(j, "bytes", n);
	json_end(j);
}

static void cmd_close(const char *line, const char *jid)
{
	PurpleConversation *conv =
	    purple_find_conversation_with_account(PURPLE_CONV_TYPE_IM, jid, account);
	GString *j;

	if (conv)
		purple_conversation_destroy(conv);
	j = json_begin("closed");
	json_str(j, "conv", jid);
	json_bool(j, "existed", conv != NULL);
	json_end(j);
}

/* join ROOM@SERVICE NICK: a group chat (XEP-0045), as the join dialog does */
static void cmd_join(const char *line, const char *args)
{
	const char *nick;
	char *room = first_word(args, &nick), *at = strchr(room, '@');
	PurpleConnection *gc = connection(line);
	GHashTable *comps;

	if (gc == NULL || at == NULL || !*nick) {
		if (gc != NULL)
			emit_error(line, "usage: join ROOM@SERVICE NICK");
		g_free(room);
		return;
	}
	comps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_hash_table_insert(comps, g_strdup("room"), g_strndup(room, at - room));
	g_hash_table_insert(comps, g_strdup("server"), g_strdup(at + 1));
	g_hash_table_insert(comps, g_strdup("handle"), g_strdup(nick));
	serv_join_chat(gc, comps);
	g_hash_table_destroy(comps);
	g_free(room);
	json_end(json_begin("join_sent"));
}

static void chat_joined(PurpleConversation *conv, gpointer data)
{
	GString *j = json_begin("chat_joined");

	json_str(j, "conv", purple_conversation_get_name(conv));
	json_end(j);
}

static void cmd_unload(const char *line, const char *what)
{
	PurplePlugin *p = purple_plugins_find_with_id(what);
	GString *j;

	if (p == NULL) {
		emit_error(line, "no such plugin");
		return;
	}
	j = json_begin("unloaded");
	json_str(j, "id", what);
	json_bool(j, "ok", purple_plugin_unload(p));
	json_end(j);
}

static void cmd_account(void)
{
	PurpleConnection *gc = purple_account_get_connection(account);
	GString *j = json_begin("account");

	json_str(j, "jid", purple_account_get_username(account));
	json_bool(j, "enabled", purple_account_get_enabled(account, UI_ID));
	json_bool(j, "connected", purple_account_is_connected(account));
	json_str(j, "display_name", gc ? purple_connection_get_display_name(gc) : NULL);
	json_end(j);
}

/* disconnect | connect: the account goes offline (its group chats are left, as when the
 * connection is lost) and signs on again ("signed_off", then "signed_on") */
static void cmd_connection(int on)
{
	GString *j = json_begin(on ? "connecting" : "disconnected");

	if (on)
		purple_account_connect(account);
	else
		purple_account_disconnect(account);
	json_end(j);
}

static void run_command(const char *line)
{
	const char *args;
	char *verb = first_word(line, &args);

	if (!strcmp(verb, "send")) {
		cmd_send(line, args, FALSE);
	} else if (!strcmp(verb, "sendhtml")) {
		cmd_send(line, args, TRUE);
	} else if (!strcmp(verb, "cmd")) {
		cmd_cmd(line, args, FALSE);
	} else if (!strcmp(verb, "chatcmd")) {
		cmd_cmd(line, args, TRUE);
	} else if (!strcmp(verb, "chatsend")) {
		cmd_chatsend(line, args);
	} else if (!strcmp(verb, "join")) {
		cmd_join(line, args);
	} else if (!strcmp(verb, "raw")) {
		cmd_raw(line, args);
	} else if (!strcmp(verb, "rawtext")) {
		cmd_rawtext(line, args);
	} else if (!strcmp(verb, "close")) {
		cmd_close(line, args);
	} else if (!strcmp(verb, "load")) {
		load_plugin(args);
	} else if (!strcmp(verb, "unload")) {
		cmd_unload(line, args);
	} else if (!strcmp(verb, "answer")) {
		cmd_answer(line, args, FALSE);
	} else if (!strcmp(verb, "cancel")) {
		cmd_answer(line, args, TRUE);
	} else if (!strcmp(verb, "account")) {
		cmd_account();
	} else if (!strcmp(verb, "disconnect") || !strcmp(verb, "connect")) {
		cmd_connection(!strcmp(verb, "connect"));
	} else if (!strcmp(verb, "ping")) {
		json_end(json_begin("pong"));
	} else if (!strcmp(verb, "quit")) {
		do_quit();
	} else if (*verb) {
		emit_error(
		    line,
		    "unknown command (send JID TEXT | sendhtml JID HTML | cmd JID "
		    "/CMD | chatcmd ROOM /CMD | chatsend ROOM TEXT | join ROOM NICK | "
		    "raw XML | rawtext "
		    "XML | close JID | load ID | unload ID | "
		    "answer ID [ARG] | cancel ID | account | disconnect | connect | ping | quit)");
	}
	g_free(verb);
}

static gboolean stdin_ready(GIOChannel *ch, GIOCondition cond, gpointer data)
{
	char *line = NULL;
	gsize len = 0;
	GIOStatus st;

	if (quitting)
		return FALSE;
	st = g_io_channel_read_line(ch, &line, &len, NULL, NULL);
	if (st == G_IO_STATUS_AGAIN)
		return TRUE;
	if (st != G_IO_STATUS_NORMAL) {
		g_free(line);
		do_quit();
		return FALSE;
	}
	g_strchomp(line);
	run_command(line);
	g_free(line);
	return !quitting;
}

static gboolean on_signal(gpointer data)
{
	do_quit();
	return G_SOURCE_REMOVE;
}

/* --- main -------------------------------------------------------------------------- */

static gboolean parse_args(int argc, char **argv)
{
	GOptionEntry entries[] = {
	    {"user-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.user_dir, "purple user dir", "DIR"},
	    {"jid", 0, 0, G_OPTION_ARG_STRING, &opt.jid, "account", "USER@HOST/RESOURCE"},
	    {"password", 0, 0, G_OPTION_ARG_STRING, &opt.password, "password", "PW"},
	    {"server", 0, 0, G_OPTION_ARG_STRING, &opt.server, "connect server", "HOST"},
	    {"port", 0, 0, G_OPTION_ARG_INT, &opt.port, "port", "PORT"},
	    {"security", 0, 0, G_OPTION_ARG_STRING, &opt.security,
	     "connection_security (opportunistic_tls)", "S"},
	    {"plugin-dir", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt.plugin_dirs,
	     "plugin search path", "DIR"},
	    {"plugin", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.plugins, "load plugin", "ID|PATH"},
	    {"xml", 0, 0, G_OPTION_ARG_NONE, &opt.xml, "print the XML stream", NULL},
	    {"verbose", 0, 0, G_OPTION_ARG_NONE, &opt.verbose, "all debug output to stderr", NULL},
	    {NULL, 0, 0, 0, NULL, NULL, NULL},
	};
	GOptionContext *ctx = g_option_context_new("- headless libpurple client for tests");
	GError *err = NULL;
	gboolean ok;

	g_option_context_add_main_entries(ctx, entries, NULL);
	ok = g_option_context_parse(ctx, &argc, &argv, &err);
	g_option_context_free(ctx);
	if (!ok) {
		fprintf(stderr, "harness: %s\n", err->message);
		g_error_free(err);
		return FALSE;
	}
	if (!opt.user_dir || !opt.jid || !opt.password || !opt.port) {
		fprintf(stderr, "harness: --user-dir, --jid, --password and --port are required\n");
		return FALSE;
	}
	if (!opt.server)
		opt.server = g_strdup("127.0.0.1");
	if (!opt.security)
		opt.security = g_strdup("opportunistic_tls");
	return TRUE;
}

static void connect_signals(void)
{
	PurplePlugin *jabber = purple_find_prpl(PRPL_JABBER);

	purple_signal_connect(purple_connections_get_handle(), "signed-on", &handle,
	                      PURPLE_CALLBACK(signed_on), NULL);
	purple_signal_connect(purple_connections_get_handle(), "signed-off", &handle,
	                      PURPLE_CALLBACK(signed_off), NULL);
	purple_signal_connect(purple_connections_get_handle(), "connection-error", &handle,
	                      PURPLE_CALLBACK(connection_error), NULL);
	purple_signal_connect(purple_conversations_get_handle(), "chat-joined", &handle,
	                      PURPLE_CALLBACK(chat_joined), NULL);
	if (opt.xml && jabber) {
		purple_signal_connect_priority(jabber, "jabber-receiving-xmlnode", &handle,
		                               PURPLE_CALLBACK(xml_in), NULL,
		                               PURPLE_SIGNAL_PRIORITY_LOWEST);
		purple_signal_connect_priority(jabber, "jabber-sending-text", &handle,
		                               PURPLE_CALLBACK(xml_out), NULL,
		                               PURPLE_SIGNAL_PRIORITY_HIGHEST);
	}
}

int main(int argc, char **argv)
{
	GIOChannel *in;
	GString *j;
	char **d, **p;

	signal(SIGPIPE, SIG_IGN);
	setlocale(LC_ALL, ""); /* as Pidgin and Finch do: the plugin speaks LANGUAGE */
	if (!parse_args(argc, argv))
		return 2;
	g_set_print_handler(print_to_stderr);
	loop = g_main_loop_new(NULL, FALSE);
	requests = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, request_free);

	purple_util_set_user_dir(opt.user_dir);
	purple_debug_set_enabled(FALSE); /* TRUE would g_print to stdout */
	purple_debug_set_ui_ops(&debug_ops);
	purple_core_set_ui_ops(&core_ops);
	purple_eventloop_set_ui_ops(&eventloop_ops);
	for (d = opt.plugin_dirs; d && *d; d++)
		purple_plugins_add_search_path(*d);
	if (!purple_core_init(UI_ID)) {
		fprintf(stderr, "harness: purple_core_init failed\n");
		return 1;
	}
	purple_set_blist(purple_blist_new());
	purple_blist_load();
	purple_prefs_load();
	connect_signals();
	purple_cmd_register(
	    "help", "w", PURPLE_CMD_P_DEFAULT,
	    PURPLE_CMD_FLAG_CHAT | PURPLE_CMD_FLAG_IM | PURPLE_CMD_FLAG_ALLOW_WRONG_ARGS, NULL,
	    help_cb, "help &lt;command&gt;: Help on a specific command.", NULL);

	for (p = opt.plugins; p && *p; p++)
		load_plugin(*p);

	setup_account();
	j = json_begin("ready");
	json_str(j, "jid", opt.jid);
	json_str(j, "ui", UI_ID);
	json_str(j, "libpurple", purple_core_get_version());
	json_end(j);

	in = g_io_channel_unix_new(STDIN_FILENO);
	g_io_channel_set_encoding(in, NULL, NULL);
	g_io_channel_set_flags(in, G_IO_FLAG_NONBLOCK, NULL);
	g_io_add_watch(in, G_IO_IN | G_IO_HUP | G_IO_ERR, stdin_ready, NULL);
	g_unix_signal_add(SIGTERM, on_signal, NULL);
	g_unix_signal_add(SIGINT, on_signal, NULL);

	g_main_loop_run(loop);

	g_io_channel_unref(in);
	g_main_loop_unref(loop);
	g_free(opt.user_dir);
	g_free(opt.jid);
	g_free(opt.password);
	g_free(opt.server);
	g_free(opt.security);
	g_strfreev(opt.plugin_dirs);
	g_strfreev(opt.plugins);
	return exit_code;
}
