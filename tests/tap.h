/*
 * tap.h - the smallest test helper: numbered checks printed as TAP lines,
 * a failing check prints why (file, line, expression, values), and
 * tap_done() exits 0 when every check passed, 1 otherwise (automake's
 * default driver: 0 pass, 77 skip, 99 hard error).
 */
#ifndef MEND_TESTS_TAP_H
#define MEND_TESTS_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define TAP_OK(cond, ...)                                                                          \
	do {                                                                                       \
		int tap_c_ = !!(cond);                                                             \
		tap_n++;                                                                           \
		if (!tap_c_)                                                                       \
			tap_failed++;                                                              \
		printf("%s %d - ", tap_c_ ? "ok" : "not ok", tap_n);                               \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		if (!tap_c_)                                                                       \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
		fflush(stdout);                                                                    \
	} while (0)

/* Compares two integers and prints both when they differ. */
#define TAP_EQ(got, want, ...)                                                                     \
	do {                                                                                       \
		long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);                   \
		TAP_OK(tap_g_ == tap_w_, __VA_ARGS__);                                             \
		if (tap_g_ != tap_w_)                                                              \
			printf("#   got %lld, want %lld\n", tap_g_, tap_w_);                       \
	} while (0)

/* Stops the test at once: something it depends on failed. */
#define TAP_BAIL(...)                                                                              \
	do {                                                                                       \
		printf("Bail out! ");                                                              \
		printf(__VA_ARGS__);                                                               \
		printf(" (%s:%d)\n", __FILE__, __LINE__);                                          \
		exit(99);                                                                          \
	} while (0)

#define TAP_SKIP_ALL(...)                                                                          \
	do {                                                                                       \
		printf("1..0 # SKIP ");                                                            \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		exit(77);                                                                          \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_failed)
		printf("# %d of %d checks failed\n", tap_failed, tap_n);
	return tap_failed ? 1 : 0;
}

#endif
