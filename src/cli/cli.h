/*
 * cli.h - what the parts of `mend`, the headless client, share: the options,
 * the one `struct cli` that holds a run (account, connection, command
 * state), the exit statuses, and the functions each file offers the others.
 *
 * main.c runs the commands, config.c turns argv + the config file into
 * options, a JID, a data dir and a password, conn.c drives libstrophe and
 * the core's host ops, output.c prints (human lines or JSON lines).
 */
#ifndef MEND_CLI_H
#define MEND_CLI_H

#include <libintl.h>
#include <stdint.h>
#include <glib.h>
#include <strophe.h>
#include <mend/mend.h>

#define _(s) gettext(s)

/* Exit statuses (the command-line contract). */
enum cli_status {
	CLI_OK = 0,
	CLI_ERROR = 1,
	CLI_USAGE = 2,
	CLI_AUTH = 3,
	CLI_CONNECT = 4,
	CLI_LOCKED = 5,  /* the keyring holding the store key stayed locked */
	CLI_HELD = 6,    /* a room message was not sent: some members could not read it */
	CLI_QUEUED = 75, /* EX_TEMPFAIL: the message waits in the queue */
	CLI_INTERRUPTED = 130,
	CLI_HELP = -1 /* help or version was printed: exit 0 */
};

enum cli_command {
	CMD_NONE = 0,
	CMD_SEND,
	CMD_LISTEN,
	CMD_HISTORY,
	CMD_DEVICES,
	CMD_FINGERPRINT,
	CMD_TRUST,
	CMD_UNTRUST,
	CMD_URI,
	CMD_VERIFY,
	CMD_POLICY,
	CMD_IDENTITY,
	CMD_ACCOUNT,
	CMD_FETCH,
	CMD_JOIN,
	CMD_LEAVE,
	CMD_MEMBERS
};

/* What the command line and the config file said; strings are g_free'd. */
struct cli_opts {
	char *jid; /* bare or full, as given */
	char *password_file;
	char *server; /* HOST[:PORT] */
	char *tls;    /* required | trust-any | off */
	char *data_dir;
	int json;
	int verbose;
	enum cli_command command;
	char **args; /* the command's operands, borrowed from argv */
	int n_args;
	long count;         /* listen --count; 0: none */
	double timeout;     /* seconds; 0: none given */
	char *since;        /* history --since, normalised to UTC "...Z" */
	int encrypted_only; /* listen, history --encrypted-only: plaintext messages hidden */
	int wait_receipt;   /* send --wait-receipt: done once a device confirmed it (XEP-0184) */
	char *file;         /* send --file PATH */
	char *save_dir;     /* listen, fetch --save-dir DIR */
	char *out;          /* fetch --out PATH */
	char *nick;         /* join, send --nick: our nick in the room */
	int room;           /* send --room: the JID is a group chat */
	int allow_partial;  /* send --allow-partial: members who cannot read it are left out */
};

/* One SENT / SEND_FAILED event kept while mend_account_send() runs. */
struct cli_deferred {
	mend_event_kind kind;
	char *id;
	char *peer;
	char *text;
	int error;
	unsigned n_devices;
	int room; /* the event came with room set (= peer) */
	unsigned n_devices2;
};

struct cli {
	struct cli_opts o;

	/* resolved by config.c (g_free) */
	char *bare;   /* our bare JID, lower case */
	char *full;   /* the JID we log in with: bare/resource */
	char *domain; /* our server's domain */
	char *host;   /* --server host, or NULL: from the domain */
	unsigned short port;
	long xmpp_flags;
	char *data_dir;
	char *password;

	/* the run */
	mend_account *acc;
	xmpp_ctx_t *ctx;
	xmpp_conn_t *conn;
	xmpp_log_t log;
	int online;       /* authenticated, bound, handed to the core */
	int finished;     /* leave the loop */
	int status;       /* exit status once finished */
	int64_t deadline; /* g_get_monotonic_time() limit; 0: none */

	/* what libstrophe told us about a failure */
	int ever_online;
	int conn_error; /* errno of the socket, 0 if none */
	int has_stream_error;
	int stream_error; /* xmpp_error_type_t */
	char *stream_text;
	int sasl_failed;
	int auth_impossible;
	int tls_failed;
	int tls_missing;

	/* the command's hooks (main.c) */
	void (*on_online)(struct cli *c);
	void (*on_offline)(struct cli *c);
	void (*on_event)(struct cli *c, const mend_event *ev);
	void (*on_tick)(struct cli *c);
	void (*on_deadline)(struct cli *c);
	void (*on_interrupt)(struct cli *c);

	/* command state */
	char *peer;   /* the other party's bare JID */
	char *text;   /* send: the body */
	char *msg_id; /* send: our message's id (mend_free) */
	char *ping_id;
	unsigned n_devices;
	int sent;
	int ready;
	int requested;
	long n_messages;
	int in_send;         /* inside mend_account_send(): defer SENT / SEND_FAILED */
	GPtrArray *deferred; /* struct cli_deferred */
	int confirmed;       /* send: the server answered the ping after our message */
	int delivered;       /* send: a device of the recipient confirmed it (XEP-0184) */
	/* files (files.c) */
	char *file_id;                      /* send --file: the link message's id (mend_free) */
	const mend_file_result *file_saved; /* the message being printed: its file, saved */
	const char *file_error;             /* ... or why it was not saved */
	int progress_shown;                 /* percent last shown, -1 for none */

	/* group chats (rooms.c) */
	char *nick;      /* our nick in the room of the command */
	int room_status; /* the room's state from its ROOM event; MEND_ERR_NOT_FOUND: unknown */
	int room_joined; /* join: the room sent our own presence (XEP-0045 §7.2.3) */
	int room_once;   /* the room was not remembered before this run */
	unsigned room_devices;
	unsigned n_devices2; /* send: how many of n_devices got it in OMEMO:2 */
};

/* config.c */
int cli_parse_args(struct cli *c, int argc, char **argv);
int cli_load_config(struct cli *c);
int cli_resolve_account(struct cli *c);
int cli_resolve_password(struct cli *c);
int cli_account_add(struct cli *c, const char *jid);
char *cli_bare_jid(const char *jid);
void cli_deferred_free(gpointer p);
void cli_free(struct cli *c);

/* main.c: steps the commands share */
int cli_open_offline(struct cli *c);
int cli_run_online(struct cli *c, double default_timeout);
int cli_start_engine(struct cli *c, unsigned flags);
void cli_common_event(struct cli *c, const mend_event *ev);
void cli_went_offline(struct cli *c);
void cli_query_deadline(struct cli *c);
char *cli_peer_arg(struct cli *c, const char *arg);
void cli_send_event(struct cli *c, const mend_event *ev);
void cli_send_result(struct cli *c, const mend_event *ev);
void cli_send_direct(struct cli *c);
int cli_queue_message(struct cli *c, void (*replay)(struct cli *c, const mend_event *ev));
void cli_replay_deferred(struct cli *c, void (*fn)(struct cli *c, const mend_event *ev));

/* rooms.c */
int cli_room_nick(struct cli *c, const char *room, char **nick);
int cli_room_send_start(struct cli *c);
void cli_room_send_done(struct cli *c);
int cli_room_history_start(struct cli *c);
int cli_cmd_join(struct cli *c);
int cli_cmd_leave(struct cli *c);
int cli_cmd_members(struct cli *c);
void cli_room_listen_join(struct cli *c);

/* conn.c */
void cli_host_ops(mend_host_ops *ops);
int cli_run(struct cli *c);
void cli_finish(struct cli *c, int status);
int cli_send_raw(struct cli *c, const char *xml);
void cli_send_ping(struct cli *c, xmpp_handler done);
/* Whether SIGINT or SIGTERM came: a transfer in progress gives up. */
int cli_stopping(void);
char *cli_failure(struct cli *c, int *status, int *network);

/* output.c */
void out_json_string(GString *s, const char *v);
int cli_fail(struct cli *c, int status, int code, const char *fmt, ...) G_GNUC_PRINTF(4, 5);
void out_notice(struct cli *c, const char *jid, const char *text);
void out_message(struct cli *c, const mend_event *ev);
void out_undecryptable(struct cli *c, const mend_event *ev);
/* n devices, n2 of them in OMEMO:2 */
void out_sent(struct cli *c, const char *to, const char *id, unsigned n, unsigned n2, int earlier);
void out_queued(struct cli *c, const char *to, const char *id, const char *text);
void out_receipt(struct cli *c, const char *peer, const char *id);
void out_status(struct cli *c, const char *type, const char *text);
void out_ready(struct cli *c);
void out_devicelist(struct cli *c, const char *jid, unsigned n);
void out_history_done(struct cli *c);
void out_device(struct cli *c, const char *jid, const mend_device_info *d, int own);
void out_devices_done(struct cli *c, const char *jid, size_t n);
void out_fingerprint(struct cli *c, uint32_t device, const char *hex);
void out_trust(struct cli *c, const char *jid, uint32_t device, mend_trust trust);
void out_usage(enum cli_command cmd, int to_stderr);
void out_room(struct cli *c, const mend_event *ev);
void out_held(struct cli *c, const mend_event *ev, int dropped);
void out_joined(struct cli *c, const char *room, const char *nick, unsigned n);
void out_left(struct cli *c, const char *room);
void out_member(struct cli *c, const char *room, const mend_room_member *m);
void out_members_done(struct cli *c, const char *room, size_t n);
void out_text(struct cli *c, const char *type, const char *key, const char *value);
void out_qr(struct cli *c, const char *text);
char *out_iso_time(int64_t unix_time);
void out_file_sent(struct cli *c, const char *to, const char *path, const char *link,
                   const char *id);
void out_fetched(struct cli *c, const mend_file_link *link, const mend_file_result *res);

/* files.c: encrypted files (XEP-0454, XEP-0363) */
void cli_transfer_opts(struct cli *c, mend_transfer_opts *o);
void cli_file_queued(struct cli *c, const char *id); /* main.c */
void cli_send_file(struct cli *c);
void cli_save_file(struct cli *c, const mend_event *ev);
int cli_fetch(struct cli *c);

#endif /* MEND_CLI_H */
