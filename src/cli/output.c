/*
 * output.c - everything `mend` prints. With --json: one JSON object per
 * line on stdout, flushed at once (a correct string escaper; UTF-8 passes
 * through, invalid UTF-8 is repaired). Without: one readable line per
 * message on stdout, with control characters from the network made
 * harmless. Errors are one sentence on stderr (and a JSON "error" line).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

/* --- JSON ----------------------------------------------------------------- */

static void json_char(GString *s, unsigned char ch)
{
	switch (ch) {
	case '"':
		g_string_append(s, "\\\"");
		return;
	case '\\':
		g_string_append(s, "\\\\");
		return;
	case '\n':
		g_string_append(s, "\\n");
		return;
	case '\r':
		g_string_append(s, "\\r");
		return;
	case '\t':
		g_string_append(s, "\\t");
		return;
	}
	if (ch < 0x20 || ch == 0x7f)
		g_string_append_printf(s, "\\u%04x", ch);
	else
		g_string_append_c(s, (char)ch);
}

/* Appends `v` as a JSON string (RFC 8259 §7). */
void out_json_string(GString *s, const char *v)
{
	char *valid = NULL;
	const unsigned char *p;

	if (!g_utf8_validate(v, -1, NULL))
		v = valid = g_utf8_make_valid(v, -1);
	g_string_append_c(s, '"');
	for (p = (const unsigned char *)v; *p; p++)
		json_char(s, *p);
	g_string_append_c(s, '"');
	g_free(valid);
}

static GString *json_begin(const char *type)
{
	GString *s = g_string_new("{\"type\":");

	out_json_string(s, type);
	return s;
}

static void json_key(GString *s, const char *key)
{
	g_string_append_c(s, ',');
	out_json_string(s, key);
	g_string_append_c(s, ':');
}

static void json_str(GString *s, const char *key, const char *v)
{
	json_key(s, key);
	if (v)
		out_json_string(s, v);
	else
		g_string_append(s, "null");
}

static void json_int(GString *s, const char *key, long long v)
{
	json_key(s, key);
	g_string_append_printf(s, "%lld", v);
}

static void json_bool(GString *s, const char *key, int v)
{
	json_key(s, key);
	g_string_append(s, v ? "true" : "false");
}

/* XEP-0384's version as the CLI names it: "2" (OMEMO:2) or "0.3" (legacy); NULL: none. */
static const char *version_name(int version)
{
	return version == MEND_OMEMO_2 ? "2" : version == MEND_OMEMO_LEGACY ? "0.3" : NULL;
}

/* "versions":["2","0.3"]: the versions a device's lists name (mend_device_info.versions). */
static void json_versions(GString *s, const char *key, unsigned bits)
{
	json_key(s, key);
	g_string_append_c(s, '[');
	if (bits & (1u << (MEND_OMEMO_2 - 1)))
		g_string_append(s, "\"2\"");
	if (bits & (1u << (MEND_OMEMO_LEGACY - 1)))
		g_string_append(s, (bits & (1u << (MEND_OMEMO_2 - 1))) ? ",\"0.3\"" : "\"0.3\"");
	g_string_append_c(s, ']');
}

static void json_end(GString *s)
{
	g_string_append(s, "}\n");
	fputs(s->str, stdout);
	fflush(stdout);
	g_string_free(s, TRUE);
}

/* --- human text ------------------------------------------------------------ */

/* `text` with control characters (but newline and tab) shown as U+FFFD. g_free. */
static char *clean(const char *text)
{
	GString *s = g_string_new(NULL);
	char *valid = NULL;
	const char *p;
	gunichar ch;

	if (!text)
		text = "";
	if (!g_utf8_validate(text, -1, NULL))
		text = valid = g_utf8_make_valid(text, -1);
	for (p = text; *p; p = g_utf8_next_char(p)) {
		ch = g_utf8_get_char(p);
		if (g_unichar_iscntrl(ch) && ch != '\n' && ch != '\t')
			ch = 0xfffd;
		g_string_append_unichar(s, ch);
	}
	g_free(valid);
	return g_string_free(s, FALSE);
}

static void say(FILE *f, const char *text)
{
	char *t = clean(text);

	fprintf(f, "%s\n", t);
	fflush(f);
	g_free(t);
}

char *out_iso_time(int64_t unix_time)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(unix_time);
	char *s;

	if (!dt)
		return g_strdup("?");
	s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(dt);
	return s;
}

static char *now_iso(void)
{
	return out_iso_time(g_get_real_time() / G_USEC_PER_SEC);
}

static const char *trust_name(int trust)
{
	switch (trust) {
	case MEND_TRUST_UNTRUSTED:
		return "untrusted";
	case MEND_TRUST_TOFU:
		return "tofu";
	case MEND_TRUST_VERIFIED:
		return "verified";
	case MEND_TRUST_BLIND:
		return "blind";
	case MEND_TRUST_UNDECIDED:
		return "undecided";
	case MEND_TRUST_COMPROMISED:
		return "compromised";
	}
	return NULL;
}

static const char *carbon_name(mend_carbon carbon)
{
	if (carbon == MEND_CARBON_SENT)
		return "sent";
	if (carbon == MEND_CARBON_RECEIVED)
		return "received";
	return NULL;
}

/* "xxxxxxxx xxxxxxxx ..." from 64 hex digits. g_free. */
/* --- errors and notices ---------------------------------------------------- */

/*
 * The run failed: one sentence on stderr (and a JSON "error" line with the
 * core's error `code`, 0 if none, and the exit status). Returns `status`.
 */
int cli_fail(struct cli *c, int status, int code, const char *fmt, ...)
{
	GString *s;
	va_list ap;
	char *text;

	if (c->finished)
		return c->status;
	va_start(ap, fmt);
	text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	fputs("mend: ", stderr);
	say(stderr, text);
	if (c->o.json) {
		s = json_begin("error");
		json_str(s, "text", text);
		json_int(s, "code", code);
		json_int(s, "exit", status);
		json_end(s);
	}
	g_free(text);
	cli_finish(c, status);
	return status;
}

void out_notice(struct cli *c, const char *jid, const char *text)
{
	GString *s;

	if (!text)
		return;
	if (!c->o.json) {
		fputs("mend: ", stderr);
		say(stderr, text);
		return;
	}
	s = json_begin("notice");
	json_str(s, "text", text);
	json_str(s, "jid", jid);
	json_end(s);
}

/* A line of progress: JSON on stdout, or the sentence on stderr. */
void out_status(struct cli *c, const char *type, const char *text)
{
	GString *s;

	if (!c->o.json) {
		say(stderr, text);
		return;
	}
	s = json_begin(type);
	json_str(s, "text", text);
	json_end(s);
}

/* --- messages --------------------------------------------------------------- */

/*
 * What the message's sender device is to us, as one word (JSON "mark") and as the
 * mark in front of the human line: unencrypted, from an unannounced device, or
 * the trust in its key.
 */
static const char *mark_word(const mend_event *ev)
{
	const char *t = trust_name(ev->trust);

	if (ev->plaintext)
		return "unencrypted";
	if (!ev->announced)
		return "unannounced";
	return t ? t : "unknown";
}

static const char *mark_text(const mend_event *ev)
{
	if (ev->plaintext)
		return _("[unencrypted]");
	if (!ev->announced)
		return _("[unannounced device]");
	switch (ev->trust) {
	case MEND_TRUST_VERIFIED:
		return _("[verified]");
	case MEND_TRUST_TOFU:
		return _("[trusted on first use]");
	case MEND_TRUST_BLIND:
		return _("[blind trust]");
	case MEND_TRUST_UNTRUSTED:
		return _("[untrusted]");
	case MEND_TRUST_UNDECIDED:
		return _("[undecided]");
	case MEND_TRUST_COMPROMISED:
		return _("[compromised]");
	}
	return _("[unknown key]");
}

/* XEP-0454: the message's file link, and what became of it (listen --save-dir). */
static void file_json(struct cli *c, GString *s, const mend_file_link *l)
{
	const mend_file_result *r = c->file_saved;

	json_key(s, "file");
	g_string_append(s, "{\"url\":");
	out_json_string(s, l->url);
	json_str(s, "name", l->name);
	if (r) {
		json_str(s, "path", r->path);
		json_int(s, "size", (long long)r->size);
		json_str(s, "sha256", r->sha256);
		if (r->mime)
			json_str(s, "mime", r->mime);
	}
	if (c->file_error)
		json_str(s, "error", c->file_error);
	g_string_append_c(s, '}');
}

static void file_human(struct cli *c, const mend_file_link *l)
{
	char *size, *line;

	if (c->file_saved) {
		size = g_format_size(c->file_saved->size);
		line = g_strdup_printf(_("  file saved as %s (%s)"), c->file_saved->path, size);
		say(stdout, line);
		g_free(line);
		g_free(size);
	} else if (c->file_error) {
		line = g_strdup_printf(_("mend: the file %s was not saved: %s"), l->name,
		                       c->file_error);
		say(stderr, line);
		g_free(line);
	}
}

static void message_json(struct cli *c, const mend_event *ev, const char *ts)
{
	GString *s = json_begin("message");

	json_str(s, "from", ev->from);
	json_str(s, "peer", ev->peer);
	json_int(s, "device", ev->device);
	json_str(s, "body", ev->body ? ev->body : "");
	json_str(s, "timestamp", ts);
	json_str(s, "stanza_id", ev->stanza_id);
	json_str(s, "id", ev->id);
	json_str(s, "carbon", carbon_name(ev->carbon));
	json_bool(s, "archived", ev->archived);
	json_bool(s, "outgoing", ev->outgoing);
	json_str(s, "trust", trust_name(ev->trust));
	json_bool(s, "encrypted", !ev->plaintext);
	json_bool(s, "announced", ev->plaintext || ev->announced);
	json_str(s, "mark", mark_word(ev));
	json_str(s, "version",
	         ev->plaintext ? NULL
	                       : version_name(ev->version ? ev->version : MEND_OMEMO_LEGACY));
	if (ev->downgraded) /* a device that wrote OMEMO:2 before fell back to legacy OMEMO */
		json_bool(s, "downgrade", 1);
	json_str(s, "room", ev->room); /* group chats: the room and the sender's nick there */
	json_str(s, "nick", ev->nick);
	if (ev->file)
		file_json(c, s, ev->file);
	json_end(s);
}

static void message_human(struct cli *c, const mend_event *ev, const char *ts)
{
	GString *s = g_string_new(ts);

	g_string_append_c(s, ' ');
	if (ev->carbon == MEND_CARBON_SENT)
		g_string_append(s, _("[carbon sent] "));
	else if (ev->carbon == MEND_CARBON_RECEIVED)
		g_string_append(s, _("[carbon received] "));
	if (ev->archived)
		g_string_append(s, _("[archive] "));
	g_string_append_printf(s, "%s ", mark_text(ev));
	if (ev->room) /* ROOM <nick> sender (device N): text */
		g_string_append_printf(s, "%s <%s> ", ev->room, ev->nick ? ev->nick : "?");
	if (ev->plaintext)
		g_string_append(s, ev->from ? ev->from : "?");
	else
		g_string_append_printf(s, _("%s (device %u)"), ev->from ? ev->from : "?",
		                       ev->device);
	if (ev->outgoing && ev->peer && !ev->room)
		g_string_append_printf(s, " -> %s", ev->peer);
	g_string_append_printf(s, ": %s", ev->body ? ev->body : "");
	say(stdout, s->str);
	g_string_free(s, TRUE);
	if (ev->file)
		file_human(c, ev->file);
}

void out_message(struct cli *c, const mend_event *ev)
{
	char *now = ev->timestamp ? NULL : now_iso();
	const char *ts = ev->timestamp ? ev->timestamp : now;

	if (c->o.json)
		message_json(c, ev, ts);
	else
		message_human(c, ev, ts);
	g_free(now);
}

void out_undecryptable(struct cli *c, const mend_event *ev)
{
	const char *text = ev->text ? ev->text : mend_strerror(ev->error);
	char *line, *now = ev->timestamp ? NULL : now_iso();
	const char *ts = ev->timestamp ? ev->timestamp : now;
	GString *s;

	if (!c->o.json) {
		line = g_strdup_printf(_("%s %s (device %u): could not decrypt: %s"), ts,
		                       ev->from ? ev->from : "?", ev->device, text);
		say(stdout, line);
		g_free(line);
		goto out;
	}
	s = json_begin("error");
	json_str(s, "text", text);
	json_int(s, "code", ev->error);
	json_str(s, "from", ev->from);
	json_str(s, "peer", ev->peer);
	json_int(s, "device", ev->device);
	json_str(s, "timestamp", ts);
	json_str(s, "stanza_id", ev->stanza_id);
	json_str(s, "id", ev->id);
	json_str(s, "carbon", carbon_name(ev->carbon));
	json_bool(s, "archived", ev->archived);
	json_str(s, "version", version_name(ev->version));
	json_end(s);
out:
	g_free(now);
}

/* --- results ------------------------------------------------------------------ */

void out_sent(struct cli *c, const char *to, const char *id, unsigned n, unsigned n2, int earlier)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		if (earlier)
			line = g_strdup_printf(
			    ngettext("Sent an earlier queued message to %s (%u device).",
			             "Sent an earlier queued message to %s (%u devices).", n),
			    to, n);
		else
			line = g_strdup_printf(
			    ngettext("Sent to %s (%u device).", "Sent to %s (%u devices).", n), to,
			    n);
		say(stdout, line);
		g_free(line);
		return;
	}
	s = json_begin("sent");
	json_str(s, "to", to);
	json_str(s, "id", id);
	json_int(s, "devices", n);
	json_int(s, "devices_2", n2); /* XEP-0384 0.9: in OMEMO:2; the others in legacy OMEMO */
	json_int(s, "devices_legacy", n - n2);
	if (earlier)
		json_bool(s, "earlier", 1);
	json_end(s);
}

/* The message waits in the queue: the sentence on stderr, and a JSON "queued" line. */
void out_queued(struct cli *c, const char *to, const char *id, const char *text)
{
	GString *s;

	fputs("mend: ", stderr);
	say(stderr, text);
	if (!c->o.json)
		return;
	s = json_begin("queued");
	json_str(s, "to", to);
	json_str(s, "id", id);
	json_str(s, "text", text);
	json_end(s);
}

/* A device of `peer` confirmed our message `id` (XEP-0184): a JSON "receipt" line. */
void out_receipt(struct cli *c, const char *peer, const char *id)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(_("Delivered to %s (message %s)."), peer, id);
		say(stdout, line);
		g_free(line);
		return;
	}
	s = json_begin("receipt");
	json_str(s, "from", peer);
	json_str(s, "id", id);
	json_end(s);
}

void out_ready(struct cli *c)
{
	uint32_t device = mend_account_device_id(c->acc);
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(_("Connected as %s (device %u)."), c->full, device);
		say(stderr, line);
		g_free(line);
		return;
	}
	s = json_begin("ready");
	json_str(s, "jid", c->full);
	json_int(s, "device", device);
	json_end(s);
}

void out_devicelist(struct cli *c, const char *jid, unsigned n)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(
		    ngettext("%s now has %u OMEMO device.", "%s now has %u OMEMO devices.", n), jid,
		    n);
		say(stderr, line);
		g_free(line);
		return;
	}
	s = json_begin("devicelist");
	json_str(s, "jid", jid);
	json_int(s, "devices", n);
	json_end(s);
}

void out_history_done(struct cli *c)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		if (c->n_messages)
			return;
		line = g_strdup_printf(_("No messages with %s in the archive."), c->peer);
		say(stderr, line);
		g_free(line);
		return;
	}
	s = json_begin("history_done");
	json_str(s, "with", c->peer);
	json_int(s, "count", c->n_messages);
	json_end(s);
}

static void device_json(const char *jid, const mend_device_info *d, int own)
{
	GString *s = json_begin("device");
	const char *trust = trust_name(d->trust);
	char *seen = d->last_seen ? out_iso_time(d->last_seen) : NULL;

	json_str(s, "jid", jid);
	json_int(s, "device", d->id);
	json_str(s, "fingerprint", d->fingerprint[0] ? d->fingerprint : NULL);
	json_str(s, "new_fingerprint", d->new_fingerprint[0] ? d->new_fingerprint : NULL);
	json_int(s, "new_keys", d->n_new_keys); /* new_fingerprint is the first of them */
	json_str(s, "trust", trust ? trust : "unknown");
	json_bool(s, "active", d->active);
	json_bool(s, "stale", d->stale);
	json_bool(s, "session", d->has_session);
	json_str(s, "last_seen", seen);
	json_bool(s, "own", own);
	json_versions(s, "versions", d->versions);
	json_str(s, "wrote", version_name(d->wrote_version));
	json_str(s, "send_version", version_name(d->send_version));
	json_end(s);
	g_free(seen);
}

/* Listed and heard from, listed but silent for MEND_STALE_DAYS, or no longer listed. */
static const char *device_state(const mend_device_info *d)
{
	if (!d->active)
		return _("not listed");
	return d->stale ? _("inactive") : _("active");
}

static void device_human(const char *jid, const mend_device_info *d, int own)
{
	char *seen = d->last_seen ? out_iso_time(d->last_seen) : g_strdup(_("never"));
	char *fp =
	    d->fingerprint[0] ? mend_fingerprint_grouped(d->fingerprint) : g_strdup(_("unknown"));
	const char *versions = mend_versions_name(d->versions);
	char *nfp;

	printf(_("device %u%s: %s, %s, last seen %s\n"), d->id, own ? _(" (this device)") : "",
	       mend_trust_name(d->trust), device_state(d), seen);
	if (d->stale)
		printf(
		    _("  Nothing came from it for %d days: messages skip it until it sends again "
		      "or you trust it again (mend trust %s %u %s).\n"),
		    MEND_STALE_DAYS, jid, d->id, d->fingerprint);
	printf(_("  fingerprint %s\n"), fp);
	if (versions)
		printf(_("  OMEMO versions: %s\n"), versions);
	if (d->new_fingerprint[0]) {
		/* DESIGN §7: the old and the new key, and what to do */
		nfp = mend_fingerprint_grouped(d->new_fingerprint);
		printf(
		    _("  NEW KEY     %s\n  This device showed a new identity key; mend still "
		      "encrypts only to the key above. If its owner confirms the new fingerprint: "
		      "mend trust %s %u %s\n"),
		    nfp, jid, d->id, d->new_fingerprint);
		if (d->n_new_keys > 1)
			printf(ngettext("  (and %u other new key)\n", "  (and %u other new keys)\n",
			                d->n_new_keys - 1),
			       d->n_new_keys - 1);
		g_free(nfp);
	}
	fflush(stdout);
	g_free(fp);
	g_free(seen);
}

void out_device(struct cli *c, const char *jid, const mend_device_info *d, int own)
{
	if (c->o.json)
		device_json(jid, d, own);
	else
		device_human(jid, d, own);
}

/* The end of a listing: a JSON `type` line with key: value and the count; as text, the
 * sentence `empty` when the list was empty. */
static void list_done(struct cli *c, const char *type, const char *key, const char *value, size_t n,
                      const char *empty)
{
	GString *s;

	if (!c->o.json) {
		if (!n)
			say(stdout, empty);
		return;
	}
	s = json_begin(type);
	json_str(s, key, value);
	json_int(s, "count", (long long)n);
	json_end(s);
}

void out_devices_done(struct cli *c, const char *jid, size_t n)
{
	char *line = g_strdup_printf(_("No OMEMO devices are known for %s."), jid);

	list_done(c, "devices_done", "jid", jid, n, line);
	g_free(line);
}

void out_fingerprint(struct cli *c, uint32_t device, const char *hex)
{
	GString *s;
	char *fp;

	if (!c->o.json) {
		fp = mend_fingerprint_grouped(hex);
		printf(_("device %u\nfingerprint %s\n"), device, fp);
		fflush(stdout);
		g_free(fp);
		return;
	}
	s = json_begin("fingerprint");
	json_str(s, "jid", c->bare);
	json_int(s, "device", device);
	json_str(s, "fingerprint", hex);
	json_end(s);
}

void out_trust(struct cli *c, const char *jid, uint32_t device, mend_trust trust)
{
	GString *s;

	if (!c->o.json) {
		if (trust == MEND_TRUST_VERIFIED)
			printf(_("Device %u of %s is now verified.\n"), device, jid);
		else
			printf(
			    _("Device %u of %s is now untrusted: mend will not encrypt to it.\n"),
			    device, jid);
		fflush(stdout);
		return;
	}
	s = json_begin("trust");
	json_str(s, "jid", jid);
	json_int(s, "device", device);
	json_str(s, "trust", trust_name(trust));
	json_end(s);
}

void out_text(struct cli *c, const char *type, const char *key, const char *value)
{
	GString *s;

	if (!c->o.json) {
		printf("%s\n", value);
		fflush(stdout);
		return;
	}
	s = json_begin(type);
	json_str(s, key, value);
	json_end(s);
}

/* send --file: the file is uploaded and its link queued as message `id`. */
void out_file_sent(struct cli *c, const char *to, const char *path, const char *link,
                   const char *id)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(_("Uploaded %s (encrypted) for %s."), path, to);
		say(stderr, line);
		g_free(line);
		return;
	}
	s = json_begin("file_sent");
	json_str(s, "to", to);
	json_str(s, "id", id);
	json_str(s, "path", path);
	json_str(s, "link", link);
	json_end(s);
}

/* fetch: the file is saved. */
void out_fetched(struct cli *c, const mend_file_link *link, const mend_file_result *res)
{
	GString *s;
	char *size;

	if (!c->o.json) {
		size = g_format_size(res->size);
		printf(_("Saved %s (%s, SHA-256 %s).\n"), res->path, size, res->sha256);
		fflush(stdout);
		g_free(size);
		return;
	}
	s = json_begin("file");
	json_str(s, "url", link->url);
	json_str(s, "name", link->name);
	json_str(s, "path", res->path);
	json_int(s, "size", (long long)res->size);
	json_str(s, "sha256", res->sha256);
	if (res->mime)
		json_str(s, "mime", res->mime);
	json_end(s);
}

/* The URI as a QR code in the terminal (when mend was built with libqrencode). */
void out_qr(struct cli *c, const char *text)
{
	char *qr = c->o.json ? NULL : mend_qr_text(text);

	if (qr) {
		fputs(qr, stdout);
		fflush(stdout);
	}
	mend_free(qr);
}

/* --- group chats ------------------------------------------------------------------ */

static const char *room_state(int error)
{
	switch (error) {
	case MEND_OK:
		return "ok";
	case MEND_ERR_ROOM_OPEN:
		return "open";
	case MEND_ERR_ROOM_ANONYMOUS:
		return "anonymous";
	case MEND_ERR_NOT_A_ROOM:
		return "not_a_room";
	}
	return "unknown";
}

/*
 * A room's state (MEND_EVENT_ROOM) or the end of its archive catch-up (CATCHUP_DONE with
 * room): a JSON "room" / "catchup_done" line; as text, only a room that refuses OMEMO.
 */
void out_room(struct cli *c, const mend_event *ev)
{
	GString *s;

	if (!c->o.json) {
		if (ev->kind == MEND_EVENT_ROOM && ev->error)
			out_notice(c, ev->room, ev->text ? ev->text : mend_strerror(ev->error));
		return;
	}
	if (ev->kind == MEND_EVENT_CATCHUP_DONE) {
		s = json_begin("catchup_done");
		json_str(s, "room", ev->room);
		json_int(s, "code", ev->error);
		json_end(s);
		return;
	}
	s = json_begin("room");
	json_str(s, "room", ev->room);
	json_str(s, "state", room_state(ev->error));
	json_int(s, "code", ev->error);
	json_str(s, "text", ev->text);
	json_int(s, "devices", ev->n_devices);
	json_end(s);
}

/* A HELD room message: the sentence (who could not read it) on stderr, a JSON "held" line. */
void out_held(struct cli *c, const mend_event *ev, int dropped)
{
	const char *text = ev->text ? ev->text : mend_strerror(MEND_ERR_ROOM_PARTIAL);
	GString *s;

	fputs("mend: ", stderr);
	say(stderr, text);
	if (!c->o.json)
		return;
	s = json_begin("held");
	json_str(s, "room", ev->room);
	json_str(s, "id", ev->id);
	json_str(s, "text", text);
	json_bool(s, "dropped", dropped);
	json_end(s);
}

void out_joined(struct cli *c, const char *room, const char *nick, unsigned n)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(ngettext("In %s as %s; messages there are encrypted for the "
		                                "members' %u device.",
		                                "In %s as %s; messages there are encrypted for the "
		                                "members' %u devices.",
		                                n),
		                       room, nick, n);
		say(stdout, line);
		g_free(line);
		return;
	}
	s = json_begin("joined");
	json_str(s, "room", room);
	json_str(s, "nick", nick);
	json_int(s, "devices", n);
	json_end(s);
}

void out_left(struct cli *c, const char *room)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(_("mend left %s and will not enter it again."), room);
		say(stdout, line);
		g_free(line);
		return;
	}
	s = json_begin("left");
	json_str(s, "room", room);
	json_end(s);
}

/* One member of a room; its devices follow as "device" lines. */
void out_member(struct cli *c, const char *room, const mend_room_member *m)
{
	GString *s;
	char *line;

	if (!c->o.json) {
		line = g_strdup_printf(_("%s (%s%s%s, %s): %u of %u devices usable"), m->jid,
		                       m->affiliation ? m->affiliation : "none",
		                       m->nick ? _(", nick ") : "", m->nick ? m->nick : "",
		                       m->present ? _("in the room") : _("away"), m->n_devices,
		                       m->n_known);
		say(stdout, line);
		g_free(line);
		return;
	}
	s = json_begin("member");
	json_str(s, "room", room);
	json_str(s, "jid", m->jid);
	json_str(s, "nick", m->nick);
	json_str(s, "affiliation", m->affiliation);
	json_bool(s, "present", m->present);
	json_int(s, "devices", m->n_devices);
	json_int(s, "known", m->n_known);
	json_end(s);
}

void out_members_done(struct cli *c, const char *room, size_t n)
{
	char *line = g_strdup_printf(_("%s has no other members."), room);

	list_done(c, "members_done", "room", room, n, line);
	g_free(line);
}

/* --- usage ---------------------------------------------------------------------- */

static const char *usage_text(enum cli_command cmd)
{
	switch (cmd) {
	case CMD_SEND:
		return _(
		    "Usage: mend send [--wait-receipt] [--timeout SEC] JID [--file PATH] "
		    "[TEXT...]\n"
		    "Sends TEXT (or stdin when no TEXT is given) to JID, encrypted with OMEMO for\n"
		    "all of JID's devices and our other devices. TEXT is sent exactly as given;\n"
		    "from stdin, only the newline ending the last line is dropped. Exits 0 once\n"
		    "the server has it, 75 if it stays queued (it is sent the next time mend\n"
		    "connects), 1 if it cannot be sent or the server bounced it.\n"
		    "  --wait-receipt  exit 0 only once a device of JID confirmed it (XEP-0184);\n"
		    "                  1 when no confirmation came in time\n"
		    "  --timeout SEC   give up waiting after SEC seconds (default 30)\n"
		    "  --file PATH     send the file PATH, encrypted (XEP-0454) and uploaded to\n"
		    "                  our server (XEP-0363), then TEXT if given; a file over the\n"
		    "                  server's limit is refused before uploading\n"
		    "JID may be a group chat (a room mend joined, a room@service whose disco#info\n"
		    "says so, or any with --room): mend enters it for this run and encrypts to\n"
		    "every member's devices; only members-only, non-anonymous rooms (exit 1 with\n"
		    "the reason otherwise). If some members cannot read it (no usable device),\n"
		    "nothing is sent: mend names them and exits 6, unless --allow-partial.\n"
		    "  --room          JID is a room (no disco#info question)\n"
		    "  --nick NICK     our nick in a room mend has not joined (default: our name)\n"
		    "  --allow-partial send to the members who can read it; the others are "
		    "named\n");
	case CMD_LISTEN:
		return _(
		    "Usage: mend listen [--count N] [--timeout SEC] [--encrypted-only]\n"
		    "Goes online and prints each decrypted message as it arrives (messages that\n"
		    "came while offline first), marked with its sender device's state: "
		    "[verified],\n"
		    "[trusted on first use], [blind trust], [untrusted], [undecided], "
		    "[unannounced\n"
		    "device] (not in its owner's device list), or [unencrypted] for plaintext.\n"
		    "Runs until SIGINT/SIGTERM unless limited:\n"
		    "  --count N       stop after N messages (exit 1 if the timeout comes first)\n"
		    "  --timeout SEC   stop after SEC seconds\n"
		    "  --encrypted-only  hide messages that came unencrypted\n"
		    "Enters every room mend joined and first prints what came there while away\n"
		    "(from the room's archive); JSON: \"room\" and \"nick\" on room messages.\n"
		    "  --save-dir DIR  save received files (aesgcm:// links) in DIR, never\n"
		    "                  overwriting (name-1.ext...); JSON: the message's "
		    "\"file\"\n");
	case CMD_HISTORY:
		return _(
		    "Usage: mend history JID [--since ISO8601] [--timeout SEC] [--encrypted-only]\n"
		    "Prints our messages with JID from the server archive, oldest first, marked\n"
		    "as 'mend listen' marks them. For a room mend joined: the room's archive,\n"
		    "our own messages there from mend's sealed history.\n"
		    "  --since TIME    only messages since TIME (e.g. 2026-11-21T10:00:00Z)\n"
		    "  --timeout SEC   give up after SEC seconds (default 60)\n"
		    "  --encrypted-only  hide messages that came unencrypted\n");
	case CMD_DEVICES:
		return _(
		    "Usage: mend devices [JID] [--timeout SEC]\n"
		    "Fetches and prints the OMEMO devices of JID (default: our own): device id,\n"
		    "fingerprint, trust (untrusted, tofu, verified), active, last seen.\n");
	case CMD_FINGERPRINT:
		return _("Usage: mend fingerprint\n"
		         "Prints our own device id and fingerprint (no network).\n");
	case CMD_TRUST:
	case CMD_UNTRUST:
		return _("Usage: mend trust JID DEVICE [FINGERPRINT] | mend untrust JID DEVICE\n"
		         "Marks a device of JID as verified (after comparing fingerprints) or as\n"
		         "untrusted (mend stops encrypting to it). A device that showed a new key\n"
		         "is trusted only by naming that key: its FINGERPRINT (64 hex digits,\n"
		         "spaces allowed, as 'mend devices JID' shows it); messages that came\n"
		         "under it are shown then. No network.\n");
	case CMD_URI:
		return _("Usage: mend uri\n"
		         "Prints our verification URI (xmpp:JID?omemo-sid-ID=FINGERPRINT;...) as\n"
		         "Conversations and Dino scan it, and a QR code of it on a terminal.\n");
	case CMD_VERIFY:
		return _(
		    "Usage: mend verify URI\n"
		    "Marks every device named in a contact's verification URI as verified, if\n"
		    "its fingerprint matches; if one does not match, nothing is changed.\n");
	case CMD_POLICY:
		return _(
		    "Usage: mend policy [JID] [tofu|btbv|manual]\n"
		    "Shows or sets how new devices are trusted, for the account or one contact:\n"
		    "  tofu    trust on first use; a changed key is never trusted by itself\n"
		    "  btbv    trust blindly until you verify a device of the contact\n"
		    "  manual  trust nothing until you say so\n");
	case CMD_IDENTITY:
		return _(
		    "Usage: mend identity reset\n"
		    "Makes a new identity key for this device (same device id), for a key that\n"
		    "may have leaked. Contacts must accept the new key.\n");
	case CMD_FETCH:
		return _(
		    "Usage: mend fetch URL [--out PATH | --save-dir DIR] [--timeout SEC]\n"
		    "Downloads the encrypted file of an aesgcm:// link (XEP-0454), checks it and\n"
		    "saves it as PATH, or in DIR (default: here) under the link's file name,\n"
		    "never overwriting. A file that fails its check is removed. No XMPP.\n"
		    "  --timeout SEC   give up when the server sends nothing for SEC seconds\n");
	case CMD_ACCOUNT:
		return _("Usage: mend account add JID\n"
		         "Stores JID's password in the Secret Service; the password is read from\n"
		         "stdin, or asked for without echo on a terminal.\n");
	case CMD_JOIN:
		return _(
		    "Usage: mend join ROOM [--nick NICK] [--timeout SEC]\n"
		    "Enters the group chat ROOM (room@service) and remembers it: later 'mend\n"
		    "listen' runs enter it again and catch up from its archive, until 'mend leave\n"
		    "ROOM'. Only rooms that are members-only and show members' addresses\n"
		    "(non-anonymous) can be encrypted; others are refused with the reason (exit "
		    "1).\n"
		    "  --nick NICK     our nick there (default: the local part of our JID)\n");
	case CMD_LEAVE:
		return _("Usage: mend leave ROOM\n"
		         "Forgets ROOM: mend no longer enters it (no network; membership in the\n"
		         "room itself is its owner's to change).\n");
	case CMD_MEMBERS:
		return _(
		    "Usage: mend members ROOM [--timeout SEC]\n"
		    "Prints the members of a room mend joined (from its member, admin and owner\n"
		    "lists and who is present), each with its devices and their trust, as\n"
		    "'mend devices' shows them.\n");
	default:
		return NULL;
	}
}

static const char *general_usage(void)
{
	return _("Usage: mend [OPTIONS] COMMAND ...\n"
	         "OMEMO-encrypted XMPP from the command line.\n\n"
	         "Commands:\n"
	         "  send [--wait-receipt] JID [TEXT]     send TEXT (or stdin)\n"
	         "  listen [--count N] [--timeout SEC]   print messages as they arrive\n"
	         "  history JID [--since ISO8601]        print the archive with JID\n"
	         "  devices [JID]                        devices, fingerprints, trust\n"
	         "  fingerprint                          our device id and fingerprint\n"
	         "  trust JID DEVICE | untrust JID DEVICE\n"
	         "  uri                                  our verification URI (and QR code)\n"
	         "  verify URI                           verify a contact's devices by their URI\n"
	         "  policy [JID] [tofu|btbv|manual]      how new devices are trusted\n"
	         "  identity reset                       a new identity key for this device\n"
	         "  account add JID                      store the password in the Secret Service\n"
	         "  send JID --file PATH [TEXT]          send a file, encrypted\n"
	         "  fetch URL [--out PATH]               download an encrypted file's link\n"
	         "  join ROOM [--nick NICK]              enter a group chat, remembered\n"
	         "  send [--allow-partial] ROOM [TEXT]   send to a group chat's members\n"
	         "  members ROOM                         a room's members, devices, trust\n"
	         "  leave ROOM                           forget a group chat\n\n"
	         "Options:\n"
	         "  --jid JID[/RESOURCE]         our account (resource default: mend-RANDOM)\n"
	         "  --password-file FILE         the password is its first line\n"
	         "  --server HOST[:PORT]         connect here instead of the JID's domain\n"
	         "  --tls required|trust-any|off TLS policy (default: required)\n"
	         "  --data-dir DIR               the OMEMO store (default: "
	         "$XDG_DATA_HOME/mend/JID)\n"
	         "  --json                       one JSON object per line on stdout\n"
	         "  -v, --verbose                log the XMPP traffic to stderr (or MEND_DEBUG=1)\n"
	         "  -h, --help, --version\n\n"
	         "Defaults come from $XDG_CONFIG_HOME/mend/config, group [mend]: jid, server,\n"
	         "tls, password-file, data-dir. The password comes from --password-file, else\n"
	         "MEND_PASSWORD, else the Secret Service (mend account add JID).\n"
	         "Exit status: 0 done, 1 error, 2 usage or configuration, 3 login refused,\n"
	         "4 no connection, 5 keyring locked, 6 room message held (some members could\n"
	         "not read it; nothing sent), 75 message queued for later.\n");
}

void out_usage(enum cli_command cmd, int to_stderr)
{
	const char *text = usage_text(cmd);

	fputs(text ? text : general_usage(), to_stderr ? stderr : stdout);
}
