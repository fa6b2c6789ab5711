/*
 * fuzz.h - what the fuzz targets in tests/fuzz/ share (README.md there).
 *
 * Each target defines LLVMFuzzerTestOneInput(). Built with --enable-fuzzing
 * (clang) it is a libFuzzer program; otherwise driver.c gives it a main()
 * that runs the files and folders named on the command line through it once
 * (the corpus and the regression inputs in `make check`).
 *
 * A target keeps what is costly to make (an xmpp context, a store, an
 * account) from one input to the next: libFuzzer calls the function for
 * every input of one process, so those live in a static, made on first use.
 */
#ifndef MEND_TESTS_FUZZ_H
#define MEND_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>
#include <strophe.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep; on failure says which and aborts (a finding). */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* One xmpp context for the whole process. */
xmpp_ctx_t *fuzz_xmpp_ctx(void);

/* The input as a NUL-terminated string (g_free). Bytes after a NUL are cut. */
char *fuzz_text(const uint8_t *data, size_t size);

/* The input parsed as one XML element with libstrophe, as the engine parses stanzas; or NULL. */
xmpp_stanza_t *fuzz_xml(const uint8_t *data, size_t size);

/* Where an element of one name goes (the codec targets). */
typedef struct fuzz_route {
	const char *name;
	void (*check)(xmpp_stanza_t *el);
} fuzz_route;

/*
 * The input parsed as one XML element (fuzz_xml), given to the check of
 * the route of its name (any namespace: the parsers check that). The list
 * of routes ends with a NULL name. Returns 0.
 */
int fuzz_xml_route(const uint8_t *data, size_t size, const fuzz_route *routes);

/*
 * fuzz-account.c: alice (alice@x/r), connected to a scripted server that
 * never answers, who knows bob's device and has a session with it (bob is a
 * real account of tests/sim.c). Made on first use, removed at exit.
 */
struct mend_account;
struct mend_account *fuzz_alice(void);
/*
 * The input as text with these replaced, so that inputs can name what differs
 * from run to run: {A} alice's device id, {B} bob's, {F} the fingerprint of
 * bob's key (64 hex digits), {I} the id of the last IQ alice sent. g_free.
 */
char *fuzz_expand(const uint8_t *data, size_t size);

#endif
