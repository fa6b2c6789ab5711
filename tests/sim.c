/*
 * sim.c - the in-process XMPP world of sim.h.
 */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>
#include <strophe.h>
#include "sim.h"

static void on_bundle_changed(void *ud)
{
	((sim_dev *)ud)->bundle_changed++;
}

static void on_notice(mend_notice_kind kind, const char *jid, const char *text, void *ud)
{
	((sim_dev *)ud)->notices++;
}

/* Decrypted messages reported to the host (how many, the last body), and notices. */
static void on_event(const mend_event *ev, void *ud)
{
	sim_dev *d = ud;

	if (ev->kind == MEND_EVENT_NOTICE) {
		if (!d->notes)
			d->notes = g_ptr_array_new_with_free_func(g_free);
		g_ptr_array_add(d->notes,
		                g_strdup_printf("%s: %s", ev->peer ? ev->peer : "-", ev->text));
	}
	if (ev->kind != MEND_EVENT_MESSAGE)
		return;
	d->messages++;
	g_free(d->last_body);
	d->last_body = g_strdup(ev->body);
}

static const mend_host_ops sim_ops = {
    .bundle_changed = on_bundle_changed,
    .show_notice = on_notice,
    .event = on_event,
};

sim *sim_new(void)
{
	sim *s = g_new0(sim, 1);
	GError *err = NULL;

	s->root = g_dir_make_tmp("mend-sim-XXXXXX", &err);
	if (!s->root) {
		g_printerr("sim: cannot make a temp dir: %s\n", err->message);
		g_error_free(err);
		g_free(s);
		return NULL;
	}
	s->devs = g_ptr_array_new();
	return s;
}

void sim_rm_rf(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	if (dir) {
		while ((name = g_dir_read_name(dir))) {
			char *p = g_build_filename(path, name, NULL);

			sim_rm_rf(p);
			g_free(p);
		}
		g_dir_close(dir);
		g_rmdir(path);
	} else {
		g_unlink(path);
	}
}

void sim_free(sim *s)
{
	guint i;

	if (!s)
		return;
	for (i = 0; i < s->devs->len; i++) {
		sim_dev *d = g_ptr_array_index(s->devs, i);

		mend_account_free(d->acc);
		if (d->notes)
			g_ptr_array_free(d->notes, TRUE);
		g_free(d->name);
		g_free(d->jid);
		g_free(d->resource);
		g_free(d->dir);
		g_free(d->last_body);
		g_free(d);
	}
	g_ptr_array_free(s->devs, TRUE);
	sim_rm_rf(s->root);
	g_free(s->root);
	g_free(s);
}

int sim_open(sim_dev *d)
{
	int r;

	if (d->acc)
		return MEND_OK;
	r = mend_account_open(&d->acc, d->jid, d->dir, MEND_KEYRING_FILE, &sim_ops, d);
	if (r == MEND_OK)
		d->device_id = mend_account_device_id(d->acc);
	return r;
}

int sim_close(sim_dev *d)
{
	mend_account_free(d->acc);
	d->acc = NULL;
	return MEND_OK;
}

sim_dev *sim_add(sim *s, const char *jid, const char *name)
{
	sim_dev *d = g_new0(sim_dev, 1);
	int r;

	d->name = g_strdup(name);
	d->jid = g_strdup(jid);
	d->resource = g_strdup_printf("r%u", s->devs->len);
	d->dir = g_build_filename(s->root, d->resource, NULL);
	g_ptr_array_add(s->devs, d);
	r = sim_open(d);
	if (r < 0) {
		g_printerr("sim: cannot open %s: %s\n", name, mend_strerror(r));
		return NULL;
	}
	return d;
}

sim_dev *sim_find(sim *s, const char *jid, uint32_t device_id)
{
	guint i;

	for (i = 0; i < s->devs->len; i++) {
		sim_dev *d = g_ptr_array_index(s->devs, i);

		if (g_str_equal(d->jid, jid) && d->device_id == device_id)
			return d;
	}
	return NULL;
}

/* The device list of `jid`: every device of that account, as PEP would hold it. */
static char *devicelist_of(sim *s, const char *jid)
{
	GString *xml = g_string_new("<list xmlns='eu.siacs.conversations.axolotl'>");
	guint i;

	for (i = 0; i < s->devs->len; i++) {
		sim_dev *d = g_ptr_array_index(s->devs, i);

		if (g_str_equal(d->jid, jid))
			g_string_append_printf(xml, "<device id='%u'/>", d->device_id);
	}
	g_string_append(xml, "</list>");
	return g_string_free(xml, FALSE);
}

int sim_publish_all(sim *s)
{
	guint i, j;
	int r = MEND_OK;

	for (i = 0; i < s->devs->len && r == MEND_OK; i++) {
		sim_dev *d = g_ptr_array_index(s->devs, i);

		for (j = 0; j < s->devs->len && r == MEND_OK && d->acc; j++) {
			sim_dev *o = g_ptr_array_index(s->devs, j);
			char *list = devicelist_of(s, o->jid);

			r = mend_account_devicelist_update(d->acc, o->jid, list);
			g_free(list);
		}
	}
	return r;
}

struct share {
	guint fetcher, n;
};

static gboolean keep_share(const GMatchInfo *mi, GString *out, gpointer ud)
{
	const struct share *sh = ud;
	char *whole = g_match_info_fetch(mi, 0), *id = g_match_info_fetch(mi, 1);

	if (g_ascii_strtoull(id, NULL, 10) % sh->n == sh->fetcher)
		g_string_append(out, whole);
	g_free(whole);
	g_free(id);
	return FALSE;
}

/* The one-time prekeys of `bundle` whose id is `fetcher` modulo the number of devices. */
static char *prekey_share(sim *s, sim_dev *fetcher, const char *bundle)
{
	struct share sh = {0, s->devs->len};
	GRegex *re = g_regex_new("<preKeyPublic[^>]*preKeyId=[\"']([0-9]+)[\"'][^>]*>[^<]*"
	                         "</preKeyPublic>",
	                         0, 0, NULL);
	char *out;

	while (sh.fetcher < s->devs->len && g_ptr_array_index(s->devs, sh.fetcher) != fetcher)
		sh.fetcher++;
	out = g_regex_replace_eval(re, bundle, -1, 0, 0, keep_share, &sh, NULL);
	g_regex_unref(re);
	return out;
}

char *sim_bundle_for(sim *s, sim_dev *fetcher, sim_dev *owner)
{
	char *bundle = NULL, *out = NULL;
	int was_closed = !owner->acc;

	/* PEP serves the bundle even while its device is offline */
	if (sim_open(owner) == MEND_OK && mend_account_bundle_xml(owner->acc, &bundle) == MEND_OK)
		out = s->disjoint_prekeys ? prekey_share(s, fetcher, bundle) : g_strdup(bundle);
	if (was_closed)
		sim_close(owner);
	mend_free(bundle);
	return out;
}

int sim_fetch_bundles(sim *s, sim_dev *d, const char *jid)
{
	uint32_t *ids = NULL;
	size_t n = 0, i;
	int r;

	r = mend_account_devices_needing_bundle(d->acc, jid, &ids, &n);
	for (i = 0; r == MEND_OK && i < n; i++) {
		sim_dev *o = sim_find(s, jid, ids[i]);
		char *bundle = o ? sim_bundle_for(s, d, o) : NULL;

		if (!o)
			continue;
		r = bundle ? mend_account_bundle_process(d->acc, jid, ids[i], bundle)
		           : MEND_ERR_NOT_FOUND;
		g_free(bundle);
	}
	mend_free(ids);
	return r;
}

int sim_send(sim *s, sim_dev *d, const char *to, const char *body, char **stanza)
{
	int r = mend_account_encrypt(d->acc, to, body, NULL, stanza);

	if (r != MEND_ERR_NEED_BUNDLE)
		return r;
	r = sim_fetch_bundles(s, d, to);
	if (r == MEND_OK)
		r = sim_fetch_bundles(s, d, d->jid);
	if (r == MEND_OK)
		r = mend_account_encrypt(d->acc, to, body, NULL, stanza);
	return r;
}

char *sim_stamp(sim *s, const char *stanza, const sim_dev *sender, const sim_dev *rcpt,
                int with_sid)
{
	xmpp_ctx_t *ctx = xmpp_ctx_new(NULL, NULL);
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(ctx, stanza);
	char *from, *buf = NULL, *out = NULL;
	size_t len;

	if (!st)
		goto free_ctx;
	from = g_strdup_printf("%s/%s", sender->jid, sender->resource);
	xmpp_stanza_set_attribute(st, "from", from);
	g_free(from);
	if (with_sid) {
		xmpp_stanza_t *sid = xmpp_stanza_new(ctx);
		char *id = g_strdup_printf("sid-%lu", ++s->next_sid);

		xmpp_stanza_set_name(sid, "stanza-id");
		xmpp_stanza_set_ns(sid, "urn:xmpp:sid:0");
		xmpp_stanza_set_attribute(sid, "by", rcpt->jid);
		xmpp_stanza_set_attribute(sid, "id", id);
		xmpp_stanza_add_child(st, sid);
		xmpp_stanza_release(sid);
		g_free(id);
	}
	if (xmpp_stanza_to_text(st, &buf, &len) == XMPP_EOK) {
		out = g_strndup(buf, len);
		xmpp_free(ctx, buf);
	}
	xmpp_stanza_release(st);
free_ctx:
	xmpp_ctx_free(ctx);
	return out;
}
