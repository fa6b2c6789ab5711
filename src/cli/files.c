/*
 * files.c - encrypted files in `mend` (XEP-0454 links over XEP-0363 HTTP
 * File Upload, through the core): send JID --file PATH [TEXT] (progress on
 * stderr for large files), listen --save-dir DIR (each received file saved
 * and described in its message's line), fetch URL [--out PATH] (a link seen
 * earlier). TLS certificates are verified unless --tls trust-any says
 * otherwise, for test servers on loopback.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

#define PROGRESS_MIN  (1024 * 1024) /* files from this size show their progress */
#define PROGRESS_STEP 5             /* percent */

static int progress(uint64_t done, uint64_t total, void *data)
{
	struct cli *c = data;
	char *a, *b;
	int pct;

	if (cli_stopping()) /* Ctrl-C or SIGTERM: a download in `listen` gives up at once */
		return 1;
	if (total < PROGRESS_MIN)
		return 0;
	pct = (int)(done * 100 / total);
	if (c->progress_shown >= 0 && pct / PROGRESS_STEP == c->progress_shown / PROGRESS_STEP)
		return 0;
	c->progress_shown = pct;
	a = g_format_size(done);
	b = g_format_size(total);
	fputc('\r', stderr); /* the line is redrawn in place */
	fprintf(stderr, _("mend: %3d%% (%s of %s)"), pct, a, b);
	fflush(stderr);
	g_free(a);
	g_free(b);
	return 0;
}

static void progress_end(struct cli *c)
{
	if (c->progress_shown > 0)
		fputc('\n', stderr);
	c->progress_shown = -1;
}

void cli_transfer_opts(struct cli *c, mend_transfer_opts *o)
{
	memset(o, 0, sizeof(*o));
	/* the only way to skip certificate checks: meant for test servers on loopback */
	o->trust_any_tls = c->o.tls && strcmp(c->o.tls, "trust-any") == 0;
	o->progress = progress;
	o->progress_data = c;
	o->send_flags = c->o.allow_partial ? MEND_SEND_ALLOW_PARTIAL : 0;
	c->progress_shown = -1;
}

/* The core's sentence, and what the user can do about a certificate. g_free. */
static char *why_text(int err, const char *text)
{
	if (err == MEND_ERR_TLS)
		return g_strdup_printf(_("%s Fix the server's certificate; only for a test server "
		                         "on loopback, --tls trust-any accepts any certificate."),
		                       text);
	return g_strdup(text ? text : mend_strerror(err));
}

/* --- send JID --file PATH [TEXT] ----------------------------------------------------- */

static void file_sent(mend_account *acc, int err, const char *text, const char *link,
                      const char *id, void *data)
{
	struct cli *c = data;
	char *why;

	progress_end(c);
	if (err < 0) {
		c->in_send = 0;
		g_ptr_array_set_size(c->deferred, 0);
		why = why_text(err, text);
		cli_fail(c, CLI_ERROR, err, "%s", why);
		g_free(why);
		return;
	}
	out_file_sent(c, c->peer, c->o.file, link, id);
	cli_file_queued(c, id);
}

void cli_send_file(struct cli *c)
{
	mend_transfer_opts o;
	int r;

	cli_transfer_opts(c, &o);
	c->in_send = 1; /* SENT of the link waits until its id is known */
	r = mend_account_send_file(c->acc, c->peer, c->o.file, &o, file_sent, c);
	if (r < 0) {
		c->in_send = 0;
		cli_fail(c, r == MEND_ERR_IO ? CLI_USAGE : CLI_ERROR, r,
		         _("The file %s cannot be sent: %s"), c->o.file,
		         r == MEND_ERR_IO ? g_strerror(errno) : mend_strerror(r));
	}
}

/* --- listen --save-dir DIR ------------------------------------------------------------ */

void cli_save_file(struct cli *c, const mend_event *ev)
{
	mend_file_result res = {0};
	mend_transfer_opts o;
	char *why = NULL, *text = NULL;
	int r = MEND_ERR_IO;

	cli_transfer_opts(c, &o);
	if (g_mkdir_with_parents(c->o.save_dir, 0700) < 0)
		why = g_strdup_printf(_("The folder %s cannot be made: %s."), c->o.save_dir,
		                      g_strerror(errno));
	else
		r = mend_file_download(ev->file, c->o.save_dir, NULL, &o, &res, &why);
	progress_end(c);
	if (r < 0)
		text = why_text(r, why);
	c->file_saved = r < 0 ? NULL : &res;
	c->file_error = text;
	out_message(c, ev);
	c->file_saved = NULL;
	c->file_error = NULL;
	mend_file_result_clear(&res);
	g_free(text);
	mend_free(why);
}

/* --- fetch URL [--out PATH] ------------------------------------------------------------ */

static int fetch(struct cli *c, const mend_file_link *l)
{
	const char *dir = c->o.save_dir ? c->o.save_dir : ".";
	mend_file_result res = {0};
	mend_transfer_opts o;
	char *why = NULL, *text;
	int r;

	cli_transfer_opts(c, &o);
	if (c->o.timeout > 0)
		o.timeout = (unsigned)(c->o.timeout + 0.999); /* whole seconds, rounded up */
	if (!c->o.out && g_mkdir_with_parents(dir, 0700) < 0)
		return cli_fail(c, CLI_ERROR, MEND_ERR_IO, _("The folder %s cannot be made: %s."),
		                dir, g_strerror(errno));
	r = mend_file_download(l, c->o.out ? NULL : dir, c->o.out, &o, &res, &why);
	progress_end(c);
	if (r < 0) {
		text = why_text(r, why);
		r = cli_fail(c, CLI_ERROR, r, "%s", text);
		g_free(text);
	} else {
		out_fetched(c, l, &res);
		r = CLI_OK;
	}
	mend_file_result_clear(&res);
	mend_free(why);
	return r;
}

int cli_fetch(struct cli *c)
{
	mend_file_link *l = NULL;
	int r;

	if (c->o.tls && strcmp(c->o.tls, "required") != 0 && strcmp(c->o.tls, "trust-any") != 0 &&
	    strcmp(c->o.tls, "off") != 0)
		return cli_fail(c, CLI_USAGE, 0,
		                _("--tls takes required, trust-any or off, not '%s'."), c->o.tls);
	if (c->o.out && c->o.save_dir)
		return cli_fail(c, CLI_USAGE, 0, _("Give --out PATH or --save-dir DIR, not both."));
	r = mend_file_link_parse(c->o.args[0], &l);
	if (r < 0)
		return cli_fail(c, CLI_USAGE, r,
		                _("'%s' is not an encrypted file link; one looks like "
		                  "aesgcm://HOST/PATH#IVKEY (24 or 32 hex digits of IV, then 64 of "
		                  "key)."),
		                c->o.args[0]);
	r = fetch(c, l);
	mend_file_link_free(l);
	return r;
}
