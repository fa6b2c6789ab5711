/*
 * files.c - encrypted files in the Profanity plugin. Received aesgcm://
 * links (XEP-0454) are shown as "file NAME from HOST: /mend save N" and kept
 * by number; /mend save [N|URL] downloads, checks and saves one in the
 * download folder ($XDG_DOWNLOAD_DIR, else ~/Downloads), never overwriting;
 * /mend sendfile PATH encrypts and uploads a file through the core (XEP-0363)
 * and sends its link. Profanity's own /sendfile encrypts only with its own
 * OMEMO: in a chat mend encrypts, its slot request is replaced so that
 * nothing is uploaded unencrypted, and the user is told the command to use.
 *
 * HTTPS certificates are always verified; the plugin setting [mend]
 * files.tls.ca=PATH names a PEM file of certificates trusted beside the
 * system's (a test server's own, say). The setting files.save-dir=DIR saves
 * each file received live in DIR at once. Transfers run in threads of their
 * own (files_job.c): Profanity's window never waits for a server.
 * Profanity's hooks run on one thread, so this file keeps one state.
 */
#include "config.h"

#include <errno.h>
#include <libintl.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <strophe.h>
#include "core/files.h"
#include "profanity/files.h"

#define _(s)         dgettext(GETTEXT_PACKAGE, s)
#define NS_UPLOAD    "urn:xmpp:http:upload:0"
#define MARK_FILE    "~"
#define MARK_NOTICE  "-"
#define SETTINGS     "mend"
#define CA_KEY       "files.tls.ca"
#define SAVE_DIR_KEY "files.save-dir"

static mend_file_shelf *shelf; /* the received links, by number */

static char *transfer_opts(const struct mend_prof_api *api, mend_transfer_opts *o);
static void save(const struct mend_prof_api *api, mend_account *acc, const char *arg,
                 const char *dir, const char *chat, const char *room, mend_prof_reply reply);

char *mend_prof_file_received(const struct mend_prof_api *api, mend_account *acc,
                              const mend_event *ev)
{
	unsigned n = mend_file_shelf_add(&shelf, ev->body);
	/* files.save-dir: not our own, and not history, which shows again after a restart */
	char *dir = ev->outgoing || ev->archived
	                ? NULL
	                : api->settings_string_get(SETTINGS, SAVE_DIR_KEY, NULL);
	char *num = g_strdup_printf("%u", n);

	if (dir && *dir) /* the line saying where follows in the same window */
		save(api, acc, num, dir, ev->room ? NULL : ev->peer, ev->room, NULL);
	free(dir);
	g_free(num);
	return g_strdup_printf(_("file %s from %s: /mend save %u"), ev->file->name, ev->file->host,
	                       n);
}

char *mend_prof_file_sent(const mend_event *ev)
{
	return g_strdup_printf(_("file %s (encrypted, uploaded)"), ev->file->name);
}

void mend_prof_files_free(void)
{
	mend_file_shelf_free(shelf);
	shelf = NULL;
}

/* Verified TLS, trusting files.tls.ca beside the system's; returns that path (free). */
static char *transfer_opts(const struct mend_prof_api *api, mend_transfer_opts *o)
{
	char *ca = api->settings_string_get(SETTINGS, CA_KEY, NULL);

	memset(o, 0, sizeof(*o));
	o->ca_file = ca;
	return ca;
}

/* --- /mend save [N|URL] ------------------------------------------------------------ */

/* The window a save answers in once the file is saved (the console when neither). */
typedef struct save_job {
	const struct mend_prof_api *api;
	char *chat;
	char *room;
} save_job;

static void saved(const char *line, void *data)
{
	save_job *j = data;

	if (!line)
		; /* the account closed first */
	else if (j->room)
		j->api->room_show_themed(j->room, NULL, NULL, NULL, MARK_NOTICE, line);
	else if (!j->chat ||
	         !j->api->chat_show_themed(j->chat, NULL, NULL, NULL, MARK_NOTICE, line))
		j->api->cons_show(line);
	g_free(j->chat);
	g_free(j->room);
	g_free(j);
}

/* Saves in a thread of its own (files_shelf.c); the answer comes in the window later. */
static void save(const struct mend_prof_api *api, mend_account *acc, const char *arg,
                 const char *dir, const char *chat, const char *room, mend_prof_reply reply)
{
	mend_transfer_opts o;
	char *ca = transfer_opts(api, &o), *line;
	save_job *j = g_new0(save_job, 1);

	j->api = api;
	j->chat = g_strdup(chat);
	j->room = g_strdup(room);
	line = mend_file_shelf_save(acc, shelf, arg, dir, &o, saved, j); /* the job copies ca */
	free(ca);
	if (line && reply) { /* at once: no such file, or not connected */
		reply(line);
		saved(NULL, j);
	} else if (line) {
		saved(line, j);
	}
	g_free(line);
}

/* --- /mend sendfile PATH -------------------------------------------------------------- */

typedef struct send_job {
	const struct mend_prof_api *api;
	char *chat; /* where it goes: a chat, */
	char *room; /* or a room (XEP-0045), whose SENT event shows the line */
	char *path;
	int shown; /* the quarter of the upload last shown */
} send_job;

static void send_job_free(send_job *j)
{
	g_free(j->chat);
	g_free(j->room);
	g_free(j->path);
	g_free(j);
}

static void sent(mend_account *acc, int err, const char *text, const char *link, const char *id,
                 void *data)
{
	send_job *j = data;
	char *name = g_path_get_basename(j->path), *line;

	if (err < 0)
		line = g_strdup_printf(_("mend: %s was not sent: %s"), name, text);
	else
		line = g_strdup_printf(_("me: file %s (encrypted, uploaded)"), name);
	if (j->room && err < 0)
		j->api->room_show_themed(j->room, NULL, NULL, NULL, "-", line);
	else if (j->chat)
		j->api->chat_show_themed(j->chat, NULL, NULL, NULL, err < 0 ? "-" : MARK_FILE,
		                         line);
	g_free(line);
	g_free(name);
	send_job_free(j);
}

/* A large file's upload, each quarter once, in the window it goes to. */
static int send_progress(uint64_t done, uint64_t total, void *data)
{
	send_job *j = data;
	char *name = g_path_get_basename(j->path);
	char *line = mend_file_progress_text(name, done, total, &j->shown);

	if (line && j->room)
		j->api->room_show_themed(j->room, NULL, NULL, NULL, "-", line);
	else if (line && j->chat)
		j->api->chat_show_themed(j->chat, NULL, NULL, NULL, "-", line);
	mend_free(line);
	g_free(name);
	return 0;
}

static void sendfile(const struct mend_prof_api *api, mend_account *acc, const char *path,
                     const char *chat, const char *room, mend_prof_reply reply)
{
	mend_transfer_opts o;
	send_job *j;
	char *line, *ca;
	int r;

	if ((!chat && !room) || !path) {
		reply(_("mend: /mend sendfile PATH works in a chat or room window where mend "
		        "encrypts."));
		return;
	}
	ca = transfer_opts(api, &o);
	j = g_new0(send_job, 1);
	j->api = api;
	j->chat = g_strdup(chat);
	j->room = g_strdup(chat ? NULL : room);
	j->path = g_strdup(path);
	o.progress = send_progress;
	o.progress_data = j;
	/* the core copies ca; a room's link goes as a room message (HELD if some cannot read) */
	r = mend_account_send_file(acc, chat ? chat : room, path, &o, sent, j);
	free(ca);
	if (r < 0) {
		line = g_strdup_printf(_("mend: %s cannot be sent: %s"), path,
		                       r == MEND_ERR_IO ? g_strerror(errno) : mend_strerror(r));
		reply(line);
		g_free(line);
		send_job_free(j);
	}
}

void mend_prof_file_command(const struct mend_prof_api *api, mend_account *acc, const char *sub,
                            const char *arg, const char *chat, const char *room,
                            mend_prof_reply reply)
{
	if (!acc)
		reply(_("mend: not connected yet."));
	else if (strcmp(sub, "save") == 0)
		save(api, acc, arg, NULL, chat, room, reply);
	else
		sendfile(api, acc, arg, chat, room, reply);
}

/* --- Profanity's own /sendfile ---------------------------------------------------------- */

char *mend_prof_file_iq_send(const struct mend_prof_api *api, const char *text, const char *chat,
                             const char *room, int encrypted)
{
	xmpp_ctx_t *ctx;
	xmpp_stanza_t *iq, *req;
	const char *id, *to;
	char *out = NULL, *line, *s;

	if (!encrypted || !strstr(text, NS_UPLOAD))
		return NULL;
	ctx = xmpp_ctx_new(NULL, NULL);
	iq = xmpp_stanza_new_from_string(ctx, text);
	req = iq ? xmpp_stanza_get_child_by_name_and_ns(iq, "request", NS_UPLOAD) : NULL;
	if (req) {
		id = xmpp_stanza_get_id(iq);
		to = xmpp_stanza_get_to(iq);
		/* the same id: Profanity's upload fails on the error that answers it */
		s = g_markup_printf_escaped("<iq type='get' id='%s' to='%s'><blocked "
		                            "xmlns='urn:mend:upload-blocked'/></iq>",
		                            id ? id : "", to ? to : "");
		out = strdup(s);
		g_free(s);
		line = g_strdup(
		    chat
		        ? _("mend: /sendfile would upload the file unencrypted (mend encrypts "
		            "this chat, Profanity's /sendfile does not); it was stopped. Use /mend "
		            "sendfile PATH.")
		        : _("mend: /sendfile would upload the file unencrypted (mend encrypts this "
		            "room, Profanity's /sendfile does not); it was stopped. Use /mend "
		            "sendfile PATH."));
		if (chat)
			api->chat_show_themed(chat, NULL, NULL, NULL, "!", line);
		else if (room)
			api->room_show_themed(room, NULL, NULL, NULL, "!", line);
		else
			api->cons_show(line);
		g_free(line);
	}
	if (iq)
		xmpp_stanza_release(iq);
	xmpp_ctx_free(ctx);
	return out;
}
