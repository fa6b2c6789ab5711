/*
 * files.h - what the file modules share (files.c: the XEP-0454 link, safe
 * file names, AES-256-GCM over a stream; files_http.c: libcurl;
 * files_upload.c: the XEP-0363 upload service) and what the unit tests
 * reach. Nothing here is seen by a host.
 */
#ifndef MEND_CORE_FILES_H
#define MEND_CORE_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <glib.h>
#include "mend/mend.h"

#define MEND_FILE_KEY_LEN 32
#define MEND_FILE_IV_LEN  12 /* what we send; XEP-0454 §3 accepts 16 too */

/* --- files.c --- */

/* "aesgcm://" + the URL after "https://" + "#" + hex(iv) + hex(key). g_free. NULL if
 * `https_url` is not https://. */
char *mend_file_link_format(const char *https_url, const uint8_t *iv, size_t iv_len,
                            const uint8_t key[MEND_FILE_KEY_LEN]);

/*
 * A file name from the last segment of a URL path (percent-decoded): never empty, no
 * '/' or '\\', no control characters, not starting with '.', at most 200 bytes. g_free.
 */
char *mend_file_safe_name(const char *url_path);

/* AES-256-GCM over a stream: data in any pieces, the 16-byte tag after the data. */
typedef struct mend_file_cipher mend_file_cipher;
/* A sink for what comes out; returns 0, or <0 to stop. */
typedef int (*mend_file_sink)(const uint8_t *buf, size_t len, void *data);

int mend_file_cipher_new(mend_file_cipher **out, int decrypt, const uint8_t *key, const uint8_t *iv,
                         size_t iv_len, mend_file_sink sink, void *data);
/* Encrypts or decrypts the next piece (decrypting, the last 16 bytes seen are held back). */
int mend_file_cipher_feed(mend_file_cipher *c, const uint8_t *buf, size_t len);
/* The end: encrypting, the rest and the tag go to the sink; decrypting, the tag is checked
 * (MEND_ERR_PAYLOAD_AUTH; MEND_ERR_MALFORMED when fewer than 16 bytes came). */
int mend_file_cipher_finish(mend_file_cipher *c);
/* Bytes handed to the sink so far. */
uint64_t mend_file_cipher_out(const mend_file_cipher *c);
void mend_file_cipher_free(mend_file_cipher *c);

/* A Content-Type for a file name by its extension (common pictures, audio, video,
 * documents), or NULL. Static. */
const char *mend_file_mime_guess(const char *name);

/* --- files_save.c: a received file's plaintext until its tag checked, then its name --- */

typedef struct mend_file_tmp {
	int fd;     /* read and write; the plaintext goes here */
	int dirfd;  /* the folder */
	char *name; /* NULL: unnamed (O_TMPFILE); else the 0600 fallback's random name */
} mend_file_tmp;

/* A file in folder `dir` under no name (a random ".mend-*.part" one where the file system
 * cannot), after sweeping the folder of such files that died with their process.
 * MEND_ERR_IO with errno. Close it with mend_file_tmp_close() in any case. */
int mend_file_tmp_open(mend_file_tmp *t, const char *dir);
/* Gives the (checked) file `name` in its folder, never over an existing file: with renumber,
 * name-1.ext, name-2.ext ... when taken; *taken gets the name used (g_free). MEND_ERR_IO with
 * errno (EEXIST: taken). */
int mend_file_tmp_place(mend_file_tmp *t, const char *name, int renumber, char **taken);
/* Closes it; one never placed leaves nothing behind. */
void mend_file_tmp_close(mend_file_tmp *t);

/* --- files_job.c: transfers in a thread of their own ------------------------------------ */

typedef struct mend_file_job mend_file_job;
typedef struct mend_file_jobs mend_file_jobs;
/* In the job's thread: the transfer, with `o` (its progress stops it when cancelled);
 * touches nothing of the account. Returns the result handed to finish. */
typedef int (*mend_file_work)(void *data, const mend_transfer_opts *o);
/* On the host's thread once the work returned (acc NULL: the account is being freed, only
 * release data). */
typedef void (*mend_file_finish)(mend_account *acc, int result, void *data);

/* Runs work(data, o') in a new thread (o' is o with the CA file copied and progress relayed
 * to o's callback on the host's thread); finish(acc, result, data) later from
 * mend_file_jobs_poll. */
int mend_file_job_start(mend_account *acc, const mend_transfer_opts *o, mend_file_work work,
                        mend_file_finish finish, void *data);
/* Relays progress and ends the jobs whose work returned (mend_account_tick, each stanza). */
void mend_file_jobs_poll(mend_account *acc);
/* Cancels what still runs, waits for it, releases everything. */
void mend_file_jobs_free(mend_account *acc);

/* --- files_shelf.c: for the plugins (received links by number, /mend save) --- */

typedef struct mend_file_shelf mend_file_shelf;
/* Keeps a received link (*shelf made on first use); returns its number. */
unsigned mend_file_shelf_add(mend_file_shelf **shelf, const char *link);
/* The end of a save: the sentence saying where the file went, or why not (NULL: the account
 * was freed first; only release data). On the host's thread. */
typedef void (*mend_file_saved)(const char *line, void *data);
/* Saves link `arg` (a number, an aesgcm:// link, or NULL: the last one) in `folder` (NULL:
 * the download folder, $XDG_DOWNLOAD_DIR, else ~/Downloads) in a thread of its own: NULL,
 * and saved(line, data) later; or at once a sentence why not (g_free; saved is not called). */
char *mend_file_shelf_save(mend_account *acc, const mend_file_shelf *s, const char *arg,
                           const char *folder, const mend_transfer_opts *o, mend_file_saved saved,
                           void *data);
void mend_file_shelf_free(mend_file_shelf *s);

/* --- files_http.c --- */

/* PUTs the file `f` (size bytes, read from its start) encrypted under key/iv to `put_url`
 * with the extra headers ("Name: value" strings, NULL-terminated). *why as download's. */
int mend_http_put(const char *put_url, char *const *headers, FILE *f, uint64_t size,
                  const char *content_type, const uint8_t *key, const uint8_t *iv, size_t iv_len,
                  const mend_transfer_opts *opts, char **why);

#endif
