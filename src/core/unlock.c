/*
 * unlock.c - asks a locked Secret Service collection to unlock (unlock.h).
 *
 * Secret Service API 0.2, org.freedesktop.Secret.Service.Unlock returns the
 * objects it could unlock at once and a prompt object ("/" when none is
 * needed); org.freedesktop.Secret.Prompt.Prompt shows the desktop's dialog
 * and its Completed(dismissed, result) signal tells the outcome.
 * libsecret's own unlock waits for that signal without end, and cancelling
 * it dismisses the dialog; so the two calls are made here directly, the
 * signal is awaited in a private main context for a bounded time, and an
 * unanswered dialog is left up for the user to answer later.
 */
#include "config.h"

#include <glib.h>
#include "mend/mend.h"
#include "unlock.h"

#define SERVICE_IFACE "org.freedesktop.Secret.Service"
#define PROMPT_IFACE  "org.freedesktop.Secret.Prompt"
#define CALL_MS       25000 /* one D-Bus round trip, not the user's answer */

/* The prompt's outcome; shared with the signal subscription (GRcBox). */
struct prompt_wait {
	int completed;
	int dismissed;
	int timed_out;
};

static void on_completed(GDBusConnection *conn, const char *sender, const char *path,
                         const char *iface, const char *signal, GVariant *params, gpointer data)
{
	struct prompt_wait *w = data;
	gboolean dismissed = TRUE;

	if (g_variant_is_of_type(params, G_VARIANT_TYPE("(bv)")))
		g_variant_get(params, "(bv)", &dismissed, NULL);
	w->completed = 1;
	w->dismissed = dismissed;
}

static gboolean on_timeout(gpointer data)
{
	((struct prompt_wait *)data)->timed_out = 1;
	return G_SOURCE_REMOVE;
}

static void note(char **why, GError *err)
{
	if (why && !*why)
		*why = g_strdup(err->message);
}

/* Waits in `ctx` for Completed or the end of `wait_ms`. */
static void await_completed(GMainContext *ctx, struct prompt_wait *w, int wait_ms)
{
	GSource *timer = g_timeout_source_new((guint)wait_ms);

	g_source_set_callback(timer, on_timeout, w, NULL);
	g_source_attach(timer, ctx);
	while (!w->completed && !w->timed_out)
		g_main_context_iteration(ctx, TRUE);
	g_source_destroy(timer);
	g_source_unref(timer);
}

/* Shows the prompt at `path`; 1 when the user unlocked, 0 dismissed or unanswered. */
static int run_prompt(GDBusConnection *conn, const char *name, const char *path, int wait_ms,
                      char **why)
{
	struct prompt_wait *w = g_rc_box_new0(struct prompt_wait);
	GMainContext *ctx = g_main_context_new();
	GError *err = NULL;
	GVariant *ret;
	guint sub;
	int unlocked;

	g_main_context_push_thread_default(ctx);
	sub = g_dbus_connection_signal_subscribe(conn, NULL, PROMPT_IFACE, "Completed", path, NULL,
	                                         G_DBUS_SIGNAL_FLAGS_NONE, on_completed,
	                                         g_rc_box_acquire(w), g_rc_box_release);
	ret = g_dbus_connection_call_sync(conn, name, path, PROMPT_IFACE, "Prompt",
	                                  g_variant_new("(s)", ""), NULL, G_DBUS_CALL_FLAGS_NONE,
	                                  CALL_MS, NULL, &err);
	if (ret)
		await_completed(ctx, w, wait_ms);
	else
		note(why, err);
	g_dbus_connection_signal_unsubscribe(conn, sub);
	while (g_main_context_iteration(ctx, FALSE))
		; /* lets the subscription release its reference */
	g_main_context_pop_thread_default(ctx);
	g_main_context_unref(ctx);
	unlocked = w->completed && !w->dismissed;
	g_rc_box_release(w);
	g_clear_pointer(&ret, g_variant_unref);
	g_clear_error(&err);
	return unlocked;
}

/* Unlock(paths): 1 unlocked, 0 still locked, MEND_ERR_KEYRING failure. */
static int request_unlock(SecretService *svc, const char *const *paths, int wait_ms, char **why)
{
	GDBusProxy *proxy = G_DBUS_PROXY(svc);
	GDBusConnection *conn = g_dbus_proxy_get_connection(proxy);
	const char *name = g_dbus_proxy_get_name(proxy), *prompt = NULL;
	GVariant *ret, *done = NULL;
	GError *err = NULL;
	int rc;

	ret = g_dbus_connection_call_sync(conn, name, g_dbus_proxy_get_object_path(proxy),
	                                  SERVICE_IFACE, "Unlock", g_variant_new("(^ao)", paths),
	                                  G_VARIANT_TYPE("(aoo)"), G_DBUS_CALL_FLAGS_NONE, CALL_MS,
	                                  NULL, &err);
	if (!ret) {
		note(why, err);
		g_error_free(err);
		return MEND_ERR_KEYRING;
	}
	g_variant_get(ret, "(@ao&o)", &done, &prompt);
	if (g_variant_n_children(done) > 0)
		rc = 1;
	else if (g_strcmp0(prompt, "/") == 0)
		rc = 0;
	else
		rc = run_prompt(conn, name, prompt, wait_ms, why);
	g_variant_unref(done);
	g_variant_unref(ret);
	return rc;
}

/* Unlocks `paths` (NULL-terminated, all locked) unless wait_ms < 0. */
static int unlock_paths(SecretService *svc, const char *const *paths, int wait_ms, char **why)
{
	int rc;

	if (wait_ms < 0)
		return MEND_ERR_KEYRING_LOCKED;
	rc = request_unlock(svc, paths, wait_ms, why);
	if (rc < 0)
		return rc;
	return rc ? 0 : MEND_ERR_KEYRING_LOCKED;
}

int mend_unlock_items(SecretService *svc, GList *items, int wait_ms, char **why)
{
	GPtrArray *locked = g_ptr_array_new();
	GList *l;
	int rc = 0;

	for (l = items; l; l = l->next) {
		if (!secret_item_get_locked(l->data)) {
			g_ptr_array_set_size(locked, 0);
			break;
		}
		g_ptr_array_add(locked, (gpointer)g_dbus_proxy_get_object_path(l->data));
	}
	if (locked->len > 0) {
		g_ptr_array_add(locked, NULL);
		rc = unlock_paths(svc, (const char *const *)locked->pdata, wait_ms, why);
	}
	g_ptr_array_free(locked, TRUE);
	return rc;
}

int mend_unlock_default(SecretService *svc, int wait_ms, char **why)
{
	SecretCollection *coll;
	const char *paths[2] = {NULL, NULL};
	GError *err = NULL;
	int rc = 0;

	coll = secret_collection_for_alias_sync(svc, SECRET_COLLECTION_DEFAULT,
	                                        SECRET_COLLECTION_NONE, NULL, &err);
	if (err) {
		note(why, err);
		g_error_free(err);
		return MEND_ERR_KEYRING;
	}
	if (coll && secret_collection_get_locked(coll)) {
		paths[0] = g_dbus_proxy_get_object_path(G_DBUS_PROXY(coll));
		rc = unlock_paths(svc, paths, wait_ms, why);
	}
	if (coll)
		g_object_unref(coll);
	return rc;
}
