/*
 * omemo2_message.c - OMEMO:2 messages (XEP-0384 0.9 §5.5-5.6 with XEP-0420):
 * encrypting one message for the devices that get OMEMO:2, and decrypting
 * one, each inside the caller's store transaction (DESIGN §4) as the legacy
 * path in message.c does. The payload is an SCE envelope: <content/> with the
 * body, <rpad/>, <time/>, <from/> and <to/>; on receipt the affixes are
 * checked (`to` is us, or for our own sent copies the peer; `from` is the
 * sender) and a mismatch is refused with a log line and an error event.
 * The ratchet runs on the OMEMO:2 sessions (acc->ratchet_version).
 */
#include "config.h"

#include <limits.h>
#include <string.h>
#include <libintl.h>
#include "engine.h"
#include "crypto2.h"
#include "session2.h"
#include "omemo2_engine.h"
#include "sigstore.h"
#include "xep/omemo2.h"
#include "xep/sce.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define NS_SID      "urn:xmpp:sid:0"    /* XEP-0359 */
#define NS_EME      "urn:xmpp:eme:0"    /* XEP-0380 */
#define NS_HINTS    "urn:xmpp:hints"    /* XEP-0334 */
#define NS_RECEIPTS "urn:xmpp:receipts" /* XEP-0184 */

/* The body non-OMEMO clients show (DESIGN §3). Sent to the peer: not translated. */
#define FALLBACK_BODY                                                                              \
	"[This message is OMEMO-encrypted. Your client cannot decrypt it; an OMEMO "               \
	"client such as Conversations, Dino, Gajim or mend can.]"

/* --- encrypting ------------------------------------------------------------------ */

/* Runs the OMEMO:2 ratchet for one device into `k`. */
static int encrypt_key(mend_account *acc, const mend_recipient *rc, const uint8_t *km,
                       size_t km_len, mend_omemo2_key *k)
{
	signal_protocol_address addr = {rc->jid, strlen(rc->jid), (int32_t)rc->device};
	int r;

	acc->ratchet_version = MEND_VERSION_2;
	r = mend_omemo2_session_encrypt(acc->sstore, acc->sctx, &addr, km, km_len, &k->data,
	                                &k->len, &k->kex);
	acc->ratchet_version = 0;
	if (r < 0 && acc->store_err)
		r = acc->store_err;
	k->rid = rc->device;
	return r;
}

/* The <keys jid/> group of `jid` in m, added when missing. */
static mend_omemo2_keys *group_of(mend_omemo2_encrypted *m, const char *jid, size_t max)
{
	size_t i;

	for (i = 0; i < m->n_groups; i++)
		if (g_str_equal(m->groups[i].jid, jid))
			return &m->groups[i];
	m->groups[m->n_groups].jid = g_strdup(jid);
	m->groups[m->n_groups].keys = g_new0(mend_omemo2_key, max);
	return &m->groups[m->n_groups++];
}

static int encrypt_keys(mend_account *acc, const mend_recipient *rs, size_t n, const uint8_t *km,
                        size_t km_len, mend_omemo2_encrypted *m)
{
	mend_omemo2_keys *g;
	size_t i;
	int r = MEND_OK;

	m->groups = g_new0(mend_omemo2_keys, n ? n : 1);
	for (i = 0; r == MEND_OK && i < n; i++) {
		g = group_of(m, rs[i].jid, n);
		r = encrypt_key(acc, &rs[i], km, km_len, &g->keys[g->n_keys]);
		if (r < 0) {
			g_free(g->keys[g->n_keys].data);
			g->keys[g->n_keys].data = NULL;
			mend_log(acc, MEND_LOG_WARNING,
			         "cannot encrypt (OMEMO:2) for %s device %u: %s", rs[i].jid,
			         rs[i].device, mend_strerror(r));
			break;
		}
		g->n_keys++;
		mend_repair_sent(acc, rs[i].jid, rs[i].device);
	}
	return r;
}

/* §5.5.1: the SCE envelope of `body` from us to `to` (a contact or a room). */
static char *envelope(mend_account *acc, const char *to, const char *body, size_t *len)
{
	mend_sce_out o = {.body = body, .from = acc->jid, .to = to, .time = mend_now(acc)};

	return mend_sce_build(&o, len);
}

/* The payload (envelope encrypted, §4.4) and its key material; body NULL: an empty message. */
static int make_payload(mend_account *acc, const char *to, const char *body,
                        mend_omemo2_encrypted *m, uint8_t km[MEND_OMEMO2_KEYMAT_LEN],
                        size_t *km_len)
{
	size_t len = 0;
	char *env;
	int r;

	if (!body) { /* §4.5: an empty OMEMO message sends 32 zero bytes through the ratchet */
		memset(km, 0, MEND_OMEMO2_KEYMAT_LEN);
		*km_len = 32;
		return MEND_OK;
	}
	env = envelope(acc, to, body, &len);
	if (!env)
		return MEND_ERR_INVALID_ARG;
	r = mend_omemo2_payload_encrypt(acc->crypto, (const uint8_t *)env, len, &m->payload,
	                                &m->payload_len, km);
	memset(env, 0, len);
	g_free(env);
	m->has_payload = r == MEND_OK;
	*km_len = MEND_OMEMO2_KEYMAT_LEN;
	return r;
}

/* The <message/> around the <encrypted/>: as message.c's legacy one (EME, hints, origin-id). */
static char *wrap(const char *to, const char *id, xmpp_stanza_t *enc, int payload, int flags,
                  int with_body)
{
	const char *type = (flags & MEND_ENC_GROUPCHAT) ? "groupchat" : "chat";
	char *eto = g_markup_escape_text(to, -1), *eid = g_markup_escape_text(id, -1);
	char *inner = mend_stanza_text(enc);
	GString *s = g_string_new(NULL);

	g_string_append_printf(s, "<message to='%s' type='%s' id='%s'>%s", eto, type, eid,
	                       inner ? inner : "");
	if (payload)
		g_string_append_printf(s, "<encryption xmlns='%s' namespace='%s' name='OMEMO'/>",
		                       NS_EME, MEND_NS_OMEMO2);
	g_string_append_printf(s, "<store xmlns='%s'/>", NS_HINTS);
	/* one fallback body per logical message: the legacy stanza carries it when both go */
	if (payload && with_body)
		g_string_append_printf(s, "<body>%s</body>", FALLBACK_BODY);
	g_string_append_printf(s, "<origin-id xmlns='%s' id='%s'/>", NS_SID, eid);
	if (payload && !(flags & MEND_ENC_GROUPCHAT))
		g_string_append_printf(s, "<request xmlns='%s'/>", NS_RECEIPTS);
	g_string_append(s, "</message>");
	g_free(eto);
	g_free(eid);
	g_free(inner);
	return inner ? g_string_free(s, FALSE) : (g_string_free(s, TRUE), NULL);
}

int mend_omemo2_encrypt_for(mend_account *acc, const char *to, const mend_recipient *rs, size_t n,
                            const char *body, const char *id, int flags, int with_body,
                            char **stanza)
{
	mend_omemo2_encrypted m = {0};
	uint8_t km[MEND_OMEMO2_KEYMAT_LEN];
	size_t km_len = 0;
	xmpp_stanza_t *enc = NULL;
	int r;

	*stanza = NULL;
	if (!mend_omemo2_sessions_supported())
		return MEND_ERR_PROTOCOL;
	if (!to || !id)
		return MEND_ERR_INVALID_ARG;
	r = make_payload(acc, to, body, &m, km, &km_len);
	m.sid = acc->device_id;
	if (r == MEND_OK)
		r = encrypt_keys(acc, rs, n, km, km_len, &m);
	if (r == MEND_OK)
		enc = mend_omemo2_encrypted_build(acc->xctx, &m);
	if (r == MEND_OK && !enc)
		r = MEND_ERR_NOMEM;
	if (r == MEND_OK)
		*stanza = wrap(to, id, enc, m.has_payload, flags, with_body);
	if (r == MEND_OK && !*stanza)
		r = MEND_ERR_NOMEM;
	if (enc)
		xmpp_stanza_release(enc);
	memset(km, 0, sizeof(km));
	mend_omemo2_encrypted_clear(&m);
	return r;
}

/* --- decrypting ------------------------------------------------------------------ */

/* What a failed OMEMO:2 ratchet step means, as message.c says it for legacy OMEMO. */
static int ratchet_err(mend_account *acc, int r)
{
	if (acc->store_err)
		return acc->store_err;
	if (r == MEND_ERR_DUPLICATE)
		return MEND_ERR_STALE_SESSION; /* a message key used before: repair.c decides */
	return r;
}

/* An OMEMOKeyExchange named a prekey we lack: which, and what the store holds. */
static void log_missing(mend_account *acc, const char *from, uint32_t sid, const mend_omemo2_key *k)
{
	uint32_t pk = 0, spk = 0;
	int has_pk = 0;

	if (mend_omemo2_kex_key_ids(acc->sctx, k->data, k->len, &has_pk, &pk, &spk) == MEND_OK)
		mend_sigstore_log_missing(acc, from, sid, has_pk, pk, spk);
}

/* Runs our <key/> through the OMEMO:2 ratchet of (from, sid): the key material. */
static int open_key(mend_account *acc, const char *from, uint32_t sid, const mend_omemo2_key *k,
                    uint8_t **km, size_t *km_len)
{
	signal_protocol_address addr = {from, strlen(from), (int32_t)sid};
	int r;

	acc->ratchet_version = MEND_VERSION_2;
	r = mend_omemo2_session_decrypt(acc->sstore, acc->sctx, &addr, k->kex, k->data, k->len, km,
	                                km_len);
	acc->ratchet_version = 0;
	if (r == MEND_ERR_UNKNOWN_PREKEY && k->kex && !acc->store_err)
		log_missing(acc, from, sid, k);
	return r < 0 ? ratchet_err(acc, r) : r;
}

/*
 * XEP-0420 §4 via XEP-0384 §5.5.1: <from/> is the sender; <to/> is us, or for a copy of our
 * own message (a carbon, the archive) the contact it went to. In a room (acc->sid_by is the
 * room while its message is processed, room_msg.c) <from/> is the sender's real bare JID,
 * which `from` is there (the member behind the nick), and <to/> the room's bare JID: §5.5.1
 * demands <to/> in group chats so that the server cannot turn a room message into a private
 * one or the reverse, so a room message without it is refused too.
 */
static int check_affixes(mend_account *acc, xmpp_stanza_t *st, const mend_sce *env,
                         const char *from, uint32_t device)
{
	const char *to = xmpp_stanza_get_to(st), *why = NULL;
	char *us = g_str_equal(from, acc->jid) && to ? g_strndup(to, strcspn(to, "/"))
	                                             : g_strdup(acc->jid);
	int r = mend_sce_check(env, from, acc->sid_by ? NULL : us, acc->sid_by, &why);

	if (r < 0) {
		mend_log(acc, MEND_LOG_WARNING,
		         "OMEMO:2 message from %s device %u%s%s rejected: %s (SCE affix mismatch)",
		         from, device, acc->sid_by ? " in room " : "",
		         acc->sid_by ? acc->sid_by : "", why ? why : "?");
		acc->omemo2_why = why;
	}
	g_free(us);
	return r;
}

/* The envelope in `plain`: its affixes checked, its body into msg (none: key_only). */
static int open_envelope(mend_account *acc, xmpp_stanza_t *st, const uint8_t *plain, size_t len,
                         mend_message *msg)
{
	mend_sce env;
	int r = mend_sce_parse(acc->xctx, plain, len, &env);

	if (r < 0) {
		mend_log(acc, MEND_LOG_WARNING,
		         "OMEMO:2 message from %s: no valid SCE envelope: %s", msg->from,
		         mend_strerror(r));
		return r;
	}
	r = check_affixes(acc, st, &env, msg->from, msg->device);
	if (r == MEND_OK) {
		msg->written = env.stamp ? env.time : 0;
		msg->body = mend_sce_body(&env);
		msg->key_only = msg->body == NULL; /* a chat state or such: nothing to show */
	}
	mend_sce_clear(&env);
	return r;
}

/* Inside the caller's transaction: the key, then the payload. */
static int decrypt_parsed(mend_account *acc, xmpp_stanza_t *st, const mend_omemo2_encrypted *m,
                          mend_message *msg)
{
	const mend_omemo2_key *k = mend_omemo2_find_key(m, acc->jid, acc->device_id);
	uint8_t *km = NULL, *plain = NULL;
	size_t km_len = 0, len = 0;
	int r;

	if (!k)
		return MEND_ERR_NOT_FOR_THIS_DEVICE;
	msg->prekey = k->kex;
	r = open_key(acc, msg->from, m->sid, k, &km, &km_len);
	if (r == MEND_OK && m->has_payload)
		r = mend_omemo2_payload_decrypt(acc->crypto, km, km_len, m->payload, m->payload_len,
		                                &plain, &len);
	if (r == MEND_OK && m->has_payload)
		r = open_envelope(acc, st, plain, len, msg);
	if (r == MEND_OK)
		r = mend_store_device_wrote_set(acc->store, msg->from, m->sid, MEND_VERSION_2);
	if (km)
		memset(km, 0, km_len);
	if (plain)
		memset(plain, 0, len);
	g_free(km);
	g_free(plain);
	return r;
}

int mend_omemo2_decrypt_stanza(mend_account *acc, xmpp_stanza_t *st, xmpp_stanza_t *enc,
                               const char *sid_id, const char *dedupe_by, mend_message *msg)
{
	mend_omemo2_encrypted m = {0};
	const char *from = xmpp_stanza_get_attribute(st, "from");
	int r;

	if (!mend_omemo2_sessions_supported())
		return MEND_ERR_NOT_FOUND; /* legacy OMEMO only: not a message we can read */
	if (!from || !*from || *from == '/')
		return MEND_ERR_MALFORMED;
	msg->from = g_strndup(from, strcspn(from, "/"));
	msg->version = MEND_VERSION_2;
	acc->omemo2_why = NULL;
	r = mend_omemo2_encrypted_parse(enc, &m);
	if (r < 0)
		return r;
	msg->device = m.sid;
	msg->key_only = !m.has_payload;
	r = mend_account_txn_begin(acc);
	if (r < 0)
		goto out;
	r = decrypt_parsed(acc, st, &m, msg);
	/* without a stanza-id of our server a reused message key may be a plain duplicate */
	if (r == MEND_ERR_STALE_SESSION && !sid_id)
		r = MEND_ERR_DUPLICATE;
	/* a 1:1 message kept in history is marked by its row (decrypt_and_keep) */
	if (r == MEND_OK && sid_id && !mend_history_marks_seen(acc, sid_id, m.has_payload))
		r = mend_store_stanza_mark(acc->store, dedupe_by, sid_id);
	r = mend_account_txn_end(acc, r);
out:
	mend_omemo2_encrypted_clear(&m);
	return r;
}

/* --- downgrade protection (XEP-0384 0.9 §5.6 security: a device that fell back) ------- */

int mend_omemo2_legacy_arrived(mend_account *acc, const char *jid, uint32_t device)
{
	int wrote = 0, was2 = 0;

	if (mend_store_device_wrote(acc->store, jid, device, &wrote, &was2) < 0)
		wrote = was2 = 0;
	if (wrote != MEND_VERSION_LEGACY)
		mend_store_device_wrote_set(acc->store, jid, device, MEND_VERSION_LEGACY);
	return was2;
}

void mend_omemo2_fell_back(mend_account *acc, const char *jid, uint32_t device, const char *room)
{
	char *text = g_strdup_printf(
	    _("%s device %u fell back from OMEMO:2 to legacy OMEMO for this message, although it "
	      "wrote OMEMO:2 before; messages to it stay OMEMO:2 while it publishes an OMEMO:2 "
	      "bundle. If it was not updated or reinstalled, someone may be forcing the older "
	      "version."),
	    jid, device);
	mend_event ev = {.kind = MEND_EVENT_NOTICE,
	                 .peer = room ? room : jid,
	                 .room = room,
	                 .text = text,
	                 .trust = -1};

	mend_log(acc, MEND_LOG_WARNING, "%s device %u fell back to legacy OMEMO (downgrade)", jid,
	         device);
	emit(acc, &ev);
	g_free(text);
}

/*
 * XEP-0420 §4 (<time/>): "Receiving clients MUST check whether the difference between the
 * timestamp and the sending time derived from the stanza itself lays within a reasonable
 * margin ... clients MUST alert the user/reject the stanza." We alert: the ratchet already
 * refuses a replay of the same ciphertext, and a message that sat in a queue (the sender's
 * offline queue, a crash resend) is still the sender's, so it is shown, with a notice.
 */
void mend_omemo2_check_time(mend_account *acc, const char *jid, uint32_t device, int64_t written,
                            int64_t sent)
{
	int64_t apart = written > sent ? written - sent : sent - written;
	mend_event ev = {.kind = MEND_EVENT_NOTICE, .peer = jid, .trust = -1};
	unsigned minutes;
	char *text;

	if (!written || apart <= MEND_OMEMO2_TIME_MARGIN)
		return;
	minutes = apart / 60 > UINT_MAX ? UINT_MAX : (unsigned)(apart / 60);
	text =
	    g_strdup_printf(dngettext(GETTEXT_PACKAGE,
	                              "%s device %u dated a message %u minute away from when it "
	                              "was sent. That device's clock may be wrong, or someone "
	                              "sent an old message again.",
	                              "%s device %u dated a message %u minutes away from when it "
	                              "was sent. That device's clock may be wrong, or someone "
	                              "sent an old message again.",
	                              minutes),
	                    jid, device, minutes);
	ev.text = text;
	mend_log(acc, MEND_LOG_WARNING,
	         "%s device %u: SCE <time/> %" G_GINT64_FORMAT " s away from the stanza's time",
	         jid, device, (gint64)apart);
	emit(acc, &ev);
	g_free(text);
}

/* --- one logical message, one stanza per version ------------------------------------- */

int mend_omemo2_is_encrypted(xmpp_stanza_t *st)
{
	return mend_omemo2_sessions_supported() && mend_child(st, "encrypted", MEND_NS_OMEMO2);
}

unsigned mend_omemo2_count_keys(xmpp_stanza_t *enc)
{
	xmpp_stanza_t *h = enc ? mend_child(enc, "header", MEND_NS_OMEMO2) : NULL, *g, *k;
	unsigned n = 0;

	for (g = h ? xmpp_stanza_get_children(h) : NULL; g; g = xmpp_stanza_get_next(g))
		for (k = xmpp_stanza_get_children(g); k; k = xmpp_stanza_get_next(k))
			n += xmpp_stanza_get_name(k) && g_str_equal(xmpp_stanza_get_name(k), "key");
	return n;
}

#define TWINS_MAX 4096

void mend_omemo2_twin_note(mend_account *acc, const char *jid, const char *msg_id)
{
	if (!jid || !msg_id)
		return;
	if (!acc->omemo2_twins)
		acc->omemo2_twins = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (g_hash_table_size(acc->omemo2_twins) >= TWINS_MAX)
		g_hash_table_remove_all(acc->omemo2_twins);
	g_hash_table_add(acc->omemo2_twins, g_strconcat(jid, "|", msg_id, NULL));
}

int mend_omemo2_twin_seen(mend_account *acc, const char *jid, const char *msg_id)
{
	char *key;
	int seen;

	if (!acc->omemo2_twins || !jid || !msg_id)
		return 0;
	key = g_strconcat(jid, "|", msg_id, NULL);
	seen = g_hash_table_contains(acc->omemo2_twins, key);
	g_free(key);
	return seen;
}

/* Our stanzas of one message follow each other; element text is escaped, so this is a seam. */
#define SEAM "</message><message "

GPtrArray *mend_omemo2_stanzas(const char *xml)
{
	GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
	const char *p = xml, *seam;

	while (p && (seam = strstr(p, SEAM))) {
		seam += strlen("</message>");
		g_ptr_array_add(parts, g_strndup(p, (gsize)(seam - p)));
		p = seam;
	}
	if (p)
		g_ptr_array_add(parts, g_strdup(p));
	return parts;
}

int mend_omemo2_send_each(mend_account *acc, const char *xml)
{
	GPtrArray *parts = mend_omemo2_stanzas(xml);
	guint i;
	int r = acc->ops.send_stanza ? 0 : -1;

	for (i = 0; r == 0 && i < parts->len; i++)
		r = acc->ops.send_stanza(parts->pdata[i], acc->user_data);
	g_ptr_array_unref(parts);
	return r;
}

int mend_omemo2_send_all_but_last(mend_account *acc, char **stanza)
{
	GPtrArray *parts = mend_omemo2_stanzas(*stanza);
	guint i;
	int r = MEND_OK;

	for (i = 0; r == MEND_OK && i + 1 < parts->len; i++)
		if (!acc->ops.send_stanza ||
		    acc->ops.send_stanza(parts->pdata[i], acc->user_data) != 0)
			r = MEND_ERR_PROTOCOL;
	if (parts->len > 1 && r == MEND_OK) {
		g_free(*stanza);
		*stanza = g_strdup(parts->pdata[parts->len - 1]);
	}
	g_ptr_array_unref(parts);
	return r;
}
