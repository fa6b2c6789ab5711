/*
 * fuzz-account.c - the account the engine's targets feed (fuzz.h): alice,
 * with bob's device list and a session with bob, connected with carbons,
 * catch-up and disco. What alice sends goes nowhere; the last IQ's id is
 * kept for {I}.
 */
#include "config.h"

#include <string.h>
#include "mend/mend.h"
#include "sim.h"
#include "fuzz.h"

#define ALICE "alice@x"
#define BOB   "bob@x"

typedef struct world {
	sim *s;
	sim_dev *bob;
	mend_account *alice;
	char *alice_dir;
	char *last_iq; /* id of the last <iq/> alice sent */
	char ids[2][16];
	char bob_fp[65];
} world;

static world *w;

static int on_send(const char *xml, void *ud)
{
	const char *p = strstr(xml, " id=");
	size_t n;

	if (!g_str_has_prefix(xml, "<iq") || !p || (p[4] != '"' && p[4] != '\''))
		return 0;
	n = strcspn(p + 5, "\"'");
	g_free(w->last_iq);
	w->last_iq = g_strndup(p + 5, n);
	return 0;
}

static const mend_host_ops alice_ops = {
    .send_stanza = on_send,
};

static void world_free(void)
{
	mend_account_free(w->alice);
	g_free(w->alice_dir);
	sim_free(w->s);
	g_free(w->last_iq);
	g_free(w);
}

/* Alice learns bob's device list and builds a session from his bundle. */
static void meet_bob(void)
{
	uint32_t bob_id = mend_account_device_id(w->bob->acc);
	char *list = g_strdup_printf("<list xmlns='eu.siacs.conversations.axolotl'>"
	                             "<device id='%u'/></list>",
	                             bob_id);
	char *bundle = NULL;

	FUZZ_CHECK(mend_account_devicelist_update(w->alice, BOB, list) == MEND_OK);
	FUZZ_CHECK(mend_account_bundle_xml(w->bob->acc, &bundle) == MEND_OK);
	FUZZ_CHECK(mend_account_bundle_process(w->alice, BOB, bob_id, bundle) == MEND_OK);
	FUZZ_CHECK(mend_account_fingerprint(w->bob->acc, w->bob_fp) == MEND_OK);
	g_snprintf(w->ids[0], sizeof(w->ids[0]), "%u", mend_account_device_id(w->alice));
	g_snprintf(w->ids[1], sizeof(w->ids[1]), "%u", bob_id);
	mend_free(bundle);
	g_free(list);
}

struct mend_account *fuzz_alice(void)
{
	if (w)
		return w->alice;
	w = g_new0(world, 1);
	w->s = sim_new();
	FUZZ_CHECK(w->s != NULL);
	w->bob = sim_add(w->s, BOB, "bob");
	FUZZ_CHECK(w->bob != NULL);
	w->alice_dir = g_build_filename(w->s->root, "alice", NULL);
	FUZZ_CHECK(mend_account_open(&w->alice, ALICE, w->alice_dir, MEND_KEYRING_FILE, &alice_ops,
	                             NULL) == MEND_OK);
	atexit(world_free);
	meet_bob();
	FUZZ_CHECK(mend_account_connected(w->alice, ALICE "/r",
	                                  MEND_CONNECT_CARBONS | MEND_CONNECT_CATCHUP |
	                                      MEND_CONNECT_DISCO) == MEND_OK);
	return w->alice;
}

/* What {c} stands for, or NULL. */
static const char *placeholder(char c)
{
	return c == 'A'   ? w->ids[0]
	       : c == 'B' ? w->ids[1]
	       : c == 'F' ? w->bob_fp
	       : c == 'I' ? (w->last_iq ? w->last_iq : "")
	                  : NULL;
}

/*
 * Copies runs up to the next '{' whole (memchr, not byte by byte: this runs
 * for every input, and per-byte tests cost more than the engine's own work).
 */
char *fuzz_expand(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end;
	GString *out;

	fuzz_alice();
	end = p + strnlen(p, size);
	out = g_string_sized_new((size_t)(end - p) + 1);
	while (p < end) {
		const char *brace = memchr(p, '{', (size_t)(end - p));
		const char *v;

		if (!brace) {
			g_string_append_len(out, p, end - p);
			break;
		}
		g_string_append_len(out, p, brace - p);
		v = end - brace >= 3 && brace[2] == '}' ? placeholder(brace[1]) : NULL;
		g_string_append(out, v ? v : "{");
		p = brace + (v ? 3 : 1);
	}
	return g_string_free(out, FALSE);
}
