/*
 * main.c - `mend`, the headless OMEMO client for scripts, bots and tests:
 * reads the command line (config.c), runs one command - send, listen,
 * history, devices (over the network, conn.c), fingerprint, trust, untrust
 * (store only), account add (Secret Service); group chats in rooms.c - and
 * exits with a status a script can test (cli.h: 0 done, 1 error, 2 usage,
 * 3 login refused, 4 no connection, 5 keyring locked, 6 room message held,
 * 75 message queued for later).
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

#define SEND_TIMEOUT  30.0   /* seconds */
#define QUERY_TIMEOUT 60.0   /* history, devices */
#define MAX_TEXT      150000 /* bytes; servers refuse much larger stanzas */

/* --- shared steps ---------------------------------------------------------- */

static int open_account(struct cli *c)
{
	mend_host_ops ops;
	int r;

	cli_host_ops(&ops);
	r = mend_account_open(&c->acc, c->bare, c->data_dir, MEND_KEYRING_AUTO, &ops, c);
	if (r < 0)
		return cli_fail(c, r == MEND_ERR_KEYRING_LOCKED ? CLI_LOCKED : CLI_ERROR, r,
		                _("The OMEMO store of %s in %s cannot be opened: %s"), c->bare,
		                c->data_dir, mend_strerror(r));
	return CLI_OK;
}

int cli_open_offline(struct cli *c)
{
	int r = cli_resolve_account(c);

	return r == CLI_OK ? open_account(c) : r;
}

int cli_run_online(struct cli *c, double default_timeout)
{
	int r;

	if (c->o.timeout <= 0)
		c->o.timeout = default_timeout;
	r = cli_resolve_account(c);
	if (r == CLI_OK)
		r = cli_resolve_password(c);
	if (r == CLI_OK)
		r = open_account(c);
	if (r != CLI_OK)
		return r;
	if (c->o.timeout > 0)
		c->deadline = g_get_monotonic_time() + (int64_t)(c->o.timeout * G_USEC_PER_SEC);
	return cli_run(c);
}

/* Hands the bound stream to the core. */
int cli_start_engine(struct cli *c, unsigned flags)
{
	const char *bound = xmpp_conn_get_bound_jid(c->conn);
	int r;

	if (bound) {
		g_free(c->full);
		c->full = g_strdup(bound);
	}
	r = mend_account_connected(c->acc, c->full, flags | MEND_CONNECT_DISCO);
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r,
		                _("The OMEMO engine could not start on this connection: %s"),
		                mend_strerror(r));
	return CLI_OK;
}

void cli_common_event(struct cli *c, const mend_event *ev)
{
	switch (ev->kind) {
	case MEND_EVENT_READY:
		c->ready = 1;
		break;
	case MEND_EVENT_MESSAGE:
		if (ev->plaintext && c->o.encrypted_only)
			break; /* --encrypted-only */
		c->n_messages++;
		if (ev->file && c->o.save_dir) /* listen --save-dir: the file, saved */
			cli_save_file(c, ev);
		else
			out_message(c, ev);
		break;
	case MEND_EVENT_UNDECRYPTABLE:
		out_undecryptable(c, ev);
		break;
	case MEND_EVENT_SENT: /* an earlier queued message left */
		out_sent(c, ev->peer, ev->id, ev->n_devices, ev->n_devices2, 1);
		if (ev->text) /* devices that did not get it, and how to include them */
			out_notice(c, ev->peer, ev->text);
		break;

	case MEND_EVENT_SEND_FAILED:
		out_notice(c, ev->peer, ev->text ? ev->text : mend_strerror(ev->error));
		break;
	case MEND_EVENT_DELIVERED: /* XEP-0184: a device of the peer confirmed it */
		out_receipt(c, ev->peer, ev->id);
		break;
	case MEND_EVENT_ROOM: /* a room's state: OMEMO can be used there, or why not */
		out_room(c, ev);
		break;
	case MEND_EVENT_HELD: /* a room message waits (queued by an earlier run) */
		out_held(c, ev, 0);
		break;
	default:
		break;
	}
}

void cli_went_offline(struct cli *c)
{
	int status, network;
	char *why = cli_failure(c, &status, &network);

	cli_fail(c, status, 0, "%s", why);
	g_free(why);
}

char *cli_peer_arg(struct cli *c, const char *arg)
{
	char *bare = cli_bare_jid(arg);

	if (!bare)
		cli_fail(c, CLI_USAGE, 0, _("'%s' is not a JID; give one like bob@example.org."),
		         arg);
	return bare;
}

/* --- send ---------------------------------------------------------------- */

/* The recipient: a bare JID, or a full one to reach that resource only. */
static char *recipient_arg(struct cli *c, const char *arg)
{
	const char *slash = strchr(arg, '/');
	char *bare = cli_peer_arg(c, arg), *full;
	const char *p;

	if (!bare || !slash || !slash[1])
		return bare;
	for (p = slash + 1; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	full = *p ? NULL : g_strconcat(bare, slash, NULL);
	if (!full)
		cli_fail(c, CLI_USAGE, 0, _("'%s' is not a JID; give one like bob@example.org."),
		         arg);
	g_free(bare);
	return full;
}

static int ping_done(xmpp_conn_t *conn G_GNUC_UNUSED, xmpp_stanza_t *st G_GNUC_UNUSED,
                     void *user_data)
{
	struct cli *c = user_data;

	if (c->finished)
		return 0;
	c->confirmed = 1;
	out_sent(c, c->peer, c->msg_id, c->n_devices, c->n_devices2, 0);
	if (!c->o.wait_receipt || c->delivered)
		cli_finish(c, CLI_OK);
	return 0;
}

/* XEP-0184: a device of the recipient confirmed our message. */
static void send_delivered(struct cli *c, const mend_event *ev)
{
	if (!c->msg_id || !ev->id || strcmp(ev->id, c->msg_id) != 0 || c->delivered) {
		cli_common_event(c, ev);
		return;
	}
	c->delivered = 1;
	out_receipt(c, ev->peer, ev->id);
	if (c->confirmed)
		cli_finish(c, CLI_OK);
}

void cli_send_result(struct cli *c, const mend_event *ev)
{
	/* send --file TEXT: the link goes first; the text's outcome ends the command */
	if (c->file_id && ev->id && !strcmp(ev->id, c->file_id) && g_strcmp0(ev->id, c->msg_id)) {
		if (ev->kind == MEND_EVENT_SEND_FAILED)
			cli_fail(c, CLI_ERROR, ev->error, "%s",
			         ev->text ? ev->text : mend_strerror(ev->error));
		return;
	}
	if (!c->msg_id || !ev->id || strcmp(ev->id, c->msg_id) != 0) {
		cli_common_event(c, ev);
	} else if (ev->kind == MEND_EVENT_SEND_FAILED) {
		cli_fail(c, CLI_ERROR, ev->error, "%s",
		         ev->text ? ev->text : mend_strerror(ev->error));
	} else if (!c->sent) {
		/* it left; a round trip makes sure the server has it */
		c->sent = 1;
		c->n_devices = ev->n_devices;
		c->n_devices2 = ev->n_devices2;
		if (ev->text) /* devices that did not get it, and how to include them */
			out_notice(c, ev->peer, ev->text);
		cli_send_ping(c, ping_done);
	}
}

static void defer_result(struct cli *c, const mend_event *ev)
{
	struct cli_deferred *d = g_new0(struct cli_deferred, 1);

	d->kind = ev->kind;
	d->id = g_strdup(ev->id);
	d->peer = g_strdup(ev->peer);
	d->text = g_strdup(ev->text);
	d->error = ev->error;
	d->n_devices = ev->n_devices;
	d->n_devices2 = ev->n_devices2;
	d->room = ev->room != NULL;
	g_ptr_array_add(c->deferred, d);
}

/* The SENT / SEND_FAILED (and HELD) events kept while a send call ran, handed to fn. */
void cli_replay_deferred(struct cli *c, void (*fn)(struct cli *c, const mend_event *ev))
{
	struct cli_deferred *d;
	mend_event ev;
	guint i;

	for (i = 0; i < c->deferred->len; i++) {
		d = g_ptr_array_index(c->deferred, i);
		memset(&ev, 0, sizeof(ev));
		ev.kind = d->kind;
		ev.id = d->id;
		ev.peer = d->peer;
		ev.text = d->text;
		ev.error = d->error;
		ev.n_devices = d->n_devices;
		ev.n_devices2 = d->n_devices2;
		ev.trust = -1;
		ev.room = d->room ? d->peer : NULL;
		fn(c, &ev);
	}
	g_ptr_array_set_size(c->deferred, 0);
}

void cli_send_event(struct cli *c, const mend_event *ev)
{
	if (ev->kind == MEND_EVENT_DELIVERED)
		send_delivered(c, ev);
	else if (ev->kind != MEND_EVENT_SENT && ev->kind != MEND_EVENT_SEND_FAILED &&
	         ev->kind != MEND_EVENT_HELD)
		cli_common_event(c, ev);
	else if (c->in_send)
		defer_result(c, ev); /* its id is not known before the call returns */
	else
		cli_send_result(c, ev);
}

/*
 * Gives the message to the core (a room's queue for a room we are in or --room, else the
 * contact's), which sends it or keeps it queued; the events the call raised go to replay.
 */
int cli_queue_message(struct cli *c, void (*replay)(struct cli *c, const mend_event *ev))
{
	char *id = NULL;
	int r;

	c->in_send = 1;
	if (c->o.room || (!strchr(c->peer, '/') && cli_room_nick(c, c->peer, NULL) > 0))
		r = mend_account_room_send(c->acc, c->peer, c->text,
		                           c->o.allow_partial ? MEND_SEND_ALLOW_PARTIAL : 0, &id);
	else
		r = mend_account_send(c->acc, c->peer, c->text, &id);
	c->in_send = 0;
	if (r < 0) {
		mend_free(id);
		g_ptr_array_set_size(c->deferred, 0);
		return r;
	}
	c->msg_id = id;
	cli_replay_deferred(c, replay);
	return r;
}

/* send --file: the link went to the queue as message `id`; the text, if any, follows it. */
void cli_file_queued(struct cli *c, const char *id)
{
	int r;

	c->file_id = g_strdup(id);
	c->in_send = 0;
	if (!c->text) {
		c->msg_id = g_strdup(id);
		cli_replay_deferred(c, cli_send_result);
		return;
	}
	r = cli_queue_message(c, cli_send_result);
	if (r < 0)
		cli_fail(c, CLI_ERROR, r, _("The file went to %s, but the text cannot be sent: %s"),
		         c->peer, mend_strerror(r));
}

static void report_queued(struct cli *c, const char *why)
{
	char *text;

	text = g_strdup_printf(_("%s The message to %s is not sent yet: it stays queued and will "
	                         "be sent the next time mend connects."),
	                       why, c->peer);
	out_queued(c, c->peer, c->msg_id, text);
	cli_finish(c, CLI_QUEUED);
	g_free(text);
}

static void queue_offline(struct cli *c, const char *why, int status)
{
	int r = cli_queue_message(c, cli_send_result);

	if (r < 0)
		cli_fail(c, status, r, _("%s The message could not be queued either: %s"), why,
		         mend_strerror(r));
	else if (!c->finished)
		report_queued(c, why);
}

/* A message to a contact (not a room): to the core's queue, which sends it. */
void cli_send_direct(struct cli *c)
{
	int r;

	if (c->o.file) { /* the link is queued once the file is uploaded */
		cli_send_file(c);
		return;
	}
	r = cli_queue_message(c, cli_send_result);
	if (r < 0)
		cli_fail(c, CLI_ERROR, r, _("The message to %s cannot be sent: %s"), c->peer,
		         mend_strerror(r));
}

static void send_online(struct cli *c)
{
	if (cli_start_engine(c, 0) != CLI_OK)
		return;
	if (!cli_room_send_start(c)) /* a group chat is the room code's */
		cli_send_direct(c);
}

/* The command ends before the server confirmed the message: why says why. */
static void send_give_up(struct cli *c, const char *why, int status, int network)
{
	if (c->o.file && !c->file_id) /* files are never queued before their upload */
		cli_fail(c, status, 0, _("%s The file was not sent."), why);
	else if (c->confirmed) /* --wait-receipt */
		cli_fail(c, CLI_ERROR, 0,
		         _("%s The server has the message to %s, but no device of %s confirmed "
		           "it yet (it may be offline, or its client sends no receipts)."),
		         why, c->peer, c->peer);
	else if (c->sent)
		cli_fail(c, CLI_ERROR, 0,
		         _("%s The message to %s left, but the server did not confirm it, so it "
		           "may not have arrived."),
		         why, c->peer);
	else if (c->msg_id)
		report_queued(c, why);
	else if (network)
		queue_offline(c, why, status);
	else
		cli_fail(c, status, 0, _("%s The message was not sent."), why);
}

static void send_offline(struct cli *c)
{
	int status, network;
	char *why = cli_failure(c, &status, &network);

	send_give_up(c, why, status, network);
	g_free(why);
}

static void send_deadline(struct cli *c)
{
	char *why;

	if (c->ever_online)
		why = g_strdup_printf(_("No answer within %g seconds."), c->o.timeout);
	else
		why = g_strdup_printf(_("mend could not connect to %s within %g seconds."),
		                      c->host ? c->host : c->domain, c->o.timeout);
	send_give_up(c, why, CLI_CONNECT, 1);
	g_free(why);
}

static void send_interrupt(struct cli *c)
{
	send_give_up(c, _("Interrupted."), CLI_INTERRUPTED, 1);
}

static char *read_stdin(void)
{
	GString *s = g_string_new(NULL);
	char buf[4096];
	size_t n;

	if (isatty(STDIN_FILENO))
		fputs(_("Type the message, then Ctrl-D.\n"), stderr);
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0 && s->len <= MAX_TEXT)
		g_string_append_len(s, buf, (gssize)n);
	return g_string_free(s, FALSE);
}

static int read_text(struct cli *c)
{
	size_t n;

	/* the body exactly as given; from stdin, only the newline ending its last line goes */
	if (c->o.n_args > 1) {
		c->text = g_strjoinv(" ", c->o.args + 1);
		n = strlen(c->text);
	} else {
		c->text = read_stdin();
		n = strlen(c->text);
		if (n > 0 && c->text[n - 1] == '\n')
			c->text[--n] = '\0';
	}
	if (n == 0)
		return cli_fail(c, CLI_USAGE, 0,
		                _("Nothing to send: give the text after the JID, or on stdin."));
	if (n > MAX_TEXT)
		return cli_fail(c, CLI_USAGE, 0,
		                _("The text is too long (over %d bytes); send it in parts."),
		                MAX_TEXT);
	if (!g_utf8_validate(c->text, -1, NULL))
		return cli_fail(c, CLI_USAGE, 0,
		                _("The text is not valid UTF-8; convert it first."));
	return CLI_OK;
}

static int cmd_send(struct cli *c)
{
	int r;

	c->peer = recipient_arg(c, c->o.args[0]);
	if (!c->peer)
		return CLI_USAGE;
	r = c->o.file && c->o.n_args < 2 ? CLI_OK : read_text(c);
	if (r != CLI_OK)
		return r;
	c->on_online = send_online;
	c->on_offline = send_offline;
	c->on_event = cli_send_event;
	c->on_deadline = send_deadline;
	c->on_interrupt = send_interrupt;
	r = cli_run_online(c, SEND_TIMEOUT);
	cli_room_send_done(c);
	return r;
}

/* --- listen ---------------------------------------------------------------- */

/*
 * Initial presence goes out before the archive query: the server then hands
 * over (and deletes) what it kept offline; had we queried the archive first,
 * Prosody would keep it (mod_mam skips the offline broadcast for sessions that
 * asked the archive) and the offline store would grow for ever. What arrives
 * both ways is deduped by stanza-id (XEP-0359). Nothing is handled before the
 * engine starts: stanzas are read only once this returns.
 */
static void listen_online(struct cli *c)
{
	char *caps = NULL, *presence;

	/* XEP-0115 caps: the server then asks what we do and pushes device lists (+notify) */
	mend_account_caps_xml(c->acc, &caps);
	presence = g_strdup_printf("<presence>%s</presence>", caps ? caps : "");
	cli_send_raw(c, presence);
	g_free(presence);
	mend_free(caps);
	if (cli_start_engine(c, MEND_CONNECT_CARBONS | MEND_CONNECT_CATCHUP) == CLI_OK)
		cli_room_listen_join(c);
}

static void listen_event(struct cli *c, const mend_event *ev)
{
	cli_common_event(c, ev);
	if (ev->kind == MEND_EVENT_READY)
		out_ready(c);
	else if (ev->kind == MEND_EVENT_CATCHUP_DONE && ev->room)
		out_room(c, ev);
	else if (ev->kind == MEND_EVENT_CATCHUP_DONE && c->o.json)
		out_status(c, "catchup_done", _("Caught up with what came while offline."));
	else if (ev->kind == MEND_EVENT_DEVICELIST)
		out_devicelist(c, ev->peer, ev->n_devices);
	else if (ev->kind == MEND_EVENT_MESSAGE && c->o.count && c->n_messages >= c->o.count)
		cli_finish(c, CLI_OK);
}

static void listen_tick(struct cli *c)
{
	if (ferror(stdout)) /* nobody reads us any more */
		cli_finish(c, CLI_ERROR);
}

static void listen_deadline(struct cli *c)
{
	if (c->o.count && c->n_messages < c->o.count)
		cli_fail(c, CLI_ERROR, 0,
		         ngettext("Only %ld of %ld message arrived within %g seconds.",
		                  "Only %ld of %ld messages arrived within %g seconds.",
		                  c->o.count),
		         c->n_messages, c->o.count, c->o.timeout);
	else
		cli_finish(c, CLI_OK);
}

static void listen_interrupt(struct cli *c)
{
	cli_finish(c, CLI_OK);
}

static int cmd_listen(struct cli *c)
{
	c->on_online = listen_online;
	c->on_offline = cli_went_offline;
	c->on_event = listen_event;
	c->on_tick = listen_tick;
	c->on_deadline = listen_deadline;
	c->on_interrupt = listen_interrupt;
	return cli_run_online(c, 0);
}

/* --- history ---------------------------------------------------------------- */

static void history_online(struct cli *c)
{
	cli_start_engine(c, 0);
}

static void history_event(struct cli *c, const mend_event *ev)
{
	int r;

	if (ev->kind == MEND_EVENT_HISTORY_DONE) {
		if (ev->error) {
			cli_fail(c, CLI_ERROR, ev->error, "%s",
			         ev->text ? ev->text : mend_strerror(ev->error));
			return;
		}
		out_history_done(c);
		cli_finish(c, CLI_OK);
		return;
	}
	cli_common_event(c, ev);
	if (ev->kind != MEND_EVENT_READY || c->requested)
		return;
	c->requested = 1;
	cli_room_history_start(c); /* a remembered room: its archive */
	r = mend_account_history(c->acc, c->peer, c->o.since);
	if (r < 0)
		cli_fail(c, CLI_ERROR, r, _("The archive with %s cannot be fetched: %s"), c->peer,
		         mend_strerror(r));
}

void cli_query_deadline(struct cli *c)
{
	cli_fail(c, CLI_ERROR, 0,
	         _("The server did not answer within %g seconds; try again, or allow more time "
	           "with --timeout."),
	         c->o.timeout);
}

static int cmd_history(struct cli *c)
{
	c->peer = cli_peer_arg(c, c->o.args[0]);
	if (!c->peer)
		return CLI_USAGE;
	c->on_online = history_online;
	c->on_offline = cli_went_offline;
	c->on_event = history_event;
	c->on_deadline = cli_query_deadline;
	return cli_run_online(c, QUERY_TIMEOUT);
}

/* --- devices ------------------------------------------------------------------- */

static void devices_online(struct cli *c)
{
	int r;

	if (cli_start_engine(c, 0) != CLI_OK)
		return;
	r = mend_account_refresh_devices(c->acc, c->peer);
	if (r < 0)
		cli_fail(c, CLI_ERROR, r, _("The devices of %s cannot be fetched: %s"), c->peer,
		         mend_strerror(r));
	else
		c->requested = 1;
}

static void devices_print(struct cli *c)
{
	mend_device_info *infos = NULL;
	uint32_t own = mend_account_device_id(c->acc);
	int self = strcmp(c->peer, c->bare) == 0;
	size_t i, n = 0;
	int r;

	r = mend_account_device_infos(c->acc, c->peer, &infos, &n);
	if (r < 0) {
		cli_fail(c, CLI_ERROR, r, _("The devices of %s cannot be listed: %s"), c->peer,
		         mend_strerror(r));
		return;
	}
	for (i = 0; i < n; i++)
		out_device(c, c->peer, &infos[i], self && infos[i].id == own);
	out_devices_done(c, c->peer, n);
	mend_free(infos);
	cli_finish(c, CLI_OK);
}

static void devices_tick(struct cli *c)
{
	/* READY: our own device list holds this device too */
	if (c->requested && c->ready && c->online && !mend_account_busy(c->acc))
		devices_print(c);
}

static int cmd_devices(struct cli *c)
{
	int r = cli_resolve_account(c);

	if (r != CLI_OK)
		return r;
	c->peer = c->o.n_args ? cli_peer_arg(c, c->o.args[0]) : g_strdup(c->bare);
	if (!c->peer)
		return CLI_USAGE;
	c->on_online = devices_online;
	c->on_offline = cli_went_offline;
	c->on_event = cli_common_event;
	c->on_tick = devices_tick;
	c->on_deadline = cli_query_deadline;
	return cli_run_online(c, QUERY_TIMEOUT);
}

/* --- offline commands ------------------------------------------------------------ */

static int cmd_fingerprint(struct cli *c)
{
	char fp[65];
	int r;

	r = cli_open_offline(c);
	if (r != CLI_OK)
		return r;
	r = mend_account_fingerprint(c->acc, fp);
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, _("Our fingerprint cannot be read: %s"),
		                mend_strerror(r));
	out_fingerprint(c, mend_account_device_id(c->acc), fp);
	return CLI_OK;
}

static int device_arg(struct cli *c, const char *arg, uint32_t *out)
{
	char *end;
	guint64 v;

	v = g_ascii_strtoull(arg, &end, 10);
	if (end == arg || *end || v < 1 || v > 0x7fffffff)
		return cli_fail(c, CLI_USAGE, 0,
		                _("'%s' is not a device id (a number from 1 to 2147483647); "
		                  "'mend devices JID' lists them."),
		                arg);
	*out = (uint32_t)v;
	return CLI_OK;
}

/* A device that showed a new key: its fingerprints and the command that accepts one (exit 2). */
static int key_changed(struct cli *c, const char *peer, uint32_t device)
{
	mend_device_info *infos = NULL;
	size_t i, n = 0;

	if (mend_account_device_infos(c->acc, peer, &infos, &n) == MEND_OK)
		for (i = 0; i < n; i++)
			if (infos[i].id == device)
				out_device(c, peer, &infos[i], 0);
	mend_free(infos);
	return cli_fail(c, CLI_USAGE, MEND_ERR_KEY_CHANGED,
	                _("Device %u of %s showed a new identity key, so trust must name the key: "
	                  "mend trust %s %u FINGERPRINT (nothing was changed)."),
	                device, peer, peer, device);
}

static int trust_failed(struct cli *c, const char *peer, uint32_t device, int r)
{
	if (r == MEND_ERR_NOT_FOUND)
		return cli_fail(c, CLI_ERROR, r,
		                _("mend does not know the key of device %u of %s yet; run "
		                  "'mend devices %s' first."),
		                device, peer, peer);
	if (r == MEND_ERR_KEY_CHANGED)
		return key_changed(c, peer, device);
	if (r == MEND_ERR_INVALID_ARG)
		return cli_fail(
		    c, CLI_USAGE, r,
		    _("A fingerprint is 64 hex digits (spaces allowed), as 'mend devices "
		      "%s' shows it."),
		    peer);
	if (r == MEND_ERR_VERIFY_MISMATCH)
		return cli_fail(
		    c, CLI_ERROR, r,
		    _("Device %u of %s never showed a key with that fingerprint; nothing "
		      "was changed. 'mend devices %s' shows its keys."),
		    device, peer, peer);
	return cli_fail(c, CLI_ERROR, r, _("The trust in device %u of %s cannot be set: %s"),
	                device, peer, mend_strerror(r));
}

/* trust JID DEVICE [FINGERPRINT]: the fingerprint (64 hex digits, maybe in groups) names the key.
 */
static int set_trust(struct cli *c, const char *peer, uint32_t device, mend_trust trust)
{
	char *fp = NULL;
	int r;

	if (c->o.n_args > 2) {
		fp = g_strjoinv(" ", c->o.args + 2);
		/* messages held under that key are shown once it is accepted */
		c->on_event = cli_common_event;
		r = mend_account_trust_key(c->acc, peer, device, fp);
		g_free(fp);
	} else {
		r = mend_account_set_trust(c->acc, peer, device, trust);
	}
	if (r < 0)
		return trust_failed(c, peer, device, r);
	out_trust(c, peer, device, trust);
	return CLI_OK;
}

static int cmd_trust(struct cli *c)
{
	mend_trust trust = c->o.command == CMD_TRUST ? MEND_TRUST_VERIFIED : MEND_TRUST_UNTRUSTED;
	uint32_t device = 0;
	int r;

	c->peer = cli_peer_arg(c, c->o.args[0]);
	if (!c->peer)
		return CLI_USAGE;
	r = device_arg(c, c->o.args[1], &device);
	if (r == CLI_OK)
		r = cli_open_offline(c);
	if (r == CLI_OK)
		r = set_trust(c, c->peer, device, trust);
	return r;
}

/* --- trust: the verification URI, policies, a new identity ---------------------- */

static int cmd_uri(struct cli *c)
{
	char *uri = NULL;
	int r = cli_open_offline(c);

	if (r != CLI_OK)
		return r;
	r = mend_account_verification_uri(c->acc, &uri);
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, _("Our verification URI cannot be made: %s"),
		                mend_strerror(r));
	out_text(c, "uri", "uri", uri);
	out_qr(c, uri);
	mend_free(uri);
	return CLI_OK;
}

static int cmd_verify(struct cli *c)
{
	unsigned n = 0;
	char *line;
	int r = cli_open_offline(c);

	if (r != CLI_OK)
		return r;
	r = mend_account_verify_uri(c->acc, c->o.args[0], &n);
	if (r == MEND_ERR_INVALID_ARG)
		return cli_fail(c, CLI_USAGE, r,
		                _("That is not a verification URI; it looks like "
		                  "xmpp:bob@example.org?omemo-sid-123=<64 hex digits>."));
	if (r == MEND_ERR_NOT_FOUND)
		return cli_fail(c, CLI_ERROR, r,
		                _("None of the devices in that URI is known yet; run 'mend devices "
		                  "JID' first, then verify again."));
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, "%s", mend_strerror(r));
	line = g_strdup_printf(ngettext("%u device verified.", "%u devices verified.", n), n);
	out_text(c, "verified", "text", line);
	g_free(line);
	return CLI_OK;
}

static int cmd_policy(struct cli *c)
{
	const char *a = c->o.n_args > 0 ? c->o.args[0] : NULL,
	           *b = c->o.n_args > 1 ? c->o.args[1] : NULL;
	const char *jid = a && mend_policy_parse(a) < 0 ? a : NULL, *name = jid ? b : a;
	char *line;
	int p = name ? mend_policy_parse(name) : 0, r = cli_open_offline(c);

	if (r != CLI_OK)
		return r;
	if (name && p < 0)
		return cli_fail(c, CLI_USAGE, 0,
		                _("'%s' is not a policy; use tofu, btbv or manual."), name);
	if (name) {
		r = mend_account_set_policy(c->acc, jid, (mend_policy)p);
		if (r < 0)
			return cli_fail(c, CLI_ERROR, r, "%s", mend_strerror(r));
	}
	line = g_strdup_printf(_("Trust policy for %s: %s"), jid ? jid : _("this account"),
	                       mend_policy_name(mend_account_get_policy(c->acc, jid)));
	out_text(c, "policy", "text", line);
	g_free(line);
	return CLI_OK;
}

static int cmd_identity(struct cli *c)
{
	int r;

	if (strcmp(c->o.args[0], "reset") != 0)
		return cli_fail(c, CLI_USAGE, 0, _("Usage: mend identity reset"));
	r = cli_open_offline(c);
	if (r != CLI_OK)
		return r;
	r = mend_account_reset_identity(c->acc);
	if (r < 0)
		return cli_fail(c, CLI_ERROR, r, _("The new identity key cannot be made: %s"),
		                mend_strerror(r));
	out_text(c, "identity", "text",
	         _("This device has a new identity key; it is published the next time mend "
	           "connects. Contacts must accept it before they encrypt to this device again."));
	return CLI_OK;
}

static int run_command(struct cli *c)
{
	switch (c->o.command) {
	case CMD_SEND:
		return cmd_send(c);
	case CMD_LISTEN:
		return cmd_listen(c);
	case CMD_HISTORY:
		return cmd_history(c);
	case CMD_DEVICES:
		return cmd_devices(c);
	case CMD_FINGERPRINT:
		return cmd_fingerprint(c);
	case CMD_TRUST:
	case CMD_UNTRUST:
		return cmd_trust(c);
	case CMD_URI:
		return cmd_uri(c);
	case CMD_VERIFY:
		return cmd_verify(c);
	case CMD_POLICY:
		return cmd_policy(c);
	case CMD_IDENTITY:
		return cmd_identity(c);
	case CMD_ACCOUNT:
		return cli_account_add(c, c->o.args[1]);
	case CMD_JOIN:
		return cli_cmd_join(c);
	case CMD_LEAVE:
		return cli_cmd_leave(c);
	case CMD_MEMBERS:
		return cli_cmd_members(c);
	case CMD_FETCH:
		return cli_fetch(c);
	default:
		out_usage(CMD_NONE, 1);
		return CLI_USAGE;
	}
}

int main(int argc, char **argv)
{
	const char *debug = getenv("MEND_DEBUG");
	struct cli c;
	int status;

	memset(&c, 0, sizeof(c));
	setlocale(LC_ALL, "");
	mend_i18n_init();
	textdomain("mend");
	c.o.verbose = debug && *debug && strcmp(debug, "0") != 0;
	c.deferred = g_ptr_array_new_with_free_func(cli_deferred_free);
	xmpp_initialize();
	status = cli_parse_args(&c, argc, argv);
	if (status == CLI_OK)
		status = cli_load_config(&c);
	if (status == CLI_OK)
		status = run_command(&c);
	cli_free(&c);
	xmpp_shutdown();
	return status == CLI_HELP ? 0 : status;
}
