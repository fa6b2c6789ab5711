/*
 * message.c - encrypting one message for every device (the peer's and our
 * own other devices) and decrypting what arrives, each in one store
 * transaction (DESIGN §1, §4): the ratchet states of all recipients commit
 * together before the stanza is returned, and a message that fails any
 * check leaves the store exactly as it was.
 *
 * Legacy OMEMO, XEP-0384 v0.3 §4.5-4.6: the body is encrypted once with
 * AES-128-GCM under a fresh key and 12-byte IV; key||tag (32 bytes) is
 * encrypted once per device with its Double Ratchet session.
 */
#include "config.h"

#include <string.h>
#include "internal.h"
#include "b64.h"
#include "xep/omemo_legacy.h"
#include "xep/omemo2.h"
#include "omemo2_engine.h"
#include "sigstore.h"

#define NS_SID          "urn:xmpp:sid:0"    /* XEP-0359 */
#define NS_EME          "urn:xmpp:eme:0"    /* XEP-0380 */
#define NS_HINTS        "urn:xmpp:hints"    /* XEP-0334 */
#define NS_RECEIPTS     "urn:xmpp:receipts" /* XEP-0184 */
#define PAYLOAD_KEY_LEN 16
#define PAYLOAD_IV_LEN  12

/* The body non-OMEMO clients show (DESIGN §3). Sent to the peer: not translated. */
#define FALLBACK_BODY                                                                              \
	"[This message is OMEMO-encrypted. Your client cannot decrypt it; an OMEMO "               \
	"client such as Conversations, Dino, Gajim or mend can.]"

static void recipients_free(GArray *rs)
{
	guint i;

	for (i = 0; i < rs->len; i++)
		g_free(g_array_index(rs, mend_recipient, i).jid);
	g_array_free(rs, TRUE);
}

/*
 * A device with a session that we must not encrypt to (trust.c decides). A key
 * row that is missing or does not open means untrusted, never trusted (DESIGN §4).
 */
static int untrusted(mend_account *acc, const char *jid, uint32_t device)
{
	return !mend_trust_is_trusted(mend_trust_of(acc, jid, device));
}

/*
 * Inactive devices (devices.c) of jid, trusted and with a session, are
 * skipped and named when another device of jid gets the message; when none
 * does, they all get it (a contact who only reads is still reached).
 */
static int place_stale(mend_account *acc, const char *jid, GArray *rs, GArray *stale, int added)
{
	guint i;

	for (i = 0; i < stale->len; i++) {
		uint32_t id = g_array_index(stale, uint32_t, i);

		if (added) {
			g_ptr_array_add(acc->skipped, g_strdup_printf("%s %u", jid, id));
		} else {
			mend_recipient rc = {g_strdup(jid), id,
			                     0}; /* 0: the version of its session */
			g_array_append_val(rs, rc);
		}
	}
	return added ? added : (int)stale->len;
}

/*
 * Adds the devices of `jid` that have a session and are trusted; counts those
 * still waiting for a bundle; remembers the untrusted ones in acc->skipped (and,
 * marked "!", the trusted ones that showed a new identity key).
 * Returns how many devices of jid were added, or <0.
 */
static int add_recipients(mend_account *acc, const char *jid, GArray *rs, size_t *missing)
{
	GArray *stale = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	uint32_t *ids = NULL;
	size_t n = 0, i;
	int r, added = 0, v = 0;

	r = mend_account_devices(acc, jid, &ids, &n);
	for (i = 0; r >= 0 && i < n; i++) {
		/* the version it gets (omemo2_devices.c), in a room as in a 1:1 chat */
		v = r = mend_omemo2_version_for(acc, jid, ids[i]);
		if (r == 0)
			continue;
		if (r > 0)
			r = mend_omemo2_session_exists(acc, jid, ids[i], v);
		if (r == 1 && untrusted(acc, jid, ids[i])) {
			g_ptr_array_add(acc->skipped, g_strdup_printf("%s %u", jid, ids[i]));
		} else if (r == 1 && mend_device_is_stale(acc, jid, ids[i])) {
			g_array_append_val(stale, ids[i]);
		} else if (r == 1) {
			mend_recipient rc = {g_strdup(jid), ids[i], v};
			g_array_append_val(rs, rc);
			added++;
			/* it gets it under the trusted key, but said a new one (repair.c) */
			if (mend_repair_new_key(acc, jid, ids[i], NULL))
				g_ptr_array_add(acc->skipped,
				                g_strdup_printf("!%s %u", jid, ids[i]));
		} else if (r == 0) {
			r = mend_omemo2_is_broken(acc, jid, ids[i], v);
			if (r == 0)
				(*missing)++;
		}
	}
	if (r >= 0)
		added = place_stale(acc, jid, rs, stale, added);
	g_array_free(stale, TRUE);
	g_free(ids);
	return r < 0 ? r : added;
}

int mend_recipients_add(mend_account *acc, const char *jid, GArray *rs, size_t *missing)
{
	return add_recipients(acc, jid, rs, missing);
}

void mend_recipients_reset(mend_account *acc)
{
	if (acc->skipped)
		g_ptr_array_set_size(acc->skipped, 0);
	else
		acc->skipped = g_ptr_array_new_with_free_func(g_free);
}

static int collect_recipients(mend_account *acc, const char *to, GArray *rs)
{
	size_t missing = 0;
	int r, to_peer;

	mend_recipients_reset(acc);
	size_t peer_skipped;

	r = to_peer = add_recipients(acc, to, rs, &missing);
	peer_skipped = acc->skipped->len;
	if (r >= 0 && !g_str_equal(to, acc->jid))
		r = add_recipients(acc, acc->jid, rs, &missing);
	if (r < 0)
		return r;
	if (missing)
		return MEND_ERR_NEED_BUNDLE;
	/* the recipient must get it: our own devices alone are no delivery */
	if (to_peer == 0)
		return peer_skipped ? MEND_ERR_NONE_TRUSTED : MEND_ERR_NO_DEVICES;
	return MEND_OK;
}

/* Ratchet-encrypts the key material for one device into `k`. */
static int encrypt_key(mend_account *acc, const mend_recipient *rc, const uint8_t *km,
                       size_t km_len, mend_key_elem *k)
{
	signal_protocol_address addr = {rc->jid, strlen(rc->jid), (int32_t)rc->device};
	session_cipher *cipher = NULL;
	ciphertext_message *ctm = NULL;
	signal_buffer *ser;
	int r;

	r = session_cipher_create(&cipher, acc->sstore, &addr, acc->sctx);
	if (r < 0)
		return mend_account_signal_err(acc, r);
	r = session_cipher_encrypt(cipher, km, km_len, &ctm);
	if (r < 0) {
		r = mend_account_signal_err(acc, r);
		goto free_cipher;
	}
	ser = ciphertext_message_get_serialized(ctm);
	k->rid = rc->device;
	k->prekey = ciphertext_message_get_type(ctm) == CIPHERTEXT_PREKEY_TYPE;
	k->len = signal_buffer_len(ser);
	k->data = g_memdup2(signal_buffer_data(ser), k->len);
	SIGNAL_UNREF(ctm);
free_cipher:
	session_cipher_free(cipher);
	return r;
}

/* Encrypts the body; fills iv, payload and the key material (key||tag, or key alone). */
static int encrypt_payload(mend_account *acc, const char *body, int flags, mend_encrypted *m,
                           uint8_t km[32], size_t *km_len)
{
	size_t len = strlen(body);
	uint8_t tag[MEND_GCM_TAG_LEN];
	int r;

	m->iv_len = (flags & MEND_ENC_IV16) ? 16 : PAYLOAD_IV_LEN;
	r = mend_random(km, PAYLOAD_KEY_LEN);
	if (r == MEND_OK)
		r = mend_nonce(m->iv, m->iv_len);
	if (r < 0)
		return r;
	m->has_payload = 1;
	m->payload_len = len + ((flags & MEND_ENC_TAG_IN_PAYLOAD) ? MEND_GCM_TAG_LEN : 0);
	m->payload = g_malloc(m->payload_len ? m->payload_len : 1);
	r = mend_aes_gcm_encrypt(acc->crypto, km, PAYLOAD_KEY_LEN, m->iv, m->iv_len, NULL, 0,
	                         (const uint8_t *)body, len, m->payload, tag);
	if (r < 0)
		return r;
	if (flags & MEND_ENC_TAG_IN_PAYLOAD) {
		/* the layout of early Conversations: tag after the payload, 16-byte key */
		memcpy(m->payload + len, tag, MEND_GCM_TAG_LEN);
		*km_len = PAYLOAD_KEY_LEN;
	} else {
		memcpy(km + PAYLOAD_KEY_LEN, tag, MEND_GCM_TAG_LEN);
		*km_len = PAYLOAD_KEY_LEN + MEND_GCM_TAG_LEN;
	}
	return MEND_OK;
}

/*
 * The <message/>: encrypted element, EME and store hints, fallback body, origin-id.
 * A key transport element (XEP-0384 v0.3 §4.5, no <payload/>) carries no body and no
 * EME hint: there is nothing for a non-OMEMO client to show. The store hint stays
 * (Business Rules: offline devices must get it too).
 */
static char *wrap_message(mend_account *acc, const char *to, const char *id,
                          const mend_encrypted *m, int flags)
{
	/* XEP-0045 §7.4 groupchat; XEP-0184 §5.3: no receipt requests in groupchat */
	const char *type = (flags & MEND_ENC_GROUPCHAT) ? "groupchat" : "chat";
	const char *request =
	    (flags & MEND_ENC_GROUPCHAT) ? "" : "<request xmlns='" NS_RECEIPTS "'/>";
	GString *s = g_string_sized_new(512 + m->n_keys * 160);
	char *own_id = id ? NULL : g_uuid_string_random();
	char *eto = g_markup_escape_text(to, -1), *eid = g_markup_escape_text(id ? id : own_id, -1);
	int r;

	g_string_append_printf(s, "<message to='%s' type='%s' id='%s'>", eto, type, eid);
	r = mend_legacy_encrypted_text(s, m);
	if (!m->has_payload)
		g_string_append_printf(
		    s, "<store xmlns='%s'/><origin-id xmlns='%s' id='%s'/></message>", NS_HINTS,
		    NS_SID, eid);
	else /* XEP-0380 EME, XEP-0334 store hint, XEP-0359 origin-id, XEP-0184 §7 request */
		g_string_append_printf(s,
		                       "<encryption xmlns='%s' namespace='%s' name='OMEMO'/>"
		                       "<store xmlns='%s'/><body>%s</body>"
		                       "<origin-id xmlns='%s' id='%s'/>%s</message>",
		                       NS_EME, MEND_NS_LEGACY, NS_HINTS, FALLBACK_BODY, NS_SID, eid,
		                       request);
	g_free(eto);
	g_free(eid);
	g_free(own_id);
	return g_string_free(s, r < 0);
}

static int encrypt_for_all(mend_account *acc, const mend_recipient *rs, size_t n, const uint8_t *km,
                           size_t km_len, mend_encrypted *m)
{
	size_t i;
	int r = MEND_OK;

	m->keys = g_new0(mend_key_elem, n);
	for (i = 0; i < n; i++) {
		r = encrypt_key(acc, &rs[i], km, km_len, &m->keys[m->n_keys]);
		if (r < 0) {
			mend_log(acc, MEND_LOG_WARNING, "cannot encrypt for %s device %u: %s",
			         rs[i].jid, rs[i].device, mend_strerror(r));
			return r;
		}
		m->n_keys++;
		mend_repair_sent(acc, rs[i].jid, rs[i].device);
	}
	return r;
}

/* XEP-0384 v0.3 §4.5: a key transport element has a fresh key (key||tag size) and no payload. */
static int key_transport_material(mend_encrypted *m, uint8_t km[32], size_t *km_len)
{
	int r;

	m->iv_len = PAYLOAD_IV_LEN;
	r = mend_random(km, PAYLOAD_KEY_LEN + MEND_GCM_TAG_LEN);
	if (r == MEND_OK)
		r = mend_nonce(m->iv, m->iv_len);
	*km_len = PAYLOAD_KEY_LEN + MEND_GCM_TAG_LEN;
	return r;
}

static int encrypt_legacy(mend_account *acc, const char *to, const mend_recipient *rs, size_t n,
                          const char *body, const char *id, int flags, char **stanza)
{
	mend_encrypted m = {0};
	uint8_t km[32];
	size_t km_len = 0;
	int r;

	*stanza = NULL;
	if (body)
		r = encrypt_payload(acc, body, flags, &m, km, &km_len);
	else
		r = key_transport_material(&m, km, &km_len);
	if (r < 0)
		goto out;
	m.sid = acc->device_id;
	r = mend_account_txn_begin(acc);
	if (r < 0)
		goto out;
	r = encrypt_for_all(acc, rs, n, km, km_len, &m);
	if (r == MEND_OK) {
		*stanza = wrap_message(acc, to, id, &m, flags);
		r = *stanza ? MEND_OK : MEND_ERR_NOMEM;
	}
	r = mend_account_txn_end(acc, r);
	if (r < 0) {
		g_free(*stanza);
		*stanza = NULL;
	}
out:
	memset(km, 0, sizeof(km));
	mend_encrypted_clear(&m);
	return r;
}

/*
 * One logical message, one stanza per version (XEP-0384 0.9 beside v0.3): the devices that
 * get OMEMO:2 in one, the legacy ones in the other, both with the same id and origin-id, the
 * OMEMO:2 one first (a device of both versions finds its key there before it sees the other);
 * *stanza holds them one after the other (mend_omemo2_each_stanza() parts them).
 */
int mend_account_encrypt_for(mend_account *acc, const char *to, const mend_recipient *rs, size_t n,
                             const char *body, const char *id, int flags, char **stanza)
{
	GArray *legacy = g_array_new(FALSE, FALSE, sizeof(mend_recipient));
	GArray *two = g_array_new(FALSE, FALSE, sizeof(mend_recipient));
	char *own_id = id ? NULL : g_uuid_string_random(), *s1 = NULL, *s2 = NULL;
	int r;

	*stanza = NULL;
	mend_omemo2_split(acc, rs, n, legacy, two);
	if (!two->len) {
		r = encrypt_legacy(acc, to, rs, n, body, id, flags, stanza);
		goto out;
	}
	r = mend_account_txn_begin(acc);
	if (r == MEND_OK)
		r = mend_omemo2_encrypt_for(acc, to, (mend_recipient *)(void *)two->data, two->len,
		                            body, id ? id : own_id, flags, 1, &s2);
	if (r == MEND_OK && legacy->len)
		r = encrypt_legacy(acc, to, (mend_recipient *)(void *)legacy->data, legacy->len,
		                   body, id ? id : own_id, flags, &s1);
	r = mend_account_txn_end(acc, r);
	if (r == MEND_OK)
		*stanza = g_strconcat(s2, s1, NULL);
	g_free(s1);
	g_free(s2);
out:
	g_free(own_id);
	g_array_free(legacy, TRUE);
	g_array_free(two, TRUE);
	return r;
}

int mend_account_encrypt_opts(mend_account *acc, const char *to, const char *body, const char *id,
                              int flags, char **stanza)
{
	GArray *rs;
	int r;

	*stanza = NULL;
	if (!to || !body || strchr(to, '/') || !g_utf8_validate(body, -1, NULL))
		return MEND_ERR_INVALID_ARG;
	rs = g_array_new(FALSE, FALSE, sizeof(mend_recipient));
	r = collect_recipients(acc, to, rs);
	if (r == MEND_OK)
		r = mend_account_encrypt_for(acc, to, (const mend_recipient *)(void *)rs->data,
		                             rs->len, body, id, flags, stanza);
	recipients_free(rs);
	return r;
}

int mend_account_encrypt(mend_account *acc, const char *to, const char *body, const char *id,
                         char **stanza)
{
	return mend_account_encrypt_opts(acc, to, body, id, 0, stanza);
}

/* --- decrypt --------------------------------------------------------------- */

/* A parsed ratchet message: a PreKeySignalMessage or a SignalMessage. */
typedef struct ratchet_msg {
	pre_key_signal_message *pm;
	signal_message *sm;
} ratchet_msg;

/*
 * Parses our key element. The prekey attribute is a hint: some clients get it
 * wrong, so a key that does not parse as the announced type is tried as the
 * other one. Neither: MEND_ERR_MALFORMED.
 */
static int parse_ratchet_msg(mend_account *acc, const mend_key_elem *k, ratchet_msg *rm)
{
	int r;

	if (k->prekey) {
		r = pre_key_signal_message_deserialize(&rm->pm, k->data, k->len, acc->sctx);
		if (r < 0)
			r = signal_message_deserialize(&rm->sm, k->data, k->len, acc->sctx);
	} else {
		r = signal_message_deserialize(&rm->sm, k->data, k->len, acc->sctx);
		if (r < 0)
			r = pre_key_signal_message_deserialize(&rm->pm, k->data, k->len, acc->sctx);
	}
	if (r == SG_ERR_NOMEM)
		return MEND_ERR_NOMEM;
	return r < 0 ? MEND_ERR_MALFORMED : MEND_OK;
}

/* What a failed ratchet decryption means (the message parsed). */
static int decrypt_err(mend_account *acc, int r)
{
	if (acc->store_err)
		return acc->store_err;
	/* libsignal reports a failed MAC, on every session state tried, as an invalid message */
	if (r == SG_ERR_INVALID_MESSAGE || r == SG_ERR_INVALID_MAC)
		return MEND_ERR_KEY_AUTH;
	/* a message key already used: when the stanza-id was unseen the message is new, so
	 * the sender's session went back in time (a restored backup): repair.c decides */
	if (r == SG_ERR_DUPLICATE_MESSAGE)
		return MEND_ERR_STALE_SESSION;
	return mend_err_from_signal(r);
}

/* Ratchet-decrypts our key element from device `sid` of `jid`. */
static int decrypt_key(mend_account *acc, const char *jid, uint32_t sid, const mend_key_elem *k,
                       signal_buffer **plain)
{
	signal_protocol_address addr = {jid, strlen(jid), (int32_t)sid};
	session_cipher *cipher = NULL;
	ratchet_msg rm = {0};
	int r;

	r = parse_ratchet_msg(acc, k, &rm);
	if (r < 0)
		return r;
	r = session_cipher_create(&cipher, acc->sstore, &addr, acc->sctx);
	if (r < 0) {
		r = mend_account_signal_err(acc, r);
		goto free_msg;
	}
	if (rm.pm)
		r = session_cipher_decrypt_pre_key_signal_message(cipher, rm.pm, NULL, plain);
	else
		r = session_cipher_decrypt_signal_message(cipher, rm.sm, NULL, plain);
	if (r == SG_ERR_INVALID_KEY_ID && rm.pm && !acc->store_err)
		mend_sigstore_log_missing(acc, jid, sid,
		                          pre_key_signal_message_has_pre_key_id(rm.pm),
		                          pre_key_signal_message_get_pre_key_id(rm.pm),
		                          pre_key_signal_message_get_signed_pre_key_id(rm.pm));
	/* a prekey message on a signed prekey we retired (account.c's rotation) */
	if (r == SG_ERR_INVALID_KEY_ID && rm.pm && !acc->store_err &&
	    signal_protocol_signed_pre_key_contains_key(
	        acc->sstore, pre_key_signal_message_get_signed_pre_key_id(rm.pm)) == 0)
		r = MEND_ERR_OLD_SIGNED_PREKEY;
	else if (r < 0)
		r = decrypt_err(acc, r);
	session_cipher_free(cipher);
free_msg:
	SIGNAL_UNREF(rm.pm);
	SIGNAL_UNREF(rm.sm);
	return r;
}

/* Opens the payload with key||tag (32 bytes) or a 16-byte key with the tag after the payload. */
static int open_payload(mend_account *acc, const mend_encrypted *m, const uint8_t *km,
                        size_t km_len, char **body)
{
	const uint8_t *tag;
	size_t ct_len = m->payload_len;
	int r;

	if (km_len == PAYLOAD_KEY_LEN + MEND_GCM_TAG_LEN) {
		tag = km + PAYLOAD_KEY_LEN;
	} else if (km_len == PAYLOAD_KEY_LEN && ct_len >= MEND_GCM_TAG_LEN) {
		ct_len -= MEND_GCM_TAG_LEN;
		tag = m->payload + ct_len;
	} else {
		return MEND_ERR_MALFORMED;
	}
	*body = g_malloc(ct_len + 1);
	r = mend_aes_gcm_decrypt(acc->crypto, km, PAYLOAD_KEY_LEN, m->iv, m->iv_len, NULL, 0,
	                         m->payload, ct_len, tag, MEND_GCM_TAG_LEN, (uint8_t *)*body);
	(*body)[ct_len] = '\0';
	if (r == MEND_OK && (memchr(*body, '\0', ct_len) || !g_utf8_validate(*body, -1, NULL)))
		r = MEND_ERR_MALFORMED;
	if (r < 0) {
		g_free(*body);
		*body = NULL;
	}
	return r;
}

/* XEP-0359 §3: a stanza-id counts only when stamped by our own server (by = our JID). */
const char *mend_our_stanza_id(mend_account *acc, xmpp_stanza_t *msg)
{
	xmpp_stanza_t *c;

	for (c = xmpp_stanza_get_children(msg); c; c = xmpp_stanza_get_next(c)) {
		const char *name = xmpp_stanza_get_name(c), *ns = xmpp_stanza_get_ns(c);
		const char *by = xmpp_stanza_get_attribute(c, "by");

		if (name && ns && by && g_str_equal(name, "stanza-id") && g_str_equal(ns, NS_SID) &&
		    g_str_equal(by, acc->jid))
			return xmpp_stanza_get_attribute(c, "id");
	}
	return NULL;
}

/* Whose stanza-ids dedupe: our server's, or while a room message is processed, the room's. */
static const char *dedupe_by(mend_account *acc)
{
	return acc->sid_by ? acc->sid_by : acc->jid;
}

/* Whether a history row keyed `sid` can be a 1:1 message's (engine.c's history_key): our
 * own sent messages are kept under "id:<message id>", room messages under "room|...", so a
 * stanza-id of either form is marked and looked up in seen_stanzas alone. */
static int history_keyed(const char *sid)
{
	return !g_str_has_prefix(sid, "id:") && !g_str_has_prefix(sid, "room|");
}

/* Whether stanza-id `sid` is looked up, and marked, by a 1:1 message's history row: not
 * when dedupe goes by another JID (sid_by) or the id is shaped like another kind of key. */
static int by_history_row(const mend_account *acc, const char *sid)
{
	return !acc->sid_by && sid && history_keyed(sid);
}

int mend_history_marks_seen(mend_account *acc, const char *sid, int has_payload)
{
	return acc->history_marks && has_payload && by_history_row(acc, sid);
}

static const mend_key_elem *key_for_us(mend_account *acc, const mend_encrypted *m)
{
	size_t i;

	for (i = 0; i < m->n_keys; i++)
		if (m->keys[i].rid == acc->device_id)
			return &m->keys[i];
	return NULL;
}

/* Decrypts `m` from `jid` inside one transaction; fills msg->body. */
static int decrypt_parsed(mend_account *acc, const mend_encrypted *m, const char *sid_id,
                          mend_message *msg)
{
	const mend_key_elem *k = key_for_us(acc, m);
	signal_buffer *plain = NULL;
	int r;

	if (!k)
		return MEND_ERR_NOT_FOR_THIS_DEVICE;
	msg->prekey = k->prekey;
	r = mend_account_txn_begin(acc);
	if (r < 0)
		return r;
	r = decrypt_key(acc, msg->from, m->sid, k, &plain);
	/* downgrade protection: a device that wrote OMEMO:2 before now writes legacy OMEMO */
	if (r == MEND_OK)
		msg->downgraded = mend_omemo2_legacy_arrived(acc, msg->from, m->sid);
	/* without a stanza-id of our server a reused message key may be a plain duplicate */
	if (r == MEND_ERR_STALE_SESSION && !sid_id)
		r = MEND_ERR_DUPLICATE;
	if (r == MEND_OK && m->has_payload)
		r = open_payload(acc, m, signal_buffer_data(plain), signal_buffer_len(plain),
		                 &msg->body);
	/* a 1:1 message kept in history is marked by its row (decrypt_and_keep) */
	if (r == MEND_OK && sid_id && !mend_history_marks_seen(acc, sid_id, m->has_payload))
		r = mend_store_stanza_mark(acc->store, dedupe_by(acc), sid_id);
	signal_buffer_bzero_free(plain);
	return mend_account_txn_end(acc, r);
}

static int parse_message(mend_account *acc, xmpp_stanza_t *st, mend_encrypted *m, mend_message *msg)
{
	xmpp_stanza_t *enc;
	const char *from;
	int r;

	from = xmpp_stanza_get_attribute(st, "from");
	if (!xmpp_stanza_get_name(st) || !g_str_equal(xmpp_stanza_get_name(st), "message") ||
	    !from || !*from || *from == '/')
		return MEND_ERR_MALFORMED;
	enc = mend_child(st, "encrypted", MEND_NS_LEGACY);
	if (!enc)
		return MEND_ERR_NOT_FOUND;
	msg->from = g_strndup(from, strcspn(from, "/"));
	r = mend_legacy_encrypted_parse(enc, m);
	if (r == MEND_OK)
		msg->device = m->sid;
	return r;
}

int mend_account_decrypt_stanza(mend_account *acc, xmpp_stanza_t *st, const char *stanza_id,
                                mend_message *msg)
{
	mend_encrypted m = {0};
	int r;

	if (!stanza_id && !acc->sid_by)
		stanza_id = mend_our_stanza_id(acc, st);
	msg->stanza_id = g_strdup(stanza_id);
	acc->omemo2_why = NULL;
	/* DESIGN §3: dedupe by stanza-id before anything else (a held message was marked) */
	if (!stanza_id || acc->replaying)
		r = 0;
	else if (!by_history_row(acc, stanza_id))
		r = mend_store_stanza_seen(acc->store, dedupe_by(acc), stanza_id);
	else
		r = mend_store_stanza_seen_or_kept(acc->store, dedupe_by(acc), stanza_id);
	if (r > 0)
		r = MEND_ERR_DUPLICATE;
	if (r == 0)
		r = parse_message(acc, st, &m, msg);
	if (r == MEND_OK)
		msg->version = MEND_VERSION_LEGACY;
	if (r == MEND_OK)
		msg->key_only = !m.has_payload;
	if (r == MEND_OK)
		r = decrypt_parsed(acc, &m, stanza_id, msg);
	else if (r == MEND_ERR_NOT_FOUND && mend_child(st, "encrypted", MEND_NS_OMEMO2))
		r = mend_omemo2_decrypt_stanza(acc, st, mend_child(st, "encrypted", MEND_NS_OMEMO2),
		                               stanza_id, dedupe_by(acc), msg);
	mend_encrypted_clear(&m);
	if (r == MEND_OK) {
		mend_account_notify_bundle(acc);
		mend_devices_announce(acc, msg->from, msg->device); /* a new device wrote first */
	} else if (r != MEND_ERR_NOT_FOUND && r != MEND_ERR_DUPLICATE && !acc->omemo2_why)
		mend_log(acc, MEND_LOG_WARNING, "message from %s rejected: %s",
		         msg->from ? msg->from : "?", mend_strerror(r));
	return r;
}

int mend_account_decrypt(mend_account *acc, const char *stanza, mend_message **out)
{
	mend_message *msg = g_new0(mend_message, 1);
	xmpp_stanza_t *st;
	int r;

	*out = NULL;
	st = mend_stanza_parse(acc, stanza);
	if (!st) {
		mend_log(acc, MEND_LOG_WARNING, "a stanza that is not XML was rejected");
		r = MEND_ERR_MALFORMED;
	} else {
		r = mend_account_decrypt_stanza(acc, st, NULL, msg);
		r = mend_held_keep(acc, st, msg->stanza_id, NULL, MEND_CARBON_NONE, 0, r);
		xmpp_stanza_release(st);
	}
	if (r < 0) {
		mend_message_free(msg);
		return r;
	}
	*out = msg;
	return MEND_OK;
}

void mend_message_clear(mend_message *msg)
{
	g_free(msg->from);
	if (msg->body) {
		memset(msg->body, 0, strlen(msg->body));
		g_free(msg->body);
	}
	g_free(msg->stanza_id);
	memset(msg, 0, sizeof(*msg));
}

void mend_message_free(mend_message *msg)
{
	if (!msg)
		return;
	mend_message_clear(msg);
	g_free(msg);
}
