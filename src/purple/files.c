/*
 * files.c - encrypted files in the libpurple plugin (Pidgin, Finch). A
 * received aesgcm:// link (XEP-0454) is shown as "file NAME (SIZE): /mend save
 * N" (the size from an HTTP HEAD of the link); /mend save [N|URL] downloads,
 * checks and saves it in the download folder ($XDG_DOWNLOAD_DIR, else
 * ~/Downloads), never overwriting; /mend sendfile PATH encrypts and uploads a
 * file (XEP-0363) and sends its link through the core.
 *
 * HTTPS certificates are verified; /mend files trust-any on (an account
 * setting meant for test servers on loopback) turns that off for the account.
 * libpurple runs the plugin on one thread, so this file keeps one state.
 */
#include "config.h"

#include <errno.h>
#include <libintl.h>
#include <string.h>
#include <glib.h>
#include "purple/files.h"

#define _(s)       dgettext(GETTEXT_PACKAGE, s)
#define MAX_LINKS  200 /* received links remembered for /mend save N */
#define PROBE_SECS 5   /* the HEAD that learns a received file's size */
#define TRUST_ANY  "mend-files-tls-trust-any"

static GPtrArray *links;     /* received links, oldest first */
static unsigned first_n = 1; /* the number of links[0] */

static void transfer_opts(PurpleAccount *a, mend_transfer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->trust_any_tls = purple_account_get_bool(a, TRUST_ANY, FALSE);
}

char *mend_purple_file_received(PurpleAccount *a, const mend_event *ev)
{
	mend_transfer_opts o;
	uint64_t size = 0;
	char *sz, *line;

	if (!links)
		links = g_ptr_array_new_with_free_func(g_free);
	if (links->len >= MAX_LINKS) {
		g_ptr_array_remove_index(links, 0);
		first_n++;
	}
	g_ptr_array_add(links, g_strdup(ev->body));
	transfer_opts(a, &o);
	o.timeout = PROBE_SECS;
	sz = mend_file_probe_size(ev->file, &o, &size) == MEND_OK ? g_format_size(size)
	                                                          : g_strdup(_("size unknown"));
	line = g_strdup_printf(_("file %s (%s): /mend save %u"), ev->file->name, sz,
	                       first_n + links->len - 1);
	g_free(sz);
	return line;
}

char *mend_purple_file_sent(const mend_event *ev)
{
	return g_strdup_printf(_("file %s (sent encrypted)"), ev->file->name);
}

void mend_purple_files_free(void)
{
	if (links)
		g_ptr_array_free(links, TRUE);
	links = NULL;
	first_n = 1;
}

/* The link named by `arg`: a number, a link, or (empty) the last one received. g_free. */
static char *link_of(const char *arg)
{
	char *end;
	guint64 n;

	if (arg && g_str_has_prefix(arg, "aesgcm://"))
		return g_strdup(arg);
	if (!links || !links->len)
		return NULL;
	if (!arg || !*arg)
		return g_strdup(g_ptr_array_index(links, links->len - 1));
	n = g_ascii_strtoull(arg, &end, 10);
	if (*end || n < first_n || n >= first_n + links->len)
		return NULL;
	return g_strdup(g_ptr_array_index(links, n - first_n));
}

static char *save(PurpleAccount *a, const char *arg)
{
	const char *d = g_get_user_special_dir(G_USER_DIRECTORY_DOWNLOAD);
	char *text = link_of(arg), *why = NULL, *line, *size,
	     *dir = d ? g_strdup(d) : g_build_filename(g_get_home_dir(), "Downloads", NULL);
	mend_file_link *l = NULL;
	mend_file_result res = {0};
	mend_transfer_opts o;
	int r;

	transfer_opts(a, &o);
	if (!text || mend_file_link_parse(text, &l) < 0) {
		line = g_strdup(_("mend: no such file; /mend save N takes the number shown with a "
		                  "received file, or an aesgcm:// link."));
		goto out;
	}
	g_mkdir_with_parents(dir, 0700);
	r = mend_file_download(l, dir, NULL, &o, &res, &why);
	if (r < 0) {
		line = g_strdup_printf(_("mend: %s was not saved: %s"), l->name,
		                       why ? why : mend_strerror(r));
	} else {
		size = g_format_size(res.size);
		line = g_strdup_printf(_("mend: saved %s (%s)"), res.path, size);
		g_free(size);
	}
	mend_file_result_clear(&res);
	mend_free(why);
out:
	mend_file_link_free(l);
	g_free(dir);
	g_free(text);
	return line;
}

/* --- /mend sendfile PATH ---------------------------------------------------------------- */

typedef struct send_job {
	PurpleAccount *a;
	char *peer;
	char *path;
	void (*say)(PurpleAccount *a, const char *jid, const char *text);
} send_job;

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
	r = mend_account_send_file(acc, peer, path, &o, sent, j);
	if (r == MEND_OK)
		return NULL;
	g_free(j->peer);
	g_free(j->path);
	g_free(j);
	return g_strdup_printf(_("mend: %s cannot be sent: %s"), path,
	                       r == MEND_ERR_IO ? g_strerror(errno) : mend_strerror(r));
}

static char *trust_any(PurpleAccount *a, const char *arg)
{
	int on = arg && !strcmp(arg, "trust-any on");

	if (!arg || (!on && strcmp(arg, "trust-any off") != 0))
		return g_strdup(_("mend: /mend files trust-any on|off (on: file transfers of this "
		                  "account accept any HTTPS certificate; only for test servers on "
		                  "loopback)."));
	purple_account_set_bool(a, TRUST_ANY, on);
	return g_strdup(on ? _("mend: file transfers of this account now accept ANY HTTPS "
	                       "certificate (for a test server on loopback only).")
	                   : _("mend: file transfers of this account verify HTTPS certificates."));
}

int mend_purple_file_command(mend_account *acc, PurpleAccount *a, const char *peer, const char *sub,
                             const char *arg,
                             void (*say)(PurpleAccount *a, const char *jid, const char *text))
{
	char *line;

	if (!strcmp(sub, "save"))
		line = save(a, arg);
	else if (!strcmp(sub, "sendfile"))
		line = sendfile(acc, a, peer, arg, say);
	else if (!strcmp(sub, "files"))
		line = trust_any(a, arg);
	else
		return 0;
	if (line)
		say(a, peer, line);
	g_free(line);
	return 1;
}
