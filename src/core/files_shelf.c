/*
 * files_shelf.c - what the plugins share for received files: the links kept
 * by number for "/mend save N" (a bounded list, oldest dropped first), and
 * saving one in the user's download folder, in a thread of its own
 * (files_job.c), with a sentence for the chat.
 * Linked into each plugin from the core library; no host sees it otherwise.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "internal.h"
#include "files.h"

#define _(s)      dgettext(GETTEXT_PACKAGE, s)
#define MAX_LINKS 200 /* received links remembered */

struct mend_file_shelf {
	GPtrArray *links; /* oldest first */
	unsigned first;   /* the number of links[0] */
};

unsigned mend_file_shelf_add(mend_file_shelf **shelf, const char *link)
{
	mend_file_shelf *s = *shelf;

	if (!s) {
		s = *shelf = g_new0(mend_file_shelf, 1);
		s->links = g_ptr_array_new_with_free_func(g_free);
		s->first = 1;
	}
	if (s->links->len >= MAX_LINKS) {
		g_ptr_array_remove_index(s->links, 0);
		s->first++;
	}
	g_ptr_array_add(s->links, g_strdup(link));
	return s->first + s->links->len - 1;
}

void mend_file_shelf_free(mend_file_shelf *s)
{
	if (!s)
		return;
	g_ptr_array_free(s->links, TRUE);
	g_free(s);
}

/* The link named by `arg`: a number, a link, or (NULL or empty) the last one. g_free. */
static char *link_of(const mend_file_shelf *s, const char *arg)
{
	char *end;
	guint64 n;

	if (arg && g_str_has_prefix(arg, "aesgcm://"))
		return g_strdup(arg);
	if (!s || !s->links->len)
		return NULL;
	if (!arg || !*arg)
		return g_strdup(g_ptr_array_index(s->links, s->links->len - 1));
	n = g_ascii_strtoull(arg, &end, 10);
	if (*end || n < s->first || n >= s->first + s->links->len)
		return NULL;
	return g_strdup(g_ptr_array_index(s->links, n - s->first));
}

static char *download_dir(void)
{
	const char *d = g_get_user_special_dir(G_USER_DIRECTORY_DOWNLOAD);

	return d ? g_strdup(d) : g_build_filename(g_get_home_dir(), "Downloads", NULL);
}

/* One /mend save: the download in a thread of its own (files_job.c). */
typedef struct save_job {
	mend_file_link *l;
	char *dir;
	char *line; /* the thread's sentence */
	mend_file_saved saved;
	void *data;
} save_job;

/* In the thread: downloads the file into the folder; the sentence saying where, or why not. */
static int save_work(void *data, const mend_transfer_opts *o)
{
	save_job *j = data;
	mend_file_result res = {0};
	char *why = NULL, *size;
	int r;

	g_mkdir_with_parents(j->dir, 0700);
	r = mend_file_download(j->l, j->dir, NULL, o, &res, &why);
	if (r < 0) {
		j->line = g_strdup_printf(_("mend: %s was not saved: %s"), j->l->name,
		                          why ? why : mend_strerror(r));
	} else {
		size = g_format_size(res.size);
		j->line = g_strdup_printf(_("mend: saved %s (%s)"), res.path, size);
		g_free(size);
	}
	mend_file_result_clear(&res);
	mend_free(why);
	return r;
}

static void save_finished(mend_account *acc, int r, void *data)
{
	save_job *j = data;

	j->saved(acc ? j->line : NULL, j->data);
	mend_file_link_free(j->l);
	g_free(j->dir);
	g_free(j->line);
	g_free(j);
}

char *mend_file_shelf_save(mend_account *acc, const mend_file_shelf *s, const char *arg,
                           const char *folder, const mend_transfer_opts *o, mend_file_saved saved,
                           void *data)
{
	char *text = link_of(s, arg);
	mend_file_link *l = NULL;
	save_job *j;

	if (!text || mend_file_link_parse(text, &l) < 0) {
		g_free(text);
		return g_strdup(_("mend: no such file; /mend save N takes the number shown with a "
		                  "received file, or an aesgcm:// link."));
	}
	g_free(text);
	if (!acc) {
		mend_file_link_free(l);
		return g_strdup(_("mend: not connected yet."));
	}
	j = g_new0(save_job, 1);
	j->l = l;
	j->dir = folder && *folder ? g_strdup(folder) : download_dir();
	j->saved = saved;
	j->data = data;
	mend_file_job_start(acc, o, save_work, save_finished, j);
	return NULL;
}
