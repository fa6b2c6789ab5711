/*
 * mend.h - the public API of the mend core: one context per XMPP account,
 * OMEMO (XEP-0384) encryption for every device of the peer and of our own
 * account, a sealed store, and the host ops through which the core reaches
 * whatever client hosts it.
 *
 * Ownership: every function that returns memory says who frees it and with
 * what. Strings returned as `char *` are freed with mend_free().
 * Errors are negative MEND_ERR_* codes; mend_strerror() turns them into a
 * sentence in the user's language (gettext domain "mend").
 */
#ifndef MEND_MEND_H
#define MEND_MEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MEND_EXPORT __attribute__((visibility("default")))
#else
#define MEND_EXPORT
#endif

/* Error codes. 0 is success; every error is negative. */
enum mend_error {
	MEND_OK = 0,
	MEND_ERR_NOMEM = -1,
	MEND_ERR_INVALID_ARG = -2,
	MEND_ERR_MALFORMED = -3,           /* XML not of the expected shape */
	MEND_ERR_BAD_BASE64 = -4,          /* base64 truncated or with bad characters */
	MEND_ERR_TOO_LARGE = -5,           /* a count or length over our limits */
	MEND_ERR_NOT_FOR_THIS_DEVICE = -6, /* the header has no key for our device id */
	MEND_ERR_DUPLICATE = -7,           /* this message was already decrypted */
	MEND_ERR_NO_SESSION = -8,          /* no session with the sending device */
	MEND_ERR_KEY_AUTH = -9,            /* the ratchet message failed its MAC */
	MEND_ERR_PAYLOAD_AUTH = -10,       /* the payload failed its AES-GCM tag */
	MEND_ERR_INVALID_KEY = -11,        /* a public key or signature is invalid */
	MEND_ERR_UNKNOWN_PREKEY = -12,     /* a prekey message names a prekey we lack */
	MEND_ERR_UNTRUSTED = -13,          /* the device's identity key is not trusted */
	MEND_ERR_NO_DEVICES = -14,         /* the recipient has no OMEMO device */
	MEND_ERR_NEED_BUNDLE = -15,        /* sessions must be built from bundles first */
	MEND_ERR_CRYPTO = -16,             /* the crypto library failed */
	MEND_ERR_STORE = -17,              /* the database could not be read or written */
	MEND_ERR_STORE_KEY_WRONG = -18,    /* the store key does not open this store */
	MEND_ERR_STORE_KEY_MISSING = -19,  /* the store exists but its key was not found */
	MEND_ERR_STORE_CORRUPT = -20,      /* a sealed value failed to open */
	MEND_ERR_STORE_VERSION = -21,      /* the store was written by a newer mend */
	MEND_ERR_KEYRING = -22,            /* the Secret Service refused */
	MEND_ERR_PROTOCOL = -23,           /* another ratchet failure */
	MEND_ERR_NOT_FOUND = -24,          /* no such item */
	MEND_ERR_FORGED = -25,             /* a carbon or archive result not from our account */
	MEND_ERR_NONE_TRUSTED = -26,       /* the contact has devices, none of them trusted */
	MEND_ERR_VERIFY_MISMATCH = -27,    /* a verification URI does not match a known key */
	MEND_ERR_KEYRING_LOCKED = -28,     /* the keyring holding the store key is locked */
	MEND_ERR_KEY_CHANGED = -29,       /* the device shows a new key: accept it by fingerprint */
	MEND_ERR_STALE_SESSION = -30,     /* a new message under a message key already used */
	MEND_ERR_OLD_SIGNED_PREKEY = -31, /* a prekey message on a signed prekey we retired */
	MEND_ERR_UNDELIVERABLE = -32,     /* the server bounced our message (unknown user...) */
	MEND_ERR_ROOM_OPEN = -33,         /* the room is not members-only: no OMEMO there */
	MEND_ERR_ROOM_ANONYMOUS = -34,    /* the room hides members' addresses: no OMEMO there */
	MEND_ERR_NOT_A_ROOM = -35,        /* the address is not a group chat (or did not answer) */
	MEND_ERR_ROOM_PARTIAL = -36, /* some room members could not read it: waits for the user */
	MEND_ERR_NO_UPLOAD = -37,    /* our server offers no HTTP File Upload (XEP-0363) */
	MEND_ERR_HTTP = -38,         /* the HTTP server answered with an error, or not at all */
	MEND_ERR_TIMEOUT = -39,      /* a transfer stalled longer than its time limit */
	MEND_ERR_TLS = -40,          /* the HTTPS server's certificate could not be verified */
	MEND_ERR_IO = -41,           /* a local file could not be read or written */
	MEND_ERR_LAST = -42
};

/* A sentence for the user, translated (domain "mend"). Never NULL; static. */
MEND_EXPORT const char *mend_strerror(int code);

/* Binds the gettext domain "mend" to LOCALEDIR. Idempotent. */
MEND_EXPORT void mend_i18n_init(void);

/* Frees memory returned by the core (strings, buffers). NULL is fine. */
MEND_EXPORT void mend_free(void *p);

/* Trust in a device's identity key. */
typedef enum mend_trust {
	MEND_TRUST_UNTRUSTED = 0,  /* the user said: never encrypt to it */
	MEND_TRUST_TOFU = 1,       /* trusted on first use */
	MEND_TRUST_VERIFIED = 2,   /* the user compared fingerprints */
	MEND_TRUST_BLIND = 3,      /* btbv: trusted while no device of the contact is verified */
	MEND_TRUST_UNDECIDED = 4,  /* waits for the user (manual, or btbv after a verification) */
	MEND_TRUST_COMPROMISED = 5 /* its identity key changed: nothing goes to it until accepted */
} mend_trust;

/* How new devices are trusted (per account, changeable per contact). */
typedef enum mend_policy {
	MEND_POLICY_TOFU = 0,  /* trust on first use; a changed key is never trusted silently */
	MEND_POLICY_BTBV = 1,  /* blind trust before verification (as Conversations) */
	MEND_POLICY_MANUAL = 2 /* nothing is trusted until the user says so */
} mend_policy;

/* Whether we encrypt to a device in this state (TOFU, VERIFIED, BLIND). */
MEND_EXPORT int mend_trust_is_trusted(int trust);

/* Whether a message came as a Message Carbon (XEP-0280), and which way. */
typedef enum mend_carbon {
	MEND_CARBON_NONE = 0,
	MEND_CARBON_SENT = 1,    /* one of our other devices sent it */
	MEND_CARBON_RECEIVED = 2 /* a copy of a message another of our devices received */
} mend_carbon;

typedef enum mend_event_kind {
	MEND_EVENT_MESSAGE = 1,       /* a decrypted message */
	MEND_EVENT_UNDECRYPTABLE = 2, /* an OMEMO message we cannot read (error, text) */
	MEND_EVENT_SENT = 3, /* the host took our message, encrypted (id, peer, body, devices) */
	/* our message won't be sent, or (error UNDELIVERABLE, after SENT) the server bounced it */
	MEND_EVENT_SEND_FAILED = 4,  /* (id, peer, body, error, text) */
	MEND_EVENT_NOTICE = 5,       /* a sentence for the user (peer may be NULL) */
	MEND_EVENT_READY = 6,        /* our device list and bundle are published */
	MEND_EVENT_CATCHUP_DONE = 7, /* the archive catch-up after connecting ended (`room` set:
	                                that room's catch-up, MEND_ROOM_CATCHUP) */
	MEND_EVENT_HISTORY_DONE = 8, /* a mend_account_history() query ended (error set) */
	MEND_EVENT_DEVICELIST = 9,   /* a contact's device list changed (peer, n_devices) */
	MEND_EVENT_DELIVERED = 10, /* a device of peer confirmed our message (id, body; XEP-0184) */
	/*
	 * A room's state is known or changed (room, error: 0 = OMEMO can be used there, else
	 * MEND_ERR_ROOM_OPEN / _ROOM_ANONYMOUS / _NOT_A_ROOM; text: a sentence saying why).
	 * Also after membership changes (n_devices: how many devices a message would go to).
	 */
	MEND_EVENT_ROOM = 11,
	/*
	 * A room message waits for the user (id, room, body, error MEND_ERR_ROOM_PARTIAL, text:
	 * which members could not read it and why, and what to do). It stays queued until
	 * mend_account_release() sends it to those who can read it or drops it.
	 */
	MEND_EVENT_HELD = 12
} mend_event_kind;

/*
 * What the core tells the host. All pointers are borrowed for the duration
 * of the callback; members that do not apply are NULL / 0.
 */
typedef struct mend_event {
	mend_event_kind kind;
	const char *peer;      /* the conversation: the other party's bare JID */
	const char *from;      /* the sender's bare JID (ours for our own messages) */
	uint32_t device;       /* the sender's device id */
	const char *body;      /* decrypted text */
	const char *timestamp; /* ISO 8601 UTC; the original time for offline/archived messages */
	const char *stanza_id; /* XEP-0359 stanza-id stamped by our server, if any */
	const char *id;        /* the message id (XEP-0359 origin-id) */
	mend_carbon carbon;
	int archived;       /* 1 when it came from the archive (MAM) or local history */
	int outgoing;       /* 1 when one of our devices sent it */
	int trust;          /* mend_trust of the sending device, -1 if unknown */
	int error;          /* MEND_ERR_* */
	const char *text;   /* a sentence for the user (notices, errors) */
	unsigned n_devices; /* SENT: how many devices it was encrypted for */
	int announced;      /* MESSAGE: 0 when the sending device is not in the sender's published
	                       device list (fetched once more first): hosts show it so and never
	                       as trusted, whatever `trust` says */
	int plaintext;      /* MESSAGE: 1 when it came unencrypted (answering mend_account_history;
	                       live plaintext is left to the host) */
	/* MESSAGE, SENT: the body is an encrypted file's link (XEP-0454), parsed; else NULL */
	const struct mend_file_link *file;
	const char *room; /* group chats: the room's bare JID (peer is the room too), else NULL */
	const char *nick; /* group chats: the sender's nick in the room (ours for our own) */
	/* MESSAGE, UNDECRYPTABLE: the OMEMO version it came in (MEND_OMEMO_LEGACY or
	 * MEND_OMEMO_2), 0 when not known (plaintext, local history of older versions) */
	int version;
	int downgraded;      /* MESSAGE: legacy OMEMO from a device that wrote OMEMO:2 before */
	unsigned n_devices2; /* SENT: how many of n_devices got it in OMEMO:2 */
} mend_event;

/* XEP-0384 versions: legacy OMEMO (eu.siacs.conversations.axolotl, shown "0.3") and OMEMO:2
 * (urn:xmpp:omemo:2, shown "2"). As bits (mend_device_info.versions): 1 << (version - 1). */
#define MEND_OMEMO_LEGACY 1
#define MEND_OMEMO_2      2

typedef enum mend_log_level {
	MEND_LOG_ERROR = 0,
	MEND_LOG_WARNING = 1,
	MEND_LOG_INFO = 2,
	MEND_LOG_DEBUG = 3
} mend_log_level;

/* What the core tells the user about, through show_notice. */
typedef enum mend_notice_kind {
	MEND_NOTICE_KEYFILE_FALLBACK = 1, /* no Secret Service: store key in a 0600 file */
	MEND_NOTICE_NOT_FOR_THIS_DEVICE = 2
} mend_notice_kind;

/*
 * Host ops: the only way the core reaches its host (the pattern of libotr's
 * OtrlMessageAppOps). Every member may be NULL. Strings passed in are
 * borrowed for the duration of the call.
 */
typedef struct mend_host_ops {
	/*
	 * Sends a stanza (serialized XML). Returns 0 when the connection took it; anything
	 * else keeps a queued message in the queue (the user is told; it is sent later).
	 */
	int (*send_stanza)(const char *xml, void *user_data);
	/* A sentence for the user; jid is the conversation or NULL. */
	void (*show_notice)(mend_notice_kind kind, const char *jid, const char *text,
	                    void *user_data);
	/* A log line for the developer. */
	void (*log)(mend_log_level level, const char *text, void *user_data);
	/* Our bundle changed (one-time prekeys replenished): republish it. */
	void (*bundle_changed)(void *user_data);
	/* Messages, send results and notices (see mend_event). */
	void (*event)(const mend_event *ev, void *user_data);
} mend_host_ops;

/* Where the store key is kept. */
typedef enum mend_keyring_mode {
	MEND_KEYRING_AUTO = 0,   /* Secret Service; a 0600 key file if none answers */
	MEND_KEYRING_SECRET = 1, /* Secret Service only: fail if none answers */
	MEND_KEYRING_FILE = 2,   /* key file only */
	/*
	 * Flag, or'ed into the above: a locked keyring is not asked to unlock
	 * (no prompt; MEND_ERR_KEYRING_LOCKED at once). Without it, the desktop's
	 * unlock prompt is requested and its answer awaited for up to 30 s; an
	 * unanswered prompt stays up, so hosts retry later with this flag.
	 */
	MEND_KEYRING_NO_PROMPT = 0x100
} mend_keyring_mode;

typedef struct mend_account mend_account;

/*
 * Opens (creating on first use) the account `bare_jid` with its store in
 * `data_dir` (created 0700 if missing). On first use a device id, an
 * identity key pair, a signed prekey and 100 one-time prekeys are made.
 * `ops` is copied; `user_data` is handed back to every op.
 * Frees with mend_account_free().
 */
MEND_EXPORT int mend_account_open(mend_account **out, const char *bare_jid, const char *data_dir,
                                  mend_keyring_mode keyring, const mend_host_ops *ops,
                                  void *user_data);
MEND_EXPORT void mend_account_free(mend_account *acc);

MEND_EXPORT const char *mend_account_jid(const mend_account *acc);
MEND_EXPORT uint32_t mend_account_device_id(const mend_account *acc);
/* Our fingerprint: 64 lower-case hex digits (Curve25519 form of the identity key). */
MEND_EXPORT int mend_account_fingerprint(const mend_account *acc, char out[65]);

/* Our bundle (legacy OMEMO <bundle/> element) as XML. Free with mend_free(). */
MEND_EXPORT int mend_account_bundle_xml(mend_account *acc, char **xml);
/*
 * Our device list (legacy <list/>), merged: the ids already published for our
 * account (known through mend_account_devicelist_update) plus ours.
 */
MEND_EXPORT int mend_account_own_devicelist_xml(mend_account *acc, char **xml);

/* Stores the device list `list_xml` (a legacy <list/> element) of `jid`. */
MEND_EXPORT int mend_account_devicelist_update(mend_account *acc, const char *jid,
                                               const char *list_xml);
/* The device ids known for `jid` (our own other devices for our own JID). Free ids with
 * mend_free(). */
MEND_EXPORT int mend_account_devices(mend_account *acc, const char *jid, uint32_t **ids, size_t *n);
/* Devices of `jid` with neither a session nor a known-broken bundle. Free with mend_free(). */
MEND_EXPORT int mend_account_devices_needing_bundle(mend_account *acc, const char *jid,
                                                    uint32_t **ids, size_t *n);
/* Builds a session with device `device_id` of `jid` from its bundle (legacy <bundle/>). */
MEND_EXPORT int mend_account_bundle_process(mend_account *acc, const char *jid, uint32_t device_id,
                                            const char *bundle_xml);

/*
 * Encrypts `body` for every device of `to_jid` and every other device of our
 * own account that has a session, and returns the whole <message/> stanza
 * (type chat, with the EME hint, the store hint and a fallback body).
 * Every ratchet state change is committed before this returns.
 * MEND_ERR_NEED_BUNDLE: some device has no session yet (see
 * mend_account_devices_needing_bundle); MEND_ERR_NO_DEVICES: nobody to encrypt to.
 * `id` is the stanza id to use (NULL: a random one). Free *stanza with mend_free().
 */
MEND_EXPORT int mend_account_encrypt(mend_account *acc, const char *to_jid, const char *body,
                                     const char *id, char **stanza);

typedef struct mend_message {
	char *from;      /* bare JID of the sender */
	uint32_t device; /* sender device id */
	char *body;      /* plaintext; NULL for a key transport message */
	char *stanza_id; /* XEP-0359 stanza-id stamped by our server, or NULL */
	int prekey;      /* 1 when this message started a new session */
	int key_only;    /* 1 for a key transport message (no <payload/>): protocol, not text */
	int version;     /* the OMEMO version it came in: MEND_OMEMO_LEGACY or MEND_OMEMO_2 */
	int downgraded;  /* legacy OMEMO from a device that wrote OMEMO:2 before (it fell back) */
	int64_t written; /* OMEMO:2: its SCE <time/> (XEP-0420 §4), Unix seconds; 0: none */
} mend_message;

/*
 * Decrypts a <message/> stanza (serialized XML). Every state change is
 * committed before this returns; on any error nothing is changed.
 * Returns MEND_ERR_DUPLICATE for a message already decrypted.
 * Free *msg with mend_message_free().
 */
MEND_EXPORT int mend_account_decrypt(mend_account *acc, const char *stanza, mend_message **msg);
MEND_EXPORT void mend_message_free(mend_message *msg);

/*
 * Catch-up (XEP-0313 MAM, offline messages): between begin and end, used
 * one-time prekeys are kept so that several archived messages built on the
 * same prekey all decrypt; end deletes them and asks for a republish.
 */
MEND_EXPORT void mend_account_catchup_begin(mend_account *acc);
MEND_EXPORT int mend_account_catchup_end(mend_account *acc);

/* How many one-time prekeys are published (unused). */
MEND_EXPORT int mend_account_prekey_count(mend_account *acc, size_t *n);

/* --- the protocol engine ---------------------------------------------------
 * A host pipes stanzas through the core: every stanza it receives goes to
 * mend_account_handle_stanza(); the core sends its own stanzas (PEP, MAM,
 * carbons, encrypted messages) through host ops send_stanza and reports what
 * happened through host ops event.
 */

/* What mend_account_connected() does besides publishing our device and bundle. */
#define MEND_CONNECT_CARBONS 0x1 /* enable Message Carbons (XEP-0280) */
#define MEND_CONNECT_CATCHUP 0x2 /* catch up from the archive (XEP-0313) from where we left */
#define MEND_CONNECT_DISCO   0x4 /* answer disco#info and ping (for hosts that answer neither) */
/*
 * The host cannot announce "+notify" in its caps (libpurple): subscribe to
 * each contact's device-list node (XEP-0060 §6.1) when it is first fetched on
 * the connection, so that its changes are pushed all the same.
 */
#define MEND_CONNECT_SUBSCRIBE 0x8

/*
 * The stream is up as `full_jid`: fetch our device list, add us, publish it
 * and our bundle (READY when done), send what is waiting in the pending
 * queue, and per flags enable carbons and catch up (CATCHUP_DONE when done).
 */
MEND_EXPORT int mend_account_connected(mend_account *acc, const char *full_jid, unsigned flags);
/* The stream went down: outstanding requests are forgotten, pending messages stay queued. */
MEND_EXPORT void mend_account_disconnected(mend_account *acc);

/*
 * A stanza (serialized XML) the host received. Returns 1 when the core
 * consumed it (an OMEMO message, a reply to our request, a PEP event for
 * OMEMO nodes, a carbon or archive result of ours, a receipt or a bounce of
 * one of our messages), 0 when it is not ours to
 * handle, <0 on error (it was still handled: rejected and logged).
 */
MEND_EXPORT int mend_account_handle_stanza(mend_account *acc, const char *xml);

/*
 * Sends `body` to `to` (a bare JID, or a full JID for one resource) encrypted for all its devices
 * and our other devices. If device lists or bundles must be fetched first, the message waits in the
 * persistent pending queue (it survives a restart) and leaves as soon as possible; SENT or
 * SEND_FAILED reports the outcome. It leaves the queue only once the host's send_stanza took it.
 * Plaintext never leaves. The message asks for a delivery receipt (XEP-0184): DELIVERED reports
 * it; a bounce from the server is a later SEND_FAILED. *id (may be NULL) receives the message
 * id: mend_free().
 */
MEND_EXPORT int mend_account_send(mend_account *acc, const char *to, const char *body, char **id);

/*
 * For hosts whose stanza hook must return the stanza to send (Profanity):
 * when every device of `to` (and ours) is known and has a session, encrypts
 * `body` now, keeps it in local history and returns 0 with the whole
 * <message/> in *stanza (mend_free) for the host to send instead of the
 * plaintext one. Otherwise queues it exactly like mend_account_send() and
 * returns 1 with *stanza NULL (SENT or SEND_FAILED follow, with `id`). `id`
 * (may be NULL: a random one) is the host's message id, kept as the origin-id.
 */
MEND_EXPORT int mend_account_encrypt_or_queue(mend_account *acc, const char *to, const char *body,
                                              const char *id, char **stanza);

/*
 * Why a message to `to` could not be sent (error `err` of mend_account_send,
 * mend_account_encrypt_or_queue or SEND_FAILED), as a sentence the user can act
 * on: for MEND_ERR_NO_DEVICES what the server said of the address ("does not
 * exist", "was not found; check the address"). It never advises sending
 * unencrypted. Free with mend_free().
 */
MEND_EXPORT char *mend_account_send_error_text(mend_account *acc, const char *to, int err);

/* Messages waiting in the pending queue. */
MEND_EXPORT int mend_account_pending_count(mend_account *acc, size_t *n);

/*
 * Our archive with `with` (bare JID), since `since` (ISO 8601, or NULL for all):
 * every message as a MESSAGE event with archived=1, oldest first (messages
 * decrypted before come from the sealed local history, since forward secrecy
 * means they cannot be decrypted twice), then HISTORY_DONE. For a remembered room
 * (`with` = the room's JID) the room's archive is asked (after the room's catch-up, when one
 * runs), and our own messages in it come from the sealed local history.
 */
MEND_EXPORT int mend_account_history(mend_account *acc, const char *with, const char *since);

/* Fetches `jid`'s device list and the bundles of devices we have no key for. */
MEND_EXPORT int mend_account_refresh_devices(mend_account *acc, const char *jid);

/*
 * XEP-0115 entity capabilities for the host's presence: a <c/> element whose
 * ver hashes what the core answers to disco#info with MEND_CONNECT_DISCO,
 * including the +notify features that make the server push device lists
 * (XEP-0163 §4.3). Free *xml with mend_free().
 */
MEND_EXPORT int mend_account_caps_xml(mend_account *acc, char **xml);

/* 1 while requests (IQs) or sends are outstanding, else 0. */
MEND_EXPORT int mend_account_busy(mend_account *acc);

/* What we know of one device. */
typedef struct mend_device_info {
	uint32_t id;
	char fingerprint[65];     /* 64 hex digits, or "" when we have not seen its key */
	char new_fingerprint[65]; /* COMPROMISED: the new key it now shows, else "" */
	int trust;                /* mend_trust, or -1 when unknown */
	int active;               /* listed in the current device list */
	int has_session;
	int64_t last_seen;   /* unix time of the last message from it, 0 if never */
	unsigned n_new_keys; /* how many new keys it showed (new_fingerprint: the first of them) */
	int stale;           /* a contact's device silent for MEND_STALE_DAYS: not encrypted to */
	unsigned versions;   /* bits 1 << (MEND_OMEMO_* - 1): the versions whose lists name it */
	int wrote_version;   /* the version it last wrote to us in (MEND_OMEMO_*), 0: none yet */
	int send_version;    /* the version we write to it in now, 0: none */
} mend_device_info;

/*
 * A contact's device from which nothing came for this many days (counted from
 * when it was first listed, or when the user last trusted it) is inactive:
 * messages skip it (and name it) while the contact has another trusted
 * device, until it sends again or the user trusts it again.
 */
#define MEND_STALE_DAYS 90

/* Devices of `jid` (for our own JID: all of ours, this one included). Free *out with mend_free().
 */
MEND_EXPORT int mend_account_device_infos(mend_account *acc, const char *jid,
                                          mend_device_info **out, size_t *n);
/*
 * A fingerprint (64 hex digits) as users compare it with Conversations and
 * Dino: 8 groups of 8, space separated. Free with mend_free().
 */
MEND_EXPORT char *mend_fingerprint_grouped(const char *hex);
/*
 * `text` (a verification URI) as a QR code drawn with block characters, one
 * line per two rows of modules; NULL when mend was built without libqrencode.
 * Free with mend_free().
 */
MEND_EXPORT char *mend_qr_text(const char *text);
/* A trust state in words, translated ("untrusted", "trusted (first use)", "verified", "unknown").
 */
MEND_EXPORT const char *mend_trust_name(int trust);
/* The OMEMO versions in `versions` (bits 1 << (MEND_OMEMO_* - 1), as mend_device_info has
 * them) as XEP-0384 names them: "2, 0.3", "2" or "0.3"; NULL when neither bit is set. */
MEND_EXPORT const char *mend_versions_name(unsigned versions);

/*
 * Sets the trust of a device whose key we know. Trust belongs to the key the
 * device had when we first saw it: a device that has since shown another key
 * (new_fingerprint set) or is COMPROMISED cannot be trusted this way
 * (MEND_ERR_KEY_CHANGED, nothing changes): name the key with
 * mend_account_trust_key(). Untrusting is always allowed.
 */
MEND_EXPORT int mend_account_set_trust(mend_account *acc, const char *jid, uint32_t device,
                                       mend_trust trust);
/*
 * Marks the key of `device` of `jid` whose fingerprint is `fingerprint_hex`
 * (64 hex digits; spaces allowed) VERIFIED. It may be the device's current key
 * or one of the new keys it showed: that key then replaces the old one (the old
 * session is dropped; a new one is built from its bundle), and the messages that
 * arrived under it, kept sealed until now, are decrypted and reported as MESSAGE
 * events. MEND_ERR_VERIFY_MISMATCH when the device never showed that key (nothing
 * changes), MEND_ERR_NOT_FOUND when no key of the device is known,
 * MEND_ERR_INVALID_ARG when the fingerprint is not 64 hex digits.
 */
MEND_EXPORT int mend_account_trust_key(mend_account *acc, const char *jid, uint32_t device,
                                       const char *fingerprint_hex);

/* The trust policy for `jid` (NULL: the account's). A contact without its own uses the account's.
 */
MEND_EXPORT int mend_account_set_policy(mend_account *acc, const char *jid, mend_policy policy);
MEND_EXPORT mend_policy mend_account_get_policy(mend_account *acc, const char *jid);
MEND_EXPORT const char *mend_policy_name(mend_policy policy);
/* Parses "tofu", "btbv" or "manual"; -1 for anything else. */
MEND_EXPORT int mend_policy_parse(const char *name);

/*
 * Our verification URI, as Conversations and Dino exchange them (often as a
 * QR code): xmpp:JID?omemo-sid-ID=HEX;omemo-sid-ID=HEX... for this device and
 * our other devices whose keys we know. Free *uri with mend_free().
 */
MEND_EXPORT int mend_account_verification_uri(mend_account *acc, char **uri);
/*
 * Marks every device named in `uri` whose known key matches VERIFIED (a
 * COMPROMISED device whose new key matches is accepted as verified). If any
 * named device's key does not match, nothing changes:
 * MEND_ERR_VERIFY_MISMATCH. *verified (may be NULL) gets how many were
 * verified; MEND_ERR_NOT_FOUND when none of them is known yet.
 */
MEND_EXPORT int mend_account_verify_uri(mend_account *acc, const char *uri, unsigned *verified);

/*
 * Makes a new identity key (and prekeys) for this device, keeping its device
 * id: for a key that may have leaked. Contacts see the device as COMPROMISED
 * until they accept the new key. Republishes the bundle when connected.
 */
MEND_EXPORT int mend_account_reset_identity(mend_account *acc);

/*
 * The bare JID every per-chat setting and lookup is keyed by (RFC 7622
 * basics): the resource dropped, localpart and domainpart case-folded (NFC),
 * a trailing '.' of the domain removed. "Bob@Example.org/phone" gives
 * "bob@example.org". NULL for NULL or a malformed JID. Free with mend_free().
 */
MEND_EXPORT char *mend_jid_normalize(const char *jid);

/*
 * Lets the core do what waits for time (asking the archive again after it
 * answered a catch-up with an error) or for another thread (a file transfer's
 * progress and end). Call it every MEND_TICK_SECONDS while connected;
 * handling a stanza does the same.
 */
MEND_EXPORT void mend_account_tick(mend_account *acc);
/* How often the hosts call mend_account_tick() (seconds): a finished transfer is told
 * within that time. */
#define MEND_TICK_SECONDS 1

/* --- encrypted files (XEP-0454 over XEP-0363 HTTP File Upload) ------------------
 * A file is encrypted with AES-256-GCM (a random 32-byte key, a 12-byte IV, the 16-byte
 * tag appended), PUT into a slot of our server's upload service, and its link
 * aesgcm://HOST/PATH#<IV hex><key hex> is sent as the body of an OMEMO message, as
 * Conversations, Dino, Gajim, Monal and Profanity do. HTTP goes through libcurl, HTTPS
 * only, with the server's certificate verified unless trust_any_tls is set (for test
 * servers on loopback; nothing else turns verification off). ca_file names one more
 * trusted certificate (PEM) beside the system's; verification stays on.
 */

/* A received link, parsed (XEP-0454 §3: 12- or 16-byte IV, then the 32-byte key). */
typedef struct mend_file_link {
	char *url;      /* the https:// address to download (the fragment removed) */
	char *host;     /* the server's host name */
	char *name;     /* a safe file name from the URL's last path segment (no '/') */
	uint8_t iv[16]; /* iv_len bytes */
	size_t iv_len;  /* 12 or 16 */
	uint8_t key[32];
} mend_file_link;

/*
 * Parses `text` (surrounding white space allowed) as one aesgcm:// link: the fragment is
 * exactly 24 or 32 hex digits of IV and 64 of key. MEND_ERR_MALFORMED for anything else.
 * Free *out with mend_file_link_free().
 */
MEND_EXPORT int mend_file_link_parse(const char *text, mend_file_link **out);
MEND_EXPORT void mend_file_link_free(mend_file_link *link);

/* Defaults of mend_transfer_opts. */
#define MEND_FILE_TIMEOUT  30                  /* seconds without progress */
#define MEND_FILE_MAX_SIZE (512 * 1024 * 1024) /* bytes: the largest download accepted */

/* How a transfer runs. Zeroed: verified TLS, the defaults above, no progress. */
typedef struct mend_transfer_opts {
	int trust_any_tls; /* 1: accept any certificate (test servers on loopback only) */
	unsigned timeout;  /* seconds without progress before giving up (0: MEND_FILE_TIMEOUT) */
	uint64_t max_size; /* downloads: the largest file accepted (0: MEND_FILE_MAX_SIZE) */
	/* Called as bytes move (total 0 while unknown); nonzero cancels the transfer. */
	int (*progress)(uint64_t done, uint64_t total, void *data);
	void *progress_data;
	const char *ca_file; /* a PEM file of certificates trusted beside the system's, or NULL */
	unsigned send_flags; /* mend_account_send_file to a room: MEND_SEND_ALLOW_PARTIAL or 0 */
} mend_transfer_opts;

/* A saved file. */
typedef struct mend_file_result {
	char *path;      /* where it was saved */
	uint64_t size;   /* plaintext bytes */
	char sha256[65]; /* of the plaintext, hex */
	char *mime;      /* the server's Content-Type, or NULL when it did not say */
} mend_file_result;

/*
 * Downloads, decrypts and checks the file of `link` (blocking; call it from a worker
 * thread where blocking hurts). It is saved as `out_path` when given (never overwriting:
 * MEND_ERR_IO if it exists), else in folder `dir` under the link's safe name, as name-1.ext,
 * name-2.ext... when taken. Nothing is left half-written: a failed tag check
 * (MEND_ERR_PAYLOAD_AUTH), an HTTP error, a timeout or a size over the limit removes the
 * partial file. *why (may be NULL) gets a sentence for the user on failure (mend_free).
 * Clear *res with mend_file_result_clear().
 */
MEND_EXPORT int mend_file_download(const mend_file_link *link, const char *dir,
                                   const char *out_path, const mend_transfer_opts *opts,
                                   mend_file_result *res, char **why);
MEND_EXPORT void mend_file_result_clear(mend_file_result *res);

/*
 * What became of mend_account_send_file(): err 0 and the link's message id (SENT or
 * SEND_FAILED follow for it as for any message), or an error and a sentence saying why
 * (an upload service missing, a file over the server's limit with that limit, HTTP, TLS).
 */
typedef void (*mend_file_sent_cb)(mend_account *acc, int err, const char *text, const char *link,
                                  const char *msg_id, void *data);

/*
 * Sends the file at `path` to `to`: finds our server's upload service (XEP-0363 §3,
 * disco#items and disco#info, its max-file-size), refuses a file over that limit before
 * uploading, asks for a slot, encrypts and PUTs the file in a thread of its own (the
 * host's thread never waits for it; progress and cb come on the host's thread, from
 * mend_account_tick() or a stanza handled), then sends the link with mend_account_send(),
 * or with mend_account_room_send() (opts->send_flags) when `to` is a room the core knows
 * (joined, or asked about with
 * mend_account_room_status and not answered "not a room"). `opts` is copied. Needs the
 * connection (mend_account_connected). cb is called exactly once unless the stream goes
 * down first or the account is freed (which cancels the transfer).
 */
MEND_EXPORT int mend_account_send_file(mend_account *acc, const char *to, const char *path,
                                       const mend_transfer_opts *opts, mend_file_sent_cb cb,
                                       void *data);

/*
 * A host's line for a transfer's progress, or NULL when there is nothing new to
 * show: files from 1 MiB, once per quarter reached (25, 50, 75, 100%); *last
 * (start at 0) keeps the quarter shown. Free with mend_free().
 */
MEND_EXPORT char *mend_file_progress_text(const char *name, uint64_t done, uint64_t total,
                                          int *last);

/* --- group chats (XEP-0045 rooms) -----------------------------------------------
 * OMEMO only in rooms that are members-only and non-anonymous (XEP-0045 muc_membersonly and
 * muc_nonanonymous in the room's disco#info). A message is encrypted to every member's
 * trusted devices (members from occupant presence, muc#user item jid, and from the member,
 * admin and owner lists, XEP-0045 §9.5, §10.5) and our own other devices, and sent as
 * type="groupchat" to the room. Room messages reach the host as MESSAGE events with `room`
 * and `nick` set, `peer` = the room, `from` = the sender's real bare JID.
 * Every stanza from a room (presence, messages, archive results, IQ replies) goes through
 * mend_account_handle_stanza() like any other.
 */

/* Flags of mend_account_room_join(). */
/* The core sends the join presence (hosts that join themselves leave it out: the CLI sets
 * it, the plugins do not). */
#define MEND_ROOM_PRESENCE 0x1
/* Catch up from the room's archive (XEP-0313 on the room JID) from where we left, or the last
 * 100 messages the first time (CATCHUP_DONE with `room` set follows). */
#define MEND_ROOM_CATCHUP 0x2

/*
 * We are (or are about to be) in room `room` (bare JID) as `nick`: the room is remembered in
 * the store (until mend_account_room_leave), its disco#info and affiliation lists are asked
 * for (ROOM event when known), member device lists fetched, and per flags the join presence
 * sent and the room archive caught up. Call it again after every reconnect.
 */
MEND_EXPORT int mend_account_room_join(mend_account *acc, const char *room, const char *nick,
                                       unsigned flags);
/* We left `room`: forgotten from the remembered rooms (the sealed history stays). With
 * MEND_ROOM_PRESENCE the core sends the unavailable presence. */
MEND_EXPORT int mend_account_room_leave(mend_account *acc, const char *room, unsigned flags);

/* The remembered rooms: NULL-terminated arrays of room JIDs and nicks; free with
 * mend_strv_free(). */
MEND_EXPORT int mend_account_rooms(mend_account *acc, char ***rooms, char ***nicks);
MEND_EXPORT void mend_strv_free(char **v);

/*
 * Whether `room` can be encrypted: 0 (yes), MEND_ERR_ROOM_OPEN, MEND_ERR_ROOM_ANONYMOUS,
 * MEND_ERR_NOT_A_ROOM, or MEND_ERR_NOT_FOUND while its disco#info has not been answered.
 * A room the core was not told about is asked now (ROOM event follows).
 */
MEND_EXPORT int mend_account_room_status(mend_account *acc, const char *room);

/* Flags of mend_account_room_send(). */
/* Members without a usable device are left out (named in SENT's text) instead of the
 * message being HELD. */
#define MEND_SEND_ALLOW_PARTIAL 0x1

/*
 * Sends `body` to room `room`, encrypted to every member's usable devices and our other
 * devices, through the pending queue as mend_account_send() does (SENT, SEND_FAILED, or
 * HELD when members could not read it and the flag is not set). Refused at once with
 * MEND_ERR_ROOM_OPEN / _ROOM_ANONYMOUS / _NOT_A_ROOM for a room OMEMO cannot be used in.
 * Plaintext never leaves. The plaintext is kept sealed in the local history under the
 * message id (XEP-0359 origin-id) so that the room's reflection shows as ours, once.
 */
MEND_EXPORT int mend_account_room_send(mend_account *acc, const char *room, const char *body,
                                       unsigned flags, char **id);
/*
 * For Profanity's send hook: like mend_account_encrypt_or_queue() for a room (returns 0 with
 * the groupchat stanza in *stanza, 1 when queued, or a MEND_ERR_*).
 */
MEND_EXPORT int mend_account_room_encrypt_or_queue(mend_account *acc, const char *room,
                                                   const char *body, const char *id, unsigned flags,
                                                   char **stanza);
/*
 * A HELD message (by id; NULL: every held message): send != 0 sends it to the members who
 * can read it (as with MEND_SEND_ALLOW_PARTIAL), send == 0 drops it (SEND_FAILED follows).
 * MEND_ERR_NOT_FOUND when nothing is held under that id.
 */
MEND_EXPORT int mend_account_release(mend_account *acc, const char *id, int send);

/* A room member as the core knows it. */
typedef struct mend_room_member {
	char *jid;          /* real bare JID */
	char *nick;         /* nick while present, else NULL */
	char *affiliation;  /* "owner", "admin", "member", or "none" */
	int present;        /* in the room now */
	unsigned n_devices; /* its devices we would encrypt to (trusted, usable) */
	unsigned n_known;   /* all its devices we know */
} mend_room_member;

/* The members of `room` (ourselves excluded), sorted by JID. Free with mend_room_members_free.
 */
MEND_EXPORT int mend_account_room_members(mend_account *acc, const char *room,
                                          mend_room_member **out, size_t *n);
MEND_EXPORT void mend_room_members_free(mend_room_member *m, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* MEND_MEND_H */
