/*
 * errors.c - error codes as sentences (mend_strerror), the gettext binding,
 * and the translation of libsignal's codes into ours where they enter.
 * The core never prints: adapters show these sentences.
 */
#include "config.h"

#include <libintl.h>
#include "internal.h"

#define N_(s) (s)

static const char *const messages[] = {
    [0] = N_("Success."),
    [-MEND_ERR_NOMEM] = N_("Out of memory."),
    [-MEND_ERR_INVALID_ARG] = N_("Invalid argument."),
    [-MEND_ERR_MALFORMED] = N_("The message is malformed and was rejected."),
    [-MEND_ERR_BAD_BASE64] = N_("The message contains damaged base64 data and was rejected."),
    [-MEND_ERR_TOO_LARGE] = N_("The message is larger than mend accepts and was rejected."),
    [-MEND_ERR_NOT_FOR_THIS_DEVICE] =
        N_("The message was not encrypted for this device. The sender may not know this "
           "device yet; read it on another device."),
    [-MEND_ERR_DUPLICATE] = N_("This message was already received."),
    [-MEND_ERR_NO_SESSION] =
        N_("There is no encrypted session with the sending device; ask the sender to send "
           "again."),
    [-MEND_ERR_KEY_AUTH] =
        N_("The message key failed its integrity check; the message was damaged or forged."),
    [-MEND_ERR_PAYLOAD_AUTH] =
        N_("The message text failed its integrity check; the message was damaged or forged."),
    [-MEND_ERR_INVALID_KEY] = N_("A device published an invalid key or signature."),
    [-MEND_ERR_UNKNOWN_PREKEY] =
        N_("The message was built on a one-time key this device no longer has."),
    [-MEND_ERR_UNTRUSTED] =
        N_("The device's identity key changed or is not trusted; verify it before using it."),
    [-MEND_ERR_NO_DEVICES] = N_("The contact has no OMEMO device; nothing was sent."),
    [-MEND_ERR_NEED_BUNDLE] = N_("Keys of some devices must be fetched before sending."),
    [-MEND_ERR_CRYPTO] = N_("The cryptography library failed."),
    [-MEND_ERR_STORE] = N_("The key store could not be read or written; check the disk."),
    [-MEND_ERR_STORE_KEY_WRONG] =
        N_("The store key does not open this key store; the keyring holds a different key."),
    [-MEND_ERR_STORE_KEY_MISSING] =
        N_("The key store exists but its key is in neither the keyring nor a key file; unlock "
           "the keyring that holds it."),
    [-MEND_ERR_STORE_CORRUPT] = N_("A value in the key store is damaged."),
    [-MEND_ERR_STORE_VERSION] =
        N_("The key store was written by a newer mend; upgrade mend to use it."),
    [-MEND_ERR_KEYRING] =
        N_("No keyring (Secret Service) answered; start or unlock GNOME Keyring or KWallet."),
    [-MEND_ERR_PROTOCOL] = N_("The encrypted session failed; ask the sender to send again."),
    [-MEND_ERR_NOT_FOUND] = N_("Not found."),
    [-MEND_ERR_NONE_TRUSTED] = N_("None of the contact's devices is trusted, so nothing was "
                                  "sent; list them with devices and trust one you have "
                                  "checked."),
    [-MEND_ERR_VERIFY_MISMATCH] = N_("The fingerprints in that link do not match the keys "
                                     "this contact's devices use; nothing was verified. Compare "
                                     "them in person before trusting anything."),
    [-MEND_ERR_KEYRING_LOCKED] =
        N_("The keyring is locked; unlock it to use mend on this account."),
    [-MEND_ERR_KEY_CHANGED] = N_("This device now shows a new identity key. Compare its new "
                                 "fingerprint with its owner, then accept that key by naming "
                                 "its fingerprint."),
    [-MEND_ERR_UNDELIVERABLE] = N_("The server could not deliver the message; check the "
                                   "address."),
    [-MEND_ERR_FORGED] = N_("A forwarded message claimed to come from your own account but "
                            "did not; it was rejected."),
    [-MEND_ERR_STALE_SESSION] = N_("The sender's device encrypted it with a session state "
                                   "this device has already moved past (was it restored from "
                                   "a backup?)."),
    [-MEND_ERR_OLD_SIGNED_PREKEY] =
        N_("The message was built on a signed prekey this device retired (replaced more than "
           "30 days ago); ask the sender to send again."),
    [-MEND_ERR_ROOM_OPEN] = N_("This room is not members-only: anyone may join it and the "
                               "members' keys cannot be known in advance, so mend does not "
                               "encrypt there. Ask its owner to make it members-only."),
    [-MEND_ERR_ROOM_ANONYMOUS] = N_("This room hides its members' addresses "
                                    "(semi-anonymous), so their keys cannot be found and mend "
                                    "does not encrypt there. Ask its owner to make addresses "
                                    "visible to members."),
    [-MEND_ERR_NOT_A_ROOM] = N_("That address is not a group chat, or it did not answer."),
    [-MEND_ERR_ROOM_PARTIAL] = N_("Some members of this room could not read the message; it "
                                  "waits until you send it to those who can, or drop it."),
    [-MEND_ERR_NO_UPLOAD] = N_("Your server offers no HTTP File Upload service, so files "
                               "cannot be sent."),
    [-MEND_ERR_HTTP] = N_("The file server answered with an error, or not at all."),
    [-MEND_ERR_TIMEOUT] = N_("The transfer stalled and was given up."),
    [-MEND_ERR_TLS] = N_("The file server's HTTPS certificate could not be verified."),
    [-MEND_ERR_IO] = N_("A local file could not be read or written."),
};

/*
 * MEND_LOCALEDIR, when set, replaces the install's LOCALEDIR: the tests point it at the
 * catalogues `make check` compiles into the build tree (tests/locale), so a build that
 * was never installed runs translated.
 */
void mend_i18n_init(void)
{
	static gsize done;
	const char *dir = g_getenv("MEND_LOCALEDIR");

	if (g_once_init_enter(&done)) {
		bindtextdomain(GETTEXT_PACKAGE, dir && *dir ? dir : LOCALEDIR);
		bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
		g_once_init_leave(&done, 1);
	}
}

const char *mend_strerror(int code)
{
	if (code > 0 || code <= MEND_ERR_LAST || !messages[-code])
		return dgettext(GETTEXT_PACKAGE, "Unknown error.");
	return dgettext(GETTEXT_PACKAGE, messages[-code]);
}

void mend_free(void *p)
{
	g_free(p);
}

int mend_err_from_signal(int sg_err)
{
	switch (sg_err) {
	case SG_SUCCESS:
		return MEND_OK;
	case SG_ERR_NOMEM:
		return MEND_ERR_NOMEM;
	case SG_ERR_INVAL:
		return MEND_ERR_INVALID_ARG;
	case SG_ERR_DUPLICATE_MESSAGE:
		return MEND_ERR_DUPLICATE;
	case SG_ERR_INVALID_KEY:
	case SG_ERR_VRF_SIG_VERIF_FAILED:
		return MEND_ERR_INVALID_KEY;
	case SG_ERR_INVALID_KEY_ID:
		return MEND_ERR_UNKNOWN_PREKEY;
	case SG_ERR_INVALID_MAC:
		return MEND_ERR_KEY_AUTH;
	case SG_ERR_INVALID_MESSAGE:
	case SG_ERR_INVALID_PROTO_BUF:
	case SG_ERR_INVALID_VERSION:
	case SG_ERR_LEGACY_MESSAGE:
		return MEND_ERR_MALFORMED;
	case SG_ERR_NO_SESSION:
		return MEND_ERR_NO_SESSION;
	case SG_ERR_UNTRUSTED_IDENTITY:
		return MEND_ERR_UNTRUSTED;
	default:
		/* store callbacks fail with SG_ERR_UNKNOWN and leave the real code in the account
		 */
		return MEND_ERR_PROTOCOL;
	}
}

char *mend_fingerprint_grouped(const char *hex)
{
	GString *s = g_string_new(NULL);
	size_t i;

	for (i = 0; hex && hex[i]; i++) {
		if (i && i % 8 == 0)
			g_string_append_c(s, ' ');
		g_string_append_c(s, hex[i]);
	}
	return g_string_free(s, FALSE);
}

const char *mend_trust_name(int trust)
{
	switch (trust) {
	case MEND_TRUST_UNTRUSTED:
		return dgettext(GETTEXT_PACKAGE, "untrusted");
	case MEND_TRUST_TOFU:
		return dgettext(GETTEXT_PACKAGE, "trusted (first use)");
	case MEND_TRUST_VERIFIED:
		return dgettext(GETTEXT_PACKAGE, "verified");
	case MEND_TRUST_BLIND:
		return dgettext(GETTEXT_PACKAGE, "trusted (blindly, not verified)");
	case MEND_TRUST_UNDECIDED:
		return dgettext(GETTEXT_PACKAGE, "not trusted yet (waiting for you)");
	case MEND_TRUST_COMPROMISED:
		return dgettext(GETTEXT_PACKAGE, "KEY CHANGED (not trusted)");
	default:
		return dgettext(GETTEXT_PACKAGE, "unknown");
	}
}

const char *mend_versions_name(unsigned versions)
{
	int v2 = (versions & (1u << (MEND_OMEMO_2 - 1))) != 0;
	int legacy = (versions & (1u << (MEND_OMEMO_LEGACY - 1))) != 0;

	return v2 && legacy ? "2, 0.3" : v2 ? "2" : legacy ? "0.3" : NULL;
}

#ifdef HAVE_QRENCODE
#include <qrencode.h>

static int dark(const QRcode *q, int x, int y)
{
	return x >= 0 && y >= 0 && x < q->width && y < q->width && (q->data[y * q->width + x] & 1);
}

/* Two modules per character cell, light on dark, with a quiet zone of 2. */
char *mend_qr_text(const char *text)
{
	QRcode *q = text ? QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1) : NULL;
	GString *s;
	int x, y;

	if (!q)
		return NULL;
	s = g_string_new(NULL);
	for (y = -2; y < q->width + 2; y += 2) {
		for (x = -2; x < q->width + 2; x++) {
			int top = dark(q, x, y), bot = dark(q, x, y + 1);

			g_string_append(s, !top && !bot ? "\u2588"
			                   : !top       ? "\u2580"
			                   : !bot       ? "\u2584"
			                                : " ");
		}
		g_string_append_c(s, '\n');
	}
	QRcode_free(q);
	return g_string_free(s, FALSE);
}
#else
char *mend_qr_text(const char *text)
{
	return NULL;
}
#endif
