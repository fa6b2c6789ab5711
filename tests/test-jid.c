/*
 * test-jid.c - the one JID normaliser (src/core/jid.c): every spelling of a
 * contact names the same chat, and what is not a JID is refused.
 */
#include "config.h"

#include <glib.h>

#include "mend/mend.h"
#include "tap.h"

static const struct {
	const char *in;
	const char *want; /* NULL: refused */
} cases[] = {
    {"bob@example.org", "bob@example.org"},
    {"Bob@Example.org", "bob@example.org"},
    {"BOB@EXAMPLE.ORG/Phone", "bob@example.org"},
    {"bob@example.org/", NULL},
    {"bob@example.org/a/b@c", "bob@example.org"},
    {"bob@example.org.", "bob@example.org"},
    {"example.org", "example.org"},
    {"Example.ORG/res", "example.org"},
    {"room@conference.example.org/Nick Name", "room@conference.example.org"},
    {"\xc3\x84rger@example.org", "\xc3\xa4rger@example.org"},  /* Ä -> ä */
    {"A\xcc\x88rger@example.org", "\xc3\xa4rger@example.org"}, /* A + U+0308 -> ä (NFC) */
    {"", NULL},
    {"@example.org", NULL},
    {"bob@", NULL},
    {"bob@/res", NULL},
    {"/res", NULL},
    {"b ob@example.org", NULL},
    {"bob@exa mple.org", NULL},
    {"b\"ob@example.org", NULL},
    {"b<ob@example.org", NULL},
    {"b:ob@example.org", NULL},
    {"bob@@example.org", NULL},
    {"bob@example.org\t", NULL},
    {"bob\xff@example.org", NULL},
    {".", NULL},
};

/* "bob@example.org/" has an empty resource: RFC 7622 §3.4 makes it no JID; we only drop the
 * resource, so both readings are acceptable as long as the result never names another chat. */
static int acceptable(size_t i, const char *got)
{
	if (g_str_equal(cases[i].in, "bob@example.org/"))
		return !got || g_str_equal(got, "bob@example.org");
	if (!cases[i].want)
		return got == NULL;
	return got && g_str_equal(got, cases[i].want);
}

static void test_cases(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *got = mend_jid_normalize(cases[i].in);

		TAP_OK(acceptable(i, got), "\"%s\" -> %s", cases[i].in,
		       cases[i].want ? cases[i].want : "refused");
		if (!acceptable(i, got))
			printf("#   got %s\n", got ? got : "NULL");
		mend_free(got);
	}
}

static void test_null_and_limits(void)
{
	GString *s = g_string_new(NULL);
	char *got;

	TAP_OK(mend_jid_normalize(NULL) == NULL, "NULL is refused");
	g_string_append_c(s, 'a');
	while (s->len < 1023)
		g_string_append_c(s, 'a');
	g_string_append(s, "@example.org");
	got = mend_jid_normalize(s->str);
	TAP_OK(got && strlen(got) == 1023 + strlen("@example.org"),
	       "a 1023-octet localpart is kept");
	mend_free(got);
	g_string_insert_c(s, 0, 'a');
	got = mend_jid_normalize(s->str);
	TAP_OK(got == NULL, "a 1024-octet localpart is refused (RFC 7622 §3.3)");
	mend_free(got);
	g_string_free(s, TRUE);
}

/* Normalising twice changes nothing: a stored key looks itself up. */
static void test_idempotent(void)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *once = mend_jid_normalize(cases[i].in);
		char *twice = once ? mend_jid_normalize(once) : NULL;

		if (once && (!twice || !g_str_equal(once, twice)))
			bad++;
		mend_free(once);
		mend_free(twice);
	}
	TAP_EQ(bad, 0, "normalising is idempotent");
}

int main(void)
{
	test_cases();
	test_null_and_limits();
	test_idempotent();
	return tap_done();
}
