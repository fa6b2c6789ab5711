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
 * HTTPS certificates are verified; the plugin setting [mend]
 * files.tls.trust-any=true (for test servers on loopback) turns that off.
 * Profanity's hooks run on one thread, so this file keeps one state.
 */
#include "config.h"

#include <errno.h>
#include <libintl.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <strophe.h>
#include "profanity/files.h"

#define _(s)      dgettext(GETTEXT_PACKAGE, s)
#define MAX_LINKS 200 /* received links remembered for /mend save N */
#define NS_UPLOAD "urn:xmpp:http:upload:0"
#define MARK_FILE "~"
#define SETTINGS  "mend"
#define TRUST_KEY "files.tls.trust-any"

static GPtrArray *links;     /* the received links, oldest first; /mend save N is links[N-1] */
static unsigned first_n = 1; /* the number of links[0] (older ones were dropped) */

char *mend_prof_file_received(const mend_event *ev)
{
	if (!links)
		links = g_ptr_array_new_with_free_func(g_free);
	if (links->len >= MAX_LINKS) {
		g_ptr_array_remove_index(links, 0);
		first_n++;
	}
	g_ptr_array_add(links, g_strdup(ev->body));
	return g_strdup_printf(_("file %s from %s: /mend save %u"), ev->file->name, ev->file->host,
	                       first_n + links->len - 1);
}

void mend_prof_files_free(void)
{
	if (links)
		g_ptr_array_free(links, TRUE);
	links = NULL;
	first_n = 1;
}

static void transfer_opts(const struct mend_prof_api *api, mend_transfer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->trust_any_tls = api->settings_boolean_get(SETTINGS, TRUST_KEY, 0);
}

/* --- /mend save [N|URL] ------------------------------------------------------------ */

static char *download_dir(void)
{
	const char *d = g_get_user_special_dir(G_USER_DIRECTORY_DOWNLOAD);

	return d ? g_strdup(d) : g_build_filename(g_get_home_dir(), "Downloads", NULL);
}

/* The link named by `arg`: a number, a link, or (NULL) the last one received. g_free. */
static char *link_of(const char *arg)
{
	char *end;
	guint64 n;

	if (arg && g_str_has_prefix(arg, "aesgcm://"))
		return g_strdup(arg);
	if (!links || !links->len)
		return NULL;
	if (!arg)
		return g_strdup(g_ptr_array_index(links, links->len - 1));
	n = g_ascii_strtoull(arg, &end, 10);
	if (*end || n < first_n || n >= first_n + links->len)
		return NULL;
	return g_strdup(g_ptr_array_index(links, n - first_n));
}

static void save(const struct mend_prof_api *api, const char *arg, mend_prof_reply reply)
{
	char *text = link_of(arg), *dir = download_dir(), *why = NULL, *line, *size;
	mend_file_link *l = NULL;
	mend_file_result res = {0};
	mend_transfer_opts o;
	int r;

	transfer_opts(api, &o);
	if (!text || mend_file_link_parse(text, &l) < 0) {
		reply(_("mend: no such file; /mend save N takes the number shown with a received "
		        "file, or an aesgcm:// link."));
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
	reply(line);
	g_free(line);
	mend_file_result_clear(&res);
	mend_free(why);
out:
	mend_file_link_free(l);
	g_free(dir);
	g_free(text);
}

/* --- /mend sendfile PATH -------------------------------------------------------------- */

typedef struct send_job {
	const struct mend_prof_api *api;
	char *chat;
	char *path;
} send_job;

static void sent(mend_account *acc, int err, const char *text, const char *link, const char *id,
                 void *data)
{
	send_job *j = data;
	char *name = g_path_get_basename(j->path), *line;

	if (err < 0)
		line = g_strdup_printf(_("mend: %s was not sent: %s"), name, text);
	else
		line = g_strdup_printf(_("me: file %s (encrypted, uploaded)"), name);
	j->api->chat_show_themed(j->chat, NULL, NULL, NULL, err < 0 ? "-" : MARK_FILE, line);
	g_free(line);
	g_free(name);
	g_free(j->chat);
	g_free(j->path);
	g_free(j);
}

static void sendfile(const struct mend_prof_api *api, mend_account *acc, const char *path,
                     const char *chat, mend_prof_reply reply)
{
	mend_transfer_opts o;
	send_job *j;
	char *line;
	int r;

	if (!chat || !path) {
		reply(_("mend: /mend sendfile PATH works in a chat window where mend encrypts."));
		return;
	}
	transfer_opts(api, &o);
	j = g_new0(send_job, 1);
	j->api = api;
	j->chat = g_strdup(chat);
	j->path = g_strdup(path);
	r = mend_account_send_file(acc, chat, path, &o, sent, j);
	if (r < 0) {
		line = g_strdup_printf(_("mend: %s cannot be sent: %s"), path,
		                       r == MEND_ERR_IO ? g_strerror(errno) : mend_strerror(r));
		reply(line);
		g_free(line);
		g_free(j->chat);
		g_free(j->path);
		g_free(j);
	}
}

void mend_prof_file_command(const struct mend_prof_api *api, mend_account *acc, const char *sub,
                            const char *arg, const char *chat, mend_prof_reply reply)
{
	if (!acc)
		reply(_("mend: not connected yet."));
	else if (strcmp(sub, "save") == 0)
		save(api, arg, reply);
	else
		sendfile(api, acc, arg, chat, reply);
}

/* --- Profanity's own /sendfile ---------------------------------------------------------- */

char *mend_prof_file_iq_send(const struct mend_prof_api *api, const char *text, const char *chat,
                             int encrypted)
{
	xmpp_ctx_t *ctx;
	xmpp_stanza_t *iq, *req;
	const char *id, *to;
	char *out = NULL, *line, *s;

	if (!chat || !encrypted || !strstr(text, NS_UPLOAD))
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
		line =
		    g_strdup_printf(_("mend: /sendfile would upload the file unencrypted (mend "
		                      "encrypts this chat, Profanity's /sendfile does not); it was "
		                      "stopped. Use /mend sendfile PATH."));
		api->chat_show_themed(chat, NULL, NULL, NULL, "!", line);
		g_free(line);
	}
	if (iq)
		xmpp_stanza_release(iq);
	xmpp_ctx_free(ctx);
	return out;
}
