/*
 * jid.c - the one JID normaliser every per-chat setting and lookup goes
 * through, so that "Bob@Example.org/phone" and "bob@example.org" name the
 * same chat (RFC 7622 basics).
 *
 * RFC 7622 §3.1: the domainpart starts after the first '@' (if any) and
 * ends before the first '/' (if any); the resourcepart is dropped here.
 * §3.2: a domainpart is case-insensitive and a trailing '.' is removed.
 * §3.3: the localpart is UsernameCaseMapped (RFC 8265 §3.3): case-folded and
 * in Unicode Normalization Form C. The full PRECIS rules are not applied; a
 * JID with an empty or oversized part, invalid UTF-8, a control or space
 * character, or a localpart character RFC 7622 §3.3.1 forbids is refused.
 */
#include "config.h"

#include <string.h>
#include <glib.h>
#include "mend/mend.h"

#define JID_PART_MAX 1023 /* RFC 7622 §3.2, §3.3: 1 to 1023 octets */

/* Case-folds and NFC-normalises `s` (len bytes); NULL if empty, too long or malformed. */
static char *part_fold(const char *s, size_t len, const char *forbidden)
{
	const char *p;
	char *folded, *out;

	if (len == 0 || len > JID_PART_MAX || !g_utf8_validate(s, (gssize)len, NULL))
		return NULL;
	for (p = s; p < s + len; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if (g_unichar_iscntrl(c) || g_unichar_isspace(c) ||
		    (c < 0x80 && strchr(forbidden, (int)c)))
			return NULL;
	}
	folded = g_utf8_casefold(s, (gssize)len);
	out = folded ? g_utf8_normalize(folded, -1, G_NORMALIZE_NFC) : NULL;
	g_free(folded);
	if (out && (*out == '\0' || strlen(out) > JID_PART_MAX)) {
		g_free(out);
		out = NULL;
	}
	return out;
}

char *mend_jid_normalize(const char *jid)
{
	const char *slash, *at, *dom;
	size_t dlen;
	char *local = NULL, *domain, *out;

	if (!jid)
		return NULL;
	slash = strchr(jid, '/');
	dlen = slash ? (size_t)(slash - jid) : strlen(jid);
	at = memchr(jid, '@', dlen);
	dom = at ? at + 1 : jid;
	dlen -= (size_t)(dom - jid);
	if (dlen > 0 && dom[dlen - 1] == '.') /* §3.2: the fully qualified form */
		dlen--;
	/* §3.3.1: these never appear in a localpart; '@' and '/' in a domainpart */
	if (at && !(local = part_fold(jid, (size_t)(at - jid), "\"&'/:<>@")))
		return NULL;
	domain = part_fold(dom, dlen, "@/");
	if (!domain) {
		g_free(local);
		return NULL;
	}
	out = local ? g_strconcat(local, "@", domain, NULL) : g_strdup(domain);
	g_free(local);
	g_free(domain);
	return out;
}
