/*
 * files_http.c - the HTTP side of encrypted files, on libcurl: PUT a file
 * encrypted on the fly into an upload slot (XEP-0363 §5), GET a file and
 * decrypt it on the fly into a file without a name that becomes the saved
 * file only once its tag checked out (XEP-0454 §3; files_save.c). HTTPS only (redirects
 * too), certificates verified unless the caller's options say otherwise, a
 * stall limit, a size limit, progress. Failures come back as a code and a
 * sentence; nothing half-written stays behind.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libintl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include "internal.h"
#include "files.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define READ_CHUNK (64 * 1024)

/* What a transfer needs besides curl's handle. */
typedef struct xfer {
	const mend_transfer_opts *o;
	const char *host; /* for sentences */
	char errbuf[CURL_ERROR_SIZE];
	/* download */
	mend_file_cipher *c;
	int fd;
	GChecksum *sha;
	uint64_t in, max;
	int too_large, io_errno;
	/* upload */
	FILE *f;
	GByteArray *ready; /* ciphertext waiting for curl */
	int done;
} xfer;

static void global_init(void)
{
	static gsize done;

	if (g_once_init_enter(&done)) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		g_once_init_leave(&done, 1);
	}
}

static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	const xfer *x = data;

	if (!x->o->progress)
		return 0;
	if (ultotal > 0)
		return x->o->progress((uint64_t)ulnow, (uint64_t)ultotal, x->o->progress_data);
	return x->o->progress((uint64_t)dlnow, dltotal > 0 ? (uint64_t)dltotal : 0,
	                      x->o->progress_data);
}

/* A handle with what every transfer shares: HTTPS only, TLS, stall limit, progress. */
static CURL *easy(const char *url, xfer *x)
{
	long timeout = x->o->timeout ? (long)x->o->timeout : MEND_FILE_TIMEOUT;
	CURL *h;

	global_init();
	h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mend/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	/* a server that sends (or takes) nothing for `timeout` seconds is given up */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, timeout);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, x->o->trust_any_tls ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, x->o->trust_any_tls ? 0L : 2L);
	if (x->o->ca_file && *x->o->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, x->o->ca_file);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	return h;
}

/* curl's outcome as our code and a sentence (*why, g_free). */
static int failure(CURL *h, CURLcode rc, const xfer *x, int upload, char **why)
{
	long status = 0, timeout = x->o->timeout ? (long)x->o->timeout : MEND_FILE_TIMEOUT;
	const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	char *limit;
	int r;

	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		r = MEND_ERR_TIMEOUT;
		*why = g_strdup_printf(upload ? _("The server %s did not answer for %ld seconds, "
		                                  "so the upload was given up.")
		                              : _("The server %s did not answer for %ld seconds, "
		                                  "so the download was given up."),
		                       x->host, timeout);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CONNECT_ERROR:
		r = MEND_ERR_TLS;
		*why = g_strdup_printf(_("The HTTPS certificate of %s could not be verified (%s); "
		                         "nothing was transferred."),
		                       x->host, detail);
		break;
	case CURLE_HTTP_RETURNED_ERROR:
		r = MEND_ERR_HTTP;
		*why = g_strdup_printf(upload ? _("The server %s answered the upload with HTTP "
		                                  "status %ld.")
		                              : _("The server %s answered the download with HTTP "
		                                  "status %ld."),
		                       x->host, status);
		break;
	case CURLE_FILESIZE_EXCEEDED:
		r = MEND_ERR_TOO_LARGE;
		limit = g_format_size(x->max);
		*why = g_strdup_printf(_("The file is larger than the limit of %s; it was not "
		                         "saved."),
		                       limit);
		g_free(limit);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		r = MEND_ERR_IO;
		*why = g_strdup(_("The transfer was cancelled."));
		break;
	default:
		r = MEND_ERR_HTTP;
		*why = g_strdup_printf(upload ? _("The upload to %s failed: %s.")
		                              : _("The download from %s failed: %s."),
		                       x->host, detail);
	}
	return r;
}

static void set_why(char **why, char *text)
{
	if (why)
		*why = text;
	else
		g_free(text);
}

/* --- download ------------------------------------------------------------------ */

static int write_plain(const uint8_t *buf, size_t len, void *data)
{
	xfer *x = data;
	ssize_t n;

	g_checksum_update(x->sha, buf, (gssize)len);
	while (len) {
		n = write(x->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			x->io_errno = n < 0 ? errno : EIO;
			return MEND_ERR_IO;
		}
		buf += n;
		len -= (size_t)n;
	}
	return MEND_OK;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *data)
{
	xfer *x = data;
	size_t n = size * nmemb;

	x->in += n;
	if (x->in > x->max + MEND_GCM_TAG_LEN) {
		x->too_large = 1;
		return 0;
	}
	return mend_file_cipher_feed(x->c, (const uint8_t *)ptr, n) < 0 ? 0 : n;
}

/* GETs the link into x->fd (decrypted); r and *why as mend_file_download's. */
static int get(const mend_file_link *l, xfer *x, char **mime, char **why)
{
	CURL *h = easy(l->url, x);
	const char *ct = NULL;
	CURLcode rc;
	int r;

	if (!h)
		return MEND_ERR_NOMEM;
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(x->max + MEND_GCM_TAG_LEN));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	rc = curl_easy_perform(h);
	if (rc == CURLE_WRITE_ERROR && x->too_large)
		rc = CURLE_FILESIZE_EXCEEDED;
	if (rc == CURLE_WRITE_ERROR && x->io_errno) {
		r = MEND_ERR_IO;
		*why = g_strdup_printf(_("The file could not be written: %s."),
		                       g_strerror(x->io_errno));
	} else if (rc != CURLE_OK) {
		r = failure(h, rc, x, 0, why);
	} else {
		r = MEND_OK;
		if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct && *ct &&
		    !g_str_has_prefix(ct, "application/octet-stream"))
			*mime = g_strndup(ct, strcspn(ct, "; "));
		else if (mend_file_mime_guess(l->name)) /* the server did not say: the name does */
			*mime = g_strdup(mend_file_mime_guess(l->name));
	}
	curl_easy_cleanup(h);
	return r;
}

/* The tag and the file: checked, then named (never over an existing file; files_save.c). */
static int finish_download(const mend_file_link *l, xfer *x, mend_file_tmp *t, const char *dir,
                           const char *out_name, mend_file_result *res, char **why)
{
	int r = mend_file_cipher_finish(x->c);
	char *taken = NULL;

	if (r == MEND_ERR_PAYLOAD_AUTH || r == MEND_ERR_MALFORMED) {
		*why =
		    g_strdup_printf(_("The file from %s failed its integrity check (a wrong key, "
		                      "or the data was damaged or changed); the partial file was "
		                      "removed."),
		                    l->host);
		return MEND_ERR_PAYLOAD_AUTH;
	}
	if (r < 0 || fsync(x->fd) < 0) {
		*why = g_strdup_printf(_("The file could not be written: %s."),
		                       g_strerror(x->io_errno ? x->io_errno : errno));
		return MEND_ERR_IO;
	}
	r = mend_file_tmp_place(t, out_name ? out_name : l->name, !out_name, &taken);
	if (r < 0)
		*why = g_strdup_printf(errno == EEXIST ? _("%s exists already; nothing was "
		                                           "overwritten.")
		                                       : _("The file could not be saved as %s."),
		                       out_name ? out_name : l->name);
	else
		res->path = g_build_filename(dir, taken, NULL);
	g_free(taken);
	return r;
}

/* Into `dir`, as out_name or (NULL) the link's name made unique. */
static int download(const mend_file_link *l, xfer *x, const char *dir, const char *out_name,
                    mend_file_result *res, char **why)
{
	mend_file_tmp t;
	int r = mend_file_tmp_open(&t, dir);

	if (r < 0) {
		*why = g_strdup_printf(_("No file can be made in %s: %s."), dir, g_strerror(errno));
		mend_file_tmp_close(&t);
		return MEND_ERR_IO;
	}
	x->fd = t.fd;
	r = mend_file_cipher_new(&x->c, 1, l->key, l->iv, l->iv_len, write_plain, x);
	if (r == MEND_OK)
		r = get(l, x, &res->mime, why);
	if (r == MEND_OK)
		r = finish_download(l, x, &t, dir, out_name, res, why);
	if (r == MEND_OK) {
		res->size = mend_file_cipher_out(x->c);
		g_strlcpy(res->sha256, g_checksum_get_string(x->sha), sizeof(res->sha256));
	}
	mend_file_tmp_close(&t); /* a failed file never had a name, or loses its random one */
	mend_file_cipher_free(x->c);
	return r;
}

int mend_file_download(const mend_file_link *link, const char *dir, const char *out_path,
                       const mend_transfer_opts *opts, mend_file_result *res, char **why)
{
	mend_transfer_opts none = {0};
	char *text = NULL, *folder, *name;
	xfer x;
	int r;

	memset(res, 0, sizeof(*res));
	if (!link || (!dir && !out_path))
		return MEND_ERR_INVALID_ARG;
	memset(&x, 0, sizeof(x));
	x.o = opts ? opts : &none;
	x.host = link->host;
	x.max = x.o->max_size ? x.o->max_size : MEND_FILE_MAX_SIZE;
	x.sha = g_checksum_new(G_CHECKSUM_SHA256);
	if (out_path &&
	    (g_str_has_suffix(out_path, "/") || g_file_test(out_path, G_FILE_TEST_IS_DIR))) {
		dir = out_path; /* a folder: the link's safe name in it, reported as used */
		out_path = NULL;
	}
	folder = out_path ? g_path_get_dirname(out_path) : g_strdup(dir);
	name = out_path ? g_path_get_basename(out_path) : NULL;
	r = download(link, &x, folder, name, res, &text);
	g_checksum_free(x.sha);
	g_free(folder);
	g_free(name);
	if (r == MEND_OK && out_path) { /* as the caller named it */
		g_free(res->path);
		res->path = g_strdup(out_path);
	}
	if (r < 0)
		mend_file_result_clear(res);
	set_why(why, r < 0 ? text : NULL);
	if (r >= 0)
		g_free(text);
	return r;
}

void mend_file_result_clear(mend_file_result *res)
{
	if (!res)
		return;
	g_free(res->path);
	g_free(res->mime);
	memset(res, 0, sizeof(*res));
}

/* --- upload (XEP-0363 §5: PUT with the slot's headers) ----------------------------- */

static int keep_cipher(const uint8_t *buf, size_t len, void *data)
{
	g_byte_array_append(((xfer *)data)->ready, buf, (guint)len);
	return MEND_OK;
}

/*
 * Encrypts the next piece of the file into x->ready; after the size announced
 * in the slot request (x->max), the tag. Exactly that many bytes are read: a
 * file still growing is sent as it was when its size was taken, and one that
 * shrank meanwhile fails (the body would not match the length announced).
 */
static int refill(xfer *x)
{
	uint8_t buf[READ_CHUNK];
	size_t want = (size_t)MIN((uint64_t)sizeof(buf), x->max - x->in);
	size_t n = want ? fread(buf, 1, want, x->f) : 0;
	int r = n ? mend_file_cipher_feed(x->c, buf, n) : MEND_OK;

	x->in += n;
	if (r == MEND_OK && n < want) {
		errno = ferror(x->f) ? errno : ENODATA; /* shorter than its announced size */
		r = MEND_ERR_IO;
	} else if (r == MEND_OK && x->in == x->max) {
		x->done = 1;
		r = mend_file_cipher_finish(x->c);
	}
	explicit_bzero(buf, sizeof(buf));
	return r;
}

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *data)
{
	xfer *x = data;
	size_t n;

	while (!x->ready->len && !x->done)
		if (refill(x) < 0) {
			x->io_errno = errno ? errno : EIO;
			return CURL_READFUNC_ABORT;
		}
	n = MIN(size * nmemb, x->ready->len);
	memcpy(ptr, x->ready->data, n);
	g_byte_array_remove_range(x->ready, 0, (guint)n);
	return n;
}

static struct curl_slist *put_headers(char *const *headers, const char *content_type)
{
	struct curl_slist *list = curl_slist_append(NULL, "Expect:"); /* no 100-continue wait */
	char *ct = g_strdup_printf("Content-Type: %s",
	                           content_type ? content_type : "application/octet-stream");

	list = curl_slist_append(list, ct);
	g_free(ct);
	for (; headers && *headers; headers++)
		list = curl_slist_append(list, *headers);
	return list;
}

static char *host_of_url(const char *url)
{
	const char *p = strstr(url, "://");

	p = p ? p + 3 : url;
	return g_strndup(p, strcspn(p, "/?#"));
}

int mend_http_put(const char *put_url, char *const *headers, FILE *f, uint64_t size,
                  const char *content_type, const uint8_t *key, const uint8_t *iv, size_t iv_len,
                  const mend_transfer_opts *opts, char **why)
{
	struct curl_slist *list = put_headers(headers, content_type);
	char *host = host_of_url(put_url);
	xfer x;
	CURL *h;
	CURLcode rc;
	int r;

	memset(&x, 0, sizeof(x));
	x.o = opts;
	x.host = host;
	x.f = f;
	x.max = size; /* plaintext bytes to read, as announced */
	x.ready = g_byte_array_new();
	r = mend_file_cipher_new(&x.c, 0, key, iv, iv_len, keep_cipher, &x);
	h = r == MEND_OK ? easy(put_url, &x) : NULL;
	if (!h) {
		r = r < 0 ? r : MEND_ERR_NOMEM;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(size + MEND_GCM_TAG_LEN));
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &x);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	rc = curl_easy_perform(h);
	r = rc == CURLE_OK ? MEND_OK : failure(h, rc, &x, 1, why);
	curl_easy_cleanup(h);
out:
	mend_file_cipher_free(x.c);
	if (x.ready->len)
		explicit_bzero(x.ready->data, x.ready->len);
	g_byte_array_unref(x.ready);
	curl_slist_free_all(list);
	g_free(host);
	return r;
}
