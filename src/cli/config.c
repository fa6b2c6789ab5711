/*
 * config.c - turns what the user gave into a run of `mend`: the command
 * line (global options, the command, its options and operands), the config
 * file $XDG_CONFIG_HOME/mend/config (GKeyFile, group [mend]: jid, server,
 * tls, password-file, data-dir; the command line wins), our JID, server,
 * TLS mode and data dir, and the password: --password-file, else
 * $MEND_PASSWORD, else the Secret Service (schema "org.mend.Password",
 * attribute "account" = bare JID), where `mend account add` stores it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <libsecret/secret.h>
#include "cli.h"

#define DEFAULT_RESOURCE "mend"

static const SecretSchema password_schema = {
    .name = "org.mend.Password",
    .flags = SECRET_SCHEMA_NONE,
    .attributes =
        {
            {"account", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {NULL, 0},
        },
};

enum {
	OPT_JID = 256,
	OPT_PASSWORD_FILE,
	OPT_SERVER,
	OPT_TLS,
	OPT_DATA_DIR,
	OPT_JSON,
	OPT_VERSION,
	OPT_COUNT,
	OPT_TIMEOUT,
	OPT_SINCE,
	OPT_ENCRYPTED_ONLY,
	OPT_WAIT_RECEIPT,
	OPT_FILE,
	OPT_SAVE_DIR,
	OPT_OUT,
	OPT_NICK,
	OPT_ROOM,
	OPT_ALLOW_PARTIAL
};

static const struct option long_opts[] = {
    {"jid", required_argument, NULL, OPT_JID},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"server", required_argument, NULL, OPT_SERVER},
    {"tls", required_argument, NULL, OPT_TLS},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"count", required_argument, NULL, OPT_COUNT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"since", required_argument, NULL, OPT_SINCE},
    {"encrypted-only", no_argument, NULL, OPT_ENCRYPTED_ONLY},
    {"wait-receipt", no_argument, NULL, OPT_WAIT_RECEIPT},
    {"file", required_argument, NULL, OPT_FILE},
    {"save-dir", required_argument, NULL, OPT_SAVE_DIR},
    {"out", required_argument, NULL, OPT_OUT},
    {"nick", required_argument, NULL, OPT_NICK},
    {"room", no_argument, NULL, OPT_ROOM},
    {"allow-partial", no_argument, NULL, OPT_ALLOW_PARTIAL},
    {NULL, 0, NULL, 0},
};

static const struct {
	const char *name;
	enum cli_command cmd;
	int min_args, max_args;
} commands[] = {
    {"send", CMD_SEND, 1, -1},
    {"listen", CMD_LISTEN, 0, 0},
    {"history", CMD_HISTORY, 1, 1},
    {"devices", CMD_DEVICES, 0, 1},
    {"fingerprint", CMD_FINGERPRINT, 0, 0},
    {"trust", CMD_TRUST, 2, 10}, /* JID DEVICE [FINGERPRINT, maybe in 8 groups] */
    {"untrust", CMD_UNTRUST, 2, 2},
    {"uri", CMD_URI, 0, 0},
    {"verify", CMD_VERIFY, 1, 1},
    {"policy", CMD_POLICY, 0, 2},
    {"identity", CMD_IDENTITY, 1, 1},
    {"account", CMD_ACCOUNT, 2, 2},
    {"fetch", CMD_FETCH, 1, 1},
    {"join", CMD_JOIN, 1, 1},
    {"leave", CMD_LEAVE, 1, 1},
    {"members", CMD_MEMBERS, 1, 1},
};

static void set_str(char **field, const char *value)
{
	g_free(*field);
	*field = g_strdup(value);
}

/* "~/x" -> "$HOME/x"; anything else unchanged. g_free. */
static char *expand_home(const char *path)
{
	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0'))
		return g_strconcat(g_get_home_dir(), path + 1, NULL);
	return g_strdup(path);
}

/* ISO 8601 (or a bare date) -> "YYYY-MM-DDTHH:MM:SSZ" in UTC, or NULL. */
static char *normalise_time(const char *in)
{
	GTimeZone *utc = g_time_zone_new_utc();
	GDateTime *dt, *u;
	char *day, *out = NULL;

	dt = g_date_time_new_from_iso8601(in, utc);
	if (!dt && strlen(in) == 10) {
		day = g_strconcat(in, "T00:00:00", NULL);
		dt = g_date_time_new_from_iso8601(day, utc);
		g_free(day);
	}
	if (!dt)
		goto out_tz;
	u = g_date_time_to_utc(dt);
	out = g_date_time_format(u, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(u);
	g_date_time_unref(dt);
out_tz:
	g_time_zone_unref(utc);
	return out;
}

static int option_misplaced(struct cli *c, const char *name, const char *where)
{
	return cli_fail(c, CLI_USAGE, 0,
	                _("The option --%s belongs to 'mend %s'; see 'mend --help'."), name, where);
}

static int take_count(struct cli *c, const char *arg)
{
	char *end;
	long n;

	if (c->o.command != CMD_LISTEN)
		return option_misplaced(c, "count", "listen");
	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n <= 0)
		return cli_fail(c, CLI_USAGE, 0,
		                _("--count takes a whole number of messages above 0, not '%s'."),
		                arg);
	c->o.count = n;
	return CLI_OK;
}

static int take_timeout(struct cli *c, const char *arg)
{
	char *end;
	double t;

	if (c->o.command == CMD_NONE ||
	    (c->o.command >= CMD_FINGERPRINT && c->o.command != CMD_FETCH &&
	     c->o.command != CMD_JOIN && c->o.command != CMD_MEMBERS))
		return option_misplaced(c, "timeout",
		                        "send|listen|history|devices|fetch|join|members");
	t = g_ascii_strtod(arg, &end);
	if (*end || end == arg || !(t > 0) || t > 1e7)
		return cli_fail(c, CLI_USAGE, 0,
		                _("--timeout takes a number of seconds above 0, not '%s'."), arg);
	c->o.timeout = t;
	return CLI_OK;
}

static int take_since(struct cli *c, const char *arg)
{
	if (c->o.command != CMD_HISTORY)
		return option_misplaced(c, "since", "history");
	g_free(c->o.since);
	c->o.since = normalise_time(arg);
	if (!c->o.since)
		return cli_fail(
		    c, CLI_USAGE, 0,
		    _("--since takes an ISO 8601 time such as 2026-11-21T10:00:00Z, not '%s'."),
		    arg);
	return CLI_OK;
}

/* send --file PATH, listen|fetch --save-dir DIR, fetch --out PATH */
static int take_file_option(struct cli *c, int ch, const char *arg)
{
	if (ch == OPT_FILE && c->o.command != CMD_SEND)
		return option_misplaced(c, "file", "send");
	if (ch == OPT_SAVE_DIR && c->o.command != CMD_LISTEN && c->o.command != CMD_FETCH)
		return option_misplaced(c, "save-dir", "listen|fetch");
	if (ch == OPT_OUT && c->o.command != CMD_FETCH)
		return option_misplaced(c, "out", "fetch");
	set_str(ch == OPT_FILE ? &c->o.file : ch == OPT_SAVE_DIR ? &c->o.save_dir : &c->o.out, arg);
	return CLI_OK;
}

/* XEP-0045 §7.2: a nick is a JID resourcepart (no control characters here). */
static int take_nick(struct cli *c, const char *arg)
{
	const char *p;

	if (c->o.command != CMD_JOIN && c->o.command != CMD_SEND)
		return option_misplaced(c, "nick", "join|send");
	for (p = arg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	if (!*arg || *p || strlen(arg) > 1023 || !g_utf8_validate(arg, -1, NULL))
		return cli_fail(c, CLI_USAGE, 0,
		                _("--nick takes a name of 1 to 1023 characters "
		                  "(no control characters), not '%s'."),
		                arg);
	set_str(&c->o.nick, arg);
	return CLI_OK;
}

static int bad_option(struct cli *c, int ch, const char *word)
{
	if (ch == ':')
		return cli_fail(c, CLI_USAGE, 0,
		                _("The option %s needs a value; see 'mend --help'."), word);
	if (optopt > 0 && optopt < 256)
		return cli_fail(c, CLI_USAGE, 0, _("Unknown option '-%c'; see 'mend --help'."),
		                optopt);
	return cli_fail(c, CLI_USAGE, 0, _("Unknown option '%s'; see 'mend --help'."), word);
}

static int take_option(struct cli *c, int ch, const char *word)
{
	switch (ch) {
	case OPT_JID:
		set_str(&c->o.jid, optarg);
		return CLI_OK;
	case OPT_PASSWORD_FILE:
		set_str(&c->o.password_file, optarg);
		return CLI_OK;
	case OPT_SERVER:
		set_str(&c->o.server, optarg);
		return CLI_OK;
	case OPT_TLS:
		set_str(&c->o.tls, optarg);
		return CLI_OK;
	case OPT_DATA_DIR:
		set_str(&c->o.data_dir, optarg);
		return CLI_OK;
	case OPT_JSON:
		c->o.json = 1;
		return CLI_OK;
	case 'v':
		c->o.verbose = 1;
		return CLI_OK;
	case 'h':
		out_usage(c->o.command, 0);
		return CLI_HELP;
	case OPT_VERSION:
		printf("mend %s\n", PACKAGE_VERSION);
#ifdef MEND_HAVE_LIBOMEMO_C /* XEP-0384 0.9 beside legacy OMEMO; the fallback library: legacy only \
                             */
		printf("OMEMO:2 (urn:xmpp:omemo:2): yes\n");
#else
		printf("OMEMO:2 (urn:xmpp:omemo:2): no\n");
#endif
		return CLI_HELP;
	case OPT_COUNT:
		return take_count(c, optarg);
	case OPT_TIMEOUT:
		return take_timeout(c, optarg);
	case OPT_SINCE:
		return take_since(c, optarg);
	case OPT_ENCRYPTED_ONLY:
		if (c->o.command != CMD_LISTEN && c->o.command != CMD_HISTORY)
			return option_misplaced(c, "encrypted-only", "listen|history");
		c->o.encrypted_only = 1;
		return CLI_OK;
	case OPT_WAIT_RECEIPT:
		if (c->o.command != CMD_SEND)
			return option_misplaced(c, "wait-receipt", "send");
		c->o.wait_receipt = 1;
		return CLI_OK;
	case OPT_FILE:
	case OPT_SAVE_DIR:
	case OPT_OUT:
		return take_file_option(c, ch, optarg);
	case OPT_NICK:
		return take_nick(c, optarg);
	case OPT_ROOM:
	case OPT_ALLOW_PARTIAL:
		if (c->o.command != CMD_SEND)
			return option_misplaced(c, ch == OPT_ROOM ? "room" : "allow-partial",
			                        "send");
		*(ch == OPT_ROOM ? &c->o.room : &c->o.allow_partial) = 1;
		return CLI_OK;
	}
	return bad_option(c, ch, word);
}

/* Parses options from argv[1] on; optind is left at the first operand. */
static int parse_options(struct cli *c, int argc, char **argv, const char *optstring)
{
	int ch, r = CLI_OK;

	opterr = 0;
	optind = 0; /* glibc: start afresh */
	while (r == CLI_OK && (ch = getopt_long(argc, argv, optstring, long_opts, NULL)) != -1)
		r = take_option(c, ch, argv[optind - 1]);
	return r;
}

static int find_command(struct cli *c, const char *name)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return (int)i;
	cli_fail(c, CLI_USAGE, 0, _("Unknown command '%s'; see 'mend --help' for the commands."),
	         name);
	return -1;
}

/* send JID --file PATH [TEXT]: the option right after the JID (the text starts after it). */
static void send_file_after_jid(struct cli *c)
{
	char **a = c->o.args;

	if (c->o.command != CMD_SEND || c->o.n_args < 3 || strcmp(a[1], "--file") != 0)
		return;
	set_str(&c->o.file, a[2]);
	a[2] = a[0]; /* the JID moves next to the text */
	c->o.args += 2;
	c->o.n_args -= 2;
}

static int check_operands(struct cli *c, int i)
{
	const char *name = commands[i].name;
	int n = c->o.n_args;

	if (n < commands[i].min_args || (commands[i].max_args >= 0 && n > commands[i].max_args))
		return cli_fail(c, CLI_USAGE, 0,
		                _("Wrong number of arguments for 'mend %s'; see 'mend %s --help'."),
		                name, name);
	if (c->o.command == CMD_ACCOUNT && strcmp(c->o.args[0], "add") != 0)
		return cli_fail(
		    c, CLI_USAGE, 0,
		    _("'mend account' knows only 'add JID'; see 'mend account --help'."));
	return CLI_OK;
}

int cli_parse_args(struct cli *c, int argc, char **argv)
{
	int r, i, sub_argc;
	char **sub_argv;

	r = parse_options(c, argc, argv, "+:hv");
	if (r != CLI_OK)
		return r;
	if (optind >= argc)
		return cli_fail(c, CLI_USAGE, 0,
		                _("No command given; see 'mend --help' for the commands."));
	i = find_command(c, argv[optind]);
	if (i < 0)
		return CLI_USAGE;
	c->o.command = commands[i].cmd;
	sub_argv = argv + optind;
	sub_argc = argc - optind;
	/* send: everything after the JID is the text, even words starting with '-' */
	r = parse_options(c, sub_argc, sub_argv, c->o.command == CMD_SEND ? "+:hv" : ":hv");
	if (r != CLI_OK)
		return r;
	c->o.args = sub_argv + optind;
	c->o.n_args = sub_argc - optind;
	send_file_after_jid(c);
	return check_operands(c, i);
}

static void config_take(GKeyFile *kf, const char *key, char **field, int path)
{
	char *v;

	if (*field)
		return;
	v = g_key_file_get_string(kf, "mend", key, NULL);
	if (v && *v)
		*field = path ? expand_home(v) : g_strdup(v);
	g_free(v);
}

int cli_load_config(struct cli *c)
{
	GKeyFile *kf = g_key_file_new();
	GError *err = NULL;
	char *path;
	int r = CLI_OK;

	path = g_build_filename(g_get_user_config_dir(), "mend", "config", NULL);
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &err)) {
		if (!g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			r = cli_fail(c, CLI_USAGE, 0,
			             _("The config file %s cannot be read (%s); fix or remove it."),
			             path, err->message);
		goto out;
	}
	config_take(kf, "jid", &c->o.jid, 0);
	config_take(kf, "server", &c->o.server, 0);
	config_take(kf, "tls", &c->o.tls, 0);
	config_take(kf, "password-file", &c->o.password_file, 1);
	config_take(kf, "data-dir", &c->o.data_dir, 1);
out:
	g_clear_error(&err);
	g_free(path);
	g_key_file_free(kf);
	return r;
}

static int jid_char_ok(gunichar ch)
{
	return !g_unichar_isspace(ch) && !g_unichar_iscntrl(ch) && !strchr("\"'<>&@/", (int)ch);
}

static int jid_part_ok(const char *s, size_t len)
{
	const char *p, *end = s + len;

	if (len == 0 || len > 1023)
		return 0;
	for (p = s; p < end; p = g_utf8_next_char(p))
		if (!jid_char_ok(g_utf8_get_char(p)))
			return 0;
	return 1;
}

/* "Local@Domain/res" -> "local@domain" (lower case), or NULL if not a JID. */
char *cli_bare_jid(const char *jid)
{
	const char *at, *slash;
	size_t len;

	if (!jid || !g_utf8_validate(jid, -1, NULL))
		return NULL;
	slash = strchr(jid, '/');
	len = slash ? (size_t)(slash - jid) : strlen(jid);
	at = memchr(jid, '@', len);
	if (!at || !jid_part_ok(jid, (size_t)(at - jid)) ||
	    !jid_part_ok(at + 1, len - (size_t)(at - jid) - 1))
		return NULL;
	return g_utf8_strdown(jid, (gssize)len);
}

static int resolve_tls(struct cli *c)
{
	const char *tls = c->o.tls ? c->o.tls : "required";

	c->xmpp_flags = XMPP_CONN_FLAG_DISABLE_SM;
	if (strcmp(tls, "required") == 0)
		c->xmpp_flags |= XMPP_CONN_FLAG_MANDATORY_TLS;
	else if (strcmp(tls, "trust-any") == 0)
		c->xmpp_flags |= XMPP_CONN_FLAG_MANDATORY_TLS | XMPP_CONN_FLAG_TRUST_TLS;
	else if (strcmp(tls, "off") == 0)
		c->xmpp_flags |= XMPP_CONN_FLAG_DISABLE_TLS;
	else
		return cli_fail(c, CLI_USAGE, 0,
		                _("--tls takes required, trust-any or off, not '%s'."), tls);
	return CLI_OK;
}

static int resolve_server(struct cli *c)
{
	const char *s = c->o.server, *colon;
	char *end;
	long port = 0;

	if (!s)
		return CLI_OK;
	if (s[0] == '[') { /* [v6 address]:port */
		colon = strstr(s, "]:");
		c->host = g_strndup(s + 1, colon ? (size_t)(colon - s - 1) : strcspn(s + 1, "]"));
		colon = colon ? colon + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		c->host = colon ? g_strndup(s, (size_t)(colon - s)) : g_strdup(s);
	}
	if (colon)
		port = strtol(colon + 1, &end, 10);
	if (!*c->host || (colon && (*end || port <= 0 || port > 65535)))
		return cli_fail(c, CLI_USAGE, 0,
		                _("--server takes HOST or HOST:PORT (port 1 to 65535), not '%s'."),
		                s);
	c->port = (unsigned short)port;
	return CLI_OK;
}

static int resolve_jid(struct cli *c)
{
	const char *slash;
	char *path;

	if (!c->o.jid) {
		path = g_build_filename(g_get_user_config_dir(), "mend", "config", NULL);
		cli_fail(c, CLI_USAGE, 0,
		         _("No account given: use --jid JID or put jid=JID in group [mend] of %s."),
		         path);
		g_free(path);
		return CLI_USAGE;
	}
	c->bare = cli_bare_jid(c->o.jid);
	if (!c->bare)
		return cli_fail(c, CLI_USAGE, 0,
		                _("'%s' is not a JID; give one like alice@example.org/laptop."),
		                c->o.jid);
	slash = strchr(c->o.jid, '/');
	/* each run its own resource unless given: a one-shot send must not end a running listen */
	if (slash && slash[1])
		c->full = g_strconcat(c->bare, "/", slash + 1, NULL);
	else
		c->full = g_strdup_printf("%s/%s-%06x", c->bare, DEFAULT_RESOURCE,
		                          g_random_int() & 0xffffff);
	c->domain = g_strdup(strchr(c->bare, '@') + 1);
	return CLI_OK;
}

int cli_resolve_account(struct cli *c)
{
	int r;

	if (c->bare)
		return CLI_OK; /* done already */
	r = resolve_jid(c);
	if (r == CLI_OK)
		r = resolve_tls(c);
	if (r == CLI_OK)
		r = resolve_server(c);
	if (r != CLI_OK)
		return r;
	if (c->o.data_dir)
		c->data_dir = g_strdup(c->o.data_dir);
	else
		c->data_dir = g_build_filename(g_get_user_data_dir(), "mend", c->bare, NULL);
	return CLI_OK;
}

/* The first line of `text`, without its line end. g_free. */
static char *first_line(const char *text)
{
	size_t n = strcspn(text, "\n");

	if (n > 0 && text[n - 1] == '\r')
		n--;
	return g_strndup(text, n);
}

static int password_from_file(struct cli *c)
{
	GError *err = NULL;
	char *text = NULL;
	size_t len = 0;
	int r = CLI_OK;

	if (!g_file_get_contents(c->o.password_file, &text, &len, &err)) {
		r = cli_fail(c, CLI_USAGE, 0,
		             _("The password file cannot be read (%s); check --password-file."),
		             err->message);
		goto out;
	}
	c->password = first_line(text);
	if (!*c->password)
		r = cli_fail(c, CLI_USAGE, 0,
		             _("The password file %s starts with an empty line; put the password "
		               "on its first line."),
		             c->o.password_file);
	memset(text, 0, len);
out:
	g_clear_error(&err);
	g_free(text);
	return r;
}

static char *password_from_secret_service(struct cli *c)
{
	GError *err = NULL;
	char *pw, *copy = NULL;

	pw = secret_password_lookup_sync(&password_schema, NULL, &err, "account", c->bare, NULL);
	if (err && c->o.verbose)
		fprintf(stderr, "mend: Secret Service: %s\n", err->message);
	if (pw && *pw)
		copy = g_strdup(pw);
	secret_password_free(pw);
	g_clear_error(&err);
	return copy;
}

/* Whether the password is there but stays locked (its unlock prompt was cancelled). */
static int password_locked(struct cli *c)
{
	GHashTable *attrs = secret_attributes_build(&password_schema, "account", c->bare, NULL);
	GList *items = secret_service_search_sync(NULL, &password_schema, attrs, SECRET_SEARCH_ALL,
	                                          NULL, NULL),
	      *l;
	int locked = items != NULL;

	for (l = items; l; l = l->next)
		locked &= secret_item_get_locked(l->data);
	g_list_free_full(items, g_object_unref);
	g_hash_table_unref(attrs);
	return locked;
}

int cli_resolve_password(struct cli *c)
{
	const char *env = getenv("MEND_PASSWORD");

	if (c->o.password_file)
		return password_from_file(c);
	if (env && *env) {
		c->password = g_strdup(env);
		return CLI_OK;
	}
	c->password = password_from_secret_service(c);
	if (c->password)
		return CLI_OK;
	if (password_locked(c))
		return cli_fail(c, CLI_LOCKED, MEND_ERR_KEYRING_LOCKED, "%s",
		                mend_strerror(MEND_ERR_KEYRING_LOCKED));
	return cli_fail(
	    c, CLI_USAGE, 0,
	    _("No password for %s: give one with --password-file FILE, with the "
	      "MEND_PASSWORD environment variable, or store it with 'mend account add %s'."),
	    c->bare, c->bare);
}

static char *read_line(FILE *f)
{
	char *line = NULL, *out;
	size_t cap = 0;
	ssize_t n;

	n = getline(&line, &cap, f);
	out = n < 0 ? NULL : first_line(line);
	if (line)
		memset(line, 0, cap);
	free(line);
	return out;
}

static char *read_password(const char *jid)
{
	struct termios old, quiet;
	char *pw;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;

	if (!tty)
		return read_line(stdin);
	fprintf(stderr, _("Password for %s: "), jid);
	fflush(stderr);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	pw = read_line(stdin);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return pw;
}

static int store_password(struct cli *c, const char *bare, const char *pw)
{
	GError *err = NULL;
	char *label, *text;
	int r = CLI_OK;

	label = g_strdup_printf("mend: XMPP password for %s", bare);
	if (!secret_password_store_sync(&password_schema, SECRET_COLLECTION_DEFAULT, label, pw,
	                                NULL, &err, "account", bare, NULL)) {
		r = cli_fail(
		    c, CLI_ERROR, MEND_ERR_KEYRING,
		    _("The Secret Service did not store the password (%s); start GNOME Keyring "
		      "or KWallet, or use --password-file or MEND_PASSWORD instead."),
		    err ? err->message : "?");
		goto out;
	}
	text = g_strdup_printf(_("The password for %s is stored in the Secret Service."), bare);
	out_status(c, "account", text);
	g_free(text);
out:
	g_clear_error(&err);
	g_free(label);
	return r;
}

int cli_account_add(struct cli *c, const char *jid)
{
	char *bare, *pw = NULL;
	int r;

	bare = cli_bare_jid(jid);
	if (!bare)
		return cli_fail(c, CLI_USAGE, 0,
		                _("'%s' is not a JID; give one like alice@example.org."), jid);
	pw = read_password(bare);
	if (!pw || !*pw) {
		r = cli_fail(
		    c, CLI_USAGE, 0,
		    _("No password was given; type it, or pipe it into 'mend account add %s'."),
		    bare);
		goto out;
	}
	r = store_password(c, bare, pw);
out:
	if (pw)
		memset(pw, 0, strlen(pw));
	g_free(pw);
	g_free(bare);
	return r;
}

void cli_deferred_free(gpointer p)
{
	struct cli_deferred *d = p;

	g_free(d->id);
	g_free(d->peer);
	g_free(d->text);
	g_free(d);
}

void cli_free(struct cli *c)
{
	if (c->password)
		memset(c->password, 0, strlen(c->password));
	g_free(c->password);
	g_free(c->o.jid);
	g_free(c->o.password_file);
	g_free(c->o.server);
	g_free(c->o.tls);
	g_free(c->o.data_dir);
	g_free(c->o.since);
	g_free(c->o.nick);
	g_free(c->o.file);
	g_free(c->o.save_dir);
	g_free(c->o.out);
	mend_free(c->file_id);
	g_free(c->nick);
	g_free(c->bare);
	g_free(c->full);
	g_free(c->domain);
	g_free(c->host);
	g_free(c->data_dir);
	g_free(c->peer);
	g_free(c->text);
	mend_free(c->msg_id);
	g_free(c->ping_id);
	g_free(c->stream_text);
	if (c->deferred)
		g_ptr_array_free(c->deferred, TRUE);
	if (c->acc)
		mend_account_free(c->acc);
}
