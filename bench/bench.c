/*
 * bench.c - mend-bench: the figures of DESIGN §5, measured in one run so that
 * their ratios mean something (bench/README.md explains each one).
 *
 *  1. encrypting one message for N devices through the full path (ratchet,
 *     sealed SQLite store, one transaction, the stanza), against the same
 *     ratchet calls inside one store transaction without the stanza, and
 *     against the bare ratchet calls on sessions held in memory;
 *  2. where that time goes: the store and stanza primitives one by one;
 *  3. decrypting one (non-prekey) message;
 *  4. catching up on an archive of messages from several devices the way a
 *     host does it: every XEP-0313 result stanza handed to the protocol
 *     engine (mend_account_handle_stanza), which decrypts, keeps the message
 *     in local history, advances the catch-up position and emits an event;
 *     mend_account_decrypt alone as a reference, and the bare ratchet decrypt
 *     of such results' keys (the floor: libsignal alone);
 *  5. opening an account with few or many sessions;
 *  6. one group chat message (type=groupchat to the room, XEP-0045) for 50
 *     members with 3 devices each and for 1,000 devices, full path against
 *     the bare ratchet, as in section 1;
 *  9. one message for 100 OMEMO:2 devices against one for 100 legacy OMEMO
 *     devices, each full path against its bare ratchet, in the same run.
 *
 * A program, not a test: it prints figures and one line per project target,
 * and exits 1 only when something failed to work. Everything lives in a temp
 * dir removed at the end; store keys go to key files (no keyring is touched).
 * The N recipient devices are aliases: a few real accounts whose bundles are
 * processed under many (jid, device) pairs (trust on first use is per pair).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <gcrypt.h>
#include <sqlite3.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "internal.h"
#include "crypto2.h"
#include "omemo2_account.h"
#include "omemo2_engine.h"
#include "session2.h"
#include "xep/omemo_legacy.h"

#define DOMAIN          "bench.example"
#define N_RCPT_ACCOUNTS 5   /* real accounts behind the recipient aliases */
#define DEVICES_PER_JID 100 /* aliases per JID (device lists hold at most 500) */
#define FIRST_ALIAS_ID  1000
/* Section 4's last row: the history grown by this many times n rows first (to 10 n). */
#define KEPT_GROWN      6
#define N_SENDERS       5  /* devices the archive comes from */
#define SERVER_PAGE     50 /* results per page of a server's archive (Prosody's most) */
#define FEW_SESSIONS    10
#define KM_LEN          32 /* key || tag, what message.c ratchet-encrypts */
#define NS_MAM          "urn:xmpp:mam:2"
#define ARCHIVE_STAMP   "2026-11-21T10:00:00Z" /* the <delay/> of every archived message */
#define ROOM_JID        "team@conference." DOMAIN
#define ROOM_MEMBER_DEV 3   /* devices per room member (section 6) */
#define VERSIONS_N      100 /* devices per version (section 9) */

/* A message of ordinary chat length. */
static const char body_text[] = "Are we still on for lunch tomorrow? I can book the place "
                                "near the station for half past twelve.";

typedef struct stats {
	double med, min; /* seconds */
} stats;

/* The encrypt variants: the full path, the ratchet through the store, the bare ratchet. */
enum { V_FULL, V_STORE, V_BARE, N_VARIANTS };

typedef struct bench {
	char *root; /* temp dir, removed at the end */
	int quick;
	int verbose;
	const char *only; /* run this section alone (for profilers), or NULL */
	int variant;      /* encrypt: run this variant alone, or -1 */
	unsigned n_dirs;
	unsigned long next_sid;
	const size_t *ns;         /* the recipient counts, 0-terminated */
	stats enc100[N_VARIANTS]; /* full, store, bare at N=100 (acknowledged sessions) */
	double ratio100;          /* full/bare at N=100 (acknowledged sessions) */
	double catchup_rate;
	double startup_ratio;
	double ratio1000;       /* full/bare at N=1000 (acknowledged sessions), 0: not run */
	double catchup_kib;     /* KiB written per message in the catch-up through the engine */
	double catchup_slowest; /* msgs/s of the slowest engine row of section 4 */
	double catchup_kib_max; /* KiB per message of the engine row of section 4 writing most */
	double rss_peak_mib;    /* section 7: peak resident memory of the catching-up process */
	const char *rss_child;  /* --rss-child=DIR,JID,N: be that process (section 7) */
	const char *pyomemo;    /* --pyomemo=PATH: python-omemo's bench script (section 8) */
	double full_med[2][8];  /* full path medians by N (index in ns): [0] prekey, [1] answered */
	double catchup_med;     /* catch-up through the engine: median per result */
	double catchup_bare_med; /* the bare ratchet decrypt of such a result: median */
	double decrypt_rate;     /* section 3: messages/s */
} bench;

/* What a host sees of the core (section 4): the stanzas it sends, the events. */
typedef struct host {
	const bench *b;
	char *last_sent; /* the last stanza the core sent */
	char *mam_iq;    /* the last MAM query it sent */
	unsigned n_sent;
	unsigned messages;      /* MEND_EVENT_MESSAGE */
	unsigned wrong_body;    /* ... whose body is not body_text */
	unsigned undecryptable; /* MEND_EVENT_UNDECRYPTABLE */
	unsigned catchup_done;  /* MEND_EVENT_CATCHUP_DONE */
	int catchup_err;
} host;

/* One device: an account, its data dir and the full JID it sends from. */
typedef struct dev {
	mend_account *acc;
	char *jid;
	char *full;
	char *dir;
	host *host; /* host ops send_stanza and event go here, or NULL */
} dev;

/* Sessions in memory for the bare ratchet: "jid/device" -> serialized record. */
typedef struct bare {
	signal_context *sctx;
	signal_protocol_store_context *ss;
	mend_crypto *crypto;
	GHashTable *sessions;
	uint8_t *pub, *priv;
	size_t pub_len, priv_len;
	uint32_t reg_id;
} bare;

/* The sender, the accounts behind the aliases, and the aliases. */
typedef struct world {
	dev sender;
	dev rcpt[N_RCPT_ACCOUNTS];
	mend_recipient *rs;
	size_t n_rs;
	bare bare;
	const char *to; /* the full path's addressee: a room (section 6), else the first alias */
	int enc_flags;  /* MEND_ENC_GROUPCHAT for a room */
} world;

/* --- time, statistics, reporting ------------------------------------------ */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(gconstpointer a, gconstpointer b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median and min of the samples in `a` (sorts it). */
static stats stats_of(GArray *a)
{
	stats s = {0, 0};
	double *v = (double *)(void *)a->data;
	guint n = a->len;

	if (!n)
		return s;
	g_array_sort(a, cmp_double);
	s.min = v[0];
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

/* Bytes this process handed to write(2) and friends so far (Linux), or 0. */
static double bytes_written(void)
{
	char *text = NULL, *p;
	double n = 0;

	if (g_file_get_contents("/proc/self/io", &text, NULL, NULL)) {
		p = strstr(text, "wchar:");
		if (p)
			n = g_ascii_strtod(p + strlen("wchar:"), NULL);
	}
	g_free(text);
	return n;
}

static int report(const char *what, int r)
{
	fprintf(stderr, "mend-bench: %s: %s\n", what, mend_strerror(r));
	return r;
}

static void log_cb(mend_log_level level, const char *text, void *ud)
{
	const bench *b = ud;

	if (b->verbose || level == MEND_LOG_ERROR)
		fprintf(stderr, "  [core] %s\n", text);
}

/* --- a host ----------------------------------------------------------------- */

static int host_send(const char *xml, void *ud)
{
	host *h = ud;

	g_free(h->last_sent);
	h->last_sent = g_strdup(xml);
	h->n_sent++;
	if (strstr(xml, NS_MAM)) {
		g_free(h->mam_iq);
		h->mam_iq = g_strdup(xml);
	}
	return 0;
}

static void host_event(const mend_event *ev, void *ud)
{
	host *h = ud;

	switch (ev->kind) {
	case MEND_EVENT_MESSAGE:
		h->messages++;
		if (!ev->body || strcmp(ev->body, body_text) != 0)
			h->wrong_body++;
		break;
	case MEND_EVENT_UNDECRYPTABLE:
		if (h->undecryptable++ < 3)
			fprintf(stderr, "mend-bench: UNDECRYPTABLE: %s\n",
			        ev->text ? ev->text : "?");
		break;
	case MEND_EVENT_CATCHUP_DONE:
		h->catchup_done++;
		h->catchup_err = ev->error;
		break;
	default:
		break;
	}
}

static void host_log(mend_log_level level, const char *text, void *ud)
{
	const host *h = ud;

	log_cb(level, text, (void *)h->b);
}

/* Forgets the events counted so far. */
static void host_reset(host *h)
{
	h->messages = h->wrong_body = h->undecryptable = h->catchup_done = 0;
	h->catchup_err = 0;
}

static void host_clear(host *h)
{
	g_free(h->last_sent);
	g_free(h->mam_iq);
	memset(h, 0, sizeof(*h));
}

/* --- devices -------------------------------------------------------------- */

static int dev_open(bench *b, dev *d)
{
	const mend_host_ops plain = {.log = log_cb};
	const mend_host_ops with_host = {
	    .send_stanza = host_send, .log = host_log, .event = host_event};
	int r;

	if (d->host)
		r = mend_account_open(&d->acc, d->jid, d->dir, MEND_KEYRING_FILE, &with_host,
		                      d->host);
	else
		r = mend_account_open(&d->acc, d->jid, d->dir, MEND_KEYRING_FILE, &plain, b);
	return r < 0 ? report(d->jid, r) : r;
}

static int dev_new(bench *b, dev *d, const char *jid)
{
	d->jid = g_strdup(jid);
	d->full = g_strdup_printf("%s/bench", jid);
	d->dir = g_strdup_printf("%s/a%u", b->root, b->n_dirs++);
	return dev_open(b, d);
}

static void dev_close(dev *d)
{
	mend_account_free(d->acc);
	d->acc = NULL;
}

static void dev_clear(dev *d)
{
	dev_close(d);
	g_free(d->jid);
	g_free(d->full);
	g_free(d->dir);
	memset(d, 0, sizeof(*d));
}

static uint32_t dev_id(const dev *d)
{
	return mend_account_device_id(d->acc);
}

/* --- stanzas -------------------------------------------------------------- */

/*
 * The stanza as `to`'s server hands it over: from = the sender's full JID and,
 * with with_sid, a XEP-0359 stanza-id stamped by `to`'s server (as MAM results
 * carry). NULL when the stanza is not a <message/>. g_free the result.
 */
static char *stamp(bench *b, const char *stanza, const dev *from, const dev *to, int with_sid)
{
	const char *end = g_strrstr(stanza, "</message>");
	char *sid, *out;

	if (!g_str_has_prefix(stanza, "<message ") || !end)
		return NULL;
	if (with_sid)
		sid = g_strdup_printf("<stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='mam-%lu'/>",
		                      to->jid, ++b->next_sid);
	else
		sid = g_strdup("");
	out = g_strdup_printf("<message from='%s'%.*s%s%s", from->full, (int)(end - stanza) - 8,
	                      stanza + 8, sid, end);
	g_free(sid);
	return out;
}

/* Encrypts the body from `from` for `to`'s device, stamped for `to`. */
static int send_one(bench *b, dev *from, dev *to, int with_sid, char **out)
{
	mend_recipient rc = {to->jid, dev_id(to), 0};
	char *stanza = NULL;
	int r;

	*out = NULL;
	r = mend_account_encrypt_for(from->acc, to->jid, &rc, 1, body_text, NULL, 0, &stanza);
	if (r < 0)
		return report("encrypt", r);
	*out = stamp(b, stanza, from, to, with_sid);
	mend_free(stanza);
	return *out ? MEND_OK : report("stamp", MEND_ERR_MALFORMED);
}

/* Decrypts a stamped stanza at `to` with mend_account_decrypt and checks the text. */
static int recv_one(dev *to, const char *stanza)
{
	mend_message *msg = NULL;
	int r;

	r = mend_account_decrypt(to->acc, stanza, &msg);
	if (r == MEND_OK && (!msg->body || strcmp(msg->body, body_text) != 0))
		r = MEND_ERR_PROTOCOL;
	mend_message_free(msg);
	return r < 0 ? report("decrypt", r) : r;
}

/* Sessions both ways, acknowledged: a builds from c's bundle, sends; c replies. */
static int handshake(bench *b, dev *a, dev *c)
{
	char *bundle = NULL, *st = NULL;
	int r;

	r = mend_account_bundle_xml(c->acc, &bundle);
	if (r == MEND_OK)
		r = mend_account_bundle_process(a->acc, c->jid, dev_id(c), bundle);
	mend_free(bundle);
	if (r < 0)
		return report("bundle", r);
	r = send_one(b, a, c, 0, &st);
	if (r == MEND_OK)
		r = recv_one(c, st);
	g_free(st);
	st = NULL;
	if (r == MEND_OK)
		r = send_one(b, c, a, 0, &st);
	if (r == MEND_OK)
		r = recv_one(a, st);
	g_free(st);
	return r;
}

/* --- ratchet calls without the stanza ------------------------------------- */

/* One ratchet encryption of km for (jid, device), as message.c's encrypt_key. */
static int ratchet_encrypt(signal_context *sctx, signal_protocol_store_context *ss, const char *jid,
                           uint32_t device, const uint8_t *km, size_t len, signal_buffer **out,
                           int *prekey)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)device};
	session_cipher *cipher = NULL;
	ciphertext_message *ctm = NULL;
	int r;

	r = session_cipher_create(&cipher, ss, &addr, sctx);
	if (r < 0)
		return r;
	r = session_cipher_encrypt(cipher, km, len, &ctm);
	if (r >= 0 && out) {
		*out = signal_buffer_copy(ciphertext_message_get_serialized(ctm));
		*prekey = ciphertext_message_get_type(ctm) == CIPHERTEXT_PREKEY_TYPE;
	}
	SIGNAL_UNREF(ctm);
	session_cipher_free(cipher);
	return r;
}

static int ratchet_decrypt(signal_context *sctx, signal_protocol_store_context *ss, const char *jid,
                           uint32_t device, signal_buffer *in, int prekey)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)device};
	pre_key_signal_message *pm = NULL;
	signal_message *sm = NULL;
	session_cipher *cipher = NULL;
	signal_buffer *plain = NULL;
	int r;

	if (prekey)
		r = pre_key_signal_message_deserialize(&pm, signal_buffer_data(in),
		                                       signal_buffer_len(in), sctx);
	else
		r = signal_message_deserialize(&sm, signal_buffer_data(in), signal_buffer_len(in),
		                               sctx);
	if (r >= 0)
		r = session_cipher_create(&cipher, ss, &addr, sctx);
	if (r >= 0 && pm)
		r = session_cipher_decrypt_pre_key_signal_message(cipher, pm, NULL, &plain);
	else if (r >= 0)
		r = session_cipher_decrypt_signal_message(cipher, sm, NULL, &plain);
	session_cipher_free(cipher);
	signal_buffer_bzero_free(plain);
	SIGNAL_UNREF(pm);
	SIGNAL_UNREF(sm);
	return r;
}

/*
 * One OMEMO:2 ratchet step for (jid, device) on 48 bytes of key material, as
 * omemo2_message.c's encrypt_key: through acc's store (its callbacks then see the
 * OMEMO:2 sessions), or with acc NULL on a bare store. *out (g_free) when out is given.
 */
static int ratchet2_encrypt(mend_account *acc, signal_context *sctx,
                            signal_protocol_store_context *ss, const char *jid, uint32_t device,
                            uint8_t **out, size_t *len, int *kex)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)device};
	uint8_t km[MEND_OMEMO2_KEYMAT_LEN] = {0}, *o = NULL;
	size_t n = 0;
	int k = 0, r;

	if (acc)
		acc->ratchet_version = MEND_VERSION_2;
	r = mend_omemo2_session_encrypt(ss, sctx, &addr, km, sizeof(km), &o, &n, &k);
	if (acc)
		acc->ratchet_version = 0;
	if (out) {
		*out = o;
		*len = n;
		*kex = k;
	} else {
		g_free(o);
	}
	return r;
}

/* One ratchet step for a recipient in its version (acc: through its store, NULL: bare). */
static int rc_encrypt(mend_account *acc, signal_context *sctx, signal_protocol_store_context *ss,
                      const mend_recipient *rc)
{
	uint8_t km[KM_LEN] = {0};
	int r;

	if (rc->version == MEND_VERSION_2)
		return ratchet2_encrypt(acc, sctx, ss, rc->jid, rc->device, NULL, NULL, NULL);
	r = ratchet_encrypt(sctx, ss, rc->jid, rc->device, km, sizeof(km), NULL, NULL);
	if (r >= 0)
		return MEND_OK;
	return acc ? mend_account_signal_err(acc, r) : mend_err_from_signal(r);
}

/* An OMEMO:2 <key/> from (jid, device) through acc's store (omemo2_message.c's open_key). */
static int ratchet2_decrypt(mend_account *acc, const char *jid, uint32_t device, signal_buffer *in,
                            int kex)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)device};
	uint8_t *km = NULL;
	size_t km_len = 0;
	int r;

	acc->ratchet_version = MEND_VERSION_2;
	r = mend_omemo2_session_decrypt(acc->sstore, acc->sctx, &addr, kex, signal_buffer_data(in),
	                                signal_buffer_len(in), &km, &km_len);
	acc->ratchet_version = 0;
	g_free(km);
	return r;
}

/* The same through an account's store, in one transaction, in `version` (0: legacy). */
static int acc_encrypt(mend_account *acc, const char *jid, uint32_t device, int version,
                       signal_buffer **out, int *prekey)
{
	uint8_t km[KM_LEN] = {0}, *o = NULL;
	size_t n = 0;
	int r;

	r = mend_account_txn_begin(acc);
	if (r < 0)
		return r;
	if (version == MEND_VERSION_2) {
		r = ratchet2_encrypt(acc, acc->sctx, acc->sstore, jid, device, &o, &n, prekey);
		if (r == MEND_OK && !(*out = signal_buffer_create(o, n)))
			r = MEND_ERR_NOMEM;
		g_free(o);
		return mend_account_txn_end(acc, r);
	}
	r = ratchet_encrypt(acc->sctx, acc->sstore, jid, device, km, sizeof(km), out, prekey);
	if (r < 0)
		r = mend_account_signal_err(acc, r);
	return mend_account_txn_end(acc, r);
}

static int acc_decrypt(mend_account *acc, const char *jid, uint32_t device, int version,
                       signal_buffer *in, int prekey)
{
	int r;

	r = mend_account_txn_begin(acc);
	if (r < 0)
		return r;
	if (version == MEND_VERSION_2)
		return mend_account_txn_end(acc, ratchet2_decrypt(acc, jid, device, in, prekey));
	r = ratchet_decrypt(acc->sctx, acc->sstore, jid, device, in, prekey);
	if (r < 0)
		r = mend_account_signal_err(acc, r);
	return mend_account_txn_end(acc, r);
}

/* --- the bare ratchet: sessions in a hash table --------------------------- */

static char *addr_key(const char *name, size_t len, int32_t device)
{
	return g_strdup_printf("%.*s/%d", (int)len, name, device);
}

static int bare_load_session(signal_buffer **record, signal_buffer **user_record,
                             const signal_protocol_address *a, void *ud)
{
	bare *z = ud;
	char *key = addr_key(a->name, a->name_len, a->device_id);
	signal_buffer *rec = g_hash_table_lookup(z->sessions, key);

	g_free(key);
	*user_record = NULL;
	if (!rec)
		return 0;
	*record = signal_buffer_copy(rec);
	return *record ? 1 : SG_ERR_NOMEM;
}

static int bare_store_session(const signal_protocol_address *a, uint8_t *record, size_t len,
                              uint8_t *user_record, size_t user_len, void *ud)
{
	bare *z = ud;
	signal_buffer *rec = signal_buffer_create(record, len);

	if (!rec)
		return SG_ERR_NOMEM;
	g_hash_table_replace(z->sessions, addr_key(a->name, a->name_len, a->device_id), rec);
	return 0;
}

static int bare_contains_session(const signal_protocol_address *a, void *ud)
{
	bare *z = ud;
	char *key = addr_key(a->name, a->name_len, a->device_id);
	int r = g_hash_table_contains(z->sessions, key);

	g_free(key);
	return r;
}

static int bare_identity_pair(signal_buffer **pub, signal_buffer **priv, void *ud)
{
	bare *z = ud;

	*pub = signal_buffer_create(z->pub, z->pub_len);
	*priv = signal_buffer_create(z->priv, z->priv_len);
	return *pub && *priv ? 0 : SG_ERR_NOMEM;
}

static int bare_registration_id(void *ud, uint32_t *id)
{
	*id = ((bare *)ud)->reg_id;
	return 0;
}

static int bare_save_identity(const signal_protocol_address *a, uint8_t *key, size_t len, void *ud)
{
	return 0;
}

static int bare_is_trusted(const signal_protocol_address *a, uint8_t *key, size_t len, void *ud)
{
	return 1;
}

static void bare_install(bare *z)
{
	signal_protocol_session_store ss = {
	    .load_session_func = bare_load_session,
	    .store_session_func = bare_store_session,
	    .contains_session_func = bare_contains_session,
	    .user_data = z,
	};
	signal_protocol_identity_key_store is = {
	    .get_identity_key_pair = bare_identity_pair,
	    .get_local_registration_id = bare_registration_id,
	    .save_identity = bare_save_identity,
	    .is_trusted_identity = bare_is_trusted,
	    .user_data = z,
	};

	signal_protocol_store_context_set_session_store(z->ss, &ss);
	signal_protocol_store_context_set_identity_key_store(z->ss, &is);
}

/* A plain signal context with mend's crypto provider and `acc`'s identity. */
static int bare_open(bare *z, mend_account *acc)
{
	signal_crypto_provider provider;
	int r;

	z->sessions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	                                    (GDestroyNotify)signal_buffer_bzero_free);
	r = mend_crypto_new(&z->crypto);
	if (r == MEND_OK)
		r = mend_store_identity_get(acc->store, &z->reg_id, &z->pub, &z->pub_len, &z->priv,
		                            &z->priv_len);
	if (r < 0)
		return r;
	r = signal_context_create(&z->sctx, z);
	if (r < 0)
		return mend_err_from_signal(r);
	mend_crypto_fill_provider(z->crypto, &provider);
	signal_context_set_crypto_provider(z->sctx, &provider);
	r = signal_protocol_store_context_create(&z->ss, z->sctx);
	if (r < 0)
		return mend_err_from_signal(r);
	bare_install(z);
	return MEND_OK;
}

static void bare_close(bare *z)
{
	if (z->ss)
		signal_protocol_store_context_destroy(z->ss);
	if (z->sctx)
		signal_context_destroy(z->sctx);
	mend_crypto_free(z->crypto);
	if (z->sessions)
		g_hash_table_destroy(z->sessions);
	if (z->priv)
		memset(z->priv, 0, z->priv_len);
	g_free(z->priv);
	g_free(z->pub);
	memset(z, 0, sizeof(*z));
}

/* Copies the records of these sessions out of `acc`'s store (the same key material). */
static int bare_copy_sessions(bare *z, mend_account *acc, const mend_recipient *rs, size_t n)
{
	uint8_t *data = NULL;
	size_t len = 0, i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < n; i++) {
		r = mend_store_session_get_v(acc->store, rs[i].jid, rs[i].device,
		                             rs[i].version ? rs[i].version : MEND_VERSION_LEGACY,
		                             &data, &len);
		if (r < 0)
			break;
		g_hash_table_replace(z->sessions,
		                     addr_key(rs[i].jid, strlen(rs[i].jid), (int32_t)rs[i].device),
		                     signal_buffer_create(data, len));
		memset(data, 0, len);
		g_free(data);
	}
	return r;
}

/* --- 1. encrypting for N devices ------------------------------------------ */

static int world_accounts(bench *b, world *w)
{
	char jid[64];
	unsigned i;
	int r;

	r = dev_new(b, &w->sender, "me@" DOMAIN);
	for (i = 0; r == MEND_OK && i < N_RCPT_ACCOUNTS; i++) {
		g_snprintf(jid, sizeof(jid), "r%u@" DOMAIN, i);
		r = dev_new(b, &w->rcpt[i], jid);
	}
	return r;
}

/* n aliases: per_jid devices per JID (PREFIX%02zu@...), each with a real account's bundle. */
static int world_sessions(bench *b, world *w, size_t n, size_t per_jid, const char *prefix)
{
	char *bundles[N_RCPT_ACCOUNTS] = {NULL};
	size_t i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < N_RCPT_ACCOUNTS; i++)
		r = mend_account_bundle_xml(w->rcpt[i].acc, &bundles[i]);
	w->rs = g_new0(mend_recipient, n);
	for (i = 0; r == MEND_OK && i < n; i++) {
		w->rs[i].jid = g_strdup_printf("%s%02zu@" DOMAIN, prefix, i / per_jid);
		w->rs[i].device = (uint32_t)(FIRST_ALIAS_ID + i);
		w->n_rs++;
		r = mend_account_bundle_process(w->sender.acc, w->rs[i].jid, w->rs[i].device,
		                                bundles[i % N_RCPT_ACCOUNTS]);
	}
	for (i = 0; i < N_RCPT_ACCOUNTS; i++)
		mend_free(bundles[i]);
	return r < 0 ? report("bundle", r) : r;
}

static void world_free(world *w)
{
	size_t i;

	bare_close(&w->bare);
	dev_clear(&w->sender);
	for (i = 0; i < N_RCPT_ACCOUNTS; i++)
		dev_clear(&w->rcpt[i]);
	for (i = 0; i < w->n_rs; i++)
		g_free(w->rs[i].jid);
	g_free(w->rs);
}

/*
 * Every alias gets a message (a prekey message: sessions built from bundles
 * are unacknowledged), decrypts it with the account behind it and replies,
 * and the sender decrypts the reply, each in the alias's version (section 9):
 * its session is then acknowledged. The
 * accounts behind the aliases stay in catch-up, so one-time prekeys picked by
 * several aliases stay loadable.
 */
static int world_acknowledge(world *w)
{
	signal_buffer *m1 = NULL, *m2 = NULL;
	const dev *s = &w->sender;
	size_t i;
	int pk1 = 0, pk2 = 0, r = MEND_OK;

	for (i = 0; i < N_RCPT_ACCOUNTS; i++)
		mend_account_catchup_begin(w->rcpt[i].acc);
	for (i = 0; r == MEND_OK && i < w->n_rs; i++) {
		mend_account *ra = w->rcpt[i % N_RCPT_ACCOUNTS].acc;
		const mend_recipient *rc = &w->rs[i];

		r = acc_encrypt(s->acc, rc->jid, rc->device, rc->version, &m1, &pk1);
		if (r == MEND_OK)
			r = acc_decrypt(ra, s->jid, dev_id(s), rc->version, m1, pk1);
		if (r == MEND_OK)
			r = acc_encrypt(ra, s->jid, dev_id(s), rc->version, &m2, &pk2);
		if (r == MEND_OK)
			r = acc_decrypt(s->acc, rc->jid, rc->device, rc->version, m2, pk2);
		signal_buffer_free(m1);
		signal_buffer_free(m2);
		m1 = m2 = NULL;
	}
	for (i = 0; i < N_RCPT_ACCOUNTS; i++)
		mend_account_catchup_end(w->rcpt[i].acc);
	return r < 0 ? report("acknowledging sessions", r) : r;
}

typedef struct enc_case {
	world *w;
	size_t n;
} enc_case;

/* The full path: payload, ratchet for n devices, one store commit, the stanza. */
static int enc_full(enc_case *c)
{
	char *stanza = NULL;
	int r;

	r = mend_account_encrypt_for(c->w->sender.acc, c->w->to ? c->w->to : c->w->rs[0].jid,
	                             c->w->rs, c->n, body_text, NULL, c->w->enc_flags, &stanza);
	mend_free(stanza);
	return r;
}

/* The ratchet calls through mend's store in one transaction, no payload or stanza. */
static int enc_store(enc_case *c)
{
	mend_account *acc = c->w->sender.acc;
	size_t i;
	int r;

	r = mend_account_txn_begin(acc);
	for (i = 0; r == MEND_OK && i < c->n; i++)
		r = rc_encrypt(acc, acc->sctx, acc->sstore, &c->w->rs[i]);
	return mend_account_txn_end(acc, r);
}

/* The bare ratchet calls: sessions in memory. */
static int enc_bare(enc_case *c)
{
	bare *z = &c->w->bare;
	size_t i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < c->n; i++)
		r = rc_encrypt(NULL, z->sctx, z->ss, &c->w->rs[i]);
	return r;
}

static int (*const variants[N_VARIANTS])(enc_case *) = {enc_full, enc_store, enc_bare};
static const char *const variant_names[N_VARIANTS] = {"full path", "ratchet+store", "bare"};

static void enc_reps(const bench *b, size_t n, unsigned *warm, unsigned *reps)
{
	*warm = 3;
	if (n <= 1)
		*reps = b->quick ? 51 : 301;
	else if (n <= 10)
		*reps = b->quick ? 31 : 151;
	else if (n <= 100)
		*reps = b->quick ? 15 : 41;
	else
		*reps = 11;
}

/*
 * Runs the variants in turn (rotating who goes first), keeping reps samples of each, for
 * n_sets sets of n recipients (sets[s], in w->rs meanwhile) taken in the same rotation, so
 * that other load on the machine falls on all of them alike; out[s * N_VARIANTS + variant].
 */
static int enc_measure_sets(bench *b, world *w, size_t n, mend_recipient *const *sets,
                            unsigned n_sets, stats *out)
{
	enc_case c = {w, n};
	mend_recipient *rs = w->rs;
	GArray *t[2 * N_VARIANTS];
	unsigned warm, reps, i, k, m = MIN(n_sets, 2) * N_VARIANTS;
	int r = MEND_OK;

	enc_reps(b, n, &warm, &reps);
	for (k = 0; k < m; k++)
		t[k] = g_array_new(FALSE, FALSE, sizeof(double));
	for (i = 0; r == MEND_OK && i < warm + reps; i++) {
		for (k = 0; r == MEND_OK && k < m; k++) {
			unsigned j = (i + k) % m, v = j % N_VARIANTS;
			double t0, dt;

			if (b->variant >= 0 && (int)v != b->variant)
				continue;
			w->rs = sets[j / N_VARIANTS];
			t0 = now();
			r = variants[v](&c);
			dt = now() - t0;
			if (r < 0)
				report(variant_names[v], r);
			else if (i >= warm)
				g_array_append_val(t[j], dt);
		}
	}
	w->rs = rs;
	for (k = 0; k < m; k++) {
		out[k] = stats_of(t[k]);
		g_array_free(t[k], TRUE);
	}
	return r;
}

static int enc_measure(bench *b, world *w, size_t n, stats out[N_VARIANTS])
{
	mend_recipient *const sets[1] = {w->rs};

	return enc_measure_sets(b, w, n, sets, 1, out);
}

static void enc_header(const char *state)
{
	printf("\n  sessions: %s\n", state);
	printf("  %5s  %17s  %17s  %17s  %9s  %10s  %11s\n", "N", "full path ms",
	       "ratchet+store ms", "bare ms", "full/bare", "store/bare", "full/device");
	printf("  %5s  %17s  %17s  %17s  %9s  %10s  %11s\n", "", "median (min)", "median (min)",
	       "median (min)", "", "", "us");
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static void enc_row(size_t n, const stats s[N_VARIANTS])
{
	char cell[N_VARIANTS][32];
	int k;

	for (k = 0; k < N_VARIANTS; k++)
		g_snprintf(cell[k], sizeof(cell[k]), "%7.3f (%7.3f)", s[k].med * 1e3,
		           s[k].min * 1e3);
	printf("  %5zu  %17s  %17s  %17s  %9.2f  %10.2f  %11.1f\n", n, cell[V_FULL], cell[V_STORE],
	       cell[V_BARE], ratio(s[V_FULL].med, s[V_BARE].med),
	       ratio(s[V_STORE].med, s[V_BARE].med), s[V_FULL].med * 1e6 / (double)n);
}

/* One table: every N, with the bare copy of the sessions taken now; keeps N=100 in at100. */
static int enc_table(bench *b, world *w, const char *state, stats at100[N_VARIANTS])
{
	stats s[N_VARIANTS];
	size_t i;
	int r;

	r = bare_copy_sessions(&w->bare, w->sender.acc, w->rs, w->n_rs);
	if (r < 0)
		return report("copying sessions", r);
	enc_header(state);
	for (i = 0; r == MEND_OK && b->ns[i]; i++) {
		r = enc_measure(b, w, b->ns[i], s);
		if (r == MEND_OK)
			enc_row(b->ns[i], s);
		if (r == MEND_OK && b->ns[i] == 100)
			memcpy(at100, s, sizeof(s));
		if (r == MEND_OK && i < G_N_ELEMENTS(b->full_med[0]))
			b->full_med[at100 == b->enc100][i] = s[V_FULL].med;
		if (r == MEND_OK && b->ns[i] == 1000) /* the second table (answered) overwrites */
			b->ratio1000 = ratio(s[V_FULL].med, s[V_BARE].med);
	}
	return r;
}

static size_t max_n(const bench *b)
{
	size_t i, n = 0;

	for (i = 0; b->ns[i]; i++)
		n = MAX(n, b->ns[i]);
	return n;
}

static int bench_encrypt(bench *b, world *w)
{
	size_t n = max_n(b);
	stats prekey100[N_VARIANTS];
	double t0;
	int r;

	printf("\n1. Encrypt one message (%zu bytes) for N devices, established sessions\n",
	       strlen(body_text));
	r = world_accounts(b, w);
	t0 = now();
	if (r == MEND_OK)
		r = world_sessions(b, w, n, DEVICES_PER_JID, "peer");
	if (r == MEND_OK)
		printf(
		    "  (setup: %zu sessions built from bundles, %.2f ms per device incl. commit)\n",
		    n, (now() - t0) * 1e3 / (double)n);
	if (r == MEND_OK)
		r = bare_open(&w->bare, w->sender.acc);
	if (r == MEND_OK)
		r = enc_table(b, w, "built from bundles, not yet answered (prekey messages)",
		              prekey100);
	if (r == MEND_OK)
		r = world_acknowledge(w);
	if (r == MEND_OK)
		r = enc_table(b, w, "every device answered once (normal messages)", b->enc100);
	b->ratio100 = ratio(b->enc100[V_FULL].med, b->enc100[V_BARE].med);
	return r;
}

/* --- 2. where the encrypt time goes --------------------------------------- */

#define PRIM_WARM 20

typedef struct prim {
	world *w;
	uint8_t **recs; /* the records of the first n_recs aliases */
	size_t *lens;
	size_t n_recs;
	uint8_t key[32], nonce[12], *out, tag[MEND_GCM_TAG_LEN];
	uint8_t nonces[32 * 12]; /* what the store draws at once */
	mend_store_row *rows; /* where the aliases' sessions are, as the session cache keeps it */
	mend_gcm_key *gcm;    /* keyed once, as the store's */
	mend_encrypted enc;   /* a header for n_recs devices, with real ratchet messages */
} prim;

typedef int (*prim_fn)(prim *p, unsigned i);

static int p_random(prim *p, unsigned i)
{
	return mend_random(p->nonce, sizeof(p->nonce));
}

/* What the store's seal takes its nonce from (gcry_create_nonce), one at a time. */
static int p_nonce(prim *p, unsigned i)
{
	return mend_nonce(p->nonce, sizeof(p->nonce));
}

/* 32 nonces at once, as the store draws them (the row shows the time per nonce). */
static int p_nonces(prim *p, unsigned i)
{
	return mend_nonce(p->nonces, sizeof(p->nonces));
}

/* The seal through a handle keyed once, as the store's (only the IV is set per record). */
static int p_seal(prim *p, unsigned i)
{
	static const char aad[] = "sessions|peer00@" DOMAIN "/1000";

	return mend_gcm_key_encrypt(p->gcm, p->nonce, sizeof(p->nonce), (const uint8_t *)aad,
	                            strlen(aad), p->recs[0], p->lens[0], p->out, p->tag);
}

/* The same through the account's handle cache, which re-keys for every call. */
static int p_seal_rekey(prim *p, unsigned i)
{
	static const char aad[] = "sessions|peer00@" DOMAIN "/1000";

	return mend_aes_gcm_encrypt(p->w->sender.acc->crypto, p->key, sizeof(p->key), p->nonce,
	                            sizeof(p->nonce), (const uint8_t *)aad, strlen(aad), p->recs[0],
	                            p->lens[0], p->out, p->tag);
}

static int p_get(prim *p, unsigned i)
{
	const mend_recipient *rc = &p->w->rs[i % p->n_recs];
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	r = mend_store_session_get(p->w->sender.acc->store, rc->jid, rc->device, &data, &len);
	g_free(data);
	return r;
}

/* Puts back the record the alias already has: nothing changes but the nonce. */
static int p_put(prim *p, unsigned i)
{
	const mend_recipient *rc = &p->w->rs[i % p->n_recs];

	return mend_store_session_put(p->w->sender.acc->store, rc->jid, rc->device,
	                              p->recs[i % p->n_recs], p->lens[i % p->n_recs]);
}

/* As the session cache writes it: sealed in place into the row it knows (blob I/O). */
static int p_put_row(prim *p, unsigned i)
{
	const mend_recipient *rc = &p->w->rs[i % p->n_recs];

	return mend_store_session_put_row(p->w->sender.acc->store, rc->jid, rc->device,
	                                  MEND_VERSION_LEGACY, p->recs[i % p->n_recs],
	                                  p->lens[i % p->n_recs], &p->rows[i % p->n_recs]);
}

/* The <encrypted/> element built as libstrophe elements, then serialized. */
static int p_stanza(prim *p, unsigned i)
{
	xmpp_ctx_t *ctx = p->w->sender.acc->xctx;
	xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", "peer00@" DOMAIN, "id");
	xmpp_stanza_t *enc = mend_legacy_encrypted_build(ctx, &p->enc);
	char *text;

	if (!msg || !enc)
		return MEND_ERR_NOMEM;
	xmpp_stanza_add_child(msg, enc);
	xmpp_stanza_release(enc);
	text = mend_stanza_text(msg);
	xmpp_stanza_release(msg);
	g_free(text);
	return text ? MEND_OK : MEND_ERR_NOMEM;
}

/* The same element written as text, as message.c writes it. */
static int p_stanza_text(prim *p, unsigned i)
{
	GString *x = g_string_sized_new(512 + p->enc.n_keys * 160);
	int r;

	g_string_append(x, "<message type='chat' to='peer00@" DOMAIN "' id='id'>");
	r = mend_legacy_encrypted_text(x, &p->enc);
	g_string_append(x, "</message>");
	g_string_free(x, TRUE);
	return r;
}

static int p_txn(prim *p, unsigned i)
{
	mend_account *acc = p->w->sender.acc;
	int r;

	r = mend_account_txn_begin(acc);
	if (r == MEND_OK)
		r = p_put(p, i);
	return mend_account_txn_end(acc, r);
}

/* What store_msgs.c does for every history put: prepare the statement, then finalize it. */
static int p_prepare(prim *p, unsigned i)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(mend_store_db(p->w->sender.acc->store),
	                        "INSERT OR IGNORE INTO history (key, peer, ts, msg_id, data)"
	                        " VALUES (?1, ?2, ?3, ?4, ?5)",
	                        -1, &st, NULL);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? MEND_OK : MEND_ERR_STORE;
}

/* Median (min) of reps calls, after PRIM_WARM; in_txn: all inside one transaction. */
static int time_calls(prim *p, prim_fn fn, int in_txn, unsigned reps, stats *out)
{
	GArray *t = g_array_new(FALSE, FALSE, sizeof(double));
	mend_account *acc = p->w->sender.acc;
	unsigned i;
	int r;

	r = in_txn ? mend_account_txn_begin(acc) : MEND_OK;
	for (i = 0; r == MEND_OK && i < PRIM_WARM + reps; i++) {
		double t0 = now(), dt;

		r = fn(p, i);
		dt = now() - t0;
		if (i >= PRIM_WARM)
			g_array_append_val(t, dt);
	}
	if (in_txn)
		r = mend_account_txn_end(acc, r);
	*out = stats_of(t);
	g_array_free(t, TRUE);
	return r < 0 ? report("store primitive", r) : r;
}

/* A header for the first n aliases, from the bare sessions (the store is not touched). */
static int prim_header(prim *p, world *w, size_t n)
{
	mend_encrypted *m = &p->enc;
	uint8_t km[KM_LEN] = {0};
	signal_buffer *buf = NULL;
	int r = 0;

	m->sid = dev_id(&w->sender);
	m->keys = g_new0(mend_key_elem, n);
	m->iv_len = 12;
	m->has_payload = 1;
	m->payload_len = strlen(body_text);
	m->payload = g_memdup2(body_text, m->payload_len);
	for (; r >= 0 && m->n_keys < n; m->n_keys++) {
		mend_key_elem *k = &m->keys[m->n_keys];

		k->rid = w->rs[m->n_keys].device;
		r = ratchet_encrypt(w->bare.sctx, w->bare.ss, w->rs[m->n_keys].jid, k->rid, km,
		                    sizeof(km), &buf, &k->prekey);
		if (r < 0)
			break;
		k->len = signal_buffer_len(buf);
		k->data = g_memdup2(signal_buffer_data(buf), k->len);
		signal_buffer_free(buf);
	}
	return r < 0 ? mend_err_from_signal(r) : MEND_OK;
}

static int prim_load(prim *p, world *w, size_t n)
{
	size_t i;
	int r;

	p->w = w;
	r = prim_header(p, w, n);
	p->recs = g_new0(uint8_t *, n);
	p->lens = g_new0(size_t, n);
	p->rows = g_new0(mend_store_row, n);
	for (i = 0; r == MEND_OK && i < n; i++, p->n_recs++)
		r = mend_store_session_get_row(w->sender.acc->store, w->rs[i].jid, w->rs[i].device,
		                               MEND_VERSION_LEGACY, &p->recs[i], &p->lens[i],
		                               &p->rows[i]);
	p->out = g_malloc(p->lens[0] ? p->lens[0] : 1);
	if (r == MEND_OK)
		r = mend_gcm_key_new(&p->gcm, p->key, sizeof(p->key));
	return r;
}

static void prim_clear(prim *p)
{
	size_t i;

	for (i = 0; i < p->n_recs; i++)
		g_free(p->recs[i]);
	g_free(p->recs);
	g_free(p->lens);
	g_free(p->rows);
	g_free(p->out);
	mend_gcm_key_free(p->gcm);
	mend_encrypted_clear(&p->enc);
}

static void prim_row(const char *what, const stats *s)
{
	printf("    %-46s %7.2f us (min %7.2f)\n", what, s->med * 1e6, s->min * 1e6);
}

static void split_rows(const bench *b)
{
	const stats *s = b->enc100;

	printf("  per device, from the N=100 row above (sessions answered):\n");
	printf("    %-46s %7.2f us\n", "bare ratchet (sessions in memory)", s[V_BARE].med * 1e4);
	printf("    %-46s %7.2f us\n", "+ mend store (cache, seal, write the row)",
	       (s[V_STORE].med - s[V_BARE].med) * 1e4);
	printf("    %-46s %7.2f us\n", "+ payload, stanza, commit (share of 1/100)",
	       (s[V_FULL].med - s[V_STORE].med) * 1e4);
}

/* What the keys of this state are: prekey or normal messages, and how long. */
static void key_summary(const mend_encrypted *m)
{
	size_t k, prekeys = 0, bytes = 0;

	for (k = 0; k < m->n_keys; k++) {
		prekeys += m->keys[k].prekey ? 1 : 0;
		bytes += m->keys[k].len;
	}
	printf(
	    "  (their keys: %zu PreKeySignalMessages, %zu SignalMessages, %zu bytes on average)\n",
	    prekeys, m->n_keys - prekeys, m->n_keys ? bytes / m->n_keys : 0);
}

static int bench_split(bench *b, world *w)
{
	static const struct {
		const char *what;
		prim_fn fn;
		int in_txn;
		unsigned reps_div;
		unsigned per; /* the call does this many: the row shows the time of one */
	} rows[] = {
	    {"mend_store_session_get (SELECT + unseal)", p_get, 1, 1, 1},
	    {"mend_store_session_put (seal + UPSERT)", p_put, 1, 1, 1},
	    {"  in place, as the cache writes (seal + blob)", p_put_row, 1, 1, 1},
	    {"  its nonce: 1/32 of mend_nonce(384)", p_nonces, 0, 1, 32},
	    {"  mend_nonce(12) alone (gcry_create_nonce)", p_nonce, 0, 1, 1},
	    {"  mend_random(12) (getrandom), to compare", p_random, 0, 1, 1},
	    {"  AES-256-GCM seal of one record (keyed once)", p_seal, 0, 1, 1},
	    {"  the same, re-keying the handle every time", p_seal_rekey, 0, 1, 1},
	    {"BEGIN IMMEDIATE + 1 put + COMMIT", p_txn, 0, 1, 1},
	    {"sqlite3_prepare_v2 + finalize (history INSERT)", p_prepare, 0, 1, 1},
	    {"stanza for 100 keys, libstrophe elements", p_stanza, 0, 20, 1},
	    {"  the same written as text (message.c)", p_stanza_text, 0, 20, 1},
	};
	unsigned reps = b->quick ? 500 : 5000;
	prim p = {0};
	stats s;
	size_t i;
	int r;

	printf("\n2. Where the encrypt time goes at N=100\n");
	split_rows(b);
	r = prim_load(&p, w, MIN(w->n_rs, (size_t)100));
	if (r == MEND_OK)
		key_summary(&p.enc);
	printf("  primitives (%zu-byte session records), median of %u calls (stanzas: %u):\n",
	       p.lens[0], reps, reps / 20);
	for (i = 0; r == MEND_OK && i < G_N_ELEMENTS(rows); i++) {
		r = time_calls(&p, rows[i].fn, rows[i].in_txn, reps / rows[i].reps_div, &s);
		s.med /= rows[i].per;
		s.min /= rows[i].per;
		if (r == MEND_OK)
			prim_row(rows[i].what, &s);
	}
	prim_clear(&p);
	return r;
}

/* --- 3. decrypting one message -------------------------------------------- */

/* What decrypt_all measured: one sample per message, the wall time, the bytes written. */
typedef struct run_result {
	GArray *t;
	double total;
	double bytes;
} run_result;

/* Decrypts every stanza at `to` with mend_account_decrypt, one sample each. */
static int decrypt_all(dev *to, GPtrArray *stanzas, run_result *res)
{
	double t0 = now(), t1, w0 = bytes_written();
	guint i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < stanzas->len; i++) {
		t1 = now();
		r = recv_one(to, g_ptr_array_index(stanzas, i));
		t1 = now() - t1;
		g_array_append_val(res->t, t1);
	}
	res->total = now() - t0;
	res->bytes = bytes_written() - w0;
	return r;
}

static void print_rate(const char *what, const run_result *res)
{
	guint n = res->t->len;
	stats s = stats_of(res->t); /* sorts it */
	double p99 = g_array_index(res->t, double, n - 1 - n / 100);

	printf("  %-32s %6u  %7.1f (%5.1f)  %8.1f  %8.0f  %9.1f\n", what, n, s.med * 1e6,
	       s.min * 1e6, p99 * 1e6, (double)n / res->total, res->bytes / 1024 / n);
}

static void rate_header(void)
{
	printf("  %-32s %6s  %15s  %8s  %8s  %9s\n", "", "msgs", "us median (min)", "p99 us",
	       "msgs/s", "KiB w/msg");
}

static int bench_decrypt(bench *b)
{
	dev alice = {0}, bob = {0};
	GPtrArray *st = g_ptr_array_new_with_free_func(g_free);
	run_result res = {.t = g_array_new(FALSE, FALSE, sizeof(double))};
	unsigned i, n = b->quick ? 200 : 2000;
	char *s = NULL;
	int r;

	printf("\n3. Decrypt one message (normal, non-prekey; live: from, no stanza-id)\n");
	r = dev_new(b, &alice, "alice@" DOMAIN);
	if (r == MEND_OK)
		r = dev_new(b, &bob, "bob@" DOMAIN);
	if (r == MEND_OK)
		r = handshake(b, &alice, &bob);
	for (i = 0; r == MEND_OK && i < n; i++) {
		r = send_one(b, &alice, &bob, 0, &s);
		g_ptr_array_add(st, s);
	}
	if (r == MEND_OK)
		r = decrypt_all(&bob, st, &res);
	if (r == MEND_OK) {
		rate_header();
		print_rate("decrypt", &res);
		b->decrypt_rate = (double)n / res.total;
	}
	g_array_free(res.t, TRUE);
	g_ptr_array_free(st, TRUE);
	dev_clear(&alice);
	dev_clear(&bob);
	return r;
}

/* --- 4. catch-up ---------------------------------------------------------- */

/* n archived messages, round robin from the senders, stamped with from (and a stanza-id). */
static int archive_build(bench *b, dev *senders, dev *to, unsigned n, int with_sid, GPtrArray *st)
{
	char *s = NULL;
	unsigned i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < n; i++) {
		r = send_one(b, &senders[i % N_SENDERS], to, with_sid, &s);
		g_ptr_array_add(st, s);
	}
	return r;
}

/* The archive query the core sent (an <iq type='set'/>): its id and queryid (g_free both). */
static int mam_query_of(dev *to, char **iq_id, char **qid)
{
	xmpp_stanza_t *st = to->host->mam_iq ? mend_stanza_parse(to->acc, to->host->mam_iq) : NULL;
	xmpp_stanza_t *q = st ? mend_child(st, "query", NS_MAM) : NULL;
	const char *name = st ? xmpp_stanza_get_name(st) : NULL;
	const char *type = st ? xmpp_stanza_get_type(st) : NULL;
	const char *id = st ? xmpp_stanza_get_id(st) : NULL;
	const char *v = q ? xmpp_stanza_get_attribute(q, "queryid") : NULL;

	*iq_id = *qid = NULL;
	if (name && g_str_equal(name, "iq") && type && g_str_equal(type, "set") && id && v) {
		*iq_id = g_strdup(id);
		*qid = g_strdup(v);
	}
	if (st)
		xmpp_stanza_release(st);
	return *qid ? MEND_OK : report("no MAM query among the stanzas sent", MEND_ERR_PROTOCOL);
}

/* Result n of query qid, holding `inner`, from our own archive (no from). */
static char *mam_result(const dev *to, const char *qid, const char *id, const char *inner)
{
	return g_strdup_printf("<message to='%s'><result xmlns='" NS_MAM "' queryid='%s' "
	                       "id='%s'><forwarded xmlns='urn:xmpp:forward:0'>"
	                       "<delay xmlns='urn:xmpp:delay' stamp='" ARCHIVE_STAMP "'/>%s"
	                       "</forwarded></result></message>",
	                       to->full, qid, id, inner);
}

/*
 * The archive id of result n: ARCHIVE-ID-n in order, as servers that number their archive
 * give, or random (a UUID), as Prosody gives (its SQL storage draws a UUID, its internal
 * one a random id): then each page's history keys land all over their index.
 */
static char *archive_id(unsigned n, int random_ids, unsigned page)
{
	char *uuid, *id;

	if (!random_ids && !page)
		return g_strdup_printf("ARCHIVE-ID-%u", n);
	if (!random_ids) /* another run's: not the ids an earlier run kept */
		return g_strdup_printf("ARCHIVE-P%u-%u", page, n);
	uuid = g_uuid_string_random();
	id = g_strdup_printf("%s-%u", uuid, n);
	g_free(uuid);
	return id;
}

/* The reply to query iq_id: its last result `last` (no from); complete or not (more pages). */
static char *mam_fin(const char *iq_id, const char *last, int complete)
{
	return g_strdup_printf("<iq type='result' id='%s'><fin xmlns='" NS_MAM "' complete='%s'>"
	                       "<set xmlns='http://jabber.org/protocol/rsm'>"
	                       "<last>%s</last></set></fin></iq>",
	                       iq_id, complete ? "true" : "false", last);
}

/* Hands one stanza to the engine, which must take it (1). */
static int handle_one(dev *to, const char *xml)
{
	int r = mend_account_handle_stanza(to->acc, xml);

	if (r == 1)
		return MEND_OK;
	fprintf(stderr, "mend-bench: mend_account_handle_stanza returned %d (%s)\n", r,
	        r < 0 ? mend_strerror(r) : "not taken");
	return r < 0 ? r : MEND_ERR_PROTOCOL;
}

/*
 * The server's page of `page` results ends at result i (0: one page) with a <fin/> that is
 * not the last: handed to the engine (in the result's sample), which asks for the next page,
 * whose query id goes to *iq_id.
 */
static int page_fin(dev *to, GPtrArray *results, guint i, unsigned page, char **iq_id,
                    const char *id)
{
	char *fin, *qid = NULL;
	int r;

	if (!page || (i + 1) % page || i + 1 == results->len)
		return MEND_OK;
	fin = mam_fin(*iq_id, id, 0);
	r = handle_one(to, fin);
	g_free(fin);
	g_free(*iq_id);
	if (r == MEND_OK)
		r = mam_query_of(to, iq_id, &qid);
	g_free(qid);
	return r;
}

/* The timed part: every result to the engine, one sample each, the server's pages' <fin/>s
 * (`page` results each; 0: one page), then the last fin (not inlined, for profilers). */
static G_GNUC_NO_INLINE int feed_all(dev *to, GPtrArray *results, GPtrArray *ids, unsigned page,
                                     char **iq_id, run_result *res)
{
	double t0 = now(), t1, w0 = bytes_written();
	char *fin;
	guint i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < results->len; i++) {
		t1 = now();
		r = handle_one(to, g_ptr_array_index(results, i));
		if (r == MEND_OK)
			r = page_fin(to, results, i, page, iq_id, g_ptr_array_index(ids, i));
		t1 = now() - t1;
		g_array_append_val(res->t, t1);
	}
	fin = mam_fin(*iq_id, g_ptr_array_index(ids, results->len - 1), 1);
	if (r == MEND_OK)
		r = handle_one(to, fin);
	g_free(fin);
	res->total = now() - t0;
	res->bytes = bytes_written() - w0;
	return r;
}

/* What the host saw: n messages, none undecryptable, the catch-up done at `want`. */
static int engine_check(dev *to, unsigned n, const char *want)
{
	const host *h = to->host;
	char *last = NULL;
	int ok;

	mend_store_meta_get(to->acc->store, "mam_last", &last);
	printf("  engine events: %u MESSAGE (%u with another body), %u UNDECRYPTABLE, "
	       "%u CATCHUP_DONE;\n  catch-up position stored: %s\n",
	       h->messages, h->wrong_body, h->undecryptable, h->catchup_done, last ? last : "none");
	ok = h->messages == n && !h->wrong_body && !h->undecryptable && h->catchup_done == 1 &&
	     !h->catchup_err && last && g_str_equal(last, want);
	g_free(last);
	return ok ? MEND_OK : report("catch-up through the engine", MEND_ERR_PROTOCOL);
}

/*
 * The target: connect with a catch-up, answer the core's MAM query with n
 * results (built beforehand, not timed) and the fin; in pages of `page` results
 * (0: one page), each but the last ending with a <fin/> that asks for more.
 */
static int catchup_engine(bench *b, dev *senders, dev *to, unsigned n, int random_ids,
                          unsigned page, const char *label)
{
	GPtrArray *st = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
	run_result res = {.t = g_array_new(FALSE, FALSE, sizeof(double))};
	double rate, kib;
	char *iq_id = NULL, *qid = NULL, *inner, *id = NULL, *what;
	guint i;
	int r;

	r = mend_account_connected(to->acc, to->full, MEND_CONNECT_CATCHUP);
	if (r < 0)
		report("connected", r);
	if (r == MEND_OK)
		r = mam_query_of(to, &iq_id, &qid);
	if (r == MEND_OK)
		r = archive_build(b, senders, to, n, 0, st);
	for (i = 0; r == MEND_OK && i < st->len; i++) {
		inner = g_ptr_array_index(st, i);
		id = archive_id(i + 1, random_ids, page);
		g_ptr_array_add(ids, id);
		st->pdata[i] = mam_result(to, qid, id, inner);
		g_free(inner);
	}
	if (r == MEND_OK) {
		host_reset(to->host);
		r = feed_all(to, st, ids, page, &iq_id, &res);
	}
	rate = n / res.total;
	kib = res.bytes / 1024 / n;
	if (r == MEND_OK && !random_ids && !page) {
		b->catchup_rate = rate;
		b->catchup_kib = kib;
		b->catchup_med = stats_of(res.t).med;
	}
	if (r == MEND_OK && (b->catchup_slowest <= 0 || rate < b->catchup_slowest))
		b->catchup_slowest = rate;
	if (r == MEND_OK && kib > b->catchup_kib_max)
		b->catchup_kib_max = kib;
	if (label)
		what = g_strdup(label);
	else if (page)
		what = g_strdup_printf("%s, pages of %u",
		                       random_ids ? "random ids" : "ids in order", page);
	else
		what = g_strdup(random_ids ? "same, random archive ids"
		                           : "engine: handle_stanza + fin");
	if (r == MEND_OK)
		print_rate(what, &res);
	if (r == MEND_OK)
		r = engine_check(to, n, id);
	g_free(what);
	g_array_free(res.t, TRUE);
	g_ptr_array_free(st, TRUE);
	g_ptr_array_free(ids, TRUE);
	g_free(iq_id);
	g_free(qid);
	return r;
}

/* The reference: mend_account_decrypt alone, between catchup_begin and _end. */
static int catchup_decrypt(bench *b, dev *senders, dev *to, unsigned n)
{
	GPtrArray *st = g_ptr_array_new_with_free_func(g_free);
	run_result res = {.t = g_array_new(FALSE, FALSE, sizeof(double))};
	double t0;
	int r;

	r = archive_build(b, senders, to, n, 1, st);
	if (r == MEND_OK) {
		t0 = now();
		mend_account_catchup_begin(to->acc);
		r = decrypt_all(to, st, &res);
		if (r == MEND_OK)
			r = mend_account_catchup_end(to->acc);
		res.total = now() - t0;
	}
	if (r == MEND_OK)
		print_rate("reference: mend_account_decrypt", &res);
	g_array_free(res.t, TRUE);
	g_ptr_array_free(st, TRUE);
	return r;
}

/* The key of st (a sender's <message/>) for device `rid`, as a signal buffer (NULL: none). */
static signal_buffer *key_for(mend_account *acc, const char *st, uint32_t rid, int *prekey)
{
	xmpp_stanza_t *m = mend_stanza_parse(acc, st);
	xmpp_stanza_t *enc = m ? mend_child(m, "encrypted", MEND_NS_LEGACY) : NULL;
	mend_encrypted e = {0};
	signal_buffer *out = NULL;
	size_t i;

	if (enc && mend_legacy_encrypted_parse(enc, &e) == MEND_OK)
		for (i = 0; i < e.n_keys && !out; i++)
			if (e.keys[i].rid == rid) {
				out = signal_buffer_create(e.keys[i].data, e.keys[i].len);
				*prekey = e.keys[i].prekey;
			}
	mend_encrypted_clear(&e);
	if (m)
		xmpp_stanza_release(m);
	return out;
}

/*
 * Adds `rows` rows of the bench's text to d's history in one transaction, keyed "filler-N"
 * (in order) or by UUIDs (random_keys: the archive ids of a Prosody archive).
 */
static int put_fillers(dev *d, size_t rows, int random_keys)
{
	mend_history_item it = {.peer = (char *)"filler@" DOMAIN,
	                        .from = (char *)"filler@" DOMAIN,
	                        .body = (char *)body_text,
	                        .timestamp = (char *)ARCHIVE_STAMP};
	char *key;
	size_t i;
	int r = mend_store_begin(d->acc->store);

	for (i = 0; r == MEND_OK && i < rows; i++) {
		key = random_keys ? g_uuid_string_random() : g_strdup_printf("filler-%zu", i);
		it.key = it.stanza_id = key;
		it.device = (uint32_t)(FIRST_ALIAS_ID + i % 100);
		it.ts = 1795000000 + (int64_t)i;
		r = mend_store_history_put(d->acc->store, &it);
		g_free(key);
	}
	if (r == MEND_OK)
		r = mend_store_commit(d->acc->store);
	else
		mend_store_rollback(d->acc->store);
	return r;
}

/*
 * Adds `rows` rows with random keys to d's history, then closes and opens d again: the WAL
 * is copied into the database then, so the next run's writes are its own.
 */
static int grow_history(bench *b, dev *d, unsigned rows)
{
	int r = put_fillers(d, rows, 1);

	dev_close(d);
	if (r == MEND_OK)
		r = dev_open(b, d);
	return r < 0 ? report("growing the history", r) : r;
}

/*
 * The floor: the same kind of archive's keys decrypted by the bare ratchet calls
 * (section 1's bare store: to's sessions copied into memory, mend's crypto
 * provider), one session_cipher_decrypt_signal_message() each. No parse, no
 * payload, no store, no event: what libsignal itself costs per result.
 */
static int catchup_bare(bench *b, dev *senders, dev *to, unsigned n)
{
	GPtrArray *st = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *keys = g_ptr_array_new_with_free_func((GDestroyNotify)signal_buffer_free);
	run_result res = {.t = g_array_new(FALSE, FALSE, sizeof(double))};
	mend_recipient rs[N_SENDERS];
	GArray *pk = g_array_new(FALSE, FALSE, sizeof(int));
	bare z = {0};
	double t0, t1;
	unsigned i;
	int r, prekey = 0;

	for (i = 0; i < N_SENDERS; i++)
		rs[i] = (mend_recipient){senders[i].jid, dev_id(&senders[i]), 0};
	r = bare_open(&z, to->acc);
	if (r == MEND_OK)
		r = bare_copy_sessions(&z, to->acc, rs, N_SENDERS);
	if (r == MEND_OK)
		r = archive_build(b, senders, to, n, 0, st);
	for (i = 0; r == MEND_OK && i < n; i++) {
		signal_buffer *k = key_for(to->acc, g_ptr_array_index(st, i), dev_id(to), &prekey);

		if (!k)
			r = report("no key for the recipient", MEND_ERR_MALFORMED);
		g_ptr_array_add(keys, k);
		g_array_append_val(pk, prekey);
	}
	t0 = now();
	for (i = 0; r == MEND_OK && i < n; i++) {
		const dev *from = &senders[i % N_SENDERS];

		t1 = now();
		r = ratchet_decrypt(z.sctx, z.ss, from->jid, dev_id(from),
		                    g_ptr_array_index(keys, i), g_array_index(pk, int, i));
		t1 = now() - t1;
		g_array_append_val(res.t, t1);
		if (r < 0)
			r = report("bare decrypt", mend_err_from_signal(r));
		else
			r = MEND_OK;
	}
	res.total = now() - t0;
	if (r == MEND_OK) {
		b->catchup_bare_med = stats_of(res.t).med;
		print_rate("reference: bare ratchet decrypt", &res);
	}
	bare_close(&z);
	g_array_free(res.t, TRUE);
	g_array_free(pk, TRUE);
	g_ptr_array_free(keys, TRUE);
	g_ptr_array_free(st, TRUE);
	return r;
}

static int bench_catchup(bench *b)
{
	dev senders[N_SENDERS] = {{0}}, carol = {0};
	host h = {.b = b};
	unsigned i, n = b->quick ? 1000 : 10000;
	char jid[64], *label;
	int r;

	printf("\n4. Catch-up: %u archived messages from %d devices (normal messages)\n"
	       "   engine: each XEP-0313 result to mend_account_handle_stanza (decrypt, history,\n"
	       "   position, event), then the fin; msgs/s from the first result to the fin done;\n"
	       "   archive ids in order (ARCHIVE-ID-n), then another n with random ids (UUIDs,\n"
	       "   as Prosody gives them); both in one page (one fin), then again in the server's\n"
	       "   pages of %d (a fin asking for more after each: Prosody sends 50 at most);\n"
	       "   the last again once the history holds %u rows (%u more with random keys)\n",
	       n, N_SENDERS, SERVER_PAGE, (4 + KEPT_GROWN) * n, KEPT_GROWN * n);
	carol.host = &h;
	r = dev_new(b, &carol, "carol@" DOMAIN);
	for (i = 0; r == MEND_OK && i < N_SENDERS; i++) {
		g_snprintf(jid, sizeof(jid), "contact%u@" DOMAIN, i);
		r = dev_new(b, &senders[i], jid);
	}
	for (i = 0; r == MEND_OK && i < N_SENDERS; i++)
		r = handshake(b, &senders[i], &carol);
	rate_header();
	if (r == MEND_OK)
		r = catchup_engine(b, senders, &carol, n, 0, 0, NULL);
	if (r == MEND_OK)
		r = catchup_engine(b, senders, &carol, n, 1, 0, NULL);
	/* the pages a server sends: Prosody's are 50 results at most (max_archive_query_results) */
	if (r == MEND_OK)
		r = catchup_engine(b, senders, &carol, n, 0, SERVER_PAGE, NULL);
	if (r == MEND_OK)
		r = catchup_engine(b, senders, &carol, n, 1, SERVER_PAGE, NULL);
	/* a long history with random keys: each commit writes more of the key index's pages */
	if (r == MEND_OK)
		r = grow_history(b, &carol, KEPT_GROWN * n);
	if (r == MEND_OK) {
		label = g_strdup_printf("same, %u rows kept before", (4 + KEPT_GROWN) * n);
		r = catchup_engine(b, senders, &carol, n, 1, SERVER_PAGE, label);
		g_free(label);
	}
	if (r == MEND_OK)
		r = catchup_decrypt(b, senders, &carol, n);
	if (r == MEND_OK)
		r = catchup_bare(b, senders, &carol, n);
	if (r == MEND_OK && b->catchup_bare_med > 0)
		printf("  engine median / bare ratchet median: %.1f\n",
		       b->catchup_med / b->catchup_bare_med);
	for (i = 0; i < N_SENDERS; i++)
		dev_clear(&senders[i]);
	dev_clear(&carol);
	host_clear(&h);
	return r;
}

/* --- 5. start-up ---------------------------------------------------------- */

/* An account with FEW_SESSIONS sessions, built from the bundles of the world's accounts. */
static int few_sessions(bench *b, world *w, dev *few)
{
	char *bundle = NULL;
	unsigned i;
	int r;

	r = dev_new(b, few, "few@" DOMAIN);
	if (r == MEND_OK)
		r = mend_account_bundle_xml(w->rcpt[0].acc, &bundle);
	for (i = 0; r == MEND_OK && i < FEW_SESSIONS; i++)
		r = mend_account_bundle_process(few->acc, "peer00@" DOMAIN, FIRST_ALIAS_ID + i,
		                                bundle);
	mend_free(bundle);
	dev_close(few);
	return r < 0 ? report("few sessions", r) : r;
}

/*
 * Grows d's store to `sessions` sessions and `rows` history rows: copies of one
 * real session record under other addresses (sealed for each), rows of the
 * bench's text. Opening does not read them; this shows it stays so.
 */
static int grow_store(bench *b, world *w, dev *d, size_t sessions, size_t rows)
{
	uint8_t *rec = NULL;
	size_t len = 0, i;
	int r;

	r = dev_open(b, d);
	if (r == MEND_OK)
		r = mend_store_session_get(d->acc->store, w->rs[0].jid, w->rs[0].device, &rec,
		                           &len);
	if (r == MEND_OK)
		r = mend_store_begin(d->acc->store);
	for (i = w->n_rs; r == MEND_OK && i < sessions; i++)
		r = mend_store_session_put(d->acc->store, "filler@" DOMAIN,
		                           (uint32_t)(FIRST_ALIAS_ID + i), rec, len);
	if (r == MEND_OK)
		r = mend_store_commit(d->acc->store);
	if (r == MEND_OK)
		r = put_fillers(d, rows, 0);
	g_free(rec);
	dev_close(d);
	return r < 0 ? report("growing the store", r) : r;
}

/* Opens d (timed) and closes it (not timed). */
static int time_open(bench *b, dev *d, GArray *t)
{
	double t0 = now(), dt;
	int r;

	r = dev_open(b, d);
	dt = now() - t0;
	g_array_append_val(t, dt);
	dev_close(d);
	return r;
}

static int bench_startup(bench *b, world *w)
{
	dev few = {0};
	GArray *t[2] = {g_array_new(FALSE, FALSE, sizeof(double)),
	                g_array_new(FALSE, FALSE, sizeof(double))};
	unsigned i, warm = 2, reps = b->quick ? 7 : 21;
	size_t sessions = b->quick ? 1000 : 10000, rows = b->quick ? 10000 : 100000;
	stats s[2];
	int r;

	printf("\n5. Start-up: mend_account_open\n");
	dev_close(&w->sender);
	r = grow_store(b, w, &w->sender, sessions, rows);
	r = r == MEND_OK ? few_sessions(b, w, &few) : r;
	for (i = 0; r == MEND_OK && i < warm + reps; i++) {
		r = time_open(b, i % 2 ? &w->sender : &few, t[i % 2]);
		if (r == MEND_OK)
			r = time_open(b, i % 2 ? &few : &w->sender, t[!(i % 2)]);
		if (i < warm) {
			g_array_set_size(t[0], 0);
			g_array_set_size(t[1], 0);
		}
	}
	s[0] = stats_of(t[0]);
	s[1] = stats_of(t[1]);
	if (r == MEND_OK) {
		printf("  %5d sessions: median %7.3f ms (min %7.3f ms)\n", FEW_SESSIONS,
		       s[0].med * 1e3, s[0].min * 1e3);
		printf("  %5zu sessions: median %7.3f ms (min %7.3f ms)   ratio %.2f\n"
		       "         (%zu built from bundles, the rest copies of one record; and %zu "
		       "history rows)\n",
		       sessions, s[1].med * 1e3, s[1].min * 1e3, s[1].med / s[0].med, w->n_rs,
		       rows);
		b->startup_ratio = s[1].med / s[0].med;
	}
	g_array_free(t[0], TRUE);
	g_array_free(t[1], TRUE);
	dev_clear(&few);
	return r;
}

/* --- 7. memory: a process that only catches up ----------------------------- */

/* A field of /proc/self/status in KiB (VmRSS:, VmHWM:), or 0. */
static long status_kib(const char *field)
{
	char *text = NULL, *p;
	long v = 0;

	if (g_file_get_contents("/proc/self/status", &text, NULL, NULL) &&
	    (p = strstr(text, field)))
		v = strtol(p + strlen(field), NULL, 10);
	g_free(text);
	return v;
}

/* The archived stanzas come on stdin, each as its length (a line) and its bytes. */
static char *read_framed(FILE *in)
{
	unsigned long len;
	char *buf;

	if (fscanf(in, "%lu\n", &len) != 1 || len > 1 << 20)
		return NULL;
	buf = g_malloc(len + 1);
	if (fread(buf, 1, len, in) != len) {
		g_free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

/*
 * --rss-child=DIR,JID,N: opens the account in DIR, connects with a catch-up
 * and answers its query with the N results read from stdin, then the fin;
 * prints VmRSS after connecting, VmRSS and VmHWM at the end (KiB) and what the
 * host saw.
 */
static int rss_child(bench *b)
{
	gchar **part = g_strsplit(b->rss_child, ",", 3);
	host h = {.b = b};
	dev d = {.host = &h};
	char *iq_id = NULL, *qid = NULL, *inner, *res, *id = NULL;
	unsigned i, n;
	long rss0 = 0;
	int r = g_strv_length(part) == 3 ? MEND_OK : MEND_ERR_INVALID_ARG;

	if (r == MEND_OK) {
		d.dir = g_strdup(part[0]);
		d.jid = g_strdup(part[1]);
		d.full = g_strdup_printf("%s/bench", part[1]);
		r = dev_open(b, &d);
	}
	n = r == MEND_OK ? (unsigned)atoi(part[2]) : 0;
	if (r == MEND_OK)
		r = mend_account_connected(d.acc, d.full, MEND_CONNECT_CATCHUP);
	if (r == MEND_OK)
		r = mam_query_of(&d, &iq_id, &qid);
	rss0 = status_kib("VmRSS:");
	for (i = 1; r == MEND_OK && i <= n; i++) {
		inner = read_framed(stdin);
		if (!inner) {
			r = report("reading the archive", MEND_ERR_MALFORMED);
			break;
		}
		g_free(id);
		id = archive_id(i, 0, 0);
		res = mam_result(&d, qid, id, inner);
		r = handle_one(&d, res);
		g_free(res);
		g_free(inner);
	}
	if (r == MEND_OK && id) {
		res = mam_fin(iq_id, id, 1);
		r = handle_one(&d, res);
		g_free(res);
	}
	g_free(id);
	printf("%ld %ld %ld %u %u %u\n", rss0, status_kib("VmRSS:"), status_kib("VmHWM:"),
	       h.messages, h.undecryptable, h.catchup_done);
	g_free(iq_id);
	g_free(qid);
	dev_clear(&d);
	host_clear(&h);
	g_strfreev(part);
	return r;
}

/* Runs this program as --rss-child on carol's account, feeds it n archived messages. */
static int rss_feed(bench *b, dev *senders, dev *carol, unsigned n, long out[3])
{
	char *arg = g_strdup_printf("--rss-child=%s,%s,%u", carol->dir, carol->jid, n);
	char *argv[] = {(char *)"/proc/self/exe", arg, NULL}, *s = NULL, line[256] = "";
	unsigned got[3] = {0}, i;
	GPid pid;
	int fd_in, fd_out, status = 0, r = MEND_OK;
	FILE *to, *from;

	if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
	                              &fd_in, &fd_out, NULL, NULL)) {
		g_free(arg);
		return report("starting the catching-up process", MEND_ERR_PROTOCOL);
	}
	to = fdopen(fd_in, "w");
	from = fdopen(fd_out, "r");
	for (i = 0; r == MEND_OK && i < n; i++) {
		r = send_one(b, &senders[i % N_SENDERS], carol, 0, &s);
		if (r == MEND_OK && fprintf(to, "%zu\n%s", strlen(s), s) < 0)
			r = report("feeding the catching-up process", MEND_ERR_PROTOCOL);
		g_free(s);
	}
	fclose(to);
	if (!fgets(line, sizeof(line), from) ||
	    sscanf(line, "%ld %ld %ld %u %u %u", &out[0], &out[1], &out[2], &got[0], &got[1],
	           &got[2]) != 6)
		r = r < 0 ? r : report("the catching-up process said nothing", MEND_ERR_PROTOCOL);
	fclose(from);
	waitpid(pid, &status, 0);
	g_spawn_close_pid(pid);
	g_free(arg);
	if (r == MEND_OK && (got[0] != n || got[1] || got[2] != 1 || status != 0))
		r = report("the catching-up process", MEND_ERR_PROTOCOL);
	printf("  events: %u MESSAGE, %u UNDECRYPTABLE, %u CATCHUP_DONE; exit status %d\n", got[0],
	       got[1], got[2], status);
	return r;
}

static int bench_memory(bench *b)
{
	dev senders[N_SENDERS] = {{0}}, carol = {0};
	unsigned i, n = b->quick ? 10000 : 100000;
	long kib[3] = {0};
	char jid[64];
	int r;

	printf(
	    "\n7. Memory: a process with only the recipient's core (this program again, as\n"
	    "   --rss-child): opens the account, connects with a catch-up, %u archive results\n"
	    "   (encrypted meanwhile by this process, piped) through mend_account_handle_stanza\n"
	    "   as `mend listen` hands them over, then the fin\n",
	    n);
	r = dev_new(b, &carol, "carol@" DOMAIN);
	for (i = 0; r == MEND_OK && i < N_SENDERS; i++) {
		g_snprintf(jid, sizeof(jid), "contact%u@" DOMAIN, i);
		r = dev_new(b, &senders[i], jid);
	}
	for (i = 0; r == MEND_OK && i < N_SENDERS; i++)
		r = handshake(b, &senders[i], &carol);
	if (r == MEND_OK)
		r = rss_feed(b, senders, &carol, n, kib);
	if (r == MEND_OK) {
		printf("  resident: %.1f MiB after connecting, %.1f MiB after the catch-up, "
		       "peak %.1f MiB\n",
		       kib[0] / 1024.0, kib[1] / 1024.0, kib[2] / 1024.0);
		b->rss_peak_mib = kib[2] / 1024.0;
	}
	for (i = 0; i < N_SENDERS; i++)
		dev_clear(&senders[i]);
	dev_clear(&carol);
	return r;
}

/* --- 8. the same work through python-omemo ------------------------------------ */

/* Its script: --pyomemo=PATH, else the source tree's (a build dir beside it). */
static char *pyomemo_script(const bench *b)
{
	if (b->pyomemo)
		return g_strdup(b->pyomemo);
	return g_build_filename(MEND_SRCDIR, "bench", "pyomemo_bench.py", NULL);
}

/* One line of its output against mend's figure of the same work. */
static void py_row(const bench *b, const char *line)
{
	double med = 0, mn = 0, extra = 0, mend = 0;
	unsigned n = 0;
	size_t i;

	if (sscanf(line, "encrypt %u %lf %lf %lf", &n, &med, &mn, &extra) == 4) {
		for (i = 0; b->ns[i] && i < G_N_ELEMENTS(b->full_med[0]); i++)
			if (b->ns[i] == n)
				mend = b->full_med[0][i];
		printf("  encrypt for %4u devices  %10.3f ms (%8.3f)  %9.3f ms   %8.1fx\n", n,
		       med * 1e3, mn * 1e3, mend * 1e3, mend > 0 ? med / mend : 0);
	} else if (sscanf(line, "decrypt %u %lf %lf %lf", &n, &med, &mn, &extra) == 4) {
		printf(
		    "  decrypt one message       %10.3f ms (%8.3f)  %9.3f ms   %8.1fx\n"
		    "     (mend: a result through the engine, section 4; messages/s: python-omemo "
		    "%.0f,\n      mend's catch-up %.0f = %.1fx, mend's decrypt alone (section 3) "
		    "%.0f)\n",
		    med * 1e3, mn * 1e3, b->catchup_med * 1e3,
		    b->catchup_med > 0 ? med / b->catchup_med : 0, extra, b->catchup_rate,
		    extra > 0 ? b->catchup_rate / extra : 0, b->decrypt_rate);
	}
}

static int bench_pyomemo(const bench *b)
{
	char *script = pyomemo_script(b), *out = NULL, *err = NULL, **lines, **l;
	char *argv[] = {(char *)"/usr/bin/python3",
	                script,
	                (char *)"--n",
	                (char *)(b->quick ? "1,10" : "1,10,100"),
	                (char *)"--messages",
	                (char *)(b->quick ? "100" : "1000"),
	                b->quick ? (char *)"--quick" : NULL,
	                NULL};
	int status = -1;

	printf(
	    "\n8. The same work through python-omemo (python3-omemo + python3-oldmemo, in\n"
	    "   memory: no storage written), in this run; the multiple is how many times\n"
	    "   faster mend is. Encrypt: sessions built from bundles, not answered (mend: the\n"
	    "   first table of section 1); decrypt: a normal message parsed from text\n"
	    "                             python-omemo median (min)   mend median   mend faster\n");
	fflush(stdout);
	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
	                  NULL) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		printf("  not run: %s %s: %s\n", argv[0], script,
		       err && *err ? g_strstrip(err) : "could not start");
	} else {
		lines = g_strsplit(out, "\n", -1);
		for (l = lines; *l; l++)
			py_row(b, *l);
		g_strfreev(lines);
	}
	g_free(out);
	g_free(err);
	g_free(script);
	return MEND_OK; /* python-omemo missing is not mend failing */
}

/* --- the run -------------------------------------------------------------- */

static char *cpu_model(void)
{
	char *text = NULL, *line, *model = NULL;

	if (!g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL))
		return g_strdup("?");
	line = strstr(text, "model name");
	if (line && strchr(line, ':'))
		model = g_strndup(strchr(line, ':') + 2, strcspn(strchr(line, ':') + 2, "\n"));
	g_free(text);
	return model ? model : g_strdup("?");
}

static void print_header(const bench *b)
{
	char *cpu = cpu_model();

#ifdef MEND_HAVE_LIBOMEMO_C
	const char *ratchet = "libomemo-c (configure: MEND_HAVE_LIBOMEMO_C)";
#else
	const char *ratchet = "libsignal-protocol-c (configure: no MEND_HAVE_LIBOMEMO_C)";
#endif
	printf("mend-bench, %s (%s run)\n", PACKAGE_STRING, b->quick ? "quick" : "full");
	printf("  Double Ratchet: %s\n", ratchet);
	printf("  libgcrypt %s, SQLite %s, GLib %u.%u.%u\n", gcry_check_version(NULL),
	       sqlite3_libversion(), glib_major_version, glib_minor_version, glib_micro_version);
	printf("  CPU: %s, %u online; one thread; CLOCK_MONOTONIC; times are medians (min)\n", cpu,
	       g_get_num_processors());
	printf("  stores in %s\n", b->root);
	g_free(cpu);
}

static const char *met(int ok)
{
	return ok ? "MET" : "NOT MET";
}

static void print_targets(const bench *b)
{
	printf("\nTargets\n");
	printf("target N=100 full/bare <= 1.2: %s (%.2f)\n", met(b->ratio100 <= 1.2), b->ratio100);
	if (b->ratio1000 > 0)
		printf("target N=1000 full/bare <= 1.2: %s (%.2f)\n", met(b->ratio1000 <= 1.2),
		       b->ratio1000);
	printf("target catch-up >= 50000 msg/s: %s (%.0f; the slowest engine row %.0f)\n",
	       met(b->catchup_rate >= 50000), b->catchup_rate, b->catchup_slowest);
	printf("target catch-up <= 4 KiB written per message, every engine row: %s (%.1f; the "
	       "most %.1f)\n",
	       met(b->catchup_kib_max <= 4), b->catchup_kib, b->catchup_kib_max);
	printf("target start-up as fast as with %d sessions: %s (%.2f, <= 1.5)\n", FEW_SESSIONS,
	       met(b->startup_ratio <= 1.5), b->startup_ratio);
	printf("target resident memory after the catch-up < 50 MB: %s (peak %.1f MiB)\n",
	       met(b->rss_peak_mib > 0 && b->rss_peak_mib * 1.048576 < 50), b->rss_peak_mib);
}

static void rm_rf(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	if (!dir) {
		g_unlink(path);
		return;
	}
	while ((name = g_dir_read_name(dir))) {
		char *p = g_build_filename(path, name, NULL);

		rm_rf(p);
		g_free(p);
	}
	g_dir_close(dir);
	g_rmdir(path);
}

/* --- 6. a room message ------------------------------------------------------ */

/*
 * The room's members are aliases as in section 1, ROOM_MEMBER_DEV devices each; the full
 * path is the room's encrypt step (room_msg.c): mend_account_encrypt_for() of the members'
 * devices with MEND_ENC_GROUPCHAT, a type=groupchat <message/> to the room. Not timed: the
 * room's member and trust bookkeeping that picks those devices.
 */
static int bench_room(bench *b)
{
	static const size_t ns[] = {50 * ROOM_MEMBER_DEV, 1000};
	world w = {.to = ROOM_JID, .enc_flags = MEND_ENC_GROUPCHAT};
	stats s[N_VARIANTS];
	size_t i, n = b->quick ? ns[0] : ns[1];
	int r;

	printf("\n6. A room message (type=groupchat to %s) for its members' devices,\n"
	       "   %d devices per member, sessions answered; full path: the room's encrypt step\n",
	       ROOM_JID, ROOM_MEMBER_DEV);
	r = world_accounts(b, &w);
	if (r == MEND_OK)
		r = world_sessions(b, &w, n, ROOM_MEMBER_DEV, "member");
	if (r == MEND_OK)
		r = bare_open(&w.bare, w.sender.acc);
	if (r == MEND_OK)
		r = world_acknowledge(&w);
	if (r == MEND_OK)
		r = bare_copy_sessions(&w.bare, w.sender.acc, w.rs, w.n_rs);
	if (r == MEND_OK)
		enc_header("every device answered once (normal messages); N = devices");
	for (i = 0; r == MEND_OK && i < G_N_ELEMENTS(ns) && ns[i] <= n; i++) {
		r = enc_measure(b, &w, ns[i], s);
		if (r == MEND_OK)
			enc_row(ns[i], s);
		if (r == MEND_OK)
			printf("  %5s  (%zu members%s)\n", "",
			       (ns[i] + ROOM_MEMBER_DEV - 1) / ROOM_MEMBER_DEV,
			       ns[i] % ROOM_MEMBER_DEV ? ", the last with fewer devices" : "");
	}
	world_free(&w);
	return r;
}

/* --- 9. OMEMO:2 against legacy OMEMO ---------------------------------------- */

/*
 * n more aliases (PREFIX%02zu@..., DEVICES_PER_JID per JID) that get OMEMO:2: their sessions
 * built from the real accounts' OMEMO:2 bundles by the engine's own step (omemo2_bundle.c).
 */
static int world_sessions2(world *w, size_t n, const char *prefix)
{
	xmpp_stanza_t *bundles[N_RCPT_ACCOUNTS] = {NULL};
	size_t i, first = w->n_rs;
	char *xml = NULL;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i < N_RCPT_ACCOUNTS; i++) {
		r = mend_account_omemo2_bundle_xml(w->rcpt[i].acc, &xml);
		if (r == MEND_OK && !(bundles[i] = mend_stanza_parse(w->sender.acc, xml)))
			r = MEND_ERR_MALFORMED;
		g_free(xml);
	}
	w->rs = g_renew(mend_recipient, w->rs, first + n);
	for (i = 0; r == MEND_OK && i < n; i++) {
		mend_recipient *rc = &w->rs[first + i];

		rc->jid = g_strdup_printf("%s%02zu@" DOMAIN, prefix, i / DEVICES_PER_JID);
		rc->device = (uint32_t)(FIRST_ALIAS_ID + first + i);
		rc->version = MEND_VERSION_2;
		w->n_rs++;
		/* the account world_acknowledge() answers this alias with */
		r = mend_omemo2_bundle_process(w->sender.acc, rc->jid, rc->device,
		                               bundles[(first + i) % N_RCPT_ACCOUNTS]);
	}
	for (i = 0; i < N_RCPT_ACCOUNTS; i++)
		if (bundles[i])
			xmpp_stanza_release(bundles[i]);
	return r < 0 ? report("OMEMO:2 bundle", r) : r;
}

/* The full path's stanza for the first n aliases once more: its size, its key exchanges. */
static size_t stanza_bytes(world *w, size_t n, unsigned *kex)
{
	char *stanza = NULL, *p;
	size_t len = 0;

	*kex = 0;
	if (mend_account_encrypt_for(w->sender.acc, w->rs[0].jid, w->rs, n, body_text, NULL, 0,
	                             &stanza) == MEND_OK)
		len = strlen(stanza);
	for (p = stanza; p && (p = strstr(p, "kex=")); p++) /* OMEMO:2 */
		(*kex)++;
	for (p = stanza; p && (p = strstr(p, "prekey=")); p++) /* legacy */
		(*kex)++;
	mend_free(stanza);
	return len;
}

/*
 * One message for VERSIONS_N devices that get OMEMO:2 (XEP-0384 0.9: SCE envelope,
 * AES-256-CBC + HMAC payload, libomemo-c's version 4 ratchet) and one for VERSIONS_N
 * devices that get legacy OMEMO, from the same sender, sessions answered; each the full
 * path (one stanza of its version), the ratchet through the store and the bare ratchet,
 * as in section 1.
 */
static int bench_versions(bench *b)
{
	static const char *const names[2] = {"legacy OMEMO (eu.siacs.conversations.axolotl)",
	                                     "OMEMO:2 (urn:xmpp:omemo:2)"};
	world w = {0};
	mend_recipient *all, *sets[2];
	stats s[2][N_VARIANTS];
	size_t bytes[2] = {0, 0}, i;
	unsigned kex[2] = {0, 0};
	int r, v;

	printf("\n9. One message for %d OMEMO:2 devices against one for %d legacy OMEMO devices,\n"
	       "   sessions answered; full path: mend_account_encrypt_for, one stanza each\n",
	       VERSIONS_N, VERSIONS_N);
	if (!mend_omemo2_sessions_supported()) {
		printf("  skipped: this build is legacy OMEMO only (libsignal-protocol-c)\n");
		return MEND_OK;
	}
	r = world_accounts(b, &w);
	if (r == MEND_OK)
		r = world_sessions(b, &w, VERSIONS_N, DEVICES_PER_JID, "legacy");
	for (i = 0; i < w.n_rs; i++)
		w.rs[i].version = MEND_VERSION_LEGACY; /* what the engine's recipients carry */
	if (r == MEND_OK)
		r = world_sessions2(&w, VERSIONS_N, "two");
	if (r == MEND_OK)
		r = world_acknowledge(&w);
	if (r == MEND_OK)
		r = bare_open(&w.bare, w.sender.acc);
	if (r == MEND_OK)
		r = bare_copy_sessions(&w.bare, w.sender.acc, w.rs, w.n_rs);
	if (r == MEND_OK)
		enc_header("every device answered once; N = devices of that version");
	all = w.rs;
	sets[0] = all;
	sets[1] = all + VERSIONS_N;
	if (r == MEND_OK)
		r = enc_measure_sets(b, &w, VERSIONS_N, sets, 2, s[0]);
	for (v = 0; r == MEND_OK && v < 2; v++) {
		printf("  %s\n", names[v]);
		enc_row(VERSIONS_N, s[v]);
		w.rs = sets[v];
		bytes[v] = stanza_bytes(&w, VERSIONS_N, &kex[v]);
	}
	w.rs = all;
	if (r == MEND_OK) {
		printf(
		    "  OMEMO:2/legacy, medians (mins): full path %.2f (%.2f), ratchet+store %.2f "
		    "(%.2f), bare %.2f (%.2f)\n",
		    ratio(s[1][V_FULL].med, s[0][V_FULL].med),
		    ratio(s[1][V_FULL].min, s[0][V_FULL].min),
		    ratio(s[1][V_STORE].med, s[0][V_STORE].med),
		    ratio(s[1][V_STORE].min, s[0][V_STORE].min),
		    ratio(s[1][V_BARE].med, s[0][V_BARE].med),
		    ratio(s[1][V_BARE].min, s[0][V_BARE].min));
		printf("  stanza: OMEMO:2 %zu bytes, legacy %zu bytes (key exchanges in them: %u, "
		       "%u)\n",
		       bytes[1], bytes[0], kex[1], kex[0]);
	}
	world_free(&w);
	return r;
}

static int wanted(const bench *b, const char *section)
{
	return !b->only || g_str_equal(b->only, section);
}

static int run(bench *b)
{
	world w = {0};
	int r;

	r = MEND_OK;
	if (wanted(b, "encrypt") || wanted(b, "split") || wanted(b, "startup"))
		r = bench_encrypt(b, &w);
	if (r == MEND_OK && wanted(b, "split"))
		r = bench_split(b, &w);
	if (r == MEND_OK && wanted(b, "decrypt"))
		r = bench_decrypt(b);
	if (r == MEND_OK && wanted(b, "catchup"))
		r = bench_catchup(b);
	if (r == MEND_OK && wanted(b, "startup"))
		r = bench_startup(b, &w);
	world_free(&w);
	if (r == MEND_OK && wanted(b, "room"))
		r = bench_room(b);
	if (r == MEND_OK && wanted(b, "memory"))
		r = bench_memory(b);
	if (r == MEND_OK && !b->only)
		r = bench_pyomemo(b);
	if (r == MEND_OK && wanted(b, "omemo2"))
		r = bench_versions(b);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mend-bench [-n|--quick] [-v|--verbose] [--only=SECTION] [--variant=V]\n"
	           "  -n, --quick      a short run (N up to 100, 1,000 catch-up messages)\n"
	           "  -v, --verbose    show the core's log lines\n"
	           "  --only=SECTION   encrypt, split, decrypt, catchup, startup, room, memory or\n"
	           "                   omemo2 alone\n"
	           "                   (for profilers; encrypt runs too when a section needs it)\n"
	           "  --variant=V      encrypt: only full, store or bare (for profilers)\n");
}

static int parse_variant(bench *b, const char *v)
{
	static const char *const names[N_VARIANTS] = {"full", "store", "bare"};
	int k;

	for (k = 0; k < N_VARIANTS; k++)
		if (!strcmp(v, names[k]))
			b->variant = k;
	return b->variant >= 0 ? 0 : -1;
}

static int parse_arg(bench *b, const char *a)
{
	if (!strcmp(a, "-n") || !strcmp(a, "--quick"))
		b->quick = 1;
	else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
		b->verbose = 1;
	else if (g_str_has_prefix(a, "--only="))
		b->only = a + strlen("--only=");
	else if (g_str_has_prefix(a, "--variant="))
		return parse_variant(b, a + strlen("--variant="));
	else if (g_str_has_prefix(a, "--rss-child="))
		b->rss_child = a + strlen("--rss-child=");
	else if (g_str_has_prefix(a, "--pyomemo="))
		b->pyomemo = a + strlen("--pyomemo=");
	else
		return -1;
	return 0;
}

static int parse_args(bench *b, int argc, char **argv)
{
	static const size_t full_ns[] = {1, 10, 100, 1000, 0};
	static const size_t quick_ns[] = {1, 10, 100, 0};
	int i;

	b->variant = -1;
	for (i = 1; i < argc; i++) {
		if (parse_arg(b, argv[i]) < 0) {
			usage(strcmp(argv[i], "-h") && strcmp(argv[i], "--help") ? stderr : stdout);
			return -1;
		}
	}
	b->ns = b->quick ? quick_ns : full_ns;
	return 0;
}

int main(int argc, char **argv)
{
	bench b = {0};
	GError *err = NULL;
	double t0 = now();
	int r;

	if (parse_args(&b, argc, argv) < 0)
		return 2;
	if (b.rss_child)
		return rss_child(&b) < 0 ? 1 : 0;
	b.root = g_dir_make_tmp("mend-bench-XXXXXX", &err);
	if (!b.root) {
		fprintf(stderr, "mend-bench: no temp dir: %s\n", err->message);
		g_error_free(err);
		return 1;
	}
	print_header(&b);
	r = run(&b);
	rm_rf(b.root);
	g_free(b.root);
	if (r < 0) {
		fprintf(stderr, "mend-bench: failed: %s\n", mend_strerror(r));
		return 1;
	}
	if (!b.only && b.variant < 0)
		print_targets(&b);
	printf("(whole run: %.1f s)\n", now() - t0);
	return 0;
}
