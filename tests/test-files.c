/*
 * test-files.c - src/core/files.c: AES-256-GCM over a stream against known
 * answers (McGrew and Viega's GCM test case 15 with a 12-byte IV; a 16-byte-IV
 * vector made with python's `cryptography`), pieces of any size, tag failures;
 * the XEP-0454 link parser (strict lengths, hex, scheme, host) and its
 * format; safe file names from hostile URLs; files_save.c: a received
 * file's plaintext under no name until placed, never over another file, on
 * file systems without O_TMPFILE, hard links or RENAME_NOREPLACE too, and
 * the leftovers of a dead process swept.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "mend/mend.h"
#include "crypto.h"
#include "files.h"
#include "tap.h"

#define KEY_HEX  "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define IV12_HEX "cafebabefacedbaddecaf888"
#define PT_HEX                                                                                     \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532"        \
	"fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
/* ciphertext || tag (GCM spec test case 15) */
#define CT_HEX                                                                                     \
	"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1"  \
	"056828838c5f61e6393ba7a0abcc9f662898015adb094dac5d93471bdec1a502270e3cc6c"
#define KEY2_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define IV16_HEX "000102030405060708090a0b0c0d0e0f"
#define PT2      "mend file vector with a 16-byte IV (XEP-0454)."
#define CT2_HEX                                                                                    \
	"0a09ce1219822344f8dfad4c36d043c174c402d50fadb263750860b7f78da9ea2129a9dc250580e3d21d0362" \
	"c"                                                                                        \
	"818bd766cdfed8dd19a8c0475831d71aa87"

static GByteArray *unhex(const char *s)
{
	GByteArray *b = g_byte_array_new();
	guint8 v;
	size_t i;

	for (i = 0; s[i] && s[i + 1]; i += 2) {
		v = (guint8)(g_ascii_xdigit_value(s[i]) << 4 | g_ascii_xdigit_value(s[i + 1]));
		g_byte_array_append(b, &v, 1);
	}
	return b;
}

static int collect(const uint8_t *buf, size_t len, void *data)
{
	g_byte_array_append(data, buf, (guint)len);
	return 0;
}

/* Runs `in` through a cipher in pieces of `step` bytes; r gets finish's result. */
static GByteArray *run(int decrypt, const char *key_hex, const char *iv_hex, const GByteArray *in,
                       size_t step, int *r)
{
	GByteArray *key = unhex(key_hex), *iv = unhex(iv_hex), *out = g_byte_array_new();
	mend_file_cipher *c = NULL;
	size_t off, n;

	*r = mend_file_cipher_new(&c, decrypt, key->data, iv->data, iv->len, collect, out);
	for (off = 0; *r == 0 && off < in->len; off += n) {
		n = MIN(step, in->len - off);
		*r = mend_file_cipher_feed(c, in->data + off, n);
	}
	if (*r == 0)
		*r = mend_file_cipher_finish(c);
	mend_file_cipher_free(c);
	g_byte_array_unref(key);
	g_byte_array_unref(iv);
	return out;
}

static int same(const GByteArray *a, const GByteArray *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void test_vectors(void)
{
	static const size_t steps[] = {1, 7, 16, 17, 33, 4096};
	GByteArray *pt = unhex(PT_HEX), *ct = unhex(CT_HEX), *out;
	GByteArray *pt2 = g_byte_array_new(), *ct2 = unhex(CT2_HEX);
	size_t i;
	int r;

	g_byte_array_append(pt2, (const guint8 *)PT2, strlen(PT2));
	for (i = 0; i < G_N_ELEMENTS(steps); i++) {
		out = run(0, KEY_HEX, IV12_HEX, pt, steps[i], &r);
		TAP_OK(r == 0 && same(out, ct), "encrypt, 12-byte IV, pieces of %zu: test case 15",
		       steps[i]);
		g_byte_array_unref(out);
		out = run(1, KEY_HEX, IV12_HEX, ct, steps[i], &r);
		TAP_OK(r == 0 && same(out, pt), "decrypt, 12-byte IV, pieces of %zu", steps[i]);
		g_byte_array_unref(out);
		out = run(1, KEY2_HEX, IV16_HEX, ct2, steps[i], &r);
		TAP_OK(r == 0 && same(out, pt2), "decrypt, 16-byte IV, pieces of %zu", steps[i]);
		g_byte_array_unref(out);
	}
	out = run(0, KEY2_HEX, IV16_HEX, pt2, 5, &r);
	TAP_OK(r == 0 && same(out, ct2), "encrypt, 16-byte IV: python cryptography's answer");
	g_byte_array_unref(out);
	g_byte_array_unref(pt);
	g_byte_array_unref(ct);
	g_byte_array_unref(pt2);
	g_byte_array_unref(ct2);
}

static void test_tag_failures(void)
{
	GByteArray *ct = unhex(CT_HEX), *out, *empty = g_byte_array_new();
	int r;

	ct->data[3] ^= 1; /* a flipped ciphertext bit */
	out = run(1, KEY_HEX, IV12_HEX, ct, 16, &r);
	TAP_EQ(r, MEND_ERR_PAYLOAD_AUTH, "tampered ciphertext: tag failure");
	g_byte_array_unref(out);
	ct->data[3] ^= 1;
	ct->data[ct->len - 1] ^= 0x80; /* the tag itself */
	out = run(1, KEY_HEX, IV12_HEX, ct, 1000, &r);
	TAP_EQ(r, MEND_ERR_PAYLOAD_AUTH, "tampered tag: tag failure");
	g_byte_array_unref(out);
	ct->data[ct->len - 1] ^= 0x80;
	out = run(1, KEY2_HEX, IV12_HEX, ct, 64, &r);
	TAP_EQ(r, MEND_ERR_PAYLOAD_AUTH, "wrong key: tag failure");
	g_byte_array_unref(out);
	g_byte_array_set_size(ct, 15);
	out = run(1, KEY_HEX, IV12_HEX, ct, 4, &r);
	TAP_EQ(r, MEND_ERR_MALFORMED, "15 bytes: not even a tag");
	g_byte_array_unref(out);
	out = run(0, KEY_HEX, IV12_HEX, empty, 4, &r);
	TAP_OK(r == 0 && out->len == 16, "an empty file encrypts to its tag alone");
	ct = g_byte_array_ref(out);
	g_byte_array_unref(out);
	out = run(1, KEY_HEX, IV12_HEX, ct, 3, &r);
	TAP_OK(r == 0 && out->len == 0, "and decrypts to nothing");
	g_byte_array_unref(out);
	g_byte_array_unref(ct);
	g_byte_array_unref(empty);
}

#define FRAG12 IV12_HEX KEY_HEX
#define FRAG16 IV16_HEX KEY_HEX

static int parses(const char *text)
{
	mend_file_link *l = NULL;
	int r = mend_file_link_parse(text, &l);

	mend_file_link_free(l);
	return r;
}

static void test_link_parser(void)
{
	mend_file_link *l = NULL;
	char *s;
	int r;

	r = mend_file_link_parse(" aesgcm://up.example.org:5281/x/y/Photo%201.jpg#" FRAG12 "\n",
	                         &l);
	TAP_OK(r == 0 && l, "a 12-byte IV link parses");
	if (l) {
		TAP_OK(strcmp(l->url, "https://up.example.org:5281/x/y/Photo%201.jpg") == 0,
		       "its https URL: %s", l->url);
		TAP_OK(strcmp(l->host, "up.example.org") == 0, "its host: %s", l->host);
		TAP_OK(strcmp(l->name, "Photo 1.jpg") == 0, "its name: %s", l->name);
		TAP_OK(l->iv_len == 12 && l->iv[0] == 0xca && l->key[31] == 0x08, "IV and key");
		s = mend_file_link_format(l->url, l->iv, l->iv_len, l->key);
		TAP_OK(s &&
		           strcmp(s, "aesgcm://up.example.org:5281/x/y/Photo%201.jpg#" FRAG12) == 0,
		       "formats back");
		g_free(s);
	}
	mend_file_link_free(l);
	r = mend_file_link_parse("AESGCM://[::1]:443/f.bin#" IV16_HEX KEY_HEX, &l);
	TAP_OK(r == 0 && l && l->iv_len == 16 && strcmp(l->name, "f.bin") == 0,
	       "a 16-byte IV link to an IPv6 host");
	mend_file_link_free(l);
	TAP_EQ(parses("aesgcm://h/f#"
	              "CAFEBABEFACEDBADDECAF888" KEY_HEX),
	       0, "upper-case hex");
	TAP_EQ(parses("aesgcm://h/f#" FRAG12 "0"), MEND_ERR_MALFORMED, "an odd digit more");
	TAP_EQ(parses("aesgcm://h/f#" IV12_HEX "0" KEY_HEX "0"), MEND_ERR_MALFORMED,
	       "25 IV digits");
	TAP_EQ(parses("aesgcm://h/f#"
	              "0000" FRAG12),
	       MEND_ERR_MALFORMED, "28 IV digits");
	TAP_EQ(parses("aesgcm://h/f#" IV12_HEX "feff"), MEND_ERR_MALFORMED, "a short key");
	TAP_EQ(parses("aesgcm://h/f#"
	              "gafebabefacedbaddecaf888" KEY_HEX),
	       MEND_ERR_MALFORMED, "a non-hex digit");
	TAP_EQ(parses("aesgcm://h/f"), MEND_ERR_MALFORMED, "no fragment");
	TAP_EQ(parses("aesgcm://h/f#a#" FRAG12), MEND_ERR_MALFORMED, "two fragments");
	TAP_EQ(parses("aesgcm://h/a b#" FRAG12), MEND_ERR_MALFORMED, "a space inside");
	TAP_EQ(parses("https://h/f#" FRAG12), MEND_ERR_MALFORMED, "https:// is no file link");
	TAP_EQ(parses("see aesgcm://h/f#" FRAG12), MEND_ERR_MALFORMED, "text around it");
	TAP_EQ(parses("aesgcm://user@h/f#" FRAG12), MEND_ERR_MALFORMED, "user info");
	TAP_EQ(parses("aesgcm:///f#" FRAG12), MEND_ERR_MALFORMED, "no host");
	TAP_EQ(parses("aesgcm://h/f\x01#" FRAG12), MEND_ERR_MALFORMED, "a control character");
	TAP_EQ(parses(NULL), MEND_ERR_INVALID_ARG, "NULL");
	s = mend_file_link_format("http://h/f", NULL, 0, NULL);
	TAP_OK(s == NULL, "no link for http://");
}

static void test_safe_names(void)
{
	static const char *const cases[][2] = {
	    {"/a/b/c.txt", "c.txt"},
	    {"/x/..", "file"},
	    {"/x/%2e%2e", "file"},
	    {"/x/..%2F..%2Fetc%2Fpasswd", "passwd"},
	    {"/x/..%5C..%5Cboot.ini", "boot.ini"},
	    {"/x/%2Fetc%2Fshadow", "shadow"},
	    {"/x/.bashrc", "bashrc"},
	    {"/x/-rf", "rf"},
	    {"/x/a%0Ab.txt", "a_b.txt"},
	    {"/x/C%3A%5Cwin.ini", "win.ini"},
	    {"/x/a%00b", "a%00b"},
	    {"/x/%E6%97%A5%E6%9C%AC.png", "\xe6\x97\xa5\xe6\x9c\xac.png"},
	    {"/x/%FF.bin", "\xef\xbf\xbd.bin"},
	    {"/", "file"},
	    {NULL, "file"},
	};
	char *name, *longp;
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(cases); i++) {
		name = mend_file_safe_name(cases[i][0]);
		TAP_OK(strcmp(name, cases[i][1]) == 0, "safe name of %s: %s", cases[i][0], name);
		g_free(name);
	}
	longp = g_strnfill(500, 'a');
	name = mend_file_safe_name(longp);
	TAP_OK(strlen(name) <= 200, "a 500-byte name is cut to %zu bytes", strlen(name));
	g_free(name);
	g_free(longp);
}

static char *slurp(const char *path)
{
	char *text = NULL;

	g_file_get_contents(path, &text, NULL, NULL);
	return text;
}

/*
 * File systems without O_TMPFILE, hard links or RENAME_NOREPLACE (FAT, some FUSE), played
 * by failing those calls here: files_save.c is linked into this program, so its calls
 * come to these; everything else goes to the kernel as it would.
 */
static struct {
	int no_tmpfile, no_link, no_rename;
} fs_lacks;

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	int mode = 0;

	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
		va_start(ap, flags);
		mode = va_arg(ap, int);
		va_end(ap);
	}
	if (fs_lacks.no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	if (fs_lacks.no_link) {
		errno = EPERM; /* what vfat says */
		return -1;
	}
	return (int)syscall(SYS_linkat, olddirfd, oldpath, newdirfd, newpath, flags);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
	if (fs_lacks.no_rename) {
		errno = EINVAL;
		return -1;
	}
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

static int by_name(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder's names, sorted, joined by spaces. g_free. */
static char *listing(const char *dir)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;
	char *out;

	while (d && (n = g_dir_read_name(d)))
		g_ptr_array_add(names, g_strdup(n));
	if (d)
		g_dir_close(d);
	g_ptr_array_sort(names, by_name);
	g_ptr_array_add(names, NULL);
	out = g_strjoinv(" ", (char **)names->pdata);
	g_ptr_array_free(names, TRUE);
	return out;
}

static void rm_dir(char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;
	char *p;

	while (d && (n = g_dir_read_name(d))) {
		p = g_build_filename(dir, n, NULL);
		g_unlink(p);
		g_free(p);
	}
	if (d)
		g_dir_close(d);
	g_rmdir(dir);
	g_free(dir);
}

static char *slurp_in(const char *dir, const char *name)
{
	char *path = g_build_filename(dir, name, NULL), *text = slurp(path);

	g_free(path);
	return text;
}

/* A folder holding doc.txt ("old"); a file being received there, "secret" written. */
static char *folder_and_tmp(mend_file_tmp *t, int *opened)
{
	char *dir = g_dir_make_tmp("mend-files-XXXXXX", NULL),
	     *old = g_build_filename(dir, "doc.txt", NULL);

	g_file_set_contents(old, "old", 3, NULL);
	g_free(old);
	*opened = mend_file_tmp_open(t, dir) == MEND_OK && write(t->fd, "secret", 6) == 6;
	return dir;
}

/* Placing as doc.txt, which exists: doc-1.txt holds the file, doc.txt stays; `how` says
 * which way the file system allowed: the same inode (a link or a rename), or a copy. */
static void check_placed(mend_file_tmp *t, const char *dir, const char *how, int copied)
{
	char *taken = NULL, *text, *list, *path = g_build_filename(dir, "doc-1.txt", NULL);
	struct stat tmp_st, st;
	int r;

	fstat(t->fd, &tmp_st);
	r = mend_file_tmp_place(t, "doc.txt", 1, &taken);
	TAP_OK(r == MEND_OK && !g_strcmp0(taken, "doc-1.txt"), "%s: doc.txt taken, doc-1.txt used",
	       how);
	TAP_OK(stat(path, &st) == 0 && (st.st_ino != tmp_st.st_ino) == copied, "%s: %s", how,
	       copied ? "a new file" : "the received file itself");
	g_free(path);
	g_free(taken);
	mend_file_tmp_close(t);
	text = slurp_in(dir, "doc-1.txt");
	TAP_OK(!g_strcmp0(text, "secret"), "%s: doc-1.txt holds the file", how);
	g_free(text);
	text = slurp_in(dir, "doc.txt");
	TAP_OK(!g_strcmp0(text, "old"), "%s: doc.txt was not overwritten", how);
	g_free(text);
	list = listing(dir);
	TAP_OK(!strcmp(list, "doc-1.txt doc.txt"), "%s: nothing else is left: %s", how, list);
	g_free(list);
}

/* check_placed in a folder of its own, under the file system's limits set in fs_lacks. */
static void placed_in_new_folder(const char *how, int copied)
{
	mend_file_tmp t;
	int ok;
	char *dir = folder_and_tmp(&t, &ok);

	check_placed(&t, dir, how, copied);
	rm_dir(dir);
}

/* Where O_TMPFILE works: no name at all until placed; a failed file leaves no trace. */
static void test_tmp_unnamed(void)
{
	mend_file_tmp t;
	int ok;
	char *dir = folder_and_tmp(&t, &ok), *list = listing(dir), *taken = NULL;

	TAP_OK(ok && !t.name, "O_TMPFILE: a file without a name");
	TAP_OK(!strcmp(list, "doc.txt"), "its plaintext is under no name in the folder: %s", list);
	g_free(list);
	TAP_OK(mend_file_tmp_place(&t, "doc.txt", 0, &taken) == MEND_ERR_IO && errno == EEXIST &&
	           !taken,
	       "without renumbering an existing name is refused (EEXIST)");
	mend_file_tmp_close(&t); /* a tag failure: closed unplaced */
	list = listing(dir);
	TAP_OK(!strcmp(list, "doc.txt"), "a file never placed leaves the folder as it was");
	g_free(list);
	rm_dir(dir);
	placed_in_new_folder("linkat", 0);
	fs_lacks.no_link = 1;
	placed_in_new_folder("O_TMPFILE, no hard links: a copy", 1);
	fs_lacks.no_link = 0;
}

/* Without O_TMPFILE: a random 0600 name, then link, rename without replacing, or a copy. */
static void test_tmp_named(void)
{
	mend_file_tmp t, u;
	struct stat st;
	int ok;
	char *dir, *first;

	fs_lacks.no_tmpfile = 1;
	dir = folder_and_tmp(&t, &ok);
	TAP_OK(ok && t.name && g_str_has_prefix(t.name, ".mend-") && strlen(t.name) == 35,
	       "no O_TMPFILE: a random name (%s)", t.name ? t.name : "-");
	TAP_OK(fstat(t.fd, &st) == 0 && (st.st_mode & 0777) == 0600, "readable by us only");
	first = g_strdup(t.name);
	mend_file_tmp_open(&u, dir);
	TAP_OK(u.name && strcmp(u.name, first) != 0, "another download gets another name");
	mend_file_tmp_close(&u);
	g_free(first);
	check_placed(&t, dir, "link", 0);
	rm_dir(dir);
	fs_lacks.no_link = 1; /* FAT */
	placed_in_new_folder("no hard links: renameat2(RENAME_NOREPLACE)", 0);
	fs_lacks.no_rename = 1;
	placed_in_new_folder("no hard links, no RENAME_NOREPLACE: a copy", 1);
	memset(&fs_lacks, 0, sizeof(fs_lacks));
}

/* A leftover whose process died goes at the next save; a held or young one stays. */
static void test_tmp_sweep(void)
{
	char *dir = g_dir_make_tmp("mend-files-XXXXXX", NULL), *list, *p;
	const char *names[] = {".mend-dead.part", ".mend-held.part", ".mend-young.part",
	                       "mine.part"};
	struct utimbuf old = {.actime = time(NULL) - 3600, .modtime = time(NULL) - 3600};
	mend_file_tmp t;
	int held = -1;
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(names); i++) {
		p = g_build_filename(dir, names[i], NULL);
		g_file_set_contents(p, "x", 1, NULL);
		if (i != 2)
			utime(p, &old);
		if (i == 1) {
			held = open(p, O_RDONLY);
			flock(held, LOCK_EX);
		}
		g_free(p);
	}
	mend_file_tmp_open(&t, dir);
	mend_file_tmp_close(&t);
	list = listing(dir);
	TAP_OK(!strcmp(list, ".mend-held.part .mend-young.part mine.part"),
	       "the dead process's leftover was swept, nothing else: %s", list);
	g_free(list);
	close(held);
	rm_dir(dir);
}

/* The plugins' numbered links: numbers go up, the oldest go after 200, bad numbers are said. */
static void test_shelf(void)
{
	mend_file_shelf *s = NULL;
	unsigned i, n = 0;
	char *line;

	line = mend_file_shelf_save(NULL, s, NULL, NULL, NULL, NULL, NULL);
	TAP_OK(strstr(line, "no such file") != NULL, "nothing received yet: %s", line);
	g_free(line);
	for (i = 0; i < 201; i++)
		n = mend_file_shelf_add(&s, "aesgcm://h/f#" FRAG12);
	TAP_EQ(n, 201, "the 201st link is number 201");
	line = mend_file_shelf_save(NULL, s, "1", NULL, NULL, NULL, NULL);
	TAP_OK(strstr(line, "no such file") != NULL, "number 1 was dropped (200 are kept)");
	g_free(line);
	line = mend_file_shelf_save(NULL, s, "202", NULL, NULL, NULL, NULL);
	TAP_OK(strstr(line, "no such file") != NULL, "no number 202 yet");
	g_free(line);
	line = mend_file_shelf_save(NULL, s, "2x", NULL, NULL, NULL, NULL);
	TAP_OK(strstr(line, "no such file") != NULL, "not a number");
	g_free(line);
	mend_file_shelf_free(s);
}

/* A host's progress line: files from 1 MiB, each quarter once, in order. */
static void test_progress_text(void)
{
	const uint64_t big = 4 * 1024 * 1024;
	int last = 0;
	char *line;

	TAP_OK(!mend_file_progress_text("small", 1000, 2000, &last), "a small file: no line");
	TAP_OK(!mend_file_progress_text("big", big / 8, big, &last), "under a quarter: no line");
	line = mend_file_progress_text("big", big / 2, big, &last);
	TAP_OK(line && strstr(line, "big: 50% sent"), "half: %s", line ? line : "(none)");
	g_free(line);
	TAP_OK(!mend_file_progress_text("big", big / 2 + 1, big, &last), "the same quarter: once");
	TAP_OK(!mend_file_progress_text("big", big / 4, big, &last), "never backwards");
	line = mend_file_progress_text("big", big, big, &last);
	TAP_OK(line && strstr(line, "100% sent"), "all: %s", line ? line : "(none)");
	g_free(line);
	TAP_OK(!mend_file_progress_text("big", big + 1, big, &last),
	       "more than the total: no line");
}

int main(void)
{
	mend_crypto_global_init();
	test_vectors();
	test_tag_failures();
	test_link_parser();
	test_safe_names();
	test_tmp_unnamed();
	test_tmp_named();
	test_tmp_sweep();
	test_shelf();
	test_progress_text();
	return tap_done();
}
