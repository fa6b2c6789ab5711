/*
 * conn.c - the XMPP side of `mend`: one libstrophe connection driven with
 * xmpp_run_once() until the command is finished (deadlines and signals are
 * checked between turns), every stanza handed to the core as text, the
 * core's host ops (send a stanza, notices, logs, events) answered, and a
 * failed or lost connection turned into a sentence the user can act on.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

#define TURN_MS   50
#define HANGUP_US (2 * G_USEC_PER_SEC)

/* Set by SIGINT / SIGTERM; the loop stops cleanly when it sees it. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

int cli_stopping(void)
{
	return stop_signal != 0;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* --- libstrophe's log: shown with -v / MEND_DEBUG, read for failures ---- */

static void note_log(struct cli *c, xmpp_log_level_t level, const char *area, const char *msg)
{
	int e;

	if (sscanf(msg, "connection failed, error %d", &e) == 1 && e > 0)
		c->conn_error = e;
	else if (g_str_has_prefix(msg, "SASL ") && strstr(msg, "auth failed"))
		c->sasl_failed = 1;
	else if (strcmp(area, "auth") == 0 && level == XMPP_LEVEL_ERROR)
		c->auth_impossible = 1;
	else if (strstr(msg, "TLS is not supported, but set as mandatory"))
		c->tls_missing = 1;
	else if (g_str_has_prefix(msg, "Couldn't start TLS") ||
	         (strcmp(area, "tls") == 0 && level == XMPP_LEVEL_ERROR))
		c->tls_failed = 1;
}

static void strophe_log(void *user_data, xmpp_log_level_t level, const char *area, const char *msg)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	struct cli *c = user_data;

	note_log(c, level, area, msg);
	if (c->o.verbose)
		fprintf(stderr, "xmpp %s %s: %s\n", names[level & 3], area, msg);
}

/* --- host ops ------------------------------------------------------------- */

int cli_send_raw(struct cli *c, const char *xml)
{
	if (!c->conn || !c->online)
		return -1;
	xmpp_send_raw(c->conn, xml, strlen(xml));
	return 0;
}

static int op_send_stanza(const char *xml, void *user_data)
{
	return cli_send_raw(user_data, xml);
}

static void op_show_notice(mend_notice_kind kind G_GNUC_UNUSED, const char *jid, const char *text,
                           void *user_data)
{
	out_notice(user_data, jid, text);
}

static void op_log(mend_log_level level, const char *text, void *user_data)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	struct cli *c = user_data;

	if (c->o.verbose)
		fprintf(stderr, "mend %s: %s\n", names[level & 3], text);
}

static void op_event(const mend_event *ev, void *user_data)
{
	struct cli *c = user_data;

	if (ev->kind == MEND_EVENT_NOTICE)
		out_notice(c, ev->peer, ev->text);
	else if (c->on_event)
		c->on_event(c, ev);
}

void cli_host_ops(mend_host_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->send_stanza = op_send_stanza;
	ops->show_notice = op_show_notice;
	ops->log = op_log;
	ops->event = op_event;
}

/* --- stanzas in ---------------------------------------------------------- */

static void add_child(xmpp_stanza_t *parent, const char *name, const char *ns)
{
	xmpp_stanza_t *child = xmpp_stanza_new(xmpp_stanza_get_context(parent));

	xmpp_stanza_set_name(child, name);
	if (ns)
		xmpp_stanza_set_ns(child, ns);
	xmpp_stanza_add_child(parent, child);
	xmpp_stanza_release(child);
}

static void fill_error(xmpp_stanza_t *reply)
{
	xmpp_stanza_t *err = xmpp_stanza_new(xmpp_stanza_get_context(reply));

	xmpp_stanza_set_name(err, "error");
	xmpp_stanza_set_type(err, "cancel");
	add_child(err, "service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas");
	xmpp_stanza_add_child(reply, err);
	xmpp_stanza_release(err);
}

/* RFC 6120 §8.2.3: every get/set gets an answer; the core answered ping and disco#info. */
static void answer_iq(struct cli *c, xmpp_stanza_t *st)
{
	const char *type = xmpp_stanza_get_type(st), *id = xmpp_stanza_get_id(st);
	const char *from = xmpp_stanza_get_from(st);
	xmpp_stanza_t *reply;

	if (!id || !type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
		return;
	reply = xmpp_iq_new(c->ctx, "error", id);
	fill_error(reply);
	if (from)
		xmpp_stanza_set_to(reply, from);
	xmpp_send(c->conn, reply);
	xmpp_stanza_release(reply);
}

/* XEP-0203: the <delay/> stamp of an offline message, or NULL. */
static const char *delay_stamp(xmpp_stanza_t *st)
{
	xmpp_stanza_t *d = xmpp_stanza_get_child_by_name_and_ns(st, "delay", "urn:xmpp:delay");

	return d ? xmpp_stanza_get_attribute(d, "stamp") : NULL;
}

/*
 * A chat message the core left alone: it came unencrypted. It is shown, marked
 * [unencrypted] ("encrypted": false), never silently dropped nor passed as encrypted.
 */
static void plaintext_message(struct cli *c, xmpp_stanza_t *st)
{
	const char *type = xmpp_stanza_get_type(st), *from = xmpp_stanza_get_from(st);
	xmpp_stanza_t *b = xmpp_stanza_get_child_by_name(st, "body");
	char *body = b ? xmpp_stanza_get_text(b) : NULL, *sender = from ? cli_bare_jid(from) : NULL;
	mend_event ev = {.kind = MEND_EVENT_MESSAGE,
	                 .peer = sender,
	                 .from = sender,
	                 .body = body,
	                 .timestamp = delay_stamp(st),
	                 .id = xmpp_stanza_get_id(st),
	                 .trust = -1,
	                 .announced = 1,
	                 .plaintext = 1};

	if (body && sender && c->on_event &&
	    (!type || !strcmp(type, "chat") || !strcmp(type, "normal")))
		c->on_event(c, &ev);
	g_free(sender);
	if (body)
		xmpp_free(c->ctx, body);
}

static int on_stanza(xmpp_conn_t *conn G_GNUC_UNUSED, xmpp_stanza_t *st, void *user_data)
{
	struct cli *c = user_data;
	const char *name = xmpp_stanza_get_name(st);
	char *xml = NULL;
	size_t len;
	int r;

	if (!c->acc || xmpp_stanza_to_text(st, &xml, &len) != XMPP_EOK)
		return 1;
	r = mend_account_handle_stanza(c->acc, xml);
	if (r < 0 && c->o.verbose)
		fprintf(stderr, "mend: a stanza was rejected: %s\n", mend_strerror(r));
	if (r == 0 && name && strcmp(name, "iq") == 0)
		answer_iq(c, st);
	else if (r == 0 && name && strcmp(name, "message") == 0)
		plaintext_message(c, st);
	xmpp_free(c->ctx, xml);
	return 1;
}

/* --- the connection ------------------------------------------------------- */

static void went_offline(struct cli *c)
{
	int was = c->online;

	c->online = 0;
	if (was)
		mend_account_disconnected(c->acc);
	if (c->finished)
		return;
	if (c->on_offline)
		c->on_offline(c);
	else
		cli_finish(c, CLI_CONNECT);
}

static void on_conn(xmpp_conn_t *conn G_GNUC_UNUSED, xmpp_conn_event_t event, int error,
                    xmpp_stream_error_t *stream_error, void *user_data)
{
	struct cli *c = user_data;

	if (event == XMPP_CONN_CONNECT) {
		c->online = 1;
		c->ever_online = 1;
		if (c->on_online && !c->finished)
			c->on_online(c);
		return;
	}
	if (error)
		c->conn_error = error;
	if (stream_error && !c->has_stream_error) {
		c->has_stream_error = 1;
		c->stream_error = stream_error->type;
		c->stream_text = g_strdup(stream_error->text);
	}
	went_offline(c);
}

void cli_finish(struct cli *c, int status)
{
	if (c->finished)
		return;
	c->finished = 1;
	c->status = status;
}

void cli_send_ping(struct cli *c, xmpp_handler done)
{
	xmpp_stanza_t *iq;

	g_free(c->ping_id);
	c->ping_id = g_strdup_printf("mend-ping-%08x", g_random_int());
	iq = xmpp_iq_new(c->ctx, "get", c->ping_id);
	xmpp_stanza_set_to(iq, c->domain);
	add_child(iq, "ping", "urn:xmpp:ping");
	xmpp_id_handler_add(c->conn, done, c->ping_id, c);
	xmpp_send(c->conn, iq);
	xmpp_stanza_release(iq);
}

static int conn_setup(struct cli *c)
{
	c->log.handler = strophe_log;
	c->log.userdata = c;
	c->ctx = xmpp_ctx_new(NULL, &c->log);
	c->conn = c->ctx ? xmpp_conn_new(c->ctx) : NULL;
	if (!c->conn)
		return cli_fail(c, CLI_ERROR, MEND_ERR_NOMEM, "%s", mend_strerror(MEND_ERR_NOMEM));
	xmpp_conn_set_flags(c->conn, c->xmpp_flags);
	xmpp_conn_set_jid(c->conn, c->full);
	xmpp_conn_set_pass(c->conn, c->password);
	xmpp_handler_add(c->conn, on_stanza, NULL, NULL, NULL, c);
	return CLI_OK;
}

static void interrupted(struct cli *c)
{
	if (c->on_interrupt)
		c->on_interrupt(c);
	else
		cli_fail(c, CLI_INTERRUPTED, 0, _("Interrupted before the command finished."));
}

static void loop(struct cli *c)
{
	while (!c->finished) {
		xmpp_run_once(c->ctx, TURN_MS);
		if (!c->finished && stop_signal)
			interrupted(c);
		if (!c->finished && c->online && c->acc)
			mend_account_tick(c->acc);
		if (!c->finished && c->on_tick)
			c->on_tick(c);
		if (!c->finished && c->deadline && g_get_monotonic_time() >= c->deadline) {
			if (c->on_deadline)
				c->on_deadline(c);
			else
				cli_finish(c, CLI_OK);
		}
	}
}

/* Closes the stream and waits a moment for the server to close it too. */
static void hang_up(struct cli *c)
{
	int64_t until = g_get_monotonic_time() + HANGUP_US;

	if (!xmpp_conn_is_disconnected(c->conn))
		xmpp_disconnect(c->conn);
	while (!xmpp_conn_is_disconnected(c->conn) && g_get_monotonic_time() < until)
		xmpp_run_once(c->ctx, TURN_MS);
	if (c->online) {
		c->online = 0;
		mend_account_disconnected(c->acc);
	}
}

int cli_run(struct cli *c)
{
	install_signals();
	if (conn_setup(c) != CLI_OK)
		goto out_release;
	if (xmpp_connect_client(c->conn, c->host, c->port, on_conn, c) != XMPP_EOK)
		went_offline(c);
	else
		loop(c);
	hang_up(c);
out_release:
	if (c->conn)
		xmpp_conn_release(c->conn);
	if (c->ctx)
		xmpp_ctx_free(c->ctx);
	c->conn = NULL;
	c->ctx = NULL;
	return c->status;
}

/* --- what went wrong, in words -------------------------------------------- */

static const char *stream_condition(int type)
{
	static const char *const names[] = {"bad-format",
	                                    "bad-namespace-prefix",
	                                    "conflict",
	                                    "connection-timeout",
	                                    "host-gone",
	                                    "host-unknown",
	                                    "improper-addressing",
	                                    "internal-server-error",
	                                    "invalid-from",
	                                    "invalid-id",
	                                    "invalid-namespace",
	                                    "invalid-xml",
	                                    "not-authorized",
	                                    "policy-violation",
	                                    "remote-connection-failed",
	                                    "resource-constraint",
	                                    "restricted-xml",
	                                    "see-other-host",
	                                    "system-shutdown",
	                                    "undefined-condition",
	                                    "unsupported-encoding",
	                                    "unsupported-stanza-type",
	                                    "unsupported-version",
	                                    "not-well-formed"};

	if (type < 0 || (size_t)type >= G_N_ELEMENTS(names))
		return "undefined-condition";
	return names[type];
}

static char *stream_failure(struct cli *c, const char *where)
{
	const char *cond = stream_condition(c->stream_error);

	if (c->stream_error == XMPP_SE_CONFLICT)
		return g_strdup_printf(
		    _("Another client logged in as %s and took over this "
		      "connection; give each mend its own resource with --jid %s/NAME."),
		    c->full, c->bare);
	if (c->stream_error == XMPP_SE_HOST_UNKNOWN)
		return g_strdup_printf(_("The server at %s does not serve the domain %s; check the "
		                         "JID and --server."),
		                       where, c->domain);
	return g_strdup_printf(_("The server %s closed the stream (%s%s%s); try again later."),
	                       where, cond, c->stream_text ? ": " : "",
	                       c->stream_text ? c->stream_text : "");
}

static char *auth_failure(struct cli *c, const char *where)
{
	if (c->sasl_failed || (c->has_stream_error && c->stream_error == XMPP_SE_NOT_AUTHORIZED))
		return g_strdup_printf(
		    _("The server refused the password for %s; check it "
		      "(--password-file, MEND_PASSWORD, or 'mend account add %s')."),
		    c->bare, c->bare);
	return g_strdup_printf(
	    _("The server %s offers no way to log in that mend can use on this "
	      "connection (with --tls off, it may refuse passwords without TLS)."),
	    where);
}

static char *network_failure(struct cli *c, const char *where)
{
	const char *why = c->conn_error ? g_strerror(c->conn_error) : NULL;

	if (c->ever_online)
		return g_strdup_printf(_("The connection to %s was lost (%s)."), where,
		                       why ? why : _("the server closed it"));
	return g_strdup_printf(_("mend could not connect to %s (%s); check that the server is "
	                         "running and its address (--server HOST[:PORT])."),
	                       where, why ? why : _("no answer"));
}

/*
 * A sentence for why the connection failed or ended (g_free); *status is the
 * exit status, *network 1 when it is worth trying again later as is.
 */
char *cli_failure(struct cli *c, int *status, int *network)
{
	char *where, *s;

	where = c->port ? g_strdup_printf("%s:%u", c->host, c->port)
	                : g_strdup(c->host ? c->host : c->domain);
	*status = CLI_CONNECT;
	*network = 0;
	if (c->sasl_failed || c->auth_impossible ||
	    (c->has_stream_error && c->stream_error == XMPP_SE_NOT_AUTHORIZED)) {
		*status = CLI_AUTH;
		s = auth_failure(c, where);
	} else if (c->tls_missing) {
		s = g_strdup_printf(_("The server %s does not offer TLS, so mend did not send the "
		                      "password; use --tls off only on a network you trust."),
		                    where);
	} else if (c->tls_failed) {
		s = g_strdup_printf(
		    _("The TLS connection to %s failed (its certificate could not be "
		      "verified); fix the certificate, or use --tls trust-any to "
		      "accept any certificate."),
		    where);
	} else if (c->has_stream_error) {
		s = stream_failure(c, where);
	} else {
		*network = 1;
		s = network_failure(c, where);
	}
	g_free(where);
	return s;
}
