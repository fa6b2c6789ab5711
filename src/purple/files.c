/*
 * files.c - encrypted files in the libpurple plugin (Pidgin, Finch). A
 * received aesgcm:// link (XEP-0454) is shown as "file NAME from HOST: /mend
 * save N" (what the link says: nothing is fetched before /mend save, so a link
 * alone makes no request and never holds up the window); /mend save [N|URL] downloads,
 * checks and saves it in the download folder ($XDG_DOWNLOAD_DIR, else
 * ~/Downloads), never overwriting; /mend sendfile PATH encrypts and uploads a
 * file (XEP-0363) and sends its link through the core.
 *
 * Transfers run in threads of their own (files_job.c): the window never
 * waits for a server.
 *
 * HTTPS certificates are always verified; /mend files ca PATH (per account)
 * names a PEM file of certificates trusted beside the system's (a test
 * server's own, say), /mend files ca with no path forgets it.
 * libpurple runs the plugin on one thread, so this file keeps one state.
 */
#include "config.h"

#include <errno.h>
#include <libintl.h>
#include <string.h>
#include <glib.h>
#include "core/files.h"
#include "purple/files.h"

#define _(s)       dgettext(GETTEXT_PACKAGE, s)
#define CA_SETTING "mend-files-tls-ca"

static mend_file_shelf *shelf; /* the received links, by number */

static void transfer_opts(PurpleAccount *a, mend_transfer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ca_file = purple_account_get_string(a, CA_SETTING, NULL); /* the core copies it */
}

/* What the link says, without a request: a received link is fetched only by /mend save. */
char *mend_purple_file_received(const mend_event *ev)
{
	unsigned n = mend_file_shelf_add(&shelf, ev->body);

	return g_strdup_printf(_("file %s from %s: /mend save %u"), ev->file->name, ev->file->host,
	                       n);
}

char *mend_purple_file_sent(const mend_event *ev)
{
	return g_strdup_printf(_("file %s (sent encrypted)"), ev->file->name);
}

void mend_purple_files_free(void)
{
	mend_file_shelf_free(shelf);
	shelf = NULL;
}

/* Where a save answers once the file is saved. */
typedef struct save_job {
	PurpleAccount *a;
	char *peer;
	void (*say)(PurpleAccount *a, const char *jid, const char *text);
} save_job;

static void saved(const char *line, void *data)
{
	save_job *j = data;

	if (line) /* else the account closed first */
		j->say(j->a, j->peer, line);
	g_free(j->peer);
	g_free(j);
}

/* Saves in a thread of its own (files_shelf.c): NULL, the answer comes later; or why not. */
static char *save(mend_account *acc, PurpleAccount *a, const char *peer, const char *arg,
                  void (*say)(PurpleAccount *a, const char *jid, const char *text))
{
	mend_transfer_opts o;
	save_job *j = g_new0(save_job, 1);
	char *line;

	j->a = a;
	j->peer = g_strdup(peer);
	j->say = say;
	transfer_opts(a, &o);
	line = mend_file_shelf_save(acc, shelf, arg, NULL, &o, saved, j);
	if (line)
		saved(NULL, j);
	return line;
}

/* --- /mend sendfile PATH ---------------------------------------------------------------- */

typedef struct send_job {
	PurpleAccount *a;
	char *peer;
	char *path;
	void (*say)(PurpleAccount *a, const char *jid, const char *text);
	int shown; /* the quarter of the upload last shown */
} send_job;

/* A large file's upload, each quarter once, in its conversation. */
static int send_progress(uint64_t done, uint64_t total, void *data)
{
	send_job *j = data;
	char *name = g_path_get_basename(j->path);
	char *line = mend_file_progress_text(name, done, total, &j->shown);

	if (line)
		j->say(j->a, j->peer, line);
	mend_free(line);
	g_free(name);
	return 0;
}

static void sent(mend_account *acc, int err, const char *text, const char *link, const char *id,
                 void *data)
{
	send_job *j = data;
	char *line;

	if (err < 0) {
		line = g_strdup_printf(_("mend: %s was not sent: %s"), j->path, text);
		j->say(j->a, j->peer, line);
		g_free(line);
	}
	g_free(j->peer);
	g_free(j->path);
	g_free(j);
}

static char *sendfile(mend_account *acc, PurpleAccount *a, const char *peer, const char *path,
                      void (*say)(PurpleAccount *a, const char *jid, const char *text))
{
	mend_transfer_opts o;
	send_job *j;
	int r;

	if (!path || !*path)
		return g_strdup(_("mend: /mend sendfile PATH sends the file PATH encrypted."));
	transfer_opts(a, &o);
	j = g_new0(send_job, 1);
	j->a = a;
	j->peer = g_strdup(peer);
	j->path = g_strdup(path);
	j->say = say;
	o.progress = send_progress;
	o.progress_data = j;
	r = mend_account_send_file(acc, peer, path, &o, sent, j);
	if (r == MEND_OK)
		return NULL;
	g_free(j->peer);
	g_free(j->path);
	g_free(j);
	return g_strdup_printf(_("mend: %s cannot be sent: %s"), path,
	                       r == MEND_ERR_IO ? g_strerror(errno) : mend_strerror(r));
}

/* /mend files ca [PATH]: the account's extra trusted certificates; no PATH forgets them. */
static char *files_ca(PurpleAccount *a, const char *arg)
{
	const char *path;

	if (!arg || strncmp(arg, "ca", 2) != 0 || (arg[2] && arg[2] != ' '))
		return g_strdup(_("mend: /mend files ca PATH (file transfers of this account also "
		                  "trust the certificates in the PEM file PATH); /mend files ca "
		                  "forgets it."));
	path = arg + 2;
	while (*path == ' ')
		path++;
	if (!*path) {
		purple_account_set_string(a, CA_SETTING, NULL);
		return g_strdup(_("mend: file transfers of this account trust the system's "
		                  "certificates only."));
	}
	if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
		return g_strdup_printf(_("mend: %s is not a file; nothing changed."), path);
	purple_account_set_string(a, CA_SETTING, path);
	return g_strdup_printf(_("mend: file transfers of this account also trust the "
	                         "certificates in %s (still verified)."),
	                       path);
}

int mend_purple_file_command(mend_account *acc, PurpleAccount *a, const char *peer, const char *sub,
                             const char *arg,
                             void (*say)(PurpleAccount *a, const char *jid, const char *text))
{
	char *line;

	if (!strcmp(sub, "save"))
		line = save(acc, a, peer, arg, say);
	else if (!strcmp(sub, "sendfile"))
		line = sendfile(acc, a, peer, arg, say);
	else if (!strcmp(sub, "files"))
		line = files_ca(a, arg);
	else
		return 0;
	if (line)
		say(a, peer, line);
	g_free(line);
	return 1;
}
