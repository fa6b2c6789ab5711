/*
 * driver.c - main() for a fuzz target built without libFuzzer: runs every
 * file named on the command line, and every file in every folder named,
 * through LLVMFuzzerTestOneInput() once, as `target FILE...` does with
 * libFuzzer. A crash or a failed check aborts; otherwise it prints how many
 * inputs ran. With --enable-fuzzing libFuzzer brings its own main.
 */
#include "config.h"

#ifndef MEND_FUZZING
#include <string.h>
#include "fuzz.h"

static int run_file(const char *path)
{
	gchar *data = NULL;
	gsize len = 0;
	GError *err = NULL;

	if (!g_file_get_contents(path, &data, &len, &err)) {
		fprintf(stderr, "%s\n", err->message);
		g_error_free(err);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	g_free(data);
	return 1;
}

static gint by_name(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs `path` (a file, or each file of a folder in name order); how many ran, or -1. */
static int run_path(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	GPtrArray *names;
	const char *name;
	int n = 0, r = 0;
	guint i;

	if (!dir)
		return run_file(path);
	names = g_ptr_array_new_with_free_func(g_free);
	while ((name = g_dir_read_name(dir)))
		g_ptr_array_add(names, g_build_filename(path, name, NULL));
	g_dir_close(dir);
	g_ptr_array_sort(names, by_name);
	for (i = 0; i < names->len && r >= 0; i++)
		n += (r = run_file(g_ptr_array_index(names, i))) > 0;
	g_ptr_array_free(names, TRUE);
	return r < 0 ? -1 : n;
}

int main(int argc, char **argv)
{
	int i, n = 0, r;

	for (i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue; /* libFuzzer's options (-runs=N ...) mean nothing here */
		r = run_path(argv[i]);
		if (r < 0)
			return 1;
		n += r;
	}
	printf("%s: %d inputs ran\n", argv[0], n);
	return 0;
}
#else
typedef int mend_fuzz_driver_unused; /* libFuzzer brings main() */
#endif
