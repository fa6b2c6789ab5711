/*
 * test-rooms.c - group chats (room.c, room_msg.c) against a scripted server.
 * The test plays Prosody and its MUC component: every IQ the core sends is
 * answered from a small world (device lists and real bundles of bob, carol
 * and alice's second device; dave has no OMEMO; rooms with the disco#info
 * features of their configuration; the room's affiliation lists); room
 * presence and messages are written as Prosody sends them.
 *
 * Cases: a room that is open, semi-anonymous or no room is refused with its
 * reason; members from affiliation lists and presence (ourselves left out),
 * bad items ignored; a message held while dave cannot read it, then released
 * to the others or dropped; encrypted to every member device and our other
 * device, as type groupchat; our reflection shown once as ours; bob's message
 * decrypted with his real JID, deduped by the room's stanza-id; garbage; a
 * held message told again after a restart and never sent unreleased.
 */
#include "config.h"

#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <strophe.h>
#include "mend/mend.h"
#include "internal.h" /* mend_account_set_clock */
#include "tap.h"

#define ALICE       "alice@x"
#define ALICE_FULL  "alice@x/r"
#define BOB         "bob@x"
#define CAROL       "carol@x"
#define DAVE        "dave@x"
#define ROOM        "club@muc.x"
#define OPEN_ROOM   "open@muc.x"
#define ANON_ROOM   "anon@muc.x"
#define NOT_ROOM    "nothing@muc.x"
#define NS_LEGACY   "eu.siacs.conversations.axolotl"
#define NODE_LIST   NS_LEGACY ".devicelist"
#define NODE_BUNDLE NS_LEGACY ".bundles:"
#define NS_DISCO    "http://jabber.org/protocol/disco#info"
#define NS_ADMIN    "http://jabber.org/protocol/muc#admin"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_MAM      "urn:xmpp:mam:2"
#define NS_STANZAS  "urn:ietf:params:xml:ns:xmpp-stanzas"

typedef struct rec {
	mend_event_kind kind;
	char *id, *peer, *from, *body, *text, *room, *nick, *timestamp;
	int error, outgoing, archived;
	unsigned n_devices;
} rec;

/* One OMEMO device of the world. */
typedef struct peer {
	const char *jid;
	mend_account *acc;
	uint32_t id;
} peer;

static xmpp_ctx_t *xctx;
static GPtrArray *sent;   /* char *: what alice's core sent */
static GPtrArray *events; /* rec * */
static guint served;      /* sent stanzas the server looked at */
static peer world[3];     /* alice's second device, bob, carol */
static uint32_t aid;
static int mam_manual; /* MAM queries are left to the test */
static char *bob_live; /* bob's message seen live as r-2 */

static int on_send(const char *xml, void *ud)
{
	g_ptr_array_add(sent, g_strdup(xml));
	return 0;
}

static void on_event(const mend_event *ev, void *ud)
{
	rec *r = g_new0(rec, 1);

	r->kind = ev->kind;
	r->id = g_strdup(ev->id);
	r->peer = g_strdup(ev->peer);
	r->from = g_strdup(ev->from);
	r->body = g_strdup(ev->body);
	r->text = g_strdup(ev->text);
	r->room = g_strdup(ev->room);
	r->nick = g_strdup(ev->nick);
	r->timestamp = g_strdup(ev->timestamp);
	r->error = ev->error;
	r->outgoing = ev->outgoing;
	r->archived = ev->archived;
	r->n_devices = ev->n_devices;
	g_ptr_array_add(events, r);
}

static void rec_free(gpointer p)
{
	rec *r = p;

	g_free(r->id);
	g_free(r->peer);
	g_free(r->from);
	g_free(r->body);
	g_free(r->text);
	g_free(r->room);
	g_free(r->nick);
	g_free(r->timestamp);
	g_free(r);
}

static void on_log(mend_log_level level, const char *text, void *ud)
{
	if (level <= MEND_LOG_WARNING)
		printf("# core: %s\n", text);
}

static const mend_host_ops alice_ops = {.send_stanza = on_send, .event = on_event, .log = on_log};

static int str_is(const char *s, const char *want)
{
	return s && want && g_str_equal(s, want);
}

static int count_events(guint mark, mend_event_kind kind)
{
	int n = 0;

	for (guint i = mark; i < events->len; i++)
		n += ((rec *)g_ptr_array_index(events, i))->kind == kind;
	return n;
}

static const rec *event_of(guint mark, mend_event_kind kind)
{
	for (guint i = mark; i < events->len; i++)
		if (((rec *)g_ptr_array_index(events, i))->kind == kind)
			return g_ptr_array_index(events, i);
	return NULL;
}

/* The last event of `kind` since `mark`, or NULL. */
static const rec *last_event(guint mark, mend_event_kind kind)
{
	const rec *found = NULL;

	for (guint i = mark; i < events->len; i++)
		if (((rec *)g_ptr_array_index(events, i))->kind == kind)
			found = g_ptr_array_index(events, i);
	return found;
}

/* --- stanzas --------------------------------------------------------------------- */

static xmpp_stanza_t *find(xmpp_stanza_t *st, const char *name, const char *ns)
{
	const char *n = xmpp_stanza_get_name(st), *s = xmpp_stanza_get_ns(st);
	xmpp_stanza_t *c, *f;

	if (n && g_str_equal(n, name) && (!ns || str_is(s, ns)))
		return st;
	for (c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c))
		if (xmpp_stanza_is_tag(c) && (f = find(c, name, ns)))
			return f;
	return NULL;
}

static char *text_of(xmpp_stanza_t *st)
{
	char *buf = NULL, *out = NULL;
	size_t len;

	if (xmpp_stanza_to_text(st, &buf, &len) == XMPP_EOK) {
		out = g_strndup(buf, len);
		xmpp_free(xctx, buf);
	}
	return out;
}

static int handle(mend_account *a, char *xml)
{
	int r = mend_account_handle_stanza(a, xml);

	g_free(xml);
	return r;
}

/* Answers IQ `iq` (parsed) from `from` with type and payload. */
static int answer(mend_account *a, xmpp_stanza_t *iq, const char *from, const char *type,
                  const char *payload)
{
	return handle(a,
	              g_strdup_printf("<iq type='%s' id='%s' from='%s' to='" ALICE_FULL "'>%s</iq>",
	                              type, xmpp_stanza_get_id(iq), from, payload ? payload : ""));
}

static int answer_error(mend_account *a, xmpp_stanza_t *iq, const char *from, const char *cond)
{
	char *p =
	    g_strdup_printf("<error type='cancel'><%s xmlns='" NS_STANZAS "'/></error>", cond);
	int r = answer(a, iq, from, "error", p);

	g_free(p);
	return r;
}

/* --- the world the server knows -------------------------------------------------------- */

static char *list_of(const char *jid)
{
	GString *s = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(world); i++)
		if (str_is(world[i].jid, jid))
			g_string_append_printf(s, "<device id='%u'/>", world[i].id);
	if (str_is(jid, ALICE))
		g_string_append_printf(s, "<device id='%u'/>", aid);
	if (!s->len) {
		g_string_free(s, TRUE);
		return NULL;
	}
	g_string_prepend(s, "<list xmlns='" NS_LEGACY "'>");
	g_string_append(s, "</list>");
	return g_string_free(s, FALSE);
}

static peer *peer_of(const char *jid, uint32_t id)
{
	for (size_t i = 0; i < G_N_ELEMENTS(world); i++)
		if (str_is(world[i].jid, jid) && world[i].id == id)
			return &world[i];
	return NULL;
}

static void serve_items(mend_account *a, xmpp_stanza_t *iq, const char *to, const char *node)
{
	char *item = NULL, *p;
	peer *pe;

	if (str_is(node, NODE_LIST))
		item = list_of(to);
	else if (g_str_has_prefix(node, NODE_BUNDLE) &&
	         (pe = peer_of(to,
	                       (uint32_t)g_ascii_strtoull(node + strlen(NODE_BUNDLE), NULL, 10))))
		mend_account_bundle_xml(pe->acc, &item);
	if (!item) {
		answer_error(a, iq, to, "item-not-found");
		return;
	}
	p = g_strdup_printf("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'>"
	                    "<item id='current'>%s</item></items></pubsub>",
	                    node, item);
	answer(a, iq, to, "result", p);
	g_free(p);
	g_free(item);
}

/* XEP-0045 §6.4: what each room says of itself. */
static void serve_disco(mend_account *a, xmpp_stanza_t *iq, const char *to)
{
	const char *features = NULL;
	char *p;

	if (str_is(to, ROOM))
		features = "<feature var='muc_membersonly'/><feature var='muc_nonanonymous'/>";
	else if (str_is(to, OPEN_ROOM))
		features = "<feature var='muc_open'/><feature var='muc_nonanonymous'/>";
	else if (str_is(to, ANON_ROOM))
		features = "<feature var='muc_membersonly'/><feature var='muc_semianonymous'/>";
	if (str_is(to, NOT_ROOM)) {
		answer_error(a, iq, to, "item-not-found");
		return;
	}
	if (!features) { /* an account asked whether it exists */
		answer(a, iq, to, "result", NULL);
		return;
	}
	p = g_strdup_printf("<query xmlns='" NS_DISCO "'><identity category='conference' "
	                    "type='text' name='club'/><feature var='http://jabber.org/protocol/"
	                    "muc'/>%s</query>",
	                    features);
	answer(a, iq, to, "result", p);
	g_free(p);
}

/* XEP-0045 §9.5, §10.5: the room's lists (alice owns it; bob and dave are members). */
static void serve_list(mend_account *a, xmpp_stanza_t *iq, const char *to, xmpp_stanza_t *q)
{
	xmpp_stanza_t *item = find(q, "item", NULL);
	const char *aff = item ? xmpp_stanza_get_attribute(item, "affiliation") : "";
	const char *items = "";
	char *p;

	if (str_is(aff, "owner"))
		items = "<item affiliation='owner' jid='" ALICE "'/>";
	else if (str_is(aff, "member"))
		items = "<item affiliation='member' jid='" BOB
		        "'/><item affiliation='member' jid='" DAVE
		        "'/><item affiliation='member' jid='not a jid@@'/>";
	p = g_strdup_printf("<query xmlns='" NS_ADMIN "'>%s</query>", items);
	answer(a, iq, to, "result", p);
	g_free(p);
}

static void serve_one(mend_account *a, xmpp_stanza_t *st)
{
	const char *to = xmpp_stanza_get_to(st) ? xmpp_stanza_get_to(st) : ALICE;
	xmpp_stanza_t *e;

	if (!str_is(xmpp_stanza_get_name(st), "iq"))
		return;
	if ((e = find(st, "items", NULL)))
		serve_items(a, st, to, xmpp_stanza_get_attribute(e, "node"));
	else if ((e = find(st, "query", NS_DISCO)))
		serve_disco(a, st, to);
	else if ((e = find(st, "query", NS_ADMIN)))
		serve_list(a, st, to, e);
	else if (find(st, "query", NS_MAM) && !mam_manual)
		answer(a, st, to, "result", "<fin xmlns='" NS_MAM "' complete='true'/>");
	else if (!find(st, "query", NS_MAM))
		answer(a, st, to, "result", NULL); /* publish, subscribe, carbons */
}

/* Answers everything the core asked, and what it asks meanwhile. */
static void serve(mend_account *a)
{
	while (served < sent->len) {
		xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, sent->pdata[served++]);

		if (st) {
			serve_one(a, st);
			xmpp_stanza_release(st);
		}
	}
}

/* --- what the core sent ------------------------------------------------------------------- */

/* The index of the first groupchat message to `to` sent since `mark`, or -1. */
static int groupchat_to(guint mark, const char *to)
{
	for (guint i = mark; i < sent->len; i++) {
		xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, sent->pdata[i]);
		int ok = st && str_is(xmpp_stanza_get_name(st), "message") &&
		         str_is(xmpp_stanza_get_to(st), to);

		if (ok && !str_is(xmpp_stanza_get_type(st), "groupchat"))
			ok = 0;
		if (st)
			xmpp_stanza_release(st);
		if (ok)
			return (int)i;
	}
	return -1;
}

static int messages_since(guint mark)
{
	int n = 0;

	for (guint i = mark; i < sent->len; i++)
		n += g_str_has_prefix(sent->pdata[i], "<message");
	return n;
}

static int sent_anywhere(guint mark, const char *needle)
{
	for (guint i = mark; i < sent->len; i++)
		if (strstr(sent->pdata[i], needle))
			return 1;
	return 0;
}

/* Whether sent stanza `i` has a <key rid=ID/>. */
static int has_key_for(int i, uint32_t id)
{
	char want[40];

	g_snprintf(want, sizeof(want), "rid=\"%u\"", id);
	if (i >= 0 && strstr(sent->pdata[i], want))
		return 1;
	g_snprintf(want, sizeof(want), "rid='%u'", id);
	return i >= 0 && strstr(sent->pdata[i], want) != NULL;
}

/* Device `d` reads sent stanza `i` (the room delivers it from alice's real JID here). */
static char *reads(peer *d, int i)
{
	xmpp_stanza_t *st = i >= 0 ? xmpp_stanza_new_from_string(xctx, sent->pdata[i]) : NULL;
	mend_message *m = NULL;
	char *xml, *body = NULL;

	if (!st)
		return NULL;
	xmpp_stanza_set_from(st, ALICE "/r");
	xml = text_of(st);
	if (mend_account_decrypt(d->acc, xml, &m) == MEND_OK)
		body = g_strdup(m->body);
	mend_message_free(m);
	g_free(xml);
	xmpp_stanza_release(st);
	return body;
}

/* --- room traffic as Prosody sends it ----------------------------------------------------------
 */

static int presence(mend_account *a, const char *nick, const char *type, const char *x)
{
	return handle(a, g_strdup_printf("<presence from='" ROOM "/%s' to='" ALICE_FULL "'%s%s%s>"
	                                 "%s</presence>",
	                                 nick, type ? " type='" : "", type ? type : "",
	                                 type ? "'" : "", x));
}

static char *member_x(const char *jid, const char *aff)
{
	return g_strdup_printf("<x xmlns='" NS_MUC_USER
	                       "'><item affiliation='%s' role='participant' "
	                       "jid='%s'/></x>",
	                       aff, jid);
}

/* Adds <name xmlns=ns by=ROOM attr=value/> (a stanza-id or delay the room stamps). */
static void add_child(xmpp_stanza_t *st, const char *name, const char *ns, const char *attr,
                      const char *value)
{
	xmpp_stanza_t *s = xmpp_stanza_new(xctx);

	xmpp_stanza_set_name(s, name);
	xmpp_stanza_set_ns(s, ns);
	xmpp_stanza_set_attribute(s, str_is(name, "delay") ? "from" : "by", ROOM);
	xmpp_stanza_set_attribute(s, attr, value);
	xmpp_stanza_add_child(st, s);
	xmpp_stanza_release(s);
}

/*
 * `xml` (a message) as the room hands it over: from room/nick, type groupchat, the
 * room's stanza-id `sid` (NULL: none), a delay (NULL: live). g_free.
 */
static char *from_room(const char *xml, const char *nick, const char *sid, const char *stamp)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, xml);
	char *from = g_strdup_printf(ROOM "/%s", nick), *out;

	xmpp_stanza_set_from(st, from);
	xmpp_stanza_set_to(st, ALICE_FULL);
	xmpp_stanza_set_type(st, "groupchat");
	if (sid)
		add_child(st, "stanza-id", "urn:xmpp:sid:0", "id", sid);
	if (stamp)
		add_child(st, "delay", "urn:xmpp:delay", "stamp", stamp);
	out = text_of(st);
	xmpp_stanza_release(st);
	g_free(from);
	return out;
}

/* Bob's OMEMO message to the room: encrypted for alice's devices, as his client does. g_free. */
static char *bob_writes(const char *body)
{
	char *list = list_of(ALICE), *st = NULL, *out;
	mend_account *b = world[1].acc;
	uint32_t *ids = NULL;
	size_t n = 0;
	int r;

	mend_account_devicelist_update(b, ALICE, list);
	g_free(list);
	mend_account_devices_needing_bundle(b, ALICE, &ids, &n);
	for (size_t i = 0; i < n; i++) {
		char *bundle = NULL;
		peer *pe = peer_of(ALICE, ids[i]);

		if (ids[i] == aid)
			continue;
		if (pe && mend_account_bundle_xml(pe->acc, &bundle) == MEND_OK)
			mend_account_bundle_process(b, ALICE, ids[i], bundle);
		mend_free(bundle);
	}
	mend_free(ids);
	r = mend_account_encrypt(b, ALICE, body, NULL, &st);
	if (r < 0)
		TAP_BAIL("bob cannot encrypt: %s", mend_strerror(r));
	out = g_strdup(st);
	mend_free(st);
	return out;
}

/* --- connecting ----------------------------------------------------------------------------------
 */

static mend_account *open_dir(const char *root, const char *dir, const char *jid,
                              const mend_host_ops *ops)
{
	char *path = g_build_filename(root, dir, NULL);
	mend_account *acc = NULL;
	int r = mend_account_open(&acc, jid, path, MEND_KEYRING_FILE, ops, NULL);

	g_free(path);
	if (r < 0)
		TAP_BAIL("cannot open %s: %s", jid, mend_strerror(r));
	return acc;
}

static void connect_ready(mend_account *a)
{
	guint ev0 = events->len;

	served = sent->len;
	TAP_EQ(mend_account_connected(a, ALICE_FULL, 0), 0, "alice connects");
	serve(a);
	TAP_EQ(count_events(ev0, MEND_EVENT_READY), 1, "READY");
}

/* Bundles of alice's bob's and carol's devices processed by one another (sessions for bob). */
static void world_knows_alice(mend_account *a)
{
	char *bundle = NULL, *list = list_of(ALICE);

	mend_account_bundle_xml(a, &bundle);
	for (size_t i = 0; i < G_N_ELEMENTS(world); i++) {
		mend_account_devicelist_update(world[i].acc, ALICE, list);
		if (world[i].acc)
			mend_account_bundle_process(world[i].acc, ALICE, aid, bundle);
	}
	mend_free(bundle);
	g_free(list);
}

/* --- 1. rooms OMEMO cannot be used in ------------------------------------------------------ */

static void refused(mend_account *a, const char *room, int want, const char *word)
{
	guint ev0 = events->len, mark = sent->len;
	const rec *ev;
	char *id = NULL;

	TAP_EQ(mend_account_room_join(a, room, "alice", MEND_ROOM_PRESENCE), 0, "join %s", room);
	serve(a);
	ev = event_of(ev0, MEND_EVENT_ROOM);
	TAP_OK(ev && str_is(ev->room, room), "a ROOM event for %s", room);
	TAP_EQ(ev ? ev->error : 0, want, "with error %s", mend_strerror(want));
	TAP_OK(ev && ev->text && strstr(ev->text, word), "and a sentence saying why: %s",
	       ev && ev->text ? ev->text : "(none)");
	TAP_EQ(mend_account_room_status(a, room), want, "room_status says the same");
	TAP_EQ(mend_account_room_send(a, room, "not here", 0, &id), want, "sending is refused");
	TAP_OK(!id, "no message id");
	TAP_OK(!sent_anywhere(mark, "not here"), "nothing left, not even plaintext");
	TAP_EQ(groupchat_to(mark, room), -1, "no groupchat message to the room");
	TAP_EQ(mend_account_room_leave(a, room, MEND_ROOM_PRESENCE), 0, "leave %s", room);
}

static void test_status(mend_account *a)
{
	refused(a, OPEN_ROOM, MEND_ERR_ROOM_OPEN, "members-only");
	refused(a, ANON_ROOM, MEND_ERR_ROOM_ANONYMOUS, "anonymous");
	refused(a, NOT_ROOM, MEND_ERR_NOT_A_ROOM, "not a group chat");
}

/* --- 2. members ---------------------------------------------------------------------------------
 */

static const mend_room_member *member(const mend_room_member *m, size_t n, const char *jid)
{
	for (size_t i = 0; i < n; i++)
		if (str_is(m[i].jid, jid))
			return &m[i];
	return NULL;
}

static void test_members(mend_account *a)
{
	guint ev0 = events->len, mark = sent->len;
	mend_room_member *m = NULL;
	const mend_room_member *c;
	char *x, **rooms = NULL, **nicks = NULL;
	size_t n = 0;
	const rec *ev;

	TAP_EQ(mend_account_room_join(a, ROOM, "alice", MEND_ROOM_PRESENCE), 0, "join the club");
	TAP_OK(sent_anywhere(mark, "<presence") && sent_anywhere(mark, ROOM "/alice"),
	       "the join presence goes to " ROOM "/alice");
	serve(a);
	ev = last_event(ev0, MEND_EVENT_ROOM);
	TAP_EQ(ev ? ev->error : -1, 0, "ROOM: OMEMO can be used in the club");
	TAP_EQ(mend_account_room_status(a, ROOM), 0, "room_status 0");
	x = member_x(CAROL "/phone", "member");
	TAP_EQ(presence(a, "carol", NULL, x), 0, "carol's presence is left to the host too");
	g_free(x);
	x = member_x(ALICE "/r", "owner");
	presence(a, "alice", NULL, x); /* our own, without status 110: still not a member */
	g_free(x);
	TAP_EQ(presence(a, "ghost", NULL, "<x xmlns='" NS_MUC_USER "'/>"), 0,
	       "a presence without an item is ignored");
	x = member_x("@@@", "member");
	TAP_EQ(presence(a, "junk", NULL, x), 0, "an item with a garbage JID is ignored");
	g_free(x);
	serve(a);
	TAP_EQ(mend_account_room_members(a, ROOM, &m, &n), 0, "members");
	TAP_EQ(n, 3, "three: bob and dave from the member list, carol from presence");
	TAP_OK(member(m, n, BOB) && member(m, n, DAVE) && (c = member(m, n, CAROL)),
	       "bob, carol and dave");
	c = member(m, n, CAROL);
	TAP_OK(c && c->present && str_is(c->nick, "carol"), "carol is present as 'carol'");
	TAP_EQ(c ? c->n_devices : 0, 1, "carol's device was fetched and is usable");
	TAP_OK(!member(m, n, ALICE), "we are not in our own member list");
	TAP_OK(member(m, n, DAVE) && member(m, n, DAVE)->n_known == 0, "dave has no device");
	TAP_OK(str_is(member(m, n, BOB) ? member(m, n, BOB)->affiliation : NULL, "member"),
	       "bob's affiliation: member");
	mend_room_members_free(m, n);
	x = member_x(CAROL "/phone", "member");
	presence(a, "carol", "unavailable", x);
	g_free(x);
	mend_account_room_members(a, ROOM, &m, &n);
	c = member(m, n, CAROL);
	TAP_OK(c && !c->present, "carol left: still a member, not present");
	mend_room_members_free(m, n);
	x = member_x(CAROL "/phone", "member");
	presence(a, "carol", NULL, x);
	g_free(x);
	TAP_EQ(mend_account_rooms(a, &rooms, &nicks), 0, "remembered rooms");
	TAP_OK(rooms && str_is(rooms[0], ROOM) && !rooms[1] && str_is(nicks[0], "alice"),
	       "the club, as alice (the refused rooms were left)");
	mend_strv_free(rooms);
	mend_strv_free(nicks);
}

/* --- 3. sending: held for dave, released, dropped, partial --------------------------------------
 */

static void test_send(mend_account *a)
{
	guint ev0 = events->len, mark = sent->len;
	char *id = NULL, *id2 = NULL, *body;
	const rec *ev;
	int i;

	TAP_EQ(mend_account_room_send(a, ROOM, "hello club", 0, &id), 0, "send to the club");
	serve(a);
	ev = event_of(ev0, MEND_EVENT_HELD);
	TAP_OK(ev && str_is(ev->id, id), "HELD: dave cannot read it");
	TAP_EQ(ev ? ev->error : 0, MEND_ERR_ROOM_PARTIAL, "error ROOM_PARTIAL");
	TAP_OK(ev && ev->text && strstr(ev->text, DAVE) && !strstr(ev->text, BOB),
	       "naming dave (and only dave): %s", ev && ev->text ? ev->text : "");
	TAP_EQ(messages_since(mark), 0, "nothing sent while it is held");
	TAP_EQ(mend_account_release(a, "no-such-id", 1), MEND_ERR_NOT_FOUND, "release: unknown id");
	TAP_EQ(mend_account_release(a, id, 1), 0, "release it to those who can read it");
	serve(a);
	i = groupchat_to(mark, ROOM);
	TAP_OK(i >= 0, "a groupchat message to the room");
	TAP_OK(i >= 0 && strstr(sent->pdata[i], "<encrypted") &&
	           strstr(sent->pdata[i], "origin-id") &&
	           strstr(sent->pdata[i], "urn:xmpp:eme:0") &&
	           strstr(sent->pdata[i], "urn:xmpp:hints"),
	       "OMEMO with origin-id, EME and store hints");
	TAP_OK(has_key_for(i, world[1].id) && has_key_for(i, world[2].id),
	       "keys for bob's and carol's devices");
	TAP_OK(has_key_for(i, world[0].id), "and for alice's other device");
	TAP_OK(!sent_anywhere(mark, "hello club"), "the plaintext is in nothing sent");
	ev = event_of(ev0, MEND_EVENT_SENT);
	TAP_OK(ev && str_is(ev->id, id) && ev->text && strstr(ev->text, DAVE),
	       "SENT names who was left out: %s", ev && ev->text ? ev->text : "");
	TAP_EQ(ev ? ev->n_devices : 0, 3, "to 3 devices");
	body = reads(&world[1], i);
	TAP_OK(str_is(body, "hello club"), "bob reads it");
	g_free(body);
	body = reads(&world[0], i);
	TAP_OK(str_is(body, "hello club"), "alice's other device reads it");
	g_free(body);
	/* a second one, dropped */
	ev0 = events->len;
	mark = sent->len;
	mend_account_room_send(a, ROOM, "never mind", 0, &id2);
	serve(a);
	TAP_EQ(count_events(ev0, MEND_EVENT_HELD), 1, "the next one is held too");
	TAP_EQ(mend_account_release(a, id2, 0), 0, "dropped");
	ev = event_of(ev0, MEND_EVENT_SEND_FAILED);
	TAP_OK(ev && str_is(ev->id, id2), "SEND_FAILED for it");
	TAP_EQ(messages_since(mark), 0, "nothing sent");
	TAP_EQ(mend_account_release(a, id2, 0), MEND_ERR_NOT_FOUND, "nothing held any more");
	g_free(id2);
	/* with the flag: no hold */
	ev0 = events->len;
	mark = sent->len;
	TAP_EQ(mend_account_room_send(a, ROOM, "partial", MEND_SEND_ALLOW_PARTIAL, &id2), 0,
	       "send with ALLOW_PARTIAL");
	serve(a);
	TAP_EQ(count_events(ev0, MEND_EVENT_HELD), 0, "not held");
	ev = event_of(ev0, MEND_EVENT_SENT);
	TAP_OK(ev && ev->text && strstr(ev->text, DAVE), "SENT names dave");
	TAP_OK(groupchat_to(mark, ROOM) >= 0, "sent to the room");
	/* the reflection of the first message: ours, once */
	ev0 = events->len;
	i = groupchat_to(0, ROOM);
	TAP_EQ(handle(a, from_room(sent->pdata[i], "alice", "r-1", NULL)), 1,
	       "the room reflects our message");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && ev->outgoing && str_is(ev->from, ALICE) && str_is(ev->body, "hello club"),
	       "shown as ours, with its text from local history");
	TAP_OK(ev && str_is(ev->room, ROOM) && str_is(ev->peer, ROOM) && str_is(ev->nick, "alice"),
	       "in the room, under our nick");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "never tried to decrypt");
	handle(a, from_room(sent->pdata[i], "alice", "r-1", NULL));
	handle(a, from_room(sent->pdata[i], "alice", "r-1b", "2030-01-01T00:00:00Z"));
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 1, "once, however often it comes back");
	g_free(id);
	g_free(id2);
}

/* --- 4. receiving -------------------------------------------------------------------------------
 */

static void test_receive(mend_account *a)
{
	guint ev0 = events->len;
	char *wire = bob_writes("hi from bob");
	char *x = member_x(BOB "/laptop", "member");
	const rec *ev;

	presence(a, "bob", NULL, x);
	g_free(x);
	TAP_EQ(handle(a, from_room(wire, "bob", "r-2", NULL)), 1, "bob's message in the room");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "hi from bob"), "decrypted: %s", ev ? ev->body : "(none)");
	TAP_OK(ev && str_is(ev->from, BOB) && str_is(ev->nick, "bob") && str_is(ev->room, ROOM) &&
	           str_is(ev->peer, ROOM),
	       "from bob's real JID, nick bob, in the room");
	TAP_OK(ev && !ev->outgoing, "not ours");
	TAP_EQ(handle(a, from_room(wire, "bob", "r-2", "2020-01-02T03:04:05Z")), 1,
	       "the room's history replay of it");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 1, "deduped by the room's stanza-id");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "no failure either");
	bob_live = wire; /* it comes again from the archive after a restart */
	/* garbage */
	ev0 = events->len;
	wire = bob_writes("from nowhere");
	TAP_OK(handle(a, from_room(wire, "stranger", "r-3", NULL)) < 0,
	       "an OMEMO message from an unknown nick is rejected");
	TAP_EQ(handle(a, g_strdup_printf("<message from='x@y/z' type='groupchat'>%s",
	                                 strstr(wire, "<encrypted"))),
	       MEND_ERR_FORGED, "a groupchat OMEMO message from a JID that is no room is rejected");
	TAP_EQ(handle(a, g_strdup("<message from='" ROOM "/bob' type='groupchat'><body>plain"
	                          "</body></message>")),
	       0, "a plaintext groupchat message is the host's");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "nothing shown");
	g_free(wire);
	/* DESIGN §7: garbage from the room is rejected or ignored, never a crash */
	TAP_EQ(presence(a, "x", NULL, "<x xmlns='" NS_MUC_USER "'><item/><item jid=''/></x>"), 0,
	       "items without a JID");
	TAP_EQ(handle(a, g_strdup("<presence from='" ROOM "'><x xmlns='" NS_MUC_USER
	                          "'><item jid='a@b'/></x></presence>")),
	       0, "a room presence without a nick");
	TAP_OK(handle(a, g_strdup("<message from='" ROOM
	                          "/bob' type='groupchat'><encrypted xmlns='" NS_LEGACY
	                          "'/><stanza-id xmlns='urn:xmpp:sid:0' by='" ROOM
	                          "' id='g-1'/></message>")) == 1,
	       "an empty <encrypted/> from bob");
	TAP_OK(handle(a, g_strdup("<message from='" ROOM
	                          "/bob' type='groupchat'><encrypted xmlns='" NS_LEGACY
	                          "'><header sid='99999999999'/></encrypted></message>")) == 1,
	       "a header with a bad sid");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 2, "both said to be undecryptable");
	TAP_EQ(last_event(ev0, MEND_EVENT_UNDECRYPTABLE)
	           ? last_event(ev0, MEND_EVENT_UNDECRYPTABLE)->error
	           : 0,
	       MEND_ERR_MALFORMED, "as malformed");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 0, "nothing shown");
}

/* --- 5. the room archive: catch-up, restart, forged results, prekeys kept, history ---------- */

/* The MAM query sent to the room since `mark`: its index, *qid its queryid (g_free). */
static int room_query(guint mark, char **qid)
{
	*qid = NULL;
	for (guint i = mark; i < sent->len; i++) {
		xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, sent->pdata[i]);
		xmpp_stanza_t *q = st ? find(st, "query", NS_MAM) : NULL;
		int ok = q && str_is(xmpp_stanza_get_to(st), ROOM);

		if (ok)
			*qid = g_strdup(xmpp_stanza_get_attribute(q, "queryid"));
		if (st)
			xmpp_stanza_release(st);
		if (ok)
			return (int)i;
	}
	return -1;
}

/* The text of element `name` in sent stanza `i` (g_free), or NULL. */
static char *sent_text(int i, const char *name)
{
	xmpp_stanza_t *st = i >= 0 ? xmpp_stanza_new_from_string(xctx, sent->pdata[i]) : NULL;
	xmpp_stanza_t *e = st ? find(st, name, NULL) : NULL;
	char *t = e ? xmpp_stanza_get_text(e) : NULL, *out = g_strdup(t);

	if (t)
		xmpp_free(xctx, t);
	if (st)
		xmpp_stanza_release(st);
	return out;
}

/*
 * A result of the room's archive (from `from`; XEP-0313 §4.2) for query `qid`: `inner` as
 * the room kept it, from room/nick, with the muc#user item of the sender's real JID that
 * Prosody's mod_muc_mam adds in non-anonymous rooms (real NULL: none). g_free.
 */
static char *archived(const char *from, const char *qid, const char *id, const char *stamp,
                      const char *nick, const char *inner, const char *real)
{
	char *msg = from_room(inner, nick, NULL, NULL), *x = NULL, *out, *end;

	if (real) {
		end = strstr(msg, "</message>");
		x = g_strdup_printf("%.*s<x xmlns='" NS_MUC_USER "'><item affiliation='member' "
		                    "jid='%s'/></x></message>",
		                    (int)(end - msg), msg, real);
	}
	out = g_strdup_printf("<message from='%s' to='" ALICE_FULL "'><result xmlns='" NS_MAM
	                      "' queryid='%s' id='%s'><forwarded xmlns='urn:xmpp:forward:0'>"
	                      "<delay xmlns='urn:xmpp:delay' stamp='%s'/>%s</forwarded></result>"
	                      "</message>",
	                      from, qid, id, stamp, x ? x : msg);
	g_free(msg);
	g_free(x);
	return out;
}

static int fin(mend_account *a, int q, const char *last)
{
	xmpp_stanza_t *st = xmpp_stanza_new_from_string(xctx, sent->pdata[q]);
	char *p = g_strdup_printf("<fin xmlns='" NS_MAM "' complete='true'><set xmlns='http://"
	                          "jabber.org/protocol/rsm'><last>%s</last></set></fin>",
	                          last);
	int r = answer(a, st, ROOM, "result", p);

	g_free(p);
	xmpp_stanza_release(st);
	return r;
}

/* Alice's bundle offering only its first one-time prekey: whoever uses it takes that one. */
static char *one_prekey_bundle(mend_account *a)
{
	GRegex *re = g_regex_new("<preKeyPublic[^>]*>[^<]*</preKeyPublic>", 0, 0, NULL);
	GMatchInfo *mi = NULL;
	char *bundle = NULL, *first = NULL, *out, *rest;

	mend_account_bundle_xml(a, &bundle);
	if (g_regex_match(re, bundle, 0, &mi))
		first = g_match_info_fetch(mi, 0);
	g_match_info_free(mi);
	rest = g_regex_replace_literal(re, bundle, -1, 0, "", 0, NULL);
	out = first ? g_strconcat("", rest, NULL) : NULL;
	if (out) { /* put the one prekey back where the list was */
		char *at = strstr(out, "<prekeys>"), *fixed;

		if (!at)
			TAP_BAIL("no <prekeys> in alice's bundle");
		at += strlen("<prekeys>");
		fixed = g_strdup_printf("%.*s%s%s", (int)(at - out), out, first, at);
		g_free(out);
		out = fixed;
	}
	g_free(rest);
	g_free(first);
	mend_free(bundle);
	g_regex_unref(re);
	return out;
}

/* `jid`'s first message to alice's device, built on `bundle` (a prekey message). g_free. */
static char *first_message(mend_account *s, const char *bundle, const char *body)
{
	char *list = g_strdup_printf("<list xmlns='" NS_LEGACY "'><device id='%u'/></list>", aid);
	char *st = NULL, *out;

	mend_account_devicelist_update(s, ALICE, list);
	g_free(list);
	if (mend_account_bundle_process(s, ALICE, aid, bundle) < 0 ||
	    mend_account_encrypt(s, ALICE, body, NULL, &st) < 0)
		TAP_BAIL("cannot encrypt to alice");
	out = g_strdup(st);
	mend_free(st);
	return out;
}

/* How many MESSAGE events since `mark` had `body`. */
static int count_bodies(guint mark, const char *body)
{
	int n = 0;

	for (guint i = mark; i < events->len; i++) {
		const rec *r = g_ptr_array_index(events, i);

		n += r->kind == MEND_EVENT_MESSAGE && str_is(r->body, body);
	}
	return n;
}

/* Bob's message encrypted for carol only (not for alice's device). g_free. */
static char *bob_to_carol(const char *body)
{
	mend_account *b = world[1].acc;
	char *list = list_of(CAROL), *bundle = NULL, *st = NULL, *out;

	mend_account_devicelist_update(b, CAROL, list);
	mend_account_bundle_xml(world[2].acc, &bundle);
	mend_account_bundle_process(b, CAROL, world[2].id, bundle);
	if (mend_account_encrypt(b, CAROL, body, NULL, &st) < 0)
		TAP_BAIL("bob cannot encrypt to carol");
	out = g_strdup(st);
	mend_free(st);
	mend_free(bundle);
	g_free(list);
	return out;
}

/*
 * The first catch-up of the room: the latest page; a result from someone else is forged;
 * erin and fay both built their first message on the same one-time prekey of alice's
 * (XEP-0384 §5): during the room's catch-up it is kept, so both decrypt.
 */
static void test_first_catchup(mend_account *a, const char *root)
{
	static const mend_host_ops quiet = {0};
	mend_account *e = open_dir(root, "erin", "erin@x", &quiet);
	mend_account *f = open_dir(root, "fay", "fay@x", &quiet);
	char *bundle = one_prekey_bundle(a), *me = first_message(e, bundle, "erin was here");
	char *mf = first_message(f, bundle, "fay too"), *qid = NULL, *old;
	guint ev0 = events->len, mark = sent->len;
	const rec *ev;
	int q;

	mam_manual = 1;
	TAP_EQ(mend_account_room_join(a, ROOM, "alice", MEND_ROOM_CATCHUP), 0,
	       "join again, catching up");
	q = room_query(mark, &qid);
	TAP_OK(q >= 0 && qid, "the room's archive is asked (XEP-0313 on the room JID)");
	if (!qid)
		TAP_BAIL("no room archive query");
	TAP_OK(strstr(sent->pdata[q], "<before/>") && !strstr(sent->pdata[q], "<after"),
	       "the first time: the latest page (RSM <before/>)");
	TAP_EQ(handle(a, archived("mallory@evil", qid, "m-0", "2021-01-01T00:00:00Z", "bob", me,
	                          "erin@x")),
	       MEND_ERR_FORGED, "a result for our query from someone else is rejected as forged");
	old = bob_to_carol("before alice was there");
	TAP_EQ(handle(a, archived(ROOM, qid, "m-0b", "2021-01-01T00:00:00Z", "bob", old, BOB)), 1,
	       "a message from before we were in the room, not encrypted for this device");
	g_free(old);
	TAP_EQ(handle(a, archived(ROOM, qid, "m-1", "2021-01-01T00:00:01Z", "erin", me, "erin@x")),
	       1, "erin's message from the room archive");
	TAP_EQ(handle(a, archived(ROOM, qid, "m-2", "2021-01-01T00:00:02Z", "fay", mf, "fay@x")), 1,
	       "fay's, on the same one-time prekey");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 0, "not done before the fin");
	serve(a);
	TAP_EQ(fin(a, q, "m-2"), 1, "fin");
	TAP_EQ(count_bodies(ev0, "erin was here"), 1, "erin's message decrypted");
	TAP_EQ(count_bodies(ev0, "fay too"), 1, "and fay's: the prekey was kept during catch-up");
	TAP_EQ(count_bodies(ev0, "erin was here") + count_bodies(ev0, "fay too"),
	       count_events(ev0, MEND_EVENT_MESSAGE), "nothing else (the forged one is not shown)");
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->from, "erin@x") && str_is(ev->room, ROOM) && ev->archived &&
	           str_is(ev->timestamp, "2021-01-01T00:00:01Z"),
	       "from erin's real JID (the archive's item), archived, at its original time");
	ev = event_of(ev0, MEND_EVENT_CATCHUP_DONE);
	TAP_OK(ev && str_is(ev->room, ROOM), "CATCHUP_DONE for the room");
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0,
	       "the one not for this device is not said on its own");
	ev = event_of(ev0, MEND_EVENT_NOTICE);
	TAP_OK(ev && ev->text && strstr(ev->text, "1 earlier message in " ROOM),
	       "but in one summary line: %s", ev && ev->text ? ev->text : "(none)");
	g_free(qid);
	g_free(bundle);
	g_free(me);
	g_free(mf);
	mend_account_free(e);
	mend_account_free(f);
}

/*
 * Alice restarts; meanwhile bob wrote twice. The catch-up asks from where it left (after
 * m-2) and shows what is new once, in order, at its time; what was seen is not shown again,
 * nor is our own earlier message; then the room's history shows them all, ours from the
 * sealed history.
 */
static mend_account *test_restart(mend_account *a, const char *root)
{
	char *w1 = bob_writes("while you were away"), *w2 = bob_writes("and again");
	char *qid = NULL, *after, *ours = g_strdup(sent->pdata[groupchat_to(0, ROOM)]);
	guint ev0, mark;
	int q, i;

	mend_account_free(a);
	a = open_dir(root, "alice", ALICE, &alice_ops);
	connect_ready(a);
	ev0 = events->len;
	mark = sent->len;
	TAP_EQ(mend_account_room_join(a, ROOM, "alice", MEND_ROOM_CATCHUP | MEND_ROOM_PRESENCE), 0,
	       "after a restart, join again");
	TAP_OK(sent_anywhere(mark, "maxstanzas"), "no history replay asked: the archive has it");
	q = room_query(mark, &qid);
	after = sent_text(q, "after");
	TAP_OK(str_is(after, "m-2"), "the room archive is asked after m-2, where we left");
	if (!qid)
		TAP_BAIL("no room archive query after restart");
	handle(a, archived(ROOM, qid, "r-2", "2020-01-02T03:04:05Z", "bob", bob_live, BOB));
	handle(a, archived(ROOM, qid, "m-2", "2021-01-01T00:00:02Z", "fay", "<message/>", NULL));
	handle(a, archived(ROOM, qid, "m-3", "2021-01-02T00:00:00Z", "alice", ours, ALICE));
	handle(a, archived(ROOM, qid, "m-4", "2021-01-02T00:00:01Z", "bob", w1, BOB));
	handle(a, archived(ROOM, qid, "m-5", "2021-01-02T00:00:02Z", "bob", w2, BOB));
	serve(a);
	fin(a, q, "m-5");
	TAP_EQ(count_events(ev0, MEND_EVENT_MESSAGE), 2,
	       "two messages, each once (not bob's seen live, nor fay's seen archived)");
	for (i = 0; i < 2; i++) {
		const rec *r = NULL;
		int k = 0;

		for (guint j = ev0; j < events->len; j++)
			if (((rec *)events->pdata[j])->kind == MEND_EVENT_MESSAGE && k++ == i)
				r = events->pdata[j];
		TAP_OK(
		    r && str_is(r->body, i ? "and again" : "while you were away") &&
		        str_is(r->timestamp, i ? "2021-01-02T00:00:02Z" : "2021-01-02T00:00:01Z") &&
		        str_is(r->from, BOB),
		    "message %d: bob's, in order, at its original time", i + 1);
	}
	TAP_EQ(count_events(ev0, MEND_EVENT_UNDECRYPTABLE), 0, "nothing undecryptable");
	/* the history of the room */
	ev0 = events->len;
	mark = sent->len;
	g_free(qid);
	TAP_EQ(mend_account_history(a, ROOM, NULL), 0, "the room's history");
	q = room_query(mark, &qid);
	TAP_OK(q >= 0 && qid, "asks the room's archive");
	if (!qid)
		TAP_BAIL("no history query");
	handle(a, archived(ROOM, qid, "m-3", "2021-01-02T00:00:00Z", "alice", ours, ALICE));
	handle(a, archived(ROOM, qid, "m-4", "2021-01-02T00:00:01Z", "bob", w1, BOB));
	fin(a, q, "m-4");
	TAP_OK(count_bodies(ev0, "hello club") == 1 &&
	           count_bodies(ev0, "while you were away") == 1,
	       "our own message (from the sealed history) and bob's (seen before: from local "
	       "history)");
	TAP_OK(event_of(ev0, MEND_EVENT_MESSAGE) && event_of(ev0, MEND_EVENT_MESSAGE)->outgoing,
	       "ours shows as ours");
	TAP_OK(event_of(ev0, MEND_EVENT_HISTORY_DONE) &&
	           str_is(event_of(ev0, MEND_EVENT_HISTORY_DONE)->room, ROOM),
	       "HISTORY_DONE for the room");
	g_free(after);
	g_free(qid);
	g_free(w1);
	g_free(w2);
	g_free(ours);
	g_free(bob_live);
	mam_manual = 0;
	return a;
}

static int64_t test_clock(void *data)
{
	return *(const int64_t *)data;
}

/* An archive error pauses the room's catch-up (position kept) and asks again 10 s later. */
static void test_archive_error(mend_account *a)
{
	int64_t now = g_get_real_time() / G_USEC_PER_SEC;
	guint ev0 = events->len, mark = sent->len;
	char *qid = NULL, *after;
	xmpp_stanza_t *st;
	int q;

	mam_manual = 1;
	mend_account_set_clock(a, test_clock, &now);
	mend_account_room_join(a, ROOM, "alice", MEND_ROOM_CATCHUP);
	q = room_query(mark, &qid);
	st = q >= 0 ? xmpp_stanza_new_from_string(xctx, sent->pdata[q]) : NULL;
	if (!st)
		TAP_BAIL("no room archive query");
	mark = sent->len;
	TAP_EQ(answer_error(a, st, ROOM, "internal-server-error"), 1, "the room archive fails");
	xmpp_stanza_release(st);
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 0, "the catch-up has not ended");
	TAP_OK(event_of(ev0, MEND_EVENT_NOTICE) &&
	           strstr(event_of(ev0, MEND_EVENT_NOTICE)->text, "10 seconds"),
	       "the user is told when it is asked again");
	g_clear_pointer(&qid, g_free);
	now += 9;
	mend_account_tick(a);
	TAP_EQ(room_query(mark, &qid), -1, "not before its time");
	now += 1;
	mend_account_tick(a);
	q = room_query(mark, &qid);
	after = sent_text(q, "after");
	TAP_OK(q >= 0 && str_is(after, "m-5"), "10 seconds later, from the kept position");
	if (q < 0)
		TAP_BAIL("no retry");
	mark = sent->len;
	TAP_EQ(mend_account_history(a, ROOM, "2021-01-02T00:00:00Z"), 0,
	       "the room's history asked during its catch-up");
	TAP_EQ(messages_since(mark) + (int)(sent->len - mark), 0, "waits for the catch-up");
	fin(a, q, "m-5");
	TAP_EQ(count_events(ev0, MEND_EVENT_CATCHUP_DONE), 1, "then it ends");
	g_free(qid);
	q = room_query(mark, &qid);
	TAP_OK(q >= 0 && strstr(sent->pdata[q], "2021-01-02T00:00:00Z"),
	       "and the history query leaves, since its time");
	if (q >= 0)
		fin(a, q, "m-5");
	TAP_EQ(count_events(ev0, MEND_EVENT_HISTORY_DONE), 1, "HISTORY_DONE");
	mend_account_set_clock(a, NULL, NULL);
	mam_manual = 0;
	g_free(after);
	g_free(qid);
}

/* The room tells that `jid`'s affiliation is now `aff` (XEP-0045 §9.3). */
static void affiliation_from_room(mend_account *a, const char *jid, const char *aff)
{
	handle(a,
	       g_strdup_printf("<message from='" ROOM "' to='" ALICE_FULL "'><x xmlns='" NS_MUC_USER
	                       "'><item affiliation='%s' jid='%s'/></x></message>",
	                       aff, jid));
}

/* What bob reads of the messages sent since `mark`, in order, joined by '|'. g_free. */
static char *bob_reads_since(guint mark)
{
	GString *s = g_string_new(NULL);

	for (guint i = mark; i < sent->len; i++) {
		char *b =
		    g_str_has_prefix(sent->pdata[i], "<message") ? reads(&world[1], (int)i) : NULL;

		if (b)
			g_string_append_printf(s, "%s%s", s->len ? "|" : "", b);
		g_free(b);
	}
	return g_string_free(s, FALSE);
}

/*
 * A held message outlives a restart: HELD again in the new session, and again when a later
 * message queues behind it (saying so). It never leaves unconfirmed, even once every member
 * can read it (dave is no member any more): HELD again, saying so; release sends it.
 */
static mend_account *test_held_restart(mend_account *a, const char *root)
{
	guint ev0 = events->len, mark;
	char *id = NULL, *id2 = NULL, *got;
	const rec *ev;

	TAP_EQ(mend_account_room_send(a, ROOM, "before the restart", 0, &id), 0,
	       "send to the club");
	serve(a);
	TAP_EQ(count_events(ev0, MEND_EVENT_HELD), 1, "held for dave");
	mend_account_free(a);
	a = open_dir(root, "alice", ALICE, &alice_ops);
	ev0 = events->len;
	mark = sent->len;
	connect_ready(a);
	mend_account_room_join(a, ROOM, "alice", MEND_ROOM_PRESENCE);
	serve(a);
	ev = event_of(ev0, MEND_EVENT_HELD);
	TAP_OK(ev && str_is(ev->id, id) && ev->text && strstr(ev->text, DAVE),
	       "after a restart, HELD again for it: %s", ev && ev->text ? ev->text : "(none)");
	ev0 = events->len;
	TAP_EQ(mend_account_room_send(a, ROOM, "behind it", 0, &id2), 0, "a later message");
	serve(a);
	ev = last_event(ev0, MEND_EVENT_HELD);
	TAP_OK(ev && str_is(ev->id, id) && ev->text && strstr(ev->text, "1 later message"),
	       "the user is told it waits behind the held one: %s",
	       ev && ev->text ? ev->text : "(none)");
	TAP_EQ(count_events(ev0, MEND_EVENT_HELD), 1, "told once");
	/* every member can read it now: still nothing leaves unconfirmed */
	ev0 = events->len;
	affiliation_from_room(a, DAVE, "none");
	mend_account_room_send(a, ROOM, "third", 0, NULL);
	serve(a);
	TAP_EQ(messages_since(mark), 0, "dave left the members: nothing sent without release");
	ev = last_event(ev0, MEND_EVENT_HELD);
	TAP_OK(ev && str_is(ev->id, id) && ev->text && !strstr(ev->text, DAVE) &&
	           strstr(ev->text, "2 later messages"),
	       "HELD again with what is true now: %s", ev && ev->text ? ev->text : "(none)");
	TAP_EQ(mend_account_release(a, id, 1), 0, "release it");
	serve(a);
	got = bob_reads_since(mark);
	TAP_OK(str_is(got, "before the restart|behind it|third"),
	       "it leaves, then the two behind it: %s", got);
	g_free(got);
	TAP_EQ(mend_account_release(a, NULL, 1), MEND_ERR_NOT_FOUND, "nothing held any more");
	affiliation_from_room(a, DAVE, "member");
	g_free(id);
	g_free(id2);
	return a;
}

/* A message from alice's other device (an occupant as `nick`), encrypted as its client does. */
static char *other_device_writes(const char *body)
{
	char *st = NULL, *out;

	if (mend_account_encrypt(world[0].acc, ALICE, body, NULL, &st) < 0)
		TAP_BAIL("alice's other device cannot encrypt");
	out = g_strdup(st);
	mend_free(st);
	return out;
}

/* Our other device in the room, under its own nick or ours; the room's own notices. */
static void test_room_traffic(mend_account *a)
{
	guint ev0 = events->len;
	char *x = member_x(ALICE "/phone", "owner"), *w;
	mend_room_member *m = NULL;
	size_t n = 0;
	const rec *ev;

	presence(a, "alice-phone", NULL, x);
	g_free(x);
	w = other_device_writes("from my phone");
	TAP_EQ(handle(a, from_room(w, "alice-phone", "r-10", NULL)), 1,
	       "a message from our other device, under its own nick");
	g_free(w);
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "from my phone") && ev->outgoing && str_is(ev->from, ALICE),
	       "decrypted, and ours (outgoing, from our JID)");
	ev0 = events->len;
	w = other_device_writes("same nick");
	TAP_EQ(handle(a, from_room(w, "alice", "r-11", NULL)), 1,
	       "and one under our own nick (a shared nick)");
	g_free(w);
	ev = event_of(ev0, MEND_EVENT_MESSAGE);
	TAP_OK(ev && str_is(ev->body, "same nick") && ev->outgoing, "decrypted too, not taken "
	                                                            "for a reflection");
	mend_account_room_members(a, ROOM, &m, &n);
	TAP_OK(n == 3 && !member(m, n, ALICE), "our other device is no member");
	mend_room_members_free(m, n);
	/* XEP-0045 §9.3: the room tells of an absent user's new affiliation */
	TAP_EQ(
	    handle(a, g_strdup("<message from='" ROOM "' to='" ALICE_FULL "'><x xmlns='" NS_MUC_USER
	                       "'><item affiliation='member' jid='erin@x'/></x></message>")),
	    0, "an affiliation change from the room is the host's too");
	mend_account_room_members(a, ROOM, &m, &n);
	TAP_OK(member(m, n, "erin@x") && !member(m, n, "erin@x")->present, "erin is a member now");
	mend_room_members_free(m, n);
	handle(a, g_strdup("<message from='" ROOM "' to='" ALICE_FULL "'><x xmlns='" NS_MUC_USER
	                   "'><item affiliation='none' jid='erin@x'/></x></message>"));
	mend_account_room_members(a, ROOM, &m, &n);
	TAP_OK(!member(m, n, "erin@x"), "and no more once it is taken away");
	mend_room_members_free(m, n);
	/* XEP-0045 §15.6 status 104: the configuration changed: asked again */
	ev0 = events->len;
	TAP_EQ(
	    handle(a, g_strdup("<message from='" ROOM "' type='groupchat' to='" ALICE_FULL
	                       "'><x xmlns='" NS_MUC_USER "'><status code='104'/></x></message>")),
	    0, "a configuration change");
	TAP_OK(served < sent->len && strstr(sent->pdata[sent->len - 1], NS_DISCO),
	       "makes the core ask the room's disco#info again");
	serve(a);
	TAP_OK(last_event(ev0, MEND_EVENT_ROOM) && last_event(ev0, MEND_EVENT_ROOM)->error == 0,
	       "ROOM again: still members-only and non-anonymous");
}

/* Profanity's send hook: the stanza at once when nobody is left out, else queued (HELD). */
static void test_encrypt_or_queue(mend_account *a)
{
	guint ev0 = events->len;
	char *stanza = NULL, *id = NULL;

	TAP_EQ(mend_account_room_encrypt_or_queue(a, ROOM, "hook partial", "hook-1",
	                                          MEND_SEND_ALLOW_PARTIAL, &stanza),
	       0, "encrypt_or_queue with ALLOW_PARTIAL: encrypted at once");
	TAP_OK(stanza && strstr(stanza, "groupchat") && strstr(stanza, "<encrypted") &&
	           !strstr(stanza, "hook partial"),
	       "a groupchat OMEMO stanza, no plaintext");
	mend_free(stanza);
	stanza = NULL;
	TAP_EQ(mend_account_room_encrypt_or_queue(a, ROOM, "hook held", "hook-2", 0, &stanza), 1,
	       "without the flag: queued");
	serve(a);
	TAP_OK(!stanza && event_of(ev0, MEND_EVENT_HELD) &&
	           str_is(event_of(ev0, MEND_EVENT_HELD)->id, "hook-2"),
	       "and HELD for dave");
	TAP_EQ(mend_account_release(a, NULL, 0), 0, "every held message dropped");
	mend_account_room_status(a, OPEN_ROOM); /* asked */
	serve(a);
	TAP_EQ(mend_account_room_encrypt_or_queue(a, OPEN_ROOM, "no", NULL, 0, &stanza),
	       MEND_ERR_ROOM_OPEN, "an open room is refused at once");
	TAP_EQ(mend_account_room_send(a, ROOM "/nick", "x", 0, &id), MEND_ERR_INVALID_ARG,
	       "a full JID is no room");
}

static void rm_rf(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	if (!dir) {
		g_unlink(path);
		return;
	}
	while ((name = g_dir_read_name(dir))) {
		char *p = g_build_filename(path, name, NULL);

		rm_rf(p);
		g_free(p);
	}
	g_dir_close(dir);
	g_rmdir(path);
}

int main(void)
{
	static const mend_host_ops quiet = {0};
	char *root = g_dir_make_tmp("mend-rooms-XXXXXX", NULL);
	mend_account *a;

	if (!root)
		TAP_BAIL("no temp dir");
	xctx = xmpp_ctx_new(NULL, NULL);
	sent = g_ptr_array_new_with_free_func(g_free);
	events = g_ptr_array_new_with_free_func(rec_free);
	a = open_dir(root, "alice", ALICE, &alice_ops);
	aid = mend_account_device_id(a);
	world[0] = (peer){ALICE, open_dir(root, "alice2", ALICE, &quiet), 0};
	world[1] = (peer){BOB, open_dir(root, "bob", BOB, &quiet), 0};
	world[2] = (peer){CAROL, open_dir(root, "carol", CAROL, &quiet), 0};
	for (size_t i = 0; i < G_N_ELEMENTS(world); i++)
		world[i].id = mend_account_device_id(world[i].acc);
	world_knows_alice(a);
	connect_ready(a);
	test_status(a);
	test_members(a);
	test_send(a);
	test_receive(a);
	test_room_traffic(a);
	test_encrypt_or_queue(a);
	test_first_catchup(a, root);
	a = test_restart(a, root);
	test_archive_error(a);
	a = test_held_restart(a, root);
	mend_account_free(a);
	for (size_t i = 0; i < G_N_ELEMENTS(world); i++)
		mend_account_free(world[i].acc);
	g_ptr_array_free(sent, TRUE);
	g_ptr_array_free(events, TRUE);
	xmpp_ctx_free(xctx);
	rm_rf(root);
	g_free(root);
	return tap_done();
}
