/*
 * held.c - messages that came under an identity key we do not trust yet.
 *
 * A prekey message (XEP-0384 v0.3 §4.5) that names a known device id under
 * another identity key is refused by the identity check (sigstore.c): the
 * trusted key and its session stay as they were. If the message decrypts
 * under the new key (a probe in a transaction that always rolls back, so no
 * prekey is spent and no session replaced), the key is kept as a candidate
 * and the whole stanza is held, sealed, until the user accepts that key by
 * its fingerprint; then it is decrypted and reported as it would have been
 * on arrival. A message that does not decrypt under the key it names proves
 * nothing and is rejected as before.
 */
#include "config.h"

#include <libintl.h>
#include <string.h>
#include "internal.h"

#define _(s) dgettext(GETTEXT_PACKAGE, s)

#define HELD_TYPE "(sssii)" /* stanza, dedupe id, timestamp, carbon, archived */

/* Whether `msg` decrypts when its sender's key is the remembered changed key. */
static int probe(mend_account *acc, xmpp_stanza_t *msg, const char *stanza_id)
{
	mend_message m = {0};
	int dirty = acc->bundle_dirty, r;

	r = mend_store_begin(acc->store);
	if (r < 0)
		return r;
	acc->probe_key = acc->changed_key;
	acc->probe_len = acc->changed_len;
	r = mend_account_decrypt_stanza(acc, msg, stanza_id, &m);
	acc->probe_key = NULL;
	mend_store_rollback(acc->store);
	acc->bundle_dirty = dirty; /* the prekey it used was not spent */
	mend_message_clear(&m);
	return r;
}

static int hold(mend_account *acc, xmpp_stanza_t *msg, const char *stanza_id, const char *timestamp,
                int carbon, int archived)
{
	char *xml = mend_stanza_text(msg), fp[65];
	GVariant *v;
	int r;

	if (!xml)
		return MEND_ERR_NOMEM;
	v = g_variant_ref_sink(g_variant_new(HELD_TYPE, xml, stanza_id ? stanza_id : "",
	                                     timestamp ? timestamp : "", carbon, archived));
	mend_key_fingerprint(acc->changed_key, acc->changed_len, fp);
	r = mend_store_begin(acc->store);
	if (r == MEND_OK)
		r = mend_trust_keep_candidate(acc);
	if (r == MEND_OK)
		r = mend_store_held_add(acc->store, acc->changed_jid, acc->changed_device, fp,
		                        g_variant_get_data(v), g_variant_get_size(v));
	if (r == MEND_OK && stanza_id) /* said once; the archive's copy is not held twice */
		r = mend_store_stanza_mark(acc->store, acc->jid, stanza_id);
	r = r == MEND_OK ? mend_store_commit(acc->store) : (mend_store_rollback(acc->store), r);
	g_variant_unref(v);
	g_free(xml);
	return r;
}

int mend_held_keep(mend_account *acc, xmpp_stanza_t *msg, const char *stanza_id,
                   const char *timestamp, int carbon, int archived, int r)
{
	int p;

	if (r != MEND_ERR_UNTRUSTED || !acc->changed_jid)
		return r;
	p = probe(acc, msg, stanza_id);
	if (p == MEND_OK)
		p = hold(acc, msg, stanza_id, timestamp, carbon, archived);
	if (p == MEND_OK) {
		mend_log(acc, MEND_LOG_WARNING,
		         "%s device %u wrote under another identity key: held until accepted",
		         acc->changed_jid, acc->changed_device);
		r = MEND_ERR_KEY_CHANGED;
	} else {
		mend_log(acc, MEND_LOG_WARNING,
		         "%s device %u named another identity key that does not hold: %s",
		         acc->changed_jid, acc->changed_device, mend_strerror(p));
	}
	mend_trust_forget_change(acc);
	return r;
}

char *mend_held_text(mend_account *acc, const char *jid, uint32_t device)
{
	GPtrArray *keys = mend_trust_candidates(acc, jid, device);
	GString *s = g_string_new(NULL);
	uint8_t *key = NULL;
	size_t len = 0;
	char fp[65], *grouped;
	int trust;
	guint i;

	fp[0] = '\0';
	if (mend_store_peer_identity_get(acc->store, jid, device, &key, &len, &trust) == MEND_OK)
		mend_key_fingerprint(key, len, fp);
	g_free(key);
	grouped = mend_fingerprint_grouped(fp);
	/* DESIGN §7: the old and the new key, and what to do */
	g_string_printf(s,
	                _("Device %u of %s wrote under a new identity key; its message is kept "
	                  "until you accept that key. Old key: %s."),
	                device, jid, fp[0] ? grouped : _("unknown"));
	g_free(grouped);
	for (i = 0; i < keys->len; i++) {
		gsize klen = 0;
		const uint8_t *k = g_bytes_get_data(keys->pdata[i], &klen);

		mend_key_fingerprint(k, klen, fp);
		grouped = mend_fingerprint_grouped(fp);
		g_string_append_c(s, ' ');
		g_string_append_printf(s,
		                       _("New key: %s. If its owner confirms it: trust %s %u %s"),
		                       grouped, jid, device, fp);
		g_free(grouped);
	}
	g_ptr_array_unref(keys);
	return g_string_free(s, FALSE);
}

/* Decrypts one held message again (it was marked seen when held). */
static void replay_one(mend_account *acc, GBytes *data)
{
	GVariant *v = g_variant_new_from_bytes(G_VARIANT_TYPE(HELD_TYPE), data, FALSE);
	const char *xml, *sid, *ts;
	int carbon, archived;
	xmpp_stanza_t *st;

	g_variant_ref_sink(v);
	g_variant_get(v, "(&s&s&sii)", &xml, &sid, &ts, &carbon, &archived);
	st = mend_stanza_parse(acc, xml);
	if (st) {
		acc->replaying = 1;
		mend_engine_process_held(acc, st, *sid ? sid : NULL, *ts ? ts : NULL, carbon,
		                         archived);
		acc->replaying = 0;
		xmpp_stanza_release(st);
	}
	g_variant_unref(v);
}

void mend_held_replay(mend_account *acc, const char *jid, uint32_t device, const char *fp)
{
	GArray *rows = g_array_new(FALSE, FALSE, sizeof(int64_t));
	GPtrArray *data = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	guint i;

	if (mend_store_held_list(acc->store, jid, device, fp, rows, data) == MEND_OK)
		for (i = 0; i < data->len; i++) {
			replay_one(acc, data->pdata[i]);
			mend_store_held_delete(acc->store, g_array_index(rows, int64_t, i));
		}
	g_array_free(rows, TRUE);
	g_ptr_array_unref(data);
}
