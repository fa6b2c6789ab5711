/*
 * files_save.c - where a received file's plaintext lives until its tag has
 * checked out (XEP-0454 §3: the tag comes last), and how it then takes its
 * name. Until then nothing in the download folder holds it under its final
 * or a guessable name:
 *
 *  - an unnamed file in the folder (O_TMPFILE), which gets its name with
 *    linkat(2) through /proc/self/fd once checked; a failed file never had a
 *    name, so the folder stays exactly as it was;
 *  - where the file system has no O_TMPFILE, a 0600 file with a random name
 *    (".mend-<random>.part") that is removed on failure; a process that died
 *    leaves one behind, so each save first sweeps the folder of those no live
 *    process holds (each holder keeps an flock(2) on its own).
 *
 * The name is never taken over an existing file: link(2) refuses, and where
 * links are not supported (FAT: EPERM) renameat2(RENAME_NOREPLACE), else a
 * copy into a file made with O_CREAT|O_EXCL.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "files.h"

#define TMP_PREFIX  ".mend-"
#define TMP_SUFFIX  ".part"
#define SWEEP_AGE   60 /* seconds: a leftover younger than this may be a file being made */
#define PLACE_TRIES 1000
#define COPY_CHUNK  (64 * 1024)

/* --- the leftovers of processes that died mid-download ------------------------------ */

static int is_tmp_name(const char *name)
{
	return g_str_has_prefix(name, TMP_PREFIX) && g_str_has_suffix(name, TMP_SUFFIX);
}

/* Removes `name` if it is our old, regular, unheld temporary file. */
static void sweep_one(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    st.st_mtime + SWEEP_AGE < time(NULL) && flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlinkat(dirfd, name, 0);
	close(fd);
}

static void sweep(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (is_tmp_name(e->d_name))
			sweep_one(dirfd, e->d_name);
	closedir(d);
}

/* --- the file being received ----------------------------------------------------------- */

/* The fallback: a 0600 file with a random name, locked while we hold it. */
static int open_named(mend_file_tmp *t)
{
	GString *name = g_string_new(TMP_PREFIX);
	uint8_t rnd[12];
	size_t i;

	if (mend_random(rnd, sizeof(rnd)) < 0) {
		g_string_free(name, TRUE);
		return MEND_ERR_CRYPTO;
	}
	for (i = 0; i < sizeof(rnd); i++)
		g_string_append_printf(name, "%02x", rnd[i]);
	g_string_append(name, TMP_SUFFIX);
	t->name = g_string_free(name, FALSE);
	t->fd = openat(t->dirfd, t->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (t->fd < 0) {
		g_clear_pointer(&t->name, g_free);
		return MEND_ERR_IO;
	}
	flock(t->fd, LOCK_EX | LOCK_NB);
	return MEND_OK;
}

int mend_file_tmp_open(mend_file_tmp *t, const char *dir)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0)
		return MEND_ERR_IO;
	sweep(t->dirfd);
	t->fd = openat(t->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t->fd >= 0)
		return MEND_OK;
	return open_named(t);
}

void mend_file_tmp_close(mend_file_tmp *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->name) /* not placed: a failed file goes entirely */
		unlinkat(t->dirfd, t->name, 0);
	if (t->dirfd >= 0)
		close(t->dirfd);
	g_clear_pointer(&t->name, g_free);
	t->fd = t->dirfd = -1;
}

/* --- its name ------------------------------------------------------------------------------ */

/* Writes all of buf to fd: 0, or an errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Copies the checked plaintext into fd `out`: 0, or an errno. */
static int copy_into(mend_file_tmp *t, int out)
{
	uint8_t *buf = g_malloc(COPY_CHUNK);
	off_t off = 0;
	ssize_t n;
	int err = 0;

	while (!err && (n = pread(t->fd, buf, COPY_CHUNK, off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		err = n < 0 ? errno : write_all(out, buf, (size_t)n);
		off += n > 0 ? n : 0;
	}
	if (!err && fsync(out) < 0)
		err = errno;
	explicit_bzero(buf, COPY_CHUNK);
	g_free(buf);
	return err;
}

/* The last way: a new file made exclusively, the checked plaintext copied into it. */
static int copy_exclusive(mend_file_tmp *t, const char *name)
{
	int out =
	    openat(t->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int err = out < 0 ? errno : copy_into(t, out);

	if (out >= 0) {
		close(out);
		if (err)
			unlinkat(t->dirfd, name, 0);
	}
	return -err;
}

/* Gives the file `name` in its folder, never over another: 0, -EEXIST, or -errno. */
static int place_one(mend_file_tmp *t, const char *name)
{
	char proc[40];

	if (!t->name) { /* O_TMPFILE: linked through /proc; AT_EMPTY_PATH needs privileges */
		g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
		if (linkat(AT_FDCWD, proc, t->dirfd, name, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		if (linkat(t->fd, "", t->dirfd, name, AT_EMPTY_PATH) == 0)
			return 0;
	} else {
		if (linkat(t->dirfd, t->name, t->dirfd, name, 0) == 0)
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		/* no hard links here (FAT: EPERM): the name moves, never over a file */
		if (renameat2(t->dirfd, t->name, t->dirfd, name, RENAME_NOREPLACE) == 0) {
			g_clear_pointer(&t->name, g_free);
			return 0;
		}
	}
	if (errno == EEXIST)
		return -EEXIST;
	return copy_exclusive(t, name);
}

/* name-N.ext for try n (0: the name itself). */
static char *numbered(const char *name, unsigned n)
{
	const char *dot = strrchr(name, '.');

	if (n == 0)
		return g_strdup(name);
	if (!dot || dot == name)
		return g_strdup_printf("%s-%u", name, n);
	return g_strdup_printf("%.*s-%u%s", (int)(dot - name), name, n, dot);
}

int mend_file_tmp_place(mend_file_tmp *t, const char *name, int renumber, char **taken)
{
	unsigned n, tries = renumber ? PLACE_TRIES : 1;
	char *cand;
	int r = -EEXIST;

	*taken = NULL;
	for (n = 0; n < tries && r == -EEXIST; n++) {
		cand = numbered(name, n);
		r = place_one(t, cand);
		if (r == 0)
			*taken = cand;
		else
			g_free(cand);
	}
	errno = -r;
	return r == 0 ? MEND_OK : MEND_ERR_IO;
}
