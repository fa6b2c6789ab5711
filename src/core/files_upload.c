/*
 * files_upload.c - sending a file: our server's HTTP File Upload service
 * (XEP-0363 §3: disco#info of our domain itself, then of each of its disco#items, for
 * urn:xmpp:http:upload:0 and its max-file-size), a refusal before uploading
 * when the file is over that limit, the slot request (§4), the encrypted PUT
 * (files_http.c, in a thread of its own: files_job.c) and the link (XEP-0454
 * §3) sent as an OMEMO message.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <libintl.h>
#include <string.h>
#include <sys/stat.h>
#include "internal.h"
#include "engine.h"
#include "files.h"
#include "room.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define NS_UPLOAD      "urn:xmpp:http:upload:0"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DATA        "jabber:x:data"
#define MAX_ITEMS      32 /* items of our domain asked whether they are the upload service */

typedef struct upload_job {
	int refs;
	char *to;   /* the recipient */
	char *path; /* the file, as given */
	char *name; /* its name in the slot request (UTF-8) */
	const char *ctype;
	FILE *f;
	uint64_t size; /* plaintext bytes */
	mend_transfer_opts o;
	mend_file_sent_cb cb;
	void *data;
	GPtrArray *items; /* JIDs still to ask */
	char *domain;     /* our server's domain, whose disco#items come after its own info */
	char *service;
	uint64_t max;  /* the service's max-file-size; 0 when it names none */
	char *ca_file; /* o.ca_file's copy (the caller's may not outlive the job) */
} upload_job;

static upload_job *job_ref(upload_job *j)
{
	j->refs++;
	return j;
}

static void job_unref(gpointer p)
{
	upload_job *j = p;

	if (--j->refs > 0)
		return;
	if (j->f)
		fclose(j->f);
	g_free(j->to);
	g_free(j->path);
	g_free(j->name);
	g_free(j->ca_file);
	g_ptr_array_unref(j->items);
	g_free(j->service);
	g_free(j->domain);
	g_free(j);
}

/* The end of the job: the callback once (the job stays until its last reply is freed). */
static void done(mend_account *acc, upload_job *j, int err, const char *text, const char *link,
                 const char *id)
{
	mend_file_sent_cb cb = j->cb;

	j->cb = NULL;
	if (err)
		mend_log(acc, MEND_LOG_INFO, "file %s not sent: %s", j->path, text);
	if (cb)
		cb(acc, err, text, link, id, j->data);
}

static void fail(mend_account *acc, upload_job *j, int err, char *text)
{
	done(acc, j, err, text ? text : mend_strerror(err), NULL, NULL);
	g_free(text);
}

static void ask(mend_account *acc, upload_job *j, const char *to, const char *ns, const char *type,
                xmpp_stanza_t *q, iq_cb cb)
{
	xmpp_stanza_t *iq = iq_new(acc, type);

	add(iq, q ? q : el(acc, "query", ns));
	send_iq(acc, iq, to, cb, job_ref(j), job_unref);
}

/* --- the slot (XEP-0363 §4, §5) ------------------------------------------------ */

/* XEP-0363 §5: only these headers are copied, without line breaks. g_strfreev. */
static char **slot_headers(xmpp_stanza_t *put)
{
	static const char *const allowed[] = {"Authorization", "Cookie", "Expires"};
	GPtrArray *out = g_ptr_array_new();
	xmpp_stanza_t *h;
	const char *name;
	char *v;
	size_t i;

	for (h = put ? xmpp_stanza_get_children(put) : NULL; h; h = xmpp_stanza_get_next(h)) {
		name = xmpp_stanza_get_attribute(h, "name");
		if (!name || g_strcmp0(xmpp_stanza_get_name(h), "header") != 0)
			continue;
		for (i = 0; i < G_N_ELEMENTS(allowed); i++)
			if (g_ascii_strcasecmp(name, allowed[i]) == 0)
				break;
		v = i < G_N_ELEMENTS(allowed) ? xmpp_stanza_get_text(h) : NULL;
		if (v && !strpbrk(v, "\r\n"))
			g_ptr_array_add(out, g_strdup_printf("%s: %s", allowed[i], v));
		if (v)
			xmpp_free(xmpp_stanza_get_context(h), v);
	}
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

/* The link goes where the file goes: to a room (XEP-0045) as a room message, which refuses
 * a room OMEMO cannot be used in; else 1:1. */
static int send_link(mend_account *acc, const upload_job *j, const char *link, char **id)
{
	mend_room *room = mend_room_get(acc, j->to);

	if (room && room->status != MEND_ERR_NOT_A_ROOM)
		return mend_account_room_send(acc, j->to, link, j->o.send_flags, id);
	return mend_account_send(acc, j->to, link, id);
}

/* The PUT of one file, in a thread of its own (files_job.c). */
typedef struct put_job {
	upload_job *j; /* a reference: its file and options stay while the thread reads them */
	char *put_url;
	char **headers;
	uint8_t key[MEND_FILE_KEY_LEN], iv[MEND_FILE_IV_LEN];
	char *link;
	char *why; /* the thread's sentence on failure */
} put_job;

static void put_job_free(put_job *p)
{
	explicit_bzero(p->key, sizeof(p->key));
	if (p->link)
		explicit_bzero(p->link, strlen(p->link));
	g_free(p->link);
	g_free(p->put_url);
	g_strfreev(p->headers);
	g_free(p->why);
	job_unref(p->j);
	g_free(p);
}

/* In the thread: encrypts and PUTs the file (XEP-0363 §5, XEP-0454 §3). */
static int put_work(void *data, const mend_transfer_opts *o)
{
	put_job *p = data;
	upload_job *j = p->j;
	int r = mend_http_put(p->put_url, p->headers, j->f, j->size, j->ctype, p->key, p->iv,
	                      sizeof(p->iv), o, &p->why);

	explicit_bzero(p->key, sizeof(p->key));
	return r;
}

/* Back on the host's thread: the link goes out, and the caller hears of it. */
static void put_finished(mend_account *acc, int r, void *data)
{
	put_job *p = data;
	char *id = NULL;

	if (acc && r == MEND_OK)
		r = send_link(acc, p->j, p->link, &id);
	if (acc && r < 0)
		fail(acc, p->j, r, p->why ? g_strdup(p->why) : g_strdup(mend_strerror(r)));
	else if (acc)
		done(acc, p->j, 0, NULL, p->link, id);
	mend_free(id);
	put_job_free(p);
}

/* Encrypts and PUTs the file in a thread of its own, then sends its link. */
static void upload(mend_account *acc, upload_job *j, const char *put_url, char **headers,
                   const char *get_url)
{
	put_job *p = g_new0(put_job, 1);

	p->j = job_ref(j);
	if (mend_random(p->key, sizeof(p->key)) < 0 || mend_nonce(p->iv, sizeof(p->iv)) < 0) {
		fail(acc, j, MEND_ERR_CRYPTO, NULL);
		put_job_free(p);
		return;
	}
	p->put_url = g_strdup(put_url);
	p->headers = g_strdupv(headers);
	p->link = mend_file_link_format(get_url, p->iv, sizeof(p->iv), p->key);
	mend_file_job_start(acc, &j->o, put_work, put_finished, p);
}

static const char *url_of(xmpp_stanza_t *st)
{
	const char *u = st ? xmpp_stanza_get_attribute(st, "url") : NULL;

	return u && g_ascii_strncasecmp(u, "https://", 8) == 0 && !strchr(u, '#') ? u : NULL;
}

/* The service's error (XEP-0363 §4.1 file-too-large, quota, not-allowed) in words. */
static char *slot_refused(upload_job *j, xmpp_stanza_t *iq)
{
	xmpp_stanza_t *e = child(iq, "error", NULL), *c;
	const char *cond = NULL;
	char *text = NULL, *s;

	for (c = e ? xmpp_stanza_get_children(e) : NULL; c; c = xmpp_stanza_get_next(c))
		if (g_strcmp0(xmpp_stanza_get_name(c), "text") == 0)
			text = xmpp_stanza_get_text(c);
		else if (!cond && xmpp_stanza_get_name(c))
			cond = xmpp_stanza_get_name(c);
	s = g_strdup_printf(_("The upload service %s refused a slot for %s (%s%s%s); nothing was "
	                      "uploaded."),
	                    j->service, j->name, cond ? cond : _("no answer"), text ? ": " : "",
	                    text ? text : "");
	if (text)
		xmpp_free(xmpp_stanza_get_context(iq), text);
	return s;
}

static void slot_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	upload_job *j = data;
	xmpp_stanza_t *slot = ok ? child(iq, "slot", NS_UPLOAD) : NULL;
	const char *put = url_of(child(slot, "put", NULL)), *get = url_of(child(slot, "get", NULL));
	char **headers;

	if (!ok) {
		fail(acc, j, MEND_ERR_HTTP, slot_refused(j, iq));
		return;
	}
	if (!put || !get) {
		mend_log(acc, MEND_LOG_WARNING, "upload slot from %s without https put/get URLs",
		         j->service);
		fail(acc, j, MEND_ERR_MALFORMED,
		     g_strdup_printf(_("The upload service %s gave no HTTPS address for the file; "
		                       "nothing was uploaded."),
		                     j->service));
		return;
	}
	headers = slot_headers(child(slot, "put", NULL));
	upload(acc, j, put, headers, get);
	g_strfreev(headers);
}

static void request_slot(mend_account *acc, upload_job *j)
{
	xmpp_stanza_t *req = el(acc, "request", NS_UPLOAD);
	char *size = g_strdup_printf("%" PRIu64, j->size + MEND_GCM_TAG_LEN);

	/* XEP-0363 §4: the size of what is uploaded, the ciphertext with its tag */
	xmpp_stanza_set_attribute(req, "filename", j->name);
	xmpp_stanza_set_attribute(req, "size", size);
	if (j->ctype)
		xmpp_stanza_set_attribute(req, "content-type", j->ctype);
	ask(acc, j, j->service, NULL, "get", req, slot_reply);
	g_free(size);
}

/* --- the service (XEP-0363 §3) -------------------------------------------------- */

/* max-file-size from the disco#info form whose FORM_TYPE is urn:xmpp:http:upload:0; 0 if none. */
static uint64_t max_size_of(xmpp_stanza_t *query)
{
	xmpp_stanza_t *x, *f;
	const char *var;
	char *v, *form = NULL, *max = NULL;
	uint64_t n = 0;

	for (x = xmpp_stanza_get_children(query); x; x = xmpp_stanza_get_next(x)) {
		if (g_strcmp0(xmpp_stanza_get_name(x), "x") != 0 ||
		    g_strcmp0(xmpp_stanza_get_ns(x), NS_DATA) != 0)
			continue;
		for (f = xmpp_stanza_get_children(x); f; f = xmpp_stanza_get_next(f)) {
			var = xmpp_stanza_get_attribute(f, "var");
			v = child(f, "value", NULL) ? xmpp_stanza_get_text(child(f, "value", NULL))
			                            : NULL;
			if (g_strcmp0(var, "FORM_TYPE") == 0 && !form)
				form = g_strdup(v);
			else if (g_strcmp0(var, "max-file-size") == 0 && !max)
				max = g_strdup(v);
			if (v)
				xmpp_free(xmpp_stanza_get_context(f), v);
		}
		if (g_strcmp0(form, NS_UPLOAD) == 0 && max)
			n = g_ascii_strtoull(max, NULL, 10);
		g_clear_pointer(&form, g_free);
		g_clear_pointer(&max, g_free);
	}
	return n;
}

static int has_feature(xmpp_stanza_t *query, const char *var)
{
	xmpp_stanza_t *f;

	for (f = xmpp_stanza_get_children(query); f; f = xmpp_stanza_get_next(f))
		if (g_strcmp0(xmpp_stanza_get_name(f), "feature") == 0 &&
		    g_strcmp0(xmpp_stanza_get_attribute(f, "var"), var) == 0)
			return 1;
	return 0;
}

static char *too_large(upload_job *j)
{
	char *have = g_format_size(j->size), *limit = g_format_size(j->max), *s;

	s = g_strdup_printf(_("%s is %s (%" PRIu64 " bytes encrypted); the server's upload service "
	                      "accepts files up to %s (%" PRIu64
	                      " bytes), so nothing was uploaded."),
	                    j->name, have, j->size + MEND_GCM_TAG_LEN, limit, j->max);
	g_free(have);
	g_free(limit);
	return s;
}

static void found(mend_account *acc, upload_job *j, const char *service, uint64_t max)
{
	j->service = g_strdup(service);
	j->max = max;
	mend_log(acc, MEND_LOG_INFO, "upload service %s, max-file-size %" PRIu64, service, max);
	if (max && j->size + MEND_GCM_TAG_LEN > max)
		fail(acc, j, MEND_ERR_TOO_LARGE, too_large(j));
	else
		request_slot(acc, j);
}

static void info_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data);
static void items_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data);

/* XEP-0363 §3: the service may be the domain itself (asked first) or one of its items. */
static void ask_next(mend_account *acc, upload_job *j)
{
	char *jid;

	if (!j->items->len && j->domain) {
		jid = j->domain;
		j->domain = NULL;
		ask(acc, j, jid, NS_DISCO_ITEMS, "get", NULL, items_reply);
		g_free(jid);
		return;
	}
	if (!j->items->len) {
		fail(acc, j, MEND_ERR_NO_UPLOAD,
		     g_strdup_printf(_("Your server offers no HTTP File Upload service (XEP-0363), "
		                       "so files cannot be sent from %s."),
		                     acc->jid));
		return;
	}
	jid = g_ptr_array_steal_index(j->items, 0);
	ask(acc, j, jid, NS_DISCO_INFO, "get", NULL, info_reply);
	g_free(jid);
}

static void info_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	upload_job *j = data;
	xmpp_stanza_t *q = ok ? child(iq, "query", NS_DISCO_INFO) : NULL;

	if (q && has_feature(q, NS_UPLOAD))
		found(acc, j, xmpp_stanza_get_from(iq), max_size_of(q));
	else
		ask_next(acc, j);
}

static void items_reply(mend_account *acc, xmpp_stanza_t *iq, int ok, void *data)
{
	upload_job *j = data;
	xmpp_stanza_t *q = ok ? child(iq, "query", NS_DISCO_ITEMS) : NULL, *it;
	const char *jid;

	for (it = q ? xmpp_stanza_get_children(q) : NULL; it; it = xmpp_stanza_get_next(it)) {
		jid = xmpp_stanza_get_attribute(it, "jid");
		if (jid && g_strcmp0(xmpp_stanza_get_name(it), "item") == 0 &&
		    !xmpp_stanza_get_attribute(it, "node") && j->items->len < MAX_ITEMS)
			g_ptr_array_add(j->items, g_strdup(jid));
	}
	ask_next(acc, j);
}

/* --- the entry point ------------------------------------------------------------ */

static int open_file(upload_job *j)
{
	struct stat st;

	j->f = fopen(j->path, "rb");
	if (!j->f)
		return MEND_ERR_IO;
	if (fstat(fileno(j->f), &st) < 0 || !S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return MEND_ERR_IO;
	}
	j->size = (uint64_t)st.st_size;
	return MEND_OK;
}

int mend_account_send_file(mend_account *acc, const char *to, const char *path,
                           const mend_transfer_opts *opts, mend_file_sent_cb cb, void *data)
{
	const char *domain = acc->jid ? strchr(acc->jid, '@') : NULL;
	upload_job *j;
	int r;

	if (!to || !path || !cb || !domain)
		return MEND_ERR_INVALID_ARG;
	if (!mend_engine_connected(acc))
		return MEND_ERR_INVALID_ARG;
	j = g_new0(upload_job, 1);
	j->refs = 1;
	j->to = g_strdup(to);
	j->path = g_strdup(path);
	j->name = g_filename_display_basename(path);
	j->ctype = mend_file_mime_guess(j->name);
	j->items = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(j->items, g_strdup(domain + 1));
	j->domain = g_strdup(domain + 1);
	if (opts)
		j->o = *opts;
	j->ca_file = g_strdup(j->o.ca_file);
	j->o.ca_file = j->ca_file;
	j->cb = cb;
	j->data = data;
	r = open_file(j);
	if (r == MEND_OK)
		ask_next(acc, j);
	job_unref(j);
	return r;
}
